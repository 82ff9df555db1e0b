//! `ezchain serve` end to end over HTTP, against a real local testnet (one validator and the
//! bootstrap node with its faucet).

use ezchain_devnet::launcher::{self, Attachment};
use ezchain_testkit::LocalTestnet;
use reqwest::blocking::{Client, Response};
use serde_json::{Value, json};
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());
const LONG: Duration = Duration::from_secs(60);

fn binary() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_ezchain"))
}

/// One `ezchain serve` process with its own config and data folder.
struct Service {
    dir: PathBuf,
    config: PathBuf,
    port: u16,
    child: Option<Child>,
    http: Client,
    token: String,
    nonce: u64,
}

impl Service {
    fn new(net: &LocalTestnet, name: &str, port: u16) -> Service {
        Service::with_node(net, name, port, &net.nodes[net.bootstrap_index()].rpc.to_string())
    }

    /// A service whose only node is `node` (a fault proxy in front of the bootstrap node, say).
    fn with_node(net: &LocalTestnet, name: &str, port: u16, node: &str) -> Service {
        let config = net.service_config(&format!("service-{name}"), node, port);
        let dir = config.parent().expect("service folder").to_path_buf();
        let mut service = Service {
            dir,
            config,
            port,
            child: None,
            http: Client::builder()
                .timeout(Duration::from_secs(120))
                .build()
                .expect("client"),
            token: String::new(),
            nonce: 0,
        };
        service.start();
        service
    }

    fn ezchain(&self, args: &[&str]) -> std::process::Output {
        Command::new(binary())
            .arg("--config")
            .arg(&self.config)
            .args(args)
            .output()
            .expect("run ezchain")
    }

    fn start(&mut self) {
        let child = launcher::spawn(
            binary(),
            [OsStr::new("--config"), self.config.as_os_str(), OsStr::new("serve")],
            &self.dir.join("serve.log"),
            Attachment::Child,
        )
        .expect("spawn serve");
        self.child = Some(child);
        let deadline = Instant::now() + LONG;
        while self.http.get(self.url("/health")).send().is_err() {
            assert!(Instant::now() < deadline, "serve did not come up");
            std::thread::sleep(Duration::from_millis(50));
        }
        let token = self.ezchain(&["auth", "show-token"]);
        self.token = String::from_utf8_lossy(&token.stdout).trim().to_string();
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    fn next_nonce(&mut self) -> String {
        self.nonce += 1;
        format!("nonce-{:08}", self.nonce)
    }

    /// A fresh nonce without a mutable borrow (random, for one-off requests).
    fn next_nonce_shared(&self) -> String {
        let mut bytes = [0u8; 8];
        getrandom::fill(&mut bytes).expect("randomness");
        format!("route-{}", hex::encode(bytes))
    }

    fn get(&self, path: &str) -> (u16, Value) {
        answer(
            self.http
                .get(self.url(path))
                .header("X-EZ-Token", &self.token)
                .send()
                .expect("GET"),
        )
    }

    fn post_with(&self, path: &str, nonce: &str, body: Value) -> Response {
        self.http
            .post(self.url(path))
            .header("X-EZ-Token", &self.token)
            .header("X-EZ-Nonce", nonce)
            .json(&body)
            .send()
            .expect("POST")
    }

    /// A POST with the token, an optional nonce and a raw body (for malformed requests).
    fn post_text(&self, path: &str, nonce: Option<&str>, body: &str) -> (u16, Value) {
        let mut request = self
            .http
            .post(self.url(path))
            .header("X-EZ-Token", &self.token)
            .header("content-type", "application/json")
            .body(body.to_string());
        if let Some(nonce) = nonce {
            request = request.header("X-EZ-Nonce", nonce);
        }
        answer(request.send().expect("POST"))
    }

    fn post(&mut self, path: &str, body: Value) -> (u16, Value) {
        let nonce = self.next_nonce();
        answer(self.post_with(path, &nonce, body))
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        self.kill();
    }
}

fn answer(response: Response) -> (u16, Value) {
    let status = response.status().as_u16();
    (status, response.json().unwrap_or(Value::Null))
}

/// Whether an answer carries `X-EZ-Idempotent-Replay: true`.
fn is_replay(response: &Response) -> bool {
    response
        .headers()
        .get("x-ez-idempotent-replay")
        .and_then(|v| v.to_str().ok())
        == Some("true")
}

fn code(answer: &(u16, Value)) -> (u16, &str) {
    (answer.0, answer.1["error"]["code"].as_str().unwrap_or(""))
}

/// `promtool check metrics` (Debian's prometheus package; `.ci/run` installs it). Outside CI a
/// machine without promtool skips the check and says so.
fn promtool_accepts(text: &str) {
    use std::io::Write;
    let child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(child) => child,
        Err(e) => {
            assert!(std::env::var_os("CI").is_none(), "CI must have promtool: {e}");
            eprintln!("promtool not installed: metrics format not checked");
            return;
        }
    };
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(text.as_bytes())
        .expect("write metrics");
    let output = child.wait_with_output().expect("promtool");
    assert!(
        output.status.success(),
        "promtool check metrics: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Every `ezchain_*` metric the alert rules and the Grafana dashboard (deploy/) use is one that
/// a running node (the bootstrap node, which hosts the faucet) or wallet service exports.
fn monitoring_kit_names_only_exported_metrics(exports: &[&str]) {
    let deploy = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy");
    for file in ["prometheus/alerts.yml", "grafana/ezchain-dashboard.json"] {
        let text = std::fs::read_to_string(deploy.join(file)).expect("monitoring kit file");
        let used: Vec<&str> = text
            .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .filter(|word| word.starts_with("ezchain_"))
            .collect();
        assert!(used.len() > 5, "{file} uses {used:?}");
        for metric in used {
            let exported = exports.iter().any(|text| {
                text.lines().any(|line| {
                    line.strip_prefix(metric)
                        .is_some_and(|rest| rest.starts_with([' ', '{']))
                })
            });
            assert!(exported, "{file} uses {metric}, which no node or service exports");
        }
    }
}

fn start(port: u16) -> LocalTestnet {
    let net = LocalTestnet::start(binary(), 1, port);
    net.wait_for_height(net.bootstrap_index(), 1, LONG)
        .expect("the devnet finalizes blocks");
    net
}

fn funded(service: &mut Service, amount: u64) {
    let created = service.post("/wallet/create", json!({ "password": "password-1" }));
    assert_eq!(created.0, 200, "{}", created.1);
    assert_eq!(
        service.post("/wallet/unlock", json!({ "password": "password-1" })).0,
        200
    );
    let paid = service.post("/tx/faucet", json!({ "amount": amount }));
    assert_eq!(paid.1["data"]["available_balance"], amount, "{}", paid.1);
}

#[test]
fn the_http_api_pays_once_and_refuses_bad_requests_with_codes() {
    let _serial = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let net = start(24800);
    let mut alice = Service::new(&net, "alice", 24810);
    let bob = net.cli_wallet("bob");
    let bob_addr = bob.ok(&["wallet", "create", "--password", "password-1"])["address"]
        .as_str()
        .expect("address")
        .to_string();

    // Public routes need no token; the rest do.
    assert_eq!(
        answer(alice.http.get(alice.url("/health")).send().expect("health")).0,
        200
    );
    let no_token = answer(alice.http.get(alice.url("/wallet/show")).send().expect("GET"));
    assert_eq!(code(&no_token), (401, "unauthorized"));
    let wrong = answer(
        alice
            .http
            .get(alice.url("/wallet/show"))
            .header("X-EZ-Token", "0".repeat(64))
            .send()
            .expect("GET"),
    );
    assert_eq!(code(&wrong), (401, "unauthorized"));
    assert_eq!(code(&alice.get("/wallet/show")), (404, "wallet_not_found"));

    funded(&mut alice, 100);
    assert_eq!(
        code(&alice.post("/wallet/unlock", json!({ "password": "nope" }))),
        (403, "wrong_password")
    );
    assert_eq!(
        code(&alice.post("/wallet/create", json!({ "password": "password-1" }))),
        (409, "wallet_exists")
    );
    // curl -d sends a form content type: the body is read as JSON all the same.
    let nonce = alice.next_nonce();
    let unlocked = answer(
        alice
            .http
            .post(alice.url("/wallet/unlock"))
            .header("X-EZ-Token", &alice.token)
            .header("X-EZ-Nonce", nonce)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(r#"{"password": "password-1"}"#)
            .send()
            .expect("POST"),
    );
    assert_eq!(unlocked.0, 200, "{}", unlocked.1);
    let pay = json!({ "recipient": bob_addr, "amount": 30, "client_tx_id": "order-1" });
    let first = alice.post_with("/tx/send", "send-nonce-1", pay.clone());
    assert!(!is_replay(&first));
    let first = answer(first);
    assert_eq!(first.0, 200, "{}", first.1);
    assert_eq!(first.1["data"]["status"], "delivered");

    // The same nonce again: a replay.
    let replayed = answer(alice.post_with("/tx/send", "send-nonce-1", pay.clone()));
    assert_eq!(code(&replayed), (409, "replay_detected"));
    // The same id and body with a fresh nonce: the stored first answer, no second payment.
    let retry = alice.post_with("/tx/send", "send-nonce-2", pay.clone());
    assert!(is_replay(&retry));
    assert_eq!(answer(retry).1, first.1);
    // The same id for another payment: refused.
    let other = alice.post(
        "/tx/send",
        json!({ "recipient": bob_addr, "amount": 31, "client_tx_id": "order-1" }),
    );
    assert_eq!(code(&other), (409, "duplicate_transaction"));

    // Bad requests: each refused once with its code.
    let oversized = alice.post("/tx/send", json!({ "recipient": "x".repeat(70_000), "amount": 1 }));
    assert_eq!(code(&oversized), (413, "payload_too_large"));
    let nonce = alice.next_nonce();
    let malformed = alice.post_text("/tx/send", Some(&nonce), "{not json");
    assert_eq!(code(&malformed), (400, "invalid_request"));
    let no_nonce = alice.post_text("/wallet/lock", None, "");
    assert_eq!(code(&no_nonce), (400, "nonce_required"));
    // A POST to a GET-only route is the wrong method, whatever its headers.
    let wrong_method = alice.post_text("/wallet/show", None, "");
    assert_eq!(code(&wrong_method), (405, "method_not_allowed"));
    // HEAD is served by the GET handler, so it needs the token too.
    let head = alice.http.head(alice.url("/wallet/show")).send().expect("HEAD");
    assert_eq!(head.status().as_u16(), 401);
    // Routes without arguments still refuse a body that is not `{}`, and change nothing.
    let nonce = alice.next_nonce();
    let bad_lock = alice.post_text("/wallet/lock", Some(&nonce), "{oops");
    assert_eq!(code(&bad_lock), (400, "invalid_request"));
    assert_eq!(
        code(&alice.post("/node/stop", json!({ "everything": true }))),
        (400, "invalid_request")
    );
    assert_eq!(
        code(&alice.post(
            "/ops/export",
            json!({ "database": "service", "out_file": "/tmp/a\u{0}b" })
        )),
        (400, "invalid_request")
    );
    assert_eq!(
        code(&alice.post(
            "/ops/export",
            json!({ "database": "service", "out_file": "/no/such/folder/copy.redb" })
        )),
        (400, "invalid_request")
    );
    assert_eq!(
        code(&alice.post("/tx/send", json!({ "recipient": "0x12", "amount": 1 }))),
        (400, "invalid_recipient")
    );
    assert_eq!(code(&alice.get("/no/such/route")), (404, "not_found"));
    assert_eq!(code(&alice.post("/health", json!({}))), (405, "method_not_allowed"));
    let foreign_host = answer(
        alice
            .http
            .get(alice.url("/health"))
            .header("Host", "attacker.example")
            .send()
            .expect("GET"),
    );
    assert_eq!(code(&foreign_host), (403, "forbidden_host"));

    // Exactly one payment arrived.
    assert_eq!(
        bob.ok(&["wallet", "balance", "--password", "password-1"])["available_balance"],
        30
    );
    assert_eq!(alice.get("/wallet/balance").1["data"]["available_balance"], 70);
    let metrics = alice
        .http
        .get(alice.url("/metrics"))
        .send()
        .expect("metrics")
        .text()
        .expect("text");
    assert!(
        metrics.contains("ezchain_tx_send_total{result=\"delivered\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("ezchain_errors_total{code=\"duplicate_transaction\"} 1"),
        "{metrics}"
    );
    assert!(alice.get("/openapi.json").1["paths"]["/tx/send"]["post"].is_object());
    // What this binary is: /status and ezchain_build_info (docs/RUNBOOK.md §2).
    let status = alice.get("/status").1;
    assert_eq!(status["data"]["version"], env!("CARGO_PKG_VERSION"), "{status}");
    assert!(
        status["data"]["commit"].as_str().is_some_and(|c| !c.is_empty()),
        "{status}"
    );
    assert!(metrics.contains("ezchain_build_info{version=\""), "{metrics}");
    // Every route the OpenAPI document lists is served with its method (bodies here are
    // malformed on purpose, so no POST acts).
    for route in ezchain_service::ROUTES {
        let (method, path) = (route.method, route.path);
        let request = match method {
            ezchain_service::routes::Method::Get => alice.http.get(alice.url(path)),
            ezchain_service::routes::Method::Post => alice
                .http
                .post(alice.url(path))
                .header("X-EZ-Nonce", alice.next_nonce_shared())
                .body("{not json"),
        };
        let answered = answer(request.header("X-EZ-Token", &alice.token).send().expect("request"));
        let code = answered.1["error"]["code"].as_str().unwrap_or("");
        assert!(
            code != "not_found" && code != "method_not_allowed",
            "{method:?} {path}: {answered:?}"
        );
    }
    let node_metrics = alice
        .http
        .get(format!("http://{}/metrics", net.nodes[net.bootstrap_index()].rpc))
        .send()
        .expect("node metrics")
        .text()
        .expect("text");
    promtool_accepts(&metrics);
    promtool_accepts(&node_metrics);
    monitoring_kit_names_only_exported_metrics(&[&metrics, &node_metrics]);

    // The runbook's post-release probe reads the same metrics.
    let probe = alice.ezchain(&[
        "--json",
        "ops",
        "metrics-probe",
        "--url",
        &alice.url("/metrics"),
        "--min-success-rate",
        "0.9",
    ]);
    assert!(probe.status.success(), "{}", String::from_utf8_lossy(&probe.stderr));
    let probe: Value = serde_json::from_slice(&probe.stdout).expect("probe JSON");
    assert_eq!(probe["transaction_success_rate"], 1.0, "{probe}");
    assert!(
        probe["median_confirmation_delay_ms"].as_f64().unwrap_or(0.0) > 0.0,
        "{probe}"
    );
    assert_eq!(probe["top_error_codes"].as_array().map(Vec::len), Some(3), "{probe}");
    // A short canary window and its gate.
    let report = alice.dir.join("canary/report.json");
    let report_arg = report.to_string_lossy().to_string();
    let canary = alice.ezchain(&[
        "ops",
        "canary-monitor",
        "--url",
        &alice.url("/metrics"),
        "--duration-sec",
        "2",
        "--interval-sec",
        "0.5",
        "--out-json",
        &report_arg,
    ]);
    assert!(canary.status.success(), "{}", String::from_utf8_lossy(&canary.stderr));
    let written: Value = serde_json::from_str(&std::fs::read_to_string(&report).expect("report")).expect("JSON");
    assert_eq!(written["probes_failed"], 0, "{written}");
    assert!(written["sample_count"].as_u64().unwrap_or(0) >= 4, "{written}");
    let page = std::fs::read_to_string(report.with_extension("html")).expect("canary page");
    assert!(
        page.contains("<svg") && page.contains("gate: ≥ 0.95") && page.contains("PASS") && page.contains("report.json"),
        "charts with the gate's thresholds, verdicts, the JSON file named"
    );
    let gate = alice.ezchain(&["ops", "canary-gate", "--report", &report_arg]);
    assert!(
        gate.status.success(),
        "a quiet healthy window passes: {}",
        String::from_utf8_lossy(&gate.stdout)
    );
    let strict = alice.ezchain(&["ops", "canary-gate", "--report", &report_arg, "--require-traffic"]);
    assert_eq!(strict.status.code(), Some(1), "no sends fails when traffic is required");
    let missing = alice.ezchain(&["ops", "canary-gate", "--report", "/nonexistent/report.json"]);
    assert_eq!(missing.status.code(), Some(2), "an unreadable report is exit 2");
    // The security gate passes on this installation and the source tree, and catches a loose
    // keystore.
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let repo_arg = repo.to_string_lossy().to_string();
    let gate = alice.ezchain(&["ops", "security-gate", "--repo", &repo_arg, "--allow-test-kdf"]);
    assert!(gate.status.success(), "{}", String::from_utf8_lossy(&gate.stdout));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let keystore = alice.dir.join("data/wallet.json");
        std::fs::set_permissions(&keystore, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        let loose = alice.ezchain(&["ops", "security-gate", "--repo", &repo_arg, "--allow-test-kdf"]);
        assert!(!loose.status.success());
        assert!(String::from_utf8_lossy(&loose.stdout).contains("FAIL secret_files_0600"));
        std::fs::set_permissions(&keystore, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    }
    let down = alice.ezchain(&["ops", "metrics-probe", "--url", "http://127.0.0.1:9/metrics"]);
    assert!(!down.status.success());
    assert!(String::from_utf8_lossy(&down.stderr).contains("metrics_unreachable"));

    // Online exports for backups: the held service database and the wallet, each once.
    let exports = tempfile::tempdir().expect("temp dir");
    let relative = alice.post("/ops/export", json!({ "database": "service", "out_file": "x.redb" }));
    assert_eq!(code(&relative), (400, "invalid_request"));
    for database in ["service", "wallet"] {
        let target = exports.path().join(format!("{database}.redb"));
        let body = json!({ "database": database, "out_file": target });
        let first = alice.post("/ops/export", body.clone());
        assert_eq!(first.0, 200, "{}", first.1);
        assert!(first.1["data"]["bytes"].as_u64().is_some_and(|b| b > 0));
        assert_eq!(code(&alice.post("/ops/export", body)), (409, "already_exists"));
    }

    // The per-client rate limit over HTTP: 60 a minute, so a burst of 100 meets 429
    // `rate_limited`, and a second later the client is served again.
    let mut settings = std::fs::read_to_string(&alice.config).expect("config");
    settings.push_str("security:\n  rate_limit_per_minute: 60\n");
    std::fs::write(&alice.config, settings).expect("config");
    alice.kill();
    alice.start();
    let answers: Vec<(u16, Value)> = (0..100).map(|_| alice.get("/health")).collect();
    let limited: Vec<&(u16, Value)> = answers.iter().filter(|(status, _)| *status == 429).collect();
    assert!(
        !limited.is_empty(),
        "100 requests at once never met the limit of 60 a minute"
    );
    assert!(limited.iter().all(|(_, body)| body["error"]["code"] == "rate_limited"));
    std::thread::sleep(Duration::from_millis(2100));
    assert_eq!(alice.get("/health").0, 200, "the bucket refills");

    // The audit chain verifies; editing one line breaks it at that line.
    let verified = alice.ezchain(&["ops", "audit-verify"]);
    assert!(
        verified.status.success(),
        "{}",
        String::from_utf8_lossy(&verified.stderr)
    );
    let log = alice.dir.join("data/logs/service_audit.log");
    let text = std::fs::read_to_string(&log).expect("audit log");
    assert!(!text.contains("password-1"), "no password in the audit log");
    let edited: Vec<String> = text
        .lines()
        .enumerate()
        .map(|(i, line)| {
            if i == 4 {
                line.replace("\"GET\"", "\"PUT\"").replace("\"POST\"", "\"PUT\"")
            } else {
                line.to_string()
            }
        })
        .collect();
    std::fs::write(&log, edited.join("\n") + "\n").expect("edit");
    let broken = alice.ezchain(&["ops", "audit-verify"]);
    assert!(!broken.status.success());
    let stderr = String::from_utf8_lossy(&broken.stderr);
    assert!(
        stderr.contains("audit_chain_broken") && stderr.contains("line 5"),
        "{stderr}"
    );

    // Cutting the last lines leaves a chain that verifies on its own: the anchored head catches
    // it, and the service chains what it found at its next start.
    alice.kill();
    let lines: Vec<&str> = text.lines().collect();
    std::fs::write(&log, lines[..lines.len() - 3].join("\n") + "\n").expect("truncate");
    let cut = alice.ezchain(&["ops", "audit-verify"]);
    let stderr = String::from_utf8_lossy(&cut.stderr);
    assert!(
        !cut.status.success() && stderr.contains("audit_chain_broken") && stderr.contains("removed"),
        "{stderr}"
    );
    alice.start();
    let flagged = alice.ezchain(&["ops", "audit-verify"]);
    let stderr = String::from_utf8_lossy(&flagged.stderr);
    assert!(
        !flagged.status.success() && stderr.contains("audit_tampered"),
        "{stderr}"
    );
}

#[test]
fn a_service_killed_during_a_send_pays_exactly_once_after_restart() {
    let _serial = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let mut net = start(24820);
    let mut alice = Service::new(&net, "alice", 24830);
    let bob = net.cli_wallet("bob");
    let bob_addr = bob.ok(&["wallet", "create", "--password", "password-1"])["address"]
        .as_str()
        .expect("address")
        .to_string();
    funded(&mut alice, 100);

    // Nothing finalizes while the validator is down: the send is caught in flight.
    net.kill(0);
    let pay = json!({ "recipient": bob_addr, "amount": 30, "client_tx_id": "order-9", "wait_seconds": 60 });
    let url = alice.url("/tx/send");
    let token = alice.token.clone();
    let body = pay.clone();
    let in_flight = std::thread::spawn(move || {
        Client::builder()
            .timeout(Duration::from_secs(90))
            .build()
            .expect("client")
            .post(url)
            .header("X-EZ-Token", token)
            .header("X-EZ-Nonce", "inflight-nonce")
            .json(&body)
            .send()
            .map(|r| r.status().as_u16())
    });
    let history = alice.dir.join("data/tx_history.json");
    let deadline = Instant::now() + LONG;
    loop {
        let text = std::fs::read_to_string(&history).unwrap_or_default();
        if text.contains("\"submitted\"") {
            break;
        }
        assert!(Instant::now() < deadline, "the send never reached submitted: {text}");
        std::thread::sleep(Duration::from_millis(20));
    }
    // A second request with the same id while the first still runs: refused, not queued.
    let concurrent = alice.post("/tx/send", pay.clone());
    assert_eq!(code(&concurrent), (409, "request_in_progress"));
    alice.kill();
    assert!(
        in_flight.join().expect("thread").is_err(),
        "the killed service never answered"
    );

    net.start_node(0);
    alice.start();
    assert_eq!(alice.post("/wallet/unlock", json!({ "password": "password-1" })).0, 200);
    let retried = alice.post("/tx/send", pay);
    assert_eq!(retried.0, 200, "{}", retried.1);
    assert_eq!(retried.1["data"]["status"], "delivered");
    assert_eq!(
        bob.ok(&["wallet", "balance", "--password", "password-1"])["available_balance"],
        30
    );
    let history = alice.get("/tx/history").1;
    let sends = history["data"]["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter(|r| r["kind"] == "send")
        .count();
    assert_eq!(sends, 1, "{history}");
    assert_eq!(alice.get("/wallet/balance").1["data"]["available_balance"], 70);
}

/// Number of sends in a service's history.
fn sends(service: &Service) -> usize {
    let history = service.get("/tx/history").1;
    history["data"]["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter(|r| r["kind"] == "send")
        .count()
}

#[test]
fn a_client_tx_id_is_bound_to_its_bundle_and_transient_errors_are_never_its_answer() {
    let _serial = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let net = start(24840);
    let bootstrap = net.nodes[net.bootstrap_index()].rpc;
    let proxy = ezchain_testkit::proxy::FaultProxy::start("127.0.0.1:24859".parse().expect("address"), bootstrap);
    let mut alice = Service::with_node(&net, "alice", 24850, &proxy.addr.to_string());
    let bob = net.cli_wallet("bob");
    let bob_addr = bob.ok(&["wallet", "create", "--password", "password-1"])["address"]
        .as_str()
        .expect("address")
        .to_string();
    funded(&mut alice, 100);

    // Item 2: no node before anything is signed → answered, not stored; the retry pays.
    proxy.block("/");
    let early = json!({ "recipient": bob_addr, "amount": 10, "client_tx_id": "order-early", "wait_seconds": 30 });
    let refused = alice.post("/tx/send", early.clone());
    assert_eq!(code(&refused), (503, "node_unreachable"), "{}", refused.1);
    proxy.unblock_all();
    let paid = alice.post_with("/tx/send", "early-retry-1", early);
    assert!(is_replay(&paid));
    let paid = answer(paid);
    assert_eq!(paid.0, 200, "{}", paid.1);
    assert_eq!(paid.1["data"]["status"], "delivered", "{}", paid.1);

    // Item 1: the node stops serving headers after the bundle is signed: the send is finalized
    // on chain, but the wallet cannot prove it yet. The answer is the state it reached, and the
    // retry answers the real state — delivered — not a stored error.
    proxy.block(ezchain_rpc::paths::HEADERS);
    let late = json!({ "recipient": bob_addr, "amount": 30, "client_tx_id": "order-late", "wait_seconds": 30 });
    let stalled = alice.post("/tx/send", late.clone());
    assert_eq!(stalled.0, 200, "{}", stalled.1);
    assert_eq!(stalled.1["data"]["status"], "submitted", "{}", stalled.1);
    assert_eq!(
        stalled.1["data"]["stalled"]["code"], "node_unreachable",
        "{}",
        stalled.1
    );
    let seq = stalled.1["data"]["seq"].as_u64().expect("seq");
    let alice_addr: ezchain_protocol::Address = alice.get("/wallet/show").1["data"]["address"]
        .as_str()
        .expect("address")
        .parse()
        .expect("address parses");
    net.wait_for_receipt(net.bootstrap_index(), &alice_addr, seq, LONG)
        .expect("the bundle is final on chain");
    proxy.unblock_all();
    let retried = alice.post_with("/tx/send", "late-retry-1", late.clone());
    assert!(is_replay(&retried));
    let retried = answer(retried);
    assert_eq!(retried.0, 200, "{}", retried.1);
    assert_eq!(retried.1["data"]["status"], "delivered", "{}", retried.1);
    assert_eq!(retried.1["data"]["tx_ref"], stalled.1["data"]["tx_ref"]);
    assert!(retried.1["data"]["stalled"].is_null());

    // Definitive refusals are final: stored and replayed even when they could now succeed.
    let too_much = json!({ "recipient": bob_addr, "amount": 1000, "client_tx_id": "order-big" });
    assert_eq!(
        code(&alice.post("/tx/send", too_much.clone())),
        (400, "insufficient_funds")
    );
    let replayed = alice.post_with("/tx/send", "big-retry-1", too_much);
    assert!(is_replay(&replayed));
    assert_eq!(code(&answer(replayed)), (400, "insufficient_funds"));
    // Paying yourself is refused before anything is signed.
    let to_self = alice.post("/tx/send", json!({ "recipient": alice_addr.to_string(), "amount": 5 }));
    assert_eq!(code(&to_self), (400, "self_transfer"));

    assert_eq!(
        bob.ok(&["wallet", "balance", "--password", "password-1"])["available_balance"],
        40,
        "each id paid exactly once"
    );
    assert_eq!(sends(&alice), 2);
    assert_eq!(alice.get("/wallet/balance").1["data"]["available_balance"], 60);
}

/// `schemathesis` (PyPI) on PATH or in `EZ_SCHEMATHESIS`; `.ci/run` installs it and sets
/// `EZ_REQUIRE_SCHEMATHESIS=1`, so CI never skips the fuzz run.
fn schemathesis() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("EZ_SCHEMATHESIS") {
        return Some(PathBuf::from(path));
    }
    let found = Command::new("schemathesis").arg("--version").output();
    match found {
        Ok(output) if output.status.success() => Some(PathBuf::from("schemathesis")),
        _ => None,
    }
}

#[test]
fn schemathesis_finds_no_server_error_and_no_answer_outside_the_openapi_document() {
    let _serial = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let Some(tool) = schemathesis() else {
        assert!(
            std::env::var_os("EZ_REQUIRE_SCHEMATHESIS").is_none(),
            "schemathesis is required here (pip install schemathesis, or set EZ_SCHEMATHESIS)"
        );
        eprintln!("schemathesis not installed: the API was not fuzzed");
        return;
    };
    let net = start(24870);
    let mut alice = Service::new(&net, "fuzz", 24880);
    // A generous rate limit (the fuzzer is one client sending fast), then a funded, unlocked
    // wallet, so the wallet and payment routes run past `wallet_not_found`.
    let mut settings = std::fs::read_to_string(&alice.config).expect("config");
    settings.push_str("security:\n  rate_limit_per_minute: 100000\n");
    std::fs::write(&alice.config, settings).expect("config");
    alice.kill();
    alice.start();
    funded(&mut alice, 1_000);
    // Bounded: a fixed number of examples per operation, each request with a timeout, and the
    // whole run killed after ten minutes. `/node/start` would launch a testnet and
    // `/ops/export` writes files wherever it is told; both have their own tests.
    // Its example database and crash cache go to a folder of the test, not the checkout.
    let workdir = alice.dir.join("schemathesis");
    std::fs::create_dir_all(&workdir).expect("schemathesis folder");
    let mut child = Command::new(&tool)
        .current_dir(&workdir)
        .arg("run")
        .arg(alice.url("/openapi.json"))
        .args(["--header", &format!("X-EZ-Token: {}", alice.token)])
        .args(["--checks", "not_a_server_error,response_schema_conformance"])
        .args(["--max-examples", "25", "--request-timeout", "60", "--workers", "1"])
        .args(["--exclude-path", "/node/start", "--exclude-path", "/ops/export"])
        .args(["--generation-deterministic", "--no-color"])
        .stdin(Stdio::null())
        // To a file, not a pipe nobody reads while it runs (a full pipe would stall it).
        .stdout(std::fs::File::create(workdir.join("report.txt")).expect("report file"))
        .stderr(Stdio::from(
            std::fs::File::create(workdir.join("errors.txt")).expect("error file"),
        ))
        .spawn()
        .expect("run schemathesis");
    let status = ezchain_testkit::wait_or_kill(&mut child, Duration::from_secs(600));
    let report = format!(
        "{}{}",
        std::fs::read_to_string(workdir.join("report.txt")).unwrap_or_default(),
        std::fs::read_to_string(workdir.join("errors.txt")).unwrap_or_default()
    );
    assert!(status.is_some_and(|s| s.success()), "schemathesis: {report}");
    assert!(
        alice.get("/health").0 == 200,
        "the service still answers after the fuzz run"
    );
}

/// The web wallet's sign-in over plain HTTP: a login code works once, the session cookie stands
/// in for the token only from this service's own pages, signing out or rotating the token ends
/// it, and every answer carries the page's security headers.
#[test]
fn a_web_session_is_one_time_code_in_same_origin_only_and_ends_with_the_token() {
    let _serial = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let net = start(25870);
    let alice = Service::new(&net, "web", 25880);
    let page = alice.http.get(alice.url("/")).send().expect("GET /");
    assert_eq!(page.status(), 200);
    let headers = page.headers().clone();
    assert!(
        headers["content-security-policy"]
            .to_str()
            .is_ok_and(|csp| csp.contains("default-src 'self'") && csp.contains("frame-ancestors 'none'")),
        "{headers:?}"
    );
    assert_eq!(headers["x-frame-options"], "DENY");
    assert!(page.text().expect("page").contains("/ui/app.js"));

    let link = alice.ezchain(&["auth", "login-link"]);
    let link = String::from_utf8_lossy(&link.stdout).trim().to_string();
    let login_code = link.split("#login=").nth(1).expect("a code in the link").to_string();
    let sign_in = |body: Value| {
        alice
            .http
            .post(alice.url("/ui/session"))
            .json(&body)
            .send()
            .expect("POST /ui/session")
    };
    let signed = sign_in(json!({ "code": login_code }));
    assert_eq!(signed.status(), 200);
    let cookie = signed.headers()["set-cookie"].to_str().expect("cookie").to_string();
    assert!(
        cookie.starts_with("ez_session_25880=") && cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    let session = cookie.split(';').next().expect("name=value").to_string();
    assert_eq!(
        code(&answer(sign_in(json!({ "code": login_code })))),
        (401, "login_failed"),
        "a code works once"
    );
    assert_eq!(
        code(&answer(sign_in(json!({ "token": "0".repeat(64) })))),
        (401, "login_failed")
    );

    let with_session = |origin: Option<&str>| {
        let mut request = alice.http.get(alice.url("/ui/stats")).header("cookie", &session);
        if let Some(origin) = origin {
            request = request.header("origin", origin);
        }
        answer(request.send().expect("GET with the cookie"))
    };
    assert_eq!(with_session(None).0, 200, "{}", with_session(None).1);
    assert_eq!(with_session(Some("http://127.0.0.1:25880")).0, 200);
    assert_eq!(code(&with_session(Some("http://evil.example"))), (403, "cross_origin"));
    // A POST with the session still needs its nonce.
    let post = |nonce: Option<&str>| {
        let mut request = alice
            .http
            .post(alice.url("/tx/check-recipient"))
            .header("cookie", &session)
            .json(&json!({ "recipient": "0x52e66a0e6d9c4cc3bd0b6e57b8d5f1a4c25c0918" }));
        if let Some(nonce) = nonce {
            request = request.header("X-EZ-Nonce", nonce);
        }
        answer(request.send().expect("POST with the cookie"))
    };
    assert_eq!(code(&post(None)), (400, "nonce_required"));
    assert_eq!(post(Some("session-nonce-1")).0, 200);

    // Rotating the token signs every browser out.
    let rotated = alice.ezchain(&["auth", "rotate-token"]);
    assert!(rotated.status.success());
    assert_eq!(code(&with_session(None)), (401, "unauthorized"));
    let token = String::from_utf8_lossy(&rotated.stdout).trim().to_string();
    let signed = sign_in(json!({ "token": token }));
    assert_eq!(signed.status(), 200, "the token signs a browser in too");
    let session = signed.headers()["set-cookie"]
        .to_str()
        .expect("cookie")
        .split(';')
        .next()
        .expect("name=value")
        .to_string();
    let logout = alice
        .http
        .post(alice.url("/ui/logout"))
        .header("cookie", &session)
        .header("X-EZ-Nonce", "logout-nonce-1")
        .body("{}")
        .send()
        .expect("logout");
    assert_eq!(logout.status(), 200);
    let after = answer(
        alice
            .http
            .get(alice.url("/wallet/show"))
            .header("cookie", &session)
            .send()
            .expect("GET after sign-out"),
    );
    assert_eq!(code(&after), (401, "unauthorized"));
}
