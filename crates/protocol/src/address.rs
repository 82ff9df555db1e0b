//! Account addresses: the last 20 bytes of Keccak-256 of the uncompressed secp256k1 public key,
//! shown as `0x…` with the EIP-55 mixed-case checksum.
//!
//! Invariant: an `Address` is always exactly 20 bytes; text is parsed once at the edge. Parsing
//! accepts all-lowercase and all-uppercase hex, and mixed case only when the checksum matches.

use crate::hash::{Hash32, keccak256, tag, tagged_hash};
use borsh::{BorshDeserialize, BorshSerialize};
use std::fmt;
use std::str::FromStr;
use thiserror::Error;

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, BorshSerialize, BorshDeserialize)]
pub struct Address(pub [u8; 20]);

#[derive(Debug, Error, PartialEq, Eq)]
pub enum AddressError {
    #[error("an address is 0x followed by 40 hex digits")]
    BadFormat,
    #[error("the address's mixed-case checksum (EIP-55) does not match; re-copy the address")]
    BadChecksum,
}

impl Address {
    /// Address of an uncompressed public key given as its 64-byte `x ‖ y`.
    pub fn from_public_key_xy(xy: &[u8; 64]) -> Address {
        let digest = keccak256(xy);
        let mut out = [0u8; 20];
        out.copy_from_slice(&digest[12..]);
        Address(out)
    }

    /// The SMT key of this account: `Keccak(ADDR_KEY ‖ address bytes)`.
    pub fn addr_key(&self) -> Hash32 {
        tagged_hash(tag::ADDR_KEY, &[&self.0])
    }

    /// EIP-55 checksummed text.
    pub fn to_checksum(&self) -> String {
        let lower = hex::encode(self.0);
        let digest = keccak256(lower.as_bytes());
        let mut out = String::with_capacity(42);
        out.push_str("0x");
        for (i, c) in lower.chars().enumerate() {
            let nibble = (digest[i / 2] >> (if i % 2 == 0 { 4 } else { 0 })) & 0x0f;
            if c.is_ascii_alphabetic() && nibble >= 8 {
                out.push(c.to_ascii_uppercase());
            } else {
                out.push(c);
            }
        }
        out
    }
}

impl FromStr for Address {
    type Err = AddressError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let digits = text
            .strip_prefix("0x")
            .or_else(|| text.strip_prefix("0X"))
            .ok_or(AddressError::BadFormat)?;
        if digits.len() != 40 || !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(AddressError::BadFormat);
        }
        let mut bytes = [0u8; 20];
        hex::decode_to_slice(digits, &mut bytes).map_err(|_| AddressError::BadFormat)?;
        let address = Address(bytes);
        let has_lower = digits.bytes().any(|b| b.is_ascii_lowercase());
        let has_upper = digits.bytes().any(|b| b.is_ascii_uppercase());
        if has_lower && has_upper && address.to_checksum()[2..] != *digits {
            return Err(AddressError::BadChecksum);
        }
        Ok(address)
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_checksum())
    }
}

impl fmt::Debug for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "0x{}", &hex::encode(self.0)[..8])
    }
}

impl serde::Serialize for Address {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.to_checksum())
    }
}

impl<'de> serde::Deserialize<'de> for Address {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = <String as serde::Deserialize>::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Vectors from EIP-55.
    const VECTORS: [&str; 4] = [
        "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed",
        "0xfB6916095ca1df60bB79Ce92cE3Ea74c37c5d359",
        "0xdbF03B407c01E7cD3CBea99509d93f8DDDC8C6FB",
        "0xD1220A0cf47c7B9Be7A2E6BA89F429762e7b9aDb",
    ];

    #[test]
    fn eip55_vectors_round_trip() {
        for text in VECTORS {
            let address: Address = text.parse().unwrap();
            assert_eq!(address.to_checksum(), text);
        }
    }

    #[test]
    fn any_single_case_is_accepted_but_wrong_mixed_case_is_not() {
        let text = VECTORS[0];
        assert!(text.to_lowercase().parse::<Address>().is_ok());
        assert!(format!("0x{}", text[2..].to_uppercase()).parse::<Address>().is_ok());
        let wrong = text.replacen('a', "A", 1);
        assert_eq!(wrong.parse::<Address>(), Err(AddressError::BadChecksum));
        assert_eq!("0x1234".parse::<Address>(), Err(AddressError::BadFormat));
        assert_eq!(
            "5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed".parse::<Address>(),
            Err(AddressError::BadFormat)
        );
    }
}
