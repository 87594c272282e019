//! A full disk in the middle of a run, without root: the binary runs with a file-size limit
//! (`RLIMIT_FSIZE`) and `SIGXFSZ` ignored, so every write past the limit fails with `EFBIG`
//! as a full disk's would with `ENOSPC`.

use std::os::unix::process::CommandExt as _;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_kvchaos");

/// Largest file the child may write: above the report folder's 64 KiB probe, below what the
/// interval log of 200 requests reaches in a few seconds.
const FILE_LIMIT: u64 = 80_000;

/// 200 request names for 30 s against the built-in server: `latency.hlog` grows by about
/// 20 KB a second, so it passes the limit after a few seconds.
fn scenario() -> String {
    let mut s = String::from(
        "name = \"disk\"\nseed = 1\n[target]\nbuiltin = true\n\
         [[phases]]\nduration = \"30s\"\nrate = 1000\n",
    );
    for i in 0..200 {
        s.push_str(&format!(
            "[[requests]]\nname = \"r{i}\"\npath = \"/items/{{{{seq}}}}\"\n"
        ));
    }
    s
}

fn run_with_file_limit(scenario: &Path, out: &Path) -> std::process::Output {
    let mut cmd = Command::new(BIN);
    cmd.args(["run", "--no-tui", "--out"])
        .arg(out)
        .arg(scenario);
    // SAFETY: between fork and exec only async-signal-safe calls (setrlimit, signal).
    unsafe {
        cmd.pre_exec(|| {
            let limit = libc::rlimit {
                rlim_cur: FILE_LIMIT,
                rlim_max: FILE_LIMIT,
            };
            if libc::setrlimit(libc::RLIMIT_FSIZE, &limit) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            // An ignored signal stays ignored across exec: a write past the limit then fails
            // with EFBIG instead of killing the process.
            libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
            Ok(())
        });
    }
    cmd.output().expect("run kvchaos")
}

#[test]
fn a_full_disk_mid_run_stops_sending_prints_the_summary_and_keeps_whole_lines() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let path = tmp.path().join("disk.toml");
    std::fs::write(&path, scenario()).expect("scenario");
    let out = tmp.path().join("reports");
    let began = Instant::now();
    let o = run_with_file_limit(&path, &out);
    let stdout = String::from_utf8_lossy(&o.stdout);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(3), "{stdout}\n{stderr}");
    // Sending stopped at the first failed write, long before the 30 s planned.
    assert!(
        began.elapsed() < Duration::from_secs(25),
        "ran {:?}",
        began.elapsed()
    );
    assert!(
        stdout.contains("stopped early") && stdout.contains("cannot write latency.hlog"),
        "{stdout}"
    );
    assert!(
        stdout.contains("all ") && stdout.contains("report: "),
        "{stdout}"
    );
    let dirs: Vec<_> = std::fs::read_dir(&out)
        .expect("report root")
        .map(|e| e.expect("entry").path())
        .collect();
    assert_eq!(dirs.len(), 1, "{dirs:?}");
    let dir = &dirs[0];
    // Every line-based file holds whole records only.
    let history = std::fs::read_to_string(dir.join("history.jsonl")).expect("history");
    assert!(history.ends_with('\n'), "{history}");
    for line in history.lines() {
        serde_json::from_str::<serde_json::Value>(line)
            .unwrap_or_else(|e| panic!("history line {line:?}: {e}"));
    }
    assert!(history.contains("\"sending-stopped\""), "{history}");
    kvchaos::report::hlog::read(&dir.join("latency.hlog")).expect("latency.hlog decodes");
    let hlog = std::fs::read(dir.join("latency.hlog")).expect("hlog");
    assert!(hlog.len() as u64 <= FILE_LIMIT && hlog.ends_with(b"\n"));
    let csv = std::fs::read_to_string(dir.join("timeseries.csv")).expect("csv");
    let columns = kvchaos::metrics::CSV_HEADER.split(',').count();
    assert!(csv.ends_with('\n'));
    for line in csv.lines() {
        assert_eq!(line.split(',').count(), columns, "{line:?}");
    }
    // No JSON file is left cut off: each one there parses.
    for f in ["summary.json", "histograms.json"] {
        if let Ok(text) = std::fs::read_to_string(dir.join(f)) {
            serde_json::from_str::<serde_json::Value>(&text).unwrap_or_else(|e| panic!("{f}: {e}"));
        }
    }
    let left: Vec<_> = std::fs::read_dir(dir)
        .expect("report folder")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".tmp"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
}
