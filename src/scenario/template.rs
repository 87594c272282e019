//! Request templates: `{{uuid}}`, `{{seq}}`, `{{random_key N}}`, `{{env.NAME}}`.
//!
//! Templates are compiled once during validation; rendering on the hot path only appends
//! to a reusable buffer.

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
}

/// Values a template may draw on when rendered.
pub struct RenderCx<'a> {
    /// Sequence number of this request in the run.
    pub seq: u64,
    /// Seeded generator for this request.
    pub rng: &'a mut SmallRng,
}

impl Template {
    /// Builds a template from already-parsed parts; `source` is the text as written.
    pub fn from_parts(parts: Vec<Part>, source: String) -> Self {
        Template { parts, source }
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
            }
        }
    }
}
