//! Checker wiring: which checks a run's plan asks for, each configured from the plan, judged
//! on the run's history. The run calls [`judge`] once a second for the dashboard and once at the
//! end for the report.

use std::time::Duration;

use super::{CheckResult, WorkerClock};
use crate::history::Event;
use crate::scenario::plan::Plan;

/// How far a local Worker's clock may be from kvchaos's (same machine: timer coarsening only).
pub const WORKER_CLOCK_TOLERANCE_MS: u64 = 1_000;

/// The checks that apply: cron when ticks were fired or its status probed, lock, queue,
/// idempotency and ratelimit when the scenario drives them.
pub fn judge(
    plan: &Plan,
    events: &[(Duration, Event)],
    clock: Option<WorkerClock>,
    queue_prefix: Option<&str>,
) -> Vec<CheckResult> {
    use super::{cron, lock, queue};
    let view = super::HistoryView::new(events);
    let cron_ran = events.iter().any(|(_, e)| {
        matches!(e, Event::Op { process, .. } if process == "cron" || process == "cron-status")
    });
    let mut out = Vec::new();
    if cron_ran {
        let cfg = cron::CronConfig {
            max_gap_ms: plan.cron.max_gap.map(|d| d.as_millis() as u64),
        };
        out.push(cron::check(&view, &cfg));
    }
    if let Some(l) = &plan.lock {
        let cfg = lock::LockConfig {
            max_starve: l.max_starve,
            tolerance_ms: l.tolerance.as_millis() as u64,
            clock,
        };
        out.push(lock::check(&view, &cfg));
    }
    if let Some(q) = &plan.queue {
        let cfg = queue::QueueConfig {
            mode: q.mode,
            max_drain: q.max_drain,
            tolerance_ms: WORKER_CLOCK_TOLERANCE_MS,
            max_stall: q.max_stall,
            ours: queue_prefix.map(str::to_owned),
        };
        out.push(queue::check(&view, &cfg));
    }
    if plan.idempotency.is_some() {
        out.push(super::idempotency::check(&view));
    }
    if let Some(r) = &plan.ratelimit {
        out.push(super::ratelimit::check(
            &view,
            &super::ratelimit::RateLimitConfig {
                limit: r.limit,
                // The window is run-clock time (the Worker judges it on its own Date, which
                // runs `speedup` times fast); admissions are timed in real time.
                window: r.window.div_f64(plan.speedup),
                tolerance: r.tolerance,
                on_fault: r.on_fault,
            },
        ));
    }
    out
}
