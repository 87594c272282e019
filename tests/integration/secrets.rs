//! Secrets through a Worker that leaks them: the echo-secrets fixture writes every request
//! header into its console, its responses, KV keys and metadata; no file kvchaos writes and
//! nothing it prints may hold the secret in any encoding.

use std::path::{Path, PathBuf};
use std::process::Command;

use base64::Engine as _;

const BIN: &str = env!("CARGO_BIN_EXE_kvchaos");
const SECRET: &str = "s3cr3t/Tok3n+\"q'x=9f8e7d";

fn files_under(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).expect("read dir") {
        let p = e.expect("entry").path();
        if p.is_dir() {
            files_under(&p, out);
        } else {
            out.push(p);
        }
    }
}

/// The forms a Worker or kvchaos could write the secret in.
fn leaked_forms() -> Vec<(String, String)> {
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let json = serde_json::to_string(SECRET).expect("json");
    let url: String = url::form_urlencoded::byte_serialize(SECRET.as_bytes()).collect();
    vec![
        ("raw".into(), SECRET.into()),
        ("json-escaped".into(), json.trim_matches('"').to_owned()),
        ("percent".into(), url.replace('+', "%20")),
        (
            "percent (encodeURIComponent)".into(),
            "s3cr3t%2FTok3n%2B%22q'x%3D9f8e7d".into(),
        ),
        (
            "basic".into(),
            b64(&format!("user:{SECRET}"))[..20].to_owned(),
        ),
        ("token chars".into(), "Tok3n".into()),
    ]
}

#[test]
fn a_worker_echoing_secrets_leaves_none_in_any_file_or_output() {
    if !crate::support::node_available() {
        return;
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let worker = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/workers/echo-secrets");
    let scenario = tmp.path().join("secrets.toml");
    std::fs::write(
        &scenario,
        format!(
            r#"name = "secrets-through-a-worker"
[target]
worker = "{}"
[[phases]]
duration = "2s"
rate = 5
[[requests]]
name = "echo"
method = "POST"
path = "/echo"
headers = {{ authorization = "Bearer {{{{env.KVCHAOS_TEST_SECRET}}}}" }}
json = {{ key = "{{{{env.KVCHAOS_TEST_SECRET}}}}" }}
"#,
            worker.display()
        ),
    )
    .expect("write scenario");
    let out = tmp.path().join("reports");
    let o = Command::new(BIN)
        .args([
            "run",
            scenario.to_str().expect("utf-8"),
            "--no-tui",
            "--out",
        ])
        .arg(&out)
        .env("KVCHAOS_TEST_SECRET", SECRET)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("run kvchaos");
    let stderr = String::from_utf8_lossy(&o.stderr).into_owned();
    let stdout = String::from_utf8_lossy(&o.stdout).into_owned();
    assert_eq!(o.status.code(), Some(0), "{stdout}\n{stderr}");
    let mut files = Vec::new();
    files_under(&out, &mut files);
    let names: Vec<String> = files
        .iter()
        .filter_map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .collect();
    for must in ["worker.log", "mockkv.json", "history.jsonl", "summary.json"] {
        assert!(names.iter().any(|n| n == must), "{must} missing: {names:?}");
    }
    let log = files
        .iter()
        .find(|p| p.ends_with("worker.log"))
        .expect("worker.log");
    let log_text = std::fs::read_to_string(log).expect("worker.log");
    // The Worker did log the headers (masked), so the check below is not vacuous.
    assert!(log_text.matches("***").count() >= 10, "{log_text}");
    let mock = std::fs::read_to_string(
        files
            .iter()
            .find(|p| p.ends_with("mockkv.json"))
            .expect("mockkv"),
    )
    .expect("mockkv.json");
    assert!(mock.contains("***"), "the KV keys held the secret: {mock}");
    for (what, form) in leaked_forms() {
        for p in &files {
            let bytes = std::fs::read(p).expect("read");
            let text = String::from_utf8_lossy(&bytes);
            assert!(
                !text.contains(&form),
                "{what} form of the secret in {}",
                p.display()
            );
        }
        assert!(
            !stdout.contains(&form) && !stderr.contains(&form),
            "{what} form in output"
        );
    }
}
