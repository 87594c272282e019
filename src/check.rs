//! Checks: pure judges of a run's history, in the manner of Jepsen. Each checker takes a
//! [`HistoryView`] (operations paired invoke → completion, fault windows, the healed window)
//! and returns a [`CheckResult`]. Checkers do no I/O and know nothing of how the history was
//! produced; [`wiring`] picks and configures them from a run's plan ([`judge`]).
//!
//! Conventions every checker keeps:
//! - an `info` completion (indeterminate) is never a violation by itself: it counts as "may
//!   have happened" wherever that is the conservative reading;
//! - a violation is reported only when the observed order of events proves it, so that clock
//!   skew or slow answers cannot create false alarms;
//! - `Fail` beats `Unknown` beats `Pass`: a proven anomaly stands even in a run that never
//!   healed.
//!
//! Times: `t` fields are run time (since the start of the run, the harness's clock); values
//! named `*_ms`, `*_at`, `*_until` are the Worker's clock in ms since the Unix epoch.

pub mod cron;
pub mod idempotency;
pub mod lock;
pub mod queue;
pub mod ratelimit;
pub mod wiring;

pub use wiring::{WORKER_CLOCK_TOLERANCE_MS, judge};

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use serde_json::Value;

use crate::history::{Event, OpKind};

// The verdict types are part of the summary model (a leaf); checkers produce them.
pub use crate::summary::{CheckResult, MAX_EVIDENCE, Verdict};

/// The completion of an operation.
#[derive(Debug, Clone, PartialEq)]
pub struct Completion {
    /// `Ok`, `Fail` or `Info`.
    pub kind: OpKind,
    /// Run time of the completion.
    pub t: Duration,
    /// Its value.
    pub value: Value,
}

/// One operation: its invocation and, unless the history ended first, its completion.
#[derive(Debug, Clone, PartialEq)]
pub struct Operation {
    /// Who performed it, e.g. `lock-3`.
    pub process: String,
    /// What, e.g. `acquire`.
    pub f: String,
    /// Run time of the invocation.
    pub t: Duration,
    /// The invocation's value (arguments).
    pub value: Value,
    /// The completion, `None` when the history ended with the operation outstanding (which
    /// reads like `info`: it may or may not have taken effect).
    pub completion: Option<Completion>,
}

impl Operation {
    /// The completion kind, `Info` when there was none.
    pub fn outcome(&self) -> OpKind {
        self.completion.as_ref().map_or(OpKind::Info, |c| c.kind)
    }

    /// Whether it completed `ok`.
    pub fn is_ok(&self) -> bool {
        self.outcome() == OpKind::Ok
    }

    /// Whether it may have taken effect: not a definite `fail`.
    pub fn may_have_happened(&self) -> bool {
        self.outcome() != OpKind::Fail
    }

    /// The completion's value, `Null` when there was none.
    pub fn result(&self) -> &Value {
        self.completion.as_ref().map_or(&Value::Null, |c| &c.value)
    }

    /// Run time of the completion; `None` when outstanding at the end.
    pub fn done_t(&self) -> Option<Duration> {
        self.completion.as_ref().map(|c| c.t)
    }

    /// A field of the completion value, falling back to the invocation value.
    pub fn field(&self, name: &str) -> Option<&Value> {
        self.result()
            .get(name)
            .filter(|v| !v.is_null())
            .or_else(|| self.value.get(name).filter(|v| !v.is_null()))
    }

    /// A string field (completion first, then invocation).
    pub fn str_field(&self, name: &str) -> Option<&str> {
        self.field(name).and_then(Value::as_str)
    }

    /// An integer field (completion first, then invocation).
    pub fn u64_field(&self, name: &str) -> Option<u64> {
        self.field(name).and_then(Value::as_u64)
    }

    /// One line naming it for evidence: `12.345s lock-1 acquire {..} -> ok {..}`.
    pub fn describe(&self) -> String {
        let end = match &self.completion {
            Some(c) => format!(
                "{} at {}: {}",
                kind_name(c.kind),
                secs(c.t),
                compact(&c.value)
            ),
            None => "no completion".to_owned(),
        };
        format!(
            "{} {} {} {} -> {end}",
            secs(self.t),
            self.process,
            self.f,
            compact(&self.value)
        )
    }
}

fn kind_name(k: OpKind) -> &'static str {
    match k {
        OpKind::Invoke => "invoke",
        OpKind::Ok => "ok",
        OpKind::Fail => "fail",
        OpKind::Info => "info",
    }
}

/// A run time as seconds with ms, e.g. `12.345s`.
pub fn secs(t: Duration) -> String {
    format!("{}.{:03}s", t.as_secs(), t.subsec_millis())
}

fn compact(v: &Value) -> String {
    let s = v.to_string();
    if s.len() > 160 {
        let cut = (0..=160)
            .rev()
            .find(|i| s.is_char_boundary(*i))
            .unwrap_or(0);
        format!("{}…", &s[..cut])
    } else {
        s
    }
}

/// A span of run time during which at least one fault was active.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    /// When the first of its faults was set.
    pub from: Duration,
    /// When the last of its faults was cleared, or the end of the history if `open`.
    pub to: Duration,
    /// Never cleared.
    pub open: bool,
}

/// A history read for checking: operations paired per process, fault windows merged.
#[derive(Debug, Clone, Default)]
pub struct HistoryView {
    /// Every operation, in order of invocation.
    pub ops: Vec<Operation>,
    /// Disjoint spans with at least one fault active, in time order.
    pub fault_windows: Vec<Window>,
    /// Start of the healed window: after the last fault was cleared, or `ZERO` when there
    /// were no faults; `None` when a fault was still active at the end.
    pub healed_from: Option<Duration>,
    /// When the run's heal phase started (producers stopped, every fault cleared), if it had
    /// one.
    pub heal_started: Option<Duration>,
    /// Run time of the last event.
    pub end: Duration,
    /// Completions without an invocation, and invocations superseded by another from the
    /// same process before completing: the history is malformed there.
    pub unpaired: u64,
}

impl HistoryView {
    /// Pairs each `invoke` with the next completion of the same process (a process has at
    /// most one outstanding operation) and merges fault set / cleared into windows.
    pub fn new(events: &[(Duration, Event)]) -> HistoryView {
        let mut view = HistoryView::default();
        let mut outstanding: HashMap<&str, usize> = HashMap::new();
        let mut active: std::collections::BTreeSet<usize> = Default::default();
        let mut open_from = None;
        for (t, event) in events {
            view.end = view.end.max(*t);
            match event {
                Event::Op {
                    process,
                    op: OpKind::Invoke,
                    f,
                    value,
                } => {
                    if outstanding.insert(process, view.ops.len()).is_some() {
                        view.unpaired += 1;
                    }
                    view.ops.push(Operation {
                        process: process.clone(),
                        f: f.clone(),
                        t: *t,
                        value: value.clone(),
                        completion: None,
                    });
                }
                Event::Op {
                    process,
                    op,
                    f,
                    value,
                } => match outstanding.remove(process.as_str()) {
                    Some(i) if view.ops[i].f == *f => {
                        view.ops[i].completion = Some(Completion {
                            kind: *op,
                            t: *t,
                            value: value.clone(),
                        });
                    }
                    _ => view.unpaired += 1,
                },
                Event::HealStarted => view.heal_started = Some(*t),
                Event::FaultSet { index, .. } => {
                    if active.is_empty() {
                        open_from = Some(*t);
                    }
                    active.insert(*index);
                }
                Event::FaultCleared { index, .. } => {
                    let closes = active.remove(index) && active.is_empty();
                    if let Some(from) = open_from.filter(|_| closes) {
                        open_from = None;
                        view.fault_windows.push(Window {
                            from,
                            to: *t,
                            open: false,
                        });
                    }
                }
                _ => {}
            }
        }
        if let Some(from) = open_from {
            view.fault_windows.push(Window {
                from,
                to: view.end,
                open: true,
            });
        }
        view.healed_from = match view.fault_windows.last() {
            None => Some(Duration::ZERO),
            Some(w) if w.open => None,
            Some(w) => Some(w.to),
        };
        view
    }

    /// Whether any fault was active at some moment of `[from, to]`.
    pub fn faulted(&self, from: Duration, to: Duration) -> bool {
        self.fault_windows
            .iter()
            .any(|w| w.from <= to && from <= w.to)
    }

    /// Whether `t` lies in the healed window.
    pub fn healed(&self, t: Duration) -> bool {
        self.healed_from.is_some_and(|h| t >= h)
    }

    /// Operations of processes named `prefix` or `prefix-*`, with function `f`.
    pub fn ops_of<'a>(
        &'a self,
        prefix: &'a str,
        f: &'a str,
    ) -> impl Iterator<Item = &'a Operation> + 'a {
        self.ops.iter().filter(move |o| {
            o.f == f
                && (o.process == prefix
                    || o.process
                        .strip_prefix(prefix)
                        .is_some_and(|r| r.starts_with('-')))
        })
    }
}

/// Maps run time to the Worker's clock, when the run knows it (the run clock of a local
/// Worker: `start_ms + t × speedup`). Only used with a tolerance for skew.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WorkerClock {
    /// Worker ms since the Unix epoch at run time zero.
    pub start_ms: u64,
    /// Worker seconds per run second.
    pub speedup: f64,
    /// How far the Worker's clock may be from the mapping, in ms.
    pub tolerance_ms: u64,
}

impl WorkerClock {
    /// The earliest the Worker's clock can read at run time `t`.
    pub fn earliest_ms(&self, t: Duration) -> u64 {
        ((self.start_ms as f64 + t.as_secs_f64() * 1000.0 * self.speedup) as u64)
            .saturating_sub(self.tolerance_ms)
    }

    /// The latest the Worker's clock can read at run time `t`.
    pub fn latest_ms(&self, t: Duration) -> u64 {
        (self.start_ms as f64 + t.as_secs_f64() * 1000.0 * self.speedup) as u64 + self.tolerance_ms
    }
}

/// Accumulates a checker's anomalies, evidence and counts into a [`CheckResult`].
#[derive(Debug, Default)]
pub(crate) struct Findings {
    anomalies: BTreeMap<&'static str, u64>,
    /// Evidence of anomalies, which comes first.
    evidence: Vec<String>,
    /// Other evidence (e.g. `recovered`).
    notes: Vec<String>,
    left_out: u64,
    counts: BTreeMap<String, u64>,
}

impl Findings {
    /// A proven anomaly named `name`, with one line of evidence.
    pub(crate) fn anomaly(&mut self, name: &'static str, evidence: String) {
        let first_of_its_kind = !self.anomalies.contains_key(name);
        *self.anomalies.entry(name).or_default() += 1;
        // Past the bound, the first line of each kind of anomaly is still kept (there are
        // only a handful of kinds), so every anomaly named in the reason has an example.
        if self.evidence.len() < MAX_EVIDENCE || first_of_its_kind {
            self.evidence.push(format!("{name}: {evidence}"));
        } else {
            self.left_out += 1;
        }
    }

    /// A line of evidence that is not an anomaly (e.g. `recovered`); anomalies' lines come
    /// first in the result.
    pub(crate) fn note(&mut self, evidence: String) {
        if self.notes.len() < MAX_EVIDENCE {
            self.notes.push(evidence);
        } else {
            self.left_out += 1;
        }
    }

    /// Adds `n` to count `name`.
    pub(crate) fn add(&mut self, name: &str, n: u64) {
        *self.counts.entry(name.to_owned()).or_default() += n;
    }

    /// Count `name` so far (0 when never set).
    pub(crate) fn count(&self, name: &str) -> u64 {
        self.counts.get(name).copied().unwrap_or(0)
    }

    /// Sets count `name`.
    pub(crate) fn set(&mut self, name: &str, n: u64) {
        self.counts.insert(name.to_owned(), n);
    }

    /// The result: `Fail` with any anomaly, else `Unknown` when `unknown` says why, else
    /// `Pass` with `pass`.
    pub(crate) fn finish(
        mut self,
        name: &str,
        unknown: Option<String>,
        pass: String,
    ) -> CheckResult {
        for (a, n) in &self.anomalies {
            self.counts.insert((*a).to_owned(), *n);
        }
        let room = MAX_EVIDENCE.saturating_sub(self.evidence.len());
        self.left_out += self.notes.len().saturating_sub(room) as u64;
        let notes = std::mem::take(&mut self.notes);
        self.evidence.extend(notes.into_iter().take(room));
        if self.left_out > 0 {
            self.evidence
                .push(format!("… and {} more lines left out", self.left_out));
        }
        let (verdict, reason) = if !self.anomalies.is_empty() {
            let list: Vec<String> = self
                .anomalies
                .iter()
                .map(|(a, n)| format!("{a} ×{n}"))
                .collect();
            (Verdict::Fail, list.join(", "))
        } else if let Some(why) = unknown {
            (Verdict::Unknown, why)
        } else {
            (Verdict::Pass, pass)
        };
        CheckResult {
            name: name.to_owned(),
            verdict,
            reason,
            evidence: self.evidence,
            counts: self.counts,
        }
    }
}

#[cfg(test)]
pub(crate) mod testing {
    //! Hand-written histories for the checkers' tests.
    use super::*;

    /// Builds a history with times in ms.
    #[derive(Default, Clone)]
    pub(crate) struct H {
        pub(crate) events: Vec<(Duration, Event)>,
    }

    impl H {
        pub(crate) fn op(mut self, ms: u64, process: &str, op: OpKind, f: &str, value: Value) -> H {
            self.events
                .push((Duration::from_millis(ms), Event::op(process, op, f, value)));
            self
        }

        pub(crate) fn fault(mut self, ms: u64, index: usize) -> H {
            self.events.push((
                Duration::from_millis(ms),
                Event::FaultSet {
                    index,
                    label: format!("fault {index}"),
                },
            ));
            self
        }

        pub(crate) fn clear(mut self, ms: u64, index: usize) -> H {
            self.events.push((
                Duration::from_millis(ms),
                Event::FaultCleared {
                    index,
                    label: format!("fault {index}"),
                    kv_ops: None,
                },
            ));
            self
        }

        pub(crate) fn heal(mut self, ms: u64) -> H {
            self.events
                .push((Duration::from_millis(ms), Event::HealStarted));
            self
        }

        pub(crate) fn view(mut self) -> HistoryView {
            self.events.sort_by_key(|(t, _)| *t);
            HistoryView::new(&self.events)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::testing::H;
    use super::*;
    use serde_json::json;

    #[test]
    fn invocations_pair_with_the_next_completion_of_their_process() {
        let v = H::default()
            .op(0, "lock-1", OpKind::Invoke, "acquire", json!({"lock": "a"}))
            .op(1, "lock-2", OpKind::Invoke, "acquire", json!({"lock": "a"}))
            .op(2, "lock-2", OpKind::Ok, "acquire", json!({"token": 1}))
            .op(3, "lock-1", OpKind::Info, "acquire", json!({}))
            .op(4, "lock-1", OpKind::Invoke, "release", json!({}))
            .op(5, "lock-3", OpKind::Ok, "release", json!({}))
            .view();
        assert_eq!(v.ops.len(), 3);
        assert_eq!(v.ops[0].outcome(), OpKind::Info);
        assert_eq!(v.ops[1].u64_field("token"), Some(1));
        assert_eq!(v.ops[1].str_field("lock"), Some("a"));
        assert!(v.ops[2].completion.is_none());
        assert_eq!(v.unpaired, 1);
        assert_eq!(v.ops_of("lock", "acquire").count(), 2);
        assert_eq!(v.ops_of("loc", "acquire").count(), 0);
    }

    #[test]
    fn overlapping_faults_merge_into_one_window_and_the_heal_follows_the_last_clear() {
        let v = H::default()
            .fault(10, 0)
            .fault(20, 1)
            .clear(30, 0)
            .clear(40, 1)
            .fault(50, 2)
            .clear(60, 2)
            .view();
        assert_eq!(v.fault_windows.len(), 2);
        assert_eq!(v.fault_windows[0].to, Duration::from_millis(40));
        assert_eq!(v.healed_from, Some(Duration::from_millis(60)));
        assert!(v.faulted(Duration::from_millis(35), Duration::from_millis(45)));
        assert!(!v.faulted(Duration::from_millis(41), Duration::from_millis(49)));
    }

    #[test]
    fn no_faults_heal_the_whole_run_and_an_uncleared_fault_never_heals() {
        assert_eq!(H::default().view().healed_from, Some(Duration::ZERO));
        let v = H::default().fault(10, 0).clear(20, 1).view();
        assert_eq!(v.healed_from, None);
        assert!(v.fault_windows[0].open);
    }

    #[test]
    fn evidence_is_bounded_and_anomalies_fail() {
        let mut f = Findings::default();
        for i in 0..15 {
            f.anomaly("x", format!("{i}"));
        }
        let r = f.finish("t", Some("never healed".to_owned()), "ok".to_owned());
        assert_eq!(r.verdict, Verdict::Fail);
        assert_eq!(r.evidence.len(), MAX_EVIDENCE + 1);
        assert_eq!(r.counts["x"], 15);
        assert_eq!(r.reason, "x ×15");
        // A second kind of anomaly past the bound still gets its first line.
        let mut f = Findings::default();
        for i in 0..15 {
            f.anomaly("x", format!("{i}"));
        }
        f.anomaly("y", "the other kind".to_owned());
        let r = f.finish("t", None, "ok".to_owned());
        assert!(
            r.evidence.iter().any(|e| e == "y: the other kind"),
            "{:?}",
            r.evidence
        );
        assert_eq!(r.evidence.len(), MAX_EVIDENCE + 2);
    }
}
