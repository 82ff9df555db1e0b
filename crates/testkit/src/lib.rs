//! A local testnet of real `ezchain node run` processes on loopback, for tests that cross
//! process boundaries. Every wait is bounded; every process is killed when the testnet drops.
//!
//! Invariant: a `LocalTestnet` owns its temp folder and its processes; nothing outlives it.

pub mod proxy;

use ezchain_devnet::launcher::{self, Attachment};
use ezchain_host::genesis_file::load_genesis;
use ezchain_node::testnet::GENESIS_FILE;
use ezchain_protocol::bundle::EnvelopeParams;
use ezchain_protocol::codec::{decode, encode};
use ezchain_protocol::finality::{CommitCertificate, verify_commit};
use ezchain_protocol::{
    Address, Block, BundleSidecar, Genesis, Hash32, OffChainTx, Receipt, SigningKey, Submission, ValueRange,
};
use ezchain_rpc::paths;
use ezchain_rpc::types::{
    BlockAnswer, Envelope, HeadersAnswer, ReceiptAnswer, StatusAnswer, SubmitAnswer, SubmitRequest,
};
use serde_json::Value;
use std::ffi::OsStr;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// A signed bundle of one transfer: `key` pays `[begin, end]` to `to` as its bundle `seq`.
pub fn payment(key: &SigningKey, chain_id: u64, seq: u64, to: Address, begin: u64, end: u64) -> Submission {
    let tx = OffChainTx {
        sender: key.address(),
        recipient: to,
        values: vec![ValueRange::new(begin, end).expect("valid range")],
        local_index: 0,
        tx_time: seq,
        extra_data: vec![],
    };
    let params = EnvelopeParams {
        chain_id,
        seq,
        expiry_height: 1_000_000,
        fee: 0,
        anti_spam_nonce: seq,
    };
    Submission::sign(
        key,
        BundleSidecar {
            sender: key.address(),
            txs: vec![tx],
        },
        &params,
    )
}

/// One node of the testnet.
pub struct NodeProcess {
    pub name: String,
    pub home: PathBuf,
    pub rpc: SocketAddr,
    child: Option<Child>,
}

/// What `/status` reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NodeStatus {
    pub height: u64,
    pub tip_hash: Hash32,
    pub mempool_size: u64,
}

pub struct LocalTestnet {
    dir: Option<tempfile::TempDir>,
    binary: PathBuf,
    pub genesis: Genesis,
    /// Validators first (`validator-0` …), the bootstrap node last.
    pub nodes: Vec<NodeProcess>,
    http: reqwest::blocking::Client,
}

impl LocalTestnet {
    /// Initializes a testnet with `validators` validators plus a bootstrap node and starts every
    /// node. Ports are taken from `start_port` upward (two per node).
    pub fn start(binary: &Path, validators: usize, start_port: u16) -> LocalTestnet {
        let dir = tempfile::tempdir().expect("temp dir");
        let out = dir.path().join("testnet");
        let init = Command::new(binary)
            .args([
                "testnet",
                "init",
                "--validators",
                &validators.to_string(),
                "--start-port",
                &start_port.to_string(),
                "--json",
            ])
            .arg("--out")
            .arg(&out)
            .output()
            .expect("run testnet init");
        assert!(
            init.status.success(),
            "testnet init failed: {}",
            String::from_utf8_lossy(&init.stderr)
        );
        let layout: Value = serde_json::from_slice(&init.stdout).expect("layout JSON");
        let nodes = layout["nodes"]
            .as_array()
            .expect("nodes")
            .iter()
            .map(|node| NodeProcess {
                name: node["name"].as_str().expect("name").to_string(),
                home: PathBuf::from(node["home"].as_str().expect("home")),
                rpc: node["rpc_addr"].as_str().expect("rpc").parse().expect("socket address"),
                child: None,
            })
            .collect();
        let genesis = load_genesis(&out.join(GENESIS_FILE)).expect("genesis");
        let http = reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(5))
            .build()
            .expect("http client");
        let mut testnet = LocalTestnet {
            dir: Some(dir),
            binary: binary.to_path_buf(),
            genesis,
            nodes,
            http,
        };
        for index in 0..testnet.nodes.len() {
            testnet.start_node(index);
        }
        testnet
    }

    /// A testnet whose nodes run elsewhere (in containers, say), seen through their RPC
    /// addresses: the RPC helpers apply, starting and killing do not. `nodes` are
    /// (name, home, rpc address), validators first.
    pub fn observe(binary: &Path, genesis: Genesis, nodes: Vec<(String, PathBuf, SocketAddr)>) -> LocalTestnet {
        let http = reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(5))
            .build()
            .expect("http client");
        LocalTestnet {
            dir: None,
            binary: binary.to_path_buf(),
            genesis,
            nodes: nodes
                .into_iter()
                .map(|(name, home, rpc)| NodeProcess {
                    name,
                    home,
                    rpc,
                    child: None,
                })
                .collect(),
            http,
        }
    }

    /// Every node has the same block hash at each height up to `upto`, and every certificate
    /// passes the light client.
    pub fn assert_agreement(&self, upto: u64) {
        for height in 1..=upto {
            let (reference, certificate) = self.block(0, height).unwrap_or_else(|e| panic!("{e}"));
            verify_commit(&self.genesis, &reference.header, &certificate).expect("certificate passes the light client");
            for index in 1..self.nodes.len() {
                let (block, _) = self.block(index, height).unwrap_or_else(|e| panic!("{e}"));
                assert_eq!(
                    block.hash(),
                    reference.hash(),
                    "{} disagrees at height {height}",
                    self.nodes[index].name
                );
            }
        }
    }

    pub fn bootstrap_index(&self) -> usize {
        self.nodes
            .iter()
            .position(|node| node.name == "bootstrap")
            .unwrap_or(self.nodes.len() - 1)
    }

    /// Starts (or restarts) node `index`; its output goes to `<home>/process.log`.
    pub fn start_node(&mut self, index: usize) {
        let node = &mut self.nodes[index];
        assert!(node.child.is_none(), "{} is already running", node.name);
        let child = launcher::spawn(
            &self.binary,
            [
                OsStr::new("node"),
                OsStr::new("run"),
                OsStr::new("--home"),
                node.home.as_os_str(),
            ],
            &node.home.join("process.log"),
            Attachment::Child,
        )
        .expect("spawn node");
        node.child = Some(child);
    }

    /// SIGKILL: the node gets no chance to clean up.
    /// Takes a node home made outside `testnet init` (a copy of another, say) into this
    /// testnet: it is started with [`LocalTestnet::start_node`] and killed with the rest.
    pub fn adopt(&mut self, name: &str, home: PathBuf, rpc: SocketAddr) -> usize {
        self.nodes.push(NodeProcess {
            name: name.to_string(),
            home,
            rpc,
            child: None,
        });
        self.nodes.len() - 1
    }

    /// Runs `ezchain node run` on `index`'s home once more, beside whatever runs there, and
    /// returns how it ended (for a second process on one home).
    pub fn run_again(&self, index: usize) -> std::process::Output {
        Command::new(&self.binary)
            .args(["node", "run", "--home"])
            .arg(&self.nodes[index].home)
            .stdin(Stdio::null())
            .output()
            .expect("run ezchain")
    }

    pub fn kill(&mut self, index: usize) {
        if let Some(mut child) = self.nodes[index].child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM, then waits up to 20 s for the process to exit by itself.
    pub fn terminate(&mut self, index: usize) -> Option<ExitStatus> {
        let mut child = self.nodes[index].child.take()?;
        launcher::stop_child(&mut child, Duration::from_secs(20))
    }

    /// GETs `path` from node `index`: (status, JSON body).
    fn get(&self, index: usize, path: &str) -> Option<(u16, Value)> {
        self.get_or_reason(index, path).ok()
    }

    /// GETs `path` from node `index`: (status, JSON body), or what went wrong. Two retries on a
    /// transport error: a pooled connection the node has closed meanwhile, or a node on a loaded
    /// machine that did not answer in time.
    fn get_or_reason(&self, index: usize, path: &str) -> Result<(u16, Value), String> {
        let url = format!("http://{}{}", self.nodes[index].rpc, path);
        let attempt = || {
            let response = self.http.get(&url).send().map_err(|e| format!("GET {url}: {e}"))?;
            let status = response.status().as_u16();
            let body = response
                .json()
                .map_err(|e| format!("GET {url}: {status} with a body that is not JSON: {e}"))?;
            Ok((status, body))
        };
        attempt().or_else(|_| attempt()).or_else(|_| {
            std::thread::sleep(Duration::from_millis(500));
            attempt()
        })
    }

    /// POSTs raw bytes with a content type; returns (status, JSON body).
    /// One retry on a transport error: a server that refuses an oversized body closes that
    /// connection, and the pooled client may try to reuse it for the next request.
    pub fn post_raw(&self, index: usize, path: &str, content_type: &str, body: Vec<u8>) -> Option<(u16, Value)> {
        let url = format!("http://{}{}", self.nodes[index].rpc, path);
        let attempt = || {
            let response = self
                .http
                .post(&url)
                .header("content-type", content_type)
                .body(body.clone())
                .send()
                .ok()?;
            let status = response.status().as_u16();
            Some((status, response.json().ok()?))
        };
        attempt().or_else(|| {
            std::thread::sleep(Duration::from_millis(100));
            attempt()
        })
    }

    pub fn status(&self, index: usize) -> Option<NodeStatus> {
        let (_, body) = self.get(index, paths::STATUS)?;
        let answer: Envelope<StatusAnswer> = serde_json::from_value(body).ok()?;
        let status = answer.into_result().ok()?;
        Some(NodeStatus {
            height: status.height,
            tip_hash: status.tip_hash,
            mempool_size: status.mempool_size,
        })
    }

    /// Waits until `/readyz` on node `index` answers 200; returns the last reply otherwise.
    pub fn wait_until_ready(&self, index: usize, timeout: Duration) -> Result<(), String> {
        let deadline = Instant::now() + timeout;
        let mut last = None;
        while Instant::now() < deadline {
            match self.get(index, paths::READYZ) {
                Some((200, _)) => return Ok(()),
                other => last = other,
            }
            std::thread::sleep(Duration::from_millis(250));
        }
        Err(format!(
            "{} not ready within {timeout:?}: {last:?}",
            self.nodes[index].name
        ))
    }

    /// The Prometheus text of node `index`.
    pub fn metrics(&self, index: usize) -> Option<String> {
        let url = format!("http://{}{}", self.nodes[index].rpc, paths::METRICS);
        self.http.get(url).send().ok()?.text().ok()
    }

    /// Waits until node `index` reports at least `height`; returns the height seen.
    pub fn wait_for_height(&self, index: usize, height: u64, timeout: Duration) -> Result<u64, String> {
        let deadline = Instant::now() + timeout;
        let mut last = None;
        while Instant::now() < deadline {
            if let Some(status) = self.status(index) {
                last = Some(status.height);
                if status.height >= height {
                    return Ok(status.height);
                }
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        Err(format!(
            "{} did not reach height {height} in {timeout:?} (last seen {last:?})",
            self.nodes[index].name
        ))
    }

    /// Submits a bundle to node `index`: Ok(status word) or Err((HTTP status, error code)).
    pub fn submit(&self, index: usize, submission: &Submission) -> Result<String, (u16, String)> {
        let body = serde_json::json!(SubmitRequest {
            submission: hex::encode(encode(submission)),
        });
        let (code, reply) = self
            .post_raw(index, paths::SUBMIT, "application/json", body.to_string().into_bytes())
            .ok_or((0, "unreachable".to_string()))?;
        let answer: Envelope<SubmitAnswer> =
            serde_json::from_value(reply).map_err(|e| (code, format!("unreadable answer: {e}")))?;
        match answer.into_result() {
            Ok(submitted) => Ok(submitted.status.as_str().to_string()),
            Err(refusal) => Err((code, refusal.code)),
        }
    }

    pub fn receipt(&self, index: usize, owner: &Address, seq: u64) -> Option<Receipt> {
        let (_, body) = self.get(index, &paths::receipt(owner, seq))?;
        let answer: Envelope<ReceiptAnswer> = serde_json::from_value(body).ok()?;
        decode(&hex::decode(answer.into_result().ok()?.receipt).ok()?, 1 << 20).ok()
    }

    /// Waits for a receipt on node `index`.
    pub fn wait_for_receipt(
        &self,
        index: usize,
        owner: &Address,
        seq: u64,
        timeout: Duration,
    ) -> Result<Receipt, String> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Some(receipt) = self.receipt(index, owner, seq) {
                return Ok(receipt);
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        Err(format!(
            "no receipt for {owner} seq {seq} on {} within {timeout:?}",
            self.nodes[index].name
        ))
    }

    pub fn block(&self, index: usize, height: u64) -> Result<(Block, CommitCertificate), String> {
        let (code, body) = self.get_or_reason(index, &paths::block(height))?;
        let answer = serde_json::from_value::<Envelope<BlockAnswer>>(body.clone())
            .ok()
            .and_then(|answer| answer.into_result().ok());
        let decoded = answer.and_then(|answer| {
            let block = decode(&hex::decode(&answer.block).ok()?, 64 << 20).ok()?;
            let certificate = decode(&hex::decode(&answer.certificate).ok()?, 1 << 20).ok()?;
            Some((block, certificate))
        });
        decoded.ok_or_else(|| format!("{}: block {height}: {code} {body}", self.nodes[index].name))
    }

    /// Finalized headers with certificates from node `index`, `from..=to`.
    pub fn headers(
        &self,
        index: usize,
        from: u64,
        to: u64,
    ) -> Option<Vec<(ezchain_protocol::BlockHeader, CommitCertificate)>> {
        let (_, body) = self.get(index, &paths::headers(from, Some(to)))?;
        let answer: Envelope<HeadersAnswer> = serde_json::from_value(body).ok()?;
        answer
            .into_result()
            .ok()?
            .headers
            .iter()
            .map(|item| {
                let header = decode(&hex::decode(&item.header).ok()?, 1 << 16).ok()?;
                let certificate = decode(&hex::decode(&item.certificate).ok()?, 1 << 20).ok()?;
                Some((header, certificate))
            })
            .collect()
    }

    /// Opens `/v1/subscribe` on node `index` for `addresses`; events arrive on the returned
    /// channel as (event name, JSON data). The reader thread ends with the connection.
    pub fn subscribe(&self, index: usize, addresses: &[Address]) -> std::sync::mpsc::Receiver<(String, Value)> {
        use std::io::BufRead;
        let url = format!("http://{}{}", self.nodes[index].rpc, paths::subscribe(addresses));
        let (sender, receiver) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let client = reqwest::blocking::Client::builder()
                .timeout(Duration::from_secs(300))
                .build()
                .expect("client");
            let Ok(response) = client.get(url).send() else { return };
            let mut event = String::new();
            for line in std::io::BufReader::new(response).lines() {
                let Ok(line) = line else { return };
                if let Some(name) = line.strip_prefix("event:") {
                    event = name.trim().to_string();
                } else if let Some(data) = line.strip_prefix("data:") {
                    let value = serde_json::from_str(data.trim()).unwrap_or(Value::Null);
                    if sender.send((event.clone(), value)).is_err() {
                        return;
                    }
                }
            }
        });
        receiver
    }

    /// The genesis-funded faucet key from the bootstrap home.
    pub fn faucet_key(&self) -> SigningKey {
        let home = &self.nodes[self.bootstrap_index()].home;
        let config = ezchain_node::config::NodeConfig::load(home).expect("bootstrap node.yaml");
        let source = config.faucet_key(home).expect("the bootstrap node has a faucet");
        ezchain_wallet::faucet::load_faucet_key(&source).expect("faucet key")
    }

    /// The folder holding `genesis.json` and the node homes.
    pub fn dir(&self) -> PathBuf {
        self.nodes[0].home.parent().map(Path::to_path_buf).unwrap_or_default()
    }

    /// A wallet driven through the `ezchain` CLI, talking to the bootstrap node, with its own
    /// data folder under this testnet's temp folder.
    pub fn cli_wallet(&self, name: &str) -> CliWallet {
        let dir = self.dir().join(format!("wallet-{name}"));
        std::fs::create_dir_all(&dir).expect("wallet folder");
        let config = dir.join("ezchain.yaml");
        let text = format!(
            "network:\n  bootstrap_nodes: [\"{}\"]\n  genesis_file: {}\napp:\n  data_dir: data\nwallet:\n  scrypt_log_n: 4\n",
            self.nodes[self.bootstrap_index()].rpc,
            self.dir().join(GENESIS_FILE).display()
        );
        std::fs::write(&config, text).expect("wallet config");
        CliWallet {
            binary: self.binary.clone(),
            config,
            data_dir: dir.join("data"),
        }
    }

    /// A folder `<name>` under this testnet's temp folder with an `ezchain.yaml` for a wallet
    /// service (`ezchain serve`) on `port` whose only node is `node`; returns the config's path.
    pub fn service_config(&self, name: &str, node: &str, port: u16) -> PathBuf {
        let dir = self.dir().join(name);
        std::fs::create_dir_all(&dir).expect("service folder");
        let config = dir.join("ezchain.yaml");
        let text = format!(
            "network:\n  bootstrap_nodes: [\"{node}\"]\n  genesis_file: {}\napp:\n  data_dir: data\n  log_dir: data/logs\n  api_token_file: data/api.token\n  api_port: {port}\nwallet:\n  scrypt_log_n: 4\n",
            self.dir().join(GENESIS_FILE).display()
        );
        std::fs::write(&config, text).expect("service config");
        config
    }

    /// The combined log of node `index` so far.
    pub fn log(&self, index: usize) -> String {
        std::fs::read_to_string(self.nodes[index].home.join("process.log")).unwrap_or_default()
    }
}

impl Drop for LocalTestnet {
    fn drop(&mut self) {
        for index in 0..self.nodes.len() {
            self.kill(index);
        }
        // EZCHAIN_TESTKIT_KEEP=1 keeps the homes and logs for a look after a failure.
        if std::env::var_os("EZCHAIN_TESTKIT_KEEP").is_some()
            && let Some(dir) = self.dir.take()
        {
            eprintln!("testnet kept at {}", dir.keep().display());
        }
    }
}

/// Waits up to `timeout` for a child to exit, else kills it (the launcher's, for tests).
pub use ezchain_devnet::launcher::wait_or_kill;

/// One wallet's `ezchain --config … wallet|tx …` commands, run as real processes.
pub struct CliWallet {
    binary: PathBuf,
    pub config: PathBuf,
    pub data_dir: PathBuf,
}

impl CliWallet {
    pub fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(&self.binary);
        command.arg("--config").arg(&self.config).arg("--json").args(args);
        command.stdin(Stdio::null());
        command
    }

    /// Runs a command to completion: its JSON output, or `(error code, stderr)`.
    pub fn run(&self, args: &[&str]) -> Result<Value, (String, String)> {
        let output = self.command(args).output().expect("run ezchain");
        let stderr = String::from_utf8_lossy(&output.stderr).to_string();
        if output.status.success() {
            serde_json::from_slice(&output.stdout).map_err(|e| ("bad_json".to_string(), format!("{e}: {stderr}")))
        } else {
            let code = stderr
                .split("error[")
                .nth(1)
                .and_then(|rest| rest.split(']').next())
                .unwrap_or("unknown")
                .to_string();
            Err((code, stderr))
        }
    }

    /// Like `run`, panicking with the error on failure.
    pub fn ok(&self, args: &[&str]) -> Value {
        self.run(args)
            .unwrap_or_else(|(code, stderr)| panic!("ezchain {args:?} failed with {code}: {stderr}"))
    }

    /// The wallet's history export.
    pub fn history_file(&self) -> Value {
        std::fs::read_to_string(self.data_dir.join("tx_history.json"))
            .ok()
            .and_then(|text| serde_json::from_str(&text).ok())
            .unwrap_or(Value::Array(Vec::new()))
    }
}
