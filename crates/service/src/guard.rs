//! Replay protection and idempotency, persisted in `<data_dir>/service.redb` so a restart
//! neither reopens a nonce's window nor forgets a payment's answer.

use ezchain_host::export::{ExportError, copy_table, export_database, open_unheld};
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};
use std::path::Path;
use thiserror::Error;

/// Nonce → expiry (ms since the epoch).
const NONCES: TableDefinition<&str, u64> = TableDefinition::new("nonces");
/// client_tx_id → JSON `IdempotencyRecord`.
const SENDS: TableDefinition<&str, &[u8]> = TableDefinition::new("sends");

#[derive(Debug, Error)]
#[error("service database error: {0}")]
pub struct GuardError(#[from] redb::Error);

macro_rules! db {
    ($e:expr) => {
        $e.map_err(|e| GuardError(e.into()))
    };
}

/// The first answer to a `/tx/send` with a given `client_tx_id`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdempotencyRecord {
    /// Hash of the request body without secrets: a retry must send the same body.
    pub body_hash: String,
    /// `None` while the first request has not answered (or died before answering).
    pub response: Option<StoredResponse>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredResponse {
    pub status: u16,
    pub body: serde_json::Value,
}

pub struct Guard {
    db: Database,
}

#[derive(Debug, PartialEq, Eq)]
pub enum NonceOutcome {
    Fresh,
    Replayed,
}

impl Guard {
    /// Whether `error` says another process holds the database (a second `serve` on one folder).
    pub fn held_elsewhere(error: &GuardError) -> bool {
        matches!(&error.0, redb::Error::DatabaseAlreadyOpen)
    }

    pub fn open(path: &Path) -> Result<Self, GuardError> {
        let db = db!(Database::create(path))?;
        let txn = db!(db.begin_write())?;
        db!(txn.open_table(NONCES))?;
        db!(txn.open_table(SENDS))?;
        db!(txn.commit())?;
        Ok(Guard { db })
    }

    /// Copies the nonces and idempotency records, as of one commit, into a new database.
    pub fn export(&self, target: &Path) -> Result<u64, ExportError> {
        export_guard(&self.db, target)
    }

    /// [`Guard::export`] for a database no process has open (`Busy` otherwise).
    pub fn export_file(source: &Path, target: &Path) -> Result<u64, ExportError> {
        export_guard(&open_unheld(source)?, target)
    }

    /// Claims `nonce` (scoped by `scope`, the caller's token) for `ttl_ms`; expired nonces are
    /// dropped on the way.
    pub fn claim_nonce(&self, scope: &str, nonce: &str, now_ms: u64, ttl_ms: u64) -> Result<NonceOutcome, GuardError> {
        let key = format!("{scope}:{nonce}");
        let txn = db!(self.db.begin_write())?;
        let outcome;
        {
            let mut table = db!(txn.open_table(NONCES))?;
            let expired: Vec<String> = db!(table.iter())?
                .filter_map(Result::ok)
                .filter(|(_, expiry)| expiry.value() <= now_ms)
                .map(|(k, _)| k.value().to_string())
                .collect();
            for stale in &expired {
                db!(table.remove(stale.as_str()))?;
            }
            let seen = db!(table.get(key.as_str()))?.is_some();
            if seen {
                outcome = NonceOutcome::Replayed;
            } else {
                db!(table.insert(key.as_str(), now_ms + ttl_ms))?;
                outcome = NonceOutcome::Fresh;
            }
        }
        db!(txn.commit())?;
        Ok(outcome)
    }

    pub fn send_record(&self, client_tx_id: &str) -> Result<Option<IdempotencyRecord>, GuardError> {
        let txn = db!(self.db.begin_read())?;
        let table = db!(txn.open_table(SENDS))?;
        Ok(db!(table.get(client_tx_id))?.and_then(|v| serde_json::from_slice(v.value()).ok()))
    }

    /// Durably records a send before it leaves the machine, or its answer after.
    pub fn put_send_record(&self, client_tx_id: &str, record: &IdempotencyRecord) -> Result<(), GuardError> {
        let bytes = serde_json::to_vec(record).unwrap_or_default();
        let txn = db!(self.db.begin_write())?;
        {
            let mut table = db!(txn.open_table(SENDS))?;
            db!(table.insert(client_tx_id, bytes.as_slice()))?;
        }
        db!(txn.commit())?;
        Ok(())
    }
}

fn export_guard(db: &Database, target: &Path) -> Result<u64, ExportError> {
    export_database(db, target, |from, to| {
        copy_table(from, to, NONCES)?;
        copy_table(from, to, SENDS)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nonces_are_single_use_within_their_window_and_survive_reopen() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("service.redb");
        {
            let guard = Guard::open(&path).expect("open");
            assert_eq!(
                guard.claim_nonce("t", "nonce-0001", 0, 1000).expect("claim"),
                NonceOutcome::Fresh
            );
            assert_eq!(
                guard.claim_nonce("t", "nonce-0001", 10, 1000).expect("claim"),
                NonceOutcome::Replayed
            );
            assert_eq!(
                guard.claim_nonce("u", "nonce-0001", 10, 1000).expect("claim"),
                NonceOutcome::Fresh
            );
        }
        let guard = Guard::open(&path).expect("reopen");
        assert_eq!(
            guard.claim_nonce("t", "nonce-0001", 500, 1000).expect("claim"),
            NonceOutcome::Replayed
        );
        assert_eq!(
            guard.claim_nonce("t", "nonce-0001", 1000, 1000).expect("claim"),
            NonceOutcome::Fresh
        );
    }

    #[test]
    fn send_records_round_trip() {
        let dir = tempfile::tempdir().expect("temp dir");
        let guard = Guard::open(&dir.path().join("service.redb")).expect("open");
        assert_eq!(guard.send_record("a").expect("read"), None);
        let record = IdempotencyRecord {
            body_hash: "h".into(),
            response: Some(StoredResponse {
                status: 200,
                body: serde_json::json!({"ok": true}),
            }),
        };
        guard.put_send_record("a", &record).expect("write");
        assert_eq!(guard.send_record("a").expect("read"), Some(record));
    }
}
