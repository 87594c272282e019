//! `report.html`: the run in one self-contained page (inline CSS and SVG; no scripts, no
//! network, no external assets) to open in a browser or attach to a migration review.
//!
//! Top to bottom: the verdict and run facts; checks and thresholds; per-request numbers;
//! latency percentiles over time per request with fault windows shaded; throughput and error
//! rate over time; latency distributions (percentile curves and histograms, log scales); check
//! timelines (cron ticks, lock grants and violations, queue depth and drain) from the history;
//! the mock KV's operations by type and key prefix, quota use and a forecast of the free plan's
//! daily write quota.
//!
//! A pure function of [`RunData`]; parts whose data is missing say so instead of drawing.
//! The page is well-formed XML (a test parses it), so every text is escaped.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use hdrhistogram::Histogram;

use super::data::RunData;
use super::human;
use super::junit::xml;
use super::model::{RequestStats, StopReason, Summary};
use super::svg::{self, Axis, Marker, PALETTE, Plot, Shape};
use crate::check::{HistoryView, Operation, Verdict};
use crate::history::OpKind;
use crate::mockkv::Op;
use crate::mockkv::stats::Snapshot;

/// File name of the HTML report inside a report folder.
pub const HTML_FILE: &str = "report.html";

/// The free plan's daily write (put) quota.
pub const FREE_PUTS_PER_DAY: f64 = 1_000.0;

/// Full-width chart size.
const WIDE: (f64, f64) = (1120.0, 250.0);
/// Small-multiple chart size (two per row).
const HALF: (f64, f64) = (550.0, 220.0);
/// Most lanes in a lock timeline (the busiest locks).
const MAX_LOCK_LANES: usize = 12;
/// Most key prefixes listed.
const MAX_PREFIX_ROWS: usize = 25;

const FAULT_FILL: &str = "#c03a2b";

/// The stylesheet of the HTML reports (the comparison page uses it too).
pub(crate) const CSS_TEXT: &str = r#"
:root{--fg:#1d232b;--muted:#5b6472;--line:#d9dee5;--bg:#ffffff;--panel:#f6f8fa}
*{box-sizing:border-box}
body{margin:0;font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif;color:var(--fg);background:var(--bg)}
main{max-width:1180px;margin:0 auto;padding:24px 28px 48px}
h1{font-size:24px;margin:0 0 6px}
h2{font-size:18px;margin:34px 0 8px;padding-bottom:4px;border-bottom:1px solid var(--line)}
h3{font-size:15px;margin:18px 0 6px}
p.note,.muted{color:var(--muted)}
p.note{margin:4px 0 10px}
.badge{display:inline-block;padding:2px 9px;border-radius:4px;font-weight:700;font-size:13px;letter-spacing:.03em;color:#fff}
.badge.PASS{background:#2a9d55}.badge.FAIL{background:#c03a2b}.badge.ERROR{background:#c03a2b}.badge.UNKNOWN{background:#b07d00}.badge.NONE{background:#5b6472}
.headline{font-size:15px;margin:6px 0 14px}
.facts{display:grid;grid-template-columns:repeat(4,1fr);gap:8px 18px;background:var(--panel);border:1px solid var(--line);border-radius:6px;padding:12px 16px}
.facts div span{display:block;color:var(--muted);font-size:12px}
.facts div b{font-weight:600;word-break:break-all}
table{border-collapse:collapse;width:100%;margin:6px 0 10px;font-size:13px}
th,td{border-bottom:1px solid var(--line);padding:5px 8px;text-align:left;vertical-align:top}
th{background:var(--panel);font-weight:600}
td.n,th.n{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
td:first-child{white-space:nowrap}
td code,p code{font-size:12px;background:var(--panel);padding:1px 4px;border-radius:3px}
.grid2{display:grid;grid-template-columns:1fr 1fr;gap:14px 22px}
figure{margin:6px 0 10px}
figcaption{font-weight:600;font-size:13px;margin:0 0 2px}
svg.chart{width:100%;height:auto;display:block}
svg .grid{stroke:#e6e9ee;stroke-width:1}
svg .axis{stroke:#9aa3ae;stroke-width:1}
svg .tick{font-size:11px;fill:#5b6472}
svg .label{font-size:11px;fill:#5b6472}
svg .legend{font-size:11px;fill:#1d232b}
.bar{display:inline-block;height:10px;background:#2f6db5;vertical-align:middle;border-radius:2px}
.quota{background:#e9edf2;border-radius:3px;height:12px;width:220px;display:inline-block;vertical-align:middle;overflow:hidden}
.quota i{display:block;height:12px}
ul.evidence{margin:2px 0 8px 0;padding-left:18px;font-size:12px;color:var(--muted)}
ul.evidence li{word-break:break-word}
.fault{display:inline-block;width:12px;height:12px;background:rgba(192,58,43,.25);border:1px solid rgba(192,58,43,.6);vertical-align:middle;margin-right:4px}
footer{margin-top:40px;color:var(--muted);font-size:12px}
"#;

/// Renders the whole page.
pub fn render(d: &RunData) -> String {
    let s = &d.summary;
    let mut out = String::new();
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"/>\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"/>\
         <title>kvchaos: {}</title><style>{CSS_TEXT}</style></head><body><main>\n",
        xml(&s.scenario.name)
    );
    header(&mut out, s);
    verdicts(&mut out, s);
    requests_table(&mut out, s);
    latency_over_time(&mut out, d);
    throughput_over_time(&mut out, d);
    distributions(&mut out, d);
    check_timelines(&mut out, d);
    mock_kv(&mut out, d);
    errors(&mut out, s);
    super::answers::html(&mut out, &s.error_answers);
    footer(&mut out, d);
    out.push_str("</main></body></html>\n");
    out
}

fn header(out: &mut String, s: &Summary) {
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
    let o = &s.overall;
    let facts: Vec<(&str, String)> = vec![
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
    ];
    out.push_str("<div class=\"facts\">");
    for (k, v) in facts {
        let _ = write!(out, "<div><span>{}</span><b>{}</b></div>", xml(k), xml(&v));
    }
    out.push_str("</div>\n");
    if !s.faults.is_empty() {
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
}

fn badge(word: &str) -> String {
    format!("<span class=\"badge {word}\">{word}</span>")
}

fn verdicts(out: &mut String, s: &Summary) {
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
            xml(&t.expr),
            xml(&human::observed(t.observed, &t.unit))
        );
    }
    out.push_str("</table>\n");
}

fn requests_table(out: &mut String, s: &Summary) {
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

/// The time axis shared by every chart over time: from the start to the end of the run (or of
/// the data, if later).
fn time_axis(d: &RunData) -> Axis {
    let mut end = d.summary.duration_s;
    for i in &d.latency.points {
        end = end.max(i.end_s);
    }
    for r in &d.series {
        end = end.max(r.t_s);
    }
    for (t, _) in &d.history {
        end = end.max(t.as_secs_f64());
    }
    Axis::linear(0.0, end.max(1.0))
}

fn shade_faults(p: &mut Plot, s: &Summary, end: f64) {
    for f in &s.faults {
        p.band(
            f.set_at_s,
            f.cleared_at_s.unwrap_or(end),
            FAULT_FILL,
            &format!("fault {}: {}", f.index + 1, f.label),
        );
    }
}

/// Intervals of one request (`None`: all requests), in time order.
fn intervals_of<'a>(
    d: &'a RunData,
    tag: Option<&'a str>,
) -> impl Iterator<Item = &'a super::data::IntervalPoint> + 'a {
    d.latency
        .points
        .iter()
        .filter(move |i| i.tag.as_deref() == tag)
}

/// End of an interval (s) with its p50, p99 and max (µs); `None` when it was empty.
type IntervalPoint = (f64, Option<f64>, Option<f64>, Option<f64>);

fn latency_over_time(out: &mut String, d: &RunData) {
    out.push_str("<h2 id=\"latency-over-time\">Latency over time</h2>\n");
    if d.latency.is_empty() {
        out.push_str(
            "<p class=\"note\">No interval data (latency.hlog) in this report folder.</p>\n",
        );
        return;
    }
    out.push_str("<p class=\"note\">Corrected latency per one-second interval: p50, p99 and max, log scale. Shaded: mock KV fault windows.</p>\n<div class=\"grid2\">\n");
    let x = time_axis(d);
    let mut tags: Vec<(String, Option<&str>)> = vec![("all requests".to_owned(), None)];
    tags.extend(
        d.request_names()
            .into_iter()
            .map(|n| (n.to_owned(), Some(n))),
    );
    for (i, (title, tag)) in tags.iter().enumerate() {
        let pts: Vec<IntervalPoint> = intervals_of(d, *tag)
            .map(|iv| {
                let v = |us: u64| (iv.count > 0).then_some(us as f64);
                (iv.end_s, v(iv.p50_us), v(iv.p99_us), v(iv.max_us))
            })
            .collect();
        let lo = pts.iter().filter_map(|p| p.1).fold(f64::INFINITY, f64::min);
        let hi = pts.iter().filter_map(|p| p.3).fold(0.0, f64::max);
        let id = format!("latency-over-time-{i}");
        let _ = write!(out, "<figure><figcaption>{}</figcaption>", xml(title));
        if !lo.is_finite() {
            out.push_str("<p class=\"note\">No completed requests.</p></figure>\n");
            continue;
        }
        let mut p = Plot::new(&id, HALF.0, HALF.1, x, Axis::log(lo, hi))
            .formats(svg::fmt_secs, svg::fmt_latency)
            .labels("run time", "latency");
        shade_faults(&mut p, &d.summary, x.max);
        p.line(
            &pts.iter().map(|p| (p.0, p.1)).collect::<Vec<_>>(),
            svg::P50,
            1.8,
            "p50",
        );
        p.line(
            &pts.iter().map(|p| (p.0, p.2)).collect::<Vec<_>>(),
            svg::P99,
            2.0,
            "p99",
        );
        // Dashed and on top: at low rates the p99 of an interval is often its maximum.
        p.styled_line(
            &pts.iter().map(|p| (p.0, p.3)).collect::<Vec<_>>(),
            svg::MAX,
            1.3,
            "max",
            "5 3",
        );
        out.push_str(&p.finish(false));
        out.push_str("</figure>\n");
    }
    out.push_str("</div>\n");
}

fn throughput_over_time(out: &mut String, d: &RunData) {
    out.push_str("<h2 id=\"throughput-over-time\">Throughput and errors over time</h2>\n");
    if d.series.is_empty() {
        out.push_str(
            "<p class=\"note\">No time series (timeseries.csv) in this report folder.</p>\n",
        );
        return;
    }
    let x = time_axis(d);
    let names = d.request_names();
    fn series_of<'a>(
        d: &'a RunData,
        name: &'a str,
    ) -> impl Iterator<Item = &'a super::data::SeriesRow> + 'a {
        d.series.iter().filter(move |r| r.request == name)
    }
    // Requests without a row in an interval completed nothing then: fill with zeros at the
    // times of the `all` rows so lines drop to zero instead of bridging the gap.
    let times: Vec<f64> = series_of(d, "all").map(|r| r.t_s).collect();
    let filled =
        |name: &str, f: &dyn Fn(&super::data::SeriesRow) -> Option<f64>, zero: Option<f64>| {
            let rows: BTreeMap<u64, Option<f64>> = series_of(d, name)
                .map(|r| ((r.t_s * 1000.0).round() as u64, f(r)))
                .collect();
            times
                .iter()
                .map(|t| {
                    let v = rows
                        .get(&((t * 1000.0).round() as u64))
                        .copied()
                        .unwrap_or(zero);
                    (*t, v)
                })
                .collect::<Vec<_>>()
        };
    let max_rps = d.series.iter().map(|r| r.rps).fold(0.0, f64::max);
    let mut p = Plot::new(
        "throughput",
        WIDE.0,
        WIDE.1,
        x,
        Axis::linear_to(max_rps * 1.05),
    )
    .formats(svg::fmt_secs, svg::fmt_num)
    .labels("run time", "completed requests / s");
    shade_faults(&mut p, &d.summary, x.max);
    for (i, n) in names.iter().enumerate() {
        p.line(
            &filled(n, &|r| Some(r.rps), Some(0.0)),
            PALETTE[i % PALETTE.len()],
            1.4,
            n,
        );
    }
    p.line(
        &filled("all", &|r| Some(r.rps), Some(0.0)),
        "#1d232b",
        2.2,
        "all",
    );
    out.push_str("<figure><figcaption>Throughput</figcaption>");
    out.push_str(&p.finish(false));
    out.push_str("</figure>\n");

    let rate = |r: &super::data::SeriesRow| {
        (r.completed > 0).then(|| 100.0 * r.errors as f64 / r.completed as f64)
    };
    let max_err = d.series.iter().filter_map(rate).fold(0.0, f64::max);
    let mut p = Plot::new(
        "error-rate",
        WIDE.0,
        WIDE.1,
        x,
        // At most 100%, which a fully failing interval reaches.
        Axis::linear(
            0.0,
            if max_err > 0.0 {
                svg::nice_ceiling(max_err * 1.05).min(100.0)
            } else {
                1.0
            },
        ),
    )
    .formats(svg::fmt_secs, svg::fmt_pct)
    .labels("run time", "errors / completed");
    shade_faults(&mut p, &d.summary, x.max);
    for (i, n) in names.iter().enumerate() {
        p.line(&filled(n, &rate, None), PALETTE[i % PALETTE.len()], 1.4, n);
    }
    p.line(&filled("all", &rate, None), "#1d232b", 2.2, "all");
    let dropped: u64 = series_of(d, "all").map(|r| r.dropped).sum();
    out.push_str("<figure><figcaption>Error rate</figcaption>");
    out.push_str(&p.finish(false));
    out.push_str("</figure>\n");
    if dropped > 0 {
        let _ = writeln!(
            out,
            "<p class=\"note\">{} requests were dropped (due while <code>max_in_flight</code> requests were running).</p>",
            human::count(dropped)
        );
    }
}

/// Each request's (and all requests') merged histogram, requests in scenario order, then all.
fn merged(d: &RunData) -> Vec<(String, Histogram<u64>)> {
    let mut names: Vec<(String, Option<&str>)> = d
        .request_names()
        .into_iter()
        .map(|n| (n.to_owned(), Some(n)))
        .collect();
    names.push(("all".to_owned(), None));
    names
        .into_iter()
        .map(|(name, tag)| {
            let h = d
                .latency
                .merged(tag)
                .cloned()
                .unwrap_or_else(crate::metrics::new_histogram);
            (name, h)
        })
        .collect()
}

fn distributions(out: &mut String, d: &RunData) {
    out.push_str("<h2 id=\"distribution\">Latency distribution</h2>\n");
    if d.latency.is_empty() {
        out.push_str(
            "<p class=\"note\">No interval data (latency.hlog) in this report folder.</p>\n",
        );
        return;
    }
    let hists = merged(d);
    let nonempty: Vec<&(String, Histogram<u64>)> =
        hists.iter().filter(|(_, h)| !h.is_empty()).collect();
    if nonempty.is_empty() {
        out.push_str("<p class=\"note\">No completed requests.</p>\n");
        return;
    }
    let lo = nonempty
        .iter()
        .map(|(_, h)| h.min())
        .min()
        .unwrap_or(1)
        .max(1) as f64;
    let hi = nonempty
        .iter()
        .map(|(_, h)| h.max())
        .max()
        .unwrap_or(1)
        .max(1) as f64;
    // Percentile curve: x is log10(1 / (1 - q)), so 90%, 99%, 99.9% sit one step apart.
    let most = nonempty.iter().map(|(_, h)| h.len()).max().unwrap_or(1);
    let x_end = (most as f64).log10().ceil().clamp(2.0, 5.0);
    let labels = ["0%", "90%", "99%", "99.9%", "99.99%", "99.999%"];
    let ticks: Vec<(f64, String)> = (0..=x_end as usize)
        .map(|i| (i as f64, labels[i].to_owned()))
        .collect();
    let mut p = Plot::new(
        "percentiles",
        WIDE.0,
        280.0,
        Axis::linear(0.0, x_end),
        Axis::log(lo, hi),
    )
    .formats(svg::fmt_num, svg::fmt_latency)
    .labels("percentile", "latency")
    .x_ticks(ticks);
    for (i, (name, h)) in hists.iter().enumerate() {
        if h.is_empty() {
            continue;
        }
        let steps = (x_end * 40.0) as usize;
        let mut pts: Vec<(f64, Option<f64>)> = (0..=steps)
            .map(|k| {
                let x = x_end * k as f64 / steps as f64;
                let quantile = 1.0 - 10f64.powf(-x);
                (x, Some(h.value_at_quantile(quantile) as f64))
            })
            .collect();
        // Beyond 1/count the curve is the maximum.
        let resolution = (h.len() as f64).log10();
        pts.retain(|(x, _)| *x <= resolution.max(0.0) + 0.3);
        let (color, width) = if name == "all" {
            ("#1d232b", 2.2)
        } else {
            (PALETTE[i % PALETTE.len()], 1.5)
        };
        p.line(&pts, color, width, name);
    }
    out.push_str("<figure><figcaption>Percentile curve (corrected latency)</figcaption>");
    out.push_str(&p.finish(false));
    out.push_str("</figure>\n<h3>Histograms</h3><p class=\"note\">Share of each request's completions per latency bucket (10 buckets per decade, log scale).</p>\n<div class=\"grid2\">\n");
    let x = Axis::log(lo, hi);
    let per_decade = 10.0;
    let bucket = |v: f64| ((v.max(x.min).log10() - x.min.log10()) * per_decade).floor() as usize;
    let n_buckets = ((x.max.log10() - x.min.log10()) * per_decade).ceil() as usize + 1;
    for (i, (name, h)) in hists.iter().enumerate() {
        if name == "all" || h.is_empty() {
            continue;
        }
        let mut counts = vec![0u64; n_buckets];
        for v in h.iter_recorded() {
            let b = bucket(v.value_iterated_to() as f64).min(n_buckets - 1);
            counts[b] += v.count_at_value();
        }
        let total = h.len() as f64;
        let top = counts.iter().copied().max().unwrap_or(0) as f64 / total * 100.0;
        let mut p = Plot::new(
            &format!("histogram-{i}"),
            HALF.0,
            HALF.1,
            x,
            Axis::linear_to(top),
        )
        .formats(svg::fmt_latency, svg::fmt_pct)
        .labels("latency", "share of requests");
        for (b, c) in counts.iter().enumerate() {
            if *c == 0 {
                continue;
            }
            let x0 = 10f64.powf(x.min.log10() + b as f64 / per_decade);
            let x1 = 10f64.powf(x.min.log10() + (b + 1) as f64 / per_decade);
            p.bar(
                x0,
                x1,
                *c as f64 / total * 100.0,
                PALETTE[i % PALETTE.len()],
                &format!(
                    "{} – {}: {} requests",
                    svg::fmt_latency(x0),
                    svg::fmt_latency(x1),
                    human::count(*c)
                ),
            );
        }
        let _ = write!(out, "<figure><figcaption>{}</figcaption>", xml(name));
        out.push_str(&p.finish(false));
        out.push_str("</figure>\n");
    }
    out.push_str("</div>\n");
}

fn secs(t: Duration) -> f64 {
    t.as_secs_f64()
}

fn check_timelines(out: &mut String, d: &RunData) {
    out.push_str("<h2 id=\"check-timelines\">Checks over time</h2>\n");
    let view = HistoryView::new(&d.history);
    let x = time_axis(d);
    let mut absent = Vec::new();
    if !cron_timeline(out, d, &view, x) {
        absent.push("cron ticks");
    }
    if !lock_timeline(out, d, &view, x) {
        absent.push("lock operations");
    }
    if !queue_timeline(out, d, &view, x) {
        absent.push("queue operations");
    }
    if !absent.is_empty() {
        let _ = writeln!(
            out,
            "<p class=\"note\">No {} in this run's history.</p>",
            absent.join(", no ")
        );
    }
}

fn check_line(out: &mut String, s: &Summary, name: &str) {
    if let Some(c) = s.checks.iter().find(|c| c.name == name) {
        let _ = writeln!(
            out,
            "<p>{} {}</p>",
            badge(human::verdict_word(c.verdict)),
            xml(&c.reason)
        );
    }
}

fn outcome_style(op: &Operation) -> (&'static str, Shape, &'static str) {
    match op.completion.as_ref().map(|c| c.kind) {
        Some(OpKind::Ok) => (svg::OK, Shape::Dot, "ok"),
        Some(OpKind::Fail) => (svg::BAD, Shape::Cross, "fail"),
        _ => (svg::INFO, Shape::Dot, "info (no answer)"),
    }
}

fn cron_timeline(out: &mut String, d: &RunData, view: &HistoryView, x: Axis) -> bool {
    let ticks: Vec<&Operation> = view.ops_of("cron", "tick").collect();
    if ticks.is_empty() {
        return false;
    }
    let mut crons: Vec<&str> = ticks
        .iter()
        .map(|t| t.str_field("cron").unwrap_or("?"))
        .collect();
    crons.sort_unstable();
    crons.dedup();
    out.push_str("<h3>Cron ticks</h3>\n");
    check_line(out, &d.summary, "cron");
    let n = crons.len();
    let mut p = Plot::new(
        "cron-timeline",
        WIDE.0,
        60.0 + 34.0 * n as f64,
        x,
        Axis::linear(0.0, 1.0),
    )
    .formats(svg::fmt_secs, svg::fmt_num)
    .labels("run time", "")
    .left_margin(120.0);
    shade_faults(&mut p, &d.summary, x.max);
    for (i, c) in crons.iter().enumerate() {
        p.lane_label((i, n), c);
    }
    let mut drawn = std::collections::HashSet::new();
    for t in &ticks {
        let lane = crons
            .iter()
            .position(|c| Some(*c) == t.str_field("cron").or(Some("?")))
            .unwrap_or(0);
        let (color, shape, word) = outcome_style(t);
        // One mark per lane, pixel column and outcome: long runs stay small.
        if !drawn.insert((lane, p.column(secs(t.t)), word)) {
            continue;
        }
        p.marker(
            secs(t.t),
            Marker::Lane(lane, n),
            shape,
            color,
            &format!("{}: tick {word}", svg::fmt_secs(secs(t.t))),
        );
        p.legend(&format!("tick {word}"), color);
    }
    out.push_str(&p.finish(true));
    true
}

/// Run times of a check's evidence lines (the first `12.345s` in each), for violation marks.
fn evidence_times(s: &Summary, check: &str) -> Vec<(f64, String)> {
    let Some(c) = s.checks.iter().find(|c| c.name == check) else {
        return Vec::new();
    };
    c.evidence
        .iter()
        .filter_map(|line| {
            let t = line.split_whitespace().find_map(|w| {
                let w = w.trim_matches(|c: char| c == '(' || c == ')' || c == ',' || c == ':');
                let n = w.strip_suffix('s')?;
                let (a, b) = n.split_once('.')?;
                (b.len() == 3 && a.chars().all(|c| c.is_ascii_digit()))
                    .then(|| n.parse::<f64>().ok())
                    .flatten()
            })?;
            Some((t, line.clone()))
        })
        .collect()
}

fn lock_timeline(out: &mut String, d: &RunData, view: &HistoryView, x: Axis) -> bool {
    let acquires: Vec<&Operation> = view.ops_of("lock", "acquire").collect();
    if acquires.is_empty() {
        return false;
    }
    let releases: Vec<&Operation> = view.ops_of("lock", "release").collect();
    let mut by_lock: BTreeMap<&str, usize> = BTreeMap::new();
    for a in &acquires {
        *by_lock
            .entry(a.str_field("lock").unwrap_or("?"))
            .or_default() += 1;
    }
    let mut locks: Vec<(&str, usize)> = by_lock.into_iter().collect();
    locks.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    let hidden = locks.len().saturating_sub(MAX_LOCK_LANES);
    locks.truncate(MAX_LOCK_LANES);
    let n = locks.len();
    out.push_str("<h3>Locks</h3>\n");
    check_line(out, &d.summary, "lock");
    let mut p = Plot::new(
        "lock-timeline",
        WIDE.0,
        60.0 + 30.0 * n as f64,
        x,
        Axis::linear(0.0, 1.0),
    )
    .formats(svg::fmt_secs, svg::fmt_num)
    .labels("run time", "")
    .left_margin(120.0);
    shade_faults(&mut p, &d.summary, x.max);
    for (i, (l, _)) in locks.iter().enumerate() {
        p.lane_label((i, n), l);
    }
    let mut drawn = std::collections::HashSet::new();
    for a in &acquires {
        let lock = a.str_field("lock").unwrap_or("?");
        let Some(lane) = locks.iter().position(|(l, _)| *l == lock) else {
            continue;
        };
        // One mark per lane, pixel column and outcome: long runs stay small.
        let at = a.done_t().filter(|_| a.is_ok()).unwrap_or(a.t);
        if !drawn.insert((lane, p.column(secs(at)), a.outcome() as u8)) {
            continue;
        }
        let holder = a.str_field("holder").unwrap_or("?");
        match (a.outcome(), a.done_t()) {
            (OpKind::Ok, Some(ok_t)) => {
                let token = a.u64_field("token");
                let release = releases
                    .iter()
                    .filter(|r| {
                        r.t >= ok_t
                            && r.str_field("lock") == Some(lock)
                            && r.str_field("holder") == Some(holder)
                            && r.u64_field("token") == token
                    })
                    .map(|r| r.t)
                    .min();
                let end = release.map_or(secs(ok_t) + 0.15, secs);
                p.hbar(
                    (lane, n),
                    secs(ok_t),
                    end,
                    svg::OK,
                    &format!(
                        "{} granted to {holder} (token {}) at {}{}",
                        lock,
                        token.map_or_else(|| "?".to_owned(), |t| t.to_string()),
                        svg::fmt_secs(secs(ok_t)),
                        release.map_or_else(
                            || ", no release seen".to_owned(),
                            |r| format!(", released at {}", svg::fmt_secs(secs(r)))
                        )
                    ),
                );
                p.legend("held (grant to release)", svg::OK);
            }
            (OpKind::Fail, _) => {
                p.marker(
                    secs(a.t),
                    Marker::Lane(lane, n),
                    Shape::Tick,
                    svg::WARN,
                    &format!("{holder}: acquire refused at {}", svg::fmt_secs(secs(a.t))),
                );
                p.legend("acquire refused", svg::WARN);
            }
            _ => {
                p.marker(
                    secs(a.t),
                    Marker::Lane(lane, n),
                    Shape::Tick,
                    svg::INFO,
                    &format!(
                        "{holder}: acquire without answer at {}",
                        svg::fmt_secs(secs(a.t))
                    ),
                );
                p.legend("acquire, no answer", svg::INFO);
            }
        }
    }
    for (t, line) in evidence_times(&d.summary, "lock") {
        p.marker(t, Marker::Y(0.5), Shape::Rule, svg::BAD, &line);
        p.legend("violation", svg::BAD);
    }
    out.push_str(&p.finish(true));
    if hidden > 0 {
        let _ = writeln!(
            out,
            "<p class=\"note\">{hidden} less busy locks not shown.</p>"
        );
    }
    true
}

fn queue_timeline(out: &mut String, d: &RunData, view: &HistoryView, x: Axis) -> bool {
    let enqueues: Vec<&Operation> = view.ops_of("producer", "enqueue").collect();
    if enqueues.is_empty() {
        return false;
    }
    // Depth: acknowledged enqueues whose task has not been completed yet, by distinct id.
    let mut steps: Vec<(Duration, i64)> = Vec::new();
    let mut enqueued = std::collections::HashSet::new();
    for e in enqueues.iter().filter(|e| e.is_ok()) {
        if let (Some(id), Some(t)) = (e.str_field("id"), e.done_t())
            && enqueued.insert(id)
        {
            steps.push((t, 1));
        }
    }
    let mut completed = std::collections::HashSet::new();
    for c in view.ops_of("consumer", "complete").filter(|c| c.is_ok()) {
        if let (Some(id), Some(t)) = (c.str_field("id"), c.done_t())
            && enqueued.contains(id)
            && completed.insert(id)
        {
            steps.push((t, -1));
        }
    }
    // A task the final drain found done (completed by a consumer whose answer was lost, or
    // never seen completing) leaves the queue when the drain saw it.
    for r in view.ops_of("drain", "result").filter(|r| r.is_ok()) {
        if let (Some(id), Some(t), Some("done")) =
            (r.str_field("id"), r.done_t(), r.str_field("status"))
            && enqueued.contains(id)
            && completed.insert(id)
        {
            steps.push((t, -1));
        }
    }
    steps.sort_by_key(|s| s.0);
    let mut depth = 0i64;
    let mut pts: Vec<(f64, Option<f64>)> = vec![(0.0, Some(0.0))];
    let mut max_depth = 0i64;
    for (t, delta) in steps {
        pts.push((secs(t), Some(depth as f64)));
        depth += delta;
        max_depth = max_depth.max(depth);
        pts.push((secs(t), Some(depth as f64)));
    }
    let drains: Vec<&Operation> = view.ops_of("drain", "result").collect();
    out.push_str("<h3>Queue</h3>\n");
    check_line(out, &d.summary, "queue");
    let mut p = Plot::new(
        "queue-depth",
        WIDE.0,
        220.0,
        x,
        Axis::counts_to(max_depth as f64 * 1.1),
    )
    .formats(svg::fmt_secs, svg::fmt_num)
    .labels("run time", "tasks enqueued, not yet completed");
    shade_faults(&mut p, &d.summary, x.max);
    if let (Some(first), Some(last)) = (
        drains.iter().map(|o| o.t).min(),
        drains.iter().filter_map(|o| o.done_t().or(Some(o.t))).max(),
    ) {
        p.band(secs(first), secs(last), "#2f6db5", "final drain reads");
        p.legend("final drain", "#2f6db5");
    }
    if let Some(t) = pts.last().map(|p| p.0) {
        pts.push((t.max(x.max.min(d.summary.duration_s)), Some(depth as f64)));
    }
    p.line(&pts, "#8d5fc4", 1.8, "queue depth");
    for (t, line) in evidence_times(&d.summary, "queue") {
        p.marker(t, Marker::Y(0.0), Shape::Rule, svg::BAD, &line);
        p.legend("anomaly", svg::BAD);
    }
    out.push_str(&p.finish(false));
    if let Some(c) = d.summary.checks.iter().find(|c| c.name == "queue") {
        let pick = |k: &str| c.counts.get(k).copied();
        let mut facts = Vec::new();
        for k in [
            "tasks",
            "lost",
            "duplicated",
            "unexpected",
            "recovered",
            "undrained",
        ] {
            if let Some(v) = pick(k) {
                facts.push(format!("{k} {}", human::count(v)));
            }
        }
        if let Some(ms) = pick("drain_ms") {
            facts.push(format!("drain time {}", human::latency_us(ms * 1000)));
        }
        if !facts.is_empty() {
            let _ = writeln!(out, "<p class=\"note\">{}</p>", xml(&facts.join(" · ")));
        }
    }
    true
}

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

fn mock_kv(out: &mut String, d: &RunData) {
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
pub(crate) fn put_rates(s: &Summary, kv: &Snapshot) -> (u64, f64, f64) {
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
fn lasts(quota: f64, per_sec: f64) -> Option<f64> {
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

fn errors(out: &mut String, s: &Summary) {
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

fn footer(out: &mut String, d: &RunData) {
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

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::history::Event;
    use crate::report::data::SeriesRow;
    use crate::report::hlog::Interval;
    use crate::report::model::fixture;
    use serde_json::json;

    /// A fixture run with every kind of data: intervals for both requests, a time series, a
    /// history with cron ticks, locks (one double grant) and a queue with a drain, and a mock
    /// KV snapshot.
    pub(crate) fn fixture_data() -> RunData {
        let s = fixture();
        let mut latency = crate::report::data::Latency::default();
        let mut series = Vec::new();
        for sec in 0..71u64 {
            let faulted = (20..51).contains(&sec);
            let mut all = crate::metrics::new_histogram();
            for (k, name) in ["get_config", "acquire_lock"].iter().enumerate() {
                let mut h = crate::metrics::new_histogram();
                for i in 1..=(40 + 10 * k as u64) {
                    let base = 800 + 300 * k as u64 + i * 17;
                    let v = if faulted && i % 7 == 0 {
                        base * 120
                    } else {
                        base
                    };
                    h.record(v).expect("in range");
                }
                all.add(&h).expect("same bounds");
                latency.add(&Interval {
                    tag: Some((*name).to_owned()),
                    start_s: sec as f64,
                    len_s: 1.0,
                    hist: h,
                });
                series.push(SeriesRow {
                    t_s: sec as f64 + 1.0,
                    request: (*name).to_owned(),
                    completed: 40 + 10 * k as u64,
                    errors: if faulted && k == 1 { 6 } else { 0 },
                    dropped: 0,
                    rps: (40 + 10 * k) as f64,
                });
            }
            latency.add(&Interval {
                tag: None,
                start_s: sec as f64,
                len_s: 1.0,
                hist: all,
            });
            series.push(SeriesRow {
                t_s: sec as f64 + 1.0,
                request: "all".to_owned(),
                completed: 90,
                errors: if faulted { 6 } else { 0 },
                dropped: 0,
                rps: 90.0,
            });
        }
        let ms = Duration::from_millis;
        let op = |t: u64, p: &str, k: OpKind, f: &str, v: serde_json::Value| {
            (ms(t), Event::op(p, k, f, v))
        };
        let mut history = vec![
            (
                ms(20_000),
                Event::FaultSet {
                    index: 0,
                    label: "daily-limit put queue:*".to_owned(),
                },
            ),
            (
                ms(50_500),
                Event::FaultCleared {
                    index: 0,
                    label: "daily-limit put queue:*".to_owned(),
                    kv_ops: None,
                },
            ),
        ];
        for i in 0..70u64 {
            let t = i * 1000 + 500;
            let kind = if (21..24).contains(&i) {
                OpKind::Fail
            } else {
                OpKind::Ok
            };
            history.push(op(
                t,
                "cron",
                OpKind::Invoke,
                "tick",
                json!({"cron": "*/1 * * * *", "scheduled_ms": 1_700_000_000_000u64 + i * 60_000}),
            ));
            history.push(op(
                t + 30,
                "cron",
                kind,
                "tick",
                json!({"cron": "*/1 * * * *", "scheduled_ms": 1_700_000_000_000u64 + i * 60_000}),
            ));
        }
        // Locks: two clients taking turns on "jobs", one grant overlapping another.
        for i in 0..20u64 {
            let t = i * 3000 + 1000;
            let p = format!("lock-{}", i % 2);
            let holder = format!("h{}", i % 2);
            history.push(op(
                t,
                &p,
                OpKind::Invoke,
                "acquire",
                json!({"lock": "jobs", "holder": holder, "ttl_ms": 5000}),
            ));
            history.push(op(t + 20, &p, OpKind::Ok, "acquire", json!({"lock": "jobs", "holder": holder, "token": i + 1, "expires_at": 1_700_000_000_000u64 + t + 5000})));
            if i != 7 {
                history.push(op(
                    t + 1500,
                    &p,
                    OpKind::Invoke,
                    "release",
                    json!({"lock": "jobs", "holder": holder, "token": i + 1}),
                ));
                history.push(op(
                    t + 1520,
                    &p,
                    OpKind::Ok,
                    "release",
                    json!({"lock": "jobs", "holder": holder, "token": i + 1}),
                ));
            }
        }
        history.push(op(
            30_000,
            "lock-9",
            OpKind::Invoke,
            "acquire",
            json!({"lock": "cron", "holder": "h9", "ttl_ms": 5000}),
        ));
        history.push(op(
            30_040,
            "lock-9",
            OpKind::Fail,
            "acquire",
            json!({"lock": "cron", "holder": "h9", "reason": "409"}),
        ));
        // Queue: 30 tasks, completed two seconds later, except during the fault.
        for i in 0..30u64 {
            let t = i * 2000 + 300;
            let id = format!("task-{i}");
            history.push(op(
                t,
                "producer-0",
                OpKind::Invoke,
                "enqueue",
                json!({"id": id}),
            ));
            history.push(op(
                t + 10,
                "producer-0",
                OpKind::Ok,
                "enqueue",
                json!({"id": id, "duplicate": false}),
            ));
            let done = if (20_000..50_000).contains(&t) {
                52_000 + i * 100
            } else {
                t + 2000
            };
            history.push(op(
                done,
                &format!("consumer-{i}"),
                OpKind::Invoke,
                "complete",
                json!({"id": id, "consumer": "c"}),
            ));
            history.push(op(
                done + 5,
                &format!("consumer-{i}"),
                OpKind::Ok,
                "complete",
                json!({"id": id}),
            ));
            history.push(op(
                66_000 + i * 10,
                &format!("drain-{i}"),
                OpKind::Invoke,
                "result",
                json!({"id": id}),
            ));
            history.push(op(
                66_005 + i * 10,
                &format!("drain-{i}"),
                OpKind::Ok,
                "result",
                json!({"id": id, "status": "done", "result": null}),
            ));
        }
        history.sort_by_key(|(t, _)| *t);
        let mut s = s;
        let view = HistoryView::new(&history);
        s.checks = vec![
            crate::check::cron::check(&view, &Default::default()),
            crate::check::lock::check(&view, &Default::default()),
            crate::check::queue::check(&view, &Default::default()),
        ];
        let kv: Snapshot = serde_json::from_value(json!({
            "now_ms": 1_700_000_071_000u64,
            "counts": [
                {"namespace": "KV", "op": "get", "prefix": "config:", "outcome": "ok", "count": 8123},
                {"namespace": "KV", "op": "get", "prefix": "config:", "outcome": "miss", "count": 908},
                {"namespace": "KV", "op": "put", "prefix": "lock:", "outcome": "ok", "count": 1812},
                {"namespace": "KV", "op": "put", "prefix": "lock:", "outcome": "daily-limit", "count": 212},
                {"namespace": "KV", "op": "put", "prefix": "cron:", "outcome": "ok", "count": 67},
                {"namespace": "KV", "op": "put", "prefix": "cron:", "outcome": "daily-limit", "count": 3},
                {"namespace": "KV", "op": "delete", "prefix": "lock:", "outcome": "ok", "count": 1790},
                {"namespace": "KV", "op": "list", "prefix": "queue:", "outcome": "ok", "count": 140}
            ],
            "writes": [{"namespace": "KV", "puts_with_ttl": 1812, "puts_without_ttl": 67, "bytes_written": 96_000}],
            "quota": [
                {"account": "default", "op": "get", "used": 9031, "limit": 100000, "left": 90969},
                {"account": "default", "op": "put", "used": 1000, "limit": 1000, "left": 0},
                {"account": "default", "op": "delete", "used": 1000, "limit": 1000, "left": 0},
                {"account": "default", "op": "list", "used": 140, "limit": 1000, "left": 860}
            ],
            "faults": [],
            "journal": []
        }))
        .expect("snapshot fixture");
        RunData {
            summary: s,
            history,
            latency,
            series,
            kv: Some(kv),
            notes: Vec::new(),
        }
    }

    /// Parses `doc` as XML; returns the ids of every element that has one.
    pub(crate) fn parse_ids(doc: &str) -> Vec<String> {
        let mut reader = quick_xml::Reader::from_str(doc);
        let mut ids = Vec::new();
        let mut depth = 0i64;
        loop {
            match reader.read_event() {
                Ok(quick_xml::events::Event::Eof) => break,
                Ok(quick_xml::events::Event::Start(e)) => {
                    depth += 1;
                    if let Some(Ok(a)) = e.try_get_attribute("id").transpose() {
                        ids.push(String::from_utf8_lossy(&a.value).into_owned());
                    }
                }
                Ok(quick_xml::events::Event::Empty(e)) => {
                    if let Some(Ok(a)) = e.try_get_attribute("id").transpose() {
                        ids.push(String::from_utf8_lossy(&a.value).into_owned());
                    }
                }
                Ok(quick_xml::events::Event::End(_)) => depth -= 1,
                Ok(_) => {}
                Err(e) => panic!(
                    "not well-formed at byte {}: {e}\n{}",
                    reader.buffer_position(),
                    &doc[(reader.buffer_position() as usize).saturating_sub(200)
                        ..(reader.buffer_position() as usize + 50).min(doc.len())]
                ),
            }
        }
        assert_eq!(depth, 0, "unbalanced elements");
        ids
    }

    #[test]
    fn fixture_page_parses_and_has_every_chart() {
        let d = fixture_data();
        let page = render(&d);
        // For looking at it: scripts/render-html.sh renders the file to a PNG.
        if let Some(path) = std::env::var_os("KVCHAOS_FIXTURE_HTML") {
            std::fs::write(path, &page).expect("fixture page written");
        }
        let ids = parse_ids(&page);
        for id in [
            "verdicts",
            "latency-over-time",
            "latency-over-time-0",
            "latency-over-time-1",
            "latency-over-time-2",
            "throughput",
            "error-rate",
            "percentiles",
            "histogram-0",
            "histogram-1",
            "check-timelines",
            "cron-timeline",
            "lock-timeline",
            "queue-depth",
            "kv-ops",
            "forecast",
        ] {
            assert!(ids.iter().any(|i| i == id), "no #{id} in {ids:?}");
        }
        // Fault windows are shaded in every chart over time.
        assert!(page.matches("fault 1: daily-limit put queue:*").count() >= 8);
        // No external resources: no scripts, links or remote URLs.
        for bad in [
            "<script",
            "<link",
            "src=\"http",
            "href=\"http",
            "@import",
            "url(",
        ] {
            assert!(!page.contains(bad), "page contains {bad}");
        }
        // The forecast: 2,094 puts over 11,289 requests.
        assert!(page.contains("0.185 puts per request"), "forecast missing");
        // The lock check found the unreleased grant overlapping the next one.
        assert!(page.contains("violation"), "no violation mark");
    }

    /// An hour at one interval a second, with a cron tick every second and a lock grant every
    /// 100 ms, stays a page a browser opens at once.
    #[test]
    fn an_hour_long_run_stays_small() {
        let mut d = RunData::summary_only(fixture());
        d.summary.duration_s = 3600.0;
        d.summary.faults.clear();
        let mut ivs: Vec<Interval> = [Some("get_config"), Some("acquire_lock"), None]
            .into_iter()
            .map(|tag| Interval {
                tag: tag.map(str::to_owned),
                start_s: 0.0,
                len_s: 1.0,
                hist: crate::metrics::new_histogram(),
            })
            .collect();
        for sec in 0..3600u64 {
            for iv in &mut ivs {
                iv.hist.reset();
                iv.start_s = sec as f64;
                for i in 0..20 {
                    iv.hist
                        .record(1_000 + (sec * 7 + i * 13) % 5_000)
                        .expect("in range");
                }
                d.latency.add(iv);
            }
            let v = json!({"cron": "* * * * *", "scheduled_ms": sec * 60_000});
            let t = Duration::from_secs(sec);
            d.history
                .push((t, Event::op("cron", OpKind::Invoke, "tick", v.clone())));
            d.history
                .push((t, Event::op("cron", OpKind::Ok, "tick", v)));
            for k in 0..10u64 {
                let t = Duration::from_millis(sec * 1000 + k * 100);
                let v =
                    json!({"lock": "jobs", "holder": "h", "token": sec * 10 + k, "expires_at": 1});
                d.history
                    .push((t, Event::op("lock-1", OpKind::Invoke, "acquire", v.clone())));
                d.history
                    .push((t, Event::op("lock-1", OpKind::Ok, "acquire", v)));
            }
        }
        let page = render(&d);
        parse_ids(&page);
        assert!(page.len() < 2_000_000, "{} bytes", page.len());
    }

    #[test]
    fn summary_only_page_says_what_is_missing() {
        let page = render(&RunData::summary_only(fixture()));
        parse_ids(&page);
        assert!(page.contains("No interval data (latency.hlog)"));
        assert!(page.contains("No time series (timeseries.csv)"));
        assert!(page.contains("No mock KV in this run"));
        assert!(page.contains("No cron ticks, no lock operations, no queue operations"));
    }

    #[test]
    fn hostile_names_are_escaped() {
        let mut d = fixture_data();
        d.summary.scenario.name = "<b>&x</b>".to_owned();
        d.summary.errors[0].message = "</code><script>alert(1)</script>".to_owned();
        let page = render(&d);
        parse_ids(&page);
        assert!(!page.contains("<script"));
    }

    #[test]
    fn quota_lasts() {
        assert_eq!(lasts(1000.0, 0.0), None);
        assert_eq!(lasts(1000.0, 0.01), None);
        assert_eq!(lasts(1000.0, 1.0), Some(1000.0));
    }
}
