//! The report data model: one `Summary` per run, written as `summary.json` and read back by
//! `kvchaos report` to re-render every other format. A leaf: the recorder (`metrics`) fills it,
//! the run builds it, the writers under `report` read it; it depends on none of them. Field names carry their unit
//! (`_us` microseconds, `_s` seconds, `_kib` kibibytes).
//!
//! Schema changes: adding an optional field keeps `schema_version`; removing or changing the
//! meaning of a field increments it. The JSON Schema is generated from these types and
//! checked in under `reports/schema/`.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The outcome of one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "UPPERCASE")]
pub enum Verdict {
    /// No anomaly, and the history was enough to judge.
    Pass,
    /// At least one anomaly was proven.
    Fail,
    /// No anomaly, but the history cannot support a judgement (e.g. the run never healed).
    Unknown,
}

/// What a checker found.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CheckResult {
    /// The check, e.g. `cron`.
    pub name: String,
    /// Its verdict.
    pub verdict: Verdict,
    /// One line: the anomalies found, why it is unknown, or what passed.
    pub reason: String,
    /// The first offending operations, with times; at most [`MAX_EVIDENCE`] lines (and the
    /// first line of each further kind of anomaly) plus one
    /// line saying how many were left out.
    pub evidence: Vec<String>,
    /// Counts: operations by outcome, each anomaly by name, measured gaps in ms.
    pub counts: BTreeMap<String, u64>,
}

/// How many evidence lines a result keeps.
pub const MAX_EVIDENCE: usize = 10;

/// Current version of the `summary.json` layout.
pub const SCHEMA_VERSION: u32 = 1;

/// Everything a run measured, in one serialisable value.
///
/// Every number is finite: JSON has no NaN or infinity, so kvchaos refuses to write a summary
/// that holds one rather than write a file that would not read back.
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
    /// First distinct 4xx/5xx answers per request with the start of their bodies (bounded).
    #[serde(default)]
    pub error_answers: Vec<ErrorAnswer>,
    /// What the generator itself used.
    pub resources: Resources,
    /// Mock KV faults the timeline set, with when they were active (run time).
    #[serde(default)]
    pub faults: Vec<FaultWindow>,
    /// Progress checks judged on the run's history (cron today; locks and queues with their
    /// drivers). A FAIL fails the run; an UNKNOWN does with `--strict`.
    #[serde(default)]
    pub checks: Vec<CheckResult>,
    /// What weakens the verdicts without failing them (a fault that reached no KV operation,
    /// a Worker without KV bindings); `--strict` fails the run on any.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
    /// Set when the run was one shard of a split run, or is the merge of one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard: Option<crate::report::shards::ShardInfo>,
}

/// When a scheduled mock KV fault was active.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FaultWindow {
    /// Index in the scenario's `[[faults]]`, from 0.
    pub index: u64,
    /// What it did, e.g. `daily-limit put queue:*`.
    pub label: String,
    /// Run time at which it was set.
    pub set_at_s: f64,
    /// Run time at which it was cleared (absent if the run ended first).
    pub cleared_at_s: Option<f64>,
    /// How many KV operations it hit (absent when unknown). Zero means the fault tested
    /// nothing: every verdict over its window says so.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kv_ops: Option<u64>,
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
    /// The target died during the run (a local Worker's launcher or `workerd` exited).
    TargetFailed,
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
    /// The window it was judged on (`steady`, `faults` or `heal`); absent: the whole run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub during: Option<String>,
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

/// One distinct error answer of one request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ErrorAnswer {
    /// Request name.
    pub request: String,
    /// HTTP status.
    pub status: u16,
    /// The start of the body (at most 512 bytes, invalid UTF-8 replaced), secrets redacted.
    pub body: String,
    /// Whether the body was longer than `body`.
    pub truncated: bool,
    /// Answers with this status and body start.
    pub count: u64,
}

/// A realistic summary for writer tests: two requests (one with 5xx, 429 and timeouts), drops
/// under a concurrency cap, one failing threshold, a run interrupted in its second phase.
#[cfg(test)]
pub(crate) fn fixture() -> Summary {
    let classes = |pairs: &[(&str, u64)]| -> BTreeMap<String, u64> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect()
    };
    let duration_s = 71.4;
    let get = RequestStats {
        name: "get_config".to_owned(),
        method: "GET".to_owned(),
        path: "/config/{{random_key}}".to_owned(),
        completed: 9031,
        dropped: 110,
        by_class: classes(&[("2xx", 9012), ("4xx", 19)]),
        errors: 19,
        error_rate: 19.0 / 9031.0,
        rps: 9031.0 / duration_s,
        bytes_received: 4_623_872,
        corrected: Percentiles {
            count: 9031,
            min_us: 412,
            mean_us: 3_870.4,
            p50_us: 1_207,
            p90_us: 4_851,
            p95_us: 9_215,
            p99_us: 48_703,
            p999_us: 212_991,
            max_us: 731_135,
        },
        service: Percentiles {
            count: 9031,
            min_us: 409,
            mean_us: 2_112.9,
            p50_us: 1_113,
            p90_us: 3_023,
            p95_us: 5_119,
            p99_us: 21_871,
            p999_us: 98_559,
            max_us: 401_407,
        },
    };
    let put = RequestStats {
        name: "acquire_lock".to_owned(),
        method: "PUT".to_owned(),
        path: "/lock/{{uuid}}".to_owned(),
        completed: 2258,
        dropped: 27,
        by_class: classes(&[("2xx", 2041), ("429", 12), ("5xx", 171), ("timeout", 34)]),
        errors: 217,
        error_rate: 217.0 / 2258.0,
        rps: 2258.0 / duration_s,
        bytes_received: 180_640,
        corrected: Percentiles {
            count: 2258,
            min_us: 1_503,
            mean_us: 96_410.7,
            p50_us: 14_271,
            p90_us: 187_391,
            p95_us: 402_431,
            p99_us: 1_843_199,
            p999_us: 2_001_919,
            max_us: 2_004_991,
        },
        service: Percentiles {
            count: 2258,
            min_us: 1_499,
            mean_us: 61_093.2,
            p50_us: 9_871,
            p90_us: 98_303,
            p95_us: 250_879,
            p99_us: 1_105_919,
            p999_us: 2_000_895,
            max_us: 2_001_919,
        },
    };
    let overall = RequestStats {
        name: "all".to_owned(),
        method: String::new(),
        path: String::new(),
        completed: 11_289,
        dropped: 137,
        by_class: classes(&[
            ("2xx", 11_053),
            ("4xx", 19),
            ("429", 12),
            ("5xx", 171),
            ("timeout", 34),
        ]),
        errors: 236,
        error_rate: 236.0 / 11_289.0,
        rps: 11_289.0 / duration_s,
        bytes_received: 4_804_512,
        corrected: Percentiles {
            count: 11_289,
            min_us: 412,
            mean_us: 22_378.5,
            p50_us: 1_471,
            p90_us: 12_543,
            p95_us: 40_959,
            p99_us: 684_031,
            p999_us: 2_000_895,
            max_us: 2_004_991,
        },
        service: Percentiles {
            count: 11_289,
            min_us: 409,
            mean_us: 13_909.9,
            p50_us: 1_287,
            p90_us: 6_015,
            p95_us: 19_711,
            p99_us: 301_823,
            p999_us: 1_998_847,
            max_us: 2_001_919,
        },
    };
    Summary {
        schema_version: SCHEMA_VERSION,
        kvchaos_version: "0.1.0".to_owned(),
        scenario: ScenarioInfo {
            name: "lock-under-kv-faults".to_owned(),
            description: "Config reads and lock acquisition while KV writes hit the daily limit"
                .to_owned(),
            file: "scenarios/lock-under-kv-faults.toml".to_owned(),
            seed: 424_242,
        },
        target: TargetInfo {
            kind: "url".to_owned(),
            url: "https://control-plane.example.workers.dev/?token=***".to_owned(),
        },
        started_at: "2025-06-01T12:00:00Z".to_owned(),
        ended_at: "2025-06-01T12:01:11.400Z".to_owned(),
        duration_s,
        planned_duration_s: 120.0,
        stop: StopInfo {
            reason: StopReason::Interrupted,
            detail: Some("received Ctrl-C (SIGINT)".to_owned()),
            unfinished: 4,
        },
        phases: vec![
            PhaseInfo {
                name: Some("warm-up".to_owned()),
                kind: "ramp".to_owned(),
                duration_s: 30.0,
                rate_from: Some(10.0),
                rate_to: Some(200.0),
                vus: None,
                max_in_flight: Some(64),
                sent: 3150,
                dropped: 0,
            },
            PhaseInfo {
                name: Some("steady".to_owned()),
                kind: "rate".to_owned(),
                duration_s: 60.0,
                rate_from: Some(200.0),
                rate_to: Some(200.0),
                vus: None,
                max_in_flight: Some(64),
                sent: 8143,
                dropped: 137,
            },
            PhaseInfo {
                name: None,
                kind: "vus".to_owned(),
                duration_s: 30.0,
                rate_from: None,
                rate_to: None,
                vus: Some(16),
                max_in_flight: None,
                sent: 0,
                dropped: 0,
            },
        ],
        overall,
        requests: vec![get, put],
        thresholds: vec![
            ThresholdResult {
                scope: "all".to_owned(),
                expr: "error_rate < 5%".to_owned(),
                observed: Some(236.0 / 11_289.0),
                limit: 0.05,
                unit: "ratio".to_owned(),
                passed: true,
                abort: false,
                during: None,
            },
            ThresholdResult {
                scope: "acquire_lock".to_owned(),
                expr: "p99 < 500ms".to_owned(),
                observed: Some(1_843_199.0),
                limit: 500_000.0,
                unit: "us".to_owned(),
                passed: false,
                abort: false,
                during: Some("heal".to_owned()),
            },
            ThresholdResult {
                scope: "get_config".to_owned(),
                expr: "error_rate < 20%".to_owned(),
                observed: Some(19.0 / 9031.0),
                limit: 0.2,
                unit: "ratio".to_owned(),
                passed: true,
                abort: true,
                during: None,
            },
            ThresholdResult {
                scope: "all".to_owned(),
                expr: "rps > 150".to_owned(),
                observed: Some(11_289.0 / duration_s),
                limit: 150.0,
                unit: "rps".to_owned(),
                passed: true,
                abort: false,
                during: None,
            },
        ],
        errors: vec![
            ErrorSample {
                request: "acquire_lock".to_owned(),
                class: "5xx".to_owned(),
                message: "500 Internal Server Error: Error: KV PUT failed: 429 KV put() limit \
                          exceeded for the day."
                    .to_owned(),
                count: 171,
            },
            ErrorSample {
                request: "acquire_lock".to_owned(),
                class: "timeout".to_owned(),
                message: "no response within 2s".to_owned(),
                count: 34,
            },
            ErrorSample {
                request: "get_config".to_owned(),
                class: "4xx".to_owned(),
                message: "404 Not Found: {\"error\":\"no config | key missing\"}".to_owned(),
                count: 19,
            },
            ErrorSample {
                request: "acquire_lock".to_owned(),
                class: "429".to_owned(),
                message: "429 Too Many Requests: lock <busy>".to_owned(),
                count: 12,
            },
        ],
        error_answers: vec![ErrorAnswer {
            request: "acquire_lock".to_owned(),
            status: 500,
            body: "Error: KV PUT failed: 429 KV put() limit exceeded for the day.".to_owned(),
            truncated: false,
            count: 171,
        }],
        resources: Resources {
            peak_rss_kib: 48_312,
            cpu_s: 9.84,
            engine_threads: 2,
        },
        faults: vec![FaultWindow {
            index: 0,
            label: "daily-limit put queue:*".to_owned(),
            set_at_s: 20.0,
            cleared_at_s: Some(50.5),
            kv_ops: None,
        }],
        checks: vec![CheckResult {
            name: "cron".to_owned(),
            verdict: Verdict::Fail,
            reason: "missed-tick: 3 of 9 ticks failed".to_owned(),
            evidence: vec!["missed-tick: */1 * * * * scheduled 2026-11-23T10:01:00Z failed at 21.3 s: the scheduled handler threw".to_owned()],
            counts: [("ok".to_owned(), 6), ("fail".to_owned(), 3), ("missed-tick".to_owned(), 3)]
                .into_iter()
                .collect(),
        }],
        warnings: Vec::new(),
        shard: None,
    }
}
