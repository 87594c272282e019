//! The audit log: one JSON object per line, appended by every `kvchaos kv clean --apply` and
//! `kvchaos kv restore` (who, when, what, how many, and how it ended), read back for today's
//! deletes and writes (the daily budget) and for a plan's success in QA (the production gate).
//!
//! Owns: the line format ([`AuditEntry`]), appending, and the two questions asked of it.
//! Does not own: the decisions taken from the answers (see [`super::clean`]).

use std::io::Write;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::KvError;
use super::args::Environment;

/// Largest audit log read back.
const MAX_AUDIT_BYTES: u64 = 256 * 1024 * 1024;

/// What was done.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// `kv clean --apply`.
    Clean,
    /// `kv restore`.
    Restore,
}

/// How it ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// Everything done.
    Ok,
    /// Refused by a gate before any change.
    Refused,
    /// Failed part-way (`deleted` / `written` say how far).
    Failed,
}

/// One line of the audit log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// When (RFC 3339, UTC).
    pub at: String,
    /// Who.
    pub actor: String,
    /// What.
    pub action: Action,
    /// QA or production (clean), none for a restore.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment: Option<Environment>,
    /// Account id.
    pub account_id: String,
    /// Namespace id.
    pub namespace_id: String,
    /// The prefix.
    pub prefix: String,
    /// The plan's key hash (clean) or the dump's sha256 (restore).
    pub plan_sha256: String,
    /// Keys in the plan or dump.
    pub keys: u64,
    /// Keys deleted.
    #[serde(default)]
    pub deleted: u64,
    /// Pairs written.
    #[serde(default)]
    pub written: u64,
    /// The dump that backs the change.
    pub dump: String,
    /// How it ended.
    pub outcome: Outcome,
    /// Why, when refused or failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// The audit log file.
#[derive(Debug, Clone)]
pub struct AuditLog<'p> {
    path: &'p Path,
}

impl<'p> AuditLog<'p> {
    /// The log at `path` (it need not exist yet).
    pub fn new(path: &'p Path) -> Self {
        AuditLog { path }
    }

    /// Every entry; a missing file has none. A line that is not an entry is an error that
    /// names it: the budget must not be judged on a log half read.
    pub fn entries(&self) -> Result<Vec<AuditEntry>, KvError> {
        let bytes = match super::store::read_local(self.path, MAX_AUDIT_BYTES) {
            Ok(b) => b,
            Err(super::store::StoreError::Read { source, .. })
                if source.kind() == std::io::ErrorKind::NotFound =>
            {
                return Ok(Vec::new());
            }
            Err(e) => return Err(e.into()),
        };
        let mut out = Vec::new();
        for (i, line) in bytes.split(|b| *b == b'\n').enumerate() {
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            let e: AuditEntry = serde_json::from_slice(line).map_err(|e| {
                KvError::Usage(format!(
                    "{}:{}: not an audit entry ({e}); fix or move the line, the budget is counted from this log",
                    self.path.display(),
                    i + 1
                ))
            })?;
            out.push(e);
        }
        Ok(out)
    }

    /// Append one entry and flush it to disk.
    pub fn append(&self, entry: &AuditEntry) -> Result<(), KvError> {
        let err = |e: std::io::Error| {
            KvError::Environment(format!(
                "cannot append to the audit log '{}': {e}",
                self.path.display()
            ))
        };
        let mut line =
            serde_json::to_vec(entry).map_err(|e| KvError::Environment(e.to_string()))?;
        line.push(b'\n');
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.path)
            .map_err(err)?;
        f.write_all(&line).map_err(err)?;
        f.sync_data().map_err(err)
    }
}

/// Deletes and writes already made today (UTC) on `account`, from entries.
pub fn used_today(entries: &[AuditEntry], account: &str, today: &str) -> (u64, u64) {
    entries
        .iter()
        .filter(|e| e.account_id == account && e.at.starts_with(today))
        .fold((0, 0), |(d, w), e| (d + e.deleted, w + e.written))
}

/// Whether a clean of the plan with this key hash succeeded in QA.
pub fn succeeded_in_qa(entries: &[AuditEntry], plan_sha256: &str) -> bool {
    entries.iter().any(|e| {
        e.action == Action::Clean
            && e.environment == Some(Environment::Qa)
            && e.outcome == Outcome::Ok
            && e.plan_sha256 == plan_sha256
    })
}

/// Today's date (UTC), `YYYY-MM-DD`: the prefix of today's `at` fields.
pub fn today_utc() -> String {
    chrono::Utc::now().format("%Y-%m-%d").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(at: &str, env: Environment, outcome: Outcome, deleted: u64) -> AuditEntry {
        AuditEntry {
            at: at.into(),
            actor: "a".into(),
            action: Action::Clean,
            environment: Some(env),
            account_id: "acc".into(),
            namespace_id: "ns".into(),
            prefix: "master:".into(),
            plan_sha256: "h".into(),
            keys: deleted,
            deleted,
            written: 0,
            dump: "d".into(),
            outcome,
            reason: None,
        }
    }

    #[test]
    fn appends_and_answers_budget_and_qa_questions() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("audit.jsonl");
        let log = AuditLog::new(&p);
        assert!(log.entries().unwrap().is_empty());
        log.append(&entry(
            "2026-12-01T10:00:00Z",
            Environment::Qa,
            Outcome::Failed,
            5,
        ))
        .unwrap();
        log.append(&entry(
            "2026-11-30T10:00:00Z",
            Environment::Qa,
            Outcome::Ok,
            7,
        ))
        .unwrap();
        let e = log.entries().unwrap();
        assert_eq!(used_today(&e, "acc", "2026-12-01"), (5, 0));
        assert_eq!(used_today(&e, "other", "2026-12-01"), (0, 0));
        assert!(succeeded_in_qa(&e, "h"));
        assert!(
            !succeeded_in_qa(&e[..1], "h"),
            "a failed QA run does not count"
        );
        std::fs::write(&p, "not json\n").unwrap();
        let err = log.entries().unwrap_err().to_string();
        assert!(err.contains("audit.jsonl:1: not an audit entry"), "{err}");
    }
}
