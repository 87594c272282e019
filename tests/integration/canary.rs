//! The canary chaos shim (`kvchaos canary build`) around the reference Workers, run under
//! miniflare with miniflare's own KV (not the mock), controlled as a deployed canary would be:
//! signed schedules that fail real KV calls, halt, expiry, a write cap, the guard on the script
//! name, and crons run through the shim. Needs Node.js; fails without it unless
//! KVCHAOS_SKIP_NODE=1.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use kvchaos::canary::control::{ControlError, GuardError, Schedule, Shim, ShimFault};
use kvchaos::canary::{BuildPlan, DEFAULT_SECRET_VAR, build};
use kvchaos::local::{LocalSpec, LocalWorker};
use serde_json::{Value, json};

use crate::local::{ONE_AT_A_TIME, node_ready};
use crate::reference_workers::{call, stop};

const WORKERS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/mock/workers");
const SECRET: &str = "test-secret-0123456789abcdef";
const TIMEOUT: Duration = Duration::from_secs(30);

fn temp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("kvchaos-canary-it-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Builds the shimmed Worker into `dir/out`, gives it the control secret (as a var: a
/// deployment would use `wrangler secret put`) and starts it on miniflare's own KV.
async fn start(worker: &str, dir: &Path) -> (LocalWorker, String) {
    start_at(&Path::new(WORKERS).join(worker), dir).await
}

/// [`start`] for the Worker in folder `worker`.
async fn start_at(worker: &Path, dir: &Path) -> (LocalWorker, String) {
    let out = dir.join("out");
    let built = build(&BuildPlan {
        worker: worker.to_owned(),
        env: None,
        out: out.clone(),
        secret_var: DEFAULT_SECRET_VAR.into(),
    })
    .expect("canary build");
    let mut config: Value =
        serde_json::from_str(&std::fs::read_to_string(&built.config).unwrap()).unwrap();
    config["vars"][DEFAULT_SECRET_VAR] = json!(SECRET);
    std::fs::write(&built.config, config.to_string()).unwrap();
    let mut spec = LocalSpec::new(&out, None, dir.join("worker.log"));
    spec.ready_timeout = Duration::from_secs(90);
    let w = LocalWorker::start(&spec)
        .await
        .unwrap_or_else(|e| panic!("starting the shimmed {}: {e:#}", worker.display()));
    let url = w.url().to_owned();
    (w, url)
}

fn shim(url: &str, secret: &str, script: &str) -> Shim {
    Shim::new(
        url::Url::parse(url).unwrap(),
        secret.into(),
        script.into(),
        TIMEOUT,
    )
}

fn put_limit(expires_in_ms: u64) -> Schedule {
    Schedule {
        id: "s1".into(),
        faults: vec![ShimFault {
            kind: "daily-limit".into(),
            ops: vec!["put".into()],
            prefix: String::new(),
            namespace: None,
            p: 1.0,
            status: None,
            latency_ms: None,
            jitter_ms: None,
            lag_ms: None,
            at_ms: 0,
            until_ms: None,
        }],
        expires_in_ms,
        max_writes: None,
    }
}

async fn acquire(url: &str, lock: &str) -> (u16, Value) {
    let a = call(
        url,
        "POST",
        &format!("/locks/{lock}/acquire"),
        &[],
        Some(json!({"holder": "h", "ttl_ms": 60000})),
    )
    .await;
    (a.status, a.body)
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

#[tokio::test]
async fn the_shim_fails_real_kv_only_as_scheduled_and_only_for_the_secret() {
    if !node_ready().await {
        return;
    }
    let _one = ONE_AT_A_TIME.lock().await;
    let dir = temp("kv");
    let (w, url) = start("kv-control-plane", &dir).await;
    let script = "kv-control-plane";

    let health = call(&url, "GET", "/health", &[], None).await;
    assert_eq!(health.status, 200);
    let tag = health
        .headers
        .get("x-kvchaos-shim")
        .unwrap()
        .to_str()
        .unwrap();
    assert!(
        tag.starts_with("script=kv-control-plane; version=") && tag.ends_with("; schedule=none"),
        "every answer names the shimmed script and its version: {tag}"
    );
    assert_eq!(acquire(&url, "a").await.0, 200, "no schedule: real KV");

    // No control without the secret, and none as another script.
    match shim(&url, "wrong-secret-wrong-secret", script).halt().await {
        Err(ControlError::Refused { status: 401, .. }) => {}
        other => panic!("a wrong secret must be refused, got {other:?}"),
    }
    match shim(&url, SECRET, "kv-control-plane-canary").stats().await {
        Err(ControlError::Guard(GuardError::WrongScript { found, .. })) => {
            assert_eq!(found, script)
        }
        other => panic!("the guard must refuse another script, got {other:?}"),
    }

    let mut s = shim(&url, SECRET, script);
    s.schedule(&put_limit(120_000)).await.expect("schedule");
    let (status, body) = acquire(&url, "b").await;
    assert_eq!(status, 503, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("KV put() limit exceeded for the day."),
        "{body}"
    );
    let cron = s.scheduled("*/1 * * * *", now_ms()).await.expect("cron");
    assert!(!cron.ok, "the cron's first put fails under the fault");
    assert!(
        cron.error
            .as_deref()
            .unwrap_or("")
            .contains("limit exceeded for the day"),
        "{cron:?}"
    );
    let stats = s.stats().await.expect("stats");
    assert_eq!(stats.schedule.as_deref(), Some("s1"));
    assert!(
        stats.hits(0) >= 2,
        "the lock and the cron were hit: {stats:?}"
    );

    s.halt().await.expect("halt");
    assert_eq!(acquire(&url, "c").await.0, 200, "halt clears at once");

    // A schedule ends by itself at its expiry.
    s.schedule(&put_limit(1_500)).await.expect("schedule");
    assert_eq!(acquire(&url, "d").await.0, 503);
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut n = 0;
    loop {
        n += 1;
        if acquire(&url, &format!("e{n}")).await.0 == 200 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the expired schedule kept failing KV"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // The write cap: real KV writes during a schedule are bounded (a lock takes two puts).
    let mut capped = put_limit(60_000);
    capped.faults.clear();
    capped.max_writes = Some(2);
    s.schedule(&capped).await.expect("schedule");
    assert_eq!(acquire(&url, "f").await.0, 200);
    let (status, body) = acquire(&url, "g").await;
    assert_eq!(status, 503, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("write cap"),
        "{body}"
    );
    assert_eq!(s.stats().await.unwrap().capped, 1);
    s.halt().await.unwrap();
    stop(w).await;
}

#[tokio::test]
async fn the_migrated_worker_keeps_working_through_the_shim() {
    if !node_ready().await {
        return;
    }
    let _one = ONE_AT_A_TIME.lock().await;
    let dir = temp("d1");
    let (w, url) = start("d1-do-control-plane", &dir).await;
    let mut s = shim(&url, SECRET, "d1-do-control-plane");
    let mut every = put_limit(120_000);
    every.faults[0].ops.clear();
    s.schedule(&every).await.expect("schedule");
    // Locks live in a Durable Object (re-exported by the shim with a wrapped env).
    let (status, body) = acquire(&url, "a").await;
    assert_eq!(status, 200, "{body}");
    let cron = s.scheduled("*/1 * * * *", now_ms()).await.expect("cron");
    assert!(cron.ok, "{cron:?}");
    let status = call(&url, "GET", "/cron/status", &[], None).await;
    assert_eq!(status.body["runs"], 1, "{:?}", status.body);
    // Its KV cache is wrapped too: every KV operation fails, so the read bypasses the cache.
    let cached = call(&url, "GET", "/cache/k1", &[], None).await;
    assert_eq!(cached.body["cache"], "bypass", "{:?}", cached.body);
    assert!(s.stats().await.unwrap().hits(0) >= 1);
    s.halt().await.unwrap();
    let cached = call(&url, "GET", "/cache/k2", &[], None).await;
    assert_eq!(cached.body["cache"], "miss", "{:?}", cached.body);
    stop(w).await;
}

/// `scenarios/smoke.toml` aimed at a shimmed Worker by URL, its faults through the shim.
fn smoke_on_canary(url: &str, script: &str) -> String {
    let smoke =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/scenarios/smoke.toml"))
            .unwrap();
    let target = smoke
        .lines()
        .find(|l| l.starts_with("worker = "))
        .expect("smoke.toml names its Worker");
    smoke
        .replace(
            target,
            &format!("url = \"{url}\"\nexpect_script = \"{script}\""),
        )
        .replace("[kv]\nplan = \"paid\"\n", "")
        // Draining speed is not what this test is about (and the D1 Worker drains slowly on a
        // loaded machine): the KV Worker fails on its cron and its stalled queue.
        .replace("max_drain = \"5s\"", "max_drain = \"30s\"")
        .replace(
            "[cron]\n",
            "[canary]\nsecret_env = \"CANARY_TEST_SECRET\"\nmax_requests = 2000\nmax_duration = \"2m\"\nmax_kv_writes = 5000\n\n[cron]\nschedules = [\"*/1 * * * *\"]\n",
        )
}

async fn run_smoke(worker: &str, name: &str) -> kvchaos::run::RunOutcome {
    run_smoke_as(worker, worker, name).await
}

/// The smoke scenario on the shimmed `worker`, expecting the script `expect`.
async fn run_smoke_as(worker: &str, expect: &str, name: &str) -> kvchaos::run::RunOutcome {
    let dir = temp(name);
    let (w, url) = start(worker, &dir).await;
    let text = smoke_on_canary(&url, expect);
    let path = dir.join("smoke-canary.toml");
    std::fs::write(&path, &text).unwrap();
    let env = |k: &str| (k == "CANARY_TEST_SECRET").then(|| SECRET.to_owned());
    let plan =
        kvchaos::scenario::parse_str(&text, &path, &env).unwrap_or_else(|e| panic!("{e}\n{text}"));
    let opts = kvchaos::run::RunOptions {
        scenario: path,
        out: dir.join("reports"),
        threads: Some(1),
        ..Default::default()
    };
    let outcome = kvchaos::run::run(plan, &opts, Default::default(), &mut kvchaos::live::Silent)
        .await
        .expect("the run writes a report");
    // The run halted the shim: real KV again.
    let (status, body) = acquire(&url, "after").await;
    assert_eq!(status, 200, "{body}");
    stop(w).await;
    outcome
}

#[tokio::test]
async fn smoke_through_the_canary_fails_the_kv_worker_and_passes_the_migrated_one() {
    if !node_ready().await {
        return;
    }
    let _one = ONE_AT_A_TIME.lock().await;
    let migrated = run_smoke("d1-do-control-plane", "smoke-d1").await;
    crate::support::all_pass(&migrated);
    let hit = &migrated.summary.faults;
    assert!(!hit.is_empty(), "the smoke scenario has a fault");
    assert!(
        hit.iter().all(|f| f.kv_ops.unwrap_or(0) > 0),
        "the fault hit the canary's real KV calls: {hit:#?}"
    );
    let kv = run_smoke("kv-control-plane", "smoke-kv").await;
    assert_eq!(
        kv.exit,
        kvchaos::exit::Exit::Fail,
        "{:#?}",
        kv.summary.checks
    );
    assert!(
        kv.summary
            .checks
            .iter()
            .any(|c| c.verdict == kvchaos::check::Verdict::Fail),
        "{:#?}",
        kv.summary.checks
    );
}

#[tokio::test]
async fn a_canary_answering_as_another_script_gets_no_fault_and_no_load() {
    if !node_ready().await {
        return;
    }
    let _one = ONE_AT_A_TIME.lock().await;
    let o = run_smoke_as("kv-control-plane", "kv-control-plane-canary", "guard").await;
    assert_eq!(
        o.summary.stop.reason,
        kvchaos::report::model::StopReason::TargetUnreachable
    );
    let detail = o.summary.stop.detail.clone().unwrap_or_default();
    assert!(
        detail.contains("not the expected \"kv-control-plane-canary\""),
        "{detail}"
    );
    assert_eq!(o.summary.overall.completed, 0, "nothing was sent");
    assert_eq!(o.exit, kvchaos::exit::Exit::Environment);
}

#[tokio::test]
async fn expect_script_as_a_version_id_matches_only_the_version_the_shim_reports() {
    if !node_ready().await {
        return;
    }
    let _one = ONE_AT_A_TIME.lock().await;
    let dir = temp("version");
    let (w, url) = start("kv-control-plane", &dir).await;
    // Another version: refused, and the error names the version that answered.
    let other = "00000000-0000-4000-8000-000000000000";
    let found = match shim(&url, SECRET, other).stats().await {
        Err(ControlError::Guard(GuardError::WrongVersion { expected, found })) => {
            assert_eq!(expected, other);
            found
        }
        r => panic!("a wrong version id must be refused: {r:?}"),
    };
    assert!(
        kvchaos::canary::control::is_version_id(&found),
        "the shim reports its version_metadata id: {found:?}"
    );
    // The version that answered passes, in either case.
    shim(&url, SECRET, &found)
        .stats()
        .await
        .expect("the canary's own version");
    shim(&url, SECRET, &found.to_uppercase())
        .stats()
        .await
        .expect("version ids compare without case");
    stop(w).await;
}

/// Runs `extra` (phases, drivers, faults) as a canary run expecting `hub-canary` at `addr`.
async fn run_canary_at(
    addr: std::net::SocketAddr,
    name: &str,
    extra: &str,
) -> kvchaos::run::RunOutcome {
    run_canary_at_script(addr, "hub-canary", name, extra).await
}

/// [`run_canary_at`] expecting `script`.
async fn run_canary_at_script(
    addr: std::net::SocketAddr,
    script: &str,
    name: &str,
    extra: &str,
) -> kvchaos::run::RunOutcome {
    let dir = temp(name);
    let text = format!(
        r#"name = "{name}"
[target]
url = "http://{addr}"
expect_script = "{script}"
[canary]
secret_env = "CANARY_TEST_SECRET"
{extra}"#
    );
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(&path, &text).unwrap();
    let env = |k: &str| (k == "CANARY_TEST_SECRET").then(|| SECRET.to_owned());
    let plan = kvchaos::scenario::parse_str(&text, &path, &env).unwrap_or_else(|e| panic!("{e}"));
    let opts = kvchaos::run::RunOptions {
        scenario: path,
        out: dir.join("reports"),
        threads: Some(1),
        ..Default::default()
    };
    kvchaos::run::run(plan, &opts, Default::default(), &mut kvchaos::live::Silent)
        .await
        .expect("the run writes a report")
}

/// GET `path` answers 2xx.
async fn call_raw_ok(url: &str, path: &str) {
    let (status, _, body) = crate::reference_workers::call_raw(url, "GET", path, &[], None).await;
    assert!(
        (200..300).contains(&status),
        "{path}: {status} {}",
        String::from_utf8_lossy(&body)
    );
}

/// The run went to its planned end: no guard stop.
fn assert_completed(o: &kvchaos::run::RunOutcome) {
    assert_eq!(
        o.summary.stop.reason,
        kvchaos::report::model::StopReason::Completed,
        "{:?}",
        o.summary.stop.detail
    );
}

/// The run stopped early on a guard failure `during` whose answers, and exits 3.
fn assert_guard_stop(o: &kvchaos::run::RunOutcome, during: &str) {
    assert_eq!(
        o.summary.stop.reason,
        kvchaos::report::model::StopReason::TargetFailed
    );
    let detail = o.summary.stop.detail.clone().unwrap_or_default();
    assert!(
        detail.contains(during) && detail.contains("x-kvchaos-shim"),
        "{detail}"
    );
    // A URL target has no Worker log to point to; the answer seen is named instead.
    assert!(
        !detail.contains("worker.log") && detail.contains("it was HTTP 200"),
        "{detail}"
    );
    assert!(
        o.summary.duration_s < o.summary.planned_duration_s / 2.0,
        "the run stopped at the first mismatch, not at its planned end: {} s",
        o.summary.duration_s
    );
    assert_eq!(o.exit, kvchaos::exit::Exit::Environment);
}

#[tokio::test]
async fn a_load_answer_not_from_the_shim_stops_the_run() {
    // Control answers as the shim, load answers as production (an override that fell back).
    let addr = crate::servers::shim_then_production("hub-canary").await;
    let load =
        "[[phases]]\nduration = \"20s\"\nrate = 20\n[[requests]]\nname = \"home\"\npath = \"/\"\n";
    let o = run_canary_at(addr, "fallback", load).await;
    assert_guard_stop(&o, "during the load");
}

#[tokio::test]
async fn a_load_request_cut_off_before_any_answer_is_a_failure_not_a_guard_stop() {
    // Half the load requests lose their connection before a response head: nobody answered,
    // so the guard has nothing to judge; the run goes on and records them as resets.
    let addr = crate::servers::shim_dropping_every_other("hub-canary").await;
    let load =
        "[[phases]]\nduration = \"2s\"\nrate = 20\n[[requests]]\nname = \"home\"\npath = \"/\"\n";
    let o = run_canary_at(addr, "dropped", load).await;
    assert_completed(&o);
    let classes = &o.summary.overall.by_class;
    assert!(classes.get("2xx").copied().unwrap_or(0) > 0, "{classes:?}");
    let failed: u64 = classes
        .iter()
        .filter(|(k, _)| k.as_str() != "2xx")
        .map(|(_, v)| v)
        .sum();
    assert!(failed > 0, "half the requests were cut off: {classes:?}");
}

#[tokio::test]
async fn a_class_instance_worker_that_throws_and_reads_in_bulk_works_through_the_shim() {
    if !node_ready().await {
        return;
    }
    let _one = ONE_AT_A_TIME.lock().await;
    let dir = temp("throws");
    let fixture = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/workers/throws");
    let (w, url) = start_at(Path::new(fixture), &dir).await;
    for path in ["/throw", "/reject"] {
        let (status, headers, body) =
            crate::reference_workers::call_raw(&url, "GET", path, &[], None).await;
        assert_eq!(status, 500, "{path}: {}", String::from_utf8_lossy(&body));
        let shim = headers.get("x-kvchaos-shim").map(|h| h.to_str().unwrap());
        assert!(
            shim.is_some_and(|h| h.contains("script=throws")),
            "{path}: the runtime, not the shim, answered the throw: {headers:?}"
        );
    }
    // The handler is a prototype method of the default export, found all the same.
    let (status, headers, body) =
        crate::reference_workers::call_raw(&url, "GET", "/", &[], None).await;
    assert_eq!(
        (status, &body[..]),
        (200, &b"ok"[..]),
        "{headers:?} {}",
        String::from_utf8_lossy(&body)
    );
    let log = std::fs::read_to_string(dir.join("worker.log")).unwrap_or_default();
    // A bulk get is one read, faulted like any other.
    let bulk = || async {
        let (status, _, body) =
            crate::reference_workers::call_raw(&url, "GET", "/bulk", &[], None).await;
        (status, String::from_utf8_lossy(&body).into_owned())
    };
    assert_eq!(bulk().await, (200, "read 2 keys".to_owned()));
    let mut s = shim(&url, SECRET, "throws");
    let mut reads = put_limit(60_000);
    reads.faults[0].ops = vec!["get".into()];
    s.schedule(&reads).await.expect("schedule");
    let (status, body) = bulk().await;
    assert_eq!(status, 500, "{body}");
    assert!(body.contains("get() limit exceeded for the day"), "{body}");
    let stats = s.stats().await.expect("stats");
    assert_eq!(stats.injected.values().sum::<u64>(), 1, "{stats:?}");
    s.halt().await.expect("halt");
    assert_eq!(bulk().await, (200, "read 2 keys".to_owned()));
    // A stale read is decoded as the read asks: JSON as a value, never text; bytes never stale.
    for v in [1, 2] {
        call_raw_ok(&url, &format!("/put?v={v}")).await;
    }
    let mut stale = put_limit(60_000);
    stale.faults[0].kind = "stale-reads".into();
    stale.faults[0].ops = vec!["get".into()];
    s.schedule(&stale).await.expect("schedule");
    let json = call(&url, "GET", "/json", &[], None).await;
    assert_eq!(json.body, json!({"type": "object", "value": {"v": 1}}));
    let bytes = call(&url, "GET", "/bytes", &[], None).await;
    assert_eq!(
        bytes.body,
        json!({"bytes": 7}),
        "the real value, {{\"v\":2}}"
    );
    let stats = s.stats().await.expect("stats");
    assert_eq!(
        stats.injected.values().sum::<u64>(),
        1,
        "only the JSON read: {stats:?}"
    );
    s.halt().await.expect("halt");
    assert!(
        log.contains("thrown on purpose"),
        "the stack is logged: {log}"
    );
    // A load of throwing requests is a run of 5xx answers, not a guard stop.
    let addr: std::net::SocketAddr = url.trim_start_matches("http://").parse().unwrap();
    let load = "[[phases]]\nduration = \"2s\"\nrate = 10\n[[requests]]\nname = \"throw\"\npath = \"/throw\"\n";
    let o = run_canary_at_script(addr, "throws", "throws-run", load).await;
    stop(w).await;
    assert_completed(&o);
    assert!(o.summary.overall.by_class.get("5xx").copied().unwrap_or(0) > 0);
}

#[tokio::test]
async fn a_driver_answer_not_from_the_shim_stops_the_run_before_the_first_fault() {
    // Load and control answer as the shim; the lock routes as production, as when a route of
    // the drivers reaches another Worker.
    let addr = crate::servers::shim_where("hub-canary", |p| !p.starts_with("/locks")).await;
    let extra = r#"[[phases]]
duration = "20s"
rate = 20
[[requests]]
name = "home"
path = "/"
[lock]
clients = 1
[lock.acquire]
method = "POST"
path = "/locks/{{lock}}/acquire"
[lock.release]
method = "POST"
path = "/locks/{{lock}}/release"
[[faults]]
at = "2s"
until = "10s"
kind = "daily-limit"
ops = ["put"]
"#;
    let o = run_canary_at(addr, "driver-fallback", extra).await;
    assert_guard_stop(&o, "during the drivers' requests");
    assert!(o.summary.faults.is_empty(), "{:#?}", o.summary.faults);
    let history = std::fs::read_to_string(o.report_dir.join("history.jsonl")).unwrap();
    assert!(!history.contains("\"fault-set\""), "{history}");
}
