//! Watch files: a full valid file, wrangler crons, and each kind of mistake with its
//! location and fix.

use std::path::Path;

use super::*;

fn env(name: &str) -> Option<String> {
    match name {
        "API_TOKEN" => Some("s3cret-token".to_owned()),
        "SLACK_WEBHOOK_URL" => Some("https://hooks.slack.example/services/T/B/XYZ".to_owned()),
        "DISCORD_WEBHOOK_URL" => Some("https://discord.example/api/webhooks/1/abc".to_owned()),
        "NOT_A_URL" => Some("hello".to_owned()),
        _ => None,
    }
}

fn parse(text: &str) -> Result<WatchPlan, ConfigError> {
    parse_str(text, Path::new("WATCH.toml"), &env)
}

fn err(text: &str) -> String {
    match parse(text) {
        Ok(_) => panic!("expected an error for:\n{text}"),
        Err(e) => e.to_string(),
    }
}

const CHECK: &str = "[[check]]\nname = \"c\"\nkind = \"cron\"\nurl = \"http://127.0.0.1:8787/cron/status\"\npointer = \"/last_run\"\ncrons = [\"* * * * *\"]\n";

#[test]
fn a_full_file_validates_with_secrets_resolved_and_registered() {
    let text = r#"
interval = "30s"
timeout = "5s"
failures = 2
allow_hosts = ["*.workers.example"]

[[check]]
name = "cron"
kind = "cron"
url = "https://cp.workers.example/cron/status?token=${API_TOKEN}"
headers = { authorization = "Bearer {{env.API_TOKEN}}" }
pointer = "/last_run"
wrangler = "mock/workers/kv-control-plane"
grace = "2m"

[[check]]
name = "input"
kind = "counter"
url = "http://127.0.0.1:8787/webhook/count"
pointer = "/count"
min_increase = 5
window = "15m"
failures = 1

[[check]]
name = "errors"
kind = "error_rate"
url = "http://127.0.0.1:8787/health"
max_error_rate = "2.5%"
window = "10m"

[[notify]]
kind = "slack"
url_env = "SLACK_WEBHOOK_URL"

[[notify]]
kind = "discord"
url_env = "DISCORD_WEBHOOK_URL"

[[mute]]
days = ["sat", "sunday"]
from = "00:00"
to = "24:00"
"#;
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("WATCH.toml");
    let p = parse_str(text, &path, &env).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(p.interval, Duration::from_secs(30));
    assert_eq!(p.checks.len(), 3);
    let cron = &p.checks[0];
    assert_eq!(
        cron.url,
        "https://cp.workers.example/cron/status?token=s3cret-token"
    );
    assert_eq!(
        cron.headers,
        vec![("authorization".to_owned(), "Bearer s3cret-token".to_owned())]
    );
    assert_eq!(cron.failures, 2);
    match &cron.kind {
        CheckKind::Cron {
            crons,
            grace,
            alert_at,
            ..
        } => {
            assert_eq!(
                crons.iter().map(|c| c.0.as_str()).collect::<Vec<_>>(),
                vec!["*/1 * * * *"]
            );
            assert_eq!(*grace, Duration::from_secs(120));
            assert_eq!(*alert_at, Severity::Late);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(p.checks[1].failures, 1);
    assert!(
        matches!(p.checks[2].kind, CheckKind::ErrorRate { source: ErrorSource::Probes, max_rate, .. } if (max_rate - 0.025).abs() < 1e-9)
    );
    assert_eq!(p.notifiers[1].kind, NotifierKind::Discord);
    assert_eq!(
        p.mutes[0],
        MuteWindow {
            days: 0b110_0000,
            from_min: 0,
            to_min: 1440
        }
    );
    assert_eq!(
        p.redactor
            .redact("x s3cret-token https://hooks.slack.example/services/T/B/XYZ"),
        "x *** ***"
    );
}

#[test]
fn webhook_urls_come_only_from_the_environment() {
    let e = err(&format!(
        "{CHECK}[[notify]]\nkind = \"slack\"\nurl = \"https://hooks.slack.com/x\"\n"
    ));
    assert!(
        e.starts_with("WATCH.toml:9:7: notify[1].url: webhook URLs are secrets"),
        "{e}"
    );
    assert!(e.contains("url_env = \"SLACK_WEBHOOK_URL\""), "{e}");
    let e = err(&format!(
        "{CHECK}[[notify]]\nkind = \"slack\"\nurl_env = \"NOPE\"\n"
    ));
    assert!(
        e.contains("environment variable \"NOPE\" is not set"),
        "{e}"
    );
    let e = err(&format!(
        "{CHECK}[[notify]]\nkind = \"slack\"\nurl_env = \"NOT_A_URL\"\n"
    ));
    assert!(
        e.contains("does not hold an http(s) URL") && !e.contains("hello"),
        "{e}"
    );
    let e = err(&format!(
        "{CHECK}[[notify]]\nkind = \"teams\"\nurl_env = \"SLACK_WEBHOOK_URL\"\n"
    ));
    assert!(e.contains("unknown notifier kind \"teams\""), "{e}");
}

#[test]
fn probe_hosts_need_the_allowlist_and_secrets_must_be_set() {
    let e = err(&CHECK.replace("http://127.0.0.1:8787", "https://prod.example.com"));
    assert!(
        e.starts_with("WATCH.toml:4:7: check[1].url: probe host \"prod.example.com\""),
        "{e}"
    );
    assert!(e.contains("allow_hosts = [\"prod.example.com\"]"), "{e}");
    let e = err(&CHECK.replace("/cron/status", "/cron/status?t=${MISSING}"));
    assert!(
        e.contains("environment variable \"MISSING\" is not set"),
        "{e}"
    );
    let e = err(&CHECK.replace("/cron/status", "/{{seq}}"));
    assert!(e.contains("unknown placeholder \"{{seq}}\""), "{e}");
    let e = err(&CHECK.replace("/cron/status", "/${API_TOKEN"));
    assert!(e.contains("unclosed placeholder"), "{e}");
}

#[test]
fn shape_errors_point_at_the_field_with_a_fix() {
    let e = err(&format!("{CHECK}gracee = \"1m\"\n"));
    assert!(e.starts_with("WATCH.toml:7:1: "), "{e}");
    assert!(e.contains("unknown field \"gracee\""), "{e}");
    let e = err(&format!("{CHECK}grace = \"soon\"\n"));
    assert!(
        e.contains("check[1].grace: invalid duration \"soon\""),
        "{e}"
    );
    let e = err(&CHECK.replace("* * * * *", "0 * * * * *"));
    assert!(e.contains("Workers crons have 5 fields"), "{e}");
    let e = err(&CHECK.replace("* * * * *", "61 * * * *"));
    assert!(e.contains("invalid cron expression \"61 * * * *\""), "{e}");
    let e = err(&format!("{CHECK}window = \"5m\"\n"));
    assert!(
        e.contains("\"window\" does not apply to a \"cron\" check"),
        "{e}"
    );
    let e = err(&format!("{CHECK}{CHECK}"));
    assert!(e.contains("duplicate check name \"c\""), "{e}");
    let e = err(&format!("{CHECK}[[notify]]\nurl_env = \"X\"\n"));
    assert!(
        e.contains("notify[1]: missing field \"kind\": add it, e.g. kind = \"slack\""),
        "{e}"
    );
    let e = err("[[check]]\nname = \"c\"\nkind = \"cron\"\n");
    assert!(
        e.contains("missing field \"url\": add it, e.g. url = \"https://"),
        "{e}"
    );
    let e = err("interval = \"1m\"\n");
    assert!(e.contains("no [[check]]"), "{e}");
    let e = err(&CHECK.replace("kind = \"cron\"", "kind = \"ping\""));
    assert!(e.contains("unknown check kind \"ping\""), "{e}");
    let e = err(&format!("failures = 0\n{CHECK}"));
    assert!(
        e.starts_with("WATCH.toml:1:12: failures: invalid count \"0\""),
        "{e}"
    );
    let e = err(&format!(
        "{CHECK}[[mute]]\nfrom = \"25:00\"\nto = \"01:00\"\n"
    ));
    assert!(e.contains("invalid time \"25:00\""), "{e}");
    let e = err(&format!(
        "{CHECK}[[mute]]\ndays = [\"caturday\"]\nfrom = \"01:00\"\nto = \"02:00\"\n"
    ));
    assert!(e.contains("invalid day \"caturday\""), "{e}");
}

#[test]
fn crons_come_from_the_wrangler_config_of_the_named_environment() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("wrangler.toml"),
        "name = \"w\"\nmain = \"i.js\"\n[triggers]\ncrons = [\"*/5 * * * *\"]\n[env.production.triggers]\ncrons = [\"0 * * * *\", \"30 2 * * 1\"]\n[env.staging]\n",
    )
    .expect("write");
    let watch = dir.path().join("WATCH.toml");
    let text = |env: &str| {
        CHECK.replace(
            "crons = [\"* * * * *\"]",
            &format!("wrangler = \".\"\n{env}"),
        )
    };
    let crons = |env: &str| match parse_str(&text(env), &watch, &|_| None)
        .map(|p| p.checks[0].kind.clone())
    {
        Ok(CheckKind::Cron { crons, .. }) => crons.into_iter().map(|c| c.0).collect::<Vec<_>>(),
        other => panic!("{other:?}"),
    };
    assert_eq!(crons(""), vec!["*/5 * * * *"]);
    assert_eq!(
        crons("env = \"production\""),
        vec!["0 * * * *", "30 2 * * 1"]
    );
    assert_eq!(crons("env = \"staging\""), vec!["*/5 * * * *"], "inherited");
    let e = parse_str(&text("env = \"prod\""), &watch, &|_| None)
        .map(|_| ())
        .expect_err("no such env");
    assert!(e.to_string().contains("no [env.prod] section"), "{e}");
    let e = parse_str(
        &CHECK.replace("crons = [\"* * * * *\"]", "wrangler = \"nowhere\""),
        &watch,
        &|_| None,
    )
    .map(|_| ())
    .expect_err("no config");
    assert!(e.to_string().contains("relative to the watch file"), "{e}");
}

#[test]
fn the_shipped_example_validates_and_the_manual_carries_the_workflow_verbatim() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("wrangler.toml"),
        "name = \"cp\"\nmain = \"index.js\"\n[env.production.triggers]\ncrons = [\"*/5 * * * *\"]\n",
    )
    .expect("write");
    let example = include_str!("../../../deploy/github/WATCH.toml");
    let p = parse_str(example, &dir.path().join("WATCH.toml"), &|_| {
        Some("https://hooks.example/services/x".to_owned())
    })
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(p.checks.len(), 3);
    assert_eq!(p.notifiers.len(), 2);
    let manual = include_str!("../../../docs/watch.md");
    let workflow = include_str!("../../../deploy/github/watch.yml");
    assert!(
        manual.contains(&format!("```yaml\n{workflow}```")),
        "docs/watch.md must carry deploy/github/watch.yml verbatim"
    );
    for field in [
        "interval",
        "timeout",
        "failures",
        "allow_hosts",
        "headers",
        "pointer",
        "wrangler",
        "env",
        "crons",
        "grace",
        "alert_at",
        "min_increase",
        "window",
        "max_error_rate",
        "errors_pointer",
        "total_pointer",
        "min_samples",
        "url_env",
        "days",
        "from",
    ] {
        assert!(
            manual.contains(&format!("`{field}`")),
            "docs/watch.md does not document {field}"
        );
    }
}
