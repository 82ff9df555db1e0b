//! EZchain account node: the user's wallet.
//!
//! Keys ([`keystore`], [`wallet_file`]), settings ([`config`]), the node RPC client
//! ([`client`]), the wallet state database ([`store`], [`history`]), and the account node itself
//! ([`wallet::Wallet`]): header sync, send, receive and verify, crash-safe resume. The pending
//! bundle's way to finality is a pure state machine ([`progress`]) the wallet drives.

pub mod actor;
pub mod client;
pub mod config;
pub mod faucet;
pub mod history;
pub mod keystore;
pub mod network;
pub mod progress;
pub mod store;
pub mod wallet;
pub mod wallet_file;

pub use client::NodeClient;
pub use config::AppConfig;
pub use wallet::{Balance, OpenError, SendOutcome, Wallet, WalletError, WalletOpener, WalletOptions};
