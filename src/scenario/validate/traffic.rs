//! Scenarios without `[[requests]]`: valid when something else drives the Worker (its crons
//! fired by `[cron]`, the `[lock]` or `[queue]` drivers); the phases then only set the run's
//! length, so each must be `pause = true`, and there are no `[thresholds]` to judge.

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
        if let Some(t) = raw
            .thresholds
            .as_ref()
            .filter(|t| !t.get_ref().0.is_empty())
        {
            self.err(
                t.span().start,
                "thresholds",
                "thresholds judge the load's latency and errors, but the scenario has no [[requests]]: remove [thresholds] (the cron, lock and queue checks still judge the run), or add a [[requests]] table",
            );
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

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::scenario::parse_str;
    use crate::scenario::plan::Plan;

    fn parse(text: &str) -> Result<Plan, String> {
        parse_str(text, Path::new("t.toml"), &|_| None).map_err(|e| e.to_string())
    }

    const HEAD: &str = "name = \"t\"\n[target]\nbuiltin = true\n";

    #[test]
    fn a_scenario_driven_by_crons_or_drivers_needs_no_requests() {
        let cron = format!("{HEAD}[[phases]]\nduration = \"10m\"\npause = true\n[cron]\n");
        let plan = parse(&cron).expect("valid");
        assert!(plan.requests.is_empty());
        assert_eq!(
            plan.duration().as_secs(),
            600,
            "the phases set the run's length"
        );
        let off =
            format!("{HEAD}[[phases]]\nduration = \"1m\"\npause = true\n[cron]\nfire = false\n");
        let e = parse(&off).expect_err("nothing to do");
        assert!(e.contains("requests: no requests"), "{e}");
        assert!(e.contains("[cron], [lock] or [queue]"), "{e}");
        let loaded = format!("{HEAD}[[phases]]\nduration = \"1m\"\nrate = 5\n[cron]\n");
        let e = parse(&loaded).expect_err("load without requests");
        assert!(e.contains("phases[1]: this phase sends load"), "{e}");
        let judged = format!("{cron}[thresholds]\nall = [\"error_rate < 1%\"]\n");
        let e = parse(&judged).expect_err("thresholds without requests");
        assert!(e.contains("thresholds: thresholds judge the load"), "{e}");
    }

    #[test]
    fn expect_lists_statuses_and_defaults_to_none() {
        let text = format!(
            "{HEAD}[[phases]]\nduration = \"1s\"\nrate = 1\n[[requests]]\nname = \"a\"\npath = \"/\"\nexpect = [200, 404]\n[[requests]]\nname = \"b\"\npath = \"/\"\n"
        );
        let plan = parse(&text).expect("valid");
        assert_eq!(plan.requests[0].expect.as_deref(), Some(&[200, 404][..]));
        assert_eq!(plan.requests[1].expect, None);
        for bad in ["[]", "[600]", "[\"200\"]"] {
            let text = format!(
                "{HEAD}[[phases]]\nduration = \"1s\"\nrate = 1\n[[requests]]\nname = \"a\"\npath = \"/\"\nexpect = {bad}\n"
            );
            let e = parse(&text).expect_err(bad);
            assert!(e.contains("requests[1].expect"), "{bad}: {e}");
        }
    }

    #[test]
    fn kv_group_segments_set_the_grouping_rule() {
        let base = format!(
            "{HEAD}[[phases]]\nduration = \"1s\"\nrate = 1\n[[requests]]\nname = \"a\"\npath = \"/\"\n"
        );
        assert_eq!(parse(&base).expect("valid").kv.group.segments, 1);
        let two = format!("{base}[kv]\ngroup_segments = 2\n");
        assert_eq!(parse(&two).expect("valid").kv.group.segments, 2);
        let e = parse(&format!("{base}[kv]\ngroup_segments = 9\n")).expect_err("too deep");
        assert!(e.contains("kv.group_segments"), "{e}");
    }
}
