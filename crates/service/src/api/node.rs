//! `/node/*` and `/network/info`: the configured nodes, the local testnet, the genesis.

use crate::answer::*;
use crate::devnet::{DevnetLayout, DevnetNode};
use crate::{ServiceState, metrics};
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::StatusCode;
use ezchain_host::genesis_file::load_genesis;
use ezchain_wallet::client::NodeClient;
use ezchain_wallet::network::{self, NodeProbe};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;

/// Probes every configured node (`ezchain_wallet::network::probe`, off the async threads);
/// updates the node gauges.
pub(crate) async fn probe_nodes(state: &ServiceState) -> Vec<NodeProbe> {
    let nodes = state.config.network.bootstrap_nodes.clone();
    let results = tokio::task::spawn_blocking(move || network::probe(&nodes, None, Duration::from_secs(3)))
        .await
        .unwrap_or_default();
    let up = results.iter().filter(|probe| probe.reachable).count();
    for probe in &results {
        state
            .metrics
            .node_up
            .get_or_create(&metrics::NodeLabels {
                node: probe.node.clone(),
            })
            .set(i64::from(probe.reachable));
    }
    if !results.is_empty() {
        state.metrics.node_online_ratio.set(up as f64 / results.len() as f64);
    }
    if let Some(height) = results.iter().filter_map(|probe| probe.height).max() {
        state.metrics.chain_height.set(height as i64);
    }
    results
}

pub(crate) async fn node_status(State(state): State<Arc<ServiceState>>) -> Answer {
    let probes = probe_nodes(&state).await;
    let configured: Vec<Value> = probes
        .iter()
        .map(|probe| match &probe.error {
            None => {
                json!({ "node": probe.node, "up": true, "height": probe.height, "genesis_hash": probe.genesis_hash })
            }
            Some(e) => json!({ "node": probe.node, "up": false, "error": e }),
        })
        .collect();
    let root = state.config.data_dir().join("testnet");
    let devnet = state.devnet.clone();
    let local = tokio::task::spawn_blocking(move || devnet.status(&root).ok().flatten())
        .await
        .ok()
        .flatten();
    Ok(ok(NodeStatus {
        configured_nodes: configured,
        local_testnet: local,
    }))
}

/// `/node/status`.
#[derive(Serialize, JsonSchema)]
pub(crate) struct NodeStatus {
    /// Each of `network.bootstrap_nodes`: `{node, up, height?, genesis_hash?, error?}`.
    configured_nodes: Vec<Value>,
    /// The local testnet under `<data_dir>/testnet`, when one was created.
    local_testnet: Option<Vec<DevnetNode>>,
}

/// `/network/info`.
#[derive(Serialize, JsonSchema)]
pub(crate) struct NetworkInfo {
    network: String,
    bootstrap_nodes: Vec<String>,
    genesis_file: String,
    genesis_hash: Option<String>,
    chain_id: Option<u64>,
    /// The tip as the first node that answers shows it (`null` when none does).
    tip: Option<TipInfo>,
}

/// The chain's tip, its certificate checked against this wallet's genesis.
#[derive(Serialize, JsonSchema)]
pub(crate) struct TipInfo {
    /// The node that answered.
    node: String,
    height: u64,
    /// Time since the tip's block was made (by its timestamp).
    tip_age_ms: Option<u64>,
    /// Validators whose precommits finalized the tip (`null`: its certificate does not verify).
    validators_signing: Option<usize>,
    validators: usize,
}

/// `/node/start`.
#[derive(Serialize, JsonSchema)]
pub(crate) struct NodeStarted {
    /// `started`, or `already_running` when every node ran.
    status: String,
    /// The testnet was written by this call.
    created: bool,
    nodes: Vec<DevnetNode>,
}

/// `/node/stop`.
#[derive(Serialize, JsonSchema)]
pub(crate) struct NodeStopped {
    /// `stopped` or `not_running`.
    status: String,
    /// The nodes that were running.
    stopped: Vec<String>,
}

pub(crate) async fn network_info(State(state): State<Arc<ServiceState>>) -> Answer {
    let genesis = load_genesis(&state.config.genesis_file()).ok();
    let nodes = state.config.network.bootstrap_nodes.clone();
    let tip = match genesis.clone() {
        Some(genesis) => tokio::task::spawn_blocking(move || {
            nodes.iter().find_map(|node| {
                let client = NodeClient::new(std::slice::from_ref(node), Duration::from_secs(3)).ok()?;
                network::info(&client, node, &genesis, crate::now_ms()).ok()
            })
        })
        .await
        .ok()
        .flatten()
        .map(|info| TipInfo {
            node: info.node,
            height: info.height,
            tip_age_ms: info.tip_age_ms,
            validators_signing: info.validators_signing,
            validators: info.validators,
        }),
        None => None,
    };
    Ok(ok(NetworkInfo {
        tip,
        network: state.config.network.name.clone(),
        bootstrap_nodes: state.config.network.bootstrap_nodes.clone(),
        genesis_file: state.config.genesis_file().display().to_string(),
        genesis_hash: genesis.as_ref().map(|g| g.hash().to_string()),
        chain_id: genesis.as_ref().map(|g| g.chain_id),
    }))
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct NodeStartRequest {
    consensus: Option<usize>,
    accounts: Option<u32>,
    start_port: Option<u16>,
}

pub(crate) async fn node_start(
    State(state): State<Arc<ServiceState>>,
    request: Result<Bytes, BytesRejection>,
) -> Answer {
    let request: NodeStartRequest = body(request)?;
    let layout = DevnetLayout {
        validators: request
            .consensus
            .unwrap_or(state.config.network.consensus_nodes as usize),
        accounts: request.accounts.unwrap_or(state.config.network.account_nodes),
        start_port: request.start_port.unwrap_or(state.config.network.start_port),
        scrypt_log_n: state.config.wallet.scrypt_log_n,
    };
    let root = state.config.data_dir().join("testnet");
    let devnet = state.devnet.clone();
    let outcome = tokio::task::spawn_blocking(move || devnet.start(&root, &layout))
        .await
        .map_err(|e| error(StatusCode::INTERNAL_SERVER_ERROR, "internal_error", e))?
        .map_err(|e| error(StatusCode::SERVICE_UNAVAILABLE, "node_start_failed", e))?;
    Ok(ok(NodeStarted {
        status: if outcome.started { "started" } else { "already_running" }.into(),
        created: outcome.created,
        nodes: outcome.nodes,
    }))
}

pub(crate) async fn node_stop(
    State(state): State<Arc<ServiceState>>,
    request: Result<Bytes, BytesRejection>,
) -> Answer {
    let NoArguments {} = body(request)?;
    let root = state.config.data_dir().join("testnet");
    let devnet = state.devnet.clone();
    let stopped = tokio::task::spawn_blocking(move || devnet.stop(&root))
        .await
        .map_err(|e| error(StatusCode::INTERNAL_SERVER_ERROR, "internal_error", e))?
        .map_err(|e| error(StatusCode::INTERNAL_SERVER_ERROR, "node_stop_failed", e))?;
    Ok(ok(NodeStopped {
        status: if stopped.is_empty() { "not_running" } else { "stopped" }.into(),
        stopped,
    }))
}
