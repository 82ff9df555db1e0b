//! Online exports of redb databases.
//!
//! A running process holds its databases' file locks, so a backup cannot open them; instead the
//! process copies every table inside one read transaction into a new file. The copy is the
//! database exactly as of one commit, never a torn file. The same export runs in the backup
//! tool's own process when nobody holds the database.

use redb::{Database, ReadTransaction, ReadableDatabase, ReadableTable, TableDefinition, WriteTransaction};
use std::path::{Path, PathBuf};
use thiserror::Error;

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
