//! Reading a genesis file: JSON, then the protocol's own checks.

use ezchain_protocol::Genesis;
use std::path::{Path, PathBuf};
use thiserror::Error;

#[derive(Debug, Error)]
pub enum GenesisFileError {
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{path} is not a valid genesis: {reason}")]
    Invalid { path: PathBuf, reason: String },
}

/// Loads and validates the genesis file at `path`.
pub fn load_genesis(path: &Path) -> Result<Genesis, GenesisFileError> {
    let text = std::fs::read_to_string(path).map_err(|source| GenesisFileError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let invalid = |reason: String| GenesisFileError::Invalid {
        path: path.to_path_buf(),
        reason,
    };
    let genesis: Genesis = serde_json::from_str(&text).map_err(|e| invalid(e.to_string()))?;
    genesis.validate().map_err(|e| invalid(e.to_string()))?;
    Ok(genesis)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_or_malformed_genesis_names_its_file() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("genesis.json");
        let missing = load_genesis(&path).expect_err("missing");
        assert!(matches!(missing, GenesisFileError::Read { .. }));
        assert!(missing.to_string().contains("genesis.json"), "{missing}");
        std::fs::write(&path, "{\"chain_id\": ").expect("write");
        let malformed = load_genesis(&path).expect_err("malformed");
        assert!(matches!(malformed, GenesisFileError::Invalid { .. }), "{malformed}");
    }
}
