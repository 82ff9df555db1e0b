//! Canonical binary encoding (borsh) for everything hashed, signed, stored or sent between nodes.
//!
//! Invariant: decoding never panics, rejects trailing bytes, and refuses input longer than the
//! caller's cap before reading it, so a length prefix can never make us allocate unbounded memory.

use borsh::{BorshDeserialize, BorshSerialize};
use thiserror::Error;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum DecodeError {
    #[error("input is {len} bytes, over the {max}-byte limit")]
    TooLarge { len: usize, max: usize },
    #[error("malformed encoding: {0}")]
    Malformed(String),
}

/// Encodes a value canonically.
pub fn encode<T: BorshSerialize + ?Sized>(value: &T) -> Vec<u8> {
    borsh::to_vec(value).expect("serializing into a Vec cannot fail")
}

/// Length of the canonical encoding without building it.
pub fn encoded_len<T: BorshSerialize + ?Sized>(value: &T) -> usize {
    borsh::object_length(value).expect("measuring an encoding cannot fail")
}

/// Decodes exactly one value from `bytes`, at most `max_len` bytes long.
pub fn decode<T: BorshDeserialize>(bytes: &[u8], max_len: usize) -> Result<T, DecodeError> {
    if bytes.len() > max_len {
        return Err(DecodeError::TooLarge {
            len: bytes.len(),
            max: max_len,
        });
    }
    borsh::from_slice(bytes).map_err(|e| DecodeError::Malformed(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_trailing_bytes_and_oversize() {
        let bytes = encode(&7u64);
        assert_eq!(decode::<u64>(&bytes, 64), Ok(7));
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(matches!(decode::<u64>(&longer, 64), Err(DecodeError::Malformed(_))));
        assert!(matches!(decode::<u64>(&bytes, 4), Err(DecodeError::TooLarge { .. })));
    }

    #[test]
    fn huge_length_prefix_does_not_allocate() {
        // A Vec<u64> claiming 2^32-1 elements backed by 4 bytes must fail, not allocate 32 GiB.
        let bytes = [0xff, 0xff, 0xff, 0xff];
        assert!(decode::<Vec<u64>>(&bytes, 1024).is_err());
    }
}
