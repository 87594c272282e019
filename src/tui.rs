//! The live dashboard (ratatui over crossterm), shown by `kvchaos run` when stdout is a terminal.
//!
//! Split as in ratatui's demo app: [`app`] holds the state and the meaning of keys (no I/O),
//! [`ui`] renders a frame from that state (pure), [`term`] owns the terminal and the one loop.
//! The dashboard is fed only by the [`Snapshot`]s the run loop publishes once a second through
//! [`Monitor::tick`]; it redraws at [`FPS`] frames a second from the last one. It owns no
//! histogram: snapshots carry compact copies. What it asks of the run goes back as
//! [`Control`]s (pause, faults by hand) or through [`Interrupts`] (stop, abort), the same path
//! as Ctrl-C.
//!
//! Does not own: the recorder, the engine or the mock KV, nor printing the final summary (that
//! happens after [`Tui::finish`] has restored the terminal).

pub mod app;
pub mod keyed;
pub mod term;
pub mod ui;

use std::io::IsTerminal;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};

use crate::live::{Control, Interrupts, Monitor, Snapshot};

/// Frames drawn per second.
pub const FPS: u32 = 10;

/// Whether `kvchaos run` should show the dashboard: stdout is a terminal and `--no-tui` was
/// not given.
pub fn wanted(no_tui: bool) -> bool {
    !no_tui && std::io::stdout().is_terminal()
}

/// The running dashboard: a [`Monitor`] whose snapshots go to the terminal loop.
pub struct Tui {
    snapshots: Option<UnboundedSender<Arc<Snapshot>>>,
    controls: Option<UnboundedReceiver<Control>>,
    task: Option<tokio::task::JoinHandle<Result<(), String>>>,
    input_stop: Arc<AtomicBool>,
}

impl Tui {
    /// Takes over the terminal and starts drawing; `q` and Ctrl-C act on `interrupts`.
    pub fn start(interrupts: Interrupts) -> std::io::Result<Tui> {
        let guard = term::TerminalGuard::enter()?;
        // No `Terminal::clear` here: it asks the terminal for the cursor position, which some
        // pseudo-terminals never answer; the guard cleared the alternate screen already.
        let mut terminal = term::stdout_terminal()?;
        let (snap_tx, snapshots) = unbounded_channel();
        let (ev_tx, events) = unbounded_channel();
        let (controls, control_rx) = unbounded_channel();
        let input_stop = Arc::new(AtomicBool::new(false));
        term::spawn_input(ev_tx, input_stop.clone())?;
        let io = term::LoopIo {
            snapshots,
            events,
            controls,
            interrupts,
        };
        let task = tokio::spawn(async move {
            // The guard lives as long as the loop: the terminal is restored however it ends.
            let _guard = guard;
            let mut app = app::App::new();
            term::run(&mut terminal, &mut app, io, FPS).await
        });
        Ok(Tui {
            snapshots: Some(snap_tx),
            controls: Some(control_rx),
            task: Some(task),
            input_stop,
        })
    }

    /// Ends the dashboard and restores the terminal; returns the loop's error, if any.
    pub async fn finish(mut self) -> Result<(), String> {
        self.shutdown().await
    }

    async fn shutdown(&mut self) -> Result<(), String> {
        self.snapshots = None;
        self.input_stop
            .store(true, std::sync::atomic::Ordering::Relaxed);
        let result = match self.task.take() {
            Some(task) => match task.await {
                Ok(r) => r,
                Err(e) => Err(format!("the dashboard stopped: {e}")),
            },
            None => Ok(()),
        };
        // Also when the loop's task was cancelled before its guard could run.
        term::restore();
        result
    }
}

impl Drop for Tui {
    fn drop(&mut self) {
        self.input_stop
            .store(true, std::sync::atomic::Ordering::Relaxed);
        term::restore();
    }
}

impl Monitor for Tui {
    fn tick(&mut self, snapshot: &Snapshot) {
        if let Some(tx) = &self.snapshots {
            // The loop may have ended on a terminal error; the run goes on without it.
            let _ = tx.send(Arc::new(snapshot.clone()));
        }
    }

    fn detailed(&self) -> bool {
        true
    }

    fn controls(&mut self) -> Option<UnboundedReceiver<Control>> {
        self.controls.take()
    }
}
