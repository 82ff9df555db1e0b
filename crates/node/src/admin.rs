//! Local administration: secret tokens in 0600 files, and online exports of redb databases.
//!
//! A running node holds its databases' file locks, so a backup cannot open them; instead the
//! node copies every table inside one read transaction into a new file (`POST
//! /v1/admin/export`, authorised by the token in `<data_dir>/admin.token`, which only the
//! operator's account can read). The copy is the database exactly as of one commit, never a torn
//! file. The same export runs in the backup tool's own process when nobody holds the database.

use redb::{Database, ReadTransaction, ReadableDatabase, ReadableTable, TableDefinition, WriteTransaction};
use std::io::Write;
use std::path::{Path, PathBuf};
use subtle::ConstantTimeEq;
use thiserror::Error;

/// The admin token's file name inside the node's data folder.
pub const ADMIN_TOKEN_FILE: &str = "admin.token";

fn new_token() -> std::io::Result<String> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(std::io::Error::other)?;
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

#[derive(Debug, Error)]
pub enum ExportError {
    #[error("{0} already exists; an export never overwrites a file")]
    Exists(PathBuf),
    #[error("{0} is held by a running process")]
    Busy(PathBuf),
    #[error("{0} does not exist")]
    Missing(PathBuf),
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("database error: {0}")]
    Database(#[from] redb::Error),
}

/// Copies every row of `table` from `from` into `to`.
pub fn copy_table<K: redb::Key + 'static, V: redb::Value + 'static>(
    from: &ReadTransaction,
    to: &WriteTransaction,
    table: TableDefinition<K, V>,
) -> Result<(), redb::Error> {
    let source = match from.open_table(table) {
        Ok(source) => source,
        // A table the database never created has nothing to copy.
        Err(redb::TableError::TableDoesNotExist(_)) => return Ok(()),
        Err(e) => return Err(e.into()),
    };
    let mut target = to.open_table(table)?;
    for entry in source.iter()? {
        let (key, value) = entry?;
        target.insert(key.value(), value.value())?;
    }
    Ok(())
}

/// Writes a new database at `target` holding what `copy` copies out of one read transaction of
/// `source`; the file appears (0600) only once complete. Returns its size in bytes.
pub fn export_database(
    source: &Database,
    target: &Path,
    copy: impl FnOnce(&ReadTransaction, &WriteTransaction) -> Result<(), redb::Error>,
) -> Result<u64, ExportError> {
    let io = |source| ExportError::Io {
        path: target.to_path_buf(),
        source,
    };
    if target.exists() {
        return Err(ExportError::Exists(target.to_path_buf()));
    }
    if let Some(parent) = target.parent() {
        std::fs::create_dir_all(parent).map_err(io)?;
    }
    let partial = target.with_extension("partial");
    let _ = std::fs::remove_file(&partial);
    {
        let read = source.begin_read().map_err(redb::Error::from)?;
        let copy_db = Database::create(&partial).map_err(redb::Error::from)?;
        let write = copy_db.begin_write().map_err(redb::Error::from)?;
        copy(&read, &write)?;
        write.commit().map_err(redb::Error::from)?;
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&partial, std::fs::Permissions::from_mode(0o600)).map_err(io)?;
    }
    std::fs::rename(&partial, target).map_err(io)?;
    Ok(std::fs::metadata(target).map_err(io)?.len())
}

/// Opens `path` for an offline export: `Busy` when a running process holds it.
pub fn open_unheld(path: &Path) -> Result<Database, ExportError> {
    if !path.exists() {
        return Err(ExportError::Missing(path.to_path_buf()));
    }
    match Database::open(path) {
        Ok(db) => Ok(db),
        Err(redb::DatabaseError::DatabaseAlreadyOpen) => Err(ExportError::Busy(path.to_path_buf())),
        Err(e) => Err(ExportError::Database(e.into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use redb::ReadableTableMetadata;

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

    const ROWS: TableDefinition<u64, &[u8]> = TableDefinition::new("rows");

    #[test]
    fn an_export_is_one_commit_never_overwrites_and_a_held_file_is_busy() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("live.redb");
        let db = Database::create(&path).expect("create");
        let write = db.begin_write().expect("write");
        {
            let mut rows = write.open_table(ROWS).expect("table");
            for n in 0..100u64 {
                rows.insert(n, n.to_be_bytes().as_slice()).expect("insert");
            }
        }
        write.commit().expect("commit");
        // The source is held open (as by a running node) while it is exported.
        assert!(matches!(open_unheld(&path), Err(ExportError::Busy(_))));
        let target = dir.path().join("copy.redb");
        export_database(&db, &target, |from, to| copy_table(from, to, ROWS)).expect("export");
        assert!(matches!(
            export_database(&db, &target, |from, to| copy_table(from, to, ROWS)),
            Err(ExportError::Exists(_))
        ));
        drop(db);
        let copy = open_unheld(&target).expect("the copy opens");
        let read = copy.begin_read().expect("read");
        let rows = read.open_table(ROWS).expect("table");
        assert_eq!(rows.len().expect("len"), 100);
        assert_eq!(
            rows.get(42).expect("get").expect("row").value(),
            42u64.to_be_bytes().as_slice()
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&target).expect("meta").permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        assert!(matches!(
            open_unheld(&dir.path().join("absent.redb")),
            Err(ExportError::Missing(_))
        ));
    }
}
