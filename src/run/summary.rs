//! The one builder of a run's [`Summary`], for runs that sent load and for runs that ended
//! before any: what was measured and judged goes in as [`Facts`]; faults that hit nothing and a
//! target that died are weighed against the verdicts here.
//!
//! Does not own: measuring (the recorder), judging (`check`), or writing (`report`).

use std::time::{Duration, SystemTime};

use super::RunError;
use super::setup::Ended;
use super::stop;
use crate::check::{CheckResult, Verdict};
use crate::engine::PhaseCounts;
use crate::metrics::windows::WindowTotals;
use crate::metrics::{Recorder, Totals, thresholds};
use crate::scenario::plan::{Load, Plan};
use crate::summary::{
    ErrorSample, FaultWindow, PhaseInfo, Resources, ScenarioInfo, StopInfo, StopReason, Summary,
    TargetInfo,
};

/// What a run measured and judged, as the summary needs it.
pub struct Facts {
    /// What load went to.
    pub target: TargetInfo,
    /// Wall-clock end.
    pub ended: SystemTime,
    /// From the engine's start to the end of the run (zero when nothing was sent).
    pub duration: Duration,
    /// The planned length.
    pub planned: Duration,
    /// Why and when sending stopped.
    pub stop: StopInfo,
    /// How long load was sent (rates and thresholds are per this).
    pub sending: Duration,
    /// Per request (scenario order), then all requests.
    pub per: Vec<Totals>,
    /// All requests.
    pub all: Totals,
    /// The same by window, when the run has faults (for thresholds with `during`).
    pub windows: Vec<WindowTotals>,
    /// Error samples (not yet redacted).
    pub errors: Vec<ErrorSample>,
    /// Error answers (not yet redacted).
    pub error_answers: Vec<crate::report::answers::ErrorAnswer>,
    /// Per phase.
    pub counts: Vec<PhaseCounts>,
    /// Process readings at the end.
    pub resources: Resources,
    /// Check verdicts.
    pub checks: Vec<CheckResult>,
    /// Fault windows.
    pub faults: Vec<FaultWindow>,
    /// Warnings met on the way (a Worker without KV bindings).
    pub warnings: Vec<String>,
}

/// The report's stop section from how sending ended.
pub fn stop_info(ended: stop::Ended, unfinished: u64) -> StopInfo {
    StopInfo {
        reason: ended.reason,
        detail: match ended.reason {
            StopReason::Interrupted => {
                Some(format!("interrupted after {:.1}s", ended.at.as_secs_f64()))
            }
            StopReason::Aborted | StopReason::TargetFailed => ended.detail,
            StopReason::Completed | StopReason::TargetUnreachable => None,
        },
        unfinished,
    }
}

/// The facts of a run that ended before any load: nothing measured, nothing judged.
pub fn nothing_sent(plan: &Plan, ended: &Ended) -> Result<Facts, RunError> {
    let recorder = Recorder::new(crate::replay::recorder_names(plan), 1, None)
        .map_err(|e| RunError::Environment(e.to_string()))?;
    let (per, all, _) = recorder.finish();
    Ok(Facts {
        target: ended.target.clone(),
        ended: SystemTime::now(),
        duration: Duration::ZERO,
        planned: plan.duration(),
        stop: StopInfo {
            reason: ended.reason,
            detail: Some(plan.redactor.redact(&ended.detail).into_owned()),
            unfinished: 0,
        },
        sending: Duration::ZERO,
        per,
        all,
        windows: Vec::new(),
        errors: Vec::new(),
        error_answers: Vec::new(),
        counts: Vec::new(),
        resources: resources(0),
        checks: Vec::new(),
        faults: Vec::new(),
        warnings: Vec::new(),
    })
}

/// Process readings now.
pub fn resources(engine_threads: usize) -> Resources {
    Resources {
        peak_rss_kib: crate::resources::peak_rss_kib(),
        cpu_s: crate::resources::cpu_seconds(),
        engine_threads: engine_threads as u64,
    }
}

/// The summary of a run that started at `started` (wall clock).
pub fn build(plan: &Plan, started: SystemTime, f: Facts) -> Summary {
    let sending_s = f.sending.as_secs_f64();
    let mut errors = f.errors;
    for e in &mut errors {
        e.message = plan.redactor.redact(&e.message).into_owned();
    }
    let never_started = f.stop.reason == StopReason::TargetUnreachable && f.all.completed() == 0;
    let mut summary = Summary {
        schema_version: crate::summary::SCHEMA_VERSION,
        kvchaos_version: env!("CARGO_PKG_VERSION").to_owned(),
        scenario: ScenarioInfo {
            name: plan.name.clone(),
            description: plan.description.clone(),
            file: plan.source.display().to_string(),
            seed: plan.seed,
        },
        target: f.target,
        started_at: humantime::format_rfc3339_millis(started).to_string(),
        ended_at: humantime::format_rfc3339_millis(f.ended).to_string(),
        duration_s: f.duration.as_secs_f64(),
        planned_duration_s: f.planned.as_secs_f64(),
        stop: f.stop,
        phases: phase_infos(plan, &f.counts),
        overall: f.all.stats("", "", sending_s),
        requests: crate::replay::row_keys(plan)
            .iter()
            .zip(&f.per)
            .map(|((method, path), t)| t.stats(method, path, sending_s))
            .collect(),
        // A target that never started measured nothing: no threshold is judged on no data.
        thresholds: if never_started {
            Vec::new()
        } else {
            thresholds::evaluate(&plan.thresholds, &f.per, &f.all, sending_s, &f.windows)
        },
        errors,
        error_answers: {
            let mut a = f.error_answers;
            crate::report::answers::redact(&mut a, &plan.redactor);
            a
        },
        resources: f.resources,
        checks: f.checks,
        warnings: f.warnings,
        faults: f.faults,
        shard: None,
    };
    let idle = weigh_faults(&summary.faults, &mut summary.checks);
    summary.warnings.extend(idle);
    if summary.stop.reason == StopReason::TargetFailed {
        let why = summary.stop.detail.clone().unwrap_or_default();
        downgrade_passes(&mut summary.checks, &why);
    }
    summary
}

/// A run cut short as target-failed (a dead Worker, an unwritable report, an answer not from
/// the canary) proves nothing: a PASS becomes UNKNOWN, saying why.
fn downgrade_passes(checks: &mut [CheckResult], why: &str) {
    for c in checks.iter_mut().filter(|c| c.verdict == Verdict::Pass) {
        c.verdict = Verdict::Unknown;
        c.reason = format!("the run was cut short ({why}); before that: {}", c.reason);
    }
}

/// Faults that reached no KV operation tested nothing: each is a warning, and every verdict
/// says so in its reason (the checks judge the whole run, so every window is theirs).
fn weigh_faults(windows: &[FaultWindow], checks: &mut [CheckResult]) -> Vec<String> {
    let idle: Vec<String> = windows
        .iter()
        .filter(|w| w.kv_ops == Some(0))
        .map(|w| {
            format!(
                "fault #{} ({}), set at {:.1}s",
                w.index + 1,
                w.label,
                w.set_at_s
            )
        })
        .collect();
    if idle.is_empty() {
        return Vec::new();
    }
    let list = idle.join("; ");
    for c in checks.iter_mut() {
        c.reason = format!(
            "{} (but the fault reached no KV operation: {list})",
            c.reason
        );
    }
    idle.iter()
        .map(|f| {
            format!(
                "{f} reached no KV operation: the run did not test what it meant to; check its ops, prefix and namespace against the Worker's KV calls"
            )
        })
        .collect()
}

fn phase_infos(plan: &Plan, counts: &[PhaseCounts]) -> Vec<PhaseInfo> {
    plan.phases
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let c = counts.get(i).cloned().unwrap_or_default();
            let (kind, rate_from, rate_to, vus, mif) = match p.load {
                Load::Rate {
                    from,
                    to,
                    max_in_flight,
                } => (
                    if from == to { "rate" } else { "ramp" },
                    Some(from),
                    Some(to),
                    None,
                    Some(max_in_flight as u64),
                ),
                Load::Vus(n) => ("vus", None, None, Some(n as u64), None),
                Load::Pause => ("pause", None, None, None, None),
                Load::Replay(ref r) => ("replay", None, None, None, Some(r.max_in_flight as u64)),
            };
            PhaseInfo {
                name: p.name.clone(),
                kind: kind.to_owned(),
                duration_s: p.duration.as_secs_f64(),
                rate_from,
                rate_to,
                vus,
                max_in_flight: mif,
                sent: c.sent,
                dropped: c.dropped,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_cut_short_turns_every_pass_into_unknown_and_keeps_the_rest() {
        let result = |verdict| crate::check::CheckResult {
            name: "cron".to_owned(),
            verdict,
            reason: "3 ticks ok".to_owned(),
            evidence: Vec::new(),
            counts: Default::default(),
        };
        let mut checks = vec![result(Verdict::Pass), result(Verdict::Fail)];
        downgrade_passes(&mut checks, "cannot write history.jsonl at 4.0s");
        assert_eq!(checks[0].verdict, Verdict::Unknown);
        assert_eq!(
            checks[0].reason,
            "the run was cut short (cannot write history.jsonl at 4.0s); before that: 3 ticks ok"
        );
        assert_eq!(checks[1].verdict, Verdict::Fail);
        assert_eq!(checks[1].reason, "3 ticks ok");
    }

    #[test]
    fn a_fault_that_reached_no_kv_operation_is_a_warning_on_every_verdict() {
        let window = |index: u64, kv_ops: Option<u64>| FaultWindow {
            index,
            label: "daily-limit put".to_owned(),
            set_at_s: 6.0,
            cleared_at_s: Some(16.0),
            kv_ops,
        };
        let result = |name: &str| crate::check::CheckResult {
            name: name.to_owned(),
            verdict: crate::check::Verdict::Pass,
            reason: "fine".to_owned(),
            evidence: Vec::new(),
            counts: Default::default(),
        };
        let mut checks = vec![result("cron"), result("lock")];
        assert!(weigh_faults(&[window(0, Some(12)), window(1, None)], &mut checks).is_empty());
        assert_eq!(checks[0].reason, "fine");
        let w = weigh_faults(&[window(0, Some(12)), window(1, Some(0))], &mut checks);
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(w[0].starts_with("fault #2 (daily-limit put)"), "{w:?}");
        for c in &checks {
            assert!(
                c.reason
                    .contains("the fault reached no KV operation: fault #2"),
                "{}",
                c.reason
            );
            assert_eq!(c.verdict, crate::check::Verdict::Pass);
        }
    }
}
