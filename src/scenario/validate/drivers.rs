//! Validation of the check drivers and their surroundings: `[heal]`, `[kv]`, `[cron]`'s
//! bounds and status probe, `[lock]` and `[queue]`, and the requests they send.
//!
//! A driver request is a `[[requests]]`-like table (method, path, headers, body or json,
//! timeout) plus `fail` / `empty` statuses and the fields it reads from the answer, each a
//! JSON pointer (`"/task/id"`) or a response header (`"header:X-Fencing-Token"`). Which
//! variables its templates may use and which fields it may read depend on the operation.

use std::time::Duration;

use http::HeaderName;
use toml::{Spanned, Value};

use super::super::plan::{CronStatusPlan, DriverRequest, Extract, KvPlan, LockPlan, QueuePlan};
use super::super::raw::{
    OrderedMap, RawDriverRequest, RawHeal, RawKv, RawLock, RawQueue, RawValue,
};
use super::{Validator, show};
use crate::check::queue::QueueMode;
use crate::mockkv::Limits;

/// Most lock or queue clients of one kind.
const MAX_CLIENTS: i64 = 256;
/// Highest enqueue rate, tasks per second.
const MAX_QUEUE_RATE: f64 = 10_000.0;
/// Longest wait or hold a driver may be told to do.
const MAX_DRIVER_WAIT: Duration = Duration::from_secs(3600);
/// The default of `lock.max_starve` and `queue.max_stall`: a control plane that makes no
/// progress for this long while its operations fail has stopped.
const DEFAULT_BOUND: Duration = Duration::from_secs(5);
/// Longest lease or TTL a driver may ask for (a day, as the reference Workers allow).
const MAX_LEASE: Duration = Duration::from_secs(86_400);

/// What one driver operation may use and read.
pub(super) struct OpSpec {
    /// Its name in field paths, e.g. `lock.acquire`.
    pub name: &'static str,
    /// Variables its templates may use.
    pub vars: &'static [&'static str],
    /// Fields it reads: name, default pointer (`None`: not read unless written).
    pub reads: &'static [(&'static str, Option<&'static str>)],
    /// Whether `done = [...]` applies.
    pub done: bool,
    /// Whether `every = "..."` applies.
    pub every: bool,
    /// Statuses that are `empty` unless the scenario says otherwise.
    pub empty: &'static [u16],
}

const CRON_STATUS: OpSpec = OpSpec {
    name: "cron.status",
    vars: &[],
    reads: &[("last_run", Some("/last_run")), ("runs", None)],
    done: false,
    every: true,
    empty: &[],
};
const LOCK_ACQUIRE: OpSpec = OpSpec {
    name: "lock.acquire",
    vars: &["lock", "holder", "ttl_ms"],
    reads: &[
        ("token", Some("/token")),
        ("expires_at", Some("/expires_at")),
    ],
    done: false,
    every: false,
    empty: &[],
};
const LOCK_RELEASE: OpSpec = OpSpec {
    name: "lock.release",
    vars: &["lock", "holder", "token"],
    reads: &[],
    done: false,
    every: false,
    empty: &[],
};
const LOCK_READ: OpSpec = OpSpec {
    name: "lock.read",
    vars: &["lock"],
    reads: &[
        ("holder", Some("/holder")),
        ("expires_at", Some("/expires_at")),
        ("token", None),
    ],
    done: false,
    every: false,
    empty: &[404],
};
const QUEUE_ENQUEUE: OpSpec = OpSpec {
    name: "queue.enqueue",
    vars: &["id"],
    reads: &[("duplicate", None)],
    done: false,
    every: false,
    empty: &[],
};
const QUEUE_CLAIM: OpSpec = OpSpec {
    name: "queue.claim",
    vars: &["consumer", "lease_ms"],
    reads: &[("id", Some("/id")), ("lease_until", Some("/lease_until"))],
    done: false,
    every: false,
    empty: &[204],
};
const QUEUE_COMPLETE: OpSpec = OpSpec {
    name: "queue.complete",
    vars: &["id", "consumer"],
    reads: &[],
    done: false,
    every: false,
    empty: &[],
};
const QUEUE_RESULT: OpSpec = OpSpec {
    name: "queue.result",
    vars: &["id"],
    reads: &[("status", Some("/status")), ("result", None)],
    done: true,
    every: false,
    // A 404 is the task gone (`missing`), as the queue check reads it.
    empty: &[404],
};

/// Variables the drivers set themselves: an `extract` name may not shadow one.
const DRIVER_VARS: [&str; 12] = [
    "lock",
    "holder",
    "ttl_ms",
    "token",
    "id",
    "consumer",
    "lease_ms",
    "key",
    "copy",
    "attempt",
    "limit",
    "window_ms",
];
/// Most named values one request may extract.
const MAX_EXTRACT: usize = 16;

/// Read fields that are booleans, which a match may compute.
const BOOLEAN_READS: [&str; 1] = ["duplicate"];

/// Every read field a driver request table may hold, with its value.
fn read_fields(r: &RawDriverRequest) -> [(&'static str, Option<&RawValue>); 11] {
    [
        ("token", r.token.as_ref()),
        ("expires_at", r.expires_at.as_ref()),
        ("holder", r.holder.as_ref()),
        ("last_run", r.last_run.as_ref()),
        ("runs", r.runs.as_ref()),
        ("duplicate", r.duplicate.as_ref()),
        ("id", r.id.as_ref()),
        ("lease_until", r.lease_until.as_ref()),
        ("status", r.status.as_ref()),
        ("result", r.result.as_ref()),
        ("effects", r.effects.as_ref()),
    ]
}

/// The names `req` extracts, for the requests that may use them.
fn extracted_names(req: Option<&DriverRequest>) -> Vec<String> {
    req.map(|r| r.extract.iter().map(|(n, _)| n.clone()).collect())
        .unwrap_or_default()
}

impl Validator<'_> {
    // ---- heal and kv ----

    pub(super) fn heal(&mut self, h: Option<&Spanned<RawHeal>>) -> Option<Option<Duration>> {
        let Some(v) = h.and_then(|h| h.get_ref().duration.as_ref()) else {
            return Some(None);
        };
        let field = "heal.duration";
        let d = self.duration(v, field, "duration = \"6s\"")?;
        self.positive(v, field, d, "duration = \"6s\"").map(Some)
    }

    /// The mock KV's plan, and the run-clock speed a `day` asks for.
    pub(super) fn kv(&mut self, k: Option<&Spanned<RawKv>>) -> Option<(KvPlan, Option<f64>)> {
        let Some(k) = k.map(Spanned::get_ref) else {
            return Some((KvPlan::default(), None));
        };
        let mut ok = true;
        let custom: Vec<(&str, &RawValue)> = [
            ("reads_per_day", k.reads_per_day.as_ref()),
            ("writes_per_day", k.writes_per_day.as_ref()),
            ("deletes_per_day", k.deletes_per_day.as_ref()),
            ("lists_per_day", k.lists_per_day.as_ref()),
        ]
        .into_iter()
        .filter_map(|(n, v)| v.map(|v| (n, v)))
        .collect();
        let plan = k.plan.as_ref().map_or("free", |p| p.get_ref().as_str());
        let mut limits = match plan {
            "free" => Limits::FREE,
            "paid" => Limits::PAID,
            "custom" => Limits::PAID,
            other => {
                let at = k.plan.as_ref().map_or(0, |p| p.span().start);
                self.err(at, "kv.plan", format!("unknown plan {other:?}: expected \"free\" (100,000 reads and 1,000 writes, deletes and lists a day), \"paid\" (no daily limit) or \"custom\" (with writes_per_day = 500 and friends)"));
                return None;
            }
        };
        for (name, v) in custom {
            if plan != "custom" {
                self.err(
                    v.span().start,
                    format!("kv.{name}"),
                    format!("{name} needs plan = \"custom\" (the plan is {plan:?}): add plan = \"custom\" to [kv], or remove {name}"),
                );
                ok = false;
                continue;
            }
            let n = match v.get_ref() {
                Value::Integer(n) if *n >= 0 => *n as u64,
                other => {
                    self.err(
                        v.span().start,
                        format!("kv.{name}"),
                        format!(
                            "invalid {name} {}: expected a whole number of 0 or more, e.g. {name} = 1000",
                            show(other)
                        ),
                    );
                    ok = false;
                    continue;
                }
            };
            match name {
                "reads_per_day" => limits.reads = Some(n),
                "writes_per_day" => limits.writes = Some(n),
                "deletes_per_day" => limits.deletes = Some(n),
                _ => limits.lists = Some(n),
            }
        }
        let speed = match &k.day {
            None => None,
            Some(v) => {
                let d = self.duration(v, "kv.day", "day = \"60s\"")?;
                let d = self.positive(v, "kv.day", d, "day = \"60s\"")?;
                Some(crate::mockkv::VirtualClock::speed_for_day(d))
            }
        };
        let start_of_day = match &k.start {
            None => None,
            Some(s) => match parse_time_of_day(s.get_ref()) {
                Some(d) => Some(d),
                None => {
                    self.err(
                        s.span().start,
                        "kv.start",
                        format!(
                            "invalid start {:?}: expected a UTC time of day as HH:MM or HH:MM:SS, e.g. start = \"23:30\" (the run clock starts there, today)",
                            s.get_ref()
                        ),
                    );
                    ok = false;
                    None
                }
            },
        };
        ok.then(|| {
            (
                KvPlan {
                    limits,
                    same_key_write_limit: k.same_key_write_limit.unwrap_or(true),
                    start_of_day,
                },
                speed,
            )
        })
    }

    // ---- cron ----

    pub(super) fn cron_max_gap(&mut self, v: Option<&RawValue>) -> Option<Option<Duration>> {
        let Some(v) = v else { return Some(None) };
        let d = self.duration(v, "cron.max_gap", "max_gap = \"3m\"")?;
        self.positive(v, "cron.max_gap", d, "max_gap = \"3m\"")
            .map(Some)
    }

    pub(super) fn cron_status(
        &mut self,
        r: Option<&Spanned<RawDriverRequest>>,
    ) -> Option<Option<CronStatusPlan>> {
        let Some(r) = r else { return Some(None) };
        let request = self.driver_request(r, &CRON_STATUS, &[]);
        let every = match &r.get_ref().every {
            None => Some(Duration::from_secs(1)),
            Some(v) => self.wait(v, "cron.status.every", "every = \"1s\"", true),
        };
        Some(Some(CronStatusPlan {
            request: request?,
            every: every?,
        }))
    }

    // ---- lock ----

    pub(super) fn lock(&mut self, l: Option<&Spanned<RawLock>>) -> Option<Option<LockPlan>> {
        let Some(table) = l else { return Some(None) };
        let at = table.span().start;
        let l = table.get_ref();
        let before = self.errors.len();
        let clients = self.count(l.clients.as_ref(), "lock.clients", 4, 1)?;
        let names = match &l.names {
            None => Some(vec!["kvchaos-lock".to_owned()]),
            Some(list) if list.get_ref().is_empty() => {
                self.err(list.span().start, "lock.names", "names is empty: give at least one lock name, e.g. names = [\"orders\", \"billing\"]");
                None
            }
            Some(list) => Some(list.get_ref().iter().map(|n| n.get_ref().clone()).collect()),
        };
        let ttl = match &l.ttl {
            None => Some(Duration::from_secs(5)),
            Some(v) => self
                .wait(v, "lock.ttl", "ttl = \"5s\"", true)
                .and_then(|d| self.at_most(v, "lock.ttl", d, MAX_LEASE, "24h")),
        };
        let hold = self.range(
            l.hold.as_ref(),
            "lock.hold",
            (Duration::from_millis(50), Duration::from_millis(250)),
        );
        let pause = self.range(
            l.pause.as_ref(),
            "lock.pause",
            (Duration::from_millis(20), Duration::from_millis(100)),
        );
        let max_starve = self.bound(
            l.max_starve.as_ref(),
            "lock.max_starve",
            "max_starve = \"10s\"",
        );
        let tolerance = match &l.tolerance {
            None => Some(Duration::from_millis(50)),
            Some(v) => self.wait(v, "lock.tolerance", "tolerance = \"50ms\"", false),
        };
        let acquire = self.required(
            l.acquire.as_ref(),
            at,
            &LOCK_ACQUIRE,
            &[],
            "[lock.acquire] with method = \"POST\" and path = \"/locks/{{lock}}/acquire\"",
        );
        // What the acquire extracts, its lease's release and the final read may use.
        let extra = extracted_names(acquire.as_ref());
        let release = self.required(
            l.release.as_ref(),
            at,
            &LOCK_RELEASE,
            &extra,
            "[lock.release] with method = \"POST\" and path = \"/locks/{{lock}}/release\"",
        );
        let read = l
            .read
            .as_ref()
            .map(|r| self.driver_request(r, &LOCK_READ, &extra));
        let overrun = self.overrun(l.overrun.as_ref(), ttl);
        if let (Some(ttl), Some((_, hold_max)), Some(v)) = (ttl, hold, &l.hold)
            && hold_max >= ttl
        {
            self.err(
                v.span().start,
                "lock.hold",
                format!(
                    "clients hold a lock up to {} but the lease (ttl) is {}: a holder would outlive its lease; keep hold below ttl, e.g. hold = [\"50ms\", \"250ms\"] with ttl = \"5s\"",
                    humantime::format_duration(hold_max),
                    humantime::format_duration(ttl)
                ),
            );
        }
        if self.errors.len() > before {
            return None;
        }
        let read = match read {
            Some(r) => Some(r?),
            None => None,
        };
        Some(Some(LockPlan {
            clients,
            names: names?,
            ttl: ttl?,
            hold: hold?,
            pause: pause?,
            overrun: overrun?,
            max_starve: max_starve?,
            tolerance: tolerance?,
            acquire: acquire?,
            release: release?,
            read,
        }))
    }

    // ---- queue ----

    pub(super) fn queue(&mut self, q: Option<&Spanned<RawQueue>>) -> Option<Option<QueuePlan>> {
        let Some(table) = q else { return Some(None) };
        let at = table.span().start;
        let q = table.get_ref();
        let before = self.errors.len();
        let mode = match &q.mode {
            None => Some(QueueMode::AtLeastOnce),
            Some(m) => match m.get_ref().as_str() {
                "at-least-once" => Some(QueueMode::AtLeastOnce),
                "exactly-once-effect" => Some(QueueMode::ExactlyOnceEffect),
                other => {
                    self.err(m.span().start, "queue.mode", format!("unknown mode {other:?}: expected \"at-least-once\" (a task may be processed twice) or \"exactly-once-effect\" (a second completion is an anomaly)"));
                    None
                }
            },
        };
        let producers = self.count(q.producers.as_ref(), "queue.producers", 1, 1)?;
        let rate = match &q.rate {
            None => Some(5.0),
            Some(v) => {
                let n = match v.get_ref() {
                    Value::Integer(i) => Some(*i as f64),
                    Value::Float(f) => Some(*f),
                    _ => None,
                };
                match n {
                    Some(n) if n > 0.0 && n <= MAX_QUEUE_RATE && n.is_finite() => Some(n),
                    _ => {
                        self.err(v.span().start, "queue.rate", format!("invalid rate {}: expected enqueues per second for all producers together, above 0 and at most 10000, e.g. rate = 5", show(v.get_ref())));
                        None
                    }
                }
            }
        };
        let consumers = self.count(q.consumers.as_ref(), "queue.consumers", 0, 0)?;
        let lease = match &q.lease {
            None => Some(Duration::from_secs(5)),
            Some(v) => self
                .wait(v, "queue.lease", "lease = \"5s\"", true)
                .and_then(|d| self.at_most(v, "queue.lease", d, MAX_LEASE, "24h")),
        };
        let poll = match &q.poll {
            None => Some(Duration::from_millis(100)),
            Some(v) => self.wait(v, "queue.poll", "poll = \"100ms\"", true),
        };
        let drain_every = match &q.drain_every {
            None => Some(Duration::from_millis(500)),
            Some(v) => self.wait(v, "queue.drain_every", "drain_every = \"500ms\"", true),
        };
        let max_drain = match &q.max_drain {
            None => Some(None),
            Some(v) => self
                .wait(v, "queue.max_drain", "max_drain = \"10s\"", true)
                .map(Some),
        };
        let max_stall = self.bound(
            q.max_stall.as_ref(),
            "queue.max_stall",
            "max_stall = \"5s\"",
        );
        let enqueue = self.required(q.enqueue.as_ref(), at, &QUEUE_ENQUEUE, &[], "[queue.enqueue] with method = \"POST\", path = \"/queue/enqueue\" and json = { id = \"{{id}}\" }");
        let result = self.required(
            q.result.as_ref(),
            at,
            &QUEUE_RESULT,
            &[],
            "[queue.result] with path = \"/queue/result/{{id}}\" and status = \"/status\"",
        );
        let claim = q
            .claim
            .as_ref()
            .map(|r| self.driver_request(r, &QUEUE_CLAIM, &[]));
        // What the claim extracts, that task's complete may use.
        let extra = extracted_names(claim.as_ref().and_then(Option::as_ref));
        let complete = q
            .complete
            .as_ref()
            .map(|r| self.driver_request(r, &QUEUE_COMPLETE, &extra));
        match (consumers, &q.claim, &q.complete) {
            (0, None, None) => {}
            (0, Some(c), _) | (0, None, Some(c)) => self.err(
                c.span().start,
                "queue.consumers",
                "[queue.claim] and [queue.complete] are used by consumers, but consumers = 0 (the Worker processes tasks itself): set consumers = 2, or remove them",
            ),
            (_, Some(_), Some(_)) => {}
            (_, _, _) => self.err(
                at,
                "queue",
                "consumers need both [queue.claim] (path = \"/queue/claim\") and [queue.complete] (path = \"/queue/complete\"); with consumers = 0 the Worker's own cron processes tasks",
            ),
        }
        let done = match q.result.as_ref().and_then(|r| r.get_ref().done.as_ref()) {
            None => vec!["done".to_owned()],
            Some(d) => d.get_ref().iter().map(|s| s.get_ref().clone()).collect(),
        };
        if self.errors.len() > before {
            return None;
        }
        let (claim, complete) = match (claim, complete) {
            (Some(c), Some(d)) => (Some(c?), Some(d?)),
            _ => (None, None),
        };
        Some(Some(QueuePlan {
            mode: mode?,
            producers,
            rate: rate?,
            consumers,
            lease: lease?,
            poll: poll?,
            max_drain: max_drain?,
            max_stall: max_stall?,
            drain_every: drain_every?,
            enqueue: enqueue?,
            claim,
            complete,
            result: result?,
            done,
        }))
    }

    /// `overrun = { share = 0.3, hold = ["500ms", "900ms"] }`: holds past the lease.
    fn overrun(
        &mut self,
        v: Option<&RawValue>,
        ttl: Option<Duration>,
    ) -> Option<Option<(f64, (Duration, Duration))>> {
        let Some(v) = v else { return Some(None) };
        let fix = "e.g. overrun = { share = 0.3, hold = [\"6s\", \"8s\"] } with ttl = \"5s\"";
        let Value::Table(t) = v.get_ref() else {
            self.err(
                v.span().start,
                "lock.overrun",
                format!("expected a table: {fix}"),
            );
            return None;
        };
        if let Some(k) = t.keys().find(|k| !matches!(k.as_str(), "share" | "hold")) {
            self.err(
                v.span().start,
                "lock.overrun",
                format!("unknown key {k:?}: overrun takes share and hold, {fix}"),
            );
            return None;
        }
        let share = match t.get("share") {
            Some(Value::Float(f)) if *f > 0.0 && *f <= 1.0 => *f,
            Some(Value::Integer(1)) => 1.0,
            other => {
                let shown = other.map_or("nothing".to_owned(), show);
                self.err(v.span().start, "lock.overrun.share", format!("invalid share {shown}: expected the share of holds that overrun, above 0 and at most 1, {fix}"));
                return None;
            }
        };
        let Some(hold) = t.get("hold") else {
            self.err(
                v.span().start,
                "lock.overrun.hold",
                format!("missing hold: {fix}"),
            );
            return None;
        };
        let hold = self.range(
            Some(&Spanned::new(v.span(), hold.clone())),
            "lock.overrun.hold",
            (Duration::ZERO, Duration::ZERO),
        )?;
        if let Some(ttl) = ttl.filter(|ttl| hold.0 <= *ttl) {
            self.err(
                v.span().start,
                "lock.overrun.hold",
                format!(
                    "an overrunning hold of {} does not outlive the lease (ttl {}): start the range above ttl, {fix}",
                    humantime::format_duration(hold.0),
                    humantime::format_duration(ttl)
                ),
            );
            return None;
        }
        Some(Some((share, hold)))
    }

    // ---- shared pieces ----

    fn count(
        &mut self,
        v: Option<&RawValue>,
        field: &str,
        default: usize,
        lo: i64,
    ) -> Option<usize> {
        match v {
            None => Some(default),
            Some(v) => {
                let name = field.rsplit('.').next().unwrap_or(field);
                self.int_in(v, field, name, lo, MAX_CLIENTS, &format!("{name} = 4"))
            }
        }
    }

    /// A duration of at most an hour; `positive` refuses zero.
    fn wait(
        &mut self,
        v: &RawValue,
        field: &str,
        example: &str,
        positive: bool,
    ) -> Option<Duration> {
        let d = self.duration(v, field, example)?;
        let d = if positive {
            self.positive(v, field, d, example)?
        } else {
            d
        };
        self.at_most(v, field, d, MAX_DRIVER_WAIT, "1h")
    }

    /// A liveness bound: [`DEFAULT_BOUND`] when absent, `"off"` for none.
    fn bound(
        &mut self,
        v: Option<&RawValue>,
        field: &str,
        example: &str,
    ) -> Option<Option<Duration>> {
        match v {
            None => Some(Some(DEFAULT_BOUND)),
            Some(v) if v.get_ref().as_str() == Some("off") => Some(None),
            Some(v) => self
                .wait(
                    v,
                    field,
                    &format!("{example}, or \"off\" to only report it"),
                    true,
                )
                .map(Some),
        }
    }

    /// `"100ms"` (always that long) or `["50ms", "300ms"]` (uniform in between).
    fn range(
        &mut self,
        v: Option<&RawValue>,
        field: &str,
        default: (Duration, Duration),
    ) -> Option<(Duration, Duration)> {
        let Some(v) = v else { return Some(default) };
        let example = format!(
            "{} = [\"50ms\", \"250ms\"]",
            field.rsplit('.').next().unwrap_or(field)
        );
        let parse = |s: &Value| match s {
            Value::String(s) => humantime::parse_duration(s.trim()).ok(),
            _ => None,
        };
        let parsed = match v.get_ref() {
            Value::String(_) => parse(v.get_ref()).map(|d| (d, d)),
            Value::Array(a) if a.len() == 2 => match (parse(&a[0]), parse(&a[1])) {
                (Some(lo), Some(hi)) if lo <= hi => Some((lo, hi)),
                _ => None,
            },
            _ => None,
        };
        match parsed {
            Some((lo, hi)) if hi <= MAX_DRIVER_WAIT => Some((lo, hi)),
            _ => {
                self.err(
                    v.span().start,
                    field,
                    format!(
                        "invalid range {}: expected one duration or [shortest, longest] in quotes, shortest first, at most 1h, e.g. {example}",
                        show(v.get_ref())
                    ),
                );
                None
            }
        }
    }

    fn required(
        &mut self,
        r: Option<&Spanned<RawDriverRequest>>,
        table_at: usize,
        spec: &OpSpec,
        extra: &[String],
        fix: &str,
    ) -> Option<DriverRequest> {
        match r {
            Some(r) => self.driver_request(r, spec, extra),
            None => {
                self.err(
                    table_at,
                    spec.name,
                    format!("missing {}: add {fix}", spec.name),
                );
                None
            }
        }
    }

    /// A driver's request table for `spec`.
    /// `extra` are the names an earlier request extracted (a lease's acquire for its
    /// release, a task's claim for its complete), usable as `{{name}}` here.
    pub(super) fn driver_request(
        &mut self,
        r: &Spanned<RawDriverRequest>,
        spec: &OpSpec,
        extra: &[String],
    ) -> Option<DriverRequest> {
        let base = spec.name;
        let header = r.span().start;
        let raw = r.get_ref();
        let before = self.errors.len();
        self.vars = spec.vars.iter().map(|v| (*v).to_owned()).collect();
        self.vars.extend(extra.iter().cloned());
        let method = self.method(raw.method.as_ref(), base);
        let path = self.path(raw.path.as_ref(), header, base);
        let headers = self.headers(raw.headers.as_ref(), base);
        let body = self.body(raw.body.as_ref(), raw.json.as_ref(), base);
        self.vars.clear();
        let extract = self.extracts(raw.extract.as_ref(), base);
        let timeout = self.timeout(raw.timeout.as_ref(), base);
        let empty = match &raw.empty {
            None => Some(spec.empty.to_vec()),
            Some(list) => self.statuses(list, &format!("{base}.empty")),
        };
        let fail = match &raw.fail {
            None => empty
                .as_ref()
                .map(|e| (400..=499).filter(|s| !e.contains(s)).collect()),
            Some(list) => self.statuses(list, &format!("{base}.fail")),
        };
        if !spec.every
            && let Some(v) = &raw.every
        {
            self.err(
                v.span().start,
                format!("{base}.every"),
                format!("every only applies to [cron.status] (how often it is probed): remove it from [{base}]"),
            );
        }
        if !spec.done
            && let Some(v) = &raw.done
        {
            self.err(
                v.span().start,
                format!("{base}.done"),
                format!("done only applies to [queue.result] (status values meaning a task is done): remove it from [{base}]"),
            );
        }
        let mut reads = Vec::new();
        for (name, value) in read_fields(raw) {
            let default = spec.reads.iter().find(|(n, _)| *n == name);
            match (value, default) {
                (Some(v), None) => {
                    let allowed: Vec<&str> = spec.reads.iter().map(|(n, _)| *n).collect();
                    let fields = if allowed.is_empty() {
                        "it reads nothing from the answer".to_owned()
                    } else {
                        format!("it reads {}", allowed.join(", "))
                    };
                    self.err(
                        v.span().start,
                        format!("{base}.{name}"),
                        format!("{name} is not read by {base} ({fields}): remove it"),
                    );
                }
                (Some(v), Some(_)) => {
                    if let Some(e) = self.read_field(v, name, &format!("{base}.{name}")) {
                        reads.push((name.to_owned(), e));
                    }
                }
                (None, Some((_, Some(ptr)))) => {
                    reads.push((name.to_owned(), Extract::Pointer((*ptr).to_owned())));
                }
                (None, _) => {}
            }
        }
        if self.errors.len() > before {
            return None;
        }
        Some(DriverRequest {
            method: method?,
            path: path?,
            headers: headers?,
            body: body?,
            timeout: timeout?,
            fail: fail?,
            empty: empty?,
            reads,
            extract: extract?,
        })
    }

    /// `extract = { name = "/pointer" | "header:Name", ... }`.
    fn extracts(
        &mut self,
        t: Option<&Spanned<OrderedMap<Spanned<String>>>>,
        base: &str,
    ) -> Option<Vec<(String, Extract)>> {
        let Some(t) = t else { return Some(Vec::new()) };
        let field = format!("{base}.extract");
        let mut out = Vec::new();
        if t.get_ref().0.len() > MAX_EXTRACT {
            self.err(
                t.span().start,
                &field,
                format!(
                    "{} names: extract at most {MAX_EXTRACT} values per request",
                    t.get_ref().0.len()
                ),
            );
            return None;
        }
        for (name, loc) in &t.get_ref().0 {
            let name = name.get_ref();
            let valid = name
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            if !valid || DRIVER_VARS.contains(&name.as_str()) || name == "env" {
                self.err(
                    loc.span().start,
                    format!("{field}.{name}"),
                    format!(
                        "invalid extract name {name:?}: use letters, digits and _ (not starting with a digit), and none of the driver's own variables ({}), e.g. extract = {{ receipt = \"/receipt\" }}",
                        DRIVER_VARS.join(", ")
                    ),
                );
                continue;
            }
            if let Some(e) = self.extract(loc, &format!("{field}.{name}")) {
                out.push((name.clone(), e));
            }
        }
        Some(out)
    }

    /// A read field: `"/pointer"`, `"header:Name"`, or, for booleans, a match
    /// `{ pointer = "/created", equals = false }` (or `header = "X-Dup"`).
    fn read_field(&mut self, v: &RawValue, name: &str, field: &str) -> Option<Extract> {
        match v.get_ref() {
            Value::String(s) => self.extract(&Spanned::new(v.span(), s.clone()), field),
            Value::Table(t) if BOOLEAN_READS.contains(&name) => self.matched(v, t, field),
            Value::Table(_) => {
                self.err(
                    v.span().start,
                    field,
                    format!("{name} cannot be matched (only boolean reads can: {}): give where it is read, e.g. {name} = \"/{name}\"", BOOLEAN_READS.join(", ")),
                );
                None
            }
            other => {
                self.err(
                    v.span().start,
                    field,
                    format!("invalid location {}: expected a JSON pointer such as \"/{name}\" or a header as \"header:X-Name\"", show(other)),
                );
                None
            }
        }
    }

    fn matched(&mut self, v: &RawValue, t: &toml::Table, field: &str) -> Option<Extract> {
        let fix = "e.g. { pointer = \"/created\", equals = false } or { header = \"X-Duplicate\", equals = \"1\" }";
        let unknown: Vec<&String> = t
            .keys()
            .filter(|k| !matches!(k.as_str(), "pointer" | "header" | "equals"))
            .collect();
        if let Some(k) = unknown.first() {
            self.err(
                v.span().start,
                field,
                format!("unknown key {k:?} in a match: use pointer or header, and equals: {fix}"),
            );
            return None;
        }
        let Some(want) = t.get("equals") else {
            self.err(
                v.span().start,
                field,
                format!("a match needs equals: {fix}"),
            );
            return None;
        };
        let loc = match (t.get("pointer"), t.get("header")) {
            (Some(Value::String(p)), None) if p.is_empty() || p.starts_with('/') => {
                Extract::Pointer(p.clone())
            }
            (None, Some(Value::String(h))) => match HeaderName::from_bytes(h.trim().as_bytes()) {
                Ok(h) => Extract::Header(h),
                Err(_) => {
                    self.err(
                        v.span().start,
                        field,
                        format!("invalid header name {h:?} in a match: {fix}"),
                    );
                    return None;
                }
            },
            _ => {
                self.err(v.span().start, field, format!("a match reads from one place, a pointer starting with \"/\" or a header: {fix}"));
                return None;
            }
        };
        let want = serde_json::to_value(want).unwrap_or(serde_json::Value::Null);
        Some(Extract::Equals(Box::new(loc), want))
    }

    fn statuses(&mut self, list: &Spanned<Vec<RawValue>>, field: &str) -> Option<Vec<u16>> {
        let mut out = Vec::new();
        for v in list.get_ref() {
            match v.get_ref() {
                Value::Integer(s) if (100..=599).contains(s) => out.push(*s as u16),
                other => {
                    self.err(
                        v.span().start,
                        field,
                        format!(
                            "invalid status {}: expected an HTTP status from 100 to 599, e.g. [409, 423]",
                            show(other)
                        ),
                    );
                    return None;
                }
            }
        }
        Some(out)
    }

    /// `"/json/pointer"` or `"header:Name"`.
    fn extract(&mut self, v: &Spanned<String>, field: &str) -> Option<Extract> {
        let text = v.get_ref();
        if let Some(name) = text.strip_prefix("header:") {
            return match HeaderName::from_bytes(name.trim().as_bytes()) {
                Ok(h) => Some(Extract::Header(h)),
                Err(_) => {
                    self.err(
                        v.span().start,
                        field,
                        format!("invalid header name {:?}: write header:Name, e.g. \"header:X-Fencing-Token\"", name.trim()),
                    );
                    None
                }
            };
        }
        if text.is_empty() || text.starts_with('/') {
            return Some(Extract::Pointer(text.clone()));
        }
        self.err(
            v.span().start,
            field,
            format!(
                "invalid location {text:?}: expected a JSON pointer into the answer's body starting with \"/\" (e.g. \"/{}\" or \"/task/id\"), or a response header as \"header:X-Name\"",
                text.trim_start_matches('/').replace('.', "/")
            ),
        );
        None
    }
}

/// `HH:MM` or `HH:MM:SS` as time since midnight.
fn parse_time_of_day(s: &str) -> Option<Duration> {
    let parts: Vec<&str> = s.trim().split(':').collect();
    let num = |p: &str, max: u64| {
        (p.len() == 2)
            .then(|| p.parse::<u64>().ok())
            .flatten()
            .filter(|n| *n <= max)
    };
    let (h, m, sec) = match parts.as_slice() {
        [h, m] => (num(h, 23)?, num(m, 59)?, 0),
        [h, m, s] => (num(h, 23)?, num(m, 59)?, num(s, 59)?),
        _ => return None,
    };
    Some(Duration::from_secs(h * 3600 + m * 60 + sec))
}

#[cfg(test)]
mod tests {
    use super::parse_time_of_day;
    use std::time::Duration;

    #[test]
    fn times_of_day_parse_strictly() {
        assert_eq!(parse_time_of_day("00:00"), Some(Duration::ZERO));
        assert_eq!(
            parse_time_of_day("23:59:30"),
            Some(Duration::from_secs(86_370))
        );
        for bad in ["24:00", "7:00", "12:60", "12", "12:00:00:00", "ab:cd"] {
            assert_eq!(parse_time_of_day(bad), None, "{bad}");
        }
    }
}
