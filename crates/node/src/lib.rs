//! EZchain validator and bootstrap node.
//!
//! Configuration (`node.yaml`), keys and the testnet layout (`ezchain testnet init`); the
//! consensus adapter over Malachite, the chain store, the mailbox, and the RPC server.

pub mod config;
pub mod consensus;
pub mod forward;
pub mod keys;
pub mod mailbox;
pub mod metrics;
pub mod rpc;
pub mod runner;
pub mod sign_guard;
pub mod store;
pub mod testnet;
