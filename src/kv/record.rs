//! The files `kvchaos kv` writes and reads back: dump lines ([`Record`], one JSON object per
//! line, in the shape of Cloudflare's bulk write body), the manifest beside a dump
//! ([`Manifest`]), the verify record ([`VerifyRecord`]) and the key-list hash they share.
//!
//! Owns: these formats, their size caps and their parsing, with errors that name the file and
//! line. Does not own: where the bytes are stored (see [`super::store`]) or decryption (see
//! [`super::secret`]).

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::KvError;

/// Largest dump read back, in bytes (decrypted).
pub const MAX_DUMP_BYTES: u64 = 2 * 1024 * 1024 * 1024;
/// Most lines a dump may have.
pub const MAX_DUMP_LINES: usize = 10_000_000;
/// Longest dump line: a 25 MiB value in base64, metadata and the key.
pub const MAX_LINE_BYTES: usize = 36 * 1024 * 1024;
/// Largest manifest, verify record or plan read back.
pub const MAX_SIDE_FILE_BYTES: u64 = 64 * 1024 * 1024;
/// The `format` field of a manifest.
pub const MANIFEST_FORMAT: &str = "kvchaos-kv-dump/1";

/// One key of a dump.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Record {
    /// The key.
    pub key: String,
    /// The value: text, or base64 of the bytes when `base64` is true.
    pub value: String,
    /// Whether `value` is base64 (the value is not UTF-8 text).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub base64: bool,
    /// Metadata (JSON).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Value>,
    /// Absolute expiration, seconds since the epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expiration: Option<u64>,
}

/// What `kvchaos kv dump` says about one dump, written beside it as `DUMP.manifest.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// [`MANIFEST_FORMAT`].
    pub format: String,
    /// Account id.
    pub account_id: String,
    /// Namespace id.
    pub namespace_id: String,
    /// The prefix dumped.
    pub prefix: String,
    /// Keys in the dump.
    pub count: u64,
    /// sha256 (hex) of the dump file as stored (encrypted bytes when encrypted).
    pub sha256: String,
    /// [`keys_sha256`] of the dumped keys.
    pub keys_sha256: String,
    /// Whether the dump is age-encrypted.
    pub encrypted: bool,
    /// Start of the dump (RFC 3339, UTC), of its first run when resumed.
    pub started_at: String,
    /// End of the dump (RFC 3339, UTC).
    pub ended_at: String,
    /// Who ran it: `--actor`, else the token's id, else "unknown".
    pub actor: String,
    /// `git rev-parse HEAD` where it ran, when inside a git work tree.
    pub git_commit: Option<String>,
    /// API requests of this run: lists, bulk gets and single gets.
    pub requests: RequestCounts,
}

/// API requests by kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestCounts {
    /// `GET …/keys` pages.
    pub list: u64,
    /// `POST …/bulk/get` calls.
    pub bulk_get: u64,
    /// `GET …/values/{key}` calls (values that are not text).
    pub get: u64,
}

/// The result of `kvchaos kv verify`, written beside the dump as `DUMP.verify.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VerifyRecord {
    /// sha256 of the dump file verified.
    pub dump_sha256: String,
    /// [`keys_sha256`] of the dump's keys.
    pub keys_sha256: String,
    /// Keys in the dump.
    pub count: u64,
    /// What it was compared with (no secrets: a path, or d1://ID).
    pub against: String,
    /// Keys on the other side.
    pub against_count: u64,
    /// Whether both sides hold the same keys.
    pub equal: bool,
    /// When (RFC 3339, UTC).
    pub at: String,
}

/// sha256 of `bytes`, lower-case hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// sha256 of the keys sorted by UTF-8 bytes and deduplicated, each followed by `\n`: one hash
/// for one key set, whatever order the keys came in.
pub fn keys_sha256<'a>(keys: impl IntoIterator<Item = &'a str>) -> String {
    let mut sorted: Vec<&str> = keys.into_iter().collect();
    sorted.sort_unstable();
    sorted.dedup();
    let mut h = Sha256::new();
    for k in sorted {
        h.update(k.as_bytes());
        h.update(b"\n");
    }
    hex(&h.finalize())
}

/// One dump line (with its newline).
pub fn line(record: &Record) -> Vec<u8> {
    // A struct of strings, numbers and JSON values: serialising cannot fail.
    let mut out = serde_json::to_vec(record).unwrap_or_default();
    out.push(b'\n');
    out
}

/// Parse a (decrypted) dump; `origin` names it in errors.
pub fn parse_dump(bytes: &[u8], origin: &str) -> Result<Vec<Record>, KvError> {
    if bytes.len() as u64 > MAX_DUMP_BYTES {
        return Err(KvError::Usage(format!(
            "{origin}: the dump is {} bytes, more than the {MAX_DUMP_BYTES} read back; split it by prefix",
            bytes.len()
        )));
    }
    let mut out = Vec::new();
    for (i, raw) in bytes.split(|b| *b == b'\n').enumerate() {
        if raw.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        if out.len() >= MAX_DUMP_LINES {
            return Err(KvError::Usage(format!(
                "{origin}: more than {MAX_DUMP_LINES} lines; split the dump by prefix"
            )));
        }
        if raw.len() > MAX_LINE_BYTES {
            return Err(KvError::Usage(format!(
                "{origin}:{}: the line is {} bytes, longer than {MAX_LINE_BYTES}",
                i + 1,
                raw.len()
            )));
        }
        let r: Record = serde_json::from_slice(raw).map_err(|e| {
            KvError::Usage(format!(
                "{origin}:{}: not a dump line ({e}); expected {{\"key\": …, \"value\": …}} as written by kvchaos kv dump",
                i + 1
            ))
        })?;
        out.push(r);
    }
    Ok(out)
}

/// Parse a JSON side file (manifest, verify record, plan); `origin` names it in errors.
pub fn parse_side<T: serde::de::DeserializeOwned>(
    bytes: &[u8],
    origin: &str,
) -> Result<T, KvError> {
    serde_json::from_slice(bytes).map_err(|e| KvError::Usage(format!("{origin}: {e}")))
}

/// Now as RFC 3339 UTC with seconds (`2026-12-01T21:00:00Z`).
pub fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_hash_ignores_order_and_duplicates() {
        assert_eq!(keys_sha256(["b", "a", "a"]), keys_sha256(["a", "b"]));
        assert_ne!(keys_sha256(["a", "b"]), keys_sha256(["a", "b", "c"]));
        assert_ne!(
            keys_sha256(["ab"]),
            keys_sha256(["a", "b"]),
            "keys are delimited"
        );
    }

    #[test]
    fn dump_lines_round_trip_and_bad_lines_are_named() {
        let r = Record {
            key: "k:1".into(),
            value: "AAE=".into(),
            base64: true,
            metadata: Some(serde_json::json!({"m": 1})),
            expiration: Some(1_900_000_000),
        };
        let mut bytes = line(&r);
        bytes.extend_from_slice(b"\n");
        assert_eq!(parse_dump(&bytes, "d").unwrap(), vec![r]);
        let e = parse_dump(
            b"{\"key\":\"a\",\"value\":\"v\"}\n{\"nope\":1}\n",
            "d.ndjson",
        )
        .unwrap_err()
        .to_string();
        assert!(e.starts_with("d.ndjson:2: not a dump line"), "{e}");
        assert!(
            parse_dump(b"\xff\xfe", "d").is_err(),
            "garbage is an error, not a panic"
        );
    }
}
