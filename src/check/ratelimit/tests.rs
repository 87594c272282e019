//! Hand-written histories for the rate limiter check.

use super::*;
use crate::check::Verdict;
use crate::check::testing::H;
use serde_json::json;

fn cfg(on_fault: Option<OnFault>) -> RateLimitConfig {
    RateLimitConfig {
        limit: 3,
        window: Duration::from_secs(1),
        tolerance: 0,
        on_fault,
    }
}

/// A hit of `key` at `ms` answered 10 ms later: admitted, refused, or a 503 (`None`).
fn hit(h: H, ms: u64, p: &str, key: &str, admitted: Option<bool>) -> H {
    let h = h.op(ms, p, OpKind::Invoke, "hit", json!({"key": key}));
    match admitted {
        Some(true) => h.op(
            ms + 10,
            p,
            OpKind::Ok,
            "hit",
            json!({"key": key, "admitted": true}),
        ),
        Some(false) => h.op(
            ms + 10,
            p,
            OpKind::Ok,
            "hit",
            json!({"key": key, "admitted": false, "http": 429}),
        ),
        None => h.op(
            ms + 10,
            p,
            OpKind::Info,
            "hit",
            json!({"key": key, "http": 503}),
        ),
    }
}

/// Every 100 ms from `from` for `n` hits, the first `admit` of each second admitted.
fn steady(mut h: H, from: u64, n: u64, admit: u64, key: &str) -> H {
    for i in 0..n {
        let ms = from + i * 100;
        let in_second = (ms % 1000) / 100;
        h = hit(h, ms, "rl-0-0", key, Some(in_second < admit));
    }
    h
}

#[test]
fn a_limit_that_holds_and_refuses_passes() {
    let h = steady(H::default(), 0, 30, 3, "a");
    let r = check(&h.view(), &cfg(None));
    assert_eq!(r.verdict, Verdict::Pass, "{r:#?}");
    assert_eq!(r.counts["max_admitted_per_window"], 3);
    assert_eq!(r.counts["refused"], 21);
}

#[test]
fn more_than_the_limit_in_one_window_is_over_admitted() {
    let h = steady(H::default(), 0, 30, 6, "a");
    let r = check(&h.view(), &cfg(None));
    assert_eq!(r.verdict, Verdict::Fail, "{r:#?}");
    assert!(r.counts["over-admitted"] >= 1);
    assert!(
        r.evidence[0].starts_with("over-admitted: key \"a\": 6 admitted"),
        "{:?}",
        r.evidence
    );
    // A tolerance of 3 covers it.
    let mut c = cfg(None);
    c.tolerance = 3;
    assert_eq!(
        check(&steady(H::default(), 0, 30, 6, "a").view(), &c).verdict,
        Verdict::Pass
    );
}

#[test]
fn admissions_only_provably_in_one_window_count() {
    // Four admissions, but the last answered more than a window after the first was sent:
    // a limiter may have admitted it in the next window.
    let mut h = H::default();
    for (i, ms) in [0u64, 100, 200].into_iter().enumerate() {
        h = hit(h, ms, &format!("rl-0-{i}"), "a", Some(true));
    }
    h = h
        .op(300, "rl-0-3", OpKind::Invoke, "hit", json!({"key": "a"}))
        .op(
            1200,
            "rl-0-3",
            OpKind::Ok,
            "hit",
            json!({"key": "a", "admitted": true}),
        );
    h = hit(h, 1500, "rl-0-0", "a", Some(false));
    let r = check(&h.view(), &cfg(None));
    assert_eq!(r.verdict, Verdict::Pass, "{r:#?}");
    // Keys are counted apart.
    let mut h = H::default();
    for i in 0..3 {
        h = hit(h, i * 10, "rl-0-0", "a", Some(true));
        h = hit(h, i * 10 + 1, "rl-1-0", "b", Some(true));
    }
    h = hit(h, 50, "rl-0-0", "a", Some(false));
    assert_eq!(check(&h.view(), &cfg(None)).verdict, Verdict::Pass);
}

#[test]
fn a_limit_never_reached_is_unknown() {
    let h = steady(H::default(), 0, 30, 10, "a");
    let r = check(&h.view(), &cfg(Some(OnFault::Closed)).clone());
    assert_eq!(r.verdict, Verdict::Fail, "10 per second over a limit of 3");
    let mut c = cfg(None);
    c.limit = 20;
    let r = check(&steady(H::default(), 0, 30, 10, "a").view(), &c);
    assert_eq!(r.verdict, Verdict::Unknown, "{r:#?}");
    assert!(r.reason.contains("never reached"), "{}", r.reason);
    assert_eq!(check(&H::default().view(), &c).verdict, Verdict::Unknown);
}

/// Held before 2 s and after 5 s; during the fault (2 s to 5 s) `during` decides.
fn faulted(during: fn(u64) -> Option<bool>) -> H {
    let mut h = steady(H::default(), 0, 20, 3, "a")
        .fault(2000, 0)
        .clear(5000, 0);
    for i in 0..30 {
        let ms = 2000 + 50 + i * 100;
        if ms + 10 < 5000 {
            h = hit(h, ms, "rl-0-0", "a", during(ms));
        }
    }
    steady(h, 5000, 20, 3, "a")
}

#[test]
fn a_limiter_that_fails_open_is_reported_and_judged_against_on_fault() {
    let open = || faulted(|_| Some(true));
    let r = check(&open().view(), &cfg(Some(OnFault::Open)));
    assert_eq!(r.verdict, Verdict::Pass, "{r:#?}");
    assert_eq!(r.counts["policy_fail_open"], 1);
    assert!(r.counts["over_limit_during_faults"] >= 1);
    assert!(
        r.evidence.iter().any(|e| e.contains("fail-open")),
        "{:?}",
        r.evidence
    );
    let r = check(&open().view(), &cfg(Some(OnFault::Closed)));
    assert_eq!(r.verdict, Verdict::Fail);
    assert_eq!(r.counts["wrong-fault-policy"], 1);
    assert!(
        r.counts["over-admitted"] >= 1,
        "not excused unless open is declared"
    );
    // Undeclared: reported, and the over-admission stands.
    let r = check(&open().view(), &cfg(None));
    assert_eq!(r.counts["policy_fail_open"], 1);
    assert!(!r.counts.contains_key("wrong-fault-policy"));
    assert_eq!(r.verdict, Verdict::Fail);
}

#[test]
fn a_limiter_that_fails_closed_or_holds_is_told_apart() {
    let r = check(
        &faulted(|_| Some(false)).view(),
        &cfg(Some(OnFault::Closed)),
    );
    assert_eq!(r.verdict, Verdict::Pass, "{r:#?}");
    assert_eq!(r.counts["policy_fail_closed"], 1);
    let r = check(&faulted(|_| Some(false)).view(), &cfg(Some(OnFault::Open)));
    assert_eq!(r.verdict, Verdict::Fail);
    assert_eq!(r.counts["wrong-fault-policy"], 1);
    let held = || faulted(|ms| Some((ms % 1000) < 300));
    for d in [OnFault::Open, OnFault::Closed, OnFault::Held] {
        let r = check(&held().view(), &cfg(Some(d)));
        assert_eq!(r.verdict, Verdict::Pass, "{d:?}: {r:#?}");
        assert_eq!(r.counts["policy_held"], 1);
    }
    let r = check(&faulted(|_| Some(true)).view(), &cfg(Some(OnFault::Held)));
    assert_eq!(r.counts["wrong-fault-policy"], 1);
}

#[test]
fn errors_during_a_fault_show_no_policy() {
    // 503s are neither admissions nor refusals: indeterminate, never a violation.
    let r = check(&faulted(|_| None).view(), &cfg(Some(OnFault::Closed)));
    assert_eq!(r.verdict, Verdict::Unknown, "{r:#?}");
    assert!(r.reason.contains("on_fault"), "{}", r.reason);
    assert!(r.counts["errors"] > 0);
    // A short burst of refusals is what a holding limiter does too: not fail-closed.
    let short = |ms: u64| if ms < 2500 { Some(false) } else { None };
    let r = check(&faulted(short).view(), &cfg(Some(OnFault::Open)));
    assert_eq!(r.verdict, Verdict::Unknown, "{r:#?}");
}

#[test]
fn on_fault_is_judged_only_in_a_run_with_faults() {
    let r = check(
        &steady(H::default(), 0, 30, 3, "a").view(),
        &cfg(Some(OnFault::Closed)),
    );
    assert_eq!(r.verdict, Verdict::Pass, "{r:#?}");
    assert!(r.reason.contains("on_fault not exercised"), "{}", r.reason);
}
