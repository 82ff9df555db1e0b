//! The runbook drill: `ezchain ops drill` runs every command of docs/RUNBOOK.md against a fresh
//! local testnet (three validators, bootstrap, account node, wallet service). This test runs it
//! and checks that the transcript really covers every command the runbook shows, with its
//! flags, so the runbook cannot drift from what is exercised.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::Duration;

/// The drill and the stability gate each run a testnet; one at a time on a 2-core machine.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .expect("the workspace root above crates/cli")
        .to_path_buf()
}

/// The commands in the runbook's ```sh blocks that start with `ezchain` or `curl`, comments cut.
fn runbook_commands(text: &str) -> Vec<String> {
    let mut commands = Vec::new();
    let mut in_block = false;
    for line in text.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with("```") {
            in_block = trimmed == "```sh";
            continue;
        }
        if !in_block {
            continue;
        }
        let command = trimmed.split(" #").next().unwrap_or("").trim();
        if command.starts_with("ezchain ") || command.starts_with("curl ") {
            commands.push(command.to_string());
        }
    }
    commands
}

/// The subcommand words and the `--flag` names of an `ezchain` command line (global
/// `--config FILE` removed).
fn shape(words: &[&str]) -> (Vec<String>, Vec<String>) {
    let mut path = Vec::new();
    let mut flags = Vec::new();
    let mut index = 0;
    while index < words.len() {
        let word = words[index];
        if word == "--config" {
            index += 2;
            continue;
        }
        if let Some(flag) = word.strip_prefix("--") {
            flags.push(flag.to_string());
        } else if flags.is_empty() && path.len() < 2 && word.chars().all(|c| c.is_ascii_lowercase() || c == '-') {
            path.push(word.to_string());
        }
        index += 1;
    }
    (path, flags)
}

#[test]
fn the_drill_passes_and_exercises_every_runbook_command() {
    let _serial = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let root = workspace_root();
    let runbook = std::fs::read_to_string(root.join("docs/RUNBOOK.md")).expect("docs/RUNBOOK.md");
    let commands = runbook_commands(&runbook);
    assert!(
        commands.len() >= 15,
        "the runbook's commands were not found: {commands:?}"
    );

    let dir = tempfile::tempdir().expect("temp dir");
    let drill_dir = dir.path().join("drill");
    let mut child = Command::new(env!("CARGO_BIN_EXE_ezchain"))
        .args(["ops", "drill", "--start-port", "25000", "--canary-seconds", "6"])
        .arg("--dir")
        .arg(&drill_dir)
        .arg("--source-dir")
        .arg(&root)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the drill");
    let mut stdout = child.stdout.take().expect("stdout");
    let mut stderr = child.stderr.take().expect("stderr");
    let out_reader = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stdout.read_to_string(&mut text);
        text
    });
    let err_reader = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text);
        text
    });
    let status = ezchain_testkit::wait_or_kill(&mut child, Duration::from_secs(900));
    let out = out_reader.join().expect("stdout reader");
    let transcript = err_reader.join().expect("stderr reader");
    // Whatever happened, no testnet of the drill may outlive the test.
    let _ = Command::new(env!("CARGO_BIN_EXE_ezchain"))
        .arg("--config")
        .arg(drill_dir.join("ezchain.yaml"))
        .args(["node", "stop"])
        .output();
    let status = status.unwrap_or_else(|| panic!("the drill ran past 15 minutes:\n{transcript}"));
    assert!(status.success(), "the drill failed:\n{out}\n{transcript}");
    assert!(out.trim_end().ends_with("PASSED"), "{out}");

    let missing = uncovered(&commands, &transcript);
    assert!(
        missing.is_empty(),
        "the drill never ran {missing:?}; transcript:\n{transcript}"
    );
}

/// The runbook commands no `$ …` line of the transcript covers (same subcommand, at least the
/// same flags; for `curl`, the same path).
fn uncovered(commands: &[String], transcript: &str) -> Vec<String> {
    let ran: Vec<Vec<&str>> = transcript
        .lines()
        .filter_map(|line| line.strip_prefix("$ "))
        .map(|line| line.split_whitespace().collect())
        .collect();
    let mut missing = Vec::new();
    for command in commands {
        let words: Vec<&str> = command.split_whitespace().collect();
        let covered = if words[0] == "curl" {
            let path = words[1].split("8787").nth(1).unwrap_or(words[1]);
            ran.iter()
                .any(|line| line.first() == Some(&"curl") && line.get(1).is_some_and(|url| url.ends_with(path)))
        } else {
            let (path, flags) = shape(&words[1..]);
            // The test's own run of `ezchain ops drill`.
            path == ["ops", "drill"]
                || ran.iter().filter(|line| line.first() == Some(&"ezchain")).any(|line| {
                    let (ran_path, ran_flags) = shape(&line[1..]);
                    ran_path == path && flags.iter().all(|flag| ran_flags.contains(flag))
                })
        };
        if !covered {
            missing.push(command.clone());
        }
    }
    missing
}

#[test]
fn runbook_commands_are_read_with_their_flags() {
    let text = "intro `ezchain not-this`\n```sh\nezchain ops backup --out-dir b --label x   # note\ncurl http://127.0.0.1:8787/health\n```\n```\nezchain ignored\n```\n";
    let commands = runbook_commands(text);
    assert_eq!(
        commands,
        vec![
            "ezchain ops backup --out-dir b --label x",
            "curl http://127.0.0.1:8787/health"
        ]
    );
    let (path, flags) = shape(&[
        "--config",
        "/x/ezchain.yaml",
        "ops",
        "backup",
        "--out-dir",
        "b",
        "--label",
        "x",
    ]);
    assert_eq!(path, vec!["ops", "backup"]);
    assert_eq!(flags, vec!["out-dir", "label"]);
    let (path, flags) = shape(&["--version"]);
    assert!(path.is_empty());
    assert_eq!(flags, vec!["version"]);
    let transcript = "$ ezchain --config /d/ezchain.yaml ops backup --out-dir /d/b --label pre-rc\n\
                      $ curl http://127.0.0.1:26090/health\nother output\n";
    let wanted = |lines: &[&str]| lines.iter().map(|l| l.to_string()).collect::<Vec<_>>();
    assert!(
        uncovered(
            &wanted(&["ezchain ops backup --label x", "curl http://127.0.0.1:8787/health"]),
            transcript
        )
        .is_empty()
    );
    assert_eq!(
        uncovered(
            &wanted(&[
                "ezchain ops backup --force",
                "ezchain ops restore --backup-dir x",
                "curl http://127.0.0.1:8787/metrics",
                "ezchain ops drill"
            ]),
            transcript
        ),
        wanted(&[
            "ezchain ops backup --force",
            "ezchain ops restore --backup-dir x",
            "curl http://127.0.0.1:8787/metrics"
        ])
    );
}

#[test]
fn the_stability_gate_restarts_the_service_and_a_validator_without_a_failed_check() {
    let _serial = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let dir = tempfile::tempdir().expect("temp dir");
    let summary_file = dir.path().join("stability.json");
    let output = Command::new(env!("CARGO_BIN_EXE_ezchain"))
        .args([
            "ops",
            "stability-gate",
            "--cycles",
            "3",
            "--interval",
            "0",
            "--restart-every",
            "1",
            "--start-port",
            "25500",
        ])
        .arg("--work-dir")
        .arg(dir.path().join("sandbox"))
        .arg("--json-out")
        .arg(&summary_file)
        .stdin(Stdio::null())
        .output()
        .expect("run the stability gate");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.trim_end().ends_with("PASSED"), "{stdout}");
    assert_eq!(
        stderr.matches("[stability-gate] cycle=").count(),
        3,
        "one progress line per cycle"
    );
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&summary_file).expect("--json-out written")).expect("JSON");
    assert_eq!(summary["ok"], true);
    assert_eq!(summary["checks"], 6, "a health probe and a send per cycle");
    assert_eq!(summary["failures"], 0, "{summary}");
    assert_eq!(summary["sends_ok"], 3);
    assert_eq!(
        (
            summary["service_restarts"].as_u64(),
            summary["validator_restarts"].as_u64()
        ),
        (Some(1), Some(1))
    );
    // Its sandbox is stopped: neither validator-0's RPC nor the service answers any more.
    for port in [25501, 25590] {
        assert!(
            std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
            "port {port} still open"
        );
    }
}
