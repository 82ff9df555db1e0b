//! Starting the Malachite engine for one node: its configuration, network identity, WAL,
//! signer and verifier, wired to the application loop in `app.rs`.

use super::app::{ChainView, ConsensusApp, KeyWatch};
use super::codec::WireCodec;
use super::context::{Address, EzContext, ValidatorSet};
use super::signing::{ConsensusSigner, ConsensusVerifier};
use crate::config::{NodeConfig, NodeRole};
use crate::keys::NodeKey;
use crate::metrics::NodeMetrics;
use crate::sign_guard::{SignGuard, SigningAlarm};
use ezchain_protocol::mempool::PendingPool;
use malachitebft_app_channel::app::config::{
    ConsensusConfig, NodeConfig as EngineNodeConfig, P2pConfig, ValueSyncConfig,
};
use malachitebft_app_channel::app::engine::network::NetworkIdentity;
use malachitebft_app_channel::app::net::Multiaddr;
use malachitebft_app_channel::app::types::Keypair;
use malachitebft_app_channel::app::types::codec::Codec;
use malachitebft_app_channel::app::types::core::LinearTimeouts;
use malachitebft_app_channel::{
    ConsensusContext, EngineBuilder, EngineHandle, NetworkContext, NetworkRequest, RequestContext, SyncContext,
    WalContext,
};
use malachitebft_signing::Signer;
use malachitebft_signing_ed25519::PrivateKey;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The block a validator last proposed (height, round, block), in its data folder.
pub const OWN_PROPOSAL_FILE: &str = "own_proposal.borsh";
/// Blocks a node validated, kept until their height is committed, in its data folder.
pub const CANDIDATE_DIR: &str = "candidates";

/// What Malachite reads from its configuration.
#[derive(Clone, Debug)]
pub struct EngineConfig {
    pub moniker: String,
    pub consensus: ConsensusConfig,
    pub value_sync: ValueSyncConfig,
}

impl EngineNodeConfig for EngineConfig {
    fn moniker(&self) -> &str {
        &self.moniker
    }
    fn consensus(&self) -> &ConsensusConfig {
        &self.consensus
    }
    fn consensus_mut(&mut self) -> &mut ConsensusConfig {
        &mut self.consensus
    }
    fn value_sync(&self) -> &ValueSyncConfig {
        &self.value_sync
    }
    fn value_sync_mut(&mut self) -> &mut ValueSyncConfig {
        &mut self.value_sync
    }
}

fn multiaddr(addr: &SocketAddr) -> eyre::Result<Multiaddr> {
    let ip = match addr.ip() {
        std::net::IpAddr::V4(ip) => format!("/ip4/{ip}"),
        std::net::IpAddr::V6(ip) => format!("/ip6/{ip}"),
    };
    Ok(format!("{ip}/tcp/{}", addr.port()).parse()?)
}

/// Maps `node.yaml` onto the engine's configuration.
pub fn engine_config(config: &NodeConfig) -> eyre::Result<EngineConfig> {
    let p2p = P2pConfig {
        listen_addr: multiaddr(&config.p2p.listen_addr)?,
        persistent_peers: config
            .p2p
            .persistent_peers
            .iter()
            .map(multiaddr)
            .collect::<Result<_, _>>()?,
        ..P2pConfig::default()
    };
    Ok(EngineConfig {
        moniker: config.moniker.clone(),
        consensus: ConsensusConfig {
            p2p,
            ..ConsensusConfig::default()
        },
        value_sync: ValueSyncConfig::default(),
    })
}

pub fn timeouts(config: &NodeConfig) -> LinearTimeouts {
    LinearTimeouts {
        propose: Duration::from_millis(config.consensus.timeout_propose_ms),
        prevote: Duration::from_millis(config.consensus.timeout_prevote_ms),
        precommit: Duration::from_millis(config.consensus.timeout_precommit_ms),
        ..LinearTimeouts::default()
    }
}

/// A running engine and its application loop.
pub struct RunningConsensus {
    pub engine: EngineHandle,
    pub app: tokio::task::JoinHandle<()>,
    pub peer_watch: tokio::task::JoinHandle<()>,
}

/// What the consensus loop shares with the rest of the node (RPC, metrics).
#[derive(Clone)]
pub struct SharedNode {
    pub chain: Arc<ChainView>,
    pub mempool: Arc<Mutex<PendingPool>>,
    pub metrics: NodeMetrics,
}

/// How a validator signs: through its guard, reporting alarms to the runner; or not at all
/// (`follow_only`: its key was seen signing elsewhere, so it runs as a non-voting follower).
pub struct Signing {
    pub guard: Arc<SignGuard>,
    pub alarms: tokio::sync::mpsc::UnboundedSender<SigningAlarm>,
    pub follow_only: bool,
}

/// Starts the engine and the application loop for a node.
pub async fn start(
    config: &NodeConfig,
    home: &Path,
    chain_id: u64,
    validator_set: ValidatorSet,
    key: &NodeKey,
    shared: SharedNode,
    signing: Option<Signing>,
) -> eyre::Result<RunningConsensus> {
    let SharedNode {
        chain,
        mempool,
        metrics,
    } = shared;
    let ctx = EzContext { chain_id };
    let secret = key.signing_key().to_bytes();
    let private = PrivateKey::from(secret);
    let address = Address(key.validator_address());
    let keypair = Keypair::ed25519_from_bytes(secret)?;
    let in_set = validator_set.validators.iter().any(|v| v.address == address);
    if config.role == NodeRole::Validator && !in_set {
        tracing::warn!(%address, "node_key is not in the genesis validator set: running as a non-voting full node");
    }
    let signing = signing.filter(|_| config.role == NodeRole::Validator && in_set);
    let signer_parts = signing.as_ref().filter(|s| !s.follow_only);
    let is_validator = signer_parts.is_some();
    metrics
        .signing_paused
        .set(i64::from(signing.as_ref().is_some_and(|s| s.follow_only)));

    let verifier = ConsensusVerifier { chain_id };
    let consensus = if let Some(parts) = signer_parts {
        let signer = ConsensusSigner {
            chain_id,
            key: private.clone(),
            guard: parts.guard.clone(),
            alarms: parts.alarms.clone(),
        };
        let proof = signer
            .sign_validator_proof(key.public_key().to_vec(), keypair.public().to_peer_id().to_bytes())
            .await
            .map_err(|e| eyre::eyre!("signing the validator proof: {e}"))?;
        let proof_bytes = WireCodec.encode(&proof)?;
        let identity =
            NetworkIdentity::new_validator(config.moniker.clone(), keypair, address.to_string(), proof_bytes);
        (
            identity,
            ConsensusContext::new_validator(address, Box::new(verifier), Box::new(signer)),
        )
    } else if signing.as_ref().is_some_and(|s| s.follow_only) {
        // A follower must look like no validator at all: the engine asks any node whose address
        // is in the set to vote, and the other copy of this key owns this key's peer id. So it
        // joins under a peer identity and an address of its own, derived from its key.
        let derived = ezchain_protocol::hash::keccak256(&[b"EZCHAIN_FOLLOWER_V1".as_slice(), &secret].concat());
        let follower_keypair = Keypair::ed25519_from_bytes(derived)?;
        let follower_address = Address(ezchain_protocol::finality::ValidatorAddress(
            derived[..20].try_into().expect("a 32-byte hash has 20 bytes"),
        ));
        let identity = NetworkIdentity::new(config.moniker.clone(), follower_keypair, None);
        (
            identity,
            ConsensusContext::new_full_node(follower_address, Box::new(verifier)),
        )
    } else {
        let identity = NetworkIdentity::new(config.moniker.clone(), keypair, None);
        (identity, ConsensusContext::new_full_node(address, Box::new(verifier)))
    };
    let (identity, consensus_ctx) = consensus;
    let wal_dir = config.resolve(home, &config.data_dir).join("wal");
    std::fs::create_dir_all(&wal_dir)?;

    let (channels, engine) = EngineBuilder::new(ctx, engine_config(config)?)
        .with_default_wal(WalContext::new(wal_dir.join("consensus.wal"), WireCodec))
        .with_default_network(NetworkContext::new(identity, WireCodec))
        .with_default_sync(SyncContext::new(WireCodec))
        .with_default_consensus(consensus_ctx)
        .with_default_request(RequestContext::new(100))
        .build()
        .await?;

    let app = ConsensusApp::new(
        chain_id,
        validator_set,
        timeouts(config),
        Duration::from_millis(config.consensus.block_interval_ms),
        Duration::from_millis(config.consensus.batch_window_ms),
        config.consensus.max_bundles_per_block,
        chain,
        mempool,
        is_validator.then_some((address, private)),
        metrics.clone(),
    );
    let data_dir = config.resolve(home, &config.data_dir);
    let app = app
        .with_proposal_log(data_dir.join(OWN_PROPOSAL_FILE))
        .with_candidate_dir(data_dir.join(CANDIDATE_DIR));
    let app = match &signing {
        Some(signing) => app.with_key_watch(KeyWatch {
            me: address.0,
            guard: signing.guard.clone(),
            alarms: (!signing.follow_only).then(|| signing.alarms.clone()),
        }),
        None => app,
    };
    // Peer count for /readyz and /metrics, from the network actor's state dump.
    let net_requests = channels.net_requests.clone();
    let peers = metrics.peers.clone();
    let peer_watch = tokio::spawn(async move {
        loop {
            if let Ok(Some(dump)) = NetworkRequest::dump_state(&net_requests).await {
                peers.set(dump.peers.len() as i64);
            }
            tokio::time::sleep(Duration::from_secs(2)).await;
        }
    });
    let app = tokio::spawn(app.run(channels));
    Ok(RunningConsensus {
        engine,
        app,
        peer_watch,
    })
}
