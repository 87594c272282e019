//! The run's windows for thresholds limited to part of the run (`during`): steady (before the
//! first fault), faults (while at least one is active) and heal (after the last one cleared, to
//! the end of sending), placed by the planned fault timeline. A request belongs to the window
//! its intended send time falls in; a time between two faults belongs to none.
//!
//! Faults set by hand from the dashboard do not move the windows: they are not known when the
//! requests before them are recorded.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{Recorder, Totals, totals_of};
use crate::scenario::plan::{FaultPlan, Window};

/// The totals of one window: per request (scenario order), all, and how long it lasted.
pub struct WindowTotals {
    /// Which window.
    pub window: Window,
    /// Per request, scenario order.
    pub per: Vec<Totals>,
    /// All requests.
    pub all: Totals,
    /// How long requests were due in it, seconds (for `rps`).
    pub duration_s: f64,
}

impl Recorder {
    /// From now on, requests recorded with their intended time count in the window of
    /// `windows` it falls in, measured from `start` (the engine's start).
    pub fn set_windows(&mut self, start: Instant, windows: Windows) {
        self.windows = Arc::new(windows);
        for shard in &self.shards {
            shard.lock().windows = Some((start, self.windows.clone()));
        }
    }

    /// The totals of every window folded in so far, for a run that sent for `sending`; empty
    /// when the run has no windows (no faults).
    pub fn window_totals(&self, sending: Duration) -> Vec<WindowTotals> {
        if self.windows.is_empty() {
            return Vec::new();
        }
        Window::ALL
            .into_iter()
            .map(|w| {
                let i = w.index();
                let (per, all) =
                    totals_of(&self.names, &self.windowed[i], &self.windowed_dropped[i]);
                WindowTotals {
                    window: w,
                    per,
                    all,
                    duration_s: self.windows.length(w, sending).as_secs_f64(),
                }
            })
            .collect()
    }
}

/// The fault windows of a run, merged where they overlap, in run time.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Windows {
    /// Disjoint `[set, clear)` spans, in time order.
    faults: Vec<(Duration, Duration)>,
}

impl Windows {
    /// The windows of `faults` as planned: each from its `at` to its `until`, or to `heal_at`
    /// (the heal phase clears every fault) when that comes first or it has none.
    pub fn planned(faults: &[FaultPlan], heal_at: Duration) -> Windows {
        let spans = faults.iter().map(|f| {
            let end = f.until.map_or(heal_at, |u| u.min(heal_at));
            (f.at, end.max(f.at))
        });
        Windows::from_spans(spans)
    }

    /// The windows of `[set, clear)` spans in any order (empty spans are ignored).
    pub fn from_spans(spans: impl IntoIterator<Item = (Duration, Duration)>) -> Windows {
        let mut spans: Vec<_> = spans.into_iter().filter(|(a, b)| b > a).collect();
        spans.sort();
        let mut faults: Vec<(Duration, Duration)> = Vec::with_capacity(spans.len());
        for (a, b) in spans {
            match faults.last_mut() {
                Some(last) if a <= last.1 => last.1 = last.1.max(b),
                _ => faults.push((a, b)),
            }
        }
        Windows { faults }
    }

    /// Whether the run has faults, hence windows at all.
    pub fn is_empty(&self) -> bool {
        self.faults.is_empty()
    }

    /// The window of a request intended `t` after the run started.
    pub fn of(&self, t: Duration) -> Option<Window> {
        let (first, last) = (self.faults.first()?, self.faults.last()?);
        if t < first.0 {
            Some(Window::Steady)
        } else if t >= last.1 {
            Some(Window::Heal)
        } else if self.faults.iter().any(|(a, b)| (*a..*b).contains(&t)) {
            Some(Window::Faults)
        } else {
            None
        }
    }

    /// How long window `w` lasted when sending went on for `sending`: the time its requests
    /// were due in, for `rps`.
    pub fn length(&self, w: Window, sending: Duration) -> Duration {
        let (Some(first), Some(last)) = (self.faults.first(), self.faults.last()) else {
            return Duration::ZERO;
        };
        match w {
            Window::Steady => first.0.min(sending),
            Window::Heal => sending.saturating_sub(last.1),
            Window::Faults => self
                .faults
                .iter()
                .map(|(a, b)| (*b).min(sending).saturating_sub(*a))
                .sum(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    fn fault(at: u64, until: Option<u64>) -> FaultPlan {
        FaultPlan {
            at: s(at),
            until: until.map(s),
            spec: "kind=error,status=503"
                .parse()
                .unwrap_or_else(|e| panic!("{e}")),
            label: "error 503".into(),
        }
    }

    #[test]
    fn requests_fall_in_the_window_of_their_intended_time() {
        // Faults 4-8 s and 6-10 s overlap into 4-10 s; one from 12 s lasts to the heal at 16 s.
        let w = Windows::planned(
            &[fault(4, Some(8)), fault(6, Some(10)), fault(12, None)],
            s(16),
        );
        assert_eq!(w.of(s(0)), Some(Window::Steady));
        assert_eq!(w.of(Duration::from_millis(3_999)), Some(Window::Steady));
        assert_eq!(w.of(s(4)), Some(Window::Faults));
        assert_eq!(w.of(s(9)), Some(Window::Faults));
        // Between two faults: neither steady nor healed.
        assert_eq!(w.of(s(11)), None);
        assert_eq!(w.of(s(12)), Some(Window::Faults));
        assert_eq!(w.of(s(16)), Some(Window::Heal));
        assert_eq!(w.of(s(99)), Some(Window::Heal));
    }

    #[test]
    fn window_lengths_are_clipped_to_sending() {
        let w = Windows::planned(&[fault(4, Some(8)), fault(12, Some(30))], s(16));
        assert_eq!(w.length(Window::Steady, s(20)), s(4));
        assert_eq!(w.length(Window::Faults, s(20)), s(8));
        assert_eq!(w.length(Window::Heal, s(20)), s(4));
        // Stopped early, inside the first fault.
        assert_eq!(w.length(Window::Faults, s(6)), s(2));
        assert_eq!(w.length(Window::Heal, s(6)), Duration::ZERO);
        assert_eq!(w.length(Window::Steady, s(2)), s(2));
    }

    #[test]
    fn the_recorder_keeps_exact_totals_per_window_and_thresholds_judge_them() {
        use crate::metrics::thresholds::evaluate;
        use crate::outcome::Outcome;
        use crate::scenario::plan::{CmpOp, Threshold, ThresholdMetric, ThresholdScope};
        let mut rec = Recorder::new(vec!["a".into()], 1, None).expect("recorder");
        let start = Instant::now();
        rec.set_windows(start, Windows::planned(&[fault(4, Some(8))], s(16)));
        {
            let h = rec.shard(0);
            let mut sh = h.lock();
            // Steady: 10 fast answers; faults: 5 errors and 5 slow answers; heal: 10 fast.
            for i in 0..10 {
                sh.record_at(
                    start + s(i % 4),
                    0,
                    Outcome::Status(200),
                    1_000,
                    900,
                    0,
                    None,
                );
            }
            for i in 0..5 {
                sh.record_at(
                    start + s(4 + i % 4),
                    0,
                    Outcome::Status(503),
                    2_000,
                    1_900,
                    0,
                    None,
                );
                sh.record_at(start + s(5), 0, Outcome::Status(200), 90_000, 500, 0, None);
            }
            for _ in 0..10 {
                sh.record_at(start + s(9), 0, Outcome::Status(200), 1_000, 900, 0, None);
            }
            sh.drop_one_at(0, start + s(6));
        }
        rec.tick(1.0, 1.0, 0);
        let windows = rec.window_totals(s(20));
        let counts: Vec<(u64, u64)> = windows
            .iter()
            .map(|w| (w.all.completed(), w.all.errors()))
            .collect();
        assert_eq!(counts, [(10, 0), (10, 5), (10, 0)]);
        assert_eq!(windows[1].per[0].dropped, 1);
        // The slow answers are in the faults window's histogram only.
        assert!(windows[1].all.corrected.max() >= 89_000);
        assert!(windows[0].all.corrected.max() < 2_000 && windows[2].all.corrected.max() < 2_000);
        assert_eq!(
            windows.iter().map(|w| w.duration_s).collect::<Vec<_>>(),
            [4.0, 4.0, 12.0]
        );
        let (per, all) = rec.totals();
        assert_eq!((all.completed(), all.errors(), all.dropped), (30, 5, 1));
        let th = |during| Threshold {
            scope: ThresholdScope::All,
            metric: ThresholdMetric::ErrorRate,
            op: CmpOp::Lt,
            limit: 0.1,
            expr: "error_rate < 10%".into(),
            abort: false,
            during,
        };
        let ths = [
            th(None),
            th(Some(Window::Faults)),
            th(Some(Window::Steady)),
            th(Some(Window::Heal)),
        ];
        let r = evaluate(&ths, &per, &all, 20.0, &windows);
        let passed: Vec<bool> = r.iter().map(|x| x.passed).collect();
        // 5 of 30 overall is under 10%; 5 of 10 during the faults is not.
        assert_eq!(passed, [false, false, true, true]);
        assert_eq!(r[1].observed, Some(0.5));
        assert_eq!(r[1].label(), "error_rate < 10% during faults");
        assert_eq!(r[0].label(), "error_rate < 10%");
        // Without the windows' data (e.g. merged), a windowed threshold has no data: no PASS.
        let r = evaluate(&ths, &per, &all, 20.0, &[]);
        assert_eq!((r[2].observed, r[2].passed), (None, false));
    }

    #[test]
    fn an_empty_window_has_no_data_and_does_not_pass() {
        use crate::metrics::thresholds::evaluate;
        use crate::outcome::Outcome;
        use crate::scenario::plan::{CmpOp, Threshold, ThresholdMetric, ThresholdScope};
        let mut rec = Recorder::new(vec!["a".into()], 1, None).expect("recorder");
        let start = Instant::now();
        rec.set_windows(start, Windows::planned(&[fault(0, None)], s(16)));
        // Stopped at 10 s: nothing was due in the heal window.
        rec.shard(0)
            .lock()
            .record_at(start + s(3), 0, Outcome::Status(200), 1_000, 900, 0, None);
        rec.tick(1.0, 1.0, 0);
        let windows = rec.window_totals(s(10));
        let (per, all) = rec.totals();
        let t = Threshold {
            scope: ThresholdScope::Request("a".into()),
            metric: ThresholdMetric::Latency {
                kind: crate::scenario::plan::LatencyKind::Corrected,
                stat: crate::scenario::plan::LatencyStat::Percentile(99.0),
            },
            op: CmpOp::Lt,
            limit: 50_000.0,
            expr: "p99 < 50ms".into(),
            abort: false,
            during: Some(Window::Heal),
        };
        let r = evaluate(std::slice::from_ref(&t), &per, &all, 10.0, &windows);
        assert_eq!((r[0].observed, r[0].passed), (None, false));
        assert_eq!(r[0].during.as_deref(), Some("heal"));
        let faults = Threshold {
            during: Some(Window::Faults),
            ..t
        };
        assert!(evaluate(&[faults], &per, &all, 10.0, &windows)[0].passed);
    }

    #[test]
    fn no_faults_no_windows() {
        let w = Windows::planned(&[], s(16));
        assert!(w.is_empty());
        assert_eq!(w.of(s(1)), None);
        assert_eq!(w.length(Window::Heal, s(20)), Duration::ZERO);
        // A fault starting at the heal is empty and ignored.
        assert!(Windows::planned(&[fault(16, None)], s(16)).is_empty());
    }
}
