//! `ezchain serve`, `ezchain auth …` and `ezchain ops audit-verify`.

use crate::CliError;
use clap::Subcommand;
use ezchain_service::{ServiceError, audit};
use ezchain_wallet::AppConfig;
use std::path::{Path, PathBuf};

#[derive(Subcommand, Debug)]
pub enum AuthCommand {
    /// Print the API token (X-EZ-Token), creating it on first use.
    ShowToken,
    /// Replace the API token; clients need the new one from the next request.
    RotateToken,
    /// Ask the running `ezchain serve` for a one-time sign-in link to its web wallet.
    LoginLink,
}

#[derive(Subcommand, Debug)]
pub enum OpsCommand {
    /// The runbook's post-release checks from the service's /metrics: node online status,
    /// transaction success ratio, median confirmation delay, top 3 error codes.
    MetricsProbe {
        /// The service's metrics URL (e.g. http://127.0.0.1:8787/metrics).
        #[arg(long, default_value = "http://127.0.0.1:8787/metrics")]
        url: String,
        /// Fail (exit 1) when the success ratio is below this.
        #[arg(long, default_value_t = 0.0)]
        min_success_rate: f64,
    },
    /// Sample the service's metrics over a window; write a JSON report (and an HTML page).
    CanaryMonitor {
        /// The service's metrics URL (e.g. http://127.0.0.1:8787/metrics).
        #[arg(long, default_value = "http://127.0.0.1:8787/metrics")]
        url: String,
        /// How long to sample, in seconds.
        #[arg(long, default_value_t = 300)]
        duration_sec: u64,
        /// Seconds between two samples.
        #[arg(long, default_value_t = 10.0)]
        interval_sec: f64,
        /// Seconds to wait for one sample before counting it failed.
        #[arg(long, default_value_t = 5.0)]
        timeout_sec: f64,
        /// Where to write the JSON report (an .html page is written beside it).
        #[arg(long, default_value = "dist/canary_report.json")]
        out_json: PathBuf,
    },
    /// Judge a canary report: exit 0 pass, 1 fail, 2 unreadable report.
    CanaryGate {
        /// The canary report to judge (written by `ops canary-monitor`).
        #[arg(long, default_value = "dist/canary_report.json")]
        report: PathBuf,
        /// Highest share of failed samples (the service or its nodes not answering) that passes.
        #[arg(long, default_value_t = ezchain_ops::canary::Thresholds::default().max_crash_rate)]
        max_crash_rate: f64,
        /// Lowest delivered / sent ratio that passes.
        #[arg(long, default_value_t = ezchain_ops::canary::Thresholds::default().min_tx_success_rate)]
        min_tx_success_rate: f64,
        /// Highest p95 confirmation delay, in milliseconds, that passes.
        #[arg(long, default_value_t = ezchain_ops::canary::Thresholds::default().max_sync_latency_ms_p95)]
        max_sync_latency_ms_p95: f64,
        /// Lowest share of configured nodes up that passes.
        #[arg(long, default_value_t = ezchain_ops::canary::Thresholds::default().min_node_online_rate)]
        min_node_online_rate: f64,
        /// Pass when the window has no latency data.
        #[arg(long)]
        allow_missing_latency: bool,
        /// A window without sends fails instead of being "no data".
        #[arg(long)]
        require_traffic: bool,
    },
    /// Security checks of this installation, one line each (with --source-dir, of a source tree too).
    SecurityGate {
        /// A source tree to check as well: its files scanned for secrets, its docs/SECURITY.md
        /// for the threat model. An installation has none, so the default checks none.
        #[arg(long, visible_alias = "repo", value_name = "DIR")]
        source_dir: Option<PathBuf>,
        /// A backups folder to scan as well.
        #[arg(long)]
        backups: Option<PathBuf>,
        /// Accept a keystore cost below the production floor (test setups only).
        #[arg(long)]
        allow_test_kdf: bool,
    },
    /// Consistent snapshot of the config, wallet, service state, logs, token and local node
    /// homes (databases exported online, never copied raw), with a SHA-256 manifest.
    Backup {
        /// The folder the snapshot is written under (a new subfolder per snapshot).
        #[arg(long, default_value = "backups")]
        out_dir: PathBuf,
        /// Appended to the snapshot's folder name (letters, digits, `-`, `_`, `.`).
        #[arg(long)]
        label: Option<String>,
    },
    /// Verify a snapshot and restore it; refuses while the service or local nodes run.
    Restore {
        /// The snapshot folder (backups/snapshot-…).
        #[arg(long)]
        backup_dir: PathBuf,
        /// Replace an existing config and data folder (they are kept beside, renamed).
        #[arg(long)]
        force: bool,
        /// Keep the current wallets as they are and restore everything else.
        #[arg(long, conflicts_with = "discard_wallet_changes")]
        keep_wallet: bool,
        /// Roll back wallets that hold payments the snapshot lacks (they are lost to the wallet;
        /// the replaced state is kept beside the data folder).
        #[arg(long)]
        discard_wallet_changes: bool,
    },
    /// Run the release checks: the test suites, a send/receive smoke on a fresh local testnet,
    /// the security gate, and with --with-stability the stability gate.
    ReleaseGate(crate::ops::ReleaseGateArgs),
    /// Restart the service and a validator of a fresh local testnet while probing health and
    /// sending; fail above the failure thresholds.
    StabilityGate(crate::ops::StabilityArgs),
    /// Run every runbook command against a fresh local testnet in a temporary folder.
    Drill(crate::ops::DrillArgs),
    /// Check the audit log's hash chain; reports the first broken line.
    AuditVerify {
        /// The log to check (default: <log_dir>/service_audit.log).
        #[arg(long)]
        file: Option<PathBuf>,
    },
}

fn load(config_path: &Path) -> Result<AppConfig, CliError> {
    AppConfig::load(config_path).map_err(|e| CliError {
        code: "bad_config",
        message: e.to_string(),
        hint: Some("check ezchain.yaml (or the file given with --config)"),
    })
}

fn io_error(e: std::io::Error) -> CliError {
    CliError {
        code: "io_error",
        message: e.to_string(),
        hint: None,
    }
}

pub fn serve(config_path: &Path) -> Result<(), CliError> {
    let binary = std::env::current_exe().map_err(io_error)?;
    let devnet = std::sync::Arc::new(ezchain_devnet::localnet::ServiceDevnet { binary });
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(io_error)?;
    runtime
        .block_on(ezchain_service::serve(
            config_path,
            devnet,
            crate::build_info(),
            |link| {
                use std::io::{IsTerminal, Write};
                // The link signs a browser in (once, for 10 minutes): shown on the operator's
                // terminal only, never into a log or a service manager's journal.
                let mut out = std::io::stdout();
                let _ = if out.is_terminal() {
                    writeln!(
                        out,
                        "web wallet: open {link} (a one-time sign-in link, valid 10 minutes; `ezchain auth login-link` makes another)"
                    )
                } else {
                    writeln!(
                        out,
                        "web wallet: run `ezchain auth login-link` for a sign-in link (not printed here: this output is not a terminal)"
                    )
                };
            },
            crate::node::shutdown_signal(),
        ))
        .map_err(|e| {
            let (code, hint) = match &e {
                ServiceError::Config(_) => ("bad_config", Some("check ezchain.yaml")),
                ServiceError::NotLoopback(_) => ("not_loopback", Some("use app.api_host: 127.0.0.1")),
                ServiceError::Bind { .. } => ("port_in_use", Some("another process uses app.api_port")),
                ServiceError::InUse(_) => (
                    "service_in_use",
                    Some("another `ezchain serve` already runs on this data folder: stop it, or give this one another app.data_dir"),
                ),
                ServiceError::Io(_) => ("io_error", None),
            };
            CliError {
                code,
                message: e.to_string(),
                hint,
            }
        })
}

pub fn run_auth(command: AuthCommand, config_path: &Path, json: bool) -> Result<(), CliError> {
    let config = load(config_path)?;
    let path = config.token_file();
    let token = match command {
        AuthCommand::ShowToken => ezchain_host::secret::ensure_token(&path),
        AuthCommand::RotateToken => ezchain_host::secret::rotate_token(&path),
        AuthCommand::LoginLink => return login_link(&config, json),
    }
    .map_err(io_error)?;
    if json {
        crate::print_json(serde_json::json!({ "token": token, "file": path }));
    } else {
        println!("{token}");
    }
    Ok(())
}

/// `auth login-link`: a new sign-in link from the running service (it keeps its codes in memory).
fn login_link(config: &AppConfig, json: bool) -> Result<(), CliError> {
    let token = ezchain_host::secret::read_token(&config.token_file()).map_err(io_error)?;
    let host = match config.app.api_host.as_str() {
        "0.0.0.0" | "::" => "127.0.0.1".to_string(),
        host if host.contains(':') => format!("[{host}]"),
        host => host.to_string(),
    };
    let url = format!("http://{host}:{}/ui/login-code", config.app.api_port);
    let mut nonce = [0u8; 16];
    getrandom::fill(&mut nonce).map_err(|e| io_error(std::io::Error::other(e.to_string())))?;
    let unreachable = |e: reqwest::Error| CliError {
        code: "service_unreachable",
        message: format!("{url}: {e}"),
        hint: Some("start the service first: `ezchain serve`"),
    };
    let answer: serde_json::Value = reqwest::blocking::Client::new()
        .post(&url)
        .header("X-EZ-Token", token)
        .header("X-EZ-Nonce", format!("login-{}", hex::encode(nonce)))
        .json(&serde_json::json!({}))
        .send()
        .and_then(|response| response.json())
        .map_err(unreachable)?;
    let Some(link) = answer["data"]["url"].as_str() else {
        return Err(CliError {
            code: "login_link_refused",
            message: format!("the service answered {answer}"),
            hint: Some("check that this config is the one `ezchain serve` runs with"),
        });
    };
    if json {
        crate::print_json(answer["data"].clone());
    } else {
        println!("{link}");
    }
    Ok(())
}

pub fn run_ops(command: OpsCommand, config_path: &Path, json: bool) -> Result<(), CliError> {
    match command {
        OpsCommand::MetricsProbe { url, min_success_rate } => metrics_probe(&url, min_success_rate, json),
        OpsCommand::SecurityGate {
            source_dir,
            backups,
            allow_test_kdf,
        } => {
            let config = load(config_path)?;
            let checks = ezchain_ops::security::security_gate(
                &config,
                source_dir.as_deref(),
                backups.as_deref(),
                allow_test_kdf,
            );
            let passed = checks.iter().all(|c| c.passed);
            let rows: Vec<(bool, String, String)> = checks
                .iter()
                .map(|c| (c.passed, c.name.to_string(), c.detail.clone()))
                .collect();
            report_verdicts(
                json,
                serde_json::json!({ "ok": passed, "checks": checks }),
                &rows,
                22,
                CliError {
                    code: "security_gate_failed",
                    message: "a security check failed (see the FAIL lines)".into(),
                    hint: None,
                },
            )
        }
        OpsCommand::CanaryMonitor {
            url,
            duration_sec,
            interval_sec,
            timeout_sec,
            out_json,
        } => canary_monitor(&url, duration_sec, interval_sec, timeout_sec, &out_json, json),
        OpsCommand::CanaryGate {
            report,
            max_crash_rate,
            min_tx_success_rate,
            max_sync_latency_ms_p95,
            min_node_online_rate,
            allow_missing_latency,
            require_traffic,
        } => canary_gate(
            &report,
            &ezchain_ops::canary::Thresholds {
                max_crash_rate,
                min_tx_success_rate,
                max_sync_latency_ms_p95,
                min_node_online_rate,
                allow_missing_latency,
                require_traffic,
            },
            json,
        ),
        OpsCommand::Backup { out_dir, label } => crate::ops::backup(config_path, &out_dir, label.as_deref(), json),
        OpsCommand::Restore {
            backup_dir,
            force,
            keep_wallet,
            discard_wallet_changes,
        } => {
            let wallet = match (keep_wallet, discard_wallet_changes) {
                (true, _) => ezchain_ops::backup::WalletChoice::Keep,
                (_, true) => ezchain_ops::backup::WalletChoice::Discard,
                _ => ezchain_ops::backup::WalletChoice::Refuse,
            };
            crate::ops::restore(config_path, &backup_dir, force, wallet, json)
        }
        OpsCommand::ReleaseGate(args) => crate::ops::release_gate(args, config_path, json),
        OpsCommand::StabilityGate(args) => crate::ops::stability_gate(args, json),
        OpsCommand::Drill(args) => crate::ops::drill(args, json),
        OpsCommand::AuditVerify { file } => {
            let config = load(config_path)?;
            let default_path = config.audit_log_file();
            let path = file.unwrap_or_else(|| default_path.clone());
            // The head anchors the service's own log; another file is checked as a chain only.
            let anchored = same_file(&path, &default_path);
            let result = if anchored {
                audit::verify_anchored(&path, &config.audit_head_file())
            } else {
                audit::verify(&path).map(|lines| audit::AuditReport {
                    lines,
                    anchored: false,
                    unanchored_lines: 0,
                    rotated_lines: 0,
                    mismatches: Vec::new(),
                    restores: Vec::new(),
                    recoveries: Vec::new(),
                })
            };
            let broken = |line: usize, reason: String| CliError {
                code: "audit_chain_broken",
                message: if line == 0 {
                    format!("{}: {reason}", path.display())
                } else {
                    format!("{}: line {line}: {reason}", path.display())
                },
                hint: Some(
                    "the log was edited, truncated or replaced; keep this copy as evidence (docs/SERVICE.md, audit log)",
                ),
            };
            match result {
                Ok(report) if !report.mismatches.is_empty() => {
                    if json {
                        crate::print_json(serde_json::json!({ "ok": false, "report": report, "file": path }));
                    }
                    Err(CliError {
                        code: "audit_tampered",
                        message: format!(
                            "{}: the chain is intact, but at line(s) {:?} the service found the log changed while it was stopped",
                            path.display(),
                            report.mismatches
                        ),
                        hint: Some(
                            "read those lines' `detail`; the log before them was altered (docs/SERVICE.md, audit log)",
                        ),
                    })
                }
                Ok(report) => {
                    if json {
                        crate::print_json(
                            serde_json::json!({ "ok": true, "lines": report.lines, "report": report, "file": path }),
                        );
                    } else {
                        let mut text = format!("{}: {} lines, chain intact", path.display(), report.lines);
                        if report.anchored {
                            text.push_str(", matches its anchored head");
                        } else {
                            text.push_str(" (not anchored: the chain alone was checked)");
                        }
                        if report.rotated_lines > 0 {
                            text.push_str(&format!("; rotated file {} lines", report.rotated_lines));
                        }
                        if report.unanchored_lines > 0 {
                            text.push_str(&format!(
                                "; {} line(s) after the head (written just before a stop)",
                                report.unanchored_lines
                            ));
                        }
                        for line in &report.restores {
                            text.push_str(&format!("\nline {line}: restored from a snapshot"));
                        }
                        for line in &report.recoveries {
                            text.push_str(&format!("\nline {line}: recovered after a crash"));
                        }
                        println!("{text}");
                    }
                    Ok(())
                }
                Err((line, reason)) => {
                    if json {
                        crate::print_json(
                            serde_json::json!({ "ok": false, "broken_line": line, "reason": reason, "file": path }),
                        );
                    }
                    Err(broken(line, reason))
                }
            }
        }
    }
}

/// True when two paths name the same file (or the same missing path).
fn same_file(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    }
}

fn metrics_probe(url: &str, min_success_rate: f64, json: bool) -> Result<(), CliError> {
    use ezchain_ops::probe::{parse, report};
    let unreachable = |message: String| CliError {
        code: "metrics_unreachable",
        message,
        hint: Some("is `ezchain serve` running? check --url"),
    };
    let response = reqwest::blocking::Client::builder()
        .timeout(std::time::Duration::from_secs(8))
        .build()
        .and_then(|client| client.get(url).send())
        .map_err(|e| unreachable(format!("{url}: {e}")))?;
    if !response.status().is_success() {
        return Err(unreachable(format!("{url}: HTTP {}", response.status())));
    }
    let text = response.text().map_err(|e| unreachable(format!("{url}: {e}")))?;
    let samples = parse(&text);
    if !samples.iter().any(|s| s.name.starts_with("ezchain_")) {
        return Err(unreachable(format!("{url} serves no ezchain metrics")));
    }
    let report = report(&samples);
    let failed = report
        .transaction_success_rate
        .is_some_and(|rate| rate < min_success_rate);
    if json {
        let mut value = serde_json::json!(report);
        value["passed"] = serde_json::json!(!failed);
        crate::print_json(serde_json::to_string_pretty(&value).unwrap_or_default());
    } else {
        let fmt = |v: Option<f64>, unit: &str| v.map_or("no data".to_string(), |v| format!("{v:.2}{unit}"));
        let up = report.nodes.values().filter(|up| **up).count();
        println!(
            "node online        {} ({up}/{} configured nodes up)",
            fmt(report.node_online_rate, ""),
            report.nodes.len()
        );
        if report.sends_total > 0.0 {
            println!(
                "tx success ratio   {} ({} of {} sends)",
                fmt(report.transaction_success_rate, ""),
                report.sends_delivered,
                report.sends_total
            );
        } else {
            println!(
                "tx success ratio   no sends since the service started (it counts payments made through its API, not the CLI's)"
            );
        }
        println!(
            "confirmation delay median {}  p95 {}",
            fmt(report.median_confirmation_delay_ms, " ms"),
            fmt(report.p95_confirmation_delay_ms, " ms")
        );
        let top: Vec<String> = report
            .top_error_codes
            .iter()
            .map(|(code, n)| format!("{code} ({n})"))
            .collect();
        println!(
            "top error codes    {}",
            if top.is_empty() { "none".into() } else { top.join(", ") }
        );
        println!("{}", if failed { "FAILED" } else { "PASSED" });
    }
    if failed {
        return Err(CliError {
            code: "probe_failed",
            message: format!(
                "success ratio {:.3} is below --min-success-rate {min_success_rate}",
                report.transaction_success_rate.unwrap_or(0.0)
            ),
            hint: Some("see `top error codes` and the audit log"),
        });
    }
    Ok(())
}

fn canary_monitor(
    url: &str,
    duration_sec: u64,
    interval_sec: f64,
    timeout_sec: f64,
    out_json: &Path,
    json: bool,
) -> Result<(), CliError> {
    use ezchain_ops::canary::{analyse, html_report, monitor};
    use std::io::Write;
    if !(0.05..=3600.0).contains(&interval_sec) || !(0.5..=60.0).contains(&timeout_sec) || duration_sec == 0 {
        return Err(CliError {
            code: "invalid_arguments",
            message: "need --duration-sec ≥ 1, --interval-sec 0.05–3600, --timeout-sec 0.5–60".into(),
            hint: None,
        });
    }
    let probes = monitor(
        url,
        std::time::Duration::from_secs(duration_sec),
        std::time::Duration::from_secs_f64(interval_sec),
        std::time::Duration::from_secs_f64(timeout_sec),
        |done, planned| {
            let width = 30;
            let filled = (done * width / planned.max(1)).min(width);
            eprint!(
                "\r[{}{}] {done}/{planned} probes",
                "#".repeat(filled),
                ".".repeat(width - filled)
            );
            let _ = std::io::stderr().flush();
        },
    );
    eprintln!();
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    let report = analyse(url, &probes, now_ms);
    let text = serde_json::to_string_pretty(&report).unwrap_or_default();
    if let Some(parent) = out_json.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(io_error)?;
    }
    std::fs::write(out_json, &text).map_err(io_error)?;
    let json_file = out_json
        .file_name()
        .map_or_else(String::new, |name| name.to_string_lossy().into_owned());
    std::fs::write(
        out_json.with_extension("html"),
        html_report(&report, &ezchain_ops::canary::Thresholds::default(), &json_file),
    )
    .map_err(io_error)?;
    if json {
        crate::print_json(&text);
    } else {
        println!(
            "{} probes ({} failed), {} sends, success {}, p95 confirmation {}, node online {}",
            report.probes_total,
            report.probes_failed,
            report.sends,
            report
                .transaction_success_rate_avg
                .map_or("no data".into(), |r| format!("{r:.3}")),
            report
                .sync_latency_ms_p95
                .map_or("no data".into(), |ms| format!("{ms:.0} ms")),
            report
                .node_online_rate_avg
                .map_or("no data".into(), |r| format!("{r:.3}")),
        );
        println!("wrote {}", out_json.display());
    }
    Ok(())
}

fn canary_gate(report_path: &Path, thresholds: &ezchain_ops::canary::Thresholds, json: bool) -> Result<(), CliError> {
    let report: ezchain_ops::canary::CanaryReport = match std::fs::read_to_string(report_path)
        .map_err(|e| e.to_string())
        .and_then(|text| serde_json::from_str(&text).map_err(|e| e.to_string()))
    {
        Ok(report) => report,
        Err(reason) => {
            // Exit status 2: the report itself is unusable, which is not a verdict.
            eprintln!("error[report_unreadable]: {}: {reason}", report_path.display());
            std::process::exit(2);
        }
    };
    let verdicts = ezchain_ops::canary::gate(&report, thresholds);
    let passed = verdicts.iter().all(|v| v.passed);
    let rows: Vec<(bool, String, String)> = verdicts
        .iter()
        .map(|v| (v.passed, v.rule.clone(), format!("value {}", v.value)))
        .collect();
    let document =
        serde_json::json!({ "ok": passed, "report": report_path, "thresholds": thresholds, "verdicts": verdicts });
    report_verdicts(
        json,
        document,
        &rows,
        42,
        CliError {
            code: "canary_failed",
            message: "the canary window breaks a threshold".into(),
            hint: Some("review error_code_totals in the report and the audit log; roll back if needed"),
        },
    )
}

/// Prints a gate's outcome — the JSON `document`, or one `ok`/`FAIL` line per (passed, rule,
/// detail) row and a final PASSED/FAILED — and fails with `failure` unless every row passed.
pub fn report_verdicts(
    json: bool,
    document: serde_json::Value,
    rows: &[(bool, String, String)],
    width: usize,
    failure: CliError,
) -> Result<(), CliError> {
    let all = rows.iter().all(|(passed, _, _)| *passed);
    if json {
        crate::print_json(serde_json::to_string_pretty(&document).unwrap_or_default());
    } else {
        for (passed, rule, detail) in rows {
            println!("{:<4} {rule:<width$} {detail}", if *passed { "ok" } else { "FAIL" });
        }
        println!("{}", if all { "PASSED" } else { "FAILED" });
    }
    if all { Ok(()) } else { Err(failure) }
}
