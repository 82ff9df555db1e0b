//! The binary's promises to a newcomer: `--version` and `--help` work, and a bare call explains
//! itself instead of doing nothing.

use std::process::Command;

fn ezchain(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_ezchain"))
        .args(args)
        .output()
        .expect("the binary runs")
}

#[test]
fn version_and_help() {
    let version = ezchain(&["--version"]);
    assert!(version.status.success());
    let text = String::from_utf8_lossy(&version.stdout);
    assert!(text.starts_with("ezchain "), "{text}");
    // The version, the git commit and its date (build.rs), as docs/RUNBOOK.md §2 reads them.
    assert!(text.contains(" (commit ") && text.trim_end().ends_with(')'), "{text}");
    let help = ezchain(&["--help"]);
    assert!(help.status.success());
    assert!(String::from_utf8_lossy(&help.stdout).contains("Usage: ezchain"));
}

#[test]
fn bare_call_prints_usage_and_fails() {
    let bare = ezchain(&[]);
    assert!(!bare.status.success());
    assert!(String::from_utf8_lossy(&bare.stderr).contains("Usage: ezchain"));
}

#[test]
fn testnet_init_writes_a_testnet_and_refuses_to_overwrite_it() {
    let dir = tempfile::tempdir().expect("temp dir");
    let out = dir.path().join("net");
    let out_str = out.to_str().expect("utf-8 path");
    let first = ezchain(&["testnet", "init", "--validators", "4", "--out", out_str, "--json"]);
    assert!(first.status.success(), "{}", String::from_utf8_lossy(&first.stderr));
    let layout: serde_json::Value = serde_json::from_slice(&first.stdout).expect("JSON layout");
    assert_eq!(layout["nodes"].as_array().map(Vec::len), Some(5));
    for name in ["validator-0", "validator-3", "bootstrap"] {
        assert!(out.join(name).join("node.yaml").is_file());
        assert!(out.join(name).join("node_key.json").is_file());
    }
    assert!(out.join("bootstrap").join("faucet_keystore.json").is_file());
    assert!(out.join("bootstrap").join("faucet_password").is_file());
    let again = ezchain(&["testnet", "init", "--validators", "1", "--out", out_str]);
    assert_eq!(again.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&again.stderr).starts_with("error[output_not_empty]"));
}

#[test]
fn testnet_init_rejects_bad_input_with_a_code() {
    let dir = tempfile::tempdir().expect("temp dir");
    let out = dir.path().join("devnet");
    let out_str = out.to_str().expect("utf-8 path");
    let bad_alloc = ezchain(&[
        "testnet",
        "init",
        "--validators",
        "1",
        "--out",
        out_str,
        "--alloc",
        "0xnope=5",
    ]);
    assert_eq!(bad_alloc.status.code(), Some(2), "clap usage error");
    let zero = ezchain(&["testnet", "init", "--validators", "0", "--out", out_str]);
    assert!(String::from_utf8_lossy(&zero.stderr).starts_with("error[bad_validator_count]"));
    // A compose network is its own inventory: --hosts beside it is refused, nothing written.
    let both = ezchain(&[
        "testnet",
        "init",
        "--validators",
        "1",
        "--out",
        out_str,
        "--compose",
        "--hosts",
        "10.0.0.1,10.0.0.2",
    ]);
    assert_eq!(both.status.code(), Some(2), "clap usage error");
    assert!(!out.exists());
    let short = ezchain(&[
        "testnet",
        "init",
        "--validators",
        "4",
        "--out",
        out_str,
        "--hosts",
        "10.0.0.1",
    ]);
    assert!(String::from_utf8_lossy(&short.stderr).starts_with("error[bad_host_count]"));
    assert!(!out.exists());
    let ok = ezchain(&[
        "testnet",
        "init",
        "--validators",
        "1",
        "--out",
        out_str,
        "--alloc",
        "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed=250",
    ]);
    assert!(ok.status.success(), "{}", String::from_utf8_lossy(&ok.stderr));
    let genesis: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("genesis.json")).expect("genesis")).expect("JSON");
    assert_eq!(
        genesis["allocations"][1]["range"]["end"],
        serde_json::json!(1_000_000_249u64)
    );
}

#[test]
fn a_node_whose_p2p_or_rpc_address_is_taken_stops_at_once_naming_it() {
    let dir = tempfile::tempdir().expect("temp dir");
    let out = dir.path().join("net");
    let init = ezchain(&[
        "testnet",
        "init",
        "--validators",
        "1",
        "--start-port",
        "24700",
        "--out",
        out.to_str().expect("utf-8 path"),
        "--json",
    ]);
    assert!(init.status.success(), "{}", String::from_utf8_lossy(&init.stderr));
    let layout: serde_json::Value = serde_json::from_slice(&init.stdout).expect("JSON layout");
    let node = &layout["nodes"][0];
    let home = node["home"].as_str().expect("home");
    for (field, code) in [("p2p_addr", "p2p_listen_failed"), ("rpc_addr", "rpc_listen_failed")] {
        let addr = node[field].as_str().unwrap_or_else(|| panic!("{field} in {node}"));
        let _taken = std::net::TcpListener::bind(addr).expect("take the port");
        let started = std::time::Instant::now();
        let run = ezchain(&["node", "run", "--home", home]);
        assert!(!run.status.success());
        let stderr = String::from_utf8_lossy(&run.stderr);
        assert!(stderr.contains(&format!("error[{code}]")), "{stderr}");
        assert!(stderr.contains(addr), "the error names {addr}: {stderr}");
        assert!(
            started.elapsed() < std::time::Duration::from_secs(30),
            "it stopped at start"
        );
    }
}

/// Stops the node it holds however the test ends.
struct Running(std::process::Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn metrics_listen_addr_moves_metrics_off_the_rpc_port() {
    let dir = tempfile::tempdir().expect("temp dir");
    let out = dir.path().join("net");
    let init = ezchain(&[
        "testnet",
        "init",
        "--validators",
        "1",
        "--start-port",
        "24750",
        "--out",
        out.to_str().expect("utf-8 path"),
        "--json",
    ]);
    assert!(init.status.success(), "{}", String::from_utf8_lossy(&init.stderr));
    let layout: serde_json::Value = serde_json::from_slice(&init.stdout).expect("JSON layout");
    let node = &layout["nodes"][0];
    let home = std::path::PathBuf::from(node["home"].as_str().expect("home"));
    let rpc = node["rpc_addr"].as_str().expect("rpc_addr").to_string();
    let metrics_addr = "127.0.0.1:24759";
    let config = home.join("node.yaml");
    let mut yaml = std::fs::read_to_string(&config).expect("node.yaml");
    yaml.push_str(&format!("metrics:\n  listen_addr: {metrics_addr}\n"));
    std::fs::write(&config, yaml).expect("write node.yaml");

    // Taken, it stops the node at start, named.
    {
        let _taken = std::net::TcpListener::bind(metrics_addr).expect("take the port");
        let run = ezchain(&["node", "run", "--home", home.to_str().expect("utf-8")]);
        assert!(!run.status.success());
        let stderr = String::from_utf8_lossy(&run.stderr);
        assert!(stderr.contains("error[metrics_listen_failed]"), "{stderr}");
        assert!(stderr.contains(metrics_addr), "{stderr}");
    }

    let _node = Running(
        Command::new(env!("CARGO_BIN_EXE_ezchain"))
            .args(["node", "run", "--home"])
            .arg(&home)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("the node starts"),
    );
    let client = reqwest::blocking::Client::builder()
        .timeout(std::time::Duration::from_secs(5))
        .build()
        .expect("client");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let exported = loop {
        if let Ok(answer) = client.get(format!("http://{metrics_addr}/metrics")).send()
            && answer.status().is_success()
        {
            let text = answer.text().expect("text");
            let height = text
                .lines()
                .find_map(|line| line.strip_prefix("ezchain_node_height "))
                .and_then(|value| value.trim().parse::<u64>().ok());
            if height.is_some_and(|height| height >= 1) {
                break text;
            }
        }
        assert!(std::time::Instant::now() < deadline, "no metrics on {metrics_addr}");
        std::thread::sleep(std::time::Duration::from_millis(250));
    };
    assert!(exported.contains("ezchain_node_mempool_capacity 10000"), "{exported}");
    assert!(
        exported.contains("ezchain_node_validator_missed_commits{validator=\"validator-0\"} 0"),
        "the one validator signs every commit: {exported}"
    );
    // The RPC port no longer serves them, and says where they went.
    let on_rpc = client.get(format!("http://{rpc}/metrics")).send().expect("rpc answers");
    assert_eq!(on_rpc.status().as_u16(), 404);
    let refusal: serde_json::Value = on_rpc.json().expect("JSON");
    assert_eq!(refusal["error"]["code"], "not_found");
    assert!(
        refusal["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("metrics.listen_addr")),
        "{refusal}"
    );
    assert!(
        client
            .get(format!("http://{rpc}/status"))
            .send()
            .expect("rpc")
            .status()
            .is_success()
    );
    // The metrics listener serves nothing else.
    let status = client
        .get(format!("http://{metrics_addr}/status"))
        .send()
        .expect("answers");
    assert_eq!(status.status().as_u16(), 404);
}

#[test]
fn a_one_shot_command_whose_reader_has_gone_ends_quietly() {
    use std::os::unix::process::ExitStatusExt;
    let dir = tempfile::tempdir().expect("temp dir");
    let out = dir.path().join("net");
    let mut child = Command::new(env!("CARGO_BIN_EXE_ezchain"))
        .args(["--json", "testnet", "init", "--validators", "1", "--out"])
        .arg(&out)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("the binary runs");
    // The reader goes away before the command prints (as `| head -c0` would).
    drop(child.stdout.take());
    let output = child.wait_with_output().expect("wait");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_ne!(output.status.code(), Some(101), "no panic exit");
    assert_eq!(output.status.signal(), Some(13), "ended by SIGPIPE, as `head` expects");
}

#[test]
fn an_explicit_config_that_does_not_exist_is_refused_and_only_the_default_may_be_absent() {
    let dir = tempfile::tempdir().expect("temp dir");
    let typo = dir.path().join("ezchian.yaml");
    let typo_str = typo.to_str().expect("utf-8 path");
    // A typo in --config: refused before anything runs — no testnet, no data folder.
    for args in [
        vec!["--config", typo_str, "node", "start"],
        vec!["--config", typo_str, "wallet", "show"],
        vec!["--config", typo_str, "--json", "tx", "history"],
    ] {
        let refused = ezchain(&args);
        assert!(!refused.status.success(), "{args:?}");
        let stderr = String::from_utf8_lossy(&refused.stderr);
        assert!(stderr.contains("error[config_not_found]"), "{args:?}: {stderr}");
        assert!(stderr.contains("ezchian.yaml"), "{stderr}");
    }
    assert_eq!(
        std::fs::read_dir(dir.path()).expect("dir").count(),
        0,
        "nothing was created"
    );
    // With --json the failure is also a JSON object on stdout, where scripts read.
    let json = ezchain(&["--config", typo_str, "--json", "wallet", "show"]);
    assert!(!json.status.success());
    let object: serde_json::Value = serde_json::from_slice(&json.stdout).expect("a JSON error on stdout");
    assert_eq!(object["ok"], false);
    assert_eq!(object["error"]["code"], "config_not_found");
    assert!(
        object["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("ezchian.yaml"))
    );
    assert!(object["error"]["hint"].is_string());
    // An empty file named with --config is a config that sets nothing.
    let empty = dir.path().join("empty.yaml");
    std::fs::write(&empty, "").expect("empty config");
    let shown = Command::new(env!("CARGO_BIN_EXE_ezchain"))
        .args(["--config", empty.to_str().expect("utf-8"), "wallet", "show"])
        .output()
        .expect("runs");
    let stderr = String::from_utf8_lossy(&shown.stderr);
    assert!(
        !stderr.contains("config_not_found") && !stderr.contains("bad_config"),
        "{stderr}"
    );
    // Without --config the default ./ezchain.yaml may be absent.
    let default = Command::new(env!("CARGO_BIN_EXE_ezchain"))
        .current_dir(dir.path())
        .args(["wallet", "show"])
        .output()
        .expect("runs");
    let stderr = String::from_utf8_lossy(&default.stderr);
    assert!(
        !stderr.contains("config_not_found") && !stderr.contains("bad_config"),
        "{stderr}"
    );
}

/// Runs the binary in `dir` with `env` set (and EZCHAIN_PASSWORD cleared unless given).
fn ezchain_in(dir: &std::path::Path, args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_ezchain"));
    command
        .current_dir(dir)
        .args(args)
        .env_remove("EZCHAIN_PASSWORD")
        .stdin(std::process::Stdio::null());
    for (name, value) in env {
        command.env(name, value);
    }
    command.output().expect("runs")
}

fn error_code(output: &std::process::Output) -> String {
    let stderr = String::from_utf8_lossy(&output.stderr);
    stderr
        .split("error[")
        .nth(1)
        .and_then(|rest| rest.split(']').next())
        .unwrap_or("")
        .to_string()
}

#[test]
fn passwords_come_from_a_file_or_the_environment_never_only_the_command_line_and_are_long_enough() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path();
    std::fs::write(path.join("ezchain.yaml"), "wallet:\n  scrypt_log_n: 4\n").expect("config");
    // No password and no terminal: asked for, not guessed.
    let none = ezchain_in(path, &["wallet", "create"], &[]);
    assert_eq!(
        error_code(&none),
        "password_required",
        "{}",
        String::from_utf8_lossy(&none.stderr)
    );
    // Too short for a new wallet, however it is given; nothing is written.
    let short = ezchain_in(path, &["wallet", "create", "--password", "seven77"], &[]);
    assert_eq!(error_code(&short), "password_too_short");
    assert!(!path.join(".ezchain").join("wallet.json").exists());
    // From a file (its first line).
    std::fs::write(path.join("pass.txt"), "correct-horse\n").expect("password file");
    let created = ezchain_in(
        path,
        &["--json", "wallet", "create", "--password-file", "pass.txt"],
        &[],
    );
    assert!(created.status.success(), "{}", String::from_utf8_lossy(&created.stderr));
    // The wallet's creation time reads as RFC 3339, not seconds in a string.
    let shown = ezchain_in(path, &["--json", "wallet", "show"], &[]);
    let shown: serde_json::Value = serde_json::from_slice(&shown.stdout).expect("JSON");
    let created_at = shown["created_at"].as_str().unwrap_or("");
    assert!(
        created_at.len() == 20 && created_at.ends_with('Z') && created_at.as_bytes()[10] == b'T',
        "{created_at}"
    );
    // From the environment: the wrong one is refused as such, the right one opens the wallet
    // (the command then stops at the missing genesis, past the key).
    let wrong = ezchain_in(path, &["tx", "receive"], &[("EZCHAIN_PASSWORD", "not-the-password")]);
    assert_eq!(error_code(&wrong), "wrong_password");
    let right = ezchain_in(path, &["tx", "receive"], &[("EZCHAIN_PASSWORD", "correct-horse")]);
    assert_eq!(
        error_code(&right),
        "bad_genesis",
        "{}",
        String::from_utf8_lossy(&right.stderr)
    );
    let from_file = ezchain_in(path, &["tx", "receive", "--password-file", "pass.txt"], &[]);
    assert_eq!(error_code(&from_file), "bad_genesis");
    // A file named on the command line wins over the environment.
    let both = ezchain_in(
        path,
        &["tx", "receive", "--password-file", "pass.txt"],
        &[("EZCHAIN_PASSWORD", "not-the-password")],
    );
    assert_eq!(
        error_code(&both),
        "bad_genesis",
        "{}",
        String::from_utf8_lossy(&both.stderr)
    );
    let missing_file = ezchain_in(path, &["tx", "receive", "--password-file", "absent.txt"], &[]);
    assert_eq!(error_code(&missing_file), "password_file_unreadable");
}

#[test]
fn on_a_terminal_the_password_is_asked_twice_for_a_new_wallet() {
    // `script` (util-linux) gives the command a terminal; without it there is nothing to test.
    if Command::new("script").arg("--version").output().is_err() {
        eprintln!("script(1) not installed: the prompt was not tried");
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(dir.path().join("ezchain.yaml"), "wallet:\n  scrypt_log_n: 4\n").expect("config");
    let typed = |first: &str, second: &str| {
        let line = format!(
            "(sleep 1; printf '{first}\\n'; sleep 1; printf '{second}\\n'; sleep 3) | script -qec '{} --json wallet create' /dev/null",
            env!("CARGO_BIN_EXE_ezchain")
        );
        let output = Command::new("sh")
            .arg("-c")
            .arg(line)
            .current_dir(dir.path())
            .env_remove("EZCHAIN_PASSWORD")
            .output()
            .expect("sh runs");
        String::from_utf8_lossy(&output.stdout).to_string()
    };
    let differ = typed("correct-horse", "correct-hose");
    assert!(differ.contains("passwords_differ"), "{differ}");
    assert!(!dir.path().join(".ezchain").join("wallet.json").exists());
    let created = typed("correct-horse", "correct-horse");
    assert!(created.contains("\"mnemonic\""), "{created}");
    assert!(
        !created.contains("correct-horse"),
        "the password is not echoed: {created}"
    );
    assert!(dir.path().join(".ezchain").join("wallet.json").exists());
}

#[test]
fn the_runbooks_gates_pass_in_an_installation_folder_without_a_source_checkout() {
    // An operator's installation: a config and nothing of the source tree.
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(dir.path().join("ezchain.yaml"), "wallet:\n  scrypt_log_n: 18\n").expect("config");
    let security = ezchain_in(dir.path(), &["ops", "security-gate"], &[]);
    let stdout = String::from_utf8_lossy(&security.stdout);
    assert!(
        security.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&security.stderr)
    );
    assert!(
        !stdout.contains("threat_model"),
        "no source checks without a source tree: {stdout}"
    );
    // The release gate checks the installation: smoke and security gate, no cargo.
    let release = ezchain_in(
        dir.path(),
        &["ops", "release-gate", "--skip-slow", "--start-port", "25700"],
        &[],
    );
    let stdout = String::from_utf8_lossy(&release.stdout);
    let stderr = String::from_utf8_lossy(&release.stderr);
    assert!(release.status.success(), "{stdout}{stderr}");
    assert!(
        !stdout.contains("[release-gate] tests"),
        "no tests without --source-dir: {stdout}"
    );
    assert!(stdout.contains("PASSED"), "{stdout}");
    // Naming a folder that is not a checkout as the source tree fails the tests step, clearly.
    let named = ezchain_in(
        dir.path(),
        &[
            "ops",
            "release-gate",
            "--skip-slow",
            "--source-dir",
            ".",
            "--start-port",
            "25700",
        ],
        &[],
    );
    let stdout = String::from_utf8_lossy(&named.stdout);
    assert!(!named.status.success());
    assert!(stdout.contains("not the source tree"), "{stdout}");
}

#[test]
fn logs_have_no_colour_codes_off_a_terminal_and_json_is_one_object_a_line() {
    for (format, port) in [("text", "24710"), ("json", "24711")] {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::write(dir.path().join("ezchain.yaml"), format!("app:\n  api_port: {port}\n")).expect("config");
        let log = std::fs::File::create(dir.path().join("serve.log")).expect("log file");
        let mut serve = Command::new(env!("CARGO_BIN_EXE_ezchain"))
            .current_dir(dir.path())
            .args(["--log-format", format, "serve"])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(log)
            .spawn()
            .expect("serve starts");
        // The listening line is logged at start; wait for it.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        let text = loop {
            let text = std::fs::read_to_string(dir.path().join("serve.log")).unwrap_or_default();
            if text.contains("listening") || std::time::Instant::now() > deadline {
                break text;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        };
        let _ = serve.kill();
        let _ = serve.wait();
        assert!(text.contains("listening"), "{format}: {text}");
        assert!(
            !text.contains('\u{1b}'),
            "{format}: escape codes in a log file: {text:?}"
        );
        if format == "json" {
            for line in text.lines().filter(|l| !l.trim().is_empty()) {
                let object: serde_json::Value =
                    serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
                assert!(object["level"].is_string() && object["fields"].is_object(), "{line}");
            }
        }
    }
}

#[test]
fn config_show_names_where_each_setting_came_from_and_validate_refuses_a_bad_file() {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(dir.path().join("ezchain.yaml"), "app:\n  api_port: 9999\n").expect("config");
    let shown = ezchain_in(dir.path(), &["--json", "config", "show"], &[]);
    assert!(shown.status.success(), "{}", String::from_utf8_lossy(&shown.stderr));
    let shown: serde_json::Value = serde_json::from_slice(&shown.stdout).expect("JSON");
    let setting = |key: &str| {
        shown["settings"]
            .as_array()
            .and_then(|rows| rows.iter().find(|row| row["key"] == key))
            .cloned()
            .unwrap_or_else(|| panic!("{key} in {shown}"))
    };
    assert_eq!(setting("app.api_port")["value"], 9999);
    assert_eq!(setting("app.api_port")["from"], "file");
    assert_eq!(setting("app.api_host")["from"], "default");
    assert!(ezchain_in(dir.path(), &["config", "validate"], &[]).status.success());
    std::fs::write(dir.path().join("bad.yaml"), "app:\n  bogus: 1\n").expect("bad config");
    let refused = ezchain_in(dir.path(), &["--config", "bad.yaml", "config", "validate"], &[]);
    assert_eq!(error_code(&refused), "bad_config");
    assert!(String::from_utf8_lossy(&refused.stderr).contains("bogus"));
}

#[test]
fn completions_and_the_manual_page_are_generated_from_the_commands() {
    let bash = ezchain(&["completions", "bash"]);
    assert!(bash.status.success());
    let script = String::from_utf8_lossy(&bash.stdout);
    assert!(
        script.contains("_ezchain") && script.contains("--recipient"),
        "{script}"
    );
    let man = ezchain(&["man"]);
    assert!(man.status.success());
    let page = String::from_utf8_lossy(&man.stdout);
    assert!(
        page.contains(".TH ezchain 1") && page.contains("recipients verify"),
        "{page}"
    );
}

#[test]
fn a_second_serve_on_one_data_folder_says_another_serve_runs() {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(dir.path().join("ezchain.yaml"), "app:\n  api_port: 24712\n").expect("config");
    let log = std::fs::File::create(dir.path().join("first.log")).expect("log");
    let mut first = Command::new(env!("CARGO_BIN_EXE_ezchain"))
        .current_dir(dir.path())
        .arg("serve")
        .stdin(std::process::Stdio::null())
        .stderr(log)
        .spawn()
        .expect("serve");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !std::fs::read_to_string(dir.path().join("first.log"))
        .unwrap_or_default()
        .contains("listening")
    {
        assert!(std::time::Instant::now() < deadline, "the first serve did not start");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let second = ezchain_in(dir.path(), &["serve"], &[]);
    let _ = first.kill();
    let _ = first.wait();
    assert_eq!(
        error_code(&second),
        "service_in_use",
        "{}",
        String::from_utf8_lossy(&second.stderr)
    );
    assert!(String::from_utf8_lossy(&second.stderr).contains("another `ezchain serve`"));
}

/// deploy/systemd's units pass `systemd-analyze verify` (no warning either: an unknown or
/// misspelt key is only a warning there) and keep an exposure level of at most 2.5 in
/// `systemd-analyze security`. The units name `/usr/local/bin/ezchain`; the checked copies name
/// this build's binary, which verify requires to exist.
#[test]
fn the_systemd_units_verify_and_stay_hardened() {
    if Command::new("systemd-analyze").arg("--version").output().is_err() {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must have systemd-analyze (Debian's systemd package)"
        );
        eprintln!("systemd-analyze not installed: the units are not checked");
        return;
    }
    let units = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/systemd");
    let dir = tempfile::tempdir().expect("temp dir");
    for (source, checked) in [
        ("ezchain-node@.service", "ezchain-node@validator-0.service"),
        ("ezchain-wallet.service", "ezchain-wallet.service"),
    ] {
        let text = std::fs::read_to_string(units.join(source)).expect("unit");
        for needed in [
            "ProtectSystem=strict",
            "ReadWritePaths=",
            "Restart=on-failure",
            "LimitNOFILE=",
            "User=",
        ] {
            assert!(text.contains(needed), "{source} lacks {needed}");
        }
        let path = dir.path().join(checked);
        std::fs::write(
            &path,
            text.replace("/usr/local/bin/ezchain", env!("CARGO_BIN_EXE_ezchain")),
        )
        .expect("write unit");
        let verify = Command::new("systemd-analyze")
            .arg("verify")
            .arg(&path)
            .output()
            .expect("systemd-analyze");
        let said = String::from_utf8_lossy(&verify.stderr).to_string() + &String::from_utf8_lossy(&verify.stdout);
        let about_it: Vec<&str> = said.lines().filter(|line| line.contains(checked)).collect();
        assert!(
            verify.status.success() && about_it.is_empty(),
            "systemd-analyze verify {source}: {said}"
        );
        let security = Command::new("systemd-analyze")
            .args(["security", "--offline=true", "--threshold=25"])
            .arg(&path)
            .output()
            .expect("systemd-analyze");
        assert!(
            security.status.success(),
            "{source} is exposed: {}",
            String::from_utf8_lossy(&security.stdout)
        );
    }
}
