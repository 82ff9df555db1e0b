//! `ezchain node run`: one node in the foreground until it is told to stop.
//!
//! Start-up: read `node.yaml`, genesis and the node key; open the chain store and rebuild the
//! tip state; start consensus (validator or full node) and the RPC server. Shutdown (SIGINT or
//! SIGTERM): stop consensus, stop serving, and close the store, so a restart replays the WAL and
//! resumes at the stored tip.

use crate::config::{ConfigError, NodeConfig};
use crate::consensus::app::ChainView;
use crate::consensus::context::ValidatorSet;
use crate::consensus::engine;
use crate::faucet::{FaucetLimiter, FaucetLimits, FaucetService};
use crate::forward::Forwarder;
use crate::keys::{KeyError, NodeKey};
use crate::mailbox::{Mailbox, MailboxError};
use crate::metrics::NodeMetrics;
use crate::rpc::{RpcState, router};
use crate::store::{ChainStore, StoreError};
use crate::testnet::load_genesis;
use ezchain_protocol::mempool::PendingPool;
use std::future::Future;
use std::path::Path;
use std::sync::{Arc, Mutex};
use thiserror::Error;
use tracing::info;

#[derive(Debug, Error)]
pub enum NodeError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("{0}")]
    Genesis(String),
    #[error(transparent)]
    Key(#[from] KeyError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot listen for RPC on {addr}: {source}")]
    RpcBind {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
    #[error("consensus engine: {0}")]
    Engine(String),
    #[error(transparent)]
    Mailbox(#[from] MailboxError),
    #[error("a faucet wallet was given but node.yaml has no `faucet` section with its limits")]
    FaucetMismatch,
}

/// Runs the node in `home` until `shutdown` completes. `faucet` is the co-hosted faucet wallet,
/// served at `/v1/faucet` with the limits of `node.yaml`'s `faucet` section.
pub async fn run(
    home: &Path,
    shutdown: impl Future<Output = ()>,
    faucet: Option<Arc<dyn FaucetService>>,
) -> Result<(), NodeError> {
    let config = NodeConfig::load(home)?;
    let faucet = match (faucet, &config.faucet) {
        (Some(service), Some(limits)) => Some((
            service,
            FaucetLimiter::with_file(
                FaucetLimits {
                    per_request: limits.max_amount_per_request,
                    per_address_per_hour: limits.max_amount_per_address_per_hour,
                    per_hour: limits.max_amount_per_hour,
                },
                config.resolve(home, &config.data_dir).join("faucet_grants.json"),
            ),
        )),
        (None, Some(_)) => {
            tracing::warn!("node.yaml has a faucet section but no faucet wallet runs here: /v1/faucet is off");
            None
        }
        (None, None) => None,
        (Some(_), None) => return Err(NodeError::FaucetMismatch),
    };
    let genesis = load_genesis(&config.resolve(home, &config.genesis_file)).map_err(NodeError::Genesis)?;
    let key = NodeKey::load(&config.resolve(home, &config.node_key_file))?;
    let data_dir = config.resolve(home, &config.data_dir);
    std::fs::create_dir_all(&data_dir).map_err(|e| {
        NodeError::Store(StoreError::Corrupt {
            what: "data folder",
            reason: e.to_string(),
        })
    })?;
    let store = ChainStore::open(&data_dir.join("chain.redb"), &genesis)?;
    let state = store.load_state(genesis.chain_id)?;
    info!(moniker = %config.moniker, role = ?config.role, height = state.height, "node starting");
    let chain = Arc::new(ChainView::new(store, state));
    let admin_token = crate::admin::ensure_token(&data_dir.join(crate::admin::ADMIN_TOKEN_FILE)).map_err(|e| {
        NodeError::Store(StoreError::Corrupt {
            what: "admin token",
            reason: e.to_string(),
        })
    })?;
    let mailbox = Arc::new(Mailbox::open(&data_dir.join("mailbox.redb"), config.mailbox.clone())?);
    let prune_task = tokio::spawn(prune_mailbox(mailbox.clone()));
    let mempool = Arc::new(Mutex::new(PendingPool::new(config.mempool.capacity)));
    let validator_set = ValidatorSet::from_genesis(&genesis)
        .ok_or_else(|| NodeError::Genesis("genesis holds an invalid validator key".into()))?;

    let listener = tokio::net::TcpListener::bind(config.rpc.listen_addr)
        .await
        .map_err(|source| NodeError::RpcBind {
            addr: config.rpc.listen_addr,
            source,
        })?;
    let metrics = NodeMetrics::register();
    let (forwarder, forward_task) = Forwarder::start(config.mempool.forward_to.clone());
    let rpc_state = Arc::new(RpcState {
        chain_id: genesis.chain_id,
        genesis_hash: genesis.hash(),
        chain: chain.clone(),
        mempool: mempool.clone(),
        metrics: metrics.clone(),
        min_peers: usize::from(!config.p2p.persistent_peers.is_empty()),
        block_interval_ms: config.consensus.block_interval_ms,
        forwarder,
        mailbox,
        faucet,
        admin_token,
    });
    let (stop_rpc, rpc_stopped) = tokio::sync::oneshot::channel::<()>();
    let app = router(rpc_state, config.rpc.max_body_bytes);
    let rpc = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async {
                let _ = rpc_stopped.await;
            })
            .await
    });
    info!(addr = %config.rpc.listen_addr, "RPC listening");

    let running = engine::start(
        &config,
        home,
        genesis.chain_id,
        validator_set,
        &key,
        engine::SharedNode {
            chain: chain.clone(),
            mempool,
            metrics,
        },
    )
    .await
    .map_err(|e| NodeError::Engine(e.to_string()))?;

    shutdown.await;
    info!("shutting down");
    running.engine.actor.stop(Some("node shutdown".into()));
    let _ = running.engine.handle.await;
    running.app.abort();
    running.peer_watch.abort();
    prune_task.abort();
    if let Some(task) = forward_task {
        task.abort();
    }
    let _ = stop_rpc.send(());
    let _ = rpc.await;
    drop(chain);
    info!("stopped cleanly");
    Ok(())
}

/// Drops expired mailbox packages once a minute.
async fn prune_mailbox(mailbox: Arc<Mailbox>) {
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(60));
    loop {
        tick.tick().await;
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        match mailbox.prune(now_ms) {
            Ok(0) => {}
            Ok(pruned) => info!(pruned, "expired mailbox packages dropped"),
            Err(e) => tracing::warn!(error = %e, "mailbox pruning failed"),
        }
    }
}
