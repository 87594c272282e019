//! The validated watch plan: checks, notifiers and mute windows as the rest of `watch` uses
//! them. Built only by [`super::config`]; nothing past it re-checks user input.

use std::time::Duration;

use croner::Cron;

use crate::redact::Redactor;

/// A validated watch file.
#[derive(Debug, Clone)]
pub struct WatchPlan {
    /// Time between evaluations of the daemon.
    pub interval: Duration,
    /// Time a probe may take, whole.
    pub timeout: Duration,
    /// The checks, in file order; names are unique.
    pub checks: Vec<Check>,
    /// Where notifications go.
    pub notifiers: Vec<Notifier>,
    /// When no notification is sent (UTC).
    pub mutes: Vec<MuteWindow>,
    /// Every value read from the environment, masked in anything sent or printed.
    pub redactor: Redactor,
}

/// One check of a deployed Worker.
#[derive(Debug, Clone)]
pub struct Check {
    /// Unique name, used in messages and as the key in the state file.
    pub name: String,
    /// The URL probed (secrets resolved) and its headers.
    pub url: String,
    /// Extra request headers (secrets resolved).
    pub headers: Vec<(String, String)>,
    /// Consecutive failing evaluations before the alert fires.
    pub failures: u32,
    /// What is judged.
    pub kind: CheckKind,
}

/// The three kinds of check.
#[derive(Debug, Clone)]
pub enum CheckKind {
    /// A status endpoint's last-run time against the Worker's cron expressions.
    Cron {
        /// JSON pointer to the last-run value (ISO 8601, or epoch ms or s).
        pointer: String,
        /// The expressions, parsed (UTC, Workers syntax).
        crons: Vec<(String, Cron)>,
        /// Lateness allowed after an expected slot.
        grace: Duration,
        /// Whether the alert fires when late or only when down.
        alert_at: Severity,
    },
    /// A counter that must grow by at least `min_increase` over `window`.
    Counter {
        /// JSON pointer to the number.
        pointer: String,
        /// Least growth over the window.
        min_increase: f64,
        /// The window.
        window: Duration,
    },
    /// The share of failures over `window`.
    ErrorRate {
        /// Where failures are counted.
        source: ErrorSource,
        /// Largest acceptable share, 0..=1.
        max_rate: f64,
        /// The window.
        window: Duration,
        /// Fewest probes (or requests, from a stats endpoint) in the window for a verdict.
        min_samples: u32,
    },
}

/// Where an error-rate check counts failures.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ErrorSource {
    /// Each probe is a sample: 2xx/3xx is a success, anything else (or no answer) a failure.
    Probes,
    /// A stats endpoint's counters of errors and of requests.
    Stats {
        /// JSON pointer to the error counter.
        errors: String,
        /// JSON pointer to the request counter.
        total: String,
    },
}

/// How bad a failing check is.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Past the expected time plus grace.
    Late,
    /// Past one more period; counters and error rates are down at once.
    Down,
}

impl Severity {
    /// The word used in messages.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Late => "late",
            Severity::Down => "down",
        }
    }
}

/// A notification target.
#[derive(Debug, Clone)]
pub struct Notifier {
    /// The payload shape.
    pub kind: NotifierKind,
    /// The environment variable the URL came from (shown instead of the URL).
    pub url_env: String,
    /// The webhook URL (a secret).
    pub url: String,
}

/// Payload shapes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotifierKind {
    /// Slack incoming webhook: `{text, blocks}`.
    Slack,
    /// Discord webhook: `{content, embeds, allowed_mentions}`.
    Discord,
    /// A generic JSON document.
    Webhook,
}

/// A recurring UTC window in which no notification is sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MuteWindow {
    /// Days the window starts on, bit 0 = Monday; all days when 0x7f.
    pub days: u8,
    /// Start, minutes after 00:00 UTC.
    pub from_min: u32,
    /// End, minutes after 00:00 UTC (exclusive; before `from_min` when it wraps midnight).
    pub to_min: u32,
}

const DAY_MS: u64 = 86_400_000;

impl MuteWindow {
    /// Whether `now_ms` (ms since the Unix epoch) falls in the window.
    pub fn contains(&self, now_ms: u64) -> bool {
        let day = now_ms / DAY_MS;
        let minute = ((now_ms % DAY_MS) / 60_000) as u32;
        // 1970-01-01 was a Thursday: Monday-based index 3.
        let weekday = ((day + 3) % 7) as u8;
        let on = |d: u8| self.days & (1 << d) != 0;
        if self.from_min < self.to_min {
            on(weekday) && (self.from_min..self.to_min).contains(&minute)
        } else {
            (on(weekday) && minute >= self.from_min)
                || (on((weekday + 6) % 7) && minute < self.to_min)
        }
    }
}
