//! The `jobs-api` fixture Worker (`tests/fixtures/workers/jobs-api/`), a
//! Worker kvchaos was not written for, under miniflare with its KV routed to
//! the in-process mock KV: its API answers as its README documents (mutexes
//! with the fencing token in a response header, jobs finished by its own
//! cron, the heartbeat), and with every KV operation failing, or KV reads
//! hanging, it still answers job reads and its cron still finishes jobs.
//! Crons are fired explicitly; nothing waits for wall-clock time except a
//! one-millisecond lease running out. Needs Node.js; fails without it unless KVCHAOS_SKIP_NODE=1
//! (then skipped with a printed reason).

use std::path::Path;
use std::time::{Duration, Instant};

use kvchaos::local::{CronOutcome, LocalWorker};
use kvchaos::mockkv::fault::FaultKindName;
use kvchaos::mockkv::stats::Outcome;
use serde_json::{Value, json};

use crate::local::{ONE_AT_A_TIME, mock, node_ready};
use crate::reference_workers::{Answer, call, call_raw, start_dir, stop};

const WORKER: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/workers/jobs-api"
);
const CRON: &str = "*/1 * * * *";
/// Some minute, as the scheduled time of the first fired cron.
const T0: u64 = 1_700_000_040_000;
const MINUTE_MS: u64 = 60_000;
/// `BATCH` in the Worker's `wrangler.toml`.
const BATCH: usize = 25;

/// `status` and the body, or a panic that shows both; errors carry a reason.
fn expect(a: Answer, status: u16, what: &str) -> Value {
    assert_eq!(a.status, status, "{what}: {}", a.body);
    if matches!(status, 400..=404 | 405 | 412 | 500..=599) {
        assert!(
            a.body["reason"].is_string(),
            "{what}: a {status} carries a reason: {}",
            a.body
        );
    }
    a.body
}

/// A response header as text (empty when absent).
fn header(a: &Answer, name: &str) -> String {
    a.headers
        .get(name)
        .map(|v| v.to_str().expect("header is text").to_owned())
        .unwrap_or_default()
}

async fn get(url: &str, path: &str) -> Answer {
    call(url, "GET", path, &[], None).await
}

async fn acquire(url: &str, name: &str, owner: &str, lease_ms: u64) -> Answer {
    call(
        url,
        "PUT",
        &format!("/v1/mutexes/{name}"),
        &[("x-owner", owner)],
        Some(json!({ "lease_ms": lease_ms })),
    )
    .await
}

/// A granted acquire: its fencing token, from the response header.
fn granted(a: Answer, name: &str, owner: &str) -> u64 {
    let token = header(&a, "x-fencing-token");
    let body = expect(a, 201, "acquire");
    assert_eq!(body["mutex"]["name"], name, "{body}");
    assert_eq!(body["mutex"]["owner"], owner, "{body}");
    assert!(body["mutex"]["deadline_ms"].as_u64().is_some(), "{body}");
    assert_eq!(
        body["mutex"].as_object().map(|m| m.len()),
        Some(3),
        "the token is only in the header: {body}"
    );
    token
        .parse()
        .unwrap_or_else(|_| panic!("x-fencing-token '{token}' is an integer"))
}

async fn release(url: &str, name: &str, owner: &str, token: &str) -> Answer {
    call(
        url,
        "DELETE",
        &format!("/v1/mutexes/{name}"),
        &[("x-owner", owner), ("x-fencing-token", token)],
        None,
    )
    .await
}

async fn enqueue(url: &str, job_id: &str, args: Value) -> Answer {
    call(
        url,
        "POST",
        "/v1/jobs",
        &[],
        Some(json!({ "job_id": job_id, "args": args })),
    )
    .await
}

/// A job read: the `job` object and the `x-cache` header.
async fn job(url: &str, job_id: &str) -> (Value, String) {
    let a = get(url, &format!("/v1/jobs/{job_id}")).await;
    let cache = header(&a, "x-cache");
    let body = expect(a, 200, "job read");
    (body["job"].clone(), cache)
}

fn finished(job_id: &str, tick: u64) -> Value {
    json!({"job_id": job_id, "state": "finished", "output": {"tick": tick}, "runs": 1})
}

fn queued(job_id: &str) -> Value {
    json!({"job_id": job_id, "state": "queued", "output": null, "runs": 0})
}

async fn heartbeat(url: &str) -> Value {
    expect(get(url, "/v1/heartbeat").await, 200, "heartbeat")
}

async fn fire(w: &LocalWorker, scheduled: u64) -> CronOutcome {
    w.fire_cron(CRON, scheduled).await.expect("fire cron")
}

/// Mutexes: grant with the token in a header, 423 for anyone while held,
/// 412 for a wrong release, `{"mutex": null}` when free or expired, tokens
/// strictly increasing across releases and expiry.
async fn mutex_contract(url: &str) {
    assert_eq!(
        expect(get(url, "/v1/mutexes/m1").await, 200, "free mutex"),
        json!({"mutex": null})
    );
    let f1 = granted(acquire(url, "m1", "alice", 30_000).await, "m1", "alice");
    for owner in ["bob", "alice"] {
        let held = expect(
            acquire(url, "m1", owner, 30_000).await,
            423,
            "acquire while held",
        );
        assert_eq!(held["mutex"]["owner"], "alice", "{owner}: {held}");
        assert!(held["mutex"]["deadline_ms"].as_u64().is_some(), "{held}");
    }
    let state = expect(get(url, "/v1/mutexes/m1").await, 200, "held mutex");
    assert_eq!(
        (&state["mutex"]["owner"], &state["mutex"]["fence"]),
        (&json!("alice"), &json!(f1)),
        "{state}"
    );
    assert_eq!(state["mutex"]["name"], "m1");
    let other_token = (f1 + 7).to_string();
    expect(
        release(url, "m1", "alice", &other_token).await,
        412,
        "release with another token",
    );
    expect(
        release(url, "m1", "bob", &f1.to_string()).await,
        412,
        "release by another owner",
    );
    let done = release(url, "m1", "alice", &f1.to_string()).await;
    assert_eq!(done.status, 204, "release: {}", done.body);
    assert_eq!(done.body, Value::Null, "a 204 has no body");
    assert_eq!(
        expect(get(url, "/v1/mutexes/m1").await, 200, "released mutex"),
        json!({"mutex": null})
    );
    expect(
        release(url, "m1", "alice", &f1.to_string()).await,
        412,
        "second release",
    );

    let f2 = granted(acquire(url, "m1", "bob", 1).await, "m1", "bob");
    assert!(f2 > f1, "fencing tokens increase: {f1} then {f2}");
    // A one-millisecond lease: free again as soon as the Worker's clock moves.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let s = expect(get(url, "/v1/mutexes/m1").await, 200, "expiring mutex");
        if s == json!({"mutex": null}) {
            break;
        }
        assert!(Instant::now() < deadline, "a 1 ms lease never expired: {s}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    expect(
        release(url, "m1", "bob", &f2.to_string()).await,
        412,
        "release after expiry",
    );
    let f3 = granted(acquire(url, "m1", "carol", 30_000).await, "m1", "carol");
    assert!(
        f3 > f2,
        "fencing tokens increase after expiry: {f2} then {f3}"
    );
    let other = granted(acquire(url, "m2", "alice", 30_000).await, "m2", "alice");
    assert_eq!(other, 1, "tokens are per name and start at 1");

    // Malformed requests.
    let no_owner = call(
        url,
        "PUT",
        "/v1/mutexes/m3",
        &[],
        Some(json!({"lease_ms": 1000})),
    )
    .await;
    expect(no_owner, 400, "acquire without X-Owner");
    expect(
        acquire(url, "m3", "alice", 0).await,
        400,
        "acquire with lease_ms 0",
    );
    let no_token = call(
        url,
        "DELETE",
        "/v1/mutexes/m1",
        &[("x-owner", "carol")],
        None,
    )
    .await;
    expect(no_token, 400, "release without X-Fencing-Token");
    expect(
        release(url, "m1", "carol", "three").await,
        400,
        "release with a token that is not a number",
    );
}

/// Jobs and the heartbeat: idempotent enqueue, a tick finishes `BATCH` jobs
/// oldest first and advances the heartbeat, the next tick finishes the rest.
async fn jobs_contract(w: &LocalWorker) {
    let url = w.url();
    assert_eq!(
        heartbeat(url).await,
        json!({"scheduler": {"last_tick_ms": null, "ticks": 0}})
    );
    let ids: Vec<String> = (0..BATCH + 2).map(|i| format!("j{i:02}")).collect();
    for (i, id) in ids.iter().enumerate() {
        assert_eq!(
            expect(enqueue(url, id, json!({"n": i})).await, 202, "enqueue"),
            json!({"job": {"job_id": id, "state": "queued"}})
        );
    }
    assert_eq!(
        expect(enqueue(url, "j00", json!("other")).await, 200, "repeat"),
        json!({"job": {"job_id": "j00", "state": "queued"}})
    );
    assert_eq!(job(url, "j00").await.0, queued("j00"));
    expect(get(url, "/v1/jobs/nope").await, 404, "unknown job");
    expect(
        call(url, "POST", "/v1/jobs", &[], Some(json!({"args": 1}))).await,
        400,
        "enqueue without job_id",
    );

    assert_eq!(fire(w, T0).await, CronOutcome::Ok);
    assert_eq!(
        heartbeat(url).await,
        json!({"scheduler": {"last_tick_ms": T0, "ticks": 1}})
    );
    for (i, id) in ids.iter().enumerate() {
        let want = if i < BATCH {
            finished(id, T0)
        } else {
            queued(id)
        };
        assert_eq!(job(url, id).await.0, want, "after the first tick");
    }
    assert_eq!(
        expect(enqueue(url, "j00", json!(null)).await, 200, "repeat"),
        json!({"job": {"job_id": "j00", "state": "finished"}})
    );
    // Finished jobs are cached on their first read.
    assert_eq!(job(url, "j00").await, (finished("j00", T0), "hit".into()));

    let t1 = T0 + MINUTE_MS;
    assert_eq!(fire(w, t1).await, CronOutcome::Ok);
    assert_eq!(
        heartbeat(url).await,
        json!({"scheduler": {"last_tick_ms": t1, "ticks": 2}})
    );
    for id in &ids[BATCH..] {
        assert_eq!(job(url, id).await, (finished(id, t1), "miss".into()));
    }
    assert_eq!(
        job(url, "j00").await.0,
        finished("j00", T0),
        "finished once"
    );
}

/// KV operations the mock failed on purpose with `kind`.
fn kv_faults(m: &crate::local::Mock, kind: FaultKindName) -> u64 {
    m.kv.stats()
        .counts
        .iter()
        .filter(|r| r.outcome == Outcome::Fault(kind))
        .map(|r| r.count)
        .sum()
}

/// Every KV operation failing, then KV reads hanging: job reads, enqueues,
/// mutexes and the cron all keep working; the cache is bypassed.
async fn without_kv(w: &LocalWorker, m: &crate::local::Mock) {
    let url = w.url();
    m.kv.add_fault("kind=error,status=503".parse().expect("fault spec"))
        .expect("add fault");
    assert_eq!(
        job(url, "j00").await,
        (finished("j00", T0), "bypass".into()),
        "a cached job, read from D1"
    );
    expect(enqueue(url, "k1", json!([1, 2])).await, 202, "enqueue");
    assert_eq!(job(url, "k1").await, (queued("k1"), "bypass".into()));
    let f = granted(acquire(url, "m9", "dave", 30_000).await, "m9", "dave");
    let r = release(url, "m9", "dave", &f.to_string()).await;
    assert_eq!(r.status, 204, "release: {}", r.body);

    let t2 = T0 + 2 * MINUTE_MS;
    assert_eq!(fire(w, t2).await, CronOutcome::Ok);
    assert_eq!(
        heartbeat(url).await,
        json!({"scheduler": {"last_tick_ms": t2, "ticks": 3}})
    );
    assert_eq!(job(url, "k1").await, (finished("k1", t2), "bypass".into()));
    assert!(
        kv_faults(m, FaultKindName::Error) >= 3,
        "the Worker did reach KV and was refused"
    );

    // KV reads hang: the cache read times out and the job is read from D1.
    m.kv.clear_all_faults();
    m.kv.add_fault("kind=hang,ops=get".parse().expect("fault spec"))
        .expect("add fault");
    let began = Instant::now();
    assert_eq!(job(url, "k1").await, (finished("k1", t2), "bypass".into()));
    assert!(
        began.elapsed() < Duration::from_secs(5),
        "a hanging cache read delays a job read by its timeout only: {:?}",
        began.elapsed()
    );
    assert!(kv_faults(m, FaultKindName::Hang) >= 1, "KV reads hung");

    // Healed: the cached copy is served again.
    m.kv.clear_all_faults();
    assert_eq!(job(url, "j00").await, (finished("j00", T0), "hit".into()));
}

/// The whole documented API against one fresh Worker, then KV broken.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_api_answers_as_documented_and_needs_no_kv() {
    if !node_ready().await {
        return;
    }
    let _one = ONE_AT_A_TIME.lock().await;
    let logs = tempfile::tempdir().expect("tempdir");
    let m = mock(true).await;
    let w = start_dir(Path::new(WORKER), m.addr, logs.path()).await;
    let url = w.url();

    let (status, headers, body) = call_raw(url, "GET", "/healthz", &[], None).await;
    assert_eq!((status, &body[..]), (200, &b"ok"[..]));
    assert!(
        headers
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("text/plain")),
        "{headers:?}"
    );
    expect(get(url, "/v2/nowhere").await, 404, "unknown path");
    let wrong = call(url, "POST", "/v1/heartbeat", &[], None).await;
    assert_eq!(header(&wrong, "allow"), "GET");
    expect(wrong, 405, "wrong method");

    mutex_contract(url).await;
    jobs_contract(&w).await;
    without_kv(&w, &m).await;
    stop(w).await;
}
