//! `kvchaos kv verify`: compare a dump's keys with a second dump, a SQLite file (a D1
//! export) queried with `--query`, or D1 itself through its REST API (`--d1-query`): counts
//! and key-by-key differences per key prefix, and a verify record beside the dump that
//! `kv clean --apply` requires.
//!
//! Owns: loading a dump for reading (local or R2, decrypted, checked against its manifest),
//! the other side's key sets, the comparison and its printout (keys only: values are never
//! printed). Does not own: the dump format (see [`super::record`]).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use bytes::Bytes;
use serde_json::Value;

use super::api::{self, Client};
use super::args::VerifyArgs;
use super::record::{self, Manifest, Record, VerifyRecord};
use super::store::{Location, ObjectStores};
use super::{Console, KvEnv, KvError, secret};
use crate::mockkv::group::GroupRule;

/// Most keys read from SQLite or D1.
const MAX_OTHER_KEYS: usize = 10_000_000;

/// A dump read back.
#[derive(Debug)]
pub struct LoadedDump {
    /// Where it is.
    pub location: Location,
    /// sha256 of the stored bytes.
    pub sha256: String,
    /// Its lines.
    pub records: Vec<Record>,
    /// Its manifest, when there is one beside it.
    pub manifest: Option<Manifest>,
}

/// Read a dump and its manifest; refuse one whose bytes no longer match the manifest's sha256.
pub async fn load_dump(
    location: &Location,
    stores: &ObjectStores,
    identity: Option<&Path>,
) -> Result<LoadedDump, KvError> {
    let origin = location.to_string();
    let stored = stores.read(location, record::MAX_DUMP_BYTES).await?;
    let sha256 = record::sha256_hex(&stored);
    let manifest = load_manifest(location, stores).await?;
    if let Some(m) = &manifest
        && m.sha256 != sha256
    {
        return Err(KvError::Refused(format!(
            "{origin}: its sha256 {sha256} is not the manifest's {}: the dump changed since it was written",
            m.sha256
        )));
    }
    let plain = if secret::is_encrypted(&stored) {
        Bytes::from(secret::decrypt(&stored, identity, &origin)?)
    } else {
        stored
    };
    let records = record::parse_dump(&plain, &origin)?;
    Ok(LoadedDump {
        location: location.clone(),
        sha256,
        records,
        manifest,
    })
}

/// The manifest beside a dump, if any.
pub async fn load_manifest(
    location: &Location,
    stores: &ObjectStores,
) -> Result<Option<Manifest>, KvError> {
    let loc = location.sibling(".manifest.json");
    if !stores.exists(&loc).await? {
        return Ok(None);
    }
    let bytes = stores.read(&loc, record::MAX_SIDE_FILE_BYTES).await?;
    record::parse_side(&bytes, &loc.to_string()).map(Some)
}

/// Run a verify; `Ok(true)` when both sides hold the same keys.
pub async fn verify(
    args: &VerifyArgs,
    env: &KvEnv,
    console: &mut Console<'_>,
) -> Result<bool, KvError> {
    let location = Location::parse(&args.dump)?;
    let dump = load_dump(&location, &env.stores, args.identity.as_deref()).await?;
    let mine: BTreeSet<String> = dump.records.iter().map(|r| r.key.clone()).collect();
    let (theirs, against) = other_side(args, env).await?;
    let diff = Diff::new(&mine, &theirs, args.prefix_depth);
    console.say(&diff.render(&against, args.show));
    let rec = VerifyRecord {
        dump_sha256: dump.sha256.clone(),
        keys_sha256: record::keys_sha256(mine.iter().map(String::as_str)),
        count: mine.len() as u64,
        against: against.clone(),
        against_count: theirs.len() as u64,
        equal: diff.equal(),
        at: record::now_rfc3339(),
    };
    let bytes = serde_json::to_vec_pretty(&rec).map_err(|e| KvError::Environment(e.to_string()))?;
    let rec_loc = location.sibling(".verify.json");
    env.stores.write(&rec_loc, Bytes::from(bytes)).await?;
    console.say(&format!("verify record: {rec_loc}"));
    Ok(diff.equal())
}

async fn other_side(args: &VerifyArgs, env: &KvEnv) -> Result<(BTreeSet<String>, String), KvError> {
    if let Some(db) = args.against.strip_prefix("d1://") {
        let (Some(sql), Some(account)) = (&args.d1_query, &args.account_id) else {
            return Err(KvError::Usage(
                "--against d1://DATABASE_ID needs --d1-query \"SELECT key FROM …\" and --account-id".into(),
            ));
        };
        let token = env.token()?;
        let mut client = Client::new(
            &args.conn.api_base,
            token,
            args.conn.pace,
            args.conn.max_retry_wait,
        )
        .await?;
        let rows = api::d1_query(&mut client, account, db, sql).await?;
        return Ok((d1_keys(&rows, &args.against)?, args.against.clone()));
    }
    if args.d1_query.is_some() {
        return Err(KvError::Usage(
            "--d1-query goes with --against d1://DATABASE_ID".into(),
        ));
    }
    match &args.query {
        Some(sql) => Ok((
            sqlite_keys(Path::new(&args.against), sql)?,
            args.against.clone(),
        )),
        None => {
            let loc = Location::parse(&args.against)?;
            if let Location::Local(p) = &loc
                && std::fs::read(p).is_ok_and(|b| b.starts_with(b"SQLite format 3\0"))
            {
                return Err(KvError::Usage(format!(
                    "{} is a SQLite file: add --query \"SELECT key FROM …\"",
                    p.display()
                )));
            }
            let other = load_dump(&loc, &env.stores, args.identity.as_deref()).await?;
            Ok((
                other.records.into_iter().map(|r| r.key).collect(),
                args.against.clone(),
            ))
        }
    }
}

/// Keys from D1 rows: the only column, or the column named `key`.
fn d1_keys(rows: &[Value], origin: &str) -> Result<BTreeSet<String>, KvError> {
    if rows.len() > MAX_OTHER_KEYS {
        return Err(KvError::Usage(format!(
            "{origin}: more than {MAX_OTHER_KEYS} rows"
        )));
    }
    rows.iter()
        .map(|row| {
            let obj = row.as_object();
            let cell = match obj {
                Some(o) if o.len() == 1 => o.values().next(),
                Some(o) => o.get("key"),
                None => None,
            };
            match cell {
                Some(Value::String(s)) => Ok(s.clone()),
                Some(Value::Number(n)) => Ok(n.to_string()),
                _ => Err(KvError::Usage(format!(
                    "{origin}: each row must have one column (or one named key) holding the key, e.g. SELECT 'clinic:' || id AS key FROM clinics"
                ))),
            }
        })
        .collect()
}

/// Keys from the first column of `sql` on a SQLite file, opened read-only.
fn sqlite_keys(path: &Path, sql: &str) -> Result<BTreeSet<String>, KvError> {
    use rusqlite::{OpenFlags, types::ValueRef};
    let origin = path.display();
    let bad = |e: rusqlite::Error| KvError::Usage(format!("{origin}: {e}"));
    if !path.is_file() {
        return Err(KvError::Usage(format!("{origin}: no such SQLite file")));
    }
    let db = rusqlite::Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY)
        .map_err(bad)?;
    let mut stmt = db.prepare(sql).map_err(bad)?;
    let mut rows = stmt.query([]).map_err(bad)?;
    let mut keys = BTreeSet::new();
    while let Some(row) = rows.next().map_err(bad)? {
        if keys.len() >= MAX_OTHER_KEYS {
            return Err(KvError::Usage(format!(
                "{origin}: more than {MAX_OTHER_KEYS} rows"
            )));
        }
        let key = match row.get_ref(0).map_err(bad)? {
            ValueRef::Text(t) => String::from_utf8_lossy(t).into_owned(),
            ValueRef::Integer(i) => i.to_string(),
            _ => {
                return Err(KvError::Usage(format!(
                    "{origin}: --query must return the key as text in its first column, e.g. SELECT 'clinic:' || id FROM clinics"
                )));
            }
        };
        keys.insert(key);
    }
    Ok(keys)
}

/// Differences per key prefix.
#[derive(Debug, Default)]
pub struct Diff {
    /// prefix → (keys in the dump, keys on the other side, only in the dump, only on the other side).
    pub by_prefix: BTreeMap<String, PrefixDiff>,
}

/// One prefix's counts and differing keys.
#[derive(Debug, Default)]
pub struct PrefixDiff {
    /// Keys in the dump.
    pub dump: u64,
    /// Keys on the other side.
    pub other: u64,
    /// Keys only in the dump.
    pub only_dump: Vec<String>,
    /// Keys only on the other side.
    pub only_other: Vec<String>,
}

impl Diff {
    /// Compare two key sets, grouped by `depth` leading key segments (as `mockkv.json`).
    pub fn new(mine: &BTreeSet<String>, theirs: &BTreeSet<String>, depth: usize) -> Diff {
        let rule = GroupRule { segments: depth };
        let mut d = Diff::default();
        for k in mine {
            let p = d.by_prefix.entry(rule.group(k).into_owned()).or_default();
            p.dump += 1;
            if !theirs.contains(k) {
                p.only_dump.push(k.clone());
            }
        }
        for k in theirs {
            let p = d.by_prefix.entry(rule.group(k).into_owned()).or_default();
            p.other += 1;
            if !mine.contains(k) {
                p.only_other.push(k.clone());
            }
        }
        d
    }

    /// Whether both sides hold the same keys.
    pub fn equal(&self) -> bool {
        self.by_prefix
            .values()
            .all(|p| p.only_dump.is_empty() && p.only_other.is_empty())
    }

    /// A table of counts per prefix, then up to `show` differing keys per side and prefix.
    pub fn render(&self, against: &str, show: usize) -> String {
        let mut s = format!(
            "{:<24} {:>10} {:>10} {:>10} {:>10}\n",
            "prefix", "dump", "other", "only dump", "only other"
        );
        for (prefix, p) in &self.by_prefix {
            let name = if prefix.is_empty() { "(none)" } else { prefix };
            s.push_str(&format!(
                "{name:<24} {:>10} {:>10} {:>10} {:>10}\n",
                p.dump,
                p.other,
                p.only_dump.len(),
                p.only_other.len()
            ));
        }
        for (prefix, p) in &self.by_prefix {
            for (side, keys) in [
                ("only in the dump", &p.only_dump),
                (&*format!("only in {against}"), &p.only_other),
            ] {
                for k in keys.iter().take(show) {
                    s.push_str(&format!("{side}: {k}\n"));
                }
                if keys.len() > show {
                    s.push_str(&format!(
                        "{side}: … {} more under '{prefix}' (--show)\n",
                        keys.len() - show
                    ));
                }
            }
        }
        s.push_str(if self.equal() {
            "equal: the same keys on both sides\n"
        } else {
            "different: see the keys above\n"
        });
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(keys: &[&str]) -> BTreeSet<String> {
        keys.iter().map(|k| (*k).to_owned()).collect()
    }

    #[test]
    fn differences_are_counted_per_prefix() {
        let d = Diff::new(
            &set(&["a:1", "a:2", "b:1"]),
            &set(&["a:1", "b:1", "b:2"]),
            1,
        );
        assert!(!d.equal());
        assert_eq!(d.by_prefix["a:"].only_dump, ["a:2"]);
        assert_eq!(d.by_prefix["b:"].only_other, ["b:2"]);
        let out = d.render("x.sqlite", 0);
        assert!(out.contains("… 1 more under 'a:'"), "{out}");
        assert!(Diff::new(&set(&["a"]), &set(&["a"]), 1).equal());
    }

    #[test]
    fn sqlite_keys_come_from_the_first_column() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("d1.sqlite");
        let db = rusqlite::Connection::open(&p).unwrap();
        db.execute_batch("CREATE TABLE clinics(id INTEGER, name TEXT); INSERT INTO clinics VALUES (1,'x'),(2,'y');")
            .unwrap();
        drop(db);
        let keys = sqlite_keys(&p, "SELECT 'clinic:' || id FROM clinics").unwrap();
        assert_eq!(keys, set(&["clinic:1", "clinic:2"]));
        let e = sqlite_keys(&p, "SELECT nope FROM clinics")
            .unwrap_err()
            .to_string();
        assert!(e.contains("no such column"), "{e}");
        let e = sqlite_keys(&p, "SELECT NULL").unwrap_err().to_string();
        assert!(e.contains("first column"), "{e}");
    }

    #[test]
    fn d1_rows_need_one_key_column() {
        let rows = vec![
            serde_json::json!({"key": "a"}),
            serde_json::json!({"k": "b"}),
        ];
        assert_eq!(d1_keys(&rows, "d1://x").unwrap(), set(&["a", "b"]));
        assert!(d1_keys(&[serde_json::json!({"a": 1, "b": 2})], "d1://x").is_err());
    }
}
