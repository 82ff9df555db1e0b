//! The testnet faucet, one component: an account node ([`Wallet`]) holding the genesis-funded
//! faucet key, the limits it pays within, and its key files. The bootstrap node hosts it behind
//! `POST /v1/faucet` and hands it an [`InProcessNode`], so its bundles go through the node's own
//! router — the same checks as everyone's — without a socket.
//!
//! The wallet lives on its own thread ([`Actor`]) and pays one request at a time (a wallet has
//! at most one pending bundle); the node's handlers await the answer without blocking the
//! runtime. Limits: per request, per address per hour, and for the whole faucet per hour
//! (addresses cost nothing, so only the last one bounds a drain); the window is kept in a file
//! and survives a restart.
//!
//! Key: a Web3 keystore (`faucet_keystore.json`, the format of `wallet.json`, so an operator can
//! import it into an ordinary wallet) unlocked by the password in `faucet_password`; both 0600.
//! Homes made before this hold a plain `faucet_key.json`, still read (with a warning).

use crate::actor::{Actor, ActorError};
use crate::client::{InProcessNode, NodeClient};
use crate::history::TxStatus;
use crate::keystore::KeystoreFile;
use crate::{Wallet, WalletError, WalletOptions};
use ezchain_host::export::{ExportError, export_database};
use ezchain_protocol::{Address, Genesis, SigningKey};
use ezchain_rpc::ErrorCode;
use ezchain_rpc::types::FaucetGrant;
use std::collections::HashMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use thiserror::Error;

/// The faucet's keystore in a bootstrap home.
pub const FAUCET_KEYSTORE_FILE: &str = "faucet_keystore.json";
/// The password of [`FAUCET_KEYSTORE_FILE`].
pub const FAUCET_PASSWORD_FILE: &str = "faucet_password";
/// The plain key file of homes made before the keystore.
pub const LEGACY_FAUCET_KEY_FILE: &str = "faucet_key.json";
/// How often the faucet wallet asks its in-process node about its pending payment.
const IN_PROCESS_POLL: Duration = Duration::from_millis(20);
/// How long one faucet payment may take to be finalized and delivered.
const PAY_WAIT: Duration = Duration::from_secs(60);

#[derive(Debug, Error)]
pub enum FaucetError {
    #[error("cannot read or write {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{path} is readable by other users (mode {mode:o}); run `chmod 600 {path}`")]
    TooOpen { path: PathBuf, mode: u32 },
    #[error("{path}: {reason}")]
    BadKey { path: PathBuf, reason: String },
    #[error("the faucet wallet: {0}")]
    Wallet(#[from] WalletError),
    #[error("the faucet thread: {0}")]
    Thread(std::io::Error),
}

impl FaucetError {
    /// Stable code for the operator.
    pub fn code(&self) -> &'static str {
        match self {
            FaucetError::Io { .. } => "io_error",
            FaucetError::TooOpen { .. } | FaucetError::BadKey { .. } => "bad_key",
            FaucetError::Wallet(error) => error.code(),
            FaucetError::Thread(_) => "faucet_error",
        }
    }
}

/// Where the faucet's key is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FaucetKeySource {
    /// A Web3 keystore and the file holding its password.
    Keystore { keystore: PathBuf, password_file: PathBuf },
    /// A plain `{"address", "secret_key"}` file (homes made before the keystore).
    Legacy(PathBuf),
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> FaucetError + '_ {
    move |source| FaucetError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn bad_key(path: &Path, reason: impl ToString) -> FaucetError {
    FaucetError::BadKey {
        path: path.to_path_buf(),
        reason: reason.to_string(),
    }
}

/// A secret file's text; refused when others can read it.
fn read_private(path: &Path) -> Result<String, FaucetError> {
    let mode = std::fs::metadata(path).map_err(io_error(path))?.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(FaucetError::TooOpen {
            path: path.to_path_buf(),
            mode,
        });
    }
    std::fs::read_to_string(path).map_err(io_error(path))
}

/// scrypt cost of the faucet's keystore (N = 2^14, 16 MiB, a few ms). Lower than a user's
/// wallet on purpose: the password sits beside the keystore, so a higher cost would protect
/// nothing and only slow every node start; the keystore is there for its format.
pub const FAUCET_SCRYPT_LOG_N: u8 = 14;

/// A new random faucet key.
pub fn generate_faucet_key() -> Result<SigningKey, FaucetError> {
    // A random 32-byte string is a valid secp256k1 scalar except with probability ~2^-128.
    loop {
        let mut secret = [0u8; 32];
        getrandom::fill(&mut secret).map_err(|e| FaucetError::Thread(std::io::Error::other(e.to_string())))?;
        if let Ok(key) = SigningKey::from_bytes(&secret) {
            return Ok(key);
        }
    }
}

/// Writes `key` as a keystore under a fresh random password (both files 0600, never
/// overwritten); `scrypt_log_n` is the keystore's cost ([`FAUCET_SCRYPT_LOG_N`]).
pub fn write_faucet_key(
    key: &SigningKey,
    keystore: &Path,
    password_file: &Path,
    scrypt_log_n: u8,
) -> Result<(), FaucetError> {
    for path in [keystore, password_file] {
        if path.exists() {
            return Err(io_error(path)(std::io::Error::from(std::io::ErrorKind::AlreadyExists)));
        }
    }
    let mut password = [0u8; 24];
    getrandom::fill(&mut password).map_err(|e| io_error(password_file)(std::io::Error::other(e.to_string())))?;
    let password = hex::encode(password);
    let mut file = KeystoreFile::encrypt(key, &password, scrypt_log_n).map_err(|e| bad_key(keystore, e))?;
    file.name = Some("faucet".into());
    let text = serde_json::to_string_pretty(&file).map_err(|e| bad_key(keystore, e))?;
    ezchain_host::secret::write_secret_file(password_file, format!("{password}\n").as_bytes())
        .map_err(io_error(password_file))?;
    ezchain_host::secret::write_secret_file(keystore, format!("{text}\n").as_bytes()).map_err(io_error(keystore))
}

/// The faucet's key, from either kind of key file.
pub fn load_faucet_key(source: &FaucetKeySource) -> Result<SigningKey, FaucetError> {
    match source {
        FaucetKeySource::Keystore {
            keystore,
            password_file,
        } => {
            let password = read_private(password_file)?;
            let file = KeystoreFile::from_json(&read_private(keystore)?).map_err(|e| bad_key(keystore, e))?;
            file.decrypt(password.trim_end_matches(['\n', '\r'])).map_err(|e| {
                bad_key(
                    keystore,
                    format!("{e} (with the password in {})", password_file.display()),
                )
            })
        }
        FaucetKeySource::Legacy(path) => {
            #[derive(serde::Deserialize)]
            #[serde(deny_unknown_fields)]
            struct PlainKey {
                address: String,
                secret_key: String,
            }
            let plain: PlainKey = serde_json::from_str(&read_private(path)?).map_err(|e| bad_key(path, e))?;
            let mut secret = [0u8; 32];
            hex::decode_to_slice(plain.secret_key.trim_start_matches("0x"), &mut secret)
                .map_err(|e| bad_key(path, e))?;
            let key = SigningKey::from_bytes(&secret).map_err(|e| bad_key(path, e))?;
            if key.address().to_checksum() != plain.address {
                return Err(bad_key(path, "address does not belong to secret_key"));
            }
            tracing::warn!(path = %path.display(), "the faucet key is a plain key file; `ezchain testnet init` now writes a keystore (faucet.keystore_file)");
            Ok(key)
        }
    }
}

/// Why the faucet did not pay: a stable code, an HTTP status, and what to do.
#[derive(Clone, Debug)]
pub struct FaucetRefusal {
    pub status: u16,
    pub code: ErrorCode,
    pub message: String,
    /// The payment went (or may still go) out: the amount stays counted against the address.
    pub charged: bool,
}

/// What a faucet is started from.
pub struct FaucetSetup {
    pub key: FaucetKeySource,
    pub genesis: Genesis,
    /// The faucet wallet's folder (the node's `<data_dir>/faucet_wallet`).
    pub data_dir: PathBuf,
    pub limits: FaucetLimits,
    /// Where the limits' window is kept (the node's `<data_dir>/faucet_grants.json`).
    pub grants_file: PathBuf,
    /// The node the faucet pays through.
    pub node: Arc<dyn InProcessNode>,
}

/// The running faucet: its wallet's thread and its limits.
#[derive(Clone)]
pub struct Faucet {
    wallet: Actor<Wallet>,
    limiter: Arc<FaucetLimiter>,
    owner: Address,
    /// Coins owned and not being paid away, as of the last payment (the node's metrics read it
    /// without waiting behind a payment).
    coins_left: Arc<AtomicU64>,
}

/// What the faucet can still pay: everything it owns except what a pending bundle pays away.
fn coins_left(wallet: &Wallet) -> u64 {
    let balance = wallet.balance();
    balance.total_balance.saturating_sub(balance.pending_outgoing)
}

impl Faucet {
    /// Decrypts the key and opens the wallet on the faucet's thread (blocking: call it off the
    /// async runtime, e.g. in `spawn_blocking`).
    pub fn start(setup: FaucetSetup) -> Result<Faucet, FaucetError> {
        let key = load_faucet_key(&setup.key)?;
        let owner = key.address();
        let FaucetSetup {
            genesis,
            data_dir,
            node,
            ..
        } = setup;
        let left = Arc::new(AtomicU64::new(0));
        let opened_left = left.clone();
        let wallet = Actor::start("faucet", move || {
            let client = NodeClient::in_process(node)?;
            // In-process polls cost no socket, and there is no push stream in-process: poll
            // often, or every faucet payment would wait most of a poll interval.
            let options = WalletOptions {
                poll_interval: IN_PROCESS_POLL,
                ..WalletOptions::default()
            };
            let wallet = Wallet::open(&data_dir, owner, Some(key), genesis, client, options)?;
            opened_left.store(coins_left(&wallet), Ordering::Relaxed);
            Ok(wallet)
        })
        .map_err(|error| match error {
            ActorError::Spawn(e) => FaucetError::Thread(e),
            ActorError::Open(e) => FaucetError::Wallet(e),
        })?;
        tracing::info!(%owner, "faucet wallet ready");
        Ok(Faucet {
            wallet,
            limiter: Arc::new(FaucetLimiter::with_file(setup.limits, setup.grants_file)),
            owner,
            coins_left: left,
        })
    }

    pub fn address(&self) -> Address {
        self.owner
    }

    /// Coins the faucet can still pay, as of its last payment (or its start).
    pub fn coins_left(&self) -> u64 {
        self.coins_left.load(Ordering::Relaxed)
    }

    /// Pays `amount` to `recipient` within the limits; answers once the payment is final and
    /// in the recipient's mailbox.
    pub async fn pay(&self, recipient: Address, amount: u64) -> Result<FaucetGrant, FaucetRefusal> {
        let reserved_at = now_ms();
        self.limiter.reserve(recipient, amount, reserved_at)?;
        let left = self.coins_left.clone();
        let result = self
            .wallet
            .run(move |wallet: &mut Wallet| {
                let result = pay(wallet, recipient, amount);
                left.store(coins_left(wallet), Ordering::Relaxed);
                result
            })
            .await
            .unwrap_or_else(|| {
                Err(FaucetRefusal {
                    status: 503,
                    code: ErrorCode::FaucetUnavailable,
                    message: "the faucet wallet stopped; see the node log".into(),
                    charged: false,
                })
            });
        if let Err(refusal) = &result {
            tracing::warn!(%recipient, amount, code = refusal.code.as_str(), message = %refusal.message, "faucet request failed");
            if !refusal.charged {
                self.limiter.release(recipient, amount, reserved_at);
            }
        }
        result
    }

    /// Writes an online copy of the faucet wallet's database to `target` (made between two
    /// payments); its size in bytes.
    pub async fn export_wallet(&self, target: PathBuf) -> Result<u64, ExportError> {
        self.wallet
            .run(move |wallet: &mut Wallet| {
                export_database(wallet.store().database(), &target, crate::store::copy_tables)
            })
            .await
            .unwrap_or_else(|| {
                Err(ExportError::Io {
                    path: PathBuf::from("faucet_wallet"),
                    source: std::io::Error::other("the faucet wallet stopped; see the node log"),
                })
            })
    }
}

fn pay(wallet: &mut Wallet, recipient: Address, amount: u64) -> Result<FaucetGrant, FaucetRefusal> {
    let refusal = |status, code, message: String, charged| FaucetRefusal {
        status,
        code,
        message,
        charged,
    };
    let outcome = wallet
        .send(recipient, amount, None, PAY_WAIT)
        .map_err(|error| match error {
            WalletError::InsufficientFunds { available, .. } => refusal(
                503,
                ErrorCode::FaucetEmpty,
                format!("the faucet has {available} left; ask the testnet operator to refill it"),
                false,
            ),
            WalletError::SendFailed { reason, .. } => refusal(503, ErrorCode::FaucetSendFailed, reason, false),
            other => refusal(503, ErrorCode::FaucetError, other.to_string(), false),
        })?;
    let record = outcome.record;
    match record.status {
        TxStatus::Delivered => Ok(FaucetGrant {
            amount: record.amount,
            height: record.height.unwrap_or(0),
            bundle_hash: record.bundle_hash.map(|h| h.to_string()).unwrap_or_default(),
            packages: record.package_ids.len(),
        }),
        TxStatus::Finalized => Err(refusal(
            503,
            ErrorCode::FaucetDeliveryPending,
            format!(
                "paid in block {} but the package is not in your mailbox yet; it is redelivered with the next faucet request",
                record.height.unwrap_or(0)
            ),
            true,
        )),
        _ => Err(refusal(
            503,
            ErrorCode::FaucetPaymentPending,
            format!(
                "payment {} is not final yet; it completes on its own, do not ask again",
                record.tx_ref()
            ),
            true,
        )),
    }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

const HOUR_MS: u64 = 3_600_000;

/// The faucet's limits, in coins.
#[derive(Clone, Copy, Debug)]
pub struct FaucetLimits {
    pub per_request: u64,
    pub per_address_per_hour: u64,
    /// Everything paid in one hour, all addresses together.
    pub per_hour: u64,
}

/// Sliding one-hour window of granted amounts per address. With a file (the node's
/// `<data_dir>/faucet_grants.json`) the window survives a restart: it is rewritten atomically
/// after every change and read back at start.
pub struct FaucetLimiter {
    limits: FaucetLimits,
    grants: Mutex<HashMap<Address, Vec<(u64, u64)>>>,
    file: Option<PathBuf>,
}

/// The grants file: `[{"address", "at_ms", "amount"}]`.
fn read_grants(path: &Path) -> HashMap<Address, Vec<(u64, u64)>> {
    let mut grants: HashMap<Address, Vec<(u64, u64)>> = HashMap::new();
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return grants,
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "cannot read the faucet grants; starting with none");
            return grants;
        }
    };
    let Ok(serde_json::Value::Array(entries)) = serde_json::from_str(&text) else {
        tracing::warn!(path = %path.display(), "the faucet grants file is not a JSON list; starting with none");
        return grants;
    };
    for entry in entries {
        let address = entry["address"].as_str().and_then(|a| a.parse::<Address>().ok());
        if let (Some(address), Some(at), Some(amount)) = (address, entry["at_ms"].as_u64(), entry["amount"].as_u64()) {
            grants.entry(address).or_default().push((at, amount));
        }
    }
    grants
}

fn write_grants(path: &Path, grants: &HashMap<Address, Vec<(u64, u64)>>) -> std::io::Result<()> {
    let entries: Vec<serde_json::Value> = grants
        .iter()
        .flat_map(|(address, list)| {
            list.iter()
                .map(move |(at, amount)| serde_json::json!({ "address": address.to_string(), "at_ms": at, "amount": amount }))
        })
        .collect();
    let temp = path.with_extension("tmp");
    {
        let mut file = std::fs::File::create(&temp)?;
        std::io::Write::write_all(&mut file, serde_json::Value::Array(entries).to_string().as_bytes())?;
        file.sync_all()?;
    }
    std::fs::rename(&temp, path)
}

impl FaucetLimiter {
    /// A limiter that keeps its window in memory only.
    pub fn new(limits: FaucetLimits) -> Self {
        FaucetLimiter {
            limits,
            grants: Mutex::new(HashMap::new()),
            file: None,
        }
    }

    /// A limiter whose window is kept in `path` (read now, rewritten after every change).
    pub fn with_file(limits: FaucetLimits, path: PathBuf) -> Self {
        FaucetLimiter {
            limits,
            grants: Mutex::new(read_grants(&path)),
            file: Some(path),
        }
    }

    fn persist(&self, grants: &HashMap<Address, Vec<(u64, u64)>>) {
        if let Some(path) = &self.file
            && let Err(e) = write_grants(path, grants)
        {
            // The limits still hold in memory; only a restart would forget them.
            tracing::warn!(path = %path.display(), error = %e, "cannot save the faucet grants");
        }
    }

    /// Reserves `amount` for `recipient`, or says why not.
    pub fn reserve(&self, recipient: Address, amount: u64, now_ms: u64) -> Result<(), FaucetRefusal> {
        if amount == 0 || amount > self.limits.per_request {
            return Err(FaucetRefusal {
                status: 400,
                code: ErrorCode::FaucetAmountInvalid,
                message: format!("ask for 1 to {} per request", self.limits.per_request),
                charged: false,
            });
        }
        let mut grants = self.grants.lock().unwrap_or_else(|p| p.into_inner());
        grants.retain(|_, list| {
            list.retain(|(at, _)| now_ms.saturating_sub(*at) < HOUR_MS);
            !list.is_empty()
        });
        let paid_this_hour: u64 = grants.values().flatten().map(|(_, granted)| granted).sum();
        if paid_this_hour + amount > self.limits.per_hour {
            let oldest = grants.values().flatten().map(|(at, _)| *at).min().unwrap_or(now_ms);
            let retry_s = (HOUR_MS - now_ms.saturating_sub(oldest)) / 1000;
            return Err(FaucetRefusal {
                status: 429,
                code: ErrorCode::FaucetHourlyLimit,
                message: format!(
                    "the faucet paid {paid_this_hour} to everyone in the last hour (testnet limit {}); retry in {retry_s} s",
                    self.limits.per_hour
                ),
                charged: false,
            });
        }
        let list = grants.entry(recipient).or_default();
        let used: u64 = list.iter().map(|(_, granted)| granted).sum();
        if used + amount > self.limits.per_address_per_hour {
            let retry_s = list
                .first()
                .map_or(0, |(at, _)| (HOUR_MS - now_ms.saturating_sub(*at)) / 1000);
            return Err(FaucetRefusal {
                status: 429,
                code: ErrorCode::FaucetRateLimited,
                message: format!(
                    "{recipient} received {used} in the last hour (limit {}); retry in {retry_s} s",
                    self.limits.per_address_per_hour
                ),
                charged: false,
            });
        }
        list.push((now_ms, amount));
        self.persist(&grants);
        Ok(())
    }

    /// Gives back a reservation whose payment failed.
    pub fn release(&self, recipient: Address, amount: u64, reserved_at_ms: u64) {
        let mut grants = self.grants.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(list) = grants.get_mut(&recipient)
            && let Some(index) = list.iter().position(|entry| *entry == (reserved_at_ms, amount))
        {
            list.remove(index);
            self.persist(&grants);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn limits(per_request: u64, per_address_per_hour: u64, per_hour: u64) -> FaucetLimits {
        FaucetLimits {
            per_request,
            per_address_per_hour,
            per_hour,
        }
    }

    #[test]
    fn fresh_addresses_cannot_drain_the_faucet_past_its_hourly_total() {
        let limiter = FaucetLimiter::new(limits(100, 100, 250));
        limiter.reserve(Address([1; 20]), 100, 0).expect("first address");
        limiter.reserve(Address([2; 20]), 100, 1).expect("second address");
        let refusal = limiter.reserve(Address([3; 20]), 100, 2).unwrap_err();
        assert_eq!((refusal.status, refusal.code), (429, ErrorCode::FaucetHourlyLimit));
        limiter
            .reserve(Address([3; 20]), 50, 2)
            .expect("what is left of the hour can still be paid");
        limiter.release(Address([1; 20]), 100, 0);
        limiter
            .reserve(Address([4; 20]), 100, 3)
            .expect("a failed payment gives its share back");
        limiter
            .reserve(Address([5; 20]), 100, HOUR_MS + 1)
            .expect("the window slides");
    }

    #[test]
    fn per_request_and_hourly_caps() {
        let limiter = FaucetLimiter::new(limits(100, 250, 10_000));
        let alice = Address([1; 20]);
        assert_eq!(
            limiter.reserve(alice, 101, 0).unwrap_err().code,
            ErrorCode::FaucetAmountInvalid
        );
        assert_eq!(
            limiter.reserve(alice, 0, 0).unwrap_err().code,
            ErrorCode::FaucetAmountInvalid
        );
        limiter.reserve(alice, 100, 0).expect("first");
        limiter.reserve(alice, 100, 1).expect("second");
        let refusal = limiter.reserve(alice, 100, 2).unwrap_err();
        assert_eq!((refusal.status, refusal.code), (429, ErrorCode::FaucetRateLimited));
        limiter
            .reserve(Address([2; 20]), 100, 2)
            .expect("others have their own allowance");
        limiter.release(alice, 100, 1);
        limiter.reserve(alice, 100, 3).expect("a failed payment is given back");
        limiter
            .reserve(alice, 50, HOUR_MS)
            .expect("the first grant left the window");
    }

    #[test]
    fn the_window_survives_a_restart_through_its_file() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("faucet_grants.json");
        let alice = Address([1; 20]);
        let limiter = FaucetLimiter::with_file(limits(100, 150, 10_000), path.clone());
        limiter.reserve(alice, 100, 10).expect("first");
        limiter.reserve(alice, 50, 11).expect("second");
        limiter.release(alice, 50, 11);
        drop(limiter);
        let restarted = FaucetLimiter::with_file(limits(100, 150, 10_000), path.clone());
        assert_eq!(
            restarted.reserve(alice, 100, 12).unwrap_err().code,
            ErrorCode::FaucetRateLimited,
            "the grant before the restart still counts"
        );
        restarted
            .reserve(alice, 50, 13)
            .expect("the released reservation does not count");
        std::fs::write(&path, "not json").expect("corrupt");
        FaucetLimiter::with_file(limits(100, 150, 10_000), path)
            .reserve(alice, 100, 14)
            .expect("a damaged file starts an empty window instead of stopping the node");
    }

    #[test]
    fn the_faucet_key_is_a_private_keystore_and_old_plain_files_still_open() {
        let dir = tempfile::tempdir().expect("temp dir");
        let key = SigningKey::from_bytes(&[7; 32]).expect("key");
        let keystore = dir.path().join(FAUCET_KEYSTORE_FILE);
        let password_file = dir.path().join(FAUCET_PASSWORD_FILE);
        write_faucet_key(&key, &keystore, &password_file, 4).expect("written");
        for path in [&keystore, &password_file] {
            assert_eq!(
                std::fs::metadata(path).expect("file").permissions().mode() & 0o777,
                0o600
            );
        }
        let source = FaucetKeySource::Keystore {
            keystore: keystore.clone(),
            password_file: password_file.clone(),
        };
        assert_eq!(load_faucet_key(&source).expect("opens").address(), key.address());
        let text = std::fs::read_to_string(&keystore).expect("keystore");
        assert!(
            KeystoreFile::from_json(&text).is_ok(),
            "an ordinary wallet keystore, importable with `wallet import --keystore`"
        );
        assert!(
            write_faucet_key(&key, &keystore, &password_file, 4).is_err(),
            "never overwritten"
        );
        std::fs::write(&password_file, "another password\n").expect("tamper");
        assert!(matches!(load_faucet_key(&source), Err(FaucetError::BadKey { .. })));
        std::fs::set_permissions(&password_file, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        assert!(matches!(load_faucet_key(&source), Err(FaucetError::TooOpen { .. })));

        let legacy = dir.path().join(LEGACY_FAUCET_KEY_FILE);
        let plain = serde_json::json!({"address": key.address().to_checksum(), "secret_key": hex::encode([7u8; 32])});
        ezchain_host::secret::write_secret_file(&legacy, plain.to_string().as_bytes()).expect("legacy file");
        assert_eq!(
            load_faucet_key(&FaucetKeySource::Legacy(legacy.clone()))
                .expect("legacy opens")
                .address(),
            key.address()
        );
        let forged =
            serde_json::json!({"address": format!("0x{}", "11".repeat(20)), "secret_key": hex::encode([7u8; 32])});
        ezchain_host::secret::write_secret_file(&legacy, forged.to_string().as_bytes()).expect("forged file");
        assert!(matches!(
            load_faucet_key(&FaucetKeySource::Legacy(legacy)),
            Err(FaucetError::BadKey { .. })
        ));
    }
}
