//! Whole-file replacement: a reader sees the old file or the new one, never half of one.

use std::path::Path;

/// Writes `bytes` to `path` through a temporary file beside it and a rename. Not synced: for
/// files that must survive the process, not a power loss (callers that need the latter use
/// [`crate::secret::write_secret_file`] or their database).
pub fn replace_file(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let temp = path.with_extension("tmp");
    std::fs::write(&temp, bytes)?;
    std::fs::rename(&temp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_replaced_file_holds_the_new_bytes_and_no_temporary_is_left() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("state.json");
        replace_file(&path, b"old").expect("first");
        replace_file(&path, b"new").expect("second");
        assert_eq!(std::fs::read(&path).expect("read"), b"new");
        assert!(!path.with_extension("tmp").exists());
    }
}
