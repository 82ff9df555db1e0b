//! The one route table: it builds the router and `/openapi.json`, so they cannot drift.

use crate::answer::*;
use crate::answer::{AnyObject, HealthData, Items, Refusal};
use crate::api::{health::*, node::*, ops::*, tx::*, ui::*, wallet::*};
use crate::middleware::{observe, protect};
use crate::{ServiceState, now_ms, web};
use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::routing::{MethodRouter, get, post};
use axum::{Json, Router};
use schemars::generate::SchemaSettings;
use schemars::{JsonSchema, Schema, SchemaGenerator};
use serde_json::{Value, json};
use std::sync::Arc;

/// How a route is called.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    Get,
    Post,
}

impl Method {
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Post => "POST",
        }
    }
}

/// A schema generated from a Rust type (its `$ref` under `#/components/schemas/`).
type SchemaOf = fn(&mut SchemaGenerator) -> Schema;

fn schema<T: JsonSchema>(generator: &mut SchemaGenerator) -> Schema {
    generator.subschema_for::<T>()
}

/// One route: the router is built from `handler`, `/openapi.json` from the rest.
pub struct Route {
    pub method: Method,
    pub path: &'static str,
    /// Needs `X-EZ-Token` (every route but the probes and this document).
    pub needs_token: bool,
    pub summary: &'static str,
    /// The JSON body the handler parses (POST routes; an empty body is `{}`).
    request: Option<SchemaOf>,
    /// The type of `data` in the 200 answer (`None`: not a JSON envelope).
    data: Option<SchemaOf>,
    handler: fn() -> MethodRouter<Arc<ServiceState>>,
}

/// Every route of the service.
pub static ROUTES: &[Route] = &[
    Route {
        method: Method::Get,
        path: "/health",
        needs_token: false,
        summary: "Liveness",
        request: None,
        data: Some(schema::<HealthData>),
        handler: || get(health),
    },
    Route {
        method: Method::Get,
        path: "/status",
        needs_token: false,
        summary: "Version, git commit and build date of this service, and its uptime",
        request: None,
        data: Some(schema::<ServiceStatus>),
        handler: || get(service_status),
    },
    Route {
        method: Method::Get,
        path: "/readyz",
        needs_token: false,
        summary: "Ready when a configured node of this wallet's chain answers (503 `not_ready` with the reasons otherwise)",
        request: None,
        data: Some(schema::<Readiness>),
        handler: || get(readyz),
    },
    Route {
        method: Method::Get,
        path: "/metrics",
        needs_token: false,
        summary: "Prometheus metrics (text/plain)",
        request: None,
        data: None,
        handler: || get(metrics_text),
    },
    Route {
        method: Method::Get,
        path: "/openapi.json",
        needs_token: false,
        summary: "This document",
        request: None,
        data: None,
        handler: || get(openapi_json),
    },
    Route {
        method: Method::Get,
        path: "/ui/session",
        needs_token: false,
        summary: "Whether this browser has a web wallet session",
        request: None,
        data: Some(schema::<SessionState>),
        handler: || get(ui_session),
    },
    Route {
        method: Method::Post,
        path: "/ui/session",
        needs_token: false,
        summary: "Sign a browser in: a one-time login code (or the token) for a session cookie",
        request: Some(schema::<SignInRequest>),
        data: Some(schema::<SessionState>),
        handler: || post(ui_sign_in),
    },
    Route {
        method: Method::Get,
        path: "/wallet/show",
        needs_token: true,
        summary: "Address, name and creation time of the wallet",
        request: None,
        data: Some(schema::<WalletShown>),
        handler: || get(wallet_show),
    },
    Route {
        method: Method::Get,
        path: "/wallet/balance",
        needs_token: true,
        summary: "Balance; with the key (unlocked or X-EZ-Password) receives first",
        request: None,
        data: Some(schema::<AnyObject>),
        handler: || get(wallet_balance),
    },
    Route {
        method: Method::Get,
        path: "/wallet/address.svg",
        needs_token: true,
        summary: "The wallet's address as a QR code (SVG)",
        request: None,
        data: None,
        handler: || get(wallet_address_svg),
    },
    Route {
        method: Method::Get,
        path: "/wallet/checkpoints",
        needs_token: true,
        summary: "Exact-range checkpoints held",
        request: None,
        data: Some(schema::<Checkpoints>),
        handler: || get(wallet_checkpoints),
    },
    Route {
        method: Method::Get,
        path: "/tx/history",
        needs_token: true,
        summary: "Every send, accepted and rejected payment",
        request: None,
        data: Some(schema::<Items>),
        handler: || get(tx_history),
    },
    Route {
        method: Method::Get,
        path: "/tx/pending",
        needs_token: true,
        summary: "Sends not yet delivered",
        request: None,
        data: Some(schema::<Items>),
        handler: || get(tx_pending),
    },
    Route {
        method: Method::Get,
        path: "/tx/receipts",
        needs_token: true,
        summary: "Receipts of this wallet's finalized bundles",
        request: None,
        data: Some(schema::<Items>),
        handler: || get(tx_receipts),
    },
    Route {
        method: Method::Get,
        path: "/ui/stats",
        needs_token: true,
        summary: "The live charts: send success ratio, confirmation delay p50/p95, error codes, every 10 s",
        request: None,
        data: Some(schema::<StatsSeries>),
        handler: || get(ui_stats),
    },
    Route {
        method: Method::Get,
        path: "/node/status",
        needs_token: true,
        summary: "The local testnet's nodes and the configured nodes' reachability",
        request: None,
        data: Some(schema::<NodeStatus>),
        handler: || get(node_status),
    },
    Route {
        method: Method::Get,
        path: "/network/info",
        needs_token: true,
        summary: "Network name, configured nodes, genesis",
        request: None,
        data: Some(schema::<NetworkInfo>),
        handler: || get(network_info),
    },
    Route {
        method: Method::Post,
        path: "/wallet/create",
        needs_token: true,
        summary: "Create a wallet → address, mnemonic (shown once)",
        request: Some(schema::<CreateRequest>),
        data: Some(schema::<WalletCreated>),
        handler: || post(wallet_create),
    },
    Route {
        method: Method::Post,
        path: "/wallet/import",
        needs_token: true,
        summary: "Restore from a mnemonic or a keystore",
        request: Some(schema::<ImportRequest>),
        data: Some(schema::<WalletImported>),
        handler: || post(wallet_import),
    },
    Route {
        method: Method::Post,
        path: "/wallet/unlock",
        needs_token: true,
        summary: "Keep the key in memory for ttl_seconds",
        request: Some(schema::<UnlockRequest>),
        data: Some(schema::<LockState>),
        handler: || post(wallet_unlock),
    },
    Route {
        method: Method::Post,
        path: "/wallet/lock",
        needs_token: true,
        summary: "Forget the key",
        request: Some(schema::<NoArguments>),
        data: Some(schema::<LockState>),
        handler: || post(wallet_lock),
    },
    Route {
        method: Method::Post,
        path: "/tx/faucet",
        needs_token: true,
        summary: "Ask the testnet faucet",
        request: Some(schema::<FaucetRequest>),
        data: Some(schema::<AnyObject>),
        handler: || post(tx_faucet),
    },
    Route {
        method: Method::Post,
        path: "/tx/send",
        needs_token: true,
        summary: "Pay; idempotent by client_tx_id",
        request: Some(schema::<SendRequest>),
        data: Some(schema::<AnyObject>),
        handler: || post(tx_send),
    },
    Route {
        method: Method::Post,
        path: "/tx/check-recipient",
        needs_token: true,
        summary: "Whether an address is valid (checksum included), before paying it",
        request: Some(schema::<CheckRecipientRequest>),
        data: Some(schema::<RecipientChecked>),
        handler: || post(tx_check_recipient),
    },
    Route {
        method: Method::Post,
        path: "/tx/receive",
        needs_token: true,
        summary: "Fetch, verify and store incoming payments",
        request: Some(schema::<ReceiveRequest>),
        data: Some(schema::<AnyObject>),
        handler: || post(tx_receive),
    },
    Route {
        method: Method::Post,
        path: "/node/start",
        needs_token: true,
        summary: "Start the local testnet",
        request: Some(schema::<NodeStartRequest>),
        data: Some(schema::<NodeStarted>),
        handler: || post(node_start),
    },
    Route {
        method: Method::Post,
        path: "/node/stop",
        needs_token: true,
        summary: "Stop the local testnet",
        request: Some(schema::<NoArguments>),
        data: Some(schema::<NodeStopped>),
        handler: || post(node_stop),
    },
    Route {
        method: Method::Post,
        path: "/ui/logout",
        needs_token: true,
        summary: "Sign this browser out",
        request: Some(schema::<NoArguments>),
        data: Some(schema::<SessionState>),
        handler: || post(ui_logout),
    },
    Route {
        method: Method::Post,
        path: "/ui/login-code",
        needs_token: true,
        summary: "A new one-time login code and link for the web wallet",
        request: Some(schema::<NoArguments>),
        data: Some(schema::<LoginCode>),
        handler: || post(ui_login_code),
    },
    Route {
        method: Method::Post,
        path: "/ops/export",
        needs_token: true,
        summary: "Online copy of a database for `ezchain ops backup`",
        request: Some(schema::<ExportRequest>),
        data: Some(schema::<Exported>),
        handler: || post(ops_export),
    },
];

/// Routes that need no token.
pub(crate) fn is_public(path: &str) -> bool {
    ROUTES.iter().any(|route| route.path == path && !route.needs_token)
}

async fn health() -> Answer {
    Ok(ok(HealthData {
        status: "ok".into(),
        time_ms: now_ms(),
    }))
}

/// `/status`: what this service binary is and how long it has run.
#[derive(serde::Serialize, JsonSchema)]
struct ServiceStatus {
    version: String,
    /// The git commit it was built from (`unknown` outside a checkout).
    commit: String,
    /// That commit's date.
    build_date: String,
    uptime_seconds: u64,
}

async fn service_status(State(state): State<Arc<ServiceState>>) -> Answer {
    Ok(ok(ServiceStatus {
        version: state.build.version.clone(),
        commit: state.build.commit.clone(),
        build_date: state.build.date.clone(),
        uptime_seconds: state.started.elapsed().as_secs(),
    }))
}

async fn openapi_json() -> Json<Value> {
    Json(openapi())
}

/// `/openapi.json`: OpenAPI 3.1 (its schemas are JSON Schema 2020-12, as schemars writes them).
pub fn openapi() -> Value {
    let mut generator = SchemaSettings::draft2020_12()
        .with(|settings| {
            settings.definitions_path = "/components/schemas".into();
            settings.meta_schema = None;
        })
        .into_generator();
    let refusal = schema::<Refusal>(&mut generator);
    let mut paths = serde_json::Map::new();
    for route in ROUTES {
        let refused = json!({ "description": "Refused: `{\"ok\": false, \"error\": {\"code\", \"message\"}}`; the codes are in docs/SERVICE.md",
            "content": { "application/json": { "schema": refusal } } });
        let answered = match route.data {
            Some(data) => {
                let data = data(&mut generator);
                json!({ "description": "`{\"ok\": true, \"data\": …}`", "content": { "application/json": { "schema": {
                    "type": "object", "required": ["ok", "data"],
                    "properties": { "ok": { "const": true }, "data": data } } } } })
            }
            None if route.path == "/metrics" => {
                json!({ "description": "Prometheus text", "content": { "text/plain": { "schema": { "type": "string" } } } })
            }
            None if route.path.ends_with(".svg") => {
                json!({ "description": "An SVG image", "content": { "image/svg+xml": { "schema": { "type": "string" } } } })
            }
            None => {
                json!({ "description": "This document", "content": { "application/json": { "schema": { "type": "object" } } } })
            }
        };
        let mut operation = json!({
            "summary": route.summary,
            "responses": { "200": answered, "default": refused },
        });
        if route.needs_token {
            operation["security"] = json!([{ "token": [] }]);
        }
        if route.method == Method::Post {
            operation["parameters"] = json!([{ "name": "X-EZ-Nonce", "in": "header", "required": true,
                "description": "A new value for every state-changing request",
                "schema": { "type": "string", "pattern": "^[A-Za-z0-9_-]{8,128}$" } }]);
        }
        if let Some(request) = route.request {
            operation["requestBody"] = json!({ "required": false,
                "content": { "application/json": { "schema": request(&mut generator) } } });
        }
        let entry = paths.entry(route.path.to_string()).or_insert_with(|| json!({}));
        entry[route.method.as_str().to_lowercase()] = operation;
    }
    let schemas = generator.take_definitions(true);
    json!({
        "openapi": "3.1.0",
        "info": { "title": "EZchain local wallet service", "version": env!("CARGO_PKG_VERSION") },
        "components": {
            "securitySchemes": { "token": { "type": "apiKey", "in": "header", "name": "X-EZ-Token" } },
            "schemas": schemas,
        },
        "paths": paths,
    })
}

pub fn router(state: Arc<ServiceState>) -> Router {
    let max_body = state.config.security.max_payload_bytes.max(1024);
    let routes = ROUTES.iter().fold(Router::new(), |router, route| {
        router.route(route.path, (route.handler)())
    });
    // The web wallet's page: public files, no data in them.
    let routes = web::ASSETS.iter().fold(routes, |router, (path, _, _)| {
        router.route(path, get(move || async move { web::asset(path) }))
    });
    routes
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn openapi_lists_every_route() {
        let doc = openapi();
        for route in ROUTES {
            let operation = &doc["paths"][route.path][route.method.as_str().to_lowercase()];
            assert!(operation.is_object(), "{:?} {}", route.method, route.path);
            if route.method == Method::Post {
                assert!(
                    operation["requestBody"]["content"]["application/json"]["schema"].is_object(),
                    "{} declares its body",
                    route.path
                );
            }
            assert!(operation["responses"]["200"]["content"].is_object(), "{}", route.path);
        }
        // Every reference points at a declared schema.
        let text = doc.to_string();
        for reference in text.split("\"$ref\":\"#/components/schemas/").skip(1) {
            let name = reference.split('"').next().unwrap_or("");
            assert!(doc["components"]["schemas"][name].is_object(), "{name} is declared");
        }
        assert_eq!(
            doc["components"]["schemas"]["SendRequest"]["required"],
            json!(["recipient", "amount"]),
            "generated from the handler's type"
        );
    }
}
