//! Probing: one GET per check through the shared REST client, turned into an
//! [`Observation`] (the JSON values at the check's pointers, or a probe result, or why no
//! usable answer came). Owns the I/O of a watch evaluation's reads and their bounds (body
//! size, timeout). Does not own what the values mean ([`super::judge`]).

use http::Method;
use serde_json::Value;

use super::config::{Check, CheckKind, ErrorSource};
use crate::redact::Redactor;
use crate::rest::{Call, Client};

/// The largest probe answer read (a status endpoint answers a few hundred bytes).
pub const MAX_PROBE_BYTES: usize = 1024 * 1024;
/// Characters of a failing answer's body quoted in evidence.
const BODY_EXCERPT: usize = 200;

/// What one probe of one check saw.
#[derive(Debug, Clone, PartialEq)]
pub struct Observation {
    /// When the probe was sent, ms since the Unix epoch (on the caller's clock).
    pub at_ms: u64,
    /// The reading, or why there is none (transport error, status, body, pointer).
    pub result: Result<Reading, String>,
}

/// A usable answer.
#[derive(Debug, Clone, PartialEq)]
pub enum Reading {
    /// The values at the check's JSON pointers, in order (one; or errors then total).
    Values {
        /// The HTTP status (2xx).
        status: u16,
        /// The values found.
        values: Vec<Value>,
    },
    /// An error-rate check over probes: whether this probe succeeded.
    Probe {
        /// 2xx or 3xx.
        ok: bool,
        /// The status or the transport error, for evidence.
        detail: String,
    },
}

/// The JSON pointers a check reads.
fn pointers(check: &Check) -> Vec<&str> {
    match &check.kind {
        CheckKind::Cron { pointer, .. } | CheckKind::Counter { pointer, .. } => vec![pointer],
        CheckKind::ErrorRate {
            source: ErrorSource::Stats { errors, total },
            ..
        } => vec![errors, total],
        CheckKind::ErrorRate { .. } => Vec::new(),
    }
}

/// Probes `check` once; `at_ms` is the evaluation time recorded in the observation. Errors
/// are redacted with `redactor` (a URL may carry a token).
pub async fn probe(
    client: &mut Client,
    check: &Check,
    at_ms: u64,
    redactor: &Redactor,
) -> Observation {
    let mut call = Call::new(Method::GET, check.url.clone()).header("accept", "application/json");
    for (k, v) in &check.headers {
        call = call.header(k, v.clone());
    }
    let answer = client.send(call).await;
    let clean = |s: String| redactor.redact(&s).into_owned();
    let result = match (&check.kind, answer) {
        (
            CheckKind::ErrorRate {
                source: ErrorSource::Probes,
                ..
            },
            Ok(r),
        ) => Ok(Reading::Probe {
            ok: r.status.is_success() || r.status.is_redirection(),
            detail: format!("HTTP {}", r.status.as_u16()),
        }),
        (
            CheckKind::ErrorRate {
                source: ErrorSource::Probes,
                ..
            },
            Err(e),
        ) => Ok(Reading::Probe {
            ok: false,
            detail: clean(e.to_string()),
        }),
        (_, Err(e)) => Err(clean(e.to_string())),
        (_, Ok(r)) if !r.status.is_success() => Err(clean(format!(
            "HTTP {} from {}: {}",
            r.status.as_u16(),
            shown(&check.url),
            excerpt(&r.text())
        ))),
        (_, Ok(r)) => read_values(&r.body, &pointers(check))
            .map(|values| Reading::Values {
                status: r.status.as_u16(),
                values,
            })
            .map_err(|e| clean(format!("{}: {e}", shown(&check.url)))),
    };
    Observation { at_ms, result }
}

/// The values at `pointers` in a JSON `body`.
pub fn read_values(body: &[u8], pointers: &[&str]) -> Result<Vec<Value>, String> {
    let doc: Value = serde_json::from_slice(body).map_err(|e| {
        format!(
            "the answer is not JSON ({e}): {}",
            excerpt(&String::from_utf8_lossy(body))
        )
    })?;
    pointers
        .iter()
        .map(|p| {
            doc.pointer(p).cloned().ok_or_else(|| {
                format!(
                    "no value at JSON pointer \"{p}\" in the answer {}",
                    excerpt(&doc.to_string())
                )
            })
        })
        .collect()
}

fn excerpt(text: &str) -> String {
    let t: String = text.chars().take(BODY_EXCERPT).collect();
    if t.len() < text.len() {
        format!("{t}...")
    } else {
        t
    }
}

/// The URL without its query (which may carry a token).
fn shown(url: &str) -> &str {
    url.split(['?', '#']).next().unwrap_or(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_read_at_pointers_and_misses_are_named() {
        let body = br#"{"last_run": 1700000040000, "stats": {"errors": 2, "requests": 10}}"#;
        assert_eq!(
            read_values(body, &["/last_run"]),
            Ok(vec![serde_json::json!(1_700_000_040_000u64)])
        );
        assert_eq!(
            read_values(body, &["/stats/errors", "/stats/requests"]),
            Ok(vec![serde_json::json!(2), serde_json::json!(10)])
        );
        let e = read_values(body, &["/runs"]).expect_err("missing");
        assert!(e.contains("\"/runs\""), "{e}");
        let e = read_values(b"<html>oops</html>", &["/x"]).expect_err("not json");
        assert!(e.contains("not JSON") && e.contains("<html>"), "{e}");
    }

    #[test]
    fn excerpts_are_bounded() {
        assert_eq!(excerpt(&"é".repeat(500)).chars().count(), BODY_EXCERPT + 3);
        assert_eq!(shown("https://x/y?token=s"), "https://x/y");
    }
}
