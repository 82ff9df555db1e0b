//! Signing and verification for consensus messages with a validator's ed25519 key.
//!
//! Votes are signed over `ezchain_protocol::finality::vote_sign_bytes` — the same bytes a wallet's
//! light client checks in a commit certificate. Proposals, proposal streams, vote extensions and
//! validator proofs each have their own domain tag.
//!
//! Invariant: no message is signed or verified over bytes another message kind could produce.

use super::context::{Address, BlockId, EzContext, Proposal, Vote};
use crate::sign_guard::{SignGuard, SigningAlarm, Step};
use async_trait::async_trait;
use borsh::BorshSerialize;
use ezchain_protocol::Hash32;
use ezchain_protocol::finality::{VoteKind, vote_sign_bytes};
use malachitebft_app_channel::app::types::core::{
    NilOrVal, Round, SignedMessage, ValidatorProof, VoteExtensionScope, VoteType,
};
use malachitebft_signing::{Error as SigningError, Signer, VerificationResult, Verifier};
use malachitebft_signing_ed25519::{PrivateKey, PublicKey, Signature};
use std::fmt;

const PROPOSAL_TAG: &[u8] = b"EZCHAIN_PROPOSAL_V1";
const PROPOSAL_STREAM_TAG: &[u8] = b"EZCHAIN_PROPOSAL_STREAM_V1";
const VOTE_EXTENSION_TAG: &[u8] = b"EZCHAIN_VOTE_EXTENSION_V1";

#[derive(Debug)]
struct UndefinedRound;

impl fmt::Display for UndefinedRound {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a signed message needs a defined round")
    }
}

impl std::error::Error for UndefinedRound {}

fn defined_round(round: Round) -> Result<u32, SigningError> {
    round.as_u32().ok_or_else(|| SigningError::from_source(UndefinedRound))
}

fn tagged<T: BorshSerialize>(tag: &[u8], fields: &T) -> Vec<u8> {
    let mut bytes = tag.to_vec();
    borsh::to_writer(&mut bytes, fields).expect("writing into a Vec cannot fail");
    bytes
}

/// Bytes of a vote, as the light client rebuilds them.
pub fn vote_bytes(chain_id: u64, vote: &Vote) -> Option<Vec<u8>> {
    let kind = match vote.kind {
        VoteType::Prevote => VoteKind::Prevote,
        VoteType::Precommit => VoteKind::Precommit,
    };
    let value = match vote.value {
        NilOrVal::Nil => None,
        NilOrVal::Val(BlockId(hash)) => Some(hash),
    };
    Some(vote_sign_bytes(
        kind,
        chain_id,
        vote.height.0,
        vote.round.as_u32()?,
        &value,
        &vote.validator.0,
    ))
}

/// Bytes of a proposal.
pub fn proposal_bytes(chain_id: u64, proposal: &Proposal) -> Option<Vec<u8>> {
    Some(tagged(
        PROPOSAL_TAG,
        &(
            chain_id,
            proposal.height.0,
            proposal.round.as_u32()?,
            proposal.value.0,
            proposal.pol_round.as_i64(),
            proposal.proposer.0,
        ),
    ))
}

/// Bytes the proposer signs at the end of a proposal stream: it binds the streamed block's hash
/// (`Keccak` of its encoding) to the height, round and proposer, so relayed parts cannot be
/// swapped.
pub fn stream_bytes(chain_id: u64, height: u64, round: u32, proposer: &Address, body_hash: &Hash32) -> Vec<u8> {
    tagged(PROPOSAL_STREAM_TAG, &(chain_id, height, round, proposer.0, *body_hash))
}

fn extension_bytes(chain_id: u64, scope: &VoteExtensionScope<EzContext>, extension: &[u8]) -> Option<Vec<u8>> {
    Some(tagged(
        VOTE_EXTENSION_TAG,
        &(
            chain_id,
            scope.height.0,
            scope.round.as_u32()?,
            scope.value_id.0,
            scope.validator_address.0,
            extension.to_vec(),
        ),
    ))
}

/// A validator's signer (holds its consensus key). Every vote and proposal passes the
/// double-sign guard first ([`crate::sign_guard`]): the record that allows it is on disk before
/// the signature exists. A refusal is reported on `alarms` (the node then stops: the engine
/// cannot go on without the signature it asked for).
pub struct ConsensusSigner {
    pub chain_id: u64,
    pub key: PrivateKey,
    pub guard: std::sync::Arc<SignGuard>,
    pub alarms: tokio::sync::mpsc::UnboundedSender<SigningAlarm>,
}

impl ConsensusSigner {
    fn guarded(
        &self,
        height: u64,
        round: u32,
        step: Step,
        bytes: &[u8],
        precommit_value: Option<Option<[u8; 32]>>,
    ) -> SignResult<Signature> {
        match self.guard.permit(height, round, step, bytes, precommit_value) {
            Ok(()) => Ok(self.key.sign(bytes)),
            Err(refusal) => {
                let _ = self.alarms.send(SigningAlarm::Refused(refusal.clone()));
                Err(SigningError::from_source(refusal))
            }
        }
    }
}

/// Verifies consensus messages of any validator.
pub struct ConsensusVerifier {
    pub chain_id: u64,
}

type SignResult<T> = Result<T, SigningError>;

#[async_trait]
impl Signer<EzContext> for ConsensusSigner {
    async fn sign_vote(&self, vote: Vote) -> SignResult<SignedMessage<EzContext, Vote>> {
        let round = defined_round(vote.round)?;
        let bytes = vote_bytes(self.chain_id, &vote).expect("round checked above");
        let (step, precommit_value) = match vote.kind {
            VoteType::Prevote => (Step::Prevote, None),
            VoteType::Precommit => (
                Step::Precommit,
                Some(match vote.value {
                    NilOrVal::Nil => None,
                    NilOrVal::Val(BlockId(hash)) => Some(hash.0),
                }),
            ),
        };
        let signature = self.guarded(vote.height.0, round, step, &bytes, precommit_value)?;
        Ok(SignedMessage::new(vote, signature))
    }

    async fn sign_proposal(&self, proposal: Proposal) -> SignResult<SignedMessage<EzContext, Proposal>> {
        let round = defined_round(proposal.round)?;
        let bytes = proposal_bytes(self.chain_id, &proposal).expect("round checked above");
        let signature = self.guarded(proposal.height.0, round, Step::Propose, &bytes, None)?;
        Ok(SignedMessage::new(proposal, signature))
    }

    async fn sign_vote_extension(
        &self,
        scope: VoteExtensionScope<EzContext>,
        extension: bytes::Bytes,
    ) -> SignResult<SignedMessage<EzContext, bytes::Bytes>> {
        defined_round(scope.round)?;
        let bytes = extension_bytes(self.chain_id, &scope, &extension).expect("round checked above");
        Ok(SignedMessage::new(extension, self.key.sign(&bytes)))
    }

    async fn sign_validator_proof(
        &self,
        public_key: Vec<u8>,
        peer_id: Vec<u8>,
    ) -> SignResult<ValidatorProof<EzContext>> {
        let bytes = ValidatorProof::<EzContext>::signing_bytes(&public_key, &peer_id);
        let signature = self.key.sign(&bytes);
        Ok(ValidatorProof::new(public_key, peer_id, signature))
    }
}

fn verdict(public_key: &PublicKey, bytes: Option<Vec<u8>>, signature: &Signature) -> VerificationResult {
    VerificationResult::from_bool(bytes.is_some_and(|bytes| public_key.verify(&bytes, signature).is_ok()))
}

#[async_trait]
impl Verifier<EzContext> for ConsensusVerifier {
    async fn verify_signed_vote(
        &self,
        vote: &Vote,
        signature: &Signature,
        public_key: &PublicKey,
    ) -> SignResult<VerificationResult> {
        Ok(verdict(public_key, vote_bytes(self.chain_id, vote), signature))
    }

    async fn verify_signed_proposal(
        &self,
        proposal: &Proposal,
        signature: &Signature,
        public_key: &PublicKey,
    ) -> SignResult<VerificationResult> {
        Ok(verdict(public_key, proposal_bytes(self.chain_id, proposal), signature))
    }

    async fn verify_signed_vote_extension(
        &self,
        scope: &VoteExtensionScope<EzContext>,
        extension: &bytes::Bytes,
        signature: &Signature,
        public_key: &PublicKey,
    ) -> SignResult<VerificationResult> {
        Ok(verdict(
            public_key,
            extension_bytes(self.chain_id, scope, extension),
            signature,
        ))
    }

    async fn verify_validator_proof(&self, proof: &ValidatorProof<EzContext>) -> SignResult<VerificationResult> {
        let Ok(public_key) = proof.decoded_public_key() else {
            return Ok(VerificationResult::Invalid);
        };
        Ok(verdict(&public_key, Some(proof.preimage()), &proof.signature))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::consensus::context::Height;
    use ezchain_protocol::finality::ValidatorAddress;

    struct TestSigner {
        signer: ConsensusSigner,
        refusals: tokio::sync::mpsc::UnboundedReceiver<SigningAlarm>,
        _dir: tempfile::TempDir,
    }

    fn test_signer() -> (TestSigner, PublicKey, Address) {
        let key = PrivateKey::from([5u8; 32]);
        let public = key.public_key();
        let address = Address(ValidatorAddress::from_public_key(public.as_bytes()));
        let dir = tempfile::tempdir().expect("temp dir");
        let guard = SignGuard::open(&dir.path().join(crate::sign_guard::SIGN_STATE_FILE), 0).expect("guard");
        let (alarms, refusals) = tokio::sync::mpsc::unbounded_channel();
        let signer = ConsensusSigner {
            chain_id: 7,
            key,
            guard: std::sync::Arc::new(guard),
            alarms,
        };
        (
            TestSigner {
                signer,
                refusals,
                _dir: dir,
            },
            public,
            address,
        )
    }

    fn signer() -> (ConsensusSigner, PublicKey, Address, tempfile::TempDir) {
        let (test, public, address) = test_signer();
        (test.signer, public, address, test._dir)
    }

    #[tokio::test]
    async fn the_signer_refuses_a_second_different_vote_and_reports_it() {
        let (mut test, _, address) = test_signer();
        let first = vote(VoteType::Prevote, address);
        let signed = test.signer.sign_vote(first.clone()).await.expect("first prevote");
        let again = test.signer.sign_vote(first).await.expect("the same prevote again");
        assert_eq!(signed.signature, again.signature);
        let mut other = vote(VoteType::Prevote, address);
        other.value = NilOrVal::Nil;
        assert!(test.signer.sign_vote(other).await.is_err());
        assert!(matches!(
            test.refusals.try_recv(),
            Ok(SigningAlarm::Refused(crate::sign_guard::SignRefusal::Conflict {
                height: 3,
                round: 1,
                ..
            }))
        ));
    }

    fn vote(kind: VoteType, address: Address) -> Vote {
        Vote {
            kind,
            height: Height(3),
            round: Round::new(1),
            value: NilOrVal::Val(BlockId(Hash32([9; 32]))),
            validator: address,
            extension: None,
        }
    }

    #[tokio::test]
    async fn votes_verify_and_match_the_light_client_bytes() {
        let (signer, public, address, _dir) = signer();
        let verifier = ConsensusVerifier { chain_id: 7 };
        // A round's prevote comes before its precommit (the guard refuses the other order).
        let prevote = signer.sign_vote(vote(VoteType::Prevote, address)).await.unwrap();
        let signed = signer.sign_vote(vote(VoteType::Precommit, address)).await.unwrap();
        assert!(
            verifier
                .verify_signed_vote(&signed.message, &signed.signature, &public)
                .await
                .unwrap()
                .is_valid()
        );
        // The light client's bytes are exactly the ones signed.
        let light = vote_sign_bytes(VoteKind::Precommit, 7, 3, 1, &Some(Hash32([9; 32])), &address.0);
        assert!(public.verify(&light, &signed.signature).is_ok());
        // A prevote signature is not a precommit signature, nor valid on another chain.
        assert!(
            verifier
                .verify_signed_vote(&signed.message, &prevote.signature, &public)
                .await
                .unwrap()
                .is_invalid()
        );
        let other_chain = ConsensusVerifier { chain_id: 8 };
        assert!(
            other_chain
                .verify_signed_vote(&signed.message, &signed.signature, &public)
                .await
                .unwrap()
                .is_invalid()
        );
    }

    #[tokio::test]
    async fn proposals_and_validator_proofs_verify() {
        let (signer, public, address, _dir) = signer();
        let verifier = ConsensusVerifier { chain_id: 7 };
        let proposal = Proposal {
            height: Height(3),
            round: Round::new(0),
            value: BlockId(Hash32([1; 32])),
            pol_round: Round::Nil,
            proposer: address,
        };
        let signed = signer.sign_proposal(proposal.clone()).await.unwrap();
        assert!(
            verifier
                .verify_signed_proposal(&proposal, &signed.signature, &public)
                .await
                .unwrap()
                .is_valid()
        );
        let mut moved = proposal;
        moved.round = Round::new(1);
        assert!(
            verifier
                .verify_signed_proposal(&moved, &signed.signature, &public)
                .await
                .unwrap()
                .is_invalid()
        );
        let proof = signer
            .sign_validator_proof(public.as_bytes().to_vec(), vec![1, 2, 3])
            .await
            .unwrap();
        assert!(verifier.verify_validator_proof(&proof).await.unwrap().is_valid());
        let forged = ValidatorProof::new(proof.public_key.clone(), vec![4], proof.signature);
        assert!(verifier.verify_validator_proof(&forged).await.unwrap().is_invalid());
        assert!(
            signer
                .sign_vote(Vote {
                    round: Round::Nil,
                    ..vote(VoteType::Prevote, address)
                })
                .await
                .is_err()
        );
    }
}
