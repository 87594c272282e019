//! Raw scenario file → validated [`Plan`]. Every semantic check of user input lives here,
//! and every problem found is collected (not only the first), each with its location, the
//! field path, the bad value in quotes (never a secret) and an example of a valid value.

use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use http::{HeaderName, Method};
use rand::SeedableRng;
use rand::rngs::SmallRng;
use toml::{Spanned, Value};

use super::ScenarioError;
use super::plan::{
    BodyPlan, CronPlan, DEFAULT_GRACE, DEFAULT_MAX_IN_FLIGHT, DEFAULT_TIMEOUT, FaultPlan, Load,
    Phase, Plan, RequestPlan, TargetKind, TargetPlan, Threshold, ThresholdScope,
};
use super::raw::{
    RawClock, RawCron, RawFault, RawJson, RawPhase, RawRequest, RawTarget, RawValue, ScenarioFile,
};
use super::template::{self, Part, RenderCx, Template, TemplateContext};
use super::threshold;
use crate::redact::Redactor;

mod drivers;

/// Highest open-loop rate, requests per second.
const MAX_RATE: f64 = 10_000_000.0;
/// Highest `vus` and `max_in_flight`.
const MAX_CONCURRENCY: i64 = 100_000;
/// Longest total of all phases.
const MAX_TOTAL: Duration = Duration::from_secs(7 * 24 * 3600);
/// Longest per-request timeout.
const MAX_TIMEOUT: Duration = Duration::from_secs(600);
/// Longest grace period.
const MAX_GRACE: Duration = Duration::from_secs(3600);
/// Highest request weight.
const MAX_WEIGHT: i64 = 1_000_000;
/// Longest duration any field may hold: past it, sums of durations could overflow, and no run
/// lasts that long anyway (the phases together are capped at [`MAX_TOTAL`]).
const MAX_ANY_DURATION: Duration = Duration::from_secs(30 * 24 * 3600);
/// Most `[[requests]]`: each has its own histograms per interval, so memory grows with them.
const MAX_REQUESTS: usize = 256;
/// Most `[[phases]]`.
const MAX_PHASES: usize = 1_000;
/// Longest path template, in bytes.
const MAX_PATH: usize = 8 * 1024;
/// Methods a request may use.
const METHODS: [&str; 7] = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"];

/// Validates a parsed file. `seed` is used when the file has none.
pub(super) fn validate(
    raw: ScenarioFile,
    src: &str,
    file: &Path,
    env: &dyn Fn(&str) -> Option<String>,
    random_seed: u64,
) -> Result<Plan, Vec<ScenarioError>> {
    let mut v = Validator {
        src,
        file,
        env,
        errors: Vec::new(),
        redactor: Redactor::default(),
        top: first_content_offset(src),
        vars: Vec::new(),
    };
    let name = v.name(raw.name.as_ref());
    let seed = raw.seed.as_ref().map_or(Some(random_seed), |s| v.seed(s));
    let grace = match &raw.grace {
        None => Some(DEFAULT_GRACE),
        Some(g) => v
            .duration(g, "grace", "grace = \"5s\"")
            .and_then(|d| v.at_most(g, "grace", d, MAX_GRACE, "1h")),
    };
    let target = v.target(raw.target.as_ref());
    let phases = v.phases(raw.phases.as_ref());
    let requests = v.requests(raw.requests.as_ref());
    let names: Vec<String> = raw
        .requests
        .iter()
        .flat_map(|r| r.get_ref())
        .filter_map(|r| r.get_ref().name.as_ref().map(|n| n.get_ref().clone()))
        .collect();
    let thresholds = v.thresholds(raw.thresholds.as_ref(), &names);
    let speedup = v.speedup(raw.clock.as_ref());
    let total = phases
        .as_ref()
        .map(|ps| ps.iter().map(|p| p.duration).sum::<Duration>());
    let faults = v.faults(raw.faults.as_deref(), total);
    let cron = v.cron(raw.cron.as_ref());
    let heal = v.heal(raw.heal.as_ref());
    let kv = v.kv(raw.kv.as_ref());
    let lock = v.lock(raw.lock.as_ref());
    let queue = v.queue(raw.queue.as_ref());
    // `[kv] day` sets the run clock's speed too; two settings would disagree.
    let speedup = match (speedup, &kv) {
        (Some(s), Some((_, Some(day_speed)))) => {
            if let Some(at) = raw
                .clock
                .as_ref()
                .and_then(|c| c.get_ref().speedup.as_ref())
                .map(|v| v.span().start)
            {
                v.err(at, "clock.speedup", "[clock] speedup and [kv] day both set the run clock's speed: keep one (day = \"60s\" is the same as speedup = 1440)");
                None
            } else {
                let _ = s;
                Some(*day_speed)
            }
        }
        (s, _) => s,
    };
    if let (Some(heal), Some(total), Some(faults), Some(cron), Some(speedup)) =
        (&heal, total, &faults, &cron, speedup)
    {
        // The Worker's own crons are not known yet: only the scenario's schedules count.
        let schedules = cron.schedules.as_deref().unwrap_or_default();
        let h = heal.unwrap_or_else(|| super::plan::default_heal(total, schedules, speedup));
        v.faults_before_heal(
            raw.faults.as_deref().unwrap_or_default(),
            faults,
            total,
            h,
            heal.is_some(),
        );
    }
    if let Some(h) = raw
        .heal
        .as_ref()
        .and_then(|h| h.get_ref().duration.as_ref())
        && let (Some(Some(d)), Some(total)) = (heal, total)
        && d >= total
    {
        v.err(h.span().start, "heal.duration", format!(
            "the heal phase ({}) is as long as the whole run ({}): keep it shorter, e.g. a fifth of the run",
            humantime::format_duration(d),
            humantime::format_duration(total)
        ));
    }

    let Validator {
        errors, redactor, ..
    } = v;
    match (
        name, seed, grace, target, phases, requests, thresholds, speedup, cron, faults, heal, kv,
        lock, queue,
    ) {
        (
            Some(name),
            Some(seed),
            Some(grace),
            Some(target),
            Some(phases),
            Some(requests),
            Some(thresholds),
            Some(speedup),
            Some(cron),
            Some(faults),
            Some(heal),
            Some((kv, _)),
            Some(lock),
            Some(queue),
        ) if errors.is_empty() => Ok(Plan {
            name,
            description: raw.description.unwrap_or_default(),
            source: file.to_path_buf(),
            seed,
            target,
            phases,
            requests,
            thresholds,
            grace,
            redactor,
            speedup,
            cron,
            faults,
            heal,
            kv,
            lock,
            queue,
        }),
        _ => {
            let mut errors = errors;
            // Users read them top to bottom, like the file.
            errors.sort_by_key(|e| (e.line, e.column));
            Err(errors
                .into_iter()
                .map(|mut e| {
                    // Belt and braces: no message may carry an environment value.
                    e.message = redactor.redact(&e.message).into_owned();
                    e.field = redactor.redact(&e.field).into_owned();
                    e
                })
                .collect())
        }
    }
}

/// Offset of the first line that is not blank or a comment: where "missing ..." errors about
/// the whole file point.
fn first_content_offset(src: &str) -> usize {
    let mut at = 0;
    for line in src.split_inclusive('\n') {
        let t = line.trim();
        if !t.is_empty() && !t.starts_with('#') {
            return at + (line.len() - line.trim_start().len());
        }
        at += line.len();
    }
    0
}

struct Validator<'a> {
    src: &'a str,
    file: &'a Path,
    env: &'a dyn Fn(&str) -> Option<String>,
    errors: Vec<ScenarioError>,
    redactor: Redactor,
    /// Where errors about something missing from the whole file point.
    top: usize,
    /// Driver variables allowed in the templates being compiled (none for load requests).
    vars: Vec<String>,
}

/// A value as shown in a message: always in double quotes.
fn show(v: &Value) -> String {
    match v {
        Value::String(s) => format!("{s:?}"),
        other => format!("\"{other}\""),
    }
}

fn valid_name(s: &str) -> bool {
    (1..=64).contains(&s.len())
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

impl Validator<'_> {
    fn err(&mut self, offset: usize, field: impl Into<String>, message: impl Into<String>) {
        self.errors.push(ScenarioError::at(
            self.file,
            self.src,
            offset,
            field.into(),
            message.into(),
        ));
    }

    /// File offset of byte `off` inside string value `text` written at `span`: exact when the
    /// string is written without escapes, else the start of the string.
    fn string_offset(&self, span: &Range<usize>, text: &str, off: usize) -> usize {
        let written = self.src.get(span.clone()).unwrap_or("");
        let plain = written.len() == text.len() + 2
            && (written.starts_with('"') || written.starts_with('\''))
            && written.get(1..written.len() - 1) == Some(text);
        if plain {
            span.start + 1 + off
        } else {
            span.start
        }
    }

    /// Offset of the value of `key` inside the inline table written at `span`, found in the
    /// source text (inline tables carry no spans for their values).
    fn key_value_offset(&self, span: &Range<usize>, key: &str) -> Option<usize> {
        let written = self.src.get(span.clone())?;
        let mut from = 0;
        while let Some(i) = written[from..].find(key) {
            let k = from + i;
            let before_ok =
                k == 0 || matches!(written.as_bytes()[k - 1], b'{' | b',' | b' ' | b'\t');
            let rest = written[k + key.len()..].trim_start();
            if before_ok && let Some(v) = rest.strip_prefix('=') {
                let value = v.trim_start();
                return Some(span.start + written.len() - value.len());
            }
            from = k + key.len();
        }
        None
    }

    fn compile(
        &mut self,
        s: &Spanned<String>,
        ctx: TemplateContext,
        field: &str,
    ) -> Option<Template> {
        let vars: Vec<&str> = self.vars.iter().map(String::as_str).collect();
        match template::compile_with_vars(s.get_ref(), ctx, self.env, &vars) {
            Ok(c) => {
                for secret in c.secrets {
                    self.redactor.add(secret);
                }
                Some(c.template)
            }
            Err(errs) => {
                for e in errs {
                    let at = self.string_offset(&s.span(), s.get_ref(), e.offset);
                    self.err(at, field, e.message);
                }
                None
            }
        }
    }

    fn name(&mut self, name: Option<&Spanned<String>>) -> Option<String> {
        let Some(name) = name else {
            self.err(
                self.top,
                "name",
                "missing scenario name: add name = \"my-scenario\" at the top of the file",
            );
            return None;
        };
        if !valid_name(name.get_ref()) {
            self.err(
                name.span().start,
                "name",
                format!(
                    "invalid name {:?}: use 1 to 64 letters, digits, '.', '_' or '-' (it names the report folder), e.g. name = \"checkout-baseline\"",
                    name.get_ref()
                ),
            );
            return None;
        }
        Some(name.get_ref().clone())
    }

    fn seed(&mut self, s: &RawValue) -> Option<u64> {
        match s.get_ref() {
            Value::Integer(n) if *n >= 0 => u64::try_from(*n).ok(),
            other => {
                self.err(
                    s.span().start,
                    "seed",
                    format!(
                        "invalid seed {}: expected a whole number of 0 or more, e.g. seed = 42, or remove seed for a random one (the report records it)",
                        show(other)
                    ),
                );
                None
            }
        }
    }

    fn duration(&mut self, v: &RawValue, field: &str, example: &str) -> Option<Duration> {
        let parsed = match v.get_ref() {
            Value::String(s) => humantime::parse_duration(s.trim()).ok(),
            _ => None,
        };
        if let Some(d) = parsed.filter(|d| *d > MAX_ANY_DURATION) {
            self.err(
                v.span().start,
                field,
                format!(
                    "invalid duration {}: at most 30 days (it reads as {}), e.g. {example}",
                    show(v.get_ref()),
                    humantime::format_duration(d)
                ),
            );
            return None;
        }
        if parsed.is_none() {
            self.err(
                v.span().start,
                field,
                format!(
                    "invalid duration {}: expected a number with a unit in quotes, e.g. {example} (units: ms, s, m, h; \"1h 30m\" works too)",
                    show(v.get_ref())
                ),
            );
        }
        parsed
    }

    fn positive(
        &mut self,
        v: &RawValue,
        field: &str,
        d: Duration,
        example: &str,
    ) -> Option<Duration> {
        if d.is_zero() {
            self.err(
                v.span().start,
                field,
                format!(
                    "invalid duration {}: must be more than zero, e.g. {example}",
                    show(v.get_ref())
                ),
            );
            return None;
        }
        Some(d)
    }

    fn at_most(
        &mut self,
        v: &RawValue,
        field: &str,
        d: Duration,
        max: Duration,
        max_text: &str,
    ) -> Option<Duration> {
        if d > max {
            self.err(
                v.span().start,
                field,
                format!(
                    "duration {} is too long: the maximum is {max_text}",
                    show(v.get_ref())
                ),
            );
            return None;
        }
        Some(d)
    }

    fn int_in(
        &mut self,
        v: &RawValue,
        field: &str,
        what: &str,
        lo: i64,
        hi: i64,
        example: &str,
    ) -> Option<usize> {
        match v.get_ref() {
            Value::Integer(n) if (lo..=hi).contains(n) => usize::try_from(*n).ok(),
            other => {
                self.err(
                    v.span().start,
                    field,
                    format!(
                        "invalid {what} {}: expected a whole number from {lo} to {hi}, e.g. {example}",
                        show(other)
                    ),
                );
                None
            }
        }
    }

    // ---- faults ----

    fn faults(
        &mut self,
        faults: Option<&[Spanned<RawFault>]>,
        total: Option<Duration>,
    ) -> Option<Vec<FaultPlan>> {
        let mut out = Vec::new();
        let mut ok = true;
        for (i, f) in faults.unwrap_or_default().iter().enumerate() {
            match self.fault(i + 1, f, total) {
                Some(p) => out.push(p),
                None => ok = false,
            }
        }
        ok.then_some(out)
    }

    /// Faults must start before the heal phase, when every fault is cleared.
    fn faults_before_heal(
        &mut self,
        raw: &[Spanned<RawFault>],
        faults: &[FaultPlan],
        total: Duration,
        heal: Duration,
        explicit: bool,
    ) {
        let heal_at = total.saturating_sub(heal);
        for (i, (r, f)) in raw.iter().zip(faults).enumerate() {
            if f.at >= heal_at {
                let at = r
                    .get_ref()
                    .at
                    .as_ref()
                    .map_or(r.span().start, |v| v.span().start);
                let how = if explicit {
                    "[heal] duration"
                } else {
                    "[heal] duration (by default a fifth of the run, at least one cron period)"
                };
                self.err(at, format!("faults[{}].at", i + 1), format!(
                    "the fault starts at {} but the heal phase, when every fault is cleared, starts at {}: start it earlier, or shorten {how}",
                    humantime::format_duration(f.at),
                    humantime::format_duration(heal_at)
                ));
            }
        }
    }

    fn fault(
        &mut self,
        n: usize,
        f: &Spanned<RawFault>,
        total: Option<Duration>,
    ) -> Option<FaultPlan> {
        use crate::mockkv::fault::FaultKindName;
        use crate::mockkv::{FaultSpec, Op};
        const KINDS: &str = "daily-limit, rate-limit, error, latency, hang, reset, stale-reads";
        let at_table = f.span().start;
        let field = |name: &str| format!("faults[{n}].{name}");
        let f = f.get_ref();
        let kind = match &f.kind {
            None => {
                self.err(
                    at_table,
                    field("kind"),
                    format!("missing kind: add kind = \"daily-limit\" (one of {KINDS})"),
                );
                return None;
            }
            Some(k) => match serde_json::from_value::<FaultKindName>(serde_json::Value::String(
                k.get_ref().clone(),
            )) {
                Ok(kind) => kind,
                Err(_) => {
                    self.err(
                        k.span().start,
                        field("kind"),
                        format!(
                            "unknown fault kind {:?}: expected one of {KINDS}",
                            k.get_ref()
                        ),
                    );
                    return None;
                }
            },
        };
        let mut ops = Vec::new();
        for (j, o) in f.ops.iter().flatten().enumerate() {
            match serde_json::from_value::<Op>(serde_json::Value::String(
                o.get_ref().to_ascii_lowercase(),
            )) {
                Ok(op) => ops.push(op),
                Err(_) => {
                    self.err(o.span().start, format!("faults[{n}].ops[{}]", j + 1), format!("unknown KV operation {:?}: expected get, put, delete or list, e.g. ops = [\"put\"]", o.get_ref()));
                    return None;
                }
            }
        }
        let at = match &f.at {
            None => Duration::ZERO,
            Some(v) => self.duration(v, &field("at"), "at = \"10s\"")?,
        };
        if let (Some(total), Some(v)) = (total, &f.at)
            && at >= total
        {
            self.err(
                v.span().start,
                field("at"),
                format!(
                    "the fault starts at {} but the phases end at {}: start it earlier",
                    humantime::format_duration(at),
                    humantime::format_duration(total)
                ),
            );
            return None;
        }
        let until = match (&f.until, &f.lasts) {
            (Some(_), Some(l)) => {
                self.err(
                    l.span().start,
                    field("for"),
                    "until and for are alternatives: keep one",
                );
                return None;
            }
            (Some(u), None) => {
                let d = self.duration(u, &field("until"), "until = \"40s\"")?;
                if d <= at {
                    self.err(
                        u.span().start,
                        field("until"),
                        format!(
                            "until ({}) must come after at ({})",
                            humantime::format_duration(d),
                            humantime::format_duration(at)
                        ),
                    );
                    return None;
                }
                Some(d)
            }
            (None, Some(l)) => {
                let d = self.duration(l, &field("for"), "for = \"30s\"")?;
                Some(at + self.positive(l, &field("for"), d, "for = \"30s\"")?)
            }
            (None, None) => None,
        };
        let probability = match &f.probability {
            None => 1.0,
            Some(v) => match v.get_ref() {
                Value::Float(x) if *x > 0.0 && *x <= 1.0 => *x,
                Value::Integer(1) => 1.0,
                other => {
                    self.err(v.span().start, field("probability"), format!("invalid probability {}: expected a number above 0 and at most 1, e.g. probability = 0.25", show(other)));
                    return None;
                }
            },
        };
        let status = match &f.status {
            None => None,
            Some(v) => match v.get_ref() {
                Value::Integer(s) if (500..=599).contains(s) => Some(*s as u16),
                other => {
                    self.err(
                        v.span().start,
                        field("status"),
                        format!(
                            "invalid status {}: expected a 5xx status, e.g. status = 503",
                            show(other)
                        ),
                    );
                    return None;
                }
            },
        };
        let mut ms = |v: &Option<RawValue>, name: &str, example: &str| -> Option<Option<u64>> {
            match v {
                None => Some(None),
                Some(v) => self
                    .duration(v, &field(name), example)
                    .map(|d| Some(d.as_millis() as u64)),
            }
        };
        let latency_ms = ms(&f.latency, "latency", "latency = \"200ms\"")?;
        let jitter_ms = ms(&f.jitter, "jitter", "jitter = \"50ms\"")?;
        let lag_ms = ms(&f.lag, "lag", "lag = \"30s\"")?;
        let spec = FaultSpec {
            kind,
            ops,
            prefix: f.prefix.clone().unwrap_or_default(),
            namespace: f.namespace.clone(),
            p: probability,
            status,
            latency_ms,
            jitter_ms,
            lag_ms,
            after_ms: None,
            for_ms: None,
        };
        if let Err(e) = spec.validate() {
            self.err(at_table, format!("faults[{n}]"), e.0.clone());
            return None;
        }
        let ops_text = if spec.ops.is_empty() {
            "all ops".to_owned()
        } else {
            spec.ops
                .iter()
                .map(|o| o.as_str())
                .collect::<Vec<_>>()
                .join("+")
        };
        let prefix_text = if spec.prefix.is_empty() {
            String::new()
        } else {
            format!(" {}*", spec.prefix)
        };
        let label = format!("{} {ops_text}{prefix_text}", kind.as_str());
        Some(FaultPlan {
            at,
            until,
            spec,
            label,
        })
    }

    // ---- clock and cron ----

    fn speedup(&mut self, clock: Option<&Spanned<RawClock>>) -> Option<f64> {
        const MAX: f64 = 1_000_000.0;
        let Some(v) = clock.and_then(|c| c.get_ref().speedup.as_ref()) else {
            return Some(1.0);
        };
        let n = match v.get_ref() {
            toml::Value::Integer(i) => Some(*i as f64),
            toml::Value::Float(f) => Some(*f),
            _ => None,
        };
        match n {
            Some(n) if n > 0.0 && n <= MAX && n.is_finite() => Some(n),
            _ => {
                self.err(
                    v.span().start,
                    "clock.speedup",
                    format!(
                        "invalid speedup {}: expected run-clock seconds per real second, a number above 0 and at most 1000000, e.g. speedup = 60 (a minute of cron time each second)",
                        show(v.get_ref())
                    ),
                );
                None
            }
        }
    }

    fn cron(&mut self, cron: Option<&Spanned<RawCron>>) -> Option<CronPlan> {
        let Some(c) = cron.map(Spanned::get_ref) else {
            return Some(CronPlan::default());
        };
        let mut ok = true;
        let schedules = c.schedules.as_ref().map(|list| {
            list.iter()
                .enumerate()
                .filter_map(|(i, e)| match crate::cron::parse(e.get_ref()) {
                    Ok(_) => Some(e.get_ref().clone()),
                    Err(msg) => {
                        ok = false;
                        self.err(
                            e.span().start,
                            format!("cron.schedules[{}]", i + 1),
                            format!("{msg} Write 5 fields (minute hour day month weekday, UTC), e.g. \"*/5 * * * *\""),
                        );
                        None
                    }
                })
                .collect()
        });
        let max_gap = self.cron_max_gap(c.max_gap.as_ref());
        let status = self.cron_status(c.status.as_ref());
        ok.then_some(())?;
        Some(CronPlan {
            schedules,
            fire: c.fire.unwrap_or(true),
            max_gap: max_gap?,
            status: status?,
        })
    }

    // ---- target ----

    fn target(&mut self, t: Option<&Spanned<RawTarget>>) -> Option<TargetPlan> {
        const FIX: &str = "add url = \"http://127.0.0.1:8787\" for a running server, worker = \"path/to/worker-dir\" for a Worker run locally under miniflare, or builtin = true for kvchaos's own test server";
        let Some(t) = t else {
            self.err(
                0,
                "target",
                format!("missing [target] table: add [target] and under it {FIX}"),
            );
            return None;
        };
        let span = t.span();
        let t = t.get_ref();
        let allow_hosts = self.allow_hosts(t.allow_hosts.as_deref());
        let builtin = t.builtin.as_ref().filter(|b| *b.get_ref());
        let chosen = usize::from(t.url.is_some())
            + usize::from(t.worker.is_some())
            + usize::from(builtin.is_some());
        let kind = if chosen > 1 {
            let at = [
                t.worker.as_ref().map(|w| w.span().start),
                builtin.map(|b| b.span().start),
            ]
            .into_iter()
            .flatten()
            .max()
            .unwrap_or(span.start);
            self.err(at, "target", "url, worker and builtin = true are alternatives: keep exactly one (url for a running server, worker for a local Worker directory, builtin for kvchaos's own test server)");
            None
        } else if let Some(url) = &t.url {
            self.url(url, allow_hosts.as_deref())
        } else if let Some(w) = &t.worker {
            self.worker_dir(w).map(TargetKind::Worker)
        } else if builtin.is_some() {
            Some(TargetKind::Builtin)
        } else {
            let (at, msg) = match &t.builtin {
                Some(b) => (
                    b.span().start,
                    format!("builtin = false and no url or worker: {FIX}"),
                ),
                None => (span.start, format!("no target: {FIX}")),
            };
            self.err(at, "target", msg);
            None
        };
        let ca_file = match &t.ca_file {
            None => Some(None),
            Some(f) => self.ca_file(f).map(Some),
        };
        let kv_binding = match &t.kv_binding {
            None => Some(crate::local::KvBindingMode::Workerd),
            Some(b) => match b.get_ref().as_str() {
                "workerd" => Some(crate::local::KvBindingMode::Workerd),
                "wrapped" => Some(crate::local::KvBindingMode::Wrapped),
                other => {
                    self.err(b.span().start, "target.kv_binding", format!("unknown KV binding {other:?}: expected \"workerd\" (workerd's own KV class; errors read \"KV PUT failed: 429 ...\") or \"wrapped\" (daily-limit errors read exactly as in production)"));
                    None
                }
            },
        };
        Some(TargetPlan {
            kind: kind?,
            allow_hosts: allow_hosts?,
            ca_file: ca_file?,
            kv_binding: kv_binding?,
        })
    }

    /// Resolves `worker` against the scenario's folder and checks it holds a wrangler config.
    fn worker_dir(&mut self, w: &Spanned<String>) -> Option<PathBuf> {
        let raw = Path::new(w.get_ref());
        let dir = match self.file.parent() {
            Some(parent) if raw.is_relative() => parent.join(raw),
            _ => raw.to_path_buf(),
        };
        if crate::scenario::worker_config(&dir).is_some() {
            return Some(dir);
        }
        let what = if dir.is_dir() {
            "has no wrangler.toml, wrangler.jsonc or wrangler.json"
        } else {
            "is not a directory"
        };
        self.err(
            w.span().start,
            "target.worker",
            format!("worker \"{}\" {what}: give the Worker's directory, relative to the scenario file, e.g. worker = \"../mock/workers/d1-do-control-plane\"", dir.display()),
        );
        None
    }

    /// Resolves `ca_file` against the scenario's folder and checks it holds PEM certificates.
    fn ca_file(&mut self, f: &Spanned<String>) -> Option<PathBuf> {
        use rustls::pki_types::CertificateDer;
        use rustls::pki_types::pem::PemObject;
        let raw = Path::new(f.get_ref());
        let path = match self.file.parent() {
            Some(dir) if raw.is_relative() => dir.join(raw),
            _ => raw.to_path_buf(),
        };
        let at = f.span().start;
        let certs = match CertificateDer::pem_file_iter(&path) {
            Ok(iter) => iter.collect::<Result<Vec<_>, _>>(),
            Err(e) => {
                self.err(at, "target.ca_file", format!("cannot read CA file \"{}\": {e}: give a PEM file of root certificates, relative to the scenario file", path.display()));
                return None;
            }
        };
        match certs {
            Ok(c) if !c.is_empty() => Some(path),
            Ok(_) => {
                self.err(at, "target.ca_file", format!("CA file \"{}\" holds no certificate: expected PEM blocks \"-----BEGIN CERTIFICATE-----\"", path.display()));
                None
            }
            Err(e) => {
                self.err(
                    at,
                    "target.ca_file",
                    format!("CA file \"{}\" is not valid PEM: {e}", path.display()),
                );
                None
            }
        }
    }

    fn allow_hosts(&mut self, hosts: Option<&[Spanned<String>]>) -> Option<Vec<String>> {
        let mut out = Vec::new();
        let mut ok = true;
        for (i, h) in hosts.unwrap_or_default().iter().enumerate() {
            let field = format!("target.allow_hosts[{}]", i + 1);
            let s = h.get_ref().trim().to_ascii_lowercase();
            let bare = s.strip_prefix("*.").unwrap_or(&s);
            let valid = !bare.is_empty()
                && bare
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']'))
                && !bare.starts_with('.')
                && !bare.ends_with('.');
            if !valid {
                ok = false;
                self.err(
                    h.span().start,
                    field,
                    format!(
                        "invalid host {:?}: write a bare host name without scheme, port or path, or \"*.\" and a domain for its subdomains, e.g. allow_hosts = [\"canary.example.workers.dev\", \"*.example.workers.dev\"]",
                        h.get_ref()
                    ),
                );
            } else {
                out.push(s);
            }
        }
        ok.then_some(out)
    }

    fn url(&mut self, url: &Spanned<String>, allow_hosts: Option<&[String]>) -> Option<TargetKind> {
        const EXAMPLE: &str = "e.g. url = \"http://127.0.0.1:8787\"";
        let field = "target.url";
        let at = url.span().start;
        let tpl = self.compile(url, TemplateContext::Url, field)?;
        // Only literals and environment values remain, so rendering needs no real state.
        let mut rng = SmallRng::seed_from_u64(0);
        let mut text = String::new();
        tpl.render(
            &mut RenderCx {
                seq: 0,
                rng: &mut rng,
                vars: None,
            },
            &mut text,
        );
        let source = url.get_ref();
        let parsed = match url::Url::parse(text.trim()) {
            Ok(u) => u,
            Err(e) => {
                self.err(at, field, format!("invalid URL {source:?}: {e}; {EXAMPLE}"));
                return None;
            }
        };
        if !matches!(parsed.scheme(), "http" | "https") {
            self.err(
                at,
                field,
                format!(
                    "unsupported scheme {:?} in {source:?}: only http and https targets are supported, {EXAMPLE}",
                    parsed.scheme()
                ),
            );
            return None;
        }
        if !parsed.username().is_empty() || parsed.password().is_some() {
            // The value is not quoted: it holds a credential.
            self.err(at, field, "the URL contains a user name or password, which would end up in reports: remove \"user:password@\" and send a header instead, e.g. headers = { authorization = \"Bearer {{env.TOKEN}}\" }");
            return None;
        }
        if parsed.query().is_some() || parsed.fragment().is_some() {
            self.err(
                at,
                field,
                format!("the target URL {source:?} has a query or fragment: request paths are appended to it, so put queries in requests.path instead, {EXAMPLE}"),
            );
            return None;
        }
        if let Some(hosts) = allow_hosts
            && let Err(msg) = super::check_target_allowed(&parsed, hosts)
        {
            self.err(at, field, msg);
            return None;
        }
        Some(TargetKind::Url(parsed))
    }

    // ---- phases ----

    fn phases(&mut self, phases: Option<&Spanned<Vec<Spanned<RawPhase>>>>) -> Option<Vec<Phase>> {
        const FIX: &str = "add a [[phases]] table with duration = \"30s\" and rate = 100";
        let Some(phases) = phases.filter(|p| !p.get_ref().is_empty()) else {
            let at = phases.map_or(self.top, |p| p.span().start);
            self.err(
                at,
                "phases",
                format!("no phases: at least one [[phases]] table is required; {FIX}"),
            );
            return None;
        };
        if phases.get_ref().len() > MAX_PHASES {
            self.err(
                phases.span().start,
                "phases",
                format!(
                    "{} [[phases]] tables, more than {MAX_PHASES}: use ramps (rate = {{ from = 10, to = 500 }}) instead of many short phases",
                    phases.get_ref().len()
                ),
            );
            return None;
        }
        let mut out = Vec::new();
        let mut ok = true;
        for (i, p) in phases.get_ref().iter().enumerate() {
            match self.phase(p, i + 1) {
                Some(p) => out.push(p),
                None => ok = false,
            }
        }
        if !ok {
            return None;
        }
        let total: Duration = out.iter().map(|p| p.duration).sum();
        if total > MAX_TOTAL {
            self.err(
                phases.span().start,
                "phases",
                format!(
                    "the phases last {} in total, more than the 7 day maximum: shorten the phase durations",
                    humantime::format_duration(total)
                ),
            );
            return None;
        }
        Some(out)
    }

    fn phase(&mut self, p: &Spanned<RawPhase>, n: usize) -> Option<Phase> {
        let base = format!("phases[{n}]");
        let header = p.span().start;
        let raw = p.get_ref();
        let mut ok = true;

        let name = match &raw.name {
            Some(s)
                if s.get_ref().is_empty()
                    || s.get_ref().chars().count() > 64
                    || s.get_ref().contains(char::is_control) =>
            {
                self.err(
                    s.span().start,
                    format!("{base}.name"),
                    format!("invalid phase name {:?}: use 1 to 64 characters on one line, e.g. name = \"warm-up\"", s.get_ref()),
                );
                ok = false;
                None
            }
            Some(s) => Some(s.get_ref().clone()),
            None => None,
        };

        let field = format!("{base}.duration");
        let duration = match &raw.duration {
            None => {
                self.err(
                    header,
                    field,
                    "missing duration: add duration = \"30s\" to this phase",
                );
                None
            }
            Some(d) => self
                .duration(d, &field, "duration = \"30s\"")
                .and_then(|x| self.positive(d, &field, x, "duration = \"30s\"")),
        };

        let kinds: Vec<(&str, &RawValue)> = [
            ("rate", &raw.rate),
            ("vus", &raw.vus),
            ("pause", &raw.pause),
        ]
        .into_iter()
        .filter_map(|(k, v)| v.as_ref().map(|v| (k, v)))
        .collect();
        let load = match kinds.as_slice() {
            [] => {
                self.err(header, base.clone(), "no load for this phase: add exactly one of rate = 500 (open loop), rate = { from = 10, to = 500 } (ramp), vus = 16 (closed loop) or pause = true (no traffic)");
                None
            }
            [(kind, v)] => match *kind {
                "rate" => self.rate(v, &format!("{base}.rate")),
                "vus" => self
                    .int_in(
                        v,
                        &format!("{base}.vus"),
                        "vus",
                        1,
                        MAX_CONCURRENCY,
                        "vus = 16",
                    )
                    .map(Load::Vus),
                _ => self.pause(v, &format!("{base}.pause")),
            },
            [(first, _), (second, v), ..] => {
                self.err(
                    v.span().start,
                    format!("{base}.{second}"),
                    format!("{first} and {second} cannot be used together in one phase: keep exactly one of rate, vus or pause, e.g. rate = 500"),
                );
                None
            }
        };

        let load = match (load, &raw.max_in_flight) {
            (Some(Load::Rate { from, to, .. }), Some(m)) => self
                .int_in(
                    m,
                    &format!("{base}.max_in_flight"),
                    "max_in_flight",
                    1,
                    MAX_CONCURRENCY,
                    "max_in_flight = 256",
                )
                .map(|max_in_flight| Load::Rate {
                    from,
                    to,
                    max_in_flight,
                }),
            (Some(load @ (Load::Vus(_) | Load::Pause)), Some(m)) => {
                let why = if matches!(load, Load::Vus(_)) {
                    "a vus phase is bounded by vus itself"
                } else {
                    "a pause phase sends nothing"
                };
                self.err(
                    m.span().start,
                    format!("{base}.max_in_flight"),
                    format!("max_in_flight applies only to rate phases (open loop); {why}: remove max_in_flight from this phase"),
                );
                None
            }
            (load, _) => load,
        };
        if !ok {
            return None;
        }
        Some(Phase {
            name,
            duration: duration?,
            load: load?,
        })
    }

    fn rate_number(v: &Value) -> Option<f64> {
        let n = match v {
            Value::Integer(i) => *i as f64,
            Value::Float(f) => *f,
            _ => return None,
        };
        (n.is_finite() && (0.0..=MAX_RATE).contains(&n)).then_some(n)
    }

    fn rate(&mut self, v: &RawValue, field: &str) -> Option<Load> {
        const FIX: &str = "expected requests per second, e.g. rate = 500, or a ramp, e.g. rate = { from = 10, to = 500 }";
        let at = v.span().start;
        let (from, to) = match v.get_ref() {
            Value::Table(t) => {
                if let Some(k) = t.keys().find(|k| !matches!(k.as_str(), "from" | "to")) {
                    self.err(at, format!("{field}.{k}"), format!("unknown ramp key {k:?}: a ramp has only from and to, e.g. rate = {{ from = 10, to = 500 }}"));
                    return None;
                }
                let (Some(from), Some(to)) = (t.get("from"), t.get("to")) else {
                    let missing = if t.contains_key("from") { "to" } else { "from" };
                    self.err(at, field, format!("the ramp has no {missing}: give both ends in requests per second, e.g. rate = {{ from = 10, to = 500 }}"));
                    return None;
                };
                let mut ends = [0.0; 2];
                for (slot, (name, val)) in ends.iter_mut().zip([("from", from), ("to", to)]) {
                    match Self::rate_number(val) {
                        Some(n) => *slot = n,
                        None => {
                            self.err(at, format!("{field}.{name}"), format!("invalid ramp {name} {}: expected requests per second from 0 to 10000000, e.g. rate = {{ from = 10, to = 500 }}", show(val)));
                            return None;
                        }
                    }
                }
                if ends == [0.0, 0.0] {
                    self.err(at, field, "a ramp from 0 to 0 sends nothing: use pause = true for a quiet phase, or raise to, e.g. rate = { from = 0, to = 500 }");
                    return None;
                }
                (ends[0], ends[1])
            }
            other => match Self::rate_number(other) {
                Some(n) if n > 0.0 => (n, n),
                Some(_) => {
                    self.err(at, field, "invalid rate \"0\": must be more than 0; for a quiet phase use pause = true, e.g. rate = 500");
                    return None;
                }
                None => {
                    self.err(
                        at,
                        field,
                        format!("invalid rate {}: {FIX} (at most 10000000)", show(other)),
                    );
                    return None;
                }
            },
        };
        Some(Load::Rate {
            from,
            to,
            max_in_flight: DEFAULT_MAX_IN_FLIGHT,
        })
    }

    fn pause(&mut self, v: &RawValue, field: &str) -> Option<Load> {
        if v.get_ref() == &Value::Boolean(true) {
            return Some(Load::Pause);
        }
        self.err(
            v.span().start,
            field,
            format!("invalid pause {}: write pause = true for a phase without traffic, or remove it and use rate or vus", show(v.get_ref())),
        );
        None
    }

    // ---- requests ----

    fn requests(
        &mut self,
        reqs: Option<&Spanned<Vec<Spanned<RawRequest>>>>,
    ) -> Option<Vec<RequestPlan>> {
        let Some(reqs) = reqs.filter(|r| !r.get_ref().is_empty()) else {
            let at = reqs.map_or(self.top, |r| r.span().start);
            self.err(at, "requests", "no requests: at least one is required; add a [[requests]] table with name = \"get-item\" and path = \"/items/{{random_key 1000}}\"");
            return None;
        };
        if reqs.get_ref().len() > MAX_REQUESTS {
            self.err(
                reqs.span().start,
                "requests",
                format!(
                    "{} [[requests]] tables, more than the {MAX_REQUESTS} a run keeps histograms for: merge requests that differ only by a value into one with a template, e.g. path = \"/items/{{{{random_key 1000}}}}\"",
                    reqs.get_ref().len()
                ),
            );
            return None;
        }
        let mut out = Vec::new();
        let mut ok = true;
        let mut seen: Vec<(String, usize)> = Vec::new();
        for (i, r) in reqs.get_ref().iter().enumerate() {
            let n = i + 1;
            if let Some(name) = &r.get_ref().name {
                if let Some((_, first)) = seen.iter().find(|(s, _)| s == name.get_ref()) {
                    self.err(
                        name.span().start,
                        format!("requests[{n}].name"),
                        format!("duplicate request name {:?}, already used by requests[{first}]: names must be unique, e.g. name = \"{}-2\"", name.get_ref(), name.get_ref()),
                    );
                    ok = false;
                } else {
                    seen.push((name.get_ref().clone(), n));
                }
            }
            match self.request(r, n) {
                Some(r) => out.push(r),
                None => ok = false,
            }
        }
        ok.then_some(out)
    }

    fn request(&mut self, r: &Spanned<RawRequest>, n: usize) -> Option<RequestPlan> {
        let base = format!("requests[{n}]");
        let header = r.span().start;
        let raw = r.get_ref();
        let errors_before = self.errors.len();

        let name = match &raw.name {
            None => {
                self.err(
                    header,
                    format!("{base}.name"),
                    "missing request name: add name = \"get-item\" (metrics and thresholds use it)",
                );
                None
            }
            Some(s) if s.get_ref() == "all" => {
                self.err(s.span().start, format!("{base}.name"), "the name \"all\" is reserved for thresholds over every request: choose another, e.g. name = \"get-all\"");
                None
            }
            Some(s) if !valid_name(s.get_ref()) => {
                self.err(
                    s.span().start,
                    format!("{base}.name"),
                    format!("invalid request name {:?}: use 1 to 64 letters, digits, '.', '_' or '-', e.g. name = \"get-item\"", s.get_ref()),
                );
                None
            }
            Some(s) => Some(s.get_ref().clone()),
        };

        let weight = match &raw.weight {
            None => Some(1),
            Some(w) => self
                .int_in(
                    w,
                    &format!("{base}.weight"),
                    "weight",
                    1,
                    MAX_WEIGHT,
                    "weight = 3",
                )
                .and_then(|w| u32::try_from(w).ok()),
        };

        let method = self.method(raw.method.as_ref(), &base);
        let path = self.path(raw.path.as_ref(), header, &base);
        let headers = self.headers(raw.headers.as_ref(), &base);
        let body = self.body(raw.body.as_ref(), raw.json.as_ref(), &base);
        let timeout = self.timeout(raw.timeout.as_ref(), &base);

        if self.errors.len() > errors_before {
            return None;
        }
        Some(RequestPlan {
            name: name?,
            weight: weight?,
            method: method?,
            path: path?,
            headers: headers?,
            body: body?,
            timeout: timeout?,
        })
    }

    fn method(&mut self, method: Option<&Spanned<String>>, base: &str) -> Option<Method> {
        match method {
            None => Some(Method::GET),
            Some(m) => {
                let upper = m.get_ref().trim().to_ascii_uppercase();
                if METHODS.contains(&upper.as_str()) {
                    Method::from_bytes(upper.as_bytes()).ok()
                } else {
                    self.err(
                        m.span().start,
                        format!("{base}.method"),
                        format!(
                            "unsupported method {:?}: use one of {}, e.g. method = \"POST\"",
                            m.get_ref(),
                            METHODS.join(", ")
                        ),
                    );
                    None
                }
            }
        }
    }

    fn path(
        &mut self,
        path: Option<&Spanned<String>>,
        header: usize,
        base: &str,
    ) -> Option<Template> {
        let field = format!("{base}.path");
        if let Some(p) = path.filter(|p| p.get_ref().len() > MAX_PATH) {
            self.err(
                p.span().start,
                field,
                format!(
                    "the path is {} bytes long, more than the {MAX_PATH} a request may carry: shorten it",
                    p.get_ref().len()
                ),
            );
            return None;
        }
        match path {
            None => {
                self.err(header, field, "missing path: add path = \"/items/{{random_key 1000}}\" (it is appended to the target URL)");
                None
            }
            Some(p) if !p.get_ref().starts_with('/') => {
                self.err(
                    p.span().start,
                    field,
                    format!(
                        "invalid path {:?}: it must start with \"/\", e.g. path = \"/{}\"",
                        p.get_ref(),
                        p.get_ref().trim_start_matches('/')
                    ),
                );
                None
            }
            Some(p) => self.compile(p, TemplateContext::Path, &field),
        }
    }

    fn body(
        &mut self,
        body: Option<&Spanned<String>>,
        json: Option<&Spanned<RawJson>>,
        base: &str,
    ) -> Option<Option<BodyPlan>> {
        match (body, json) {
            (Some(_), Some(j)) => {
                self.err(j.span().start, format!("{base}.json"), "body and json cannot be used together: keep body = \"...\" for raw text, or json = { ... } for a JSON body");
                None
            }
            (Some(b), None) => self
                .compile(b, TemplateContext::Body, &format!("{base}.body"))
                .map(|template| {
                    Some(BodyPlan {
                        template,
                        content_type: None,
                    })
                }),
            (None, Some(j)) => self.json_body(j, &format!("{base}.json")).map(|template| {
                Some(BodyPlan {
                    template,
                    content_type: Some("application/json"),
                })
            }),
            (None, None) => Some(None),
        }
    }

    fn timeout(&mut self, timeout: Option<&RawValue>, base: &str) -> Option<Duration> {
        let field = format!("{base}.timeout");
        match timeout {
            None => Some(DEFAULT_TIMEOUT),
            Some(t) => self
                .duration(t, &field, "timeout = \"10s\"")
                .and_then(|d| self.positive(t, &field, d, "timeout = \"10s\""))
                .and_then(|d| self.at_most(t, &field, d, MAX_TIMEOUT, "10m")),
        }
    }

    fn headers(
        &mut self,
        headers: Option<&Spanned<super::raw::OrderedMap<Spanned<String>>>>,
        base: &str,
    ) -> Option<Vec<(HeaderName, Template)>> {
        let mut out = Vec::new();
        let mut ok = true;
        let Some(headers) = headers else {
            return Some(out);
        };
        for (key, value) in &headers.get_ref().0 {
            let field = format!("{base}.headers.{}", key.get_ref());
            let name = match HeaderName::from_bytes(key.get_ref().as_bytes()) {
                Ok(n) => n,
                Err(_) => {
                    self.err(
                        key.span().start,
                        field,
                        format!("invalid header name {:?}: use letters, digits and - (no spaces or ':'), e.g. headers = {{ \"x-api-key\" = \"{{{{env.API_KEY}}}}\" }}", key.get_ref()),
                    );
                    ok = false;
                    continue;
                }
            };
            let why = match name.as_str() {
                "host" => Some("it comes from the target URL"),
                "content-length" => Some("it is computed from the body"),
                "transfer-encoding" | "connection" => {
                    Some("the HTTP client manages the connection and body framing itself")
                }
                _ => None,
            };
            if let Some(why) = why {
                self.err(
                    key.span().start,
                    field,
                    format!("header {:?} cannot be set: {why}; remove it", key.get_ref()),
                );
                ok = false;
                continue;
            }
            match self.compile(value, TemplateContext::Header, &field) {
                Some(t) => out.push((name, t)),
                None => ok = false,
            }
        }
        ok.then_some(out)
    }

    /// The driver variable `s` consists of, when it is exactly `{{name}}`.
    fn whole_var(&self, s: &str) -> Option<String> {
        let inner = s.trim().strip_prefix("{{")?.strip_suffix("}}")?.trim();
        self.vars.iter().find(|v| *v == inner).cloned()
    }

    /// Builds the JSON text of a `json` body as one template: JSON syntax and escaped literal
    /// text as literals, placeholders inside strings as parts.
    fn json_body(&mut self, j: &Spanned<RawJson>, field: &str) -> Option<Template> {
        let mut parts: Vec<Part> = Vec::new();
        let mut source = String::new();
        let before = self.errors.len();
        self.json_value(j, field, &mut parts, &mut source);
        (self.errors.len() == before).then(|| Template::from_parts(parts, source))
    }

    fn json_value(
        &mut self,
        v: &Spanned<RawJson>,
        field: &str,
        parts: &mut Vec<Part>,
        source: &mut String,
    ) {
        let lit = |parts: &mut Vec<Part>, source: &mut String, s: &str| {
            source.push_str(s);
            if let Some(Part::Literal(prev)) = parts.last_mut() {
                prev.push_str(s);
            } else {
                parts.push(Part::Literal(s.to_owned()));
            }
        };
        match v.get_ref() {
            RawJson::String(s) if self.whole_var(s).is_some() => {
                // A string that is exactly one driver variable takes the value's JSON type.
                let name = self.whole_var(s).unwrap_or_default();
                source.push_str(&serde_json::Value::String(s.clone()).to_string());
                parts.push(Part::Var {
                    name,
                    mode: template::VarMode::JsonValue,
                });
            }
            RawJson::String(s) => {
                let spanned = Spanned::new(v.span(), s.clone());
                let Some(t) = self.compile(&spanned, TemplateContext::JsonString, field) else {
                    return;
                };
                lit(parts, source, "\"");
                for p in t.parts() {
                    match p {
                        Part::Literal(l) => {
                            if let Some(Part::Literal(prev)) = parts.last_mut() {
                                prev.push_str(l);
                            } else {
                                parts.push(p.clone());
                            }
                        }
                        other => parts.push(other.clone()),
                    }
                }
                // The source keeps the placeholders as written, never environment values.
                let escaped = serde_json::Value::String(s.clone()).to_string();
                source.push_str(&escaped[1..escaped.len() - 1]);
                lit(parts, source, "\"");
            }
            RawJson::Integer(i) => lit(parts, source, &i.to_string()),
            RawJson::Bool(b) => lit(parts, source, &b.to_string()),
            RawJson::Float(f) => match serde_json::Number::from_f64(*f) {
                Some(n) => lit(parts, source, &n.to_string()),
                None => self.err(
                    v.span().start,
                    field,
                    format!("invalid JSON number \"{f}\": JSON has no nan or inf, e.g. use a string or a finite number like 1.5"),
                ),
            },
            RawJson::Array(items) => {
                lit(parts, source, "[");
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        lit(parts, source, ",");
                    }
                    self.json_value(item, &format!("{field}[{}]", i + 1), parts, source);
                }
                lit(parts, source, "]");
            }
            RawJson::Table(entries) => {
                lit(parts, source, "{");
                for (i, (k, item)) in entries.iter().enumerate() {
                    if i > 0 {
                        lit(parts, source, ",");
                    }
                    lit(parts, source, &serde_json::Value::String(k.clone()).to_string());
                    lit(parts, source, ":");
                    self.json_value(item, &format!("{field}.{k}"), parts, source);
                }
                lit(parts, source, "}");
            }
        }
    }

    // ---- thresholds ----

    fn thresholds(
        &mut self,
        raw: Option<&Spanned<super::raw::OrderedMap<Spanned<Vec<RawValue>>>>>,
        names: &[String],
    ) -> Option<Vec<Threshold>> {
        let mut out = Vec::new();
        let mut ok = true;
        let Some(raw) = raw else {
            return Some(out);
        };
        for (key, exprs) in &raw.get_ref().0 {
            let scope = if key.get_ref() == "all" {
                ThresholdScope::All
            } else if names.contains(key.get_ref()) {
                ThresholdScope::Request(key.get_ref().clone())
            } else {
                let known = if names.is_empty() {
                    String::new()
                } else {
                    format!(" or one of the request names: {}", names.join(", "))
                };
                self.err(
                    key.span().start,
                    format!("thresholds.{}", key.get_ref()),
                    format!(
                        "no request named {:?}: thresholds are keyed by \"all\"{known}",
                        key.get_ref()
                    ),
                );
                ok = false;
                continue;
            };
            for (j, e) in exprs.get_ref().iter().enumerate() {
                let field = format!("thresholds.{}[{}]", key.get_ref(), j + 1);
                match self.threshold(e, &field, &scope) {
                    Some(t) => out.push(t),
                    None => ok = false,
                }
            }
        }
        ok.then_some(out)
    }

    fn threshold(
        &mut self,
        e: &RawValue,
        field: &str,
        scope: &ThresholdScope,
    ) -> Option<Threshold> {
        const SHAPE: &str = "expected an expression like \"p99 < 500ms\", or a table like { expr = \"error_rate < 5%\", abort = true }";
        let at = e.span().start;
        let (expr, abort) = match e.get_ref() {
            Value::String(s) => (s.clone(), false),
            Value::Table(t) => {
                if let Some(k) = t.keys().find(|k| !matches!(k.as_str(), "expr" | "abort")) {
                    self.err(
                        at,
                        format!("{field}.{k}"),
                        format!("unknown key {k:?}: {SHAPE}"),
                    );
                    return None;
                }
                let abort = match t.get("abort") {
                    None => false,
                    Some(Value::Boolean(b)) => *b,
                    Some(other) => {
                        self.err(
                            at,
                            format!("{field}.abort"),
                            format!(
                                "invalid abort {}: expected true or false, e.g. abort = true",
                                show(other)
                            ),
                        );
                        return None;
                    }
                };
                match t.get("expr") {
                    Some(Value::String(s)) => (s.clone(), abort),
                    Some(other) => {
                        self.err(
                            at,
                            format!("{field}.expr"),
                            format!("invalid expr {}: {SHAPE}", show(other)),
                        );
                        return None;
                    }
                    None => {
                        self.err(at, field, format!("missing expr: {SHAPE}"));
                        return None;
                    }
                }
            }
            other => {
                self.err(
                    at,
                    field,
                    format!("invalid threshold {}: {SHAPE}", show(other)),
                );
                return None;
            }
        };
        let at = if matches!(e.get_ref(), Value::Table(_)) {
            self.key_value_offset(&e.span(), "expr").unwrap_or(at)
        } else {
            at
        };
        match threshold::parse(&expr) {
            Ok(p) => Some(Threshold {
                scope: scope.clone(),
                metric: p.metric,
                op: p.op,
                limit: p.limit,
                expr: expr.trim().to_owned(),
                abort,
            }),
            Err(msg) => {
                self.err(at, field, msg);
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::plan::{CmpOp, LatencyKind, LatencyStat, ThresholdMetric};
    use crate::scenario::{ScenarioErrors, parse_str};

    fn env(name: &str) -> Option<String> {
        (name == "API_KEY").then(|| "tok\"en".to_owned())
    }

    fn parse(text: &str) -> Result<Plan, ScenarioErrors> {
        parse_str(text, Path::new("t.toml"), &env)
    }

    fn plan(text: &str) -> Plan {
        parse(text).unwrap_or_else(|e| panic!("{e}"))
    }

    fn errors(text: &str) -> Vec<String> {
        match parse(text) {
            Ok(_) => panic!("expected errors"),
            Err(e) => e.0.iter().map(ToString::to_string).collect(),
        }
    }

    const FULL: &str = r#"
name = "full"
seed = 9
grace = "2s"
[target]
url = "https://api.example.com/base"
allow_hosts = ["API.example.com"]
[[phases]]
duration = "1m 30s"
rate = { from = 0, to = 2.5 }
max_in_flight = 3
[[phases]]
name = "users"
duration = "250ms"
vus = 2
[[phases]]
duration = "1s"
pause = true
[[requests]]
name = "a"
method = "post"
path = "/k/{{env.API_KEY}}"
headers = { "X-Key" = "{{ env.API_KEY }}" }
json = { s = "{{env.API_KEY}}-{{seq}}", n = [1, 2.5, true] }
timeout = "3s"
[[requests]]
name = "b"
path = "/b"
body = "x"
[thresholds]
all = ["p99.9 <= 1.5s"]
b = [{ expr = "service_max > 20us", abort = true }, "dropped_rate < 2%"]
"#;

    #[test]
    fn a_full_file_becomes_the_expected_plan() {
        let p = plan(FULL);
        assert_eq!(p.name, "full");
        assert_eq!(p.seed, 9);
        assert_eq!(p.grace, Duration::from_secs(2));
        assert_eq!(p.description, "");
        assert!(
            matches!(&p.target.kind, TargetKind::Url(u) if u.as_str() == "https://api.example.com/base")
        );
        assert_eq!(p.target.allow_hosts, vec!["api.example.com".to_owned()]);
        assert_eq!(p.phases.len(), 3);
        assert_eq!(p.phases[0].duration, Duration::from_secs(90));
        assert_eq!(
            p.phases[0].load,
            Load::Rate {
                from: 0.0,
                to: 2.5,
                max_in_flight: 3
            }
        );
        assert_eq!(p.phases[1].name.as_deref(), Some("users"));
        assert_eq!(p.phases[1].load, Load::Vus(2));
        assert_eq!(p.phases[2].load, Load::Pause);
        assert_eq!(p.duration(), Duration::from_millis(91_250));

        let a = &p.requests[0];
        assert_eq!(a.method, Method::POST);
        assert_eq!(a.weight, 1);
        assert_eq!(a.timeout, Duration::from_secs(3));
        assert_eq!(a.headers[0].0.as_str(), "x-key");
        let body = a
            .body
            .as_ref()
            .map(|b| (b.template.source().to_owned(), b.content_type));
        assert_eq!(
            body,
            Some((
                r#"{"s":"{{env.API_KEY}}-{{seq}}","n":[1,2.5,true]}"#.to_owned(),
                Some("application/json")
            ))
        );
        let mut rng = SmallRng::seed_from_u64(1);
        let mut out = String::new();
        if let Some(b) = &a.body {
            b.template.render(
                &mut RenderCx {
                    seq: 4,
                    rng: &mut rng,
                    vars: None,
                },
                &mut out,
            );
        }
        assert_eq!(out, r#"{"s":"tok\"en-4","n":[1,2.5,true]}"#);
        let mut path = String::new();
        a.path.render(
            &mut RenderCx {
                seq: 0,
                rng: &mut rng,
                vars: None,
            },
            &mut path,
        );
        assert_eq!(path, "/k/tok%22en");
        assert_eq!(p.redactor.redact("tok\"en"), "***");
        assert_eq!(p.requests[1].method, Method::GET);
        assert_eq!(p.requests[1].timeout, DEFAULT_TIMEOUT);
        assert_eq!(
            p.requests[1].body.as_ref().and_then(|b| b.content_type),
            None
        );

        assert_eq!(p.thresholds.len(), 3);
        assert_eq!(p.thresholds[0].scope, ThresholdScope::All);
        assert_eq!(
            p.thresholds[0].metric,
            ThresholdMetric::Latency {
                kind: LatencyKind::Corrected,
                stat: LatencyStat::Percentile(99.9)
            }
        );
        assert_eq!(p.thresholds[0].limit, 1_500_000.0);
        assert_eq!(p.thresholds[1].scope, ThresholdScope::Request("b".into()));
        assert!(p.thresholds[1].abort);
        assert_eq!(p.thresholds[1].op, CmpOp::Gt);
        assert_eq!(p.thresholds[2].limit, 0.02);
        assert_eq!(p.thresholds[2].expr, "dropped_rate < 2%");
    }

    #[test]
    fn defaults_apply_and_a_missing_seed_is_picked() {
        let p = plan(
            "name = \"d\"\n[target]\nbuiltin = true\n[[phases]]\nduration = \"1s\"\nrate = 5\n[[requests]]\nname = \"r\"\npath = \"/\"\n",
        );
        assert_eq!(p.target.kind, TargetKind::Builtin);
        assert_eq!(p.grace, DEFAULT_GRACE);
        assert_eq!(
            p.phases[0].load,
            Load::Rate {
                from: 5.0,
                to: 5.0,
                max_in_flight: DEFAULT_MAX_IN_FLIGHT
            }
        );
        assert!(p.thresholds.is_empty());
        assert!(p.redactor.is_empty());
    }

    #[test]
    fn every_semantic_error_is_reported_in_file_order() {
        let e = errors(
            "name = \"bad name\"\nseed = -1\n[target]\nbuiltin = true\n[[phases]]\nduration = \"0s\"\nrate = 0\n[[requests]]\nname = \"all\"\nweight = 2000000\nmethod = \"FETCH\"\npath = \"/a b\"\ntimeout = \"11m\"\n[thresholds]\nall = [\"p99 < 1s\", 3]\n",
        );
        let want = [
            "t.toml:1:8: name: invalid name \"bad name\"",
            "t.toml:2:8: seed: invalid seed \"-1\"",
            "t.toml:6:12: phases[1].duration: invalid duration \"0s\": must be more than zero",
            "t.toml:7:8: phases[1].rate: invalid rate \"0\"",
            "t.toml:9:8: requests[1].name: the name \"all\" is reserved",
            "t.toml:10:10: requests[1].weight: invalid weight \"2000000\"",
            "t.toml:11:10: requests[1].method: unsupported method \"FETCH\"",
            "t.toml:12:11: requests[1].path: paths cannot contain spaces",
            "t.toml:13:11: requests[1].timeout: duration \"11m\" is too long",
            "t.toml:15:20: thresholds.all[2]: invalid threshold \"3\"",
        ];
        assert_eq!(e.len(), want.len(), "{e:#?}");
        for (got, want) in e.iter().zip(want) {
            assert!(got.starts_with(want), "{got}\n  should start with\n{want}");
        }
    }

    #[test]
    fn target_mistakes_are_explained() {
        let phases = "[[phases]]\nduration = \"1s\"\npause = true\n[[requests]]\nname = \"r\"\npath = \"/\"\n";
        let e = |target: &str| errors(&format!("name = \"n\"\n{target}\n{phases}")).join("\n");
        assert!(
            e("").contains("name: missing [target]")
                || e("").contains("target: missing [target] table")
        );
        assert!(e("[target]\nurl = \"ftp://127.0.0.1\"").contains("unsupported scheme \"ftp\""));
        assert!(
            e("[target]\nurl = \"http://127.0.0.1\"\nbuiltin = true")
                .contains("target: url, worker and builtin = true are alternatives")
        );
        assert!(
            e("[target]\nurl = \"http://127.0.0.1\"\nworker = \".\"")
                .contains("t.toml:4:10: target: url, worker and builtin = true are alternatives")
        );
        assert!(e("[target]\nbuiltin = false").contains("builtin = false and no url"));
        assert!(e("[target]\nurl = \"not a url\"").contains("invalid URL \"not a url\""));
        assert!(e("[target]\nurl = \"http://127.0.0.1/?a=1\"").contains("query or fragment"));
        assert!(
            e("[target]\nurl = \"http://{{env.NOPE}}/\"")
                .contains("environment variable \"NOPE\" is not set")
        );
        assert!(
            e("[target]\nurl = \"http://127.0.0.1/{{seq}}\"")
                .contains("cannot be used in target.url")
        );
        assert!(
            e("[target]\nurl = \"http://h.example/\"\nallow_hosts = [\"https://h.example\"]")
                .contains("target.allow_hosts[1]: invalid host")
        );
        // A host read from the environment is a secret, even in the allowlist message.
        let secret = errors(&format!(
            "name = \"n\"\n[target]\nurl = \"http://x.example/{{{{env.API_KEY}}}}\"\n{phases}"
        ))
        .join("\n");
        assert!(!secret.contains("tok\"en"), "{secret}");
    }

    #[test]
    fn phase_and_request_shapes_are_checked() {
        let base = "name = \"n\"\n[target]\nbuiltin = true\n";
        let req = "[[requests]]\nname = \"r\"\npath = \"/\"\n";
        let e = |phase: &str| errors(&format!("{base}[[phases]]\n{phase}\n{req}")).join("\n");
        assert!(e("rate = 5").contains("missing duration: add duration = \"30s\""));
        assert!(
            e("duration = \"1s\"\nrate = { from = 0, to = 0 }")
                .contains("a ramp from 0 to 0 sends nothing")
        );
        assert!(
            e("duration = \"1s\"\nrate = { from = 1, to = 2, step = 3 }")
                .contains("phases[1].rate.step: unknown ramp key \"step\"")
        );
        assert!(
            e("duration = \"1s\"\nrate = { from = -1, to = 2 }")
                .contains("phases[1].rate.from: invalid ramp from \"-1\"")
        );
        assert!(e("duration = \"1s\"\nrate = 10000001").contains("invalid rate \"10000001\""));
        assert!(e("duration = \"1s\"\nvus = 0").contains("invalid vus \"0\""));
        assert!(e("duration = \"1s\"\npause = false").contains("invalid pause \"false\""));
        assert!(e("duration = 30\nrate = 1").contains("invalid duration \"30\""));
        assert!(
            e("duration = \"1s\"\nrate = 1\nmax_in_flight = 0")
                .contains("invalid max_in_flight \"0\"")
        );
        assert!(
            e("duration = \"1s\"\npause = true\nmax_in_flight = 2")
                .contains("a pause phase sends nothing")
        );

        let r = |request: &str| {
            errors(&format!(
                "{base}[[phases]]\nduration = \"1s\"\nrate = 1\n[[requests]]\n{request}\n"
            ))
            .join("\n")
        };
        assert!(r("path = \"/\"").contains("requests[1].name: missing request name"));
        assert!(r("name = \"r\"").contains("requests[1].path: missing path"));
        assert!(
            r("name = \"r\"\npath = \"/\"\nheaders = { \"bad name\" = \"x\" }")
                .contains("invalid header name \"bad name\"")
        );
        assert!(
            r("name = \"r\"\npath = \"/\"\nheaders = { Content-Length = \"1\" }")
                .contains("computed from the body")
        );
        assert!(
            r("name = \"r\"\npath = \"/\"\njson = { x = nan }")
                .contains("requests[1].json.x: invalid JSON number")
        );
        assert!(
            r("name = \"r\"\npath = \"/\"\njson = { a = [\"{{nope}}\"] }")
                .contains("requests[1].json.a[1]: unknown placeholder")
        );
        assert!(
            r("name = \"r\"\npath = \"/\"\ntimeout = \"0s\"").contains("must be more than zero")
        );
    }

    #[test]
    fn template_errors_point_inside_the_string() {
        let e = errors(
            "name = \"n\"\n[target]\nbuiltin = true\n[[phases]]\nduration = \"1s\"\nrate = 1\n[[requests]]\nname = \"r\"\npath = \"/a/{{uuid}}/{{bogus}}\"\n",
        );
        assert!(
            e[0].starts_with("t.toml:9:21: requests[1].path: unknown placeholder \"{{bogus}}\""),
            "{e:?}"
        );
    }

    #[test]
    fn no_prefix_of_a_valid_file_panics() {
        // Every truncation is a different malformed file: none may panic, each either
        // validates or reports at least one error.
        for (i, _) in FULL.char_indices() {
            if let Err(e) = parse(&FULL[..i]) {
                assert!(!e.0.is_empty());
            }
        }
    }
}
