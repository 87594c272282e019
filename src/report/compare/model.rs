//! The two sides of a comparison and its result: a run loaded from its report folder
//! ([`Side`]), the gate results ([`GateResult`], [`Comparison`]) and why a comparison could not be
//! made ([`CompareError`]). Judging lives in `gates`, deltas in `diff`, rendering in `render_*`.

use std::path::Path;

use super::{Gate, GateError};
use crate::mockkv::Op;
use crate::mockkv::stats::Snapshot;
use crate::report::ReportError;
use crate::report::model::{RequestStats, Summary};

/// Why a comparison could not be made (exit code 2).
#[derive(Debug, thiserror::Error)]
pub enum CompareError {
    /// A summary could not be read.
    #[error("{0}")]
    Report(#[from] ReportError),
    /// A `mockkv.json` next to a summary could not be read.
    #[error("{0}: remove or fix it to compare without KV operations")]
    MockKv(String),
    /// A `--fail-if` gate does not parse.
    #[error("{0}")]
    Gate(#[from] GateError),
    /// A gate names a request that one of the runs does not have.
    #[error("--fail-if \"{gate}\": no request \"{request}\" in {side}: requests there are {known}")]
    UnknownRequest {
        /// The gate as written.
        gate: String,
        /// The request it names.
        request: String,
        /// `BEFORE` or `AFTER`.
        side: &'static str,
        /// The names that exist.
        known: String,
    },
}

/// One run: its summary and, for Worker targets, the mock KV's accounting.
#[derive(Debug, Clone)]
pub struct Side {
    /// The path as given.
    pub label: String,
    /// The run's summary.
    pub summary: Summary,
    /// `mockkv.json` from the same folder.
    pub kv: Option<Snapshot>,
}

impl Side {
    /// Reads a report folder or a `summary.json` (and the `mockkv.json` beside it).
    pub fn load(path: &Path) -> Result<Side, CompareError> {
        let file = crate::report::json::summary_path(path)?;
        let summary = crate::report::json::read_summary(&file)?;
        let dir = match file.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        let kv = crate::report::data::read_mockkv(dir).map_err(CompareError::MockKv)?;
        Ok(Side {
            label: path.display().to_string(),
            summary,
            kv,
        })
    }

    /// The request named `name`, or the overall figures for `all`.
    pub(super) fn request(&self, name: &str) -> Option<&RequestStats> {
        if name == "all" {
            Some(&self.summary.overall)
        } else {
            self.summary.requests.iter().find(|r| r.name == name)
        }
    }

    /// The names of this run's requests, quoted and comma-separated, for error messages.
    pub(super) fn request_list(&self) -> String {
        self.summary
            .requests
            .iter()
            .map(|r| format!("\"{}\"", r.name))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// KV operations (any outcome) per 1,000 completed requests, for `op` (`None`: every op) and
    /// `prefix` (`None`: every prefix), summed over namespaces. `None` without a mock KV or
    /// without completed requests.
    pub fn kv_per_1000(&self, op: Option<Op>, prefix: Option<&str>) -> Option<f64> {
        let kv = self.kv.as_ref()?;
        let done = self.summary.overall.completed;
        if done == 0 {
            return None;
        }
        let n: u64 = kv
            .counts
            .iter()
            .filter(|r| op.is_none_or(|o| r.op == o))
            .filter(|r| prefix.is_none_or(|p| r.prefix == p))
            .map(|r| r.count)
            .sum();
        Some(n as f64 * 1000.0 / done as f64)
    }
}

/// The result of one gate.
#[derive(Debug, Clone, PartialEq)]
pub struct GateResult {
    /// The gate as written.
    pub gate: String,
    /// Whether AFTER stayed within it everywhere it applies.
    pub passed: bool,
    /// One line per place it was judged: `all: p99 1.20 ms → 1.60 ms (+33.3%)`.
    pub detail: Vec<String>,
}

/// Two runs compared.
#[derive(Debug, Clone)]
pub struct Comparison {
    /// The run before.
    pub before: Side,
    /// The run after.
    pub after: Side,
    /// Gate results, in the order given.
    pub gates: Vec<GateResult>,
}

impl Comparison {
    /// Whether every gate passed.
    pub fn passed(&self) -> bool {
        self.gates.iter().all(|g| g.passed)
    }
}

/// Compares two runs and judges `gates`.
pub fn compare(before: Side, after: Side, gates: &[Gate]) -> Result<Comparison, CompareError> {
    let mut results = Vec::new();
    for g in gates {
        results.push(g.judge(&before, &after)?);
    }
    Ok(Comparison {
        before,
        after,
        gates: results,
    })
}
