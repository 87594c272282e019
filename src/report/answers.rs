//! Error answers in the report: the first distinct 4xx/5xx answers per request, with the
//! start of their bodies (secrets redacted), so `report.md`, `report.html` and the terminal
//! quote what the target said instead of only `HTTP 500`.
//!
//! Owns the summary's [`ErrorAnswer`] rows and their three renderings. Does not own the
//! capture (`engine::errors`) or redaction (done once in `run::summary`).

use std::fmt::Write as _;

use super::human;
use super::markup::xml;
use crate::engine::errors::Answer;

/// Answers shown in the terminal summary.
const TERMINAL_ROWS: usize = 3;
/// Body characters shown in the terminal summary.
const TERMINAL_BODY: usize = 100;

pub use crate::summary::ErrorAnswer;

/// The collector's rows as report rows, with request names (bodies not yet redacted).
pub fn from_rows(rows: &[Answer], names: &[String]) -> Vec<ErrorAnswer> {
    rows.iter()
        .map(|a| ErrorAnswer {
            request: names.get(a.request).cloned().unwrap_or_default(),
            status: a.status,
            body: String::from_utf8_lossy(&a.body).into_owned(),
            truncated: a.truncated,
            count: a.count,
        })
        .collect()
}

/// Redacts every body with `redactor`.
pub fn redact(answers: &mut [ErrorAnswer], redactor: &crate::redact::Redactor) {
    for a in answers {
        a.body = redactor.redact(&a.body).into_owned();
    }
}

/// A body on one line, `…` when it was cut.
fn shown(a: &ErrorAnswer, max: usize) -> String {
    let one: String = a
        .body
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let mut s = human::truncate(one.trim(), max);
    if a.truncated && !s.ends_with('…') {
        s.push('…');
    }
    if s.is_empty() {
        s.push_str("(empty body)");
    }
    s
}

/// `## Error answers` in `report.md`; nothing when there were none.
pub fn markdown(out: &mut String, answers: &[ErrorAnswer], text: fn(&str) -> String) {
    if answers.is_empty() {
        return;
    }
    let _ = writeln!(out, "## Error answers\n");
    let _ = writeln!(
        out,
        "The first distinct answers per request with a 4xx or 5xx status, bodies cut to 512 bytes.\n"
    );
    let _ = writeln!(out, "| request | status | count | body |");
    let _ = writeln!(out, "|---|--:|--:|---|");
    for a in answers {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} |",
            text(&a.request),
            a.status,
            human::count(a.count),
            text(&shown(a, 512)),
        );
    }
    out.push('\n');
}

/// The error-answers table of `report.html`; nothing when there were none.
pub fn html(out: &mut String, answers: &[ErrorAnswer]) {
    if answers.is_empty() {
        return;
    }
    out.push_str("<h2 id=\"answers\">Error answers</h2><table><tr><th>request</th><th class=\"n\">status</th><th class=\"n\">count</th><th>body</th></tr>\n");
    for a in answers {
        let _ = writeln!(
            out,
            "<tr><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td><code>{}</code></td></tr>",
            xml(&a.request),
            a.status,
            human::count(a.count),
            xml(&shown(a, 512))
        );
    }
    out.push_str("</table>\n");
}

/// Terminal lines: the most frequent answers, one line each.
pub fn terminal(lines: &mut Vec<String>, answers: &[ErrorAnswer]) {
    let mut top: Vec<&ErrorAnswer> = answers.iter().collect();
    top.sort_by_key(|a| std::cmp::Reverse(a.count));
    for a in top.iter().take(TERMINAL_ROWS) {
        lines.push(format!(
            "answer {} HTTP {} ×{}: {}",
            a.request,
            a.status,
            human::count(a.count),
            shown(a, TERMINAL_BODY)
        ));
    }
    if answers.len() > TERMINAL_ROWS {
        lines.push(format!(
            "… {} more distinct error answers in report.md",
            answers.len() - TERMINAL_ROWS
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn answer(body: &str, truncated: bool) -> ErrorAnswer {
        ErrorAnswer {
            request: "put".into(),
            status: 500,
            body: body.into(),
            truncated,
            count: 7,
        }
    }

    #[test]
    fn rows_get_names_and_lossy_text() {
        let rows = [Answer {
            request: 1,
            status: 503,
            body: Bytes::from_static(b"bad \xff byte"),
            truncated: true,
            count: 2,
        }];
        let out = from_rows(&rows, &["a".into(), "b".into()]);
        assert_eq!(out[0].request, "b");
        assert_eq!(out[0].body, "bad \u{fffd} byte");
        assert!(out[0].truncated);
    }

    #[test]
    fn bodies_are_one_line_escaped_and_marked_when_cut() {
        let a = [answer(
            "KV PUT failed: 429 KV put() limit exceeded for the day.\n<script>",
            true,
        )];
        let mut md = String::new();
        markdown(&mut md, &a, |s| s.replace('<', "\\<"));
        assert!(
            md.contains("| put | 500 | 7 | KV PUT failed: 429 KV put() limit exceeded for the day. \\<script>… |"),
            "{md}"
        );
        let mut h = String::new();
        html(&mut h, &a);
        assert!(h.contains("&lt;script&gt;…</code>"), "{h}");
        let mut lines = Vec::new();
        terminal(&mut lines, &[answer("", false)]);
        assert_eq!(lines, ["answer put HTTP 500 ×7: (empty body)"]);
    }

    #[test]
    fn nothing_is_written_without_answers() {
        let mut md = String::new();
        markdown(&mut md, &[], |s| s.to_owned());
        html(&mut md, &[]);
        assert!(md.is_empty());
    }
}
