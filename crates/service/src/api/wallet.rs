//! `/wallet/*`: create, import, unlock, lock, show, balance, checkpoints.

use crate::ServiceState;
use crate::answer::*;
use crate::worker::Slot;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, StatusCode};
use ezchain_wallet::wallet_file;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;

pub(crate) async fn wallet_show(State(state): State<Arc<ServiceState>>) -> Answer {
    let (file, address) = wallet_file_and_address(&state)?;
    let unlocked_for = state.worker.run(|slot: &mut Slot| slot.unlocked_for()).await.flatten();
    Ok(ok(WalletShown {
        address: address.to_string(),
        name: file.name,
        created_at: file.created_at,
        unlocked_seconds_left: unlocked_for.map(|left| left.as_secs().max(1)),
    }))
}

/// `/wallet/show`.
#[derive(Serialize, JsonSchema)]
pub(crate) struct WalletShown {
    /// EIP-55 checksummed.
    address: String,
    name: Option<String>,
    created_at: Option<String>,
    /// Seconds until the unlocked key is forgotten (`null`: locked).
    unlocked_seconds_left: Option<u64>,
}

/// `/wallet/create`.
#[derive(Serialize, JsonSchema)]
pub(crate) struct WalletCreated {
    address: String,
    /// The recovery words, shown this once.
    mnemonic: String,
}

/// `/wallet/import`.
#[derive(Serialize, JsonSchema)]
pub(crate) struct WalletImported {
    address: String,
}

/// `/wallet/unlock` and `/wallet/lock`.
#[derive(Serialize, JsonSchema)]
pub(crate) struct LockState {
    unlocked: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    ttl_seconds: Option<u64>,
}

/// `/wallet/checkpoints`.
#[derive(Serialize, JsonSchema)]
pub(crate) struct Checkpoints {
    checkpoints: Vec<Value>,
}

pub(crate) async fn wallet_balance(State(state): State<Arc<ServiceState>>, headers: HeaderMap) -> Answer {
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

pub(crate) async fn wallet_checkpoints(State(state): State<Arc<ServiceState>>) -> Answer {
    let checkpoints = with_wallet(&state, None, |wallet| {
        Ok(wallet
            .checkpoints()
            .iter()
            .map(ezchain_wallet::history::checkpoint_json)
            .collect::<Vec<_>>())
    })
    .await?;
    Ok(ok(Checkpoints { checkpoints }))
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreateRequest {
    #[schemars(length(min = 8))]
    password: String,
    #[serde(default = "default_name")]
    name: String,
    #[serde(default)]
    force: bool,
}

pub(crate) fn default_name() -> String {
    "default".into()
}

pub(crate) async fn wallet_create(
    State(state): State<Arc<ServiceState>>,
    request: Result<Bytes, BytesRejection>,
) -> Answer {
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
    Ok(ok(WalletCreated {
        address: address.to_string(),
        mnemonic: mnemonic.to_string(),
    }))
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ImportRequest {
    mnemonic: Option<String>,
    /// The text of a Web3 v3 keystore file.
    keystore: Option<Value>,
    password: String,
    #[serde(default = "default_name")]
    name: String,
    #[serde(default)]
    force: bool,
}

pub(crate) async fn wallet_import(
    State(state): State<Arc<ServiceState>>,
    request: Result<Bytes, BytesRejection>,
) -> Answer {
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
    Ok(ok(WalletImported {
        address: address.to_string(),
    }))
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct UnlockRequest {
    password: String,
    ttl_seconds: Option<u64>,
}

pub(crate) async fn wallet_unlock(
    State(state): State<Arc<ServiceState>>,
    request: Result<Bytes, BytesRejection>,
) -> Answer {
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
    Ok(ok(LockState {
        unlocked: true,
        ttl_seconds: Some(ttl.as_secs()),
    }))
}

pub(crate) async fn wallet_lock(
    State(state): State<Arc<ServiceState>>,
    request: Result<Bytes, BytesRejection>,
) -> Answer {
    let NoArguments {} = body(request)?;
    state.worker.run(|slot: &mut Slot| slot.lock()).await;
    Ok(ok(LockState {
        unlocked: false,
        ttl_seconds: None,
    }))
}
