//! Validation of the check drivers and their surroundings: `[heal]`, `[kv]`, `[cron]`'s
//! bounds and status probe, `[lock]` and `[queue]`, and the requests they send.
//!
//! A driver request is a `[[requests]]`-like table (method, path, headers, body or json,
//! timeout) plus `fail` / `empty` statuses and the fields it reads from the answer, each a
//! JSON pointer (`"/task/id"`) or a response header (`"header:X-Fencing-Token"`). Which
//! variables its templates may use and which fields it may read depend on the operation.

mod kv;
mod request;

use std::time::Duration;

use toml::{Spanned, Value};

use super::super::plan::{CronStatusPlan, DriverRequest, LockPlan, QueuePlan};
use super::super::raw::{RawDriverRequest, RawHeal, RawLock, RawQueue, RawValue};
use super::{Validator, show};
use crate::check::queue::QueueMode;
use request::extracted_names;

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
        let names = self.lock_names(l);
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
        self.hold_below_ttl(l, ttl, hold);
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

    /// `names = [...]`: the locks clients contend for.
    fn lock_names(&mut self, l: &RawLock) -> Option<Vec<String>> {
        match &l.names {
            None => Some(vec!["kvchaos-lock".to_owned()]),
            Some(list) if list.get_ref().is_empty() => {
                self.err(list.span().start, "lock.names", "names is empty: give at least one lock name, e.g. names = [\"orders\", \"billing\"]");
                None
            }
            Some(list) => Some(list.get_ref().iter().map(|n| n.get_ref().clone()).collect()),
        }
    }

    /// A holder must not outlive its lease: `hold`'s upper end stays below `ttl`.
    fn hold_below_ttl(
        &mut self,
        l: &RawLock,
        ttl: Option<Duration>,
        hold: Option<(Duration, Duration)>,
    ) {
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
    }

    // ---- queue ----

    pub(super) fn queue(&mut self, q: Option<&Spanned<RawQueue>>) -> Option<Option<QueuePlan>> {
        let Some(table) = q else { return Some(None) };
        let at = table.span().start;
        let q = table.get_ref();
        let before = self.errors.len();
        let mode = self.queue_mode(q.mode.as_ref());
        let producers = self.count(q.producers.as_ref(), "queue.producers", 1, 1)?;
        let rate = self.queue_rate(q.rate.as_ref());
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
        self.consumers_have_requests(consumers, q, at);
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

    /// `mode = "at-least-once" | "exactly-once-effect"`.
    fn queue_mode(&mut self, m: Option<&Spanned<String>>) -> Option<QueueMode> {
        let Some(m) = m else {
            return Some(QueueMode::AtLeastOnce);
        };
        match m.get_ref().as_str() {
            "at-least-once" => Some(QueueMode::AtLeastOnce),
            "exactly-once-effect" => Some(QueueMode::ExactlyOnceEffect),
            other => {
                self.err(m.span().start, "queue.mode", format!("unknown mode {other:?}: expected \"at-least-once\" (a task may be processed twice) or \"exactly-once-effect\" (a second completion is an anomaly)"));
                None
            }
        }
    }

    /// `rate = 5`: enqueues per second for all producers together.
    fn queue_rate(&mut self, v: Option<&RawValue>) -> Option<f64> {
        let Some(v) = v else { return Some(5.0) };
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

    /// Consumers need both `[queue.claim]` and `[queue.complete]`; with none, neither applies.
    fn consumers_have_requests(&mut self, consumers: usize, q: &RawQueue, at: usize) {
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
    pub(super) fn range(
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
}
