//! The two layers every request passes: `observe` (request id, audit line, metrics) outside,
//! `protect` (Host guard, rate limit, token, nonce) inside.

use crate::answer::*;
use crate::guard::NonceOutcome;
use crate::routes::{ROUTES, is_public};
use crate::{ServiceState, audit, metrics, now_ms, session, web};
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use ezchain_host::secret;
use ezchain_protocol::hash::keccak256;
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// Per-client token bucket: `per_minute` requests a minute, bursts up to the same number.
pub struct RateLimiter {
    per_minute: f64,
    buckets: Mutex<HashMap<IpAddr, (f64, Instant)>>,
}

/// Clients remembered at most; idle full buckets are forgotten first.
pub(crate) const MAX_RATE_CLIENTS: usize = 10_000;

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

/// Outermost layer: request id, audit line, metrics.
pub(crate) async fn observe(State(state): State<Arc<ServiceState>>, request: Request, next: Next) -> Response {
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
    let route = if ROUTES.iter().any(|route| route.path == path) {
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
        state.stats.record_error(code);
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
    web::add_security_headers(response.headers_mut());
    response
}

pub(crate) fn is_loopback_host(host: &str) -> bool {
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
pub(crate) async fn protect(State(state): State<Arc<ServiceState>>, request: Request, next: Next) -> Response {
    match check(&state, &request) {
        Ok(()) => next.run(request).await,
        Err(refusal) => refusal.into_response(),
    }
}

pub(crate) fn check(state: &ServiceState, request: &Request) -> Result<(), ApiError> {
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
    if is_public(path) {
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
    if !ROUTES
        .iter()
        .any(|route| route.path == path && route.method.as_str() == method)
    {
        return Ok(());
    }
    let token = api_token(state)?;
    let given = headers.get("x-ez-token").map(HeaderValue::as_bytes).unwrap_or(b"");
    let session = session::cookie(headers, &session::cookie_name(state.port));
    let authorized = if !given.is_empty() {
        secret::token_matches(given, token.as_bytes())
    } else if let Some(id) = session {
        // A browser's session: only for the page this service served, never a request another
        // site's page makes the browser send.
        if !session::same_origin(headers) {
            return Err(error(
                StatusCode::FORBIDDEN,
                "cross_origin",
                "a request from another site's page; use the web wallet this service serves",
            ));
        }
        state.sessions.check(id, keccak256(token.as_bytes()), Instant::now())
    } else {
        false
    };
    if !authorized {
        return Err(error(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "missing or wrong X-EZ-Token (see `ezchain auth show-token`), or no web session (sign in again)",
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

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
}
