//! The four-height worked example (shared/reference/worked-example.md) run through the real
//! protocol code: mempool admission, block build and apply, receipts, wallet receipt handling,
//! package export with checkpoint trimming, and recipient verification. Negative cases N1–N10
//! and the extensions X1–X2 at the end.

mod support;

use ezchain_protocol::ownership::{AcceptOutcome, OwnershipError};
use ezchain_protocol::witness::{Checkpoint, CheckpointAnchor, GenesisAnchor, Verifier, VerifyError, WitnessAnchor};
use support::*;

const USERS: &[(&str, &[(u64, u64)])] = &[
    ("Alice", &[(0, 299), (300, 599)]),
    ("Bob", &[(600, 899), (900, 1199)]),
    ("Carol", &[(1200, 1499)]),
    ("Dave", &[(1500, 1799), (1800, 2099)]),
    ("Emma", &[(2100, 2399)]),
    ("Frank", &[(2400, 2699)]),
    ("Grace", &[(2700, 2999)]),
    ("Helen", &[(3000, 3299)]),
];

fn ranges(list: &[(u64, u64)]) -> Vec<ezchain_protocol::ValueRange> {
    list.iter().map(|(b, e)| range(*b, *e)).collect()
}

fn assert_holdings(sim: &Sim, table: &[(&str, &[(u64, u64)])]) {
    for (name, expected) in table {
        assert_eq!(sim.held(name), ranges(expected), "holdings of {name}");
    }
    assert_eq!(sim.total_supply_held(), 3300, "supply is conserved");
}

/// One expected witness node: owner, units as (height, seq), anchor kind.
type ExpectedNode<'a> = (&'a str, &'a [(u64, u64)], &'static str);

fn shape(nodes: &[ExpectedNode]) -> WitnessShape {
    nodes.iter().map(|(n, u, a)| (n.to_string(), u.to_vec(), *a)).collect()
}

/// Verifies a package as `verifier_name` would, without storing anything.
fn verify_as(
    sim: &Sim,
    verifier_name: &str,
    package: &ezchain_protocol::TransferPackage,
) -> Result<usize, VerifyError> {
    let user = sim.user(verifier_name);
    Verifier::new(&sim.genesis, &sim.headers, &user.holdings, user.key.address())
        .verify_package(package)
        .map(|accepted| accepted.units_checked)
}

struct Heights {
    sim: Sim,
    h1: Vec<Sent>,
    h2: Vec<Sent>,
    h3: Vec<Sent>,
    h4: Vec<Sent>,
    before_h4: Sim,
}

fn run_four_heights() -> Heights {
    let mut sim = Sim::new(USERS);
    // Height 1 (proposer CN3).
    sim.pay("Alice", &[("Bob", &[(0, 99)])]);
    sim.pay("Dave", &[("Emma", &[(1500, 1599)])]);
    sim.pay("Grace", &[("Alice", &[(2700, 2749)])]);
    let h1 = sim.step();
    // Height 2 (proposer CN1).
    sim.pay("Alice", &[("Carol", &[(2700, 2749)]), ("Helen", &[(300, 349)])]);
    sim.pay("Bob", &[("Frank", &[(0, 99)])]);
    sim.pay("Emma", &[("Dave", &[(1500, 1599)])]);
    let h2 = sim.step();
    // Height 3 (proposer CN4).
    sim.pay("Dave", &[("Helen", &[(1500, 1599)])]);
    sim.pay("Bob", &[("Grace", &[(600, 649)])]);
    let h3 = sim.step();
    let before_h4 = sim.clone();
    // Height 4 (proposer CN2): Carol is offline when her receipt is issued.
    sim.pay("Helen", &[("Alice", &[(1500, 1599)])]);
    sim.pay("Carol", &[("Emma", &[(2700, 2749)])]);
    sim.users.get_mut("Carol").unwrap().online = false;
    let mut h4 = sim.step();
    // In the gap: Carol's payment waits for its receipt; Emma does not hold it yet.
    assert!(sim.user("Carol").holdings.pending().is_some());
    assert!(!sim.held("Emma").contains(&range(2700, 2749)));
    sim.users.get_mut("Carol").unwrap().online = true;
    let late = sim.apply_receipt("Carol");
    for item in &late {
        assert!(matches!(
            sim.deliver(&item.to, &item.package),
            Ok(AcceptOutcome::Accepted { .. })
        ));
    }
    h4.extend(late);
    Heights {
        sim,
        h1,
        h2,
        h3,
        h4,
        before_h4,
    }
}

#[test]
fn worked_example_four_heights_every_payment_verifies_and_balances_match() {
    let Heights {
        sim, h1, h2, h3, h4, ..
    } = run_four_heights();

    // §4 height 1.
    let p1 = package_for(&h1, "Alice", "Bob", (0, 99));
    assert_eq!(sim.shape(&p1.witness), shape(&[("Alice", &[(1, 1)], "gen")]));
    let p2 = package_for(&h1, "Dave", "Emma", (1500, 1599));
    assert_eq!(sim.shape(&p2.witness), shape(&[("Dave", &[(1, 1)], "gen")]));
    let p3 = package_for(&h1, "Grace", "Alice", (2700, 2749));
    assert_eq!(sim.shape(&p3.witness), shape(&[("Grace", &[(1, 1)], "gen")]));

    // §5 height 2.
    let p4 = package_for(&h2, "Alice", "Carol", (2700, 2749));
    assert_eq!(
        sim.shape(&p4.witness),
        shape(&[("Alice", &[(2, 2), (1, 1)], "link"), ("Grace", &[(1, 1)], "gen")]),
        "same-block acquisition: U_A1 is in W4 (R4)"
    );
    let p5 = package_for(&h2, "Alice", "Helen", (300, 349));
    assert_eq!(sim.shape(&p5.witness), shape(&[("Alice", &[(2, 2), (1, 1)], "gen")]));
    let p6 = package_for(&h2, "Bob", "Frank", (0, 99));
    assert_eq!(
        sim.shape(&p6.witness),
        shape(&[("Bob", &[(2, 1)], "link"), ("Alice", &[(1, 1)], "gen")])
    );
    let p7 = package_for(&h2, "Emma", "Dave", (1500, 1599));
    assert_eq!(
        sim.shape(&p7.witness),
        shape(&[("Emma", &[(2, 1)], "link"), ("Dave", &[(1, 1)], "gen")]),
        "Emma sends the whole W7 (wallets no longer trim to the reference's CP_D1; see ownership rule 3)"
    );

    // §6 height 3: Dave's witness carries the full history (W7 rehydrated).
    let p8 = package_for(&h3, "Dave", "Helen", (1500, 1599));
    assert_eq!(
        sim.shape(&p8.witness),
        shape(&[
            ("Dave", &[(3, 2)], "link"),
            ("Emma", &[(2, 1)], "link"),
            ("Dave", &[(1, 1)], "gen")
        ])
    );
    let p9 = package_for(&h3, "Bob", "Grace", (600, 649));
    assert_eq!(sim.shape(&p9.witness), shape(&[("Bob", &[(3, 2), (2, 1)], "gen")]));

    // §7 height 4.
    let p10 = package_for(&h4, "Helen", "Alice", (1500, 1599));
    assert_eq!(
        sim.shape(&p10.witness),
        shape(&[
            ("Helen", &[(4, 1)], "link"),
            ("Dave", &[(3, 2)], "link"),
            ("Emma", &[(2, 1)], "link"),
            ("Dave", &[(1, 1)], "gen")
        ])
    );
    let p11 = package_for(&h4, "Carol", "Emma", (2700, 2749));
    assert_eq!(
        sim.shape(&p11.witness),
        shape(&[
            ("Carol", &[(4, 1)], "link"),
            ("Alice", &[(2, 2), (1, 1)], "link"),
            ("Grace", &[(1, 1)], "gen")
        ])
    );
    assert_eq!(p10.witness.total_units(), 4);
    assert_eq!(p11.witness.total_units(), 4);

    // §8.2 after h4.
    assert_holdings(
        &sim,
        &[
            ("Alice", &[(100, 299), (350, 599), (1500, 1599)]),
            ("Bob", &[(650, 899), (900, 1199)]),
            ("Carol", &[(1200, 1499)]),
            ("Dave", &[(1600, 1799), (1800, 2099)]),
            ("Emma", &[(2100, 2399), (2700, 2749)]),
            ("Frank", &[(0, 99), (2400, 2699)]),
            ("Grace", &[(600, 649), (2750, 2999)]),
            ("Helen", &[(300, 349), (3000, 3299)]),
        ],
    );
    let balances: Vec<u64> = ["Alice", "Bob", "Carol", "Dave", "Emma", "Frank", "Grace", "Helen"]
        .iter()
        .map(|n| sim.balance(n))
        .collect();
    assert_eq!(balances, vec![550, 550, 300, 500, 350, 400, 300, 350]);

    // §8.1 account leaves after h4 (head, prev) as (height, seq); Frank never sent.
    let leaf = |name: &str| {
        sim.chain.leaf(&sim.addr(name)).map(|l| {
            (
                (l.head_ref.height, l.head_ref.seq),
                l.prev_ref.map(|p| (p.height, p.seq)),
            )
        })
    };
    assert_eq!(leaf("Alice"), Some(((2, 2), Some((1, 1)))));
    assert_eq!(leaf("Bob"), Some(((3, 2), Some((2, 1)))));
    assert_eq!(leaf("Carol"), Some(((4, 1), None)));
    assert_eq!(leaf("Dave"), Some(((3, 2), Some((1, 1)))));
    assert_eq!(leaf("Emma"), Some(((2, 1), None)));
    assert_eq!(leaf("Frank"), None);
    assert_eq!(leaf("Grace"), Some(((1, 1), None)));
    assert_eq!(leaf("Helen"), Some(((4, 1), None)));
    let frank_proof = sim.chain.receipt_for(&sim.addr("Frank"), &sim.headers[&4]);
    assert!(frank_proof.is_none(), "no receipt for an account that never sent");

    // R3: untouched and received records also carry the sender's new unit.
    let chain_of = |name: &str, value: (u64, u64)| {
        let record = sim
            .user(name)
            .holdings
            .records()
            .iter()
            .find(|r| r.value == range(value.0, value.1))
            .unwrap();
        record
            .witness
            .chain
            .iter()
            .map(|u| (u.height(), u.receipt.seq))
            .collect::<Vec<_>>()
    };
    assert_eq!(chain_of("Alice", (350, 599)), vec![(2, 2), (1, 1)]);
    assert_eq!(chain_of("Bob", (900, 1199)), vec![(3, 2), (2, 1)]);
    assert_eq!(chain_of("Helen", (300, 349)), vec![(4, 1)]);
    assert_eq!(chain_of("Carol", (1200, 1499)), vec![(4, 1)]);
    assert_eq!(chain_of("Frank", (0, 99)), Vec::<(u64, u64)>::new());
}

#[test]
fn worked_example_is_deterministic() {
    let first = run_four_heights();
    let second = run_four_heights();
    let roots = |s: &Sim| {
        s.headers
            .values()
            .map(|h| (h.header_hash, h.state_root))
            .collect::<Vec<_>>()
    };
    assert_eq!(roots(&first.sim), roots(&second.sim));
}

#[test]
fn worked_example_balances_after_each_height() {
    let mut sim = Sim::new(USERS);
    sim.pay("Alice", &[("Bob", &[(0, 99)])]);
    sim.pay("Dave", &[("Emma", &[(1500, 1599)])]);
    sim.pay("Grace", &[("Alice", &[(2700, 2749)])]);
    sim.step();
    assert_holdings(
        &sim,
        &[
            ("Alice", &[(100, 299), (300, 599), (2700, 2749)]),
            ("Bob", &[(0, 99), (600, 899), (900, 1199)]),
            ("Dave", &[(1600, 1799), (1800, 2099)]),
            ("Emma", &[(1500, 1599), (2100, 2399)]),
            ("Grace", &[(2750, 2999)]),
        ],
    );
    // Same-block case: Alice's received [2700,2749] carries her own U_A1.
    let record = sim
        .user("Alice")
        .holdings
        .records()
        .iter()
        .find(|r| r.value == range(2700, 2749))
        .unwrap();
    assert_eq!(record.witness.chain.len(), 1);
    assert_eq!(record.acquisition_height, 1);
    sim.pay("Alice", &[("Carol", &[(2700, 2749)]), ("Helen", &[(300, 349)])]);
    sim.pay("Bob", &[("Frank", &[(0, 99)])]);
    sim.pay("Emma", &[("Dave", &[(1500, 1599)])]);
    sim.step();
    assert_holdings(
        &sim,
        &[
            ("Alice", &[(100, 299), (350, 599)]),
            ("Carol", &[(1200, 1499), (2700, 2749)]),
            ("Dave", &[(1500, 1599), (1600, 1799), (1800, 2099)]),
            ("Frank", &[(0, 99), (2400, 2699)]),
            ("Helen", &[(300, 349), (3000, 3299)]),
        ],
    );
    // Adjacent records with different witnesses stay separate.
    assert_eq!(
        sim.user("Dave")
            .holdings
            .records()
            .iter()
            .filter(|r| r.value.begin() >= 1500 && r.value.end() <= 1799)
            .count(),
        3
    );
    sim.pay("Dave", &[("Helen", &[(1500, 1599)])]);
    sim.pay("Bob", &[("Grace", &[(600, 649)])]);
    sim.step();
    assert_holdings(
        &sim,
        &[
            ("Bob", &[(650, 899), (900, 1199)]),
            ("Dave", &[(1600, 1799), (1800, 2099)]),
            ("Grace", &[(600, 649), (2750, 2999)]),
            ("Helen", &[(300, 349), (1500, 1599), (3000, 3299)]),
        ],
    );
}

#[test]
fn worked_example_w7_trimmed_to_dave_s_checkpoint_is_also_accepted_by_dave() {
    let Heights { sim, h2, .. } = run_four_heights();
    // Dave's stored record for the returned [1500,1599] holds the full W7.
    let dave = sim.user("Dave");
    let p7 = package_for(&h2, "Emma", "Dave", (1500, 1599));
    // The reference's P7, trimmed to CP_D1: Dave's archive backs it.
    let trimmed = trim_for_recipient(p7.clone(), &sim.addr("Dave"));
    assert!(matches!(
        trimmed.witness.nodes().nth(1).unwrap().anchor,
        WitnessAnchor::Checkpoint(_)
    ));
    assert_eq!(verify_as(&sim, "Dave", &trimmed), Ok(2));
    let archived = dave
        .holdings
        .records()
        .iter()
        .find(|r| r.value == range(1500, 1599) && r.acquisition_height == 2)
        .unwrap();
    let WitnessAnchor::PriorWitness(link) = &archived.witness.anchor else {
        panic!("received record links to W7")
    };
    assert_eq!(
        sim.shape(&link.prior_witness),
        shape(&[("Emma", &[(2, 1)], "link"), ("Dave", &[(1, 1)], "gen")])
    );
    let mut full = p7.clone();
    full.witness = (*link.prior_witness).clone();
    assert_eq!(verify_as(&sim, "Dave", &full), Ok(2));
}

#[test]
fn worked_example_negative_cases() {
    let Heights {
        sim, h1, h2, h3, h4, ..
    } = run_four_heights();
    let p1 = package_for(&h1, "Alice", "Bob", (0, 99));
    let p4 = package_for(&h2, "Alice", "Carol", (2700, 2749));
    let p5 = package_for(&h2, "Alice", "Helen", (300, 349));
    let p8 = package_for(&h3, "Dave", "Helen", (1500, 1599));
    let p9 = package_for(&h3, "Bob", "Grace", (600, 649));
    let p10 = package_for(&h4, "Helen", "Alice", (1500, 1599));

    // N1: the genesis owner hides U_A1.
    let mut n1 = p5.clone();
    n1.witness.chain.truncate(1);
    assert_eq!(
        verify_as(&sim, "Helen", &n1),
        Err(VerifyError::TailRuleViolation { depth: 0 })
    );
    // N2: the long-held value must show B1.
    let mut n2 = p9.clone();
    n2.witness.chain.truncate(1);
    assert_eq!(
        verify_as(&sim, "Grace", &n2),
        Err(VerifyError::TailRuleViolation { depth: 0 })
    );
    // N3: P8 and P10 anchored on Dave's checkpoint: only Dave may trust it.
    let dave = sim.addr("Dave");
    let dave_ckpt = WitnessAnchor::Checkpoint(CheckpointAnchor {
        checkpoint: Checkpoint {
            value: range(1500, 1599),
            owner: dave,
            unit: p8.witness.chain[0].bundle_ref(),
        },
    });
    let mut n3 = p8.clone();
    n3.witness.anchor = dave_ckpt.clone();
    assert_eq!(
        verify_as(&sim, "Helen", &n3),
        Err(VerifyError::CheckpointNotOwned { depth: 0 })
    );
    let mut n3b = p10.clone();
    if let WitnessAnchor::PriorWitness(link) = &mut n3b.witness.anchor {
        link.prior_witness.anchor = dave_ckpt;
    }
    assert_eq!(
        verify_as(&sim, "Alice", &n3b),
        Err(VerifyError::CheckpointNotOwned { depth: 1 })
    );
    // N4: P4 in the source's literal form (strict boundary): the tail reaches into hA.
    let mut n4 = p4.clone();
    n4.witness.chain.truncate(1);
    assert_eq!(
        verify_as(&sim, "Carol", &n4),
        Err(VerifyError::TailRuleViolation { depth: 0 })
    );
    // N7 is covered by the F2 attack test. N8: an anchor genesis never gave.
    let mut n8 = p1.clone();
    n8.witness.anchor = WitnessAnchor::Genesis(GenesisAnchor {
        genesis_hash: sim.genesis.hash(),
        first_owner: sim.addr("Alice"),
        range: range(0, 599),
    });
    assert!(matches!(
        verify_as(&sim, "Bob", &n8),
        Err(VerifyError::UnknownGenesisAllocation { .. })
    ));
    // N9: P5 is addressed to Helen, not Carol.
    assert_eq!(
        verify_as(&sim, "Carol", p5),
        Err(VerifyError::WrongRecipient { depth: 0 })
    );
    // The honest packages still verify for their recipients (Frank's P6 as a control).
    let p6 = package_for(&h2, "Bob", "Frank", (0, 99));
    assert!(verify_as(&sim, "Frank", p6).is_ok());
}

#[test]
fn worked_example_duplicate_delivery_is_idempotent() {
    let Heights { mut sim, h2, .. } = run_four_heights();
    let p4 = package_for(&h2, "Alice", "Carol", (2700, 2749)).clone();
    let before = sim.user("Carol").holdings.records().len();
    assert_eq!(sim.deliver("Carol", &p4), Ok(AcceptOutcome::Duplicate));
    assert_eq!(sim.user("Carol").holdings.records().len(), before);
    // A different package for a value the recipient still holds is refused by the wallet, even
    // though the witness itself verifies (a narrower target inside the same hand-over).
    let Heights {
        before_h4: mut held, ..
    } = run_four_heights();
    let mut narrower = p4.clone();
    narrower.target_value = range(2700, 2709);
    assert!(verify_as(&held, "Carol", &narrower).is_ok());
    assert_eq!(
        held.deliver("Carol", &narrower),
        Err(OwnershipError::AlreadyHeld {
            held: range(2700, 2749)
        })
    );
}

#[test]
fn worked_example_x1_returning_value_is_checked_up_to_the_checkpoint() {
    let Heights { mut sim, .. } = run_four_heights();
    sim.pay("Alice", &[("Dave", &[(1500, 1599)])]);
    let h5 = sim.step();
    let full = package_for(&h5, "Alice", "Dave", (1500, 1599));
    assert_eq!(full.witness.total_units(), 5, "Alice sends the whole history");
    let x1 = &trim_for_recipient(full.clone(), &sim.addr("Dave"));
    assert_eq!(
        sim.shape(&x1.witness),
        shape(&[
            ("Alice", &[(5, 3)], "link"),
            ("Helen", &[(4, 1)], "link"),
            ("Dave", &[(3, 2)], "ckpt")
        ]),
        "trimmed at the outermost Dave node (W8) to CP_D3, as the reference does"
    );
    // Dave checked 3 units, and stored the rehydrated full history.
    let record = sim
        .user("Dave")
        .holdings
        .records()
        .iter()
        .find(|r| r.value == range(1500, 1599) && r.acquisition_height == 5)
        .unwrap();
    assert_eq!(record.witness.total_units(), 5, "A3, H1, D2, E1, D1: the whole history");
    assert_eq!(verify_as(&sim, "Dave", x1), Ok(3), "Dave checks A3 → H1 → D2 only");
    assert_eq!(sim.balance("Dave"), 600);
}

#[test]
fn worked_example_x2_partial_return_is_not_trimmed() {
    let Heights { mut sim, .. } = run_four_heights();
    sim.pay("Alice", &[("Dave", &[(1500, 1549)])]);
    let h5 = sim.step();
    let x2 = package_for(&h5, "Alice", "Dave", (1500, 1549));
    assert_eq!(
        x2.witness.total_units(),
        5,
        "no exact-range match, so the full witness travels"
    );
    assert!(
        x2.witness
            .nodes()
            .all(|n| !matches!(n.anchor, WitnessAnchor::Checkpoint(_)))
    );
    assert_eq!(sim.balance("Dave"), 550);
}
