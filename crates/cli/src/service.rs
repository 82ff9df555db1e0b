//! `ezchain serve`, `ezchain auth …` and `ezchain ops audit-verify`.

use crate::CliError;
use clap::Subcommand;
use ezchain_service::{ServiceError, audit, auth};
use ezchain_wallet::AppConfig;
use std::path::{Path, PathBuf};

#[derive(Subcommand, Debug)]
pub enum AuthCommand {
    /// Print the API token (X-EZ-Token), creating it on first use.
    ShowToken,
    /// Replace the API token; clients need the new one from the next request.
    RotateToken,
}

#[derive(Subcommand, Debug)]
pub enum OpsCommand {
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
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(io_error)?;
    runtime
        .block_on(ezchain_service::serve(config_path, crate::node::shutdown_signal()))
        .map_err(|e| {
            let (code, hint) = match &e {
                ServiceError::Config(_) => ("bad_config", Some("check ezchain.yaml")),
                ServiceError::NotLoopback(_) => ("not_loopback", Some("use app.api_host: 127.0.0.1")),
                ServiceError::Bind { .. } => ("port_in_use", Some("another process uses app.api_port")),
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
        AuthCommand::ShowToken => auth::ensure_token(&path),
        AuthCommand::RotateToken => auth::rotate_token(&path),
    }
    .map_err(io_error)?;
    if json {
        println!("{}", serde_json::json!({ "token": token, "file": path }));
    } else {
        println!("{token}");
    }
    Ok(())
}

pub fn run_ops(command: OpsCommand, config_path: &Path, json: bool) -> Result<(), CliError> {
    match command {
        OpsCommand::AuditVerify { file } => {
            let path = match file {
                Some(file) => file,
                None => load(config_path)?.log_dir().join(audit::AUDIT_FILE),
            };
            match audit::verify(&path) {
                Ok(lines) => {
                    if json {
                        println!("{}", serde_json::json!({ "ok": true, "lines": lines, "file": path }));
                    } else {
                        println!("{}: {lines} lines, chain intact", path.display());
                    }
                    Ok(())
                }
                Err((line, reason)) => {
                    if json {
                        println!(
                            "{}",
                            serde_json::json!({ "ok": false, "broken_line": line, "reason": reason, "file": path })
                        );
                    }
                    Err(CliError {
                        code: "audit_chain_broken",
                        message: format!("{}: line {line}: {reason}", path.display()),
                        hint: Some("the log was edited or truncated at or before that line"),
                    })
                }
            }
        }
    }
}
