//! The recorder: owns every latency histogram. Engine threads record into per-thread shards;
//! once a second [`Recorder::tick`] folds the shards into the run totals, writes one time-series
//! row per request, hands each closed interval's histograms to an optional [`IntervalSink`]
//! (the `latency.hlog` writer) and publishes a [`Live`] snapshot. Memory stays flat however
//! long the run: a fixed number of histograms, reset and reused every interval.
//!
//! Does not touch the terminal or decide pass/fail beyond evaluating thresholds on totals.

mod cell;
pub mod thresholds;
mod totals;
pub mod windows;

use std::io::Write;

use hdrhistogram::Histogram;

use crate::outcome::Class;
use crate::summary::ErrorSample;
pub use cell::{Cell, HIST_HIGH_US, HIST_LOW_US, HIST_SIGFIG, Shard, ShardHandle, new_histogram};
use cell::{Cells, ErrorCounts};
pub use totals::{LIVE_BUCKETS_US, RequestLive, Totals, percentiles};

/// What the last interval and the run so far look like; sent to the live display.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Live {
    /// Seconds since the run started.
    pub elapsed_s: f64,
    /// Requests completed in the last interval, per second.
    pub rps: f64,
    /// Median corrected latency of the last interval, µs.
    pub p50_us: u64,
    /// 99th percentile corrected latency of the last interval, µs.
    pub p99_us: u64,
    /// Errors in the last interval.
    pub errors: u64,
    /// Requests completed since the start.
    pub completed: u64,
    /// Errors since the start.
    pub errors_total: u64,
    /// Requests dropped since the start (recorded so far).
    pub dropped_total: u64,
}

/// The recorder of one run.
pub struct Recorder {
    names: Vec<String>,
    shards: Vec<ShardHandle>,
    interval: Cells,
    interval_dropped: Vec<u64>,
    totals: Cells,
    dropped: Vec<u64>,
    errors: ErrorCounts,
    answers: crate::engine::errors::Answers,
    scratch: Histogram<u64>,
    scratch_all: Histogram<u64>,
    csv: Option<Box<dyn Write + Send>>,
    sink: Option<Box<dyn IntervalSink>>,
    live: Live,
    /// The last interval of each request, for [`Recorder::requests_live`].
    last: Vec<LastInterval>,
    /// Totals by window (index as [`Window::index`](crate::scenario::plan::Window::index)).
    windowed: [Cells; 3],
    windowed_dropped: [Vec<u64>; 3],
    windows: std::sync::Arc<windows::Windows>,
}

/// One request's last interval, kept for the dashboard.
#[derive(Debug, Clone, Copy, Default)]
struct LastInterval {
    rps: f64,
    p50_us: u64,
    p99_us: u64,
}

/// Receives the corrected-latency histogram of every interval as [`Recorder::tick`] closes it
/// (e.g. the `latency.hlog` writer), so interval data leaves memory once a second.
pub trait IntervalSink: Send {
    /// One closed interval: `request` is a request name, or `None` for all requests together;
    /// the interval started `start_s` after the run started and lasted `len_s`.
    fn interval(&mut self, request: Option<&str>, start_s: f64, len_s: f64, h: &Histogram<u64>);
    /// Called once when the recorder finishes.
    fn finish(&mut self) {}
}

/// Header of `timeseries.csv`.
pub const CSV_HEADER: &str = "t_s,request,completed,ok,errors,dropped,rps,p50_us,p99_us,rss_kib";

impl Recorder {
    /// A recorder for these request names with `shards` engine threads. Time-series rows go
    /// to `csv` when given.
    pub fn new(
        names: Vec<String>,
        shards: usize,
        csv: Option<Box<dyn Write + Send>>,
    ) -> std::io::Result<Self> {
        let n = names.len();
        let mut csv = csv;
        if let Some(w) = csv.as_mut() {
            writeln!(w, "{CSV_HEADER}")?;
        }
        Ok(Recorder {
            shards: (0..shards)
                .map(|_| ShardHandle::new(Shard::new(n)))
                .collect(),
            interval: Cells::new(n),
            interval_dropped: vec![0; n],
            totals: Cells::new(n),
            dropped: vec![0; n],
            errors: ErrorCounts::default(),
            answers: Default::default(),
            scratch: new_histogram(),
            scratch_all: new_histogram(),
            csv,
            sink: None,
            live: Live::default(),
            last: vec![LastInterval::default(); n],
            windowed: [0; 3].map(|_| Cells::new(n)),
            windowed_dropped: [0; 3].map(|_| vec![0; n]),
            windows: Default::default(),
            names,
        })
    }

    /// Sends every closed interval's histograms to `sink` from now on.
    pub fn set_interval_sink(&mut self, sink: Box<dyn IntervalSink>) {
        self.sink = Some(sink);
    }

    /// The shard for engine thread `i`.
    pub fn shard(&self, i: usize) -> ShardHandle {
        self.shards[i % self.shards.len()].clone()
    }

    /// Adds drops decided outside the engine threads (slots never claimed before the end).
    pub fn add_dropped(&mut self, request: usize, n: u64) {
        self.interval_dropped[request] += n;
    }

    /// Folds the shards into the totals, writes the time-series rows for the interval that ends
    /// at `elapsed_s` (of length `interval_s`) and returns the live snapshot.
    pub fn tick(&mut self, elapsed_s: f64, interval_s: f64, rss_kib: u64) -> Live {
        self.collect_shards();
        let all = self.close_requests(elapsed_s, interval_s, rss_kib);
        std::mem::swap(&mut self.scratch, &mut self.scratch_all);
        if let Some(sink) = self.sink.as_mut() {
            let start_s = (elapsed_s - interval_s).max(0.0);
            sink.interval(None, start_s, interval_s, &self.scratch);
        }
        self.write_row(elapsed_s, interval_s, "all", &all, rss_kib, true);
        self.fold_interval();
        let live = &mut self.live;
        live.elapsed_s = elapsed_s;
        live.rps = if interval_s > 0.0 {
            all.completed as f64 / interval_s
        } else {
            0.0
        };
        live.p50_us = quantile(&self.scratch, 0.5);
        live.p99_us = quantile(&self.scratch, 0.99);
        live.errors = all.errors;
        live.completed += all.completed;
        live.errors_total += all.errors;
        live.dropped_total += all.dropped;
        live.clone()
    }

    /// Moves what the engine threads recorded since the last tick into the interval.
    fn collect_shards(&mut self) {
        for shard in &self.shards {
            let mut s = shard.lock();
            for (i, cell) in s.cells.cells.iter_mut().enumerate() {
                if let Some(c) = cell.as_mut().filter(|c| c.count() > 0) {
                    self.interval.get_mut(i).add(c);
                    c.reset();
                }
            }
            for (a, b) in self.interval_dropped.iter_mut().zip(s.dropped.iter_mut()) {
                *a += std::mem::take(b);
            }
            // Windowed requests count in the run (through the interval) and in their window.
            for (w, cells) in s.windowed.iter_mut().enumerate() {
                for (i, cell) in cells.cells.iter_mut().enumerate() {
                    if let Some(c) = cell.as_mut().filter(|c| c.count() > 0) {
                        self.interval.get_mut(i).add(c);
                        self.windowed[w].get_mut(i).add(c);
                        c.reset();
                    }
                }
            }
            for (w, dropped) in s.windowed_dropped.iter_mut().enumerate() {
                for (r, n) in dropped.iter_mut().enumerate() {
                    let n = std::mem::take(n);
                    self.interval_dropped[r] += n;
                    self.windowed_dropped[w][r] += n;
                }
            }
            s.errors.drain_into(&mut self.errors);
            s.answers.drain_into(&mut self.answers);
        }
    }

    /// Closes the interval of every request: its sink entry, its last-interval figures and its
    /// time-series row. Leaves all requests' interval histogram in `scratch_all`.
    fn close_requests(&mut self, elapsed_s: f64, interval_s: f64, rss_kib: u64) -> IntervalRow {
        let mut all = IntervalRow::default();
        self.scratch_all.reset();
        for r in 0..self.names.len() {
            self.scratch.reset();
            let mut row = IntervalRow {
                dropped: self.interval_dropped[r],
                ..IntervalRow::default()
            };
            for class in Class::ALL {
                if let Some(cell) = self.interval.get(r, class) {
                    let n = cell.count();
                    row.completed += n;
                    if class.is_error() {
                        row.errors += n;
                    }
                    let _ = self.scratch.add(&cell.corrected);
                }
            }
            let _ = self.scratch_all.add(&self.scratch);
            if let Some(sink) = self.sink.as_mut() {
                let start_s = (elapsed_s - interval_s).max(0.0);
                sink.interval(Some(&self.names[r]), start_s, interval_s, &self.scratch);
            }
            self.last[r] = LastInterval {
                rps: if interval_s > 0.0 {
                    row.completed as f64 / interval_s
                } else {
                    0.0
                },
                p50_us: quantile(&self.scratch, 0.5),
                p99_us: quantile(&self.scratch, 0.99),
            };
            all.add(&row);
            self.write_row(
                elapsed_s,
                interval_s,
                &self.names[r].clone(),
                &row,
                rss_kib,
                false,
            );
        }
        all
    }

    /// Folds the interval into the totals and reuses its histograms.
    fn fold_interval(&mut self) {
        for (i, cell) in self.interval.cells.iter_mut().enumerate() {
            if let Some(c) = cell.as_mut().filter(|c| c.count() > 0) {
                self.totals.get_mut(i).add(c);
                c.reset();
            }
        }
        for (a, b) in self
            .dropped
            .iter_mut()
            .zip(self.interval_dropped.iter_mut())
        {
            *a += std::mem::take(b);
        }
    }

    fn write_row(
        &mut self,
        elapsed_s: f64,
        interval_s: f64,
        name: &str,
        row: &IntervalRow,
        rss_kib: u64,
        overall: bool,
    ) {
        let Some(w) = self.csv.as_mut() else { return };
        if !overall && row.completed == 0 && row.dropped == 0 {
            return;
        }
        let rps = if interval_s > 0.0 {
            row.completed as f64 / interval_s
        } else {
            0.0
        };
        let h = &self.scratch;
        // A failed write loses one row of the time series, never the run.
        let _ = writeln!(
            w,
            "{elapsed_s:.3},{name},{},{},{},{},{rps:.1},{},{},{rss_kib}",
            row.completed,
            row.completed - row.errors,
            row.errors,
            row.dropped,
            quantile(h, 0.5),
            quantile(h, 0.99),
        );
    }

    /// Live figures of every request (scenario order): the last tick's interval and everything
    /// folded in so far. Costs one pass over each request's histograms; meant for once a tick.
    pub fn requests_live(&mut self) -> Vec<RequestLive> {
        let mut out = Vec::with_capacity(self.names.len());
        for (r, name) in self.names.iter().enumerate() {
            // The scratch histograms are free between ticks.
            self.scratch.reset();
            self.scratch_all.reset();
            let mut by_class = [0; Class::COUNT];
            for (class, n) in Class::ALL.into_iter().zip(by_class.iter_mut()) {
                if let Some(cell) = self.totals.get(r, class) {
                    let _ = self.scratch.add(&cell.corrected);
                    let _ = self.scratch_all.add(&cell.service);
                    *n = cell.count();
                }
            }
            let mut buckets = vec![0; LIVE_BUCKETS_US.len()];
            for v in self.scratch.iter_recorded() {
                let i = LIVE_BUCKETS_US
                    .partition_point(|b| *b < v.value_iterated_to())
                    .min(LIVE_BUCKETS_US.len() - 1);
                buckets[i] += v.count_at_value();
            }
            let last = self.last[r];
            out.push(RequestLive {
                name: name.clone(),
                rps: last.rps,
                p50_us: last.p50_us,
                p99_us: last.p99_us,
                by_class,
                dropped: self.dropped[r],
                corrected: percentiles(&self.scratch),
                service: percentiles(&self.scratch_all),
                buckets,
            });
        }
        out
    }

    /// Per-request totals (scenario order) and overall, for everything folded in so far.
    pub fn totals(&self) -> (Vec<Totals>, Totals) {
        totals_of(&self.names, &self.totals, &self.dropped)
    }

    /// The first distinct error answers merged so far (bodies not yet redacted).
    pub fn error_answers(&self) -> Vec<crate::report::answers::ErrorAnswer> {
        crate::report::answers::from_rows(self.answers.rows(), &self.names)
    }

    /// Flushes the time series and returns per-request totals (scenario order), overall, and
    /// the error samples, most frequent first.
    pub fn finish(mut self) -> (Vec<Totals>, Totals, Vec<ErrorSample>) {
        if let Some(w) = self.csv.as_mut() {
            let _ = w.flush();
        }
        if let Some(sink) = self.sink.as_mut() {
            sink.finish();
        }
        let (per, all) = self.totals();
        let mut samples: Vec<ErrorSample> = self
            .errors
            .counts
            .drain(..)
            .map(|(k, count)| ErrorSample {
                request: self.names[k.request].clone(),
                class: k.class.name().to_owned(),
                message: k.message,
                count,
            })
            .collect();
        samples.sort_by_key(|s| std::cmp::Reverse(s.count));
        (per, all, samples)
    }
}

/// Per-request totals (in `names` order) and overall of one table of cells.
fn totals_of(names: &[String], cells: &Cells, dropped: &[u64]) -> (Vec<Totals>, Totals) {
    let mut per = Vec::with_capacity(names.len());
    let mut all = Totals::new("all");
    for (r, name) in names.iter().enumerate() {
        let mut t = Totals::new(name);
        for class in Class::ALL {
            if let Some(cell) = cells.get(r, class) {
                let _ = t.corrected.add(&cell.corrected);
                let _ = t.service.add(&cell.service);
                t.by_class[class.index()] = cell.count();
                t.bytes += cell.bytes;
            }
        }
        t.dropped = dropped[r];
        all.add(&t);
        per.push(t);
    }
    (per, all)
}

#[derive(Default)]
struct IntervalRow {
    completed: u64,
    errors: u64,
    dropped: u64,
}

impl IntervalRow {
    fn add(&mut self, o: &IntervalRow) {
        self.completed += o.completed;
        self.errors += o.errors;
        self.dropped += o.dropped;
    }
}

fn quantile(h: &Histogram<u64>, q: f64) -> u64 {
    if h.is_empty() {
        0
    } else {
        h.value_at_quantile(q)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outcome::Outcome;
    use cell::MAX_ERROR_SAMPLES;
    use std::sync::{Arc, Mutex};

    #[derive(Clone, Default)]
    struct Sink(Arc<Mutex<Vec<u8>>>);
    impl Write for Sink {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0
                .lock()
                .map_err(|_| std::io::ErrorKind::Other)?
                .extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn shards_fold_into_intervals_and_totals() {
        let sink = Sink::default();
        let mut rec = Recorder::new(
            vec!["a".into(), "b".into()],
            2,
            Some(Box::new(sink.clone())),
        )
        .expect("recorder");
        {
            let h = rec.shard(0);
            let mut s0 = h.lock();
            for us in 1..=100 {
                s0.record(0, Outcome::Status(200), us * 1000, us * 900, 10, None);
            }
            s0.record(1, Outcome::Status(503), 5_000, 4_000, 0, None);
            s0.drop_one(1);
        }
        rec.shard(1).lock().record(
            1,
            Outcome::Reset,
            7_000,
            6_000,
            0,
            Some("reset by peer".into()),
        );
        let live = rec.tick(1.0, 1.0, 1234);
        assert_eq!(live.completed, 102);
        assert_eq!(live.errors, 2);
        assert_eq!(live.dropped_total, 1);
        // Second interval: nothing new; the shards were emptied by the first tick.
        let live2 = rec.tick(2.0, 1.0, 1234);
        assert_eq!(live2.completed, 102);
        assert_eq!(live2.rps, 0.0);
        rec.add_dropped(0, 5);
        rec.tick(3.0, 1.0, 1234);
        let (per, all, errors) = rec.finish();
        assert_eq!(per[0].completed(), 100);
        assert_eq!(per[0].dropped, 5);
        assert_eq!(per[0].bytes, 1000);
        assert!((per[0].corrected.value_at_quantile(0.5) as i64 - 50_000).abs() < 100);
        assert!(per[0].service.max() < per[0].corrected.max());
        assert_eq!(per[1].by_class[Class::ServerError.index()], 1);
        assert_eq!(all.completed(), 102);
        assert_eq!(all.errors(), 2);
        assert_eq!(all.dropped, 6);
        assert_eq!(errors.len(), 2);
        assert!(
            errors
                .iter()
                .any(|e| e.message == "HTTP 503 Service Unavailable")
        );
        let csv = String::from_utf8(sink.0.lock().map(|v| v.clone()).unwrap_or_default())
            .unwrap_or_default();
        let lines: Vec<&str> = csv.lines().collect();
        assert_eq!(lines[0], CSV_HEADER);
        assert!(
            lines[1].starts_with("1.000,a,100,100,0,0,100.0,"),
            "{}",
            lines[1]
        );
        assert!(
            lines
                .iter()
                .any(|l| l.starts_with("1.000,all,102,100,2,1,"))
        );
        assert!(lines.iter().any(|l| l.starts_with("3.000,a,0,0,0,5,")));
    }

    #[test]
    fn live_requests_summarise_totals_and_the_last_interval() {
        let mut rec = Recorder::new(vec!["a".into(), "b".into()], 1, None).expect("recorder");
        {
            let h = rec.shard(0);
            let mut s = h.lock();
            for _ in 0..90 {
                s.record(0, Outcome::Status(200), 1_500, 1_000, 0, None);
            }
            for _ in 0..10 {
                s.record(0, Outcome::Status(503), 30_000, 29_000, 0, None);
            }
        }
        rec.tick(1.0, 1.0, 0);
        let live = rec.requests_live();
        assert_eq!(live.len(), 2);
        let a = &live[0];
        assert_eq!((a.completed(), a.errors()), (100, 10));
        assert_eq!(a.rps, 100.0);
        assert!((1_400..=1_600).contains(&a.p50_us), "{}", a.p50_us);
        assert_eq!(a.buckets.iter().sum::<u64>(), 100);
        // 1.5 ms falls in (1 ms, 2 ms], 30 ms in (20 ms, 50 ms].
        assert_eq!(a.buckets[7], 90);
        assert_eq!(a.buckets[11], 10);
        assert!(a.service.p50_us < a.corrected.p50_us);
        assert_eq!(live[1].completed(), 0);
        // The next interval is empty, the totals stay.
        rec.tick(2.0, 1.0, 0);
        let a = &rec.requests_live()[0];
        assert_eq!((a.rps, a.completed()), (0.0, 100));
    }

    #[test]
    fn error_samples_are_bounded() {
        let mut rec = Recorder::new(vec!["a".into()], 1, None).expect("recorder");
        for i in 0..100 {
            rec.shard(0).lock().record(
                0,
                Outcome::Connect,
                1,
                1,
                0,
                Some(format!("connect: error {i}")),
            );
        }
        rec.tick(1.0, 1.0, 0);
        let (_, all, errors) = rec.finish();
        assert_eq!(all.errors(), 100);
        assert_eq!(errors.len(), MAX_ERROR_SAMPLES);
    }
}
