//! The `kvchaos audit` command line: `scan`, `check`, `scenario` (clap derive), each turned
//! into a call of the audit library and an exit code. Errors are printed once, here.
//!
//! Exit codes: 0 ok; 1 regression (`check`); 2 usage or input error (no config, unreadable
//! baseline or run folder, a file that cannot be written).

use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};

use super::format::Format;
use super::{AuditError, Report, ScanOptions, baseline};
use crate::exit::Exit;

const AUDIT_HELP: &str =
    "Exit codes:\n  0    ok\n  1    regression (audit check)\n  2    usage or input error";

/// `kvchaos audit`.
#[derive(Debug, Args)]
#[command(after_help = AUDIT_HELP)]
pub struct AuditArgs {
    #[command(subcommand)]
    command: AuditCommand,
}

#[derive(Debug, Subcommand)]
enum AuditCommand {
    /// Inventory every KV call: binding, op, key prefix, TTL, handler, category, ops/day.
    #[command(after_help = AUDIT_HELP)]
    Scan(ScanArgs),
    /// Fail (exit 1) on regressions against a baseline written by `scan --format json -o`.
    #[command(after_help = AUDIT_HELP)]
    Check(CheckArgs),
    /// Write a starting scenario whose faults target the control-plane (category A) prefixes.
    #[command(after_help = AUDIT_HELP)]
    Scenario(ScenarioArgs),
}

/// What every audit subcommand scans.
#[derive(Debug, Args)]
struct Common {
    /// Repository root.
    #[arg(long, value_name = "DIR", default_value = ".")]
    root: PathBuf,
    /// Audit one Worker: its wrangler.toml / wrangler.jsonc (default: every one under the root).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Count the crons of [env.NAME] (bindings of every environment resolve either way).
    #[arg(long, value_name = "NAME")]
    env: Option<String>,
    /// Iterations assumed for a loop around a call site in the ops/day estimate.
    #[arg(long, value_name = "N", default_value_t = 10)]
    loop_factor: u32,
}

impl Common {
    fn options(&self) -> ScanOptions {
        ScanOptions {
            root: self.root.clone(),
            config: self.config.clone(),
            env: self.env.clone(),
            loop_factor: self.loop_factor,
        }
    }
}

#[derive(Debug, Args)]
struct ScanArgs {
    #[command(flatten)]
    common: Common,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
    /// Write to FILE instead of stdout.
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    output: Option<PathBuf>,
    /// Join with a run's measured KV operations (its report folder, with mockkv.json).
    #[arg(long, value_name = "REPORT_DIR")]
    with_run: Option<PathBuf>,
}

#[derive(Debug, Args)]
struct CheckArgs {
    #[command(flatten)]
    common: Common,
    /// The baseline (what `audit scan --format json -o FILE` wrote).
    #[arg(long, value_name = "FILE")]
    baseline: PathBuf,
    /// Fail when KV call sites grow by more than N.
    #[arg(long, value_name = "N")]
    allow_total_increase: Option<u64>,
    /// Fail when KV puts grow by more than N.
    #[arg(long, value_name = "N")]
    allow_puts_increase: Option<u64>,
    /// Remove stale baseline entries (call sites no longer found) from the baseline file.
    #[arg(long)]
    prune: bool,
}

#[derive(Debug, Args)]
struct ScenarioArgs {
    #[command(flatten)]
    common: Common,
    /// Write to FILE instead of stdout (the Worker path in it is relative to FILE).
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    output: Option<PathBuf>,
}

/// Runs `kvchaos audit …`.
pub fn run(args: AuditArgs) -> Exit {
    let result = match args.command {
        AuditCommand::Scan(a) => scan(&a),
        AuditCommand::Check(a) => check(&a),
        AuditCommand::Scenario(a) => scenario(&a),
    };
    match result {
        Ok(exit) => exit,
        Err(e) => {
            eprintln!("error: {e}");
            Exit::Usage
        }
    }
}

fn write_out(path: Option<&Path>, text: &str) -> Result<(), AuditError> {
    match path {
        Some(p) => {
            std::fs::write(p, text).map_err(|source| AuditError::Write {
                path: p.to_owned(),
                source,
            })?;
            eprintln!("wrote {}", p.display());
        }
        None => print!("{text}"),
    }
    Ok(())
}

fn scan_report(common: &Common) -> Result<Report, AuditError> {
    let r = super::scan(&common.options())?;
    for n in &r.notes {
        eprintln!("note: {}:{}: {}", n.file, n.line, n.message);
    }
    Ok(r)
}

fn scan(a: &ScanArgs) -> Result<Exit, AuditError> {
    let mut r = scan_report(&a.common)?;
    if let Some(dir) = &a.with_run {
        super::join::join(&mut r.findings, dir)?;
    }
    write_out(a.output.as_deref(), &super::format::render(&r, a.format))?;
    Ok(Exit::Pass)
}

fn check(a: &CheckArgs) -> Result<Exit, AuditError> {
    let base = baseline::load(&a.baseline)?;
    let current = scan_report(&a.common)?;
    let gates = baseline::Gates {
        allow_total_increase: a.allow_total_increase,
        allow_puts_increase: a.allow_puts_increase,
    };
    let result = baseline::check(&base, &current, gates);
    print!("{}", baseline::render(&result));
    if a.prune && !result.stale.is_empty() {
        let pruned = baseline::prune(&base, &result.stale);
        write_out(Some(&a.baseline), &super::format::json(&pruned))?;
        eprintln!("pruned {} stale entries", result.stale.len());
    }
    Ok(if result.passed() {
        Exit::Pass
    } else {
        Exit::Fail
    })
}

fn scenario(a: &ScenarioArgs) -> Result<Exit, AuditError> {
    let r = scan_report(&a.common)?;
    // The Worker with the most control-plane call sites is the target (the first one on a tie).
    let a_sites = |name: &str| {
        r.findings
            .iter()
            .filter(|f| f.worker == name && f.category == super::classify::Category::A)
            .count()
    };
    let (config, name) = r
        .workers
        .iter()
        .rev()
        .max_by_key(|(_, name)| a_sites(name))
        .map(|(c, n)| (c.clone(), n.clone()))
        .unwrap_or_default();
    let worker_dir = a.common.root.join(&config);
    let worker_dir = worker_dir.parent().unwrap_or(&a.common.root);
    let base = a
        .output
        .as_deref()
        .and_then(Path::parent)
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let worker = relative(base, worker_dir);
    write_out(
        a.output.as_deref(),
        &super::scenario::render(&r, &name, &worker),
    )?;
    Ok(Exit::Pass)
}

/// `to` relative to directory `from` (both made absolute), `/`-separated.
pub fn relative(from: &Path, to: &Path) -> String {
    let abs = |p: &Path| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
    let (from, to) = (abs(from), abs(to));
    let f: Vec<_> = from.components().collect();
    let t: Vec<_> = to.components().collect();
    let common = f.iter().zip(&t).take_while(|(a, b)| a == b).count();
    let mut parts: Vec<String> = vec!["..".into(); f.len() - common];
    parts.extend(
        t[common..]
            .iter()
            .map(|c| c.as_os_str().to_string_lossy().into_owned()),
    );
    if parts.is_empty() {
        ".".into()
    } else {
        parts.join("/")
    }
}
