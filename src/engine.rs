//! The load engine: open-loop and closed-loop workers on dedicated threads.
//!
//! Each engine thread runs a single-threaded tokio runtime with its share of the workers; a
//! worker owns one keep-alive connection. In an open-loop phase a free worker claims the next
//! arrival from a shared counter, sleeps until its intended time and sends; latency is
//! measured from the intended time (corrected) and from the actual send (service). A worker
//! that claims an arrival already more than [`LATE_TOLERANCE`] overdue proves that no worker was
//! free when it was due: the arrival is counted as dropped, never sent late. In a closed-loop
//! phase the first `vus` workers send back to back.
//!
//! Pausing (the dashboard's `p`): while paused no request starts. The schedule does not stop:
//! open-loop arrivals intended during the pause are skipped and counted as such (neither sent
//! late nor counted as dropped), closed-loop workers wait, and the run still ends at its planned
//! time. An arrival claimed before the pause whose intended time falls inside it is skipped too.
//!
//! Owns scheduling and sending; recording goes to the recorder's shards, and the engine never
//! prints or decides pass/fail.

pub mod client;
pub mod errors;
pub mod expect;
pub mod pacing;
pub mod replay;
mod request;
pub mod schedule;
pub mod shard;
pub mod tls;
mod worker;

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use crate::metrics::Recorder;
use crate::scenario::plan::Plan;
use client::Endpoint;
use request::{Built, Prepared, mix, prepare};
use schedule::{PhaseSchedule, phase_at};
pub use shard::Shard;
use worker::{Waits, worker};

/// How late an open-loop arrival may be claimed before it counts as dropped. Covers scheduling
/// jitter (and tokio's millisecond timer where no precise timer is available).
pub const LATE_TOLERANCE: Duration = Duration::from_millis(10);

/// State shared by every worker of a run.
struct Shared {
    phases: Vec<PhaseSchedule>,
    claimed: Vec<AtomicU64>,
    sent: Vec<AtomicU64>,
    late_dropped: Vec<AtomicU64>,
    /// Open-loop arrivals intended while the engine was paused, per phase.
    skipped: Vec<AtomicU64>,
    /// No request starts while set.
    paused: AtomicBool,
    /// Wakes workers waiting for the end of a pause.
    resumed: tokio::sync::Notify,
    seq: AtomicU64,
    in_flight: AtomicU64,
    unfinished: AtomicU64,
    start: Instant,
    end: Duration,
    seed: u64,
    requests: Vec<Prepared>,
    cumulative: Vec<u64>,
    endpoint: Endpoint,
    base_path: String,
    /// Stop starting requests.
    stop: CancellationToken,
    /// Abandon requests in flight (the grace period is over).
    abort: CancellationToken,
    /// The part of the schedule this process sends; phase counters count this shard's own
    /// arrivals.
    shard: Shard,
    /// Recorder row names (requests, then replay routes).
    names: Vec<String>,
    /// A canary run: every answer must come from the shim of this script.
    guard: Option<String>,
    /// The first answer that did not (see [`Engine::guard_failure`]).
    guard_failure: std::sync::Mutex<Option<String>>,
    /// Replayed cron, alarm and queue events, counted when due.
    replay_events: [AtomicU64; 3],
}

/// How a run's load is placed in time and across processes.
#[derive(Debug, Clone, Copy, Default)]
pub struct Placement {
    /// The share of the schedule this process sends.
    pub shard: Shard,
    /// When the schedule starts (time zero); `None`: in a few milliseconds. Shards of one run
    /// are given the same instant (from `--start-at`).
    pub start: Option<Instant>,
}

/// Per-phase counts at the end of a run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PhaseCounts {
    /// Requests started.
    pub sent: u64,
    /// Arrivals that could not start on time (claimed late, or never claimed before the end).
    pub dropped: u64,
    /// Open-loop arrivals intended while the engine was paused (not sent, not dropped).
    pub skipped: u64,
}

/// What the engine is doing now, for the live display.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Progress {
    /// Index of the running phase.
    pub phase: Option<usize>,
    /// Intended arrival rate now (0 outside open-loop phases).
    pub target_rate: f64,
    /// Requests in flight.
    pub in_flight: u64,
    /// Sending is paused.
    pub paused: bool,
    /// Open-loop arrivals skipped by pauses so far.
    pub skipped: u64,
}

/// A running engine.
pub struct Engine {
    shared: Arc<Shared>,
    /// When the current pause began (from the start) and the skipped count then, if paused.
    paused_at: Mutex<Option<(Duration, u64)>>,
    done: Vec<tokio::sync::oneshot::Receiver<()>>,
    threads: usize,
}

/// Errors starting the engine.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// An engine thread or its runtime could not be created.
    #[error("cannot start engine thread: {0}")]
    Thread(#[from] std::io::Error),
    /// A static part of a request is not valid HTTP (validation should have caught it).
    #[error("request \"{request}\": {message}")]
    Request {
        /// Request name.
        request: String,
        /// What is wrong.
        message: String,
    },
}

impl Engine {
    /// Starts `threads` engine threads sending `plan`'s load to `endpoint` for `run_for`
    /// (the plan's phases, already cut or extended to the run length). Load starts at once.
    pub fn start(
        plan: &Plan,
        endpoint: Endpoint,
        threads: usize,
        recorder: &Recorder,
    ) -> Result<Engine, EngineError> {
        Engine::start_placed(plan, endpoint, threads, recorder, Placement::default())
    }

    /// As [`Engine::start`], sending `placement`'s share of the schedule from its start.
    pub fn start_placed(
        plan: &Plan,
        endpoint: Endpoint,
        threads: usize,
        recorder: &Recorder,
        placement: Placement,
    ) -> Result<Engine, EngineError> {
        let shared = Arc::new(Shared::new(plan, endpoint, placement)?);
        let threads = threads.max(1);
        let workers = plan.max_concurrency();
        let done = (0..threads)
            .map(|t| {
                let ids: Vec<usize> = (t..workers).step_by(threads).collect();
                spawn_thread(t, ids, shared.clone(), recorder)
            })
            .collect::<Result<Vec<_>, EngineError>>()?;
        Ok(Engine {
            shared,
            paused_at: Mutex::new(None),
            done,
            threads,
        })
    }

    /// When the schedule started (time zero of the run).
    pub fn start_instant(&self) -> Instant {
        self.shared.start
    }

    /// Planned end of the schedule, from the start.
    pub fn planned_end(&self) -> Duration {
        self.shared.end
    }

    /// On a canary run, the first answer that did not come from the expected script's shim.
    pub fn guard_failure(&self) -> Option<String> {
        self.shared
            .guard_failure
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Replayed cron, alarm and queue events that came due so far.
    pub fn replay_events(&self) -> [u64; 3] {
        self.shared
            .replay_events
            .each_ref()
            .map(|n| n.load(Ordering::Relaxed))
    }

    /// Engine threads in use.
    pub fn threads(&self) -> usize {
        self.threads
    }

    /// Stops starting new requests (requests in flight go on).
    pub fn stop_sending(&self) {
        self.shared.stop.cancel();
    }

    /// Abandons requests still in flight; they are counted as unfinished.
    pub fn abort_in_flight(&self) {
        self.shared.stop.cancel();
        self.shared.abort.cancel();
    }

    /// What the engine is doing at `now`.
    pub fn progress(&self, now: Instant) -> Progress {
        let sh = &self.shared;
        let elapsed = now.saturating_duration_since(sh.start);
        let phase = phase_at(&sh.phases, elapsed);
        Progress {
            phase,
            target_rate: phase.map_or(0.0, |p| {
                sh.phases[p].rate_at(elapsed - sh.phases[p].offset) / sh.shard.count as f64
            }),
            in_flight: sh.in_flight.load(Ordering::Relaxed),
            paused: sh.paused.load(Ordering::Relaxed),
            skipped: sh.skipped.iter().map(|n| n.load(Ordering::Relaxed)).sum(),
        }
    }

    /// Pauses sending at `now`: no request starts until [`Engine::resume`]. False when already
    /// paused.
    pub fn pause(&self, now: Instant) -> bool {
        let mut at = self.paused_at.lock().unwrap_or_else(|p| p.into_inner());
        if at.is_some() {
            return false;
        }
        *at = Some((
            now.saturating_duration_since(self.shared.start),
            self.skipped_total(),
        ));
        self.shared.paused.store(true, Ordering::SeqCst);
        true
    }

    fn skipped_total(&self) -> u64 {
        self.shared
            .skipped
            .iter()
            .map(|n| n.load(Ordering::SeqCst))
            .sum()
    }

    /// Ends a pause at `now`: the open-loop arrivals intended during it are counted as skipped
    /// (their number is returned), arrivals already overdue when it began as dropped (added to
    /// `recorder`), and sending goes on with the schedule as it stands. `None` when not paused.
    pub fn resume(&self, now: Instant, recorder: &mut Recorder) -> Option<u64> {
        let mut at = self.paused_at.lock().unwrap_or_else(|p| p.into_inner());
        let (from, skipped_before) = at.take()?;
        let to = now.saturating_duration_since(self.shared.start);
        self.skip_paused(from, to, recorder);
        // The schedule is moved past the pause before any worker may claim again.
        self.shared.paused.store(false, Ordering::SeqCst);
        self.shared.resumed.notify_waiters();
        // Also the arrivals workers had claimed before the pause and skipped during it.
        Some(self.skipped_total().saturating_sub(skipped_before))
    }

    /// Moves every open-loop phase's claim counter past the arrivals intended in `from..to`,
    /// counting them as skipped; arrivals due before `from` and never claimed are dropped.
    fn skip_paused(&self, from: Duration, to: Duration, recorder: &mut Recorder) {
        let sh = &self.shared;
        for (p, ph) in sh.phases.iter().enumerate() {
            if ph.total == 0 || to <= ph.offset || from >= ph.end() {
                continue;
            }
            let due_from = sh.local_due(p, from.saturating_sub(ph.offset));
            let due_to = sh.local_due(p, to - ph.offset);
            let prev = sh.claimed[p].fetch_max(due_to, Ordering::SeqCst);
            if prev >= due_to {
                continue;
            }
            for j in prev..due_from.min(due_to) {
                recorder.add_dropped(sh.drop_choice(p, sh.shard.global(j)), 1);
                sh.late_dropped[p].fetch_add(1, Ordering::Relaxed);
            }
            sh.skipped[p].fetch_add(due_to - prev.max(due_from), Ordering::SeqCst);
        }
    }

    /// A future that resolves when every worker has ended: the schedule is over and requests
    /// in flight are done, or sending was stopped and in-flight requests finished or were
    /// abandoned. Owned, so the engine can still be told to stop while it is awaited.
    pub fn finished(&mut self) -> impl Future<Output = ()> + Send + 'static {
        let done = std::mem::take(&mut self.done);
        async move {
            for rx in done {
                let _ = rx.await;
            }
        }
    }

    /// Final per-phase counts, with every arrival that came due before `stopped_at` (from the
    /// start) but was never claimed counted as dropped and attributed to the request it would
    /// have been; those drops are added to `recorder`. Returns the counts and unfinished requests.
    pub fn settle(&self, stopped_at: Duration, recorder: &mut Recorder) -> (Vec<PhaseCounts>, u64) {
        let sh = &self.shared;
        // Stopped while paused: what the pause covered is skipped, not dropped.
        let paused_at = self
            .paused_at
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some((from, _)) = paused_at.filter(|(from, _)| *from < stopped_at) {
            self.skip_paused(from, stopped_at, recorder);
        }
        let counts = sh
            .phases
            .iter()
            .enumerate()
            .map(|(p, ph)| {
                let mut dropped = sh.late_dropped[p].load(Ordering::Relaxed);
                if stopped_at > ph.offset {
                    let due = sh.local_due(p, stopped_at - ph.offset);
                    let total = sh.shard.local_count(ph.total);
                    let claimed = sh.claimed[p].load(Ordering::Relaxed).min(total);
                    for j in claimed..due {
                        recorder.add_dropped(sh.drop_choice(p, sh.shard.global(j)), 1);
                    }
                    dropped += due.saturating_sub(claimed);
                }
                PhaseCounts {
                    sent: sh.sent[p].load(Ordering::Relaxed),
                    dropped,
                    skipped: sh.skipped[p].load(Ordering::Relaxed),
                }
            })
            .collect();
        (counts, sh.unfinished.load(Ordering::Relaxed))
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        // Never leave workers running when the engine goes away (error paths included).
        self.abort_in_flight();
    }
}

/// Starts engine thread `t` running workers `ids` on its own single-threaded runtime; the
/// receiver resolves when they have all ended.
fn spawn_thread(
    t: usize,
    ids: Vec<usize>,
    sh: Arc<Shared>,
    recorder: &Recorder,
) -> Result<tokio::sync::oneshot::Receiver<()>, EngineError> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    let shard = recorder.shard(t);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    std::thread::Builder::new()
        .name(format!("kvchaos-engine-{t}"))
        .spawn(move || {
            pacing::tighten_timer_slack();
            rt.block_on(async move {
                let mut set = tokio::task::JoinSet::new();
                for id in ids {
                    set.spawn(worker(id, sh.clone(), shard.clone()));
                }
                while set.join_next().await.is_some() {}
            });
            let _ = tx.send(());
        })?;
    Ok(rx)
}

impl Shared {
    /// The shared state of a run of `plan` against `endpoint`, its requests prepared.
    fn new(plan: &Plan, endpoint: Endpoint, placement: Placement) -> Result<Shared, EngineError> {
        let phases = PhaseSchedule::build(&plan.phases);
        let end = phases.last().map_or(Duration::ZERO, PhaseSchedule::end);
        let requests = plan
            .requests
            .iter()
            .map(|r| prepare(r, endpoint.base_path()))
            .collect::<Result<Vec<_>, _>>()?;
        let mut total = 0u64;
        let cumulative = plan
            .requests
            .iter()
            .map(|r| {
                total += u64::from(r.weight);
                total
            })
            .collect();
        let n = phases.len();
        let counters = || (0..n).map(|_| AtomicU64::new(0)).collect::<Vec<_>>();
        Ok(Shared {
            claimed: counters(),
            sent: counters(),
            late_dropped: counters(),
            skipped: counters(),
            paused: AtomicBool::new(false),
            resumed: tokio::sync::Notify::new(),
            phases,
            seq: AtomicU64::new(0),
            in_flight: AtomicU64::new(0),
            unfinished: AtomicU64::new(0),
            // Threads need a moment to start; the schedule begins just after.
            start: placement
                .start
                .unwrap_or_else(|| Instant::now() + Duration::from_millis(20)),
            end,
            seed: plan.seed,
            requests,
            cumulative,
            base_path: endpoint.base_path().to_owned(),
            endpoint,
            stop: CancellationToken::new(),
            abort: CancellationToken::new(),
            shard: placement.shard,
            names: crate::replay::recorder_names(plan),
            guard: plan.canary.as_ref().map(|c| c.expect_script.clone()),
            guard_failure: std::sync::Mutex::new(None),
            replay_events: Default::default(),
        })
    }

    /// This shard's arrivals of phase `p` intended strictly before `elapsed` into the phase.
    fn local_due(&self, p: usize, elapsed: Duration) -> u64 {
        self.shard.local_count(self.phases[p].due_by(elapsed))
    }
}
