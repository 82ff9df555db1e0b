//! `ezchain bench`: throughput and latency of a fresh local testnet (see docs/BENCHMARKS.md).

use crate::CliError;
use clap::Args;
use ezchain_ops::bench::{BenchOptions, html_report, run};
use ezchain_ops::witness_bench::{Scenario, WitnessBenchOptions};
use ezchain_protocol::ownership::SnapshotPolicy;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Args, Debug)]
pub struct BenchArgs {
    /// Validators of the bench's own testnet (plus one bootstrap node).
    #[arg(long, default_value_t = 1)]
    validators: usize,
    /// Bench accounts funded at genesis (each has at most one bundle in flight).
    #[arg(long, default_value_t = 200)]
    accounts: usize,
    /// Seconds of load after the testnet is ready.
    #[arg(long, default_value_t = 30)]
    duration_sec: u64,
    /// Transfers per bundle.
    #[arg(long, default_value_t = 1)]
    bundle_txs: usize,
    /// Bundles per second to offer (default: as fast as accounts are free).
    #[arg(long)]
    rate: Option<f64>,
    /// Kill the last validator this many seconds into the run.
    #[arg(long)]
    kill_one_at_sec: Option<u64>,
    /// First port of the bench's testnet (two per node).
    #[arg(long, default_value_t = 29500)]
    start_port: u16,
    /// Submitting threads.
    #[arg(long, default_value_t = 4)]
    workers: usize,
    /// Bundles per request, 1–256: above 1, each thread posts the bundles of up to that many
    /// free accounts together to /v1/submit/batch.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=256))]
    batch: u16,
    /// Where to write the report (an .html page is written beside it).
    #[arg(long)]
    out_json: Option<PathBuf>,
    /// Keep the testnet folder (default: a temporary folder, removed after the run).
    #[arg(long)]
    keep_dir: Option<PathBuf>,
    /// Drive a running testnet instead: its validators' RPC addresses, comma-separated. Its
    /// genesis must fund the bench accounts (see --print-alloc).
    #[arg(long, value_delimiter = ',', requires = "genesis")]
    endpoints: Vec<std::net::SocketAddr>,
    /// The running testnet's genesis.json (with --endpoints).
    #[arg(long)]
    genesis: Option<PathBuf>,
    /// Instead of load: this many payments between 8 real wallets, one after another, each timed
    /// from the send to the payee's verified receipt (payments/s and latency percentiles).
    #[arg(long)]
    sequential: Option<usize>,
    /// Instead of a testnet: one account paying this many times in a row, with the protocol's
    /// own rules in this process (package size, verification time and wallet size over a long
    /// history; consensus and transport left out).
    #[arg(long, conflicts_with = "sequential")]
    long_payer: Option<usize>,
    /// Instead of a testnet: one value handed over this many times between --owners wallets
    /// picked at random, in this process like --long-payer.
    #[arg(long, conflicts_with_all = ["sequential", "long_payer"])]
    circulate: Option<usize>,
    /// Wallets in --long-payer (the payer and its recipients) and --circulate.
    #[arg(long, default_value_t = 64)]
    owners: usize,
    /// Own bundles after which a wallet snapshots its holdings in --long-payer and
    /// --circulate (the wallet default; 0 = never, today's unbounded witnesses).
    #[arg(long, default_value_t = 16)]
    snapshot_every: usize,
    /// Earlier owners beyond its payer a received value may carry before its wallet snapshots
    /// to pay it on, in --long-payer and --circulate (the wallet default).
    #[arg(long, default_value_t = 2)]
    prior_owners: usize,
    /// Print the `--alloc ADDRESS=AMOUNT` arguments that fund --accounts bench accounts in
    /// `ezchain testnet init`, and exit.
    #[arg(long)]
    print_alloc: bool,
}

fn bench_failed(error: ezchain_ops::bench::BenchError) -> CliError {
    CliError {
        code: "bench_failed",
        message: error.to_string(),
        hint: Some("pick free ports with --start-port"),
    }
}

pub fn run_bench(args: BenchArgs, json: bool) -> Result<(), CliError> {
    let fail = |code: &'static str, message: String| CliError {
        code,
        message,
        hint: None,
    };
    if args.print_alloc {
        let allocations = ezchain_ops::bench::allocations(args.accounts);
        if json {
            let list: Vec<String> = allocations.iter().map(|(a, n)| format!("{a}={n}")).collect();
            crate::print_json(serde_json::json!({ "alloc": list }));
        } else {
            for (address, amount) in allocations {
                println!("--alloc {address}={amount}");
            }
        }
        return Ok(());
    }
    if let Some(scenario) = witness_scenario(&args) {
        return run_witness_bench(&args, scenario, json);
    }
    let temp = tempfile::tempdir().map_err(|e| fail("io_error", e.to_string()))?;
    let dir = args.keep_dir.clone().unwrap_or_else(|| temp.path().join("testnet"));
    let binary = std::env::current_exe().map_err(|e| fail("io_error", e.to_string()))?;
    let options = BenchOptions {
        validators: args.validators,
        accounts: args.accounts,
        duration: Duration::from_secs(args.duration_sec),
        bundle_txs: args.bundle_txs,
        rate: args.rate,
        start_port: args.start_port,
        dir,
        kill_one_at: args.kill_one_at_sec.map(Duration::from_secs),
        workers: args.workers,
        batch: usize::from(args.batch),
        existing: args
            .genesis
            .clone()
            .map(|genesis_file| ezchain_ops::bench::ExistingTestnet {
                endpoints: args.endpoints.clone(),
                genesis_file,
            }),
    };
    if let Some(payments) = args.sequential {
        let report = ezchain_ops::bench::sequential(&binary, &options, payments, |line| eprintln!("bench: {line}"))
            .map_err(bench_failed)?;
        let text = serde_json::to_string_pretty(&report).unwrap_or_default();
        if let Some(path) = &args.out_json {
            std::fs::write(path, &text).map_err(|e| fail("io_error", e.to_string()))?;
        }
        if json {
            crate::print_json(&text);
        } else {
            let (l, s) = (&report.latency_ms, &report.send_ms);
            println!(
                "{} validators, {} wallets, {} payments one after another in {:.1} s",
                report.validators, report.wallets, report.payments, report.duration_s
            );
            println!("rate       {:.1} payments/s", report.payments_per_s);
            println!(
                "latency    p50 {:.0} ms  p95 {:.0} ms  max {:.0} ms (send → payee verified)",
                l.p50, l.p95, l.max
            );
            println!("send       p50 {:.0} ms  p95 {:.0} ms (send → delivered)", s.p50, s.p95);
        }
        return Ok(());
    }
    let report = run(&binary, &options, |line| eprintln!("bench: {line}")).map_err(bench_failed)?;
    let text = serde_json::to_string_pretty(&report).unwrap_or_default();
    if let Some(path) = &args.out_json {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|e| fail("io_error", e.to_string()))?;
        }
        std::fs::write(path, &text).map_err(|e| fail("io_error", e.to_string()))?;
        let json_file = path
            .file_name()
            .map_or_else(String::new, |name| name.to_string_lossy().into_owned());
        std::fs::write(path.with_extension("html"), html_report(&report, &json_file))
            .map_err(|e| fail("io_error", e.to_string()))?;
    }
    if json {
        crate::print_json(&text);
    } else {
        println!(
            "{} validators, {} accounts, {} transfers/bundle, {:.0} s",
            report.validators, report.accounts, report.bundle_txs, report.duration_s
        );
        println!(
            "committed  {:.1} bundles/s, {:.1} transfers/s ({} bundles in {} blocks)",
            report.committed_bundles_per_s, report.transfers_per_s, report.committed_bundles, report.blocks
        );
        let l = &report.finality_latency_ms;
        println!(
            "finality   p50 {:.0} ms  p95 {:.0} ms  p99 {:.0} ms  max {:.0} ms",
            l.p50, l.p95, l.p99, l.max
        );
        let v = &report.verification_ms;
        println!(
            "verify     p50 {:.2} ms  p95 {:.2} ms per package ({} checked, {} failed)",
            v.p50, v.p95, v.count, report.verification_failures
        );
        if !report.rejected_by_code.is_empty() {
            println!("rejected   {:?}", report.rejected_by_code);
        }
        for node in &report.nodes {
            println!(
                "{:<12} cpu {:>6.1} s  peak rss {:>6.1} MiB  disk {:>6.1} MiB",
                node.name,
                node.cpu_seconds.unwrap_or(0.0),
                node.peak_rss_mib.unwrap_or(0.0),
                node.disk_mib
            );
        }
    }
    if report.verification_failures > 0 {
        return Err(fail(
            "bench_verification_failed",
            format!(
                "{} sampled transfers failed recipient verification",
                report.verification_failures
            ),
        ));
    }
    Ok(())
}

fn witness_scenario(args: &BenchArgs) -> Option<(Scenario, usize)> {
    match (args.long_payer, args.circulate) {
        (Some(steps), _) => Some((Scenario::LongPayer, steps)),
        (None, Some(steps)) => Some((Scenario::Circulate, steps)),
        (None, None) => None,
    }
}

fn run_witness_bench(args: &BenchArgs, (scenario, steps): (Scenario, usize), json: bool) -> Result<(), CliError> {
    let options = WitnessBenchOptions {
        scenario,
        steps,
        owners: args.owners,
        policy: SnapshotPolicy {
            every_bundles: args.snapshot_every,
            prior_owners: args.prior_owners,
            ..SnapshotPolicy::default()
        },
        seed: 1,
    };
    let report =
        ezchain_ops::witness_bench::run(&options, |line| eprintln!("bench: {line}")).map_err(|e| CliError {
            code: "bench_failed",
            message: e.to_string(),
            hint: Some("--long-payer and --circulate need at least one step and --owners 2"),
        })?;
    let text = serde_json::to_string_pretty(&report).unwrap_or_default();
    if let Some(path) = &args.out_json {
        std::fs::write(path, &text).map_err(|e| CliError {
            code: "io_error",
            message: e.to_string(),
            hint: None,
        })?;
    }
    if json {
        crate::print_json(&text);
        return Ok(());
    }
    let (bytes, units, verify) = (&report.package_bytes, &report.package_units, &report.verify_ms);
    println!(
        "{:?}: {} steps between {} wallets in {:.1} s, {} snapshots (every {} own bundles)",
        report.scenario,
        report.steps,
        report.owners,
        report.duration_s,
        report.snapshots,
        report.snapshot_every_bundles
    );
    println!(
        "package    p50 {:.0} B  max {:.0} B  last {} B; units p50 {:.0} max {:.0}; owners max {:.0}",
        bytes.p50, bytes.max, report.last_package_bytes, units.p50, units.max, report.package_owners.max
    );
    println!(
        "verify     p50 {:.2} ms  max {:.2} ms (as the payee)",
        verify.p50, verify.max
    );
    println!(
        "validator  payment block p50 {:.0} µs, snapshot block p50 {:.0} µs: snapshots {:.1} % of a saturated block",
        report.apply_payment_us.p50,
        report.apply_snapshot_us.p50,
        report.snapshot_share_of_block_cpu * 100.0
    );
    if let Some((step, wallet)) = report.wallet_bytes.last() {
        println!("wallet     {wallet} B after {step} steps");
    }
    Ok(())
}
