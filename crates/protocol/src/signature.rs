//! Wallet keys and signatures: secp256k1, 65-byte recoverable ECDSA over a 32-byte sighash,
//! low-s required. No public key travels; the signer is recovered from the signature.
//!
//! Invariant: `recover_signer` rejects a high-s signature even though the curve would accept it,
//! so every signed object has exactly one valid signature encoding (no malleability).

use crate::address::Address;
use crate::hash::Hash32;
use borsh::{BorshDeserialize, BorshSerialize};
use secp256k1::ecdsa::{RecoverableSignature as Secp256k1Recoverable, RecoveryId, Signature};
use secp256k1::{Message, PublicKey, SECP256K1, SecretKey};
use std::fmt;
use thiserror::Error;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum SignatureError {
    #[error("signature bytes are not a valid secp256k1 signature")]
    Malformed,
    #[error("signature is not in low-s form")]
    HighS,
    #[error("no public key can be recovered from the signature")]
    Unrecoverable,
    #[error("secret key bytes are not a valid secp256k1 scalar")]
    BadSecretKey,
}

/// `r ‖ s ‖ recovery id` (65 bytes).
#[derive(Clone, Copy, PartialEq, Eq, Hash, BorshSerialize, BorshDeserialize)]
pub struct RecoverableSignature(pub [u8; 65]);

impl fmt::Debug for RecoverableSignature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Sig(0x{}…)", hex::encode(&self.0[..6]))
    }
}

impl RecoverableSignature {
    /// Recovers the signing address of `sighash`, requiring low s.
    pub fn recover_signer(&self, sighash: &Hash32) -> Result<Address, SignatureError> {
        let recovery_id = RecoveryId::try_from(i32::from(self.0[64])).map_err(|_| SignatureError::Malformed)?;
        let compact = &self.0[..64];
        let standard = Signature::from_compact(compact).map_err(|_| SignatureError::Malformed)?;
        let mut normalized = standard;
        normalized.normalize_s();
        if normalized != standard {
            return Err(SignatureError::HighS);
        }
        let recoverable =
            Secp256k1Recoverable::from_compact(compact, recovery_id).map_err(|_| SignatureError::Malformed)?;
        let public_key = SECP256K1
            .recover_ecdsa(Message::from_digest(sighash.0), &recoverable)
            .map_err(|_| SignatureError::Unrecoverable)?;
        Ok(address_of(&public_key))
    }

    /// The malleated twin of this signature (`s' = n − s`, recovery id flipped). The curve would
    /// accept it for the same key; [`Self::recover_signer`] refuses it. For tests and fuzzers.
    pub fn high_s_twin(&self) -> RecoverableSignature {
        let mut out = self.0;
        let mut borrow = 0i16;
        for i in (0..32).rev() {
            let mut digit = i16::from(SECP256K1_ORDER[i]) - i16::from(self.0[32 + i]) - borrow;
            borrow = if digit < 0 {
                digit += 256;
                1
            } else {
                0
            };
            out[32 + i] = digit as u8;
        }
        out[64] ^= 1;
        RecoverableSignature(out)
    }
}

/// secp256k1 group order n, big-endian.
const SECP256K1_ORDER: [u8; 32] = [
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfe, 0xba, 0xae, 0xdc,
    0xe6, 0xaf, 0x48, 0xa0, 0x3b, 0xbf, 0xd2, 0x5e, 0x8c, 0xd0, 0x36, 0x41, 0x41,
];

fn address_of(public_key: &PublicKey) -> Address {
    let uncompressed = public_key.serialize_uncompressed();
    let mut xy = [0u8; 64];
    xy.copy_from_slice(&uncompressed[1..]);
    Address::from_public_key_xy(&xy)
}

/// A wallet's secret key. Debug output never shows the key.
#[derive(Clone)]
pub struct SigningKey {
    secret: SecretKey,
    address: Address,
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SigningKey({})", self.address)
    }
}

impl SigningKey {
    /// Builds a key from 32 secret bytes (from a keystore, a mnemonic derivation, or a test seed).
    pub fn from_bytes(bytes: &[u8; 32]) -> Result<Self, SignatureError> {
        let secret = SecretKey::from_byte_array(*bytes).map_err(|_| SignatureError::BadSecretKey)?;
        let address = address_of(&PublicKey::from_secret_key(SECP256K1, &secret));
        Ok(SigningKey { secret, address })
    }

    /// The 32 secret bytes, for writing an encrypted keystore.
    pub fn secret_bytes(&self) -> [u8; 32] {
        self.secret.secret_bytes()
    }

    pub fn address(&self) -> Address {
        self.address
    }

    /// Signs a sighash (RFC 6979 nonce; libsecp256k1 always emits low s).
    pub fn sign(&self, sighash: &Hash32) -> RecoverableSignature {
        let signature = SECP256K1.sign_ecdsa_recoverable(Message::from_digest(sighash.0), &self.secret);
        let (recovery_id, compact) = signature.serialize_compact();
        let mut out = [0u8; 65];
        out[..64].copy_from_slice(&compact);
        out[64] = i32::from(recovery_id) as u8;
        RecoverableSignature(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hash::{tag, tagged_hash};

    fn to_high_s(sig: &RecoverableSignature) -> RecoverableSignature {
        sig.high_s_twin()
    }

    #[test]
    fn sign_and_recover_round_trip() {
        let key = SigningKey::from_bytes(&[7u8; 32]).unwrap();
        let sighash = tagged_hash(tag::BUNDLE_SIGHASH, &[b"hello"]);
        let sig = key.sign(&sighash);
        assert_eq!(sig.recover_signer(&sighash), Ok(key.address()));
        let other = tagged_hash(tag::BUNDLE_SIGHASH, &[b"other"]);
        assert_ne!(sig.recover_signer(&other), Ok(key.address()));
    }

    #[test]
    fn high_s_twin_is_rejected() {
        let key = SigningKey::from_bytes(&[9u8; 32]).unwrap();
        let sighash = tagged_hash(tag::BUNDLE_SIGHASH, &[b"x"]);
        let sig = key.sign(&sighash);
        assert_eq!(to_high_s(&sig).recover_signer(&sighash), Err(SignatureError::HighS));
    }

    #[test]
    fn malformed_signatures_are_errors_not_panics() {
        let sighash = Hash32::ZERO;
        let mut bad = [0u8; 65];
        assert!(RecoverableSignature(bad).recover_signer(&sighash).is_err());
        bad[64] = 9;
        assert_eq!(
            RecoverableSignature(bad).recover_signer(&sighash),
            Err(SignatureError::Malformed)
        );
        assert_eq!(
            SigningKey::from_bytes(&[0u8; 32]).unwrap_err(),
            SignatureError::BadSecretKey
        );
    }

    #[test]
    fn address_matches_ethereum_derivation() {
        // Private key 1 → the well-known Ethereum address of the generator point.
        let mut one = [0u8; 32];
        one[31] = 1;
        let key = SigningKey::from_bytes(&one).unwrap();
        assert_eq!(
            key.address().to_checksum(),
            "0x7E5F4552091A69125d5DfCb7b8C2659029395Bdf"
        );
    }
}
