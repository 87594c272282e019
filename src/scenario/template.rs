//! Request templates: `{{uuid}}`, `{{seq}}`, `{{random_key N}}`, `{{env.NAME}}`, and in the
//! requests of check drivers their variables (`{{lock}}`, `{{token}}`, `{{id}}`, ...).
//!
//! Templates are compiled once during validation ([`compile`]): placeholders are parsed,
//! environment values are read and escaped for the place they go (path, header, JSON string),
//! so rendering on the hot path only appends to a reusable buffer.
//!
//! Environment values are secrets: no error message built here ever contains one.

use rand::Rng;
use rand::rngs::SmallRng;

/// A compiled template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    parts: Vec<Part>,
    source: String,
}

/// One piece of a compiled template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Part {
    /// Text copied as is.
    Literal(String),
    /// A random (seeded) version 4 UUID.
    Uuid,
    /// The request's sequence number in the run (0, 1, 2, ...).
    Seq,
    /// `key-<n>` with `n` uniform in `0..N`.
    RandomKey(u64),
    /// A value read from the environment at validation time (already escaped for its context).
    Env(String),
    /// A driver variable (e.g. `lock`, `token`), escaped for where it goes when rendered.
    Var {
        /// Its name.
        name: String,
        /// How its value is written.
        mode: VarMode,
    },
}

/// How a driver variable's value is written into the text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VarMode {
    /// Percent-encoded for a path or query.
    Path,
    /// As is, in a header value (a value that cannot be a header fails the request).
    Header,
    /// As is, in a raw body.
    Raw,
    /// JSON-escaped inside a JSON string.
    JsonString,
    /// A JSON string that is exactly this placeholder: the value with its own JSON type (a
    /// number stays a number, a token extracted as a string stays a string).
    JsonValue,
}

/// Values a template may draw on when rendered.
pub struct RenderCx<'a> {
    /// Sequence number of this request in the run.
    pub seq: u64,
    /// Seeded generator for this request.
    pub rng: &'a mut SmallRng,
    /// Driver variables by name; `None` for load requests, which have none.
    pub vars: Option<&'a serde_json::Map<String, serde_json::Value>>,
}

impl Template {
    /// Builds a template from already-parsed parts; `source` is the text as written.
    pub fn from_parts(parts: Vec<Part>, source: String) -> Self {
        Template { parts, source }
    }

    /// The compiled parts, in order.
    pub fn parts(&self) -> &[Part] {
        &self.parts
    }

    /// The template as written in the scenario (never contains environment values).
    pub fn source(&self) -> &str {
        &self.source
    }

    /// The rendered text if the template has no dynamic part.
    pub fn as_static(&self) -> Option<&str> {
        match self.parts.as_slice() {
            [] => Some(""),
            [Part::Literal(s)] => Some(s),
            _ => None,
        }
    }

    /// Appends the rendered template to `out`.
    pub fn render(&self, cx: &mut RenderCx<'_>, out: &mut String) {
        use std::fmt::Write;
        for part in &self.parts {
            match part {
                Part::Literal(s) | Part::Env(s) => out.push_str(s),
                Part::Seq => {
                    let _ = write!(out, "{}", cx.seq);
                }
                Part::RandomKey(n) => {
                    let k = cx.rng.random_range(0..*n);
                    let _ = write!(out, "key-{k}");
                }
                Part::Uuid => {
                    let bytes: [u8; 16] = cx.rng.random();
                    let id = uuid::Builder::from_random_bytes(bytes).into_uuid();
                    let _ = write!(out, "{}", id.hyphenated());
                }
                Part::Var { name, mode } => {
                    let value = cx.vars.and_then(|v| v.get(name));
                    render_var(value, *mode, out);
                }
            }
        }
    }
}

/// Writes a driver variable's value: strings without quotes, other values as JSON text, a
/// missing value as nothing (or `null` for a whole JSON value).
fn render_var(value: Option<&serde_json::Value>, mode: VarMode, out: &mut String) {
    use serde_json::Value;
    if mode == VarMode::JsonValue {
        match value {
            Some(v) => out.push_str(&v.to_string()),
            None => out.push_str("null"),
        }
        return;
    }
    let text = match value {
        None | Some(Value::Null) => return,
        Some(Value::String(s)) => std::borrow::Cow::Borrowed(s.as_str()),
        Some(other) => std::borrow::Cow::Owned(other.to_string()),
    };
    match mode {
        // A value is one path segment or query value: its `/` and `?` are data, not syntax.
        VarMode::Path => out.push_str(
            &percent_encode(&text, false)
                .replace('/', "%2F")
                .replace('?', "%3F"),
        ),
        VarMode::JsonString => out.push_str(&json_escape(&text)),
        VarMode::Header | VarMode::Raw | VarMode::JsonValue => out.push_str(&text),
    }
}

/// Where a template's text ends up, which decides how inserted values are checked or escaped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TemplateContext {
    /// `target.url`: resolved once before the run, so only `{{env.NAME}}` is allowed; no escaping.
    Url,
    /// Request path and query: characters not allowed unencoded are percent-encoded.
    Path,
    /// A header value: CR, LF, NUL and other control characters are rejected.
    Header,
    /// A raw body: inserted as is.
    Body,
    /// A string inside a `json` body: JSON-string-escaped (without the quotes).
    JsonString,
}

/// A compiled template and the environment values it captured (to register as secrets).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Compiled {
    /// The template.
    pub template: Template,
    /// Raw environment values used, plus their escaped forms when escaping changed them.
    pub secrets: Vec<String>,
}

/// A problem in a template. The message never contains an environment value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct TemplateError {
    /// Byte offset in the template text where the problem starts.
    pub offset: usize,
    /// What is wrong and how to fix it.
    pub message: String,
}

/// The placeholders a user may write, for error messages.
pub const ALLOWED_PLACEHOLDERS: &str =
    "{{uuid}}, {{seq}}, {{random_key N}} (e.g. {{random_key 1000}}), {{env.NAME}}";

/// Compiles `text` for `ctx`, reading `{{env.NAME}}` through `env`. Returns every problem
/// found, not only the first.
pub fn compile(
    text: &str,
    ctx: TemplateContext,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Compiled, Vec<TemplateError>> {
    compile_with_vars(text, ctx, env, &[])
}

/// [`compile`] for a driver's request, where the placeholders `{{name}}` for each of `vars`
/// are allowed too.
pub fn compile_with_vars(
    text: &str,
    ctx: TemplateContext,
    env: &dyn Fn(&str) -> Option<String>,
    vars: &[&str],
) -> Result<Compiled, Vec<TemplateError>> {
    let mut parts: Vec<Part> = Vec::new();
    let mut secrets = Vec::new();
    let mut errors = Vec::new();
    let mut rest = 0usize;
    while rest < text.len() {
        let Some(open_rel) = text[rest..].find("{{") else {
            push_literal(&mut parts, &mut errors, &text[rest..], rest, ctx);
            break;
        };
        let open = rest + open_rel;
        push_literal(&mut parts, &mut errors, &text[rest..open], rest, ctx);
        let Some(close_rel) = text[open + 2..].find("}}") else {
            errors.push(TemplateError {
                offset: open,
                message: format!(
                    "unclosed \"{{{{\": close the placeholder with \"}}}}\"; allowed placeholders: {ALLOWED_PLACEHOLDERS}"
                ),
            });
            break;
        };
        let close = open + 2 + close_rel;
        let inner = text[open + 2..close].trim();
        match placeholder(inner, ctx, env, vars) {
            Ok(Placeholder::Part(p)) => parts.push(p),
            Ok(Placeholder::Env { raw, escaped }) => {
                if escaped != raw {
                    secrets.push(escaped.clone());
                }
                secrets.push(raw);
                parts.push(Part::Env(escaped));
            }
            Err(message) => errors.push(TemplateError {
                offset: open,
                message,
            }),
        }
        rest = close + 2;
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    Ok(Compiled {
        template: Template::from_parts(parts, text.to_owned()),
        secrets,
    })
}

enum Placeholder {
    Part(Part),
    Env { raw: String, escaped: String },
}

fn placeholder(
    inner: &str,
    ctx: TemplateContext,
    env: &dyn Fn(&str) -> Option<String>,
    vars: &[&str],
) -> Result<Placeholder, String> {
    if let Some(name) = vars.iter().find(|v| **v == inner) {
        let mode = match ctx {
            TemplateContext::Path => VarMode::Path,
            TemplateContext::Header => VarMode::Header,
            TemplateContext::JsonString => VarMode::JsonString,
            TemplateContext::Body | TemplateContext::Url => VarMode::Raw,
        };
        return Ok(Placeholder::Part(Part::Var {
            name: (*name).to_owned(),
            mode,
        }));
    }
    if let Some(name) = inner.strip_prefix("env.") {
        let name = name.trim();
        let valid = name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid {
            return Err(format!(
                "invalid environment variable name \"{name}\" in \"{{{{{inner}}}}}\": names are letters, digits and _, not starting with a digit, e.g. {{{{env.API_KEY}}}}"
            ));
        }
        let Some(raw) = env(name) else {
            return Err(format!(
                "environment variable \"{name}\" is not set: export it before running; its value is kept out of reports"
            ));
        };
        let escaped = escape_env(&raw, ctx).map_err(|why| {
            format!("environment variable \"{name}\" cannot be used here: {why} (its value is not shown)")
        })?;
        return Ok(Placeholder::Env { raw, escaped });
    }
    let dynamic = match inner.split_whitespace().collect::<Vec<_>>().as_slice() {
        ["uuid"] => Part::Uuid,
        ["seq"] => Part::Seq,
        ["random_key", n] => match n.parse::<u64>() {
            Ok(n) if n >= 1 => Part::RandomKey(n),
            _ => {
                return Err(format!(
                    "invalid key count \"{n}\" in \"{{{{{inner}}}}}\": expected a whole number of at least 1, e.g. {{{{random_key 1000}}}}"
                ));
            }
        },
        ["random_key"] => {
            return Err(
                "\"{{random_key}}\" needs a key count: e.g. {{random_key 1000}} gives key-0 .. key-999"
                    .to_owned(),
            );
        }
        _ if vars.is_empty() => {
            return Err(format!(
                "unknown placeholder \"{{{{{inner}}}}}\": allowed placeholders: {ALLOWED_PLACEHOLDERS}"
            ));
        }
        _ => {
            let named: Vec<String> = vars.iter().map(|v| format!("{{{{{v}}}}}")).collect();
            return Err(format!(
                "unknown placeholder \"{{{{{inner}}}}}\": allowed here: {}, {ALLOWED_PLACEHOLDERS}",
                named.join(", ")
            ));
        }
    };
    if ctx == TemplateContext::Url {
        return Err(format!(
            "\"{{{{{inner}}}}}\" cannot be used in target.url, which is resolved once before the run: only {{{{env.NAME}}}} is allowed there; put per-request values in requests.path"
        ));
    }
    Ok(Placeholder::Part(dynamic))
}

/// Appends checked or escaped literal text. Literal text is the user's own, so it may be
/// quoted in messages.
fn push_literal(
    parts: &mut Vec<Part>,
    errors: &mut Vec<TemplateError>,
    lit: &str,
    offset: usize,
    ctx: TemplateContext,
) {
    if lit.is_empty() {
        return;
    }
    let text = match ctx {
        TemplateContext::Path => {
            if let Some(i) = lit.find(|c: char| c.is_whitespace() || c.is_control()) {
                errors.push(TemplateError {
                    offset: offset + i,
                    message: "paths cannot contain spaces or control characters: write a space as %20, e.g. path = \"/search?q=a%20b\"".to_owned(),
                });
                return;
            }
            if let Some(i) = lit.find('#') {
                errors.push(TemplateError {
                    offset: offset + i,
                    message: "paths cannot contain \"#\" (a fragment is never sent to the server): write it as %23 if it is part of the path".to_owned(),
                });
                return;
            }
            percent_encode(lit, true)
        }
        TemplateContext::Header => {
            if let Some(i) = lit.find(is_bad_header_char) {
                errors.push(TemplateError {
                    offset: offset + i,
                    message: "header values cannot contain line breaks, NUL or other control characters: keep the value on one line".to_owned(),
                });
                return;
            }
            lit.to_owned()
        }
        TemplateContext::JsonString => json_escape(lit),
        TemplateContext::Url | TemplateContext::Body => lit.to_owned(),
    };
    if let Some(Part::Literal(prev)) = parts.last_mut() {
        prev.push_str(&text);
    } else {
        parts.push(Part::Literal(text));
    }
}

fn is_bad_header_char(c: char) -> bool {
    (c.is_control() && c != '\t') || c == '\u{7f}'
}

/// Escapes an environment value for `ctx`; the error never contains the value.
fn escape_env(raw: &str, ctx: TemplateContext) -> Result<String, &'static str> {
    Ok(match ctx {
        TemplateContext::Path => percent_encode(raw, false),
        TemplateContext::Header => {
            if raw.contains(is_bad_header_char) {
                return Err(
                    "its value contains a line break, NUL or another control character, which a header value cannot hold",
                );
            }
            raw.to_owned()
        }
        TemplateContext::JsonString => json_escape(raw),
        TemplateContext::Url | TemplateContext::Body => raw.to_owned(),
    })
}

/// Percent-encodes every byte not allowed unencoded in a path or query (RFC 3986 `pchar`,
/// `/` and `?`). `keep_percent` leaves `%` alone for text the user already encoded.
fn percent_encode(s: &str, keep_percent: bool) -> String {
    use std::fmt::Write;
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        let allowed = b.is_ascii_alphanumeric()
            || b"-._~!$&'()*+,;=:@/?".contains(&b)
            || (keep_percent && b == b'%');
        if allowed {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// The JSON string literal for `s`, without the surrounding quotes.
fn json_escape(s: &str) -> String {
    let quoted = serde_json::Value::String(s.to_owned()).to_string();
    quoted[1..quoted.len() - 1].to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn env(name: &str) -> Option<String> {
        match name {
            "API_KEY" => Some("s3cr\"et/ key".to_owned()),
            "BAD" => Some("a\r\nb".to_owned()),
            _ => None,
        }
    }

    fn ok(text: &str, ctx: TemplateContext) -> Compiled {
        match compile(text, ctx, &env) {
            Ok(c) => c,
            Err(e) => panic!("{text}: {e:?}"),
        }
    }

    fn err(text: &str, ctx: TemplateContext) -> Vec<TemplateError> {
        compile(text, ctx, &env).err().unwrap_or_default()
    }

    #[test]
    fn parses_every_placeholder_with_spaces_inside_braces() {
        let c = ok(
            "/a/{{ uuid }}/{{seq}}/{{random_key 10}}/x",
            TemplateContext::Path,
        );
        assert_eq!(
            c.template,
            Template::from_parts(
                vec![
                    Part::Literal("/a/".into()),
                    Part::Uuid,
                    Part::Literal("/".into()),
                    Part::Seq,
                    Part::Literal("/".into()),
                    Part::RandomKey(10),
                    Part::Literal("/x".into()),
                ],
                "/a/{{ uuid }}/{{seq}}/{{random_key 10}}/x".into()
            )
        );
        assert!(c.secrets.is_empty());
        assert_eq!(
            ok("/plain", TemplateContext::Path).template.as_static(),
            Some("/plain")
        );
    }

    #[test]
    fn env_values_are_escaped_for_their_context_and_kept_as_secrets() {
        let p = ok("/k/{{env.API_KEY}}", TemplateContext::Path);
        assert_eq!(p.template.as_static(), None);
        let mut out = String::new();
        let mut rng = SmallRng::seed_from_u64(1);
        p.template.render(
            &mut RenderCx {
                seq: 0,
                rng: &mut rng,
                vars: None,
            },
            &mut out,
        );
        assert_eq!(out, "/k/s3cr%22et/%20key");
        assert!(p.secrets.contains(&"s3cr\"et/ key".to_owned()));
        assert!(p.secrets.contains(&"s3cr%22et/%20key".to_owned()));

        let j = ok("{{env.API_KEY}}\n", TemplateContext::JsonString);
        let mut out = String::new();
        j.template.render(
            &mut RenderCx {
                seq: 0,
                rng: &mut rng,
                vars: None,
            },
            &mut out,
        );
        assert_eq!(out, "s3cr\\\"et/ key\\n");

        let h = ok("Bearer {{env.API_KEY}}", TemplateContext::Header);
        assert_eq!(h.template.source(), "Bearer {{env.API_KEY}}");
    }

    #[test]
    fn errors_name_the_problem_and_never_the_secret() {
        let e = err("x {{env.BAD}}", TemplateContext::Header);
        assert_eq!(e.len(), 1);
        assert_eq!(e[0].offset, 2);
        assert!(e[0].message.contains("\"BAD\""));
        assert!(!e[0].message.contains("a\r\nb"));

        let e = err(
            "{{env.MISSING}} {{nope}} {{random_key 0}} {{random_key}}",
            TemplateContext::Body,
        );
        assert_eq!(e.len(), 4);
        assert!(
            e[0].message
                .contains("environment variable \"MISSING\" is not set")
        );
        assert!(e[1].message.contains("unknown placeholder \"{{nope}}\""));
        assert!(e[1].message.contains("{{random_key N}}"));
        assert!(e[2].message.contains("invalid key count \"0\""));
        assert!(e[3].message.contains("needs a key count"));

        let e = err("/a/{{uuid", TemplateContext::Path);
        assert_eq!(e[0].offset, 3);
        assert!(e[0].message.starts_with("unclosed \"{{\""));

        assert!(
            err("/a b", TemplateContext::Path)[0]
                .message
                .contains("%20")
        );
        assert!(
            err("http://h/{{seq}}", TemplateContext::Url)[0]
                .message
                .contains("target.url")
        );
        assert!(
            err("{{env.1X}}", TemplateContext::Body)[0]
                .message
                .contains("invalid environment variable name")
        );
        assert!(!err("a\nb", TemplateContext::Header).is_empty());
    }

    #[test]
    fn literal_paths_keep_user_encoding_and_encode_the_rest() {
        let c = ok("/caf\u{e9}/%20?q=a|b", TemplateContext::Path);
        assert_eq!(c.template.as_static(), Some("/caf%C3%A9/%20?q=a%7Cb"));
        assert_eq!(c.template.source(), "/caf\u{e9}/%20?q=a|b");
    }

    #[test]
    fn render_with_a_seeded_rng_is_reproducible() {
        let t = ok(
            "/items/{{random_key 10}}/{{seq}}/{{uuid}}",
            TemplateContext::Path,
        )
        .template;
        let render = |seed: u64, seq: u64| {
            let mut rng = SmallRng::seed_from_u64(seed);
            let mut out = String::new();
            t.render(
                &mut RenderCx {
                    seq,
                    rng: &mut rng,
                    vars: None,
                },
                &mut out,
            );
            out
        };
        let a = render(42, 7);
        assert_eq!(a, render(42, 7));
        let fields: Vec<&str> = a.split('/').collect();
        assert_eq!(fields[1], "items");
        let k: u64 = fields[2]
            .strip_prefix("key-")
            .and_then(|n| n.parse().ok())
            .unwrap_or(99);
        assert!(k < 10);
        assert_eq!(fields[3], "7");
        let id = uuid::Uuid::parse_str(fields[4]);
        assert!(matches!(id, Ok(u) if u.get_version_num() == 4));
    }
}
