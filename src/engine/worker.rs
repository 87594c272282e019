//! An engine worker: one keep-alive connection, claiming open-loop arrivals or sending back to
//! back in a closed-loop phase, waiting out pauses, and recording every send in its thread's
//! shard of the recorder.
//!
//! Owns the send loop; the schedule is `engine/schedule.rs`, requests are built in
//! `engine/request.rs`.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use tokio_util::sync::WaitForCancellationFutureOwned;

use super::client::{self, Conn};
use super::pacing::Pacer;
use super::schedule::phase_at;
use super::{LATE_TOLERANCE, Shared, expect, replay};
use crate::metrics::ShardHandle;
use crate::outcome::Outcome;
use crate::scenario::plan::Load;

/// A worker's long-lived waiting state, created once per worker rather than once per request.
///
/// Creating a tokio timer or a `cancelled()` future per request costs a timer-wheel insertion and
/// removal (under the driver lock) and a waiter registration and removal (under the token's
/// lock). Instead each worker keeps one timer for intended start times, one for request timeouts
/// and one registered waiter on each token. Resetting a pending timer to a later deadline is a
/// single atomic update, and the timeout deadline only moves forward while requests succeed.
pub(super) struct Waits {
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
    pub(super) async fn sleep_until(&mut self, deadline: Instant) -> bool {
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

pub(super) async fn worker(id: usize, sh: Arc<Shared>, shard: ShardHandle) {
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
    let (idx, built) = sh.build(seq, buf, conn.spare_headers());
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

/// On a canary run, keeps the first answer that did not come from the expected shim. A
/// transport failure before any response head (a reset keep-alive connection, say) is no answer
/// from anybody: it is recorded as the failure it is, and says nothing about who would have
/// answered.
fn check_guard(sh: &Shared, x: &client::Exchange) {
    let Some(expected) = &sh.guard else {
        return;
    };
    if !x.answered {
        return;
    }
    let header = x.shim.as_ref().and_then(|h| h.to_str().ok());
    if let Err(e) = crate::canary::control::guard_header(header, expected) {
        let mut f = sh.guard_failure.lock().unwrap_or_else(|p| p.into_inner());
        if f.is_none() {
            *f = Some(format!("during the load, {e}; {}", answer_seen(x)));
        }
    }
}

/// What the guard saw of an answer: its outcome and, for an error answer, the start of its body,
/// so a stop says whether the platform or another script answered.
fn answer_seen(x: &client::Exchange) -> String {
    let mut seen = match x.outcome {
        Outcome::Status(s) => format!("it was HTTP {s}"),
        other => format!("it ended as {other:?}"),
    };
    if let Some((body, _)) = &x.answer {
        let text = String::from_utf8_lossy(body);
        let start: String = text.chars().take(120).collect();
        seen.push_str(&format!(", body starting {start:?}"));
    }
    seen
}
