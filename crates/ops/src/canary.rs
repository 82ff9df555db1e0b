//! The canary: `ezchain ops canary-monitor` samples the service's metrics over a window and
//! reports what happened *inside* that window (counter deltas between consecutive samples; a
//! counter that went down means the service restarted, and counts from zero), and
//! `ezchain ops canary-gate` judges such a report against thresholds. Report keys follow the
//! original tool.

use crate::probe::{Sample, histogram_quantile, parse};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// One probe of the metrics endpoint.
#[derive(Clone, Debug)]
pub struct Probe {
    pub at_s: f64,
    /// `None` when the probe failed.
    pub samples: Option<Vec<Sample>>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct CanaryReport {
    pub generated_at_ms: u64,
    pub url: String,
    pub duration_s: f64,
    pub sample_count: usize,
    pub probes_total: usize,
    pub probes_failed: usize,
    /// Failed probes / probes (the service not answering).
    pub crash_rate: f64,
    /// Service restarts seen (a counter went down).
    pub restarts: usize,
    /// Sends inside the window, and how many were delivered or finalized.
    pub sends: f64,
    pub sends_succeeded: f64,
    /// Mean and minimum over intervals that had sends; `None` without traffic.
    pub transaction_success_rate_avg: Option<f64>,
    pub transaction_success_rate_min: Option<f64>,
    /// Confirmation delay of the window's sends (from the histogram's deltas).
    pub sync_latency_ms_avg: Option<f64>,
    pub sync_latency_ms_p95: Option<f64>,
    pub node_online_rate_avg: Option<f64>,
    /// Errors that happened inside the window, by code.
    pub error_code_totals: BTreeMap<String, f64>,
    /// Per interval: seconds since start, success rate (if sends), node online rate.
    pub timeline: Vec<(f64, Option<f64>, Option<f64>)>,
}

/// Series key → value, for the counters the canary follows.
fn counters(samples: &[Sample]) -> BTreeMap<String, f64> {
    samples
        .iter()
        .filter(|s| {
            s.name == "ezchain_tx_send_total"
                || s.name == "ezchain_errors_total"
                || s.name.starts_with("ezchain_confirmation_delay_seconds")
        })
        .map(|s| {
            let labels: Vec<String> = s.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
            (format!("{}|{}", s.name, labels.join(",")), s.value)
        })
        .collect()
}

fn uptime(samples: &[Sample]) -> Option<f64> {
    samples
        .iter()
        .find(|s| s.name == "ezchain_service_uptime_seconds")
        .map(|s| s.value)
}

/// Builds the report from the probes of one window.
pub fn analyse(url: &str, probes: &[Probe], generated_at_ms: u64) -> CanaryReport {
    let probes_total = probes.len().max(1);
    let good: Vec<(f64, &Vec<Sample>)> = probes
        .iter()
        .filter_map(|p| p.samples.as_ref().map(|s| (p.at_s, s)))
        .collect();
    let mut report = CanaryReport {
        generated_at_ms,
        url: url.to_string(),
        duration_s: probes.last().map_or(0.0, |p| p.at_s),
        sample_count: good.len(),
        probes_total,
        probes_failed: probes.len() - good.len(),
        ..CanaryReport::default()
    };
    report.crash_rate = report.probes_failed as f64 / probes_total as f64;
    let mut window: BTreeMap<String, f64> = BTreeMap::new();
    let mut rates = Vec::new();
    let mut online = Vec::new();
    for pair in good.windows(2) {
        let (at, later) = (pair[1].0, pair[1].1);
        let (before, after) = (counters(pair[0].1), counters(later));
        let restarted = match (uptime(pair[0].1), uptime(later)) {
            (Some(a), Some(b)) => b < a,
            _ => false,
        } || after
            .iter()
            .any(|(key, value)| before.get(key).is_some_and(|old| value < old));
        if restarted {
            report.restarts += 1;
        }
        let mut delta: BTreeMap<String, f64> = BTreeMap::new();
        for (key, value) in &after {
            let old = if restarted {
                0.0
            } else {
                before.get(key).copied().unwrap_or(0.0)
            };
            delta.insert(key.clone(), (value - old).max(0.0));
        }
        let sends: f64 = delta
            .iter()
            .filter(|(k, _)| k.starts_with("ezchain_tx_send_total|"))
            .map(|(_, v)| v)
            .sum();
        let succeeded: f64 = delta
            .iter()
            .filter(|(k, _)| {
                k.as_str() == "ezchain_tx_send_total|result=delivered"
                    || k.as_str() == "ezchain_tx_send_total|result=finalized"
            })
            .map(|(_, v)| v)
            .sum();
        let rate = (sends > 0.0).then(|| succeeded / sends);
        if let Some(rate) = rate {
            rates.push(rate);
        }
        let node_rate = later
            .iter()
            .find(|s| s.name == "ezchain_node_online_ratio")
            .map(|s| s.value);
        report.timeline.push((at, rate, node_rate));
        for (key, value) in delta {
            *window.entry(key).or_default() += value;
        }
    }
    for (_, samples) in &good {
        if let Some(rate) = samples.iter().find(|s| s.name == "ezchain_node_online_ratio") {
            online.push(rate.value);
        }
    }
    report.sends = window
        .iter()
        .filter(|(k, _)| k.starts_with("ezchain_tx_send_total|"))
        .map(|(_, v)| v)
        .sum();
    report.sends_succeeded = window
        .iter()
        .filter(|(k, _)| {
            k.as_str() == "ezchain_tx_send_total|result=delivered"
                || k.as_str() == "ezchain_tx_send_total|result=finalized"
        })
        .map(|(_, v)| v)
        .sum();
    if !rates.is_empty() {
        report.transaction_success_rate_avg = Some(rates.iter().sum::<f64>() / rates.len() as f64);
        report.transaction_success_rate_min = rates.iter().copied().reduce(f64::min);
    }
    if !online.is_empty() {
        report.node_online_rate_avg = Some(online.iter().sum::<f64>() / online.len() as f64);
    }
    let count = window
        .get("ezchain_confirmation_delay_seconds_count|")
        .copied()
        .unwrap_or(0.0);
    let sum = window
        .get("ezchain_confirmation_delay_seconds_sum|")
        .copied()
        .unwrap_or(0.0);
    if count > 0.0 {
        report.sync_latency_ms_avg = Some(sum / count * 1000.0);
        // The window's histogram: bucket deltas as samples.
        let buckets: Vec<Sample> = window
            .iter()
            .filter_map(|(key, value)| {
                let le = key.strip_prefix("ezchain_confirmation_delay_seconds_bucket|le=")?;
                Some(Sample {
                    name: "window_bucket".into(),
                    labels: BTreeMap::from([("le".to_string(), le.to_string())]),
                    value: *value,
                })
            })
            .collect();
        report.sync_latency_ms_p95 = histogram_quantile(&buckets, "window", 0.95).map(|s| s * 1000.0);
    }
    report.error_code_totals = window
        .iter()
        .filter_map(|(key, value)| {
            let code = key.strip_prefix("ezchain_errors_total|code=")?;
            (*value > 0.0).then(|| (code.to_string(), *value))
        })
        .collect();
    report
}

/// Samples `url` every `interval` for `duration`; `tick` is called after each probe with
/// (probes so far, probes planned).
pub fn monitor(
    url: &str,
    duration: Duration,
    interval: Duration,
    timeout: Duration,
    mut tick: impl FnMut(usize, usize),
) -> Vec<Probe> {
    let http = reqwest::blocking::Client::builder().timeout(timeout).build().ok();
    let started = Instant::now();
    let planned = (duration.as_secs_f64() / interval.as_secs_f64()).floor() as usize + 1;
    let mut probes = Vec::with_capacity(planned);
    loop {
        let at_s = started.elapsed().as_secs_f64();
        let samples = http
            .as_ref()
            .and_then(|http| http.get(url).send().ok())
            .filter(|response| response.status().is_success())
            .and_then(|response| response.text().ok())
            .map(|text| parse(&text))
            .filter(|samples| samples.iter().any(|s| s.name.starts_with("ezchain_")));
        probes.push(Probe { at_s, samples });
        tick(probes.len(), planned);
        let next = interval.mul_f64(probes.len() as f64);
        if next > duration {
            break;
        }
        if let Some(wait) = next.checked_sub(started.elapsed()) {
            std::thread::sleep(wait);
        }
    }
    probes
}

/// The canary's page: the figures judged by `thresholds` (what `ops canary-gate` would say),
/// success and node online per interval with the rules' lines, `json_file` named as the
/// report's full record.
pub fn html_report(report: &CanaryReport, thresholds: &Thresholds, json_file: &str) -> String {
    use crate::html::{Bound, Chart, Row, Series, Threshold, page, svg_chart};
    let verdicts = gate(report, thresholds);
    let percent = |v: Option<f64>| v.map_or("no data".to_string(), |v| format!("{:.1} %", v * 100.0));
    let mut rows = vec![
        Row::new(
            "window",
            format!("{:.0} s, {} probes", report.duration_s, report.probes_total),
        ),
        Row::new(
            "sends in the window",
            format!("{} ({} succeeded)", report.sends, report.sends_succeeded),
        ),
        Row::new("service restarts seen", report.restarts.to_string()),
    ];
    rows.extend(
        verdicts
            .iter()
            .map(|v| Row::judged(v.rule.clone(), v.value.clone(), v.passed)),
    );
    let top: Vec<String> = {
        let mut codes: Vec<(&String, &f64)> = report.error_code_totals.iter().collect();
        codes.sort_by(|a, b| b.1.total_cmp(a.1));
        codes.iter().take(3).map(|(code, n)| format!("{code} ({n})")).collect()
    };
    rows.push(Row::new(
        "top error codes",
        if top.is_empty() {
            "none".to_string()
        } else {
            top.join(", ")
        },
    ));
    // A ratio per interval against the gate's minimum.
    let ratio_chart = |title: &str, y_label: &str, name: &str, points: Vec<(f64, Option<f64>)>, minimum: f64| Chart {
        title: title.into(),
        x_label: "seconds since the first probe".into(),
        y_label: y_label.into(),
        series: vec![Series {
            name: name.into(),
            points,
        }],
        thresholds: vec![Threshold {
            label: format!("gate: ≥ {minimum}"),
            value: minimum,
            bound: Bound::AtLeast,
        }],
        markers: Vec::new(),
        y_max: Some(1.0),
    };
    let success = ratio_chart(
        "Transaction success per interval",
        "delivered or finalized / sent",
        "success ratio",
        report.timeline.iter().map(|(t, r, _)| (*t, *r)).collect(),
        thresholds.min_tx_success_rate,
    );
    let online = ratio_chart(
        "Configured nodes online per interval",
        "nodes up / configured",
        "online ratio",
        report.timeline.iter().map(|(t, _, o)| (*t, *o)).collect(),
        thresholds.min_node_online_rate,
    );
    let note = format!(
        "{} — success {}, node online {}, p95 confirmation {}. Judged with the thresholds of `ezchain ops canary-gate` shown in each rule.",
        report.url,
        percent(report.transaction_success_rate_avg),
        percent(report.node_online_rate_avg),
        report
            .sync_latency_ms_p95
            .map_or("no data".into(), |ms| format!("{ms:.0} ms")),
    );
    page(
        "ezchain canary",
        &note,
        &rows,
        &[svg_chart(&success), svg_chart(&online)],
        json_file,
    )
}

/// The gate's thresholds.
#[derive(Clone, Debug, Serialize)]
pub struct Thresholds {
    pub max_crash_rate: f64,
    pub min_tx_success_rate: f64,
    pub max_sync_latency_ms_p95: f64,
    pub min_node_online_rate: f64,
    pub allow_missing_latency: bool,
    pub require_traffic: bool,
}

impl Default for Thresholds {
    /// The runbook's: `ezchain ops canary-gate` without flags.
    fn default() -> Self {
        Thresholds {
            max_crash_rate: 0.05,
            min_tx_success_rate: 0.95,
            max_sync_latency_ms_p95: 30_000.0,
            min_node_online_rate: 0.95,
            allow_missing_latency: false,
            require_traffic: false,
        }
    }
}

/// One rule: name, the report's value, verdict.
#[derive(Clone, Debug, Serialize)]
pub struct Verdict {
    pub rule: String,
    pub value: String,
    pub passed: bool,
}

pub fn gate(report: &CanaryReport, t: &Thresholds) -> Vec<Verdict> {
    let show = |v: Option<f64>| v.map_or("no data".to_string(), |v| format!("{v:.4}"));
    let mut verdicts = vec![Verdict {
        rule: format!("crash_rate <= {}", t.max_crash_rate),
        value: format!("{:.4}", report.crash_rate),
        passed: report.crash_rate <= t.max_crash_rate,
    }];
    verdicts.push(Verdict {
        rule: format!("transaction_success_rate_avg >= {}", t.min_tx_success_rate),
        value: show(report.transaction_success_rate_avg),
        passed: match report.transaction_success_rate_avg {
            Some(rate) => rate >= t.min_tx_success_rate,
            None => !t.require_traffic,
        },
    });
    verdicts.push(Verdict {
        rule: format!("sync_latency_ms_p95 <= {}", t.max_sync_latency_ms_p95),
        value: show(report.sync_latency_ms_p95),
        passed: match report.sync_latency_ms_p95 {
            Some(p95) => p95 <= t.max_sync_latency_ms_p95,
            None => t.allow_missing_latency || (report.sends == 0.0 && !t.require_traffic),
        },
    });
    verdicts.push(Verdict {
        rule: format!("node_online_rate_avg >= {}", t.min_node_online_rate),
        value: show(report.node_online_rate_avg),
        passed: report
            .node_online_rate_avg
            .is_some_and(|rate| rate >= t.min_node_online_rate),
    });
    verdicts
}

#[cfg(test)]
mod tests {
    use super::*;

    fn probe(at_s: f64, uptime: f64, delivered: f64, failed: f64, replay: f64, online: f64, delay_count: f64) -> Probe {
        let text = format!(
            "ezchain_service_uptime_seconds {uptime}\n\
             ezchain_tx_send_total{{result=\"delivered\"}} {delivered}\n\
             ezchain_tx_send_total{{result=\"insufficient_funds\"}} {failed}\n\
             ezchain_errors_total{{code=\"replay_detected\"}} {replay}\n\
             ezchain_node_online_ratio {online}\n\
             ezchain_confirmation_delay_seconds_sum {}\n\
             ezchain_confirmation_delay_seconds_count {delay_count}\n\
             ezchain_confirmation_delay_seconds_bucket{{le=\"1.0\"}} {delay_count}\n\
             ezchain_confirmation_delay_seconds_bucket{{le=\"+Inf\"}} {delay_count}\n",
            delay_count * 0.8
        );
        Probe {
            at_s,
            samples: Some(parse(&text)),
        }
    }

    #[test]
    fn counts_only_what_happened_inside_the_window_across_a_restart() {
        let probes = vec![
            // Before the window: 100 sends and 50 replays already counted.
            probe(0.0, 500.0, 100.0, 0.0, 50.0, 1.0, 100.0),
            probe(1.0, 501.0, 104.0, 1.0, 50.0, 1.0, 104.0),
            Probe {
                at_s: 2.0,
                samples: None,
            },
            // Restarted: counters from zero.
            probe(3.0, 1.0, 2.0, 0.0, 1.0, 0.5, 2.0),
        ];
        let report = analyse("u", &probes, 0);
        assert_eq!(
            (report.probes_total, report.probes_failed, report.sample_count),
            (4, 1, 3)
        );
        assert_eq!(report.crash_rate, 0.25);
        assert_eq!(report.restarts, 1);
        assert_eq!((report.sends, report.sends_succeeded), (7.0, 6.0));
        assert_eq!(report.transaction_success_rate_min, Some(0.8));
        assert_eq!(report.error_code_totals.get("replay_detected"), Some(&1.0));
        assert_eq!(report.node_online_rate_avg, Some(2.5 / 3.0));
        assert!((report.sync_latency_ms_avg.expect("latency") - 800.0).abs() < 1e-6);
    }

    #[test]
    fn the_gate_judges_each_rule_and_no_traffic_is_no_data() {
        let quiet = analyse(
            "u",
            &[
                probe(0.0, 1.0, 0.0, 0.0, 0.0, 1.0, 0.0),
                probe(1.0, 2.0, 0.0, 0.0, 0.0, 1.0, 0.0),
            ],
            0,
        );
        let thresholds = Thresholds {
            max_crash_rate: 0.05,
            min_tx_success_rate: 0.95,
            max_sync_latency_ms_p95: 30_000.0,
            min_node_online_rate: 0.95,
            allow_missing_latency: false,
            require_traffic: false,
        };
        assert!(gate(&quiet, &thresholds).iter().all(|v| v.passed));
        let strict = Thresholds {
            require_traffic: true,
            ..thresholds.clone()
        };
        assert!(!gate(&quiet, &strict)[1].passed);
        let down = analyse(
            "u",
            &[
                probe(0.0, 1.0, 0.0, 0.0, 0.0, 0.2, 0.0),
                Probe {
                    at_s: 1.0,
                    samples: None,
                },
            ],
            0,
        );
        let verdicts = gate(&down, &thresholds);
        assert!(!verdicts[0].passed && !verdicts[3].passed);
    }
}
