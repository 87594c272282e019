//! Reports: one data model ([`model::Summary`]) and one writer per format.
//!
//! A run ends with [`write_all`], which writes `summary.json` ([`json`]), `report.md`
//! ([`markdown`]), `junit.xml` ([`junit`]) and `report.html` ([`html`]) into the report folder;
//! [`text`] gives the short end-of-run summary for the terminal. `summary.json` is the source of
//! truth: [`rerender`] (behind `kvchaos report DIR`) reads it back, with the folder's history
//! and interval data ([`data`]), and writes every other format again, so a report can be
//! re-rendered by a newer kvchaos. [`compare`] sets two runs side by side.
//!
//! This module does not measure anything (the recorder fills the `Summary`) and does not print
//! (the CLI does). During the run the recorder writes `timeseries.csv` and, through
//! [`hlog::HlogWriter`], `latency.hlog`; the run writes `history.jsonl` and `mockkv.json`.

pub mod answers;
pub mod compare;
pub mod data;
pub mod hlog;
pub mod html;
mod human;
pub mod json;
pub mod junit;
pub mod markdown;
mod markup;
/// The summary model, a leaf module of its own; re-exported so writers keep `model::` paths.
pub use crate::summary as model;
pub mod shards;
mod svg;
pub mod text;

use std::io;
use std::path::{Path, PathBuf};

use model::{SCHEMA_VERSION, Summary};

/// File name of the Markdown report inside a report folder.
pub const MARKDOWN_FILE: &str = "report.md";

/// Why a report could not be read or written. Every message names the file.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// The path given does not exist.
    #[error("{}: no such file or directory: pass a report folder or its summary.json", path.display())]
    NotFound {
        /// The path as given.
        path: PathBuf,
    },
    /// A folder without `summary.json`.
    #[error(
        "{}: no summary.json in this folder: pass the folder `kvchaos run` wrote its report to",
        dir.display()
    )]
    NoSummaryInDir {
        /// The folder as given.
        dir: PathBuf,
    },
    /// The file exists but could not be read.
    #[error("{}: cannot read: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: io::Error,
    },
    /// The file is not JSON.
    #[error("{}:{line}:{column}: not valid JSON: {message}", path.display())]
    NotJson {
        /// The file.
        path: PathBuf,
        /// 1-based line of the error.
        line: usize,
        /// 1-based column of the error.
        column: usize,
        /// What the parser expected.
        message: String,
    },
    /// JSON, but not shaped like a summary of this schema version.
    #[error("{}:{line}:{column}: not a valid kvchaos summary: {message}", path.display())]
    Invalid {
        /// The file.
        path: PathBuf,
        /// 1-based line of the error.
        line: usize,
        /// 1-based column of the error.
        column: usize,
        /// Which field is missing, unknown or of the wrong type.
        message: String,
    },
    /// JSON without the marks of a summary (no `schema_version`, or not a file).
    #[error("{}: not a kvchaos summary: {message}", path.display())]
    NotASummary {
        /// The file.
        path: PathBuf,
        /// What is missing.
        message: String,
    },
    /// Written by a kvchaos with a newer layout.
    #[error(
        "{}: written by a newer kvchaos (schema {found}); this build reads schema {SCHEMA_VERSION}: \
         upgrade kvchaos to re-render it",
        path.display()
    )]
    NewerSchema {
        /// The file.
        path: PathBuf,
        /// `schema_version` found in the file.
        found: u64,
    },
    /// A `schema_version` that no kvchaos wrote (0, negative, not an integer).
    #[error(
        "{}: unsupported schema_version {found}; this build reads schema {SCHEMA_VERSION}",
        path.display()
    )]
    UnsupportedSchema {
        /// The file.
        path: PathBuf,
        /// The value found, as JSON.
        found: String,
    },
    /// The summary could not be serialised.
    #[error("cannot encode the summary as JSON: {0}")]
    Encode(#[source] serde_json::Error),
    /// The summary serialised to JSON that would not read back (e.g. a NaN became `null`).
    #[error(
        "summary not written: line {line} `{field}` would not read back ({message}); \
         numbers must be finite"
    )]
    Unreadable {
        /// Line of the offending field in the pretty JSON.
        line: usize,
        /// That line, trimmed.
        field: String,
        /// The parser's message.
        message: String,
    },
    /// A report file could not be written.
    #[error("{}: cannot write: {source}", path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: io::Error,
    },
}

/// Writes `summary.json`, then `report.md`, `junit.xml` and `report.html` into `dir` (created
/// if needed); returns the files written, summary first. The HTML report reads the history and
/// interval data already in `dir`.
pub fn write_all(dir: &Path, s: &Summary) -> Result<Vec<PathBuf>, ReportError> {
    let summary = json::write_summary(dir, s)?;
    let mut files = vec![summary];
    files.extend(render_formats(dir, s)?.files);
    Ok(files)
}

/// What [`rerender`] wrote.
#[derive(Debug)]
pub struct Rendered {
    /// The files written.
    pub files: Vec<PathBuf>,
    /// Data files that were missing or unreadable (their parts of the HTML report are empty).
    pub notes: Vec<String>,
    /// The summary the reports were rendered from.
    pub summary: Summary,
}

/// Reads `summary.json` from `dir` (a report folder, or the summary file itself) and writes
/// `report.md`, `junit.xml` and `report.html` next to it again, from the summary and the
/// folder's `history.jsonl`, `latency.hlog`, `timeseries.csv` and `mockkv.json`. Backs
/// `kvchaos report DIR`.
pub fn rerender(dir: &Path) -> Result<Rendered, ReportError> {
    let file = json::summary_path(dir)?;
    let s = json::read_summary(&file)?;
    let out_dir = match file.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let r = render_formats(out_dir, &s)?;
    Ok(Rendered {
        files: r.files,
        notes: r.notes,
        summary: s,
    })
}

struct Formats {
    files: Vec<PathBuf>,
    notes: Vec<String>,
}

/// Every format derived from the summary and the folder's data files.
fn render_formats(dir: &Path, s: &Summary) -> Result<Formats, ReportError> {
    let markdown = write_markdown(dir, s)?;
    let junit = dir.join(junit::JUNIT_FILE);
    json::write_atomic(&junit, junit::render(s).as_bytes())?;
    let data = data::RunData::load(dir, s.clone());
    let html = dir.join(html::HTML_FILE);
    json::write_atomic(&html, html::render(&data).as_bytes())?;
    Ok(Formats {
        files: vec![markdown, junit, html],
        notes: data.notes,
    })
}

fn write_markdown(dir: &Path, s: &Summary) -> Result<PathBuf, ReportError> {
    let path = dir.join(MARKDOWN_FILE);
    json::write_atomic(&path, markdown::render(s).as_bytes())?;
    Ok(path)
}

/// A threshold's observed value in human units (`812 ms`, `2.50%`, `no data`).
pub fn observed_text(observed: Option<f64>, unit: &str) -> String {
    human::observed(observed, unit)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::summary::fixture;

    #[test]
    fn write_all_writes_summary_and_every_format() {
        let dir = tempfile::tempdir().expect("tempdir");
        let s = fixture();
        let files = write_all(dir.path(), &s).expect("written");
        assert_eq!(
            files,
            [
                dir.path().join(json::SUMMARY_FILE),
                dir.path().join(MARKDOWN_FILE),
                dir.path().join(junit::JUNIT_FILE),
                dir.path().join(html::HTML_FILE),
            ]
        );
        let md = std::fs::read_to_string(&files[1]).expect("report.md");
        assert_eq!(md, markdown::render(&s));
    }

    #[test]
    fn rerender_rewrites_markdown_from_summary() {
        let dir = tempfile::tempdir().expect("tempdir");
        let s = fixture();
        json::write_summary(dir.path(), &s).expect("summary written");
        let md_path = dir.path().join(MARKDOWN_FILE);
        std::fs::write(&md_path, "stale").expect("stale report");

        let r = rerender(dir.path()).expect("rerendered");
        assert_eq!(r.files[0], md_path);
        assert_eq!(r.files.len(), 3);
        assert!(r.notes.is_empty(), "{:?}", r.notes);
        assert_eq!(
            std::fs::read_to_string(&md_path).expect("report.md"),
            markdown::render(&s)
        );

        // The summary file itself is accepted too; the report goes next to it.
        std::fs::remove_file(&md_path).expect("removed");
        let summary = dir.path().join(json::SUMMARY_FILE);
        assert_eq!(rerender(&summary).expect("rerendered").files[0], md_path);
        assert!(md_path.exists());
    }

    #[test]
    fn rerender_of_empty_folder_writes_nothing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let err = rerender(dir.path()).expect_err("no summary");
        assert!(matches!(err, ReportError::NoSummaryInDir { .. }), "{err:?}");
        assert!(!dir.path().join(MARKDOWN_FILE).exists());
    }
}
