//! `audit scan --with-run REPORT_DIR`: the static call sites joined with what the mock KV
//! measured in that run (`mockkv.json`, counted by namespace, operation and key prefix), as
//! operations per 1,000 requests and a free-plan forecast per call site.
//!
//! Owns: the prefix join and the forecast. Does not own: reading report folders
//! (`crate::report::compare::Side`).

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::{AuditError, Finding, estimate};
use crate::mockkv::Op as MockOp;
use crate::report::compare::Side;

/// What a run measured for a call site's binding, operation and key prefix.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Measured {
    /// The mock's prefixes summed.
    pub prefixes: Vec<String>,
    /// Operations (any outcome) of those prefixes per 1,000 completed requests.
    pub per_1000_requests: f64,
    /// At the run's request rate, operations per day.
    pub per_day_at_run_rate: f64,
    /// Requests per day at which these operations alone spend the free daily limit.
    pub free_limit_at_requests_per_day: Option<u64>,
    /// Other call sites sharing this binding, operation and prefix (the measurement is theirs
    /// together).
    pub shared_with: u32,
}

impl Measured {
    /// One line for the terminal.
    pub fn summary(&self) -> String {
        let at = self
            .free_limit_at_requests_per_day
            .map_or("never".to_owned(), |n| format!("{n} requests/day"));
        format!(
            "{:.1} per 1,000 requests under {:?} (~{:.0}/day at the run's rate); free limit spent at {at}{}",
            self.per_1000_requests,
            self.prefixes,
            self.per_day_at_run_rate,
            if self.shared_with > 0 {
                format!("; shared with {} other call sites", self.shared_with)
            } else {
                String::new()
            }
        )
    }
}

fn mock_op(op: &str) -> MockOp {
    match op {
        "put" => MockOp::Put,
        "delete" => MockOp::Delete,
        "list" => MockOp::List,
        _ => MockOp::Get,
    }
}

/// The mock prefixes a static prefix covers: those it is a prefix of, or else the longest
/// one it starts with.
fn covered<'a>(static_prefix: &str, mock: &[&'a str]) -> Vec<&'a str> {
    let longer: Vec<&str> = mock
        .iter()
        .copied()
        .filter(|p| !p.is_empty() && p.starts_with(static_prefix))
        .collect();
    if !longer.is_empty() {
        return longer;
    }
    mock.iter()
        .copied()
        .filter(|p| static_prefix.starts_with(p))
        .max_by_key(|p| p.len())
        .into_iter()
        .collect()
}

/// Adds `measured` to every finding with a known prefix that the run's counts cover.
pub fn join(findings: &mut [Finding], dir: &Path) -> Result<(), AuditError> {
    let side = Side::load(dir).map_err(|e| AuditError::Input {
        path: dir.to_owned(),
        message: format!("{e}"),
    })?;
    let Some(kv) = side.kv.as_ref() else {
        return Err(AuditError::Input {
            path: dir.join("mockkv.json"),
            message: "no mockkv.json: --with-run needs a run against a Worker with the mock KV"
                .into(),
        });
    };
    let done = side.summary.overall.completed.max(1) as f64;
    let rps = side.summary.overall.rps;
    let keys: Vec<(String, String, String)> = findings
        .iter()
        .map(|f| {
            (
                f.bindings.join("|"),
                f.op.clone(),
                f.key_prefix.clone().unwrap_or_default(),
            )
        })
        .collect();
    for (i, f) in findings.iter_mut().enumerate() {
        let (Some(prefix), [binding]) = (&f.key_prefix, f.bindings.as_slice()) else {
            continue;
        };
        let op = mock_op(&f.op);
        let rows: Vec<_> = kv
            .counts
            .iter()
            .filter(|r| &r.namespace == binding && r.op == op)
            .collect();
        let mock: Vec<&str> = rows.iter().map(|r| r.prefix.as_str()).collect();
        let mut prefixes = covered(prefix, &mock);
        prefixes.sort();
        prefixes.dedup();
        if prefixes.is_empty() {
            continue;
        }
        let n: u64 = rows
            .iter()
            .filter(|r| prefixes.contains(&r.prefix.as_str()))
            .map(|r| r.count)
            .sum();
        let per_1000 = n as f64 * 1000.0 / done;
        let per_request = per_1000 / 1000.0;
        let limit = estimate::free_limit(
            super::model::Op::from_name(&f.op).unwrap_or(super::model::Op::Get),
        );
        let shared_with = keys
            .iter()
            .enumerate()
            .filter(|(j, k)| *j != i && *k == &keys[i])
            .count() as u32;
        f.measured = Some(Measured {
            prefixes: prefixes.into_iter().map(str::to_owned).collect(),
            per_1000_requests: per_1000,
            per_day_at_run_rate: per_request * rps * 86_400.0,
            free_limit_at_requests_per_day: (per_request > 0.0)
                .then(|| (limit as f64 / per_request) as u64),
            shared_with,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_cover_longer_or_the_longest_shorter() {
        let mock = ["queue:jobs:", "queue:lease:", "lock:", ""];
        assert_eq!(covered("queue:", &mock), ["queue:jobs:", "queue:lease:"]);
        assert_eq!(covered("lock:orders", &mock), ["lock:"]);
        assert_eq!(covered("config", &mock), [""]);
    }
}
