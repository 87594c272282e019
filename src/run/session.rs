//! The load itself: engine, recorder, drivers, the fault timeline and the stop protocol, driven
//! by one event loop with one method per source (the recorder's tick, the fault timeline, the
//! drivers' operations, the display's controls, the stop protocol's timers and interrupts).
//!
//! Does not own: when to stop (the pure [`Stop`] machine decides; the session does its steps),
//! what is recorded (the [`Journal`]), or the summary's shape (`summary`).

use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::mpsc::UnboundedReceiver;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::journal::Journal;
use super::stop::{Input, Step, Stop};
use super::summary::Facts;
use crate::driver::Drivers;
use crate::engine::Engine;
use crate::history::Event;
use crate::live::{Control, Interrupts, Monitor};
use crate::metrics::Recorder;
use crate::scenario::plan::Plan;
use crate::target::Running;
use crate::timeline::Timeline;

mod finish;
mod start;
mod tick;

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
    driver_guard: crate::canary::control::AnswerGuard,
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
                self.on_stop(Input::failed(why), Instant::now());
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

    fn judge(&self, events: &[(Duration, Event)]) -> Vec<crate::check::CheckResult> {
        let clock = worker_clock(&self.target, self.started_ms);
        crate::check::judge(&self.plan, events, clock, self.queue_prefix.as_deref())
    }
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
