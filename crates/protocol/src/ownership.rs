//! Wallet-side pure rules: the records one owner keeps, and how they change when it sends,
//! receives a receipt, and accepts a package (upstream-protocol.md §7, worked-example R3–R7).
//!
//! 1. **Sending.** Paid ranges are carved out of spendable records; every piece (paid or change)
//!    keeps its parent's witness, narrowed to the piece, until the receipt arrives. One pending
//!    bundle at a time.
//! 2. **Own receipt at height h.** The unit is prepended to every piece of the bundle and to
//!    every other live record acquired at or before h. Paid pieces are archived and get an
//!    exact-range checkpoint; change becomes spendable.
//! 3. **Exporting.** Each paid piece becomes one package with its whole witness. (Wallets used
//!    to trim a node the recipient owned to a checkpoint anchor; with snapshots that node is at
//!    most one snapshot's worth of units, and trimming would make the recipient depend on
//!    keeping every archive forever — rule 6 lets it forget them.)
//! 4. **Accepting.** A verified package becomes a spendable record whose chain holds the owner's
//!    own units at heights ≥ `hA` (inclusive boundary, R4), anchored on the payer's witness with
//!    checkpoints rehydrated.
//! 5. **Snapshotting** (docs/bounded-witnesses.md). A snapshot bundle claims the list the
//!    owner holds, built with the validators' own `snapshot::replay` from the basis (the last
//!    snapshot's list, or the genesis allocations), the own bundles since it and every live
//!    value received since it (at most what the evidence limits allow). On its receipt every
//!    live record inside the list is re-anchored on the snapshot: its chain restarts at the
//!    snapshot unit, so what it exports no longer grows with the owner's history.
//! 6. **Forgetting.** Own units beyond the newest [`OWN_UNITS_KEPT`] (never the latest
//!    snapshot's or later) and archived values beyond the newest [`ARCHIVED_VALUES_KEPT`] are
//!    dropped: storage grows with what the owner holds. A package acquired before the oldest
//!    kept unit is refused (`AcquiredTooLongAgo`) — it could never be paid on anyway.
//!
//! Invariant: a record's chain always holds every own unit at or after its acquisition height,
//! so the witnesses this owner exports satisfy the tail rule.

use crate::address::Address;
use crate::bundle::{BundleError, BundleSidecar, EnvelopeParams, OffChainTx, Submission};
use crate::codec::encoded_len;
use crate::genesis::Genesis;
use crate::hash::Hash32;
use crate::holdings::{HoldingsError, HoldingsList};
use crate::receipt::{ConfirmedBundleUnit, Receipt};
use crate::signature::SigningKey;
use crate::snapshot::{
    MAX_SNAPSHOT_EVIDENCE_BYTES, MAX_SNAPSHOT_INCOMING, MAX_SNAPSHOT_OWN_UNITS, MAX_SNAPSHOT_UNITS, SnapshotEvidence,
    genesis_holdings, replay,
};
use crate::value::{ValueRange, claim_set, total_len};
use crate::witness::{
    Checkpoint, FinalizedHeaders, GenesisAnchor, OwnCheckpoints, PriorWitnessLink, SnapshotAnchor, TransferPackage,
    Verifier, VerifyBudget, VerifyError, WitnessAnchor, WitnessV2,
};
use borsh::{BorshDeserialize, BorshSerialize};
use std::collections::{BTreeMap, HashSet};
use thiserror::Error;

#[derive(Clone, Copy, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
#[borsh(use_discriminant = false)]
pub enum RecordStatus {
    Spendable,
    /// Paid away in the pending bundle.
    PendingOutgoing,
    /// Change left over by the pending bundle.
    PendingChange,
    /// Left this owner; kept because checkpoints and returning values refer to it.
    Archived,
}

#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct ValueRecord {
    pub value: ValueRange,
    pub witness: WitnessV2,
    /// Height of the block that carried the acquiring tx (0 for genesis).
    pub acquisition_height: u64,
    pub status: RecordStatus,
}

impl ValueRecord {
    fn is_live(&self) -> bool {
        self.status != RecordStatus::Archived
    }
}

/// The bundle this owner submitted and has no receipt for yet.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct PendingSend {
    pub submission: Submission,
    /// For a snapshot bundle: the list it claims.
    pub holdings: Option<HoldingsList>,
}

/// The owner's latest confirmed snapshot: the list its leaf commits and the unit that did it.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct SnapshotRecord {
    pub list: HoldingsList,
    pub unit: ConfirmedBundleUnit,
}

/// What a package delivery did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AcceptOutcome {
    Accepted {
        value: ValueRange,
        units_checked: usize,
    },
    /// The same package was accepted before; nothing changed.
    Duplicate,
}

/// Own units a wallet keeps: a value acquired before the oldest of them would need a longer
/// chain than any payee's budget takes (`VerifyBudget::max_units`), so nothing older is needed.
pub const OWN_UNITS_KEPT: usize = 4096;
/// Values paid away whose history a wallet keeps for its checkpoints (wallets no longer trim
/// packages to checkpoints, so only packages from elsewhere can name one).
pub const ARCHIVED_VALUES_KEPT: usize = 256;

/// When a wallet snapshots on its own (docs/bounded-witnesses.md §4): so that no package it
/// exports holds more than ≈ `every_bundles` own units per owner, and names at most
/// `prior_owners + 1` owners.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SnapshotPolicy {
    /// Own bundles since the last snapshot that make one due (0: never snapshot).
    pub every_bundles: usize,
    /// Values received since the last snapshot that make one due.
    pub received: usize,
    /// Earlier owners a received value's witness may name beyond its payer before paying it
    /// on needs a snapshot first: packages then name at most `prior_owners + 1` owners.
    pub prior_owners: usize,
    /// A live value whose witness (what its package would carry) encodes to more than this
    /// many bytes makes a snapshot due (0: no size trigger). Bundles of many transfers make
    /// witnesses large long before `every_bundles` of them accumulate.
    pub package_bytes: usize,
}

impl Default for SnapshotPolicy {
    fn default() -> Self {
        SnapshotPolicy {
            every_bundles: 16,
            received: 32,
            prior_owners: 2,
            package_bytes: 24 * 1024,
        }
    }
}

/// Everything one owner holds. Its borsh encoding is how a wallet persists it.
#[derive(Clone, Debug, BorshSerialize, BorshDeserialize)]
pub struct Holdings {
    owner: Address,
    records: Vec<ValueRecord>,
    /// Own confirmed units, oldest first.
    own_units: Vec<ConfirmedBundleUnit>,
    checkpoints: Vec<Checkpoint>,
    pending: Option<PendingSend>,
    accepted_packages: HashSet<Hash32>,
    snapshot: Option<SnapshotRecord>,
}

impl Holdings {
    pub fn new(owner: Address) -> Self {
        Holdings {
            owner,
            records: Vec::new(),
            own_units: Vec::new(),
            checkpoints: Vec::new(),
            pending: None,
            accepted_packages: HashSet::new(),
            snapshot: None,
        }
    }

    /// Holdings with one record per genesis allocation of `owner`.
    pub fn from_genesis(owner: Address, genesis: &Genesis) -> Self {
        let mut holdings = Holdings::new(owner);
        let genesis_hash = genesis.hash();
        for allocation in genesis.allocations_of(&owner) {
            let anchor = WitnessAnchor::Genesis(GenesisAnchor {
                genesis_hash,
                first_owner: owner,
                range: allocation.range,
            });
            holdings.records.push(ValueRecord {
                value: allocation.range,
                witness: WitnessV2 {
                    value: allocation.range,
                    current_owner: owner,
                    chain: Vec::new(),
                    anchor,
                },
                acquisition_height: 0,
                status: RecordStatus::Spendable,
            });
        }
        holdings
    }

    pub fn owner(&self) -> Address {
        self.owner
    }

    pub fn records(&self) -> &[ValueRecord] {
        &self.records
    }

    pub fn checkpoints(&self) -> &[Checkpoint] {
        &self.checkpoints
    }

    pub fn own_units(&self) -> &[ConfirmedBundleUnit] {
        &self.own_units
    }

    pub fn pending(&self) -> Option<&PendingSend> {
        self.pending.as_ref()
    }

    pub fn snapshot(&self) -> Option<&SnapshotRecord> {
        self.snapshot.as_ref()
    }

    /// Own bundles confirmed since the latest snapshot (all of them before the first): what the
    /// snapshot policy counts.
    pub fn bundles_since_snapshot(&self) -> usize {
        let since = self.snapshot.as_ref().map_or(0, |s| s.unit.receipt.seq);
        self.own_units.iter().filter(|unit| unit.receipt.seq > since).count()
    }

    /// Live values received since the latest snapshot's height, which the next snapshot can
    /// take in (at most [`MAX_SNAPSHOT_INCOMING`] at once).
    pub fn received_since_snapshot(&self) -> usize {
        self.snapshot_candidates().count()
    }

    /// True when `policy` asks for a snapshot before the next payment: enough own bundles or
    /// received values since the last one, a received value whose witness names more earlier
    /// owners than the policy lets a package carry on, or a witness over the size limit.
    pub fn snapshot_due(&self, policy: &SnapshotPolicy) -> bool {
        if policy.every_bundles == 0 {
            return false;
        }
        self.bundles_since_snapshot() >= policy.every_bundles
            || self.received_since_snapshot() >= policy.received.max(1)
            || self.snapshot_candidates().any(|record| match &record.witness.anchor {
                WitnessAnchor::PriorWitness(link) => link.prior_witness.depth() >= policy.prior_owners,
                _ => false,
            })
            || (policy.package_bytes > 0 && self.largest_shortenable_witness() > policy.package_bytes)
    }

    /// The encoded size of the largest witness of a live value that a snapshot would shorten
    /// (one that carries own bundles, or an earlier owner's witness); 0 if none.
    pub fn largest_shortenable_witness(&self) -> usize {
        self.records
            .iter()
            .filter(|record| {
                record.status == RecordStatus::Spendable
                    && (!record.witness.chain.is_empty()
                        || matches!(record.witness.anchor, WitnessAnchor::PriorWitness(_)))
            })
            .map(|record| crate::codec::encoded_len(&record.witness))
            .max()
            .unwrap_or(0)
    }

    fn snapshot_candidates(&self) -> impl Iterator<Item = &ValueRecord> {
        let basis_height = self.snapshot.as_ref().map_or(0, |s| s.unit.height());
        self.records.iter().filter(move |record| {
            record.status == RecordStatus::Spendable
                && record.acquisition_height >= basis_height
                && matches!(record.witness.anchor, WitnessAnchor::PriorWitness(_))
        })
    }

    /// Seq of the newest own confirmed bundle (0 if none).
    pub fn confirmed_seq(&self) -> u64 {
        self.own_units.last().map_or(0, |unit| unit.receipt.seq)
    }

    /// Units this owner can spend now plus change it will get back from the pending bundle.
    pub fn balance(&self) -> u64 {
        total_len(
            self.records
                .iter()
                .filter(|r| matches!(r.status, RecordStatus::Spendable | RecordStatus::PendingChange))
                .map(|r| &r.value),
        )
    }

    /// Sorted ranges of live records that this owner will still hold after its pending bundle.
    pub fn held_ranges(&self) -> Vec<ValueRange> {
        let mut ranges: Vec<ValueRange> = self
            .records
            .iter()
            .filter(|r| matches!(r.status, RecordStatus::Spendable | RecordStatus::PendingChange))
            .map(|r| r.value)
            .collect();
        ranges.sort();
        ranges
    }

    /// Picks ranges worth `amount` from spendable records: an exact single record if one exists,
    /// otherwise records with the shortest witnesses first (cheaper for the payee to verify),
    /// splitting only the last one.
    pub fn select_ranges(&self, amount: u64) -> Result<Vec<ValueRange>, OwnershipError> {
        let mut candidates: Vec<&ValueRecord> = self
            .records
            .iter()
            .filter(|r| r.status == RecordStatus::Spendable)
            .collect();
        let available = total_len(candidates.iter().map(|r| &r.value));
        if amount == 0 || available < amount {
            return Err(OwnershipError::InsufficientFunds {
                available,
                requested: amount,
            });
        }
        if let Some(exact) = candidates
            .iter()
            .filter(|r| r.value.len() == amount)
            .min_by_key(|r| r.witness.total_units())
        {
            return Ok(vec![exact.value]);
        }
        candidates.sort_by_key(|r| {
            (
                r.witness.total_units(),
                std::cmp::Reverse(r.acquisition_height),
                r.value,
            )
        });
        let mut remaining = amount;
        let mut ranges = Vec::new();
        for record in candidates {
            if remaining == 0 {
                break;
            }
            match record.value.split_at_len(remaining) {
                Some((head, _)) => {
                    ranges.push(head);
                    remaining = 0;
                }
                None => {
                    ranges.push(record.value);
                    remaining -= record.value.len();
                }
            }
        }
        Ok(ranges)
    }

    /// What every bundle this owner signs needs: no bundle pending, its own key, the next seq.
    fn check_can_sign(&self, key: &SigningKey, params: &EnvelopeParams) -> Result<(), OwnershipError> {
        if self.pending.is_some() {
            return Err(OwnershipError::PendingBundleExists);
        }
        if key.address() != self.owner {
            return Err(OwnershipError::WrongKey);
        }
        if params.seq != self.confirmed_seq() + 1 {
            return Err(OwnershipError::SeqNotNext {
                expected: self.confirmed_seq() + 1,
                got: params.seq,
            });
        }
        Ok(())
    }

    /// Carves the paid ranges out of spendable records, builds and signs the bundle, and marks
    /// every touched piece pending. `payments` lists, per tx, a recipient and the ranges it gets.
    pub fn prepare_bundle(
        &mut self,
        key: &SigningKey,
        payments: &[(Address, Vec<ValueRange>)],
        params: &EnvelopeParams,
        tx_time: u64,
    ) -> Result<Submission, OwnershipError> {
        self.check_can_sign(key, params)?;
        // No bundle is pending, so every PendingChange record below is a fresh remainder of
        // this bundle, and may itself be paid from by a later payment of the same bundle.
        let mut records = self.records.clone();
        let mut txs = Vec::with_capacity(payments.len());
        for (index, (recipient, ranges)) in payments.iter().enumerate() {
            for range in ranges {
                let position = records
                    .iter()
                    .position(|r| {
                        matches!(r.status, RecordStatus::Spendable | RecordStatus::PendingChange)
                            && r.value.contains(range)
                    })
                    .ok_or(OwnershipError::RangeNotSpendable { range: *range })?;
                let parent = records.swap_remove(position);
                let remainders = parent
                    .value
                    .split_out(range)
                    .map_err(|_| OwnershipError::RangeNotSpendable { range: *range })?;
                let pieces = std::iter::once((*range, RecordStatus::PendingOutgoing))
                    .chain(remainders.into_iter().map(|piece| (piece, RecordStatus::PendingChange)));
                for (piece, status) in pieces {
                    let mut witness = parent.witness.clone();
                    witness.value = piece;
                    records.push(ValueRecord {
                        value: piece,
                        witness,
                        acquisition_height: parent.acquisition_height,
                        status,
                    });
                }
            }
            txs.push(OffChainTx {
                sender: self.owner,
                recipient: *recipient,
                values: claim_set(ranges.iter()),
                local_index: index as u32,
                tx_time,
                extra_data: Vec::new(),
            });
        }
        let sidecar = BundleSidecar {
            sender: self.owner,
            txs,
        };
        sidecar.check_shape()?;
        let submission = Submission::sign(key, sidecar, params);
        self.records = records;
        self.pending = Some(PendingSend {
            submission: submission.clone(),
            holdings: None,
        });
        Ok(submission)
    }

    /// Builds and signs a snapshot bundle (rule 5) claiming everything this owner can prove it
    /// holds: the basis less its spends since, plus the values received since the basis, oldest
    /// first, as many as the evidence limits take. Needs no pending bundle.
    pub fn prepare_snapshot(
        &mut self,
        key: &SigningKey,
        genesis: &Genesis,
        params: &EnvelopeParams,
    ) -> Result<Submission, OwnershipError> {
        self.check_can_sign(key, params)?;
        let (basis, basis_seq, evidence_basis) = match &self.snapshot {
            Some(snapshot) => (snapshot.list.clone(), snapshot.unit.receipt.seq, snapshot.list.clone()),
            None => (genesis_holdings(genesis, &self.owner)?, 1, HoldingsList::new()),
        };
        // Newest first, down to the basis snapshot unit (or the first bundle).
        let own: Vec<ConfirmedBundleUnit> = self
            .own_units
            .iter()
            .rev()
            .take_while(|unit| unit.receipt.seq >= basis_seq)
            .cloned()
            .collect();
        if own.len() > MAX_SNAPSHOT_OWN_UNITS {
            return Err(OwnershipError::SnapshotHistoryTooLong { units: own.len() });
        }
        let mut claims: BTreeMap<u64, Vec<ValueRange>> = BTreeMap::new();
        for unit in &own {
            claims
                .entry(unit.height())
                .or_default()
                .extend(unit.sidecar.claim_set());
        }
        let mut candidates: Vec<&ValueRecord> = self.snapshot_candidates().collect();
        candidates.sort_by_key(|record| (record.acquisition_height, record.value));
        let mut evidence = SnapshotEvidence {
            basis: evidence_basis,
            own,
            incoming: Vec::new(),
        };
        let mut arrivals: BTreeMap<u64, Vec<ValueRange>> = BTreeMap::new();
        let mut size = encoded_len(&evidence);
        for record in candidates {
            let WitnessAnchor::PriorWitness(link) = &record.witness.anchor else {
                continue;
            };
            let package = TransferPackage {
                target_tx: link.acquire_tx.clone(),
                target_value: record.value,
                witness: (*link.prior_witness).clone(),
            };
            let package_size = encoded_len(&package);
            let units = evidence.units() + package.witness.total_units();
            if evidence.incoming.len() >= MAX_SNAPSHOT_INCOMING
                || units > MAX_SNAPSHOT_UNITS
                || size + package_size > MAX_SNAPSHOT_EVIDENCE_BYTES
            {
                // Left out: still spendable on its own witness, as before any snapshot.
                continue;
            }
            size += package_size;
            arrivals
                .entry(record.acquisition_height)
                .or_default()
                .push(record.value);
            evidence.incoming.push(package);
        }
        let list = replay(basis, claims, arrivals)?;
        let submission = Submission::sign_snapshot(key, list.root(), evidence, params);
        self.pending = Some(PendingSend {
            submission: submission.clone(),
            holdings: Some(list),
        });
        Ok(submission)
    }

    /// Undoes a bundle that was never accepted by any node: its pieces become spendable again.
    pub fn abandon_pending(&mut self) {
        if self.pending.take().is_some() {
            for record in &mut self.records {
                if matches!(
                    record.status,
                    RecordStatus::PendingOutgoing | RecordStatus::PendingChange
                ) {
                    record.status = RecordStatus::Spendable;
                }
            }
        }
    }

    /// Applies the receipt of the pending bundle (rule 2) and returns one package per paid piece.
    pub fn apply_own_receipt(
        &mut self,
        receipt: Receipt,
        headers: &dyn FinalizedHeaders,
    ) -> Result<Vec<TransferPackage>, OwnershipError> {
        let pending = self.pending.as_ref().ok_or(OwnershipError::NoPendingBundle)?;
        if receipt.seq != pending.submission.envelope.seq {
            return Err(OwnershipError::ReceiptSeqMismatch {
                pending: pending.submission.envelope.seq,
                got: receipt.seq,
            });
        }
        let height = receipt.header.height;
        match headers.finalized_header(height) {
            None => return Err(OwnershipError::Verify(VerifyError::UnknownHeader { height })),
            Some(known) if known != receipt.header => {
                return Err(OwnershipError::Verify(VerifyError::HeaderMismatch { height }));
            }
            Some(_) => {}
        }
        let expected_prev = self.own_units.last().map(ConfirmedBundleUnit::bundle_ref);
        if receipt.prev_ref != expected_prev {
            return Err(OwnershipError::ReceiptPrevRefMismatch);
        }
        let unit = ConfirmedBundleUnit {
            receipt,
            sidecar: pending.submission.sidecar.clone(),
        };
        if !unit.proves_inclusion() {
            return Err(OwnershipError::Verify(VerifyError::InclusionProofInvalid { height }));
        }
        let unit_ref = unit.bundle_ref();
        if let Some(list) = self.pending.as_ref().and_then(|p| p.holdings.clone()) {
            return self.apply_snapshot_receipt(unit, list).map(|()| Vec::new());
        }
        let mut paid = Vec::new();
        for record in &mut self.records {
            let in_bundle = matches!(
                record.status,
                RecordStatus::PendingOutgoing | RecordStatus::PendingChange
            );
            if in_bundle || (record.is_live() && record.acquisition_height <= height) {
                record.witness.chain.insert(0, unit.clone());
            }
            match record.status {
                RecordStatus::PendingOutgoing => {
                    record.status = RecordStatus::Archived;
                    self.checkpoints.push(Checkpoint {
                        value: record.value,
                        owner: self.owner,
                        unit: unit_ref,
                    });
                    paid.push(record.clone());
                }
                RecordStatus::PendingChange => record.status = RecordStatus::Spendable,
                _ => {}
            }
        }
        self.own_units.push(unit.clone());
        self.pending = None;
        self.forget_the_distant_past();
        Ok(paid
            .into_iter()
            .filter_map(|record| {
                let target_tx = unit
                    .sidecar
                    .txs
                    .iter()
                    .find(|tx| tx.covering_range(&record.value).is_some())?
                    .clone();
                Some(TransferPackage {
                    target_tx,
                    target_value: record.value,
                    witness: record.witness,
                })
            })
            .collect())
    }

    /// The receipt of a pending snapshot (rule 5): live records inside the list restart their
    /// chain at the snapshot unit; the others get the unit like any own bundle.
    fn apply_snapshot_receipt(&mut self, unit: ConfirmedBundleUnit, list: HoldingsList) -> Result<(), OwnershipError> {
        let unit_ref = unit.bundle_ref();
        let committed = unit.receipt.holdings;
        if committed.map(|c| (c.root, c.count as usize, c.at)) != Some((list.root(), list.len(), unit_ref)) {
            return Err(OwnershipError::SnapshotReceiptMismatch);
        }
        for record in self.records.iter_mut().filter(|record| record.is_live()) {
            let anchored = list
                .containing(&record.value)
                .and_then(|(index, held)| Some((held, list.prove(index)?)));
            match anchored {
                Some((held, proof)) => {
                    record.witness = WitnessV2 {
                        value: record.value,
                        current_owner: self.owner,
                        chain: vec![unit.clone()],
                        anchor: WitnessAnchor::Snapshot(SnapshotAnchor { held, proof }),
                    };
                }
                None => record.witness.chain.insert(0, unit.clone()),
            }
        }
        self.own_units.push(unit.clone());
        self.snapshot = Some(SnapshotRecord { list, unit });
        self.pending = None;
        self.forget_the_distant_past();
        Ok(())
    }

    /// Storage follows what the owner holds, not its history (rule 6): own units beyond the
    /// newest [`OWN_UNITS_KEPT`] (and before the latest snapshot) and archived values beyond the
    /// newest [`ARCHIVED_VALUES_KEPT`] are dropped.
    fn forget_the_distant_past(&mut self) {
        let snapshot_seq = self.snapshot.as_ref().map_or(u64::MAX, |s| s.unit.receipt.seq);
        let excess = self.own_units.len().saturating_sub(OWN_UNITS_KEPT);
        let droppable = self
            .own_units
            .iter()
            .take(excess)
            .take_while(|unit| unit.receipt.seq < snapshot_seq)
            .count();
        self.own_units.drain(..droppable);
        let archived = self
            .records
            .iter()
            .filter(|r| r.status == RecordStatus::Archived)
            .count();
        let mut to_drop = archived.saturating_sub(ARCHIVED_VALUES_KEPT);
        if to_drop == 0 {
            return;
        }
        let mut dropped = Vec::new();
        self.records.retain(|record| {
            if to_drop > 0 && record.status == RecordStatus::Archived {
                to_drop -= 1;
                if let Some(newest) = record.witness.chain.first() {
                    dropped.push((record.value, newest.bundle_ref()));
                }
                return false;
            }
            true
        });
        self.checkpoints
            .retain(|checkpoint| !dropped.contains(&(checkpoint.value, checkpoint.unit)));
    }

    /// Verifies a package addressed to this owner and stores the value as spendable (rule 4).
    pub fn accept_package(
        &mut self,
        genesis: &Genesis,
        headers: &dyn FinalizedHeaders,
        package: &TransferPackage,
    ) -> Result<AcceptOutcome, OwnershipError> {
        // The size budget before anything hashes the whole encoding (a huge package is refused
        // in the time it takes to measure it).
        let size = encoded_len(package);
        let max = VerifyBudget::default().max_encoded_bytes;
        if size > max {
            return Err(VerifyError::PackageTooLarge { size, max }.into());
        }
        let package_hash = package.package_hash();
        if self.accepted_packages.contains(&package_hash) {
            return Ok(AcceptOutcome::Duplicate);
        }
        if let Some(held) = self
            .records
            .iter()
            .find(|r| r.is_live() && r.value.intersects(&package.target_value))
        {
            return Err(OwnershipError::AlreadyHeld { held: held.value });
        }
        let accepted = Verifier::new(genesis, headers, &*self, self.owner).verify_package(package)?;
        let acquisition_height = accepted.acquisition_height;
        // The chain must hold every own unit since the acquisition; if some were forgotten, more
        // than OWN_UNITS_KEPT of them exist, and no payee's budget would take that chain.
        if self.own_units.first().is_some_and(|oldest| {
            oldest
                .receipt
                .prev_ref
                .is_some_and(|prev| prev.height >= acquisition_height)
        }) {
            return Err(OwnershipError::AcquiredTooLongAgo { acquisition_height });
        }
        let chain: Vec<ConfirmedBundleUnit> = self
            .own_units
            .iter()
            .rev()
            .take_while(|u| u.height() >= acquisition_height)
            .cloned()
            .collect();
        let witness = WitnessV2 {
            value: accepted.value,
            current_owner: self.owner,
            chain,
            anchor: WitnessAnchor::PriorWitness(PriorWitnessLink {
                acquire_tx: accepted.target_tx,
                prior_witness: Box::new(accepted.witness),
            }),
        };
        self.records.push(ValueRecord {
            value: accepted.value,
            witness,
            acquisition_height,
            status: RecordStatus::Spendable,
        });
        self.accepted_packages.insert(package_hash);
        Ok(AcceptOutcome::Accepted {
            value: accepted.value,
            units_checked: accepted.units_checked,
        })
    }
}

impl OwnCheckpoints for Holdings {
    fn archived_witness(&self, checkpoint: &Checkpoint) -> Option<&WitnessV2> {
        if !self.checkpoints.contains(checkpoint) {
            return None;
        }
        self.records
            .iter()
            .filter(|r| r.status == RecordStatus::Archived && r.value == checkpoint.value)
            .map(|r| &r.witness)
            .find(|w| w.chain.first().map(ConfirmedBundleUnit::bundle_ref) == Some(checkpoint.unit))
    }
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum OwnershipError {
    #[error("a bundle is already pending; wait for its receipt before sending again")]
    PendingBundleExists,
    #[error("no bundle is pending")]
    NoPendingBundle,
    #[error("the signing key is not this wallet's")]
    WrongKey,
    #[error("seq {got} is not the next one ({expected})")]
    SeqNotNext { expected: u64, got: u64 },
    #[error("insufficient funds: {available} spendable, {requested} requested")]
    InsufficientFunds { available: u64, requested: u64 },
    #[error("range {range} is not inside a spendable value of this wallet")]
    RangeNotSpendable { range: ValueRange },
    #[error("this wallet already holds {held}, which overlaps the incoming value")]
    AlreadyHeld { held: ValueRange },
    #[error("receipt is for seq {got}, the pending bundle has seq {pending}")]
    ReceiptSeqMismatch { pending: u64, got: u64 },
    #[error("receipt's prev_ref does not match this wallet's last confirmed bundle")]
    ReceiptPrevRefMismatch,
    #[error("bundle is malformed: {0}")]
    Bundle(#[from] BundleError),
    #[error(
        "{units} own bundles since the last snapshot, over the {MAX_SNAPSHOT_OWN_UNITS} one snapshot may show; \
         this account can no longer snapshot"
    )]
    SnapshotHistoryTooLong { units: usize },
    #[error(
        "the value was paid to this wallet at height {acquisition_height}, and this wallet made more than \
         {OWN_UNITS_KEPT} bundles since: no payee would accept the history it would need to pay it on"
    )]
    AcquiredTooLongAgo { acquisition_height: u64 },
    #[error("the snapshot's receipt commits another list than the one this wallet claimed")]
    SnapshotReceiptMismatch,
    #[error("cannot build the snapshot's list: {0}")]
    Holdings(#[from] HoldingsError),
    #[error(transparent)]
    Verify(#[from] VerifyError),
}
