//! End-to-end tests of real node processes on loopback (`ezchain-testkit`): BFT finality with
//! bundles submitted over RPC, crash and restart of a validator, the 3-validator no-fault
//! limit, graceful shutdown, and hostile RPC input. These tests run one at a time: each starts
//! several processes, and two cores are shared.

use ezchain_protocol::finality::verify_commit;
use ezchain_protocol::{Address, SigningKey};
use ezchain_rpc::paths;
use ezchain_testkit::{LocalTestnet, payment};
use std::sync::Mutex;
use std::time::Duration;

static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());
const LONG: Duration = Duration::from_secs(60);

fn binary() -> &'static std::path::Path {
    std::path::Path::new(env!("CARGO_BIN_EXE_ezchain"))
}

#[test]
fn four_validators_and_bootstrap_finalize_submitted_bundles() {
    let _serial = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let net = LocalTestnet::start(binary(), 4, 24100);
    let bootstrap = net.bootstrap_index();
    for index in 0..net.nodes.len() {
        net.wait_for_height(index, 2, LONG).unwrap();
    }
    for index in 0..net.nodes.len() {
        net.wait_until_ready(index, LONG).unwrap();
    }
    let faucet = net.faucet_key();
    let alice = SigningKey::from_bytes(&[11u8; 32]).expect("key").address();
    let events = net.subscribe(bootstrap, &[faucet.address()]);
    let first = payment(&faucet, net.genesis.chain_id, 1, alice, 0, 9);
    // Sent to the non-voting bootstrap node only: it forwards to the validators.
    assert_eq!(net.submit(bootstrap, &first), Ok("accepted".to_string()));
    assert_eq!(net.submit(bootstrap, &first), Ok("already_pending".to_string()));
    let receipt = net.wait_for_receipt(bootstrap, &faucet.address(), 1, LONG).unwrap();
    // The subscription pushed finalized headers and the faucet's receipt.
    let deadline = std::time::Instant::now() + LONG;
    let (mut saw_header, mut pushed_receipt) = (false, None);
    while pushed_receipt.is_none() && std::time::Instant::now() < deadline {
        if let Ok((event, data)) = events.recv_timeout(Duration::from_secs(1)) {
            match event.as_str() {
                "header" => saw_header = true,
                "receipt" => pushed_receipt = data["receipt"].as_str().map(str::to_string),
                _ => {}
            }
        }
    }
    assert!(saw_header, "a header event arrived");
    let pushed = pushed_receipt.expect("the receipt was pushed to the subscriber");
    assert_eq!(
        pushed,
        hex::encode(ezchain_protocol::codec::encode(&receipt)),
        "pushed receipt equals the pulled one"
    );
    // A replay of the committed bundle is refused with its code.
    assert_eq!(net.submit(2, &first), Err((422, "stale_seq".to_string())));
    let second = payment(&faucet, net.genesis.chain_id, 2, alice, 10, 19);
    assert_eq!(net.submit(2, &second), Ok("accepted".to_string()));
    let receipt2 = net.wait_for_receipt(0, &faucet.address(), 2, LONG).unwrap();
    assert_eq!(receipt2.prev_ref.map(|r| r.height), Some(receipt.header.height));
    let top = receipt2.header.height;
    for index in 0..net.nodes.len() {
        net.wait_for_height(index, top, LONG).unwrap();
    }
    net.assert_agreement(top);
    // A light client syncs the headers from the bootstrap node and checks every certificate.
    let headers = net.headers(bootstrap, 1, top).expect("headers");
    assert_eq!(headers.len() as u64, top);
    for (header, certificate) in &headers {
        verify_commit(&net.genesis, header, certificate).expect("light client accepts");
    }
    assert!(
        net.headers(bootstrap, top + 1000, top + 1010)
            .expect("empty range")
            .is_empty()
    );
    // The receipt proves the faucet's leaf under the finalized state root.
    let (block, _) = net.block(bootstrap, receipt.header.height).expect("block");
    assert_eq!(block.header.lite(), receipt.header);
    let unit = ezchain_protocol::ConfirmedBundleUnit {
        receipt,
        sidecar: first.sidecar,
    };
    assert!(unit.proves_inclusion());

    // Two payments crossed the network: each bundle went from the node a client gave it to
    // every validator once, and no node bounced it back (the forwarding storm forwarded every
    // repeat, thousands of requests per payment). A few more blocks give a storm time to show.
    let now = net.status(bootstrap).expect("status").height;
    net.wait_for_height(bootstrap, now + 3, LONG).unwrap();
    let counter = |index: usize, name: &str| {
        let text = net.metrics(index).expect("metrics");
        text.lines()
            .filter(|line| line.starts_with(name))
            .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
            .sum::<f64>()
    };
    let from_bootstrap = counter(bootstrap, "ezchain_node_bundle_forwards_total");
    assert_eq!(
        from_bootstrap, 4.0,
        "the bootstrap node sent the first bundle to the 4 validators"
    );
    for index in 0..net.nodes.len() {
        let forwards = counter(index, "ezchain_node_bundle_forwards_total");
        let from_peers = counter(index, "ezchain_node_submissions_received_total{origin=\"peer\"");
        assert!(forwards <= 4.0, "{} forwarded {forwards} times", net.nodes[index].name);
        assert!(
            from_peers <= 2.0,
            "{} was handed {from_peers} forwarded bundles for 2 payments",
            net.nodes[index].name
        );
    }
}

#[test]
fn a_killed_validator_restarts_and_catches_up() {
    let _serial = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let mut net = LocalTestnet::start(binary(), 4, 24200);
    net.wait_for_height(0, 3, LONG).unwrap();
    net.kill(3);
    let before = net.status(0).expect("status").height;
    assert!(
        net.wait_until_ready(0, Duration::from_secs(5)).is_ok(),
        "three of four validators are still a ready chain"
    );
    // The other three keep finalizing without it.
    net.wait_for_height(0, before + 4, LONG).unwrap();
    // The others count the commits it is missing from (what the monitoring kit alerts on).
    let missed = |net: &LocalTestnet| {
        metric(
            &net.metrics(0).expect("metrics"),
            "ezchain_node_validator_missed_commits{validator=\"validator-3\"}",
        )
    };
    assert!(missed(&net) >= 3.0, "validator-3 missed {} commits", missed(&net));
    assert_eq!(
        metric(
            &net.metrics(0).expect("metrics"),
            "ezchain_node_validator_missed_commits{validator=\"validator-0\"}"
        ),
        0.0
    );
    net.start_node(3);
    let target = net.status(0).expect("status").height + 2;
    net.wait_for_height(3, target, LONG).unwrap();
    net.assert_agreement(target);
    // Back, its precommits are in the commits again.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while missed(&net) > 0.0 {
        assert!(
            std::time::Instant::now() < deadline,
            "validator-3 still missing from commits"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let log = net.log(3).to_lowercase();
    assert!(!log.contains("equivocation"), "the restarted validator equivocated");
    assert!(!log.contains("panicked"), "a node panicked");
}

#[test]
fn three_validators_stop_without_one_and_resume_when_it_returns() {
    let _serial = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let mut net = LocalTestnet::start(binary(), 3, 24300);
    net.wait_for_height(0, 2, LONG).unwrap();
    net.kill(2);
    // Let any in-flight height finish, then no further progress is possible (2 of 3 < 2/3+).
    std::thread::sleep(Duration::from_secs(3));
    let stalled = net.status(0).expect("status").height;
    std::thread::sleep(Duration::from_secs(6));
    let still = net.status(0).expect("status").height;
    assert!(still <= stalled + 1, "progress without a quorum: {stalled} → {still}");
    net.start_node(2);
    net.wait_for_height(0, still + 2, LONG).unwrap();
    net.wait_for_height(2, still + 2, LONG).unwrap();
    net.assert_agreement(still + 2);
}

#[test]
fn sigterm_stops_a_node_cleanly_and_it_resumes_from_its_store() {
    let _serial = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let mut net = LocalTestnet::start(binary(), 1, 24400);
    net.wait_for_height(0, 3, LONG).unwrap();
    let status = net.terminate(0).expect("exits within 20 s of SIGTERM");
    assert!(status.success(), "exit status {status:?}");
    let stopped_at = net.status(1).map(|s| s.height).unwrap_or(0);
    net.start_node(0);
    net.wait_for_height(0, stopped_at.max(3) + 2, LONG).unwrap();
    net.assert_agreement(3);
}

#[test]
fn malformed_and_oversized_rpc_requests_get_4xx_and_the_node_keeps_serving() {
    let _serial = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let net = LocalTestnet::start(binary(), 1, 24500);
    net.wait_for_height(0, 1, LONG).unwrap();
    let cases: Vec<(&str, Vec<u8>, u16, &str)> = vec![
        ("application/json", b"{not json".to_vec(), 400, "malformed_request"),
        (
            "application/json",
            br#"{"submission":"zz"}"#.to_vec(),
            400,
            "malformed_request",
        ),
        (
            "application/json",
            br#"{"submission":"00ff"}"#.to_vec(),
            400,
            "malformed_submission",
        ),
        ("text/plain", b"hello".to_vec(), 415, "malformed_request"),
    ];
    for (content_type, body, status, code) in cases {
        let (got, reply) = net.post_raw(0, paths::SUBMIT, content_type, body).expect("answered");
        assert_eq!(got, status, "{reply}");
        assert_eq!(reply["error"]["code"], code);
    }
    // Over the default `rpc.max_body_bytes` (room for the largest snapshot submission as hex).
    let huge = format!(r#"{{"submission":"{}"}}"#, "00".repeat(1300 * 1024));
    let (status, reply) = net
        .post_raw(0, paths::SUBMIT, "application/json", huge.into_bytes())
        .expect("answered");
    assert_eq!(status, 413, "{reply}");
    let (status, reply) = net.post_raw(0, "/nope", "application/json", vec![]).expect("answered");
    assert_eq!((status, reply["error"]["code"].as_str()), (404, Some("not_found")));
    // A forged bundle is refused with its code.
    let faucet = net.faucet_key();
    let mut forged = payment(&faucet, net.genesis.chain_id, 1, Address([1; 20]), 0, 0);
    forged.envelope.fee = 99;
    assert_eq!(net.submit(0, &forged), Err((422, "invalid_bundle".to_string())));
    // A payment to its own sender is refused: it would lock the coins (bundle rule 2).
    let to_self = payment(&faucet, net.genesis.chain_id, 1, faucet.address(), 0, 0);
    assert_eq!(net.submit(0, &to_self), Err((422, "self_transfer".to_string())));
    // A batch: each entry answered as `/v1/submit` would, in the request's order; a bad entry
    // refuses only itself (a sender's seq 2 behind its still pending seq 1 is a gap, as it would
    // be alone: the chain's seq is the basis).
    let alice = Address([7; 20]);
    let first = payment(&faucet, net.genesis.chain_id, 1, alice, 0, 4);
    let second = payment(&faucet, net.genesis.chain_id, 2, alice, 5, 9);
    let entry = |submission: &ezchain_protocol::Submission| hex::encode(ezchain_protocol::codec::encode(submission));
    let batch = serde_json::json!({ "submissions": [
        entry(&first), entry(&first), "zz", "00ff", entry(&forged), entry(&second),
    ] });
    let (status, reply) = net
        .post_raw(
            0,
            paths::SUBMIT_BATCH,
            "application/json",
            batch.to_string().into_bytes(),
        )
        .expect("answered");
    assert_eq!(status, 200, "{reply}");
    let answers: Vec<String> = reply["data"]["results"]
        .as_array()
        .expect("results")
        .iter()
        .map(|result| {
            result["data"]["status"]
                .as_str()
                .or(result["error"]["code"].as_str())
                .unwrap_or("?")
                .to_string()
        })
        .collect();
    assert_eq!(
        answers,
        [
            "accepted",
            "already_pending",
            "malformed_request",
            "malformed_submission",
            "invalid_bundle",
            "seq_gap"
        ],
        "{reply}"
    );
    let too_many = serde_json::json!({ "submissions": vec!["00"; 257] });
    let (status, reply) = net
        .post_raw(
            0,
            paths::SUBMIT_BATCH,
            "application/json",
            too_many.to_string().into_bytes(),
        )
        .expect("answered");
    assert_eq!(
        (status, reply["error"]["code"].as_str()),
        (400, Some("batch_too_large"))
    );
    net.wait_for_receipt(0, &faucet.address(), 1, LONG)
        .expect("the batch's bundle is final");
    let before = net.status(0).expect("still serving").height;
    net.wait_for_height(0, before + 1, LONG).unwrap();
}

#[test]
fn the_admin_export_needs_the_token_and_writes_a_consistent_copy_once() {
    let _serial = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let net = LocalTestnet::start(binary(), 1, 24520);
    net.wait_for_height(0, 2, LONG).unwrap();
    let node = &net.nodes[0];
    let token = std::fs::read_to_string(node.home.join("data").join("admin.token")).expect("admin.token");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(node.home.join("data").join("admin.token"))
            .expect("meta")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "the admin token is a secret");
    }
    let out = tempfile::tempdir().expect("temp dir");
    let target = out.path().join("chain.redb");
    let http = reqwest::blocking::Client::new();
    let export = |token: &str, body: serde_json::Value| {
        let response = http
            .post(format!("http://{}{}", node.rpc, paths::ADMIN_EXPORT))
            .header("x-ez-admin-token", token)
            .json(&body)
            .send()
            .expect("answered");
        let status = response.status().as_u16();
        (status, response.json::<serde_json::Value>().expect("JSON"))
    };
    let body = serde_json::json!({ "database": "chain", "out_file": target });
    let (status, reply) = export("wrong", body.clone());
    assert_eq!((status, reply["error"]["code"].as_str()), (401, Some("unauthorized")));
    assert!(!target.exists(), "a refused export writes nothing");
    let (status, reply) = export(
        &token,
        serde_json::json!({ "database": "chain", "out_file": "relative.redb" }),
    );
    assert_eq!(
        (status, reply["error"]["code"].as_str()),
        (400, Some("malformed_request"))
    );
    let (status, reply) = export(&token, serde_json::json!({ "database": "keys", "out_file": target }));
    assert_eq!(
        (status, reply["error"]["code"].as_str()),
        (400, Some("unknown_database"))
    );
    let (status, reply) = export(&token, body.clone());
    assert_eq!(status, 200, "{reply}");
    let height = reply["data"]["height"].as_u64().expect("height");
    assert!(height >= 2);
    let (status, reply) = export(&token, body);
    assert_eq!((status, reply["error"]["code"].as_str()), (409, Some("already_exists")));
    // The copy is a complete database at the reported height, while the node keeps running.
    let (tip, _) =
        ezchain_node::store::ChainStore::export_file(&target, &out.path().join("again.redb")).expect("the copy opens");
    assert_eq!(tip.height, height);
    let (status, reply) = export(
        &token,
        serde_json::json!({ "database": "mailbox", "out_file": out.path().join("mailbox.redb") }),
    );
    assert_eq!(status, 200, "{reply}");
    // A validator hosts no faucet wallet; the bootstrap node exports the one it holds open.
    let (status, reply) = export(
        &token,
        serde_json::json!({ "database": "faucet_wallet", "out_file": out.path().join("faucet.redb") }),
    );
    assert_eq!(
        (status, reply["error"]["code"].as_str()),
        (400, Some("unknown_database"))
    );
    let bootstrap = &net.nodes[net.bootstrap_index()];
    let bootstrap_token =
        std::fs::read_to_string(bootstrap.home.join("data").join("admin.token")).expect("admin.token");
    let faucet_copy = out.path().join("faucet.redb");
    let response = http
        .post(format!("http://{}{}", bootstrap.rpc, paths::ADMIN_EXPORT))
        .header("x-ez-admin-token", bootstrap_token)
        .json(&serde_json::json!({ "database": "faucet_wallet", "out_file": faucet_copy }))
        .send()
        .expect("answered");
    assert_eq!(response.status().as_u16(), 200);
    ezchain_wallet::store::WalletStore::history_of_file(&faucet_copy).expect("the faucet wallet's copy opens");
    net.wait_for_height(0, height + 1, LONG).unwrap();
}

/// The value of an unlabelled metric in Prometheus text (0 when absent).
fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
        .unwrap_or(0.0)
}

#[test]
fn a_second_process_with_a_validators_key_never_signs_and_nothing_forks() {
    let _serial = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let mut net = LocalTestnet::start(binary(), 4, 24150);
    net.wait_for_height(1, 3, LONG).unwrap();

    // The same home twice on one machine: the second process refuses at once.
    let again = net.run_again(1);
    assert!(!again.status.success());
    let stderr = String::from_utf8_lossy(&again.stderr);
    assert!(stderr.contains("error[home_in_use]"), "{stderr}");

    // A copy of validator-1 on "another machine": its key, its sign record and its config, on
    // other ports — as a restore of its home elsewhere would make, while the original runs.
    let original = net.nodes[1].home.clone();
    let copy = original.with_file_name("validator-1-copy");
    std::fs::create_dir_all(copy.join("data")).expect("mkdir");
    std::fs::copy(original.join("node_key.json"), copy.join("node_key.json")).expect("key");
    std::fs::copy(
        original.join("data").join("sign_state.json"),
        copy.join("data").join("sign_state.json"),
    )
    .expect("sign record");
    let yaml = std::fs::read_to_string(original.join("node.yaml")).expect("node.yaml");
    let yaml = yaml
        .replace("listen_addr: 127.0.0.1:24152", "listen_addr: 127.0.0.1:24170")
        .replace("listen_addr: 127.0.0.1:24153", "listen_addr: 127.0.0.1:24171")
        .replace("moniker: validator-1", "moniker: validator-1-copy");
    std::fs::write(copy.join("node.yaml"), yaml).expect("node.yaml");
    let copy_index = net.adopt("validator-1-copy", copy, "127.0.0.1:24171".parse().expect("address"));
    net.start_node(copy_index);
    let start = net.status(0).expect("validator-0").height;
    net.wait_for_height(copy_index, start + 12, LONG)
        .expect("the copy follows the chain");

    let copy_metrics = net.metrics(copy_index).expect("copy metrics");
    assert_eq!(
        metric(&copy_metrics, "ezchain_node_signing_paused"),
        1.0,
        "the copy saw its key in commits it did not sign and signs nothing"
    );
    // Every node holds the same block at every height it has (the bootstrap node, a full node,
    // may trail the validators).
    let top = net.status(0).expect("validator-0").height;
    for index in 0..net.nodes.len() {
        let text = net.metrics(index).expect("metrics");
        assert_eq!(
            metric(&text, "ezchain_node_equivocation_evidence_total"),
            0.0,
            "{} saw conflicting votes",
            net.nodes[index].name
        );
    }
    assert!(net.status(1).is_some(), "the original keeps running and signing");
    for index in 1..net.nodes.len() {
        let height = net.status(index).expect("status").height.min(top);
        assert!(height > start, "{} moved on", net.nodes[index].name);
        for h in 1..=height {
            let (reference, _) = net.block(0, h).unwrap_or_else(|e| panic!("{e}"));
            let (block, _) = net
                .block(index, h)
                .unwrap_or_else(|e| panic!("{e} (status {:?})", net.status(index)));
            assert_eq!(
                block.hash(),
                reference.hash(),
                "{} disagrees at height {h}",
                net.nodes[index].name
            );
        }
    }
}

/// `promtool` with `args`; `false` when it is not installed (outside CI only).
fn promtool(args: &[&std::ffi::OsStr]) -> bool {
    match std::process::Command::new("promtool").args(args).output() {
        Ok(output) => {
            assert!(
                output.status.success(),
                "promtool {args:?}: {}{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            );
            true
        }
        Err(e) => {
            assert!(std::env::var_os("CI").is_none(), "CI must have promtool: {e}");
            eprintln!("promtool not installed: the monitoring kit is not checked");
            false
        }
    }
}

/// The monitoring kit (deploy/): the alert rules pass `promtool check rules` and their own unit
/// tests, the `prometheus.yml` that `testnet init` writes passes `promtool check config` (which
/// loads the rules beside it), and every dashboard query parses as PromQL. (That each metric
/// they name is exported: `crates/cli/tests/service.rs`.)
#[test]
fn the_monitoring_kit_passes_promtool() {
    let deploy = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy");
    let rules = deploy.join("prometheus/alerts.yml");
    if !promtool(&["check".as_ref(), "rules".as_ref(), rules.as_os_str()]) {
        return;
    }
    promtool(&[
        "test".as_ref(),
        "rules".as_ref(),
        deploy.join("prometheus/alerts_test.yml").as_os_str(),
    ]);
    let dir = tempfile::tempdir().expect("temp dir");
    let net = dir.path().join("net");
    let init = std::process::Command::new(binary())
        .args(["testnet", "init", "--validators", "4", "--out"])
        .arg(&net)
        .output()
        .expect("testnet init");
    assert!(init.status.success(), "{}", String::from_utf8_lossy(&init.stderr));
    let config = net.join("monitoring/prometheus.yml");
    promtool(&["check".as_ref(), "config".as_ref(), config.as_os_str()]);
    // The dashboard's queries, as recording rules: promtool parses each one.
    let dashboard: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(deploy.join("grafana/ezchain-dashboard.json")).expect("dashboard"),
    )
    .expect("the dashboard is JSON");
    let exprs: Vec<String> = dashboard["panels"]
        .as_array()
        .expect("panels")
        .iter()
        .flat_map(|panel| panel["targets"].as_array().cloned().unwrap_or_default())
        .map(|target| target["expr"].as_str().expect("every target has an expr").to_string())
        .collect();
    assert!(exprs.len() >= 20, "{} queries", exprs.len());
    let recording = serde_json::json!({
        "groups": [{
            "name": "dashboard",
            "rules": exprs
                .iter()
                .enumerate()
                .map(|(i, expr)| serde_json::json!({ "record": format!("dashboard:query_{i}"), "expr": expr }))
                .collect::<Vec<_>>(),
        }]
    });
    let queries = dir.path().join("dashboard_queries.yml");
    std::fs::write(&queries, recording.to_string()).expect("write");
    promtool(&["check".as_ref(), "rules".as_ref(), queries.as_os_str()]);
}
