//! The alert state machine on hand-written timelines: every-minute and `*/5` crons, grace
//! edges (exactly at and just after), N consecutive failures, mute windows, recovery with the
//! missed-slot count, undelivered notices, and state carried across `--once` runs.

use std::path::Path;

use serde_json::json;

use super::*;
use crate::watch::config::parse_str;
use crate::watch::probe::Reading;

/// 2023-11-14T22:14:00Z, a Tuesday, on a minute boundary.
const T: u64 = 1_700_000_040_000;
/// 2023-11-14T22:15:00Z, on a five-minute boundary.
const T5: u64 = 1_700_000_100_000;
const S: u64 = 1_000;
const M: u64 = 60_000;

fn plan(extra: &str, check: &str) -> WatchPlan {
    let text = format!("{extra}\n[[check]]\nname = \"c\"\nurl = \"http://127.0.0.1:1/s\"\n{check}");
    parse_str(&text, Path::new("WATCH.toml"), &|_| None).unwrap_or_else(|e| panic!("{e}"))
}

fn every_minute(extra: &str) -> WatchPlan {
    plan(
        extra,
        "kind = \"cron\"\npointer = \"/last_run\"\ncrons = [\"* * * * *\"]\ngrace = \"30s\"",
    )
}

fn last_run(at: u64, last: Option<u64>) -> Vec<Option<Observation>> {
    vec![Some(Observation {
        at_ms: at,
        result: Ok(Reading::Values {
            status: 200,
            values: vec![json!(last)],
        }),
    })]
}

/// Evaluates the cron check reading `last` at `now`, from `state`; returns the notices.
fn at(p: &WatchPlan, state: &mut State, last: Option<u64>, now: u64) -> Vec<Notice> {
    let e = evaluate(p, state, &last_run(now, last), now);
    *state = e.state;
    e.notices
}

fn active(state: &State) -> bool {
    state.checks["c"].active.is_some()
}

#[test]
fn every_minute_cron_is_late_exactly_at_slot_plus_grace_and_down_one_period_later() {
    let p = every_minute("");
    let mut s = State::new();
    assert_eq!(at(&p, &mut s, Some(T), T + 10 * S), vec![]);
    // The next slot is T + 1m; late from T + 1m30s.
    assert_eq!(at(&p, &mut s, Some(T), T + 90 * S - 1), vec![]);
    assert!(!active(&s));
    let n = at(&p, &mut s, Some(T), T + 90 * S);
    assert_eq!(n.len(), 1, "{n:?}");
    assert_eq!(
        n[0].kind,
        NoticeKind::Fired {
            severity: Severity::Late
        }
    );
    assert_eq!(n[0].since_ms, T + 90 * S);
    assert!(n[0].summary.contains("cron late"), "{}", n[0].summary);
    assert!(
        n[0].summary.contains("2023-11-14T22:15:00Z"),
        "{}",
        n[0].summary
    );
    assert!(
        n[0].evidence[0].contains("last run 2023-11-14T22:14:00Z"),
        "{:?}",
        n[0].evidence
    );
    // Late until one more period has passed, then down; no second notice.
    assert_eq!(at(&p, &mut s, Some(T), T + 150 * S - 1), vec![]);
    assert_eq!(
        s.checks["c"].active.as_ref().map(|a| a.severity),
        Some(Severity::Late)
    );
    assert_eq!(at(&p, &mut s, Some(T), T + 150 * S), vec![]);
    assert_eq!(
        s.checks["c"].active.as_ref().map(|a| a.severity),
        Some(Severity::Down)
    );
    assert!(
        s.checks["c"].summary.contains("cron down"),
        "{}",
        s.checks["c"].summary
    );
    // Just after the late time, from a fresh state: late, since the late time itself.
    let mut s = State::new();
    let n = at(&p, &mut s, Some(T), T + 90 * S + 1);
    assert_eq!(n.len(), 1);
    assert_eq!(n[0].since_ms, T + 90 * S);
    assert_eq!(
        n[0].kind,
        NoticeKind::Fired {
            severity: Severity::Late
        }
    );
    // Just after the down time: down at once.
    let mut s = State::new();
    let n = at(&p, &mut s, Some(T), T + 150 * S + 1);
    assert_eq!(
        n[0].kind,
        NoticeKind::Fired {
            severity: Severity::Down
        }
    );
}

#[test]
fn five_minute_cron_edges_and_alert_at_down() {
    let check =
        "kind = \"cron\"\npointer = \"/last_run\"\ncrons = [\"*/5 * * * *\"]\ngrace = \"1m\"";
    let p = plan("", check);
    let mut s = State::new();
    assert_eq!(at(&p, &mut s, Some(T5), T5 + 6 * M - 1), vec![]);
    let n = at(&p, &mut s, Some(T5), T5 + 6 * M);
    assert_eq!(n.len(), 1);
    assert_eq!(
        n[0].kind,
        NoticeKind::Fired {
            severity: Severity::Late
        }
    );
    assert_eq!(
        at(&p, &mut s, Some(T5), T5 + 6 * M + 1),
        vec![],
        "just after: still late, no repeat"
    );
    assert_eq!(at(&p, &mut s, Some(T5), T5 + 11 * M + 1), vec![]);
    assert_eq!(
        s.checks["c"].active.as_ref().map(|a| a.severity),
        Some(Severity::Down)
    );
    // The run at T5+15m: two slots (T5+5m, T5+10m) were missed.
    let n = at(&p, &mut s, Some(T5 + 15 * M), T5 + 15 * M + S);
    assert!(
        matches!(
            n[0].kind,
            NoticeKind::Recovered {
                missed_slots: Some(2),
                ..
            }
        ),
        "{n:?}"
    );
    // With alert_at = "down", late is not yet an alert.
    let p = plan("", &format!("{check}\nalert_at = \"down\""));
    let mut s = State::new();
    assert_eq!(
        at(&p, &mut s, Some(T5), T5 + 6 * M),
        vec![],
        "late is not an alert"
    );
    assert_eq!(s.checks["c"].consecutive_failures, 0);
    assert_eq!(at(&p, &mut s, Some(T5), T5 + 11 * M - 1), vec![]);
    let n = at(&p, &mut s, Some(T5), T5 + 11 * M);
    assert_eq!(n.len(), 1);
    assert_eq!(
        n[0].kind,
        NoticeKind::Fired {
            severity: Severity::Down
        }
    );
    assert!(
        n[0].summary.contains("2 expected runs missed"),
        "{}",
        n[0].summary
    );
}

#[test]
fn the_alert_fires_after_n_consecutive_failures_and_a_success_resets_the_count() {
    let p = every_minute("failures = 3");
    let mut s = State::new();
    let late = T + 90 * S;
    assert_eq!(at(&p, &mut s, Some(T), late), vec![]);
    assert_eq!(at(&p, &mut s, Some(T), late + 10 * S), vec![]);
    assert_eq!(s.checks["c"].consecutive_failures, 2);
    // It ran after all: the count starts again.
    assert_eq!(at(&p, &mut s, Some(T + M), late + 20 * S), vec![]);
    assert_eq!(s.checks["c"].consecutive_failures, 0);
    let late = T + M + 90 * S;
    assert_eq!(at(&p, &mut s, Some(T + M), late), vec![]);
    assert_eq!(at(&p, &mut s, Some(T + M), late + S), vec![]);
    let n = at(&p, &mut s, Some(T + M), late + 2 * S);
    assert_eq!(n.len(), 1);
    // Since the first failure of the run, not since the third.
    assert_eq!(n[0].since_ms, late);
    assert_eq!(
        at(&p, &mut s, Some(T + M), late + 3 * S),
        vec![],
        "no repeat"
    );
}

#[test]
fn recovery_is_notified_once_with_the_missed_slots() {
    let p = every_minute("");
    let mut s = State::new();
    at(&p, &mut s, Some(T), T + 10 * S);
    assert_eq!(at(&p, &mut s, Some(T), T + 90 * S).len(), 1);
    // Runs at T+1m and T+2m were missed; T+3m ran.
    let n = at(&p, &mut s, Some(T + 3 * M), T + 3 * M + 5 * S);
    assert_eq!(n.len(), 1, "{n:?}");
    assert_eq!(
        n[0].kind,
        NoticeKind::Recovered {
            missed_slots: Some(2),
            at_ms: T + 3 * M + 5 * S
        }
    );
    assert_eq!(n[0].since_ms, T + 90 * S);
    assert_eq!(at(&p, &mut s, Some(T + 3 * M), T + 3 * M + 10 * S), vec![]);
    assert!(!active(&s));
}

#[test]
fn a_cron_that_never_ran_is_judged_from_when_watching_began() {
    let p = every_minute("");
    let mut s = State::new();
    assert_eq!(at(&p, &mut s, None, T + 10 * S), vec![]);
    let n = at(&p, &mut s, None, T + M + 30 * S);
    assert_eq!(n.len(), 1);
    assert!(
        n[0].evidence[0].contains("no run yet"),
        "{:?}",
        n[0].evidence
    );
    let n = at(&p, &mut s, Some(T + 2 * M), T + 2 * M + S);
    assert_eq!(
        n[0].kind,
        NoticeKind::Recovered {
            missed_slots: Some(1),
            at_ms: T + 2 * M + S
        }
    );
}

#[test]
fn nothing_is_sent_inside_a_mute_window_and_what_is_still_true_is_sent_after() {
    // T is 22:14 on a Tuesday.
    let p = every_minute("[[mute]]\ndays = [\"tue\"]\nfrom = \"22:15\"\nto = \"22:20\"");
    let mut s = State::new();
    at(&p, &mut s, Some(T), T + 10 * S);
    assert_eq!(at(&p, &mut s, Some(T), T + 90 * S), vec![], "muted");
    assert!(active(&s), "the alert is active even though muted");
    let n = at(&p, &mut s, Some(T), T + 6 * M);
    assert_eq!(n.len(), 1, "announced when the window ends");
    assert!(matches!(
        n[0].kind,
        NoticeKind::Fired {
            severity: Severity::Down
        }
    ));

    // Fired and recovered inside one window: never announced.
    let mut s = State::new();
    at(&p, &mut s, Some(T), T + 10 * S);
    assert_eq!(at(&p, &mut s, Some(T), T + 90 * S), vec![]);
    assert_eq!(at(&p, &mut s, Some(T + 2 * M), T + 2 * M + S), vec![]);
    assert_eq!(at(&p, &mut s, Some(T + 5 * M), T + 6 * M), vec![]);
    assert!(!active(&s));
}

#[test]
fn a_mute_window_can_wrap_midnight_and_apply_to_some_days() {
    let p = every_minute("[[mute]]\ndays = [\"mon\"]\nfrom = \"23:00\"\nto = \"01:00\"");
    let w = &p.mutes[0];
    let tuesday_midnight = T - (22 * 60 + 14) * M;
    let monday_midnight = tuesday_midnight - 24 * 60 * M;
    assert!(
        !w.contains(monday_midnight + 30 * M),
        "Monday 00:30 belongs to Sunday's window"
    );
    assert!(w.contains(monday_midnight + 23 * 60 * M));
    assert!(
        w.contains(monday_midnight + 24 * 60 * M + 59 * M),
        "Tuesday 00:59"
    );
    assert!(
        !w.contains(monday_midnight + 25 * 60 * M),
        "Tuesday 01:00 is out"
    );
    assert!(!w.contains(monday_midnight + 22 * 60 * M + 59 * M));
}

#[test]
fn state_carried_across_once_runs_through_the_file_prevents_repeats() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("state.json");
    let p = every_minute("");
    // Each "run" loads the file, evaluates once and saves, as `--once` does.
    let once = |last: u64, now: u64| {
        let (prev, _) = State::load(&path).expect("load");
        let e = evaluate(&p, &prev, &last_run(now, Some(last)), now);
        e.state.save(&path).expect("save");
        (e.notices.len(), e.any_active())
    };
    assert_eq!(once(T, T + 10 * S), (0, false));
    assert_eq!(once(T, T + 2 * M), (1, true));
    assert_eq!(once(T, T + 7 * M), (0, true), "no repeat");
    assert_eq!(once(T, T + 12 * M), (0, true), "no repeat");
    assert_eq!(once(T + 13 * M, T + 13 * M + S), (1, false), "recovery");
    assert_eq!(once(T + 13 * M, T + 13 * M + 2 * S), (0, false));
}

#[test]
fn an_undelivered_notice_is_due_again_next_time() {
    let p = every_minute("");
    let mut s = State::new();
    at(&p, &mut s, Some(T), T + 10 * S);
    let n = at(&p, &mut s, Some(T), T + 90 * S);
    undelivered(&mut s, &n[0]);
    let again = at(&p, &mut s, Some(T), T + 100 * S);
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].since_ms, n[0].since_ms);
    // Undelivered recovery: due again too.
    let r = at(&p, &mut s, Some(T + 2 * M), T + 2 * M + S);
    assert!(matches!(r[0].kind, NoticeKind::Recovered { .. }));
    undelivered(&mut s, &r[0]);
    let again = at(&p, &mut s, Some(T + 2 * M), T + 2 * M + 2 * S);
    assert_eq!(again.len(), 1);
    assert!(matches!(
        again[0].kind,
        NoticeKind::Recovered {
            missed_slots: Some(1),
            ..
        }
    ));
}

#[test]
fn a_failing_probe_counts_as_a_failure_and_checks_not_observed_carry_over() {
    let p = every_minute("failures = 2");
    let mut s = State::new();
    let fail = vec![Some(Observation {
        at_ms: T,
        result: Err("connection refused".to_owned()),
    })];
    assert!(evaluate(&p, &s, &fail, T).notices.is_empty());
    s = evaluate(&p, &s, &fail, T).state;
    let e = evaluate(&p, &s, &fail, T + S);
    assert_eq!(e.notices.len(), 1);
    assert!(e.notices[0].summary.contains("connection refused"));
    let carried = evaluate(&p, &e.state, &[None], T + 2 * S);
    assert_eq!(carried.state.checks["c"], e.state.checks["c"]);
    assert!(carried.any_active());
}

#[test]
fn a_counter_that_stops_growing_alerts_and_recovers() {
    let p = plan(
        "",
        "kind = \"counter\"\npointer = \"/runs\"\nmin_increase = 1\nwindow = \"5m\"",
    );
    let obs = |at: u64, v: u64| {
        vec![Some(Observation {
            at_ms: at,
            result: Ok(Reading::Values {
                status: 200,
                values: vec![json!(v)],
            }),
        })]
    };
    let mut s = State::new();
    let mut step = |at: u64, v: u64| {
        let e = evaluate(&p, &s, &obs(at, v), at);
        s = e.state;
        (e.notices, s.checks["c"].summary.clone())
    };
    assert!(step(T, 10).1.contains("warming up"));
    assert!(step(T + 5 * M, 15).0.is_empty());
    assert!(step(T + 6 * M, 16).0.is_empty());
    // Flat from T+6m: at T+11m the window holds no growth.
    assert!(step(T + 9 * M, 16).0.is_empty());
    let (n, _) = step(T + 11 * M, 16);
    assert_eq!(n.len(), 1);
    assert!(
        n[0].summary.contains("input stopped: grew by 0"),
        "{}",
        n[0].summary
    );
    assert_eq!(n[0].since_ms, T + 6 * M, "since the last growth");
    let (n, _) = step(T + 12 * M, 17);
    assert!(matches!(
        n[0].kind,
        NoticeKind::Recovered {
            missed_slots: None,
            ..
        }
    ));
}

#[test]
fn error_rate_over_failed_probes_and_over_a_stats_endpoint() {
    let p = plan(
        "",
        "kind = \"error_rate\"\nmax_error_rate = \"50%\"\nwindow = \"10m\"\nmin_samples = 2",
    );
    let probe = |at: u64, ok: bool| {
        vec![Some(Observation {
            at_ms: at,
            result: Ok(Reading::Probe {
                ok,
                detail: if ok { "HTTP 200" } else { "HTTP 503" }.to_owned(),
            }),
        })]
    };
    let e = evaluate(&p, &State::new(), &probe(T, false), T);
    assert!(e.notices.is_empty(), "one sample is below min_samples");
    let e = evaluate(&p, &e.state, &probe(T + M, true), T + M);
    assert!(e.notices.is_empty(), "1 of 2 = 50% is not above 50%");
    let e = evaluate(&p, &e.state, &probe(T + 2 * M, false), T + 2 * M);
    assert_eq!(e.notices.len(), 1);
    assert!(
        e.notices[0].summary.contains("66.7%"),
        "{}",
        e.notices[0].summary
    );

    let p = plan(
        "",
        "kind = \"error_rate\"\nmax_error_rate = \"5%\"\nwindow = \"10m\"\nerrors_pointer = \"/e\"\ntotal_pointer = \"/t\"",
    );
    let stats = |at: u64, e: u64, t: u64| {
        vec![Some(Observation {
            at_ms: at,
            result: Ok(Reading::Values {
                status: 200,
                values: vec![json!(e), json!(t)],
            }),
        })]
    };
    let e = evaluate(&p, &State::new(), &stats(T, 0, 100), T);
    let e = evaluate(&p, &e.state, &stats(T + 10 * M, 4, 200), T + 10 * M);
    assert!(e.notices.is_empty(), "4 of 100 = 4%");
    let e = evaluate(&p, &e.state, &stats(T + 20 * M, 20, 300), T + 20 * M);
    assert_eq!(e.notices.len(), 1);
    assert!(
        e.notices[0].summary.contains("16 errors of 100 requests"),
        "{}",
        e.notices[0].summary
    );
}

#[test]
fn secrets_in_probe_urls_never_reach_the_state_or_a_notice() {
    let text = "[[check]]\nname = \"c\"\nkind = \"cron\"\nurl = \"http://127.0.0.1:1/s?token=${API_TOKEN}\"\npointer = \"/last_run\"\ncrons = [\"* * * * *\"]\n";
    let p = parse_str(text, Path::new("WATCH.toml"), &|_| {
        Some("tok-123456".to_owned())
    })
    .unwrap_or_else(|e| panic!("{e}"));
    let mut s = State::new();
    let n = at(&p, &mut s, Some(T), T + 10 * M);
    let saved = serde_json::to_string(&s).unwrap_or_default();
    assert!(saved.contains("token=***"), "{saved}");
    assert!(!saved.contains("tok-123456"), "{saved}");
    assert!(!format!("{n:?}").contains("tok-123456"));
}
