//! Crash safety of the chain store: a writer process committing blocks is SIGKILLed at random
//! moments; every time, the store reopens cleanly with a consistent tip — every height up to
//! the tip present with its certificate and receipts, nothing above it, and the reloaded state
//! root equal to the tip header's.

use ezchain_node::store::ChainStore;
use ezchain_protocol::bundle::EnvelopeParams;
use ezchain_protocol::finality::CommitCertificate;
use ezchain_protocol::genesis::{Allocation, GenesisValidator};
use ezchain_protocol::{Address, BundleSidecar, Genesis, OffChainTx, SigningKey, Submission, ValueRange, build_block};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

const CHILD_ENV: &str = "EZCHAIN_STORE_CRASH_CHILD";

fn genesis() -> Genesis {
    Genesis {
        chain_id: 3,
        genesis_time_ms: 0,
        validators: vec![GenesisValidator {
            name: "v".into(),
            consensus_public_key: [1; 32],
            voting_power: 1,
        }],
        allocations: vec![Allocation {
            owner: Address([1; 20]),
            range: ValueRange::new(0, 9).unwrap(),
        }],
        faucet: None,
    }
}

fn sender(i: u64) -> SigningKey {
    let mut seed = [7u8; 32];
    seed[..8].copy_from_slice(&(i + 1).to_le_bytes());
    SigningKey::from_bytes(&seed).expect("valid test key")
}

/// Child: commit blocks of 20 bundles forever (until killed), continuing from the stored tip.
fn write_forever(path: &Path) {
    let genesis = genesis();
    let store = ChainStore::open(path, &genesis).expect("open");
    let mut state = store.load_state(genesis.chain_id).expect("load");
    loop {
        let height = state.height + 1;
        let candidates: Vec<Submission> = (0..20u64)
            .map(|i| {
                let key = sender(i);
                let tx = OffChainTx {
                    sender: key.address(),
                    recipient: Address([9; 20]),
                    values: vec![ValueRange::new(height * 100 + i, height * 100 + i).expect("range")],
                    local_index: 0,
                    tx_time: height,
                    extra_data: vec![],
                };
                let params = EnvelopeParams {
                    chain_id: 3,
                    seq: state.confirmed_seq(&key.address()) + 1,
                    expiry_height: u64::MAX - 1,
                    fee: 0,
                    anti_spam_nonce: 0,
                };
                Submission::sign(
                    &key,
                    BundleSidecar {
                        sender: key.address(),
                        txs: vec![tx],
                    },
                    &params,
                )
            })
            .collect();
        let applied = build_block(&state, &candidates, height, height).expect("build").applied;
        let certificate = CommitCertificate {
            height,
            round: 0,
            header_hash: applied.block.hash(),
            signatures: vec![],
        };
        store.commit_block(&applied, &certificate).expect("commit");
        state = applied.state;
    }
}

#[test]
fn store_survives_sigkill_at_any_moment() {
    if let Ok(path) = std::env::var(CHILD_ENV) {
        write_forever(Path::new(&path));
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("chain.redb");
    let mut last_tip = 0;
    for round in 0..6u64 {
        let mut child = Command::new(std::env::current_exe().expect("test binary"))
            .args(["--exact", "store_survives_sigkill_at_any_moment", "--nocapture"])
            .env(CHILD_ENV, &path)
            .spawn()
            .expect("spawn writer");
        // Different moments each round: during open, mid-commit, between commits.
        std::thread::sleep(Duration::from_millis(150 + round * 137));
        child.kill().expect("SIGKILL the writer");
        child.wait().expect("reap the writer");

        let genesis = genesis();
        let store = ChainStore::open(&path, &genesis).expect("reopens cleanly after SIGKILL");
        let tip = store.tip().expect("tip");
        assert!(tip.height >= last_tip, "a committed height never disappears");
        last_tip = tip.height;
        for height in 1..=tip.height {
            let header = store
                .header(height)
                .expect("read")
                .expect("every height up to the tip is there");
            assert_eq!(
                store.certificate(height).expect("read").map(|c| c.header_hash),
                Some(header.hash())
            );
            assert!(store.block(height).expect("read").is_some());
        }
        assert!(
            store.header(tip.height + 1).expect("read").is_none(),
            "nothing above the tip"
        );
        let state = store.load_state(genesis.chain_id).expect("state");
        if tip.height > 0 {
            let header = store.header(tip.height).expect("read").expect("tip header");
            assert_eq!(
                state.state_root(),
                header.state_root,
                "stored leaves match the tip's state root"
            );
            assert_eq!(state.tip_hash, header.hash());
        }
    }
    assert!(last_tip > 0, "the writer made progress between kills");
}
