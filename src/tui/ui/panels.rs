//! The bottom panels of the dashboard: faults (scheduled and by hand), checks with their
//! verdicts and counts, and the mock KV's operations and quota.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::style::{Color, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Paragraph, Wrap};

use super::{DIM, FAULT, TITLE, panel};
use crate::check::{CheckResult, Verdict};
use crate::live::Snapshot;

pub(super) fn draw_faults(frame: &mut Frame, area: Rect, s: &Snapshot) {
    let mut lines = Vec::new();
    if s.active.is_empty() {
        lines.push(Line::styled("none active", DIM));
    }
    for f in &s.active {
        let left = match f.left_s {
            Some(l) => format!("{l:>3.0}s "),
            None => "   ∞ ".to_owned(),
        };
        lines.push(Line::from(vec![
            Span::styled("● ", Style::new().fg(FAULT)),
            Span::styled(left, Style::new().fg(Color::Yellow)),
            Span::raw(f.label.clone()),
        ]));
    }
    let closed: Vec<_> = s
        .faults
        .iter()
        .filter(|w| w.cleared_at_s.is_some())
        .collect();
    if !closed.is_empty() {
        lines.push(Line::styled(format!("past windows: {}", closed.len()), DIM));
        for w in closed.iter().rev() {
            lines.push(Line::styled(
                format!(
                    "{:.0}–{:.0}s {}",
                    w.set_at_s,
                    w.cleared_at_s.unwrap_or(w.set_at_s),
                    w.label
                ),
                DIM,
            ));
        }
    }
    let title = format!("faults ({} active)", s.active.len());
    frame.render_widget(
        Paragraph::new(lines)
            .wrap(Wrap { trim: false })
            .block(panel(&title)),
        area,
    );
}

pub(super) fn verdict_span(v: Verdict) -> Span<'static> {
    match v {
        Verdict::Pass => Span::styled("PASS", Style::new().fg(Color::Green).bold()),
        Verdict::Fail => Span::styled("FAIL", Style::new().fg(Color::Red).bold()),
        Verdict::Unknown => Span::styled("UNKNOWN", Style::new().fg(Color::Yellow).bold()),
    }
}

fn count(c: &CheckResult, name: &str) -> u64 {
    c.counts.get(name).copied().unwrap_or(0)
}

/// Anomaly counters are named in kebab-case (`missed-tick`), plain counters in snake_case.
fn violations(c: &CheckResult) -> u64 {
    c.counts
        .iter()
        .filter(|(k, _)| k.contains('-'))
        .map(|(_, n)| n)
        .sum()
}

pub(super) fn draw_checks(frame: &mut Frame, area: Rect, s: &Snapshot) {
    let mut lines = Vec::new();
    if s.checks.is_empty() {
        lines.push(Line::styled("no check drivers in this run", DIM));
    }
    for c in &s.checks {
        lines.push(Line::from(vec![
            Span::styled(format!("{:<6}", c.name), TITLE),
            verdict_span(c.verdict),
            Span::styled(" (so far)", DIM),
        ]));
        let detail = match c.name.as_str() {
            "cron" => format!(
                "last tick {} · missed {} · ok {} fail {}",
                s.last_cron_ok_s.map_or_else(
                    || "never".to_owned(),
                    |t| format!("{:.1}s ago", (s.live.elapsed_s - t).max(0.0))
                ),
                count(c, "missed-tick"),
                count(c, "ticks_ok"),
                count(c, "ticks_fail"),
            ),
            "lock" => format!(
                "grants {} · waits {} · violations {}",
                count(c, "acquires_ok"),
                count(c, "acquires_fail") + count(c, "acquires_info"),
                violations(c),
            ),
            "queue" => {
                let enq = count(c, "enqueues_ok");
                let claims = count(c, "claims_ok");
                let done = count(c, "completes_ok");
                format!(
                    "depth {} · in flight {} · drained {} · lost {} dup {}",
                    enq.saturating_sub(claims),
                    claims.saturating_sub(done),
                    done,
                    count(c, "lost"),
                    count(c, "duplicated"),
                )
            }
            _ => super::super::keyed::detail(c)
                .unwrap_or_else(|| format!("violations {}", violations(c))),
        };
        lines.push(Line::raw(detail));
        lines.push(Line::styled(c.reason.clone(), DIM));
        for e in &c.evidence {
            lines.push(Line::styled(format!("· {e}"), DIM));
        }
    }
    if s.checks.iter().all(|c| c.name != "cron")
        && let Some(t) = s.last_cron_ok_s
    {
        lines.push(Line::raw(format!(
            "cron last tick {:.1}s ago",
            (s.live.elapsed_s - t).max(0.0)
        )));
    }
    frame.render_widget(
        Paragraph::new(lines)
            .wrap(Wrap { trim: false })
            .block(panel("checks")),
        area,
    );
}

pub(super) fn draw_kv(frame: &mut Frame, area: Rect, s: &Snapshot) {
    let Some(kv) = &s.kv else {
        frame.render_widget(
            Paragraph::new(Line::styled("no mock KV (not a Worker target)", DIM))
                .block(panel("mock KV")),
            area,
        );
        return;
    };
    let join = |items: Vec<String>| {
        if items.is_empty() {
            "-".to_owned()
        } else {
            items.join(" ")
        }
    };
    let ops = join(
        kv.ops
            .iter()
            .map(|(op, n)| format!("{} {n}", op.as_str()))
            .collect(),
    );
    let quota = join(
        kv.quota_left
            .iter()
            .map(|(op, left)| match left {
                Some(l) => format!("{} {l}", op.as_str()),
                None => format!("{} ∞", op.as_str()),
            })
            .collect(),
    );
    let failures = join(
        kv.failures
            .iter()
            .map(|(k, n)| format!("{k} {n}"))
            .collect(),
    );
    let fail_style = if kv.failures.is_empty() {
        Style::new()
    } else {
        Style::new().fg(Color::Red)
    };
    let mut lines = vec![
        Line::from(vec![Span::styled("ops    ", DIM), Span::raw(ops)]),
        Line::from(vec![Span::styled("left   ", DIM), Span::raw(quota)]),
        Line::from(vec![
            Span::styled("failed ", DIM),
            Span::styled(failures, fail_style),
        ]),
        Line::styled("top put prefixes", DIM),
    ];
    for (prefix, n) in &kv.top_put_prefixes {
        lines.push(Line::raw(format!("{n:>7} {prefix}")));
    }
    frame.render_widget(
        Paragraph::new(lines)
            .wrap(Wrap { trim: false })
            .block(panel("mock KV")),
        area,
    );
}
