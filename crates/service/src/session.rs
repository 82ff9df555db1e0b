//! Browser sessions of the web wallet (docs/SERVICE.md, "The web wallet").
//!
//! A browser signs in with a one-time login code (printed by `ezchain serve`, or made by
//! `ezchain auth login-link`) or with the API token pasted once; either is exchanged for a
//! session cookie (`HttpOnly`, `SameSite=Strict`), so the token never sits in a URL, in the
//! page or in its storage, and a script the page did not load cannot read the cookie. A
//! session is bound to the token it was opened under: `ezchain auth rotate-token` signs every
//! browser out. Sessions live in memory only, so a restart signs browsers out, never in.

use axum::http::HeaderMap;
use ezchain_protocol::hash::keccak256;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long a login code can be redeemed.
pub const LOGIN_CODE_TTL: Duration = Duration::from_secs(600);
/// A session unused this long is closed.
pub const SESSION_IDLE: Duration = Duration::from_secs(12 * 3600);
/// Codes and sessions remembered at most (the oldest are dropped first).
const MAX_CODES: usize = 64;
const MAX_SESSIONS: usize = 256;

struct Session {
    /// Hash of the API token the session was opened under.
    token_hash: [u8; 32],
    last_used: Instant,
}

#[derive(Default)]
struct Inner {
    /// Hash of a code → when it expires.
    codes: HashMap<[u8; 32], Instant>,
    /// Hash of a session id → its session.
    sessions: HashMap<[u8; 32], Session>,
}

/// The service's login codes and open sessions. Only hashes are kept, so a lookup compares
/// no secret byte by byte.
#[derive(Default)]
pub struct Sessions {
    inner: Mutex<Inner>,
}

fn random_secret() -> Option<String> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).ok()?;
    Some(hex::encode(bytes))
}

impl Sessions {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A new single-use login code, valid for [`LOGIN_CODE_TTL`] from `now`.
    pub fn new_code(&self, now: Instant) -> Option<String> {
        let code = random_secret()?;
        let mut inner = self.lock();
        inner.codes.retain(|_, expiry| *expiry > now);
        if inner.codes.len() >= MAX_CODES
            && let Some(oldest) = inner.codes.iter().min_by_key(|(_, expiry)| **expiry).map(|(k, _)| *k)
        {
            inner.codes.remove(&oldest);
        }
        inner.codes.insert(keccak256(code.as_bytes()), now + LOGIN_CODE_TTL);
        Some(code)
    }

    /// Uses up `code`; true if it was issued, unused and unexpired.
    pub fn redeem_code(&self, code: &str, now: Instant) -> bool {
        let mut inner = self.lock();
        matches!(inner.codes.remove(&keccak256(code.as_bytes())), Some(expiry) if expiry > now)
    }

    /// Opens a session under the token whose hash is `token_hash`; returns its id.
    pub fn open(&self, token_hash: [u8; 32], now: Instant) -> Option<String> {
        let id = random_secret()?;
        let mut inner = self.lock();
        inner
            .sessions
            .retain(|_, session| now.saturating_duration_since(session.last_used) < SESSION_IDLE);
        if inner.sessions.len() >= MAX_SESSIONS
            && let Some(oldest) = inner
                .sessions
                .iter()
                .min_by_key(|(_, session)| session.last_used)
                .map(|(k, _)| *k)
        {
            inner.sessions.remove(&oldest);
        }
        inner.sessions.insert(
            keccak256(id.as_bytes()),
            Session {
                token_hash,
                last_used: now,
            },
        );
        Some(id)
    }

    /// True if `id` is an open session under the current token (it is then kept alive).
    pub fn check(&self, id: &str, token_hash: [u8; 32], now: Instant) -> bool {
        let key = keccak256(id.as_bytes());
        let mut inner = self.lock();
        let alive = match inner.sessions.get_mut(&key) {
            Some(session)
                if session.token_hash == token_hash
                    && now.saturating_duration_since(session.last_used) < SESSION_IDLE =>
            {
                session.last_used = now;
                true
            }
            _ => false,
        };
        if !alive {
            inner.sessions.remove(&key);
        }
        alive
    }

    pub fn close(&self, id: &str) {
        self.lock().sessions.remove(&keccak256(id.as_bytes()));
    }
}

/// The session cookie's name: one per port, since browsers keep cookies per host, not per
/// port, and two services on one machine must not sign each other's browsers out.
pub fn cookie_name(port: u16) -> String {
    format!("ez_session_{port}")
}

/// The value of cookie `name` in the request's `Cookie` headers.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all("cookie")
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value)
}

/// `Set-Cookie` for a session: unreadable by scripts, never sent on a cross-site request.
pub fn session_cookie(port: u16, id: &str) -> String {
    format!(
        "{}={id}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}",
        cookie_name(port),
        SESSION_IDLE.as_secs()
    )
}

/// `Set-Cookie` that removes the session cookie.
pub fn cleared_cookie(port: u16) -> String {
    format!("{}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0", cookie_name(port))
}

/// False when the browser says the request comes from another site's page: `Sec-Fetch-Site`
/// other than `same-origin` or `none`, or an `Origin` whose host is not the `Host` asked.
/// (SameSite=Strict already keeps the cookie off such requests; this is the second lock.)
pub fn same_origin(headers: &HeaderMap) -> bool {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    if let Some(site) = header("sec-fetch-site")
        && site != "same-origin"
        && site != "none"
    {
        return false;
    }
    match header("origin") {
        None => true,
        Some(origin) => {
            let host = header("host").unwrap_or("");
            origin
                .strip_prefix("http://")
                .or_else(|| origin.strip_prefix("https://"))
                .is_some_and(|origin_host| !host.is_empty() && origin_host.eq_ignore_ascii_case(host))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn a_login_code_works_once_and_only_before_it_expires() {
        let sessions = Sessions::default();
        let start = Instant::now();
        let code = sessions.new_code(start).expect("code");
        assert!(!sessions.redeem_code("not-the-code", start));
        assert!(sessions.redeem_code(&code, start));
        assert!(!sessions.redeem_code(&code, start), "a code is single-use");
        let late = sessions.new_code(start).expect("code");
        assert!(!sessions.redeem_code(&late, start + LOGIN_CODE_TTL));
    }

    #[test]
    fn a_session_lives_while_used_under_its_token() {
        let sessions = Sessions::default();
        let start = Instant::now();
        let (token, other) = (keccak256(b"token"), keccak256(b"rotated"));
        let id = sessions.open(token, start).expect("session");
        assert!(sessions.check(&id, token, start + SESSION_IDLE / 2));
        assert!(
            sessions.check(&id, token, start + SESSION_IDLE),
            "use keeps a session alive"
        );
        assert!(!sessions.check("forged", token, start));
        assert!(
            !sessions.check(&id, other, start),
            "a rotated token signs the session out"
        );
        assert!(!sessions.check(&id, token, start), "and it stays closed");
        let idle = sessions.open(token, start).expect("session");
        assert!(!sessions.check(&idle, token, start + SESSION_IDLE));
        let closed = sessions.open(token, start).expect("session");
        sessions.close(&closed);
        assert!(!sessions.check(&closed, token, start));
    }

    #[test]
    fn cookies_are_found_by_name_and_cross_site_requests_are_told_apart() {
        let mut headers = HeaderMap::new();
        headers.append("cookie", HeaderValue::from_static("a=1; ez_session_8787=abc"));
        headers.append("cookie", HeaderValue::from_static("ez_session_8788=def"));
        assert_eq!(cookie(&headers, &cookie_name(8787)), Some("abc"));
        assert_eq!(cookie(&headers, &cookie_name(8788)), Some("def"));
        assert_eq!(cookie(&headers, "ez_session"), None);

        let mut request = HeaderMap::new();
        request.insert("host", HeaderValue::from_static("127.0.0.1:8787"));
        assert!(same_origin(&request), "no Origin: not a browser's cross-site request");
        request.insert("origin", HeaderValue::from_static("http://127.0.0.1:8787"));
        request.insert("sec-fetch-site", HeaderValue::from_static("same-origin"));
        assert!(same_origin(&request));
        request.insert("origin", HeaderValue::from_static("http://evil.example"));
        assert!(!same_origin(&request));
        request.insert("origin", HeaderValue::from_static("http://127.0.0.1:8787"));
        request.insert("sec-fetch-site", HeaderValue::from_static("cross-site"));
        assert!(!same_origin(&request));
    }
}
