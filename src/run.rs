//! One run, end to end: the report folder → [`setup`] (target, KV bindings, reachability; a run
//! that ends there is data) → a [`Session`] (the event loop; the pure [`stop`] protocol; one
//! [`journal`] of the history) → [`summary::build`] (one builder) → reports → exit code.
//! Nothing here prints: warnings go back to the command line in [`RunOutcome::notes`].
//!
//! The stop protocol: at the planned end, or on an interrupt, sending stops; requests in flight
//! get the plan's grace period, then they are abandoned (counted as unfinished); arrivals that
//! came due but never started are counted as dropped; the report is always written.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crate::check::Verdict;
use crate::exit::Exit;
use crate::live::{Interrupts, Monitor};
use crate::scenario::plan::{Load, Phase, Plan, TargetKind};
use crate::scenario::{self, ScenarioErrors};
use crate::summary::{StopReason, Summary};
use session::{Finished, Session};
use setup::Setup;

mod journal;
mod session;
mod setup;
mod shard;
mod stop;
mod summary;

/// What the user asked for on the command line.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Scenario file.
    pub scenario: PathBuf,
    /// Replaces the scenario's target with this URL.
    pub target_url: Option<String>,
    /// Replaces the scenario's target with this Worker directory.
    pub worker: Option<PathBuf>,
    /// Replaces the Worker target's wrangler config file (`--config`).
    pub worker_config: Option<PathBuf>,
    /// Replaces the Worker target's `[env.NAME]` (`--env`).
    pub worker_env: Option<String>,
    /// Hosts allowed in addition to the scenario's `allow_hosts`.
    pub allow_hosts: Vec<String>,
    /// Folder in which the report folder is created.
    pub out: PathBuf,
    /// Replaces the scenario's seed.
    pub seed: Option<u64>,
    /// Cuts or extends the run to this length.
    pub duration: Option<Duration>,
    /// Engine threads (default: the CPUs this process may use).
    pub threads: Option<usize>,
    /// An UNKNOWN check verdict fails the run.
    pub strict: bool,
    /// Leave out the scenario's faults (a baseline run).
    pub no_faults: bool,
    /// The share of the load this process sends (`--shard I/N`); the whole run by default.
    pub shard: crate::engine::Shard,
    /// When the schedule starts, shared by every shard (`--start-at`).
    pub start_at: Option<SystemTime>,
}

/// Ways a run fails before producing a report.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The scenario file is invalid.
    #[error("{0}")]
    Scenario(#[from] ScenarioErrors),
    /// A command-line value is invalid.
    #[error("{0}")]
    Usage(String),
    /// The target or the environment failed before any load.
    #[error("{0}")]
    Environment(String),
    /// An error met once the target had started, with what stopping the target reported.
    #[error("{error}")]
    WithNotes {
        /// The error.
        error: Box<RunError>,
        /// Warnings for the command line to print before the error.
        notes: Vec<String>,
    },
}

impl RunError {
    /// The exit code for this error.
    pub fn exit(&self) -> Exit {
        match self {
            RunError::Scenario(_) | RunError::Usage(_) => Exit::Usage,
            RunError::Environment(_) => Exit::Environment,
            RunError::WithNotes { error, .. } => error.exit(),
        }
    }

    /// `error`, with `notes` when there are any.
    pub fn with_notes(error: RunError, notes: Vec<String>) -> RunError {
        if notes.is_empty() {
            error
        } else {
            RunError::WithNotes {
                error: Box::new(error),
                notes,
            }
        }
    }

    /// Warnings for the command line to print before the error.
    pub fn notes(&self) -> &[String] {
        match self {
            RunError::WithNotes { notes, .. } => notes,
            _ => &[],
        }
    }
}

/// A finished run.
#[derive(Debug)]
pub struct RunOutcome {
    /// Exit code to return.
    pub exit: Exit,
    /// The report folder.
    pub report_dir: PathBuf,
    /// What was measured.
    pub summary: Summary,
    /// Warnings for the command line to print (crons not fired, the target's teardown); the
    /// report's own warnings are in the summary.
    pub notes: Vec<String>,
}

/// Loads the scenario file and applies the command-line overrides.
pub fn prepare(opts: &RunOptions) -> Result<Plan, RunError> {
    let plan = scenario::load(&opts.scenario)?;
    apply_overrides(plan, opts)
}

/// Parses scenario text (the built-in default) and applies the command-line overrides.
pub fn prepare_from_text(opts: &RunOptions, text: &str, path: &Path) -> Result<Plan, RunError> {
    let plan = scenario::parse_str(text, path, &|name| std::env::var(name).ok())?;
    apply_overrides(plan, opts)
}

fn apply_overrides(mut plan: Plan, opts: &RunOptions) -> Result<Plan, RunError> {
    if let Some(seed) = opts.seed {
        plan.seed = seed;
    }
    plan.target
        .allow_hosts
        .extend(opts.allow_hosts.iter().cloned());
    if let Some(raw) = &opts.target_url {
        let url = url::Url::parse(raw).map_err(|e| {
            RunError::Usage(format!(
                "--target-url \"{raw}\": {e}: give a full URL, e.g. --target-url http://127.0.0.1:8787"
            ))
        })?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(RunError::Usage(format!(
                "--target-url \"{raw}\": scheme must be http or https"
            )));
        }
        plan.target.kind = TargetKind::Url(url);
    }
    if let Some(dir) = &opts.worker {
        if scenario::worker_config(dir).is_none() && opts.worker_config.is_none() {
            return Err(RunError::Usage(format!(
                "--worker \"{}\": no wrangler.toml, wrangler.jsonc or wrangler.json there: give a Worker's directory",
                dir.display()
            )));
        }
        plan.target.kind = TargetKind::Worker(dir.clone());
    }
    crate::target::choose_config(
        &mut plan.target,
        opts.worker_config.as_deref(),
        opts.worker_env.as_deref(),
    )
    .map_err(RunError::Usage)?;
    if opts.no_faults {
        plan.faults.clear();
    }
    if !opts.shard.is_lead() {
        shard::strip_for_follower(&mut plan);
    }
    if !plan.faults.is_empty() && !matches!(plan.target.kind, TargetKind::Worker(_)) {
        return Err(RunError::Usage(format!(
            "{}: [[faults]] act on kvchaos's mock KV, which only a local Worker target has: use [target] worker = \"path/to/worker\" (or --worker DIR), or remove [[faults]]",
            opts.scenario.display()
        )));
    }
    if let TargetKind::Url(url) = &plan.target.kind {
        scenario::check_target_allowed(url, &plan.target.allow_hosts)
            .map_err(|e| RunError::Usage(format!("{}: {e}", opts.scenario.display())))?;
    }
    if let Some(d) = opts.duration {
        if d.is_zero() {
            return Err(RunError::Usage(
                "--duration must be longer than zero, e.g. --duration 30s".to_owned(),
            ));
        }
        // A heal phase the scenario sized keeps its share of the run.
        let before = plan.duration();
        if let Some(h) = plan.heal.filter(|_| !before.is_zero()) {
            plan.heal = Some(h.mul_f64(d.as_secs_f64() / before.as_secs_f64()));
        }
        plan.phases = fit_phases(&plan.phases, d);
    }
    Ok(plan)
}

/// The phases cut (or the last one extended) so that they last exactly `total`. A ramp that is
/// cut keeps its slope: it ends at the rate it had reached.
pub fn fit_phases(phases: &[Phase], total: Duration) -> Vec<Phase> {
    let mut out = Vec::new();
    let mut left = total;
    for p in phases {
        if left.is_zero() {
            break;
        }
        let mut p = p.clone();
        if p.duration > left {
            if let Load::Rate { from, to, .. } = &mut p.load {
                let f = left.as_secs_f64() / p.duration.as_secs_f64();
                *to = *from + (*to - *from) * f;
            }
            p.duration = left;
        }
        left -= p.duration;
        out.push(p);
    }
    if !left.is_zero() {
        if let Some(last) = out.last_mut() {
            // Extending keeps the last phase's final rate.
            if let Load::Rate { from, to, .. } = &mut last.load
                && from != to
            {
                let extra = Phase {
                    name: last.name.clone(),
                    duration: left,
                    load: Load::Rate {
                        from: *to,
                        to: *to,
                        max_in_flight: last.concurrency(),
                    },
                };
                out.push(extra);
                return out;
            }
            last.duration += left;
        }
    }
    out
}

/// Runs a prepared plan and writes its report into a new folder under `out`.
pub async fn run(
    plan: Plan,
    opts: &RunOptions,
    interrupts: Interrupts,
    monitor: &mut dyn Monitor,
) -> Result<RunOutcome, RunError> {
    let plan = Arc::new(plan);
    let started = SystemTime::now();
    setup::check_open_files(&plan)?;
    let report_dir = setup::report_folder(&opts.out, &plan.name, started)?;
    crate::resources::check_writable(&report_dir).map_err(RunError::Environment)?;
    let mut skew_us = 0;
    let finished = match setup::start(&plan, &opts.scenario, &report_dir, &interrupts).await? {
        Setup::Ready(ready) => {
            let threads = engine_threads(opts, &plan);
            let (placement, skew) = shard::placement(opts);
            skew_us = skew;
            let mut session = Session::start(plan.clone(), ready, &report_dir, threads, placement)?;
            session.drive(&interrupts, monitor).await;
            session.finish(&report_dir).await?
        }
        Setup::Ended(ended) => Finished {
            facts: summary::nothing_sent(&plan, &ended)?,
            history: Ok(()),
            notes: ended.notes,
        },
    };
    let sending_s = finished.facts.sending.as_secs_f64();
    let histograms = crate::merge::histograms::write(
        &report_dir,
        &finished.facts.per,
        &finished.facts.all,
        &finished.facts.windows,
    )
    .map_err(|e| format!("cannot write the histograms: {e}"));
    let mut summary = summary::build(&plan, started, finished.facts);
    summary.shard = shard::info(opts, &plan, skew_us, sending_s);
    if !opts.shard.is_lead() {
        // Shard 0 judges the checks; a follower's would only repeat its drivers' absence.
        summary.checks.clear();
    }
    // A full disk loses files, never the verdict: the summary still goes to stdout, exit 3.
    let mut exit = exit_code(&summary, opts.strict);
    let mut notes = finished.notes;
    let report = histograms.and_then(|()| {
        crate::report::write_all(&report_dir, &summary)
            .map_err(|e| format!("cannot write the report: {e}"))
    });
    let history = finished
        .history
        .map_err(|e| format!("cannot write history.jsonl: {e}"));
    for failed in [report.err(), history.err()].into_iter().flatten() {
        notes.push(format!("{failed} (the summary below is printed instead)"));
        exit = Exit::Environment;
    }
    Ok(RunOutcome {
        exit,
        report_dir,
        summary,
        notes,
    })
}

/// Engine threads: as asked, else the CPUs this process may use; at most one per request the
/// plan may have in flight.
fn engine_threads(opts: &RunOptions, plan: &Plan) -> usize {
    opts.threads
        .or_else(|| std::thread::available_parallelism().ok().map(usize::from))
        .unwrap_or(1)
        .clamp(1, plan.max_concurrency())
}

/// The exit code of a run: how it stopped, then its checks (UNKNOWN and warnings fail a strict
/// run) and thresholds.
pub fn exit_code(summary: &Summary, strict: bool) -> Exit {
    let checks_hold = summary.checks.iter().all(|c| match c.verdict {
        Verdict::Pass => true,
        Verdict::Fail => false,
        Verdict::Unknown => !strict,
    }) && (summary.warnings.is_empty() || !strict);
    match summary.stop.reason {
        StopReason::Interrupted => Exit::Interrupted,
        StopReason::TargetUnreachable | StopReason::TargetFailed => Exit::Environment,
        StopReason::Aborted => Exit::Fail,
        StopReason::Completed if checks_hold && summary.thresholds.iter().all(|t| t.passed) => {
            Exit::Pass
        }
        StopReason::Completed => Exit::Fail,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn phase(secs: u64, load: Load) -> Phase {
        Phase {
            name: None,
            duration: Duration::from_secs(secs),
            load,
        }
    }

    #[test]
    fn fit_cuts_ramps_keeping_their_slope_and_extends_the_last_phase() {
        let ramp = Load::Rate {
            from: 0.0,
            to: 100.0,
            max_in_flight: 4,
        };
        let phases = vec![phase(10, ramp), phase(10, Load::Vus(2))];
        let cut = fit_phases(&phases, Duration::from_secs(5));
        assert_eq!(cut.len(), 1);
        assert_eq!(
            cut[0].load,
            Load::Rate {
                from: 0.0,
                to: 50.0,
                max_in_flight: 4
            }
        );
        let longer = fit_phases(&phases, Duration::from_secs(30));
        assert_eq!(longer.len(), 2);
        assert_eq!(longer[1].duration, Duration::from_secs(20));
        let ramp_last = fit_phases(&phases[..1], Duration::from_secs(12));
        assert_eq!(ramp_last.len(), 2);
        assert_eq!(
            ramp_last[1].load,
            Load::Rate {
                from: 100.0,
                to: 100.0,
                max_in_flight: 4
            }
        );
        assert_eq!(ramp_last[1].duration, Duration::from_secs(2));
    }
}
