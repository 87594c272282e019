//! What live displays get: the [`Snapshot`] the run loop publishes once a second (to the
//! dashboard in `tui` and to the plain line printer alike) through a [`Monitor`], the
//! [`Control`]s a display may send back, the [`Interrupts`] that stop a run from outside, and the
//! plain status line ([`LinePrinter`]) printed when stdout is not a terminal (or `--no-tui`).
//! Views depend on this module, never on `run`.
//!
//! Snapshots are copies: no histogram, no lock, nothing that ties a display to the recorder.

use tokio::sync::mpsc::UnboundedReceiver;
use tokio_util::sync::CancellationToken;

use crate::check::CheckResult;
use crate::engine::Progress;
use crate::metrics::{Live, RequestLive};
use crate::mockkv::{FaultSpec, Op};
use crate::summary::FaultWindow;

/// Everything a live display shows, as of one recorder tick.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Snapshot {
    /// Scenario name.
    pub scenario: String,
    /// Target kind and (redacted) URL, e.g. `worker http://127.0.0.1:8787/`.
    pub target: String,
    /// One label per phase, e.g. `steady rate 500/s`.
    pub phases: Vec<String>,
    /// Planned length of the run, s.
    pub total_s: f64,
    /// Run-wide figures of the last interval and so far.
    pub live: Live,
    /// What the engine is doing.
    pub progress: Progress,
    /// Set once sending stopped: why (`completed`, `interrupted`, `aborted`).
    pub stopped: Option<String>,
    /// Per request (scenario order); empty unless the monitor asked for detail.
    pub requests: Vec<RequestLive>,
    /// Fault windows so far (scheduled and manual), in the order they were set.
    pub faults: Vec<FaultWindow>,
    /// Faults active now.
    pub active: Vec<ActiveFault>,
    /// Provisional check verdicts on the history so far (detail only).
    pub checks: Vec<CheckResult>,
    /// Run time of the last cron tick that completed `ok`, s.
    pub last_cron_ok_s: Option<f64>,
    /// The mock KV's accounting, when the target has one (detail only).
    pub kv: Option<KvSummary>,
}

/// A fault active now.
#[derive(Debug, Clone, PartialEq)]
pub struct ActiveFault {
    /// Index in the history: the scenario's `[[faults]]` first, then manual ones.
    pub index: usize,
    /// What it does.
    pub label: String,
    /// Set by hand from the dashboard.
    pub manual: bool,
    /// Run time it was set, s.
    pub set_at_s: f64,
    /// Seconds until its scheduled clear; `None` until sending stops.
    pub left_s: Option<f64>,
}

/// The mock KV's accounting, condensed for the dashboard.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct KvSummary {
    /// Operations answered, by type (every outcome).
    pub ops: Vec<(Op, u64)>,
    /// Quota left today, by type (`None`: unlimited), for the binding's account.
    pub quota_left: Vec<(Op, Option<u64>)>,
    /// Failures by kind (`quota`, `same-key-rate`, fault kinds, ...), most first.
    pub failures: Vec<(String, u64)>,
    /// Key prefixes with the most puts (any outcome), most first, at most [`KV_TOP_PREFIXES`].
    pub top_put_prefixes: Vec<(String, u64)>,
}

/// How many key prefixes the dashboard lists.
pub const KV_TOP_PREFIXES: usize = 5;

impl KvSummary {
    /// Condenses the mock's full accounting; `account` is the one binding requests count against
    /// and `limits` its daily quotas (for operation types not used yet).
    pub fn from_stats(
        stats: &crate::mockkv::Snapshot,
        account: &str,
        limits: crate::mockkv::Limits,
    ) -> KvSummary {
        use crate::mockkv::stats::Outcome;
        use std::collections::BTreeMap;
        let mut ops: BTreeMap<Op, u64> = Op::ALL.iter().map(|o| (*o, 0)).collect();
        let mut failures: BTreeMap<&str, u64> = BTreeMap::new();
        let mut puts: BTreeMap<(&str, &str), u64> = BTreeMap::new();
        for row in &stats.counts {
            *ops.entry(row.op).or_default() += row.count;
            if !matches!(row.outcome, Outcome::Ok | Outcome::Miss) {
                *failures.entry(row.outcome.as_str()).or_default() += row.count;
            }
            if row.op == Op::Put {
                *puts.entry((&row.namespace, &row.prefix)).or_default() += row.count;
            }
        }
        let namespaces: std::collections::BTreeSet<&str> = puts.keys().map(|(ns, _)| *ns).collect();
        let mut top: Vec<(String, u64)> = puts
            .into_iter()
            .map(|((ns, prefix), n)| {
                let prefix = if prefix.is_empty() { "(none)" } else { prefix };
                let name = if namespaces.len() > 1 {
                    format!("{ns}/{prefix}")
                } else {
                    prefix.to_owned()
                };
                (name, n)
            })
            .collect();
        top.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        top.truncate(KV_TOP_PREFIXES);
        let mut failures: Vec<(String, u64)> = failures
            .into_iter()
            .map(|(k, n)| (k.to_owned(), n))
            .collect();
        failures.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        KvSummary {
            ops: ops.into_iter().collect(),
            quota_left: Op::ALL
                .iter()
                .map(|op| {
                    let left = stats
                        .quota
                        .iter()
                        .find(|q| q.account == account && q.op == *op)
                        .map_or_else(|| limits.for_op(*op), |q| q.left);
                    (*op, left)
                })
                .collect(),
            failures,
            top_put_prefixes: top,
        }
    }
}

/// A phase's label for the live view, e.g. `steady 500/s`, `ramp-up 50→500/s`, `10 VUs`.
pub fn phase_label(p: &crate::scenario::plan::Phase) -> String {
    use crate::scenario::plan::Load;
    let load = match p.load {
        Load::Rate { from, to, .. } if from == to => format!("{from:.0}/s"),
        Load::Rate { from, to, .. } => format!("{from:.0}→{to:.0}/s"),
        Load::Vus(n) => format!("{n} VUs"),
        Load::Pause => "pause".to_owned(),
        Load::Replay(ref r) => format!("replay ×{}", r.speed),
    };
    match &p.name {
        Some(name) => format!("{name} {load}"),
        None => load,
    }
}

/// Receives the live state once a second (the line printer, the dashboard).
pub trait Monitor: Send {
    /// Called after each recorder tick.
    fn tick(&mut self, snapshot: &Snapshot);
    /// Whether snapshots should carry the detail only the dashboard shows (per-request
    /// histograms, provisional checks, the mock KV's accounting); costs a little per tick.
    fn detailed(&self) -> bool {
        false
    }
    /// Commands coming back from the display (pause, faults by hand); taken once at the start.
    fn controls(&mut self) -> Option<UnboundedReceiver<Control>> {
        None
    }
}

/// A monitor that shows nothing.
pub struct Silent;

impl Monitor for Silent {
    fn tick(&mut self, _: &Snapshot) {}
}

/// Prints [`line`] to stdout once a second.
pub struct LinePrinter;

impl Monitor for LinePrinter {
    fn tick(&mut self, s: &Snapshot) {
        println!("{}", line(&s.live, &s.progress, s.total_s, s.phases.len()));
    }
}

/// Stop signals from outside the run.
#[derive(Clone, Default)]
pub struct Interrupts {
    /// Stop sending and let in-flight requests finish within the grace period (first Ctrl-C).
    pub stop: CancellationToken,
    /// Abandon in-flight requests now (second Ctrl-C).
    pub abort: CancellationToken,
}

/// What a live display asks of the run (stopping goes through [`Interrupts`]).
#[derive(Debug, Clone, PartialEq)]
pub enum Control {
    /// Pause sending (see [`crate::engine`] for what a pause does to the schedule).
    Pause,
    /// Resume sending.
    Resume,
    /// Set a mock KV fault by hand; recorded like a scheduled one, with an index past the
    /// scenario's faults.
    SetFault {
        /// The rule.
        spec: FaultSpec,
        /// What it does, for the history and the report.
        label: String,
    },
    /// Clear the active fault with this history index (scheduled or manual).
    ClearFault {
        /// Its index.
        index: usize,
    },
}

/// One status line, e.g.
/// `[  12s/60s] phase 2/3 rate 4998/s (target 5000) p50 1.2ms p99 4.5ms err 0.00% dropped 0 in-flight 12`.
pub fn line(live: &Live, progress: &Progress, total_s: f64, phases: usize) -> String {
    let phase = progress.phase.map_or_else(
        || "draining".to_owned(),
        |p| format!("phase {}/{phases}", p + 1),
    );
    let target = if progress.target_rate > 0.0 {
        format!(" (target {:.0})", progress.target_rate)
    } else {
        String::new()
    };
    let err = if live.completed == 0 {
        0.0
    } else {
        100.0 * live.errors_total as f64 / live.completed as f64
    };
    let paused = if progress.paused { " (paused)" } else { "" };
    format!(
        "[{:>5.0}s/{:.0}s] {phase}{paused} rate {:.0}/s{target} p50 {} p99 {} err {err:.2}% dropped {} in-flight {}",
        live.elapsed_s,
        total_s,
        live.rps,
        micros(live.p50_us),
        micros(live.p99_us),
        live.dropped_total,
        progress.in_flight,
    )
}

/// Human form of a latency in microseconds.
pub fn micros(us: u64) -> String {
    match us {
        0..1_000 => format!("{us}µs"),
        1_000..1_000_000 => format!("{:.1}ms", us as f64 / 1e3),
        _ => format!("{:.2}s", us as f64 / 1e6),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_a_line() {
        let live = Live {
            elapsed_s: 12.0,
            rps: 4998.0,
            p50_us: 1200,
            p99_us: 4500,
            errors: 0,
            completed: 1000,
            errors_total: 5,
            dropped_total: 3,
        };
        let progress = Progress {
            phase: Some(1),
            target_rate: 5000.0,
            in_flight: 12,
            ..Progress::default()
        };
        assert_eq!(
            line(&live, &progress, 60.0, 3),
            "[   12s/60s] phase 2/3 rate 4998/s (target 5000) p50 1.2ms p99 4.5ms err 0.50% dropped 3 in-flight 12"
        );
        assert_eq!(micros(850), "850µs");
        assert_eq!(micros(2_500_000), "2.50s");
    }
}
