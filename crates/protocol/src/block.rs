//! Chain objects: bundle references, account leaves, diff entries, headers and blocks.
//!
//! Invariant: the header hash covers `version, chain_id, height, prev_hash, state_root,
//! diff_root, timestamp`, so a finalized header pins the state root every receipt refers to.
//! `BundleRef` does not contain the block hash (BFT finality makes a height unique), which is
//! what lets the header commit to the state root without a cycle (DESIGN §4).

use crate::address::Address;
use crate::bundle::Submission;
use crate::hash::{Hash32, hash_object, tag, tagged_hash};
use crate::smt::SmtValue;
use borsh::{BorshDeserialize, BorshSerialize};

/// Version of the block header format.
pub const BLOCK_VERSION: u16 = 2;

/// Identifies one confirmed submission.
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    BorshSerialize,
    BorshDeserialize,
    serde::Serialize,
    serde::Deserialize,
)]
pub struct BundleRef {
    pub height: u64,
    pub bundle_hash: Hash32,
    pub seq: u64,
}

/// The holdings an account's latest snapshot committed (docs/bounded-witnesses.md §2.1): the
/// Merkle root of its sorted list of disjoint ranges, the list's length, and the snapshot
/// bundle that committed it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, BorshSerialize, BorshDeserialize)]
pub struct HoldingsCommitment {
    pub root: Hash32,
    pub count: u32,
    pub at: BundleRef,
}

/// The SMT value of an account: its latest and previous confirmed bundle. Because each leaf
/// names the previous bundle, an account's receipts form a hash-linked backward chain.
#[derive(Clone, Debug, PartialEq, Eq, Hash, BorshSerialize, BorshDeserialize)]
pub struct AccountLeaf {
    pub owner: Address,
    pub head_ref: BundleRef,
    pub prev_ref: Option<BundleRef>,
    /// Claim-set hash of the head bundle.
    pub claim_set_hash: Hash32,
    /// The latest holdings snapshot: `None` until the account's first one, then carried
    /// unchanged by every later bundle until the next (the leaf hash covers it).
    pub holdings: Option<HoldingsCommitment>,
}

impl AccountLeaf {
    pub fn leaf_hash(&self) -> Hash32 {
        hash_object(tag::ACCOUNT_LEAF, self)
    }
}

impl SmtValue for AccountLeaf {
    fn value_hash(&self) -> Hash32 {
        self.leaf_hash()
    }
}

/// What a block changes for one sender; the diff root is a Merkle root over these.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct DiffEntry {
    pub addr_key: Hash32,
    pub new_leaf_hash: Hash32,
    pub envelope_hash: Hash32,
    pub bundle_hash: Hash32,
    /// A snapshot bundle's evidence hash: the evidence is not signed, so the header pins it
    /// here — a block cannot travel with other evidence than the one its validators checked.
    pub evidence_hash: Option<Hash32>,
}

impl DiffEntry {
    pub fn diff_leaf(&self) -> Hash32 {
        hash_object(tag::DIFF_LEAF, self)
    }
}

/// Binary Merkle root over diff leaves in block order; an odd last node pairs with itself.
pub fn diff_root(entries: &[DiffEntry]) -> Hash32 {
    if entries.is_empty() {
        return tagged_hash(tag::EMPTY_DIFF_ROOT, &[]);
    }
    let mut level: Vec<Hash32> = entries.iter().map(DiffEntry::diff_leaf).collect();
    while level.len() > 1 {
        level = level
            .chunks(2)
            .map(|pair| {
                let right = pair.get(1).unwrap_or(&pair[0]);
                tagged_hash(tag::DIFF_NODE, &[&pair[0].0, &right.0])
            })
            .collect();
    }
    level[0]
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, BorshSerialize, BorshDeserialize)]
pub struct BlockHeader {
    pub version: u16,
    pub chain_id: u64,
    pub height: u64,
    pub prev_hash: Hash32,
    pub state_root: Hash32,
    pub diff_root: Hash32,
    /// Milliseconds since the Unix epoch, chosen by the proposer; never decreases.
    pub timestamp_ms: u64,
}

impl BlockHeader {
    pub fn hash(&self) -> Hash32 {
        hash_object(tag::BLOCK_HEADER, self)
    }

    pub fn lite(&self) -> HeaderLite {
        HeaderLite {
            height: self.height,
            header_hash: self.hash(),
            state_root: self.state_root,
        }
    }
}

/// What light account nodes keep per finalized block.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, BorshSerialize, BorshDeserialize, serde::Serialize, serde::Deserialize,
)]
pub struct HeaderLite {
    pub height: u64,
    pub header_hash: Hash32,
    pub state_root: Hash32,
}

/// One sender's bundle inside a block: exactly the submission the sender signed, so a block is
/// checked with the same rules (and the same code) as the mempool.
pub type BlockEntry = Submission;

/// A block: its header and the bundles it orders, sorted by the sender's `addr_key`.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct Block {
    pub header: BlockHeader,
    pub entries: Vec<BlockEntry>,
}

impl Block {
    pub fn hash(&self) -> Hash32 {
        self.header.hash()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(n: u8) -> DiffEntry {
        let h = tagged_hash(b"t", &[&[n]]);
        DiffEntry {
            addr_key: h,
            new_leaf_hash: h,
            envelope_hash: h,
            bundle_hash: h,
            evidence_hash: None,
        }
    }

    #[test]
    fn diff_root_shapes() {
        assert_eq!(diff_root(&[]), tagged_hash(tag::EMPTY_DIFF_ROOT, &[]));
        assert_eq!(diff_root(&[entry(1)]), entry(1).diff_leaf());
        let a = entry(1).diff_leaf();
        let b = entry(2).diff_leaf();
        let c = entry(3).diff_leaf();
        let ab = tagged_hash(tag::DIFF_NODE, &[&a.0, &b.0]);
        let cc = tagged_hash(tag::DIFF_NODE, &[&c.0, &c.0]);
        assert_eq!(
            diff_root(&[entry(1), entry(2), entry(3)]),
            tagged_hash(tag::DIFF_NODE, &[&ab.0, &cc.0])
        );
        assert_ne!(diff_root(&[entry(2), entry(1)]), diff_root(&[entry(1), entry(2)]));
    }
}
