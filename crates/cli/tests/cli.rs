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
    assert!(String::from_utf8_lossy(&version.stdout).starts_with("ezchain "));
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
