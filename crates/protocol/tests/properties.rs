//! Property tests over random honest histories: encodings round-trip, followers reproduce the
//! proposer's state, every honest payment verifies with supply conserved, and any single
//! mutation of a valid package is rejected. Decoding arbitrary bytes never panics.

mod support;

use ezchain_protocol::codec::{decode, encode};
use ezchain_protocol::witness::{GenesisAnchor, PriorWitnessLink, VerifyBudget, WitnessAnchor};
use ezchain_protocol::*;
use proptest::prelude::*;
use support::*;

const NAMES: [&str; 5] = ["Ann", "Ben", "Cat", "Dan", "Eli"];

fn fresh_sim() -> Sim {
    Sim::new(&[
        ("Ann", &[(0, 999)]),
        ("Ben", &[(1000, 1499), (1500, 1999)]),
        ("Cat", &[(2000, 2999)]),
        ("Dan", &[(3000, 3099)]),
        ("Eli", &[]),
    ])
}

/// One round: (sender, recipient, amount) triples; senders may repeat (a later one waits).
type Round = Vec<(usize, usize, u64)>;

fn rounds() -> impl Strategy<Value = Vec<Round>> {
    proptest::collection::vec(proptest::collection::vec((0..5usize, 0..5usize, 1..400u64), 1..5), 1..7)
}

/// Plays the rounds; returns every package delivered (all accepted, checked inside `step`).
fn play(sim: &mut Sim, rounds: &[Round]) -> Vec<Sent> {
    let mut delivered = Vec::new();
    for round in rounds {
        let mut senders = std::collections::HashSet::new();
        for &(from, to, amount) in round {
            let (from, to) = (NAMES[from], NAMES[to]);
            if from == to || !senders.insert(from) {
                continue;
            }
            let spendable = sim.user(from).holdings.select_ranges(amount).is_ok();
            if spendable {
                sim.pay_amount(from, to, amount);
            }
        }
        delivered.extend(sim.step());
    }
    delivered
}

#[derive(Debug, Clone)]
enum Mutation {
    SidecarTxTime { node: usize, unit: usize },
    ProofSibling { node: usize, unit: usize },
    DropUnit { node: usize, unit: usize },
    SwapUnits { node: usize },
    HeaderRoot { node: usize, unit: usize },
    ReceiptSeq { node: usize, unit: usize },
    ReceiptPrevRef { node: usize, unit: usize },
    ReceiptHoldings { node: usize, unit: usize },
    Recipient,
    EnlargeTarget,
    NodeOwner { node: usize },
    GenesisRange,
    AcquireTxTime { node: usize },
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let idx = 0..8usize;
    prop_oneof![
        (idx.clone(), idx.clone()).prop_map(|(node, unit)| Mutation::SidecarTxTime { node, unit }),
        (idx.clone(), idx.clone()).prop_map(|(node, unit)| Mutation::ProofSibling { node, unit }),
        (idx.clone(), idx.clone()).prop_map(|(node, unit)| Mutation::DropUnit { node, unit }),
        idx.clone().prop_map(|node| Mutation::SwapUnits { node }),
        (idx.clone(), idx.clone()).prop_map(|(node, unit)| Mutation::HeaderRoot { node, unit }),
        (idx.clone(), idx.clone()).prop_map(|(node, unit)| Mutation::ReceiptSeq { node, unit }),
        (idx.clone(), idx.clone()).prop_map(|(node, unit)| Mutation::ReceiptPrevRef { node, unit }),
        (idx.clone(), idx.clone()).prop_map(|(node, unit)| Mutation::ReceiptHoldings { node, unit }),
        Just(Mutation::Recipient),
        Just(Mutation::EnlargeTarget),
        idx.clone().prop_map(|node| Mutation::NodeOwner { node }),
        Just(Mutation::GenesisRange),
        idx.prop_map(|node| Mutation::AcquireTxTime { node }),
    ]
}

fn node_mut(witness: &mut WitnessV2, index: usize) -> &mut WitnessV2 {
    let depth = witness.depth();
    let mut node = witness;
    for _ in 0..index % (depth + 1) {
        node = match &mut node.anchor {
            WitnessAnchor::PriorWitness(link) => &mut link.prior_witness,
            _ => unreachable!("index is bounded by the depth"),
        };
    }
    node
}

/// Applies the mutation; `false` when it does not apply to this package's shape.
fn mutate(package: &mut TransferPackage, mutation: &Mutation) -> bool {
    let stranger = key_of("stranger").address();
    let unit_of = |node: &mut WitnessV2, unit: usize| -> Option<usize> {
        (!node.chain.is_empty()).then(|| unit % node.chain.len())
    };
    match mutation {
        Mutation::SidecarTxTime { node, unit } => {
            let node = node_mut(&mut package.witness, *node);
            let Some(u) = unit_of(node, *unit) else { return false };
            let txs = &mut node.chain[u].sidecar.txs;
            let last = txs.len() - 1;
            txs[last].tx_time ^= 1;
        }
        Mutation::ProofSibling { node, unit } => {
            let node = node_mut(&mut package.witness, *node);
            let Some(u) = unit_of(node, *unit) else { return false };
            let proof = &mut node.chain[u].receipt.proof;
            // Flip a listed sibling; with none listed, claim a non-empty half or a deeper leaf.
            match proof.siblings.iter_mut().find_map(Option::as_mut) {
                Some(sibling) => sibling.0[0] ^= 1,
                None => match proof.siblings.first_mut() {
                    Some(empty) => *empty = Some(Hash32::ZERO),
                    None => proof.siblings.push(None),
                },
            }
        }
        Mutation::DropUnit { node, unit } => {
            let node = node_mut(&mut package.witness, *node);
            let Some(u) = unit_of(node, *unit) else { return false };
            node.chain.remove(u);
        }
        Mutation::SwapUnits { node } => {
            let node = node_mut(&mut package.witness, *node);
            if node.chain.len() < 2 {
                return false;
            }
            node.chain.swap(0, 1);
        }
        Mutation::HeaderRoot { node, unit } => {
            let node = node_mut(&mut package.witness, *node);
            let Some(u) = unit_of(node, *unit) else { return false };
            node.chain[u].receipt.header.state_root.0[5] ^= 1;
        }
        Mutation::ReceiptSeq { node, unit } => {
            let node = node_mut(&mut package.witness, *node);
            let Some(u) = unit_of(node, *unit) else { return false };
            node.chain[u].receipt.seq += 1;
        }
        Mutation::ReceiptHoldings { node, unit } => {
            // A receipt claiming a holdings snapshot the leaf never committed.
            let node = node_mut(&mut package.witness, *node);
            let Some(u) = unit_of(node, *unit) else { return false };
            let at = node.chain[u].bundle_ref();
            node.chain[u].receipt.holdings = Some(HoldingsCommitment {
                root: Hash32::ZERO,
                count: 0,
                at,
            });
        }
        Mutation::ReceiptPrevRef { node, unit } => {
            let node = node_mut(&mut package.witness, *node);
            let Some(u) = unit_of(node, *unit) else { return false };
            let receipt = &mut node.chain[u].receipt;
            receipt.prev_ref = match receipt.prev_ref {
                Some(_) => None,
                None => Some(BundleRef {
                    height: 0,
                    bundle_hash: Hash32::ZERO,
                    seq: 1,
                }),
            };
        }
        Mutation::Recipient => package.target_tx.recipient = stranger,
        Mutation::EnlargeTarget => {
            let v = package.target_value;
            package.target_value = ValueRange::new(v.begin(), v.end() + 1).expect("small test values");
        }
        Mutation::NodeOwner { node } => node_mut(&mut package.witness, *node).current_owner = stranger,
        Mutation::GenesisRange => {
            let depth = package.witness.depth();
            let node = node_mut(&mut package.witness, depth);
            let WitnessAnchor::Genesis(anchor) = &mut node.anchor else {
                return false;
            };
            anchor.range = ValueRange::new(anchor.range.begin(), anchor.range.end() + 1).expect("small test values");
        }
        Mutation::AcquireTxTime { node } => {
            let node = node_mut(&mut package.witness, *node);
            let WitnessAnchor::PriorWitness(link) = &mut node.anchor else {
                return false;
            };
            link.acquire_tx.tx_time ^= 1;
        }
    }
    true
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn honest_transfers_always_verify_and_conserve_supply(rounds in rounds()) {
        let mut sim = fresh_sim();
        let supply = sim.total_supply_held();
        let delivered = play(&mut sim, &rounds);
        prop_assert_eq!(sim.total_supply_held(), supply);
        // Every user's values are disjoint across users.
        let mut all: Vec<ValueRange> = NAMES.iter().flat_map(|n| sim.held(n)).collect();
        all.sort();
        prop_assert!(all.windows(2).all(|w| !w[0].intersects(&w[1])));
        // And each delivered package is still valid for its recipient as a fresh check.
        for item in &delivered {
            let verdict = sim.verify_as(&item.to, &item.package);
            prop_assert!(verdict.is_ok(), "{:?}", verdict);
        }
    }

    #[test]
    fn single_mutations_of_a_valid_package_never_verify(rounds in rounds(), pick in 0..64usize, mutation in mutation()) {
        let mut sim = fresh_sim();
        let delivered = play(&mut sim, &rounds);
        prop_assume!(!delivered.is_empty());
        let item = &delivered[pick % delivered.len()];
        let mut mutated = item.package.clone();
        prop_assume!(mutate(&mut mutated, &mutation));
        prop_assume!(mutated != item.package);
        let verdict = sim.verify_as(&item.to, &mutated);
        prop_assert!(verdict.is_err(), "mutation {:?} of a valid package verified", mutation);
    }

    #[test]
    fn encodings_round_trip(rounds in rounds()) {
        let mut sim = fresh_sim();
        let delivered = play(&mut sim, &rounds);
        for block in &sim.blocks {
            let bytes = encode(block);
            prop_assert_eq!(&decode::<Block>(&bytes, usize::MAX).unwrap(), block);
        }
        for item in &delivered {
            let bytes = encode(&item.package);
            let back: TransferPackage = decode(&bytes, usize::MAX).unwrap();
            prop_assert_eq!(back.package_hash(), item.package.package_hash());
            prop_assert_eq!(&back, &item.package);
        }
        // A wallet persists its holdings as borsh: what it reads back is what it wrote.
        for user in sim.users.values() {
            let bytes = encode(&user.holdings);
            let back: ezchain_protocol::ownership::Holdings = decode(&bytes, usize::MAX).unwrap();
            prop_assert_eq!(encode(&back), bytes);
            prop_assert_eq!(back.balance(), user.holdings.balance());
            prop_assert_eq!(back.checkpoints(), user.holdings.checkpoints());
        }
    }

    #[test]
    fn follower_reproduces_the_proposer_state(rounds in rounds(), junk_seq in 2..9u64, junk_expiry in 0..3u64) {
        // Honest history first (each step already checks apply == build); then a proposal
        // whose candidates include invalid ones: the proposer leaves them out and the follower
        // reaches the same state and receipts.
        let mut sim = fresh_sim();
        play(&mut sim, &rounds);
        let height = sim.chain.height + 1;
        let mut candidates = vec![
            sim.sign_raw("Eli", junk_seq, 1_000_000, &[("Ann", &[(9000, 9009)])]),
            sim.sign_raw("Dan", sim.chain.confirmed_seq(&sim.addr("Dan")) + 1, junk_expiry, &[("Ann", &[(3000, 3000)])]),
            sim.sign_raw("Ann", sim.chain.confirmed_seq(&sim.addr("Ann")) + 1, 1_000_000, &[("Ben", &[(5000, 5000)])]),
        ];
        candidates.push(candidates[2].clone());
        let built = build_block(&sim.chain, &candidates, height, sim.time_ms + 5).unwrap();
        prop_assert!(!built.rejected.is_empty());
        let followed = apply_block(&sim.chain, &built.applied.block).unwrap();
        prop_assert_eq!(followed.state.state_root(), built.applied.state.state_root());
        prop_assert_eq!(followed.receipts, built.applied.receipts);
    }

    #[test]
    fn decoding_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let _ = decode::<TransferPackage>(&bytes, 1 << 20);
        let _ = decode::<Block>(&bytes, 1 << 20);
        let _ = decode::<Submission>(&bytes, 1 << 20);
        let _ = decode::<Receipt>(&bytes, 1 << 20);
    }
}

#[test]
fn deeply_nested_witness_is_refused_by_the_decoder() {
    // A witness that nests prior links far beyond the cap: each level is tiny on the wire, so
    // without the nesting counter the decoder would recurse until the stack overflows.
    let value = encode(&range(0, 0));
    let owner = [0u8; 20];
    let empty_chain = 0u32.to_le_bytes();
    let tx = encode(&OffChainTx {
        sender: Address(owner),
        recipient: Address(owner),
        values: vec![range(0, 0)],
        local_index: 0,
        tx_time: 0,
        extra_data: vec![],
    });
    let mut bytes = Vec::new();
    for _ in 0..5000 {
        bytes.extend_from_slice(&value);
        bytes.extend_from_slice(&owner);
        bytes.extend_from_slice(&empty_chain);
        bytes.push(2);
        bytes.extend_from_slice(&tx);
    }
    assert!(decode::<WitnessV2>(&bytes, usize::MAX).is_err());
}

#[test]
fn the_decoder_refuses_nesting_the_verifier_could_never_accept() {
    // A well-formed witness nested one level past the verifier's depth budget: every level is a
    // prior-witness link, the innermost a genesis anchor.
    let owner = Address([0; 20]);
    let acquire_tx = OffChainTx {
        sender: owner,
        recipient: owner,
        values: vec![range(0, 0)],
        local_index: 0,
        tx_time: 0,
        extra_data: vec![],
    };
    let nested = |levels: usize| {
        let mut witness = WitnessV2 {
            value: range(0, 0),
            current_owner: owner,
            chain: vec![],
            anchor: WitnessAnchor::Genesis(GenesisAnchor {
                genesis_hash: Hash32::ZERO,
                first_owner: owner,
                range: range(0, 0),
            }),
        };
        for _ in 0..levels {
            witness = WitnessV2 {
                value: range(0, 0),
                current_owner: owner,
                chain: vec![],
                anchor: WitnessAnchor::PriorWitness(PriorWitnessLink {
                    acquire_tx: acquire_tx.clone(),
                    prior_witness: Box::new(witness),
                }),
            };
        }
        encode(&witness)
    };
    let budget = VerifyBudget::default().max_depth;
    assert!(decode::<WitnessV2>(&nested(budget), usize::MAX).is_ok());
    assert!(decode::<WitnessV2>(&nested(budget + 1), usize::MAX).is_err());
}
