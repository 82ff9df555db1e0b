//! The snapshot rule: what validators check before an account's leaf may commit a holdings list
//! (docs/bounded-witnesses.md §2.2, with the argument why it is sound in §3).
//!
//! A snapshot bundle of account `A` at height `h` claims a root `r` (signed in its envelope) and
//! carries [`SnapshotEvidence`] beside it. [`check_snapshot`] accepts it only if, with `b` the
//! basis height (the previous snapshot's height, or 0):
//! 1. **Basis.** With a holdings commitment in `A`'s leaf, `evidence.basis` hashes to its root;
//!    without one the basis is `A`'s genesis allocations and `evidence.basis` is empty.
//! 2. **Own spends.** `evidence.own` is `A`'s confirmed bundles newest first, from the leaf's
//!    head back to the basis snapshot bundle (inclusive), or to `A`'s first bundle (seq 1, no
//!    `prev_ref`) without a commitment — each one proven under a finalized header below `h`
//!    and linked by `prev_ref` with no gap. A new account shows none.
//! 3. **Incoming.** Every package of `evidence.incoming` pays `A` and passes the recipient rule
//!    ([`Verifier`], no checkpoints) against the finalized headers below `h` and the genesis,
//!    and was acquired at a height in `b..h`.
//! 4. **Result.** From the basis, for each height in order: add that height's incoming values
//!    (a coin arriving twice refuses the snapshot), then remove every range `A` claimed at that
//!    height. The list must hash to `r` and hold at most [`MAX_HOLDINGS`] ranges.
//! 5. **Bounds.** At most [`MAX_SNAPSHOT_OWN_UNITS`] own units, [`MAX_SNAPSHOT_INCOMING`]
//!    packages, [`MAX_SNAPSHOT_UNITS`] units in all and [`MAX_SNAPSHOT_EVIDENCE_BYTES`]; a block
//!    holds at most [`MAX_SNAPSHOTS_PER_BLOCK`] snapshots and [`MAX_SNAPSHOT_UNITS_PER_BLOCK`]
//!    evidence units.
//!
//! Everything is checked against what the validator holds itself (its parent state, finalized
//! headers and genesis), so every honest validator reaches the same verdict; the evidence is
//! carried rather than stored, so validators keep nothing per account beyond the leaf.
//!
//! Invariant: an `Ok` list is what `A` provably holds right after `h`: nothing spent since the
//! basis, nothing that did not reach `A` through a verified custody chain.

use crate::address::Address;
use crate::block::{AccountLeaf, HeaderLite};
use crate::genesis::Genesis;
use crate::hash::{Hash32, hash_object, tag};
pub use crate::holdings::MAX_HOLDINGS;
use crate::holdings::{HoldingsError, HoldingsList};
use crate::receipt::ConfirmedBundleUnit;
use crate::value::ValueRange;
use crate::witness::{FinalizedHeaders, NoCheckpoints, TransferPackage, Verifier, VerifyBudget, VerifyError};
use borsh::{BorshDeserialize, BorshSerialize};
use std::collections::BTreeMap;
use thiserror::Error;

/// Own units a snapshot may show (the basis snapshot bundle included): a wallet on the default
/// policy shows 17; the slack lets an account that missed many snapshots still make one.
pub const MAX_SNAPSHOT_OWN_UNITS: usize = 512;
pub const MAX_SNAPSHOT_INCOMING: usize = 256;
/// Units one snapshot's evidence may ask a validator to check (own plus every package's).
pub const MAX_SNAPSHOT_UNITS: usize = 4096;
pub const MAX_SNAPSHOT_EVIDENCE_BYTES: usize = 512 * 1024;
pub const MAX_SNAPSHOTS_PER_BLOCK: usize = 16;
pub const MAX_SNAPSHOT_UNITS_PER_BLOCK: usize = 8192;

/// What proves a snapshot's list; travels beside the submission, unsigned (a wrong one only
/// gets the snapshot refused, because the claimed root is signed).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, BorshSerialize, BorshDeserialize)]
pub struct SnapshotEvidence {
    /// The list the account's current commitment names (empty without one).
    pub basis: HoldingsList,
    /// The account's bundles since the basis, newest first.
    pub own: Vec<ConfirmedBundleUnit>,
    /// Values acquired since the basis.
    pub incoming: Vec<TransferPackage>,
}

impl SnapshotEvidence {
    /// What a block's diff entry commits for this evidence.
    pub fn evidence_hash(&self) -> Hash32 {
        hash_object(tag::SNAPSHOT_EVIDENCE, self)
    }

    /// Units a validator checks for this evidence (the bound of rule 5), before decoding more.
    pub fn units(&self) -> usize {
        self.incoming
            .iter()
            .map(|package| package.witness.total_units())
            .fold(self.own.len(), usize::saturating_add)
    }
}

/// What a snapshot is checked against besides the parent state.
#[derive(Clone, Copy)]
pub struct SnapshotRules<'a> {
    pub genesis: &'a Genesis,
    pub headers: &'a dyn FinalizedHeaders,
}

/// The finalized headers strictly below one height: a verdict must not depend on how far the
/// checking node's store has already got (a node replaying old blocks holds later headers).
struct HeadersBelow<'a> {
    headers: &'a dyn FinalizedHeaders,
    limit: u64,
}

impl FinalizedHeaders for HeadersBelow<'_> {
    fn finalized_header(&self, height: u64) -> Option<HeaderLite> {
        (height < self.limit)
            .then(|| self.headers.finalized_header(height))
            .flatten()
    }
}

/// Checks rules 1–5 for `owner`'s snapshot at `height` claiming `root`; `leaf` is the owner's
/// leaf in the parent state. Returns the list the new leaf commits.
pub fn check_snapshot(
    rules: &SnapshotRules<'_>,
    owner: &Address,
    leaf: Option<&AccountLeaf>,
    root: &Hash32,
    evidence: &SnapshotEvidence,
    height: u64,
) -> Result<HoldingsList, SnapshotError> {
    if evidence.own.len() > MAX_SNAPSHOT_OWN_UNITS {
        return Err(SnapshotError::HistoryTooLong {
            units: evidence.own.len(),
        });
    }
    if evidence.incoming.len() > MAX_SNAPSHOT_INCOMING || evidence.units() > MAX_SNAPSHOT_UNITS {
        return Err(SnapshotError::EvidenceTooLarge {
            packages: evidence.incoming.len(),
            units: evidence.units(),
        });
    }
    let headers = HeadersBelow {
        headers: rules.headers,
        limit: height,
    };
    // 1. Basis.
    let commitment = leaf.and_then(|leaf| leaf.holdings);
    let (list, basis_height) = match commitment {
        Some(commitment) => {
            if evidence.basis.len() != commitment.count as usize || evidence.basis.root() != commitment.root {
                return Err(SnapshotError::BasisMismatch);
            }
            (evidence.basis.clone(), commitment.at.height)
        }
        None => {
            if !evidence.basis.is_empty() {
                return Err(SnapshotError::BasisMismatch);
            }
            (genesis_holdings(rules.genesis, owner)?, 0)
        }
    };
    // 2. Own spends, newest first.
    let mut claims: BTreeMap<u64, Vec<ValueRange>> = BTreeMap::new();
    match leaf {
        None if !evidence.own.is_empty() => return Err(SnapshotError::OwnHistoryMismatch),
        None => {}
        Some(leaf) => {
            let newest = evidence.own.first().ok_or(SnapshotError::OwnHistoryMismatch)?;
            if newest.bundle_ref() != leaf.head_ref {
                return Err(SnapshotError::OwnHistoryMismatch);
            }
            for (index, unit) in evidence.own.iter().enumerate() {
                check_own_unit(&headers, owner, unit)?;
                let linked_to = evidence.own.get(index + 1).map(ConfirmedBundleUnit::bundle_ref);
                if linked_to.is_some() && unit.receipt.prev_ref != linked_to {
                    return Err(SnapshotError::OwnHistoryGap { height: unit.height() });
                }
                claims
                    .entry(unit.height())
                    .or_default()
                    .extend(unit.sidecar.claim_set());
            }
            let oldest = evidence.own.last().ok_or(SnapshotError::OwnHistoryMismatch)?;
            let reaches_basis = match commitment {
                Some(commitment) => oldest.bundle_ref() == commitment.at,
                None => oldest.receipt.seq == 1 && oldest.receipt.prev_ref.is_none(),
            };
            if !reaches_basis {
                return Err(SnapshotError::OwnHistoryMismatch);
            }
        }
    }
    // 3. Incoming values.
    let mut arrivals: BTreeMap<u64, Vec<ValueRange>> = BTreeMap::new();
    let budget = VerifyBudget {
        max_units: MAX_SNAPSHOT_UNITS,
        ..VerifyBudget::default()
    };
    for (index, package) in evidence.incoming.iter().enumerate() {
        let accepted = Verifier::new(rules.genesis, &headers, &NoCheckpoints, *owner)
            .with_budget(budget)
            .verify_package(package)
            .map_err(|source| SnapshotError::IncomingInvalid { index, source })?;
        if accepted.acquisition_height < basis_height {
            return Err(SnapshotError::IncomingBeforeBasis {
                index,
                acquired: accepted.acquisition_height,
                basis: basis_height,
            });
        }
        arrivals
            .entry(accepted.acquisition_height)
            .or_default()
            .push(accepted.value);
    }
    // 4. Replay.
    let list = replay(list, claims, arrivals)?;
    if list.root() != *root {
        return Err(SnapshotError::Unsound);
    }
    Ok(list)
}

/// Rule 4: from `list`, for each height in order, adds that height's arrivals, then removes that
/// height's claims (conservative: a coin received and spent at one height counts as spent).
/// Validators and wallets both build a snapshot's list with it, so they agree on the root.
pub fn replay(
    mut list: HoldingsList,
    mut claims: BTreeMap<u64, Vec<ValueRange>>,
    mut arrivals: BTreeMap<u64, Vec<ValueRange>>,
) -> Result<HoldingsList, HoldingsError> {
    let heights: std::collections::BTreeSet<u64> = arrivals.keys().chain(claims.keys()).copied().collect();
    for at in heights {
        for value in arrivals.remove(&at).unwrap_or_default() {
            list.add(value)?;
        }
        for claim in claims.remove(&at).unwrap_or_default() {
            list.remove(&claim)?;
        }
    }
    Ok(list)
}

fn check_own_unit(
    headers: &dyn FinalizedHeaders,
    owner: &Address,
    unit: &ConfirmedBundleUnit,
) -> Result<(), SnapshotError> {
    let header = &unit.receipt.header;
    if unit.sidecar.sender != *owner {
        return Err(SnapshotError::OwnHistoryMismatch);
    }
    if headers.finalized_header(header.height) != Some(*header) {
        return Err(SnapshotError::OwnUnitNotFinal { height: header.height });
    }
    if !unit.proves_inclusion() {
        return Err(SnapshotError::OwnUnitNotIncluded { height: header.height });
    }
    Ok(())
}

/// An account's genesis allocations as a holdings list: the basis of its first snapshot.
pub fn genesis_holdings(genesis: &Genesis, owner: &Address) -> Result<HoldingsList, HoldingsError> {
    let mut list = HoldingsList::new();
    for allocation in genesis.allocations_of(owner) {
        list.add(allocation.range)?;
    }
    Ok(list)
}

/// Why a snapshot is refused. Each names the rule of the module doc it breaks.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum SnapshotError {
    #[error(
        "the snapshot shows {units} own bundles, over the limit of {MAX_SNAPSHOT_OWN_UNITS}; \
         this account's history is too long to snapshot in one step"
    )]
    HistoryTooLong { units: usize },
    #[error(
        "the snapshot's evidence is too large ({packages} packages, {units} units; limits \
         {MAX_SNAPSHOT_INCOMING} and {MAX_SNAPSHOT_UNITS}): snapshot with fewer incoming values"
    )]
    EvidenceTooLarge { packages: usize, units: usize },
    #[error("the snapshot's basis is not the list the account's leaf commits")]
    BasisMismatch,
    #[error("the snapshot's own bundles do not run from the account's head to its basis")]
    OwnHistoryMismatch,
    #[error("the snapshot's own bundles skip one after height {height}")]
    OwnHistoryGap { height: u64 },
    #[error("the snapshot shows an own bundle at height {height}, which is not final below the snapshot")]
    OwnUnitNotFinal { height: u64 },
    #[error("the snapshot's own bundle at height {height} is not in that height's state")]
    OwnUnitNotIncluded { height: u64 },
    #[error("incoming package {index} does not verify: {source}")]
    IncomingInvalid { index: usize, source: VerifyError },
    #[error("incoming package {index} was acquired at height {acquired}, before the basis at {basis}")]
    IncomingBeforeBasis { index: usize, acquired: u64, basis: u64 },
    #[error("the snapshot's list cannot be built: {0}")]
    List(#[from] HoldingsError),
    #[error("the claimed holdings root is not what the evidence gives: the snapshot is unsound")]
    Unsound,
    #[error("this block already holds the most snapshots or snapshot units a block may check")]
    BlockBudget,
    #[error("a snapshot cannot be checked here: no finalized headers were given")]
    NoHistory,
}

impl SnapshotError {
    /// The stable code a node answers with.
    pub fn code(&self) -> &'static str {
        match self {
            SnapshotError::HistoryTooLong { .. } => "snapshot_history_too_long",
            SnapshotError::EvidenceTooLarge { .. } | SnapshotError::BlockBudget => "snapshot_too_large",
            SnapshotError::Unsound | SnapshotError::List(_) => "snapshot_unsound",
            SnapshotError::NoHistory => "snapshot_unchecked",
            _ => "snapshot_evidence_invalid",
        }
    }
}

/// The snapshot rule's cost of one block so far (rule 5).
#[derive(Clone, Copy, Debug, Default)]
pub struct BlockSnapshotBudget {
    snapshots: usize,
    units: usize,
}

impl BlockSnapshotBudget {
    /// Takes one snapshot of `units` units, or refuses if the block is full of them.
    pub fn take(&mut self, units: usize) -> Result<(), SnapshotError> {
        let units = self.units.saturating_add(units);
        if self.snapshots >= MAX_SNAPSHOTS_PER_BLOCK || units > MAX_SNAPSHOT_UNITS_PER_BLOCK {
            return Err(SnapshotError::BlockBudget);
        }
        self.snapshots += 1;
        self.units = units;
        Ok(())
    }
}
