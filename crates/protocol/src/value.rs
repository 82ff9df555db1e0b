//! Values: inclusive ranges of integer coin indices. Owning `[0, 99]` means owning 100 units.
//!
//! Invariant: a `ValueRange` always has `begin ≤ end < u64::MAX` (so its size fits in a u64);
//! the constructor and the decoder both refuse anything else.

use crate::hash::{Hash32, hash_object, tag};
use borsh::{BorshDeserialize, BorshSerialize};
use std::fmt;
use thiserror::Error;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum ValueError {
    #[error("range end {end} is below its begin {begin}")]
    Inverted { begin: u64, end: u64 },
    #[error("range end may not be u64::MAX")]
    EndTooLarge,
    #[error("{target} is not inside {holder}")]
    NotContained { target: ValueRange, holder: ValueRange },
}

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, BorshSerialize)]
pub struct ValueRange {
    begin: u64,
    end: u64,
}

impl BorshDeserialize for ValueRange {
    fn deserialize_reader<R: std::io::Read>(reader: &mut R) -> std::io::Result<Self> {
        let begin = u64::deserialize_reader(reader)?;
        let end = u64::deserialize_reader(reader)?;
        ValueRange::new(begin, end).map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e.to_string()))
    }
}

impl fmt::Debug for ValueRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[{},{}]", self.begin, self.end)
    }
}

impl fmt::Display for ValueRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[{}, {}]", self.begin, self.end)
    }
}

impl serde::Serialize for ValueRange {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut s = serializer.serialize_struct("ValueRange", 2)?;
        s.serialize_field("begin", &self.begin)?;
        s.serialize_field("end", &self.end)?;
        s.end()
    }
}

impl<'de> serde::Deserialize<'de> for ValueRange {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(serde::Deserialize)]
        struct Raw {
            begin: u64,
            end: u64,
        }
        let raw = Raw::deserialize(deserializer)?;
        ValueRange::new(raw.begin, raw.end).map_err(serde::de::Error::custom)
    }
}

impl ValueRange {
    pub fn new(begin: u64, end: u64) -> Result<Self, ValueError> {
        if end < begin {
            return Err(ValueError::Inverted { begin, end });
        }
        if end == u64::MAX {
            return Err(ValueError::EndTooLarge);
        }
        Ok(ValueRange { begin, end })
    }

    /// `[begin, begin + amount − 1]`; `None` when `amount` is 0 or the end would overflow.
    pub fn with_len(begin: u64, amount: u64) -> Option<Self> {
        let end = begin.checked_add(amount.checked_sub(1)?)?;
        ValueRange::new(begin, end).ok()
    }

    pub fn begin(&self) -> u64 {
        self.begin
    }

    pub fn end(&self) -> u64 {
        self.end
    }

    /// Number of coin indices in the range.
    pub fn len(&self) -> u64 {
        self.end - self.begin + 1
    }

    /// A range is never empty; present for API symmetry with `len`.
    pub fn is_empty(&self) -> bool {
        false
    }

    pub fn contains(&self, other: &ValueRange) -> bool {
        self.begin <= other.begin && other.end <= self.end
    }

    pub fn intersects(&self, other: &ValueRange) -> bool {
        self.begin <= other.end && other.begin <= self.end
    }

    /// True when `other` starts right after `self` ends or the other way round.
    pub fn is_adjacent(&self, other: &ValueRange) -> bool {
        self.end.checked_add(1) == Some(other.begin) || other.end.checked_add(1) == Some(self.begin)
    }

    /// Carves `target` out of `self`: returns the pieces before and after it (0, 1 or 2 ranges).
    pub fn split_out(&self, target: &ValueRange) -> Result<Vec<ValueRange>, ValueError> {
        if !self.contains(target) {
            return Err(ValueError::NotContained {
                target: *target,
                holder: *self,
            });
        }
        let mut rest = Vec::with_capacity(2);
        if target.begin > self.begin {
            rest.push(ValueRange {
                begin: self.begin,
                end: target.begin - 1,
            });
        }
        if target.end < self.end {
            rest.push(ValueRange {
                begin: target.end + 1,
                end: self.end,
            });
        }
        Ok(rest)
    }

    /// The first `amount` units and the remainder, if `amount < len`.
    pub fn split_at_len(&self, amount: u64) -> Option<(ValueRange, ValueRange)> {
        if amount == 0 || amount >= self.len() {
            return None;
        }
        let head = ValueRange {
            begin: self.begin,
            end: self.begin + amount - 1,
        };
        let tail = ValueRange {
            begin: self.begin + amount,
            end: self.end,
        };
        Some((head, tail))
    }
}

/// Sum of range sizes (saturating: a real supply never reaches u64::MAX).
pub fn total_len<'a>(ranges: impl IntoIterator<Item = &'a ValueRange>) -> u64 {
    ranges.into_iter().fold(0u64, |acc, r| acc.saturating_add(r.len()))
}

/// The claim set of a group of ranges: sorted, with overlapping and adjacent ranges merged.
pub fn claim_set<'a>(ranges: impl IntoIterator<Item = &'a ValueRange>) -> Vec<ValueRange> {
    let mut sorted: Vec<ValueRange> = ranges.into_iter().copied().collect();
    sorted.sort();
    let mut merged: Vec<ValueRange> = Vec::with_capacity(sorted.len());
    for range in sorted {
        match merged.last_mut() {
            Some(last) if range.begin <= last.end.saturating_add(1) => {
                last.end = last.end.max(range.end);
            }
            _ => merged.push(range),
        }
    }
    merged
}

/// `Keccak(CLAIM_SET ‖ borsh(claim set))`.
pub fn claim_set_hash(claim_set: &[ValueRange]) -> Hash32 {
    hash_object(tag::CLAIM_SET, claim_set)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn r(b: u64, e: u64) -> ValueRange {
        ValueRange::new(b, e).unwrap()
    }

    #[test]
    fn constructor_refuses_invalid_ranges() {
        assert_eq!(ValueRange::new(5, 4), Err(ValueError::Inverted { begin: 5, end: 4 }));
        assert_eq!(ValueRange::new(0, u64::MAX), Err(ValueError::EndTooLarge));
        let bytes = crate::codec::encode(&(5u64, 4u64));
        assert!(crate::codec::decode::<ValueRange>(&bytes, 64).is_err());
        assert!(serde_json::from_str::<ValueRange>(r#"{"begin":5,"end":4}"#).is_err());
    }

    #[test]
    fn split_contains_intersects() {
        let whole = r(0, 299);
        assert_eq!(whole.split_out(&r(0, 99)).unwrap(), vec![r(100, 299)]);
        assert_eq!(whole.split_out(&r(100, 199)).unwrap(), vec![r(0, 99), r(200, 299)]);
        assert!(whole.split_out(&r(250, 300)).is_err());
        assert!(r(0, 9).intersects(&r(9, 20)));
        assert!(!r(0, 9).intersects(&r(10, 20)));
        assert!(r(0, 9).is_adjacent(&r(10, 20)));
        assert_eq!(r(0, 9).split_at_len(3), Some((r(0, 2), r(3, 9))));
        assert_eq!(r(0, 9).split_at_len(10), None);
        assert_eq!(ValueRange::with_len(10, 5), Some(r(10, 14)));
        assert_eq!(ValueRange::with_len(10, 0), None);
    }

    #[test]
    fn claim_set_merges_overlap_and_adjacency() {
        let set = claim_set(&[r(300, 349), r(2700, 2749), r(0, 9), r(10, 19), r(5, 12)]);
        assert_eq!(set, vec![r(0, 19), r(300, 349), r(2700, 2749)]);
    }

    proptest! {
        #[test]
        fn split_out_partitions_the_range(b in 0u64..1000, len in 1u64..1000, off in 0u64..1000, tlen in 1u64..1000) {
            let whole = ValueRange::with_len(b, len).unwrap();
            let tb = b + off % len;
            let te = (tb + tlen - 1).min(whole.end());
            let target = r(tb, te);
            let rest = whole.split_out(&target).unwrap();
            prop_assert_eq!(total_len(rest.iter()) + target.len(), whole.len());
            for piece in &rest {
                prop_assert!(!piece.intersects(&target));
                prop_assert!(whole.contains(piece));
            }
        }
    }
}
