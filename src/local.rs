//! The local Worker target: a Worker run under miniflare (the real workerd
//! runtime) through the launcher in `mock/miniflare/`, with its KV bindings
//! routed to the mock KV.
//!
//! Owns: installing the launcher's pinned npm packages ([`ensure_installed`]),
//! spawning the launcher in its own process group, waiting for its readiness
//! line, firing crons, and teardown — a graceful `stop`, then SIGKILL to the
//! whole group, on every exit path including drop. Each run gets a private
//! directory (D1/DO state and miniflare's temporary files, through `TMPDIR`)
//! that is removed with it, so even a killed run leaves nothing behind.
//! Does not own: the mock KV (the caller starts it and passes its address),
//! when crons fire (the cron driver decides), or sending load.

mod clock;
mod control;
mod error;
mod group;
mod install;
mod launch;
pub mod log;
pub mod protocol;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::Child;

pub use clock::ClockAnchor;
use control::{Control, exchange};

use crate::lines::{WholeLines, WriteFailure};
pub use error::LocalError;
pub use group::{group_alive, group_members};
pub use install::{ensure_installed, find_on_path};
pub use protocol::{CronOutcome, CronRun, KvBinding, Ready};

/// How long a `scheduled` handler may run before the launcher is deemed stuck.
pub const CRON_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a graceful stop may take before the group is killed.
pub const STOP_GRACE: Duration = Duration::from_secs(5);
/// Lines of the Worker log quoted in startup errors.
const LOG_TAIL_LINES: usize = 20;
/// How long a failed start waits for the launcher's last log lines.
const LOG_FLUSH: Duration = Duration::from_secs(2);

/// The launcher directory shipped with kvchaos: `$KVCHAOS_MINIFLARE_DIR`
/// when set, else `mock/miniflare` in the source tree kvchaos was built from.
pub fn default_launcher_dir() -> PathBuf {
    std::env::var_os("KVCHAOS_MINIFLARE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("mock/miniflare"))
}

/// What a routed Worker's KV bindings are (`--kv-binding` of the launcher).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum KvBindingMode {
    /// workerd's own KV class over the mock: a daily-limit refusal reads
    /// `KV PUT failed: 429 KV put() limit exceeded for the day.`
    #[default]
    Workerd,
    /// A JS wrapper over a service binding to the mock, with the same wire
    /// protocol: a daily-limit refusal reads exactly as in production,
    /// `KV put() limit exceeded for the day.`; other errors as workerd's.
    Wrapped,
}

impl KvBindingMode {
    /// The launcher's name for it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Workerd => "workerd",
            Self::Wrapped => "wrapped",
        }
    }
}

/// What to start.
#[derive(Clone, Debug)]
pub struct LocalSpec {
    /// Directory with the Worker's `wrangler.toml` (or `.jsonc`/`.json`).
    pub worker_dir: PathBuf,
    /// The mock KV to route every KV binding to; `None` keeps miniflare's
    /// own local KV.
    pub kv_addr: Option<SocketAddr>,
    /// What the routed KV bindings are; ignored when `kv_addr` is `None`.
    pub kv_binding: KvBindingMode,
    /// How long to wait for the readiness line.
    pub ready_timeout: Duration,
    /// Where the Worker's console output and miniflare's log go (created or truncated).
    pub log_path: PathBuf,
    /// The launcher directory (see [`default_launcher_dir`]).
    pub launcher_dir: PathBuf,
    /// The wrangler config file, relative to `worker_dir` (default: the
    /// first of wrangler.toml, wrangler.jsonc, wrangler.json there).
    pub config: Option<PathBuf>,
    /// The config's `[env.NAME]` section to run, as `wrangler dev --env`.
    pub env: Option<String>,
    /// The run's clock for the Worker's `Date`; `None` keeps real time.
    pub clock: Option<ClockAnchor>,
    /// Secrets masked in the log as it is written.
    pub redactor: crate::redact::Redactor,
    /// Extra launcher arguments (e.g. `--kv-keep-local CACHE` in differential tests).
    pub launcher_args: Vec<String>,
}

impl LocalSpec {
    /// A spec with the default launcher directory, workerd's KV class and a
    /// 60 s startup timeout.
    pub fn new(
        worker_dir: impl Into<PathBuf>,
        kv_addr: Option<SocketAddr>,
        log_path: impl Into<PathBuf>,
    ) -> Self {
        Self {
            worker_dir: worker_dir.into(),
            kv_addr,
            kv_binding: KvBindingMode::default(),
            ready_timeout: Duration::from_secs(60),
            log_path: log_path.into(),
            launcher_dir: default_launcher_dir(),
            config: None,
            env: None,
            clock: None,
            redactor: crate::redact::Redactor::default(),
            launcher_args: Vec::new(),
        }
    }
}

/// How [`LocalWorker::stop`] ended the launcher.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Stopped {
    /// It disposed miniflare and exited by itself.
    Graceful,
    /// It exited by itself, but not successfully (see the Worker log).
    Failed(String),
    /// It did not exit within [`STOP_GRACE`] and was killed.
    Killed,
}

/// A private directory for one run, removed on drop.
#[derive(Debug)]
struct RunDir(PathBuf);

impl RunDir {
    fn create() -> Result<Self, LocalError> {
        static SEQ: AtomicU64 = AtomicU64::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .subsec_nanos();
        let dir = std::env::temp_dir().join(format!(
            "kvchaos-local-{}-{}-{nanos}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        ));
        for sub in ["tmp", "state"] {
            std::fs::create_dir_all(dir.join(sub)).map_err(|source| LocalError::Io {
                what: format!("creating '{}'", dir.join(sub).display()),
                source,
            })?;
        }
        Ok(Self(dir))
    }
}

impl Drop for RunDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The launcher's process group, killed on drop unless stopped first.
#[derive(Debug)]
struct Group {
    child: Child,
    pgid: u32,
    done: bool,
}

impl Drop for Group {
    fn drop(&mut self) {
        if !self.done {
            group::kill_group(self.pgid);
            // The direct child is reaped by tokio (kill_on_drop); workerd,
            // once orphaned, by init.
        }
    }
}

/// A Worker running under miniflare. Dropping it kills every process of
/// the run; [`LocalWorker::stop`] first asks the launcher to stop.
#[derive(Debug)]
pub struct LocalWorker {
    // Field order matters for drop: the group dies before its directory goes.
    group: Group,
    control: tokio::sync::Mutex<Control>,
    ready: Ready,
    startup: Duration,
    log_path: PathBuf,
    log_clock: log::LogClock,
    /// The first failed write of `worker.log` (a full disk), if any.
    log_failure: WriteFailure,
    /// A clock move not yet sent; sent before the next command.
    pending_clock: std::sync::Mutex<Option<ClockAnchor>>,
    _run_dir: RunDir,
}

impl LocalWorker {
    /// Spawn the launcher for `spec` in its own process group and wait for
    /// its readiness line. The packages must be installed
    /// ([`ensure_installed`]).
    pub async fn start(spec: &LocalSpec) -> Result<Self, LocalError> {
        let launcher = spec.launcher_dir.join("launch.mjs");
        if !launcher.is_file() {
            return Err(LocalError::Io {
                what: format!("looking for the launcher '{}'", launcher.display()),
                source: std::io::Error::from(std::io::ErrorKind::NotFound),
            });
        }
        let node = install::node()?;
        let worker = std::path::absolute(&spec.worker_dir).map_err(|source| LocalError::Io {
            what: format!("resolving '{}'", spec.worker_dir.display()),
            source,
        })?;
        let run_dir = RunDir::create()?;
        let log = std::fs::File::create(&spec.log_path).map_err(|source| LocalError::Io {
            what: format!("creating the Worker log '{}'", spec.log_path.display()),
            source,
        })?;

        let mut cmd = launch::command(spec, node, &launcher, &worker, &run_dir.0);
        let began = Instant::now();
        let mut child = cmd.spawn().map_err(|source| LocalError::Io {
            what: format!("starting node '{}'", launcher.display()),
            source,
        })?;
        let pgid = child.id().ok_or_else(|| LocalError::Gone {
            detail: "exited at once".to_owned(),
        })?;
        let stdin = child.stdin.take();
        let stdout = child.stdout.take();
        let log_clock = log::LogClock::new(began);
        // Whole lines only; the first failed write stops the log and is reported to the run.
        let log_failure = WriteFailure::default();
        let log = WholeLines::new(log, "worker.log", log_failure.clone());
        let log_writer = child.stderr.take().map(|err| {
            tokio::spawn(log::copy_lines(
                err,
                log,
                log_clock.clone(),
                spec.redactor.clone(),
            ))
        });
        let mut group = Group {
            child,
            pgid,
            done: false,
        };
        let Some(stdout) = stdout else {
            return Err(LocalError::Protocol {
                detail: "no stdout pipe".to_owned(),
            });
        };
        let mut lines = BufReader::new(stdout).lines();

        let starting = launch::Starting {
            worker,
            log_writer,
            log_path: &spec.log_path,
        };
        let ready = starting
            .ready(&mut group, &mut lines, spec.ready_timeout)
            .await?;
        Ok(Self {
            group,
            control: tokio::sync::Mutex::new(Control {
                stdin,
                stdout: lines,
                broken: None,
            }),
            ready,
            startup: began.elapsed(),
            log_path: spec.log_path.clone(),
            log_clock,
            log_failure,
            pending_clock: std::sync::Mutex::new(None),
            _run_dir: run_dir,
        })
    }

    /// The first failed write of `worker.log` (`cannot write worker.log: …`), if any.
    pub fn log_write_error(&self) -> Option<String> {
        self.log_failure.get()
    }

    /// Base URL of the Worker, e.g. `http://127.0.0.1:41234`.
    pub fn url(&self) -> &str {
        &self.ready.url
    }

    /// Everything the readiness line said.
    pub fn ready(&self) -> &Ready {
        &self.ready
    }

    /// From spawning the launcher to its readiness line.
    pub fn startup(&self) -> Duration {
        self.startup
    }

    /// The launcher's pid, which is also its process group id.
    pub fn pgid(&self) -> u32 {
        self.group.pgid
    }

    /// Why the Worker can no longer answer, when it cannot: the launcher or its `workerd` is
    /// no longer running (zombies count as gone). Reads `/proc`; `None` where there is none.
    pub fn gone(&self) -> Option<String> {
        if !Path::new("/proc/self").exists() {
            return None;
        }
        let members = group::group_members(self.group.pgid);
        if !members.iter().any(|(pid, _)| *pid == self.group.pgid) {
            return Some(format!(
                "the miniflare launcher (pid {}) exited during the run",
                self.group.pgid
            ));
        }
        if !members.iter().any(|(_, name)| name == "workerd") {
            return Some("workerd exited during the run".to_owned());
        }
        None
    }

    /// Where the Worker's console output goes.
    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    /// From now on the Worker log's times count from `start` (the run's
    /// start, the `t = 0` of its history).
    pub fn set_run_start(&self, start: Instant) {
        self.log_clock.set_run_start(start);
    }

    /// Move the Worker's clock to `anchor` (e.g. when the run starts its day
    /// with the load): sent before the next cron, and at once in the
    /// background. A no-op when the Worker's `Date` is real time.
    pub fn move_clock(self: &std::sync::Arc<Self>, anchor: ClockAnchor) {
        if !self.ready.clock {
            return;
        }
        *self
            .pending_clock
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(anchor);
        let me = std::sync::Arc::clone(self);
        tokio::spawn(async move {
            let mut control = me.control.lock().await;
            // A failure marks the control broken; the next command reports it.
            let _ = me.send_pending_clock(&mut control).await;
        });
    }

    async fn send_pending_clock(&self, control: &mut Control) -> Result<(), LocalError> {
        let pending = self
            .pending_clock
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        let Some(c) = pending else { return Ok(()) };
        let line = protocol::clock_command(c.now_ms, c.wall_ms, c.speed);
        let reply = exchange(control, "clock", &line).await?;
        match protocol::parse_ok_reply(&reply) {
            Ok(Ok(())) => Ok(()),
            Ok(Err(reason)) => Err(LocalError::Command {
                command: "clock",
                reason,
            }),
            Err(detail) => {
                control.broken = Some(detail.clone());
                Err(LocalError::Protocol { detail })
            }
        }
    }

    /// Run the Worker's `scheduled` handler for `cron` at
    /// `scheduled_time_ms` (ms since the Unix epoch) and wait for it to end.
    pub async fn fire_cron(
        &self,
        cron: &str,
        scheduled_time_ms: u64,
    ) -> Result<CronOutcome, LocalError> {
        Ok(self.run_cron(cron, scheduled_time_ms).await?.outcome)
    }

    /// [`LocalWorker::fire_cron`], with the exception (message and stack) the handler threw.
    pub async fn run_cron(
        &self,
        cron: &str,
        scheduled_time_ms: u64,
    ) -> Result<CronRun, LocalError> {
        let mut control = self.control.lock().await;
        self.send_pending_clock(&mut control).await?;
        let line = protocol::scheduled_command(cron, scheduled_time_ms);
        let reply = exchange(&mut control, "scheduled", &line).await?;
        match protocol::parse_cron_run(&reply) {
            Ok(Ok(run)) => Ok(run),
            Ok(Err(reason)) => Err(LocalError::Command {
                command: "scheduled",
                reason,
            }),
            Err(detail) => {
                control.broken = Some(detail.clone());
                Err(LocalError::Protocol { detail })
            }
        }
    }

    /// Ask the launcher to dispose miniflare and exit; after
    /// [`STOP_GRACE`], or in any case once it has exited, SIGKILL whatever
    /// is left of its process group. Removes the run directory.
    pub async fn stop(mut self) -> Result<Stopped, LocalError> {
        let control = self.control.get_mut();
        if let Some(mut stdin) = control.stdin.take() {
            // Errors mean it is gone already; the kill below settles it.
            let _ = stdin.write_all(protocol::STOP_COMMAND.as_bytes()).await;
            let _ = stdin.flush().await;
            // Dropping stdin closes it: EOF stops the launcher as well.
        }
        let waited = tokio::time::timeout(STOP_GRACE, self.group.child.wait()).await;
        // Even after a clean exit: a workerd the launcher failed to reap
        // would still be in the group.
        group::kill_group(self.group.pgid);
        self.group.done = true;
        match waited {
            Ok(Ok(status)) if status.success() => Ok(Stopped::Graceful),
            Ok(Ok(status)) => Ok(Stopped::Failed(status.to_string())),
            Ok(Err(source)) => Err(LocalError::Io {
                what: "waiting for the miniflare launcher".to_owned(),
                source,
            }),
            Err(_) => {
                self.group
                    .child
                    .wait()
                    .await
                    .map_err(|source| LocalError::Io {
                        what: "reaping the killed miniflare launcher".to_owned(),
                        source,
                    })?;
                Ok(Stopped::Killed)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_dirs_are_private_and_removed_on_drop() {
        let a = RunDir::create().expect("run dir");
        let b = RunDir::create().expect("run dir");
        assert_ne!(a.0, b.0);
        assert!(a.0.join("tmp").is_dir() && a.0.join("state").is_dir());
        let path = a.0.clone();
        drop(a);
        assert!(!path.exists());
    }

    #[tokio::test]
    async fn a_missing_launcher_is_a_clear_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut spec = LocalSpec::new(dir.path(), None, dir.path().join("worker.log"));
        spec.launcher_dir = dir.path().join("nowhere");
        let err = LocalWorker::start(&spec).await.expect_err("must fail");
        assert!(err.to_string().contains("launch.mjs"), "{err}");
    }
}
