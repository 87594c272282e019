//! The validated plan: what a scenario file means once every value has been checked.
//!
//! Code past validation works only with these types and never re-checks user input.
//! Durations are `Duration`, rates are requests per second, latency limits are microseconds.

use std::path::PathBuf;
use std::time::Duration;

use croner::Cron;
use http::{HeaderName, Method};

use super::template::Template;
use crate::redact::Redactor;

/// A scenario after parsing and validation.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Scenario name, also used for the report folder name.
    pub name: String,
    /// Free text from the scenario file.
    pub description: String,
    /// The file the plan came from (for reports and messages).
    pub source: PathBuf,
    /// Seed for keys, weights and templated values; reproducible runs use the same seed.
    pub seed: u64,
    /// Where requests go.
    pub target: TargetPlan,
    /// Load phases, run one after another.
    pub phases: Vec<Phase>,
    /// Weighted request mix; never empty.
    pub requests: Vec<RequestPlan>,
    /// Pass/fail limits evaluated at the end of the run.
    pub thresholds: Vec<Threshold>,
    /// How long in-flight requests may finish after sending stops (end of run or Ctrl-C).
    pub grace: Duration,
    /// Values read from the environment; every report and log line passes through it.
    pub redactor: Redactor,
    /// Run-clock seconds per real second, for cron ticks and the mock KV (1 = real time).
    pub speedup: f64,
    /// Firing a local Worker's cron triggers.
    pub cron: CronPlan,
    /// Mock KV faults on the run's timeline (Worker targets).
    pub faults: Vec<FaultPlan>,
    /// Length of the fault-free end of the run, when the scenario sets it; see
    /// [`Plan::heal_duration`].
    pub heal: Option<Duration>,
    /// The mock KV's quotas and clock (Worker targets).
    pub kv: KvPlan,
    /// The lock driver and check, when configured.
    pub lock: Option<LockPlan>,
    /// The queue driver and check, when configured.
    pub queue: Option<QueuePlan>,
    /// The idempotency driver and check, when configured.
    pub idempotency: Option<IdempotencyPlan>,
    /// The rate limiter driver and check, when configured.
    pub ratelimit: Option<RateLimitPlan>,
    /// Faults on a deployed canary through its chaos shim, when configured.
    pub canary: Option<CanaryPlan>,
}

/// `[canary]`: the run's faults go to the canary's chaos shim (see `kvchaos canary build`).
#[derive(Debug, Clone, PartialEq)]
pub struct CanaryPlan {
    /// The shim's control secret (from the environment; registered with the redactor).
    pub secret: String,
    /// The script name every shim answer must carry (`[target] expect_script`).
    pub expect_script: String,
    /// Most requests the run may send (checked against the phases before anything is sent).
    pub max_requests: Option<u64>,
    /// Longest the run may last.
    pub max_duration: Option<Duration>,
    /// Most real KV writes the shim lets through while the run's schedule is active.
    pub max_kv_writes: Option<u64>,
    /// Headers every control request carries.
    pub headers: Vec<(String, String)>,
}

/// The mock KV's daily quotas and the run clock's start.
#[derive(Debug, Clone, PartialEq)]
pub struct KvPlan {
    /// Daily limits (the free plan unless the scenario says otherwise).
    pub limits: crate::mockkv::Limits,
    /// Enforce Cloudflare's one write per second per key.
    pub same_key_write_limit: bool,
    /// UTC time of day at which the run clock starts (`None`: the real time now).
    pub start_of_day: Option<Duration>,
    /// How `mockkv.json` groups keys.
    pub group: crate::mockkv::group::GroupRule,
}

impl Default for KvPlan {
    fn default() -> Self {
        KvPlan {
            limits: crate::mockkv::Limits::FREE,
            same_key_write_limit: true,
            start_of_day: None,
            group: crate::mockkv::group::GroupRule::default(),
        }
    }
}

/// A request a check driver sends and what it reads from the answer.
///
/// Classification of an answer: a status in `empty` is `ok` with nothing read; any other 2xx
/// is `ok` with the reads; a status in `fail` is a definite `fail`; anything else (5xx,
/// timeouts, lost connections) is `info`, since it may have taken effect.
#[derive(Debug, Clone)]
pub struct DriverRequest {
    /// HTTP method.
    pub method: Method,
    /// Path and query; may use the driver's variables.
    pub path: Template,
    /// Extra headers.
    pub headers: Vec<(HeaderName, Template)>,
    /// Body, if any.
    pub body: Option<BodyPlan>,
    /// Time allowed for the exchange; past it the operation is `info`.
    pub timeout: Duration,
    /// Statuses meaning "had no effect" (default: every 4xx not in `empty`).
    pub fail: Vec<u16>,
    /// Statuses meaning success with nothing to read.
    pub empty: Vec<u16>,
    /// Field name → where its value is read.
    pub reads: Vec<(String, Extract)>,
    /// Named values read for later requests (`extract = { receipt = "/receipt" }`).
    pub extract: Vec<(String, Extract)>,
}

/// Where a value is read from an answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Extract {
    /// A JSON pointer (RFC 6901) into the JSON body; `""` is the whole body.
    Pointer(String),
    /// A response header; its text is parsed as JSON when it is JSON (a number stays a number).
    Header(HeaderName),
    /// A boolean: whether the value read at the inner location equals this JSON value.
    Equals(Box<Extract>, serde_json::Value),
}

/// Probes of the Worker's own record of its cron runs.
#[derive(Debug, Clone)]
pub struct CronStatusPlan {
    /// The probe; reads `last_run` and optionally `runs`.
    pub request: DriverRequest,
    /// Time between probes.
    pub every: Duration,
}

/// N clients over K lock names: acquire → hold → release, with a final read of each name.
#[derive(Debug, Clone)]
pub struct LockPlan {
    /// Concurrent clients (processes `lock-0` ..).
    pub clients: usize,
    /// Lock names, each client picking one at random per attempt.
    pub names: Vec<String>,
    /// Lease each acquire asks for (`{{ttl_ms}}`).
    pub ttl: Duration,
    /// Hold time range after a grant.
    pub hold: (Duration, Duration),
    /// Pause range after a release or a refused acquire.
    pub pause: (Duration, Duration),
    /// Holds past the lease on purpose (a client paused like a process in GC): this share of
    /// holds, 0..=1, last a time in the range (above `ttl`), then release with the old token.
    pub overrun: Option<(f64, (Duration, Duration))>,
    /// FAIL when no acquisition succeeds for longer than this while clients wait.
    pub max_starve: Option<Duration>,
    /// Slack when comparing Worker times.
    pub tolerance: Duration,
    /// Acquire: reads `token` and `expires_at`.
    pub acquire: DriverRequest,
    /// Release.
    pub release: DriverRequest,
    /// Final read of each name: reads `holder` and `expires_at`.
    pub read: Option<DriverRequest>,
}

/// Producers enqueue unique tasks; consumers (or the Worker's cron) process them; a drain
/// reads every task's result from the start of the heal phase to the end of the run.
#[derive(Debug, Clone)]
pub struct QueuePlan {
    /// The delivery guarantee being checked.
    pub mode: crate::check::queue::QueueMode,
    /// Producers (processes `producer-0` ..).
    pub producers: usize,
    /// Enqueues per second, all producers together.
    pub rate: f64,
    /// Consumers (processes `consumer-0` ..); 0 when the Worker processes tasks itself.
    pub consumers: usize,
    /// Lease each claim asks for (`{{lease_ms}}`).
    pub lease: Duration,
    /// Wait after a claim that found nothing.
    pub poll: Duration,
    /// FAIL when the drain takes longer.
    pub max_drain: Option<Duration>,
    /// FAIL when the queue makes no progress for longer while tasks wait or producers try.
    pub max_stall: Option<Duration>,
    /// Time between drain rounds.
    pub drain_every: Duration,
    /// Enqueue (`{{id}}`): may read `duplicate`.
    pub enqueue: DriverRequest,
    /// Claim (`{{consumer}}`, `{{lease_ms}}`): reads `id`, `lease_until`.
    pub claim: Option<DriverRequest>,
    /// Complete (`{{id}}`, `{{consumer}}`).
    pub complete: Option<DriverRequest>,
    /// Result (`{{id}}`): reads `status` (and `result`).
    pub result: DriverRequest,
    /// `status` values meaning done.
    pub done: Vec<String>,
}

/// Clients send operations carrying idempotency keys, each key several times (concurrent
/// copies, then retries), and a final read counts each key's effects.
#[derive(Debug, Clone)]
pub struct IdempotencyPlan {
    /// Concurrent clients (processes `idem-<i>-<copy>`), each working through its own keys.
    pub clients: usize,
    /// Copies of each key's first send, sent at once (1: no concurrent duplicate).
    pub duplicates: usize,
    /// Later sends of each key, one after another once the first sends answered.
    pub retries: usize,
    /// Wait range before each retry.
    pub retry_after: (Duration, Duration),
    /// The first copy of each key gives up after this (the answer is then unknown), so the
    /// retries are retries after a timeout; `None` uses the request's own timeout.
    pub first_timeout: Option<Duration>,
    /// Pause range between one key's last send and the next key.
    pub pause: (Duration, Duration),
    /// The operation (`{{key}}`, `{{copy}}`, `{{attempt}}`): may read `duplicate`.
    pub apply: DriverRequest,
    /// The effect count of a key (`{{key}}`): reads `effects`; an empty answer is 0.
    pub effects: DriverRequest,
}

/// Clients hit a rate limiter above its declared limit over several keys and record each
/// answer as admitted or refused.
#[derive(Debug, Clone)]
pub struct RateLimitPlan {
    /// Admissions the limiter allows per key per `window`.
    pub limit: u64,
    /// The limiter's window.
    pub window: Duration,
    /// Admissions above `limit` in one window that are still accepted.
    pub tolerance: u64,
    /// The policy the limiter should follow when its storage fails.
    pub on_fault: Option<crate::check::ratelimit::OnFault>,
    /// Key names (each run prefixes them, so runs never share a counter).
    pub keys: Vec<String>,
    /// Clients per key (processes `rl-<key index>-<n>`).
    pub clients: usize,
    /// Hits per second per key, all its clients together.
    pub rate: f64,
    /// Statuses meaning "refused by the limiter" (default 429).
    pub refused: Vec<u16>,
    /// The limited call (`{{key}}`, `{{limit}}`, `{{window_ms}}`).
    pub hit: DriverRequest,
}

/// The default heal phase of a run lasting `total`: a fifth of it, and at least one period
/// (in real time at the run clock's `speedup`) of the shortest of `crons`, never more than
/// half of it.
pub fn default_heal(total: Duration, crons: &[(String, Cron)], speedup: f64) -> Duration {
    let period = crate::cron::shortest_period(crons)
        .map(|p| Duration::from_secs_f64(p.as_secs_f64() / speedup));
    let fifth = total / 5;
    period.map_or(fifth, |p| p.max(fifth)).min(total / 2)
}

/// A mock KV fault set at `at` and cleared at `until` (or when sending stops).
#[derive(Debug, Clone, PartialEq)]
pub struct FaultPlan {
    /// Run time at which it is set.
    pub at: Duration,
    /// Run time at which it is cleared; `None` keeps it until sending stops.
    pub until: Option<Duration>,
    /// The rule, already validated by the mock.
    pub spec: crate::mockkv::FaultSpec,
    /// Short description for reports and history, e.g. `daily-limit put queue:*`.
    pub label: String,
}

/// Which crons a local Worker target gets, and whether they fire.
#[derive(Debug, Clone)]
pub struct CronPlan {
    /// Replaces the Worker's `triggers.crons` when set: each expression as written, parsed once
    /// by validation.
    pub schedules: Option<Vec<(String, Cron)>>,
    /// Fire the ticks that fall inside the run (default true).
    pub fire: bool,
    /// FAIL when the gap between runs exceeds this, in run-clock time.
    pub max_gap: Option<Duration>,
    /// Probes of the Worker's cron status, when configured.
    pub status: Option<CronStatusPlan>,
}

impl Default for CronPlan {
    fn default() -> Self {
        CronPlan {
            schedules: None,
            fire: true,
            max_gap: None,
            status: None,
        }
    }
}

impl Plan {
    /// Total planned duration of all phases.
    pub fn duration(&self) -> Duration {
        self.phases.iter().map(|p| p.duration).sum()
    }

    /// The fault-free end of the run: `[heal] duration`, or [`default_heal`] with the
    /// shortest period of `crons` (the crons kvchaos fires) on the run clock.
    pub fn heal_duration(&self, crons: &[(String, Cron)]) -> Duration {
        let total = self.duration();
        match self.heal {
            Some(h) => h.min(total),
            None => default_heal(total, crons, self.speedup),
        }
    }

    /// Whether the run has anything to heal from or to check after healing: faults, or a
    /// check driver.
    pub fn heals(&self) -> bool {
        !self.faults.is_empty()
            || self.lock.is_some()
            || self.queue.is_some()
            || self.idempotency.is_some()
            || self.ratelimit.is_some()
    }

    /// The largest number of concurrent requests any phase may have, which is how many
    /// connection workers the engine starts.
    pub fn max_concurrency(&self) -> usize {
        self.phases
            .iter()
            .map(Phase::concurrency)
            .max()
            .unwrap_or(1)
            .max(1)
    }
}

/// Where the load goes and which hosts may receive it.
#[derive(Debug, Clone)]
pub struct TargetPlan {
    /// The kind of target.
    pub kind: TargetKind,
    /// Extra hosts (beyond loopback) the user allowed as targets; `*.example.com` matches subdomains.
    pub allow_hosts: Vec<String>,
    /// Extra trusted root certificates (PEM, already checked to parse) for https targets, on top
    /// of the public web PKI roots.
    pub ca_file: Option<PathBuf>,
    /// Worker targets: workerd's own KV class over the mock, or a wrapper whose daily-limit
    /// errors read exactly as in production.
    pub kv_binding: crate::local::KvBindingMode,
    /// Worker targets: the wrangler config file, relative to the Worker directory (`None`: the
    /// directory's wrangler.toml, wrangler.jsonc or wrangler.json).
    pub config: Option<PathBuf>,
    /// Worker targets: the config's `[env.NAME]` section to run (`None`: the top level).
    pub env: Option<String>,
}

/// The kinds of target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TargetKind {
    /// A running HTTP server; request paths are appended to the URL's path.
    Url(url::Url),
    /// kvchaos starts its own minimal HTTP server on 127.0.0.1:0 (self-test and benchmarks).
    Builtin,
    /// A Worker directory (with `wrangler.toml`, `.jsonc` or `.json`) run under miniflare, its KV
    /// bindings routed to kvchaos's in-process mock KV.
    Worker(PathBuf),
}

/// One load phase.
#[derive(Debug, Clone, PartialEq)]
pub struct Phase {
    /// Optional label shown in the live line and the report.
    pub name: Option<String>,
    /// How long the phase lasts.
    pub duration: Duration,
    /// Arrival model of the phase.
    pub load: Load,
}

impl Phase {
    /// Concurrency bound of this phase: `max_in_flight` for open loop, `vus` for closed loop.
    pub fn concurrency(&self) -> usize {
        match self.load {
            Load::Rate { max_in_flight, .. } => max_in_flight,
            Load::Vus(n) => n,
            Load::Pause => 0,
            // One worker paces the capture; its requests run as tasks up to `max_in_flight`.
            Load::Replay(_) => 1,
        }
    }
}

/// Arrival model of one phase.
#[derive(Debug, Clone, PartialEq)]
pub enum Load {
    /// Open loop: requests start at intended times whatever the target does. The rate
    /// goes linearly from `from` to `to` requests per second (equal for a constant rate).
    Rate {
        /// Requests per second at the start of the phase.
        from: f64,
        /// Requests per second at the end of the phase.
        to: f64,
        /// Requests that may be in flight at once; a request due while all are busy is dropped.
        max_in_flight: usize,
    },
    /// Closed loop: this many virtual users, each sending its next request when the last ends.
    Vus(usize),
    /// No traffic for the phase's duration.
    Pause,
    /// Recorded traffic sent open-loop at its recorded times (docs/replay.md).
    Replay(std::sync::Arc<crate::replay::plan::ReplayPlan>),
}

/// Default `max_in_flight` for open-loop phases.
pub const DEFAULT_MAX_IN_FLIGHT: usize = 256;
/// Default per-request timeout.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// Default grace period for in-flight requests when sending stops.
pub const DEFAULT_GRACE: Duration = Duration::from_secs(5);

/// One entry of the weighted request mix.
#[derive(Debug, Clone)]
pub struct RequestPlan {
    /// Unique name; metrics and thresholds are keyed by it.
    pub name: String,
    /// Relative weight (> 0).
    pub weight: u32,
    /// HTTP method.
    pub method: Method,
    /// Path and query, appended to the target URL's path; starts with `/`.
    pub path: Template,
    /// Extra headers; values may be templated.
    pub headers: Vec<(HeaderName, Template)>,
    /// Request body, if any.
    pub body: Option<BodyPlan>,
    /// Time allowed for the whole exchange (connect, send, response, body).
    pub timeout: Duration,
    /// Statuses this request expects (`None`: 2xx and 3xx are fine, the rest are errors).
    pub expect: Option<Vec<u16>>,
}

/// A request body template and its content type.
#[derive(Debug, Clone)]
pub struct BodyPlan {
    /// Body text; for `json` bodies, environment values inside it are JSON-escaped.
    pub template: Template,
    /// `application/json` for `json = {...}`, none for `body = "..."` unless a header says so.
    pub content_type: Option<&'static str>,
}

/// A pass/fail limit on a metric of one request name or of all requests.
#[derive(Debug, Clone, PartialEq)]
pub struct Threshold {
    /// Which requests the metric is computed over.
    pub scope: ThresholdScope,
    /// The metric.
    pub metric: ThresholdMetric,
    /// Comparison that must hold for the threshold to pass.
    pub op: CmpOp,
    /// Limit in the metric's unit: microseconds for latency, a fraction (0.01 = 1%) for rates,
    /// requests per second for `rps`.
    pub limit: f64,
    /// The expression as written, e.g. `p99 < 500ms`.
    pub expr: String,
    /// Stop the run early when this threshold fails (evaluated every second).
    pub abort: bool,
    /// The part of the run it is judged on (`during = "heal"`); `None`: the whole run.
    pub during: Option<Window>,
}

/// A part of the run, relative to its fault timeline, that a threshold may be limited to. A
/// request belongs to the window its intended send time falls in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Window {
    /// Before the first fault starts.
    Steady,
    /// While at least one fault is active.
    Faults,
    /// After the last fault has cleared, to the end of sending.
    Heal,
}

impl Window {
    /// Every window, in run order.
    pub const ALL: [Window; 3] = [Window::Steady, Window::Faults, Window::Heal];

    /// The name written in scenarios and reports.
    pub fn name(self) -> &'static str {
        match self {
            Window::Steady => "steady",
            Window::Faults => "faults",
            Window::Heal => "heal",
        }
    }

    /// The window named `name`, if any.
    pub fn from_name(name: &str) -> Option<Window> {
        Window::ALL.into_iter().find(|w| w.name() == name)
    }

    /// Index into per-window tables (as in [`Window::ALL`]).
    pub fn index(self) -> usize {
        self as usize
    }
}

/// Which requests a threshold is computed over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ThresholdScope {
    /// Every request of the run.
    All,
    /// Requests with this name (validated to exist).
    Request(String),
}

/// What a threshold measures.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ThresholdMetric {
    /// A latency statistic in microseconds.
    Latency {
        /// Corrected (from intended start) or service time (from actual send).
        kind: LatencyKind,
        /// Which statistic.
        stat: LatencyStat,
    },
    /// Fraction of completed requests that were errors (non-2xx/3xx or transport failure).
    ErrorRate,
    /// Fraction of scheduled requests that were dropped because `max_in_flight` was reached.
    DroppedRate,
    /// Completed requests per second over the run.
    Rps,
}

/// Corrected latency (from the intended start time) or service time (from the actual send).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LatencyKind {
    /// From the intended start: includes scheduling delay (coordinated-omission corrected).
    Corrected,
    /// From the actual send.
    Service,
}

/// A latency statistic.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum LatencyStat {
    /// Percentile in (0, 100], e.g. 99.9.
    Percentile(f64),
    /// Mean.
    Mean,
    /// Maximum.
    Max,
    /// Minimum.
    Min,
}

/// Comparison operator of a threshold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CmpOp {
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `>=`
    Ge,
}

impl CmpOp {
    /// Whether `observed OP limit` holds.
    pub fn holds(self, observed: f64, limit: f64) -> bool {
        match self {
            CmpOp::Lt => observed < limit,
            CmpOp::Le => observed <= limit,
            CmpOp::Gt => observed > limit,
            CmpOp::Ge => observed >= limit,
        }
    }
}
