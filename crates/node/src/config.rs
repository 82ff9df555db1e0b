//! `node.yaml`: one node's settings. Paths are relative to the node's home folder.
//!
//! Invariant: a config that loads has no unknown keys, names existing roles, and has values that
//! make sense together (distinct listen ports, non-zero limits); errors name the key at fault.

pub use crate::mailbox::MailboxConfig;
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use thiserror::Error;

pub const CONFIG_FILE: &str = "node.yaml";
/// The admin token's file name inside the node's data folder (`POST /v1/admin/export`).
pub const ADMIN_TOKEN_FILE: &str = "admin.token";

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NodeRole {
    /// Votes in consensus and proposes blocks.
    Validator,
    /// Non-voting full node: discovery seed, chain follower, account-node services, faucet.
    Bootstrap,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeConfig {
    pub role: NodeRole,
    /// Human name in logs and metrics.
    pub moniker: String,
    pub genesis_file: PathBuf,
    /// ed25519 key: consensus signing key of a validator, network identity of every node.
    pub node_key_file: PathBuf,
    #[serde(default = "default_data_dir")]
    pub data_dir: PathBuf,
    #[serde(default = "default_log_dir")]
    pub log_dir: PathBuf,
    pub p2p: P2pConfig,
    pub rpc: RpcConfig,
    #[serde(default)]
    pub consensus: ConsensusConfig,
    #[serde(default)]
    pub mempool: MempoolConfig,
    #[serde(default)]
    pub mailbox: MailboxConfig,
    /// Only on the node that hosts the testnet faucet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub faucet: Option<FaucetConfig>,
    #[serde(default, skip_serializing_if = "MetricsConfig::is_default")]
    pub metrics: MetricsConfig,
}

/// Where `/metrics` is served.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsConfig {
    /// A listener of its own for `/metrics` (as CometBFT's `prometheus_listen_addr`), so the
    /// RPC port can face the public while the metrics stay on a private or loopback address.
    /// Unset, `/metrics` is served on the RPC port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub listen_addr: Option<SocketAddr>,
}

impl MetricsConfig {
    fn is_default(&self) -> bool {
        self == &MetricsConfig::default()
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct P2pConfig {
    pub listen_addr: SocketAddr,
    /// Peers dialled at start and kept connected (the bootstrap node and, on small testnets,
    /// the other validators).
    #[serde(default)]
    pub persistent_peers: Vec<SocketAddr>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RpcConfig {
    pub listen_addr: SocketAddr,
    #[serde(default = "default_max_body_bytes")]
    pub max_body_bytes: usize,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsensusConfig {
    /// Longest time between two blocks: an idle chain makes an empty block this often (and
    /// `/readyz` judges the tip's age by it). With bundles waiting, the next block is proposed
    /// as soon as the previous one is decided. Below `timeout_propose_ms`.
    pub block_interval_ms: u64,
    /// How long a proposer with an empty mempool waits, once a first bundle arrives, for more
    /// to batch with it.
    #[serde(default = "default_batch_window_ms")]
    pub batch_window_ms: u64,
    pub max_bundles_per_block: usize,
    pub timeout_propose_ms: u64,
    pub timeout_prevote_ms: u64,
    pub timeout_precommit_ms: u64,
    /// A validator starts as a non-signing follower when any of the last this many commits
    /// (its own and its peers') holds a precommit by its key that it did not sign — another
    /// copy of its home is running. 0 turns the check off.
    #[serde(default = "default_double_sign_check_heights")]
    pub double_sign_check_heights: u64,
}

fn default_batch_window_ms() -> u64 {
    20
}

fn default_double_sign_check_heights() -> u64 {
    10
}

impl Default for ConsensusConfig {
    fn default() -> Self {
        ConsensusConfig {
            block_interval_ms: 1_000,
            batch_window_ms: default_batch_window_ms(),
            max_bundles_per_block: 1_000,
            timeout_propose_ms: 3_000,
            timeout_prevote_ms: 1_000,
            timeout_precommit_ms: 1_000,
            double_sign_check_heights: default_double_sign_check_heights(),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MempoolConfig {
    /// Senders with a pending bundle, at most.
    pub capacity: usize,
    /// RPC addresses of validators to pass newly admitted bundles on to, so a bundle sent to
    /// any node (the bootstrap node included) reaches every proposer.
    #[serde(default)]
    pub forward_to: Vec<SocketAddr>,
}

impl Default for MempoolConfig {
    fn default() -> Self {
        MempoolConfig {
            capacity: 10_000,
            forward_to: Vec::new(),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaucetConfig {
    /// The faucet's Web3 keystore (`faucet_keystore.json`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keystore_file: Option<PathBuf>,
    /// The file holding the keystore's password (`faucet_password`, 0600).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_file: Option<PathBuf>,
    /// A plain key file, as homes made before the keystore have it; instead of the two above.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_file: Option<PathBuf>,
    pub max_amount_per_request: u64,
    pub max_amount_per_address_per_hour: u64,
    /// What the faucet pays in any one hour, to all addresses together: addresses are free, so
    /// only this bounds how fast the faucet can be drained (docs/NODE.md sizes it).
    #[serde(default = "default_faucet_max_amount_per_hour")]
    pub max_amount_per_hour: u64,
}

pub fn default_faucet_max_amount_per_hour() -> u64 {
    100_000
}

fn default_data_dir() -> PathBuf {
    PathBuf::from("data")
}

fn default_log_dir() -> PathBuf {
    PathBuf::from("logs")
}

/// Room for the largest submission a node decodes (a snapshot with its evidence), as hex in
/// JSON: twice its size and a little.
pub(crate) fn default_max_body_bytes() -> usize {
    ezchain_protocol::bundle::MAX_SUBMISSION_BYTES * 2 + 4096
}

#[derive(Debug, Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{path} is not a valid node config: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("{path}: `{key}` {problem}")]
    Invalid {
        path: PathBuf,
        key: &'static str,
        problem: String,
    },
}

impl NodeConfig {
    /// Reads and validates `<home>/node.yaml`.
    pub fn load(home: &Path) -> Result<Self, ConfigError> {
        let path = home.join(CONFIG_FILE);
        let text = std::fs::read_to_string(&path).map_err(|source| ConfigError::Read {
            path: path.clone(),
            source,
        })?;
        let config: NodeConfig = serde_norway::from_str(&text).map_err(|e| ConfigError::Parse {
            path: path.clone(),
            message: e.to_string(),
        })?;
        config.validate(&path)?;
        Ok(config)
    }

    pub fn to_yaml(&self) -> String {
        serde_norway::to_string(self).expect("a node config always serializes")
    }

    fn validate(&self, path: &Path) -> Result<(), ConfigError> {
        let invalid = |key, problem: &str| {
            Err(ConfigError::Invalid {
                path: path.to_path_buf(),
                key,
                problem: problem.to_string(),
            })
        };
        if self.moniker.trim().is_empty() {
            return invalid("moniker", "must not be empty");
        }
        if self.p2p.listen_addr == self.rpc.listen_addr {
            return invalid("rpc.listen_addr", "must differ from p2p.listen_addr");
        }
        if self.consensus.max_bundles_per_block == 0 {
            return invalid("consensus.max_bundles_per_block", "must be at least 1");
        }
        if self.consensus.block_interval_ms == 0
            || self.consensus.block_interval_ms >= self.consensus.timeout_propose_ms
        {
            return invalid(
                "consensus.block_interval_ms",
                "must be at least 1 and below consensus.timeout_propose_ms (an idle proposer waits that long; its peers must not time out first)",
            );
        }
        if self.consensus.batch_window_ms >= self.consensus.block_interval_ms {
            return invalid("consensus.batch_window_ms", "must be below consensus.block_interval_ms");
        }
        if self.mempool.capacity == 0 {
            return invalid("mempool.capacity", "must be at least 1");
        }
        if let Some(addr) = self.metrics.listen_addr
            && (addr == self.rpc.listen_addr || addr == self.p2p.listen_addr)
        {
            return invalid(
                "metrics.listen_addr",
                "must differ from rpc.listen_addr and p2p.listen_addr (leave it out to serve /metrics on the RPC port)",
            );
        }
        if self.rpc.max_body_bytes < 1024 {
            return invalid("rpc.max_body_bytes", "must be at least 1024");
        }
        if self.mailbox.max_package_bytes < 1024
            || self.mailbox.max_bytes_per_recipient < self.mailbox.max_package_bytes as u64
        {
            return invalid(
                "mailbox.max_bytes_per_recipient",
                "must be at least mailbox.max_package_bytes, which must be at least 1024",
            );
        }
        if self.mailbox.max_packages_per_recipient == 0 || self.mailbox.retention_secs == 0 {
            return invalid(
                "mailbox",
                "max_packages_per_recipient and retention_secs must be positive",
            );
        }
        if let Some(faucet) = &self.faucet
            && !matches!(
                (&faucet.keystore_file, &faucet.password_file, &faucet.key_file),
                (Some(_), Some(_), None) | (None, None, Some(_))
            )
        {
            return invalid(
                "faucet.keystore_file",
                "name the faucet key: keystore_file with password_file (or, in an older home, key_file alone)",
            );
        }
        if let Some(faucet) = &self.faucet
            && (faucet.max_amount_per_request == 0
                || faucet.max_amount_per_address_per_hour < faucet.max_amount_per_request
                || faucet.max_amount_per_hour < faucet.max_amount_per_request)
        {
            return invalid(
                "faucet.max_amount_per_address_per_hour",
                "must be at least faucet.max_amount_per_request (as must faucet.max_amount_per_hour), which must be positive",
            );
        }
        Ok(())
    }

    /// Where the faucet's key is, resolved against the node's home (`None` without a faucet
    /// section; `load` made sure a section names one).
    pub fn faucet_key(&self, home: &Path) -> Option<ezchain_wallet::faucet::FaucetKeySource> {
        use ezchain_wallet::faucet::FaucetKeySource;
        let faucet = self.faucet.as_ref()?;
        match (&faucet.keystore_file, &faucet.password_file, &faucet.key_file) {
            (Some(keystore), Some(password), _) => Some(FaucetKeySource::Keystore {
                keystore: self.resolve(home, keystore),
                password_file: self.resolve(home, password),
            }),
            (_, _, Some(plain)) => Some(FaucetKeySource::Legacy(self.resolve(home, plain))),
            _ => None,
        }
    }

    /// A path from the config, resolved against the node's home.
    pub fn resolve(&self, home: &Path, relative: &Path) -> PathBuf {
        if relative.is_absolute() {
            relative.to_path_buf()
        } else {
            home.join(relative)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> NodeConfig {
        NodeConfig {
            role: NodeRole::Validator,
            moniker: "validator-0".into(),
            genesis_file: "../genesis.json".into(),
            node_key_file: "node_key.json".into(),
            data_dir: default_data_dir(),
            log_dir: default_log_dir(),
            p2p: P2pConfig {
                listen_addr: "127.0.0.1:19500".parse().unwrap(),
                persistent_peers: vec![],
            },
            rpc: RpcConfig {
                listen_addr: "127.0.0.1:19501".parse().unwrap(),
                max_body_bytes: default_max_body_bytes(),
            },
            consensus: ConsensusConfig::default(),
            mempool: MempoolConfig::default(),
            mailbox: MailboxConfig::default(),
            faucet: None,
            metrics: MetricsConfig::default(),
        }
    }

    fn write(dir: &Path, text: &str) {
        std::fs::write(dir.join(CONFIG_FILE), text).unwrap();
    }

    #[test]
    fn round_trips_through_yaml() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), &sample().to_yaml());
        assert_eq!(NodeConfig::load(dir.path()).unwrap(), sample());
    }

    #[test]
    fn unknown_keys_and_bad_values_are_named() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), &format!("{}bogus_key: 1\n", sample().to_yaml()));
        let err = NodeConfig::load(dir.path()).unwrap_err().to_string();
        assert!(err.contains("bogus_key"), "{err}");
        let mut same_port = sample();
        same_port.rpc.listen_addr = same_port.p2p.listen_addr;
        write(dir.path(), &same_port.to_yaml());
        let err = NodeConfig::load(dir.path()).unwrap_err().to_string();
        assert!(err.contains("rpc.listen_addr"), "{err}");
        let mut slow = sample();
        slow.consensus.block_interval_ms = slow.consensus.timeout_propose_ms;
        write(dir.path(), &slow.to_yaml());
        let err = NodeConfig::load(dir.path()).unwrap_err().to_string();
        assert!(
            err.contains("consensus.block_interval_ms") && err.contains("timeout_propose_ms"),
            "an idle proposer must answer before its peers give up: {err}"
        );
    }

    #[test]
    fn a_faucet_names_its_keystore_or_an_old_plain_key_file() {
        let dir = tempfile::tempdir().unwrap();
        let faucet = |keystore: Option<&str>, password: Option<&str>, plain: Option<&str>| FaucetConfig {
            keystore_file: keystore.map(PathBuf::from),
            password_file: password.map(PathBuf::from),
            key_file: plain.map(PathBuf::from),
            max_amount_per_request: 10,
            max_amount_per_address_per_hour: 10,
            max_amount_per_hour: 10,
        };
        for (config, valid) in [
            (faucet(Some("k.json"), Some("pw"), None), true),
            (faucet(None, None, Some("faucet_key.json")), true),
            (faucet(Some("k.json"), None, None), false),
            (faucet(Some("k.json"), Some("pw"), Some("faucet_key.json")), false),
            (faucet(None, None, None), false),
        ] {
            let mut node = sample();
            node.faucet = Some(config);
            write(dir.path(), &node.to_yaml());
            let loaded = NodeConfig::load(dir.path());
            assert_eq!(loaded.is_ok(), valid, "{:?}", node.faucet);
            if let Ok(loaded) = loaded {
                assert!(loaded.faucet_key(dir.path()).is_some());
            } else if let Err(e) = loaded {
                assert!(e.to_string().contains("faucet.keystore_file"), "{e}");
            }
        }
    }
}
