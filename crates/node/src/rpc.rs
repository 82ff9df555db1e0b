//! Node RPC over HTTP/JSON (axum) for account nodes and operators.
//!
//! Protocol objects travel as hex of their canonical borsh encoding inside JSON, so a client
//! verifies exactly the bytes the chain hashed. Every response is `{"ok": true, "data": …}` or
//! `{"ok": false, "error": {"code", "message"}}` with a 4xx/5xx status; request bodies are capped.
//!
//! Routes: `GET /health`, `GET /status`, `POST /v1/submit`, `GET /v1/blocks/{height}`,
//! `GET /v1/receipts/{address}/{seq}`.

use crate::consensus::app::ChainView;
use axum::extract::rejection::JsonRejection;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use ezchain_protocol::codec::{decode, encode};
use ezchain_protocol::mempool::{Admission, AdmissionError, PendingPool};
use ezchain_protocol::{Address, Hash32, Submission};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};

/// Everything the RPC handlers read.
pub struct RpcState {
    pub chain_id: u64,
    pub genesis_hash: Hash32,
    pub chain: Arc<ChainView>,
    pub mempool: Arc<Mutex<PendingPool>>,
}

pub fn router(state: Arc<RpcState>, max_body_bytes: usize) -> Router {
    Router::new()
        .route("/health", get(|| async { ok(json!({ "alive": true })) }))
        .route("/status", get(status))
        .route("/v1/submit", post(submit))
        .route("/v1/blocks/{height}", get(block))
        .route("/v1/receipts/{address}/{seq}", get(receipt))
        .fallback(|| async { fail(StatusCode::NOT_FOUND, "not_found", "no such route") })
        .layer(DefaultBodyLimit::max(max_body_bytes))
        .with_state(state)
}

fn ok(data: Value) -> Response {
    (StatusCode::OK, Json(json!({ "ok": true, "data": data }))).into_response()
}

fn fail(status: StatusCode, code: &str, message: impl std::fmt::Display) -> Response {
    (
        status,
        Json(json!({ "ok": false, "error": { "code": code, "message": message.to_string() } })),
    )
        .into_response()
}

async fn status(State(state): State<Arc<RpcState>>) -> Response {
    let chain = state.chain.state.read().unwrap_or_else(|p| p.into_inner()).clone();
    let mempool = state.mempool.lock().unwrap_or_else(|p| p.into_inner()).len();
    ok(json!({
        "chain_id": state.chain_id,
        "genesis_hash": state.genesis_hash,
        "height": chain.height,
        "tip_hash": chain.tip_hash,
        "state_root": chain.state_root(),
        "accounts": chain.account_count(),
        "mempool_size": mempool,
    }))
}

#[derive(Deserialize)]
struct SubmitRequest {
    /// Hex of the borsh-encoded `Submission`.
    submission: String,
}

#[derive(Serialize)]
struct SubmitResponse {
    status: &'static str,
    bundle_hash: Hash32,
    seq: u64,
}

/// Stable code of an admission refusal.
pub fn admission_code(error: &AdmissionError) -> &'static str {
    use ezchain_protocol::state::EntryError;
    match error {
        AdmissionError::Entry(EntryError::Bundle(_)) => "invalid_bundle",
        AdmissionError::Entry(EntryError::Expired { .. }) => "bundle_expired",
        AdmissionError::Entry(EntryError::StaleSeq { .. }) => "stale_seq",
        AdmissionError::Entry(EntryError::SeqGap { .. }) => "seq_gap",
        AdmissionError::Entry(EntryError::DuplicateSender) => "duplicate_sender",
        AdmissionError::ConflictingPending { .. } => "pending_bundle_exists",
        AdmissionError::FeeNotHigher { .. } => "fee_not_higher",
        AdmissionError::PoolFull { .. } => "mempool_full",
    }
}

async fn submit(State(state): State<Arc<RpcState>>, body: Result<Json<SubmitRequest>, JsonRejection>) -> Response {
    let Json(request) = match body {
        Ok(body) => body,
        Err(rejection) => return fail(rejection.status(), "malformed_request", rejection.body_text()),
    };
    let Ok(bytes) = hex::decode(request.submission.trim_start_matches("0x")) else {
        return fail(StatusCode::BAD_REQUEST, "malformed_request", "`submission` must be hex");
    };
    let submission: Submission = match decode(&bytes, ezchain_protocol::bundle::MAX_SIDECAR_BYTES * 2) {
        Ok(submission) => submission,
        Err(e) => return fail(StatusCode::BAD_REQUEST, "malformed_submission", e),
    };
    let chain = state.chain.state.read().unwrap_or_else(|p| p.into_inner()).clone();
    let mut mempool = state.mempool.lock().unwrap_or_else(|p| p.into_inner());
    match mempool.submit(&chain, &submission) {
        Ok(admission) => ok(json!(SubmitResponse {
            status: match admission {
                Admission::New => "accepted",
                Admission::Replace { .. } => "replaced",
                Admission::Duplicate => "already_pending",
            },
            bundle_hash: submission.envelope.bundle_hash,
            seq: submission.envelope.seq,
        })),
        Err(error) => {
            let status = if matches!(error, AdmissionError::PoolFull { .. }) {
                StatusCode::SERVICE_UNAVAILABLE
            } else {
                StatusCode::UNPROCESSABLE_ENTITY
            };
            fail(status, admission_code(&error), error)
        }
    }
}

async fn block(State(state): State<Arc<RpcState>>, Path(height): Path<String>) -> Response {
    let Ok(height) = height.parse::<u64>() else {
        return fail(
            StatusCode::BAD_REQUEST,
            "malformed_request",
            "height must be a whole number",
        );
    };
    match (state.chain.store.block(height), state.chain.store.certificate(height)) {
        (Ok(Some(block)), Ok(Some(certificate))) => ok(json!({
            "height": height,
            "header_hash": block.hash(),
            "block": hex::encode(encode(&block)),
            "certificate": hex::encode(encode(&certificate)),
        })),
        (Ok(None), _) | (_, Ok(None)) => fail(
            StatusCode::NOT_FOUND,
            "block_not_found",
            format!("no finalized block at height {height}"),
        ),
        (Err(e), _) | (_, Err(e)) => fail(StatusCode::INTERNAL_SERVER_ERROR, "store_error", e),
    }
}

async fn receipt(State(state): State<Arc<RpcState>>, Path((address, seq)): Path<(String, String)>) -> Response {
    let Ok(address) = address.parse::<Address>() else {
        return fail(
            StatusCode::BAD_REQUEST,
            "malformed_address",
            "address must be 0x + 40 hex digits (EIP-55 checksum if mixed case)",
        );
    };
    let Ok(seq) = seq.parse::<u64>() else {
        return fail(
            StatusCode::BAD_REQUEST,
            "malformed_request",
            "seq must be a whole number",
        );
    };
    match state.chain.store.receipt(&address, seq) {
        Ok(Some(receipt)) => ok(json!({ "height": receipt.header.height, "receipt": hex::encode(encode(&receipt)) })),
        Ok(None) => fail(
            StatusCode::NOT_FOUND,
            "receipt_not_found",
            format!("no receipt for {address} seq {seq}"),
        ),
        Err(e) => fail(StatusCode::INTERNAL_SERVER_ERROR, "store_error", e),
    }
}
