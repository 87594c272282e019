//! Dumps: cost, checkpoint and resume, rate limits, unknown namespaces, --max-ops.

use std::time::Duration;

use base64::Engine as _;
use kvchaos::exit::Exit;
use serde_json::json;

use super::*;

#[tokio::test]
async fn a_dump_of_10000_keys_costs_110_requests_and_keeps_values_metadata_expiration() {
    let m = mock(Limits::PAID).await;
    let mut pairs = text_pairs("master:", 10_000);
    pairs[7] = json!({"key": "master:00007", "value": "v7", "metadata": {"v": 7}, "expiration": 4_000_000_000u64});
    pairs[8] = json!({"key": "master:00008", "value": base64::engine::general_purpose::STANDARD.encode([0xff, 0x00, 0xfe]), "base64": true});
    pairs.push(json!({"key": "other:1", "value": "not dumped"}));
    m.seed("NS", pairs).await;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("dump.ndjson");
    let before = m.kv.rest_requests();
    let r = kv(
        &argv(
            &[
                "dump",
                "--prefix",
                "master:",
                "-o",
                &path(&out),
                "--actor",
                "ops@example",
            ],
            m.ns_args("NS"),
        ),
        &memory_env(),
    )
    .await;
    assert_eq!(r.exit, Exit::Pass, "{}{}", r.out, r.err);
    let requests = m.kv.rest_requests() - before;
    // 10 list pages of 1,000, 100 bulk gets of 100, 1 get for the value that is not text.
    assert_eq!(requests, 10 + 100 + 1, "{}", r.out);
    assert!(
        r.out.contains("costs 1 list request per 1000 keys"),
        "{}",
        r.out
    );
    assert!(
        r.out.contains("reading them takes 100 bulk gets"),
        "{}",
        r.out
    );
    let lines = read_dump(&out);
    assert_eq!(lines.len(), 10_000);
    assert_eq!(lines[7].metadata, Some(json!({"v": 7})));
    assert_eq!(lines[7].expiration, Some(4_000_000_000));
    assert_eq!((lines[8].value.as_str(), lines[8].base64), ("/wD+", true));
    assert_eq!((lines[9].value.as_str(), lines[9].base64), ("v9", false));
    let man = manifest(&out);
    assert_eq!(
        (man.count, man.prefix.as_str(), man.actor.as_str()),
        (10_000, "master:", "ops@example")
    );
    assert_eq!(
        man.sha256,
        kvchaos::kv::record::sha256_hex(&std::fs::read(&out).unwrap())
    );
    assert_eq!(
        (man.requests.list, man.requests.bulk_get, man.requests.get),
        (10, 100, 1)
    );
    if kvchaos::local::find_on_path("git").is_some() {
        assert!(
            man.git_commit.is_some(),
            "the tests run inside the kvchaos work tree"
        );
    }
    assert!(
        !dir.path().join("dump.ndjson.checkpoint.json").exists(),
        "a finished dump leaves no checkpoint"
    );
}

#[tokio::test]
async fn a_429_interrupts_a_dump_and_the_checkpoint_resumes_it_without_repeating_work() {
    let m = mock(Limits::PAID).await;
    m.seed("NS", text_pairs("clinic:", 2_500)).await;
    m.kv.set_rest_rate_limit(Some("10/5m".parse().unwrap()));
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("d.ndjson");
    let args = argv(
        &[
            "dump",
            "--prefix",
            "clinic:",
            "-o",
            &path(&out),
            "--actor",
            "me",
            "--max-retry-wait",
            "0s",
        ],
        m.ns_args("NS"),
    );
    let before = m.kv.rest_requests();
    let first = kv(&args, &memory_env()).await;
    assert_eq!(first.exit, Exit::Environment, "{}{}", first.out, first.err);
    // The window began with the dump's first request: a loaded machine may have taken a
    // second or two to reach the eleventh.
    let retry_after: u64 = first
        .err
        .split("rate limited by the API (429); retry after ")
        .nth(1)
        .and_then(|rest| rest.split('s').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no Retry-After in {}", first.err));
    assert!((240..=300).contains(&retry_after), "{}", first.err);
    assert!(
        first.err.contains("run the same command again to resume"),
        "{}",
        first.err
    );
    assert!(dir.path().join("d.ndjson.checkpoint.json").exists());
    assert!(!out.exists(), "no dump before it is complete");
    let mut runs = 1;
    let done = loop {
        m.kv.clock().advance(Duration::from_secs(300));
        let r = kv(&args, &memory_env()).await;
        runs += 1;
        assert!(r.out.contains("resuming from the checkpoint"), "{}", r.out);
        if r.exit == Exit::Pass {
            break r;
        }
        assert_eq!(r.exit, Exit::Environment, "{}", r.err);
        assert!(runs < 10, "the dump makes progress on every run");
        // A run killed between writing lines and saving its checkpoint leaves lines the
        // checkpoint does not know: the next run must drop them.
        let partial = dir.path().join("d.ndjson.partial");
        if partial.exists() {
            let mut f = std::fs::OpenOptions::new()
                .append(true)
                .open(&partial)
                .unwrap();
            std::io::Write::write_all(&mut f, b"{\"key\":\"clinic:half-writ").unwrap();
        }
    };
    // Every run but the last ended with one refused request; the admitted ones are exactly
    // what a dump in one go sends: 3 list pages and 25 bulk gets.
    let refused = runs - 1;
    assert_eq!(
        m.kv.rest_requests() - before - refused,
        3 + 25,
        "{}",
        done.out
    );
    let lines = read_dump(&out);
    assert_eq!(lines.len(), 2_500);
    let mut keys: Vec<&str> = lines.iter().map(|r| r.key.as_str()).collect();
    keys.dedup();
    assert_eq!(keys.len(), 2_500, "no line twice");
    assert_eq!(manifest(&out).requests.bulk_get, 25);
}

#[tokio::test]
async fn a_short_retry_after_is_waited_out() {
    let m = mock(Limits::PAID).await;
    m.seed("NS", text_pairs("k:", 250)).await;
    m.kv.set_rest_rate_limit(Some("2/1s".parse().unwrap()));
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("d.ndjson");
    let r = kv(
        &argv(
            &[
                "dump",
                "-o",
                &path(&out),
                "--actor",
                "me",
                "--max-retry-wait",
                "5s",
            ],
            m.ns_args("NS"),
        ),
        &memory_env(),
    )
    .await;
    assert_eq!(r.exit, Exit::Pass, "{}{}", r.out, r.err);
    assert_eq!(read_dump(&out).len(), 250);
}

#[tokio::test]
async fn an_unknown_namespace_is_404_code_10013_and_a_usage_error() {
    let m = mock(Limits::PAID).await;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("d.ndjson");
    let r = kv(
        &argv(&["dump", "-o", &path(&out)], m.ns_args("nope")),
        &memory_env(),
    )
    .await;
    assert_eq!(r.exit, Exit::Usage, "{}", r.err);
    assert!(
        r.err.contains("404 (code 10013)")
            && r.err.contains("check --account-id and --namespace-id"),
        "{}",
        r.err
    );
    let bad = KvEnv::with_token(
        "wrong-token",
        ObjectStores::Fixed(Arc::new(object_store::memory::InMemory::new())),
    );
    m.kv.create_namespace("NS");
    let r = kv(&argv(&["dump", "-o", &path(&out)], m.ns_args("NS")), &bad).await;
    assert_eq!(r.exit, Exit::Usage, "{}", r.err);
    assert!(
        r.err.contains("CLOUDFLARE_API_TOKEN") && !r.err.contains("wrong-token"),
        "{}",
        r.err
    );
    let r = kv(
        &argv(
            &["dump", "-o", &path(&out)],
            vec![
                "--account-id".into(),
                "a".into(),
                "--namespace-id".into(),
                "n".into(),
                "--api-base".into(),
                "http://127.0.0.1:1/client/v4".into(),
            ],
        ),
        &memory_env(),
    )
    .await;
    assert_eq!(r.exit, Exit::Environment, "unreachable: {}", r.err);
}

#[tokio::test]
async fn max_ops_refuses_before_reading() {
    let m = mock(Limits::PAID).await;
    m.seed("NS", text_pairs("k:", 1_500)).await;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("d.ndjson");
    let before = m.kv.rest_requests();
    let r = kv(
        &argv(
            &[
                "dump",
                "-o",
                &path(&out),
                "--actor",
                "me",
                "--max-ops",
                "10",
            ],
            m.ns_args("NS"),
        ),
        &memory_env(),
    )
    .await;
    assert_eq!(r.exit, Exit::Fail, "{}{}", r.out, r.err);
    assert!(
        r.err
            .contains("would take 17 requests, more than --max-ops 10"),
        "{}",
        r.err
    );
    assert_eq!(
        m.kv.rest_requests() - before,
        2,
        "only the listing was done"
    );
}
