//! `ezchain bench --long-payer N` and `--circulate N`: how large transfer packages and wallets
//! get over a long history (issue 14's figures, crates/protocol/docs/bounded-witnesses.md §6).
//!
//! These run the protocol's own code in one process, without a network: the validators' block
//! building and re-execution (`build_block_verified`, `apply_block_verified` with the snapshot
//! rule), the wallets' `Holdings` on the default snapshot policy, and every payee's
//! verification. Only consensus and transport are left out, so sizes, verification times and
//! snapshot costs are the real ones, and a 100,000-payment history takes minutes instead of
//! a day of blocks. One bundle per block.
//!
//! - **Long payer.** One genesis account pays 1 unit to one of `owners − 1` recipients, `N`
//!   times in a row (the faucet's life); each package is verified as its recipient would.
//! - **Circulate.** One value of 1,000 units moves `N` times, each time from its holder to a
//!   random other wallet (a deterministic seed), which accepts it and later pays it on.

use crate::bench::{Percentiles, bench_key, percentiles};
use ezchain_protocol::bundle::EnvelopeParams;
use ezchain_protocol::codec::encoded_len;
use ezchain_protocol::ownership::{Holdings, OwnershipError, SnapshotPolicy};
use ezchain_protocol::snapshot::SnapshotRules;
use ezchain_protocol::state::{BlockError, EntryError};
use ezchain_protocol::witness::{NoCheckpoints, VerifyError};
use ezchain_protocol::{
    Address, Allocation, ChainState, Genesis, GenesisValidator, HeaderLite, Receipt, SigningKey, Submission,
    TransferPackage, ValueRange, Verifier, apply_block_verified, build_block_verified,
};
use serde::Serialize;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};
use thiserror::Error;

const CHAIN_ID: u64 = 7_001;
/// Units the circulating value holds.
const CIRCULATING_UNITS: u64 = 1_000;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Scenario {
    LongPayer,
    Circulate,
}

#[derive(Clone, Debug)]
pub struct WitnessBenchOptions {
    pub scenario: Scenario,
    /// Payments (long payer) or hand-overs (circulate).
    pub steps: usize,
    /// Wallets taking part (the payer included).
    pub owners: usize,
    pub policy: SnapshotPolicy,
    pub seed: u64,
}

#[derive(Clone, Debug, Serialize)]
pub struct WitnessBenchReport {
    pub scenario: Scenario,
    pub steps: usize,
    pub owners: usize,
    /// The policy's own-bundle trigger (0: wallets never snapshot).
    pub snapshot_every_bundles: usize,
    pub snapshots: usize,
    pub package_bytes: Percentiles,
    pub package_units: Percentiles,
    /// Owners a package's witness names (1 = the payer alone).
    pub package_owners: Percentiles,
    /// The last step's package.
    pub last_package_bytes: usize,
    /// One package, verified as its payee would.
    pub verify_ms: Percentiles,
    /// A follower re-executing a block of one plain bundle / of one snapshot bundle.
    pub apply_payment_us: Percentiles,
    pub apply_snapshot_us: Percentiles,
    /// Share of a saturated block's re-execution spent on snapshots, with snapshots as frequent
    /// as in this run: `s·c_s / (c_p + s·c_s)`, `s` = snapshots per payment, `c` = median costs.
    pub snapshot_share_of_block_cpu: f64,
    /// `(step, bytes)`: the encoded wallet state of the busiest wallet (the payer; in
    /// `circulate`, the largest of all), sampled along the run.
    pub wallet_bytes: Vec<(usize, usize)>,
    pub duration_s: f64,
}

#[derive(Debug, Error)]
pub enum WitnessBenchError {
    #[error("the bench needs at least 2 owners and 1 step")]
    TooSmall,
    #[error("a block was refused: {0}")]
    Block(#[from] BlockError),
    #[error("the proposer left a bundle out: {0}")]
    LeftOut(EntryError),
    #[error("the block gave no receipt to its sender")]
    NoReceipt,
    #[error("a wallet rule failed: {0}")]
    Ownership(#[from] OwnershipError),
    #[error("a package did not verify: {0}")]
    Verify(#[from] VerifyError),
    #[error("a payment produced {0} packages, expected 1")]
    Packages(usize),
}

/// One chain, every validator at once: each block is built and re-executed.
struct Chain {
    genesis: Genesis,
    state: ChainState,
    headers: BTreeMap<u64, HeaderLite>,
    time_ms: u64,
}

impl Chain {
    fn new(genesis: Genesis) -> Self {
        let state = ChainState::genesis(&genesis);
        Chain {
            time_ms: genesis.genesis_time_ms,
            genesis,
            state,
            headers: BTreeMap::new(),
        }
    }

    /// Commits `submission` alone in the next block; returns its receipt and how long the
    /// follower's re-execution took.
    fn commit(&mut self, submission: &Submission) -> Result<(Receipt, Duration), WitnessBenchError> {
        self.time_ms += 1_000;
        let height = self.state.height + 1;
        let verified = submission
            .verify(CHAIN_ID)
            .map_err(|e| WitnessBenchError::LeftOut(e.into()))?;
        let rules = SnapshotRules {
            genesis: &self.genesis,
            headers: &self.headers,
        };
        let built = build_block_verified(&self.state, vec![verified], height, self.time_ms, Some(&rules))?;
        if let Some(rejected) = built.rejected.into_iter().next() {
            return Err(WitnessBenchError::LeftOut(rejected.error));
        }
        let started = Instant::now();
        let applied = apply_block_verified(&self.state, &built.applied.block, Vec::new(), Some(&rules))?;
        let took = started.elapsed();
        let sender = submission.sidecar.sender;
        let receipt = applied
            .receipts
            .into_iter()
            .find(|(owner, _)| *owner == sender)
            .map(|(_, receipt)| receipt)
            .ok_or(WitnessBenchError::NoReceipt)?;
        self.headers.insert(height, applied.block.header.lite());
        self.state = applied.state;
        Ok((receipt, took))
    }
}

struct Wallet {
    key: SigningKey,
    holdings: Holdings,
}

/// What the run measures as it goes.
#[derive(Default)]
struct Samples {
    package_bytes: Vec<f64>,
    package_units: Vec<f64>,
    package_owners: Vec<f64>,
    verify_ms: Vec<f64>,
    apply_payment_us: Vec<f64>,
    apply_snapshot_us: Vec<f64>,
    last_package_bytes: usize,
    wallet_bytes: Vec<(usize, usize)>,
}

impl Samples {
    fn package(&mut self, package: &TransferPackage) {
        let bytes = encoded_len(package);
        self.last_package_bytes = bytes;
        self.package_bytes.push(bytes as f64);
        self.package_units.push(package.witness.total_units() as f64);
        self.package_owners.push(package.witness.nodes().count() as f64);
    }
}

fn genesis(allocations: Vec<Allocation>) -> Genesis {
    Genesis {
        chain_id: CHAIN_ID,
        genesis_time_ms: 1_700_000_000_000,
        validators: (0..4u8)
            .map(|i| GenesisValidator {
                name: format!("validator-{i}"),
                consensus_public_key: [i + 1; 32],
                voting_power: 1,
            })
            .collect(),
        allocations,
        faucet: None,
    }
}

fn params(holdings: &Holdings, tip: u64) -> EnvelopeParams {
    EnvelopeParams {
        chain_id: CHAIN_ID,
        seq: holdings.confirmed_seq() + 1,
        expiry_height: tip + 600,
        fee: 0,
        anti_spam_nonce: holdings.confirmed_seq(),
    }
}

/// A deterministic stream of owner choices (splitmix64): reruns pick the same owners.
struct Picks(u64);

impl Picks {
    fn next_below(&mut self, bound: usize) -> usize {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        ((z ^ (z >> 31)) % bound as u64) as usize
    }
}

/// Snapshots `wallet` if its policy asks, as `Wallet::send` does before a payment.
fn snapshot_if_due(
    chain: &mut Chain,
    wallet: &mut Wallet,
    policy: &SnapshotPolicy,
    samples: &mut Samples,
) -> Result<bool, WitnessBenchError> {
    if !wallet.holdings.snapshot_due(policy) {
        return Ok(false);
    }
    let params = params(&wallet.holdings, chain.state.height);
    let submission = wallet.holdings.prepare_snapshot(&wallet.key, &chain.genesis, &params)?;
    let (receipt, took) = chain.commit(&submission)?;
    samples.apply_snapshot_us.push(took.as_secs_f64() * 1e6);
    wallet.holdings.apply_own_receipt(receipt, &chain.headers)?;
    Ok(true)
}

/// `wallet` pays `ranges` to `to`; returns the package.
fn pay(
    chain: &mut Chain,
    wallet: &mut Wallet,
    to: Address,
    ranges: Vec<ValueRange>,
    samples: &mut Samples,
) -> Result<TransferPackage, WitnessBenchError> {
    let params = params(&wallet.holdings, chain.state.height);
    let submission = wallet
        .holdings
        .prepare_bundle(&wallet.key, &[(to, ranges)], &params, chain.time_ms)?;
    let (receipt, took) = chain.commit(&submission)?;
    samples.apply_payment_us.push(took.as_secs_f64() * 1e6);
    let mut packages = wallet.holdings.apply_own_receipt(receipt, &chain.headers)?;
    if packages.len() != 1 {
        return Err(WitnessBenchError::Packages(packages.len()));
    }
    let package = packages.remove(0);
    samples.package(&package);
    Ok(package)
}

/// Runs one scenario; `progress` hears about every tenth of the run.
pub fn run(
    options: &WitnessBenchOptions,
    mut progress: impl FnMut(&str),
) -> Result<WitnessBenchReport, WitnessBenchError> {
    if options.owners < 2 || options.steps == 0 {
        return Err(WitnessBenchError::TooSmall);
    }
    let started = Instant::now();
    let mut samples = Samples::default();
    let mut wallets: Vec<Wallet> = (0..options.owners)
        .map(|index| {
            let key = bench_key(1_000_000 + index);
            Wallet {
                holdings: Holdings::new(key.address()),
                key,
            }
        })
        .collect();
    let first_units = match options.scenario {
        Scenario::LongPayer => options.steps as u64,
        Scenario::Circulate => CIRCULATING_UNITS,
    };
    let first_range = ValueRange::new(0, first_units - 1).map_err(|_| WitnessBenchError::TooSmall)?;
    let genesis = genesis(vec![Allocation {
        owner: wallets[0].key.address(),
        range: first_range,
    }]);
    wallets[0].holdings = Holdings::from_genesis(wallets[0].key.address(), &genesis);
    let mut chain = Chain::new(genesis);
    let mut snapshots = 0;
    let sample_every = (options.steps / 20).max(1);
    let mut holder = 0;
    let mut picks = Picks(options.seed);
    for step in 0..options.steps {
        let payer = match options.scenario {
            Scenario::LongPayer => 0,
            Scenario::Circulate => holder,
        };
        snapshots += usize::from(snapshot_if_due(
            &mut chain,
            &mut wallets[payer],
            &options.policy,
            &mut samples,
        )?);
        let to = match options.scenario {
            Scenario::LongPayer => 1 + step % (options.owners - 1),
            Scenario::Circulate => (payer + 1 + picks.next_below(options.owners - 1)) % options.owners,
        };
        let ranges = match options.scenario {
            Scenario::LongPayer => wallets[0].holdings.select_ranges(1)?,
            Scenario::Circulate => wallets[payer].holdings.select_ranges(CIRCULATING_UNITS)?,
        };
        let recipient = wallets[to].key.address();
        let package = pay(&mut chain, &mut wallets[payer], recipient, ranges, &mut samples)?;
        let verify_started = Instant::now();
        match options.scenario {
            // The long payer's recipients only verify (they would pile up a million records).
            Scenario::LongPayer => {
                Verifier::new(&chain.genesis, &chain.headers, &NoCheckpoints, recipient).verify_package(&package)?;
            }
            Scenario::Circulate => {
                wallets[to]
                    .holdings
                    .accept_package(&chain.genesis, &chain.headers, &package)?;
                holder = to;
            }
        }
        samples.verify_ms.push(verify_started.elapsed().as_secs_f64() * 1e3);
        if (step + 1) % sample_every == 0 || step + 1 == options.steps {
            let bytes = match options.scenario {
                Scenario::LongPayer => encoded_len(&wallets[0].holdings),
                Scenario::Circulate => wallets.iter().map(|w| encoded_len(&w.holdings)).max().unwrap_or(0),
            };
            samples.wallet_bytes.push((step + 1, bytes));
        }
        if (step + 1) % (options.steps / 10).max(1) == 0 {
            progress(&format!(
                "{} of {} steps, last package {} B, {} snapshots",
                step + 1,
                options.steps,
                samples.last_package_bytes,
                snapshots
            ));
        }
    }
    let apply_payment_us = percentiles(samples.apply_payment_us);
    let apply_snapshot_us = percentiles(samples.apply_snapshot_us);
    let per_payment = snapshots as f64 / options.steps as f64;
    let snapshot_cost = per_payment * apply_snapshot_us.p50;
    let share = if apply_payment_us.p50 + snapshot_cost > 0.0 {
        snapshot_cost / (apply_payment_us.p50 + snapshot_cost)
    } else {
        0.0
    };
    Ok(WitnessBenchReport {
        scenario: options.scenario,
        steps: options.steps,
        owners: options.owners,
        snapshot_every_bundles: options.policy.every_bundles,
        snapshots,
        package_bytes: percentiles(samples.package_bytes),
        package_units: percentiles(samples.package_units),
        package_owners: percentiles(samples.package_owners),
        last_package_bytes: samples.last_package_bytes,
        verify_ms: percentiles(samples.verify_ms),
        apply_payment_us,
        apply_snapshot_us,
        snapshot_share_of_block_cpu: share,
        wallet_bytes: samples.wallet_bytes,
        duration_s: started.elapsed().as_secs_f64(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(scenario: Scenario, steps: usize, every_bundles: usize) -> WitnessBenchOptions {
        WitnessBenchOptions {
            scenario,
            steps,
            owners: 8,
            policy: SnapshotPolicy {
                every_bundles,
                ..SnapshotPolicy::default()
            },
            seed: 1,
        }
    }

    #[test]
    fn a_long_payer_on_the_default_policy_keeps_its_packages_bounded() {
        let report = run(&options(Scenario::LongPayer, 60, 16), |_| {}).expect("runs");
        assert_eq!(report.snapshots, 3);
        assert!(report.package_units.max <= 17.0, "{:?}", report.package_units);
        let never = run(&options(Scenario::LongPayer, 60, 0), |_| {}).expect("runs");
        assert_eq!(never.snapshots, 0);
        assert_eq!(never.package_units.max, 60.0);
        assert!(never.last_package_bytes > 3 * report.last_package_bytes);
    }

    #[test]
    fn a_circulating_value_names_at_most_three_owners() {
        let report = run(&options(Scenario::Circulate, 40, 16), |_| {}).expect("runs");
        assert_eq!(report.package_units.count, 40);
        assert!(report.package_owners.max <= 3.0, "{:?}", report.package_owners);
        assert!(report.snapshots > 0);
    }

    #[test]
    fn too_small_a_run_is_refused() {
        assert!(matches!(
            run(&options(Scenario::Circulate, 0, 16), |_| {}),
            Err(WitnessBenchError::TooSmall)
        ));
    }
}
