//! `ezchain serve`: the local wallet service — an HTTP API (axum) over the account node.
//!
//! Every response is the envelope `{"ok": true, "data": …}` or `{"ok": false, "error": {"code",
//! "message"}}`, 404/405/413 included. Every request passes, in order: the audit and metrics
//! layer (one chained audit line per request), the Host guard (loopback names only, against DNS
//! rebinding), the per-client rate limit, the token check (`X-EZ-Token`, constant time; not on
//! `/health`, `/readyz`, `/metrics`), and for state-changing POSTs the replay guard
//! (`X-EZ-Nonce`, persisted). `/tx/send` is idempotent by `client_tx_id`. Wallet work runs on one
//! wallet thread ([`worker`]).

pub mod audit;
pub mod devnet;
pub mod guard;
pub mod metrics;
pub mod worker;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{ConnectInfo, DefaultBodyLimit, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use devnet::{DevnetLayout, LocalDevnet};
use ezchain_host::export::ExportError;
use ezchain_host::genesis_file::load_genesis;
use ezchain_host::secret;
use ezchain_protocol::Address;
use ezchain_protocol::hash::keccak256;
use ezchain_wallet::client::ClientError;
use ezchain_wallet::keystore::KeystoreError;
use ezchain_wallet::wallet_file::{self, WalletFileError};
use ezchain_wallet::{AppConfig, Wallet, WalletError};
use guard::{Guard, IdempotencyRecord, NonceOutcome, StoredResponse};
use serde::Deserialize;
use serde_json::{Value, json};
use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use thiserror::Error;
use worker::{OpenError, Slot, WalletWorker};

#[derive(Debug, Error)]
pub enum ServiceError {
    #[error("{0}")]
    Config(String),
    #[error(
        "refusing to listen on {0}: it is not a loopback address (set app.allow_remote: true to allow it, behind your own TLS proxy)"
    )]
    NotLoopback(String),
    #[error("cannot listen on {addr}: {source}")]
    Bind { addr: String, source: std::io::Error },
    #[error("{0}")]
    Io(String),
}

/// Everything the handlers share.
pub struct ServiceState {
    config: AppConfig,
    config_path: PathBuf,
    token_file: PathBuf,
    guard: Guard,
    audit: audit::AuditLog,
    metrics: metrics::ServiceMetrics,
    worker: WalletWorker,
    in_flight: Mutex<HashSet<String>>,
    rate: RateLimiter,
    devnet: Arc<dyn LocalDevnet>,
}

/// Per-client token bucket: `per_minute` requests a minute, bursts up to the same number.
pub struct RateLimiter {
    per_minute: f64,
    buckets: Mutex<HashMap<IpAddr, (f64, Instant)>>,
}

/// Clients remembered at most; idle full buckets are forgotten first.
const MAX_RATE_CLIENTS: usize = 10_000;

impl RateLimiter {
    pub fn new(per_minute: u32) -> Self {
        RateLimiter {
            per_minute: f64::from(per_minute),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes one token for `client` at `now`; false when it has none left.
    pub fn allow(&self, client: IpAddr, now: Instant) -> bool {
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        if buckets.len() >= MAX_RATE_CLIENTS {
            let per_minute = self.per_minute;
            buckets.retain(|_, (tokens, last)| {
                *tokens + now.saturating_duration_since(*last).as_secs_f64() * per_minute / 60.0 < per_minute
            });
        }
        let (tokens, last) = buckets.entry(client).or_insert((self.per_minute, now));
        let refill = now.saturating_duration_since(*last).as_secs_f64() * self.per_minute / 60.0;
        *tokens = (*tokens + refill).min(self.per_minute);
        *last = now;
        if *tokens < 1.0 {
            return false;
        }
        *tokens -= 1.0;
        true
    }
}

/// A refused request: status, stable code, message.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
}

fn error(status: StatusCode, code: &'static str, message: impl std::fmt::Display) -> ApiError {
    ApiError {
        status,
        code,
        message: message.to_string(),
    }
}

/// The error code of a response, for the audit log and metrics.
#[derive(Clone)]
struct ErrorCode(&'static str);

/// What the audit line records besides the request itself.
#[derive(Clone, Default)]
struct AuditTags {
    client_tx_id: Option<String>,
    tx_ref: Option<String>,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (
            self.status,
            Json(json!({ "ok": false, "error": { "code": self.code, "message": self.message } })),
        )
            .into_response();
        response.extensions_mut().insert(ErrorCode(self.code));
        response
    }
}

/// The wallet thread is gone (it only stops with the service).
fn wallet_unavailable() -> ApiError {
    error(
        StatusCode::SERVICE_UNAVAILABLE,
        "wallet_unavailable",
        "the wallet thread stopped",
    )
}

fn ok(data: Value) -> Response {
    (StatusCode::OK, Json(json!({ "ok": true, "data": data }))).into_response()
}

type Answer = Result<Response, ApiError>;

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Routes that need no token.
const PUBLIC: &[&str] = &["/health", "/readyz", "/metrics", "/openapi.json"];

/// Every route: method, path, whether it needs a token, what it does. `/openapi.json` is built
/// from this table, and `crates/cli/tests/service.rs` checks the router answers every entry.
pub const ROUTES: &[(&str, &str, bool, &str)] = &[
    ("GET", "/health", false, "Liveness"),
    (
        "GET",
        "/readyz",
        false,
        "Ready when a configured node of this wallet's chain answers",
    ),
    ("GET", "/metrics", false, "Prometheus metrics"),
    ("GET", "/openapi.json", false, "This document"),
    (
        "GET",
        "/wallet/show",
        true,
        "Address, name and creation time of the wallet",
    ),
    (
        "GET",
        "/wallet/balance",
        true,
        "Balance; with the key (unlocked or X-EZ-Password) receives first",
    ),
    ("GET", "/wallet/checkpoints", true, "Exact-range checkpoints held"),
    ("GET", "/tx/history", true, "Every send, accepted and rejected payment"),
    ("GET", "/tx/pending", true, "Sends not yet delivered"),
    (
        "GET",
        "/tx/receipts",
        true,
        "Receipts of this wallet's finalized bundles",
    ),
    (
        "GET",
        "/node/status",
        true,
        "The local testnet's nodes and the configured nodes' reachability",
    ),
    ("GET", "/network/info", true, "Network name, configured nodes, genesis"),
    (
        "POST",
        "/wallet/create",
        true,
        "Create a wallet: {password, name?, force?} → address, mnemonic (shown once)",
    ),
    (
        "POST",
        "/wallet/import",
        true,
        "Restore: {mnemonic | keystore, password, name?, force?}",
    ),
    (
        "POST",
        "/wallet/unlock",
        true,
        "Keep the key in memory: {password, ttl_seconds?}",
    ),
    ("POST", "/wallet/lock", true, "Forget the key"),
    (
        "POST",
        "/tx/faucet",
        true,
        "Ask the testnet faucet: {amount, password?}",
    ),
    (
        "POST",
        "/tx/send",
        true,
        "Pay: {recipient, amount, password?, client_tx_id?, wait_seconds?}; idempotent by client_tx_id",
    ),
    (
        "POST",
        "/tx/receive",
        true,
        "Fetch, verify and store incoming payments: {password?}",
    ),
    (
        "POST",
        "/node/start",
        true,
        "Start the local testnet: {consensus?, start_port?}",
    ),
    ("POST", "/node/stop", true, "Stop the local testnet"),
    (
        "POST",
        "/ops/export",
        true,
        "Online copy of a database for `ezchain ops backup`: {database: service|wallet, out_file}",
    ),
];

pub fn openapi() -> Value {
    let mut paths = serde_json::Map::new();
    for (method, path, auth, summary) in ROUTES {
        let mut operation = json!({
            "summary": summary,
            "responses": {
                "200": { "description": "`{\"ok\": true, \"data\": …}`" },
                "default": { "description": "`{\"ok\": false, \"error\": {\"code\", \"message\"}}`" }
            }
        });
        if *auth {
            operation["security"] = json!([{ "token": [] }]);
        }
        if *method == "POST" {
            operation["parameters"] = json!([{ "name": "X-EZ-Nonce", "in": "header", "required": true,
                "schema": { "type": "string", "pattern": "^[A-Za-z0-9_-]{8,128}$" } }]);
        }
        let entry = paths.entry(path.to_string()).or_insert_with(|| json!({}));
        entry[method.to_lowercase()] = operation;
    }
    json!({
        "openapi": "3.0.3",
        "info": { "title": "EZchain local wallet service", "version": env!("CARGO_PKG_VERSION") },
        "components": { "securitySchemes": { "token": { "type": "apiKey", "in": "header", "name": "X-EZ-Token" } } },
        "paths": paths,
    })
}

pub fn router(state: Arc<ServiceState>) -> Router {
    let max_body = state.config.security.max_payload_bytes.max(1024);
    Router::new()
        .route(
            "/health",
            get(|| async { ok(json!({ "status": "ok", "time_ms": now_ms() })) }),
        )
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics_text))
        .route("/openapi.json", get(|| async { Json(openapi()) }))
        .route("/wallet/show", get(wallet_show))
        .route("/wallet/balance", get(wallet_balance))
        .route("/wallet/checkpoints", get(wallet_checkpoints))
        .route("/tx/history", get(tx_history))
        .route("/tx/pending", get(tx_pending))
        .route("/tx/receipts", get(tx_receipts))
        .route("/node/status", get(node_status))
        .route("/network/info", get(network_info))
        .route("/wallet/create", post(wallet_create))
        .route("/wallet/import", post(wallet_import))
        .route("/wallet/unlock", post(wallet_unlock))
        .route("/wallet/lock", post(wallet_lock))
        .route("/tx/faucet", post(tx_faucet))
        .route("/tx/send", post(tx_send))
        .route("/tx/receive", post(tx_receive))
        .route("/node/start", post(node_start))
        .route("/node/stop", post(node_stop))
        .route("/ops/export", post(ops_export))
        .fallback(|| async { error(StatusCode::NOT_FOUND, "not_found", "no such route; see /openapi.json") })
        .method_not_allowed_fallback(|| async {
            error(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "this route takes another method; see /openapi.json",
            )
        })
        .layer(DefaultBodyLimit::max(max_body))
        .layer(axum::middleware::from_fn_with_state(state.clone(), protect))
        .layer(axum::middleware::from_fn_with_state(state.clone(), observe))
        .with_state(state)
}

/// Outermost layer: request id, audit line, metrics.
async fn observe(State(state): State<Arc<ServiceState>>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let mut id = [0u8; 8];
    let _ = getrandom::fill(&mut id);
    let request_id = hex::encode(id);
    let remote = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip().to_string())
        .unwrap_or_default();
    let method = request.method().to_string();
    let path = request.uri().path().to_string();
    let mut response = next.run(request).await;
    let status = response.status().as_u16();
    let code = response.extensions().get::<ErrorCode>().map(|c| c.0.to_string());
    let tags = response.extensions().get::<AuditTags>().cloned().unwrap_or_default();
    let route = if ROUTES.iter().any(|(_, p, _, _)| *p == path) {
        path.clone()
    } else {
        "other".into()
    };
    state
        .metrics
        .requests
        .get_or_create(&metrics::RouteLabels {
            route,
            status: status.to_string(),
        })
        .inc();
    if let Some(code) = &code {
        state
            .metrics
            .errors
            .get_or_create(&metrics::CodeLabels { code: code.clone() })
            .inc();
    }
    state.audit.append(&audit::AuditEntry {
        time_ms: now_ms(),
        request_id: request_id.clone(),
        remote,
        method,
        path,
        status,
        error_code: code,
        client_tx_id: tags.client_tx_id,
        tx_ref: tags.tx_ref,
        latency_ms: started.elapsed().as_millis() as u64,
    });
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        response.headers_mut().insert("x-request-id", value);
    }
    response
}

fn is_loopback_host(host: &str) -> bool {
    let name = if let Some(rest) = host.strip_prefix('[') {
        rest.split(']').next().unwrap_or("")
    } else {
        host.rsplit_once(':').map_or(host, |(name, port)| {
            if port.chars().all(|c| c.is_ascii_digit()) {
                name
            } else {
                host
            }
        })
    };
    name.eq_ignore_ascii_case("localhost") || name.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// Host guard, rate limit, token, nonce.
async fn protect(State(state): State<Arc<ServiceState>>, request: Request, next: Next) -> Response {
    match check(&state, &request) {
        Ok(()) => next.run(request).await,
        Err(refusal) => refusal.into_response(),
    }
}

fn check(state: &ServiceState, request: &Request) -> Result<(), ApiError> {
    let headers = request.headers();
    if !state.config.app.allow_remote {
        let host = headers.get("host").and_then(|h| h.to_str().ok()).unwrap_or("");
        if !is_loopback_host(host) {
            return Err(error(
                StatusCode::FORBIDDEN,
                "forbidden_host",
                "the Host header must name this machine (localhost, 127.0.0.1 or [::1])",
            ));
        }
    }
    if let Some(ConnectInfo(remote)) = request.extensions().get::<ConnectInfo<SocketAddr>>()
        && !state.rate.allow(remote.ip(), Instant::now())
    {
        return Err(error(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            "too many requests; slow down",
        ));
    }
    let path = request.uri().path();
    if PUBLIC.contains(&path) {
        return Ok(());
    }
    // A request no route takes is the router's to answer (404, or 405 for a route that takes
    // another method): no token or nonce is asked for a request that cannot be served. HEAD is
    // served by the GET handler, so it is checked as a GET.
    let method = if request.method() == Method::HEAD {
        "GET"
    } else {
        request.method().as_str()
    };
    if !ROUTES.iter().any(|(m, p, _, _)| *p == path && *m == method) {
        return Ok(());
    }
    let token = secret::read_token(&state.token_file)
        .map_err(|e| error(StatusCode::INTERNAL_SERVER_ERROR, "token_unavailable", e))?;
    let given = headers.get("x-ez-token").map(HeaderValue::as_bytes).unwrap_or(b"");
    if !secret::token_matches(given, token.as_bytes()) {
        return Err(error(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "missing or wrong X-EZ-Token (see `ezchain auth show-token`)",
        ));
    }
    if request.method() == Method::POST {
        let nonce = headers.get("x-ez-nonce").and_then(|h| h.to_str().ok()).ok_or_else(|| {
            error(
                StatusCode::BAD_REQUEST,
                "nonce_required",
                "state-changing requests need an X-EZ-Nonce header",
            )
        })?;
        let well_formed = (8..=128).contains(&nonce.len())
            && nonce.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
        if !well_formed {
            return Err(error(
                StatusCode::BAD_REQUEST,
                "invalid_nonce_format",
                "X-EZ-Nonce is 8 to 128 characters of A-Z a-z 0-9 _ -",
            ));
        }
        let scope = hex::encode(&keccak256(token.as_bytes())[..8]);
        let ttl_ms = state.config.security.nonce_ttl_seconds.saturating_mul(1000);
        match state.guard.claim_nonce(&scope, nonce, now_ms(), ttl_ms) {
            Ok(NonceOutcome::Fresh) => {}
            Ok(NonceOutcome::Replayed) => {
                return Err(error(
                    StatusCode::CONFLICT,
                    "replay_detected",
                    "this X-EZ-Nonce was already used; send a new one with every request",
                ));
            }
            Err(e) => return Err(error(StatusCode::INTERNAL_SERVER_ERROR, "store_error", e)),
        }
    }
    Ok(())
}

/// Reads a JSON object body whatever its Content-Type says (an empty body is `{}`).
fn body<T: for<'de> Deserialize<'de>>(body: Result<Bytes, BytesRejection>) -> Result<T, ApiError> {
    let bytes = body.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            error(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                "the request body is over security.max_payload_bytes",
            )
        } else {
            error(StatusCode::BAD_REQUEST, "invalid_request", rejection.body_text())
        }
    })?;
    let value: Value = if bytes.iter().all(u8::is_ascii_whitespace) {
        json!({})
    } else {
        serde_json::from_slice(&bytes)
            .map_err(|e| error(StatusCode::BAD_REQUEST, "invalid_request", format!("invalid JSON: {e}")))?
    };
    if !value.is_object() {
        return Err(error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "the body must be a JSON object",
        ));
    }
    serde_json::from_value(value).map_err(|e| error(StatusCode::BAD_REQUEST, "invalid_request", e))
}

fn open_error(error_value: OpenError) -> ApiError {
    match error_value {
        OpenError::File(WalletFileError::Missing(_)) => error(
            StatusCode::NOT_FOUND,
            "wallet_not_found",
            "no wallet yet: POST /wallet/create or /wallet/import",
        ),
        OpenError::File(WalletFileError::Keystore(KeystoreError::WrongPassword)) => error(
            StatusCode::FORBIDDEN,
            "wrong_password",
            "wrong password for this wallet",
        ),
        OpenError::File(e) => error(StatusCode::INTERNAL_SERVER_ERROR, "wallet_file_error", e),
        OpenError::Wallet(e) => wallet_error(e),
        OpenError::Config(message) => error(StatusCode::SERVICE_UNAVAILABLE, "wallet_unavailable", message),
    }
}

fn wallet_error(e: WalletError) -> ApiError {
    wallet_error_ref(&e)
}

fn wallet_error_ref(e: &WalletError) -> ApiError {
    if matches!(e, WalletError::Locked) {
        return error(
            StatusCode::BAD_REQUEST,
            "password_required",
            "this needs the wallet's key: give \"password\" (or X-EZ-Password) or POST /wallet/unlock first",
        );
    }
    let (status, code) = match e {
        WalletError::Locked => (StatusCode::BAD_REQUEST, "password_required"),
        WalletError::SelfTransfer => (StatusCode::BAD_REQUEST, "self_transfer"),
        WalletError::DuplicateTransaction { .. } => (StatusCode::CONFLICT, "duplicate_transaction"),
        WalletError::InsufficientFunds { .. } => (StatusCode::BAD_REQUEST, "insufficient_funds"),
        WalletError::AmountInvalid { .. } => (StatusCode::BAD_REQUEST, "invalid_amount"),
        WalletError::Ownership(ezchain_protocol::ownership::OwnershipError::PendingBundleExists) => {
            (StatusCode::CONFLICT, "pending_bundle_exists")
        }
        WalletError::Node(ClientError::Unreachable { .. }) => (StatusCode::SERVICE_UNAVAILABLE, "node_unreachable"),
        WalletError::Node(ClientError::Refused { code, .. }) if code.starts_with("faucet") => {
            (StatusCode::BAD_GATEWAY, "faucet_refused")
        }
        WalletError::Node(_) | WalletError::WrongChain { .. } | WalletError::BadHeader { .. } => {
            (StatusCode::BAD_GATEWAY, "node_error")
        }
        WalletError::SendFailed { .. } => (StatusCode::UNPROCESSABLE_ENTITY, "send_failed"),
        WalletError::BehindChain { .. } => (StatusCode::CONFLICT, "wallet_behind_chain"),
        WalletError::Store(ezchain_wallet::store::StoreError::Busy) => (StatusCode::SERVICE_UNAVAILABLE, "wallet_busy"),
        _ => (StatusCode::INTERNAL_SERVER_ERROR, "internal_error"),
    };
    error(status, code, e)
}

/// Runs `job` on the wallet thread with the wallet opened (with the key when `password` is
/// given or the wallet is unlocked).
async fn with_wallet<T: Send + 'static>(
    state: &ServiceState,
    password: Option<String>,
    job: impl FnOnce(&mut Wallet) -> Result<T, WalletError> + Send + 'static,
) -> Result<T, ApiError> {
    state
        .worker
        .run(move |slot: &mut Slot| {
            let mut wallet = slot.open(password.as_deref()).map_err(open_error)?;
            job(&mut wallet).map_err(wallet_error)
        })
        .await
        .unwrap_or_else(|| Err(wallet_unavailable()))
}

fn password_header(headers: &HeaderMap) -> Option<String> {
    headers
        .get("x-ez-password")
        .and_then(|v| v.to_str().ok())
        .map(String::from)
}

async fn metrics_text(State(state): State<Arc<ServiceState>>) -> Response {
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.metrics.export(),
    )
        .into_response()
}

/// Probes every configured node; updates the node gauges. Returns (node, height or error).
async fn probe_nodes(state: &ServiceState) -> Vec<(String, Result<ezchain_wallet::client::NodeStatus, String>)> {
    let nodes = state.config.network.bootstrap_nodes.clone();
    let results = state
        .worker
        .run(move |slot: &mut Slot| {
            nodes
                .iter()
                .map(|node| {
                    let single = AppConfig {
                        network: ezchain_wallet::config::NetworkSection {
                            bootstrap_nodes: vec![node.clone()],
                            ..slot.config.network.clone()
                        },
                        ..slot.config.clone()
                    };
                    let status =
                        ezchain_wallet::NodeClient::new(&single.network.bootstrap_nodes, Duration::from_secs(3))
                            .and_then(|client| client.status())
                            .map_err(|e| e.to_string());
                    (node.clone(), status)
                })
                .collect::<Vec<_>>()
        })
        .await
        .unwrap_or_default();
    let up = results.iter().filter(|(_, r)| r.is_ok()).count();
    for (node, result) in &results {
        state
            .metrics
            .node_up
            .get_or_create(&metrics::NodeLabels { node: node.clone() })
            .set(i64::from(result.is_ok()));
    }
    if !results.is_empty() {
        state.metrics.node_online_ratio.set(up as f64 / results.len() as f64);
    }
    if let Some(height) = results
        .iter()
        .filter_map(|(_, r)| r.as_ref().ok())
        .map(|s| s.height)
        .max()
    {
        state.metrics.chain_height.set(height as i64);
    }
    results
}

async fn readyz(State(state): State<Arc<ServiceState>>) -> Response {
    let probes = probe_nodes(&state).await;
    let reachable = probes.iter().filter(|(_, r)| r.is_ok()).count();
    let mut reasons: Vec<String> = Vec::new();
    if reachable == 0 {
        reasons.push("no configured node answers (network.bootstrap_nodes)".into());
    }
    if let Err(e) = load_genesis(&state.config.genesis_file()) {
        reasons.push(e.to_string());
    }
    let data = json!({ "ready": reasons.is_empty(), "reachable_nodes": reachable, "reasons": reasons });
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

async fn wallet_show(State(state): State<Arc<ServiceState>>) -> Answer {
    let data_dir = state.config.data_dir();
    let file = wallet_file::load(&data_dir).map_err(|e| open_error(OpenError::File(e)))?;
    let address = file
        .address()
        .map_err(|e| open_error(OpenError::File(WalletFileError::Keystore(e))))?;
    Ok(ok(
        json!({ "address": address, "name": file.name, "created_at": file.created_at }),
    ))
}

async fn wallet_balance(State(state): State<Arc<ServiceState>>, headers: HeaderMap) -> Answer {
    let (balance, synced, received, tip) = with_wallet(&state, password_header(&headers), |wallet| {
        let mut received = None;
        if wallet.has_key() {
            wallet.resume(Duration::ZERO)?;
            received = Some(wallet.receive()?);
        }
        let tip = wallet.client().status().ok().map(|s| s.height);
        Ok((wallet.balance(), wallet.synced_height(), received, tip))
    })
    .await?;
    if let Some(tip) = tip {
        state.metrics.chain_height.set(tip as i64);
        state.metrics.sync_lag.set(tip.saturating_sub(synced) as i64);
    }
    let mut data = json!(balance);
    data["synced_height"] = json!(synced);
    data["received"] = json!(received);
    Ok(ok(data))
}

async fn wallet_checkpoints(State(state): State<Arc<ServiceState>>) -> Answer {
    let checkpoints = with_wallet(&state, None, |wallet| {
        Ok(wallet
            .checkpoints()
            .iter()
            .map(ezchain_wallet::history::checkpoint_json)
            .collect::<Vec<_>>())
    })
    .await?;
    Ok(ok(json!({ "checkpoints": checkpoints })))
}

async fn tx_history(State(state): State<Arc<ServiceState>>) -> Answer {
    let items = with_wallet(&state, None, |wallet| wallet.history()).await?;
    Ok(ok(
        json!({ "items": items.iter().map(|r| r.to_json()).collect::<Vec<_>>() }),
    ))
}

async fn tx_pending(State(state): State<Arc<ServiceState>>) -> Answer {
    let items = with_wallet(&state, None, |wallet| wallet.pending()).await?;
    Ok(ok(
        json!({ "items": items.iter().map(|r| r.to_json()).collect::<Vec<_>>() }),
    ))
}

async fn tx_receipts(State(state): State<Arc<ServiceState>>) -> Answer {
    let items = with_wallet(&state, None, |wallet| {
        Ok(wallet
            .receipts()
            .iter()
            .map(|r| ezchain_wallet::history::receipt_json(r))
            .collect::<Vec<_>>())
    })
    .await?;
    Ok(ok(json!({ "items": items })))
}

async fn node_status(State(state): State<Arc<ServiceState>>) -> Answer {
    let probes = probe_nodes(&state).await;
    let configured: Vec<Value> = probes
        .iter()
        .map(|(node, result)| match result {
            Ok(status) => {
                json!({ "node": node, "up": true, "height": status.height, "genesis_hash": status.genesis_hash })
            }
            Err(e) => json!({ "node": node, "up": false, "error": e }),
        })
        .collect();
    let root = state.config.data_dir().join("testnet");
    let devnet = state.devnet.clone();
    let local = tokio::task::spawn_blocking(move || devnet.status(&root).ok().flatten())
        .await
        .ok()
        .flatten();
    Ok(ok(json!({ "configured_nodes": configured, "local_testnet": local })))
}

async fn network_info(State(state): State<Arc<ServiceState>>) -> Answer {
    let genesis = load_genesis(&state.config.genesis_file()).ok();
    Ok(ok(json!({
        "network": state.config.network.name,
        "bootstrap_nodes": state.config.network.bootstrap_nodes,
        "genesis_file": state.config.genesis_file(),
        "genesis_hash": genesis.as_ref().map(|g| g.hash()),
        "chain_id": genesis.as_ref().map(|g| g.chain_id),
    })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateRequest {
    password: String,
    #[serde(default = "default_name")]
    name: String,
    #[serde(default)]
    force: bool,
}

fn default_name() -> String {
    "default".into()
}

fn file_error(e: WalletFileError) -> ApiError {
    match e {
        WalletFileError::Exists(_) => error(
            StatusCode::CONFLICT,
            "wallet_exists",
            "a wallet exists; pass \"force\": true to replace it",
        ),
        WalletFileError::Keystore(KeystoreError::BadMnemonic(m)) => {
            error(StatusCode::BAD_REQUEST, "invalid_mnemonic", m)
        }
        WalletFileError::Keystore(KeystoreError::WrongPassword) => error(
            StatusCode::FORBIDDEN,
            "wrong_password",
            "wrong password for this keystore",
        ),
        WalletFileError::Keystore(KeystoreError::Malformed(m)) => error(StatusCode::BAD_REQUEST, "invalid_keystore", m),
        other => error(StatusCode::INTERNAL_SERVER_ERROR, "wallet_file_error", other),
    }
}

async fn wallet_create(State(state): State<Arc<ServiceState>>, request: Result<Bytes, BytesRejection>) -> Answer {
    let request: CreateRequest = body(request)?;
    if request.password.is_empty() {
        return Err(error(
            StatusCode::BAD_REQUEST,
            "password_required",
            "a non-empty password is required",
        ));
    }
    let data_dir = state.config.data_dir();
    let log_n = state.config.wallet.scrypt_log_n;
    let (address, mnemonic) = state
        .worker
        .run(move |slot: &mut Slot| {
            let created = wallet_file::create(&data_dir, &request.name, &request.password, log_n, request.force);
            if created.is_ok() {
                // Another key now: forget the old one.
                slot.lock();
            }
            created
        })
        .await
        .ok_or_else(wallet_unavailable)?
        .map_err(file_error)?;
    Ok(ok(json!({ "address": address, "mnemonic": mnemonic })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ImportRequest {
    mnemonic: Option<String>,
    /// The text of a Web3 v3 keystore file.
    keystore: Option<Value>,
    password: String,
    #[serde(default = "default_name")]
    name: String,
    #[serde(default)]
    force: bool,
}

async fn wallet_import(State(state): State<Arc<ServiceState>>, request: Result<Bytes, BytesRejection>) -> Answer {
    let request: ImportRequest = body(request)?;
    let data_dir = state.config.data_dir();
    let log_n = state.config.wallet.scrypt_log_n;
    let address = state
        .worker
        .run(move |slot: &mut Slot| {
            let imported = match (request.mnemonic, request.keystore) {
                (Some(words), None) => wallet_file::import_mnemonic(
                    &data_dir,
                    &request.name,
                    &words,
                    &request.password,
                    log_n,
                    request.force,
                )
                .map_err(file_error),
                (None, Some(keystore)) => {
                    let temp = data_dir.join("import.keystore.tmp");
                    std::fs::create_dir_all(&data_dir)
                        .and_then(|()| std::fs::write(&temp, keystore.to_string()))
                        .map_err(|e| error(StatusCode::INTERNAL_SERVER_ERROR, "io_error", e))?;
                    let result =
                        wallet_file::import_keystore(&data_dir, &request.name, &temp, &request.password, request.force)
                            .map_err(file_error);
                    let _ = std::fs::remove_file(&temp);
                    result
                }
                _ => Err(error(
                    StatusCode::BAD_REQUEST,
                    "mnemonic_or_keystore_required",
                    "give exactly one of \"mnemonic\" and \"keystore\"",
                )),
            };
            if imported.is_ok() {
                slot.lock();
            }
            imported
        })
        .await
        .ok_or_else(wallet_unavailable)??;
    Ok(ok(json!({ "address": address })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UnlockRequest {
    password: String,
    ttl_seconds: Option<u64>,
}

async fn wallet_unlock(State(state): State<Arc<ServiceState>>, request: Result<Bytes, BytesRejection>) -> Answer {
    let request: UnlockRequest = body(request)?;
    let ttl = Duration::from_secs(
        request
            .ttl_seconds
            .unwrap_or(state.config.security.unlock_ttl_seconds)
            .clamp(1, 24 * 3600),
    );
    state
        .worker
        .run(move |slot: &mut Slot| slot.unlock(&request.password, ttl).map_err(open_error))
        .await
        .ok_or_else(wallet_unavailable)??;
    Ok(ok(json!({ "unlocked": true, "ttl_seconds": ttl.as_secs() })))
}

/// The body of a POST that takes no arguments: `{}` (or nothing); anything else is refused.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NoArguments {}

async fn wallet_lock(State(state): State<Arc<ServiceState>>, request: Result<Bytes, BytesRejection>) -> Answer {
    let NoArguments {} = body(request)?;
    state.worker.run(|slot: &mut Slot| slot.lock()).await;
    Ok(ok(json!({ "unlocked": false })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FaucetRequest {
    amount: u64,
    password: Option<String>,
}

async fn tx_faucet(State(state): State<Arc<ServiceState>>, request: Result<Bytes, BytesRejection>) -> Answer {
    let request: FaucetRequest = body(request)?;
    let amount = request.amount;
    let (grant, report, balance) = with_wallet(&state, request.password, move |wallet| {
        if !wallet.has_key() {
            return Err(WalletError::Locked);
        }
        let address = wallet.address();
        let grant = wallet.client().faucet(&address, amount)?;
        let report = wallet.receive()?;
        Ok((grant, report, wallet.balance()))
    })
    .await?;
    Ok(ok(json!({
        "faucet_amount": grant.amount,
        "height": grant.height,
        "received": report,
        "available_balance": balance.available_balance,
    })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ReceiveRequest {
    password: Option<String>,
}

async fn tx_receive(State(state): State<Arc<ServiceState>>, request: Result<Bytes, BytesRejection>) -> Answer {
    let request: ReceiveRequest = body(request)?;
    let (report, balance) = with_wallet(&state, request.password, |wallet| {
        wallet.resume(Duration::ZERO)?;
        let report = wallet.receive()?;
        Ok((report, wallet.balance()))
    })
    .await?;
    let mut data = json!(report);
    data["available_balance"] = json!(balance.available_balance);
    Ok(ok(data))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SendRequest {
    recipient: String,
    amount: u64,
    password: Option<String>,
    client_tx_id: Option<String>,
    wait_seconds: Option<u64>,
}

/// Removes a `client_tx_id` from the in-flight set when the request ends, however it ends.
struct InFlight<'a>(&'a ServiceState, String);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0
            .in_flight
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&self.1);
    }
}

fn replay(stored: &StoredResponse, code: &'static str) -> Response {
    let status = StatusCode::from_u16(stored.status).unwrap_or(StatusCode::BAD_REQUEST);
    let mut response = (status, Json(stored.body.clone())).into_response();
    response
        .headers_mut()
        .insert("x-ez-idempotent-replay", HeaderValue::from_static("true"));
    response.extensions_mut().insert(ErrorCode(code));
    response
}

/// The refusals of `/tx/send` that are the final answer for a `client_tx_id`: each is decided
/// before anything is signed, from the request itself, so a retry could only get the same
/// answer. Every other error (a node down, the wallet busy, a bundle still pending, a wrong
/// password) is answered and forgotten, and a retry of the id tries again. Once a bundle is
/// signed for an id nothing is stored here at all: the wallet's record of that bundle answers
/// every retry with the state it really reached. docs/SERVICE.md lists these codes.
pub const FINAL_SEND_REFUSALS: &[&str] = &["invalid_amount", "insufficient_funds", "self_transfer"];

/// The stored answer of `record` if it is a final refusal, with its code.
fn final_refusal(record: &IdempotencyRecord) -> Option<(&StoredResponse, &'static str)> {
    let stored = record.response.as_ref()?;
    let code = stored.body["error"]["code"].as_str()?;
    FINAL_SEND_REFUSALS.iter().find(|c| **c == code).map(|c| (stored, *c))
}

async fn tx_send(State(state): State<Arc<ServiceState>>, request: Result<Bytes, BytesRejection>) -> Answer {
    let request: SendRequest = body(request)?;
    let recipient: Address = request.recipient.parse().map_err(|e| {
        error(
            StatusCode::BAD_REQUEST,
            "invalid_recipient",
            format!("{}: {e}; an address is 0x + 40 hex digits", request.recipient),
        )
    })?;
    let client_tx_id = match request.client_tx_id {
        Some(id) => {
            let valid =
                (4..=128).contains(&id.len()) && id.chars().all(|c| c.is_ascii_alphanumeric() || "_.:-".contains(c));
            if !valid {
                return Err(error(
                    StatusCode::BAD_REQUEST,
                    "invalid_client_tx_id",
                    "client_tx_id is 4 to 128 characters of A-Z a-z 0-9 _ . : -",
                ));
            }
            id
        }
        None => {
            let mut bytes = [0u8; 16];
            getrandom::fill(&mut bytes).map_err(|e| error(StatusCode::INTERNAL_SERVER_ERROR, "internal_error", e))?;
            format!("auto-{}", hex::encode(bytes))
        }
    };
    let body_hash = hex::encode(keccak256(
        json!({ "recipient": recipient, "amount": request.amount, "client_tx_id": client_tx_id })
            .to_string()
            .as_bytes(),
    ));
    {
        let mut in_flight = state.in_flight.lock().unwrap_or_else(|p| p.into_inner());
        if !in_flight.insert(client_tx_id.clone()) {
            return Err(error(
                StatusCode::CONFLICT,
                "request_in_progress",
                "a request with this client_tx_id is still being processed; retry when it has answered",
            ));
        }
    }
    let _in_flight = InFlight(&state, client_tx_id.clone());
    let store_error = |e: guard::GuardError| error(StatusCode::INTERNAL_SERVER_ERROR, "store_error", e);
    let in_progress = IdempotencyRecord {
        body_hash: body_hash.clone(),
        response: None,
    };
    let retry = match state.guard.send_record(&client_tx_id).map_err(store_error)? {
        Some(record) if record.body_hash != body_hash => {
            return Err(error(
                StatusCode::CONFLICT,
                "duplicate_transaction",
                "this client_tx_id was used for a different payment; use a new id",
            ));
        }
        Some(record) => {
            if let Some((stored, code)) = final_refusal(&record) {
                return Ok(replay(stored, code));
            }
            // Anything else on record (an earlier attempt that died, or an answer stored by an
            // older version) is not final: the wallet answers from the id's bundle, if any.
            true
        }
        None => {
            state
                .guard
                .put_send_record(&client_tx_id, &in_progress)
                .map_err(store_error)?;
            false
        }
    };
    let wait = Duration::from_secs(
        request
            .wait_seconds
            .unwrap_or(state.config.wallet.send_wait_seconds)
            .min(600),
    );
    let amount = request.amount;
    let id = client_tx_id.clone();
    let result = with_wallet(&state, request.password, move |wallet| {
        if !wallet.has_key() {
            return Err(WalletError::Locked);
        }
        if let Err(e) = wallet.receive() {
            tracing::warn!(error = %e, "could not check the mailbox before sending");
        }
        wallet.send(recipient, amount, Some(id), wait)
    })
    .await;
    // One count per payment: the first answer for an id (a retry is not another attempt).
    if !retry {
        let result_label = match &result {
            Ok(outcome) => format!("{:?}", outcome.record.status).to_lowercase(),
            Err(e) => e.code.to_string(),
        };
        state
            .metrics
            .tx_send
            .get_or_create(&metrics::ResultLabels { result: result_label })
            .inc();
    }
    let (mut response, tx_ref) = match result {
        Ok(outcome) => {
            let record = &outcome.record;
            if !retry && let Some(delay) = record.confirmation_delay_ms() {
                state.metrics.confirmation_delay.observe(delay as f64 / 1000.0);
            }
            let mut data = record.to_json();
            if let Some(stalled) = &outcome.stalled {
                let refusal = wallet_error_ref(stalled);
                data["stalled"] = json!({ "code": refusal.code, "message": refusal.message });
            }
            (ok(data), Some(record.tx_ref()))
        }
        Err(refusal) => {
            if FINAL_SEND_REFUSALS.contains(&refusal.code) {
                let stored = StoredResponse {
                    status: refusal.status.as_u16(),
                    body: json!({ "ok": false, "error": { "code": refusal.code, "message": refusal.message } }),
                };
                state
                    .guard
                    .put_send_record(
                        &client_tx_id,
                        &IdempotencyRecord {
                            body_hash,
                            response: Some(stored),
                        },
                    )
                    .map_err(store_error)?;
            }
            (refusal.into_response(), None)
        }
    };
    if retry {
        response
            .headers_mut()
            .insert("x-ez-idempotent-replay", HeaderValue::from_static("true"));
    }
    response.extensions_mut().insert(AuditTags {
        client_tx_id: Some(client_tx_id),
        tx_ref,
    });
    Ok(response)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NodeStartRequest {
    consensus: Option<usize>,
    accounts: Option<u32>,
    start_port: Option<u16>,
}

async fn node_start(State(state): State<Arc<ServiceState>>, request: Result<Bytes, BytesRejection>) -> Answer {
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
    Ok(ok(json!({
        "status": if outcome.started { "started" } else { "already_running" },
        "created": outcome.created,
        "nodes": outcome.nodes,
    })))
}

async fn node_stop(State(state): State<Arc<ServiceState>>, request: Result<Bytes, BytesRejection>) -> Answer {
    let NoArguments {} = body(request)?;
    let root = state.config.data_dir().join("testnet");
    let devnet = state.devnet.clone();
    let stopped = tokio::task::spawn_blocking(move || devnet.stop(&root))
        .await
        .map_err(|e| error(StatusCode::INTERNAL_SERVER_ERROR, "internal_error", e))?
        .map_err(|e| error(StatusCode::INTERNAL_SERVER_ERROR, "node_stop_failed", e))?;
    Ok(ok(
        json!({ "status": if stopped.is_empty() { "not_running" } else { "stopped" }, "stopped": stopped }),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ExportRequest {
    /// `service` (nonces and idempotency records) or `wallet` (the wallet's state).
    database: String,
    /// Absolute path of the new file; it must not exist.
    out_file: PathBuf,
}

/// Writes an online copy of one of the service's databases: `service.redb` is held open for the
/// service's whole life, and the wallet's is exported on the wallet thread between two jobs.
async fn ops_export(State(state): State<Arc<ServiceState>>, request: Result<Bytes, BytesRejection>) -> Answer {
    let request: ExportRequest = body(request)?;
    if !request.out_file.is_absolute() || request.out_file.as_os_str().as_encoded_bytes().contains(&0) {
        return Err(error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "out_file must be an absolute path (and contain no NUL byte)",
        ));
    }
    if !request.out_file.parent().is_some_and(Path::is_dir) {
        return Err(error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "the folder of out_file does not exist; create it first",
        ));
    }
    let out_file = request.out_file;
    let exported = match request.database.as_str() {
        "service" => {
            let state = state.clone();
            tokio::task::spawn_blocking(move || state.guard.export(&out_file))
                .await
                .map_err(|e| error(StatusCode::INTERNAL_SERVER_ERROR, "internal_error", e))?
        }
        "wallet" => state
            .worker
            .run(move |slot: &mut Slot| {
                ezchain_wallet::store::export_wallet(&slot.config.data_dir(), &out_file, Duration::from_secs(5))
            })
            .await
            .ok_or_else(wallet_unavailable)?,
        _ => {
            return Err(error(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "database must be `service` or `wallet`",
            ));
        }
    };
    match exported {
        Ok(bytes) => Ok(ok(json!({ "database": request.database, "bytes": bytes }))),
        Err(e @ ExportError::Exists(_)) => Err(error(StatusCode::CONFLICT, "already_exists", e)),
        Err(e) => Err(error(StatusCode::INTERNAL_SERVER_ERROR, "export_failed", e)),
    }
}

/// Runs the service for the config at `config_path` until `shutdown` completes.
pub async fn serve(
    config_path: &Path,
    devnet: Arc<dyn LocalDevnet>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServiceError> {
    let config = AppConfig::load(config_path).map_err(|e| ServiceError::Config(e.to_string()))?;
    let host: IpAddr =
        config.app.api_host.parse().map_err(|_| {
            ServiceError::Config(format!("app.api_host `{}` is not an IP address", config.app.api_host))
        })?;
    if !host.is_loopback() && !config.app.allow_remote {
        return Err(ServiceError::NotLoopback(config.app.api_host.clone()));
    }
    let token_file = config.token_file();
    secret::ensure_token(&token_file).map_err(|e| ServiceError::Io(format!("{}: {e}", token_file.display())))?;
    let data_dir = config.data_dir();
    std::fs::create_dir_all(&data_dir).map_err(|e| ServiceError::Io(format!("{}: {e}", data_dir.display())))?;
    let guard = Guard::open(&data_dir.join("service.redb")).map_err(|e| ServiceError::Io(e.to_string()))?;
    let audit = audit::AuditLog::open(
        &config.log_dir(),
        &config.audit_head_file(),
        &config.audit_restored_marker(),
        config.security.audit_max_bytes,
    )
    .map_err(|e| ServiceError::Io(format!("{}: {e}", config.log_dir().display())))?;
    let worker = WalletWorker::start(config.clone()).map_err(|e| ServiceError::Io(e.to_string()))?;
    let addr = SocketAddr::new(host, config.app.api_port);
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| ServiceError::Bind {
            addr: addr.to_string(),
            source,
        })?;
    let local = listener.local_addr().map_err(|e| ServiceError::Io(e.to_string()))?;
    let config_rate = config.security.rate_limit_per_minute;
    let state = Arc::new(ServiceState {
        config,
        config_path: config_path.to_path_buf(),
        token_file,
        guard,
        audit,
        metrics: metrics::ServiceMetrics::new(),
        worker: worker.clone(),
        in_flight: Mutex::new(HashSet::new()),
        rate: RateLimiter::new(config_rate),
        devnet,
    });
    tracing::info!(addr = %local, config = %state.config_path.display(), "wallet service listening");
    let receiver = tokio::spawn(maintain(state.clone(), worker));
    let app = router(state).into_make_service_with_connect_info::<SocketAddr>();
    let result = axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
        .map_err(|e| ServiceError::Io(e.to_string()));
    receiver.abort();
    tracing::info!("wallet service stopped");
    result
}

/// Every 10 s: probes the configured nodes (the node gauges of /metrics stay current), and
/// while the wallet is unlocked finishes pending sends and picks up payments.
async fn maintain(state: Arc<ServiceState>, worker: WalletWorker) {
    let mut tick = tokio::time::interval(Duration::from_secs(10));
    loop {
        tick.tick().await;
        probe_nodes(&state).await;
        worker
            .run(|slot: &mut Slot| {
                if !matches!(slot.key(None), Ok(Some(_))) {
                    return;
                }
                if let Ok(mut wallet) = slot.open(None) {
                    let _ = wallet.resume(Duration::ZERO);
                    if let Err(e) = wallet.receive() {
                        tracing::debug!(error = %e, "background receive failed");
                    }
                }
            })
            .await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_hosts() {
        for host in [
            "localhost",
            "localhost:8787",
            "127.0.0.1",
            "127.0.0.1:8787",
            "[::1]:8787",
            "[::1]",
            "LOCALHOST",
        ] {
            assert!(is_loopback_host(host), "{host}");
        }
        for host in [
            "",
            "example.com",
            "evil.localhost.example:8787",
            "10.0.0.1:8787",
            "0.0.0.0",
        ] {
            assert!(!is_loopback_host(host), "{host}");
        }
    }

    #[test]
    fn the_rate_limit_refuses_a_burst_and_refills() {
        let limiter = RateLimiter::new(3);
        let (a, b) = (IpAddr::from([127, 0, 0, 1]), IpAddr::from([127, 0, 0, 2]));
        let start = Instant::now();
        assert!((0..3).all(|_| limiter.allow(a, start)));
        assert!(
            !limiter.allow(a, start),
            "the fourth request in the same instant is refused"
        );
        assert!(limiter.allow(b, start), "clients have their own bucket");
        assert!(
            limiter.allow(a, start + Duration::from_secs(20)),
            "one token back after 20 s"
        );
        assert!(!limiter.allow(a, start + Duration::from_secs(20)));
    }

    #[test]
    fn openapi_lists_every_route() {
        let doc = openapi();
        for (method, path, _, _) in ROUTES {
            assert!(doc["paths"][path][method.to_lowercase()].is_object(), "{method} {path}");
        }
    }
}
