//! Genesis: chain id, validator set, value allocations and the faucet account.
//!
//! Invariant: the genesis hash is `Keccak(GENESIS ‖ borsh(genesis))`, so two nodes agree on the
//! allocations exactly when they agree on the hash. Recipients check genesis anchors against
//! their own copy, never against data inside a package (DESIGN §4).

use crate::address::Address;
use crate::hash::{Hash32, hash_object, tag};
use crate::value::ValueRange;
use borsh::{BorshDeserialize, BorshSerialize};
use serde::{Deserialize, Serialize};
use thiserror::Error;

/// A consensus validator (ed25519 key, separate from wallet keys).
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
pub struct GenesisValidator {
    pub name: String,
    #[serde(with = "hex_key")]
    pub consensus_public_key: [u8; 32],
    pub voting_power: u64,
}

/// A range owned from height 0.
#[derive(Clone, Copy, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
pub struct Allocation {
    pub owner: Address,
    pub range: ValueRange,
}

#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
pub struct Genesis {
    pub chain_id: u64,
    pub genesis_time_ms: u64,
    pub validators: Vec<GenesisValidator>,
    /// Sorted by range, non-overlapping.
    pub allocations: Vec<Allocation>,
    /// The testnet faucet account (an ordinary genesis-funded account), if any.
    pub faucet: Option<Address>,
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum GenesisError {
    #[error("genesis has no validators")]
    NoValidators,
    #[error("validator {index} has zero voting power")]
    ZeroVotingPower { index: usize },
    #[error("validator {index} repeats another validator's key")]
    DuplicateValidator { index: usize },
    #[error("allocation {index} is out of order or overlaps the one before it")]
    OverlappingAllocation { index: usize },
    #[error("the faucet account {faucet} has no allocation")]
    UnfundedFaucet { faucet: Address },
}

impl Genesis {
    pub fn validate(&self) -> Result<(), GenesisError> {
        if self.validators.is_empty() {
            return Err(GenesisError::NoValidators);
        }
        for (index, validator) in self.validators.iter().enumerate() {
            if validator.voting_power == 0 {
                return Err(GenesisError::ZeroVotingPower { index });
            }
            if self.validators[..index]
                .iter()
                .any(|v| v.consensus_public_key == validator.consensus_public_key)
            {
                return Err(GenesisError::DuplicateValidator { index });
            }
        }
        for (index, pair) in self.allocations.windows(2).enumerate() {
            if pair[1].range.begin() <= pair[0].range.end() {
                return Err(GenesisError::OverlappingAllocation { index: index + 1 });
            }
        }
        if let Some(faucet) = self.faucet
            && !self.allocations.iter().any(|a| a.owner == faucet)
        {
            return Err(GenesisError::UnfundedFaucet { faucet });
        }
        Ok(())
    }

    pub fn hash(&self) -> Hash32 {
        hash_object(tag::GENESIS, self)
    }

    /// True when genesis gives exactly `range` to `owner`.
    pub fn has_allocation(&self, owner: &Address, range: &ValueRange) -> bool {
        let index = self.allocations.partition_point(|a| a.range.begin() < range.begin());
        self.allocations
            .get(index)
            .is_some_and(|a| a.range == *range && a.owner == *owner)
    }

    pub fn allocations_of(&self, owner: &Address) -> impl Iterator<Item = &Allocation> {
        self.allocations.iter().filter(move |a| a.owner == *owner)
    }

    /// Sum of all voting power.
    pub fn total_voting_power(&self) -> u64 {
        self.validators
            .iter()
            .fold(0u64, |acc, v| acc.saturating_add(v.voting_power))
    }
}

mod hex_key {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(key: &[u8; 32], serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&hex::encode(key))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<[u8; 32], D::Error> {
        let text = String::deserialize(deserializer)?;
        let mut out = [0u8; 32];
        hex::decode_to_slice(text.trim_start_matches("0x"), &mut out).map_err(serde::de::Error::custom)?;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn genesis() -> Genesis {
        let owner = Address([1u8; 20]);
        Genesis {
            chain_id: 821,
            genesis_time_ms: 0,
            validators: vec![GenesisValidator {
                name: "v0".into(),
                consensus_public_key: [3u8; 32],
                voting_power: 1,
            }],
            allocations: vec![
                Allocation {
                    owner,
                    range: ValueRange::new(0, 99).unwrap(),
                },
                Allocation {
                    owner,
                    range: ValueRange::new(100, 199).unwrap(),
                },
            ],
            faucet: Some(owner),
        }
    }

    #[test]
    fn validates_and_looks_up_allocations() {
        let g = genesis();
        g.validate().unwrap();
        let owner = Address([1u8; 20]);
        assert!(g.has_allocation(&owner, &ValueRange::new(100, 199).unwrap()));
        assert!(!g.has_allocation(&owner, &ValueRange::new(0, 199).unwrap()));
        assert!(!g.has_allocation(&Address([2u8; 20]), &ValueRange::new(0, 99).unwrap()));
    }

    #[test]
    fn rejects_bad_genesis() {
        let mut g = genesis();
        g.allocations.swap(0, 1);
        assert_eq!(g.validate(), Err(GenesisError::OverlappingAllocation { index: 1 }));
        let mut g = genesis();
        g.faucet = Some(Address([9u8; 20]));
        assert!(matches!(g.validate(), Err(GenesisError::UnfundedFaucet { .. })));
        let mut g = genesis();
        g.validators.clear();
        assert_eq!(g.validate(), Err(GenesisError::NoValidators));
    }

    #[test]
    fn json_round_trip_keeps_the_hash() {
        let g = genesis();
        let text = serde_json::to_string(&g).unwrap();
        let back: Genesis = serde_json::from_str(&text).unwrap();
        assert_eq!(back.hash(), g.hash());
    }
}
