//! Pure rendering: [`draw`] turns an [`App`] into one frame. No I/O and no state of its own, so
//! whole screens can be compared as snapshots on ratatui's `TestBackend`.
//!
//! Layout, top to bottom: header (scenario, target, phase, progress gauge, rates), requests
//! table beside the selected request's latency histogram, throughput and error-rate sparklines
//! with a strip marking fault windows, then faults, checks and the mock KV side by side, and a
//! footer with the keys. Panels shrink with the terminal: at 80×24 every panel still shows its
//! first lines; below that the bottom panels, then the charts, give way to the table.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style, Stylize};
use ratatui::text::{Line, Span};
use ratatui::widgets::{
    Block, Borders, Cell, Clear, Gauge, Paragraph, Row, Sparkline, Table, Wrap,
};

use super::app::{App, FAULT_PRESETS, MenuEntry, Overlay, Point};
use crate::check::{CheckResult, Verdict};
use crate::engine::outcome::{CLASSES, class_is_error};
use crate::live::Snapshot;
use crate::metrics::{LIVE_BUCKETS_US, RequestLive};

const FAULT: Color = Color::Red;
const DIM: Style = Style::new().fg(Color::DarkGray);
const TITLE: Style = Style::new().add_modifier(Modifier::BOLD);

/// Draws the whole dashboard.
pub fn draw(frame: &mut Frame, app: &App) {
    let area = frame.area();
    let Some(snap) = app.snap.as_deref() else {
        let msg = Paragraph::new(vec![
            Line::from("kvchaos".bold()),
            Line::from("starting the target; the dashboard fills in after the first second"),
            Line::from("q or Ctrl-C stops".dark_gray()),
        ]);
        frame.render_widget(msg, area);
        return;
    };
    let h = area.height;
    let bottom_h = match h {
        0..22 => 0,
        22..30 => 7,
        30..40 => 9,
        40..60 => 12,
        _ => 16,
    };
    // The table and histogram get the rows they can fill (all requests, a few buckets), as
    // far as the charts keep their minimum; the charts take whatever is left.
    let charts_min = if h < 17 { 0 } else { 5 };
    let rest = h.saturating_sub(4 + bottom_h);
    let need = (snap.requests.len() as u16 + 2).max(if h >= 40 { 12 } else { 9 });
    let main_h = need.min(rest.saturating_sub(charts_min)).max(3);
    let [header, main, charts, bottom, footer] = Layout::vertical([
        Constraint::Length(3),
        Constraint::Length(main_h),
        Constraint::Min(charts_min),
        Constraint::Length(bottom_h),
        Constraint::Length(1),
    ])
    .areas(area);
    let charts_h = charts.height;
    draw_header(frame, header, snap, app);
    let [table, hist] =
        Layout::horizontal([Constraint::Percentage(52), Constraint::Percentage(48)])
            .spacing(1)
            .areas(main);
    draw_requests(frame, table, snap, app.selected);
    draw_histogram(frame, hist, snap.requests.get(app.selected));
    if charts_h > 0 {
        let [tput, errs] = Layout::horizontal([Constraint::Ratio(1, 2); 2])
            .spacing(1)
            .areas(charts);
        draw_series(frame, tput, app, Series::Throughput);
        draw_series(frame, errs, app, Series::ErrorRate);
    }
    if bottom_h > 0 {
        let [faults, checks, kv] = Layout::horizontal([Constraint::Ratio(1, 3); 3])
            .spacing(1)
            .areas(bottom);
        draw_faults(frame, faults, snap);
        draw_checks(frame, checks, snap);
        draw_kv(frame, kv, snap);
    }
    draw_footer(frame, footer, app);
    match app.overlay {
        Overlay::None => {}
        Overlay::Help => draw_help(frame, area),
        Overlay::Faults { cursor } => draw_fault_menu(frame, area, app, cursor),
    }
}

fn panel(title: &str) -> Block<'static> {
    panel_owned(title.to_owned())
}

fn panel_owned(title: String) -> Block<'static> {
    Block::new()
        .borders(Borders::TOP)
        .border_style(DIM)
        .title(Span::styled(format!(" {title} "), TITLE))
}

fn draw_header(frame: &mut Frame, area: Rect, s: &Snapshot, app: &App) {
    let [l1, l2, l3] = Layout::vertical([Constraint::Length(1); 3]).areas(area);
    let phase = match s.progress.phase {
        Some(p) => format!(
            "phase {}/{} {}",
            p + 1,
            s.phases.len(),
            s.phases.get(p).map_or("", String::as_str)
        ),
        None => "draining".to_owned(),
    };
    let state = if let Some(why) = &s.stopped {
        Span::styled(
            format!(" ■ stopped ({why}) "),
            Style::new().fg(Color::Yellow),
        )
    } else if app.stops > 0 {
        Span::styled(" ■ stopping ", Style::new().fg(Color::Yellow))
    } else if s.progress.paused {
        Span::styled(
            " ❚❚ PAUSED ",
            Style::new().fg(Color::Black).bg(Color::Yellow),
        )
    } else {
        Span::styled(" ▶ running ", Style::new().fg(Color::Green))
    };
    frame.render_widget(
        Paragraph::new(Line::from(vec![
            Span::styled(format!("kvchaos {} ", s.scenario), TITLE),
            Span::styled(format!("→ {}  ", s.target), DIM),
            Span::raw(phase),
            state,
        ])),
        l1,
    );
    let ratio = if s.total_s > 0.0 {
        (s.live.elapsed_s / s.total_s).clamp(0.0, 1.0)
    } else {
        0.0
    };
    frame.render_widget(
        Gauge::default()
            .ratio(ratio)
            .label(format!(
                "{:.0}s / {:.0}s ({:.0}%)",
                s.live.elapsed_s,
                s.total_s,
                ratio * 100.0
            ))
            .gauge_style(Style::new().fg(Color::Blue).bg(Color::Black))
            .use_unicode(true),
        l2,
    );
    let err = pct(s.live.errors_total, s.live.completed);
    let target = if s.progress.target_rate > 0.0 {
        format!(" (target {:.0})", s.progress.target_rate)
    } else {
        String::new()
    };
    let mut spans = vec![
        Span::raw(format!("rate {:.0}/s{target}", s.live.rps)),
        Span::raw(format!(
            "  p50 {}  p99 {}",
            short(s.live.p50_us),
            short(s.live.p99_us)
        )),
        Span::styled(
            format!("  err {err:.2}%"),
            if s.live.errors_total > 0 {
                Style::new().fg(Color::Red)
            } else {
                Style::new()
            },
        ),
        Span::styled(
            format!("  dropped {}", s.live.dropped_total),
            if s.live.dropped_total > 0 {
                Style::new().fg(Color::Yellow)
            } else {
                Style::new()
            },
        ),
    ];
    if s.progress.skipped > 0 || s.progress.paused {
        spans.push(Span::raw(format!("  skipped {}", s.progress.skipped)));
    }
    spans.push(Span::raw(format!("  in flight {}", s.progress.in_flight)));
    frame.render_widget(Paragraph::new(Line::from(spans)), l3);
}

/// A latency in at most six columns: `850µs`, `2.4ms`, `21.6ms`, `144ms`, `1.20s`, `12.3s`.
fn short(us: u64) -> String {
    match us {
        0..1_000 => format!("{us}µs"),
        1_000..100_000 => format!("{:.1}ms", us as f64 / 1e3),
        100_000..1_000_000 => format!("{:.0}ms", us as f64 / 1e3),
        1_000_000..10_000_000 => format!("{:.2}s", us as f64 / 1e6),
        _ => format!("{:.1}s", us as f64 / 1e6),
    }
}

fn pct(n: u64, d: u64) -> f64 {
    if d == 0 {
        0.0
    } else {
        100.0 * n as f64 / d as f64
    }
}

/// The error classes of a request that occurred, e.g. `5xx 12 timeout 3`.
fn error_classes(r: &RequestLive) -> String {
    let mut out = String::new();
    for (c, n) in r.by_class.iter().enumerate() {
        if class_is_error(c) && *n > 0 {
            if !out.is_empty() {
                out.push(' ');
            }
            out.push_str(&format!("{} {n}", CLASSES[c]));
        }
    }
    if out.is_empty() { "-".to_owned() } else { out }
}

fn draw_requests(frame: &mut Frame, area: Rect, s: &Snapshot, selected: usize) {
    let wide = area.width >= 60;
    let mut head = vec!["request", "rate", "p50", "p99"];
    if wide {
        head.push("err%");
    }
    head.push("errors");
    let header = Row::new(head).style(DIM);
    let rows = s.requests.iter().enumerate().map(|(i, r)| {
        let marker = if i == selected { "▸" } else { " " };
        let mut cells = vec![
            Cell::from(format!("{marker}{}", r.name)),
            Cell::from(format!("{:.0}", r.rps)),
            Cell::from(short(r.p50_us)),
            Cell::from(short(r.p99_us)),
        ];
        if wide {
            cells.push(Cell::from(format!("{:.1}", pct(r.errors(), r.completed()))));
        }
        cells.push(Cell::from(error_classes(r)));
        let row = Row::new(cells);
        if i == selected {
            row.style(Style::new().add_modifier(Modifier::REVERSED))
        } else if r.errors() > 0 {
            row.style(Style::new().fg(Color::Red))
        } else {
            row
        }
    });
    let longest = s
        .requests
        .iter()
        .map(|r| r.name.chars().count())
        .max()
        .unwrap_or(7);
    let name_w = (longest as u16 + 1).clamp(8, area.width.saturating_sub(30).clamp(8, 24));
    let mut widths = vec![
        Constraint::Length(name_w),
        Constraint::Length(4),
        Constraint::Length(6),
        Constraint::Length(6),
    ];
    if wide {
        widths.push(Constraint::Length(5));
    }
    widths.push(Constraint::Fill(1));
    let title = if area.width >= 72 {
        "requests (rate and latency: last second; errors: since start)"
    } else {
        "requests"
    };
    let table = Table::new(rows, widths)
        .header(header)
        .column_spacing(1)
        .block(panel(title));
    frame.render_widget(table, area);
}

fn draw_histogram(frame: &mut Frame, area: Rect, r: Option<&RequestLive>) {
    let Some(r) = r else {
        frame.render_widget(
            Paragraph::new("no requests yet").block(panel("latency")),
            area,
        );
        return;
    };
    let block = panel_owned(format!("latency of {} since start", r.name));
    let inner = block.inner(area);
    frame.render_widget(block, area);
    // A small table: one column per percentile, a row each for corrected and service time.
    let wide = inner.width >= 60;
    let (cor, svc) = if wide {
        ("corrected", "service  ")
    } else {
        ("cor", "svc")
    };
    let pad = " ".repeat(cor.len());
    let row = |name: &str, p: &crate::report::model::Percentiles| {
        let mut line = format!("{name:<w$}", w = cor.len());
        for v in [p.p50_us, p.p90_us, p.p99_us, p.p999_us, p.max_us] {
            line.push_str(&format!(" {:>6}", short(v)));
        }
        line
    };
    let mut lines = vec![
        Line::styled(format!("{pad}    p50    p90    p99  p99.9    max"), DIM),
        Line::raw(row(cor, &r.corrected)),
        Line::raw(row(svc, &r.service)),
    ];
    let rows = (inner.height as usize).saturating_sub(lines.len());
    lines.extend(histogram_lines(&r.buckets, rows, inner.width as usize));
    frame.render_widget(Paragraph::new(lines), inner);
}

/// Bars of the non-empty bucket range, at most `rows` of them: buckets beyond are folded into
/// the first and last rows (their labels say so).
fn histogram_lines(buckets: &[u64], rows: usize, width: usize) -> Vec<Line<'static>> {
    let total: u64 = buckets.iter().sum();
    if total == 0 || rows == 0 {
        return vec![Line::styled("no completed requests yet", DIM)];
    }
    let first = buckets.iter().position(|n| *n > 0).unwrap_or(0);
    let last = buckets.iter().rposition(|n| *n > 0).unwrap_or(0);
    let (mut lo, mut hi) = (first, last);
    // Narrow to `rows` buckets around the fullest one.
    while hi - lo + 1 > rows {
        if buckets[lo] <= buckets[hi] {
            lo += 1;
        } else {
            hi -= 1;
        }
    }
    let mut shown: Vec<(String, u64)> = (lo..=hi)
        .map(|i| (format!("≤{}", short(LIVE_BUCKETS_US[i])), buckets[i]))
        .collect();
    if lo > first {
        let below: u64 = buckets[first..lo].iter().sum();
        shown[0].1 += below;
    }
    if hi < last {
        let above: u64 = buckets[hi + 1..=last].iter().sum();
        if let Some(l) = shown.last_mut() {
            l.0 = format!(">{}", short(LIVE_BUCKETS_US[hi.saturating_sub(1)]));
            l.1 += above;
        }
    }
    let max = shown.iter().map(|(_, n)| *n).max().unwrap_or(1).max(1);
    let label_w = shown
        .iter()
        .map(|(l, _)| l.chars().count())
        .max()
        .unwrap_or(0);
    // label, space, bar, space, "100.0%"
    let bar_w = width.saturating_sub(label_w + 8).max(1);
    shown
        .into_iter()
        .map(|(label, n)| {
            let eighths = (n as f64 / max as f64 * bar_w as f64 * 8.0).round() as usize;
            let mut bar = "█".repeat(eighths / 8);
            if eighths % 8 > 0 {
                bar.push([' ', '▏', '▎', '▍', '▌', '▋', '▊', '▉'][eighths % 8]);
            }
            Line::from(vec![
                Span::styled(format!("{label:>label_w$} "), DIM),
                Span::styled(format!("{bar:<bar_w$}"), Style::new().fg(Color::Cyan)),
                Span::raw(format!(" {:5.1}%", pct(n, total))),
            ])
        })
        .collect()
}

#[derive(Clone, Copy)]
enum Series {
    Throughput,
    ErrorRate,
}

fn draw_series(frame: &mut Frame, area: Rect, app: &App, which: Series) {
    let width = area.width as usize;
    let skip = app.series.len().saturating_sub(width);
    let pts: Vec<&Point> = app.series.iter().skip(skip).collect();
    let last = pts.last();
    let (title, data, max): (String, Vec<u64>, u64) = match which {
        Series::Throughput => {
            let data: Vec<u64> = pts.iter().map(|p| p.rps.round() as u64).collect();
            let max = data.iter().copied().max().unwrap_or(1).max(1);
            (
                format!(
                    "throughput {:.0}/s (max {max}/s)",
                    last.map_or(0.0, |p| p.rps)
                ),
                data,
                max,
            )
        }
        Series::ErrorRate => {
            // Tenths of a percent; the scale is at least 1% so noise stays flat.
            let data: Vec<u64> = pts
                .iter()
                .map(|p| (p.err_pct * 10.0).round() as u64)
                .collect();
            let max = data.iter().copied().max().unwrap_or(0).max(10);
            (
                format!(
                    "error rate {:.1}% (max {:.1}%)",
                    last.map_or(0.0, |p| p.err_pct),
                    max as f64 / 10.0
                ),
                data,
                max,
            )
        }
    };
    let block = panel(&title);
    let inner = block.inner(area);
    frame.render_widget(block, area);
    if inner.height == 0 {
        return;
    }
    let [spark, strip] = Layout::vertical([Constraint::Min(1), Constraint::Length(1)]).areas(inner);
    let color = match which {
        Series::Throughput => Color::Green,
        Series::ErrorRate => Color::Red,
    };
    frame.render_widget(
        Sparkline::default()
            .data(&data)
            .max(max)
            .style(Style::new().fg(color)),
        spark,
    );
    // One cell per tick under the sparkline: red while a fault was active.
    let cells: Vec<Span> = pts
        .iter()
        .map(|p| {
            if p.faulted {
                Span::styled("▀", Style::new().fg(FAULT))
            } else {
                Span::styled("─", DIM)
            }
        })
        .collect();
    frame.render_widget(Paragraph::new(Line::from(cells)), strip);
}

fn draw_faults(frame: &mut Frame, area: Rect, s: &Snapshot) {
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

fn verdict_span(v: Verdict) -> Span<'static> {
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

fn draw_checks(frame: &mut Frame, area: Rect, s: &Snapshot) {
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
            _ => super::keyed::detail(c).unwrap_or_else(|| format!("violations {}", violations(c))),
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

fn draw_kv(frame: &mut Frame, area: Rect, s: &Snapshot) {
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

fn draw_footer(frame: &mut Frame, area: Rect, app: &App) {
    let keys = [
        ("q", "stop"),
        ("p", "pause"),
        ("tab", "request"),
        ("f", "faults"),
        ("h", "help"),
    ];
    let mut spans = Vec::new();
    for (k, what) in keys {
        spans.push(Span::styled(format!(" {k} "), Style::new().reversed()));
        spans.push(Span::raw(format!(" {what} ")));
    }
    if let Some(m) = &app.message {
        spans.push(Span::styled(
            format!(" {m}"),
            Style::new().fg(Color::Yellow),
        ));
    }
    frame.render_widget(Paragraph::new(Line::from(spans)), area);
}

/// A centred rectangle of at most `w`×`h` inside `area`.
fn centered(area: Rect, w: u16, h: u16) -> Rect {
    let w = w.min(area.width);
    let h = h.min(area.height);
    Rect {
        x: area.x + (area.width - w) / 2,
        y: area.y + (area.height - h) / 2,
        width: w,
        height: h,
    }
}

/// The keys, as the help overlay and the README list them.
pub const HELP: [(&str, &str); 7] = [
    (
        "q, Ctrl-C",
        "stop sending, write the report (again: abandon in-flight)",
    ),
    (
        "p, space",
        "pause / resume sending (arrivals due meanwhile are skipped)",
    ),
    ("tab ↓ →", "next request (its latency histogram)"),
    ("⇧tab ↑ ←", "previous request"),
    ("f", "fault menu: set or clear a mock KV fault by hand"),
    ("h, ?", "this help"),
    ("esc", "close a menu or this help"),
];

fn draw_help(frame: &mut Frame, area: Rect) {
    let rect = centered(area, 78, HELP.len() as u16 + 2);
    let lines: Vec<Line> = HELP
        .iter()
        .map(|(k, what)| {
            Line::from(vec![
                Span::styled(format!("{k:>10} "), TITLE),
                Span::raw(*what),
            ])
        })
        .collect();
    frame.render_widget(Clear, rect);
    frame.render_widget(
        Paragraph::new(lines).block(
            Block::bordered()
                .title(Span::styled(" keys ", TITLE))
                .title_bottom(Line::styled(" esc closes ", DIM)),
        ),
        rect,
    );
}

fn draw_fault_menu(frame: &mut Frame, area: Rect, app: &App, cursor: usize) {
    let menu = app.menu();
    let rect = centered(area, 60, menu.len() as u16 + 2);
    let lines: Vec<Line> = menu
        .iter()
        .enumerate()
        .map(|(i, e)| {
            let text = match e {
                MenuEntry::Set(p) => format!("set    {}", FAULT_PRESETS[*p].0),
                MenuEntry::Clear { label, .. } => format!("clear  {label}"),
            };
            if i == cursor {
                Line::styled(format!("▸ {text}"), Style::new().reversed())
            } else {
                Line::raw(format!("  {text}"))
            }
        })
        .collect();
    frame.render_widget(Clear, rect);
    frame.render_widget(
        Paragraph::new(lines).block(
            Block::bordered()
                .title(Span::styled(" mock KV faults ", TITLE))
                .title_bottom(Line::styled(" ↑↓ choose · enter apply · esc close ", DIM)),
        ),
        rect,
    );
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::Arc;

    use ratatui::Terminal;
    use ratatui::backend::TestBackend;

    use super::*;
    use crate::check::CheckResult;
    use crate::engine::Progress;
    use crate::live::{ActiveFault, KvSummary};
    use crate::metrics::Live;
    use crate::mockkv::Op;
    use crate::report::model::{FaultWindow, Percentiles};

    fn pcts(p50: u64) -> Percentiles {
        Percentiles {
            count: 1000,
            min_us: p50 / 4,
            mean_us: p50 as f64 * 1.2,
            p50_us: p50,
            p90_us: p50 * 3,
            p95_us: p50 * 4,
            p99_us: p50 * 9,
            p999_us: p50 * 30,
            max_us: p50 * 60,
        }
    }

    fn request(name: &str, rps: f64, p50: u64, errors: &[(usize, u64)]) -> RequestLive {
        let mut by_class = [0; CLASSES.len()];
        by_class[0] = 1000;
        for (c, n) in errors {
            by_class[*c] = *n;
        }
        let mut buckets = vec![0; LIVE_BUCKETS_US.len()];
        for (i, n) in [
            (5, 40),
            (6, 300),
            (7, 420),
            (8, 150),
            (9, 60),
            (10, 20),
            (12, 10),
        ] {
            buckets[i] = n;
        }
        RequestLive {
            name: name.to_owned(),
            rps,
            p50_us: p50,
            p99_us: p50 * 9,
            by_class,
            dropped: 0,
            corrected: pcts(p50),
            service: pcts(p50 * 4 / 5),
            buckets,
        }
    }

    /// A run 32 s into 60: a scheduled daily limit on puts and a manual 503 fault active, the
    /// cron check failing, the mock KV refusing puts.
    pub(crate) fn fixture() -> App {
        let counts = |pairs: &[(&str, u64)]| -> BTreeMap<String, u64> {
            pairs.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect()
        };
        let snap = Snapshot {
            scenario: "smoke".into(),
            target: "worker http://127.0.0.1:8787/".into(),
            phases: vec!["warm-up 10→40/s".into(), "steady 40/s".into()],
            total_s: 60.0,
            live: Live {
                elapsed_s: 32.0,
                rps: 39.0,
                p50_us: 2_100,
                p99_us: 48_000,
                errors: 4,
                completed: 1_180,
                errors_total: 37,
                dropped_total: 2,
            },
            progress: Progress {
                phase: Some(1),
                target_rate: 40.0,
                in_flight: 3,
                paused: false,
                skipped: 0,
            },
            stopped: None,
            requests: vec![
                request("enqueue", 15.8, 2_400, &[(4, 31)]),
                request("webhook", 7.9, 1_900, &[]),
                request("cached-read", 11.6, 900, &[(6, 6)]),
                request("queue-stats", 3.9, 1_200, &[]),
            ],
            faults: vec![
                FaultWindow {
                    index: 0,
                    label: "daily-limit put".into(),
                    set_at_s: 6.0,
                    cleared_at_s: Some(14.0),
                    kv_ops: None,
                },
                FaultWindow {
                    index: 1,
                    label: "daily-limit put".into(),
                    set_at_s: 24.0,
                    cleared_at_s: None,
                    kv_ops: None,
                },
                FaultWindow {
                    index: 2,
                    label: "manual: error 503 on get".into(),
                    set_at_s: 30.0,
                    cleared_at_s: None,
                    kv_ops: None,
                },
            ],
            active: vec![
                ActiveFault {
                    index: 1,
                    label: "daily-limit put".into(),
                    manual: false,
                    set_at_s: 24.0,
                    left_s: Some(12.0),
                },
                ActiveFault {
                    index: 2,
                    label: "manual: error 503 on get".into(),
                    manual: true,
                    set_at_s: 30.0,
                    left_s: None,
                },
            ],
            checks: vec![CheckResult {
                name: "cron".into(),
                verdict: Verdict::Fail,
                reason: "4 missed-tick".into(),
                evidence: vec![],
                counts: counts(&[("ticks_ok", 26), ("ticks_fail", 4), ("missed-tick", 4)]),
            }],
            last_cron_ok_s: Some(23.5),
            kv: Some(KvSummary {
                ops: vec![
                    (Op::Get, 2_310),
                    (Op::Put, 806),
                    (Op::Delete, 12),
                    (Op::List, 30),
                ],
                quota_left: vec![
                    (Op::Get, Some(97_690)),
                    (Op::Put, Some(194)),
                    (Op::Delete, Some(988)),
                    (Op::List, Some(970)),
                ],
                failures: vec![("daily-limit".into(), 211), ("error".into(), 14)],
                top_put_prefixes: vec![
                    ("cron:".into(), 402),
                    ("cache:".into(), 310),
                    ("queue:task:".into(), 94),
                ],
            }),
        };
        let mut app = App::new();
        app.selected = 0;
        // 32 ticks with the fault windows marked, throughput ramping then steady.
        for t in 1..=32u32 {
            app.series.push_back(Point {
                t: f64::from(t),
                rps: f64::from(t.min(4) * 10).min(40.0) - f64::from(t % 3),
                err_pct: if (6..14).contains(&t) || t >= 24 {
                    3.0 + f64::from(t % 4)
                } else {
                    0.0
                },
                faulted: (6..14).contains(&t) || t >= 24,
            });
        }
        app.snap = Some(Arc::new(snap));
        app
    }

    fn screen(app: &App, w: u16, h: u16) -> String {
        let mut terminal = Terminal::new(TestBackend::new(w, h)).unwrap_or_else(|e| match e {});
        terminal
            .draw(|f| draw(f, app))
            .unwrap_or_else(|e| match e {});
        format!("{}", terminal.backend())
    }

    #[test]
    fn dashboard_80x24() {
        insta::assert_snapshot!(screen(&fixture(), 80, 24));
    }

    #[test]
    fn dashboard_160x48() {
        insta::assert_snapshot!(screen(&fixture(), 160, 48));
    }

    #[test]
    fn fault_menu_and_help_overlays_80x24() {
        let mut app = fixture();
        app.overlay = Overlay::Faults { cursor: 2 };
        insta::assert_snapshot!("fault_menu_80x24", screen(&app, 80, 24));
        app.overlay = Overlay::Help;
        insta::assert_snapshot!("help_80x24", screen(&app, 80, 24));
    }

    #[test]
    fn tiny_and_empty_screens_do_not_panic() {
        let app = fixture();
        for (w, h) in [(1, 1), (20, 5), (40, 10), (79, 16), (80, 21), (300, 100)] {
            screen(&app, w, h);
        }
        let s = screen(&App::new(), 80, 24);
        assert!(s.contains("starting the target"), "{s}");
    }

    #[test]
    fn histogram_folds_tails_into_the_edge_rows() {
        let mut b = vec![0; LIVE_BUCKETS_US.len()];
        b[2] = 1;
        b[6] = 10;
        b[7] = 10;
        b[15] = 1;
        let lines = histogram_lines(&b, 3, 40);
        assert_eq!(lines.len(), 3);
        let text: Vec<String> = lines.iter().map(|l| l.to_string()).collect();
        assert!(text[0].trim_start().starts_with("≤1.0ms"), "{text:?}");
        assert!(text[2].trim_start().starts_with(">2.0ms"), "{text:?}");
    }
}

#[cfg(test)]
mod cost {
    //! How long a frame takes, through the real crossterm backend into memory. Run with
    //! `cargo test --release --lib -- --ignored frame_cost --nocapture`.

    use std::sync::Arc;
    use std::time::Instant;

    use ratatui::backend::CrosstermBackend;
    use ratatui::{Terminal, TerminalOptions, Viewport};

    use super::draw;
    use super::tests::fixture;

    #[test]
    #[ignore = "a measurement, not a check"]
    fn frame_cost() {
        let a = fixture();
        let mut b = fixture();
        if let Some(s) = b.snap.as_mut() {
            let s = Arc::make_mut(s);
            s.live.elapsed_s += 1.0;
            s.live.rps += 7.0;
            s.requests[0].p50_us += 100;
        }
        // A fixed viewport: the backend writes into memory, not to a terminal it could ask.
        let area = ratatui::layout::Rect::new(0, 0, 160, 48);
        let mut terminal = Terminal::with_options(
            CrosstermBackend::new(Sink(0)),
            TerminalOptions {
                viewport: Viewport::Fixed(area),
            },
        )
        .unwrap_or_else(|e| panic!("{e}"));
        for (name, alternate) in [("unchanged", false), ("changed", true)] {
            let n = 2000;
            let start = Instant::now();
            for i in 0..n {
                let app = if alternate && i % 2 == 1 { &b } else { &a };
                terminal
                    .draw(|f| draw(f, app))
                    .unwrap_or_else(|e| panic!("{e}"));
            }
            let us = start.elapsed().as_secs_f64() * 1e6 / f64::from(n);
            println!("160x48 {name} frame: {us:.1} µs");
        }
    }

    /// Counts what would go to the terminal.
    struct Sink(u64);

    impl std::io::Write for Sink {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0 += b.len() as u64;
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
}
