//! A seeded differential test: one kv-probe Worker under miniflare with two bindings, `KV`
//! routed to kvchaos's mock and `CACHE` left on miniflare's own KV (`--kv-keep-local CACHE`),
//! both behind workerd's own KV class. The same 1,200 operations (unicode keys and metadata,
//! TTLs, list paging, bulk gets, sizes at and over every limit) run on each, batch by batch,
//! and every result must be equal, apart from the deliberate divergences of docs/mock-kv.md.

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};

use kvchaos::local::{LocalSpec, LocalWorker};
use kvchaos::mockkv::{self, Limits, MockKv, MockKvConfig, VirtualClock};
use tokio_util::sync::CancellationToken;

const FIXTURE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/workers/kv-probe"
);
const OPS: usize = 1_200;
const BATCH: usize = 100;
const PREFIXES: [&str; 7] = ["a:", "b/", "é:", "🦀", "日本:", "sp ace:", "%25:"];

fn key(rng: &mut SmallRng) -> String {
    let p = PREFIXES[rng.random_range(0..PREFIXES.len())];
    format!("{p}{}", rng.random_range(0..12))
}

fn metadata(rng: &mut SmallRng) -> Option<Value> {
    match rng.random_range(0..6) {
        0 => Some(json!({"n": rng.random_range(0..100), "city": "Zürich", "crab": "🦀"})),
        1 => Some(json!(["x", 1, null, {"deep": true}])),
        // 1,024 bytes of JSON text exactly ("" + 511 two-byte characters), and one more.
        2 => Some(json!("é".repeat(511))),
        3 => Some(json!(format!("{}x", "é".repeat(511)))),
        _ => None,
    }
}

/// One seeded operation for kv-probe (see its index.js); `now` is the Unix time in seconds.
fn op(rng: &mut SmallRng, now: u64) -> Value {
    match rng.random_range(0..100) {
        0..=34 => {
            let mut o = json!({"op": "put", "key": key(rng), "value": format!("v{}", rng.random_range(0..1000))});
            if let Some(m) = metadata(rng) {
                o["metadata"] = m;
            }
            match rng.random_range(0..8) {
                0 => o["expirationTtl"] = json!([60, 120, 3600, 30, 59][rng.random_range(0..5)]),
                1 => o["expiration"] = json!(now + [3600, 30][rng.random_range(0..2)]),
                _ => {}
            }
            o
        }
        35..=49 => {
            let mut o = json!({"op": "get", "key": key(rng)});
            if rng.random_bool(0.3) {
                o["cacheTtl"] = json!([10, 30, 60, 29][rng.random_range(0..4)]);
            }
            o
        }
        50..=59 => json!({"op": "getWithMetadata", "key": key(rng)}),
        60..=74 => {
            let mut o =
                json!({"op": "list", "prefix": PREFIXES[rng.random_range(0..PREFIXES.len())]});
            if rng.random_bool(0.2) {
                o.as_object_mut().map(|m| m.remove("prefix"));
            }
            o["limit"] = json!([1, 2, 5, 1000, 1001][rng.random_range(0..5)]);
            if rng.random_bool(0.5) {
                o["cursor"] = json!("$prev");
            }
            o
        }
        75..=84 => {
            let n = if rng.random_bool(0.05) {
                101
            } else {
                rng.random_range(1..6)
            };
            let keys: Vec<String> = (0..n).map(|_| key(rng)).collect();
            let f = if rng.random_bool(0.5) {
                "getBulk"
            } else {
                "getBulkWithMetadata"
            };
            json!({"op": f, "keys": keys})
        }
        85..=94 => json!({"op": "delete", "key": key(rng)}),
        // Key sizes at and over 512 bytes.
        95..=96 => {
            json!({"op": "put", "key": "k".repeat(512 + rng.random_range(0..2)), "value": "x"})
        }
        _ => json!({"op": "get", "key": "k".repeat(512 + rng.random_range(0..2))}),
    }
}

/// Values at and over 25 MiB (a few, as they are heavy), sent through `repeat`.
fn size_ops() -> Vec<Value> {
    let mib25 = 25 * 1024 * 1024;
    vec![
        json!({"op": "put", "key": "big:at", "value": "x", "repeat": mib25}),
        json!({"op": "put", "key": "big:over", "value": "x", "repeat": mib25 + 1}),
        json!({"op": "delete", "key": "big:at"}),
    ]
}

async fn mock() -> (MockKv, std::net::SocketAddr, CancellationToken) {
    let config = MockKvConfig {
        // miniflare has neither: deliberate divergences (docs/mock-kv.md), off here.
        same_key_write_limit: false,
        limits: Limits::PAID,
        ..MockKvConfig::default()
    };
    let kv = MockKv::new(config, VirtualClock::real_time(1.0));
    let listener = mockkv::bind("127.0.0.1:0".parse().expect("addr"), false)
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let stop = CancellationToken::new();
    tokio::spawn(mockkv::serve(listener, kv.clone(), stop.clone()));
    (kv, addr, stop)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_worker_two_bindings_mock_and_miniflare_agree_on_seeded_operations() {
    if !crate::local::node_ready().await {
        return;
    }
    let _one = crate::local::ONE_AT_A_TIME.lock().await;
    let tmp = tempfile::tempdir().expect("tempdir");
    let (kv, addr, stop) = mock().await;
    let mut spec = LocalSpec::new(FIXTURE, Some(addr), tmp.path().join("worker.log"));
    spec.ready_timeout = std::time::Duration::from_secs(90);
    spec.launcher_args = vec!["--kv-keep-local".to_owned(), "CACHE".to_owned()];
    let worker = LocalWorker::start(&spec)
        .await
        .unwrap_or_else(|e| panic!("start: {e:#}"));
    let mut rng = SmallRng::seed_from_u64(0xd1ff);
    let now = crate::local::now_secs();
    let mut ops: Vec<Value> = (0..OPS).map(|_| op(&mut rng, now)).collect();
    ops.splice(OPS / 2..OPS / 2, size_ops());
    let mut diffs = Vec::new();
    let mut compared = 0;
    for (b, batch) in ops.chunks(BATCH).enumerate() {
        let sent_at = crate::local::now_secs();
        let batch = Value::Array(batch.to_vec());
        let body = |binding: &str| json!({"binding": binding, "ops": batch});
        let mock_side = crate::local::post(worker.url(), "/run", &body("KV")).await;
        let mf_side = crate::local::post(worker.url(), "/run", &body("CACHE")).await;
        let (Some(m), Some(f)) = (
            mock_side["results"].as_array(),
            mf_side["results"].as_array(),
        ) else {
            panic!("batch {b}: no results: {mock_side} / {mf_side}");
        };
        assert_eq!(m.len(), f.len(), "batch {b}");
        for (i, (m, f)) in m.iter().zip(f).enumerate() {
            let (mut m, mut f) = (m.clone(), f.clone());
            crate::local::normalize(&mut m, sent_at);
            crate::local::normalize(&mut f, sent_at);
            compared += 1;
            if m != f {
                diffs.push(format!(
                    "op {}: {}\n  mock:       {m}\n  miniflare:  {f}",
                    b * BATCH + i,
                    batch[i]
                ));
            }
        }
    }
    let _ = worker.stop().await;
    stop.cancel();
    // Only KV reached the mock: CACHE really was miniflare's own KV, so the comparison is real.
    let stats = serde_json::to_string(&kv.stats()).expect("stats");
    assert!(
        stats.contains("\"KV\"") && !stats.contains("\"CACHE\""),
        "{stats}"
    );
    assert!(compared >= 1_000, "{compared}");
    assert!(
        diffs.is_empty(),
        "{} of {compared} operations differ:\n{}",
        diffs.len(),
        diffs
            .iter()
            .take(15)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
}
