//! The data of the mock: named namespaces of ordered keys with values,
//! metadata and expirations, plus the KV rules that apply to them (sizes,
//! minimum TTL, same-key write rate, list paging, expired keys invisible) and
//! a short version history per key for stale reads.
//!
//! Owns: validation with Cloudflare's status codes and wording, and every
//! read/write of the data. Does not own: time (callers pass `now_ms`), quotas,
//! faults, accounting or any wire format.

use std::collections::{BTreeMap, VecDeque};
use std::ops::Bound;

use bytes::Bytes;

/// Longest key, in UTF-8 bytes.
pub const MAX_KEY_BYTES: usize = 512;
/// Longest metadata, in bytes of its JSON text.
pub const MAX_METADATA_BYTES: usize = 1024;
/// Largest value, in bytes (25 MiB).
pub const MAX_VALUE_BYTES: usize = 25 * 1024 * 1024;
/// Most keys one list page returns.
pub const MAX_LIST_LIMIT: usize = 1000;
/// Shortest allowed expiration TTL, in seconds.
pub const MIN_EXPIRATION_TTL_S: u64 = 60;
/// Writes to one key closer together than this (virtual ms) are refused.
const SAME_KEY_WRITE_INTERVAL_MS: u64 = 1000;

/// Why the store refused an operation. `message` texts are Cloudflare's.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum KvError {
    /// A request that breaks a KV rule (400, 413 or 414).
    #[error("{message}")]
    Invalid {
        /// HTTP status Cloudflare answers with.
        status: u16,
        /// Cloudflare's message, also used as the reason phrase.
        message: String,
    },
    /// A second write to the same key within one second.
    #[error("Too Many Requests")]
    SameKeyRate,
}

impl KvError {
    fn invalid(status: u16, message: impl Into<String>) -> Self {
        Self::Invalid {
            status,
            message: message.into(),
        }
    }

    /// The HTTP status for this error.
    pub fn status(&self) -> u16 {
        match self {
            Self::Invalid { status, .. } => *status,
            Self::SameKeyRate => 429,
        }
    }
}

/// One stored value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// The value bytes.
    pub value: Bytes,
    /// Metadata as its JSON text, already validated.
    pub metadata: Option<String>,
    /// Absolute expiration, seconds since the Unix epoch.
    pub expiration: Option<u64>,
}

impl Entry {
    fn live_at(&self, now_ms: u64) -> bool {
        self.expiration
            .is_none_or(|e| e.saturating_mul(1000) > now_ms)
    }
}

/// A write as it arrives, options still raw so that errors quote them.
#[derive(Clone, Debug, Default)]
pub struct PutRequest {
    /// The value bytes.
    pub value: Bytes,
    /// Metadata JSON text, if any.
    pub metadata: Option<String>,
    /// Raw `expiration` (absolute seconds).
    pub expiration: Option<String>,
    /// Raw `expiration_ttl` (seconds from now).
    pub expiration_ttl: Option<String>,
}

/// What a successful put wrote, for accounting.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PutDone {
    /// Whether the key got an expiration.
    pub with_ttl: bool,
    /// Value bytes written.
    pub bytes: usize,
}

/// One key in a list page.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListedKey {
    /// The key.
    pub name: String,
    /// Absolute expiration in seconds, if any.
    pub expiration: Option<u64>,
    /// Metadata JSON text, if any.
    pub metadata: Option<String>,
}

/// One page of a list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListPage {
    /// Keys in UTF-8 byte order.
    pub keys: Vec<ListedKey>,
    /// True when no key after this page matches.
    pub list_complete: bool,
    /// Opaque position to continue from (present when not complete).
    pub cursor: Option<String>,
}

#[derive(Clone, Debug)]
struct Version {
    /// Virtual ms from which this version is the current one.
    from_ms: u64,
    /// `None`: the key did not exist (deleted).
    entry: Option<Entry>,
}

#[derive(Clone, Debug, Default)]
struct Slot {
    /// Oldest first; the last is current. Longer than one only while stale
    /// reads need history.
    versions: VecDeque<Version>,
    last_write_ms: Option<u64>,
}

impl Slot {
    fn current(&self) -> Option<&Entry> {
        self.versions.back().and_then(|v| v.entry.as_ref())
    }

    fn as_of(&self, t_ms: u64) -> Option<&Entry> {
        self.versions
            .iter()
            .rev()
            .find(|v| v.from_ms <= t_ms)
            .and_then(|v| v.entry.as_ref())
    }

    /// Drop versions nobody can read any more: keep the newest one that was
    /// current at `cutoff_ms` and everything after it.
    fn prune(&mut self, cutoff_ms: u64) {
        while self.versions.len() > 1 && self.versions[1].from_ms <= cutoff_ms {
            self.versions.pop_front();
        }
    }
}

/// One namespace: keys sorted by UTF-8 bytes (`String`'s order).
#[derive(Clone, Debug, Default)]
struct Namespace {
    slots: BTreeMap<String, Slot>,
}

/// All namespaces. Not synchronised: the caller holds it behind a mutex.
#[derive(Debug, Default)]
pub struct Store {
    namespaces: BTreeMap<String, Namespace>,
    /// How far back (virtual ms) stale reads may look; 0 keeps no history.
    history_ms: u64,
}

/// Check a key name the way Cloudflare does.
pub fn validate_key(key: &str) -> Result<(), KvError> {
    if key.is_empty() {
        return Err(KvError::invalid(400, "Key names must not be empty"));
    }
    if key == "." || key == ".." {
        return Err(KvError::invalid(
            400,
            format!("Illegal key name \"{key}\". Please use a different name."),
        ));
    }
    validate_key_length(key)
}

fn validate_key_length(key: &str) -> Result<(), KvError> {
    if key.len() > MAX_KEY_BYTES {
        return Err(KvError::invalid(
            414,
            format!(
                "UTF-8 encoded length of {} exceeds key length limit of {MAX_KEY_BYTES}.",
                key.len()
            ),
        ));
    }
    Ok(())
}

/// Check a list page size (`key_count_limit` / `limit`).
pub fn validate_list_limit(param: &str, raw: Option<&str>) -> Result<usize, KvError> {
    let Some(raw) = raw else {
        return Ok(MAX_LIST_LIMIT);
    };
    match raw.trim().parse::<i64>() {
        Ok(n) if n >= 1 && n as usize <= MAX_LIST_LIMIT => Ok(n as usize),
        Ok(n) if n > MAX_LIST_LIMIT as i64 => Err(KvError::invalid(
            400,
            format!(
                "Invalid {param} of {raw}. Please specify an integer less than {MAX_LIST_LIMIT}."
            ),
        )),
        _ => Err(KvError::invalid(
            400,
            format!("Invalid {param} of {raw}. Please specify an integer greater than 0."),
        )),
    }
}

/// Validate put options; returns (absolute expiration in s, metadata).
fn validate_put(now_s: u64, req: &PutRequest) -> Result<Option<u64>, KvError> {
    let mut expiration = None;
    if let Some(raw) = &req.expiration_ttl {
        let ttl = match raw.trim().parse::<i64>() {
            Ok(n) if n > 0 => n as u64,
            _ => {
                return Err(KvError::invalid(
                    400,
                    format!(
                        "Invalid expiration_ttl of {raw}. Please specify integer greater than 0."
                    ),
                ));
            }
        };
        if ttl < MIN_EXPIRATION_TTL_S {
            return Err(KvError::invalid(
                400,
                format!(
                    "Invalid expiration_ttl of {raw}. Expiration TTL must be at least {MIN_EXPIRATION_TTL_S}."
                ),
            ));
        }
        expiration = Some(now_s.saturating_add(ttl));
    } else if let Some(raw) = &req.expiration {
        let at = match raw.trim().parse::<i64>() {
            Ok(n) if n > 0 && n as u64 > now_s => n as u64,
            _ => {
                return Err(KvError::invalid(
                    400,
                    format!(
                        "Invalid expiration of {raw}. Please specify integer greater than the current number of seconds since the UNIX epoch."
                    ),
                ));
            }
        };
        if at < now_s + MIN_EXPIRATION_TTL_S {
            return Err(KvError::invalid(
                400,
                format!(
                    "Invalid expiration of {raw}. Expiration times must be at least {MIN_EXPIRATION_TTL_S} seconds in the future."
                ),
            ));
        }
        expiration = Some(at);
    }
    if let Some(meta) = &req.metadata {
        if meta.len() > MAX_METADATA_BYTES {
            return Err(KvError::invalid(
                413,
                format!(
                    "Metadata length of {} exceeds limit of {MAX_METADATA_BYTES}.",
                    meta.len()
                ),
            ));
        }
        if serde_json::from_str::<serde_json::Value>(meta).is_err() {
            return Err(KvError::invalid(400, "Metadata is not valid JSON."));
        }
    }
    if req.value.len() > MAX_VALUE_BYTES {
        return Err(value_too_large(req.value.len()));
    }
    Ok(expiration)
}

/// Check a put (key, options, sizes) without writing it.
pub fn check_put(key: &str, req: &PutRequest, now_ms: u64) -> Result<(), KvError> {
    validate_key(key)?;
    validate_put(now_ms / 1000, req).map(|_| ())
}

/// The error for a value over 25 MiB (also used before the body is read).
pub fn value_too_large(len: usize) -> KvError {
    KvError::invalid(
        413,
        format!("Value length of {len} exceeds limit of {MAX_VALUE_BYTES}."),
    )
}

/// Encode a list position as an opaque cursor (hex of the last key).
fn encode_cursor(key: &str) -> String {
    key.bytes().map(|b| format!("{b:02x}")).collect()
}

fn decode_cursor(cursor: &str) -> Result<String, KvError> {
    let bad = || KvError::invalid(400, format!("Invalid cursor \"{cursor}\"."));
    if cursor.len() % 2 != 0 {
        return Err(bad());
    }
    let bytes = (0..cursor.len())
        .step_by(2)
        .map(|i| {
            cursor
                .get(i..i + 2)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        })
        .collect::<Option<Vec<u8>>>()
        .ok_or_else(bad)?;
    String::from_utf8(bytes).map_err(|_| bad())
}

impl Store {
    /// Keep enough history for stale reads up to `ms` old (never shrinks
    /// below what an earlier rule asked for while data exists).
    pub fn keep_history(&mut self, ms: u64) {
        self.history_ms = self.history_ms.max(ms);
    }

    /// Forget every key; namespaces stay (they were created or written before).
    pub fn clear(&mut self) {
        for n in self.namespaces.values_mut() {
            n.slots.clear();
        }
    }

    /// Names of namespaces that exist: created, or written through the binding door.
    pub fn namespace_names(&self) -> Vec<String> {
        self.namespaces.keys().cloned().collect()
    }

    /// Create an empty namespace (no-op when it exists); true when it is new.
    pub fn create_namespace(&mut self, ns: &str) -> bool {
        if self.namespaces.contains_key(ns) {
            return false;
        }
        self.namespaces.insert(ns.to_owned(), Namespace::default());
        true
    }

    /// Whether a namespace exists (created, or written once).
    pub fn has_namespace(&self, ns: &str) -> bool {
        self.namespaces.contains_key(ns)
    }

    /// Number of live keys in a namespace.
    pub fn live_keys(&self, ns: &str, now_ms: u64) -> usize {
        self.namespaces.get(ns).map_or(0, |n| {
            n.slots
                .values()
                .filter(|s| s.current().is_some_and(|e| e.live_at(now_ms)))
                .count()
        })
    }

    /// Read a key. With `as_of_ms`, read it as another location would that
    /// last saw the key at that time (a cached miss stays a miss).
    pub fn get(
        &self,
        ns: &str,
        key: &str,
        now_ms: u64,
        as_of_ms: Option<u64>,
    ) -> Result<Option<Entry>, KvError> {
        validate_key(key)?;
        let Some(slot) = self.namespaces.get(ns).and_then(|n| n.slots.get(key)) else {
            return Ok(None);
        };
        let entry = match as_of_ms {
            Some(t) => slot.as_of(t),
            None => slot.current(),
        };
        Ok(entry.filter(|e| e.live_at(now_ms)).cloned())
    }

    /// Write a key.
    pub fn put(
        &mut self,
        ns: &str,
        key: &str,
        req: PutRequest,
        now_ms: u64,
        same_key_limit: bool,
    ) -> Result<PutDone, KvError> {
        validate_key(key)?;
        let expiration = validate_put(now_ms / 1000, &req)?;
        let history_ms = self.history_ms;
        let slot = self
            .namespaces
            .entry(ns.to_owned())
            .or_default()
            .slots
            .entry(key.to_owned())
            .or_default();
        if same_key_limit
            && slot
                .last_write_ms
                .is_some_and(|last| now_ms.saturating_sub(last) < SAME_KEY_WRITE_INTERVAL_MS)
        {
            return Err(KvError::SameKeyRate);
        }
        let done = PutDone {
            with_ttl: expiration.is_some(),
            bytes: req.value.len(),
        };
        // Most keys only ever hold their current version: room for exactly one, not the
        // four a first push_back would reserve (~240 bytes a key at a million keys).
        if slot.versions.capacity() == 0 {
            slot.versions.reserve_exact(1);
        }
        slot.versions.push_back(Version {
            from_ms: now_ms,
            entry: Some(Entry {
                value: req.value,
                metadata: req.metadata,
                expiration,
            }),
        });
        slot.last_write_ms = Some(now_ms);
        slot.prune(now_ms.saturating_sub(history_ms));
        Ok(done)
    }

    /// Delete a key (deleting a missing key succeeds, as in KV).
    pub fn delete(&mut self, ns: &str, key: &str, now_ms: u64) -> Result<(), KvError> {
        validate_key(key)?;
        let history_ms = self.history_ms;
        let Some(slots) = self.namespaces.get_mut(ns).map(|n| &mut n.slots) else {
            return Ok(());
        };
        if history_ms == 0 {
            slots.remove(key);
            return Ok(());
        }
        if let Some(slot) = slots.get_mut(key) {
            if slot.current().is_some() {
                slot.versions.push_back(Version {
                    from_ms: now_ms,
                    entry: None,
                });
            }
            slot.prune(now_ms.saturating_sub(history_ms));
        }
        Ok(())
    }

    /// One page of keys starting with `prefix`, after `cursor`.
    pub fn list(
        &self,
        ns: &str,
        prefix: &str,
        cursor: Option<&str>,
        limit: usize,
        now_ms: u64,
    ) -> Result<ListPage, KvError> {
        validate_key_length(prefix)?;
        let after = cursor
            .filter(|c| !c.is_empty())
            .map(decode_cursor)
            .transpose()?;
        let limit = limit.clamp(1, MAX_LIST_LIMIT);
        let Some(n) = self.namespaces.get(ns) else {
            return Ok(ListPage {
                keys: Vec::new(),
                list_complete: true,
                cursor: None,
            });
        };
        let lower = match &after {
            Some(a) if a.as_str() >= prefix => Bound::Excluded(a.as_str()),
            _ => Bound::Included(prefix),
        };
        let mut live = n
            .slots
            .range::<str, _>((lower, Bound::Unbounded))
            .take_while(|(k, _)| k.starts_with(prefix))
            .filter_map(|(k, s)| s.current().filter(|e| e.live_at(now_ms)).map(|e| (k, e)));
        let keys: Vec<ListedKey> = live
            .by_ref()
            .take(limit)
            .map(|(k, e)| ListedKey {
                name: k.clone(),
                expiration: e.expiration,
                metadata: e.metadata.clone(),
            })
            .collect();
        let list_complete = live.next().is_none();
        let cursor = match keys.last() {
            Some(last) if !list_complete => Some(encode_cursor(&last.name)),
            _ => None,
        };
        Ok(ListPage {
            keys,
            list_complete,
            cursor,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: u64 = 1_700_000_000_000;

    fn put(value: &str) -> PutRequest {
        PutRequest {
            value: Bytes::from(value.to_owned()),
            ..Default::default()
        }
    }

    #[test]
    fn put_get_delete_round_trip() {
        let mut s = Store::default();
        s.put("ns", "a", put("1"), T0, true).unwrap();
        assert_eq!(s.get("ns", "a", T0, None).unwrap().unwrap().value, "1");
        assert_eq!(s.get("other", "a", T0, None).unwrap(), None);
        s.delete("ns", "a", T0).unwrap();
        assert_eq!(s.get("ns", "a", T0, None).unwrap(), None);
        s.delete("ns", "never", T0).unwrap();
    }

    #[test]
    fn ttl_expires_on_the_virtual_clock() {
        let mut s = Store::default();
        let mut req = put("v");
        req.expiration_ttl = Some("60".into());
        let done = s.put("ns", "k", req, T0, true).unwrap();
        assert!(done.with_ttl);
        assert!(s.get("ns", "k", T0 + 59_999, None).unwrap().is_some());
        assert!(s.get("ns", "k", T0 + 60_000, None).unwrap().is_none());
        assert!(
            s.list("ns", "", None, 10, T0 + 60_000)
                .unwrap()
                .keys
                .is_empty()
        );
    }

    #[test]
    fn expiration_rules_use_cloudflare_wording() {
        let mut s = Store::default();
        let cases = [
            (
                None,
                Some("59"),
                "Invalid expiration_ttl of 59. Expiration TTL must be at least 60.",
            ),
            (
                None,
                Some("0"),
                "Invalid expiration_ttl of 0. Please specify integer greater than 0.",
            ),
            (
                None,
                Some("x"),
                "Invalid expiration_ttl of x. Please specify integer greater than 0.",
            ),
            (
                Some("1700000030"),
                None,
                "Invalid expiration of 1700000030. Expiration times must be at least 60 seconds in the future.",
            ),
            (
                Some("1"),
                None,
                "Invalid expiration of 1. Please specify integer greater than the current number of seconds since the UNIX epoch.",
            ),
        ];
        for (exp, ttl, msg) in cases {
            let mut req = put("v");
            req.expiration = exp.map(str::to_owned);
            req.expiration_ttl = ttl.map(str::to_owned);
            let err = s.put("ns", "k", req, T0, false).unwrap_err();
            assert_eq!(err, KvError::invalid(400, msg));
        }
        let mut ok = put("v");
        ok.expiration = Some("1700000060".into());
        assert!(s.put("ns", "k", ok, T0, false).unwrap().with_ttl);
    }

    #[test]
    fn size_limits() {
        let mut s = Store::default();
        let long = "k".repeat(513);
        let err = s.put("ns", &long, put("v"), T0, true).unwrap_err();
        assert_eq!(err.status(), 414);
        assert_eq!(
            err.to_string(),
            "UTF-8 encoded length of 513 exceeds key length limit of 512."
        );
        assert!(s.put("ns", &"k".repeat(512), put("v"), T0, true).is_ok());
        let mut req = put("v");
        req.metadata = Some(format!("\"{}\"", "m".repeat(1023)));
        let err = s.put("ns", "m", req, T0, true).unwrap_err();
        assert_eq!(
            err.to_string(),
            "Metadata length of 1025 exceeds limit of 1024."
        );
        let big = PutRequest {
            value: Bytes::from(vec![0u8; MAX_VALUE_BYTES + 1]),
            ..Default::default()
        };
        assert_eq!(s.put("ns", "big", big, T0, true).unwrap_err().status(), 413);
        assert_eq!(validate_key("").unwrap_err().status(), 400);
        assert_eq!(validate_key("..").unwrap_err().status(), 400);
    }

    #[test]
    fn same_key_writes_within_a_second_are_refused() {
        let mut s = Store::default();
        s.put("ns", "k", put("1"), T0, true).unwrap();
        assert_eq!(
            s.put("ns", "k", put("2"), T0 + 999, true),
            Err(KvError::SameKeyRate)
        );
        s.put("ns", "other", put("x"), T0 + 1, true).unwrap();
        s.put("ns", "k", put("3"), T0 + 1000, true).unwrap();
        s.put("ns", "k", put("4"), T0 + 1001, false).unwrap();
    }

    #[test]
    fn list_pages_in_byte_order_with_prefix_and_cursor() {
        let mut s = Store::default();
        for k in ["b", "a:2", "a:10", "a:1", "é", "Z"] {
            s.put("ns", k, put(k), T0, true).unwrap();
        }
        let p1 = s.list("ns", "a:", None, 2, T0).unwrap();
        let names: Vec<_> = p1.keys.iter().map(|k| k.name.as_str()).collect();
        assert_eq!(names, ["a:1", "a:10"]);
        assert!(!p1.list_complete);
        let p2 = s.list("ns", "a:", p1.cursor.as_deref(), 2, T0).unwrap();
        assert_eq!(p2.keys.len(), 1);
        assert!(p2.list_complete);
        assert_eq!(p2.cursor, None);
        let all = s.list("ns", "", None, 1000, T0).unwrap();
        let names: Vec<_> = all.keys.iter().map(|k| k.name.as_str()).collect();
        assert_eq!(names, ["Z", "a:1", "a:10", "a:2", "b", "é"]);
        assert_eq!(
            s.list("ns", "", Some("zz"), 5, T0).unwrap_err().status(),
            400
        );
    }

    #[test]
    fn list_paging_over_thousands_with_interleaved_deletes() {
        let mut s = Store::default();
        for i in 0..5000 {
            s.put("ns", &format!("k:{i:05}"), put("v"), T0, true)
                .unwrap();
        }
        let mut seen = Vec::new();
        let mut cursor: Option<String> = None;
        let mut deleted = std::collections::BTreeSet::new();
        loop {
            let page = s.list("ns", "k:", cursor.as_deref(), 1000, T0).unwrap();
            assert!(page.keys.len() <= 1000);
            seen.extend(page.keys.iter().map(|k| k.name.clone()));
            // Delete some keys ahead of the cursor: they must never show up.
            for i in (0..5000).step_by(7) {
                let k = format!("k:{i:05}");
                if seen.last().is_some_and(|l| &k > l) && deleted.insert(k.clone()) {
                    s.delete("ns", &k, T0).unwrap();
                }
            }
            if page.list_complete {
                break;
            }
            cursor = page.cursor;
        }
        let sorted = {
            let mut v = seen.clone();
            v.sort();
            v.dedup();
            v
        };
        assert_eq!(seen, sorted, "no duplicates, in order");
        assert!(seen.iter().all(|k| !deleted.contains(k)));
        assert_eq!(seen.len() + deleted.len(), 5000);
    }

    #[test]
    fn stale_reads_see_history_including_cached_misses() {
        let mut s = Store::default();
        s.keep_history(60_000);
        s.put("ns", "k", put("v1"), T0, true).unwrap();
        s.put("ns", "k", put("v2"), T0 + 10_000, true).unwrap();
        s.delete("ns", "k", T0 + 20_000).unwrap();
        let at = |t| {
            s.get("ns", "k", T0 + 25_000, Some(t))
                .unwrap()
                .map(|e| e.value)
        };
        assert_eq!(
            at(T0 - 1),
            None,
            "a miss before the first write stays a miss"
        );
        assert_eq!(at(T0 + 5_000).unwrap(), "v1");
        assert_eq!(at(T0 + 15_000).unwrap(), "v2");
        assert_eq!(at(T0 + 21_000), None);
        assert_eq!(s.get("ns", "k", T0 + 25_000, None).unwrap(), None);
    }
}
