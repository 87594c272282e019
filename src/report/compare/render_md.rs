//! The comparison as Markdown (the default output of `kvchaos compare`; fits a PR comment).

use std::fmt::Write as _;

use super::cells::{
    count_cell, lat_cell, opt_num, opt_rel, prefix_text, rate_cell, rps_cell, run_verdict,
};
use super::diff::{kv_rows, request_names, verdict_changes};
use super::routes::{CLASSES, class_cell, route_names};
use super::{Comparison, Side};
use crate::report::human;

/// Most key prefixes listed per operation in the Markdown comparison.
const MAX_MD_PREFIXES: usize = 8;

/// Escapes text for a Markdown table cell.
pub(super) fn md(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if c.is_control() {
            out.push(' ');
            continue;
        }
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

/// The comparison as Markdown (the default output; fits a PR comment).
pub fn render_markdown(c: &Comparison) -> String {
    let (a, b) = (&c.before, &c.after);
    let mut out = String::new();
    header(&mut out, c);
    gates(&mut out, c);
    requests(&mut out, a, b);
    routes(&mut out, a, b);
    verdicts(&mut out, a, b);
    kv(&mut out, a, b);
    let trimmed = out.trim_end().len();
    out.truncate(trimmed);
    out.push('\n');
    out
}

/// Title, gate headline and the two runs' facts side by side.
fn header(out: &mut String, c: &Comparison) {
    let (a, b) = (&c.before, &c.after);
    let _ = writeln!(
        out,
        "# kvchaos compare: {} → {}\n",
        md(&a.summary.scenario.name),
        md(&b.summary.scenario.name)
    );
    if !c.gates.is_empty() {
        let failed = c.gates.iter().filter(|g| !g.passed).count();
        if failed == 0 {
            let _ = writeln!(out, "**PASS** · all {} gates held\n", c.gates.len());
        } else {
            let _ = writeln!(
                out,
                "**FAIL** · {failed} of {} gates failed\n",
                c.gates.len()
            );
        }
    }
    let _ = writeln!(out, "| | before | after |\n|---|---|---|");
    let rows: [(&str, String, String); 6] = [
        ("report", md(&a.label), md(&b.label)),
        (
            "target",
            md(&a.summary.target.url),
            md(&b.summary.target.url),
        ),
        (
            "started",
            md(&a.summary.started_at),
            md(&b.summary.started_at),
        ),
        (
            "duration",
            human::run_secs(a.summary.duration_s),
            human::run_secs(b.summary.duration_s),
        ),
        (
            "seed",
            a.summary.scenario.seed.to_string(),
            b.summary.scenario.seed.to_string(),
        ),
        (
            "verdict",
            format!("**{}**", run_verdict(&a.summary)),
            format!("**{}**", run_verdict(&b.summary)),
        ),
    ];
    for (k, x, y) in rows {
        let _ = writeln!(out, "| {k} | {x} | {y} |");
    }
    out.push('\n');
}

fn gates(out: &mut String, c: &Comparison) {
    if c.gates.is_empty() {
        return;
    }
    let _ = writeln!(out, "## Gates\n\n| gate | result | detail |\n|---|---|---|");
    for g in &c.gates {
        let _ = writeln!(
            out,
            "| `{}` | {} | {} |",
            g.gate.replace('|', "\\|").replace('`', "'"),
            if g.passed { "pass" } else { "**FAIL**" },
            g.detail
                .iter()
                .map(|d| md(d))
                .collect::<Vec<_>>()
                .join("<br>")
        );
    }
    out.push('\n');
}

fn requests(out: &mut String, a: &Side, b: &Side) {
    let _ = writeln!(
        out,
        "## Requests (corrected latency)\n\n| request | completed | req/s | p50 | p99 | max | error rate |\n|---|--:|--:|--:|--:|--:|--:|"
    );
    let mut names = request_names(a, b);
    names.push("all".to_owned());
    for n in &names {
        let (x, y) = (a.request(n), b.request(n));
        let label = if n == "all" {
            "**all**".to_owned()
        } else {
            md(n)
        };
        let _ = writeln!(
            out,
            "| {label} | {} | {} | {} | {} | {} | {} |",
            count_cell(x, y),
            rps_cell(x, y),
            lat_cell(x, y, |p| p.p50_us),
            lat_cell(x, y, |p| p.p99_us),
            lat_cell(x, y, |p| p.max_us),
            rate_cell(x, y)
        );
    }
    out.push('\n');
}

/// Replay routes by status class (only when a run replayed a capture).
fn routes(out: &mut String, a: &Side, b: &Side) {
    let names = route_names(a, b);
    if names.is_empty() {
        return;
    }
    let _ = writeln!(
        out,
        "## Routes (status classes: count, share of completed)\n\n| route | completed | {} | p50 | p99 |\n|---|--:|{}--:|--:|",
        CLASSES.join(" | "),
        "--:|".repeat(CLASSES.len())
    );
    for n in &names {
        let (x, y) = (a.request(n), b.request(n));
        let classes: Vec<String> = (0..CLASSES.len()).map(|i| class_cell(x, y, i)).collect();
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} |",
            md(n),
            count_cell(x, y),
            classes.join(" | "),
            lat_cell(x, y, |p| p.p50_us),
            lat_cell(x, y, |p| p.p99_us),
        );
    }
    out.push('\n');
}

fn verdicts(out: &mut String, a: &Side, b: &Side) {
    let verdicts = verdict_changes(a, b);
    if verdicts.is_empty() {
        return;
    }
    let changed = verdicts.iter().filter(|v| v.before != v.after).count();
    let _ = writeln!(
        out,
        "## Checks and thresholds\n\n{changed} of {} verdicts changed.\n\n| kind | name | before | after |\n|---|---|---|---|",
        verdicts.len()
    );
    for v in &verdicts {
        let word = |w: Option<&str>| w.map_or("—".to_owned(), str::to_owned);
        let (x, y) = (word(v.before), word(v.after));
        let y = if v.before != v.after {
            format!("**{y}** (changed)")
        } else {
            y
        };
        let _ = writeln!(out, "| {} | {} | {x} | {y} |", v.kind, md(&v.name));
    }
    out.push('\n');
}

fn kv(out: &mut String, a: &Side, b: &Side) {
    let _ = writeln!(out, "## KV operations per 1,000 requests\n");
    if a.kv.is_none() && b.kv.is_none() {
        let _ = writeln!(
            out,
            "Neither run has a mockkv.json (they were not Worker targets).\n"
        );
        return;
    }
    for (side, s) in [("before", a), ("after", b)] {
        if s.kv.is_none() {
            let _ = writeln!(out, "The {side} run has no mockkv.json.\n");
        }
    }
    let _ = writeln!(
        out,
        "Every outcome counts (a put refused by a fault was still attempted).\n\n| operation | key prefix | before | after | change |\n|---|---|--:|--:|--:|"
    );
    let rows = kv_rows(a, b);
    for (i, r) in rows.iter().enumerate() {
        // A PR comment stays short: the busiest prefixes of each operation, then a
        // count of the rest (the HTML page lists them all).
        let rank = rows[..i]
            .iter()
            .rev()
            .take_while(|p| p.prefix.is_some())
            .count();
        if r.prefix.is_some() && rank >= MAX_MD_PREFIXES {
            let last_of_op = rows.get(i + 1).is_none_or(|n| n.prefix.is_none());
            if last_of_op {
                let _ = writeln!(
                    out,
                    "| {} | … {} more prefixes | | | |",
                    r.op.as_str(),
                    rank + 1 - MAX_MD_PREFIXES
                );
            }
            continue;
        }
        let prefix = match &r.prefix {
            None => "**all prefixes**".to_owned(),
            Some(_) => format!("`{}`", prefix_text(&r.prefix).replace('`', "'")),
        };
        let _ = writeln!(
            out,
            "| {} | {prefix} | {} | {} | {} |",
            r.op.as_str(),
            opt_num(r.before),
            opt_num(r.after),
            opt_rel(r.before, r.after)
        );
    }
    out.push('\n');
}
