//! Teardown of a Worker target, through the built binary: a normal end, Ctrl-C and SIGTERM,
//! a second Ctrl-C against requests that never answer, a Worker that cannot start and a
//! Worker that crashes mid-run all end with a written report and no process left behind.
//!
//! Leftovers are found by a unique environment variable given to each `kvchaos` child: node
//! and workerd inherit it, so once the child has exited, any process still carrying it in
//! `/proc/<pid>/environ` is an orphan of that run — whatever other tests run alongside.
//! Needs Node.js; fails without it unless KVCHAOS_SKIP_NODE=1
//! (then skipped with a printed reason). One run at a
//! time here: the machine is small and shared.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_kvchaos");
const TAG_VAR: &str = "KVCHAOS_TEST_TAG";
const WORKERS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/workers");
/// How long a Worker may take to start and show its first live line (miniflare on a busy
/// 2-core machine can be slow; this is a bound, not a wait).
const FIRST_LINE_WITHIN: Duration = Duration::from_secs(90);
/// How long processes that are already dying get to disappear.
const DYING_WITHIN: Duration = Duration::from_secs(5);
/// What a run may take beyond its plan: the launcher's graceful stop (`local::STOP_GRACE`,
/// 5 s) plus scheduling slack.
const SLACK: Duration = Duration::from_secs(8);

/// One kvchaos run at a time across these tests.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn node_missing() -> bool {
    !crate::support::node_available()
}

fn worker(name: &str) -> PathBuf {
    Path::new(WORKERS).join(name)
}

/// A tag no other process on the machine carries.
fn unique_tag() -> String {
    static SEQ: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos();
    format!(
        "teardown-{}-{}-{nanos}",
        std::process::id(),
        SEQ.fetch_add(1, Ordering::Relaxed)
    )
}

/// Live processes carrying `tag` in their environment, as `(pid, command name)`. Zombies have
/// an empty environ and so are not counted: they run nothing.
fn tagged(tag: &str) -> Vec<(u32, String)> {
    let needle = format!("{TAG_VAR}={tag}");
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/environ"))
                .map(|env| env.split(|b| *b == 0).any(|kv| kv == needle.as_bytes()))
                .unwrap_or(false)
        })
        .map(|pid| {
            let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
            (pid, comm.trim().to_owned())
        })
        .collect()
}

fn kill(pid: u32, signal: i32) {
    // SAFETY: kill(2) touches no memory of ours; the pids are our child or its descendants.
    unsafe {
        libc::kill(pid as i32, signal);
    }
}

/// SIGKILL whatever still carries `tag`, so that a failing test leaves nothing behind.
fn kill_tagged(tag: &str) {
    for (pid, _) in tagged(tag) {
        kill(pid, libc::SIGKILL);
    }
}

/// One `kvchaos run` child with its output collected by reader threads.
struct Run {
    child: Child,
    tag: String,
    out: PathBuf,
    stdout: Receiver<String>,
    stderr: Receiver<String>,
    stdout_seen: Vec<String>,
    stderr_seen: Vec<String>,
    _tmp: tempfile::TempDir,
    _serial: std::sync::MutexGuard<'static, ()>,
}

fn lines_of(r: impl Read + Send + 'static) -> Receiver<String> {
    let (tx, rx) = channel();
    std::thread::spawn(move || {
        for line in BufReader::new(r).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    rx
}

impl Run {
    /// Writes `scenario` (TOML) to a fresh temp dir and starts `kvchaos run` on it.
    fn start(scenario: &str) -> Run {
        let serial = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
        let tmp = tempfile::tempdir().expect("tempdir");
        let path = tmp.path().join("scenario.toml");
        std::fs::write(&path, scenario).expect("write scenario");
        let out = tmp.path().join("reports");
        let tag = unique_tag();
        let mut child = Command::new(BIN)
            .arg("run")
            .arg(&path)
            .arg("--no-tui")
            .arg("--out")
            .arg(&out)
            .env(TAG_VAR, &tag)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn kvchaos");
        let stdout = lines_of(child.stdout.take().expect("stdout"));
        let stderr = lines_of(child.stderr.take().expect("stderr"));
        Run {
            child,
            tag,
            out,
            stdout,
            stderr,
            stdout_seen: Vec::new(),
            stderr_seen: Vec::new(),
            _tmp: tmp,
            _serial: serial,
        }
    }

    /// Reads both streams to their end (a reader thread hangs up at EOF), at most `within`: a
    /// pipe still held open after that is for the leftover check to report.
    fn drain(&mut self, within: Duration) {
        let deadline = Instant::now() + within;
        let mut open = [true, true];
        while open.contains(&true) {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return;
            }
            let streams = [
                (&self.stdout, &mut self.stdout_seen),
                (&self.stderr, &mut self.stderr_seen),
            ];
            for (i, (rx, seen)) in streams.into_iter().enumerate() {
                if !open[i] {
                    continue;
                }
                match rx.recv_timeout(left.min(Duration::from_millis(20))) {
                    Ok(line) => seen.push(line),
                    Err(RecvTimeoutError::Disconnected) => open[i] = false,
                    Err(RecvTimeoutError::Timeout) => {}
                }
            }
        }
    }

    /// Both streams so far, for failure messages.
    fn output(&mut self) -> String {
        self.stdout_seen.extend(self.stdout.try_iter());
        self.stderr_seen.extend(self.stderr.try_iter());
        format!(
            "stdout:\n{}\nstderr:\n{}",
            self.stdout_seen.join("\n"),
            self.stderr_seen.join("\n")
        )
    }

    /// The first stdout line satisfying `pred`, within `within`.
    fn wait_stdout(&mut self, within: Duration, pred: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.stdout.recv_timeout(left) {
                Ok(line) => {
                    self.stdout_seen.push(line.clone());
                    if pred(&line) {
                        return line;
                    }
                }
                Err(e) => panic!(
                    "no such stdout line within {within:?} ({e}):\n{}",
                    self.output()
                ),
            }
        }
    }

    /// The first live status line (`[   1s/60s] phase 1/1 ...`): the Worker is up and load runs.
    fn first_live_line(&mut self) -> String {
        self.wait_stdout(FIRST_LINE_WITHIN, |l| l.starts_with('['))
    }

    /// The first stderr line containing `needle`, within `within`.
    fn wait_stderr(&mut self, within: Duration, needle: &str) -> String {
        let deadline = Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.stderr.recv_timeout(left) {
                Ok(line) => {
                    self.stderr_seen.push(line.clone());
                    if line.contains(needle) {
                        return line;
                    }
                }
                Err(e) => panic!(
                    "no stderr line with {needle:?} within {within:?} ({e}):\n{}",
                    self.output()
                ),
            }
        }
    }

    fn signal(&self, signal: i32) {
        kill(self.child.id(), signal);
    }

    /// Waits for the exit, at most `within`; a run that takes longer fails the test.
    fn wait(&mut self, within: Duration) -> ExitStatus {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status;
            }
            if Instant::now() >= deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!("kvchaos still running after {within:?}:\n{}", self.output());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Whether the child is still running after `within` (checked all along, so an early exit
    /// is seen at once).
    fn keeps_running(&mut self, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if self.child.try_wait().expect("try_wait").is_some() {
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.child.try_wait().expect("try_wait").is_none()
    }

    /// Waits for the exit (at most `within`), then asserts `code` and that nothing is left.
    fn expect_exit(&mut self, within: Duration, code: i32) {
        let status = self.wait(within);
        self.drain(Duration::from_secs(2));
        let output = self.output();
        assert_eq!(status.code(), Some(code), "{output}");
        self.assert_no_leftovers();
    }

    /// No process carrying this run's tag, after at most [`DYING_WITHIN`] for those dying.
    fn assert_no_leftovers(&self) {
        let deadline = Instant::now() + DYING_WITHIN;
        loop {
            let left = tagged(&self.tag);
            if left.is_empty() {
                return;
            }
            if Instant::now() >= deadline {
                kill_tagged(&self.tag);
                panic!(
                    "processes of the run still alive {DYING_WITHIN:?} after kvchaos exited: {left:?}"
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The single report folder, which must hold `summary.json` and `worker.log`.
    fn report_dir(&self) -> PathBuf {
        let dirs: Vec<PathBuf> = std::fs::read_dir(&self.out)
            .expect("report root exists")
            .map(|e| e.expect("entry").path())
            .collect();
        assert_eq!(dirs.len(), 1, "{dirs:?}");
        let dir = dirs[0].clone();
        for f in ["summary.json", "report.md", "worker.log"] {
            assert!(dir.join(f).is_file(), "{f} missing in {}", dir.display());
        }
        dir
    }

    fn summary(&self) -> Value {
        let text =
            std::fs::read_to_string(self.report_dir().join("summary.json")).expect("summary.json");
        serde_json::from_str(&text).expect("summary.json is JSON")
    }
}

impl Drop for Run {
    fn drop(&mut self) {
        // Only matters when an assertion failed midway: leave nothing running. A killed
        // kvchaos closes the launcher's stdin, and the launcher then cleans up after itself;
        // give it the time to before killing what is left.
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        let deadline = Instant::now() + DYING_WITHIN;
        while !tagged(&self.tag).is_empty() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        kill_tagged(&self.tag);
    }
}

/// A scenario against fixture Worker `name` requesting `path` with a 30 s timeout; `extra`
/// goes at the top level.
fn scenario(name: &str, duration: &str, rate: u32, path: &str, extra: &str) -> String {
    scenario_with_timeout(name, duration, rate, path, "30s", extra)
}

fn scenario_with_timeout(
    name: &str,
    duration: &str,
    rate: u32,
    path: &str,
    timeout: &str,
    extra: &str,
) -> String {
    format!(
        r#"name = "teardown-{name}"
{extra}
[target]
worker = "{}"
[[phases]]
duration = "{duration}"
rate = {rate}
[[requests]]
name = "req"
path = "{path}"
timeout = "{timeout}"
"#,
        worker(name).display()
    )
}

fn count(summary: &Value, class: &str) -> u64 {
    summary["overall"]["by_class"][class].as_u64().unwrap_or(0)
}

#[test]
fn a_normal_end_writes_the_report_and_leaves_nothing_running() {
    if node_missing() {
        return;
    }
    let mut run = Run::start(&format!(
        "{}[thresholds]\nall = [\"error_rate < 1%\"]\n",
        scenario("kv-probe", "2s", 10, "/health", "")
    ));
    run.expect_exit(FIRST_LINE_WITHIN + SLACK, 0);
    let s = run.summary();
    assert_eq!(s["stop"]["reason"], "completed", "{s}");
    assert_eq!(count(&s, "2xx"), 20, "{s}");
    assert!(run.report_dir().join("mockkv.json").is_file());
}

fn one_signal_stops_the_run(signal: i32) {
    if node_missing() {
        return;
    }
    let mut run = Run::start(&scenario("kv-probe", "60s", 10, "/health", ""));
    let first = run.first_live_line();
    assert!(first.contains("phase 1/1"), "{first}");
    let t0 = Instant::now();
    run.signal(signal);
    run.expect_exit(SLACK, 130);
    let s = run.summary();
    assert_eq!(s["stop"]["reason"], "interrupted", "{s}");
    assert_eq!(s["stop"]["unfinished"], 0, "{s}");
    assert!(count(&s, "2xx") >= 10, "{s}");
    println!("teardown: signal {signal} → exit in {:?}", t0.elapsed());
}

#[test]
fn sigint_ends_a_worker_run_with_a_report_and_no_orphans() {
    one_signal_stops_the_run(libc::SIGINT);
}

#[test]
fn sigterm_ends_a_worker_run_with_a_report_and_no_orphans() {
    one_signal_stops_the_run(libc::SIGTERM);
}

#[test]
fn a_second_sigint_abandons_requests_that_never_answer() {
    if node_missing() {
        return;
    }
    let mut run = Run::start(&scenario("hang", "60s", 10, "/hang", "grace = \"30s\""));
    let first = run.first_live_line();
    assert!(!first.contains("in-flight 0"), "requests hang: {first}");
    run.signal(libc::SIGINT);
    // Signals that arrive together may be seen as one: wait until the first one is handled.
    run.wait_stderr(Duration::from_secs(5), "interrupted");
    // The first Ctrl-C waits for the requests in flight (30 s of grace): still running.
    assert!(
        run.keeps_running(Duration::from_millis(500)),
        "the first SIGINT must wait for in-flight requests:\n{}",
        run.output()
    );
    let t0 = Instant::now();
    run.signal(libc::SIGINT);
    run.expect_exit(SLACK, 130);
    let took = t0.elapsed();
    let s = run.summary();
    assert_eq!(s["stop"]["reason"], "interrupted", "{s}");
    assert!(s["stop"]["unfinished"].as_u64().unwrap_or(0) >= 10, "{s}");
    assert_eq!(s["overall"]["completed"], 0, "nothing ever answered: {s}");
    println!("teardown: second SIGINT → exit in {took:?}");
}

#[test]
fn a_worker_that_cannot_start_is_reported_unreachable_with_its_log() {
    if node_missing() {
        return;
    }
    let mut run = Run::start(&scenario("broken", "2s", 10, "/", ""));
    run.expect_exit(FIRST_LINE_WITHIN + SLACK, 3);
    let s = run.summary();
    assert_eq!(s["stop"]["reason"], "target-unreachable", "{s}");
    let detail = s["stop"]["detail"].as_str().unwrap_or_default();
    assert!(
        detail.contains("broken on purpose at module load"),
        "the detail quotes the Worker's failure: {detail}"
    );
    let log = std::fs::read_to_string(run.report_dir().join("worker.log")).expect("worker.log");
    assert!(log.contains("broken on purpose at module load"), "{log}");
    // The headline says the Worker did not start, with its message whole, and no threshold
    // is judged on the absent data.
    assert_eq!(s["thresholds"], serde_json::json!([]), "{s}");
    let md = std::fs::read_to_string(run.report_dir().join("report.md")).expect("report.md");
    let headline = md.lines().find(|l| l.starts_with("**")).unwrap_or_default();
    assert!(
        headline.starts_with("**ERROR** · the target did not start"),
        "{md}"
    );
    assert!(
        headline.contains("broken on purpose at module load"),
        "{headline}"
    );
    assert!(!md.contains("observed no data"), "{md}");
}

#[test]
fn a_worker_that_crashes_mid_run_ends_as_a_target_failure_with_its_report() {
    if node_missing() {
        return;
    }
    const PLANNED: Duration = Duration::from_secs(6);
    let mut run = Run::start(&format!(
        "{}[thresholds]\nall = [\"error_rate < 1%\"]\n",
        scenario("kv-probe", "6s", 20, "/health", "grace = \"2s\"")
    ));
    run.first_live_line();
    let t0 = Instant::now();
    let workerd: Vec<_> = tagged(&run.tag)
        .into_iter()
        .filter(|(_, comm)| comm == "workerd")
        .collect();
    assert!(
        !workerd.is_empty(),
        "no workerd among {:?}",
        tagged(&run.tag)
    );
    for (pid, _) in &workerd {
        kill(*pid, libc::SIGKILL);
    }
    // Noticed within a tick of the live view: the run stops early, exit 3.
    run.expect_exit(PLANNED + SLACK, 3);
    println!("teardown: crash → exit in {:?}", t0.elapsed());
    let s = run.summary();
    assert_eq!(s["stop"]["reason"], "target-failed", "{s}");
    let detail = s["stop"]["detail"].as_str().unwrap_or_default();
    assert!(detail.contains("workerd exited"), "{s}");
    assert!(
        s["duration_s"].as_f64().unwrap_or(f64::MAX) < PLANNED.as_secs_f64(),
        "{s}"
    );
    assert!(count(&s, "2xx") > 0, "{s}");
}

#[test]
fn requests_that_time_out_are_counted_and_the_run_ends_on_time() {
    if node_missing() {
        return;
    }
    const PLANNED: Duration = Duration::from_secs(2);
    const TIMEOUT: Duration = Duration::from_secs(1);
    let mut run = Run::start(&scenario_with_timeout(
        "hang",
        "2s",
        5,
        "/hang",
        "1s",
        "grace = \"5s\"",
    ));
    run.first_live_line();
    run.expect_exit(PLANNED + TIMEOUT + SLACK, 0);
    let s = run.summary();
    assert_eq!(s["stop"]["reason"], "completed", "{s}");
    // Every request timed out within the grace period: none left unfinished.
    assert_eq!(s["stop"]["unfinished"], 0, "{s}");
    assert_eq!(count(&s, "timeout"), 10, "{s}");
    assert_eq!(s["overall"]["completed"], 10, "{s}");
    assert!(
        s["duration_s"].as_f64().unwrap_or(f64::MAX) < (PLANNED + TIMEOUT).as_secs_f64() + 0.5,
        "{s}"
    );
}

#[test]
fn a_launcher_killed_mid_run_ends_the_run_as_a_target_failure() {
    if node_missing() {
        return;
    }
    let mut run = Run::start(&scenario("kv-probe", "6s", 10, "/health", ""));
    run.first_live_line();
    let node: Vec<_> = tagged(&run.tag)
        .into_iter()
        .filter(|(_, comm)| comm == "node")
        .collect();
    assert_eq!(node.len(), 1, "one launcher: {:?}", tagged(&run.tag));
    kill(node[0].0, libc::SIGKILL);
    // workerd, orphaned, may keep serving, but nothing can fire its crons any more: the run
    // stops as a target failure and the group kill at the end takes workerd.
    run.expect_exit(Duration::from_secs(6) + SLACK, 3);
    let s = run.summary();
    assert_eq!(s["stop"]["reason"], "target-failed", "{s}");
    let detail = s["stop"]["detail"].as_str().unwrap_or_default();
    assert!(detail.contains("launcher"), "{s}");
}

/// Known bug, for the lead (src/run.rs): `run()` awaits `target::start` (and the pre-flight
/// probe) without watching the interrupts, so Ctrl-C while a Worker starts is not acted on
/// until the Worker is ready — up to the 60 s startup timeout — and a second Ctrl-C does not
/// help either. Un-ignore once the start is raced against the interrupts.
#[test]
fn sigint_while_the_worker_starts_ends_the_run_promptly() {
    if node_missing() {
        return;
    }
    let mut run = Run::start(&scenario("slow-start", "60s", 10, "/", ""));
    run.wait_stdout(Duration::from_secs(10), |l| {
        l.starts_with("kvchaos: running")
    });
    // The signal handlers are installed before that line is printed; the start takes seconds.
    let t0 = Instant::now();
    run.signal(libc::SIGINT);
    run.wait_stderr(Duration::from_secs(5), "interrupted");
    run.signal(libc::SIGINT);
    run.expect_exit(Duration::from_secs(3), 130);
    println!(
        "teardown: SIGINT during startup → exit in {:?}",
        t0.elapsed()
    );
    let s = run.summary();
    assert_eq!(s["stop"]["reason"], "interrupted", "{s}");
    assert_eq!(s["overall"]["completed"], 0, "{s}");
}
