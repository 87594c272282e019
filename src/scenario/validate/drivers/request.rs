//! Validation of a driver's request table (`[lock.acquire]`, `[queue.claim]`, `[cron.status]`,
//! ...): method, path, headers and body as for `[[requests]]`, plus what the driver reads
//! from the answer (`token = "/token"`, `extract = { ... }`) and which statuses mean empty or
//! failed.

use http::HeaderName;
use toml::{Spanned, Value};

use super::OpSpec;
use crate::scenario::plan::{DriverRequest, Extract};
use crate::scenario::raw::{OrderedMap, RawDriverRequest, RawValue};
use crate::scenario::validate::{Validator, show};

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
pub(super) fn extracted_names(req: Option<&DriverRequest>) -> Vec<String> {
    req.map(|r| r.extract.iter().map(|(n, _)| n.clone()).collect())
        .unwrap_or_default()
}

impl Validator<'_> {
    /// A driver's request table for `spec`.
    /// `extra` are the names an earlier request extracted (a lease's acquire for its
    /// release, a task's claim for its complete), usable as `{{name}}` here.
    pub(in crate::scenario::validate) fn driver_request(
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
        let reads = self.reads(raw, spec, base);
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

    /// The fields `spec` reads from the answer: as written, else their defaults; a field it
    /// does not read is an error.
    fn reads(
        &mut self,
        raw: &RawDriverRequest,
        spec: &OpSpec,
        base: &str,
    ) -> Vec<(String, Extract)> {
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
        reads
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
