//! EZchain V2 protocol: the data model and every rule, as pure deterministic code.
//!
//! No I/O, no async, no clock, no global randomness: time, randomness and storage come in as
//! arguments. Nodes and wallets share these rules; see the crate README for the objects and the
//! verification rule in plain words.

pub mod address;
pub mod block;
pub mod bundle;
pub mod codec;
pub mod finality;
pub mod genesis;
pub mod hash;
pub mod holdings;
pub mod mailbox;
pub mod mempool;
pub mod ownership;
pub mod receipt;
pub mod signature;
pub mod smt;
pub mod snapshot;
pub mod state;
pub mod value;
pub mod witness;

pub use address::Address;
pub use block::{AccountLeaf, Block, BlockEntry, BlockHeader, BundleRef, DiffEntry, HeaderLite, HoldingsCommitment};
pub use bundle::{BundleEnvelope, BundleSidecar, EnvelopeParams, OffChainTx, Submission};
pub use genesis::{Allocation, Genesis, GenesisValidator};
pub use hash::Hash32;
pub use receipt::{ConfirmedBundleUnit, Receipt};
pub use signature::{RecoverableSignature, SigningKey};
pub use state::{
    AppliedBlock, BuiltBlock, ChainState, apply_block, apply_block_verified, build_block, build_block_verified,
};
pub use value::ValueRange;
pub use witness::{Checkpoint, TransferPackage, Verifier, WitnessAnchor, WitnessV2};
