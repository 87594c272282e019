//! The watch state: what one evaluation hands to the next (per check: consecutive failures,
//! the active alert, whether it was announced, recent samples), and its file, so that
//! `--once` runs in CI neither repeat nor lose notifications.
//!
//! Owns: the JSON model, its bounds (samples per check, text lengths, file size) and the
//! atomic write (temporary file in the same directory, then rename). Does not own what the
//! fields mean over time (that is [`super::alert`]).

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::config::Severity;

/// The version written; a file of another version is ignored (with a warning).
pub const VERSION: u32 = 1;
/// The largest state file read.
pub const MAX_STATE_BYTES: u64 = 1024 * 1024;
/// Samples kept per check (older ones beyond the window's baseline are dropped first).
pub const MAX_SAMPLES: usize = 512;
/// Longest text kept in a state field, in bytes.
pub const MAX_TEXT: usize = 600;
/// Evidence lines kept per alert.
pub const MAX_EVIDENCE: usize = 12;

/// Everything carried between evaluations.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct State {
    /// [`VERSION`].
    pub version: u32,
    /// When the last evaluation ran, ms since the Unix epoch.
    pub evaluated_ms: u64,
    /// Per check name.
    pub checks: BTreeMap<String, CheckState>,
}

/// One check's memory.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CheckState {
    /// When this check was first evaluated (the reference of a cron that never ran).
    pub first_seen_ms: u64,
    /// Failing evaluations in a row.
    pub consecutive_failures: u32,
    /// When the current run of failures began.
    pub failing_since_ms: Option<u64>,
    /// The alert, while it is active.
    pub active: Option<ActiveAlert>,
    /// Whether the world was told the alert is active (level-triggered: a notice goes out when
    /// this differs from `active.is_some()` outside mute windows).
    pub announced: bool,
    /// The last recovery, announced when `announced` is still set.
    pub recovery: Option<Recovery>,
    /// Recent samples for windows (counter values, probe results, stats counters).
    pub samples: Vec<Sample>,
    /// Cron checks: the last-run time last read.
    pub last_run_ms: Option<u64>,
    /// The last evaluation's one-line summary.
    pub summary: String,
}

/// A value read at a time.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    /// When it was read, ms since the Unix epoch.
    pub at_ms: u64,
    /// The value (a counter; 1 for a failed probe and 0 for a good one; errors of a stats endpoint).
    pub a: f64,
    /// A second value (requests of a stats endpoint), else 0.
    pub b: f64,
}

/// An alert that fired.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActiveAlert {
    /// When the check began failing.
    pub since_ms: u64,
    /// When the alert fired (N failures reached).
    pub fired_ms: u64,
    /// The latest severity.
    pub severity: Severity,
    /// What triggered it, one line.
    pub summary: String,
    /// Values read and times, one per line.
    pub evidence: Vec<String>,
    /// Cron checks: the last run before the stop, for the missed-slot count on recovery.
    pub last_run_before_ms: Option<u64>,
}

/// How an alert ended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Recovery {
    /// When the check was seen up again.
    pub at_ms: u64,
    /// When it had begun failing.
    pub since_ms: u64,
    /// Cron checks: expected slots that passed without a run.
    pub missed_slots: Option<u64>,
    /// The recovering evaluation's summary and evidence.
    pub summary: String,
    /// Values read and times.
    pub evidence: Vec<String>,
}

/// Why the state file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// It exists but cannot be read (permissions, a directory).
    #[error("\"{}\": cannot read the state file: {source}: fix its permissions or give another --state path", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// It cannot be written.
    #[error("\"{}\": cannot write the state file: {source}: the directory must exist and be writable", path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
}

/// Text cut to [`MAX_TEXT`] bytes on a character boundary.
pub fn bounded(text: &str) -> String {
    if text.len() <= MAX_TEXT {
        return text.to_owned();
    }
    let mut end = MAX_TEXT - 3;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &text[..end])
}

impl State {
    /// An empty state.
    pub fn new() -> State {
        State {
            version: VERSION,
            ..State::default()
        }
    }

    /// Reads `path`. A missing file is a fresh state; a corrupt, oversized or foreign-version
    /// file is a fresh state plus a warning (the caller prints it).
    pub fn load(path: &Path) -> Result<(State, Option<String>), StateError> {
        let read_err = |source| StateError::Read {
            path: path.to_owned(),
            source,
        };
        let file = match std::fs::File::open(path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((State::new(), None)),
            Err(e) => return Err(read_err(e)),
        };
        let mut bytes = Vec::new();
        file.take(MAX_STATE_BYTES + 1)
            .read_to_end(&mut bytes)
            .map_err(read_err)?;
        let fresh = |why: String| {
            let w = format!(
                "\"{}\": {why}; starting from a fresh state (an active alert may be notified again)",
                path.display()
            );
            Ok((State::new(), Some(w)))
        };
        if bytes.len() as u64 > MAX_STATE_BYTES {
            return fresh(format!("over {MAX_STATE_BYTES} bytes"));
        }
        match serde_json::from_slice::<State>(&bytes) {
            Ok(s) if s.version == VERSION => Ok((s.bounded(), None)),
            Ok(s) => fresh(format!("state version {} is not {VERSION}", s.version)),
            Err(e) => fresh(format!("not a kvchaos watch state file ({e})")),
        }
    }

    /// Writes the state to `path` atomically: a temporary file beside it, then a rename.
    pub fn save(&self, path: &Path) -> Result<(), StateError> {
        let write_err = |source| StateError::Write {
            path: path.to_owned(),
            source,
        };
        let text = serde_json::to_vec_pretty(&self.clone().bounded())
            .map_err(|e| write_err(std::io::Error::other(e)))?;
        let name = path
            .file_name()
            .map_or_else(|| "state".into(), |n| n.to_string_lossy().into_owned());
        let tmp = path.with_file_name(format!(".{name}.tmp-{}", std::process::id()));
        let result = (|| {
            use std::io::Write;
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(&text)?;
            f.sync_all()?;
            std::fs::rename(&tmp, path)
        })();
        if result.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        result.map_err(write_err)
    }

    /// The state within its bounds (whatever a hand-edited file holds).
    pub fn bounded(mut self) -> State {
        for c in self.checks.values_mut() {
            if c.samples.len() > MAX_SAMPLES {
                let drop = c.samples.len() - MAX_SAMPLES;
                c.samples.drain(..drop);
            }
            c.summary = bounded(&c.summary);
            if let Some(a) = &mut c.active {
                a.summary = bounded(&a.summary);
                bound_lines(&mut a.evidence);
            }
            if let Some(r) = &mut c.recovery {
                r.summary = bounded(&r.summary);
                bound_lines(&mut r.evidence);
            }
        }
        self
    }
}

fn bound_lines(lines: &mut Vec<String>) {
    lines.truncate(MAX_EVIDENCE);
    for l in lines.iter_mut() {
        *l = bounded(l);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample_state() -> State {
        let mut s = State::new();
        s.evaluated_ms = 42;
        s.checks.insert(
            "cron".to_owned(),
            CheckState {
                first_seen_ms: 1,
                consecutive_failures: 2,
                samples: (0..1000)
                    .map(|i| Sample {
                        at_ms: i,
                        a: i as f64,
                        b: 0.0,
                    })
                    .collect(),
                summary: "é".repeat(1000),
                ..CheckState::default()
            },
        );
        s
    }

    #[test]
    fn round_trips_atomically_within_bounds() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("state.json");
        let s = sample_state();
        s.save(&path).expect("save");
        let (back, warning) = State::load(&path).expect("load");
        assert_eq!(warning, None);
        let c = &back.checks["cron"];
        assert_eq!(c.samples.len(), MAX_SAMPLES);
        assert_eq!(c.samples[0].at_ms, 1000 - MAX_SAMPLES as u64);
        assert!(c.summary.len() <= MAX_TEXT);
        assert_eq!(back.evaluated_ms, 42);
        // Only the state file is left: the temporary file was renamed.
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .expect("read dir")
            .filter_map(|e| e.ok().map(|e| e.file_name()))
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("state.json")]);
    }

    #[test]
    fn missing_is_fresh_and_corrupt_is_fresh_with_a_warning() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("state.json");
        assert_eq!(State::load(&path).expect("load").0, State::new());
        std::fs::write(&path, "{not json").expect("write");
        let (s, w) = State::load(&path).expect("load");
        assert_eq!(s, State::new());
        assert!(w.unwrap_or_default().contains("fresh state"));
        std::fs::write(&path, r#"{"version": 9, "evaluated_ms": 0, "checks": {}}"#).expect("write");
        assert!(State::load(&path).expect("load").1.is_some());
    }

    #[test]
    fn an_unwritable_place_is_an_error_naming_the_file() {
        let e = State::new()
            .save(Path::new("/nonexistent-dir/state.json"))
            .expect_err("no such directory");
        assert!(e.to_string().contains("/nonexistent-dir/state.json"), "{e}");
        assert!(matches!(e, StateError::Write { .. }));
    }
}
