//! The scenario file exactly as written: serde types mirroring the TOML, with spans kept
//! where validation needs to point at a value. No meaning is checked here beyond the shape
//! (unknown keys are rejected); [`super::validate`] turns these into a [`super::Plan`].
//!
//! Values whose errors deserve a hand-written message (durations, rates, counts) are kept as
//! [`toml::Value`] so that `rate = "fast"` is reported by validation, with the fix, rather
//! than by serde's generic "invalid type".

use std::fmt;
use std::marker::PhantomData;

use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use toml::Spanned;

/// A value with its location, checked by validation.
pub type RawValue = Spanned<toml::Value>;

/// The whole scenario file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScenarioFile {
    /// Scenario name.
    pub name: Option<Spanned<String>>,
    /// Free text.
    pub description: Option<String>,
    /// Seed for reproducible runs.
    pub seed: Option<RawValue>,
    /// Grace period after sending stops.
    pub grace: Option<RawValue>,
    /// `[target]`.
    pub target: Option<Spanned<RawTarget>>,
    /// `[[phases]]`.
    pub phases: Option<Spanned<Vec<Spanned<RawPhase>>>>,
    /// `[[requests]]`.
    pub requests: Option<Spanned<Vec<Spanned<RawRequest>>>>,
    /// `[thresholds]`: request name or `all` → expressions.
    pub thresholds: Option<Spanned<OrderedMap<Spanned<Vec<RawValue>>>>>,
    /// `[clock]`.
    pub clock: Option<Spanned<RawClock>>,
    /// `[cron]`.
    pub cron: Option<Spanned<RawCron>>,
    /// `[[faults]]`: mock KV faults on the run's timeline.
    pub faults: Option<Vec<Spanned<RawFault>>>,
    /// `[heal]`: the fault-free end of the run.
    pub heal: Option<Spanned<RawHeal>>,
    /// `[kv]`: the mock KV's plan and day.
    pub kv: Option<Spanned<RawKv>>,
    /// `[lock]`: the lock driver and check.
    pub lock: Option<Spanned<RawLock>>,
    /// `[queue]`: the queue driver and check.
    pub queue: Option<Spanned<RawQueue>>,
    /// `[idempotency]`: the idempotency driver and check.
    pub idempotency: Option<Spanned<RawIdempotency>>,
    /// `[ratelimit]`: the rate limiter driver and check.
    pub ratelimit: Option<Spanned<RawRateLimit>>,
    /// `[canary]`: faults on a deployed canary through its chaos shim.
    pub canary: Option<Spanned<RawCanary>>,
}

/// `[canary]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCanary {
    /// The environment variable holding the shim's control secret.
    pub secret_env: Option<Spanned<String>>,
    /// Most requests the run may send.
    pub max_requests: Option<RawValue>,
    /// Longest the run may last (phases and heal).
    pub max_duration: Option<RawValue>,
    /// Most real KV writes the shim lets through while the run's schedule is active.
    pub max_kv_writes: Option<RawValue>,
    /// Headers every control request carries (a version override, say).
    pub headers: Option<OrderedMap<Spanned<String>>>,
}

/// `[heal]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHeal {
    /// Length of the fault-free end of the run.
    pub duration: Option<RawValue>,
}

/// `[kv]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawKv {
    /// `free`, `paid` or `custom`.
    pub plan: Option<Spanned<String>>,
    /// Custom daily reads.
    pub reads_per_day: Option<RawValue>,
    /// Custom daily writes.
    pub writes_per_day: Option<RawValue>,
    /// Custom daily deletes.
    pub deletes_per_day: Option<RawValue>,
    /// Custom daily lists.
    pub lists_per_day: Option<RawValue>,
    /// Real length of one virtual day.
    pub day: Option<RawValue>,
    /// UTC time of day at which the run clock starts.
    pub start: Option<Spanned<String>>,
    /// Enforce one write per second per key.
    pub same_key_write_limit: Option<bool>,
    /// Leading key segments that name a group in `mockkv.json` (default 1).
    pub group_segments: Option<RawValue>,
}

/// A request of a check driver: the request fields of `[[requests]]` plus what to read from
/// the answer. Which read fields apply depends on the operation.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDriverRequest {
    /// HTTP method.
    pub method: Option<Spanned<String>>,
    /// Path and query template.
    pub path: Option<Spanned<String>>,
    /// Header name → value template.
    pub headers: Option<Spanned<OrderedMap<Spanned<String>>>>,
    /// Raw body template.
    pub body: Option<Spanned<String>>,
    /// JSON body.
    pub json: Option<Spanned<RawJson>>,
    /// Per-request timeout.
    pub timeout: Option<RawValue>,
    /// Statuses meaning the operation had no effect.
    pub fail: Option<Spanned<Vec<RawValue>>>,
    /// Statuses meaning success with nothing to read (a 204 claim, a 404 free lock).
    pub empty: Option<Spanned<Vec<RawValue>>>,
    /// Status values (read with `status`) meaning a task is done.
    pub done: Option<Spanned<Vec<Spanned<String>>>>,
    /// Time between probes (`[cron.status]` only).
    pub every: Option<RawValue>,
    // Where each value is read: a JSON pointer into the body, or `header:Name`, or a match
    // `{ pointer = "/created", equals = false }` for a boolean. Which apply depends on the
    // operation; validation says which.
    /// Fencing token of a grant.
    pub token: Option<RawValue>,
    /// Lease expiry of a grant or read, ms since the Unix epoch.
    pub expires_at: Option<RawValue>,
    /// Current holder of a lock.
    pub holder: Option<RawValue>,
    /// Last cron run, ms since the Unix epoch.
    pub last_run: Option<RawValue>,
    /// Cron run count.
    pub runs: Option<RawValue>,
    /// Whether an enqueue found the id already there.
    pub duplicate: Option<RawValue>,
    /// Task id of a claim.
    pub id: Option<RawValue>,
    /// Lease expiry of a claim, ms since the Unix epoch.
    pub lease_until: Option<RawValue>,
    /// Task status of a result read.
    pub status: Option<RawValue>,
    /// Task result of a result read.
    pub result: Option<RawValue>,
    /// Effect count of an idempotency key.
    pub effects: Option<RawValue>,
    /// Named values read from the answer for later requests: name → `"/pointer"` or
    /// `"header:Name"`.
    pub extract: Option<Spanned<OrderedMap<Spanned<String>>>>,
}

/// `[lock]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLock {
    /// Concurrent clients.
    pub clients: Option<RawValue>,
    /// Lock names.
    pub names: Option<Spanned<Vec<Spanned<String>>>>,
    /// Lease asked for.
    pub ttl: Option<RawValue>,
    /// Hold time range `["50ms", "300ms"]`.
    pub hold: Option<RawValue>,
    /// Pause range between attempts.
    pub pause: Option<RawValue>,
    /// Longest wait for any acquisition.
    pub max_starve: Option<RawValue>,
    /// Clock slack.
    pub tolerance: Option<RawValue>,
    /// Holds past the lease on purpose: `{ share = 0.3, hold = ["500ms", "900ms"] }`.
    pub overrun: Option<RawValue>,
    /// Acquire request.
    pub acquire: Option<Spanned<RawDriverRequest>>,
    /// Release request.
    pub release: Option<Spanned<RawDriverRequest>>,
    /// Read request.
    pub read: Option<Spanned<RawDriverRequest>>,
}

/// `[queue]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawQueue {
    /// `at-least-once` or `exactly-once-effect`.
    pub mode: Option<Spanned<String>>,
    /// Producers.
    pub producers: Option<RawValue>,
    /// Enqueues per second, all producers together.
    pub rate: Option<RawValue>,
    /// Consumers (0: the Worker processes tasks itself).
    pub consumers: Option<RawValue>,
    /// Lease asked for by a claim.
    pub lease: Option<RawValue>,
    /// Wait after an empty claim.
    pub poll: Option<RawValue>,
    /// Longest acceptable drain.
    pub max_drain: Option<RawValue>,
    /// Longest acceptable stall.
    pub max_stall: Option<RawValue>,
    /// Time between drain rounds.
    pub drain_every: Option<RawValue>,
    /// Enqueue request.
    pub enqueue: Option<Spanned<RawDriverRequest>>,
    /// Claim request.
    pub claim: Option<Spanned<RawDriverRequest>>,
    /// Complete request.
    pub complete: Option<Spanned<RawDriverRequest>>,
    /// Result request.
    pub result: Option<Spanned<RawDriverRequest>>,
}

/// `[idempotency]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawIdempotency {
    /// Concurrent clients.
    pub clients: Option<RawValue>,
    /// Concurrent copies of each key's first send.
    pub duplicates: Option<RawValue>,
    /// Later sends of each key.
    pub retries: Option<RawValue>,
    /// Wait before each retry.
    pub retry_after: Option<RawValue>,
    /// Timeout of each key's first copy.
    pub first_timeout: Option<RawValue>,
    /// Pause between keys.
    pub pause: Option<RawValue>,
    /// The operation.
    pub apply: Option<Spanned<RawDriverRequest>>,
    /// The effect count read.
    pub effects: Option<Spanned<RawDriverRequest>>,
}

/// `[ratelimit]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRateLimit {
    /// Admissions per key per window.
    pub limit: Option<RawValue>,
    /// The window.
    pub window: Option<RawValue>,
    /// Admissions above the limit still accepted.
    pub tolerance: Option<RawValue>,
    /// `open`, `closed` or `held`.
    pub on_fault: Option<Spanned<String>>,
    /// Key names.
    pub keys: Option<Spanned<Vec<Spanned<String>>>>,
    /// Clients per key.
    pub clients: Option<RawValue>,
    /// Hits per second per key.
    pub rate: Option<RawValue>,
    /// Statuses meaning refused.
    pub refused: Option<Spanned<Vec<RawValue>>>,
    /// The limited call.
    pub hit: Option<Spanned<RawDriverRequest>>,
}

/// One `[[faults]]` table.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawFault {
    /// Run time at which the fault starts.
    pub at: Option<RawValue>,
    /// Run time at which it is cleared.
    pub until: Option<RawValue>,
    /// How long it lasts (instead of `until`).
    #[serde(rename = "for")]
    pub lasts: Option<RawValue>,
    /// Fault kind.
    pub kind: Option<Spanned<String>>,
    /// KV operations affected.
    pub ops: Option<Vec<Spanned<String>>>,
    /// Key prefix affected.
    pub prefix: Option<String>,
    /// Namespace (binding name) affected.
    pub namespace: Option<String>,
    /// Chance that a matching operation is hit.
    pub probability: Option<RawValue>,
    /// Status for `error`.
    pub status: Option<RawValue>,
    /// Delay for `latency`.
    pub latency: Option<RawValue>,
    /// Extra random delay for `latency`.
    pub jitter: Option<RawValue>,
    /// Age of stale reads for `stale-reads`.
    pub lag: Option<RawValue>,
}

/// `[clock]`: the run clock shared by cron ticks and the mock KV.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawClock {
    /// Virtual seconds per real second.
    pub speedup: Option<RawValue>,
}

/// `[cron]`: firing a local Worker's cron triggers.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCron {
    /// Cron expressions that replace the Worker's `triggers.crons`.
    pub schedules: Option<Vec<Spanned<String>>>,
    /// Whether to fire them at all.
    pub fire: Option<bool>,
    /// Longest acceptable gap between runs, in run-clock time.
    pub max_gap: Option<RawValue>,
    /// `[cron.status]`.
    pub status: Option<Spanned<RawDriverRequest>>,
}

/// `[target]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTarget {
    /// Base URL of a running server.
    pub url: Option<Spanned<String>>,
    /// Start kvchaos's own server.
    pub builtin: Option<Spanned<bool>>,
    /// Run this Worker directory under miniflare.
    pub worker: Option<Spanned<String>>,
    /// Non-loopback hosts allowed as targets.
    pub allow_hosts: Option<Vec<Spanned<String>>>,
    /// Extra trusted root certificates (PEM) for https targets.
    pub ca_file: Option<Spanned<String>>,
    /// How a Worker target's KV bindings reach the mock: `workerd` or `wrapped`.
    pub kv_binding: Option<Spanned<String>>,
    /// The script name the canary's shim must report on every answer.
    pub expect_script: Option<Spanned<String>>,
    /// A Worker target's wrangler config file, relative to its directory.
    pub config: Option<Spanned<String>>,
    /// A Worker target's `[env.NAME]` section.
    pub env: Option<Spanned<String>>,
}

/// One `[[phases]]` table.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPhase {
    /// Optional label.
    pub name: Option<Spanned<String>>,
    /// Phase length.
    pub duration: Option<RawValue>,
    /// Open-loop rate or ramp.
    pub rate: Option<RawValue>,
    /// Closed-loop virtual users.
    pub vus: Option<RawValue>,
    /// No traffic.
    pub pause: Option<RawValue>,
    /// Open-loop concurrency cap.
    pub max_in_flight: Option<RawValue>,
    /// Replay phases (docs/replay.md): the capture to replay.
    pub replay: Option<Spanned<String>>,
    /// Replay: `wrangler-tail`, `har` or `ndjson` (detected when omitted).
    pub format: Option<Spanned<String>>,
    /// Replay: playback speed factor.
    pub speed: Option<RawValue>,
    /// Replay: longest idle gap kept.
    pub max_gap: Option<RawValue>,
    /// Replay: `true` (until `duration`) or a number of passes.
    #[serde(rename = "loop")]
    pub loops: Option<RawValue>,
    /// Replay: share of events kept (seeded).
    pub sample: Option<RawValue>,
    /// Replay: only events matching this.
    pub only: Option<Spanned<RawReplayFilter>>,
    /// Replay: events matching this are left out.
    pub skip: Option<Spanned<RawReplayFilter>>,
    /// Replay: headers set on every request.
    pub set_headers: Option<Spanned<OrderedMap<Spanned<String>>>>,
    /// Replay: recorded headers not sent.
    pub drop_headers: Option<Vec<Spanned<String>>>,
    /// Replay: credential headers sent after all.
    pub keep_headers: Option<Vec<Spanned<String>>>,
    /// Replay: path prefix rewrites, recorded prefix → sent prefix.
    pub rewrite: Option<Spanned<OrderedMap<Spanned<String>>>>,
    /// Replay: route patterns for reports.
    pub group: Option<Vec<Spanned<String>>>,
    /// Replay: per-request timeout.
    pub timeout: Option<RawValue>,
    /// Replay: `"recorded"` fires the capture's cron events.
    pub crons: Option<Spanned<String>>,
}

/// A replay phase's `only` / `skip` table.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawReplayFilter {
    /// A method or a list of methods.
    pub method: Option<RawValue>,
    /// A regular expression over the path.
    pub path: Option<Spanned<String>>,
    /// A tail outcome or a list of them.
    pub outcome: Option<RawValue>,
}

/// One `[[requests]]` table.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRequest {
    /// Unique name.
    pub name: Option<Spanned<String>>,
    /// Relative weight.
    pub weight: Option<RawValue>,
    /// HTTP method.
    pub method: Option<Spanned<String>>,
    /// Path and query template.
    pub path: Option<Spanned<String>>,
    /// Header name → value template.
    pub headers: Option<Spanned<OrderedMap<Spanned<String>>>>,
    /// Raw body template.
    pub body: Option<Spanned<String>>,
    /// JSON body as a TOML table (or any TOML value).
    pub json: Option<Spanned<RawJson>>,
    /// Per-request timeout.
    pub timeout: Option<RawValue>,
    /// Statuses this request expects; others are errors.
    pub expect: Option<Spanned<Vec<RawValue>>>,
}

/// A TOML table read in file order, with the span of every key.
#[derive(Debug)]
pub struct OrderedMap<V>(pub Vec<(Spanned<String>, V)>);

impl<'de, V: Deserialize<'de>> Deserialize<'de> for OrderedMap<V> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V_<V>(PhantomData<V>);
        impl<'de, V: Deserialize<'de>> Visitor<'de> for V_<V> {
            type Value = OrderedMap<V>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a table")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut out = Vec::new();
                while let Some(k) = map.next_key::<Spanned<String>>()? {
                    let v = map.next_value::<V>()?;
                    out.push((k, v));
                }
                Ok(OrderedMap(out))
            }
        }
        d.deserialize_map(V_(PhantomData))
    }
}

/// A JSON body written as TOML, keeping key order and the span of every string so that a
/// template error inside it points at the right place.
#[derive(Debug)]
pub enum RawJson {
    /// A string (may hold templates).
    String(String),
    /// An integer.
    Integer(i64),
    /// A float.
    Float(f64),
    /// A boolean.
    Bool(bool),
    /// An array.
    Array(Vec<Spanned<RawJson>>),
    /// A table, in file order.
    Table(Vec<(String, Spanned<RawJson>)>),
}

/// The key toml uses to pass a datetime through serde.
const TOML_DATETIME_KEY: &str = "$__toml_private_datetime";

impl<'de> Deserialize<'de> for RawJson {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct JsonVisitor;
        impl<'de> Visitor<'de> for JsonVisitor {
            type Value = RawJson;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a TOML value")
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<RawJson, E> {
                Ok(RawJson::Bool(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<RawJson, E> {
                Ok(RawJson::Integer(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<RawJson, E> {
                i64::try_from(v)
                    .map(RawJson::Integer)
                    .map_err(|_| E::custom("integer out of range"))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<RawJson, E> {
                Ok(RawJson::Float(v))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<RawJson, E> {
                Ok(RawJson::String(v.to_owned()))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<RawJson, E> {
                Ok(RawJson::String(v))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<RawJson, A::Error> {
                let mut out = Vec::new();
                while let Some(v) = seq.next_element::<Spanned<RawJson>>()? {
                    out.push(v);
                }
                Ok(RawJson::Array(out))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawJson, A::Error> {
                let mut out = Vec::new();
                // Keys are plain strings: toml's datetime key cannot be read as a span.
                while let Some(k) = map.next_key::<String>()? {
                    if k == TOML_DATETIME_KEY {
                        // A TOML datetime: JSON has none, so it becomes its text.
                        let text = map.next_value::<String>()?;
                        return Ok(RawJson::String(text));
                    }
                    let v = map.next_value::<Spanned<RawJson>>()?;
                    out.push((k, v));
                }
                Ok(RawJson::Table(out))
            }
        }
        d.deserialize_any(JsonVisitor)
    }
}
