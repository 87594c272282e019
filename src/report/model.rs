//! The report data model: one `Summary` per run, written as `summary.json` and read back by
//! `kvchaos report` to re-render every other format. Field names carry their unit
//! (`_us` microseconds, `_s` seconds, `_kib` kibibytes).
//!
//! Schema changes: adding an optional field keeps `schema_version`; removing or changing the
//! meaning of a field increments it. The JSON Schema is generated from these types and
//! checked in under `reports/schema/`.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Current version of the `summary.json` layout.
pub const SCHEMA_VERSION: u32 = 1;

/// Everything a run measured, in one serialisable value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Summary {
    /// Layout version of this file (see [`SCHEMA_VERSION`]).
    pub schema_version: u32,
    /// Version of kvchaos that wrote the file.
    pub kvchaos_version: String,
    /// The scenario that was run.
    pub scenario: ScenarioInfo,
    /// Where the load went (secrets redacted).
    pub target: TargetInfo,
    /// Wall-clock start, RFC 3339 UTC.
    pub started_at: String,
    /// Wall-clock end, RFC 3339 UTC.
    pub ended_at: String,
    /// Time from the first scheduled request to the end of the grace period.
    pub duration_s: f64,
    /// Sum of the planned phase durations.
    pub planned_duration_s: f64,
    /// Why the run ended.
    pub stop: StopInfo,
    /// Each phase as planned and as run.
    pub phases: Vec<PhaseInfo>,
    /// All requests together.
    pub overall: RequestStats,
    /// One entry per request name, in scenario order.
    pub requests: Vec<RequestStats>,
    /// Threshold results, in scenario order.
    pub thresholds: Vec<ThresholdResult>,
    /// First distinct error messages seen (bounded), with how often each occurred.
    pub errors: Vec<ErrorSample>,
    /// What the generator itself used.
    pub resources: Resources,
}

/// Identity of the scenario.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ScenarioInfo {
    /// `name` from the scenario.
    pub name: String,
    /// `description` from the scenario.
    pub description: String,
    /// Path of the scenario file as given.
    pub file: String,
    /// Seed the run used (pass it as `--seed` to reproduce keys and the request mix).
    pub seed: u64,
}

/// The target.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TargetInfo {
    /// `url` for a URL target.
    pub kind: String,
    /// Base URL with secrets redacted.
    pub url: String,
}

/// Why a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum StopReason {
    /// Every phase ran to its end.
    Completed,
    /// Ctrl-C or SIGTERM.
    Interrupted,
    /// An abort threshold failed.
    Aborted,
    /// The target could not be reached when the run started.
    TargetUnreachable,
}

/// Why and how the run ended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StopInfo {
    /// Why the run ended.
    pub reason: StopReason,
    /// Human-readable detail (e.g. the connect error, or which threshold aborted).
    pub detail: Option<String>,
    /// Requests still in flight when the grace period ended; never given a latency.
    pub unfinished: u64,
}

/// One phase, as planned and as run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PhaseInfo {
    /// Label from the scenario, if any.
    pub name: Option<String>,
    /// `rate`, `ramp`, `vus` or `pause`.
    pub kind: String,
    /// Planned duration.
    pub duration_s: f64,
    /// Open loop: requests per second at the start.
    pub rate_from: Option<f64>,
    /// Open loop: requests per second at the end.
    pub rate_to: Option<f64>,
    /// Closed loop: virtual users.
    pub vus: Option<u64>,
    /// Open loop: concurrency cap.
    pub max_in_flight: Option<u64>,
    /// Requests started in this phase.
    pub sent: u64,
    /// Open loop: requests due in this phase that could not start because every slot was busy.
    pub dropped: u64,
}

/// Statistics of a set of requests (one name, or all).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RequestStats {
    /// Request name, or `all`.
    pub name: String,
    /// HTTP method (empty for `all`).
    pub method: String,
    /// Path template as written (never expanded, so no secret appears; empty for `all`).
    pub path: String,
    /// Requests that completed with any outcome.
    pub completed: u64,
    /// Requests due that could not start because `max_in_flight` was reached.
    pub dropped: u64,
    /// Completed requests by outcome class: `2xx`, `3xx`, `4xx`, `429`, `5xx`, `connect`,
    /// `timeout`, `reset`, `body`.
    pub by_class: BTreeMap<String, u64>,
    /// Completed requests that were not 2xx or 3xx.
    pub errors: u64,
    /// `errors / completed` (0 when nothing completed).
    pub error_rate: f64,
    /// Completed requests per second of run time.
    pub rps: f64,
    /// Response body bytes received.
    pub bytes_received: u64,
    /// Latency from the intended start time (coordinated-omission corrected), all outcomes.
    pub corrected: Percentiles,
    /// Latency from the actual send, all outcomes.
    pub service: Percentiles,
}

/// Latency statistics in microseconds.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Percentiles {
    /// Samples.
    pub count: u64,
    /// Minimum.
    pub min_us: u64,
    /// Mean.
    pub mean_us: f64,
    /// Median.
    pub p50_us: u64,
    /// 90th percentile.
    pub p90_us: u64,
    /// 95th percentile.
    pub p95_us: u64,
    /// 99th percentile.
    pub p99_us: u64,
    /// 99.9th percentile.
    pub p999_us: u64,
    /// Maximum.
    pub max_us: u64,
}

/// Result of one threshold.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ThresholdResult {
    /// `all` or the request name.
    pub scope: String,
    /// The expression as written, e.g. `p99 < 500ms`.
    pub expr: String,
    /// Observed value in `unit`; absent when there was no data (the threshold then fails).
    pub observed: Option<f64>,
    /// Limit in `unit`.
    pub limit: f64,
    /// `us`, `ratio` or `rps`.
    pub unit: String,
    /// Whether the threshold held.
    pub passed: bool,
    /// Whether it was an abort threshold.
    pub abort: bool,
}

/// A distinct error message and how often it occurred.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ErrorSample {
    /// Request name.
    pub request: String,
    /// Outcome class.
    pub class: String,
    /// Message, secrets redacted.
    pub message: String,
    /// Occurrences.
    pub count: u64,
}

/// What the kvchaos process used.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Resources {
    /// Peak resident set size of the kvchaos process.
    pub peak_rss_kib: u64,
    /// User plus system CPU time of the kvchaos process.
    pub cpu_s: f64,
    /// Engine threads used to generate load.
    pub engine_threads: u64,
}
