//! The Worker as `wrangler dev` builds it, on the run's clock, with its console and uncaught
//! exceptions in the Worker log: the fixtures `wrangler-parity` (rules, nodejs_compat, alias,
//! define, `[build] command`, TypeScript, wrangler.jsonc, `[vars]`, `.dev.vars`,
//! `[env.staging]`), `wrangler-dev-config` (a named config file and env), `clock-cooldown` and
//! `clock-lease` (Date.now() at speedup 60). Needs Node.js; one miniflare at a time.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use kvchaos::local::{ClockAnchor, CronOutcome, LocalError, LocalSpec, LocalWorker};
use kvchaos::mockkv::{self, MockKv, MockKvConfig, VirtualClock};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use crate::local::{ONE_AT_A_TIME, node_ready};

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/workers");
const READY_TIMEOUT: Duration = Duration::from_secs(120);
const SPEEDUP: f64 = 60.0;

struct Mock {
    kv: MockKv,
    addr: std::net::SocketAddr,
    cancel: CancellationToken,
}

impl Drop for Mock {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

async fn mock(speed: f64) -> Mock {
    let kv = MockKv::new(MockKvConfig::default(), VirtualClock::real_time(speed));
    let listener = mockkv::bind("127.0.0.1:0".parse().expect("addr"), false)
        .await
        .expect("bind mock");
    let addr = listener.local_addr().expect("addr");
    let cancel = CancellationToken::new();
    tokio::spawn(mockkv::serve(listener, kv.clone(), cancel.clone()));
    Mock { kv, addr, cancel }
}

fn spec(fixture: &str, m: &Mock, log: &Path) -> LocalSpec {
    let mut spec = LocalSpec::new(Path::new(FIXTURES).join(fixture), Some(m.addr), log);
    spec.ready_timeout = READY_TIMEOUT;
    spec
}

async fn start(spec: &LocalSpec) -> LocalWorker {
    let w = LocalWorker::start(spec)
        .await
        .unwrap_or_else(|e| panic!("starting {}: {e:#}", spec.worker_dir.display()));
    println!(
        "wrangler_parity: {} (env {:?}): startup-to-ready {} ms",
        spec.worker_dir.display(),
        spec.env,
        w.startup().as_millis()
    );
    w
}

/// `method` `path` on the Worker; (status, body as JSON or as a string).
async fn call(url: &str, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
    let authority = url.trim_start_matches("http://").to_owned();
    let stream = tokio::net::TcpStream::connect(&authority)
        .await
        .expect("connect");
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .expect("handshake");
    tokio::spawn(conn);
    let bytes = body.map(|b| b.to_string()).unwrap_or_default();
    let req = http::Request::builder()
        .method(method)
        .uri(path)
        .header(http::header::HOST, authority)
        .body(http_body_util::Full::new(bytes::Bytes::from(bytes)))
        .expect("request");
    let resp = tokio::time::timeout(Duration::from_secs(30), sender.send_request(req))
        .await
        .expect("answer within 30 s")
        .expect("response");
    let status = resp.status().as_u16();
    let bytes = http_body_util::BodyExt::collect(resp.into_body())
        .await
        .expect("body")
        .to_bytes();
    let text = String::from_utf8_lossy(&bytes).into_owned();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

/// Poll `path` of the log until it contains every needle, for up to 10 s.
async fn log_with(path: &Path, needles: &[&str]) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let log = std::fs::read_to_string(path).unwrap_or_default();
        if needles.iter().all(|n| log.contains(n)) {
            return log;
        }
        assert!(Instant::now() < deadline, "log lacks {needles:?}:\n{log}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_builds_and_runs_as_under_wrangler_dev() {
    if !node_ready().await {
        return;
    }
    let _one = ONE_AT_A_TIME.lock().await;
    let logs = tempfile::tempdir().expect("tempdir");
    let m = mock(1.0).await;

    let top = spec("wrangler-parity", &m, &logs.path().join("top.log"));
    let w = start(&top).await;
    assert!(w.ready().bundled && !w.ready().clock, "{:?}", w.ready());
    let (status, got) = call(w.url(), "GET", "/", None).await;
    assert_eq!(status, 200, "{got}");
    let want = json!({
        "os": "node:os",
        "note": "# A note imported as text\n",
        "blob": 4,
        "add": 5,
        "greet": "aliased greet(x)",
        "flavor": "defined-at-build",
        "generated": "written by the build command",
        "greeting": "hello from [vars]",
        "secret": "dev-vars-value",
        "bindings": ["GREETING", "KV", "SECRET_TOKEN"],
    });
    assert_eq!(got, want);
    // KV still reaches kvchaos's mock.
    let (status, _) = call(w.url(), "PUT", "/kv/parity:key", Some(json!("v"))).await;
    assert_eq!(status, 200);
    assert!(
        m.kv.peek("KV", "parity:key").is_some(),
        "the put reached the mock"
    );

    // Console lines and uncaught exceptions (message and stack) reach the log, stamped.
    w.set_run_start(Instant::now());
    let (status, _) = call(w.url(), "GET", "/throw", None).await;
    assert_eq!(status, 500);
    let cron = w.run_cron("*/1 * * * *", 0).await.expect("cron");
    assert_eq!(cron.outcome, CronOutcome::Exception);
    let thrown = cron.exception.unwrap_or_default();
    assert!(
        thrown.starts_with("TypeError: wrangler-parity: thrown on purpose in scheduled\n    at "),
        "the reply quotes the exception and its stack: {thrown:?}"
    );
    let log = log_with(
        w.log_path(),
        &[
            "[log] wrangler-parity: GET /throw",
            "Error: wrangler-parity: thrown on purpose in fetch",
            "[warn] wrangler-parity: cron */1 * * * *",
            "TypeError: wrangler-parity: thrown on purpose in scheduled",
        ],
    )
    .await;
    let uncaught: Vec<&str> = log.lines().filter(|l| l.contains("[uncaught]")).collect();
    assert_eq!(uncaught.len(), 2, "{log}");
    assert!(uncaught.iter().all(|l| l.starts_with("[+")), "{log}");
    let stack = log
        .lines()
        .skip_while(|l| !l.contains("in scheduled"))
        .nth(1);
    assert!(
        stack.is_some_and(|l| l.contains("    at ")),
        "a stack follows:\n{log}"
    );
    assert!(
        log.lines().all(|l| l.starts_with('[')),
        "every line stamped:\n{log}"
    );
    w.stop().await.expect("stop");

    // [env.staging]: its vars, define, bindings and .dev.vars.staging.
    let mut staging = spec("wrangler-parity", &m, &logs.path().join("staging.log"));
    staging.env = Some("staging".to_owned());
    let w = start(&staging).await;
    let (_, got) = call(w.url(), "GET", "/", None).await;
    assert_eq!(got["greeting"], "hello from [env.staging.vars]", "{got}");
    assert_eq!(got["flavor"], "defined-for-staging", "{got}");
    assert_eq!(got["secret"], "dev-vars-staging-value", "{got}");
    assert_eq!(
        got["bindings"],
        json!(["GREETING", "SECRET_TOKEN", "STAGING_KV"])
    );
    assert!(
        w.ready()
            .kv_bindings
            .iter()
            .any(|b| b.binding == "STAGING_KV")
    );
    w.stop().await.expect("stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_named_config_file_and_env_are_the_ones_run() {
    if !node_ready().await {
        return;
    }
    let _one = ONE_AT_A_TIME.lock().await;
    let logs = tempfile::tempdir().expect("tempdir");
    let m = mock(1.0).await;
    let mut s = spec("wrangler-dev-config", &m, &logs.path().join("dev.log"));
    s.config = Some(PathBuf::from("wrangler-dev.toml"));
    s.env = Some("staging".to_owned());
    let w = start(&s).await;
    let (_, got) = call(w.url(), "GET", "/", None).await;
    assert_eq!(
        got,
        json!({"stage": "staging", "bindings": ["STAGE", "STAGING_KV"]})
    );
    assert_eq!(
        w.ready().crons,
        vec!["*/5 * * * *"],
        "crons of wrangler-dev.toml"
    );
    let outcome = w.fire_cron("*/5 * * * *", 1_000).await.expect("cron");
    assert_eq!(outcome, CronOutcome::Ok);
    assert_eq!(
        m.kv.peek("STAGING_KV", "cron:last").as_deref(),
        Some(&b"1000"[..])
    );
    w.stop().await.expect("stop");
}

#[tokio::test]
async fn a_failed_build_names_the_file_and_quotes_wrangler_whole() {
    if !node_ready().await {
        return;
    }
    let _one = ONE_AT_A_TIME.lock().await;
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("wrangler.toml"),
        "name = \"broken-build\"\nmain = \"src/index.ts\"\ncompatibility_date = \"2025-06-01\"\n",
    )
    .expect("write");
    std::fs::create_dir(dir.path().join("src")).expect("mkdir");
    std::fs::write(
        dir.path().join("src/index.ts"),
        "import { gone } from \"./missing-module\";\nexport default { fetch: () => new Response(gone) };\n",
    )
    .expect("write");
    let spec = LocalSpec::new(dir.path(), None, dir.path().join("worker.log"));
    let err = LocalWorker::start(&spec).await.expect_err("cannot build");
    let msg = err.to_string();
    assert!(matches!(err, LocalError::NotReady { .. }), "{msg}");
    let config = dir.path().join("wrangler.toml");
    assert!(msg.contains(&format!("'{}'", config.display())), "{msg}");
    assert!(
        msg.contains("Could not resolve \"./missing-module\""),
        "{msg}"
    );
    assert!(
        msg.contains("src/index.ts:1:"),
        "wrangler's location: {msg}"
    );
}

/// Fire `*/1 * * * *` once per virtual minute for `minutes`, at the mock's virtual time.
async fn tick_minutes(w: &LocalWorker, clock: &VirtualClock, minutes: u32) {
    let every = Duration::from_secs_f64(60.0 / SPEEDUP);
    let began = Instant::now();
    for i in 0..minutes {
        tokio::time::sleep_until((began + every * i).into()).await;
        let outcome = w
            .fire_cron("*/1 * * * *", clock.now_ms())
            .await
            .expect("cron");
        assert_eq!(outcome, CronOutcome::Ok);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_three_minute_cooldown_writes_on_schedule_at_speedup_60() {
    if !node_ready().await {
        return;
    }
    let _one = ONE_AT_A_TIME.lock().await;
    let logs = tempfile::tempdir().expect("tempdir");
    let m = mock(SPEEDUP).await;
    let mut s = spec("clock-cooldown", &m, &logs.path().join("cooldown.log"));
    s.clock = Some(ClockAnchor::of(&m.kv.clock().view()));
    let w = Arc::new(start(&s).await);
    assert!(w.ready().clock);

    // The Worker's Date reads the mock's virtual time (within a few real 100 ms of jitter).
    let (_, got) = call(w.url(), "GET", "/", None).await;
    let skew = got["now"].as_f64().expect("now") - m.kv.clock().now_ms() as f64;
    assert!(skew.abs() < 30_000.0, "Worker vs mock clock: {skew} ms");

    // 13 virtual minutes (13 real seconds): writes at minutes 0, 3, 6, 9, 12.
    tick_minutes(&w, m.kv.clock(), 13).await;
    let (_, state) = call(w.url(), "GET", "/", None).await;
    assert_eq!(state["ticks"], 13, "{state}");
    let writes = state["writes"].as_u64().expect("writes");
    assert!(
        (4..=5).contains(&writes),
        "3-minute cooldown over 13 minutes: {state}"
    );
    assert!(m.kv.peek("KV", "cooldown:flush").is_some());

    // Moving the mock's clock (a run that starts its day with the load) moves the Worker's.
    let day = 20_000 * 86_400_000_u64;
    m.kv.clock().set_ms(day);
    w.move_clock(ClockAnchor::of(&m.kv.clock().view()));
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (_, got) = call(w.url(), "GET", "/", None).await;
        let now = got["now"].as_f64().expect("now");
        if (now - m.kv.clock().now_ms() as f64).abs() < 30_000.0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the Worker's clock did not move: {got}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Dropping the Worker kills its process group (the clock task may still hold a clone).
    drop(w);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kv_lock_with_a_30_second_lease_works_at_speedup_60() {
    if !node_ready().await {
        return;
    }
    let _one = ONE_AT_A_TIME.lock().await;
    let logs = tempfile::tempdir().expect("tempdir");
    let m = mock(SPEEDUP).await;
    let mut s = spec("clock-lease", &m, &logs.path().join("lease.log"));
    s.clock = Some(ClockAnchor::of(&m.kv.clock().view()));
    let w = start(&s).await;
    let acquire = |owner: &'static str| {
        let url = w.url().to_owned();
        async move {
            call(&url, "POST", "/", Some(json!({ "owner": owner })))
                .await
                .1
        }
    };
    let a = acquire("a").await;
    assert_eq!(a["granted"], true, "{a}");
    let b = acquire("b").await;
    let within_lease = b["now"].as_f64() < a["expires"].as_f64();
    assert_eq!(
        b["granted"] == false,
        within_lease,
        "a holds a 30 s lease: {a} then {b}"
    );
    // 30 virtual seconds are half a real second: b gets the lock within a few real seconds.
    let began = Instant::now();
    let granted = loop {
        let b = acquire("b").await;
        if b["granted"] == true {
            break began.elapsed();
        }
        assert!(
            began.elapsed() < Duration::from_secs(5),
            "never granted: {b}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(
        granted < Duration::from_secs(3),
        "granted after {granted:?}"
    );
    let again = acquire("a").await;
    assert_eq!(again["granted"], false, "now b holds it: {again}");
    w.stop().await.expect("stop");
}
