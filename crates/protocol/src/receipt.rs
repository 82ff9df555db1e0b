//! Receipts and confirmed bundle units.
//!
//! A receipt says "at finalized height h, the sender's leaf was rebuilt from this bundle": it
//! carries the header it refers to, the bundle's seq, the leaf's `prev_ref`, and an SMT proof.
//! A `ConfirmedBundleUnit` pairs a receipt with its sidecar; from the pair anyone rebuilds the
//! leaf (`owner = sidecar.sender`, `head_ref = {h, bundle_hash(sidecar), seq}`, `prev_ref`,
//! `claim_set_hash(sidecar)`, `holdings`) and checks it against the header's state root.
//!
//! Invariant: nothing in a receipt is trusted by itself. Its header must match a finalized header
//! the checker holds, and the leaf is always recomputed, never taken from the receipt.

use crate::address::Address;
use crate::block::{AccountLeaf, BundleRef, HeaderLite, HoldingsCommitment};
use crate::bundle::BundleSidecar;
use crate::hash::Hash32;
use crate::smt::SmtProof;
use borsh::{BorshDeserialize, BorshSerialize};

#[derive(Clone, Debug, PartialEq, Eq, Hash, BorshSerialize, BorshDeserialize)]
pub struct Receipt {
    pub header: HeaderLite,
    pub seq: u64,
    pub prev_ref: Option<BundleRef>,
    /// The leaf's holdings commitment: the sidecar cannot give it, so the receipt carries it.
    pub holdings: Option<HoldingsCommitment>,
    pub proof: SmtProof,
}

/// A receipt with the sidecar it confirms: the self-contained unit of a witness.
#[derive(Clone, Debug, PartialEq, Eq, Hash, BorshSerialize, BorshDeserialize)]
pub struct ConfirmedBundleUnit {
    pub receipt: Receipt,
    pub sidecar: BundleSidecar,
}

impl ConfirmedBundleUnit {
    pub fn height(&self) -> u64 {
        self.receipt.header.height
    }

    pub fn owner(&self) -> Address {
        self.sidecar.sender
    }

    /// `{height, bundle_hash(sidecar), seq}`.
    pub fn bundle_ref(&self) -> BundleRef {
        BundleRef {
            height: self.height(),
            bundle_hash: self.sidecar.bundle_hash(),
            seq: self.receipt.seq,
        }
    }

    /// The holdings commitment this unit made, if it is a snapshot bundle: no transactions, and
    /// its receipt's commitment names the unit itself (later units only carry it forward).
    pub fn snapshot_commitment(&self) -> Option<HoldingsCommitment> {
        self.receipt
            .holdings
            .filter(|commitment| self.sidecar.txs.is_empty() && commitment.at == self.bundle_ref())
    }

    /// The sender's leaf as the block must have written it.
    pub fn rebuilt_leaf(&self) -> AccountLeaf {
        AccountLeaf {
            owner: self.sidecar.sender,
            head_ref: self.bundle_ref(),
            prev_ref: self.receipt.prev_ref,
            claim_set_hash: self.sidecar.claim_set_hash(),
            holdings: self.receipt.holdings,
        }
    }

    /// True when the rebuilt leaf is in the tree whose root the receipt's header names.
    /// (Whether that header is finalized is the caller's check.)
    pub fn proves_inclusion(&self) -> bool {
        let leaf_hash: Hash32 = self.rebuilt_leaf().leaf_hash();
        self.receipt.proof.verify(
            &self.receipt.header.state_root,
            &self.sidecar.sender.addr_key(),
            Some(&leaf_hash),
        )
    }
}
