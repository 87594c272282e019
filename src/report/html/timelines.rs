//! Checks over time, drawn from the history: cron ticks per cron, lock grants (held until
//! release) and refusals per lock, queue depth with the final drain, and the checks'
//! violations marked where their evidence says they happened.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use super::over_time::{shade_faults, time_axis};
use super::overview::badge;
use super::{MAX_LOCK_LANES, WIDE};
use crate::check::{HistoryView, Operation};
use crate::history::OpKind;
use crate::report::data::RunData;
use crate::report::human;
use crate::report::markup::xml;
use crate::report::model::Summary;
use crate::report::svg::{self, Axis, Marker, Plot, Shape};

fn secs(t: Duration) -> f64 {
    t.as_secs_f64()
}

/// Cron, lock and queue timelines, and which of them the history had nothing for.
pub(super) fn check_timelines(out: &mut String, d: &RunData) {
    out.push_str("<h2 id=\"check-timelines\">Checks over time</h2>\n");
    let view = HistoryView::new(&d.history);
    let x = time_axis(d);
    let mut absent = Vec::new();
    if !cron_timeline(out, d, &view, x) {
        absent.push("cron ticks");
    }
    if !lock_timeline(out, d, &view, x) {
        absent.push("lock operations");
    }
    if !queue_timeline(out, d, &view, x) {
        absent.push("queue operations");
    }
    if !absent.is_empty() {
        let _ = writeln!(
            out,
            "<p class=\"note\">No {} in this run's history.</p>",
            absent.join(", no ")
        );
    }
}

fn check_line(out: &mut String, s: &Summary, name: &str) {
    if let Some(c) = s.checks.iter().find(|c| c.name == name) {
        let _ = writeln!(
            out,
            "<p>{} {}</p>",
            badge(human::verdict_word(c.verdict)),
            xml(&c.reason)
        );
    }
}

/// Colour, mark and word for an operation's outcome.
fn outcome_style(op: &Operation) -> (&'static str, Shape, &'static str) {
    match op.outcome() {
        OpKind::Ok => (svg::OK, Shape::Dot, "ok"),
        OpKind::Fail => (svg::BAD, Shape::Cross, "fail"),
        _ => (svg::INFO, Shape::Dot, "info (no answer)"),
    }
}

fn cron_timeline(out: &mut String, d: &RunData, view: &HistoryView, x: Axis) -> bool {
    let ticks: Vec<&Operation> = view.ops_of("cron", "tick").collect();
    if ticks.is_empty() {
        return false;
    }
    let mut crons: Vec<&str> = ticks
        .iter()
        .map(|t| t.str_field("cron").unwrap_or("?"))
        .collect();
    crons.sort_unstable();
    crons.dedup();
    out.push_str("<h3>Cron ticks</h3>\n");
    check_line(out, &d.summary, "cron");
    let n = crons.len();
    let mut p = Plot::new(
        "cron-timeline",
        WIDE.0,
        60.0 + 34.0 * n as f64,
        x,
        Axis::linear(0.0, 1.0),
    )
    .formats(svg::fmt_secs, svg::fmt_num)
    .labels("run time", "")
    .left_margin(120.0);
    shade_faults(&mut p, &d.summary, x.max);
    for (i, c) in crons.iter().enumerate() {
        p.lane_label((i, n), c);
    }
    let mut drawn = std::collections::HashSet::new();
    for t in &ticks {
        let lane = crons
            .iter()
            .position(|c| Some(*c) == t.str_field("cron").or(Some("?")))
            .unwrap_or(0);
        let (color, shape, word) = outcome_style(t);
        // One mark per lane, pixel column and outcome: long runs stay small.
        if !drawn.insert((lane, p.column(secs(t.t)), word)) {
            continue;
        }
        p.marker(
            secs(t.t),
            Marker::Lane(lane, n),
            shape,
            color,
            &format!("{}: tick {word}", svg::fmt_secs(secs(t.t))),
        );
        p.legend(&format!("tick {word}"), color);
    }
    out.push_str(&p.finish(true));
    true
}

/// Run times of a check's evidence lines (the first `12.345s` in each), for violation marks.
fn evidence_times(s: &Summary, check: &str) -> Vec<(f64, String)> {
    let Some(c) = s.checks.iter().find(|c| c.name == check) else {
        return Vec::new();
    };
    c.evidence
        .iter()
        .filter_map(|line| {
            let t = line.split_whitespace().find_map(|w| {
                let w = w.trim_matches(|c: char| c == '(' || c == ')' || c == ',' || c == ':');
                let n = w.strip_suffix('s')?;
                let (a, b) = n.split_once('.')?;
                (b.len() == 3 && a.chars().all(|c| c.is_ascii_digit()))
                    .then(|| n.parse::<f64>().ok())
                    .flatten()
            })?;
            Some((t, line.clone()))
        })
        .collect()
}

fn lock_timeline(out: &mut String, d: &RunData, view: &HistoryView, x: Axis) -> bool {
    let acquires: Vec<&Operation> = view.ops_of("lock", "acquire").collect();
    if acquires.is_empty() {
        return false;
    }
    let releases: Vec<&Operation> = view.ops_of("lock", "release").collect();
    let (locks, hidden) = busiest_locks(&acquires);
    let n = locks.len();
    out.push_str("<h3>Locks</h3>\n");
    check_line(out, &d.summary, "lock");
    let mut p = Plot::new(
        "lock-timeline",
        WIDE.0,
        60.0 + 30.0 * n as f64,
        x,
        Axis::linear(0.0, 1.0),
    )
    .formats(svg::fmt_secs, svg::fmt_num)
    .labels("run time", "")
    .left_margin(120.0);
    shade_faults(&mut p, &d.summary, x.max);
    for (i, (l, _)) in locks.iter().enumerate() {
        p.lane_label((i, n), l);
    }
    let mut drawn = std::collections::HashSet::new();
    for a in &acquires {
        let lock = a.str_field("lock").unwrap_or("?");
        let Some(lane) = locks.iter().position(|(l, _)| *l == lock) else {
            continue;
        };
        // One mark per lane, pixel column and outcome: long runs stay small.
        let at = a.done_t().filter(|_| a.is_ok()).unwrap_or(a.t);
        if !drawn.insert((lane, p.column(secs(at)), a.outcome() as u8)) {
            continue;
        }
        acquire_mark(&mut p, a, (lane, n), &releases);
    }
    for (t, line) in evidence_times(&d.summary, "lock") {
        p.marker(t, Marker::Y(0.5), Shape::Rule, svg::BAD, &line);
        p.legend("violation", svg::BAD);
    }
    out.push_str(&p.finish(true));
    if hidden > 0 {
        let _ = writeln!(
            out,
            "<p class=\"note\">{hidden} less busy locks not shown.</p>"
        );
    }
    true
}

/// The busiest locks by acquires (at most [`MAX_LOCK_LANES`]) and how many were left out.
fn busiest_locks<'a>(acquires: &[&'a Operation]) -> (Vec<(&'a str, usize)>, usize) {
    let mut by_lock: BTreeMap<&str, usize> = BTreeMap::new();
    for a in acquires {
        *by_lock
            .entry(a.str_field("lock").unwrap_or("?"))
            .or_default() += 1;
    }
    let mut locks: Vec<(&str, usize)> = by_lock.into_iter().collect();
    locks.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    let hidden = locks.len().saturating_sub(MAX_LOCK_LANES);
    locks.truncate(MAX_LOCK_LANES);
    (locks, hidden)
}

/// One acquire in its lane: a bar from grant to the matching release, or a tick for a refusal
/// or an acquire without an answer.
fn acquire_mark(p: &mut Plot, a: &Operation, (lane, n): (usize, usize), releases: &[&Operation]) {
    let lock = a.str_field("lock").unwrap_or("?");
    let holder = a.str_field("holder").unwrap_or("?");
    match (a.outcome(), a.done_t()) {
        (OpKind::Ok, Some(ok_t)) => {
            let token = a.u64_field("token");
            let release = releases
                .iter()
                .filter(|r| {
                    r.t >= ok_t
                        && r.str_field("lock") == Some(lock)
                        && r.str_field("holder") == Some(holder)
                        && r.u64_field("token") == token
                })
                .map(|r| r.t)
                .min();
            let end = release.map_or(secs(ok_t) + 0.15, secs);
            p.hbar(
                (lane, n),
                secs(ok_t),
                end,
                svg::OK,
                &format!(
                    "{} granted to {holder} (token {}) at {}{}",
                    lock,
                    token.map_or_else(|| "?".to_owned(), |t| t.to_string()),
                    svg::fmt_secs(secs(ok_t)),
                    release.map_or_else(
                        || ", no release seen".to_owned(),
                        |r| format!(", released at {}", svg::fmt_secs(secs(r)))
                    )
                ),
            );
            p.legend("held (grant to release)", svg::OK);
        }
        (OpKind::Fail, _) => {
            p.marker(
                secs(a.t),
                Marker::Lane(lane, n),
                Shape::Tick,
                svg::WARN,
                &format!("{holder}: acquire refused at {}", svg::fmt_secs(secs(a.t))),
            );
            p.legend("acquire refused", svg::WARN);
        }
        _ => {
            p.marker(
                secs(a.t),
                Marker::Lane(lane, n),
                Shape::Tick,
                svg::INFO,
                &format!(
                    "{holder}: acquire without answer at {}",
                    svg::fmt_secs(secs(a.t))
                ),
            );
            p.legend("acquire, no answer", svg::INFO);
        }
    }
}

fn queue_timeline(out: &mut String, d: &RunData, view: &HistoryView, x: Axis) -> bool {
    let enqueues: Vec<&Operation> = view.ops_of("producer", "enqueue").collect();
    if enqueues.is_empty() {
        return false;
    }
    let (mut pts, depth, max_depth) = queue_depth(view, &enqueues);
    let drains: Vec<&Operation> = view.ops_of("drain", "result").collect();
    out.push_str("<h3>Queue</h3>\n");
    check_line(out, &d.summary, "queue");
    let mut p = Plot::new(
        "queue-depth",
        WIDE.0,
        220.0,
        x,
        Axis::counts_to(max_depth as f64 * 1.1),
    )
    .formats(svg::fmt_secs, svg::fmt_num)
    .labels("run time", "tasks enqueued, not yet completed");
    shade_faults(&mut p, &d.summary, x.max);
    if let (Some(first), Some(last)) = (
        drains.iter().map(|o| o.t).min(),
        drains.iter().filter_map(|o| o.done_t().or(Some(o.t))).max(),
    ) {
        p.band(secs(first), secs(last), "#2f6db5", "final drain reads");
        p.legend("final drain", "#2f6db5");
    }
    if let Some(t) = pts.last().map(|p| p.0) {
        pts.push((t.max(x.max.min(d.summary.duration_s)), Some(depth as f64)));
    }
    p.line(&pts, "#8d5fc4", 1.8, "queue depth");
    for (t, line) in evidence_times(&d.summary, "queue") {
        p.marker(t, Marker::Y(0.0), Shape::Rule, svg::BAD, &line);
        p.legend("anomaly", svg::BAD);
    }
    out.push_str(&p.finish(false));
    queue_facts(out, &d.summary);
    true
}

/// Queue depth as a step line: acknowledged enqueues whose task has not been completed yet,
/// by distinct id. Returns the points, the final depth and the deepest.
fn queue_depth(view: &HistoryView, enqueues: &[&Operation]) -> (Vec<(f64, Option<f64>)>, i64, i64) {
    let mut steps: Vec<(Duration, i64)> = Vec::new();
    let mut enqueued = std::collections::HashSet::new();
    for e in enqueues.iter().filter(|e| e.is_ok()) {
        if let (Some(id), Some(t)) = (e.str_field("id"), e.done_t())
            && enqueued.insert(id)
        {
            steps.push((t, 1));
        }
    }
    let mut completed = std::collections::HashSet::new();
    for c in view.ops_of("consumer", "complete").filter(|c| c.is_ok()) {
        if let (Some(id), Some(t)) = (c.str_field("id"), c.done_t())
            && enqueued.contains(id)
            && completed.insert(id)
        {
            steps.push((t, -1));
        }
    }
    // A task the final drain found done (completed by a consumer whose answer was lost, or
    // never seen completing) leaves the queue when the drain saw it.
    for r in view.ops_of("drain", "result").filter(|r| r.is_ok()) {
        if let (Some(id), Some(t), Some("done")) =
            (r.str_field("id"), r.done_t(), r.str_field("status"))
            && enqueued.contains(id)
            && completed.insert(id)
        {
            steps.push((t, -1));
        }
    }
    steps.sort_by_key(|s| s.0);
    let mut depth = 0i64;
    let mut pts: Vec<(f64, Option<f64>)> = vec![(0.0, Some(0.0))];
    let mut max_depth = 0i64;
    for (t, delta) in steps {
        pts.push((secs(t), Some(depth as f64)));
        depth += delta;
        max_depth = max_depth.max(depth);
        pts.push((secs(t), Some(depth as f64)));
    }
    (pts, depth, max_depth)
}

/// The queue check's counts in one note (tasks, lost, duplicated, …, drain time).
fn queue_facts(out: &mut String, s: &Summary) {
    let Some(c) = s.checks.iter().find(|c| c.name == "queue") else {
        return;
    };
    let pick = |k: &str| c.counts.get(k).copied();
    let mut facts = Vec::new();
    for k in [
        "tasks",
        "lost",
        "duplicated",
        "unexpected",
        "recovered",
        "undrained",
    ] {
        if let Some(v) = pick(k) {
            facts.push(format!("{k} {}", human::count(v)));
        }
    }
    if let Some(ms) = pick("drain_ms") {
        facts.push(format!("drain time {}", human::latency_us(ms * 1000)));
    }
    if !facts.is_empty() {
        let _ = writeln!(out, "<p class=\"note\">{}</p>", xml(&facts.join(" · ")));
    }
}
