//! Fault rules: what a scenario or the control API asks the mock to break,
//! and the pure decision of which rules fire for one operation.
//!
//! Owns: the rule model ([`FaultSpec`] as written, [`FaultRule`] once
//! validated and scheduled), the compact one-line syntax, and
//! [`FaultSet::evaluate`], a function of (rules, op, namespace, key, now,
//! rng). Does not own: applying a decision (sleeping, hanging, resetting the
//! connection, answering 429) — the front doors do that.
//!
//! Compact syntax, one rule per line, comma-separated `key=value`:
//! `kind=daily-limit,ops=put,prefix=queue:,p=1.0`,
//! `kind=error,status=503,ops=get+list,p=0.2,after=10s,for=1m`,
//! `kind=latency,latency=200ms,jitter=50ms`, `kind=stale-reads,lag=30s`,
//! `kind=hang`, `kind=reset`, `kind=rate-limit`. Keys: `kind` (required),
//! `ops` (`get`, `put`, `delete`, `list`, joined by `+` or `|`; default all),
//! `prefix`, `ns` (namespace; default all), `p` (probability 0..=1, default
//! 1), `status` (error only, 500..=599, default 500), `latency`, `jitter`,
//! `lag` (humantime durations), `after` and `for` (the active window,
//! relative to when the rule is added, on the mock's clock).

use std::str::FromStr;
use std::time::Duration;

use rand::Rng;
use rand::rngs::SmallRng;
use serde::{Deserialize, Serialize};

use super::Op;

/// The kinds of fault, as named in specs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FaultKindName {
    /// Answer as if the daily quota of the operation were used up.
    DailyLimit,
    /// 429 `Too Many Requests`.
    RateLimit,
    /// A 5xx of a chosen status.
    Error,
    /// Delay the answer (fixed + jitter), then proceed.
    Latency,
    /// Never answer; the client gives up.
    Hang,
    /// Close the connection without an answer.
    Reset,
    /// Reads see the data as it was up to `lag` ago.
    StaleReads,
}

impl FaultKindName {
    /// The kebab-case name used in specs and reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::DailyLimit => "daily-limit",
            Self::RateLimit => "rate-limit",
            Self::Error => "error",
            Self::Latency => "latency",
            Self::Hang => "hang",
            Self::Reset => "reset",
            Self::StaleReads => "stale-reads",
        }
    }
}

/// A fault rule as written (JSON in the control API, or the compact syntax).
/// Durations are in milliseconds.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultSpec {
    /// What to do.
    pub kind: FaultKindName,
    /// Operations affected; empty means all.
    #[serde(default)]
    pub ops: Vec<Op>,
    /// Only keys starting with this (for list: list prefixes starting with it).
    #[serde(default)]
    pub prefix: String,
    /// Only this namespace; `None` means all.
    #[serde(default)]
    pub namespace: Option<String>,
    /// Probability that a matching operation is hit, 0..=1.
    #[serde(default = "one")]
    pub p: f64,
    /// HTTP status for `error` (500..=599).
    #[serde(default)]
    pub status: Option<u16>,
    /// Fixed delay for `latency`.
    #[serde(default)]
    pub latency_ms: Option<u64>,
    /// Extra uniform random delay up to this for `latency`.
    #[serde(default)]
    pub jitter_ms: Option<u64>,
    /// How old data a stale read may see, for `stale-reads`.
    #[serde(default)]
    pub lag_ms: Option<u64>,
    /// Start this long (virtual) after the rule is added.
    #[serde(default)]
    pub after_ms: Option<u64>,
    /// Stay active this long (virtual); `None` until cleared.
    #[serde(default)]
    pub for_ms: Option<u64>,
}

fn one() -> f64 {
    1.0
}

/// A fault spec that cannot be used; the message names the bad value and the fix.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid fault spec: {0}")]
pub struct FaultSpecError(pub String);

fn bad(msg: impl Into<String>) -> FaultSpecError {
    FaultSpecError(msg.into())
}

/// What a validated rule does.
#[derive(Clone, Debug, PartialEq)]
pub enum FaultKind {
    /// See [`FaultKindName::DailyLimit`].
    DailyLimit,
    /// See [`FaultKindName::RateLimit`].
    RateLimit,
    /// A 5xx with this status.
    Error(u16),
    /// Fixed delay plus uniform jitter.
    Latency {
        /// Always added.
        fixed: Duration,
        /// Up to this much more.
        jitter: Duration,
    },
    /// See [`FaultKindName::Hang`].
    Hang,
    /// See [`FaultKindName::Reset`].
    Reset,
    /// Reads see data this old (virtual ms).
    StaleReads(u64),
}

impl FaultSpec {
    /// Check the spec and work out its kind.
    pub fn validate(&self) -> Result<FaultKind, FaultSpecError> {
        if !(0.0..=1.0).contains(&self.p) {
            return Err(bad(format!(
                "probability '{}' is out of range: expected a number from 0 to 1, e.g. p=0.5",
                self.p
            )));
        }
        let only = |field: &str, present: bool, kind: &str| {
            if present {
                Err(bad(format!("'{field}' only applies to kind={kind}")))
            } else {
                Ok(())
            }
        };
        use FaultKindName as K;
        if self.kind != K::Error {
            only("status", self.status.is_some(), "error")?;
        }
        if self.kind != K::Latency {
            only("latency", self.latency_ms.is_some(), "latency")?;
            only("jitter", self.jitter_ms.is_some(), "latency")?;
        }
        if self.kind != K::StaleReads {
            only("lag", self.lag_ms.is_some(), "stale-reads")?;
        }
        Ok(match self.kind {
            K::DailyLimit => FaultKind::DailyLimit,
            K::RateLimit => FaultKind::RateLimit,
            K::Error => {
                let status = self.status.unwrap_or(500);
                if !(500..=599).contains(&status) {
                    return Err(bad(format!(
                        "status '{status}' is not a server error: expected 500..=599, e.g. status=503"
                    )));
                }
                FaultKind::Error(status)
            }
            K::Latency => FaultKind::Latency {
                fixed: Duration::from_millis(self.latency_ms.unwrap_or(0)),
                jitter: Duration::from_millis(self.jitter_ms.unwrap_or(0)),
            },
            K::Hang => FaultKind::Hang,
            K::Reset => FaultKind::Reset,
            K::StaleReads => match self.lag_ms {
                Some(lag) if lag > 0 => FaultKind::StaleReads(lag),
                _ => return Err(bad("kind=stale-reads needs a positive lag, e.g. lag=30s")),
            },
        })
    }
}

impl FromStr for FaultSpec {
    type Err = FaultSpecError;

    fn from_str(line: &str) -> Result<Self, Self::Err> {
        let mut spec = FaultSpec {
            kind: FaultKindName::Error,
            ops: Vec::new(),
            prefix: String::new(),
            namespace: None,
            p: 1.0,
            status: None,
            latency_ms: None,
            jitter_ms: None,
            lag_ms: None,
            after_ms: None,
            for_ms: None,
        };
        let mut kind = None;
        let dur = |k: &str, v: &str| -> Result<Option<u64>, FaultSpecError> {
            humantime::parse_duration(v)
                .map(|d| Some(d.as_millis().min(u64::MAX as u128) as u64))
                .map_err(|_| {
                    bad(format!(
                        "'{k}={v}': expected a duration such as 250ms, 30s or 2m"
                    ))
                })
        };
        for part in line.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let Some((k, v)) = part.split_once('=') else {
                return Err(bad(format!("'{part}' is not key=value")));
            };
            let (k, v) = (k.trim(), v.trim());
            match k {
                "kind" => {
                    kind = Some(
                        serde_json::from_value(serde_json::Value::String(v.to_owned())).map_err(
                            |_| {
                                bad(format!(
                                    "unknown kind '{v}': expected daily-limit, rate-limit, error, latency, hang, reset or stale-reads"
                                ))
                            },
                        )?,
                    )
                }
                "ops" | "op" => {
                    spec.ops = v
                        .split(['+', '|'])
                        .map(|o| o.trim().parse::<Op>().map_err(bad))
                        .collect::<Result<_, _>>()?
                }
                "prefix" => spec.prefix = v.to_owned(),
                "ns" | "namespace" => spec.namespace = Some(v.to_owned()),
                "p" => {
                    spec.p = v.parse().map_err(|_| {
                        bad(format!("'p={v}': expected a probability such as 0.5"))
                    })?
                }
                "status" => {
                    spec.status = Some(v.parse().map_err(|_| {
                        bad(format!("'status={v}': expected an HTTP status such as 503"))
                    })?)
                }
                "latency" => spec.latency_ms = dur(k, v)?,
                "jitter" => spec.jitter_ms = dur(k, v)?,
                "lag" => spec.lag_ms = dur(k, v)?,
                "after" => spec.after_ms = dur(k, v)?,
                "for" => spec.for_ms = dur(k, v)?,
                _ => {
                    return Err(bad(format!(
                        "unknown field '{k}': expected kind, ops, prefix, ns, p, status, latency, jitter, lag, after or for"
                    )));
                }
            }
        }
        spec.kind = kind.ok_or_else(|| bad(format!("'{line}' has no kind, e.g. kind=error")))?;
        spec.validate()?;
        Ok(spec)
    }
}

/// Identifies an active rule.
pub type FaultId = u64;

/// A validated rule with its active window on the mock's clock.
#[derive(Clone, Debug)]
pub struct FaultRule {
    /// Its id.
    pub id: FaultId,
    /// As written.
    pub spec: FaultSpec,
    /// What it does.
    pub kind: FaultKind,
    /// Active from this virtual ms.
    pub from_ms: u64,
    /// Active until this virtual ms (exclusive), if bounded.
    pub until_ms: Option<u64>,
    /// How often it fired.
    pub fired: u64,
}

/// A rule as shown by the control API and in snapshots.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FaultView {
    /// Its id (use it to clear the rule).
    pub id: FaultId,
    /// As written.
    pub spec: FaultSpec,
    /// Active from this virtual ms.
    pub from_ms: u64,
    /// Active until this virtual ms, if bounded.
    pub until_ms: Option<u64>,
    /// How often it fired.
    pub fired: u64,
}

/// A fault that ends the operation without doing it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Answer as an exhausted daily quota.
    DailyLimit,
    /// 429 Too Many Requests.
    RateLimit,
    /// A 5xx with this status.
    Error(u16),
    /// Never answer.
    Hang,
    /// Close the connection.
    Reset,
}

impl Action {
    /// The fault kind this action comes from.
    pub fn kind(self) -> FaultKindName {
        match self {
            Self::DailyLimit => FaultKindName::DailyLimit,
            Self::RateLimit => FaultKindName::RateLimit,
            Self::Error(_) => FaultKindName::Error,
            Self::Hang => FaultKindName::Hang,
            Self::Reset => FaultKindName::Reset,
        }
    }
}

/// What the rules decided for one operation.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Decision {
    /// Delay to add before anything else (sum of firing latency rules), real time.
    pub delay: Duration,
    /// The first firing rule that ends the operation, in rule order.
    pub action: Option<Action>,
    /// Read as of this many virtual ms ago (largest firing stale-reads lag).
    pub stale_lag_ms: Option<u64>,
}

/// The active rules and the seeded random source they draw from.
#[derive(Debug)]
pub struct FaultSet {
    rules: Vec<FaultRule>,
    next_id: FaultId,
    rng: SmallRng,
}

impl FaultSet {
    /// No rules; draws are reproducible from `seed`.
    pub fn new(seed: u64) -> Self {
        use rand::SeedableRng;
        Self {
            rules: Vec::new(),
            next_id: 1,
            rng: SmallRng::seed_from_u64(seed),
        }
    }

    /// Add a rule whose window starts `after` the virtual `now_ms`.
    pub fn add(&mut self, spec: FaultSpec, now_ms: u64) -> Result<FaultId, FaultSpecError> {
        let kind = spec.validate()?;
        let id = self.next_id;
        self.next_id += 1;
        let from_ms = now_ms.saturating_add(spec.after_ms.unwrap_or(0));
        let until_ms = spec.for_ms.map(|d| from_ms.saturating_add(d));
        self.rules.push(FaultRule {
            id,
            spec,
            kind,
            from_ms,
            until_ms,
            fired: 0,
        });
        Ok(id)
    }

    /// Remove one rule; false if there was none with that id.
    pub fn clear(&mut self, id: FaultId) -> bool {
        let before = self.rules.len();
        self.rules.retain(|r| r.id != id);
        self.rules.len() != before
    }

    /// Remove every rule (the kill switch); returns how many there were.
    pub fn clear_all(&mut self) -> usize {
        std::mem::take(&mut self.rules).len()
    }

    /// The rules, for display.
    pub fn views(&self) -> Vec<FaultView> {
        self.rules
            .iter()
            .map(|r| FaultView {
                id: r.id,
                spec: r.spec.clone(),
                from_ms: r.from_ms,
                until_ms: r.until_ms,
                fired: r.fired,
            })
            .collect()
    }

    /// Decide which rules fire for `op` on `key` (for list: the list
    /// prefix) in namespace `ns` at virtual `now_ms`. `remote` marks a read
    /// made as another location: stale-reads rules then always fire.
    pub fn evaluate(&mut self, op: Op, ns: &str, key: &str, now_ms: u64, remote: bool) -> Decision {
        let mut d = Decision::default();
        for rule in &mut self.rules {
            let active = now_ms >= rule.from_ms && rule.until_ms.is_none_or(|u| now_ms < u);
            let stale = matches!(rule.kind, FaultKind::StaleReads(_));
            let op_ok = if stale {
                // Stale reads only make sense for reads of values.
                op == Op::Get && (rule.spec.ops.is_empty() || rule.spec.ops.contains(&op))
            } else {
                rule.spec.ops.is_empty() || rule.spec.ops.contains(&op)
            };
            let matches = active
                && op_ok
                && rule.spec.namespace.as_deref().is_none_or(|n| n == ns)
                && key.starts_with(&rule.spec.prefix);
            if !matches || (d.action.is_some() && !stale) {
                continue;
            }
            let hit = (stale && remote)
                || rule.spec.p >= 1.0
                || (rule.spec.p > 0.0 && self.rng.random::<f64>() < rule.spec.p);
            if !hit {
                continue;
            }
            rule.fired += 1;
            match &rule.kind {
                FaultKind::DailyLimit => d.action = Some(Action::DailyLimit),
                FaultKind::RateLimit => d.action = Some(Action::RateLimit),
                FaultKind::Error(s) => d.action = Some(Action::Error(*s)),
                FaultKind::Hang => d.action = Some(Action::Hang),
                FaultKind::Reset => d.action = Some(Action::Reset),
                FaultKind::Latency { fixed, jitter } => {
                    let extra = if jitter.is_zero() {
                        Duration::ZERO
                    } else {
                        jitter.mul_f64(self.rng.random::<f64>())
                    };
                    d.delay += *fixed + extra;
                }
                FaultKind::StaleReads(lag) => {
                    d.stale_lag_ms = Some(d.stale_lag_ms.unwrap_or(0).max(*lag));
                }
            }
        }
        d
    }

    /// The largest stale-reads lag of any rule (how much history to keep).
    pub fn max_lag_ms(&self) -> u64 {
        self.rules
            .iter()
            .filter_map(|r| match r.kind {
                FaultKind::StaleReads(l) => Some(l),
                _ => None,
            })
            .max()
            .unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compact_syntax_round_trips_every_field() {
        let s: FaultSpec =
            "kind=error,status=503,ops=get+list,prefix=queue:,ns=Q,p=0.25,after=10s,for=1m"
                .parse()
                .unwrap();
        assert_eq!(s.kind, FaultKindName::Error);
        assert_eq!(s.ops, [Op::Get, Op::List]);
        assert_eq!(s.prefix, "queue:");
        assert_eq!(s.namespace.as_deref(), Some("Q"));
        assert_eq!(s.p, 0.25);
        assert_eq!(s.status, Some(503));
        assert_eq!((s.after_ms, s.for_ms), (Some(10_000), Some(60_000)));
        let l: FaultSpec = "kind=latency,latency=200ms,jitter=50ms".parse().unwrap();
        assert_eq!(
            l.validate().unwrap(),
            FaultKind::Latency {
                fixed: Duration::from_millis(200),
                jitter: Duration::from_millis(50)
            }
        );
        let json = serde_json::to_string(&s).unwrap();
        assert_eq!(serde_json::from_str::<FaultSpec>(&json).unwrap(), s);
    }

    #[test]
    fn bad_specs_say_what_is_wrong() {
        for (line, needle) in [
            ("kind=explode", "unknown kind 'explode'"),
            ("ops=put", "has no kind"),
            ("kind=error,status=404", "status '404'"),
            ("kind=error,p=2", "probability '2'"),
            ("kind=hang,latency=1s", "'latency' only applies"),
            ("kind=stale-reads", "positive lag"),
            ("kind=hang,ops=fetch", "fetch"),
            ("kind=hang,when=now", "unknown field 'when'"),
            ("kind=latency,latency=soon", "'latency=soon'"),
            ("kind", "not key=value"),
        ] {
            let err = line.parse::<FaultSpec>().unwrap_err().to_string();
            assert!(err.contains(needle), "{line}: {err}");
        }
    }

    #[test]
    fn evaluation_respects_ops_prefix_namespace_and_window() {
        let mut f = FaultSet::new(7);
        let id = f
            .add(
                "kind=daily-limit,ops=put,prefix=q:,ns=A,after=10s,for=5s"
                    .parse()
                    .unwrap(),
                0,
            )
            .unwrap();
        let fires = |f: &mut FaultSet, op, ns, key, t| f.evaluate(op, ns, key, t, false).action;
        assert_eq!(fires(&mut f, Op::Put, "A", "q:1", 9_999), None);
        assert_eq!(
            fires(&mut f, Op::Put, "A", "q:1", 10_000),
            Some(Action::DailyLimit)
        );
        assert_eq!(fires(&mut f, Op::Put, "A", "q:1", 15_000), None);
        assert_eq!(fires(&mut f, Op::Get, "A", "q:1", 12_000), None);
        assert_eq!(fires(&mut f, Op::Put, "B", "q:1", 12_000), None);
        assert_eq!(fires(&mut f, Op::Put, "A", "r:1", 12_000), None);
        assert_eq!(f.views()[0].fired, 1);
        assert!(f.clear(id));
        assert!(!f.clear(id));
    }

    #[test]
    fn probability_is_seeded_and_roughly_right() {
        let run = |seed| {
            let mut f = FaultSet::new(seed);
            f.add("kind=rate-limit,p=0.3".parse().unwrap(), 0).unwrap();
            (0..10_000)
                .map(|_| f.evaluate(Op::Get, "n", "k", 0, false).action.is_some())
                .collect::<Vec<_>>()
        };
        let a = run(42);
        assert_eq!(a, run(42));
        let hits = a.iter().filter(|h| **h).count();
        assert!((2_700..3_300).contains(&hits), "{hits}");
    }

    #[test]
    fn latency_adds_up_and_first_ending_rule_wins() {
        let mut f = FaultSet::new(1);
        f.add("kind=latency,latency=100ms".parse().unwrap(), 0)
            .unwrap();
        f.add("kind=error,status=503".parse().unwrap(), 0).unwrap();
        f.add("kind=reset".parse().unwrap(), 0).unwrap();
        f.add("kind=latency,latency=50ms,jitter=10ms".parse().unwrap(), 0)
            .unwrap();
        let d = f.evaluate(Op::Get, "n", "k", 0, false);
        assert_eq!(d.action, Some(Action::Error(503)));
        assert!(d.delay >= Duration::from_millis(100));
        assert_eq!(f.clear_all(), 4);
        assert_eq!(f.evaluate(Op::Get, "n", "k", 0, false), Decision::default());
    }

    #[test]
    fn stale_reads_apply_to_gets_and_always_to_remote_readers() {
        let mut f = FaultSet::new(1);
        f.add("kind=stale-reads,lag=30s,p=0".parse().unwrap(), 0)
            .unwrap();
        assert_eq!(f.evaluate(Op::Get, "n", "k", 0, false).stale_lag_ms, None);
        assert_eq!(
            f.evaluate(Op::Get, "n", "k", 0, true).stale_lag_ms,
            Some(30_000)
        );
        assert_eq!(f.evaluate(Op::Put, "n", "k", 0, true).stale_lag_ms, None);
        assert_eq!(f.max_lag_ms(), 30_000);
    }
}
