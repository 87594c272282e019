//! The launcher's options: bundling a TypeScript Worker, and the JS KV
//! wrapper (`KvBindingMode::Wrapped`) that answers like workerd's KV class
//! but throws daily-limit refusals with production's exact text. Shares the
//! helpers and the one-miniflare-at-a-time lock of [`crate::local`].

use std::path::Path;

use kvchaos::local::{KvBindingMode, LocalSpec, LocalWorker, Stopped};
use kvchaos::mockkv::FaultSpec;
use serde_json::{Value, json};

use crate::local::{ONE_AT_A_TIME, mock, node_ready, normalize, now_secs, post, sequence};

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/workers");
const READY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(90);

async fn start(
    fixture: &str,
    kv_addr: std::net::SocketAddr,
    mode: KvBindingMode,
    log_dir: &Path,
) -> LocalWorker {
    let name = format!("{fixture}-{}", mode.as_str());
    let mut spec = LocalSpec::new(
        Path::new(FIXTURES).join(fixture),
        Some(kv_addr),
        log_dir.join(format!("{name}.log")),
    );
    spec.kv_binding = mode;
    spec.ready_timeout = READY_TIMEOUT;
    let w = LocalWorker::start(&spec)
        .await
        .unwrap_or_else(|e| panic!("starting {name}: {e:#}"));
    println!(
        "launcher: {name}: startup-to-ready {} ms (bundled: {})",
        w.startup().as_millis(),
        w.ready().bundled
    );
    w
}

async fn run(w: &LocalWorker, ops: &Value) -> Vec<Value> {
    let answer = post(w.url(), "/run", &json!({ "binding": "KV", "ops": ops })).await;
    answer["results"].as_array().expect("results array").clone()
}

/// The rest of the KV API, beyond kv-probe's sequence.
fn api_sequence() -> Value {
    let in_an_hour = now_secs() + 3600;
    json!([
        {"op": "put", "key": "j:1", "value": "{\"n\":1,\"s\":[true,null]}", "metadata": {"kind": "json"}},
        {"op": "put", "key": "j:2", "value": "[2]"},
        {"op": "put", "key": "bin", "value": "bytes é", "as": "bytes"},
        {"op": "put", "key": "str", "value": "streamed é", "as": "stream", "expiration": in_an_hour},
        {"op": "put", "key": "exp", "value": "x", "expiration": 10},
        {"op": "put", "key": ".", "value": "x"},
        {"op": "put", "key": "k".repeat(513), "value": "x"},
        {"op": "get", "key": "j:1", "type": "json"},
        {"op": "get", "key": "j:1", "type": "json", "short": true},
        {"op": "get", "key": "j:1", "cacheTtl": 60},
        {"op": "get", "key": "bin", "type": "arrayBuffer"},
        {"op": "get", "key": "str", "type": "stream"},
        {"op": "get", "key": "str", "type": "bogus"},
        {"op": "get", "key": "missing", "type": "json"},
        {"op": "get", "key": ".."},
        {"op": "getWithMetadata", "key": "j:1", "type": "json"},
        {"op": "getWithMetadata", "key": "bin", "type": "arrayBuffer"},
        {"op": "getBulk", "keys": ["j:1", "j:2", "missing"]},
        {"op": "getBulk", "keys": ["j:1", "j:2", "missing"], "type": "json"},
        {"op": "getBulk", "keys": ["j:1", "missing"], "type": "json", "withMetadata": true},
        {"op": "getBulk", "keys": ["j:1", "bin"], "type": "json"},
        {"op": "getBulk", "keys": []},
        {"op": "list", "prefix": "j:"},
        {"op": "list", "prefix": "", "limit": 0},
        {"op": "list", "prefix": "s"},
        {"op": "delete", "key": ""},
        {"op": "delete", "key": "j:2"},
        {"op": "getBulk", "keys": ["j:2"]}
    ])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_typescript_worker_is_bundled_and_round_trips_through_the_mock() {
    if !node_ready().await {
        return;
    }
    let _one = ONE_AT_A_TIME.lock().await;
    let logs = tempfile::tempdir().expect("tempdir");
    let m = mock(true).await;
    let w = start("ts-probe", m.addr, KvBindingMode::Workerd, logs.path()).await;
    assert!(w.ready().bundled, "a .ts main is bundled");

    let answer = post(
        w.url(),
        "/roundtrip",
        &json!({"key": "ts:1", "value": {"n": [1, "two"]}}),
    )
    .await;
    assert_eq!(
        answer,
        json!({
            "value": {"n": [1, "two"]},
            "metadata": {"writer": "ts-probe", "keyLength": 4},
            "via": "ts-probe/note.ts"
        })
    );
    assert_eq!(
        m.kv.peek("KV", "ts:1").as_deref(),
        Some(&br#"{"n":[1,"two"]}"#[..]),
        "the value went through the mock"
    );
    assert_eq!(w.stop().await.expect("stop"), Stopped::Graceful);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_kv_wrapper_answers_like_workerds_class_and_with_production_limit_text() {
    if !node_ready().await {
        return;
    }
    let _one = ONE_AT_A_TIME.lock().await;
    let logs = tempfile::tempdir().expect("tempdir");
    let ops: Vec<Value> = [sequence(), api_sequence()]
        .iter()
        .flat_map(|s| s.as_array().expect("array").clone())
        .collect();
    let ops = Value::Array(ops);

    // (a) the same operations, each mode on a fresh mock.
    let mut results = Vec::new();
    let mut wrapped = None;
    for mode in [KvBindingMode::Workerd, KvBindingMode::Wrapped] {
        let m = mock(false).await;
        let w = start("kv-api-probe", m.addr, mode, logs.path()).await;
        assert!(
            w.ready().bundled,
            "wrangler's build bundles a plain JS Worker too"
        );
        let sent_at = now_secs();
        let mut r = Value::Array(run(&w, &ops).await);
        normalize(&mut r, sent_at);
        results.push(r);
        match mode {
            KvBindingMode::Wrapped => wrapped = Some((m, w)),
            KvBindingMode::Workerd => {
                assert_eq!(w.stop().await.expect("stop"), Stopped::Graceful);
            }
        }
    }
    let (class, wrapper) = (&results[0], &results[1]);
    for (i, (a, b)) in class
        .as_array()
        .expect("array")
        .iter()
        .zip(wrapper.as_array().expect("array"))
        .enumerate()
    {
        assert_eq!(
            a, b,
            "operation {i} {} differs: workerd's KV class (left) vs the wrapper (right)",
            ops[i]
        );
    }
    assert_eq!(class, wrapper);

    // (b) under a daily-limit fault, the Worker sees production's text.
    let (m, w) = wrapped.expect("wrapped run");
    m.kv.add_fault(
        "kind=daily-limit,ops=put"
            .parse::<FaultSpec>()
            .expect("fault spec"),
    )
    .expect("add fault");
    let r = run(
        &w,
        &json!([
            {"op": "put", "key": "q:1", "value": "x"},
            {"op": "get", "key": "q:1"}
        ]),
    )
    .await;
    assert_eq!(
        r[0],
        json!({"error": "KV put() limit exceeded for the day.", "name": "Error"})
    );
    assert_eq!(r[1], json!({"value": null}), "gets are not limited");
    m.kv.clear_all_faults();
    m.kv.add_fault("kind=daily-limit".parse::<FaultSpec>().expect("fault spec"))
        .expect("add fault");
    let r = run(
        &w,
        &json!([
            {"op": "get", "key": "q:1"},
            {"op": "getBulk", "keys": ["q:1"]},
            {"op": "list"},
            {"op": "delete", "key": "q:1"}
        ]),
    )
    .await;
    let errors: Vec<&str> = r
        .iter()
        .map(|x| x["error"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(
        errors,
        [
            "KV get() limit exceeded for the day.",
            "KV get() limit exceeded for the day.",
            "KV list() limit exceeded for the day.",
            "KV delete() limit exceeded for the day.",
        ]
    );
    m.kv.clear_all_faults();
    assert_eq!(w.stop().await.expect("stop"), Stopped::Graceful);
}
