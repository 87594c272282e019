//! Replay end to end: captures generated here (wrangler tail's pretty-printed stream, HAR 1.2
//! with bodies) replayed against a recording server, and `kvchaos replay import` on a large
//! capture and on a broken one.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use serde_json::json;
use tokio::net::TcpListener;

const BIN: &str = env!("CARGO_BIN_EXE_kvchaos");

/// A request as the server saw it.
#[derive(Debug, Clone)]
struct Seen {
    at: Instant,
    method: String,
    path: String,
    headers: Vec<(String, String)>,
    body: String,
}

/// A server on 127.0.0.1:0 that records every request and answers 200 (`/fail/...`: 503).
async fn recorder() -> (SocketAddr, Arc<Mutex<Vec<Seen>>>) {
    let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = l.local_addr().expect("addr");
    let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
    let log = seen.clone();
    tokio::spawn(async move {
        while let Ok((s, _)) = l.accept().await {
            let log = log.clone();
            tokio::spawn(async move {
                let svc = service_fn(move |req: Request<hyper::body::Incoming>| {
                    let log = log.clone();
                    async move {
                        let at = Instant::now();
                        let method = req.method().to_string();
                        let path = req.uri().to_string();
                        let headers = req
                            .headers()
                            .iter()
                            .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_owned()))
                            .collect();
                        let body = req.into_body().collect().await.map(|b| b.to_bytes());
                        let body = String::from_utf8_lossy(&body.unwrap_or_default()).into_owned();
                        let fail = path.starts_with("/fail");
                        log.lock().expect("log").push(Seen {
                            at,
                            method,
                            path,
                            headers,
                            body,
                        });
                        let mut resp = Response::new(Full::new(Bytes::from_static(b"ok")));
                        if fail {
                            *resp.status_mut() = hyper::StatusCode::SERVICE_UNAVAILABLE;
                        }
                        Ok::<_, Infallible>(resp)
                    }
                });
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(s), svc)
                    .await;
            });
        }
    });
    (addr, seen)
}

/// A wrangler tail capture as `wrangler tail --format json` prints it.
fn tail_capture(events: &[(i64, &str, &str, &str)]) -> String {
    let t0 = 1_730_000_000_000_i64;
    events
        .iter()
        .map(|(t, method, path, outcome)| {
            let e = json!({
                "outcome": outcome, "scriptName": "control-plane", "diagnosticsChannelEvents": [],
                "exceptions": [], "logs": [], "eventTimestamp": t0 + t,
                "event": {"request": {"url": format!("https://cp.example.com{path}"), "method": method,
                    "headers": {"authorization": "REDACTED", "cookie": "REDACTED", "x-trace": "t-1",
                                "cf-connecting-ip": "203.0.113.9", "host": "cp.example.com"},
                    "cf": {"colo": "AMS", "country": "NL"}}}});
            serde_json::to_string_pretty(&e).expect("json") + "\n"
        })
        .collect()
}

fn run_scenario(dir: &Path, scenario: &str, envs: &[(&str, &str)]) -> serde_json::Value {
    let path = dir.join("replay.toml");
    std::fs::write(&path, scenario).expect("scenario");
    let out = dir.join("reports");
    let o = Command::new(BIN)
        .args(["run", path.to_str().expect("utf-8"), "--no-tui", "--out"])
        .arg(&out)
        .envs(envs.iter().copied())
        .output()
        .expect("run kvchaos");
    assert!(
        o.status.code() == Some(0) || o.status.code() == Some(1),
        "run failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let report = std::fs::read_dir(&out)
        .expect("reports")
        .filter_map(Result::ok)
        .find(|e| e.path().join("summary.json").exists())
        .expect("a report folder")
        .path();
    for f in std::fs::read_dir(&report)
        .expect("report")
        .filter_map(Result::ok)
    {
        let text = std::fs::read(f.path()).unwrap_or_default();
        for (_, secret) in envs {
            assert!(
                !String::from_utf8_lossy(&text).contains(secret),
                "{} holds the secret",
                f.path().display()
            );
        }
    }
    serde_json::from_slice(&std::fs::read(report.join("summary.json")).expect("summary"))
        .expect("summary json")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tail_capture_is_replayed_on_time_filtered_rewritten_and_without_credentials() {
    let (addr, seen) = recorder().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let events = [
        (0, "GET", "/items/17", "ok"),
        (200, "GET", "/items/18?full=1", "ok"),
        (300, "POST", "/items", "exception"),
        (600, "PUT", "/items/19", "ok"),
        (1000, "GET", "/health", "ok"),
        (1400, "GET", "/fail/20", "ok"),
        // An idle hour: max_gap shortens it to 200 ms (after speed).
        (3_601_400, "GET", "/items/21", "ok"),
    ];
    std::fs::write(dir.path().join("tail.json"), tail_capture(&events)).expect("capture");
    let scenario = format!(
        r#"name = "replay-tail"
[target]
url = "http://{addr}"
[[phases]]
replay = "tail.json"
speed = 2.0
max_gap = "200ms"
skip = {{ outcome = "exception" }}
only = {{ path = "^/(items|fail)/" }}
drop_headers = ["x-trace"]
set_headers = {{ authorization = "Bearer {{{{env.KVCHAOS_TEST_REPLAY_TOKEN}}}}" }}
"#
    );
    let summary = run_scenario(
        dir.path(),
        &scenario,
        &[("KVCHAOS_TEST_REPLAY_TOKEN", "s3cr3t-tok")],
    );
    let seen = seen.lock().expect("seen").clone();
    let paths: Vec<&str> = seen.iter().map(|s| s.path.as_str()).collect();
    assert_eq!(
        paths,
        vec![
            "/items/17",
            "/items/18?full=1",
            "/items/19",
            "/fail/20",
            "/items/21"
        ]
    );
    // Intended offsets: t_ms ÷ 2, the hour-long gap capped at 200 ms.
    let want_ms = [0.0, 100.0, 300.0, 700.0, 900.0];
    for (s, want) in seen.iter().zip(want_ms) {
        let got = s.at.duration_since(seen[0].at).as_secs_f64() * 1000.0;
        assert!(
            (got - want).abs() < 30.0,
            "{} at {got:.1} ms, intended {want} ms",
            s.path
        );
    }
    for s in &seen {
        let h = |n: &str| {
            s.headers
                .iter()
                .find(|(k, _)| k == n)
                .map(|(_, v)| v.as_str())
        };
        assert_eq!(
            h("host"),
            Some(addr.to_string().as_str()),
            "scheme and host go to the target"
        );
        assert_eq!(
            h("authorization"),
            Some("Bearer s3cr3t-tok"),
            "filled from the environment"
        );
        assert_eq!(h("cookie"), None, "cookies are never sent unless kept");
        assert_eq!(h("x-trace"), None, "dropped");
        assert_eq!(h("cf-connecting-ip"), None, "edge headers are not replayed");
    }
    let rows: Vec<(String, u64)> = summary["requests"]
        .as_array()
        .expect("rows")
        .iter()
        .map(|r| {
            (
                r["name"].as_str().unwrap_or("").to_owned(),
                r["completed"].as_u64().unwrap_or(0),
            )
        })
        .collect();
    assert_eq!(
        rows,
        vec![
            ("GET /items/:id".to_owned(), 3),
            ("PUT /items/:id".to_owned(), 1),
            ("GET /fail/:id".to_owned(), 1),
        ]
    );
    let fail = &summary["requests"][2]["by_class"];
    assert_eq!(fail["5xx"].as_u64(), Some(1), "{fail}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_har_capture_replays_bodies_and_keeps_named_credentials() {
    let (addr, seen) = recorder().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let entry = |t: &str, method: &str, path: &str, body: Option<&str>| {
        let mut req = json!({"method": method, "url": format!("https://app.example.com{path}"),
            "httpVersion": "HTTP/1.1", "cookies": [], "queryString": [], "headersSize": -1, "bodySize": -1,
            "headers": [{"name": "Cookie", "value": "session=abc"}, {"name": "Content-Type", "value": "application/json"}]});
        if let Some(b) = body {
            req["postData"] = json!({"mimeType": "application/json", "text": b});
        }
        json!({"startedDateTime": t, "time": 3, "request": req, "cache": {}, "timings": {"send": 0, "wait": 3, "receive": 0},
               "response": {"status": 200, "statusText": "OK", "httpVersion": "HTTP/1.1", "headers": [], "cookies": [],
                            "content": {"size": 0, "mimeType": "text/plain"}, "redirectURL": "", "headersSize": -1, "bodySize": 0}})
    };
    let har = json!({"log": {"version": "1.2", "creator": {"name": "kvchaos-test", "version": "1"}, "entries": [
        entry("2024-06-01T12:00:00.000Z", "POST", "/jobs", Some("{\"job\": 1}")),
        entry("2024-06-01T12:00:00.100Z", "GET", "/jobs/1", None),
        entry("2024-06-01T12:00:00.200Z", "POST", "/jobs", Some("{\"job\": 2}")),
    ]}});
    std::fs::write(
        dir.path().join("session.har"),
        serde_json::to_string_pretty(&har).expect("har"),
    )
    .expect("har");
    let scenario = format!(
        "name = \"replay-har\"\n[target]\nurl = \"http://{addr}\"\n[[phases]]\nreplay = \"session.har\"\nonly = {{ method = \"POST\" }}\nkeep_headers = [\"cookie\"]\n"
    );
    run_scenario(dir.path(), &scenario, &[]);
    let seen = seen.lock().expect("seen").clone();
    let bodies: Vec<&str> = seen.iter().map(|s| s.body.as_str()).collect();
    assert_eq!(bodies, vec!["{\"job\": 1}", "{\"job\": 2}"]);
    for s in &seen {
        assert_eq!(s.method, "POST");
        let cookie = s
            .headers
            .iter()
            .find(|(k, _)| k == "cookie")
            .map(|(_, v)| v.as_str());
        assert_eq!(cookie, Some("session=abc"), "keep_headers sends it");
    }
}

/// Peak resident memory of a child, read from /proc while it runs (Linux).
fn peak_rss_kib(child: &mut std::process::Child) -> (u64, std::process::ExitStatus) {
    let status_path = format!("/proc/{}/status", child.id());
    let mut peak = 0u64;
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        if let Ok(s) = std::fs::read_to_string(&status_path) {
            if let Some(kb) = s
                .lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            {
                peak = peak.max(kb);
            }
        }
        if let Some(st) = child.try_wait().expect("wait") {
            return (peak, st);
        }
        assert!(
            Instant::now() < deadline,
            "import did not finish in 5 minutes"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn import_streams_a_large_capture_in_bounded_memory() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cap = dir.path().join("big.json");
    {
        use std::io::Write;
        let mut w = std::io::BufWriter::new(std::fs::File::create(&cap).expect("create"));
        let filler = "x".repeat(300);
        let mut i = 0u64;
        let mut written = 0u64;
        while written < 80 << 20 {
            let e = json!({"outcome": "ok", "scriptName": "cp", "exceptions": [], "logs": [{"message": [filler], "level": "log", "timestamp": 1}],
                "eventTimestamp": 1_700_000_000_000_u64 + i,
                "event": {"request": {"url": format!("https://cp.example.com/items/{i}"), "method": "GET", "headers": {"accept": "*/*"}}}});
            let text = serde_json::to_string_pretty(&e).expect("json");
            w.write_all(text.as_bytes()).expect("write");
            w.write_all(b"\n").expect("write");
            written += text.len() as u64 + 1;
            i += 1;
        }
    }
    let size = std::fs::metadata(&cap).expect("size").len();
    let out = dir.path().join("corpus.ndjson");
    let mut child = Command::new(BIN)
        .args(["replay", "import"])
        .arg(&cap)
        .arg("-o")
        .arg(&out)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn");
    let (peak_kib, status) = peak_rss_kib(&mut child);
    assert!(status.success(), "import failed");
    assert!(size > 80 << 20);
    assert!(
        peak_kib > 0 && peak_kib < 40 * 1024,
        "peak RSS {peak_kib} KiB importing {size} bytes"
    );
    let lines = std::io::BufRead::lines(std::io::BufReader::new(
        std::fs::File::open(&out).expect("corpus"),
    ))
    .count();
    assert!(lines > 100_000, "{lines} records");
}

#[test]
fn import_reports_malformed_input_with_line_and_byte() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cap = dir.path().join("cut.json");
    let mut text = tail_capture(&[(0, "GET", "/a", "ok"), (5, "GET", "/b", "ok")]);
    text.push_str("{\n  \"outcome\": \"ok\",\n  \"eventTimestamp\": 12,\n  \"event\": {\n");
    std::fs::write(&cap, &text).expect("write");
    let first_len = tail_capture(&[(0, "GET", "/a", "ok")]).len();
    let line = text[..first_len * 2].lines().count() + 1;
    let out = dir.path().join("c.ndjson");
    let o = Command::new(BIN)
        .args(["replay", "import"])
        .arg(&cap)
        .arg("-o")
        .arg(&out)
        .output()
        .expect("run");
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains(&format!(
            "line {line}, byte {}: the event starting here never ends",
            first_len * 2
        )),
        "{err}"
    );
    assert!(!out.exists(), "no half-written corpus is left behind");
}

/// A tail capture of `/health` requests and scheduled events `(t, cron, scheduledTime)`.
fn tail_with_crons(crons: &[(i64, &str, i64)]) -> String {
    let t0 = 1_730_000_000_000_i64;
    let mut out = tail_capture(&[(0, "GET", "/health", "ok")]);
    for (t, cron, at) in crons {
        let e = json!({
            "outcome": "ok", "scriptName": "control-plane", "diagnosticsChannelEvents": [],
            "exceptions": [], "logs": [], "eventTimestamp": t0 + t,
            "event": {"cron": cron, "scheduledTime": at}});
        out += &(serde_json::to_string_pretty(&e).expect("json") + "\n");
    }
    // A last request keeps the phase going while the last tick's handler runs.
    let last = crons.last().map_or(0, |c| c.0) + 1000;
    out + &tail_capture(&[(last, "GET", "/health", "ok")])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recorded_crons_fire_at_their_scaled_times_with_their_scheduled_time_and_are_judged() {
    if !crate::support::node_available() {
        return;
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let s0 = 1_729_999_980_000_i64;
    let recorded = [
        (1000, "*/1 * * * *", s0),
        (2000, "*/1 * * * *", s0 + 60_000),
        (3000, "*/1 * * * *", s0 + 120_000),
    ];
    std::fs::write(tmp.path().join("tail.json"), tail_with_crons(&recorded)).expect("capture");
    let worker = Path::new(env!("CARGO_MANIFEST_DIR")).join("mock/workers/kv-control-plane");
    // At 60x the Worker's own every-minute trigger would tick about once a second: none of
    // those may fire, only the three recorded events, at 0.5 s, 1 s and 1.5 s (speed 2).
    let text = format!(
        "name = \"recorded-crons\"\n[target]\nworker = \"{}\"\n[clock]\nspeedup = 60\n[[phases]]\nreplay = \"tail.json\"\nspeed = 2\ncrons = \"recorded\"\n",
        worker.display()
    );
    let scenario = crate::support::write_scenario(tmp.path(), "r.toml", &text);
    let outcome = crate::support::run_file(scenario, tmp.path()).await;
    let events = kvchaos::history::read(&outcome.report_dir.join("history.jsonl"))
        .expect("history reads back");
    let ticks: Vec<(Duration, serde_json::Value)> = events
        .iter()
        .filter_map(|(t, e)| match e {
            kvchaos::history::Event::Op {
                process, op, value, ..
            } if process == "cron" && *op == kvchaos::history::OpKind::Invoke => {
                Some((*t, value.clone()))
            }
            _ => None,
        })
        .collect();
    let fired: Vec<(&str, u64)> = ticks
        .iter()
        .map(|(_, v)| {
            (
                v["cron"].as_str().unwrap_or(""),
                v["scheduled_ms"].as_u64().unwrap_or(0),
            )
        })
        .collect();
    let want: Vec<(&str, u64)> = recorded.iter().map(|(_, c, s)| (*c, *s as u64)).collect();
    assert_eq!(fired, want, "the recorded events, and nothing else");
    // Completions of the ticks, in order: a tick is fired once the one before has returned.
    let done: Vec<Duration> = events
        .iter()
        .filter_map(|(t, e)| match e {
            kvchaos::history::Event::Op { process, op, .. }
                if process == "cron" && *op != kvchaos::history::OpKind::Invoke =>
            {
                Some(*t)
            }
            _ => None,
        })
        .collect();
    for (i, ((t, _), (rec, _, _))) in ticks.iter().zip(recorded).enumerate() {
        let due = Duration::from_millis(rec as u64 / 2);
        let free = if i == 0 { due } else { due.max(done[i - 1]) };
        assert!(
            *t + Duration::from_millis(5) >= due && *t < free + Duration::from_millis(400),
            "a tick recorded at {rec} ms fired at {t:?}, due at {due:?}, the previous done at {free:?}"
        );
    }
    let cron = crate::support::check(&outcome, "cron");
    assert_eq!(cron.verdict, kvchaos::check::Verdict::Pass, "{cron:?}");
    assert_eq!(crate::support::count(cron, "ticks_ok"), 3, "{cron:?}");
    let note = outcome
        .summary
        .warnings
        .iter()
        .find(|w| w.contains("3 cron"));
    assert!(
        note.is_some_and(|n| n.contains("fired at the Worker")),
        "{:?}",
        outcome.summary.warnings
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rewritten_path_prefixes_reach_the_target_and_name_the_routes() {
    let (addr, seen) = recorder().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let events = [
        (0, "GET", "/api/v1/items/17?x=1", "ok"),
        (10, "GET", "/api/v2/items/18", "ok"),
        (20, "GET", "/health", "ok"),
    ];
    std::fs::write(dir.path().join("tail.json"), tail_capture(&events)).expect("capture");
    let scenario = format!(
        "name = \"replay-rewrite\"\n[target]\nurl = \"http://{addr}/base\"\n[[phases]]\nreplay = \"tail.json\"\nrewrite = {{ \"/api/\" = \"/\", \"/api/v1/\" = \"/one/\" }}\n"
    );
    let summary = run_scenario(dir.path(), &scenario, &[]);
    let seen = seen.lock().expect("seen").clone();
    let paths: Vec<&str> = seen.iter().map(|s| s.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "/base/one/items/17?x=1",
            "/base/v2/items/18",
            "/base/health"
        ]
    );
    let rows: Vec<&str> = summary["requests"]
        .as_array()
        .expect("requests")
        .iter()
        .filter_map(|r| r["name"].as_str())
        .collect();
    assert_eq!(
        rows,
        ["GET /one/items/:id", "GET /v2/items/:id", "GET /health"]
    );
}
