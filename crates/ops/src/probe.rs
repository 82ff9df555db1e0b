//! `ezchain ops metrics-probe`: the runbook's post-release checks (§7) read from the wallet
//! service's `/metrics` — node online status, transaction success ratio, median confirmation
//! delay, top error codes.
//!
//! The service writes the classic Prometheus text format; only sample lines
//! (`name{labels} value`) are read here, which is all these checks need.

use serde::Serialize;
use std::collections::BTreeMap;

/// One sample: metric name, labels, value.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

/// The samples of a Prometheus text exposition (comments and malformed lines skipped).
pub fn parse(text: &str) -> Vec<Sample> {
    text.lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .filter_map(parse_line)
        .collect()
}

fn parse_line(line: &str) -> Option<Sample> {
    let (series, value) = line.rsplit_once(' ')?;
    let value: f64 = value.parse().ok()?;
    let (name, labels) = match series.split_once('{') {
        Some((name, rest)) => (name, parse_labels(rest.strip_suffix('}')?)?),
        None => (series, BTreeMap::new()),
    };
    Some(Sample {
        name: name.to_string(),
        labels,
        value,
    })
}

fn parse_labels(text: &str) -> Option<BTreeMap<String, String>> {
    let mut labels = BTreeMap::new();
    let mut rest = text;
    while !rest.is_empty() {
        let (key, after) = rest.split_once("=\"")?;
        let mut value = String::new();
        let mut chars = after.char_indices();
        let end = loop {
            let (index, c) = chars.next()?;
            match c {
                '\\' => value.push(chars.next()?.1),
                '"' => break index,
                c => value.push(c),
            }
        };
        labels.insert(key.trim_start_matches(',').to_string(), value);
        rest = after[end + 1..].trim_start_matches(',');
    }
    Some(labels)
}

fn sum(samples: &[Sample], name: &str, filter: impl Fn(&Sample) -> bool) -> f64 {
    samples
        .iter()
        .filter(|s| s.name == name && filter(s))
        .map(|s| s.value)
        // Not `.sum()`: an empty f64 sum is -0.0, which printed as "-0 of -0 sends".
        .fold(0.0, |total, value| total + value)
}

/// The quantile `q` of a histogram, interpolated inside its bucket (as PromQL's
/// `histogram_quantile` does). `None` without observations.
pub fn histogram_quantile(samples: &[Sample], name: &str, q: f64) -> Option<f64> {
    let bucket = format!("{name}_bucket");
    let mut buckets: Vec<(f64, f64)> = samples
        .iter()
        .filter(|s| s.name == bucket)
        .filter_map(|s| {
            let le = s.labels.get("le")?;
            let bound = if le == "+Inf" { f64::INFINITY } else { le.parse().ok()? };
            Some((bound, s.value))
        })
        .collect();
    buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
    let total = buckets.last()?.1;
    if total <= 0.0 {
        return None;
    }
    let rank = q * total;
    let mut previous = (0.0, 0.0);
    for &(bound, count) in &buckets {
        if count >= rank {
            if bound.is_infinite() {
                return Some(previous.0);
            }
            let in_bucket = count - previous.1;
            let fraction = if in_bucket > 0.0 {
                (rank - previous.1) / in_bucket
            } else {
                1.0
            };
            return Some(previous.0 + (bound - previous.0) * fraction);
        }
        previous = (bound, count);
    }
    None
}

/// The runbook §7 checks.
#[derive(Clone, Debug, Serialize)]
pub struct ProbeReport {
    /// Configured nodes answering / configured nodes (the service's last probe).
    pub node_online_rate: Option<f64>,
    pub nodes: BTreeMap<String, bool>,
    pub sends_total: f64,
    pub sends_delivered: f64,
    /// Delivered (or finalized) sends / all sends; `None` before the first send.
    pub transaction_success_rate: Option<f64>,
    pub median_confirmation_delay_ms: Option<f64>,
    pub p95_confirmation_delay_ms: Option<f64>,
    /// The three most frequent error codes with their counts.
    pub top_error_codes: Vec<(String, f64)>,
    pub chain_height: Option<f64>,
    pub sync_lag_blocks: Option<f64>,
}

pub fn report(samples: &[Sample]) -> ProbeReport {
    let gauge = |name: &str| samples.iter().find(|s| s.name == name).map(|s| s.value);
    let sends_total = sum(samples, "ezchain_tx_send_total", |_| true);
    let sends_delivered = sum(samples, "ezchain_tx_send_total", |s| {
        s.labels
            .get("result")
            .is_some_and(|r| r == "delivered" || r == "finalized")
    });
    let mut errors: Vec<(String, f64)> = samples
        .iter()
        .filter(|s| s.name == "ezchain_errors_total")
        .filter_map(|s| Some((s.labels.get("code")?.clone(), s.value)))
        .collect();
    errors.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    errors.truncate(3);
    ProbeReport {
        node_online_rate: gauge("ezchain_node_online_ratio"),
        nodes: samples
            .iter()
            .filter(|s| s.name == "ezchain_node_up")
            .filter_map(|s| Some((s.labels.get("node")?.clone(), s.value >= 1.0)))
            .collect(),
        sends_total,
        sends_delivered,
        transaction_success_rate: (sends_total > 0.0).then(|| sends_delivered / sends_total),
        median_confirmation_delay_ms: histogram_quantile(samples, "ezchain_confirmation_delay_seconds", 0.5)
            .map(|s| s * 1000.0),
        p95_confirmation_delay_ms: histogram_quantile(samples, "ezchain_confirmation_delay_seconds", 0.95)
            .map(|s| s * 1000.0),
        top_error_codes: errors,
        chain_height: gauge("ezchain_chain_height"),
        sync_lag_blocks: gauge("ezchain_sync_lag_blocks"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = r#"# HELP ezchain_tx_send_total Payments sent, by result.
# TYPE ezchain_tx_send_total counter
ezchain_tx_send_total{result="delivered"} 9
ezchain_tx_send_total{result="insufficient_funds"} 1
ezchain_errors_total{code="replay_detected"} 4
ezchain_errors_total{code="unauthorized"} 7
ezchain_errors_total{code="duplicate_transaction"} 2
ezchain_errors_total{code="not_found"} 1
ezchain_confirmation_delay_seconds_sum 9.0
ezchain_confirmation_delay_seconds_count 10
ezchain_confirmation_delay_seconds_bucket{le="0.5"} 0
ezchain_confirmation_delay_seconds_bucket{le="1.0"} 6
ezchain_confirmation_delay_seconds_bucket{le="2.0"} 10
ezchain_confirmation_delay_seconds_bucket{le="+Inf"} 10
ezchain_node_up{node="127.0.0.1:19503"} 1
ezchain_node_up{node="127.0.0.1:19505"} 0
ezchain_node_online_ratio 0.5
"#;

    #[test]
    fn parses_samples_with_labels() {
        let samples = parse(TEXT);
        assert_eq!(samples.len(), 15);
        assert_eq!(samples[0].labels["result"], "delivered");
        assert_eq!(parse(r#"x{a="q\"uote",b="2"} 3"#)[0].labels["a"], "q\"uote");
        assert!(parse("garbage line").is_empty());
    }

    #[test]
    fn the_runbook_checks() {
        let report = report(&parse(TEXT));
        assert_eq!(report.transaction_success_rate, Some(0.9));
        assert_eq!(report.node_online_rate, Some(0.5));
        assert_eq!(report.nodes.values().filter(|up| **up).count(), 1);
        // Rank 5 of 10 falls in (0.5, 1.0] holding 6: 0.5 + 0.5 × 5/6.
        let median = report.median_confirmation_delay_ms.expect("median");
        assert!((median - (500.0 + 500.0 * 5.0 / 6.0)).abs() < 1e-6, "{median}");
        let top: Vec<&str> = report.top_error_codes.iter().map(|(c, _)| c.as_str()).collect();
        assert_eq!(top, ["unauthorized", "replay_detected", "duplicate_transaction"]);
        assert_eq!(histogram_quantile(&parse(""), "x", 0.5), None);
    }

    #[test]
    fn a_service_that_sent_nothing_counts_zero_not_minus_zero() {
        let report = report(&parse("ezchain_node_online_ratio 1\n"));
        assert_eq!(report.transaction_success_rate, None);
        assert!(report.sends_total.is_sign_positive() && report.sends_total == 0.0);
        assert_eq!(
            format!("{} of {}", report.sends_delivered, report.sends_total),
            "0 of 0"
        );
    }
}
