//! Helpers shared by the integration tests that drive `run()` from scenario files.

use std::path::{Path, PathBuf};

use kvchaos::check::{CheckResult, Verdict};
use kvchaos::exit::Exit;
use kvchaos::live::{Interrupts, Silent};
use kvchaos::run::{RunOptions, RunOutcome, prepare, run};

/// Writes `text` to `dir/name` and returns the path.
pub fn write_scenario(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).expect("write scenario");
    p
}

/// Prepares and runs `scenario` with one engine thread, reports under `dir/reports`.
pub async fn run_file(scenario: PathBuf, dir: &Path) -> RunOutcome {
    let opts = RunOptions {
        scenario,
        out: dir.join("reports"),
        threads: Some(1),
        ..RunOptions::default()
    };
    let plan = prepare(&opts).expect("valid scenario");
    run(plan, &opts, Interrupts::default(), &mut Silent)
        .await
        .expect("the run writes a report")
}

/// The error `prepare` gives for `scenario` (empty if it is valid).
pub fn prepare_error(scenario: PathBuf) -> String {
    prepare(&RunOptions {
        scenario,
        ..RunOptions::default()
    })
    .err()
    .map(|e| e.to_string())
    .unwrap_or_default()
}

/// The one guard of tests that need a tool on PATH (`node`, `tmux`): true when it is there.
/// A missing tool FAILS the test, unless skipping was asked for with `skip_var=1`, so a
/// machine without it can never pass these tests silently.
pub fn needs(tool: &str, skip_var: &str) -> bool {
    if kvchaos::local::find_on_path(tool).is_some() {
        return true;
    }
    if std::env::var(skip_var).is_ok_and(|v| v == "1") {
        eprintln!("skipped ({skip_var}=1): '{tool}' is not on PATH");
        return false;
    }
    panic!(
        "'{tool}' is not on PATH and this test needs it: install it, or set {skip_var}=1 to skip the tests that need it"
    );
}

/// Whether Node.js is available for Worker targets (see [`needs`]).
pub fn node_available() -> bool {
    needs("node", "KVCHAOS_SKIP_NODE")
}

/// The kv-probe fixture Worker.
pub fn probe_worker() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/workers/kv-probe")
}

/// Operations the mock KV counted in a report folder's `mockkv.json`.
pub fn kv_count(report_dir: &Path, op: &str, prefix: &str, outcome: &str) -> u64 {
    let stats: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(report_dir.join("mockkv.json")).expect("mockkv.json"),
    )
    .expect("mockkv.json is JSON");
    stats["counts"]
        .as_array()
        .map(|rows| {
            rows.iter()
                .filter(|r| r["op"] == op && r["prefix"] == prefix && r["outcome"] == outcome)
                .filter_map(|r| r["count"].as_u64())
                .sum()
        })
        .unwrap_or(0)
}

/// Prepares and runs `opts` (reports under `opts.out`); panics if the scenario is invalid or
/// the run writes no report.
pub async fn run_opts(opts: &RunOptions) -> RunOutcome {
    let plan = prepare(opts).expect("the scenario is valid");
    run(plan, opts, Default::default(), &mut kvchaos::live::Silent)
        .await
        .expect("the run writes a report")
}

/// The check `name` of a run.
pub fn check<'a>(o: &'a RunOutcome, name: &str) -> &'a CheckResult {
    o.summary
        .checks
        .iter()
        .find(|c| c.name == name)
        .unwrap_or_else(|| panic!("no {name} check in {:#?}", o.summary.checks))
}

/// A count of a check result (0 when absent).
pub fn count(c: &CheckResult, name: &str) -> u64 {
    c.counts.get(name).copied().unwrap_or(0)
}

/// Every check PASSED (there is at least one) and so did the run.
pub fn all_pass(o: &RunOutcome) {
    assert!(!o.summary.checks.is_empty(), "no check ran");
    for c in &o.summary.checks {
        assert_eq!(c.verdict, Verdict::Pass, "{c:#?}");
    }
    assert_eq!(o.exit, Exit::Pass, "{:#?}", o.summary.checks);
}
