//! One run, end to end: plan → target → engine + recorder → stop protocol → reports → exit code.
//!
//! The stop protocol: at the planned end, or on an interrupt, sending stops; requests in flight
//! get the plan's grace period, then they are abandoned (counted as unfinished); arrivals that
//! came due but never started are counted as dropped; the report is always written.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use tokio_util::sync::CancellationToken;

use crate::engine::client::Endpoint;
use crate::engine::{Engine, PhaseCounts};
use crate::exit::Exit;
use crate::history::Event;
use crate::live::{Control, Interrupts, Monitor, Snapshot};
use crate::metrics::{Recorder, thresholds};
use crate::report::model::{
    FaultWindow, PhaseInfo, Resources, ScenarioInfo, StopInfo, StopReason, Summary, TargetInfo,
};
use crate::scenario::plan::{Load, Phase, Plan, TargetKind};
use crate::scenario::{self, ScenarioErrors};

mod journal;

/// How long the pre-flight connection to the target may take.
const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

/// What the user asked for on the command line.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Scenario file.
    pub scenario: PathBuf,
    /// Replaces the scenario's target with this URL.
    pub target_url: Option<String>,
    /// Replaces the scenario's target with this Worker directory.
    pub worker: Option<PathBuf>,
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
}

impl RunError {
    /// The exit code for this error.
    pub fn exit(&self) -> Exit {
        match self {
            RunError::Scenario(_) | RunError::Usage(_) => Exit::Usage,
            RunError::Environment(_) => Exit::Environment,
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
        if scenario::worker_config(dir).is_none() {
            return Err(RunError::Usage(format!(
                "--worker \"{}\": no wrangler.toml, wrangler.jsonc or wrangler.json there: give a Worker's directory",
                dir.display()
            )));
        }
        plan.target.kind = TargetKind::Worker(dir.clone());
    }
    if opts.no_faults {
        plan.faults.clear();
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
    let started_wall = SystemTime::now();
    let report_dir = create_report_dir(&opts.out, &plan.name, started_wall).map_err(|e| {
        RunError::Environment(format!(
            "cannot create the report folder under \"{}\": {e}",
            opts.out.display()
        ))
    })?;
    // Starting a Worker can take seconds: an interrupt meanwhile ends the run at once.
    let starting =
        crate::target::start(&plan.target, &plan.kv, &report_dir, plan.seed, plan.speedup);
    let target = match or_interrupted(&interrupts, starting).await {
        Some(Ok(t)) => t,
        failed => {
            let url = match &plan.target.kind {
                TargetKind::Url(u) => plan.redactor.redact(u.as_str()).into_owned(),
                TargetKind::Worker(d) => d.display().to_string(),
                TargetKind::Builtin => String::new(),
            };
            let kind = crate::target::kind_name(&plan.target.kind);
            let (reason, detail) = match failed {
                Some(Err(e)) => (StopReason::TargetUnreachable, e),
                _ => (
                    StopReason::Interrupted,
                    "interrupted while the target was starting".to_owned(),
                ),
            };
            return nothing_sent_report(
                &plan,
                report_dir,
                &url,
                kind,
                started_wall,
                reason,
                detail,
            );
        }
    };
    let start_warnings = match kv_binding_check(&plan, &target, &opts.scenario) {
        Ok(w) => w,
        Err(e) => {
            if let Some(note) = target.shutdown().await {
                eprintln!("warning: {note}");
            }
            return Err(RunError::Usage(e));
        }
    };
    let target_url = plan.redactor.redact(target.url.as_str()).into_owned();
    let threads = opts
        .threads
        .or_else(|| std::thread::available_parallelism().ok().map(usize::from))
        .unwrap_or(1)
        .clamp(1, plan.max_concurrency());

    let reachable = async {
        let ep = Endpoint::resolve(&target.url, plan.target.ca_file.as_deref())
            .await
            .map_err(|e| e.to_string())?;
        ep.probe(PROBE_TIMEOUT).await.map(|()| ep)
    };
    let endpoint = match or_interrupted(&interrupts, reachable).await {
        Some(Ok(ep)) => ep,
        failed => {
            let (reason, detail) = match failed {
                Some(Err(e)) => (StopReason::TargetUnreachable, e),
                _ => (
                    StopReason::Interrupted,
                    "interrupted before load started".to_owned(),
                ),
            };
            let kind = target.kind;
            if let Some(note) = target.shutdown().await {
                eprintln!("warning: {note}");
            }
            return nothing_sent_report(
                &plan,
                report_dir,
                &target_url,
                kind,
                started_wall,
                reason,
                detail,
            );
        }
    };

    let names = plan.requests.iter().map(|r| r.name.clone()).collect();
    let csv = std::fs::File::create(report_dir.join("timeseries.csv")).map_err(|e| {
        RunError::Environment(format!(
            "cannot write {}: {e}",
            report_dir.join("timeseries.csv").display()
        ))
    })?;
    let mut recorder = Recorder::new(names, threads, Some(Box::new(std::io::BufWriter::new(csv))))
        .map_err(|e| RunError::Environment(format!("cannot write timeseries.csv: {e}")))?;
    let hlog_path = report_dir.join(crate::report::hlog::HLOG_FILE);
    let hlog = std::fs::File::create(&hlog_path)
        .map_err(|e| RunError::Environment(format!("cannot write {}: {e}", hlog_path.display())))?;
    let mut journal = journal::Journal::create(&report_dir.join("history.jsonl"))
        .map_err(|e| RunError::Environment(format!("cannot write history.jsonl: {e}")))?;

    let driver_endpoint = endpoint.clone();
    let mut engine = Engine::start(&plan, endpoint, threads, &recorder)
        .map_err(|e| RunError::Environment(e.to_string()))?;
    let start = engine.start_instant();
    let started_ms = wall_ms();
    // The interval log's headers carry the engine's start (a few ms ahead) as wall-clock time.
    let start_wall = SystemTime::now() + start.saturating_duration_since(Instant::now());
    if let Ok(hlog) =
        crate::report::hlog::HlogWriter::new(std::io::BufWriter::new(hlog), start_wall)
    {
        recorder.set_interval_sink(Box::new(hlog));
    }
    let planned_end = engine.planned_end();
    let total_s = planned_end.as_secs_f64();
    journal.record(
        Duration::ZERO,
        Event::RunStarted {
            scenario: plan.name.clone(),
            seed: plan.seed,
        },
    );

    let mut ticker = tokio::time::interval_at(
        (start + Duration::from_secs(1)).into(),
        Duration::from_secs(1),
    );
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_tick = start;
    let mut stopped_at: Option<(Duration, StopReason)> = None;
    let mut drain_deadline: Option<Instant> = None;
    let mut abandoned = false;
    let mut phase_seen: Option<usize> = None;
    let end_at = start + planned_end;
    let has_abort = plan.thresholds.iter().any(|t| t.abort);
    // Drivers (cron ticks, lock clients, queue producers and consumers, status probes) report
    // operations through this.
    let (history_tx, mut history_rx) = tokio::sync::mpsc::unbounded_channel();
    let drivers_stop = CancellationToken::new();
    // A scenario that starts its day at a given time starts it with the load, not with the
    // Worker (which took seconds to start, minutes or hours on a fast clock).
    if let (Some(at), Some(kv)) = (plan.kv.start_of_day, target.mock_kv()) {
        kv.clock().set_ms(crate::target::today_at(at));
    }
    let crons = cron_exprs(&plan, &target);
    let cron_task = start_cron(
        &plan,
        &target,
        &crons,
        start,
        history_tx.clone(),
        drivers_stop.clone(),
        planned_end,
    );
    let mut drivers = crate::driver::Drivers::start(
        &plan,
        crate::driver::Ctx {
            endpoint: driver_endpoint,
            history: history_tx,
            run_start: start,
            redactor: plan.redactor.clone(),
            seed: plan.seed,
        },
    );
    // The heal phase: the fault-free end of the run, before the final reads.
    let heal = if plan.heals() {
        // Only crons that kvchaos fires (or the scenario names) set the heal's minimum.
        let fired = if plan.cron.fire || plan.cron.schedules.is_some() {
            crons.as_slice()
        } else {
            &[]
        };
        plan.heal_duration(fired)
    } else {
        Duration::ZERO
    };
    let heal_at = planned_end.saturating_sub(heal);
    let queue_prefix = drivers.queue_prefix();
    let mut heal_started = heal.is_zero();
    let mut abort_detail: Option<String> = None;
    let finished = engine.finished();
    tokio::pin!(finished);
    let mut timeline = crate::timeline::Timeline::new(&plan.faults);
    let mut healed = false;
    let mut controls = monitor.controls();
    let detailed = monitor.detailed();

    loop {
        if stopped_at.is_some() && !healed {
            healed = true;
            if let Some(kv) = target.mock_kv() {
                let events = timeline.clear_all(Instant::now() - start, kv);
                journal.record_all(events);
            }
        }
        let next_fault = timeline
            .next_at()
            .filter(|_| stopped_at.is_none() && !heal_started);
        tokio::select! {
            _ = tokio::time::sleep_until((start + heal_at).into()), if !heal_started && stopped_at.is_none() => {
                heal_started = true;
                let at = Instant::now() - start;
                journal.record(at, Event::HealStarted);
                if let Some(kv) = target.mock_kv() {
                    let events = timeline.clear_all(at, kv);
                    journal.record_all(events);
                }
                drivers.heal();
            }
            _ = async { match next_fault { Some(at) => tokio::time::sleep_until((start + at).into()).await, None => std::future::pending().await } } => {
                if let Some(kv) = target.mock_kv() {
                    let events = timeline.apply_due(Instant::now() - start, kv);
                    journal.record_all(events);
                }
            }
            _ = &mut finished => break,
            Some(control) = async { match controls.as_mut() { Some(rx) => rx.recv().await, None => std::future::pending().await } } => {
                let now = Instant::now();
                let at = now - start;
                match control {
                    Control::Pause if stopped_at.is_none() => {
                        if engine.pause(now) {
                            journal.record(at, Event::Paused);
                        }
                    }
                    Control::Resume => {
                        if let Some(skipped) = engine.resume(now, &mut recorder) {
                            journal.record(at, Event::Resumed { skipped });
                        }
                    }
                    Control::SetFault { spec, label } if stopped_at.is_none() => {
                        if let Some(kv) = target.mock_kv() {
                            let events = timeline.set_manual(at, spec, label, kv);
                            journal.record_all(events);
                        }
                    }
                    Control::ClearFault { index } => {
                        if let Some(kv) = target.mock_kv() {
                            let events = timeline.clear_one(index, at, kv);
                            journal.record_all(events);
                        }
                    }
                    // Sending stopped: the heal phase starts from a healthy KV and no new load.
                    Control::Pause | Control::SetFault { .. } => {}
                }
            }
            Some((t, event)) = history_rx.recv() => {
                journal.record(t, event);
            }
            _ = ticker.tick() => {
                let now = Instant::now();
                let progress = engine.progress(now);
                if progress.phase.is_some() && progress.phase != phase_seen {
                    phase_seen = progress.phase;
                    if let Some(i) = progress.phase {
                        journal.record(now - start, Event::PhaseStarted { index: i, name: plan.phases[i].name.clone() });
                    }
                }
                let live = recorder.tick(
                    (now - start).as_secs_f64(),
                    (now - last_tick).as_secs_f64(),
                    crate::resources::rss_kib(),
                );
                last_tick = now;
                let mut snap = Snapshot {
                    scenario: plan.name.clone(),
                    target: format!("{} {target_url}", target.kind),
                    phases: plan.phases.iter().map(crate::live::phase_label).collect(),
                    total_s,
                    live,
                    progress,
                    stopped: stopped_at.map(|(_, r)| stop_word(r).to_owned()),
                    faults: journal.windows().to_vec(),
                    active: timeline.active(now - start),
                    ..Snapshot::default()
                };
                if detailed {
                    snap.requests = recorder.requests_live();
                    snap.checks = judge(&plan, journal.judged(), worker_clock(&target, started_ms), queue_prefix.as_deref());
                    snap.last_cron_ok_s = journal.judged().iter().rev().find_map(|(t, e)| match e {
                        Event::Op { process, op: crate::history::OpKind::Ok, .. } if process == "cron" => Some(t.as_secs_f64()),
                        _ => None,
                    });
                    snap.kv = target.mock_kv().map(|kv| {
                        crate::live::KvSummary::from_stats(&kv.stats(), &kv.config().account_id, kv.config().limits)
                    });
                }
                monitor.tick(&snap);
                if stopped_at.is_none() && let Some(why) = target.died() {
                    // A dead Worker answers nothing: stop, judge nothing as PASS, exit 3.
                    let at = (now - start).min(planned_end);
                    engine.stop_sending();
                    drivers_stop.cancel();
                    stopped_at = Some((at, StopReason::TargetFailed));
                    abort_detail = Some(format!("{why} at {:.1}s; see worker.log", at.as_secs_f64()));
                    drain_deadline = Some(now);
                    journal.record(at, Event::SendingStopped { reason: "target failed".to_owned() });
                }
                if stopped_at.is_none() && has_abort {
                    let (per, all) = recorder.totals();
                    let sending = (now - start).min(planned_end);
                    if let Some(t) = thresholds::first_abort(&plan.thresholds, &per, &all, sending.as_secs_f64()) {
                        engine.stop_sending();
                        drivers_stop.cancel();
                        stopped_at = Some((sending, StopReason::Aborted));
                        abort_detail = Some(format!(
                            "abort threshold failed after {:.0}s: {} {} (observed {})",
                            sending.as_secs_f64(),
                            t.scope,
                            t.expr,
                            crate::report::observed_text(t.observed, &t.unit),
                        ));
                        drain_deadline = Some(now + plan.grace);
                        journal.record(sending, Event::SendingStopped { reason: "aborted".to_owned() });
                    }
                }
            }
            _ = tokio::time::sleep_until(end_at.into()), if stopped_at.is_none() => {
                stopped_at = Some((planned_end, StopReason::Completed));
                drivers_stop.cancel();
                drain_deadline = Some(Instant::now() + plan.grace);
                journal.record(planned_end, Event::SendingStopped { reason: "completed".to_owned() });
            }
            _ = interrupts.stop.cancelled(), if stopped_at.is_none() => {
                let now = Instant::now();
                engine.stop_sending();
                drivers_stop.cancel();
                let at = now.saturating_duration_since(start).min(planned_end);
                stopped_at = Some((at, StopReason::Interrupted));
                drain_deadline = Some(now + plan.grace);
                journal.record(at, Event::SendingStopped { reason: "interrupted".to_owned() });
            }
            _ = async { match drain_deadline { Some(d) => tokio::time::sleep_until(d.into()).await, None => std::future::pending().await } }, if !abandoned => {
                abandoned = true;
                engine.abort_in_flight();
                journal.record(Instant::now() - start, Event::InFlightAbandoned);
            }
            _ = interrupts.abort.cancelled(), if !abandoned => {
                abandoned = true;
                engine.abort_in_flight();
                if stopped_at.is_none() {
                    let at = Instant::now().saturating_duration_since(start).min(planned_end);
                    stopped_at = Some((at, StopReason::Interrupted));
                }
                journal.record(Instant::now() - start, Event::InFlightAbandoned);
            }
        }
    }
    // The engine can finish at the planned end before the end-of-plan branch runs: heal here.
    if !healed && let Some(kv) = target.mock_kv() {
        let at = stopped_at.map_or(planned_end, |(t, _)| t);
        let events = timeline.clear_all(at, kv);
        journal.record_all(events);
    }
    drivers_stop.cancel();
    if let Some(task) = cron_task {
        let _ = task.await;
    }
    let (stop_at, reason) = stopped_at.unwrap_or((planned_end, StopReason::Completed));
    // An interrupted run ends at once; others read the final state of locks and tasks.
    drivers
        .finish(
            plan.grace,
            !matches!(reason, StopReason::Interrupted | StopReason::TargetFailed),
        )
        .await;
    while let Ok((t, event)) = history_rx.try_recv() {
        journal.record(t, event);
    }
    let ended = Instant::now();
    let (counts, unfinished) = engine.settle(stop_at, &mut recorder);
    recorder.tick(
        (ended - start).as_secs_f64(),
        (ended - last_tick).as_secs_f64(),
        crate::resources::rss_kib(),
    );
    journal.record(ended - start, Event::RunEnded);
    let journal::Written {
        history: history_result,
        judged,
        windows,
    } = journal.finish();
    let (per, all, mut errors) = recorder.finish();

    let sending_s = stop_at.as_secs_f64();
    let threshold_results = thresholds::evaluate(&plan.thresholds, &per, &all, sending_s);
    for e in &mut errors {
        e.message = plan.redactor.redact(&e.message).into_owned();
    }
    let requests = plan
        .requests
        .iter()
        .zip(&per)
        .map(|(r, t)| t.stats(r.method.as_str(), r.path.source(), sending_s))
        .collect();
    let summary = Summary {
        schema_version: crate::report::model::SCHEMA_VERSION,
        kvchaos_version: env!("CARGO_PKG_VERSION").to_owned(),
        scenario: scenario_info(&plan),
        target: TargetInfo {
            kind: target.kind.to_owned(),
            url: target_url,
        },
        started_at: humantime::format_rfc3339_millis(started_wall).to_string(),
        ended_at: humantime::format_rfc3339_millis(SystemTime::now()).to_string(),
        duration_s: (ended - start).as_secs_f64(),
        planned_duration_s: planned_end.as_secs_f64(),
        stop: StopInfo {
            reason,
            detail: match reason {
                StopReason::Interrupted => {
                    Some(format!("interrupted after {:.1}s", stop_at.as_secs_f64()))
                }
                StopReason::Aborted | StopReason::TargetFailed => abort_detail,
                StopReason::Completed | StopReason::TargetUnreachable => None,
            },
            unfinished,
        },
        phases: phase_infos(&plan, &counts),
        overall: all.stats("", "", sending_s),
        requests,
        thresholds: threshold_results,
        errors,
        resources: Resources {
            peak_rss_kib: crate::resources::peak_rss_kib(),
            cpu_s: crate::resources::cpu_seconds(),
            engine_threads: engine.threads() as u64,
        },
        checks: judge(
            &plan,
            &judged,
            worker_clock(&target, started_ms),
            queue_prefix.as_deref(),
        ),
        warnings: Vec::new(),
        faults: windows,
    };
    let mut summary = summary;
    summary.warnings = start_warnings;
    summary
        .warnings
        .extend(weigh_faults(&summary.faults, &mut summary.checks));
    if reason == StopReason::TargetFailed {
        let why = summary.stop.detail.clone().unwrap_or_default();
        for c in summary
            .checks
            .iter_mut()
            .filter(|c| c.verdict == crate::check::Verdict::Pass)
        {
            c.verdict = crate::check::Verdict::Unknown;
            c.reason = format!("the target died ({why}); before that: {}", c.reason);
        }
    }
    drop(engine);
    if let Some(kv) = target.mock_kv() {
        write_json(&report_dir.join("mockkv.json"), &kv.stats())?;
    }
    if let Some(note) = target.shutdown().await {
        eprintln!("warning: {note}");
    }
    crate::report::write_all(&report_dir, &summary)
        .map_err(|e| RunError::Environment(format!("cannot write the report: {e}")))?;
    history_result
        .map_err(|e| RunError::Environment(format!("cannot write history.jsonl: {e}")))?;
    let checks_hold = summary.checks.iter().all(|c| match c.verdict {
        crate::check::Verdict::Pass => true,
        crate::check::Verdict::Fail => false,
        crate::check::Verdict::Unknown => !opts.strict,
    }) && (summary.warnings.is_empty() || !opts.strict);
    let exit = match reason {
        StopReason::Interrupted => Exit::Interrupted,
        StopReason::TargetUnreachable | StopReason::TargetFailed => Exit::Environment,
        StopReason::Aborted => Exit::Fail,
        StopReason::Completed if checks_hold && summary.thresholds.iter().all(|t| t.passed) => {
            Exit::Pass
        }
        StopReason::Completed => Exit::Fail,
    };
    Ok(RunOutcome {
        exit,
        report_dir,
        summary,
    })
}

/// Starts firing the local Worker's crons on the run clock, if the target is a Worker and the
/// plan wants it. Expressions come from the scenario's `[cron] schedules` or the Worker's config.
fn start_cron(
    plan: &Plan,
    target: &crate::target::Running,
    exprs: &[String],
    run_start: Instant,
    history: tokio::sync::mpsc::UnboundedSender<(Duration, Event)>,
    stop: CancellationToken,
    planned_end: Duration,
) -> Option<tokio::task::JoinHandle<()>> {
    let (worker, kv) = (target.worker()?, target.mock_kv()?);
    if !plan.cron.fire {
        return None;
    }
    let crons: Vec<_> = exprs
        .iter()
        .filter_map(|e| match crate::cron::parse(e) {
            Ok(c) => Some((e.clone(), c)),
            Err(msg) => {
                eprintln!("warning: the Worker's {msg}; it is not fired");
                None
            }
        })
        .collect();
    let clock = crate::cron::RunClock {
        start: Instant::now(),
        start_ms: kv.clock().now_ms(),
        speedup: plan.speedup,
    };
    let span_ms = (planned_end.as_secs_f64() * plan.speedup * 1000.0) as u64;
    let ticks = crate::cron::ticks(
        &crons,
        clock.start_ms,
        clock.start_ms + span_ms,
        MAX_CRON_TICKS,
    );
    Some(tokio::spawn(crate::cron::drive(
        worker, ticks, clock, run_start, history, stop,
    )))
}

/// The cron expressions of the run: the scenario's `[cron] schedules`, else a local Worker's
/// own `triggers.crons`.
fn cron_exprs(plan: &Plan, target: &crate::target::Running) -> Vec<String> {
    match (&plan.cron.schedules, target.worker()) {
        (Some(s), _) => s.clone(),
        (None, Some(w)) => w.ready().crons.clone(),
        (None, None) => Vec::new(),
    }
}

/// The Worker's clock (`Date.now()` in workerd is real time, whatever the run clock's speed),
/// for a local Worker; a deployed Worker's clock is not known.
fn worker_clock(
    target: &crate::target::Running,
    started_ms: u64,
) -> Option<crate::check::WorkerClock> {
    target.worker().map(|_| crate::check::WorkerClock {
        start_ms: started_ms,
        speedup: 1.0,
        tolerance_ms: WORKER_CLOCK_TOLERANCE_MS,
    })
}

/// How far a local Worker's clock may be from kvchaos's (same machine: timer coarsening only).
const WORKER_CLOCK_TOLERANCE_MS: u64 = 1_000;

fn wall_ms() -> u64 {
    SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis() as u64
}

/// Most cron ticks one run fires (a day of every-minute ticks is 1,440).
const MAX_CRON_TICKS: usize = 100_000;

/// The word for a stop reason in the live view.
fn stop_word(r: StopReason) -> &'static str {
    match r {
        StopReason::Completed => "completed",
        StopReason::Interrupted => "interrupted",
        StopReason::Aborted => "aborted",
        StopReason::TargetUnreachable => "target unreachable",
        StopReason::TargetFailed => "target failed",
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

/// Faults that reached no KV operation tested nothing: each is a warning, and every verdict
/// says so in its reason (the checks judge the whole run, so every window is theirs).
fn weigh_faults(windows: &[FaultWindow], checks: &mut [crate::check::CheckResult]) -> Vec<String> {
    let idle: Vec<String> = windows
        .iter()
        .filter(|w| w.kv_ops == Some(0))
        .map(|w| {
            format!(
                "fault #{} ({}), set at {:.1}s",
                w.index + 1,
                w.label,
                w.set_at_s
            )
        })
        .collect();
    if idle.is_empty() {
        return Vec::new();
    }
    let list = idle.join("; ");
    for c in checks.iter_mut() {
        c.reason = format!(
            "{} (but the fault reached no KV operation: {list})",
            c.reason
        );
    }
    idle.iter()
        .map(|f| {
            format!(
                "{f} reached no KV operation: the run did not test what it meant to; check its ops, prefix and namespace against the Worker's KV calls"
            )
        })
        .collect()
}

/// The checks that apply: cron when ticks were fired or its status probed, lock and queue when
/// the scenario drives them.
pub fn judge(
    plan: &Plan,
    events: &[(Duration, Event)],
    clock: Option<crate::check::WorkerClock>,
    queue_prefix: Option<&str>,
) -> Vec<crate::check::CheckResult> {
    use crate::check::{cron, lock, queue};
    let view = crate::check::HistoryView::new(events);
    let cron_ran = events.iter().any(|(_, e)| {
        matches!(e, Event::Op { process, .. } if process == "cron" || process == "cron-status")
    });
    let mut out = Vec::new();
    if cron_ran {
        let cfg = cron::CronConfig {
            max_gap_ms: plan.cron.max_gap.map(|d| d.as_millis() as u64),
        };
        out.push(cron::check(&view, &cfg));
    }
    if let Some(l) = &plan.lock {
        let cfg = lock::LockConfig {
            max_starve: l.max_starve,
            tolerance_ms: l.tolerance.as_millis() as u64,
            clock,
        };
        out.push(lock::check(&view, &cfg));
    }
    if let Some(q) = &plan.queue {
        let cfg = queue::QueueConfig {
            mode: q.mode,
            max_drain: q.max_drain,
            tolerance_ms: WORKER_CLOCK_TOLERANCE_MS,
            max_stall: q.max_stall,
            ours: queue_prefix.map(str::to_owned),
        };
        out.push(queue::check(&view, &cfg));
    }
    out
}

fn scenario_info(plan: &Plan) -> ScenarioInfo {
    ScenarioInfo {
        name: plan.name.clone(),
        description: plan.description.clone(),
        file: plan.source.display().to_string(),
        seed: plan.seed,
    }
}

fn phase_infos(plan: &Plan, counts: &[PhaseCounts]) -> Vec<PhaseInfo> {
    plan.phases
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let c = counts.get(i).cloned().unwrap_or_default();
            let (kind, rate_from, rate_to, vus, mif) = match p.load {
                Load::Rate {
                    from,
                    to,
                    max_in_flight,
                } => (
                    if from == to { "rate" } else { "ramp" },
                    Some(from),
                    Some(to),
                    None,
                    Some(max_in_flight as u64),
                ),
                Load::Vus(n) => ("vus", None, None, Some(n as u64), None),
                Load::Pause => ("pause", None, None, None, None),
            };
            PhaseInfo {
                name: p.name.clone(),
                kind: kind.to_owned(),
                duration_s: p.duration.as_secs_f64(),
                rate_from,
                rate_to,
                vus,
                max_in_flight: mif,
                sent: c.sent,
                dropped: c.dropped,
            }
        })
        .collect()
}

/// `fut`, unless an interrupt comes first (`None`).
async fn or_interrupted<T>(interrupts: &Interrupts, fut: impl Future<Output = T>) -> Option<T> {
    tokio::select! {
        v = fut => Some(v),
        _ = interrupts.stop.cancelled() => None,
        _ = interrupts.abort.cancelled() => None,
    }
}

/// The report of a run that ended before any load: the target could not be reached (exit 3) or
/// the run was interrupted while it started (exit 130).
fn nothing_sent_report(
    plan: &Plan,
    report_dir: PathBuf,
    target_url: &str,
    kind: &str,
    started: SystemTime,
    reason: StopReason,
    detail: String,
) -> Result<RunOutcome, RunError> {
    let recorder = Recorder::new(
        plan.requests.iter().map(|r| r.name.clone()).collect(),
        1,
        None,
    )
    .map_err(|e| RunError::Environment(e.to_string()))?;
    let (per, all, _) = recorder.finish();
    let summary = Summary {
        schema_version: crate::report::model::SCHEMA_VERSION,
        kvchaos_version: env!("CARGO_PKG_VERSION").to_owned(),
        scenario: scenario_info(plan),
        target: TargetInfo {
            kind: kind.to_owned(),
            url: target_url.to_owned(),
        },
        started_at: humantime::format_rfc3339_millis(started).to_string(),
        ended_at: humantime::format_rfc3339_millis(SystemTime::now()).to_string(),
        duration_s: 0.0,
        planned_duration_s: plan.duration().as_secs_f64(),
        stop: StopInfo {
            reason,
            detail: Some(plan.redactor.redact(&detail).into_owned()),
            unfinished: 0,
        },
        phases: phase_infos(plan, &[]),
        overall: all.stats("", "", 0.0),
        requests: plan
            .requests
            .iter()
            .zip(&per)
            .map(|(r, t)| t.stats(r.method.as_str(), r.path.source(), 0.0))
            .collect(),
        thresholds: thresholds::evaluate(&plan.thresholds, &per, &all, 0.0),
        errors: Vec::new(),
        resources: Resources {
            peak_rss_kib: crate::resources::peak_rss_kib(),
            cpu_s: crate::resources::cpu_seconds(),
            engine_threads: 0,
        },
        faults: Vec::new(),
        checks: Vec::new(),
        warnings: Vec::new(),
    };
    crate::report::write_all(&report_dir, &summary)
        .map_err(|e| RunError::Environment(format!("cannot write the report: {e}")))?;
    let exit = match reason {
        StopReason::Interrupted => Exit::Interrupted,
        _ => Exit::Environment,
    };
    Ok(RunOutcome {
        exit,
        report_dir,
        summary,
    })
}

fn write_json(path: &Path, value: &impl serde::Serialize) -> Result<(), RunError> {
    let text = serde_json::to_string_pretty(value)
        .map_err(|e| RunError::Environment(format!("cannot write {}: {e}", path.display())))?;
    std::fs::write(path, text)
        .map_err(|e| RunError::Environment(format!("cannot write {}: {e}", path.display())))
}

/// Creates `<out>/<name>-<UTC timestamp>` (with a numeric suffix if it exists already).
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fault_that_reached_no_kv_operation_is_a_warning_on_every_verdict() {
        let window = |index: u64, kv_ops: Option<u64>| FaultWindow {
            index,
            label: "daily-limit put".to_owned(),
            set_at_s: 6.0,
            cleared_at_s: Some(16.0),
            kv_ops,
        };
        let result = |name: &str| crate::check::CheckResult {
            name: name.to_owned(),
            verdict: crate::check::Verdict::Pass,
            reason: "fine".to_owned(),
            evidence: Vec::new(),
            counts: Default::default(),
        };
        let mut checks = vec![result("cron"), result("lock")];
        assert!(weigh_faults(&[window(0, Some(12)), window(1, None)], &mut checks).is_empty());
        assert_eq!(checks[0].reason, "fine");
        let w = weigh_faults(&[window(0, Some(12)), window(1, Some(0))], &mut checks);
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(w[0].starts_with("fault #2 (daily-limit put)"), "{w:?}");
        for c in &checks {
            assert!(
                c.reason
                    .contains("the fault reached no KV operation: fault #2"),
                "{}",
                c.reason
            );
            assert_eq!(c.verdict, crate::check::Verdict::Pass);
        }
    }

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
