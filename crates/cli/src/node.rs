//! `ezchain node run --home DIR`, `node health --home DIR` (a container's HEALTHCHECK), and the
//! local testnet's `node start|status|stop`.

use crate::CliError;
use clap::{Args, Subcommand};
use ezchain_devnet::localnet::{Localnet, LocalnetError, Role};
use ezchain_node::config::NodeConfig;
use ezchain_node::runner::{NodeError, run};
use ezchain_wallet::AppConfig;
use serde_json::json;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

#[derive(Subcommand, Debug)]
pub enum NodeCommand {
    /// Run a validator or bootstrap node in the foreground until SIGINT or SIGTERM.
    Run(RunArgs),
    /// Ask the node of this home whether it is ready (its RPC's `/readyz`): exit 0 when ready,
    /// 1 with the reasons when not. A container image's HEALTHCHECK, so no curl is needed.
    Health(RunArgs),
    /// Start the local testnet under <data_dir>/testnet/ (created on first use) in the
    /// background, wait until every node is ready, and point this wallet config at it.
    Start(StartArgs),
    /// Role, pid, liveness, height, peers and readiness of every local node; exit status 1
    /// unless all are up.
    Status,
    /// Stop the local testnet (SIGTERM, then SIGKILL after a timeout); its data is kept.
    /// `node start` starts again whatever is stopped.
    Stop {
        /// Stop only this node (repeatable), e.g. `--node validator-1`; names are in `node status`.
        #[arg(long = "node")]
        nodes: Vec<String>,
    },
}

#[derive(Args, Debug)]
pub struct StartArgs {
    /// Validators (default: network.consensus_nodes). Used when the testnet is created; against
    /// an existing one of another layout it is refused (`testnet_differs`).
    #[arg(long)]
    consensus: Option<usize>,
    /// Funded account nodes, each an `ezchain serve` with its own wallet (default:
    /// network.account_nodes). Only used when the testnet is created.
    #[arg(long)]
    accounts: Option<u32>,
    /// First port (default: network.start_port). Only used when the testnet is created.
    #[arg(long)]
    start_port: Option<u16>,
    /// Seconds to wait for every node to be ready.
    #[arg(long, default_value_t = 60)]
    timeout: u64,
}

#[derive(Args, Debug)]
pub struct RunArgs {
    /// The node's home folder (holds node.yaml).
    #[arg(long)]
    home: PathBuf,
}

pub fn run_command(
    command: NodeCommand,
    config_path: &Path,
    json: bool,
    log_format: crate::LogFormat,
) -> Result<(), CliError> {
    match command {
        NodeCommand::Start(args) => start(args, config_path, json),
        NodeCommand::Status => status(config_path, json),
        NodeCommand::Stop { nodes } => stop(config_path, &nodes, json),
        NodeCommand::Health(args) => health(&args.home, json),
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
            use std::io::IsTerminal;
            tracing_subscriber::registry()
                .with(filter)
                .with(crate::log_layer(
                    log_format,
                    std::io::stderr,
                    std::io::stderr().is_terminal(),
                ))
                .with(crate::log_layer(log_format, file_writer, false))
                .init();
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .map_err(|e| CliError {
                    code: "runtime_error",
                    message: e.to_string(),
                    hint: None,
                })?;
            runtime
                .block_on(run(&args.home, crate::build_info(), shutdown_signal()))
                .map_err(node_error)
        }
    }
}

/// `GET /readyz` on the node's own RPC listener (an unspecified listen address is asked on
/// loopback).
fn health(home: &Path, json: bool) -> Result<(), CliError> {
    let config = NodeConfig::load(home).map_err(|e| node_error(NodeError::Config(e)))?;
    let mut target = config.rpc.listen_addr;
    if target.ip().is_unspecified() {
        target.set_ip(match target {
            std::net::SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
            std::net::SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
        });
    }
    let url = format!("http://{target}{}", ezchain_rpc::paths::READYZ);
    let unreachable = |e: reqwest::Error| CliError {
        code: "node_unreachable",
        message: format!("{url}: {e}"),
        hint: Some("is the node running? its log is under the home's logs/"),
    };
    let answer = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(3))
        .build()
        .and_then(|client| client.get(&url).send())
        .map_err(unreachable)?;
    let ready = answer.status().is_success();
    let body: serde_json::Value = answer.json().unwrap_or(serde_json::Value::Null);
    if json {
        crate::print_json(json!({ "ready": ready, "readyz": body }).to_string());
    } else {
        println!("{} {}", if ready { "ready" } else { "not ready" }, body);
    }
    if ready {
        Ok(())
    } else {
        Err(CliError {
            code: "node_not_ready",
            message: format!("{url} answered not ready: {body}"),
            hint: Some("a validator is ready once it has peers and a fresh tip; see `ezchain network check`"),
        })
    }
}

pub async fn shutdown_signal() {
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
            Some(
                "the node's store could not be used (the message says why): a folder of another chain, or damage; RUNBOOK.md §5 restores one from a backup",
            ),
        ),
        NodeError::RpcBind { .. } => (
            "rpc_listen_failed",
            Some(
                "another process uses the RPC address (is this node already running?); stop it or change rpc.listen_addr in node.yaml",
            ),
        ),
        NodeError::MetricsBind { .. } => (
            "metrics_listen_failed",
            Some("another process uses metrics.listen_addr; stop it or change metrics.listen_addr in node.yaml"),
        ),
        NodeError::P2pBind { .. } => (
            "p2p_listen_failed",
            Some(
                "another process uses the p2p address (is this node already running?); stop it or change p2p.listen_addr in node.yaml",
            ),
        ),
        NodeError::Engine(_) => ("engine_error", None),
        NodeError::Mailbox(_) => (
            "store_error",
            Some("the mailbox database in the data folder may be damaged"),
        ),
        NodeError::Faucet(error) => (
            error.code(),
            Some("the faucet section of node.yaml names the faucet's keystore and its password file"),
        ),
        NodeError::HomeInUse { .. } => (
            "home_in_use",
            Some("this node already runs (`ezchain node status`); two processes on one home would sign twice"),
        ),
        NodeError::SignGuard(_) => (
            "sign_record_unusable",
            Some("a validator never signs without its record; see docs/NODE.md (restart and recover)"),
        ),
        NodeError::SignRefused(_) => (
            "double_sign_refused",
            Some(
                "the engine asked for a second, different signature at a step already signed; start the node again: it catches up and signs on (docs/NODE.md)",
            ),
        ),
        NodeError::KeyUsedElsewhere(_) => (
            "key_used_elsewhere",
            Some("stop every other process that runs this validator's node_key.json; see docs/NODE.md"),
        ),
    };
    CliError {
        code,
        message: error.to_string(),
        hint,
    }
}

fn localnet_error(error: LocalnetError) -> CliError {
    let (code, hint) = match &error {
        LocalnetError::NotReady { .. } => (
            "node_not_ready",
            Some("see the node's log under <data_dir>/testnet/<node>/logs/"),
        ),
        LocalnetError::Spawn { .. } => ("node_spawn_failed", None),
        LocalnetError::Init(_) => (
            "testnet_init_failed",
            Some("check network.start_port and that the ports are free"),
        ),
        LocalnetError::Layout(_) => (
            "bad_testnet",
            Some("<data_dir>/testnet/ is not a testnet written by ezchain"),
        ),
        LocalnetError::Io { .. } => ("io_error", None),
    };
    CliError {
        code,
        message: error.to_string(),
        hint,
    }
}

fn load_config(config_path: &Path) -> Result<AppConfig, CliError> {
    AppConfig::load(config_path).map_err(|e| CliError {
        code: "bad_config",
        message: e.to_string(),
        hint: Some("check ezchain.yaml (or the file given with --config)"),
    })
}

fn localnet(config: &AppConfig) -> Result<Localnet, CliError> {
    Localnet::new(&config.data_dir().join("testnet")).map_err(localnet_error)
}

/// `node start` with layout flags against an existing testnet of another layout: the flags would
/// be ignored (it used to answer `already_running` and start nothing new), so say what exists
/// and how to get the asked-for one.
fn refuse_other_layout(net: &Localnet, args: &StartArgs) -> Result<(), CliError> {
    let nodes = net.nodes().map_err(localnet_error)?;
    let count = |role: Role| nodes.iter().filter(|node| node.role == role).count();
    let (validators, accounts) = (count(Role::Validator), count(Role::Account));
    // Node i has p2p start + 2i and RPC start + 2i + 1 (testnet init).
    let start_port = nodes
        .iter()
        .filter(|node| node.role != Role::Account)
        .map(|node| node.rpc.port().saturating_sub(1))
        .min();
    let mut differs = Vec::new();
    if let Some(asked) = args.consensus.filter(|asked| *asked != validators) {
        differs.push(format!("--consensus {asked} (it has {validators} validators)"));
    }
    if let Some(asked) = args.start_port.filter(|asked| Some(*asked) != start_port) {
        let has = start_port.map_or("other ports".to_string(), |p| format!("ports from {p}"));
        differs.push(format!("--start-port {asked} (it uses {has})"));
    }
    if let Some(asked) = args.accounts.filter(|asked| *asked as usize != accounts) {
        differs.push(format!("--accounts {asked} (it has {accounts} account nodes)"));
    }
    if differs.is_empty() {
        return Ok(());
    }
    Err(CliError {
        code: "testnet_differs",
        message: format!(
            "a testnet already exists in {} and differs from what was asked: {}",
            net.root().display(),
            differs.join(", ")
        ),
        hint: Some(
            "leave the flags out to start the existing testnet; for a new one, `ezchain node stop`, then move or remove that folder (or use another app.data_dir)",
        ),
    })
}

fn start(args: StartArgs, config_path: &Path, json_output: bool) -> Result<(), CliError> {
    let mut config = load_config(config_path)?;
    let accounts = args.accounts.unwrap_or(config.network.account_nodes);
    let net = localnet(&config)?;
    let created = !net.exists();
    if !created {
        refuse_other_layout(&net, &args)?;
    }
    if created {
        let validators = args.consensus.unwrap_or(config.network.consensus_nodes as usize);
        let start_port = args.start_port.unwrap_or(config.network.start_port);
        net.init(validators, accounts, start_port, config.wallet.scrypt_log_n)
            .map_err(localnet_error)?;
    }
    let binary = std::env::current_exe().map_err(|e| CliError {
        code: "io_error",
        message: format!("cannot find the ezchain binary: {e}"),
        hint: None,
    })?;
    let progress = crate::progress::Progress::spinner("starting the local testnet");
    let started = net
        .start_watched(&binary, Duration::from_secs(args.timeout), &mut |awaiting| {
            progress.set_message(format!(
                "{}/{} ready; waiting for {}: {}",
                awaiting.ready, awaiting.of, awaiting.name, awaiting.reason
            ));
        })
        .map_err(localnet_error)?;
    drop(progress);
    // Point the wallet at the local testnet.
    let bootstrap = net.bootstrap_rpc().map_err(localnet_error)?;
    config.network.bootstrap_nodes = vec![bootstrap.to_string()];
    config.network.genesis_file = config
        .app
        .data_dir
        .join("testnet")
        .join(ezchain_node::testnet::GENESIS_FILE);
    config.save(config_path).map_err(|e| CliError {
        code: "io_error",
        message: e.to_string(),
        hint: None,
    })?;
    let states = net.status().map_err(localnet_error)?;
    let status = if started { "started" } else { "already_running" };
    if json_output {
        crate::print_json(
            serde_json::to_string_pretty(
                &json!({ "status": status, "created": created, "testnet": net.root(), "nodes": states }),
            )
            .unwrap_or_default(),
        );
    } else {
        println!("{status}: {} nodes ready in {}", states.len(), net.root().display());
        for state in &states {
            println!(
                "  {:<12} pid {:<8} rpc {}  height {}",
                state.name,
                state.pid.unwrap_or(0),
                state.rpc,
                state.height.unwrap_or(0)
            );
        }
        println!(
            "wallet config {} now uses bootstrap node {bootstrap}",
            config_path.display()
        );
    }
    Ok(())
}

fn status(config_path: &Path, json_output: bool) -> Result<(), CliError> {
    let config = load_config(config_path)?;
    let net = localnet(&config)?;
    if !net.exists() {
        return Err(CliError {
            code: "not_initialized",
            message: format!("no local testnet at {}", net.root().display()),
            hint: Some("run `ezchain node start`"),
        });
    }
    let states = net.status().map_err(localnet_error)?;
    let up = states.iter().filter(|s| s.alive && s.ready).count();
    let all_up = up == states.len();
    if json_output {
        crate::print_json(serde_json::to_string_pretty(&json!({ "status": if all_up { "running" } else { "degraded" }, "up": up, "total": states.len(), "nodes": states }))
                .unwrap_or_default());
    } else {
        for state in &states {
            println!(
                "{:<12} {:<9} pid {:<8} {:<6} height {:<6} peers {:<3} {}",
                state.name,
                state.role,
                state.pid.map_or("-".to_string(), |p| p.to_string()),
                if state.alive { "alive" } else { "DOWN" },
                state.height.map_or("-".to_string(), |h| h.to_string()),
                state.peers.map_or("-".to_string(), |p| p.to_string()),
                if state.ready {
                    "ready".to_string()
                } else {
                    format!("not ready: {}", state.reasons.join("; "))
                }
            );
        }
        println!("{up}/{} nodes up and ready", states.len());
    }
    if all_up {
        Ok(())
    } else {
        Err(CliError {
            code: "nodes_down",
            message: format!("{} of {} nodes are down or not ready", states.len() - up, states.len()),
            hint: Some("`ezchain node start` restarts the stopped ones"),
        })
    }
}

fn stop(config_path: &Path, nodes: &[String], json_output: bool) -> Result<(), CliError> {
    let config = load_config(config_path)?;
    let net = localnet(&config)?;
    let stopped = if !net.exists() {
        Vec::new()
    } else if nodes.is_empty() {
        net.stop(Duration::from_secs(20)).map_err(localnet_error)?
    } else {
        let names: Vec<&str> = nodes.iter().map(String::as_str).collect();
        net.stop_named(&names, Duration::from_secs(20))
            .map_err(localnet_error)?
    };
    let status = if stopped.is_empty() { "not_running" } else { "stopped" };
    if json_output {
        crate::print_json(json!({ "status": status, "stopped": stopped }));
    } else if stopped.is_empty() {
        println!("not running");
    } else {
        println!("stopped {}", stopped.join(", "));
    }
    Ok(())
}
