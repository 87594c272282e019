//! The queue check: total-queue accounting after a final drain, and lease exclusivity.
//!
//! Operation formats (drivers of the reference Workers' `/queue` API write these):
//! - producers `producer-<n>`, f `enqueue`: invoke `{id}`; `ok` `{id, duplicate}`; `fail`
//!   (had no effect) / `info` (unknown);
//! - consumers `consumer-<n>`, f `claim`: invoke `{consumer, lease_ms}`; `ok`
//!   `{id, lease_until}`, or `{id: null}` when nothing was due (204); `fail` / `info`;
//! - f `complete`: invoke `{id, consumer}`; `ok` `{id}`; `fail` (404 / 409) / `info`;
//! - the final drain, process `drain`, f `result`: invoke `{id}`; `ok`
//!   `{id, status: "pending" | "leased" | "done" | "missing", result}` (`missing` is the 404);
//!   `fail` when the read itself failed. The last `ok` per id is the final state.
//!
//! Anomalies:
//! - `lost`: an acknowledged enqueue whose task was never completed `ok` and that the drain
//!   found `missing`: the task is gone;
//! - `not-drained`: an acknowledged enqueue whose task was never completed `ok` and that the
//!   drain still found pending or leased (any status but `done` and `missing`) when the run
//!   ended: it exists, but the queue did not deliver it in the heal phase (a lease longer than
//!   the heal phase, or a consumer that keeps failing, leaves it there);
//! - `duplicated`: completed `ok` more than once; counted in at-least-once mode, an anomaly in
//!   exactly-once-effect mode;
//! - `unexpected`: an id claimed, completed or found by the drain that no enqueue may have
//!   created (none was invoked, or every one failed);
//! - `lease-overlap`: deliveries are counted from acknowledged claims; two claims of one id by
//!   different consumers whose leases (Worker time `[lease_until - lease_ms, lease_until)`)
//!   intersect, unless the first consumer invoked a complete that may have worked before the
//!   second claim completed — also when the two claims were concurrent: both cannot hold at
//!   once, whatever order they took effect in;
//! - `redelivered` (counted): a claim granted after an earlier lease on the id expired with no
//!   completion; in exactly-once-effect mode it is `duplicated`;
//! - `slow-drain`: the drain time is above [`QueueConfig::max_drain`];
//! - `stalled`: the queue made no progress (no enqueue acknowledged, no task claimed or
//!   completed) for longer than [`QueueConfig::max_stall`] while its operations were failing —
//!   a queue that stops when KV fails. The longest such span is reported as `max_stall_ms`
//!   either way, with whether a fault was active.
//!
//! Reported, not failures: `recovered` (an indeterminate enqueue later seen delivered), the
//! drain time (from the start of the heal phase — producers stopped, faults cleared — or the
//! last fault cleared, to the moment every enqueued task had been seen done).
//!
//! UNKNOWN, without an anomaly, unless the history holds the evidence a PASS rests on: at
//! least one acknowledged enqueue, a final drain, and every acknowledged task completed or
//! read by the drain.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use crate::history::OpKind;

use super::{CheckResult, Findings, HistoryView, Operation, secs};

/// The delivery guarantee being checked.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum QueueMode {
    /// A task may be processed more than once; duplicates are counted, not failures.
    #[default]
    AtLeastOnce,
    /// A task's effect must happen once: a second completion is an anomaly.
    ExactlyOnceEffect,
}

/// Bounds for the queue check.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QueueConfig {
    /// The guarantee.
    pub mode: QueueMode,
    /// FAIL when the drain took longer than this; `None` only reports it.
    pub max_drain: Option<Duration>,
    /// Slack, in Worker ms, before comparing one lease's start with another's end.
    pub tolerance_ms: u64,
    /// FAIL when the queue makes no progress for longer while its operations fail; `None`
    /// only reports the longest stall.
    pub max_stall: Option<Duration>,
    /// The id prefix of the driver's own tasks: other ids (tasks other traffic enqueued) are
    /// counted as `foreign` and not judged. `None` judges every id.
    pub ours: Option<String>,
}

#[derive(Default)]
struct Task<'a> {
    enqueue_ok: Option<&'a Operation>,
    enqueue_maybe: Option<&'a Operation>,
    enqueue_invoked: bool,
    claims: Vec<&'a Operation>,
    completes_ok: Vec<&'a Operation>,
    /// Invocations of completes that may have worked, by consumer.
    completes_maybe: Vec<&'a Operation>,
    drain: Option<&'a Operation>,
}

impl Task<'_> {
    fn drain_status(&self) -> Option<&str> {
        self.drain.and_then(|d| d.str_field("status"))
    }

    /// When the task was first seen done: a completion, else the drain's read.
    fn done_at(&self) -> Option<Duration> {
        let completed = self.completes_ok.iter().filter_map(|c| c.done_t()).min();
        let drained = self
            .drain
            .filter(|_| self.drain_status() == Some("done"))
            .and_then(|d| d.done_t());
        completed.or(drained)
    }

    fn delivered(&self) -> bool {
        !self.claims.is_empty()
            || !self.completes_ok.is_empty()
            || self.drain_status() == Some("done")
    }

    fn exists(&self) -> bool {
        self.delivered() || matches!(self.drain_status(), Some("pending" | "leased"))
    }
}

fn consumer(op: &Operation) -> &str {
    op.value
        .get("consumer")
        .and_then(|v| v.as_str())
        .unwrap_or(&op.process)
}

/// Judges the queue operations of `h`.
pub fn check(h: &HistoryView, cfg: &QueueConfig) -> CheckResult {
    let mut f = Findings::default();
    stalls(h, cfg, &mut f);
    let seen = gather(h, cfg, &mut f);
    let mut undrained = 0u64;
    let mut last_done: Option<Duration> = None;
    let mut all_done = true;
    for (id, t) in &seen.tasks {
        f.add("claims_ok", t.claims.len() as u64);
        f.add("completes_ok", t.completes_ok.len() as u64);
        let expected = t.enqueue_ok.is_some() || (t.enqueue_maybe.is_some() && t.delivered());
        unexpected_or_recovered(id, t, &mut f);
        duplicated(id, t, cfg, &mut f);
        if expected {
            match t.done_at() {
                Some(d) => last_done = last_done.max(Some(d)),
                None => all_done = false,
            }
            if !judge_drain(id, t, &mut f) {
                undrained += 1;
            }
        }
        deliveries(id, t, cfg, &mut f);
    }
    f.set("tasks", seen.tasks.len() as u64);
    if !seen.foreign.is_empty() {
        f.set("foreign", seen.foreign.len() as u64);
    }
    f.set("undrained", undrained);
    let mut drain_unknown = None;
    if seen.drains == 0 {
        drain_unknown = Some("no final drain: loss cannot be judged".to_owned());
    } else if all_done {
        drain_time(h, cfg, last_done, &mut f);
    }
    let acked = f.count("enqueues_ok");
    let unknown = unknown_reason(acked, seen.enqueues, drain_unknown, undrained);
    f.finish(
        "queue",
        unknown,
        format!(
            "{acked} acknowledged enqueues, every one judged by the drain; {} tasks accounted for, none lost or unexpected, leases exclusive",
            seen.tasks.len()
        ),
    )
}

/// What the history holds about each task, keyed by id.
struct Seen<'a> {
    /// The driver's own tasks.
    tasks: BTreeMap<&'a str, Task<'a>>,
    /// Ids of tasks other traffic enqueued.
    foreign: BTreeSet<&'a str>,
    /// Enqueue attempts.
    enqueues: usize,
    /// Drain reads.
    drains: usize,
}

/// Pairs every enqueue, claim, complete and drain read with its task.
fn gather<'a>(h: &'a HistoryView, cfg: &QueueConfig, f: &mut Findings) -> Seen<'a> {
    let mut tasks: BTreeMap<&str, Task> = BTreeMap::new();
    let ours = |id: &str| cfg.ours.as_deref().is_none_or(|p| id.starts_with(p));
    let mut foreign = BTreeSet::new();
    let enqueues: Vec<&Operation> = h.ops_of("producer", "enqueue").collect();
    for e in &enqueues {
        let Some(id) = e.value.get("id").and_then(|v| v.as_str()) else {
            f.add("malformed", 1);
            continue;
        };
        f.add(
            match e.completion.as_ref().map(|c| c.kind) {
                Some(OpKind::Ok) => "enqueues_ok",
                Some(OpKind::Fail) => "enqueues_fail",
                _ => "enqueues_info",
            },
            1,
        );
        let t = tasks.entry(id).or_default();
        t.enqueue_invoked = true;
        if e.is_ok() {
            t.enqueue_ok.get_or_insert(e);
        } else if e.may_have_happened() {
            t.enqueue_maybe.get_or_insert(e);
        }
    }
    for c in h.ops_of("consumer", "claim").filter(|c| c.is_ok()) {
        match c.result().get("id").and_then(|v| v.as_str()) {
            Some(id) if !ours(id) => {
                foreign.insert(id);
            }
            Some(id) => tasks.entry(id).or_default().claims.push(c),
            None => f.add("claims_empty", 1),
        }
    }
    for c in h.ops_of("consumer", "complete") {
        let Some(id) = c.value.get("id").and_then(|v| v.as_str()) else {
            continue;
        };
        if !ours(id) {
            foreign.insert(id);
            continue;
        }
        let t = tasks.entry(id).or_default();
        if c.is_ok() {
            t.completes_ok.push(c);
        }
        if c.may_have_happened() {
            t.completes_maybe.push(c);
        }
    }
    let drains: Vec<&Operation> = h.ops_of("drain", "result").collect();
    for d in drains.iter().filter(|d| d.is_ok()) {
        if let Some(id) = d.field("id").and_then(|v| v.as_str()).filter(|id| ours(id)) {
            let t = tasks.entry(id).or_default();
            if t.drain.is_none_or(|prev| prev.t < d.t) {
                t.drain = Some(d);
            }
        }
    }
    Seen {
        tasks,
        foreign,
        enqueues: enqueues.len(),
        drains: drains.len(),
    }
}

/// A task that exists though no enqueue of it succeeded is unexpected; one whose enqueue was
/// indeterminate and that was delivered is recovered.
fn unexpected_or_recovered(id: &str, t: &Task, f: &mut Findings) {
    if t.enqueue_ok.is_none() && t.enqueue_maybe.is_none() && t.exists() {
        let first = t
            .claims
            .first()
            .or(t.completes_ok.first())
            .or(t.drain.as_ref())
            .map_or(String::new(), |o| o.describe());
        f.anomaly(
            "unexpected",
            format!(
                "{id:?} {} but {}: {first}",
                if t.delivered() {
                    "was delivered"
                } else {
                    "exists"
                },
                if t.enqueue_invoked {
                    "every enqueue of it failed"
                } else {
                    "was never enqueued"
                }
            ),
        );
    }
    if let (None, Some(e)) = (t.enqueue_ok, t.enqueue_maybe) {
        if t.delivered() {
            f.add("recovered", 1);
            f.note(format!(
                "recovered: {id:?} enqueue was indeterminate, later delivered: {}",
                e.describe()
            ));
        }
    }
}

/// A task completed more than once: an anomaly under exactly-once-effect, else a note.
fn duplicated(id: &str, t: &Task, cfg: &QueueConfig, f: &mut Findings) {
    if t.completes_ok.len() > 1 {
        let list: Vec<String> = t
            .completes_ok
            .iter()
            .map(|c| format!("{} at {}", consumer(c), secs(c.t)))
            .collect();
        let line = format!(
            "{id:?} completed {} times: {}",
            t.completes_ok.len(),
            list.join(", ")
        );
        match cfg.mode {
            QueueMode::ExactlyOnceEffect => f.anomaly("duplicated", line),
            QueueMode::AtLeastOnce => {
                f.add("duplicated", 1);
                f.note(format!("duplicated (allowed): {line}"));
            }
        }
    }
}

/// Judges an acknowledged task nobody completed by the drain's read; false when the drain
/// did not read it.
fn judge_drain(id: &str, t: &Task, f: &mut Findings) -> bool {
    if let Some(e) = t.enqueue_ok.filter(|_| t.completes_ok.is_empty()) {
        match t.drain_status() {
            Some("done") => {}
            Some("missing") => f.anomaly(
                "lost",
                format!(
                    "{id:?} acknowledged at {}, the drain found no such task",
                    secs(e.done_t().unwrap_or(e.t))
                ),
            ),
            Some(status) => f.anomaly(
                "not-drained",
                format!(
                    "{id:?} acknowledged at {}, still {status} when the run ended{}",
                    secs(e.done_t().unwrap_or(e.t)),
                    match t.claims.last() {
                        Some(c) => format!("; last claimed: {}", c.describe()),
                        None => String::new(),
                    }
                ),
            ),
            None => return false,
        }
    }
    true
}

/// The drain's time, from the heal's start to the last task done, against `max_drain`.
fn drain_time(h: &HistoryView, cfg: &QueueConfig, last_done: Option<Duration>, f: &mut Findings) {
    // No drain time when the run never healed: there is nothing to measure from.
    // The drain starts when the producers stop and the faults are gone: the heal phase,
    // or the last fault cleared when the run had no heal phase.
    let drain_from = h
        .healed_from
        .map(|healed| h.heal_started.map_or(healed, |heal| heal.max(healed)));
    if let (Some(done), Some(drain_from)) = (last_done, drain_from) {
        let took = done.saturating_sub(drain_from);
        f.set("drain_ms", took.as_millis() as u64);
        if let Some(bound) = cfg.max_drain.filter(|b| took > *b) {
            f.anomaly(
                "slow-drain",
                format!(
                    "every task was done {} ms after {} (the heal phase started), above {} ms",
                    took.as_millis(),
                    secs(drain_from),
                    bound.as_millis()
                ),
            );
        }
    }
}

/// Why the check cannot judge, if it cannot.
fn unknown_reason(
    acked: u64,
    enqueues: usize,
    drain_unknown: Option<String>,
    undrained: u64,
) -> Option<String> {
    if enqueues == 0 {
        Some("nothing was enqueued".to_owned())
    } else if acked == 0 {
        Some(format!(
            "no enqueue was acknowledged ({} attempts): nothing shows the queue accepts work",
            enqueues
        ))
    } else if drain_unknown.is_some() {
        drain_unknown
    } else if undrained > 0 {
        Some(format!(
            "{undrained} acknowledged tasks were neither completed nor read by the drain"
        ))
    } else {
        None
    }
}

/// The longest spans without progress while queue operations failed.
fn stalls(h: &HistoryView, cfg: &QueueConfig, f: &mut Findings) {
    let queue_ops = h.ops.iter().filter(|o| {
        let p = o.process.as_str();
        (p.starts_with("producer") && o.f == "enqueue")
            || (p.starts_with("consumer") && (o.f == "claim" || o.f == "complete"))
    });
    let mut progress: Vec<Duration> = Vec::new();
    let mut trouble: Vec<&Operation> = Vec::new();
    for o in queue_ops {
        let delivered = o.f != "claim" || o.result().get("id").is_some_and(|v| !v.is_null());
        match (o.outcome(), o.done_t()) {
            (OpKind::Ok, Some(t)) if delivered => progress.push(t),
            (OpKind::Ok, _) => {}
            _ => trouble.push(o),
        }
    }
    progress.sort();
    let mut worst: Option<(Duration, Duration, &Operation)> = None;
    for o in &trouble {
        let i = progress.partition_point(|p| *p <= o.t);
        let from = if i == 0 {
            Duration::ZERO
        } else {
            progress[i - 1]
        };
        let to = progress.get(i).copied().unwrap_or(h.end);
        if worst.is_none_or(|(a, b, _)| to - from > b - a) {
            worst = Some((from, to, o));
        }
    }
    let Some((from, to, first)) = worst else {
        f.set("max_stall_ms", 0);
        return;
    };
    let span = to - from;
    f.set("max_stall_ms", span.as_millis() as u64);
    // The first failing operation of that span is the most telling evidence.
    let first = trouble
        .iter()
        .filter(|o| o.t >= from && o.t <= to)
        .min_by_key(|o| o.t)
        .copied()
        .unwrap_or(first);
    if let Some(bound) = cfg.max_stall.filter(|b| span > *b) {
        f.anomaly(
            "stalled",
            format!(
                "no enqueue acknowledged and no task claimed or completed from {} to {} ({} ms > {} ms){}; first failure: {}",
                secs(from),
                secs(to),
                span.as_millis(),
                bound.as_millis(),
                if h.faulted(from, to) {
                    ", while a fault was active"
                } else {
                    ", with no fault active"
                },
                first.describe()
            ),
        );
    }
}

/// A claim's lease on the Worker's clock: `[granted, until)`.
fn lease(c: &Operation) -> Option<(u64, u64)> {
    let until = c.u64_field("lease_until")?;
    let ms = c.value.get("lease_ms").and_then(|v| v.as_u64())?;
    Some((until.saturating_sub(ms), until))
}

/// Deliveries are counted from acknowledged claims. Two claims of a task by different
/// consumers whose leases intersect are a `lease-overlap` (also when the claims were
/// concurrent: both cannot hold at once), unless the first consumer invoked a complete that
/// may have worked before the second claim completed. A claim granted after an earlier lease
/// expired is a redelivery: counted, and `duplicated` in exactly-once-effect mode.
fn deliveries(id: &str, t: &Task, cfg: &QueueConfig, f: &mut Findings) {
    let mut claims: Vec<(u64, u64, &Operation)> = t
        .claims
        .iter()
        .filter_map(|c| lease(c).map(|(g, u)| (g, u, *c)))
        .collect();
    claims.sort_by_key(|(g, _, c)| (*g, c.done_t()));
    for (i, &(b_granted, _, b)) in claims.iter().enumerate() {
        for &(_, a_until, a) in &claims[..i] {
            if consumer(a) == consumer(b) {
                continue;
            }
            let b_done = b.done_t().unwrap_or(b.t);
            let completed_before = t
                .completes_maybe
                .iter()
                .any(|c| consumer(c) == consumer(a) && c.t > a.t && c.t < b_done);
            if completed_before {
                continue;
            }
            if b_granted + cfg.tolerance_ms < a_until {
                f.anomaly(
                    "lease-overlap",
                    format!(
                        "{id:?} leased to {} until worker ms {a_until} (claimed at {}), and to {} at worker ms {b_granted}{}: {}",
                        consumer(a),
                        secs(a.t),
                        consumer(b),
                        if b.t < a.done_t().unwrap_or(a.t) { " by a concurrent claim" } else { "" },
                        b.describe()
                    ),
                );
                break;
            }
            if a_until <= b_granted + cfg.tolerance_ms && t.completes_ok.iter().all(|c| c.t > b.t) {
                f.add("redelivered", 1);
                let line = format!(
                    "{id:?} redelivered to {} at {} after {}'s lease expired at worker ms {a_until}",
                    consumer(b),
                    secs(b.t),
                    consumer(a)
                );
                match cfg.mode {
                    QueueMode::ExactlyOnceEffect => f.anomaly("duplicated", line),
                    QueueMode::AtLeastOnce => f.note(format!("redelivered (allowed): {line}")),
                }
                break;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::Verdict;
    use crate::check::testing::H;
    use serde_json::{Value, json};

    const W0: u64 = 1_795_428_000_000;

    fn enqueue(h: H, ms: u64, id: &str, kind: OpKind) -> H {
        h.op(
            ms,
            "producer-1",
            OpKind::Invoke,
            "enqueue",
            json!({"id": id}),
        )
        .op(
            ms + 10,
            "producer-1",
            kind,
            "enqueue",
            json!({"id": id, "duplicate": false}),
        )
    }

    /// Claim by `consumer-<c>` at `ms` with a 1000 ms lease granted at `W0 + ms + 5`.
    fn claim(h: H, ms: u64, c: u32, id: &str) -> H {
        let p = format!("consumer-{c}");
        h.op(
            ms,
            &p,
            OpKind::Invoke,
            "claim",
            json!({"consumer": p, "lease_ms": 1000}),
        )
        .op(
            ms + 10,
            &p,
            OpKind::Ok,
            "claim",
            json!({"id": id, "lease_until": W0 + ms + 1005}),
        )
    }

    fn complete(h: H, ms: u64, c: u32, id: &str, kind: OpKind) -> H {
        let p = format!("consumer-{c}");
        h.op(
            ms,
            &p,
            OpKind::Invoke,
            "complete",
            json!({"id": id, "consumer": p}),
        )
        .op(ms + 10, &p, kind, "complete", json!({"id": id}))
    }

    fn drain(h: H, ms: u64, id: &str, status: &str) -> H {
        h.op(ms, "drain", OpKind::Invoke, "result", json!({"id": id}))
            .op(
                ms + 10,
                "drain",
                OpKind::Ok,
                "result",
                json!({"id": id, "status": status, "result": Value::Null}),
            )
    }

    fn cfg(mode: QueueMode) -> QueueConfig {
        QueueConfig {
            mode,
            ..QueueConfig::default()
        }
    }

    fn clean() -> H {
        let mut h = H::default().fault(50, 0).clear(2_000, 0);
        for (i, id) in ["a", "b", "c"].iter().enumerate() {
            let ms = i as u64 * 100;
            h = enqueue(h, ms, id, OpKind::Ok);
        }
        h = claim(h, 2_100, 1, "a");
        h = complete(h, 2_200, 1, "a", OpKind::Ok);
        h = claim(h, 2_300, 2, "b");
        h = complete(h, 2_400, 2, "b", OpKind::Ok);
        // "c" was processed by the Worker's cron: only the drain sees it done.
        for (i, id) in ["a", "b", "c"].iter().enumerate() {
            h = drain(h, 3_000 + i as u64 * 20, id, "done");
        }
        h
    }

    #[test]
    fn a_clean_history_passes_and_reports_the_drain_time() {
        let r = check(&clean().view(), &cfg(QueueMode::ExactlyOnceEffect));
        assert_eq!(r.verdict, Verdict::Pass, "{r:?}");
        assert_eq!(r.counts["drain_ms"], 1_050);
    }

    #[test]
    fn an_acknowledged_task_the_drain_finds_missing_is_lost_and_pending_is_not_drained() {
        let h = enqueue(H::default(), 0, "a", OpKind::Ok);
        let h = enqueue(h, 100, "b", OpKind::Ok);
        let h = enqueue(h, 200, "c", OpKind::Ok);
        let h = drain(drain(h, 1_000, "a", "pending"), 1_100, "b", "missing");
        let h = drain(h, 1_200, "c", "leased");
        let r = check(&h.view(), &cfg(QueueMode::AtLeastOnce));
        assert_eq!(r.verdict, Verdict::Fail, "{r:?}");
        assert_eq!(r.counts["lost"], 1);
        assert_eq!(r.counts["not-drained"], 2);
        assert!(r.reason.contains("lost ×1") && r.reason.contains("not-drained ×2"));
    }

    #[test]
    fn a_second_completion_fails_only_in_exactly_once_effect_mode() {
        let h = enqueue(H::default(), 0, "a", OpKind::Ok);
        let h = complete(claim(h, 100, 1, "a"), 200, 1, "a", OpKind::Ok);
        let h = complete(claim(h, 2_000, 2, "a"), 2_100, 2, "a", OpKind::Ok);
        let h = drain(h, 3_000, "a", "done");
        let r = check(&h.clone().view(), &cfg(QueueMode::AtLeastOnce));
        assert_eq!(r.verdict, Verdict::Pass, "{r:?}");
        assert_eq!(r.counts["duplicated"], 1);
        let r = check(&h.view(), &cfg(QueueMode::ExactlyOnceEffect));
        assert_eq!(r.verdict, Verdict::Fail, "{r:?}");
        assert!(r.reason.contains("duplicated"));
    }

    #[test]
    fn delivering_what_was_never_enqueued_or_whose_enqueue_failed_is_unexpected() {
        let h = enqueue(H::default(), 0, "a", OpKind::Fail);
        let h = complete(claim(h, 100, 1, "a"), 200, 1, "a", OpKind::Ok);
        let h = claim(h, 300, 1, "ghost");
        let h = drain(h, 1_000, "a", "done");
        let r = check(&h.view(), &cfg(QueueMode::AtLeastOnce));
        assert_eq!(r.counts.get("unexpected"), Some(&2), "{r:?}");
    }

    #[test]
    fn an_indeterminate_enqueue_is_recovered_when_delivered_and_never_lost() {
        let h = enqueue(H::default(), 0, "a", OpKind::Info);
        let h = enqueue(h, 100, "b", OpKind::Info);
        let h = complete(claim(h, 200, 1, "a"), 300, 1, "a", OpKind::Ok);
        let h = drain(drain(h, 1_000, "a", "done"), 1_100, "b", "missing");
        let r = check(&h.clone().view(), &cfg(QueueMode::ExactlyOnceEffect));
        assert_eq!(r.counts.get("lost"), None, "{r:?}");
        assert_eq!(r.counts["recovered"], 1);
        // No enqueue was acknowledged: not enough for a PASS.
        assert_eq!(r.verdict, Verdict::Unknown, "{r:?}");
        let h = drain(enqueue(h, 1_200, "c", OpKind::Ok), 1_300, "c", "done");
        let r = check(&h.view(), &cfg(QueueMode::ExactlyOnceEffect));
        assert_eq!(r.verdict, Verdict::Pass, "{r:?}");
        assert!(r.evidence[0].starts_with("recovered"), "{:?}", r.evidence);
    }

    #[test]
    fn a_second_consumer_leased_before_the_first_lease_expired_is_an_overlap() {
        let h = enqueue(H::default(), 0, "a", OpKind::Ok);
        let h = claim(claim(h, 100, 1, "a"), 500, 2, "a");
        let h = drain(h, 3_000, "a", "done");
        let r = check(&h.view(), &cfg(QueueMode::AtLeastOnce));
        assert_eq!(r.counts.get("lease-overlap"), Some(&1), "{r:?}");
        // After the first lease expired (1000 ms), a redelivery is allowed, and counted; in
        // exactly-once-effect mode it is a duplicate.
        let h = enqueue(H::default(), 0, "a", OpKind::Ok);
        let h = claim(claim(h, 100, 1, "a"), 1_500, 2, "a");
        let h = drain(h, 3_000, "a", "done");
        let r = check(&h.clone().view(), &cfg(QueueMode::AtLeastOnce));
        assert_eq!(r.verdict, Verdict::Pass, "{r:?}");
        assert_eq!(r.counts.get("redelivered"), Some(&1), "{r:?}");
        let r = check(&h.view(), &cfg(QueueMode::ExactlyOnceEffect));
        assert_eq!(r.counts.get("duplicated"), Some(&1), "{r:?}");
    }

    /// Claims by consumers 1 and 2 invoked at `ms` and `ms + 1`, both answered after both were
    /// invoked, with the given kinds.
    fn concurrent_claims(h: H, ms: u64, id: &str, kinds: [OpKind; 2]) -> H {
        let lease = json!({"id": id, "lease_until": W0 + ms + 1005});
        let inv = |c: u32| json!({"consumer": format!("consumer-{c}"), "lease_ms": 1000});
        h.op(ms, "consumer-1", OpKind::Invoke, "claim", inv(1))
            .op(ms + 1, "consumer-2", OpKind::Invoke, "claim", inv(2))
            .op(ms + 8, "consumer-1", kinds[0], "claim", lease.clone())
            .op(ms + 9, "consumer-2", kinds[1], "claim", lease)
    }

    #[test]
    fn concurrent_claims_handing_one_task_to_two_consumers_are_an_overlap() {
        let h = concurrent_claims(
            enqueue(H::default(), 0, "a", OpKind::Ok),
            100,
            "a",
            [OpKind::Ok; 2],
        );
        // The losing consumer's complete is refused: the overlap shows from the claims alone.
        let h = complete(h, 200, 1, "a", OpKind::Ok);
        let h = complete(h, 210, 2, "a", OpKind::Fail);
        let h = drain(h, 3_000, "a", "done");
        let r = check(&h.view(), &cfg(QueueMode::AtLeastOnce));
        assert_eq!(r.verdict, Verdict::Fail, "{r:?}");
        assert_eq!(r.counts.get("lease-overlap"), Some(&1), "{r:?}");
        assert!(
            r.evidence[0].contains("concurrent claim"),
            "{:?}",
            r.evidence
        );
    }

    #[test]
    fn an_indeterminate_concurrent_claim_is_no_overlap() {
        let h = concurrent_claims(
            enqueue(H::default(), 0, "a", OpKind::Ok),
            100,
            "a",
            [OpKind::Ok, OpKind::Info],
        );
        let h = complete(h, 200, 1, "a", OpKind::Ok);
        let h = drain(h, 3_000, "a", "done");
        let r = check(&h.view(), &cfg(QueueMode::ExactlyOnceEffect));
        assert_eq!(r.verdict, Verdict::Pass, "{r:?}");
    }

    #[test]
    fn without_faults_the_drain_is_timed_from_the_heal_phase() {
        let mut h = H::default();
        for (i, id) in ["a", "b"].iter().enumerate() {
            h = enqueue(h, i as u64 * 5_000, id, OpKind::Ok);
        }
        h = h.heal(10_000);
        h = drain(drain(h, 10_500, "a", "done"), 12_000, "b", "done");
        let c = QueueConfig {
            max_drain: Some(Duration::from_secs(5)),
            ..cfg(QueueMode::AtLeastOnce)
        };
        let r = check(&h.view(), &c);
        assert_eq!(r.verdict, Verdict::Pass, "{r:?}");
        assert_eq!(r.counts["drain_ms"], 2_010);
    }

    #[test]
    fn a_slow_drain_fails_against_its_bound() {
        let c = QueueConfig {
            max_drain: Some(Duration::from_millis(500)),
            ..cfg(QueueMode::AtLeastOnce)
        };
        let r = check(&clean().view(), &c);
        assert_eq!(r.verdict, Verdict::Fail, "{r:?}");
        assert_eq!(r.counts["slow-drain"], 1);
    }

    #[test]
    fn failing_operations_without_progress_are_a_stall_named_with_its_first_failure() {
        let mut h = H::default().fault(1_000, 0).clear(9_000, 0);
        h = enqueue(h, 0, "a", OpKind::Ok);
        h = complete(claim(h, 100, 1, "a"), 200, 1, "a", OpKind::Ok);
        for ms in (1_000..9_000).step_by(1_000) {
            h = enqueue(h, ms, &format!("x{ms}"), OpKind::Info);
        }
        h = enqueue(h, 9_500, "b", OpKind::Ok);
        h = drain(drain(h, 10_000, "a", "done"), 10_100, "b", "done");
        let bounded = QueueConfig {
            max_stall: Some(Duration::from_secs(5)),
            ..cfg(QueueMode::AtLeastOnce)
        };
        let r = check(&h.clone().view(), &bounded);
        assert_eq!(r.verdict, Verdict::Fail, "{r:?}");
        // From the completion of "a" (210 ms) to the acknowledged enqueue of "b" (9,510 ms).
        assert_eq!(r.counts["max_stall_ms"], 9_300);
        let line = r.evidence.iter().find(|e| e.starts_with("stalled"));
        assert!(
            line.is_some_and(|l| l.contains("while a fault was active") && l.contains("x1000")),
            "{:?}",
            r.evidence
        );
        // Without a bound the stall is reported, not judged.
        let r = check(&h.view(), &cfg(QueueMode::AtLeastOnce));
        assert_eq!(r.counts["max_stall_ms"], 9_300);
        assert_ne!(r.verdict, Verdict::Fail, "{r:?}");
    }

    #[test]
    fn an_idle_queue_is_not_a_stall_and_foreign_tasks_are_not_judged() {
        let mut h = enqueue(H::default(), 0, "ours-a", OpKind::Ok);
        h = complete(claim(h, 100, 1, "ours-a"), 200, 1, "ours-a", OpKind::Ok);
        // Empty claims for 20 s: nothing to do is not a stall.
        for ms in (1_000..21_000).step_by(1_000) {
            h = h
                .op(
                    ms,
                    "consumer-1",
                    OpKind::Invoke,
                    "claim",
                    json!({"consumer": "consumer-1", "lease_ms": 1000}),
                )
                .op(
                    ms + 5,
                    "consumer-1",
                    OpKind::Ok,
                    "claim",
                    json!({"id": null}),
                );
        }
        // A task the load enqueued, delivered to our consumer.
        h = complete(
            claim(h, 21_000, 1, "load-task"),
            21_100,
            1,
            "load-task",
            OpKind::Ok,
        );
        h = drain(h, 22_000, "ours-a", "done");
        let c = QueueConfig {
            max_stall: Some(Duration::from_secs(1)),
            ours: Some("ours-".to_owned()),
            ..cfg(QueueMode::ExactlyOnceEffect)
        };
        let r = check(&h.clone().view(), &c);
        assert_eq!(r.verdict, Verdict::Pass, "{r:?}");
        assert_eq!(r.counts["foreign"], 1);
        assert_eq!(r.counts["max_stall_ms"], 0);
        // Judging every id, the load's task is unexpected.
        let r = check(&h.view(), &QueueConfig { ours: None, ..c });
        assert_eq!(r.counts.get("unexpected"), Some(&1), "{r:?}");
    }

    #[test]
    fn no_drain_no_enqueue_or_unread_tasks_are_unknown() {
        let mode = cfg(QueueMode::AtLeastOnce);
        assert_eq!(check(&H::default().view(), &mode).verdict, Verdict::Unknown);
        let h = enqueue(H::default(), 0, "a", OpKind::Ok);
        let r = check(&h.view(), &mode);
        assert_eq!(r.verdict, Verdict::Unknown, "{r:?}");
        assert!(r.reason.contains("no final drain"));
        let h = enqueue(
            enqueue(H::default(), 0, "a", OpKind::Ok),
            50,
            "b",
            OpKind::Ok,
        );
        let h = drain(h, 1_000, "a", "done");
        let r = check(&h.view(), &mode);
        assert_eq!(r.verdict, Verdict::Unknown, "{r:?}");
        assert_eq!(r.counts["undrained"], 1);
    }
}
