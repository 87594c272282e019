//! The reference Workers (`mock/workers/`) under miniflare, their KV routed
//! to the in-process mock KV: every endpoint answers as
//! `mock/workers/README.md` documents, and under the KV daily write limit
//! the KV control plane stops while the D1/DO one keeps progressing. The
//! mock enforces KV's one-write-per-second-per-key limit, as Cloudflare
//! does: without a fault both Workers pass. Crons are fired explicitly and
//! the mock's clock is moved forward where the sequence has time pass (a
//! minute between crons, a second before a lock is granted again); nothing
//! waits for wall-clock time. Needs Node.js; fails without it unless KVCHAOS_SKIP_NODE=1
//! (then skipped with a printed reason).

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use kvchaos::local::{CronOutcome, LocalSpec, LocalWorker, Stopped, group_alive};
use kvchaos::mockkv::VirtualClock;
use serde_json::{Value, json};

const WORKERS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/mock/workers");
const KV_WORKER: &str = "kv-control-plane";
const D1_WORKER: &str = "d1-do-control-plane";
const CRON: &str = "*/1 * * * *";
/// Some minute, as the scheduled time of the first fired cron.
const T0: u64 = 1_700_000_040_000;
const MINUTE_MS: u64 = 60_000;
/// A little over KV's minimum interval between two writes of one key.
const KV_SAME_KEY_INTERVAL: Duration = Duration::from_millis(1_100);
const READY_TIMEOUT: Duration = Duration::from_secs(90);
/// `RATE_LIMIT` in both Workers' `wrangler.toml`.
const RATE_LIMIT: usize = 10;

// One miniflare test at a time across files, the launcher install, and the mock KV (the
// Cloudflare default: same-key write limit on, clock in real time; tests move it forward
// where time passes) come from the local-target tests.
use crate::local::{Mock, ONE_AT_A_TIME, node_ready};

async fn mock() -> Mock {
    crate::local::mock(true).await
}

async fn start(worker: &str, kv_addr: SocketAddr, log_dir: &Path) -> LocalWorker {
    start_dir(&Path::new(WORKERS).join(worker), kv_addr, log_dir).await
}

/// The Worker in `dir` under miniflare, its KV routed to the mock at
/// `kv_addr`, its log in `log_dir/<dir name>.log`.
pub(crate) async fn start_dir(dir: &Path, kv_addr: SocketAddr, log_dir: &Path) -> LocalWorker {
    let worker = dir
        .file_name()
        .map_or_else(|| "worker".to_owned(), |n| n.to_string_lossy().into_owned());
    let mut spec = LocalSpec::new(dir, Some(kv_addr), log_dir.join(format!("{worker}.log")));
    spec.ready_timeout = READY_TIMEOUT;
    let w = LocalWorker::start(&spec)
        .await
        .unwrap_or_else(|e| panic!("starting {worker}: {e:#}"));
    println!("{worker}: startup-to-ready {} ms", w.startup().as_millis());
    w
}

/// Stops `w` gracefully and waits until its whole process group is gone.
pub(crate) async fn stop(w: LocalWorker) {
    let pgid = w.pgid();
    assert_eq!(w.stop().await.expect("stop"), Stopped::Graceful);
    let deadline = Instant::now() + Duration::from_secs(10);
    while group_alive(pgid) {
        assert!(
            Instant::now() < deadline,
            "process group {pgid} outlived stop"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A Worker's answer: status, headers, JSON body (`Null` when empty).
#[derive(Debug)]
pub(crate) struct Answer {
    pub(crate) status: u16,
    pub(crate) headers: http::HeaderMap,
    pub(crate) body: Value,
}

/// One request to the Worker at `url`, on its own connection; the answer's
/// body must be JSON or empty.
pub(crate) async fn call(
    url: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<Value>,
) -> Answer {
    let (status, headers, bytes) = call_raw(url, method, path, headers, body).await;
    let body = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes).unwrap_or_else(|e| {
            panic!(
                "{method} {path}: answer is not JSON ({e}): {}",
                String::from_utf8_lossy(&bytes)
            )
        })
    };
    Answer {
        status,
        headers,
        body,
    }
}

/// One request to the Worker at `url`, on its own connection: status,
/// headers and the body's bytes, whatever they are.
pub(crate) async fn call_raw(
    url: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<Value>,
) -> (u16, http::HeaderMap, Bytes) {
    let authority = url.trim_start_matches("http://").to_owned();
    let stream = tokio::net::TcpStream::connect(&authority)
        .await
        .expect("connect to the Worker");
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .expect("handshake");
    tokio::spawn(conn);
    let mut req = http::Request::builder()
        .method(method)
        .uri(path)
        .header(http::header::HOST, authority);
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    let payload = match body {
        Some(b) => {
            req = req.header(http::header::CONTENT_TYPE, "application/json");
            Bytes::from(b.to_string())
        }
        None => Bytes::new(),
    };
    let req = req.body(Full::new(payload)).expect("request");
    let resp = tokio::time::timeout(Duration::from_secs(30), sender.send_request(req))
        .await
        .unwrap_or_else(|_| panic!("{method} {path}: no answer within 30 s"))
        .expect("response");
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let bytes = resp.into_body().collect().await.expect("body").to_bytes();
    (status, headers, bytes)
}

async fn get(url: &str, path: &str) -> Answer {
    call(url, "GET", path, &[], None).await
}

async fn post(url: &str, path: &str, body: Value) -> Answer {
    call(url, "POST", path, &[], Some(body)).await
}

/// `status` and the body, or a panic that shows both.
fn expect(a: Answer, status: u16, what: &str) -> Value {
    assert_eq!(a.status, status, "{what}: {}", a.body);
    if status >= 400 {
        assert!(
            a.body["error"].is_string(),
            "{what}: a {status} carries an error: {}",
            a.body
        );
    }
    a.body
}

/// The cached read's origin, as README.md defines it.
fn origin(key: &str) -> String {
    let mut h: u32 = 0x811c_9dc5;
    for b in key.bytes() {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    format!("origin:{key}:{h:08x}")
}

async fn cron_status(url: &str) -> Value {
    expect(get(url, "/cron/status").await, 200, "cron status")
}

async fn fire(w: &LocalWorker, scheduled: u64) -> CronOutcome {
    w.fire_cron(CRON, scheduled).await.expect("fire cron")
}

/// Time passes on the mock's clock (TTLs and the same-key write limit run on
/// it; the Workers' own `Date.now()` is wall-clock time and does not move).
fn pass(clock: &VirtualClock, d: Duration) {
    clock.advance(d);
}

const A_MINUTE: Duration = Duration::from_millis(MINUTE_MS);

/// Writes the mock refused because the key was written less than a second before.
fn same_key_refusals(m: &Mock) -> u64 {
    m.kv.stats()
        .counts
        .iter()
        .filter(|r| r.outcome == kvchaos::mockkv::stats::Outcome::SameKeyRate)
        .map(|r| r.count)
        .sum()
}

/// Every endpoint of README.md, in one pass, against a fresh Worker.
async fn exercise_api(w: &LocalWorker, worker: &str, clock: &VirtualClock) {
    let url = w.url();
    assert_eq!(
        expect(get(url, "/health").await, 200, "health"),
        json!({"ok": true, "worker": worker})
    );
    assert_eq!(cron_status(url).await, json!({"last_run": null, "runs": 0}));
    expect(get(url, "/nowhere").await, 404, "unknown path");
    expect(get(url, "/queue/claim").await, 405, "wrong method");

    // Locks: grant, contention, release, strictly increasing tokens.
    let a = expect(
        post(
            url,
            "/locks/l1/acquire",
            json!({"holder": "h1", "ttl_ms": 30_000}),
        )
        .await,
        200,
        "acquire",
    );
    assert_eq!(a["acquired"], true);
    assert_eq!(a["holder"], "h1");
    let t1 = a["token"].as_u64().expect("token");
    assert!(a["expires_at"].as_u64().is_some(), "{a}");
    let c = expect(
        post(
            url,
            "/locks/l1/acquire",
            json!({"holder": "h2", "ttl_ms": 30_000}),
        )
        .await,
        409,
        "contended acquire",
    );
    assert_eq!(
        (&c["acquired"], &c["holder"]),
        (&json!(false), &json!("h1"))
    );
    let held = expect(get(url, "/locks/l1").await, 200, "lock state");
    assert_eq!(
        (&held["holder"], &held["token"]),
        (&json!("h1"), &json!(t1))
    );
    let r = expect(
        post(
            url,
            "/locks/l1/release",
            json!({"holder": "h1", "token": t1 + 7}),
        )
        .await,
        409,
        "release with a wrong token",
    );
    assert_eq!(r["released"], false);
    let r = expect(
        post(
            url,
            "/locks/l1/release",
            json!({"holder": "h1", "token": t1}),
        )
        .await,
        200,
        "release",
    );
    assert_eq!(r, json!({"released": true}));
    expect(get(url, "/locks/l1").await, 404, "free lock");
    expect(
        post(
            url,
            "/locks/l1/release",
            json!({"holder": "h1", "token": t1}),
        )
        .await,
        409,
        "second release",
    );
    // The KV Worker writes `locktoken:l1` on every grant: one lock name can
    // be granted at most once a second there, as KV allows.
    pass(clock, KV_SAME_KEY_INTERVAL);
    let a2 = expect(
        post(
            url,
            "/locks/l1/acquire",
            json!({"holder": "h2", "ttl_ms": 30_000}),
        )
        .await,
        200,
        "acquire after release",
    );
    let t2 = a2["token"].as_u64().expect("token");
    assert!(t2 > t1, "fencing tokens increase: {t1} then {t2}");
    expect(
        post(url, "/locks/l1/acquire", json!({"holder": "h3"})).await,
        400,
        "acquire without ttl_ms",
    );

    // Queue: enqueue (idempotent), claim, complete, result, stats.
    for id in ["a", "b"] {
        let e = expect(
            post(
                url,
                "/queue/enqueue",
                json!({"id": id, "payload": {"n": id}}),
            )
            .await,
            201,
            "enqueue",
        );
        assert_eq!(e, json!({"id": id, "enqueued": true, "duplicate": false}));
    }
    let e = expect(
        post(url, "/queue/enqueue", json!({"id": "a", "payload": 1})).await,
        200,
        "repeated enqueue",
    );
    assert_eq!(e, json!({"id": "a", "enqueued": false, "duplicate": true}));
    let claim = json!({"consumer": "c1", "lease_ms": 30_000});
    let t = expect(post(url, "/queue/claim", claim.clone()).await, 200, "claim");
    assert_eq!(t["task"]["id"], "a", "oldest first: {t}");
    assert_eq!(t["task"]["payload"], json!({"n": "a"}));
    assert_eq!(t["task"]["attempts"], 1);
    assert!(t["task"]["lease_until"].as_u64().is_some(), "{t}");
    let r = expect(get(url, "/queue/result/a").await, 200, "result");
    assert_eq!(
        r,
        json!({"id": "a", "status": "leased", "result": null, "attempts": 1})
    );
    assert_eq!(
        expect(get(url, "/queue/stats").await, 200, "stats"),
        json!({"pending": 1, "leased": 1, "done": 0})
    );
    let c = expect(
        post(
            url,
            "/queue/complete",
            json!({"id": "a", "consumer": "c2", "result": 0}),
        )
        .await,
        409,
        "complete by another consumer",
    );
    assert_eq!(
        (&c["completed"], &c["status"]),
        (&json!(false), &json!("leased"))
    );
    let c = expect(
        post(
            url,
            "/queue/complete",
            json!({"id": "a", "consumer": "c1", "result": {"ok": 42}}),
        )
        .await,
        200,
        "complete",
    );
    assert_eq!(c, json!({"completed": true}));
    let r = expect(get(url, "/queue/result/a").await, 200, "result");
    assert_eq!(
        r,
        json!({"id": "a", "status": "done", "result": {"ok": 42}, "attempts": 1})
    );
    let c = expect(
        post(url, "/queue/complete", json!({"id": "a", "consumer": "c1"})).await,
        409,
        "complete twice",
    );
    assert_eq!(c["status"], "done");
    expect(get(url, "/queue/result/zzz").await, 404, "unknown task");
    expect(
        post(
            url,
            "/queue/complete",
            json!({"id": "zzz", "consumer": "c1"}),
        )
        .await,
        404,
        "complete an unknown task",
    );
    let t = expect(
        post(url, "/queue/claim", claim.clone()).await,
        200,
        "claim b",
    );
    assert_eq!(t["task"]["id"], "b");
    let none = post(url, "/queue/claim", claim.clone()).await;
    assert_eq!(
        (none.status, &none.body),
        (204, &Value::Null),
        "nothing due"
    );
    // An expired lease is claimable again: lease "c" for 1 ms.
    expect(
        post(url, "/queue/enqueue", json!({"id": "c", "payload": null})).await,
        201,
        "enqueue c",
    );
    let t = expect(
        post(
            url,
            "/queue/claim",
            json!({"consumer": "c1", "lease_ms": 1}),
        )
        .await,
        200,
        "claim c",
    );
    assert_eq!(t["task"]["id"], "c");
    // A 1 ms lease claimed again: the KV Worker writes the lease key on each
    // claim, so a second must pass on its clock (the lease is long gone).
    pass(clock, KV_SAME_KEY_INTERVAL);
    let deadline = Instant::now() + Duration::from_secs(5);
    let again = loop {
        let a = post(
            url,
            "/queue/claim",
            json!({"consumer": "c3", "lease_ms": 30_000}),
        )
        .await;
        if a.status == 200 || Instant::now() > deadline {
            break expect(a, 200, "claim after the lease expired");
        }
    };
    assert_eq!(
        (&again["task"]["id"], &again["task"]["attempts"]),
        (&json!("c"), &json!(2))
    );
    expect(
        post(url, "/queue/complete", json!({"id": "c", "consumer": "c1"})).await,
        409,
        "complete with an expired lease",
    );
    expect(
        post(
            url,
            "/queue/complete",
            json!({"id": "c", "consumer": "c3", "result": "r"}),
        )
        .await,
        200,
        "complete by the new lease holder",
    );

    // Cron: runs advance, due tasks are completed; "b" stays leased to c1.
    for id in ["d", "e"] {
        expect(
            post(url, "/queue/enqueue", json!({"id": id, "payload": id})).await,
            201,
            "enqueue for cron",
        );
    }
    assert_eq!(fire(w, T0).await, CronOutcome::Ok);
    assert_eq!(cron_status(url).await, json!({"last_run": T0, "runs": 1}));
    let r = expect(get(url, "/queue/result/d").await, 200, "result d");
    assert_eq!(r["status"], "done");
    assert_eq!(
        r["result"],
        json!({"processed_by": "cron", "scheduled_time": T0})
    );
    assert_eq!(
        expect(get(url, "/queue/stats").await, 200, "stats"),
        json!({"pending": 0, "leased": 1, "done": 4})
    );
    pass(clock, A_MINUTE);
    assert_eq!(fire(w, T0 + MINUTE_MS).await, CronOutcome::Ok);
    assert_eq!(
        cron_status(url).await,
        json!({"last_run": T0 + MINUTE_MS, "runs": 2})
    );
    expect(
        get(url, "/locks/cron").await,
        404,
        "the cron run released its lock",
    );

    // Webhook dedupe.
    let hook = |key: &'static str| async move {
        call(
            url,
            "POST",
            "/webhook",
            &[("idempotency-key", key)],
            Some(json!({})),
        )
        .await
    };
    assert_eq!(
        expect(hook("k1").await, 200, "webhook"),
        json!({"processed": true, "duplicate": false})
    );
    assert_eq!(
        expect(hook("k1").await, 200, "repeated webhook"),
        json!({"processed": false, "duplicate": true})
    );
    expect(hook("k2").await, 200, "webhook k2");
    expect(
        post(url, "/webhook", json!({})).await,
        400,
        "webhook without key",
    );
    assert_eq!(
        expect(get(url, "/webhook/count").await, 200, "webhook count"),
        json!({"count": 2})
    );

    // Rate limit: RATE_LIMIT calls per key per minute window, then 429.
    // A window may roll over mid-loop, so up to two windows' worth are allowed.
    let mut ok = 0;
    let limited = loop {
        let a = call(url, "GET", "/api/limited", &[("x-api-key", "key-1")], None).await;
        if a.status == 429 {
            break a;
        }
        let b = expect(a, 200, "rate-limited call");
        assert_eq!((&b["ok"], &b["limit"]), (&json!(true), &json!(RATE_LIMIT)));
        ok += 1;
        assert!(ok <= 2 * RATE_LIMIT, "no 429 after {ok} calls");
    };
    assert!(ok >= RATE_LIMIT, "429 after only {ok} calls");
    assert!(limited.headers.contains_key("retry-after"), "{limited:?}");
    let body = expect(limited, 429, "limited");
    assert_eq!(body["limit"], RATE_LIMIT);
    let other = call(url, "GET", "/api/limited", &[("x-api-key", "key-2")], None).await;
    expect(other, 200, "another key has its own limit");
    expect(get(url, "/api/limited").await, 400, "no API key");

    // Cached read: miss, then hit.
    for expected in ["miss", "hit"] {
        let c = expect(get(url, "/cache/alpha").await, 200, "cache");
        assert_eq!(
            c,
            json!({"key": "alpha", "value": origin("alpha"), "cache": expected})
        );
    }
}

#[test]
fn both_workers_share_one_api_module() {
    let kv = std::fs::read(Path::new(WORKERS).join(KV_WORKER).join("api.js")).expect("read");
    let d1 = std::fs::read(Path::new(WORKERS).join(D1_WORKER).join("api.js")).expect("read");
    assert!(
        kv == d1,
        "mock/workers/*/api.js differ: keep them identical (one API)"
    );
    assert!(
        Path::new(WORKERS)
            .join(D1_WORKER)
            .join("migrations/0001_init.sql")
            .is_file()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kv_control_plane_answers_as_documented() {
    if !node_ready().await {
        return;
    }
    let _one = ONE_AT_A_TIME.lock().await;
    let logs = tempfile::tempdir().expect("tempdir");
    let m = mock().await;
    let w = start(KV_WORKER, m.addr, logs.path()).await;
    exercise_api(&w, KV_WORKER, m.kv.clock()).await;
    assert_eq!(
        same_key_refusals(&m),
        0,
        "no write refused by the same-key limit"
    );
    // Its state really is in KV, through the mock.
    for key in [
        "cron:state",
        "oauth:refresh_token",
        "idem:webhook:k1",
        "queue:task:a",
        "queue:lease:a",
        "queue:done:a",
        "cache:alpha",
    ] {
        assert!(m.kv.peek("KV", key).is_some(), "'{key}' is in the mock KV");
    }
    stop(w).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn d1_do_control_plane_answers_as_documented() {
    if !node_ready().await {
        return;
    }
    let _one = ONE_AT_A_TIME.lock().await;
    let logs = tempfile::tempdir().expect("tempdir");
    let m = mock().await;
    let w = start(D1_WORKER, m.addr, logs.path()).await;
    exercise_api(&w, D1_WORKER, m.kv.clock()).await;
    assert_eq!(
        same_key_refusals(&m),
        0,
        "no write refused by the same-key limit"
    );
    // KV holds the cache and nothing else.
    assert_eq!(
        m.kv.peek("CACHE", "alpha").as_deref(),
        Some(origin("alpha").as_bytes())
    );
    stop(w).await;
}

/// Both Workers on one mock KV: the daily put limit stops the KV control
/// plane (cron exceptions, failing claims) while the D1/DO one keeps
/// running its cron and draining its queue, even with every KV operation
/// failing; once the fault clears, the KV Worker recovers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kv_put_limit_stops_the_kv_control_plane_but_not_d1_do() {
    if !node_ready().await {
        return;
    }
    let _one = ONE_AT_A_TIME.lock().await;
    let logs = tempfile::tempdir().expect("tempdir");
    let m = mock().await;
    let kvw = start(KV_WORKER, m.addr, logs.path()).await;
    let d1w = start(D1_WORKER, m.addr, logs.path()).await;

    // Healthy: one cron run each, then three tasks waiting in each queue.
    for w in [&kvw, &d1w] {
        assert_eq!(fire(w, T0).await, CronOutcome::Ok);
        assert_eq!(
            cron_status(w.url()).await,
            json!({"last_run": T0, "runs": 1})
        );
        for i in 1..=3 {
            expect(
                post(
                    w.url(),
                    "/queue/enqueue",
                    json!({"id": format!("t{i}"), "payload": i}),
                )
                .await,
                201,
                "enqueue",
            );
        }
    }

    // The free plan's daily write limit is used up.
    m.kv.add_fault("kind=daily-limit,ops=put".parse().expect("fault spec"))
        .expect("add fault");

    // KV control plane: the cron run throws and records nothing; claims fail.
    // A minute later on the mock too, so only the fault can refuse a write.
    pass(m.kv.clock(), A_MINUTE);
    let t1 = T0 + MINUTE_MS;
    assert_eq!(fire(&kvw, t1).await, CronOutcome::Exception);
    assert_eq!(
        cron_status(kvw.url()).await,
        json!({"last_run": T0, "runs": 1}),
        "the KV Worker's cron did not advance"
    );
    let claim = json!({"consumer": "c1", "lease_ms": 30_000});
    let failed = expect(
        post(kvw.url(), "/queue/claim", claim.clone()).await,
        503,
        "KV claim",
    );
    assert_eq!(failed["backend"], "kv");
    assert!(
        failed["error"]
            .as_str()
            .is_some_and(|e| e.contains("limit exceeded for the day")),
        "{failed}"
    );
    expect(
        post(
            kvw.url(),
            "/locks/x/acquire",
            json!({"holder": "h", "ttl_ms": 1000}),
        )
        .await,
        503,
        "KV lock acquire",
    );
    assert_eq!(
        expect(
            get(kvw.url(), "/queue/stats").await,
            200,
            "KV stats (reads work)"
        ),
        json!({"pending": 3, "leased": 0, "done": 0}),
        "the KV Worker's queue is stuck"
    );

    // D1/DO control plane: the cron keeps advancing and drains the queue.
    assert_eq!(fire(&d1w, t1).await, CronOutcome::Ok);
    assert_eq!(
        cron_status(d1w.url()).await,
        json!({"last_run": t1, "runs": 2})
    );
    assert_eq!(
        expect(get(d1w.url(), "/queue/stats").await, 200, "D1 stats"),
        json!({"pending": 0, "leased": 0, "done": 3})
    );
    let c = expect(
        get(d1w.url(), "/cache/beta").await,
        200,
        "cache under the put limit",
    );
    assert_eq!(c["cache"], "bypass");

    // Every KV operation failing changes nothing for the D1/DO Worker.
    m.kv.add_fault("kind=error,status=503".parse().expect("fault spec"))
        .expect("add fault");
    let url = d1w.url();
    expect(
        post(url, "/queue/enqueue", json!({"id": "t4", "payload": 4})).await,
        201,
        "enqueue",
    );
    let t = expect(post(url, "/queue/claim", claim.clone()).await, 200, "claim");
    assert_eq!(t["task"]["id"], "t4");
    expect(
        post(
            url,
            "/queue/complete",
            json!({"id": "t4", "consumer": "c1", "result": 4}),
        )
        .await,
        200,
        "complete",
    );
    expect(
        post(url, "/queue/enqueue", json!({"id": "t5"})).await,
        201,
        "enqueue",
    );
    let t2 = t1 + MINUTE_MS;
    pass(m.kv.clock(), A_MINUTE);
    assert_eq!(fire(&d1w, t2).await, CronOutcome::Ok);
    assert_eq!(cron_status(url).await, json!({"last_run": t2, "runs": 3}));
    assert_eq!(
        expect(get(url, "/queue/stats").await, 200, "D1 stats"),
        json!({"pending": 0, "leased": 0, "done": 5})
    );
    let l = expect(
        post(
            url,
            "/locks/x/acquire",
            json!({"holder": "h", "ttl_ms": 30_000}),
        )
        .await,
        200,
        "DO lock",
    );
    expect(
        post(
            url,
            "/locks/x/release",
            json!({"holder": "h", "token": l["token"]}),
        )
        .await,
        200,
        "DO release",
    );
    let hook = call(url, "POST", "/webhook", &[("idempotency-key", "w1")], None).await;
    assert_eq!(expect(hook, 200, "webhook")["processed"], true);
    let limited = call(url, "GET", "/api/limited", &[("x-api-key", "k")], None).await;
    expect(limited, 200, "rate-limited call");
    let c = expect(get(url, "/cache/alpha").await, 200, "cache with KV down");
    assert_eq!(
        c,
        json!({"key": "alpha", "value": origin("alpha"), "cache": "bypass"})
    );

    // Healed: the KV Worker's cron runs again and drains its queue.
    m.kv.clear_all_faults();
    let t3 = t2 + MINUTE_MS;
    pass(m.kv.clock(), A_MINUTE);
    assert_eq!(fire(&kvw, t3).await, CronOutcome::Ok);
    assert_eq!(
        cron_status(kvw.url()).await,
        json!({"last_run": t3, "runs": 2})
    );
    assert_eq!(
        expect(get(kvw.url(), "/queue/stats").await, 200, "KV stats"),
        json!({"pending": 0, "leased": 0, "done": 3})
    );
    let none = post(kvw.url(), "/queue/claim", claim).await;
    assert_eq!(none.status, 204, "{:?}", none.body);
    expect(
        post(
            kvw.url(),
            "/locks/x/acquire",
            json!({"holder": "h", "ttl_ms": 1000}),
        )
        .await,
        200,
        "KV lock after healing",
    );

    assert_eq!(
        same_key_refusals(&m),
        0,
        "no write refused by the same-key limit"
    );
    stop(kvw).await;
    stop(d1w).await;
}

/// No fault, the same-key write limit on: crons a minute apart all succeed,
/// each one advances the KV Worker's `/cron/status` and the queue drains,
/// also of tasks enqueued just before the tick (completed within a second
/// of their enqueue).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kv_control_plane_crons_in_a_row_pass_under_the_same_key_limit() {
    if !node_ready().await {
        return;
    }
    let _one = ONE_AT_A_TIME.lock().await;
    let logs = tempfile::tempdir().expect("tempdir");
    let m = mock().await;
    let w = start(KV_WORKER, m.addr, logs.path()).await;
    let url = w.url();
    const BACKLOG: u64 = 25;
    /// `CRON_BATCH` in the KV Worker's `wrangler.toml`.
    const BATCH: u64 = 10;
    const RUNS: u64 = 5;
    for i in 0..BACKLOG {
        expect(
            post(
                url,
                "/queue/enqueue",
                json!({"id": format!("t{i:02}"), "payload": i}),
            )
            .await,
            201,
            "enqueue",
        );
    }
    for run in 0..RUNS {
        if run > 0 {
            pass(m.kv.clock(), A_MINUTE);
        }
        // Enqueued right before the tick: the newest task, completed within a
        // second once the backlog is gone.
        expect(
            post(url, "/queue/enqueue", json!({"id": format!("late{run}")})).await,
            201,
            "enqueue just before the tick",
        );
        let scheduled = T0 + run * MINUTE_MS;
        assert_eq!(fire(&w, scheduled).await, CronOutcome::Ok, "cron {run}");
        assert_eq!(
            cron_status(url).await,
            json!({"last_run": scheduled, "runs": run + 1}),
            "cron {run} advanced the status"
        );
        let total = BACKLOG + run + 1;
        let done = (BATCH * (run + 1)).min(total);
        assert_eq!(
            expect(get(url, "/queue/stats").await, 200, "stats"),
            json!({"pending": total - done, "leased": 0, "done": done}),
            "after cron {run}"
        );
        expect(
            get(url, "/locks/cron").await,
            404,
            "the cron lock is released",
        );
    }
    let r = expect(get(url, "/queue/result/late4").await, 200, "result");
    assert_eq!(
        r,
        json!({"id": "late4", "status": "done", "attempts": 1,
               "result": {"processed_by": "cron", "scheduled_time": T0 + (RUNS - 1) * MINUTE_MS}})
    );
    let none = post(
        url,
        "/queue/claim",
        json!({"consumer": "c", "lease_ms": 30_000}),
    )
    .await;
    assert_eq!(none.status, 204, "the queue is drained: {:?}", none.body);
    assert_eq!(
        same_key_refusals(&m),
        0,
        "no write refused by the same-key limit"
    );
    stop(w).await;
}
