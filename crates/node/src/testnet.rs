//! `ezchain testnet init`: the files of a local or multi-host testnet.
//!
//! Writes `<out>/genesis.json` and one home per node (`validator-0 … validator-(N-1)`,
//! `bootstrap`), each with `node.yaml` and its `node_key.json`; the bootstrap home also holds the
//! faucet's wallet keystore and its password. Ports are assigned from `start_port` upward, two per node (p2p, RPC), in
//! node order, so no two nodes on one host collide.
//!
//! Invariant: the testnet appears whole or not at all. Everything is written into a staging
//! folder beside `<out>` and renamed into place at the end; an existing testnet is never
//! overwritten.

use crate::config::{ConsensusConfig, FaucetConfig, MempoolConfig, NodeConfig, NodeRole, P2pConfig, RpcConfig};
use crate::keys::{KeyError, NodeKey};
use ezchain_protocol::genesis::{Allocation, Genesis, GenesisValidator};
use ezchain_protocol::{Address, Hash32, ValueRange};
use ezchain_wallet::faucet::{
    FAUCET_KEYSTORE_FILE, FAUCET_PASSWORD_FILE, FAUCET_SCRYPT_LOG_N, FaucetError, generate_faucet_key, write_faucet_key,
};
use serde::Serialize;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use thiserror::Error;

pub const GENESIS_FILE: &str = "genesis.json";
pub const NODE_KEY_FILE: &str = "node_key.json";
pub const MAX_VALIDATORS: usize = 100;

#[derive(Clone, Debug)]
pub struct TestnetOptions {
    pub validators: usize,
    pub out: PathBuf,
    pub chain_id: u64,
    pub start_port: u16,
    pub host: IpAddr,
    /// Extra genesis allocations: (owner, amount), assigned ranges after the faucet's.
    pub allocations: Vec<(Address, u64)>,
    pub faucet_amount: u64,
    /// Genesis time (milliseconds since the Unix epoch).
    pub genesis_time_ms: u64,
    pub placement: Placement,
    pub compose: Option<ComposeOptions>,
}

/// Where the nodes run (module doc).
#[derive(Clone, Debug, Default)]
pub struct Placement {
    /// One address per node, in node order (validators, then the bootstrap node); empty = all on
    /// `host`.
    pub hosts: Vec<IpAddr>,
    /// The address every node listens on; `None` = its own address.
    pub listen: Option<IpAddr>,
}

/// A `compose.yaml` for the testnet.
#[derive(Clone, Debug)]
pub struct ComposeOptions {
    /// The image every service runs (`deploy/build-image.sh` builds `ezchain:latest`).
    pub image: String,
    /// The private network's /24, as its first three octets: node i gets `.(10 + i)`.
    pub subnet: [u8; 3],
    /// The user the containers run as, `uid:gid` (the owner of the homes).
    pub user: String,
}

/// The file `--compose` writes beside the homes.
pub const COMPOSE_FILE: &str = "compose.yaml";
/// The folder beside the homes with a Prometheus configuration for this testnet.
pub const MONITORING_DIR: &str = "monitoring";
/// The alert rules of the monitoring kit (`deploy/prometheus/alerts.yml`), written beside the
/// scrape configuration.
pub const ALERT_RULES: &str = include_str!("../../../deploy/prometheus/alerts.yml");
/// Where a container finds its node's home and the genesis.
pub const CONTAINER_HOME: &str = "/node";
pub const CONTAINER_GENESIS: &str = "/genesis.json";

#[derive(Clone, Debug, Serialize)]
pub struct NodeSummary {
    pub name: String,
    pub role: NodeRole,
    pub home: PathBuf,
    pub p2p_addr: SocketAddr,
    pub rpc_addr: SocketAddr,
    pub validator_address: String,
}

#[derive(Clone, Debug, Serialize)]
pub struct TestnetLayout {
    pub chain_id: u64,
    pub genesis_hash: Hash32,
    pub genesis_file: PathBuf,
    pub faucet_address: Address,
    pub nodes: Vec<NodeSummary>,
}

#[derive(Debug, Error)]
pub enum TestnetError {
    #[error("--validators must be between 1 and {MAX_VALIDATORS} (got {0})")]
    BadValidatorCount(usize),
    #[error("{needed} ports from --start-port {start} run past 65535; choose a lower --start-port")]
    PortRangeOverflow { start: u16, needed: usize },
    #[error(
        "--hosts names {given} addresses for {needed} nodes (validators, then the bootstrap node); give one per node"
    )]
    HostCount { given: usize, needed: usize },
    #[error("--faucet-amount and every --alloc amount must be positive")]
    ZeroAmount,
    #[error("the allocations add up to more than the value space (2^64 - 1 coins)")]
    SupplyOverflow,
    #[error("{0} already holds a testnet or other files; choose another --out or remove it")]
    OutputNotEmpty(PathBuf),
    #[error("cannot write {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error(transparent)]
    Key(#[from] KeyError),
    #[error(transparent)]
    FaucetKey(#[from] FaucetError),
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> TestnetError + '_ {
    move |source| TestnetError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Creates the testnet described by `options`.
pub fn init(options: &TestnetOptions) -> Result<TestnetLayout, TestnetError> {
    let count = options.validators;
    if count == 0 || count > MAX_VALIDATORS {
        return Err(TestnetError::BadValidatorCount(count));
    }
    let needed = 2 * (count + 1);
    if usize::from(options.start_port) + needed - 1 > usize::from(u16::MAX) || options.start_port == 0 {
        return Err(TestnetError::PortRangeOverflow {
            start: options.start_port,
            needed,
        });
    }
    if options.faucet_amount == 0 || options.allocations.iter().any(|(_, amount)| *amount == 0) {
        return Err(TestnetError::ZeroAmount);
    }
    let given = options.placement.hosts.len();
    if given != 0 && given != count + 1 {
        return Err(TestnetError::HostCount {
            given,
            needed: count + 1,
        });
    }
    let out = &options.out;
    if out.exists() && std::fs::read_dir(out).map_err(io_error(out))?.next().is_some() {
        return Err(TestnetError::OutputNotEmpty(out.clone()));
    }
    let names: Vec<String> = (0..count)
        .map(|i| format!("validator-{i}"))
        .chain(["bootstrap".to_string()])
        .collect();
    let keys: Vec<NodeKey> = names.iter().map(|_| NodeKey::generate()).collect::<Result<_, _>>()?;
    let faucet_key = generate_faucet_key()?;
    let genesis = Genesis {
        chain_id: options.chain_id,
        genesis_time_ms: options.genesis_time_ms,
        validators: (0..count)
            .map(|i| GenesisValidator {
                name: names[i].clone(),
                consensus_public_key: keys[i].public_key(),
                voting_power: 1,
            })
            .collect(),
        allocations: allocate(faucet_key.address(), options)?,
        faucet: Some(faucet_key.address()),
    };

    let staging = staging_dir(out);
    if staging.exists() {
        // Left by an interrupted earlier run: nothing in it was ever in use.
        std::fs::remove_dir_all(&staging).map_err(io_error(&staging))?;
    }
    std::fs::create_dir_all(&staging).map_err(io_error(&staging))?;
    let written = write_homes(options, &staging, &names, &keys, &faucet_key, &genesis);
    let nodes = match written {
        Ok(nodes) => nodes,
        Err(error) => {
            let _ = std::fs::remove_dir_all(&staging);
            return Err(error);
        }
    };
    if out.exists() {
        std::fs::remove_dir(out).map_err(io_error(out))?;
    }
    std::fs::rename(&staging, out).map_err(io_error(out))?;
    Ok(TestnetLayout {
        chain_id: genesis.chain_id,
        genesis_hash: genesis.hash(),
        genesis_file: out.join(GENESIS_FILE),
        faucet_address: faucet_key.address(),
        nodes,
    })
}

/// Writes genesis and every node home into `staging`; returns the nodes as they will be after
/// the rename to `options.out`.
fn write_homes(
    options: &TestnetOptions,
    staging: &Path,
    names: &[String],
    keys: &[NodeKey],
    faucet_key: &ezchain_protocol::SigningKey,
    genesis: &Genesis,
) -> Result<Vec<NodeSummary>, TestnetError> {
    let out = &options.out;
    let genesis_json = serde_json::to_string_pretty(genesis).expect("genesis serializes");
    let genesis_path = staging.join(GENESIS_FILE);
    std::fs::write(&genesis_path, genesis_json + "\n").map_err(io_error(&genesis_path))?;
    let hosts = placement_hosts(options, names.len());
    // The address others reach node `node` at: its own host's, or the one host's with ports
    // consecutive in node order.
    let port = |node: usize, offset: usize| match &hosts {
        Some(hosts) => SocketAddr::new(hosts[node], options.start_port + offset as u16),
        None => SocketAddr::new(options.host, options.start_port + (2 * node + offset) as u16),
    };
    let listen = |node: usize, offset: usize| {
        let mut addr = port(node, offset);
        if let Some(ip) = listen_ip(options) {
            addr.set_ip(ip);
        }
        addr
    };
    let bootstrap_index = names.len() - 1;
    let mut nodes = Vec::with_capacity(names.len());
    for (index, (name, key)) in names.iter().zip(keys).enumerate() {
        let home = staging.join(name);
        std::fs::create_dir_all(&home).map_err(io_error(&home))?;
        key.write_new(&home.join(NODE_KEY_FILE))?;
        let is_bootstrap = index == bootstrap_index;
        // Every node dials the bootstrap seed; on a small testnet validators also dial each
        // other directly so a restarted bootstrap node never isolates them.
        let persistent_peers = (0..names.len())
            .filter(|&other| other != index)
            .map(|other| port(other, 0))
            .collect();
        let faucet = if is_bootstrap {
            write_faucet_key(
                faucet_key,
                &home.join(FAUCET_KEYSTORE_FILE),
                &home.join(FAUCET_PASSWORD_FILE),
                FAUCET_SCRYPT_LOG_N,
            )?;
            Some(FaucetConfig {
                keystore_file: Some(FAUCET_KEYSTORE_FILE.into()),
                password_file: Some(FAUCET_PASSWORD_FILE.into()),
                key_file: None,
                max_amount_per_request: 1_000,
                max_amount_per_address_per_hour: 10_000,
                max_amount_per_hour: crate::config::default_faucet_max_amount_per_hour(),
            })
        } else {
            None
        };
        let config = NodeConfig {
            role: if is_bootstrap {
                NodeRole::Bootstrap
            } else {
                NodeRole::Validator
            },
            moniker: name.clone(),
            genesis_file: PathBuf::from("..").join(GENESIS_FILE),
            node_key_file: NODE_KEY_FILE.into(),
            data_dir: "data".into(),
            log_dir: "logs".into(),
            p2p: P2pConfig {
                listen_addr: listen(index, 0),
                persistent_peers,
            },
            rpc: RpcConfig {
                listen_addr: listen(index, 1),
                max_body_bytes: crate::config::default_max_body_bytes(),
            },
            metrics: Default::default(),
            consensus: ConsensusConfig::default(),
            mempool: MempoolConfig {
                forward_to: (0..bootstrap_index)
                    .filter(|&other| other != index)
                    .map(|other| port(other, 1))
                    .collect(),
                ..MempoolConfig::default()
            },
            mailbox: Default::default(),
            faucet,
        };
        let config_path = home.join(crate::config::CONFIG_FILE);
        std::fs::write(&config_path, config.to_yaml()).map_err(io_error(&config_path))?;
        nodes.push(NodeSummary {
            name: name.clone(),
            role: config.role,
            home: out.join(name),
            p2p_addr: port(index, 0),
            rpc_addr: port(index, 1),
            validator_address: key.validator_address().to_string(),
        });
    }

    if let Some(compose) = &options.compose {
        let path = staging.join(COMPOSE_FILE);
        std::fs::write(&path, compose_yaml(compose, &nodes, options.start_port)).map_err(io_error(&path))?;
    }
    let monitoring = staging.join(MONITORING_DIR);
    std::fs::create_dir_all(&monitoring).map_err(io_error(&monitoring))?;
    for (name, text) in [
        ("prometheus.yml", prometheus_yaml(&nodes)),
        ("alerts.yml", ALERT_RULES.to_string()),
    ] {
        let path = monitoring.join(name);
        std::fs::write(&path, text).map_err(io_error(&path))?;
    }
    Ok(nodes)
}

/// `monitoring/prometheus.yml`: every node's `/metrics` at the address others reach its RPC
/// at, each labelled with its name and role (the alerts name nodes by `node`), the alert
/// rules beside it, and a wallet service at its default address.
fn prometheus_yaml(nodes: &[NodeSummary]) -> String {
    let targets: Vec<serde_json::Value> = nodes
        .iter()
        .map(|node| {
            let role = match node.role {
                NodeRole::Validator => "validator",
                NodeRole::Bootstrap => "bootstrap",
            };
            serde_json::json!({
                "targets": [node.rpc_addr.to_string()],
                "labels": { "node": node.name, "role": role },
            })
        })
        .collect();
    let file = serde_json::json!({
        "global": { "scrape_interval": "5s", "evaluation_interval": "5s" },
        "rule_files": ["alerts.yml"],
        "scrape_configs": [
            { "job_name": "ezchain-nodes", "static_configs": targets },
            {
                "job_name": "ezchain-wallet-services",
                "static_configs": [{ "targets": ["127.0.0.1:8787"] }],
            },
        ],
    });
    let yaml = serde_norway::to_string(&file).expect("a JSON value serializes as YAML");
    format!(
        "# Written by `ezchain testnet init`: Prometheus scraping this testnet's nodes.\n\
         # Run: prometheus --config.file=prometheus.yml (in this folder). A node with\n\
         # metrics.listen_addr in its node.yaml serves /metrics there: put that address instead.\n\
         # ezchain-wallet-services lists `ezchain serve` instances (default 127.0.0.1:8787).\n{yaml}"
    )
}

/// The inventory in force: the given hosts, a compose network's addresses, or none (one host).
fn placement_hosts(options: &TestnetOptions, nodes: usize) -> Option<Vec<IpAddr>> {
    if !options.placement.hosts.is_empty() {
        return Some(options.placement.hosts.clone());
    }
    let compose = options.compose.as_ref()?;
    let [a, b, c] = compose.subnet;
    Some((0..nodes).map(|i| IpAddr::from([a, b, c, 10 + i as u8])).collect())
}

fn listen_ip(options: &TestnetOptions) -> Option<IpAddr> {
    options
        .placement
        .listen
        .or_else(|| options.compose.as_ref().map(|_| IpAddr::from([0, 0, 0, 0])))
}

/// `compose.yaml`: one service per node on a private network with fixed addresses, each
/// home mounted at [`CONTAINER_HOME`] and the genesis read-only at [`CONTAINER_GENESIS`]; the
/// bootstrap node's RPC is published on the host's loopback (its RPC port) for wallets there.
fn compose_yaml(compose: &ComposeOptions, nodes: &[NodeSummary], start_port: u16) -> String {
    let [a, b, c] = compose.subnet;
    let services: serde_json::Map<String, serde_json::Value> = nodes
        .iter()
        .map(|node| {
            let mut service = serde_json::json!({
                "image": compose.image,
                "user": compose.user,
                "command": ["node", "run", "--home", CONTAINER_HOME],
                "volumes": [
                    format!("./{}:{CONTAINER_HOME}", node.name),
                    format!("./{GENESIS_FILE}:{CONTAINER_GENESIS}:ro"),
                ],
                "networks": { "ezchain": { "ipv4_address": node.p2p_addr.ip().to_string() } },
                // The node stops cleanly on SIGTERM (it is PID 1); give it time to.
                "stop_grace_period": "30s",
                "restart": "unless-stopped",
            });
            if node.role == NodeRole::Bootstrap {
                service["ports"] = serde_json::json!([format!("127.0.0.1:{0}:{0}", start_port + 1)]);
            }
            (node.name.clone(), service)
        })
        .collect();
    let file = serde_json::json!({
        "services": services,
        "networks": {
            "ezchain": {
                "driver": "bridge",
                "ipam": { "config": [{ "subnet": format!("{a}.{b}.{c}.0/24") }] },
            }
        },
    });
    let yaml = serde_norway::to_string(&file).expect("a JSON value serializes as YAML");
    format!(
        "# Written by `ezchain testnet init --compose`. Start: `docker compose up -d` in this folder\n\
         # (the image comes from deploy/build-image.sh); copy each home to its own server to run the\n\
         # same testnet there.\n{yaml}"
    )
}

/// Faucet first from coin 0, then each `--alloc` in order, back to back.
fn allocate(faucet: Address, options: &TestnetOptions) -> Result<Vec<Allocation>, TestnetError> {
    let mut next = 0u64;
    std::iter::once((faucet, options.faucet_amount))
        .chain(options.allocations.iter().copied())
        .map(|(owner, amount)| {
            let range = ValueRange::with_len(next, amount).ok_or(TestnetError::SupplyOverflow)?;
            next = range.end().checked_add(1).ok_or(TestnetError::SupplyOverflow)?;
            Ok(Allocation { owner, range })
        })
        .collect()
}

fn staging_dir(out: &Path) -> PathBuf {
    let name = out
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "testnet".into());
    out.with_file_name(format!(".{name}.staging"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::NodeConfig;
    use crate::keys::NodeKey;
    use std::os::unix::fs::PermissionsExt;

    fn options(out: PathBuf, validators: usize) -> TestnetOptions {
        TestnetOptions {
            validators,
            out,
            chain_id: 821,
            start_port: 19500,
            host: "127.0.0.1".parse().unwrap(),
            allocations: vec![(Address([7u8; 20]), 500)],
            faucet_amount: 1_000_000,
            genesis_time_ms: 1,
            placement: Default::default(),
            compose: None,
        }
    }

    #[test]
    fn four_validators_and_a_bootstrap() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("net");
        let layout = init(&options(out.clone(), 4)).unwrap();
        let genesis = ezchain_host::genesis_file::load_genesis(&out.join(GENESIS_FILE)).unwrap();
        assert_eq!(genesis.hash(), layout.genesis_hash);
        assert_eq!(genesis.validators.len(), 4);
        assert_eq!(genesis.allocations[0].range, ValueRange::new(0, 999_999).unwrap());
        assert_eq!(
            genesis.allocations[1].range,
            ValueRange::new(1_000_000, 1_000_499).unwrap()
        );
        let mut ports = Vec::new();
        for node in &layout.nodes {
            let config = NodeConfig::load(&node.home).unwrap();
            ports.push(config.p2p.listen_addr.port());
            ports.push(config.rpc.listen_addr.port());
            let key_path = config.resolve(&node.home, &config.node_key_file);
            assert_eq!(
                std::fs::metadata(&key_path).unwrap().permissions().mode() & 0o777,
                0o600
            );
            let key = NodeKey::load(&key_path).unwrap();
            if config.role == NodeRole::Validator {
                assert!(
                    genesis
                        .validators
                        .iter()
                        .any(|v| v.consensus_public_key == key.public_key())
                );
            } else {
                let source = config.faucet_key(&node.home).unwrap();
                let wallet = ezchain_wallet::faucet::load_faucet_key(&source).unwrap();
                assert_eq!(Some(wallet.address()), genesis.faucet);
            }
            assert_eq!(
                config.resolve(&node.home, &config.genesis_file).canonicalize().unwrap(),
                out.join(GENESIS_FILE).canonicalize().unwrap()
            );
        }
        let mut unique = ports.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), 10, "ten distinct ports for five nodes");
        assert_eq!(ports.iter().min(), Some(&19500));
        assert!(!staging_dir(&out).exists());
    }

    #[test]
    fn an_inventory_gives_every_node_its_address_peers_and_listen_address() {
        let dir = tempfile::tempdir().unwrap();
        let hosts: Vec<IpAddr> = (1..=5).map(|i| IpAddr::from([10, 0, 0, i])).collect();
        let mut opts = options(dir.path().join("net"), 4);
        opts.placement = Placement {
            hosts: hosts.clone(),
            listen: Some(IpAddr::from([0, 0, 0, 0])),
        };
        let layout = init(&opts).unwrap();
        for (index, node) in layout.nodes.iter().enumerate() {
            assert_eq!(node.p2p_addr, SocketAddr::new(hosts[index], 19500));
            assert_eq!(node.rpc_addr, SocketAddr::new(hosts[index], 19501));
            let config = NodeConfig::load(&node.home).unwrap();
            assert_eq!(config.p2p.listen_addr, "0.0.0.0:19500".parse().unwrap());
            assert_eq!(config.rpc.listen_addr, "0.0.0.0:19501".parse().unwrap());
            let others: Vec<SocketAddr> = (0..5)
                .filter(|&other| other != index)
                .map(|other| SocketAddr::new(hosts[other], 19500))
                .collect();
            assert_eq!(config.p2p.persistent_peers, others);
            let validators_rpc: Vec<SocketAddr> = (0..4)
                .filter(|&other| other != index)
                .map(|other| SocketAddr::new(hosts[other], 19501))
                .collect();
            assert_eq!(config.mempool.forward_to, validators_rpc);
        }
        assert!(!dir.path().join("net").join(COMPOSE_FILE).exists());
        // One address per node, or a clear refusal that writes nothing.
        let mut short = options(dir.path().join("short"), 4);
        short.placement.hosts = hosts[..4].to_vec();
        assert!(matches!(
            init(&short),
            Err(TestnetError::HostCount { given: 4, needed: 5 })
        ));
        assert!(!dir.path().join("short").exists());
    }

    #[test]
    fn compose_puts_each_node_on_the_private_network_with_its_own_home() {
        let dir = tempfile::tempdir().unwrap();
        let mut opts = options(dir.path().join("net"), 4);
        opts.compose = Some(ComposeOptions {
            image: "ezchain:test".into(),
            subnet: [172, 30, 7],
            user: "1000:1000".into(),
        });
        let layout = init(&opts).unwrap();
        let text = std::fs::read_to_string(dir.path().join("net").join(COMPOSE_FILE)).unwrap();
        let compose: serde_json::Value = serde_norway::from_str(&text).unwrap();
        assert_eq!(
            compose["networks"]["ezchain"]["ipam"]["config"][0]["subnet"],
            "172.30.7.0/24"
        );
        for (index, node) in layout.nodes.iter().enumerate() {
            let service = &compose["services"][node.name.as_str()];
            let ip = format!("172.30.7.{}", 10 + index);
            assert_eq!(service["networks"]["ezchain"]["ipv4_address"], ip.as_str());
            assert_eq!(service["image"], "ezchain:test");
            assert_eq!(service["user"], "1000:1000");
            assert_eq!(service["volumes"][0], format!("./{}:/node", node.name).as_str());
            assert_eq!(service["volumes"][1], "./genesis.json:/genesis.json:ro");
            assert_eq!(node.p2p_addr, format!("{ip}:19500").parse().unwrap());
            let config = NodeConfig::load(&node.home).unwrap();
            assert_eq!(config.rpc.listen_addr, "0.0.0.0:19501".parse().unwrap());
            // The genesis resolves to the container's /genesis.json from the home at /node.
            assert_eq!(config.genesis_file, PathBuf::from("../genesis.json"));
        }
        assert_eq!(compose["services"]["bootstrap"]["ports"][0], "127.0.0.1:19501:19501");
        assert!(compose["services"]["validator-0"].get("ports").is_none());
        // Prometheus scrapes each node where the others reach it, named as the alerts name it.
        let monitoring = dir.path().join("net").join(MONITORING_DIR);
        let scrape: serde_json::Value =
            serde_norway::from_str(&std::fs::read_to_string(monitoring.join("prometheus.yml")).unwrap()).unwrap();
        let nodes = &scrape["scrape_configs"][0]["static_configs"];
        assert_eq!(nodes.as_array().map(Vec::len), Some(layout.nodes.len()));
        for (target, node) in nodes.as_array().unwrap().iter().zip(&layout.nodes) {
            assert_eq!(target["targets"][0], node.rpc_addr.to_string());
            assert_eq!(target["labels"]["node"], node.name.as_str());
        }
        assert_eq!(
            std::fs::read_to_string(monitoring.join("alerts.yml")).unwrap(),
            ALERT_RULES
        );
    }

    #[test]
    fn single_validator_devnet_and_refusals() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("devnet");
        init(&options(out.clone(), 1)).unwrap();
        assert!(matches!(
            init(&options(out.clone(), 1)),
            Err(TestnetError::OutputNotEmpty(_))
        ));
        assert!(matches!(
            init(&options(dir.path().join("x"), 0)),
            Err(TestnetError::BadValidatorCount(0))
        ));
        let mut high = options(dir.path().join("y"), 4);
        high.start_port = 65530;
        assert!(matches!(init(&high), Err(TestnetError::PortRangeOverflow { .. })));
        let mut overflow = options(dir.path().join("z"), 1);
        overflow.allocations = vec![(Address([1u8; 20]), u64::MAX)];
        assert!(matches!(init(&overflow), Err(TestnetError::SupplyOverflow)));
        assert!(!dir.path().join("z").exists(), "a failed init leaves no testnet behind");
        assert!(!staging_dir(&dir.path().join("z")).exists());
    }
}
