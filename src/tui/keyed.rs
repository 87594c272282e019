//! The checks panel's detail line for the idempotency and rate limiter checks: the counts
//! a reader watches while the run goes (sends and effects; admissions, refusals and the
//! fault policy seen so far).

use crate::check::CheckResult;

fn count(c: &CheckResult, name: &str) -> u64 {
    c.counts.get(name).copied().unwrap_or(0)
}

/// The detail line of check `c` when it is `idempotency` or `ratelimit`.
pub fn detail(c: &CheckResult) -> Option<String> {
    match c.name.as_str() {
        "idempotency" => Some(format!(
            "keys {} · sends {} (acked {}, unknown {}) · duplicate effects {} · lost {}",
            count(c, "keys"),
            count(c, "sends"),
            count(c, "acknowledged"),
            count(c, "info"),
            count(c, "duplicate-effect"),
            count(c, "lost-effect"),
        )),
        "ratelimit" => {
            let policy = [
                ("policy_fail_open", "fail-open"),
                ("policy_fail_closed", "fail-closed"),
                ("policy_held", "held"),
            ]
            .iter()
            .filter(|(k, _)| count(c, k) > 0)
            .map(|(_, name)| *name)
            .collect::<Vec<_>>()
            .join("/");
            Some(format!(
                "admitted {} · refused {} · max {} per window (limit {}) · over {} · under faults {}",
                count(c, "admitted"),
                count(c, "refused"),
                count(c, "max_admitted_per_window"),
                count(c, "limit"),
                count(c, "over-admitted"),
                if policy.is_empty() {
                    "-"
                } else {
                    policy.as_str()
                },
            ))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::Verdict;

    #[test]
    fn the_limiter_line_names_the_observed_policy() {
        let c = CheckResult {
            name: "ratelimit".into(),
            verdict: Verdict::Fail,
            reason: String::new(),
            evidence: vec![],
            counts: [
                ("admitted", 9),
                ("refused", 4),
                ("policy_fail_open", 1),
                ("limit", 3),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect(),
        };
        let line = detail(&c).unwrap_or_default();
        assert!(line.starts_with("admitted 9 · refused 4"), "{line}");
        assert!(line.ends_with("under faults fail-open"), "{line}");
        assert_eq!(
            detail(&CheckResult {
                name: "cron".into(),
                ..c
            }),
            None
        );
    }
}
