//! Threshold evaluation over run totals, or over a window's totals for a threshold limited to
//! one (`during`).

use crate::metrics::Totals;
use crate::metrics::windows::WindowTotals;
use crate::scenario::plan::{LatencyKind, LatencyStat, Threshold, ThresholdMetric, ThresholdScope};
use crate::summary::ThresholdResult;

/// Evaluates every threshold. `per` is in scenario order with names matching the plan;
/// `duration_s` is the run time used for `rps`. A threshold with `during` is judged on its
/// window in `windows`; a window missing there, or without requests, has no data (a fail).
pub fn evaluate(
    thresholds: &[Threshold],
    per: &[Totals],
    all: &Totals,
    duration_s: f64,
    windows: &[WindowTotals],
) -> Vec<ThresholdResult> {
    thresholds
        .iter()
        .map(|t| {
            let data = match t.during {
                None => Some((per, all, duration_s)),
                Some(w) => windows
                    .iter()
                    .find(|x| x.window == w)
                    .map(|x| (&x.per[..], &x.all, x.duration_s)),
            };
            let scope = match &t.scope {
                ThresholdScope::All => "all".to_owned(),
                ThresholdScope::Request(name) => name.clone(),
            };
            let observed = data.and_then(|(per, all, duration_s)| {
                let totals = match &t.scope {
                    ThresholdScope::All => Some(all),
                    ThresholdScope::Request(name) => per.iter().find(|p| &p.name == name),
                };
                totals.and_then(|tot| observe(t.metric, tot, duration_s))
            });
            ThresholdResult {
                scope,
                expr: t.expr.clone(),
                observed,
                limit: t.limit,
                unit: unit(t.metric).to_owned(),
                // No data cannot prove a limit holds.
                passed: observed.is_some_and(|o| t.op.holds(o, t.limit)),
                abort: t.abort,
                during: t.during.map(|w| w.name().to_owned()),
            }
        })
        .collect()
}

impl ThresholdResult {
    /// The expression with its window, as reports show it: `p99 < 50ms during heal`.
    pub fn label(&self) -> String {
        match &self.during {
            Some(w) => format!("{} during {w}", self.expr),
            None => self.expr.clone(),
        }
    }
}

/// The first failing abort threshold, if any, judged on the totals so far.
pub fn first_abort(
    thresholds: &[Threshold],
    per: &[Totals],
    all: &Totals,
    duration_s: f64,
    windows: &[WindowTotals],
) -> Option<ThresholdResult> {
    let aborts: Vec<Threshold> = thresholds.iter().filter(|t| t.abort).cloned().collect();
    evaluate(&aborts, per, all, duration_s, windows)
        .into_iter()
        // Before any data there is nothing to abort on.
        .find(|r| r.observed.is_some() && !r.passed)
}

fn unit(m: ThresholdMetric) -> &'static str {
    match m {
        ThresholdMetric::Latency { .. } => "us",
        ThresholdMetric::ErrorRate | ThresholdMetric::DroppedRate => "ratio",
        ThresholdMetric::Rps => "rps",
    }
}

/// The observed value, or `None` when there is no data to judge by.
fn observe(metric: ThresholdMetric, t: &Totals, duration_s: f64) -> Option<f64> {
    match metric {
        ThresholdMetric::Latency { kind, stat } => {
            let h = match kind {
                LatencyKind::Corrected => &t.corrected,
                LatencyKind::Service => &t.service,
            };
            if h.is_empty() {
                return None;
            }
            Some(match stat {
                LatencyStat::Percentile(p) => h.value_at_percentile(p) as f64,
                LatencyStat::Mean => h.mean(),
                LatencyStat::Max => h.max() as f64,
                LatencyStat::Min => h.min() as f64,
            })
        }
        ThresholdMetric::ErrorRate => (t.completed() > 0).then(|| t.error_rate()),
        ThresholdMetric::DroppedRate => (t.completed() + t.dropped > 0).then(|| t.dropped_rate()),
        ThresholdMetric::Rps => (duration_s > 0.0).then(|| t.completed() as f64 / duration_s),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::Recorder;
    use crate::outcome::Outcome;
    use crate::scenario::plan::CmpOp;

    fn th(scope: ThresholdScope, metric: ThresholdMetric, op: CmpOp, limit: f64) -> Threshold {
        Threshold {
            scope,
            metric,
            op,
            limit,
            expr: "x".into(),
            abort: false,
            during: None,
        }
    }

    #[test]
    fn latency_rate_and_missing_data() {
        let mut rec = Recorder::new(vec!["a".into(), "b".into()], 1, None).expect("recorder");
        {
            let h = rec.shard(0);
            let mut s = h.lock();
            for i in 1..=1000u64 {
                s.record(0, Outcome::Status(200), i * 100, i * 50, 0, None);
            }
            for _ in 0..10 {
                s.record(0, Outcome::Status(500), 100, 50, 0, None);
            }
        }
        rec.tick(1.0, 1.0, 0);
        let (per, all, _) = rec.finish();
        let p99 = ThresholdMetric::Latency {
            kind: LatencyKind::Corrected,
            stat: LatencyStat::Percentile(99.0),
        };
        let svc_max = ThresholdMetric::Latency {
            kind: LatencyKind::Service,
            stat: LatencyStat::Max,
        };
        let r = evaluate(
            &[
                th(ThresholdScope::All, p99, CmpOp::Lt, 100_000.0),
                th(ThresholdScope::All, p99, CmpOp::Lt, 50_000.0),
                th(
                    ThresholdScope::Request("a".into()),
                    ThresholdMetric::ErrorRate,
                    CmpOp::Lt,
                    0.01,
                ),
                th(
                    ThresholdScope::Request("a".into()),
                    ThresholdMetric::ErrorRate,
                    CmpOp::Lt,
                    0.005,
                ),
                th(ThresholdScope::Request("b".into()), svc_max, CmpOp::Lt, 1.0),
                th(ThresholdScope::All, ThresholdMetric::Rps, CmpOp::Ge, 500.0),
            ],
            &per,
            &all,
            2.0,
            &[],
        );
        let passed: Vec<bool> = r.iter().map(|x| x.passed).collect();
        assert_eq!(passed, [true, false, true, false, false, true]);
        // 10 errors of 1010.
        assert!((r[2].observed.unwrap_or(-1.0) - 10.0 / 1010.0).abs() < 1e-12);
        // "b" never completed a request: no observation, and that fails.
        assert_eq!(r[4].observed, None);
        assert_eq!(r[5].observed, Some(505.0));
        assert_eq!(r[0].unit, "us");
    }
}
