//! Leaf-shortcut sparse Merkle tree keyed by 32-byte keys (`addr_key`): the state tree.
//!
//! The tree is the binary trie of all 256-bit keys, hashed with the shortcut of Diem's Jellyfish
//! tree — a subtree that holds one leaf *is* that leaf:
//! - an empty subtree hashes to `EMPTY = H(SMT_EMPTY)`, at any height;
//! - a subtree holding exactly one entry `(k, v)` hashes to `H(SMT_LEAF ‖ k ‖ v)`, at any height;
//! - any other subtree hashes to `H(SMT_NODE ‖ left half ‖ right half)`.
//!
//! Key bits are consumed most significant first from the root. An update hashes the changed
//! leaf's path only down to where its subtree holds it alone: ≈ log2(entries) hashes for random
//! keys (a textbook depth-256 tree needs 256). A proof lists the siblings on that path, root
//! first, so it checks in as many hashes.
//!
//! Why a root pins the contents: the three kinds of subtree hash under three distinct tags and a
//! leaf hash covers its whole key, so (by collision resistance, inductively from the root) equal
//! roots mean equal trees. A proof whose shape differs from the tree's — a leaf placed lower than
//! it sits, an empty half where a leaf is — computes some other hash and fails.
//!
//! The implementation stores only what is present, as an immutable compressed binary trie shared
//! through `Arc` (a clone is O(1); an update copies one path):
//! - a `Leaf` sits wherever its subtree holds it alone;
//! - a `Branch` at prefix length `depth` has two non-empty children that differ at bit `depth`,
//!   and caches each child's hash *lifted* to prefix length `depth + 1` (hashed up through the
//!   empty halves of the compressed edge; a leaf needs no lifting).
//!
//! Invariant: every cached hash equals the definition's hash of the same subtree, so the root and
//! the proofs agree with a naive recursive evaluation (checked by a property test against one).

use crate::hash::{Hash32, tag, tagged_hash};
use borsh::{BorshDeserialize, BorshSerialize};
use std::sync::{Arc, OnceLock};

/// Key length in bits: the deepest a proof can be.
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

/// The hash of an empty subtree (and the root of an empty tree).
pub fn empty_hash() -> Hash32 {
    static EMPTY: OnceLock<Hash32> = OnceLock::new();
    *EMPTY.get_or_init(|| tagged_hash(tag::SMT_EMPTY, &[]))
}

/// Hashes a subtree at prefix length `from` (on `key`'s path, the other halves empty) up to
/// prefix length `to`.
fn lift(mut hash: Hash32, key: &Hash32, from: usize, to: usize) -> Hash32 {
    let empty = empty_hash();
    for level in (to..from).rev() {
        hash = if key.bit(level) {
            inner(&empty, &hash)
        } else {
            inner(&hash, &empty)
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
    fn any_key(&self) -> &Hash32 {
        match self {
            Node::Leaf { key, .. } => key,
            Node::Branch { any_key, .. } => any_key,
        }
    }

    /// This node's hash as the subtree at prefix length `to` (≤ its own depth): a leaf is the
    /// same at every height; a branch is lifted through the empty halves above it.
    fn hash_at(&self, to: usize) -> Hash32 {
        match self {
            Node::Leaf { hash, .. } => *hash,
            Node::Branch {
                depth, any_key, hash, ..
            } => lift(*hash, any_key, *depth, to),
        }
    }
}

/// The branch at prefix length `depth` over two nodes whose keys first differ at bit `depth`.
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

    /// Builds the tree of `entries` bottom-up: one hash per branch (plus the empty halves of its
    /// edge), instead of one path per insert — what a restarting node does with its stored
    /// leaves. A key given twice keeps its last value.
    pub fn from_entries(entries: impl IntoIterator<Item = (Hash32, V)>) -> Self {
        let mut sorted: Vec<(Hash32, V)> = entries.into_iter().collect();
        // Stable: among equal keys the last given stays last, and is the one kept.
        sorted.sort_by_key(|entry| entry.0);
        let mut leaves: Vec<Arc<Node<V>>> = Vec::with_capacity(sorted.len());
        for (key, value) in sorted {
            if leaves.last().is_some_and(|last| *last.any_key() == key) {
                leaves.pop();
            }
            let hash = leaf_node(&key, &value.value_hash());
            leaves.push(Arc::new(Node::Leaf { key, value, hash }));
        }
        let len = leaves.len();
        Smt {
            root: build_sorted(&leaves),
            len,
        }
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
            None => empty_hash(),
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

    /// A membership proof for `key` (when present) or a non-membership proof.
    pub fn prove(&self, key: &Hash32) -> SmtProof {
        let mut proof = SmtProof::default();
        let mut prefix = 0;
        let mut node = self.root.as_deref();
        while let Some(current) = node {
            match current {
                Node::Leaf { key: k, value, .. } => {
                    if k != key {
                        proof.other_leaf = Some(SmtLeaf {
                            key: *k,
                            value_hash: value.value_hash(),
                        });
                    }
                    return proof;
                }
                Node::Branch {
                    depth,
                    any_key,
                    left,
                    right,
                    left_up,
                    right_up,
                    ..
                } => {
                    let shared = any_key.common_prefix_len(key);
                    let stop = shared.min(*depth);
                    proof.siblings.extend(std::iter::repeat_n(None, stop - prefix));
                    if shared < *depth {
                        // The key leaves the branch's edge at bit `shared`: its half is empty.
                        proof.siblings.push(Some(current.hash_at(shared + 1)));
                        return proof;
                    }
                    let (next, sibling) = if key.bit(*depth) {
                        (right, left_up)
                    } else {
                        (left, right_up)
                    };
                    proof.siblings.push(Some(*sibling));
                    prefix = depth + 1;
                    node = Some(next.as_ref());
                }
            }
        }
        proof
    }
}

/// The trie of sorted, distinct leaves: split at the first bit where the first and the last key
/// differ (the whole slice shares the bits before it). Recursion depth ≤ 256.
fn build_sorted<V>(leaves: &[Arc<Node<V>>]) -> Option<Arc<Node<V>>> {
    match leaves {
        [] => None,
        [leaf] => Some(leaf.clone()),
        [first, .., last] => {
            let depth = first.any_key().common_prefix_len(last.any_key());
            let split = leaves.partition_point(|leaf| !leaf.any_key().bit(depth));
            let left = build_sorted(&leaves[..split])?;
            let right = build_sorted(&leaves[split..])?;
            Some(make_branch(depth, left, right))
        }
    }
}

/// A leaf entry named by a non-membership proof: the one entry in the subtree where the absent
/// key's path ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, BorshSerialize, BorshDeserialize)]
pub struct SmtLeaf {
    pub key: Hash32,
    pub value_hash: Hash32,
}

/// A proof for one key: the siblings on the key's path from the root down to where the path
/// ends, root first (`siblings[i]` is the other half at prefix length `i + 1`; `None` = an empty
/// half), and, when the key is absent and the path ends in another entry's leaf, that entry.
///
/// The path ends in the key's own leaf (membership), in an empty half, or in another key's leaf
/// (both non-membership). At most [`DEPTH`] siblings; ≈ log2(entries) for random keys.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, BorshSerialize, BorshDeserialize)]
pub struct SmtProof {
    pub siblings: Vec<Option<Hash32>>,
    pub other_leaf: Option<SmtLeaf>,
}

impl SmtProof {
    /// The root this proof implies for `key ↦ value_hash` (None = absent); `None` when the
    /// proof cannot be one for that claim (too deep, or the other leaf is the key itself or lies
    /// off the key's path, or names a leaf beside a membership claim).
    pub fn root_for(&self, key: &Hash32, value_hash: Option<&Hash32>) -> Option<Hash32> {
        let depth = self.siblings.len();
        if depth > DEPTH {
            return None;
        }
        let mut hash = match (value_hash, &self.other_leaf) {
            (Some(value_hash), None) => leaf_node(key, value_hash),
            (Some(_), Some(_)) => return None,
            (None, None) => empty_hash(),
            (None, Some(other)) => {
                if other.key == *key || other.key.common_prefix_len(key) < depth {
                    return None;
                }
                leaf_node(&other.key, &other.value_hash)
            }
        };
        let empty = empty_hash();
        for (level, sibling) in self.siblings.iter().enumerate().rev() {
            let sibling = sibling.as_ref().unwrap_or(&empty);
            hash = if key.bit(level) {
                inner(sibling, &hash)
            } else {
                inner(&hash, sibling)
            };
        }
        Some(hash)
    }

    /// True when `key ↦ value_hash` (None = absent) holds in the tree with root `root`.
    pub fn verify(&self, root: &Hash32, key: &Hash32, value_hash: Option<&Hash32>) -> bool {
        self.root_for(key, value_hash) == Some(*root)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    /// The definition, evaluated directly: recursion over the key bits with no caching.
    fn naive_root(entries: &BTreeMap<Hash32, Hash32>) -> Hash32 {
        fn subtree(prefix: usize, entries: &[(&Hash32, &Hash32)]) -> Hash32 {
            match entries {
                [] => tagged_hash(tag::SMT_EMPTY, &[]),
                [(key, value)] => tagged_hash(tag::SMT_LEAF, &[&key.0, &value.0]),
                _ => {
                    let split = entries.partition_point(|(k, _)| !k.bit(prefix));
                    tagged_hash(
                        tag::SMT_NODE,
                        &[
                            &subtree(prefix + 1, &entries[..split]).0,
                            &subtree(prefix + 1, &entries[split..]).0,
                        ],
                    )
                }
            }
        }
        let list: Vec<_> = entries.iter().collect();
        subtree(0, &list)
    }

    fn h(n: u64) -> Hash32 {
        tagged_hash(b"test", &[&n.to_le_bytes()])
    }

    fn key_with_last_byte(byte: u8) -> Hash32 {
        let mut key = Hash32::ZERO;
        key.0[31] = byte;
        key
    }

    #[test]
    fn empty_tree_root_is_the_empty_hash() {
        let tree: Smt<Hash32> = Smt::new();
        assert_eq!(tree.root(), empty_hash());
        let proof = tree.prove(&h(1));
        assert_eq!(proof, SmtProof::default());
        assert!(proof.verify(&tree.root(), &h(1), None));
    }

    #[test]
    fn a_single_entry_is_the_root_itself() {
        let mut tree = Smt::new();
        tree.insert(h(1), h(10));
        assert_eq!(tree.root(), leaf_node(&h(1), &h(10)));
        let proof = tree.prove(&h(1));
        assert!(proof.siblings.is_empty());
        assert!(proof.verify(&tree.root(), &h(1), Some(&h(10))));
        let absent = tree.prove(&h(2));
        assert_eq!(absent.other_leaf.map(|l| l.key), Some(h(1)));
        assert!(absent.verify(&tree.root(), &h(2), None));
    }

    /// Known answers: the definition must not drift silently (the state root of every chain
    /// depends on it). Recompute only on a deliberate state-format change. These were checked
    /// against an independent evaluation of the definition (Python, pycryptodome's Keccak-256).
    #[test]
    fn roots_match_pinned_vectors() {
        let mut tree = Smt::new();
        let mut roots = Vec::new();
        for n in 0..4u64 {
            tree.insert(h(n), h(100 + n));
            roots.push(tree.root().to_hex());
        }
        assert_eq!(roots, PINNED_ROOTS);
    }

    const PINNED_ROOTS: [&str; 4] = [
        "b5f0468dbff5f95bcb61019053d47c58b818c14c8a4a578f76004a12dbbd3a91",
        "c8c47a5b4f118cecf4e2cd3cc0cbf66c7e55952db3c1a1cab3d819d067b01397",
        "b1b0ec133447d34ab06131925a10f14811770c7881172da7a450f29f83804ee4",
        "fff53a339c13c61aa5c5bad50a3f80be52e963c5797cb670cf9137a767057b83",
    ];

    #[test]
    fn neighbouring_keys_split_at_the_last_bit() {
        let mut tree = Smt::new();
        let a = Hash32::ZERO;
        let b = key_with_last_byte(1);
        tree.insert(a, h(1));
        tree.insert(b, h(2));
        let map = BTreeMap::from([(a, h(1)), (b, h(2))]);
        assert_eq!(tree.root(), naive_root(&map));
        let proof = tree.prove(&b);
        assert_eq!(proof.siblings.len(), DEPTH);
        assert!(proof.verify(&tree.root(), &b, Some(&h(2))));
        // An absent key diverging inside the long shared edge ends in an empty half.
        let c = key_with_last_byte(4);
        let absent = tree.prove(&c);
        assert_eq!(absent.other_leaf, None);
        assert!(absent.verify(&tree.root(), &c, None));
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
    fn malformed_or_misplaced_proofs_fail_without_panicking() {
        let mut tree = Smt::new();
        for n in 0..8 {
            tree.insert(h(n), h(10 + n));
        }
        let root = tree.root();
        let proof = tree.prove(&h(1));
        // One sibling too many or too few.
        let mut longer = proof.clone();
        longer.siblings.push(None);
        assert!(!longer.verify(&root, &h(1), Some(&h(11))));
        let mut shorter = proof.clone();
        shorter.siblings.pop();
        assert!(!shorter.verify(&root, &h(1), Some(&h(11))));
        // Deeper than any key.
        let too_deep = SmtProof {
            siblings: vec![None; DEPTH + 1],
            other_leaf: None,
        };
        assert!(!too_deep.verify(&root, &h(1), None));
        // A member claimed absent through its own leaf, or through a leaf beside a value.
        let mut own = proof.clone();
        own.other_leaf = Some(SmtLeaf {
            key: h(1),
            value_hash: h(11),
        });
        assert!(!own.verify(&root, &h(1), None));
        assert!(!own.verify(&root, &h(1), Some(&h(11))));
        // Another member's proof does not prove this key absent.
        let other = tree.prove(&h(2));
        let borrowed = SmtProof {
            siblings: other.siblings.clone(),
            other_leaf: Some(SmtLeaf {
                key: h(2),
                value_hash: h(12),
            }),
        };
        assert!(!borrowed.verify(&root, &h(1), None));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn matches_the_naive_definition(
            ops in proptest::collection::vec((0u64..40, 0u64..1000), 1..40),
            probes in proptest::collection::vec(0u64..60, 1..8),
        ) {
            let mut tree = Smt::new();
            let mut map = BTreeMap::new();
            for (k, v) in &ops {
                tree.insert(h(*k), h(*v));
                map.insert(h(*k), h(*v));
                prop_assert_eq!(tree.root(), naive_root(&map));
            }
            prop_assert_eq!(tree.len(), map.len());
            let bulk = Smt::from_entries(ops.iter().map(|(k, v)| (h(*k), h(*v))));
            prop_assert_eq!(bulk.root(), tree.root());
            prop_assert_eq!(bulk.len(), tree.len());
            let root = tree.root();
            for p in &probes {
                let key = h(*p);
                let value = map.get(&key).copied();
                prop_assert_eq!(tree.get(&key).copied(), value);
                let proof = tree.prove(&key);
                prop_assert!(proof.verify(&root, &key, value.as_ref()));
                prop_assert_eq!(&bulk.prove(&key), &proof);
                // A proof never works for a different value, nor for the opposite claim.
                prop_assert!(!proof.verify(&root, &key, Some(&h(5000))));
                match value {
                    Some(_) => prop_assert!(!proof.verify(&root, &key, None)),
                    None => prop_assert!(!proof.verify(&root, &key, Some(&h(1)))),
                }
            }
        }

        /// Keys sharing long prefixes (the adversarial shape: long compressed edges).
        #[test]
        fn clustered_keys_match_the_naive_definition(bytes in proptest::collection::vec(any::<u8>(), 1..24)) {
            let mut tree = Smt::new();
            let mut map = BTreeMap::new();
            for (i, byte) in bytes.iter().enumerate() {
                let key = key_with_last_byte(*byte);
                tree.insert(key, h(i as u64));
                map.insert(key, h(i as u64));
            }
            prop_assert_eq!(tree.root(), naive_root(&map));
            for probe in 0..=255u8 {
                let key = key_with_last_byte(probe);
                let value = map.get(&key);
                prop_assert!(tree.prove(&key).verify(&tree.root(), &key, value));
            }
        }
    }
}
