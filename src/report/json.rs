//! `summary.json`: writing it atomically, reading it back with errors a user can act on, and
//! the JSON Schema it follows. Owns the file format; does not decide what goes in a
//! [`Summary`] (the recorder does) or how it is shown (the other writers do).

use std::fs;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::ReportError;
use super::model::{SCHEMA_VERSION, Summary};

/// File name of the summary inside a report folder.
pub const SUMMARY_FILE: &str = "summary.json";

/// Largest file [`read_summary`] accepts.
const MAX_SUMMARY_BYTES: u64 = 64 << 20;

/// Writes `s` as pretty JSON to `dir/summary.json`, creating `dir` if needed.
///
/// The file is written to a temporary name in the same folder and renamed into place, so a
/// reader (or a crash) never sees half a file. Refuses a summary that would not read back
/// (a NaN or infinite number serialises as `null`), naming the line of the offending field.
pub fn write_summary(dir: &Path, s: &Summary) -> Result<PathBuf, ReportError> {
    let mut text = serde_json::to_string_pretty(s).map_err(ReportError::Encode)?;
    text.push('\n');
    if let Err(e) = serde_json::from_str::<Summary>(&text) {
        let field = text
            .lines()
            .nth(e.line().saturating_sub(1))
            .unwrap_or("")
            .trim();
        return Err(ReportError::Unreadable {
            line: e.line(),
            field: field.to_owned(),
            message: e.to_string(),
        });
    }
    let path = dir.join(SUMMARY_FILE);
    write_atomic(&path, text.as_bytes())?;
    Ok(path)
}

/// Reads a summary from a report folder or from the path of a `summary.json`.
///
/// Every error names the file and what is wrong with it: missing, not JSON (with line and
/// column), written by a newer kvchaos, or not shaped like a summary.
pub fn read_summary(path: &Path) -> Result<Summary, ReportError> {
    let file = summary_path(path)?;
    let read_err = |source| ReportError::Read {
        path: file.clone(),
        source,
    };
    // Bounded, so a device or a stray huge file given by mistake cannot exhaust memory.
    let mut bytes = Vec::new();
    fs::File::open(&file)
        .and_then(|f| f.take(MAX_SUMMARY_BYTES + 1).read_to_end(&mut bytes))
        .map_err(read_err)?;
    if bytes.len() as u64 > MAX_SUMMARY_BYTES {
        return Err(ReportError::NotASummary {
            path: file,
            message: format!(
                "larger than {} MiB; a summary is a few hundred KiB",
                MAX_SUMMARY_BYTES >> 20
            ),
        });
    }

    // First only the version, so a newer layout is reported as such rather than as whatever
    // field it happens to have changed.
    #[derive(Deserialize)]
    struct Probe {
        schema_version: Option<serde_json::Value>,
    }
    let probe: Probe = serde_json::from_slice(&bytes).map_err(|e| parse_error(&file, &e))?;
    let version = match probe.schema_version {
        None => {
            return Err(ReportError::NotASummary {
                path: file,
                message: "no \"schema_version\" field".to_owned(),
            });
        }
        Some(v) => v,
    };
    match version.as_u64() {
        Some(n) if n == u64::from(SCHEMA_VERSION) => {}
        Some(n) if n > u64::from(SCHEMA_VERSION) => {
            return Err(ReportError::NewerSchema {
                path: file,
                found: n,
            });
        }
        _ => {
            return Err(ReportError::UnsupportedSchema {
                path: file,
                found: version.to_string(),
            });
        }
    }

    serde_json::from_slice(&bytes).map_err(|e| parse_error(&file, &e))
}

/// The JSON Schema (draft 2020-12) of `summary.json`, generated from [`Summary`].
///
/// The same document is checked in at `reports/schema/summary.v1.schema.json`; a unit test
/// keeps the two equal.
pub fn schema_json() -> serde_json::Value {
    schemars::schema_for!(Summary).to_value()
}

/// `path` itself when it is a file, `path/summary.json` when it is a folder.
pub(crate) fn summary_path(path: &Path) -> Result<PathBuf, ReportError> {
    let meta = fs::metadata(path).map_err(|source| not_found_or_read(path, source))?;
    if !meta.is_dir() {
        return Ok(path.to_owned());
    }
    let file = path.join(SUMMARY_FILE);
    match fs::metadata(&file) {
        Ok(m) if m.is_file() => Ok(file),
        Ok(_) => Err(ReportError::NotASummary {
            path: file,
            message: "is not a regular file".to_owned(),
        }),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Err(ReportError::NoSummaryInDir {
            dir: path.to_owned(),
        }),
        Err(source) => Err(ReportError::Read { path: file, source }),
    }
}

fn not_found_or_read(path: &Path, source: io::Error) -> ReportError {
    if source.kind() == io::ErrorKind::NotFound {
        ReportError::NotFound {
            path: path.to_owned(),
        }
    } else {
        ReportError::Read {
            path: path.to_owned(),
            source,
        }
    }
}

fn parse_error(path: &Path, e: &serde_json::Error) -> ReportError {
    use serde_json::error::Category;
    let path = path.to_owned();
    let (line, column) = (e.line(), e.column());
    // serde_json appends " at line L column C"; the location is printed in front instead.
    let full = e.to_string();
    let message = match full.rfind(" at line ") {
        Some(i) => full[..i].to_owned(),
        None => full,
    };
    match e.classify() {
        Category::Data => ReportError::Invalid {
            path,
            line,
            column,
            message,
        },
        Category::Syntax | Category::Eof | Category::Io => ReportError::NotJson {
            path,
            line,
            column,
            message,
        },
    }
}

/// Writes `bytes` to `path` through a temporary file in the same folder and a rename.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), ReportError> {
    let write_err = |source| ReportError::Write {
        path: path.to_owned(),
        source,
    };
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    fs::create_dir_all(dir).map_err(write_err)?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy())
        .unwrap_or_default();
    // The process id keeps two kvchaos processes writing into one folder apart.
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let result = (|| {
        let mut f = fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        fs::rename(&tmp, path)
    })();
    if let Err(source) = result {
        let _ = fs::remove_file(&tmp);
        return Err(write_err(source));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::model::fixture;

    /// Where the checked-in schema lives.
    fn schema_file() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("reports/schema/summary.v1.schema.json")
    }

    fn checked_in_schema() -> serde_json::Value {
        let text =
            fs::read_to_string(schema_file()).expect("reports/schema/summary.v1.schema.json");
        serde_json::from_str(&text).expect("checked-in schema is JSON")
    }

    /// The checked-in schema must match the types. After an intended model change, regenerate
    /// it with `KVCHAOS_UPDATE_SCHEMA=1 cargo test --lib checked_in_schema_is_current` and commit it
    /// (and bump `SCHEMA_VERSION` plus the file name if the change is not backward compatible).
    #[test]
    fn checked_in_schema_is_current() {
        let fresh = schema_json();
        if std::env::var_os("KVCHAOS_UPDATE_SCHEMA").is_some_and(|v| v == "1") {
            let mut text = serde_json::to_string_pretty(&fresh).expect("schema serialises");
            text.push('\n');
            write_atomic(&schema_file(), text.as_bytes()).expect("schema written");
            return;
        }
        assert!(
            checked_in_schema() == fresh,
            "reports/schema/summary.v1.schema.json is stale: rerun with KVCHAOS_UPDATE_SCHEMA=1 \
             and commit the result"
        );
    }

    fn validator() -> jsonschema::Validator {
        jsonschema::validator_for(&checked_in_schema()).expect("schema compiles")
    }

    fn fixture_json() -> serde_json::Value {
        serde_json::to_value(fixture()).expect("fixture serialises")
    }

    #[test]
    fn fixture_validates_against_checked_in_schema() {
        let doc = fixture_json();
        let errors: Vec<String> = validator()
            .iter_errors(&doc)
            .map(|e| e.to_string())
            .collect();
        assert!(errors.is_empty(), "fixture rejected: {errors:#?}");
    }

    #[test]
    fn schema_rejects_unknown_field() {
        let mut doc = fixture_json();
        doc["surprise"] = serde_json::json!(1);
        assert!(!validator().is_valid(&doc));

        let mut nested = fixture_json();
        nested["overall"]["corrected"]["p42_us"] = serde_json::json!(1);
        assert!(!validator().is_valid(&nested));
    }

    #[test]
    fn schema_rejects_missing_required_field() {
        let mut doc = fixture_json();
        doc.as_object_mut().expect("object").remove("overall");
        assert!(!validator().is_valid(&doc));

        let mut nested = fixture_json();
        nested["requests"][0]
            .as_object_mut()
            .expect("object")
            .remove("errors");
        assert!(!validator().is_valid(&nested));
    }

    #[test]
    fn write_then_read_round_trips() {
        let dir = tempfile::tempdir().expect("tempdir");
        let s = fixture();
        let path = write_summary(dir.path(), &s).expect("written");
        assert_eq!(path, dir.path().join(SUMMARY_FILE));
        assert_eq!(read_summary(dir.path()).expect("read from dir"), s);
        assert_eq!(read_summary(&path).expect("read from file"), s);
        // Only the summary is left behind: the temporary file was renamed.
        let names: Vec<_> = fs::read_dir(dir.path())
            .expect("listing")
            .map(|e| e.expect("entry").file_name())
            .collect();
        assert_eq!(names, [SUMMARY_FILE]);
    }

    /// The exact bytes of `summary.json`: field order, number formatting, trailing newline.
    #[test]
    fn written_file_snapshot() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = write_summary(dir.path(), &fixture()).expect("written");
        insta::assert_snapshot!(fs::read_to_string(path).expect("summary.json"));
    }

    #[test]
    fn write_creates_missing_folder_and_replaces_old_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let nested = dir.path().join("runs/2025-06-01");
        let mut s = fixture();
        write_summary(&nested, &s).expect("first write");
        s.scenario.name = "second".to_owned();
        write_summary(&nested, &s).expect("second write");
        assert_eq!(read_summary(&nested).expect("read").scenario.name, "second");
    }

    #[test]
    fn write_refuses_non_finite_numbers() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut s = fixture();
        s.requests[1].rps = f64::NAN;
        let err = write_summary(dir.path(), &s)
            .expect_err("NaN refused")
            .to_string();
        assert!(err.contains("\"rps\": null"), "{err}");
        assert!(!dir.path().join(SUMMARY_FILE).exists());
    }

    #[test]
    fn read_missing_dir_says_so() {
        let dir = tempfile::tempdir().expect("tempdir");
        let missing = dir.path().join("nope");
        let err = read_summary(&missing).expect_err("missing").to_string();
        assert!(err.starts_with(&missing.display().to_string()), "{err}");
        assert!(err.contains("no such file or directory"), "{err}");
    }

    #[test]
    fn read_dir_without_summary_says_so() {
        let dir = tempfile::tempdir().expect("tempdir");
        let err = read_summary(dir.path()).expect_err("empty dir").to_string();
        assert!(err.contains("no summary.json"), "{err}");
        assert!(err.contains(&dir.path().display().to_string()), "{err}");
    }

    #[test]
    fn read_non_json_gives_line_and_column() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join(SUMMARY_FILE);
        fs::write(&file, "{\n  \"schema_version\": 1,\n  oops\n}\n").expect("written");
        let err = read_summary(dir.path()).expect_err("not JSON");
        assert!(
            matches!(
                err,
                ReportError::NotJson {
                    line: 3,
                    column: 3,
                    ..
                }
            ),
            "{err:?}"
        );
        let text = err.to_string();
        assert!(
            text.starts_with(&format!("{}:3:3: not valid JSON", file.display())),
            "{text}"
        );
    }

    #[test]
    fn read_binary_file_is_not_json() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("report.md");
        fs::write(&file, [0xff, 0xfe, 0x00]).expect("written");
        let err = read_summary(&file).expect_err("binary");
        assert!(matches!(err, ReportError::NotJson { .. }), "{err:?}");
    }

    #[cfg(unix)]
    #[test]
    fn read_endless_file_is_bounded() {
        let err = read_summary(Path::new("/dev/zero")).expect_err("endless");
        assert!(err.to_string().contains("larger than 64 MiB"), "{err}");
    }

    #[test]
    fn read_newer_schema_names_both_versions() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut doc = fixture_json();
        doc["schema_version"] = serde_json::json!(2);
        // A newer layout may have fields this build does not know; the version wins.
        doc["new_field"] = serde_json::json!(true);
        fs::write(dir.path().join(SUMMARY_FILE), doc.to_string()).expect("written");
        let err = read_summary(dir.path()).expect_err("newer").to_string();
        assert!(
            err.ends_with(
                "written by a newer kvchaos (schema 2); this build reads schema 1: \
                 upgrade kvchaos to re-render it"
            ),
            "{err}"
        );
    }

    #[test]
    fn read_unsupported_or_missing_schema_version() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join(SUMMARY_FILE);
        fs::write(&file, r#"{"schema_version": "one"}"#).expect("written");
        let err = read_summary(&file).expect_err("string version").to_string();
        assert!(err.contains("unsupported schema_version \"one\""), "{err}");

        fs::write(&file, r#"{"scenario": {}}"#).expect("written");
        let err = read_summary(&file).expect_err("no version").to_string();
        assert!(err.contains("not a kvchaos summary"), "{err}");
    }

    #[test]
    fn read_wrong_shape_names_the_field() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut doc = fixture_json();
        doc["overall"]
            .as_object_mut()
            .expect("object")
            .remove("rps");
        let text = serde_json::to_string_pretty(&doc).expect("serialises");
        fs::write(dir.path().join(SUMMARY_FILE), text).expect("written");
        let err = read_summary(dir.path()).expect_err("missing field");
        assert!(matches!(err, ReportError::Invalid { .. }), "{err:?}");
        assert!(err.to_string().contains("missing field `rps`"), "{err}");
    }
}
