//! The node's chain store: one redb database under `<home>/data/chain.redb`.
//!
//! Tables: finalized blocks, their headers and commit certificates by height; the current account
//! leaves by `addr_key`; receipts by `(address, seq)`; and the tip. `commit_block` writes all of
//! them for one height in a single transaction, so after a crash at any instant the store holds
//! either the whole height or none of it.
//!
//! Invariant: heights are committed in order, each exactly once; committing the same block again
//! is a no-op, and committing a different block at a committed height is refused (that would be
//! a fork under BFT finality, i.e. a safety violation).

use borsh::{BorshDeserialize, BorshSerialize};
use ezchain_host::export::{ExportError, copy_table, export_database, open_unheld};
use ezchain_protocol::codec::{decode, encode};
use ezchain_protocol::finality::CommitCertificate;
use ezchain_protocol::state::{AppliedBlock, STATE_FORMAT};
use ezchain_protocol::witness::FinalizedHeaders;
use ezchain_protocol::{AccountLeaf, Address, Block, BlockHeader, ChainState, Genesis, Hash32, HeaderLite, Receipt};
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use std::path::Path;
use thiserror::Error;

const BLOCKS: TableDefinition<u64, &[u8]> = TableDefinition::new("blocks");
const HEADERS: TableDefinition<u64, &[u8]> = TableDefinition::new("headers");
const CERTIFICATES: TableDefinition<u64, &[u8]> = TableDefinition::new("certificates");
const ACCOUNTS: TableDefinition<&[u8; 32], &[u8]> = TableDefinition::new("accounts");
const RECEIPTS: TableDefinition<&[u8; 28], &[u8]> = TableDefinition::new("receipts");
const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");

const TIP_KEY: &str = "tip";
const GENESIS_KEY: &str = "genesis_hash";
/// `ezchain_protocol::state::STATE_FORMAT` of the leaves and roots in this store; absent in
/// stores written before it was recorded (format 2).
const STATE_FORMAT_KEY: &str = "state_format";
const UNRECORDED_STATE_FORMAT: u32 = 2;
/// Largest stored object we accept when reading back (a block holds at most a few MiB).
const MAX_STORED_BYTES: usize = 64 * 1024 * 1024;

#[derive(Clone, Copy, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct Tip {
    pub height: u64,
    pub hash: Hash32,
    pub timestamp_ms: u64,
}

#[derive(Debug, Error)]
pub enum StoreError {
    #[error("chain database error: {0}")]
    Database(#[from] redb::Error),
    #[error("the chain database belongs to genesis {stored}, but this node's genesis is {expected}")]
    GenesisMismatch { stored: Hash32, expected: Hash32 },
    #[error("height {height} is not the next one (tip is {tip})")]
    OutOfOrder { tip: u64, height: u64 },
    #[error("height {height} is already committed with another block: refusing to fork")]
    ConflictingBlock { height: u64 },
    #[error(
        "the chain database was written in state format {stored}, this node reads format {expected}: \
         the chain cannot continue under this version — start a new testnet (`ezchain testnet init`) \
         or remove this node's data folder and let it sync a chain of format {expected}"
    )]
    StateFormat { stored: u32, expected: u32 },
    #[error("stored {what} is corrupt: {reason}")]
    Corrupt { what: &'static str, reason: String },
}

macro_rules! db_err {
    ($e:expr) => {
        $e.map_err(|e| StoreError::Database(e.into()))
    };
}

/// What `commit_block` did.
#[derive(Debug, PartialEq, Eq)]
pub enum CommitOutcome {
    Committed,
    AlreadyCommitted,
}

pub struct ChainStore {
    db: Database,
}

fn receipt_key(owner: &Address, seq: u64) -> [u8; 28] {
    let mut key = [0u8; 28];
    key[..20].copy_from_slice(&owner.0);
    key[20..].copy_from_slice(&seq.to_be_bytes());
    key
}

fn decode_stored<T: BorshDeserialize>(what: &'static str, bytes: &[u8]) -> Result<T, StoreError> {
    decode(bytes, MAX_STORED_BYTES).map_err(|e| StoreError::Corrupt {
        what,
        reason: e.to_string(),
    })
}

/// Every header in the store is of a committed height, so the store is the node's set of
/// finalized headers (what snapshot evidence is checked against).
impl FinalizedHeaders for ChainStore {
    fn finalized_header(&self, height: u64) -> Option<HeaderLite> {
        // A read failure makes the evidence look unproven: this node then refuses the snapshot
        // (and a block holding it) rather than guess — the other validators still decide.
        self.header_lite(height).unwrap_or_else(|e| {
            tracing::warn!(height, error = %e, "cannot read a header to check snapshot evidence");
            None
        })
    }
}

impl ChainStore {
    /// Opens (or creates) the store for `genesis`; a store made for another genesis is refused.
    pub fn open(path: &Path, genesis: &Genesis) -> Result<Self, StoreError> {
        let db = db_err!(Database::create(path))?;
        let genesis_hash = genesis.hash();
        let txn = db_err!(db.begin_write())?;
        {
            // Create every table so readers never meet a missing one.
            db_err!(txn.open_table(BLOCKS))?;
            db_err!(txn.open_table(HEADERS))?;
            db_err!(txn.open_table(CERTIFICATES))?;
            db_err!(txn.open_table(ACCOUNTS))?;
            db_err!(txn.open_table(RECEIPTS))?;
            let mut meta = db_err!(txn.open_table(META))?;
            let stored = db_err!(meta.get(GENESIS_KEY))?.map(|v| v.value().to_vec());
            match stored {
                Some(bytes) => {
                    let stored: Hash32 = decode_stored("genesis hash", &bytes)?;
                    if stored != genesis_hash {
                        return Err(StoreError::GenesisMismatch {
                            stored,
                            expected: genesis_hash,
                        });
                    }
                }
                None => {
                    let tip = Tip {
                        height: 0,
                        hash: genesis_hash,
                        timestamp_ms: genesis.genesis_time_ms,
                    };
                    db_err!(meta.insert(GENESIS_KEY, encode(&genesis_hash).as_slice()))?;
                    db_err!(meta.insert(TIP_KEY, encode(&tip).as_slice()))?;
                }
            }
            let format = match db_err!(meta.get(STATE_FORMAT_KEY))?.map(|v| v.value().to_vec()) {
                Some(bytes) => Some(decode_stored::<u32>("state format", &bytes)?),
                None => None,
            };
            let tip_height = match db_err!(meta.get(TIP_KEY))?.map(|v| v.value().to_vec()) {
                Some(bytes) => decode_stored::<Tip>("tip", &bytes)?.height,
                None => 0,
            };
            match format {
                Some(stored) if stored == STATE_FORMAT => {}
                // Nothing committed yet: nothing to misread, so the store takes this format.
                _ if tip_height == 0 => {
                    db_err!(meta.insert(STATE_FORMAT_KEY, encode(&STATE_FORMAT).as_slice()))?;
                }
                stored => {
                    return Err(StoreError::StateFormat {
                        stored: stored.unwrap_or(UNRECORDED_STATE_FORMAT),
                        expected: STATE_FORMAT,
                    });
                }
            }
        }
        db_err!(txn.commit())?;
        Ok(ChainStore { db })
    }

    /// Copies the whole store, as of one commit, into a new database at `target`; returns the
    /// tip it holds and the file's size.
    pub fn export(&self, target: &Path) -> Result<(Tip, u64), ExportError> {
        export_chain(&self.db, target)
    }

    /// [`ChainStore::export`] for a store no process has open (`Busy` otherwise).
    pub fn export_file(source: &Path, target: &Path) -> Result<(Tip, u64), ExportError> {
        export_chain(&open_unheld(source)?, target)
    }

    pub fn tip(&self) -> Result<Tip, StoreError> {
        let txn = db_err!(self.db.begin_read())?;
        let meta = db_err!(txn.open_table(META))?;
        let bytes = db_err!(meta.get(TIP_KEY))?.ok_or(StoreError::Corrupt {
            what: "tip",
            reason: "missing".into(),
        })?;
        decode_stored("tip", bytes.value())
    }

    /// Rebuilds the chain state at the tip from the stored account leaves.
    pub fn load_state(&self, chain_id: u64) -> Result<ChainState, StoreError> {
        let tip = self.tip()?;
        let txn = db_err!(self.db.begin_read())?;
        let accounts = db_err!(txn.open_table(ACCOUNTS))?;
        let mut leaves = Vec::new();
        for entry in db_err!(accounts.iter())? {
            let (_, value) = db_err!(entry)?;
            leaves.push(decode_stored::<AccountLeaf>("account leaf", value.value())?);
        }
        let state = ChainState::from_leaves(chain_id, tip.height, tip.hash, tip.timestamp_ms, leaves);
        // The rebuilt tree must give the root the tip's header committed to.
        if let Some(header) = self.header(tip.height)?
            && header.state_root != state.state_root()
        {
            return Err(StoreError::Corrupt {
                what: "account leaves",
                reason: format!(
                    "they give state root {} but the header at height {} commits to {}",
                    state.state_root(),
                    tip.height,
                    header.state_root
                ),
            });
        }
        Ok(state)
    }

    /// Commits a finalized height — block, header, certificate, changed leaves, receipts and the
    /// new tip — in one transaction.
    pub fn commit_block(
        &self,
        applied: &AppliedBlock,
        certificate: &CommitCertificate,
    ) -> Result<CommitOutcome, StoreError> {
        let header = &applied.block.header;
        let tip = self.tip()?;
        if header.height <= tip.height {
            return match self.header(header.height)? {
                Some(stored) if stored == *header => Ok(CommitOutcome::AlreadyCommitted),
                _ => Err(StoreError::ConflictingBlock { height: header.height }),
            };
        }
        if header.height != tip.height + 1 {
            return Err(StoreError::OutOfOrder {
                tip: tip.height,
                height: header.height,
            });
        }
        let txn = db_err!(self.db.begin_write())?;
        {
            db_err!(db_err!(txn.open_table(BLOCKS))?.insert(header.height, encode(&applied.block).as_slice()))?;
            db_err!(db_err!(txn.open_table(HEADERS))?.insert(header.height, encode(header).as_slice()))?;
            db_err!(db_err!(txn.open_table(CERTIFICATES))?.insert(header.height, encode(certificate).as_slice()))?;
            let mut accounts = db_err!(txn.open_table(ACCOUNTS))?;
            let mut receipts = db_err!(txn.open_table(RECEIPTS))?;
            for (owner, receipt) in &applied.receipts {
                let leaf = applied.state.leaf(owner).ok_or(StoreError::Corrupt {
                    what: "applied block",
                    reason: format!("no leaf for included sender {owner}"),
                })?;
                db_err!(accounts.insert(&owner.addr_key().0, encode(leaf).as_slice()))?;
                db_err!(receipts.insert(&receipt_key(owner, receipt.seq), encode(receipt).as_slice()))?;
            }
            let new_tip = Tip {
                height: header.height,
                hash: header.hash(),
                timestamp_ms: header.timestamp_ms,
            };
            db_err!(db_err!(txn.open_table(META))?.insert(TIP_KEY, encode(&new_tip).as_slice()))?;
        }
        db_err!(txn.commit())?;
        Ok(CommitOutcome::Committed)
    }

    pub fn block(&self, height: u64) -> Result<Option<Block>, StoreError> {
        self.get_by_height(BLOCKS, "block", height)
    }

    pub fn header(&self, height: u64) -> Result<Option<BlockHeader>, StoreError> {
        self.get_by_height(HEADERS, "header", height)
    }

    /// Height 0 is the genesis, not a block: it has no header here.
    pub fn header_lite(&self, height: u64) -> Result<Option<HeaderLite>, StoreError> {
        Ok(self.header(height)?.map(|header| header.lite()))
    }

    pub fn certificate(&self, height: u64) -> Result<Option<CommitCertificate>, StoreError> {
        self.get_by_height(CERTIFICATES, "certificate", height)
    }

    pub fn receipt(&self, owner: &Address, seq: u64) -> Result<Option<Receipt>, StoreError> {
        let txn = db_err!(self.db.begin_read())?;
        let table = db_err!(txn.open_table(RECEIPTS))?;
        db_err!(table.get(&receipt_key(owner, seq)))?
            .map(|v| decode_stored("receipt", v.value()))
            .transpose()
    }

    fn get_by_height<T: BorshDeserialize>(
        &self,
        table: TableDefinition<u64, &[u8]>,
        what: &'static str,
        height: u64,
    ) -> Result<Option<T>, StoreError> {
        let txn = db_err!(self.db.begin_read())?;
        let table = db_err!(txn.open_table(table))?;
        db_err!(table.get(height))?
            .map(|v| decode_stored(what, v.value()))
            .transpose()
    }
}

fn export_chain(db: &Database, target: &Path) -> Result<(Tip, u64), ExportError> {
    let mut tip = None;
    let bytes = export_database(db, target, |from, to| {
        copy_table(from, to, BLOCKS)?;
        copy_table(from, to, HEADERS)?;
        copy_table(from, to, CERTIFICATES)?;
        copy_table(from, to, ACCOUNTS)?;
        copy_table(from, to, RECEIPTS)?;
        copy_table(from, to, META)?;
        let meta = from.open_table(META)?;
        tip = meta.get(TIP_KEY)?.map(|bytes| bytes.value().to_vec());
        Ok(())
    })?;
    let tip = tip
        .and_then(|bytes| decode::<Tip>(&bytes, MAX_STORED_BYTES).ok())
        .ok_or_else(|| ExportError::Io {
            path: target.to_path_buf(),
            source: std::io::Error::other("the exported chain has no readable tip"),
        })?;
    Ok((tip, bytes))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ezchain_protocol::bundle::EnvelopeParams;
    use ezchain_protocol::genesis::{Allocation, GenesisValidator};
    use ezchain_protocol::{BundleSidecar, OffChainTx, SigningKey, Submission, ValueRange, build_block};

    fn genesis(owner: Address) -> Genesis {
        Genesis {
            chain_id: 9,
            genesis_time_ms: 5,
            validators: vec![GenesisValidator {
                name: "v".into(),
                consensus_public_key: [1; 32],
                voting_power: 1,
            }],
            allocations: vec![Allocation {
                owner,
                range: ValueRange::new(0, 99).unwrap(),
            }],
            faucet: None,
        }
    }

    fn payment(key: &SigningKey, seq: u64, begin: u64) -> Submission {
        let tx = OffChainTx {
            sender: key.address(),
            recipient: Address([2; 20]),
            values: vec![ValueRange::new(begin, begin).unwrap()],
            local_index: 0,
            tx_time: seq,
            extra_data: vec![],
        };
        let params = EnvelopeParams {
            chain_id: 9,
            seq,
            expiry_height: 100,
            fee: 0,
            anti_spam_nonce: seq,
        };
        Submission::sign(
            key,
            BundleSidecar {
                sender: key.address(),
                txs: vec![tx],
            },
            &params,
        )
    }

    fn certificate_for(applied: &AppliedBlock) -> CommitCertificate {
        CommitCertificate {
            height: applied.block.header.height,
            round: 0,
            header_hash: applied.block.hash(),
            signatures: vec![],
        }
    }

    #[test]
    fn commits_reopen_and_refuse_forks() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("chain.redb");
        let key = SigningKey::from_bytes(&[4u8; 32]).unwrap();
        let genesis = genesis(key.address());
        let store = ChainStore::open(&path, &genesis).unwrap();
        let state0 = store.load_state(9).unwrap();
        assert_eq!(state0.height, 0);
        assert_eq!(state0.tip_hash, genesis.hash());

        let first = build_block(&state0, &[payment(&key, 1, 0)], 1, 10).unwrap().applied;
        assert_eq!(
            store.commit_block(&first, &certificate_for(&first)).unwrap(),
            CommitOutcome::Committed
        );
        assert_eq!(
            store.commit_block(&first, &certificate_for(&first)).unwrap(),
            CommitOutcome::AlreadyCommitted
        );
        let fork = build_block(&state0, &[payment(&key, 1, 1)], 1, 10).unwrap().applied;
        assert!(matches!(
            store.commit_block(&fork, &certificate_for(&fork)),
            Err(StoreError::ConflictingBlock { height: 1 })
        ));
        let second = build_block(&first.state, &[payment(&key, 2, 2)], 2, 11)
            .unwrap()
            .applied;
        let skipped = build_block(&second.state, &[], 3, 12).unwrap().applied;
        assert!(matches!(
            store.commit_block(&skipped, &certificate_for(&skipped)),
            Err(StoreError::OutOfOrder { .. })
        ));
        store.commit_block(&second, &certificate_for(&second)).unwrap();
        drop(store);

        // Reopen: the same state root, blocks, certificates and receipts come back.
        let store = ChainStore::open(&path, &genesis).unwrap();
        let reloaded = store.load_state(9).unwrap();
        assert_eq!(reloaded.height, 2);
        assert_eq!(reloaded.state_root(), second.state.state_root());
        assert_eq!(reloaded.tip_hash, second.block.hash());
        assert_eq!(store.block(1).unwrap(), Some(first.block.clone()));
        assert_eq!(store.certificate(2).unwrap(), Some(certificate_for(&second)));
        assert_eq!(
            store.receipt(&key.address(), 2).unwrap(),
            Some(second.receipts[0].1.clone())
        );
        assert_eq!(store.receipt(&key.address(), 3).unwrap(), None);
        assert_eq!(store.block(3).unwrap(), None);
        // A follower applying the next block on the reloaded state agrees with the original.
        let third = build_block(&reloaded, &[payment(&key, 3, 3)], 3, 12).unwrap().applied;
        let third_again = build_block(&second.state, &[payment(&key, 3, 3)], 3, 12)
            .unwrap()
            .applied;
        assert_eq!(third.block, third_again.block);
    }

    /// A store with one committed height, its path and the genesis it belongs to.
    fn store_with_one_block(dir: &tempfile::TempDir) -> (std::path::PathBuf, Genesis, SigningKey) {
        let path = dir.path().join("chain.redb");
        let key = SigningKey::from_bytes(&[4u8; 32]).unwrap();
        let genesis = genesis(key.address());
        let store = ChainStore::open(&path, &genesis).unwrap();
        let state0 = store.load_state(9).unwrap();
        let first = build_block(&state0, &[payment(&key, 1, 0)], 1, 10).unwrap().applied;
        store.commit_block(&first, &certificate_for(&first)).unwrap();
        (path, genesis, key)
    }

    fn write_meta(path: &Path, key: &str, value: Option<&[u8]>) {
        let db = Database::create(path).unwrap();
        let txn = db.begin_write().unwrap();
        {
            let mut meta = txn.open_table(META).unwrap();
            match value {
                Some(bytes) => meta.insert(key, bytes).map(drop).unwrap(),
                None => meta.remove(key).map(drop).unwrap(),
            }
        }
        txn.commit().unwrap();
    }

    #[test]
    fn a_store_of_another_state_format_is_refused_with_what_to_do() {
        let dir = tempfile::tempdir().unwrap();
        let (path, genesis, _) = store_with_one_block(&dir);
        // Written before the format was recorded: format 2, the depth-256 tree.
        write_meta(&path, STATE_FORMAT_KEY, None);
        let refused = ChainStore::open(&path, &genesis).err().expect("refused");
        assert!(matches!(
            refused,
            StoreError::StateFormat {
                stored: 2,
                expected: STATE_FORMAT
            }
        ));
        assert!(refused.to_string().contains("start a new testnet"), "{refused}");
        write_meta(&path, STATE_FORMAT_KEY, Some(&encode(&99u32)));
        assert!(matches!(
            ChainStore::open(&path, &genesis),
            Err(StoreError::StateFormat { stored: 99, .. })
        ));
        // The refusal changed nothing: the current format opens again once recorded.
        write_meta(&path, STATE_FORMAT_KEY, Some(&encode(&STATE_FORMAT)));
        assert_eq!(ChainStore::open(&path, &genesis).unwrap().tip().unwrap().height, 1);
    }

    #[test]
    fn leaves_that_miss_the_tip_header_root_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let (path, genesis, key) = store_with_one_block(&dir);
        {
            let db = Database::create(&path).unwrap();
            let txn = db.begin_write().unwrap();
            {
                let mut accounts = txn.open_table(ACCOUNTS).unwrap();
                let addr_key = key.address().addr_key().0;
                let mut leaf: AccountLeaf = decode(accounts.get(&addr_key).unwrap().unwrap().value(), 4096).unwrap();
                leaf.head_ref.seq += 1;
                accounts.insert(&addr_key, encode(&leaf).as_slice()).unwrap();
            }
            txn.commit().unwrap();
        }
        let store = ChainStore::open(&path, &genesis).unwrap();
        assert!(matches!(
            store.load_state(9),
            Err(StoreError::Corrupt {
                what: "account leaves",
                ..
            })
        ));
    }

    #[test]
    fn a_store_from_another_genesis_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("chain.redb");
        ChainStore::open(&path, &genesis(Address([1; 20]))).unwrap();
        assert!(matches!(
            ChainStore::open(&path, &genesis(Address([2; 20]))),
            Err(StoreError::GenesisMismatch { .. })
        ));
    }
}
