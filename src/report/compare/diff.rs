//! What changed between two runs: relative and percentage-point deltas, the check and threshold
//! verdicts of both runs side by side, and KV operations per 1,000 requests by operation and prefix.

use std::collections::BTreeMap;

use super::Side;
use super::gates::Change;
use crate::mockkv::Op;
use crate::report::human;
use crate::report::model::Summary;

/// Names in BEFORE's order, then names only AFTER has.
pub(super) fn request_names(a: &Side, b: &Side) -> Vec<String> {
    let mut names: Vec<String> = a.summary.requests.iter().map(|r| r.name.clone()).collect();
    for r in &b.summary.requests {
        if !names.contains(&r.name) {
            names.push(r.name.clone());
        }
    }
    names
}

/// Whether `after` stays within `change` of `before`. For metrics where less is worse
/// (`lower_is_worse`), the change is a (negative) allowed fall.
pub(super) fn within(before: f64, after: f64, change: Change, lower_is_worse: bool) -> bool {
    // Tolerance for float noise in derived numbers (per-1,000 rates, ratios).
    let eps = 1e-9 * before.abs().max(1.0);
    if lower_is_worse {
        let floor = match change {
            Change::Relative(f) => before * (1.0 + f),
            Change::Absolute(d) => before + d,
        };
        after >= floor - eps
    } else {
        let ceiling = match change {
            Change::Relative(f) => before * (1.0 + f),
            Change::Absolute(d) => before + d,
        };
        after <= ceiling + eps
    }
}

/// `+33.3%`, `−12.0%`, `±0`, or `new` (from zero).
pub(super) fn rel(before: f64, after: f64) -> String {
    if (after - before).abs() < 1e-12 {
        return "±0".to_owned();
    }
    if before == 0.0 {
        return "new".to_owned();
    }
    let r = (after - before) / before * 100.0;
    if r >= 0.0 {
        format!("+{r:.1}%")
    } else {
        format!("−{:.1}%", -r)
    }
}

/// Percentage-point change of two ratios: `+1.25 pp`.
pub(super) fn pp(before: f64, after: f64) -> String {
    let d = (after - before) * 100.0;
    if d.abs() < 0.005 {
        "±0 pp".to_owned()
    } else if d > 0.0 {
        format!("+{d:.2} pp")
    } else {
        format!("−{:.2} pp", -d)
    }
}

/// The change as text: relative for a relative gate, absolute and relative for an absolute one.
pub(super) fn change_text(before: f64, after: f64, change: Change) -> String {
    match change {
        Change::Relative(_) => rel(before, after),
        Change::Absolute(_) => {
            let d = after - before;
            let r = rel(before, after);
            if d.abs() < 1e-12 {
                r
            } else {
                format!("{}{:.1}, {r}", if d > 0.0 { "+" } else { "−" }, d.abs())
            }
        }
    }
}

/// A per-1,000-requests figure with one decimal.
pub(super) fn per1000(v: f64) -> String {
    format!("{v:.1}")
}

/// A verdict of a check or threshold in both runs.
#[derive(Debug, Clone, PartialEq)]
pub struct VerdictChange {
    /// `check` or `threshold`.
    pub kind: &'static str,
    /// Check name, or `scope: expression` (with its window: `… during heal`).
    pub name: String,
    /// `PASS`, `FAIL`, `UNKNOWN`; `None` when the run did not have it.
    pub before: Option<&'static str>,
    /// Same for AFTER.
    pub after: Option<&'static str>,
}

/// Every check and threshold of either run with its verdicts, BEFORE's order first.
pub fn verdict_changes(before: &Side, after: &Side) -> Vec<VerdictChange> {
    let list = |s: &Summary| -> Vec<(&'static str, String, &'static str)> {
        let mut v: Vec<(&'static str, String, &'static str)> = s
            .checks
            .iter()
            .map(|c| ("check", c.name.clone(), human::verdict_word(c.verdict)))
            .collect();
        v.extend(s.thresholds.iter().map(|t| {
            (
                "threshold",
                format!("{}: {}", t.scope, t.label()),
                if t.passed { "PASS" } else { "FAIL" },
            )
        }));
        v
    };
    let (a, b) = (list(&before.summary), list(&after.summary));
    let mut out: Vec<VerdictChange> = a
        .iter()
        .map(|(kind, name, v)| VerdictChange {
            kind,
            name: name.clone(),
            before: Some(v),
            after: b
                .iter()
                .find(|(k, n, _)| k == kind && n == name)
                .map(|(_, _, v)| *v),
        })
        .collect();
    for (kind, name, v) in &b {
        if !a.iter().any(|(k, n, _)| k == kind && n == name) {
            out.push(VerdictChange {
                kind,
                name: name.clone(),
                before: None,
                after: Some(v),
            });
        }
    }
    out
}

/// One row of the KV table: an operation and prefix (`None`: all prefixes), per 1,000 requests.
#[derive(Debug, Clone, PartialEq)]
pub struct KvRow {
    /// The operation.
    pub op: Op,
    /// The key prefix; `None` for the operation's total.
    pub prefix: Option<String>,
    /// BEFORE, per 1,000 requests (`None` without a mock KV).
    pub before: Option<f64>,
    /// AFTER, per 1,000 requests.
    pub after: Option<f64>,
}

/// KV operations per 1,000 requests: each operation's total, then its prefixes, busiest first.
pub fn kv_rows(before: &Side, after: &Side) -> Vec<KvRow> {
    let mut rows = Vec::new();
    for op in Op::ALL {
        let mut prefixes: BTreeMap<String, f64> = BTreeMap::new();
        for side in [before, after] {
            if let Some(kv) = &side.kv {
                for r in kv.counts.iter().filter(|r| r.op == op) {
                    *prefixes.entry(r.prefix.clone()).or_default() += r.count as f64;
                }
            }
        }
        if prefixes.is_empty() {
            continue;
        }
        rows.push(KvRow {
            op,
            prefix: None,
            before: before.kv_per_1000(Some(op), None),
            after: after.kv_per_1000(Some(op), None),
        });
        let mut list: Vec<(String, f64)> = prefixes.into_iter().collect();
        list.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        for (p, _) in list {
            rows.push(KvRow {
                op,
                before: before.kv_per_1000(Some(op), Some(&p)),
                after: after.kv_per_1000(Some(op), Some(&p)),
                prefix: Some(p),
            });
        }
    }
    rows
}
