//! Node RPC over HTTP/JSON (axum) for account nodes and operators.
//!
//! Protocol objects travel as hex of their canonical borsh encoding inside JSON, so a client
//! verifies exactly the bytes the chain hashed. Every response is `{"ok": true, "data": …}` or
//! `{"ok": false, "error": {"code", "message"}}` with a 4xx/5xx status; request bodies are capped.
//!
//! Routes: `GET /health` (alive), `GET /readyz` (200 when synced and connected, 503 with
//! reasons otherwise), `GET /metrics` (Prometheus text), `GET /status`, `POST /v1/submit`,
//! `GET /v1/blocks/{height}`, `GET /v1/headers?from=&to=`, `GET /v1/receipts/{address}/{seq}`,
//! `GET /v1/subscribe?addresses=A,B` (server-sent events: every finalized `header` with its
//! certificate, and the `receipt`s of the listed addresses; `lagged` when events were dropped —
//! refetch with `/v1/headers`).
//!
//! Mailbox: `POST /v1/mailbox/{address}` (put a package), `GET /v1/mailbox/{address}` (ids and
//! sizes), `POST /v1/mailbox/{address}/challenge`, then `POST /v1/mailbox/{address}/fetch` and
//! `POST /v1/mailbox/{address}/ack` signed by the address over that challenge. Faucet (bootstrap
//! node only): `POST /v1/faucet` with `{"address", "amount"}`.

use crate::consensus::app::ChainView;
use crate::forward::{Forwarder, Origin};
use crate::mailbox::{Mailbox, MailboxError, PutOutcome};
use crate::metrics::{NodeMetrics, export};
use axum::extract::rejection::JsonRejection;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::HeaderMap;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use ezchain_protocol::codec::{decode, encode};
use ezchain_protocol::mailbox::{MailboxAction, verify_mailbox_request};
use ezchain_protocol::mempool::{Admission, AdmissionError, PendingPool};
use ezchain_protocol::{Address, ConfirmedBundleUnit, Hash32, RecoverableSignature, Submission, TransferPackage};
use ezchain_rpc::types::{
    self, AckAnswer, AdminExportAnswer, AdminExportRequest, BlockAnswer, CertifiedHeaderItem, ChallengeAnswer,
    EVENT_HEADER, EVENT_LAGGED, EVENT_RECEIPT, Envelope, FaucetRequest, FetchAnswer, FetchedPackage, GenesisAnswer,
    HeadersAnswer, HealthAnswer, LaggedEvent, MAX_BATCH_SUBMISSIONS, MailboxListAnswer, MailboxListItem,
    MailboxPutAnswer, MailboxPutRequest, PutStatus, ReadyAnswer, ReceiptAnswer, ReceiptEvent, SignedMailboxRequest,
    StatusAnswer, SubmitAnswer, SubmitBatchAnswer, SubmitBatchRequest, SubmitRequest, SubmitStatus,
};
use ezchain_rpc::{ErrorCode, paths};
use ezchain_wallet::client::InProcessNode;
use ezchain_wallet::faucet::{Faucet, FaucetRefusal};
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::sync::{Arc, Mutex, OnceLock};

/// Everything the RPC handlers read.
pub struct RpcState {
    pub chain_id: u64,
    pub genesis_hash: Hash32,
    /// Served at `/v1/genesis`.
    pub genesis: ezchain_protocol::Genesis,
    pub chain: Arc<ChainView>,
    pub mempool: Arc<Mutex<PendingPool>>,
    pub metrics: NodeMetrics,
    /// Peers a ready node must be connected to (0 for a single-node devnet).
    pub min_peers: usize,
    pub block_interval_ms: u64,
    pub forwarder: Forwarder,
    pub mailbox: Arc<Mailbox>,
    /// The co-hosted faucet (bootstrap node).
    pub faucet: Option<Faucet>,
    /// The token `/v1/admin/*` requires (`<data_dir>/admin.token`).
    pub admin_token: String,
    /// What this binary is (`/status`).
    pub build: ezchain_host::build::BuildInfo,
    /// `/metrics` has a listener of its own (`metrics.listen_addr`): the RPC port does not
    /// serve it.
    pub metrics_elsewhere: bool,
}

pub fn router(state: Arc<RpcState>, max_body_bytes: usize) -> Router {
    // A package travels as hex inside JSON: twice its size plus a little.
    let mailbox_body = state.mailbox.config().max_package_bytes * 2 + 1024;
    Router::new()
        .route(
            paths::MAILBOX,
            post(mailbox_put)
                .get(mailbox_list)
                .layer(DefaultBodyLimit::max(mailbox_body.max(max_body_bytes))),
        )
        .route(paths::MAILBOX_CHALLENGE, post(mailbox_challenge))
        .route(paths::MAILBOX_FETCH, post(mailbox_fetch))
        .route(paths::MAILBOX_ACK, post(mailbox_ack))
        .route(paths::FAUCET, post(faucet))
        .route(
            paths::ADMIN_EXPORT,
            post(admin_export).route_layer(axum::middleware::from_fn(local_only)),
        )
        .route(paths::HEALTH, get(|| async { ok(HealthAnswer { alive: true }) }))
        .route(paths::STATUS, get(status))
        .route(paths::GENESIS, get(genesis))
        .route(paths::READYZ, get(readyz))
        .route(paths::METRICS, get(metrics))
        .route(paths::SUBMIT, post(submit))
        .route(paths::SUBMIT_BATCH, post(submit_batch))
        .route(paths::BLOCK, get(block))
        .route(paths::HEADERS, get(headers))
        .route(paths::SUBSCRIBE, get(subscribe))
        .route(paths::RECEIPT, get(receipt))
        .fallback(|| async { fail(StatusCode::NOT_FOUND, ErrorCode::NotFound, "no such route") })
        .layer(DefaultBodyLimit::max(max_body_bytes))
        .with_state(state)
}

/// The router of the `metrics.listen_addr` listener: `/metrics` and nothing else.
pub fn metrics_router(state: Arc<RpcState>) -> Router {
    Router::new()
        .route(paths::METRICS, get(serve_metrics))
        .fallback(|| async {
            fail(
                StatusCode::NOT_FOUND,
                ErrorCode::NotFound,
                "this listener serves /metrics only; the API is on the node's rpc.listen_addr",
            )
        })
        .with_state(state)
}

/// The node's router served inside its own process: the co-hosted faucet's client. Its
/// requests take the same handlers, limits and checks as a socket's; set the router once it
/// is built.
pub struct InProcessRpc {
    router: OnceLock<Router>,
    runtime: tokio::runtime::Handle,
}

/// Largest answer read from the in-process router (a headers batch is the biggest).
const IN_PROCESS_ANSWER_BYTES: usize = 64 * 1024 * 1024;

impl InProcessRpc {
    pub fn new(runtime: tokio::runtime::Handle) -> Self {
        InProcessRpc {
            router: OnceLock::new(),
            runtime,
        }
    }

    /// Serves requests from now on with `router`.
    pub fn attach(&self, router: Router) {
        let _ = self.router.set(router);
    }
}

impl InProcessNode for InProcessRpc {
    /// Blocks the calling thread (never a runtime thread: the faucet's own).
    fn serve(&self, method: &str, path: &str, body: Option<Vec<u8>>) -> Result<(u16, Vec<u8>), String> {
        use tower::ServiceExt;
        let router = self.router.get().ok_or("the node's RPC is not serving yet")?.clone();
        let method = axum::http::Method::from_bytes(method.as_bytes()).map_err(|e| e.to_string())?;
        let mut request = axum::http::Request::builder().method(method).uri(path);
        if body.is_some() {
            request = request.header(axum::http::header::CONTENT_TYPE, "application/json");
        }
        let request = request
            .body(axum::body::Body::from(body.unwrap_or_default()))
            .map_err(|e| e.to_string())?;
        self.runtime.block_on(async move {
            let response = match router.oneshot(request).await {
                Ok(response) => response,
                Err(never) => match never {},
            };
            let status = response.status().as_u16();
            let bytes = axum::body::to_bytes(response.into_body(), IN_PROCESS_ANSWER_BYTES)
                .await
                .map_err(|e| e.to_string())?;
            Ok((status, bytes.to_vec()))
        })
    }
}

fn ok(data: impl Serialize) -> Response {
    (StatusCode::OK, Json(json!({ "ok": true, "data": data }))).into_response()
}

fn refusal_body(code: ErrorCode, message: impl std::fmt::Display) -> types::Refusal {
    types::Refusal {
        code: code.as_str().to_string(),
        message: message.to_string(),
    }
}

fn fail(status: StatusCode, code: ErrorCode, message: impl std::fmt::Display) -> Response {
    (
        status,
        Json(json!({ "ok": false, "error": refusal_body(code, message) })),
    )
        .into_response()
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Refreshes the gauges that are cheapest to read at scrape time.
fn refresh_gauges(state: &RpcState) -> (u64, u64) {
    let (height, timestamp_ms) = {
        let chain = state.chain.state.read().unwrap_or_else(|p| p.into_inner());
        (chain.height, chain.timestamp_ms)
    };
    let tip_age_ms = now_ms().saturating_sub(timestamp_ms);
    state.metrics.height.set(height as i64);
    state.metrics.tip_age_seconds.set(tip_age_ms as f64 / 1000.0);
    let mempool = state.mempool.lock().unwrap_or_else(|p| p.into_inner()).len();
    state.metrics.mempool_bundles.set(mempool as i64);
    if let Some(faucet) = &state.faucet {
        state
            .metrics
            .faucet_available_coins
            .set(i64::try_from(faucet.coins_left()).unwrap_or(i64::MAX));
    }
    (height, tip_age_ms)
}

/// `/metrics` on the RPC port, unless it has a listener of its own.
async fn metrics(State(state): State<Arc<RpcState>>) -> Response {
    if state.metrics_elsewhere {
        return fail(
            StatusCode::NOT_FOUND,
            ErrorCode::NotFound,
            "this node serves /metrics on its metrics.listen_addr (node.yaml), not on the RPC port",
        );
    }
    serve_metrics(State(state)).await
}

async fn serve_metrics(State(state): State<Arc<RpcState>>) -> Response {
    refresh_gauges(&state);
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        export(),
    )
        .into_response()
}

/// Ready when connected to enough peers and the tip is fresh: a live chain commits a block every
/// `block_interval`, so a tip older than 10 intervals (at least 10 s) means this node is behind.
async fn readyz(State(state): State<Arc<RpcState>>) -> Response {
    let (height, tip_age_ms) = refresh_gauges(&state);
    let peers = state.metrics.peers.get().max(0) as usize;
    let max_age_ms = (state.block_interval_ms * 10).max(10_000);
    let mut reasons = Vec::new();
    if peers < state.min_peers {
        reasons.push(format!("connected to {peers} peers, need {}", state.min_peers));
    }
    if height == 0 || tip_age_ms > max_age_ms {
        reasons.push(format!(
            "tip at height {height} is {} s old; syncing or the chain is stalled",
            tip_age_ms / 1000
        ));
    }
    let message = reasons.join("; ");
    let body = ReadyAnswer {
        ready: reasons.is_empty(),
        height,
        peers: peers as u64,
        reasons,
    };
    if body.ready {
        ok(body)
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({ "ok": false, "data": body, "error": refusal_body(ErrorCode::NotReady, message) })),
        )
            .into_response()
    }
}

async fn status(State(state): State<Arc<RpcState>>) -> Response {
    let chain = state.chain.state.read().unwrap_or_else(|p| p.into_inner()).clone();
    let mempool = state.mempool.lock().unwrap_or_else(|p| p.into_inner()).len();
    ok(StatusAnswer {
        chain_id: state.chain_id,
        genesis_hash: state.genesis_hash,
        height: chain.height,
        tip_hash: chain.tip_hash,
        state_root: chain.state_root(),
        accounts: chain.account_count() as u64,
        mempool_size: mempool as u64,
        version: state.build.version.clone(),
        commit: state.build.commit.clone(),
        build_date: state.build.date.clone(),
    })
}

async fn genesis(State(state): State<Arc<RpcState>>) -> Response {
    ok(GenesisAnswer {
        genesis_hash: state.genesis_hash,
        genesis: state.genesis.clone(),
    })
}

/// Stable code of an admission refusal.
pub fn admission_code(error: &AdmissionError) -> ErrorCode {
    use ezchain_protocol::bundle::BundleError;
    use ezchain_protocol::snapshot::SnapshotError;
    use ezchain_protocol::state::EntryError;
    match error {
        AdmissionError::Entry(EntryError::Bundle(BundleError::SelfTransfer { .. })) => ErrorCode::SelfTransfer,
        AdmissionError::Entry(EntryError::Bundle(_)) => ErrorCode::InvalidBundle,
        AdmissionError::Entry(EntryError::Expired { .. }) => ErrorCode::BundleExpired,
        AdmissionError::Entry(EntryError::StaleSeq { .. }) => ErrorCode::StaleSeq,
        AdmissionError::Entry(EntryError::SeqGap { .. }) => ErrorCode::SeqGap,
        AdmissionError::Entry(EntryError::DuplicateSender) => ErrorCode::DuplicateSender,
        AdmissionError::Entry(EntryError::Snapshot(snapshot)) => match snapshot {
            SnapshotError::Unsound | SnapshotError::List(_) => ErrorCode::SnapshotUnsound,
            SnapshotError::HistoryTooLong { .. } => ErrorCode::SnapshotHistoryTooLong,
            SnapshotError::EvidenceTooLarge { .. } | SnapshotError::BlockBudget => ErrorCode::SnapshotTooLarge,
            SnapshotError::NoHistory => ErrorCode::InternalError,
            _ => ErrorCode::SnapshotEvidenceInvalid,
        },
        AdmissionError::ConflictingPending { .. } => ErrorCode::PendingBundleExists,
        AdmissionError::FeeNotHigher { .. } => ErrorCode::FeeNotHigher,
        AdmissionError::PoolFull { .. } => ErrorCode::MempoolFull,
    }
}

/// One submission's refusal: the status `/v1/submit` answers it with, its code, the message.
struct Refused(StatusCode, ErrorCode, String);

fn decode_submission(text: &str) -> Result<Submission, Refused> {
    let bytes = hex::decode(text.trim_start_matches("0x")).map_err(|_| {
        Refused(
            StatusCode::BAD_REQUEST,
            ErrorCode::MalformedRequest,
            "`submission` must be hex".into(),
        )
    })?;
    decode(&bytes, ezchain_protocol::bundle::MAX_SUBMISSION_BYTES)
        .map_err(|e| Refused(StatusCode::BAD_REQUEST, ErrorCode::MalformedSubmission, e.to_string()))
}

fn admission_refused(error: AdmissionError) -> Refused {
    let status = if matches!(error, AdmissionError::PoolFull { .. }) {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::UNPROCESSABLE_ENTITY
    };
    Refused(status, admission_code(&error), error.to_string())
}

fn submit_answer(submission: &Submission, admission: &Admission) -> SubmitAnswer {
    SubmitAnswer {
        status: match admission {
            Admission::New => SubmitStatus::Accepted,
            Admission::Replace { .. } => SubmitStatus::Replaced,
            Admission::Duplicate => SubmitStatus::AlreadyPending,
        },
        bundle_hash: submission.envelope.bundle_hash,
        seq: submission.envelope.seq,
    }
}

fn submission_origin(state: &RpcState, headers: &HeaderMap, entries: u64) -> Origin {
    let origin = if headers.contains_key(paths::FORWARDED_HEADER) {
        Origin::Peer
    } else {
        Origin::Client
    };
    state
        .metrics
        .submissions_received
        .get_or_create(&vec![("origin".to_string(), origin.as_str().to_string())])
        .inc_by(entries);
    origin
}

/// Signature recovery (≈ 50 µs) and, for a snapshot, its evidence against `chain`: all a
/// submission needs before the pool's lock. A snapshot's evidence is checked before it may wait
/// in the pool (bounded by the evidence limits), so a wallet hears at once why one is refused;
/// the verdict stays with it, and the block that includes it reuses it. Reads up to 512 KiB of
/// evidence and proofs against the store: callers run it off the runtime's threads.
fn check_submission(
    chain: &ezchain_protocol::state::ChainState,
    view: &ChainView,
    submission: &Submission,
) -> Result<ezchain_protocol::bundle::VerifiedSubmission, Refused> {
    let verified = submission
        .verify(chain.chain_id)
        .map_err(|e| admission_refused(AdmissionError::Entry(e.into())))?;
    if !verified.submission().is_snapshot() {
        return Ok(verified);
    }
    chain
        .check_snapshot_once(verified, chain.height + 1, &view.snapshot_rules())
        .map_err(|e| admission_refused(AdmissionError::Entry(e)))
}

async fn submit(
    State(state): State<Arc<RpcState>>,
    headers: HeaderMap,
    body: Result<Json<SubmitRequest>, JsonRejection>,
) -> Response {
    let origin = submission_origin(&state, &headers, 1);
    let Json(request) = match body {
        Ok(body) => body,
        Err(rejection) => return fail(rejection.status(), ErrorCode::MalformedRequest, rejection.body_text()),
    };
    let submission = match decode_submission(&request.submission) {
        Ok(submission) => submission,
        Err(Refused(status, code, message)) => return fail(status, code, message),
    };
    let chain = state.chain.state.read().unwrap_or_else(|p| p.into_inner()).clone();
    // Recovery outside the pool's lock, so concurrent submissions verify in parallel; the pool
    // keeps the verification for the block that includes the bundle. A snapshot's check is
    // heavier: it runs off the runtime's threads, so the RPC keeps answering meanwhile.
    let checked = if submission.is_snapshot() {
        let view = state.chain.clone();
        let entry = submission.clone();
        match tokio::task::spawn_blocking(move || {
            let verdict = check_submission(&chain, &view, &entry);
            (chain, verdict)
        })
        .await
        {
            Ok(done) => done,
            Err(_) => {
                return fail(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    ErrorCode::InternalError,
                    "checking the snapshot failed inside the node; see its log",
                );
            }
        }
    } else {
        let verdict = check_submission(&chain, &state.chain, &submission);
        (chain, verdict)
    };
    let (chain, verdict) = checked;
    let admitted = verdict.and_then(|verified| {
        state
            .mempool
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .submit_verified(&chain, verified)
            .map_err(admission_refused)
    });
    match admitted {
        Ok(admission) => {
            state.forwarder.offer(&submission, &admission, origin);
            ok(submit_answer(&submission, &admission))
        }
        Err(Refused(status, code, message)) => fail(status, code, message),
    }
}

/// `POST /v1/submit/batch`: many submissions in one request, each answered as `/v1/submit`
/// would. Decoding and signature recovery run in parallel across the cores (rayon) off the
/// runtime's threads; admission takes the pool's lock once for the whole batch, in the
/// request's order (so a sender's later seq in the same batch follows its earlier one).
async fn submit_batch(
    State(state): State<Arc<RpcState>>,
    headers: HeaderMap,
    body: Result<Json<SubmitBatchRequest>, JsonRejection>,
) -> Response {
    use rayon::prelude::*;
    let Json(request) = match body {
        Ok(body) => body,
        Err(rejection) => return fail(rejection.status(), ErrorCode::MalformedRequest, rejection.body_text()),
    };
    if request.submissions.len() > MAX_BATCH_SUBMISSIONS {
        return fail(
            StatusCode::BAD_REQUEST,
            ErrorCode::BatchTooLarge,
            format!(
                "{} submissions; one request takes at most {MAX_BATCH_SUBMISSIONS}",
                request.submissions.len()
            ),
        );
    }
    let origin = submission_origin(&state, &headers, request.submissions.len() as u64);
    let chain = state.chain.state.read().unwrap_or_else(|p| p.into_inner()).clone();
    let view = state.chain.clone();
    let checked = tokio::task::spawn_blocking(move || {
        let entries: Vec<Result<(Submission, ezchain_protocol::bundle::VerifiedSubmission), Refused>> = request
            .submissions
            .par_iter()
            .map(|text| {
                let submission = decode_submission(text)?;
                let verified = check_submission(&chain, &view, &submission)?;
                Ok((submission, verified))
            })
            .collect();
        (chain, entries)
    })
    .await;
    let Ok((chain, entries)) = checked else {
        return fail(
            StatusCode::INTERNAL_SERVER_ERROR,
            ErrorCode::InternalError,
            "checking the batch failed inside the node; see its log",
        );
    };
    let admitted: Vec<Result<(Submission, Admission), Refused>> = {
        let mut pool = state.mempool.lock().unwrap_or_else(|p| p.into_inner());
        entries
            .into_iter()
            .map(|entry| {
                let (submission, verified) = entry?;
                let admission = pool.submit_verified(&chain, verified).map_err(admission_refused)?;
                Ok((submission, admission))
            })
            .collect()
    };
    let results = admitted
        .into_iter()
        .map(|entry| match entry {
            Ok((submission, admission)) => {
                state.forwarder.offer(&submission, &admission, origin);
                Envelope {
                    ok: true,
                    data: Some(submit_answer(&submission, &admission)),
                    error: None,
                }
            }
            Err(Refused(_, code, message)) => Envelope {
                ok: false,
                data: None,
                error: Some(refusal_body(code, message)),
            },
        })
        .collect();
    ok(SubmitBatchAnswer { results })
}

async fn block(State(state): State<Arc<RpcState>>, Path(height): Path<String>) -> Response {
    let Ok(height) = height.parse::<u64>() else {
        return fail(
            StatusCode::BAD_REQUEST,
            ErrorCode::MalformedRequest,
            "height must be a whole number",
        );
    };
    match (state.chain.store.block(height), state.chain.store.certificate(height)) {
        (Ok(Some(block)), Ok(Some(certificate))) => ok(BlockAnswer {
            height,
            header_hash: block.hash(),
            block: hex::encode(encode(&block)),
            certificate: hex::encode(encode(&certificate)),
        }),
        (Ok(None), _) | (_, Ok(None)) => fail(
            StatusCode::NOT_FOUND,
            ErrorCode::BlockNotFound,
            format!("no finalized block at height {height}"),
        ),
        (Err(e), _) | (_, Err(e)) => fail(StatusCode::INTERNAL_SERVER_ERROR, ErrorCode::StoreError, e),
    }
}

/// Most headers answered per request.
pub const MAX_HEADERS_PER_REQUEST: u64 = 200;

#[derive(Deserialize)]
struct HeaderRange {
    from: u64,
    to: Option<u64>,
}

/// Finalized headers with their commit certificates, for light clients: `from..=to`, at most
/// [`MAX_HEADERS_PER_REQUEST`], stopping at the tip.
async fn headers(
    State(state): State<Arc<RpcState>>,
    query: Result<axum::extract::Query<HeaderRange>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let Ok(axum::extract::Query(range)) = query else {
        return fail(
            StatusCode::BAD_REQUEST,
            ErrorCode::MalformedRequest,
            "use ?from=<height>[&to=<height>]",
        );
    };
    let from = range.from.max(1);
    let last = range
        .to
        .unwrap_or(u64::MAX)
        .min(from.saturating_add(MAX_HEADERS_PER_REQUEST - 1));
    let mut items = Vec::new();
    for height in from..=last {
        match (state.chain.store.header(height), state.chain.store.certificate(height)) {
            (Ok(Some(header)), Ok(Some(certificate))) => items.push(CertifiedHeaderItem {
                height,
                header_hash: header.hash(),
                header: hex::encode(encode(&header)),
                certificate: hex::encode(encode(&certificate)),
            }),
            (Err(e), _) | (_, Err(e)) => return fail(StatusCode::INTERNAL_SERVER_ERROR, ErrorCode::StoreError, e),
            _ => break,
        }
    }
    ok(HeadersAnswer { headers: items })
}

#[derive(Deserialize)]
struct SubscribeQuery {
    /// Comma-separated addresses whose receipts to push.
    addresses: Option<String>,
}

/// Most addresses one subscription may follow.
pub const MAX_SUBSCRIBED_ADDRESSES: usize = 256;

async fn subscribe(
    State(state): State<Arc<RpcState>>,
    query: Result<axum::extract::Query<SubscribeQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    use axum::response::sse::{Event, KeepAlive, Sse};
    use futures::StreamExt;
    use tokio::sync::broadcast::error::RecvError;

    let Ok(axum::extract::Query(query)) = query else {
        return fail(
            StatusCode::BAD_REQUEST,
            ErrorCode::MalformedRequest,
            "use ?addresses=0x…,0x…",
        );
    };
    let mut addresses = std::collections::HashSet::new();
    for text in query
        .addresses
        .as_deref()
        .unwrap_or("")
        .split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
    {
        match text.parse::<Address>() {
            Ok(address) => {
                addresses.insert(address);
            }
            Err(e) => {
                return fail(
                    StatusCode::BAD_REQUEST,
                    ErrorCode::MalformedAddress,
                    format!("{text}: {e}"),
                );
            }
        }
    }
    if addresses.len() > MAX_SUBSCRIBED_ADDRESSES {
        return fail(
            StatusCode::BAD_REQUEST,
            ErrorCode::TooManyAddresses,
            format!("at most {MAX_SUBSCRIBED_ADDRESSES} addresses"),
        );
    }
    let receiver = state.chain.commits.subscribe();
    let updates = futures::stream::unfold(receiver, |mut receiver| async move {
        match receiver.recv().await {
            Ok(committed) => Some((Ok(committed), receiver)),
            Err(RecvError::Lagged(missed)) => Some((Err(missed), receiver)),
            Err(RecvError::Closed) => None,
        }
    });
    let events = updates.flat_map(move |update| {
        let events: Vec<Result<Event, std::convert::Infallible>> = match update {
            Err(missed) => vec![Ok(Event::default()
                .event(EVENT_LAGGED)
                .data(json!(LaggedEvent { missed }).to_string()))],
            Ok(committed) => {
                let header = &committed.header;
                let mut events = vec![Ok(Event::default().event(EVENT_HEADER).data(
                    json!(CertifiedHeaderItem {
                        height: header.height,
                        header_hash: header.hash(),
                        header: hex::encode(encode(header)),
                        certificate: hex::encode(encode(&committed.certificate)),
                    })
                    .to_string(),
                ))];
                for (owner, receipt) in committed.receipts.iter().filter(|(owner, _)| addresses.contains(owner)) {
                    events.push(Ok(Event::default().event(EVENT_RECEIPT).data(
                        json!(ReceiptEvent {
                            address: *owner,
                            seq: receipt.seq,
                            height: receipt.header.height,
                            receipt: hex::encode(encode(receipt)),
                        })
                        .to_string(),
                    )));
                }
                events
            }
        };
        futures::stream::iter(events)
    });
    Sse::new(events).keep_alive(KeepAlive::default()).into_response()
}

async fn receipt(State(state): State<Arc<RpcState>>, Path((address, seq)): Path<(String, String)>) -> Response {
    let Ok(address) = address.parse::<Address>() else {
        return fail(
            StatusCode::BAD_REQUEST,
            ErrorCode::MalformedAddress,
            "address must be 0x + 40 hex digits (EIP-55 checksum if mixed case)",
        );
    };
    let Ok(seq) = seq.parse::<u64>() else {
        return fail(
            StatusCode::BAD_REQUEST,
            ErrorCode::MalformedRequest,
            "seq must be a whole number",
        );
    };
    match state.chain.store.receipt(&address, seq) {
        Ok(Some(receipt)) => ok(ReceiptAnswer {
            height: receipt.header.height,
            receipt: hex::encode(encode(&receipt)),
        }),
        Ok(None) => fail(
            StatusCode::NOT_FOUND,
            ErrorCode::ReceiptNotFound,
            format!("no receipt for {address} seq {seq}"),
        ),
        Err(e) => fail(StatusCode::INTERNAL_SERVER_ERROR, ErrorCode::StoreError, e),
    }
}

/// A refused request: its status, stable code and message (small, so `?` stays cheap).
struct Refusal {
    status: StatusCode,
    code: ErrorCode,
    message: String,
}

fn refuse(status: StatusCode, code: ErrorCode, message: impl std::fmt::Display) -> Refusal {
    Refusal {
        status,
        code,
        message: message.to_string(),
    }
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        fail(self.status, self.code, self.message)
    }
}

type Answer = Result<Response, Refusal>;

fn parse_address(text: &str) -> Result<Address, Refusal> {
    text.parse::<Address>().map_err(|e| {
        refuse(
            StatusCode::BAD_REQUEST,
            ErrorCode::MalformedAddress,
            format!("{text}: {e}; an address is 0x + 40 hex digits (EIP-55 checksum if mixed case)"),
        )
    })
}

fn json_body<T>(body: Result<Json<T>, JsonRejection>) -> Result<T, Refusal> {
    body.map(|Json(value)| value)
        .map_err(|rejection| refuse(rejection.status(), ErrorCode::MalformedRequest, rejection.body_text()))
}

fn mailbox_failure(error: MailboxError) -> Refusal {
    match error {
        MailboxError::PackageTooLarge { .. } => {
            refuse(StatusCode::PAYLOAD_TOO_LARGE, ErrorCode::PackageTooLarge, error)
        }
        MailboxError::Full { .. } => refuse(StatusCode::INSUFFICIENT_STORAGE, ErrorCode::MailboxFull, error),
        MailboxError::Database(_) | MailboxError::Corrupt(_) => {
            refuse(StatusCode::INTERNAL_SERVER_ERROR, ErrorCode::StoreError, error)
        }
    }
}

async fn mailbox_put(
    State(state): State<Arc<RpcState>>,
    Path(address): Path<String>,
    body: Result<Json<MailboxPutRequest>, JsonRejection>,
) -> Answer {
    let recipient = parse_address(&address)?;
    let request = json_body(body)?;
    let bytes = hex::decode(request.package.trim_start_matches("0x")).map_err(|_| {
        refuse(
            StatusCode::BAD_REQUEST,
            ErrorCode::MalformedRequest,
            "`package` must be hex",
        )
    })?;
    let max = state.mailbox.config().max_package_bytes;
    if bytes.len() > max {
        return Err(mailbox_failure(MailboxError::PackageTooLarge {
            size: bytes.len(),
            max,
        }));
    }
    let package: TransferPackage =
        decode(&bytes, max).map_err(|e| refuse(StatusCode::BAD_REQUEST, ErrorCode::MalformedPackage, e))?;
    if package.target_tx.recipient != recipient {
        return Err(refuse(
            StatusCode::BAD_REQUEST,
            ErrorCode::WrongRecipient,
            format!("the package pays {}, not {recipient}", package.target_tx.recipient),
        ));
    }
    check_backed_by_chain(&state, &package)?;
    let id = package.package_hash();
    let outcome = state
        .mailbox
        .put(&recipient, &id, &bytes, now_ms())
        .map_err(mailbox_failure)?;
    Ok(ok(MailboxPutAnswer {
        id,
        status: if outcome == PutOutcome::Stored {
            PutStatus::Stored
        } else {
            PutStatus::AlreadyStored
        },
    }))
}

/// A package is kept only when it is backed by a payment this node holds as final: its newest
/// unit's bundle is in a finalized block here (the node's own receipt for that sender and seq,
/// with the same header, proves the unit's sidecar is the committed one) and its target tx is
/// in that bundle and covers the value. A lookup and one tree proof: the witness behind it is
/// the recipient's to verify. So a mailbox only ever holds what somebody really paid its owner
/// on this chain — filling it takes one real payment per recipient, not free made-up packages.
fn check_backed_by_chain(state: &RpcState, package: &TransferPackage) -> Result<(), Refusal> {
    let unbacked = |why: String| {
        refuse(
            StatusCode::UNPROCESSABLE_ENTITY,
            ErrorCode::PackageNotBacked,
            format!("{why}; a package must carry the finalized payment it delivers"),
        )
    };
    let newest = package
        .witness
        .chain
        .first()
        .ok_or_else(|| unbacked("the package shows no confirmed bundle".into()))?;
    let owner = newest.owner();
    let seq = newest.receipt.seq;
    let height = newest.height();
    let stored = state
        .chain
        .store
        .receipt(&owner, seq)
        .map_err(|e| refuse(StatusCode::INTERNAL_SERVER_ERROR, ErrorCode::StoreError, e))?;
    let Some(stored) = stored else {
        let tip = state.chain.state.read().unwrap_or_else(|p| p.into_inner()).height;
        if height > tip {
            // This node is behind: another node may have the block already.
            return Err(refuse(
                StatusCode::SERVICE_UNAVAILABLE,
                ErrorCode::PackageBlockUnknown,
                format!("height {height} is not finalized on this node yet (tip {tip}); retry or use another node"),
            ));
        }
        return Err(unbacked(format!("{owner} has no finalized bundle {seq} on this chain")));
    };
    if stored.header != newest.receipt.header {
        return Err(unbacked(format!(
            "bundle {seq} of {owner} was finalized in another block than the package says"
        )));
    }
    let committed = ConfirmedBundleUnit {
        receipt: stored,
        sidecar: newest.sidecar.clone(),
    };
    if !committed.proves_inclusion() {
        return Err(unbacked(format!(
            "the package's bundle {seq} of {owner} is not the one finalized at height {height}"
        )));
    }
    if package.target_tx.sender != owner
        || !newest.sidecar.txs.contains(&package.target_tx)
        || package.target_tx.covering_range(&package.target_value).is_none()
    {
        return Err(unbacked(format!(
            "bundle {seq} of {owner} does not pay {} to {}",
            package.target_value, package.target_tx.recipient
        )));
    }
    Ok(())
}

async fn mailbox_list(State(state): State<Arc<RpcState>>, Path(address): Path<String>) -> Answer {
    let recipient = parse_address(&address)?;
    let items = state
        .mailbox
        .items(&recipient, now_ms(), false, 0)
        .map_err(mailbox_failure)?;
    Ok(ok(MailboxListAnswer {
        packages: items
            .into_iter()
            .map(|item| MailboxListItem {
                id: item.id,
                stored_at_ms: item.stored_at_ms,
                size: item.size as u64,
            })
            .collect(),
    }))
}

async fn mailbox_challenge(State(state): State<Arc<RpcState>>, Path(address): Path<String>) -> Answer {
    let recipient = parse_address(&address)?;
    let challenge = state
        .mailbox
        .issue_challenge(&recipient, now_ms())
        .map_err(|e| refuse(StatusCode::INTERNAL_SERVER_ERROR, ErrorCode::RandomnessUnavailable, e))?;
    Ok(ok(ChallengeAnswer {
        challenge,
        genesis_hash: state.genesis_hash,
        expires_in_ms: crate::mailbox::CHALLENGE_TTL_MS,
    }))
}

/// Most packages acknowledged by one request.
pub const MAX_ACK_IDS: usize = 1_000;
/// Package bytes answered by one fetch, at most (always at least one package).
pub const MAX_FETCH_BYTES: usize = 8 * 1024 * 1024;

/// Checks the recipient's signature over a challenge this node issued; returns the recipient.
fn authorize(
    state: &RpcState,
    address: &str,
    action: MailboxAction,
    request: &SignedMailboxRequest,
) -> Result<Address, Refusal> {
    let recipient = parse_address(address)?;
    if request.ids.len() > MAX_ACK_IDS {
        return Err(refuse(
            StatusCode::BAD_REQUEST,
            ErrorCode::TooManyIds,
            format!("acknowledge at most {MAX_ACK_IDS} packages per request"),
        ));
    }
    let signature = hex::decode(request.signature.trim_start_matches("0x"))
        .ok()
        .and_then(|bytes| <[u8; 65]>::try_from(bytes).ok())
        .map(RecoverableSignature)
        .ok_or_else(|| {
            refuse(
                StatusCode::BAD_REQUEST,
                ErrorCode::MalformedSignature,
                "`signature` must be 65 bytes of hex",
            )
        })?;
    if !state.mailbox.take_challenge(&recipient, &request.challenge, now_ms()) {
        return Err(refuse(
            StatusCode::UNAUTHORIZED,
            ErrorCode::ChallengeInvalid,
            "unknown, used or expired challenge; ask for a new one at /v1/mailbox/{address}/challenge",
        ));
    }
    match verify_mailbox_request(
        &state.genesis_hash,
        action,
        &recipient,
        &request.challenge,
        &request.ids,
        &signature,
    ) {
        Ok(true) => Ok(recipient),
        _ => Err(refuse(
            StatusCode::UNAUTHORIZED,
            ErrorCode::SignatureInvalid,
            format!("the signature is not {recipient}'s over this request"),
        )),
    }
}

async fn mailbox_fetch(
    State(state): State<Arc<RpcState>>,
    Path(address): Path<String>,
    body: Result<Json<SignedMailboxRequest>, JsonRejection>,
) -> Answer {
    let request = json_body(body)?;
    let recipient = authorize(&state, &address, MailboxAction::Fetch, &request)?;
    let items = state
        .mailbox
        .items(&recipient, now_ms(), true, MAX_FETCH_BYTES)
        .map_err(mailbox_failure)?;
    let packages = items
        .iter()
        .map(|item| FetchedPackage {
            id: item.id,
            stored_at_ms: item.stored_at_ms,
            package: hex::encode(&item.bytes),
        })
        .collect();
    Ok(ok(FetchAnswer { packages }))
}

async fn mailbox_ack(
    State(state): State<Arc<RpcState>>,
    Path(address): Path<String>,
    body: Result<Json<SignedMailboxRequest>, JsonRejection>,
) -> Answer {
    let request = json_body(body)?;
    let recipient = authorize(&state, &address, MailboxAction::Ack, &request)?;
    let removed = state.mailbox.ack(&recipient, &request.ids).map_err(mailbox_failure)?;
    Ok(ok(AckAnswer {
        removed: removed as u64,
    }))
}

async fn faucet(State(state): State<Arc<RpcState>>, body: Result<Json<FaucetRequest>, JsonRejection>) -> Answer {
    let Some(faucet) = &state.faucet else {
        return Err(refuse(
            StatusCode::NOT_FOUND,
            ErrorCode::FaucetUnavailable,
            "this node hosts no faucet; ask the testnet's bootstrap node",
        ));
    };
    let request = json_body(body)?;
    let recipient = parse_address(&request.address)?;
    match faucet.pay(recipient, request.amount).await {
        Ok(grant) => Ok(ok(grant)),
        Err(refusal) => Err(faucet_refusal(refusal)),
    }
}

fn faucet_refusal(refusal: FaucetRefusal) -> Refusal {
    let status = StatusCode::from_u16(refusal.status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
    refuse(status, refusal.code, refusal.message)
}

/// Administration is for this host only: a request from another address is refused before its
/// token is even looked at, so a node whose RPC listens on a public address does not offer its
/// admin routes to the network. (A request with no peer address is the node's own, in-process.)
async fn local_only(request: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let peer = request
        .extensions()
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|info| info.0);
    if is_local(peer) {
        next.run(request).await
    } else {
        fail(
            StatusCode::FORBIDDEN,
            ErrorCode::AdminLocalOnly,
            "administration is served to this host only: run the command on the node's host",
        )
    }
}

/// True for loopback peers and for in-process requests (no peer address).
pub fn is_local(peer: Option<std::net::SocketAddr>) -> bool {
    peer.is_none_or(|peer| match peer.ip() {
        std::net::IpAddr::V4(ip) => ip.is_loopback(),
        std::net::IpAddr::V6(ip) => ip.is_loopback() || ip.to_ipv4_mapped().is_some_and(|ip| ip.is_loopback()),
    })
}

/// Writes an online copy of one of the node's databases (for `ezchain ops backup`).
async fn admin_export(
    State(state): State<Arc<RpcState>>,
    headers: HeaderMap,
    body: Result<Json<AdminExportRequest>, JsonRejection>,
) -> Answer {
    let given = headers
        .get(paths::ADMIN_TOKEN_HEADER)
        .map(|value| value.as_bytes())
        .unwrap_or_default();
    if !ezchain_host::secret::token_matches(given, state.admin_token.as_bytes()) {
        return Err(refuse(
            StatusCode::UNAUTHORIZED,
            ErrorCode::Unauthorized,
            "X-EZ-Admin-Token is missing or wrong; it is in the node's data folder (admin.token)",
        ));
    }
    let request = json_body(body)?;
    if !request.out_file.is_absolute() {
        return Err(refuse(
            StatusCode::BAD_REQUEST,
            ErrorCode::MalformedRequest,
            "out_file must be an absolute path",
        ));
    }
    if request.database == "faucet_wallet" {
        let Some(faucet) = &state.faucet else {
            return Err(refuse(
                StatusCode::BAD_REQUEST,
                ErrorCode::UnknownDatabase,
                "this node hosts no faucet wallet",
            ));
        };
        return match faucet.export_wallet(request.out_file.clone()).await {
            Ok(bytes) => Ok(ok(AdminExportAnswer {
                database: "faucet_wallet".into(),
                height: None,
                tip_hash: None,
                bytes,
            })),
            Err(error @ ezchain_host::export::ExportError::Exists(_)) => {
                Err(refuse(StatusCode::CONFLICT, ErrorCode::AlreadyExists, error))
            }
            Err(error) => Err(refuse(
                StatusCode::INTERNAL_SERVER_ERROR,
                ErrorCode::ExportFailed,
                error,
            )),
        };
    }
    let chain = state.chain.clone();
    let mailbox = state.mailbox.clone();
    let out_file = request.out_file.clone();
    let exported = tokio::task::spawn_blocking(move || match request.database.as_str() {
        "chain" => Some(chain.store.export(&out_file).map(|(tip, bytes)| AdminExportAnswer {
            database: "chain".into(),
            height: Some(tip.height),
            tip_hash: Some(tip.hash),
            bytes,
        })),
        "mailbox" => Some(mailbox.export(&out_file).map(|bytes| AdminExportAnswer {
            database: "mailbox".into(),
            height: None,
            tip_hash: None,
            bytes,
        })),
        _ => None,
    })
    .await
    .map_err(|e| refuse(StatusCode::INTERNAL_SERVER_ERROR, ErrorCode::InternalError, e))?;
    match exported {
        None => Err(refuse(
            StatusCode::BAD_REQUEST,
            ErrorCode::UnknownDatabase,
            "database must be `chain`, `mailbox` or `faucet_wallet`",
        )),
        Some(Ok(answer)) => Ok(ok(answer)),
        Some(Err(error @ ezchain_host::export::ExportError::Exists(_))) => {
            Err(refuse(StatusCode::CONFLICT, ErrorCode::AlreadyExists, error))
        }
        Some(Err(error)) => Err(refuse(
            StatusCode::INTERNAL_SERVER_ERROR,
            ErrorCode::ExportFailed,
            error,
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_in_process_router_answers_a_thread_like_a_socket_would_once_attached() {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .build()
            .expect("runtime");
        let node = Arc::new(InProcessRpc::new(runtime.handle().clone()));
        let caller = node.clone();
        let before = std::thread::spawn(move || caller.serve("GET", "/echo?x=1", None))
            .join()
            .expect("thread");
        assert!(before.is_err(), "nothing is served before the router is attached");
        node.attach(Router::new().route("/echo", post(|body: String| async move { ok(json!({ "got": body })) })));
        let caller = node.clone();
        let (status, body) = std::thread::spawn(move || caller.serve("POST", "/echo", Some(b"{\"a\":1}".to_vec())))
            .join()
            .expect("thread")
            .expect("served");
        assert_eq!(status, 200);
        let answer: serde_json::Value = serde_json::from_slice(&body).expect("json");
        assert_eq!(answer["data"]["got"], "{\"a\":1}");
        let caller = node.clone();
        let (status, _) = std::thread::spawn(move || caller.serve("GET", "/echo", None))
            .join()
            .expect("thread")
            .expect("served");
        assert_eq!(status, 405, "the router's own answers come back as they are");
    }

    #[test]
    fn administration_is_for_loopback_and_in_process_callers_only() {
        let at = |text: &str| Some(text.parse::<std::net::SocketAddr>().expect("address"));
        assert!(is_local(None), "the node's own in-process request");
        assert!(is_local(at("127.0.0.1:5000")));
        assert!(is_local(at("127.8.9.10:5000")));
        assert!(is_local(at("[::1]:5000")));
        assert!(is_local(at("[::ffff:127.0.0.1]:5000")));
        assert!(!is_local(at("10.0.0.7:5000")));
        assert!(!is_local(at("192.168.1.20:5000")));
        assert!(!is_local(at("[2001:db8::1]:5000")));
        assert!(!is_local(at("[::ffff:10.0.0.7]:5000")));
    }
}
