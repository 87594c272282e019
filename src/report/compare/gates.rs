//! `--fail-if` gates: the grammar (see the `compare` module documentation) parsed into a
//! typed [`Gate`], and judging one gate against two [`Side`]s.

use super::diff::{change_text, per1000, pp, request_names, verdict_changes, within};
use super::{CompareError, GateResult, Side};
use crate::mockkv::Op;
use crate::report::human;
use crate::report::model::Percentiles;

/// A `--fail-if` value that does not parse; the message names it and shows the fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("--fail-if \"{gate}\": {problem}")]
pub struct GateError {
    /// The gate as written.
    pub gate: String,
    /// What is wrong and how to write it.
    pub problem: String,
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

/// How much worse AFTER may be than BEFORE.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum Change {
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
    let (name, scope) = split_scope(head).map_err(err)?;
    let metric = parse_metric(name).map_err(err)?;
    let scope = parse_scope(metric, scope).map_err(err)?;
    let change = parse_change(metric, name, change).map_err(err)?;
    Ok(Gate {
        text: text.trim().to_owned(),
        metric,
        scope,
        change,
    })
}

/// `p99[checkout]` → (`p99`, `Some("checkout")`); `p99` → (`p99`, `None`).
fn split_scope(head: &str) -> Result<(&str, Option<&str>), String> {
    match head.split_once('[') {
        Some((name, rest)) => {
            let Some(inner) = rest.strip_suffix(']') else {
                return Err(format!(
                    "unclosed scope in \"{head}\": write e.g. p99[checkout] +20%"
                ));
            };
            Ok((name, Some(inner)))
        }
        None => Ok((head, None)),
    }
}

fn parse_metric(name: &str) -> Result<Metric, String> {
    Ok(match name {
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
        other => return Err(format!("unknown metric \"{other}\": use one of {METRICS}")),
    })
}

fn parse_scope(metric: Metric, scope: Option<&str>) -> Result<Scope, String> {
    Ok(match (metric, scope) {
        (_, None) | (Metric::Latency(_) | Metric::ErrorRate | Metric::Rps, Some("all")) => {
            Scope::All
        }
        (Metric::Kv(_), Some(p)) => Scope::Prefix(p.to_owned()),
        (_, Some("*")) => Scope::Every,
        (_, Some("")) => {
            return Err(
                "empty scope \"[]\": name a request, e.g. p99[checkout], or leave the brackets out for all requests"
                    .to_owned(),
            );
        }
        (_, Some(r)) => Scope::Request(r.to_owned()),
    })
}

/// The allowed change (`+20%`, `+50ms`, `+1pp`, `-10%`) for `metric`, written as `name`.
fn parse_change(metric: Metric, name: &str, change: &str) -> Result<Change, String> {
    let (sign, body) = match change.chars().next() {
        Some('+') => (1.0, &change[1..]),
        Some('-') => (-1.0, &change[1..]),
        _ => {
            return Err(format!(
                "the change \"{change}\" needs a sign: + for a rise, - for a fall, e.g. {}",
                example(metric)
            ));
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
            format!(
                "\"{change}\" is not a number with a unit, e.g. {}",
                example(metric)
            )
        })?;
    let wrong_sign = match metric {
        Metric::Rps => sign > 0.0,
        _ => sign < 0.0,
    };
    if wrong_sign {
        return Err(format!(
            "\"{change}\": for {name} a regression is a {}, so write e.g. {}",
            if matches!(metric, Metric::Rps) {
                "fall"
            } else {
                "rise"
            },
            example(metric)
        ));
    }
    change_in_unit(metric, name, change, (sign, n), (num, unit))
}

/// The change in the metric's unit, from its sign and number `n`, and the number and unit as
/// written.
fn change_in_unit(
    metric: Metric,
    name: &str,
    change: &str,
    (sign, n): (f64, f64),
    (num, unit): (&str, &str),
) -> Result<Change, String> {
    Ok(match (metric, unit) {
        (Metric::ErrorRate, "%") => {
            return Err(format!(
                "\"{change}\" is ambiguous for error_rate: write +{num}pp for percentage points \
                 (0.5% → 1.5% is +1pp)"
            ));
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
            return Err(format!(
                "unit \"{unit}\" does not fit {name}: write e.g. {}",
                example(metric)
            ));
        }
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

impl Gate {
    /// Judges this gate: whether AFTER stayed within it everywhere it applies, with one detail
    /// line per place judged. Errors when the gate names a request one run does not have.
    pub(super) fn judge(&self, before: &Side, after: &Side) -> Result<GateResult, CompareError> {
        let mut detail = Vec::new();
        let passed = match self.metric {
            Metric::Verdicts => judge_verdicts(before, after, &mut detail),
            Metric::Kv(op) => self.judge_kv(op, before, after, &mut detail),
            Metric::Latency(_) | Metric::ErrorRate | Metric::Rps => {
                let mut passed = true;
                for name in self.request_scope(before, after)? {
                    passed &= self.judge_request(&name, before, after, &mut detail);
                }
                passed
            }
        };
        Ok(GateResult {
            gate: self.text.clone(),
            passed,
            detail,
        })
    }

    fn judge_kv(
        &self,
        op: Option<Op>,
        before: &Side,
        after: &Side,
        detail: &mut Vec<String>,
    ) -> bool {
        let prefix = match &self.scope {
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
                detail.push(format!(
                    "{what}: {} → {} ({})",
                    per1000(a),
                    per1000(b),
                    change_text(a, b, self.change)
                ));
                within(a, b, self.change, false)
            }
            (a, _) => {
                let missing = if a.is_none() { "BEFORE" } else { "AFTER" };
                detail.push(format!(
                    "{what}: {missing} has no mockkv.json or no completed requests, so the gate cannot be judged"
                ));
                false
            }
        }
    }

    /// The request names a request-level gate is judged on, `all` included where it applies.
    fn request_scope(&self, before: &Side, after: &Side) -> Result<Vec<String>, CompareError> {
        Ok(match &self.scope {
            Scope::All | Scope::Prefix(_) => vec!["all".to_owned()],
            Scope::Request(r) => {
                for (side, s) in [("BEFORE", before), ("AFTER", after)] {
                    if s.request(r).is_none() {
                        return Err(CompareError::UnknownRequest {
                            gate: self.text.clone(),
                            request: r.clone(),
                            side,
                            known: s.request_list(),
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
        })
    }

    /// Judges a latency, error-rate or throughput gate on one request; `true` when within it
    /// (or not judged for lack of data).
    fn judge_request(
        &self,
        name: &str,
        before: &Side,
        after: &Side,
        detail: &mut Vec<String>,
    ) -> bool {
        let (Some(a), Some(b)) = (before.request(name), after.request(name)) else {
            return true;
        };
        let (va, vb, text_a, text_b) = match self.metric {
            Metric::Latency(l) => {
                if a.corrected.count == 0 || b.corrected.count == 0 {
                    detail.push(format!("{name}: no latency data in one run; not judged"));
                    return true;
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
        let ok = within(va, vb, self.change, matches!(self.metric, Metric::Rps));
        let delta = if matches!(self.metric, Metric::ErrorRate) {
            pp(va, vb)
        } else {
            change_text(va, vb, self.change)
        };
        detail.push(format!(
            "{name}: {} {text_a} → {text_b} ({delta}){}",
            metric_name(self.metric),
            if ok { "" } else { " — over the limit" }
        ));
        ok
    }
}

/// The `verdicts` gate: fails when a check or threshold that passed before does not pass after.
fn judge_verdicts(before: &Side, after: &Side, detail: &mut Vec<String>) -> bool {
    let mut passed = true;
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
    passed
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
