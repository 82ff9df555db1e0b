//! The state transition: `build_block` (proposer) and `apply_block` (everyone else).
//!
//! For each bundle included at height h with sender s:
//! 1. the submission passes [`Submission::verify`], is not expired (`expiry_height ≥ h`), and
//!    its seq is `confirmed_seq(s) + 1` (1 for a new account);
//! 2. s appears at most once, and entries are sorted by `addr_key(s)`;
//! 3. the new leaf is computed from the parent state and the envelope, never taken from the
//!    proposer: `{s, head_ref = {h, bundle_hash, seq}, prev_ref = old.head_ref, claim_set_hash,
//!    holdings}`, where `holdings` is the old leaf's commitment carried forward — or, for a
//!    snapshot bundle that passes the snapshot rule (`snapshot` module, within the block's
//!    snapshot budget), `{root, count, at = head_ref}` of the list the rule computed;
//! 4. the header's `diff_root` (which covers each snapshot's evidence) and `state_root` must
//!    equal the recomputed ones.
//!
//! Invariant: `apply_block(parent, build_block(parent, …).block)` reproduces the same state, and
//! any other block is rejected with an error, never a panic.

use crate::address::Address;
use crate::block::{
    AccountLeaf, BLOCK_VERSION, Block, BlockEntry, BlockHeader, BundleRef, DiffEntry, HeaderLite, HoldingsCommitment,
    diff_root,
};
use crate::bundle::{BundleError, SnapshotVerdict, Submission, VerifiedSubmission};
use crate::genesis::Genesis;
use crate::hash::Hash32;
use crate::receipt::Receipt;
use crate::smt::Smt;
use crate::snapshot::{BlockSnapshotBudget, SnapshotError, SnapshotEvidence, SnapshotRules, check_snapshot};
use thiserror::Error;

/// Version of the state definition — the account leaf and the state tree that together give a
/// header's `state_root` — and of the blocks that change it. 3: the leaf-shortcut tree and the
/// leaf's holdings commitment. 4: snapshot bundles can set it (bundle envelope version 3, which
/// signs the holdings root, and submissions carrying snapshot evidence). A store written under
/// another version cannot be read: its roots or its blocks would not match.
pub const STATE_FORMAT: u32 = 4;

/// The state after a finalized height: the account tree and the tip it belongs to.
#[derive(Clone)]
pub struct ChainState {
    pub chain_id: u64,
    pub height: u64,
    /// Header hash of the tip (the genesis hash at height 0).
    pub tip_hash: Hash32,
    pub timestamp_ms: u64,
    accounts: Smt<AccountLeaf>,
}

impl ChainState {
    /// The state at height 0: no account leaves (genesis values need none).
    pub fn genesis(genesis: &Genesis) -> ChainState {
        ChainState {
            chain_id: genesis.chain_id,
            height: 0,
            tip_hash: genesis.hash(),
            timestamp_ms: genesis.genesis_time_ms,
            accounts: Smt::new(),
        }
    }

    /// Rebuilds a state from stored leaves (a node restarting from its database).
    pub fn from_leaves(
        chain_id: u64,
        height: u64,
        tip_hash: Hash32,
        timestamp_ms: u64,
        leaves: impl IntoIterator<Item = AccountLeaf>,
    ) -> ChainState {
        let accounts = Smt::from_entries(leaves.into_iter().map(|leaf| (leaf.owner.addr_key(), leaf)));
        ChainState {
            chain_id,
            height,
            tip_hash,
            timestamp_ms,
            accounts,
        }
    }

    pub fn state_root(&self) -> Hash32 {
        self.accounts.root()
    }

    pub fn account_count(&self) -> usize {
        self.accounts.len()
    }

    pub fn leaf(&self, owner: &Address) -> Option<&AccountLeaf> {
        self.accounts.get(&owner.addr_key())
    }

    /// Seq of the sender's latest confirmed bundle (0 if none).
    pub fn confirmed_seq(&self, owner: &Address) -> u64 {
        self.leaf(owner).map_or(0, |leaf| leaf.head_ref.seq)
    }

    /// A receipt for `owner`'s current leaf, if its head bundle was confirmed at this state's
    /// height (receipts are only issued for the block that wrote the leaf).
    pub fn receipt_for(&self, owner: &Address, header: &HeaderLite) -> Option<Receipt> {
        let leaf = self.leaf(owner)?;
        if leaf.head_ref.height != header.height || header.state_root != self.state_root() {
            return None;
        }
        let proof = self.accounts.prove(&owner.addr_key());
        Some(Receipt {
            header: *header,
            seq: leaf.head_ref.seq,
            prev_ref: leaf.prev_ref,
            holdings: leaf.holdings,
            proof,
        })
    }

    /// Checks rule 1 of the module doc for a submission to be included at `height`.
    pub fn check_submission(&self, submission: &Submission, height: u64) -> Result<VerifiedSubmission, EntryError> {
        let verified = submission.verify(self.chain_id)?;
        self.check_verified(&verified, height)?;
        Ok(verified)
    }

    /// The part of rule 1 that depends on the state (chain, expiry, seq), for a submission
    /// whose signature and hashes were already verified — at mempool admission, say.
    pub fn check_verified(&self, verified: &VerifiedSubmission, height: u64) -> Result<(), EntryError> {
        if verified.chain_id() != self.chain_id {
            return Err(EntryError::Bundle(BundleError::WrongChain {
                expected: self.chain_id,
                got: verified.chain_id(),
            }));
        }
        let envelope = &verified.submission().envelope;
        if envelope.expiry_height < height {
            return Err(EntryError::Expired {
                expiry_height: envelope.expiry_height,
                height,
            });
        }
        let confirmed = self.confirmed_seq(&verified.sender());
        if envelope.seq <= confirmed {
            return Err(EntryError::StaleSeq {
                confirmed,
                got: envelope.seq,
            });
        }
        if envelope.seq != confirmed + 1 {
            return Err(EntryError::SeqGap {
                expected: confirmed + 1,
                got: envelope.seq,
            });
        }
        Ok(())
    }

    /// [`Self::check_verified`], and for a snapshot bundle the snapshot rule against `rules`
    /// (refused without them). Returns the length of the list a snapshot commits.
    pub fn check_entry(
        &self,
        verified: &VerifiedSubmission,
        height: u64,
        rules: Option<&SnapshotRules<'_>>,
    ) -> Result<Option<u32>, EntryError> {
        self.check_verified(verified, height)?;
        self.run_snapshot_rule(verified, height, rules)
    }

    /// The snapshot rule for a snapshot bundle (`None` for a plain one); the entry's other
    /// checks are the caller's.
    fn run_snapshot_rule(
        &self,
        verified: &VerifiedSubmission,
        height: u64,
        rules: Option<&SnapshotRules<'_>>,
    ) -> Result<Option<u32>, EntryError> {
        let submission = verified.submission();
        let (Some(root), Some(evidence)) = (&submission.envelope.holdings_root, &submission.evidence) else {
            return Ok(None);
        };
        let rules = rules.ok_or(SnapshotError::NoHistory)?;
        let list = check_snapshot(
            rules,
            &verified.sender(),
            self.leaf(&verified.sender()),
            root,
            evidence,
            height,
        )?;
        Ok(Some(list.len() as u32))
    }

    /// [`Self::check_entry`] for a node's mempool: a snapshot's verdict is kept in the
    /// verification, so the block that includes it need not run the rule again.
    pub fn check_snapshot_once(
        &self,
        verified: VerifiedSubmission,
        height: u64,
        rules: &SnapshotRules<'_>,
    ) -> Result<VerifiedSubmission, EntryError> {
        Ok(match self.check_entry(&verified, height, Some(rules))? {
            Some(count) => {
                let leaf_hash = self.leaf(&verified.sender()).map(AccountLeaf::leaf_hash);
                verified.with_snapshot_verdict(SnapshotVerdict { leaf_hash, count })
            }
            None => verified,
        })
    }

    /// The entry checks of a block: [`Self::check_entry`] within the block's snapshot budget.
    /// A verdict kept from admission is reused when the sender's leaf is still the one it was
    /// reached on: the rule's inputs are then the same, except finalized headers, which only
    /// grow — and more headers can never turn an accepted snapshot into a refused one. The
    /// budget is charged either way, so every node counts a block alike.
    fn check_in_block(
        &self,
        verified: &VerifiedSubmission,
        height: u64,
        rules: Option<&SnapshotRules<'_>>,
        budget: &mut BlockSnapshotBudget,
    ) -> Result<Option<u32>, EntryError> {
        self.check_verified(verified, height)?;
        if let Some(evidence) = &verified.submission().evidence {
            budget.take(evidence.units())?;
            let leaf_hash = self.leaf(&verified.sender()).map(AccountLeaf::leaf_hash);
            if let Some(count) = verified.snapshot_verdict_on(leaf_hash) {
                return Ok(Some(count));
            }
        }
        self.run_snapshot_rule(verified, height, rules)
    }

    /// Rules 3–4: applies verified, sorted, distinct entries on top of `self`; `snapshots[i]` is
    /// the list length entry i's snapshot commits (`None` for a plain bundle).
    fn execute(
        &self,
        height: u64,
        timestamp_ms: u64,
        entries: &[VerifiedSubmission],
        snapshots: &[Option<u32>],
    ) -> (BlockHeader, ChainState) {
        let mut accounts = self.accounts.clone();
        let mut diff = Vec::with_capacity(entries.len());
        for (entry, snapshot) in entries.iter().zip(snapshots) {
            let envelope = &entry.submission().envelope;
            let old = accounts.get(&entry.addr_key());
            let prev_ref = old.map(|old| old.head_ref);
            let head_ref = BundleRef {
                height,
                bundle_hash: entry.bundle_hash(),
                seq: envelope.seq,
            };
            let holdings = match (snapshot, envelope.holdings_root) {
                (Some(count), Some(root)) => Some(HoldingsCommitment {
                    root,
                    count: *count,
                    at: head_ref,
                }),
                _ => old.and_then(|old| old.holdings),
            };
            let new_leaf = AccountLeaf {
                owner: entry.sender(),
                head_ref,
                prev_ref,
                claim_set_hash: envelope.claim_set_hash,
                holdings,
            };
            diff.push(DiffEntry {
                addr_key: entry.addr_key(),
                new_leaf_hash: new_leaf.leaf_hash(),
                envelope_hash: envelope.envelope_hash(),
                bundle_hash: entry.bundle_hash(),
                evidence_hash: entry
                    .submission()
                    .evidence
                    .as_ref()
                    .map(SnapshotEvidence::evidence_hash),
            });
            accounts.insert(entry.addr_key(), new_leaf);
        }
        let header = BlockHeader {
            version: BLOCK_VERSION,
            chain_id: self.chain_id,
            height,
            prev_hash: self.tip_hash,
            state_root: accounts.root(),
            diff_root: diff_root(&diff),
            timestamp_ms,
        };
        let state = ChainState {
            chain_id: self.chain_id,
            height,
            tip_hash: header.hash(),
            timestamp_ms,
            accounts,
        };
        (header, state)
    }

    fn receipts(&self, header: &BlockHeader, entries: &[VerifiedSubmission]) -> Vec<(Address, Receipt)> {
        let lite = header.lite();
        entries
            .iter()
            .filter_map(|entry| self.receipt_for(&entry.sender(), &lite).map(|r| (entry.sender(), r)))
            .collect()
    }
}

/// A block with the state it produces and a receipt for every included sender.
pub struct AppliedBlock {
    pub block: Block,
    pub state: ChainState,
    pub receipts: Vec<(Address, Receipt)>,
}

/// A candidate the proposer left out, and why.
#[derive(Debug, PartialEq, Eq)]
pub struct RejectedCandidate {
    pub index: usize,
    pub error: EntryError,
}

pub struct BuiltBlock {
    pub applied: AppliedBlock,
    pub rejected: Vec<RejectedCandidate>,
}

/// Builds the next block from `candidates` (in priority order; invalid ones and later bundles
/// of an already-included sender are left out and reported).
pub fn build_block(
    parent: &ChainState,
    candidates: &[Submission],
    height: u64,
    timestamp_ms: u64,
) -> Result<BuiltBlock, BlockError> {
    let verified = candidates
        .iter()
        .map(|candidate| candidate.verify(parent.chain_id))
        .collect();
    build_from(parent, verified, height, timestamp_ms, None)
}

/// [`build_block`] from candidates already verified (a proposer's mempool holds them so):
/// no signature is recovered again. Snapshot bundles are checked against `rules` (and left
/// out without them).
pub fn build_block_verified(
    parent: &ChainState,
    candidates: Vec<VerifiedSubmission>,
    height: u64,
    timestamp_ms: u64,
    rules: Option<&SnapshotRules<'_>>,
) -> Result<BuiltBlock, BlockError> {
    build_from(
        parent,
        candidates.into_iter().map(Ok).collect(),
        height,
        timestamp_ms,
        rules,
    )
}

fn build_from(
    parent: &ChainState,
    candidates: Vec<Result<VerifiedSubmission, BundleError>>,
    height: u64,
    timestamp_ms: u64,
    rules: Option<&SnapshotRules<'_>>,
) -> Result<BuiltBlock, BlockError> {
    check_position(parent, height, timestamp_ms)?;
    let mut rejected = Vec::new();
    let mut accepted: Vec<(VerifiedSubmission, Option<u32>)> = Vec::with_capacity(candidates.len());
    let mut senders = std::collections::HashSet::new();
    let mut budget = BlockSnapshotBudget::default();
    for (index, candidate) in candidates.into_iter().enumerate() {
        let checked = candidate.map_err(EntryError::from).and_then(|verified| {
            if senders.contains(&verified.sender()) {
                return Err(EntryError::DuplicateSender);
            }
            let snapshot = parent.check_in_block(&verified, height, rules, &mut budget)?;
            Ok((verified, snapshot))
        });
        match checked {
            Ok(entry) => {
                senders.insert(entry.0.sender());
                accepted.push(entry);
            }
            Err(error) => rejected.push(RejectedCandidate { index, error }),
        }
    }
    accepted.sort_by_key(|(verified, _)| verified.addr_key());
    let (accepted, snapshots): (Vec<VerifiedSubmission>, Vec<Option<u32>>) = accepted.into_iter().unzip();
    let (header, state) = parent.execute(height, timestamp_ms, &accepted, &snapshots);
    let receipts = state.receipts(&header, &accepted);
    let entries: Vec<BlockEntry> = accepted.into_iter().map(VerifiedSubmission::into_submission).collect();
    Ok(BuiltBlock {
        applied: AppliedBlock {
            block: Block { header, entries },
            state,
            receipts,
        },
        rejected,
    })
}

/// Re-executes `block` on `parent` and accepts it only if every rule holds and the header's
/// roots match the recomputed ones.
pub fn apply_block(parent: &ChainState, block: &Block) -> Result<AppliedBlock, BlockError> {
    apply_block_verified(parent, block, Vec::new(), None)
}

/// [`apply_block`] with verifications the caller already has — from its mempool, or computed
/// in parallel: `known[i]`, when `Some`, is entry i's verification. Entries without one are
/// verified here. A verification that is not of exactly entry i proves nothing about it and
/// is ignored, so a wrong mapping can cost time but never accept a bad entry. Snapshot
/// bundles are checked against `rules`; a block holding one is refused without them.
pub fn apply_block_verified(
    parent: &ChainState,
    block: &Block,
    known: Vec<Option<VerifiedSubmission>>,
    rules: Option<&SnapshotRules<'_>>,
) -> Result<AppliedBlock, BlockError> {
    let header = &block.header;
    if header.version != BLOCK_VERSION {
        return Err(BlockError::UnsupportedVersion {
            version: header.version,
        });
    }
    if header.chain_id != parent.chain_id {
        return Err(BlockError::WrongChain {
            expected: parent.chain_id,
            got: header.chain_id,
        });
    }
    check_position(parent, header.height, header.timestamp_ms)?;
    if header.prev_hash != parent.tip_hash {
        return Err(BlockError::WrongParent);
    }
    let mut checked_entries: Vec<VerifiedSubmission> = Vec::with_capacity(block.entries.len());
    let mut snapshots = Vec::with_capacity(block.entries.len());
    let mut budget = BlockSnapshotBudget::default();
    let mut known = known.into_iter();
    for (index, entry) in block.entries.iter().enumerate() {
        let verification = match known.next().flatten() {
            Some(verified) if verified.submission() == entry => Ok(verified),
            // None, or the verification of some other submission.
            _ => entry.verify(parent.chain_id),
        };
        let (checked, snapshot) = verification
            .map_err(EntryError::from)
            .and_then(|verified| {
                let snapshot = parent.check_in_block(&verified, header.height, rules, &mut budget)?;
                Ok((verified, snapshot))
            })
            .map_err(|source| BlockError::InvalidEntry { index, source })?;
        if let Some(previous) = checked_entries.last().map(VerifiedSubmission::addr_key)
            && checked.addr_key() <= previous
        {
            return Err(BlockError::UnsortedEntries { index });
        }
        checked_entries.push(checked);
        snapshots.push(snapshot);
    }
    let (recomputed, state) = parent.execute(header.height, header.timestamp_ms, &checked_entries, &snapshots);
    if recomputed.diff_root != header.diff_root {
        return Err(BlockError::DiffRootMismatch);
    }
    if recomputed.state_root != header.state_root {
        return Err(BlockError::StateRootMismatch);
    }
    debug_assert_eq!(&recomputed, header);
    let receipts = state.receipts(header, &checked_entries);
    Ok(AppliedBlock {
        block: block.clone(),
        state,
        receipts,
    })
}

fn check_position(parent: &ChainState, height: u64, timestamp_ms: u64) -> Result<(), BlockError> {
    if height != parent.height + 1 {
        return Err(BlockError::WrongHeight {
            expected: parent.height + 1,
            got: height,
        });
    }
    if timestamp_ms < parent.timestamp_ms {
        return Err(BlockError::TimestampRegressed {
            parent: parent.timestamp_ms,
            got: timestamp_ms,
        });
    }
    Ok(())
}

/// Why one bundle cannot be included.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum EntryError {
    #[error(transparent)]
    Bundle(#[from] BundleError),
    #[error("bundle expired at height {expiry_height}; it cannot enter height {height}")]
    Expired { expiry_height: u64, height: u64 },
    #[error("seq {got} was already confirmed (confirmed seq is {confirmed}): a replay")]
    StaleSeq { confirmed: u64, got: u64 },
    #[error("seq {got} skips ahead; the next seq is {expected}")]
    SeqGap { expected: u64, got: u64 },
    #[error("the sender already has a bundle in this block")]
    DuplicateSender,
    #[error("snapshot refused: {0}")]
    Snapshot(#[from] SnapshotError),
}

/// Why a block is rejected.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum BlockError {
    #[error("block version {version} is not supported")]
    UnsupportedVersion { version: u16 },
    #[error("block is for chain {got}, this chain is {expected}")]
    WrongChain { expected: u64, got: u64 },
    #[error("block height {got} does not follow the tip (expected {expected})")]
    WrongHeight { expected: u64, got: u64 },
    #[error("block does not extend the current tip")]
    WrongParent,
    #[error("block timestamp {got} is before its parent's {parent}")]
    TimestampRegressed { parent: u64, got: u64 },
    #[error("entry {index} is out of addr_key order or repeats a sender")]
    UnsortedEntries { index: usize },
    #[error("entry {index} is invalid: {source}")]
    InvalidEntry { index: usize, source: EntryError },
    #[error("diff root does not match the recomputed one")]
    DiffRootMismatch,
    #[error("state root does not match the recomputed one")]
    StateRootMismatch,
}
