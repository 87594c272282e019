//! Daily operation quotas: the free plan's 100,000 reads and 1,000 writes,
//! deletes and lists per day, the paid plan's none, or custom numbers.
//!
//! Owns: the limits and the per-account, per-operation counters of the
//! current virtual day, which start again at 00:00 UTC of the mock's clock.
//! Does not own: the clock (callers pass `now_ms`) or how an exhausted quota
//! is rendered on the wire.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::Op;
use super::clock::DAY_MS;

/// Per-day limits for each operation type; `None` is unlimited.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limits {
    /// Reads (get, and each key of a bulk get) per day.
    pub reads: Option<u64>,
    /// Writes (put) per day.
    pub writes: Option<u64>,
    /// Deletes per day.
    pub deletes: Option<u64>,
    /// Lists per day.
    pub lists: Option<u64>,
}

impl Limits {
    /// Cloudflare's free plan.
    pub const FREE: Limits = Limits {
        reads: Some(100_000),
        writes: Some(1_000),
        deletes: Some(1_000),
        lists: Some(1_000),
    };
    /// Cloudflare's paid plan: no daily limit.
    pub const PAID: Limits = Limits {
        reads: None,
        writes: None,
        deletes: None,
        lists: None,
    };

    /// The limit for one operation type.
    pub fn for_op(&self, op: Op) -> Option<u64> {
        match op {
            Op::Get => self.reads,
            Op::Put => self.writes,
            Op::Delete => self.deletes,
            Op::List => self.lists,
        }
    }
}

/// Use of one operation type today, for reports.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuotaRow {
    /// Account the counter belongs to.
    pub account: String,
    /// Operation type.
    pub op: Op,
    /// Operations counted today.
    pub used: u64,
    /// Daily limit, `None` for unlimited.
    pub limit: Option<u64>,
    /// What is left today, `None` for unlimited.
    pub left: Option<u64>,
}

#[derive(Clone, Copy, Debug, Default)]
struct Window {
    /// Virtual day number (ms since epoch / day) the counts belong to.
    day: u64,
    used: [u64; 4],
}

/// Counters of every account for the current virtual day.
#[derive(Debug, Default)]
pub struct Quotas {
    limits: Limits,
    accounts: BTreeMap<String, Window>,
}

impl Quotas {
    /// Quotas with these limits and nothing used.
    pub fn new(limits: Limits) -> Self {
        Self {
            limits,
            accounts: BTreeMap::new(),
        }
    }

    /// Current limits.
    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// Replace the limits (counts are kept).
    pub fn set_limits(&mut self, limits: Limits) {
        self.limits = limits;
    }

    /// Forget all counts.
    pub fn clear(&mut self) {
        self.accounts.clear();
    }

    fn window(&mut self, account: &str, now_ms: u64) -> &mut Window {
        let day = now_ms / DAY_MS;
        let w = self.accounts.entry(account.to_owned()).or_default();
        if w.day != day {
            *w = Window { day, used: [0; 4] };
        }
        w
    }

    /// Whether `n` more operations of `op` fit in today's quota.
    pub fn allows(&mut self, account: &str, op: Op, n: u64, now_ms: u64) -> bool {
        let limit = self.limits.for_op(op);
        let used = self.window(account, now_ms).used[op.index()];
        limit.is_none_or(|l| used.saturating_add(n) <= l)
    }

    /// Count `n` operations of `op`.
    pub fn consume(&mut self, account: &str, op: Op, n: u64, now_ms: u64) {
        let w = self.window(account, now_ms);
        w.used[op.index()] = w.used[op.index()].saturating_add(n);
    }

    /// Today's use of every account and operation.
    pub fn rows(&self, now_ms: u64) -> Vec<QuotaRow> {
        let day = now_ms / DAY_MS;
        self.accounts
            .iter()
            .flat_map(|(account, w)| {
                Op::ALL.into_iter().map(move |op| {
                    let used = if w.day == day { w.used[op.index()] } else { 0 };
                    let limit = self.limits.for_op(op);
                    QuotaRow {
                        account: account.clone(),
                        op,
                        used,
                        limit,
                        left: limit.map(|l| l.saturating_sub(used)),
                    }
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn free_plan_writes_run_out_and_come_back_at_midnight() {
        let mut q = Quotas::new(Limits::FREE);
        let noon = 20_000 * DAY_MS + DAY_MS / 2;
        for _ in 0..1000 {
            assert!(q.allows("a", Op::Put, 1, noon));
            q.consume("a", Op::Put, 1, noon);
        }
        assert!(!q.allows("a", Op::Put, 1, noon));
        assert!(
            q.allows("a", Op::Get, 1, noon),
            "other operations unaffected"
        );
        assert!(q.allows("b", Op::Put, 1, noon), "other accounts unaffected");
        let before_midnight = 20_001 * DAY_MS - 1;
        assert!(!q.allows("a", Op::Put, 1, before_midnight));
        assert!(q.allows("a", Op::Put, 1, 20_001 * DAY_MS));
        let rows = q.rows(20_001 * DAY_MS);
        let put = rows.iter().find(|r| r.op == Op::Put).unwrap();
        assert_eq!((put.used, put.left), (0, Some(1000)));
    }

    #[test]
    fn paid_plan_has_no_limit_and_bulk_counts_each_key() {
        let mut q = Quotas::new(Limits::PAID);
        assert!(q.allows("a", Op::Get, u64::MAX, 0));
        q.set_limits(Limits {
            reads: Some(3),
            ..Limits::PAID
        });
        assert!(q.allows("a", Op::Get, 3, 0));
        assert!(!q.allows("a", Op::Get, 4, 0));
    }
}
