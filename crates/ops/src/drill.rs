//! `ezchain ops drill`: the whole runbook (docs/RUNBOOK.md), command by command, against a fresh
//! local testnet in a folder of its own.
//!
//! Every step runs the real `ezchain` binary as an operator would (each command line is echoed
//! to stderr), checks what a healthy result looks like, and stops the drill at the first step
//! that is not. The testnet has the runbook's topology: three validators, a bootstrap node, one
//! funded account node, and the operator's wallet service.

use crate::gates::{SANDBOX_PASSWORD, TestnetGuard};
use ezchain_devnet::sandbox::{Ezchain, Sandbox, Service, StepError, address, fresh_nonce, local_balance, step_error};
use ezchain_wallet::AppConfig;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

pub struct DrillOptions {
    pub binary: PathBuf,
    pub dir: PathBuf,
    pub start_port: u16,
    /// The source tree (for the security gate's threat model and source scan).
    pub source_dir: PathBuf,
    /// Length of each canary window.
    pub canary_seconds: u64,
}

pub use crate::gates::StepOutcome;

/// The runbook's canary thresholds (§8).
const GATE_THRESHOLDS: &[&str] = &[
    "--max-crash-rate",
    "0.05",
    "--min-tx-success-rate",
    "0.95",
    "--max-sync-latency-ms-p95",
    "30000",
    "--min-node-online-rate",
    "0.95",
    "--allow-missing-latency",
];

const VALIDATORS: u32 = 3;

struct Drill<'a> {
    options: &'a DrillOptions,
    exe: Ezchain,
    service: Option<Service>,
    account: Ezchain,
    wallet_address: String,
    account_address: String,
    snapshot: Option<PathBuf>,
    balance_at_backup: u64,
}

/// The highest height `node status --json` reports.
fn max_height(status: &Value) -> Option<u64> {
    status["nodes"]
        .as_array()
        .and_then(|nodes| nodes.iter().filter_map(|n| n["height"].as_u64()).max())
}

fn check(condition: bool, step: &str, reason: impl FnOnce() -> String) -> Result<(), StepError> {
    if condition {
        Ok(())
    } else {
        Err(step_error(step, reason()))
    }
}

fn ok_data(step: &str, answer: (u16, Value)) -> Result<Value, StepError> {
    let (status, body) = answer;
    check(status == 200 && body["ok"] == true, step, || {
        format!("{status}: {body}")
    })?;
    Ok(body["data"].clone())
}

impl Drill<'_> {
    fn port_args(&self) -> Vec<String> {
        vec![
            "node".into(),
            "start".into(),
            "--consensus".into(),
            VALIDATORS.to_string(),
            "--accounts".into(),
            "1".into(),
            "--start-port".into(),
            self.options.start_port.to_string(),
        ]
    }

    fn start_nodes(&self) -> Result<Value, StepError> {
        let args = self.port_args();
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        self.exe.json(&args)
    }

    fn service(&self) -> Result<&Service, StepError> {
        self.service
            .as_ref()
            .ok_or_else(|| step_error("serve", "the service is not running"))
    }

    fn account_service(&self) -> Result<Service, StepError> {
        let service = Service::attach(&self.account)?;
        let password_file = self
            .account
            .config
            .with_file_name(ezchain_devnet::localnet::PASSWORD_FILE);
        let password = std::fs::read_to_string(&password_file)
            .map_err(|e| step_error("account node", format!("{}: {e}", password_file.display())))?;
        ok_data(
            "account /wallet/unlock",
            service.post(
                "/wallet/unlock",
                json!({ "password": password.trim(), "ttl_seconds": 3600 }),
            )?,
        )?;
        Ok(service)
    }

    fn height(&self) -> Result<u64, StepError> {
        let status = self.exe.json(&["node", "status"])?;
        max_height(&status).ok_or_else(|| step_error("node status", format!("no heights in {status}")))
    }

    /// Sends 1 unit to the account node every `every` while `window` lasts; returns (ok, failed).
    fn traffic(&self, window: Duration, every: Duration, wait_seconds: u64) -> Result<(u32, u32), StepError> {
        let service = self.service()?;
        let deadline = Instant::now() + window;
        let (mut sent, mut failed) = (0, 0);
        while Instant::now() < deadline {
            match service.send(&self.account_address, 1, wait_seconds) {
                Ok(_) => sent += 1,
                Err(_) => failed += 1,
            }
            std::thread::sleep(every);
        }
        Ok((sent, failed))
    }

    /// A canary window under send traffic, then the gate; returns whether the gate passed.
    fn canary(&self, name: &str, wait_seconds: u64) -> Result<(bool, String), StepError> {
        let report = self.options.dir.join("dist").join(format!("canary_{name}.json"));
        let report_text = report.display().to_string();
        let url = self.service()?.metrics_url();
        let seconds = self.options.canary_seconds.to_string();
        let window = Duration::from_secs(self.options.canary_seconds);
        let (monitor, traffic) = std::thread::scope(|scope| {
            let monitor = scope.spawn(|| {
                self.exe.json(&[
                    "ops",
                    "canary-monitor",
                    "--url",
                    &url,
                    "--duration-sec",
                    &seconds,
                    "--interval-sec",
                    "1",
                    "--out-json",
                    &report_text,
                ])
            });
            let traffic = self.traffic(window, Duration::from_millis(500), wait_seconds);
            (monitor.join(), traffic)
        });
        monitor.map_err(|_| step_error("canary-monitor", "the monitor thread panicked"))??;
        let (sent, failed) = traffic?;
        let mut args = vec!["ops", "canary-gate", "--report", &report_text];
        args.extend_from_slice(GATE_THRESHOLDS);
        let (passed, output) = self.exe.status(&args)?;
        let failures: Vec<&str> = output.lines().filter(|l| l.starts_with("FAIL ")).collect();
        let mut detail = format!(
            "{sent} sends ok, {failed} failed; gate {}",
            if passed { "PASSED" } else { "FAILED" }
        );
        if !failures.is_empty() {
            detail.push_str(&format!(": {}", failures.join("; ")));
        }
        Ok((passed, detail))
    }

    fn run_step(&mut self, name: &str) -> Result<String, StepError> {
        match name {
            "version" => {
                let version = self.exe.json(&["--version"])?;
                Ok(version.as_str().unwrap_or_default().to_string())
            }
            "node start" => {
                self.start_nodes()?;
                Ok(format!(
                    "{VALIDATORS} validators, bootstrap node and account node ready"
                ))
            }
            "wallet create" => {
                self.exe.json(&["wallet", "create", "--password", SANDBOX_PASSWORD])?;
                self.wallet_address = address(&self.exe)?;
                self.account_address = address(&self.account)?;
                Ok(format!("wallet {}", self.wallet_address))
            }
            "serve and health" => {
                let service = Service::start(&self.exe)?;
                let health = service.text("/health")?;
                check(health.contains("\"ok\":true"), name, || {
                    format!("/health answered {health}")
                })?;
                let metrics = service.text("/metrics")?;
                check(metrics.contains("ezchain_node_up"), name, || {
                    "no ezchain_node_up in /metrics".into()
                })?;
                self.service = Some(service);
                Ok("/health ok, /metrics served".into())
            }
            "fund wallets" => {
                let service = self.service()?;
                ok_data(
                    "/wallet/unlock",
                    service.post(
                        "/wallet/unlock",
                        json!({ "password": SANDBOX_PASSWORD, "ttl_seconds": 3600 }),
                    )?,
                )?;
                ok_data("/tx/faucet", service.post("/tx/faucet", json!({ "amount": 1000 }))?)?;
                let balance = local_balance(&self.exe)?;
                check(balance == 1000, name, || {
                    format!("balance {balance} after a faucet grant of 1000")
                })?;
                let funded = local_balance(&self.account)?;
                Ok(format!(
                    "wallet 1000 from the faucet, account node {funded} from genesis"
                ))
            }
            "backup" => {
                let out_dir = self.options.dir.join("backups").display().to_string();
                let report = self
                    .exe
                    .json(&["ops", "backup", "--out-dir", &out_dir, "--label", "pre-rc"])?;
                let snapshot = report["backup_dir"]
                    .as_str()
                    .map(PathBuf::from)
                    .ok_or_else(|| step_error(name, format!("no backup_dir in {report}")))?;
                self.balance_at_backup = local_balance(&self.exe)?;
                // Each wallet's copy is its own: the faucet wallet (held by the bootstrap node)
                // holds the faucet's grant to this wallet as a send, not this wallet's history.
                let faucet_copy =
                    snapshot.join("data_dir/testnet/bootstrap/data/faucet_wallet/wallet_state/wallet.redb");
                let faucet_history = ezchain_wallet::store::WalletStore::history_of_file(&faucet_copy)
                    .map_err(|e| step_error(name, format!("{}: {e}", faucet_copy.display())))?;
                check(
                    faucet_history.iter().any(|r| {
                        r.kind == ezchain_wallet::history::TxKind::Send
                            && r.amount == 1000
                            && r.counterparty.to_string() == self.wallet_address
                    }),
                    name,
                    || format!("the snapshot's faucet wallet is not the faucet's: {faucet_history:?}"),
                )?;
                // A restore over a running installation must be refused, and change nothing.
                let snapshot_text = snapshot.display().to_string();
                let (restored, output) =
                    self.exe
                        .status(&["ops", "restore", "--backup-dir", &snapshot_text, "--force"])?;
                check(!restored && output.contains("still_running"), name, || {
                    format!("a restore while the service runs was not refused: {output}")
                })?;
                let heights = report["heights"].clone();
                check(
                    heights.as_object().is_some_and(|h| h.len() == VALIDATORS as usize + 1),
                    name,
                    || format!("the snapshot should hold every node's chain: {heights}"),
                )?;
                self.snapshot = Some(snapshot.clone());
                Ok(format!(
                    "{} ({} files, heights {heights})",
                    snapshot.display(),
                    report["files"]
                ))
            }
            "payment after backup" => {
                let account = self.account_service()?;
                account.send(&self.wallet_address, 25, 30)?;
                let service = self.service()?;
                ok_data("/tx/receive", service.post("/tx/receive", json!({}))?)?;
                let balance = local_balance(&self.exe)?;
                check(balance == self.balance_at_backup + 25, name, || {
                    format!("balance {balance}, expected {} + 25", self.balance_at_backup)
                })?;
                Ok(format!("received 25 from the account node: balance {balance}"))
            }
            "release gate" => {
                let port = self.options.start_port.saturating_add(200).to_string();
                let work = self.options.dir.join("release-gate").display().to_string();
                let source = self.options.source_dir.display().to_string();
                self.exe.json(&[
                    "ops",
                    "release-gate",
                    "--skip-slow",
                    "--skip-tests",
                    "--start-port",
                    &port,
                    "--work-dir",
                    &work,
                    "--source-dir",
                    &source,
                    "--allow-test-kdf",
                    "--with-stability",
                    "--stability-cycles",
                    "5",
                    "--stability-restart-every",
                    "2",
                ])?;
                Ok("PASSED (smoke, security gate, short stability run; tests run in CI)".into())
            }
            "security gate" => {
                let backups = self.options.dir.join("backups").display().to_string();
                let source = self.options.source_dir.display().to_string();
                self.exe.json(&[
                    "ops",
                    "security-gate",
                    "--repo",
                    &source,
                    "--backups",
                    &backups,
                    "--allow-test-kdf",
                ])?;
                Ok("PASSED".into())
            }
            "metrics probe" => {
                let url = self.service()?.metrics_url();
                let probe = self
                    .exe
                    .json(&["ops", "metrics-probe", "--url", &url, "--min-success-rate", "0.95"])?;
                Ok(format!(
                    "node online rate {}, success ratio {}, median confirmation {} ms",
                    probe["node_online_rate"], probe["transaction_success_rate"], probe["median_confirmation_delay_ms"]
                ))
            }
            "node status" => {
                let height = self.height()?;
                Ok(format!("every node up, height {height}"))
            }
            "restart nodes" => {
                let before = self.height()?;
                self.exe.json(&["node", "stop"])?;
                let (up, _) = self.exe.status(&["node", "status"])?;
                check(!up, name, || "node status says up after node stop".into())?;
                self.start_nodes()?;
                let deadline = Instant::now() + Duration::from_secs(60);
                loop {
                    let (all_up, status) = self.exe.json_any(&["node", "status"])?;
                    let after = max_height(&status).unwrap_or(0);
                    if all_up && after > before {
                        return Ok(format!("stopped at height {before}, resumed to {after}"));
                    }
                    check(Instant::now() < deadline, name, || {
                        format!("60 s after node start: height {after}, status {status}")
                    })?;
                    std::thread::sleep(Duration::from_millis(500));
                }
            }
            "replay and duplicate" => self.replay_and_duplicate(),
            "canary" => {
                let (passed, detail) = self.canary("healthy", 30)?;
                check(passed, name, || detail.clone())?;
                Ok(detail)
            }
            "bad change" => {
                self.exe
                    .json(&["node", "stop", "--node", "validator-1", "--node", "validator-2"])?;
                let (passed, detail) = self.canary("bad_change", 2)?;
                self.start_nodes()?;
                check(!passed, name, || {
                    format!("the gate passed with two of three validators down: {detail}")
                })?;
                Ok(format!("gate failed as it must: {detail}"))
            }
            "stop" => {
                if let Some(mut service) = self.service.take() {
                    service.stop();
                }
                self.exe.json(&["node", "stop"])?;
                Ok("service and nodes stopped".into())
            }
            "restore" => {
                let snapshot = self
                    .snapshot
                    .clone()
                    .ok_or_else(|| step_error(name, "no snapshot was taken"))?;
                let snapshot = snapshot.display().to_string();
                // The wallets received and sent after the snapshot: a plain restore must refuse
                // to roll them back.
                let (restored, output) = self
                    .exe
                    .status(&["ops", "restore", "--backup-dir", &snapshot, "--force"])?;
                check(!restored && output.contains("wallet_ahead"), name, || {
                    format!("a restore over newer wallet payments was not refused: {output}")
                })?;
                let history = |exe: &Ezchain| -> Result<usize, StepError> {
                    let value = exe.json(&["tx", "history"])?;
                    value
                        .as_array()
                        .map(Vec::len)
                        .ok_or_else(|| step_error("tx history", format!("not a list: {value}")))
                };
                let current = history(&self.exe)?;
                self.exe
                    .json(&["ops", "restore", "--backup-dir", &snapshot, "--force", "--keep-wallet"])?;
                let kept = history(&self.exe)?;
                check(kept == current, name, || {
                    format!("--keep-wallet changed the wallet's history from {current} to {kept} records")
                })?;
                let report = self.exe.json(&[
                    "ops",
                    "restore",
                    "--backup-dir",
                    &snapshot,
                    "--force",
                    "--discard-wallet-changes",
                ])?;
                let balance = local_balance(&self.exe)?;
                check(balance == self.balance_at_backup, name, || {
                    format!(
                        "balance {balance} after restore, {} at backup time",
                        self.balance_at_backup
                    )
                })?;
                let discarded = report["discarded_wallet_payments"].as_array().map_or(0, Vec::len);
                check(discarded > 0, name, || {
                    format!("no discarded payments reported: {report}")
                })?;
                // Every restored validator says where it will sign from: never below its record.
                let signing = report["validators_sign_above"].as_object().cloned().unwrap_or_default();
                check(
                    signing.len() == 3 && signing.values().all(|h| h.as_u64().is_some_and(|h| h > 0)),
                    name,
                    || format!("the restore does not name each validator's sign record: {report}"),
                )?;
                Ok(format!(
                    "refused first (wallet_ahead); --keep-wallet kept all {current} records; --discard-wallet-changes: \
                     balance {balance} as at backup time, {discarded} payments discarded, {} folders kept",
                    report["kept"].as_array().map_or(0, Vec::len)
                ))
            }
            "smoke after restore" => {
                self.start_nodes()?;
                let service = Service::start(&self.exe)?;
                check(service.health(), name, || "/health not ok after restore".into())?;
                ok_data(
                    "/wallet/unlock",
                    service.post(
                        "/wallet/unlock",
                        json!({ "password": SANDBOX_PASSWORD, "ttl_seconds": 600 }),
                    )?,
                )?;
                self.service = Some(service);
                // A payer with no history after the snapshot: a fresh wallet on the same testnet.
                let sandbox = Sandbox {
                    dir: self.options.dir.clone(),
                    exe: self.exe.clone(),
                };
                let payer = sandbox.second_wallet("smoke", self.options.start_port.saturating_add(92))?;
                payer.json(&["wallet", "create", "--password", SANDBOX_PASSWORD])?;
                payer.json(&["tx", "faucet", "--amount", "50", "--password", SANDBOX_PASSWORD])?;
                payer.json(&[
                    "tx",
                    "send",
                    "--recipient",
                    &self.wallet_address,
                    "--amount",
                    "20",
                    "--password",
                    SANDBOX_PASSWORD,
                ])?;
                // The CLI beside the running service (it waits for the wallet between two jobs).
                self.exe.json(&["tx", "receive", "--password", SANDBOX_PASSWORD])?;
                let balance = local_balance(&self.exe)?;
                check(balance == self.balance_at_backup + 20, name, || {
                    format!("balance {balance}, expected {} + 20", self.balance_at_backup)
                })?;
                Ok(format!("received and verified 20: balance {balance}"))
            }
            other => Err(step_error(other, "unknown drill step")),
        }
    }

    /// A replayed nonce and a reused `client_tx_id`, then both found by code in the metrics and
    /// the audit log, whose hash chain still verifies.
    fn replay_and_duplicate(&mut self) -> Result<String, StepError> {
        let name = "replay and duplicate";
        let service = self.service()?;
        let nonce = fresh_nonce();
        let body =
            json!({ "recipient": self.account_address, "amount": 1, "client_tx_id": "drill-1", "wait_seconds": 30 });
        ok_data("/tx/send", service.post_with_nonce("/tx/send", &nonce, body.clone())?)?;
        let (status, replayed) = service.post_with_nonce("/tx/send", &nonce, body)?;
        check(
            status == 409 && replayed["error"]["code"] == "replay_detected",
            name,
            || format!("a replayed nonce answered {status}: {replayed}"),
        )?;
        let (status, duplicate) = service.post(
            "/tx/send",
            json!({ "recipient": self.account_address, "amount": 2, "client_tx_id": "drill-1" }),
        )?;
        check(
            status == 409 && duplicate["error"]["code"] == "duplicate_transaction",
            name,
            || format!("a reused client_tx_id answered {status}: {duplicate}"),
        )?;
        let metrics = service.text("/metrics")?;
        for code in ["replay_detected", "duplicate_transaction"] {
            check(metrics.contains(&format!("code=\"{code}\"")), name, || {
                format!("/metrics has no errors counter for {code}")
            })?;
        }
        let config = AppConfig::load(&self.exe.config).map_err(|e| step_error(name, e))?;
        let audit = config.log_dir().join("service_audit.log");
        let log = std::fs::read_to_string(&audit).map_err(|e| step_error(name, format!("{}: {e}", audit.display())))?;
        for code in ["replay_detected", "duplicate_transaction"] {
            check(log.contains(code), name, || {
                format!("{} does not record {code}", audit.display())
            })?;
        }
        self.exe.json(&["ops", "audit-verify"])?;
        Ok("409 replay_detected and 409 duplicate_transaction, both in /metrics and the audit log".into())
    }
}

/// The drill's steps, in order.
pub const STEPS: &[&str] = &[
    "version",
    "node start",
    "wallet create",
    "serve and health",
    "fund wallets",
    "backup",
    "payment after backup",
    "release gate",
    "security gate",
    "node status",
    "restart nodes",
    "replay and duplicate",
    "canary",
    "metrics probe",
    "bad change",
    "stop",
    "restore",
    "smoke after restore",
];

/// Runs the drill; `report` sees each step as it ends. Stops at the first failed step; the
/// testnet and services are stopped however it ends.
pub fn drill(options: &DrillOptions, report: &mut dyn FnMut(&StepOutcome)) -> Result<Vec<StepOutcome>, StepError> {
    let mut sandbox = Sandbox::create(
        &options.binary,
        &options.dir,
        options.start_port,
        options.start_port.saturating_add(90),
        VALIDATORS,
    )?;
    sandbox.exe.echo = true;
    let config = AppConfig::load(&sandbox.exe.config).map_err(|e| step_error("drill", e))?;
    let account_config = config.data_dir().join("testnet").join("account-0").join("ezchain.yaml");
    let mut drill = Drill {
        options,
        exe: sandbox.exe.clone(),
        service: None,
        account: Ezchain {
            binary: options.binary.clone(),
            config: account_config,
            echo: true,
        },
        wallet_address: String::new(),
        account_address: String::new(),
        snapshot: None,
        balance_at_backup: 0,
    };
    let _testnet = TestnetGuard::new(&sandbox.exe);
    let mut outcomes = Vec::new();
    for name in STEPS {
        let started = Instant::now();
        let result = drill.run_step(name);
        let outcome = StepOutcome {
            name: (*name).to_string(),
            passed: result.is_ok(),
            detail: match &result {
                Ok(detail) => detail.clone(),
                Err(e) => e.to_string(),
            },
            seconds: started.elapsed().as_secs_f64(),
        };
        report(&outcome);
        outcomes.push(outcome);
        if result.is_err() {
            break;
        }
    }
    if let Some(mut service) = drill.service.take() {
        service.stop();
    }
    Ok(outcomes)
}

/// The folder a drill uses when none is given: fresh, under the system's temporary folder.
pub fn default_dir() -> PathBuf {
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    std::env::temp_dir().join(format!("ezchain-drill-{stamp}-{}", std::process::id()))
}

/// True when `dir` is missing or empty (the drill never reuses an operator's folder).
pub fn is_fresh(dir: &Path) -> bool {
    std::fs::read_dir(dir).map_or(true, |mut entries| entries.next().is_none())
}
