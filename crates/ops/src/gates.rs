//! `ezchain ops release-gate` and `ezchain ops stability-gate`.
//!
//! Both work on sandboxes (fresh local testnets in temporary folders, on ports the operator
//! picks), never on the operator's running testnet or service: a gate that restarts things must
//! not be able to disturb production.

use ezchain_devnet::localnet::Localnet;
use ezchain_devnet::sandbox::{Ezchain, Sandbox, Service, StepError, address, local_balance, step_error, stop_testnet};
use ezchain_wallet::AppConfig;
use serde::Serialize;
use serde_json::json;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

pub const SANDBOX_PASSWORD: &str = "sandbox-password";

/// One step of a gate.
#[derive(Clone, Debug, Serialize)]
pub struct StepOutcome {
    pub name: String,
    pub passed: bool,
    pub detail: String,
    pub seconds: f64,
}

/// Stops a sandbox testnet however the step ends, a SIGINT or SIGTERM of this process included.
pub struct TestnetGuard {
    /// Runs `node stop` for the sandbox when dropped or on a signal.
    _stop: ezchain_devnet::cleanup::Cleanup,
}

impl TestnetGuard {
    pub fn new(exe: &Ezchain) -> Self {
        let exe = exe.clone();
        TestnetGuard {
            _stop: ezchain_devnet::cleanup::on_exit(move || stop_testnet(&exe)),
        }
    }
}

/// Starts a sandbox's testnet (one validator unless asked) and waits until it is ready.
pub fn start_testnet(exe: &Ezchain, consensus: u32, accounts: u32, start_port: u16) -> Result<(), StepError> {
    exe.json(&[
        "node",
        "start",
        "--consensus",
        &consensus.to_string(),
        "--accounts",
        &accounts.to_string(),
        "--start-port",
        &start_port.to_string(),
    ])
    .map(|_| ())
}

/// A send/receive smoke on a fresh one-validator testnet in `dir`: faucet → send → the payee
/// receives and verifies. Returns what it saw.
pub fn smoke(binary: &Path, dir: &Path, start_port: u16) -> Result<String, StepError> {
    let started = Instant::now();
    let sandbox = Sandbox::create(binary, dir, start_port, start_port.saturating_add(90), 1)?;
    let payer = &sandbox.exe;
    let _testnet = TestnetGuard::new(payer);
    start_testnet(payer, 1, 0, start_port)?;
    payer.json(&["wallet", "create", "--password", SANDBOX_PASSWORD])?;
    let payee = sandbox.second_wallet("payee", start_port.saturating_add(91))?;
    payee.json(&["wallet", "create", "--password", SANDBOX_PASSWORD])?;
    let payee_address = address(&payee)?;
    payer.json(&["tx", "faucet", "--amount", "100", "--password", SANDBOX_PASSWORD])?;
    payer.json(&[
        "tx",
        "send",
        "--recipient",
        &payee_address,
        "--amount",
        "40",
        "--password",
        SANDBOX_PASSWORD,
    ])?;
    payee.json(&["tx", "receive", "--password", SANDBOX_PASSWORD])?;
    let (paid, got) = (local_balance(payer)?, local_balance(&payee)?);
    if paid != 60 || got != 40 {
        return Err(step_error(
            "smoke",
            format!("after faucet 100 and a send of 40 the balances are {paid} and {got}, not 60 and 40"),
        ));
    }
    Ok(format!(
        "faucet 100, sent 40, payee verified 40 ({:.1} s)",
        started.elapsed().as_secs_f64()
    ))
}

pub struct ReleaseGateOptions {
    pub binary: PathBuf,
    /// The operator's config, checked by the security gate.
    pub config_path: PathBuf,
    /// The candidate's source tree: its tests run and its files and docs/SECURITY.md are
    /// checked. `None` checks the installation only.
    pub source_dir: Option<PathBuf>,
    pub skip_slow: bool,
    pub skip_tests: bool,
    pub with_stability: bool,
    pub allow_test_kdf: bool,
    /// Sandboxes go here.
    pub work_dir: PathBuf,
    pub start_port: u16,
    /// Cycles and restart period of the stability step.
    pub stability_cycles: u32,
    pub stability_restart_every: u32,
}

fn timed(name: &str, run: impl FnOnce() -> Result<String, StepError>) -> StepOutcome {
    let started = Instant::now();
    let (passed, detail) = match run() {
        Ok(detail) => (true, detail),
        Err(e) => (false, e.to_string()),
    };
    StepOutcome {
        name: name.into(),
        passed,
        detail,
        seconds: started.elapsed().as_secs_f64(),
    }
}

/// A gate step: runs once, says what it saw or why it failed.
type Step<'a> = Box<dyn FnOnce() -> Result<String, StepError> + 'a>;

/// Runs the release gate, reporting each step as it ends; stops at the first failure.
pub fn release_gate(options: &ReleaseGateOptions, report: &mut dyn FnMut(&StepOutcome)) -> Vec<StepOutcome> {
    let mut steps: Vec<(&str, Step<'_>)> = Vec::new();
    if let Some(source_dir) = options.source_dir.as_deref().filter(|_| !options.skip_tests) {
        steps.push((
            "tests",
            Box::new(move || {
                if !source_dir.join("Cargo.toml").is_file() {
                    return Err(step_error(
                        "tests",
                        format!(
                            "{} is not the source tree (no Cargo.toml); name the checkout with --source-dir, or pass --skip-tests",
                            source_dir.display()
                        ),
                    ));
                }
                let mut command = Command::new("cargo");
                command
                    .current_dir(source_dir)
                    .args(["test", "--workspace", "--locked"]);
                if options.skip_slow {
                    // Unit and property tests only: the process-level suites are the slow part.
                    command.args(["--lib", "--bins"]);
                }
                // Test output goes to stderr so `--json` stays one document on stdout.
                let status = command
                    .stdout(std::io::stderr())
                    .status()
                    .map_err(|e| step_error("tests", format!("cannot run cargo: {e}")))?;
                if status.success() {
                    Ok(if options.skip_slow {
                        "unit and property tests passed".into()
                    } else {
                        "every test suite passed".into()
                    })
                } else {
                    Err(step_error("tests", format!("cargo test failed ({status})")))
                }
            }),
        ));
    }
    steps.push((
        "smoke",
        Box::new(|| smoke(&options.binary, &options.work_dir.join("smoke"), options.start_port)),
    ));
    steps.push((
        "security-gate",
        Box::new(|| {
            let config = AppConfig::load(&options.config_path).map_err(|e| step_error("security-gate", e))?;
            let checks =
                crate::security::security_gate(&config, options.source_dir.as_deref(), None, options.allow_test_kdf);
            let failed: Vec<String> = checks
                .iter()
                .filter(|c| !c.passed)
                .map(|c| format!("{}: {}", c.name, c.detail))
                .collect();
            if failed.is_empty() {
                Ok(format!("{} checks passed", checks.len()))
            } else {
                Err(step_error("security-gate", failed.join("; ")))
            }
        }),
    ));
    if options.with_stability {
        steps.push((
            "stability-gate",
            Box::new(|| {
                let stability = StabilityOptions {
                    binary: options.binary.clone(),
                    dir: options.work_dir.join("stability"),
                    start_port: options.start_port.saturating_add(100),
                    cycles: options.stability_cycles,
                    restart_every: options.stability_restart_every,
                    ..StabilityOptions::default()
                };
                let summary = stability_gate(&stability, &mut |_| {})?;
                if summary.ok {
                    Ok(format!(
                        "{} checks, {} failures, {} restarts",
                        summary.checks, summary.failures, summary.restarts
                    ))
                } else {
                    Err(step_error("stability-gate", summary.verdict()))
                }
            }),
        ));
    }
    let mut outcomes = Vec::new();
    for (name, run) in steps {
        let outcome = timed(name, run);
        report(&outcome);
        let passed = outcome.passed;
        outcomes.push(outcome);
        if !passed {
            break;
        }
    }
    outcomes
}

pub struct StabilityOptions {
    pub binary: PathBuf,
    pub dir: PathBuf,
    pub start_port: u16,
    pub consensus: u32,
    pub cycles: u32,
    pub interval: Duration,
    /// Restart something every N cycles: the service and one validator in turn.
    pub restart_every: u32,
    pub max_failures: u64,
    pub max_failure_rate: f64,
}

impl Default for StabilityOptions {
    fn default() -> Self {
        StabilityOptions {
            binary: PathBuf::from("ezchain"),
            dir: PathBuf::from("stability"),
            start_port: 29700,
            consensus: 1,
            cycles: 30,
            interval: Duration::from_secs(1),
            restart_every: 10,
            max_failures: 0,
            max_failure_rate: 0.0,
        }
    }
}

/// The upstream tool's summary keys, plus what failed.
#[derive(Clone, Debug, Serialize)]
pub struct StabilitySummary {
    pub ok: bool,
    pub cycles: u32,
    pub checks: u64,
    pub failures: u64,
    pub failure_rate: f64,
    pub max_failures: u64,
    pub max_failure_rate: f64,
    pub restarts: u32,
    pub service_restarts: u32,
    pub validator_restarts: u32,
    pub sends_ok: u64,
    pub duration_seconds: f64,
    pub failure_reasons: Vec<String>,
}

impl StabilitySummary {
    pub fn verdict(&self) -> String {
        format!(
            "{} failed checks of {} (rate {:.4}; allowed {} and {:.4}), {} restarts",
            self.failures, self.checks, self.failure_rate, self.max_failures, self.max_failure_rate, self.restarts
        )
    }
}

/// Where the stability gate is, for a progress display.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StabilityProgress {
    /// A setup step begins.
    Step(&'static str),
    /// A cycle ended.
    Cycle {
        cycle: u32,
        cycles: u32,
        checks: u64,
        failures: u64,
        restarts: u32,
    },
}

impl std::fmt::Display for StabilityProgress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StabilityProgress::Step(step) => write!(f, "{step}"),
            StabilityProgress::Cycle {
                cycle,
                cycles,
                checks,
                failures,
                restarts,
            } => write!(
                f,
                "cycle={cycle}/{cycles} checks={checks} failures={failures} restarts={restarts}"
            ),
        }
    }
}

/// Restarts the service and one validator in turn during a stream of health probes and sends
/// on a fresh sandbox; `progress` hears of each setup step and each cycle.
pub fn stability_gate(
    options: &StabilityOptions,
    progress: &mut dyn FnMut(&StabilityProgress),
) -> Result<StabilitySummary, StepError> {
    let started = Instant::now();
    progress(&StabilityProgress::Step("starting the sandbox testnet"));
    let api_port = options.start_port.saturating_add(90);
    let sandbox = Sandbox::create(
        &options.binary,
        &options.dir,
        options.start_port,
        api_port,
        options.consensus,
    )?;
    let exe = &sandbox.exe;
    let _testnet = TestnetGuard::new(exe);
    start_testnet(exe, options.consensus, 0, options.start_port)?;
    progress(&StabilityProgress::Step("creating the payer and the payee"));
    exe.json(&["wallet", "create", "--password", SANDBOX_PASSWORD])?;
    let payee = sandbox.second_wallet("payee", api_port.saturating_add(1))?;
    payee.json(&["wallet", "create", "--password", SANDBOX_PASSWORD])?;
    let payee_address = address(&payee)?;
    let funds = u64::from(options.cycles) + 10;
    progress(&StabilityProgress::Step("funding the payer from the faucet"));
    exe.json(&[
        "tx",
        "faucet",
        "--amount",
        &funds.to_string(),
        "--password",
        SANDBOX_PASSWORD,
    ])?;
    progress(&StabilityProgress::Step("starting the wallet service"));
    let mut service = Service::start(exe)?;
    let unlock = |service: &Service| -> Result<(), StepError> {
        let (status, body) = service.post(
            "/wallet/unlock",
            json!({ "password": SANDBOX_PASSWORD, "ttl_seconds": 3600 }),
        )?;
        if status == 200 {
            Ok(())
        } else {
            Err(step_error("/wallet/unlock", format!("{status}: {}", body["error"])))
        }
    };
    unlock(&service)?;
    let testnet_root = AppConfig::load(&exe.config)
        .map_err(|e| step_error("stability", e))?
        .data_dir()
        .join("testnet");
    let net = Localnet::new(&testnet_root).map_err(|e| step_error("stability", e))?;

    let mut summary = StabilitySummary {
        ok: false,
        cycles: options.cycles,
        checks: 0,
        failures: 0,
        failure_rate: 0.0,
        max_failures: options.max_failures,
        max_failure_rate: options.max_failure_rate,
        restarts: 0,
        service_restarts: 0,
        validator_restarts: 0,
        sends_ok: 0,
        duration_seconds: 0.0,
        failure_reasons: Vec::new(),
    };
    let fail = |summary: &mut StabilitySummary, reason: String| {
        summary.failures += 1;
        if summary.failure_reasons.len() < 10 {
            summary.failure_reasons.push(reason);
        }
    };
    for cycle in 1..=options.cycles {
        summary.checks += 1;
        if !service.health() {
            fail(&mut summary, format!("cycle {cycle}: /health did not answer ok"));
        }
        summary.checks += 1;
        match service.send(&payee_address, 1, 30) {
            Ok(_) => summary.sends_ok += 1,
            Err(e) => fail(&mut summary, format!("cycle {cycle}: {e}")),
        }
        if options.restart_every > 0 && cycle % options.restart_every == 0 && cycle < options.cycles {
            if summary.restarts.is_multiple_of(2) {
                service.restart()?;
                unlock(&service)?;
                summary.service_restarts += 1;
            } else {
                net.stop_named(&["validator-0"], Duration::from_secs(20))
                    .map_err(|e| step_error("restart validator-0", e))?;
                start_testnet(exe, options.consensus, 0, options.start_port)?;
                summary.validator_restarts += 1;
            }
            summary.restarts += 1;
        }
        progress(&StabilityProgress::Cycle {
            cycle,
            cycles: options.cycles,
            checks: summary.checks,
            failures: summary.failures,
            restarts: summary.restarts,
        });
        std::thread::sleep(options.interval);
    }
    service.stop();
    summary.failure_rate = if summary.checks == 0 {
        0.0
    } else {
        summary.failures as f64 / summary.checks as f64
    };
    summary.duration_seconds = started.elapsed().as_secs_f64();
    let restarted_as_asked =
        options.restart_every == 0 || options.restart_every >= options.cycles || summary.restarts > 0;
    summary.ok = summary.failures <= options.max_failures
        && summary.failure_rate <= options.max_failure_rate
        && restarted_as_asked;
    Ok(summary)
}
