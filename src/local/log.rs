//! The Worker log (`worker.log`): every line the launcher writes to its
//! stderr — the Worker's console (`[log] …`, `[warn] …`), its uncaught
//! exceptions with their stacks (`[uncaught] …`), wrangler's build warnings
//! and miniflare's messages — stamped with the time since the run started.
//!
//! Owns: reading the launcher's stderr with a bound on line length, the
//! stamp, and [`write_line`], the one place a line reaches the file. Does not
//! own: what the lines say (the launcher formats them) or when the run starts
//! (the caller sets it with [`LogClock::set_run_start`]).

use std::io::Write;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};

/// Longest line kept (bytes); the rest of a longer line is dropped.
pub const MAX_LINE: usize = 64 * 1024;

/// Where the log's times count from: the launcher's spawn until the run
/// starts, then the run's start (the `t` of `history.jsonl`). Clones share it.
#[derive(Clone, Debug)]
pub struct LogClock {
    spawned: Instant,
    run_start: Arc<Mutex<Option<Instant>>>,
}

impl LogClock {
    /// A clock counting from `spawned` until the run start is set.
    pub fn new(spawned: Instant) -> Self {
        Self {
            spawned,
            run_start: Arc::new(Mutex::new(None)),
        }
    }

    /// From now on, stamps are times since `start`.
    pub fn set_run_start(&self, start: Instant) {
        *self
            .run_start
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(start);
    }

    /// The stamp of a line read at `now`: `[+12.345s]` in the run (negative
    /// before its start), `[startup +1.234s]` before the run start is known.
    pub fn stamp(&self, now: Instant) -> String {
        let start = *self
            .run_start
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        match start {
            Some(start) if now >= start => format!("[+{}]", secs(now - start)),
            Some(start) => format!("[-{}]", secs(start - now)),
            None => format!(
                "[startup +{}]",
                secs(now.saturating_duration_since(self.spawned))
            ),
        }
    }
}

fn secs(d: Duration) -> String {
    format!("{}.{:03}s", d.as_secs(), d.subsec_millis())
}

/// Write one stamped line to the Worker log. Every line goes through here
/// (the place for redaction).
pub fn write_line(out: &mut impl Write, stamp: &str, line: &str) -> std::io::Result<()> {
    writeln!(out, "{stamp} {line}")
}

/// Copy `input` line by line into `out` until EOF, each line stamped by
/// `clock`; a line over [`MAX_LINE`] bytes is cut and marked. After an error
/// writing the file (a full disk) the rest is read and dropped, so the Worker
/// never blocks on a full pipe; its log is then short. Every secret of
/// `redactor` is masked in each line.
pub async fn copy_lines(
    input: impl AsyncRead + Unpin,
    mut out: impl Write,
    clock: LogClock,
    redactor: crate::redact::Redactor,
) {
    let mut reader = BufReader::new(input);
    let mut buf = Vec::new();
    let mut writable = true;
    loop {
        buf.clear();
        let cut = match read_bounded_line(&mut reader, &mut buf).await {
            Ok(None) => return,
            Ok(Some(cut)) => cut,
            Err(_) => return,
        };
        if !writable {
            continue;
        }
        let mut line = String::from_utf8_lossy(&buf).into_owned();
        if cut {
            line.push_str(" …[line cut at 64 KiB]");
        }
        // Secrets are masked line by line before anything reaches the file.
        let line = redactor.redact(line.trim_end_matches('\r'));
        writable = write_line(&mut out, &clock.stamp(Instant::now()), &line).is_ok();
    }
}

/// Read one line (without its newline) into `buf`, keeping at most
/// [`MAX_LINE`] bytes. `None` at EOF with nothing read; `Some(true)` when cut.
async fn read_bounded_line(
    reader: &mut (impl AsyncBufReadExt + Unpin),
    buf: &mut Vec<u8>,
) -> std::io::Result<Option<bool>> {
    let mut cut = false;
    let mut any = false;
    loop {
        let chunk = reader.fill_buf().await?;
        if chunk.is_empty() {
            return Ok(any.then_some(cut));
        }
        any = true;
        let (take, done) = match chunk.iter().position(|b| *b == b'\n') {
            Some(i) => (i, true),
            None => (chunk.len(), false),
        };
        let room = MAX_LINE.saturating_sub(buf.len());
        cut |= take > room;
        buf.extend_from_slice(&chunk[..take.min(room)]);
        reader.consume(if done { take + 1 } else { take });
        if done {
            return Ok(Some(cut));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps_count_from_spawn_then_from_the_run_start() {
        let t0 = Instant::now();
        let clock = LogClock::new(t0);
        assert_eq!(
            clock.stamp(t0 + Duration::from_millis(1_234)),
            "[startup +1.234s]"
        );
        clock.set_run_start(t0 + Duration::from_secs(2));
        assert_eq!(
            clock.stamp(t0 + Duration::from_millis(14_345)),
            "[+12.345s]"
        );
        assert_eq!(clock.stamp(t0 + Duration::from_millis(1_500)), "[-0.500s]");
    }

    #[tokio::test]
    async fn lines_are_stamped_and_long_lines_cut() {
        let long = "x".repeat(MAX_LINE + 10);
        let input =
            format!("[log] hello\r\n[uncaught] Error: boom\n    at f (a.js:1:2)\n{long}\nlast");
        let mut out = Vec::new();
        copy_lines(
            input.as_bytes(),
            &mut out,
            LogClock::new(Instant::now()),
            crate::redact::Redactor::default(),
        )
        .await;
        let text = String::from_utf8(out).expect("utf8");
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 5, "{text:.200}");
        assert!(lines[0].starts_with("[startup +") && lines[0].ends_with("s] [log] hello"));
        assert!(lines[2].ends_with("]     at f (a.js:1:2)"), "{}", lines[2]);
        assert!(lines[3].ends_with(" …[line cut at 64 KiB]"));
        assert!(lines[3].len() < MAX_LINE + 64);
        assert!(lines[4].ends_with("] last"));
    }
}
