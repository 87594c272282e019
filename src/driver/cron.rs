//! Firing a local Worker's cron triggers during a run, beside the lock, queue and status
//! drivers: which expressions (the scenario's or the Worker's), the ticks that fall inside the
//! run, and the task that fires them ([`crate::cron::drive`]); or, with `crons = "recorded"`
//! on a replay phase, the capture's own cron events ([`crate::replay::crons`]). Cron arithmetic itself is in
//! [`crate::cron`], shared with `audit` and `watch`.

use std::time::{Duration, Instant};

use croner::Cron;
use tokio::sync::mpsc::UnboundedSender;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::history::Event;
use crate::scenario::plan::Plan;
use crate::target::Running;

/// Most cron ticks one run fires (a day of every-minute ticks is 1,440).
const MAX_CRON_TICKS: usize = 100_000;

/// What the cron driver needs of the run.
pub struct Firing {
    /// The engine's start (run time 0).
    pub run_start: Instant,
    /// Where operations are recorded.
    pub history: UnboundedSender<(Duration, Event)>,
    /// Stops firing.
    pub stop: CancellationToken,
    /// The run's planned length.
    pub planned_end: Duration,
}

/// The crons of a run, parsed: the scenario's (parsed by validation) or the Worker's own.
#[derive(Debug, Clone, Default)]
pub struct Schedules {
    /// Each expression as written, with its parsed form.
    pub valid: Vec<(String, Cron)>,
    /// Why each of the Worker's expressions that does not parse was left out.
    pub invalid: Vec<String>,
}

/// Starts firing the local Worker's crons on the run clock, if the target is a Worker and the
/// plan wants it. An expression of the Worker's that does not parse is not fired, with a note.
pub fn start(
    plan: &Plan,
    target: &Running,
    schedules: &Schedules,
    firing: Firing,
    notes: &mut Vec<String>,
) -> Option<JoinHandle<()>> {
    let (worker, kv) = (target.worker()?, target.mock_kv()?);
    if crate::replay::crons::recorded(plan) {
        return start_recorded(plan, worker, firing);
    }
    start_with(plan, worker, kv.clock().now_ms(), schedules, firing, notes)
}

/// Fires the capture's cron events of `crons = "recorded"` replay phases, each at its scaled
/// time in its phase with its own expression and `scheduledTime`, instead of the schedules'
/// ticks (`[cron] fire = false` still turns firing off).
fn start_recorded(
    plan: &Plan,
    worker: std::sync::Arc<dyn crate::cron::FireCron>,
    firing: Firing,
) -> Option<JoinHandle<()>> {
    if !plan.cron.fire {
        return None;
    }
    let ticks = crate::replay::crons::ticks(plan, MAX_CRON_TICKS)
        .into_iter()
        .filter(|(at, _)| *at < firing.planned_end)
        .map(|(at, t)| (firing.run_start + at, t))
        .collect();
    Some(tokio::spawn(crate::cron::drive_at(
        worker,
        ticks,
        firing.run_start,
        firing.history,
        firing.stop,
    )))
}

/// Starts firing `schedules` through `worker` (a local Worker, or a canary's shim) on the run
/// clock, whose time zero is `start_ms` (ms since the epoch), if the plan wants it.
pub fn start_with(
    plan: &Plan,
    worker: std::sync::Arc<dyn crate::cron::FireCron>,
    start_ms: u64,
    schedules: &Schedules,
    firing: Firing,
    notes: &mut Vec<String>,
) -> Option<JoinHandle<()>> {
    if !plan.cron.fire {
        return None;
    }
    for msg in &schedules.invalid {
        notes.push(format!("the Worker's {msg}; it is not fired"));
    }
    let crons = &schedules.valid;
    let clock = crate::cron::RunClock {
        start: Instant::now(),
        start_ms,
        speedup: plan.speedup,
    };
    let span_ms = (firing.planned_end.as_secs_f64() * plan.speedup * 1000.0) as u64;
    let ticks = crate::cron::ticks(
        crons,
        clock.start_ms,
        clock.start_ms + span_ms,
        MAX_CRON_TICKS,
    );
    Some(tokio::spawn(crate::cron::drive(
        worker,
        ticks,
        clock,
        firing.run_start,
        firing.history,
        firing.stop,
    )))
}

/// The crons of the run: the scenario's `[cron] schedules`, else a local Worker's own
/// `triggers.crons`, which are first seen here (the Worker reports them when it is ready) and
/// so parsed here.
pub fn schedules(plan: &Plan, target: &Running) -> Schedules {
    match (&plan.cron.schedules, target.worker()) {
        (Some(s), _) => Schedules {
            valid: s.clone(),
            invalid: Vec::new(),
        },
        (None, Some(w)) => {
            let mut out = Schedules::default();
            for e in &w.ready().crons {
                match crate::cron::parse(e) {
                    Ok(c) => out.valid.push((e.clone(), c)),
                    Err(msg) => out.invalid.push(msg),
                }
            }
            out
        }
        (None, None) => Schedules::default(),
    }
}
