//! Accounting: what the mock was asked and how it answered.
//!
//! Owns: counts per namespace × operation × key prefix × outcome, puts with
//! and without TTL, bytes written, a bounded journal of recent operations,
//! and the serialisable [`Snapshot`] that reports and the control API read.
//! Does not own: quota counters (see `quota`) or fault rules (see `fault`);
//! the snapshot only copies their views.

use std::collections::{BTreeMap, VecDeque};

use serde::{Deserialize, Serialize};

use super::Op;
use super::fault::{FaultKindName, FaultView};
use super::group::GroupRule;
use super::quota::QuotaRow;

/// Most distinct key prefixes counted per namespace; the rest go to `<other>`.
const MAX_PREFIXES: usize = 10_000;
/// Longest key kept in the journal, in bytes.
const JOURNAL_KEY_BYTES: usize = 128;

/// How one operation ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub enum Outcome {
    /// Done (a get that found the key).
    Ok,
    /// A get or metadata read of a missing key.
    Miss,
    /// Refused by a KV rule (size, TTL, bad request).
    Invalid,
    /// Refused: same key written within a second.
    SameKeyRate,
    /// Refused: the daily quota is used up.
    Quota,
    /// A fault rule decided the answer (latency and stale-reads: the
    /// operation still ran, delayed or on old data).
    Fault(FaultKindName),
}

impl Outcome {
    /// Short name for tables.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Miss => "miss",
            Self::Invalid => "invalid",
            Self::SameKeyRate => "same-key-rate",
            Self::Quota => "quota",
            Self::Fault(k) => k.as_str(),
        }
    }
}

impl From<Outcome> for String {
    fn from(o: Outcome) -> String {
        o.as_str().to_owned()
    }
}

impl TryFrom<String> for Outcome {
    type Error = String;

    fn try_from(s: String) -> Result<Self, String> {
        Ok(match s.as_str() {
            "ok" => Self::Ok,
            "miss" => Self::Miss,
            "invalid" => Self::Invalid,
            "same-key-rate" => Self::SameKeyRate,
            "quota" => Self::Quota,
            other => Self::Fault(
                serde_json::from_value(serde_json::Value::String(other.to_owned()))
                    .map_err(|_| format!("unknown outcome '{other}'"))?,
            ),
        })
    }
}

/// One counter row of a snapshot.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CountRow {
    /// Namespace name.
    pub namespace: String,
    /// Operation type.
    pub op: Op,
    /// Key group (see [`GroupRule::group`]).
    pub prefix: String,
    /// How it ended.
    pub outcome: Outcome,
    /// How many times.
    pub count: u64,
}

/// Write totals of one namespace.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WriteTotals {
    /// Namespace name.
    pub namespace: String,
    /// Successful puts with an expiration.
    pub puts_with_ttl: u64,
    /// Successful puts without one.
    pub puts_without_ttl: u64,
    /// Value bytes written by successful puts.
    pub bytes_written: u64,
}

/// One recent operation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct JournalEntry {
    /// Virtual time, ms since the Unix epoch.
    pub at_ms: u64,
    /// Namespace name.
    pub namespace: String,
    /// Operation type.
    pub op: Op,
    /// The key (or list prefix), cut to 128 bytes.
    pub key: String,
    /// How it ended.
    pub outcome: Outcome,
}

/// Everything the mock counted, for reports and the control API.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    /// Virtual now, ms since the Unix epoch.
    pub now_ms: u64,
    /// Counts, sorted by namespace, op, prefix, outcome.
    pub counts: Vec<CountRow>,
    /// Write totals per namespace.
    pub writes: Vec<WriteTotals>,
    /// Today's quota use per account and operation.
    pub quota: Vec<QuotaRow>,
    /// Active fault rules.
    pub faults: Vec<FaultView>,
    /// The last operations, oldest first.
    pub journal: Vec<JournalEntry>,
}

/// One namespace's counts: key prefix → (op, outcome) → count.
type PrefixCounts = BTreeMap<String, BTreeMap<(Op, Outcome), u64>>;

/// The counters. Not synchronised: the caller holds it behind a mutex.
#[derive(Debug)]
pub struct Stats {
    group: GroupRule,
    journal_len: usize,
    /// Namespace → key prefix → (op, outcome) → count. Nested so that counting an operation
    /// whose namespace and prefix were seen before allocates nothing.
    counts: BTreeMap<String, PrefixCounts>,
    writes: BTreeMap<String, WriteTotals>,
    journal: VecDeque<JournalEntry>,
}

impl Stats {
    /// Empty counters grouping keys by `group`, journal of `journal_len`.
    pub fn new(group: GroupRule, journal_len: usize) -> Self {
        Self {
            group,
            journal_len,
            counts: BTreeMap::new(),
            writes: BTreeMap::new(),
            journal: VecDeque::new(),
        }
    }

    /// Forget everything counted.
    pub fn clear(&mut self) {
        *self = Self::new(self.group, self.journal_len);
    }

    /// Count one operation.
    pub fn record(&mut self, at_ms: u64, ns: &str, op: Op, key: &str, outcome: Outcome) {
        let group = self.group.group(key);
        let prefix: &str = &group;
        if !self.counts.contains_key(ns) {
            self.counts.insert(ns.to_owned(), BTreeMap::new());
        }
        let Some(prefixes) = self.counts.get_mut(ns) else {
            return;
        };
        let by_op = match prefixes.get_mut(prefix) {
            Some(m) => m,
            None => {
                // Bound the table: past MAX_PREFIXES distinct prefixes, new ones share a row.
                let name = if prefixes.len() >= MAX_PREFIXES {
                    "<other>"
                } else {
                    prefix
                };
                prefixes.entry(name.to_owned()).or_default()
            }
        };
        *by_op.entry((op, outcome)).or_default() += 1;
        if self.journal_len > 0 {
            if self.journal.len() >= self.journal_len {
                self.journal.pop_front();
            }
            let mut cut = key.len().min(JOURNAL_KEY_BYTES);
            while !key.is_char_boundary(cut) {
                cut -= 1;
            }
            self.journal.push_back(JournalEntry {
                at_ms,
                namespace: ns.to_owned(),
                op,
                key: key[..cut].to_owned(),
                outcome,
            });
        }
    }

    /// Count a successful put's size and TTL.
    pub fn record_write(&mut self, ns: &str, with_ttl: bool, bytes: usize) {
        let w = self
            .writes
            .entry(ns.to_owned())
            .or_insert_with(|| WriteTotals {
                namespace: ns.to_owned(),
                ..Default::default()
            });
        if with_ttl {
            w.puts_with_ttl += 1;
        } else {
            w.puts_without_ttl += 1;
        }
        w.bytes_written += bytes as u64;
    }

    /// Build a snapshot with the quota and fault views supplied by the caller.
    pub fn snapshot(&self, now_ms: u64, quota: Vec<QuotaRow>, faults: Vec<FaultView>) -> Snapshot {
        Snapshot {
            now_ms,
            counts: {
                let mut rows: Vec<CountRow> = self
                    .counts
                    .iter()
                    .flat_map(|(namespace, prefixes)| {
                        prefixes.iter().flat_map(move |(prefix, by_op)| {
                            by_op.iter().map(move |((op, outcome), count)| CountRow {
                                namespace: namespace.clone(),
                                op: *op,
                                prefix: prefix.clone(),
                                outcome: *outcome,
                                count: *count,
                            })
                        })
                    })
                    .collect();
                // Namespace, operation, prefix, outcome: the order readers have relied on.
                rows.sort_by(|a, b| {
                    (&a.namespace, a.op, &a.prefix, a.outcome).cmp(&(
                        &b.namespace,
                        b.op,
                        &b.prefix,
                        b.outcome,
                    ))
                });
                rows
            },
            writes: self.writes.values().cloned().collect(),
            quota,
            faults,
            journal: self.journal.iter().cloned().collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distinct_prefixes_are_capped_per_namespace_and_the_rest_share_a_row() {
        let mut s = Stats::new(GroupRule::default(), 0);
        for i in 0..MAX_PREFIXES + 5 {
            s.record(0, "N", Op::Put, &format!("p{i}:k"), Outcome::Ok);
        }
        // Known prefixes keep counting in their own row after the cap.
        s.record(0, "N", Op::Get, "p0:k", Outcome::Ok);
        s.record(0, "M", Op::Put, "q:k", Outcome::Ok);
        let snap = s.snapshot(0, Vec::new(), Vec::new());
        let row = |ns: &str, op: Op, prefix: &str| {
            snap.counts
                .iter()
                .find(|r| r.namespace == ns && r.op == op && r.prefix == prefix)
                .map(|r| r.count)
        };
        assert_eq!(row("N", Op::Put, "<other>"), Some(5));
        assert_eq!(row("N", Op::Get, "p0:"), Some(1));
        assert_eq!(row("M", Op::Put, "q:"), Some(1), "the cap is per namespace");
        assert_eq!(snap.counts.len(), MAX_PREFIXES + 1 + 1 + 1);
    }

    #[test]
    fn keys_are_counted_by_their_group() {
        let mut s = Stats::new(GroupRule::default(), 0);
        for user in ["alice", "bob", "0b5e2c1e-7f6a-4f1e-9c3d-2a9f8e7d6c5b"] {
            s.record(0, "N", Op::Put, &format!("token:{user}:s1"), Outcome::Ok);
        }
        let snap = s.snapshot(0, Vec::new(), Vec::new());
        assert_eq!(snap.counts.len(), 1, "{:?}", snap.counts);
        assert_eq!(
            (snap.counts[0].prefix.as_str(), snap.counts[0].count),
            ("token:", 3)
        );
        let mut s = Stats::new(GroupRule { segments: 2 }, 0);
        for id in 0..50 {
            s.record(0, "N", Op::Get, &format!("user:{id}:profile"), Outcome::Ok);
        }
        let snap = s.snapshot(0, Vec::new(), Vec::new());
        assert_eq!(snap.counts.len(), 1);
        assert_eq!(snap.counts[0].prefix, "user:{id}:");
    }

    #[test]
    fn counts_totals_and_bounded_journal() {
        let mut s = Stats::new(GroupRule { segments: 2 }, 3);
        for i in 0..5 {
            s.record(i, "N", Op::Put, &format!("q:{i}"), Outcome::Ok);
        }
        s.record(9, "N", Op::Put, "q:9", Outcome::Quota);
        s.record_write("N", true, 10);
        s.record_write("N", false, 5);
        let snap = s.snapshot(10, Vec::new(), Vec::new());
        assert_eq!(snap.counts.len(), 2);
        assert_eq!(snap.counts[0].count, 5);
        assert_eq!(snap.counts[0].prefix, "q:");
        assert_eq!(snap.journal.len(), 3);
        assert_eq!(snap.journal[2].outcome, Outcome::Quota);
        assert_eq!(snap.writes[0].bytes_written, 15);
        let json = serde_json::to_value(&snap).unwrap();
        assert_eq!(json["counts"][1]["outcome"], "quota");
    }
}
