//! The mailbox: transfer packages a node keeps for recipients that were not reachable when
//! they were paid. One redb database under `<home>/data/mailbox.redb`.
//!
//! Anyone may put a package addressed to a recipient, but the RPC keeps only packages backed by
//! a payment this node holds as finalized (`rpc::check_backed_by_chain`); only the recipient may
//! fetch and acknowledge, by signing a fresh one-use challenge (`ezchain_protocol::mailbox`).
//! Packages expire after the retention time; each recipient has a byte and a count cap, and all
//! mailboxes together a byte cap, so no sender can fill the node's disk. Acknowledged and
//! expired packages give their bytes back at once.
//!
//! Invariant: the `total_bytes` entry of `meta` is the sum of every kept package's size; it
//! changes in the same transaction as the packages.

use borsh::{BorshDeserialize, BorshSerialize};
use ezchain_host::export::{ExportError, copy_table, export_database, open_unheld};
use ezchain_protocol::codec::{decode, encode};
use ezchain_protocol::{Address, Hash32};
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::Path;
use std::sync::Mutex;
use thiserror::Error;

/// Key: recipient (20 bytes) ‖ package id (32 bytes).
const PACKAGES: TableDefinition<&[u8; 52], &[u8]> = TableDefinition::new("packages");
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
const TOTAL_BYTES: &str = "total_bytes";

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MailboxConfig {
    /// How long an unacknowledged package is kept.
    pub retention_secs: u64,
    /// Largest single package (its borsh encoding).
    pub max_package_bytes: usize,
    /// Bytes kept per recipient, at most.
    pub max_bytes_per_recipient: u64,
    /// Packages kept per recipient, at most.
    pub max_packages_per_recipient: usize,
    /// Bytes kept for all recipients together, at most.
    #[serde(default = "default_max_total_bytes")]
    pub max_total_bytes: u64,
}

fn default_max_total_bytes() -> u64 {
    4 * 1024 * 1024 * 1024
}

impl Default for MailboxConfig {
    fn default() -> Self {
        MailboxConfig {
            retention_secs: 7 * 24 * 3600,
            max_package_bytes: 1024 * 1024,
            max_bytes_per_recipient: 32 * 1024 * 1024,
            max_packages_per_recipient: 1_000,
            max_total_bytes: default_max_total_bytes(),
        }
    }
}

#[derive(Debug, Error)]
pub enum MailboxError {
    #[error("mailbox database error: {0}")]
    Database(#[from] redb::Error),
    #[error("package is {size} bytes; this node keeps packages of at most {max} bytes")]
    PackageTooLarge { size: usize, max: usize },
    #[error("the mailbox of {recipient} is full ({reason}); the recipient must fetch and acknowledge first")]
    Full { recipient: Address, reason: String },
    #[error("stored mailbox entry is corrupt: {0}")]
    Corrupt(String),
}

macro_rules! db_err {
    ($e:expr) => {
        $e.map_err(|e| MailboxError::Database(e.into()))
    };
}

#[derive(BorshSerialize, BorshDeserialize)]
struct StoredPackage {
    stored_at_ms: u64,
    bytes: Vec<u8>,
}

/// One kept package.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct MailboxItem {
    pub id: Hash32,
    pub stored_at_ms: u64,
    pub size: usize,
    /// The package's borsh bytes (empty in listings).
    #[serde(skip)]
    pub bytes: Vec<u8>,
}

#[derive(Debug, PartialEq, Eq)]
pub enum PutOutcome {
    Stored,
    /// The same package is already kept.
    Duplicate,
}

pub struct Mailbox {
    db: Database,
    config: MailboxConfig,
    challenges: Mutex<Challenges>,
}

fn key(recipient: &Address, id: &Hash32) -> [u8; 52] {
    let mut key = [0u8; 52];
    key[..20].copy_from_slice(&recipient.0);
    key[20..].copy_from_slice(&id.0);
    key
}

/// Every key of `recipient`: `[low, high]`, for `range(&low..=&high)`.
fn recipient_bounds(recipient: &Address) -> ([u8; 52], [u8; 52]) {
    (key(recipient, &Hash32([0; 32])), key(recipient, &Hash32([0xff; 32])))
}

impl Mailbox {
    pub fn open(path: &Path, config: MailboxConfig) -> Result<Self, MailboxError> {
        let db = db_err!(Database::create(path))?;
        let txn = db_err!(db.begin_write())?;
        {
            let packages = db_err!(txn.open_table(PACKAGES))?;
            let mut meta = db_err!(txn.open_table(META))?;
            // A mailbox from before the total was kept: count it once.
            if db_err!(meta.get(TOTAL_BYTES))?.is_none() {
                let mut total = 0u64;
                for entry in db_err!(packages.iter())? {
                    let (_, v) = db_err!(entry)?;
                    total += decode_entry(v.value())?.bytes.len() as u64;
                }
                db_err!(meta.insert(TOTAL_BYTES, total))?;
            }
        }
        db_err!(txn.commit())?;
        Ok(Mailbox {
            db,
            config,
            challenges: Mutex::new(Challenges::default()),
        })
    }

    /// Copies every package, as of one commit, into a new database at `target`.
    pub fn export(&self, target: &Path) -> Result<u64, ExportError> {
        export_database(&self.db, target, |from, to| {
            copy_table(from, to, PACKAGES)?;
            copy_table(from, to, META)
        })
    }

    /// [`Mailbox::export`] for a mailbox no process has open (`Busy` otherwise).
    pub fn export_file(source: &Path, target: &Path) -> Result<u64, ExportError> {
        export_database(&open_unheld(source)?, target, |from, to| {
            copy_table(from, to, PACKAGES)?;
            copy_table(from, to, META)
        })
    }

    pub fn config(&self) -> &MailboxConfig {
        &self.config
    }

    fn expired(&self, stored_at_ms: u64, now_ms: u64) -> bool {
        now_ms.saturating_sub(stored_at_ms) > self.config.retention_secs.saturating_mul(1000)
    }

    /// Keeps `bytes` (an already validated package with identity `id`) for `recipient`.
    pub fn put(&self, recipient: &Address, id: &Hash32, bytes: &[u8], now_ms: u64) -> Result<PutOutcome, MailboxError> {
        if bytes.len() > self.config.max_package_bytes {
            return Err(MailboxError::PackageTooLarge {
                size: bytes.len(),
                max: self.config.max_package_bytes,
            });
        }
        let txn = db_err!(self.db.begin_write())?;
        {
            let mut table = db_err!(txn.open_table(PACKAGES))?;
            if db_err!(table.get(&key(recipient, id)))?.is_some() {
                return Ok(PutOutcome::Duplicate);
            }
            let mut expired = Vec::new();
            let (mut count, mut total, mut freed) = (0usize, 0u64, 0u64);
            let (low, high) = recipient_bounds(recipient);
            for entry in db_err!(table.range::<&[u8; 52]>(&low..=&high))? {
                let (k, v) = db_err!(entry)?;
                let stored = decode_entry(v.value())?;
                if self.expired(stored.stored_at_ms, now_ms) {
                    expired.push(*k.value());
                    freed += stored.bytes.len() as u64;
                } else {
                    count += 1;
                    total += stored.bytes.len() as u64;
                }
            }
            for k in &expired {
                db_err!(table.remove(k))?;
            }
            let mut meta = db_err!(txn.open_table(META))?;
            let all = db_err!(meta.get(TOTAL_BYTES))?
                .map_or(0, |v| v.value())
                .saturating_sub(freed);
            if all + bytes.len() as u64 > self.config.max_total_bytes {
                // The expired packages found on the way are still dropped.
                db_err!(meta.insert(TOTAL_BYTES, all))?;
                drop((table, meta));
                db_err!(txn.commit())?;
                return Err(MailboxError::Full {
                    recipient: *recipient,
                    reason: format!(
                        "this node's mailboxes hold {all} bytes, its limit (mailbox.max_total_bytes) is {}",
                        self.config.max_total_bytes
                    ),
                });
            }
            db_err!(meta.insert(TOTAL_BYTES, all + bytes.len() as u64))?;
            if count >= self.config.max_packages_per_recipient {
                return Err(MailboxError::Full {
                    recipient: *recipient,
                    reason: format!("{count} packages kept"),
                });
            }
            if total + bytes.len() as u64 > self.config.max_bytes_per_recipient {
                return Err(MailboxError::Full {
                    recipient: *recipient,
                    reason: format!("{total} bytes kept"),
                });
            }
            let stored = StoredPackage {
                stored_at_ms: now_ms,
                bytes: bytes.to_vec(),
            };
            db_err!(table.insert(&key(recipient, id), encode(&stored).as_slice()))?;
        }
        db_err!(txn.commit())?;
        Ok(PutOutcome::Stored)
    }

    /// The unexpired packages kept for `recipient`, oldest first, at most `max_bytes` of them in
    /// total (always at least one); with `with_bytes` false only their ids and sizes.
    pub fn items(
        &self,
        recipient: &Address,
        now_ms: u64,
        with_bytes: bool,
        max_bytes: usize,
    ) -> Result<Vec<MailboxItem>, MailboxError> {
        let txn = db_err!(self.db.begin_read())?;
        let table = db_err!(txn.open_table(PACKAGES))?;
        let mut items = Vec::new();
        let (low, high) = recipient_bounds(recipient);
        for entry in db_err!(table.range::<&[u8; 52]>(&low..=&high))? {
            let (k, v) = db_err!(entry)?;
            let stored = decode_entry(v.value())?;
            if self.expired(stored.stored_at_ms, now_ms) {
                continue;
            }
            let mut id = [0u8; 32];
            id.copy_from_slice(&k.value()[20..]);
            items.push(MailboxItem {
                id: Hash32(id),
                stored_at_ms: stored.stored_at_ms,
                size: stored.bytes.len(),
                bytes: if with_bytes { stored.bytes } else { Vec::new() },
            });
        }
        items.sort_by_key(|item| (item.stored_at_ms, item.id));
        if with_bytes {
            let mut total = 0usize;
            let keep = items
                .iter()
                .take_while(|item| {
                    total += item.size;
                    total <= max_bytes
                })
                .count()
                .max(1);
            items.truncate(keep);
        }
        Ok(items)
    }

    /// Deletes the acknowledged packages; returns how many were kept.
    pub fn ack(&self, recipient: &Address, ids: &[Hash32]) -> Result<usize, MailboxError> {
        let txn = db_err!(self.db.begin_write())?;
        let mut removed = 0;
        {
            let mut table = db_err!(txn.open_table(PACKAGES))?;
            let mut freed = 0u64;
            for id in ids {
                if let Some(v) = db_err!(table.remove(&key(recipient, id)))? {
                    freed += decode_entry(v.value())?.bytes.len() as u64;
                    removed += 1;
                }
            }
            release(&txn, freed)?;
        }
        db_err!(txn.commit())?;
        Ok(removed)
    }

    /// Drops every expired package; returns how many.
    pub fn prune(&self, now_ms: u64) -> Result<usize, MailboxError> {
        let txn = db_err!(self.db.begin_write())?;
        let mut expired = Vec::new();
        {
            let mut table = db_err!(txn.open_table(PACKAGES))?;
            let mut freed = 0u64;
            for entry in db_err!(table.iter())? {
                let (k, v) = db_err!(entry)?;
                let stored = decode_entry(v.value())?;
                if self.expired(stored.stored_at_ms, now_ms) {
                    expired.push(*k.value());
                    freed += stored.bytes.len() as u64;
                }
            }
            for k in &expired {
                db_err!(table.remove(k))?;
            }
            release(&txn, freed)?;
        }
        db_err!(txn.commit())?;
        Ok(expired.len())
    }

    /// A fresh challenge for `recipient`, valid for [`CHALLENGE_TTL_MS`].
    pub fn issue_challenge(&self, recipient: &Address, now_ms: u64) -> Result<Hash32, getrandom::Error> {
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes)?;
        let challenge = Hash32(bytes);
        let mut challenges = self.challenges.lock().unwrap_or_else(|p| p.into_inner());
        challenges.insert(challenge, *recipient, now_ms);
        Ok(challenge)
    }

    /// Consumes `challenge` if it was issued for `recipient` and has not expired.
    pub fn take_challenge(&self, recipient: &Address, challenge: &Hash32, now_ms: u64) -> bool {
        let mut challenges = self.challenges.lock().unwrap_or_else(|p| p.into_inner());
        challenges.take(challenge, recipient, now_ms)
    }
}

/// Gives `freed` bytes back to the mailbox total, inside the caller's transaction.
fn release(txn: &redb::WriteTransaction, freed: u64) -> Result<(), MailboxError> {
    let mut meta = db_err!(txn.open_table(META))?;
    let all = db_err!(meta.get(TOTAL_BYTES))?.map_or(0, |v| v.value());
    db_err!(meta.insert(TOTAL_BYTES, all.saturating_sub(freed)))?;
    Ok(())
}

impl Mailbox {
    /// Bytes kept for all recipients together.
    pub fn total_bytes(&self) -> Result<u64, MailboxError> {
        let txn = db_err!(self.db.begin_read())?;
        let meta = db_err!(txn.open_table(META))?;
        Ok(db_err!(meta.get(TOTAL_BYTES))?.map_or(0, |v| v.value()))
    }
}

fn decode_entry(bytes: &[u8]) -> Result<StoredPackage, MailboxError> {
    decode(bytes, 64 * 1024 * 1024).map_err(|e| MailboxError::Corrupt(e.to_string()))
}

/// How long a challenge may be used.
pub const CHALLENGE_TTL_MS: u64 = 60_000;
/// Outstanding challenges kept, at most (the oldest are dropped first).
const MAX_CHALLENGES: usize = 100_000;

#[derive(Default)]
struct Challenges {
    issued: HashMap<Hash32, (Address, u64)>,
}

impl Challenges {
    fn insert(&mut self, challenge: Hash32, recipient: Address, now_ms: u64) {
        if self.issued.len() >= MAX_CHALLENGES {
            self.issued
                .retain(|_, (_, issued)| now_ms.saturating_sub(*issued) <= CHALLENGE_TTL_MS);
        }
        if self.issued.len() >= MAX_CHALLENGES
            && let Some(oldest) = self.issued.iter().min_by_key(|(_, (_, at))| *at).map(|(c, _)| *c)
        {
            self.issued.remove(&oldest);
        }
        self.issued.insert(challenge, (recipient, now_ms));
    }

    fn take(&mut self, challenge: &Hash32, recipient: &Address, now_ms: u64) -> bool {
        match self.issued.get(challenge) {
            Some((owner, _)) if owner == recipient => self
                .issued
                .remove(challenge)
                .is_some_and(|(_, issued)| now_ms.saturating_sub(issued) <= CHALLENGE_TTL_MS),
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn open(config: MailboxConfig) -> (tempfile::TempDir, Mailbox) {
        let dir = tempfile::tempdir().expect("temp dir");
        let mailbox = Mailbox::open(&dir.path().join("mailbox.redb"), config).expect("open mailbox");
        (dir, mailbox)
    }

    const ALICE: Address = Address([1; 20]);
    const BOB: Address = Address([2; 20]);

    #[test]
    fn put_list_fetch_ack_per_recipient() {
        let (_dir, mailbox) = open(MailboxConfig::default());
        let (a, b) = (Hash32([10; 32]), Hash32([11; 32]));
        assert_eq!(
            mailbox.put(&ALICE, &a, b"first", 1_000).expect("put"),
            PutOutcome::Stored
        );
        assert_eq!(
            mailbox.put(&ALICE, &b, b"second", 2_000).expect("put"),
            PutOutcome::Stored
        );
        assert_eq!(
            mailbox.put(&ALICE, &a, b"first", 3_000).expect("put"),
            PutOutcome::Duplicate
        );
        assert!(mailbox.items(&BOB, 3_000, true, usize::MAX).expect("items").is_empty());
        let items = mailbox.items(&ALICE, 3_000, true, usize::MAX).expect("items");
        assert_eq!(items.iter().map(|i| i.id).collect::<Vec<_>>(), vec![a, b]);
        assert_eq!(items[0].bytes, b"first");
        // A size limit still returns at least one package.
        assert_eq!(mailbox.items(&ALICE, 3_000, true, 1).expect("items").len(), 1);
        assert_eq!(mailbox.ack(&ALICE, &[a, Hash32([99; 32])]).expect("ack"), 1);
        assert_eq!(mailbox.ack(&BOB, &[b]).expect("ack"), 0);
        assert_eq!(mailbox.items(&ALICE, 3_000, false, 0).expect("items").len(), 1);
    }

    #[test]
    fn all_mailboxes_together_are_capped_and_acks_and_expiry_give_the_bytes_back() {
        let config = MailboxConfig {
            retention_secs: 10,
            max_package_bytes: 8,
            max_bytes_per_recipient: 100,
            max_packages_per_recipient: 100,
            max_total_bytes: 20,
        };
        let (_dir, mailbox) = open(config);
        let id = |n: u8| Hash32([n; 32]);
        // Fresh recipients cost nothing, so only the total stops a flood.
        for n in 0..2u8 {
            mailbox.put(&Address([n; 20]), &id(n), b"12345678", 0).expect("put");
        }
        let full = mailbox.put(&Address([9; 20]), &id(9), b"12345", 0);
        assert!(matches!(full, Err(MailboxError::Full { .. })), "{full:?}");
        assert_eq!(mailbox.total_bytes().expect("total"), 16);
        assert_eq!(mailbox.ack(&Address([0; 20]), &[id(0)]).expect("ack"), 1);
        assert_eq!(mailbox.total_bytes().expect("total"), 8);
        mailbox
            .put(&Address([9; 20]), &id(9), b"12345", 5_000)
            .expect("room again");
        assert_eq!(mailbox.prune(10_001).expect("prune"), 1, "the oldest expired");
        assert_eq!(mailbox.total_bytes().expect("total"), 5);
    }

    #[test]
    fn caps_and_retention() {
        let config = MailboxConfig {
            retention_secs: 10,
            max_package_bytes: 8,
            max_bytes_per_recipient: 12,
            max_packages_per_recipient: 2,
            max_total_bytes: 1 << 20,
        };
        let (_dir, mailbox) = open(config);
        let id = |n: u8| Hash32([n; 32]);
        assert!(matches!(
            mailbox.put(&ALICE, &id(1), b"123456789", 0),
            Err(MailboxError::PackageTooLarge { .. })
        ));
        mailbox.put(&ALICE, &id(1), b"12345678", 0).expect("put");
        assert!(matches!(
            mailbox.put(&ALICE, &id(2), b"12345", 0),
            Err(MailboxError::Full { .. })
        ));
        mailbox.put(&ALICE, &id(2), b"1234", 0).expect("put");
        assert!(matches!(
            mailbox.put(&ALICE, &id(3), b"1", 0),
            Err(MailboxError::Full { .. })
        ));
        // Other recipients have their own quota.
        mailbox.put(&BOB, &id(3), b"1", 0).expect("put");
        // After the retention time the old packages no longer count and are not served.
        assert!(mailbox.items(&ALICE, 10_001, false, 0).expect("items").is_empty());
        mailbox
            .put(&ALICE, &id(4), b"12345678", 10_001)
            .expect("put after expiry");
        assert_eq!(mailbox.prune(10_001).expect("prune"), 1, "Bob's package expired");
    }

    #[test]
    fn packages_survive_reopen() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("mailbox.redb");
        {
            let mailbox = Mailbox::open(&path, MailboxConfig::default()).expect("open");
            mailbox.put(&ALICE, &Hash32([1; 32]), b"kept", 5).expect("put");
        }
        let mailbox = Mailbox::open(&path, MailboxConfig::default()).expect("reopen");
        assert_eq!(
            mailbox.items(&ALICE, 5, true, usize::MAX).expect("items")[0].bytes,
            b"kept"
        );
    }

    #[test]
    fn challenges_are_single_use_bound_and_expiring() {
        let (_dir, mailbox) = open(MailboxConfig::default());
        let challenge = mailbox.issue_challenge(&ALICE, 0).expect("challenge");
        assert!(!mailbox.take_challenge(&BOB, &challenge, 0), "bound to its recipient");
        assert!(mailbox.take_challenge(&ALICE, &challenge, 1));
        assert!(!mailbox.take_challenge(&ALICE, &challenge, 2), "single use");
        let late = mailbox.issue_challenge(&ALICE, 0).expect("challenge");
        assert!(!mailbox.take_challenge(&ALICE, &late, CHALLENGE_TTL_MS + 1), "expired");
    }
}
