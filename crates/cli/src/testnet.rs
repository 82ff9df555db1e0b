//! `ezchain testnet init`.

use crate::CliError;
use clap::{Args, Subcommand};
use ezchain_node::testnet::{TestnetError, TestnetOptions, init};
use ezchain_protocol::Address;
use std::net::IpAddr;
use std::path::PathBuf;

#[derive(Subcommand, Debug)]
pub enum TestnetCommand {
    /// Write genesis.json and one home folder per node (validators and a bootstrap node).
    Init(InitArgs),
}

#[derive(Args, Debug)]
pub struct InitArgs {
    /// Number of validators (1 = single-validator devnet; 4 tolerates one failure).
    #[arg(long)]
    validators: usize,
    /// Folder to create; must not exist or be empty.
    #[arg(long)]
    out: PathBuf,
    /// Chain id written into the genesis (signed into every bundle: wallets of another chain are refused).
    #[arg(long, default_value_t = 821)]
    chain_id: u64,
    /// First port; each node takes two (p2p, RPC) in node order.
    #[arg(long, default_value_t = 19500)]
    start_port: u16,
    /// Address every node listens on and dials (edit node.yaml for multi-host testnets).
    #[arg(long, default_value = "127.0.0.1")]
    host: IpAddr,
    /// Extra genesis allocation, ADDRESS=AMOUNT; repeat for more.
    #[arg(long = "alloc", value_parser = parse_alloc)]
    allocations: Vec<(Address, u64)>,
    /// Coins given to the faucet account at genesis.
    #[arg(long, default_value_t = 1_000_000_000)]
    faucet_amount: u64,
}

fn parse_alloc(text: &str) -> Result<(Address, u64), String> {
    let (address, amount) = text.split_once('=').ok_or("expected ADDRESS=AMOUNT")?;
    let address: Address = address.trim().parse().map_err(|e| format!("{e}"))?;
    let amount: u64 = amount
        .trim()
        .parse()
        .map_err(|_| format!("amount `{amount}` is not a whole number"))?;
    Ok((address, amount))
}

pub fn run(command: TestnetCommand, json: bool) -> Result<(), CliError> {
    match command {
        TestnetCommand::Init(args) => {
            let genesis_time_ms = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_millis() as u64)
                .unwrap_or(0);
            let options = TestnetOptions {
                validators: args.validators,
                out: args.out,
                chain_id: args.chain_id,
                start_port: args.start_port,
                host: args.host,
                allocations: args.allocations,
                faucet_amount: args.faucet_amount,
                genesis_time_ms,
            };
            let layout = init(&options).map_err(testnet_error)?;
            if json {
                crate::print_json(serde_json::to_string_pretty(&layout).expect("layout serializes"));
            } else {
                println!("testnet written to {}", options.out.display());
                println!("  chain id      {}", layout.chain_id);
                println!("  genesis hash  {}", layout.genesis_hash);
                println!("  faucet        {}", layout.faucet_address);
                for node in &layout.nodes {
                    println!(
                        "  {:<12} p2p {}  rpc {}  home {}",
                        node.name,
                        node.p2p_addr,
                        node.rpc_addr,
                        node.home.display()
                    );
                }
            }
            Ok(())
        }
    }
}

fn testnet_error(error: TestnetError) -> CliError {
    let (code, hint) = match &error {
        TestnetError::BadValidatorCount(_) => (
            "bad_validator_count",
            Some("use 1 for a devnet, 4 to tolerate one failed validator"),
        ),
        TestnetError::PortRangeOverflow { .. } => ("port_range_overflow", None),
        TestnetError::ZeroAmount => ("zero_amount", None),
        TestnetError::SupplyOverflow => ("supply_overflow", Some("lower --faucet-amount or the --alloc amounts")),
        TestnetError::OutputNotEmpty(_) => ("output_not_empty", Some("an existing testnet is never overwritten")),
        TestnetError::Io { .. } => ("io_error", Some("check the folder exists and is writable")),
        TestnetError::Key(_) | TestnetError::FaucetKey(_) => ("key_error", None),
    };
    CliError {
        code,
        message: error.to_string(),
        hint,
    }
}
