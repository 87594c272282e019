//! Before any load: the report folder, the target started, its KV bindings checked against the
//! scenario's faults, and one connection to it. A run that ends here (the target cannot be
//! reached, or an interrupt came first) comes back as data, [`Setup::Ended`], with a report.
//!
//! Does not own: the load (the session) or the summary's shape (`summary`).

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use super::RunError;
use crate::engine::client::Endpoint;
use crate::live::Interrupts;
use crate::scenario::plan::{Plan, TargetKind};
use crate::summary::{StopReason, TargetInfo};
use crate::target::Running;

/// How long the pre-flight connection to the target may take.
const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

/// What setup ends with.
pub enum Setup {
    /// The target is up and answers: load may start.
    Ready(Box<Ready>),
    /// The run ended before any load.
    Ended(Ended),
}

/// A target ready for load.
pub struct Ready {
    /// The running target.
    pub target: Running,
    /// Where requests go, resolved and probed.
    pub endpoint: Endpoint,
    /// The target's URL, redacted.
    pub url: String,
    /// Warnings for the report (a Worker without KV bindings).
    pub warnings: Vec<String>,
    /// The canary's chaos shim, armed with the run's faults (`[canary]` runs).
    pub canary: Option<crate::canary::live::Armed>,
}

/// A run that ended before any load.
pub struct Ended {
    /// What the target was.
    pub target: TargetInfo,
    /// Unreachable or interrupted.
    pub reason: StopReason,
    /// What happened (not yet redacted).
    pub detail: String,
    /// What stopping the target reported, for the command line.
    pub notes: Vec<String>,
}

/// Creates `<out>/<name>-<UTC timestamp>` (with a numeric suffix if it exists already).
pub fn report_folder(out: &Path, name: &str, at: SystemTime) -> Result<PathBuf, RunError> {
    create_report_dir(out, name, at).map_err(|e| {
        RunError::Environment(format!(
            "cannot create the report folder under \"{}\": {e}",
            out.display()
        ))
    })
}

/// Raises the open-file limit to the hard limit, then refuses a plan whose busiest phase still
/// does not fit: each request in flight holds a socket, and against a Worker one more for the
/// Worker's call to the in-process mock KV.
pub fn check_open_files(plan: &Plan) -> Result<(), RunError> {
    let Some(limit) = crate::resources::raise_open_file_limit() else {
        return Ok(());
    };
    let per = if matches!(plan.target.kind, TargetKind::Worker(_)) {
        2
    } else {
        1
    };
    let Some((i, busiest)) = plan
        .phases
        .iter()
        .enumerate()
        .max_by_key(|(_, p)| p.concurrency())
    else {
        return Ok(());
    };
    let n = busiest.concurrency() as u64;
    let field = match busiest.load {
        crate::scenario::plan::Load::Vus(_) => "vus",
        _ => "max_in_flight",
    };
    let what = format!("phase {} ({field} = {n})", i + 1);
    crate::resources::check_open_files(n, per, limit, &what).map_err(RunError::Usage)
}

/// Starts the target, checks its KV bindings and connects to it once. Starting a Worker can
/// take seconds: an interrupt meanwhile ends the run at once.
pub async fn start(
    plan: &Plan,
    scenario: &Path,
    report_dir: &Path,
    interrupts: &Interrupts,
) -> Result<Setup, RunError> {
    crate::target::create_worker_log(&plan.target, report_dir).map_err(RunError::Environment)?;
    let starting = crate::target::start(
        &plan.target,
        &plan.kv,
        report_dir,
        plan.seed,
        plan.speedup,
        &plan.redactor,
    );
    let target = match or_interrupted(interrupts, starting).await {
        Some(Ok(t)) => t,
        failed => {
            let url = match &plan.target.kind {
                TargetKind::Url(u) => plan.redactor.redact(u.as_str()).into_owned(),
                TargetKind::Worker(d) => d.display().to_string(),
                TargetKind::Builtin => String::new(),
            };
            let kind = crate::target::kind_name(&plan.target.kind);
            let (reason, detail) = ended_by(failed, "interrupted while the target was starting");
            return Ok(Setup::Ended(Ended {
                target: target_info(kind, url),
                reason,
                detail,
                notes: Vec::new(),
            }));
        }
    };
    let warnings = match kv_binding_check(plan, &target, scenario) {
        Ok(w) => w,
        Err(e) => {
            let notes = target.shutdown().await.into_iter().collect();
            return Err(RunError::with_notes(RunError::Usage(e), notes));
        }
    };
    let url = plan.redactor.redact(target.url.as_str()).into_owned();
    let reachable = async {
        let ep = Endpoint::resolve(&target.url, plan.target.ca_file.as_deref())
            .await
            .map_err(|e| e.to_string())?;
        ep.probe(PROBE_TIMEOUT).await.map(|()| ep)
    };
    let reachable = async {
        let endpoint = reachable.await?;
        let canary = match &plan.canary {
            Some(c) => Some(crate::canary::live::Armed::arm(plan, c, &target.url).await?),
            None => None,
        };
        Ok::<_, String>((endpoint, canary))
    };
    match or_interrupted(interrupts, reachable).await {
        Some(Ok((endpoint, canary))) => Ok(Setup::Ready(Box::new(Ready {
            target,
            endpoint,
            url,
            warnings,
            canary,
        }))),
        failed => {
            let (reason, detail) = ended_by(failed, "interrupted before load started");
            let kind = target.kind;
            let notes = target.shutdown().await.into_iter().collect();
            Ok(Setup::Ended(Ended {
                target: target_info(kind, url),
                reason,
                detail,
                notes,
            }))
        }
    }
}

fn target_info(kind: &str, url: String) -> TargetInfo {
    TargetInfo {
        kind: kind.to_owned(),
        url,
    }
}

/// Why a step that did not succeed ended the run: its error, or an interrupt.
fn ended_by<T>(failed: Option<Result<T, String>>, interrupted: &str) -> (StopReason, String) {
    match failed {
        Some(Err(e)) => (StopReason::TargetUnreachable, e),
        _ => (StopReason::Interrupted, interrupted.to_owned()),
    }
}

/// `fut`, unless an interrupt comes first (`None`).
async fn or_interrupted<T>(interrupts: &Interrupts, fut: impl Future<Output = T>) -> Option<T> {
    tokio::select! {
        v = fut => Some(v),
        _ = interrupts.stop.cancelled() => None,
        _ = interrupts.abort.cancelled() => None,
    }
}

/// Checks the scenario's faults against the KV bindings the started Worker has: a fault on a
/// namespace that is no binding, or faults on a Worker without KV, are scenario errors (they
/// could never hit anything); a Worker target without KV bindings is a warning.
fn kv_binding_check(
    plan: &Plan,
    target: &crate::target::Running,
    scenario: &Path,
) -> Result<Vec<String>, String> {
    let Some(worker) = target.worker() else {
        return Ok(Vec::new());
    };
    let names: Vec<&str> = worker
        .ready()
        .kv_bindings
        .iter()
        .map(|b| b.namespace.as_str())
        .collect();
    if names.is_empty() {
        if !plan.faults.is_empty() {
            return Err(format!(
                "{}: the Worker declares no KV binding ([[kv_namespaces]] in its wrangler config), so its [[faults]] could never hit anything: remove them or add the binding",
                scenario.display()
            ));
        }
        return Ok(vec![
            "the Worker declares no KV binding: nothing in this run touched the mock KV".to_owned(),
        ]);
    }
    for (i, f) in plan.faults.iter().enumerate() {
        if let Some(ns) = f.spec.namespace.as_deref().filter(|ns| !names.contains(ns)) {
            return Err(format!(
                "{}: fault #{} namespace {ns:?} is no KV binding of the Worker; its KV bindings: {}",
                scenario.display(),
                i + 1,
                names.join(", ")
            ));
        }
    }
    Ok(Vec::new())
}

fn create_report_dir(out: &Path, name: &str, at: SystemTime) -> std::io::Result<PathBuf> {
    std::fs::create_dir_all(out)?;
    let stamp: String = humantime::format_rfc3339_seconds(at)
        .to_string()
        .chars()
        .filter(|c| *c != '-' && *c != ':')
        .collect();
    for n in 1..1000 {
        let dir = if n == 1 {
            out.join(format!("{name}-{stamp}"))
        } else {
            out.join(format!("{name}-{stamp}-{n}"))
        };
        match std::fs::create_dir(&dir) {
            Ok(()) => return Ok(dir),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
    Err(std::io::Error::other(
        "too many report folders with the same name and second",
    ))
}
