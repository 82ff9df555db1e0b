//! `ezchain testnet init`.

use crate::CliError;
use clap::{Args, Subcommand};
use ezchain_node::testnet::{ComposeOptions, Placement, TestnetError, TestnetOptions, init};
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
    /// Address every node listens on and dials when all run on one host (ports consecutive).
    #[arg(long, default_value = "127.0.0.1")]
    host: IpAddr,
    /// One address per node for a testnet on several hosts, in node order (validators, then the
    /// bootstrap node), comma-separated: each node takes ports START_PORT and START_PORT+1 on its
    /// own address and is told the others' as peers and forward targets.
    #[arg(long, value_delimiter = ',')]
    hosts: Vec<IpAddr>,
    /// Address the nodes listen on instead of their own (e.g. 0.0.0.0 behind NAT or in containers).
    #[arg(long)]
    listen: Option<IpAddr>,
    /// Also write compose.yaml: the testnet as containers on a private Docker network
    /// (`docker compose up -d` in the folder; the image from deploy/build-image.sh). The
    /// network's addresses are the inventory, so it does not take --hosts.
    #[arg(long, conflicts_with = "hosts")]
    compose: bool,
    /// Image the compose services run.
    #[arg(long, default_value = "ezchain:latest", requires = "compose")]
    image: String,
    /// The compose network's /24 (its first three octets, e.g. 172.30.213); node i gets .(10+i).
    #[arg(long, default_value = "172.30.213", value_parser = parse_subnet, requires = "compose")]
    subnet: [u8; 3],
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

fn parse_subnet(text: &str) -> Result<[u8; 3], String> {
    let octets: Vec<u8> = text
        .split('.')
        .map(|part| {
            part.parse::<u8>()
                .map_err(|_| format!("`{part}` is not a number 0-255"))
        })
        .collect::<Result<_, _>>()?;
    <[u8; 3]>::try_from(octets).map_err(|_| "give three octets, e.g. 172.30.213".to_string())
}

/// The uid the containers run as when `testnet init` runs as root: no container runs as root.
const CONTAINER_UID: u32 = 10001;

/// `(uid, gid)` of this process (the owner of the files it writes): `/proc/self` belongs to it.
fn own_ids() -> Option<(u32, u32)> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self")
        .ok()
        .map(|meta| (meta.uid(), meta.gid()))
}

/// The containers' user: the homes' owner, so the node can write its data; for root, an
/// unprivileged uid the homes are then handed to.
fn container_user() -> (String, bool) {
    match own_ids() {
        Some((0, _)) | None => (format!("{CONTAINER_UID}:{CONTAINER_UID}"), true),
        Some((uid, gid)) => (format!("{uid}:{gid}"), false),
    }
}

fn chown_tree(path: &std::path::Path, uid: u32) -> std::io::Result<()> {
    std::os::unix::fs::chown(path, Some(uid), Some(uid))?;
    if path.is_dir() {
        for entry in std::fs::read_dir(path)? {
            chown_tree(&entry?.path(), uid)?;
        }
    }
    Ok(())
}

pub fn run(command: TestnetCommand, json: bool) -> Result<(), CliError> {
    match command {
        TestnetCommand::Init(args) => {
            let genesis_time_ms = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_millis() as u64)
                .unwrap_or(0);
            let (user, hand_over) = container_user();
            let options = TestnetOptions {
                validators: args.validators,
                out: args.out,
                chain_id: args.chain_id,
                start_port: args.start_port,
                host: args.host,
                allocations: args.allocations,
                faucet_amount: args.faucet_amount,
                genesis_time_ms,
                placement: Placement {
                    hosts: args.hosts,
                    listen: args.listen,
                },
                compose: args.compose.then_some(ComposeOptions {
                    image: args.image,
                    subnet: args.subnet,
                    user,
                }),
            };
            let layout = init(&options).map_err(testnet_error)?;
            if options.compose.is_some() && hand_over {
                for node in &layout.nodes {
                    chown_tree(&node.home, CONTAINER_UID).map_err(|e| CliError {
                        code: "io_error",
                        message: format!("cannot hand {} to uid {CONTAINER_UID}: {e}", node.home.display()),
                        hint: Some("run `testnet init --compose` as the user the containers should run as"),
                    })?;
                }
            }
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
                if let (Some(compose), Some(bootstrap)) = (&options.compose, layout.nodes.last()) {
                    println!("next:");
                    println!(
                        "  deploy/build-image.sh {}    # once, in a checkout: the node image",
                        compose.image
                    );
                    println!("  cd {} && docker compose up -d", options.out.display());
                    println!(
                        "  ezchain network join --bootstrap 127.0.0.1:{} --genesis-hash {}",
                        bootstrap.rpc_addr.port(),
                        layout.genesis_hash
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
        TestnetError::HostCount { .. } => ("bad_host_count", None),
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
