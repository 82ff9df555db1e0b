//! `/health`, `/readyz`, `/metrics`: what a supervisor and a scraper read, without a token.

use crate::ServiceState;
use crate::answer::*;
use crate::api::node::probe_nodes;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use ezchain_host::genesis_file::load_genesis;
use schemars::JsonSchema;
use serde::Serialize;
use serde_json::json;
use std::sync::Arc;

pub(crate) async fn metrics_text(State(state): State<Arc<ServiceState>>) -> Response {
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.metrics.export(),
    )
        .into_response()
}

pub(crate) async fn readyz(State(state): State<Arc<ServiceState>>) -> Response {
    let probes = probe_nodes(&state).await;
    let reachable = probes.iter().filter(|probe| probe.reachable).count();
    let mut reasons: Vec<String> = Vec::new();
    if reachable == 0 {
        reasons.push("no configured node answers (network.bootstrap_nodes)".into());
    }
    if let Err(e) = load_genesis(&state.config.genesis_file()) {
        reasons.push(e.to_string());
    }
    let data = Readiness {
        ready: reasons.is_empty(),
        reachable_nodes: reachable,
        reasons: reasons.clone(),
    };
    if reasons.is_empty() {
        ok(data)
    } else {
        let mut response = (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({ "ok": false, "data": data, "error": { "code": "not_ready", "message": reasons.join("; ") } })),
        )
            .into_response();
        response.extensions_mut().insert(ErrorCode("not_ready"));
        response
    }
}

/// `/readyz` (also the `data` of its 503 answer).
#[derive(Serialize, JsonSchema)]
pub(crate) struct Readiness {
    ready: bool,
    /// Configured nodes that answered.
    reachable_nodes: usize,
    /// Why it is not ready.
    reasons: Vec<String>,
}
