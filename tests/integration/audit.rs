//! `kvchaos audit`: accuracy of call-site detection on the labelled fixture repositories
//! (`tests/fixtures/audit/*/expected.json`), resolution statuses, the CI check through the built
//! binary, SARIF against the SARIF 2.1.0 schema, `--with-run` and `audit scenario`.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use kvchaos::audit::{self, Finding, Report, ScanOptions, Ttl, resolve::Status};

const BIN: &str = env!("CARGO_BIN_EXE_kvchaos");
const REPOS: [&str; 4] = ["ts-forms", "hono-js", "durable-object", "monorepo"];

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/audit")
        .join(name)
}

fn scan(root: &Path) -> Report {
    audit::scan(&ScanOptions {
        root: root.to_owned(),
        config: None,
        env: None,
        loop_factor: 10,
    })
    .unwrap()
}

type Site = (String, u32, String);

fn expected(name: &str, key: &str) -> BTreeSet<Site> {
    let text = std::fs::read_to_string(fixture(name).join("expected.json")).unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    v[key]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["file"].as_str().unwrap().to_owned(),
                e["line"].as_u64().unwrap() as u32,
                e["op"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

fn detected(r: &Report) -> BTreeSet<Site> {
    r.findings
        .iter()
        .map(|f| (f.file.clone(), f.line, f.op.clone()))
        .collect()
}

#[test]
fn audit_precision_and_recall_on_the_labelled_corpus() {
    let (mut tp, mut fp, mut fneg) = (0usize, 0usize, 0usize);
    let mut misses = Vec::new();
    for repo in REPOS {
        let r = scan(&fixture(repo));
        let want = expected(repo, "kv_calls");
        let got = detected(&r);
        tp += got.intersection(&want).count();
        for s in got.difference(&want) {
            fp += 1;
            misses.push(format!("{repo}: false positive {s:?}"));
        }
        for s in want.difference(&got) {
            fneg += 1;
            misses.push(format!("{repo}: missed {s:?}"));
        }
    }
    let precision = tp as f64 / (tp + fp).max(1) as f64;
    let recall = tp as f64 / (tp + fneg).max(1) as f64;
    println!(
        "audit corpus: {tp} true positives, {fp} false positives, {fneg} missed; precision {precision:.3}, recall {recall:.3}"
    );
    assert!(
        tp >= 30,
        "the corpus labels at least 30 call sites, found {tp}"
    );
    assert!(precision >= 0.98, "precision {precision:.3}: {misses:#?}");
    assert!(recall >= 0.98, "recall {recall:.3}: {misses:#?}");
}

fn at<'a>(r: &'a Report, file: &str, line: u32) -> &'a Finding {
    r.findings
        .iter()
        .find(|f| f.file == file && f.line == line)
        .unwrap_or_else(|| panic!("no finding at {file}:{line}"))
}

fn line_of(repo: &str, file: &str, needle: &str) -> u32 {
    let text = std::fs::read_to_string(fixture(repo).join(file)).unwrap();
    text.lines().position(|l| l.contains(needle)).unwrap() as u32 + 1
}

#[test]
fn audit_statuses_ttl_prefixes_handlers_and_ignores() {
    let r = scan(&fixture("ts-forms"));
    let f = "src/index.ts";
    let either = at(&r, f, line_of("ts-forms", f, "ns.get(\"either\")"));
    assert_eq!(either.status, Status::Ambiguous);
    assert_eq!(either.bindings, ["CACHE", "KV"]);
    let lock_get = at(&r, f, line_of("ts-forms", f, "${LOCK_PREFIX}${name}"));
    assert_eq!(lock_get.key_prefix.as_deref(), Some("lock:"));
    let page_get = at(&r, f, line_of("ts-forms", f, "await cache.get("));
    // A read-through cache (get, then a put with a TTL) is not a read-modify-write race.
    assert_eq!(
        page_get.category,
        audit::classify::Category::C,
        "{}",
        page_get.rule
    );
    let page_put = at(&r, f, line_of("ts-forms", f, "await cache.put("));
    assert_eq!(
        (page_put.ttl, page_put.key_prefix.as_deref()),
        (Ttl::Yes, Some("page:"))
    );
    let lock_put = at(&r, f, line_of("ts-forms", f, "LOCK_PREFIX + name"));
    assert_eq!(
        (lock_put.ttl, lock_put.key_prefix.as_deref()),
        (Ttl::No, Some("lock:"))
    );
    assert_eq!(lock_put.category, audit::classify::Category::A);
    assert_eq!(lock_put.handlers, ["fetch"]);
    let helper = at(
        &r,
        "src/lib/store.ts",
        line_of("ts-forms", "src/lib/store.ts", "ns.put"),
    );
    assert_eq!(
        (helper.ttl, helper.bindings.as_slice()),
        (Ttl::Yes, &["CACHE".to_owned()][..])
    );
    assert_eq!(helper.key_prefix.as_deref(), Some("cache:home"));
    let del = at(&r, f, line_of("ts-forms", f, "env.KV.delete(k.name)"));
    assert!(del.in_loop);
    assert_eq!(del.handlers, ["scheduled"]);
    // */5: 288 runs a day, 10 deletes each by the default loop factor.
    assert_eq!(del.estimate.per_day, Some(2880.0));
    let ignored: BTreeSet<(String, u32)> =
        r.ignored.iter().map(|n| (n.file.clone(), n.line)).collect();
    let want: BTreeSet<(String, u32)> = expected("ts-forms", "ignored")
        .into_iter()
        .map(|(f, l, _)| (f, l))
        .collect();
    assert_eq!(ignored, want);
    assert!(
        r.notes
            .iter()
            .any(|n| n.message.contains("without a reason")),
        "{:?}",
        r.notes
    );
    assert!(
        r.findings.iter().all(|f| !f.file.contains("generated")),
        "the exclusion file is honoured"
    );
    assert!(!r.candidates.is_empty() && r.candidates.len() <= 10);
}

#[test]
fn audit_monorepo_workers_and_config_selection() {
    let r = scan(&fixture("monorepo"));
    assert_eq!(r.workers.len(), 2);
    let shared: Vec<&Finding> = r
        .findings
        .iter()
        .filter(|f| f.file.starts_with("packages/"))
        .collect();
    let bindings: BTreeSet<&str> = shared
        .iter()
        .flat_map(|f| f.bindings.iter().map(String::as_str))
        .collect();
    assert_eq!(bindings, ["API_KV", "JOBS"].into());
    let cron_list = r.findings.iter().find(|f| f.op == "list").unwrap();
    // "*/1" and "0 0": 1,441 runs a day.
    assert_eq!(cron_list.estimate.per_day, Some(1441.0));
    let out = Command::new(BIN)
        .args(["audit", "scan", "--format", "json", "--root"])
        .arg(fixture("monorepo"))
        .arg("--config")
        .arg(fixture("monorepo/workers/api/wrangler.toml"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let one: Report = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        one.findings
            .iter()
            .all(|f| !f.file.starts_with("workers/cron"))
    );
    assert!(
        one.findings
            .iter()
            .any(|f| f.file.starts_with("workers/api"))
    );
}

#[test]
fn audit_sarif_validates_against_the_sarif_2_1_0_schema() {
    let schema: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/sarif-schema-2.1.0.json"),
        )
        .unwrap(),
    )
    .unwrap();
    let validator = jsonschema::validator_for(&schema).unwrap();
    for repo in REPOS {
        let sarif: serde_json::Value =
            serde_json::from_str(&audit::format::sarif::render(&scan(&fixture(repo)))).unwrap();
        let errors: Vec<String> = validator
            .iter_errors(&sarif)
            .map(|e| e.to_string())
            .collect();
        assert!(errors.is_empty(), "{repo}: {errors:#?}");
        assert!(!sarif["runs"][0]["results"].as_array().unwrap().is_empty());
    }
    // The schema is strict: a wrong version is caught.
    let mut bad = serde_json::json!({"version": "2.0.0", "runs": []});
    assert!(!validator.is_valid(&bad));
    bad["version"] = "2.1.0".into();
    assert!(validator.is_valid(&bad));
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap().flatten() {
        let t = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &t);
        } else {
            std::fs::copy(e.path(), t).unwrap();
        }
    }
}

fn check(root: &Path, baseline: &Path, extra: &[&str]) -> (i32, String) {
    let out = Command::new(BIN)
        .args(["audit", "check", "--root"])
        .arg(root)
        .arg("--baseline")
        .arg(baseline)
        .args(extra)
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.code().unwrap(), text)
}

#[test]
fn audit_check_gates_regressions_not_moved_lines() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("repo");
    copy_dir(&fixture("hono-js"), &root);
    let baseline = dir.path().join("baseline.json");
    let out = Command::new(BIN)
        .args(["audit", "scan", "--format", "json", "-o"])
        .arg(&baseline)
        .arg("--root")
        .arg(&root)
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(check(&root, &baseline, &[]).0, 0);
    // Lines move: still clean.
    let app = root.join("src/app.js");
    let text = std::fs::read_to_string(&app).unwrap();
    std::fs::write(&app, format!("// moved\n\n\n{text}")).unwrap();
    let (code, out) = check(&root, &baseline, &[]);
    assert_eq!(code, 0, "{out}");
    // Swap one TTL-less put for another: the totals are equal, the check still fails.
    let swapped = text
        .replace("await TOKENS.put(\"oauth:refresh\", body.token);", "")
        .replace(
            "return c.text(\"gone\");",
            "await c.env.TOKENS.put(\"oauth:revoked\", \"1\");\n  return c.text(\"gone\");",
        );
    std::fs::write(&app, &swapped).unwrap();
    let (code, out) = check(&root, &baseline, &[]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("new put without a TTL"), "{out}");
    assert!(out.contains("stale"), "{out}");
    // A new list fails too; totals are gated only when asked.
    std::fs::write(
        &app,
        text.replace(
            "export default app;",
            "app.get(\"/l\", async (c) => c.json(await c.env.TOKENS.list()));\nexport default app;",
        ),
    )
    .unwrap();
    let (code, out) = check(&root, &baseline, &[]);
    assert_eq!(code, 1);
    assert!(out.contains("new list()"), "{out}");
    std::fs::write(&app, text.replace("export default app;", "app.get(\"/g\", async (c) => c.text(await c.env.RATE_LIMITS.get(\"x\") ?? \"\"));\nexport default app;")).unwrap();
    assert_eq!(check(&root, &baseline, &[]).0, 0);
    let (code, out) = check(&root, &baseline, &["--allow-total-increase", "0"]);
    assert_eq!(code, 1);
    assert!(out.contains("--allow-total-increase 0"), "{out}");
    // Prune removes what is gone.
    std::fs::write(&app, &swapped).unwrap();
    let _ = check(&root, &baseline, &["--prune"]);
    let pruned: Report =
        serde_json::from_str(&std::fs::read_to_string(&baseline).unwrap()).unwrap();
    assert!(
        pruned
            .findings
            .iter()
            .all(|f| f.call != "TOKENS.put(\"oauth:refresh\")")
    );
    // Usage errors exit 2.
    assert_eq!(check(&root, &dir.path().join("missing.json"), &[]).0, 2);
    let empty = dir.path().join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let (code, out) = check(&empty, &baseline, &[]);
    assert_eq!(code, 2);
    assert!(out.contains("no wrangler.toml"), "{out}");
}

#[test]
fn audit_with_run_and_scenario_on_the_reference_worker() {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut r = scan(&manifest.join("mock/workers/kv-control-plane"));
    audit::join::join(
        &mut r.findings,
        &manifest.join("reports/examples/before-kv-control-plane"),
    )
    .unwrap();
    let lock = r
        .findings
        .iter()
        .find(|f| f.op == "get" && f.key_prefix.as_deref() == Some("lock:"))
        .unwrap();
    let m = lock.measured.as_ref().expect("lock: gets were measured");
    assert_eq!(m.prefixes, ["lock:"]);
    assert!(m.per_1000_requests > 0.0);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("audit.toml");
    let out = Command::new(BIN)
        .args(["audit", "scenario", "--root"])
        .arg(manifest.join("mock/workers/kv-control-plane"))
        .arg("-o")
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(text.contains("prefix = \"lock:\""), "{text}");
    let plan = kvchaos::scenario::parse_str(&text, &file, &|_| None);
    assert!(plan.is_ok(), "{:?}", plan.err());
}

#[test]
fn audit_bad_inputs_are_notes_or_usage_errors() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::write(
        root.join("wrangler.toml"),
        "name = \"w\"\n[[kv_namespaces]]\nbinding = \"KV\"\nid = \"1\"\n",
    )
    .unwrap();
    std::fs::create_dir_all(root.join("src")).unwrap();
    std::fs::write(
        root.join("src/broken.ts"),
        "export default {\n  fetch(req, env) { env.KV.get( }\n",
    )
    .unwrap();
    std::fs::write(root.join("src/big.js"), "x".repeat(3 * 1024 * 1024)).unwrap();
    std::fs::write(root.join("src/bin.js"), [0xff_u8, 0xfe, 0x00, 0x01]).unwrap();
    std::fs::write(
        root.join("src/ok.js"),
        "export default { fetch(r, env) { return env.KV.get(\"a\"); } };\n",
    )
    .unwrap();
    let r = scan(root);
    assert_eq!(r.findings.len(), 1);
    let notes: Vec<String> = r
        .notes
        .iter()
        .map(|n| format!("{}:{}: {}", n.file, n.line, n.message))
        .collect();
    assert!(
        notes
            .iter()
            .any(|n| n.starts_with("src/broken.ts:0: not parsed (line 2")),
        "{notes:?}"
    );
    assert!(
        notes
            .iter()
            .any(|n| n.contains("src/big.js") && n.contains("limit")),
        "{notes:?}"
    );
    let out = Command::new(BIN)
        .args(["audit", "scan", "--env", "nope", "--root"])
        .arg(root)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no [env.nope] section"));
    let out = Command::new(BIN)
        .args(["audit", "scan", "--root"])
        .arg(root.join("missing"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}
