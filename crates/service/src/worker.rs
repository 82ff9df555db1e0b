//! The wallet worker: one thread owns the wallet (its blocking HTTP client and database) and
//! runs the handlers' jobs one at a time, so async handlers never block the runtime and two
//! requests never race on the same wallet.

use ezchain_host::genesis_file::load_genesis;
use ezchain_protocol::SigningKey;
use ezchain_wallet::wallet_file::{self, WalletFileError};
use ezchain_wallet::{AppConfig, NodeClient, Wallet, WalletError, WalletOptions};
use std::sync::mpsc;
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

/// What the worker thread owns.
pub struct Slot {
    pub config: AppConfig,
    /// The key kept in memory by `/wallet/unlock`, until the deadline.
    unlocked: Option<(SigningKey, Instant)>,
}

/// Why the wallet could not be opened.
#[derive(Debug)]
pub enum OpenError {
    File(WalletFileError),
    Wallet(WalletError),
    Config(String),
}

impl Slot {
    /// The key: from `password` if given, else from an unexpired unlock.
    pub fn key(&mut self, password: Option<&str>) -> Result<Option<SigningKey>, OpenError> {
        if let Some(password) = password {
            return wallet_file::unlock(&self.config.data_dir(), password)
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
        let key = wallet_file::unlock(&self.config.data_dir(), password).map_err(OpenError::File)?;
        let until = Instant::now() + ttl;
        self.unlocked = Some((key, until));
        Ok(until)
    }

    pub fn lock(&mut self) {
        self.unlocked = None;
    }

    /// Opens the wallet; with a key (password or unlock) it can send and receive.
    pub fn open(&mut self, password: Option<&str>) -> Result<Wallet, OpenError> {
        let data_dir = self.config.data_dir();
        let file = wallet_file::load(&data_dir).map_err(OpenError::File)?;
        let owner = file
            .address()
            .map_err(|e| OpenError::File(WalletFileError::Keystore(e)))?;
        let key = self.key(password)?;
        let genesis = load_genesis(&self.config.genesis_file()).map_err(|e| OpenError::Config(e.to_string()))?;
        let client = self.client().map_err(|e| OpenError::Config(e.to_string()))?;
        let options = WalletOptions {
            bundle_expiry_blocks: self.config.wallet.bundle_expiry_blocks,
            max_tx_amount: self.config.security.max_tx_amount,
            ..WalletOptions::default()
        };
        Wallet::open(&data_dir, owner, key, genesis, client, options).map_err(OpenError::Wallet)
    }

    pub fn client(&self) -> Result<NodeClient, ezchain_wallet::client::ClientError> {
        NodeClient::new(
            &self.config.network.bootstrap_nodes,
            Duration::from_secs(self.config.wallet.request_timeout_seconds),
        )
    }
}

type Job = Box<dyn FnOnce(&mut Slot) + Send>;

#[derive(Clone)]
pub struct WalletWorker {
    jobs: mpsc::Sender<Job>,
}

impl WalletWorker {
    pub fn start(config: AppConfig) -> std::io::Result<Self> {
        let (jobs, queue) = mpsc::channel::<Job>();
        std::thread::Builder::new().name("wallet".into()).spawn(move || {
            let mut slot = Slot { config, unlocked: None };
            while let Ok(job) = queue.recv() {
                job(&mut slot);
            }
        })?;
        Ok(WalletWorker { jobs })
    }

    /// Runs `job` on the wallet thread; `None` if the thread is gone.
    pub async fn run<T: Send + 'static>(&self, job: impl FnOnce(&mut Slot) -> T + Send + 'static) -> Option<T> {
        let (reply, answer) = oneshot::channel();
        let job: Job = Box::new(move |slot| {
            let _ = reply.send(job(slot));
        });
        self.jobs.send(job).ok()?;
        answer.await.ok()
    }
}
