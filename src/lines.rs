//! Line-based report files written during a run (`timeseries.csv`, `latency.hlog`,
//! `worker.log`): each complete line reaches the file in one write, and the first failed write
//! (a full disk) cuts the file back to its last whole line, stops the file and is kept in a
//! [`WriteFailure`] the run watches, so the run stops sending at once.
//!
//! Does not own: `history.jsonl` (its own writer in `history`, which works the same way), or
//! what the run does about a failure (the session ends sending, the summary goes to stdout).

use std::fs::File;
use std::io::{self, Write};
use std::sync::{Arc, OnceLock};

/// The first failed write of any line-based file of the run, shared by their writers.
#[derive(Clone, Debug, Default)]
pub struct WriteFailure(Arc<OnceLock<String>>);

impl WriteFailure {
    /// The first failure, as `cannot write FILE: ERROR`.
    pub fn get(&self) -> Option<String> {
        self.0.get().cloned()
    }

    fn set(&self, file: &str, e: &io::Error) {
        // Only the first failure is kept: later ones are its consequences.
        let _ = self.0.set(format!("cannot write {file}: {e}"));
    }
}

/// A writer that hands `file` only whole lines; bytes after the last newline wait for the rest
/// of their line (a line cut off by the run's end is dropped, never half-written).
pub struct WholeLines {
    file: File,
    name: &'static str,
    /// Bytes not yet followed by a newline.
    pending: Vec<u8>,
    /// Length of the file in whole lines.
    good_len: u64,
    failure: WriteFailure,
    /// Set after the first failed write: everything after it is refused.
    stopped: bool,
}

impl WholeLines {
    /// Writes whole lines to `file` (new and empty), named `name` in messages; a failed write is
    /// reported to `failure`.
    pub fn new(file: File, name: &'static str, failure: WriteFailure) -> WholeLines {
        WholeLines {
            file,
            name,
            pending: Vec::new(),
            good_len: 0,
            failure,
            stopped: false,
        }
    }

    fn stopped_error(&self) -> io::Error {
        io::Error::other(format!(
            "{} is no longer written after a failed write",
            self.name
        ))
    }
}

impl Write for WholeLines {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.stopped {
            return Err(self.stopped_error());
        }
        self.pending.extend_from_slice(buf);
        let Some(end) = self.pending.iter().rposition(|b| *b == b'\n') else {
            return Ok(buf.len());
        };
        match self.file.write_all(&self.pending[..=end]) {
            Ok(()) => {
                self.good_len += end as u64 + 1;
                self.pending.drain(..=end);
                Ok(buf.len())
            }
            Err(e) => {
                // A write cut short by the disk leaves part of a line: cut the file back to its
                // last whole line (best effort: a device such as /dev/full cannot be cut).
                let _ = self.file.set_len(self.good_len);
                self.stopped = true;
                self.pending.clear();
                self.failure.set(self.name, &e);
                Err(e)
            }
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        if self.stopped {
            return Err(self.stopped_error());
        }
        self.file.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_reach_the_file_whole_and_a_partial_line_waits() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let path = dir.path().join("t.csv");
        let file = File::create(&path).unwrap_or_else(|e| panic!("{e}"));
        let failure = WriteFailure::default();
        let mut w = WholeLines::new(file, "t.csv", failure.clone());
        write!(w, "a,1\nb,").unwrap_or_else(|e| panic!("{e}"));
        w.flush().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(std::fs::read_to_string(&path).unwrap_or_default(), "a,1\n");
        writeln!(w, "2").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            std::fs::read_to_string(&path).unwrap_or_default(),
            "a,1\nb,2\n"
        );
        assert_eq!(failure.get(), None);
    }

    #[test]
    fn the_first_failed_write_is_kept_and_stops_the_file() {
        let file = std::fs::OpenOptions::new()
            .write(true)
            .open("/dev/full")
            .unwrap_or_else(|e| panic!("{e}"));
        let failure = WriteFailure::default();
        let mut w = WholeLines::new(file, "latency.hlog", failure.clone());
        assert!(writeln!(w, "x").is_err());
        let first = failure.get().unwrap_or_default();
        assert!(first.starts_with("cannot write latency.hlog: "), "{first}");
        let again = writeln!(w, "y")
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(again.contains("no longer written"), "{again}");
        assert_eq!(failure.get().as_deref(), Some(first.as_str()));
    }
}
