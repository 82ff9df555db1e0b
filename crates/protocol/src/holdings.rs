//! Holdings lists: the ranges an account holds, as a snapshot commits them
//! (docs/bounded-witnesses.md §2.1).
//!
//! A list is canonical: sorted, disjoint and non-adjacent (adjacent ranges are merged), so one
//! set of coins has exactly one list and one root, and a payer's range inside a merged range is
//! proven by the one range that contains it.
//!
//! Its commitment is a binary Merkle tree over `H(HOLDING_LEAF ‖ begin ‖ end)` in list order (an
//! odd last node pairs with itself), sealed with the length: `root = H(HOLDINGS_ROOT ‖ count ‖
//! tree root)`, and `H(HOLDINGS_EMPTY)` for the empty list. Because the count is inside the root,
//! a proof's path shape (where a node pairs with itself) is fixed by the root, so a
//! [`HoldingsProof`] has exactly one valid sibling list per index.
//!
//! Invariant: [`HoldingsList`] values only exist in canonical form, at most [`MAX_HOLDINGS`]
//! ranges long.

use crate::hash::{Hash32, tag, tagged_hash};
use crate::value::ValueRange;
use borsh::{BorshDeserialize, BorshSerialize};
use thiserror::Error;

/// Longest list a snapshot may commit: a proof is then at most 12 siblings.
pub const MAX_HOLDINGS: usize = 4096;

/// A canonical holdings list.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, BorshSerialize)]
pub struct HoldingsList(Vec<ValueRange>);

impl BorshDeserialize for HoldingsList {
    fn deserialize_reader<R: std::io::Read>(reader: &mut R) -> std::io::Result<Self> {
        let ranges = Vec::<ValueRange>::deserialize_reader(reader)?;
        HoldingsList::from_canonical(ranges)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e.to_string()))
    }
}

impl HoldingsList {
    pub fn new() -> Self {
        HoldingsList(Vec::new())
    }

    /// Accepts `ranges` only if already canonical and within [`MAX_HOLDINGS`].
    pub fn from_canonical(ranges: Vec<ValueRange>) -> Result<Self, HoldingsError> {
        if ranges.len() > MAX_HOLDINGS {
            return Err(HoldingsError::TooMany { count: ranges.len() });
        }
        if ranges
            .windows(2)
            .any(|pair| pair[1].begin() <= pair[0].end().saturating_add(1))
        {
            return Err(HoldingsError::NotCanonical);
        }
        Ok(HoldingsList(ranges))
    }

    pub fn ranges(&self) -> &[ValueRange] {
        &self.0
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The list's range that contains all of `value`, with its index.
    pub fn containing(&self, value: &ValueRange) -> Option<(usize, ValueRange)> {
        let index = self.0.partition_point(|range| range.end() < value.begin());
        self.0
            .get(index)
            .filter(|range| range.contains(value))
            .map(|range| (index, *range))
    }

    /// Adds `value`, merging it with adjacent ranges. Refused when any coin of it is already in
    /// the list (one coin cannot arrive twice) or the list would grow past [`MAX_HOLDINGS`].
    pub fn add(&mut self, value: ValueRange) -> Result<(), HoldingsError> {
        let index = self.0.partition_point(|range| range.end() < value.begin());
        if self.0.get(index).is_some_and(|range| range.intersects(&value)) {
            return Err(HoldingsError::AlreadyHeld { value });
        }
        let joins_left = index > 0 && self.0[index - 1].is_adjacent(&value);
        let joins_right = self.0.get(index).is_some_and(|range| range.is_adjacent(&value));
        let merged_begin = if joins_left {
            self.0[index - 1].begin()
        } else {
            value.begin()
        };
        let merged_end = if joins_right { self.0[index].end() } else { value.end() };
        let merged = ValueRange::new(merged_begin, merged_end).map_err(|_| HoldingsError::NotCanonical)?;
        let start = if joins_left { index - 1 } else { index };
        let stop = if joins_right { index + 1 } else { index };
        if start == stop && self.0.len() >= MAX_HOLDINGS {
            return Err(HoldingsError::TooMany {
                count: self.0.len() + 1,
            });
        }
        self.0.splice(start..stop, std::iter::once(merged));
        Ok(())
    }

    /// Removes every coin of `value` that is in the list (coins not in it are ignored: a claim
    /// may spend what the list never held). Refused only when a split would grow the list past
    /// [`MAX_HOLDINGS`].
    pub fn remove(&mut self, value: &ValueRange) -> Result<(), HoldingsError> {
        let start = self.0.partition_point(|range| range.end() < value.begin());
        let stop = self.0.partition_point(|range| range.begin() <= value.end());
        if start >= stop {
            return Ok(());
        }
        let mut kept = Vec::with_capacity(2);
        let first = self.0[start];
        let last = self.0[stop - 1];
        if first.begin() < value.begin() {
            kept.push(ValueRange::new(first.begin(), value.begin() - 1).map_err(|_| HoldingsError::NotCanonical)?);
        }
        if last.end() > value.end() {
            kept.push(ValueRange::new(value.end() + 1, last.end()).map_err(|_| HoldingsError::NotCanonical)?);
        }
        let new_len = self.0.len() - (stop - start) + kept.len();
        if new_len > MAX_HOLDINGS {
            return Err(HoldingsError::TooMany { count: new_len });
        }
        self.0.splice(start..stop, kept);
        Ok(())
    }

    /// The commitment root of the list (module doc).
    pub fn root(&self) -> Hash32 {
        match tree_root(&self.leaf_hashes()) {
            None => tagged_hash(tag::HOLDINGS_EMPTY, &[]),
            Some(tree) => seal(self.0.len() as u32, &tree),
        }
    }

    /// A proof that the range at `index` is in the list.
    pub fn prove(&self, index: usize) -> Option<HoldingsProof> {
        if index >= self.0.len() {
            return None;
        }
        let mut level = self.leaf_hashes();
        let mut position = index;
        let mut siblings = Vec::new();
        while level.len() > 1 {
            let sibling = position ^ 1;
            if sibling < level.len() {
                siblings.push(level[sibling]);
            }
            level = parents(&level);
            position /= 2;
        }
        Some(HoldingsProof {
            index: index as u32,
            siblings,
        })
    }

    fn leaf_hashes(&self) -> Vec<Hash32> {
        self.0.iter().map(holding_leaf).collect()
    }
}

/// A proof that one range is in a committed holdings list.
#[derive(Clone, Debug, PartialEq, Eq, Hash, BorshSerialize, BorshDeserialize)]
pub struct HoldingsProof {
    pub index: u32,
    /// Bottom-up; a level where the node pairs with itself has no entry.
    pub siblings: Vec<Hash32>,
}

impl HoldingsProof {
    /// True when `range` is entry `index` of the `count`-long list whose root is `root`.
    pub fn verify(&self, root: &Hash32, count: u32, range: &ValueRange) -> bool {
        if self.index >= count || count as usize > MAX_HOLDINGS {
            return false;
        }
        let mut node = holding_leaf(range);
        let mut position = self.index as usize;
        let mut width = count as usize;
        let mut siblings = self.siblings.iter();
        while width > 1 {
            let sibling = position ^ 1;
            node = if sibling >= width {
                tagged_hash(tag::HOLDINGS_NODE, &[&node.0, &node.0])
            } else {
                let Some(sibling_hash) = siblings.next() else {
                    return false;
                };
                if position.is_multiple_of(2) {
                    tagged_hash(tag::HOLDINGS_NODE, &[&node.0, &sibling_hash.0])
                } else {
                    tagged_hash(tag::HOLDINGS_NODE, &[&sibling_hash.0, &node.0])
                }
            };
            position /= 2;
            width = width.div_ceil(2);
        }
        siblings.next().is_none() && seal(count, &node) == *root
    }
}

fn holding_leaf(range: &ValueRange) -> Hash32 {
    tagged_hash(
        tag::HOLDING_LEAF,
        &[&range.begin().to_le_bytes(), &range.end().to_le_bytes()],
    )
}

fn seal(count: u32, tree_root: &Hash32) -> Hash32 {
    tagged_hash(tag::HOLDINGS_ROOT, &[&count.to_le_bytes(), &tree_root.0])
}

fn parents(level: &[Hash32]) -> Vec<Hash32> {
    level
        .chunks(2)
        .map(|pair| {
            let right = pair.get(1).unwrap_or(&pair[0]);
            tagged_hash(tag::HOLDINGS_NODE, &[&pair[0].0, &right.0])
        })
        .collect()
}

fn tree_root(leaves: &[Hash32]) -> Option<Hash32> {
    let mut level = leaves.to_vec();
    if level.is_empty() {
        return None;
    }
    while level.len() > 1 {
        level = parents(&level);
    }
    level.first().copied()
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum HoldingsError {
    #[error("a holdings list must be sorted, disjoint and merged (no adjacent ranges)")]
    NotCanonical,
    #[error("a holdings list may hold at most {MAX_HOLDINGS} ranges ({count} asked)")]
    TooMany { count: usize },
    #[error("{value} arrives twice (some of it is already held)")]
    AlreadyHeld { value: ValueRange },
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeSet;

    fn r(b: u64, e: u64) -> ValueRange {
        ValueRange::new(b, e).unwrap()
    }

    fn coins(list: &HoldingsList) -> BTreeSet<u64> {
        list.ranges()
            .iter()
            .flat_map(|range| range.begin()..=range.end())
            .collect()
    }

    #[test]
    fn add_merges_neighbours_and_refuses_overlap() {
        let mut list = HoldingsList::new();
        list.add(r(10, 19)).unwrap();
        list.add(r(30, 39)).unwrap();
        list.add(r(20, 29)).unwrap();
        assert_eq!(list.ranges(), &[r(10, 39)]);
        assert_eq!(
            list.add(r(39, 45)),
            Err(HoldingsError::AlreadyHeld { value: r(39, 45) })
        );
        list.add(r(0, 8)).unwrap();
        assert_eq!(list.ranges(), &[r(0, 8), r(10, 39)]);
    }

    #[test]
    fn remove_cuts_what_is_held_and_ignores_the_rest() {
        let mut list = HoldingsList::from_canonical(vec![r(0, 9), r(20, 29), r(40, 49)]).unwrap();
        list.remove(&r(5, 44)).unwrap();
        assert_eq!(list.ranges(), &[r(0, 4), r(45, 49)]);
        list.remove(&r(100, 200)).unwrap();
        assert_eq!(list.ranges(), &[r(0, 4), r(45, 49)]);
        list.remove(&r(1, 2)).unwrap();
        assert_eq!(list.ranges(), &[r(0, 0), r(3, 4), r(45, 49)]);
    }

    #[test]
    fn a_non_canonical_list_does_not_decode() {
        for ranges in [
            vec![r(0, 9), r(10, 19)],
            vec![r(10, 19), r(0, 5)],
            vec![r(0, 9), r(5, 19)],
        ] {
            let bytes = crate::codec::encode(&ranges);
            assert!(crate::codec::decode::<HoldingsList>(&bytes, 1024).is_err());
        }
    }

    #[test]
    fn the_root_pins_the_count_and_each_range() {
        let three = HoldingsList::from_canonical(vec![r(0, 0), r(2, 2), r(4, 4)]).unwrap();
        let proof = three.prove(2).unwrap();
        assert!(proof.verify(&three.root(), 3, &r(4, 4)));
        assert!(!proof.verify(&three.root(), 4, &r(4, 4)));
        assert!(!proof.verify(&three.root(), 3, &r(4, 5)));
        let mut padded = proof.clone();
        padded.siblings.push(Hash32::ZERO);
        assert!(!padded.verify(&three.root(), 3, &r(4, 4)));
        assert_ne!(HoldingsList::new().root(), three.root());
        assert!(HoldingsList::new().prove(0).is_none());
    }

    proptest! {
        #[test]
        fn add_and_remove_match_a_set_of_coins(ops in proptest::collection::vec((any::<bool>(), 0u64..200, 0u64..12), 0..60)) {
            let mut list = HoldingsList::new();
            let mut model = BTreeSet::new();
            for (adding, begin, len) in ops {
                let range = r(begin, begin + len);
                if adding {
                    let overlaps = (begin..=begin + len).any(|coin| model.contains(&coin));
                    prop_assert_eq!(list.add(range).is_err(), overlaps);
                    if !overlaps {
                        model.extend(begin..=begin + len);
                    }
                } else {
                    list.remove(&range).unwrap();
                    for coin in begin..=begin + len {
                        model.remove(&coin);
                    }
                }
                prop_assert_eq!(coins(&list), model.clone());
                prop_assert!(HoldingsList::from_canonical(list.ranges().to_vec()).is_ok());
            }
        }

        #[test]
        fn every_entry_proves_and_no_other_range_does(count in 1usize..40, pick in 0usize..40) {
            let list = HoldingsList::from_canonical((0..count as u64).map(|i| r(i * 3, i * 3 + 1)).collect()).unwrap();
            let root = list.root();
            let index = pick % count;
            let proof = list.prove(index).unwrap();
            prop_assert!(proof.verify(&root, count as u32, &list.ranges()[index]));
            let other = list.ranges()[(index + 1) % count];
            prop_assert_eq!(proof.verify(&root, count as u32, &other), count == 1);
        }
    }
}
