//! The bug zoo (`tests/fixtures/workers/zoo-*`): eight Workers with APIs of their own, each
//! with one classic control-plane bug, next to a twin that differs only by the fix. Each test
//! runs the pair's scenario end to end against the buggy Worker and asserts the anomaly by
//! name, then against the twin and asserts that every check passes — with the fault where
//! the bug needs one, and without it where the buggy Worker must pass too.
//!
//! The twins keep their state in D1 or Durable Objects, which workerd writes to SQLite under
//! the run's temporary directory: on a disk saturated by other work its fsyncs can stall a
//! Worker for seconds (the run then ends UNKNOWN or `stalled`, never a false PASS). With
//! `TMPDIR` on a tmpfs (`TMPDIR=/dev/shm cargo test --test integration zoo`) they do not.

use std::path::{Path, PathBuf};

use kvchaos::check::Verdict;
use kvchaos::exit::Exit;
use kvchaos::run::{RunOptions, RunOutcome};

use crate::support::{all_pass, check, count, run_opts};

use crate::local::{ONE_AT_A_TIME, node_ready};

fn repo(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

/// How a scenario is run.
#[derive(Clone, Copy)]
enum Mode {
    /// As written, faults included.
    AsWritten,
    /// `--no-faults`: the baseline.
    NoFaults,
    /// `--strict`, faults included: a warning or an UNKNOWN fails the run.
    Strict,
}

/// Runs the scenario of pair `scenario_of` (the buggy Worker's directory) against the zoo
/// Worker `worker`.
async fn go(scenario_of: &str, worker: &str, mode: Mode) -> (RunOutcome, tempfile::TempDir) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let zoo = repo("tests/fixtures/workers");
    let opts = RunOptions {
        scenario: zoo.join(scenario_of).join("scenario.toml"),
        worker: Some(zoo.join(worker)),
        out: tmp.path().join("reports"),
        no_faults: matches!(mode, Mode::NoFaults),
        strict: matches!(mode, Mode::Strict),
        ..RunOptions::default()
    };
    (run_opts(&opts).await, tmp)
}

/// `check` FAILED naming each of `anomalies` (counted), each with an evidence line.
fn fails_with(o: &RunOutcome, check_name: &str, anomalies: &[&str]) {
    let c = check(o, check_name);
    assert_eq!(c.verdict, Verdict::Fail, "{c:#?}");
    for a in anomalies {
        assert!(count(c, a) > 0, "no {a} in {c:#?}");
    }
    // Every kind of anomaly keeps its first evidence line, whatever the bound.
    for a in anomalies {
        assert!(
            c.evidence.iter().any(|e| e.starts_with(&format!("{a}: "))),
            "no evidence line for {a} in {c:#?}"
        );
    }
    assert_eq!(o.exit, Exit::Fail, "{:#?}", o.summary.checks);
}

/// Each scheduled fault met at least one KV operation of the Worker.
fn faults_reached_kv(o: &RunOutcome) {
    assert!(!o.summary.faults.is_empty());
    for w in &o.summary.faults {
        assert!(w.kv_ops.is_some_and(|n| n > 0), "{w:#?}");
    }
}

fn history(o: &RunOutcome) -> Vec<serde_json::Value> {
    std::fs::read_to_string(o.report_dir.join("history.jsonl"))
        .expect("history.jsonl")
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect()
}

/// Completions (`ok`, `fail`, `info`) of operation `f` in the history.
fn completions(o: &RunOutcome, f: &str, kind: &str) -> usize {
    history(o)
        .iter()
        .filter(|e| e["type"] == "op" && e["f"] == f && e["op"] == kind)
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zoo_claim_race_is_a_lease_overlap() {
    if !node_ready().await {
        return;
    }
    let _one = ONE_AT_A_TIME.lock().await;
    let (bug, _t) = go("zoo-claim-race", "zoo-claim-race", Mode::AsWritten).await;
    fails_with(&bug, "queue", &["lease-overlap"]);
    // Only the claims show it: the loser's ack is refused (412), so no task is lost or stuck.
    let q = check(&bug, "queue");
    assert_eq!(count(q, "lost") + count(q, "not-drained"), 0, "{q:#?}");
    assert!(completions(&bug, "complete", "fail") > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zoo_claim_atomic_passes() {
    if !node_ready().await {
        return;
    }
    let _one = ONE_AT_A_TIME.lock().await;
    let (fix, _t) = go("zoo-claim-race", "zoo-claim-atomic", Mode::AsWritten).await;
    all_pass(&fix);
    let q = check(&fix, "queue");
    assert!(count(q, "completes_ok") >= 100, "{q:#?}");
    assert_eq!(count(q, "lease-overlap"), 0, "{q:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zoo_release_unchecked_frees_another_holders_lock() {
    if !node_ready().await {
        return;
    }
    let _one = ONE_AT_A_TIME.lock().await;
    let (bug, _t) = go(
        "zoo-release-unchecked",
        "zoo-release-unchecked",
        Mode::AsWritten,
    )
    .await;
    fails_with(&bug, "lock", &["release-not-held", "double-grant"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zoo_release_checked_refuses_stale_releases_and_passes() {
    if !node_ready().await {
        return;
    }
    let _one = ONE_AT_A_TIME.lock().await;
    let (fix, _t) = go(
        "zoo-release-unchecked",
        "zoo-release-checked",
        Mode::AsWritten,
    )
    .await;
    all_pass(&fix);
    // The overrunning clients did release late; the fixed Worker refused them (409).
    let refused = history(&fix)
        .iter()
        .filter(|e| e["f"] == "release" && e["op"] == "fail" && e["value"]["http"] == 409)
        .count();
    assert!(refused > 0, "no stale release was refused");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zoo_cron_kv_first_misses_ticks_under_the_fault_only() {
    if !node_ready().await {
        return;
    }
    let _one = ONE_AT_A_TIME.lock().await;
    let (bug, _t1) = go("zoo-cron-kv-first", "zoo-cron-kv-first", Mode::AsWritten).await;
    fails_with(&bug, "cron", &["missed-tick", "max-gap"]);
    let cron = check(&bug, "cron");
    assert!(
        cron.evidence
            .iter()
            .any(|e| e.starts_with("missed-tick") && e.contains("(fault active)")),
        "{cron:#?}"
    );
    let (calm, _t2) = go("zoo-cron-kv-first", "zoo-cron-kv-first", Mode::NoFaults).await;
    all_pass(&calm);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zoo_cron_durable_first_passes_under_the_fault() {
    if !node_ready().await {
        return;
    }
    let _one = ONE_AT_A_TIME.lock().await;
    let (fix, _t) = go(
        "zoo-cron-kv-first",
        "zoo-cron-durable-first",
        Mode::AsWritten,
    )
    .await;
    all_pass(&fix);
    faults_reached_kv(&fix);
    assert_eq!(count(check(&fix, "cron"), "ticks_fail"), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zoo_enqueue_swallow_loses_tasks_under_the_fault_only() {
    if !node_ready().await {
        return;
    }
    let _one = ONE_AT_A_TIME.lock().await;
    let (bug, _t1) = go(
        "zoo-enqueue-swallow",
        "zoo-enqueue-swallow",
        Mode::AsWritten,
    )
    .await;
    fails_with(&bug, "queue", &["lost"]);
    let (calm, _t2) = go("zoo-enqueue-swallow", "zoo-enqueue-swallow", Mode::NoFaults).await;
    all_pass(&calm);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zoo_enqueue_honest_passes_under_the_fault() {
    if !node_ready().await {
        return;
    }
    let _one = ONE_AT_A_TIME.lock().await;
    let (fix, _t) = go("zoo-enqueue-swallow", "zoo-enqueue-honest", Mode::AsWritten).await;
    all_pass(&fix);
    faults_reached_kv(&fix);
    // The fault did meet the honest Worker: the enqueues it refused were answered 503.
    assert!(completions(&fix, "enqueue", "info") > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zoo_kv_lock_grants_twice_on_stale_reads() {
    if !node_ready().await {
        return;
    }
    let _one = ONE_AT_A_TIME.lock().await;
    let (bug, _t) = go("zoo-kv-lock", "zoo-kv-lock", Mode::AsWritten).await;
    fails_with(&bug, "lock", &["double-grant"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zoo_do_lock_passes_under_stale_reads() {
    if !node_ready().await {
        return;
    }
    let _one = ONE_AT_A_TIME.lock().await;
    let (fix, _t) = go("zoo-kv-lock", "zoo-do-lock", Mode::AsWritten).await;
    all_pass(&fix);
    faults_reached_kv(&fix);
    assert!(count(check(&fix, "lock"), "acquires_ok") >= 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zoo_cooldown_kv_fails_once_its_own_clock_follows_the_run() {
    if !node_ready().await {
        return;
    }
    let _one = ONE_AT_A_TIME.lock().await;
    let (bug, _t) = go("zoo-cooldown-kv", "zoo-cooldown-kv", Mode::AsWritten).await;
    // The Worker's Date runs on the run clock: its 3-minute cooldown passes every 3 s, the
    // flushes during the fault throw, and the cron misses ticks, as in production.
    faults_reached_kv(&bug);
    fails_with(&bug, "cron", &["missed-tick"]);
    let (calm, _t2) = go("zoo-cooldown-kv", "zoo-cooldown-kv", Mode::NoFaults).await;
    all_pass(&calm);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zoo_cooldown_d1_passes_strict_on_evidence() {
    if !node_ready().await {
        return;
    }
    let _one = ONE_AT_A_TIME.lock().await;
    let (fix, _t) = go("zoo-cooldown-kv", "zoo-cooldown-d1", Mode::Strict).await;
    all_pass(&fix);
    faults_reached_kv(&fix);
    assert!(
        fix.summary.warnings.is_empty(),
        "{:#?}",
        fix.summary.warnings
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zoo_charge_mark_first_loses_effects_under_the_fault_only() {
    if !node_ready().await {
        return;
    }
    let _one = ONE_AT_A_TIME.lock().await;
    let (bug, _t1) = go(
        "zoo-charge-mark-first",
        "zoo-charge-mark-first",
        Mode::AsWritten,
    )
    .await;
    fails_with(&bug, "idempotency", &["lost-effect"]);
    let (calm, _t2) = go(
        "zoo-charge-mark-first",
        "zoo-charge-mark-first",
        Mode::NoFaults,
    )
    .await;
    all_pass(&calm);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zoo_charge_one_write_passes_under_the_fault() {
    if !node_ready().await {
        return;
    }
    let _one = ONE_AT_A_TIME.lock().await;
    let (fix, _t) = go(
        "zoo-charge-mark-first",
        "zoo-charge-one-write",
        Mode::AsWritten,
    )
    .await;
    all_pass(&fix);
    faults_reached_kv(&fix);
    // The fault did meet the fixed Worker: the charges it could not write were answered 503.
    assert!(completions(&fix, "apply", "info") > 0);
    assert!(count(check(&fix, "idempotency"), "exercised") >= 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zoo_limit_open_fails_open_under_the_fault_only() {
    if !node_ready().await {
        return;
    }
    let _one = ONE_AT_A_TIME.lock().await;
    let (bug, _t1) = go("zoo-limit-open", "zoo-limit-open", Mode::AsWritten).await;
    fails_with(&bug, "ratelimit", &["wrong-fault-policy", "over-admitted"]);
    assert_eq!(count(check(&bug, "ratelimit"), "policy_fail_open"), 1);
    let (calm, _t2) = go("zoo-limit-open", "zoo-limit-open", Mode::NoFaults).await;
    all_pass(&calm);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zoo_limit_closed_fails_closed_as_declared() {
    if !node_ready().await {
        return;
    }
    let _one = ONE_AT_A_TIME.lock().await;
    let (fix, _t) = go("zoo-limit-open", "zoo-limit-closed", Mode::AsWritten).await;
    all_pass(&fix);
    faults_reached_kv(&fix);
    assert_eq!(count(check(&fix, "ratelimit"), "policy_fail_closed"), 1);
}
