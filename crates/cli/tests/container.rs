//! The hosted topology in containers: `testnet init --compose` + the image of
//! `deploy/build-image.sh` start 4 validators and a bootstrap node on a private Docker network
//! this test creates and removes; a wallet on the host joins through the published bootstrap
//! RPC; a wallet service in a sixth container joins with `network join` over the private network
//! and pays a wallet in a seventh, which receives and verifies the package; a validator cut off
//! the network for 20 s leaves the chain live and catches up when it comes back; a node stopped
//! with SIGTERM as PID 1 exits cleanly. Then, under a steady load of payments: a validator
//! killed (SIGKILL) and restarted, a rolling restart of every validator, and a partition of two
//! validators from the other two and the bootstrap node (packets dropped by iptables inside the
//! two containers' network namespaces; no side may finalize). At the end every node holds the
//! same block at every height and every payment the load saw final is on every node. The
//! figures it prints (`container figures:`) are recorded in docs/BENCHMARKS.md.
//!
//! Needs Docker and the image: `EZ_NODE_IMAGE=ezchain:latest` (built by `deploy/build-image.sh`).
//! Without it the test says so and passes; `.ci/run` builds the image and sets
//! `EZ_REQUIRE_DOCKER=1`, which turns the skip into a failure.

use ezchain_protocol::{Address, SigningKey};
use ezchain_testkit::{LocalTestnet, payment};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const START_PORT: u16 = 25800;
const BOOTSTRAP_RPC: &str = "127.0.0.1:25801";
const VALIDATORS: usize = 4;
/// Validator i's RPC is published on the host at this port + i (for the checks at the end).
const VALIDATOR_RPC_BASE: u16 = 25810;
/// The load's coins: allocated at genesis after the faucet's (`testnet init --alloc`).
const LOAD_COINS: u64 = 100_000;

fn run(program: &str, dir: &Path, args: &[&str]) -> Output {
    Command::new(program)
        .current_dir(dir)
        .args(args)
        .env("EZCHAIN_PASSWORD", "container-wallet-1")
        .output()
        .unwrap_or_else(|e| panic!("run {program}: {e}"))
}

fn ezchain(dir: &Path, args: &[&str]) -> Output {
    run(env!("CARGO_BIN_EXE_ezchain"), dir, args)
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// The compose project: brought down (containers, network, volumes) however the test ends.
struct Project {
    dir: PathBuf,
    name: String,
}

/// `docker compose` (the v2 plugin) when the engine has it, else Debian's `docker-compose`.
fn compose_program() -> (&'static str, Vec<&'static str>) {
    let plugin = Command::new("docker").args(["compose", "version"]).output();
    if plugin.is_ok_and(|out| out.status.success()) {
        ("docker", vec!["compose"])
    } else {
        ("docker-compose", vec![])
    }
}

impl Project {
    fn compose(&self, args: &[&str]) -> Output {
        let (program, mut all) = compose_program();
        all.extend_from_slice(&["-p", self.name.as_str()]);
        all.extend_from_slice(args);
        run(program, &self.dir, &all)
    }

    fn container(&self, service: &str) -> String {
        let out = self.compose(&["ps", "-a", "-q", service]);
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    fn inspect(&self, service: &str, format: &str) -> String {
        let id = self.container(service);
        let out = run("docker", &self.dir, &["inspect", "--format", format, &id]);
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// The height the node in `service` reports through its own `ezchain node health`.
    fn own_height(&self, service: &str) -> Option<u64> {
        let id = self.container(service);
        let out = run(
            "docker",
            &self.dir,
            &["exec", &id, "/ezchain", "--json", "node", "health", "--home", "/node"],
        );
        let answer: Value = serde_json::from_slice(&out.stdout).ok()?;
        answer["readyz"]["data"]["height"].as_u64()
    }

    fn healthy(&self, service: &str) -> bool {
        self.inspect(service, "{{.State.Health.Status}}") == "healthy"
    }

    fn wait_until(&self, what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
        let deadline = Instant::now() + limit;
        while !done() {
            if Instant::now() > deadline {
                let logs = self.compose(&["logs", "--tail", "30"]);
                panic!("timed out waiting for {what}\n{}", text(&logs));
            }
            std::thread::sleep(Duration::from_millis(500));
        }
    }
}

impl Drop for Project {
    fn drop(&mut self) {
        let _ = self.compose(&["down", "-v", "--remove-orphans", "-t", "5"]);
    }
}

/// The port on the host's loopback where the containerized wallet service is published.
const WALLET_SERVICE_PORT: u16 = 25820;
const WALLET_PASSWORD: &str = "container-wallet-1";

/// A container this test started outside the compose project: removed before the project's
/// network is (declare it after the [`Project`]).
struct Container(String);

impl Drop for Container {
    fn drop(&mut self) {
        let _ = Command::new("docker").args(["rm", "-f", &self.0]).output();
    }
}

/// A wallet folder on the host mounted at `/wallet` in containers of the image, owned by the
/// containers' user so the wallet can write its files.
fn wallet_folder(root: &Path, name: &str, user: &str) -> PathBuf {
    let dir = root.join(name);
    std::fs::create_dir_all(&dir).expect("wallet folder");
    let (uid, gid) = user.split_once(':').expect("compose user is uid:gid");
    std::os::unix::fs::chown(&dir, Some(uid.parse().expect("uid")), Some(gid.parse().expect("gid")))
        .expect("hand the wallet folder to the containers' user");
    dir
}

/// `docker run` arguments for the image as the containers' user on the project's network, with
/// `wallet` as its working folder.
fn wallet_container_args(image: &str, network: &str, user: &str, wallet: &Path) -> Vec<String> {
    [
        "--network",
        network,
        "--user",
        user,
        "-v",
        &format!("{}:/wallet", wallet.display()),
        "-w",
        "/wallet",
        "-e",
        &format!("EZCHAIN_PASSWORD={WALLET_PASSWORD}"),
    ]
    .iter()
    .map(|arg| arg.to_string())
    .chain([image.to_string()])
    .collect()
}

/// One `ezchain` command in a throwaway container of the image (`docker run --rm`).
fn ezchain_in_container(image: &str, network: &str, user: &str, wallet: &Path, args: &[&str]) -> Output {
    let mut all = vec!["run".to_string(), "--rm".to_string()];
    all.extend(wallet_container_args(image, network, user, wallet));
    all.extend(args.iter().map(|arg| arg.to_string()));
    let all: Vec<&str> = all.iter().map(String::as_str).collect();
    run("docker", wallet, &all)
}

/// Drops (or, with `cut` false, restores) every packet between validator `index` and the hosts
/// `others` inside that container's network namespace: the host's iptables, entered with
/// nsenter (the image has no tools). The container stays on the network, so the validators on
/// one side still reach each other: a real partition, not a disconnect.
fn set_partition(project: &Project, index: usize, others: &[String], cut: bool) {
    let pid = project.inspect(&format!("validator-{index}"), "{{.State.Pid}}");
    for other in others {
        for (chain, direction) in [("INPUT", "-s"), ("OUTPUT", "-d")] {
            let rule = run(
                "nsenter",
                &project.dir,
                &[
                    "-t",
                    &pid,
                    "-n",
                    "iptables",
                    if cut { "-A" } else { "-D" },
                    chain,
                    direction,
                    other,
                    "-j",
                    "DROP",
                ],
            );
            assert!(
                rule.status.success(),
                "partitioning needs nsenter and iptables run as root: {}",
                text(&rule)
            );
        }
    }
}

fn services() -> Vec<String> {
    (0..VALIDATORS)
        .map(|i| format!("validator-{i}"))
        .chain(["bootstrap".to_string()])
        .collect()
}

fn bootstrap_height() -> Option<u64> {
    let answer: Value = reqwest::blocking::Client::new()
        .get(format!("http://{BOOTSTRAP_RPC}/status"))
        .timeout(Duration::from_secs(2))
        .send()
        .ok()?
        .json()
        .ok()?;
    answer["data"]["height"].as_u64()
}

/// Publishes each validator's RPC on the host's loopback (the compose file publishes only the
/// bootstrap node's), so the test can compare every node's blocks and receipts.
fn publish_validator_rpcs(compose_file: &Path) {
    let text = std::fs::read_to_string(compose_file).expect("compose.yaml");
    let mut compose: serde_json::Value = serde_norway::from_str(&text).expect("compose YAML");
    for i in 0..VALIDATORS {
        compose["services"][format!("validator-{i}")]["ports"] = serde_json::json!([format!(
            "127.0.0.1:{}:{}",
            VALIDATOR_RPC_BASE + i as u16,
            START_PORT + 1
        )]);
    }
    std::fs::write(compose_file, serde_norway::to_string(&compose).expect("YAML")).expect("write compose.yaml");
}

/// Heights the bootstrap node reported, with when each was first seen (polled every 200 ms).
struct HeightWatch {
    seen: Arc<Mutex<Vec<(Instant, u64)>>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl HeightWatch {
    fn start() -> Self {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (seen, stop) = (seen.clone(), stop.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    if let Some(height) = bootstrap_height() {
                        let mut seen = seen.lock().unwrap_or_else(|p| p.into_inner());
                        if seen.last().is_none_or(|&(_, last)| height > last) {
                            seen.push((Instant::now(), height));
                        }
                    }
                    std::thread::sleep(Duration::from_millis(200));
                }
            })
        };
        HeightWatch {
            seen,
            stop,
            thread: Some(thread),
        }
    }

    /// The longest time between two new heights within `from..now` (from `from` to the first
    /// new height counts too).
    fn longest_stall_since(&self, from: Instant) -> Duration {
        let seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        let mut longest = Duration::ZERO;
        let mut previous = from;
        for &(at, _) in seen.iter().filter(|(at, _)| *at >= from) {
            longest = longest.max(at - previous);
            previous = at;
        }
        longest.max(previous.elapsed())
    }
}

impl Drop for HeightWatch {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// A steady stream of payments through the bootstrap node: one coin per bundle, the next bundle
/// as soon as the previous one's receipt is there. Returns the seqs it saw final.
struct Load {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<Vec<u64>>>,
}

impl Load {
    fn start(net: Arc<LocalTestnet>, key: SigningKey, first_coin: u64, recipient: Address) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let bootstrap = net.bootstrap_index();
                let owner = key.address();
                let mut confirmed = Vec::new();
                let mut seq = 1;
                while !stop.load(Ordering::Relaxed) && seq < LOAD_COINS {
                    let coin = first_coin + seq;
                    let bundle = payment(&key, net.genesis.chain_id, seq, recipient, coin, coin);
                    // Unreachable or busy: try again; the same bundle is never a second payment.
                    if net.submit(bootstrap, &bundle).is_err() {
                        std::thread::sleep(Duration::from_millis(200));
                        continue;
                    }
                    let submitted = Instant::now();
                    while !stop.load(Ordering::Relaxed) {
                        if net.receipt(bootstrap, &owner, seq).is_some() {
                            confirmed.push(seq);
                            seq += 1;
                            break;
                        }
                        // The validators it reached may have restarted since: hand it on again.
                        if submitted.elapsed() > Duration::from_secs(3) {
                            break;
                        }
                        std::thread::sleep(Duration::from_millis(100));
                    }
                }
                confirmed
            })
        };
        Load {
            stop,
            thread: Some(thread),
        }
    }

    fn finish(mut self) -> Vec<u64> {
        self.stop.store(true, Ordering::Relaxed);
        self.thread
            .take()
            .and_then(|thread| thread.join().ok())
            .unwrap_or_default()
    }
}

impl Drop for Load {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

#[test]
fn a_compose_testnet_runs_in_containers_survives_faults_and_stops_cleanly() {
    let Some(image) = std::env::var("EZ_NODE_IMAGE").ok().filter(|image| !image.is_empty()) else {
        assert!(
            std::env::var_os("EZ_REQUIRE_DOCKER").is_none(),
            "EZ_REQUIRE_DOCKER is set but EZ_NODE_IMAGE is not: build the image with deploy/build-image.sh"
        );
        eprintln!("skipped: set EZ_NODE_IMAGE (deploy/build-image.sh builds ezchain:latest) to run the container test");
        return;
    };
    let root = tempfile::tempdir().expect("temp dir");
    let net = root.path().join("net");
    // A subnet and project name of this run's own, so parallel runs never share a network.
    let pid = std::process::id();
    let subnet = format!("172.30.{}", 100 + pid % 100);
    let load_key = SigningKey::from_bytes(&[0x42; 32]).expect("a valid key");
    let init = ezchain(
        root.path(),
        &[
            "testnet",
            "init",
            "--validators",
            &VALIDATORS.to_string(),
            "--out",
            net.to_str().expect("utf-8 path"),
            "--start-port",
            &START_PORT.to_string(),
            "--compose",
            "--image",
            &image,
            "--subnet",
            &subnet,
            "--alloc",
            &format!("{}={LOAD_COINS}", load_key.address()),
            "--json",
        ],
    );
    assert!(init.status.success(), "{}", text(&init));
    let layout: Value = serde_json::from_slice(&init.stdout).expect("layout json");
    let genesis_hash = layout["genesis_hash"].as_str().expect("hash").to_string();
    // Every node is told the others' private addresses, and listens on all interfaces.
    let config = std::fs::read_to_string(net.join("validator-0/node.yaml")).expect("node.yaml");
    assert!(config.contains(&format!("{subnet}.11:{START_PORT}")), "{config}");
    assert!(config.contains(&format!("0.0.0.0:{START_PORT}")), "{config}");
    publish_validator_rpcs(&net.join("compose.yaml"));

    let project = Project {
        dir: net.clone(),
        name: format!("ezct{pid}"),
    };
    let up_at = Instant::now();
    let up = project.compose(&["up", "-d"]);
    assert!(up.status.success(), "{}", text(&up));
    project.wait_until("a first finalized block", Duration::from_secs(180), || {
        bootstrap_height().is_some_and(|height| height >= 1)
    });
    let first_block = up_at.elapsed();
    // Healthy = the image's own HEALTHCHECK (`ezchain node health`): ready, with a fresh tip.
    project.wait_until("every node healthy", Duration::from_secs(180), || {
        services().iter().all(|service| project.healthy(service))
    });
    // Not root inside.
    let user = project.inspect("validator-0", "{{.Config.User}}");
    assert!(
        !user.is_empty() && !user.starts_with("0:") && user != "0",
        "container user {user}"
    );

    // A wallet on the host joins through the published bootstrap RPC.
    let wallet = tempfile::tempdir().expect("wallet dir");
    let join = ezchain(
        wallet.path(),
        &[
            "network",
            "join",
            "--bootstrap",
            BOOTSTRAP_RPC,
            "--genesis-hash",
            &genesis_hash,
        ],
    );
    assert!(join.status.success(), "{}", text(&join));
    let check = ezchain(wallet.path(), &["network", "check"]);
    assert!(check.status.success(), "{}", text(&check));

    // A wallet service in a sixth container joins over the private network and pays a wallet in
    // a seventh, which receives the package and verifies it.
    let network = format!("{}_ezchain", project.name);
    let bootstrap_inside = format!("{subnet}.14:{}", START_PORT + 1);
    let joins = |wallet: &Path| {
        let join = ezchain_in_container(
            &image,
            &network,
            &user,
            wallet,
            &[
                "network",
                "join",
                "--bootstrap",
                &bootstrap_inside,
                "--genesis-hash",
                &genesis_hash,
            ],
        );
        assert!(join.status.success(), "{}", text(&join));
    };
    let payer = wallet_folder(root.path(), "wallet-service", &user);
    let payee = wallet_folder(root.path(), "wallet-payee", &user);
    joins(&payer);
    joins(&payee);
    let created = ezchain_in_container(&image, &network, &user, &payee, &["--json", "wallet", "create"]);
    assert!(created.status.success(), "{}", text(&created));
    let payee_address = serde_json::from_slice::<Value>(&created.stdout).expect("create json")["address"]
        .as_str()
        .expect("address")
        .to_string();
    // The service listens on the container's interface and is published on the host's loopback.
    let config_file = payer.join("ezchain.yaml");
    let mut config: Value =
        serde_norway::from_str(&std::fs::read_to_string(&config_file).expect("joined config")).expect("config YAML");
    config["app"]["api_host"] = "0.0.0.0".into();
    config["app"]["allow_remote"] = true.into();
    std::fs::write(&config_file, serde_norway::to_string(&config).expect("YAML")).expect("write config");
    let token = ezchain_in_container(&image, &network, &user, &payer, &["auth", "show-token"]);
    assert!(token.status.success(), "{}", text(&token));
    let token = String::from_utf8_lossy(&token.stdout).trim().to_string();
    let service = Container(format!("{}-wallet-service", project.name));
    let mut start = vec![
        "run".to_string(),
        "-d".to_string(),
        "--name".to_string(),
        service.0.clone(),
        "-p".to_string(),
        format!("127.0.0.1:{WALLET_SERVICE_PORT}:8787"),
    ];
    start.extend(wallet_container_args(&image, &network, &user, &payer));
    start.push("serve".to_string());
    let start: Vec<&str> = start.iter().map(String::as_str).collect();
    let started = run("docker", &payer, &start);
    assert!(started.status.success(), "{}", text(&started));
    let http = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .expect("http client");
    let api = format!("http://127.0.0.1:{WALLET_SERVICE_PORT}");
    project.wait_until("the wallet service", Duration::from_secs(60), || {
        http.get(format!("{api}/health"))
            .send()
            .is_ok_and(|answer| answer.status().is_success())
    });
    let mut nonce = 0;
    let mut post = |path: &str, body: Value| -> Value {
        nonce += 1;
        let answer: Value = http
            .post(format!("{api}{path}"))
            .header("X-EZ-Token", &token)
            .header("X-EZ-Nonce", format!("container-test-{pid}-{nonce}"))
            .json(&body)
            .send()
            .unwrap_or_else(|e| panic!("{path}: {e}"))
            .json()
            .unwrap_or_else(|e| panic!("{path}: {e}"));
        assert_eq!(answer["ok"], true, "{path}: {answer}");
        answer["data"].clone()
    };
    post("/wallet/create", serde_json::json!({ "password": WALLET_PASSWORD }));
    post(
        "/tx/faucet",
        serde_json::json!({ "amount": 50, "password": WALLET_PASSWORD }),
    );
    let sent = post(
        "/tx/send",
        serde_json::json!({
            "recipient": payee_address,
            "amount": 20,
            "password": WALLET_PASSWORD,
            "client_tx_id": "container-payment-1",
        }),
    );
    // The payee's wallet fetches the package from the bootstrap node's mailbox and verifies it
    // (the send may still be delivering: try again for a while).
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let received = ezchain_in_container(&image, &network, &user, &payee, &["--json", "tx", "receive"]);
        assert!(received.status.success(), "{}", text(&received));
        let balance = ezchain_in_container(&image, &network, &user, &payee, &["--json", "wallet", "balance"]);
        assert!(balance.status.success(), "{}", text(&balance));
        let balance: Value = serde_json::from_slice(&balance.stdout).expect("balance json");
        if balance["available_balance"] == 20 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the payee never held the payment: balance {balance}; the send answered {sent}; receive said {}",
            text(&received)
        );
        std::thread::sleep(Duration::from_secs(1));
    }
    drop(service);

    // Cut validator-3 off for 20 s: 3 of 4 keep finalizing.
    let cut = project.container("validator-3");
    let disconnect = run("docker", &net, &["network", "disconnect", &network, &cut]);
    assert!(disconnect.status.success(), "{}", text(&disconnect));
    let cut_at = Instant::now();
    let before = bootstrap_height().expect("bootstrap answers");
    project.wait_until(
        "3 of 4 validators to finalize 3 more heights",
        Duration::from_secs(60),
        || bootstrap_height().is_some_and(|height| height >= before + 3),
    );
    let cut_for = Duration::from_secs(20);
    if let Some(rest) = cut_for.checked_sub(cut_at.elapsed()) {
        std::thread::sleep(rest);
    }
    // The cut-off validator really was cut off: it fell behind.
    let behind = project
        .own_height("validator-3")
        .expect("validator-3 answers inside its container");
    let reached = bootstrap_height().expect("bootstrap answers");
    assert!(
        behind < reached,
        "validator-3 at {behind} kept up with {reached} while disconnected"
    );
    // Back on the network, it catches up and is healthy (ready with a fresh tip) again.
    let reconnected_at = Instant::now();
    reconnect(&project, &network, 3, &subnet);
    project.wait_until("validator-3 to catch up", Duration::from_secs(120), || {
        project
            .own_height("validator-3")
            .is_some_and(|height| height >= reached)
    });
    let disconnect_recovery = reconnected_at.elapsed();
    project.wait_until("validator-3 healthy", Duration::from_secs(120), || {
        project.healthy("validator-3")
    });

    // SIGTERM to PID 1: a clean exit, well inside the grace period.
    let stop = project.compose(&["stop", "-t", "30", "validator-0"]);
    assert!(stop.status.success(), "{}", text(&stop));
    assert_eq!(project.inspect("validator-0", "{{.State.ExitCode}}"), "0");
    // Restarted from its volume, it rejoins.
    let start = project.compose(&["start", "validator-0"]);
    assert!(start.status.success(), "{}", text(&start));
    project.wait_until("validator-0 to rejoin", Duration::from_secs(120), || {
        project.healthy("validator-0")
    });

    // From here on a steady load of payments runs through the bootstrap node.
    let genesis = ezchain_host::genesis_file::load_genesis(&net.join("genesis.json")).expect("genesis");
    let load_first_coin = genesis
        .allocations
        .iter()
        .find(|allocation| allocation.owner == load_key.address())
        .expect("the load's allocation")
        .range
        .begin();
    let observed = Arc::new(LocalTestnet::observe(
        Path::new(env!("CARGO_BIN_EXE_ezchain")),
        genesis,
        (0..VALIDATORS)
            .map(|i| {
                let rpc = format!("127.0.0.1:{}", VALIDATOR_RPC_BASE + i as u16);
                (
                    format!("validator-{i}"),
                    net.join(format!("validator-{i}")),
                    rpc.parse().expect("address"),
                )
            })
            .chain([(
                "bootstrap".to_string(),
                net.join("bootstrap"),
                BOOTSTRAP_RPC.parse().expect("address"),
            )])
            .collect(),
    ));
    let watch = HeightWatch::start();
    let owner = load_key.address();
    let load = Load::start(observed.clone(), load_key, load_first_coin, Address([0x77; 20]));

    // A validator killed outright and started again: back at the tip, nothing lost.
    let kill = project.compose(&["kill", "validator-2"]);
    assert!(kill.status.success(), "{}", text(&kill));
    std::thread::sleep(Duration::from_secs(5));
    let started_at = Instant::now();
    let start = project.compose(&["start", "validator-2"]);
    assert!(start.status.success(), "{}", text(&start));
    project.wait_until(
        "the killed validator to reach the tip",
        Duration::from_secs(120),
        || {
            let tip = bootstrap_height().unwrap_or(u64::MAX);
            observed.status(2).is_some_and(|status| status.height >= tip)
        },
    );
    let kill_recovery = started_at.elapsed();

    // A rolling restart, one validator at a time, each back at the tip before the next.
    let rolling_from = Instant::now();
    for i in 0..VALIDATORS {
        let service = format!("validator-{i}");
        let restart = project.compose(&["restart", "-t", "30", &service]);
        assert!(restart.status.success(), "{}", text(&restart));
        project.wait_until(&format!("{service} back at the tip"), Duration::from_secs(120), || {
            let tip = bootstrap_height().unwrap_or(u64::MAX);
            observed.status(i).is_some_and(|status| status.height >= tip) && project.healthy(&service)
        });
    }
    let rolling_stall = watch.longest_stall_since(rolling_from);

    // Partition: validators 2 and 3 on one side, 0 and 1 with the bootstrap node on the other.
    // Neither side has more than 2/3 of the voting power: nothing is finalized anywhere, nothing
    // forks.
    let majority_side: Vec<String> = [10, 11, 14].iter().map(|host| format!("{subnet}.{host}")).collect();
    for i in [2, 3] {
        set_partition(&project, i, &majority_side, true);
    }
    // A height already decided may still land; then nothing for 8 s.
    std::thread::sleep(Duration::from_secs(3));
    let split = bootstrap_height().expect("bootstrap answers");
    std::thread::sleep(Duration::from_secs(8));
    let still = bootstrap_height().expect("bootstrap answers");
    assert!(still <= split + 1, "finalized without a quorum: {split} → {still}");
    for i in [2, 3] {
        let minority = observed
            .status(i)
            .expect("a partitioned validator still answers the host")
            .height;
        assert!(
            minority <= still + 1,
            "validator-{i} finalized without a quorum: {minority} (other side {still})"
        );
    }
    let healed_at = Instant::now();
    for i in [2, 3] {
        set_partition(&project, i, &majority_side, false);
    }
    project.wait_until(
        "finality to resume after the partition",
        Duration::from_secs(120),
        || bootstrap_height().is_some_and(|height| height > still + 1),
    );
    let partition_recovery = healed_at.elapsed();

    // The end: every node at one tip, the same block at every height, every payment the load
    // saw final on every node.
    let confirmed = load.finish();
    drop(watch);
    assert!(confirmed.len() >= 10, "the load made only {} payments", confirmed.len());
    let tip = bootstrap_height().expect("bootstrap answers");
    for i in 0..observed.nodes.len() {
        observed
            .wait_for_height(i, tip, Duration::from_secs(120))
            .unwrap_or_else(|e| panic!("{e}"));
    }
    observed.assert_agreement(tip);
    for seq in &confirmed {
        let reference = observed.receipt(4, &owner, *seq).expect("the bootstrap node's receipt");
        for i in 0..VALIDATORS {
            assert_eq!(
                observed.receipt(i, &owner, *seq).as_ref(),
                Some(&reference),
                "validator-{i} lacks payment {seq}"
            );
        }
    }
    let image_bytes = run("docker", &net, &["image", "inspect", "--format", "{{.Size}}", &image]);
    eprintln!(
        "container figures: image {} bytes; compose up → first finalized block {:.1} s; \
         disconnected validator back at the tip {:.1} s after reconnecting; killed validator at the \
         tip {:.1} s after its start; rolling restart's longest stall {:.1} s; finality {:.1} s after \
         the partition healed; {} payments final under faults, {} heights",
        String::from_utf8_lossy(&image_bytes.stdout).trim(),
        first_block.as_secs_f64(),
        disconnect_recovery.as_secs_f64(),
        kill_recovery.as_secs_f64(),
        rolling_stall.as_secs_f64(),
        partition_recovery.as_secs_f64(),
        confirmed.len(),
        tip
    );
}

/// Puts validator `index` back on the network at its own address.
fn reconnect(project: &Project, network: &str, index: usize, subnet: &str) {
    let id = project.container(&format!("validator-{index}"));
    let ip = format!("{subnet}.{}", 10 + index);
    let reconnect = run(
        "docker",
        &project.dir,
        &["network", "connect", "--ip", &ip, network, &id],
    );
    assert!(reconnect.status.success(), "{}", text(&reconnect));
}
