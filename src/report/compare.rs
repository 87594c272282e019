//! `kvchaos compare BEFORE AFTER`: two runs side by side, typically the Worker before and after
//! its control plane moved out of KV. Per request: corrected latency percentiles, error rate and
//! throughput with their changes; every check and threshold verdict that changed; KV operations
//! per 1,000 requests by operation and key prefix (from each run's `mockkv.json`); and
//! regression gates (`--fail-if`) that make the command fail.
//!
//! Gate grammar, one gate per `--fail-if`:
//!
//! ```text
//! GATE   = METRIC [ "[" SCOPE "]" ] " " CHANGE  |  "verdicts"
//! METRIC = p50 | p90 | p95 | p99 | p99.9 | max | mean     corrected latency
//!        | error_rate | rps
//!        | kv_ops | kv_gets | kv_puts | kv_deletes | kv_lists   per 1,000 requests
//! SCOPE  = a request name, "all" (the default) or "*" (every request and all);
//!          for kv_* metrics a key prefix such as "queue:" (default: every prefix together)
//! CHANGE = "+" N "%"            relative rise allowed (latency, error_rate is refused, kv_*)
//!        | "+" N ("us"|"ms"|"s") absolute rise allowed (latency)
//!        | "+" N "pp"           percentage points (error_rate)
//!        | "+" N                absolute rise allowed (kv_*: operations per 1,000 requests)
//!        | "-" N ["%"]          fall allowed (rps only: less throughput is worse)
//! ```
//!
//! A gate fails when AFTER is worse than BEFORE by more than the change allows:
//! `p99 +20%` fails when the p99 of all requests rose by more than 20 %; `kv_puts +0` fails
//! when the Worker writes KV more often per request than before; `verdicts` fails when a check
//! or threshold that passed before does not pass after.
//!
//! Pure functions over two [`Side`]s, apart from [`Side::load`]; printing is the CLI's job.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use super::ReportError;
use super::human;
use super::junit::xml;
use super::model::{Percentiles, RequestStats, Summary};
use super::svg::{self, Axis, Plot};
use crate::mockkv::Op;
use crate::mockkv::stats::Snapshot;

/// Why a comparison could not be made (exit code 2).
#[derive(Debug, thiserror::Error)]
pub enum CompareError {
    /// A summary could not be read.
    #[error("{0}")]
    Report(#[from] ReportError),
    /// A `mockkv.json` next to a summary could not be read.
    #[error("{0}: remove or fix it to compare without KV operations")]
    MockKv(String),
    /// A `--fail-if` gate does not parse.
    #[error("{0}")]
    Gate(#[from] GateError),
    /// A gate names a request that one of the runs does not have.
    #[error("--fail-if \"{gate}\": no request \"{request}\" in {side}: requests there are {known}")]
    UnknownRequest {
        /// The gate as written.
        gate: String,
        /// The request it names.
        request: String,
        /// `BEFORE` or `AFTER`.
        side: &'static str,
        /// The names that exist.
        known: String,
    },
}

/// A `--fail-if` value that does not parse; the message names it and shows the fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("--fail-if \"{gate}\": {problem}")]
pub struct GateError {
    /// The gate as written.
    pub gate: String,
    /// What is wrong and how to write it.
    pub problem: String,
}

/// One run: its summary and, for Worker targets, the mock KV's accounting.
#[derive(Debug, Clone)]
pub struct Side {
    /// The path as given.
    pub label: String,
    /// The run's summary.
    pub summary: Summary,
    /// `mockkv.json` from the same folder.
    pub kv: Option<Snapshot>,
}

impl Side {
    /// Reads a report folder or a `summary.json` (and the `mockkv.json` beside it).
    pub fn load(path: &Path) -> Result<Side, CompareError> {
        let file = super::json::summary_path(path)?;
        let summary = super::json::read_summary(&file)?;
        let dir = match file.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        let kv = super::data::read_mockkv(dir).map_err(CompareError::MockKv)?;
        Ok(Side {
            label: path.display().to_string(),
            summary,
            kv,
        })
    }

    fn request(&self, name: &str) -> Option<&RequestStats> {
        if name == "all" {
            Some(&self.summary.overall)
        } else {
            self.summary.requests.iter().find(|r| r.name == name)
        }
    }

    /// KV operations (any outcome) per 1,000 completed requests, for `op` (`None`: every op) and
    /// `prefix` (`None`: every prefix), summed over namespaces. `None` without a mock KV or
    /// without completed requests.
    pub fn kv_per_1000(&self, op: Option<Op>, prefix: Option<&str>) -> Option<f64> {
        let kv = self.kv.as_ref()?;
        let done = self.summary.overall.completed;
        if done == 0 {
            return None;
        }
        let n: u64 = kv
            .counts
            .iter()
            .filter(|r| op.is_none_or(|o| r.op == o))
            .filter(|r| prefix.is_none_or(|p| r.prefix == p))
            .map(|r| r.count)
            .sum();
        Some(n as f64 * 1000.0 / done as f64)
    }
}

/// A latency statistic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Lat {
    P50,
    P90,
    P95,
    P99,
    P999,
    Max,
    Mean,
}

impl Lat {
    fn of(self, p: &Percentiles) -> f64 {
        match self {
            Lat::P50 => p.p50_us as f64,
            Lat::P90 => p.p90_us as f64,
            Lat::P95 => p.p95_us as f64,
            Lat::P99 => p.p99_us as f64,
            Lat::P999 => p.p999_us as f64,
            Lat::Max => p.max_us as f64,
            Lat::Mean => p.mean_us,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Metric {
    Latency(Lat),
    ErrorRate,
    Rps,
    /// `None`: every operation.
    Kv(Option<Op>),
    Verdicts,
}

#[derive(Debug, Clone, PartialEq)]
enum Scope {
    All,
    Every,
    Request(String),
    Prefix(String),
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Change {
    /// Allowed relative change as a fraction (+0.2 for `+20%`, -0.1 for `-10%`).
    Relative(f64),
    /// Allowed absolute change in the metric's unit (µs, ratio, req/s, ops per 1,000).
    Absolute(f64),
}

/// A parsed `--fail-if` gate.
#[derive(Debug, Clone, PartialEq)]
pub struct Gate {
    text: String,
    metric: Metric,
    scope: Scope,
    change: Change,
}

impl std::str::FromStr for Gate {
    type Err = GateError;

    fn from_str(s: &str) -> Result<Gate, GateError> {
        parse_gate(s)
    }
}

const METRICS: &str = "p50, p90, p95, p99, p99.9, max, mean, error_rate, rps, kv_ops, kv_gets, \
                       kv_puts, kv_deletes, kv_lists or verdicts";

/// Parses one `--fail-if` value (grammar in the module documentation).
pub fn parse_gate(text: &str) -> Result<Gate, GateError> {
    let err = |problem: String| GateError {
        gate: text.to_owned(),
        problem,
    };
    let words: Vec<&str> = text.split_whitespace().collect();
    if words == ["verdicts"] {
        return Ok(Gate {
            text: text.trim().to_owned(),
            metric: Metric::Verdicts,
            scope: Scope::All,
            change: Change::Absolute(0.0),
        });
    }
    let [head, change] = words.as_slice() else {
        return Err(err(
            "expected a metric and an allowed change separated by a space, e.g. \"p99 +20%\", \
             \"error_rate +1pp\", \"kv_puts +0\" or \"verdicts\""
                .to_owned(),
        ));
    };
    let (name, scope) = match head.split_once('[') {
        Some((name, rest)) => {
            let Some(inner) = rest.strip_suffix(']') else {
                return Err(err(format!(
                    "unclosed scope in \"{head}\": write e.g. p99[checkout] +20%"
                )));
            };
            (name, Some(inner))
        }
        None => (*head, None),
    };
    let metric = match name {
        "p50" => Metric::Latency(Lat::P50),
        "p90" => Metric::Latency(Lat::P90),
        "p95" => Metric::Latency(Lat::P95),
        "p99" => Metric::Latency(Lat::P99),
        "p99.9" | "p999" => Metric::Latency(Lat::P999),
        "max" => Metric::Latency(Lat::Max),
        "mean" => Metric::Latency(Lat::Mean),
        "error_rate" => Metric::ErrorRate,
        "rps" => Metric::Rps,
        "kv_ops" => Metric::Kv(None),
        "kv_gets" => Metric::Kv(Some(Op::Get)),
        "kv_puts" => Metric::Kv(Some(Op::Put)),
        "kv_deletes" => Metric::Kv(Some(Op::Delete)),
        "kv_lists" => Metric::Kv(Some(Op::List)),
        other => {
            return Err(err(format!(
                "unknown metric \"{other}\": use one of {METRICS}"
            )));
        }
    };
    let scope = match (metric, scope) {
        (_, None) | (Metric::Latency(_) | Metric::ErrorRate | Metric::Rps, Some("all")) => {
            Scope::All
        }
        (Metric::Kv(_), Some(p)) => Scope::Prefix(p.to_owned()),
        (_, Some("*")) => Scope::Every,
        (_, Some("")) => {
            return Err(err(
                "empty scope \"[]\": name a request, e.g. p99[checkout], or leave the brackets out for all requests"
                    .to_owned(),
            ));
        }
        (_, Some(r)) => Scope::Request(r.to_owned()),
    };
    let (sign, body) = match change.chars().next() {
        Some('+') => (1.0, &change[1..]),
        Some('-') => (-1.0, &change[1..]),
        _ => {
            return Err(err(format!(
                "the change \"{change}\" needs a sign: + for a rise, - for a fall, e.g. {}",
                example(metric)
            )));
        }
    };
    let split = body
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(body.len());
    let (num, unit) = body.split_at(split);
    let n: f64 = num
        .parse()
        .ok()
        .filter(|v: &f64| v.is_finite())
        .ok_or_else(|| {
            err(format!(
                "\"{change}\" is not a number with a unit, e.g. {}",
                example(metric)
            ))
        })?;
    let wrong_sign = match metric {
        Metric::Rps => sign > 0.0,
        _ => sign < 0.0,
    };
    if wrong_sign {
        return Err(err(format!(
            "\"{change}\": for {name} a regression is a {}, so write e.g. {}",
            if matches!(metric, Metric::Rps) {
                "fall"
            } else {
                "rise"
            },
            example(metric)
        )));
    }
    let change = match (metric, unit) {
        (Metric::ErrorRate, "%") => {
            return Err(err(format!(
                "\"{change}\" is ambiguous for error_rate: write +{num}pp for percentage points \
                 (0.5% → 1.5% is +1pp)"
            )));
        }
        (Metric::ErrorRate, "pp") => Change::Absolute(n / 100.0),
        (Metric::Latency(_) | Metric::Kv(_) | Metric::Rps, "%") => {
            Change::Relative(sign * n / 100.0)
        }
        (Metric::Latency(_), "us" | "µs") => Change::Absolute(n),
        (Metric::Latency(_), "ms") => Change::Absolute(n * 1_000.0),
        (Metric::Latency(_), "s") => Change::Absolute(n * 1_000_000.0),
        (Metric::Kv(_), "") => Change::Absolute(n),
        (Metric::Rps, "") => Change::Absolute(sign * n),
        _ => {
            return Err(err(format!(
                "unit \"{unit}\" does not fit {name}: write e.g. {}",
                example(metric)
            )));
        }
    };
    Ok(Gate {
        text: text.trim().to_owned(),
        metric,
        scope,
        change,
    })
}

fn example(m: Metric) -> &'static str {
    match m {
        Metric::Latency(_) => "p99 +20% or p99 +50ms",
        Metric::ErrorRate => "error_rate +1pp",
        Metric::Rps => "rps -10%",
        Metric::Kv(_) => "kv_puts +0 or kv_puts[queue:] +10%",
        Metric::Verdicts => "verdicts",
    }
}

/// The result of one gate.
#[derive(Debug, Clone, PartialEq)]
pub struct GateResult {
    /// The gate as written.
    pub gate: String,
    /// Whether AFTER stayed within it everywhere it applies.
    pub passed: bool,
    /// One line per place it was judged: `all: p99 1.20 ms → 1.60 ms (+33.3%)`.
    pub detail: Vec<String>,
}

/// Two runs compared.
#[derive(Debug, Clone)]
pub struct Comparison {
    /// The run before.
    pub before: Side,
    /// The run after.
    pub after: Side,
    /// Gate results, in the order given.
    pub gates: Vec<GateResult>,
}

impl Comparison {
    /// Whether every gate passed.
    pub fn passed(&self) -> bool {
        self.gates.iter().all(|g| g.passed)
    }
}

/// Compares two runs and judges `gates`.
pub fn compare(before: Side, after: Side, gates: &[Gate]) -> Result<Comparison, CompareError> {
    let mut results = Vec::new();
    for g in gates {
        results.push(judge(g, &before, &after)?);
    }
    Ok(Comparison {
        before,
        after,
        gates: results,
    })
}

/// Names in BEFORE's order, then names only AFTER has.
fn request_names(a: &Side, b: &Side) -> Vec<String> {
    let mut names: Vec<String> = a.summary.requests.iter().map(|r| r.name.clone()).collect();
    for r in &b.summary.requests {
        if !names.contains(&r.name) {
            names.push(r.name.clone());
        }
    }
    names
}

fn judge(g: &Gate, before: &Side, after: &Side) -> Result<GateResult, CompareError> {
    let mut detail = Vec::new();
    let mut passed = true;
    match g.metric {
        Metric::Verdicts => {
            for v in verdict_changes(before, after) {
                if v.before == Some("PASS") && v.after != Some("PASS") {
                    passed = false;
                    detail.push(format!(
                        "{} {}: PASS → {}",
                        v.kind,
                        v.name,
                        v.after.unwrap_or("absent")
                    ));
                }
            }
            if passed {
                detail.push("no check or threshold stopped passing".to_owned());
            }
        }
        Metric::Kv(op) => {
            let prefix = match &g.scope {
                Scope::Prefix(p) => Some(p.as_str()),
                _ => None,
            };
            let what = format!(
                "{} per 1,000 requests{}",
                op.map_or("KV operations", op_plural),
                prefix.map_or(String::new(), |p| format!(" under \"{p}\""))
            );
            match (
                before.kv_per_1000(op, prefix),
                after.kv_per_1000(op, prefix),
            ) {
                (Some(a), Some(b)) => {
                    let ok = within(a, b, g.change, false);
                    passed &= ok;
                    detail.push(format!(
                        "{what}: {} → {} ({})",
                        per1000(a),
                        per1000(b),
                        change_text(a, b, g.change)
                    ));
                }
                (a, _) => {
                    passed = false;
                    let missing = if a.is_none() { "BEFORE" } else { "AFTER" };
                    detail.push(format!(
                        "{what}: {missing} has no mockkv.json or no completed requests, so the gate cannot be judged"
                    ));
                }
            }
        }
        Metric::Latency(_) | Metric::ErrorRate | Metric::Rps => {
            let names: Vec<String> = match &g.scope {
                Scope::All | Scope::Prefix(_) => vec!["all".to_owned()],
                Scope::Request(r) => {
                    for (side, s) in [("BEFORE", before), ("AFTER", after)] {
                        if s.request(r).is_none() {
                            return Err(CompareError::UnknownRequest {
                                gate: g.text.clone(),
                                request: r.clone(),
                                side,
                                known: s
                                    .summary
                                    .requests
                                    .iter()
                                    .map(|r| format!("\"{}\"", r.name))
                                    .collect::<Vec<_>>()
                                    .join(", "),
                            });
                        }
                    }
                    vec![r.clone()]
                }
                Scope::Every => {
                    let mut n: Vec<String> = request_names(before, after)
                        .into_iter()
                        .filter(|n| before.request(n).is_some() && after.request(n).is_some())
                        .collect();
                    n.push("all".to_owned());
                    n
                }
            };
            for name in names {
                let (Some(a), Some(b)) = (before.request(&name), after.request(&name)) else {
                    continue;
                };
                let (va, vb, text_a, text_b) = match g.metric {
                    Metric::Latency(l) => {
                        if a.corrected.count == 0 || b.corrected.count == 0 {
                            detail.push(format!("{name}: no latency data in one run; not judged"));
                            continue;
                        }
                        let (va, vb) = (l.of(&a.corrected), l.of(&b.corrected));
                        (va, vb, human::latency_us_f(va), human::latency_us_f(vb))
                    }
                    Metric::ErrorRate => (
                        a.error_rate,
                        b.error_rate,
                        human::percent(a.error_rate),
                        human::percent(b.error_rate),
                    ),
                    _ => (a.rps, b.rps, human::rps(a.rps), human::rps(b.rps)),
                };
                let ok = within(va, vb, g.change, matches!(g.metric, Metric::Rps));
                passed &= ok;
                let delta = if matches!(g.metric, Metric::ErrorRate) {
                    pp(va, vb)
                } else {
                    change_text(va, vb, g.change)
                };
                detail.push(format!(
                    "{name}: {} {text_a} → {text_b} ({delta}){}",
                    metric_name(g.metric),
                    if ok { "" } else { " — over the limit" }
                ));
            }
        }
    }
    Ok(GateResult {
        gate: g.text.clone(),
        passed,
        detail,
    })
}

fn metric_name(m: Metric) -> &'static str {
    match m {
        Metric::Latency(Lat::P50) => "p50",
        Metric::Latency(Lat::P90) => "p90",
        Metric::Latency(Lat::P95) => "p95",
        Metric::Latency(Lat::P99) => "p99",
        Metric::Latency(Lat::P999) => "p99.9",
        Metric::Latency(Lat::Max) => "max",
        Metric::Latency(Lat::Mean) => "mean",
        Metric::ErrorRate => "error rate",
        Metric::Rps => "req/s",
        Metric::Kv(_) => "KV operations",
        Metric::Verdicts => "verdicts",
    }
}

fn op_plural(op: Op) -> &'static str {
    match op {
        Op::Get => "KV gets",
        Op::Put => "KV puts",
        Op::Delete => "KV deletes",
        Op::List => "KV lists",
    }
}

/// Whether `after` stays within `change` of `before`. For metrics where less is worse
/// (`lower_is_worse`), the change is a (negative) allowed fall.
fn within(before: f64, after: f64, change: Change, lower_is_worse: bool) -> bool {
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
fn rel(before: f64, after: f64) -> String {
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
fn pp(before: f64, after: f64) -> String {
    let d = (after - before) * 100.0;
    if d.abs() < 0.005 {
        "±0 pp".to_owned()
    } else if d > 0.0 {
        format!("+{d:.2} pp")
    } else {
        format!("−{:.2} pp", -d)
    }
}

fn change_text(before: f64, after: f64, change: Change) -> String {
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

fn per1000(v: f64) -> String {
    format!("{v:.1}")
}

/// A verdict of a check or threshold in both runs.
#[derive(Debug, Clone, PartialEq)]
pub struct VerdictChange {
    /// `check` or `threshold`.
    pub kind: &'static str,
    /// Check name, or `scope: expression`.
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
                format!("{}: {}", t.scope, t.expr),
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

fn prefix_text(p: &Option<String>) -> String {
    match p.as_deref() {
        None => "(all prefixes)".to_owned(),
        Some("") => "(no prefix)".to_owned(),
        Some(p) => p.to_owned(),
    }
}

fn opt_num(v: Option<f64>) -> String {
    v.map_or_else(|| "—".to_owned(), per1000)
}

fn opt_rel(a: Option<f64>, b: Option<f64>) -> String {
    match (a, b) {
        (Some(a), Some(b)) => rel(a, b),
        _ => "—".to_owned(),
    }
}

/// One cell `before → after (change)` for a latency.
fn lat_cell(
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

fn rate_cell(a: Option<&RequestStats>, b: Option<&RequestStats>) -> String {
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

fn count_cell(a: Option<&RequestStats>, b: Option<&RequestStats>) -> String {
    let c = |r: Option<&RequestStats>| r.map_or("—".to_owned(), |r| human::count(r.completed));
    format!("{} → {}", c(a), c(b))
}

fn rps_cell(a: Option<&RequestStats>, b: Option<&RequestStats>) -> String {
    let c = |r: Option<&RequestStats>| r.map_or("—".to_owned(), |r| human::rps(r.rps));
    format!("{} → {}", c(a), c(b))
}

fn run_verdict(s: &Summary) -> &'static str {
    human::verdict(s).word.unwrap_or("no thresholds")
}

/// Most key prefixes listed per operation in the Markdown comparison.
const MAX_MD_PREFIXES: usize = 8;

/// Escapes text for a Markdown table cell.
fn md(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if c.is_control() {
            out.push(' ');
            continue;
        }
        if matches!(
            c,
            '\\' | '`' | '*' | '_' | '[' | ']' | '<' | '>' | '|' | '~' | '&' | '#' | '!'
        ) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// The comparison as Markdown (the default output; fits a PR comment).
pub fn render_markdown(c: &Comparison) -> String {
    let (a, b) = (&c.before, &c.after);
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# kvchaos compare: {} → {}\n",
        md(&a.summary.scenario.name),
        md(&b.summary.scenario.name)
    );
    if !c.gates.is_empty() {
        let failed = c.gates.iter().filter(|g| !g.passed).count();
        if failed == 0 {
            let _ = writeln!(out, "**PASS** · all {} gates held\n", c.gates.len());
        } else {
            let _ = writeln!(
                out,
                "**FAIL** · {failed} of {} gates failed\n",
                c.gates.len()
            );
        }
    }
    let _ = writeln!(out, "| | before | after |\n|---|---|---|");
    let rows: [(&str, String, String); 6] = [
        ("report", md(&a.label), md(&b.label)),
        (
            "target",
            md(&a.summary.target.url),
            md(&b.summary.target.url),
        ),
        (
            "started",
            md(&a.summary.started_at),
            md(&b.summary.started_at),
        ),
        (
            "duration",
            human::run_secs(a.summary.duration_s),
            human::run_secs(b.summary.duration_s),
        ),
        (
            "seed",
            a.summary.scenario.seed.to_string(),
            b.summary.scenario.seed.to_string(),
        ),
        (
            "verdict",
            format!("**{}**", run_verdict(&a.summary)),
            format!("**{}**", run_verdict(&b.summary)),
        ),
    ];
    for (k, x, y) in rows {
        let _ = writeln!(out, "| {k} | {x} | {y} |");
    }
    out.push('\n');
    if !c.gates.is_empty() {
        let _ = writeln!(out, "## Gates\n\n| gate | result | detail |\n|---|---|---|");
        for g in &c.gates {
            let _ = writeln!(
                out,
                "| `{}` | {} | {} |",
                g.gate.replace('|', "\\|").replace('`', "'"),
                if g.passed { "pass" } else { "**FAIL**" },
                g.detail
                    .iter()
                    .map(|d| md(d))
                    .collect::<Vec<_>>()
                    .join("<br>")
            );
        }
        out.push('\n');
    }
    let _ = writeln!(
        out,
        "## Requests (corrected latency)\n\n| request | completed | req/s | p50 | p99 | max | error rate |\n|---|--:|--:|--:|--:|--:|--:|"
    );
    let mut names = request_names(a, b);
    names.push("all".to_owned());
    for n in &names {
        let (x, y) = (a.request(n), b.request(n));
        let label = if n == "all" {
            "**all**".to_owned()
        } else {
            md(n)
        };
        let _ = writeln!(
            out,
            "| {label} | {} | {} | {} | {} | {} | {} |",
            count_cell(x, y),
            rps_cell(x, y),
            lat_cell(x, y, |p| p.p50_us),
            lat_cell(x, y, |p| p.p99_us),
            lat_cell(x, y, |p| p.max_us),
            rate_cell(x, y)
        );
    }
    out.push('\n');
    let verdicts = verdict_changes(a, b);
    if !verdicts.is_empty() {
        let changed = verdicts.iter().filter(|v| v.before != v.after).count();
        let _ = writeln!(
            out,
            "## Checks and thresholds\n\n{changed} of {} verdicts changed.\n\n| kind | name | before | after |\n|---|---|---|---|",
            verdicts.len()
        );
        for v in &verdicts {
            let word = |w: Option<&str>| w.map_or("—".to_owned(), str::to_owned);
            let (x, y) = (word(v.before), word(v.after));
            let y = if v.before != v.after {
                format!("**{y}** (changed)")
            } else {
                y
            };
            let _ = writeln!(out, "| {} | {} | {x} | {y} |", v.kind, md(&v.name));
        }
        out.push('\n');
    }
    let _ = writeln!(out, "## KV operations per 1,000 requests\n");
    match (&a.kv, &b.kv) {
        (None, None) => {
            let _ = writeln!(
                out,
                "Neither run has a mockkv.json (they were not Worker targets).\n"
            );
        }
        _ => {
            for (side, s) in [("before", a), ("after", b)] {
                if s.kv.is_none() {
                    let _ = writeln!(out, "The {side} run has no mockkv.json.\n");
                }
            }
            let _ = writeln!(
                out,
                "Every outcome counts (a put refused by a fault was still attempted).\n\n| operation | key prefix | before | after | change |\n|---|---|--:|--:|--:|"
            );
            let rows = kv_rows(a, b);
            for (i, r) in rows.iter().enumerate() {
                // A PR comment stays short: the busiest prefixes of each operation, then a
                // count of the rest (the HTML page lists them all).
                let rank = rows[..i]
                    .iter()
                    .rev()
                    .take_while(|p| p.prefix.is_some())
                    .count();
                if r.prefix.is_some() && rank >= MAX_MD_PREFIXES {
                    let last_of_op = rows.get(i + 1).is_none_or(|n| n.prefix.is_none());
                    if last_of_op {
                        let _ = writeln!(
                            out,
                            "| {} | … {} more prefixes | | | |",
                            r.op.as_str(),
                            rank + 1 - MAX_MD_PREFIXES
                        );
                    }
                    continue;
                }
                let prefix = match &r.prefix {
                    None => "**all prefixes**".to_owned(),
                    Some(_) => format!("`{}`", prefix_text(&r.prefix).replace('`', "'")),
                };
                let _ = writeln!(
                    out,
                    "| {} | {prefix} | {} | {} | {} |",
                    r.op.as_str(),
                    opt_num(r.before),
                    opt_num(r.after),
                    opt_rel(r.before, r.after)
                );
            }
            out.push('\n');
        }
    }
    let trimmed = out.trim_end().len();
    out.truncate(trimmed);
    out.push('\n');
    out
}

/// The comparison as one self-contained HTML page (inline CSS and SVG, no scripts).
pub fn render_html(c: &Comparison) -> String {
    let (a, b) = (&c.before, &c.after);
    let mut out = String::new();
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"/><title>kvchaos compare: {} → {}</title>\
         <style>{}</style></head><body><main>\n<h1>kvchaos compare: {} → {}</h1>\n",
        xml(&a.summary.scenario.name),
        xml(&b.summary.scenario.name),
        super::html::CSS_TEXT,
        xml(&a.summary.scenario.name),
        xml(&b.summary.scenario.name)
    );
    let badge = |w: &str| format!("<span class=\"badge {w}\">{w}</span>");
    if !c.gates.is_empty() {
        let failed = c.gates.iter().filter(|g| !g.passed).count();
        let _ = writeln!(
            out,
            "<p class=\"headline\">{} {}</p>",
            badge(if failed == 0 { "PASS" } else { "FAIL" }),
            if failed == 0 {
                format!("all {} gates held", c.gates.len())
            } else {
                format!("{failed} of {} gates failed", c.gates.len())
            }
        );
    }
    out.push_str("<table><tr><th></th><th>before</th><th>after</th></tr>\n");
    for (k, x, y) in [
        ("report", a.label.clone(), b.label.clone()),
        (
            "target",
            a.summary.target.url.clone(),
            b.summary.target.url.clone(),
        ),
        (
            "started",
            a.summary.started_at.clone(),
            b.summary.started_at.clone(),
        ),
        (
            "duration",
            human::run_secs(a.summary.duration_s),
            human::run_secs(b.summary.duration_s),
        ),
        (
            "verdict",
            run_verdict(&a.summary).to_owned(),
            run_verdict(&b.summary).to_owned(),
        ),
    ] {
        let _ = writeln!(
            out,
            "<tr><th>{k}</th><td>{}</td><td>{}</td></tr>",
            xml(&x),
            xml(&y)
        );
    }
    out.push_str("</table>\n");
    if !c.gates.is_empty() {
        out.push_str("<h2 id=\"gates\">Gates</h2><table><tr><th>gate</th><th>result</th><th>detail</th></tr>\n");
        for g in &c.gates {
            let _ = writeln!(
                out,
                "<tr><td><code>{}</code></td><td>{}</td><td>{}</td></tr>",
                xml(&g.gate),
                badge(if g.passed { "PASS" } else { "FAIL" }),
                g.detail
                    .iter()
                    .map(|d| xml(d))
                    .collect::<Vec<_>>()
                    .join("<br/>")
            );
        }
        out.push_str("</table>\n");
    }
    let mut names = request_names(a, b);
    names.push("all".to_owned());
    out.push_str("<h2 id=\"requests\">Requests (corrected latency)</h2><table><tr><th>request</th><th class=\"n\">completed</th>\
        <th class=\"n\">req/s</th><th class=\"n\">p50</th><th class=\"n\">p99</th><th class=\"n\">max</th><th class=\"n\">error rate</th></tr>\n");
    for n in &names {
        let (x, y) = (a.request(n), b.request(n));
        let _ = writeln!(
            out,
            "<tr><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td></tr>",
            if n == "all" {
                "<b>all</b>".to_owned()
            } else {
                xml(n)
            },
            xml(&count_cell(x, y)),
            xml(&rps_cell(x, y)),
            xml(&lat_cell(x, y, |p| p.p50_us)),
            xml(&lat_cell(x, y, |p| p.p99_us)),
            xml(&lat_cell(x, y, |p| p.max_us)),
            xml(&rate_cell(x, y))
        );
    }
    out.push_str("</table>\n");
    out.push_str(&grouped_bars(
        "p99-chart",
        "p99 latency, before and after (log scale)",
        &names
            .iter()
            .map(|n| {
                let v = |s: &Side| {
                    s.request(n)
                        .filter(|r| r.corrected.count > 0)
                        .map(|r| r.corrected.p99_us as f64)
                };
                (n.clone(), v(a), v(b))
            })
            .collect::<Vec<_>>(),
        true,
    ));
    let verdicts = verdict_changes(a, b);
    if !verdicts.is_empty() {
        out.push_str("<h2 id=\"verdicts\">Checks and thresholds</h2><table><tr><th>kind</th><th>name</th><th>before</th><th>after</th></tr>\n");
        for v in &verdicts {
            let cell = |w: Option<&str>| w.map_or("—".to_owned(), badge);
            let _ = writeln!(
                out,
                "<tr><td>{}</td><td>{}{}</td><td>{}</td><td>{}</td></tr>",
                v.kind,
                xml(&v.name),
                if v.before != v.after {
                    " <b>(changed)</b>"
                } else {
                    ""
                },
                cell(v.before),
                cell(v.after)
            );
        }
        out.push_str("</table>\n");
    }
    out.push_str("<h2 id=\"kv\">KV operations per 1,000 requests</h2>\n");
    let rows = kv_rows(a, b);
    if rows.is_empty() {
        out.push_str("<p class=\"note\">Neither run has KV operations (mockkv.json is written for Worker targets).</p>\n");
    } else {
        out.push_str("<table><tr><th>operation</th><th>key prefix</th><th class=\"n\">before</th><th class=\"n\">after</th><th class=\"n\">change</th></tr>\n");
        for r in &rows {
            let bold = r.prefix.is_none();
            let _ = writeln!(
                out,
                "<tr><td>{}</td><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td></tr>",
                r.op.as_str(),
                if bold {
                    "<b>all prefixes</b>".to_owned()
                } else {
                    format!("<code>{}</code>", xml(&prefix_text(&r.prefix)))
                },
                opt_num(r.before),
                opt_num(r.after),
                opt_rel(r.before, r.after)
            );
        }
        out.push_str("</table>\n");
        let totals: Vec<(String, Option<f64>, Option<f64>)> = rows
            .iter()
            .filter(|r| r.prefix.is_none())
            .map(|r| (r.op.as_str().to_owned(), r.before, r.after))
            .collect();
        out.push_str(&grouped_bars(
            "kv-chart",
            "KV operations per 1,000 requests, before and after",
            &totals,
            false,
        ));
    }
    out.push_str("<footer>Written by kvchaos compare.</footer></main></body></html>\n");
    out
}

/// Bars for BEFORE and AFTER side by side per category.
fn grouped_bars(
    id: &str,
    title: &str,
    cats: &[(String, Option<f64>, Option<f64>)],
    log: bool,
) -> String {
    let vals: Vec<f64> = cats
        .iter()
        .flat_map(|(_, a, b)| [*a, *b])
        .flatten()
        .filter(|v| *v > 0.0)
        .collect();
    if vals.is_empty() {
        return String::new();
    }
    let hi = vals.iter().copied().fold(0.0, f64::max);
    let lo = vals.iter().copied().fold(f64::INFINITY, f64::min);
    let y = if log {
        Axis::log(lo, hi)
    } else {
        Axis::linear_to(hi * 1.05)
    };
    let n = cats.len() as f64;
    let ticks: Vec<(f64, String)> = cats
        .iter()
        .enumerate()
        .map(|(i, (name, _, _))| (i as f64 + 0.5, name.clone()))
        .collect();
    let mut p = Plot::new(id, 1120.0, 240.0, Axis::linear(0.0, n), y)
        .formats(
            svg::fmt_num,
            if log { svg::fmt_latency } else { svg::fmt_num },
        )
        .x_ticks(ticks);
    for (i, (name, a, b)) in cats.iter().enumerate() {
        let x = i as f64;
        let fmt = |v: f64| {
            if log {
                human::latency_us_f(v)
            } else {
                format!("{v:.1}")
            }
        };
        if let Some(v) = a.filter(|v| *v > 0.0) {
            p.bar(
                x + 0.15,
                x + 0.5,
                v,
                "#8a8f98",
                &format!("{name} before: {}", fmt(v)),
            );
        }
        if let Some(v) = b.filter(|v| *v > 0.0) {
            p.bar(
                x + 0.5,
                x + 0.85,
                v,
                "#2f6db5",
                &format!("{name} after: {}", fmt(v)),
            );
        }
    }
    p.legend("before", "#8a8f98");
    p.legend("after", "#2f6db5");
    format!(
        "<figure><figcaption>{}</figcaption>{}</figure>\n",
        xml(title),
        p.finish(false)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::model::fixture;
    use serde_json::json;

    fn snapshot(puts: &[(&str, u64)]) -> Snapshot {
        let counts: Vec<serde_json::Value> = puts
            .iter()
            .map(|(p, n)| json!({"namespace": "KV", "op": "put", "prefix": p, "outcome": "ok", "count": n}))
            .chain([json!({"namespace": "KV", "op": "get", "prefix": "cache:", "outcome": "ok", "count": 5000})])
            .collect();
        serde_json::from_value(json!({
            "now_ms": 0, "counts": counts, "writes": [], "quota": [], "faults": [], "journal": []
        }))
        .expect("snapshot")
    }

    /// BEFORE: the fixture with KV puts under `queue:` and `cron:`. AFTER: faster, fewer errors,
    /// no queue puts, and the cron check passing.
    pub(crate) fn pair() -> (Side, Side) {
        let before = Side {
            label: "before".to_owned(),
            summary: fixture(),
            kv: Some(snapshot(&[("queue:", 2_258), ("cron:", 70)])),
        };
        let mut s = fixture();
        s.requests[1].corrected.p99_us = 921_599; // acquire_lock p99 halves
        s.requests[1].error_rate = 0.005;
        s.overall.corrected.p99_us = 820_837; // +20.0% exactly
        s.overall.error_rate = 236.0 / 11_289.0 + 0.0125;
        s.checks[0].verdict = crate::check::Verdict::Pass;
        s.thresholds[0].passed = false;
        let after = Side {
            label: "after".to_owned(),
            summary: s,
            kv: Some(snapshot(&[("cron:", 70), ("idem:", 11)])),
        };
        (before, after)
    }

    fn gates(list: &[&str]) -> Vec<Gate> {
        list.iter()
            .map(|g| parse_gate(g).expect("gate parses"))
            .collect()
    }

    fn run(list: &[&str]) -> Comparison {
        let (a, b) = pair();
        compare(a, b, &gates(list)).expect("compares")
    }

    #[test]
    fn latency_gates_judge_relative_and_absolute_rises() {
        let c = run(&[
            "p99 +20%",
            "p99 +19%",
            "p99[acquire_lock] +0%",
            "p99 +137ms",
            "p99 +136ms",
        ]);
        let passed: Vec<bool> = c.gates.iter().map(|g| g.passed).collect();
        assert_eq!(passed, [true, false, true, true, false]);
        assert_eq!(c.gates[0].detail, ["all: p99 684.0 ms → 820.8 ms (+20.0%)"]);
        assert!(
            c.gates[1].detail[0].ends_with("— over the limit"),
            "{:?}",
            c.gates[1]
        );
    }

    #[test]
    fn every_request_scope_judges_each_request_and_all() {
        let c = run(&["p99[*] +0%"]);
        assert!(!c.gates[0].passed);
        assert_eq!(c.gates[0].detail.len(), 3);
        assert!(c.gates[0].detail[0].starts_with("get_config: p99 48.7 ms → 48.7 ms (±0)"));
    }

    #[test]
    fn error_rate_gates_use_percentage_points() {
        let c = run(&[
            "error_rate +1pp",
            "error_rate +1.5pp",
            "error_rate[acquire_lock] +0pp",
        ]);
        let passed: Vec<bool> = c.gates.iter().map(|g| g.passed).collect();
        assert_eq!(passed, [false, true, true]);
        assert!(
            c.gates[0].detail[0].contains("2.09% → 3.34% (+1.25 pp)"),
            "{:?}",
            c.gates[0]
        );
    }

    #[test]
    fn kv_gates_per_thousand_requests_and_prefix() {
        let c = run(&[
            "kv_puts +0",
            "kv_puts[idem:] +0",
            "kv_puts[cron:] +0",
            "kv_gets +0%",
        ]);
        let passed: Vec<bool> = c.gates.iter().map(|g| g.passed).collect();
        assert_eq!(passed, [true, false, true, true]);
        // 2,328 puts over 11,289 requests before; 81 after.
        assert_eq!(
            c.gates[0].detail,
            ["KV puts per 1,000 requests: 206.2 → 7.2 (−199.0, −96.5%)"]
        );
        assert_eq!(
            c.gates[1].detail,
            ["KV puts per 1,000 requests under \"idem:\": 0.0 → 1.0 (+1.0, new)"]
        );
    }

    #[test]
    fn verdicts_gate_fails_when_something_stops_passing() {
        let c = run(&["verdicts"]);
        assert!(!c.gates[0].passed);
        assert_eq!(
            c.gates[0].detail,
            ["threshold all: error_rate < 5%: PASS → FAIL"]
        );
        let changes = verdict_changes(&c.before, &c.after);
        assert_eq!(changes[0].before, Some("FAIL"));
        assert_eq!(changes[0].after, Some("PASS"));
    }

    #[test]
    fn rps_gate_is_a_fall() {
        let c = run(&["rps -10%", "rps -0"]);
        assert!(c.gates.iter().all(|g| g.passed));
    }

    #[test]
    fn bad_gates_name_the_value_and_the_fix() {
        let cases = [
            ("p99", "expected a metric and an allowed change"),
            ("p98 +20%", "unknown metric \"p98\": use one of p50"),
            ("p99 20%", "needs a sign: + for a rise"),
            (
                "p99 -20%",
                "for p99 a regression is a rise, so write e.g. p99 +20%",
            ),
            ("rps +10%", "for rps a regression is a fall"),
            ("error_rate +1%", "ambiguous for error_rate: write +1pp"),
            ("p99 +20pp", "unit \"pp\" does not fit p99"),
            ("kv_puts +x", "\"+x\" is not a number"),
            ("p99[checkout +20%", "unclosed scope"),
        ];
        for (gate, want) in cases {
            let e = parse_gate(gate).expect_err(gate).to_string();
            assert!(e.starts_with(&format!("--fail-if \"{gate}\": ")), "{e}");
            assert!(e.contains(want), "{gate}: {e}");
        }
        let (a, b) = pair();
        let e = compare(a, b, &gates(&["p99[nope] +1%"]))
            .expect_err("unknown request")
            .to_string();
        assert_eq!(
            e,
            "--fail-if \"p99[nope] +1%\": no request \"nope\" in BEFORE: requests there are \"get_config\", \"acquire_lock\""
        );
    }

    #[test]
    fn markdown_lists_the_busiest_prefixes_and_counts_the_rest() {
        let (mut a, b) = pair();
        let many: Vec<(String, u64)> = (0..12).map(|i| (format!("p{i:02}:"), 100 - i)).collect();
        let refs: Vec<(&str, u64)> = many.iter().map(|(p, n)| (p.as_str(), *n)).collect();
        a.kv = Some(snapshot(&refs));
        let md = render_markdown(&compare(a, b, &[]).expect("compares"));
        assert!(md.contains("| put | `p07:` |"), "{md}");
        assert!(!md.contains("`p08:`"), "{md}");
        // 12 prefixes before and 2 others after: 14 in all, 8 listed.
        assert!(md.contains("| put | … 6 more prefixes | | | |"), "{md}");
        assert!(md.contains("| get | `cache:` |"), "{md}");
    }

    #[test]
    fn markdown_snapshot() {
        let c = run(&["p99 +20%", "kv_puts +0", "verdicts"]);
        let started = md(&c.before.summary.started_at);
        insta::assert_snapshot!(render_markdown(&c).replace(&started, "[started_at]"));
    }

    #[test]
    fn html_parses_and_has_its_charts() {
        let c = run(&["p99 +20%"]);
        let page = render_html(&c);
        let ids = crate::report::html::tests::parse_ids(&page);
        for id in [
            "gates",
            "requests",
            "p99-chart",
            "verdicts",
            "kv",
            "kv-chart",
        ] {
            assert!(ids.iter().any(|i| i == id), "no #{id}");
        }
    }

    #[test]
    fn loads_folders_with_their_mock_kv() {
        let dir = tempfile::tempdir().expect("tempdir");
        crate::report::json::write_summary(dir.path(), &fixture()).expect("summary");
        let side = Side::load(dir.path()).expect("loads");
        assert!(side.kv.is_none());
        std::fs::write(
            dir.path().join("mockkv.json"),
            serde_json::to_string(&snapshot(&[("q:", 1)])).expect("json"),
        )
        .expect("written");
        let side = Side::load(&dir.path().join("summary.json")).expect("loads");
        assert!(
            side.kv_per_1000(Some(Op::Put), None)
                .is_some_and(|v| v > 0.0)
        );
        std::fs::write(dir.path().join("mockkv.json"), "[").expect("written");
        let e = Side::load(dir.path()).expect_err("bad mockkv").to_string();
        assert!(e.contains("mockkv.json: not a mock KV snapshot"), "{e}");
        assert!(
            e.ends_with("remove or fix it to compare without KV operations"),
            "{e}"
        );
    }
}
