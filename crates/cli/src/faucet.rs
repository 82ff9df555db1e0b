//! The testnet faucet: an account node (the wallet crate) holding the genesis-funded faucet
//! key, co-hosted with the bootstrap node and plugged into its `/v1/faucet` endpoint.
//!
//! The wallet runs on its own thread and pays one request at a time (a wallet has at most one
//! pending bundle); the node's RPC handlers wait for its answer without blocking the runtime.

use crate::CliError;
use async_trait::async_trait;
use ezchain_host::export::{ExportError, export_database};
use ezchain_host::genesis_file::load_genesis;
use ezchain_node::config::NodeConfig;
use ezchain_node::faucet::{FaucetRefusal, FaucetService};
use ezchain_node::keys::load_wallet_key;
use ezchain_protocol::Address;
use ezchain_rpc::ErrorCode;
use ezchain_rpc::types::FaucetGrant;
use ezchain_wallet::history::TxStatus;
use ezchain_wallet::{NodeClient, Wallet, WalletError, WalletOptions};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc;
use std::time::Duration;
use tokio::sync::oneshot;

/// How long one faucet payment may take to be finalized and delivered.
const PAY_WAIT: Duration = Duration::from_secs(60);

enum Job {
    Pay {
        recipient: Address,
        amount: u64,
        reply: oneshot::Sender<Result<FaucetGrant, FaucetRefusal>>,
    },
    /// An online copy of the wallet's database, made between two payments.
    Export {
        target: PathBuf,
        reply: oneshot::Sender<Result<u64, ExportError>>,
    },
}

struct Faucet {
    jobs: mpsc::Sender<Job>,
}

#[async_trait]
impl FaucetService for Faucet {
    async fn pay(&self, recipient: Address, amount: u64) -> Result<FaucetGrant, FaucetRefusal> {
        let (reply, answer) = oneshot::channel();
        let unavailable = || FaucetRefusal {
            status: 503,
            code: ErrorCode::FaucetUnavailable,
            message: "the faucet wallet stopped; see the node log".into(),
            charged: false,
        };
        self.jobs
            .send(Job::Pay {
                recipient,
                amount,
                reply,
            })
            .map_err(|_| unavailable())?;
        answer.await.map_err(|_| unavailable())?
    }

    async fn export_wallet(&self, target: PathBuf) -> Result<u64, ExportError> {
        let (reply, answer) = oneshot::channel();
        let stopped = || ExportError::Io {
            path: PathBuf::from("faucet_wallet"),
            source: std::io::Error::other("the faucet wallet stopped; see the node log"),
        };
        self.jobs.send(Job::Export { target, reply }).map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }
}

/// Opens the faucet wallet of the node in `home` (call outside the async runtime).
pub fn start(home: &Path, config: &NodeConfig) -> Result<Option<Arc<dyn FaucetService>>, CliError> {
    let Some(faucet) = &config.faucet else {
        return Ok(None);
    };
    let fail = |code: &'static str, message: String| CliError {
        code,
        message,
        hint: Some("the bootstrap node's faucet section in node.yaml names the faucet key file"),
    };
    let key = load_wallet_key(&config.resolve(home, &faucet.key_file)).map_err(|e| fail("bad_key", e.to_string()))?;
    let genesis =
        load_genesis(&config.resolve(home, &config.genesis_file)).map_err(|e| fail("bad_genesis", e.to_string()))?;
    let mut rpc = config.rpc.listen_addr;
    if rpc.ip().is_unspecified() {
        rpc.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
    }
    let client = NodeClient::new(&[rpc.to_string()], Duration::from_secs(10))
        .map_err(|e| fail("faucet_error", e.to_string()))?;
    let data_dir = config.resolve(home, &config.data_dir).join("faucet_wallet");
    let owner = key.address();
    let wallet = Wallet::open(&data_dir, owner, Some(key), genesis, client, WalletOptions::default())
        .map_err(|e| fail("faucet_error", e.to_string()))?;
    let (jobs, queue) = mpsc::channel::<Job>();
    std::thread::Builder::new()
        .name("faucet".into())
        .spawn(move || serve(wallet, queue))
        .map_err(|e| fail("faucet_error", e.to_string()))?;
    tracing::info!(%owner, "faucet wallet ready");
    Ok(Some(Arc::new(Faucet { jobs })))
}

fn serve(mut wallet: Wallet, queue: mpsc::Receiver<Job>) {
    while let Ok(job) = queue.recv() {
        match job {
            Job::Pay {
                recipient,
                amount,
                reply,
            } => {
                let result = pay(&mut wallet, recipient, amount);
                if let Err(refusal) = &result {
                    tracing::warn!(%recipient, amount, code = refusal.code.as_str(), message = %refusal.message, "faucet request failed");
                }
                let _ = reply.send(result);
            }
            Job::Export { target, reply } => {
                let result = export_database(wallet.store().database(), &target, ezchain_wallet::store::copy_tables);
                let _ = reply.send(result);
            }
        }
    }
}

fn pay(wallet: &mut Wallet, recipient: Address, amount: u64) -> Result<FaucetGrant, FaucetRefusal> {
    let refusal = |status, code, message: String, charged| FaucetRefusal {
        status,
        code,
        message,
        charged,
    };
    let outcome = wallet
        .send(recipient, amount, None, PAY_WAIT)
        .map_err(|error| match error {
            WalletError::InsufficientFunds { available, .. } => refusal(
                503,
                ErrorCode::FaucetEmpty,
                format!("the faucet has {available} left; ask the testnet operator to refill it"),
                false,
            ),
            WalletError::SendFailed { reason, .. } => refusal(503, ErrorCode::FaucetSendFailed, reason, false),
            other => refusal(503, ErrorCode::FaucetError, other.to_string(), false),
        })?;
    let record = outcome.record;
    match record.status {
        TxStatus::Delivered => Ok(FaucetGrant {
            amount: record.amount,
            height: record.height.unwrap_or(0),
            bundle_hash: record.bundle_hash.map(|h| h.to_string()).unwrap_or_default(),
            packages: record.package_ids.len(),
        }),
        TxStatus::Finalized => Err(refusal(
            503,
            ErrorCode::FaucetDeliveryPending,
            format!(
                "paid in block {} but the package is not in your mailbox yet; it is redelivered with the next faucet request",
                record.height.unwrap_or(0)
            ),
            true,
        )),
        _ => Err(refusal(
            503,
            ErrorCode::FaucetPaymentPending,
            format!(
                "payment {} is not final yet; it completes on its own, do not ask again",
                record.tx_ref()
            ),
            true,
        )),
    }
}
