//! The key file in a node's home: the ed25519 node key (consensus signing key of a validator,
//! and every node's network identity). The faucet's wallet key is the wallet crate's
//! (`ezchain_wallet::faucet`).
//!
//! Invariant: secret files are created 0600 with `create_new` (never overwritten), and a key
//! file whose public part does not match its secret, or that others can read, is refused.

use ezchain_protocol::finality::ValidatorAddress;
use serde::{Deserialize, Serialize};
use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use thiserror::Error;

#[derive(Debug, Error)]
pub enum KeyError {
    #[error("cannot read or write key file {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("key file {path} is malformed: {reason}")]
    Malformed { path: PathBuf, reason: String },
    #[error("key file {path} is readable by other users (mode {mode:o}); run `chmod 600 {path}`")]
    TooOpen { path: PathBuf, mode: u32 },
    #[error("the operating system's random source failed: {0}")]
    Random(String),
}

/// A node's ed25519 key.
pub struct NodeKey {
    signing: ed25519_consensus::SigningKey,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct NodeKeyFile {
    address: String,
    public_key: String,
    secret_key: String,
}

impl NodeKey {
    pub fn generate() -> Result<Self, KeyError> {
        Ok(NodeKey {
            signing: ed25519_consensus::SigningKey::from(random_32()?),
        })
    }

    pub fn public_key(&self) -> [u8; 32] {
        self.signing.verification_key().to_bytes()
    }

    pub fn validator_address(&self) -> ValidatorAddress {
        ValidatorAddress::from_public_key(&self.public_key())
    }

    pub fn signing_key(&self) -> &ed25519_consensus::SigningKey {
        &self.signing
    }

    pub fn write_new(&self, path: &Path) -> Result<(), KeyError> {
        let file = NodeKeyFile {
            address: self.validator_address().to_string(),
            public_key: hex::encode(self.public_key()),
            secret_key: hex::encode(self.signing.to_bytes()),
        };
        write_secret_json(path, &file)
    }

    pub fn load(path: &Path) -> Result<Self, KeyError> {
        let file: NodeKeyFile = read_secret_json(path)?;
        let secret = decode_32(path, &file.secret_key)?;
        let key = NodeKey {
            signing: ed25519_consensus::SigningKey::from(secret),
        };
        if hex::encode(key.public_key()) != file.public_key.trim_start_matches("0x") {
            return Err(malformed(path, "public_key does not belong to secret_key"));
        }
        Ok(key)
    }
}

fn random_32() -> Result<[u8; 32], KeyError> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| KeyError::Random(e.to_string()))?;
    Ok(bytes)
}

fn decode_32(path: &Path, text: &str) -> Result<[u8; 32], KeyError> {
    let mut out = [0u8; 32];
    hex::decode_to_slice(text.trim_start_matches("0x"), &mut out).map_err(|e| malformed(path, &e.to_string()))?;
    Ok(out)
}

fn malformed(path: &Path, reason: &str) -> KeyError {
    KeyError::Malformed {
        path: path.to_path_buf(),
        reason: reason.to_string(),
    }
}

/// Writes `value` as JSON to a new file with mode 0600; fails if the file exists.
pub fn write_secret_json<T: Serialize>(path: &Path, value: &T) -> Result<(), KeyError> {
    let io = |source| KeyError::Io {
        path: path.to_path_buf(),
        source,
    };
    let text = serde_json::to_string_pretty(value).map_err(|e| malformed(path, &e.to_string()))?;
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(io)?;
    file.write_all(text.as_bytes()).map_err(io)?;
    file.write_all(b"\n").map_err(io)?;
    file.sync_all().map_err(io)
}

fn read_secret_json<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<T, KeyError> {
    let io = |source| KeyError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mode = std::fs::metadata(path).map_err(io)?.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(KeyError::TooOpen {
            path: path.to_path_buf(),
            mode,
        });
    }
    let text = std::fs::read_to_string(path).map_err(io)?;
    serde_json::from_str(&text).map_err(|e| malformed(path, &e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_key_round_trip_and_permissions() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("node_key.json");
        let key = NodeKey::generate().unwrap();
        key.write_new(&path).unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        assert_eq!(NodeKey::load(&path).unwrap().public_key(), key.public_key());
        // Never overwritten.
        assert!(matches!(
            NodeKey::generate().unwrap().write_new(&path),
            Err(KeyError::Io { .. })
        ));
        // Refused once others can read it.
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(matches!(NodeKey::load(&path), Err(KeyError::TooOpen { .. })));
    }
}
