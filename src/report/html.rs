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

mod distribution;
mod kv;
mod over_time;
mod overview;
mod timelines;

use std::fmt::Write as _;

use super::data::RunData;
use super::markup::xml;

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
    overview::header(&mut out, s);
    overview::verdicts(&mut out, s);
    overview::requests_table(&mut out, s);
    over_time::latency_over_time(&mut out, d);
    over_time::throughput_over_time(&mut out, d);
    distribution::distributions(&mut out, d);
    timelines::check_timelines(&mut out, d);
    kv::mock_kv(&mut out, d);
    overview::errors(&mut out, s);
    super::answers::html(&mut out, &s.error_answers);
    overview::footer(&mut out, d);
    out.push_str("</main></body></html>\n");
    out
}

#[cfg(test)]
pub(crate) mod tests {
    use std::time::Duration;

    use super::kv::lasts;
    use super::*;
    use crate::check::HistoryView;
    use crate::history::Event;
    use crate::history::OpKind;
    use crate::mockkv::stats::Snapshot;
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
