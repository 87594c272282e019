//! Merge tests on hand-made shard sets.

use super::*;

fn info(index: u64, count: u64, identity: &str) -> ShardInfo {
    ShardInfo {
        index,
        count,
        identity: identity.to_owned(),
        start_at: None,
        start_skew_us: 0,
        sending_s: 1.0,
        merged: None,
    }
}

fn names(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("dir{i}")).collect()
}

#[test]
fn a_whole_set_has_no_problems() {
    let (a, b, c) = (info(0, 3, "x"), info(1, 3, "x"), info(2, 3, "x"));
    let (count, shards, problems) = audit(&[Some(&b), Some(&a), Some(&c)], &names(3));
    assert_eq!(count, 3);
    assert_eq!(shards, vec![0, 1, 2]);
    assert!(problems.is_empty(), "{problems:?}");
}

#[test]
fn missing_duplicate_and_foreign_shards_are_each_named() {
    let (a, b) = (info(0, 3, "x"), info(1, 3, "x"));
    let (_, _, problems) = audit(&[Some(&a), Some(&b)], &names(2));
    assert_eq!(problems, vec!["shard 2 of 3 missing".to_owned()]);

    let dup = info(1, 3, "x");
    let (_, _, problems) = audit(&[Some(&a), Some(&b), Some(&dup)], &names(3));
    assert!(
        problems.iter().any(|p| p.contains("shard 1 given twice")),
        "{problems:?}"
    );

    let other = info(2, 3, "yyyyyyyyyyyyyyyy");
    let (_, _, problems) = audit(&[Some(&a), Some(&b), Some(&other)], &names(3));
    assert!(
        problems
            .iter()
            .any(|p| p.contains("dir2 ran a different scenario, binary or configuration")),
        "{problems:?}"
    );

    let wrong_n = info(1, 4, "x");
    let (_, _, problems) = audit(&[Some(&a), Some(&wrong_n)], &names(2));
    assert!(
        problems.iter().any(|p| p.contains("not one of 3")),
        "{problems:?}"
    );

    let (_, _, problems) = audit(&[Some(&a), None], &names(2));
    assert!(
        problems.iter().any(|p| p.contains("dir1 is not a shard")),
        "{problems:?}"
    );
}

fn totals(name: &str, values: &[u64], ok: u64) -> Totals {
    let mut t = empty(name);
    for v in values {
        let _ = t.corrected.record(*v);
        let _ = t.service.record(*v);
    }
    t.by_class[0] = ok;
    t.dropped = 1;
    t
}

#[test]
fn totals_add_exactly_by_request_name() {
    let part = |vals: &[u64]| Part {
        summary: crate::report::model::fixture(),
        per: vec![totals("a", vals, vals.len() as u64)],
        all: totals("all", vals, vals.len() as u64),
        windows: Vec::new(),
    };
    let parts = vec![part(&[10, 20, 30]), part(&[1_000, 2_000])];
    let (per, all) = add_totals(&parts);
    let mut expected = new_histogram();
    for v in [10, 20, 30, 1_000, 2_000] {
        let _ = expected.record(v);
    }
    assert_eq!(per.len(), 1);
    assert_eq!(per[0].corrected, expected);
    assert_eq!(
        all.corrected.value_at_quantile(0.5),
        expected.value_at_quantile(0.5)
    );
    assert_eq!(per[0].by_class[0], 5);
    assert_eq!(per[0].dropped, 2);
}

#[test]
fn a_merge_without_shard_info_is_incomplete_and_keeps_no_verdicts_it_cannot_carry() {
    let part = Part {
        summary: crate::report::model::fixture(),
        per: vec![totals("get_config", &[100], 1)],
        all: totals("all", &[100], 1),
        windows: Vec::new(),
    };
    let s = merged_summary(&[part]);
    let merged = s.shard.as_ref().and_then(|i| i.merged.as_ref());
    assert!(merged.is_some_and(|m| !m.complete));
    assert!(s.warnings.iter().any(|w| w.starts_with("INCOMPLETE merge")));
    assert!(s.checks.is_empty());
    assert_eq!(s.overall.completed, 1);
}

#[test]
fn windowed_thresholds_are_judged_again_on_the_merged_windows() {
    // The fixture's "acquire_lock p99 < 500ms during heal": slow over the whole run, fast in
    // the heal window of both shards.
    let part = |heal: &[u64]| Part {
        summary: crate::report::model::fixture(),
        per: vec![totals("acquire_lock", &[2_000_000, 3_000_000], 2)],
        all: totals("all", &[2_000_000, 3_000_000], 2),
        windows: vec![WindowTotals {
            window: Window::Heal,
            per: vec![totals("acquire_lock", heal, heal.len() as u64)],
            all: totals("all", heal, heal.len() as u64),
            duration_s: 2.0,
        }],
    };
    let s = merged_summary(&[part(&[100_000]), part(&[200_000, 150_000])]);
    let t = s
        .thresholds
        .iter()
        .find(|t| t.during.as_deref() == Some("heal"))
        .expect("the windowed threshold is judged");
    assert!(t.passed, "{t:?}");
    assert!(
        t.observed
            .is_some_and(|o| (199_000.0..201_000.0).contains(&o)),
        "{t:?}"
    );
    let windows = add_windows(&[part(&[1]), part(&[2])]);
    assert_eq!(windows.len(), 1);
    assert_eq!(windows[0].all.corrected.len(), 2);
    // Shards without window data (an older run) leave it without data: no PASS.
    let mut bare = part(&[1]);
    bare.windows.clear();
    let s = merged_summary(&[bare]);
    let t = s
        .thresholds
        .iter()
        .find(|t| t.during.is_some())
        .expect("judged");
    assert_eq!((t.observed, t.passed), (None, false));
}
