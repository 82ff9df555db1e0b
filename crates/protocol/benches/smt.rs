//! Sparse Merkle tree benchmarks on a 1,000,000-account tree (criterion). Numbers and machine
//! notes: docs/BENCHMARKS.md.
//!
//! `cargo bench -p ezchain-protocol --bench smt`.

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use ezchain_protocol::codec::encoded_len;
use ezchain_protocol::hash::{Hash32, tagged_hash};
use ezchain_protocol::smt::Smt;
use std::hint::black_box;
use std::sync::OnceLock;
use std::time::Instant;

const ACCOUNTS: u64 = 1_000_000;

fn key(n: u64) -> Hash32 {
    tagged_hash(b"bench-key", &[&n.to_le_bytes()])
}

fn million_account_tree() -> &'static Smt<Hash32> {
    static TREE: OnceLock<Smt<Hash32>> = OnceLock::new();
    TREE.get_or_init(|| {
        let started = Instant::now();
        let mut tree = Smt::new();
        for n in 0..ACCOUNTS {
            tree.insert(key(n), key(n + 7));
        }
        eprintln!("1,000,000 inserts one by one: {:.1?}", started.elapsed());
        let started = Instant::now();
        let bulk = Smt::from_entries((0..ACCOUNTS).map(|n| (key(n), key(n + 7))));
        eprintln!(
            "the same tree built from its entries (a restart): {:.1?}",
            started.elapsed()
        );
        assert_eq!(bulk.root(), tree.root());
        tree
    })
}

fn smt(c: &mut Criterion) {
    let tree = million_account_tree();
    let root = tree.root();
    let mut group = c.benchmark_group("smt");
    group.sample_size(10);
    group.bench_function("update_1000_leaves_in_1m_tree", |b| {
        b.iter_batched(
            || tree.clone(),
            |mut t| {
                for n in 0..1000u64 {
                    t.insert(key(n * 997), key(n));
                }
                black_box(t.root())
            },
            BatchSize::SmallInput,
        )
    });
    group.bench_function("insert_1000_new_leaves_in_1m_tree", |b| {
        b.iter_batched(
            || tree.clone(),
            |mut t| {
                for n in 0..1000u64 {
                    t.insert(key(ACCOUNTS + n), key(n));
                }
                black_box(t.root())
            },
            BatchSize::SmallInput,
        )
    });
    group.sample_size(50);
    let probe = key(123_456);
    group.bench_function("prove_member_1m", |b| b.iter(|| black_box(tree.prove(&probe))));
    let absent = key(5 * ACCOUNTS);
    group.bench_function("prove_non_member_1m", |b| b.iter(|| black_box(tree.prove(&absent))));
    let proof = tree.prove(&probe);
    let value = key(123_456 + 7);
    group.bench_function("verify_proof_1m", |b| {
        b.iter(|| assert!(proof.verify(&root, &probe, Some(&value))))
    });
    group.finish();
    let proofs: Vec<_> = (0..1000u64).map(|n| tree.prove(&key(n * 13))).collect();
    let sizes: Vec<usize> = proofs.iter().map(encoded_len).collect();
    let depths: Vec<usize> = proofs.iter().map(|p| p.siblings.len()).collect();
    eprintln!(
        "proofs of 1000 members of a 1M tree: mean {:.0} B, max {} B; path length mean {:.1}, max {}",
        sizes.iter().sum::<usize>() as f64 / 1000.0,
        sizes.iter().max().unwrap_or(&0),
        depths.iter().sum::<usize>() as f64 / 1000.0,
        depths.iter().max().unwrap_or(&0),
    );
}

criterion_group!(benches, smt);
criterion_main!(benches);
