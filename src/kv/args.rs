//! The arguments of `kvchaos kv dump|verify|clean|restore` (clap derive).
//!
//! Owns: flag names, defaults and help texts, and the parsing of flag values that have a
//! shape (`REQUESTS/WINDOW`, durations). Does not own: reading the environment (the API token,
//! R2 credentials: see [`super::KvEnv`]) or checking combinations past what clap checks (each
//! command does that when it starts).

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::mockkv::RestRateLimit;

/// The Cloudflare API v4 base URL.
pub const DEFAULT_API_BASE: &str = "https://api.cloudflare.com/client/v4";

/// Exit codes of `kvchaos kv …`.
pub const KV_EXIT_CODES: &str = "\
Exit codes:
  0    done (verify: no difference)
  1    a difference (verify) or a refusal judged (clean gates, --max-ops, the delete budget)
  2    usage or input error (bad flag, unreadable file, unknown namespace, bad token)
  3    target or environment failure (API unreachable, rate limited, R2 failure)";

/// `kvchaos kv …`: dump, verify, clean and restore Workers KV namespaces over the REST API.
#[derive(Debug, Args)]
pub struct KvArgs {
    /// The command.
    #[command(subcommand)]
    pub command: KvCommand,
}

/// One `kvchaos kv` command.
#[derive(Debug, Subcommand)]
pub enum KvCommand {
    /// Dump the keys under a prefix (value, metadata, expiration) to NDJSON, with a manifest.
    #[command(after_help = KV_EXIT_CODES)]
    Dump(DumpArgs),
    /// Compare a dump's keys with a second dump, a SQLite file (a D1 export) or D1.
    #[command(after_help = KV_EXIT_CODES)]
    Verify(VerifyArgs),
    /// Plan (--dry-run) or apply (--apply) the deletion of the keys under a prefix.
    #[command(after_help = KV_EXIT_CODES)]
    Clean(CleanArgs),
    /// Write a dump's pairs back with bulk writes.
    #[command(after_help = KV_EXIT_CODES)]
    Restore(RestoreArgs),
}

/// How the REST API is reached and paced.
#[derive(Debug, Clone, Args)]
pub struct ConnArgs {
    /// API base URL (e.g. a `kvchaos mock-kv` address plus /client/v4). The token comes from
    /// the environment variable CLOUDFLARE_API_TOKEN.
    #[arg(long, value_name = "URL", default_value = DEFAULT_API_BASE)]
    pub api_base: String,
    /// Send at most this many requests per window (Cloudflare allows 1200/5m per user; the
    /// default leaves room for other tools using the same token).
    #[arg(long, value_name = "REQUESTS/WINDOW", default_value = "1100/5m", value_parser = parse_pace)]
    pub pace: RestRateLimit,
    /// On a 429, wait for its Retry-After when it is at most this long; else stop (a dump
    /// keeps its checkpoint and resumes when run again).
    #[arg(long, value_name = "DURATION", default_value = "5m", value_parser = parse_duration)]
    pub max_retry_wait: Duration,
}

/// The namespace a command works on.
#[derive(Debug, Clone, Args)]
pub struct NamespaceArgs {
    /// Cloudflare account id.
    #[arg(long, value_name = "ID")]
    pub account_id: String,
    /// Workers KV namespace id.
    #[arg(long, value_name = "ID")]
    pub namespace_id: String,
}

/// `kvchaos kv dump`.
#[derive(Debug, Clone, Args)]
pub struct DumpArgs {
    /// The namespace.
    #[command(flatten)]
    pub ns: NamespaceArgs,
    /// The API connection.
    #[command(flatten)]
    pub conn: ConnArgs,
    /// Dump only keys starting with this prefix (e.g. master:).
    #[arg(long, default_value = "")]
    pub prefix: String,
    /// Local dump file; its checkpoint (FILE.checkpoint.json) and manifest
    /// (FILE.manifest.json) go beside it. Required unless --to is given.
    #[arg(short = 'o', long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Also upload the dump and its manifest to R2, e.g.
    /// r2://bucket/backups/<prefix>/<timestamp>.ndjson (a trailing / adds that file name).
    #[arg(long, value_name = "R2_URL")]
    pub to: Option<String>,
    /// Refuse (exit 1) when the dump would take more API requests than this.
    #[arg(long, value_name = "N")]
    pub max_ops: Option<u64>,
    /// Who runs the dump, for the manifest (default: the token's id, else "unknown").
    #[arg(long)]
    pub actor: Option<String>,
    /// The prefix holds secrets: encrypt the dump (--recipient), or refuse inside a git work
    /// tree.
    #[arg(long)]
    pub sensitive: bool,
    /// TOML file with `sensitive_prefixes = ["settings:", …]`.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// age recipient (age1…) that sensitive dumps are encrypted to.
    #[arg(long, env = "KVCHAOS_AGE_RECIPIENT", value_name = "AGE_RECIPIENT")]
    pub recipient: Option<String>,
}

/// `kvchaos kv verify`.
#[derive(Debug, Clone, Args)]
pub struct VerifyArgs {
    /// The dump (a file or r2://bucket/key).
    pub dump: String,
    /// What to compare with: a second dump, a SQLite file (with --query), or d1://DATABASE_ID
    /// (with --d1-query and --account-id).
    #[arg(long, value_name = "DUMP|SQLITE|d1://ID")]
    pub against: String,
    /// SQL run on the SQLite file; its one column is the key, e.g.
    /// "SELECT 'clinic:' || id FROM clinics".
    #[arg(long, value_name = "SQL")]
    pub query: Option<String>,
    /// SQL run through the D1 REST API; its one column (or the column named key) is the key.
    #[arg(long, value_name = "SQL")]
    pub d1_query: Option<String>,
    /// Cloudflare account id (for d1://).
    #[arg(long, value_name = "ID")]
    pub account_id: Option<String>,
    /// The API connection (for d1://).
    #[command(flatten)]
    pub conn: ConnArgs,
    /// Group the counts by this many leading key segments (split at `:` or `/`, ids as `{id}`).
    #[arg(long, default_value_t = 1)]
    pub prefix_depth: usize,
    /// Print at most this many differing keys per side and prefix.
    #[arg(long, default_value_t = 20)]
    pub show: usize,
    /// age identity file for encrypted dumps.
    #[arg(long, env = "KVCHAOS_AGE_IDENTITY", value_name = "FILE")]
    pub identity: Option<PathBuf>,
}

/// Where a clean runs: QA first, then production.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Environment {
    /// A QA (staging) namespace.
    Qa,
    /// The production namespace: the same plan must have succeeded in QA first.
    Production,
}

impl Environment {
    /// `qa` or `production`, as on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Environment::Qa => "qa",
            Environment::Production => "production",
        }
    }
}

/// The account's Workers plan, for the daily budgets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PlanKind {
    /// 1,000 deletes and 1,000 writes per day (reset at 00:00 UTC).
    Free,
    /// No daily limit.
    Paid,
}

/// `kvchaos kv clean`.
#[derive(Debug, Clone, Args)]
pub struct CleanArgs {
    /// Cloudflare account id (with --dry-run; --apply reads it from the plan).
    #[arg(long, value_name = "ID")]
    pub account_id: Option<String>,
    /// Workers KV namespace id (with --dry-run; --apply reads it from the plan).
    #[arg(long, value_name = "ID")]
    pub namespace_id: Option<String>,
    /// The API connection.
    #[command(flatten)]
    pub conn: ConnArgs,
    /// Keys starting with this prefix (with --dry-run).
    #[arg(long)]
    pub prefix: Option<String>,
    /// List the keys and write the plan (-o); delete nothing.
    #[arg(long, conflicts_with = "apply", requires = "output")]
    pub dry_run: bool,
    /// The plan file written (with --dry-run).
    #[arg(short = 'o', long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Apply this plan: delete its keys, after the safety gates.
    #[arg(long, value_name = "PLAN", requires_all = ["dump", "environment"])]
    pub apply: Option<PathBuf>,
    /// The verified dump covering the plan's keys (a file or r2://…).
    #[arg(long, value_name = "DUMP")]
    pub dump: Option<String>,
    /// Where this namespace lives.
    #[arg(long, value_enum)]
    pub environment: Option<Environment>,
    /// The account's plan (free: 1,000 deletes per day).
    #[arg(long, value_enum, default_value_t = PlanKind::Free)]
    pub plan: PlanKind,
    /// Deletes of the day left for the Workers themselves: refuse a clean that would leave
    /// fewer (default: 100 on the free plan).
    #[arg(long, value_name = "N")]
    pub reserve_deletes: Option<u64>,
    /// Audit log (JSON lines) read for today's deletes and QA successes, appended to.
    #[arg(long, value_name = "FILE", default_value = "kv-audit.jsonl")]
    pub audit_log: PathBuf,
    /// Who runs the clean, for the audit log (default: the token's id, else "unknown").
    #[arg(long)]
    pub actor: Option<String>,
    /// age identity file, when the dump is encrypted and its manifest does not settle coverage.
    #[arg(long, env = "KVCHAOS_AGE_IDENTITY", value_name = "FILE")]
    pub identity: Option<PathBuf>,
}

/// `kvchaos kv restore`.
#[derive(Debug, Clone, Args)]
pub struct RestoreArgs {
    /// The dump file (or use --from r2://…).
    #[arg(required_unless_present = "from", conflicts_with = "from")]
    pub dump: Option<String>,
    /// The dump in R2, e.g. r2://bucket/backups/master:/2026-12-01T21-00-00Z.ndjson.
    #[arg(long, value_name = "R2_URL")]
    pub from: Option<String>,
    /// The namespace written to.
    #[command(flatten)]
    pub ns: NamespaceArgs,
    /// The API connection.
    #[command(flatten)]
    pub conn: ConnArgs,
    /// Say what would be written; write nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// The account's plan (free: 1,000 writes per day).
    #[arg(long, value_enum, default_value_t = PlanKind::Free)]
    pub plan: PlanKind,
    /// Audit log (JSON lines) read for today's writes, appended to.
    #[arg(long, value_name = "FILE", default_value = "kv-audit.jsonl")]
    pub audit_log: PathBuf,
    /// Who runs the restore, for the audit log.
    #[arg(long)]
    pub actor: Option<String>,
    /// age identity file for encrypted dumps.
    #[arg(long, env = "KVCHAOS_AGE_IDENTITY", value_name = "FILE")]
    pub identity: Option<PathBuf>,
}

fn parse_pace(s: &str) -> Result<RestRateLimit, String> {
    s.parse()
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s).map_err(|e| format!("{e}: expected e.g. 0s, 30s or 5m"))
}

#[derive(Debug, Parser)]
#[command(name = "kvchaos kv")]
struct Standalone {
    #[command(subcommand)]
    command: KvCommand,
}

/// Parse `kvchaos kv` arguments (without `kvchaos kv` itself), as tests and scripts drive it.
pub fn parse(argv: &[&str]) -> Result<KvArgs, clap::Error> {
    Standalone::try_parse_from(std::iter::once("kv").chain(argv.iter().copied()))
        .map(|s| KvArgs { command: s.command })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clap_definitions_are_consistent() {
        use clap::CommandFactory;
        Standalone::command().debug_assert();
    }

    #[test]
    fn apply_needs_a_dump_and_an_environment() {
        let e = parse(&["clean", "--apply", "plan.json"]).unwrap_err();
        assert!(e.to_string().contains("--dump"), "{e}");
        assert!(
            parse(&["clean", "--dry-run"]).is_err(),
            "a dry run needs -o"
        );
        let a = parse(&[
            "dump",
            "--account-id",
            "a",
            "--namespace-id",
            "n",
            "-o",
            "d",
        ])
        .unwrap();
        let KvCommand::Dump(d) = a.command else {
            panic!("a dump")
        };
        assert_eq!(d.conn.pace.requests, 1100);
        assert_eq!(d.conn.api_base, DEFAULT_API_BASE);
    }
}
