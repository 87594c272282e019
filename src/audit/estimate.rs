//! Operations per day of a call site against the Workers KV free plan's daily limits: cron
//! ticks per day (from `triggers.crons`) × the loop factor for code a scheduled handler
//! reaches; per request, per message or per alarm otherwise, with the request rate at which
//! the free limit is spent.
//!
//! Owns: the arithmetic. Does not own: cron parsing (`crate::cron`) or finding the handlers.

use serde::{Deserialize, Serialize};

use super::model::Op;

/// Free plan, per day: reads.
pub const FREE_READS: u64 = 100_000;
/// Free plan, per day: writes, deletes and lists (each).
pub const FREE_WRITES: u64 = 1_000;

/// The free plan's daily limit for an operation.
pub fn free_limit(op: Op) -> u64 {
    match op {
        Op::Get | Op::GetWithMetadata => FREE_READS,
        Op::Put | Op::Delete | Op::List => FREE_WRITES,
    }
}

/// An estimate of one call site's operations.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Estimate {
    /// Operations per day from cron triggers (`None` when no scheduled handler reaches it).
    pub per_day: Option<f64>,
    /// Share of the free plan's daily limit those use, in percent.
    pub free_limit_pct: Option<f64>,
    /// Operations per invocation of a request / queue / alarm handler (loop factor included).
    pub per_invocation: f64,
    /// What an invocation is: `request`, `message`, `alarm`, `call`, `tick`.
    pub unit: String,
    /// Invocations per day at which this call site alone spends the free daily limit.
    pub free_limit_at: u64,
    /// The loop factor applied (1 outside loops).
    pub loop_factor: u32,
}

/// Cron ticks per day of `crons` (invalid expressions are skipped), counted over one day.
pub fn ticks_per_day(crons: &[String]) -> u64 {
    // 1970-01-05T00:00:00Z, a Monday.
    const FROM: u64 = 345_600_000;
    let parsed: Vec<_> = crons
        .iter()
        .filter_map(|c| crate::cron::parse(c).ok().map(|p| (c.clone(), p)))
        .collect();
    crate::cron::ticks(&parsed, FROM - 1, FROM + 86_400_000 - 1, 1_000_000).len() as u64
}

/// Estimates a call site reached by `handlers`, `looped` or not, in a Worker whose crons tick
/// `ticks` times a day.
pub fn estimate(
    op: Op,
    handlers: &[String],
    looped: bool,
    loop_factor: u32,
    ticks: u64,
) -> Estimate {
    let factor = if looped { loop_factor.max(1) } else { 1 };
    let limit = free_limit(op);
    let per_day = handlers
        .iter()
        .any(|h| h == "scheduled")
        .then(|| (ticks * u64::from(factor)) as f64);
    let unit = if handlers.iter().any(|h| h == "fetch") {
        "request"
    } else if handlers.iter().any(|h| h == "queue") {
        "message"
    } else if handlers.iter().any(|h| h == "alarm") {
        "alarm"
    } else if per_day.is_some() {
        "tick"
    } else {
        "call"
    };
    Estimate {
        per_day,
        free_limit_pct: per_day.map(|d| d * 100.0 / limit as f64),
        per_invocation: f64::from(factor),
        unit: unit.to_owned(),
        free_limit_at: limit / u64::from(factor),
        loop_factor: factor,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cron_ticks_per_day() {
        assert_eq!(ticks_per_day(&["*/1 * * * *".into()]), 1440);
        assert_eq!(
            ticks_per_day(&["0 * * * *".into(), "*/30 * * * *".into()]),
            24 + 48
        );
        assert_eq!(ticks_per_day(&["not a cron".into()]), 0);
    }

    #[test]
    fn scheduled_writes_against_the_free_limit() {
        let e = estimate(Op::Put, &["scheduled".into()], true, 10, 1440);
        assert_eq!(e.per_day, Some(14_400.0));
        assert_eq!(e.free_limit_pct, Some(1440.0));
        assert_eq!(e.unit, "tick");
        let r = estimate(Op::Get, &["fetch".into()], false, 10, 1440);
        assert_eq!(
            (r.per_day, r.unit.as_str(), r.free_limit_at),
            (None, "request", 100_000)
        );
    }
}
