//! The built binary: exit codes, messages, secrets, signals, report files.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_kvchaos");

fn kvchaos(args: &[&str], envs: &[(&str, &str)]) -> Output {
    Command::new(BIN)
        .args(args)
        .envs(envs.iter().copied())
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("run kvchaos")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn write_scenario(dir: &Path, body: &str) -> PathBuf {
    let p = dir.join("scenario.toml");
    std::fs::write(&p, body).expect("write scenario");
    p
}

fn only_report_dir(out: &Path) -> PathBuf {
    let dirs: Vec<PathBuf> = std::fs::read_dir(out)
        .expect("report root")
        .map(|e| e.expect("entry").path())
        .collect();
    assert_eq!(dirs.len(), 1, "{dirs:?}");
    dirs[0].clone()
}

#[test]
fn help_lists_exit_codes() {
    let o = kvchaos(&["--help"], &[]);
    assert!(o.status.success());
    let s = text(&o.stdout);
    for code in ["0 ", "1 ", "2 ", "3 ", "130"] {
        assert!(s.contains(&format!("  {code}")), "{code} missing in\n{s}");
    }
    let run_help = text(&kvchaos(&["run", "--help"], &[]).stdout);
    for flag in [
        "--target-url",
        "--out",
        "--seed",
        "--duration",
        "--no-tui",
        "130",
    ] {
        assert!(run_help.contains(flag), "{flag} missing in run --help");
    }
}

#[test]
fn validate_reports_the_location_and_exits_2() {
    let o = kvchaos(
        &[
            "validate",
            "scenarios/quickstart.toml",
            "tests/fixtures/invalid/bad-rate.toml",
        ],
        &[],
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o.stdout).contains("ok: scenarios/quickstart.toml"));
    let err = text(&o.stderr);
    assert!(
        err.starts_with(
            "tests/fixtures/invalid/bad-rate.toml:12:8: phases[2].rate: invalid rate \"fast\""
        ),
        "{err}"
    );
    assert_eq!(
        kvchaos(&["validate", "scenarios/quickstart.toml"], &[])
            .status
            .code(),
        Some(0)
    );
}

#[test]
fn a_non_loopback_target_is_refused_before_anything_happens() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let out = tmp.path().join("reports");
    // The name does not resolve: the refusal must come before any lookup or connection.
    let o = kvchaos(
        &[
            "run",
            "scenarios/quickstart.toml",
            "--target-url",
            "http://canary.kvchaos-test.invalid:8080/",
            "--out",
            out.to_str().expect("utf-8 path"),
        ],
        &[],
    );
    assert_eq!(o.status.code(), Some(2));
    let err = text(&o.stderr);
    assert!(
        err.contains("canary.kvchaos-test.invalid") && err.contains("allow_hosts"),
        "{err}"
    );
    assert!(!out.exists(), "no report folder for a refused run");
    // Allowing it moves the failure to resolution: exit 3, target unreachable.
    let o = kvchaos(
        &[
            "run",
            "scenarios/quickstart.toml",
            "--target-url",
            "http://canary.kvchaos-test.invalid:8080/",
            "--allow-host",
            "*.kvchaos-test.invalid",
            "--out",
            out.to_str().expect("utf-8 path"),
        ],
        &[],
    );
    assert_eq!(o.status.code(), Some(3), "{}", text(&o.stderr));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_reach_the_target_but_no_report_log_or_output() {
    use wiremock::matchers::any;
    use wiremock::{Mock, MockServer, ResponseTemplate};
    let server = MockServer::start().await;
    Mock::given(any())
        .respond_with(ResponseTemplate::new(401).set_body_string("bad token"))
        .mount(&server)
        .await;
    let secret = "s3cr3t-Tok3n-9f8e7d";
    let tmp = tempfile::tempdir().expect("tempdir");
    let scenario = write_scenario(
        tmp.path(),
        &format!(
            r#"name = "secrets"
[target]
url = "{}"
[[phases]]
duration = "1s"
rate = 20
[[requests]]
name = "auth"
path = "/v1/items?token={{{{env.KVCHAOS_TEST_SECRET}}}}"
headers = {{ authorization = "Bearer {{{{env.KVCHAOS_TEST_SECRET}}}}" }}
json = {{ key = "{{{{env.KVCHAOS_TEST_SECRET}}}}" }}
[thresholds]
all = ["error_rate < 1%"]
"#,
            server.uri()
        ),
    );
    let out = tmp.path().join("reports");
    let o = tokio::task::spawn_blocking({
        let scenario = scenario.clone();
        let out = out.clone();
        move || {
            kvchaos(
                &[
                    "run",
                    scenario.to_str().expect("utf-8"),
                    "--no-tui",
                    "--out",
                    out.to_str().expect("utf-8"),
                ],
                &[("KVCHAOS_TEST_SECRET", secret)],
            )
        }
    })
    .await
    .expect("join");
    assert_eq!(
        o.status.code(),
        Some(1),
        "401s fail the threshold: {}",
        text(&o.stderr)
    );
    // On a loaded machine an arrival that is already overdue is dropped, never sent late, so
    // the server sees what the run says it sent, and together with the dropped ones the 20.
    let received = server.received_requests().await.unwrap_or_default();
    let dir = only_report_dir(&out);
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("summary.json")).expect("summary"))
            .expect("json");
    let completed = summary["overall"]["completed"].as_u64().expect("completed");
    let dropped = summary["overall"]["dropped"].as_u64().expect("dropped");
    assert!(!received.is_empty(), "no request reached the target");
    assert_eq!(received.len() as u64, completed);
    assert_eq!(completed + dropped, 20);
    assert!(received.iter().all(|r| {
        r.url.query() == Some(&format!("token={secret}")[..])
            && r.headers.get("authorization").and_then(|v| v.to_str().ok())
                == Some(&format!("Bearer {secret}")[..])
            && String::from_utf8_lossy(&r.body).contains(secret)
    }));
    let mut files = 0;
    for entry in std::fs::read_dir(&dir).expect("report dir") {
        let path = entry.expect("entry").path();
        let content = std::fs::read_to_string(&path).expect("report file is text");
        assert!(!content.contains(secret), "secret in {}", path.display());
        files += 1;
    }
    assert!(
        files >= 4,
        "summary.json, report.md, timeseries.csv, history.jsonl"
    );
    assert!(!text(&o.stdout).contains(secret) && !text(&o.stderr).contains(secret));
}

#[test]
fn summary_of_a_real_run_matches_the_schema_and_report_rerenders() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let out = tmp.path().join("reports");
    let o = kvchaos(
        &[
            "run",
            "scenarios/quickstart.toml",
            "--duration",
            "2s",
            "--no-tui",
            "--out",
            out.to_str().expect("utf-8"),
        ],
        &[],
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let dir = only_report_dir(&out);
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("summary.json")).expect("summary"))
            .expect("json");
    let schema = kvchaos::report::json::schema_json();
    let validator = jsonschema::validator_for(&schema).expect("schema compiles");
    let errors: Vec<String> = validator
        .iter_errors(&summary)
        .map(|e| e.to_string())
        .collect();
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(summary["scenario"]["name"], "quickstart");
    assert!(summary["overall"]["completed"].as_u64().unwrap_or(0) > 100);
    // latency.hlog decodes (with hdrhistogram's reader) to the summary's own percentiles.
    let intervals =
        kvchaos::report::hlog::read(&dir.join("latency.hlog")).expect("latency.hlog decodes");
    let mut all = kvchaos::metrics::new_histogram();
    for i in intervals.iter().filter(|i| i.tag.is_none()) {
        all.add(&i.hist).expect("same bounds");
    }
    let from_log = kvchaos::metrics::percentiles(&all);
    assert_eq!(summary["overall"]["corrected"]["count"], from_log.count);
    assert_eq!(summary["overall"]["corrected"]["p99_us"], from_log.p99_us);
    assert_eq!(summary["overall"]["corrected"]["max_us"], from_log.max_us);
    assert!(
        intervals
            .iter()
            .any(|i| i.tag.as_deref() == Some("get-item"))
    );
    // Every format is rendered by the run and again, the same, from the folder alone.
    let formats = ["report.md", "junit.xml", "report.html"];
    let first: Vec<String> = formats
        .iter()
        .map(|f| std::fs::read_to_string(dir.join(f)).expect("written by the run"))
        .collect();
    for f in formats {
        std::fs::remove_file(dir.join(f)).expect("removed");
    }
    let o = kvchaos(&["report", dir.to_str().expect("utf-8")], &[]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let md = std::fs::read_to_string(dir.join("report.md")).expect("re-rendered report.md");
    assert!(md.contains("quickstart") && md.contains("p99.9"), "{md}");
    for (f, before) in formats.iter().zip(&first) {
        let again = std::fs::read_to_string(dir.join(f)).expect("re-rendered");
        assert_eq!(&again, before, "{f} differs when re-rendered");
    }
    assert!(
        first[2].contains("id=\"latency-over-time-1\""),
        "no latency chart"
    );
    compare_two_runs(&dir, tmp.path());
    let bad = kvchaos(&["report", tmp.path().to_str().expect("utf-8")], &[]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(text(&bad.stderr).contains("summary.json"));
}

/// `kvchaos compare` on a real run and a copy whose p99 doubled and whose Worker writes KV
/// more: the deltas, the gates' exit codes, and bad input.
fn compare_two_runs(before: &Path, tmp: &Path) {
    let after = tmp.join("after");
    std::fs::create_dir_all(&after).expect("after dir");
    let mut summary: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(before.join("summary.json")).expect("summary"),
    )
    .expect("json");
    let p99 = summary["overall"]["corrected"]["p99_us"]
        .as_u64()
        .expect("p99");
    summary["overall"]["corrected"]["p99_us"] = (p99 * 2).into();
    std::fs::write(after.join("summary.json"), summary.to_string()).expect("after summary");
    let done = summary["overall"]["completed"].as_u64().expect("completed");
    let kv = |puts: u64| {
        serde_json::json!({
            "now_ms": 0, "writes": [], "quota": [], "faults": [], "journal": [],
            "counts": [{"namespace": "KV", "op": "put", "prefix": "queue:", "outcome": "ok", "count": puts}]
        })
        .to_string()
    };
    std::fs::write(before.join("mockkv.json"), kv(done)).expect("before kv");
    std::fs::write(after.join("mockkv.json"), kv(done * 2)).expect("after kv");
    let (b, a) = (
        before.to_str().expect("utf-8"),
        after.to_str().expect("utf-8"),
    );

    let same = kvchaos(
        &[
            "compare",
            b,
            b,
            "--fail-if",
            "p99 +0%",
            "--fail-if",
            "kv_puts +0",
        ],
        &[],
    );
    assert_eq!(same.status.code(), Some(0), "{}", text(&same.stderr));
    let md = text(&same.stdout);
    assert!(
        md.starts_with("# kvchaos compare: quickstart → quickstart"),
        "{md}"
    );
    assert!(
        md.contains("| put | `queue:` | 1000.0 | 1000.0 | ±0 |"),
        "{md}"
    );

    let html = tmp.join("compare.html");
    let worse = kvchaos(
        &[
            "compare",
            b,
            a,
            "--fail-if",
            "p99 +50%",
            "--html",
            html.to_str().expect("utf-8"),
        ],
        &[],
    );
    assert_eq!(worse.status.code(), Some(1), "{}", text(&worse.stderr));
    assert!(
        text(&worse.stdout).contains("(+100.0%)"),
        "{}",
        text(&worse.stdout)
    );
    assert!(
        text(&worse.stderr).contains("gate failed: p99 +50%"),
        "{}",
        text(&worse.stderr)
    );
    assert!(
        std::fs::read_to_string(&html)
            .expect("html")
            .contains("id=\"p99-chart\"")
    );
    let puts = kvchaos(&["compare", b, a, "--fail-if", "kv_puts[queue:] +10%"], &[]);
    assert_eq!(puts.status.code(), Some(1), "{}", text(&puts.stdout));

    let bad_gate = kvchaos(&["compare", b, a, "--fail-if", "p99 20%"], &[]);
    assert_eq!(bad_gate.status.code(), Some(2));
    assert!(
        text(&bad_gate.stderr).contains("--fail-if \"p99 20%\": the change \"20%\" needs a sign"),
        "{}",
        text(&bad_gate.stderr)
    );
    let missing = kvchaos(
        &["compare", b, tmp.join("nope").to_str().expect("utf-8")],
        &[],
    );
    assert_eq!(missing.status.code(), Some(2));
    assert!(text(&missing.stderr).contains("no such file or directory"));
}

#[test]
fn sigint_stops_the_run_writes_the_report_and_exits_130() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let out = tmp.path().join("reports");
    let mut child = Command::new(BIN)
        .args([
            "run",
            "scenarios/quickstart.toml",
            "--duration",
            "60s",
            "--no-tui",
            "--out",
            out.to_str().expect("utf-8"),
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    // Ready when the first live line appears (printed after one second of load).
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let first = loop {
        let line = lines.next().expect("a line").expect("utf-8");
        if line.starts_with('[') {
            break line;
        }
    };
    assert!(first.contains("phase 1/"), "{first}");
    let t0 = Instant::now();
    // SAFETY: kill has no memory preconditions; the pid is our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let status = child.wait().expect("wait");
    assert_eq!(status.code(), Some(130));
    assert!(
        t0.elapsed() < Duration::from_secs(10),
        "took {:?}",
        t0.elapsed()
    );
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    assert!(rest.iter().any(|l| l.starts_with("report: ")), "{rest:?}");
    let dir = only_report_dir(&out);
    let summary = std::fs::read_to_string(dir.join("summary.json")).expect("summary written");
    assert!(summary.contains("\"interrupted\""));
}

#[test]
fn the_default_run_is_the_reference_worker_under_a_kv_daily_limit() {
    if !crate::support::node_available() {
        return;
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let out = tmp.path().join("reports");
    // From another directory: the default scenario's Worker path must not depend on it.
    let o = Command::new(BIN)
        .args([
            "run",
            "--duration",
            "12s",
            "--no-tui",
            "--out",
            out.to_str().expect("utf-8"),
        ])
        .current_dir(tmp.path())
        .output()
        .expect("run kvchaos");
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}\n{}",
        text(&o.stdout),
        text(&o.stderr)
    );
    let dir = only_report_dir(&out);
    let s: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("summary.json")).expect("summary"))
            .expect("json");
    assert_eq!(s["scenario"]["name"], "smoke");
    assert_eq!(s["target"]["kind"], "worker");
    // The daily-limit window (6 s to 16 s) starts inside the 12 s run and is cleared when the
    // heal phase starts (6 s of 24 s, scaled to 3 s of 12 s).
    assert_eq!(s["faults"][0]["label"], "daily-limit put");
    assert!(
        s["faults"][0]["cleared_at_s"]
            .as_f64()
            .is_some_and(|c| (8.9..9.5).contains(&c)),
        "{}",
        s["faults"]
    );
    // Every check ran through the Worker's own API, and passed.
    let checks = s["checks"].as_array().expect("checks");
    let names: Vec<&str> = checks.iter().filter_map(|c| c["name"].as_str()).collect();
    assert_eq!(
        names,
        ["cron", "lock", "queue", "idempotency", "ratelimit"],
        "{checks:?}"
    );
    assert!(checks.iter().all(|c| c["verdict"] == "PASS"), "{checks:?}");
    assert_eq!(
        s["overall"]["errors"], 0,
        "the migrated Worker does not notice: {}",
        s["errors"]
    );
    for f in ["worker.log", "mockkv.json", "history.jsonl", "report.md"] {
        assert!(dir.join(f).is_file(), "{f} missing");
    }
}

#[test]
fn a_worker_target_without_node_on_path_exits_3_and_says_what_is_missing() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let out = tmp.path().join("reports");
    let empty = tmp.path().join("empty-bin");
    std::fs::create_dir(&empty).expect("mkdir");
    let probe =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/workers/kv-probe");
    let o = Command::new(BIN)
        .args([
            "run",
            "scenarios/quickstart.toml",
            "--worker",
            probe.to_str().expect("utf-8"),
            "--no-tui",
            "--out",
            out.to_str().expect("utf-8"),
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("PATH", &empty)
        .output()
        .expect("run kvchaos");
    assert_eq!(o.status.code(), Some(3), "{}", text(&o.stderr));
    let dir = only_report_dir(&out);
    let summary = std::fs::read_to_string(dir.join("summary.json")).expect("summary written");
    assert!(summary.contains("target-unreachable"), "{summary}");
    assert!(
        summary.contains("not found on PATH") && summary.contains("Node.js 20"),
        "{summary}"
    );
}
