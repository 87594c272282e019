//! Table cells shared by the Markdown and HTML comparisons: `before → after (change)` for a
//! request's latency, error rate, count and throughput, and KV per-1,000 numbers.

use super::diff::{per1000, pp, rel};
use crate::report::human;
use crate::report::model::{Percentiles, RequestStats, Summary};

/// A KV row's prefix as shown: `(all prefixes)`, `(no prefix)` or the prefix.
pub(super) fn prefix_text(p: &Option<String>) -> String {
    match p.as_deref() {
        None => "(all prefixes)".to_owned(),
        Some("") => "(no prefix)".to_owned(),
        Some(p) => p.to_owned(),
    }
}

/// A per-1,000 figure, or `—` when the run has none.
pub(super) fn opt_num(v: Option<f64>) -> String {
    v.map_or_else(|| "—".to_owned(), per1000)
}

/// The relative change of two per-1,000 figures, or `—`.
pub(super) fn opt_rel(a: Option<f64>, b: Option<f64>) -> String {
    match (a, b) {
        (Some(a), Some(b)) => rel(a, b),
        _ => "—".to_owned(),
    }
}

/// One cell `before → after (change)` for a latency.
pub(super) fn lat_cell(
    a: Option<&RequestStats>,
    b: Option<&RequestStats>,
    f: fn(&Percentiles) -> u64,
) -> String {
    let v = |r: Option<&RequestStats>| r.filter(|r| r.corrected.count > 0).map(|r| f(&r.corrected));
    match (v(a), v(b)) {
        (Some(x), Some(y)) => format!(
            "{} → {} ({})",
            human::latency_us(x),
            human::latency_us(y),
            rel(x as f64, y as f64)
        ),
        (x, y) => format!(
            "{} → {}",
            x.map_or("—".to_owned(), human::latency_us),
            y.map_or("—".to_owned(), human::latency_us)
        ),
    }
}

/// One cell `before → after (change)` for the error rate.
pub(super) fn rate_cell(a: Option<&RequestStats>, b: Option<&RequestStats>) -> String {
    match (a, b) {
        (Some(x), Some(y)) => format!(
            "{} → {} ({})",
            human::percent(x.error_rate),
            human::percent(y.error_rate),
            pp(x.error_rate, y.error_rate)
        ),
        (x, y) => format!(
            "{} → {}",
            x.map_or("—".to_owned(), |r| human::percent(r.error_rate)),
            y.map_or("—".to_owned(), |r| human::percent(r.error_rate))
        ),
    }
}

/// One cell `before → after` for completed requests.
pub(super) fn count_cell(a: Option<&RequestStats>, b: Option<&RequestStats>) -> String {
    let c = |r: Option<&RequestStats>| r.map_or("—".to_owned(), |r| human::count(r.completed));
    format!("{} → {}", c(a), c(b))
}

/// One cell `before → after` for throughput.
pub(super) fn rps_cell(a: Option<&RequestStats>, b: Option<&RequestStats>) -> String {
    let c = |r: Option<&RequestStats>| r.map_or("—".to_owned(), |r| human::rps(r.rps));
    format!("{} → {}", c(a), c(b))
}

/// A run's verdict word, or `no thresholds`.
pub(super) fn run_verdict(s: &Summary) -> &'static str {
    human::verdict(s).word.unwrap_or("no thresholds")
}
