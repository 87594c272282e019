//! Overlays drawn over the dashboard: the help screen and the fault menu.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Clear, Paragraph};

use super::{DIM, TITLE};
use crate::tui::app::{App, FAULT_PRESETS, MenuEntry};

/// A centred rectangle of at most `w`×`h` inside `area`.
pub(super) fn centered(area: Rect, w: u16, h: u16) -> Rect {
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

pub(super) fn draw_help(frame: &mut Frame, area: Rect) {
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

pub(super) fn draw_fault_menu(frame: &mut Frame, area: Rect, app: &App, cursor: usize) {
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
