//! A sender's bundle: the transfers it makes in one block (`BundleSidecar`), and the signed
//! header that commits to them (`BundleEnvelope`). Together they are a `Submission`.
//!
//! Rules checked by [`Submission::verify`] (mempool and block validation share them):
//! 1. envelope version is [`BUNDLE_VERSION`] and `chain_id` is this chain's;
//! 2. a plain bundle (no `holdings_root`, no evidence): the sidecar has 1..=128 txs, each with 1..=64 ranges, sorted, non-overlapping and
//!    non-adjacent (adjacent ranges must be merged), `sender == sidecar.sender`,
//!    `local_index` equal to its position, extra data ≤ 256 bytes, `recipient != sender`; no
//!    two txs touch the same coin; the encoded sidecar is ≤ 32 KiB. A snapshot bundle
//!    (`holdings_root` set, docs/bounded-witnesses.md): no txs, and snapshot evidence of at most
//!    [`MAX_SNAPSHOT_EVIDENCE_BYTES`] beside it (the evidence itself is checked against the
//!    chain by `snapshot::check_snapshot`, not here);
//! 3. `bundle_hash` and `claim_set_hash` equal the values recomputed from the sidecar;
//! 4. the signature is low-s and recovers to `sidecar.sender`.
//!
//! Invariant: a `VerifiedSubmission` exists only for a submission that passed all four.
//!
//! Why a self-transfer is refused (rule 2): a value's witness lists every bundle of its owner
//! since it acquired the value, and the conflict scan (witness.rs rule 5) treats any older
//! bundle that touches the value as a double spend. A payment to oneself is such a bundle, so
//! once it were final every later package spending those coins would fail verification and the
//! coins would be lost. Refusing it at bundle check — in admission and in block validation, so
//! no finalized block can hold one — keeps the conflict scan sound and never puts coins at risk.

use crate::address::Address;
use crate::codec::encoded_len;
use crate::hash::{Hash32, hash_object, tag};
use crate::signature::{RecoverableSignature, SignatureError, SigningKey};
use crate::snapshot::{MAX_SNAPSHOT_EVIDENCE_BYTES, SnapshotEvidence};
use crate::value::{ValueRange, claim_set, claim_set_hash};
use borsh::{BorshDeserialize, BorshSerialize};
use thiserror::Error;

/// Envelope version of EZchain V2 bundles. 3: the envelope signs an optional holdings root
/// (snapshot bundles).
pub const BUNDLE_VERSION: u16 = 3;
pub const MAX_SIDECAR_BYTES: usize = 32 * 1024;
pub const MAX_TXS_PER_BUNDLE: usize = 128;
pub const MAX_RANGES_PER_TX: usize = 64;
pub const MAX_EXTRA_DATA_BYTES: usize = 256;
/// Largest encoded submission a node decodes: a full sidecar or a snapshot's evidence, plus the
/// envelope.
pub const MAX_SUBMISSION_BYTES: usize = MAX_SNAPSHOT_EVIDENCE_BYTES + MAX_SIDECAR_BYTES + 1024;

/// One transfer inside a bundle. Not signed on its own: the envelope signs the whole sidecar.
#[derive(Clone, Debug, PartialEq, Eq, Hash, BorshSerialize, BorshDeserialize)]
pub struct OffChainTx {
    pub sender: Address,
    pub recipient: Address,
    pub values: Vec<ValueRange>,
    pub local_index: u32,
    pub tx_time: u64,
    pub extra_data: Vec<u8>,
}

impl OffChainTx {
    /// The range of this tx that contains `value`, if any.
    pub fn covering_range(&self, value: &ValueRange) -> Option<&ValueRange> {
        self.values.iter().find(|range| range.contains(value))
    }

    pub fn touches(&self, value: &ValueRange) -> bool {
        self.values.iter().any(|range| range.intersects(value))
    }
}

/// The body of a submission: every transfer a sender makes in one block.
#[derive(Clone, Debug, PartialEq, Eq, Hash, BorshSerialize, BorshDeserialize)]
pub struct BundleSidecar {
    pub sender: Address,
    pub txs: Vec<OffChainTx>,
}

impl BundleSidecar {
    /// `Keccak(BUNDLE_BODY ‖ borsh(sidecar))`.
    pub fn bundle_hash(&self) -> Hash32 {
        hash_object(tag::BUNDLE_BODY, self)
    }

    /// The merged union of every range the bundle moves.
    pub fn claim_set(&self) -> Vec<ValueRange> {
        claim_set(self.txs.iter().flat_map(|tx| tx.values.iter()))
    }

    pub fn claim_set_hash(&self) -> Hash32 {
        claim_set_hash(&self.claim_set())
    }

    /// True when any tx of the bundle moves any coin of `value`.
    pub fn touches(&self, value: &ValueRange) -> bool {
        self.txs.iter().any(|tx| tx.touches(value))
    }

    /// Checks rule 2 of the module doc.
    pub fn check_shape(&self) -> Result<(), BundleError> {
        if self.txs.is_empty() {
            return Err(BundleError::NoTransactions);
        }
        if self.txs.len() > MAX_TXS_PER_BUNDLE {
            return Err(BundleError::TooManyTransactions { count: self.txs.len() });
        }
        let mut all_ranges = Vec::new();
        for (index, tx) in self.txs.iter().enumerate() {
            if tx.sender != self.sender {
                return Err(BundleError::ForeignTransaction { index });
            }
            if tx.recipient == self.sender {
                return Err(BundleError::SelfTransfer { index });
            }
            if tx.local_index as usize != index {
                return Err(BundleError::BadLocalIndex {
                    index,
                    local_index: tx.local_index,
                });
            }
            if tx.values.is_empty() {
                return Err(BundleError::EmptyValueList { index });
            }
            if tx.values.len() > MAX_RANGES_PER_TX {
                return Err(BundleError::TooManyRanges {
                    index,
                    count: tx.values.len(),
                });
            }
            if tx.extra_data.len() > MAX_EXTRA_DATA_BYTES {
                return Err(BundleError::ExtraDataTooLarge { index });
            }
            for pair in tx.values.windows(2) {
                if pair[1].begin() <= pair[0].end() {
                    return Err(BundleError::UnsortedOrOverlappingRanges { index });
                }
                if pair[0].is_adjacent(&pair[1]) {
                    return Err(BundleError::AdjacentRanges { index });
                }
            }
            all_ranges.extend(tx.values.iter().copied());
        }
        all_ranges.sort();
        if all_ranges.windows(2).any(|pair| pair[0].intersects(&pair[1])) {
            return Err(BundleError::DoubleSpendInBundle);
        }
        let size = encoded_len(self);
        if size > MAX_SIDECAR_BYTES {
            return Err(BundleError::SidecarTooLarge { size });
        }
        Ok(())
    }
}

/// The fields the sender signs.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize)]
struct EnvelopeSigningFields {
    version: u16,
    chain_id: u64,
    seq: u64,
    expiry_height: u64,
    fee: u64,
    anti_spam_nonce: u64,
    bundle_hash: Hash32,
    claim_set_hash: Hash32,
    holdings_root: Option<Hash32>,
}

/// The signed header of a bundle.
#[derive(Clone, Debug, PartialEq, Eq, Hash, BorshSerialize, BorshDeserialize)]
pub struct BundleEnvelope {
    pub version: u16,
    pub chain_id: u64,
    /// The sender's confirmed seq + 1.
    pub seq: u64,
    /// Last height at which the bundle may be included.
    pub expiry_height: u64,
    /// Priority bid; only raises a pending bundle's rank (fee bump), never moves value.
    pub fee: u64,
    pub anti_spam_nonce: u64,
    pub bundle_hash: Hash32,
    pub claim_set_hash: Hash32,
    /// Set only on a snapshot bundle: the root of the holdings list it asks the leaf to commit.
    pub holdings_root: Option<Hash32>,
    pub signature: RecoverableSignature,
}

impl BundleEnvelope {
    pub fn sighash(&self) -> Hash32 {
        hash_object(
            tag::BUNDLE_SIGHASH,
            &EnvelopeSigningFields {
                version: self.version,
                chain_id: self.chain_id,
                seq: self.seq,
                expiry_height: self.expiry_height,
                fee: self.fee,
                anti_spam_nonce: self.anti_spam_nonce,
                bundle_hash: self.bundle_hash,
                claim_set_hash: self.claim_set_hash,
                holdings_root: self.holdings_root,
            },
        )
    }

    /// Hash of the whole envelope including its signature.
    pub fn envelope_hash(&self) -> Hash32 {
        hash_object(tag::ENVELOPE, self)
    }
}

/// What an account node sends to a consensus node.
#[derive(Clone, Debug, PartialEq, Eq, Hash, BorshSerialize, BorshDeserialize)]
pub struct Submission {
    pub envelope: BundleEnvelope,
    pub sidecar: BundleSidecar,
    /// A snapshot bundle's evidence (unsigned: it only proves the signed root).
    pub evidence: Option<SnapshotEvidence>,
}

/// Parameters a sender chooses for one bundle.
#[derive(Clone, Debug)]
pub struct EnvelopeParams {
    pub chain_id: u64,
    pub seq: u64,
    pub expiry_height: u64,
    pub fee: u64,
    pub anti_spam_nonce: u64,
}

impl Submission {
    /// Builds and signs a submission for `sidecar` (the signer must be the sidecar's sender).
    pub fn sign(key: &SigningKey, sidecar: BundleSidecar, params: &EnvelopeParams) -> Submission {
        Self::sign_with(key, sidecar, None, None, params)
    }

    /// Builds and signs a snapshot bundle of `key`'s account claiming the list whose root is
    /// `holdings_root`, proven by `evidence`.
    pub fn sign_snapshot(
        key: &SigningKey,
        holdings_root: Hash32,
        evidence: SnapshotEvidence,
        params: &EnvelopeParams,
    ) -> Submission {
        let sidecar = BundleSidecar {
            sender: key.address(),
            txs: Vec::new(),
        };
        Self::sign_with(key, sidecar, Some(holdings_root), Some(evidence), params)
    }

    fn sign_with(
        key: &SigningKey,
        sidecar: BundleSidecar,
        holdings_root: Option<Hash32>,
        evidence: Option<SnapshotEvidence>,
        params: &EnvelopeParams,
    ) -> Submission {
        let mut envelope = BundleEnvelope {
            version: BUNDLE_VERSION,
            chain_id: params.chain_id,
            seq: params.seq,
            expiry_height: params.expiry_height,
            fee: params.fee,
            anti_spam_nonce: params.anti_spam_nonce,
            bundle_hash: sidecar.bundle_hash(),
            claim_set_hash: sidecar.claim_set_hash(),
            holdings_root,
            signature: RecoverableSignature([0u8; 65]),
        };
        envelope.signature = key.sign(&envelope.sighash());
        Submission {
            envelope,
            sidecar,
            evidence,
        }
    }

    /// True for a snapshot bundle (its envelope claims a holdings root).
    pub fn is_snapshot(&self) -> bool {
        self.envelope.holdings_root.is_some()
    }

    /// Checks rules 1–4 of the module doc.
    pub fn verify(&self, chain_id: u64) -> Result<VerifiedSubmission, BundleError> {
        let envelope = &self.envelope;
        if envelope.version != BUNDLE_VERSION {
            return Err(BundleError::UnsupportedVersion {
                version: envelope.version,
            });
        }
        if envelope.chain_id != chain_id {
            return Err(BundleError::WrongChain {
                expected: chain_id,
                got: envelope.chain_id,
            });
        }
        if envelope.seq == 0 {
            return Err(BundleError::ZeroSeq);
        }
        match (&envelope.holdings_root, &self.evidence) {
            (None, None) => self.sidecar.check_shape()?,
            (Some(_), Some(evidence)) => {
                if !self.sidecar.txs.is_empty() {
                    return Err(BundleError::SnapshotMovesValue);
                }
                let size = encoded_len(evidence);
                if size > MAX_SNAPSHOT_EVIDENCE_BYTES {
                    return Err(BundleError::EvidenceTooLarge { size });
                }
            }
            (Some(_), None) => return Err(BundleError::SnapshotWithoutEvidence),
            (None, Some(_)) => return Err(BundleError::EvidenceWithoutSnapshot),
        }
        let bundle_hash = self.sidecar.bundle_hash();
        if bundle_hash != envelope.bundle_hash {
            return Err(BundleError::BundleHashMismatch);
        }
        if self.sidecar.claim_set_hash() != envelope.claim_set_hash {
            return Err(BundleError::ClaimSetHashMismatch);
        }
        let signer = envelope.signature.recover_signer(&envelope.sighash())?;
        if signer != self.sidecar.sender {
            return Err(BundleError::SignerMismatch {
                signer,
                sender: self.sidecar.sender,
            });
        }
        Ok(VerifiedSubmission {
            sender: signer,
            addr_key: signer.addr_key(),
            bundle_hash,
            chain_id,
            submission: self.clone(),
            snapshot_verdict: None,
        })
    }
}

/// A submission whose shape, hashes and signature have been checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifiedSubmission {
    // Private: only `Submission::verify` makes one, so holding one proves the checks ran — a
    // node that verified a bundle at admission reuses this instead of recovering it again.
    sender: Address,
    addr_key: Hash32,
    bundle_hash: Hash32,
    chain_id: u64,
    submission: Submission,
    /// For a snapshot bundle that passed the snapshot rule (set only by
    /// `ChainState::check_snapshot_once`): the list length it commits, and the hash of the
    /// sender's leaf it was checked against. Reused in a block only on that same leaf.
    snapshot_verdict: Option<SnapshotVerdict>,
}

/// What the snapshot rule concluded for one snapshot bundle, and on which leaf.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct SnapshotVerdict {
    pub(crate) leaf_hash: Option<Hash32>,
    pub(crate) count: u32,
}

impl VerifiedSubmission {
    pub(crate) fn with_snapshot_verdict(mut self, verdict: SnapshotVerdict) -> Self {
        self.snapshot_verdict = Some(verdict);
        self
    }

    /// The snapshot rule's verdict, if it was reached on a leaf hashing to `leaf_hash`.
    pub(crate) fn snapshot_verdict_on(&self, leaf_hash: Option<Hash32>) -> Option<u32> {
        self.snapshot_verdict
            .filter(|verdict| verdict.leaf_hash == leaf_hash)
            .map(|verdict| verdict.count)
    }

    /// The recovered signer (equal to the sidecar's sender).
    pub fn sender(&self) -> Address {
        self.sender
    }

    pub fn addr_key(&self) -> Hash32 {
        self.addr_key
    }

    pub fn bundle_hash(&self) -> Hash32 {
        self.bundle_hash
    }

    /// The chain the signature was checked for.
    pub fn chain_id(&self) -> u64 {
        self.chain_id
    }

    pub fn submission(&self) -> &Submission {
        &self.submission
    }

    pub fn into_submission(self) -> Submission {
        self.submission
    }
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum BundleError {
    #[error("envelope version {version} is not supported (expected {BUNDLE_VERSION})")]
    UnsupportedVersion { version: u16 },
    #[error("bundle is for chain {got}, this chain is {expected}")]
    WrongChain { expected: u64, got: u64 },
    #[error("seq must start at 1")]
    ZeroSeq,
    #[error("bundle has no transactions")]
    NoTransactions,
    #[error("bundle has {count} transactions, the limit is {MAX_TXS_PER_BUNDLE}")]
    TooManyTransactions { count: usize },
    #[error("transaction {index} has a different sender than the bundle")]
    ForeignTransaction { index: usize },
    #[error("transaction {index} pays its own sender; a payment to yourself is refused (it would lock the coins)")]
    SelfTransfer { index: usize },
    #[error("transaction {index} has local_index {local_index}")]
    BadLocalIndex { index: usize, local_index: u32 },
    #[error("transaction {index} moves no value")]
    EmptyValueList { index: usize },
    #[error("transaction {index} has {count} ranges, the limit is {MAX_RANGES_PER_TX}")]
    TooManyRanges { index: usize, count: usize },
    #[error("transaction {index} has more than {MAX_EXTRA_DATA_BYTES} bytes of extra data")]
    ExtraDataTooLarge { index: usize },
    #[error("transaction {index} has ranges out of order or overlapping")]
    UnsortedOrOverlappingRanges { index: usize },
    #[error("transaction {index} has adjacent ranges; merge them into one range")]
    AdjacentRanges { index: usize },
    #[error("two transactions of the bundle move the same coin")]
    DoubleSpendInBundle,
    #[error("sidecar is {size} bytes, the limit is {MAX_SIDECAR_BYTES}")]
    SidecarTooLarge { size: usize },
    #[error("a snapshot bundle moves no value: its sidecar must hold no transactions")]
    SnapshotMovesValue,
    #[error("a snapshot bundle needs its evidence beside it")]
    SnapshotWithoutEvidence,
    #[error("only a snapshot bundle carries snapshot evidence")]
    EvidenceWithoutSnapshot,
    #[error("snapshot evidence is {size} bytes, the limit is {MAX_SNAPSHOT_EVIDENCE_BYTES}; snapshot sooner")]
    EvidenceTooLarge { size: usize },
    #[error("envelope bundle_hash does not match the sidecar")]
    BundleHashMismatch,
    #[error("envelope claim_set_hash does not match the sidecar")]
    ClaimSetHashMismatch,
    #[error("bad signature: {0}")]
    Signature(#[from] SignatureError),
    #[error("signature is by {signer}, but the bundle's sender is {sender}")]
    SignerMismatch { signer: Address, sender: Address },
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(seed: u8) -> SigningKey {
        SigningKey::from_bytes(&[seed; 32]).unwrap()
    }

    fn r(b: u64, e: u64) -> ValueRange {
        ValueRange::new(b, e).unwrap()
    }

    fn tx(sender: Address, index: u32, values: Vec<ValueRange>) -> OffChainTx {
        OffChainTx {
            sender,
            recipient: key(99).address(),
            values,
            local_index: index,
            tx_time: 1,
            extra_data: vec![],
        }
    }

    fn params() -> EnvelopeParams {
        EnvelopeParams {
            chain_id: 7,
            seq: 1,
            expiry_height: 100,
            fee: 0,
            anti_spam_nonce: 1,
        }
    }

    fn signed(values: Vec<Vec<ValueRange>>) -> Submission {
        let k = key(1);
        let txs = values
            .into_iter()
            .enumerate()
            .map(|(i, v)| tx(k.address(), i as u32, v))
            .collect();
        Submission::sign(
            &k,
            BundleSidecar {
                sender: k.address(),
                txs,
            },
            &params(),
        )
    }

    #[test]
    fn honest_submission_verifies() {
        let sub = signed(vec![vec![r(0, 9), r(20, 29)], vec![r(40, 49)]]);
        let verified = sub.verify(7).unwrap();
        assert_eq!(verified.sender(), key(1).address());
    }

    #[test]
    fn forged_signature_is_rejected() {
        let mut sub = signed(vec![vec![r(0, 9)]]);
        sub.envelope.signature = key(2).sign(&sub.envelope.sighash());
        assert!(matches!(sub.verify(7), Err(BundleError::SignerMismatch { .. })));
    }

    #[test]
    fn high_s_signature_is_rejected() {
        let mut sub = signed(vec![vec![r(0, 9)]]);
        sub.envelope.signature = sub.envelope.signature.high_s_twin();
        assert_eq!(sub.verify(7), Err(BundleError::Signature(SignatureError::HighS)));
    }

    #[test]
    fn shape_rules() {
        assert_eq!(
            signed(vec![vec![r(0, 9), r(10, 19)]]).verify(7),
            Err(BundleError::AdjacentRanges { index: 0 })
        );
        assert_eq!(
            signed(vec![vec![r(10, 19), r(0, 5)]]).verify(7),
            Err(BundleError::UnsortedOrOverlappingRanges { index: 0 })
        );
        assert_eq!(
            signed(vec![vec![r(0, 9)], vec![r(5, 6)]]).verify(7),
            Err(BundleError::DoubleSpendInBundle)
        );
        assert_eq!(
            signed(vec![vec![]]).verify(7),
            Err(BundleError::EmptyValueList { index: 0 })
        );
        assert_eq!(signed(vec![]).verify(7), Err(BundleError::NoTransactions));
        let many: Vec<Vec<ValueRange>> = (0..129).map(|i| vec![r(i * 10, i * 10)]).collect();
        assert!(matches!(
            signed(many).verify(7),
            Err(BundleError::TooManyTransactions { .. })
        ));
        let ranges: Vec<ValueRange> = (0..65).map(|i| r(i * 10, i * 10)).collect();
        assert!(matches!(
            signed(vec![ranges]).verify(7),
            Err(BundleError::TooManyRanges { .. })
        ));
        assert!(matches!(
            signed(vec![vec![r(0, 1)]]).verify(8),
            Err(BundleError::WrongChain { .. })
        ));
    }

    #[test]
    fn a_payment_to_the_sender_itself_is_refused() {
        let k = key(1);
        let mut to_self = tx(k.address(), 0, vec![r(0, 9)]);
        to_self.recipient = k.address();
        let sub = Submission::sign(
            &k,
            BundleSidecar {
                sender: k.address(),
                txs: vec![
                    tx(k.address(), 0, vec![r(20, 29)]),
                    OffChainTx {
                        local_index: 1,
                        ..to_self
                    },
                ],
            },
            &params(),
        );
        assert_eq!(sub.verify(7), Err(BundleError::SelfTransfer { index: 1 }));
    }

    #[test]
    fn oversized_sidecar_is_rejected() {
        let k = key(1);
        let txs = (0..128u32)
            .map(|i| {
                let mut t = tx(k.address(), i, vec![r(u64::from(i) * 10, u64::from(i) * 10)]);
                t.extra_data = vec![0u8; 256];
                t
            })
            .collect();
        let sub = Submission::sign(
            &k,
            BundleSidecar {
                sender: k.address(),
                txs,
            },
            &params(),
        );
        assert!(matches!(sub.verify(7), Err(BundleError::SidecarTooLarge { .. })));
    }

    #[test]
    fn tampered_body_breaks_the_hash() {
        let mut sub = signed(vec![vec![r(0, 9)]]);
        sub.sidecar.txs[0].values = vec![r(0, 10)];
        assert_eq!(sub.verify(7), Err(BundleError::BundleHashMismatch));
    }
}
