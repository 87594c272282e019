//! Judging single observations: last-run formats, cron evidence, counter resets.

use serde_json::json;

use super::*;

#[test]
fn last_run_values_in_every_accepted_form() {
    let ms = 1_700_000_040_000u64;
    assert_eq!(parse_last_run(&json!(null)), Ok(None));
    assert_eq!(parse_last_run(&json!(ms)), Ok(Some(ms)));
    assert_eq!(
        parse_last_run(&json!(1_700_000_040u64)),
        Ok(Some(ms)),
        "seconds"
    );
    assert_eq!(parse_last_run(&json!(1_700_000_040.5)), Ok(Some(ms + 500)));
    assert_eq!(parse_last_run(&json!("1700000040000")), Ok(Some(ms)));
    assert_eq!(parse_last_run(&json!("2023-11-14T22:14:00Z")), Ok(Some(ms)));
    assert_eq!(
        parse_last_run(&json!("2023-11-14T23:14:00+01:00")),
        Ok(Some(ms))
    );
    let e = parse_last_run(&json!("yesterday")).expect_err("not a time");
    assert!(e.contains("\"yesterday\"") && e.contains("ISO 8601"), "{e}");
    assert!(parse_last_run(&json!(-5)).is_err());
    assert!(parse_last_run(&json!({"a": 1})).is_err());
}

#[test]
fn counter_growth_counts_a_reset_from_zero() {
    assert_eq!(growth([5.0, 7.0, 7.0, 10.0].into_iter()), 5.0);
    assert_eq!(
        growth([100.0, 3.0, 4.0].into_iter()),
        4.0,
        "reset to 0 then 3, then +1"
    );
    assert_eq!(growth(std::iter::empty()), 0.0);
}

#[test]
fn windows_keep_one_baseline_before_their_start() {
    let mut cs = CheckState::default();
    for at in [0, 10, 20, 30, 40] {
        push(
            &mut cs,
            Sample {
                at_ms: at,
                a: at as f64,
                b: 0.0,
            },
        );
    }
    assert!(window(&mut cs, 40, Duration::from_millis(25), true));
    assert_eq!(
        cs.samples.iter().map(|s| s.at_ms).collect::<Vec<_>>(),
        vec![10, 20, 30, 40]
    );
    assert!(!window(&mut cs, 40, Duration::from_millis(25), false));
    assert_eq!(
        cs.samples.iter().map(|s| s.at_ms).collect::<Vec<_>>(),
        vec![20, 30, 40]
    );
    // A sample at the same time replaces the older one.
    push(
        &mut cs,
        Sample {
            at_ms: 40,
            a: 1.0,
            b: 0.0,
        },
    );
    assert_eq!(cs.samples.len(), 3);
}
