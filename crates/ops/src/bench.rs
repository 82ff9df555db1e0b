//! `ezchain bench`: throughput and latency of a local testnet of real node processes.
//!
//! Set-up: a fresh testnet whose genesis funds `accounts` bench accounts (keys derived from
//! their index, so nothing secret is involved), started with [`Localnet`]. Load: every account's
//! bundles (`bundle_txs` one-unit transfers each, to other bench accounts) are signed and
//! serialized before the clock starts; worker threads submit them round-robin to the
//! validators over persistent HTTP connections, at most one pending bundle per account (the
//! protocol's rule), optionally capped at `rate` bundles/s. A tracker polls the chain tip and
//! reads every new block: a bundle's latency is submit → the block that holds it seen final
//! (polling adds up to 25 ms). Afterwards a sample of committed transfers is turned into real
//! transfer packages and verified as their recipients would, which times verification and
//! checks the run's blocks at once.
//!
//! `sequential` is the other workload: real wallets (the wallet crate, in this process) paying
//! each other one payment at a time, each timed from the send to the payee's verified receipt.

use ezchain_devnet::localnet::{Localnet, LocalnetError, PID_FILE};
use ezchain_host::genesis_file::load_genesis;
use ezchain_node::testnet::{TestnetOptions, init};
use ezchain_protocol::bundle::EnvelopeParams;
use ezchain_protocol::codec::{decode, encode};
use ezchain_protocol::hash::keccak256;
use ezchain_protocol::witness::{GenesisAnchor, NoCheckpoints, Verifier};
use ezchain_protocol::{
    Address, Block, BundleSidecar, ConfirmedBundleUnit, Genesis, HeaderLite, OffChainTx, Receipt, SigningKey,
    Submission, TransferPackage, ValueRange, WitnessAnchor, WitnessV2,
};
use ezchain_rpc::paths;
use ezchain_rpc::types::{
    BlockAnswer, Envelope, MAX_BATCH_SUBMISSIONS, ReceiptAnswer, StatusAnswer, SubmitBatchAnswer, SubmitBatchRequest,
    SubmitRequest,
};
use serde::Serialize;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};
use thiserror::Error;

/// Units each bench account owns at genesis.
const ACCOUNT_UNITS: u64 = 1_000_000;
/// How often the tracker asks for the tip.
const POLL: Duration = Duration::from_millis(25);
/// Transfers verified as a recipient would after the run, at most.
const VERIFY_SAMPLE: usize = 100;

#[derive(Clone, Debug)]
pub struct BenchOptions {
    pub validators: usize,
    pub accounts: usize,
    pub duration: Duration,
    pub bundle_txs: usize,
    /// Bundles per second to offer; `None` = as fast as the accounts are free.
    pub rate: Option<f64>,
    pub start_port: u16,
    /// Where the testnet is written (must not exist or be empty).
    pub dir: PathBuf,
    /// SIGKILL the last validator this far into the run.
    pub kill_one_at: Option<Duration>,
    /// Submitting threads.
    pub workers: usize,
    /// Bundles per request: 1 posts each to `/v1/submit`; more posts up to that many free
    /// accounts' bundles together to `/v1/submit/batch`.
    pub batch: usize,
    /// Drive a testnet that already runs instead of starting one.
    pub existing: Option<ExistingTestnet>,
}

/// A running testnet whose genesis funds the bench accounts (see [`allocations`]).
#[derive(Clone, Debug)]
pub struct ExistingTestnet {
    /// Validators' RPC addresses; the first one is also watched for blocks.
    pub endpoints: Vec<SocketAddr>,
    pub genesis_file: PathBuf,
}

/// Units between the first units of consecutive bundles of one account: runs with different
/// `bundle_txs` against one testnet never pay the same unit twice.
const UNIT_STRIDE: u64 = 64;

/// The genesis allocations a testnet needs for `accounts` bench accounts, as
/// `testnet init --alloc ADDRESS=AMOUNT` arguments.
pub fn allocations(accounts: usize) -> Vec<(Address, u64)> {
    (0..accounts).map(|i| (bench_key(i).address(), ACCOUNT_UNITS)).collect()
}

#[derive(Debug, Error)]
pub enum BenchError {
    #[error(transparent)]
    Localnet(#[from] LocalnetError),
    #[error("{0}")]
    Setup(String),
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct Percentiles {
    pub p50: f64,
    pub p95: f64,
    pub p99: f64,
    pub max: f64,
    pub count: usize,
}

pub(crate) fn percentiles(mut values: Vec<f64>) -> Percentiles {
    if values.is_empty() {
        return Percentiles::default();
    }
    values.sort_by(f64::total_cmp);
    let at = |q: f64| values[((values.len() - 1) as f64 * q).round() as usize];
    Percentiles {
        p50: at(0.5),
        p95: at(0.95),
        p99: at(0.99),
        max: at(1.0),
        count: values.len(),
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct NodeUsage {
    pub name: String,
    pub cpu_seconds: Option<f64>,
    pub peak_rss_mib: Option<f64>,
    pub disk_mib: f64,
}

/// One second of the run.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Second {
    pub second: u64,
    pub bundles_committed: u64,
    pub latency_p50_ms: f64,
}

#[derive(Clone, Debug, Serialize)]
pub struct BenchReport {
    pub validators: usize,
    pub accounts: usize,
    pub bundle_txs: usize,
    pub target_rate: Option<f64>,
    pub duration_s: f64,
    pub submitted_bundles: u64,
    pub committed_bundles: u64,
    pub committed_bundles_per_s: f64,
    pub transfers_per_s: f64,
    pub blocks: u64,
    pub finality_latency_ms: Percentiles,
    pub rejected_by_code: BTreeMap<String, u64>,
    pub verification_ms: Percentiles,
    pub verification_failures: usize,
    pub nodes: Vec<NodeUsage>,
    pub timeline: Vec<Second>,
    pub killed_validator_at_s: Option<f64>,
}

pub(crate) fn bench_key(index: usize) -> SigningKey {
    let mut attempt = 0u32;
    loop {
        let seed = keccak256(format!("ezchain-bench-account-{index}-{attempt}").as_bytes());
        if let Ok(key) = SigningKey::from_bytes(&seed) {
            return key;
        }
        attempt += 1;
    }
}

struct Account {
    key: SigningKey,
    /// Its genesis allocation.
    range: ValueRange,
    /// The last seq committed before this run.
    first_seq: u64,
    /// Signed submissions (hex of their borsh) by seq − first_seq − 1.
    bodies: Vec<Arc<String>>,
}

/// State shared by the submitters and the tracker.
struct Shared {
    ready: Mutex<VecDeque<usize>>,
    wake: Condvar,
    /// (account, seq) → submit time.
    submitted: Mutex<HashMap<(usize, u64), Instant>>,
    next_seq: Mutex<Vec<u64>>,
    rejected: Mutex<BTreeMap<String, u64>>,
    stop: AtomicBool,
}

pub fn run(binary: &Path, options: &BenchOptions, mut progress: impl FnMut(&str)) -> Result<BenchReport, BenchError> {
    if options.accounts < 2 || options.bundle_txs == 0 || options.validators == 0 {
        return Err(BenchError::Setup(
            "need at least 2 accounts, 1 validator and 1 transfer per bundle".into(),
        ));
    }
    if options.bundle_txs as u64 > UNIT_STRIDE {
        return Err(BenchError::Setup(format!("at most {UNIT_STRIDE} transfers per bundle")));
    }
    let keys: Vec<SigningKey> = (0..options.accounts).map(bench_key).collect();
    let http = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(10))
        .pool_max_idle_per_host(options.workers.max(1) * 2)
        .build()
        .map_err(|e| BenchError::Setup(e.to_string()))?;
    let max_seq = (options.duration.as_secs() + 30).max(10);
    let by_address: HashMap<Address, usize> = keys.iter().enumerate().map(|(i, k)| (k.address(), i)).collect();

    if let Some(existing) = &options.existing {
        let genesis = load_genesis(&existing.genesis_file).map_err(|e| BenchError::Setup(e.to_string()))?;
        let tracker = *existing
            .endpoints
            .first()
            .ok_or_else(|| BenchError::Setup("--endpoints is empty".into()))?;
        progress("finding where each account's history ends");
        let first_seqs = keys
            .iter()
            .map(|key| last_committed_seq(&http, tracker, &key.address()))
            .collect::<Vec<_>>();
        let accounts = sign_all(&genesis, &keys, &first_seqs, max_seq, options.bundle_txs)?;
        let mut report = drive(
            None,
            &http,
            options,
            &accounts,
            &by_address,
            &existing.endpoints,
            tracker,
            &genesis,
            &mut progress,
        )?;
        report.validators = existing.endpoints.len();
        return Ok(report);
    }

    let (layout, genesis) = write_testnet(options, 822, allocations(options.accounts))?;
    let validators: Vec<SocketAddr> = layout
        .nodes
        .iter()
        .filter(|n| n.role == ezchain_node::config::NodeRole::Validator)
        .map(|n| n.rpc_addr)
        .collect();
    let bootstrap = layout
        .nodes
        .iter()
        .find(|n| n.role == ezchain_node::config::NodeRole::Bootstrap)
        .map(|n| n.rpc_addr)
        .ok_or_else(|| BenchError::Setup("no bootstrap node".into()))?;

    // Sign everything before the clock starts: at most one bundle per account per block.
    progress(&format!(
        "signing {} bundles of {} transfers for {} accounts",
        max_seq * options.accounts as u64,
        options.bundle_txs,
        options.accounts
    ));
    let accounts = sign_all(&genesis, &keys, &vec![0; keys.len()], max_seq, options.bundle_txs)?;

    let (net, _stop_testnet) = start_testnet(binary, options, &mut progress)?;
    let result = drive(
        Some(&net),
        &http,
        options,
        &accounts,
        &by_address,
        &validators,
        bootstrap,
        &genesis,
        &mut progress,
    );
    let nodes = usage(&net);
    net.stop(Duration::from_secs(20))?;
    let mut report = result?;
    report.nodes = nodes;
    Ok(report)
}

/// Writes the bench's own testnet under `options.dir`: its validators, a bootstrap node, and
/// `allocations` at genesis.
fn write_testnet(
    options: &BenchOptions,
    chain_id: u64,
    allocations: Vec<(Address, u64)>,
) -> Result<(ezchain_node::testnet::TestnetLayout, Genesis), BenchError> {
    let genesis_time_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    let layout = init(&TestnetOptions {
        validators: options.validators,
        out: options.dir.clone(),
        chain_id,
        start_port: options.start_port,
        host: std::net::Ipv4Addr::LOCALHOST.into(),
        allocations,
        faucet_amount: 1_000,
        genesis_time_ms,
        placement: Default::default(),
        compose: None,
    })
    .map_err(|e| BenchError::Setup(e.to_string()))?;
    let genesis = load_genesis(&layout.genesis_file).map_err(|e| BenchError::Setup(e.to_string()))?;
    Ok((layout, genesis))
}

/// Starts the testnet written under `options.dir`; it is stopped however the bench ends (an
/// error, a panic, or Ctrl-C/SIGTERM of this process) when the guard goes.
fn start_testnet(
    binary: &Path,
    options: &BenchOptions,
    progress: &mut impl FnMut(&str),
) -> Result<(Localnet, ezchain_devnet::cleanup::Cleanup), BenchError> {
    let net = Localnet::new(&options.dir)?;
    let guard = {
        let root = options.dir.clone();
        ezchain_devnet::cleanup::on_exit(move || {
            if let Ok(net) = Localnet::new(&root) {
                let _ = net.stop(Duration::from_secs(20));
            }
        })
    };
    progress("starting the testnet");
    net.start(binary, Duration::from_secs(120))?;
    Ok((net, guard))
}

/// What `ezchain bench --sequential N` measured: payments made one after another between real
/// wallets, each timed from the payer's send to the payee's verified receipt of it.
#[derive(Clone, Debug, Serialize)]
pub struct SequentialReport {
    pub validators: usize,
    pub wallets: usize,
    pub payments: usize,
    pub duration_s: f64,
    pub payments_per_s: f64,
    /// Send start → the payee's wallet accepted the verified value.
    pub latency_ms: Percentiles,
    /// Send start → the payer's send returned delivered.
    pub send_ms: Percentiles,
    pub nodes: Vec<NodeUsage>,
}

/// Wallets of the sequential scenario: bench accounts 0.. in a ring, each paying the next.
const SEQUENTIAL_WALLETS: usize = 8;
/// How long one payment may take before the run fails.
const PAYMENT_WAIT: Duration = Duration::from_secs(30);

/// A fresh testnet with `SEQUENTIAL_WALLETS` funded wallets; `payments` payments of one unit
/// around the ring, strictly one after another (the workload the original Python implementation
/// was measured on: docs/BENCHMARKS.md).
pub fn sequential(
    binary: &Path,
    options: &BenchOptions,
    payments: usize,
    mut progress: impl FnMut(&str),
) -> Result<SequentialReport, BenchError> {
    use ezchain_wallet::{NodeClient, Wallet, WalletOptions};
    if payments == 0 || options.validators == 0 {
        return Err(BenchError::Setup("need at least 1 payment and 1 validator".into()));
    }
    let (layout, genesis) = write_testnet(options, 823, allocations(SEQUENTIAL_WALLETS))?;
    // As a user's wallet is configured: the bootstrap node only.
    let nodes: Vec<String> = layout
        .nodes
        .iter()
        .filter(|n| n.role == ezchain_node::config::NodeRole::Bootstrap)
        .map(|n| n.rpc_addr.to_string())
        .collect();
    let (net, _stop_testnet) = start_testnet(binary, options, &mut progress)?;
    let setup = |e: &dyn std::fmt::Display| BenchError::Setup(e.to_string());
    let mut wallets = (0..SEQUENTIAL_WALLETS)
        .map(|index| {
            let key = bench_key(index);
            let client = NodeClient::new(&nodes, Duration::from_secs(10)).map_err(|e| setup(&e))?;
            Wallet::open(
                &options.dir.join(format!("wallet-{index}")),
                key.address(),
                Some(key),
                genesis.clone(),
                client,
                WalletOptions::default(),
            )
            .map_err(|e| setup(&e))
        })
        .collect::<Result<Vec<_>, _>>()?;
    progress(&format!(
        "{payments} payments around {SEQUENTIAL_WALLETS} wallets, one after another"
    ));
    let started = Instant::now();
    let (mut latencies, mut sends) = (Vec::with_capacity(payments), Vec::with_capacity(payments));
    for payment in 0..payments {
        let (payer, payee) = (payment % SEQUENTIAL_WALLETS, (payment + 1) % SEQUENTIAL_WALLETS);
        let to = wallets[payee].address();
        let begun = Instant::now();
        let outcome = wallets[payer]
            .send(to, 1, None, PAYMENT_WAIT)
            .map_err(|e| BenchError::Setup(format!("payment {payment}: {e}")))?;
        if outcome.record.status != ezchain_wallet::history::TxStatus::Delivered {
            return Err(BenchError::Setup(format!(
                "payment {payment} is {:?} after {} s",
                outcome.record.status,
                PAYMENT_WAIT.as_secs()
            )));
        }
        sends.push(begun.elapsed().as_secs_f64() * 1000.0);
        loop {
            let report = wallets[payee]
                .receive()
                .map_err(|e| BenchError::Setup(format!("payment {payment}: receive: {e}")))?;
            if !report.rejected.is_empty() {
                return Err(BenchError::Setup(format!(
                    "payment {payment} was rejected: {:?}",
                    report.rejected[0].reason
                )));
            }
            if !report.accepted.is_empty() {
                break;
            }
            if begun.elapsed() > PAYMENT_WAIT {
                return Err(BenchError::Setup(format!("payment {payment} never reached its payee")));
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        latencies.push(begun.elapsed().as_secs_f64() * 1000.0);
        if (payment + 1) % 10 == 0 {
            progress(&format!(
                "{} payments, {:.1} s",
                payment + 1,
                started.elapsed().as_secs_f64()
            ));
        }
    }
    let duration_s = started.elapsed().as_secs_f64();
    let usage = usage(&net);
    drop(wallets.drain(..));
    net.stop(Duration::from_secs(20))?;
    Ok(SequentialReport {
        validators: options.validators,
        wallets: SEQUENTIAL_WALLETS,
        payments,
        duration_s,
        payments_per_s: payments as f64 / duration_s,
        latency_ms: percentiles(latencies),
        send_ms: percentiles(sends),
        nodes: usage,
    })
}

/// The highest seq with a receipt (0 if none): doubling, then bisection.
fn last_committed_seq(http: &reqwest::blocking::Client, node: SocketAddr, owner: &Address) -> u64 {
    let exists = |seq: u64| fetch_receipt(http, node, owner, seq).is_some();
    if !exists(1) {
        return 0;
    }
    let (mut low, mut high) = (1u64, 2u64);
    while exists(high) {
        low = high;
        high *= 2;
    }
    while high - low > 1 {
        let mid = low + (high - low) / 2;
        if exists(mid) {
            low = mid;
        } else {
            high = mid;
        }
    }
    low
}

fn sign_all(
    genesis: &Genesis,
    keys: &[SigningKey],
    first_seqs: &[u64],
    max_seq: u64,
    bundle_txs: usize,
) -> Result<Vec<Account>, BenchError> {
    let count = keys.len();
    keys.iter()
        .enumerate()
        .map(|(index, key)| {
            let range = genesis
                .allocations_of(&key.address())
                .next()
                .map(|a| a.range)
                .ok_or_else(|| {
                    BenchError::Setup(format!(
                        "bench account {index} ({}) has no genesis allocation: init the testnet with the \
                         --alloc arguments of `ezchain bench --print-alloc --accounts {count}`",
                        key.address()
                    ))
                })?;
            let first_seq = first_seqs[index];
            let mut bodies = Vec::with_capacity(max_seq as usize);
            for seq in first_seq + 1..=first_seq + max_seq {
                let txs = (0..bundle_txs)
                    .map(|t| {
                        let unit = range.begin() + (seq - 1) * UNIT_STRIDE + t as u64;
                        let value = ValueRange::new(unit, unit).map_err(|e| BenchError::Setup(e.to_string()))?;
                        if unit > range.end() {
                            return Err(BenchError::Setup("a bench account ran out of units".into()));
                        }
                        Ok(OffChainTx {
                            sender: key.address(),
                            recipient: keys[(index + 1 + t) % count].address(),
                            values: vec![value],
                            local_index: t as u32,
                            tx_time: seq,
                            extra_data: Vec::new(),
                        })
                    })
                    .collect::<Result<Vec<_>, BenchError>>()?;
                let params = EnvelopeParams {
                    chain_id: genesis.chain_id,
                    seq,
                    expiry_height: u64::MAX / 2,
                    fee: 0,
                    anti_spam_nonce: seq,
                };
                let submission = Submission::sign(
                    key,
                    BundleSidecar {
                        sender: key.address(),
                        txs,
                    },
                    &params,
                );
                bodies.push(Arc::new(hex::encode(encode(&submission))));
            }
            Ok(Account {
                key: key.clone(),
                range,
                first_seq,
                bodies,
            })
        })
        .collect()
}

#[allow(clippy::too_many_arguments)]
fn drive(
    net: Option<&Localnet>,
    http: &reqwest::blocking::Client,
    options: &BenchOptions,
    accounts: &[Account],
    by_address: &HashMap<Address, usize>,
    validators: &[SocketAddr],
    bootstrap: SocketAddr,
    genesis: &Genesis,
    progress: &mut impl FnMut(&str),
) -> Result<BenchReport, BenchError> {
    let shared = Arc::new(Shared {
        ready: Mutex::new((0..accounts.len()).collect()),
        wake: Condvar::new(),
        submitted: Mutex::new(HashMap::new()),
        next_seq: Mutex::new(accounts.iter().map(|a| a.first_seq + 1).collect()),
        rejected: Mutex::new(BTreeMap::new()),
        stop: AtomicBool::new(false),
    });
    let bodies: Arc<Vec<(u64, Vec<Arc<String>>)>> =
        Arc::new(accounts.iter().map(|a| (a.first_seq, a.bodies.clone())).collect());
    let start_height = tip(http, bootstrap).unwrap_or(0);
    let started = Instant::now();
    let submitted_total = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let workers: Vec<_> = (0..options.workers.max(1))
        .map(|worker| {
            let shared = shared.clone();
            let bodies = bodies.clone();
            let http = http.clone();
            let targets: Vec<SocketAddr> = validators.to_vec();
            let rate = options.rate.map(|r| r / options.workers.max(1) as f64);
            let submitted_total = submitted_total.clone();
            let batch = options.batch.clamp(1, MAX_BATCH_SUBMISSIONS);
            std::thread::spawn(move || {
                submit_loop(worker, &shared, &bodies, &http, &targets, rate, batch, &submitted_total)
            })
        })
        .collect();

    // Track commits until the duration is over, then give in-flight bundles a moment.
    let mut latencies: Vec<f64> = Vec::new();
    let mut timeline: Vec<Second> = Vec::new();
    let mut per_second_latencies: Vec<Vec<f64>> = Vec::new();
    let mut headers: BTreeMap<u64, HeaderLite> = BTreeMap::new();
    let mut blocks: HashMap<u64, Block> = HashMap::new();
    let mut committed: Vec<(usize, u64)> = Vec::new();
    let mut height = start_height;
    let mut killed_at = None;
    let mut last_report = Instant::now();
    let drain_until = options.duration + Duration::from_secs(5);
    let tracker_node = bootstrap;
    while started.elapsed() < drain_until {
        if started.elapsed() >= options.duration {
            shared.stop.store(true, Ordering::SeqCst);
            shared.wake.notify_all();
            if shared.submitted.lock().unwrap_or_else(|p| p.into_inner()).is_empty() {
                break;
            }
        }
        if let Some(at) = options.kill_one_at
            && let Some(net) = net
            && killed_at.is_none()
            && started.elapsed() >= at
        {
            kill_last_validator(net);
            killed_at = Some(started.elapsed().as_secs_f64());
            progress("killed the last validator");
        }
        let Some(new_tip) = tip(http, tracker_node) else {
            std::thread::sleep(POLL);
            continue;
        };
        while height < new_tip {
            let Some(block) = fetch_block(http, tracker_node, height + 1) else {
                break;
            };
            height += 1;
            let now = Instant::now();
            let second = now.duration_since(started).as_secs() as usize;
            if timeline.len() <= second {
                timeline.resize_with(second + 1, Second::default);
                per_second_latencies.resize_with(second + 1, Vec::new);
            }
            headers.insert(block.header.height, block.header.lite());
            blocks.insert(block.header.height, block.clone());
            let mut freed = Vec::new();
            {
                let mut submitted = shared.submitted.lock().unwrap_or_else(|p| p.into_inner());
                let mut next = shared.next_seq.lock().unwrap_or_else(|p| p.into_inner());
                for entry in &block.entries {
                    let Some(&account) = by_address.get(&entry.sidecar.sender) else {
                        continue;
                    };
                    let seq = entry.envelope.seq;
                    if let Some(at) = submitted.remove(&(account, seq)) {
                        let ms = now.duration_since(at).as_secs_f64() * 1000.0;
                        latencies.push(ms);
                        per_second_latencies[second].push(ms);
                    }
                    timeline[second].bundles_committed += 1;
                    committed.push((account, seq));
                    next[account] = seq + 1;
                    freed.push(account);
                }
            }
            if !freed.is_empty() {
                shared.ready.lock().unwrap_or_else(|p| p.into_inner()).extend(freed);
                shared.wake.notify_all();
            }
        }
        if last_report.elapsed() >= Duration::from_secs(1) {
            last_report = Instant::now();
            let secs = started.elapsed().as_secs_f64();
            progress(&format!(
                "{secs:5.1} s  height {height}  committed {} bundles ({:.0}/s)  finality p50 {:.0} ms",
                committed.len(),
                committed.len() as f64 / secs.max(0.001),
                percentiles(latencies.clone()).p50
            ));
        }
        std::thread::sleep(POLL);
    }
    shared.stop.store(true, Ordering::SeqCst);
    shared.wake.notify_all();
    for worker in workers {
        let _ = worker.join();
    }
    let elapsed = options.duration.as_secs_f64();
    for (second, values) in per_second_latencies.into_iter().enumerate() {
        timeline[second].second = second as u64;
        timeline[second].latency_p50_ms = percentiles(values).p50;
    }
    progress("verifying a sample of transfers as their recipients would");
    let (verification, failures) = verify_sample(
        http,
        tracker_node,
        genesis,
        accounts,
        &committed,
        &mut headers,
        &mut blocks,
    );
    let rejected = shared.rejected.lock().unwrap_or_else(|p| p.into_inner()).clone();
    let committed_in_window: u64 = timeline
        .iter()
        .take(options.duration.as_secs() as usize)
        .map(|s| s.bundles_committed)
        .sum();
    Ok(BenchReport {
        validators: options.validators,
        accounts: options.accounts,
        bundle_txs: options.bundle_txs,
        target_rate: options.rate,
        duration_s: elapsed,
        submitted_bundles: submitted_total.load(Ordering::SeqCst),
        committed_bundles: committed.len() as u64,
        committed_bundles_per_s: committed_in_window as f64 / elapsed,
        transfers_per_s: (committed_in_window * options.bundle_txs as u64) as f64 / elapsed,
        blocks: height - start_height,
        finality_latency_ms: percentiles(latencies),
        rejected_by_code: rejected,
        verification_ms: percentiles(verification),
        verification_failures: failures,
        nodes: Vec::new(),
        timeline,
        killed_validator_at_s: killed_at,
    })
}

#[allow(clippy::too_many_arguments)]
fn submit_loop(
    worker: usize,
    shared: &Shared,
    bodies: &[(u64, Vec<Arc<String>>)],
    http: &reqwest::blocking::Client,
    targets: &[SocketAddr],
    rate: Option<f64>,
    batch: usize,
    submitted_total: &std::sync::atomic::AtomicU64,
) {
    let mut turn = worker;
    let started = Instant::now();
    let mut sent = 0u64;
    loop {
        // Up to `batch` free accounts (each has one bundle in flight at a time).
        let free: Vec<usize> = {
            let mut ready = shared.ready.lock().unwrap_or_else(|p| p.into_inner());
            loop {
                if shared.stop.load(Ordering::SeqCst) {
                    return;
                }
                if !ready.is_empty() {
                    let take = batch.min(ready.len());
                    break ready.drain(..take).collect();
                }
                ready = shared
                    .wake
                    .wait_timeout(ready, Duration::from_millis(50))
                    .map(|(guard, _)| guard)
                    .unwrap_or_else(|p| p.into_inner().0);
            }
        };
        if let Some(rate) = rate {
            let due = Duration::from_secs_f64(sent as f64 / rate);
            if let Some(wait) = due.checked_sub(started.elapsed()) {
                std::thread::sleep(wait);
            }
        }
        // Their next bundles (an account whose pre-signed bundles are used up drops out).
        let entries: Vec<(usize, u64, Arc<String>)> = {
            let next_seq = shared.next_seq.lock().unwrap_or_else(|p| p.into_inner());
            free.into_iter()
                .filter_map(|account| {
                    let seq = next_seq[account];
                    let (first_seq, account_bodies) = &bodies[account];
                    let body = account_bodies.get((seq - first_seq - 1) as usize)?;
                    Some((account, seq, body.clone()))
                })
                .collect()
        };
        if entries.is_empty() {
            continue;
        }
        turn = (turn + 1) % targets.len();
        let at = Instant::now();
        {
            let mut submitted = shared.submitted.lock().unwrap_or_else(|p| p.into_inner());
            for (account, seq, _) in &entries {
                submitted.insert((*account, *seq), at);
            }
        }
        let codes = if batch == 1 {
            vec![post_one(http, targets[turn], &entries[0].2)]
        } else {
            post_batch(http, targets[turn], &entries)
        };
        sent += entries.len() as u64;
        submitted_total.fetch_add(entries.len() as u64, Ordering::Relaxed);
        let refused: Vec<usize> = entries
            .iter()
            .zip(codes)
            .filter_map(|((account, seq, _), code)| {
                let code = code?;
                *shared
                    .rejected
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .entry(code)
                    .or_default() += 1;
                shared
                    .submitted
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .remove(&(*account, *seq));
                Some(*account)
            })
            .collect();
        if !refused.is_empty() {
            std::thread::sleep(Duration::from_millis(100));
            shared.ready.lock().unwrap_or_else(|p| p.into_inner()).extend(refused);
        }
    }
}

/// The refusal code of a failed answer (`None`: admitted).
fn refusal_code(response: reqwest::Result<reqwest::blocking::Response>) -> Option<String> {
    match response {
        Ok(response) if response.status().is_success() => None,
        Ok(response) => Some(
            response
                .json::<Envelope<serde_json::Value>>()
                .ok()
                .and_then(|answer| answer.error.map(|refusal| refusal.code))
                .unwrap_or_else(|| "http_error".into()),
        ),
        Err(_) => Some("unreachable".into()),
    }
}

/// `POST /v1/submit` of one submission; its refusal code, if refused.
fn post_one(http: &reqwest::blocking::Client, node: SocketAddr, submission: &str) -> Option<String> {
    refusal_code(
        http.post(format!("http://{node}{}", paths::SUBMIT))
            .json(&SubmitRequest {
                submission: submission.to_string(),
            })
            .send(),
    )
}

/// `POST /v1/submit/batch` of `entries`; each entry's refusal code, if refused.
fn post_batch(
    http: &reqwest::blocking::Client,
    node: SocketAddr,
    entries: &[(usize, u64, Arc<String>)],
) -> Vec<Option<String>> {
    let request = SubmitBatchRequest {
        submissions: entries.iter().map(|(_, _, hex)| hex.as_str().to_string()).collect(),
    };
    let answer = http
        .post(format!("http://{node}{}", paths::SUBMIT_BATCH))
        .json(&request)
        .send();
    let whole = |code: String| vec![Some(code); entries.len()];
    match answer {
        Ok(response) if response.status().is_success() => match response.json::<Envelope<SubmitBatchAnswer>>() {
            Ok(answer) => match answer.into_result() {
                Ok(batch) if batch.results.len() == entries.len() => batch
                    .results
                    .into_iter()
                    .map(|result| result.error.map(|refusal| refusal.code))
                    .collect(),
                _ => whole("bad_answer".into()),
            },
            Err(_) => whole("bad_answer".into()),
        },
        other => whole(refusal_code(other).unwrap_or_else(|| "http_error".into())),
    }
}

fn tip(http: &reqwest::blocking::Client, node: SocketAddr) -> Option<u64> {
    let answer: Envelope<StatusAnswer> = http
        .get(format!("http://{node}{}", paths::STATUS))
        .send()
        .ok()?
        .json()
        .ok()?;
    answer.into_result().ok().map(|status| status.height)
}

fn fetch_block(http: &reqwest::blocking::Client, node: SocketAddr, height: u64) -> Option<Block> {
    let answer: Envelope<BlockAnswer> = http
        .get(format!("http://{node}{}", paths::block(height)))
        .send()
        .ok()?
        .json()
        .ok()?;
    let bytes = hex::decode(answer.into_result().ok()?.block).ok()?;
    decode(&bytes, 256 * 1024 * 1024).ok()
}

fn fetch_receipt(http: &reqwest::blocking::Client, node: SocketAddr, owner: &Address, seq: u64) -> Option<Receipt> {
    let answer: Envelope<ReceiptAnswer> = http
        .get(format!("http://{node}{}", paths::receipt(owner, seq)))
        .send()
        .ok()?
        .json()
        .ok()?;
    let bytes = hex::decode(answer.into_result().ok()?.receipt).ok()?;
    decode(&bytes, 1 << 20).ok()
}

/// Builds the package of the first transfer of sampled committed bundles — the sender's whole
/// history since genesis as the witness, its units rebuilt from the chain's receipts and blocks
/// — and verifies it as the recipient. Returns the verification times (ms) and the failures.
fn verify_sample(
    http: &reqwest::blocking::Client,
    node: SocketAddr,
    genesis: &Genesis,
    accounts: &[Account],
    committed: &[(usize, u64)],
    headers: &mut BTreeMap<u64, HeaderLite>,
    blocks: &mut HashMap<u64, Block>,
) -> (Vec<f64>, usize) {
    let step = (committed.len() / VERIFY_SAMPLE).max(1);
    let genesis_hash = genesis.hash();
    let mut times = Vec::new();
    let mut failures = 0;
    for &(account, seq) in committed.iter().step_by(step).take(VERIFY_SAMPLE) {
        let owner = accounts[account].key.address();
        let mut chain = Vec::new();
        for s in (1..=seq).rev() {
            let Some(receipt) = fetch_receipt(http, node, &owner, s) else {
                break;
            };
            let height = receipt.header.height;
            if let std::collections::hash_map::Entry::Vacant(slot) = blocks.entry(height) {
                match fetch_block(http, node, height) {
                    Some(block) => {
                        headers.insert(height, block.header.lite());
                        slot.insert(block);
                    }
                    None => break,
                }
            }
            let Some(sidecar) = blocks[&height]
                .entries
                .iter()
                .find(|entry| entry.sidecar.sender == owner)
                .map(|entry| entry.sidecar.clone())
            else {
                break;
            };
            chain.push(ConfirmedBundleUnit { receipt, sidecar });
        }
        if chain.len() as u64 != seq {
            continue;
        }
        let target_tx = chain[0].sidecar.txs[0].clone();
        let value = target_tx.values[0];
        let package = TransferPackage {
            target_tx: target_tx.clone(),
            target_value: value,
            witness: WitnessV2 {
                value,
                current_owner: owner,
                chain,
                anchor: WitnessAnchor::Genesis(GenesisAnchor {
                    genesis_hash,
                    first_owner: owner,
                    range: accounts[account].range,
                }),
            },
        };
        let at = Instant::now();
        let verdict = Verifier::new(genesis, &*headers, &NoCheckpoints, target_tx.recipient).verify_package(&package);
        times.push(at.elapsed().as_secs_f64() * 1000.0);
        if verdict.is_err() {
            failures += 1;
        }
    }
    (times, failures)
}

fn kill_last_validator(net: &Localnet) {
    let Ok(nodes) = net.nodes() else { return };
    if let Some(node) = nodes
        .iter()
        .rfind(|n| n.role == ezchain_devnet::localnet::Role::Validator)
        && let Ok(text) = std::fs::read_to_string(node.home.join(PID_FILE))
        && let Ok(pid) = text.trim().parse::<i32>()
    {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL);
    }
}

/// CPU time and peak memory from /proc (Linux), disk use of each node's data folder.
fn usage(net: &Localnet) -> Vec<NodeUsage> {
    let Ok(nodes) = net.nodes() else {
        return Vec::new();
    };
    let ticks = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .unwrap_or(100) as f64;
    nodes
        .iter()
        .map(|node| {
            let pid = std::fs::read_to_string(node.home.join(PID_FILE))
                .ok()
                .and_then(|t| t.trim().parse::<u32>().ok());
            let stat = pid.and_then(|pid| std::fs::read_to_string(format!("/proc/{pid}/stat")).ok());
            let cpu_seconds = stat.and_then(|stat| {
                let fields: Vec<&str> = stat.rsplit(')').next()?.split_whitespace().collect();
                let utime: f64 = fields.get(11)?.parse().ok()?;
                let stime: f64 = fields.get(12)?.parse().ok()?;
                Some((utime + stime) / ticks)
            });
            let peak_rss_mib = pid
                .and_then(|pid| std::fs::read_to_string(format!("/proc/{pid}/status")).ok())
                .and_then(|status| {
                    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
                    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
                    Some(kib / 1024.0)
                });
            NodeUsage {
                name: node.name.clone(),
                cpu_seconds,
                peak_rss_mib,
                disk_mib: dir_size(&node.home.join("data")) as f64 / (1024.0 * 1024.0),
            }
        })
        .collect()
}

fn dir_size(path: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(path) else {
        return 0;
    };
    entries
        .filter_map(Result::ok)
        .map(|entry| match entry.metadata() {
            Ok(meta) if meta.is_dir() => dir_size(&entry.path()),
            Ok(meta) => meta.len(),
            Err(_) => 0,
        })
        .sum()
}

/// A self-contained HTML page: the figures in a table, throughput and finality over time (the
/// offered rate as a line, a killed validator marked), `json_file` named as the full record.
pub fn html_report(report: &BenchReport, json_file: &str) -> String {
    use crate::html::{Bound, Chart, Row, Series, Threshold, page, svg_chart};
    let ms = |p: &Percentiles| {
        format!(
            "p50 {:.0} ms, p95 {:.0} ms, p99 {:.0} ms, max {:.0} ms",
            p.p50, p.p95, p.p99, p.max
        )
    };
    let mut rows = vec![
        Row::new(
            "network",
            format!(
                "{} validators, {} accounts, {} transfer(s) per bundle",
                report.validators, report.accounts, report.bundle_txs
            ),
        ),
        Row::new(
            "offered",
            report
                .target_rate
                .map_or("as fast as accepted".to_string(), |rate| format!("{rate:.0} bundles/s")),
        ),
        Row::new(
            "duration",
            format!("{:.0} s, {} blocks", report.duration_s, report.blocks),
        ),
        Row::new(
            "committed",
            format!(
                "{} of {} bundles: {:.1} bundles/s, {:.0} transfers/s",
                report.committed_bundles,
                report.submitted_bundles,
                report.committed_bundles_per_s,
                report.transfers_per_s
            ),
        ),
        Row::new("finality (submit → committed)", ms(&report.finality_latency_ms)),
        Row::new(
            "recipient verification",
            format!(
                "p50 {:.2} ms, p95 {:.2} ms over {} packages, {} failed",
                report.verification_ms.p50,
                report.verification_ms.p95,
                report.verification_ms.count,
                report.verification_failures
            ),
        ),
    ];
    if !report.rejected_by_code.is_empty() {
        let codes: Vec<String> = report
            .rejected_by_code
            .iter()
            .map(|(code, n)| format!("{code} ({n})"))
            .collect();
        rows.push(Row::new("rejected", codes.join(", ")));
    }
    for node in &report.nodes {
        rows.push(Row::new(
            format!("node {}", node.name),
            format!(
                "CPU {}, peak RSS {}, disk {:.1} MiB",
                node.cpu_seconds.map_or("–".to_string(), |s| format!("{s:.1} s")),
                node.peak_rss_mib.map_or("–".to_string(), |m| format!("{m:.0} MiB")),
                node.disk_mib
            ),
        ));
    }
    let markers: Vec<(String, f64)> = report
        .killed_validator_at_s
        .map(|at| ("validator killed".to_string(), at))
        .into_iter()
        .collect();
    let throughput = Chart {
        title: "Bundles committed per second".into(),
        x_label: "seconds since the load started".into(),
        y_label: "bundles/s".into(),
        series: vec![Series {
            name: "committed".into(),
            points: report
                .timeline
                .iter()
                .map(|s| (s.second as f64, Some(s.bundles_committed as f64)))
                .collect(),
        }],
        thresholds: report
            .target_rate
            .map(|rate| Threshold {
                label: format!("offered {rate:.0}/s"),
                value: rate,
                bound: Bound::Reference,
            })
            .into_iter()
            .collect(),
        markers: markers.clone(),
        y_max: None,
    };
    let latency = Chart {
        title: "Finality latency, median of each second".into(),
        x_label: "seconds since the load started".into(),
        y_label: "ms".into(),
        series: vec![Series {
            name: "p50".into(),
            points: report
                .timeline
                .iter()
                .map(|s| (s.second as f64, (s.bundles_committed > 0).then_some(s.latency_p50_ms)))
                .collect(),
        }],
        thresholds: Vec::new(),
        markers,
        y_max: None,
    };
    page(
        &format!(
            "ezchain bench: {} validators, {} accounts",
            report.validators, report.accounts
        ),
        "A load of signed bundles against a local testnet (docs/BENCHMARKS.md).",
        &rows,
        &[svg_chart(&throughput), svg_chart(&latency)],
        json_file,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_of_a_known_list() {
        let p = percentiles((1..=100).map(f64::from).collect());
        assert_eq!((p.p50, p.p95, p.p99, p.max, p.count), (51.0, 95.0, 99.0, 100.0, 100));
        assert_eq!(percentiles(Vec::new()).count, 0);
    }

    #[test]
    fn bench_keys_are_distinct_and_stable() {
        assert_eq!(bench_key(3).address(), bench_key(3).address());
        assert_ne!(bench_key(3).address(), bench_key(4).address());
    }
}
