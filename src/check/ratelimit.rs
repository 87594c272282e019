//! The rate limiter check: admissions per key per window against the declared limit, and the
//! policy the limiter followed while KV faults were active.
//!
//! Operation format (written by [`crate::driver::ratelimit`]): processes `rl-<key>-<n>`, f
//! `hit`: invoke `{key}`; `ok` `{key, admitted}` — `admitted: false` (with `http`) for a
//! status the scenario calls refused (429 by default); `fail` (another 4xx) / `info` (5xx,
//! timeout: neither admitted nor refused as far as anyone can prove).
//!
//! Anomalies:
//! - `over-admitted`: more than `limit + tolerance` acknowledged admissions of one key whose
//!   whole operations (invoke to completion) fit in less than one window, minus a clock slack
//!   of [`CLOCK_SLACK`] on each side: whatever the Worker's clock read, it admitted them in
//!   one window. Not counted inside a fault window when the scenario declares
//!   `on_fault = "open"` (admitting everything is then the intended policy). A fixed-window
//!   limiter may admit up to twice its limit across a window boundary: give it
//!   `tolerance = limit`;
//! - `wrong-fault-policy`: during a fault window the limiter followed another policy than
//!   the declared `on_fault`.
//!
//! The observed policy of each fault window (ops entirely inside it):
//! - `fail-open`: more than `limit + tolerance` admissions of one key in one window — it
//!   admits past its limit (refusals before its current window rolled over do not change
//!   that);
//! - `fail-closed`: refusals, no admission, and refusals more than one window after the
//!   fault began (when a holding limiter would have admitted again) — it refuses everything;
//! - `held`: both admissions and refusals, and no key over its limit — it still enforces it;
//! - otherwise undetermined (too few answers, or only errors).
//!
//! `held` satisfies `on_fault = "open"` and `"closed"` alike (the fault did not reach the
//! limiter, or it kept working); `on_fault = "held"` accepts only `held`.
//!
//! UNKNOWN, without an anomaly, unless the history holds the evidence a PASS rests on: an
//! admission, and a refusal outside fault windows (otherwise the limit was never reached, and
//! a limiter that admits everything would look the same); with `on_fault` declared in a run
//! with faults, at least one fault window whose policy could be observed (a run without
//! faults says `on_fault` was not exercised, as the lock check asks for a faulted attempt only
//! in a run with faults).

use std::collections::BTreeMap;
use std::time::Duration;

use crate::history::OpKind;

use super::{CheckResult, Findings, HistoryView, Operation, Window, secs};

/// How far the Worker's clock may be from the harness's when placing an admission in time.
pub const CLOCK_SLACK: Duration = Duration::from_millis(25);

/// The policy a limiter should follow when its storage fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnFault {
    /// Admit everything.
    Open,
    /// Refuse everything.
    Closed,
    /// Keep enforcing the limit.
    Held,
}

/// A policy observed in one fault window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Observed {
    /// Admitted everything, above the limit.
    FailOpen,
    /// Refused everything.
    FailClosed,
    /// Admitted some, refused some.
    Held,
}

impl Observed {
    /// Its name in reports.
    pub fn name(self) -> &'static str {
        match self {
            Observed::FailOpen => "fail-open",
            Observed::FailClosed => "fail-closed",
            Observed::Held => "held",
        }
    }

    fn allowed_by(self, declared: OnFault) -> bool {
        matches!(
            (self, declared),
            (Observed::Held, _)
                | (Observed::FailOpen, OnFault::Open)
                | (Observed::FailClosed, OnFault::Closed)
        )
    }
}

/// The declared limiter.
#[derive(Debug, Clone, PartialEq)]
pub struct RateLimitConfig {
    /// Admissions per key per window.
    pub limit: u64,
    /// The window.
    pub window: Duration,
    /// Admissions above the limit still accepted.
    pub tolerance: u64,
    /// The intended policy under faults, when declared.
    pub on_fault: Option<OnFault>,
}

/// The most admissions of one key provably inside one window, and where.
struct Burst {
    n: u64,
    from: Duration,
    to: Duration,
}

/// Judges the rate limiter operations of `view`.
pub fn check(view: &HistoryView, cfg: &RateLimitConfig) -> CheckResult {
    let hits: Vec<&Operation> = view.ops_of("rl", "hit").collect();
    let mut f = Findings::default();
    let mut admitted: BTreeMap<&str, Vec<&Operation>> = BTreeMap::new();
    let mut refused_outside = 0u64;
    for op in &hits {
        let key = op.str_field("key").unwrap_or("");
        match (op.outcome(), admission(op)) {
            (OpKind::Ok, Some(true)) => {
                f.add("admitted", 1);
                admitted.entry(key).or_default().push(op);
            }
            (OpKind::Ok, Some(false)) => {
                f.add("refused", 1);
                if !view.faulted(op.t, op.done_t().unwrap_or(view.end)) {
                    refused_outside += 1;
                }
            }
            (OpKind::Fail, _) => f.add("failed", 1),
            _ => f.add("errors", 1),
        }
    }
    f.set("hits", hits.len() as u64);
    f.set("limit", cfg.limit);
    f.set("window_ms", cfg.window.as_millis() as u64);
    let mut max = 0;
    for (key, ops) in &admitted {
        for b in bursts(ops, cfg.window) {
            max = max.max(b.n);
            if b.n <= cfg.limit + cfg.tolerance {
                continue;
            }
            let in_fault = view.faulted(b.from, b.to);
            if in_fault && cfg.on_fault == Some(OnFault::Open) {
                f.add("over_limit_during_faults", 1);
                continue;
            }
            f.anomaly(
                "over-admitted",
                format!(
                    "key {key:?}: {} admitted between {} and {} (under one window of {}; limit {}, tolerance {}){}",
                    b.n,
                    secs(b.from),
                    secs(b.to),
                    humantime::format_duration(cfg.window),
                    cfg.limit,
                    cfg.tolerance,
                    if in_fault { ", during a fault" } else { "" }
                ),
            );
        }
    }
    f.set("max_admitted_per_window", max);
    let observed = policies(view, &hits, cfg, &mut f);
    let unknown = if f.count("admitted") == 0 {
        Some("nothing was admitted: the limiter was never seen working".to_owned())
    } else if refused_outside == 0 {
        Some(format!(
            "no refusal outside faults: the limit of {} per {} was never reached (raise [ratelimit] rate)",
            cfg.limit,
            humantime::format_duration(cfg.window)
        ))
    } else if cfg.on_fault.is_some() && !view.fault_windows.is_empty() && observed == 0 {
        Some("on_fault is declared but no fault window showed the limiter's policy (no faults, or too few answers during them)".to_owned())
    } else {
        None
    };
    let pass = format!(
        "at most {max} admitted per {} per key (limit {}), {} refusals{}",
        humantime::format_duration(cfg.window),
        cfg.limit,
        f.count("refused"),
        match (observed, cfg.on_fault) {
            (0, Some(_)) => "; on_fault not exercised (the run had no faults)",
            (0, None) => "",
            _ => "; fault policy as declared",
        }
    );
    f.finish("ratelimit", unknown, pass)
}

/// `Some(true)` admitted, `Some(false)` refused, `None` neither.
fn admission(op: &Operation) -> Option<bool> {
    op.result().get("admitted").and_then(|v| v.as_bool())
}

/// For each admission (by invocation time) as the earliest, the admissions that provably
/// fall inside one window with it; the first burst over each run of overlapping ones.
fn bursts(ops: &[&Operation], window: Duration) -> Vec<Burst> {
    let mut sorted: Vec<(Duration, Duration)> = ops
        .iter()
        .filter_map(|o| o.done_t().map(|d| (o.t, d)))
        .collect();
    sorted.sort();
    let reach = window.saturating_sub(CLOCK_SLACK * 2);
    let mut out: Vec<Burst> = Vec::new();
    for (i, (start, _)) in sorted.iter().enumerate() {
        let end = *start + reach;
        let mut n = 0;
        let mut last = *start;
        for (t, d) in &sorted[i..] {
            if *t >= end {
                break;
            }
            if *d < end {
                n += 1;
                last = last.max(*d);
            }
        }
        // Keep one burst per overlapping run: the largest.
        match out.last_mut() {
            Some(b) if *start <= b.to => {
                if n > b.n {
                    *b = Burst {
                        n,
                        from: *start,
                        to: last,
                    };
                }
            }
            _ => out.push(Burst {
                n,
                from: *start,
                to: last,
            }),
        }
    }
    out
}

/// Observes the policy of each fault window, notes it, and checks it against the declared
/// one; returns how many windows showed a policy.
fn policies(
    view: &HistoryView,
    hits: &[&Operation],
    cfg: &RateLimitConfig,
    f: &mut Findings,
) -> u64 {
    let mut shown = 0;
    for w in &view.fault_windows {
        let inside: Vec<&Operation> = hits
            .iter()
            .copied()
            .filter(|o| o.t >= w.from && o.done_t().is_some_and(|d| d <= w.to))
            .collect();
        let Some(p) = observe(&inside, w, cfg) else {
            f.note(format!(
                "fault window {}–{}: policy not observed ({} answers inside)",
                secs(w.from),
                secs(w.to),
                inside.len()
            ));
            continue;
        };
        shown += 1;
        f.add(&format!("policy_{}", p.name().replace('-', "_")), 1);
        let line = format!(
            "fault window {}–{}: {} ({} admitted, {} refused)",
            secs(w.from),
            secs(w.to),
            p.name(),
            inside
                .iter()
                .filter(|o| o.is_ok() && admission(o) == Some(true))
                .count(),
            inside
                .iter()
                .filter(|o| o.is_ok() && admission(o) == Some(false))
                .count(),
        );
        match cfg.on_fault {
            Some(d) if !p.allowed_by(d) => f.anomaly(
                "wrong-fault-policy",
                format!("{line}, but on_fault = {:?}", declared_name(d)),
            ),
            _ => f.note(line),
        }
    }
    shown
}

fn declared_name(d: OnFault) -> &'static str {
    match d {
        OnFault::Open => "open",
        OnFault::Closed => "closed",
        OnFault::Held => "held",
    }
}

/// The policy the answers inside fault window `w` show.
fn observe(inside: &[&Operation], w: &Window, cfg: &RateLimitConfig) -> Option<Observed> {
    let admitted: Vec<&Operation> = inside
        .iter()
        .copied()
        .filter(|o| o.is_ok() && admission(o) == Some(true))
        .collect();
    let refused: Vec<&Operation> = inside
        .iter()
        .copied()
        .filter(|o| o.is_ok() && admission(o) == Some(false))
        .collect();
    // Over the limit inside the fault is failing open, whatever was refused around it (a
    // fixed-window limiter still refuses until its current window rolls over).
    let mut by_key: BTreeMap<&str, Vec<&Operation>> = BTreeMap::new();
    for o in &admitted {
        by_key
            .entry(o.str_field("key").unwrap_or(""))
            .or_default()
            .push(o);
    }
    let over = by_key.values().any(|ops| {
        bursts(ops, cfg.window)
            .iter()
            .any(|b| b.n > cfg.limit + cfg.tolerance)
    });
    match (admitted.is_empty(), refused.is_empty()) {
        _ if over => Some(Observed::FailOpen),
        (false, false) => Some(Observed::Held),
        (false, true) => None,
        (true, false) => {
            let late = w.from + cfg.window + CLOCK_SLACK * 2;
            refused
                .iter()
                .any(|o| o.t > late)
                .then_some(Observed::FailClosed)
        }
        (true, true) => None,
    }
}

#[cfg(test)]
mod tests;
