//! Recorded traffic: reading captures into kvchaos's NDJSON corpus, and importing them.
//!
//! Three capture formats are read, all streaming through [`scan::Splitter`] so a capture of
//! any size is read in memory bounded by its largest event: `wrangler tail --format json`
//! output (pretty-printed objects back to back; [`tail`]), HAR 1.2 ([`har`]) and the corpus
//! itself ([`record`]). [`Reader`] turns any of them into [`record::Record`]s with `t_ms`
//! counted from the first event; [`import`] writes them as NDJSON. Routes for reports are in
//! [`route`]. Sending recorded requests belongs to the engine (`engine/replay.rs`).

pub mod args;
pub mod crons;
pub mod har;
pub mod plan;
pub mod record;
pub mod route;
pub mod scan;
pub mod tail;

use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use record::{Kind, Record};
use scan::{Mode, Position, ScanError, Splitter};

/// Read buffer per capture; memory use of a reader is this plus its largest event.
const READ_BUFFER: usize = 64 << 10;

/// A capture format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    /// `wrangler tail --format json` output.
    WranglerTail,
    /// HAR 1.2.
    Har,
    /// kvchaos's NDJSON corpus.
    Ndjson,
}

impl Format {
    /// Parses a format name as written in scenarios and on the command line.
    pub fn parse(s: &str) -> Option<Format> {
        match s {
            "wrangler-tail" => Some(Format::WranglerTail),
            "har" => Some(Format::Har),
            "ndjson" => Some(Format::Ndjson),
            _ => None,
        }
    }

    /// The format's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Format::WranglerTail => "wrangler-tail",
            Format::Har => "har",
            Format::Ndjson => "ndjson",
        }
    }
}

/// A capture that cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    /// The file cannot be opened or read.
    #[error("{path}: {source}")]
    Io {
        /// The capture.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file's bytes are not what its format requires at a position.
    #[error("{path}: {at}: {message}")]
    Malformed {
        /// The capture.
        path: PathBuf,
        /// Where the bad event starts (or the bad byte is).
        at: Position,
        /// What is wrong.
        message: String,
    },
    /// The format cannot be told from the first event.
    #[error("{path}: {message}; name it with format = \"wrangler-tail\" | \"har\" | \"ndjson\"")]
    Undetected {
        /// The capture.
        path: PathBuf,
        /// What was seen.
        message: String,
    },
}

/// Tells a capture's format from its first value: `log` (HAR), `eventTimestamp` (wrangler
/// tail) or `t_ms` (corpus).
pub fn detect(path: &Path) -> Result<Format, CaptureError> {
    let file = open(path)?;
    let mut s = Splitter::new(file, Mode::TopLevel);
    let undetected = |message: String| CaptureError::Undetected {
        path: path.to_owned(),
        message,
    };
    // Only the start of the first value is needed: a HAR file is one value, maybe huge.
    let first = match s.next_value() {
        Ok(Some((bytes, _))) => bytes,
        Ok(None) => return Err(undetected("the capture is empty".into())),
        Err(ScanError::Syntax { message, .. }) if message.contains("larger than") => {
            return Ok(Format::Har);
        }
        Err(e) => return Err(malformed(path, e)),
    };
    let v: serde_json::Value = serde_json::from_slice(&first)
        .map_err(|e| undetected(format!("the first event is not JSON: {e}")))?;
    if v.get("log").is_some() {
        Ok(Format::Har)
    } else if v.get("eventTimestamp").is_some() {
        Ok(Format::WranglerTail)
    } else if v.get("t_ms").is_some() {
        Ok(Format::Ndjson)
    } else {
        Err(undetected(
            "the first event has none of \"log\" (HAR), \"eventTimestamp\" (wrangler tail), \"t_ms\" (corpus)".into(),
        ))
    }
}

fn open(path: &Path) -> Result<BufReader<File>, CaptureError> {
    let f = File::open(path).map_err(|source| CaptureError::Io {
        path: path.to_owned(),
        source,
    })?;
    Ok(BufReader::with_capacity(READ_BUFFER, f))
}

fn malformed(path: &Path, e: ScanError) -> CaptureError {
    match e {
        ScanError::Io(source) => CaptureError::Io {
            path: path.to_owned(),
            source,
        },
        ScanError::Syntax { at, message } => CaptureError::Malformed {
            path: path.to_owned(),
            at,
            message,
        },
    }
}

/// Records read from a capture, in file order, one at a time.
pub struct Reader<R = BufReader<File>> {
    path: PathBuf,
    format: Format,
    split: Splitter<R>,
    /// Absolute time (ms since the epoch) of the first event, once seen.
    first: Option<i64>,
    /// Events of kinds kvchaos does not replay (tail: email, RPC, ...).
    skipped: u64,
}

impl Reader {
    /// Opens `path`, detecting its format when `format` is `None`.
    pub fn open(path: &Path, format: Option<Format>) -> Result<Reader, CaptureError> {
        let format = match format {
            Some(f) => f,
            None => detect(path)?,
        };
        Ok(Reader::new(open(path)?, path, format))
    }
}

impl<R: BufRead> Reader<R> {
    /// Reads `input` (named `path` in messages) as `format`.
    pub fn new(input: R, path: &Path, format: Format) -> Reader<R> {
        let mode = match format {
            Format::Har => Mode::HarEntries,
            Format::WranglerTail | Format::Ndjson => Mode::TopLevel,
        };
        Reader {
            path: path.to_owned(),
            format,
            split: Splitter::new(input, mode),
            first: None,
            skipped: 0,
        }
    }

    /// The format being read.
    pub fn format(&self) -> Format {
        self.format
    }

    /// Events skipped so far because kvchaos does not replay their kind.
    pub fn skipped(&self) -> u64 {
        self.skipped
    }

    /// The next record and where it starts; `None` at the end of the capture.
    pub fn next_record(&mut self) -> Result<Option<(Record, Position)>, CaptureError> {
        loop {
            let Some((bytes, at)) = self
                .split
                .next_value()
                .map_err(|e| malformed(&self.path, e))?
            else {
                return Ok(None);
            };
            let bad = |message: String| CaptureError::Malformed {
                path: self.path.clone(),
                at,
                message,
            };
            if self.format == Format::Ndjson {
                let r: Record = serde_json::from_slice(&bytes)
                    .map_err(|e| bad(format!("not a corpus record: {e}")))?;
                if let Some(p) = r.problem() {
                    return Err(bad(p));
                }
                return Ok(Some((r, at)));
            }
            let v: serde_json::Value =
                serde_json::from_slice(&bytes).map_err(|e| bad(format!("invalid JSON: {e}")))?;
            let (ts, mut r) = match self.format {
                Format::Har => har::entry(&v).map_err(bad)?,
                _ => match tail::event(&v).map_err(bad)? {
                    Some(event) => event,
                    None => {
                        self.skipped += 1;
                        continue;
                    }
                },
            };
            let first = *self.first.get_or_insert(ts);
            // An event recorded before the first one (captures are not always sorted) keeps
            // its place in the file and is due at once.
            r.t_ms = u64::try_from(ts.saturating_sub(first)).unwrap_or(0);
            if let Some(p) = r.problem() {
                return Err(bad(p));
            }
            return Ok(Some((r, at)));
        }
    }
}

/// What an import wrote.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImportStats {
    /// Records written, per kind (fetch, cron, alarm, queue).
    pub by_kind: [u64; 4],
    /// Events of kinds kvchaos does not replay.
    pub skipped: u64,
    /// `t_ms` of the last record.
    pub last_ms: u64,
}

impl ImportStats {
    /// Records written.
    pub fn total(&self) -> u64 {
        self.by_kind.iter().sum()
    }
}

/// Converts a capture into the NDJSON corpus, one record a line, streaming.
pub fn import<R: BufRead, W: Write>(
    reader: &mut Reader<R>,
    out: &mut W,
) -> Result<ImportStats, anyhow::Error> {
    let mut stats = ImportStats::default();
    while let Some((r, _)) = reader.next_record()? {
        serde_json::to_writer(&mut *out, &r)?;
        out.write_all(b"\n")?;
        let k = match r.kind {
            Kind::Fetch => 0,
            Kind::Cron => 1,
            Kind::Alarm => 2,
            Kind::Queue => 3,
        };
        stats.by_kind[k] += 1;
        stats.last_ms = stats.last_ms.max(r.t_ms);
    }
    stats.skipped = reader.skipped();
    out.flush()?;
    Ok(stats)
}

/// The recorder's row names of a plan: its requests, then every replay phase's routes (each
/// once, in phase order).
pub fn recorder_names(plan: &crate::scenario::Plan) -> Vec<String> {
    let mut names: Vec<String> = plan.requests.iter().map(|r| r.name.clone()).collect();
    for p in &plan.phases {
        if let crate::scenario::plan::Load::Replay(r) = &p.load {
            for route in &r.routes {
                if !names.contains(route) {
                    names.push(route.clone());
                }
            }
        }
    }
    names
}

/// The report line on a replay's cron, alarm and queue events that came due (`None` when the
/// plan replays none): counted; cron events are fired only with `crons = "recorded"`.
pub fn events_note(plan: &crate::scenario::Plan, due: [u64; 3]) -> Option<String> {
    let replays = plan
        .phases
        .iter()
        .any(|p| matches!(&p.load, crate::scenario::plan::Load::Replay(r) if r.others.iter().any(|&n| n > 0)));
    let [cron, alarm, queue] = due;
    let crons = if crons::fired(plan) {
        "cron events fired at the Worker in place of its cron triggers (see the cron check), alarm and queue events counted, not sent"
    } else {
        "counted, not fired (the Worker's own cron triggers ran as usual)"
    };
    replays.then(|| {
        format!("replayed captures held {cron} cron, {alarm} alarm and {queue} queue events that came due: {crons}")
    })
}

/// Method and path of every recorder row of a plan, in [`recorder_names`] order: a request's
/// own, a route's from its name (`GET /items/:id`).
pub fn row_keys(plan: &crate::scenario::Plan) -> Vec<(String, String)> {
    let n = plan.requests.len();
    let mut keys: Vec<(String, String)> = plan
        .requests
        .iter()
        .map(|r| (r.method.to_string(), r.path.source().to_owned()))
        .collect();
    for route in recorder_names(plan).into_iter().skip(n) {
        let (m, p) = route.split_once(' ').unwrap_or(("", route.as_str()));
        keys.push((m.to_owned(), p.to_owned()));
    }
    keys
}

#[cfg(test)]
mod tests;
