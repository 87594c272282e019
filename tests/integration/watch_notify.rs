//! `kvchaos watch` notifiers against a local webhook receiver (wiremock on 127.0.0.1:0): the
//! exact Slack and Discord payloads, the generic webhook, 429 with `Retry-After` or Discord's
//! `retry_after` retried, the retry budget, redaction; and `--once` runs of the built binary
//! whose state file prevents repeats.

use std::time::{Duration, Instant};

use kvchaos::redact::Redactor;
use kvchaos::rest::Client;
use kvchaos::watch::alert::{Notice, NoticeKind};
use kvchaos::watch::config::Severity;
use kvchaos::watch::notify::{self, RetryPolicy};
use kvchaos::watch::plan::{Notifier, NotifierKind};
use serde_json::{Value, json};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

/// 2023-11-14T22:14:00Z.
const T: u64 = 1_700_000_040_000;

fn fired() -> Notice {
    Notice {
        check: "billing-cron".to_owned(),
        kind: NoticeKind::Fired {
            severity: Severity::Late,
        },
        since_ms: T + 90_000,
        now_ms: T + 95_000,
        summary: "cron late: last run 2023-11-14T22:14:00Z, token s3cret <ok>".to_owned(),
        evidence: vec![
            "last run 2023-11-14T22:14:00Z".to_owned(),
            "late from 22:15:30".to_owned(),
        ],
    }
}

fn recovered() -> Notice {
    Notice {
        check: "billing-cron".to_owned(),
        kind: NoticeKind::Recovered {
            missed_slots: Some(2),
            at_ms: T + 185_000,
        },
        since_ms: T + 90_000,
        now_ms: T + 185_000,
        summary: "last run 2023-11-14T22:17:00Z".to_owned(),
        evidence: vec![],
    }
}

fn redactor() -> Redactor {
    let mut r = Redactor::default();
    r.add("s3cret");
    r
}

fn to(kind: NotifierKind, url: String) -> Notifier {
    Notifier {
        kind,
        url_env: "HOOK_URL".to_owned(),
        url,
    }
}

fn fast() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 4,
        first_backoff: Duration::from_millis(50),
        max_total: Duration::from_secs(10),
    }
}

async fn bodies(server: &MockServer) -> Vec<Value> {
    server
        .received_requests()
        .await
        .unwrap_or_default()
        .iter()
        .map(|r| serde_json::from_slice(&r.body).expect("JSON body"))
        .collect()
}

async fn receiver(status: u16) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/hook"))
        .respond_with(ResponseTemplate::new(status))
        .mount(&server)
        .await;
    server
}

#[tokio::test]
async fn slack_gets_text_and_blocks_exactly() {
    let server = receiver(200).await;
    let mut c = Client::new(Duration::from_secs(5));
    let n = to(NotifierKind::Slack, format!("{}/hook", server.uri()));
    let d = notify::deliver(&mut c, &[n], &[fired(), recovered()], &redactor(), fast()).await;
    assert!(
        d.iter().all(|d| d.taken() && d.results[0].1 == Ok(1)),
        "{d:?}"
    );
    let b = bodies(&server).await;
    assert_eq!(
        b[0],
        json!({
            "text": "ALERT billing-cron: late since 2023-11-14T22:15:30Z: cron late: last run 2023-11-14T22:14:00Z, token *** &lt;ok&gt;",
            "blocks": [
                {"type": "header", "text": {"type": "plain_text", "text": "ALERT billing-cron: late"}},
                {"type": "section", "text": {"type": "mrkdwn", "text": "cron late: last run 2023-11-14T22:14:00Z, token *** &lt;ok&gt;"}},
                {"type": "section", "fields": [
                    {"type": "mrkdwn", "text": "*Since*\n2023-11-14T22:15:30Z"},
                    {"type": "mrkdwn", "text": "*Checked*\n2023-11-14T22:15:35Z"}
                ]},
                {"type": "section", "text": {"type": "mrkdwn", "text": "*Evidence*\n```last run 2023-11-14T22:14:00Z\nlate from 22:15:30```"}},
                {"type": "context", "elements": [{"type": "mrkdwn", "text": "kvchaos watch"}]}
            ]
        })
    );
    assert_eq!(
        b[1]["text"],
        "RECOVERED billing-cron at 2023-11-14T22:17:05Z after 1m 35s (failing since 2023-11-14T22:15:30Z; 2 expected runs missed): last run 2023-11-14T22:17:00Z"
    );
    assert_eq!(
        b[1]["blocks"][2]["fields"],
        json!([
            {"type": "mrkdwn", "text": "*Failing since*\n2023-11-14T22:15:30Z"},
            {"type": "mrkdwn", "text": "*Up again*\n2023-11-14T22:17:05Z"},
            {"type": "mrkdwn", "text": "*Missed runs*\n2"},
            {"type": "mrkdwn", "text": "*Checked*\n2023-11-14T22:17:05Z"}
        ])
    );
    assert_eq!(
        b[1]["blocks"].as_array().map(Vec::len),
        Some(4),
        "no evidence block"
    );
}

#[tokio::test]
async fn discord_gets_content_embeds_and_no_mentions_exactly() {
    let server = receiver(204).await;
    let mut c = Client::new(Duration::from_secs(5));
    let n = to(NotifierKind::Discord, format!("{}/hook", server.uri()));
    let mut loud = fired();
    loud.summary = format!("@everyone {}", "x".repeat(3000));
    let d = notify::deliver(&mut c, &[n], &[fired(), loud], &redactor(), fast()).await;
    assert!(d.iter().all(|d| d.taken()), "{d:?}");
    let b = bodies(&server).await;
    assert_eq!(
        b[0],
        json!({
            "content": "ALERT billing-cron: late since 2023-11-14T22:15:30Z: cron late: last run 2023-11-14T22:14:00Z, token *** <ok>",
            "embeds": [{
                "title": "ALERT billing-cron: late",
                "description": "cron late: last run 2023-11-14T22:14:00Z, token *** <ok>",
                "color": 0xE0_1E_5A,
                "fields": [
                    {"name": "Since", "value": "2023-11-14T22:15:30Z", "inline": true},
                    {"name": "Checked", "value": "2023-11-14T22:15:35Z", "inline": true},
                    {"name": "Evidence", "value": "last run 2023-11-14T22:14:00Z\nlate from 22:15:30", "inline": false}
                ],
                "timestamp": "2023-11-14T22:15:35Z"
            }],
            "allowed_mentions": {"parse": []}
        })
    );
    let content = b[1]["content"].as_str().unwrap_or_default();
    assert_eq!(
        content.chars().count(),
        2000,
        "content is cut to Discord's limit"
    );
    assert!(content.ends_with('…'));
    assert_eq!(b[1]["allowed_mentions"], json!({"parse": []}));
}

#[tokio::test]
async fn the_generic_webhook_gets_one_flat_document() {
    let server = receiver(200).await;
    let mut c = Client::new(Duration::from_secs(5));
    let n = to(NotifierKind::Webhook, format!("{}/hook", server.uri()));
    notify::deliver(&mut c, &[n], &[recovered()], &redactor(), fast()).await;
    let b = bodies(&server).await;
    assert_eq!(
        b[0],
        json!({
            "source": "kvchaos watch",
            "event": "recovered",
            "check": "billing-cron",
            "severity": null,
            "text": "RECOVERED billing-cron at 2023-11-14T22:17:05Z after 1m 35s (failing since 2023-11-14T22:15:30Z; 2 expected runs missed): last run 2023-11-14T22:17:00Z",
            "summary": "last run 2023-11-14T22:17:00Z",
            "since": "2023-11-14T22:15:30Z",
            "since_ms": T + 90_000,
            "at": "2023-11-14T22:17:05Z",
            "at_ms": T + 185_000,
            "missed_slots": 2,
            "evidence": []
        })
    );
}

#[tokio::test]
async fn a_429_is_retried_after_retry_after_and_discords_retry_after() {
    for (kind, answer) in [
        (NotifierKind::Slack, ResponseTemplate::new(429).insert_header("retry-after", "1")),
        (
            NotifierKind::Discord,
            ResponseTemplate::new(429).set_body_json(json!({"message": "You are being rate limited.", "retry_after": 0.3, "global": false})),
        ),
    ] {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .respond_with(answer)
            .up_to_n_times(1)
            .with_priority(1)
            .mount(&server)
            .await;
        Mock::given(method("POST"))
            .respond_with(ResponseTemplate::new(200))
            .with_priority(2)
            .mount(&server)
            .await;
        let mut c = Client::new(Duration::from_secs(5));
        // The backoff alone would wait 50 ms; the server's wait is honoured instead.
        let started = Instant::now();
        let r = notify::send(&mut c, &to(kind, server.uri()), &json!({"text": "x"}), fast()).await;
        let waited = started.elapsed();
        assert_eq!(r, Ok(2), "{kind:?}");
        let wanted = if kind == NotifierKind::Slack { 1000 } else { 300 };
        assert!(waited >= Duration::from_millis(wanted), "{kind:?} waited {waited:?}");
        assert!(waited < Duration::from_millis(wanted + 2000), "{kind:?} waited {waited:?}");
        assert_eq!(bodies(&server).await.len(), 2);
    }
}

#[tokio::test]
async fn retries_are_bounded_in_count_and_time_and_name_the_variable_not_the_url() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/slow"))
        .respond_with(ResponseTemplate::new(429).insert_header("retry-after", "3600"))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/broken"))
        .respond_with(ResponseTemplate::new(503))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/gone"))
        .respond_with(ResponseTemplate::new(404).set_body_string("no_service"))
        .mount(&server)
        .await;
    let mut c = Client::new(Duration::from_secs(5));
    let started = Instant::now();
    let url = format!("{}/slow", server.uri());
    let e = notify::send(
        &mut c,
        &to(NotifierKind::Slack, url.clone()),
        &json!({}),
        fast(),
    )
    .await
    .expect_err("an hour is past the budget");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "did not wait the hour"
    );
    assert!(
        e.contains("$HOOK_URL") && e.contains("delivery budget") && !e.contains(&url),
        "{e}"
    );

    let url = format!("{}/broken", server.uri());
    let e = notify::send(
        &mut c,
        &to(NotifierKind::Slack, url.clone()),
        &json!({}),
        fast(),
    )
    .await
    .expect_err("always 503");
    assert!(
        e.contains("gave up after 4 attempts") && !e.contains(&url),
        "{e}"
    );

    let url = format!("{}/gone", server.uri());
    let e = notify::send(
        &mut c,
        &to(NotifierKind::Slack, url.clone()),
        &json!({}),
        fast(),
    )
    .await
    .expect_err("404 is final");
    assert!(e.contains("refused with HTTP 404: no_service"), "{e}");
    let requests = server.received_requests().await.unwrap_or_default();
    assert_eq!(
        requests.iter().filter(|r| r.url.path() == "/slow").count(),
        1
    );
    assert_eq!(
        requests
            .iter()
            .filter(|r| r.url.path() == "/broken")
            .count(),
        4
    );
    assert_eq!(
        requests.iter().filter(|r| r.url.path() == "/gone").count(),
        1
    );
}

const BIN: &str = env!("CARGO_BIN_EXE_kvchaos");

/// `kvchaos watch --once --state` three times against a status endpoint whose cron stopped:
/// exit 1 each time, one notification only; then it runs again: exit 0 and one recovery.
#[tokio::test]
async fn once_runs_share_the_state_file_and_do_not_repeat() {
    let status = MockServer::start().await;
    let hook = receiver(200).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let watch = dir.path().join("WATCH.toml");
    let state = dir.path().join("state.json");
    std::fs::write(
        &watch,
        format!(
            "[[check]]\nname = \"cron\"\nkind = \"cron\"\nurl = \"{}/cron/status\"\npointer = \"/last_run\"\ncrons = [\"*/5 * * * *\"]\ngrace = \"1m\"\n\n[[notify]]\nkind = \"webhook\"\nurl_env = \"WATCH_TEST_HOOK\"\n",
            status.uri()
        ),
    )
    .expect("write watch file");
    let once = |last_run: Value| {
        let status = &status;
        let (watch, state, hook) = (&watch, &state, &hook);
        async move {
            status.reset().await;
            Mock::given(path("/cron/status"))
                .respond_with(
                    ResponseTemplate::new(200)
                        .set_body_json(json!({"last_run": last_run, "runs": 1})),
                )
                .mount(status)
                .await;
            let out = tokio::process::Command::new(BIN)
                .args([
                    "watch",
                    &watch.to_string_lossy(),
                    "--once",
                    "--state",
                    &state.to_string_lossy(),
                ])
                .env("WATCH_TEST_HOOK", format!("{}/hook", hook.uri()))
                .output()
                .await
                .expect("run kvchaos watch");
            let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
            (out.status.code(), stdout, bodies(hook).await.len())
        }
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    let (code, out, sent) = once(json!(now - 3_600_000)).await;
    assert_eq!((code, sent), (Some(1), 1), "{out}");
    assert!(out.contains("cron ALERT (down)"), "{out}");
    let (code, out, sent) = once(json!(now - 3_600_000)).await;
    assert_eq!((code, sent), (Some(1), 1), "no repeat: {out}");
    let (code, out, sent) = once(json!(now)).await;
    assert_eq!((code, sent), (Some(0), 2), "{out}");
    let b = bodies(&hook).await;
    assert_eq!(b[0]["event"], "fired");
    assert_eq!(b[1]["event"], "recovered");
    assert!(
        b[1]["missed_slots"].as_u64().is_some_and(|m| m >= 11),
        "{}",
        b[1]
    );
    let help = std::process::Command::new(BIN)
        .args(["watch", "--help"])
        .output()
        .expect("help");
    let help = String::from_utf8_lossy(&help.stdout);
    assert!(
        help.contains("an alert is active")
            && help.contains("state file cannot be read or written"),
        "{help}"
    );
}

/// The daemon evaluates at once, keeps going, and exits 0 on SIGTERM, having saved its state.
#[tokio::test]
async fn the_daemon_stops_cleanly_on_sigterm() {
    use tokio::io::AsyncBufReadExt;
    let status = MockServer::start().await;
    Mock::given(path("/count"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"count": 5})))
        .mount(&status)
        .await;
    let dir = tempfile::tempdir().expect("tempdir");
    let watch = dir.path().join("WATCH.toml");
    let state = dir.path().join("state.json");
    std::fs::write(
        &watch,
        format!(
            "interval = \"1s\"\n[[check]]\nname = \"input\"\nkind = \"counter\"\nurl = \"{}/count\"\npointer = \"/count\"\nwindow = \"1h\"\n",
            status.uri()
        ),
    )
    .expect("write watch file");
    let mut child = tokio::process::Command::new(BIN)
        .args([
            "watch",
            &watch.to_string_lossy(),
            "--state",
            &state.to_string_lossy(),
        ])
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn kvchaos watch");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = tokio::io::BufReader::new(stdout).lines();
    // Two evaluations (a second apart), read as they are printed.
    let mut evaluations = 0;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while evaluations < 2 {
        let line = tokio::time::timeout_at(deadline, lines.next_line())
            .await
            .expect("an evaluation within 30 s")
            .expect("read stdout")
            .expect("kvchaos watch is still running");
        if line.contains(" input up: warming up") {
            evaluations += 1;
        }
    }
    // SAFETY: kill has no memory preconditions; the pid is our own child's.
    unsafe { libc::kill(child.id().map_or(0, |p| p as i32), libc::SIGTERM) };
    let code = tokio::time::timeout(Duration::from_secs(10), child.wait())
        .await
        .expect("exits within 10 s of SIGTERM")
        .expect("wait");
    assert_eq!(code.code(), Some(0));
    let saved: Value = serde_json::from_str(&std::fs::read_to_string(&state).expect("state saved"))
        .expect("state is JSON");
    let samples = saved["checks"]["input"]["samples"]
        .as_array()
        .map_or(0, Vec::len);
    assert!(samples >= 2, "{saved}");
}
