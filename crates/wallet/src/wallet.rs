//! The account node: one owner's values, sends, receipts and incoming packages, kept in step
//! with the chain through a node's RPC.
//!
//! Send: select values → sign the bundle and store it as pending (history `signed`) → submit
//! (`submitted`) → wait for the receipt of the finalized block → apply it and queue one package
//! per paid range (`finalized`) → put each package in the recipient's mailbox (`delivered`).
//! Every step commits before the next starts, so after a crash `resume` picks up exactly where
//! the wallet stopped: a pending bundle is re-queried (and re-submitted until it is included or
//! expires), a finalized one is applied, undelivered packages are redelivered.
//!
//! Receive: sync finalized headers (each commit certificate checked against genesis), fetch the
//! mailbox, verify every package against those headers and this wallet's own history, keep the
//! accepted values as spendable, record the rejected ones with the reason, and acknowledge.

use crate::client::{ClientError, NodeClient, PushEvent};
use crate::history::{TxKind, TxRecord, TxStatus, write_export};
use crate::progress::{Effect, PendingProgress, SubmitResult, rejection_retention};
use crate::store::{StoreError, Update, WalletStore};
use ezchain_protocol::bundle::EnvelopeParams;
use ezchain_protocol::codec::decode;
use ezchain_protocol::finality::ValidatorSet;
use ezchain_protocol::ownership::{AcceptOutcome, Holdings, OwnershipError, RecordStatus, SnapshotPolicy};
use ezchain_protocol::value::total_len;
use ezchain_protocol::witness::VerifyError;
use ezchain_protocol::{Address, Checkpoint, Genesis, Hash32, HeaderLite, Receipt, SigningKey, TransferPackage};
use ezchain_rpc::ErrorCode;
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::mpsc::RecvTimeoutError;
use std::time::{Duration, Instant};
use thiserror::Error;
use tracing::{info, warn};

pub const HISTORY_FILE: &str = "tx_history.json";
pub const STATE_DIR: &str = "wallet_state";
/// How often a pending bundle is offered to the nodes again (a restarted node forgets its
/// mempool).
const RESUBMIT_EVERY: Duration = Duration::from_secs(5);
/// How often a pending bundle is polled while the push subscription is open (it wakes the
/// wallet at once on news; the poll covers a subscription that silently stopped).
const PUSH_FALLBACK_POLL: Duration = Duration::from_secs(2);
/// How much longer than the wait a subscription may stay open.
const SUBSCRIPTION_MARGIN: Duration = Duration::from_secs(5);
/// Rejected incoming packages kept in the history (the newest); older ones are dropped.
pub const REJECTED_RECORDS_KEPT: usize = 200;
/// How long a receipt's header may take to appear on the header-serving nodes.
const HEADER_WAIT: Duration = Duration::from_secs(30);

#[derive(Debug, Error)]
pub enum WalletError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Node(#[from] ClientError),
    #[error("insufficient funds: {available} spendable, {requested} requested")]
    InsufficientFunds { available: u64, requested: u64 },
    #[error("amount must be between 1 and {max}")]
    AmountInvalid { max: u64 },
    #[error("{0}")]
    Ownership(OwnershipError),
    #[error(
        "the node serves chain {node} but this wallet's genesis is {ours}: check network.genesis_file and network.bootstrap_nodes"
    )]
    WrongChain { node: Hash32, ours: Hash32 },
    #[error("the node served a header that does not verify at height {height}: {reason}")]
    BadHeader { height: u64, reason: String },
    #[error("send {tx_ref} failed: {reason}")]
    SendFailed { tx_ref: String, reason: String },
    #[error("cannot write {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("genesis: {0}")]
    Genesis(String),
    #[error("this needs the wallet's key: pass --password")]
    Locked,
    #[error(
        "this wallet is behind its own account: the chain already holds bundle {seq} of this address, \
         which this wallet's state does not know (restored from an older backup, or the key is used \
         by another wallet). Its values cannot be proven without the newer state: restore it (the \
         `.pre-restore-…` folder, or `ezchain ops restore … --keep-wallet`)"
    )]
    BehindChain { seq: u64 },
    #[error("a payment to this wallet's own address is refused: it would lock the coins; pay another address")]
    SelfTransfer,
    #[error("client_tx_id `{client_tx_id}` already paid {amount} to {recipient}; a different payment needs a new id")]
    DuplicateTransaction {
        client_tx_id: String,
        recipient: Address,
        amount: u64,
    },
}

impl From<OwnershipError> for WalletError {
    fn from(error: OwnershipError) -> Self {
        match error {
            OwnershipError::InsufficientFunds { available, requested } => {
                WalletError::InsufficientFunds { available, requested }
            }
            other => WalletError::Ownership(other),
        }
    }
}

impl WalletError {
    /// Stable code for scripts and API clients: the one list the CLI and the wallet service
    /// both answer with.
    pub fn code(&self) -> &'static str {
        match self {
            WalletError::Store(StoreError::Busy) => "wallet_busy",
            WalletError::Store(StoreError::StateFormat { .. }) => "wallet_state_format",
            WalletError::Store(_) => "wallet_store_error",
            WalletError::Node(ClientError::Unreachable { .. }) => "node_unreachable",
            // The faucet's refusals are one kind for a user (the message says which).
            WalletError::Node(refused @ ClientError::Refused { .. })
                if refused.known_code().is_some_and(ErrorCode::is_faucet) =>
            {
                "faucet_refused"
            }
            WalletError::Node(ClientError::Refused { .. }) => "node_refused",
            WalletError::Node(ClientError::BadAnswer(_)) => "node_bad_answer",
            WalletError::InsufficientFunds { .. } => "insufficient_funds",
            WalletError::AmountInvalid { .. } => "invalid_amount",
            WalletError::Ownership(OwnershipError::PendingBundleExists) => "pending_bundle_exists",
            WalletError::Ownership(_) => "wallet_rule_violated",
            WalletError::WrongChain { .. } => "wrong_chain",
            WalletError::BadHeader { .. } => "bad_header",
            WalletError::SendFailed { .. } => "send_failed",
            WalletError::Io { .. } => "io_error",
            WalletError::Genesis(_) => "bad_genesis",
            WalletError::Locked => "password_required",
            WalletError::BehindChain { .. } => "wallet_behind_chain",
            WalletError::SelfTransfer => "self_transfer",
            WalletError::DuplicateTransaction { .. } => "duplicate_transaction",
        }
    }
}

/// Why the wallet an `ezchain.yaml` describes could not be opened.
#[derive(Debug, Error)]
pub enum OpenError {
    #[error(transparent)]
    File(#[from] crate::wallet_file::WalletFileError),
    /// The genesis file or the node list of the config is unusable.
    #[error("{0}")]
    Config(String),
    #[error(transparent)]
    Wallet(#[from] WalletError),
}

/// Opens the wallet an `ezchain.yaml` describes — its `wallet.json`, genesis, nodes and limits:
/// the one place a config becomes a wallet (the CLI and the wallet service both open it so).
///
/// What does not change between two opens is kept: the node client (its connection pool and
/// its thread) and the genesis (read again only when its file changes). The database is opened
/// anew each time on purpose: between two jobs of the wallet service, the CLI or `ops backup`
/// in another process may use the wallet, and state cached across that would be stale.
pub struct WalletOpener {
    config: crate::AppConfig,
    client: Option<NodeClient>,
    genesis: Option<(Option<std::time::SystemTime>, u64, Genesis)>,
}

impl WalletOpener {
    pub fn new(config: crate::AppConfig) -> Self {
        WalletOpener {
            config,
            client: None,
            genesis: None,
        }
    }

    pub fn config(&self) -> &crate::AppConfig {
        &self.config
    }

    /// Opens the wallet; with `key` (decrypted by the caller) it can send and receive.
    pub fn open(&mut self, key: Option<SigningKey>) -> Result<Wallet, OpenError> {
        use crate::wallet_file::{self, WalletFileError};
        let data_dir = self.config.data_dir();
        let owner = wallet_file::load(&data_dir)?
            .address()
            .map_err(|e| OpenError::File(WalletFileError::Keystore(e)))?;
        let genesis = self.genesis()?;
        let client = match &self.client {
            Some(client) => client.clone(),
            None => {
                let client = NodeClient::new(
                    &self.config.network.bootstrap_nodes,
                    Duration::from_secs(self.config.wallet.request_timeout_seconds),
                )
                .map_err(|e| OpenError::Config(e.to_string()))?;
                self.client = Some(client.clone());
                client
            }
        };
        let options = WalletOptions {
            bundle_expiry_blocks: self.config.wallet.bundle_expiry_blocks,
            max_tx_amount: self.config.security.max_tx_amount,
            ..WalletOptions::default()
        };
        Ok(Wallet::open(&data_dir, owner, key, genesis, client, options)?)
    }

    /// The genesis, read again when its file's time or size changed (a local testnet made anew).
    fn genesis(&mut self) -> Result<Genesis, OpenError> {
        let path = self.config.genesis_file();
        let metadata = std::fs::metadata(&path).ok();
        let stamp = (
            metadata.as_ref().and_then(|m| m.modified().ok()),
            metadata.as_ref().map_or(0, std::fs::Metadata::len),
        );
        if let Some((modified, len, genesis)) = &self.genesis
            && (*modified, *len) == stamp
            && stamp.0.is_some()
        {
            return Ok(genesis.clone());
        }
        let genesis = ezchain_host::genesis_file::load_genesis(&path).map_err(|e| OpenError::Config(e.to_string()))?;
        self.genesis = Some((stamp.0, stamp.1, genesis.clone()));
        Ok(genesis)
    }
}

/// Settings of an open wallet.
#[derive(Clone, Debug)]
pub struct WalletOptions {
    pub bundle_expiry_blocks: u64,
    pub poll_interval: Duration,
    pub max_tx_amount: u64,
    /// Largest transfer package decoded from a mailbox: the verifier's size budget, so nothing
    /// larger than it would accept is ever decoded.
    pub max_package_bytes: usize,
    /// When a send first snapshots this wallet's holdings (docs/WALLET.md, "Snapshots").
    pub snapshot_policy: SnapshotPolicy,
}

impl Default for WalletOptions {
    fn default() -> Self {
        WalletOptions {
            bundle_expiry_blocks: 600,
            poll_interval: Duration::from_millis(250),
            max_tx_amount: u64::MAX,
            max_package_bytes: ezchain_protocol::witness::VerifyBudget::default().max_encoded_bytes,
            snapshot_policy: SnapshotPolicy::default(),
        }
    }
}

/// Balance by state, in value units.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Balance {
    pub address: Address,
    /// Spendable now.
    pub available_balance: u64,
    /// Paid away in the pending bundle; leaves the wallet when it is finalized.
    pub pending_outgoing: u64,
    /// Change of the pending bundle; spendable once it is finalized.
    pub pending_change: u64,
    /// Everything still owned: available + pending outgoing + pending change.
    pub total_balance: u64,
    pub values: usize,
}

/// Where a send stands when [`Wallet::send`] returns.
#[derive(Debug)]
pub struct SendOutcome {
    /// The send's history record, in the state it reached.
    pub record: TxRecord,
    /// Why it did not get further within the wait (a node down, a header not served yet): it is
    /// still bound to its bundle and a later `send` with the same id, or `resume`, continues it.
    pub stalled: Option<WalletError>,
}

/// What one mailbox pass did.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ReceiveReport {
    pub accepted: Vec<TxRecord>,
    pub rejected: Vec<TxRecord>,
    /// Packages left for later (their block is not yet known to this wallet).
    pub deferred: usize,
}

pub struct Wallet {
    owner: Address,
    /// `None` for a read-only view opened without the password.
    key: Option<SigningKey>,
    genesis: Genesis,
    genesis_hash: Hash32,
    validators: ValidatorSet,
    store: WalletStore,
    holdings: Holdings,
    headers: BTreeMap<u64, HeaderLite>,
    client: NodeClient,
    data_dir: PathBuf,
    options: WalletOptions,
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl Wallet {
    /// The wallet's database (an online backup copies it from a read transaction).
    pub fn store(&self) -> &WalletStore {
        &self.store
    }

    /// Opens (or starts) the state of `owner` under `data_dir`; without `key` the wallet can
    /// show its state but not send or receive.
    pub fn open(
        data_dir: &Path,
        owner: Address,
        key: Option<SigningKey>,
        genesis: Genesis,
        client: NodeClient,
        options: WalletOptions,
    ) -> Result<Self, WalletError> {
        let state_dir = data_dir.join(STATE_DIR);
        std::fs::create_dir_all(&state_dir).map_err(|source| WalletError::Io {
            path: state_dir.clone(),
            source,
        })?;
        let genesis_hash = genesis.hash();
        let validators = ValidatorSet::from_genesis(&genesis).map_err(|e| WalletError::Genesis(e.to_string()))?;
        if key.as_ref().is_some_and(|key| key.address() != owner) {
            return Err(WalletError::Genesis(
                "the key does not belong to this wallet's address".into(),
            ));
        }
        let (store, holdings) = WalletStore::open(&state_dir.join("wallet.redb"), owner, genesis_hash, || {
            Holdings::from_genesis(owner, &genesis)
        })?;
        let headers = store.headers()?;
        Ok(Wallet {
            owner,
            key,
            genesis,
            genesis_hash,
            validators,
            store,
            holdings,
            headers,
            client,
            data_dir: data_dir.to_path_buf(),
            options,
        })
    }

    pub fn address(&self) -> Address {
        self.owner
    }

    /// True when the wallet was opened with its key (it can send and receive).
    pub fn has_key(&self) -> bool {
        self.key.is_some()
    }

    fn key(&self) -> Result<&SigningKey, WalletError> {
        self.key.as_ref().ok_or(WalletError::Locked)
    }

    pub fn genesis_hash(&self) -> Hash32 {
        self.genesis_hash
    }

    pub fn client(&self) -> &NodeClient {
        &self.client
    }

    pub fn balance(&self) -> Balance {
        let sum = |status: RecordStatus| {
            total_len(
                self.holdings
                    .records()
                    .iter()
                    .filter(|r| r.status == status)
                    .map(|r| &r.value),
            )
        };
        let available_balance = sum(RecordStatus::Spendable);
        let pending_outgoing = sum(RecordStatus::PendingOutgoing);
        let pending_change = sum(RecordStatus::PendingChange);
        Balance {
            address: self.address(),
            available_balance,
            pending_outgoing,
            pending_change,
            total_balance: available_balance + pending_outgoing + pending_change,
            values: self
                .holdings
                .records()
                .iter()
                .filter(|r| r.status != RecordStatus::Archived)
                .count(),
        }
    }

    pub fn checkpoints(&self) -> &[Checkpoint] {
        self.holdings.checkpoints()
    }

    /// Own confirmed bundles with their receipts, oldest first.
    pub fn receipts(&self) -> Vec<&Receipt> {
        self.holdings.own_units().iter().map(|unit| &unit.receipt).collect()
    }

    pub fn history(&self) -> Result<Vec<TxRecord>, WalletError> {
        Ok(self.store.history()?)
    }

    /// Sends not yet delivered: signed, submitted or finalized.
    pub fn pending(&self) -> Result<Vec<TxRecord>, WalletError> {
        Ok(self
            .store
            .history()?
            .into_iter()
            .filter(|r| {
                r.kind == TxKind::Send
                    && matches!(r.status, TxStatus::Signed | TxStatus::Submitted | TxStatus::Finalized)
            })
            .collect())
    }

    pub fn synced_height(&self) -> u64 {
        self.headers.keys().next_back().copied().unwrap_or(0)
    }

    fn commit(&self, update: Update<'_>) -> Result<(), WalletError> {
        let wrote_history = !update.history.is_empty();
        self.store.commit(update)?;
        if wrote_history {
            self.export_history()?;
        }
        Ok(())
    }

    fn export_history(&self) -> Result<(), WalletError> {
        let path = self.data_dir.join(HISTORY_FILE);
        write_export(&path, &self.store.history()?).map_err(|source| WalletError::Io { path, source })
    }

    /// Fetches and verifies finalized headers up to the node's tip; returns the synced height.
    pub fn sync_headers(&mut self) -> Result<u64, WalletError> {
        loop {
            let next = self.synced_height() + 1;
            let batch = self.client.headers(next)?;
            if batch.is_empty() {
                return Ok(self.synced_height());
            }
            let mut lites = Vec::with_capacity(batch.len());
            let mut prev = match next {
                1 => self.genesis_hash,
                _ => self.headers.get(&(next - 1)).map_or(Hash32::ZERO, |h| h.header_hash),
            };
            for (offset, certified) in batch.iter().enumerate() {
                let height = next + offset as u64;
                let header = &certified.header;
                let bad = |reason: String| WalletError::BadHeader { height, reason };
                if header.height != height || header.chain_id != self.genesis.chain_id {
                    return Err(bad(format!(
                        "got height {} of chain {}",
                        header.height, header.chain_id
                    )));
                }
                if header.prev_hash != prev {
                    return Err(bad("it does not extend the previous finalized header".into()));
                }
                self.validators
                    .verify_commit(header, &certified.certificate)
                    .map_err(|e| bad(e.to_string()))?;
                prev = header.hash();
                lites.push(header.lite());
            }
            self.store.commit(Update {
                headers: lites.clone(),
                ..Update::default()
            })?;
            self.headers.extend(lites.into_iter().map(|lite| (lite.height, lite)));
        }
    }

    fn check_chain(&self) -> Result<u64, WalletError> {
        let status = self.client.status()?;
        if status.genesis_hash != self.genesis_hash {
            return Err(WalletError::WrongChain {
                node: status.genesis_hash,
                ours: self.genesis_hash,
            });
        }
        Ok(status.height)
    }

    /// Pays `amount` to `recipient` and waits up to `wait` for finality and delivery.
    ///
    /// With a `client_tx_id` the send happens at most once: once a bundle is signed for the id,
    /// the id is bound to that bundle, and a repeat (same recipient and amount) resumes it and
    /// answers its real state; a repeat for another payment is `DuplicateTransaction`. After
    /// signing, a transient failure is not the send's answer: the record comes back in the
    /// state it reached, with the failure in `stalled`. The only error after signing is
    /// `SendFailed` (the bundle can never be included; its values are spendable again).
    pub fn send(
        &mut self,
        recipient: Address,
        amount: u64,
        client_tx_id: Option<String>,
        wait: Duration,
    ) -> Result<SendOutcome, WalletError> {
        self.key()?;
        if let Some(client_id) = &client_tx_id
            && let Some(existing) = self.store.record_by_client_id(client_id)?
        {
            if existing.counterparty != recipient || existing.amount != amount {
                return Err(WalletError::DuplicateTransaction {
                    client_tx_id: client_id.clone(),
                    recipient: existing.counterparty,
                    amount: existing.amount,
                });
            }
            return self.progress(existing, wait);
        }
        if amount == 0 || amount > self.options.max_tx_amount {
            return Err(WalletError::AmountInvalid {
                max: self.options.max_tx_amount,
            });
        }
        // Refused by every node too (bundle rule 2); caught here so nothing is signed.
        if recipient == self.owner {
            return Err(WalletError::SelfTransfer);
        }
        if self.holdings.pending().is_some() {
            self.resume(wait)?;
            if self.holdings.pending().is_some() {
                return Err(WalletError::Ownership(OwnershipError::PendingBundleExists));
            }
        }
        let mut tip = self.check_chain()?;
        if self.holdings.snapshot_due(&self.options.snapshot_policy) {
            match self.snapshot(tip, wait) {
                Ok(()) => {}
                // A snapshot this wallet cannot build (its history since the last one is too
                // long, say) must not stop its payments: they go on with the longer witnesses.
                Err(WalletError::Ownership(error)) if !matches!(error, OwnershipError::PendingBundleExists) => {
                    warn!(%error, "cannot snapshot the holdings; paying without it");
                }
                Err(e) => return Err(e),
            }
            tip = self.check_chain()?;
        }
        let params = self.next_params(tip)?;
        let ranges = self.holdings.select_ranges(amount)?;
        let created_at_ms = now_ms();
        let key = self.key.as_ref().ok_or(WalletError::Locked)?;
        let submission = self
            .holdings
            .prepare_bundle(key, &[(recipient, ranges.clone())], &params, created_at_ms)?;
        let record = TxRecord {
            id: self.store.next_history_id()?,
            kind: TxKind::Send,
            status: TxStatus::Signed,
            counterparty: recipient,
            amount,
            ranges,
            bundle_hash: Some(submission.envelope.bundle_hash),
            seq: Some(params.seq),
            client_tx_id,
            height: None,
            created_at_ms,
            finalized_at_ms: None,
            package_ids: Vec::new(),
            reason: None,
        };
        self.commit(Update {
            holdings: Some(&self.holdings),
            history: vec![record.clone()],
            ..Update::default()
        })?;
        info!(tx = %record.tx_ref(), %recipient, amount, "bundle signed");
        self.progress(record, wait)
    }

    /// The envelope of this wallet's next bundle. Its seq must be free on chain: a receipt there
    /// means another state of this account already used it, and a bundle signed from this state
    /// could never be included (or proven).
    fn next_params(&self, tip: u64) -> Result<EnvelopeParams, WalletError> {
        let next_seq = self.holdings.confirmed_seq() + 1;
        if self.client.receipt(&self.address(), next_seq)?.is_some() {
            return Err(WalletError::BehindChain { seq: next_seq });
        }
        let mut nonce = [0u8; 8];
        getrandom::fill(&mut nonce).map_err(|e| WalletError::Genesis(format!("randomness: {e}")))?;
        Ok(EnvelopeParams {
            chain_id: self.genesis.chain_id,
            seq: next_seq,
            expiry_height: tip + self.options.bundle_expiry_blocks,
            fee: 0,
            anti_spam_nonce: u64::from_le_bytes(nonce),
        })
    }

    /// Commits this wallet's holdings in a snapshot bundle and waits up to `wait` for it (one
    /// block). A refused snapshot is logged and the send goes on without it: its values are
    /// untouched, and their witnesses are as long as before. One still pending when `wait` runs
    /// out holds the account's slot, so the send answers `pending_bundle_exists` and a retry
    /// resumes it.
    pub fn snapshot(&mut self, tip: u64, wait: Duration) -> Result<(), WalletError> {
        let params = self.next_params(tip)?;
        let next_seq = params.seq;
        let key = self.key.as_ref().ok_or(WalletError::Locked)?;
        let submission = self.holdings.prepare_snapshot(key, &self.genesis, &params)?;
        self.commit(Update {
            holdings: Some(&self.holdings),
            ..Update::default()
        })?;
        let incoming = submission.evidence.as_ref().map_or(0, |e| e.incoming.len());
        info!(seq = next_seq, incoming, "holdings snapshot signed");
        match self.drive_pending(wait) {
            Ok(()) => {}
            Err(WalletError::SendFailed { reason, .. }) => {
                warn!(%reason, "the holdings snapshot was refused; paying without it");
            }
            Err(e) => return Err(e),
        }
        if self.holdings.pending().is_some() {
            return Err(WalletError::Ownership(OwnershipError::PendingBundleExists));
        }
        if let Some(snapshot) = self.holdings.snapshot().filter(|s| s.unit.receipt.seq == next_seq) {
            info!(
                height = snapshot.unit.height(),
                ranges = snapshot.list.len(),
                "holdings snapshot confirmed"
            );
        }
        Ok(())
    }

    /// Takes a signed send as far as it goes within `wait` and answers the state it reached.
    fn progress(&mut self, record: TxRecord, wait: Duration) -> Result<SendOutcome, WalletError> {
        let stalled = match record.status {
            TxStatus::Signed | TxStatus::Submitted | TxStatus::Finalized => self.resume(wait).err(),
            _ => None,
        };
        let record = self.store.record(record.id)?.unwrap_or(record);
        if record.status == TxStatus::Failed {
            return Err(WalletError::SendFailed {
                tx_ref: record.tx_ref(),
                reason: record.reason.clone().unwrap_or_default(),
            });
        }
        if let Some(error) = &stalled {
            warn!(tx = %record.tx_ref(), %error, "send not finished; it continues on the next resume");
        }
        Ok(SendOutcome { record, stalled })
    }

    /// The history record of the pending bundle.
    fn pending_record(&self) -> Result<Option<TxRecord>, WalletError> {
        let Some(pending) = self.holdings.pending() else {
            return Ok(None);
        };
        let seq = pending.submission.envelope.seq;
        Ok(self.store.history()?.into_iter().rev().find(|r| {
            r.kind == TxKind::Send && r.seq == Some(seq) && matches!(r.status, TxStatus::Signed | TxStatus::Submitted)
        }))
    }

    /// Finishes what an earlier run left: the pending bundle (up to `wait` for its finality) and
    /// undelivered packages.
    pub fn resume(&mut self, wait: Duration) -> Result<(), WalletError> {
        if self.holdings.pending().is_some() {
            self.drive_pending(wait)?;
        }
        self.deliver_outbox()
    }

    /// Submits the pending bundle and waits for its receipt; returns when it is finalized (and
    /// applied), when it can never be included (values released), or when `wait` runs out.
    ///
    /// The decisions are [`PendingProgress`]'s; this carries out its effects. It waits on the
    /// node's push subscription (a receipt or a header wakes it at once) and polls every
    /// [`PUSH_FALLBACK_POLL`]; without a subscription, every `poll_interval`.
    fn drive_pending(&mut self, wait: Duration) -> Result<(), WalletError> {
        let Some(pending) = self.holdings.pending().cloned() else {
            return Ok(());
        };
        let submission = pending.submission;
        let seq = submission.envelope.seq;
        let start = Instant::now();
        let mut push = if wait.is_zero() {
            None
        } else {
            self.client
                .subscribe(&[self.owner], wait + SUBSCRIPTION_MARGIN)
                .map_err(|e| warn!(error = %e, "no push subscription; polling"))
                .ok()
        };
        let poll_every = if push.is_some() {
            PUSH_FALLBACK_POLL
        } else {
            self.options.poll_interval
        };
        let mut machine = PendingProgress::new(
            seq,
            submission.envelope.expiry_height,
            start + wait,
            RESUBMIT_EVERY,
            poll_every,
        );
        let mut effect = Effect::Poll;
        loop {
            effect = match effect {
                Effect::Poll => {
                    let tip = match self.check_chain() {
                        Ok(tip) => Some(tip),
                        Err(WalletError::Node(ClientError::Unreachable { .. })) => None,
                        Err(e) => return Err(e),
                    };
                    let receipt = match self.client.receipt(&self.address(), seq) {
                        Ok(receipt) => receipt,
                        Err(ClientError::Unreachable { .. }) => None,
                        Err(e) => return Err(e.into()),
                    };
                    machine.polled(Instant::now(), tip, receipt)
                }
                Effect::Submit => {
                    let result = match self.client.submit(&submission) {
                        Ok(_) => SubmitResult::Accepted,
                        Err(ClientError::Refused { code, message, .. })
                            if ErrorCode::parse(&code).is_some_and(ErrorCode::is_fatal_for_submission) =>
                        {
                            SubmitResult::Fatal(format!("{code}: {message}"))
                        }
                        // stale_seq: included already, the receipt is on its way; others: retry.
                        Err(e) => {
                            warn!(error = %e, "submitting the pending bundle failed; retrying");
                            SubmitResult::Transient
                        }
                    };
                    machine.submitted(Instant::now(), result)
                }
                Effect::RecordSubmitted => {
                    if let Some(mut record) = self.pending_record()?
                        && record.status == TxStatus::Signed
                    {
                        record.status = TxStatus::Submitted;
                        self.commit(Update {
                            history: vec![record],
                            ..Update::default()
                        })?;
                    }
                    machine.recorded(Instant::now())
                }
                Effect::Finalize(receipt) => return self.finalize(*receipt),
                Effect::Release(reason) => return self.release_pending(reason),
                Effect::Stop => return Ok(()),
                Effect::Wait(until) => {
                    let timeout = until.saturating_duration_since(Instant::now());
                    match push.as_ref().map(|events| events.recv_timeout(timeout)) {
                        None => {
                            std::thread::sleep(timeout);
                            machine.woke(Instant::now())
                        }
                        Some(Ok(PushEvent::Receipt { address, receipt })) if address == self.owner => {
                            machine.pushed_receipt(Instant::now(), *receipt)
                        }
                        Some(Ok(PushEvent::Receipt { .. })) => Effect::Wait(until),
                        Some(Ok(PushEvent::Header { height })) => machine.pushed_header(Instant::now(), height),
                        Some(Ok(PushEvent::Lagged)) => machine.woke(Instant::now()),
                        Some(Err(RecvTimeoutError::Timeout)) => machine.woke(Instant::now()),
                        Some(Err(RecvTimeoutError::Disconnected)) => {
                            push = None;
                            machine.push_lost(self.options.poll_interval)
                        }
                    }
                }
            };
        }
    }

    /// Releases the pending bundle's values: it can never be included.
    fn release_pending(&mut self, reason: String) -> Result<(), WalletError> {
        let record = self.pending_record()?;
        self.holdings.abandon_pending();
        let tx_ref = record.as_ref().map(TxRecord::tx_ref).unwrap_or_default();
        let history = record
            .map(|mut record| {
                record.status = TxStatus::Failed;
                record.reason = Some(reason.clone());
                record
            })
            .into_iter()
            .collect();
        self.commit(Update {
            holdings: Some(&self.holdings),
            history,
            ..Update::default()
        })?;
        warn!(tx = %tx_ref, %reason, "send failed; its values are spendable again");
        Err(WalletError::SendFailed { tx_ref, reason })
    }

    /// Applies the receipt of the pending bundle and queues its packages for delivery.
    fn finalize(&mut self, receipt: Receipt) -> Result<(), WalletError> {
        let height = receipt.header.height;
        // The node that served the receipt has the header; another may lag a little. A node
        // that never serves it leaves the bundle pending for the next resume.
        let deadline = Instant::now() + HEADER_WAIT;
        while self.synced_height() < height {
            let before = self.synced_height();
            self.sync_headers()?;
            if self.synced_height() == before {
                if Instant::now() >= deadline {
                    return Err(WalletError::BadHeader {
                        height,
                        reason: format!("no node served the header within {} s", HEADER_WAIT.as_secs()),
                    });
                }
                std::thread::sleep(self.options.poll_interval);
            }
        }
        let record = self.pending_record()?;
        let packages = self.holdings.apply_own_receipt(receipt, &self.headers)?;
        let history = record
            .map(|mut record| {
                record.status = TxStatus::Finalized;
                record.height = Some(height);
                record.finalized_at_ms = Some(now_ms());
                record.package_ids = packages.iter().map(TransferPackage::package_hash).collect();
                record
            })
            .into_iter()
            .collect::<Vec<_>>();
        if let Some(record) = history.first() {
            info!(tx = %record.tx_ref(), height, "bundle finalized");
        }
        self.commit(Update {
            holdings: Some(&self.holdings),
            outbox_add: packages,
            history,
            ..Update::default()
        })?;
        self.deliver_outbox()
    }

    /// Puts every undelivered package in its recipient's mailbox; marks sends delivered.
    pub fn deliver_outbox(&mut self) -> Result<(), WalletError> {
        let outbox = self.store.outbox()?;
        if outbox.is_empty() {
            return Ok(());
        }
        let mut delivered = Vec::new();
        for package in &outbox {
            match self.client.mailbox_put(package) {
                Ok(_) => delivered.push(package.package_hash()),
                Err(e) => warn!(error = %e, recipient = %package.target_tx.recipient, "delivery failed; will retry"),
            }
        }
        let remaining: Vec<Hash32> = outbox
            .iter()
            .map(TransferPackage::package_hash)
            .filter(|id| !delivered.contains(id))
            .collect();
        let history = self
            .store
            .history()?
            .into_iter()
            .filter(|r| {
                r.kind == TxKind::Send
                    && r.status == TxStatus::Finalized
                    && r.package_ids.iter().all(|id| !remaining.contains(id))
            })
            .map(|mut record| {
                record.status = TxStatus::Delivered;
                record
            })
            .collect();
        self.commit(Update {
            outbox_remove: delivered,
            history,
            ..Update::default()
        })
    }

    /// Fetches, verifies and stores incoming packages; acknowledges the ones it is done with.
    ///
    /// Each accepted value commits on its own (money first). Rejections are written together
    /// at the end — a crash before that leaves their packages unacknowledged, so they are only
    /// fetched and rejected again — and at most [`REJECTED_RECORDS_KEPT`] of them stay in the
    /// history, so junk in a mailbox cannot grow the wallet. `tx_history.json` is written once.
    pub fn receive(&mut self) -> Result<ReceiveReport, WalletError> {
        let key = self.key()?.clone();
        self.sync_headers()?;
        let packages = self.client.mailbox_fetch(&key, &self.genesis_hash)?;
        let mut report = ReceiveReport::default();
        if packages.is_empty() {
            return Ok(report);
        }
        let mut done: Vec<&crate::client::MailboxPackage> = Vec::new();
        let history = self.store.history()?;
        let known_rejections: std::collections::HashSet<Hash32> = history
            .iter()
            .filter(|r| r.status == TxStatus::Rejected)
            .flat_map(|r| r.package_ids.iter().copied())
            .collect();
        let mut rejections: Vec<(Hash32, Option<TransferPackage>, String)> = Vec::new();
        for item in &packages {
            let package: TransferPackage = match decode(&item.bytes, self.options.max_package_bytes) {
                Ok(package) => package,
                Err(e) => {
                    if !known_rejections.contains(&item.id) {
                        rejections.push((item.id, None, format!("undecodable package: {e}")));
                    }
                    done.push(item);
                    continue;
                }
            };
            let id = package.package_hash();
            match self.holdings.accept_package(&self.genesis, &self.headers, &package) {
                Ok(AcceptOutcome::Accepted { value, units_checked }) => {
                    // The payer's bundle (the newest unit holds the paying transfer): the id the
                    // payer's own record shows.
                    let paid_by = package.witness.chain.first();
                    let record = TxRecord {
                        id: self.store.next_history_id()?,
                        kind: TxKind::Receive,
                        status: TxStatus::Accepted,
                        counterparty: package.target_tx.sender,
                        amount: value.len(),
                        ranges: vec![value],
                        bundle_hash: paid_by.map(|unit| unit.sidecar.bundle_hash()),
                        seq: paid_by.map(|unit| unit.receipt.seq),
                        client_tx_id: None,
                        height: self.holdings.records().last().map(|r| r.acquisition_height),
                        created_at_ms: now_ms(),
                        finalized_at_ms: None,
                        package_ids: vec![id],
                        reason: None,
                    };
                    self.store.commit(Update {
                        holdings: Some(&self.holdings),
                        history: vec![record.clone()],
                        ..Update::default()
                    })?;
                    info!(from = %record.counterparty, amount = record.amount, units_checked, "value received and verified");
                    report.accepted.push(record);
                    done.push(item);
                }
                Ok(AcceptOutcome::Duplicate) => done.push(item),
                Err(OwnershipError::Verify(VerifyError::UnknownHeader { .. })) => report.deferred += 1,
                Err(error) => {
                    if !known_rejections.contains(&id) {
                        rejections.push((id, Some(package), error.to_string()));
                    }
                    done.push(item);
                }
            }
        }
        if !rejections.is_empty() {
            let first_id = self.store.next_history_id()?;
            report.rejected = rejections
                .into_iter()
                .enumerate()
                .map(|(offset, (id, package, reason))| {
                    rejection(first_id + offset as u64, id, package.as_ref(), reason)
                })
                .collect();
            let kept: Vec<u64> = history
                .iter()
                .filter(|r| r.status == TxStatus::Rejected)
                .map(|r| r.id)
                .collect();
            let new_ids: Vec<u64> = report.rejected.iter().map(|r| r.id).collect();
            let retention = rejection_retention(&kept, &new_ids, REJECTED_RECORDS_KEPT);
            self.store.commit(Update {
                history: report
                    .rejected
                    .iter()
                    .filter(|r| !retention.drop.contains(&r.id))
                    .cloned()
                    .collect(),
                history_remove: retention.drop,
                ..Update::default()
            })?;
        }
        if !report.accepted.is_empty() || !report.rejected.is_empty() {
            self.export_history()?;
        }
        if !done.is_empty() {
            self.client.mailbox_ack(&key, &self.genesis_hash, &done)?;
        }
        Ok(report)
    }
}

/// The history record of a rejected incoming package.
fn rejection(record_id: u64, id: Hash32, package: Option<&TransferPackage>, reason: String) -> TxRecord {
    warn!(package = %id, %reason, "incoming package rejected");
    TxRecord {
        id: record_id,
        kind: TxKind::Receive,
        status: TxStatus::Rejected,
        counterparty: package.map_or(Address([0; 20]), |p| p.target_tx.sender),
        amount: package.map_or(0, |p| p.target_value.len()),
        ranges: package.map(|p| vec![p.target_value]).unwrap_or_default(),
        bundle_hash: None,
        seq: None,
        client_tx_id: None,
        height: None,
        created_at_ms: now_ms(),
        finalized_at_ms: None,
        package_ids: vec![id],
        reason: Some(reason),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ezchain_protocol::ValueRange;
    use ezchain_protocol::genesis::{Allocation, GenesisValidator};

    fn genesis(chain_id: u64, owner: Address) -> Genesis {
        let mut basepoint = [0x66u8; 32];
        basepoint[0] = 0x58;
        Genesis {
            chain_id,
            genesis_time_ms: 0,
            validators: vec![GenesisValidator {
                name: "v0".into(),
                consensus_public_key: basepoint,
                voting_power: 1,
            }],
            allocations: vec![Allocation {
                owner,
                range: ValueRange::new(0, 99).expect("range"),
            }],
            faucet: None,
        }
    }

    #[test]
    fn the_opener_keeps_the_genesis_until_its_file_changes() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("ezchain.yaml");
        let mut config = crate::AppConfig::default();
        config.wallet.scrypt_log_n = 4;
        config.network.genesis_file = dir.path().join("genesis.json");
        std::fs::write(&path, config.to_yaml()).expect("config");
        let config = crate::AppConfig::load(&path).expect("load");
        let created = crate::wallet_file::create(&config.data_dir(), "t", "password-1", 4, false).expect("wallet");
        let write_genesis = |chain_id| {
            let text = serde_json::to_string(&genesis(chain_id, created.0)).expect("json");
            std::fs::write(config.genesis_file(), text).expect("genesis");
        };
        write_genesis(5);
        let mut opener = WalletOpener::new(config.clone());
        let first = opener.open(None).expect("opens");
        assert_eq!(first.balance().available_balance, 100);
        drop(first);
        opener.open(None).expect("opens again");
        std::fs::write(config.genesis_file(), "{}").expect("damage");
        assert!(
            matches!(opener.open(None), Err(OpenError::Config(_))),
            "a changed genesis file is read again"
        );
        write_genesis(123_456);
        assert!(
            matches!(opener.open(None), Err(OpenError::Wallet(_))),
            "and a wallet of another chain is refused"
        );
    }
}
