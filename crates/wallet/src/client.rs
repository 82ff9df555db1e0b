//! The account node's client of the node RPC (blocking HTTP/JSON).
//!
//! A client knows several nodes; a request that cannot reach one (connection refused, timeout,
//! 5xx) is tried on the next, so one node down does not stop a wallet. A 4xx is the node's
//! answer and is returned as is.

use borsh::BorshDeserialize;
use ezchain_protocol::codec::{decode, encode};
use ezchain_protocol::finality::CommitCertificate;
use ezchain_protocol::mailbox::{MailboxAction, sign_mailbox_request};
use ezchain_protocol::{Address, BlockHeader, Hash32, Receipt, SigningKey, Submission, TransferPackage};
use serde::Deserialize;
use serde_json::{Value, json};
use std::time::Duration;
use thiserror::Error;

/// How long a faucet request may take (the faucet waits up to 60 s for finality).
const FAUCET_TIMEOUT: Duration = Duration::from_secs(90);
/// Largest object decoded from a node answer.
const MAX_OBJECT_BYTES: usize = 32 * 1024 * 1024;
/// Ids acknowledged in one request: within the node's limit (`MAX_ACK_IDS`, 1,000).
pub const ACK_IDS_PER_REQUEST: usize = 500;

#[derive(Debug, Error)]
pub enum ClientError {
    #[error("no node reachable ({tried}): {last}")]
    Unreachable { tried: String, last: String },
    /// The node refused the request: its stable code and message.
    #[error("node refused: {code}: {message}")]
    Refused { status: u16, code: String, message: String },
    #[error("node answered something unreadable: {0}")]
    BadAnswer(String),
}

impl ClientError {
    /// The node's error code, when it answered with one.
    pub fn code(&self) -> Option<&str> {
        match self {
            ClientError::Refused { code, .. } => Some(code),
            _ => None,
        }
    }
}

pub struct NodeClient {
    nodes: Vec<String>,
    http: reqwest::blocking::Client,
}

/// One finalized header with its commit certificate.
pub struct CertifiedHeader {
    pub header: BlockHeader,
    pub certificate: CommitCertificate,
}

/// A package waiting in the mailbox.
pub struct MailboxPackage {
    pub id: Hash32,
    /// The raw bytes: a package that does not decode is still acknowledged and recorded.
    pub bytes: Vec<u8>,
    /// The configured nodes (by position) that returned it: it is acknowledged on those only.
    pub held_by: Vec<usize>,
}

#[derive(Clone, Debug, Deserialize)]
pub struct NodeStatus {
    pub chain_id: u64,
    pub genesis_hash: Hash32,
    pub height: u64,
}

#[derive(Clone, Debug, Deserialize)]
pub struct SubmitAnswer {
    pub status: String,
    pub bundle_hash: Hash32,
    pub seq: u64,
}

#[derive(Clone, Debug, Deserialize)]
pub struct FaucetAnswer {
    pub amount: u64,
    pub height: u64,
    pub bundle_hash: String,
    pub packages: usize,
}

fn hex_object<T: BorshDeserialize>(value: &Value, field: &str) -> Result<T, ClientError> {
    let text = value
        .get(field)
        .and_then(Value::as_str)
        .ok_or_else(|| ClientError::BadAnswer(format!("missing `{field}`")))?;
    let bytes = hex::decode(text).map_err(|_| ClientError::BadAnswer(format!("`{field}` is not hex")))?;
    decode(&bytes, MAX_OBJECT_BYTES).map_err(|e| ClientError::BadAnswer(format!("`{field}`: {e}")))
}

fn field<T: for<'de> Deserialize<'de>>(value: Value) -> Result<T, ClientError> {
    serde_json::from_value(value).map_err(|e| ClientError::BadAnswer(e.to_string()))
}

impl NodeClient {
    /// `nodes` are `host:port` or `http://host:port` RPC endpoints, tried in order.
    pub fn new(nodes: &[String], timeout: Duration) -> Result<Self, ClientError> {
        let http = reqwest::blocking::Client::builder()
            .timeout(timeout)
            .connect_timeout(Duration::from_secs(3))
            .build()
            .map_err(|e| ClientError::BadAnswer(format!("HTTP client: {e}")))?;
        let nodes = nodes
            .iter()
            .map(|node| {
                let node = node.trim_end_matches('/');
                if node.starts_with("http://") || node.starts_with("https://") {
                    node.to_string()
                } else {
                    format!("http://{node}")
                }
            })
            .collect();
        Ok(NodeClient { nodes, http })
    }

    /// Sends one request to the first node that answers; returns `data` of an ok answer.
    fn call(&self, method: reqwest::Method, path: &str, body: Option<&Value>) -> Result<Value, ClientError> {
        self.call_with(method, path, body, None)
    }

    /// `call` with a timeout of its own (for requests the node answers only once a block is final).
    fn call_with(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
        timeout: Option<Duration>,
    ) -> Result<Value, ClientError> {
        let mut last = String::from("no nodes configured");
        for node in &self.nodes {
            let mut request = self.http.request(method.clone(), format!("{node}{path}"));
            if let Some(body) = body {
                request = request.json(body);
            }
            if let Some(timeout) = timeout {
                request = request.timeout(timeout);
            }
            let response = match request.send() {
                Ok(response) => response,
                Err(e) => {
                    last = format!("{node}: {e}");
                    continue;
                }
            };
            let status = response.status();
            let answer: Value = match response.json() {
                Ok(answer) => answer,
                Err(e) => {
                    last = format!("{node}: {status}: {e}");
                    continue;
                }
            };
            if answer.get("ok").and_then(Value::as_bool) == Some(true) {
                return Ok(answer.get("data").cloned().unwrap_or(Value::Null));
            }
            let error = answer.get("error").cloned().unwrap_or(Value::Null);
            let code = error
                .get("code")
                .and_then(Value::as_str)
                .unwrap_or("unknown")
                .to_string();
            let message = error.get("message").and_then(Value::as_str).unwrap_or("").to_string();
            if status.is_server_error() && code != "mempool_full" && !code.starts_with("faucet") {
                last = format!("{node}: {code}: {message}");
                continue;
            }
            return Err(ClientError::Refused {
                status: status.as_u16(),
                code,
                message,
            });
        }
        Err(ClientError::Unreachable {
            tried: self.nodes.join(", "),
            last,
        })
    }

    fn get(&self, path: &str) -> Result<Value, ClientError> {
        self.call(reqwest::Method::GET, path, None)
    }

    fn post(&self, path: &str, body: Value) -> Result<Value, ClientError> {
        self.call(reqwest::Method::POST, path, Some(&body))
    }

    pub fn status(&self) -> Result<NodeStatus, ClientError> {
        field(self.get("/status")?)
    }

    pub fn submit(&self, submission: &Submission) -> Result<SubmitAnswer, ClientError> {
        field(self.post("/v1/submit", json!({ "submission": hex::encode(encode(submission)) }))?)
    }

    /// The receipt of `owner`'s bundle `seq`, once finalized.
    pub fn receipt(&self, owner: &Address, seq: u64) -> Result<Option<Receipt>, ClientError> {
        match self.get(&format!("/v1/receipts/{owner}/{seq}")) {
            Ok(data) => Ok(Some(hex_object(&data, "receipt")?)),
            Err(ClientError::Refused { code, .. }) if code == "receipt_not_found" => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Finalized headers from `from` on (the node caps how many per call).
    pub fn headers(&self, from: u64) -> Result<Vec<CertifiedHeader>, ClientError> {
        let data = self.get(&format!("/v1/headers?from={from}"))?;
        let items = data
            .get("headers")
            .and_then(Value::as_array)
            .ok_or_else(|| ClientError::BadAnswer("missing `headers`".into()))?;
        items
            .iter()
            .map(|item| {
                Ok(CertifiedHeader {
                    header: hex_object(item, "header")?,
                    certificate: hex_object(item, "certificate")?,
                })
            })
            .collect()
    }

    pub fn mailbox_put(&self, package: &TransferPackage) -> Result<Hash32, ClientError> {
        let recipient = package.target_tx.recipient;
        let data = self.post(
            &format!("/v1/mailbox/{recipient}"),
            json!({ "package": hex::encode(encode(package)) }),
        )?;
        field(data.get("id").cloned().unwrap_or(Value::Null))
    }

    fn challenge(&self, owner: &Address) -> Result<Hash32, ClientError> {
        let data = self.post(&format!("/v1/mailbox/{owner}/challenge"), json!({}))?;
        field(data.get("challenge").cloned().unwrap_or(Value::Null))
    }

    /// The packages waiting for `key`'s address on every configured node (a payer leaves them
    /// on the first node it reaches), each fetched with a fresh signed challenge.
    pub fn mailbox_fetch(&self, key: &SigningKey, genesis_hash: &Hash32) -> Result<Vec<MailboxPackage>, ClientError> {
        let owner = key.address();
        let mut packages: Vec<MailboxPackage> = Vec::new();
        let mut answered = false;
        let mut last_error = None;
        for (index, node) in self.single_nodes().enumerate() {
            let result = node.challenge(&owner).and_then(|challenge| {
                let signature = sign_mailbox_request(key, genesis_hash, MailboxAction::Fetch, &challenge, &[]);
                node.post(
                    &format!("/v1/mailbox/{owner}/fetch"),
                    json!({ "challenge": challenge, "signature": hex::encode(signature.0) }),
                )
            });
            let data = match result {
                Ok(data) => data,
                Err(e) => {
                    last_error = Some(e);
                    continue;
                }
            };
            answered = true;
            let items = data
                .get("packages")
                .and_then(Value::as_array)
                .ok_or_else(|| ClientError::BadAnswer("missing `packages`".into()))?;
            for item in items {
                let id: Hash32 = field(item.get("id").cloned().unwrap_or(Value::Null))?;
                let text = item.get("package").and_then(Value::as_str).unwrap_or("");
                let bytes = hex::decode(text).map_err(|_| ClientError::BadAnswer("package is not hex".into()))?;
                match packages.iter_mut().find(|p| p.id == id) {
                    Some(known) => known.held_by.push(index),
                    None => packages.push(MailboxPackage {
                        id,
                        bytes,
                        held_by: vec![index],
                    }),
                }
            }
        }
        match (answered, last_error) {
            (false, Some(e)) => Err(e),
            _ => Ok(packages),
        }
    }

    /// Acknowledges `done` packages: on each node, only the ids that node returned, in
    /// requests of at most [`ACK_IDS_PER_REQUEST`] ids, so one node's backlog never makes
    /// another refuse the whole acknowledgement. Returns how many copies were removed; an error
    /// only when no request succeeded.
    pub fn mailbox_ack(
        &self,
        key: &SigningKey,
        genesis_hash: &Hash32,
        done: &[&MailboxPackage],
    ) -> Result<usize, ClientError> {
        let owner = key.address();
        let mut removed = 0;
        let mut acknowledged = false;
        let mut last_error = None;
        for (index, node) in self.single_nodes().enumerate() {
            let ids: Vec<Hash32> = done
                .iter()
                .filter(|package| package.held_by.contains(&index))
                .map(|package| package.id)
                .collect();
            for chunk in ids.chunks(ACK_IDS_PER_REQUEST) {
                let result = node.challenge(&owner).and_then(|challenge| {
                    let signature = sign_mailbox_request(key, genesis_hash, MailboxAction::Ack, &challenge, chunk);
                    node.post(
                        &format!("/v1/mailbox/{owner}/ack"),
                        json!({ "challenge": challenge, "signature": hex::encode(signature.0), "ids": chunk }),
                    )
                });
                match result {
                    Ok(data) => {
                        acknowledged = true;
                        removed += data.get("removed").and_then(Value::as_u64).unwrap_or(0) as usize;
                    }
                    Err(e) => last_error = Some(e),
                }
            }
        }
        match (acknowledged, last_error) {
            (false, Some(e)) => Err(e),
            _ => Ok(removed),
        }
    }

    /// The faucet answers once its payment is final and in the mailbox: allow it the time.
    pub fn faucet(&self, address: &Address, amount: u64) -> Result<FaucetAnswer, ClientError> {
        let body = json!({ "address": address, "amount": amount });
        field(self.call_with(reqwest::Method::POST, "/v1/faucet", Some(&body), Some(FAUCET_TIMEOUT))?)
    }

    fn single_nodes(&self) -> impl Iterator<Item = NodeClient> + '_ {
        self.nodes.iter().map(|node| NodeClient {
            nodes: vec![node.clone()],
            http: self.http.clone(),
        })
    }
}
