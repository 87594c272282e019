//! Starting a session: the recorder's files, the history, the engine, the crons and the
//! drivers, in that order, against a ready target.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::super::RunError;
use super::super::journal::Journal;
use super::super::setup::Ready;
use super::super::stop::Stop;
use super::Session;
use crate::canary::control::AnswerGuard;
use crate::driver::Drivers;
use crate::driver::cron::{Firing, Schedules};
use crate::engine::Engine;
use crate::history::Event;
use crate::lines::{WholeLines, WriteFailure};
use crate::metrics::Recorder;
use crate::scenario::plan::Plan;
use crate::target::Running;
use crate::timeline::Timeline;

impl Session {
    /// Starts the engine, the recorder's files, the drivers and the crons against `ready`.
    pub fn start(
        plan: Arc<Plan>,
        ready: Box<Ready>,
        report_dir: &Path,
        threads: usize,
        placement: crate::engine::Placement,
    ) -> Result<Session, RunError> {
        let Ready {
            target,
            endpoint,
            url,
            mut warnings,
            canary,
        } = *ready;
        let mut journal = open_journal(&plan, report_dir)?;
        let (mut recorder, hlog) = open_recorder(&plan, report_dir, threads, journal.files())?;
        let mut engine =
            Engine::start_placed(&plan, endpoint.clone(), threads, &recorder, placement)
                .map_err(|e| RunError::Environment(e.to_string()))?;
        let start = engine.start_instant();
        let started_ms = wall_ms();
        target.run_started(start);
        attach_hlog(&mut recorder, hlog, start);
        let planned_end = engine.planned_end();
        let heal = place_windows(&mut recorder, &plan, &target, start, planned_end);
        let run_started = Event::RunStarted {
            scenario: plan.name.clone(),
            seed: plan.seed,
        };
        journal.record(Duration::ZERO, run_started);
        let (history_tx, history_rx) = tokio::sync::mpsc::unbounded_channel();
        let drivers_stop = CancellationToken::new();
        let mut notes = Vec::new();
        let firing = Firing {
            run_start: start,
            history: history_tx.clone(),
            stop: drivers_stop.clone(),
            planned_end,
        };
        let (_, cron_task) = match &canary {
            Some(c) => start_canary_crons(&plan, c, started_ms, firing, &mut notes),
            None => start_crons(&plan, &target, firing, &mut notes),
        };
        let driver_guard = AnswerGuard::new(plan.canary.as_ref().map(|c| &*c.expect_script));
        let drivers = start_drivers(&plan, endpoint, history_tx, start, driver_guard.clone());
        if let Some(c) = &canary {
            warnings.extend(canary_lead(c, start));
        }
        Ok(Session {
            finished: Box::pin(engine.finished()),
            queue_prefix: drivers.queue_prefix(),
            timeline: Timeline::new(&plan.faults),
            stop: Stop::new(planned_end, plan.grace, !heal.is_zero()),
            heal_at: planned_end.saturating_sub(heal),
            plan,
            target,
            target_url: url,
            warnings,
            notes,
            engine,
            recorder,
            journal,
            drivers,
            drivers_stop,
            cron_task,
            history_rx,
            ticker: ticker(start),
            start,
            started_ms,
            last_tick: start,
            phase_seen: None,
            canary,
            driver_guard,
        })
    }
}

/// The lock, queue, idempotency and rate-limit drivers, reporting to `history`.
fn start_drivers(
    plan: &Plan,
    endpoint: crate::engine::client::Endpoint,
    history: tokio::sync::mpsc::UnboundedSender<(Duration, Event)>,
    run_start: Instant,
    guard: AnswerGuard,
) -> Drivers {
    let ctx = crate::driver::Ctx {
        endpoint,
        history,
        run_start,
        redactor: plan.redactor.clone(),
        seed: plan.seed,
        guard,
    };
    Drivers::start(plan, ctx)
}

/// `history.jsonl`, masking the plan's secrets.
fn open_journal(plan: &Plan, report_dir: &Path) -> Result<Journal, RunError> {
    Journal::create(&report_dir.join("history.jsonl"))
        .map(|j| j.redacting(plan.redactor.clone()))
        .map_err(|e| RunError::Environment(format!("cannot write history.jsonl: {e}")))
}

/// A deployed Worker's crons: the scenario's schedules, fired through the canary on the real
/// clock.
fn start_canary_crons(
    plan: &Plan,
    canary: &crate::canary::live::Armed,
    started_ms: u64,
    firing: Firing,
    notes: &mut Vec<String>,
) -> (Schedules, Option<JoinHandle<()>>) {
    let crons = Schedules {
        valid: plan.cron.schedules.clone().unwrap_or_default(),
        invalid: Vec::new(),
    };
    let fire = canary.cron_firer();
    let task = crate::driver::cron::start_with(plan, fire, started_ms, &crons, firing, notes);
    (crons, task)
}

/// The recorder with its `timeseries.csv`, and the interval log's file; both write whole lines
/// and report their first failed write to `failure`.
fn open_recorder(
    plan: &Plan,
    report_dir: &Path,
    threads: usize,
    failure: WriteFailure,
) -> Result<(Recorder, WholeLines), RunError> {
    let names = crate::replay::recorder_names(plan);
    let csv_path = report_dir.join("timeseries.csv");
    let csv = std::fs::File::create(&csv_path)
        .map_err(|e| RunError::Environment(format!("cannot write {}: {e}", csv_path.display())))?;
    let csv = WholeLines::new(csv, "timeseries.csv", failure.clone());
    let recorder = Recorder::new(names, threads, Some(Box::new(csv)))
        .map_err(|e| RunError::Environment(format!("cannot write timeseries.csv: {e}")))?;
    let hlog_path = report_dir.join(crate::report::hlog::HLOG_FILE);
    let hlog = std::fs::File::create(&hlog_path)
        .map_err(|e| RunError::Environment(format!("cannot write {}: {e}", hlog_path.display())))?;
    Ok((
        recorder,
        WholeLines::new(hlog, crate::report::hlog::HLOG_FILE, failure),
    ))
}

/// The interval log, whose headers carry the engine's start (a few ms ahead) as wall-clock time.
fn attach_hlog(recorder: &mut Recorder, hlog: WholeLines, start: Instant) {
    let start_wall = SystemTime::now() + start.saturating_duration_since(Instant::now());
    if let Ok(hlog) = crate::report::hlog::HlogWriter::new(hlog, start_wall) {
        recorder.set_interval_sink(Box::new(hlog));
    }
}

/// The recorder's tick: once a second from the engine's start; late ticks are not made up.
fn ticker(start: Instant) -> tokio::time::Interval {
    let mut ticker = tokio::time::interval_at(
        (start + Duration::from_secs(1)).into(),
        Duration::from_secs(1),
    );
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticker
}

/// The run's cron expressions and, when kvchaos fires them, the task that does. A scenario
/// that starts its day at a given time starts it with the load, not with the Worker (which took
/// seconds to start, minutes or hours on a fast clock).
fn start_crons(
    plan: &Plan,
    target: &Running,
    firing: Firing,
    notes: &mut Vec<String>,
) -> (Schedules, Option<JoinHandle<()>>) {
    if let (Some(at), Some(kv)) = (plan.kv.start_of_day, target.mock_kv()) {
        kv.clock().set_ms(crate::target::today_at(at));
        target.clock_moved();
    }
    let crons = crate::driver::cron::schedules(plan, target);
    let task = crate::driver::cron::start(plan, target, &crons, firing, notes);
    (crons, task)
}

/// The heal phase's length: the fault-free end of the run, before the final reads.
fn heal_length(plan: &Plan, crons: &Schedules) -> Duration {
    if !plan.heals() {
        return Duration::ZERO;
    }
    // Only crons that kvchaos fires (or the scenario names) set the heal's minimum.
    let fired = if plan.cron.fire || plan.cron.schedules.is_some() {
        &crons.valid[..]
    } else {
        &[]
    };
    plan.heal_duration(fired)
}

/// The heal phase's length, and the thresholds' windows placed by it on the recorder before
/// the first request (the schedule starts 20 ms on) is recorded.
fn place_windows(
    recorder: &mut Recorder,
    plan: &Plan,
    target: &Running,
    start: Instant,
    planned_end: Duration,
) -> Duration {
    let heal = heal_length(plan, &crate::driver::cron::schedules(plan, target));
    let windows =
        crate::metrics::windows::Windows::planned(&plan.faults, planned_end.saturating_sub(heal));
    recorder.set_windows(start, windows);
    heal
}

fn wall_ms() -> u64 {
    SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis() as u64
}

/// The shim's schedule starts when the shim acknowledges it, a little before the run's clock:
/// said when it is more than a tenth of a second.
fn canary_lead(c: &crate::canary::live::Armed, start: Instant) -> Option<String> {
    let lead = start.saturating_duration_since(c.armed_at);
    (lead > Duration::from_millis(100)).then(|| {
        format!(
            "the canary's fault schedule started {} ms before the run's clock: faults on it begin that much early",
            lead.as_millis()
        )
    })
}
