//! Validation of the check drivers and their surroundings: `[heal]`, `[kv]`, `[cron]`'s
//! bounds and status probe, `[lock]` and `[queue]`, and the requests they send.
//!
//! A driver request is a `[[requests]]`-like table (method, path, headers, body or json,
//! timeout) plus `fail` / `empty` statuses and the fields it reads from the answer, each a
//! JSON pointer (`"/task/id"`) or a response header (`"header:X-Fencing-Token"`). Which
//! variables its templates may use and which fields it may read depend on the operation.

mod kv;
mod queue;
mod request;

use std::time::Duration;

use toml::{Spanned, Value};

use super::super::plan::{CronStatusPlan, DriverRequest, LockPlan};
use super::super::raw::{RawDriverRequest, RawHeal, RawLock, RawValue};
use super::{Validator, show};
use request::extracted_names;

/// Most lock or queue clients of one kind.
const MAX_CLIENTS: i64 = 256;
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
