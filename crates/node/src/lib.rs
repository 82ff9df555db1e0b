//! EZchain validator and bootstrap node.
//!
//! Today: node configuration (`node.yaml`), key files, and the testnet layout written by
//! `ezchain testnet init`. The consensus adapter, chain store and RPC server build on these.

pub mod config;
pub mod consensus;
pub mod forward;
pub mod keys;
pub mod metrics;
pub mod rpc;
pub mod runner;
pub mod store;
pub mod testnet;
