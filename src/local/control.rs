//! The launcher's stdin/stdout as a command channel: one command line out, one reply line
//! back, in order; a reply that went missing breaks the channel for good.

use tokio::io::{AsyncWriteExt, BufReader, Lines};
use tokio::process::{ChildStdin, ChildStdout};

use super::{CRON_TIMEOUT, LocalError};

#[derive(Debug)]
pub(super) struct Control {
    pub(super) stdin: Option<ChildStdin>,
    pub(super) stdout: Lines<BufReader<ChildStdout>>,
    /// A reply went missing: later replies could be misread, so refuse.
    pub(super) broken: Option<String>,
}

/// Send one command `line` and read its reply line; a missing reply marks
/// the control broken (later replies could be misread).
pub(super) async fn exchange(
    control: &mut Control,
    command: &str,
    line: &str,
) -> Result<String, LocalError> {
    if let Some(detail) = &control.broken {
        return Err(LocalError::Gone {
            detail: detail.clone(),
        });
    }
    let Some(stdin) = control.stdin.as_mut() else {
        return Err(LocalError::Gone {
            detail: "stdin closed".to_owned(),
        });
    };
    let written = async {
        stdin.write_all(line.as_bytes()).await?;
        stdin.flush().await
    }
    .await;
    if let Err(e) = written {
        return Err(LocalError::Gone {
            detail: format!("writing a command failed: {e}"),
        });
    }
    let detail =
        match tokio::time::timeout(CRON_TIMEOUT, next_protocol_line(&mut control.stdout)).await {
            Ok(Ok(Some(reply))) => return Ok(reply),
            Ok(Ok(None)) => "stdout closed".to_owned(),
            Ok(Err(e)) => format!("reading stdout failed: {e}"),
            Err(_) => format!("no answer to {command} within {CRON_TIMEOUT:?}"),
        };
    control.broken = Some(detail.clone());
    Err(LocalError::Gone { detail })
}

/// The next line that looks like protocol (a JSON object); anything else a
/// dependency printed to stdout despite the launcher's redirection is
/// skipped. `None` at EOF.
pub(super) async fn next_protocol_line(
    lines: &mut Lines<BufReader<ChildStdout>>,
) -> std::io::Result<Option<String>> {
    while let Some(line) = lines.next_line().await? {
        if line.trim_start().starts_with('{') {
            return Ok(Some(line));
        }
    }
    Ok(None)
}
