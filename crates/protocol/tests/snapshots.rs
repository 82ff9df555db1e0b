//! Holdings snapshots (docs/bounded-witnesses.md): a busy payer's packages stop growing, values
//! received before a snapshot stay spendable, and every attack of §3's table is refused with
//! its own error — by validators (the snapshot rule) or by the payee (the snapshot anchor).

mod support;

use ezchain_protocol::bundle::EnvelopeParams;
use ezchain_protocol::holdings::HoldingsList;
use ezchain_protocol::ownership::SnapshotPolicy;
use ezchain_protocol::snapshot::{SnapshotError, SnapshotEvidence, SnapshotRules, check_snapshot};
use ezchain_protocol::state::{BlockError, EntryError};
use ezchain_protocol::witness::{SnapshotAnchor, VerifyError, WitnessAnchor};
use ezchain_protocol::*;
use support::*;

const USERS: &[(&str, &[(u64, u64)])] = &[
    ("Alice", &[(0, 99), (100, 199)]),
    ("Bob", &[(200, 299)]),
    ("Carol", &[]),
    ("Eve", &[]),
];

fn rules(sim: &Sim) -> SnapshotRules<'_> {
    SnapshotRules {
        genesis: &sim.genesis,
        headers: &sim.headers,
    }
}

/// What validators say about `submission` as the next block's entry.
fn judge(sim: &Sim, submission: &Submission) -> Result<Option<u32>, EntryError> {
    let verified = submission.verify(CHAIN_ID).expect("well-formed");
    sim.chain
        .check_entry(&verified, sim.chain.height + 1, Some(&rules(sim)))
}

/// What a proposer builds from the whole pool as the next block.
fn propose(sim: &Sim) -> state::BuiltBlock {
    build_block_verified(
        &sim.chain,
        sim.pool.snapshot(usize::MAX),
        sim.chain.height + 1,
        sim.time_ms + 1,
        Some(&rules(sim)),
    )
    .expect("builds")
}

/// The snapshot `name`'s wallet would make now (the wallet itself is left unchanged).
fn honest_snapshot(sim: &Sim, name: &str) -> Submission {
    let mut holdings = sim.user(name).holdings.clone();
    holdings
        .prepare_snapshot(&key_of(name), &sim.genesis, &params(sim, name))
        .expect("an honest snapshot can be prepared")
}

fn params(sim: &Sim, name: &str) -> EnvelopeParams {
    EnvelopeParams {
        chain_id: CHAIN_ID,
        seq: sim.chain.confirmed_seq(&sim.addr(name)) + 1,
        expiry_height: 1_000_000,
        fee: 0,
        anti_spam_nonce: 9,
    }
}

/// The canonical list of `ranges` (adjacent ones merge).
fn list(ranges: &[(u64, u64)]) -> HoldingsList {
    let mut list = HoldingsList::new();
    for (begin, end) in ranges {
        list.add(range(*begin, *end)).expect("disjoint test ranges");
    }
    list
}

/// `name`'s snapshot claiming `ranges`, proven by `evidence`.
fn forged(sim: &Sim, name: &str, ranges: &[(u64, u64)], evidence: SnapshotEvidence) -> Submission {
    Submission::sign_snapshot(&key_of(name), list(ranges).root(), evidence, &params(sim, name))
}

fn evidence_of(submission: &Submission) -> SnapshotEvidence {
    submission.evidence.clone().expect("a snapshot carries evidence")
}

fn snapshot_refusal(error: SnapshotError) -> Result<Option<u32>, EntryError> {
    Err(EntryError::Snapshot(error))
}

/// Snapshots `name` and finalizes the block that holds it.
fn snapshot_now(sim: &mut Sim, name: &str) {
    sim.snapshot(name);
    assert!(sim.step().is_empty(), "a snapshot pays nobody");
    assert!(
        sim.user(name).holdings.snapshot().is_some(),
        "{name}'s snapshot is confirmed"
    );
}

#[test]
fn a_busy_payers_packages_stop_growing_once_it_snapshots() {
    let mut sim = Sim::new(&[("Faucet", &[(0, 99_999)]), ("U0", &[]), ("U1", &[]), ("U2", &[])]);
    let mut units = Vec::new();
    for payment in 0..60 {
        if payment > 0 && sim.user("Faucet").holdings.bundles_since_snapshot() >= 16 {
            snapshot_now(&mut sim, "Faucet");
        }
        let to = format!("U{}", payment % 3);
        sim.pay_amount("Faucet", &to, 10);
        let sent = sim.step();
        units.push(sent[0].package.witness.total_units());
    }
    // Before the first snapshot a package shows every payment so far; after, at most the 16
    // bundles since the latest snapshot and the snapshot itself.
    assert_eq!(&units[..16], &(1..=16).collect::<Vec<_>>()[..]);
    assert!(units[16..].iter().all(|&n| n <= 17), "{units:?}");
    assert_eq!(sim.balance("U0") + sim.balance("U1") + sim.balance("U2"), 600);
    assert_eq!(sim.total_supply_held(), 100_000);
}

#[test]
fn a_received_value_enters_the_recipients_snapshot_and_pays_on_without_its_provenance() {
    let mut sim = Sim::new(USERS);
    sim.pay("Alice", &[("Carol", &[(0, 99)])]);
    sim.step();
    assert_eq!(sim.user("Carol").holdings.received_since_snapshot(), 1);
    assert_eq!(judge(&sim, &honest_snapshot(&sim, "Carol")), Ok(Some(1)));
    snapshot_now(&mut sim, "Carol");
    sim.pay("Carol", &[("Eve", &[(0, 49)])]);
    let sent = sim.step();
    let package = package_for(&sent, "Carol", "Eve", (0, 49));
    // One node: Carol's bundles since her snapshot; Alice's history is no longer carried.
    assert_eq!(
        sim.shape(&package.witness),
        vec![("Carol".to_string(), vec![(3, 2), (2, 1)], "snap")]
    );
    sim.pay("Carol", &[("Bob", &[(50, 99)])]);
    sim.step();
    assert_eq!(sim.held("Eve"), vec![range(0, 49)]);
    assert_eq!(sim.held("Bob"), vec![range(50, 99), range(200, 299)]);
}

#[test]
fn a_value_delivered_after_the_snapshot_stays_spendable_the_old_way() {
    let mut sim = Sim::new(USERS);
    sim.pay("Alice", &[("Bob", &[(0, 99)])]);
    sim.finalize_block();
    let late = sim.apply_receipt("Alice");
    // Bob snapshots before the package reaches him: his list is his genesis range only.
    snapshot_now(&mut sim, "Bob");
    assert_eq!(
        sim.user("Bob").holdings.snapshot().map(|s| s.list.clone()),
        Some(list(&[(200, 299)]))
    );
    assert!(sim.deliver("Bob", &late[0].package).is_ok());
    // Acquired before his basis: no later snapshot may take it in, yet it pays as before.
    assert_eq!(sim.user("Bob").holdings.received_since_snapshot(), 0);
    snapshot_now(&mut sim, "Bob");
    sim.pay("Bob", &[("Carol", &[(0, 99)])]);
    let sent = sim.step();
    let package = package_for(&sent, "Bob", "Carol", (0, 99));
    assert_eq!(sim.shape(&package.witness)[0].2, "link");
    assert_eq!(sim.held("Carol"), vec![range(0, 99)]);
    // The same value sent in a later snapshot's evidence is refused: it predates the basis.
    let mut bob_evidence = evidence_of(&honest_snapshot(&sim, "Bob"));
    bob_evidence.incoming.push(late[0].package.clone());
    assert!(matches!(
        judge(&sim, &forged(&sim, "Bob", &[(0, 99), (200, 299)], bob_evidence)),
        Err(EntryError::Snapshot(SnapshotError::IncomingBeforeBasis {
            acquired: 1,
            basis: 3,
            ..
        }))
    ));
}

#[test]
fn a_snapshot_that_keeps_a_spent_range_or_claims_a_foreign_one_is_unsound() {
    let mut sim = Sim::new(USERS);
    sim.pay("Alice", &[("Bob", &[(0, 99)])]);
    sim.step();
    let honest = honest_snapshot(&sim, "Alice");
    assert_eq!(judge(&sim, &honest), Ok(Some(1)));
    let evidence = evidence_of(&honest);
    let kept_spent = forged(&sim, "Alice", &[(0, 199)], evidence.clone());
    assert_eq!(judge(&sim, &kept_spent), snapshot_refusal(SnapshotError::Unsound));
    let never_held = forged(&sim, "Alice", &[(100, 299)], evidence);
    assert_eq!(judge(&sim, &never_held), snapshot_refusal(SnapshotError::Unsound));
    // The proposer leaves it out with the same reason; no block can hold it.
    sim.pool
        .submit(&sim.chain, &kept_spent)
        .expect("the pool does not run the snapshot rule");
    let built = propose(&sim);
    assert_eq!(built.rejected[0].error, EntryError::Snapshot(SnapshotError::Unsound));
    assert!(built.applied.block.entries.is_empty());
}

#[test]
fn a_stale_snapshot_cannot_pay_a_value_spent_after_it() {
    let mut sim = Sim::new(USERS);
    snapshot_now(&mut sim, "Alice");
    let s1 = sim.user("Alice").holdings.snapshot().cloned().expect("snapshot");
    let to_bob = sim.raw_bundle("Alice", 2, &[("Bob", &[(0, 99)])]);
    sim.finalize_block();
    let to_carol = sim.raw_bundle("Alice", 3, &[("Carol", &[(0, 99)])]);
    sim.finalize_block();
    let anchor = WitnessAnchor::Snapshot(SnapshotAnchor {
        held: range(0, 199),
        proof: s1.list.prove(0).expect("index 0"),
    });
    let (u_bob, u_carol) = (sim.unit(&to_bob), sim.unit(&to_carol));
    // Bob, paid first from the snapshot, accepts.
    let first = package(vec![u_bob.clone(), s1.unit.clone()], 0, (0, 99), anchor.clone());
    assert_eq!(sim.verify_as("Bob", &first), Ok(2));
    // Carol is shown the whole chain since the snapshot: the spend to Bob is in it.
    let shown = package(
        vec![u_carol.clone(), u_bob.clone(), s1.unit.clone()],
        0,
        (0, 99),
        anchor.clone(),
    );
    assert_eq!(
        sim.verify_as("Carol", &shown),
        Err(VerifyError::ConflictingSpend {
            height: u_bob.height(),
            bundle_hash: u_bob.sidecar.bundle_hash()
        })
    );
    // Hiding it breaks the chain back to the snapshot.
    let hidden = package(vec![u_carol.clone(), s1.unit.clone()], 0, (0, 99), anchor);
    assert_eq!(
        sim.verify_as("Carol", &hidden),
        Err(VerifyError::PrevRefDiscontinuity {
            height: u_carol.height()
        })
    );
}

#[test]
fn a_value_spent_before_the_snapshot_has_no_proof_in_it() {
    let mut sim = Sim::new(USERS);
    sim.pay("Alice", &[("Bob", &[(0, 99)])]);
    sim.step();
    snapshot_now(&mut sim, "Alice");
    let snapshot = sim.user("Alice").holdings.snapshot().cloned().expect("snapshot");
    assert_eq!(snapshot.list, list(&[(100, 199)]));
    let again = sim.raw_bundle("Alice", 3, &[("Carol", &[(0, 99)])]);
    sim.finalize_block();
    let chain = vec![sim.unit(&again), snapshot.unit.clone()];
    let with = |held: (u64, u64)| {
        let anchor = WitnessAnchor::Snapshot(SnapshotAnchor {
            held: range(held.0, held.1),
            proof: snapshot.list.prove(0).expect("index 0"),
        });
        package(chain.clone(), 0, (0, 99), anchor)
    };
    assert_eq!(
        sim.verify_as("Carol", &with((0, 99))),
        Err(VerifyError::SnapshotProofInvalid { depth: 0 })
    );
    assert_eq!(
        sim.verify_as("Carol", &with((100, 199))),
        Err(VerifyError::SnapshotRangeMismatch { depth: 0 })
    );
}

#[test]
fn another_accounts_snapshot_or_a_plain_unit_is_no_anchor() {
    let mut sim = Sim::new(USERS);
    snapshot_now(&mut sim, "Bob");
    let bobs = sim.user("Bob").holdings.snapshot().cloned().expect("snapshot");
    let steal = sim.raw_bundle("Alice", 1, &[("Carol", &[(200, 299)])]);
    sim.finalize_block();
    let anchor = WitnessAnchor::Snapshot(SnapshotAnchor {
        held: range(200, 299),
        proof: bobs.list.prove(0).expect("index 0"),
    });
    let foreign = package(vec![sim.unit(&steal), bobs.unit.clone()], 0, (200, 299), anchor.clone());
    assert_eq!(
        sim.verify_as("Carol", &foreign),
        Err(VerifyError::ForeignUnit { depth: 0 })
    );
    let plain = package(vec![sim.unit(&steal)], 0, (200, 299), anchor);
    assert_eq!(
        sim.verify_as("Carol", &plain),
        Err(VerifyError::SnapshotAnchorNotSnapshot { depth: 0 })
    );
}

#[test]
fn a_snapshot_package_needs_the_payees_own_finalized_headers() {
    let mut sim = Sim::new(USERS);
    snapshot_now(&mut sim, "Alice");
    sim.pay("Alice", &[("Carol", &[(0, 99)])]);
    sim.finalize_block();
    let sent = sim.apply_receipt("Alice");
    let mut behind = sim.clone();
    behind.headers.remove(&1);
    assert_eq!(
        behind.verify_as("Carol", &sent[0].package),
        Err(VerifyError::UnknownHeader { height: 1 })
    );
    let mut forked = sim.clone();
    forked.headers.get_mut(&1).expect("header 1").state_root = Hash32([9; 32]);
    assert_eq!(
        forked.verify_as("Carol", &sent[0].package),
        Err(VerifyError::HeaderMismatch { height: 1 })
    );
    assert_eq!(sim.verify_as("Carol", &sent[0].package), Ok(2));
}

#[test]
fn a_snapshot_replayed_later_is_refused() {
    let mut sim = Sim::new(USERS);
    let s1 = sim.snapshot("Alice");
    sim.step();
    sim.pay("Alice", &[("Bob", &[(0, 99)])]);
    sim.step();
    // The same signed snapshot again: its seq is used.
    assert!(matches!(judge(&sim, &s1), Err(EntryError::StaleSeq { .. })));
    // A new snapshot claiming the old list after the spend: validators compute another.
    let replayed = forged(&sim, "Alice", &[(0, 199)], evidence_of(&honest_snapshot(&sim, "Alice")));
    assert_eq!(judge(&sim, &replayed), snapshot_refusal(SnapshotError::Unsound));
}

#[test]
fn a_coin_counted_twice_or_paid_to_someone_else_is_refused() {
    let mut sim = Sim::new(USERS);
    sim.pay("Alice", &[("Carol", &[(0, 99)]), ("Eve", &[(100, 149)])]);
    let sent = sim.step();
    let mut twice = evidence_of(&honest_snapshot(&sim, "Carol"));
    twice.incoming.push(twice.incoming[0].clone());
    assert!(matches!(
        judge(&sim, &forged(&sim, "Carol", &[(0, 99)], twice)),
        Err(EntryError::Snapshot(SnapshotError::List(_)))
    ));
    let mut foreign = evidence_of(&honest_snapshot(&sim, "Carol"));
    foreign
        .incoming
        .push(package_for(&sent, "Alice", "Eve", (100, 149)).clone());
    assert_eq!(
        judge(&sim, &forged(&sim, "Carol", &[(0, 99), (100, 149)], foreign)),
        snapshot_refusal(SnapshotError::IncomingInvalid {
            index: 1,
            source: VerifyError::WrongRecipient { depth: 0 }
        })
    );
}

#[test]
fn evidence_that_does_not_run_from_head_to_basis_is_refused() {
    let mut sim = Sim::new(USERS);
    snapshot_now(&mut sim, "Alice");
    for to in ["Bob", "Carol", "Eve"] {
        sim.pay_amount("Alice", to, 10);
        sim.step();
    }
    let honest = honest_snapshot(&sim, "Alice");
    assert_eq!(judge(&sim, &honest), Ok(Some(1)));
    let claim = sim.user("Alice").holdings.held_ranges();
    let claim: Vec<(u64, u64)> = claim.iter().map(|r| (r.begin(), r.end())).collect();
    let with = |edit: &dyn Fn(&mut SnapshotEvidence)| {
        let mut evidence = evidence_of(&honest);
        edit(&mut evidence);
        judge(&sim, &forged(&sim, "Alice", &claim, evidence))
    };
    assert_eq!(
        with(&|e| e.basis = list(&[(0, 299)])),
        snapshot_refusal(SnapshotError::BasisMismatch)
    );
    assert_eq!(
        with(&|e| {
            e.own.remove(0);
        }),
        snapshot_refusal(SnapshotError::OwnHistoryMismatch)
    );
    assert!(matches!(
        with(&|e| {
            e.own.remove(1);
        }),
        Err(EntryError::Snapshot(SnapshotError::OwnHistoryGap { .. }))
    ));
    assert_eq!(
        with(&|e| {
            e.own.pop();
        }),
        snapshot_refusal(SnapshotError::OwnHistoryMismatch)
    );
    // An own unit judged at a height where it is not final yet.
    let own_height = evidence_of(&honest).own[0].height();
    assert_eq!(
        check_snapshot(
            &rules(&sim),
            &sim.addr("Alice"),
            sim.chain.leaf(&sim.addr("Alice")),
            &honest.envelope.holdings_root.expect("root"),
            &evidence_of(&honest),
            own_height,
        ),
        Err(SnapshotError::OwnUnitNotFinal { height: own_height })
    );
}

#[test]
fn evidence_bombs_and_full_blocks_are_bounded() {
    let names: Vec<String> = (0..17).map(|i| format!("S{i}")).collect();
    let allocations: Vec<(u64, u64)> = (0..17).map(|i| (i * 10, i * 10 + 9)).collect();
    let users: Vec<(&str, &[(u64, u64)])> = names
        .iter()
        .zip(&allocations)
        .map(|(name, range)| (name.as_str(), std::slice::from_ref(range)))
        .collect();
    let mut sim = Sim::new(&users);
    sim.pay_amount("S0", "S1", 5);
    sim.step();
    let honest = honest_snapshot(&sim, "S0");
    let mut long = evidence_of(&honest);
    long.own = vec![long.own[0].clone(); 513];
    assert_eq!(
        judge(&sim, &forged(&sim, "S0", &[(5, 9)], long)),
        snapshot_refusal(SnapshotError::HistoryTooLong { units: 513 })
    );
    let mut wide = evidence_of(&honest_snapshot(&sim, "S1"));
    wide.incoming = vec![wide.incoming[0].clone(); 257];
    assert!(matches!(
        judge(&sim, &forged(&sim, "S1", &[(0, 4), (10, 19)], wide)),
        Err(EntryError::Snapshot(SnapshotError::EvidenceTooLarge {
            packages: 257,
            ..
        }))
    ));
    // Seventeen honest snapshots: a block takes sixteen, the last waits for the next block.
    for name in &names {
        sim.snapshot(name);
    }
    let built = propose(&sim);
    assert_eq!(built.applied.block.entries.len(), 16);
    assert_eq!(built.rejected.len(), 1);
    assert_eq!(
        built.rejected[0].error,
        EntryError::Snapshot(SnapshotError::BlockBudget)
    );
}

#[test]
fn a_block_whose_evidence_was_swapped_is_refused_by_followers() {
    let mut sim = Sim::new(USERS);
    sim.pay("Alice", &[("Carol", &[(0, 99)])]);
    sim.step();
    sim.snapshot("Carol");
    let built = propose(&sim);
    let block = built.applied.block;
    assert!(apply_block_verified(&sim.chain, &block, Vec::new(), Some(&rules(&sim))).is_ok());
    let mut swapped = block.clone();
    if let Some(evidence) = swapped.entries[0].evidence.as_mut() {
        evidence.incoming.clear();
    }
    assert_eq!(
        apply_block_verified(&sim.chain, &swapped, Vec::new(), Some(&rules(&sim))).err(),
        Some(BlockError::InvalidEntry {
            index: 0,
            source: EntryError::Snapshot(SnapshotError::Unsound)
        })
    );
    // A node without the chain's headers cannot judge a snapshot, so it refuses the block.
    assert_eq!(
        apply_block(&sim.chain, &block).err(),
        Some(BlockError::InvalidEntry {
            index: 0,
            source: EntryError::Snapshot(SnapshotError::NoHistory)
        })
    );
}

#[test]
fn a_busy_payers_wallet_forgets_the_values_it_paid_long_ago() {
    use ezchain_protocol::ownership::{ARCHIVED_VALUES_KEPT, RecordStatus};
    let mut sim = Sim::new(&[("Faucet", &[(0, 99_999)]), ("U0", &[]), ("U1", &[])]);
    for payment in 0..ARCHIVED_VALUES_KEPT + 40 {
        if sim.user("Faucet").holdings.bundles_since_snapshot() >= 16 {
            snapshot_now(&mut sim, "Faucet");
        }
        sim.pay_amount("Faucet", &format!("U{}", payment % 2), 1);
        sim.step();
    }
    let faucet = &sim.user("Faucet").holdings;
    let archived = faucet
        .records()
        .iter()
        .filter(|record| record.status == RecordStatus::Archived)
        .count();
    assert_eq!(archived, ARCHIVED_VALUES_KEPT);
    assert_eq!(faucet.checkpoints().len(), ARCHIVED_VALUES_KEPT);
    // The newest checkpoints are the ones kept, each still backed by its archive.
    let newest = faucet.checkpoints().last().copied().expect("a checkpoint");
    assert!(ezchain_protocol::witness::OwnCheckpoints::archived_witness(faucet, &newest).is_some());
    assert_eq!(
        sim.balance("U0") + sim.balance("U1"),
        (ARCHIVED_VALUES_KEPT + 40) as u64
    );
}

#[test]
fn a_package_older_than_every_kept_own_unit_is_refused_not_stored_unspendable() {
    use ezchain_protocol::ownership::{OWN_UNITS_KEPT, OwnershipError};
    let mut sim = Sim::new(&[("Alice", &[(0, 99)]), ("Bob", &[(1_000, 9_999)]), ("Carol", &[])]);
    sim.pay("Alice", &[("Bob", &[(0, 99)])]);
    sim.finalize_block();
    let late = sim.apply_receipt("Alice");
    for _ in 0..=OWN_UNITS_KEPT {
        if sim.user("Bob").holdings.bundles_since_snapshot() >= 16 {
            snapshot_now(&mut sim, "Bob");
        }
        sim.pay_amount("Bob", "Carol", 1);
        sim.step();
    }
    assert!(sim.user("Bob").holdings.own_units().len() <= OWN_UNITS_KEPT);
    assert_eq!(
        sim.deliver("Bob", &late[0].package),
        Err(OwnershipError::AcquiredTooLongAgo { acquisition_height: 1 })
    );
}

#[test]
fn a_verdict_kept_from_admission_is_reused_only_on_the_same_leaf() {
    let mut sim = Sim::new(USERS);
    sim.pay("Alice", &[("Carol", &[(0, 99)])]);
    sim.step();
    let snapshot = honest_snapshot(&sim, "Carol");
    let height = sim.chain.height + 1;
    let checked = sim
        .chain
        .check_snapshot_once(snapshot.verify(CHAIN_ID).expect("well-formed"), height, &rules(&sim))
        .expect("honest");
    // Kept: a proposer without the chain's headers still includes it, with the same result a
    // follower that runs the rule reaches.
    let built = build_block_verified(&sim.chain, vec![checked.clone()], height, sim.time_ms + 1, None).expect("builds");
    assert!(built.rejected.is_empty(), "{:?}", built.rejected);
    let followed = apply_block_verified(&sim.chain, &built.applied.block, Vec::new(), Some(&rules(&sim)))
        .expect("a follower agrees");
    assert_eq!(followed.state.state_root(), built.applied.state.state_root());
    // Reached on another leaf of the sender (same seq, other history), it is not reused: the
    // rule runs again, and without headers it cannot.
    let mut other = sim.clone();
    other.pay("Carol", &[("Eve", &[(0, 9)])]);
    other.step();
    let mut this = sim.clone();
    this.pay("Carol", &[("Eve", &[(0, 19)])]);
    this.step();
    let elsewhere = other
        .chain
        .check_snapshot_once(
            honest_snapshot(&other, "Carol").verify(CHAIN_ID).expect("well-formed"),
            other.chain.height + 1,
            &rules(&other),
        )
        .expect("honest there");
    let built = build_block_verified(
        &this.chain,
        vec![elsewhere],
        this.chain.height + 1,
        this.time_ms + 1,
        None,
    )
    .expect("builds");
    assert_eq!(built.rejected[0].error, EntryError::Snapshot(SnapshotError::NoHistory));
}

#[test]
fn a_witness_over_the_size_limit_makes_a_snapshot_due_before_the_bundle_count_does() {
    let mut sim = Sim::new(&[("Faucet", &[(0, 99_999)]), ("U0", &[]), ("U1", &[]), ("U2", &[])]);
    let policy = SnapshotPolicy::default();
    let count_only = SnapshotPolicy {
        package_bytes: 0,
        ..SnapshotPolicy::default()
    };
    // Bundles of 3 transfers × 64 scattered coins: each own unit is kilobytes, so the witness of
    // what the faucet still holds outgrows the limit long before 16 bundles.
    let mut bundles = 0;
    while !sim.user("Faucet").holdings.snapshot_due(&policy) {
        assert!(
            bundles < policy.every_bundles,
            "no size trigger within {bundles} bundles"
        );
        let base = bundles as u64 * 1_000;
        let scattered = |tx: u64| -> Vec<(u64, u64)> {
            (0..64)
                .map(|i| base + tx * 200 + 2 * i)
                .map(|coin| (coin, coin))
                .collect()
        };
        let (a, b, c) = (scattered(0), scattered(1), scattered(2));
        sim.pay("Faucet", &[("U0", &a), ("U1", &b), ("U2", &c)]);
        sim.step();
        bundles += 1;
    }
    let holdings = &sim.user("Faucet").holdings;
    assert!(bundles < policy.every_bundles, "{bundles} bundles");
    assert!(holdings.largest_shortenable_witness() > policy.package_bytes);
    assert!(
        !holdings.snapshot_due(&count_only),
        "only the size made it due after {bundles} bundles"
    );
    // The snapshot cuts the witnesses back; the next payment's package is small again.
    snapshot_now(&mut sim, "Faucet");
    assert!(!sim.user("Faucet").holdings.snapshot_due(&policy));
    sim.pay_amount("Faucet", "U0", 10);
    let sent = sim.step();
    let size = codec::encoded_len(&sent[0].package);
    assert!(
        size < policy.package_bytes,
        "package of {size} bytes after the snapshot"
    );
    assert_eq!(sim.total_supply_held(), 100_000);
}
