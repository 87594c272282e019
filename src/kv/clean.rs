//! `kvchaos kv clean`: `--dry-run -o plan.json` lists the keys under a prefix and writes a plan
//! (namespace, keys, count, sha256 of the key list) without deleting anything; `--apply
//! plan.json` deletes the plan's keys in bulk deletes of at most 10,000 — after the gates.
//!
//! Owns: the plan format and the gates, in this order (cheap local checks before any request):
//! 1. a dump of the same namespace whose bytes match its manifest, with a verify record that
//!    found no difference, covering the plan's keys;
//! 2. in production, the same plan (its key hash) applied successfully in QA first, according
//!    to the audit log;
//! 3. the day's delete budget (free plan: 1,000 per day, less `--reserve-deletes` left for the
//!    Workers), counted from today's entries in the audit log;
//! 4. the namespace unchanged since the plan (listed again, the key hash compared).
//!
//! Every apply appends an entry to the audit log, refusals included. Does not own: the log's
//! format (see [`super::audit_log`]) or reading dumps (see [`super::verify`]).

use std::collections::BTreeSet;
use std::path::Path;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use super::api::{Client, Namespace};
use super::args::{CleanArgs, Environment, PlanKind};
use super::audit_log::{self, Action, AuditEntry, AuditLog, Outcome};
use super::record::{self, Manifest, VerifyRecord};
use super::store::{self, Location, ObjectStores};
use super::{Console, KvError, secret, verify};

/// Keys per bulk delete (Cloudflare's maximum).
pub const BULK_DELETE_KEYS: usize = 10_000;
/// Deletes (and writes) per day on the free plan.
pub const FREE_DAILY_OPS: u64 = 1_000;
/// Deletes of the day a free-plan clean leaves for the Workers unless told otherwise.
pub const FREE_RESERVE: u64 = 100;
const PLAN_FORMAT: &str = "kvchaos-kv-clean-plan/1";

/// A clean plan, as `--dry-run` writes it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CleanPlan {
    /// `kvchaos-kv-clean-plan/1`.
    pub format: String,
    /// Account id.
    pub account_id: String,
    /// Namespace id.
    pub namespace_id: String,
    /// The prefix.
    pub prefix: String,
    /// Keys in the plan.
    pub count: u64,
    /// [`record::keys_sha256`] of the keys: the plan's identity across QA and production.
    pub keys_sha256: String,
    /// When it was made (RFC 3339, UTC).
    pub created_at: String,
    /// The keys, sorted.
    pub keys: Vec<String>,
}

/// List every key under `prefix`; (keys, list requests).
pub async fn list_keys(
    ns: &mut Namespace<'_>,
    prefix: &str,
) -> Result<(Vec<String>, u64), KvError> {
    let mut keys = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let (page, next) = ns.list(prefix, cursor.as_deref()).await?;
        pages += 1;
        keys.extend(page.into_iter().map(|k| k.name));
        match next {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    keys.sort_unstable();
    keys.dedup();
    Ok((keys, pages))
}

/// `--dry-run`: write the plan, delete nothing.
pub async fn plan(
    args: &CleanArgs,
    client: &mut Client,
    console: &mut Console<'_>,
) -> Result<CleanPlan, KvError> {
    let (Some(account), Some(namespace), Some(prefix), Some(out)) = (
        &args.account_id,
        &args.namespace_id,
        &args.prefix,
        &args.output,
    ) else {
        return Err(KvError::Usage(
            "kv clean --dry-run needs --account-id, --namespace-id, --prefix and -o plan.json"
                .into(),
        ));
    };
    if prefix.is_empty() {
        return Err(KvError::Usage(
            "--prefix '': a clean never targets the whole namespace; name the legacy prefix, e.g. --prefix master:".into(),
        ));
    }
    let mut ns = Namespace::new(client, account, namespace);
    let (keys, pages) = list_keys(&mut ns, prefix).await?;
    let plan = CleanPlan {
        format: PLAN_FORMAT.into(),
        account_id: account.clone(),
        namespace_id: namespace.clone(),
        prefix: prefix.clone(),
        count: keys.len() as u64,
        keys_sha256: record::keys_sha256(keys.iter().map(String::as_str)),
        created_at: record::now_rfc3339(),
        keys,
    };
    let bytes =
        serde_json::to_vec_pretty(&plan).map_err(|e| KvError::Environment(e.to_string()))?;
    store::write_local(out, &bytes)?;
    console.say(&format!(
        "plan: {} keys under '{prefix}' in namespace '{namespace}' (key sha256 {}), {pages} list requests; nothing deleted\nwrote {}; applying it costs {} bulk deletes and {} delete operations",
        plan.count,
        plan.keys_sha256,
        out.display(),
        plan.keys.len().div_ceil(BULK_DELETE_KEYS),
        plan.count
    ));
    Ok(plan)
}

/// Read and check a plan file (its count and hash must match its keys).
pub fn load_plan(path: &Path) -> Result<CleanPlan, KvError> {
    let origin = path.display().to_string();
    let bytes = store::read_local(path, record::MAX_DUMP_BYTES)?;
    let plan: CleanPlan = record::parse_side(&bytes, &origin)?;
    if plan.format != PLAN_FORMAT {
        return Err(KvError::Usage(format!(
            "{origin}: format '{}' is not {PLAN_FORMAT}",
            plan.format
        )));
    }
    if plan.count != plan.keys.len() as u64
        || plan.keys_sha256 != record::keys_sha256(plan.keys.iter().map(String::as_str))
    {
        return Err(KvError::Usage(format!(
            "{origin}: the count or keys_sha256 does not match the keys: the plan was edited; make a new one with --dry-run"
        )));
    }
    Ok(plan)
}

/// The daily budget gate: `Err` when `n` more operations would leave fewer than the reserve.
pub fn check_budget(
    what: &str,
    plan: PlanKind,
    used: u64,
    n: u64,
    reserve: Option<u64>,
) -> Result<(), KvError> {
    if plan == PlanKind::Paid {
        return Ok(());
    }
    let reserve = reserve.unwrap_or(FREE_RESERVE).min(FREE_DAILY_OPS);
    let budget = FREE_DAILY_OPS - reserve;
    if used + n > budget {
        return Err(KvError::Refused(format!(
            "{n} {what} would exceed today's budget: {used} of the free plan's {FREE_DAILY_OPS} {what} per day are used (audit log) and {reserve} are kept for the Workers; wait for 00:00 UTC, split the plan by prefix, or lower --reserve-deletes"
        )));
    }
    Ok(())
}

/// `--apply`: the gates, then the deletes; the audit log gets an entry either way.
pub async fn apply(
    args: &CleanArgs,
    client: &mut Client,
    stores: &ObjectStores,
    console: &mut Console<'_>,
) -> Result<u64, KvError> {
    let (Some(plan_path), Some(dump), Some(environment)) =
        (&args.apply, &args.dump, args.environment)
    else {
        return Err(KvError::Usage(
            "kv clean --apply PLAN needs --dump DUMP and --environment qa|production".into(),
        ));
    };
    let plan = load_plan(plan_path)?;
    let log = AuditLog::new(&args.audit_log);
    let entries = log.entries()?;
    let actor = match &args.actor {
        Some(a) => a.clone(),
        None => client
            .token_id()
            .await
            .unwrap_or_else(|| "unknown".to_owned()),
    };
    let mut entry = AuditEntry {
        at: record::now_rfc3339(),
        actor,
        action: Action::Clean,
        environment: Some(environment),
        account_id: plan.account_id.clone(),
        namespace_id: plan.namespace_id.clone(),
        prefix: plan.prefix.clone(),
        plan_sha256: plan.keys_sha256.clone(),
        keys: plan.count,
        deleted: 0,
        written: 0,
        dump: dump.clone(),
        outcome: Outcome::Refused,
        reason: None,
    };
    let gates = gates(args, &plan, dump, environment, &entries, client, stores).await;
    if let Err(e) = gates {
        entry.reason = Some(e.reason());
        log.append(&entry)?;
        return Err(e);
    }
    let mut ns = Namespace::new(client, &plan.account_id, &plan.namespace_id);
    for chunk in plan.keys.chunks(BULK_DELETE_KEYS) {
        if let Err(e) = ns.bulk_delete(chunk).await {
            entry.outcome = Outcome::Failed;
            entry.reason = Some(e.to_string());
            log.append(&entry)?;
            return Err(e.into());
        }
        entry.deleted += chunk.len() as u64;
        console.progress(&format!("deleted {}/{} keys", entry.deleted, plan.count));
    }
    entry.outcome = Outcome::Ok;
    log.append(&entry)?;
    console.say(&format!(
        "deleted {} keys under '{}' in namespace '{}' ({}); audit log {}",
        entry.deleted,
        plan.prefix,
        plan.namespace_id,
        environment.name(),
        args.audit_log.display()
    ));
    Ok(entry.deleted)
}

async fn gates(
    args: &CleanArgs,
    plan: &CleanPlan,
    dump: &str,
    environment: Environment,
    entries: &[AuditEntry],
    client: &mut Client,
    stores: &ObjectStores,
) -> Result<(), KvError> {
    dump_covers(plan, dump, stores, args.identity.as_deref()).await?;
    if environment == Environment::Production
        && !audit_log::succeeded_in_qa(entries, &plan.keys_sha256)
    {
        return Err(KvError::Refused(format!(
            "production: plan {} has not succeeded in QA (no such entry in {}); apply the same plan to QA first",
            plan.keys_sha256,
            args.audit_log.display()
        )));
    }
    let (used, _) = audit_log::used_today(entries, &plan.account_id, &audit_log::today_utc());
    check_budget("deletes", args.plan, used, plan.count, args.reserve_deletes)?;
    let mut ns = Namespace::new(client, &plan.account_id, &plan.namespace_id);
    let (now, _) = list_keys(&mut ns, &plan.prefix).await?;
    let now_sha = record::keys_sha256(now.iter().map(String::as_str));
    if now_sha != plan.keys_sha256 {
        return Err(KvError::Refused(format!(
            "namespace '{}' changed since the plan: {} keys under '{}' now, {} in the plan; make a new plan (and dump) with --dry-run",
            plan.namespace_id,
            now.len(),
            plan.prefix,
            plan.count
        )));
    }
    Ok(())
}

/// Gate 1: a verified dump of the plan's namespace whose keys include the plan's.
async fn dump_covers(
    plan: &CleanPlan,
    dump: &str,
    stores: &ObjectStores,
    identity: Option<&Path>,
) -> Result<(), KvError> {
    let loc = Location::parse(dump)?;
    let Some(manifest) = verify::load_manifest(&loc, stores).await? else {
        return Err(KvError::Refused(format!(
            "no manifest beside '{loc}': only a dump written by kvchaos kv dump backs a clean"
        )));
    };
    if manifest.account_id != plan.account_id || manifest.namespace_id != plan.namespace_id {
        return Err(KvError::Refused(format!(
            "'{loc}' is a dump of namespace '{}', the plan deletes from '{}': dump this namespace first",
            manifest.namespace_id, plan.namespace_id
        )));
    }
    let stored = stores.read(&loc, record::MAX_DUMP_BYTES).await?;
    let sha = record::sha256_hex(&stored);
    if sha != manifest.sha256 {
        return Err(KvError::Refused(format!(
            "'{loc}' changed since it was written: its sha256 is not the manifest's"
        )));
    }
    verified(&loc, &sha, stores).await?;
    if manifest.keys_sha256 == plan.keys_sha256 {
        return Ok(());
    }
    covers_by_keys(plan, &manifest, &loc, &stored, identity)
}

async fn verified(loc: &Location, sha: &str, stores: &ObjectStores) -> Result<(), KvError> {
    let rec_loc = loc.sibling(".verify.json");
    if !stores.exists(&rec_loc).await? {
        return Err(KvError::Refused(format!(
            "'{loc}' was never verified: run kvchaos kv verify {loc} --against … first"
        )));
    }
    let bytes = stores.read(&rec_loc, record::MAX_SIDE_FILE_BYTES).await?;
    let rec: VerifyRecord = record::parse_side(&bytes, &rec_loc.to_string())?;
    if rec.dump_sha256 != sha {
        return Err(KvError::Refused(format!(
            "'{rec_loc}' verified another version of the dump: verify it again"
        )));
    }
    if !rec.equal {
        return Err(KvError::Refused(format!(
            "the last verify of '{loc}' against {} found differences: resolve them and verify again",
            rec.against
        )));
    }
    Ok(())
}

fn covers_by_keys(
    plan: &CleanPlan,
    manifest: &Manifest,
    loc: &Location,
    stored: &Bytes,
    identity: Option<&Path>,
) -> Result<(), KvError> {
    let plain = if manifest.encrypted {
        if identity.is_none() {
            return Err(KvError::Refused(format!(
                "the keys of '{loc}' are not the plan's (different key hashes) and it is encrypted: pass --identity to check that it covers the plan"
            )));
        }
        Bytes::from(secret::decrypt(stored, identity, &loc.to_string())?)
    } else {
        stored.clone()
    };
    let dumped: BTreeSet<String> = record::parse_dump(&plain, &loc.to_string())?
        .into_iter()
        .map(|r| r.key)
        .collect();
    let missing: Vec<&String> = plan.keys.iter().filter(|k| !dumped.contains(*k)).collect();
    if let Some(first) = missing.first() {
        return Err(KvError::Refused(format!(
            "'{loc}' does not cover the plan: {} of its keys are not in the dump (first: '{first}'); dump again, then plan again",
            missing.len()
        )));
    }
    Ok(())
}
