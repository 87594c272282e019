//! Validation of `[[requests]]`: method, path, headers and body templates, timeouts and weights.

use super::*;

impl Validator<'_> {
    pub(super) fn requests(
        &mut self,
        reqs: Option<&Spanned<Vec<Spanned<RawRequest>>>>,
    ) -> Option<Vec<RequestPlan>> {
        let Some(reqs) = reqs.filter(|r| !r.get_ref().is_empty()) else {
            let at = reqs.map_or(self.top, |r| r.span().start);
            self.err(at, "requests", "no requests: add a [[requests]] table with name = \"get-item\" and path = \"/items/{{random_key 1000}}\", or, for a Worker driven only by its crons or the check drivers, a [cron], [lock] or [queue] table with every phase pause = true");
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

    pub(super) fn request(&mut self, r: &Spanned<RawRequest>, n: usize) -> Option<RequestPlan> {
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
        let expect = self.expect(raw.expect.as_ref(), &base);

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
            expect: expect?,
        })
    }

    pub(super) fn method(
        &mut self,
        method: Option<&Spanned<String>>,
        base: &str,
    ) -> Option<Method> {
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

    pub(super) fn path(
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

    pub(super) fn body(
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

    pub(super) fn timeout(&mut self, timeout: Option<&RawValue>, base: &str) -> Option<Duration> {
        let field = format!("{base}.timeout");
        match timeout {
            None => Some(DEFAULT_TIMEOUT),
            Some(t) => self
                .duration(t, &field, "timeout = \"10s\"")
                .and_then(|d| self.positive(t, &field, d, "timeout = \"10s\""))
                .and_then(|d| self.at_most(t, &field, d, MAX_TIMEOUT, "10m")),
        }
    }

    pub(super) fn headers(
        &mut self,
        headers: Option<&Spanned<super::super::raw::OrderedMap<Spanned<String>>>>,
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
    pub(super) fn whole_var(&self, s: &str) -> Option<String> {
        let inner = s.trim().strip_prefix("{{")?.strip_suffix("}}")?.trim();
        self.vars.iter().find(|v| *v == inner).cloned()
    }

    /// Builds the JSON text of a `json` body as one template: JSON syntax and escaped literal
    /// text as literals, placeholders inside strings as parts.
    pub(super) fn json_body(&mut self, j: &Spanned<RawJson>, field: &str) -> Option<Template> {
        let mut parts: Vec<Part> = Vec::new();
        let mut source = String::new();
        let before = self.errors.len();
        self.json_value(j, field, &mut parts, &mut source);
        (self.errors.len() == before).then(|| Template::from_parts(parts, source))
    }

    pub(super) fn json_value(
        &mut self,
        v: &Spanned<RawJson>,
        field: &str,
        parts: &mut Vec<Part>,
        source: &mut String,
    ) {
        let lit = push_literal;
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
            RawJson::String(s) => self.json_string(v, s, field, parts, source),
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

    /// A JSON string that may hold placeholders, rendered as a JSON string literal.
    fn json_string(
        &mut self,
        v: &Spanned<RawJson>,
        s: &str,
        field: &str,
        parts: &mut Vec<Part>,
        source: &mut String,
    ) {
        let spanned = Spanned::new(v.span(), s.to_owned());
        let Some(t) = self.compile(&spanned, TemplateContext::JsonString, field) else {
            return;
        };
        push_literal(parts, source, "\"");
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
        let escaped = serde_json::Value::String(s.to_owned()).to_string();
        source.push_str(&escaped[1..escaped.len() - 1]);
        push_literal(parts, source, "\"");
    }
}

/// Appends literal text `s` to the template's parts (merged with a literal before it) and to
/// its source.
fn push_literal(parts: &mut Vec<Part>, source: &mut String, s: &str) {
    source.push_str(s);
    if let Some(Part::Literal(prev)) = parts.last_mut() {
        prev.push_str(s);
    } else {
        parts.push(Part::Literal(s.to_owned()));
    }
}
