//! The local testnet manager: one folder of node homes (written by `testnet init`), run as
//! detached `ezchain node run` processes, each with a pid file and a log file.
//!
//! Liveness is judged by the process (the pid answers signal 0 and, on Linux, its command line
//! names this node's home, so a reused pid is not mistaken for the node) and by the node's own
//! `/health`; a pid file alone proves nothing. Stopping is SIGTERM, a bounded wait, then SIGKILL.
//! The chain data stays in the homes, so a later start resumes the same chain.

use ezchain_node::config::{NodeConfig, NodeRole};
use ezchain_node::testnet::{GENESIS_FILE, TestnetError, TestnetOptions, init};
use serde::Serialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use thiserror::Error;

pub const PID_FILE: &str = "node.pid";
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

/// One node of the local testnet, as configured.
#[derive(Clone, Debug)]
pub struct NodeEntry {
    pub name: String,
    pub home: PathBuf,
    pub role: NodeRole,
    pub rpc: SocketAddr,
}

/// What `status` found for one node.
#[derive(Clone, Debug, Serialize)]
pub struct NodeState {
    pub name: String,
    pub role: NodeRole,
    pub rpc: SocketAddr,
    pub pid: Option<u32>,
    /// The process runs and answers `/health`.
    pub alive: bool,
    pub height: Option<u64>,
    pub peers: Option<u64>,
    pub ready: bool,
    /// Why it is not ready, as the node reports it.
    pub reasons: Vec<String>,
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

    /// Writes a testnet of `validators` validators plus a bootstrap node on loopback.
    pub fn init(&self, validators: usize, start_port: u16) -> Result<(), LocalnetError> {
        let genesis_time_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        init(&TestnetOptions {
            validators,
            out: self.root.clone(),
            chain_id: 821,
            start_port,
            host: std::net::Ipv4Addr::LOCALHOST.into(),
            allocations: Vec::new(),
            faucet_amount: 1_000_000_000,
            genesis_time_ms,
        })?;
        Ok(())
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
                role: config.role,
                rpc: config.rpc.listen_addr,
            });
        }
        nodes.sort_by_key(|node| (node.role == NodeRole::Bootstrap, node.name.clone()));
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
            .find(|node| node.role == NodeRole::Bootstrap)
            .map(|node| node.rpc)
            .ok_or_else(|| LocalnetError::Layout("the testnet has no bootstrap node".into()))
    }

    /// The pid of the node's process, if it runs.
    fn running_pid(&self, node: &NodeEntry) -> Option<u32> {
        let text = std::fs::read_to_string(node.home.join(PID_FILE)).ok()?;
        let pid: u32 = text.trim().parse().ok()?;
        process_is_node(pid, &node.home).then_some(pid)
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
            role: node.role,
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
    /// are ready. Returns false when every node was already running.
    pub fn start(&self, binary: &Path, ready_timeout: Duration) -> Result<bool, LocalnetError> {
        let nodes = self.nodes()?;
        let mut started = false;
        for node in &nodes {
            if self.running_pid(node).is_some() {
                continue;
            }
            let log_path = node.home.join(PROCESS_LOG);
            let log = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&log_path)
                .map_err(io(&log_path))?;
            let log_err = log.try_clone().map_err(io(&log_path))?;
            let mut command = Command::new(binary);
            command
                .args(["node", "run", "--home"])
                .arg(&node.home)
                .stdin(Stdio::null())
                .stdout(log)
                .stderr(log_err);
            // Its own process group: a Ctrl-C in the terminal that ran `node start` does not
            // reach the nodes.
            #[cfg(unix)]
            std::os::unix::process::CommandExt::process_group(&mut command, 0);
            let child = command.spawn().map_err(|source| LocalnetError::Spawn {
                name: node.name.clone(),
                source,
            })?;
            let pid_path = node.home.join(PID_FILE);
            std::fs::write(&pid_path, format!("{}\n", child.id())).map_err(io(&pid_path))?;
            started = true;
        }
        self.wait_ready(&nodes, ready_timeout)?;
        Ok(started)
    }

    fn wait_ready(&self, nodes: &[NodeEntry], timeout: Duration) -> Result<(), LocalnetError> {
        let started = Instant::now();
        loop {
            let states: Vec<NodeState> = nodes.iter().map(|node| self.node_state(node)).collect();
            let Some((node, state)) = nodes.iter().zip(&states).find(|(_, state)| !state.ready) else {
                return Ok(());
            };
            let crashed = state.pid.is_none();
            if crashed || started.elapsed() >= timeout {
                let reason = if crashed {
                    "its process exited".to_string()
                } else if !state.alive {
                    "it does not answer /health".to_string()
                } else {
                    state.reasons.join("; ")
                };
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
        let nodes = self.nodes()?;
        let mut running = Vec::new();
        for node in &nodes {
            if let Some(pid) = self.running_pid(node) {
                signal(pid, nix::sys::signal::Signal::SIGTERM);
                running.push((node, pid));
            }
        }
        let deadline = Instant::now() + timeout;
        for (node, pid) in &running {
            while process_is_node(*pid, &node.home) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(100));
            }
            if process_is_node(*pid, &node.home) {
                signal(*pid, nix::sys::signal::Signal::SIGKILL);
            }
        }
        for node in &nodes {
            let _ = std::fs::remove_file(node.home.join(PID_FILE));
        }
        Ok(running.into_iter().map(|(node, _)| node.name.clone()).collect())
    }
}

fn signal(pid: u32, signal: nix::sys::signal::Signal) {
    if let Ok(pid) = i32::try_from(pid) {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), signal);
    }
}

/// The process exists and (where /proc tells) runs this node's home.
fn process_is_node(pid: u32, home: &Path) -> bool {
    let Ok(raw) = i32::try_from(pid) else {
        return false;
    };
    if nix::sys::signal::kill(nix::unistd::Pid::from_raw(raw), None).is_err() {
        return false;
    }
    match std::fs::read(format!("/proc/{pid}/cmdline")) {
        Ok(cmdline) => {
            let text = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            // A zombie (exited, not yet reaped) is not running.
            let zombie = stat
                .rsplit(')')
                .next()
                .is_some_and(|rest| rest.trim_start().starts_with('Z'));
            !zombie && text.contains("node run") && text.contains(&*home.to_string_lossy())
        }
        Err(_) => true,
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
        net.init(2, 26500).expect("init");
        assert!(net.exists());
        let names: Vec<String> = net.nodes().expect("nodes").into_iter().map(|n| n.name).collect();
        assert_eq!(names, ["validator-0", "validator-1", "bootstrap"]);
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
