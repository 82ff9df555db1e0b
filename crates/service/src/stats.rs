//! The web wallet's live charts (`GET /ui/stats`): the runbook's post-release checks — send
//! success ratio, median and p95 confirmation delay, the top error codes — sampled every
//! [`SAMPLE_EVERY`] and kept for [`KEPT`] in memory (a restart starts the charts afresh; the
//! Prometheus metrics are the durable record).
//!
//! Each sample judges the sends answered in the [`WINDOW`] before it, the same rules as
//! `ezchain ops metrics-probe` (a send succeeded when it reached `finalized` or `delivered`), so
//! a chart shows the service now, not an average since it started.

use schemars::JsonSchema;
use serde::Serialize;
use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;
use std::time::Duration;

pub const SAMPLE_EVERY: Duration = Duration::from_secs(10);
pub const WINDOW: Duration = Duration::from_secs(300);
pub const KEPT: Duration = Duration::from_secs(24 * 3600);
/// Points one answer carries at most (older samples are thinned evenly).
pub const MAX_POINTS: usize = 360;

const SAMPLES_KEPT: usize = (KEPT.as_secs() / SAMPLE_EVERY.as_secs()) as usize;

/// One send's first answer.
struct SendEvent {
    at_ms: u64,
    succeeded: bool,
    delay_ms: Option<u64>,
}

#[derive(Clone, Debug, PartialEq, Serialize, JsonSchema)]
pub struct Sample {
    pub time_ms: u64,
    /// Sends answered in the window.
    pub sends: u64,
    pub succeeded: u64,
    /// `succeeded / sends`; `None` without sends.
    pub success_ratio: Option<f64>,
    pub delay_p50_ms: Option<f64>,
    pub delay_p95_ms: Option<f64>,
    /// Refusals by code since the previous sample.
    pub errors: BTreeMap<String, u64>,
}

#[derive(Default)]
struct Inner {
    sends: VecDeque<SendEvent>,
    errors_since_sample: BTreeMap<String, u64>,
    samples: VecDeque<Sample>,
}

#[derive(Default)]
pub struct Stats {
    inner: Mutex<Inner>,
}

/// The `q` quantile of sorted `values` (linear interpolation between neighbours).
fn quantile(sorted: &[u64], q: f64) -> Option<f64> {
    let last = sorted.len().checked_sub(1)?;
    let position = q * last as f64;
    let (low, high) = (position.floor() as usize, position.ceil() as usize);
    let fraction = position - low as f64;
    Some(sorted[low] as f64 * (1.0 - fraction) + sorted[high] as f64 * fraction)
}

impl Stats {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A send's first answer: its status (or error code) and its confirmation delay.
    pub fn record_send(&self, at_ms: u64, result: &str, delay_ms: Option<u64>) {
        let mut inner = self.lock();
        inner.sends.push_back(SendEvent {
            at_ms,
            succeeded: result == "delivered" || result == "finalized",
            delay_ms,
        });
    }

    /// A refused request's code.
    pub fn record_error(&self, code: &str) {
        *self.lock().errors_since_sample.entry(code.to_string()).or_default() += 1;
    }

    /// Takes a sample at `now_ms`.
    pub fn sample(&self, now_ms: u64) {
        let mut inner = self.lock();
        let since = now_ms.saturating_sub(WINDOW.as_millis() as u64);
        while inner.sends.front().is_some_and(|event| event.at_ms < since) {
            inner.sends.pop_front();
        }
        let sends = inner.sends.len() as u64;
        let succeeded = inner.sends.iter().filter(|event| event.succeeded).count() as u64;
        let mut delays: Vec<u64> = inner.sends.iter().filter_map(|event| event.delay_ms).collect();
        delays.sort_unstable();
        let sample = Sample {
            time_ms: now_ms,
            sends,
            succeeded,
            success_ratio: (sends > 0).then(|| succeeded as f64 / sends as f64),
            delay_p50_ms: quantile(&delays, 0.5),
            delay_p95_ms: quantile(&delays, 0.95),
            errors: std::mem::take(&mut inner.errors_since_sample),
        };
        if inner.samples.len() >= SAMPLES_KEPT {
            inner.samples.pop_front();
        }
        inner.samples.push_back(sample);
    }

    /// At most [`MAX_POINTS`] samples, oldest first, thinned evenly (errors summed over the
    /// samples a point stands for, so no refusal disappears from the chart).
    pub fn series(&self) -> Vec<Sample> {
        let inner = self.lock();
        let step = inner.samples.len().div_ceil(MAX_POINTS).max(1);
        let samples: Vec<&Sample> = inner.samples.iter().collect();
        samples
            .chunks(step)
            .filter_map(|chunk| {
                let mut point = (*chunk.last()?).clone();
                point.errors = BTreeMap::new();
                for sample in chunk {
                    for (code, count) in &sample.errors {
                        *point.errors.entry(code.clone()).or_default() += count;
                    }
                }
                Some(point)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sample_judges_the_sends_of_its_window() {
        let stats = Stats::default();
        let t0 = 1_000_000;
        stats.record_send(t0, "delivered", Some(100));
        stats.record_send(t0 + 1, "finalized", Some(300));
        stats.record_send(t0 + 2, "insufficient_funds", None);
        stats.record_send(t0 + 3, "delivered", Some(200));
        stats.record_error("insufficient_funds");
        stats.record_error("insufficient_funds");
        stats.record_error("unauthorized");
        stats.sample(t0 + 10);
        let first = &stats.series()[0];
        assert_eq!((first.sends, first.succeeded), (4, 3));
        assert_eq!(first.success_ratio, Some(0.75));
        assert_eq!(first.delay_p50_ms, Some(200.0));
        assert_eq!(first.delay_p95_ms, Some(290.0));
        assert_eq!(first.errors["insufficient_funds"], 2);
        // The next sample counts only newer errors, and the window forgets old sends.
        stats.sample(t0 + WINDOW.as_millis() as u64 + 5);
        let second = &stats.series()[1];
        assert!(second.errors.is_empty());
        assert_eq!(
            (second.sends, second.success_ratio, second.delay_p50_ms),
            (0, None, None)
        );
    }

    #[test]
    fn a_long_series_is_thinned_without_losing_errors() {
        let stats = Stats::default();
        for i in 0..(MAX_POINTS as u64 * 3) {
            if i % 7 == 0 {
                stats.record_error("node_unreachable");
            }
            stats.sample(i * 10_000);
        }
        let series = stats.series();
        assert!(series.len() <= MAX_POINTS);
        let errors: u64 = series
            .iter()
            .map(|s| s.errors.get("node_unreachable").copied().unwrap_or(0))
            .sum();
        assert_eq!(errors, (MAX_POINTS as u64 * 3).div_ceil(7));
        assert!(series.windows(2).all(|w| w[0].time_ms < w[1].time_ms));
    }
}
