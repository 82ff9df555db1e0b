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
use ezchain_rpc::types::{
    AckAnswer, CertifiedHeaderItem, ChallengeAnswer, EVENT_HEADER, EVENT_LAGGED, EVENT_RECEIPT, FaucetGrant,
    FaucetRequest, FetchAnswer, GenesisAnswer, HeadersAnswer, MailboxPutAnswer, MailboxPutRequest, ReceiptAnswer,
    ReceiptEvent, SignedMailboxRequest, StatusAnswer, SubmitAnswer, SubmitRequest,
};
use ezchain_rpc::{ErrorCode, paths};
use serde::Deserialize;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;
use thiserror::Error;
use tracing::warn;

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

    /// The node's error code, when it answered with one this client knows.
    pub fn known_code(&self) -> Option<ErrorCode> {
        self.code().and_then(ErrorCode::parse)
    }
}

#[derive(Clone)]
pub struct NodeClient {
    nodes: Vec<Endpoint>,
    http: reqwest::blocking::Client,
}

/// A node reached without a socket: the bootstrap node's own faucet calls the node's router
/// in its process, so its bundles take exactly the checks everyone's take.
pub trait InProcessNode: Send + Sync {
    /// Serves one request (`path` with its query, a JSON body); answers the HTTP status and the
    /// body, or why it could not serve.
    fn serve(&self, method: &str, path: &str, body: Option<Vec<u8>>) -> Result<(u16, Vec<u8>), String>;
}

#[derive(Clone)]
enum Endpoint {
    Http(String),
    InProcess(Arc<dyn InProcessNode>),
}

impl Endpoint {
    fn name(&self) -> &str {
        match self {
            Endpoint::Http(url) => url,
            Endpoint::InProcess(_) => "in-process node",
        }
    }
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

/// An event a node pushed on `/v1/subscribe`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PushEvent {
    /// A block was finalized at this height.
    Header { height: u64 },
    /// A bundle of a subscribed address was finalized (the receipt is checked like a polled one:
    /// against the headers the wallet verified).
    Receipt { address: Address, receipt: Box<Receipt> },
    /// The node dropped events for this subscriber: what was missed must be polled.
    Lagged,
}

/// Decodes a hex field of an answer (the borsh bytes of a protocol object).
fn hex_object<T: BorshDeserialize>(text: &str, field: &str) -> Result<T, ClientError> {
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
                Endpoint::Http(if node.starts_with("http://") || node.starts_with("https://") {
                    node.to_string()
                } else {
                    format!("http://{node}")
                })
            })
            .collect();
        Ok(NodeClient { nodes, http })
    }

    /// A client of one node in this process (no socket, no push stream: it polls).
    pub fn in_process(node: Arc<dyn InProcessNode>) -> Result<Self, ClientError> {
        let mut client = NodeClient::new(&[], Duration::from_secs(10))?;
        client.nodes = vec![Endpoint::InProcess(node)];
        Ok(client)
    }

    fn tried(&self) -> String {
        self.nodes.iter().map(Endpoint::name).collect::<Vec<_>>().join(", ")
    }

    /// One request to one node: its status and JSON answer, or why there is none.
    fn exchange(
        &self,
        node: &Endpoint,
        method: &reqwest::Method,
        path: &str,
        body: Option<&Value>,
        timeout: Option<Duration>,
    ) -> Result<(u16, Value), String> {
        match node {
            Endpoint::Http(url) => {
                let mut request = self.http.request(method.clone(), format!("{url}{path}"));
                if let Some(body) = body {
                    request = request.json(body);
                }
                if let Some(timeout) = timeout {
                    request = request.timeout(timeout);
                }
                let response = request.send().map_err(|e| format!("{url}: {e}"))?;
                let status = response.status();
                let answer = response.json().map_err(|e| format!("{url}: {status}: {e}"))?;
                Ok((status.as_u16(), answer))
            }
            Endpoint::InProcess(local) => {
                let (status, bytes) =
                    local.serve(method.as_str(), path, body.map(|body| body.to_string().into_bytes()))?;
                let answer = serde_json::from_slice(&bytes).map_err(|e| format!("in-process node: {status}: {e}"))?;
                Ok((status, answer))
            }
        }
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
            let (status, answer) = match self.exchange(node, &method, path, body, timeout) {
                Ok(answered) => answered,
                Err(e) => {
                    last = e;
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
            // A node's own trouble: the next node may serve. A full mempool and the faucet's
            // refusals are answers (the faucet runs on one node only).
            let answer_code = ErrorCode::parse(&code);
            if status >= 500 && !answer_code.is_some_and(|c| c == ErrorCode::MempoolFull || c.is_faucet()) {
                last = format!("{}: {code}: {message}", node.name());
                continue;
            }
            return Err(ClientError::Refused { status, code, message });
        }
        Err(ClientError::Unreachable {
            tried: self.tried(),
            last,
        })
    }

    fn get(&self, path: &str) -> Result<Value, ClientError> {
        self.call(reqwest::Method::GET, path, None)
    }

    fn post(&self, path: &str, body: Value) -> Result<Value, ClientError> {
        self.call(reqwest::Method::POST, path, Some(&body))
    }

    /// The testnet's genesis and the hash the node gives for it (the caller checks both).
    pub fn genesis(&self) -> Result<(Hash32, ezchain_protocol::Genesis), ClientError> {
        let answer: GenesisAnswer = field(self.get(paths::GENESIS)?)?;
        Ok((answer.genesis_hash, answer.genesis))
    }

    pub fn status(&self) -> Result<StatusAnswer, ClientError> {
        field(self.get(paths::STATUS)?)
    }

    pub fn submit(&self, submission: &Submission) -> Result<SubmitAnswer, ClientError> {
        let request = SubmitRequest {
            submission: hex::encode(encode(submission)),
        };
        field(self.post(paths::SUBMIT, json!(request))?)
    }

    /// The receipt of `owner`'s bundle `seq`, once finalized.
    pub fn receipt(&self, owner: &Address, seq: u64) -> Result<Option<Receipt>, ClientError> {
        match self.get(&paths::receipt(owner, seq)) {
            Ok(data) => {
                let answer: ReceiptAnswer = field(data)?;
                Ok(Some(hex_object(&answer.receipt, "receipt")?))
            }
            Err(e) if e.known_code() == Some(ErrorCode::ReceiptNotFound) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Finalized headers from `from` on (the node caps how many per call).
    pub fn headers(&self, from: u64) -> Result<Vec<CertifiedHeader>, ClientError> {
        let answer: HeadersAnswer = field(self.get(&paths::headers(from, None))?)?;
        answer
            .headers
            .iter()
            .map(|item| {
                Ok(CertifiedHeader {
                    header: hex_object(&item.header, "header")?,
                    certificate: hex_object(&item.certificate, "certificate")?,
                })
            })
            .collect()
    }

    pub fn mailbox_put(&self, package: &TransferPackage) -> Result<Hash32, ClientError> {
        let recipient = package.target_tx.recipient;
        let request = MailboxPutRequest {
            package: hex::encode(encode(package)),
        };
        let answer: MailboxPutAnswer = field(self.post(&paths::mailbox(recipient), json!(request))?)?;
        Ok(answer.id)
    }

    fn challenge(&self, owner: &Address) -> Result<Hash32, ClientError> {
        let answer: ChallengeAnswer = field(self.post(&paths::mailbox_challenge(owner), json!({}))?)?;
        Ok(answer.challenge)
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
                let request = SignedMailboxRequest {
                    challenge,
                    signature: hex::encode(signature.0),
                    ids: Vec::new(),
                };
                node.post(&paths::mailbox_fetch(owner), json!(request))
                    .and_then(field::<FetchAnswer>)
            });
            let answer = match result {
                Ok(answer) => answer,
                Err(e) => {
                    last_error = Some(e);
                    continue;
                }
            };
            answered = true;
            for item in answer.packages {
                let id = item.id;
                let bytes =
                    hex::decode(&item.package).map_err(|_| ClientError::BadAnswer("package is not hex".into()))?;
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
                    let request = SignedMailboxRequest {
                        challenge,
                        signature: hex::encode(signature.0),
                        ids: chunk.to_vec(),
                    };
                    node.post(&paths::mailbox_ack(owner), json!(request))
                        .and_then(field::<AckAnswer>)
                });
                match result {
                    Ok(answer) => {
                        acknowledged = true;
                        removed += answer.removed as usize;
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

    /// Opens the push subscription (`/v1/subscribe`) for `addresses` on the first node that
    /// grants it; its events arrive on the returned channel until `lasting` has passed or the
    /// connection ends (then the channel disconnects). A reader thread parses the stream; it
    /// ends with the connection or when the receiver is dropped and the next event arrives.
    pub fn subscribe(
        &self,
        addresses: &[Address],
        lasting: Duration,
    ) -> Result<std::sync::mpsc::Receiver<PushEvent>, ClientError> {
        let mut last = String::from("no nodes configured");
        for node in &self.nodes {
            let Endpoint::Http(url) = node else {
                last = "an in-process node has no push stream".into();
                continue;
            };
            let request = self
                .http
                .get(format!("{url}{}", paths::subscribe(addresses)))
                .timeout(lasting);
            match request.send() {
                Ok(response) if response.status().is_success() => {
                    let (sender, receiver) = std::sync::mpsc::channel();
                    std::thread::Builder::new()
                        .name("subscription".into())
                        .spawn(move || read_events(response, &sender))
                        .map_err(|e| ClientError::BadAnswer(format!("cannot start the subscription reader: {e}")))?;
                    return Ok(receiver);
                }
                Ok(response) => last = format!("{url}: {}", response.status()),
                Err(e) => last = format!("{url}: {e}"),
            }
        }
        Err(ClientError::Unreachable {
            tried: self.tried(),
            last,
        })
    }

    /// The faucet answers once its payment is final and in the mailbox: allow it the time.
    pub fn faucet(&self, address: &Address, amount: u64) -> Result<FaucetGrant, ClientError> {
        let body = json!(FaucetRequest {
            address: address.to_string(),
            amount,
        });
        field(self.call_with(reqwest::Method::POST, paths::FAUCET, Some(&body), Some(FAUCET_TIMEOUT))?)
    }

    fn single_nodes(&self) -> impl Iterator<Item = NodeClient> + '_ {
        self.nodes.iter().map(|node| NodeClient {
            nodes: vec![node.clone()],
            http: self.http.clone(),
        })
    }
}

/// Reads a server-sent event stream (`event:` and `data:` lines, a blank line ends an event)
/// and forwards the events this client understands; an unreadable one ends the stream, so the
/// driver falls back to polling instead of acting on half an event.
fn read_events(response: reqwest::blocking::Response, sender: &std::sync::mpsc::Sender<PushEvent>) {
    use std::io::BufRead;
    let mut name = String::new();
    let mut data = String::new();
    for line in std::io::BufReader::new(response).lines() {
        let Ok(line) = line else { return };
        if let Some(value) = line.strip_prefix("event:") {
            name = value.trim().to_string();
        } else if let Some(value) = line.strip_prefix("data:") {
            data.push_str(value.trim());
        } else if line.is_empty() && !data.is_empty() {
            let parsed = parse_event(&name, &data);
            name.clear();
            data.clear();
            match parsed {
                Ok(Some(event)) => {
                    if sender.send(event).is_err() {
                        return;
                    }
                }
                Ok(None) => {}
                Err(e) => {
                    warn!(error = %e, "unreadable subscription event; falling back to polling");
                    return;
                }
            }
        }
    }
}

/// One event of `/v1/subscribe`; `None` for an event this client does not use.
fn parse_event(name: &str, data: &str) -> Result<Option<PushEvent>, ClientError> {
    let json = |data: &str| serde_json::from_str::<Value>(data).map_err(|e| ClientError::BadAnswer(e.to_string()));
    Ok(Some(match name {
        EVENT_HEADER => {
            let item: CertifiedHeaderItem = field(json(data)?)?;
            PushEvent::Header { height: item.height }
        }
        EVENT_RECEIPT => {
            let event: ReceiptEvent = field(json(data)?)?;
            PushEvent::Receipt {
                address: event.address,
                receipt: Box::new(hex_object(&event.receipt, "receipt")?),
            }
        }
        EVENT_LAGGED => PushEvent::Lagged,
        _ => return Ok(None),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subscription_events_parse_and_unknown_ones_are_skipped() {
        let header = json!({"height": 9, "header_hash": Hash32::ZERO, "header": "", "certificate": ""}).to_string();
        assert_eq!(
            parse_event(EVENT_HEADER, &header).expect("header"),
            Some(PushEvent::Header { height: 9 })
        );
        assert_eq!(
            parse_event(EVENT_LAGGED, r#"{"missed":3}"#).expect("lagged"),
            Some(PushEvent::Lagged)
        );
        assert_eq!(parse_event("future_event", "{}").expect("skipped"), None);
        assert!(
            parse_event(EVENT_RECEIPT, r#"{"address":"0x00","seq":1,"height":1,"receipt":"zz"}"#).is_err(),
            "a damaged receipt event is an error, not a guess"
        );
    }
}
