//! The local Worker target: the kv-probe fixture Worker under miniflare,
//! its KV routed to the in-process mock KV (or kept in miniflare's own KV
//! for comparison). Needs Node.js; skipped with a printed reason only when
//! `node` is not on PATH. Runs one miniflare at a time: the machine is
//! small and shared.

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use kvchaos::local::{
    self, CronOutcome, LocalSpec, LocalWorker, Stopped, default_launcher_dir, ensure_installed,
    group_alive, group_members,
};
use kvchaos::mockkv::{self, FaultSpec, MockKv, MockKvConfig, VirtualClock};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

const FIXTURE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/workers/kv-probe"
);
const READY_TIMEOUT: Duration = Duration::from_secs(90);

/// One miniflare at a time across this binary's tests.
pub(crate) static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// False (after saying why) when Node.js is missing; installs the
/// launcher's packages otherwise.
pub(crate) async fn node_ready() -> bool {
    if !crate::support::node_available() {
        return false;
    }
    ensure_installed(&default_launcher_dir())
        .await
        .expect("npm ci of mock/miniflare");
    true
}

pub(crate) struct Mock {
    pub(crate) kv: MockKv,
    pub(crate) addr: SocketAddr,
    cancel: CancellationToken,
}

impl Drop for Mock {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

pub(crate) async fn mock(same_key_write_limit: bool) -> Mock {
    let config = MockKvConfig {
        same_key_write_limit,
        ..MockKvConfig::default()
    };
    let kv = MockKv::new(config, VirtualClock::real_time(1.0));
    let listener = mockkv::bind("127.0.0.1:0".parse().expect("addr"), false)
        .await
        .expect("bind mock");
    let addr = listener.local_addr().expect("addr");
    let cancel = CancellationToken::new();
    tokio::spawn(mockkv::serve(listener, kv.clone(), cancel.clone()));
    Mock { kv, addr, cancel }
}

async fn start(kv_addr: Option<SocketAddr>, log_dir: &Path, name: &str) -> LocalWorker {
    let mut spec = LocalSpec::new(FIXTURE, kv_addr, log_dir.join(format!("{name}.log")));
    spec.ready_timeout = READY_TIMEOUT;
    let w = LocalWorker::start(&spec)
        .await
        .unwrap_or_else(|e| panic!("starting {name}: {e:#}"));
    println!(
        "local: {name}: startup-to-ready {} ms",
        w.startup().as_millis()
    );
    w
}

/// POST `body` as JSON to `url` + `path`; the answer as JSON.
pub(crate) async fn post(url: &str, path: &str, body: &Value) -> Value {
    let authority = url.trim_start_matches("http://").to_owned();
    let stream = tokio::net::TcpStream::connect(&authority)
        .await
        .expect("connect to the Worker");
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .expect("handshake");
    tokio::spawn(conn);
    let req = http::Request::post(path)
        .header(http::header::HOST, authority)
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::from(body.to_string())))
        .expect("request");
    let resp = tokio::time::timeout(Duration::from_secs(30), sender.send_request(req))
        .await
        .expect("Worker answers within 30 s")
        .expect("response");
    let status = resp.status();
    let bytes = resp.into_body().collect().await.expect("body").to_bytes();
    assert!(
        status.is_success(),
        "{status}: {}",
        String::from_utf8_lossy(&bytes)
    );
    serde_json::from_slice(&bytes).expect("JSON answer")
}

async fn run_ops(w: &LocalWorker, binding: &str, ops: &Value) -> Vec<Value> {
    let answer = post(w.url(), "/run", &json!({ "binding": binding, "ops": ops })).await;
    answer["results"].as_array().expect("results array").clone()
}

pub(crate) fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}

/// Make two backends' results comparable: cursors are opaque (only their
/// presence matters), expirations become whole minutes after `sent_at`.
pub(crate) fn normalize(v: &mut Value, sent_at: u64) {
    match v {
        Value::Object(map) => {
            if let Some(c) = map.get_mut("cursor")
                && c.is_string()
            {
                *c = json!("<cursor>");
            }
            if let Some(e) = map.get_mut("expiration")
                && let Some(secs) = e.as_u64()
            {
                let minutes = (secs.saturating_sub(sent_at) as f64 / 60.0).round();
                *e = json!(format!("now+{minutes}min"));
            }
            map.values_mut().for_each(|x| normalize(x, sent_at));
        }
        Value::Array(items) => items.iter_mut().for_each(|x| normalize(x, sent_at)),
        _ => {}
    }
}

/// The scripted sequence both backends run.
pub(crate) fn sequence() -> Value {
    json!([
        {"op": "put", "key": "a:1", "value": "v1", "metadata": {"m": 1}},
        {"op": "put", "key": "a:2", "value": "v2", "expirationTtl": 120},
        {"op": "put", "key": "a:3", "value": "v3", "expirationTtl": 300, "metadata": {"n": "x", "deep": [1, {"k": true}]}},
        {"op": "put", "key": "a:0", "value": "zero"},
        {"op": "put", "key": "b:1", "value": "other"},
        {"op": "put", "key": "sp ace/é:%25?#", "value": "odd key"},
        {"op": "put", "key": "a:1", "value": "v1b", "metadata": {"m": 2}},
        {"op": "get", "key": "a:1"},
        {"op": "getWithMetadata", "key": "a:1"},
        {"op": "getWithMetadata", "key": "a:2"},
        {"op": "getWithMetadata", "key": "a:3"},
        {"op": "getWithMetadata", "key": "missing"},
        {"op": "get", "key": "missing"},
        {"op": "get", "key": "sp ace/é:%25?#"},
        {"op": "list", "prefix": "a:", "limit": 2},
        {"op": "list", "prefix": "a:", "limit": 2, "cursor": "$prev"},
        {"op": "list", "prefix": "a:", "limit": 3},
        {"op": "list", "prefix": "a:", "limit": 3, "cursor": "$prev"},
        {"op": "list", "prefix": "a:", "limit": 1},
        {"op": "list"},
        {"op": "list", "prefix": "zzz"},
        {"op": "delete", "key": "a:0"},
        {"op": "delete", "key": "missing"},
        {"op": "delete", "key": "sp ace/é:%25?#"},
        {"op": "get", "key": "a:0"},
        {"op": "list", "prefix": "a:"},
        {"op": "list"},
        // Refused operations: the error text the Worker sees must match too.
        {"op": "put", "key": "t:short", "value": "x", "expirationTtl": 30},
        {"op": "put", "key": "", "value": "x"},
        {"op": "get", "key": ""},
        {"op": "list", "limit": 1001}
    ])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routed_kv_matches_miniflares_own_kv() {
    if !node_ready().await {
        return;
    }
    let _one = ONE_AT_A_TIME.lock().await;
    let logs = tempfile::tempdir().expect("tempdir");
    let m = mock(false).await;

    let mut results = Vec::new();
    for (name, kv_addr) in [("routed", Some(m.addr)), ("miniflare-kv", None)] {
        let w = start(kv_addr, logs.path(), name).await;
        let sent_at = now_secs();
        let mut r = Value::Array(run_ops(&w, "KV", &sequence()).await);
        normalize(&mut r, sent_at);
        assert_eq!(w.stop().await.expect("stop"), Stopped::Graceful);
        results.push(r);
    }
    let (routed, own) = (&results[0], &results[1]);
    let ops = sequence();
    for (i, (a, b)) in routed
        .as_array()
        .expect("array")
        .iter()
        .zip(own.as_array().expect("array"))
        .enumerate()
    {
        assert_eq!(
            a, b,
            "operation {i} {} differs: mock KV (left) vs miniflare's KV (right)",
            ops[i]
        );
    }
    assert_eq!(routed, own);
    // The routed run really went through the mock.
    assert_eq!(
        m.kv.peek("KV", "a:1").as_deref(),
        Some(&b"v1b"[..]),
        "the routed Worker's writes are in the mock's KV namespace"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faults_crons_bindings_and_stop() {
    if !node_ready().await {
        return;
    }
    let _one = ONE_AT_A_TIME.lock().await;
    let logs = tempfile::tempdir().expect("tempdir");
    let m = mock(true).await;
    let w = start(Some(m.addr), logs.path(), "faults").await;

    // Each binding is its own namespace in the mock.
    let r = run_ops(
        &w,
        "CACHE",
        &json!([{"op": "put", "key": "c:1", "value": "cached"}]),
    )
    .await;
    assert_eq!(r, vec![json!({"ok": true})]);
    assert_eq!(m.kv.peek("CACHE", "c:1").as_deref(), Some(&b"cached"[..]));
    assert_eq!(m.kv.peek("KV", "c:1"), None);

    // (b) a daily-limit fault on put, set through the Rust handle.
    let id =
        m.kv.add_fault(
            "kind=daily-limit,ops=put"
                .parse::<FaultSpec>()
                .expect("fault spec"),
        )
        .expect("add fault");
    let r = run_ops(
        &w,
        "KV",
        &json!([
            {"op": "put", "key": "q:1", "value": "x"},
            {"op": "get", "key": "q:1"}
        ]),
    )
    .await;
    let err = r[0]["error"].as_str().unwrap_or_default();
    assert!(
        err.contains("limit exceeded for the day"),
        "put under a daily-limit fault: {r:?}"
    );
    println!("local: daily-limit error as the Worker sees it: {err}");
    assert_eq!(r[1], json!({"value": null}), "gets are not limited");
    assert!(m.kv.clear_fault(id));
    let r = run_ops(
        &w,
        "KV",
        &json!([{"op": "put", "key": "q:1", "value": "x"}]),
    )
    .await;
    assert_eq!(r, vec![json!({"ok": true})], "writes work again");

    // (c) a cron fired through the launcher runs the scheduled handler.
    let scheduled = 1_700_000_000_000_u64;
    let outcome = w
        .fire_cron("*/1 * * * *", scheduled)
        .await
        .expect("fire cron");
    assert_eq!(outcome, CronOutcome::Ok);
    let last =
        m.kv.peek("KV", "cron:last")
            .expect("the scheduled handler wrote cron:last through the mock");
    let last: Value = serde_json::from_slice(&last).expect("json");
    assert_eq!(
        last,
        json!({"cron": "*/1 * * * *", "scheduledTime": scheduled})
    );
    assert_eq!(w.ready().crons, vec!["*/1 * * * *".to_owned()]);

    // A failing handler is an exception, not an error of the launcher:
    // with puts limited, the handler's put throws.
    m.kv.add_fault("kind=daily-limit,ops=put".parse().expect("spec"))
        .expect("add fault");
    let outcome = w.fire_cron("0 0 * * *", scheduled).await.expect("fire");
    assert_eq!(outcome, CronOutcome::Exception);
    m.kv.clear_all_faults();

    // (d) stop: every process of the run is gone.
    let pgid = w.pgid();
    let members = group_members(pgid);
    assert!(
        members.iter().any(|(_, name)| name.contains("workerd")),
        "workerd runs in the launcher's process group: {members:?}"
    );
    let log_path = w.log_path().to_owned();
    assert_eq!(w.stop().await.expect("stop"), Stopped::Graceful);
    assert_group_gone(pgid).await;
    for (pid, _) in members {
        assert!(
            !Path::new(&format!("/proc/{pid}")).exists() || is_zombie(pid),
            "pid {pid} still runs"
        );
    }
    let log = std::fs::read_to_string(log_path).expect("worker log");
    assert!(
        log.contains("kv-probe: scheduled */1 * * * *"),
        "the Worker's console output is in its log:\n{log}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_the_worker_kills_its_process_group() {
    if !node_ready().await {
        return;
    }
    let _one = ONE_AT_A_TIME.lock().await;
    let logs = tempfile::tempdir().expect("tempdir");
    let m = mock(true).await;
    let w = start(Some(m.addr), logs.path(), "dropped").await;
    let pgid = w.pgid();
    assert!(group_members(pgid).len() >= 2, "node and workerd");
    drop(w);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !group_members(pgid).is_empty() {
        assert!(
            Instant::now() < deadline,
            "still running after drop: {:?}",
            group_members(pgid)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_worker_that_cannot_start_is_reported_with_its_log() {
    if !node_ready().await {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let spec = LocalSpec::new(dir.path(), None, dir.path().join("worker.log"));
    let err = LocalWorker::start(&spec)
        .await
        .expect_err("no wrangler.toml");
    let msg = err.to_string();
    assert!(matches!(err, local::LocalError::NotReady { .. }), "{msg}");
    assert!(msg.contains("no wrangler.toml"), "{msg}");
}

/// Wait until no process, not even a zombie, is left in group `pgid`.
async fn assert_group_gone(pgid: u32) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while group_alive(pgid) {
        assert!(
            Instant::now() < deadline,
            "process group {pgid} still has members: {:?}",
            group_members(pgid)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn is_zombie(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| {
            s.rsplit(')')
                .next()
                .is_some_and(|r| r.trim_start().starts_with('Z'))
        })
        .unwrap_or(true)
}

#[tokio::test]
async fn a_startup_timeout_leaves_no_process() {
    if !node_ready().await {
        return;
    }
    let _one = ONE_AT_A_TIME.lock().await;
    // A private copy of the fixture: its path names this run's processes.
    let dir = tempfile::tempdir().expect("tempdir");
    let worker = dir.path().join("kv-probe-timeout");
    std::fs::create_dir(&worker).expect("mkdir");
    for f in ["wrangler.toml", "index.js"] {
        std::fs::copy(Path::new(FIXTURE).join(f), worker.join(f)).expect("copy fixture");
    }
    let mut spec = LocalSpec::new(&worker, None, dir.path().join("worker.log"));
    spec.ready_timeout = Duration::from_millis(300);
    let err = LocalWorker::start(&spec)
        .await
        .expect_err("cannot be ready in 300 ms");
    assert!(matches!(err, local::LocalError::Timeout { .. }), "{err}");
    let needle = worker.to_string_lossy().into_owned();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let left = processes_mentioning(&needle);
        if left.is_empty() {
            break;
        }
        assert!(Instant::now() < deadline, "left running: {left:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Live (non-zombie) processes whose command line contains `needle`.
fn processes_mentioning(needle: &str) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .map(|c| String::from_utf8_lossy(&c).contains(needle))
                .unwrap_or(false)
                && !is_zombie(*pid)
        })
        .collect()
}
