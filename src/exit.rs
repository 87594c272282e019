//! Process exit codes, documented in `--help` and the README.

/// How a kvchaos command ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Every check and threshold passed.
    Pass = 0,
    /// A check or threshold failed.
    Fail = 1,
    /// Usage or scenario error: nothing was sent.
    Usage = 2,
    /// The target or the environment failed (target unreachable at start, cannot write reports).
    Environment = 3,
    /// Interrupted by Ctrl-C or SIGTERM, after writing the report.
    Interrupted = 130,
}

impl Exit {
    /// The numeric code.
    pub fn code(self) -> u8 {
        self as u8
    }
}

/// The exit-code table printed by `--help`.
pub const EXIT_CODES_HELP: &str = "\
Exit codes:
  0    every threshold (and check) passed
  1    a threshold or check failed
  2    usage or scenario error (nothing was sent)
  3    target or environment failed (target unreachable at start, report folder not writable)
  130  interrupted by Ctrl-C or SIGTERM (the report is still written)";
