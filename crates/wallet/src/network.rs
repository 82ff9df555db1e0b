//! Where a wallet's testnet is: joining it from any of its nodes (the genesis fetched, checked
//! by its hash, and written beside the config) and probing the nodes a config names.
//!
//! Trust: a wallet verifies every payment against its genesis, so the genesis must be the
//! testnet's real one. The node that serves it is not trusted for that — its answer is checked
//! against its own advertised hash (consistency) and against the hash the user got from the
//! testnet's operator (authenticity); only a person at a terminal may accept an unchecked hash.

use crate::client::{ClientError, NodeClient};
use crate::config::AppConfig;
use ezchain_protocol::finality::ValidatorSet;
use ezchain_protocol::{Genesis, Hash32};
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use thiserror::Error;

/// The name the joined genesis gets beside the config.
pub const JOINED_GENESIS_FILE: &str = "genesis.json";

#[derive(Debug, Error)]
pub enum NetworkError {
    #[error(transparent)]
    Node(#[from] ClientError),
    #[error("the node's genesis hashes to {computed}, not the {advertised} it names: do not trust this node")]
    Inconsistent { advertised: Hash32, computed: Hash32 },
    #[error(
        "the testnet's genesis hash is {actual}, not {expected}: check the hash you were given and the node's address"
    )]
    HashMismatch { expected: Hash32, actual: Hash32 },
    #[error(
        "{path} holds the genesis of another testnet ({existing}); a wallet belongs to one chain: join from a new folder"
    )]
    OtherGenesis { path: PathBuf, existing: Hash32 },
    #[error("cannot write {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{0}")]
    Config(String),
}

impl NetworkError {
    /// Stable code for scripts.
    pub fn code(&self) -> &'static str {
        match self {
            NetworkError::Node(ClientError::Unreachable { .. }) => "node_unreachable",
            NetworkError::Node(ClientError::Refused { .. }) => "node_refused",
            NetworkError::Node(ClientError::BadAnswer(_)) => "node_bad_answer",
            NetworkError::Inconsistent { .. } => "genesis_inconsistent",
            NetworkError::HashMismatch { .. } => "genesis_mismatch",
            NetworkError::OtherGenesis { .. } => "genesis_differs",
            NetworkError::Io { .. } => "io_error",
            NetworkError::Config(_) => "bad_config",
        }
    }
}

/// A testnet's genesis as one node served it, consistent with the hash it advertised.
#[derive(Clone, Debug)]
pub struct GenesisOffer {
    pub genesis: Genesis,
    pub hash: Hash32,
}

/// Fetches the genesis `node` (`host:port`) serves and checks it hashes to what it claims.
pub fn fetch_genesis(node: &str, timeout: Duration) -> Result<GenesisOffer, NetworkError> {
    let client = NodeClient::new(&[node.to_string()], timeout)?;
    let (advertised, genesis) = client.genesis()?;
    let computed = genesis.hash();
    if computed != advertised {
        return Err(NetworkError::Inconsistent { advertised, computed });
    }
    Ok(GenesisOffer {
        genesis,
        hash: computed,
    })
}

/// Checks the offer against the hash the user was given.
pub fn check_hash(offer: &GenesisOffer, expected: &Hash32) -> Result<(), NetworkError> {
    if offer.hash != *expected {
        return Err(NetworkError::HashMismatch {
            expected: *expected,
            actual: offer.hash,
        });
    }
    Ok(())
}

/// Makes `config` (saved at `config_path`) a wallet of the offered testnet: the genesis is
/// written beside the config (never over another testnet's) and `node` becomes its node.
/// Returns where the genesis went.
pub fn adopt(
    config_path: &Path,
    config: &mut AppConfig,
    node: &str,
    offer: &GenesisOffer,
) -> Result<PathBuf, NetworkError> {
    let path = config_path
        .parent()
        .unwrap_or_else(|| Path::new("."))
        .join(JOINED_GENESIS_FILE);
    if let Ok(existing) = ezchain_host::genesis_file::load_genesis(&path) {
        let existing = existing.hash();
        if existing != offer.hash {
            return Err(NetworkError::OtherGenesis { path, existing });
        }
    }
    let text = serde_json::to_string_pretty(&offer.genesis).map_err(|e| NetworkError::Config(e.to_string()))?;
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(|source| NetworkError::Io {
            path: parent.to_path_buf(),
            source,
        })?;
    }
    ezchain_host::files::replace_file(&path, format!("{text}\n").as_bytes()).map_err(|source| NetworkError::Io {
        path: path.clone(),
        source,
    })?;
    config.network.genesis_file = PathBuf::from(JOINED_GENESIS_FILE);
    config.network.bootstrap_nodes = vec![node.to_string()];
    config
        .save(config_path)
        .map_err(|e| NetworkError::Config(e.to_string()))?;
    Ok(path)
}

/// One configured node, as a probe found it.
#[derive(Clone, Debug, Serialize)]
pub struct NodeProbe {
    pub node: String,
    pub reachable: bool,
    /// Round trip of its `/status`.
    pub latency_ms: Option<u64>,
    pub chain_id: Option<u64>,
    pub genesis_hash: Option<Hash32>,
    /// Serves the wallet's own genesis (`None` when the wallet has none to compare).
    pub same_genesis: Option<bool>,
    pub height: Option<u64>,
    pub error: Option<String>,
}

impl NodeProbe {
    /// Reachable, and on the wallet's chain as far as it can tell.
    pub fn usable(&self) -> bool {
        self.reachable && self.same_genesis != Some(false)
    }
}

/// Asks every node in `nodes` for its `/status`, one at a time.
pub fn probe(nodes: &[String], ours: Option<Hash32>, timeout: Duration) -> Vec<NodeProbe> {
    nodes
        .iter()
        .map(|node| {
            let started = Instant::now();
            let status = NodeClient::new(std::slice::from_ref(node), timeout).and_then(|client| client.status());
            match status {
                Ok(status) => NodeProbe {
                    node: node.clone(),
                    reachable: true,
                    latency_ms: Some(started.elapsed().as_millis() as u64),
                    chain_id: Some(status.chain_id),
                    genesis_hash: Some(status.genesis_hash),
                    same_genesis: ours.map(|ours| ours == status.genesis_hash),
                    height: Some(status.height),
                    error: None,
                },
                Err(e) => NodeProbe {
                    node: node.clone(),
                    reachable: false,
                    latency_ms: None,
                    chain_id: None,
                    genesis_hash: None,
                    same_genesis: None,
                    height: None,
                    error: Some(e.to_string()),
                },
            }
        })
        .collect()
}

/// The testnet as the wallet's nodes show it.
#[derive(Clone, Debug, Serialize)]
pub struct NetworkInfo {
    pub chain_id: u64,
    pub genesis_hash: Hash32,
    /// The node that answered.
    pub node: String,
    pub height: u64,
    /// Time since the tip's block was made (by its timestamp).
    pub tip_age_ms: Option<u64>,
    /// Validators whose precommits finalized the tip, checked against the wallet's genesis.
    pub validators_signing: Option<usize>,
    pub validators: usize,
}

/// Reads the tip from the first node of `client` that answers; the tip's certificate is checked
/// against `genesis` (the wallet's own).
pub fn info(client: &NodeClient, node: &str, genesis: &Genesis, now_ms: u64) -> Result<NetworkInfo, NetworkError> {
    let status = client.status()?;
    let validators = ValidatorSet::from_genesis(genesis).map_err(|e| NetworkError::Config(e.to_string()))?;
    let tip = if status.height > 0 {
        client.headers(status.height)?.into_iter().next()
    } else {
        None
    };
    let (tip_age_ms, validators_signing) = match &tip {
        Some(certified) => (
            Some(now_ms.saturating_sub(certified.header.timestamp_ms)),
            validators
                .verify_commit(&certified.header, &certified.certificate)
                .ok()
                .map(|_| certified.certificate.signatures.len()),
        ),
        None => (None, None),
    };
    Ok(NetworkInfo {
        chain_id: status.chain_id,
        genesis_hash: status.genesis_hash,
        node: node.to_string(),
        height: status.height,
        tip_age_ms,
        validators_signing,
        validators: genesis.validators.len(),
    })
}
