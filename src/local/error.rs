//! Why a local Worker could not be installed, started or driven: the one
//! error type of [`super`], each variant worded for the person running kvchaos.

use std::path::PathBuf;
use std::time::Duration;

/// Why the local Worker could not be installed, started or driven.
#[derive(Debug, thiserror::Error)]
pub enum LocalError {
    /// A program the local target needs is not on `PATH`.
    #[error(
        "'{program}' not found on PATH: the local Worker target needs Node.js 20 or later with npm (https://nodejs.org), or point the scenario at a deployed Worker"
    )]
    Missing {
        /// `node` or `npm`.
        program: &'static str,
    },
    /// `npm ci` failed.
    #[error(
        "installing the miniflare launcher in '{}' failed ({status}): run 'npm ci' there to see why",
        dir.display()
    )]
    Install {
        /// The launcher directory.
        dir: PathBuf,
        /// Exit status or what is still missing.
        status: String,
    },
    /// A file or process operation failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done, with the path.
        what: String,
        /// Underlying error.
        source: std::io::Error,
    },
    /// The launcher said it could not start the Worker.
    #[error("miniflare could not start the Worker in '{}': {reason}{}", worker.display(), tail_beyond(log_tail, reason))]
    NotReady {
        /// The Worker directory.
        worker: PathBuf,
        /// The launcher's reason.
        reason: String,
        /// Last lines of the Worker log.
        log_tail: String,
    },
    /// The launcher exited before it was ready.
    #[error("the miniflare launcher exited ({status}) before the Worker in '{}' was ready{}", worker.display(), tail(log_tail))]
    Exited {
        /// The Worker directory.
        worker: PathBuf,
        /// Its exit status.
        status: String,
        /// Last lines of the Worker log.
        log_tail: String,
    },
    /// No readiness line within the timeout.
    #[error("the Worker in '{}' was not ready after {after:?}; raise the startup timeout or see the log{}", worker.display(), tail(log_tail))]
    Timeout {
        /// The Worker directory.
        worker: PathBuf,
        /// The timeout.
        after: Duration,
        /// Last lines of the Worker log.
        log_tail: String,
    },
    /// The launcher said something outside its protocol.
    #[error("miniflare launcher protocol error: {detail}")]
    Protocol {
        /// What was wrong.
        detail: String,
    },
    /// The launcher refused or failed a command.
    #[error("miniflare launcher refused '{command}': {reason}")]
    Command {
        /// The command name.
        command: &'static str,
        /// The launcher's reason.
        reason: String,
    },
    /// The launcher is gone or stopped answering.
    #[error("the miniflare launcher is no longer running ({detail}); see the Worker log")]
    Gone {
        /// What happened.
        detail: String,
    },
}

/// The log tail without the lines the reason already quotes (a failed
/// build is in both, whole).
fn tail_beyond(log_tail: &str, reason: &str) -> String {
    let kept: Vec<&str> = log_tail
        .lines()
        .filter(|l| {
            let text = l.split_once("] ").map_or(*l, |(_, t)| t).trim();
            text.is_empty() || !reason.contains(text)
        })
        .collect();
    tail(&kept.join("\n"))
}

fn tail(log_tail: &str) -> String {
    if log_tail.trim().is_empty() {
        String::new()
    } else {
        format!("\nlast lines of the Worker log:\n{log_tail}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reason_is_whole_and_the_tail_does_not_repeat_it() {
        let reason = "wrangler could not build the Worker of '/w/wrangler.toml' (exit 1):\n✘ [ERROR] Could not resolve \"./missing.js\"\n\n    src/index.ts:1:7:";
        let err = LocalError::NotReady {
            worker: PathBuf::from("/w"),
            reason: reason.to_owned(),
            log_tail: "[startup +0.100s] kvchaos launcher: D1/DO state in /tmp/x\n[startup +2.000s] ✘ [ERROR] Could not resolve \"./missing.js\"".to_owned(),
        };
        let text = err.to_string();
        assert!(text.contains(reason), "{text}");
        assert_eq!(text.matches("Could not resolve").count(), 1, "{text}");
        assert!(text.contains("D1/DO state"), "{text}");
    }
}
