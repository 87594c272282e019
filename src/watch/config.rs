//! WATCH.toml: the raw file model (serde, unknown fields refused) and its validation into a
//! [`WatchPlan`]. Owns every check of user input for `kvchaos watch`: durations, cron
//! expressions (given, or read from the Worker's wrangler config), probe URLs behind the host
//! allowlist, `${NAME}` / `{{env.NAME}}` secrets from the environment, webhook URLs from the
//! environment only, and mute windows. Does not own probing, judging or sending.
//!
//! Every message names `file:line:column`, the field path, the bad value in quotes (never an
//! environment value) and the fix.

mod outputs;
mod raw;

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use toml::Spanned;

use crate::redact::Redactor;
use crate::scenario::location;
use raw::{RawCheck, RawFile};

pub use super::plan::{
    Check, CheckKind, ErrorSource, MuteWindow, Notifier, NotifierKind, Severity, WatchPlan,
};

/// The largest WATCH.toml read.
pub const MAX_FILE_BYTES: u64 = 1024 * 1024;

/// One problem in a WATCH.toml.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigError {
    /// The file as given.
    pub file: PathBuf,
    /// 1-based line; 0 for the file as a whole.
    pub line: usize,
    /// 1-based column in characters; 0 when `line` is 0.
    pub column: usize,
    /// Field path, e.g. `check[2].grace`; empty for the file as a whole.
    pub field: String,
    /// What is wrong and how to fix it.
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let file = self.file.display();
        if self.line == 0 {
            return write!(f, "{file}: {}", self.message);
        }
        write!(f, "{file}:{}:{}: ", self.line, self.column)?;
        if !self.field.is_empty() {
            write!(f, "{}: ", self.field)?;
        }
        f.write_str(&self.message)
    }
}

/// Reads and validates the watch file at `path`, secrets and webhook URLs from the process
/// environment.
pub fn load(path: &Path) -> Result<WatchPlan, ConfigError> {
    use std::io::Read;
    let whole = |message: String| ConfigError {
        file: path.to_owned(),
        line: 0,
        column: 0,
        field: String::new(),
        message,
    };
    let file =
        std::fs::File::open(path).map_err(|e| whole(format!("cannot read the watch file: {e}")))?;
    let mut bytes = Vec::new();
    file.take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| whole(format!("cannot read the watch file: {e}")))?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(whole(format!(
            "the watch file is over {MAX_FILE_BYTES} bytes: a watch file declares a few checks"
        )));
    }
    let text = String::from_utf8(bytes)
        .map_err(|_| whole("the watch file is not valid UTF-8: save it as UTF-8".to_owned()))?;
    parse_str(&text, path, &|name| std::env::var(name).ok())
}

/// Parses and validates `text`; `path` locates messages and relative `wrangler` paths, `env`
/// answers `${NAME}`, `{{env.NAME}}` and `url_env`.
pub fn parse_str(
    text: &str,
    path: &Path,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<WatchPlan, ConfigError> {
    let v = Validator {
        src: text,
        path,
        env,
    };
    let raw: RawFile = toml::from_str(text).map_err(|e| v.toml_error(&e))?;
    v.plan(raw)
}

/// An example line for a missing field of the table at `table` (e.g. `notify[1]`).
fn missing_example(table: &str, field: &str) -> &'static str {
    match (table.split('[').next().unwrap_or(table), field) {
        ("notify", "kind") => "kind = \"slack\" (or \"discord\", \"webhook\")",
        (_, "kind") => "kind = \"cron\" (or \"counter\", \"error_rate\")",
        (_, "name") => "name = \"billing-cron\"",
        (_, "url") => "url = \"https://my-worker.example.com/cron/status\"",
        (_, "from") => "from = \"22:00\" (UTC)",
        (_, "to") => "to = \"06:00\" (UTC)",
        _ => "the field as docs/watch.md shows it",
    }
}

struct Validator<'a> {
    src: &'a str,
    path: &'a Path,
    env: &'a dyn Fn(&str) -> Option<String>,
}

type Res<T> = Result<T, ConfigError>;

impl Validator<'_> {
    fn err(&self, offset: usize, message: String) -> ConfigError {
        let (line, column) = location::line_col(self.src, offset);
        ConfigError {
            file: self.path.to_owned(),
            line,
            column,
            field: location::field_path_at(self.src, offset),
            message,
        }
    }

    fn toml_error(&self, e: &toml::de::Error) -> ConfigError {
        let offset = e.span().map_or(0, |s| s.start);
        let msg = e.message().trim().replace('`', "\"");
        let table = location::field_path_at(self.src, offset);
        let fix = if msg.starts_with("unknown field") {
            "check the spelling; every field is listed in docs/watch.md".to_owned()
        } else if let Some(rest) = msg.strip_prefix("missing field \"") {
            let name = rest.split('"').next().unwrap_or(rest);
            format!("add it, e.g. {}", missing_example(&table, name))
        } else {
            "check the quotes, brackets and = signs (durations are strings, e.g. grace = \"2m\")"
                .to_owned()
        };
        self.err(offset, format!("{msg}: {fix}"))
    }

    fn plan(&self, raw: RawFile) -> Res<WatchPlan> {
        let mut redactor = Redactor::default();
        let interval = self.duration(raw.interval.as_ref(), "1m", "interval = \"1m\"")?;
        let timeout = self.duration(raw.timeout.as_ref(), "10s", "timeout = \"10s\"")?;
        let failures = self.count(raw.failures.as_ref(), 1, "failures = 2")?;
        if raw.check.is_empty() {
            return Err(self.err(
                0,
                "no [[check]]: add one, e.g. [[check]] name = \"cron\" kind = \"cron\" url = \"https://my-worker.example.com/cron/status\"".to_owned(),
            ));
        }
        let mut checks: Vec<Check> = Vec::new();
        for c in &raw.check {
            let check = self.check(c, failures, &raw.allow_hosts, &mut redactor)?;
            if checks.iter().any(|k| k.name == check.name) {
                return Err(self.err(
                    c.get_ref().name.span().start,
                    format!("duplicate check name \"{}\": names key the state file, give each check its own", check.name),
                ));
            }
            checks.push(check);
        }
        let notifiers = raw
            .notify
            .iter()
            .map(|n| self.notifier(n, &mut redactor))
            .collect::<Res<Vec<_>>>()?;
        let mutes = raw.mute.iter().map(|m| self.mute(m)).collect::<Res<_>>()?;
        Ok(WatchPlan {
            interval,
            timeout,
            checks,
            notifiers,
            mutes,
            redactor,
        })
    }

    fn duration(&self, v: Option<&Spanned<String>>, default: &str, eg: &str) -> Res<Duration> {
        let Some(v) = v else {
            return Ok(humantime::parse_duration(default).unwrap_or_default());
        };
        match humantime::parse_duration(v.get_ref().trim()) {
            Ok(d) if !d.is_zero() => Ok(d),
            _ => Err(self.err(
                v.span().start,
                format!("invalid duration \"{}\": expected e.g. {eg}", v.get_ref()),
            )),
        }
    }

    fn count(&self, v: Option<&Spanned<i64>>, default: u32, eg: &str) -> Res<u32> {
        let Some(v) = v else { return Ok(default) };
        match u32::try_from(*v.get_ref()) {
            Ok(n) if (1..=1000).contains(&n) => Ok(n),
            _ => Err(self.err(
                v.span().start,
                format!(
                    "invalid count \"{}\": expected 1 to 1000, e.g. {eg}",
                    v.get_ref()
                ),
            )),
        }
    }

    /// `${NAME}` and `{{env.NAME}}` replaced by environment values, each registered as a secret.
    fn interpolate(&self, v: &Spanned<String>, redactor: &mut Redactor) -> Res<String> {
        let text = v.get_ref();
        let mut out = String::new();
        let mut rest = text.as_str();
        while let Some(start) = rest.find("${").into_iter().chain(rest.find("{{")).min() {
            out.push_str(&rest[..start]);
            let after = &rest[start..];
            let (inner, len) = if let Some(a) = after.strip_prefix("${") {
                let end = a.find('}').ok_or_else(|| self.unclosed(v))?;
                (&a[..end], end + 3)
            } else {
                let a = &after[2..];
                let end = a.find("}}").ok_or_else(|| self.unclosed(v))?;
                let inner = a[..end].trim();
                let name = inner.strip_prefix("env.").ok_or_else(|| {
                    self.err(v.span().start, format!("unknown placeholder \"{{{{{inner}}}}}\" in \"{text}\": only environment values are allowed, e.g. {{{{env.API_TOKEN}}}} or ${{API_TOKEN}}"))
                })?;
                (name, end + 4)
            };
            let name = inner.trim();
            let valid = !name.is_empty()
                && !name.starts_with(|c: char| c.is_ascii_digit())
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            if !valid {
                return Err(self.err(v.span().start, format!("invalid environment variable name \"{name}\" in \"{text}\": names are letters, digits and _, e.g. ${{API_TOKEN}}")));
            }
            let value = (self.env)(name).ok_or_else(|| {
                self.err(v.span().start, format!("environment variable \"{name}\" is not set (used in \"{text}\"): export it, e.g. {name}=... kvchaos watch WATCH.toml, or set it as a secret in CI"))
            })?;
            redactor.add(value.clone());
            out.push_str(&value);
            rest = &after[len..];
        }
        out.push_str(rest);
        Ok(out)
    }

    fn unclosed(&self, v: &Spanned<String>) -> ConfigError {
        self.err(
            v.span().start,
            format!(
                "unclosed placeholder in \"{}\": write ${{NAME}} or {{{{env.NAME}}}}",
                v.get_ref()
            ),
        )
    }

    fn check(
        &self,
        c: &Spanned<RawCheck>,
        default_failures: u32,
        allow_hosts: &[String],
        redactor: &mut Redactor,
    ) -> Res<Check> {
        let r = c.get_ref();
        let name = r.name.get_ref().trim().to_owned();
        if name.is_empty() || name.len() > 100 {
            return Err(self.err(r.name.span().start, format!("invalid check name \"{name}\": 1 to 100 characters, e.g. name = \"billing-cron\"")));
        }
        let url = self.interpolate(&r.url, redactor)?;
        self.probe_url(&r.url, &url, allow_hosts)?;
        let mut headers = Vec::new();
        for (k, v) in &r.headers {
            let value = self.interpolate(v, redactor)?;
            if http::HeaderName::from_bytes(k.as_bytes()).is_err()
                || http::HeaderValue::from_str(&value).is_err()
            {
                return Err(self.err(v.span().start, format!("invalid header \"{k}\": names are letters, digits and -, values printable, e.g. headers = {{ authorization = \"Bearer ${{API_TOKEN}}\" }}")));
            }
            headers.push((k.clone(), value));
        }
        let failures = self.count(r.failures.as_ref(), default_failures, "failures = 3")?;
        let kind = match r.kind.get_ref().as_str() {
            "cron" => self.cron_kind(r)?,
            "counter" => CheckKind::Counter {
                pointer: self.pointer(r.pointer.as_ref(), &r.kind, "pointer = \"/runs\"")?,
                min_increase: self.min_increase(r)?,
                window: self.required_duration(r.window.as_ref(), &r.kind, "window = \"15m\"")?,
            },
            "error_rate" => self.error_rate_kind(r)?,
            other => {
                return Err(self.err(r.kind.span().start, format!("unknown check kind \"{other}\": expected \"cron\", \"counter\" or \"error_rate\"")));
            }
        };
        self.refuse_foreign_fields(r)?;
        Ok(Check {
            name,
            url,
            headers,
            failures,
            kind,
        })
    }

    fn probe_url(&self, raw: &Spanned<String>, url: &str, allow_hosts: &[String]) -> Res<()> {
        let at = raw.span().start;
        let parsed = url::Url::parse(url).map_err(|e| {
            self.err(at, format!("invalid URL \"{}\": {e}: expected e.g. url = \"https://my-worker.example.com/cron/status\"", raw.get_ref()))
        })?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(self.err(
                at,
                format!(
                    "invalid URL \"{}\": only http and https are probed",
                    raw.get_ref()
                ),
            ));
        }
        if crate::scenario::check_target_allowed(&parsed, allow_hosts).is_err() {
            let host = parsed.host_str().unwrap_or_default();
            return Err(self.err(at, format!("probe host \"{host}\" is not loopback and not in allow_hosts: add allow_hosts = [\"{host}\"] at the top of the watch file")));
        }
        Ok(())
    }

    fn pointer(
        &self,
        v: Option<&Spanned<String>>,
        kind: &Spanned<String>,
        eg: &str,
    ) -> Res<String> {
        let Some(v) = v else {
            return Err(self.err(
                kind.span().start,
                format!(
                    "a \"{}\" check needs a JSON pointer into the probe's answer: add e.g. {eg}",
                    kind.get_ref()
                ),
            ));
        };
        let p = v.get_ref();
        if !p.is_empty() && !p.starts_with('/') {
            return Err(self.err(
                v.span().start,
                format!("invalid JSON pointer \"{p}\": it starts with /, e.g. {eg}"),
            ));
        }
        Ok(p.clone())
    }

    fn required_duration(
        &self,
        v: Option<&Spanned<String>>,
        kind: &Spanned<String>,
        eg: &str,
    ) -> Res<Duration> {
        match v {
            Some(_) => self.duration(v, "", eg),
            None => Err(self.err(
                kind.span().start,
                format!(
                    "a \"{}\" check needs a window: add e.g. {eg}",
                    kind.get_ref()
                ),
            )),
        }
    }

    fn min_increase(&self, r: &RawCheck) -> Res<f64> {
        let Some(v) = &r.min_increase else {
            return Ok(1.0);
        };
        let n = *v.get_ref();
        if n.is_finite() && n > 0.0 {
            Ok(n)
        } else {
            Err(self.err(
                v.span().start,
                format!("invalid min_increase \"{n}\": a positive number, e.g. min_increase = 1"),
            ))
        }
    }

    fn cron_kind(&self, r: &RawCheck) -> Res<CheckKind> {
        let exprs: Vec<(String, usize)> = match (&r.crons, &r.wrangler) {
            (Some(_), Some(w)) => {
                return Err(self.err(
                    w.span().start,
                    "give either crons or wrangler, not both: crons override the Worker's config"
                        .to_owned(),
                ));
            }
            (Some(list), None) => list
                .get_ref()
                .iter()
                .map(|c| (c.get_ref().clone(), c.span().start))
                .collect(),
            (None, Some(w)) => self.wrangler_crons(w, r.env.as_ref())?,
            (None, None) => {
                return Err(self.err(r.kind.span().start, "a \"cron\" check needs its schedule: add wrangler = \"path/to/worker\" (its [triggers] crons are read) or crons = [\"*/5 * * * *\"]".to_owned()));
            }
        };
        if exprs.is_empty() {
            return Err(self.err(r.kind.span().start, "no cron expressions: the Worker has no [triggers] crons in this environment; give crons = [\"*/5 * * * *\"]".to_owned()));
        }
        let mut crons = Vec::new();
        for (e, at) in exprs {
            if e.split_whitespace().count() != 5 {
                return Err(self.err(at, format!("invalid cron expression \"{e}\": Workers crons have 5 fields (minute hour day month weekday, UTC), e.g. \"*/5 * * * *\"")));
            }
            let c = crate::cron::parse(&e)
                .map_err(|m| self.err(at, format!("{m}: e.g. \"*/5 * * * *\"")))?;
            crons.push((e, c));
        }
        let alert_at = match r.alert_at.as_ref().map(|a| a.get_ref().as_str()) {
            None | Some("late") => Severity::Late,
            Some("down") => Severity::Down,
            Some(other) => {
                let at = r.alert_at.as_ref().map_or(0, |a| a.span().start);
                return Err(self.err(at, format!("invalid alert_at \"{other}\": expected \"late\" (expected slot + grace) or \"down\" (one period later)")));
            }
        };
        Ok(CheckKind::Cron {
            pointer: self.pointer(r.pointer.as_ref(), &r.kind, "pointer = \"/last_run\"")?,
            crons,
            grace: self.duration(r.grace.as_ref(), "1m", "grace = \"2m\"")?,
            alert_at,
        })
    }

    fn wrangler_crons(
        &self,
        w: &Spanned<String>,
        env: Option<&Spanned<String>>,
    ) -> Res<Vec<(String, usize)>> {
        let base = self.path.parent().unwrap_or(Path::new("."));
        let path = base.join(w.get_ref());
        let at = w.span().start;
        let config = crate::wrangler::WranglerConfig::load(&path).map_err(|e| {
            self.err(
                at,
                format!(
                    "{e} (wrangler = \"{}\" is relative to the watch file)",
                    w.get_ref()
                ),
            )
        })?;
        let bindings = config
            .resolve(env.map(|e| e.get_ref().as_str()))
            .map_err(|e| self.err(env.map_or(at, |e| e.span().start), e.to_string()))?;
        Ok(bindings.crons.into_iter().map(|c| (c, at)).collect())
    }

    fn error_rate_kind(&self, r: &RawCheck) -> Res<CheckKind> {
        let Some(max) = &r.max_error_rate else {
            return Err(self.err(
                r.kind.span().start,
                "an \"error_rate\" check needs max_error_rate: add e.g. max_error_rate = \"5%\""
                    .to_owned(),
            ));
        };
        let text = max.get_ref().trim();
        let rate = text
            .strip_suffix('%')
            .and_then(|p| p.trim().parse::<f64>().ok())
            .filter(|p| (0.0..=100.0).contains(p))
            .ok_or_else(|| self.err(max.span().start, format!("invalid max_error_rate \"{text}\": a percentage, e.g. max_error_rate = \"5%\"")))?;
        let source = match (&r.errors_pointer, &r.total_pointer) {
            (None, None) => ErrorSource::Probes,
            (Some(e), Some(t)) => ErrorSource::Stats {
                errors: self.pointer(Some(e), &r.kind, "errors_pointer = \"/errors\"")?,
                total: self.pointer(Some(t), &r.kind, "total_pointer = \"/requests\"")?,
            },
            (Some(p), None) | (None, Some(p)) => {
                return Err(self.err(p.span().start, "a stats endpoint needs both errors_pointer and total_pointer (or neither: failed probes are counted)".to_owned()));
            }
        };
        let min_samples = self.count(r.min_samples.as_ref(), 1, "min_samples = 3")?;
        Ok(CheckKind::ErrorRate {
            source,
            max_rate: rate / 100.0,
            window: self.required_duration(r.window.as_ref(), &r.kind, "window = \"15m\"")?,
            min_samples,
        })
    }

    /// Fields of one kind set on a check of another are mistakes, not silently ignored.
    fn refuse_foreign_fields(&self, r: &RawCheck) -> Res<()> {
        let kind = r.kind.get_ref().as_str();
        let spans: [(&str, Option<usize>, &[&str]); 12] = [
            (
                "pointer",
                r.pointer.as_ref().map(|v| v.span().start),
                &["cron", "counter"],
            ),
            ("crons", r.crons.as_ref().map(|v| v.span().start), &["cron"]),
            (
                "wrangler",
                r.wrangler.as_ref().map(|v| v.span().start),
                &["cron"],
            ),
            ("env", r.env.as_ref().map(|v| v.span().start), &["cron"]),
            ("grace", r.grace.as_ref().map(|v| v.span().start), &["cron"]),
            (
                "alert_at",
                r.alert_at.as_ref().map(|v| v.span().start),
                &["cron"],
            ),
            (
                "min_increase",
                r.min_increase.as_ref().map(|v| v.span().start),
                &["counter"],
            ),
            (
                "window",
                r.window.as_ref().map(|v| v.span().start),
                &["counter", "error_rate"],
            ),
            (
                "max_error_rate",
                r.max_error_rate.as_ref().map(|v| v.span().start),
                &["error_rate"],
            ),
            (
                "errors_pointer",
                r.errors_pointer.as_ref().map(|v| v.span().start),
                &["error_rate"],
            ),
            (
                "total_pointer",
                r.total_pointer.as_ref().map(|v| v.span().start),
                &["error_rate"],
            ),
            (
                "min_samples",
                r.min_samples.as_ref().map(|v| v.span().start),
                &["error_rate"],
            ),
        ];
        for (field, at, kinds) in spans {
            if let Some(at) = at
                && !kinds.contains(&kind)
            {
                return Err(self.err(
                    at,
                    format!(
                        "\"{field}\" does not apply to a \"{kind}\" check (only to {}): remove it",
                        kinds.join(", ")
                    ),
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
