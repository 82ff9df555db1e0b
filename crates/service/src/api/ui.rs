//! `/ui/*` (sign-in for the web wallet) and the calls only a page needs: the address as a QR
//! code and a recipient check as the user types.

use crate::ServiceState;
use crate::answer::*;
use crate::session;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::header::{CONTENT_TYPE, SET_COOKIE};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use ezchain_host::secret;
use ezchain_protocol::hash::keccak256;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::Instant;

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct SignInRequest {
    /// A login code from `ezchain serve`'s output or `ezchain auth login-link`.
    code: Option<String>,
    /// Or the API token itself (`ezchain auth show-token`).
    token: Option<String>,
}

/// `/ui/session`.
#[derive(Serialize, JsonSchema)]
pub(crate) struct SessionState {
    signed_in: bool,
    /// A session unused this long is closed.
    idle_timeout_seconds: u64,
}

fn session_state(signed_in: bool) -> SessionState {
    SessionState {
        signed_in,
        idle_timeout_seconds: session::SESSION_IDLE.as_secs(),
    }
}

fn with_cookie(mut response: Response, cookie: &str) -> Response {
    if let Ok(value) = HeaderValue::from_str(cookie) {
        response.headers_mut().insert(SET_COOKIE, value);
    }
    response
}

/// `GET /ui/session`: whether this browser is signed in (never an error, so the page can ask).
pub(crate) async fn ui_session(State(state): State<Arc<ServiceState>>, headers: HeaderMap) -> Answer {
    let token = api_token(&state)?;
    let signed_in = session::cookie(&headers, &session::cookie_name(state.port))
        .is_some_and(|id| state.sessions.check(id, keccak256(token.as_bytes()), Instant::now()));
    Ok(ok(session_state(signed_in)))
}

/// `POST /ui/session`: a login code or the token → a session cookie.
pub(crate) async fn ui_sign_in(
    State(state): State<Arc<ServiceState>>,
    headers: HeaderMap,
    request: Result<Bytes, BytesRejection>,
) -> Answer {
    let request: SignInRequest = body(request)?;
    if !session::same_origin(&headers) {
        return Err(error(
            StatusCode::FORBIDDEN,
            "cross_origin",
            "a sign-in from another site's page; open the web wallet this service serves",
        ));
    }
    let token = api_token(&state)?;
    let now = Instant::now();
    let accepted = match (&request.code, &request.token) {
        (Some(code), None) => state.sessions.redeem_code(code.trim(), now),
        (None, Some(given)) => secret::token_matches(given.trim().as_bytes(), token.as_bytes()),
        _ => {
            return Err(error(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "give exactly one of \"code\" and \"token\"",
            ));
        }
    };
    if !accepted {
        return Err(error(
            StatusCode::UNAUTHORIZED,
            "login_failed",
            "that login code is wrong, used or expired (run `ezchain auth login-link` for a new one), or the token is wrong (`ezchain auth show-token`)",
        ));
    }
    let id = state
        .sessions
        .open(keccak256(token.as_bytes()), now)
        .ok_or_else(|| error(StatusCode::INTERNAL_SERVER_ERROR, "internal_error", "no randomness"))?;
    Ok(with_cookie(
        ok(session_state(true)),
        &session::session_cookie(state.port, &id),
    ))
}

/// `POST /ui/logout`: closes this browser's session.
pub(crate) async fn ui_logout(
    State(state): State<Arc<ServiceState>>,
    headers: HeaderMap,
    request: Result<Bytes, BytesRejection>,
) -> Answer {
    let NoArguments {} = body(request)?;
    if let Some(id) = session::cookie(&headers, &session::cookie_name(state.port)) {
        state.sessions.close(id);
    }
    Ok(with_cookie(
        ok(session_state(false)),
        &session::cleared_cookie(state.port),
    ))
}

/// `/ui/login-code`.
#[derive(Serialize, JsonSchema)]
pub(crate) struct LoginCode {
    code: String,
    /// The page's address with the code in its fragment (never sent to the server, so never
    /// in a request line or the audit log).
    pub(crate) url: String,
    expires_in_seconds: u64,
}

/// `POST /ui/login-code`: a new one-time login code (for `ezchain auth login-link`).
pub(crate) async fn ui_login_code(
    State(state): State<Arc<ServiceState>>,
    request: Result<Bytes, BytesRejection>,
) -> Answer {
    let NoArguments {} = body(request)?;
    Ok(ok(login_code(&state)?))
}

pub(crate) fn login_code(state: &ServiceState) -> Result<LoginCode, ApiError> {
    let code = state
        .sessions
        .new_code(Instant::now())
        .ok_or_else(|| error(StatusCode::INTERNAL_SERVER_ERROR, "internal_error", "no randomness"))?;
    Ok(LoginCode {
        url: format!("{}/#login={code}", state.page_url),
        code,
        expires_in_seconds: session::LOGIN_CODE_TTL.as_secs(),
    })
}

/// `GET /wallet/address.svg`: the wallet's address as a QR code.
pub(crate) async fn wallet_address_svg(State(state): State<Arc<ServiceState>>) -> Answer {
    let (_, address) = wallet_file_and_address(&state)?;
    let svg =
        qr_svg(&address.to_string()).map_err(|e| error(StatusCode::INTERNAL_SERVER_ERROR, "internal_error", e))?;
    Ok(([(CONTENT_TYPE, HeaderValue::from_static("image/svg+xml"))], svg).into_response())
}

/// `text` as a QR code in SVG, at least 200 px square, with its quiet zone.
fn qr_svg(text: &str) -> Result<String, qrcode::types::QrError> {
    Ok(qrcode::QrCode::new(text.as_bytes())?
        .render::<qrcode::render::svg::Color>()
        .min_dimensions(200, 200)
        .quiet_zone(true)
        .build())
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CheckRecipientRequest {
    recipient: String,
}

/// `/tx/check-recipient`.
#[derive(Serialize, JsonSchema)]
pub(crate) struct RecipientChecked {
    /// The address in its EIP-55 checksummed form.
    recipient: String,
    /// It is this wallet's own address (a payment to it is refused).
    is_self: bool,
}

/// `POST /tx/check-recipient`: whether `recipient` is a valid address (its EIP-55 checksum
/// included), answered as the user types.
pub(crate) async fn tx_check_recipient(
    State(state): State<Arc<ServiceState>>,
    request: Result<Bytes, BytesRejection>,
) -> Answer {
    let request: CheckRecipientRequest = body(request)?;
    let recipient = parse_recipient(&request.recipient)?;
    let own = wallet_file_and_address(&state).ok().map(|(_, address)| address);
    Ok(ok(RecipientChecked {
        recipient: recipient.to_string(),
        is_self: own == Some(recipient),
    }))
}

/// `/ui/stats`.
#[derive(Serialize, JsonSchema)]
pub(crate) struct StatsSeries {
    sample_every_seconds: u64,
    /// Each sample judges the sends answered in this many seconds before it.
    window_seconds: u64,
    samples: Vec<crate::stats::Sample>,
}

/// `GET /ui/stats`: the live charts' series, oldest first.
pub(crate) async fn ui_stats(State(state): State<Arc<ServiceState>>) -> Answer {
    Ok(ok(StatsSeries {
        sample_every_seconds: crate::stats::SAMPLE_EVERY.as_secs(),
        window_seconds: crate::stats::WINDOW.as_secs(),
        samples: state.stats.series(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_qr_code_is_a_small_svg() {
        let svg = qr_svg("0x52E66A0e6D9C4cC3Bd0b6e57b8D5F1a4c25c0918").expect("QR code");
        assert!(svg.contains("<svg") && svg.contains("<path"), "{svg}");
        assert!(svg.len() < 16 * 1024, "{} bytes", svg.len());
        eprintln!("address QR code: {} bytes", svg.len());
    }
}
