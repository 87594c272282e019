//! Secret redaction: every value read from the environment is replaced by `***` in anything
//! kvchaos writes (reports, logs, live lines, error messages, `worker.log`, `mockkv.json`,
//! `history.jsonl`). A secret is masked in each form a Worker or a library may turn it into:
//! raw, percent-encoded, JSON- and JS-escaped, and base64 (whole, or inside a Basic
//! credential such as `user:SECRET`), see [`encodings`].
//!
//! Does not own: where secrets come from (scenario validation registers every `{{env.*}}`).

mod encodings;

use std::borrow::Cow;

/// The placeholder written in place of a secret.
pub const MASK: &str = "***";

/// Values that must never appear in output, with every encoding of each.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Redactor {
    /// The secrets as given.
    secrets: Vec<String>,
    /// Every form masked (the secrets and their encodings), longest first.
    patterns: Vec<Vec<u8>>,
}

impl std::fmt::Debug for Redactor {
    // Never print the secrets themselves (plans are Debug-printed in tests and errors).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Redactor({} secrets)", self.secrets.len())
    }
}

impl Redactor {
    /// Registers a secret and its encodings. Empty values are ignored (they would match
    /// everywhere).
    pub fn add(&mut self, secret: impl Into<String>) {
        let secret = secret.into();
        if secret.is_empty() || self.secrets.contains(&secret) {
            return;
        }
        for form in encodings::forms(&secret) {
            if !form.is_empty() && !self.patterns.contains(&form) {
                self.patterns.push(form);
            }
        }
        self.secrets.push(secret);
        // Longest first, so a form that contains another is masked whole.
        self.patterns.sort_by_key(|s| std::cmp::Reverse(s.len()));
    }

    /// Whether any secret is registered.
    pub fn is_empty(&self) -> bool {
        self.secrets.is_empty()
    }

    /// The length in bytes of the longest masked form (0 with no secrets).
    pub fn longest(&self) -> usize {
        self.patterns.first().map_or(0, Vec::len)
    }

    /// `text` with every secret, in every registered form, replaced by [`MASK`].
    pub fn redact<'a>(&self, text: &'a str) -> Cow<'a, str> {
        match self.redact_bytes(text.as_bytes()) {
            Cow::Borrowed(_) => Cow::Borrowed(text),
            // Masks replace whole forms, each a valid UTF-8 string or pure ASCII, but a form
            // may start inside a multi-byte character of the text: keep what is valid.
            Cow::Owned(b) => Cow::Owned(String::from_utf8_lossy(&b).into_owned()),
        }
    }

    /// `bytes` with every registered form replaced by [`MASK`].
    pub fn redact_bytes<'a>(&self, bytes: &'a [u8]) -> Cow<'a, [u8]> {
        if !self.patterns.iter().any(|p| contains(bytes, p)) {
            return Cow::Borrowed(bytes);
        }
        let mut out = bytes.to_vec();
        for p in &self.patterns {
            if contains(&out, p) {
                out = replace(&out, p, MASK.as_bytes());
            }
        }
        Cow::Owned(out)
    }

    /// Redacts every string (and every object key) in a JSON value in place. Walking the value
    /// rather than its text keeps the JSON valid whatever a secret contains.
    pub fn redact_json(&self, v: &mut serde_json::Value) {
        use serde_json::Value;
        if self.is_empty() {
            return;
        }
        match v {
            Value::String(s) => {
                if let Cow::Owned(r) = self.redact(s) {
                    *s = r;
                }
            }
            Value::Array(items) => items.iter_mut().for_each(|i| self.redact_json(i)),
            Value::Object(map) => {
                let old = std::mem::take(map);
                for (k, mut val) in old {
                    self.redact_json(&mut val);
                    map.insert(self.redact(&k).into_owned(), val);
                }
            }
            Value::Null | Value::Bool(_) | Value::Number(_) => {}
        }
    }

    /// `value` as a JSON value with every secret masked (`Null` if it cannot be serialized).
    pub fn redacted<T: serde::Serialize>(&self, value: &T) -> serde_json::Value {
        let mut v = serde_json::to_value(value).unwrap_or_default();
        self.redact_json(&mut v);
        v
    }

    /// `value` serialized as pretty JSON with every secret masked (for files such as
    /// `mockkv.json`).
    pub fn to_json_pretty<T: serde::Serialize>(&self, value: &T) -> serde_json::Result<String> {
        let mut v = serde_json::to_value(value)?;
        self.redact_json(&mut v);
        serde_json::to_string_pretty(&v)
    }
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && hay.windows(needle.len()).any(|w| w == needle)
}

fn replace(hay: &[u8], needle: &[u8], with: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(hay.len());
    let mut i = 0;
    while i < hay.len() {
        if hay[i..].starts_with(needle) {
            out.extend_from_slice(with);
            i += needle.len();
        } else {
            out.push(hay[i]);
            i += 1;
        }
    }
    out
}

#[cfg(test)]
mod tests;
