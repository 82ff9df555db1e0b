//! `ezchain node run --home DIR`.

use crate::CliError;
use clap::{Args, Subcommand};
use ezchain_node::config::NodeConfig;
use ezchain_node::runner::{NodeError, run};
use std::path::PathBuf;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

#[derive(Subcommand, Debug)]
pub enum NodeCommand {
    /// Run a validator or bootstrap node in the foreground until SIGINT or SIGTERM.
    Run(RunArgs),
}

#[derive(Args, Debug)]
pub struct RunArgs {
    /// The node's home folder (holds node.yaml).
    #[arg(long)]
    home: PathBuf,
}

pub fn run_command(command: NodeCommand) -> Result<(), CliError> {
    match command {
        NodeCommand::Run(args) => {
            let config = NodeConfig::load(&args.home).map_err(|e| node_error(NodeError::Config(e)))?;
            let log_dir = config.resolve(&args.home, &config.log_dir);
            std::fs::create_dir_all(&log_dir).map_err(|e| CliError {
                code: "io_error",
                message: format!("cannot create {}: {e}", log_dir.display()),
                hint: None,
            })?;
            let file = tracing_appender::rolling::never(&log_dir, "node.log");
            let (file_writer, _guard) = tracing_appender::non_blocking(file);
            let filter = EnvFilter::try_from_env("EZCHAIN_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
            tracing_subscriber::registry()
                .with(filter)
                .with(tracing_subscriber::fmt::layer().with_writer(std::io::stderr))
                .with(
                    tracing_subscriber::fmt::layer()
                        .with_ansi(false)
                        .with_writer(file_writer),
                )
                .init();
            let faucet = crate::faucet::start(&args.home, &config)?;
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .map_err(|e| CliError {
                    code: "runtime_error",
                    message: e.to_string(),
                    hint: None,
                })?;
            runtime
                .block_on(run(&args.home, shutdown_signal(), faucet))
                .map_err(node_error)
        }
    }
}

async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut terminate = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(signal) => signal,
            Err(_) => {
                let _ = interrupt.await;
                return;
            }
        };
        tokio::select! {
            _ = interrupt => {}
            _ = terminate.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = interrupt.await;
}

fn node_error(error: NodeError) -> CliError {
    let (code, hint) = match &error {
        NodeError::Config(_) => ("bad_config", Some("check node.yaml in the --home folder")),
        NodeError::Genesis(_) => (
            "bad_genesis",
            Some("every node of a testnet needs the same genesis.json"),
        ),
        NodeError::Key(_) => ("bad_key", None),
        NodeError::Store(_) => (
            "store_error",
            Some("the data folder may belong to another chain or be damaged"),
        ),
        NodeError::RpcBind { .. } => (
            "port_in_use",
            Some("another process uses the RPC port; stop it or change rpc.listen_addr"),
        ),
        NodeError::Engine(_) => ("engine_error", None),
        NodeError::Mailbox(_) => (
            "store_error",
            Some("the mailbox database in the data folder may be damaged"),
        ),
        NodeError::FaucetMismatch => ("bad_config", Some("add a `faucet` section to node.yaml")),
    };
    CliError {
        code,
        message: error.to_string(),
        hint,
    }
}
