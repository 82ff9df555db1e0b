//! Finality for light clients: a header is final when validators holding more than 2/3 of the
//! genesis voting power signed a precommit for its hash.
//!
//! The bytes a validator signs for a vote are defined here, once, and the consensus adapter's
//! signer uses the same function, so a wallet can check a commit certificate without the engine:
//! `VOTE tag ‖ borsh{kind, chain_id, height, round, value, validator}`, signed with
//! the validator's ed25519 consensus key.
//!
//! Rule checked by [`verify_commit`]:
//! 1. the certificate is for the header's height and for exactly the header's hash;
//! 2. every signer is a genesis validator, and counts once;
//! 3. every signature verifies over the precommit bytes of (chain id, height, round, header hash,
//!    signer);
//! 4. the signers' voting power is more than 2/3 of the total.
//!
//! Invariant: the validator set is the genesis set (no validator-set changes yet); a certificate
//! that passes proves that a quorum of that set committed this header.

use crate::block::BlockHeader;
use crate::genesis::Genesis;
use crate::hash::{Hash32, keccak256};
use borsh::{BorshDeserialize, BorshSerialize};
use ed25519_consensus::{Signature, VerificationKey};
use std::collections::HashMap;
use std::fmt;
use thiserror::Error;

const VOTE_TAG: &[u8] = b"EZCHAIN_VOTE_V1";
const VALIDATOR_ADDRESS_TAG: &[u8] = b"EZCHAIN_VALIDATOR_ADDRESS_V1";

/// A validator's identity in consensus: 20 bytes of `Keccak(tag ‖ ed25519 public key)`.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, BorshSerialize, BorshDeserialize)]
pub struct ValidatorAddress(pub [u8; 20]);

impl ValidatorAddress {
    pub fn from_public_key(public_key: &[u8; 32]) -> Self {
        let mut input = Vec::with_capacity(VALIDATOR_ADDRESS_TAG.len() + 32);
        input.extend_from_slice(VALIDATOR_ADDRESS_TAG);
        input.extend_from_slice(public_key);
        let digest = keccak256(&input);
        let mut out = [0u8; 20];
        out.copy_from_slice(&digest[..20]);
        ValidatorAddress(out)
    }
}

impl fmt::Debug for ValidatorAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "val:{}", &hex::encode(self.0)[..8])
    }
}

impl fmt::Display for ValidatorAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "0x{}", hex::encode(self.0))
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub enum VoteKind {
    Prevote,
    Precommit,
}

#[derive(BorshSerialize)]
struct VoteSignFields<'a> {
    kind: VoteKind,
    chain_id: u64,
    height: u64,
    round: u32,
    value: &'a Option<Hash32>,
    validator: &'a ValidatorAddress,
}

/// The exact bytes a validator signs for a vote (`value = None` is a vote for nil).
pub fn vote_sign_bytes(
    kind: VoteKind,
    chain_id: u64,
    height: u64,
    round: u32,
    value: &Option<Hash32>,
    validator: &ValidatorAddress,
) -> Vec<u8> {
    let mut bytes = VOTE_TAG.to_vec();
    borsh::to_writer(
        &mut bytes,
        &VoteSignFields {
            kind,
            chain_id,
            height,
            round,
            value,
            validator,
        },
    )
    .expect("writing into a Vec cannot fail");
    bytes
}

#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct CommitSignature {
    pub validator: ValidatorAddress,
    pub signature: [u8; 64],
}

/// The precommits that decided a header: what a node serves next to each finalized header.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct CommitCertificate {
    pub height: u64,
    pub round: u32,
    pub header_hash: Hash32,
    pub signatures: Vec<CommitSignature>,
}

/// The genesis validator set, indexed for certificate checks.
pub struct ValidatorSet {
    chain_id: u64,
    members: HashMap<ValidatorAddress, (VerificationKey, u64)>,
    total_power: u64,
}

impl ValidatorSet {
    pub fn from_genesis(genesis: &Genesis) -> Result<Self, FinalityError> {
        let mut members = HashMap::new();
        for validator in &genesis.validators {
            let key = VerificationKey::try_from(validator.consensus_public_key).map_err(|_| {
                FinalityError::BadValidatorKey {
                    name: validator.name.clone(),
                }
            })?;
            let address = ValidatorAddress::from_public_key(&validator.consensus_public_key);
            members.insert(address, (key, validator.voting_power));
        }
        Ok(ValidatorSet {
            chain_id: genesis.chain_id,
            members,
            total_power: genesis.total_voting_power(),
        })
    }

    pub fn total_power(&self) -> u64 {
        self.total_power
    }

    /// Checks rules 1–4 of the module doc. Returns the voting power that signed.
    pub fn verify_commit(&self, header: &BlockHeader, certificate: &CommitCertificate) -> Result<u64, FinalityError> {
        // The votes' bytes carry the chain id too, but a header of another chain is refused
        // on its own field, whatever its certificate.
        if header.chain_id != self.chain_id {
            return Err(FinalityError::HeaderOfOtherChain {
                header: header.chain_id,
                ours: self.chain_id,
            });
        }
        if certificate.height != header.height {
            return Err(FinalityError::HeightMismatch {
                header: header.height,
                certificate: certificate.height,
            });
        }
        if certificate.header_hash != header.hash() {
            return Err(FinalityError::CertificateForOtherHeader);
        }
        let value = Some(certificate.header_hash);
        let mut seen = std::collections::HashSet::new();
        let mut signed_power = 0u64;
        for entry in &certificate.signatures {
            let (key, power) = self
                .members
                .get(&entry.validator)
                .ok_or(FinalityError::UnknownValidator {
                    validator: entry.validator,
                })?;
            if !seen.insert(entry.validator) {
                return Err(FinalityError::DuplicateSigner {
                    validator: entry.validator,
                });
            }
            let bytes = vote_sign_bytes(
                VoteKind::Precommit,
                self.chain_id,
                certificate.height,
                certificate.round,
                &value,
                &entry.validator,
            );
            key.verify(&Signature::from(entry.signature), &bytes)
                .map_err(|_| FinalityError::BadSignature {
                    validator: entry.validator,
                })?;
            signed_power = signed_power.saturating_add(*power);
        }
        // More than 2/3, in integers: 3 × signed > 2 × total.
        if u128::from(signed_power) * 3 <= u128::from(self.total_power) * 2 {
            return Err(FinalityError::InsufficientVotingPower {
                signed: signed_power,
                total: self.total_power,
            });
        }
        Ok(signed_power)
    }
}

/// Checks a header's commit certificate against the genesis validator set.
pub fn verify_commit(
    genesis: &Genesis,
    header: &BlockHeader,
    certificate: &CommitCertificate,
) -> Result<u64, FinalityError> {
    ValidatorSet::from_genesis(genesis)?.verify_commit(header, certificate)
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum FinalityError {
    #[error("genesis validator {name} has an invalid ed25519 key")]
    BadValidatorKey { name: String },
    #[error("certificate is for height {certificate}, the header is at {header}")]
    HeightMismatch { header: u64, certificate: u64 },
    #[error("header is of chain {header}, this chain is {ours}")]
    HeaderOfOtherChain { header: u64, ours: u64 },
    #[error("certificate commits a different header")]
    CertificateForOtherHeader,
    #[error("signer {validator} is not in the validator set")]
    UnknownValidator { validator: ValidatorAddress },
    #[error("signer {validator} appears twice")]
    DuplicateSigner { validator: ValidatorAddress },
    #[error("signature by {validator} does not verify")]
    BadSignature { validator: ValidatorAddress },
    #[error("only {signed} of {total} voting power signed; more than 2/3 is needed")]
    InsufficientVotingPower { signed: u64, total: u64 },
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::genesis::GenesisValidator;
    use ed25519_consensus::SigningKey;

    fn keys() -> Vec<SigningKey> {
        (1..=4u8).map(|i| SigningKey::from([i; 32])).collect()
    }

    fn genesis(keys: &[SigningKey]) -> Genesis {
        Genesis {
            chain_id: 821,
            genesis_time_ms: 0,
            validators: keys
                .iter()
                .enumerate()
                .map(|(i, k)| GenesisValidator {
                    name: format!("v{i}"),
                    consensus_public_key: k.verification_key().to_bytes(),
                    voting_power: 1,
                })
                .collect(),
            allocations: vec![],
            faucet: None,
        }
    }

    fn header() -> BlockHeader {
        BlockHeader {
            version: crate::block::BLOCK_VERSION,
            chain_id: 821,
            height: 5,
            prev_hash: Hash32([1; 32]),
            state_root: Hash32([2; 32]),
            diff_root: Hash32([3; 32]),
            timestamp_ms: 9,
        }
    }

    fn sign(key: &SigningKey, chain_id: u64, header_hash: Hash32) -> CommitSignature {
        let validator = ValidatorAddress::from_public_key(&key.verification_key().to_bytes());
        let bytes = vote_sign_bytes(VoteKind::Precommit, chain_id, 5, 0, &Some(header_hash), &validator);
        CommitSignature {
            validator,
            signature: key.sign(&bytes).to_bytes(),
        }
    }

    fn certificate(signers: &[SigningKey]) -> CommitCertificate {
        let hash = header().hash();
        CommitCertificate {
            height: 5,
            round: 0,
            header_hash: hash,
            signatures: signers.iter().map(|k| sign(k, 821, hash)).collect(),
        }
    }

    #[test]
    fn quorum_of_three_out_of_four_is_final() {
        let keys = keys();
        assert_eq!(
            verify_commit(&genesis(&keys), &header(), &certificate(&keys[..3])),
            Ok(3)
        );
        assert_eq!(verify_commit(&genesis(&keys), &header(), &certificate(&keys)), Ok(4));
    }

    #[test]
    fn light_client_rejects_too_few_signatures() {
        let keys = keys();
        assert_eq!(
            verify_commit(&genesis(&keys), &header(), &certificate(&keys[..2])),
            Err(FinalityError::InsufficientVotingPower { signed: 2, total: 4 })
        );
    }

    #[test]
    fn light_client_rejects_a_non_validator_signature() {
        let keys = keys();
        let mut cert = certificate(&keys[..3]);
        cert.signatures
            .push(sign(&SigningKey::from([9u8; 32]), 821, cert.header_hash));
        assert!(matches!(
            verify_commit(&genesis(&keys), &header(), &cert),
            Err(FinalityError::UnknownValidator { .. })
        ));
    }

    #[test]
    fn light_client_rejects_a_certificate_for_another_header() {
        let keys = keys();
        let mut other = header();
        other.state_root = Hash32([7; 32]);
        assert_eq!(
            verify_commit(&genesis(&keys), &other, &certificate(&keys)),
            Err(FinalityError::CertificateForOtherHeader)
        );
        // Signatures over another hash, relabelled as this header's, do not verify.
        let mut relabelled = certificate(&keys[..1]);
        relabelled.signatures = keys[..3].iter().map(|k| sign(k, 821, other.hash())).collect();
        assert!(matches!(
            verify_commit(&genesis(&keys), &header(), &relabelled),
            Err(FinalityError::BadSignature { .. })
        ));
    }

    #[test]
    fn duplicates_wrong_chain_and_wrong_height_are_rejected() {
        let keys = keys();
        let mut dup = certificate(&keys[..2]);
        dup.signatures.push(dup.signatures[0].clone());
        assert!(matches!(
            verify_commit(&genesis(&keys), &header(), &dup),
            Err(FinalityError::DuplicateSigner { .. })
        ));
        let hash = header().hash();
        let mut other_chain = certificate(&keys[..1]);
        other_chain.signatures = keys[..3].iter().map(|k| sign(k, 822, hash)).collect();
        assert!(matches!(
            verify_commit(&genesis(&keys), &header(), &other_chain),
            Err(FinalityError::BadSignature { .. })
        ));
        // A header that names another chain is refused even with votes that verify for it.
        let mut foreign = header();
        foreign.chain_id = 822;
        let foreign_hash = foreign.hash();
        let foreign_certificate = CommitCertificate {
            height: 5,
            round: 0,
            header_hash: foreign_hash,
            signatures: keys.iter().map(|k| sign(k, 821, foreign_hash)).collect(),
        };
        assert_eq!(
            verify_commit(&genesis(&keys), &foreign, &foreign_certificate),
            Err(FinalityError::HeaderOfOtherChain { header: 822, ours: 821 })
        );
        let mut wrong_height = certificate(&keys);
        wrong_height.height = 6;
        assert!(matches!(
            verify_commit(&genesis(&keys), &header(), &wrong_height),
            Err(FinalityError::HeightMismatch { .. })
        ));
    }
}
