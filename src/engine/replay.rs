//! The replay sender: a capture's requests sent open-loop at their recorded times.
//!
//! One engine worker paces a replay phase: it streams the capture (never holding it), works
//! out each selected event's intended time ([`Pacer`]: offset ÷ speed, gaps capped), sleeps
//! until then and starts the request as a task on its engine thread, up to `max_in_flight` at
//! once. An event due while all are busy is dropped and counted, never sent late; latency is
//! measured from the intended time (corrected) and from the send (service), exactly as in rate
//! phases. Requests go to the target: the recorded scheme and host are replaced by the
//! target's, the path and query are kept (after the phase's `rewrite` of path prefixes). Cron, alarm and queue events are counted per kind.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use bytes::Bytes;
use http::header::HOST;
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, Uri};
use http_body_util::Full;
use rand::SeedableRng;
use rand::rngs::SmallRng;
use tokio::sync::Semaphore;

use super::client::Conn;
use super::{Built, Shared, Waits};
use crate::metrics::ShardHandle;
use crate::outcome::Outcome;
use crate::replay::Reader;
use crate::replay::plan::{OTHER_ROUTES, Pacer, ReplayPlan};
use crate::replay::record::{Kind, Record};
use crate::scenario::template::RenderCx;

/// Salt of the random streams of replayed requests' templated headers.
const REPLAY_STREAM: u64 = 0x7e91_a700;

/// Sends phase `p`'s capture; returns when the passes are sent, the phase is over or sending
/// stopped, after the requests it started have ended.
pub(super) async fn drive(
    sh: &Arc<Shared>,
    p: usize,
    plan: &ReplayPlan,
    shard: &ShardHandle,
    waits: &mut Waits,
) {
    let ph = &sh.phases[p];
    let phase_start = sh.start + ph.offset;
    let phase_end = sh.start + ph.end();
    let permits = Arc::new(Semaphore::new(plan.max_in_flight));
    let pool: Arc<Mutex<Vec<Conn>>> = Arc::default();
    let mut tasks = tokio::task::JoinSet::new();
    let mut base = std::time::Duration::ZERO;
    let mut pass = 0u32;
    'passes: while plan.loops.runs(pass) {
        let Ok(mut reader) = Reader::open(&plan.path, Some(plan.format)) else {
            break;
        };
        let mut pacer = Pacer::new(plan.speed, plan.max_gap);
        let mut index = 0u64;
        // A capture that changed since validation ends the phase at its first bad event.
        while let Ok(Some((r, _))) = reader.next_record() {
            let i = index;
            index += 1;
            let offset = pacer.next(r.t_ms);
            if r.kind == Kind::Fetch && !plan.selects(sh.seed, i, &r) {
                continue;
            }
            let intended = phase_start + base + offset;
            if intended >= phase_end || !waits.sleep_until(intended).await {
                break 'passes;
            }
            if r.kind != Kind::Fetch {
                sh.replay_events[kind_slot(r.kind)].fetch_add(1, Ordering::Relaxed);
                continue;
            }
            let route = route_index(sh, plan, &r);
            if sh.paused.load(Ordering::SeqCst) {
                sh.skipped[p].fetch_add(1, Ordering::Relaxed);
                continue;
            }
            let Ok(permit) = permits.clone().try_acquire_owned() else {
                sh.late_dropped[p].fetch_add(1, Ordering::Relaxed);
                shard.lock().drop_one(route);
                continue;
            };
            let seq = sh.seq.fetch_add(1, Ordering::Relaxed);
            let built = build(sh, plan, &r, seq);
            let (sh, shard, pool) = (sh.clone(), shard.clone(), pool.clone());
            tasks.spawn(async move {
                send(&sh, p, route, built, intended, &shard, &pool).await;
                drop(permit);
            });
            while tasks.try_join_next().is_some() {}
        }
        pass += 1;
        // The next pass starts where this one's last event was (at least 1 ms on).
        base += plan.pass.max(std::time::Duration::from_millis(1));
    }
    while tasks.join_next().await.is_some() {}
}

fn kind_slot(k: Kind) -> usize {
    match k {
        Kind::Cron => 0,
        Kind::Alarm => 1,
        Kind::Fetch | Kind::Queue => 2,
    }
}

/// The recorder row of a fetch record: its route (or the shared row past the route cap).
fn route_index(sh: &Shared, plan: &ReplayPlan, r: &Record) -> usize {
    let route = plan.route_of(r);
    let find = |name: &str| sh.names.iter().position(|n| n == name);
    find(&route).or_else(|| find(OTHER_ROUTES)).unwrap_or(0)
}

/// The request of a record aimed at the target; `None` when it is not valid HTTP.
fn build(sh: &Shared, plan: &ReplayPlan, r: &Record, seq: u64) -> Option<Built> {
    let method = Method::from_bytes(r.method.as_bytes()).ok()?;
    let uri = Uri::try_from(format!("{}{}", sh.base_path, plan.path_of(r))).ok()?;
    let mut headers = HeaderMap::with_capacity(r.headers.len() + plan.set_headers.len() + 1);
    headers.append(HOST, sh.endpoint.authority().clone());
    for (k, v) in plan.headers(r) {
        if let (Ok(k), Ok(v)) = (
            HeaderName::from_bytes(k.as_bytes()),
            HeaderValue::from_str(v),
        ) {
            headers.append(k, v);
        }
    }
    let mut rng = SmallRng::seed_from_u64(super::mix(sh.seed ^ REPLAY_STREAM, seq));
    let mut cx = RenderCx {
        seq,
        rng: &mut rng,
        vars: None,
    };
    let mut buf = String::new();
    for (name, t) in &plan.set_headers {
        buf.clear();
        t.render(&mut cx, &mut buf);
        headers.insert(name.clone(), HeaderValue::from_str(&buf).ok()?);
    }
    let body = r.body.clone().map_or_else(Bytes::new, Bytes::from);
    let mut req = Request::new(Full::new(body));
    *req.method_mut() = method;
    *req.uri_mut() = uri;
    *req.headers_mut() = headers;
    Some((req, plan.timeout))
}

/// Sends one replayed request on a pooled connection and records it under its route.
async fn send(
    sh: &Shared,
    p: usize,
    route: usize,
    built: Option<Built>,
    intended: Instant,
    shard: &ShardHandle,
    pool: &Mutex<Vec<Conn>>,
) {
    sh.sent[p].fetch_add(1, Ordering::Relaxed);
    let Some((req, timeout)) = built else {
        let us = intended.elapsed().as_micros() as u64;
        let why = "recorded request is not valid HTTP (method, path or header value)";
        shard
            .lock()
            .record(route, Outcome::Body, us, 0, 0, Some(why.to_owned()));
        return;
    };
    let mut conn = pool
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .pop()
        .unwrap_or_default();
    sh.in_flight.fetch_add(1, Ordering::Relaxed);
    let sent = Instant::now();
    let result = tokio::select! {
        biased;
        x = tokio::time::timeout(timeout, conn.exchange(&sh.endpoint, req)) => Some(x),
        _ = sh.abort.cancelled() => None,
    };
    sh.in_flight.fetch_sub(1, Ordering::Relaxed);
    let done = Instant::now();
    let (outcome, bytes, error) = match result {
        None => {
            sh.unfinished.fetch_add(1, Ordering::Relaxed);
            return;
        }
        Some(Err(_)) => {
            conn.discard();
            let why = format!(
                "no complete response within {}",
                humantime::format_duration(timeout)
            );
            (Outcome::Timeout, 0, Some(why))
        }
        Some(Ok(x)) => (x.outcome, x.bytes, x.error),
    };
    let corrected = done.saturating_duration_since(intended).as_micros() as u64;
    let service = done.saturating_duration_since(sent).as_micros() as u64;
    shard
        .lock()
        .record(route, outcome, corrected, service, bytes, error);
    pool.lock().unwrap_or_else(|e| e.into_inner()).push(conn);
}
