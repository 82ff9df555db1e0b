//! `ezchain network join|info|check`: a wallet in a folder of its own joins a running testnet
//! from one node's address, as a user on another machine would, and pays from there.

use ezchain_rpc::paths;
use ezchain_testkit::LocalTestnet;
use serde_json::Value;
use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

const LONG: Duration = Duration::from_secs(60);

fn ezchain(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ezchain"))
        .current_dir(dir)
        .args(args)
        .env("EZCHAIN_PASSWORD", "joined-wallet-1")
        .output()
        .expect("run ezchain")
}

fn json(output: &Output) -> Value {
    serde_json::from_slice(&output.stdout).unwrap_or(Value::Null)
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).to_string()
}

#[test]
fn a_wallet_joins_a_testnet_by_one_nodes_address_checks_its_genesis_and_pays() {
    let net = LocalTestnet::start(Path::new(env!("CARGO_BIN_EXE_ezchain")), 1, 24730);
    let bootstrap = net.bootstrap_index();
    net.wait_for_height(bootstrap, 1, LONG).expect("the testnet finalizes");
    let node = net.nodes[bootstrap].rpc.to_string();
    let hash = net.genesis.hash().to_string();

    // The node serves its genesis.
    let served: Value = reqwest::blocking::get(format!("http://{node}{}", paths::GENESIS))
        .expect("GET /v1/genesis")
        .json()
        .expect("json");
    assert_eq!(served["data"]["genesis_hash"], hash);

    let dir = tempfile::tempdir().expect("temp dir");
    let here = dir.path();
    // Off a terminal, without the hash: refused, the hash shown, nothing written.
    let unchecked = ezchain(here, &["network", "join", "--bootstrap", &node]);
    assert_eq!(unchecked.status.code(), Some(1));
    assert!(
        stderr(&unchecked).contains("error[genesis_hash_required]"),
        "{}",
        stderr(&unchecked)
    );
    assert!(stderr(&unchecked).contains(&hash), "the hash to compare is shown");
    assert!(!here.join("genesis.json").exists() && !here.join("ezchain.yaml").exists());
    // A hash that is not the testnet's: refused.
    let wrong = format!("0x{}", "ab".repeat(32));
    let mismatch = ezchain(
        here,
        &["network", "join", "--bootstrap", &node, "--genesis-hash", &wrong],
    );
    assert!(
        stderr(&mismatch).contains("error[genesis_mismatch]"),
        "{}",
        stderr(&mismatch)
    );
    assert!(!here.join("genesis.json").exists());
    // The right one: the genesis and the config are written.
    let joined = ezchain(
        here,
        &[
            "--json",
            "network",
            "join",
            "--bootstrap",
            &node,
            "--genesis-hash",
            &hash,
        ],
    );
    assert!(joined.status.success(), "{}", stderr(&joined));
    assert_eq!(json(&joined)["chain_id"], net.genesis.chain_id);
    let written = ezchain_host::genesis_file::load_genesis(&here.join("genesis.json")).expect("genesis written");
    assert_eq!(written.hash(), net.genesis.hash());
    let again = ezchain(
        here,
        &["network", "join", "--bootstrap", &node, "--genesis-hash", &hash],
    );
    assert!(again.status.success(), "joining twice is harmless: {}", stderr(&again));

    let checked = ezchain(here, &["--json", "network", "check"]);
    assert!(checked.status.success(), "{}", stderr(&checked));
    let report = json(&checked);
    assert_eq!(report["usable"], 1);
    assert_eq!(report["nodes"][0]["same_genesis"], true);
    let info = ezchain(here, &["--json", "network", "info"]);
    assert!(info.status.success(), "{}", stderr(&info));
    let info = json(&info)["info"].clone();
    assert_eq!(info["chain_id"], net.genesis.chain_id);
    assert!(info["height"].as_u64().is_some_and(|h| h >= 1));
    assert_eq!(
        info["validators_signing"], 1,
        "the tip's certificate checks against the genesis"
    );

    // The joined wallet works: it is paid by the faucet and verifies the payment.
    let created = ezchain(here, &["wallet", "create"]);
    assert!(created.status.success(), "{}", stderr(&created));
    let paid = ezchain(here, &["--json", "tx", "faucet", "--amount", "40"]);
    assert!(paid.status.success(), "{}", stderr(&paid));
    assert_eq!(json(&paid)["available_balance"], 40);

    // A fresh folder on defaults (no devnet started, nothing joined) says which command to run.
    let fresh = tempfile::tempdir().expect("temp dir");
    assert!(ezchain(fresh.path(), &["wallet", "create"]).status.success());
    let lonely = ezchain(fresh.path(), &["wallet", "balance"]);
    let said = stderr(&lonely);
    assert!(
        said.contains("error[bad_genesis]") && said.contains("node start") && said.contains("network join"),
        "{said}"
    );

    // A folder whose only node is down: check says so and fails.
    let lost = tempfile::tempdir().expect("temp dir");
    std::fs::write(
        lost.path().join("ezchain.yaml"),
        "network:\n  bootstrap_nodes: [\"127.0.0.1:24739\"]\n",
    )
    .expect("config");
    let down = ezchain(lost.path(), &["network", "check"]);
    assert_eq!(down.status.code(), Some(1));
    assert!(stderr(&down).contains("error[no_usable_node]"), "{}", stderr(&down));
    // Another testnet's genesis in the folder: joining this one is refused, nothing replaced.
    let other = tempfile::tempdir().expect("temp dir");
    let mut foreign = net.genesis.clone();
    foreign.chain_id += 1;
    std::fs::write(
        other.path().join("genesis.json"),
        serde_json::to_string(&foreign).expect("json"),
    )
    .expect("foreign genesis");
    let refused = ezchain(
        other.path(),
        &["network", "join", "--bootstrap", &node, "--genesis-hash", &hash],
    );
    assert!(
        stderr(&refused).contains("error[genesis_differs]"),
        "{}",
        stderr(&refused)
    );
}
