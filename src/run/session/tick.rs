//! The recorder's tick: the live snapshot for the display, and the stops a tick finds (the
//! target died, the history cannot be written, an abort threshold failed).

use std::time::Instant;

use super::super::stop::Input;
use super::Session;
use crate::history::{Event, OpKind};
use crate::live::{Monitor, Snapshot};
use crate::metrics::thresholds;
use crate::summary::StopReason;

impl Session {
    /// The recorder's tick: a snapshot for the display, then the stops a tick can find (the
    /// target died, an abort threshold failed).
    pub(super) fn on_tick(&mut self, monitor: &mut dyn Monitor, detailed: bool) {
        let now = Instant::now();
        let progress = self.engine.progress(now);
        if progress.phase.is_some() && progress.phase != self.phase_seen {
            self.phase_seen = progress.phase;
            if let Some(i) = progress.phase {
                let name = self.plan.phases[i].name.clone();
                let event = Event::PhaseStarted { index: i, name };
                self.journal.record(now - self.start, event);
            }
        }
        let live = self.recorder.tick(
            (now - self.start).as_secs_f64(),
            (now - self.last_tick).as_secs_f64(),
            crate::resources::rss_kib(),
        );
        self.last_tick = now;
        let mut snap = Snapshot {
            scenario: self.plan.name.clone(),
            target: format!("{} {}", self.target.kind, self.target_url),
            phases: self
                .plan
                .phases
                .iter()
                .map(crate::live::phase_label)
                .collect(),
            total_s: self.engine.planned_end().as_secs_f64(),
            live,
            progress,
            stopped: self.stop.stopped().map(|r| stop_word(r).to_owned()),
            faults: self.journal.windows().to_vec(),
            active: self.timeline.active(now - self.start),
            ..Snapshot::default()
        };
        if detailed {
            self.add_detail(&mut snap);
        }
        monitor.tick(&snap);
        if self.stop.sending()
            // A history that can no longer be written (a full disk) ends the run as a dead target.
            && let Some(input) = self.target.died().map(Input::died).or_else(|| {
                self.journal
                    .write_error()
                    .or_else(|| self.target.write_error())
                    .or_else(|| self.canary.as_ref().and_then(|c| c.failure()))
                    .or_else(|| self.guard_failure())
                    .map(Input::failed)
            })
        {
            self.on_stop(input, now);
        }
        if self.stop.sending()
            && let Some(what) = self.failed_abort(now)
        {
            self.on_stop(Input::AbortThreshold(what), now);
        }
    }

    /// What only the dashboard shows: per-request figures, provisional checks, the mock KV.
    fn add_detail(&mut self, snap: &mut Snapshot) {
        snap.requests = self.recorder.requests_live();
        snap.checks = self.judge(self.journal.judged());
        snap.last_cron_ok_s = self
            .journal
            .judged()
            .iter()
            .rev()
            .find_map(|(t, e)| match e {
                Event::Op {
                    process,
                    op: OpKind::Ok,
                    ..
                } if process == "cron" => Some(t.as_secs_f64()),
                _ => None,
            });
        snap.kv = self.target.mock_kv().map(|kv| {
            crate::live::KvSummary::from_stats(
                &kv.stats(),
                &kv.config().account_id,
                kv.config().limits,
            )
        });
    }

    /// The first abort threshold failing on the totals so far, described.
    fn failed_abort(&self, now: Instant) -> Option<String> {
        if !self.plan.thresholds.iter().any(|t| t.abort) {
            return None;
        }
        let (per, all) = self.recorder.totals();
        let sending = (now - self.start).min(self.engine.planned_end());
        let windows = self.recorder.window_totals(sending);
        let t = thresholds::first_abort(
            &self.plan.thresholds,
            &per,
            &all,
            sending.as_secs_f64(),
            &windows,
        )?;
        Some(format!(
            "{} {} (observed {})",
            t.scope,
            t.label(),
            crate::report::observed_text(t.observed, &t.unit),
        ))
    }
}

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
