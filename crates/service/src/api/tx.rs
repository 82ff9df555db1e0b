//! `/tx/*`: send (idempotent by `client_tx_id`), receive, faucet, history, pending, receipts.

use crate::answer::*;
use crate::guard::{IdempotencyRecord, StoredResponse};
use crate::{ServiceState, guard, metrics};
use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use ezchain_protocol::hash::keccak256;
use ezchain_wallet::WalletError;
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;

pub(crate) async fn tx_history(State(state): State<Arc<ServiceState>>) -> Answer {
    let items = with_wallet(&state, None, |wallet| wallet.history()).await?;
    Ok(ok(Items {
        items: items.iter().map(|r| r.to_json()).collect(),
    }))
}

pub(crate) async fn tx_pending(State(state): State<Arc<ServiceState>>) -> Answer {
    let items = with_wallet(&state, None, |wallet| wallet.pending()).await?;
    Ok(ok(Items {
        items: items.iter().map(|r| r.to_json()).collect(),
    }))
}

pub(crate) async fn tx_receipts(State(state): State<Arc<ServiceState>>) -> Answer {
    let items = with_wallet(&state, None, |wallet| {
        Ok(wallet
            .receipts()
            .iter()
            .map(|r| ezchain_wallet::history::receipt_json(r))
            .collect::<Vec<_>>())
    })
    .await?;
    Ok(ok(Items { items }))
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct FaucetRequest {
    amount: u64,
    password: Option<String>,
}

pub(crate) async fn tx_faucet(
    State(state): State<Arc<ServiceState>>,
    request: Result<Bytes, BytesRejection>,
) -> Answer {
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

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ReceiveRequest {
    password: Option<String>,
}

pub(crate) async fn tx_receive(
    State(state): State<Arc<ServiceState>>,
    request: Result<Bytes, BytesRejection>,
) -> Answer {
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

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct SendRequest {
    /// EIP-55 checksummed (or all-lower-case) 20-byte address.
    #[schemars(regex(pattern = r"^0x[0-9a-fA-F]{40}$"))]
    recipient: String,
    amount: u64,
    password: Option<String>,
    client_tx_id: Option<String>,
    wait_seconds: Option<u64>,
}

/// Removes a `client_tx_id` from the in-flight set when the request ends, however it ends.
pub(crate) struct InFlight<'a>(&'a ServiceState, String);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0
            .in_flight
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&self.1);
    }
}

pub(crate) fn replay(stored: &StoredResponse, code: &'static str) -> Response {
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
pub(crate) fn final_refusal(record: &IdempotencyRecord) -> Option<(&StoredResponse, &'static str)> {
    let stored = record.response.as_ref()?;
    let code = stored.body["error"]["code"].as_str()?;
    FINAL_SEND_REFUSALS.iter().find(|c| **c == code).map(|c| (stored, *c))
}

pub(crate) async fn tx_send(State(state): State<Arc<ServiceState>>, request: Result<Bytes, BytesRejection>) -> Answer {
    let request: SendRequest = body(request)?;
    let recipient = parse_recipient(&request.recipient)?;
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
        let delay = result
            .as_ref()
            .ok()
            .and_then(|outcome| outcome.record.confirmation_delay_ms());
        state.stats.record_send(crate::now_ms(), &result_label, delay);
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
