//! The top and bottom of `report.html`: the verdict headline and run facts, checks and
//! thresholds, the per-request table, errors by class, and the footer.

use std::fmt::Write as _;

use crate::check::Verdict;
use crate::report::data::RunData;
use crate::report::human;
use crate::report::markup::xml;
use crate::report::model::{RequestStats, StopReason, Summary};

/// The title, verdict headline, description, run facts and fault windows.
pub(super) fn header(out: &mut String, s: &Summary) {
    let v = human::verdict(s);
    let word = v.word.unwrap_or("NONE");
    let _ = write!(
        out,
        "<h1>kvchaos report: {}</h1>\n<p class=\"headline\"><span class=\"badge {word}\">{}</span> {}",
        xml(&s.scenario.name),
        if word == "NONE" {
            "NO THRESHOLDS"
        } else {
            word
        },
        xml(&v.thresholds)
    );
    if s.stop.reason != StopReason::Completed {
        let _ = write!(
            out,
            " · <b>stopped early:</b> {}",
            xml(&human::stop_text(&s.stop))
        );
    }
    out.push_str("</p>\n");
    if !s.scenario.description.trim().is_empty() {
        let _ = writeln!(
            out,
            "<p class=\"note\">{}</p>",
            xml(&s.scenario.description)
        );
    }
    let facts = facts(s);
    out.push_str("<div class=\"facts\">");
    for (k, v) in facts {
        let _ = write!(out, "<div><span>{}</span><b>{}</b></div>", xml(k), xml(&v));
    }
    out.push_str("</div>\n");
    fault_windows(out, s);
}

/// The run's facts as label and value, in the order shown.
fn facts(s: &Summary) -> Vec<(&'static str, String)> {
    let o = &s.overall;
    vec![
        ("target", format!("{} ({})", s.target.url, s.target.kind)),
        ("scenario file", s.scenario.file.clone()),
        ("started", s.started_at.clone()),
        (
            "duration",
            format!(
                "{} of {} planned",
                human::run_secs(s.duration_s),
                human::run_secs(s.planned_duration_s)
            ),
        ),
        (
            "requests",
            format!("{} completed", human::count(o.completed)),
        ),
        ("throughput", format!("{} req/s", human::rps(o.rps))),
        (
            "errors",
            format!(
                "{} ({})",
                human::count(o.errors),
                human::percent(o.error_rate)
            ),
        ),
        (
            "latency p50 / p99 / max",
            if o.corrected.count == 0 {
                "no data".to_owned()
            } else {
                format!(
                    "{} / {} / {}",
                    human::latency_us(o.corrected.p50_us),
                    human::latency_us(o.corrected.p99_us),
                    human::latency_us(o.corrected.max_us)
                )
            },
        ),
        (
            "dropped / unfinished",
            format!(
                "{} / {}",
                human::count(o.dropped),
                human::count(s.stop.unfinished)
            ),
        ),
        (
            "seed",
            format!("{} (--seed {})", s.scenario.seed, s.scenario.seed),
        ),
        ("stop", human::stop_text(&s.stop)),
        ("kvchaos", s.kvchaos_version.clone()),
    ]
}

/// One note listing the mock KV fault windows, when there were any.
fn fault_windows(out: &mut String, s: &Summary) {
    if s.faults.is_empty() {
        return;
    }
    out.push_str("<p class=\"note\">");
    for f in &s.faults {
        let _ = write!(
            out,
            "<span class=\"fault\"></span>fault {}: <code>{}</code> from {} to {}. ",
            f.index + 1,
            xml(&f.label),
            human::run_secs(f.set_at_s),
            f.cleared_at_s
                .map_or_else(|| "the end of the run".to_owned(), human::run_secs)
        );
    }
    out.push_str("Shaded in every chart over time.</p>\n");
}

/// A verdict word as a coloured badge.
pub(super) fn badge(word: &str) -> String {
    format!("<span class=\"badge {word}\">{word}</span>")
}

/// Warnings, then every check and threshold with its verdict and evidence.
pub(super) fn verdicts(out: &mut String, s: &Summary) {
    out.push_str("<h2 id=\"verdicts\">Checks and thresholds</h2>\n");
    for w in &s.warnings {
        let _ = writeln!(out, "<p class=\"note warning\">warning: {}</p>", xml(w));
    }
    if s.checks.is_empty() && s.thresholds.is_empty() {
        out.push_str("<p class=\"note\">No checks ran and no thresholds were defined.</p>\n");
        return;
    }
    out.push_str("<table><tr><th>verdict</th><th>kind</th><th>name</th><th>result</th></tr>\n");
    for c in &s.checks {
        let _ = write!(
            out,
            "<tr><td>{}</td><td>check</td><td><b>{}</b></td><td>{}",
            badge(human::verdict_word(c.verdict)),
            xml(&c.name),
            xml(&c.reason)
        );
        if !c.evidence.is_empty() && c.verdict != Verdict::Pass {
            out.push_str("<ul class=\"evidence\">");
            for e in &c.evidence {
                let _ = write!(out, "<li>{}</li>", xml(e));
            }
            out.push_str("</ul>");
        }
        out.push_str("</td></tr>\n");
    }
    for t in &s.thresholds {
        let _ = writeln!(
            out,
            "<tr><td>{}</td><td>threshold{}</td><td><b>{}</b> <code>{}</code></td><td>observed {}</td></tr>",
            badge(if t.passed { "PASS" } else { "FAIL" }),
            if t.abort { " (abort)" } else { "" },
            xml(&t.scope),
            xml(&t.label()),
            xml(&human::observed(t.observed, &t.unit))
        );
    }
    out.push_str("</table>\n");
}

/// One row per request and one for all: counts, rates and corrected latency.
pub(super) fn requests_table(out: &mut String, s: &Summary) {
    out.push_str("<h2 id=\"requests\">Requests</h2>\n<table><tr><th>request</th><th>endpoint</th>\
        <th class=\"n\">completed</th><th class=\"n\">req/s</th><th class=\"n\">p50</th><th class=\"n\">p90</th>\
        <th class=\"n\">p99</th><th class=\"n\">p99.9</th><th class=\"n\">max</th><th class=\"n\">errors</th>\
        <th class=\"n\">error rate</th><th class=\"n\">dropped</th></tr>\n");
    let row = |out: &mut String, r: &RequestStats, bold: bool| {
        let p = &r.corrected;
        let cell = |us: u64| {
            if p.count == 0 {
                "—".to_owned()
            } else {
                human::latency_us(us)
            }
        };
        let name = if bold {
            format!("<b>{}</b>", xml(&r.name))
        } else {
            xml(&r.name)
        };
        let endpoint = if r.method.is_empty() {
            String::new()
        } else {
            format!("<code>{} {}</code>", xml(&r.method), xml(&r.path))
        };
        let _ = writeln!(
            out,
            "<tr><td>{name}</td><td>{endpoint}</td><td class=\"n\">{}</td><td class=\"n\">{}</td>\
             <td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td>\
             <td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td></tr>",
            human::count(r.completed),
            human::rps(r.rps),
            cell(p.p50_us),
            cell(p.p90_us),
            cell(p.p99_us),
            cell(p.p999_us),
            cell(p.max_us),
            human::count(r.errors),
            human::percent(r.error_rate),
            human::count(r.dropped)
        );
    };
    for r in &s.requests {
        row(out, r, false);
    }
    row(out, &s.overall, true);
    out.push_str("</table>\n<p class=\"note\">Latency is corrected for coordinated omission: it runs from the moment a request was scheduled to start.</p>\n");
}

/// The first errors: request, outcome class, count and message.
pub(super) fn errors(out: &mut String, s: &Summary) {
    if s.errors.is_empty() {
        return;
    }
    out.push_str("<h2 id=\"errors\">First errors</h2><table><tr><th>request</th><th>class</th><th class=\"n\">count</th><th>message</th></tr>\n");
    for e in s.errors.iter().take(12) {
        let _ = writeln!(
            out,
            "<tr><td>{}</td><td>{}</td><td class=\"n\">{}</td><td><code>{}</code></td></tr>",
            xml(&e.request),
            xml(&e.class),
            human::count(e.count),
            xml(&human::truncate(&e.message, 240))
        );
    }
    out.push_str("</table>\n");
}

/// Notes on missing data files, and what wrote the page and how to render it again.
pub(super) fn footer(out: &mut String, d: &RunData) {
    out.push_str("<footer>");
    for n in &d.notes {
        let _ = write!(out, "<p>{}</p>", xml(n));
    }
    let _ = write!(
        out,
        "<p>Written by kvchaos {}. The report folder also holds summary.json (the source of this page), report.md, \
         junit.xml, latency.hlog (HdrHistogram interval log), timeseries.csv and history.jsonl; \
         <code>kvchaos report DIR</code> renders this page again.</p></footer>",
        xml(&d.summary.kvchaos_version)
    );
}
