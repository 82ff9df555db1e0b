//! `ezchain node start|status|stop`: the local testnet manager, as a user runs it.

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

fn ezchain(dir: &Path, args: &[&str]) -> (bool, Value, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_ezchain"))
        .current_dir(dir)
        .arg("--json")
        .args(args)
        .output()
        .expect("run ezchain");
    let json = serde_json::from_slice(&output.stdout).unwrap_or(Value::Null);
    (
        output.status.success(),
        json,
        String::from_utf8_lossy(&output.stderr).to_string(),
    )
}

/// Stops the testnet whatever happens to the test.
struct StopOnDrop(PathBuf);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        let _ = ezchain(&self.0, &["node", "stop"]);
    }
}

#[test]
fn start_status_stop_and_restart_resume_the_same_chain() {
    let dir = tempfile::tempdir().expect("temp dir");
    let _guard = StopOnDrop(dir.path().to_path_buf());
    let (ok, started, stderr) = ezchain(
        dir.path(),
        &[
            "node",
            "start",
            "--consensus",
            "1",
            "--accounts",
            "1",
            "--start-port",
            "24700",
        ],
    );
    assert!(ok, "{stderr}");
    assert_eq!(started["status"], "started");
    assert_eq!(started["created"], true);
    assert!(
        !stderr.contains("waiting for"),
        "no progress display when stderr is not a terminal: {stderr}"
    );
    let (ok, again, _) = ezchain(dir.path(), &["node", "start"]);
    assert!(ok);
    assert_eq!(again["status"], "already_running");
    // The same layout again is the running testnet; another layout is refused, not ignored.
    let (ok, same, stderr) = ezchain(
        dir.path(),
        &[
            "node",
            "start",
            "--consensus",
            "1",
            "--accounts",
            "1",
            "--start-port",
            "24700",
        ],
    );
    assert!(ok, "{stderr}");
    assert_eq!(same["status"], "already_running");
    let (ok, _, stderr) = ezchain(
        dir.path(),
        &["node", "start", "--consensus", "3", "--start-port", "42000"],
    );
    assert!(!ok);
    assert!(stderr.contains("error[testnet_differs]"), "{stderr}");
    assert!(
        stderr.contains("--consensus 3 (it has 1 validators)") && stderr.contains("ports from 24700"),
        "{stderr}"
    );

    // The wallet config now points at the local bootstrap node: a faucet payment works.
    let (ok, _, stderr) = ezchain(dir.path(), &["wallet", "create", "--password", "password-1"]);
    assert!(ok, "{stderr}");
    let (ok, paid, stderr) = ezchain(
        dir.path(),
        &["tx", "faucet", "--amount", "25", "--password", "password-1"],
    );
    assert!(ok, "{stderr}");
    assert_eq!(paid["available_balance"], 25);

    let (ok, status, _) = ezchain(dir.path(), &["node", "status"]);
    assert!(ok, "all up: exit 0");
    assert_eq!(status["up"], 3);
    assert_eq!(status["nodes"][2]["role"], "account");
    // The account node is a wallet service, funded at genesis.
    let account = dir.path().join(".ezchain/testnet/account-0");
    let password = std::fs::read_to_string(account.join("password")).expect("password");
    let (ok, balance, stderr) = ezchain(
        dir.path(),
        &[
            "--config",
            &account.join("ezchain.yaml").to_string_lossy(),
            "wallet",
            "balance",
            "--password",
            &password,
        ],
    );
    assert!(ok, "{stderr}");
    assert_eq!(balance["available_balance"], 1_000_000);
    let height = |status: &Value| status["nodes"][0]["height"].as_u64().unwrap_or(0);
    let before = height(&status);
    assert!(before >= 1);

    // A node killed behind the manager's back: status fails and names it.
    let pid_file = dir.path().join(".ezchain/testnet/validator-0/node.pid");
    let pid = std::fs::read_to_string(&pid_file).expect("pid file");
    assert!(
        Command::new("kill")
            .args(["-KILL", pid.trim()])
            .status()
            .expect("kill")
            .success()
    );
    std::thread::sleep(std::time::Duration::from_millis(300));
    let (ok, status, _) = ezchain(dir.path(), &["node", "status"]);
    assert!(!ok, "a node is down: non-zero exit");
    assert_eq!(status["nodes"][0]["alive"], false);

    // Stop, start: the same chain continues from where it was.
    let (ok, stopped, _) = ezchain(dir.path(), &["node", "stop"]);
    assert!(ok);
    assert_eq!(stopped["stopped"], serde_json::json!(["bootstrap", "account-0"]));
    let (ok, _, _) = ezchain(dir.path(), &["node", "stop"]);
    assert!(ok, "stop is idempotent");
    // On a terminal (`script` gives it one, where installed) the wait shows what it awaits.
    if Command::new("script").arg("--version").output().is_ok() {
        let line = format!("{} --json node start", env!("CARGO_BIN_EXE_ezchain"));
        let output = Command::new("script")
            .args(["-qec", &line, "/dev/null"])
            .current_dir(dir.path())
            .output()
            .expect("script runs");
        let terminal = String::from_utf8_lossy(&output.stdout);
        assert!(output.status.success(), "{terminal}");
        assert!(terminal.contains("ready; waiting for"), "{terminal}");
        assert!(terminal.contains("\"created\": false"), "{terminal}");
    } else {
        let (ok, restarted, stderr) = ezchain(dir.path(), &["node", "start"]);
        assert!(ok, "{stderr}");
        assert_eq!(restarted["created"], false);
    }
    let (ok, status, _) = ezchain(dir.path(), &["node", "status"]);
    assert!(ok);
    assert!(
        height(&status) >= before,
        "resumed at {} after {before}",
        height(&status)
    );
    let (ok, balance, _) = ezchain(dir.path(), &["wallet", "balance", "--password", "password-1"]);
    assert!(ok);
    assert_eq!(
        balance["available_balance"], 25,
        "the wallet's value survived the restart"
    );
}
