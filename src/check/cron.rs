//! The cron check: did the Worker's scheduled handler keep running, also while KV failed?
//!
//! Reads ticks of process `cron`, f `tick` (value `{cron, scheduled_ms}`, completed `ok` when
//! the handler returned, `fail` when it threw, `info` when the launcher did not answer), and
//! optional status probes of process `cron-status`, f `status`, `ok` value
//! `{last_run: ms | null, runs: int}` (the Worker's `GET /cron/status`).
//!
//! Anomalies:
//! - `missed-tick`: a tick that completed `fail` (the handler threw; the run did not happen);
//! - `max-gap`: per cron expression, the largest gap in `scheduled_ms` between consecutive
//!   ticks that may have run (`ok` or `info`) — a run of failed ticks at either end counts
//!   from or to the outermost failed tick — is above [`CronConfig::max_gap_ms`]. The largest
//!   gap is also reported for gaps that overlap a fault window: a gap there means the control
//!   plane still depends on KV;
//! - `duplicate-run`: status `runs` advancing between two probes by more than the ticks that
//!   may have run between them;
//! - `nonmonotonic-last-run` / `nonmonotonic-runs`: a probe reading an older `last_run` (or
//!   fewer `runs`) than a probe that completed before it was invoked.
//!
//! Without fired ticks (a deployed Worker, whose crons Cloudflare fires), the probes alone are
//! judged: `max-gap` between consecutive distinct `last_run` values read, and the run must see
//! `last_run` advance after the last fault was cleared.
//!
//! UNKNOWN, without an anomaly, unless the history holds the evidence a PASS rests on: at
//! least one tick answered `ok` after the last fault was cleared (an unanswered tick never
//! counts as a run) and, with status probes, a `last_run` that advanced after the heal —
//! or, judging probes alone, a probe that saw `last_run` advance in the healed window.

use std::collections::BTreeMap;

use crate::history::OpKind;

use super::{CheckResult, Findings, HistoryView, Operation, secs};

/// Bounds for the cron check.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CronConfig {
    /// FAIL when a gap between runs (in scheduled time, ms) exceeds this; `None` reports
    /// gaps without judging them.
    pub max_gap_ms: Option<u64>,
}

/// Judges the cron ticks and status probes of `h`.
pub fn check(h: &HistoryView, cfg: &CronConfig) -> CheckResult {
    let mut f = Findings::default();
    let ticks: Vec<&Operation> = h.ops_of("cron", "tick").collect();
    f.set("ticks", ticks.len() as u64);
    count_ticks(h, &ticks, &mut f);

    gaps(h, cfg, &ticks, &mut f);
    let advanced_healed = probes(h, cfg, &ticks, &mut f);

    // A tick nobody answered (`info`) may have run, so it never makes a gap; but it is no
    // evidence of a run either: a PASS rests on ticks answered ok.
    let healed_ok = ticks.iter().filter(|t| h.healed(t.t) && t.is_ok()).count() as u64;
    f.set("ticks_healed", healed_ok);
    let probed = f.count("probes_ok");
    if ticks.is_empty() && probed > 0 {
        let unknown = probes_unknown(h, advanced_healed);
        return f.finish(
            "cron",
            unknown,
            format!("{probed} status reads, last_run advancing, also after the heal"),
        );
    }
    let (ok, info) = (
        f.count("ticks_ok"),
        ticks.len() as u64 - f.count("ticks_ok") - f.count("ticks_fail"),
    );
    let heal = Healed {
        ok: healed_ok,
        probed,
        advanced: advanced_healed,
    };
    let unknown = ticks_unknown(h, ticks.len(), ok, info, &heal);
    let probes = if probed > 0 {
        format!("; last_run advanced after the heal ({probed} status reads)")
    } else {
        String::new()
    };
    let pass = format!(
        "{} ticks ({ok} ok, {info} unanswered), none missed; {healed_ok} ok after the heal{probes}",
        ticks.len()
    );
    f.finish("cron", unknown, pass)
}

/// Counts ticks by how they completed; a tick that failed is a `missed-tick`.
fn count_ticks(h: &HistoryView, ticks: &[&Operation], f: &mut Findings) {
    for t in ticks {
        let name = match t.completion.as_ref().map(|c| c.kind) {
            Some(OpKind::Ok) => "ticks_ok",
            Some(OpKind::Fail) => "ticks_fail",
            Some(_) => "ticks_info",
            None => "ticks_incomplete",
        };
        f.add(name, 1);
        if t.outcome() == OpKind::Fail {
            let why = t.str_field("error").unwrap_or("handler failed");
            f.anomaly(
                "missed-tick",
                format!(
                    "{} {} scheduled_ms={} at {}: {why}",
                    t.str_field("cron").unwrap_or("?"),
                    if h.faulted(t.t, t.done_t().unwrap_or(t.t)) {
                        "(fault active)"
                    } else {
                        "(no fault active)"
                    },
                    t.u64_field("scheduled_ms").unwrap_or(0),
                    secs(t.t)
                ),
            );
        }
    }
}

/// Why a verdict on status probes alone is UNKNOWN, if it is.
fn probes_unknown(h: &HistoryView, advanced_healed: bool) -> Option<String> {
    if h.healed_from.is_none() {
        Some("the run never healed: a fault was still active at the end".to_owned())
    } else if !advanced_healed {
        Some("no status probe saw last_run advance after the last fault was cleared".to_owned())
    } else {
        None
    }
}

/// What the healed window showed: ticks answered ok in it, status reads, and whether one saw
/// `last_run` advance in it.
struct Healed {
    ok: u64,
    probed: u64,
    advanced: bool,
}

/// Why a verdict on `ticks` fired ticks (`ok` answered ok, `info` unanswered) is UNKNOWN, if
/// it is.
fn ticks_unknown(
    h: &HistoryView,
    ticks: usize,
    ok: u64,
    info: u64,
    heal: &Healed,
) -> Option<String> {
    let healed_ok = heal.ok;
    if ticks == 0 {
        Some("no cron tick was fired and no status was read".to_owned())
    } else if h.healed_from.is_none() {
        Some("the run never healed: a fault was still active at the end".to_owned())
    } else if healed_ok == 0 {
        Some(format!(
            "no tick answered ok after the last fault was cleared ({ticks} ticks: {ok} ok, {info} unanswered)"
        ))
    } else if heal.probed > 0 && !heal.advanced {
        Some(format!(
            "{healed_ok} ticks answered ok after the heal, but no status probe saw last_run advance then"
        ))
    } else {
        None
    }
}

/// Gaps between runs per cron expression, in scheduled ms.
fn gaps(h: &HistoryView, cfg: &CronConfig, ticks: &[&Operation], f: &mut Findings) {
    let mut by_cron: BTreeMap<&str, Vec<&Operation>> = BTreeMap::new();
    for t in ticks {
        if t.u64_field("scheduled_ms").is_some() {
            by_cron
                .entry(t.str_field("cron").unwrap_or(""))
                .or_default()
                .push(t);
        }
    }
    let (mut max_gap, mut max_fault_gap) = (0u64, 0u64);
    for (cron, mut list) in by_cron {
        list.sort_by_key(|t| t.u64_field("scheduled_ms"));
        // Points that bound a gap: ticks that may have run, and the outermost ticks (which
        // bound a run of failures at either end from below).
        let last = list.len() - 1;
        let points: Vec<&Operation> = list
            .iter()
            .enumerate()
            .filter(|(i, t)| t.may_have_happened() || *i == 0 || *i == last)
            .map(|(_, t)| *t)
            .collect();
        for w in points.windows(2) {
            let (a, b) = (w[0], w[1]);
            let gap =
                b.u64_field("scheduled_ms").unwrap_or(0) - a.u64_field("scheduled_ms").unwrap_or(0);
            let during_fault = h.faulted(a.t, b.t);
            max_gap = max_gap.max(gap);
            if during_fault {
                max_fault_gap = max_fault_gap.max(gap);
            }
            if let Some(bound) = cfg.max_gap_ms.filter(|b| gap > *b) {
                f.anomaly(
                    "max-gap",
                    format!(
                        "{cron}: no run from scheduled_ms={} ({}) to scheduled_ms={} ({}): {gap} ms > {bound} ms{}",
                        a.u64_field("scheduled_ms").unwrap_or(0),
                        secs(a.t),
                        b.u64_field("scheduled_ms").unwrap_or(0),
                        secs(b.t),
                        if during_fault { ", while a fault was active" } else { "" }
                    ),
                );
            }
        }
    }
    f.set("max_gap_ms", max_gap);
    f.set("max_gap_during_faults_ms", max_fault_gap);
}

/// Status probes: `runs` and `last_run` between consecutive probes; without ticks, the gaps
/// between the `last_run` values read. Returns whether a probe completed in the healed window
/// read a `last_run` newer than every probe before the window.
fn probes(h: &HistoryView, cfg: &CronConfig, ticks: &[&Operation], f: &mut Findings) -> bool {
    let mut probes: Vec<&Operation> = h
        .ops_of("cron-status", "status")
        .filter(|p| p.is_ok())
        .collect();
    probes.sort_by_key(|p| p.t);
    f.set("probes_ok", probes.len() as u64);
    for (i, p2) in probes.iter().enumerate() {
        let Some(p2_done) = p2.done_t() else { continue };
        // Only probes that completed before p2 was invoked are ordered before it.
        for p1 in probes[..i].iter().rev() {
            let Some(p1_done) = p1.done_t() else { continue };
            if p1_done >= p2.t {
                continue;
            }
            compare_probes(p1, p2, p2_done, ticks, f);
            // The nearest ordered probe is enough: order is transitive.
            break;
        }
    }
    let before_heal = probes
        .iter()
        .filter(|p| !h.healed(p.t))
        .filter_map(|p| p.u64_field("last_run"))
        .max();
    let advanced_healed = probes.iter().any(|p| {
        h.healed(p.t)
            && p.u64_field("last_run")
                .is_some_and(|l| before_heal.is_none_or(|b| l > b))
    });
    if ticks.is_empty() {
        last_run_gaps(h, cfg, &probes, f);
    }
    advanced_healed
}

/// Probe `p1`, completed before probe `p2` (completed at `p2_done`) was invoked: `last_run`
/// and `runs` must not go back, and `runs` must not advance by more than the ticks that may
/// have run between them.
fn compare_probes(
    p1: &Operation,
    p2: &Operation,
    p2_done: std::time::Duration,
    ticks: &[&Operation],
    f: &mut Findings,
) {
    let (lr1, lr2) = (p1.u64_field("last_run"), p2.u64_field("last_run"));
    if let Some(a) = lr1 {
        if lr2.is_none_or(|b| b < a) {
            f.anomaly(
                "nonmonotonic-last-run",
                format!(
                    "last_run {a} read at {} then {} read at {}",
                    secs(p1.t),
                    lr2.map_or("null".to_owned(), |b| b.to_string()),
                    secs(p2.t)
                ),
            );
        }
    }
    let (r1, r2) = (p1.u64_field("runs"), p2.u64_field("runs"));
    if let (Some(r1), Some(r2)) = (r1, r2) {
        if r2 < r1 {
            f.anomaly(
                "nonmonotonic-runs",
                format!(
                    "runs {r1} read at {} then {r2} read at {}",
                    secs(p1.t),
                    secs(p2.t)
                ),
            );
        } else {
            // Ticks whose effect may fall between the two reads.
            let may_run = ticks
                .iter()
                .filter(|t| {
                    t.may_have_happened() && t.t < p2_done && t.done_t().is_none_or(|d| d > p1.t)
                })
                .count() as u64;
            if r2 - r1 > may_run {
                f.anomaly(
                    "duplicate-run",
                    format!(
                        "runs went from {r1} ({}) to {r2} ({}) but at most {may_run} ticks may have run in between",
                        secs(p1.t),
                        secs(p2.t)
                    ),
                );
            }
        }
    }
}

/// Judging probes alone: the gaps between the distinct `last_run` values read.
fn last_run_gaps(h: &HistoryView, cfg: &CronConfig, probes: &[&Operation], f: &mut Findings) {
    let mut seen: Vec<(u64, &Operation)> = probes
        .iter()
        .filter_map(|p| p.u64_field("last_run").map(|l| (l, *p)))
        .collect();
    seen.sort_by_key(|(l, _)| *l);
    seen.dedup_by_key(|(l, _)| *l);
    let mut max_gap = 0;
    for w in seen.windows(2) {
        let ((a, pa), (b, pb)) = (w[0], w[1]);
        max_gap = max_gap.max(b - a);
        if let Some(bound) = cfg.max_gap_ms.filter(|bound| b - a > *bound) {
            f.anomaly(
                "max-gap",
                format!(
                    "last_run went from {a} (read at {}) to {b} (read at {}): {} ms > {bound} ms{}",
                    secs(pa.t),
                    secs(pb.t),
                    b - a,
                    if h.faulted(pa.t, pb.t) {
                        ", while a fault was active"
                    } else {
                        ""
                    }
                ),
            );
        }
    }
    f.set("max_gap_ms", max_gap);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::Verdict;
    use crate::check::testing::H;
    use serde_json::json;

    const CRON: &str = "*/1 * * * *";
    const T0: u64 = 1_795_428_060_000;

    /// Tick `n` (scheduled at T0 + n minutes) invoked at `n` × 1000 ms run time, taking 100 ms.
    fn tick(h: H, n: u64, kind: OpKind) -> H {
        let v = json!({"cron": CRON, "scheduled_ms": T0 + n * 60_000});
        let mut done = v.clone();
        if kind == OpKind::Fail {
            done["error"] = json!("the scheduled handler threw");
        }
        h.op(n * 1000, "cron", OpKind::Invoke, "tick", v).op(
            n * 1000 + 100,
            "cron",
            kind,
            "tick",
            done,
        )
    }

    fn probe(h: H, ms: u64, last_run: Option<u64>, runs: u64) -> H {
        h.op(ms, "cron-status", OpKind::Invoke, "status", json!({}))
            .op(
                ms + 10,
                "cron-status",
                OpKind::Ok,
                "status",
                json!({"last_run": last_run, "runs": runs}),
            )
    }

    fn cfg() -> CronConfig {
        CronConfig {
            max_gap_ms: Some(120_000),
        }
    }

    #[test]
    fn a_clean_run_passes() {
        let mut h = H::default();
        for n in 0..10 {
            h = tick(h, n, OpKind::Ok);
            h = probe(h, n * 1000 + 500, Some(T0 + n * 60_000), n + 1);
        }
        let r = check(&h.view(), &cfg());
        assert_eq!(r.verdict, Verdict::Pass, "{r:?}");
        assert_eq!(r.counts["max_gap_ms"], 60_000);
        assert_eq!(r.counts["ticks_ok"], 10);
    }

    #[test]
    fn failed_ticks_during_a_fault_are_missed_and_make_a_gap_while_faulted() {
        let mut h = H::default().fault(1_500, 0).clear(5_500, 0);
        for n in 0..10 {
            let k = if (2..=5).contains(&n) {
                OpKind::Fail
            } else {
                OpKind::Ok
            };
            h = tick(h, n, k);
        }
        let r = check(&h.view(), &cfg());
        assert_eq!(r.verdict, Verdict::Fail, "{r:?}");
        assert_eq!(r.counts["missed-tick"], 4);
        assert_eq!(r.counts["max-gap"], 1);
        assert_eq!(r.counts["max_gap_during_faults_ms"], 300_000);
        assert!(r.reason.contains("missed-tick") && r.reason.contains("max-gap"));
        assert!(
            r.evidence
                .iter()
                .any(|e| e.contains("while a fault was active"))
        );
    }

    #[test]
    fn info_ticks_are_neither_missed_nor_gaps() {
        let mut h = H::default();
        for n in 0..6 {
            h = tick(h, n, if n % 2 == 1 { OpKind::Info } else { OpKind::Ok });
        }
        // A tick left outstanding at the end is not missed either.
        h = h.op(
            6_000,
            "cron",
            OpKind::Invoke,
            "tick",
            json!({"cron": CRON, "scheduled_ms": T0 + 360_000}),
        );
        let r = check(&h.view(), &cfg());
        assert_eq!(r.verdict, Verdict::Pass, "{r:?}");
        assert_eq!(r.counts["ticks_info"], 3);
        assert_eq!(r.counts["ticks_incomplete"], 1);
    }

    #[test]
    fn unanswered_ticks_after_the_heal_are_no_evidence_of_a_run() {
        let mut h = H::default().fault(500, 0).clear(2_500, 0);
        for n in 0..6 {
            h = tick(h, n, if n < 2 { OpKind::Ok } else { OpKind::Info });
        }
        let r = check(&h.view(), &cfg());
        assert_eq!(r.verdict, Verdict::Unknown, "{r:?}");
        assert!(
            r.reason.contains("no tick answered ok after"),
            "{}",
            r.reason
        );
        assert!(r.reason.contains("4 unanswered"), "{}", r.reason);
    }

    #[test]
    fn with_status_probes_a_pass_needs_last_run_to_advance_after_the_heal() {
        let mut h = H::default().fault(500, 0).clear(1_500, 0);
        for n in 0..4 {
            h = tick(h, n, OpKind::Ok);
        }
        // The Worker answers ok but its durable last_run never moves.
        let stuck = probe(probe(h.clone(), 1_000, Some(T0), 1), 3_900, Some(T0), 1);
        let r = check(&stuck.view(), &cfg());
        assert_eq!(r.verdict, Verdict::Unknown, "{r:?}");
        assert!(
            r.reason.contains("no status probe saw last_run advance"),
            "{}",
            r.reason
        );
        let h = probe(probe(h, 1_000, Some(T0), 1), 3_900, Some(T0 + 180_000), 4);
        let r = check(&h.view(), &cfg());
        assert_eq!(r.verdict, Verdict::Pass, "{r:?}");
        assert!(
            r.reason.contains("last_run advanced after the heal"),
            "{}",
            r.reason
        );
    }

    #[test]
    fn failures_up_to_the_end_still_count_as_a_gap() {
        let mut h = H::default();
        for n in 0..6 {
            h = tick(h, n, if n < 2 { OpKind::Ok } else { OpKind::Fail });
        }
        let r = check(&h.view(), &cfg());
        assert_eq!(r.counts["max_gap_ms"], 240_000);
        assert_eq!(r.counts["max-gap"], 1);
    }

    #[test]
    fn runs_advancing_faster_than_ticks_is_a_duplicate_run() {
        let mut h = tick(H::default(), 0, OpKind::Ok);
        h = probe(h, 500, Some(T0), 1);
        h = tick(h, 1, OpKind::Ok);
        h = probe(h, 1_500, Some(T0 + 60_000), 3);
        let r = check(&h.view(), &cfg());
        assert_eq!(r.verdict, Verdict::Fail, "{r:?}");
        assert_eq!(r.counts["duplicate-run"], 1);
    }

    #[test]
    fn an_info_tick_between_probes_may_explain_a_run() {
        let mut h = tick(H::default(), 0, OpKind::Ok);
        h = probe(h, 500, Some(T0), 1);
        h = tick(h, 1, OpKind::Ok);
        h = tick(h, 2, OpKind::Info);
        h = probe(h, 2_500, Some(T0 + 120_000), 3);
        let r = check(&h.view(), &cfg());
        assert_eq!(r.verdict, Verdict::Pass, "{r:?}");
    }

    #[test]
    fn last_run_going_backwards_is_nonmonotonic() {
        let mut h = tick(H::default(), 0, OpKind::Ok);
        h = tick(h, 1, OpKind::Ok);
        h = probe(h, 1_500, Some(T0 + 60_000), 2);
        h = probe(h, 1_600, Some(T0), 2);
        h = probe(h, 1_700, None, 1);
        let r = check(&h.view(), &cfg());
        assert_eq!(r.verdict, Verdict::Fail, "{r:?}");
        assert_eq!(r.counts["nonmonotonic-last-run"], 2);
        assert_eq!(r.counts["nonmonotonic-runs"], 1);
    }

    #[test]
    fn a_run_that_never_heals_is_unknown() {
        let mut h = H::default().fault(100, 0);
        for n in 0..3 {
            h = tick(h, n, OpKind::Ok);
        }
        let r = check(&h.view(), &cfg());
        assert_eq!(r.verdict, Verdict::Unknown, "{r:?}");
        assert!(r.reason.contains("never healed"), "{}", r.reason);
    }

    #[test]
    fn no_tick_after_the_heal_is_unknown_and_no_ticks_at_all_too() {
        let mut h = H::default().fault(100, 0).clear(5_000, 0);
        for n in 0..3 {
            h = tick(h, n, OpKind::Info);
        }
        let r = check(&h.view(), &cfg());
        assert_eq!(r.verdict, Verdict::Unknown, "{r:?}");
        assert_eq!(
            check(&H::default().view(), &cfg()).verdict,
            Verdict::Unknown
        );
    }

    #[test]
    fn a_proven_miss_fails_even_if_the_run_never_healed() {
        let h = tick(H::default().fault(0, 0), 1, OpKind::Fail);
        assert_eq!(check(&h.view(), &cfg()).verdict, Verdict::Fail);
    }
}
