//! `ezchain`: one binary, a thin layer of clap subcommands over the EZchain crates.
//!
//! Errors go to stderr as `error[<code>]: <message>` with a hint; exit status 1 for a failed
//! command, 2 for a usage error (clap's own).

mod bench;
mod config_cmd;
mod network;
mod node;
mod ops;
mod password;
mod progress;
mod service;
mod testnet;
mod wallet;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

/// `ezchain --version`: the version, the git commit and its date (from build.rs).
const LONG_VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("EZCHAIN_BUILD_COMMIT"),
    ", ",
    env!("EZCHAIN_BUILD_DATE"),
    ")"
);

/// What this binary is, for the node's and the service's `/status` and `ezchain_build_info`.
pub fn build_info() -> ezchain_host::build::BuildInfo {
    ezchain_host::build::BuildInfo::new(
        env!("CARGO_PKG_VERSION"),
        env!("EZCHAIN_BUILD_COMMIT"),
        env!("EZCHAIN_BUILD_DATE"),
    )
}

/// EZchain: a payment blockchain where recipients verify the value they receive.
#[derive(Parser, Debug)]
#[command(name = "ezchain", version = LONG_VERSION, about, long_about = None, arg_required_else_help = true)]
struct Cli {
    /// Print machine-readable JSON instead of text.
    #[arg(long, global = true)]
    json: bool,
    /// The wallet's settings file; relative paths in it are resolved against its folder. Without
    /// it, `./ezchain.yaml` is used (defaults when absent); a file named here must exist.
    #[arg(long, global = true)]
    config: Option<std::path::PathBuf>,
    /// How logs are written: `text` (coloured only on a terminal) or `json` (one object per
    /// line). Default: `EZCHAIN_LOG_FORMAT`, else text.
    #[arg(long, global = true, value_enum)]
    log_format: Option<LogFormat>,
    /// Print the protocol versions this build speaks and exit.
    #[arg(long)]
    protocol_info: bool,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Create and manage testnet layouts.
    #[command(subcommand)]
    Testnet(testnet::TestnetCommand),
    /// Run a node.
    #[command(subcommand)]
    Node(node::NodeCommand),
    /// Join a hosted testnet from this folder; see how its nodes look from here.
    #[command(subcommand)]
    Network(network::NetworkCommand),
    /// Create, restore and inspect the wallet.
    #[command(subcommand)]
    Wallet(wallet::WalletCommand),
    /// Faucet, send, receive, and the wallet's transactions.
    #[command(subcommand)]
    Tx(wallet::TxCommand),
    /// Run the local wallet service (HTTP API on app.api_host:app.api_port).
    Serve,
    /// The wallet service's API token.
    #[command(subcommand)]
    Auth(service::AuthCommand),
    /// Operations tools.
    #[command(subcommand)]
    Ops(service::OpsCommand),
    /// Measure throughput and finality latency on a fresh local testnet.
    Bench(bench::BenchArgs),
    /// Show or check the settings file.
    #[command(subcommand)]
    Config(config_cmd::ConfigCommand),
    /// Print a shell completion script (e.g. `ezchain completions bash > /etc/bash_completion.d/ezchain`).
    Completions {
        /// The shell to complete for.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the manual page (roff; e.g. `ezchain man > ezchain.1 && man ./ezchain.1`).
    Man,
}

/// A failed command: a stable code for scripts, a message, and what to do about it.
pub struct CliError {
    pub code: &'static str,
    pub message: String,
    pub hint: Option<&'static str>,
}

impl CliError {
    /// 1 for a failure; 3 for a send still on its way (`send_pending`: not a failure, and not
    /// a finished payment either).
    fn exit_code(&self) -> ExitCode {
        if self.code == wallet::SEND_PENDING {
            ExitCode::from(3)
        } else {
            ExitCode::FAILURE
        }
    }
}

/// How log lines are written.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines; colours only when the output is a terminal.
    #[default]
    Text,
    /// One JSON object per line (for log shippers).
    Json,
}

impl LogFormat {
    /// `--log-format`, else `EZCHAIN_LOG_FORMAT` (`json` or `text`), else text.
    fn resolve(given: Option<LogFormat>) -> LogFormat {
        given.unwrap_or_else(|| match std::env::var("EZCHAIN_LOG_FORMAT").ok().as_deref() {
            Some(format) if format.eq_ignore_ascii_case("json") => LogFormat::Json,
            _ => LogFormat::Text,
        })
    }
}

/// A log layer writing to `writer` in `format`; `terminal` allows colours (never in a file or a
/// pipe: a log file full of escape codes is unreadable).
pub fn log_layer<S, W>(
    format: LogFormat,
    writer: W,
    terminal: bool,
) -> Box<dyn tracing_subscriber::Layer<S> + Send + Sync>
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
    W: for<'w> tracing_subscriber::fmt::MakeWriter<'w> + Send + Sync + 'static,
{
    use tracing_subscriber::Layer;
    match format {
        LogFormat::Text => tracing_subscriber::fmt::layer()
            .with_ansi(terminal)
            .with_writer(writer)
            .boxed(),
        LogFormat::Json => tracing_subscriber::fmt::layer().json().with_writer(writer).boxed(),
    }
}

/// Logs to stderr at `default_level` (`EZCHAIN_LOG` overrides it).
fn init_stderr_logging(format: LogFormat, default_level: &str) {
    use std::io::IsTerminal;
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let filter = tracing_subscriber::EnvFilter::try_from_env("EZCHAIN_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_level));
    let _ = tracing_subscriber::registry()
        .with(filter)
        .with(log_layer(format, std::io::stderr, std::io::stderr().is_terminal()))
        .try_init();
}

/// One-shot commands end quietly when their reader goes away (`ezchain tx history --json |
/// head -c1`), as Unix tools do: the default SIGPIPE action instead of Rust's ignore-and-panic.
/// Long-running processes (`serve`, `node run`) keep ignoring it: a closed log pipe must not stop
/// a node. Sockets are unaffected either way (they are written with MSG_NOSIGNAL).
fn end_quietly_on_closed_pipe(command: Option<&Command>) {
    let long_running = matches!(command, Some(Command::Serve | Command::Node(node::NodeCommand::Run(_))));
    if !long_running {
        use nix::sys::signal::{SigHandler, Signal, signal};
        // Safety: no signal handler runs Rust code; SIG_DFL is the kernel's default action.
        let _ = unsafe { signal(Signal::SIGPIPE, SigHandler::SigDfl) };
    }
}

/// Commands that start testnets and services of their own (the bench, the gates, the drill)
/// stop them when this process is told to stop: SIGINT (Ctrl-C) or SIGTERM run the pending
/// clean-up actions (`ezchain_devnet::cleanup`), then the process exits 130 or 143 as a killed one
/// would. Without this, the signal ended the process and left its node processes running.
fn stop_what_it_started_on_signal(command: Option<&Command>) {
    let starts_processes = matches!(
        command,
        Some(Command::Bench(_))
            | Some(Command::Ops(
                service::OpsCommand::ReleaseGate(_)
                    | service::OpsCommand::StabilityGate(_)
                    | service::OpsCommand::Drill(_)
            ))
    );
    if !starts_processes {
        return;
    }
    use signal_hook::consts::{SIGINT, SIGTERM};
    let Ok(mut signals) = signal_hook::iterator::Signals::new([SIGINT, SIGTERM]) else {
        return;
    };
    std::thread::spawn(move || {
        if let Some(signal) = signals.forever().next() {
            eprintln!("stopping what this command started (signal {signal})");
            ezchain_devnet::cleanup::run_all();
            std::process::exit(128 + signal);
        }
    });
}

/// The default settings file: it may be absent (every setting then has its default).
const DEFAULT_CONFIG: &str = "ezchain.yaml";

/// The settings file for `command`. A file named with `--config` must exist — a typo must not
/// run on defaults somewhere else (it once started a whole testnet in another folder); only the
/// default name may be absent.
fn config_path(given: Option<&std::path::Path>, command: Option<&Command>) -> Result<std::path::PathBuf, CliError> {
    let reads_config = !matches!(
        command,
        None | Some(Command::Testnet(_))
            | Some(Command::Bench(_))
            | Some(Command::Completions { .. })
            | Some(Command::Man)
            | Some(Command::Node(node::NodeCommand::Run(_)))
            // Joining writes the settings file.
            | Some(Command::Network(network::NetworkCommand::Join { .. }))
    );
    match given {
        None => Ok(std::path::PathBuf::from(DEFAULT_CONFIG)),
        Some(path) if reads_config && !path.exists() => Err(CliError {
            code: "config_not_found",
            message: format!("{} does not exist", path.display()),
            hint: Some(
                "check the path; to start from the defaults, create it empty (`touch FILE`) or leave --config out to use ./ezchain.yaml",
            ),
        }),
        Some(path) => Ok(path.to_path_buf()),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    end_quietly_on_closed_pipe(cli.command.as_ref());
    stop_what_it_started_on_signal(cli.command.as_ref());
    let config = match config_path(cli.config.as_deref(), cli.command.as_ref()) {
        Ok(path) => path,
        Err(error) => return report(error, cli.json),
    };
    let json = cli.json;
    let log_format = LogFormat::resolve(cli.log_format);
    let result = match cli.command {
        None => {
            if cli.protocol_info {
                println!("bundle envelope version: {}", ezchain_protocol::bundle::BUNDLE_VERSION);
                println!("block header version:    {}", ezchain_protocol::block::BLOCK_VERSION);
                println!("state format:            {}", ezchain_protocol::state::STATE_FORMAT);
            }
            Ok(())
        }
        Some(Command::Testnet(command)) => testnet::run(command, cli.json),
        Some(Command::Node(command)) => node::run_command(command, &config, cli.json, log_format),
        Some(Command::Network(command)) => {
            init_stderr_logging(log_format, "warn");
            network::run(command, &config, cli.json)
        }
        Some(Command::Wallet(command)) => {
            init_stderr_logging(log_format, "warn");
            wallet::run_wallet(command, &config, cli.json)
        }
        Some(Command::Tx(command)) => {
            init_stderr_logging(log_format, "warn");
            wallet::run_tx(command, &config, cli.json)
        }
        Some(Command::Serve) => {
            init_stderr_logging(log_format, "info");
            service::serve(&config)
        }
        Some(Command::Auth(command)) => service::run_auth(command, &config, cli.json),
        Some(Command::Ops(command)) => service::run_ops(command, &config, cli.json),
        Some(Command::Bench(args)) => bench::run_bench(args, cli.json),
        Some(Command::Config(command)) => config_cmd::run(command, &config, cli.json),
        Some(Command::Completions { shell }) => {
            use clap::CommandFactory;
            clap_complete::generate(shell, &mut Cli::command(), "ezchain", &mut std::io::stdout());
            Ok(())
        }
        Some(Command::Man) => {
            use clap::CommandFactory;
            clap_mangen::Man::new(Cli::command())
                .render(&mut std::io::stdout())
                .map_err(|e| CliError {
                    code: "io_error",
                    message: e.to_string(),
                    hint: None,
                })
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => report(error, json),
    }
}

/// Set once a command has printed its JSON document (a failing gate or `node status` prints
/// its report before it fails): a failure then adds no second document to stdout.
static JSON_PRINTED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Prints a command's JSON document on stdout.
pub fn print_json(document: impl std::fmt::Display) {
    JSON_PRINTED.store(true, std::sync::atomic::Ordering::Relaxed);
    println!("{document}");
}

/// A failure: `error[code]: message` and the hint on stderr; with `--json`, when the command
/// printed no report of its own, also `{"ok": false, "error": {"code", "message", "hint"}}` on
/// stdout, where scripts read. Exits with [`CliError::exit_code`].
fn report(error: CliError, json: bool) -> ExitCode {
    eprintln!("error[{}]: {}", error.code, error.message);
    if let Some(hint) = error.hint {
        eprintln!("  hint: {hint}");
    }
    if json && !JSON_PRINTED.load(std::sync::atomic::Ordering::Relaxed) {
        let object = serde_json::json!({
            "ok": false,
            "error": { "code": error.code, "message": error.message, "hint": error.hint },
        });
        println!("{object}");
    }
    error.exit_code()
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    /// Every subcommand and every flag says what it is for (`--help` is the first manual).
    #[test]
    fn every_command_and_flag_has_a_description() {
        fn walk(command: &clap::Command, path: &str, missing: &mut Vec<String>) {
            for arg in command.get_arguments() {
                let id = arg.get_id().as_str();
                if id == "help" || id == "version" {
                    continue;
                }
                if arg.get_help().is_none() && arg.get_long_help().is_none() {
                    missing.push(format!("{path} --{id}"));
                }
            }
            for sub in command.get_subcommands() {
                let name = format!("{path} {}", sub.get_name());
                if sub.get_about().is_none() && sub.get_name() != "help" {
                    missing.push(name.clone());
                }
                walk(sub, &name, missing);
            }
        }
        let mut missing = Vec::new();
        walk(&Cli::command(), "ezchain", &mut missing);
        assert!(missing.is_empty(), "no description: {missing:#?}");
    }
}
