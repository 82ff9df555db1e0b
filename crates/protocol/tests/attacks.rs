//! The attacks of upstream-protocol.md §12 (F1–F3), the worked example's N5–N7, and the
//! upstream counterexamples that apply to this design. Each is rejected with its own error.

mod support;

use ezchain_protocol::mempool::{Admission, AdmissionError};
use ezchain_protocol::state::{BlockError, EntryError};
use ezchain_protocol::witness::{PriorWitnessLink, VerifyError, WitnessAnchor};
use ezchain_protocol::*;
use support::*;

const USERS: &[(&str, &[(u64, u64)])] = &[
    ("Alice", &[(0, 99), (100, 199)]),
    ("Bob", &[(200, 299)]),
    ("Carol", &[]),
    ("Eve", &[]),
    ("Grace", &[(2700, 2999)]),
    ("Mallory", &[]),
];

#[test]
fn f1_genesis_owner_hides_an_earlier_spend() {
    let mut sim = Sim::new(USERS);
    let to_eve = sim.raw_bundle("Alice", 1, &[("Eve", &[(0, 99)])]);
    sim.finalize_block();
    let to_bob = sim.raw_bundle("Alice", 2, &[("Bob", &[(0, 99)])]);
    sim.finalize_block();
    let (u1, u2) = (sim.unit(&to_eve), sim.unit(&to_bob));
    // Eve got the coin first, with a complete history: accepted.
    let eve_pkg = package(vec![u1.clone()], 0, (0, 99), sim.genesis_anchor("Alice", (0, 99)));
    assert_eq!(sim.verify_as("Eve", &eve_pkg), Ok(1));
    // Bob is shown only the second spend: the genesis tail rule catches the hidden seq 1.
    let hidden = package(vec![u2.clone()], 0, (0, 99), sim.genesis_anchor("Alice", (0, 99)));
    assert_eq!(
        sim.verify_as("Bob", &hidden),
        Err(VerifyError::TailRuleViolation { depth: 0 })
    );
    // Shown both, the conflict scan catches the earlier spend.
    let shown = package(vec![u2, u1.clone()], 0, (0, 99), sim.genesis_anchor("Alice", (0, 99)));
    assert_eq!(
        sim.verify_as("Bob", &shown),
        Err(VerifyError::ConflictingSpend {
            height: 1,
            bundle_hash: u1.sidecar.bundle_hash()
        })
    );
}

#[test]
fn f1_hidden_spend_after_a_hand_over() {
    let mut sim = Sim::new(USERS);
    sim.pay("Alice", &[("Bob", &[(0, 99)])]);
    let h1 = sim.step();
    let w1 = package_for(&h1, "Alice", "Bob", (0, 99)).clone();
    let to_eve = sim.raw_bundle("Bob", 1, &[("Eve", &[(0, 99)])]);
    sim.finalize_block();
    let to_carol = sim.raw_bundle("Bob", 2, &[("Carol", &[(0, 99)])]);
    sim.finalize_block();
    let link = |chain: Vec<ConfirmedBundleUnit>| {
        let anchor = WitnessAnchor::PriorWitness(PriorWitnessLink {
            acquire_tx: w1.target_tx.clone(),
            prior_witness: Box::new(w1.witness.clone()),
        });
        package(chain, 0, (0, 99), anchor)
    };
    let (b1, b2) = (sim.unit(&to_eve), sim.unit(&to_carol));
    assert_eq!(sim.verify_as("Eve", &link(vec![b1.clone()])), Ok(2));
    assert_eq!(
        sim.verify_as("Carol", &link(vec![b2.clone()])),
        Err(VerifyError::TailRuleViolation { depth: 0 })
    );
    assert!(matches!(
        sim.verify_as("Carol", &link(vec![b2, b1])),
        Err(VerifyError::ConflictingSpend { height: 2, .. })
    ));
}

#[test]
fn f2_self_made_tree_and_unknown_headers_are_rejected() {
    // Mallory runs a private chain with the same chain id in which she "owns" [0, 99].
    let mut private = Sim::new(&[
        ("Alice", &[(0, 99), (100, 199)]),
        ("Bob", &[(200, 299)]),
        ("Mallory", &[(5000, 5099)]),
    ]);
    let forged = private.raw_bundle("Mallory", 1, &[("Bob", &[(5000, 5099)])]);
    private.finalize_block();
    private.finalize_block();
    let mut forged_unit = private.unit(&forged);
    let mut real = Sim::new(USERS);
    real.finalize_block();
    // Height 1 exists on the real chain with another header: mismatch.
    let pkg = package(
        vec![forged_unit.clone()],
        0,
        (5000, 5099),
        real.genesis_anchor("Mallory", (5000, 5099)),
    );
    assert_eq!(
        real.verify_as("Bob", &pkg),
        Err(VerifyError::HeaderMismatch { height: 1 })
    );
    // A height the verifier has not finalized: unknown.
    forged_unit.receipt.header.height = 9;
    let pkg = package(
        vec![forged_unit],
        0,
        (5000, 5099),
        real.genesis_anchor("Mallory", (5000, 5099)),
    );
    assert_eq!(
        real.verify_as("Bob", &pkg),
        Err(VerifyError::UnknownHeader { height: 9 })
    );
}

#[test]
fn f3_genesis_allocation_claimed_in_the_package_is_not_trusted() {
    let mut sim = Sim::new(USERS);
    // Mallory's bundle is really on chain (consensus orders, it does not check ownership).
    let mint = sim.raw_bundle("Mallory", 1, &[("Bob", &[(5000, 5099)])]);
    sim.finalize_block();
    let pkg = package(
        vec![sim.unit(&mint)],
        0,
        (5000, 5099),
        sim.genesis_anchor("Mallory", (5000, 5099)),
    );
    assert_eq!(
        sim.verify_as("Bob", &pkg),
        Err(VerifyError::UnknownGenesisAllocation {
            owner: sim.addr("Mallory"),
            range: range(5000, 5099)
        })
    );
    // Claiming someone else's real allocation fails too: the anchor owner must be the sender.
    let pkg = package(
        vec![sim.unit(&mint)],
        0,
        (5000, 5099),
        sim.genesis_anchor("Alice", (0, 99)),
    );
    assert_eq!(
        sim.verify_as("Bob", &pkg),
        Err(VerifyError::GenesisAnchorMismatch { depth: 0 })
    );
}

#[test]
fn n5_same_block_acquisition_exactly_one_custody_chain_verifies() {
    let mut sim = Sim::new(USERS);
    // Height 1: Grace pays Alice [2700,2749]; in the same block Alice's bundle also pays that
    // range to Eve (she did not hold it yet when signing, but the inclusive boundary counts it).
    sim.pay("Grace", &[("Alice", &[(2700, 2749)])]);
    let a1 = sim.raw_bundle("Alice", 1, &[("Bob", &[(0, 49)]), ("Eve", &[(2700, 2749)])]);
    let h1 = sim.step();
    let w3 = package_for(&h1, "Grace", "Alice", (2700, 2749)).clone();
    let a2 = sim.raw_bundle("Alice", 2, &[("Carol", &[(2700, 2749)])]);
    sim.finalize_block();
    let link = |chain: Vec<ConfirmedBundleUnit>, tx: usize| {
        let anchor = WitnessAnchor::PriorWitness(PriorWitnessLink {
            acquire_tx: w3.target_tx.clone(),
            prior_witness: Box::new(w3.witness.clone()),
        });
        package(chain, tx, (2700, 2749), anchor)
    };
    let (u_a1, u_a2) = (sim.unit(&a1), sim.unit(&a2));
    assert_eq!(sim.verify_as("Eve", &link(vec![u_a1.clone()], 1)), Ok(2), "Eve accepts");
    assert!(matches!(
        sim.verify_as("Carol", &link(vec![u_a2.clone(), u_a1], 0)),
        Err(VerifyError::ConflictingSpend { height: 1, .. })
    ));
    assert_eq!(
        sim.verify_as("Carol", &link(vec![u_a2], 0)),
        Err(VerifyError::TailRuleViolation { depth: 0 }),
        "hiding U_A1 breaks the tail rule"
    );
}

#[test]
fn n6_paying_an_already_paid_range_again_is_caught() {
    let mut sim = Sim::new(USERS);
    let a1 = sim.raw_bundle("Alice", 1, &[("Bob", &[(0, 99)])]);
    sim.finalize_block();
    let a2 = sim.raw_bundle("Alice", 2, &[("Eve", &[(100, 149)]), ("Carol", &[(0, 99)])]);
    sim.finalize_block();
    let pkg = package(
        vec![sim.unit(&a2), sim.unit(&a1)],
        1,
        (0, 99),
        sim.genesis_anchor("Alice", (0, 99)),
    );
    assert!(matches!(
        sim.verify_as("Carol", &pkg),
        Err(VerifyError::ConflictingSpend { height: 1, .. })
    ));
    // Paying the same coin twice inside one bundle never reaches a block.
    let double = sim.sign_raw(
        "Alice",
        3,
        1_000_000,
        &[("Eve", &[(150, 159)]), ("Carol", &[(155, 160)])],
    );
    assert!(matches!(
        sim.pool.submit(&sim.chain, &double),
        Err(AdmissionError::Entry(EntryError::Bundle(
            bundle::BundleError::DoubleSpendInBundle
        )))
    ));
}

#[test]
fn checkpoint_anchor_only_for_the_exact_range() {
    let mut sim = Sim::new(USERS);
    sim.pay("Alice", &[("Bob", &[(0, 99)])]);
    sim.step();
    sim.pay("Bob", &[("Alice", &[(0, 99)])]);
    let h2 = sim.step();
    let back = trim_for_recipient(package_for(&h2, "Bob", "Alice", (0, 99)).clone(), &sim.addr("Alice"));
    assert_eq!(
        sim.verify_as("Alice", &back),
        Ok(2),
        "Alice's own archive backs the checkpoint"
    );
    assert!(matches!(
        back.witness.nodes().nth(1).unwrap().anchor,
        WitnessAnchor::Checkpoint(_)
    ));
    assert_eq!(sim.balance("Alice"), 200);
    let mut partial = back.clone();
    partial.target_value = range(0, 49);
    let verifier = sim.user("Alice");
    let result =
        Verifier::new(&sim.genesis, &sim.headers, &verifier.holdings, verifier.key.address()).verify_package(&partial);
    assert_eq!(
        result.map(|_| ()),
        Err(VerifyError::CheckpointRangeMismatch { depth: 1 })
    );
    // A checkpoint the verifier never made is unknown even when the owner matches.
    let mut foreign = back;
    if let WitnessAnchor::PriorWitness(link) = &mut foreign.witness.anchor
        && let WitnessAnchor::Checkpoint(anchor) = &mut link.prior_witness.anchor
    {
        anchor.checkpoint.unit.seq = 9;
    }
    let result =
        Verifier::new(&sim.genesis, &sim.headers, &verifier.holdings, verifier.key.address()).verify_package(&foreign);
    assert_eq!(result.map(|_| ()), Err(VerifyError::UnknownCheckpoint { depth: 1 }));
}

#[test]
fn counterexample_replayed_committed_bundle() {
    let mut sim = Sim::new(USERS);
    let a1 = sim.pay("Alice", &[("Bob", &[(0, 9)])]);
    sim.step();
    assert_eq!(
        sim.pool.submit(&sim.chain, &a1),
        Err(AdmissionError::Entry(EntryError::StaleSeq { confirmed: 1, got: 1 }))
    );
    let block = block_with(&sim, vec![a1]);
    assert!(matches!(
        apply_block(&sim.chain, &block),
        Err(BlockError::InvalidEntry {
            index: 0,
            source: EntryError::StaleSeq { .. }
        })
    ));
}

#[test]
fn counterexample_skipped_seq() {
    let sim = Sim::new(USERS);
    let skipping = sim.sign_raw("Alice", 2, 1_000_000, &[("Bob", &[(0, 9)])]);
    let mut pool = sim.pool.clone();
    assert_eq!(
        pool.submit(&sim.chain, &skipping),
        Err(AdmissionError::Entry(EntryError::SeqGap { expected: 1, got: 2 }))
    );
}

#[test]
fn counterexample_forged_and_high_s_signatures_in_a_block() {
    let sim = Sim::new(USERS);
    let mut forged = sim.sign_raw("Alice", 1, 1_000_000, &[("Bob", &[(0, 9)])]);
    forged.envelope.signature = key_of("Mallory").sign(&forged.envelope.sighash());
    let result = apply_block(&sim.chain, &block_with(&sim, vec![forged.clone()]));
    assert!(matches!(
        result,
        Err(BlockError::InvalidEntry {
            source: EntryError::Bundle(bundle::BundleError::SignerMismatch { .. }),
            ..
        })
    ));
    let mut malleated = sim.sign_raw("Alice", 1, 1_000_000, &[("Bob", &[(0, 9)])]);
    malleated.envelope.signature = malleated.envelope.signature.high_s_twin();
    let mut pool = sim.pool.clone();
    assert!(matches!(
        pool.submit(&sim.chain, &malleated),
        Err(AdmissionError::Entry(EntryError::Bundle(
            bundle::BundleError::Signature(signature::SignatureError::HighS)
        )))
    ));
    let result = apply_block(&sim.chain, &block_with(&sim, vec![malleated]));
    assert!(matches!(result, Err(BlockError::InvalidEntry { .. })));
}

#[test]
fn counterexample_expired_bundle() {
    let mut sim = Sim::new(USERS);
    sim.finalize_block();
    let expired = sim.sign_raw("Alice", 1, 1, &[("Bob", &[(0, 9)])]);
    assert_eq!(
        sim.pool.submit(&sim.chain, &expired),
        Err(AdmissionError::Entry(EntryError::Expired {
            expiry_height: 1,
            height: 2
        }))
    );
    assert!(matches!(
        apply_block(&sim.chain, &block_with(&sim, vec![expired])),
        Err(BlockError::InvalidEntry {
            source: EntryError::Expired { .. },
            ..
        })
    ));
    // The pool also drops a pending bundle once a newer height makes it expire.
    let soon = sim.sign_raw("Alice", 1, 2, &[("Bob", &[(0, 9)])]);
    sim.pool.submit(&sim.chain, &soon).unwrap();
    let mut later = sim.chain.clone();
    later.height = 2;
    sim.pool.prune(&later);
    assert!(sim.pool.is_empty());
}

#[test]
fn counterexample_conflicting_replacement_and_fee_bump() {
    let sim = Sim::new(USERS);
    let mut pool = sim.pool.clone();
    let first = sim.sign_raw("Alice", 1, 1_000_000, &[("Bob", &[(0, 9)])]);
    assert_eq!(pool.submit(&sim.chain, &first), Ok(Admission::New));
    assert_eq!(pool.submit(&sim.chain, &first), Ok(Admission::Duplicate));
    let other = sim.sign_raw("Alice", 1, 1_000_000, &[("Carol", &[(0, 9)])]);
    assert_eq!(
        pool.submit(&sim.chain, &other),
        Err(AdmissionError::ConflictingPending { pending_seq: 1 })
    );
    let bump = |fee: u64| {
        let params = bundle::EnvelopeParams {
            chain_id: CHAIN_ID,
            seq: 1,
            expiry_height: 1_000_000,
            fee,
            anti_spam_nonce: 9,
        };
        Submission::sign(&key_of("Alice"), first.sidecar.clone(), &params)
    };
    assert_eq!(
        pool.submit(&sim.chain, &bump(0)),
        Err(AdmissionError::FeeNotHigher { old_fee: 0, new_fee: 0 })
    );
    assert_eq!(pool.submit(&sim.chain, &bump(5)), Ok(Admission::Replace { old_fee: 0 }));
    assert_eq!(pool.get(&sim.addr("Alice")).unwrap().fee(), 5);
    assert_eq!(
        pool.changes(),
        sim.pool.changes() + 2,
        "the new bundle and its fee bump changed the pool; repeats and refusals did not"
    );
    let mut full = ezchain_protocol::mempool::PendingPool::new(1);
    full.submit(&sim.chain, &first).unwrap();
    let bob = sim.sign_raw("Bob", 1, 1_000_000, &[("Carol", &[(200, 209)])]);
    assert_eq!(
        full.submit(&sim.chain, &bob),
        Err(AdmissionError::PoolFull { capacity: 1 })
    );
}

/// Found by `ezchain bench`: at saturation equal-fee bundles were taken by address order, so
/// the same senders lost every block (p99 finality = the whole run).
#[test]
fn a_saturated_pool_serves_equal_fees_in_arrival_order() {
    let sim = Sim::new(USERS);
    let mut pool = sim.pool.clone();
    let mut senders = vec!["Alice", "Bob", "Grace"];
    senders.sort_by_key(|name| std::cmp::Reverse(sim.addr(name).addr_key()));
    let ranges = |name: &str| sim.held(name)[0];
    for name in &senders {
        let value = ranges(name);
        let bundle = sim.sign_raw(name, 1, 1_000_000, &[("Carol", &[(value.begin(), value.begin())])]);
        assert_eq!(pool.submit(&sim.chain, &bundle), Ok(Admission::New));
    }
    let picked: Vec<Address> = pool.snapshot(2).iter().map(|s| s.sender()).collect();
    assert_eq!(
        picked,
        vec![sim.addr(senders[0]), sim.addr(senders[1])],
        "first come, first served"
    );
}

#[test]
fn tampered_proposals_get_no_acceptance() {
    let mut sim = Sim::new(USERS);
    let a = sim.sign_raw("Alice", 1, 1_000_000, &[("Bob", &[(0, 9)])]);
    let b = sim.sign_raw("Bob", 1, 1_000_000, &[("Carol", &[(200, 209)])]);
    let built = build_block(&sim.chain, &[a.clone(), b.clone(), a.clone()], 1, sim.time_ms + 1).unwrap();
    assert_eq!(
        built.rejected.len(),
        1,
        "a second bundle of the same sender is left out"
    );
    let good = built.applied.block;
    assert!(apply_block(&sim.chain, &good).is_ok());
    let mut wrong_state = good.clone();
    wrong_state.header.state_root = Hash32([7u8; 32]);
    assert_eq!(
        apply_block(&sim.chain, &wrong_state).err(),
        Some(BlockError::StateRootMismatch)
    );
    let mut wrong_diff = good.clone();
    wrong_diff.header.diff_root = Hash32([7u8; 32]);
    assert_eq!(
        apply_block(&sim.chain, &wrong_diff).err(),
        Some(BlockError::DiffRootMismatch)
    );
    let mut unsorted = good.clone();
    unsorted.entries.reverse();
    assert_eq!(
        apply_block(&sim.chain, &unsorted).err(),
        Some(BlockError::UnsortedEntries { index: 1 })
    );
    let mut duplicated = good.clone();
    duplicated.entries.push(duplicated.entries[1].clone());
    assert_eq!(
        apply_block(&sim.chain, &duplicated).err(),
        Some(BlockError::UnsortedEntries { index: 2 })
    );
    let mut wrong_parent = good.clone();
    wrong_parent.header.prev_hash = Hash32::ZERO;
    assert_eq!(
        apply_block(&sim.chain, &wrong_parent).err(),
        Some(BlockError::WrongParent)
    );
    let mut wrong_height = good.clone();
    wrong_height.header.height = 2;
    assert!(matches!(
        apply_block(&sim.chain, &wrong_height),
        Err(BlockError::WrongHeight { .. })
    ));
    let mut backwards = good.clone();
    backwards.header.timestamp_ms = 0;
    assert!(matches!(
        apply_block(&sim.chain, &backwards),
        Err(BlockError::TimestampRegressed { .. })
    ));
    // A proposer that drops one sender's entry but keeps the header is caught by the roots.
    let mut dropped = good.clone();
    dropped.entries.pop();
    assert_eq!(
        apply_block(&sim.chain, &dropped).err(),
        Some(BlockError::DiffRootMismatch)
    );
    sim.time_ms += 1;
}

/// A block at the next height holding `submissions` as given, with roots that would be right
/// if the entries were valid: validation must fail on the entries themselves.
fn block_with(sim: &Sim, submissions: Vec<Submission>) -> Block {
    let header = build_block(&sim.chain, &[], sim.chain.height + 1, sim.time_ms + 1)
        .unwrap()
        .applied
        .block
        .header;
    let entries: Vec<BlockEntry> = submissions;
    Block { header, entries }
}

#[test]
fn a_self_payment_never_reaches_a_block_so_its_coins_stay_spendable() {
    let mut sim = Sim::new(USERS);
    let to_self = sim.sign_raw("Alice", 1, 1_000_000, &[("Alice", &[(0, 9)])]);
    let mut pool = sim.pool.clone();
    assert_eq!(
        pool.submit(&sim.chain, &to_self),
        Err(AdmissionError::Entry(EntryError::Bundle(
            bundle::BundleError::SelfTransfer { index: 0 }
        )))
    );
    // A proposer that includes it anyway has its block refused by every follower.
    assert!(matches!(
        apply_block(&sim.chain, &block_with(&sim, vec![to_self])),
        Err(BlockError::InvalidEntry {
            index: 0,
            source: EntryError::Bundle(bundle::BundleError::SelfTransfer { index: 0 })
        })
    ));
    // The coins are untouched: Alice still pays them to Bob, and Bob's verifier accepts them.
    sim.pay("Alice", &[("Bob", &[(0, 9)])]);
    sim.step();
    assert_eq!(sim.balance("Bob"), 110, "Bob's 100 from genesis and the 10 from Alice");
    assert_eq!(sim.balance("Alice"), 190);
}

/// Reusing verifications (the mempool's, or a parallel pre-check) must never let an entry in
/// that was not itself verified: a verification of another submission proves nothing.
#[test]
fn a_reused_verification_of_another_submission_does_not_admit_a_forged_entry() {
    let sim = Sim::new(USERS);
    let honest = sim.sign_raw("Alice", 1, 1_000_000, &[("Bob", &[(0, 9)])]);
    let honest_verified = honest.verify(sim.chain.chain_id).expect("honest bundle verifies");
    // Same sidecar and envelope fields, signed by someone else.
    let mut forged = honest.clone();
    forged.envelope.signature = key_of("Mallory").sign(&forged.envelope.sighash());
    let block = block_with(&sim, vec![forged]);
    let result = apply_block_verified(&sim.chain, &block, vec![Some(honest_verified.clone())], None);
    assert!(matches!(
        result,
        Err(BlockError::InvalidEntry {
            index: 0,
            source: EntryError::Bundle(bundle::BundleError::SignerMismatch { .. }),
        })
    ));
    // The honest block built from the reused verification is the block `build_block` makes,
    // and followers with or without the verification accept it alike.
    let height = sim.chain.height + 1;
    let built = build_block(&sim.chain, std::slice::from_ref(&honest), height, sim.time_ms + 1).expect("builds");
    let reused =
        build_block_verified(&sim.chain, vec![honest_verified.clone()], height, sim.time_ms + 1, None).expect("builds");
    assert_eq!(built.applied.block, reused.applied.block);
    let block = &built.applied.block;
    let plain = apply_block(&sim.chain, block).expect("valid");
    let known = apply_block_verified(&sim.chain, block, vec![Some(honest_verified)], None).expect("valid");
    assert_eq!(plain.state.state_root(), known.state.state_root());
    // A verification made for another chain is refused on this one.
    let mut other_chain = sim.sign_raw("Alice", 1, 1_000_000, &[("Bob", &[(0, 9)])]);
    other_chain.envelope.chain_id += 1;
    other_chain.envelope.signature = key_of("Alice").sign(&other_chain.envelope.sighash());
    let foreign = other_chain
        .verify(sim.chain.chain_id + 1)
        .expect("valid on its own chain");
    assert!(matches!(
        sim.chain.check_verified(&foreign, height),
        Err(EntryError::Bundle(bundle::BundleError::WrongChain { .. }))
    ));
}
