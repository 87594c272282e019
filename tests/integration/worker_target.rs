//! `kvchaos run` against a Worker directory: miniflare with its KV routed to the in-process
//! mock, crons on the run clock, and faults on the timeline.

use kvchaos::exit::Exit;

use crate::support::{
    kv_count, node_available, prepare_error, probe_worker, run_file, write_scenario,
};

/// A scenario against the probe Worker that puts `seq:<n>` keys at `rate` for `secs`, plus `extra`.
fn put_scenario(rate: u32, secs: u32, extra: &str) -> String {
    put_scenario_with(rate, secs, "", extra)
}

/// As [`put_scenario`], with `target_extra` lines in `[target]`.
fn put_scenario_with(rate: u32, secs: u32, target_extra: &str, extra: &str) -> String {
    format!(
        r#"name = "worker-target"
[target]
worker = "{}"
{target_extra}
[[phases]]
duration = "{secs}s"
rate = {rate}
[[requests]]
name = "put"
method = "POST"
path = "/run"
json = {{ binding = "KV", ops = [ {{ op = "put", key = "seq:{{{{seq}}}}", value = "v" }} ] }}
{extra}
"#,
        probe_worker().display()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_target_runs_under_miniflare_with_kv_on_the_mock() {
    if !node_available() {
        return;
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let text = put_scenario(20, 1, "[thresholds]\nall = [\"error_rate < 1%\"]");
    let outcome = run_file(write_scenario(tmp.path(), "w.toml", &text), tmp.path()).await;
    let s = &outcome.summary;
    assert_eq!(outcome.exit, Exit::Pass, "{:?}", s.errors);
    assert_eq!(s.target.kind, "worker");
    assert_eq!(s.overall.by_class.get("2xx").copied(), Some(20));
    assert_eq!(kv_count(&outcome.report_dir, "put", "seq:", "ok"), 20);
    assert!(outcome.report_dir.join("worker.log").is_file());
}

#[test]
fn a_worker_directory_without_a_wrangler_config_is_a_located_error() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let text = "name = \"w\"\n[target]\nworker = \"nowhere\"\n[[phases]]\nduration = \"1s\"\nrate = 1\n[[requests]]\nname = \"r\"\npath = \"/\"\n";
    let err = prepare_error(write_scenario(tmp.path(), "w.toml", text));
    assert!(
        err.contains("w.toml:3:10: target.worker: worker") && err.contains("is not a directory"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crons_fire_on_the_accelerated_run_clock_and_land_in_the_history() {
    if !node_available() {
        return;
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    // Every minute at 60x: about one tick a second of the 3 s run.
    let text = put_scenario(2, 3, "[clock]\nspeedup = 60");
    let outcome = run_file(write_scenario(tmp.path(), "cron.toml", &text), tmp.path()).await;
    let history =
        std::fs::read_to_string(outcome.report_dir.join("history.jsonl")).expect("history");
    let ops: Vec<serde_json::Value> = history
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|e| e["type"] == "op" && e["process"] == "cron")
        .collect();
    let invokes: Vec<u64> = ops
        .iter()
        .filter(|e| e["op"] == "invoke")
        .filter_map(|e| e["value"]["scheduled_ms"].as_u64())
        .collect();
    let oks = ops.iter().filter(|e| e["op"] == "ok").count();
    assert!((2..=4).contains(&invokes.len()), "{history}");
    assert_eq!(oks, invokes.len(), "every tick answered ok: {history}");
    // Scheduled times are whole minutes of the run clock, one minute apart.
    assert!(invokes.iter().all(|ms| ms % 60_000 == 0), "{invokes:?}");
    assert!(
        invokes.windows(2).all(|w| w[1] - w[0] == 60_000),
        "{invokes:?}"
    );
    // The handler wrote its tick to KV through the mock.
    assert!(kv_count(&outcome.report_dir, "put", "cron:", "ok") >= 2);
    // The cron checker reads the history the run wrote and finds nothing wrong.
    let events = kvchaos::history::read(&outcome.report_dir.join("history.jsonl"))
        .expect("history reads back");
    let view = kvchaos::check::HistoryView::new(&events);
    let cfg = kvchaos::check::cron::CronConfig {
        max_gap_ms: Some(120_000),
    };
    let result = kvchaos::check::cron::check(&view, &cfg);
    assert_eq!(result.verdict, kvchaos::check::Verdict::Pass, "{result:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fault_window_makes_the_workers_kv_puts_fail_only_inside_it() {
    if !node_available() {
        return;
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let text = put_scenario(
        20,
        3,
        "[cron]\nfire = false\n[[faults]]\nat = \"1s\"\nuntil = \"2s\"\nkind = \"daily-limit\"\nops = [\"put\"]\nprefix = \"seq:\"",
    );
    let outcome = run_file(write_scenario(tmp.path(), "faults.toml", &text), tmp.path()).await;
    let s = &outcome.summary;
    assert_eq!(s.faults.len(), 1, "{:?}", s.faults);
    let w = &s.faults[0];
    assert_eq!(w.label, "daily-limit put seq:*");
    assert!((0.95..1.5).contains(&w.set_at_s), "{w:?}");
    assert!(
        w.cleared_at_s.is_some_and(|c| (1.95..2.5).contains(&c)),
        "{w:?}"
    );
    // 60 puts at 20/s; about a third of them fall inside the 1 s window.
    let ok = kv_count(&outcome.report_dir, "put", "seq:", "ok");
    let refused = kv_count(&outcome.report_dir, "put", "seq:", "daily-limit");
    assert_eq!(ok + refused, 60);
    assert!((12..=28).contains(&refused), "refused {refused} of 60");
    // The window records what it hit: exactly the puts the mock refused.
    assert_eq!(w.kv_ops, Some(refused), "{w:?}");
    assert!(s.warnings.is_empty(), "{:?}", s.warnings);
    let history =
        std::fs::read_to_string(outcome.report_dir.join("history.jsonl")).expect("history");
    assert!(
        history.contains("\"type\":\"fault-set\"")
            && history.contains("\"type\":\"fault-cleared\""),
        "{history}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fault_that_reaches_no_kv_operation_is_a_warning_and_fails_with_strict() {
    if !node_available() {
        return;
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    // The Worker only puts `seq:` keys: a fault on `other:` never meets an operation.
    let text = put_scenario(
        10,
        2,
        "[cron]\nfire = false\n[[faults]]\nat = \"500ms\"\nuntil = \"1500ms\"\nkind = \"daily-limit\"\nprefix = \"other:\"",
    );
    let path = write_scenario(tmp.path(), "idle.toml", &text);
    let outcome = run_file(path.clone(), tmp.path()).await;
    let s = &outcome.summary;
    assert_eq!(s.faults[0].kv_ops, Some(0), "{:?}", s.faults);
    assert_eq!(s.warnings.len(), 1, "{:?}", s.warnings);
    assert!(
        s.warnings[0].contains("reached no KV operation"),
        "{:?}",
        s.warnings
    );
    let md = std::fs::read_to_string(outcome.report_dir.join("report.md")).expect("report.md");
    assert!(
        md.contains("## Warnings") && md.contains("reached no KV operation"),
        "{md}"
    );
    let html = std::fs::read_to_string(outcome.report_dir.join("report.html")).expect("html");
    assert!(html.contains("reached no KV operation"));
    assert_eq!(
        outcome.exit,
        Exit::Pass,
        "a warning alone does not fail the run"
    );
    let opts = kvchaos::run::RunOptions {
        scenario: path,
        out: tmp.path().join("strict"),
        threads: Some(1),
        strict: true,
        ..Default::default()
    };
    let plan = kvchaos::run::prepare(&opts).expect("valid");
    let strict = kvchaos::run::run(plan, &opts, Default::default(), &mut kvchaos::live::Silent)
        .await
        .expect("report");
    assert_eq!(strict.exit, Exit::Fail, "--strict fails on the warning");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fault_on_a_namespace_the_worker_does_not_bind_is_a_scenario_error_naming_its_bindings() {
    if !node_available() {
        return;
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let text = put_scenario(
        10,
        1,
        "[[faults]]\nat = \"200ms\"\nkind = \"daily-limit\"\nnamespace = \"KVV\"",
    );
    let opts = kvchaos::run::RunOptions {
        scenario: write_scenario(tmp.path(), "ns.toml", &text),
        out: tmp.path().join("reports"),
        threads: Some(1),
        ..Default::default()
    };
    let plan = kvchaos::run::prepare(&opts).expect("valid on its own");
    let err = kvchaos::run::run(plan, &opts, Default::default(), &mut kvchaos::live::Silent)
        .await
        .expect_err("refused at start");
    assert_eq!(err.exit(), Exit::Usage);
    let msg = err.to_string();
    assert!(
        msg.contains("\"KVV\"") && msg.contains("its KV bindings: KV"),
        "{msg}"
    );
}

#[test]
fn faults_need_a_worker_target() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let text = "name = \"f\"\n[target]\nbuiltin = true\n[[phases]]\nduration = \"2s\"\nrate = 1\n[[requests]]\nname = \"r\"\npath = \"/\"\n[[faults]]\nkind = \"hang\"\n";
    let err = prepare_error(write_scenario(tmp.path(), "f.toml", text));
    assert!(
        err.contains("[[faults]] act on kvchaos's mock KV, which only a local Worker target has"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_wrapped_kv_binding_serves_the_worker_and_counts_its_refusals() {
    if !node_available() {
        return;
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let text = put_scenario_with(
        20,
        3,
        "kv_binding = \"wrapped\"",
        "[cron]\nfire = false\n[[faults]]\nat = \"1s\"\nkind = \"daily-limit\"\nops = [\"put\"]",
    );
    let outcome = run_file(
        write_scenario(tmp.path(), "wrapped.toml", &text),
        tmp.path(),
    )
    .await;
    let ok = kv_count(&outcome.report_dir, "put", "seq:", "ok");
    let refused = kv_count(&outcome.report_dir, "put", "seq:", "daily-limit");
    // 60 puts through the wrapper: the first second's succeed, those until the heal phase
    // (the last fifth of the run) meet the daily limit, the rest succeed again.
    assert_eq!(ok + refused, 60, "{:?}", outcome.summary.errors);
    assert!(ok >= 15 && refused >= 15, "ok {ok}, refused {refused}");
}

/// The same run against each reference Worker: cron at 60x, the KV put daily limit from 1 s
/// to 3 s of a 5 s run. The exit code, and the cron checker's verdict both as the run put it in
/// the summary and as the checker gives it on the history the run wrote.
async fn cron_verdict_under_a_kv_put_limit(worker: &str) -> (Exit, kvchaos::check::CheckResult) {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("mock/workers")
        .join(worker);
    let tmp = tempfile::tempdir().expect("tempdir");
    let text = format!(
        r#"name = "proof-{worker}"
[target]
worker = "{}"
[clock]
speedup = 60
[[phases]]
duration = "5s"
rate = 2
[[requests]]
name = "health"
path = "/health"
[[faults]]
at = "1s"
until = "3s"
kind = "daily-limit"
ops = ["put"]
"#,
        dir.display()
    );
    let outcome = run_file(write_scenario(tmp.path(), "proof.toml", &text), tmp.path()).await;
    let events =
        kvchaos::history::read(&outcome.report_dir.join("history.jsonl")).expect("history");
    let view = kvchaos::check::HistoryView::new(&events);
    let offline = kvchaos::check::cron::check(
        &view,
        &kvchaos::check::cron::CronConfig { max_gap_ms: None },
    );
    // The run judged what it wrote; its reason may add that a fault reached no KV operation.
    assert_eq!(
        outcome.summary.checks.len(),
        1,
        "{:?}",
        outcome.summary.checks
    );
    let judged = &outcome.summary.checks[0];
    assert_eq!(
        (judged.verdict, &judged.evidence, &judged.counts),
        (offline.verdict, &offline.evidence, &offline.counts),
        "the run judged what it wrote"
    );
    assert!(judged.reason.starts_with(&offline.reason), "{judged:?}");
    (outcome.exit, judged.clone())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cron_check_fails_the_kv_worker_and_passes_the_migrated_one_under_the_same_fault() {
    if !node_available() {
        return;
    }
    let (exit, kv) = cron_verdict_under_a_kv_put_limit("kv-control-plane").await;
    assert_eq!(kv.verdict, kvchaos::check::Verdict::Fail, "{kv:?}");
    assert!(
        kv.evidence.iter().any(|e| e.contains("missed-tick")),
        "{kv:?}"
    );
    assert_eq!(exit, Exit::Fail, "a failed check fails the run");
    let (exit, migrated) = cron_verdict_under_a_kv_put_limit("d1-do-control-plane").await;
    assert_eq!(
        migrated.verdict,
        kvchaos::check::Verdict::Pass,
        "{migrated:?}"
    );
    assert_eq!(exit, Exit::Pass);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_that_never_heals_is_unknown_and_fails_only_with_strict() {
    if !node_available() {
        return;
    }
    for strict in [false, true] {
        let tmp = tempfile::tempdir().expect("tempdir");
        // The run clock starts 30 s into a minute at 60x, so the every-minute cron ticks at
        // 0.5 s, 1.5 s and 2.5 s; the fault lasts until the heal phase, which starts at 2.7 s:
        // no tick ever runs on a healed KV.
        let text = put_scenario(
            2,
            3,
            "[clock]\nspeedup = 60\n[kv]\nstart = \"00:00:30\"\n[heal]\nduration = \"300ms\"\n[[faults]]\nat = \"0s\"\nkind = \"error\"\nstatus = 503\nops = [\"get\"]",
        );
        let opts = kvchaos::run::RunOptions {
            scenario: write_scenario(tmp.path(), "never-heals.toml", &text),
            out: tmp.path().join("reports"),
            threads: Some(1),
            strict,
            ..kvchaos::run::RunOptions::default()
        };
        let plan = kvchaos::run::prepare(&opts).expect("valid");
        let outcome = kvchaos::run::run(
            plan,
            &opts,
            kvchaos::live::Interrupts::default(),
            &mut kvchaos::live::Silent,
        )
        .await
        .expect("report");
        let cron = &outcome.summary.checks[0];
        assert_eq!(cron.verdict, kvchaos::check::Verdict::Unknown, "{cron:?}");
        let want = if strict { Exit::Fail } else { Exit::Pass };
        assert_eq!(outcome.exit, want, "strict = {strict}");
    }
}

/// Thresholds limited to a window judge only the requests intended inside it: the KV Worker
/// answers 503 while every KV operation fails, so its error rate fails `during = "faults"` and
/// passes before the fault (`steady`) and after it cleared (`heal`); the whole run fails too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn windowed_thresholds_judge_the_kv_worker_only_on_their_window() {
    if !node_available() {
        return;
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let worker =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("mock/workers/kv-control-plane");
    let text = format!(
        r#"name = "windows"
[target]
worker = "{}"
[[phases]]
duration = "6s"
rate = 20
[[requests]]
name = "webhook"
method = "POST"
path = "/webhook"
headers = {{ "idempotency-key" = "delivery-{{{{uuid}}}}" }}
body = "{{}}"
[cron]
fire = false
[heal]
duration = "2s"
[[faults]]
at = "2s"
until = "3500ms"
kind = "error"
status = 503
[thresholds]
webhook = [
  "error_rate < 10%",
  {{ expr = "error_rate < 10%", during = "steady" }},
  {{ expr = "error_rate < 10%", during = "faults" }},
  {{ expr = "error_rate < 10%", during = "heal" }},
]
"#,
        worker.display()
    );
    let outcome = run_file(
        write_scenario(tmp.path(), "windows.toml", &text),
        tmp.path(),
    )
    .await;
    let t = &outcome.summary.thresholds;
    let judged: Vec<(Option<&str>, bool)> =
        t.iter().map(|r| (r.during.as_deref(), r.passed)).collect();
    assert_eq!(
        judged,
        [
            (None, false),
            (Some("steady"), true),
            (Some("faults"), false),
            (Some("heal"), true)
        ],
        "{t:?}"
    );
    // Every request inside the fault's 1.5 s failed; the windows saw data of their own.
    assert!(t[2].observed.is_some_and(|o| o > 0.9), "{:?}", t[2]);
    assert!(t[1].observed.is_some() && t[3].observed.is_some(), "{t:?}");
    assert_eq!(outcome.exit, Exit::Fail);
    let md = std::fs::read_to_string(outcome.report_dir.join("report.md")).expect("report.md");
    assert!(md.contains("error_rate < 10% during faults"), "{md}");
}
