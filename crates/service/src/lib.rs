//! `ezchain serve`: the local wallet service — an HTTP API (axum) over the account node.
//!
//! Every response is the envelope `{"ok": true, "data": …}` or `{"ok": false, "error": {"code",
//! "message"}}`, 404/405/413 included. Every request passes, in order: the audit and metrics
//! layer (one chained audit line per request), the Host guard (loopback names only, against DNS
//! rebinding), the per-client rate limit, the token check (`X-EZ-Token`, constant time, or a web
//! wallet session cookie from a same-origin page ([`session`]); not on the probes), and for
//! state-changing POSTs the replay guard (`X-EZ-Nonce`, persisted). `/tx/send` is idempotent by
//! `client_tx_id`. Wallet work runs on one wallet thread ([`worker`]). `/` is the web wallet
//! ([`web`]); every answer carries its security headers.

mod answer;
mod api;
pub mod audit;
pub mod devnet;
pub mod guard;
pub mod metrics;
mod middleware;
pub mod routes;
pub mod session;
pub mod stats;
pub mod web;
pub mod worker;

pub use api::tx::FINAL_SEND_REFUSALS;
pub use routes::{ROUTES, openapi, router};

use api::node::probe_nodes;
use devnet::LocalDevnet;
use ezchain_host::secret;
use ezchain_wallet::AppConfig;
use guard::Guard;
use middleware::RateLimiter;
use std::collections::HashSet;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use thiserror::Error;
use worker::{Slot, WalletWorker};

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
    /// Another process (a second `ezchain serve`) holds this data folder's databases.
    #[error("another process serves the data folder {0} (its service.redb is held)")]
    InUse(PathBuf),
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
    build: ezchain_host::build::BuildInfo,
    started: Instant,
    sessions: session::Sessions,
    stats: stats::Stats,
    /// The port this service listens on (its session cookie is named after it).
    port: u16,
    /// Where a browser on this machine finds the web wallet (`http://127.0.0.1:8787`).
    page_url: String,
}

pub(crate) fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Runs the service for the config at `config_path` until `shutdown` completes. Once it
/// listens, `announce` gets a one-time sign-in link for the web wallet (for the operator's
/// terminal, not the log).
pub async fn serve(
    config_path: &Path,
    devnet: Arc<dyn LocalDevnet>,
    build: ezchain_host::build::BuildInfo,
    announce: impl FnOnce(&str),
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
    let guard = Guard::open(&data_dir.join("service.redb")).map_err(|e| {
        if Guard::held_elsewhere(&e) {
            ServiceError::InUse(data_dir.clone())
        } else {
            ServiceError::Io(e.to_string())
        }
    })?;
    let audit = audit::AuditLog::open(
        &config.log_dir(),
        &config.audit_head_file(),
        &config.audit_restored_marker(),
        config.security.audit_max_bytes,
    )
    .map_err(|e| ServiceError::Io(format!("{}: {e}", config.log_dir().display())))?;
    let worker = worker::start(config.clone()).map_err(|e| ServiceError::Io(e.to_string()))?;
    let addr = SocketAddr::new(host, config.app.api_port);
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| ServiceError::Bind {
            addr: addr.to_string(),
            source,
        })?;
    let local = listener.local_addr().map_err(|e| ServiceError::Io(e.to_string()))?;
    let config_rate = config.security.rate_limit_per_minute;
    let page_host = if local.ip().is_unspecified() {
        "127.0.0.1".to_string()
    } else {
        match local.ip() {
            IpAddr::V6(ip) => format!("[{ip}]"),
            ip => ip.to_string(),
        }
    };
    let state = Arc::new(ServiceState {
        config,
        config_path: config_path.to_path_buf(),
        token_file,
        guard,
        audit,
        metrics: metrics::ServiceMetrics::with_build(&build),
        worker: worker.clone(),
        in_flight: Mutex::new(HashSet::new()),
        rate: RateLimiter::new(config_rate),
        devnet,
        build,
        started: Instant::now(),
        sessions: session::Sessions::default(),
        stats: stats::Stats::default(),
        port: local.port(),
        page_url: format!("http://{page_host}:{}", local.port()),
    });
    tracing::info!(addr = %local, config = %state.config_path.display(), page = %state.page_url, "wallet service listening");
    if let Ok(login) = api::ui::login_code(&state) {
        announce(&login.url);
    }
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
pub(crate) async fn maintain(state: Arc<ServiceState>, worker: WalletWorker) {
    let mut tick = tokio::time::interval(stats::SAMPLE_EVERY);
    loop {
        tick.tick().await;
        state.stats.sample(now_ms());
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
