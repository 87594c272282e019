//! Everything a report folder holds besides `summary.json`, read back for the writers that
//! draw over time: the history (`history.jsonl`), the interval log (`latency.hlog`), the time
//! series (`timeseries.csv`) and the mock KV's accounting (`mockkv.json`).
//!
//! Reading is forgiving: a missing or unreadable file leaves its part empty and adds a note,
//! so a report can always be rendered from `summary.json` alone. This module only reads; the
//! files are written by the run (history, recorder, mock KV) and [`super::hlog`].

use std::path::Path;
use std::time::Duration;

use hdrhistogram::Histogram;

use super::hlog::{self, Interval};
use super::model::Summary;
use crate::history::Event;
use crate::mockkv::stats::Snapshot;

/// File name of the time series inside a report folder.
pub const TIMESERIES_FILE: &str = "timeseries.csv";
/// File name of the run history inside a report folder.
pub const HISTORY_FILE: &str = "history.jsonl";
/// File name of the mock KV's accounting inside a report folder.
pub const MOCKKV_FILE: &str = "mockkv.json";

/// Largest `mockkv.json` read (it is a few hundred KiB at most).
const MAX_MOCKKV_BYTES: u64 = 64 << 20;

/// One row of `timeseries.csv`.
#[derive(Debug, Clone, PartialEq)]
pub struct SeriesRow {
    /// End of the interval, seconds since the run started.
    pub t_s: f64,
    /// Request name or `all`.
    pub request: String,
    /// Completed requests in the interval.
    pub completed: u64,
    /// Errors among them.
    pub errors: u64,
    /// Dropped requests in the interval.
    pub dropped: u64,
    /// Completed per second.
    pub rps: f64,
}

/// A run as read back from its report folder.
#[derive(Debug, Clone)]
pub struct RunData {
    /// The summary.
    pub summary: Summary,
    /// The history, empty when absent.
    pub history: Vec<(Duration, Event)>,
    /// `latency.hlog` reduced to what the reports draw; empty when absent.
    pub latency: Latency,
    /// Time-series rows, empty when absent.
    pub series: Vec<SeriesRow>,
    /// The mock KV's accounting (Worker targets only).
    pub kv: Option<Snapshot>,
    /// Files that were missing or unreadable, one line each, for the reader of the report.
    pub notes: Vec<String>,
}

impl RunData {
    /// Only the summary: what a report shows when the folder holds nothing else.
    pub fn summary_only(summary: Summary) -> RunData {
        RunData {
            summary,
            history: Vec::new(),
            latency: Latency::default(),
            series: Vec::new(),
            kv: None,
            notes: Vec::new(),
        }
    }

    /// Reads the folder's other files next to `summary`.
    pub fn load(dir: &Path, summary: Summary) -> RunData {
        let mut d = RunData::summary_only(summary);
        let history = dir.join(HISTORY_FILE);
        if history.exists() {
            match crate::history::read(&history) {
                Ok(h) => d.history = h,
                Err(e) => d.notes.push(format!("{HISTORY_FILE} left out: {e}")),
            }
        }
        let hlog_path = dir.join(hlog::HLOG_FILE);
        if hlog_path.exists() {
            let mut latency = Latency::default();
            match hlog::read_each(&hlog_path, |i| latency.add(&i)) {
                Ok(()) => d.latency = latency,
                Err(e) => d.notes.push(format!("{} left out: {e}", hlog::HLOG_FILE)),
            }
        }
        let csv = dir.join(TIMESERIES_FILE);
        if csv.exists() {
            // A time series is one line a second: 256 MiB is years of it.
            match crate::resources::read_capped_text(&csv, 256 * 1024 * 1024) {
                Ok(text) => match parse_series(&text) {
                    Ok(rows) => d.series = rows,
                    Err(line) => d.notes.push(format!(
                        "{TIMESERIES_FILE} left out: line {line} is not a time-series row"
                    )),
                },
                Err(e) => d.notes.push(format!("{TIMESERIES_FILE} left out: {e}")),
            }
        }
        match read_mockkv(dir) {
            Ok(kv) => d.kv = kv,
            Err(e) => d.notes.push(format!("{MOCKKV_FILE} left out: {e}")),
        }
        d
    }

    /// The request names in scenario order.
    pub fn request_names(&self) -> Vec<&str> {
        self.summary
            .requests
            .iter()
            .map(|r| r.name.as_str())
            .collect()
    }
}

/// One interval of `latency.hlog`, reduced to the numbers the charts draw.
#[derive(Debug, Clone, PartialEq)]
pub struct IntervalPoint {
    /// The request, `None` for all requests together.
    pub tag: Option<String>,
    /// End of the interval, seconds since the run started.
    pub end_s: f64,
    /// Completed requests in the interval.
    pub count: u64,
    /// Median corrected latency, µs (0 when empty).
    pub p50_us: u64,
    /// 99th percentile, µs.
    pub p99_us: u64,
    /// Maximum, µs.
    pub max_us: u64,
}

/// The interval log of a run, reduced as it is read: three percentiles per interval and one
/// merged histogram per request (and all), so memory does not grow with decoded histograms.
#[derive(Debug, Clone, Default)]
pub struct Latency {
    /// Every interval, in log order.
    pub points: Vec<IntervalPoint>,
    /// One histogram per tag (request, or `None` for all), in order of first appearance.
    pub merged: Vec<(Option<String>, Histogram<u64>)>,
}

impl Latency {
    /// Adds one interval.
    pub fn add(&mut self, i: &Interval) {
        let h = &i.hist;
        let q = |quantile: f64| {
            if h.is_empty() {
                0
            } else {
                h.value_at_quantile(quantile)
            }
        };
        self.points.push(IntervalPoint {
            tag: i.tag.clone(),
            end_s: i.start_s + i.len_s,
            count: h.len(),
            p50_us: q(0.5),
            p99_us: q(0.99),
            max_us: if h.is_empty() { 0 } else { h.max() },
        });
        let slot = match self.merged.iter().position(|(t, _)| *t == i.tag) {
            Some(k) => k,
            None => {
                self.merged
                    .push((i.tag.clone(), crate::metrics::new_histogram()));
                self.merged.len() - 1
            }
        };
        let m = &mut self.merged[slot].1;
        // A log written by another tool may have other bounds: its values are clamped then.
        if m.add(h).is_err() {
            for v in h.iter_recorded() {
                m.saturating_record_n(v.value_iterated_to(), v.count_at_value());
            }
        }
    }

    /// Whether the log had no intervals.
    pub fn is_empty(&self) -> bool {
        self.points.is_empty()
    }

    /// The merged histogram of one request (`None`: all requests).
    pub fn merged(&self, tag: Option<&str>) -> Option<&Histogram<u64>> {
        self.merged
            .iter()
            .find(|(t, _)| t.as_deref() == tag)
            .map(|(_, h)| h)
    }
}

/// Reads `mockkv.json` from `dir`: `Ok(None)` when there is none (not a Worker target).
pub fn read_mockkv(dir: &Path) -> Result<Option<Snapshot>, String> {
    use std::io::Read;
    let path = dir.join(MOCKKV_FILE);
    if !path.exists() {
        return Ok(None);
    }
    let mut bytes = Vec::new();
    std::fs::File::open(&path)
        .and_then(|f| f.take(MAX_MOCKKV_BYTES).read_to_end(&mut bytes))
        .map_err(|e| format!("{}: cannot read: {e}", path.display()))?;
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|e| format!("{}: not a mock KV snapshot: {e}", path.display()))
}

/// Parses `timeseries.csv`; `Err` holds the 1-based number of the first bad line.
fn parse_series(text: &str) -> Result<Vec<SeriesRow>, usize> {
    let mut lines = text.lines().enumerate();
    let Some((_, header)) = lines.next() else {
        return Ok(Vec::new());
    };
    let cols: Vec<&str> = header.split(',').collect();
    let col = |name: &str| cols.iter().position(|c| *c == name);
    let (Some(t), Some(req), Some(done), Some(err), Some(drop), Some(rps)) = (
        col("t_s"),
        col("request"),
        col("completed"),
        col("errors"),
        col("dropped"),
        col("rps"),
    ) else {
        return Err(1);
    };
    let mut rows = Vec::new();
    for (i, line) in lines {
        if line.trim().is_empty() {
            continue;
        }
        let f: Vec<&str> = line.split(',').collect();
        let get = |c: usize| f.get(c).copied().ok_or(i + 1);
        let num = |c: usize| get(c).and_then(|v| v.parse::<u64>().map_err(|_| i + 1));
        let flt = |c: usize| {
            get(c).and_then(|v| v.parse::<f64>().ok().filter(|x| x.is_finite()).ok_or(i + 1))
        };
        rows.push(SeriesRow {
            t_s: flt(t)?,
            request: get(req)?.to_owned(),
            completed: num(done)?,
            errors: num(err)?,
            dropped: num(drop)?,
            rps: flt(rps)?,
        });
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn series_reads_by_column_name() {
        let text = "t_s,request,completed,ok,errors,dropped,rps,p50_us,p99_us,rss_kib\n\
                    1.000,get,10,9,1,0,10.0,100,200,1000\n1.000,all,10,9,1,2,10.0,100,200,1000\n";
        let rows = parse_series(text).expect("parses");
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[1].request, "all");
        assert_eq!(rows[1].dropped, 2);
        assert_eq!(parse_series("t_s,request\n"), Err(1));
        assert_eq!(
            parse_series("t_s,request,completed,errors,dropped,rps\n1,a,x,0,0,1\n"),
            Err(2)
        );
    }

    #[test]
    fn latency_keeps_three_numbers_per_interval_and_one_histogram_per_tag() {
        let mut l = Latency::default();
        for (tag, start_s, values) in [
            (Some("a"), 0.0, vec![100, 200, 300]),
            (None, 0.0, vec![100, 200, 300]),
            (Some("a"), 1.0, vec![]),
            (Some("a"), 2.0, vec![5_000]),
        ] {
            let mut hist = crate::metrics::new_histogram();
            for v in values {
                hist.record(v).expect("in range");
            }
            l.add(&Interval {
                tag: tag.map(str::to_owned),
                start_s,
                len_s: 1.0,
                hist,
            });
        }
        assert_eq!(l.points.len(), 4);
        assert_eq!(l.points[3].end_s, 3.0);
        assert_eq!((l.points[2].count, l.points[2].max_us), (0, 0));
        assert_eq!(l.merged.len(), 2);
        let a = l.merged(Some("a")).expect("a merged");
        assert_eq!(a.len(), 4);
        assert!(a.equivalent(a.max(), 5_000), "{}", a.max());
        assert_eq!(l.merged(None).map(|h| h.len()), Some(3));
    }

    #[test]
    fn missing_files_leave_parts_empty_and_bad_ones_add_notes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let s = crate::report::model::fixture();
        let d = RunData::load(dir.path(), s.clone());
        assert!(d.notes.is_empty() && d.history.is_empty() && d.kv.is_none());
        std::fs::write(dir.path().join(HISTORY_FILE), "nope\n").expect("written");
        std::fs::write(dir.path().join(MOCKKV_FILE), "{}").expect("written");
        let d = RunData::load(dir.path(), s);
        assert_eq!(d.notes.len(), 2, "{:?}", d.notes);
        assert!(
            d.notes[0].starts_with("history.jsonl left out:"),
            "{:?}",
            d.notes
        );
    }
}
