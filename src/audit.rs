//! `kvchaos audit`: a static inventory of a Worker repository's Workers KV calls — each call
//! site resolved to a binding of the wrangler config through scope analysis, classified
//! (A control plane / B high-frequency / C cache), estimated against the free plan, ranked
//! into migration candidates — a JSON baseline and a CI check of regressions against it.
//!
//! Owns: the scan pipeline and its report model. Submodules: [`model`] (parser-independent
//! file model), [`js`] (oxc, the only module that knows it), [`walk`], [`resolve`],
//! [`classify`], [`estimate`], [`baseline`], [`format`] (text, md, json, sarif), [`join`]
//! (`--with-run`), [`scenario`], [`args`] (the CLI). Does not own: wrangler parsing
//! (`crate::wrangler`) or cron arithmetic (`crate::cron`).

pub mod args;
pub mod baseline;
pub mod classify;
pub mod estimate;
pub mod format;
pub mod join;
pub mod js;
pub mod model;
pub mod resolve;
pub mod scenario;
pub mod walk;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use classify::Category;
use estimate::Estimate;
use resolve::{Names, Resolver, Status, Unit};

/// Why an audit could not run (exit 2).
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    /// The root is not a directory.
    #[error("\"{}\": not a directory: give the repository root with --root DIR", .0.display())]
    Root(PathBuf),
    /// No wrangler config anywhere under the root.
    #[error(
        "\"{}\": no wrangler.toml, wrangler.jsonc or wrangler.json under it: give --root a Worker repository or --config FILE",
        .0.display()
    )]
    NoConfig(PathBuf),
    /// A wrangler config could not be read.
    #[error(transparent)]
    Wrangler(#[from] crate::wrangler::WranglerError),
    /// A file (baseline, run report) could not be read or parsed.
    #[error("\"{}\": {message}", path.display())]
    Input {
        /// The file.
        path: PathBuf,
        /// What is wrong and the fix.
        message: String,
    },
    /// An output file could not be written.
    #[error("\"{}\": cannot write: {source}", path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
}

/// What `scan` is asked to do.
#[derive(Debug, Clone)]
pub struct ScanOptions {
    /// Repository root.
    pub root: PathBuf,
    /// One wrangler config to audit (its Worker's files and files no Worker owns).
    pub config: Option<PathBuf>,
    /// The environment whose crons count (bindings of every environment resolve).
    pub env: Option<String>,
    /// Assumed iterations of a loop around a call site.
    pub loop_factor: u32,
}

/// TTL of a put.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Ttl {
    /// `expirationTtl` or `expiration` given.
    Yes,
    /// No options, or options without either.
    No,
    /// Options the audit cannot see into.
    Unknown,
    /// Not a put.
    #[serde(rename = "n/a")]
    NotApplicable,
}

/// One KV call site.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Finding {
    /// Path relative to the root.
    pub file: String,
    /// 1-based line.
    pub line: u32,
    /// 1-based column.
    pub column: u32,
    /// The Worker (its config's `name`, or directory) the file belongs to.
    pub worker: String,
    /// The operation.
    pub op: String,
    /// How sure the binding is.
    pub status: Status,
    /// The binding(s).
    pub bindings: Vec<String>,
    /// Key prefix (or list prefix); `None` when not known statically.
    pub key_prefix: Option<String>,
    /// The key is known exactly (the prefix is the whole key).
    pub key_exact: bool,
    /// TTL of a put.
    pub ttl: Ttl,
    /// Enclosing function.
    pub function: String,
    /// Handlers that reach it (`fetch`, `scheduled`, `queue`, `alarm`, `durable-object:m`, …).
    pub handlers: Vec<String>,
    /// In a loop, in its function or on the way from a handler.
    pub in_loop: bool,
    /// Category.
    pub category: Category,
    /// The rule that decided the category.
    pub rule: String,
    /// The recommended migration target.
    pub target: String,
    /// Operations estimate.
    pub estimate: Estimate,
    /// `receiver.op(key)`, whitespace removed.
    pub call: String,
    /// Stable id: rule, file, normalized call, function (and an occurrence number).
    pub fingerprint: String,
    /// Like the fingerprint without the rule: the same call site across category changes.
    pub site: String,
    /// Measured operations of its prefix in a run (`--with-run`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub measured: Option<join::Measured>,
}

/// A problem with the input that did not stop the scan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Note {
    /// Path relative to the root (empty for the whole scan).
    pub file: String,
    /// 1-based line (0 when none).
    pub line: u32,
    /// What and the fix.
    pub message: String,
}

/// Counts the baseline gates on.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Totals {
    /// Call sites.
    pub total: u64,
    /// By operation.
    pub by_op: BTreeMap<String, u64>,
    /// By category.
    pub by_category: BTreeMap<String, u64>,
    /// Puts without a TTL.
    pub puts_without_ttl: u64,
    /// Resolved / ambiguous / unknown.
    pub by_status: BTreeMap<String, u64>,
}

/// A migration candidate (a binding + key prefix family, ranked).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Candidate {
    /// Rank, from 1.
    pub rank: u32,
    /// Binding.
    pub binding: String,
    /// Key prefix (`*` when unknown).
    pub prefix: String,
    /// Category.
    pub category: Category,
    /// The deciding rule.
    pub rule: String,
    /// Recommended target.
    pub target: String,
    /// Call sites in the family.
    pub sites: u32,
    /// `file:line` of each.
    pub locations: Vec<String>,
    /// Why it ranks where it does.
    pub why: String,
}

/// The result of a scan: what `--format json -o` writes and `check` reads as a baseline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// Format version of this file.
    pub schema_version: u32,
    /// kvchaos version.
    pub kvchaos_version: String,
    /// Workers found: config path → name.
    pub workers: BTreeMap<String, String>,
    /// Files parsed.
    pub files_scanned: u64,
    /// Lines parsed.
    pub lines_scanned: u64,
    /// Call sites, by file and line.
    pub findings: Vec<Finding>,
    /// Counts.
    pub totals: Totals,
    /// Top migration candidates (at most 10).
    pub candidates: Vec<Candidate>,
    /// Files skipped, parse errors, ignore comments without a reason.
    pub notes: Vec<Note>,
    /// Call sites covered by an ignore comment (`file:line`), with the reason.
    pub ignored: Vec<Note>,
}

/// One Worker of the repository.
struct Worker {
    dir: String,
    config: String,
    name: String,
    names: Names,
    ticks: u64,
}

/// Scans a repository.
pub fn scan(opts: &ScanOptions) -> Result<Report, AuditError> {
    if !opts.root.is_dir() {
        return Err(AuditError::Root(opts.root.clone()));
    }
    let walked = walk::walk(&opts.root, &walk::excludes(&opts.root));
    let workers = load_workers(opts, &walked.worker_dirs)?;
    let mut notes: Vec<Note> = walked.notes.iter().map(|m| note("", 0, m)).collect();
    let all = Names {
        kv: workers
            .iter()
            .flat_map(|w| w.names.kv.iter().cloned())
            .collect(),
        other: workers
            .iter()
            .flat_map(|w| w.names.other.iter().cloned())
            .collect(),
    };
    let mut names: Vec<Names> = workers.iter().map(|w| w.names.clone()).collect();
    names.push(all);
    let mut units = Vec::new();
    let mut lines = 0u64;
    for rel in &walked.sources {
        let path = opts.root.join(rel);
        let text = match std::fs::read(&path) {
            Ok(b) => String::from_utf8_lossy(&b).into_owned(),
            Err(e) => {
                notes.push(note(rel, 0, &format!("cannot read: {e}; skipped")));
                continue;
            }
        };
        match js::model_file(Path::new(rel), &text) {
            Ok(model) => {
                let owner = owner(&workers, rel);
                // With --config, files of the other Workers of a monorepo are not audited.
                let foreign = walked
                    .worker_dirs
                    .iter()
                    .any(|d| !d.is_empty() && rel.starts_with(&format!("{d}/")));
                if opts.config.is_some() && owner.is_none() && foreign {
                    continue;
                }
                lines += u64::from(model.lines);
                units.push(Unit {
                    rel: rel.clone(),
                    model,
                    names: owner.unwrap_or(workers.len()),
                });
            }
            Err(e) => notes.push(note(rel, 0, &format!("not parsed ({e}); skipped"))),
        }
    }
    let (findings, ignored) = findings(&units, &names, &workers, opts, &mut notes);
    let totals = totals(&findings);
    let candidates = candidates(&findings);
    Ok(Report {
        schema_version: 1,
        kvchaos_version: env!("CARGO_PKG_VERSION").to_owned(),
        workers: workers
            .iter()
            .map(|w| (w.config.clone(), w.name.clone()))
            .collect(),
        files_scanned: units.len() as u64,
        lines_scanned: lines,
        findings,
        totals,
        candidates,
        notes,
        ignored,
    })
}

fn note(file: &str, line: u32, message: &str) -> Note {
    Note {
        file: file.to_owned(),
        line,
        message: message.to_owned(),
    }
}

/// The innermost Worker directory holding `rel`.
fn owner(workers: &[Worker], rel: &str) -> Option<usize> {
    workers
        .iter()
        .enumerate()
        .filter(|(_, w)| w.dir.is_empty() || rel.starts_with(&format!("{}/", w.dir)))
        .max_by_key(|(_, w)| w.dir.len())
        .map(|(i, _)| i)
}

fn load_workers(opts: &ScanOptions, dirs: &[String]) -> Result<Vec<Worker>, AuditError> {
    let configs: Vec<PathBuf> = match &opts.config {
        Some(c) => vec![c.clone()],
        None => dirs
            .iter()
            .filter_map(|d| crate::wrangler::find(&opts.root.join(d)))
            .collect(),
    };
    if configs.is_empty() {
        return Err(AuditError::NoConfig(opts.root.clone()));
    }
    let mut out = Vec::new();
    for path in configs {
        let cfg = crate::wrangler::WranglerConfig::load(&path)?;
        let envs = cfg.env_names();
        let mut names = Names::default();
        for env in std::iter::once(None).chain(envs.iter().map(|e| Some(e.as_str()))) {
            let b = cfg.resolve(env)?;
            names.kv.extend(b.kv.iter().map(|k| k.binding.clone()));
            names
                .other
                .extend(b.r2.iter().chain(&b.d1).chain(&b.durable_objects).cloned());
            names.other.extend(b.vars.keys().cloned());
        }
        let crons = match &opts.env {
            Some(e) => cfg.resolve(Some(e))?.crons,
            None => cfg.top.crons.clone(),
        };
        let dir = cfg.path.parent().unwrap_or(Path::new(""));
        let dir_rel = rel_to(&opts.root, dir);
        let config = rel_to(&opts.root, &cfg.path);
        let name = cfg.top.name.clone().unwrap_or_else(|| dir_rel.clone());
        out.push(Worker {
            dir: dir_rel,
            config,
            name,
            names,
            ticks: estimate::ticks_per_day(&crons),
        });
    }
    Ok(out)
}

/// `path` relative to `root`, `/`-separated ("" for the root itself).
fn rel_to(root: &Path, path: &Path) -> String {
    let abs = |p: &Path| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
    let (root, path) = (abs(root), abs(path));
    let rel = path.strip_prefix(&root).unwrap_or(&path);
    rel.components()
        .map(|c| c.as_os_str().to_string_lossy())
        .collect::<Vec<_>>()
        .join("/")
}

mod sites;
use sites::{candidates, findings, totals};
