//! `kvchaos watch` against the KV reference Worker under miniflare, its KV routed to the
//! in-process mock: a cron stopped by the KV daily write limit is detected within one period
//! plus grace, and its recovery is notified with the missed runs. Virtual time: the test
//! fires the Worker's cron with chosen `scheduledTime`s on a clock that advances 10 s per
//! step and evaluates the watch at those virtual `now`s; nothing sleeps. Needs Node.js;
//! fails without it unless KVCHAOS_SKIP_NODE=1 (then skipped with a printed reason).

use std::path::Path;
use std::time::Instant;

use kvchaos::local::CronOutcome;
use kvchaos::watch::alert::NoticeKind;
use kvchaos::watch::notify::RetryPolicy;
use kvchaos::watch::state::State;
use serde_json::Value;
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::local::{ONE_AT_A_TIME, mock, node_ready};
use crate::reference_workers::{start_dir, stop};

const KV_WORKER: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/mock/workers/kv-control-plane");
/// 2023-11-14T22:14:00Z: a minute boundary, the first successful run.
const T0: u64 = 1_700_000_040_000;
const S: u64 = 1_000;
const M: u64 = 60_000;
/// Virtual time between evaluations.
const STEP: u64 = 10 * S;
const GRACE: u64 = 30 * S;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cron_stopped_by_a_kv_fault_is_detected_within_a_period_plus_grace_and_recovers() {
    if !node_ready().await {
        return;
    }
    let _one = ONE_AT_A_TIME.lock().await;
    let dir = tempfile::tempdir().expect("tempdir");
    // No same-key write limit: virtual cron times run ahead of the mock's own clock.
    let m = mock(false).await;
    let w = start_dir(Path::new(KV_WORKER), m.addr, dir.path()).await;
    let hook = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_string("ok"))
        .mount(&hook)
        .await;
    let text = format!(
        "[[check]]\nname = \"kv-cron\"\nkind = \"cron\"\nurl = \"{}/cron/status\"\npointer = \"/last_run\"\nwrangler = \"{KV_WORKER}\"\ngrace = \"30s\"\n\n[[check]]\nname = \"kv-runs\"\nkind = \"counter\"\nurl = \"{}/cron/status\"\npointer = \"/runs\"\nmin_increase = 1\nwindow = \"2m\"\n\n[[notify]]\nkind = \"slack\"\nurl_env = \"SLACK_WEBHOOK_URL\"\n",
        w.url(),
        w.url()
    );
    let hook_url = format!("{}/services/T/B/secret", hook.uri());
    let plan = kvchaos::watch::config::parse_str(&text, &dir.path().join("WATCH.toml"), &|n| {
        (n == "SLACK_WEBHOOK_URL").then(|| hook_url.clone())
    })
    .unwrap_or_else(|e| panic!("{e}"));
    let mut client = kvchaos::watch::client(&plan);
    let mut state = State::new();

    let started = Instant::now();
    let mut fault = None;
    let mut detected = None;
    let mut recovered = None;
    // Stop the control plane's KV writes after the first run; heal before the fifth.
    for step in 0..=(6 * M / STEP) {
        let now = T0 + step * STEP;
        if now == T0 + 30 * S {
            fault = Some(
                m.kv.add_fault("kind=daily-limit,ops=put".parse().expect("fault spec"))
                    .expect("add fault"),
            );
        }
        if now == T0 + 3 * M + 30 * S
            && let Some(id) = fault.take()
        {
            assert!(m.kv.clear_fault(id));
        }
        if now % M == 0 {
            let outcome = w.fire_cron("*/1 * * * *", now).await.expect("fire cron");
            let healthy = now == T0 || now >= T0 + 4 * M;
            let want = if healthy {
                CronOutcome::Ok
            } else {
                CronOutcome::Exception
            };
            assert_eq!(outcome, want, "cron at T0+{}s", (now - T0) / S);
        }
        let r =
            kvchaos::watch::round(&plan, &state, &mut client, now, RetryPolicy::default()).await;
        state = r.evaluation.state.clone();
        for d in &r.deliveries {
            assert!(d.taken(), "{d:?}");
            match (d.notice.check.as_str(), &d.notice.kind) {
                ("kv-cron", NoticeKind::Fired { .. }) => {
                    detected = detected.or(Some((now, d.notice.clone())))
                }
                ("kv-cron", NoticeKind::Recovered { .. }) => {
                    recovered = recovered.or(Some((now, d.notice.clone())))
                }
                _ => {}
            }
        }
    }
    let wall = started.elapsed();

    let (detected_at, fired) = detected.expect("the stop was detected");
    let first_missed = T0 + M;
    // Detected at the first evaluation at or after the missed slot + grace.
    assert_eq!(detected_at, first_missed + GRACE);
    assert!(
        detected_at - T0 <= M + GRACE,
        "within one period plus grace of the last run"
    );
    assert_eq!(fired.since_ms, first_missed + GRACE);
    assert!(
        fired.evidence[0].contains("last run 2023-11-14T22:14:00Z"),
        "{:?}",
        fired.evidence
    );
    let (recovered_at, rec) = recovered.expect("the recovery was notified");
    assert_eq!(
        recovered_at,
        T0 + 4 * M,
        "recovered at the first evaluation after the healed run"
    );
    assert_eq!(
        rec.kind,
        NoticeKind::Recovered {
            missed_slots: Some(3),
            at_ms: T0 + 4 * M
        }
    );
    println!(
        "watch under miniflare: stop detected {} s of virtual time after the first missed slot ({} s after the last run; bound {} s); recovery notified {} s after the healed run; {} evaluations in {} ms of wall time",
        (detected_at - first_missed) / S,
        (detected_at - T0) / S,
        (M + GRACE) / S,
        (recovered_at - (T0 + 4 * M)) / S,
        6 * M / STEP + 1,
        wall.as_millis()
    );

    // The receiver saw the cron's alert and recovery, and the counter's (runs stopped for 3 min).
    let bodies: Vec<Value> = hook
        .received_requests()
        .await
        .unwrap_or_default()
        .iter()
        .map(|r| serde_json::from_slice(&r.body).expect("JSON"))
        .collect();
    let texts: Vec<&str> = bodies.iter().filter_map(|b| b["text"].as_str()).collect();
    assert_eq!(
        texts
            .iter()
            .filter(|t| t.starts_with("ALERT kv-cron: late"))
            .count(),
        1,
        "{texts:#?}"
    );
    assert_eq!(
        texts
            .iter()
            .filter(|t| t.starts_with("RECOVERED kv-cron"))
            .count(),
        1,
        "{texts:#?}"
    );
    assert!(
        texts.iter().any(|t| t.contains("3 expected runs missed")),
        "{texts:#?}"
    );
    assert_eq!(
        texts
            .iter()
            .filter(|t| t.starts_with("ALERT kv-runs"))
            .count(),
        1,
        "{texts:#?}"
    );
    assert_eq!(
        texts
            .iter()
            .filter(|t| t.starts_with("RECOVERED kv-runs"))
            .count(),
        1,
        "{texts:#?}"
    );
    assert!(
        !texts.iter().any(|t| t.contains("secret")),
        "the webhook URL is never in a message"
    );
    stop(w).await;
}
