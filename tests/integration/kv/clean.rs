//! Clean: the plan, the gates, QA before production, the free plan's delete budget.

use std::path::Path;

use kvchaos::exit::Exit;
use serde_json::{Value, json};

use super::*;

/// Dump `ns`'s `prefix` to `dir/name` and verify it against a SQLite file of `keys`.
pub(crate) async fn dump_and_verify(
    m: &Mock,
    dir: &Path,
    ns: &str,
    prefix: &str,
    keys: &[String],
    name: &str,
) -> String {
    let out = dir.join(name);
    let r = kv(
        &argv(
            &["dump", "--prefix", prefix, "-o", &path(&out)],
            m.ns_args(ns),
        ),
        &memory_env(),
    )
    .await;
    assert_eq!(r.exit, Exit::Pass, "{}", r.err);
    let db = sqlite_with(dir, keys);
    let r = kv(
        &argv(
            &[
                "verify",
                &path(&out),
                "--against",
                &db,
                "--query",
                "SELECT key FROM legacy",
            ],
            vec![],
        ),
        &memory_env(),
    )
    .await;
    assert_eq!(r.exit, Exit::Pass, "{}{}", r.out, r.err);
    path(&out)
}

fn plan_args(m: &Mock, ns: &str, plan: &Path) -> Vec<String> {
    argv(
        &[
            "clean",
            "--prefix",
            "master:",
            "--dry-run",
            "-o",
            &path(plan),
        ],
        m.ns_args(ns),
    )
}

fn apply_args(m: &Mock, plan: &Path, dump: &str, env: &str, audit: &Path) -> Vec<String> {
    argv(
        &[
            "clean",
            "--apply",
            &path(plan),
            "--dump",
            dump,
            "--environment",
            env,
            "--audit-log",
            &path(audit),
            "--actor",
            "ana",
            "--api-base",
            &m.base,
        ],
        vec![],
    )
}

#[tokio::test]
async fn clean_is_planned_then_applied_behind_its_gates_qa_before_production() {
    let m = mock(Limits::PAID).await;
    let legacy: Vec<String> = (0..50).map(|i| format!("master:{i:05}")).collect();
    for ns in ["qa", "prod"] {
        let mut pairs = text_pairs("master:", 50);
        pairs.extend(text_pairs("settings:", 5));
        m.seed(ns, pairs).await;
    }
    let dir = tempfile::tempdir().unwrap();
    let (plan, audit) = (dir.path().join("plan.json"), dir.path().join("audit.jsonl"));
    let r = kv(&plan_args(&m, "qa", &plan), &memory_env()).await;
    assert_eq!(r.exit, Exit::Pass, "{}", r.err);
    assert!(
        r.out.contains("plan: 50 keys under 'master:'") && r.out.contains("nothing deleted"),
        "{}",
        r.out
    );
    let p: Value = serde_json::from_slice(&std::fs::read(&plan).unwrap()).unwrap();
    assert_eq!(
        (p["count"].clone(), p["namespace_id"].clone()),
        (json!(50), json!("qa"))
    );
    assert_eq!(m.live("qa").await, 55);

    // Gate 1: a dump with a manifest and a verify record without differences.
    let unverified = dir.path().join("unverified.ndjson");
    let r = kv(
        &argv(
            &["dump", "--prefix", "master:", "-o", &path(&unverified)],
            m.ns_args("qa"),
        ),
        &memory_env(),
    )
    .await;
    assert_eq!(r.exit, Exit::Pass);
    let r = kv(
        &apply_args(&m, &plan, &path(&unverified), "qa", &audit),
        &memory_env(),
    )
    .await;
    assert_eq!(r.exit, Exit::Fail);
    assert!(r.err.contains("was never verified"), "{}", r.err);
    let r = kv(
        &apply_args(
            &m,
            &plan,
            &path(&dir.path().join("none.ndjson")),
            "qa",
            &audit,
        ),
        &memory_env(),
    )
    .await;
    assert!(r.err.contains("no manifest beside"), "{}", r.err);
    let qa_dump = dump_and_verify(&m, dir.path(), "qa", "master:", &legacy, "qa.ndjson").await;

    // Gate 4: the namespace changed since the plan.
    m.seed("qa", vec![json!({"key": "master:new", "value": "x"})])
        .await;
    let r = kv(
        &apply_args(&m, &plan, &qa_dump, "qa", &audit),
        &memory_env(),
    )
    .await;
    assert_eq!(r.exit, Exit::Fail);
    assert!(
        r.err.contains("changed since the plan: 51 keys"),
        "{}",
        r.err
    );
    m.delete("qa", &["master:new"]).await;

    // Production before QA is refused.
    let prod_plan = dir.path().join("prod-plan.json");
    assert_eq!(
        kv(&plan_args(&m, "prod", &prod_plan), &memory_env())
            .await
            .exit,
        Exit::Pass
    );
    let prod_dump =
        dump_and_verify(&m, dir.path(), "prod", "master:", &legacy, "prod.ndjson").await;
    let r = kv(
        &apply_args(&m, &prod_plan, &prod_dump, "production", &audit),
        &memory_env(),
    )
    .await;
    assert_eq!(r.exit, Exit::Fail);
    assert!(r.err.contains("has not succeeded in QA"), "{}", r.err);
    // A QA dump does not back a production clean.
    let r = kv(
        &apply_args(&m, &prod_plan, &qa_dump, "production", &audit),
        &memory_env(),
    )
    .await;
    assert!(r.err.contains("is a dump of namespace 'qa'"), "{}", r.err);

    let r = kv(
        &apply_args(&m, &plan, &qa_dump, "qa", &audit),
        &memory_env(),
    )
    .await;
    assert_eq!(r.exit, Exit::Pass, "{}", r.err);
    assert!(r.out.contains("deleted 50 keys"), "{}", r.out);
    let r = kv(
        &apply_args(&m, &prod_plan, &prod_dump, "production", &audit),
        &memory_env(),
    )
    .await;
    assert_eq!(r.exit, Exit::Pass, "{}", r.err);
    for ns in ["qa", "prod"] {
        assert_eq!(m.live(ns).await, 5, "{ns}: settings stay");
    }
    let log = std::fs::read_to_string(&audit).unwrap();
    let entries: Vec<Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let oks: Vec<&Value> = entries.iter().filter(|e| e["outcome"] == "ok").collect();
    assert_eq!(oks.len(), 2);
    assert_eq!(
        (
            oks[0]["actor"].clone(),
            oks[0]["deleted"].clone(),
            oks[0]["environment"].clone()
        ),
        (json!("ana"), json!(50), json!("qa"))
    );
    assert!(
        entries.iter().filter(|e| e["outcome"] == "refused").count() >= 4,
        "refusals are logged too"
    );
}

#[tokio::test]
async fn the_free_plans_delete_budget_stops_a_clean_before_it_exhausts_the_days_deletes() {
    let m = mock(Limits::FREE).await;
    let keys: Vec<String> = (0..1_000).map(|i| format!("master:{i:05}")).collect();
    m.seed("NS", text_pairs("master:", 1_000)).await;
    let dir = tempfile::tempdir().unwrap();
    let (plan, audit) = (dir.path().join("plan.json"), dir.path().join("audit.jsonl"));
    assert_eq!(
        kv(&plan_args(&m, "NS", &plan), &memory_env()).await.exit,
        Exit::Pass
    );
    let dump = dump_and_verify(&m, dir.path(), "NS", "master:", &keys, "d.ndjson").await;
    // 1,000 deletes would use up the day's 1,000: nothing would be left for the Workers.
    let r = kv(&apply_args(&m, &plan, &dump, "qa", &audit), &memory_env()).await;
    assert_eq!(r.exit, Exit::Fail, "{}", r.out);
    assert!(
        r.err
            .contains("1000 deletes would exceed today's budget: 0 of the free plan's 1000"),
        "{}",
        r.err
    );
    let deletes: u64 =
        m.kv.stats()
            .quota
            .iter()
            .filter(|q| q.op == kvchaos::mockkv::Op::Delete)
            .map(|q| q.used)
            .sum();
    assert_eq!(deletes, 0, "refused before any delete");
    // Deletes already made today (from the audit log) count too.
    let small_plan = dir.path().join("small.json");
    m.delete(
        "NS",
        &keys[100..].iter().map(String::as_str).collect::<Vec<_>>(),
    )
    .await;
    assert_eq!(
        kv(&plan_args(&m, "NS", &small_plan), &memory_env())
            .await
            .exit,
        Exit::Pass
    );
    let small_dump = dump_and_verify(
        &m,
        dir.path(),
        "NS",
        "master:",
        &keys[..100],
        "small.ndjson",
    )
    .await;
    let today = chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string();
    let earlier = json!({"at": today, "actor": "bo", "action": "clean", "environment": "qa", "account_id": "acc",
        "namespace_id": "other", "prefix": "x:", "plan_sha256": "h", "keys": 850, "deleted": 850, "written": 0,
        "dump": "x", "outcome": "ok"});
    std::fs::write(&audit, format!("{earlier}\n")).unwrap();
    let r = kv(
        &apply_args(&m, &small_plan, &small_dump, "qa", &audit),
        &memory_env(),
    )
    .await;
    assert_eq!(r.exit, Exit::Fail, "{}", r.out);
    assert!(
        r.err
            .contains("100 deletes would exceed today's budget: 850 of"),
        "{}",
        r.err
    );
    let mut lower = apply_args(&m, &small_plan, &small_dump, "qa", &audit);
    lower.extend(["--reserve-deletes".to_owned(), "50".to_owned()]);
    let r = kv(&lower, &memory_env()).await;
    assert_eq!(r.exit, Exit::Pass, "{}", r.err);
}
