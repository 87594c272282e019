//! The alert state machine: a pure function of (plan, previous state, observations, now) to
//! (next state, notices). Owns alert hygiene: an alert fires after N consecutive failing
//! evaluations, is announced once, and its recovery once (with the missed-slot count of a
//! cron); nothing is announced inside a mute window, and what is still true when the window
//! ends is announced then. Does not own judging one observation ([`super::judge`]), I/O, or
//! delivery ([`super::notify`]; an undelivered notice is handed back with [`undelivered`]).
//!
//! Announcing is level-triggered: a notice goes out whenever "the world was told the alert is
//! active" (`announced`) differs from "the alert is active", outside mute windows. So an alert
//! that fires and recovers inside one mute window is never announced, and a notice whose
//! delivery failed is simply due again at the next evaluation.

use super::config::{CheckKind, Severity, WatchPlan};
use super::judge::{Judgement, judge};
use super::probe::Observation;
use super::state::{ActiveAlert, CheckState, MAX_EVIDENCE, Recovery, State, bounded};

/// What a notice announces.
#[derive(Debug, Clone, PartialEq)]
pub enum NoticeKind {
    /// The alert fired (or is announced after a mute window).
    Fired {
        /// How bad, at announcement time.
        severity: Severity,
    },
    /// The check is up again.
    Recovered {
        /// Cron checks: expected slots that passed without a run.
        missed_slots: Option<u64>,
        /// When it was seen up again.
        at_ms: u64,
    },
}

/// One notification to send.
#[derive(Debug, Clone, PartialEq)]
pub struct Notice {
    /// The check's name.
    pub check: String,
    /// Fired or recovered.
    pub kind: NoticeKind,
    /// When the failure began.
    pub since_ms: u64,
    /// The evaluation time that produced it.
    pub now_ms: u64,
    /// What triggered it (or the recovering reading), one line.
    pub summary: String,
    /// Values read and times.
    pub evidence: Vec<String>,
}

/// One check's standing after an evaluation, for printing and exit codes.
#[derive(Debug, Clone, PartialEq)]
pub struct Standing {
    /// The check's name.
    pub check: String,
    /// This evaluation's judgement (`None` when the check had no observation).
    pub judgement: Option<Judgement>,
    /// Failing evaluations in a row.
    pub consecutive_failures: u32,
    /// Whether an alert is active.
    pub alert_active: bool,
}

/// The result of one evaluation.
#[derive(Debug, Clone, PartialEq)]
pub struct Evaluation {
    /// The state for the next evaluation.
    pub state: State,
    /// Notices to send now.
    pub notices: Vec<Notice>,
    /// Every check's standing, in plan order.
    pub standings: Vec<Standing>,
}

impl Evaluation {
    /// Whether any alert is active (muted or not).
    pub fn any_active(&self) -> bool {
        self.standings.iter().any(|s| s.alert_active)
    }
}

/// Whether `now_ms` is inside one of the plan's mute windows.
pub fn muted(plan: &WatchPlan, now_ms: u64) -> bool {
    plan.mutes.iter().any(|m| m.contains(now_ms))
}

/// Evaluates every check of `plan`: `observations[i]` belongs to `plan.checks[i]` (`None`:
/// not observed this time, the check's state is carried over). Checks no longer in the plan
/// are dropped from the state.
pub fn evaluate(
    plan: &WatchPlan,
    prev: &State,
    observations: &[Option<Observation>],
    now_ms: u64,
) -> Evaluation {
    let mut state = State::new();
    state.evaluated_ms = now_ms;
    let quiet = muted(plan, now_ms);
    let mut notices = Vec::new();
    let mut standings = Vec::new();
    for (i, check) in plan.checks.iter().enumerate() {
        let mut cs = prev
            .checks
            .get(&check.name)
            .cloned()
            .unwrap_or_else(|| CheckState {
                first_seen_ms: now_ms,
                ..CheckState::default()
            });
        let judgement = observations.get(i).and_then(Option::as_ref).map(|obs| {
            // Probe URLs may carry secrets: nothing unredacted reaches the state or a notice.
            let mut j = judge(check, &mut cs, obs, now_ms);
            let r = &plan.redactor;
            j.summary = r.redact(&j.summary).into_owned();
            j.evidence = j
                .evidence
                .iter()
                .map(|e| r.redact(e).into_owned())
                .collect();
            let alert_at = match check.kind {
                CheckKind::Cron { alert_at, .. } => alert_at,
                _ => Severity::Late,
            };
            step(
                &mut cs,
                &j,
                j.failing.filter(|s| *s >= alert_at),
                check.failures,
                &check.kind,
                now_ms,
            );
            j
        });
        if !quiet && let Some(n) = announce(&mut cs, &check.name, now_ms) {
            notices.push(n);
        }
        standings.push(Standing {
            check: check.name.clone(),
            judgement,
            consecutive_failures: cs.consecutive_failures,
            alert_active: cs.active.is_some(),
        });
        state.checks.insert(check.name.clone(), cs);
    }
    Evaluation {
        state: state.bounded(),
        notices,
        standings,
    }
}

/// Applies one judgement: counts failures, fires, escalates or clears the alert.
fn step(
    cs: &mut CheckState,
    j: &Judgement,
    failing: Option<Severity>,
    n: u32,
    kind: &CheckKind,
    now: u64,
) {
    cs.summary = bounded(&j.summary);
    let evidence: Vec<String> = j
        .evidence
        .iter()
        .take(MAX_EVIDENCE)
        .map(|e| bounded(e))
        .collect();
    match failing {
        Some(severity) => {
            cs.consecutive_failures = cs.consecutive_failures.saturating_add(1);
            let since = *cs
                .failing_since_ms
                .get_or_insert(j.since_ms.unwrap_or(now).min(now));
            if let Some(a) = &mut cs.active {
                a.severity = a.severity.max(severity);
                a.summary = bounded(&j.summary);
                a.evidence = evidence;
            } else if cs.consecutive_failures >= n {
                cs.recovery = None;
                cs.active = Some(ActiveAlert {
                    since_ms: since,
                    fired_ms: now,
                    severity,
                    summary: bounded(&j.summary),
                    evidence,
                    last_run_before_ms: cs.last_run_before(kind),
                });
            }
        }
        None => {
            cs.consecutive_failures = 0;
            cs.failing_since_ms = None;
            if let Some(a) = cs.active.take() {
                let missed_slots = match (kind, a.last_run_before_ms, cs.last_run_ms) {
                    (CheckKind::Cron { crons, .. }, Some(before), Some(after)) => {
                        Some(crate::cron::slots_between(crons, before, after, 100_000) as u64)
                    }
                    _ => None,
                };
                cs.recovery = Some(Recovery {
                    at_ms: now,
                    since_ms: a.since_ms,
                    missed_slots,
                    summary: bounded(&j.summary),
                    evidence,
                });
            }
        }
    }
}

impl CheckState {
    /// The last run known before this failure: for a cron check, the last run read (or, when
    /// it never ran, when watching began).
    fn last_run_before(&self, kind: &CheckKind) -> Option<u64> {
        matches!(kind, CheckKind::Cron { .. })
            .then(|| self.last_run_ms.unwrap_or(self.first_seen_ms))
    }
}

/// The notice due for `cs`, if the world's view differs from the truth; updates `announced`.
fn announce(cs: &mut CheckState, check: &str, now: u64) -> Option<Notice> {
    match (&cs.active, cs.announced) {
        (Some(a), false) => {
            cs.announced = true;
            Some(Notice {
                check: check.to_owned(),
                kind: NoticeKind::Fired {
                    severity: a.severity,
                },
                since_ms: a.since_ms,
                now_ms: now,
                summary: a.summary.clone(),
                evidence: a.evidence.clone(),
            })
        }
        (None, true) => {
            cs.announced = false;
            let r = cs.recovery.clone()?;
            Some(Notice {
                check: check.to_owned(),
                kind: NoticeKind::Recovered {
                    missed_slots: r.missed_slots,
                    at_ms: r.at_ms,
                },
                since_ms: r.since_ms,
                now_ms: now,
                summary: r.summary,
                evidence: r.evidence,
            })
        }
        _ => None,
    }
}

/// Hands back a notice no notifier took: it is due again at the next evaluation (unless the
/// truth changed meanwhile, e.g. an undelivered alert that recovered is then never announced).
pub fn undelivered(state: &mut State, notice: &Notice) {
    if let Some(cs) = state.checks.get_mut(&notice.check) {
        cs.announced = matches!(notice.kind, NoticeKind::Recovered { .. });
    }
}

#[cfg(test)]
mod tests;
