//! Keccak-256 with a domain tag per object kind.
//!
//! Invariant: every protocol hash is `Keccak256(tag ‖ bytes)` with a tag from [`tag`], so two
//! object kinds can never produce the same digest from the same bytes.

use borsh::{BorshDeserialize, BorshSerialize};
use sha3::{Digest, Keccak256};
use std::fmt;

/// A 32-byte digest.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, BorshSerialize, BorshDeserialize)]
pub struct Hash32(pub [u8; 32]);

impl Hash32 {
    pub const ZERO: Hash32 = Hash32([0u8; 32]);

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// Parses 64 hex digits, with or without a `0x` prefix.
    pub fn from_hex(text: &str) -> Result<Self, hex::FromHexError> {
        let digits = text.strip_prefix("0x").unwrap_or(text);
        let mut out = [0u8; 32];
        hex::decode_to_slice(digits, &mut out)?;
        Ok(Hash32(out))
    }

    /// Bit `index` counted from the most significant bit of byte 0 (index 0) to the least
    /// significant bit of byte 31 (index 255): the order in which the SMT consumes key bits.
    pub fn bit(&self, index: usize) -> bool {
        (self.0[index / 8] >> (7 - (index % 8))) & 1 == 1
    }

    /// Number of leading bits `self` and `other` share (256 when equal).
    pub fn common_prefix_len(&self, other: &Hash32) -> usize {
        for (i, (a, b)) in self.0.iter().zip(other.0.iter()).enumerate() {
            let diff = a ^ b;
            if diff != 0 {
                return i * 8 + diff.leading_zeros() as usize;
            }
        }
        256
    }
}

impl fmt::Debug for Hash32 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "0x{}", &self.to_hex()[..16])
    }
}

impl fmt::Display for Hash32 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "0x{}", self.to_hex())
    }
}

impl serde::Serialize for Hash32 {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.to_string())
    }
}

impl<'de> serde::Deserialize<'de> for Hash32 {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = <String as serde::Deserialize>::deserialize(deserializer)?;
        Hash32::from_hex(&text).map_err(serde::de::Error::custom)
    }
}

/// Domain tags, one per hashed object kind.
pub mod tag {
    pub const BUNDLE_BODY: &[u8] = b"EZCHAIN_BUNDLE_BODY_V2";
    pub const BUNDLE_SIGHASH: &[u8] = b"EZCHAIN_BUNDLE_V2";
    pub const ENVELOPE: &[u8] = b"EZCHAIN_ENVELOPE_V2";
    pub const CLAIM_SET: &[u8] = b"EZCHAIN_CLAIM_SET_V1";
    pub const ADDR_KEY: &[u8] = b"EZCHAIN_ADDR_KEY_V2";
    pub const ACCOUNT_LEAF: &[u8] = b"EZCHAIN_ACCOUNT_LEAF_V3";
    // V3: the leaf-shortcut tree (a subtree holding one leaf is that leaf).
    pub const SMT_LEAF: &[u8] = b"EZCHAIN_SMT_LEAF_V3";
    pub const SMT_NODE: &[u8] = b"EZCHAIN_SMT_NODE_V3";
    pub const SMT_EMPTY: &[u8] = b"EZCHAIN_SMT_EMPTY_V3";
    pub const DIFF_LEAF: &[u8] = b"EZCHAIN_DIFF_LEAF_V2";
    pub const DIFF_NODE: &[u8] = b"EZCHAIN_DIFF_NODE_V2";
    pub const EMPTY_DIFF_ROOT: &[u8] = b"EZCHAIN_EMPTY_DIFF_ROOT_V2";
    pub const BLOCK_HEADER: &[u8] = b"EZCHAIN_BLOCK_ID_V2";
    pub const TRANSFER_PACKAGE: &[u8] = b"EZCHAIN_TRANSFER_PACKAGE_V2";
    pub const GENESIS: &[u8] = b"EZCHAIN_GENESIS_V2";
    pub const ALLOCATION_LEAF: &[u8] = b"EZCHAIN_ALLOCATION_V2";
    pub const MAILBOX_AUTH: &[u8] = b"EZCHAIN_MAILBOX_AUTH_V1";
    pub const HOLDING_LEAF: &[u8] = b"EZCHAIN_HOLDING_LEAF_V1";
    pub const HOLDINGS_NODE: &[u8] = b"EZCHAIN_HOLDINGS_NODE_V1";
    pub const HOLDINGS_ROOT: &[u8] = b"EZCHAIN_HOLDINGS_ROOT_V1";
    pub const HOLDINGS_EMPTY: &[u8] = b"EZCHAIN_HOLDINGS_EMPTY_V1";
    pub const SNAPSHOT_EVIDENCE: &[u8] = b"EZCHAIN_SNAPSHOT_EVIDENCE_V1";
}

/// `Keccak256(tag ‖ part₀ ‖ part₁ ‖ …)`.
pub fn tagged_hash(tag: &[u8], parts: &[&[u8]]) -> Hash32 {
    let mut hasher = Keccak256::new();
    hasher.update(tag);
    for part in parts {
        hasher.update(part);
    }
    Hash32(hasher.finalize().into())
}

/// `Keccak256(tag ‖ borsh(value))`.
pub fn hash_object<T: BorshSerialize + ?Sized>(tag: &[u8], value: &T) -> Hash32 {
    let mut hasher = Keccak256::new();
    hasher.update(tag);
    value
        .serialize(&mut KeccakWriter(&mut hasher))
        .expect("writing into a hasher cannot fail");
    Hash32(hasher.finalize().into())
}

/// Plain Keccak-256 without a tag: only for the Ethereum-style address derivation.
pub fn keccak256(bytes: &[u8]) -> [u8; 32] {
    Keccak256::digest(bytes).into()
}

/// Streams borsh output straight into the hasher instead of building a Vec first.
struct KeccakWriter<'a>(&'a mut Keccak256);

impl std::io::Write for KeccakWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.update(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bits_are_msb_first() {
        let mut h = Hash32::ZERO;
        h.0[0] = 0b1000_0000;
        h.0[31] = 0b0000_0001;
        assert!(h.bit(0));
        assert!(!h.bit(1));
        assert!(h.bit(255));
        assert_eq!(h.common_prefix_len(&Hash32::ZERO), 0);
        let mut g = Hash32::ZERO;
        g.0[31] = 1;
        assert_eq!(g.common_prefix_len(&Hash32::ZERO), 255);
        assert_eq!(g.common_prefix_len(&g), 256);
    }

    #[test]
    fn tags_separate_domains() {
        let a = tagged_hash(tag::SMT_LEAF, &[b"x"]);
        let b = tagged_hash(tag::SMT_NODE, &[b"x"]);
        assert_ne!(a, b);
        assert_eq!(hash_object(tag::SMT_LEAF, &1u8), tagged_hash(tag::SMT_LEAF, &[&[1u8]]));
    }

    #[test]
    fn keccak_matches_known_vector() {
        // Keccak-256("") as used by Ethereum (not SHA3-256).
        assert_eq!(
            hex::encode(keccak256(b"")),
            "c5d2460186f7233c927e7db2dcc703c0e500b653ca82273b7bfad8045d85a470"
        );
    }

    #[test]
    fn hex_round_trip() {
        let h = tagged_hash(tag::GENESIS, &[]);
        assert_eq!(Hash32::from_hex(&h.to_string()).unwrap(), h);
        assert!(Hash32::from_hex("0x12").is_err());
    }
}
