//! Sparse Merkle tree benchmarks on a 1,000,000-account tree (criterion). Numbers and machine
//! notes: docs/BENCHMARKS.md.
//!
//! `cargo bench -p ezchain-protocol --bench smt`. Building the tree takes about four minutes on
//! the 2-core reference machine (every new leaf hashes ~512 nodes) before the first measurement.

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use ezchain_protocol::codec::encoded_len;
use ezchain_protocol::hash::{Hash32, tagged_hash};
use ezchain_protocol::smt::Smt;
use std::hint::black_box;
use std::sync::OnceLock;

fn key(n: u64) -> Hash32 {
    tagged_hash(b"bench-key", &[&n.to_le_bytes()])
}

fn million_account_tree() -> &'static Smt<Hash32> {
    static TREE: OnceLock<Smt<Hash32>> = OnceLock::new();
    TREE.get_or_init(|| {
        let started = std::time::Instant::now();
        let mut tree = Smt::new();
        for n in 0..1_000_000u64 {
            tree.insert(key(n), key(n + 7));
        }
        eprintln!("built 1,000,000-account tree in {:.1?}", started.elapsed());
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
    group.sample_size(50);
    let probe = key(123_456);
    group.bench_function("prove_member_1m", |b| {
        b.iter(|| black_box(tree.prove(&probe).compress()))
    });
    let absent = key(5_000_000);
    group.bench_function("prove_non_member_1m", |b| {
        b.iter(|| black_box(tree.prove(&absent).compress()))
    });
    let proof = tree.prove(&probe).compress();
    let value = key(123_456 + 7);
    group.bench_function("verify_compressed_proof", |b| {
        b.iter(|| assert!(proof.verify(&root, &probe, Some(&value))))
    });
    let keys: Vec<Hash32> = (0..1000u64).map(|n| key(n * 991)).collect();
    group.bench_function("multiproof_1000_keys_generate", |b| {
        b.iter(|| black_box(tree.prove_many(&keys)))
    });
    let multi = tree.prove_many(&keys);
    let entries: Vec<(Hash32, Option<Hash32>)> = keys.iter().map(|k| (*k, tree.get(k).copied())).collect();
    group.bench_function("multiproof_1000_keys_verify", |b| {
        b.iter(|| assert!(multi.verify(&root, &entries)))
    });
    group.finish();
    let sizes: Vec<usize> = (0..1000u64)
        .map(|n| encoded_len(&tree.prove(&key(n * 13)).compress()))
        .collect();
    let mean = sizes.iter().sum::<usize>() as f64 / sizes.len() as f64;
    eprintln!(
        "compressed proof size over 1000 members of a 1M tree: mean {mean:.0} B, max {} B (plain: 8192 B); \
         multiproof for 1000 keys: {} B",
        sizes.iter().max().unwrap_or(&0),
        encoded_len(&multi)
    );
}

criterion_group!(benches, smt);
criterion_main!(benches);
