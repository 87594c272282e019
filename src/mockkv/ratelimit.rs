//! The REST API's request-rate limit: Cloudflare allows 1,200 requests per 5 minutes per user
//! and answers every call past it with 429 and `Retry-After` until the window is over.
//!
//! Owns: the limit's value type ([`RestRateLimit`], parsed from `1200/5m`), fixed windows per
//! account on the mock's virtual clock, and the count of every REST request the mock answered
//! (what a test reads to measure how many requests a command cost). Does not own: the answer's
//! wire format (see [`super::rest`]) or the daily KV quotas (see [`super::quota`]).

use std::collections::HashMap;
use std::str::FromStr;
use std::time::Duration;

/// At most `requests` REST requests per `window` per account.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RestRateLimit {
    /// Requests admitted per window.
    pub requests: u64,
    /// Window length (virtual time).
    pub window: Duration,
}

impl RestRateLimit {
    /// Cloudflare's limit: 1,200 requests per 5 minutes.
    pub const CLOUDFLARE: RestRateLimit = RestRateLimit {
        requests: 1200,
        window: Duration::from_secs(300),
    };
}

impl FromStr for RestRateLimit {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("invalid rate limit '{s}': expected REQUESTS/WINDOW, e.g. 1200/5m");
        let (n, w) = s.split_once('/').ok_or_else(bad)?;
        let requests: u64 = n.trim().parse().map_err(|_| bad())?;
        let window = humantime::parse_duration(w.trim()).map_err(|_| bad())?;
        if requests == 0 || window.is_zero() {
            return Err(bad());
        }
        Ok(RestRateLimit { requests, window })
    }
}

/// Windows per account and the request counter. Not synchronised: the caller holds it behind
/// the mock's mutex.
#[derive(Debug, Default)]
pub(crate) struct RestWindows {
    limit: Option<RestRateLimit>,
    /// account → (window start in virtual ms, requests in it).
    windows: HashMap<String, (u64, u64)>,
    requests: u64,
}

impl RestWindows {
    pub(crate) fn new(limit: Option<RestRateLimit>) -> Self {
        Self {
            limit,
            ..Self::default()
        }
    }

    pub(crate) fn set_limit(&mut self, limit: Option<RestRateLimit>) {
        self.limit = limit;
        self.windows.clear();
    }

    pub(crate) fn requests(&self) -> u64 {
        self.requests
    }

    /// Count one request; `Err(seconds)` when it is over the limit: retry after that long.
    pub(crate) fn admit(&mut self, account: &str, now_ms: u64) -> Result<(), u64> {
        self.requests += 1;
        let Some(limit) = self.limit else {
            return Ok(());
        };
        let window_ms = u64::try_from(limit.window.as_millis()).unwrap_or(u64::MAX);
        let (start, count) = self
            .windows
            .entry(account.to_owned())
            .or_insert((now_ms, 0));
        if now_ms >= start.saturating_add(window_ms) {
            *start = now_ms;
            *count = 0;
        }
        *count += 1;
        if *count > limit.requests {
            let left_ms = start.saturating_add(window_ms).saturating_sub(now_ms);
            return Err(left_ms.div_ceil(1000).max(1));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_refuses_with_the_fix() {
        assert_eq!(
            "1200/5m".parse::<RestRateLimit>().unwrap(),
            RestRateLimit::CLOUDFLARE
        );
        let e = "fast".parse::<RestRateLimit>().unwrap_err();
        assert!(e.contains("e.g. 1200/5m"), "{e}");
        assert!("0/5m".parse::<RestRateLimit>().is_err());
    }

    #[test]
    fn a_window_admits_its_requests_then_says_how_long_to_wait() {
        let mut w = RestWindows::new(Some("2/10s".parse().unwrap()));
        assert_eq!(w.admit("a", 1_000), Ok(()));
        assert_eq!(w.admit("a", 2_000), Ok(()));
        assert_eq!(
            w.admit("a", 2_500),
            Err(9),
            "the window ends at 11 s: 8.5 s, rounded up"
        );
        assert_eq!(w.admit("b", 2_500), Ok(()), "per account");
        assert_eq!(w.admit("a", 11_000), Ok(()), "a new window");
        assert_eq!(w.requests(), 5, "refused requests are counted too");
    }
}
