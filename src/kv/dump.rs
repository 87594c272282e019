//! `kvchaos kv dump`: list the keys under a prefix (1,000 a page, with the cursor), read them
//! with bulk gets of 100 text values (a single get only for a value that is not text), and
//! write one NDJSON line per key with its value, metadata and expiration, then a manifest.
//!
//! Owns: the cost announcement and `--max-ops`, the checkpoint that makes a dump resumable
//! after a 429 or an interruption (`FILE.checkpoint.json`, plus the lines so far in
//! `FILE.partial`), the sensitive-dump rule, and the upload to R2. Does not own: HTTP and
//! pacing (see [`super::api`]), the file formats (see [`super::record`]) or encryption (see
//! [`super::secret`]).
//!
//! A sensitive dump never writes values in the clear: its checkpoint keeps the listing only,
//! and a resumed sensitive dump reads the values again.

use std::io::{Seek, Write};
use std::path::{Path, PathBuf};

use base64::Engine as _;
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::api::{Client, ListedKey, Namespace};
use super::args::DumpArgs;
use super::record::{self, Manifest, Record, RequestCounts};
use super::store::{self, Location, ObjectStores};
use super::{Console, KvError, secret};

/// Keys per bulk get (Cloudflare's maximum).
pub const BULK_GET_KEYS: usize = 100;
/// Keys per list page (Cloudflare's maximum).
pub const LIST_PAGE_KEYS: usize = 1000;
/// Largest checkpoint read back.
const MAX_CHECKPOINT_BYTES: u64 = 256 * 1024 * 1024;
const CHECKPOINT_FORMAT: &str = "kvchaos-kv-checkpoint/1";

/// Where a finished dump went.
#[derive(Debug, Clone)]
pub struct DumpDone {
    /// The local dump file.
    pub local: PathBuf,
    /// The R2 object, when `--to` was given.
    pub remote: Option<Location>,
    /// Its manifest.
    pub manifest: Manifest,
}

/// What a dump has done so far; saved after every page and batch.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Checkpoint {
    format: String,
    account_id: String,
    namespace_id: String,
    prefix: String,
    sensitive: bool,
    started_at: String,
    listed: Vec<ListedKey>,
    cursor: Option<String>,
    list_complete: bool,
    /// Listed keys whose lines are in the partial file (or were gone).
    read: usize,
    /// Bytes of the partial file that hold those lines.
    partial_len: u64,
    /// Lines written.
    written: u64,
    requests: RequestCounts,
}

impl Checkpoint {
    fn total_requests(&self) -> u64 {
        self.requests.list + self.requests.bulk_get + self.requests.get
    }
}

struct Paths {
    dump: PathBuf,
    partial: PathBuf,
    checkpoint: PathBuf,
}

impl Paths {
    fn new(dump: PathBuf) -> Paths {
        let with = |suffix: &str| {
            let mut s = dump.as_os_str().to_owned();
            s.push(suffix);
            PathBuf::from(s)
        };
        Paths {
            partial: with(".partial"),
            checkpoint: with(".checkpoint.json"),
            dump,
        }
    }
}

/// Run a dump.
pub async fn dump(
    args: &DumpArgs,
    client: &mut Client,
    stores: &ObjectStores,
    console: &mut Console<'_>,
) -> Result<DumpDone, KvError> {
    let sensitive = is_sensitive(args)?;
    let recipient = match (&args.recipient, sensitive) {
        (Some(r), true) => Some(secret::recipient(r)?),
        _ => None,
    };
    let paths = Paths::new(local_path(args)?);
    if sensitive && recipient.is_none() {
        refuse_plain_secret(args, &paths.dump)?;
    }
    let mut cp = load_checkpoint(args, sensitive, &paths)?;
    console.say(&cost_note(args, &cp));
    let mut ns = Namespace::new(client, &args.ns.account_id, &args.ns.namespace_id);
    list_all(args, &mut ns, &mut cp, &paths, console).await?;
    announce_reads(args, &cp, console)?;
    let lines = read_all(&mut ns, &mut cp, &paths, console).await?;
    let actor = match &args.actor {
        Some(a) => a.clone(),
        None => ns
            .client
            .token_id()
            .await
            .unwrap_or_else(|| "unknown".to_owned()),
    };
    finish(
        args,
        cp,
        lines,
        recipient.as_ref(),
        &paths,
        stores,
        actor,
        console,
    )
    .await
}

fn is_sensitive(args: &DumpArgs) -> Result<bool, KvError> {
    let config = match &args.config {
        Some(p) => secret::KvConfig::load(p)?,
        None => secret::KvConfig::default(),
    };
    Ok(args.sensitive || config.covers(&args.prefix))
}

fn local_path(args: &DumpArgs) -> Result<PathBuf, KvError> {
    match (&args.output, &args.to) {
        (Some(p), _) => Ok(p.clone()),
        (None, Some(_)) => {
            // A stable name, so that running the same command again resumes.
            let id = record::sha256_hex(
                format!(
                    "{}\n{}\n{}",
                    args.ns.account_id, args.ns.namespace_id, args.prefix
                )
                .as_bytes(),
            );
            Ok(std::env::temp_dir().join(format!("kvchaos-dump-{}.ndjson", &id[..16])))
        }
        (None, None) => Err(KvError::Usage(
            "kv dump needs -o FILE or --to r2://bucket/backups/<prefix>/<timestamp>.ndjson".into(),
        )),
    }
}

fn refuse_plain_secret(args: &DumpArgs, dump: &Path) -> Result<(), KvError> {
    if args.to.is_some() {
        return Err(KvError::Refused(format!(
            "prefix '{}' is sensitive: an R2 copy must be encrypted; pass --recipient age1… (or KVCHAOS_AGE_RECIPIENT)",
            args.prefix
        )));
    }
    let dir = dump.parent().unwrap_or(Path::new("."));
    if secret::inside_git_work_tree(dir) {
        return Err(KvError::Refused(format!(
            "prefix '{}' is sensitive and '{}' is inside a git work tree: pass --recipient age1… to encrypt it, or write it outside the repository",
            args.prefix,
            dump.display()
        )));
    }
    Ok(())
}

fn load_checkpoint(args: &DumpArgs, sensitive: bool, paths: &Paths) -> Result<Checkpoint, KvError> {
    let fresh = Checkpoint {
        format: CHECKPOINT_FORMAT.into(),
        account_id: args.ns.account_id.clone(),
        namespace_id: args.ns.namespace_id.clone(),
        prefix: args.prefix.clone(),
        sensitive,
        started_at: record::now_rfc3339(),
        listed: Vec::new(),
        cursor: None,
        list_complete: false,
        read: 0,
        partial_len: 0,
        written: 0,
        requests: RequestCounts::default(),
    };
    if !paths.checkpoint.exists() {
        return Ok(fresh);
    }
    let origin = paths.checkpoint.display().to_string();
    let bytes = store::read_local(&paths.checkpoint, MAX_CHECKPOINT_BYTES)?;
    let cp: Checkpoint = record::parse_side(&bytes, &origin)?;
    let same = cp.format == CHECKPOINT_FORMAT
        && cp.account_id == fresh.account_id
        && cp.namespace_id == fresh.namespace_id
        && cp.prefix == fresh.prefix
        && cp.sensitive == sensitive;
    if !same {
        return Err(KvError::Usage(format!(
            "{origin}: a checkpoint of another dump (account '{}', namespace '{}', prefix '{}'); delete it or choose another -o",
            cp.account_id, cp.namespace_id, cp.prefix
        )));
    }
    let mut cp = cp;
    if sensitive {
        // Values of a sensitive dump were held in memory only: read them again.
        cp.read = 0;
        cp.written = 0;
        cp.partial_len = 0;
    }
    Ok(cp)
}

fn save_checkpoint(cp: &Checkpoint, paths: &Paths) -> Result<(), KvError> {
    let bytes = serde_json::to_vec(cp).map_err(|e| KvError::Environment(e.to_string()))?;
    store::write_local(&paths.checkpoint, &bytes)?;
    Ok(())
}

fn cost_note(args: &DumpArgs, cp: &Checkpoint) -> String {
    let mut s = format!(
        "dump of '{}': costs 1 list request per {LIST_PAGE_KEYS} keys, then 1 bulk get per {BULK_GET_KEYS} keys (+1 get per value that is not text); KV operations: 1 list per page, 1 read per key",
        args.prefix
    );
    if cp.listed.is_empty() && cp.total_requests() == 0 {
        return s;
    }
    s.push_str(&format!(
        "\nresuming from the checkpoint: {} keys listed{}, {} read, {} requests made",
        cp.listed.len(),
        if cp.list_complete { " (complete)" } else { "" },
        cp.read,
        cp.total_requests()
    ));
    s
}

fn over_cap(args: &DumpArgs, cp: &Checkpoint, more: u64) -> Result<(), KvError> {
    match args.max_ops {
        Some(max) if cp.total_requests() + more > max => Err(KvError::Refused(format!(
            "the dump would take {} requests, more than --max-ops {max}; the checkpoint keeps what is done: rerun with a higher --max-ops to go on",
            cp.total_requests() + more
        ))),
        _ => Ok(()),
    }
}

async fn list_all(
    args: &DumpArgs,
    ns: &mut Namespace<'_>,
    cp: &mut Checkpoint,
    paths: &Paths,
    console: &mut Console<'_>,
) -> Result<(), KvError> {
    while !cp.list_complete {
        over_cap(args, cp, 1)?;
        let (keys, next) = ns.list(&args.prefix, cp.cursor.as_deref()).await?;
        cp.requests.list += 1;
        cp.listed.extend(keys);
        cp.list_complete = next.is_none();
        cp.cursor = next;
        save_checkpoint(cp, paths)?;
        console.progress(&format!("listed {} keys", cp.listed.len()));
    }
    Ok(())
}

fn announce_reads(
    args: &DumpArgs,
    cp: &Checkpoint,
    console: &mut Console<'_>,
) -> Result<(), KvError> {
    let left = cp.listed.len().saturating_sub(cp.read);
    let bulk = left.div_ceil(BULK_GET_KEYS) as u64;
    console.say(&format!(
        "{} keys listed with {} list requests; reading them takes {bulk} bulk gets (+1 get per value that is not text): about {} requests in all, {} read operations",
        cp.listed.len(),
        cp.requests.list,
        cp.total_requests() + bulk,
        left
    ));
    over_cap(args, cp, bulk)
}

/// Dump lines so far: a partial file (plain dumps) or memory (sensitive dumps).
enum Lines {
    File(std::fs::File),
    Memory(Vec<u8>),
}

impl Lines {
    fn open(cp: &Checkpoint, paths: &Paths) -> Result<Lines, KvError> {
        if cp.sensitive {
            return Ok(Lines::Memory(Vec::new()));
        }
        let err = |e: std::io::Error| {
            KvError::Environment(format!("cannot write '{}': {e}", paths.partial.display()))
        };
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(&paths.partial)
            .map_err(err)?;
        // Lines after the last checkpoint were written by a run that stopped before saving it.
        f.set_len(cp.partial_len).map_err(err)?;
        f.seek(std::io::SeekFrom::End(0)).map_err(err)?;
        Ok(Lines::File(f))
    }

    fn append(&mut self, bytes: &[u8], paths: &Paths) -> Result<u64, KvError> {
        match self {
            Lines::Memory(v) => {
                v.extend_from_slice(bytes);
                Ok(v.len() as u64)
            }
            Lines::File(f) => {
                let err = |e: std::io::Error| {
                    KvError::Environment(format!("cannot write '{}': {e}", paths.partial.display()))
                };
                f.write_all(bytes).map_err(err)?;
                f.sync_data().map_err(err)?;
                f.stream_position().map_err(err)
            }
        }
    }
}

async fn read_all(
    ns: &mut Namespace<'_>,
    cp: &mut Checkpoint,
    paths: &Paths,
    console: &mut Console<'_>,
) -> Result<Lines, KvError> {
    let mut lines = Lines::open(cp, paths)?;
    while cp.read < cp.listed.len() {
        let end = (cp.read + BULK_GET_KEYS).min(cp.listed.len());
        let batch: Vec<ListedKey> = cp.listed[cp.read..end].to_vec();
        let names: Vec<String> = batch.iter().map(|k| k.name.clone()).collect();
        let values = ns.bulk_get(&names).await?;
        cp.requests.bulk_get += 1;
        let mut out = Vec::new();
        for listed in &batch {
            let got = values.get(&listed.name).cloned().unwrap_or(Value::Null);
            if let Some(r) = to_record(ns, listed, got, &mut cp.requests).await? {
                out.extend_from_slice(&record::line(&r));
                cp.written += 1;
            }
        }
        cp.partial_len = lines.append(&out, paths)?;
        cp.read = end;
        save_checkpoint(cp, paths)?;
        console.progress(&format!("read {}/{} keys", cp.read, cp.listed.len()));
    }
    Ok(lines)
}

/// One key's line from its bulk get answer; `None` when the key is gone since the listing.
async fn to_record(
    ns: &mut Namespace<'_>,
    listed: &ListedKey,
    got: Value,
    requests: &mut RequestCounts,
) -> Result<Option<Record>, KvError> {
    let (value, metadata, expiration) = match got {
        Value::Null => return Ok(None),
        Value::Object(mut o) => (
            o.remove("value").unwrap_or(Value::Null),
            o.remove("metadata").filter(|m| !m.is_null()),
            o.get("expiration").and_then(Value::as_u64),
        ),
        text @ Value::String(_) => (text, None, None),
        _ => (Value::Null, None, None),
    };
    let metadata = metadata.or_else(|| listed.metadata.clone());
    let expiration = expiration.or(listed.expiration);
    let (value, base64) = match value {
        // A text value that decoded cleanly; U+FFFD means bytes that are not UTF-8 may have
        // been replaced, so those are read on their own.
        Value::String(s) if !s.contains('\u{FFFD}') => (s, false),
        Value::Null => return Ok(None),
        _ => {
            requests.get += 1;
            match ns.get_value(&listed.name).await? {
                None => return Ok(None),
                Some(bytes) => raw_value(bytes),
            }
        }
    };
    Ok(Some(Record {
        key: listed.name.clone(),
        value,
        base64,
        metadata,
        expiration,
    }))
}

fn raw_value(bytes: Bytes) -> (String, bool) {
    match String::from_utf8(bytes.to_vec()) {
        Ok(s) => (s, false),
        Err(_) => (
            base64::engine::general_purpose::STANDARD.encode(&bytes),
            true,
        ),
    }
}

/// The manifest of a finished dump whose stored bytes are `stored`.
fn manifest_of(
    cp: &Checkpoint,
    stored: &[u8],
    keys_sha256: String,
    encrypted: bool,
    actor: String,
) -> Manifest {
    Manifest {
        format: record::MANIFEST_FORMAT.into(),
        account_id: cp.account_id.clone(),
        namespace_id: cp.namespace_id.clone(),
        prefix: cp.prefix.clone(),
        count: cp.written,
        sha256: record::sha256_hex(stored),
        keys_sha256,
        encrypted,
        started_at: cp.started_at.clone(),
        ended_at: record::now_rfc3339(),
        actor,
        git_commit: secret::git_commit(),
        requests: cp.requests,
    }
}

#[allow(clippy::too_many_arguments)]
async fn finish(
    args: &DumpArgs,
    cp: Checkpoint,
    lines: Lines,
    recipient: Option<&age::x25519::Recipient>,
    paths: &Paths,
    stores: &ObjectStores,
    actor: String,
    console: &mut Console<'_>,
) -> Result<DumpDone, KvError> {
    let plain = match lines {
        Lines::Memory(v) => v,
        Lines::File(f) => {
            drop(f);
            store::read_local(&paths.partial, record::MAX_DUMP_BYTES)?.to_vec()
        }
    };
    let keys_sha256 = record::keys_sha256(
        record::parse_dump(&plain, "the dump")?
            .iter()
            .map(|r| r.key.as_str()),
    );
    let stored = match recipient {
        Some(r) => secret::encrypt(r, &plain)?,
        None => plain,
    };
    let manifest = manifest_of(&cp, &stored, keys_sha256, recipient.is_some(), actor);
    let manifest_bytes = Bytes::from(
        serde_json::to_vec_pretty(&manifest).map_err(|e| KvError::Environment(e.to_string()))?,
    );
    let local = Location::Local(paths.dump.clone());
    stores.write(&local, Bytes::from(stored.clone())).await?;
    stores
        .write(&local.sibling(".manifest.json"), manifest_bytes.clone())
        .await?;
    if cp.sensitive && recipient.is_none() {
        // Secrets in the clear (outside any git work tree): readable by their owner only.
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(&paths.dump, std::fs::Permissions::from_mode(0o600));
    }
    let remote = match &args.to {
        Some(to) => {
            let stamp = manifest.ended_at.replace(':', "-");
            let loc = Location::dump_target(to, &args.prefix, &stamp)?;
            stores.write(&loc, Bytes::from(stored)).await?;
            stores
                .write(&loc.sibling(".manifest.json"), manifest_bytes)
                .await?;
            Some(loc)
        }
        None => None,
    };
    let _ = std::fs::remove_file(&paths.partial);
    let _ = std::fs::remove_file(&paths.checkpoint);
    console.say(&format!(
        "dumped {} keys to {}{} ({} requests: {} list, {} bulk get, {} get); manifest {}",
        manifest.count,
        paths.dump.display(),
        remote
            .as_ref()
            .map(|r| format!(" and {r}"))
            .unwrap_or_default(),
        cp.total_requests(),
        cp.requests.list,
        cp.requests.bulk_get,
        cp.requests.get,
        local.sibling(".manifest.json")
    ));
    Ok(DumpDone {
        local: paths.dump.clone(),
        remote,
        manifest,
    })
}
