//! A small in-process network for protocol tests: genesis, one chain, a mempool, finalized
//! headers, and users with their own holdings. Every block is built by a proposer and
//! re-executed by a follower (`apply_block`), and both must agree.
#![allow(dead_code)]

use ezchain_protocol::bundle::EnvelopeParams;
use ezchain_protocol::hash::keccak256;
use ezchain_protocol::mempool::PendingPool;
use ezchain_protocol::ownership::{AcceptOutcome, Holdings, OwnershipError};
use ezchain_protocol::snapshot::SnapshotRules;
use ezchain_protocol::witness::WitnessAnchor;
use ezchain_protocol::*;
use std::collections::{BTreeMap, HashMap};

pub const CHAIN_ID: u64 = 821;

/// Per witness node: owner name, units as (height, seq) newest first, anchor kind.
pub type WitnessShape = Vec<(String, Vec<(u64, u64)>, &'static str)>;

pub fn range(begin: u64, end: u64) -> ValueRange {
    ValueRange::new(begin, end).expect("test ranges are valid")
}

pub fn key_of(name: &str) -> SigningKey {
    SigningKey::from_bytes(&keccak256(name.as_bytes())).expect("a keccak digest is a valid key")
}

#[derive(Clone)]
pub struct User {
    pub name: String,
    pub key: SigningKey,
    pub holdings: Holdings,
    pub online: bool,
}

/// A package that left its sender, with who it is for.
#[derive(Clone, Debug)]
pub struct Sent {
    pub from: String,
    pub to: String,
    pub package: TransferPackage,
}

#[derive(Clone)]
pub struct Sim {
    pub genesis: Genesis,
    pub chain: ChainState,
    pub headers: BTreeMap<u64, HeaderLite>,
    pub pool: PendingPool,
    pub users: BTreeMap<String, User>,
    pub names: HashMap<Address, String>,
    /// Every receipt ever issued, as every validator keeps them: (address, seq) → receipt.
    pub receipts: HashMap<(Address, u64), Receipt>,
    pub blocks: Vec<Block>,
    pub time_ms: u64,
}

impl Sim {
    /// `allocations`: per user, the genesis ranges it owns. Users with no ranges get none.
    pub fn new(allocations: &[(&str, &[(u64, u64)])]) -> Sim {
        let mut list: Vec<Allocation> = allocations
            .iter()
            .flat_map(|(name, ranges)| {
                let owner = key_of(name).address();
                ranges.iter().map(move |(b, e)| Allocation {
                    owner,
                    range: range(*b, *e),
                })
            })
            .collect();
        list.sort_by_key(|a| a.range);
        let genesis = Genesis {
            chain_id: CHAIN_ID,
            genesis_time_ms: 1_700_000_000_000,
            validators: (0..4)
                .map(|i| GenesisValidator {
                    name: format!("CN{}", i + 1),
                    consensus_public_key: [i as u8 + 1; 32],
                    voting_power: 1,
                })
                .collect(),
            allocations: list,
            faucet: None,
        };
        genesis.validate().expect("test genesis is valid");
        let chain = ChainState::genesis(&genesis);
        let mut users = BTreeMap::new();
        let mut names = HashMap::new();
        for (name, _) in allocations {
            let key = key_of(name);
            names.insert(key.address(), name.to_string());
            let holdings = Holdings::from_genesis(key.address(), &genesis);
            users.insert(
                name.to_string(),
                User {
                    name: name.to_string(),
                    key,
                    holdings,
                    online: true,
                },
            );
        }
        Sim {
            time_ms: genesis.genesis_time_ms,
            genesis,
            chain,
            headers: BTreeMap::new(),
            pool: PendingPool::new(10_000),
            users,
            names,
            receipts: HashMap::new(),
            blocks: Vec::new(),
        }
    }

    pub fn addr(&self, name: &str) -> Address {
        key_of(name).address()
    }

    pub fn user(&self, name: &str) -> &User {
        &self.users[name]
    }

    pub fn balance(&self, name: &str) -> u64 {
        self.users[name].holdings.balance()
    }

    pub fn held(&self, name: &str) -> Vec<ValueRange> {
        self.users[name].holdings.held_ranges()
    }

    /// Builds, signs and submits `sender`'s bundle: one tx per `(recipient, ranges)`.
    pub fn pay(&mut self, sender: &str, payments: &[(&str, &[(u64, u64)])]) -> Submission {
        let payments: Vec<(Address, Vec<ValueRange>)> = payments
            .iter()
            .map(|(to, ranges)| (self.addr(to), ranges.iter().map(|(b, e)| range(*b, *e)).collect()))
            .collect();
        let user = self.users.get_mut(sender).expect("known sender");
        let params = next_params(user);
        let submission = user
            .holdings
            .prepare_bundle(&user.key.clone(), &payments, &params, self.time_ms)
            .expect("honest bundle can be prepared");
        self.pool
            .submit(&self.chain, &submission)
            .expect("honest bundle is admitted");
        submission
    }

    /// Signs `name`'s snapshot of everything it holds and puts it into the mempool.
    pub fn snapshot(&mut self, name: &str) -> Submission {
        let user = self.users.get_mut(name).expect("known user");
        let params = next_params(user);
        let submission = user
            .holdings
            .prepare_snapshot(&user.key.clone(), &self.genesis, &params)
            .expect("an honest snapshot can be prepared");
        self.pool
            .submit(&self.chain, &submission)
            .expect("an honest snapshot is admitted");
        submission
    }

    /// Pays `amount` to `to`, letting the wallet choose the ranges.
    pub fn pay_amount(&mut self, sender: &str, to: &str, amount: u64) -> Submission {
        let ranges = self.users[sender].holdings.select_ranges(amount).expect("enough funds");
        let pairs: Vec<(u64, u64)> = ranges.iter().map(|r| (r.begin(), r.end())).collect();
        self.pay(sender, &[(to, &pairs)])
    }

    /// Proposer builds the next block from the whole pool; a follower re-executes it; both must
    /// agree. Records the header as finalized and every receipt.
    pub fn finalize_block(&mut self) -> AppliedBlock {
        self.time_ms += 2_000;
        let height = self.chain.height + 1;
        let candidates = self.pool.snapshot(usize::MAX);
        let rules = SnapshotRules {
            genesis: &self.genesis,
            headers: &self.headers,
        };
        let built =
            build_block_verified(&self.chain, candidates, height, self.time_ms, Some(&rules)).expect("proposer builds");
        assert!(
            built.rejected.is_empty(),
            "honest candidates rejected: {:?}",
            built.rejected
        );
        let followed = apply_block_verified(&self.chain, &built.applied.block, Vec::new(), Some(&rules))
            .expect("follower accepts the proposal");
        assert_eq!(followed.state.state_root(), built.applied.state.state_root());
        assert_eq!(
            followed.receipts, built.applied.receipts,
            "every node derives the same receipts"
        );
        self.chain = followed.state.clone();
        self.headers.insert(height, followed.block.header.lite());
        self.pool.prune(&self.chain);
        for (owner, receipt) in &followed.receipts {
            self.receipts.insert((*owner, receipt.seq), receipt.clone());
        }
        self.blocks.push(followed.block.clone());
        followed
    }

    /// Applies `name`'s pending receipt from the validators' receipt store (push or pull).
    pub fn apply_receipt(&mut self, name: &str) -> Vec<Sent> {
        let user = self.users.get_mut(name).expect("known user");
        let Some(pending) = user.holdings.pending() else {
            return Vec::new();
        };
        let seq = pending.submission.envelope.seq;
        let Some(receipt) = self.receipts.get(&(user.key.address(), seq)).cloned() else {
            return Vec::new();
        };
        let packages = user
            .holdings
            .apply_own_receipt(receipt, &self.headers)
            .expect("own receipt applies");
        packages
            .into_iter()
            .map(|package| Sent {
                from: name.to_string(),
                to: self.names[&package.target_tx.recipient].clone(),
                package,
            })
            .collect()
    }

    pub fn deliver(&mut self, to: &str, package: &TransferPackage) -> Result<AcceptOutcome, OwnershipError> {
        let user = self.users.get_mut(to).expect("known recipient");
        user.holdings.accept_package(&self.genesis, &self.headers, package)
    }

    /// One height: finalize, push receipts to online senders, deliver every package (each must
    /// be accepted). Returns the packages in the order sent.
    pub fn step(&mut self) -> Vec<Sent> {
        let applied = self.finalize_block();
        let mut sent = Vec::new();
        for (owner, _) in &applied.receipts {
            let name = self.names[owner].clone();
            if self.users[&name].online {
                sent.extend(self.apply_receipt(&name));
            }
        }
        for item in &sent {
            let outcome = self.deliver(&item.to, &item.package);
            assert!(
                matches!(outcome, Ok(AcceptOutcome::Accepted { .. })),
                "{} → {} {:?} rejected: {:?}",
                item.from,
                item.to,
                item.package.target_value,
                outcome
            );
        }
        sent
    }

    /// Readable shape of a witness: per node, the owner's name, unit labels `(height, seq)`
    /// newest first, and the terminal anchor kind.
    pub fn shape(&self, witness: &WitnessV2) -> WitnessShape {
        witness
            .nodes()
            .map(|node| {
                let units = node.chain.iter().map(|u| (u.height(), u.receipt.seq)).collect();
                let anchor = match &node.anchor {
                    WitnessAnchor::Genesis(_) => "gen",
                    WitnessAnchor::Checkpoint(_) => "ckpt",
                    WitnessAnchor::PriorWitness(_) => "link",
                    WitnessAnchor::Snapshot(_) => "snap",
                };
                (self.names[&node.current_owner].clone(), units, anchor)
            })
            .collect()
    }

    pub fn total_supply_held(&self) -> u64 {
        self.users.values().map(|u| u.holdings.balance()).sum()
    }
}

/// The envelope of `user`'s next bundle, as its wallet would sign it.
fn next_params(user: &User) -> EnvelopeParams {
    EnvelopeParams {
        chain_id: CHAIN_ID,
        seq: user.holdings.confirmed_seq() + 1,
        expiry_height: 1_000_000,
        fee: 0,
        anti_spam_nonce: 7,
    }
}

/// Finds the package `from` sent to `to` for `value` among `sent`.
pub fn package_for<'a>(sent: &'a [Sent], from: &str, to: &str, value: (u64, u64)) -> &'a TransferPackage {
    &sent
        .iter()
        .find(|s| s.from == from && s.to == to && s.package.target_value == range(value.0, value.1))
        .unwrap_or_else(|| panic!("no package {from} → {to} {value:?}"))
        .package
}

impl Sim {
    /// A sender that bypasses its wallet: signs whatever transfers it likes with `seq` and puts
    /// the bundle into the mempool (consensus does not check value ownership, by design).
    pub fn raw_bundle(&mut self, sender: &str, seq: u64, txs: &[(&str, &[(u64, u64)])]) -> Submission {
        let submission = self.sign_raw(sender, seq, 1_000_000, txs);
        self.pool
            .submit(&self.chain, &submission)
            .expect("well-formed bundle is admitted");
        submission
    }

    pub fn sign_raw(&self, sender: &str, seq: u64, expiry_height: u64, txs: &[(&str, &[(u64, u64)])]) -> Submission {
        let key = key_of(sender);
        let txs = txs
            .iter()
            .enumerate()
            .map(|(i, (to, ranges))| ezchain_protocol::OffChainTx {
                sender: key.address(),
                recipient: self.addr(to),
                values: ranges.iter().map(|(b, e)| range(*b, *e)).collect(),
                local_index: i as u32,
                tx_time: self.time_ms + seq,
                extra_data: Vec::new(),
            })
            .collect();
        let params = EnvelopeParams {
            chain_id: CHAIN_ID,
            seq,
            expiry_height,
            fee: 0,
            anti_spam_nonce: seq,
        };
        Submission::sign(
            &key,
            ezchain_protocol::BundleSidecar {
                sender: key.address(),
                txs,
            },
            &params,
        )
    }

    /// The confirmed unit of a finalized submission, from the validators' receipt store.
    pub fn unit(&self, submission: &Submission) -> ConfirmedBundleUnit {
        let receipt = self.receipts[&(submission.sidecar.sender, submission.envelope.seq)].clone();
        ConfirmedBundleUnit {
            receipt,
            sidecar: submission.sidecar.clone(),
        }
    }

    pub fn genesis_anchor(&self, owner: &str, value: (u64, u64)) -> WitnessAnchor {
        WitnessAnchor::Genesis(ezchain_protocol::witness::GenesisAnchor {
            genesis_hash: self.genesis.hash(),
            first_owner: self.addr(owner),
            range: range(value.0, value.1),
        })
    }

    /// Verifies `package` as `name` would (no state change).
    pub fn verify_as(
        &self,
        name: &str,
        package: &TransferPackage,
    ) -> Result<usize, ezchain_protocol::witness::VerifyError> {
        let user = &self.users[name];
        ezchain_protocol::Verifier::new(&self.genesis, &self.headers, &user.holdings, user.key.address())
            .verify_package(package)
            .map(|accepted| accepted.units_checked)
    }
}

/// A package for `value` paid by tx `tx_index` of the newest unit.
pub fn package(
    chain: Vec<ConfirmedBundleUnit>,
    tx_index: usize,
    value: (u64, u64),
    anchor: WitnessAnchor,
) -> TransferPackage {
    let newest = &chain[0];
    let target_tx = newest.sidecar.txs[tx_index].clone();
    let current_owner = newest.sidecar.sender;
    TransferPackage {
        target_tx,
        target_value: range(value.0, value.1),
        witness: WitnessV2 {
            value: range(value.0, value.1),
            current_owner,
            chain,
            anchor,
        },
    }
}

/// What a payer that trims for its recipient sends (wallets here no longer do, but the
/// verifier still takes a checkpoint anchor its own archive backs): the outermost node owned by
/// `recipient` for exactly the paid range gets a checkpoint anchor. The payer's node is kept.
pub fn trim_for_recipient(mut package: TransferPackage, recipient: &Address) -> TransferPackage {
    let target = package.witness.value;
    let mut node = &mut package.witness;
    let mut depth = 0;
    loop {
        let owned = depth > 0 && node.current_owner == *recipient && node.value == target;
        if owned && let Some(newest) = node.chain.first() {
            let checkpoint = Checkpoint {
                value: target,
                owner: *recipient,
                unit: newest.bundle_ref(),
            };
            node.anchor = WitnessAnchor::Checkpoint(ezchain_protocol::witness::CheckpointAnchor { checkpoint });
            break;
        }
        match &mut node.anchor {
            WitnessAnchor::PriorWitness(link) => node = &mut link.prior_witness,
            _ => break,
        }
        depth += 1;
    }
    package
}
