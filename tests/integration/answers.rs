//! Failures reach the report: error answers keep the start of their bodies (secrets
//! redacted), `expect` decides which statuses are errors, and a scenario without requests
//! runs its drivers for the phases' length.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::Path;

use bytes::Bytes;
use http_body_util::Full;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use kvchaos::live::{Interrupts, Silent};
use kvchaos::run::{RunOptions, run};

/// `/fail` → 500 quoting the request's `authorization` header after a KV error text, `/missing`
/// → 404, anything else 200.
async fn worker_like() -> SocketAddr {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind 127.0.0.1:0");
    let addr = l.local_addr().expect("local addr");
    tokio::spawn(async move {
        while let Ok((s, _)) = l.accept().await {
            tokio::spawn(async move {
                let svc = service_fn(|req: Request<hyper::body::Incoming>| async move {
                    let auth = req
                        .headers()
                        .get("authorization")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("")
                        .to_owned();
                    let (status, body) = match req.uri().path() {
                        "/fail" => (
                            StatusCode::INTERNAL_SERVER_ERROR,
                            format!(
                                "Error: KV PUT failed: 429 KV put() limit exceeded for the day. (caller {auth})"
                            ),
                        ),
                        "/missing" => (StatusCode::NOT_FOUND, "no such item".to_owned()),
                        _ => (StatusCode::OK, "ok".to_owned()),
                    };
                    let mut resp = Response::new(Full::new(Bytes::from(body)));
                    *resp.status_mut() = status;
                    Ok::<_, Infallible>(resp)
                });
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(s), svc)
                    .await;
            });
        }
    });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn error_answers_are_quoted_redacted_and_expect_decides_errors() {
    let addr = worker_like().await;
    let text = format!(
        r#"name = "answers"
[target]
url = "http://{addr}"
[[phases]]
duration = "1s"
rate = 60
[[requests]]
name = "fail"
path = "/fail"
headers = {{ authorization = "Bearer {{{{env.KVCHAOS_IT_TOKEN}}}}" }}
[[requests]]
name = "missing"
path = "/missing"
expect = [200, 404]
[[requests]]
name = "created"
path = "/ok"
expect = [201]
"#
    );
    let env = |n: &str| (n == "KVCHAOS_IT_TOKEN").then(|| "s3cr3t-t0ken".to_owned());
    let plan = kvchaos::scenario::parse_str(&text, Path::new("answers.toml"), &env)
        .expect("scenario is valid");
    let tmp = tempfile::tempdir().expect("tempdir");
    let opts = RunOptions {
        out: tmp.path().to_owned(),
        threads: Some(1),
        ..RunOptions::default()
    };
    let outcome = run(plan, &opts, Interrupts::default(), &mut Silent)
        .await
        .expect("run produces a report");
    let s = &outcome.summary;
    let req = |n: &str| s.requests.iter().find(|r| r.name == n).expect("request");
    let (fail, missing, created) = (req("fail"), req("missing"), req("created"));
    assert!(fail.completed > 0 && missing.completed > 0 && created.completed > 0);
    assert_eq!(fail.errors, fail.completed);
    assert_eq!(missing.errors, 0, "404 is expected: {:?}", missing.by_class);
    assert_eq!(missing.by_class.get("expected"), Some(&missing.completed));
    assert_eq!(
        created.errors, created.completed,
        "200 is not in expect = [201]"
    );
    assert_eq!(created.by_class.get("unexpected"), Some(&created.completed));

    assert_eq!(s.error_answers.len(), 1, "{:?}", s.error_answers);
    let a = &s.error_answers[0];
    assert_eq!((a.request.as_str(), a.status), ("fail", 500));
    assert_eq!(a.count, fail.completed);
    assert_eq!(
        a.body,
        "Error: KV PUT failed: 429 KV put() limit exceeded for the day. (caller Bearer ***)"
    );
    let dir = &outcome.report_dir;
    for file in ["summary.json", "report.md", "report.html"] {
        let written = std::fs::read_to_string(dir.join(file)).expect("report file");
        assert!(
            written.contains("KV put() limit exceeded for the day."),
            "{file}"
        );
        assert!(!written.contains("s3cr3t-t0ken"), "{file} leaks the secret");
    }
    let terminal = kvchaos::report::text::terminal_summary(s);
    assert!(terminal.contains("answer fail HTTP 500"), "{terminal}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scenario_without_requests_runs_for_its_phases_and_reports() {
    let addr = worker_like().await;
    let text = format!(
        "name = \"no-requests\"\n[target]\nurl = \"http://{addr}\"\n[[phases]]\nduration = \"1s\"\npause = true\n[cron]\n"
    );
    let plan = kvchaos::scenario::parse_str(&text, Path::new("quiet.toml"), &|_| None)
        .expect("a requestless scenario with [cron] is valid");
    assert!(plan.requests.is_empty());
    let tmp = tempfile::tempdir().expect("tempdir");
    let opts = RunOptions {
        out: tmp.path().to_owned(),
        threads: Some(1),
        ..RunOptions::default()
    };
    let outcome = run(plan, &opts, Interrupts::default(), &mut Silent)
        .await
        .expect("run produces a report");
    let s = &outcome.summary;
    assert!(s.requests.is_empty());
    assert_eq!(s.overall.completed, 0);
    assert!(
        s.duration_s >= 1.0,
        "the pause phase sets the length: {}",
        s.duration_s
    );
    for file in ["summary.json", "report.md", "report.html"] {
        assert!(outcome.report_dir.join(file).is_file(), "{file}");
    }
}
