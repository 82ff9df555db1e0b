//! `ezchain.yaml`: the account node's settings (the upstream tool's sections, read with a real
//! YAML parser). Unknown keys are errors that name the key; relative paths are resolved against
//! the folder of the config file; a missing file means the defaults.

use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use thiserror::Error;

pub const CONFIG_VERSION: u32 = 1;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AppConfig {
    pub meta: MetaSection,
    pub network: NetworkSection,
    pub app: AppSection,
    pub security: SecuritySection,
    pub wallet: WalletSection,
    /// Folder the relative paths are resolved against (the config file's folder).
    #[serde(skip)]
    pub base_dir: PathBuf,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetaSection {
    pub config_version: u32,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NetworkSection {
    pub name: String,
    /// RPC endpoints (`host:port`) of the nodes this wallet talks to, tried in order.
    pub bootstrap_nodes: Vec<String>,
    /// The testnet's genesis file: every received value is verified against it.
    pub genesis_file: PathBuf,
    /// Defaults of `node start`.
    pub consensus_nodes: u32,
    pub account_nodes: u32,
    pub start_port: u16,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AppSection {
    pub data_dir: PathBuf,
    pub log_dir: PathBuf,
    pub api_host: String,
    pub api_port: u16,
    pub api_token_file: PathBuf,
    /// `serve` refuses a non-loopback `api_host` unless this is true.
    pub allow_remote: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SecuritySection {
    pub max_payload_bytes: usize,
    pub max_tx_amount: u64,
    pub nonce_ttl_seconds: u64,
    /// Requests per minute one client address may make to `serve`.
    pub rate_limit_per_minute: u32,
    /// How long `/wallet/unlock` keeps the key in memory by default.
    pub unlock_ttl_seconds: u64,
    /// `service_audit.log` is rotated when it reaches this size.
    pub audit_max_bytes: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WalletSection {
    /// scrypt cost of new keystores, as log2(N). 18 is the Web3 default; tests lower it.
    pub scrypt_log_n: u8,
    /// How long `tx send` waits for finality by default.
    pub send_wait_seconds: u64,
    /// Blocks after which a submitted bundle expires if not included.
    pub bundle_expiry_blocks: u64,
    /// Timeout of one request to a node.
    pub request_timeout_seconds: u64,
}

/// The audit log's file names: an audit log is never rolled back, so restore must know them.
pub const AUDIT_LOG_FILE: &str = "service_audit.log";
pub const AUDIT_ROTATED_FILE: &str = "service_audit.log.1";
pub const AUDIT_HEAD_FILE: &str = "audit_head.json";
pub const AUDIT_RESTORED_MARKER: &str = "audit_restored.json";

impl Default for AppConfig {
    fn default() -> Self {
        AppConfig {
            meta: MetaSection::default(),
            network: NetworkSection::default(),
            app: AppSection::default(),
            security: SecuritySection::default(),
            wallet: WalletSection::default(),
            base_dir: PathBuf::from("."),
        }
    }
}

impl Default for MetaSection {
    fn default() -> Self {
        MetaSection {
            config_version: CONFIG_VERSION,
        }
    }
}

impl Default for NetworkSection {
    fn default() -> Self {
        NetworkSection {
            name: "testnet-local".into(),
            // The bootstrap node's RPC port of `ezchain testnet init --validators 1`.
            bootstrap_nodes: vec!["127.0.0.1:19503".into()],
            // What `node start` writes under the default data folder: a fresh folder's
            // defaults are the local devnet's.
            genesis_file: PathBuf::from(".ezchain/testnet/genesis.json"),
            consensus_nodes: 1,
            account_nodes: 1,
            start_port: 19500,
        }
    }
}

impl Default for AppSection {
    fn default() -> Self {
        AppSection {
            data_dir: PathBuf::from(".ezchain"),
            log_dir: PathBuf::from(".ezchain/logs"),
            api_host: "127.0.0.1".into(),
            api_port: 8787,
            api_token_file: PathBuf::from(".ezchain/api.token"),
            allow_remote: false,
        }
    }
}

impl Default for SecuritySection {
    fn default() -> Self {
        SecuritySection {
            max_payload_bytes: 65_536,
            max_tx_amount: 100_000_000,
            nonce_ttl_seconds: 600,
            rate_limit_per_minute: 1200,
            unlock_ttl_seconds: 300,
            audit_max_bytes: 16 * 1024 * 1024,
        }
    }
}

impl Default for WalletSection {
    fn default() -> Self {
        WalletSection {
            scrypt_log_n: crate::keystore::DEFAULT_SCRYPT_LOG_N,
            send_wait_seconds: 60,
            bundle_expiry_blocks: 600,
            request_timeout_seconds: 10,
        }
    }
}

#[derive(Debug, Error)]
pub enum AppConfigError {
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{path} is not a valid config: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("{path}: `{key}` {problem}")]
    Invalid {
        path: PathBuf,
        key: &'static str,
        problem: String,
    },
}

impl AppConfig {
    /// Reads `path`; a missing file gives the defaults, resolved against its folder.
    pub fn load(path: &Path) -> Result<Self, AppConfigError> {
        let base_dir = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .map_or_else(|| PathBuf::from("."), Path::to_path_buf);
        let mut config = match std::fs::read_to_string(path) {
            // An empty file is a config that sets nothing (what `touch ezchain.yaml` makes).
            Ok(text) if text.trim().is_empty() => AppConfig::default(),
            Ok(text) => serde_norway::from_str::<AppConfig>(&text).map_err(|e| AppConfigError::Parse {
                path: path.to_path_buf(),
                message: e.to_string(),
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => AppConfig::default(),
            Err(source) => {
                return Err(AppConfigError::Read {
                    path: path.to_path_buf(),
                    source,
                });
            }
        };
        config.base_dir = base_dir;
        config.validate(path)?;
        Ok(config)
    }

    fn validate(&self, path: &Path) -> Result<(), AppConfigError> {
        let invalid = |key, problem: &str| {
            Err(AppConfigError::Invalid {
                path: path.to_path_buf(),
                key,
                problem: problem.to_string(),
            })
        };
        if self.meta.config_version > CONFIG_VERSION {
            return invalid(
                "meta.config_version",
                "is newer than this ezchain understands; upgrade ezchain",
            );
        }
        if self.network.bootstrap_nodes.is_empty() {
            return invalid("network.bootstrap_nodes", "must list at least one node RPC address");
        }
        if !(1..=20).contains(&self.wallet.scrypt_log_n) {
            return invalid("wallet.scrypt_log_n", "must be between 1 and 20");
        }
        if self.security.nonce_ttl_seconds == 0 || self.security.rate_limit_per_minute == 0 {
            return invalid(
                "security.nonce_ttl_seconds",
                "and security.rate_limit_per_minute must be positive",
            );
        }
        if self.security.max_tx_amount == 0 {
            return invalid("security.max_tx_amount", "must be positive");
        }
        if self.wallet.bundle_expiry_blocks == 0 || self.wallet.request_timeout_seconds == 0 {
            return invalid(
                "wallet.bundle_expiry_blocks",
                "and wallet.request_timeout_seconds must be positive",
            );
        }
        Ok(())
    }

    /// A path from the config, resolved against the config file's folder.
    pub fn resolve(&self, path: &Path) -> PathBuf {
        if path.is_absolute() {
            path.to_path_buf()
        } else {
            self.base_dir.join(path)
        }
    }

    pub fn data_dir(&self) -> PathBuf {
        self.resolve(&self.app.data_dir)
    }

    pub fn log_dir(&self) -> PathBuf {
        self.resolve(&self.app.log_dir)
    }

    pub fn token_file(&self) -> PathBuf {
        self.resolve(&self.app.api_token_file)
    }

    /// The service's audit log (`ezchain serve` writes it; backup and restore keep it).
    pub fn audit_log_file(&self) -> PathBuf {
        self.log_dir().join(AUDIT_LOG_FILE)
    }

    /// The audit log's anchored head, kept outside the log.
    pub fn audit_head_file(&self) -> PathBuf {
        self.data_dir().join(AUDIT_HEAD_FILE)
    }

    /// Left by `ops restore` for the service to chain as a `restored` audit event.
    pub fn audit_restored_marker(&self) -> PathBuf {
        self.data_dir().join(AUDIT_RESTORED_MARKER)
    }

    pub fn genesis_file(&self) -> PathBuf {
        self.resolve(&self.network.genesis_file)
    }

    pub fn to_yaml(&self) -> String {
        serde_norway::to_string(self).unwrap_or_default()
    }

    /// Saves this config to `path` atomically; an existing different file is kept as
    /// `<path>.bak.<unix seconds>` first.
    pub fn save(&self, path: &Path) -> Result<(), AppConfigError> {
        let text = self.to_yaml();
        let io = |source| AppConfigError::Read {
            path: path.to_path_buf(),
            source,
        };
        match std::fs::read_to_string(path) {
            Ok(old) if old == text => return Ok(()),
            Ok(old) => {
                let secs = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs());
                let mut backup = path.as_os_str().to_owned();
                backup.push(format!(".bak.{secs}"));
                std::fs::write(PathBuf::from(backup), old).map_err(io)?;
            }
            Err(_) => {}
        }
        let mut temp = path.as_os_str().to_owned();
        temp.push(".tmp");
        let temp = PathBuf::from(temp);
        std::fs::write(&temp, text).map_err(io)?;
        std::fs::rename(&temp, path).map_err(io)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_file_is_defaults_resolved_next_to_it() {
        let dir = tempfile::tempdir().expect("temp dir");
        let config = AppConfig::load(&dir.path().join("ezchain.yaml")).expect("defaults");
        assert_eq!(config.data_dir(), dir.path().join(".ezchain"));
    }

    #[test]
    fn round_trip_unknown_keys_and_bad_values() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("ezchain.yaml");
        let mut config = AppConfig::default();
        config.wallet.scrypt_log_n = 4;
        config.network.bootstrap_nodes = vec!["127.0.0.1:1".into(), "127.0.0.1:2".into()];
        std::fs::write(&path, config.to_yaml()).expect("write");
        let read = AppConfig::load(&path).expect("load");
        assert_eq!(read.wallet, config.wallet);
        assert_eq!(read.network, config.network);
        std::fs::write(&path, "app:\n  data_dirr: x\n").expect("write");
        let err = AppConfig::load(&path).expect_err("unknown key").to_string();
        assert!(err.contains("data_dirr"), "{err}");
        std::fs::write(&path, "wallet:\n  scrypt_log_n: 40\n").expect("write");
        let err = AppConfig::load(&path).expect_err("bad value").to_string();
        assert!(err.contains("wallet.scrypt_log_n"), "{err}");
        // A partial file keeps the defaults of everything else.
        std::fs::write(&path, "app:\n  data_dir: state\n").expect("write");
        let read = AppConfig::load(&path).expect("partial");
        assert_eq!(read.data_dir(), dir.path().join("state"));
        assert_eq!(read.security, SecuritySection::default());
    }
}
