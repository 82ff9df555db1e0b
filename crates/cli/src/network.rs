//! `ezchain network join|info|check`: joining a hosted testnet from this folder, and how its
//! nodes look from here. The work is `ezchain_wallet::network`'s.

use crate::CliError;
use crate::wallet::print;
use clap::Subcommand;
use ezchain_protocol::Hash32;
use ezchain_wallet::network::{self, NetworkError};
use ezchain_wallet::{AppConfig, NodeClient};
use std::io::IsTerminal;
use std::path::Path;
use std::time::Duration;

#[derive(Subcommand, Debug)]
pub enum NetworkCommand {
    /// Join a testnet: fetch its genesis from one of its nodes, check it, and write it and
    /// ezchain.yaml for this folder.
    Join {
        /// A node of the testnet (its RPC `host:port`), usually the bootstrap node.
        #[arg(long)]
        bootstrap: String,
        /// The testnet's genesis hash, as its operator publishes it (`0x…`). Without it the hash
        /// is shown and you are asked; off a terminal the join is refused.
        #[arg(long)]
        genesis_hash: Option<String>,
    },
    /// The testnet as this wallet's nodes show it: chain, genesis, tip height and age, and how
    /// many validators signed the tip.
    Info,
    /// Probe every configured node: reachable, same genesis, height, latency. Exit 1 when none
    /// is usable.
    Check,
}

fn network_error(error: NetworkError) -> CliError {
    let hint = match &error {
        NetworkError::Node(_) => Some("check the address (host:port of a node's RPC) and that the node runs"),
        NetworkError::HashMismatch { .. } | NetworkError::Inconsistent { .. } => {
            Some("do not use this testnet until its operator confirms the genesis hash")
        }
        NetworkError::OtherGenesis { .. } => Some("make a new folder for the other testnet and join from there"),
        NetworkError::Io { .. } | NetworkError::Config(_) => None,
    };
    CliError {
        code: error.code(),
        message: error.to_string(),
        hint,
    }
}

fn load(config_path: &Path) -> Result<AppConfig, CliError> {
    AppConfig::load(config_path).map_err(|e| CliError {
        code: "bad_config",
        message: e.to_string(),
        hint: Some("check ezchain.yaml (or the file given with --config)"),
    })
}

/// Asks a person at a terminal whether `hash` is the testnet's.
fn confirm_on_terminal(hash: &Hash32, chain_id: u64, validators: usize) -> bool {
    if !(std::io::stdin().is_terminal() && std::io::stderr().is_terminal()) {
        return false;
    }
    eprintln!("chain {chain_id}, {validators} validators, genesis hash {hash}");
    eprint!("Is this the genesis hash the testnet's operator published? [y/N] ");
    let mut answer = String::new();
    std::io::stdin().read_line(&mut answer).is_ok() && matches!(answer.trim(), "y" | "Y" | "yes")
}

pub fn run(command: NetworkCommand, config_path: &Path, json: bool) -> Result<(), CliError> {
    let timeout = Duration::from_secs(10);
    match command {
        NetworkCommand::Join {
            bootstrap,
            genesis_hash,
        } => {
            let expected = genesis_hash
                .map(|text| {
                    Hash32::from_hex(&text).map_err(|e| CliError {
                        code: "invalid_genesis_hash",
                        message: format!("{text}: {e}"),
                        hint: Some("a genesis hash is 0x + 64 hex digits"),
                    })
                })
                .transpose()?;
            let mut config = load(config_path)?;
            let offer = network::fetch_genesis(&bootstrap, timeout).map_err(network_error)?;
            match &expected {
                Some(expected) => network::check_hash(&offer, expected).map_err(network_error)?,
                None if confirm_on_terminal(&offer.hash, offer.genesis.chain_id, offer.genesis.validators.len()) => {}
                None => {
                    return Err(CliError {
                        code: "genesis_hash_required",
                        message: format!(
                            "{bootstrap} serves chain {} with genesis hash {}; nothing was written",
                            offer.genesis.chain_id, offer.hash
                        ),
                        hint: Some(
                            "compare the hash with the one the testnet's operator published, then pass it: --genesis-hash 0x…",
                        ),
                    });
                }
            }
            let written = network::adopt(config_path, &mut config, &bootstrap, &offer).map_err(network_error)?;
            print(
                json,
                serde_json::json!({
                    "chain_id": offer.genesis.chain_id,
                    "genesis_hash": offer.hash,
                    "genesis_file": written,
                    "config": config_path,
                    "bootstrap_nodes": config.network.bootstrap_nodes,
                }),
                || {
                    format!(
                        "joined chain {} (genesis {}) through {bootstrap}\nwrote {} and {}\nnext: `ezchain wallet create`, then `ezchain tx faucet --amount 100` on a testnet with a faucet",
                        offer.genesis.chain_id,
                        offer.hash,
                        written.display(),
                        config_path.display()
                    )
                },
            );
            Ok(())
        }
        NetworkCommand::Check => {
            let config = load(config_path)?;
            let ours = ezchain_host::genesis_file::load_genesis(&config.genesis_file())
                .ok()
                .map(|genesis| genesis.hash());
            let probes = network::probe(&config.network.bootstrap_nodes, ours, timeout);
            let usable = probes.iter().filter(|probe| probe.usable()).count();
            print(
                json,
                serde_json::json!({ "usable": usable, "nodes": probes, "genesis_hash": ours }),
                || {
                    let mut lines: Vec<String> = probes
                        .iter()
                        .map(|probe| match (&probe.error, probe.same_genesis) {
                            (Some(error), _) => format!("{:<22} unreachable  {error}", probe.node),
                            (None, Some(false)) => format!(
                                "{:<22} OTHER CHAIN  genesis {} (this wallet's: {})",
                                probe.node,
                                probe.genesis_hash.map(|h| h.to_string()).unwrap_or_default(),
                                ours.map(|h| h.to_string()).unwrap_or_default()
                            ),
                            (None, _) => format!(
                                "{:<22} ok           height {}  {} ms",
                                probe.node,
                                probe.height.unwrap_or(0),
                                probe.latency_ms.unwrap_or(0)
                            ),
                        })
                        .collect();
                    if ours.is_none() {
                        lines.push(format!(
                            "(no genesis at {}: the chain was not compared)",
                            config.genesis_file().display()
                        ));
                    }
                    lines.push(format!("{usable} of {} nodes usable", probes.len()));
                    lines.join("\n")
                },
            );
            if usable == 0 {
                return Err(CliError {
                    code: "no_usable_node",
                    message: "no configured node is reachable on this wallet's chain".into(),
                    hint: Some(
                        "check network.bootstrap_nodes in ezchain.yaml; `ezchain node start` runs a local testnet, `ezchain network join --bootstrap HOST:PORT` joins a hosted one",
                    ),
                });
            }
            Ok(())
        }
        NetworkCommand::Info => {
            let config = load(config_path)?;
            let genesis = ezchain_host::genesis_file::load_genesis(&config.genesis_file()).map_err(|e| CliError {
                code: "bad_genesis",
                message: e.to_string(),
                hint: Some(
                    "`ezchain node start` makes a local testnet; `ezchain network join --bootstrap HOST:PORT` joins a hosted one",
                ),
            })?;
            let probes = network::probe(&config.network.bootstrap_nodes, Some(genesis.hash()), timeout);
            let Some(node) = probes
                .iter()
                .find(|probe| probe.usable())
                .map(|probe| probe.node.clone())
            else {
                return Err(CliError {
                    code: "no_usable_node",
                    message: "no configured node is reachable on this wallet's chain".into(),
                    hint: Some("`ezchain network check` shows each node's answer"),
                });
            };
            let client = NodeClient::new(std::slice::from_ref(&node), timeout).map_err(|e| network_error(e.into()))?;
            let now_ms = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as u64);
            let info = network::info(&client, &node, &genesis, now_ms).map_err(network_error)?;
            print(
                json,
                serde_json::json!({ "info": info, "configured_nodes": config.network.bootstrap_nodes }),
                || {
                    format!(
                        "chain             {}\ngenesis           {}\nnode              {} (of {} configured)\nheight            {}\ntip age           {}\nvalidators        {} of {} signed the tip",
                        info.chain_id,
                        info.genesis_hash,
                        info.node,
                        config.network.bootstrap_nodes.len(),
                        info.height,
                        info.tip_age_ms
                            .map_or("-".to_string(), |ms| format!("{:.1} s", ms as f64 / 1000.0)),
                        info.validators_signing.map_or("-".to_string(), |n| n.to_string()),
                        info.validators
                    )
                },
            );
            Ok(())
        }
    }
}
