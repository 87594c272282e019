//! `junit.xml`: the run's verdicts as JUnit XML, so CI systems (GitHub Actions test reporters,
//! GitLab, Jenkins, Buildkite) show them natively. A pure function of the [`Summary`].
//!
//! Three suites: `thresholds` (one test case per threshold), `checks` (one per check: FAIL is a
//! `<failure>` with the evidence, UNKNOWN is `<skipped>` with the reason) and `run` (one case:
//! an error when the run did not complete). Every string is XML-escaped.

use std::fmt::Write as _;

use super::human;
use super::markup::xml;
use super::model::{StopReason, Summary, ThresholdResult};
use crate::check::{CheckResult, Verdict};

/// File name of the JUnit report inside a report folder.
pub const JUNIT_FILE: &str = "junit.xml";

struct Case {
    name: String,
    /// `(type, message, body)` of a failure.
    failure: Option<(String, String, String)>,
    /// `(message, body)` of an error.
    error: Option<(String, String)>,
    skipped: Option<String>,
    out: String,
}

struct Suite {
    name: &'static str,
    cases: Vec<Case>,
}

/// Renders the whole report.
pub fn render(s: &Summary) -> String {
    let suites = [
        Suite {
            name: "thresholds",
            cases: s.thresholds.iter().map(threshold_case).collect(),
        },
        Suite {
            name: "checks",
            cases: s.checks.iter().map(check_case).collect(),
        },
        Suite {
            name: "run",
            cases: vec![run_case(s)],
        },
    ];
    let count = |f: fn(&Case) -> bool| -> usize {
        suites
            .iter()
            .map(|s| s.cases.iter().filter(|c| f(c)).count())
            .sum()
    };
    let tests = count(|_| true);
    let failures = count(|c| c.failure.is_some());
    let errors = count(|c| c.error.is_some());
    let skipped = count(|c| c.skipped.is_some());
    let time = format!("{:.3}", finite(s.duration_s));
    let mut out = String::new();
    let _ = writeln!(out, r#"<?xml version="1.0" encoding="UTF-8"?>"#);
    let _ = writeln!(
        out,
        r#"<testsuites name="kvchaos {}" tests="{tests}" failures="{failures}" errors="{errors}" skipped="{skipped}" time="{time}" timestamp="{}">"#,
        xml(&s.scenario.name),
        xml(&s.started_at)
    );
    let class_prefix = format!("kvchaos.{}", s.scenario.name);
    for suite in &suites {
        let n = |f: fn(&Case) -> bool| suite.cases.iter().filter(|c| f(c)).count();
        let _ = writeln!(
            out,
            r#"  <testsuite name="{}" tests="{}" failures="{}" errors="{}" skipped="{}" time="{time}" timestamp="{}">"#,
            suite.name,
            suite.cases.len(),
            n(|c| c.failure.is_some()),
            n(|c| c.error.is_some()),
            n(|c| c.skipped.is_some()),
            xml(&s.started_at)
        );
        if suite.name == "run" {
            run_properties(&mut out, s);
        }
        for c in &suite.cases {
            write_case(&mut out, &class_prefix, suite.name, c);
        }
        let _ = writeln!(out, "  </testsuite>");
    }
    let _ = writeln!(out, "</testsuites>");
    out
}

/// The run's facts as `<properties>` of the `run` suite.
fn run_properties(out: &mut String, s: &Summary) {
    let _ = writeln!(out, "    <properties>");
    for (k, v) in [
        ("scenario", s.scenario.name.as_str()),
        ("scenario_file", s.scenario.file.as_str()),
        ("seed", &s.scenario.seed.to_string()),
        ("target", s.target.url.as_str()),
        ("target_kind", s.target.kind.as_str()),
        ("kvchaos_version", s.kvchaos_version.as_str()),
    ] {
        let _ = writeln!(out, r#"      <property name="{k}" value="{}"/>"#, xml(v));
    }
    let _ = writeln!(out, "    </properties>");
}

/// One `<testcase>` with its failure, error, skip and output.
fn write_case(out: &mut String, class_prefix: &str, suite: &str, c: &Case) {
    let _ = write!(
        out,
        r#"    <testcase classname="{}.{}" name="{}" time="0""#,
        xml(class_prefix),
        suite,
        xml(&c.name)
    );
    let has_body =
        c.failure.is_some() || c.error.is_some() || c.skipped.is_some() || !c.out.is_empty();
    if !has_body {
        let _ = writeln!(out, "/>");
        return;
    }
    let _ = writeln!(out, ">");
    if let Some((kind, message, body)) = &c.failure {
        let _ = writeln!(
            out,
            r#"      <failure type="{}" message="{}">{}</failure>"#,
            xml(kind),
            xml(message),
            xml_text(body)
        );
    }
    if let Some((message, body)) = &c.error {
        let _ = writeln!(
            out,
            r#"      <error type="run" message="{}">{}</error>"#,
            xml(message),
            xml_text(body)
        );
    }
    if let Some(message) = &c.skipped {
        let _ = writeln!(out, r#"      <skipped message="{}"/>"#, xml(message));
    }
    if !c.out.is_empty() {
        let _ = writeln!(out, "      <system-out>{}</system-out>", xml_text(&c.out));
    }
    let _ = writeln!(out, "    </testcase>");
}

fn threshold_case(t: &ThresholdResult) -> Case {
    let observed = human::observed(t.observed, &t.unit);
    let limit = human::observed(Some(t.limit), &t.unit);
    let abort = if t.abort { " (abort threshold)" } else { "" };
    let detail = format!(
        "scope: {}\nexpression: {}{abort}\nobserved: {observed}\nlimit: {limit}",
        t.scope,
        t.label()
    );
    Case {
        name: format!("{}: {}", t.scope, t.label()),
        failure: (!t.passed).then(|| {
            let message = match t.observed {
                None => format!("{} {}: no data", t.scope, t.label()),
                Some(_) => format!("{} {}: observed {observed}", t.scope, t.label()),
            };
            ("threshold".to_owned(), message, detail.clone())
        }),
        error: None,
        skipped: None,
        out: if t.passed { detail } else { String::new() },
    }
}

fn check_case(c: &CheckResult) -> Case {
    let mut body = String::new();
    for e in &c.evidence {
        let _ = writeln!(body, "{e}");
    }
    if !c.counts.is_empty() {
        let counts: Vec<String> = c.counts.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let _ = write!(body, "counts: {}", counts.join(" "));
    }
    let body = body.trim_end().to_owned();
    let kind = c
        .reason
        .split([' ', ',', ':'])
        .next()
        .filter(|w| !w.is_empty())
        .unwrap_or("check");
    match c.verdict {
        Verdict::Fail => Case {
            name: c.name.clone(),
            failure: Some((kind.to_owned(), c.reason.clone(), body)),
            error: None,
            skipped: None,
            out: String::new(),
        },
        Verdict::Unknown => Case {
            name: c.name.clone(),
            failure: None,
            error: None,
            skipped: Some(format!("UNKNOWN: {}", c.reason)),
            out: body,
        },
        Verdict::Pass => Case {
            name: c.name.clone(),
            failure: None,
            error: None,
            skipped: None,
            out: format!("{}\n{body}", c.reason).trim_end().to_owned(),
        },
    }
}

fn run_case(s: &Summary) -> Case {
    let text = human::stop_text(&s.stop);
    let facts = format!(
        "{text}\nran {} of {} planned; {} requests completed, {} errors ({}), {} dropped, {} unfinished",
        human::run_secs(s.duration_s),
        human::run_secs(s.planned_duration_s),
        human::count(s.overall.completed),
        human::count(s.overall.errors),
        human::percent(s.overall.error_rate),
        human::count(s.overall.dropped),
        human::count(s.stop.unfinished),
    );
    let error = match s.stop.reason {
        StopReason::Completed => None,
        // An abort threshold's own test case fails; the run case says why the run is short.
        StopReason::Aborted
        | StopReason::Interrupted
        | StopReason::TargetUnreachable
        | StopReason::TargetFailed => Some((text, facts.clone())),
    };
    Case {
        name: "run completed".to_owned(),
        failure: None,
        out: if error.is_none() {
            facts
        } else {
            String::new()
        },
        error,
        skipped: None,
    }
}

fn finite(v: f64) -> f64 {
    if v.is_finite() { v } else { 0.0 }
}

/// Escapes element content, keeping line breaks (CI systems show them as written).
fn xml_text(s: &str) -> String {
    xml(s).replace("&#10;", "\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::model::fixture;

    /// The started time is replaced, so the snapshot holds only what the writer decides.
    fn redacted(s: &Summary) -> String {
        render(s).replace(&xml(&s.started_at), "[started_at]")
    }

    #[test]
    fn fixture_junit() {
        insta::assert_snapshot!(redacted(&fixture()));
    }

    #[test]
    fn parses_and_counts_match() {
        let xml_text = render(&fixture());
        let mut reader = quick_xml::Reader::from_str(&xml_text);
        let (mut cases, mut failures, mut errors) = (0, 0, 0);
        loop {
            match reader.read_event() {
                Ok(quick_xml::events::Event::Eof) => break,
                Ok(quick_xml::events::Event::Start(e) | quick_xml::events::Event::Empty(e)) => {
                    match e.name().as_ref() {
                        b"testcase" => cases += 1,
                        b"failure" => failures += 1,
                        b"error" => errors += 1,
                        _ => {}
                    }
                }
                Ok(_) => {}
                Err(e) => panic!("junit.xml does not parse: {e}"),
            }
        }
        // 4 thresholds + 1 check + the run case; 1 threshold and the cron check fail; the run
        // was interrupted.
        assert_eq!((cases, failures, errors), (6, 2, 1));
        assert!(xml_text.contains(
            r#"<testsuites name="kvchaos lock-under-kv-faults" tests="6" failures="2" errors="1" skipped="0""#
        ));
    }

    #[test]
    fn unknown_check_is_skipped_and_completed_run_passes() {
        let mut s = fixture();
        s.checks[0].verdict = Verdict::Unknown;
        s.checks[0].reason = "the run never healed".to_owned();
        s.stop.reason = StopReason::Completed;
        s.stop.detail = None;
        let x = render(&s);
        assert!(
            x.contains(r#"<skipped message="UNKNOWN: the run never healed"/>"#),
            "{x}"
        );
        assert!(!x.contains("<error"), "{x}");
        assert!(x.contains(r#"skipped="1""#), "{x}");
    }

    #[test]
    fn hostile_text_is_escaped() {
        let mut s = fixture();
        s.checks[0].evidence = vec!["<script>&\"x\"\u{1}</script>".to_owned()];
        let x = render(&s);
        assert!(
            x.contains("&lt;script&gt;&amp;&quot;x&quot;\u{fffd}&lt;/script&gt;"),
            "{x}"
        );
    }
}
