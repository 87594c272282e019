//! `kvchaos kv restore`: write a dump's pairs back with bulk writes (`PUT …/bulk`, at most
//! 10,000 pairs and about 95 MB a call), values that are not text as base64, metadata and
//! expirations kept; keys that expire within a minute are skipped (KV refuses them).
//!
//! Owns: batching, the daily write budget on the free plan (from the audit log) and the audit
//! entry. Does not own: reading the dump (see [`super::verify::load_dump`]).

use serde_json::{Value, json};

use super::api::{Client, Namespace};
use super::args::RestoreArgs;
use super::audit_log::{self, Action, AuditEntry, AuditLog, Outcome};
use super::record::{self, Record};
use super::store::{Location, ObjectStores};
use super::{Console, KvError, clean, verify};

/// Pairs per bulk write (Cloudflare's maximum).
pub const BULK_PUT_PAIRS: usize = 10_000;
/// Body bytes per bulk write (Cloudflare allows 100 MB).
const BULK_PUT_BYTES: usize = 95_000_000;
/// KV refuses expirations closer than this (seconds).
const MIN_TTL_S: u64 = 60;

/// Run a restore; returns the pairs written.
pub async fn restore(
    args: &RestoreArgs,
    client: &mut Client,
    stores: &ObjectStores,
    console: &mut Console<'_>,
) -> Result<u64, KvError> {
    let source = args
        .from
        .as_deref()
        .or(args.dump.as_deref())
        .unwrap_or_default();
    let loc = Location::parse(source)?;
    let dump = verify::load_dump(&loc, stores, args.identity.as_deref()).await?;
    let now_s = chrono::Utc::now().timestamp().max(0) as u64;
    let (live, expired): (Vec<&Record>, Vec<&Record>) = dump
        .records
        .iter()
        .partition(|r| r.expiration.is_none_or(|e| e >= now_s + MIN_TTL_S));
    let batches = batches(&live);
    console.say(&format!(
        "restore of {loc}: {} pairs to write in {} bulk writes ({} write operations); {} skipped (expire within {MIN_TTL_S}s)",
        live.len(),
        batches.len(),
        live.len(),
        expired.len()
    ));
    if args.dry_run {
        console.say("dry run: nothing written");
        return Ok(0);
    }
    let log = AuditLog::new(&args.audit_log);
    let entries = log.entries()?;
    let (_, used) = audit_log::used_today(&entries, &args.ns.account_id, &audit_log::today_utc());
    let mut entry = entry_of(args, &dump, &loc, live.len() as u64);
    if entry.actor.is_empty() {
        entry.actor = client
            .token_id()
            .await
            .unwrap_or_else(|| "unknown".to_owned());
    }
    if let Err(e) = clean::check_budget("writes", args.plan, used, live.len() as u64, None) {
        entry.reason = Some(e.reason());
        log.append(&entry)?;
        return Err(e);
    }
    let mut ns = Namespace::new(client, &args.ns.account_id, &args.ns.namespace_id);
    for batch in batches {
        let n = batch.as_array().map_or(0, Vec::len) as u64;
        if let Err(e) = ns.bulk_put(batch).await {
            entry.outcome = Outcome::Failed;
            entry.reason = Some(e.to_string());
            log.append(&entry)?;
            return Err(e.into());
        }
        entry.written += n;
        console.progress(&format!("wrote {}/{} pairs", entry.written, live.len()));
    }
    entry.outcome = Outcome::Ok;
    log.append(&entry)?;
    console.say(&format!(
        "wrote {} pairs to namespace '{}'; audit log {}",
        entry.written,
        args.ns.namespace_id,
        args.audit_log.display()
    ));
    Ok(entry.written)
}

/// The audit entry of a restore, before it is done.
fn entry_of(
    args: &RestoreArgs,
    dump: &verify::LoadedDump,
    loc: &Location,
    keys: u64,
) -> AuditEntry {
    AuditEntry {
        at: record::now_rfc3339(),
        actor: args.actor.clone().unwrap_or_default(),
        action: Action::Restore,
        environment: None,
        account_id: args.ns.account_id.clone(),
        namespace_id: args.ns.namespace_id.clone(),
        prefix: dump
            .manifest
            .as_ref()
            .map(|m| m.prefix.clone())
            .unwrap_or_default(),
        plan_sha256: dump.sha256.clone(),
        keys,
        deleted: 0,
        written: 0,
        dump: loc.to_string(),
        outcome: Outcome::Refused,
        reason: None,
    }
}

/// Bulk write bodies: at most [`BULK_PUT_PAIRS`] pairs and about [`BULK_PUT_BYTES`] each.
fn batches(records: &[&Record]) -> Vec<Value> {
    let mut out = Vec::new();
    let mut cur: Vec<Value> = Vec::new();
    let mut bytes = 0;
    for r in records {
        let pair = json!({
            "key": r.key,
            "value": r.value,
            "base64": r.base64,
            "metadata": r.metadata,
            "expiration": r.expiration,
        });
        let pair = strip_nulls(pair);
        let size = r.key.len() + r.value.len() + 128;
        if !cur.is_empty() && (cur.len() >= BULK_PUT_PAIRS || bytes + size > BULK_PUT_BYTES) {
            out.push(Value::Array(std::mem::take(&mut cur)));
            bytes = 0;
        }
        bytes += size;
        cur.push(pair);
    }
    if !cur.is_empty() {
        out.push(Value::Array(cur));
    }
    out
}

fn strip_nulls(v: Value) -> Value {
    match v {
        Value::Object(mut o) => {
            o.retain(|_, v| !v.is_null());
            Value::Object(o)
        }
        v => v,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_hold_at_most_ten_thousand_pairs() {
        let rs: Vec<Record> = (0..10_001)
            .map(|i| Record {
                key: format!("k:{i}"),
                value: "v".into(),
                base64: false,
                metadata: None,
                expiration: None,
            })
            .collect();
        let refs: Vec<&Record> = rs.iter().collect();
        let b = batches(&refs);
        assert_eq!(b.len(), 2);
        assert_eq!(b[0].as_array().unwrap().len(), 10_000);
        assert_eq!(
            b[1][0],
            json!({"key": "k:10000", "value": "v", "base64": false})
        );
    }
}
