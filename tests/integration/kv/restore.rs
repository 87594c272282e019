//! Restore through R2, sensitive dumps, verify against D1 and a second dump.

use std::path::Path;

use kvchaos::exit::Exit;
use kvchaos::kv::api::Namespace;
use serde_json::{Value, json};

use super::*;

#[tokio::test]
async fn restore_round_trips_through_r2_with_binary_values_and_metadata() {
    let m = mock(Limits::PAID).await;
    let mut pairs = text_pairs("master:", 30);
    pairs.push(
        json!({"key": "master:bin", "value": "AAEC/w==", "base64": true, "metadata": {"t": "bin"}}),
    );
    m.seed("src", pairs).await;
    m.kv.create_namespace("dst");
    let env = memory_env();
    let r = kv(
        &argv(
            &[
                "dump",
                "--prefix",
                "master:",
                "--to",
                "r2://backups/kv/",
                "--actor",
                "me",
            ],
            m.ns_args("src"),
        ),
        &env,
    )
    .await;
    assert_eq!(r.exit, Exit::Pass, "{}", r.err);
    let url = r
        .out
        .split(" and ")
        .nth(1)
        .and_then(|s| s.split(' ').next())
        .expect("the R2 location is printed")
        .to_owned();
    assert!(
        url.starts_with("r2://backups/kv/master:/") && url.ends_with("Z.ndjson"),
        "{url}"
    );
    let r = kv(
        &argv(&["restore", "--from", &url, "--dry-run"], m.ns_args("dst")),
        &env,
    )
    .await;
    assert!(
        r.out.contains("31 pairs to write in 1 bulk writes"),
        "{}",
        r.out
    );
    assert_eq!(
        m.kv.peek("dst", "master:00001"),
        None,
        "a dry run writes nothing"
    );
    let dir = tempfile::tempdir().unwrap();
    let audit = path(&dir.path().join("audit.jsonl"));
    let r = kv(
        &argv(
            &["restore", "--from", &url, "--audit-log", &audit],
            m.ns_args("dst"),
        ),
        &env,
    )
    .await;
    assert_eq!(r.exit, Exit::Pass, "{}", r.err);
    assert_eq!(
        m.kv.peek("dst", "master:bin").as_deref(),
        Some(&[0u8, 1, 2, 255][..])
    );
    assert_eq!(
        m.kv.peek("dst", "master:00029").as_deref(),
        Some(&b"v29"[..])
    );
    let mut c = m.client().await;
    let (keys, _) = Namespace::new(&mut c, "acc", "dst")
        .list("master:bin", None)
        .await
        .unwrap();
    assert_eq!(keys[0].metadata, Some(json!({"t": "bin"})));
    let r = kv(
        &argv(
            &["restore", "--from", "r2://backups/none.ndjson"],
            m.ns_args("dst"),
        ),
        &env,
    )
    .await;
    assert_eq!(r.exit, Exit::Usage, "{}", r.err);
}

#[tokio::test]
async fn a_sensitive_dump_is_encrypted_or_refused_inside_a_git_work_tree() {
    let m = mock(Limits::PAID).await;
    m.seed(
        "NS",
        vec![json!({"key": "settings:smtp", "value": "hunter2-password"})],
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("kv.toml");
    std::fs::write(&config, "sensitive_prefixes = [\"settings:\"]\n").unwrap();
    if kvchaos::local::find_on_path("git").is_some() {
        let repo = dir.path().join("repo");
        std::fs::create_dir(&repo).unwrap();
        let ok = std::process::Command::new("git")
            .arg("init")
            .arg("-q")
            .arg(&repo)
            .status()
            .unwrap();
        assert!(ok.success());
        let out = repo.join("settings.ndjson");
        let r = kv(
            &argv(
                &[
                    "dump",
                    "--prefix",
                    "settings:",
                    "-o",
                    &path(&out),
                    "--config",
                    &path(&config),
                    "--actor",
                    "me",
                ],
                m.ns_args("NS"),
            ),
            &memory_env(),
        )
        .await;
        assert_eq!(r.exit, Exit::Fail, "{}", r.out);
        assert!(
            r.err.contains("is sensitive") && r.err.contains("inside a git work tree"),
            "{}",
            r.err
        );
        assert!(!out.exists());
    }
    let id = age::x25519::Identity::generate();
    let id_file = dir.path().join("id.txt");
    use age::secrecy::ExposeSecret;
    std::fs::write(&id_file, id.to_string().expose_secret()).unwrap();
    let out = dir.path().join("settings.ndjson");
    let r = kv(
        &argv(
            &[
                "dump",
                "--prefix",
                "settings:",
                "--sensitive",
                "-o",
                &path(&out),
                "--recipient",
                &id.to_public().to_string(),
                "--actor",
                "me",
            ],
            m.ns_args("NS"),
        ),
        &memory_env(),
    )
    .await;
    assert_eq!(r.exit, Exit::Pass, "{}", r.err);
    let stored = std::fs::read(&out).unwrap();
    assert!(stored.starts_with(b"age-encryption.org/v1"));
    assert!(!String::from_utf8_lossy(&stored).contains("hunter2"));
    assert!(manifest(&out).encrypted);
    let v = |extra: &[&str]| {
        argv(
            &["verify", &path(&out), "--against", &path(&out)],
            extra.iter().map(|s| (*s).to_owned()).collect(),
        )
    };
    let r = kv(&v(&[]), &memory_env()).await;
    assert_eq!(r.exit, Exit::Usage);
    assert!(r.err.contains("is encrypted: pass --identity"), "{}", r.err);
    let r = kv(&v(&["--identity", &path(&id_file)]), &memory_env()).await;
    assert_eq!(r.exit, Exit::Pass, "{}", r.err);
    assert!(
        !r.out.contains("hunter2") && !r.err.contains("hunter2"),
        "values are never printed"
    );
}

#[tokio::test]
async fn verify_against_d1_and_a_second_dump_reports_differences_per_prefix() {
    use wiremock::matchers::{body_json, method, path as wpath};
    let m = mock(Limits::PAID).await;
    let mut pairs = text_pairs("clinic:", 3);
    pairs.extend(text_pairs("master:", 2));
    m.seed("NS", pairs).await;
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a.ndjson"), dir.path().join("b.ndjson"));
    assert_eq!(
        kv(
            &argv(&["dump", "-o", &path(&a), "--actor", "me"], m.ns_args("NS")),
            &memory_env()
        )
        .await
        .exit,
        Exit::Pass
    );
    m.delete("NS", &["clinic:00002"]).await;
    assert_eq!(
        kv(
            &argv(&["dump", "-o", &path(&b), "--actor", "me"], m.ns_args("NS")),
            &memory_env()
        )
        .await
        .exit,
        Exit::Pass
    );
    let r = kv(
        &argv(&["verify", &path(&a), "--against", &path(&b)], vec![]),
        &memory_env(),
    )
    .await;
    assert_eq!(r.exit, Exit::Fail, "{}", r.out);
    assert!(
        r.out.contains("only in the dump: clinic:00002"),
        "{}",
        r.out
    );
    let rec: Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("a.ndjson.verify.json")).unwrap())
            .unwrap();
    assert_eq!(rec["equal"], false);

    let d1 = wiremock::MockServer::start().await;
    let rows = json!([{"key": "clinic:00000"}, {"key": "clinic:00001"}, {"key": "master:00000"}, {"key": "master:00001"}]);
    wiremock::Mock::given(method("POST"))
        .and(wpath("/client/v4/accounts/acc/d1/database/db1/query"))
        .and(body_json(json!({"sql": "SELECT key FROM legacy"})))
        .respond_with(wiremock::ResponseTemplate::new(200).set_body_json(
            json!({"success": true, "errors": [], "result": [{"results": rows, "success": true}]}),
        ))
        .mount(&d1)
        .await;
    let d1_args = |dump: &Path| {
        argv(
            &[
                "verify",
                &path(dump),
                "--against",
                "d1://db1",
                "--d1-query",
                "SELECT key FROM legacy",
                "--account-id",
                "acc",
                "--api-base",
                &format!("{}/client/v4", d1.uri()),
            ],
            vec![],
        )
    };
    let r = kv(&d1_args(&b), &memory_env()).await;
    assert_eq!(r.exit, Exit::Pass, "{}{}", r.out, r.err);
    assert!(
        r.out.contains("equal: the same keys on both sides"),
        "{}",
        r.out
    );
    let r = kv(&d1_args(&a), &memory_env()).await;
    assert_eq!(r.exit, Exit::Fail);
    let clinic = r
        .out
        .lines()
        .find(|l| l.starts_with("clinic:"))
        .unwrap_or_default()
        .to_owned();
    assert_eq!(
        clinic.split_whitespace().collect::<Vec<_>>(),
        ["clinic:", "3", "2", "1", "0"],
        "{}",
        r.out
    );
    let r = kv(
        &argv(&["verify", &path(&a), "--against", "d1://db1"], vec![]),
        &memory_env(),
    )
    .await;
    assert_eq!(r.exit, Exit::Usage, "{}", r.err);
    let db = sqlite_with(dir.path(), &[]);
    let r = kv(
        &argv(&["verify", &path(&a), "--against", &db], vec![]),
        &memory_env(),
    )
    .await;
    assert_eq!(r.exit, Exit::Usage);
    assert!(r.err.contains("is a SQLite file: add --query"), "{}", r.err);
}
