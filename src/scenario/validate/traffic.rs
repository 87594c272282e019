//! Scenarios without `[[requests]]`: valid when something else drives the Worker (its crons
//! fired by `[cron]`, the `[lock]` or `[queue]` drivers); the phases then only set the run's
//! length, so each must be `pause = true`.

use super::*;
use crate::scenario::plan::Load;

impl Validator<'_> {
    /// `[[requests]]`, or none when the scenario has other work to do.
    pub(super) fn requests_or_drivers(&mut self, raw: &ScenarioFile) -> Option<Vec<RequestPlan>> {
        let empty = raw.requests.as_ref().is_none_or(|r| r.get_ref().is_empty());
        if empty && other_work(raw) {
            return Some(Vec::new());
        }
        self.requests(raw.requests.as_ref())
    }

    /// Without requests, a phase that sends load has nothing to send.
    pub(super) fn phases_without_requests(&mut self, raw: &ScenarioFile, phases: &[Phase]) {
        if raw
            .requests
            .as_ref()
            .is_some_and(|r| !r.get_ref().is_empty())
        {
            return;
        }
        let Some(raw_phases) = raw.phases.as_ref() else {
            return;
        };
        for (i, (p, r)) in phases.iter().zip(raw_phases.get_ref()).enumerate() {
            if !matches!(p.load, Load::Pause) {
                self.err(
                    r.span().start,
                    format!("phases[{}]", i + 1),
                    "this phase sends load but the scenario has no [[requests]]: without requests the phases only set how long the crons and drivers run, so write pause = true instead of rate or vus, or add a [[requests]] table",
                );
            }
        }
    }
}

/// Whether the scenario fires crons or runs a driver.
fn other_work(raw: &ScenarioFile) -> bool {
    let crons = raw
        .cron
        .as_ref()
        .is_some_and(|c| c.get_ref().fire != Some(false));
    crons || raw.lock.is_some() || raw.queue.is_some()
}
