//! The local testnet manager: one folder of node homes (written by `testnet init`) plus funded
//! account nodes (`account-<i>/`, each an `ezchain serve` wallet service with a genesis
//! allocation), run as detached processes, each with a pid file and a log file.
//!
//! Processes are started and stopped by [`crate::launcher`]. Liveness is judged by the process (the pid answers signal 0 and, on Linux, its command line
//! names this node's home, so a reused pid is not mistaken for the node) and by the node's own
//! `/health`; a pid file alone proves nothing. Stopping is SIGTERM, a bounded wait, then SIGKILL.
//! The chain data stays in the homes, so a later start resumes the same chain.

use ezchain_node::config::{NodeConfig, NodeRole};
use ezchain_node::testnet::{GENESIS_FILE, TestnetError, TestnetOptions, init};
/// What `status` found for one node: the wallet service's `/node/status` reports the same.
pub use ezchain_service::devnet::DevnetNode as NodeState;
use ezchain_service::devnet::{DevnetError, DevnetLayout, DevnetStarted, LocalDevnet};
use ezchain_wallet::AppConfig;
use serde::Serialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use thiserror::Error;

use crate::launcher::{self, Attachment, process_runs};

pub const PID_FILE: &str = "node.pid";
/// Pid file of an account node's `serve` process.
pub const SERVE_PID_FILE: &str = "serve.pid";
pub const ACCOUNT_PREFIX: &str = "account-";
/// Units each account node gets at genesis.
pub const ACCOUNT_FUNDS: u64 = 1_000_000;
/// An account node's wallet password (a local test account: kept beside it, 0600).
pub const PASSWORD_FILE: &str = "password";
/// The node's stdout and stderr (its own log is `logs/node.log`).
pub const PROCESS_LOG: &str = "process.log";

#[derive(Debug, Error)]
pub enum LocalnetError {
    #[error(transparent)]
    Init(#[from] TestnetError),
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{0}")]
    Layout(String),
    #[error("cannot start {name}: {source}")]
    Spawn { name: String, source: std::io::Error },
    #[error("{name} was not ready after {waited_s} s ({reason}); last lines of its log:\n{log_tail}")]
    NotReady {
        name: String,
        waited_s: u64,
        reason: String,
        log_tail: String,
    },
}

/// What [`Localnet::start_watched`] is waiting for.
pub struct Awaiting<'a> {
    /// The first node that is not ready.
    pub name: &'a str,
    /// How many of this group (the nodes, then the account nodes) are ready.
    pub ready: usize,
    pub of: usize,
    /// Why it is not ready, as far as is known.
    pub reason: &'a str,
}

/// One process of the local testnet, as configured: a node, or an account node's service.
#[derive(Clone, Debug)]
pub struct NodeEntry {
    pub name: String,
    pub home: PathBuf,
    pub role: Role,
    /// Node RPC, or the account node's API.
    pub rpc: SocketAddr,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Validator,
    Bootstrap,
    Account,
}

impl Role {
    /// The name `/node/status` and the JSON reports use.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Validator => "validator",
            Role::Bootstrap => "bootstrap",
            Role::Account => "account",
        }
    }
}

impl NodeEntry {
    fn pid_file(&self) -> PathBuf {
        self.home.join(if self.role == Role::Account {
            SERVE_PID_FILE
        } else {
            PID_FILE
        })
    }

    /// The command line that runs it, after the binary.
    fn args(&self) -> Vec<std::ffi::OsString> {
        match self.role {
            Role::Account => vec!["--config".into(), self.home.join("ezchain.yaml").into(), "serve".into()],
            _ => vec!["node".into(), "run".into(), "--home".into(), self.home.clone().into()],
        }
    }

    fn marker(&self) -> &'static str {
        if self.role == Role::Account {
            "serve"
        } else {
            "node run"
        }
    }
}

pub struct Localnet {
    root: PathBuf,
    http: reqwest::blocking::Client,
}

fn io(path: &Path) -> impl Fn(std::io::Error) -> LocalnetError + '_ {
    move |source| LocalnetError::Io {
        path: path.to_path_buf(),
        source,
    }
}

impl Localnet {
    pub fn new(root: &Path) -> Result<Self, LocalnetError> {
        let http = reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(2))
            .build()
            .map_err(|e| LocalnetError::Layout(format!("HTTP client: {e}")))?;
        Ok(Localnet {
            root: root.to_path_buf(),
            http,
        })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn genesis_file(&self) -> PathBuf {
        self.root.join(GENESIS_FILE)
    }

    /// True once `init` has written the testnet.
    pub fn exists(&self) -> bool {
        self.genesis_file().exists()
    }

    /// Writes a testnet of `validators` validators plus a bootstrap node on loopback, and
    /// `accounts` account nodes funded at genesis (their API ports follow the nodes' ports).
    /// `scrypt_log_n` is the cost of the accounts' keystores.
    pub fn init(
        &self,
        validators: usize,
        accounts: u32,
        start_port: u16,
        scrypt_log_n: u8,
    ) -> Result<(), LocalnetError> {
        use ezchain_wallet::keystore::{generate_mnemonic, key_from_mnemonic};
        let genesis_time_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        let layout_error = |e: ezchain_wallet::keystore::KeystoreError| LocalnetError::Layout(e.to_string());
        let mnemonics = (0..accounts)
            .map(|_| generate_mnemonic().map_err(layout_error))
            .collect::<Result<Vec<_>, _>>()?;
        let allocations = mnemonics
            .iter()
            .map(|words| Ok((key_from_mnemonic(words).map_err(layout_error)?.address(), ACCOUNT_FUNDS)))
            .collect::<Result<Vec<_>, LocalnetError>>()?;
        let layout = init(&TestnetOptions {
            validators,
            out: self.root.clone(),
            chain_id: 821,
            start_port,
            host: std::net::Ipv4Addr::LOCALHOST.into(),
            allocations,
            faucet_amount: 1_000_000_000,
            genesis_time_ms,
            placement: Default::default(),
            compose: None,
        })?;
        let bootstrap = layout
            .nodes
            .iter()
            .find(|node| node.role == NodeRole::Bootstrap)
            .map(|node| node.rpc_addr)
            .ok_or_else(|| LocalnetError::Layout("the testnet has no bootstrap node".into()))?;
        let first_api = usize::from(start_port) + 2 * layout.nodes.len();
        for (index, words) in mnemonics.iter().enumerate() {
            let port = u16::try_from(first_api + index)
                .map_err(|_| LocalnetError::Layout("account API ports run past 65535; lower --start-port".into()))?;
            self.write_account(index, words, bootstrap, port, scrypt_log_n)?;
        }
        Ok(())
    }

    fn write_account(
        &self,
        index: usize,
        mnemonic: &str,
        bootstrap: SocketAddr,
        api_port: u16,
        scrypt_log_n: u8,
    ) -> Result<(), LocalnetError> {
        let dir = self.root.join(format!("{ACCOUNT_PREFIX}{index}"));
        std::fs::create_dir_all(&dir).map_err(io(&dir))?;
        let mut password = [0u8; 16];
        getrandom::fill(&mut password).map_err(|e| LocalnetError::Layout(format!("randomness: {e}")))?;
        let password = hex::encode(password);
        let password_path = dir.join(PASSWORD_FILE);
        {
            use std::io::Write;
            let mut options = std::fs::OpenOptions::new();
            options.write(true).create_new(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
            let mut file = options.open(&password_path).map_err(io(&password_path))?;
            file.write_all(password.as_bytes()).map_err(io(&password_path))?;
        }
        let name = format!("{ACCOUNT_PREFIX}{index}");
        ezchain_wallet::wallet_file::import_mnemonic(&dir, &name, mnemonic, &password, scrypt_log_n, false)
            .map_err(|e| LocalnetError::Layout(e.to_string()))?;
        let mut config = AppConfig::default();
        config.network.name = "testnet-local".into();
        config.network.bootstrap_nodes = vec![bootstrap.to_string()];
        config.network.genesis_file = PathBuf::from("..").join(GENESIS_FILE);
        config.app.data_dir = PathBuf::from(".");
        config.app.log_dir = PathBuf::from("logs");
        config.app.api_token_file = PathBuf::from("api.token");
        config.app.api_port = api_port;
        config.wallet.scrypt_log_n = scrypt_log_n;
        config
            .save(&dir.join("ezchain.yaml"))
            .map_err(|e| LocalnetError::Layout(e.to_string()))
    }

    /// The configured nodes: validators in order, then the bootstrap node.
    pub fn nodes(&self) -> Result<Vec<NodeEntry>, LocalnetError> {
        let mut nodes = Vec::new();
        for entry in std::fs::read_dir(&self.root).map_err(io(&self.root))? {
            let home = entry.map_err(io(&self.root))?.path();
            if !home.join(ezchain_node::config::CONFIG_FILE).is_file() {
                continue;
            }
            let config = NodeConfig::load(&home).map_err(|e| LocalnetError::Layout(e.to_string()))?;
            nodes.push(NodeEntry {
                name: config.moniker.clone(),
                home,
                role: match config.role {
                    NodeRole::Validator => Role::Validator,
                    NodeRole::Bootstrap => Role::Bootstrap,
                },
                rpc: config.rpc.listen_addr,
            });
        }
        for entry in std::fs::read_dir(&self.root).map_err(io(&self.root))? {
            let dir = entry.map_err(io(&self.root))?.path();
            let is_account = dir
                .file_name()
                .is_some_and(|name| name.to_string_lossy().starts_with(ACCOUNT_PREFIX));
            if !is_account || !dir.join("ezchain.yaml").is_file() {
                continue;
            }
            let config =
                AppConfig::load(&dir.join("ezchain.yaml")).map_err(|e| LocalnetError::Layout(e.to_string()))?;
            let ip: std::net::IpAddr = config
                .app
                .api_host
                .parse()
                .unwrap_or(std::net::Ipv4Addr::LOCALHOST.into());
            nodes.push(NodeEntry {
                name: dir
                    .file_name()
                    .map(|n| n.to_string_lossy().to_string())
                    .unwrap_or_default(),
                home: dir,
                role: Role::Account,
                rpc: SocketAddr::new(ip, config.app.api_port),
            });
        }
        nodes.sort_by_key(|node| (node.role, node.name.clone()));
        if nodes.is_empty() {
            return Err(LocalnetError::Layout(format!(
                "{} holds no node homes",
                self.root.display()
            )));
        }
        Ok(nodes)
    }

    /// The bootstrap node's RPC address.
    pub fn bootstrap_rpc(&self) -> Result<SocketAddr, LocalnetError> {
        self.nodes()?
            .into_iter()
            .find(|node| node.role == Role::Bootstrap)
            .map(|node| node.rpc)
            .ok_or_else(|| LocalnetError::Layout("the testnet has no bootstrap node".into()))
    }

    /// The pid of the node's process, if it runs.
    pub fn running_pid(&self, node: &NodeEntry) -> Option<u32> {
        let text = std::fs::read_to_string(node.pid_file()).ok()?;
        let pid: u32 = text.trim().parse().ok()?;
        process_runs(pid, node.marker(), &node.home).then_some(pid)
    }

    fn get_json(&self, rpc: SocketAddr, path: &str) -> Option<serde_json::Value> {
        let response = self.http.get(format!("http://{rpc}{path}")).send().ok()?;
        response.json().ok()
    }

    pub fn node_state(&self, node: &NodeEntry) -> NodeState {
        let pid = self.running_pid(node);
        let healthy = pid.is_some()
            && self
                .get_json(node.rpc, "/health")
                .is_some_and(|body| body["ok"] == true);
        let readiness = if healthy {
            self.get_json(node.rpc, "/readyz")
        } else {
            None
        };
        let data = readiness.as_ref().map(|body| &body["data"]);
        NodeState {
            name: node.name.clone(),
            role: node.role.as_str().to_string(),
            rpc: node.rpc,
            pid,
            alive: healthy,
            height: data.and_then(|d| d["height"].as_u64()),
            peers: data.and_then(|d| d["peers"].as_u64()),
            ready: data.is_some_and(|d| d["ready"] == true),
            reasons: data
                .and_then(|d| d["reasons"].as_array())
                .map(|reasons| reasons.iter().filter_map(|r| r.as_str().map(String::from)).collect())
                .unwrap_or_default(),
        }
    }

    pub fn status(&self) -> Result<Vec<NodeState>, LocalnetError> {
        Ok(self.nodes()?.iter().map(|node| self.node_state(node)).collect())
    }

    /// Starts every node that is not running, detached from this process, and waits until all
    /// are ready; then the account nodes likewise. Returns false when all were already running.
    pub fn start(&self, binary: &Path, ready_timeout: Duration) -> Result<bool, LocalnetError> {
        self.start_watched(binary, ready_timeout, &mut |_| {})
    }

    /// [`Localnet::start`], telling `watch` what it waits for about four times a second (for
    /// a progress display).
    pub fn start_watched(
        &self,
        binary: &Path,
        ready_timeout: Duration,
        watch: &mut dyn FnMut(&Awaiting),
    ) -> Result<bool, LocalnetError> {
        let all = self.nodes()?;
        let (accounts, nodes): (Vec<NodeEntry>, Vec<NodeEntry>) =
            all.into_iter().partition(|node| node.role == Role::Account);
        let mut started = self.spawn(binary, &nodes)?;
        self.wait_ready(&nodes, ready_timeout, watch)?;
        started |= self.spawn(binary, &accounts)?;
        self.wait_ready(&accounts, ready_timeout, watch)?;
        Ok(started)
    }

    fn spawn(&self, binary: &Path, nodes: &[NodeEntry]) -> Result<bool, LocalnetError> {
        let mut started = false;
        for node in nodes {
            if self.running_pid(node).is_some() {
                continue;
            }
            let log_path = node.home.join(PROCESS_LOG);
            let child = launcher::spawn(binary, node.args(), &log_path, Attachment::Detached).map_err(|source| {
                LocalnetError::Spawn {
                    name: node.name.clone(),
                    source,
                }
            })?;
            let pid_path = node.pid_file();
            std::fs::write(&pid_path, format!("{}\n", child.id())).map_err(io(&pid_path))?;
            started = true;
        }
        Ok(started)
    }

    fn wait_ready(
        &self,
        nodes: &[NodeEntry],
        timeout: Duration,
        watch: &mut dyn FnMut(&Awaiting),
    ) -> Result<(), LocalnetError> {
        let started = Instant::now();
        loop {
            let states: Vec<NodeState> = nodes.iter().map(|node| self.node_state(node)).collect();
            let Some((node, state)) = nodes.iter().zip(&states).find(|(_, state)| !state.ready) else {
                return Ok(());
            };
            // Right after the spawn, /proc may still show the parent's command line (before exec),
            // so a missing process counts as a crash only after a moment.
            let crashed = state.pid.is_none() && started.elapsed() > Duration::from_secs(2);
            let reason = if crashed {
                "its process exited".to_string()
            } else if !state.alive {
                "it does not answer /health yet".to_string()
            } else {
                state.reasons.join("; ")
            };
            watch(&Awaiting {
                name: &node.name,
                ready: states.iter().filter(|state| state.ready).count(),
                of: nodes.len(),
                reason: &reason,
            });
            if crashed || started.elapsed() >= timeout {
                return Err(LocalnetError::NotReady {
                    name: node.name.clone(),
                    waited_s: started.elapsed().as_secs(),
                    reason,
                    log_tail: log_tail(&node.home, 20),
                });
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    /// SIGTERM to every running node, SIGKILL to those still up after `timeout`; pid files
    /// removed. Returns the names of the nodes that were running.
    pub fn stop(&self, timeout: Duration) -> Result<Vec<String>, LocalnetError> {
        self.stop_nodes(&self.nodes()?, timeout)
    }

    /// Stops the named nodes only (an incident drill, a rolling restart); the others run on.
    pub fn stop_named(&self, names: &[&str], timeout: Duration) -> Result<Vec<String>, LocalnetError> {
        let all = self.nodes()?;
        for name in names {
            if !all.iter().any(|node| node.name == *name) {
                return Err(LocalnetError::Layout(format!("this testnet has no node named {name}")));
            }
        }
        let chosen: Vec<NodeEntry> = all
            .into_iter()
            .filter(|node| names.contains(&node.name.as_str()))
            .collect();
        self.stop_nodes(&chosen, timeout)
    }

    fn stop_nodes(&self, nodes: &[NodeEntry], timeout: Duration) -> Result<Vec<String>, LocalnetError> {
        let mut running = Vec::new();
        for node in nodes {
            if let Some(pid) = self.running_pid(node) {
                // All are told at once; each then gets what is left of the timeout.
                launcher::signal(pid, nix::sys::signal::Signal::SIGTERM);
                running.push((node, pid));
            }
        }
        let deadline = Instant::now() + timeout;
        for (node, pid) in &running {
            let left = deadline.saturating_duration_since(Instant::now());
            launcher::stop_pid(*pid, left, || process_runs(*pid, node.marker(), &node.home));
        }
        for node in nodes {
            let _ = std::fs::remove_file(node.pid_file());
        }
        Ok(running.into_iter().map(|(node, _)| node.name.clone()).collect())
    }
}

/// The wallet service's `/node/*` routes, served by [`Localnet`] and this program's binary.
pub struct ServiceDevnet {
    /// The `ezchain` binary the nodes run.
    pub binary: PathBuf,
}

fn devnet_error(e: LocalnetError) -> DevnetError {
    DevnetError(e.to_string())
}

impl LocalDevnet for ServiceDevnet {
    fn status(&self, root: &Path) -> Result<Option<Vec<NodeState>>, DevnetError> {
        let net = Localnet::new(root).map_err(devnet_error)?;
        if !net.exists() {
            return Ok(None);
        }
        let nodes = net.status().map_err(devnet_error)?;
        Ok(Some(nodes))
    }

    fn start(&self, root: &Path, layout: &DevnetLayout) -> Result<DevnetStarted, DevnetError> {
        let net = Localnet::new(root).map_err(devnet_error)?;
        let created = !net.exists();
        if created {
            net.init(
                layout.validators,
                layout.accounts,
                layout.start_port,
                layout.scrypt_log_n,
            )
            .map_err(devnet_error)?;
        }
        let started = net.start(&self.binary, Duration::from_secs(60)).map_err(devnet_error)?;
        let nodes = net.status().map_err(devnet_error)?;
        Ok(DevnetStarted {
            created,
            started,
            nodes,
        })
    }

    fn stop(&self, root: &Path) -> Result<Vec<String>, DevnetError> {
        let net = Localnet::new(root).map_err(devnet_error)?;
        if !net.exists() {
            return Ok(Vec::new());
        }
        net.stop(Duration::from_secs(20)).map_err(devnet_error)
    }
}

/// The last `lines` lines of the node's log (its own log, else its process output).
pub fn log_tail(home: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(home.join("logs").join("node.log"))
        .ok()
        .filter(|t| !t.trim().is_empty())
        .or_else(|| std::fs::read_to_string(home.join(PROCESS_LOG)).ok())
        .unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_nodes_validators_first_and_finds_no_process() {
        let dir = tempfile::tempdir().expect("temp dir");
        let net = Localnet::new(&dir.path().join("testnet")).expect("localnet");
        assert!(!net.exists());
        net.init(2, 2, 26500, 4).expect("init");
        assert!(net.exists());
        let nodes = net.nodes().expect("nodes");
        let names: Vec<&str> = nodes.iter().map(|n| n.name.as_str()).collect();
        assert_eq!(
            names,
            ["validator-0", "validator-1", "bootstrap", "account-0", "account-1"]
        );
        assert_eq!(nodes[3].rpc.port(), 26506, "account APIs follow the node ports");
        // Each account is funded at genesis with its own wallet.
        let genesis = ezchain_host::genesis_file::load_genesis(&net.genesis_file()).expect("genesis");
        for account in &nodes[3..] {
            let password = std::fs::read_to_string(account.home.join(PASSWORD_FILE)).expect("password");
            let key = ezchain_wallet::wallet_file::unlock(&account.home, &password).expect("unlock");
            assert_eq!(genesis.allocations_of(&key.address()).count(), 1);
        }
        assert_eq!(net.bootstrap_rpc().expect("bootstrap").port(), 26505);
        // A stale pid file (this test's own pid runs no node) is not a running node.
        let home = dir.path().join("testnet").join("validator-0");
        std::fs::write(home.join(PID_FILE), std::process::id().to_string()).expect("pid file");
        let states = net.status().expect("status");
        assert!(states.iter().all(|s| !s.alive && s.pid.is_none()));
        assert_eq!(net.stop(Duration::from_secs(1)).expect("stop"), Vec::<String>::new());
        assert!(!home.join(PID_FILE).exists(), "stop clears pid files");
    }
}
