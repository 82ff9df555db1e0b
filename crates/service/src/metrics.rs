//! The service's Prometheus metrics (`ezchain_` prefix), served at `/metrics`.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use std::sync::atomic::AtomicU64;
use std::time::Instant;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    pub route: String,
    pub status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabels {
    pub result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CodeLabels {
    pub code: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct NodeLabels {
    pub node: String,
}

pub struct ServiceMetrics {
    registry: Registry,
    pub requests: Family<RouteLabels, Counter>,
    pub tx_send: Family<ResultLabels, Counter>,
    pub errors: Family<CodeLabels, Counter>,
    pub confirmation_delay: Histogram,
    pub node_up: Family<NodeLabels, Gauge>,
    pub node_online_ratio: Gauge<f64, AtomicU64>,
    pub chain_height: Gauge,
    pub sync_lag: Gauge,
    uptime: Gauge<f64, AtomicU64>,
    started: Instant,
}

/// `ezchain_build_info`'s labels.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BuildLabels {
    version: String,
    commit: String,
    date: String,
}

impl ServiceMetrics {
    pub fn new() -> Self {
        Self::with_build(&ezchain_host::build::BuildInfo::unknown())
    }

    /// The metrics, with `ezchain_build_info{version, commit, date} 1` naming this binary.
    pub fn with_build(build: &ezchain_host::build::BuildInfo) -> Self {
        let mut registry = Registry::with_prefix("ezchain");
        let build_info = Family::<BuildLabels, Gauge>::default();
        build_info
            .get_or_create(&BuildLabels {
                version: build.version.clone(),
                commit: build.commit.clone(),
                date: build.date.clone(),
            })
            .set(1);
        registry.register(
            "build_info",
            "1, labelled with the version, git commit and commit date of this binary",
            build_info,
        );
        let requests = Family::<RouteLabels, Counter>::default();
        registry.register(
            "http_requests",
            "Requests answered, by route and status",
            requests.clone(),
        );
        let tx_send = Family::<ResultLabels, Counter>::default();
        registry.register("tx_send", "Payments sent, by result", tx_send.clone());
        let errors = Family::<CodeLabels, Counter>::default();
        registry.register("errors", "Failed requests, by error code", errors.clone());
        let confirmation_delay = Histogram::new([0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0]);
        registry.register(
            "confirmation_delay_seconds",
            "Time from signing a payment to its finalized receipt",
            confirmation_delay.clone(),
        );
        let node_up = Family::<NodeLabels, Gauge>::default();
        registry.register(
            "node_up",
            "1 when the configured node answered its last probe",
            node_up.clone(),
        );
        let node_online_ratio = Gauge::<f64, AtomicU64>::default();
        registry.register(
            "node_online_ratio",
            "Reachable configured nodes / configured nodes",
            node_online_ratio.clone(),
        );
        let chain_height = Gauge::default();
        registry.register(
            "chain_height",
            "Finalized height reported by the nodes",
            chain_height.clone(),
        );
        let sync_lag = Gauge::default();
        registry.register(
            "sync_lag_blocks",
            "Finalized blocks the wallet has not verified yet",
            sync_lag.clone(),
        );
        let uptime = Gauge::<f64, AtomicU64>::default();
        registry.register(
            "service_uptime_seconds",
            "Seconds since the service started",
            uptime.clone(),
        );
        ServiceMetrics {
            registry,
            requests,
            tx_send,
            errors,
            confirmation_delay,
            node_up,
            node_online_ratio,
            chain_height,
            sync_lag,
            uptime,
            started: Instant::now(),
        }
    }

    pub fn export(&self) -> String {
        self.uptime.set(self.started.elapsed().as_secs_f64());
        let mut text = String::new();
        if prometheus_client::encoding::text::encode(&mut text, &self.registry).is_err() {
            text.clear();
        }
        ezchain_host::exposition::openmetrics_to_prometheus_text(&text)
    }
}

impl Default for ServiceMetrics {
    fn default() -> Self {
        Self::new()
    }
}
