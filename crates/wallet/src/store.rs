//! The wallet's state: one redb database under `<data_dir>/wallet_state/wallet.redb`.
//!
//! Tables: `meta` (owner, genesis hash, the owner's [`Holdings`] — values, witnesses, sidecars,
//! receipts, checkpoints, the pending bundle, accepted packages — as one borsh value, and the
//! header-sync tip); `headers` (verified finalized headers by height); `outbox` (transfer
//! packages not yet delivered); `history` (every send, receipt and rejection, by id);
//! `client_ids` (a send's `client_tx_id` → its history id).
//!
//! Every state change is one [`Update`] committed in one transaction, so a crash at any instant
//! leaves either the old state or the new one, never a value counted twice or lost.

use crate::history::TxRecord;
use ezchain_host::export::{ExportError, export_database};
use ezchain_protocol::codec::{decode, encode};
use ezchain_protocol::ownership::Holdings;
use ezchain_protocol::state::STATE_FORMAT;
use ezchain_protocol::{Address, Hash32, HeaderLite, TransferPackage};
use redb::{Database, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition};
use std::collections::BTreeMap;
use std::path::Path;
use thiserror::Error;

const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
const HEADERS: TableDefinition<u64, &[u8]> = TableDefinition::new("headers");
const OUTBOX: TableDefinition<&[u8; 32], &[u8]> = TableDefinition::new("outbox");
const HISTORY: TableDefinition<u64, &[u8]> = TableDefinition::new("history");
const CLIENT_IDS: TableDefinition<&str, u64> = TableDefinition::new("client_ids");

const OWNER_KEY: &str = "owner";
const GENESIS_KEY: &str = "genesis_hash";
const HOLDINGS_KEY: &str = "holdings";
/// `ezchain_protocol::state::STATE_FORMAT` of the receipts and proofs inside the holdings; absent
/// in states written before it was recorded (format 2).
const STATE_FORMAT_KEY: &str = "state_format";
const UNRECORDED_STATE_FORMAT: u32 = 2;
/// Largest stored object read back.
const MAX_STORED_BYTES: usize = 256 * 1024 * 1024;

#[derive(Debug, Error)]
pub enum StoreError {
    #[error("wallet database error: {0}")]
    Database(#[from] redb::Error),
    #[error("this wallet state belongs to {stored}, not to {expected}; use another data_dir")]
    OwnerMismatch { stored: Address, expected: Address },
    #[error("this wallet state was made for genesis {stored}, not {expected}; use another data_dir")]
    GenesisMismatch { stored: Hash32, expected: Hash32 },
    #[error(
        "this wallet state holds proofs of state format {stored}, this version reads format {expected}: \
         they belong to a chain that cannot continue; move the wallet_state folder aside (the keystore \
         and mnemonic are not in it) and open the wallet again on the new chain"
    )]
    StateFormat { stored: u32, expected: u32 },
    #[error("stored {what} is corrupt: {reason}")]
    Corrupt { what: &'static str, reason: String },
    #[error(
        "the wallet is in use by another ezchain process (is `ezchain serve` running?); retry, or use that service's API"
    )]
    Busy,
}

macro_rules! db_err {
    ($e:expr) => {
        $e.map_err(|e| StoreError::Database(e.into()))
    };
}

fn corrupt(what: &'static str) -> impl Fn(String) -> StoreError {
    move |reason| StoreError::Corrupt { what, reason }
}

/// Everything one state change writes, committed together.
#[derive(Default)]
pub struct Update<'a> {
    pub holdings: Option<&'a Holdings>,
    pub headers: Vec<HeaderLite>,
    pub outbox_add: Vec<TransferPackage>,
    pub outbox_remove: Vec<Hash32>,
    pub history: Vec<TxRecord>,
    /// History records to delete (old rejections past the kept number).
    pub history_remove: Vec<u64>,
}

pub struct WalletStore {
    db: Database,
}

/// How long to wait for another process (the wallet service between two jobs) to let go.
const BUSY_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// Opens the database, waiting up to `wait` while another process holds it.
pub fn open_waiting(path: &Path, wait: std::time::Duration) -> Result<Database, StoreError> {
    let deadline = std::time::Instant::now() + wait;
    loop {
        match Database::create(path) {
            Ok(db) => return Ok(db),
            Err(redb::DatabaseError::DatabaseAlreadyOpen) if std::time::Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
            Err(redb::DatabaseError::DatabaseAlreadyOpen) => return Err(StoreError::Busy),
            Err(e) => return Err(StoreError::Database(e.into())),
        }
    }
}

/// Copies the wallet state under `data_dir` into a new database at `target`, waiting up to `wait`
/// for another process (or thread) to let go of it. Returns the copy's size in bytes.
pub fn export_wallet(data_dir: &Path, target: &Path, wait: std::time::Duration) -> Result<u64, ExportError> {
    let source = data_dir.join(crate::wallet::STATE_DIR).join("wallet.redb");
    if !source.exists() {
        return Err(ExportError::Missing(source));
    }
    let db = open_waiting(&source, wait).map_err(|e| match e {
        StoreError::Busy => ExportError::Busy(source.clone()),
        other => ExportError::Io {
            path: source.clone(),
            source: std::io::Error::other(other.to_string()),
        },
    })?;
    export_database(&db, target, copy_tables)
}

/// Copies every table of a wallet database (`from`) into `to`: the wallet's part of an online
/// backup (`ezchain ops backup` runs it inside one read transaction).
pub fn copy_tables(from: &redb::ReadTransaction, to: &redb::WriteTransaction) -> Result<(), redb::Error> {
    fn copy<K: redb::Key + 'static, V: redb::Value + 'static>(
        from: &redb::ReadTransaction,
        to: &redb::WriteTransaction,
        table: TableDefinition<K, V>,
    ) -> Result<(), redb::Error> {
        let mut target = to.open_table(table)?;
        for entry in from.open_table(table)?.iter()? {
            let (key, value) = entry?;
            target.insert(key.value(), value.value())?;
        }
        Ok(())
    }
    copy(from, to, META)?;
    copy(from, to, HEADERS)?;
    copy(from, to, OUTBOX)?;
    copy(from, to, HISTORY)?;
    copy(from, to, CLIENT_IDS)
}

fn read_history(txn: &redb::ReadTransaction) -> Result<Vec<TxRecord>, StoreError> {
    let table = db_err!(txn.open_table(HISTORY))?;
    let mut records = Vec::new();
    for entry in db_err!(table.iter())? {
        let (_, bytes) = db_err!(entry)?;
        records.push(serde_json::from_slice(bytes.value()).map_err(|e| corrupt("history record")(e.to_string()))?);
    }
    Ok(records)
}

impl WalletStore {
    /// Opens the state of `owner` on the chain of `genesis_hash`, creating it from `fresh` on
    /// first use.
    pub fn open(
        path: &Path,
        owner: Address,
        genesis_hash: Hash32,
        fresh: impl FnOnce() -> Holdings,
    ) -> Result<(Self, Holdings), StoreError> {
        let db = open_waiting(path, BUSY_WAIT)?;
        let txn = db_err!(db.begin_write())?;
        let holdings;
        {
            db_err!(txn.open_table(HEADERS))?;
            db_err!(txn.open_table(OUTBOX))?;
            db_err!(txn.open_table(HISTORY))?;
            db_err!(txn.open_table(CLIENT_IDS))?;
            let mut meta = db_err!(txn.open_table(META))?;
            let stored_owner = db_err!(meta.get(OWNER_KEY))?.map(|v| v.value().to_vec());
            match stored_owner {
                Some(bytes) => {
                    let stored: Address = decode(&bytes, 64).map_err(|e| corrupt("owner")(e.to_string()))?;
                    if stored != owner {
                        return Err(StoreError::OwnerMismatch {
                            stored,
                            expected: owner,
                        });
                    }
                    let genesis =
                        db_err!(meta.get(GENESIS_KEY))?.ok_or_else(|| corrupt("genesis hash")("missing".into()))?;
                    let stored: Hash32 =
                        decode(genesis.value(), 64).map_err(|e| corrupt("genesis hash")(e.to_string()))?;
                    if stored != genesis_hash {
                        return Err(StoreError::GenesisMismatch {
                            stored,
                            expected: genesis_hash,
                        });
                    }
                    let format = match db_err!(meta.get(STATE_FORMAT_KEY))? {
                        Some(bytes) => decode(bytes.value(), 8).map_err(|e| corrupt("state format")(e.to_string()))?,
                        None => UNRECORDED_STATE_FORMAT,
                    };
                    if format != STATE_FORMAT {
                        return Err(StoreError::StateFormat {
                            stored: format,
                            expected: STATE_FORMAT,
                        });
                    }
                    let bytes =
                        db_err!(meta.get(HOLDINGS_KEY))?.ok_or_else(|| corrupt("holdings")("missing".into()))?;
                    holdings =
                        decode(bytes.value(), MAX_STORED_BYTES).map_err(|e| corrupt("holdings")(e.to_string()))?;
                }
                None => {
                    holdings = fresh();
                    db_err!(meta.insert(OWNER_KEY, encode(&owner).as_slice()))?;
                    db_err!(meta.insert(GENESIS_KEY, encode(&genesis_hash).as_slice()))?;
                    db_err!(meta.insert(STATE_FORMAT_KEY, encode(&STATE_FORMAT).as_slice()))?;
                    db_err!(meta.insert(HOLDINGS_KEY, encode(&holdings).as_slice()))?;
                }
            }
        }
        db_err!(txn.commit())?;
        Ok((WalletStore { db }, holdings))
    }

    /// The open database, for an online export (`copy_tables` inside one read transaction).
    pub fn database(&self) -> &Database {
        &self.db
    }

    /// Commits one state change atomically.
    pub fn commit(&self, update: Update<'_>) -> Result<(), StoreError> {
        let txn = db_err!(self.db.begin_write())?;
        {
            if let Some(holdings) = update.holdings {
                let mut meta = db_err!(txn.open_table(META))?;
                db_err!(meta.insert(HOLDINGS_KEY, encode(holdings).as_slice()))?;
            }
            let mut headers = db_err!(txn.open_table(HEADERS))?;
            for header in &update.headers {
                db_err!(headers.insert(header.height, encode(header).as_slice()))?;
            }
            let mut outbox = db_err!(txn.open_table(OUTBOX))?;
            for package in &update.outbox_add {
                db_err!(outbox.insert(&package.package_hash().0, encode(package).as_slice()))?;
            }
            for id in &update.outbox_remove {
                db_err!(outbox.remove(&id.0))?;
            }
            let mut history = db_err!(txn.open_table(HISTORY))?;
            let mut client_ids = db_err!(txn.open_table(CLIENT_IDS))?;
            for record in &update.history {
                let json = serde_json::to_vec(record).map_err(|e| corrupt("history record")(e.to_string()))?;
                db_err!(history.insert(record.id, json.as_slice()))?;
                if let Some(client_id) = &record.client_tx_id {
                    db_err!(client_ids.insert(client_id.as_str(), record.id))?;
                }
            }
            for id in &update.history_remove {
                db_err!(history.remove(*id))?;
            }
        }
        db_err!(txn.commit())?;
        Ok(())
    }

    /// Every verified header, by height.
    pub fn headers(&self) -> Result<BTreeMap<u64, HeaderLite>, StoreError> {
        let txn = db_err!(self.db.begin_read())?;
        let table = db_err!(txn.open_table(HEADERS))?;
        let mut headers = BTreeMap::new();
        for entry in db_err!(table.iter())? {
            let (height, bytes) = db_err!(entry)?;
            let header: HeaderLite = decode(bytes.value(), 1024).map_err(|e| corrupt("header")(e.to_string()))?;
            headers.insert(height.value(), header);
        }
        Ok(headers)
    }

    /// Packages waiting for delivery.
    pub fn outbox(&self) -> Result<Vec<TransferPackage>, StoreError> {
        let txn = db_err!(self.db.begin_read())?;
        let table = db_err!(txn.open_table(OUTBOX))?;
        let mut packages = Vec::new();
        for entry in db_err!(table.iter())? {
            let (_, bytes) = db_err!(entry)?;
            packages
                .push(decode(bytes.value(), MAX_STORED_BYTES).map_err(|e| corrupt("outbox package")(e.to_string()))?);
        }
        Ok(packages)
    }

    /// The whole history, oldest first.
    pub fn history(&self) -> Result<Vec<TxRecord>, StoreError> {
        read_history(&db_err!(self.db.begin_read())?)
    }

    /// The history of the wallet database at `path`, read without writing to a cleanly closed
    /// file (a snapshot's copy must keep its hash); one left by a crash is repaired first, as
    /// the wallet would on opening it. The database must not be held by a process.
    pub fn history_of_file(path: &Path) -> Result<Vec<TxRecord>, StoreError> {
        match redb::ReadOnlyDatabase::open(path) {
            Ok(db) => read_history(&db_err!(db.begin_read())?),
            Err(redb::DatabaseError::DatabaseAlreadyOpen) => Err(StoreError::Busy),
            Err(redb::DatabaseError::RepairAborted) => {
                let db = db_err!(Database::open(path))?;
                read_history(&db_err!(db.begin_read())?)
            }
            Err(e) => Err(StoreError::Database(e.into())),
        }
    }

    pub fn record(&self, id: u64) -> Result<Option<TxRecord>, StoreError> {
        let txn = db_err!(self.db.begin_read())?;
        let table = db_err!(txn.open_table(HISTORY))?;
        db_err!(table.get(id))?
            .map(|bytes| serde_json::from_slice(bytes.value()).map_err(|e| corrupt("history record")(e.to_string())))
            .transpose()
    }

    pub fn record_by_client_id(&self, client_tx_id: &str) -> Result<Option<TxRecord>, StoreError> {
        let id = {
            let txn = db_err!(self.db.begin_read())?;
            let table = db_err!(txn.open_table(CLIENT_IDS))?;
            db_err!(table.get(client_tx_id))?.map(|v| v.value())
        };
        match id {
            Some(id) => self.record(id),
            None => Ok(None),
        }
    }

    /// The id the next history record gets.
    pub fn next_history_id(&self) -> Result<u64, StoreError> {
        let txn = db_err!(self.db.begin_read())?;
        let table = db_err!(txn.open_table(HISTORY))?;
        if db_err!(table.len())? == 0 {
            return Ok(1);
        }
        Ok(db_err!(table.last())?.map_or(1, |(id, _)| id.value() + 1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_opener_waits_then_says_busy() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("wallet.redb");
        let owner = Address([1; 20]);
        let (first, _) = WalletStore::open(&path, owner, Hash32([2; 32]), || Holdings::new(owner)).expect("open");
        // Released within the wait: the second opener gets in.
        let releaser = std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(300));
            drop(first);
        });
        let (second, _) = WalletStore::open(&path, owner, Hash32([2; 32]), || Holdings::new(owner)).expect("waits");
        releaser.join().expect("thread");
        // Held for longer than the wait: a clear error, not a hang.
        let third = WalletStore::open(&path, owner, Hash32([2; 32]), || Holdings::new(owner));
        assert!(matches!(third, Err(StoreError::Busy)));
        drop(second);
    }

    #[test]
    fn a_state_of_another_format_is_refused_and_left_as_it_was() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("wallet.redb");
        let owner = Address([1; 20]);
        let genesis = Hash32([2; 32]);
        drop(WalletStore::open(&path, owner, genesis, || Holdings::new(owner)).expect("open"));
        let set_format = |format: Option<u32>| {
            let db = Database::create(&path).expect("db");
            let txn = db.begin_write().expect("txn");
            {
                let mut meta = txn.open_table(META).expect("meta");
                match format {
                    Some(format) => drop(
                        meta.insert(STATE_FORMAT_KEY, encode(&format).as_slice())
                            .expect("insert"),
                    ),
                    None => drop(meta.remove(STATE_FORMAT_KEY).expect("remove")),
                }
            }
            txn.commit().expect("commit");
        };
        // A state from before the format was recorded.
        set_format(None);
        let refused = WalletStore::open(&path, owner, genesis, || Holdings::new(owner)).err();
        assert!(matches!(
            refused,
            Some(StoreError::StateFormat {
                stored: 2,
                expected: STATE_FORMAT
            })
        ));
        set_format(Some(STATE_FORMAT));
        assert!(WalletStore::open(&path, owner, genesis, || Holdings::new(owner)).is_ok());
    }
}
