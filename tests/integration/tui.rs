//! The dashboard in a real terminal: the built binary runs the quickstart scenario (built-in
//! target, no Worker) inside a detached tmux session; the test reads the screen with
//! `capture-pane`, pauses, stops with Ctrl-C (a key in raw mode, routed like SIGINT; `q` takes
//! the same path and is covered by the terminal loop's test), and checks that the terminal is
//! restored. Readiness
//! is polled on the captured screen with a deadline, never slept for.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

/// How long any expected screen may take to appear.
const DEADLINE: Duration = Duration::from_secs(60);

struct Tmux {
    socket: String,
    /// The server's socket file, which tmux leaves behind after `kill-server`.
    socket_path: Option<String>,
}

impl Tmux {
    fn cmd(&self, args: &[&str]) -> String {
        let out = Command::new("tmux")
            .arg("-L")
            .arg(&self.socket)
            .args(args)
            .output()
            .expect("tmux runs");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn screen(&self) -> String {
        self.cmd(&["capture-pane", "-p", "-t", "kvchaos"])
    }

    fn flag(&self, name: &str) -> String {
        self.cmd(&[
            "display-message",
            "-p",
            "-t",
            "kvchaos",
            &format!("#{{{name}}}"),
        ])
        .trim()
        .to_owned()
    }

    /// Polls the screen until `pred` holds; panics with the last screen at the deadline.
    fn wait_for(&self, what: &str, pred: impl Fn(&str) -> bool) -> String {
        let start = Instant::now();
        loop {
            let s = self.screen();
            if pred(&s) {
                return s;
            }
            assert!(
                start.elapsed() < DEADLINE,
                "no {what} within {DEADLINE:?}; screen:\n{s}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .args(["-L", &self.socket, "kill-server"])
            .output();
        if let Some(p) = &self.socket_path {
            let _ = std::fs::remove_file(p);
        }
    }
}

fn has_latency(screen: &str) -> bool {
    // The header's "p50 1.2ms" (or µs): a number followed by a unit.
    screen.split("p50 ").skip(1).any(|rest| {
        let num: String = rest
            .chars()
            .take_while(|c| c.is_ascii_digit() || *c == '.')
            .collect();
        let unit = &rest[num.len()..];
        !num.is_empty() && num != "0" && (unit.starts_with("ms") || unit.starts_with("µs"))
    })
}

#[test]
fn dashboard_shows_the_run_pauses_stops_on_ctrl_c_and_restores_the_terminal() {
    if !crate::support::needs("tmux", "KVCHAOS_SKIP_TMUX") {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let scenario = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/quickstart.toml");
    let out = dir.path().join("reports");
    // The shell keeps the pane open after kvchaos exits, so the restored screen can be read.
    let script = format!(
        "'{}' run '{}' --duration 60s --out '{}'; echo \"kvchaos-exit=$?\"; read wait",
        env!("CARGO_BIN_EXE_kvchaos"),
        scenario.display(),
        out.display()
    );
    let mut tmux = Tmux {
        socket: format!("kvchaos-test-{}", std::process::id()),
        socket_path: None,
    };
    let started = Command::new("tmux")
        .args(["-L", &tmux.socket, "-f", "/dev/null", "new-session", "-d"])
        .args([
            "-x", "120", "-y", "40", "-s", "kvchaos", "sh", "-c", &script,
        ])
        .status()
        .expect("tmux starts");
    assert!(started.success());
    let path = tmux.flag("socket_path");
    tmux.socket_path = Some(path).filter(|p| p.contains(&tmux.socket));

    let screen = tmux.wait_for("dashboard with a latency figure", |s| {
        s.contains("quickstart") && s.contains("get-item") && has_latency(s)
    });
    assert!(screen.contains("latency of"), "{screen}");
    assert_eq!(
        tmux.flag("alternate_on"),
        "1",
        "the dashboard uses the alternate screen"
    );
    assert_eq!(tmux.flag("cursor_flag"), "0", "the cursor is hidden");

    tmux.cmd(&["send-keys", "-t", "kvchaos", "p"]);
    tmux.wait_for("paused header", |s| s.contains("PAUSED"));
    tmux.cmd(&["send-keys", "-t", "kvchaos", "p"]);
    tmux.wait_for("running again", |s| s.contains("running"));
    tmux.cmd(&["send-keys", "-t", "kvchaos", "C-c"]);

    let after = tmux.wait_for("exit code", |s| s.contains("kvchaos-exit="));
    assert!(
        after.contains("kvchaos-exit=130"),
        "Ctrl-C stops like SIGINT (exit 130):\n{after}"
    );
    assert!(after.contains("report:"), "the summary follows:\n{after}");
    assert_eq!(
        tmux.flag("alternate_on"),
        "0",
        "the alternate screen was left"
    );
    assert_eq!(tmux.flag("cursor_flag"), "1", "the cursor is shown again");
    let reports: Vec<_> = std::fs::read_dir(&out).expect("report folder").collect();
    assert_eq!(reports.len(), 1);
    let history = std::fs::read_to_string(
        reports[0]
            .as_ref()
            .expect("entry")
            .path()
            .join("history.jsonl"),
    )
    .expect("history.jsonl");
    assert!(history.contains("\"type\":\"paused\""), "{history}");
    assert!(history.contains("\"type\":\"resumed\""), "{history}");
}
