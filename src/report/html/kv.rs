//! The mock KV section: operations by type and outcome, the busiest key prefixes, quota use,
//! and a forecast of the free plan's daily write quota at this run's put rate.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use super::{FREE_PUTS_PER_DAY, MAX_PREFIX_ROWS, WIDE};
use crate::mockkv::Op;
use crate::mockkv::stats::Snapshot;
use crate::report::data::RunData;
use crate::report::human;
use crate::report::markup::xml;
use crate::report::model::Summary;
use crate::report::svg::{self, Axis, Plot};

/// KV operations counted by op, over every namespace, prefix and outcome.
fn op_totals(kv: &Snapshot) -> BTreeMap<Op, u64> {
    let mut m = BTreeMap::new();
    for r in &kv.counts {
        *m.entry(r.op).or_default() += r.count;
    }
    m
}

fn outcome_color(o: &str) -> &'static str {
    match o {
        "ok" => svg::OK,
        "miss" => "#7fc79a",
        "quota" | "daily-limit" => svg::BAD,
        "same-key-rate" | "rate-limit" => "#8d5fc4",
        "invalid" => svg::INFO,
        "latency" | "stale-reads" => svg::WARN,
        _ => "#e07b00",
    }
}

/// The mock KV section: operations, prefixes, quota and the free-plan forecast.
pub(super) fn mock_kv(out: &mut String, d: &RunData) {
    out.push_str("<h2 id=\"mock-kv\">Mock KV</h2>\n");
    let Some(kv) = &d.kv else {
        out.push_str("<p class=\"note\">No mock KV in this run (mockkv.json is written for Worker targets).</p>\n");
        return;
    };
    let totals = op_totals(kv);
    let grand: u64 = totals.values().sum();
    if grand == 0 {
        out.push_str("<p class=\"note\">The Worker made no KV operations.</p>\n");
    } else {
        // Operations by type, stacked by outcome.
        let mut by: BTreeMap<(Op, String), u64> = BTreeMap::new();
        let mut outcomes: Vec<String> = Vec::new();
        for r in &kv.counts {
            let o = r.outcome.as_str().to_owned();
            if !outcomes.contains(&o) {
                outcomes.push(o.clone());
            }
            *by.entry((r.op, o)).or_default() += r.count;
        }
        let ops: Vec<Op> = Op::ALL
            .into_iter()
            .filter(|o| totals.contains_key(o))
            .collect();
        let n = ops.len();
        let most = totals.values().copied().max().unwrap_or(1) as f64;
        let mut p = Plot::new(
            "kv-ops",
            WIDE.0,
            50.0 + 36.0 * n as f64,
            Axis::linear_to(most),
            Axis::linear(0.0, 1.0),
        )
        .formats(svg::fmt_num, svg::fmt_num)
        .labels("operations", "")
        .left_margin(80.0);
        for (i, op) in ops.iter().enumerate() {
            p.lane_label((i, n), op.as_str());
            let mut x0 = 0.0;
            for o in &outcomes {
                let c = by.get(&(*op, o.clone())).copied().unwrap_or(0);
                if c == 0 {
                    continue;
                }
                let color = outcome_color(o);
                p.hbar(
                    (i, n),
                    x0,
                    x0 + c as f64,
                    color,
                    &format!("{} {o}: {}", op.as_str(), human::count(c)),
                );
                p.legend(o, color);
                x0 += c as f64;
            }
        }
        out.push_str("<figure><figcaption>Operations by type and outcome</figcaption>");
        out.push_str(&p.finish(true));
        out.push_str("</figure>\n");
        prefixes(out, kv);
    }
    quota(out, kv);
    forecast(out, d, kv);
}

fn prefixes(out: &mut String, kv: &Snapshot) {
    let mut rows: BTreeMap<(String, String), [u64; 4]> = BTreeMap::new();
    for r in &kv.counts {
        let slot = rows
            .entry((r.namespace.clone(), r.prefix.clone()))
            .or_default();
        let i = Op::ALL.iter().position(|o| *o == r.op).unwrap_or(0);
        slot[i] += r.count;
    }
    let mut rows: Vec<((String, String), [u64; 4])> = rows.into_iter().collect();
    rows.sort_by(|a, b| {
        b.1.iter()
            .sum::<u64>()
            .cmp(&a.1.iter().sum::<u64>())
            .then_with(|| a.0.cmp(&b.0))
    });
    let most = rows.first().map_or(1, |r| r.1.iter().sum::<u64>().max(1)) as f64;
    out.push_str("<h3>By key prefix</h3><table><tr><th>namespace</th><th>prefix</th><th class=\"n\">get</th>\
        <th class=\"n\">put</th><th class=\"n\">delete</th><th class=\"n\">list</th><th class=\"n\">total</th><th></th></tr>\n");
    let hidden = rows.len().saturating_sub(MAX_PREFIX_ROWS);
    for ((ns, prefix), c) in rows.iter().take(MAX_PREFIX_ROWS) {
        let total: u64 = c.iter().sum();
        let _ = writeln!(
            out,
            "<tr><td>{}</td><td><code>{}</code></td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td>\
             <td class=\"n\">{}</td><td class=\"n\"><b>{}</b></td><td><span class=\"bar\" style=\"width:{:.0}px\"></span></td></tr>",
            xml(ns),
            if prefix.is_empty() {
                "(no prefix)".to_owned()
            } else {
                xml(prefix)
            },
            human::count(c[0]),
            human::count(c[1]),
            human::count(c[2]),
            human::count(c[3]),
            human::count(total),
            200.0 * total as f64 / most
        );
    }
    out.push_str("</table>\n");
    if hidden > 0 {
        let _ = writeln!(
            out,
            "<p class=\"note\">{hidden} smaller prefixes not shown.</p>"
        );
    }
}

fn quota(out: &mut String, kv: &Snapshot) {
    if kv.quota.is_empty() {
        return;
    }
    out.push_str("<h3>Daily quota use (mock's plan, current virtual day)</h3><table><tr><th>account</th><th>operation</th>\
        <th class=\"n\">used</th><th class=\"n\">limit</th><th>share</th></tr>\n");
    for r in &kv.quota {
        let (limit, bar) = match r.limit {
            Some(l) if l > 0 => {
                let f = (r.used as f64 / l as f64).min(1.0);
                let color = if f >= 1.0 {
                    svg::BAD
                } else if f >= 0.8 {
                    svg::WARN
                } else {
                    svg::OK
                };
                (
                    human::count(l),
                    format!(
                        "<span class=\"quota\"><i style=\"width:{:.0}%;background:{color}\"></i></span> {:.0}%",
                        f * 100.0,
                        f * 100.0
                    ),
                )
            }
            _ => ("unlimited".to_owned(), String::new()),
        };
        let _ = writeln!(
            out,
            "<tr><td>{}</td><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{limit}</td><td>{bar}</td></tr>",
            xml(&r.account),
            r.op.as_str(),
            human::count(r.used)
        );
    }
    out.push_str("</table>\n");
}

/// Puts the Worker attempted (any outcome), per completed request, and per second of run time.
pub(super) fn put_rates(s: &Summary, kv: &Snapshot) -> (u64, f64, f64) {
    let puts: u64 = kv
        .counts
        .iter()
        .filter(|r| r.op == Op::Put)
        .map(|r| r.count)
        .sum();
    let per_request = if s.overall.completed > 0 {
        puts as f64 / s.overall.completed as f64
    } else {
        0.0
    };
    let per_sec = if s.duration_s > 0.0 {
        puts as f64 / s.duration_s
    } else {
        0.0
    };
    (puts, per_request, per_sec)
}

/// How long `quota` operations a day last at `per_sec`: `None` when a day's use stays below.
pub(super) fn lasts(quota: f64, per_sec: f64) -> Option<f64> {
    (per_sec > 0.0 && per_sec * 86_400.0 > quota).then(|| quota / per_sec)
}

fn forecast(out: &mut String, d: &RunData, kv: &Snapshot) {
    let s = &d.summary;
    let (puts, per_request, per_sec) = put_rates(s, kv);
    out.push_str("<h3 id=\"forecast\">Free-plan write quota forecast</h3>\n");
    let _ = writeln!(
        out,
        "<p>The Worker attempted <b>{}</b> KV puts for {} completed requests: <b>{:.3} puts per request</b> \
         ({:.1} per 1,000), {:.2} puts per second of run time.</p>",
        human::count(puts),
        human::count(s.overall.completed),
        per_request,
        per_request * 1000.0,
        per_sec
    );
    let at_run_rate = match lasts(FREE_PUTS_PER_DAY, per_sec) {
        Some(t) => format!(
            "At this run's rate ({} req/s) the free plan's 1,000 puts a day would run out after <b>{}</b>.",
            human::rps(s.overall.rps),
            human::run_secs(t)
        ),
        None if puts == 0 => {
            "Without puts, the free plan's 1,000 puts a day never run out.".to_owned()
        }
        None => "At this run's rate a day's puts stay under the free plan's 1,000.".to_owned(),
    };
    let _ = writeln!(out, "<p>{at_run_rate}</p>");
    if per_request > 0.0 {
        out.push_str("<table><tr><th>traffic</th><th class=\"n\">puts per day</th><th class=\"n\">share of 1,000</th><th>quota runs out after</th></tr>\n");
        for (label, rps) in [
            ("1 request / minute", 1.0 / 60.0),
            ("1 request / second", 1.0),
            ("10 requests / second", 10.0),
            ("100 requests / second", 100.0),
        ] {
            let rate = per_request * rps;
            let day = rate * 86_400.0;
            let runs_out = lasts(FREE_PUTS_PER_DAY, rate)
                .map_or_else(|| "lasts the day".to_owned(), human::run_secs);
            let _ = writeln!(
                out,
                "<tr><td>{label}</td><td class=\"n\">{}</td><td class=\"n\">{}%</td><td>{runs_out}</td></tr>",
                human::count(day.round() as u64),
                human::count((day / FREE_PUTS_PER_DAY * 100.0).round() as u64)
            );
        }
        out.push_str("</table>\n");
    }
    out.push_str("<p class=\"note\">The mock cannot tell which request (or cron tick) caused a put, so puts per request \
        is the whole Worker's writes over all completed requests. On the free plan, writes past 1,000 a day fail with \
        <code>KV put() limit exceeded for the day.</code> until 00:00 UTC.</p>\n");
}
