//! A few seconds of `ezchain bench`, so the command cannot rot. No timing is asserted: the
//! numbers belong in docs/BENCHMARKS.md, not in tests.

use std::process::Command;

#[test]
fn a_short_bench_run_commits_bundles_and_writes_its_reports() {
    let dir = tempfile::tempdir().expect("temp dir");
    let report_path = dir.path().join("report.json");
    let output = Command::new(env!("CARGO_BIN_EXE_ezchain"))
        .args([
            "--json",
            "bench",
            "--validators",
            "1",
            "--accounts",
            "10",
            "--bundle-txs",
            "2",
            "--duration-sec",
            "3",
            "--start-port",
            "24900",
        ])
        .arg("--out-json")
        .arg(&report_path)
        .output()
        .expect("run bench");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).expect("JSON report");
    assert!(report["committed_bundles"].as_u64().unwrap_or(0) > 0, "{report}");
    assert_eq!(report["verification_failures"], 0);
    assert!(report["verification_ms"]["count"].as_u64().unwrap_or(0) > 0);
    assert_eq!(report["nodes"].as_array().map(Vec::len), Some(2));
    let written: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&report_path).expect("report file")).expect("JSON");
    assert_eq!(written["committed_bundles"], report["committed_bundles"]);
    let html = std::fs::read_to_string(report_path.with_extension("html")).expect("html page");
    assert!(html.contains("<svg"));
}
