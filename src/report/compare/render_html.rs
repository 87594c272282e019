//! The comparison as one self-contained HTML page (`kvchaos compare --html`): inline CSS and
//! SVG, no scripts.

use std::fmt::Write as _;

use super::cells::{
    count_cell, lat_cell, opt_num, opt_rel, prefix_text, rate_cell, rps_cell, run_verdict,
};
use super::diff::{kv_rows, request_names, verdict_changes};
use super::routes::{CLASSES, class_cell, route_names};
use super::{Comparison, Side};
use crate::report::human;
use crate::report::markup::xml;
use crate::report::svg::{self, Axis, Plot};

/// The comparison as one self-contained HTML page (inline CSS and SVG, no scripts).
pub fn render_html(c: &Comparison) -> String {
    let (a, b) = (&c.before, &c.after);
    let mut out = String::new();
    header(&mut out, c);
    gates(&mut out, c);
    requests(&mut out, a, b);
    routes(&mut out, a, b);
    verdicts(&mut out, a, b);
    kv(&mut out, a, b);
    out.push_str("<footer>Written by kvchaos compare.</footer></main></body></html>\n");
    out
}

fn badge(w: &str) -> String {
    format!("<span class=\"badge {w}\">{w}</span>")
}

/// The page head, title, gate headline and the two runs' facts side by side.
fn header(out: &mut String, c: &Comparison) {
    let (a, b) = (&c.before, &c.after);
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"/><title>kvchaos compare: {} → {}</title>\
         <style>{}</style></head><body><main>\n<h1>kvchaos compare: {} → {}</h1>\n",
        xml(&a.summary.scenario.name),
        xml(&b.summary.scenario.name),
        crate::report::html::CSS_TEXT,
        xml(&a.summary.scenario.name),
        xml(&b.summary.scenario.name)
    );
    if !c.gates.is_empty() {
        let failed = c.gates.iter().filter(|g| !g.passed).count();
        let _ = writeln!(
            out,
            "<p class=\"headline\">{} {}</p>",
            badge(if failed == 0 { "PASS" } else { "FAIL" }),
            if failed == 0 {
                format!("all {} gates held", c.gates.len())
            } else {
                format!("{failed} of {} gates failed", c.gates.len())
            }
        );
    }
    out.push_str("<table><tr><th></th><th>before</th><th>after</th></tr>\n");
    for (k, x, y) in [
        ("report", a.label.clone(), b.label.clone()),
        (
            "target",
            a.summary.target.url.clone(),
            b.summary.target.url.clone(),
        ),
        (
            "started",
            a.summary.started_at.clone(),
            b.summary.started_at.clone(),
        ),
        (
            "duration",
            human::run_secs(a.summary.duration_s),
            human::run_secs(b.summary.duration_s),
        ),
        (
            "verdict",
            run_verdict(&a.summary).to_owned(),
            run_verdict(&b.summary).to_owned(),
        ),
    ] {
        let _ = writeln!(
            out,
            "<tr><th>{k}</th><td>{}</td><td>{}</td></tr>",
            xml(&x),
            xml(&y)
        );
    }
    out.push_str("</table>\n");
}

fn gates(out: &mut String, c: &Comparison) {
    if c.gates.is_empty() {
        return;
    }
    out.push_str(
        "<h2 id=\"gates\">Gates</h2><table><tr><th>gate</th><th>result</th><th>detail</th></tr>\n",
    );
    for g in &c.gates {
        let _ = writeln!(
            out,
            "<tr><td><code>{}</code></td><td>{}</td><td>{}</td></tr>",
            xml(&g.gate),
            badge(if g.passed { "PASS" } else { "FAIL" }),
            g.detail
                .iter()
                .map(|d| xml(d))
                .collect::<Vec<_>>()
                .join("<br/>")
        );
    }
    out.push_str("</table>\n");
}

/// The request table and the p99 chart.
fn requests(out: &mut String, a: &Side, b: &Side) {
    let mut names = request_names(a, b);
    names.push("all".to_owned());
    out.push_str("<h2 id=\"requests\">Requests (corrected latency)</h2><table><tr><th>request</th><th class=\"n\">completed</th>\
        <th class=\"n\">req/s</th><th class=\"n\">p50</th><th class=\"n\">p99</th><th class=\"n\">max</th><th class=\"n\">error rate</th></tr>\n");
    for n in &names {
        let (x, y) = (a.request(n), b.request(n));
        let _ = writeln!(
            out,
            "<tr><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td></tr>",
            if n == "all" {
                "<b>all</b>".to_owned()
            } else {
                xml(n)
            },
            xml(&count_cell(x, y)),
            xml(&rps_cell(x, y)),
            xml(&lat_cell(x, y, |p| p.p50_us)),
            xml(&lat_cell(x, y, |p| p.p99_us)),
            xml(&lat_cell(x, y, |p| p.max_us)),
            xml(&rate_cell(x, y))
        );
    }
    out.push_str("</table>\n");
    out.push_str(&grouped_bars(
        "p99-chart",
        "p99 latency, before and after (log scale)",
        &names
            .iter()
            .map(|n| {
                let v = |s: &Side| {
                    s.request(n)
                        .filter(|r| r.corrected.count > 0)
                        .map(|r| r.corrected.p99_us as f64)
                };
                (n.clone(), v(a), v(b))
            })
            .collect::<Vec<_>>(),
        true,
    ));
}

/// Replay routes by status class (only when a run replayed a capture).
fn routes(out: &mut String, a: &Side, b: &Side) {
    let names = route_names(a, b);
    if names.is_empty() {
        return;
    }
    out.push_str("<h2 id=\"routes\">Routes (status classes: count, share of completed)</h2><table><tr><th>route</th><th class=\"n\">completed</th>");
    for c in CLASSES {
        let _ = write!(out, "<th class=\"n\">{c}</th>");
    }
    out.push_str("<th class=\"n\">p50</th><th class=\"n\">p99</th></tr>\n");
    for n in &names {
        let (x, y) = (a.request(n), b.request(n));
        let _ = write!(
            out,
            "<tr><td>{}</td><td class=\"n\">{}</td>",
            xml(n),
            xml(&count_cell(x, y))
        );
        for i in 0..CLASSES.len() {
            let _ = write!(out, "<td class=\"n\">{}</td>", xml(&class_cell(x, y, i)));
        }
        let _ = writeln!(
            out,
            "<td class=\"n\">{}</td><td class=\"n\">{}</td></tr>",
            xml(&lat_cell(x, y, |p| p.p50_us)),
            xml(&lat_cell(x, y, |p| p.p99_us))
        );
    }
    out.push_str("</table>\n");
}

fn verdicts(out: &mut String, a: &Side, b: &Side) {
    let verdicts = verdict_changes(a, b);
    if verdicts.is_empty() {
        return;
    }
    out.push_str("<h2 id=\"verdicts\">Checks and thresholds</h2><table><tr><th>kind</th><th>name</th><th>before</th><th>after</th></tr>\n");
    for v in &verdicts {
        let cell = |w: Option<&str>| w.map_or("—".to_owned(), badge);
        let _ = writeln!(
            out,
            "<tr><td>{}</td><td>{}{}</td><td>{}</td><td>{}</td></tr>",
            v.kind,
            xml(&v.name),
            if v.before != v.after {
                " <b>(changed)</b>"
            } else {
                ""
            },
            cell(v.before),
            cell(v.after)
        );
    }
    out.push_str("</table>\n");
}

/// The KV table (every prefix) and the per-operation chart.
fn kv(out: &mut String, a: &Side, b: &Side) {
    out.push_str("<h2 id=\"kv\">KV operations per 1,000 requests</h2>\n");
    let rows = kv_rows(a, b);
    if rows.is_empty() {
        out.push_str("<p class=\"note\">Neither run has KV operations (mockkv.json is written for Worker targets).</p>\n");
        return;
    }
    out.push_str("<table><tr><th>operation</th><th>key prefix</th><th class=\"n\">before</th><th class=\"n\">after</th><th class=\"n\">change</th></tr>\n");
    for r in &rows {
        let bold = r.prefix.is_none();
        let _ = writeln!(
            out,
            "<tr><td>{}</td><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td></tr>",
            r.op.as_str(),
            if bold {
                "<b>all prefixes</b>".to_owned()
            } else {
                format!("<code>{}</code>", xml(&prefix_text(&r.prefix)))
            },
            opt_num(r.before),
            opt_num(r.after),
            opt_rel(r.before, r.after)
        );
    }
    out.push_str("</table>\n");
    let totals: Vec<(String, Option<f64>, Option<f64>)> = rows
        .iter()
        .filter(|r| r.prefix.is_none())
        .map(|r| (r.op.as_str().to_owned(), r.before, r.after))
        .collect();
    out.push_str(&grouped_bars(
        "kv-chart",
        "KV operations per 1,000 requests, before and after",
        &totals,
        false,
    ));
}

/// Bars for BEFORE and AFTER side by side per category.
fn grouped_bars(
    id: &str,
    title: &str,
    cats: &[(String, Option<f64>, Option<f64>)],
    log: bool,
) -> String {
    let vals: Vec<f64> = cats
        .iter()
        .flat_map(|(_, a, b)| [*a, *b])
        .flatten()
        .filter(|v| *v > 0.0)
        .collect();
    if vals.is_empty() {
        return String::new();
    }
    let hi = vals.iter().copied().fold(0.0, f64::max);
    let lo = vals.iter().copied().fold(f64::INFINITY, f64::min);
    let y = if log {
        Axis::log(lo, hi)
    } else {
        Axis::linear_to(hi * 1.05)
    };
    let n = cats.len() as f64;
    let ticks: Vec<(f64, String)> = cats
        .iter()
        .enumerate()
        .map(|(i, (name, _, _))| (i as f64 + 0.5, name.clone()))
        .collect();
    let mut p = Plot::new(id, 1120.0, 240.0, Axis::linear(0.0, n), y)
        .formats(
            svg::fmt_num,
            if log { svg::fmt_latency } else { svg::fmt_num },
        )
        .x_ticks(ticks);
    for (i, (name, a, b)) in cats.iter().enumerate() {
        let x = i as f64;
        let fmt = |v: f64| {
            if log {
                human::latency_us_f(v)
            } else {
                format!("{v:.1}")
            }
        };
        if let Some(v) = a.filter(|v| *v > 0.0) {
            p.bar(
                x + 0.15,
                x + 0.5,
                v,
                "#8a8f98",
                &format!("{name} before: {}", fmt(v)),
            );
        }
        if let Some(v) = b.filter(|v| *v > 0.0) {
            p.bar(
                x + 0.5,
                x + 0.85,
                v,
                "#2f6db5",
                &format!("{name} after: {}", fmt(v)),
            );
        }
    }
    p.legend("before", "#8a8f98");
    p.legend("after", "#2f6db5");
    format!(
        "<figure><figcaption>{}</figcaption>{}</figure>\n",
        xml(title),
        p.finish(false)
    )
}
