//! The proof that the checks tell a Worker whose control plane still lives in KV from a
//! migrated one: the shipped scenarios, run end to end against the reference Workers (and a
//! Worker with an API of its own), with the verdicts and the evidence they must give.

use std::path::{Path, PathBuf};
use std::time::Duration;

use kvchaos::check::{CheckResult, Verdict};
use kvchaos::exit::Exit;
use kvchaos::live::{Interrupts, Silent};
use kvchaos::run::{RunOptions, RunOutcome, prepare, run};

use crate::local::{ONE_AT_A_TIME, node_ready};

fn repo(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

/// Runs `scenario` (relative to the repository) against the reference Worker `worker`, or
/// the scenario's own target when `None`.
async fn go(
    scenario: &str,
    worker: Option<&str>,
    no_faults: bool,
    duration: Option<Duration>,
) -> (RunOutcome, tempfile::TempDir) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let opts = RunOptions {
        scenario: repo(scenario),
        worker: worker.map(|w| repo("mock/workers").join(w)),
        out: tmp.path().join("reports"),
        no_faults,
        duration,
        ..RunOptions::default()
    };
    let plan = prepare(&opts).expect("the scenario is valid");
    let outcome = run(plan, &opts, Interrupts::default(), &mut Silent)
        .await
        .expect("the run writes a report");
    (outcome, tmp)
}

fn check<'a>(o: &'a RunOutcome, name: &str) -> &'a CheckResult {
    o.summary
        .checks
        .iter()
        .find(|c| c.name == name)
        .unwrap_or_else(|| panic!("no {name} check in {:?}", o.summary.checks))
}

fn count(c: &CheckResult, name: &str) -> u64 {
    c.counts.get(name).copied().unwrap_or(0)
}

/// Writes the mock refused under the one-write-per-second-per-key limit, over every key.
fn same_key_refusals(o: &RunOutcome) -> u64 {
    let text = std::fs::read_to_string(o.report_dir.join("mockkv.json")).expect("mockkv.json");
    let stats: serde_json::Value = serde_json::from_str(&text).expect("JSON");
    stats["counts"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|r| r["outcome"] == "same-key-rate")
        .filter_map(|r| r["count"].as_u64())
        .sum()
}

fn all_pass(o: &RunOutcome) {
    for c in &o.summary.checks {
        assert_eq!(c.verdict, Verdict::Pass, "{c:#?}");
    }
    assert_eq!(o.exit, Exit::Pass, "{:#?}", o.summary.checks);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smoke_fails_the_kv_worker_naming_the_stall_and_passes_the_migrated_one() {
    if !node_ready().await {
        return;
    }
    let _one = ONE_AT_A_TIME.lock().await;
    let (kv, _t1) = go(
        "scenarios/smoke.toml",
        Some("kv-control-plane"),
        false,
        None,
    )
    .await;
    assert_eq!(kv.exit, Exit::Fail);
    let cron = check(&kv, "cron");
    assert_eq!(cron.verdict, Verdict::Fail, "{cron:#?}");
    assert!(count(cron, "missed-tick") >= 5, "{cron:#?}");
    assert!(
        cron.evidence
            .iter()
            .any(|e| e.starts_with("missed-tick") && e.contains("(fault active)")),
        "{cron:#?}"
    );
    // Every missed tick fell inside the fault window: the stall is the fault's.
    assert!(
        !cron
            .evidence
            .iter()
            .any(|e| e.contains("(no fault active)")),
        "{cron:#?}"
    );
    let queue = check(&kv, "queue");
    assert_eq!(queue.verdict, Verdict::Fail, "{queue:#?}");
    let stalled = queue.evidence.iter().find(|e| e.starts_with("stalled"));
    assert!(
        stalled.is_some_and(|e| e.contains("while a fault was active")
            && e.contains("KV put() limit exceeded for the day.")),
        "{queue:#?}"
    );
    // Nothing acknowledged was lost: the KV Worker stalls, it does not drop tasks.
    assert_eq!(count(queue, "lost"), 0, "{queue:#?}");
    // Its read-then-write idempotency lets concurrent copies of a key both apply, and its
    // limiter admits everything once its counter writes fail: it fails open, not closed.
    let idem = check(&kv, "idempotency");
    assert!(count(idem, "duplicate-effect") > 0, "{idem:#?}");
    let rl = check(&kv, "ratelimit");
    assert_eq!(rl.verdict, Verdict::Fail, "{rl:#?}");
    assert_eq!(count(rl, "policy_fail_open"), 1, "{rl:#?}");
    assert_eq!(count(rl, "wrong-fault-policy"), 1, "{rl:#?}");

    let (d1, _t2) = go("scenarios/smoke.toml", None, false, None).await;
    all_pass(&d1);
    assert!(count(check(&d1, "cron"), "ticks_ok") >= 20);
    assert!(count(check(&d1, "lock"), "acquires_ok") >= 20);
    assert!(count(check(&d1, "queue"), "completes_ok") >= 40);
    assert!(count(check(&d1, "idempotency"), "exercised") >= 10);
    let rl = check(&d1, "ratelimit");
    assert_eq!(count(rl, "policy_held"), 1, "{rl:#?}");
    assert!(count(rl, "refused") > 0, "{rl:#?}");
    // The migrated Worker's puts did meet the limit (its cache), and it did not notice.
    assert_eq!(d1.summary.overall.errors, 0, "{:?}", d1.summary.errors);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_faults_both_reference_workers_pass() {
    if !node_ready().await {
        return;
    }
    let _one = ONE_AT_A_TIME.lock().await;
    let twelve = Some(Duration::from_secs(12));
    for worker in ["kv-control-plane", "d1-do-control-plane"] {
        let (o, _t) = go("scenarios/smoke.toml", Some(worker), true, twelve).await;
        assert!(o.summary.faults.is_empty());
        assert_eq!(o.summary.checks.len(), 5, "{worker}");
        // Its idempotency and its limiter are read-then-write: concurrent copies of a key both
        // apply, and concurrent hits over-admit, faults or not. Only those anomalies.
        if worker == "kv-control-plane" {
            let idem = check(&o, "idempotency");
            assert_eq!(
                idem.reason,
                format!("duplicate-effect ×{}", count(idem, "duplicate-effect")),
                "{idem:#?}"
            );
            let rl = check(&o, "ratelimit");
            assert!(
                rl.verdict != Verdict::Fail || rl.reason.starts_with("over-admitted"),
                "{rl:#?}"
            );
        }
        // Without injected faults a control plane in KV can still meet KV's own limit of one
        // write per second per key (the mock enforces it on the 60x run clock): its cron and a
        // queue consumer writing one task key at once. Then, and only then, may its cron miss
        // a tick; the mock must have refused such a write.
        let cron = check(&o, "cron");
        if worker == "kv-control-plane" && cron.verdict == Verdict::Fail {
            assert_eq!(
                cron.reason,
                format!("missed-tick ×{}", count(cron, "missed-tick")),
                "{cron:#?}"
            );
            assert!(same_key_refusals(&o) > 0, "{cron:#?}");
            let judged = ["lock", "queue"];
            for c in o
                .summary
                .checks
                .iter()
                .filter(|c| judged.contains(&c.name.as_str()))
            {
                assert_eq!(c.verdict, Verdict::Pass, "{c:#?}");
            }
            continue;
        }
        if worker == "kv-control-plane" {
            for c in o
                .summary
                .checks
                .iter()
                .filter(|c| matches!(c.name.as_str(), "cron" | "lock" | "queue"))
            {
                assert_eq!(c.verdict, Verdict::Pass, "{c:#?}");
            }
            continue;
        }
        all_pass(&o);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_reads_make_the_kv_lock_grant_twice_and_not_the_durable_object_one() {
    if !node_ready().await {
        return;
    }
    let _one = ONE_AT_A_TIME.lock().await;
    let (kv, _t1) = go("scenarios/kv-stale-reads.toml", None, false, None).await;
    let lock = check(&kv, "lock");
    assert_eq!(lock.verdict, Verdict::Fail, "{lock:#?}");
    assert!(count(lock, "double-grant") >= 1, "{lock:#?}");
    assert!(
        lock.evidence[0].starts_with("double-grant: lock \"ledger\" granted to"),
        "{lock:#?}"
    );
    let (d1, _t2) = go(
        "scenarios/kv-stale-reads.toml",
        Some("d1-do-control-plane"),
        false,
        None,
    )
    .await;
    all_pass(&d1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_checks_work_on_a_worker_with_an_api_of_its_own() {
    if !node_ready().await {
        return;
    }
    let _one = ONE_AT_A_TIME.lock().await;
    let (o, _t) = go(
        "tests/fixtures/workers/jobs-api/scenario.toml",
        None,
        false,
        None,
    )
    .await;
    all_pass(&o);
    // The checks judged real work, read through that API's own shapes: cron through the
    // heartbeat, fencing tokens from a response header, jobs done by the Worker's cron.
    let cron = check(&o, "cron");
    assert!(
        count(cron, "ticks_ok") >= 8 && count(cron, "probes_ok") >= 8,
        "{cron:#?}"
    );
    let lock = check(&o, "lock");
    assert!(count(lock, "acquires_ok") >= 10, "{lock:#?}");
    assert!(
        count(lock, "acquires_fail") >= 1,
        "423s are refusals: {lock:#?}"
    );
    assert_eq!(count(lock, "malformed"), 0, "{lock:#?}");
    let queue = check(&o, "queue");
    assert!(count(queue, "tasks") >= 40, "{queue:#?}");
    assert_eq!(count(queue, "undrained"), 0, "{queue:#?}");
    let history =
        std::fs::read_to_string(o.report_dir.join("history.jsonl")).expect("history.jsonl");
    assert!(
        history.contains("\"status\":\"done\""),
        "job states map to done through the scenario's done = [\"finished\"]"
    );
}
