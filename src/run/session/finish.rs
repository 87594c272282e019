//! Ending a session: drivers stopped and their final reads, requests settled, the history
//! closed, the checks judged, the mock KV's accounting written, the target stopped.

use std::path::Path;
use std::time::{Instant, SystemTime};

use super::super::RunError;
use super::super::summary::{self, Facts};
use super::{Finished, Session, worker_clock};
use crate::history::Event;
use crate::summary::{StopReason, TargetInfo};

impl Session {
    /// Ends the run: drivers stopped and their final reads, requests settled, the history
    /// closed, the checks judged, the mock KV's accounting written, the target stopped.
    pub async fn finish(self, report_dir: &Path) -> Result<Finished, RunError> {
        let Session {
            plan,
            target,
            target_url,
            mut warnings,
            mut notes,
            engine,
            mut recorder,
            mut journal,
            drivers,
            drivers_stop,
            cron_task,
            mut history_rx,
            start,
            started_ms,
            last_tick,
            stop,
            queue_prefix,
            canary,
            ..
        } = self;
        let ended = stop.ended();
        let stopping = Stopping {
            drivers,
            drivers_stop,
            cron_task,
            canary,
        };
        warnings.extend(stopping.stop(&plan, ended.reason).await);
        while let Ok((t, event)) = history_rx.try_recv() {
            journal.record(t, event);
        }
        let end = Instant::now();
        let (counts, unfinished) = engine.settle(ended.at, &mut recorder);
        warnings.extend(crate::replay::events_note(&plan, engine.replay_events()));
        recorder.tick(
            (end - start).as_secs_f64(),
            (end - last_tick).as_secs_f64(),
            crate::resources::rss_kib(),
        );
        journal.record(end - start, Event::RunEnded);
        let written = journal.finish();
        let windows = recorder.window_totals(ended.at);
        let error_answers = recorder.error_answers();
        let (per, all, errors) = recorder.finish();
        let clock = worker_clock(&target, started_ms);
        let checks = crate::check::judge(&plan, &written.judged, clock, queue_prefix.as_deref());
        let facts = Facts {
            target: TargetInfo {
                kind: target.kind.to_owned(),
                url: target_url,
            },
            ended: SystemTime::now(),
            duration: end - start,
            planned: engine.planned_end(),
            stop: summary::stop_info(ended.clone(), unfinished),
            sending: ended.at,
            per,
            all,
            windows,
            errors,
            error_answers,
            counts,
            resources: summary::resources(engine.threads()),
            checks,
            faults: written.windows,
            warnings,
        };
        drop(engine);
        if let Some(kv) = target.mock_kv() {
            write_mockkv(&report_dir.join("mockkv.json"), kv, &plan.redactor)?;
        }
        notes.extend(target.shutdown().await);
        Ok(Finished {
            facts,
            history: written.history,
            notes,
        })
    }
}

/// What is left running besides the engine when sending has ended.
struct Stopping {
    drivers: crate::driver::Drivers,
    drivers_stop: tokio_util::sync::CancellationToken,
    cron_task: Option<tokio::task::JoinHandle<()>>,
    canary: Option<crate::canary::live::Armed>,
}

impl Stopping {
    /// Stops cron firing and the drivers (with their final reads unless the run was cut short)
    /// and disarms the canary; warnings for the report.
    async fn stop(self, plan: &crate::scenario::plan::Plan, reason: StopReason) -> Vec<String> {
        self.drivers_stop.cancel();
        if let Some(task) = self.cron_task {
            let _ = task.await;
        }
        // An interrupted run ends at once; others read the final state of locks and tasks.
        let final_reads = !matches!(reason, StopReason::Interrupted | StopReason::TargetFailed);
        self.drivers.finish(plan.grace, final_reads).await;
        match self.canary {
            Some(c) => canary_end(c).await,
            None => Vec::new(),
        }
    }
}

/// The mock KV's accounting, masked value by value only when there are secrets (fields keep
/// their order).
fn write_mockkv(
    path: &Path,
    kv: &crate::mockkv::MockKv,
    redactor: &crate::redact::Redactor,
) -> Result<(), RunError> {
    if redactor.is_empty() {
        write_json(path, &kv.stats())
    } else {
        write_json(path, &redactor.redacted(&kv.stats()))
    }
}

/// Reads the shim's last counts and halts it; what the report should say about it.
async fn canary_end(c: crate::canary::live::Armed) -> Vec<String> {
    match c.disarm().await {
        Ok(stats) if stats.capped > 0 => vec![format!(
            "the canary's shim refused {} real KV writes past [canary] max_kv_writes ({} let through)",
            stats.capped, stats.writes
        )],
        Ok(_) => Vec::new(),
        Err(e) => vec![e],
    }
}

fn write_json(path: &Path, value: &impl serde::Serialize) -> Result<(), RunError> {
    let text = serde_json::to_string_pretty(value)
        .map_err(|e| RunError::Environment(format!("cannot write {}: {e}", path.display())))?;
    // Through a rename: a full disk leaves no cut-off JSON.
    crate::report::json::write_atomic(path, text.as_bytes())
        .map_err(|e| RunError::Environment(e.to_string()))
}
