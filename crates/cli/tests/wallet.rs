//! End-to-end tests of the account node: `ezchain wallet|tx` processes against a real testnet
//! (one validator and the bootstrap node with its faucet, on loopback). Payments cross the
//! network, are finalized, delivered through the mailbox and verified by the recipient.

use ezchain_protocol::bundle::EnvelopeParams;
use ezchain_protocol::codec::decode;
use ezchain_protocol::witness::{GenesisAnchor, PriorWitnessLink};
use ezchain_protocol::{
    Address, BundleSidecar, ConfirmedBundleUnit, OffChainTx, SigningKey, Submission, TransferPackage, ValueRange,
    WitnessAnchor, WitnessV2,
};
use ezchain_rpc::paths;
use ezchain_testkit::{CliWallet, LocalTestnet};
use ezchain_wallet::NodeClient;
use ezchain_wallet::client::PushEvent;
use ezchain_wallet::keystore::key_from_mnemonic;
use serde_json::Value;
use std::sync::Mutex;
use std::time::Duration;

static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());
const LONG: Duration = Duration::from_secs(60);

fn binary() -> &'static std::path::Path {
    std::path::Path::new(env!("CARGO_BIN_EXE_ezchain"))
}

fn start(port: u16) -> LocalTestnet {
    let net = LocalTestnet::start(binary(), 1, port);
    net.wait_for_height(net.bootstrap_index(), 1, LONG)
        .expect("the devnet finalizes blocks");
    net
}

/// Creates a wallet; returns it with its address and key (from the printed mnemonic).
fn create(net: &LocalTestnet, name: &str) -> (CliWallet, Address, SigningKey) {
    let wallet = net.cli_wallet(name);
    let created = wallet.ok(&["wallet", "create", "--password", "password-1"]);
    let address: Address = created["address"]
        .as_str()
        .expect("address")
        .parse()
        .expect("address parses");
    let key = key_from_mnemonic(created["mnemonic"].as_str().expect("mnemonic")).expect("mnemonic derives the key");
    assert_eq!(
        key.address(),
        address,
        "the printed mnemonic restores the printed address"
    );
    (wallet, address, key)
}

fn balance(wallet: &CliWallet) -> u64 {
    wallet.ok(&["wallet", "balance", "--password", "password-1"])["available_balance"]
        .as_u64()
        .expect("balance")
}

fn send(wallet: &CliWallet, to: &Address, amount: u64) -> Value {
    let sent = wallet.ok(&[
        "tx",
        "send",
        "--recipient",
        &to.to_string(),
        "--amount",
        &amount.to_string(),
        "--password",
        "password-1",
    ]);
    assert_eq!(sent["status"], "delivered", "{sent}");
    sent
}

fn client(net: &LocalTestnet) -> NodeClient {
    NodeClient::new(
        &[net.nodes[net.bootstrap_index()].rpc.to_string()],
        Duration::from_secs(10),
    )
    .expect("client")
}

fn anchors(witness: &WitnessV2) -> Vec<&WitnessAnchor> {
    witness.nodes().map(|node| &node.anchor).collect()
}

#[test]
fn faucet_then_a_pays_b_pays_c_pays_a_back_with_a_snapshot_cutting_the_history() {
    let _serial = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let net = start(24600);
    let (alice, alice_addr, alice_key) = create(&net, "alice");
    let (bob, bob_addr, _) = create(&net, "bob");
    let (carol, carol_addr, _) = create(&net, "carol");

    let faucet = alice.ok(&["tx", "faucet", "--amount", "1000", "--password", "password-1"]);
    assert_eq!(faucet["faucet_amount"], 1000);
    assert_eq!(faucet["available_balance"], 1000, "{faucet}");

    let paid = send(&alice, &bob_addr, 300);
    assert_eq!(balance(&alice), 700);
    assert_eq!(balance(&bob), 300);
    // Both sides name the payment alike: the payee's record carries the payer's bundle id.
    let received = bob.ok(&["tx", "history"]);
    let got = received
        .as_array()
        .and_then(|records| records.iter().find(|r| r["kind"] == "receive"))
        .expect("Bob's receive record");
    assert_eq!(got["tx_ref"], paid["tx_ref"], "{received}");
    send(&bob, &carol_addr, 300);
    assert_eq!(balance(&bob), 0);
    assert_eq!(balance(&carol), 300);
    send(&carol, &alice_addr, 300);

    // Carol's value came with a witness naming Bob, Alice and the faucet: before paying it on,
    // her wallet snapshotted (one more bundle of hers, no history record), so the value that
    // comes back to Alice carries Carol's node alone, anchored on her snapshot — not the path
    // it took.
    let waiting = client(&net)
        .mailbox_fetch(&alice_key, &net.genesis.hash())
        .expect("Alice's mailbox");
    assert_eq!(waiting.len(), 1);
    let package: TransferPackage = decode(&waiting[0].bytes, 1 << 24).expect("a package");
    assert!(
        matches!(anchors(&package.witness)[..], [WitnessAnchor::Snapshot(_)]),
        "the returning value is anchored on Carol's snapshot: {:?}",
        anchors(&package.witness)
    );
    assert_eq!(balance(&alice), 1000);
    assert_eq!(balance(&carol), 0);
    assert_eq!(
        alice.ok(&["wallet", "checkpoints"])["checkpoints"]
            .as_array()
            .map(Vec::len),
        Some(1)
    );

    // Every wallet's history is complete and nothing was rejected.
    for (wallet, sends, receives) in [(&alice, 1, 2), (&bob, 1, 1), (&carol, 1, 1)] {
        let history = wallet.ok(&["tx", "history"]);
        let records = history.as_array().expect("records");
        let count = |kind: &str, status: &str| {
            records
                .iter()
                .filter(|r| r["kind"] == kind && r["status"] == status)
                .count()
        };
        assert_eq!(count("send", "delivered"), sends, "{history}");
        assert_eq!(count("receive", "accepted"), receives, "{history}");
        assert_eq!(records.len(), sends + receives, "{history}");
        assert_eq!(
            wallet.history_file(),
            history,
            "tx_history.json is in step with the state"
        );
        assert!(wallet.ok(&["tx", "pending"]).as_array().is_some_and(Vec::is_empty));
    }
    // Bob's receipts: his payment; Carol's: her snapshot and her payment.
    assert_eq!(bob.ok(&["tx", "receipts"]).as_array().map(Vec::len), Some(1));
    assert_eq!(carol.ok(&["tx", "receipts"]).as_array().map(Vec::len), Some(2));
}

#[test]
fn an_offline_recipient_collects_its_payments_from_the_mailbox() {
    let _serial = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let net = start(24610);
    let (alice, _, _) = create(&net, "alice");
    let (bob, bob_addr, _) = create(&net, "bob");
    alice.ok(&["tx", "faucet", "--amount", "500", "--password", "password-1"]);
    // Bob runs nothing while Alice pays him twice.
    send(&alice, &bob_addr, 120);
    send(&alice, &bob_addr, 80);
    let tip = net.status(net.bootstrap_index()).expect("status").height;
    net.wait_for_height(net.bootstrap_index(), tip + 3, LONG)
        .expect("the chain moves on");
    // Without the password Bob sees only what he already stored.
    let offline = bob.ok(&["wallet", "balance"]);
    assert_eq!(offline["available_balance"], 0);
    let received = bob.ok(&["tx", "receive", "--password", "password-1"]);
    assert_eq!(received["accepted"].as_array().map(Vec::len), Some(2), "{received}");
    assert_eq!(received["available_balance"], 200);
    // Acknowledged: a second pass finds nothing and changes nothing.
    let again = bob.ok(&["tx", "receive", "--password", "password-1"]);
    assert_eq!(again["accepted"].as_array().map(Vec::len), Some(0));
    assert_eq!(balance(&bob), 200);
    assert_eq!(balance(&alice), 300);
}

fn raw_payment(key: &SigningKey, chain_id: u64, seq: u64, to: Address, value: ValueRange) -> Submission {
    let params = EnvelopeParams {
        chain_id,
        seq,
        expiry_height: 1_000_000,
        fee: 0,
        anti_spam_nonce: seq,
    };
    let tx = OffChainTx {
        sender: key.address(),
        recipient: to,
        values: vec![value],
        local_index: 0,
        tx_time: seq,
        extra_data: vec![],
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

/// Submits a bundle to the real chain and returns its confirmed unit.
fn commit(net: &LocalTestnet, submission: &Submission) -> ConfirmedBundleUnit {
    let boot = net.bootstrap_index();
    net.submit(boot, submission).expect("the node accepts the bundle");
    let receipt = net
        .wait_for_receipt(boot, &submission.sidecar.sender, submission.envelope.seq, LONG)
        .expect("the bundle is finalized");
    ConfirmedBundleUnit {
        receipt,
        sidecar: submission.sidecar.clone(),
    }
}

fn package(
    chain: Vec<ConfirmedBundleUnit>,
    value: ValueRange,
    owner: Address,
    anchor: WitnessAnchor,
) -> TransferPackage {
    let target_tx = chain[0].sidecar.txs[0].clone();
    TransferPackage {
        target_tx,
        target_value: value,
        witness: WitnessV2 {
            value,
            current_owner: owner,
            chain,
            anchor,
        },
    }
}

#[test]
fn a_malicious_sender_cannot_pay_with_double_spent_forged_or_minted_values() {
    let _serial = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let net = start(24620);
    let chain_id = net.genesis.chain_id;
    let (bob, bob_addr, _) = create(&net, "bob");
    bob.ok(&["tx", "faucet", "--amount", "50", "--password", "password-1"]);
    let eve = Address([0xee; 20]);

    // Mallory is a client built on the protocol crate alone. She gets 100 real coins.
    let mallory = SigningKey::from_bytes(&[0x4d; 32]).expect("key");
    let me = mallory.address();
    let node = client(&net);
    node.faucet(&me, 100).expect("faucet pays Mallory");
    let fetched = node
        .mailbox_fetch(&mallory, &net.genesis.hash())
        .expect("Mallory's mailbox");
    let acquired: TransferPackage = decode(&fetched[0].bytes, 1 << 24).expect("package");
    let coin = acquired.target_value;
    let acquired_anchor = || {
        WitnessAnchor::PriorWitness(PriorWitnessLink {
            acquire_tx: acquired.target_tx.clone(),
            prior_witness: Box::new(acquired.witness.clone()),
        })
    };

    // F1: she pays the coin to Eve, then again to Bob, and shows Bob only the second spend —
    // or both, hoping the order confuses him. (Her node pushes her own receipts as they come.)
    let pushed = node.subscribe(&[me], LONG).expect("the node grants a subscription");
    let to_eve = commit(&net, &raw_payment(&mallory, chain_id, 1, eve, coin));
    let first_receipt = loop {
        match pushed.recv_timeout(LONG).expect("the node pushes the receipt") {
            PushEvent::Receipt { address, receipt } => break (address, *receipt),
            PushEvent::Header { .. } | PushEvent::Lagged => {}
        }
    };
    assert_eq!(
        first_receipt,
        (me, to_eve.receipt.clone()),
        "the pushed receipt is the one a poll serves"
    );
    let to_bob = commit(&net, &raw_payment(&mallory, chain_id, 2, bob_addr, coin));
    let hidden = package(vec![to_bob.clone()], coin, me, acquired_anchor());
    let both = package(vec![to_bob.clone(), to_eve.clone()], coin, me, acquired_anchor());
    // F2: a unit whose header is not the finalized one (a self-made tree).
    let mut forged_unit = to_bob.clone();
    forged_unit.receipt.header.state_root.0[0] ^= 1;
    let forged = package(vec![forged_unit], coin, me, acquired_anchor());
    // F3: a bundle that really is on chain, paying a range she never owned, claimed as her
    // genesis allocation.
    let minted_range = ValueRange::new(9_000_000_000, 9_000_000_099).expect("range");
    let mint = commit(&net, &raw_payment(&mallory, chain_id, 3, bob_addr, minted_range));
    let minted = package(
        vec![mint, to_bob.clone(), to_eve.clone()],
        minted_range,
        me,
        WitnessAnchor::Genesis(GenesisAnchor {
            genesis_hash: net.genesis.hash(),
            first_owner: me,
            range: minted_range,
        }),
    );
    // The node keeps a package only when its newest bundle is a finalized payment to Bob; the
    // witness behind it is Bob's to judge.
    for attack in [&hidden, &both, &minted] {
        node.mailbox_put(attack)
            .expect("the mailbox takes a package backed by a finalized payment");
    }
    let refused_code = |package: &TransferPackage| match node.mailbox_put(package) {
        Err(ezchain_wallet::client::ClientError::Refused { code, .. }) => code,
        other => panic!("expected a refusal, got {other:?}"),
    };
    assert_eq!(refused_code(&forged), "package_not_backed", "F2 never reaches Bob");
    let mut unbacked = hidden.clone();
    unbacked.witness.chain.clear();
    assert_eq!(refused_code(&unbacked), "package_not_backed", "no bundle, no package");
    let mut not_this_payment = hidden.clone();
    not_this_payment.target_value = ValueRange::new(coin.end() + 1, coin.end() + 1).expect("range");
    not_this_payment.witness.value = not_this_payment.target_value;
    assert_eq!(
        refused_code(&not_this_payment),
        "package_not_backed",
        "the bundle does not pay that value"
    );

    let report = bob.ok(&["tx", "receive", "--password", "password-1"]);
    assert_eq!(report["accepted"].as_array().map(Vec::len), Some(0), "{report}");
    let rejected = report["rejected"].as_array().expect("rejected");
    assert_eq!(rejected.len(), 3, "{report}");
    let reasons: Vec<&str> = rejected.iter().filter_map(|r| r["reason"].as_str()).collect();
    for expected in ["tail rule", "double spend", "genesis"] {
        assert!(
            reasons.iter().any(|r| r.to_lowercase().contains(expected)),
            "a rejection mentions {expected}: {reasons:?}"
        );
    }
    assert_eq!(report["available_balance"], 50, "Bob's balance is unchanged");
    // Rejections are recorded once and the packages are acknowledged.
    let again = bob.ok(&["tx", "receive", "--password", "password-1"]);
    assert_eq!(again["rejected"].as_array().map(Vec::len), Some(0));
    let history = bob.ok(&["tx", "history"]);
    let rejected_records = history
        .as_array()
        .expect("records")
        .iter()
        .filter(|r| r["status"] == "rejected")
        .count();
    assert_eq!(rejected_records, 3);
    assert_eq!(balance(&bob), 50);
}

#[test]
fn a_wallet_killed_between_submit_and_receipt_pays_exactly_once() {
    let _serial = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let mut net = start(24630);
    let (alice, _, _) = create(&net, "alice");
    let (bob, bob_addr, _) = create(&net, "bob");
    alice.ok(&["tx", "faucet", "--amount", "500", "--password", "password-1"]);
    // Alice's one payment to Bob, as she repeats it (always the same id).
    let to_bob = bob_addr.to_string();
    let order_17 = |wait: &'static str| {
        [
            "tx",
            "send",
            "--recipient",
            &to_bob,
            "--amount",
            "100",
            "--password",
            "password-1",
            "--client-tx-id",
            "order-17",
            "--wait",
            wait,
        ]
    };

    // With the validator down nothing finalizes, so the send is caught between submit and
    // receipt for certain.
    net.kill(0);
    let mut sender = alice
        .command(&order_17("60"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn tx send");
    let deadline = std::time::Instant::now() + LONG;
    loop {
        let history = alice.history_file();
        let submitted = history.as_array().is_some_and(|records| {
            records
                .iter()
                .any(|r| r["kind"] == "send" && r["status"] == "submitted")
        });
        if submitted {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the send was never submitted: {history}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    sender.kill().expect("SIGKILL the wallet");
    let _ = sender.wait();
    let pending = alice.ok(&["tx", "pending"]);
    assert_eq!(pending.as_array().map(Vec::len), Some(1), "{pending}");
    assert_eq!(pending[0]["status"], "submitted");

    // Retried while the chain still stands, a send that cannot finish says so and exits 3, not
    // 0: a script must not take it for a payment made.
    let unfinished = alice.command(&order_17("1")).output().expect("run tx send");
    let stderr = String::from_utf8_lossy(&unfinished.stderr);
    assert_eq!(unfinished.status.code(), Some(3), "{stderr}");
    assert!(
        stderr.contains("error[send_pending]") && stderr.contains("tx pending"),
        "{stderr}"
    );
    let record: Value = serde_json::from_slice(&unfinished.stdout).expect("the record, as JSON");
    assert_eq!(
        (&record["status"], &record["tx_ref"]),
        (&pending[0]["status"], &pending[0]["tx_ref"])
    );

    // The validator returns (with an empty mempool); the user retries with the same id.
    net.start_node(0);
    let retried = alice.ok(&[
        "tx",
        "send",
        "--recipient",
        &bob_addr.to_string(),
        "--amount",
        "100",
        "--password",
        "password-1",
        "--client-tx-id",
        "order-17",
    ]);
    assert_eq!(retried["status"], "delivered", "{retried}");
    assert_eq!(
        retried["tx_ref"], pending[0]["tx_ref"],
        "the same payment, not a second one"
    );
    assert_eq!(balance(&bob), 100);
    assert_eq!(balance(&alice), 400);
    let sends = alice
        .ok(&["tx", "history"])
        .as_array()
        .expect("records")
        .iter()
        .filter(|r| r["kind"] == "send")
        .count();
    assert_eq!(sends, 1);
}

#[test]
fn bad_input_gets_stable_error_codes() {
    let _serial = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let net = start(24640);
    let (alice, alice_addr, _) = create(&net, "alice");
    let code = |args: &[&str]| alice.run(args).expect_err("the command fails").0;
    assert_eq!(code(&["wallet", "create", "--password", "password-1"]), "wallet_exists");
    assert_eq!(code(&["wallet", "balance", "--password", "wrong"]), "wrong_password");
    assert_eq!(
        code(&[
            "wallet",
            "import",
            "--mnemonic",
            "test test test test test test test test test test test test",
            "--password",
            "password-1",
            "--force"
        ]),
        "invalid_mnemonic"
    );
    assert_eq!(
        code(&[
            "tx",
            "send",
            "--recipient",
            "0x1234",
            "--amount",
            "1",
            "--password",
            "password-1"
        ]),
        "invalid_recipient"
    );
    let someone = Address([7; 20]).to_string();
    assert_eq!(
        code(&[
            "tx",
            "send",
            "--recipient",
            &someone,
            "--amount",
            "5",
            "--password",
            "password-1"
        ]),
        "insufficient_funds"
    );
    let (refused, stderr) = alice
        .run(&["tx", "faucet", "--amount", "100000000", "--password", "password-1"])
        .expect_err("over the faucet's limit");
    assert_eq!(refused, "faucet_refused");
    assert!(
        stderr.contains("the faucet's limits"),
        "a hint about the faucet, not the node list: {stderr}"
    );

    // A used --client-tx-id: the same payment again prints it (no second payment), another
    // amount is refused with the API's code and a non-zero exit.
    alice.ok(&["tx", "faucet", "--amount", "300", "--password", "password-1"]);
    let pay = |amount: &str| {
        alice.run(&[
            "tx",
            "send",
            "--recipient",
            &someone,
            "--amount",
            amount,
            "--client-tx-id",
            "order-7",
            "--password",
            "password-1",
        ])
    };
    let first = pay("120").expect("first payment");
    assert_eq!(first["status"], "delivered", "{first}");
    assert_eq!(pay("121").expect_err("another amount").0, "duplicate_transaction");
    let again = pay("120").expect("the same payment again");
    assert_eq!(again["tx_ref"], first["tx_ref"]);
    assert_eq!(balance(&alice), 180, "exactly one payment left the wallet");
    // Paying yourself is refused before anything is signed; the coins stay spendable.
    assert_eq!(
        code(&[
            "tx",
            "send",
            "--recipient",
            &alice_addr.to_string(),
            "--amount",
            "5",
            "--password",
            "password-1"
        ]),
        "self_transfer"
    );
    assert_eq!(balance(&alice), 180);
    // The amount check has the API's code (one list of codes for the CLI and the service).
    assert_eq!(
        code(&[
            "tx",
            "send",
            "--recipient",
            &someone,
            "--amount",
            "0",
            "--password",
            "password-1"
        ]),
        "invalid_amount"
    );
    let nobody = net.cli_wallet("nobody");
    assert_eq!(
        nobody.run(&["wallet", "show"]).expect_err("no wallet").0,
        "wallet_not_found"
    );
}

#[test]
fn the_mailbox_serves_only_its_recipient_and_refuses_bad_input() {
    use ezchain_protocol::mailbox::{MailboxAction, sign_mailbox_request};
    let _serial = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let net = start(24650);
    let boot = net.bootstrap_index();
    let (alice, _, _) = create(&net, "alice");
    let (_bob, bob_addr, bob_key) = create(&net, "bob");
    alice.ok(&["tx", "faucet", "--amount", "10", "--password", "password-1"]);
    send(&alice, &bob_addr, 5);
    let post = |path: &str, body: serde_json::Value| {
        net.post_raw(boot, path, "application/json", body.to_string().into_bytes())
            .expect("the node answers")
    };
    let challenge = |who: &Address| {
        let (status, body) = post(&paths::mailbox_challenge(who), serde_json::json!({}));
        assert_eq!(status, 200, "{body}");
        ezchain_protocol::Hash32::from_hex(body["data"]["challenge"].as_str().expect("challenge")).expect("hash")
    };
    let genesis = net.genesis.hash();
    let fetch = |key: &SigningKey, c: ezchain_protocol::Hash32| {
        let signature = sign_mailbox_request(key, &genesis, MailboxAction::Fetch, &c, &[]);
        post(
            &paths::mailbox_fetch(bob_addr),
            serde_json::json!({ "challenge": c, "signature": hex::encode(signature.0) }),
        )
    };

    // Someone else's signature: refused.
    let mallory = SigningKey::from_bytes(&[0x4d; 32]).expect("key");
    let (status, body) = fetch(&mallory, challenge(&bob_addr));
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (401, Some("signature_invalid"))
    );
    // Bob's own signature over a fresh challenge: served, once.
    let fresh = challenge(&bob_addr);
    let (status, body) = fetch(&bob_key, fresh);
    assert_eq!(status, 200, "{body}");
    let packages = body["data"]["packages"].as_array().expect("packages").clone();
    assert_eq!(packages.len(), 1);
    let (status, body) = fetch(&bob_key, fresh);
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (401, Some("challenge_invalid"))
    );
    // An ack signed for other ids does not remove anything.
    let c = challenge(&bob_addr);
    let signature = sign_mailbox_request(&bob_key, &genesis, MailboxAction::Ack, &c, &[]);
    let (status, _) = post(
        &paths::mailbox_ack(bob_addr),
        serde_json::json!({ "challenge": c, "signature": hex::encode(signature.0), "ids": [packages[0]["id"]] }),
    );
    assert_eq!(status, 401);

    // Puts: the package must decode and pay the mailbox's owner.
    let carol = Address([0xca; 20]);
    let package_hex = packages[0]["package"].as_str().expect("hex");
    let cases = [
        (
            paths::mailbox(carol),
            serde_json::json!({ "package": package_hex }),
            "wrong_recipient",
        ),
        (
            paths::mailbox(bob_addr),
            serde_json::json!({ "package": "00ff" }),
            "malformed_package",
        ),
        (
            paths::mailbox(bob_addr),
            serde_json::json!({ "package": "zz" }),
            "malformed_request",
        ),
        (
            paths::mailbox(bob_addr),
            serde_json::json!({ "pkg": 1 }),
            "malformed_request",
        ),
        (
            paths::mailbox_challenge("0x12"),
            serde_json::json!({}),
            "malformed_address",
        ),
        (
            paths::mailbox_fetch(bob_addr),
            serde_json::json!({ "challenge": fresh, "signature": "abcd" }),
            "malformed_signature",
        ),
    ];
    for (path, body, code) in cases {
        let (status, answer) = post(&path, body);
        assert!((400..500).contains(&status), "{path}: {status} {answer}");
        assert_eq!(answer["error"]["code"], code, "{path}: {answer}");
    }
    let (status, answer) = post(&paths::mailbox(bob_addr), serde_json::json!({ "package": package_hex }));
    assert_eq!(
        (status, answer["data"]["status"].as_str()),
        (200, Some("already_stored"))
    );
    assert!(net.status(boot).is_some(), "the node keeps serving");
}

fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read dir") {
        let entry = entry.expect("entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("type").is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copy");
        }
    }
}

#[test]
fn a_wallet_restored_from_before_its_last_send_says_it_is_behind_and_signs_nothing() {
    let _serial = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let net = start(24660);
    let (alice, _, _) = create(&net, "alice");
    let (_bob, bob_address, _) = create(&net, "bob");
    alice.ok(&["tx", "faucet", "--amount", "100", "--password", "password-1"]);
    // An old copy of the wallet, taken between two commands (nothing holds it).
    let old = alice.data_dir.with_extension("old");
    copy_dir(&alice.data_dir, &old);
    send(&alice, &bob_address, 10);
    std::fs::remove_dir_all(&alice.data_dir).expect("rm");
    copy_dir(&old, &alice.data_dir);
    let history_before = alice.history_file();
    let (code, stderr) = alice
        .run(&[
            "tx",
            "send",
            "--recipient",
            &bob_address.to_string(),
            "--amount",
            "5",
            "--password",
            "password-1",
        ])
        .expect_err("a wallet behind its account cannot send");
    assert_eq!(code, "wallet_behind_chain", "{stderr}");
    assert_eq!(alice.history_file(), history_before, "nothing was signed or recorded");
    assert!(
        alice.ok(&["tx", "pending"]).as_array().is_some_and(Vec::is_empty),
        "no pending bundle was left behind"
    );
}

#[test]
fn junk_on_two_nodes_neither_locks_a_wallet_out_nor_grows_its_history() {
    let _serial = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let net = start(24670);
    let chain_id = net.genesis.chain_id;
    let (bob, bob_addr, _) = create(&net, "bob");
    // Bob's wallet lists two nodes, each with its own mailbox.
    let nodes = [net.nodes[net.bootstrap_index()].rpc, net.nodes[0].rpc];
    let text = std::fs::read_to_string(&bob.config).expect("config");
    std::fs::write(
        &bob.config,
        text.replace(
            &format!("[\"{}\"]", nodes[0]),
            &format!("[\"{}\", \"{}\"]", nodes[0], nodes[1]),
        ),
    )
    .expect("config");

    // Mallory pays Bob one real coin, then floods both of his mailboxes with 600 packages each:
    // the real unit under made-up genesis claims, every one different and every one invalid.
    let mallory = SigningKey::from_bytes(&[0x4d; 32]).expect("key");
    let me = mallory.address();
    client(&net).faucet(&me, 100).expect("faucet pays Mallory");
    let fetched = client(&net)
        .mailbox_fetch(&mallory, &net.genesis.hash())
        .expect("Mallory's mailbox");
    let acquired: TransferPackage = decode(&fetched[0].bytes, 1 << 24).expect("package");
    let coin = ValueRange::new(acquired.target_value.begin(), acquired.target_value.begin()).expect("range");
    let to_bob = commit(&net, &raw_payment(&mallory, chain_id, 1, bob_addr, coin));
    for (index, node) in nodes.iter().enumerate() {
        let node = NodeClient::new(&[node.to_string()], Duration::from_secs(10)).expect("client");
        for n in 0..600u64 {
            let claimed = 1_000_000 * (index as u64 + 1) + n;
            let junk = package(
                vec![to_bob.clone()],
                coin,
                me,
                WitnessAnchor::Genesis(GenesisAnchor {
                    genesis_hash: net.genesis.hash(),
                    first_owner: me,
                    range: ValueRange::new(coin.begin(), claimed).expect("range"),
                }),
            );
            node.mailbox_put(&junk).expect("stored");
        }
    }

    // One pass: every package is judged, acknowledged on the node that holds it (in requests
    // within the node's limit), and only the newest rejections stay in the history.
    let report = bob.ok(&["tx", "receive", "--password", "password-1"]);
    assert_eq!(report["accepted"].as_array().map(Vec::len), Some(0), "{report}");
    assert_eq!(report["rejected"].as_array().map(Vec::len), Some(1200));
    let history = bob.ok(&["tx", "history"]);
    let rejected = history
        .as_array()
        .expect("records")
        .iter()
        .filter(|r| r["status"] == "rejected")
        .count();
    assert_eq!(rejected, ezchain_wallet::wallet::REJECTED_RECORDS_KEPT);
    assert_eq!(bob.history_file().as_array().map(Vec::len), Some(rejected));
    // The mailboxes are empty, and Bob's real payments come through.
    let again = bob.ok(&["tx", "receive", "--password", "password-1"]);
    assert_eq!(again["rejected"].as_array().map(Vec::len), Some(0), "{again}");
    bob.ok(&["tx", "faucet", "--amount", "50", "--password", "password-1"]);
    assert_eq!(balance(&bob), 50);
}
