//! kvchaos's side of the shim's control routes: signed requests to install a fault schedule,
//! halt it, read what it injected, and run the Worker's scheduled handler; and the guard that
//! checks a response came from the expected shimmed script.
//!
//! Every request is signed: HMAC-SHA256 under the shared secret of
//! `METHOD\nPATH\nTIMESTAMP\nNONCE\nBODY`, with a millisecond timestamp the shim accepts within
//! 60 s and a nonce it never accepts twice, so a captured request cannot be replayed.

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hmac::{Hmac, Mac};
use http::Method;
use rand::Rng;
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::rest::{Call, Client, HttpError, Response};

/// The header the shim puts on every response.
pub const SHIM_HEADER: &str = "x-kvchaos-shim";

/// One fault of a schedule, times from the moment the shim receives it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ShimFault {
    /// The mock's fault kind name (`daily-limit`, `rate-limit`, `error`, ...).
    pub kind: String,
    /// Operations hit (`get`, `put`, `delete`, `list`); empty: all.
    pub ops: Vec<String>,
    /// Key prefix hit.
    pub prefix: String,
    /// The KV binding hit; `None`: every binding.
    pub namespace: Option<String>,
    /// Probability an operation is hit.
    pub p: f64,
    /// Status of an `error` fault.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// Delay of a `latency` fault, ms.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub latency_ms: Option<u64>,
    /// Extra random delay, ms.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jitter_ms: Option<u64>,
    /// Age of a stale read, ms.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lag_ms: Option<u64>,
    /// Start, ms after the schedule arrives.
    pub at_ms: u64,
    /// End, ms after the schedule arrives; `None`: until the schedule expires.
    pub until_ms: Option<u64>,
}

/// A fault timeline for the shim.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Schedule {
    /// Names this schedule in the shim's responses and stats.
    pub id: String,
    /// The faults, indexed as in the scenario.
    pub faults: Vec<ShimFault>,
    /// The shim drops the schedule this long after receiving it, whatever happens to kvchaos.
    pub expires_in_ms: u64,
    /// Real KV writes (put, delete) the shim lets through while the schedule is active.
    pub max_writes: Option<u64>,
}

/// What the shim injected, from its stats route.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct ShimStats {
    /// The active schedule, if any.
    pub schedule: Option<String>,
    /// Operations hit, per fault index.
    #[serde(default)]
    pub injected: BTreeMap<String, u64>,
    /// Real KV writes let through.
    #[serde(default)]
    pub writes: u64,
    /// Writes refused by the write cap.
    #[serde(default)]
    pub capped: u64,
}

impl ShimStats {
    /// Operations fault `index` hit.
    pub fn hits(&self, index: usize) -> u64 {
        self.injected.get(&index.to_string()).copied().unwrap_or(0)
    }
}

/// The outcome of a scheduled-handler run through the shim.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ScheduledRun {
    /// Whether the handler finished without throwing.
    pub ok: bool,
    /// The exception's message, if it threw.
    #[serde(default)]
    pub error: Option<String>,
    /// Its stack.
    #[serde(default)]
    pub stack: Option<String>,
}

/// Why a control request failed.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    /// No HTTP answer.
    #[error(transparent)]
    Http(#[from] HttpError),
    /// The shim refused or did not understand the request.
    #[error("the shim answered {status} to {route}: {message}")]
    Refused {
        /// The route.
        route: &'static str,
        /// The status.
        status: u16,
        /// The shim's error text.
        message: String,
    },
    /// The answer did not come from the expected script.
    #[error(transparent)]
    Guard(#[from] GuardError),
}

/// A response that did not come from the expected shimmed script.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GuardError {
    /// No shim header: production, or a version without the shim, answered.
    #[error(
        "the answer has no {SHIM_HEADER} header: this is not the shimmed canary (production, or a version override that fell back?)"
    )]
    NoShim,
    /// Another script answered.
    #[error("the answer came from script \"{found}\", not the expected \"{expected}\"")]
    WrongScript {
        /// What `[target] expect_script` says.
        expected: String,
        /// What the shim reported.
        found: String,
    },
    /// Another version answered (an override that fell back, or a shim without the version).
    #[error(
        "the answer came from version \"{found}\", not the expected \"{expected}\" (a version override that fell back to the deployed version?)"
    )]
    WrongVersion {
        /// The version id `[target] expect_script` names.
        expected: String,
        /// What the shim reported (`none` when it knows no version).
        found: String,
    },
}

/// Checks the shim header of `response` names `expected`.
pub fn guard(response: &Response, expected: &str) -> Result<(), GuardError> {
    guard_header(response.header(SHIM_HEADER), expected)
}

/// Checks a shim header value (`None`: the answer had none) names `expected`: the version id
/// the shim reports when `expected` is one (UUID-shaped, see [`is_version_id`]), else its script.
pub fn guard_header(header: Option<&str>, expected: &str) -> Result<(), GuardError> {
    let header = header.ok_or(GuardError::NoShim)?;
    let field = |name: &str| {
        header
            .split(';')
            .filter_map(|p| p.trim().strip_prefix(name))
            .next()
            .unwrap_or("")
            .to_owned()
    };
    if is_version_id(expected) {
        let found = field("version=");
        return if found.eq_ignore_ascii_case(expected) {
            Ok(())
        } else {
            Err(GuardError::WrongVersion {
                expected: expected.to_owned(),
                found,
            })
        };
    }
    let found = field("script=");
    if found == expected {
        Ok(())
    } else {
        Err(GuardError::WrongScript {
            expected: expected.to_owned(),
            found,
        })
    }
}

/// Whether `expect_script` is a version id (a UUID, as Cloudflare's version ids are) rather than
/// a script name: 8-4-4-4-12 hex digits.
pub fn is_version_id(s: &str) -> bool {
    let groups: Vec<&str> = s.split('-').collect();
    groups.len() == 5
        && groups
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(g, n)| g.len() == n && g.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// The guard on answers that do not pass through [`Shim`] (the drivers' requests): each
/// answer's shim header is checked against the expected script, and the first mismatch is kept
/// for the run, which stops before any fault (shared by every driver client; cheap to clone).
#[derive(Clone, Debug, Default)]
pub struct AnswerGuard {
    /// `[target] expect_script`; `None` off a canary run (nothing is checked).
    expected: Option<Arc<str>>,
    failure: Arc<OnceLock<String>>,
}

impl AnswerGuard {
    /// A guard expecting `expected` (`None`: no canary, every answer passes).
    pub fn new(expected: Option<&str>) -> AnswerGuard {
        AnswerGuard {
            expected: expected.map(Arc::from),
            failure: Arc::default(),
        }
    }

    /// Checks one answer's shim header (`None`: it had none) and names its `status` if it
    /// fails; `during` says whose answer it was.
    pub fn check(&self, header: Option<&str>, status: u16, during: &str) {
        let Some(expected) = &self.expected else {
            return;
        };
        if let Err(e) = guard_header(header, expected) {
            // The first mismatch is the one to report; the rest follow from it.
            let _ = self
                .failure
                .set(format!("during {during}, {e}; it was HTTP {status}"));
        }
    }

    /// The first answer that did not come from the expected shim.
    pub fn failure(&self) -> Option<String> {
        self.failure.get().cloned()
    }
}

/// A control connection to one shimmed canary.
pub struct Shim {
    base: url::Url,
    secret: String,
    expect_script: String,
    client: Client,
    /// Extra headers every control request carries (a version override, say).
    headers: Vec<(String, String)>,
}

impl Shim {
    /// Controls the shim at `base` (its origin; control paths are absolute), with `secret`,
    /// answering only as `expect_script`.
    pub fn new(base: url::Url, secret: String, expect_script: String, timeout: Duration) -> Shim {
        Shim {
            base,
            secret,
            expect_script,
            client: Client::new(timeout).body_limit(1024 * 1024),
            headers: Vec::new(),
        }
    }

    /// Sends `header` with every control request (e.g. `Cloudflare-Workers-Version-Overrides`).
    pub fn with_header(mut self, name: &str, value: &str) -> Shim {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    /// Installs `schedule`, replacing any other.
    pub async fn schedule(&mut self, schedule: &Schedule) -> Result<(), ControlError> {
        let body = serde_json::to_string(schedule).expect("a schedule serialises");
        self.post("schedule", body).await.map(drop)
    }

    /// Clears every fault at once.
    pub async fn halt(&mut self) -> Result<(), ControlError> {
        self.post("halt", String::new()).await.map(drop)
    }

    /// What the shim injected so far.
    pub async fn stats(&mut self) -> Result<ShimStats, ControlError> {
        let r = self.post("stats", String::new()).await?;
        serde_json::from_slice(&r.body).map_err(|e| ControlError::Refused {
            route: "stats",
            status: r.status.as_u16(),
            message: format!("unreadable stats: {e}"),
        })
    }

    /// Runs the Worker's scheduled handler for `cron` at `scheduled_time_ms`.
    pub async fn scheduled(
        &mut self,
        cron: &str,
        scheduled_time_ms: u64,
    ) -> Result<ScheduledRun, ControlError> {
        let body = serde_json::json!({"cron": cron, "scheduled_time": scheduled_time_ms});
        let r = self.post("scheduled", body.to_string()).await?;
        serde_json::from_slice(&r.body).map_err(|e| ControlError::Refused {
            route: "scheduled",
            status: r.status.as_u16(),
            message: format!("unreadable answer: {e}"),
        })
    }

    async fn post(&mut self, route: &'static str, body: String) -> Result<Response, ControlError> {
        let path = format!("/__kvchaos/{route}");
        let mut url = self.base.clone();
        url.set_path(&path);
        url.set_query(None);
        let ts = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_millis()
            .to_string();
        let nonce = nonce();
        let signature = sign(&self.secret, "POST", &path, &ts, &nonce, &body);
        let mut call = Call::new(Method::POST, url.as_str())
            .header("x-kvchaos-timestamp", ts)
            .header("x-kvchaos-nonce", nonce)
            .header("x-kvchaos-signature", signature)
            .header("content-type", "application/json")
            .body(body);
        for (k, v) in &self.headers {
            call = call.header(k, v.clone());
        }
        let r = self.client.send(call).await?;
        guard(&r, &self.expect_script)?;
        if !r.status.is_success() {
            let message = serde_json::from_slice::<serde_json::Value>(&r.body)
                .ok()
                .and_then(|v| v.get("error").and_then(|e| e.as_str()).map(str::to_owned))
                .unwrap_or_else(|| r.text().chars().take(200).collect());
            return Err(ControlError::Refused {
                route,
                status: r.status.as_u16(),
                message,
            });
        }
        Ok(r)
    }
}

/// A fresh random nonce (128 bits, hex).
fn nonce() -> String {
    let n: u128 = rand::rng().random();
    format!("{n:032x}")
}

/// The hex HMAC-SHA256 of a control request.
pub fn sign(secret: &str, method: &str, path: &str, ts: &str, nonce: &str, body: &str) -> String {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes keys of any size");
    mac.update(format!("{method}\n{path}\n{ts}\n{nonce}\n{body}").as_bytes());
    mac.finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::{HeaderMap, HeaderValue, StatusCode};

    fn answer(header: Option<&str>) -> Response {
        let mut headers = HeaderMap::new();
        if let Some(h) = header {
            headers.insert(SHIM_HEADER, HeaderValue::from_str(h).unwrap());
        }
        Response {
            status: StatusCode::OK,
            headers,
            body: bytes::Bytes::new(),
        }
    }

    #[test]
    fn the_guard_accepts_only_the_expected_script() {
        let ok = answer(Some("script=hub-canary; schedule=none"));
        assert_eq!(guard(&ok, "hub-canary"), Ok(()));
        assert_eq!(guard(&answer(None), "hub-canary"), Err(GuardError::NoShim));
        assert_eq!(
            guard(&answer(Some("script=hub; schedule=s1")), "hub-canary"),
            Err(GuardError::WrongScript {
                expected: "hub-canary".into(),
                found: "hub".into()
            })
        );
        // A prefix of the name is another script.
        assert!(guard(&answer(Some("script=hub-canary-2")), "hub-canary").is_err());
    }

    #[test]
    fn a_uuid_expects_the_version_the_shim_reports() {
        let v = "0f6a3b3e-9c1d-4e2a-8b7c-5d4e3f2a1b0c";
        assert!(is_version_id(v) && is_version_id(&v.to_uppercase()));
        for name in [
            "hub-canary",
            "0f6a3b3e-9c1d-4e2a-8b7c-5d4e3f2a1b0",
            "g0000000-0000-0000-0000-000000000000",
        ] {
            assert!(!is_version_id(name), "{name}");
        }
        let from = |version: &str| format!("script=hub-canary; version={version}; schedule=none");
        assert_eq!(guard(&answer(Some(&from(v))), v), Ok(()));
        assert_eq!(guard(&answer(Some(&from(&v.to_uppercase()))), v), Ok(()));
        let other = "11111111-2222-4333-8444-555555555555";
        assert_eq!(
            guard(&answer(Some(&from(other))), v),
            Err(GuardError::WrongVersion {
                expected: v.into(),
                found: other.into()
            })
        );
        // A shim that knows no version (no binding) never passes for one.
        let none = guard(&answer(Some("script=hub-canary; schedule=none")), v);
        assert_eq!(
            none,
            Err(GuardError::WrongVersion {
                expected: v.into(),
                found: String::new()
            })
        );
        assert!(guard(&answer(Some(&from("none"))), v).is_err());
        // A script name is still matched against the script, whatever the version.
        assert_eq!(guard(&answer(Some(&from(v))), "hub-canary"), Ok(()));
    }

    #[test]
    fn signatures_are_hmac_sha256_of_the_whole_request() {
        // RFC 4231 test case 2: key "Jefe", data "what do ya want for nothing?".
        let mut mac = Hmac::<Sha256>::new_from_slice(b"Jefe").unwrap();
        mac.update(b"what do ya want for nothing?");
        let hex: String = mac
            .finalize()
            .into_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(
            hex,
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        let a = sign("s", "POST", "/__kvchaos/halt", "1", "n", "");
        assert_eq!(a.len(), 64);
        assert_ne!(a, sign("s", "POST", "/__kvchaos/halt", "2", "n", ""));
        assert_ne!(a, sign("s", "POST", "/__kvchaos/stats", "1", "n", ""));
        assert_ne!(a, sign("t", "POST", "/__kvchaos/halt", "1", "n", ""));
        assert_ne!(a, sign("s", "POST", "/__kvchaos/halt", "1", "n", "x"));
    }

    #[test]
    fn nonces_do_not_repeat() {
        let a: std::collections::HashSet<String> = (0..1000).map(|_| nonce()).collect();
        assert_eq!(a.len(), 1000);
        assert!(a.iter().all(|n| n.len() == 32));
    }
}
