//! Request and answer types of every node route (the `data` of an ok answer). Hex fields carry
//! the borsh encoding of a protocol object; the field's comment names the type.

use ezchain_protocol::{Address, Genesis, Hash32};
use serde::{Deserialize, Serialize};

/// The `error` of a refused request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refusal {
    /// Stable ([`crate::ErrorCode`]); a newer node may send a code this client does not know.
    pub code: String,
    pub message: String,
}

/// Every answer: `data` when `ok`, `error` otherwise (a 503 `not_ready` carries both).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Envelope<T> {
    pub ok: bool,
    #[serde(default = "Option::default", skip_serializing_if = "Option::is_none")]
    pub data: Option<T>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<Refusal>,
}

impl<T> Envelope<T> {
    /// The data of an ok answer, or the refusal (or a note that neither came).
    pub fn into_result(self) -> Result<T, Refusal> {
        match (self.ok, self.data, self.error) {
            (true, Some(data), _) => Ok(data),
            (_, _, Some(error)) => Err(error),
            _ => Err(Refusal {
                code: String::new(),
                message: "an answer without data or error".into(),
            }),
        }
    }
}

/// `GET /health`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct HealthAnswer {
    pub alive: bool,
}

/// `GET /readyz` (also the `data` of its 503 `not_ready` answer).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ReadyAnswer {
    pub ready: bool,
    pub height: u64,
    pub peers: u64,
    /// Why it is not ready.
    pub reasons: Vec<String>,
}

/// `GET /status`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct StatusAnswer {
    pub chain_id: u64,
    pub genesis_hash: Hash32,
    pub height: u64,
    pub tip_hash: Hash32,
    pub state_root: Hash32,
    pub accounts: u64,
    pub mempool_size: u64,
    /// The node binary's version, git commit and commit date.
    #[serde(default)]
    pub version: String,
    #[serde(default)]
    pub commit: String,
    #[serde(default)]
    pub build_date: String,
}

/// `GET /v1/genesis`: the testnet's genesis, for a wallet joining from elsewhere (which checks
/// it hashes to `genesis_hash`, and that hash against the one the operator published).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct GenesisAnswer {
    pub genesis_hash: Hash32,
    pub genesis: Genesis,
}

/// `POST /v1/submit`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SubmitRequest {
    /// Hex of a borsh `Submission`.
    pub submission: String,
}

/// What the mempool did with a submission.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SubmitStatus {
    Accepted,
    /// A fee bump replaced the sender's pending bundle.
    Replaced,
    AlreadyPending,
}

impl SubmitStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            SubmitStatus::Accepted => "accepted",
            SubmitStatus::Replaced => "replaced",
            SubmitStatus::AlreadyPending => "already_pending",
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SubmitAnswer {
    pub status: SubmitStatus,
    pub bundle_hash: Hash32,
    pub seq: u64,
}

/// Entries one `POST /v1/submit/batch` takes at most (the body limit, `rpc.max_body_bytes`,
/// bounds it too).
pub const MAX_BATCH_SUBMISSIONS: usize = 256;

/// `POST /v1/submit/batch`: many signed bundles in one request, for high-rate clients.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SubmitBatchRequest {
    /// Hex of borsh `Submission`s, at most [`MAX_BATCH_SUBMISSIONS`].
    pub submissions: Vec<String>,
}

/// Its answer: one envelope per entry, in the request's order. An entry's refusal (with the
/// code `/v1/submit` would answer) refuses that entry only.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SubmitBatchAnswer {
    pub results: Vec<Envelope<SubmitAnswer>>,
}

/// `GET /v1/blocks/{height}`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct BlockAnswer {
    pub height: u64,
    pub header_hash: Hash32,
    /// Hex of a borsh `Block`.
    pub block: String,
    /// Hex of a borsh `CommitCertificate`.
    pub certificate: String,
}

/// One finalized header with its commit certificate (`/v1/headers`, and the `header` event).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CertifiedHeaderItem {
    pub height: u64,
    pub header_hash: Hash32,
    /// Hex of a borsh `BlockHeader`.
    pub header: String,
    /// Hex of a borsh `CommitCertificate`.
    pub certificate: String,
}

/// `GET /v1/headers?from=&to=`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct HeadersAnswer {
    pub headers: Vec<CertifiedHeaderItem>,
}

/// `GET /v1/receipts/{address}/{seq}`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ReceiptAnswer {
    pub height: u64,
    /// Hex of a borsh `Receipt`.
    pub receipt: String,
}

/// Event names of `GET /v1/subscribe`.
pub const EVENT_HEADER: &str = "header";
pub const EVENT_RECEIPT: &str = "receipt";
pub const EVENT_LAGGED: &str = "lagged";

/// A `receipt` event: a bundle of a subscribed address was finalized.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ReceiptEvent {
    pub address: Address,
    pub seq: u64,
    pub height: u64,
    /// Hex of a borsh `Receipt`.
    pub receipt: String,
}

/// A `lagged` event: this many updates were dropped; refetch with `/v1/headers`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct LaggedEvent {
    pub missed: u64,
}

/// `POST /v1/mailbox/{address}`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct MailboxPutRequest {
    /// Hex of a borsh `TransferPackage`.
    pub package: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PutStatus {
    Stored,
    AlreadyStored,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct MailboxPutAnswer {
    /// The package's hash.
    pub id: Hash32,
    pub status: PutStatus,
}

/// One package kept for an address, without its contents.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct MailboxListItem {
    pub id: Hash32,
    pub stored_at_ms: u64,
    pub size: u64,
}

/// `GET /v1/mailbox/{address}`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct MailboxListAnswer {
    pub packages: Vec<MailboxListItem>,
}

/// `POST /v1/mailbox/{address}/challenge`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ChallengeAnswer {
    pub challenge: Hash32,
    pub genesis_hash: Hash32,
    pub expires_in_ms: u64,
}

/// `POST /v1/mailbox/{address}/fetch` and `/ack`: signed by the address over the challenge
/// (and the ids, for an ack).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SignedMailboxRequest {
    pub challenge: Hash32,
    /// Hex of the 65-byte recoverable signature.
    pub signature: String,
    /// Package ids acknowledged (ack only).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ids: Vec<Hash32>,
}

/// One package answered by a fetch.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct FetchedPackage {
    pub id: Hash32,
    pub stored_at_ms: u64,
    /// Hex of a borsh `TransferPackage` (kept as bytes by the client: one that does not decode
    /// is still acknowledged and recorded).
    pub package: String,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct FetchAnswer {
    pub packages: Vec<FetchedPackage>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct AckAnswer {
    /// Packages removed.
    pub removed: u64,
}

/// `POST /v1/faucet`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct FaucetRequest {
    /// Checked by the node (`malformed_address`), so kept as text here.
    pub address: String,
    pub amount: u64,
}

/// What the faucet paid.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FaucetGrant {
    pub amount: u64,
    /// Height of the finalized block carrying the payment.
    pub height: u64,
    pub bundle_hash: String,
    /// Transfer packages left in the recipient's mailbox.
    pub packages: usize,
}

/// `POST /v1/admin/export` (header [`crate::paths::ADMIN_TOKEN_HEADER`]).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct AdminExportRequest {
    /// `chain`, `mailbox` or `faucet_wallet`.
    pub database: String,
    /// Absolute path of the new file; it must not exist.
    pub out_file: std::path::PathBuf,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct AdminExportAnswer {
    pub database: String,
    /// The chain's tip in the copy (`chain` only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub height: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tip_hash: Option<Hash32>,
    /// Size of the new file.
    pub bytes: u64,
}
