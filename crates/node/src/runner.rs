//! `ezchain node run`: one node in the foreground until it is told to stop.
//!
//! Start-up: take the home's lock (one process per home); read `node.yaml`, genesis and the node
//! key; open the chain store and rebuild the tip state; bind the p2p and RPC addresses (a taken
//! one stops the node here); for a validator, open its sign record and look for its key in
//! recent commits it did not sign (`sign_guard`); start consensus (validator, follower or full
//! node) and the RPC server. Shutdown (SIGINT or SIGTERM, or a signing alarm): stop consensus,
//! stop serving, and close the store, so a restart replays the WAL and resumes at the stored tip.

use crate::config::{ConfigError, NodeConfig, NodeRole};
use crate::consensus::app::ChainView;
use crate::consensus::context::ValidatorSet;
use crate::consensus::engine;
use crate::forward::Forwarder;
use crate::keys::{KeyError, NodeKey};
use crate::mailbox::{Mailbox, MailboxError};
use crate::metrics::{NodeFacts, NodeMetrics};
use crate::rpc::{InProcessRpc, RpcState, router};
use crate::sign_guard::{SIGN_STATE_FILE, SignGuard, SigningAlarm};
use crate::store::{ChainStore, StoreError};
use ezchain_host::build::BuildInfo;
use ezchain_host::genesis_file::load_genesis;
use ezchain_protocol::codec::decode;
use ezchain_protocol::finality::{CommitCertificate, ValidatorAddress};
use ezchain_protocol::mempool::PendingPool;
use ezchain_rpc::paths;
use ezchain_rpc::types::{Envelope, HeadersAnswer, StatusAnswer};
use std::future::Future;
use std::path::{Path, PathBuf};
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
    #[error("cannot listen for metrics on {addr} (metrics.listen_addr): {source}")]
    MetricsBind {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot listen for peers on {addr}: {source}")]
    P2pBind {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
    #[error("consensus engine: {0}")]
    Engine(String),
    #[error(transparent)]
    Mailbox(#[from] MailboxError),
    #[error("the faucet: {0}")]
    Faucet(#[from] ezchain_wallet::faucet::FaucetError),
    #[error("{home} is in use by another node process{pid}: one home, one process")]
    HomeInUse { home: PathBuf, pid: String },
    #[error(transparent)]
    SignGuard(#[from] crate::sign_guard::SignGuardError),
    #[error("stopped rather than sign twice: {0}")]
    SignRefused(String),
    #[error("stopped signing: {0}")]
    KeyUsedElsewhere(String),
}

/// The lock file that keeps a second process off a home while one runs.
pub const HOME_LOCK_FILE: &str = "node.lock";

/// Takes the home's lock for this process's lifetime, writing our pid into it.
fn lock_home(home: &Path) -> Result<std::fs::File, NodeError> {
    let path = home.join(HOME_LOCK_FILE);
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(&path)
        .map_err(|e| {
            NodeError::Store(StoreError::Corrupt {
                what: "home lock",
                reason: format!("{}: {e}", path.display()),
            })
        })?;
    if file.try_lock().is_err() {
        let pid = std::fs::read_to_string(&path)
            .ok()
            .map(|text| text.trim().to_string())
            .filter(|text| !text.is_empty())
            .map_or_else(String::new, |pid| format!(" (pid {pid})"));
        return Err(NodeError::HomeInUse {
            home: home.to_path_buf(),
            pid,
        });
    }
    use std::io::{Seek, Write};
    let _ = file.set_len(0);
    let _ = file.rewind();
    let _ = writeln!(file, "{}", std::process::id());
    Ok(file)
}

/// Sign-guard rule 3 (`crate::sign_guard`): looks at the last `heights` commits — this node's
/// own and its validator peers' (their RPC addresses in `mempool.forward_to`) — for a precommit
/// by `me` that this node did not sign. Returns the first such height. Peers that do not answer
/// are skipped: the same check runs on every commit afterwards.
async fn key_signed_elsewhere(
    config: &NodeConfig,
    chain: &ChainView,
    guard: &SignGuard,
    me: ValidatorAddress,
    heights: u64,
) -> Option<u64> {
    if heights == 0 {
        return None;
    }
    let foreign = |certificate: &CommitCertificate| guard.signed_elsewhere(me, certificate);
    let tip = chain.store.tip().map_or(0, |t| t.height);
    for height in tip.saturating_sub(heights - 1).max(1)..=tip {
        if let Ok(Some(certificate)) = chain.store.certificate(height)
            && foreign(&certificate)
        {
            return Some(height);
        }
    }
    let http = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(3))
        .build()
        .ok()?;
    for peer in &config.mempool.forward_to {
        let status: Option<Envelope<StatusAnswer>> =
            match http.get(format!("http://{peer}{}", paths::STATUS)).send().await {
                Ok(answer) => answer.json().await.ok(),
                Err(_) => None,
            };
        let Some(peer_tip) = status.and_then(|s| s.into_result().ok()).map(|s| s.height) else {
            continue;
        };
        let from = peer_tip.saturating_sub(heights - 1).max(1);
        let url = format!("http://{peer}{}", paths::headers(from, None));
        let Ok(answer) = http.get(url).send().await else {
            continue;
        };
        let Ok(Ok(headers)) = answer
            .json::<Envelope<HeadersAnswer>>()
            .await
            .map(Envelope::into_result)
        else {
            continue;
        };
        for item in &headers.headers {
            let certificate = hex::decode(&item.certificate)
                .ok()
                .and_then(|bytes| decode::<CommitCertificate>(&bytes, 1 << 20).ok());
            if let Some(certificate) = certificate
                && foreign(&certificate)
            {
                return Some(certificate.height);
            }
        }
    }
    None
}

/// Opens the faucet `node.yaml` describes, if any (its key is decrypted and its wallet opened
/// off the runtime).
async fn start_faucet(
    home: &Path,
    config: &NodeConfig,
    genesis: &ezchain_protocol::Genesis,
    node: Arc<InProcessRpc>,
) -> Result<Option<ezchain_wallet::faucet::Faucet>, NodeError> {
    use ezchain_wallet::faucet::{Faucet, FaucetLimits, FaucetSetup};
    let (Some(section), Some(key)) = (&config.faucet, config.faucet_key(home)) else {
        return Ok(None);
    };
    let data_dir = config.resolve(home, &config.data_dir);
    let setup = FaucetSetup {
        key,
        genesis: genesis.clone(),
        data_dir: data_dir.join("faucet_wallet"),
        limits: FaucetLimits {
            per_request: section.max_amount_per_request,
            per_address_per_hour: section.max_amount_per_address_per_hour,
            per_hour: section.max_amount_per_hour,
        },
        grants_file: data_dir.join("faucet_grants.json"),
        node,
    };
    let started = tokio::task::spawn_blocking(move || Faucet::start(setup))
        .await
        .map_err(|e| ezchain_wallet::faucet::FaucetError::Thread(std::io::Error::other(e.to_string())))?;
    Ok(Some(started?))
}

/// Runs the node in `home` until `shutdown` completes. With a `faucet` section in `node.yaml`
/// it hosts the faucet (`ezchain_wallet::faucet`) at `/v1/faucet`, paying through this node's
/// router in-process.
pub async fn run(home: &Path, build: BuildInfo, shutdown: impl Future<Output = ()>) -> Result<(), NodeError> {
    let config = NodeConfig::load(home)?;
    let _home_lock = lock_home(home)?;
    let genesis =
        load_genesis(&config.resolve(home, &config.genesis_file)).map_err(|e| NodeError::Genesis(e.to_string()))?;
    let in_process = Arc::new(InProcessRpc::new(tokio::runtime::Handle::current()));
    let faucet = start_faucet(home, &config, &genesis, in_process.clone()).await?;
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
    let chain = Arc::new(ChainView::new(store, state, genesis.clone()));
    let admin_token =
        ezchain_host::secret::ensure_token(&data_dir.join(crate::config::ADMIN_TOKEN_FILE)).map_err(|e| {
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

    // The engine's network task only logs a failed listen and the node would serve RPC with no
    // peers, forever: try the p2p address first and stop here if it cannot be had. (std sets
    // SO_REUSEADDR, as libp2p does, so a port in TIME_WAIT after a restart is not refused.)
    std::net::TcpListener::bind(config.p2p.listen_addr).map_err(|source| NodeError::P2pBind {
        addr: config.p2p.listen_addr,
        source,
    })?;
    let listener = tokio::net::TcpListener::bind(config.rpc.listen_addr)
        .await
        .map_err(|source| NodeError::RpcBind {
            addr: config.rpc.listen_addr,
            source,
        })?;
    let metrics_listener = match config.metrics.listen_addr {
        Some(addr) => Some(
            tokio::net::TcpListener::bind(addr)
                .await
                .map_err(|source| NodeError::MetricsBind { addr, source })?,
        ),
        None => None,
    };
    let validator_names: Vec<String> = genesis.validators.iter().map(|v| v.name.clone()).collect();
    let metrics = NodeMetrics::register(
        &build,
        &NodeFacts {
            mempool_capacity: config.mempool.capacity,
            validators: &validator_names,
            hosts_faucet: faucet.is_some(),
        },
    );
    let (forwarder, forward_task) =
        Forwarder::start(config.mempool.forward_to.clone(), metrics.bundle_forwards.clone());
    let rpc_state = Arc::new(RpcState {
        chain_id: genesis.chain_id,
        genesis_hash: genesis.hash(),
        genesis: genesis.clone(),
        chain: chain.clone(),
        mempool: mempool.clone(),
        metrics: metrics.clone(),
        min_peers: usize::from(!config.p2p.persistent_peers.is_empty()),
        block_interval_ms: config.consensus.block_interval_ms,
        forwarder,
        mailbox,
        faucet,
        admin_token,
        build,
        metrics_elsewhere: metrics_listener.is_some(),
    });
    let (stop_rpc, rpc_stopped) = tokio::sync::watch::channel(false);
    let metrics_server = metrics_listener.map(|listener| {
        let app = crate::rpc::metrics_router(rpc_state.clone());
        let mut stopped = rpc_stopped.clone();
        info!(addr = ?config.metrics.listen_addr, "metrics listening");
        tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = stopped.wait_for(|stop| *stop).await;
                })
                .await
        })
    });
    let app = router(rpc_state, config.rpc.max_body_bytes);
    in_process.attach(app.clone());
    let rpc = tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<std::net::SocketAddr>(),
        )
        .with_graceful_shutdown(async {
            let mut stopped = rpc_stopped;
            let _ = stopped.wait_for(|stop| *stop).await;
        })
        .await
    });
    info!(addr = %config.rpc.listen_addr, "RPC listening");

    let (alarms, mut alarm) = tokio::sync::mpsc::unbounded_channel();
    let signing = if config.role == NodeRole::Validator {
        let tip = chain.store.tip()?.height;
        let guard = Arc::new(SignGuard::open(&data_dir.join(SIGN_STATE_FILE), tip)?);
        let record = guard.record();
        info!(height = record.height, round = record.round, step = ?record.step, "sign record: nothing at or below it is signed");
        let me = key.validator_address();
        let elsewhere =
            key_signed_elsewhere(&config, &chain, &guard, me, config.consensus.double_sign_check_heights).await;
        // A store older than the record (a home restored or copied without its chain): every
        // height the engine would start at was signed already, so it can only follow.
        let behind_record = tip + 1 < record.height;
        if behind_record {
            tracing::error!(
                tip,
                signed_up_to = record.height,
                "this node's chain is behind what its key already signed (a copied or restored home?): \
                 running as a non-signing follower; restart it once it has caught up"
            );
        }
        if let Some(height) = elsewhere {
            tracing::error!(
                height,
                "this validator's key signed a commit this node did not sign: another process runs with it. \
                 Running as a non-signing follower; stop the other copy, then restart this node once \
                 consensus.double_sign_check_heights heights have passed without it"
            );
        }
        Some(engine::Signing {
            guard,
            alarms,
            follow_only: elsewhere.is_some() || behind_record,
        })
    } else {
        None
    };
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
        signing,
    )
    .await
    .map_err(|e| NodeError::Engine(e.to_string()))?;

    let stopped_signing = tokio::select! {
        () = shutdown => None,
        Some(alarm) = alarm.recv() => Some(match alarm {
            SigningAlarm::Refused(refusal) => NodeError::SignRefused(refusal.to_string()),
            SigningAlarm::KeyUsedElsewhere { height, round } => NodeError::KeyUsedElsewhere(format!(
                "a commit at height {height} (round {round}) holds a precommit by this validator's key that this node \
                 did not sign: another process uses this key. Stop the other copy; this node signs nothing until \
                 restarted (it then follows until consensus.double_sign_check_heights heights pass without it)"
            )),
        }),
    };
    if let Some(reason) = &stopped_signing {
        tracing::error!(%reason, "stopping the node rather than sign twice");
    }
    info!("shutting down");
    running.engine.actor.stop(Some("node shutdown".into()));
    let _ = running.engine.handle.await;
    running.app.abort();
    running.peer_watch.abort();
    prune_task.abort();
    if let Some(task) = forward_task {
        task.abort();
    }
    let _ = stop_rpc.send(true);
    let _ = rpc.await;
    if let Some(server) = metrics_server {
        let _ = server.await;
    }
    drop(chain);
    if let Some(error) = stopped_signing {
        return Err(error);
    }
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
