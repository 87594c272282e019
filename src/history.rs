//! The run history: a JSON-lines stream of timestamped events (`history.jsonl`). Today it
//! holds the run's own milestones; fault changes and the operations of check drivers join the
//! same stream, so checkers can judge them together.

use std::io::{BufWriter, Write};
use std::path::Path;
use std::time::Duration;

use serde::Serialize;

/// One event of the run.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum Event {
    /// Load started.
    RunStarted {
        /// Scenario name.
        scenario: String,
        /// Seed in use.
        seed: u64,
    },
    /// A phase began.
    PhaseStarted {
        /// Phase index from 0.
        index: usize,
        /// Phase label, if any.
        name: Option<String>,
    },
    /// Sending stopped (end of the schedule, interrupt or abort).
    SendingStopped {
        /// Why.
        reason: String,
    },
    /// The grace period ended with requests still in flight; they were abandoned.
    InFlightAbandoned,
    /// Everything stopped.
    RunEnded,
    /// A scheduled mock KV fault was set.
    FaultSet {
        /// Index in the scenario's `[[faults]]`, from 0.
        index: usize,
        /// What it does, e.g. `daily-limit put queue:*`.
        label: String,
    },
    /// A mock KV fault was cleared (its `until`, or sending stopped).
    FaultCleared {
        /// Index in the scenario's `[[faults]]`, from 0.
        index: usize,
        /// What it did.
        label: String,
    },
    /// The mock KV refused a scheduled fault.
    FaultFailed {
        /// Index in the scenario's `[[faults]]`, from 0.
        index: usize,
        /// What it would have done.
        label: String,
        /// Why it was refused.
        error: String,
    },
    /// One step of an operation by a driver (cron, lock client, queue producer, ...), in the
    /// manner of Jepsen: `invoke`, then `ok`, `fail` or `info` (indeterminate).
    Op {
        /// Who performed it, e.g. `cron` or `lock-3`.
        process: String,
        /// Which step.
        op: OpKind,
        /// The operation, e.g. `tick`, `acquire`.
        f: String,
        /// Its arguments or result.
        value: serde_json::Value,
    },
}

impl Event {
    /// An operation step.
    pub fn op(process: &str, op: OpKind, f: &str, value: serde_json::Value) -> Event {
        Event::Op {
            process: process.to_owned(),
            op,
            f: f.to_owned(),
            value,
        }
    }
}

/// The step of an operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum OpKind {
    /// Started.
    Invoke,
    /// Succeeded.
    Ok,
    /// Definitely failed (had no effect).
    Fail,
    /// Outcome unknown (timeout, lost connection): never a violation by itself.
    Info,
}

#[derive(Serialize)]
struct Line<'a> {
    t_us: u64,
    #[serde(flatten)]
    event: &'a Event,
}

/// Writer of `history.jsonl`.
pub struct History {
    out: BufWriter<std::fs::File>,
}

impl History {
    /// Creates (truncates) the history file.
    pub fn create(path: &Path) -> std::io::Result<History> {
        Ok(History {
            out: BufWriter::new(std::fs::File::create(path)?),
        })
    }

    /// Appends `event` at `t` since the start of the run. A write error loses the line, never
    /// the run; it surfaces at [`History::finish`].
    pub fn record(&mut self, t: Duration, event: &Event) {
        let line = Line {
            t_us: t.as_micros() as u64,
            event,
        };
        if serde_json::to_writer(&mut self.out, &line).is_ok() {
            let _ = self.out.write_all(b"\n");
        }
    }

    /// Flushes the file.
    pub fn finish(mut self) -> std::io::Result<()> {
        self.out.flush()
    }
}
