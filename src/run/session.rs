//! The load itself: engine, recorder, drivers, the fault timeline and the stop protocol, driven
//! by one event loop with one method per source (the recorder's tick, the fault timeline, the
//! drivers' operations, the display's controls, the stop protocol's timers and interrupts).
//!
//! Does not own: when to stop (the pure [`Stop`] machine decides; the session does its steps),
//! what is recorded (the [`Journal`]), or the summary's shape (`summary`).

use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::mpsc::UnboundedReceiver;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::RunError;
use super::journal::Journal;
use super::setup::Ready;
use super::stop::{Input, Step, Stop};
use super::summary::{self, Facts};
use crate::canary::control::AnswerGuard;
use crate::driver::Drivers;
use crate::driver::cron::{Firing, Schedules};
use crate::engine::Engine;
use crate::history::{Event, OpKind};
use crate::live::{Control, Interrupts, Monitor, Snapshot};
use crate::metrics::{Recorder, thresholds};
use crate::report::lines::{WholeLines, WriteFailure};
use crate::scenario::plan::Plan;
use crate::summary::{StopReason, TargetInfo};
use crate::target::Running;
use crate::timeline::Timeline;

/// A run sending load.
pub struct Session {
    plan: Arc<Plan>,
    target: Running,
    target_url: String,
    /// Warnings for the report.
    warnings: Vec<String>,
    /// Notes for the command line.
    notes: Vec<String>,
    engine: Engine,
    recorder: Recorder,
    journal: Journal,
    timeline: Timeline,
    drivers: Drivers,
    /// Stops cron ticks, lock clients, queue producers and consumers, status probes.
    drivers_stop: CancellationToken,
    cron_task: Option<JoinHandle<()>>,
    /// Drivers report operations through this.
    history_rx: UnboundedReceiver<(Duration, Event)>,
    finished: Pin<Box<dyn Future<Output = ()> + Send>>,
    ticker: tokio::time::Interval,
    start: Instant,
    /// Wall-clock ms at the engine's start (the Worker's clock).
    started_ms: u64,
    last_tick: Instant,
    phase_seen: Option<usize>,
    /// Run time the heal phase starts.
    heal_at: Duration,
    stop: Stop,
    queue_prefix: Option<String>,
    /// The canary's chaos shim, when the run's faults go there.
    canary: Option<crate::canary::live::Armed>,
    /// The shim check of the drivers' answers (the engine checks the load's).
    driver_guard: AnswerGuard,
}

/// A finished session: the summary's facts, and what is left to say.
pub struct Finished {
    /// What was measured and judged.
    pub facts: Facts,
    /// Whether `history.jsonl` was written completely.
    pub history: std::io::Result<()>,
    /// Notes for the command line (crons not fired, the target's teardown).
    pub notes: Vec<String>,
}

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
        let mut journal = Journal::create(&report_dir.join("history.jsonl"))
            .map(|j| j.redacting(plan.redactor.clone()))
            .map_err(|e| RunError::Environment(format!("cannot write history.jsonl: {e}")))?;
        let (mut recorder, hlog) = open_recorder(&plan, report_dir, threads, journal.files())?;
        let engine = Engine::start_placed(&plan, endpoint.clone(), threads, &recorder, placement)
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
            Some(c) => {
                // A deployed Worker's crons: the scenario's schedules, on the real clock.
                let crons = Schedules {
                    valid: plan.cron.schedules.clone().unwrap_or_default(),
                    invalid: Vec::new(),
                };
                let fire = c.cron_firer();
                let task = crate::driver::cron::start_with(
                    &plan, fire, started_ms, &crons, firing, &mut notes,
                );
                (crons, task)
            }
            None => start_crons(&plan, &target, firing, &mut notes),
        };
        let driver_guard = AnswerGuard::new(plan.canary.as_ref().map(|c| &*c.expect_script));
        let drivers = Drivers::start(
            &plan,
            crate::driver::Ctx {
                endpoint,
                history: history_tx,
                run_start: start,
                redactor: plan.redactor.clone(),
                seed: plan.seed,
                guard: driver_guard.clone(),
            },
        );
        if let Some(c) = &canary {
            warnings.extend(canary_lead(c, start));
        }
        let mut engine = engine;
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

    /// Runs until the engine has finished: sending, the stop protocol, the drain.
    pub async fn drive(&mut self, interrupts: &Interrupts, monitor: &mut dyn Monitor) {
        let mut controls = monitor.controls();
        let detailed = monitor.detailed();
        let planned_end = self.engine.planned_end();
        loop {
            let before_heal = self.stop.before_heal();
            let heal_at = before_heal.then_some(self.heal_at);
            let next_fault = self.timeline.next_at().filter(|_| before_heal);
            let end_at = self.stop.sending().then_some(planned_end);
            let drain = self.stop.drain_deadline();
            let start = self.start;
            tokio::select! {
                () = at(start, heal_at) => self.on_stop(Input::HealDue, Instant::now()),
                () = at(start, next_fault) => self.on_fault_due(),
                () = &mut self.finished => break,
                Some(control) = recv(&mut controls) => self.on_control(control),
                Some((t, event)) = self.history_rx.recv() => self.journal.record(t, event),
                _ = self.ticker.tick() => self.on_tick(monitor, detailed),
                () = at(start, end_at) => self.on_stop(Input::PlannedEnd, Instant::now()),
                () = interrupts.stop.cancelled(), if self.stop.sending() => {
                    self.on_stop(Input::Interrupt, Instant::now());
                }
                () = at(start, drain) => self.on_stop(Input::DrainDeadline, Instant::now()),
                () = interrupts.abort.cancelled(), if self.stop.abandonable() => {
                    self.on_stop(Input::SecondInterrupt, Instant::now());
                }
            }
        }
        self.on_stop(Input::EngineFinished, Instant::now());
    }

    /// Hands `input`, which happened at `now`, to the stop protocol and takes its steps.
    fn on_stop(&mut self, input: Input, now: Instant) {
        let steps = self
            .stop
            .on(input, now.saturating_duration_since(self.start));
        for step in steps {
            match step {
                Step::StopSending => self.engine.stop_sending(),
                Step::StopDrivers => self.drivers_stop.cancel(),
                Step::HealDrivers => self.drivers.heal(),
                Step::AbortInFlight => self.engine.abort_in_flight(),
                Step::Record(t, event) => self.journal.record(t, event),
                Step::ClearFaults(at) => {
                    if let Some(c) = self.canary.as_mut() {
                        c.halt_soon();
                    }
                    if let Some(kv) = fault_sink(&self.canary, &self.target) {
                        let events = self.timeline.clear_all(at, kv);
                        self.journal.record_all(events);
                    }
                }
            }
        }
    }

    /// On a canary run, the first load or driver answer not from the expected shim.
    fn guard_failure(&self) -> Option<String> {
        self.engine
            .guard_failure()
            .or_else(|| self.driver_guard.failure())
    }

    /// A scheduled fault change is due; an answer from the wrong script stops the run instead,
    /// so no fault reaches a Worker that is not the canary.
    fn on_fault_due(&mut self) {
        if let Some(why) = self.guard_failure() {
            if self.stop.sending() {
                self.on_stop(Input::TargetDied(why), Instant::now());
            }
            return;
        }
        if let Some(kv) = fault_sink(&self.canary, &self.target) {
            let events = self.timeline.apply_due(Instant::now() - self.start, kv);
            self.journal.record_all(events);
        }
    }

    /// A command from the display. Once sending stopped, the heal phase starts from a healthy
    /// KV and no new load: pauses and new faults are ignored.
    fn on_control(&mut self, control: Control) {
        let now = Instant::now();
        let at = now - self.start;
        let sending = self.stop.sending();
        let kv = self.target.mock_kv();
        match (control, kv) {
            (Control::Pause, _) if sending && self.engine.pause(now) => {
                self.journal.record(at, Event::Paused);
            }
            (Control::Resume, _) => {
                if let Some(skipped) = self.engine.resume(now, &mut self.recorder) {
                    self.journal.record(at, Event::Resumed { skipped });
                }
            }
            (Control::SetFault { spec, label }, Some(kv)) if sending => {
                let events = self.timeline.set_manual(at, spec, label, kv);
                self.journal.record_all(events);
            }
            (Control::ClearFault { index }, Some(kv)) => {
                let events = self.timeline.clear_one(index, at, kv);
                self.journal.record_all(events);
            }
            _ => {}
        }
    }

    /// The recorder's tick: a snapshot for the display, then the stops a tick can find (the
    /// target died, an abort threshold failed).
    fn on_tick(&mut self, monitor: &mut dyn Monitor, detailed: bool) {
        let now = Instant::now();
        let progress = self.engine.progress(now);
        if progress.phase.is_some() && progress.phase != self.phase_seen {
            self.phase_seen = progress.phase;
            if let Some(i) = progress.phase {
                let name = self.plan.phases[i].name.clone();
                let event = Event::PhaseStarted { index: i, name };
                self.journal.record(now - self.start, event);
            }
        }
        let live = self.recorder.tick(
            (now - self.start).as_secs_f64(),
            (now - self.last_tick).as_secs_f64(),
            crate::resources::rss_kib(),
        );
        self.last_tick = now;
        let mut snap = Snapshot {
            scenario: self.plan.name.clone(),
            target: format!("{} {}", self.target.kind, self.target_url),
            phases: self
                .plan
                .phases
                .iter()
                .map(crate::live::phase_label)
                .collect(),
            total_s: self.engine.planned_end().as_secs_f64(),
            live,
            progress,
            stopped: self.stop.stopped().map(|r| stop_word(r).to_owned()),
            faults: self.journal.windows().to_vec(),
            active: self.timeline.active(now - self.start),
            ..Snapshot::default()
        };
        if detailed {
            self.add_detail(&mut snap);
        }
        monitor.tick(&snap);
        if self.stop.sending()
            // A history that can no longer be written (a full disk) ends the run as a dead target.
            && let Some(why) = self
                .target
                .died()
                .or_else(|| self.journal.write_error())
                .or_else(|| self.canary.as_ref().and_then(|c| c.failure()))
                .or_else(|| self.guard_failure())
        {
            self.on_stop(Input::TargetDied(why), now);
        }
        if self.stop.sending()
            && let Some(what) = self.failed_abort(now)
        {
            self.on_stop(Input::AbortThreshold(what), now);
        }
    }

    /// What only the dashboard shows: per-request figures, provisional checks, the mock KV.
    fn add_detail(&mut self, snap: &mut Snapshot) {
        snap.requests = self.recorder.requests_live();
        snap.checks = self.judge(self.journal.judged());
        snap.last_cron_ok_s = self
            .journal
            .judged()
            .iter()
            .rev()
            .find_map(|(t, e)| match e {
                Event::Op {
                    process,
                    op: OpKind::Ok,
                    ..
                } if process == "cron" => Some(t.as_secs_f64()),
                _ => None,
            });
        snap.kv = self.target.mock_kv().map(|kv| {
            crate::live::KvSummary::from_stats(
                &kv.stats(),
                &kv.config().account_id,
                kv.config().limits,
            )
        });
    }

    /// The first abort threshold failing on the totals so far, described.
    fn failed_abort(&self, now: Instant) -> Option<String> {
        if !self.plan.thresholds.iter().any(|t| t.abort) {
            return None;
        }
        let (per, all) = self.recorder.totals();
        let sending = (now - self.start).min(self.engine.planned_end());
        let windows = self.recorder.window_totals(sending);
        let t = thresholds::first_abort(
            &self.plan.thresholds,
            &per,
            &all,
            sending.as_secs_f64(),
            &windows,
        )?;
        Some(format!(
            "{} {} (observed {})",
            t.scope,
            t.label(),
            crate::report::observed_text(t.observed, &t.unit),
        ))
    }

    fn judge(&self, events: &[(Duration, Event)]) -> Vec<crate::check::CheckResult> {
        let clock = worker_clock(&self.target, self.started_ms);
        crate::check::judge(&self.plan, events, clock, self.queue_prefix.as_deref())
    }

    /// Ends the run: drivers stopped and their final reads, requests settled, the history
    /// closed, the checks judged, the mock KV's accounting written, the target stopped.
    pub async fn finish(self, report_dir: &Path) -> Result<Finished, RunError> {
        let Session {
            plan,
            target,
            target_url,
            mut warnings,
            mut notes,
            engine,
            mut recorder,
            mut journal,
            drivers,
            drivers_stop,
            cron_task,
            mut history_rx,
            start,
            started_ms,
            last_tick,
            stop,
            queue_prefix,
            canary,
            ..
        } = self;
        let ended = stop.ended();
        drivers_stop.cancel();
        if let Some(task) = cron_task {
            let _ = task.await;
        }
        // An interrupted run ends at once; others read the final state of locks and tasks.
        let final_reads = !matches!(
            ended.reason,
            StopReason::Interrupted | StopReason::TargetFailed
        );
        drivers.finish(plan.grace, final_reads).await;
        if let Some(c) = canary {
            warnings.extend(canary_end(c).await);
        }
        while let Ok((t, event)) = history_rx.try_recv() {
            journal.record(t, event);
        }
        let end = Instant::now();
        let (counts, unfinished) = engine.settle(ended.at, &mut recorder);
        warnings.extend(crate::replay::events_note(&plan, engine.replay_events()));
        recorder.tick(
            (end - start).as_secs_f64(),
            (end - last_tick).as_secs_f64(),
            crate::resources::rss_kib(),
        );
        journal.record(end - start, Event::RunEnded);
        let written = journal.finish();
        let windows = recorder.window_totals(ended.at);
        let error_answers = recorder.error_answers();
        let (per, all, errors) = recorder.finish();
        let clock = worker_clock(&target, started_ms);
        let checks = crate::check::judge(&plan, &written.judged, clock, queue_prefix.as_deref());
        let facts = Facts {
            target: TargetInfo {
                kind: target.kind.to_owned(),
                url: target_url,
            },
            ended: SystemTime::now(),
            duration: end - start,
            planned: engine.planned_end(),
            stop: summary::stop_info(ended.clone(), unfinished),
            sending: ended.at,
            per,
            all,
            windows,
            errors,
            error_answers,
            counts,
            resources: summary::resources(engine.threads()),
            checks,
            faults: written.windows,
            warnings,
        };
        drop(engine);
        if let Some(kv) = target.mock_kv() {
            let path = report_dir.join("mockkv.json");
            // Masked value by value only when there are secrets (fields keep their order).
            if plan.redactor.is_empty() {
                write_json(&path, &kv.stats())?;
            } else {
                write_json(&path, &plan.redactor.redacted(&kv.stats()))?;
            }
        }
        notes.extend(target.shutdown().await);
        Ok(Finished {
            facts,
            history: written.history,
            notes,
        })
    }
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

/// Sleeps until run time `t` after `start`; forever when there is none.
async fn at(start: Instant, t: Option<Duration>) {
    match t {
        Some(t) => tokio::time::sleep_until((start + t).into()).await,
        None => std::future::pending().await,
    }
}

/// The next control; forever when the display sends none.
async fn recv(controls: &mut Option<UnboundedReceiver<Control>>) -> Option<Control> {
    match controls.as_mut() {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

/// The Worker's clock (`Date.now()` in workerd is real time, whatever the run clock's speed),
/// for a local Worker; a deployed Worker's clock is not known.
fn worker_clock(target: &Running, started_ms: u64) -> Option<crate::check::WorkerClock> {
    target.worker().map(|_| crate::check::WorkerClock {
        start_ms: started_ms,
        speedup: 1.0,
        tolerance_ms: crate::check::WORKER_CLOCK_TOLERANCE_MS,
    })
}

fn wall_ms() -> u64 {
    SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis() as u64
}

/// Reads the shim's last counts and halts it; what the report should say about it.
async fn canary_end(c: crate::canary::live::Armed) -> Vec<String> {
    match c.disarm().await {
        Ok(stats) if stats.capped > 0 => vec![format!(
            "the canary's shim refused {} real KV writes past [canary] max_kv_writes ({} let through)",
            stats.capped, stats.writes
        )],
        Ok(_) => Vec::new(),
        Err(e) => vec![e],
    }
}

/// Where the run's faults are set: the canary's shim, or the mock KV.
fn fault_sink<'a>(
    canary: &'a Option<crate::canary::live::Armed>,
    target: &'a Running,
) -> Option<&'a dyn crate::timeline::FaultSink> {
    match (canary, target.mock_kv()) {
        (Some(c), _) => Some(c),
        (None, Some(kv)) => Some(kv),
        (None, None) => None,
    }
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

/// The word for a stop reason in the live view.
fn stop_word(r: StopReason) -> &'static str {
    match r {
        StopReason::Completed => "completed",
        StopReason::Interrupted => "interrupted",
        StopReason::Aborted => "aborted",
        StopReason::TargetUnreachable => "target unreachable",
        StopReason::TargetFailed => "target failed",
    }
}

fn write_json(path: &Path, value: &impl serde::Serialize) -> Result<(), RunError> {
    let text = serde_json::to_string_pretty(value)
        .map_err(|e| RunError::Environment(format!("cannot write {}: {e}", path.display())))?;
    // Through a rename: a full disk leaves no cut-off JSON.
    crate::report::json::write_atomic(path, text.as_bytes())
        .map_err(|e| RunError::Environment(e.to_string()))
}
