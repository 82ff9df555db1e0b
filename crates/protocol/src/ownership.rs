//! Wallet-side pure rules: the records one owner keeps, and how they change when it sends,
//! receives a receipt, and accepts a package (upstream-protocol.md §7, worked-example R3–R7).
//!
//! 1. **Sending.** Paid ranges are carved out of spendable records; every piece (paid or change)
//!    keeps its parent's witness, narrowed to the piece, until the receipt arrives. One pending
//!    bundle at a time.
//! 2. **Own receipt at height h.** The unit is prepended to every piece of the bundle and to
//!    every other live record acquired at or before h. Paid pieces are archived and get an
//!    exact-range checkpoint; change becomes spendable.
//! 3. **Exporting.** Each paid piece becomes one package. If a node of its witness belongs to the
//!    recipient with exactly the same range, the outermost such node is trimmed to a checkpoint
//!    anchor: the recipient holds that history itself.
//! 4. **Accepting.** A verified package becomes a spendable record whose chain holds the owner's
//!    own units at heights ≥ `hA` (inclusive boundary, R4), anchored on the payer's witness with
//!    checkpoints rehydrated.
//!
//! Invariant: a record's chain always holds every own unit at or after its acquisition height,
//! so the witnesses this owner exports satisfy the tail rule.

use crate::address::Address;
use crate::bundle::{BundleError, BundleSidecar, EnvelopeParams, OffChainTx, Submission};
use crate::codec::encoded_len;
use crate::genesis::Genesis;
use crate::hash::Hash32;
use crate::receipt::{ConfirmedBundleUnit, Receipt};
use crate::signature::SigningKey;
use crate::value::{ValueRange, claim_set, total_len};
use crate::witness::{
    Checkpoint, CheckpointAnchor, FinalizedHeaders, GenesisAnchor, OwnCheckpoints, PriorWitnessLink, TransferPackage,
    Verifier, VerifyBudget, VerifyError, WitnessAnchor, WitnessV2,
};
use borsh::{BorshDeserialize, BorshSerialize};
use std::collections::HashSet;
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

    /// Carves the paid ranges out of spendable records, builds and signs the bundle, and marks
    /// every touched piece pending. `payments` lists, per tx, a recipient and the ranges it gets.
    pub fn prepare_bundle(
        &mut self,
        key: &SigningKey,
        payments: &[(Address, Vec<ValueRange>)],
        params: &EnvelopeParams,
        tx_time: u64,
    ) -> Result<Submission, OwnershipError> {
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
        Ok(paid
            .into_iter()
            .filter_map(|record| {
                let target_tx = unit
                    .sidecar
                    .txs
                    .iter()
                    .find(|tx| tx.covering_range(&record.value).is_some())?
                    .clone();
                let witness = trim_for_recipient(record.witness, &target_tx.recipient);
                Some(TransferPackage {
                    target_tx,
                    target_value: record.value,
                    witness,
                })
            })
            .collect())
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

/// Replaces the anchor of the outermost node owned by `recipient` for exactly the paid range
/// with a checkpoint anchor (rule 3). The payer's own node is never trimmed.
pub fn trim_for_recipient(mut witness: WitnessV2, recipient: &Address) -> WitnessV2 {
    let target = witness.value;
    let mut node = &mut witness;
    let mut depth = 0;
    loop {
        let owned = depth > 0 && node.current_owner == *recipient && node.value == target;
        if owned && let Some(newest) = node.chain.first() {
            let checkpoint = Checkpoint {
                value: target,
                owner: *recipient,
                unit: newest.bundle_ref(),
            };
            node.anchor = WitnessAnchor::Checkpoint(CheckpointAnchor { checkpoint });
            break;
        }
        match &mut node.anchor {
            WitnessAnchor::PriorWitness(link) => node = &mut link.prior_witness,
            _ => break,
        }
        depth += 1;
    }
    witness
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
    #[error(transparent)]
    Verify(#[from] VerifyError),
}
