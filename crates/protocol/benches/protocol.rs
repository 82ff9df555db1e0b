//! Protocol benchmarks (criterion). Numbers and machine notes: docs/BENCHMARKS.md.
//!
//! `cargo bench -p ezchain-protocol --bench protocol [-- FILTER]`: signatures, recipient
//! verification, block build/apply. The SMT benchmarks are in `benches/smt.rs`.

#[path = "../tests/support/mod.rs"]
mod support;

use criterion::{Criterion, criterion_group, criterion_main};
use ezchain_protocol::bundle::VerifiedSubmission;
use ezchain_protocol::codec::encoded_len;
use ezchain_protocol::hash::{Hash32, tagged_hash};
use ezchain_protocol::*;
use std::hint::black_box;
use support::*;

fn key(n: u64) -> Hash32 {
    tagged_hash(b"bench-key", &[&n.to_le_bytes()])
}

fn signatures(c: &mut Criterion) {
    let sim = Sim::new(&[("Ann", &[(0, 999)])]);
    let submission = sim.sign_raw("Ann", 1, 10, &[("Ben", &[(0, 9)])]);
    let sighash = submission.envelope.sighash();
    c.bench_function("envelope_signature_recover", |b| {
        b.iter(|| black_box(submission.envelope.signature.recover_signer(&sighash).unwrap()))
    });
    c.bench_function("submission_verify_full", |b| {
        b.iter(|| black_box(submission.verify(CHAIN_ID).unwrap()))
    });
}

/// A chain with 100,000 funded-looking accounts already in the tree, and 1,000 pre-signed
/// bundles from 1,000 other senders (2 txs each).
fn block_fixture() -> (ChainState, Vec<Submission>) {
    let genesis = Genesis {
        chain_id: CHAIN_ID,
        genesis_time_ms: 0,
        validators: vec![GenesisValidator {
            name: "v".into(),
            consensus_public_key: [1; 32],
            voting_power: 1,
        }],
        allocations: vec![],
        faucet: None,
    };
    let base = ChainState::genesis(&genesis);
    let existing = (0..100_000u64).map(|n| AccountLeaf {
        owner: Address(
            tagged_hash(b"acct", &[&n.to_le_bytes()]).0[..20]
                .try_into()
                .expect("20 bytes"),
        ),
        head_ref: BundleRef {
            height: 1,
            bundle_hash: key(n),
            seq: 1,
        },
        prev_ref: None,
        claim_set_hash: key(n + 1),
        holdings: None,
    });
    let chain = ChainState::from_leaves(CHAIN_ID, 0, base.tip_hash, 0, existing);
    let submissions = (0..1000u64)
        .map(|n| {
            let signer = SigningKey::from_bytes(&tagged_hash(b"sender", &[&n.to_le_bytes()]).0).expect("valid key");
            let txs = (0..2u64)
                .map(|i| OffChainTx {
                    sender: signer.address(),
                    recipient: Address([i as u8; 20]),
                    values: vec![ValueRange::new(n * 100 + i * 10, n * 100 + i * 10 + 4).expect("valid")],
                    local_index: i as u32,
                    tx_time: 1,
                    extra_data: vec![],
                })
                .collect();
            let params = bundle::EnvelopeParams {
                chain_id: CHAIN_ID,
                seq: 1,
                expiry_height: 100,
                fee: 0,
                anti_spam_nonce: n,
            };
            Submission::sign(
                &signer,
                BundleSidecar {
                    sender: signer.address(),
                    txs,
                },
                &params,
            )
        })
        .collect();
    (chain, submissions)
}

fn blocks(c: &mut Criterion) {
    let (chain, submissions) = block_fixture();
    let built = build_block(&chain, &submissions, 1, 1).expect("builds");
    assert!(built.rejected.is_empty());
    let block = built.applied.block;
    eprintln!("block of 1000 bundles: {} bytes encoded", encoded_len(&block));
    let mut group = c.benchmark_group("block");
    group.sample_size(10);
    group.bench_function("build_block_1000_bundles", |b| {
        b.iter(|| black_box(build_block(&chain, &submissions, 1, 1).unwrap()))
    });
    group.bench_function("apply_block_1000_bundles", |b| {
        b.iter(|| black_box(apply_block(&chain, &block).unwrap()))
    });
    // What a node does with bundles its mempool verified at admission: no recovery again.
    let verified: Vec<VerifiedSubmission> = submissions.iter().map(|s| s.verify(chain.chain_id).unwrap()).collect();
    group.bench_function("build_block_verified_1000_bundles", |b| {
        b.iter(|| black_box(build_block_verified(&chain, verified.clone(), 1, 1, None).unwrap()))
    });
    let known: Vec<Option<VerifiedSubmission>> = block
        .entries
        .iter()
        .map(|entry| verified.iter().find(|v| v.submission() == entry).cloned())
        .collect();
    group.bench_function("apply_block_verified_1000_bundles_all_known", |b| {
        b.iter(|| black_box(apply_block_verified(&chain, &block, known.clone(), None).unwrap()))
    });
    group.finish();
}

/// A package whose single witness node shows `units` bundles of a genesis owner: the owner
/// sends `units - 1` unrelated bundles, then pays the target range.
fn package_with_units(units: u64) -> (Sim, TransferPackage) {
    let mut sim = Sim::new(&[("Ann", &[(0, 99), (1000, 1999)]), ("Ben", &[])]);
    for i in 0..units - 1 {
        sim.pay("Ann", &[("Ben", &[(1000 + i, 1000 + i)])]);
        sim.step();
    }
    sim.pay("Ann", &[("Ben", &[(0, 99)])]);
    let sent = sim.step();
    let package = package_for(&sent, "Ann", "Ben", (0, 99)).clone();
    assert_eq!(package.witness.total_units() as u64, units);
    (sim, package)
}

fn verification(c: &mut Criterion) {
    let mut group = c.benchmark_group("verify_package");
    for units in [1u64, 10, 100] {
        let (sim, package) = package_with_units(units);
        eprintln!("package with {units} units: {} bytes encoded", encoded_len(&package));
        let ben = sim.user("Ben");
        let verifier = Verifier::new(&sim.genesis, &sim.headers, &witness::NoCheckpoints, ben.key.address());
        group.bench_function(format!("{units}_units"), |b| {
            b.iter(|| black_box(verifier.verify_package(&package).unwrap()))
        });
    }
    group.finish();
}

criterion_group!(benches, signatures, verification, blocks);
criterion_main!(benches);
