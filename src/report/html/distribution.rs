//! Latency distributions: one percentile curve for every request, and a histogram per request
//! (log-scale buckets), from the merged interval histograms.

use std::fmt::Write as _;

use hdrhistogram::Histogram;

use super::{HALF, WIDE};
use crate::report::data::RunData;
use crate::report::human;
use crate::report::markup::xml;
use crate::report::svg::{self, Axis, PALETTE, Plot};

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

/// The percentile curve and per-request histograms.
pub(super) fn distributions(out: &mut String, d: &RunData) {
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
    percentile_curve(out, &hists, lo, hi);
    histograms(out, &hists, lo, hi);
}

/// One percentile curve per request (and all), x on a log10(1 / (1 - q)) scale.
fn percentile_curve(out: &mut String, hists: &[(String, Histogram<u64>)], lo: f64, hi: f64) {
    let most = hists.iter().map(|(_, h)| h.len()).max().unwrap_or(1);
    // Percentile curve: x is log10(1 / (1 - q)), so 90%, 99%, 99.9% sit one step apart.
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
    out.push_str("</figure>\n");
}

/// One histogram per request: the share of its completions per log-scale latency bucket.
fn histograms(out: &mut String, hists: &[(String, Histogram<u64>)], lo: f64, hi: f64) {
    out.push_str("<h3>Histograms</h3><p class=\"note\">Share of each request's completions per latency bucket (10 buckets per decade, log scale).</p>\n<div class=\"grid2\">\n");
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
