//! The lock check: a lease-aware mutex model per lock name, judged conservatively.
//!
//! Operation formats (drivers of the reference Workers' `/locks` API write these):
//! - process `lock-<n>`, f `acquire`: invoke `{lock, holder, ttl_ms}`; `ok`
//!   `{lock, holder, token, expires_at}` (the 200); `fail` `{lock, holder, reason}` (409, or a
//!   503 that had no effect); `info` when the answer never came;
//! - f `release`: invoke `{lock, holder, token}`; `ok` `{lock, holder, token}` (200
//!   `released: true`); `fail` `{lock, holder, token, reason}`;
//! - f `read` (a final `GET /locks/{name}`, any `lock-*` process): invoke `{lock}`; `ok`
//!   `{lock, holder, expires_at}` with `holder` and `expires_at` null when free (404).
//!
//! The Worker's clock is only compared with itself: an acquire's grant time is
//! `expires_at - ttl_ms`. Happens-before comes from the harness's order of events (a
//! completion before an invocation). Where a Worker time is needed at a harness moment, the
//! lower bound is the latest grant time already observed, or [`WorkerClock::earliest_ms`]
//! when the run knows the clock.
//!
//! Anomalies:
//! - `double-grant`: two acknowledged grants of lock L to different holders whose leases
//!   intersect on the Worker's clock (B granted before A's `expires_at` minus the tolerance),
//!   unless A's holder invoked a release that may have worked before B completed. Concurrent
//!   acquires are judged too: both cannot hold at once, whatever order they took effect in. A
//!   double grant that follows a stale release (below) says so;
//! - `release-not-held`: a release `ok` for a (lock, holder, token) that was never granted (no
//!   grant, and no acquire by that holder that may have succeeded), or whose lease had
//!   provably expired and been granted to another holder who had not released it: the Worker
//!   freed someone else's lock. Tokens are matched as answered (a number, or a lease id);
//!   only numeric tokens are judged as fencing tokens;
//! - `nonincreasing-token`: a grant whose token is not above every token granted for the lock
//!   before it was invoked;
//! - `starved`: acquisitions waited (from the first attempt that was not granted — refused,
//!   failed, or unanswered — after a grant, to the next grant of any lock a client saw)
//!   longer than [`LockConfig::max_starve`]; the longest wait is also reported for waits
//!   overlapping a fault. An unanswered acquire may have been granted, but no client can use a
//!   lock it does not know it holds: for liveness it is not progress;
//! - `stuck`: a read in the healed window shows a holder whose lease had provably expired, or
//!   (with a known clock) a lease longer than any TTL requested for the lock.
//!
//! UNKNOWN, without an anomaly, unless the history holds the evidence a PASS rests on: at
//! least one grant a client saw after the last fault was cleared and, in a run with faults,
//! at least one acquire attempted while a fault was active. So 0 grants is UNKNOWN (or
//! `starved`, when `max_starve` is set and exceeded), never PASS.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::Value;

use crate::history::OpKind;

use super::{CheckResult, Findings, HistoryView, Operation, WorkerClock, secs};

/// Bounds for the lock check.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LockConfig {
    /// FAIL when acquisitions wait longer than this (run time); `None` only reports waits.
    pub max_starve: Option<Duration>,
    /// Slack, in Worker ms, before comparing a grant time with another lease's expiry (the
    /// Workers of one run share a clock; a deployed Worker may not).
    pub tolerance_ms: u64,
    /// The Worker's clock as a function of run time, when the run knows it.
    pub clock: Option<WorkerClock>,
}

struct Grant<'a> {
    op: &'a Operation,
    lock: &'a str,
    holder: &'a str,
    /// The grant's token as answered (a fencing number, a lease id, or null).
    token: &'a Value,
    expires_at: u64,
    /// Worker time of the grant, when the invocation named its `ttl_ms`.
    granted_ms: Option<u64>,
    ok_t: Duration,
    /// Invocation of the first release of this lease that may have worked.
    release_t: Option<Duration>,
}

/// Judges the lock operations of `h`.
pub fn check(h: &HistoryView, cfg: &LockConfig) -> CheckResult {
    let mut f = Findings::default();
    let acquires: Vec<&Operation> = h.ops_of("lock", "acquire").collect();
    let releases: Vec<&Operation> = h.ops_of("lock", "release").collect();
    f.set("acquires", acquires.len() as u64);
    count_acquires(&acquires, &mut f);
    f.set("releases", releases.len() as u64);

    let mut grants = grants_of(&acquires, &releases, &mut f);
    grants.sort_by_key(|g| g.ok_t);

    // The earliest the Worker's clock can read at run time `t`.
    let worker_at_least = |t: Duration| -> Option<u64> {
        let seen = grants
            .iter()
            .filter(|g| g.ok_t < t)
            .filter_map(|g| g.granted_ms)
            .max();
        let mapped = cfg.clock.map(|c| c.earliest_ms(t));
        seen.max(mapped)
    };

    let stale = releases_not_held(&releases, &acquires, &grants, cfg, &worker_at_least, &mut f);
    double_grants(&grants, &stale, cfg, &mut f);
    tokens(&grants, &mut f);
    starvation(h, &acquires, cfg, &mut f);
    stuck(h, &acquires, cfg, &worker_at_least, &mut f);

    let unknown = lock_evidence(h, &acquires, &grants, &mut f);
    let pass = format!(
        "{} grants of {} attempts ({} after the heal, {} attempts while a fault was active), leases exclusive, tokens increasing",
        grants.len(),
        acquires.len(),
        f.count("grants_healed"),
        f.count("acquires_faulted"),
    );
    f.finish("lock", unknown, pass)
}

/// Counts acquires by how they completed.
fn count_acquires(acquires: &[&Operation], f: &mut Findings) {
    for a in acquires {
        f.add(
            match a.completion.as_ref().map(|c| c.kind) {
                Some(OpKind::Ok) => "acquires_ok",
                Some(OpKind::Fail) => "acquires_fail",
                _ => "acquires_info",
            },
            1,
        );
    }
}

/// The grants clients saw (acquires answered ok), each with the first release of its lease
/// that may have worked; an ok acquire missing a field is counted as malformed.
fn grants_of<'a>(
    acquires: &[&'a Operation],
    releases: &[&'a Operation],
    f: &mut Findings,
) -> Vec<Grant<'a>> {
    let mut grants: Vec<Grant> = Vec::new();
    for a in acquires.iter().filter(|a| a.is_ok()) {
        let token = token_of(a);
        let (Some(lock), Some(holder), Some(expires_at), Some(ok_t)) = (
            a.str_field("lock"),
            a.str_field("holder"),
            a.u64_field("expires_at"),
            a.done_t(),
        ) else {
            f.add("malformed", 1);
            continue;
        };
        let release_t = releases
            .iter()
            .filter(|r| {
                r.may_have_happened()
                    && r.t > ok_t
                    && r.str_field("lock") == Some(lock)
                    && r.str_field("holder") == Some(holder)
                    && token_of(r) == token
            })
            .map(|r| r.t)
            .min();
        grants.push(Grant {
            op: a,
            lock,
            holder,
            token,
            expires_at,
            granted_ms: a
                .value
                .get("ttl_ms")
                .and_then(|v| v.as_u64())
                .map(|ttl| expires_at.saturating_sub(ttl)),
            ok_t,
            release_t,
        });
    }
    grants
}

/// What a PASS rests on: at least one grant a client saw after the heal and, in a run with
/// faults, at least one acquire attempted while a fault was active. Returns why the history
/// is not enough, if it is not.
fn lock_evidence(
    h: &HistoryView,
    acquires: &[&Operation],
    grants: &[Grant],
    f: &mut Findings,
) -> Option<String> {
    let healed = acquires.iter().filter(|a| h.healed(a.t)).count() as u64;
    let grants_healed = grants.iter().filter(|g| h.healed(g.ok_t)).count() as u64;
    let faulted = acquires
        .iter()
        .filter(|a| h.faulted(a.t, a.done_t().unwrap_or(h.end)))
        .count() as u64;
    f.set("acquires_healed", healed);
    f.set("grants_healed", grants_healed);
    f.set("acquires_faulted", faulted);
    if acquires.is_empty() {
        Some("no lock acquisition was attempted".to_owned())
    } else if h.healed_from.is_none() {
        Some("the run never healed: a fault was still active at the end".to_owned())
    } else if grants.is_empty() {
        Some(format!(
            "0 grants of {} attempts: nothing shows the lock can be taken",
            acquires.len()
        ))
    } else if healed == 0 {
        Some("no lock acquisition was attempted after the last fault was cleared".to_owned())
    } else if grants_healed == 0 {
        Some(format!(
            "no grant after the last fault was cleared ({healed} attempts): nothing shows the lock recovered"
        ))
    } else if !h.fault_windows.is_empty() && faulted == 0 {
        Some("no acquire was attempted while a fault was active".to_owned())
    } else {
        None
    }
}

fn double_grants(grants: &[Grant], stale: &[StaleRelease], cfg: &LockConfig, f: &mut Findings) {
    for (i, b) in grants.iter().enumerate() {
        let Some(b_granted) = b.granted_ms else {
            continue;
        };
        for (j, a) in grants.iter().enumerate() {
            if i == j || a.lock != b.lock || a.holder == b.holder {
                continue;
            }
            // Each pair once, judged from the grant that came first on the Worker's clock (ties
            // by completion order).
            let a_granted = a.granted_ms.unwrap_or(0);
            if (a_granted, a.ok_t, j) > (b_granted, b.ok_t, i) {
                continue;
            }
            // B took effect somewhere between its invocation and its completion: only a
            // release invoked after B completed is proven not to have come first. Concurrent
            // acquires are judged too: both cannot hold at once, whatever order they took
            // effect in.
            let released_before = a.release_t.is_some_and(|r| r < b.ok_t);
            if released_before || b_granted + cfg.tolerance_ms >= a.expires_at {
                continue;
            }
            let after_stale = stale
                .iter()
                .find(|s| s.lock == a.lock && s.freed == a.holder && s.t < b.ok_t)
                .map_or(String::new(), |s| {
                    format!(
                        " (after {:?} released {:?}'s lease with a stale token at {})",
                        s.by,
                        s.freed,
                        secs(s.t)
                    )
                });
            f.anomaly(
                "double-grant",
                format!(
                    "lock {:?} granted to {:?} at worker ms {b_granted} while {:?} held it until {} (granted at {}, not released){after_stale}: {}",
                    b.lock,
                    b.holder,
                    a.holder,
                    a.expires_at,
                    secs(a.ok_t),
                    b.op.describe()
                ),
            );
            break;
        }
    }
}

/// The token an operation carries (completion first, then invocation), `Null` when none.
fn token_of(op: &Operation) -> &Value {
    op.field("token").unwrap_or(&Value::Null)
}

fn tokens(grants: &[Grant], f: &mut Findings) {
    // Only numeric tokens are fencing tokens; a lease id need not increase.
    let mut by_lock: BTreeMap<&str, Vec<(u64, &Grant)>> = BTreeMap::new();
    for g in grants {
        if let Some(n) = g.token.as_u64() {
            by_lock.entry(g.lock).or_default().push((n, g));
        }
    }
    for list in by_lock.values() {
        for (bt, b) in list {
            let before = list
                .iter()
                .filter(|(_, a)| a.ok_t < b.op.t)
                .max_by_key(|(at, _)| *at);
            let same = list
                .iter()
                .find(|(at, a)| !std::ptr::eq(*a, *b) && at == bt && a.ok_t < b.ok_t);
            if let Some((at, a)) = before.filter(|(at, _)| at >= bt).or(same) {
                f.anomaly(
                    "nonincreasing-token",
                    format!(
                        "lock {:?}: token {bt} granted to {:?} after token {at} to {:?} (at {}): {}",
                        b.lock,
                        b.holder,
                        a.holder,
                        secs(a.ok_t),
                        b.op.describe()
                    ),
                );
            }
        }
    }
}

/// A release answered `ok` with a token whose lease had expired and been granted to another
/// holder: the Worker freed someone else's lock.
struct StaleRelease<'a> {
    lock: &'a str,
    /// The holder that released.
    by: &'a str,
    /// The holder whose live lease it freed.
    freed: &'a str,
    /// Invocation of the release.
    t: Duration,
}

fn releases_not_held<'a>(
    releases: &[&'a Operation],
    acquires: &[&Operation],
    grants: &[Grant<'a>],
    cfg: &LockConfig,
    worker_at_least: &dyn Fn(Duration) -> Option<u64>,
    f: &mut Findings,
) -> Vec<StaleRelease<'a>> {
    let mut stale = Vec::new();
    for r in releases.iter().filter(|r| r.is_ok()) {
        let (lock, holder, token) = (r.str_field("lock"), r.str_field("holder"), token_of(r));
        // A holder can be granted the same token twice (a Worker reading stale state): the
        // release is of the latest such grant completed before it was invoked.
        let grant = grants
            .iter()
            .filter(|g| Some(g.lock) == lock && Some(g.holder) == holder && g.token == token)
            .filter(|g| g.ok_t < r.t)
            .max_by_key(|g| g.ok_t);
        match grant {
            Some(g) => {
                let Some(now) =
                    worker_at_least(r.t).filter(|now| *now >= g.expires_at + cfg.tolerance_ms)
                else {
                    continue;
                };
                stale.extend(expired_release(r, g, grants, cfg, now, f));
            }
            None => unmatched_release(r, acquires, f),
        }
    }
    stale
}

/// A release answered ok for `g`'s lease, which had expired by `now` (the Worker's clock at
/// least): harmless unless another holder was granted the lock since and still held it.
fn expired_release<'a>(
    r: &Operation,
    g: &Grant<'a>,
    grants: &[Grant<'a>],
    cfg: &LockConfig,
    now: u64,
    f: &mut Findings,
) -> Option<StaleRelease<'a>> {
    // An expired lease released is harmless while nobody else holds the lock; it
    // is a violation once another holder was granted the lock after it and had
    // not released it before this release completed.
    let r_done = r.done_t().unwrap_or(r.t);
    let next = grants.iter().find(|n| {
        n.lock == g.lock
            && n.holder != g.holder
            && n.ok_t < r.t
            && n.granted_ms
                .is_none_or(|ms| ms + cfg.tolerance_ms >= g.expires_at)
            && n.release_t.is_none_or(|rt| rt >= r_done)
    });
    let n = next?;
    f.anomaly(
        "release-not-held",
        format!(
            "lease of {:?} on {:?} expired at worker ms {} and the lock was granted to {:?} (at {}), yet {:?}'s release with its old token {} was answered ok when the Worker's clock was at least {now}: {}",
            g.holder,
            g.lock,
            g.expires_at,
            n.holder,
            secs(n.ok_t),
            g.holder,
            g.token,
            r.describe()
        ),
    );
    Some(StaleRelease {
        lock: g.lock,
        by: g.holder,
        freed: n.holder,
        t: r.t,
    })
}

/// A release answered ok that matches no grant seen: a `release-not-held` unless an acquire
/// that may have worked (unanswered) explains it.
fn unmatched_release(r: &Operation, acquires: &[&Operation], f: &mut Findings) {
    let (lock, holder, token) = (r.str_field("lock"), r.str_field("holder"), token_of(r));
    let r_done = r.done_t().unwrap_or(r.t);
    let maybe = acquires.iter().any(|a| {
        !a.is_ok()
            && a.may_have_happened()
            && a.t < r_done
            && a.str_field("lock") == lock
            && a.str_field("holder") == holder
    });
    if !maybe {
        f.anomaly(
            "release-not-held",
            format!(
                "no grant of {:?} to {:?} with token {} was ever seen: {}",
                lock.unwrap_or("?"),
                holder.unwrap_or("?"),
                token,
                r.describe()
            ),
        );
    }
}

fn starvation(h: &HistoryView, acquires: &[&Operation], cfg: &LockConfig, f: &mut Findings) {
    // (time, is_success): liveness is about clients getting locks, so only a grant the client
    // saw (`ok`) ends a wait, at its completion; any other attempt (refused, or answered with
    // an error or nothing at all, which no client can use as a lock) starts one at its
    // invocation.
    let mut marks: Vec<(Duration, bool, &Operation)> = Vec::new();
    for a in acquires {
        if a.is_ok() {
            marks.push((a.done_t().unwrap_or(h.end), true, a));
        } else {
            marks.push((a.t, false, a));
        }
    }
    marks.sort_by_key(|(t, s, _)| (*t, !*s));
    // An attempt still outstanding when the history ended was abandoned by the run stopping,
    // not answered: it proves no wait beyond its own invocation.
    let last_fail_done = acquires
        .iter()
        .filter(|a| !a.is_ok())
        .map(|a| a.done_t().unwrap_or(a.t))
        .max();
    let (mut max, mut max_faulted) = (Duration::ZERO, Duration::ZERO);
    let mut waiting: Option<(Duration, &Operation)> = None;
    let mut judge = |from: Duration, to: Duration, first: &Operation, f: &mut Findings| {
        let wait = to.saturating_sub(from);
        let faulted = h.faulted(from, to);
        max = max.max(wait);
        if faulted {
            max_faulted = max_faulted.max(wait);
        }
        if let Some(bound) = cfg.max_starve.filter(|b| wait > *b) {
            f.anomaly(
                "starved",
                format!(
                    "no lock granted from {} to {} ({} ms > {} ms){}; first failed attempt: {}",
                    secs(from),
                    secs(to),
                    wait.as_millis(),
                    bound.as_millis(),
                    if faulted {
                        ", while a fault was active"
                    } else {
                        ""
                    },
                    first.describe()
                ),
            );
        }
    };
    for (t, success, op) in marks {
        if success {
            if let Some((from, first)) = waiting.take() {
                judge(from, t, first, f);
            }
        } else if waiting.is_none() {
            waiting = Some((t, op));
        }
    }
    if let (Some((from, first)), Some(to)) = (waiting, last_fail_done) {
        judge(from, to, first, f);
    }
    f.set("max_wait_ms", max.as_millis() as u64);
    f.set("max_wait_during_faults_ms", max_faulted.as_millis() as u64);
}

fn stuck(
    h: &HistoryView,
    acquires: &[&Operation],
    cfg: &LockConfig,
    worker_at_least: &dyn Fn(Duration) -> Option<u64>,
    f: &mut Findings,
) {
    for r in h
        .ops_of("lock", "read")
        .filter(|r| r.is_ok() && h.healed(r.t))
    {
        let (Some(lock), Some(holder), Some(expires_at)) = (
            r.str_field("lock"),
            r.result().get("holder").and_then(|v| v.as_str()),
            r.result().get("expires_at").and_then(|v| v.as_u64()),
        ) else {
            continue;
        };
        if let Some(now) = worker_at_least(r.t).filter(|now| *now >= expires_at + cfg.tolerance_ms)
        {
            f.anomaly(
                "stuck",
                format!(
                    "lock {lock:?} still held by {holder:?} after the heal, its lease expired at worker ms {expires_at} and the Worker's clock was at least {now}: {}",
                    r.describe()
                ),
            );
            continue;
        }
        let max_ttl = acquires
            .iter()
            .filter(|a| a.str_field("lock") == Some(lock))
            .filter_map(|a| a.value.get("ttl_ms").and_then(|v| v.as_u64()))
            .max();
        if let (Some(clock), Some(ttl), Some(done)) = (cfg.clock, max_ttl, r.done_t()) {
            let latest = clock.latest_ms(done);
            if expires_at > latest + ttl + cfg.tolerance_ms {
                f.anomaly(
                    "stuck",
                    format!(
                        "lock {lock:?} held by {holder:?} until worker ms {expires_at}, beyond any requested TTL ({ttl} ms) from {latest}: {}",
                        r.describe()
                    ),
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::Verdict;
    use crate::check::testing::H;
    use serde_json::json;

    const W0: u64 = 1_795_428_000_000;

    /// Acquire by `lock-<p>` (holder `h<p>`) invoked at `ms`, answered 10 ms later; the Worker
    /// grants at `W0 + ms` with a TTL of `ttl` ms.
    fn acquire(h: H, ms: u64, p: u32, kind: OpKind, token: u64, ttl: u64) -> H {
        let (proc_, holder) = (format!("lock-{p}"), format!("h{p}"));
        let h = h.op(
            ms,
            &proc_,
            OpKind::Invoke,
            "acquire",
            json!({"lock": "L", "holder": holder, "ttl_ms": ttl}),
        );
        let done = match kind {
            OpKind::Ok => {
                json!({"lock": "L", "holder": holder, "token": token, "expires_at": W0 + ms + 5 + ttl})
            }
            _ => json!({"lock": "L", "holder": holder, "reason": "held"}),
        };
        h.op(ms + 10, &proc_, kind, "acquire", done)
    }

    fn release(h: H, ms: u64, p: u32, kind: OpKind, token: u64) -> H {
        let (proc_, holder) = (format!("lock-{p}"), format!("h{p}"));
        let v = json!({"lock": "L", "holder": holder, "token": token});
        h.op(ms, &proc_, OpKind::Invoke, "release", v.clone()).op(
            ms + 10,
            &proc_,
            kind,
            "release",
            v,
        )
    }

    fn read(h: H, ms: u64, holder: Option<&str>, expires_at: Option<u64>) -> H {
        h.op(ms, "lock-0", OpKind::Invoke, "read", json!({"lock": "L"}))
            .op(
                ms + 10,
                "lock-0",
                OpKind::Ok,
                "read",
                json!({"lock": "L", "holder": holder, "expires_at": expires_at}),
            )
    }

    fn cfg() -> LockConfig {
        LockConfig {
            max_starve: Some(Duration::from_secs(5)),
            ..LockConfig::default()
        }
    }

    fn clean() -> H {
        let mut h = H::default();
        // Two holders take turns, each releasing before the other acquires.
        for i in 0..6u64 {
            let p = (i % 2) as u32 + 1;
            h = acquire(h, i * 1000, p, OpKind::Ok, i + 1, 30_000);
            if i > 0 {
                // The other holder tries while it is held and is refused.
                h = acquire(h, i * 1000 + 100, 3 - p, OpKind::Fail, 0, 30_000);
            }
            h = release(h, i * 1000 + 500, p, OpKind::Ok, i + 1);
        }
        read(h, 7_000, None, None)
    }

    #[test]
    fn a_clean_history_passes() {
        let r = check(&clean().view(), &cfg());
        assert_eq!(r.verdict, Verdict::Pass, "{r:?}");
        assert_eq!(r.counts["acquires_ok"], 6);
    }

    #[test]
    fn a_grant_while_another_lease_is_unexpired_and_unreleased_is_a_double_grant() {
        let h = acquire(H::default(), 0, 1, OpKind::Ok, 1, 30_000);
        let h = acquire(h, 1_000, 2, OpKind::Ok, 2, 30_000);
        let r = check(&h.view(), &cfg());
        assert_eq!(r.verdict, Verdict::Fail, "{r:?}");
        assert_eq!(r.counts["double-grant"], 1);
        assert!(r.evidence[0].contains("\"h2\""), "{:?}", r.evidence);
    }

    #[test]
    fn concurrent_grants_whose_leases_intersect_are_a_double_grant() {
        // B invoked before A completed: both were acknowledged, both cannot hold at once.
        let h = acquire(H::default(), 0, 1, OpKind::Ok, 1, 30_000);
        let h = acquire(h, 5, 2, OpKind::Ok, 2, 30_000);
        let r = check(&h.view(), &cfg());
        assert_eq!(r.counts.get("double-grant"), Some(&1), "{r:?}");
        // The same pair is reported once, whichever order the grants are listed in.
        let h = acquire(H::default(), 5, 2, OpKind::Ok, 2, 30_000);
        let h = acquire(h, 0, 1, OpKind::Ok, 1, 30_000);
        let r = check(&h.view(), &cfg());
        assert_eq!(r.counts.get("double-grant"), Some(&1), "{r:?}");
    }

    #[test]
    fn indeterminate_or_same_holder_overlaps_are_not_double_grants() {
        // The competing acquire timed out (info): it may or may not have been granted.
        let h = acquire(H::default(), 0, 1, OpKind::Ok, 1, 30_000);
        let h = acquire(h, 5, 2, OpKind::Info, 0, 30_000);
        let r = check(&h.view(), &cfg());
        assert_eq!(r.counts.get("double-grant"), None, "{r:?}");
        // One holder renewing its own lease is not two holders.
        let h = acquire(H::default(), 0, 1, OpKind::Ok, 1, 30_000);
        let h = acquire(h, 1_000, 1, OpKind::Ok, 2, 30_000);
        let r = check(&h.view(), &cfg());
        assert_eq!(r.counts.get("double-grant"), None, "{r:?}");
    }

    #[test]
    fn overlapping_or_expired_or_released_leases_are_not_double_grants() {
        // A's lease expired (TTL 500 ms) before B was granted.
        let h = acquire(H::default(), 0, 1, OpKind::Ok, 1, 500);
        let h = acquire(h, 1_000, 2, OpKind::Ok, 2, 30_000);
        assert_eq!(check(&h.view(), &cfg()).verdict, Verdict::Pass);
        // A's release timed out (info): it may have worked.
        let h = acquire(H::default(), 0, 1, OpKind::Ok, 1, 30_000);
        let h = release(h, 500, 1, OpKind::Info, 1);
        let h = acquire(h, 1_000, 2, OpKind::Ok, 2, 30_000);
        assert_eq!(check(&h.view(), &cfg()).verdict, Verdict::Pass);
        // A's release invoked just after B's acquire, before B completed (seen in a real run:
        // the Worker handled the release first): the release may have come first.
        let h = acquire(H::default(), 0, 1, OpKind::Ok, 1, 30_000);
        let h = acquire(h, 1_000, 2, OpKind::Ok, 2, 30_000);
        let h = release(h, 1_001, 1, OpKind::Ok, 1);
        assert_eq!(check(&h.view(), &cfg()).verdict, Verdict::Pass);
    }

    #[test]
    fn a_failed_release_does_not_free_the_lock() {
        let h = acquire(H::default(), 0, 1, OpKind::Ok, 1, 30_000);
        let h = release(h, 500, 1, OpKind::Fail, 1);
        let h = acquire(h, 1_000, 2, OpKind::Ok, 2, 30_000);
        let r = check(&h.view(), &cfg());
        assert_eq!(r.counts.get("double-grant"), Some(&1), "{r:?}");
    }

    #[test]
    fn tokens_must_increase() {
        let h = acquire(H::default(), 0, 1, OpKind::Ok, 5, 100);
        let h = acquire(h, 1_000, 2, OpKind::Ok, 5, 100);
        let r = check(&h.view(), &cfg());
        assert_eq!(r.counts.get("nonincreasing-token"), Some(&1), "{r:?}");
    }

    #[test]
    fn releasing_what_was_never_held_or_has_expired_is_flagged() {
        let h = release(H::default(), 0, 1, OpKind::Ok, 9);
        let r = check(&h.view(), &cfg());
        assert_eq!(r.counts.get("release-not-held"), Some(&1), "{r:?}");
        // h1's 100 ms lease expired; h2's later grant proves the Worker's clock moved past it.
        let h = acquire(H::default(), 0, 1, OpKind::Ok, 1, 100);
        let h = acquire(h, 1_000, 2, OpKind::Ok, 2, 100);
        let h = release(h, 2_000, 1, OpKind::Ok, 1);
        let r = check(&h.view(), &cfg());
        assert_eq!(r.verdict, Verdict::Fail, "{r:?}");
        assert_eq!(r.counts.get("release-not-held"), Some(&1), "{r:?}");
    }

    #[test]
    fn a_stale_release_that_frees_another_holders_lock_is_named_in_the_double_grant_after_it() {
        // h1 overruns its 100 ms lease; h2 is granted the lock after it expired; h1 releases
        // with its old token and the Worker frees h2's lock; h3 is granted while h2 holds.
        let h = acquire(H::default(), 0, 1, OpKind::Ok, 1, 100);
        let h = acquire(h, 200, 2, OpKind::Ok, 2, 5_000);
        let h = release(h, 600, 1, OpKind::Ok, 1);
        let h = acquire(h, 1_000, 3, OpKind::Ok, 3, 5_000);
        let r = check(&h.view(), &cfg());
        assert_eq!(r.counts.get("release-not-held"), Some(&1), "{r:?}");
        assert_eq!(r.counts.get("double-grant"), Some(&1), "{r:?}");
        let dg = r
            .evidence
            .iter()
            .find(|e| e.starts_with("double-grant"))
            .expect("line");
        assert!(dg.contains("stale token"), "{dg}");
        // A correct Worker refuses the stale release (fail): no anomaly at all.
        let h = acquire(H::default(), 0, 1, OpKind::Ok, 1, 100);
        let h = acquire(h, 200, 2, OpKind::Ok, 2, 5_000);
        let h = release(h, 600, 1, OpKind::Fail, 1);
        let h = release(h, 900, 2, OpKind::Ok, 2);
        let h = acquire(h, 1_000, 3, OpKind::Ok, 3, 5_000);
        let r = check(&h.view(), &cfg());
        assert_eq!(r.verdict, Verdict::Pass, "{r:?}");
    }

    #[test]
    fn a_release_is_of_the_holders_latest_grant_with_that_token() {
        // h1 is granted token 9 twice (stale state); the second lease is live when released.
        let h = acquire(H::default(), 0, 1, OpKind::Ok, 9, 100);
        let h = release(h, 50, 1, OpKind::Ok, 9);
        let h = acquire(h, 1_000, 2, OpKind::Ok, 10, 100);
        let h = release(h, 1_050, 2, OpKind::Ok, 10);
        let h = acquire(h, 2_000, 1, OpKind::Ok, 9, 5_000);
        let h = release(h, 2_500, 1, OpKind::Ok, 9);
        let r = check(&h.view(), &cfg());
        assert_eq!(r.counts.get("release-not-held"), None, "{r:?}");
    }

    #[test]
    fn releasing_an_expired_lease_nobody_else_took_is_harmless() {
        let h = acquire(H::default(), 0, 1, OpKind::Ok, 1, 100);
        let h = release(h, 600, 1, OpKind::Ok, 1);
        let h = acquire(h, 1_000, 2, OpKind::Ok, 2, 5_000);
        let r = check(&h.view(), &cfg());
        assert_eq!(r.verdict, Verdict::Pass, "{r:?}");
    }

    #[test]
    fn string_lease_ids_are_matched_and_not_judged_as_fencing_tokens() {
        let mut h = H::default();
        for (i, id) in ["zz", "aa"].iter().enumerate() {
            let ms = i as u64 * 1_000;
            let holder = format!("h{i}");
            let v = json!({"lock": "L", "holder": holder, "ttl_ms": 100});
            h = h.op(ms, "lock-1", OpKind::Invoke, "acquire", v).op(
                ms + 10,
                "lock-1",
                OpKind::Ok,
                "acquire",
                json!({"lock": "L", "holder": holder, "token": id, "expires_at": W0 + ms + 105}),
            );
            let v = json!({"lock": "L", "holder": holder, "token": id});
            h = h
                .op(ms + 50, "lock-1", OpKind::Invoke, "release", v.clone())
                .op(ms + 60, "lock-1", OpKind::Ok, "release", v);
        }
        let r = check(&h.view(), &cfg());
        assert_eq!(r.verdict, Verdict::Pass, "{r:?}");
        assert_eq!(r.counts.get("malformed"), None, "{r:?}");
    }

    #[test]
    fn a_lock_never_granted_is_unknown_not_pass_unless_it_starved() {
        let mut h = H::default();
        for i in 0..5 {
            h = acquire(h, i * 500, 1, OpKind::Fail, 0, 100);
        }
        let r = check(&h.clone().view(), &cfg());
        assert_eq!(r.verdict, Verdict::Unknown, "{r:?}");
        assert!(r.reason.contains("0 grants of 5 attempts"), "{}", r.reason);
        let r = check(&h.view(), &LockConfig::default());
        assert_eq!(r.verdict, Verdict::Unknown, "max_starve off: {r:?}");
    }

    #[test]
    fn with_faults_a_pass_needs_an_attempt_during_a_fault_and_a_grant_after_the_heal() {
        // The fault came and went between two attempts: nothing was tried against it.
        let h = acquire(H::default(), 0, 1, OpKind::Ok, 1, 100);
        let h = release(h, 50, 1, OpKind::Ok, 1).fault(200, 0).clear(300, 0);
        let h = acquire(h, 1_000, 1, OpKind::Ok, 2, 100);
        let r = check(&h.view(), &cfg());
        assert_eq!(r.verdict, Verdict::Unknown, "{r:?}");
        assert!(
            r.reason.contains("while a fault was active"),
            "{}",
            r.reason
        );
        // Tried during the fault, but never granted after it.
        let h = acquire(H::default().fault(100, 0), 0, 1, OpKind::Ok, 1, 100);
        let h = release(h, 50, 1, OpKind::Ok, 1);
        let h = acquire(h.clear(500, 0), 400, 2, OpKind::Fail, 0, 100);
        let h = acquire(h, 1_000, 2, OpKind::Fail, 0, 100);
        let r = check(&h.view(), &cfg());
        assert_eq!(r.verdict, Verdict::Unknown, "{r:?}");
        assert!(r.reason.contains("no grant after"), "{}", r.reason);
    }

    #[test]
    fn releasing_after_an_indeterminate_acquire_is_not_flagged() {
        let h = acquire(H::default(), 0, 1, OpKind::Info, 0, 30_000);
        let h = release(h, 500, 1, OpKind::Ok, 1);
        let r = check(&h.view(), &cfg());
        assert_eq!(r.counts.get("release-not-held"), None, "{r:?}");
        // No grant was seen: not a violation, and not enough for a PASS either.
        assert_eq!(r.verdict, Verdict::Unknown, "{r:?}");
    }

    #[test]
    fn failing_acquisitions_through_a_fault_starve() {
        let mut h = acquire(
            H::default().fault(500, 0).clear(9_000, 0),
            0,
            1,
            OpKind::Ok,
            1,
            100,
        );
        h = release(h, 200, 1, OpKind::Ok, 1);
        for i in 1..9 {
            h = acquire(h, i * 1000, 2, OpKind::Fail, 0, 100);
        }
        h = acquire(h, 9_500, 2, OpKind::Ok, 2, 100);
        let r = check(&h.view(), &cfg());
        assert_eq!(r.verdict, Verdict::Fail, "{r:?}");
        assert_eq!(r.counts["starved"], 1);
        assert_eq!(r.counts["max_wait_during_faults_ms"], 8_510);
        // Timeouts or 5xx instead of refusals: no client got a lock it could use, which is
        // starvation too (safety checks still read them as "may have been granted").
        let mut h = acquire(
            H::default().fault(500, 0).clear(9_000, 0),
            0,
            1,
            OpKind::Ok,
            1,
            100,
        );
        h = release(h, 200, 1, OpKind::Ok, 1);
        for i in 1..9 {
            h = acquire(h, i * 1000, 2, OpKind::Info, 0, 100);
        }
        h = acquire(h, 9_500, 2, OpKind::Ok, 2, 100);
        let r = check(&h.view(), &cfg());
        assert_eq!(r.counts.get("starved"), Some(&1), "{r:?}");
        // Waits shorter than the bound are reported, not judged.
        let mut h = acquire(H::default(), 0, 1, OpKind::Ok, 1, 100);
        h = release(h, 200, 1, OpKind::Ok, 1);
        h = acquire(h, 1_000, 2, OpKind::Info, 0, 100);
        h = acquire(h, 2_000, 2, OpKind::Ok, 2, 100);
        let r = check(&h.view(), &cfg());
        assert_eq!(r.verdict, Verdict::Pass, "{r:?}");
        assert_eq!(r.counts["max_wait_ms"], 1_010);
    }

    #[test]
    fn an_attempt_abandoned_when_the_run_stopped_is_no_starvation() {
        let h = acquire(H::default(), 0, 1, OpKind::Ok, 1, 100);
        let h = release(h, 50, 1, OpKind::Ok, 1);
        let h = h.op(
            1_000,
            "lock-2",
            OpKind::Invoke,
            "acquire",
            json!({"lock": "L", "holder": "h2", "ttl_ms": 100}),
        );
        // The history goes on 9 s (the drivers' final reads) without an answer to it.
        let h = read(h, 10_000, None, None);
        let r = check(&h.view(), &cfg());
        assert_eq!(r.counts.get("starved"), None, "{r:?}");
    }

    #[test]
    fn a_lease_reported_held_past_its_expiry_after_the_heal_is_stuck() {
        let h = acquire(
            H::default().fault(100, 0).clear(200, 0),
            0,
            1,
            OpKind::Ok,
            1,
            100,
        );
        let h = acquire(h, 1_000, 2, OpKind::Fail, 0, 100);
        let h = acquire(h, 2_000, 3, OpKind::Ok, 2, 100);
        let h = read(h, 3_000, Some("h1"), Some(W0 + 105));
        let r = check(&h.view(), &cfg());
        assert_eq!(r.counts.get("stuck"), Some(&1), "{r:?}");
        // With a known clock: a lease far beyond any TTL requested.
        let h = acquire(H::default(), 0, 1, OpKind::Ok, 1, 100);
        let h = read(h, 1_000, Some("h1"), Some(W0 + 3_600_000));
        let c = LockConfig {
            clock: Some(WorkerClock {
                start_ms: W0,
                speedup: 1.0,
                tolerance_ms: 1_000,
            }),
            ..cfg()
        };
        let r = check(&h.view(), &c);
        assert_eq!(r.counts.get("stuck"), Some(&1), "{r:?}");
    }

    #[test]
    fn no_attempts_or_none_after_the_heal_is_unknown() {
        assert_eq!(
            check(&H::default().view(), &cfg()).verdict,
            Verdict::Unknown
        );
        let h = acquire(H::default().fault(0, 0), 100, 1, OpKind::Fail, 0, 100);
        let r = check(&h.view(), &cfg());
        assert_eq!(r.verdict, Verdict::Unknown, "{r:?}");
        assert!(r.reason.contains("never healed"));
    }
}
