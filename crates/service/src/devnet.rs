//! The local testnet that `/node/start`, `/node/stop` and `/node/status` manage.
//!
//! The process launcher and the testnet layout live above this crate (they build node homes and
//! genesis with the node crate, which the wallet service does not compile), so the binary hands
//! the service a [`LocalDevnet`] when it starts it.

use schemars::JsonSchema;
use serde::Serialize;
use std::net::SocketAddr;
use std::path::Path;
use thiserror::Error;

/// Why the local testnet could not be started, stopped or read; the message says what to do.
#[derive(Debug, Error)]
#[error("{0}")]
pub struct DevnetError(pub String);

/// What `/node/start` asks for when the testnet does not exist yet.
#[derive(Clone, Debug)]
pub struct DevnetLayout {
    pub validators: usize,
    pub accounts: u32,
    pub start_port: u16,
    pub scrypt_log_n: u8,
}

/// One node of the local testnet, as `/node/status` reports it.
#[derive(Clone, Debug, Serialize, JsonSchema)]
pub struct DevnetNode {
    pub name: String,
    /// `validator`, `bootstrap` or `account`.
    pub role: String,
    pub rpc: SocketAddr,
    pub pid: Option<u32>,
    /// The process runs and answers `/health`.
    pub alive: bool,
    pub height: Option<u64>,
    pub peers: Option<u64>,
    pub ready: bool,
    /// Why it is not ready, as the node reports it.
    pub reasons: Vec<String>,
}

/// What `/node/start` did.
#[derive(Clone, Debug)]
pub struct DevnetStarted {
    /// The testnet was written by this call.
    pub created: bool,
    /// Some process was started (false: everything already ran).
    pub started: bool,
    pub nodes: Vec<DevnetNode>,
}

/// The local testnet under a folder. Calls block (they start and stop processes); the service
/// runs them off its async threads.
pub trait LocalDevnet: Send + Sync {
    /// The nodes of the testnet under `root`, or `None` when none was created there.
    fn status(&self, root: &Path) -> Result<Option<Vec<DevnetNode>>, DevnetError>;
    /// Writes the testnet under `root` with `layout` if it does not exist, then starts every
    /// node that is not running and waits until they answer.
    fn start(&self, root: &Path, layout: &DevnetLayout) -> Result<DevnetStarted, DevnetError>;
    /// Stops every running node of the testnet under `root`; the names of those it stopped.
    fn stop(&self, root: &Path) -> Result<Vec<String>, DevnetError>;
}
