//! `ezchain ops backup|restore|release-gate|stability-gate|drill`.

use crate::CliError;
use crate::service::report_verdicts;
use clap::Args;
use ezchain_ops::backup::{BackupError, BackupRequest, RestoreRequest, WalletChoice};
use ezchain_ops::gates::{ReleaseGateOptions, StabilityOptions, StepOutcome};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::time::Duration;

fn backup_error(error: BackupError) -> CliError {
    let hint = match &error {
        BackupError::Running { .. } => Some("the message names the process and how to stop it"),
        BackupError::TargetExists(_) => Some("add --force; the replaced state is renamed, not deleted"),
        BackupError::Corrupt(_) => Some("use another snapshot; never edit one by hand"),
        BackupError::Export { .. } => Some("check that the node or service owning it runs, or stop it"),
        BackupError::WalletAhead(_) => Some("see docs/RUNBOOK.md §5 before choosing"),
        _ => None,
    };
    CliError {
        code: error.code(),
        message: error.to_string(),
        hint,
    }
}

fn current_binary() -> Result<PathBuf, CliError> {
    std::env::current_exe().map_err(|e| CliError {
        code: "io_error",
        message: format!("cannot find this program's path: {e}"),
        hint: None,
    })
}

pub fn backup(config_path: &Path, out_dir: &Path, label: Option<&str>, json: bool) -> Result<(), CliError> {
    let report = ezchain_ops::backup::backup(&BackupRequest {
        config_path,
        out_dir,
        label,
        tool_version: env!("CARGO_PKG_VERSION"),
    })
    .map_err(backup_error)?;
    if json {
        crate::print_json(serde_json::to_string_pretty(&report).unwrap_or_default());
    } else {
        println!("snapshot  {}", report.backup_dir.display());
        println!("manifest  {}", report.manifest.display());
        println!("files     {} ({} bytes)", report.files, report.bytes);
        for (node, height) in &report.heights {
            println!("chain     {node} at height {height}");
        }
    }
    Ok(())
}

pub fn restore(
    config_path: &Path,
    backup_dir: &Path,
    force: bool,
    wallet: WalletChoice,
    json: bool,
) -> Result<(), CliError> {
    let report = ezchain_ops::backup::restore(&RestoreRequest {
        backup_dir,
        config_path,
        force,
        wallet,
    })
    .map_err(backup_error)?;
    if json {
        crate::print_json(serde_json::to_string_pretty(&report).unwrap_or_default());
    } else {
        println!("restored  {} ({} files)", report.restored_from.display(), report.files);
        println!("config    {}", report.config_path.display());
        println!("data      {}", report.data_dir.display());
        for kept in &report.kept {
            println!("kept      {} (never rolled back)", kept.display());
        }
        for payment in &report.discarded_wallet_payments {
            println!("discarded {payment} (the wallet no longer knows it)");
        }
        for (node, height) in &report.validators_sign_above {
            println!("validator {node} will not sign at or below height {height} (its sign record)");
        }
        for previous in &report.previous_state {
            println!("previous  {} (delete it once satisfied)", previous.display());
        }
        println!("next: `ezchain node start`, `ezchain serve`, then one send/receive smoke");
    }
    Ok(())
}

#[derive(Args, Debug)]
pub struct ReleaseGateArgs {
    /// Run only the fast tests (unit and property tests, no process-level suites).
    #[arg(long)]
    skip_slow: bool,
    /// Add the stability gate.
    #[arg(long)]
    with_stability: bool,
    /// Run no tests (CI already ran them).
    #[arg(long)]
    skip_tests: bool,
    /// The candidate's source tree: its tests run (`cargo test`) and its files and
    /// docs/SECURITY.md are checked. Without it the gate checks this installation only
    /// (smoke, security gate, stability): no cargo, no checkout needed.
    #[arg(long, value_name = "DIR")]
    source_dir: Option<PathBuf>,
    /// First port of the smoke testnet (the stability gate uses this + 100).
    #[arg(long, default_value_t = 29500)]
    start_port: u16,
    /// Where the smoke and stability sandboxes go (default: a fresh temporary folder).
    #[arg(long)]
    work_dir: Option<PathBuf>,
    /// Accept a keystore cost below the production floor (test setups only).
    #[arg(long)]
    allow_test_kdf: bool,
    /// Cycles of the stability step (see `ops stability-gate`).
    #[arg(long, default_value_t = 30)]
    stability_cycles: u32,
    /// Restart period of the stability step, in cycles.
    #[arg(long, default_value_t = 10)]
    stability_restart_every: u32,
}

/// A fresh folder for sandboxes, removed afterwards unless the caller named it.
struct WorkDir {
    path: PathBuf,
    _temp: Option<tempfile::TempDir>,
}

fn work_dir(given: Option<PathBuf>, prefix: &str) -> Result<WorkDir, CliError> {
    match given {
        Some(path) => {
            if !ezchain_ops::drill::is_fresh(&path) {
                return Err(CliError {
                    code: "invalid_argument",
                    message: format!("{} is not empty; sandboxes need a fresh folder", path.display()),
                    hint: Some("pass a new folder, or leave the option out for a temporary one"),
                });
            }
            Ok(WorkDir { path, _temp: None })
        }
        None => {
            let temp = tempfile::Builder::new()
                .prefix(prefix)
                .tempdir()
                .map_err(|e| CliError {
                    code: "io_error",
                    message: e.to_string(),
                    hint: None,
                })?;
            Ok(WorkDir {
                path: temp.path().to_path_buf(),
                _temp: Some(temp),
            })
        }
    }
}

fn print_step(prefix: &str, step: &StepOutcome) {
    eprintln!(
        "[{prefix}] {:<4} {:<22} {} ({:.1} s)",
        if step.passed { "ok" } else { "FAIL" },
        step.name,
        step.detail,
        step.seconds
    );
}

/// Prints the gate's result and turns a failure into the exit status.
fn finish(prefix: &str, outcomes: &[StepOutcome], expected: usize, json: bool) -> Result<(), CliError> {
    let mut rows: Vec<(bool, String, String)> = outcomes
        .iter()
        .map(|s| (s.passed, s.name.clone(), format!("{} ({:.1} s)", s.detail, s.seconds)))
        .collect();
    if outcomes.len() < expected {
        rows.push((
            false,
            "steps".into(),
            format!("only {} of {expected} ran", outcomes.len()),
        ));
    }
    let passed = rows.iter().all(|(ok, _, _)| *ok);
    report_verdicts(
        json,
        json!({ "ok": passed, "steps": outcomes }),
        &rows,
        22,
        CliError {
            code: "gate_failed",
            message: format!("[{prefix}] FAILED (see the FAIL line)"),
            hint: None,
        },
    )
}

pub fn release_gate(args: ReleaseGateArgs, config_path: &Path, json: bool) -> Result<(), CliError> {
    let work = work_dir(args.work_dir, "ezchain-release-gate-")?;
    let options = ReleaseGateOptions {
        binary: current_binary()?,
        config_path: config_path.to_path_buf(),
        source_dir: args.source_dir,
        skip_slow: args.skip_slow,
        skip_tests: args.skip_tests,
        with_stability: args.with_stability,
        allow_test_kdf: args.allow_test_kdf,
        work_dir: work.path.clone(),
        start_port: args.start_port,
        stability_cycles: args.stability_cycles.max(1),
        stability_restart_every: args.stability_restart_every,
    };
    let runs_tests = !args.skip_tests && options.source_dir.is_some();
    let expected = 2 + usize::from(runs_tests) + usize::from(args.with_stability);
    let outcomes = ezchain_ops::gates::release_gate(&options, &mut |step| print_step("release-gate", step));
    finish("release-gate", &outcomes, expected, json)
}

#[derive(Args, Debug)]
pub struct StabilityArgs {
    /// Probe-and-send cycles to run.
    #[arg(long, default_value_t = 30)]
    cycles: u32,
    /// Seconds between cycles.
    #[arg(long, default_value_t = 1.0)]
    interval: f64,
    /// Restart the service, then a validator, in turn every N cycles (0: never).
    #[arg(long, default_value_t = 10)]
    restart_every: u32,
    /// Failed probes or sends allowed before the gate fails.
    #[arg(long, default_value_t = 0)]
    max_failures: u64,
    /// Highest share of failed cycles that passes.
    #[arg(long, default_value_t = 0.0)]
    max_failure_rate: f64,
    /// Validators of the sandbox testnet.
    #[arg(long, default_value_t = 1)]
    consensus: u32,
    /// First port of the sandbox testnet.
    #[arg(long, default_value_t = 29700)]
    start_port: u16,
    /// Where the sandbox goes (default: a fresh temporary folder).
    #[arg(long)]
    work_dir: Option<PathBuf>,
    /// Also write the summary to this file.
    #[arg(long)]
    json_out: Option<PathBuf>,
}

pub fn stability_gate(args: StabilityArgs, json: bool) -> Result<(), CliError> {
    if !(args.interval.is_finite() && args.interval >= 0.0) || args.cycles == 0 {
        return Err(CliError {
            code: "invalid_argument",
            message: "--cycles must be at least 1 and --interval a number of seconds ≥ 0".into(),
            hint: None,
        });
    }
    let work = work_dir(args.work_dir, "ezchain-stability-")?;
    let options = StabilityOptions {
        binary: current_binary()?,
        dir: work.path.clone(),
        start_port: args.start_port,
        consensus: args.consensus,
        cycles: args.cycles,
        interval: Duration::from_secs_f64(args.interval),
        restart_every: args.restart_every,
        max_failures: args.max_failures,
        max_failure_rate: args.max_failure_rate,
    };
    use ezchain_ops::gates::StabilityProgress;
    let shown = crate::progress::Progress::shown();
    let bar = crate::progress::Progress::bar(u64::from(args.cycles), "stability gate: setting up");
    let summary = ezchain_ops::gates::stability_gate(&options, &mut |event| match event {
        // Off a terminal: the cycle lines, as always; on one, the bar says it all.
        StabilityProgress::Cycle { .. } if !shown => eprintln!("[stability-gate] {event}"),
        StabilityProgress::Step(step) => bar.set_message(format!("stability gate: {step}")),
        StabilityProgress::Cycle {
            cycle,
            failures,
            restarts,
            ..
        } => {
            bar.set_position(u64::from(*cycle));
            bar.set_message(format!("stability gate: {failures} failed, {restarts} restarts"));
        }
    });
    drop(bar);
    let summary = summary.map_err(|e| CliError {
        code: "stability_setup_failed",
        message: e.to_string(),
        hint: Some("the sandbox testnet could not be set up; is the port range free?"),
    })?;
    let document = serde_json::to_string_pretty(&summary).unwrap_or_default();
    if let Some(path) = &args.json_out {
        if let Some(parent) = path.parent() {
            let _ = std::fs::create_dir_all(parent);
        }
        std::fs::write(path, &document).map_err(|e| CliError {
            code: "io_error",
            message: format!("{}: {e}", path.display()),
            hint: None,
        })?;
    }
    if json {
        println!("{document}");
    } else {
        for reason in &summary.failure_reasons {
            println!("failure  {reason}");
        }
        println!("[stability-gate] {}", summary.verdict());
        println!("{}", if summary.ok { "PASSED" } else { "FAILED" });
    }
    if summary.ok {
        Ok(())
    } else {
        Err(CliError {
            code: "gate_failed",
            message: format!("[stability-gate] FAILED: {}", summary.verdict()),
            hint: None,
        })
    }
}

#[derive(Args, Debug)]
pub struct DrillArgs {
    /// A new folder for the drill's testnet, wallets, backups and reports (default: a fresh
    /// temporary folder, removed when the drill passes).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// First port; the drill uses about 400 ports from here.
    #[arg(long, default_value_t = 29000)]
    start_port: u16,
    /// The source tree (for the security gate).
    #[arg(long, default_value = ".")]
    source_dir: PathBuf,
    /// Seconds of each canary window.
    #[arg(long, default_value_t = 8)]
    canary_seconds: u64,
}

pub fn drill(args: DrillArgs, json: bool) -> Result<(), CliError> {
    let named = args.dir.is_some();
    let dir = args.dir.unwrap_or_else(ezchain_ops::drill::default_dir);
    if !ezchain_ops::drill::is_fresh(&dir) {
        return Err(CliError {
            code: "invalid_argument",
            message: format!("{} is not empty; the drill needs a fresh folder", dir.display()),
            hint: Some("pass a new --dir"),
        });
    }
    let options = ezchain_ops::drill::DrillOptions {
        binary: current_binary()?,
        dir: dir.clone(),
        start_port: args.start_port,
        source_dir: std::path::absolute(&args.source_dir).unwrap_or(args.source_dir),
        canary_seconds: args.canary_seconds.max(3),
    };
    let outcomes =
        ezchain_ops::drill::drill(&options, &mut |step| print_step("drill", step)).map_err(|e| CliError {
            code: "drill_setup_failed",
            message: e.to_string(),
            hint: None,
        })?;
    let result = finish("drill", &outcomes, ezchain_ops::drill::STEPS.len(), json);
    if result.is_ok() && !named {
        let _ = std::fs::remove_dir_all(&dir);
    } else if result.is_err() {
        eprintln!("[drill] its folder is kept for inspection: {}", dir.display());
    }
    result
}
