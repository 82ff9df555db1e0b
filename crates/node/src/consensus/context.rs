//! EZchain's consensus context: the types the Malachite engine orders and votes on.
//!
//! The consensus value is small — the hash of the proposed block's header — and the block body
//! travels as proposal parts (see `streaming.rs`). Validators are the genesis set with their
//! ed25519 keys; the proposer rotates round-robin over `height + round`.
//!
//! Invariant: these types only carry EZchain data across the engine boundary; every rule about
//! blocks lives in the protocol crate.

use bytes::Bytes;
use ezchain_protocol::Hash32;
use ezchain_protocol::finality::ValidatorAddress;
use ezchain_protocol::genesis::Genesis;
use malachitebft_app_channel::app::types::core::{
    self as core, Context, NilOrVal, Round, SignedExtension, ValidatorSet as _, VoteType,
};
use malachitebft_signing_ed25519::{Ed25519, PublicKey};
use std::fmt;
use std::sync::Arc;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Height(pub u64);

impl fmt::Display for Height {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl core::Height for Height {
    const ZERO: Self = Height(0);
    const INITIAL: Self = Height(1);

    fn increment_by(&self, n: u64) -> Self {
        Height(self.0.saturating_add(n))
    }

    fn decrement_by(&self, n: u64) -> Option<Self> {
        self.0.checked_sub(n).map(Height)
    }

    fn as_u64(&self) -> u64 {
        self.0
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Address(pub ValidatorAddress);

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl core::Address for Address {}

/// The value consensus decides: a block, named by its header hash.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct BlockId(pub Hash32);

impl fmt::Display for BlockId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl core::Value for BlockId {
    type Id = BlockId;

    fn id(&self) -> BlockId {
        *self
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Vote {
    pub kind: VoteType,
    pub height: Height,
    pub round: Round,
    pub value: NilOrVal<BlockId>,
    pub validator: Address,
    pub extension: Option<SignedExtension<EzContext>>,
}

impl core::Vote<EzContext> for Vote {
    fn height(&self) -> Height {
        self.height
    }
    fn round(&self) -> Round {
        self.round
    }
    fn value(&self) -> &NilOrVal<BlockId> {
        &self.value
    }
    fn take_value(self) -> NilOrVal<BlockId> {
        self.value
    }
    fn vote_type(&self) -> VoteType {
        self.kind
    }
    fn validator_address(&self) -> &Address {
        &self.validator
    }
    fn extension(&self) -> Option<&SignedExtension<EzContext>> {
        self.extension.as_ref()
    }
    fn take_extension(&mut self) -> Option<SignedExtension<EzContext>> {
        self.extension.take()
    }
    fn extend(self, extension: SignedExtension<EzContext>) -> Self {
        Vote {
            extension: Some(extension),
            ..self
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Proposal {
    pub height: Height,
    pub round: Round,
    pub value: BlockId,
    pub pol_round: Round,
    pub proposer: Address,
}

impl core::Proposal<EzContext> for Proposal {
    fn height(&self) -> Height {
        self.height
    }
    fn round(&self) -> Round {
        self.round
    }
    fn value(&self) -> &BlockId {
        &self.value
    }
    fn take_value(self) -> BlockId {
        self.value
    }
    fn pol_round(&self) -> Round {
        self.pol_round
    }
    fn validator_address(&self) -> &Address {
        &self.proposer
    }
}

/// One piece of a streamed block proposal: `Init`, then `Data` chunks of the borsh-encoded
/// block, then `Fin` with the proposer's signature over all of it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ProposalPart {
    Init {
        height: Height,
        round: Round,
        valid_round: Round,
        proposer: Address,
    },
    Data(Bytes),
    Fin {
        signature: [u8; 64],
    },
}

impl core::ProposalPart<EzContext> for ProposalPart {
    fn is_first(&self) -> bool {
        matches!(self, ProposalPart::Init { .. })
    }
    fn is_last(&self) -> bool {
        matches!(self, ProposalPart::Fin { .. })
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Validator {
    pub address: Address,
    pub public_key: PublicKey,
    pub voting_power: u64,
}

impl core::Validator<EzContext> for Validator {
    fn address(&self) -> &Address {
        &self.address
    }
    fn public_key(&self) -> &PublicKey {
        &self.public_key
    }
    fn voting_power(&self) -> u64 {
        self.voting_power
    }
}

/// The validator set, sorted by address so every node indexes it the same way.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ValidatorSet {
    pub validators: Arc<Vec<Validator>>,
}

impl ValidatorSet {
    /// The genesis validators; `None` if a key in genesis is not a valid ed25519 point.
    pub fn from_genesis(genesis: &Genesis) -> Option<Self> {
        let mut validators = genesis
            .validators
            .iter()
            .map(|v| {
                Some(Validator {
                    address: Address(ValidatorAddress::from_public_key(&v.consensus_public_key)),
                    public_key: PublicKey::from_bytes(v.consensus_public_key).ok()?,
                    voting_power: v.voting_power,
                })
            })
            .collect::<Option<Vec<_>>>()?;
        validators.sort_by_key(|v| v.address);
        Some(ValidatorSet {
            validators: Arc::new(validators),
        })
    }
}

impl core::ValidatorSet<EzContext> for ValidatorSet {
    fn count(&self) -> usize {
        self.validators.len()
    }
    fn total_voting_power(&self) -> u64 {
        self.validators.iter().map(|v| v.voting_power).sum()
    }
    fn get_by_address(&self, address: &Address) -> Option<&Validator> {
        self.validators.iter().find(|v| v.address == *address)
    }
    fn get_by_index(&self, index: usize) -> Option<&Validator> {
        self.validators.get(index)
    }
}

/// The engine context for one chain.
#[derive(Clone, Debug)]
pub struct EzContext {
    pub chain_id: u64,
}

impl Context for EzContext {
    type Address = Address;
    type Height = Height;
    type ProposalPart = ProposalPart;
    type Proposal = Proposal;
    type Validator = Validator;
    type ValidatorSet = ValidatorSet;
    type Timeouts = core::LinearTimeouts;
    type Value = BlockId;
    type Vote = Vote;
    type Extension = Bytes;
    type SigningScheme = Ed25519;

    fn select_proposer<'a>(&self, validator_set: &'a ValidatorSet, height: Height, round: Round) -> &'a Validator {
        let count = validator_set.count().max(1) as u64;
        let round = u64::from(round.as_u32().unwrap_or(0));
        let index = (height.0.wrapping_sub(1).wrapping_add(round)) % count;
        validator_set
            .get_by_index(index as usize)
            .expect("the genesis validator set is never empty")
    }

    fn new_proposal(
        &self,
        height: Height,
        round: Round,
        value: BlockId,
        pol_round: Round,
        address: Address,
    ) -> Proposal {
        Proposal {
            height,
            round,
            value,
            pol_round,
            proposer: address,
        }
    }

    fn new_prevote(&self, height: Height, round: Round, value_id: NilOrVal<BlockId>, address: Address) -> Vote {
        Vote {
            kind: VoteType::Prevote,
            height,
            round,
            value: value_id,
            validator: address,
            extension: None,
        }
    }

    fn new_precommit(&self, height: Height, round: Round, value_id: NilOrVal<BlockId>, address: Address) -> Vote {
        Vote {
            kind: VoteType::Precommit,
            height,
            round,
            value: value_id,
            validator: address,
            extension: None,
        }
    }
}
