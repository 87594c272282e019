//! The one place a run's history is recorded: every event goes to `history.jsonl` through
//! [`Journal::record`], which also keeps the events the checkers judge and the fault windows the
//! summary and the live view show.
//!
//! Does not own: what events mean (the checkers in `check`), or when they happen (the session).

use std::path::Path;
use std::time::Duration;

use crate::history::{Event, History};
use crate::lines::WriteFailure;
use crate::summary::FaultWindow;

/// The run's history as it is written, with what the checkers and the summary need of it.
pub struct Journal {
    history: History,
    /// Driver operations, fault changes and the heal's start, in the order written.
    judged: Vec<(Duration, Event)>,
    /// Fault windows (scheduled and manual), in the order they were set.
    windows: Vec<FaultWindow>,
    /// The first failed write of the run's other line-based files.
    files: WriteFailure,
}

/// What a finished journal leaves.
pub struct Written {
    /// Whether `history.jsonl` was written completely.
    pub history: std::io::Result<()>,
    /// The events the checkers judge.
    pub judged: Vec<(Duration, Event)>,
    /// The fault windows.
    pub windows: Vec<FaultWindow>,
}

impl Journal {
    /// Creates `history.jsonl` at `path`.
    pub fn create(path: &Path) -> std::io::Result<Journal> {
        Ok(Journal {
            history: History::create(path)?,
            judged: Vec::new(),
            windows: Vec::new(),
            files: WriteFailure::default(),
        })
    }

    /// Masks `redactor`'s secrets in everything written to `history.jsonl`.
    pub fn redacting(mut self, redactor: crate::redact::Redactor) -> Journal {
        self.history = self.history.redacting(redactor);
        self
    }

    /// Where the run's other line-based files (`timeseries.csv`, `latency.hlog`) report their
    /// first failed write, so [`Journal::write_error`] sees it.
    pub fn files(&self) -> WriteFailure {
        self.files.clone()
    }

    /// The first failed write of `history.jsonl` or of a file writing to [`Journal::files`] (a
    /// full disk), as a message naming the file.
    pub fn write_error(&self) -> Option<String> {
        self.history.failed().or_else(|| self.files.get())
    }

    /// Records `event` at run time `t`.
    pub fn record(&mut self, t: Duration, event: Event) {
        self.history.record(t, &event);
        match &event {
            Event::FaultSet { index, label } => self.windows.push(FaultWindow {
                index: *index as u64,
                label: label.clone(),
                set_at_s: t.as_secs_f64(),
                cleared_at_s: None,
                kv_ops: None,
            }),
            Event::FaultCleared { index, kv_ops, .. } => {
                if let Some(w) = self
                    .windows
                    .iter_mut()
                    .rev()
                    .find(|w| w.index == *index as u64 && w.cleared_at_s.is_none())
                {
                    w.cleared_at_s = Some(t.as_secs_f64());
                    w.kv_ops = *kv_ops;
                }
            }
            _ => {}
        }
        if judged(&event) {
            self.judged.push((t, event));
        }
    }

    /// Records each of `events` (fault changes from the timeline, in order).
    pub fn record_all(&mut self, events: Vec<(Duration, Event)>) {
        for (t, e) in events {
            self.record(t, e);
        }
    }

    /// The events the checkers judge, so far.
    pub fn judged(&self) -> &[(Duration, Event)] {
        &self.judged
    }

    /// The fault windows so far.
    pub fn windows(&self) -> &[FaultWindow] {
        &self.windows
    }

    /// Flushes `history.jsonl`.
    pub fn finish(self) -> Written {
        Written {
            history: self.history.finish(),
            judged: self.judged,
            windows: self.windows,
        }
    }
}

/// Whether the checkers see an event: driver operations, fault changes and the heal's start;
/// the run's own milestones (start, phases, pauses, the stop) are for readers of the history.
fn judged(event: &Event) -> bool {
    match event {
        Event::Op { .. }
        | Event::HealStarted
        | Event::FaultSet { .. }
        | Event::FaultCleared { .. }
        | Event::FaultFailed { .. } => true,
        Event::RunStarted { .. }
        | Event::PhaseStarted { .. }
        | Event::SendingStopped { .. }
        | Event::InFlightAbandoned
        | Event::RunEnded
        | Event::Paused
        | Event::Resumed { .. } => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_record_writes_the_history_keeps_judged_events_and_fault_windows() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("history.jsonl");
        let mut j = Journal::create(&path).expect("create");
        let s = Duration::from_secs;
        j.record(
            s(0),
            Event::RunStarted {
                scenario: "x".to_owned(),
                seed: 1,
            },
        );
        j.record_all(vec![(
            s(2),
            Event::FaultSet {
                index: 0,
                label: "hang".to_owned(),
            },
        )]);
        j.record(s(3), Event::HealStarted);
        assert_eq!(j.windows().len(), 1);
        assert_eq!(j.windows()[0].cleared_at_s, None);
        j.record(
            s(3),
            Event::FaultCleared {
                index: 0,
                label: "hang".to_owned(),
                kv_ops: Some(4),
            },
        );
        j.record(s(4), Event::RunEnded);
        assert_eq!(j.windows()[0].cleared_at_s, Some(3.0));
        assert_eq!(j.windows()[0].kv_ops, Some(4));
        let w = j.finish();
        w.history.expect("written");
        assert_eq!(w.judged.len(), 3, "{:?}", w.judged);
        assert_eq!(crate::history::read(&path).expect("read").len(), 5);
    }
}
