//! Answers: the JSON envelope, refusals with their stable codes (`ApiError`), request bodies,
//! and the mapping of wallet errors to codes and statuses.

use crate::ServiceState;
use crate::worker::{OpenError, Slot};
use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use ezchain_wallet::client::ClientError;
use ezchain_wallet::keystore::KeystoreError;
use ezchain_wallet::wallet_file::WalletFileError;
use ezchain_wallet::{Wallet, WalletError};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// A refused request: status, stable code, message.
#[derive(Debug)]
pub struct ApiError {
    pub(crate) status: StatusCode,
    pub(crate) code: &'static str,
    pub(crate) message: String,
}

pub(crate) fn error(status: StatusCode, code: &'static str, message: impl std::fmt::Display) -> ApiError {
    ApiError {
        status,
        code,
        message: message.to_string(),
    }
}

/// The error code of a response, for the audit log and metrics.
#[derive(Clone)]
pub(crate) struct ErrorCode(pub(crate) &'static str);

/// What the audit line records besides the request itself.
#[derive(Clone, Default)]
pub(crate) struct AuditTags {
    pub(crate) client_tx_id: Option<String>,
    pub(crate) tx_ref: Option<String>,
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
pub(crate) fn wallet_unavailable() -> ApiError {
    error(
        StatusCode::SERVICE_UNAVAILABLE,
        "wallet_unavailable",
        "the wallet thread stopped",
    )
}

/// A refusal as `/openapi.json` declares it.
#[derive(JsonSchema)]
#[allow(dead_code)] // only its schema is used; refusals are built by `ApiError`
pub(crate) struct Refusal {
    ok: False,
    error: RefusalError,
}

#[derive(JsonSchema)]
#[allow(dead_code)]
struct RefusalError {
    /// Stable code (docs/SERVICE.md lists them).
    code: String,
    /// What went wrong and what to do.
    message: String,
}

/// `false`, and nothing else.
struct False;

impl JsonSchema for False {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "False".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({ "const": false })
    }
}

/// Data whose fields are the wallet's own records (their shapes are in docs/SERVICE.md).
#[derive(Serialize, JsonSchema)]
#[serde(transparent)]
pub(crate) struct AnyObject(serde_json::Map<String, Value>);

/// A list of the wallet's records.
#[derive(Serialize, JsonSchema)]
pub(crate) struct Items {
    pub(crate) items: Vec<Value>,
}

/// `/health`.
#[derive(Serialize, JsonSchema)]
pub(crate) struct HealthData {
    pub(crate) status: String,
    pub(crate) time_ms: u64,
}

pub(crate) fn ok(data: impl Serialize) -> Response {
    (StatusCode::OK, Json(json!({ "ok": true, "data": data }))).into_response()
}

pub(crate) type Answer = Result<Response, ApiError>;

/// Reads a JSON object body whatever its Content-Type says (an empty body is `{}`).
pub(crate) fn body<T: for<'de> Deserialize<'de>>(body: Result<Bytes, BytesRejection>) -> Result<T, ApiError> {
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

pub(crate) fn open_error(error_value: OpenError) -> ApiError {
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

pub(crate) fn wallet_error(e: WalletError) -> ApiError {
    wallet_error_ref(&e)
}

pub(crate) fn wallet_error_ref(e: &WalletError) -> ApiError {
    if matches!(e, WalletError::Locked) {
        return error(
            StatusCode::BAD_REQUEST,
            "password_required",
            "this needs the wallet's key: give \"password\" (or X-EZ-Password) or POST /wallet/unlock first",
        );
    }
    // The code is the wallet's own (`WalletError::code`, the list the CLI answers with too);
    // only the HTTP status is chosen here.
    let status = match e {
        WalletError::Locked
        | WalletError::SelfTransfer
        | WalletError::InsufficientFunds { .. }
        | WalletError::AmountInvalid { .. } => StatusCode::BAD_REQUEST,
        WalletError::DuplicateTransaction { .. }
        | WalletError::BehindChain { .. }
        | WalletError::Ownership(ezchain_protocol::ownership::OwnershipError::PendingBundleExists) => {
            StatusCode::CONFLICT
        }
        WalletError::Node(ClientError::Unreachable { .. })
        | WalletError::Store(ezchain_wallet::store::StoreError::Busy) => StatusCode::SERVICE_UNAVAILABLE,
        // The faucet's refusal of this request (amount out of range, hourly limits) is the
        // caller's to change: the node's 4xx status passes through. A faucet that failed is a
        // gateway error.
        WalletError::Node(refused @ ClientError::Refused { status, .. })
            if refused.known_code().is_some_and(ezchain_rpc::ErrorCode::is_faucet) =>
        {
            StatusCode::from_u16(*status)
                .ok()
                .filter(StatusCode::is_client_error)
                .unwrap_or(StatusCode::BAD_GATEWAY)
        }
        WalletError::Node(_) | WalletError::WrongChain { .. } | WalletError::BadHeader { .. } => {
            StatusCode::BAD_GATEWAY
        }
        WalletError::SendFailed { .. } => StatusCode::UNPROCESSABLE_ENTITY,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    };
    error(status, e.code(), e)
}

/// Runs `job` on the wallet thread with the wallet opened (with the key when `password` is
/// given or the wallet is unlocked).
pub(crate) async fn with_wallet<T: Send + 'static>(
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

pub(crate) fn password_header(headers: &HeaderMap) -> Option<String> {
    headers
        .get("x-ez-password")
        .and_then(|v| v.to_str().ok())
        .map(String::from)
}

pub(crate) fn file_error(e: WalletFileError) -> ApiError {
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
        e @ WalletFileError::PasswordTooShort { .. } => error(StatusCode::BAD_REQUEST, "password_too_short", e),
        other => error(StatusCode::INTERNAL_SERVER_ERROR, "wallet_file_error", other),
    }
}

/// The body of a POST that takes no arguments: `{}` (or nothing); anything else is refused.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct NoArguments {}

/// A recipient address from a request: `/tx/send` and `/tx/check-recipient` refuse the same
/// addresses with the same answer.
pub(crate) fn parse_recipient(text: &str) -> Result<ezchain_protocol::Address, ApiError> {
    text.trim().parse().map_err(|e| {
        error(
            StatusCode::BAD_REQUEST,
            "invalid_recipient",
            format!(
                "{text}: {e}; an address is 0x + 40 hex digits, copied exactly (its upper/lower case is a checksum)"
            ),
        )
    })
}

/// The wallet's keystore file and its address (no password needed).
pub(crate) fn wallet_file_and_address(
    state: &ServiceState,
) -> Result<(ezchain_wallet::keystore::KeystoreFile, ezchain_protocol::Address), ApiError> {
    let file =
        ezchain_wallet::wallet_file::load(&state.config.data_dir()).map_err(|e| open_error(OpenError::File(e)))?;
    let address = file
        .address()
        .map_err(|e| open_error(OpenError::File(WalletFileError::Keystore(e))))?;
    Ok((file, address))
}

/// The current API token (read per request, so `ezchain auth rotate-token` takes effect at once).
pub(crate) fn api_token(state: &ServiceState) -> Result<String, ApiError> {
    ezchain_host::secret::read_token(&state.token_file)
        .map_err(|e| error(StatusCode::INTERNAL_SERVER_ERROR, "token_unavailable", e))
}
