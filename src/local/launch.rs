//! Starting the launcher: its command line, the wait for its readiness line, and the Worker
//! log's last lines quoted when it does not get ready.

use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{BufReader, Lines};
use tokio::process::{ChildStdout, Command};
use tokio::task::JoinHandle;

use super::control::next_protocol_line;
use super::{Group, LOG_FLUSH, LOG_TAIL_LINES, LocalError, LocalSpec, Ready, STOP_GRACE, protocol};

/// At most this much of the end of the Worker log is read to quote its last lines.
pub(super) const LOG_TAIL_BYTES: u64 = 64 * 1024;

/// The launcher's command for `spec`: the Worker, the KV routing, the clock, a private state
/// and scratch directory, its own process group, piped stdio.
pub(super) fn command(
    spec: &LocalSpec,
    node: PathBuf,
    launcher: &Path,
    worker: &Path,
    run_dir: &Path,
) -> Command {
    let mut cmd = Command::new(node);
    cmd.arg(launcher).arg("--worker").arg(worker);
    match spec.kv_addr {
        Some(addr) => cmd
            .arg("--kv-address")
            .arg(addr.to_string())
            .arg("--kv-binding")
            .arg(spec.kv_binding.as_str()),
        None => cmd.arg("--no-kv-routing"),
    };
    if let Some(config) = &spec.config {
        cmd.arg("--config").arg(config);
    }
    if let Some(env) = &spec.env {
        cmd.arg("--env").arg(env);
    }
    if let Some(c) = spec.clock {
        cmd.arg("--clock")
            .arg(format!("{},{},{}", c.now_ms, c.wall_ms, c.speed));
    }
    cmd.args(&spec.launcher_args);
    cmd.arg("--persist")
        .arg(run_dir.join("state"))
        // The launcher removes it too: when kvchaos dies, the launcher
        // sees stdin EOF, stops and cleans up after itself.
        .arg("--scratch")
        .arg(run_dir)
        .current_dir(&spec.launcher_dir)
        // miniflare keeps its scratch files under TMPDIR: inside the run
        // directory they go with it even when the run is killed.
        .env("TMPDIR", run_dir.join("tmp"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    cmd
}

/// A launcher between its spawn and its readiness line.
pub(super) struct Starting<'a> {
    /// The Worker's directory, for error messages.
    pub worker: PathBuf,
    /// The task copying the launcher's stderr into the Worker log.
    pub log_writer: Option<JoinHandle<()>>,
    /// The Worker log.
    pub log_path: &'a Path,
}

impl Starting<'_> {
    /// Waits up to `timeout` for the readiness line on `lines`; a launcher that times out,
    /// exits or says it is not ready is an error quoting the Worker log's last lines.
    pub async fn ready(
        self,
        group: &mut Group,
        lines: &mut Lines<BufReader<ChildStdout>>,
        timeout: Duration,
    ) -> Result<Ready, LocalError> {
        let line = match tokio::time::timeout(timeout, next_protocol_line(lines)).await {
            Err(_) => {
                return Err(LocalError::Timeout {
                    worker: self.worker.clone(),
                    after: timeout,
                    log_tail: self.log_tail().await,
                });
            }
            Ok(Err(e)) => {
                return Err(LocalError::Io {
                    what: "reading the launcher's stdout".to_owned(),
                    source: e,
                });
            }
            Ok(Ok(None)) => {
                let status = match tokio::time::timeout(STOP_GRACE, group.child.wait()).await {
                    Ok(Ok(s)) => s.to_string(),
                    _ => "still running".to_owned(),
                };
                return Err(LocalError::Exited {
                    worker: self.worker.clone(),
                    status,
                    log_tail: self.log_tail().await,
                });
            }
            Ok(Ok(Some(line))) => line,
        };
        match protocol::parse_ready(&line) {
            Err(detail) => Err(LocalError::Protocol { detail }),
            Ok(Err(reason)) => {
                // Let the launcher finish writing its log before quoting it.
                let _ = tokio::time::timeout(STOP_GRACE, group.child.wait()).await;
                Err(LocalError::NotReady {
                    worker: self.worker.clone(),
                    reason,
                    log_tail: self.log_tail().await,
                })
            }
            Ok(Ok(ready)) => Ok(ready),
        }
    }

    /// The Worker log's last lines, once the launcher's last lines have landed (a failed start
    /// quotes them).
    async fn log_tail(self) -> String {
        if let Some(w) = self.log_writer {
            let _ = tokio::time::timeout(LOG_FLUSH, w).await;
        }
        read_tail(self.log_path, LOG_TAIL_LINES, LOG_TAIL_BYTES)
    }
}

/// The last `n` lines within the last `max_bytes` bytes of the file at `path` (empty if
/// unreadable). Only the end of the file is read, however long the log grew; a line cut by the
/// byte bound is dropped when whole lines follow it.
pub(super) fn read_tail(path: &Path, n: usize, max_bytes: u64) -> String {
    let Ok(mut file) = std::fs::File::open(path) else {
        return String::new();
    };
    let len = file.metadata().map_or(0, |m| m.len());
    let from = len.saturating_sub(max_bytes);
    if file.seek(SeekFrom::Start(from)).is_err() {
        return String::new();
    }
    let mut buf = Vec::new();
    if file.take(max_bytes).read_to_end(&mut buf).is_err() {
        return String::new();
    }
    let text = String::from_utf8_lossy(&buf);
    let text = match text.split_once('\n') {
        Some((_, rest)) if from > 0 && !rest.is_empty() => rest,
        _ => &text,
    };
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tail_keeps_the_last_lines() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("log");
        std::fs::write(&p, "a\nb\nc\n").expect("write");
        assert_eq!(read_tail(&p, 2, LOG_TAIL_BYTES), "b\nc");
        assert_eq!(read_tail(&p, 5, LOG_TAIL_BYTES), "a\nb\nc");
        assert_eq!(read_tail(&dir.path().join("none"), 2, LOG_TAIL_BYTES), "");
    }

    #[test]
    fn tail_reads_only_the_end_of_a_long_log() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("log");
        // 100,000 numbered lines (about 1.2 MB), far past the byte bound.
        let text: String = (0..100_000).map(|i| format!("line {i:06}\n")).collect();
        std::fs::write(&p, &text).expect("write");
        assert_eq!(read_tail(&p, 2, 64), "line 099998\nline 099999");
        // The bound cuts "line 099995" in the middle: the partial line is not quoted.
        let tail = read_tail(&p, 10, 50);
        assert_eq!(tail, "line 099996\nline 099997\nline 099998\nline 099999");
    }
}
