//! Replay phase validation: options into a plan, the capture measured, mistakes explained.

use std::time::Duration;

use crate::replay::Format;
use crate::replay::plan::Loops;
use crate::scenario::plan::{Load, Plan};
use crate::scenario::{ScenarioErrors, parse_str};

fn env(name: &str) -> Option<String> {
    (name == "TOKEN").then(|| "s3cr3t".to_owned())
}

struct Dir(std::path::PathBuf);

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A folder with a scenario `t.toml` (a URL target and `phases`) and a corpus `c.ndjson`.
fn setup(tag: &str, corpus: &str) -> Dir {
    let d = std::env::temp_dir().join(format!("kvchaos-replay-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&d).expect("dir");
    std::fs::write(d.join("c.ndjson"), corpus).expect("corpus");
    Dir(d)
}

fn parse(dir: &Dir, phases: &str) -> Result<Plan, ScenarioErrors> {
    let text = format!("name = \"r\"\nseed = 3\n[target]\nurl = \"http://127.0.0.1:9\"\n{phases}");
    parse_str(&text, &dir.0.join("t.toml"), &env)
}

fn fetch(t: u64, method: &str, path: &str) -> String {
    format!(
        "{{\"t_ms\":{t},\"kind\":\"fetch\",\"method\":\"{method}\",\"url\":\"https://x.example{path}\",\"outcome\":\"ok\"}}\n"
    )
}

#[test]
fn a_replay_phase_becomes_a_measured_plan() {
    let corpus = [
        fetch(0, "GET", "/items/1"),
        fetch(1000, "GET", "/items/2"),
        "{\"t_ms\":2000,\"kind\":\"cron\",\"cron\":\"*/5 * * * *\",\"scheduled_time\":5}\n".into(),
        fetch(4000, "PUT", "/items/3"),
        fetch(600_000, "GET", "/health"),
    ]
    .concat();
    let d = setup("plan", &corpus);
    let p = parse(&d, "[[phases]]\nreplay = \"c.ndjson\"\nspeed = 2\nmax_gap = \"1s\"\nloop = 2\nset_headers = { authorization = \"Bearer {{env.TOKEN}}\" }\nkeep_headers = [\"Cookie\"]\n")
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        p.requests.is_empty(),
        "a replay-only scenario needs no [[requests]]"
    );
    let Load::Replay(r) = &p.phases[0].load else {
        panic!("not a replay phase")
    };
    assert_eq!(r.format, Format::Ndjson, "detected");
    assert_eq!(r.loops, Loops::Times(2));
    assert_eq!(
        r.routes,
        vec!["GET /items/:id", "PUT /items/:id", "GET /health"]
    );
    assert_eq!((r.fetches, r.others), (4, [1, 0, 0]));
    // 0, 0.5, 1.0, 2.0, then the 298 s gap capped at 1 s: 3.0 s a pass.
    assert_eq!(r.pass, Duration::from_secs(3));
    assert_eq!(p.phases[0].duration, Duration::from_millis(6250));
    assert_eq!(r.keep_headers, vec!["cookie"]);
    assert!(!p.redactor.redact("Bearer s3cr3t").contains("s3cr3t"));
    assert_eq!(crate::replay::recorder_names(&p), r.routes);
}

#[test]
fn filters_and_the_seeded_sample_choose_events_reproducibly() {
    let corpus: String = (0..1000)
        .map(|i| {
            fetch(
                i,
                if i % 2 == 0 { "GET" } else { "POST" },
                &format!("/a/{i}"),
            )
        })
        .collect();
    let d = setup("sample", &corpus);
    let count = |extra: &str| {
        let p = parse(&d, &format!("[[phases]]\nreplay = \"c.ndjson\"\n{extra}"))
            .unwrap_or_else(|e| panic!("{e}"));
        let Load::Replay(r) = &p.phases[0].load else {
            panic!("replay")
        };
        r.fetches
    };
    assert_eq!(count("only = { method = \"post\" }"), 500);
    assert_eq!(count("skip = { path = \"^/a/1\" }"), 1000 - 111);
    assert_eq!(count("only = { outcome = [\"exception\"] }"), 0);
    let s = count("sample = 0.1");
    assert!((60..140).contains(&s), "{s} of 1000 sampled at 0.1");
    assert_eq!(s, count("sample = 0.1"), "the seed decides");
}

#[test]
fn rewrites_apply_before_filters_and_routes_longest_prefix_first() {
    let corpus = [
        fetch(0, "GET", "/api/v1/items/1"),
        fetch(1, "GET", "/api/v2/items/2"),
        fetch(2, "GET", "/health"),
    ]
    .concat();
    let d = setup("rewrite", &corpus);
    let p = parse(&d, "[[phases]]\nreplay = \"c.ndjson\"\nrewrite = { \"/api/\" = \"/\", \"/api/v1/\" = \"/v1/\" }\nonly = { path = \"^/v\" }\n")
        .unwrap_or_else(|e| panic!("{e}"));
    let Load::Replay(r) = &p.phases[0].load else {
        panic!("not a replay phase")
    };
    assert_eq!(r.rewrite[0].0, "/api/v1/", "longest prefix first");
    // The filter sees the rewritten paths: both /api/ requests are kept, /health is not.
    assert_eq!(r.fetches, 2);
    assert_eq!(r.routes, vec!["GET /v1/items/:id", "GET /v2/items/:id"]);
}

#[test]
fn replay_mistakes_name_the_field_and_the_fix() {
    let d = setup("errors", &fetch(0, "GET", "/"));
    let err = |phases: &str| match parse(&d, phases) {
        Ok(_) => panic!("expected an error for {phases}"),
        Err(e) => e.to_string(),
    };
    let cases = [
        (
            "replay = \"c.ndjson\"\nspeed = 0",
            "phases[1].speed: invalid speed \"0\"",
        ),
        (
            "replay = \"c.ndjson\"\nformat = \"pcap\"",
            "unknown capture format \"pcap\"",
        ),
        (
            "replay = \"c.ndjson\"\nloop = true",
            "add duration = \"10m\"",
        ),
        (
            "replay = \"c.ndjson\"\nrate = 5",
            "rate cannot be used in a replay phase",
        ),
        (
            "replay = \"c.ndjson\"\nonly = { path = \"(\" }",
            "phases[1].only.path: invalid path regex \"(\"",
        ),
        ("replay = \"c.ndjson\"\nsample = 2", "invalid sample \"2\""),
        (
            "replay = \"c.ndjson\"\ngroup = [\"items\"]",
            "starts with '/'",
        ),
        (
            "replay = \"c.ndjson\"\ncrons = \"all\"",
            "the only value is \"recorded\"",
        ),
        (
            "replay = \"c.ndjson\"\nrewrite = { \"api/\" = \"/v1/\" }",
            "phases[1].rewrite.\"api/\": invalid rewrite prefix \"api/\": a path prefix starts with \"/\"",
        ),
        (
            "replay = \"c.ndjson\"\nrewrite = { \"/api/\" = \"v1\" }",
            "invalid rewrite replacement \"v1\"",
        ),
        (
            "duration = \"1s\"\nrate = 1\nrewrite = { \"/a\" = \"/b\" }",
            "rewrite applies only to replay phases",
        ),
        ("replay = \"missing.json\"", "phases[1].replay: "),
        (
            "duration = \"1s\"\nrate = 1\nspeed = 2",
            "speed applies only to replay phases",
        ),
    ];
    for (phase, want) in cases {
        let e = err(&format!(
            "[[phases]]\n{phase}\n[[requests]]\nname = \"q\"\npath = \"/\"\n"
        ));
        assert!(e.contains(want), "{phase}: {e}");
    }
    std::fs::write(d.0.join("bad.ndjson"), "{\"t_ms\":0,\"kind\":\"fetch\",\"method\":\"GET\",\"url\":\"https://x/\"}\n{\"t_ms\": oops}\n").expect("write");
    let e = err("[[phases]]\nreplay = \"bad.ndjson\"\n");
    assert!(
        e.contains("bad.ndjson: line 2, byte 60: not a corpus record"),
        "{e}"
    );
    assert!(e.contains("kvchaos replay import"), "{e}");
}

#[test]
fn recorded_crons_are_due_at_their_scaled_times_with_their_recorded_scheduled_time() {
    let cron = |t: u64, expr: &str, at: u64| {
        format!("{{\"t_ms\":{t},\"kind\":\"cron\",\"cron\":\"{expr}\",\"scheduled_time\":{at}}}\n")
    };
    let corpus = [
        fetch(0, "GET", "/items/1"),
        cron(1000, "*/5 * * * *", 1_700_000_300_000),
        "{\"t_ms\":2000,\"kind\":\"alarm\",\"scheduled_time\":1700000301000}\n".into(),
        cron(3000, "0 * * * *", 1_700_000_600_000),
    ]
    .concat();
    let d = setup("crons", &corpus);
    let p = parse(&d, "[[phases]]\nduration = \"1s\"\npause = true\n[[phases]]\nreplay = \"c.ndjson\"\nspeed = 2\nloop = 2\ncrons = \"recorded\"\n[[requests]]\nname = \"q\"\npath = \"/\"\n")
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(crate::replay::crons::recorded(&p));
    assert!(
        !crate::replay::crons::fired(&p),
        "a URL target counts them only"
    );
    let got: Vec<(u128, String, u64)> = crate::replay::crons::ticks(&p, 100)
        .into_iter()
        .map(|(at, t)| (at.as_millis(), t.cron, t.scheduled_ms))
        .collect();
    // Pass 1 after the 1 s pause: offsets ÷ 2. Pass 2 starts at the pass length (1.5 s) and
    // moves scheduledTime on by the capture's recorded length (3 s).
    let want = [
        (1500, "*/5 * * * *", 1_700_000_300_000),
        (2500, "0 * * * *", 1_700_000_600_000),
        (3000, "*/5 * * * *", 1_700_000_303_000),
        (4000, "0 * * * *", 1_700_000_603_000),
    ];
    let want: Vec<(u128, String, u64)> = want
        .iter()
        .map(|(a, c, s)| (*a, (*c).to_owned(), *s))
        .collect();
    assert_eq!(got, want);
    assert_eq!(crate::replay::crons::ticks(&p, 3).len(), 3, "bounded");
    let p = parse(&d, "[[phases]]\nreplay = \"c.ndjson\"\n").unwrap_or_else(|e| panic!("{e}"));
    assert!(!crate::replay::crons::recorded(&p));
    assert!(crate::replay::crons::ticks(&p, 100).is_empty());
}
