//! The run history: a JSON-lines stream of timestamped events (`history.jsonl`). Today it
//! holds the run's own milestones; fault changes and the operations of check drivers join the
//! same stream, so checkers can judge them together.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::lines::{WholeLines, WriteFailure};
use crate::redact::Redactor;

/// One event of the run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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
    /// The heal phase began: every fault cleared, producers stopped, the drain started.
    HealStarted,
    /// Sending was paused from the dashboard.
    Paused,
    /// Sending resumed after a pause.
    Resumed {
        /// Open-loop arrivals intended during the pause: skipped, never sent.
        skipped: u64,
    },
    /// A mock KV fault was set (scheduled, or by hand from the dashboard).
    FaultSet {
        /// Index in the scenario's `[[faults]]`, from 0; faults set by hand come after them.
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
        /// How many KV operations it hit while it was set (the mock's count for the rule).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        kv_ops: Option<u64>,
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
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

#[derive(Deserialize)]
struct OwnedLine {
    t_us: u64,
    #[serde(flatten)]
    event: Event,
}

/// Largest `history.jsonl` read back (a run writes a few MiB at most).
pub const MAX_HISTORY_BYTES: u64 = 1 << 30;
/// Longest line of `history.jsonl` read back.
const MAX_LINE_BYTES: u64 = 1 << 20;

/// Reads a `history.jsonl` back: each event with its time since the start of the run, in file
/// order. A line that is not an event is an `InvalidData` error naming its line number.
pub fn read(path: &Path) -> std::io::Result<Vec<(Duration, Event)>> {
    use std::io::Read as _;
    let bad = |msg: String| std::io::Error::new(std::io::ErrorKind::InvalidData, msg);
    // Bounded per line and in all, so an endless file (`/dev/zero`) ends with an error.
    let mut file = BufReader::new(std::fs::File::open(path)?.take(MAX_HISTORY_BYTES + 1));
    let mut out = Vec::new();
    let mut buf = Vec::new();
    for i in 0.. {
        buf.clear();
        let n = (&mut file)
            .take(MAX_LINE_BYTES + 1)
            .read_until(b'\n', &mut buf)?;
        if n == 0 {
            break;
        }
        if n as u64 > MAX_LINE_BYTES {
            let limit = format!("over the {MAX_LINE_BYTES}-byte limit for one event");
            return Err(bad(format!("{}:{}: {limit}", path.display(), i + 1)));
        }
        let line = String::from_utf8_lossy(&buf);
        if line.trim().is_empty() {
            continue;
        }
        let parsed: OwnedLine = serde_json::from_str(&line).map_err(|e| {
            bad(format!(
                "{}:{}: not a history event: {e}",
                path.display(),
                i + 1
            ))
        })?;
        out.push((Duration::from_micros(parsed.t_us), parsed.event));
    }
    Ok(out)
}

/// Writer of `history.jsonl`: each event is one complete line, written through
/// [`WholeLines`], so the file only ever holds whole records; after a failed write (a full
/// disk) the partial line is cut off and nothing more is written.
pub struct History {
    out: WholeLines,
    redactor: Redactor,
    /// The first failed write, as `cannot write history.jsonl: ERROR`; once set, recording stops.
    failure: WriteFailure,
}

impl History {
    /// Creates (truncates) the history file.
    pub fn create(path: &Path) -> std::io::Result<History> {
        let failure = WriteFailure::default();
        Ok(History {
            out: WholeLines::new(
                std::fs::File::create(path)?,
                "history.jsonl",
                failure.clone(),
            ),
            redactor: Redactor::default(),
            failure,
        })
    }

    /// Masks `redactor`'s secrets in every event written from now on.
    pub fn redacting(mut self, redactor: Redactor) -> History {
        self.redactor = redactor;
        self
    }

    /// Appends `event` at `t` since the start of the run. A write error loses the line, never
    /// the run: it is kept for [`History::failed`] and [`History::finish`].
    pub fn record(&mut self, t: Duration, event: &Event) {
        if self.failure.get().is_some() {
            return;
        }
        let line = Line {
            t_us: u64::try_from(t.as_micros()).unwrap_or(u64::MAX),
            event,
        };
        // Without secrets the record is written as serialised (fields in their order); with
        // them, masked value by value so the line stays valid JSON.
        let bytes = if self.redactor.is_empty() {
            serde_json::to_vec(&line)
        } else {
            serde_json::to_value(&line).and_then(|mut v| {
                self.redactor.redact_json(&mut v);
                serde_json::to_vec(&v)
            })
        };
        let Ok(mut bytes) = bytes else {
            return;
        };
        bytes.push(b'\n');
        // A failure is kept by the writer (see `failed`).
        let _ = self.out.write_all(&bytes);
    }

    /// The first write that failed, as `cannot write history.jsonl: ERROR`.
    pub fn failed(&self) -> Option<String> {
        self.failure.get()
    }

    /// Syncs the file; the first write error if one happened.
    pub fn finish(mut self) -> std::io::Result<()> {
        match self.failure.get() {
            Some(e) => Err(std::io::Error::other(e)),
            None => self.out.flush(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_written_history_reads_back_unchanged() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let path = dir.path().join("history.jsonl");
        let events = vec![
            (
                Duration::from_micros(5),
                Event::FaultSet {
                    index: 0,
                    label: "daily-limit put *".to_owned(),
                },
            ),
            (
                Duration::from_millis(7),
                Event::op(
                    "cron",
                    OpKind::Info,
                    "tick",
                    serde_json::json!({"cron": "*/1 * * * *", "scheduled_ms": 1_795_428_060_000_u64}),
                ),
            ),
            (Duration::from_secs(1), Event::InFlightAbandoned),
        ];
        let mut h = History::create(&path).unwrap_or_else(|e| panic!("{e}"));
        for (t, e) in &events {
            h.record(*t, e);
        }
        h.finish().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(read(&path).unwrap_or_else(|e| panic!("{e}")), events);
    }

    #[test]
    fn an_endless_history_is_refused_not_read_into_memory() {
        let e = read(Path::new("/dev/zero"))
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            e.contains("/dev/zero:1: over the 1048576-byte limit"),
            "{e}"
        );
    }

    #[test]
    fn a_failed_write_stops_recording_and_leaves_whole_lines() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let path = dir.path().join("history.jsonl");
        std::os::unix::fs::symlink("/dev/full", &path).unwrap_or_else(|e| panic!("{e}"));
        let mut h = History::create(&path).unwrap_or_else(|e| panic!("{e}"));
        h.record(Duration::ZERO, &Event::RunEnded);
        let first = h.failed().expect("the write to /dev/full failed");
        assert!(first.starts_with("cannot write history.jsonl: "), "{first}");
        h.record(Duration::ZERO, &Event::RunEnded);
        assert_eq!(
            h.failed().as_deref(),
            Some(first.as_str()),
            "the first failure is kept"
        );
        assert!(h.finish().is_err());
    }

    #[test]
    fn secrets_are_masked_in_every_event() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let path = dir.path().join("history.jsonl");
        let mut r = Redactor::default();
        r.add("tok\"en");
        let mut h = History::create(&path)
            .unwrap_or_else(|e| panic!("{e}"))
            .redacting(r);
        let v = serde_json::json!({"body": "got tok\"en", "tok\"en": 1});
        h.record(
            Duration::ZERO,
            &Event::op("lock-0", OpKind::Ok, "acquire", v),
        );
        h.finish().unwrap_or_else(|e| panic!("{e}"));
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(!text.contains("tok") && text.contains("got ***"), "{text}");
        assert_eq!(read(&path).map(|v| v.len()).unwrap_or(0), 1);
    }

    #[test]
    fn a_bad_line_is_named() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let path = dir.path().join("history.jsonl");
        std::fs::write(&path, "{\"t_us\":1,\"type\":\"run-ended\"}\nnope\n")
            .unwrap_or_else(|e| panic!("{e}"));
        let e = read(&path).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(e.contains("history.jsonl:2:"), "{e}");
    }
}
