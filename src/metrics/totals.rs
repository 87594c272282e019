//! Totals of a request name (or all) for reports and thresholds, and the compact live figures
//! the dashboard gets per request. Built by the recorder from its cells.

use hdrhistogram::Histogram;

use super::new_histogram;
use crate::outcome::Class;
use crate::summary::{Percentiles, RequestStats};

/// Totals of one request name (or all), for reports and thresholds.
pub struct Totals {
    /// Request name or `all`.
    pub name: String,
    /// Corrected latency over all outcomes.
    pub corrected: Histogram<u64>,
    /// Service time over all outcomes.
    pub service: Histogram<u64>,
    /// Completed requests per class (index as [`Class::index`]).
    pub by_class: [u64; Class::COUNT],
    /// Body bytes.
    pub bytes: u64,
    /// Dropped requests.
    pub dropped: u64,
}

impl Totals {
    pub(super) fn new(name: &str) -> Self {
        Totals {
            name: name.to_owned(),
            corrected: new_histogram(),
            service: new_histogram(),
            by_class: [0; Class::COUNT],
            bytes: 0,
            dropped: 0,
        }
    }

    /// Completed requests.
    pub fn completed(&self) -> u64 {
        self.by_class.iter().sum()
    }

    /// Completed requests that were errors.
    pub fn errors(&self) -> u64 {
        errors_of(&self.by_class)
    }

    /// Errors over completed (0 when nothing completed).
    pub fn error_rate(&self) -> f64 {
        ratio(self.errors(), self.completed())
    }

    /// Dropped over scheduled (completed + dropped).
    pub fn dropped_rate(&self) -> f64 {
        ratio(self.dropped, self.completed() + self.dropped)
    }

    pub(super) fn add(&mut self, other: &Totals) {
        let _ = self.corrected.add(&other.corrected);
        let _ = self.service.add(&other.service);
        for (a, b) in self.by_class.iter_mut().zip(other.by_class) {
            *a += b;
        }
        self.bytes += other.bytes;
        self.dropped += other.dropped;
    }

    /// Report form; `duration_s` is the run time used for the rate.
    pub fn stats(&self, method: &str, path: &str, duration_s: f64) -> RequestStats {
        let completed = self.completed();
        RequestStats {
            name: self.name.clone(),
            method: method.to_owned(),
            path: path.to_owned(),
            completed,
            dropped: self.dropped,
            by_class: Class::ALL
                .iter()
                .zip(self.by_class)
                .filter(|(_, n)| *n > 0)
                .map(|(c, n)| (c.name().to_owned(), n))
                .collect(),
            errors: self.errors(),
            error_rate: self.error_rate(),
            rps: if duration_s > 0.0 {
                completed as f64 / duration_s
            } else {
                0.0
            },
            bytes_received: self.bytes,
            corrected: percentiles(&self.corrected),
            service: percentiles(&self.service),
        }
    }
}

/// Errors in per-class counts.
fn errors_of(by_class: &[u64; Class::COUNT]) -> u64 {
    Class::ALL
        .iter()
        .zip(by_class)
        .filter(|(c, _)| c.is_error())
        .map(|(_, n)| n)
        .sum()
}

fn ratio(n: u64, d: u64) -> f64 {
    if d == 0 { 0.0 } else { n as f64 / d as f64 }
}

/// Report percentiles of a histogram (all zero when empty).
pub fn percentiles(h: &Histogram<u64>) -> Percentiles {
    if h.is_empty() {
        return Percentiles::default();
    }
    Percentiles {
        count: h.len(),
        min_us: h.min(),
        mean_us: (h.mean() * 10.0).round() / 10.0,
        p50_us: h.value_at_quantile(0.50),
        p90_us: h.value_at_quantile(0.90),
        p95_us: h.value_at_quantile(0.95),
        p99_us: h.value_at_quantile(0.99),
        p999_us: h.value_at_quantile(0.999),
        max_us: h.max(),
    }
}

/// Upper bounds (µs) of the latency buckets shown live: 1-2-5 steps from 10 µs to 50 s, then
/// the histogram's 60 s ceiling.
pub const LIVE_BUCKETS_US: [u64; 20] = [
    10, 20, 50, 100, 200, 500, 1_000, 2_000, 5_000, 10_000, 20_000, 50_000, 100_000, 200_000,
    500_000, 1_000_000, 2_000_000, 5_000_000, 10_000_000, 60_000_000,
];

/// One request's live figures: the last interval, and the run so far as compact summaries (the
/// dashboard gets these copies, never a histogram).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RequestLive {
    /// Request name.
    pub name: String,
    /// Completed per second in the last interval.
    pub rps: f64,
    /// Median corrected latency of the last interval, µs.
    pub p50_us: u64,
    /// 99th percentile corrected latency of the last interval, µs.
    pub p99_us: u64,
    /// Completed since the start, per outcome class (index as [`Class::index`]).
    pub by_class: [u64; Class::COUNT],
    /// Dropped since the start.
    pub dropped: u64,
    /// Corrected latency since the start.
    pub corrected: Percentiles,
    /// Service time since the start.
    pub service: Percentiles,
    /// Corrected latency since the start, counted into [`LIVE_BUCKETS_US`] (same index).
    pub buckets: Vec<u64>,
}

impl RequestLive {
    /// Completed since the start.
    pub fn completed(&self) -> u64 {
        self.by_class.iter().sum()
    }

    /// Errors since the start.
    pub fn errors(&self) -> u64 {
        errors_of(&self.by_class)
    }
}
