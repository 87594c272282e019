//! One operation through faults, quotas, the store and accounting, whichever door it came in
//! by. Latency is slept here, outside the lock; hang and reset are returned for the front door
//! to carry out.

use std::sync::atomic::Ordering;

use super::fault::FaultKindName;
use super::stats::Outcome;
use super::store::{self, KvError, PutRequest};
use super::{MockKv, MockState, Op, OpContext, OpFailure, OpReply, OpRequest};

impl MockKv {
    /// Run one operation through faults, quotas, the store and accounting.
    /// Latency is slept here, outside the lock; hang and reset are returned
    /// for the front door to carry out.
    pub(crate) async fn perform(
        &self,
        ctx: &OpContext,
        req: OpRequest,
    ) -> Result<OpReply, OpFailure> {
        let op = req.op();
        let ns = ctx.namespace.as_str();
        let keys = req.keys();
        let first = keys.first().copied().unwrap_or("");
        let decided_at = self.clock().now_ms();
        let decision = self
            .lock()
            .faults
            .evaluate(op, ns, first, decided_at, ctx.remote);
        if !decision.delay.is_zero() {
            tokio::time::sleep(decision.delay).await;
        }
        let now = self.clock().now_ms();
        let mut st = self.lock();
        if let Some(action) = decision.action {
            record_all(&mut st, now, ns, op, &keys, Outcome::Fault(action.kind()));
            return Err(OpFailure::Fault(action));
        }
        let units = keys.len().max(1) as u64;
        if !st.quotas.allows(&ctx.account, op, units, now) {
            record_all(&mut st, now, ns, op, &keys, Outcome::Quota);
            return Err(OpFailure::Quota(op));
        }
        let ok = if decision.stale_lag_ms.is_some() {
            Outcome::Fault(FaultKindName::StaleReads)
        } else if !decision.delay.is_zero() {
            Outcome::Fault(FaultKindName::Latency)
        } else {
            Outcome::Ok
        };
        let apply = Apply {
            ns,
            op,
            now,
            as_of: decision.stale_lag_ms.map(|lag| now.saturating_sub(lag)),
            ok,
            same_key: self.shared.same_key_limit.load(Ordering::Relaxed),
        };
        let st = &mut *st;
        match apply.run(st, &req) {
            Ok(reply) => {
                let used = match &reply {
                    OpReply::Bulk { ok, .. } => *ok as u64,
                    _ => units,
                };
                st.quotas.consume(&ctx.account, op, used, now);
                Ok(reply)
            }
            Err(e) => {
                let outcome = match e {
                    KvError::SameKeyRate => Outcome::SameKeyRate,
                    KvError::Invalid { .. } => Outcome::Invalid,
                };
                record_all(st, now, ns, op, &keys, outcome);
                Err(OpFailure::Kv(e))
            }
        }
    }
}

/// Counts `outcome` once for each of `keys`.
fn record_all(st: &mut MockState, now: u64, ns: &str, op: Op, keys: &[&str], outcome: Outcome) {
    for k in keys {
        st.stats.record(now, ns, op, k, outcome);
    }
}

/// An operation past faults and quotas: where and when it runs against the store, and how a
/// success is counted.
struct Apply<'a> {
    ns: &'a str,
    op: Op,
    /// Virtual clock, ms.
    now: u64,
    /// A stale read's point in time, ms.
    as_of: Option<u64>,
    /// What a success counts as (a latency or stale-reads fault's success is the fault's).
    ok: Outcome,
    /// The one-write-per-second-per-key limit is on.
    same_key: bool,
}

impl Apply<'_> {
    /// Runs `req` against the store, counting each key's outcome on success.
    fn run(&self, st: &mut MockState, req: &OpRequest) -> Result<OpReply, KvError> {
        let Apply { ns, op, now, .. } = *self;
        match req {
            OpRequest::Get { key } => st.store.get(ns, key, now, self.as_of).map(|e| {
                let outcome = if e.is_some() { self.ok } else { Outcome::Miss };
                st.stats.record(now, ns, op, key, outcome);
                OpReply::Entry(e)
            }),
            OpRequest::GetMany { keys } => self.get_many(st, keys),
            OpRequest::Put { key, put } => {
                let done = st.store.put(ns, key, put.clone(), now, self.same_key)?;
                st.stats.record_write(ns, done.with_ttl, done.bytes);
                st.stats.record(now, ns, op, key, self.ok);
                Ok(OpReply::Done)
            }
            OpRequest::PutMany { items } => self.put_many(st, items),
            OpRequest::Delete { key } => st.store.delete(ns, key, now).map(|()| {
                st.stats.record(now, ns, op, key, self.ok);
                OpReply::Done
            }),
            OpRequest::DeleteMany { keys } => self.delete_many(st, keys),
            OpRequest::List {
                prefix,
                cursor,
                limit,
            } => st
                .store
                .list(ns, prefix, cursor.as_deref(), *limit, now)
                .map(|page| {
                    st.stats.record(now, ns, op, prefix, self.ok);
                    OpReply::Page(page)
                }),
        }
    }

    /// A bulk get: every key valid, or none is read.
    fn get_many(&self, st: &mut MockState, keys: &[String]) -> Result<OpReply, KvError> {
        keys.iter().try_for_each(|k| store::validate_key(k))?;
        let entries = keys
            .iter()
            .map(|k| {
                let e = st
                    .store
                    .get(self.ns, k, self.now, self.as_of)
                    .ok()
                    .flatten();
                let outcome = if e.is_some() { self.ok } else { Outcome::Miss };
                st.stats.record(self.now, self.ns, self.op, k, outcome);
                (k.clone(), e)
            })
            .collect();
        Ok(OpReply::Entries(entries))
    }

    /// A bulk put: every item valid, or none is written; items refused by the same-key limit
    /// are listed as failed.
    fn put_many(
        &self,
        st: &mut MockState,
        items: &[(String, PutRequest)],
    ) -> Result<OpReply, KvError> {
        items
            .iter()
            .try_for_each(|(k, p)| store::check_put(k, p, self.now))?;
        let mut failed = Vec::new();
        let mut done_n = 0;
        for (k, p) in items {
            match st.store.put(self.ns, k, p.clone(), self.now, self.same_key) {
                Ok(done) => {
                    done_n += 1;
                    st.stats.record_write(self.ns, done.with_ttl, done.bytes);
                    st.stats.record(self.now, self.ns, self.op, k, self.ok);
                }
                Err(_) => {
                    st.stats
                        .record(self.now, self.ns, self.op, k, Outcome::SameKeyRate);
                    failed.push(k.clone());
                }
            }
        }
        Ok(OpReply::Bulk { ok: done_n, failed })
    }

    /// A bulk delete: every key valid, or none is deleted.
    fn delete_many(&self, st: &mut MockState, keys: &[String]) -> Result<OpReply, KvError> {
        keys.iter().try_for_each(|k| store::validate_key(k))?;
        for k in keys {
            // Validated above, so a delete cannot fail here.
            let _ = st.store.delete(self.ns, k, self.now);
            st.stats.record(self.now, self.ns, self.op, k, self.ok);
        }
        Ok(OpReply::Bulk {
            ok: keys.len(),
            failed: Vec::new(),
        })
    }
}
