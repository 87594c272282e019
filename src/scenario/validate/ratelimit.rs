//! Validation of `[ratelimit]`: the declared limit and window, the tolerance, the policy
//! intended when the limiter's storage fails (`on_fault`), the keys and the load per key, the
//! statuses meaning "refused", and the limited call.

use std::time::Duration;

use toml::{Spanned, Value};

use super::super::plan::RateLimitPlan;
use super::super::raw::RawRateLimit;
use super::drivers::OpSpec;
use super::{Validator, show};
use crate::check::ratelimit::OnFault;

/// Highest number of admissions per window.
const MAX_LIMIT: i64 = 1_000_000;
/// Highest hit rate per key, hits per second.
const MAX_RATE: f64 = 1_000.0;
/// Most keys.
const MAX_KEYS: usize = 64;

const RL_HIT: OpSpec = OpSpec {
    name: "ratelimit.hit",
    vars: &["key", "limit", "window_ms"],
    reads: &[],
    done: false,
    every: false,
    empty: &[],
};

impl Validator<'_> {
    pub(super) fn ratelimit(
        &mut self,
        t: Option<&Spanned<RawRateLimit>>,
    ) -> Option<Option<RateLimitPlan>> {
        let Some(table) = t else { return Some(None) };
        let at = table.span().start;
        let r = table.get_ref();
        let before = self.errors.len();
        let limit = match &r.limit {
            None => {
                self.err(at, "ratelimit.limit", "missing limit: declare the limiter's limit per key per window, e.g. limit = 10 with window = \"1s\"");
                None
            }
            Some(v) => self.int_in(v, "ratelimit.limit", "limit", 1, MAX_LIMIT, "limit = 10"),
        };
        let window = match &r.window {
            None => {
                self.err(at, "ratelimit.window", "missing window: declare the limiter's window, e.g. window = \"1s\" with limit = 10");
                None
            }
            Some(v) => self.short_wait(v, "ratelimit.window", "window = \"1s\""),
        };
        let tolerance = match &r.tolerance {
            None => Some(0),
            Some(v) => self.int_in(
                v,
                "ratelimit.tolerance",
                "tolerance",
                0,
                MAX_LIMIT,
                "tolerance = 2",
            ),
        };
        let on_fault = self.on_fault(r.on_fault.as_ref());
        let keys = self.rl_keys(r.keys.as_ref());
        let clients = self.small_count(r.clients.as_ref(), "ratelimit.clients", 2, 1);
        let rate = self.rl_rate(r.rate.as_ref(), limit, window);
        let refused = match &r.refused {
            None => Some(vec![429]),
            Some(l) => self.status_list(l, "ratelimit.refused", "refused = [429, 503]"),
        };
        let hit = self.needed(
            r.hit.as_ref(),
            at,
            &RL_HIT,
            "[ratelimit.hit] with method = \"POST\" and path = \"/ratelimit/{{key}}?limit={{limit}}&window_ms={{window_ms}}\"",
        );
        if self.errors.len() > before {
            return None;
        }
        Some(Some(RateLimitPlan {
            limit: limit? as u64,
            window: window?,
            tolerance: tolerance? as u64,
            on_fault: on_fault?,
            keys: keys?,
            clients: clients?,
            rate: rate?,
            refused: refused?,
            hit: hit?,
        }))
    }

    fn on_fault(&mut self, v: Option<&Spanned<String>>) -> Option<Option<OnFault>> {
        let Some(v) = v else { return Some(None) };
        match v.get_ref().as_str() {
            "open" => Some(Some(OnFault::Open)),
            "closed" => Some(Some(OnFault::Closed)),
            "held" => Some(Some(OnFault::Held)),
            other => {
                self.err(v.span().start, "ratelimit.on_fault", format!("unknown policy {other:?}: expected \"open\" (admit everything while the limiter's storage fails), \"closed\" (refuse everything) or \"held\" (keep enforcing the limit)"));
                None
            }
        }
    }

    fn rl_keys(&mut self, v: Option<&Spanned<Vec<Spanned<String>>>>) -> Option<Vec<String>> {
        let Some(list) = v else {
            return Some(vec!["a".to_owned(), "b".to_owned()]);
        };
        let names: Vec<String> = list.get_ref().iter().map(|n| n.get_ref().clone()).collect();
        let mut seen = std::collections::BTreeSet::new();
        let dup = names.iter().find(|n| !seen.insert(n.as_str()));
        let msg = if names.is_empty() {
            Some("keys is empty: give at least one key, e.g. keys = [\"a\", \"b\"]".to_owned())
        } else if names.len() > MAX_KEYS {
            Some(format!(
                "{} keys: at most {MAX_KEYS}, e.g. keys = [\"a\", \"b\"]",
                names.len()
            ))
        } else if let Some(d) = dup {
            Some(format!(
                "key {d:?} is listed twice: each key has its own counter, list it once"
            ))
        } else {
            names
                .iter()
                .find(|n| n.is_empty() || n.len() > 64)
                .map(|bad| {
                    format!(
                        "invalid key {bad:?}: expected 1 to 64 characters, e.g. keys = [\"a\", \"b\"]"
                    )
                })
        };
        match msg {
            Some(m) => {
                self.err(list.span().start, "ratelimit.keys", m);
                None
            }
            None => Some(names),
        }
    }

    /// Hits per second per key: by default twice the limit, so the limit is exercised.
    fn rl_rate(
        &mut self,
        v: Option<&toml::Spanned<Value>>,
        limit: Option<usize>,
        window: Option<Duration>,
    ) -> Option<f64> {
        let Some(v) = v else {
            let (l, w) = (limit?, window?);
            return Some((2.0 * l as f64 / w.as_secs_f64()).clamp(0.1, MAX_RATE));
        };
        let n = match v.get_ref() {
            Value::Integer(i) => Some(*i as f64),
            Value::Float(f) => Some(*f),
            _ => None,
        };
        match n {
            Some(n) if n > 0.0 && n <= MAX_RATE && n.is_finite() => Some(n),
            _ => {
                self.err(v.span().start, "ratelimit.rate", format!("invalid rate {}: expected hits per second per key, above 0 and at most 1000, e.g. rate = 20 (above limit / window, so the limit is exercised)", show(v.get_ref())));
                None
            }
        }
    }
}
