//! `/ops/export`: online copies of the service's databases for `ezchain ops backup`.

use crate::ServiceState;
use crate::answer::*;
use crate::worker::Slot;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::StatusCode;
use ezchain_host::export::ExportError;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ExportRequest {
    /// `service` (nonces and idempotency records) or `wallet` (the wallet's state).
    database: String,
    /// Absolute path of the new file; it must not exist.
    out_file: PathBuf,
}

/// Writes an online copy of one of the service's databases: `service.redb` is held open for the
/// service's whole life, and the wallet's is exported on the wallet thread between two jobs.
pub(crate) async fn ops_export(
    State(state): State<Arc<ServiceState>>,
    request: Result<Bytes, BytesRejection>,
) -> Answer {
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
                ezchain_wallet::store::export_wallet(&slot.config().data_dir(), &out_file, Duration::from_secs(5))
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
        Ok(bytes) => Ok(ok(Exported {
            database: request.database,
            bytes,
        })),
        Err(e @ ExportError::Exists(_)) => Err(error(StatusCode::CONFLICT, "already_exists", e)),
        Err(e) => Err(error(StatusCode::INTERNAL_SERVER_ERROR, "export_failed", e)),
    }
}

/// `/ops/export`.
#[derive(Serialize, JsonSchema)]
pub(crate) struct Exported {
    /// `service` or `wallet`.
    database: String,
    /// Size of the new file.
    bytes: u64,
}
