//! Charts over run time: corrected latency percentiles per request and throughput and error
//! rate per request, with mock KV fault windows shaded. Also the time axis and fault shading
//! the check timelines share.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use super::{FAULT_FILL, HALF, WIDE};
use crate::report::data::{IntervalPoint as Interval, RunData, SeriesRow};
use crate::report::human;
use crate::report::markup::xml;
use crate::report::model::Summary;
use crate::report::svg::{self, Axis, PALETTE, Plot};

/// The time axis shared by every chart over time: from the start to the end of the run (or of
/// the data, if later).
pub(super) fn time_axis(d: &RunData) -> Axis {
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

/// Shades each mock KV fault window (open windows until `end`).
pub(super) fn shade_faults(p: &mut Plot, s: &Summary, end: f64) {
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
) -> impl Iterator<Item = &'a Interval> + 'a {
    d.latency
        .points
        .iter()
        .filter(move |i| i.tag.as_deref() == tag)
}

/// End of an interval (s) with its p50, p99 and max (µs); `None` when it was empty.
type IntervalPoint = (f64, Option<f64>, Option<f64>, Option<f64>);

/// Latency p50, p99 and max per interval, for all requests and each request.
pub(super) fn latency_over_time(out: &mut String, d: &RunData) {
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

/// Throughput and error rate per interval, per request and for all.
pub(super) fn throughput_over_time(out: &mut String, d: &RunData) {
    out.push_str("<h2 id=\"throughput-over-time\">Throughput and errors over time</h2>\n");
    if d.series.is_empty() {
        out.push_str(
            "<p class=\"note\">No time series (timeseries.csv) in this report folder.</p>\n",
        );
        return;
    }
    let x = time_axis(d);
    let names = d.request_names();
    // Requests without a row in an interval completed nothing then: fill with zeros at the
    // times of the `all` rows so lines drop to zero instead of bridging the gap.
    let times: Vec<f64> = series_of(d, "all").map(|r| r.t_s).collect();
    let filled = |name: &str, f: &dyn Fn(&SeriesRow) -> Option<f64>, zero: Option<f64>| {
        filled_series(d, &times, name, f, zero)
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
    error_rate(out, d, x, &names, &times);
}

/// The error-rate chart, per request and for all, with the note on dropped requests.
fn error_rate(out: &mut String, d: &RunData, x: Axis, names: &[&str], times: &[f64]) {
    let filled = |name: &str, f: &dyn Fn(&SeriesRow) -> Option<f64>, zero: Option<f64>| {
        filled_series(d, times, name, f, zero)
    };
    let rate =
        |r: &SeriesRow| (r.completed > 0).then(|| 100.0 * r.errors as f64 / r.completed as f64);
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

/// Time-series rows of one request (`all`: every request), in time order.
fn series_of<'a>(d: &'a RunData, name: &'a str) -> impl Iterator<Item = &'a SeriesRow> + 'a {
    d.series.iter().filter(move |r| r.request == name)
}

/// `f` of request `name`'s rows at each of `times`, `zero` where it has no row.
fn filled_series(
    d: &RunData,
    times: &[f64],
    name: &str,
    f: &dyn Fn(&SeriesRow) -> Option<f64>,
    zero: Option<f64>,
) -> Vec<(f64, Option<f64>)> {
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
}
