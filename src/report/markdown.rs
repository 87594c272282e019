//! `report.md`: the run as GitHub-flavoured Markdown, for a CI job summary or a PR comment.
//! A pure function of the [`Summary`]; writing the file is [`super::write_all`]'s job.
//!
//! Every string that came from the scenario or the target (names, messages, the stop detail)
//! is escaped, so a server's error text cannot break a table or inject markup.

use std::fmt::Write as _;

use super::human::{self, classes_seen};
use super::model::{Percentiles, PhaseInfo, RequestStats, StopReason, Summary};

/// Longest error message shown, in characters; the rest is cut with `…`.
const MAX_MESSAGE_CHARS: usize = 200;

/// Renders the whole report.
pub fn render(s: &Summary) -> String {
    let mut out = String::new();
    title(&mut out, s);
    warnings(&mut out, s);
    run_facts(&mut out, s);
    phases(&mut out, &s.phases);
    faults(&mut out, s);
    latency(&mut out, s);
    throughput(&mut out, s);
    thresholds(&mut out, s);
    checks(&mut out, s);
    errors(&mut out, s);
    super::answers::markdown(&mut out, &s.error_answers, text);
    resources(&mut out, s);
    files(&mut out);
    // One trailing newline, whatever the last section wrote.
    let trimmed = out.trim_end().len();
    out.truncate(trimmed);
    out.push('\n');
    out
}

// `fmt::Write` for `String` never fails, so the results of `writeln!` below are ignored.

fn title(out: &mut String, s: &Summary) {
    let _ = writeln!(out, "# kvchaos report: {}\n", text(&s.scenario.name));
    let v = human::verdict(s);
    let mut line = match v.word {
        Some(word) => format!("**{word}** · {}", v.thresholds),
        None => format!("**{}**", v.thresholds),
    };
    if s.stop.reason != StopReason::Completed {
        let _ = write!(
            line,
            " · stopped early: {}",
            text(&human::stop_text(&s.stop))
        );
    }
    let _ = writeln!(out, "{line}\n");
    if !s.scenario.description.trim().is_empty() {
        let _ = writeln!(out, "> {}\n", text(&s.scenario.description));
    }
}

fn run_facts(out: &mut String, s: &Summary) {
    let _ = writeln!(out, "## Run\n");
    let _ = writeln!(
        out,
        "- **Target:** {} ({})",
        code(&s.target.url),
        text(&s.target.kind)
    );
    let _ = writeln!(out, "- **Scenario file:** {}", code(&s.scenario.file));
    let _ = writeln!(
        out,
        "- **Started:** {} · **ended:** {}",
        text(&s.started_at),
        text(&s.ended_at)
    );
    let _ = writeln!(
        out,
        "- **Duration:** {} of {} planned",
        human::run_secs(s.duration_s),
        human::run_secs(s.planned_duration_s)
    );
    let seed = s.scenario.seed;
    let _ = writeln!(
        out,
        "- **Seed:** {seed} (`--seed {seed}` reproduces keys and the request mix)"
    );
    let _ = writeln!(out, "- **Stop:** {}", text(&human::stop_text(&s.stop)));
    let _ = writeln!(
        out,
        "- **Unfinished requests:** {} (in flight when the grace period ended; no latency recorded)",
        human::count(s.stop.unfinished)
    );
    let _ = writeln!(out, "- **kvchaos:** {}\n", text(&s.kvchaos_version));
}

fn phases(out: &mut String, phases: &[PhaseInfo]) {
    if phases.is_empty() {
        return;
    }
    let _ = writeln!(out, "## Phases\n");
    let _ = writeln!(
        out,
        "| # | phase | kind | duration | rate / VUs | max in flight | sent | dropped |"
    );
    let _ = writeln!(out, "|--:|---|---|--:|--:|--:|--:|--:|");
    for (i, p) in phases.iter().enumerate() {
        let load = match (p.vus, p.rate_from, p.rate_to) {
            (Some(vus), _, _) => format!("{vus} VUs"),
            (None, Some(a), Some(b)) if a != b => {
                format!("{} → {}/s", human::rate(a), human::rate(b))
            }
            (None, Some(r), _) | (None, None, Some(r)) => format!("{}/s", human::rate(r)),
            (None, None, None) => "—".to_owned(),
        };
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} | {} |",
            i + 1,
            p.name.as_deref().map_or_else(|| "—".to_owned(), text),
            text(&p.kind),
            human::run_secs(p.duration_s),
            load,
            p.max_in_flight.map_or_else(|| "—".to_owned(), human::count),
            human::count(p.sent),
            human::count(p.dropped),
        );
    }
    out.push('\n');
}

fn checks(out: &mut String, s: &Summary) {
    if s.checks.is_empty() {
        return;
    }
    let _ = writeln!(out, "## Checks\n");
    let _ = writeln!(out, "| check | verdict | reason |");
    let _ = writeln!(out, "|---|---|---|");
    for c in &s.checks {
        let _ = writeln!(
            out,
            "| {} | **{}** | {} |",
            text(&c.name),
            human::verdict_word(c.verdict),
            text(&c.reason)
        );
    }
    out.push('\n');
    for c in s.checks.iter().filter(|c| !c.evidence.is_empty()) {
        let _ = writeln!(out, "Evidence for {}:\n", text(&c.name));
        for e in &c.evidence {
            let _ = writeln!(out, "- {}", text(e));
        }
        out.push('\n');
    }
}

fn warnings(out: &mut String, s: &Summary) {
    if s.warnings.is_empty() {
        return;
    }
    let _ = writeln!(out, "## Warnings\n");
    for w in &s.warnings {
        let _ = writeln!(out, "- {}", text(w));
    }
    out.push('\n');
}

fn faults(out: &mut String, s: &Summary) {
    if s.faults.is_empty() {
        return;
    }
    let _ = writeln!(
        out,
        "## Mock KV faults
"
    );
    // The count of KV operations hit is known for runs that recorded it.
    let counted = s.faults.iter().any(|f| f.kv_ops.is_some());
    let (head, rule) = if counted {
        (" KV ops hit |", "--:|")
    } else {
        ("", "")
    };
    let _ = writeln!(out, "| # | fault | from | to |{head}");
    let _ = writeln!(out, "|--:|---|--:|--:|{rule}");
    for f in &s.faults {
        let hits = match (counted, f.kv_ops) {
            (false, _) => String::new(),
            (true, Some(n)) => format!(" {} |", human::count(n)),
            (true, None) => " — |".to_owned(),
        };
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} |{hits}",
            f.index + 1,
            text(&f.label),
            human::run_secs(f.set_at_s),
            f.cleared_at_s
                .map_or_else(|| "end of run".to_owned(), human::run_secs),
        );
    }
    out.push('\n');
}

/// The requests in scenario order, then the overall row.
fn rows(s: &Summary) -> impl Iterator<Item = (String, &RequestStats)> {
    s.requests
        .iter()
        .map(|r| (text(&r.name), r))
        .chain(std::iter::once(("**all**".to_owned(), &s.overall)))
}

fn latency(out: &mut String, s: &Summary) {
    let table = |out: &mut String, heading: &str, pick: fn(&RequestStats) -> &Percentiles| {
        let _ = writeln!(out, "## {heading}\n");
        let _ = writeln!(out, "| request | count | p50 | p90 | p99 | p99.9 | max |");
        let _ = writeln!(out, "|---|--:|--:|--:|--:|--:|--:|");
        for (name, r) in rows(s) {
            let p = pick(r);
            let cell = |us: u64| {
                if p.count == 0 {
                    "—".to_owned()
                } else {
                    human::latency_us(us)
                }
            };
            let _ = writeln!(
                out,
                "| {name} | {} | {} | {} | {} | {} | {} |",
                human::count(p.count),
                cell(p.p50_us),
                cell(p.p90_us),
                cell(p.p99_us),
                cell(p.p999_us),
                cell(p.max_us),
            );
        }
        out.push('\n');
    };
    table(out, "Latency (corrected)", |r| &r.corrected);
    table(out, "Service time", |r| &r.service);
    let _ = writeln!(
        out,
        "*Corrected* latency runs from the moment a request was scheduled to start, so it \
         includes time spent waiting behind slow requests (coordinated omission); *service* \
         time runs from the actual send and shows the target alone.\n"
    );
}

fn throughput(out: &mut String, s: &Summary) {
    let classes = classes_seen(s.requests.iter().chain([&s.overall]));
    let _ = writeln!(out, "## Throughput and errors\n");
    let mut head = "| request | endpoint | completed | rps |".to_owned();
    let mut align = "|---|---|--:|--:|".to_owned();
    for c in &classes {
        let _ = write!(head, " {} |", text(c));
        align.push_str("--:|");
    }
    head.push_str(" errors | error rate | dropped |");
    align.push_str("--:|--:|--:|");
    let _ = writeln!(out, "{head}\n{align}");
    for (name, r) in rows(s) {
        let endpoint = if r.method.is_empty() && r.path.is_empty() {
            String::new()
        } else {
            code(&format!("{} {}", r.method, r.path))
        };
        let mut line = format!(
            "| {name} | {endpoint} | {} | {} |",
            human::count(r.completed),
            human::rps(r.rps)
        );
        for c in &classes {
            let n = r.by_class.get(c).copied().unwrap_or(0);
            let _ = write!(line, " {} |", human::count(n));
        }
        let _ = write!(
            line,
            " {} | {} | {} |",
            human::count(r.errors),
            human::percent(r.error_rate),
            human::count(r.dropped)
        );
        let _ = writeln!(out, "{line}");
    }
    out.push('\n');
    let _ = writeln!(
        out,
        "Errors are completed requests that were not 2xx or 3xx; *dropped* requests were due \
         but could not start because `max_in_flight` requests were already running.\n"
    );
}

fn thresholds(out: &mut String, s: &Summary) {
    let _ = writeln!(out, "## Thresholds\n");
    if s.thresholds.is_empty() {
        let _ = writeln!(out, "No thresholds were defined.\n");
        return;
    }
    let _ = writeln!(out, "| scope | expression | observed | result |");
    let _ = writeln!(out, "|---|---|--:|---|");
    for t in &s.thresholds {
        let expr = if t.abort {
            format!("{} (abort)", code(&t.label()))
        } else {
            code(&t.label())
        };
        let result = if t.passed { "pass" } else { "**FAIL**" };
        let _ = writeln!(
            out,
            "| {} | {expr} | {} | {result} |",
            text(&t.scope),
            human::observed(t.observed, &t.unit),
        );
    }
    out.push('\n');
}

fn errors(out: &mut String, s: &Summary) {
    let _ = writeln!(out, "## First errors\n");
    if s.errors.is_empty() {
        let _ = writeln!(out, "No errors.\n");
        return;
    }
    let _ = writeln!(out, "| request | class | count | message |");
    let _ = writeln!(out, "|---|---|--:|---|");
    for e in &s.errors {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} |",
            text(&e.request),
            text(&e.class),
            human::count(e.count),
            text(&human::truncate(&e.message, MAX_MESSAGE_CHARS)),
        );
    }
    out.push('\n');
}

fn resources(out: &mut String, s: &Summary) {
    let r = &s.resources;
    let threads = if r.engine_threads == 1 {
        "1 engine thread".to_owned()
    } else {
        format!("{} engine threads", r.engine_threads)
    };
    let _ = writeln!(out, "## Resources\n");
    let _ = writeln!(
        out,
        "Peak RSS {} · CPU {:.2} s · {threads}",
        human::kib(r.peak_rss_kib),
        r.cpu_s
    );
}

fn files(out: &mut String) {
    let _ = writeln!(
        out,
        "\nIn the report folder: `report.html` (charts over time, check timelines, mock KV \
         quota forecast), `junit.xml` (checks and thresholds as test cases), `latency.hlog` \
         (HdrHistogram interval log), `timeseries.csv`, `history.jsonl`."
    );
}

/// Control characters and line breaks become spaces, so one value stays on one line.
fn one_line(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// Escapes `s` for inline Markdown, in a table cell or not: every character that could start
/// markup (emphasis, links, HTML, tables, entities) is backslash-escaped.
fn text(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in one_line(s).chars() {
        if matches!(
            c,
            '\\' | '`' | '*' | '_' | '[' | ']' | '<' | '>' | '|' | '~' | '&' | '#' | '!'
        ) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// `s` as an inline code span that survives backticks in `s` and table cells (`|` is escaped;
/// GitHub removes the backslash inside code in tables).
fn code(s: &str) -> String {
    let s = one_line(s).replace('|', "\\|");
    let mut longest = 0;
    let mut run = 0;
    for c in s.chars() {
        run = if c == '`' { run + 1 } else { 0 };
        longest = longest.max(run);
    }
    let fence = "`".repeat(longest + 1);
    let pad = if s.starts_with('`') || s.ends_with('`') {
        " "
    } else {
        ""
    };
    format!("{fence}{pad}{s}{pad}{fence}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::model::{StopInfo, fixture};

    #[test]
    fn fixture_report() {
        // Wall-clock times redacted: the snapshot holds only what the writer decides.
        let s = fixture();
        let md = render(&s)
            .replace(&text(&s.started_at), "[started_at]")
            .replace(&text(&s.ended_at), "[ended_at]");
        insta::assert_snapshot!(md);
    }

    #[test]
    fn idempotency_and_ratelimit_verdicts_render_like_any_check() {
        use crate::check::{CheckResult, Verdict};
        let mut s = fixture();
        let result = |name: &str, verdict, reason: &str, evidence: &str| CheckResult {
            name: name.to_owned(),
            verdict,
            reason: reason.to_owned(),
            evidence: vec![evidence.to_owned()],
            counts: Default::default(),
        };
        s.checks = vec![
            result(
                "idempotency",
                Verdict::Fail,
                "duplicate-effect ×2",
                "duplicate-effect: key \"k\" took effect 2 times",
            ),
            result(
                "ratelimit",
                Verdict::Pass,
                "at most 3 admitted per 1s per key (limit 3)",
                "fault window 6.000s–16.000s: held (9 admitted, 30 refused)",
            ),
        ];
        let md = render(&s);
        assert!(
            md.contains("| idempotency | **FAIL** | duplicate-effect ×2 |"),
            "{md}"
        );
        assert!(
            md.contains("| ratelimit | **PASS** | at most 3 admitted per 1s per key (limit 3) |"),
            "{md}"
        );
        assert!(
            md.contains("Evidence for ratelimit:\n\n- fault window 6.000s–16.000s: held"),
            "{md}"
        );
    }

    #[test]
    fn completed_run_without_thresholds() {
        let mut s = fixture();
        s.thresholds.clear();
        s.checks.clear();
        s.stop = StopInfo {
            reason: StopReason::Completed,
            detail: None,
            unfinished: 0,
        };
        let md = render(&s);
        assert!(md.contains("\n**no thresholds**\n"), "{md}");
        assert!(!md.contains("stopped early"), "{md}");
        assert!(md.contains("No thresholds were defined."), "{md}");
    }

    #[test]
    fn all_thresholds_passed_with_abort() {
        let mut s = fixture();
        s.checks.clear();
        for t in &mut s.thresholds {
            t.passed = true;
        }
        s.stop.reason = StopReason::Aborted;
        s.stop.detail = Some("abort threshold `error_rate < 20%` failed".to_owned());
        let md = render(&s);
        assert!(
            md.contains(
                "**PASS** · all 4 thresholds passed · stopped early: aborted by a threshold: \
                 abort threshold \\`error\\_rate \\< 20%\\` failed"
            ),
            "{md}"
        );
    }

    #[test]
    fn only_classes_that_occurred_get_columns() {
        let md = render(&fixture());
        let head = md
            .lines()
            .find(|l| l.starts_with("| request | endpoint |"))
            .expect("throughput table");
        assert_eq!(
            head,
            "| request | endpoint | completed | rps | 2xx | 4xx | 429 | 5xx | timeout | errors \
             | error rate | dropped |"
        );
    }

    #[test]
    fn hostile_text_is_escaped() {
        let mut s = fixture();
        s.errors[0].message = "a|b\n<script>x</script> **bold** [l](u)".to_owned();
        let md = render(&s);
        assert!(
            md.contains("a\\|b \\<script\\>x\\</script\\> \\*\\*bold\\*\\* \\[l\\](u)"),
            "{md}"
        );
        assert_eq!(code("a`b"), "``a`b``");
        assert_eq!(code("`x"), "`` `x ``");
        assert_eq!(code("p|q"), "`p\\|q`");
    }

    #[test]
    fn empty_request_shows_dashes() {
        let mut s = fixture();
        s.requests[1].corrected = Percentiles::default();
        let md = render(&s);
        assert!(
            md.contains("| acquire\\_lock | 0 | — | — | — | — | — |"),
            "{md}"
        );
    }
}
