//! Cron triggers on the run clock: which ticks fall inside a run, and the driver that fires
//! them at the Worker through the launcher, recording each as an operation in the history.
//!
//! The run clock is virtual time `start + elapsed × speedup` (the mock KV runs on the same
//! clock), so `speedup = 60` makes each real second a minute of cron time.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use croner::Cron;
use tokio::sync::mpsc::UnboundedSender;
use tokio_util::sync::CancellationToken;

use crate::history::{Event, OpKind};
use crate::local::{CronOutcome, LocalWorker};

mod failure;

/// Something that runs a Worker's scheduled handler: a local Worker's launcher, or a canary's
/// shim. The answer is the operation's outcome and, when it did not succeed, why.
pub trait FireCron: Send + Sync {
    /// Runs the handler for `cron` at `scheduled_ms`.
    fn fire<'a>(
        &'a self,
        cron: &'a str,
        scheduled_ms: u64,
    ) -> std::pin::Pin<Box<dyn Future<Output = (OpKind, Option<String>)> + Send + 'a>>;
}

impl FireCron for LocalWorker {
    fn fire<'a>(
        &'a self,
        cron: &'a str,
        scheduled_ms: u64,
    ) -> std::pin::Pin<Box<dyn Future<Output = (OpKind, Option<String>)> + Send + 'a>> {
        Box::pin(async move {
            match self.run_cron(cron, scheduled_ms).await {
                Ok(run) if run.outcome == CronOutcome::Ok => (OpKind::Ok, None),
                Ok(run) => (OpKind::Fail, Some(failure::threw(run.exception.as_deref()))),
                Err(e) => (OpKind::Info, Some(e.to_string())),
            }
        })
    }
}

/// One scheduled invocation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tick {
    /// The cron expression, as the Worker's config (or the scenario) writes it.
    pub cron: String,
    /// Its scheduled time on the run clock, ms since the Unix epoch.
    pub scheduled_ms: u64,
}

/// Parses a cron expression the way Cloudflare writes them (5 fields, UTC).
pub fn parse(expr: &str) -> Result<Cron, String> {
    expr.parse::<Cron>()
        .map_err(|e| format!("invalid cron expression \"{expr}\": {e}"))
}

/// The shortest time between two consecutive ticks of any of `crons`, looking a week ahead of
/// the Unix epoch's first Monday; `None` when none ticks.
pub fn shortest_period(crons: &[(String, Cron)]) -> Option<Duration> {
    // 1970-01-05T00:00:00Z, a Monday: any expression ticks within the following weeks.
    const FROM: u64 = 345_600_000;
    crons
        .iter()
        .filter_map(|c| {
            let t = ticks(std::slice::from_ref(c), FROM, FROM + 35 * 86_400_000, 2);
            (t.len() == 2).then(|| Duration::from_millis(t[1].scheduled_ms - t[0].scheduled_ms))
        })
        .min()
}

/// Every tick of `crons` in `(from_ms, to_ms]` on the run clock, in time order (ties in the
/// order of `crons`). Bounded by `max` so a silly expression cannot exhaust memory.
pub fn ticks(crons: &[(String, Cron)], from_ms: u64, to_ms: u64, max: usize) -> Vec<Tick> {
    let mut out = Vec::new();
    let Some(start) = DateTime::<Utc>::from_timestamp_millis(from_ms as i64) else {
        return out;
    };
    for (expr, cron) in crons {
        let mut at = start;
        while out.len() < max {
            let Ok(next) = cron.find_next_occurrence(&at, false) else {
                break;
            };
            let ms = next.timestamp_millis();
            if ms < 0 || ms as u64 > to_ms {
                break;
            }
            out.push(Tick {
                cron: expr.clone(),
                scheduled_ms: ms as u64,
            });
            at = next;
        }
    }
    out.sort_by_key(|t| t.scheduled_ms);
    out.truncate(max);
    out
}

/// The first slot of any of `crons` strictly after `after_ms` (ms since the Unix epoch, UTC);
/// `None` when none ticks again (or the time is out of range).
pub fn next_slot_after(crons: &[(String, Cron)], after_ms: u64) -> Option<u64> {
    let at = DateTime::<Utc>::from_timestamp_millis(i64::try_from(after_ms).ok()?)?;
    crons
        .iter()
        .filter_map(|(_, c)| c.find_next_occurrence(&at, false).ok())
        .filter_map(|t| u64::try_from(t.timestamp_millis()).ok())
        .min()
}

/// The last slot of any of `crons` at or before `at_ms` (ms since the Unix epoch, UTC);
/// `None` when none ticked before.
pub fn previous_slot(crons: &[(String, Cron)], at_ms: u64) -> Option<u64> {
    let at = DateTime::<Utc>::from_timestamp_millis(i64::try_from(at_ms).ok()?)?;
    crons
        .iter()
        .filter_map(|(_, c)| c.find_previous_occurrence(&at, true).ok())
        .filter_map(|t| u64::try_from(t.timestamp_millis()).ok())
        .max()
}

/// How many distinct slot times of `crons` lie strictly between `from_ms` and `to_ms`,
/// counting at most `max` (two expressions ticking at one instant count once).
pub fn slots_between(crons: &[(String, Cron)], from_ms: u64, to_ms: u64, max: usize) -> usize {
    if to_ms <= from_ms + 1 {
        return 0;
    }
    let mut t: Vec<u64> = ticks(
        crons,
        from_ms,
        to_ms - 1,
        max.saturating_mul(crons.len().max(1)),
    )
    .into_iter()
    .map(|t| t.scheduled_ms)
    .collect();
    t.dedup();
    t.len().min(max)
}

/// The run clock: maps real instants to virtual ms and back.
#[derive(Debug, Clone, Copy)]
pub struct RunClock {
    /// Real instant of virtual `start_ms`.
    pub start: Instant,
    /// Virtual ms since the Unix epoch at `start`.
    pub start_ms: u64,
    /// Virtual seconds per real second.
    pub speedup: f64,
}

impl RunClock {
    /// The real instant at which the run clock reads `ms`.
    pub fn instant_of(&self, ms: u64) -> Instant {
        let virt = ms.saturating_sub(self.start_ms) as f64 / 1000.0;
        self.start + Duration::from_secs_f64(virt / self.speedup)
    }
}

/// Fires `ticks` at `worker` on the run clock until they are done or `stop` fires. Each tick
/// is an `invoke` then `ok` (handler returned), `fail` (handler threw) or `info` (no answer from
/// the launcher: indeterminate) operation of process `cron` in the history.
pub async fn drive(
    worker: Arc<dyn FireCron>,
    ticks: Vec<Tick>,
    clock: RunClock,
    run_start: Instant,
    history: UnboundedSender<(Duration, Event)>,
    stop: CancellationToken,
) {
    let timed = ticks
        .into_iter()
        .map(|t| (clock.instant_of(t.scheduled_ms), t))
        .collect();
    drive_at(worker, timed, run_start, history, stop).await;
}

/// Fires each tick at its own real instant (a replayed capture's cron events, whose
/// `scheduled_ms` is the recorded time, not the run clock's), recorded as [`drive`] does.
pub async fn drive_at(
    worker: Arc<dyn FireCron>,
    ticks: Vec<(Instant, Tick)>,
    run_start: Instant,
    history: UnboundedSender<(Duration, Event)>,
    stop: CancellationToken,
) {
    for (due, tick) in ticks {
        tokio::select! {
            _ = tokio::time::sleep_until(due.into()) => {}
            _ = stop.cancelled() => return,
        }
        let value = serde_json::json!({ "cron": tick.cron, "scheduled_ms": tick.scheduled_ms });
        let at = || Instant::now().saturating_duration_since(run_start);
        let _ = history.send((
            at(),
            Event::op("cron", OpKind::Invoke, "tick", value.clone()),
        ));
        let (kind, detail) = tokio::select! {
            r = worker.fire(&tick.cron, tick.scheduled_ms) => r,
            _ = stop.cancelled() => (OpKind::Info, Some("run stopped while the handler ran".to_owned())),
        };
        let mut value = value;
        if let Some(d) = detail {
            value["error"] = serde_json::Value::String(d);
        }
        let _ = history.send((at(), Event::op("cron", kind, "tick", value)));
        if stop.is_cancelled() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn crons(exprs: &[&str]) -> Vec<(String, Cron)> {
        exprs
            .iter()
            .map(|e| ((*e).to_owned(), parse(e).unwrap_or_else(|m| panic!("{m}"))))
            .collect()
    }

    // 2026-11-23T10:00:30Z
    const T0: u64 = 1_795_428_030_000;

    #[test]
    fn every_minute_over_ten_minutes_gives_ten_ticks_on_minute_boundaries() {
        let t = ticks(&crons(&["*/1 * * * *"]), T0, T0 + 600_000, 1000);
        assert_eq!(t.len(), 10);
        assert_eq!(t[0].scheduled_ms, T0 + 30_000);
        assert!(t.iter().all(|x| x.scheduled_ms % 60_000 == 0));
        assert!(
            t.windows(2)
                .all(|w| w[1].scheduled_ms - w[0].scheduled_ms == 60_000)
        );
    }

    #[test]
    fn several_crons_interleave_in_time_order_and_max_bounds_the_list() {
        let t = ticks(
            &crons(&["0 * * * *", "*/30 * * * *"]),
            T0,
            T0 + 3 * 3_600_000,
            1000,
        );
        // Hourly: 3 ticks; every 30 min: 6 ticks.
        assert_eq!(t.len(), 9);
        assert!(t.windows(2).all(|w| w[0].scheduled_ms <= w[1].scheduled_ms));
        assert_eq!(t.iter().filter(|x| x.cron == "0 * * * *").count(), 3);
        assert_eq!(
            ticks(&crons(&["* * * * *"]), T0, T0 + 86_400_000, 50).len(),
            50
        );
    }

    #[test]
    fn next_and_previous_slots_of_every_minute_and_every_five_minutes() {
        let every = crons(&["* * * * *"]);
        let five = crons(&["*/5 * * * *"]);
        // T0 is 10:00:30; on a boundary the next slot is the one after.
        assert_eq!(next_slot_after(&every, T0), Some(T0 + 30_000));
        assert_eq!(next_slot_after(&every, T0 + 30_000), Some(T0 + 90_000));
        assert_eq!(next_slot_after(&five, T0), Some(T0 + 270_000));
        assert_eq!(previous_slot(&five, T0), Some(T0 - 30_000));
        assert_eq!(previous_slot(&five, T0 - 30_000), Some(T0 - 30_000));
        assert_eq!(previous_slot(&every, T0 + 29_999), Some(T0 - 30_000));
        assert_eq!(next_slot_after(&[], T0), None);
        assert_eq!(next_slot_after(&every, u64::MAX), None);
    }

    #[test]
    fn slots_between_are_strict_deduplicated_and_bounded() {
        let every = crons(&["* * * * *"]);
        let start = T0 - 30_000; // 10:00:00
        assert_eq!(slots_between(&every, start, start + 180_000, 100), 2);
        assert_eq!(slots_between(&every, start, start + 60_000, 100), 0);
        assert_eq!(slots_between(&every, start, start, 100), 0);
        let both = crons(&["* * * * *", "*/5 * * * *"]);
        assert_eq!(slots_between(&both, start, start + 600_000, 100), 9);
        assert_eq!(slots_between(&every, start, start + 86_400_000, 10), 10);
    }

    #[test]
    fn bad_expressions_are_named() {
        let e = parse("every minute").err().unwrap_or_default();
        assert!(e.contains("\"every minute\""), "{e}");
    }

    #[test]
    fn the_run_clock_maps_virtual_time_back_to_real_time() {
        let start = Instant::now();
        let c = RunClock {
            start,
            start_ms: T0,
            speedup: 60.0,
        };
        assert_eq!(c.instant_of(T0 + 60_000), start + Duration::from_secs(1));
        assert_eq!(c.instant_of(T0 - 5), start);
    }
}
