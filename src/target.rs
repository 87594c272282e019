//! Targets: where a run sends its load, and starting and stopping whatever that needs.
//! A URL needs nothing; the built-in server runs in-process; a Worker directory runs under
//! miniflare (see [`crate::local`]) with its KV bindings routed to an in-process mock KV.

pub mod builtin;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use crate::local::{ClockAnchor, LocalSpec, LocalWorker, Stopped};
use crate::mockkv::{MockKv, MockKvConfig, VirtualClock};
use crate::scenario::plan::{KvPlan, TargetKind, TargetPlan};

/// A target that is up, with its base URL.
pub struct Running {
    /// Base URL requests are sent to.
    pub url: url::Url,
    /// `url`, `builtin` or `worker`.
    pub kind: &'static str,
    stop: CancellationToken,
    worker: Option<Arc<LocalWorker>>,
    mock_kv: Option<MockKv>,
}

/// The report name of a target kind.
pub fn kind_name(kind: &TargetKind) -> &'static str {
    match kind {
        TargetKind::Url(_) => "url",
        TargetKind::Builtin => "builtin",
        TargetKind::Worker(_) => "worker",
    }
}

impl Running {
    /// The mock KV serving the Worker's KV bindings (Worker targets only).
    pub fn mock_kv(&self) -> Option<&MockKv> {
        self.mock_kv.as_ref()
    }

    /// Why the target died, when it is a local Worker whose processes are gone.
    pub fn died(&self) -> Option<String> {
        self.worker.as_ref().and_then(|w| w.gone())
    }

    /// The first failed write of the Worker's log (a full disk), if any.
    pub fn write_error(&self) -> Option<String> {
        self.worker.as_ref().and_then(|w| w.log_write_error())
    }

    /// The local Worker (Worker targets only), shared with the drivers that fire its crons.
    pub fn worker(&self) -> Option<Arc<LocalWorker>> {
        self.worker.clone()
    }

    /// The run starts at `start`: the Worker log's times count from it.
    pub fn run_started(&self, start: std::time::Instant) {
        if let Some(w) = &self.worker {
            w.set_run_start(start);
        }
    }

    /// The mock KV's clock was set anew: move the Worker's `Date` with it.
    pub fn clock_moved(&self) {
        if let (Some(w), Some(kv)) = (&self.worker, &self.mock_kv) {
            w.move_clock(ClockAnchor::of(&kv.clock().view()));
        }
    }

    /// Stops whatever was started: the Worker first (gracefully, then its whole process group),
    /// then the mock KV and the built-in server. Returns a note when something went wrong.
    /// Drivers holding the Worker must have ended.
    pub async fn shutdown(mut self) -> Option<String> {
        let note = match self.worker.take().map(Arc::try_unwrap) {
            Some(Ok(w)) => {
                let log = w.log_path().display().to_string();
                match w.stop().await {
                    Ok(Stopped::Graceful) => None,
                    // A launcher that died mid-run (crashed, OOM-killed) or failed to dispose
                    // miniflare ends unsuccessfully; its workerd may have kept serving, so the
                    // numbers alone would not show it.
                    Ok(Stopped::Failed(status)) => Some(format!(
                        "the miniflare launcher ended unsuccessfully ({status}): it died during the run or failed to stop the Worker; see '{log}'"
                    )),
                    Ok(Stopped::Killed) => Some(format!(
                        "the miniflare launcher did not stop within {:?} and was killed; see '{log}'",
                        crate::local::STOP_GRACE
                    )),
                    Err(e) => Some(format!("stopping the Worker: {e}")),
                }
            }
            // Still shared: dropping the last handle kills its process group.
            Some(Err(_)) => Some("the Worker was still in use at shutdown; its process group is killed when the last user lets go".to_owned()),
            None => None,
        };
        self.stop.cancel();
        note
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        // LocalWorker's own Drop kills its process group; this stops the in-process servers.
        self.stop.cancel();
    }
}

/// Loopback on a port the OS picks.
const LOOPBACK: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 0);

/// Starts the target. Worker logs go to `worker.log` in `report_dir`; the mock KV has the
/// quotas of `kv`, and its clock runs `speedup` times faster than real time from `kv`'s start
/// of day (or now).
pub async fn start(
    target: &TargetPlan,
    kv_plan: &KvPlan,
    report_dir: &Path,
    seed: u64,
    speedup: f64,
    redactor: &crate::redact::Redactor,
) -> Result<Running, String> {
    let stop = CancellationToken::new();
    match &target.kind {
        TargetKind::Url(url) => Ok(Running {
            url: url.clone(),
            kind: "url",
            stop,
            worker: None,
            mock_kv: None,
        }),
        TargetKind::Builtin => start_builtin(stop).await,
        TargetKind::Worker(dir) => {
            // If this future is dropped half-way (an interrupt), stop the mock KV with it.
            let guard = stop.clone().drop_guard();
            let (kv, kv_addr) = start_mock_kv(kv_plan, seed, speedup, &stop).await?;
            let mut spec = worker_spec(target, dir, kv_addr, report_dir, redactor);
            // The Worker's Date runs on the mock's clock when that is not plain real time.
            if speedup != 1.0 || kv_plan.start_of_day.is_some() {
                spec.clock = Some(ClockAnchor::of(&kv.clock().view()));
            }
            let worker = start_worker(&spec, dir, &stop).await?;
            let url = url::Url::parse(worker.url()).map_err(|e| {
                format!("the launcher reported a bad URL \"{}\": {e}", worker.url())
            })?;
            guard.disarm();
            Ok(Running {
                url,
                kind: "worker",
                stop,
                worker: Some(Arc::new(worker)),
                mock_kv: Some(kv),
            })
        }
    }
}

/// The built-in test server on a loopback port, until `stop`.
async fn start_builtin(stop: CancellationToken) -> Result<Running, String> {
    let listener = tokio::net::TcpListener::bind(LOOPBACK)
        .await
        .map_err(|e| format!("cannot start the built-in server: {e}"))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    tokio::spawn(builtin::serve(listener, stop.clone()));
    Ok(Running {
        url: base_url(addr)?,
        kind: "builtin",
        stop,
        worker: None,
        mock_kv: None,
    })
}

/// The mock KV with `kv`'s quotas and grouping, its clock `speedup` times real time from
/// `kv`'s start of day (or now), served on a loopback port until `stop`.
async fn start_mock_kv(
    kv: &KvPlan,
    seed: u64,
    speedup: f64,
    stop: &CancellationToken,
) -> Result<(MockKv, SocketAddr), String> {
    let clock = match kv.start_of_day {
        None => VirtualClock::real_time(speedup),
        Some(at) => VirtualClock::starting_at(today_at(at), speedup),
    };
    let mock = MockKv::new(
        MockKvConfig {
            seed,
            limits: kv.limits,
            same_key_write_limit: kv.same_key_write_limit,
            group: kv.group,
            ..MockKvConfig::default()
        },
        clock,
    );
    let listener = crate::mockkv::bind(LOOPBACK, false)
        .await
        .map_err(|e| format!("cannot start the mock KV: {e}"))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    tokio::spawn(crate::mockkv::serve(listener, mock.clone(), stop.clone()));
    Ok((mock, addr))
}

/// Creates a Worker target's `worker.log` in `report_dir`, before anything can interrupt its
/// start: the report folder holds it also when an interrupt ends the run at once, or while
/// the launcher's packages are still installing. Other targets have no log.
pub fn create_worker_log(target: &TargetPlan, report_dir: &Path) -> Result<(), String> {
    if !matches!(target.kind, TargetKind::Worker(_)) {
        return Ok(());
    }
    let path = report_dir.join("worker.log");
    std::fs::File::create(&path)
        .map(drop)
        .map_err(|e| format!("cannot create \"{}\": {e}", path.display()))
}

/// The launcher's spec for the Worker in `dir`, its KV bindings routed to `kv_addr`, its log
/// `worker.log` in `report_dir`.
fn worker_spec(
    target: &TargetPlan,
    dir: &Path,
    kv_addr: SocketAddr,
    report_dir: &Path,
    redactor: &crate::redact::Redactor,
) -> LocalSpec {
    let mut spec = LocalSpec::new(dir, Some(kv_addr), report_dir.join("worker.log"));
    spec.kv_binding = target.kv_binding;
    spec.config.clone_from(&target.config);
    spec.env.clone_from(&target.env);
    spec.redactor = redactor.clone();
    spec
}

/// Installs the launcher's packages and starts the Worker in `dir`; on failure `stop` ends the
/// mock KV.
async fn start_worker(
    spec: &LocalSpec,
    dir: &Path,
    stop: &CancellationToken,
) -> Result<LocalWorker, String> {
    crate::local::ensure_installed(&spec.launcher_dir)
        .await
        .map_err(|e| e.to_string())?;
    LocalWorker::start(spec).await.map_err(|e| {
        stop.cancel();
        format!("the Worker in \"{}\" did not start: {e}", dir.display())
    })
}

/// Applies `--config FILE` and `--env NAME` to a Worker target: FILE relative to the current
/// directory (as `wrangler dev --config`) or else to the Worker directory; NAME must be an
/// `[env.NAME]` of the config. A usage message when not.
pub fn choose_config(
    target: &mut TargetPlan,
    config: Option<&Path>,
    env: Option<&str>,
) -> Result<(), String> {
    if config.is_none() && env.is_none() {
        return Ok(());
    }
    let TargetKind::Worker(dir) = &target.kind else {
        return Err("--config and --env apply to a local Worker target: give --worker DIR or a scenario with [target] worker = \"...\"".to_owned());
    };
    if let Some(c) = config {
        let path = if c.is_file() {
            std::path::absolute(c).map_err(|e| format!("--config \"{}\": {e}", c.display()))?
        } else if dir.join(c).is_file() {
            c.to_path_buf()
        } else {
            return Err(format!(
                "--config \"{}\": no such file here or in the Worker directory \"{}\": give the wrangler config file, e.g. --config wrangler-dev.toml",
                c.display(),
                dir.display()
            ));
        };
        target.config = Some(path);
    }
    let file = match &target.config {
        Some(c) => dir.join(c),
        None => crate::scenario::worker_config(dir).ok_or_else(|| {
            format!(
                "\"{}\" has no wrangler config: give --config FILE",
                dir.display()
            )
        })?,
    };
    if let Some(name) = env {
        let cfg = crate::wrangler::WranglerConfig::load(&file)
            .map_err(|e| format!("--env \"{name}\": {e}"))?;
        cfg.resolve(Some(name))
            .map_err(|e| format!("--env \"{name}\": {e}"))?;
        target.env = Some(name.to_owned());
    }
    Ok(())
}

/// Today's (UTC) midnight plus `at`, in ms since the Unix epoch.
pub fn today_at(at: std::time::Duration) -> u64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis() as u64;
    let day = crate::mockkv::clock::DAY_MS;
    now - now % day + at.as_millis() as u64
}

fn base_url(addr: SocketAddr) -> Result<url::Url, String> {
    url::Url::parse(&format!("http://{addr}/")).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn worker_target(dir: &Path) -> TargetPlan {
        TargetPlan {
            kind: TargetKind::Worker(dir.to_path_buf()),
            allow_hosts: Vec::new(),
            ca_file: None,
            kv_binding: crate::local::KvBindingMode::Workerd,
            config: None,
            env: None,
        }
    }

    #[test]
    fn config_and_env_flags_are_checked_against_the_worker() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/workers/wrangler-dev-config");
        let mut t = worker_target(&dir);
        choose_config(
            &mut t,
            Some(Path::new("wrangler-dev.toml")),
            Some("staging"),
        )
        .expect("valid");
        assert_eq!(t.config.as_deref(), Some(Path::new("wrangler-dev.toml")));
        assert_eq!(t.env.as_deref(), Some("staging"));

        let mut t = worker_target(&dir);
        let err = choose_config(&mut t, Some(Path::new("nope.toml")), None).expect_err("missing");
        assert!(
            err.starts_with("--config \"nope.toml\": no such file"),
            "{err}"
        );
        let err = choose_config(&mut t, None, Some("staging")).expect_err("not in wrangler.toml");
        assert!(err.starts_with("--env \"staging\":"), "{err}");

        let mut url = worker_target(&dir);
        url.kind = TargetKind::Builtin;
        assert!(choose_config(&mut url, None, Some("staging")).is_err());
        assert!(choose_config(&mut url, None, None).is_ok());
    }
}
