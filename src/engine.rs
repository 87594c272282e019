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
pub mod schedule;
pub mod shard;
pub mod tls;

use std::pin::Pin;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::{CONTENT_TYPE, HOST};
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, Uri};
use http_body_util::Full;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};

use crate::metrics::{Recorder, ShardHandle};
use crate::outcome::Outcome;
use crate::scenario::plan::{Load, Plan};
use crate::scenario::template::{RenderCx, Template};
use client::{Conn, Endpoint};
use pacing::Pacer;
use schedule::{PhaseSchedule, phase_at};
pub use shard::Shard;

/// How late an open-loop arrival may be claimed before it counts as dropped. Covers scheduling
/// jitter (and tokio's millisecond timer where no precise timer is available).
pub const LATE_TOLERANCE: Duration = Duration::from_millis(10);

/// Header map capacity reserved per request: hyper parses the response's headers into the
/// request's map.
const RESPONSE_HEADERS: usize = 12;

/// Salt that separates the random stream deciding which request a dropped arrival would have
/// been from the stream of sent requests.
const DROP_STREAM: u64 = 0x5eed_d409;

/// A request with everything that does not change between sends prepared once.
struct Prepared {
    method: Method,
    uri: Part<Uri>,
    headers: Vec<(HeaderName, Part<HeaderValue>)>,
    body: Option<Part<Bytes>>,
    content_type: Option<HeaderValue>,
    timeout: Duration,
    expect: Option<Vec<u16>>,
}

/// A request ready to send, with its timeout.
type Built = (Request<Full<Bytes>>, Duration);

enum Part<T> {
    Static(T),
    Dynamic(Template),
}

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
        let threads = threads.max(1);
        let workers = plan.max_concurrency();
        let shared = Arc::new(Shared {
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
        });
        let mut done = Vec::with_capacity(threads);
        for t in 0..threads {
            let (tx, rx) = tokio::sync::oneshot::channel();
            let sh = shared.clone();
            let shard = recorder.shard(t);
            let ids: Vec<usize> = (t..workers).step_by(threads).collect();
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
            done.push(rx);
        }
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

fn prepare(r: &crate::scenario::plan::RequestPlan, base: &str) -> Result<Prepared, EngineError> {
    let bad = |message: String| EngineError::Request {
        request: r.name.clone(),
        message,
    };
    let uri = match r.path.as_static() {
        Some(p) => Part::Static(
            Uri::try_from(format!("{base}{p}"))
                .map_err(|e| bad(format!("invalid path \"{p}\": {e}")))?,
        ),
        None => Part::Dynamic(r.path.clone()),
    };
    let headers = r
        .headers
        .iter()
        .map(|(name, t)| {
            let v = match t.as_static() {
                Some(s) => Part::Static(
                    HeaderValue::from_str(s)
                        .map_err(|_| bad(format!("invalid value for header \"{name}\"")))?,
                ),
                None => Part::Dynamic(t.clone()),
            };
            Ok((name.clone(), v))
        })
        .collect::<Result<Vec<_>, EngineError>>()?;
    let has_content_type = r.headers.iter().any(|(n, _)| n == CONTENT_TYPE);
    let (body, content_type) = match &r.body {
        None => (None, None),
        Some(b) => {
            let part = match b.template.as_static() {
                Some(s) => Part::Static(Bytes::from(s.to_owned())),
                None => Part::Dynamic(b.template.clone()),
            };
            let ct = b
                .content_type
                .filter(|_| !has_content_type)
                .map(HeaderValue::from_static);
            (Some(part), ct)
        }
    };
    Ok(Prepared {
        method: r.method.clone(),
        uri,
        headers,
        body,
        content_type,
        timeout: r.timeout,
        expect: r.expect.clone(),
    })
}

/// SplitMix64: spreads a seed and an index into an independent stream seed.
fn mix(seed: u64, index: u64) -> u64 {
    let mut z = seed ^ index.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl Shared {
    /// This shard's arrivals of phase `p` intended strictly before `elapsed` into the phase.
    fn local_due(&self, p: usize, elapsed: Duration) -> u64 {
        self.shard.local_count(self.phases[p].due_by(elapsed))
    }

    fn choose(&self, rng: &mut SmallRng) -> usize {
        let total = self.cumulative.last().copied().unwrap_or(1);
        let x = rng.random_range(0..total);
        self.cumulative.partition_point(|&c| c <= x)
    }

    fn drop_choice(&self, phase: usize, k: u64) -> usize {
        let mut rng =
            SmallRng::seed_from_u64(mix(self.seed ^ DROP_STREAM, ((phase as u64) << 40) | k));
        self.choose(&mut rng)
    }

    /// Builds request number `seq`; `None` when a templated path renders to an invalid URI.
    fn build(&self, seq: u64, buf: &mut String) -> (usize, Option<Built>) {
        let mut rng = SmallRng::seed_from_u64(mix(self.seed, seq));
        let idx = self.choose(&mut rng);
        let r = &self.requests[idx];
        let mut cx = RenderCx {
            seq,
            rng: &mut rng,
            vars: None,
        };
        let uri = match &r.uri {
            Part::Static(u) => u.clone(),
            Part::Dynamic(t) => {
                buf.clear();
                buf.push_str(&self.base_path);
                t.render(&mut cx, buf);
                match Uri::try_from(buf.as_str()) {
                    Ok(u) => u,
                    Err(_) => return (idx, None),
                }
            }
        };
        // hyper reuses the request's header map for the response's headers, so it gets room for
        // a typical response too: growing it there costs a reallocation and a rehash per request.
        let mut headers = HeaderMap::with_capacity((r.headers.len() + 2).max(RESPONSE_HEADERS));
        headers.append(HOST, self.endpoint.authority().clone());
        for (name, v) in &r.headers {
            let v = match v {
                Part::Static(v) => v.clone(),
                Part::Dynamic(t) => {
                    buf.clear();
                    t.render(&mut cx, buf);
                    match HeaderValue::from_str(buf) {
                        Ok(v) => v,
                        Err(_) => return (idx, None),
                    }
                }
            };
            headers.append(name.clone(), v);
        }
        if let Some(ct) = &r.content_type {
            headers.append(CONTENT_TYPE, ct.clone());
        }
        let body = match &r.body {
            None => Bytes::new(),
            Some(Part::Static(bytes)) => bytes.clone(),
            Some(Part::Dynamic(t)) => {
                let mut s = String::new();
                t.render(&mut cx, &mut s);
                Bytes::from(s)
            }
        };
        // Built in place rather than through `Request::builder()`, whose every step moves the
        // whole request.
        let mut req = Request::new(Full::new(body));
        *req.method_mut() = r.method.clone();
        *req.uri_mut() = uri;
        *req.headers_mut() = headers;
        (idx, Some((req, r.timeout)))
    }
}

/// A worker's long-lived waiting state, created once per worker rather than once per request.
///
/// Creating a tokio timer or a `cancelled()` future per request costs a timer-wheel insertion and
/// removal (under the driver lock) and a waiter registration and removal (under the token's
/// lock). Instead each worker keeps one timer for intended start times, one for request timeouts
/// and one registered waiter on each token. Resetting a pending timer to a later deadline is a
/// single atomic update, and the timeout deadline only moves forward while requests succeed.
struct Waits {
    /// Fires at the phase end (or the end of a pause's wait).
    start: Pin<Box<tokio::time::Sleep>>,
    /// Wakes at intended start times, to the microsecond.
    pacer: Pacer,
    /// Fires when the request in flight times out.
    timeout: Pin<Box<tokio::time::Sleep>>,
    stop: Pin<Box<WaitForCancellationFutureOwned>>,
    abort: Pin<Box<WaitForCancellationFutureOwned>>,
}

impl Waits {
    fn new(sh: &Shared) -> Waits {
        let far = tokio::time::Instant::now() + Duration::from_secs(86_400 * 365);
        Waits {
            start: Box::pin(tokio::time::sleep_until(far)),
            pacer: Pacer::default(),
            timeout: Box::pin(tokio::time::sleep_until(far)),
            stop: Box::pin(sh.stop.clone().cancelled_owned()),
            abort: Box::pin(sh.abort.clone().cancelled_owned()),
        }
    }

    /// Sleeps until `deadline`; false when sending was stopped first.
    async fn sleep_until(&mut self, deadline: Instant) -> bool {
        self.start.as_mut().reset(deadline.into());
        tokio::select! {
            biased;
            _ = self.stop.as_mut() => false,
            _ = self.start.as_mut() => true,
        }
    }

    /// Sleeps until the intended start `deadline` with the precise timer; false when sending
    /// was stopped first.
    async fn pace_until(&mut self, deadline: Instant) -> bool {
        tokio::select! {
            biased;
            _ = self.stop.as_mut() => false,
            () = self.pacer.sleep_until(deadline) => true,
        }
    }
}

async fn worker(id: usize, sh: Arc<Shared>, shard: ShardHandle) {
    let mut conn = Conn::default();
    let mut buf = String::with_capacity(256);
    let mut waits = Waits::new(&sh);
    loop {
        if sh.stop.is_cancelled() {
            return;
        }
        let now = Instant::now();
        if now < sh.start {
            // A start given ahead (`--start-at`): nothing, closed loop included, goes before.
            if !waits.pace_until(sh.start).await {
                return;
            }
            continue;
        }
        let elapsed = now.saturating_duration_since(sh.start);
        if elapsed >= sh.end {
            return;
        }
        if sh.paused.load(Ordering::SeqCst) {
            if !wait_resumed(&sh, &mut waits).await {
                return;
            }
            continue;
        }
        let Some(p) = phase_at(&sh.phases, elapsed) else {
            return;
        };
        let ph = &sh.phases[p];
        let phase_end = sh.start + ph.end();
        let intended = match ph.load {
            Load::Pause => None,
            Load::Vus(n) => (id < sh.shard.share(n)).then_some(now),
            // A cap smaller than the shard count still leaves each shard one worker.
            Load::Rate { max_in_flight, .. } if id < sh.shard.share(max_in_flight).max(1) => {
                claim(&sh, p, now, &shard)
            }
            Load::Rate { .. } => None,
            Load::Replay(ref r) => {
                if id == 0 {
                    replay::drive(&sh, p, r, &shard, &mut waits).await;
                }
                None
            }
        };
        let Some(intended) = intended else {
            // Not needed (or nothing left) in this phase: wait for the next one.
            if !waits.sleep_until(phase_end).await {
                return;
            }
            continue;
        };
        if intended > now && !waits.pace_until(intended).await {
            return;
        }
        if sh.paused.load(Ordering::SeqCst) {
            // Claimed before the pause, intended during it: skipped, never sent late.
            if matches!(ph.load, Load::Rate { .. }) {
                sh.skipped[p].fetch_add(1, Ordering::Relaxed);
            }
            continue;
        }
        if !send(&sh, p, intended, &mut conn, &mut buf, &shard, &mut waits).await {
            return;
        }
    }
}

/// Waits for the end of a pause; false when sending stopped or the schedule ended first.
async fn wait_resumed(sh: &Shared, waits: &mut Waits) -> bool {
    waits.start.as_mut().reset((sh.start + sh.end).into());
    loop {
        let resumed = sh.resumed.notified();
        tokio::pin!(resumed);
        // Registered before the flag is read, so a resume in between is not missed.
        resumed.as_mut().enable();
        if !sh.paused.load(Ordering::SeqCst) {
            return true;
        }
        tokio::select! {
            biased;
            _ = waits.stop.as_mut() => return false,
            _ = waits.start.as_mut() => return false,
            _ = resumed => {}
        }
    }
}

/// Claims the next arrival of open-loop phase `p` that can still start on time, counting the
/// overdue ones as dropped. `None` when the phase has no arrivals left.
fn claim(sh: &Shared, p: usize, now: Instant, shard: &ShardHandle) -> Option<Instant> {
    let ph = &sh.phases[p];
    loop {
        let k = sh
            .shard
            .global(sh.claimed[p].fetch_add(1, Ordering::Relaxed));
        let at = sh.start + ph.offset + ph.intended(k)?;
        if at + LATE_TOLERANCE >= now {
            return Some(at);
        }
        sh.late_dropped[p].fetch_add(1, Ordering::Relaxed);
        shard.lock().drop_one_at(sh.drop_choice(p, k), at);
    }
}

/// Sends one request intended at `intended` and records it. False when the run is being
/// torn down (the request was abandoned).
async fn send(
    sh: &Shared,
    p: usize,
    intended: Instant,
    conn: &mut Conn,
    buf: &mut String,
    shard: &ShardHandle,
    waits: &mut Waits,
) -> bool {
    // Shards number their requests apart, so together they send the whole run's mix.
    let seq = sh.shard.global(sh.seq.fetch_add(1, Ordering::Relaxed));
    let (idx, built) = sh.build(seq, buf);
    sh.sent[p].fetch_add(1, Ordering::Relaxed);
    let Some((req, timeout)) = built else {
        let now = Instant::now();
        let us = now.saturating_duration_since(intended).as_micros() as u64;
        shard.lock().record_at(
            intended,
            idx,
            Outcome::Body,
            us,
            0,
            0,
            Some("templated request is not valid HTTP (path or header value)".to_owned()),
        );
        return true;
    };
    sh.in_flight.fetch_add(1, Ordering::Relaxed);
    let sent = Instant::now();
    waits.timeout.as_mut().reset((sent + timeout).into());
    let result = tokio::select! {
        biased;
        x = conn.exchange(&sh.endpoint, req) => Some(Ok(x)),
        _ = waits.abort.as_mut() => None,
        _ = waits.timeout.as_mut() => Some(Err(())),
    };
    sh.in_flight.fetch_sub(1, Ordering::Relaxed);
    let done = Instant::now();
    let (outcome, bytes, error, answer) = match result {
        None => {
            sh.unfinished.fetch_add(1, Ordering::Relaxed);
            return false;
        }
        Some(Err(_)) => {
            conn.discard();
            (
                Outcome::Timeout,
                0,
                Some(format!(
                    "no complete response within {}",
                    humantime::format_duration(timeout)
                )),
                None,
            )
        }
        Some(Ok(x)) => {
            check_guard(sh, &x);
            (x.outcome, x.bytes, x.error, x.answer)
        }
    };
    let outcome = expect::judge(outcome, sh.requests[idx].expect.as_deref());
    let corrected = done.saturating_duration_since(intended).as_micros() as u64;
    let service = done.saturating_duration_since(sent).as_micros() as u64;
    let mut shard = shard.lock();
    shard.record_at(intended, idx, outcome, corrected, service, bytes, error);
    if let (Outcome::Status(status), Some(body)) = (outcome, answer) {
        shard.answer(idx, status, body);
    }
    true
}

/// On a canary run, keeps the first answer that did not come from the expected shim.
fn check_guard(sh: &Shared, x: &client::Exchange) {
    let Some(expected) = &sh.guard else {
        return;
    };
    let header = x.shim.as_ref().and_then(|h| h.to_str().ok());
    if let Err(e) = crate::canary::control::guard_header(header, expected) {
        let mut f = sh.guard_failure.lock().unwrap_or_else(|p| p.into_inner());
        if f.is_none() {
            *f = Some(format!("during the load, {e}"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mix_spreads_neighbouring_indices() {
        assert_ne!(mix(1, 1), mix(1, 2));
        assert_ne!(mix(1, 1), mix(2, 1));
        assert_eq!(mix(7, 9), mix(7, 9));
    }
}
