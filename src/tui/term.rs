//! The terminal: entering and always leaving raw mode and the alternate screen (also on panic),
//! the input thread, and the one loop that draws frames, takes snapshots and turns keys into
//! actions. The loop is generic over the backend, so tests drive it on `TestBackend`.

use std::io::{Stdout, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use ratatui::Terminal;
use ratatui::backend::{Backend, CrosstermBackend};
use ratatui::crossterm::event::{self, Event};
use ratatui::crossterm::{cursor, execute, terminal};
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender};

use super::app::{Action, App};
use super::ui;
use crate::live::Interrupts;
use crate::live::{Control, Snapshot};

/// How often the input thread checks whether it should end.
const INPUT_POLL: Duration = Duration::from_millis(100);

/// Whether the terminal is in dashboard mode (raw, alternate screen), for the panic hook.
static ACTIVE: AtomicBool = AtomicBool::new(false);

/// Raw mode and the alternate screen, left again when dropped (also while unwinding).
pub struct TerminalGuard {
    _private: (),
}

impl TerminalGuard {
    /// Enters raw mode and the alternate screen and hides the cursor; installs the panic hook
    /// that restores the terminal before the panic message is printed.
    pub fn enter() -> std::io::Result<TerminalGuard> {
        install_panic_hook();
        terminal::enable_raw_mode()?;
        ACTIVE.store(true, Ordering::SeqCst);
        let guard = TerminalGuard { _private: () };
        execute!(
            std::io::stdout(),
            terminal::EnterAlternateScreen,
            terminal::Clear(terminal::ClearType::All),
            cursor::Hide
        )?;
        Ok(guard)
    }
}

impl Drop for TerminalGuard {
    fn drop(&mut self) {
        restore();
    }
}

/// Leaves the alternate screen, shows the cursor and ends raw mode, once.
pub fn restore() {
    if ACTIVE.swap(false, Ordering::SeqCst) {
        let mut out = std::io::stdout();
        // Nothing useful can be done if the terminal is gone; try every step regardless.
        let _ = execute!(out, terminal::LeaveAlternateScreen, cursor::Show);
        let _ = terminal::disable_raw_mode();
        let _ = out.flush();
    }
}

fn install_panic_hook() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            restore();
            previous(info);
        }));
    });
}

/// The real terminal on stdout.
pub fn stdout_terminal() -> std::io::Result<Terminal<CrosstermBackend<Stdout>>> {
    Terminal::new(CrosstermBackend::new(std::io::stdout()))
}

/// Reads terminal events on a thread of its own (crossterm's reads block) until `stop` is set or
/// the receiver is gone.
pub fn spawn_input(tx: UnboundedSender<Event>, stop: Arc<AtomicBool>) -> std::io::Result<()> {
    std::thread::Builder::new()
        .name("kvchaos-input".to_owned())
        .spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                match event::poll(INPUT_POLL) {
                    Ok(true) => match event::read() {
                        Ok(ev) => {
                            if tx.send(ev).is_err() {
                                return;
                            }
                        }
                        Err(_) => return,
                    },
                    Ok(false) => {}
                    Err(_) => return,
                }
            }
        })?;
    Ok(())
}

/// What the loop reads from and writes to.
pub struct LoopIo {
    /// Snapshots from the run; the loop ends when the sender is dropped.
    pub snapshots: UnboundedReceiver<Arc<Snapshot>>,
    /// Terminal events.
    pub events: UnboundedReceiver<Event>,
    /// Commands to the run.
    pub controls: UnboundedSender<Control>,
    /// Stop and abort, shared with the signal handler.
    pub interrupts: Interrupts,
}

/// Draws `fps` frames a second from the last snapshot and handles input, until the run drops
/// the snapshot sender.
pub async fn run<B: Backend>(
    terminal: &mut Terminal<B>,
    app: &mut App,
    mut io: LoopIo,
    fps: u32,
) -> Result<(), String>
where
    B::Error: std::fmt::Display,
{
    let period = Duration::from_secs_f64(1.0 / f64::from(fps.max(1)));
    let mut frames = tokio::time::interval(period);
    frames.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut events_open = true;
    loop {
        tokio::select! {
            _ = frames.tick() => {
                terminal
                    .draw(|f| ui::draw(f, app))
                    .map_err(|e| format!("cannot draw the dashboard: {e}"))?;
            }
            snap = io.snapshots.recv() => match snap {
                Some(s) => app.on_snapshot(s),
                None => return Ok(()),
            },
            ev = io.events.recv(), if events_open => match ev {
                Some(Event::Key(key)) => {
                    if let Some(action) = app.on_key(key) {
                        act(action, &io);
                    }
                    terminal
                        .draw(|f| ui::draw(f, app))
                        .map_err(|e| format!("cannot draw the dashboard: {e}"))?;
                }
                Some(Event::Resize(..)) => {
                    terminal
                        .autoresize()
                        .map_err(|e| format!("cannot resize the dashboard: {e}"))?;
                }
                Some(_) => {}
                None => events_open = false,
            },
        }
    }
}

fn act(action: Action, io: &LoopIo) {
    match action {
        // The same path as SIGINT: the run loop stops sending, then abandons on the second.
        Action::Stop => io.interrupts.stop.cancel(),
        Action::Abort => {
            io.interrupts.stop.cancel();
            io.interrupts.abort.cancel();
        }
        // The run may be over already; then there is nobody to tell.
        Action::Control(c) => {
            let _ = io.controls.send(c);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ratatui::backend::TestBackend;
    use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
    use tokio::sync::mpsc::unbounded_channel;

    #[tokio::test]
    async fn the_loop_draws_snapshots_routes_keys_and_ends_with_the_run() {
        let (snap_tx, snapshots) = unbounded_channel();
        let (ev_tx, events) = unbounded_channel();
        let (controls, mut control_rx) = unbounded_channel();
        let interrupts = Interrupts::default();
        let io = LoopIo {
            snapshots,
            events,
            controls,
            interrupts: interrupts.clone(),
        };
        let mut terminal = Terminal::new(TestBackend::new(80, 24)).unwrap_or_else(|e| match e {});
        let mut app = App::new();
        let snap = Snapshot {
            scenario: "loop-test".into(),
            ..Snapshot::default()
        };
        snap_tx
            .send(Arc::new(snap))
            .unwrap_or_else(|_| panic!("send"));
        let key = |c| Event::Key(KeyEvent::new(KeyCode::Char(c), KeyModifiers::NONE));
        ev_tx.send(key('p')).unwrap_or_else(|_| panic!("send"));
        ev_tx.send(key('q')).unwrap_or_else(|_| panic!("send"));
        let driver = async {
            // Wait for the keys to be handled, then end the run.
            interrupts.stop.cancelled().await;
            drop(snap_tx);
        };
        let (r, ()) = tokio::join!(run(&mut terminal, &mut app, io, 10), driver);
        assert_eq!(r, Ok(()));
        assert_eq!(control_rx.recv().await, Some(Control::Pause));
        assert!(interrupts.stop.is_cancelled());
        assert!(!interrupts.abort.is_cancelled());
        // Keys and the snapshot may be handled in either order; draw what the loop ended with.
        assert!(app.snap.is_some());
        terminal
            .draw(|f| ui::draw(f, &app))
            .unwrap_or_else(|e| match e {});
        let screen = format!("{}", terminal.backend());
        assert!(screen.contains("loop-test"), "{screen}");
    }
}
