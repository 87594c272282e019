//! `kvchaos merge DIR... --out DIR`: the report of a run split over shards (`kvchaos run
//! --shard I/N`), built from the shards' report folders. The shards' HDR histograms are added
//! exactly ([`histograms`]), counters are summed, thresholds are judged again on the merged
//! data (windowed ones on the merged windows), and shard 0's check verdicts and fault windows are carried over (only shard 0 runs
//! faults, crons, drivers and checks). The result is INCOMPLETE — a warning in every report
//! format and exit 1 — when a shard is missing or given twice, or when the shards do not share
//! one identity (scenario, binary and load options).
//!
//! Owns putting shards together; the report writers are `report`'s.

pub mod histograms;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::exit::Exit;
use crate::metrics::windows::WindowTotals;
use crate::metrics::{Totals, new_histogram, thresholds};
use crate::report::model::{ErrorSample, StopReason, Summary};
use crate::report::shards::{MergeInfo, ShardInfo};
use crate::scenario::plan::{Threshold, ThresholdScope, Window};

/// A merged report.
#[derive(Debug)]
pub struct Merged {
    /// The merged summary (as written to `summary.json`).
    pub summary: Summary,
    /// Files written, `summary.json` first.
    pub files: Vec<PathBuf>,
    /// Exit code: 1 when incomplete, else as a run's.
    pub exit: Exit,
}

/// Why nothing could be merged.
#[derive(Debug, thiserror::Error)]
pub enum MergeError {
    /// A shard's report folder could not be read.
    #[error("{0}")]
    Read(String),
    /// The merged report could not be written.
    #[error("cannot write the merged report into {}: {message}", dir.display())]
    Write {
        /// The output folder.
        dir: PathBuf,
        /// What failed.
        message: String,
    },
}

impl MergeError {
    /// Exit code: 2 for unreadable input, 3 for an unwritable output.
    pub fn exit(&self) -> Exit {
        match self {
            MergeError::Read(_) => Exit::Usage,
            MergeError::Write { .. } => Exit::Environment,
        }
    }
}

/// One shard's report folder, read.
struct Part {
    summary: Summary,
    per: Vec<Totals>,
    all: Totals,
    windows: Vec<WindowTotals>,
}

/// Merges the report folders `dirs` into `out` (created if needed).
pub fn merge(dirs: &[PathBuf], out: &Path) -> Result<Merged, MergeError> {
    let parts = dirs
        .iter()
        .map(|d| read_part(d))
        .collect::<Result<Vec<_>, _>>()?;
    let summary = merged_summary(&parts);
    let write_err = |message: String| MergeError::Write {
        dir: out.to_owned(),
        message,
    };
    std::fs::create_dir_all(out).map_err(|e| write_err(e.to_string()))?;
    let (per, all) = add_totals(&parts);
    let windows = add_windows(&parts);
    histograms::write(out, &per, &all, &windows).map_err(|e| write_err(e.to_string()))?;
    let files = crate::report::write_all(out, &summary).map_err(|e| write_err(e.to_string()))?;
    let complete = summary
        .shard
        .as_ref()
        .and_then(|s| s.merged.as_ref())
        .is_some_and(|m| m.complete);
    let exit = if complete {
        crate::run::exit_code(&summary, false)
    } else {
        Exit::Fail
    };
    Ok(Merged {
        summary,
        files,
        exit,
    })
}

fn read_part(dir: &Path) -> Result<Part, MergeError> {
    let summary =
        crate::report::json::read_summary(dir).map_err(|e| MergeError::Read(e.to_string()))?;
    let folder = if dir.is_file() {
        dir.parent().unwrap_or(Path::new("."))
    } else {
        dir
    };
    let (per, all, windows) = histograms::read(folder).map_err(MergeError::Read)?;
    Ok(Part {
        summary,
        per,
        all,
        windows,
    })
}

/// The shard count, the indices present (ascending), and every reason the set is not one
/// whole run. Pure.
fn audit(infos: &[Option<&ShardInfo>], names: &[String]) -> (u64, Vec<u64>, Vec<String>) {
    let mut problems = Vec::new();
    let lead = infos
        .iter()
        .flatten()
        .find(|s| s.index == 0)
        .or(infos.iter().flatten().next());
    let count = lead.map_or(infos.len() as u64, |s| s.count);
    let mut seen = BTreeMap::new();
    for (info, name) in infos.iter().zip(names) {
        let Some(s) = info else {
            problems.push(format!("{name} is not a shard of a split run (no --shard)"));
            continue;
        };
        if let Some(l) = lead {
            if s.count != l.count {
                problems.push(format!(
                    "{name} is shard {}/{}, not one of {}",
                    s.index, s.count, l.count
                ));
                continue;
            }
            if s.identity != l.identity {
                problems.push(format!(
                    "{name} ran a different scenario, binary or configuration (identity {} ≠ {})",
                    short(&s.identity),
                    short(&l.identity)
                ));
            }
        }
        if let Some(first) = seen.insert(s.index, name.clone()) {
            problems.push(format!("shard {} given twice: {first} and {name}", s.index));
        }
    }
    let missing: Vec<String> = (0..count)
        .filter(|i| !seen.contains_key(i))
        .map(|i| i.to_string())
        .collect();
    if !missing.is_empty() {
        problems.push(format!("shard {} of {count} missing", missing.join(", ")));
    }
    (count, seen.into_keys().collect(), problems)
}

fn short(id: &str) -> &str {
    id.get(..12).unwrap_or(id)
}

/// Per request (by name, in the lead's order) and all, added over every part.
fn add_totals(parts: &[Part]) -> (Vec<Totals>, Totals) {
    add_sets(parts.iter().map(|p| (&p.per[..], &p.all)))
}

/// Each window's totals added over the parts that measured it; its length is the longest
/// (every shard runs the same timeline). A window no part has is absent: its thresholds have
/// no data.
fn add_windows(parts: &[Part]) -> Vec<WindowTotals> {
    Window::ALL
        .into_iter()
        .filter_map(|w| {
            let of: Vec<&WindowTotals> = parts
                .iter()
                .filter_map(|p| p.windows.iter().find(|x| x.window == w))
                .collect();
            if of.is_empty() {
                return None;
            }
            let (per, all) = add_sets(of.iter().map(|x| (&x.per[..], &x.all)));
            Some(WindowTotals {
                window: w,
                per,
                all,
                duration_s: of.iter().map(|x| x.duration_s).fold(0.0, f64::max),
            })
        })
        .collect()
}

/// Per request (by name, first seen first) and all, added over `sets`.
fn add_sets<'a>(sets: impl Iterator<Item = (&'a [Totals], &'a Totals)>) -> (Vec<Totals>, Totals) {
    let mut per: Vec<Totals> = Vec::new();
    let mut all = empty("all");
    for (part_per, part_all) in sets {
        for t in part_per {
            let slot = match per.iter().position(|p| p.name == t.name) {
                Some(i) => i,
                None => {
                    per.push(empty(&t.name));
                    per.len() - 1
                }
            };
            add(&mut per[slot], t);
        }
        add(&mut all, part_all);
    }
    (per, all)
}

fn empty(name: &str) -> Totals {
    Totals {
        name: name.to_owned(),
        corrected: new_histogram(),
        service: new_histogram(),
        by_class: Default::default(),
        bytes: 0,
        dropped: 0,
    }
}

fn add(to: &mut Totals, t: &Totals) {
    // Same bounds on both sides (the reader re-bases), so adding loses nothing.
    let _ = to.corrected.add(&t.corrected);
    let _ = to.service.add(&t.service);
    for (a, b) in to.by_class.iter_mut().zip(t.by_class) {
        *a += b;
    }
    to.bytes += t.bytes;
    to.dropped += t.dropped;
}

/// The merged summary: the lead shard's (shard 0, else the first) with every measured figure
/// replaced by the sum over the shards and the thresholds judged again.
fn merged_summary(parts: &[Part]) -> Summary {
    let infos: Vec<Option<&ShardInfo>> = parts.iter().map(|p| p.summary.shard.as_ref()).collect();
    let names: Vec<String> = parts
        .iter()
        .zip(&infos)
        .map(|(p, i)| match i {
            Some(s) => format!("shard {}/{} ({})", s.index, s.count, p.summary.started_at),
            None => format!("a run started {}", p.summary.started_at),
        })
        .collect();
    let (count, shards, problems) = audit(&infos, &names);
    let lead_at = infos.iter().position(|i| i.is_some_and(|s| s.index == 0));
    let base = &parts[lead_at.unwrap_or(0)].summary;
    let mut s = base.clone();
    let sending_s = parts
        .iter()
        .map(|p| {
            p.summary
                .shard
                .as_ref()
                .map_or(p.summary.duration_s, |i| i.sending_s)
        })
        .fold(0.0, f64::max);
    let (per, all) = add_totals(parts);
    s.overall = all.stats("", "", sending_s);
    s.requests = per
        .iter()
        .map(|t| {
            let (method, path) = base
                .requests
                .iter()
                .find(|r| r.name == t.name)
                .map_or(("", ""), |r| (r.method.as_str(), r.path.as_str()));
            t.stats(method, path, sending_s)
        })
        .collect();
    let windows = add_windows(parts);
    s.thresholds = thresholds::evaluate(&rebuilt_thresholds(base), &per, &all, sending_s, &windows);
    merge_phases(&mut s, parts);
    s.errors = merge_errors(parts);
    merge_times(&mut s, parts);
    if lead_at.is_none() {
        // Without shard 0 there are no verdicts to carry: nothing was judged.
        s.checks.clear();
        s.faults.clear();
    }
    let complete = problems.is_empty();
    s.warnings
        .extend(problems.iter().map(|p| format!("INCOMPLETE merge: {p}")));
    let max_skew = infos
        .iter()
        .flatten()
        .map(|i| i.start_skew_us.unsigned_abs())
        .max()
        .unwrap_or(0);
    s.shard = Some(ShardInfo {
        index: 0,
        count,
        identity: base
            .shard
            .as_ref()
            .map(|i| i.identity.clone())
            .unwrap_or_default(),
        start_at: base.shard.as_ref().and_then(|i| i.start_at.clone()),
        start_skew_us: max_skew as i64,
        sending_s,
        merged: Some(MergeInfo {
            shards,
            complete,
            problems,
            max_start_skew_us: max_skew,
        }),
    });
    s
}

/// The lead's thresholds as a plan, from their recorded expressions.
fn rebuilt_thresholds(base: &Summary) -> Vec<Threshold> {
    base.thresholds
        .iter()
        .filter_map(|t| {
            let e = crate::scenario::threshold::parse(&t.expr).ok()?;
            Some(Threshold {
                scope: if t.scope == "all" {
                    ThresholdScope::All
                } else {
                    ThresholdScope::Request(t.scope.clone())
                },
                metric: e.metric,
                op: e.op,
                limit: t.limit,
                expr: t.expr.clone(),
                abort: t.abort,
                during: match &t.during {
                    None => None,
                    Some(w) => Some(Window::from_name(w)?),
                },
            })
        })
        .collect()
}

fn merge_phases(s: &mut Summary, parts: &[Part]) {
    for (i, phase) in s.phases.iter_mut().enumerate() {
        let (sent, dropped) = parts
            .iter()
            .filter_map(|p| p.summary.phases.get(i))
            .fold((0, 0), |(a, b), q| (a + q.sent, b + q.dropped));
        phase.sent = sent;
        phase.dropped = dropped;
    }
}

fn merge_errors(parts: &[Part]) -> Vec<ErrorSample> {
    let mut out: Vec<ErrorSample> = Vec::new();
    for e in parts.iter().flat_map(|p| &p.summary.errors) {
        match out
            .iter_mut()
            .find(|o| o.request == e.request && o.class == e.class && o.message == e.message)
        {
            Some(o) => o.count += e.count,
            None => out.push(e.clone()),
        }
    }
    out.sort_by_key(|e| std::cmp::Reverse(e.count));
    out
}

/// Wall-clock span, the generators' resources, and the worst stop among the shards.
fn merge_times(s: &mut Summary, parts: &[Part]) {
    let sums = parts.iter().map(|p| &p.summary);
    s.started_at = sums
        .clone()
        .map(|p| p.started_at.clone())
        .min()
        .unwrap_or_default();
    s.ended_at = sums
        .clone()
        .map(|p| p.ended_at.clone())
        .max()
        .unwrap_or_default();
    s.duration_s = sums.clone().map(|p| p.duration_s).fold(0.0, f64::max);
    s.resources.cpu_s = sums.clone().map(|p| p.resources.cpu_s).sum();
    s.resources.peak_rss_kib = sums
        .clone()
        .map(|p| p.resources.peak_rss_kib)
        .max()
        .unwrap_or(0);
    s.resources.engine_threads = sums.clone().map(|p| p.resources.engine_threads).sum();
    s.stop.unfinished = sums.clone().map(|p| p.stop.unfinished).sum();
    if let Some(worse) = sums
        .clone()
        .find(|p| p.stop.reason != StopReason::Completed)
    {
        s.stop.reason = worse.stop.reason;
        s.stop.detail = worse.stop.detail.clone();
    }
}

#[cfg(test)]
mod tests;
