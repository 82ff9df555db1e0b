//! Secret files (0600, written atomically) and the random API tokens kept in them, compared in
//! constant time.

use std::io::Write;
use std::path::Path;
use subtle::ConstantTimeEq;

fn new_token() -> std::io::Result<String> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| std::io::Error::other(e.to_string()))?;
    Ok(hex::encode(bytes))
}

/// Writes `bytes` to `path` atomically (temporary file, fsync, rename) with mode 0600.
pub fn write_secret_file(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let temp = path.with_extension("tmp");
    let _ = std::fs::remove_file(&temp);
    {
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options.open(&temp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
    }
    std::fs::rename(&temp, path)
}

/// The token in `path`, created (256 random bits, hex, 0600) on first use.
pub fn ensure_token(path: &Path) -> std::io::Result<String> {
    match read_token(path) {
        Ok(token) => Ok(token),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let token = new_token()?;
            write_secret_file(path, token.as_bytes())?;
            Ok(token)
        }
        Err(e) => Err(e),
    }
}

/// Replaces the token in `path`.
pub fn rotate_token(path: &Path) -> std::io::Result<String> {
    let token = new_token()?;
    write_secret_file(path, token.as_bytes())?;
    Ok(token)
}

pub fn read_token(path: &Path) -> std::io::Result<String> {
    let token = std::fs::read_to_string(path)?.trim().to_string();
    if token.len() < 32 {
        return Err(std::io::Error::other(format!(
            "{} holds no usable token; delete it and restart the process that owns it",
            path.display()
        )));
    }
    Ok(token)
}

/// Constant-time comparison (the length is not secret).
pub fn token_matches(given: &[u8], expected: &[u8]) -> bool {
    !given.is_empty() && given.len() == expected.len() && bool::from(given.ct_eq(expected))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_is_created_once_0600_and_rotates() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("api.token");
        let first = ensure_token(&path).expect("create");
        assert_eq!(first.len(), 64, "256 bits of randomness, hex");
        assert_eq!(ensure_token(&path).expect("read"), first);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).expect("meta").permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let second = rotate_token(&path).expect("rotate");
        assert_ne!(first, second);
        assert_eq!(read_token(&path).expect("read"), second);
        assert!(token_matches(second.as_bytes(), second.as_bytes()));
        assert!(!token_matches(first.as_bytes(), second.as_bytes()));
        assert!(!token_matches(b"", b""));
    }
}
