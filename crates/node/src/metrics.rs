//! Node metrics, registered in the same Prometheus registry as the engine's so `/metrics`
//! serves both (one `prometheus-client`, the engine's version).
//!
//! Names: `ezchain_node_<what>[_<unit>]`; counters end in `_total`; no addresses as labels.

use ezchain_host::build::BuildInfo;
use malachitebft_metrics::SharedRegistry;
use malachitebft_metrics::prometheus::metrics::counter::Counter;
use malachitebft_metrics::prometheus::metrics::family::Family;
use malachitebft_metrics::prometheus::metrics::gauge::Gauge;
use malachitebft_metrics::prometheus::metrics::histogram::Histogram;
use std::sync::atomic::AtomicU64;

#[derive(Clone)]
pub struct NodeMetrics {
    pub height: Gauge,
    pub decided_round: Gauge,
    pub mempool_bundles: Gauge,
    pub peers: Gauge,
    pub tip_age_seconds: Gauge<f64, AtomicU64>,
    pub bundles_committed: Counter,
    pub proposal_validation_failures: Counter,
    pub block_interval_seconds: Histogram,
    pub equivocation_evidence: Counter,
    pub own_key_foreign_signatures: Counter,
    pub signing_paused: Gauge,
    /// `POST /v1/submit` requests, by origin (`client` or `peer`).
    pub submissions_received: Family<Vec<(String, String)>, Counter>,
    /// Requests the forwarder sent on to peers.
    pub bundle_forwards: Counter,
    /// Bundles the mempool holds at most (`mempool.capacity`).
    pub mempool_capacity: Gauge,
    /// Per genesis validator (by name): committed heights in a row whose commit certificate
    /// lacks its precommit; 0 once a commit holds it again.
    pub validator_missed_commits: Family<Vec<(String, String)>, Gauge>,
    /// Coins the co-hosted faucet can still pay (registered only on a node with a faucet).
    pub faucet_available_coins: Gauge,
}

/// What the metrics describe beyond the binary: fixed for the life of the process.
pub struct NodeFacts<'a> {
    pub mempool_capacity: usize,
    /// The genesis validators' names, each a `validator` label.
    pub validators: &'a [String],
    pub hosts_faucet: bool,
}

impl NodeMetrics {
    /// Registers the node metrics in the global registry (call once per process), with
    /// `ezchain_build_info{version, commit, date} 1` naming this binary.
    pub fn register(build: &BuildInfo, facts: &NodeFacts<'_>) -> Self {
        let metrics = NodeMetrics {
            height: Gauge::default(),
            decided_round: Gauge::default(),
            mempool_bundles: Gauge::default(),
            peers: Gauge::default(),
            tip_age_seconds: Gauge::default(),
            bundles_committed: Counter::default(),
            proposal_validation_failures: Counter::default(),
            block_interval_seconds: Histogram::new([0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0]),
            equivocation_evidence: Counter::default(),
            own_key_foreign_signatures: Counter::default(),
            signing_paused: Gauge::default(),
            submissions_received: Family::default(),
            bundle_forwards: Counter::default(),
            mempool_capacity: Gauge::default(),
            validator_missed_commits: Family::default(),
            faucet_available_coins: Gauge::default(),
        };
        metrics
            .mempool_capacity
            .set(i64::try_from(facts.mempool_capacity).unwrap_or(i64::MAX));
        // Every validator's series exists from the start, so a dashboard shows 0, not nothing.
        for name in facts.validators {
            metrics
                .validator_missed_commits
                .get_or_create(&validator_label(name))
                .set(0);
        }
        let build_info = Family::<Vec<(String, String)>, Gauge>::default();
        build_info
            .get_or_create(&vec![
                ("version".to_string(), build.version.clone()),
                ("commit".to_string(), build.commit.clone()),
                ("date".to_string(), build.date.clone()),
            ])
            .set(1);
        SharedRegistry::global().with_prefix("ezchain", |registry| {
            registry.register(
                "build_info",
                "1, labelled with the version, git commit and commit date of this binary",
                build_info,
            );
        });
        SharedRegistry::global().with_prefix("ezchain_node", |registry| {
            registry.register("height", "Height of the last committed block", metrics.height.clone());
            registry.register(
                "decided_round",
                "Round in which the last block was decided",
                metrics.decided_round.clone(),
            );
            registry.register(
                "mempool_bundles",
                "Bundles waiting in the mempool",
                metrics.mempool_bundles.clone(),
            );
            registry.register("peers", "Connected network peers", metrics.peers.clone());
            registry.register(
                "tip_age_seconds",
                "Seconds since the timestamp of the last committed block (sync lag on a live chain)",
                metrics.tip_age_seconds.clone(),
            );
            registry.register(
                "bundles_committed",
                "Bundles committed in finalized blocks",
                metrics.bundles_committed.clone(),
            );
            registry.register(
                "proposal_validation_failures",
                "Proposals rejected because re-execution failed",
                metrics.proposal_validation_failures.clone(),
            );
            registry.register(
                "equivocation_evidence",
                "Conflicting proposals or votes by any validator that this node observed (double signing)",
                metrics.equivocation_evidence.clone(),
            );
            registry.register(
                "own_key_foreign_signatures",
                "Commits holding a precommit by this validator's key that this node did not sign",
                metrics.own_key_foreign_signatures.clone(),
            );
            registry.register(
                "signing_paused",
                "1 while this validator runs as a non-signing follower because its key signed elsewhere",
                metrics.signing_paused.clone(),
            );
            registry.register(
                "submissions_received",
                "POST /v1/submit requests, by origin: client, or peer (another node's forwarder)",
                metrics.submissions_received.clone(),
            );
            registry.register(
                "bundle_forwards",
                "Submissions this node sent on to a peer (one per peer)",
                metrics.bundle_forwards.clone(),
            );
            registry.register(
                "mempool_capacity",
                "Bundles the mempool holds at most (mempool.capacity); new senders are refused beyond it",
                metrics.mempool_capacity.clone(),
            );
            registry.register(
                "validator_missed_commits",
                "Committed heights in a row whose commit lacks this validator's precommit (0 once one holds it)",
                metrics.validator_missed_commits.clone(),
            );
            if facts.hosts_faucet {
                registry.register(
                    "faucet_available_coins",
                    "Coins the co-hosted faucet can still pay, as of its last payment",
                    metrics.faucet_available_coins.clone(),
                );
            }
            registry.register(
                "block_interval_seconds",
                "Time between the timestamps of consecutive committed blocks",
                metrics.block_interval_seconds.clone(),
            );
        });
        metrics
    }
}

/// The label set of one validator's series.
pub fn validator_label(name: &str) -> Vec<(String, String)> {
    vec![("validator".to_string(), name.to_string())]
}

/// The Prometheus text exposition of every registered metric.
pub fn export() -> String {
    let mut text = String::new();
    malachitebft_metrics::export(&mut text);
    ezchain_host::exposition::openmetrics_to_prometheus_text(&text)
}
