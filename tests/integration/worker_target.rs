//! `kvchaos run` against a Worker directory: miniflare with its KV routed to the in-process mock.

use kvchaos::exit::Exit;
use kvchaos::run::{Interrupts, RunOptions, Silent, prepare, run};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_target_runs_under_miniflare_with_kv_on_the_mock() {
    if kvchaos::local::find_on_path("node").is_none() {
        eprintln!("skipped: node is not on PATH (the Worker target needs Node.js 20 and npm)");
        return;
    }
    let probe =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/workers/kv-probe");
    let tmp = tempfile::tempdir().expect("tempdir");
    let scenario = tmp.path().join("worker.toml");
    std::fs::write(
        &scenario,
        format!(
            r#"name = "worker-target"
[target]
worker = "{}"
[[phases]]
duration = "1s"
rate = 20
[[requests]]
name = "put"
method = "POST"
path = "/run"
json = {{ binding = "KV", ops = [ {{ op = "put", key = "seq:{{{{seq}}}}", value = "v" }} ] }}
[thresholds]
all = ["error_rate < 1%"]
"#,
            probe.display()
        ),
    )
    .expect("write scenario");
    let opts = RunOptions {
        scenario,
        out: tmp.path().join("reports"),
        threads: Some(1),
        ..RunOptions::default()
    };
    let plan = prepare(&opts).expect("valid scenario");
    let outcome = run(plan, &opts, Interrupts::default(), &mut Silent)
        .await
        .expect("report");
    let s = &outcome.summary;
    assert_eq!(outcome.exit, Exit::Pass, "{:?}", s.errors);
    assert_eq!(s.target.kind, "worker");
    assert_eq!(s.overall.by_class.get("2xx").copied(), Some(20));
    let stats: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(outcome.report_dir.join("mockkv.json")).expect("mockkv.json"),
    )
    .expect("json");
    let puts: u64 = stats["counts"]
        .as_array()
        .map(|rows| {
            rows.iter()
                .filter(|r| r["op"] == "put" && r["prefix"] == "seq:" && r["outcome"] == "ok")
                .filter_map(|r| r["count"].as_u64())
                .sum()
        })
        .unwrap_or(0);
    assert_eq!(puts, 20, "{stats}");
    assert!(outcome.report_dir.join("worker.log").is_file());
}

#[test]
fn a_worker_directory_without_a_wrangler_config_is_a_located_error() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let scenario = tmp.path().join("w.toml");
    std::fs::write(
        &scenario,
        "name = \"w\"\n[target]\nworker = \"nowhere\"\n[[phases]]\nduration = \"1s\"\nrate = 1\n[[requests]]\nname = \"r\"\npath = \"/\"\n",
    )
    .expect("write");
    let err = prepare(&RunOptions {
        scenario,
        ..RunOptions::default()
    })
    .err()
    .map(|e| e.to_string())
    .unwrap_or_default();
    assert!(
        err.contains("w.toml:3:10: target.worker: worker") && err.contains("is not a directory"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crons_fire_on_the_accelerated_run_clock_and_land_in_the_history() {
    if kvchaos::local::find_on_path("node").is_none() {
        eprintln!("skipped: node is not on PATH");
        return;
    }
    let probe =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/workers/kv-probe");
    let tmp = tempfile::tempdir().expect("tempdir");
    let scenario = tmp.path().join("cron.toml");
    // Every minute at 60x: about one tick a second of the 3 s run.
    std::fs::write(
        &scenario,
        format!(
            "name = \"cron\"\n[target]\nworker = \"{}\"\n[clock]\nspeedup = 60\n\
             [[phases]]\nduration = \"3s\"\nrate = 2\n[[requests]]\nname = \"get\"\npath = \"/\"\n",
            probe.display()
        ),
    )
    .expect("write scenario");
    let opts = RunOptions {
        scenario,
        out: tmp.path().join("reports"),
        threads: Some(1),
        ..RunOptions::default()
    };
    let plan = prepare(&opts).expect("valid scenario");
    let outcome = run(plan, &opts, Interrupts::default(), &mut Silent)
        .await
        .expect("report");
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
    let stats =
        std::fs::read_to_string(outcome.report_dir.join("mockkv.json")).expect("mockkv.json");
    assert!(stats.contains("\"prefix\": \"cron:\""), "{stats}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fault_window_makes_the_workers_kv_puts_fail_only_inside_it() {
    if kvchaos::local::find_on_path("node").is_none() {
        eprintln!("skipped: node is not on PATH");
        return;
    }
    let probe =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/workers/kv-probe");
    let tmp = tempfile::tempdir().expect("tempdir");
    let scenario = tmp.path().join("faults.toml");
    std::fs::write(
        &scenario,
        format!(
            r#"name = "faults"
[target]
worker = "{}"
[cron]
fire = false
[[phases]]
duration = "3s"
rate = 20
[[requests]]
name = "put"
method = "POST"
path = "/run"
json = {{ binding = "KV", ops = [ {{ op = "put", key = "seq:{{{{seq}}}}", value = "v" }} ] }}
[[faults]]
at = "1s"
until = "2s"
kind = "daily-limit"
ops = ["put"]
prefix = "seq:"
"#,
            probe.display()
        ),
    )
    .expect("write scenario");
    let opts = RunOptions {
        scenario,
        out: tmp.path().join("reports"),
        threads: Some(1),
        ..RunOptions::default()
    };
    let plan = prepare(&opts).expect("valid scenario");
    let outcome = run(plan, &opts, Interrupts::default(), &mut Silent)
        .await
        .expect("report");
    let s = &outcome.summary;
    assert_eq!(s.faults.len(), 1, "{:?}", s.faults);
    let w = &s.faults[0];
    assert_eq!(w.label, "daily-limit put seq:*");
    assert!((0.95..1.5).contains(&w.set_at_s), "{w:?}");
    assert!(
        w.cleared_at_s.is_some_and(|c| (1.95..2.5).contains(&c)),
        "{w:?}"
    );
    let stats: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(outcome.report_dir.join("mockkv.json")).expect("mockkv.json"),
    )
    .expect("json");
    let count = |outcome: &str| -> u64 {
        stats["counts"]
            .as_array()
            .map(|rows| {
                rows.iter()
                    .filter(|r| {
                        r["op"] == "put" && r["prefix"] == "seq:" && r["outcome"] == outcome
                    })
                    .filter_map(|r| r["count"].as_u64())
                    .sum()
            })
            .unwrap_or(0)
    };
    // 60 puts at 20/s; about a third of them fall inside the 1 s window.
    let (ok, refused) = (count("ok"), count("daily-limit"));
    assert_eq!(ok + refused, 60, "{stats}");
    assert!((12..=28).contains(&refused), "refused {refused} of 60");
    let history =
        std::fs::read_to_string(outcome.report_dir.join("history.jsonl")).expect("history");
    assert!(
        history.contains("\"type\":\"fault-set\"")
            && history.contains("\"type\":\"fault-cleared\""),
        "{history}"
    );
}

#[test]
fn faults_need_a_worker_target() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let scenario = tmp.path().join("f.toml");
    std::fs::write(
        &scenario,
        "name = \"f\"\n[target]\nbuiltin = true\n[[phases]]\nduration = \"2s\"\nrate = 1\n[[requests]]\nname = \"r\"\npath = \"/\"\n[[faults]]\nkind = \"hang\"\n",
    )
    .expect("write");
    let err = prepare(&RunOptions {
        scenario,
        ..RunOptions::default()
    })
    .err()
    .map(|e| e.to_string())
    .unwrap_or_default();
    assert!(
        err.contains("[[faults]] act on kvchaos's mock KV, which only a local Worker target has"),
        "{err}"
    );
}
