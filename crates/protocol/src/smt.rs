//! Sparse Merkle tree of depth 256 keyed by 32-byte keys (`addr_key`).
//!
//! The tree hash is the textbook one: an empty leaf is `E = H(SMT_EMPTY_LEAF)`, a present leaf is
//! `H(SMT_LEAF ‖ key ‖ value_hash)`, an inner node is `H(SMT_NODE ‖ left ‖ right)`, and an empty
//! subtree of height h has the default hash `D[h]` (`D[0] = E`, `D[h+1] = H(SMT_NODE ‖ D[h] ‖ D[h])`).
//! Key bits are consumed most significant first from the root.
//!
//! The implementation stores only what differs from the defaults, as an immutable compressed
//! binary trie shared through `Arc` (a clone is O(1); an update copies one path):
//! - a `Leaf` sits at level 256;
//! - a `Branch` at prefix length `depth` has two non-empty children that differ at bit `depth`,
//!   and caches each child's hash *lifted* to level `depth + 1` (hashed up through the default
//!   siblings of the compressed edge).
//!
//! Invariant: every cached hash equals the textbook hash of the same subtree, so an update costs
//! exactly one hash per level on the changed path (256) and the root, proofs and multiproofs agree
//! with a naive full-depth tree (checked by a property test against one).

use crate::hash::{Hash32, tag, tagged_hash};
use borsh::{BorshDeserialize, BorshSerialize};
use std::sync::{Arc, OnceLock};

pub const DEPTH: usize = 256;

/// What the tree stores at a key: anything that has a value hash.
pub trait SmtValue: Clone {
    fn value_hash(&self) -> Hash32;
}

impl SmtValue for Hash32 {
    fn value_hash(&self) -> Hash32 {
        *self
    }
}

fn inner(left: &Hash32, right: &Hash32) -> Hash32 {
    tagged_hash(tag::SMT_NODE, &[&left.0, &right.0])
}

fn leaf_node(key: &Hash32, value_hash: &Hash32) -> Hash32 {
    tagged_hash(tag::SMT_LEAF, &[&key.0, &value_hash.0])
}

/// `D[h]`: hash of an empty subtree of height `h` (0 = leaf level, 256 = whole tree).
pub fn default_hash(height: usize) -> Hash32 {
    static DEFAULTS: OnceLock<Vec<Hash32>> = OnceLock::new();
    DEFAULTS.get_or_init(|| {
        let mut table = Vec::with_capacity(DEPTH + 1);
        table.push(tagged_hash(tag::SMT_EMPTY_LEAF, &[]));
        for h in 0..DEPTH {
            let below = table[h];
            table.push(inner(&below, &below));
        }
        table
    })[height]
}

/// Hashes the node at prefix length `from` (on `key`'s path, all other siblings empty) up to
/// prefix length `to`.
fn lift(mut hash: Hash32, key: &Hash32, from: usize, to: usize) -> Hash32 {
    for level in (to + 1..=from).rev() {
        let sibling = default_hash(DEPTH - level);
        hash = if key.bit(level - 1) {
            inner(&sibling, &hash)
        } else {
            inner(&hash, &sibling)
        };
    }
    hash
}

enum Node<V> {
    Leaf {
        key: Hash32,
        value: V,
        hash: Hash32,
    },
    Branch {
        depth: usize,
        any_key: Hash32,
        left: Arc<Node<V>>,
        right: Arc<Node<V>>,
        left_up: Hash32,
        right_up: Hash32,
        hash: Hash32,
    },
}

impl<V> Node<V> {
    fn level(&self) -> usize {
        match self {
            Node::Leaf { .. } => DEPTH,
            Node::Branch { depth, .. } => *depth,
        }
    }
    fn any_key(&self) -> &Hash32 {
        match self {
            Node::Leaf { key, .. } => key,
            Node::Branch { any_key, .. } => any_key,
        }
    }
    fn hash(&self) -> &Hash32 {
        match self {
            Node::Leaf { hash, .. } | Node::Branch { hash, .. } => hash,
        }
    }
    /// This node's hash lifted to prefix length `to` (≤ its own level).
    fn hash_at(&self, to: usize) -> Hash32 {
        lift(*self.hash(), self.any_key(), self.level(), to)
    }
}

fn make_branch<V>(depth: usize, a: Arc<Node<V>>, b: Arc<Node<V>>) -> Arc<Node<V>> {
    let (left, right) = if a.any_key().bit(depth) { (b, a) } else { (a, b) };
    let left_up = left.hash_at(depth + 1);
    let right_up = right.hash_at(depth + 1);
    branch_with_lifted(depth, left, right, left_up, right_up)
}

/// A branch whose children's hashes at `depth + 1` are already known.
fn branch_with_lifted<V>(
    depth: usize,
    left: Arc<Node<V>>,
    right: Arc<Node<V>>,
    left_up: Hash32,
    right_up: Hash32,
) -> Arc<Node<V>> {
    let hash = inner(&left_up, &right_up);
    let any_key = *left.any_key();
    Arc::new(Node::Branch {
        depth,
        any_key,
        left,
        right,
        left_up,
        right_up,
        hash,
    })
}

/// A persistent sparse Merkle tree. Cloning is O(1) and shares structure.
pub struct Smt<V> {
    root: Option<Arc<Node<V>>>,
    len: usize,
}

impl<V> Clone for Smt<V> {
    fn clone(&self) -> Self {
        Smt {
            root: self.root.clone(),
            len: self.len,
        }
    }
}

impl<V: SmtValue> Default for Smt<V> {
    fn default() -> Self {
        Smt { root: None, len: 0 }
    }
}

impl<V: SmtValue> Smt<V> {
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of present keys.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn root(&self) -> Hash32 {
        match &self.root {
            None => default_hash(DEPTH),
            Some(node) => node.hash_at(0),
        }
    }

    pub fn get(&self, key: &Hash32) -> Option<&V> {
        let mut node = self.root.as_deref()?;
        loop {
            match node {
                Node::Leaf { key: k, value, .. } => return (k == key).then_some(value),
                Node::Branch { depth, left, right, .. } => {
                    node = if key.bit(*depth) { right } else { left };
                }
            }
        }
    }

    /// Sets `key` to `value` (insert or replace).
    pub fn insert(&mut self, key: Hash32, value: V) {
        let hash = leaf_node(&key, &value.value_hash());
        let leaf = Arc::new(Node::Leaf { key, value, hash });
        let (root, added) = match self.root.take() {
            None => (leaf, true),
            Some(root) => Self::upsert(&root, &key, leaf),
        };
        self.root = Some(root);
        if added {
            self.len += 1;
        }
    }

    fn upsert(node: &Arc<Node<V>>, key: &Hash32, leaf: Arc<Node<V>>) -> (Arc<Node<V>>, bool) {
        let shared = node.any_key().common_prefix_len(key);
        match node.as_ref() {
            Node::Leaf { .. } if shared == DEPTH => (leaf, false),
            Node::Branch {
                depth,
                left,
                right,
                left_up,
                right_up,
                any_key,
                ..
            } if shared >= *depth => {
                let depth = *depth;
                let go_right = key.bit(depth);
                let child = if go_right { right } else { left };
                let (new_child, added) = Self::upsert(child, key, leaf);
                let new_up = new_child.hash_at(depth + 1);
                let (left, right, left_up, right_up) = if go_right {
                    (left.clone(), new_child, *left_up, new_up)
                } else {
                    (new_child, right.clone(), new_up, *right_up)
                };
                (branch_with_lifted(depth, left, right, left_up, right_up), added)
            }
            // The key leaves this subtree's common prefix at bit `shared`: split there.
            _ => (make_branch(shared, node.clone(), leaf), true),
        }
    }

    /// A membership (value present) or non-membership proof for `key`.
    pub fn prove(&self, key: &Hash32) -> SmtProof {
        let mut siblings = vec![None; DEPTH];
        let mut node = self.root.as_deref();
        let mut value_hash = None;
        while let Some(current) = node {
            let shared = current.any_key().common_prefix_len(key);
            match current {
                Node::Leaf { value, .. } if shared == DEPTH => {
                    value_hash = Some(value.value_hash());
                    node = None;
                }
                Node::Branch {
                    depth,
                    left,
                    right,
                    left_up,
                    right_up,
                    ..
                } if shared >= *depth => {
                    let (next, sibling) = if key.bit(*depth) {
                        (right, left_up)
                    } else {
                        (left, right_up)
                    };
                    siblings[*depth] = Some(*sibling);
                    node = Some(next.as_ref());
                }
                _ => {
                    siblings[shared] = Some(current.hash_at(shared + 1));
                    node = None;
                }
            }
        }
        // Proof order is leaf level first: height h holds the sibling at prefix length 255 - h.
        let siblings_leaf_first = (0..DEPTH)
            .map(|height| siblings[DEPTH - 1 - height].unwrap_or_else(|| default_hash(height)))
            .collect();
        SmtProof {
            key: *key,
            value_hash,
            siblings: siblings_leaf_first,
        }
    }

    /// One proof for many keys: the siblings of all their paths that no other key's path
    /// computes, in depth-first order, with defaults left out.
    pub fn prove_many(&self, keys: &[Hash32]) -> MultiProof {
        let mut sorted: Vec<Hash32> = keys.to_vec();
        sorted.sort();
        sorted.dedup();
        let mut proof = MultiProof {
            non_default: Vec::new(),
            hashes: Vec::new(),
        };
        if !sorted.is_empty() {
            let mut bit_count = 0usize;
            self.collect_multi(self.root.as_deref(), 0, &sorted, &mut proof, &mut bit_count);
        }
        proof
    }

    fn collect_multi(
        &self,
        node: Option<&Node<V>>,
        prefix: usize,
        keys: &[Hash32],
        proof: &mut MultiProof,
        bits: &mut usize,
    ) {
        if prefix == DEPTH {
            return;
        }
        let split = keys.partition_point(|k| !k.bit(prefix));
        let (left_keys, right_keys) = keys.split_at(split);
        // The two subtrees at prefix + 1 under `node` (which is the subtree at `prefix`), each
        // with its hash at prefix + 1 when a branch has it cached; otherwise it is lifted only
        // if it is emitted as a sibling.
        type Side<'n, V> = Option<(&'n Node<V>, Option<Hash32>)>;
        let (left, right): (Side<V>, Side<V>) = match node {
            None => (None, None),
            Some(Node::Branch {
                depth,
                left,
                right,
                left_up,
                right_up,
                ..
            }) if *depth == prefix => (
                Some((left.as_ref(), Some(*left_up))),
                Some((right.as_ref(), Some(*right_up))),
            ),
            Some(n) if n.any_key().bit(prefix) => (None, Some((n, None))),
            Some(n) => (Some((n, None)), None),
        };
        for (side_keys, side) in [(left_keys, left), (right_keys, right)] {
            if side_keys.is_empty() {
                let hash = side.map(|(n, cached)| cached.unwrap_or_else(|| n.hash_at(prefix + 1)));
                proof.push_sibling(hash, DEPTH - prefix - 1, bits);
            } else {
                self.collect_multi(side.map(|(n, _)| n), prefix + 1, side_keys, proof, bits);
            }
        }
    }
}

/// A plain proof: 256 siblings, leaf level first. `value_hash` is `None` for non-membership.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SmtProof {
    pub key: Hash32,
    pub value_hash: Option<Hash32>,
    pub siblings: Vec<Hash32>,
}

impl SmtProof {
    /// Recomputes the root for `value_hash` (None = absent) at this proof's key.
    pub fn root_for(&self, value_hash: Option<&Hash32>) -> Hash32 {
        let mut hash = match value_hash {
            Some(v) => leaf_node(&self.key, v),
            None => default_hash(0),
        };
        for (height, sibling) in self.siblings.iter().enumerate() {
            hash = if self.key.bit(DEPTH - 1 - height) {
                inner(sibling, &hash)
            } else {
                inner(&hash, sibling)
            };
        }
        hash
    }

    /// Drops default siblings into a bitmap.
    pub fn compress(&self) -> CompressedSmtProof {
        let mut non_default = [0u8; 32];
        let mut siblings = Vec::new();
        for (height, sibling) in self.siblings.iter().enumerate() {
            if *sibling != default_hash(height) {
                non_default[height / 8] |= 1 << (height % 8);
                siblings.push(*sibling);
            }
        }
        CompressedSmtProof { non_default, siblings }
    }
}

/// A proof as it travels: bit `h` of `non_default` says whether the sibling at height `h` is
/// listed in `siblings` (in height order) or is the default `D[h]`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, BorshSerialize, BorshDeserialize)]
pub struct CompressedSmtProof {
    pub non_default: [u8; 32],
    pub siblings: Vec<Hash32>,
}

impl CompressedSmtProof {
    /// Expands to a plain proof; `None` if the bitmap and the sibling list disagree.
    pub fn expand(&self, key: &Hash32, value_hash: Option<Hash32>) -> Option<SmtProof> {
        let listed: u32 = self.non_default.iter().map(|b| b.count_ones()).sum();
        if listed as usize != self.siblings.len() {
            return None;
        }
        let mut next = self.siblings.iter();
        let siblings = (0..DEPTH)
            .map(|height| {
                if self.non_default[height / 8] & (1 << (height % 8)) != 0 {
                    next.next().copied()
                } else {
                    Some(default_hash(height))
                }
            })
            .collect::<Option<Vec<_>>>()?;
        Some(SmtProof {
            key: *key,
            value_hash,
            siblings,
        })
    }

    /// True when `key ↦ value_hash` (None = absent) is in the tree with root `root`.
    pub fn verify(&self, root: &Hash32, key: &Hash32, value_hash: Option<&Hash32>) -> bool {
        match self.expand(key, value_hash.copied()) {
            Some(proof) => proof.root_for(value_hash) == *root,
            None => false,
        }
    }
}

/// Siblings for a set of keys: one bit per needed sibling in depth-first order (left subtree
/// first) saying whether its hash is listed, and the listed hashes in the same order.
#[derive(Clone, Debug, Default, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct MultiProof {
    pub non_default: Vec<u8>,
    pub hashes: Vec<Hash32>,
}

impl MultiProof {
    fn push_sibling(&mut self, hash: Option<Hash32>, height: usize, bits: &mut usize) {
        if *bits / 8 >= self.non_default.len() {
            self.non_default.push(0);
        }
        match hash {
            Some(h) if h != default_hash(height) => {
                self.non_default[*bits / 8] |= 1 << (*bits % 8);
                self.hashes.push(h);
            }
            _ => {}
        }
        *bits += 1;
    }

    /// True when every `(key, value_hash)` (None = absent) holds under `root`. Keys must be
    /// distinct.
    pub fn verify(&self, root: &Hash32, entries: &[(Hash32, Option<Hash32>)]) -> bool {
        let mut sorted = entries.to_vec();
        sorted.sort_by_key(|entry| entry.0);
        if sorted.is_empty() || sorted.windows(2).any(|w| w[0].0 == w[1].0) {
            return false;
        }
        let mut cursor = MultiCursor {
            proof: self,
            bit: 0,
            next_hash: 0,
        };
        let Some(computed) = cursor.subtree(0, &sorted) else {
            return false;
        };
        // Every bit and hash must be consumed: trailing data means the proof is not canonical.
        computed == *root && cursor.next_hash == self.hashes.len() && cursor.bit.div_ceil(8) == self.non_default.len()
    }
}

struct MultiCursor<'a> {
    proof: &'a MultiProof,
    bit: usize,
    next_hash: usize,
}

impl MultiCursor<'_> {
    fn sibling(&mut self, height: usize) -> Option<Hash32> {
        let byte = *self.proof.non_default.get(self.bit / 8)?;
        let listed = byte & (1 << (self.bit % 8)) != 0;
        self.bit += 1;
        if listed {
            let hash = *self.proof.hashes.get(self.next_hash)?;
            self.next_hash += 1;
            Some(hash)
        } else {
            Some(default_hash(height))
        }
    }

    fn subtree(&mut self, prefix: usize, entries: &[(Hash32, Option<Hash32>)]) -> Option<Hash32> {
        if prefix == DEPTH {
            let (key, value) = &entries[0];
            return Some(match value {
                Some(v) => leaf_node(key, v),
                None => default_hash(0),
            });
        }
        let split = entries.partition_point(|(k, _)| !k.bit(prefix));
        let (left_entries, right_entries) = entries.split_at(split);
        let height = DEPTH - prefix - 1;
        let left = if left_entries.is_empty() {
            self.sibling(height)?
        } else {
            self.subtree(prefix + 1, left_entries)?
        };
        let right = if right_entries.is_empty() {
            self.sibling(height)?
        } else {
            self.subtree(prefix + 1, right_entries)?
        };
        Some(inner(&left, &right))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    /// The reference: recompute the full-depth tree from a map, recursively, with no caching.
    fn naive_root(entries: &BTreeMap<Hash32, Hash32>) -> Hash32 {
        fn subtree(prefix: usize, entries: &[(&Hash32, &Hash32)]) -> Hash32 {
            if entries.is_empty() {
                return default_hash(DEPTH - prefix);
            }
            if prefix == DEPTH {
                return leaf_node(entries[0].0, entries[0].1);
            }
            let split = entries.partition_point(|(k, _)| !k.bit(prefix));
            inner(
                &subtree(prefix + 1, &entries[..split]),
                &subtree(prefix + 1, &entries[split..]),
            )
        }
        let list: Vec<_> = entries.iter().collect();
        subtree(0, &list)
    }

    fn h(n: u64) -> Hash32 {
        tagged_hash(b"test", &[&n.to_le_bytes()])
    }

    #[test]
    fn empty_tree_root_is_the_top_default() {
        let tree: Smt<Hash32> = Smt::new();
        assert_eq!(tree.root(), default_hash(DEPTH));
        assert!(tree.prove(&h(1)).compress().verify(&tree.root(), &h(1), None));
    }

    #[test]
    fn neighbouring_keys_split_at_the_last_bit() {
        let mut tree = Smt::new();
        let a = Hash32::ZERO;
        let mut b = Hash32::ZERO;
        b.0[31] = 1;
        tree.insert(a, h(1));
        tree.insert(b, h(2));
        let mut map = BTreeMap::new();
        map.insert(a, h(1));
        map.insert(b, h(2));
        assert_eq!(tree.root(), naive_root(&map));
        assert!(tree.prove(&b).compress().verify(&tree.root(), &b, Some(&h(2))));
    }

    #[test]
    fn old_versions_stay_intact() {
        let mut tree = Smt::new();
        tree.insert(h(1), h(10));
        let before = tree.clone();
        let root_before = before.root();
        tree.insert(h(1), h(11));
        tree.insert(h(2), h(12));
        assert_eq!(before.root(), root_before);
        assert_eq!(before.get(&h(1)), Some(&h(10)));
        assert_eq!(tree.get(&h(1)), Some(&h(11)));
        assert_eq!(tree.len(), 2);
    }

    #[test]
    fn malformed_compressed_proof_is_rejected_not_panicking() {
        let mut tree = Smt::new();
        tree.insert(h(1), h(10));
        tree.insert(h(2), h(20));
        let mut proof = tree.prove(&h(1)).compress();
        proof.siblings.push(h(3));
        assert!(!proof.verify(&tree.root(), &h(1), Some(&h(10))));
        let empty = MultiProof::default();
        assert!(!empty.verify(&tree.root(), &[(h(1), Some(h(10)))]));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]
        #[test]
        fn matches_naive_reference(ops in proptest::collection::vec((0u64..40, 0u64..1000), 1..40), probes in proptest::collection::vec(0u64..60, 1..8)) {
            let mut tree = Smt::new();
            let mut map = BTreeMap::new();
            for (k, v) in ops {
                tree.insert(h(k), h(v));
                map.insert(h(k), h(v));
                prop_assert_eq!(tree.root(), naive_root(&map));
            }
            prop_assert_eq!(tree.len(), map.len());
            let root = tree.root();
            for p in &probes {
                let key = h(*p);
                let value = map.get(&key).copied();
                prop_assert_eq!(tree.get(&key).copied(), value);
                let proof = tree.prove(&key);
                prop_assert_eq!(proof.value_hash, value);
                prop_assert_eq!(proof.root_for(value.as_ref()), root);
                let compressed = proof.compress();
                prop_assert!(compressed.verify(&root, &key, value.as_ref()));
                // A proof never works for a different value.
                prop_assert!(!compressed.verify(&root, &key, Some(&h(5000))));
                if value.is_some() {
                    prop_assert!(!compressed.verify(&root, &key, None));
                }
            }
            let keys: Vec<Hash32> = probes.iter().map(|p| h(*p)).collect();
            let multi = tree.prove_many(&keys);
            let mut entries: Vec<(Hash32, Option<Hash32>)> = keys.iter().map(|k| (*k, map.get(k).copied())).collect();
            entries.sort();
            entries.dedup();
            prop_assert!(multi.verify(&root, &entries));
            let mut wrong = entries.clone();
            wrong[0].1 = Some(h(7777));
            prop_assert!(!multi.verify(&root, &wrong));
        }
    }
}
