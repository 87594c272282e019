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

mod canary;
mod drivers;
mod expect;
mod faults;
mod idempotency;
mod kvgroup;
mod phases;
mod ratelimit;
mod replay;
mod requests;
mod target;
mod thresholds;
mod traffic;
mod worker_choice;

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
    let parts = v.sections(&raw, random_seed);
    v.heal_checks(&raw, &parts);
    let Validator {
        errors, redactor, ..
    } = v;
    match parts.into_plan(raw.description.clone(), file) {
        Some(mut plan) if errors.is_empty() => {
            plan.redactor = redactor;
            Ok(plan)
        }
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

/// Each top-level section as validated on its own; `None` where it had errors.
struct Parts {
    name: Option<String>,
    seed: Option<u64>,
    grace: Option<Duration>,
    target: Option<TargetPlan>,
    phases: Option<Vec<Phase>>,
    requests: Option<Vec<RequestPlan>>,
    thresholds: Option<Vec<Threshold>>,
    speedup: Option<f64>,
    total: Option<Duration>,
    faults: Option<Vec<FaultPlan>>,
    cron: Option<CronPlan>,
    heal: Option<Option<Duration>>,
    kv: Option<(super::plan::KvPlan, Option<f64>)>,
    lock: Option<Option<super::plan::LockPlan>>,
    queue: Option<Option<super::plan::QueuePlan>>,
    canary: Option<Option<super::plan::CanaryPlan>>,
    idempotency: Option<Option<super::plan::IdempotencyPlan>>,
    ratelimit: Option<Option<super::plan::RateLimitPlan>>,
}

impl Parts {
    /// The plan, when every section validated.
    fn into_plan(self, description: Option<String>, file: &Path) -> Option<Plan> {
        Some(Plan {
            name: self.name?,
            description: description.unwrap_or_default(),
            source: file.to_path_buf(),
            seed: self.seed?,
            target: self.target?,
            phases: self.phases?,
            requests: self.requests?,
            thresholds: self.thresholds?,
            grace: self.grace?,
            redactor: Redactor::default(),
            speedup: self.speedup?,
            cron: self.cron?,
            faults: self.faults?,
            heal: self.heal?,
            kv: self.kv?.0,
            lock: self.lock?,
            queue: self.queue?,
            canary: self.canary?,
            idempotency: self.idempotency?,
            ratelimit: self.ratelimit?,
        })
    }
}

impl Validator<'_> {
    /// Validates every section, in the order their errors are most useful.
    fn sections(&mut self, raw: &ScenarioFile, random_seed: u64) -> Parts {
        let name = self.name(raw.name.as_ref());
        let seed = raw
            .seed
            .as_ref()
            .map_or(Some(random_seed), |s| self.seed(s));
        let grace = match &raw.grace {
            None => Some(DEFAULT_GRACE),
            Some(g) => self
                .duration(g, "grace", "grace = \"5s\"")
                .and_then(|d| self.at_most(g, "grace", d, MAX_GRACE, "1h")),
        };
        let target = self.target(raw.target.as_ref());
        let phases = self.phases(raw.phases.as_ref(), seed.unwrap_or(0));
        // A scenario of replay (and pause) phases needs no [[requests]].
        let replay_only = phases.as_ref().is_some_and(|ps| {
            ps.iter()
                .all(|p| matches!(p.load, Load::Replay(_) | Load::Pause))
                && ps.iter().any(|p| matches!(p.load, Load::Replay(_)))
        });
        let requests = if replay_only && raw.requests.is_none() {
            Some(Vec::new())
        } else {
            self.requests_or_drivers(raw)
        };
        if let Some(ps) = &phases
            && !replay_only
        {
            self.phases_without_requests(raw, ps);
        }
        let names: Vec<String> = raw
            .requests
            .iter()
            .flat_map(|r| r.get_ref())
            .filter_map(|r| r.get_ref().name.as_ref().map(|n| n.get_ref().clone()))
            .collect();
        let thresholds = self.thresholds(raw.thresholds.as_ref(), &names);
        let speedup = self.speedup(raw.clock.as_ref());
        let total = phases
            .as_ref()
            .map(|ps| ps.iter().map(|p| p.duration).sum::<Duration>());
        let faults = self.faults(raw.faults.as_deref(), total);
        if let Some(f) = &faults {
            self.during_needs_faults(raw, f);
        }
        let cron = self.cron(raw.cron.as_ref());
        let heal = self.heal(raw.heal.as_ref());
        let kv = self.kv(raw.kv.as_ref());
        let lock = self.lock(raw.lock.as_ref());
        let queue = self.queue(raw.queue.as_ref());
        let idempotency = self.idempotency(raw.idempotency.as_ref());
        let ratelimit = self.ratelimit(raw.ratelimit.as_ref());
        let speedup = self.one_clock_speed(raw, speedup, &kv);
        let run_length = total.zip(grace).map(|(t, g)| t + g);
        let canary = self.canary(raw, phases.as_deref(), run_length);
        Parts {
            name,
            seed,
            grace,
            target,
            phases,
            requests,
            thresholds,
            speedup,
            total,
            faults,
            cron,
            heal,
            kv,
            lock,
            queue,
            canary,
            idempotency,
            ratelimit,
        }
    }

    /// `[kv] day` sets the run clock's speed too; two settings would disagree.
    fn one_clock_speed(
        &mut self,
        raw: &ScenarioFile,
        speedup: Option<f64>,
        kv: &Option<(super::plan::KvPlan, Option<f64>)>,
    ) -> Option<f64> {
        let Some((_, Some(day_speed))) = kv else {
            return speedup;
        };
        speedup?;
        match raw
            .clock
            .as_ref()
            .and_then(|c| c.get_ref().speedup.as_ref())
            .map(|v| v.span().start)
        {
            Some(at) => {
                self.err(at, "clock.speedup", "[clock] speedup and [kv] day both set the run clock's speed: keep one (day = \"60s\" is the same as speedup = 1440)");
                None
            }
            None => Some(*day_speed),
        }
    }

    /// Faults must start before the heal phase, and the heal phase must be shorter than the run.
    fn heal_checks(&mut self, raw: &ScenarioFile, p: &Parts) {
        if let (Some(heal), Some(total), Some(faults), Some(cron), Some(speedup)) =
            (&p.heal, p.total, &p.faults, &p.cron, p.speedup)
        {
            // The Worker's own crons are not known yet: only the scenario's schedules count.
            let schedules = cron.schedules.as_deref().unwrap_or_default();
            let h = heal.unwrap_or_else(|| super::plan::default_heal(total, schedules, speedup));
            self.faults_before_heal(
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
            && let (Some(Some(d)), Some(total)) = (p.heal, p.total)
            && d >= total
        {
            self.err(h.span().start, "heal.duration", format!(
                "the heal phase ({}) is as long as the whole run ({}): keep it shorter, e.g. a fifth of the run",
                humantime::format_duration(d),
                humantime::format_duration(total)
            ));
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

    // ---- clock and cron ----

    // ---- target ----

    // ---- phases ----

    // ---- requests ----

    // ---- thresholds ----
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
