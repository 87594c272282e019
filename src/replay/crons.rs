//! Recorded crons (`crons = "recorded"`): a replay phase's scheduled events as cron ticks, each
//! due at its intended run time on the phase's own clock (offset ÷ speed, gaps capped, exactly
//! as the sender paces fetches) and carrying its recorded expression and `scheduledTime`.
//! Firing them belongs to the cron driver (`driver/cron.rs`); this is the pure schedule.

use std::time::Duration;

use super::Reader;
use super::plan::{Pacer, ReplayPlan};
use super::record::Kind;
use crate::cron::Tick;
use crate::scenario::plan::{Load, Plan};

/// Whether any replay phase of `plan` fires its capture's crons instead of synthetic ticks.
pub fn recorded(plan: &Plan) -> bool {
    plan.phases
        .iter()
        .any(|p| matches!(&p.load, Load::Replay(r) if r.recorded_crons))
}

/// Whether the run fires recorded crons: a `crons = "recorded"` phase, a local Worker target
/// and `[cron] fire` left on (other targets count the events only).
pub fn fired(plan: &Plan) -> bool {
    recorded(plan)
        && plan.cron.fire
        && matches!(
            plan.target.kind,
            crate::scenario::plan::TargetKind::Worker(_)
        )
}

/// The recorded cron ticks of every `crons = "recorded"` phase of `plan`, each with its run
/// time (from the engine's start), in time order; at most `max`.
pub fn ticks(plan: &Plan, max: usize) -> Vec<(Duration, Tick)> {
    let mut out = Vec::new();
    let mut offset = Duration::ZERO;
    for p in &plan.phases {
        if let Load::Replay(r) = &p.load {
            if r.recorded_crons {
                phase_ticks(r, offset, p.duration, max, &mut out);
            }
        }
        offset += p.duration;
    }
    out.sort_by_key(|(at, _)| *at);
    out
}

/// One phase's ticks, pass after pass, until the passes or the phase are over. Pass `k` fires
/// the capture's events again with `scheduledTime` moved on by `k` × the capture's recorded
/// length, so a looped capture's scheduled times keep increasing.
fn phase_ticks(
    r: &ReplayPlan,
    start: Duration,
    length: Duration,
    max: usize,
    out: &mut Vec<(Duration, Tick)>,
) {
    let mut base = Duration::ZERO;
    let mut pass = 0u32;
    // The capture's recorded length: the largest `t_ms`, known once pass 0 is read.
    let mut recorded_ms = 0u64;
    while out.len() < max && r.loops.runs(pass) {
        let Ok(mut reader) = Reader::open(&r.path, Some(r.format)) else {
            return;
        };
        let mut pacer = Pacer::new(r.speed, r.max_gap);
        let mut fired = 0usize;
        while let Ok(Some((rec, _))) = reader.next_record() {
            let at = base + pacer.next(rec.t_ms);
            recorded_ms = recorded_ms.max(rec.t_ms);
            if at >= length {
                return;
            }
            let (Kind::Cron, Some(cron), Some(ms)) = (rec.kind, &rec.cron, rec.scheduled_time)
            else {
                continue;
            };
            let shift = u64::from(pass) * recorded_ms.max(1);
            out.push((
                start + at,
                Tick {
                    cron: cron.clone(),
                    scheduled_ms: u64::try_from(ms).unwrap_or(0) + shift,
                },
            ));
            fired += 1;
            if out.len() >= max {
                return;
            }
        }
        if fired == 0 {
            // Further passes would hold no cron event either.
            return;
        }
        pass += 1;
        base += r.pass.max(Duration::from_millis(1));
    }
}
