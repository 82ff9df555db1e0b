//! Witnesses and recipient verification (upstream-protocol.md §6.2, DESIGN §4).
//!
//! A payer hands the payee a [`TransferPackage`]: the target tx, the value `v` it pays, and a
//! [`WitnessV2`] — the payer's confirmed bundles since it acquired `v`, anchored to how it
//! acquired it: from genesis, from the previous owner (recursively), or from a checkpoint the
//! payee itself made. The payee checks, for every witness node `W` with target tx `t` and
//! expected recipient `r` (first `r` = the payee, `t` = the package's tx):
//!
//! 1. **Shape.** `t.sender = W.owner`, `t.recipient = r`, `t` covers `v`, `W.value ⊇ v`, the chain
//!    is non-empty, `t` occurs exactly once in the newest unit's sidecar, and every unit's
//!    sidecar is sent by `W.owner`.
//! 2. **Finalized headers.** Every receipt's `(height, header hash, state root)` equals a
//!    finalized header the verifier holds (its own, from consensus) — never one from the package.
//! 3. **Inclusion.** The leaf rebuilt from each unit (claim set recomputed) is proven under the
//!    header's state root.
//! 4. **Continuity.** `chain[i].prev_ref = ref(chain[i+1])`: no hidden bundle between two units.
//! 5. **Conflict scan.** In the newest unit only `t` may touch `v`; in older units nothing may.
//! 6. **Tail rule.** Under a snapshot anchor the oldest unit is the snapshot (rule 7). Under a
//!    genesis anchor the oldest unit has `prev_ref = ∅` and seq 1 (the
//!    genesis owner shows every bundle it ever sent). Under a prior-witness link with
//!    acquisition height `hA` (height of the prior node's newest unit) every unit is at height
//!    ≥ `hA` and the oldest unit's `prev_ref` is `∅` or below `hA`.
//! 7. **Anchors.** Genesis: `first_owner = W.owner`, the range contains `v`, the genesis hash is
//!    the verifier's and `(owner, range)` is an allocation of the verifier's own genesis.
//!    Prior link: recurse with `(P, v, r = W.owner, t = acquire_tx)`. Checkpoint: the checkpoint
//!    is the verifier's own, for exactly `v`, and the verifier holds the archived witness it
//!    names, whose chain equals `W`'s; the node is then rehydrated from that archived witness.
//!    Snapshot (docs/bounded-witnesses.md §2.3): the oldest unit is a snapshot bundle (no txs,
//!    its receipt's holdings commitment names the unit itself), `held` is proven under that
//!    commitment and contains `W.value` and `v`. The node is complete: the validators that
//!    finalized the snapshot checked how `W.owner` came to hold `held`.
//! 8. **Budgets.** Total units, nesting depth and encoded size are capped.
//!
//! Invariant: with these checks, the chain of every owner since it acquired `v` is complete and
//! contains no spend of any part of `v` except the hand-over to the next owner, so at most one
//! custody chain of a coin verifies.

use crate::address::Address;
use crate::block::{BundleRef, HeaderLite};
use crate::bundle::OffChainTx;
use crate::codec::encoded_len;
use crate::genesis::Genesis;
use crate::hash::{Hash32, hash_object, tag};
use crate::holdings::HoldingsProof;
use crate::receipt::ConfirmedBundleUnit;
use crate::value::ValueRange;
use borsh::{BorshDeserialize, BorshSerialize};
use std::collections::BTreeMap;
use std::io::{Error as IoError, ErrorKind, Read};
use thiserror::Error;

/// Nesting the decoder accepts: the verifier's default depth budget, so nothing is decoded that
/// could never verify (and an unoptimised build's 2 MiB thread stack holds both recursions).
pub const MAX_WITNESS_NESTING: usize = 512;

/// An owner's statement "I held exactly `value` up to and including my bundle `unit`",
/// created when a verified value leaves the owner. Trusted only by its own owner.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, BorshSerialize, BorshDeserialize)]
pub struct Checkpoint {
    pub value: ValueRange,
    pub owner: Address,
    pub unit: BundleRef,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, BorshSerialize, BorshDeserialize)]
pub struct GenesisAnchor {
    pub genesis_hash: Hash32,
    pub first_owner: Address,
    pub range: ValueRange,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, BorshSerialize, BorshDeserialize)]
pub struct CheckpointAnchor {
    pub checkpoint: Checkpoint,
}

/// "The owner's latest snapshot before these units committed `held`" (bounded-witnesses §2.3).
#[derive(Clone, Debug, PartialEq, Eq, Hash, BorshSerialize, BorshDeserialize)]
pub struct SnapshotAnchor {
    pub held: ValueRange,
    pub proof: HoldingsProof,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, BorshSerialize)]
pub struct PriorWitnessLink {
    pub acquire_tx: OffChainTx,
    pub prior_witness: Box<WitnessV2>,
}

/// How the current owner came to hold the value.
#[derive(Clone, Debug, PartialEq, Eq, Hash, BorshSerialize)]
pub enum WitnessAnchor {
    Genesis(GenesisAnchor),
    Checkpoint(CheckpointAnchor),
    PriorWitness(PriorWitnessLink),
    Snapshot(SnapshotAnchor),
}

/// The proof that `current_owner` holds `value`: its confirmed bundles since acquiring it,
/// newest first, and the anchor of the acquisition.
#[derive(Clone, Debug, PartialEq, Eq, Hash, BorshSerialize)]
pub struct WitnessV2 {
    pub value: ValueRange,
    pub current_owner: Address,
    pub chain: Vec<ConfirmedBundleUnit>,
    pub anchor: WitnessAnchor,
}

impl BorshDeserialize for WitnessV2 {
    fn deserialize_reader<R: Read>(reader: &mut R) -> std::io::Result<Self> {
        Self::read_nested(reader, 0)
    }
}

impl WitnessV2 {
    /// Decodes with an explicit nesting counter so hostile input cannot overflow the stack.
    fn read_nested<R: Read>(reader: &mut R, depth: usize) -> std::io::Result<Self> {
        if depth > MAX_WITNESS_NESTING {
            return Err(IoError::new(ErrorKind::InvalidData, "witness nesting too deep"));
        }
        let value = ValueRange::deserialize_reader(reader)?;
        let current_owner = Address::deserialize_reader(reader)?;
        let chain = Vec::<ConfirmedBundleUnit>::deserialize_reader(reader)?;
        let anchor = match u8::deserialize_reader(reader)? {
            0 => WitnessAnchor::Genesis(GenesisAnchor::deserialize_reader(reader)?),
            1 => WitnessAnchor::Checkpoint(CheckpointAnchor::deserialize_reader(reader)?),
            2 => {
                let acquire_tx = OffChainTx::deserialize_reader(reader)?;
                let prior_witness = Box::new(Self::read_nested(reader, depth + 1)?);
                WitnessAnchor::PriorWitness(PriorWitnessLink {
                    acquire_tx,
                    prior_witness,
                })
            }
            3 => WitnessAnchor::Snapshot(SnapshotAnchor::deserialize_reader(reader)?),
            other => {
                return Err(IoError::new(
                    ErrorKind::InvalidData,
                    format!("unknown witness anchor {other}"),
                ));
            }
        };
        Ok(WitnessV2 {
            value,
            current_owner,
            chain,
            anchor,
        })
    }

    /// Total units in this witness and every prior witness.
    pub fn total_units(&self) -> usize {
        self.nodes().map(|w| w.chain.len()).sum()
    }

    /// This node and every prior node, newest owner first.
    pub fn nodes(&self) -> impl Iterator<Item = &WitnessV2> {
        std::iter::successors(Some(self), |w| match &w.anchor {
            WitnessAnchor::PriorWitness(link) => Some(link.prior_witness.as_ref()),
            _ => None,
        })
    }

    /// Depth of prior-witness links below this node.
    pub fn depth(&self) -> usize {
        self.nodes().count() - 1
    }
}

/// What a payer sends a payee for one paid range.
#[derive(Clone, Debug, PartialEq, Eq, Hash, BorshSerialize, BorshDeserialize)]
pub struct TransferPackage {
    pub target_tx: OffChainTx,
    pub target_value: ValueRange,
    pub witness: WitnessV2,
}

impl TransferPackage {
    /// Identity of a package, for deduplicating deliveries.
    pub fn package_hash(&self) -> Hash32 {
        hash_object(tag::TRANSFER_PACKAGE, self)
    }
}

/// The finalized headers a verifier holds (obtained from consensus with verified certificates).
pub trait FinalizedHeaders {
    fn finalized_header(&self, height: u64) -> Option<HeaderLite>;
}

impl FinalizedHeaders for BTreeMap<u64, HeaderLite> {
    fn finalized_header(&self, height: u64) -> Option<HeaderLite> {
        self.get(&height).copied()
    }
}

/// The verifier's own archived witnesses, looked up by the checkpoint that names them.
pub trait OwnCheckpoints {
    fn archived_witness(&self, checkpoint: &Checkpoint) -> Option<&WitnessV2>;
}

/// For verifiers that hold no checkpoints (a fresh account, a test client).
pub struct NoCheckpoints;

impl OwnCheckpoints for NoCheckpoints {
    fn archived_witness(&self, _: &Checkpoint) -> Option<&WitnessV2> {
        None
    }
}

/// Caps that keep verification bounded (US-001: oversized witnesses are rejected, clearly).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VerifyBudget {
    pub max_units: usize,
    pub max_depth: usize,
    pub max_encoded_bytes: usize,
}

impl Default for VerifyBudget {
    fn default() -> Self {
        VerifyBudget {
            max_units: 4096,
            max_depth: MAX_WITNESS_NESTING,
            max_encoded_bytes: 16 * 1024 * 1024,
        }
    }
}

/// A package that passed verification.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AcceptedTransfer {
    pub value: ValueRange,
    pub target_tx: OffChainTx,
    /// Height of the block that carried the hand-over (the new owner's `hA`).
    pub acquisition_height: u64,
    /// The payer's witness with every checkpoint anchor replaced by the verifier's own history.
    pub witness: WitnessV2,
    pub units_checked: usize,
}

/// Everything a recipient verifies against: its own genesis, finalized headers and archive.
pub struct Verifier<'a> {
    genesis: &'a Genesis,
    genesis_hash: Hash32,
    headers: &'a dyn FinalizedHeaders,
    checkpoints: &'a dyn OwnCheckpoints,
    me: Address,
    budget: VerifyBudget,
}

impl<'a> Verifier<'a> {
    pub fn new(
        genesis: &'a Genesis,
        headers: &'a dyn FinalizedHeaders,
        checkpoints: &'a dyn OwnCheckpoints,
        me: Address,
    ) -> Self {
        Verifier {
            genesis,
            genesis_hash: genesis.hash(),
            headers,
            checkpoints,
            me,
            budget: VerifyBudget::default(),
        }
    }

    pub fn with_budget(mut self, budget: VerifyBudget) -> Self {
        self.budget = budget;
        self
    }

    /// Verifies a package addressed to this verifier.
    pub fn verify_package(&self, package: &TransferPackage) -> Result<AcceptedTransfer, VerifyError> {
        let size = encoded_len(package);
        if size > self.budget.max_encoded_bytes {
            return Err(VerifyError::PackageTooLarge {
                size,
                max: self.budget.max_encoded_bytes,
            });
        }
        let mut units_checked = 0;
        let witness = self.verify_node(
            &package.witness,
            &package.target_value,
            &self.me,
            &package.target_tx,
            0,
            &mut units_checked,
        )?;
        let acquisition_height = package.witness.chain[0].height();
        Ok(AcceptedTransfer {
            value: package.target_value,
            target_tx: package.target_tx.clone(),
            acquisition_height,
            witness,
            units_checked,
        })
    }

    fn verify_node(
        &self,
        node: &WitnessV2,
        value: &ValueRange,
        recipient: &Address,
        target_tx: &OffChainTx,
        depth: usize,
        units_checked: &mut usize,
    ) -> Result<WitnessV2, VerifyError> {
        if depth > self.budget.max_depth {
            return Err(VerifyError::DepthBudgetExceeded {
                max: self.budget.max_depth,
            });
        }
        *units_checked += node.chain.len();
        if *units_checked > self.budget.max_units {
            return Err(VerifyError::UnitBudgetExceeded {
                max: self.budget.max_units,
            });
        }
        let owner = node.current_owner;
        // 1. Shape.
        if target_tx.sender != owner {
            return Err(VerifyError::WrongSender { depth });
        }
        if target_tx.recipient != *recipient {
            return Err(VerifyError::WrongRecipient { depth });
        }
        if target_tx.covering_range(value).is_none() {
            return Err(VerifyError::TargetNotCovered { depth });
        }
        if !node.value.contains(value) {
            return Err(VerifyError::WitnessValueMismatch { depth });
        }
        let newest = node.chain.first().ok_or(VerifyError::EmptyChain { depth })?;
        let occurrences = newest.sidecar.txs.iter().filter(|tx| *tx == target_tx).count();
        if occurrences != 1 {
            return Err(VerifyError::TargetTxNotInNewestUnit { depth, occurrences });
        }
        if node.chain.iter().any(|unit| unit.sidecar.sender != owner) {
            return Err(VerifyError::ForeignUnit { depth });
        }
        let refs: Vec<BundleRef> = node.chain.iter().map(ConfirmedBundleUnit::bundle_ref).collect();
        for (index, unit) in node.chain.iter().enumerate() {
            let header = &unit.receipt.header;
            // 2. Finalized headers.
            match self.headers.finalized_header(header.height) {
                None => return Err(VerifyError::UnknownHeader { height: header.height }),
                Some(known) if known != *header => return Err(VerifyError::HeaderMismatch { height: header.height }),
                Some(_) => {}
            }
            // 3. Inclusion of the rebuilt leaf.
            if !unit.proves_inclusion() {
                return Err(VerifyError::InclusionProofInvalid { height: header.height });
            }
            // 4. Continuity.
            if let Some(older) = refs.get(index + 1)
                && unit.receipt.prev_ref != Some(*older)
            {
                return Err(VerifyError::PrevRefDiscontinuity { height: header.height });
            }
            // 5. Conflict scan.
            let conflict = if index == 0 {
                unit.sidecar.txs.iter().any(|tx| tx != target_tx && tx.touches(value))
            } else {
                unit.sidecar.touches(value)
            };
            if conflict {
                return Err(VerifyError::ConflictingSpend {
                    height: header.height,
                    bundle_hash: refs[index].bundle_hash,
                });
            }
        }
        let oldest = node.chain.last().expect("chain is non-empty (checked above)");
        let anchor = match &node.anchor {
            WitnessAnchor::Genesis(anchor) => {
                // 6. Tail rule for genesis owners.
                if oldest.receipt.prev_ref.is_some() || oldest.receipt.seq != 1 {
                    return Err(VerifyError::TailRuleViolation { depth });
                }
                // 7. Genesis table from the verifier's own genesis (F3).
                if anchor.genesis_hash != self.genesis_hash {
                    return Err(VerifyError::WrongGenesis);
                }
                if anchor.first_owner != owner || !anchor.range.contains(value) {
                    return Err(VerifyError::GenesisAnchorMismatch { depth });
                }
                if !self.genesis.has_allocation(&owner, &anchor.range) {
                    return Err(VerifyError::UnknownGenesisAllocation {
                        owner,
                        range: anchor.range,
                    });
                }
                node.anchor.clone()
            }
            WitnessAnchor::PriorWitness(link) => {
                let prior = &link.prior_witness;
                let acquisition_height = prior
                    .chain
                    .first()
                    .ok_or(VerifyError::EmptyChain { depth: depth + 1 })?
                    .height();
                // 6. Tail rule across a hand-over (inclusive acquisition boundary).
                if node.chain.iter().any(|unit| unit.height() < acquisition_height) {
                    return Err(VerifyError::UnitBeforeAcquisition { depth });
                }
                if oldest
                    .receipt
                    .prev_ref
                    .is_some_and(|prev| prev.height >= acquisition_height)
                {
                    return Err(VerifyError::TailRuleViolation { depth });
                }
                let rehydrated = self.verify_node(prior, value, &owner, &link.acquire_tx, depth + 1, units_checked)?;
                WitnessAnchor::PriorWitness(PriorWitnessLink {
                    acquire_tx: link.acquire_tx.clone(),
                    prior_witness: Box::new(rehydrated),
                })
            }
            WitnessAnchor::Checkpoint(anchor) => {
                let checkpoint = &anchor.checkpoint;
                if checkpoint.owner != self.me || owner != self.me {
                    return Err(VerifyError::CheckpointNotOwned { depth });
                }
                if checkpoint.value != *value || node.value != *value {
                    return Err(VerifyError::CheckpointRangeMismatch { depth });
                }
                let archived = self
                    .checkpoints
                    .archived_witness(checkpoint)
                    .ok_or(VerifyError::UnknownCheckpoint { depth })?;
                let archived_refs: Vec<BundleRef> =
                    archived.chain.iter().map(ConfirmedBundleUnit::bundle_ref).collect();
                if archived.value != *value || archived_refs != refs || archived_refs.first() != Some(&checkpoint.unit)
                {
                    return Err(VerifyError::CheckpointMismatch { depth });
                }
                archived.anchor.clone()
            }
            WitnessAnchor::Snapshot(anchor) => {
                // 6–7. The oldest unit is the snapshot that committed `held`.
                let commitment = oldest
                    .snapshot_commitment()
                    .ok_or(VerifyError::SnapshotAnchorNotSnapshot { depth })?;
                if !anchor.held.contains(value) || !anchor.held.contains(&node.value) {
                    return Err(VerifyError::SnapshotRangeMismatch { depth });
                }
                if !anchor.proof.verify(&commitment.root, commitment.count, &anchor.held) {
                    return Err(VerifyError::SnapshotProofInvalid { depth });
                }
                node.anchor.clone()
            }
        };
        Ok(WitnessV2 {
            value: node.value,
            current_owner: owner,
            chain: node.chain.clone(),
            anchor,
        })
    }
}

/// Why a transfer package is rejected. Each variant names the rule of the module doc it breaks.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum VerifyError {
    #[error("package is {size} bytes, over the {max}-byte budget; ask the payer to checkpoint or split")]
    PackageTooLarge { size: usize, max: usize },
    #[error("witness nests deeper than the budget of {max}")]
    DepthBudgetExceeded { max: usize },
    #[error("witness has more than the budget of {max} units")]
    UnitBudgetExceeded { max: usize },
    #[error("witness node {depth}: target tx is not sent by the witness owner")]
    WrongSender { depth: usize },
    #[error("witness node {depth}: target tx is addressed to someone else")]
    WrongRecipient { depth: usize },
    #[error("witness node {depth}: target tx does not cover the value")]
    TargetNotCovered { depth: usize },
    #[error("witness node {depth}: the witness is for a value that does not contain the target")]
    WitnessValueMismatch { depth: usize },
    #[error("witness node {depth}: no confirmed bundle shown")]
    EmptyChain { depth: usize },
    #[error("witness node {depth}: target tx occurs {occurrences} times in the newest unit (must be once)")]
    TargetTxNotInNewestUnit { depth: usize, occurrences: usize },
    #[error("witness node {depth}: a unit is not the owner's bundle")]
    ForeignUnit { depth: usize },
    #[error("receipt refers to height {height}, which is not a finalized header known here")]
    UnknownHeader { height: u64 },
    #[error("receipt header at height {height} differs from the finalized header")]
    HeaderMismatch { height: u64 },
    #[error("unit at height {height}: the rebuilt account leaf is not in the state root")]
    InclusionProofInvalid { height: u64 },
    #[error("unit at height {height}: prev_ref does not link to the next unit (a bundle is hidden)")]
    PrevRefDiscontinuity { height: u64 },
    #[error("unit at height {height} ({bundle_hash}) also spends the value: double spend")]
    ConflictingSpend { height: u64, bundle_hash: Hash32 },
    #[error("witness node {depth}: the oldest unit does not reach back to the acquisition (tail rule)")]
    TailRuleViolation { depth: usize },
    #[error("witness node {depth}: a unit predates the owner's acquisition of the value")]
    UnitBeforeAcquisition { depth: usize },
    #[error("genesis anchor names another chain's genesis")]
    WrongGenesis,
    #[error("witness node {depth}: genesis anchor owner or range does not match")]
    GenesisAnchorMismatch { depth: usize },
    #[error("genesis gives no range {range} to {owner}")]
    UnknownGenesisAllocation { owner: Address, range: ValueRange },
    #[error("witness node {depth}: a checkpoint is trusted only by its own owner")]
    CheckpointNotOwned { depth: usize },
    #[error("witness node {depth}: checkpoints apply to exactly the same range only")]
    CheckpointRangeMismatch { depth: usize },
    #[error("witness node {depth}: no archived record matches the checkpoint")]
    UnknownCheckpoint { depth: usize },
    #[error("witness node {depth}: the checkpointed history differs from the archived one")]
    CheckpointMismatch { depth: usize },
    #[error("witness node {depth}: a snapshot anchor's oldest unit is not the snapshot bundle that committed it")]
    SnapshotAnchorNotSnapshot { depth: usize },
    #[error("witness node {depth}: the snapshot's range does not contain the value")]
    SnapshotRangeMismatch { depth: usize },
    #[error("witness node {depth}: the snapshot does not hold that range (bad holdings proof)")]
    SnapshotProofInvalid { depth: usize },
}
