//! The wallet worker: one thread owns the wallet (its blocking HTTP client and database) and
//! runs the handlers' jobs one at a time ([`Actor`]), so async handlers never block the runtime
//! and two requests never race on the same wallet.

use ezchain_protocol::SigningKey;
pub use ezchain_wallet::OpenError;
use ezchain_wallet::actor::{Actor, ActorError};
use ezchain_wallet::wallet_file;
use ezchain_wallet::{AppConfig, Wallet, WalletOpener};
use std::time::{Duration, Instant};

/// What the worker thread owns.
pub struct Slot {
    /// Opens the wallet per job, keeping its genesis and node client between jobs.
    opener: WalletOpener,
    /// The key kept in memory by `/wallet/unlock`, until the deadline.
    unlocked: Option<(SigningKey, Instant)>,
}

impl Slot {
    pub fn config(&self) -> &AppConfig {
        self.opener.config()
    }

    /// The key: from `password` if given, else from an unexpired unlock.
    pub fn key(&mut self, password: Option<&str>) -> Result<Option<SigningKey>, OpenError> {
        if let Some(password) = password {
            return wallet_file::unlock(&self.config().data_dir(), password)
                .map(Some)
                .map_err(OpenError::File);
        }
        match &self.unlocked {
            Some((key, until)) if Instant::now() < *until => Ok(Some(key.clone())),
            _ => {
                self.unlocked = None;
                Ok(None)
            }
        }
    }

    pub fn unlock(&mut self, password: &str, ttl: Duration) -> Result<Instant, OpenError> {
        let key = wallet_file::unlock(&self.config().data_dir(), password).map_err(OpenError::File)?;
        let until = Instant::now() + ttl;
        self.unlocked = Some((key, until));
        Ok(until)
    }

    /// How long the key stays unlocked (`None`: locked).
    pub fn unlocked_for(&self) -> Option<Duration> {
        self.unlocked
            .as_ref()
            .map(|(_, until)| until.saturating_duration_since(Instant::now()))
            .filter(|left| !left.is_zero())
    }

    pub fn lock(&mut self) {
        self.unlocked = None;
    }

    /// Opens the wallet; with a key (password or unlock) it can send and receive.
    pub fn open(&mut self, password: Option<&str>) -> Result<Wallet, OpenError> {
        let key = self.key(password)?;
        self.opener.open(key)
    }
}

/// The thread that owns the wallet (the wallet crate's one actor convention).
pub type WalletWorker = Actor<Slot>;

/// Starts the wallet's thread.
pub fn start(config: AppConfig) -> std::io::Result<WalletWorker> {
    Actor::start("wallet", move || {
        Ok::<_, std::convert::Infallible>(Slot {
            opener: WalletOpener::new(config),
            unlocked: None,
        })
    })
    .map_err(|error| match error {
        ActorError::Spawn(e) => e,
        ActorError::Open(never) => match never {},
    })
}
