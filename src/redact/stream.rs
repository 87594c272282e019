//! Redaction of a byte stream written to a file as it arrives (the Worker's console output
//! into `worker.log`): whole lines are masked and written at once; a line longer than
//! [`MAX_PENDING`] is written in pieces, holding back enough bytes that no secret is split.

use std::process::Stdio;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};

use super::Redactor;

/// Bytes held while waiting for the end of a line, beyond which the line is written in pieces.
const MAX_PENDING: usize = 64 * 1024;

/// Masks secrets in a stream, line by line.
#[derive(Debug)]
pub struct LineRedactor {
    redactor: Redactor,
    pending: Vec<u8>,
}

impl LineRedactor {
    /// A stream redactor for `redactor`'s secrets.
    pub fn new(redactor: Redactor) -> LineRedactor {
        LineRedactor {
            redactor,
            pending: Vec::new(),
        }
    }

    /// Takes `chunk`; returns what may be written now (whole lines, masked).
    pub fn push(&mut self, chunk: &[u8]) -> Vec<u8> {
        let held = self.pending.len();
        self.pending.extend_from_slice(chunk);
        let mut out = Vec::new();
        // Only the new bytes can hold a new end of line.
        if let Some(nl) = chunk.iter().rposition(|&b| b == b'\n') {
            let rest = self.pending.split_off(held + nl + 1);
            let lines = std::mem::replace(&mut self.pending, rest);
            out.extend_from_slice(&self.redactor.redact_bytes(&lines));
        }
        if self.pending.len() > MAX_PENDING {
            // Mask what is held, then keep back the last `longest - 1` bytes: a secret that
            // continues in the next chunk starts within them.
            let masked = self.redactor.redact_bytes(&self.pending).into_owned();
            let keep = self.redactor.longest().saturating_sub(1).min(masked.len());
            let cut = masked.len() - keep;
            out.extend_from_slice(&masked[..cut]);
            self.pending = masked[cut..].to_vec();
        }
        out
    }

    /// What is left at the end of the stream, masked.
    pub fn finish(&mut self) -> Vec<u8> {
        let rest = std::mem::take(&mut self.pending);
        self.redactor.redact_bytes(&rest).into_owned()
    }
}

/// Where a child's output should go so that `file` never holds a secret: the file itself when
/// there are no secrets, else a pipe, to be copied by [`copy_log`] (which gets the file back).
pub fn log_sink(redactor: &Redactor, file: std::fs::File) -> (Stdio, Option<std::fs::File>) {
    if redactor.is_empty() {
        (Stdio::from(file), None)
    } else {
        (Stdio::piped(), Some(file))
    }
}

/// Copies `from` (a child's piped output) into `file` with every secret masked, in a task of
/// its own that ends with the stream. Does nothing when either is `None` (see [`log_sink`]).
pub fn copy_log<R>(from: Option<R>, file: Option<std::fs::File>, redactor: Redactor)
where
    R: AsyncRead + Unpin + Send + 'static,
{
    let (Some(mut from), Some(file)) = (from, file) else {
        return;
    };
    tokio::spawn(async move {
        let mut file = tokio::fs::File::from_std(file);
        let mut lines = LineRedactor::new(redactor);
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            let n = match from.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            let out = lines.push(&buf[..n]);
            // A failed write (full disk) drops the log, never the run; keep draining the pipe
            // so the child never blocks on it.
            if !out.is_empty() && file.write_all(&out).await.is_ok() {
                let _ = file.flush().await;
            }
        }
        let _ = file.write_all(&lines.finish()).await;
        let _ = file.flush().await;
    });
}
