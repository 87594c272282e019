//! A validated replay phase: which capture, how fast, which events, which headers.
//!
//! Also the pure parts of replaying that tests check against the capture: [`Pacer`] (intended
//! offsets from `t_ms`, speed and `max_gap`), [`ReplayPlan::selects`] (filters and seeded
//! sampling) and [`ReplayPlan::headers`] (what is sent of a recorded request's headers).

use std::path::PathBuf;
use std::time::Duration;

use http::HeaderName;

use super::Format;
use super::record::Record;
use super::route::Pattern;
use crate::scenario::template::Template;

/// Headers never sent from a capture unless `keep_headers` names them: credentials.
pub const CREDENTIAL_HEADERS: &[&str] = &["authorization", "cookie", "proxy-authorization"];

/// Headers added by Cloudflare's edge or a proxy on the way to the recorded Worker, or owned by
/// the connection; they are never replayed (the sender sets `host` and `content-length`).
pub const EDGE_HEADERS: &[&str] = &[
    "host",
    "content-length",
    "connection",
    "transfer-encoding",
    "cf-connecting-ip",
    "cf-connecting-ipv6",
    "cf-ipcountry",
    "cf-ray",
    "cf-visitor",
    "cf-worker",
    "cdn-loop",
    "x-forwarded-for",
    "x-forwarded-proto",
    "x-real-ip",
    "true-client-ip",
];

/// The value wrangler tail writes in place of a sensitive header's value.
pub const REDACTED: &str = "REDACTED";

/// How often the capture is played.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Loops {
    /// A number of passes (1 by default).
    Times(u32),
    /// Again and again until the phase's `duration` is over.
    UntilEnd,
}

impl Loops {
    /// Whether pass `pass` (counted from 0) of the capture is sent.
    pub fn runs(&self, pass: u32) -> bool {
        match self {
            Loops::Times(n) => pass < *n,
            Loops::UntilEnd => true,
        }
    }
}

/// `only` / `skip`: an event matches when every given criterion matches.
#[derive(Debug, Clone)]
pub struct Filter {
    /// Methods (upper case); empty: any.
    pub methods: Vec<String>,
    /// A regular expression over the path (without the query).
    pub path: Option<regex::Regex>,
    /// Tail outcomes (`ok`, `exception`, ...); empty: any.
    pub outcomes: Vec<String>,
}

impl Filter {
    /// Whether `r` matches.
    pub fn matches(&self, r: &Record, path: &str) -> bool {
        (self.methods.is_empty() || self.methods.contains(&r.method))
            && self.path.as_ref().is_none_or(|re| re.is_match(path))
            && (self.outcomes.is_empty()
                || r.outcome
                    .as_ref()
                    .is_some_and(|o| self.outcomes.iter().any(|x| x == o)))
    }
}

/// One `[[phases]] replay = ...` after validation.
#[derive(Debug, Clone)]
pub struct ReplayPlan {
    /// The capture, resolved against the scenario's folder.
    pub path: PathBuf,
    /// Its format (given or detected at validation).
    pub format: Format,
    /// Playback speed: 2.0 sends twice as fast as recorded.
    pub speed: f64,
    /// Idle gaps (after `speed`) longer than this are shortened to it.
    pub max_gap: Option<Duration>,
    /// Passes over the capture.
    pub loops: Loops,
    /// Share of events kept, 0..=1, chosen by the scenario seed.
    pub sample: Option<f64>,
    /// Only events matching this are sent.
    pub only: Option<Filter>,
    /// Events matching this are not sent.
    pub skip: Option<Filter>,
    /// Headers set on every request (replacing recorded ones; may fill `REDACTED` values).
    pub set_headers: Vec<(HeaderName, Template)>,
    /// Recorded headers not sent (lower case).
    pub drop_headers: Vec<String>,
    /// Credential headers that are sent after all (lower case).
    pub keep_headers: Vec<String>,
    /// Route patterns for reports.
    pub groups: Vec<Pattern>,
    /// Path prefix rewrites (`rewrite = { "/api/v1/" = "/v1/" }`), longest `from` first.
    pub rewrite: Vec<(String, String)>,
    /// Requests that may be in flight at once; an event due while all are busy is dropped.
    pub max_in_flight: usize,
    /// Time allowed per request.
    pub timeout: Duration,
    /// Fire the capture's cron events at their scaled times (`crons = "recorded"`).
    pub recorded_crons: bool,
    /// Routes of the selected fetch events, in first-seen order (report rows).
    pub routes: Vec<String>,
    /// Selected fetch events in one pass.
    pub fetches: u64,
    /// Selected cron, alarm and queue events in one pass.
    pub others: [u64; 3],
    /// Length of one pass at speed, after `max_gap`: the last event's intended offset.
    pub pass: Duration,
}

impl PartialEq for ReplayPlan {
    fn eq(&self, other: &Self) -> bool {
        // Regexes have no equality; plans are compared by what they replay and how.
        self.path == other.path
            && self.format == other.format
            && self.speed == other.speed
            && self.max_gap == other.max_gap
            && self.loops == other.loops
            && self.sample == other.sample
            && self.rewrite == other.rewrite
            && self.routes == other.routes
    }
}

/// Most routes a replay phase keeps rows for; further routes share [`OTHER_ROUTES`].
pub const MAX_ROUTES: usize = 200;
/// The row of routes past [`MAX_ROUTES`].
pub const OTHER_ROUTES: &str = "(other routes)";

impl ReplayPlan {
    /// The path and query sent for a fetch record: the recorded ones with the longest
    /// matching `rewrite` prefix replaced. Filters and routes see this path too.
    pub fn path_of(&self, r: &Record) -> String {
        rewrite_path(&self.rewrite, r.path_and_query())
    }

    /// Whether event number `index` of a pass is sent (filters, then the seeded sample).
    pub fn selects(&self, seed: u64, index: u64, r: &Record) -> bool {
        let path = self.path_of(r);
        let path = path.split('?').next().unwrap_or("/");
        if self.only.as_ref().is_some_and(|f| !f.matches(r, path)) {
            return false;
        }
        if self.skip.as_ref().is_some_and(|f| f.matches(r, path)) {
            return false;
        }
        match self.sample {
            None => true,
            Some(share) => {
                let x = crate::replay::plan::mix(seed ^ 0x5a3b_1e00, index);
                ((x >> 11) as f64 / (1u64 << 53) as f64) < share
            }
        }
    }

    /// The route row of a fetch record.
    pub fn route_of(&self, r: &Record) -> String {
        super::route::route(&r.method, &self.path_of(r), &self.groups)
    }

    /// The recorded headers that are sent, names in lower case; `set_headers` come on top.
    pub fn headers<'r>(&'r self, r: &'r Record) -> impl Iterator<Item = (&'r str, &'r str)> {
        r.headers.iter().filter_map(move |(k, v)| {
            let k = k.as_str();
            let credential =
                CREDENTIAL_HEADERS.contains(&k) && !self.keep_headers.iter().any(|x| x == k);
            let set = self.set_headers.iter().any(|(n, _)| n.as_str() == k);
            let dropped = EDGE_HEADERS.contains(&k) || self.drop_headers.iter().any(|x| x == k);
            (!credential && !set && !dropped && v != REDACTED).then_some((k, v.as_str()))
        })
    }
}

/// `path` with the first of `rules` whose `from` is a prefix of it replaced by its `to`; rules
/// come longest `from` first, so the longest matching prefix wins.
pub fn rewrite_path(rules: &[(String, String)], path: String) -> String {
    match rules
        .iter()
        .find(|(from, _)| path.starts_with(from.as_str()))
    {
        Some((from, to)) => format!("{to}{}", &path[from.len()..]),
        None => path,
    }
}

/// SplitMix64 over a seed and an index (the engine's stream mixer).
pub fn mix(seed: u64, index: u64) -> u64 {
    let mut z = seed ^ index.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Intended offsets of a pass's events: `t_ms ÷ speed`, with every gap longer than `max_gap`
/// (after speed) shortened to it. Offsets never go back (an out-of-order event is due at once).
#[derive(Debug, Clone)]
pub struct Pacer {
    speed: f64,
    max_gap: Option<Duration>,
    last_t: Option<u64>,
    at: Duration,
}

impl Pacer {
    /// A pacer at the start of a pass.
    pub fn new(speed: f64, max_gap: Option<Duration>) -> Pacer {
        Pacer {
            speed,
            max_gap,
            last_t: None,
            at: Duration::ZERO,
        }
    }

    /// The intended offset, from the start of the pass, of the next event recorded at `t_ms`.
    pub fn next(&mut self, t_ms: u64) -> Duration {
        let gap_ms = self.last_t.map_or(t_ms, |l| t_ms.saturating_sub(l));
        self.last_t = Some(self.last_t.map_or(t_ms, |l| l.max(t_ms)));
        let mut gap = Duration::from_secs_f64(gap_ms as f64 / 1000.0 / self.speed);
        if let Some(m) = self.max_gap {
            gap = gap.min(m);
        }
        self.at += gap;
        self.at
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_are_scaled_by_speed_and_gaps_are_capped() {
        let mut p = Pacer::new(2.0, None);
        let got: Vec<u128> = [0, 100, 1100, 1000, 5000]
            .iter()
            .map(|&t| p.next(t).as_millis())
            .collect();
        assert_eq!(got, vec![0, 50, 550, 550, 2500]);
        let mut p = Pacer::new(1.0, Some(Duration::from_millis(300)));
        let got: Vec<u128> = [0, 100, 60_000, 60_050]
            .iter()
            .map(|&t| p.next(t).as_millis())
            .collect();
        assert_eq!(got, vec![0, 100, 400, 450]);
    }

    fn rules(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        let mut v: Vec<(String, String)> = pairs
            .iter()
            .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
            .collect();
        v.sort_by_key(|r| std::cmp::Reverse(r.0.len()));
        v
    }

    #[test]
    fn the_longest_matching_rewrite_prefix_wins_and_the_rest_is_kept() {
        let r = rules(&[("/api/", "/"), ("/api/v1/", "/v1/"), ("/old", "/new")]);
        let go = |p: &str| rewrite_path(&r, p.to_owned());
        assert_eq!(go("/api/v1/items/7?x=1"), "/v1/items/7?x=1");
        assert_eq!(go("/api/v2/items"), "/v2/items");
        assert_eq!(go("/oldies"), "/newies");
        assert_eq!(go("/other/api/v1/"), "/other/api/v1/");
        assert_eq!(go("/api"), "/api");
    }
}
