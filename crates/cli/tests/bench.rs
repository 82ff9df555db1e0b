//! A few seconds of `ezchain bench`, so the command cannot rot: on a fresh testnet, then again
//! on that same testnet already running (`--endpoints`), where every account continues its
//! history, one bundle per request and then in batches. No timing is asserted: the numbers belong in docs/BENCHMARKS.md, not in tests.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn bench(args: &[&str]) -> serde_json::Value {
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
        ])
        .args(args)
        .output()
        .expect("run bench");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).expect("JSON report");
    assert!(report["committed_bundles"].as_u64().unwrap_or(0) > 0, "{report}");
    assert_eq!(report["verification_failures"], 0, "{report}");
    assert!(report["verification_ms"]["count"].as_u64().unwrap_or(0) > 0, "{report}");
    report
}

/// Runs a node of a kept bench testnet until dropped.
struct Node(Child);

impl Node {
    fn start(home: &Path) -> Node {
        Node(
            Command::new(env!("CARGO_BIN_EXE_ezchain"))
                .args(["node", "run", "--home"])
                .arg(home)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("node run"),
        )
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn short_bench_runs_on_a_fresh_and_on_a_running_testnet() {
    let dir = tempfile::tempdir().expect("temp dir");
    let kept = dir.path().join("testnet");
    let report_path = dir.path().join("report.json");
    let fresh = bench(&[
        "--start-port",
        "24900",
        "--keep-dir",
        &kept.to_string_lossy(),
        "--out-json",
        &report_path.to_string_lossy(),
    ]);
    assert_eq!(fresh["nodes"].as_array().map(Vec::len), Some(2));
    let written: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&report_path).expect("report file")).expect("JSON");
    assert_eq!(written["committed_bundles"], fresh["committed_bundles"]);
    let html = std::fs::read_to_string(report_path.with_extension("html")).expect("html page");
    assert!(
        html.contains("<svg") && html.contains("bundles/s") && html.contains("seconds since the load started"),
        "charts with axes and units"
    );
    assert!(
        html.contains("<table>") && html.contains("report.json"),
        "a summary table naming the JSON"
    );
    assert!(!html.contains("\"committed_bundles\""), "no JSON dump in the page");

    // The same testnet, restarted by hand and driven through --endpoints.
    let _validator = Node::start(&kept.join("validator-0"));
    let _bootstrap = Node::start(&kept.join("bootstrap"));
    let deadline = Instant::now() + Duration::from_secs(60);
    while std::net::TcpStream::connect("127.0.0.1:24901").is_err() {
        assert!(Instant::now() < deadline, "the validator did not come back");
        std::thread::sleep(Duration::from_millis(100));
    }
    bench(&[
        "--endpoints",
        "127.0.0.1:24901",
        "--genesis",
        &kept.join("genesis.json").to_string_lossy(),
    ]);
    // And through the batch submit: the free accounts' bundles in one request each.
    let batched = bench(&[
        "--endpoints",
        "127.0.0.1:24901",
        "--genesis",
        &kept.join("genesis.json").to_string_lossy(),
        "--batch",
        "8",
    ]);
    assert_eq!(batched["rejected_by_code"], serde_json::json!({}), "{batched}");

    // The allocations an operator needs for such a testnet.
    let output = Command::new(env!("CARGO_BIN_EXE_ezchain"))
        .args(["bench", "--print-alloc", "--accounts", "3"])
        .output()
        .expect("print-alloc");
    let text = String::from_utf8_lossy(&output.stdout);
    assert_eq!(
        text.lines().filter(|l| l.starts_with("--alloc 0x")).count(),
        3,
        "{text}"
    );
}

/// The pids in the `node.pid` files under `dir` (one per node home).
fn node_pids(dir: &Path) -> Vec<u32> {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| std::fs::read_to_string(entry.path().join("node.pid")).ok())
        .filter_map(|text| text.trim().parse().ok())
        .collect()
}

fn alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
        && !std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| stat.contains(") Z "))
}

#[test]
fn a_bench_stopped_with_sigterm_stops_the_testnet_it_started() {
    let dir = tempfile::tempdir().expect("temp dir");
    let keep = dir.path().join("net");
    let mut bench = Command::new(env!("CARGO_BIN_EXE_ezchain"))
        .args([
            "bench",
            "--validators",
            "1",
            "--accounts",
            "4",
            "--duration-sec",
            "300",
            "--start-port",
            "24920",
            "--keep-dir",
        ])
        .arg(&keep)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the bench");
    // Wait until both nodes of its testnet run.
    let deadline = Instant::now() + Duration::from_secs(180);
    let pids = loop {
        let pids = node_pids(&keep);
        if pids.len() == 2 && pids.iter().all(|pid| alive(*pid)) {
            break pids;
        }
        if Instant::now() > deadline || bench.try_wait().expect("wait").is_some() {
            let _ = bench.kill();
            panic!("the bench's testnet did not come up: {pids:?}");
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let _ = Command::new("kill").args(["-TERM", &bench.id().to_string()]).status();
    let status = ezchain_testkit::wait_or_kill(&mut bench, Duration::from_secs(60))
        .unwrap_or_else(|| panic!("the bench did not stop on SIGTERM"));
    assert_eq!(status.code(), Some(143), "exits as a terminated process: {status}");
    let survivors: Vec<u32> = pids.into_iter().filter(|pid| alive(*pid)).collect();
    for pid in &survivors {
        let _ = Command::new("kill").args(["-KILL", &pid.to_string()]).status();
    }
    assert!(survivors.is_empty(), "node processes left running: {survivors:?}");
}

#[test]
fn the_sequential_scenario_pays_around_a_ring_of_real_wallets_and_every_payee_verifies() {
    let output = Command::new(env!("CARGO_BIN_EXE_ezchain"))
        .args(["--json", "bench", "--sequential", "9", "--start-port", "24940"])
        .output()
        .expect("run bench --sequential");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).expect("JSON report");
    assert_eq!(report["payments"], 9, "{report}");
    assert_eq!(
        report["latency_ms"]["count"], 9,
        "every payment was timed to its verified receipt: {report}"
    );
    assert!(
        report["payments_per_s"].as_f64().is_some_and(|rate| rate > 0.0),
        "{report}"
    );
}
