//! The dashboard's state: the last snapshot, the time series built from the snapshots seen, the
//! selected request, the open overlay, and what a key press means. No I/O: keys come in as
//! values, and what the run should do goes out as an [`Action`].

use std::collections::VecDeque;
use std::sync::Arc;

use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};

use crate::live::{Control, Snapshot};
use crate::mockkv::FaultSpec;

/// Points of the throughput and error-rate series kept (one per tick: an hour).
pub const SERIES_LEN: usize = 3600;

/// Faults the menu offers, as (what the menu shows, compact rule syntax).
pub const FAULT_PRESETS: [(&str, &str); 8] = [
    ("daily limit on put", "kind=daily-limit,ops=put"),
    ("daily limit on every op", "kind=daily-limit"),
    ("error 503 on get", "kind=error,status=503,ops=get"),
    ("rate limit (429) on put", "kind=rate-limit,ops=put"),
    (
        "latency 200ms±50ms",
        "kind=latency,latency=200ms,jitter=50ms",
    ),
    ("hang on put", "kind=hang,ops=put"),
    ("connection reset, 20%", "kind=reset,p=0.2"),
    ("stale reads, 30s lag", "kind=stale-reads,lag=30s"),
];

/// One point of the time series.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Point {
    /// Run time of the tick, s.
    pub t: f64,
    /// Completed per second.
    pub rps: f64,
    /// Errors over completed in the interval, percent.
    pub err_pct: f64,
    /// At least one fault was active at the tick.
    pub faulted: bool,
}

/// What is drawn over the dashboard.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Overlay {
    /// Nothing.
    None,
    /// The key list.
    Help,
    /// The fault menu, with the highlighted entry.
    Faults {
        /// Index into [`App::menu`].
        cursor: usize,
    },
}

/// An entry of the fault menu.
#[derive(Debug, Clone, PartialEq)]
pub enum MenuEntry {
    /// Set preset `i` of [`FAULT_PRESETS`].
    Set(usize),
    /// Clear the active fault with this history index.
    Clear {
        /// History index.
        index: usize,
        /// What it does.
        label: String,
    },
}

/// What the terminal loop must do after a key.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Stop sending; requests in flight get the grace period (first `q` or Ctrl-C).
    Stop,
    /// Abandon requests in flight (a second `q` or Ctrl-C).
    Abort,
    /// Send this to the run.
    Control(Control),
}

/// The dashboard's state.
#[derive(Debug, Clone)]
pub struct App {
    /// The last snapshot, if any arrived yet.
    pub snap: Option<Arc<Snapshot>>,
    /// Throughput and error rate per tick, oldest first.
    pub series: VecDeque<Point>,
    /// Index of the request whose histogram is shown.
    pub selected: usize,
    /// What is drawn on top.
    pub overlay: Overlay,
    /// Pause asked for (the engine confirms through the next snapshot).
    pub pause_requested: bool,
    /// How often stop was asked for.
    pub stops: u8,
    /// Feedback on the last action, shown in the footer.
    pub message: Option<String>,
    /// Completed requests at the previous snapshot (for the interval's error rate).
    last_completed: u64,
}

impl Default for App {
    fn default() -> Self {
        App::new()
    }
}

impl App {
    /// A dashboard that has seen nothing yet.
    pub fn new() -> App {
        App {
            snap: None,
            series: VecDeque::new(),
            selected: 0,
            overlay: Overlay::None,
            pause_requested: false,
            stops: 0,
            message: None,
            last_completed: 0,
        }
    }

    /// Takes in a new snapshot: keeps it and extends the time series.
    pub fn on_snapshot(&mut self, snap: Arc<Snapshot>) {
        let completed = snap.live.completed.saturating_sub(self.last_completed);
        self.last_completed = snap.live.completed;
        let err_pct = if completed == 0 {
            0.0
        } else {
            100.0 * snap.live.errors as f64 / completed as f64
        };
        if self.series.len() >= SERIES_LEN {
            self.series.pop_front();
        }
        self.series.push_back(Point {
            t: snap.live.elapsed_s,
            rps: snap.live.rps,
            err_pct,
            faulted: !snap.active.is_empty(),
        });
        self.pause_requested = snap.progress.paused;
        if !snap.requests.is_empty() {
            self.selected = self.selected.min(snap.requests.len() - 1);
        }
        if let Overlay::Faults { cursor } = self.overlay {
            let n = self.menu_for(&snap).len();
            self.overlay = Overlay::Faults {
                cursor: cursor.min(n.saturating_sub(1)),
            };
        }
        self.snap = Some(snap);
    }

    /// Number of requests in the last snapshot.
    fn requests(&self) -> usize {
        self.snap.as_ref().map_or(0, |s| s.requests.len())
    }

    /// Whether the run has a mock KV to put faults on.
    pub fn has_mock_kv(&self) -> bool {
        self.snap.as_ref().is_some_and(|s| s.kv.is_some())
    }

    /// The fault menu: a clear entry per active fault, then the presets.
    pub fn menu(&self) -> Vec<MenuEntry> {
        match &self.snap {
            Some(s) => self.menu_for(s),
            None => Vec::new(),
        }
    }

    fn menu_for(&self, s: &Snapshot) -> Vec<MenuEntry> {
        if s.kv.is_none() {
            return Vec::new();
        }
        let clears = s.active.iter().map(|f| MenuEntry::Clear {
            index: f.index,
            label: f.label.clone(),
        });
        let sets = (0..FAULT_PRESETS.len()).map(MenuEntry::Set);
        clears.chain(sets).collect()
    }

    /// What a key press means; `None` when it only changes what is shown.
    pub fn on_key(&mut self, key: KeyEvent) -> Option<Action> {
        if key.kind == KeyEventKind::Release {
            return None;
        }
        // Raw mode turns Ctrl-C into a key: it stops the run from anywhere, like SIGINT.
        let ctrl_c =
            key.modifiers.contains(KeyModifiers::CONTROL) && key.code == KeyCode::Char('c');
        if ctrl_c {
            return Some(self.stop());
        }
        match self.overlay {
            Overlay::Help => {
                if matches!(
                    key.code,
                    KeyCode::Esc | KeyCode::Char('h' | '?' | 'q') | KeyCode::Enter
                ) {
                    self.overlay = Overlay::None;
                }
                None
            }
            Overlay::Faults { cursor } => self.on_menu_key(key.code, cursor),
            Overlay::None => match key.code {
                KeyCode::Char('q') => Some(self.stop()),
                KeyCode::Char('p' | ' ') => self.toggle_pause(),
                KeyCode::Tab | KeyCode::Down | KeyCode::Right | KeyCode::Char('j') => {
                    self.select(1);
                    None
                }
                KeyCode::BackTab | KeyCode::Up | KeyCode::Left | KeyCode::Char('k') => {
                    self.select(-1);
                    None
                }
                KeyCode::Char('f') => {
                    if self.has_mock_kv() {
                        self.overlay = Overlay::Faults { cursor: 0 };
                    } else {
                        self.message =
                            Some("no mock KV in this run: faults need a Worker target".into());
                    }
                    None
                }
                KeyCode::Char('h' | '?') => {
                    self.overlay = Overlay::Help;
                    None
                }
                _ => None,
            },
        }
    }

    fn stop(&mut self) -> Action {
        self.stops = self.stops.saturating_add(1);
        if self.stops == 1 {
            self.message = Some(
                "stopping: waiting for requests in flight (q or Ctrl-C again to abandon them)"
                    .into(),
            );
            Action::Stop
        } else {
            self.message = Some("abandoning requests in flight".into());
            Action::Abort
        }
    }

    fn toggle_pause(&mut self) -> Option<Action> {
        if self.stops > 0 || self.snap.as_ref().is_some_and(|s| s.stopped.is_some()) {
            self.message = Some("sending has stopped: nothing to pause".into());
            return None;
        }
        self.pause_requested = !self.pause_requested;
        if self.pause_requested {
            self.message = Some("paused: arrivals due now are skipped, not sent late".into());
            Some(Action::Control(Control::Pause))
        } else {
            self.message = Some("resumed".into());
            Some(Action::Control(Control::Resume))
        }
    }

    fn select(&mut self, step: isize) {
        let n = self.requests();
        if n == 0 {
            return;
        }
        self.selected = (self.selected as isize + step).rem_euclid(n as isize) as usize;
    }

    fn on_menu_key(&mut self, code: KeyCode, cursor: usize) -> Option<Action> {
        let menu = self.menu();
        match code {
            KeyCode::Esc | KeyCode::Char('f' | 'q') => {
                self.overlay = Overlay::None;
                None
            }
            KeyCode::Up | KeyCode::Char('k') | KeyCode::BackTab => {
                self.overlay = Overlay::Faults {
                    cursor: cursor
                        .checked_sub(1)
                        .unwrap_or(menu.len().saturating_sub(1)),
                };
                None
            }
            KeyCode::Down | KeyCode::Char('j') | KeyCode::Tab => {
                self.overlay = Overlay::Faults {
                    cursor: if cursor + 1 >= menu.len() {
                        0
                    } else {
                        cursor + 1
                    },
                };
                None
            }
            KeyCode::Enter => {
                self.overlay = Overlay::None;
                let entry = menu.get(cursor)?;
                if self.stops > 0 || self.snap.as_ref().is_some_and(|s| s.stopped.is_some()) {
                    self.message =
                        Some("sending has stopped: faults are cleared for the heal phase".into());
                    return None;
                }
                match entry {
                    MenuEntry::Set(i) => {
                        let (name, rule) = FAULT_PRESETS[*i];
                        match rule.parse::<FaultSpec>() {
                            Ok(spec) => {
                                self.message = Some(format!("fault set: {name}"));
                                Some(Action::Control(Control::SetFault {
                                    spec,
                                    label: format!("manual: {name}"),
                                }))
                            }
                            // The presets are constants covered by a test.
                            Err(e) => {
                                self.message = Some(e.to_string());
                                None
                            }
                        }
                    }
                    MenuEntry::Clear { index, label } => {
                        self.message = Some(format!("fault cleared: {label}"));
                        Some(Action::Control(Control::ClearFault { index: *index }))
                    }
                }
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::live::{ActiveFault, KvSummary};
    use crate::metrics::RequestLive;

    fn key(code: KeyCode) -> KeyEvent {
        KeyEvent::new(code, KeyModifiers::NONE)
    }

    fn snap(requests: usize, kv: bool) -> Arc<Snapshot> {
        Arc::new(Snapshot {
            requests: (0..requests)
                .map(|i| RequestLive {
                    name: format!("r{i}"),
                    ..RequestLive::default()
                })
                .collect(),
            active: vec![ActiveFault {
                index: 0,
                label: "daily-limit put".into(),
                manual: false,
                set_at_s: 1.0,
                left_s: Some(3.0),
            }],
            kv: kv.then(KvSummary::default),
            ..Snapshot::default()
        })
    }

    #[test]
    fn presets_parse() {
        for (name, rule) in FAULT_PRESETS {
            assert!(rule.parse::<FaultSpec>().is_ok(), "{name}: {rule}");
        }
    }

    #[test]
    fn q_stops_then_aborts_and_ctrl_c_does_the_same_from_an_overlay() {
        let mut app = App::new();
        assert_eq!(app.on_key(key(KeyCode::Char('q'))), Some(Action::Stop));
        assert_eq!(app.on_key(key(KeyCode::Char('q'))), Some(Action::Abort));
        let mut app = App::new();
        app.on_key(key(KeyCode::Char('h')));
        assert_eq!(app.overlay, Overlay::Help);
        let ctrl_c = KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL);
        assert_eq!(app.on_key(ctrl_c), Some(Action::Stop));
        assert_eq!(app.on_key(ctrl_c), Some(Action::Abort));
    }

    #[test]
    fn tab_and_arrows_cycle_through_requests() {
        let mut app = App::new();
        app.on_snapshot(snap(3, false));
        app.on_key(key(KeyCode::Tab));
        app.on_key(key(KeyCode::Down));
        assert_eq!(app.selected, 2);
        app.on_key(key(KeyCode::Tab));
        assert_eq!(app.selected, 0, "wraps");
        app.on_key(key(KeyCode::Up));
        assert_eq!(app.selected, 2);
        app.on_key(key(KeyCode::BackTab));
        assert_eq!(app.selected, 1);
        // A snapshot with fewer requests keeps the selection in range.
        app.selected = 2;
        app.on_snapshot(snap(2, false));
        assert_eq!(app.selected, 1);
    }

    #[test]
    fn p_pauses_and_resumes_until_sending_stops() {
        let mut app = App::new();
        app.on_snapshot(snap(1, false));
        assert_eq!(
            app.on_key(key(KeyCode::Char('p'))),
            Some(Action::Control(Control::Pause))
        );
        assert_eq!(
            app.on_key(key(KeyCode::Char('p'))),
            Some(Action::Control(Control::Resume))
        );
        app.on_key(key(KeyCode::Char('q')));
        assert_eq!(app.on_key(key(KeyCode::Char('p'))), None);
    }

    #[test]
    fn help_opens_and_closes() {
        let mut app = App::new();
        app.on_key(key(KeyCode::Char('h')));
        assert_eq!(app.overlay, Overlay::Help);
        // Keys do nothing else while it is open.
        assert_eq!(app.on_key(key(KeyCode::Char('p'))), None);
        app.on_key(key(KeyCode::Esc));
        assert_eq!(app.overlay, Overlay::None);
    }

    #[test]
    fn the_fault_menu_clears_active_faults_and_sets_presets() {
        let mut app = App::new();
        app.on_snapshot(snap(1, false));
        app.on_key(key(KeyCode::Char('f')));
        assert_eq!(app.overlay, Overlay::None, "no mock KV, no menu");
        assert!(
            app.message
                .as_deref()
                .is_some_and(|m| m.contains("no mock KV"))
        );
        app.on_snapshot(snap(1, true));
        app.on_key(key(KeyCode::Char('f')));
        assert_eq!(app.overlay, Overlay::Faults { cursor: 0 });
        assert_eq!(app.menu().len(), 1 + FAULT_PRESETS.len());
        assert_eq!(
            app.on_key(key(KeyCode::Enter)),
            Some(Action::Control(Control::ClearFault { index: 0 }))
        );
        assert_eq!(app.overlay, Overlay::None);
        app.on_key(key(KeyCode::Char('f')));
        app.on_key(key(KeyCode::Down));
        match app.on_key(key(KeyCode::Enter)) {
            Some(Action::Control(Control::SetFault { label, .. })) => {
                assert_eq!(label, "manual: daily limit on put")
            }
            other => panic!("{other:?}"),
        }
        // Up from the top wraps to the last preset; Esc closes without acting.
        app.on_key(key(KeyCode::Char('f')));
        app.on_key(key(KeyCode::Up));
        assert_eq!(
            app.overlay,
            Overlay::Faults {
                cursor: FAULT_PRESETS.len()
            }
        );
        assert_eq!(app.on_key(key(KeyCode::Esc)), None);
        assert_eq!(app.overlay, Overlay::None);
    }

    #[test]
    fn the_series_gets_a_point_per_snapshot_with_the_interval_error_rate() {
        let mut app = App::new();
        let mut s = Snapshot::default();
        s.live.completed = 100;
        s.live.errors = 5;
        s.live.rps = 100.0;
        app.on_snapshot(Arc::new(s.clone()));
        s.live.completed = 300;
        s.live.errors = 50;
        app.on_snapshot(Arc::new(s));
        let pts: Vec<f64> = app.series.iter().map(|p| p.err_pct).collect();
        assert_eq!(pts, vec![5.0, 25.0]);
    }
}
