//! The idempotency check: each idempotency key's effect count, read through the Worker's own
//! API after every send of the key answered, against what the sends prove.
//!
//! Operation formats (written by [`crate::driver::idempotency`]):
//! - senders `idem-<client>-<copy>`, f `apply`: invoke `{key, copy, attempt}`; `ok`
//!   `{key, duplicate}` (`duplicate` when the Worker said so); `fail` (had no effect) / `info`
//!   (may or may not have taken effect);
//! - the final read, process `idem-final`, f `effects`: invoke `{key}`; `ok` `{key, effects}`
//!   (0 for a key the Worker does not know); `fail` / `info` when the read itself failed. The
//!   last `ok` read of a key counts.
//!
//! Anomalies:
//! - `duplicate-effect`: a key's effect count is above 1 — however many times it was sent,
//!   an idempotent operation takes effect once;
//! - `lost-effect`: a send of the key was acknowledged (`ok`) before the read, yet the read
//!   found no effect: acknowledged, never applied.
//!
//! Judged conservatively: an `info` send may or may not have taken effect, so a key whose
//! sends were all `info` may read 0 or 1, and neither is an anomaly.
//!
//! UNKNOWN, without an anomaly, unless the history holds the evidence a PASS rests on: every
//! acknowledged key read, and at least one key sent more than once with two sends that may
//! have taken effect (otherwise nothing tested idempotency).

use std::collections::BTreeMap;

use crate::history::OpKind;

use super::{CheckResult, Findings, HistoryView, Operation, secs};

#[derive(Default)]
struct Key<'a> {
    sends: Vec<&'a Operation>,
    read: Option<&'a Operation>,
}

/// Judges the idempotency operations of `view`.
pub fn check(view: &HistoryView) -> CheckResult {
    let mut keys: BTreeMap<&str, Key> = BTreeMap::new();
    for op in view.ops_of("idem", "apply") {
        if let Some(k) = op.value.get("key").and_then(|v| v.as_str()) {
            keys.entry(k).or_default().sends.push(op);
        }
    }
    for op in view.ops_of("idem-final", "effects") {
        let Some(k) = op.value.get("key").and_then(|v| v.as_str()) else {
            continue;
        };
        if op.is_ok() {
            keys.entry(k).or_default().read = Some(op);
        }
    }
    let mut f = Findings::default();
    let mut unread_acked = 0u64;
    for (key, k) in &keys {
        judge_key(key, k, &mut f, &mut unread_acked);
    }
    f.set("keys", keys.len() as u64);
    f.set("unread_acknowledged", unread_acked);
    let unknown = if f.count("sends") == 0 {
        Some("no operation with an idempotency key was sent".to_owned())
    } else if unread_acked > 0 {
        Some(format!(
            "{unread_acked} acknowledged keys' effects were never read (the final read failed or did not run)"
        ))
    } else if f.count("exercised") == 0 {
        Some("no key was sent twice with both sends possibly applied and its effects read: nothing tested idempotency".to_owned())
    } else {
        None
    };
    let pass = format!(
        "{} keys, {} sends ({} keys sent more than once): every acknowledged key took effect exactly once",
        keys.len(),
        f.count("sends"),
        f.count("exercised")
    );
    f.finish("idempotency", unknown, pass)
}

fn judge_key(key: &str, k: &Key, f: &mut Findings, unread_acked: &mut u64) {
    let acked: Vec<&Operation> = k.sends.iter().copied().filter(|o| o.is_ok()).collect();
    let maybe = k.sends.iter().filter(|o| o.may_have_happened()).count() as u64;
    f.add("sends", k.sends.len() as u64);
    f.add("acknowledged", acked.len() as u64);
    f.add(
        "duplicate_acks",
        acked
            .iter()
            .filter(|o| o.result().get("duplicate") == Some(&serde_json::Value::Bool(true)))
            .count() as u64,
    );
    for o in &k.sends {
        match o.outcome() {
            OpKind::Info => f.add("info", 1),
            OpKind::Fail => f.add("failed", 1),
            _ => {}
        }
    }
    let Some(read) = k.read else {
        if !acked.is_empty() {
            *unread_acked += 1;
        }
        return;
    };
    let Some(n) = read.u64_field("effects") else {
        f.add("unreadable", 1);
        if !acked.is_empty() {
            *unread_acked += 1;
        }
        return;
    };
    f.add("effects", n);
    if n > 1 {
        f.anomaly(
            "duplicate-effect",
            format!(
                "key {key:?} took effect {n} times from {} sends ({} acknowledged), read at {}",
                k.sends.len(),
                acked.len(),
                secs(read.t)
            ),
        );
    }
    // Only an acknowledgement that completed before the read was invoked proves the effect
    // should be visible to it.
    if n == 0
        && let Some(a) = acked
            .iter()
            .find(|a| a.done_t().is_some_and(|d| d <= read.t))
    {
        f.anomaly(
            "lost-effect",
            format!(
                "key {key:?} acknowledged ({}) but its effect count read 0 at {}",
                a.describe(),
                secs(read.t)
            ),
        );
    }
    if maybe >= 2 {
        f.add("exercised", 1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::Verdict;
    use crate::check::testing::H;
    use serde_json::json;

    fn send(h: H, ms: u64, p: &str, key: &str, end: OpKind) -> H {
        let done = match end {
            OpKind::Ok => json!({"key": key, "duplicate": false}),
            _ => json!({"key": key, "http": 503}),
        };
        h.op(
            ms,
            p,
            OpKind::Invoke,
            "apply",
            json!({"key": key, "copy": 0}),
        )
        .op(ms + 5, p, end, "apply", done)
    }

    fn read(h: H, ms: u64, key: &str, n: u64) -> H {
        h.op(
            ms,
            "idem-final",
            OpKind::Invoke,
            "effects",
            json!({"key": key}),
        )
        .op(
            ms + 2,
            "idem-final",
            OpKind::Ok,
            "effects",
            json!({"key": key, "effects": n}),
        )
    }

    #[test]
    fn each_key_applied_once_passes() {
        let h = send(H::default(), 0, "idem-0-0", "k1", OpKind::Ok);
        let h = send(h, 1, "idem-0-1", "k1", OpKind::Ok);
        let h = send(h, 100, "idem-0-0", "k1", OpKind::Info);
        let h = read(h, 1000, "k1", 1);
        let r = check(&h.view());
        assert_eq!(r.verdict, Verdict::Pass, "{r:#?}");
        assert_eq!(r.counts["exercised"], 1);
        assert_eq!(r.counts["info"], 1);
    }

    #[test]
    fn a_second_effect_for_one_key_is_a_duplicate_effect() {
        let h = send(H::default(), 0, "idem-0-0", "k1", OpKind::Ok);
        let h = send(h, 1, "idem-0-1", "k1", OpKind::Ok);
        let h = read(h, 1000, "k1", 2);
        let r = check(&h.view());
        assert_eq!(r.verdict, Verdict::Fail);
        assert_eq!(r.counts["duplicate-effect"], 1);
        assert!(
            r.evidence[0].starts_with("duplicate-effect: key \"k1\" took effect 2 times"),
            "{:?}",
            r.evidence
        );
    }

    #[test]
    fn an_acknowledged_key_without_effect_is_lost() {
        let h = send(H::default(), 0, "idem-0-0", "k1", OpKind::Info);
        let h = send(h, 200, "idem-0-0", "k1", OpKind::Ok);
        let h = read(h, 1000, "k1", 0);
        let r = check(&h.view());
        assert_eq!(r.verdict, Verdict::Fail);
        assert_eq!(r.counts["lost-effect"], 1);
    }

    #[test]
    fn info_sends_may_or_may_not_have_taken_effect() {
        // Both unknown: 0 effects is no loss, 1 is no duplicate.
        for n in [0, 1] {
            let h = send(H::default(), 0, "idem-0-0", "k1", OpKind::Info);
            let h = send(h, 1, "idem-0-1", "k1", OpKind::Info);
            let h = read(h, 1000, "k1", n);
            let r = check(&h.view());
            assert_eq!(r.verdict, Verdict::Pass, "{n}: {r:#?}");
        }
    }

    #[test]
    fn an_ack_after_the_read_proves_nothing_about_it() {
        let h = H::default()
            .op(0, "idem-0-0", OpKind::Invoke, "apply", json!({"key": "k1"}))
            .op(2000, "idem-0-0", OpKind::Ok, "apply", json!({"key": "k1"}));
        let h = send(h, 1, "idem-0-1", "k1", OpKind::Info);
        let h = read(h, 1000, "k1", 0);
        assert_eq!(check(&h.view()).verdict, Verdict::Pass);
    }

    #[test]
    fn without_reads_or_repeats_there_is_no_evidence() {
        let h = send(H::default(), 0, "idem-0-0", "k1", OpKind::Ok);
        let r = check(&h.clone().view());
        assert_eq!(r.verdict, Verdict::Unknown);
        assert!(r.reason.contains("never read"), "{}", r.reason);
        let r = check(&read(h, 1000, "k1", 1).view());
        assert_eq!(r.verdict, Verdict::Unknown);
        assert!(r.reason.contains("nothing tested"), "{}", r.reason);
        assert_eq!(check(&H::default().view()).verdict, Verdict::Unknown);
    }

    #[test]
    fn a_definite_fail_is_not_a_possible_effect() {
        let h = send(H::default(), 0, "idem-0-0", "k1", OpKind::Ok);
        let h = send(h, 1, "idem-0-1", "k1", OpKind::Fail);
        let r = check(&read(h, 1000, "k1", 1).view());
        assert_eq!(r.verdict, Verdict::Unknown, "{r:#?}");
        assert_eq!(r.counts["failed"], 1);
    }
}
