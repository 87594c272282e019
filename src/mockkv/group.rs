//! The rule that names the group a key is counted under in `mockkv.json`.
//!
//! Owns: splitting a key into segments (each ending at `:` or `/`), keeping the first few,
//! and collapsing segments that look like ids (numbers, uuids, long hex, long mixed tokens) to
//! `{id}`, so `token:<user>:<session>` keys of a million users are one group, not a million.
//! Does not own: the counters themselves (see `stats`).

use std::borrow::Cow;

/// Placeholder a collapsed id segment is written as.
pub const ID: &str = "{id}";

/// How keys are grouped: the number of leading segments kept (a key's last segment, the leaf,
/// is never part of its group). `segments = 0` puts every key in the empty group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GroupRule {
    /// Leading key segments that name a group.
    pub segments: usize,
}

impl Default for GroupRule {
    /// The first segment: `token:alice:42` → `token:`, `user/42/profile` → `user/`.
    fn default() -> Self {
        GroupRule { segments: 1 }
    }
}

impl GroupRule {
    /// The group `key` is counted under: up to `segments` leading segments with their
    /// separators, id-like segments written as `{id}`; the empty string for a key without a
    /// separator. Allocates only when a segment collapses.
    pub fn group<'a>(&self, key: &'a str) -> Cow<'a, str> {
        let mut end = 0;
        let mut kept = 0;
        let mut collapse = false;
        for (i, c) in key.char_indices() {
            if kept == self.segments {
                break;
            }
            if c == ':' || c == '/' {
                collapse |= looks_like_id(&key[end..i]);
                end = i + 1;
                kept += 1;
            }
        }
        let head = &key[..end];
        if !collapse {
            return Cow::Borrowed(head);
        }
        let mut out = String::with_capacity(head.len());
        let mut start = 0;
        for (i, c) in head.char_indices() {
            if c == ':' || c == '/' {
                let seg = &head[start..i];
                out.push_str(if looks_like_id(seg) { ID } else { seg });
                out.push(c);
                start = i + 1;
            }
        }
        Cow::Owned(out)
    }
}

/// Whether a key segment is an id rather than a name: all digits; a uuid; 8 or more hex
/// digits with at least one digit; or 20 or more letters, digits, `-` and `_` with at least
/// one digit and one letter (ULIDs, nanoids, base64url tokens).
pub fn looks_like_id(seg: &str) -> bool {
    let b = seg.as_bytes();
    if b.is_empty() {
        return false;
    }
    let digits = b.iter().filter(|c| c.is_ascii_digit()).count();
    if digits == b.len() {
        return true;
    }
    if is_uuid(b) {
        return true;
    }
    if b.len() >= 8 && digits > 0 && b.iter().all(u8::is_ascii_hexdigit) {
        return true;
    }
    b.len() >= 20
        && digits > 0
        && b.iter().any(u8::is_ascii_alphabetic)
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || *c == b'-' || *c == b'_')
}

fn is_uuid(b: &[u8]) -> bool {
    b.len() == 36
        && b.iter().enumerate().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => *c == b'-',
            _ => c.is_ascii_hexdigit(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn g(segments: usize, key: &str) -> String {
        GroupRule { segments }.group(key).into_owned()
    }

    #[test]
    fn default_is_the_first_segment_up_to_a_colon_or_slash() {
        let d = GroupRule::default();
        assert_eq!(d.group("token:alice:s1"), "token:");
        assert_eq!(d.group("token:bob:s2"), "token:");
        assert_eq!(d.group("user/42/profile"), "user/");
        assert_eq!(d.group("plain"), "");
        assert_eq!(d.group("lock:"), "lock:");
        assert!(matches!(d.group("queue:jobs:1"), Cow::Borrowed(_)));
    }

    #[test]
    fn ids_collapse_in_every_kept_segment() {
        assert_eq!(g(1, "42:profile"), "{id}:");
        assert_eq!(g(2, "user:42:profile"), "user:{id}:");
        assert_eq!(
            g(2, "session:0b5e2c1e-7f6a-4f1e-9c3d-2a9f8e7d6c5b:data"),
            "session:{id}:"
        );
        assert_eq!(g(2, "blob/deadbeef01/x"), "blob/{id}/");
        assert_eq!(g(2, "t:01HZX3K9Q8W7E6R5T4Y3U2I1O0:x"), "t:{id}:");
        assert_eq!(g(3, "a:b:c:d"), "a:b:c:");
        assert_eq!(g(9, "a:b:c"), "a:b:");
        assert_eq!(g(0, "a:b"), "");
    }

    #[test]
    fn names_are_not_ids() {
        for name in [
            "token",
            "queue",
            "cafe",
            "deadbeef",
            "webhook-events",
            "v2",
            "ab12",
        ] {
            assert!(!looks_like_id(name), "{name}");
        }
        for id in [
            "0",
            "1700000000",
            "a1b2c3d4e5",
            "0b5e2c1e-7f6a-4f1e-9c3d-2a9f8e7d6c5b",
        ] {
            assert!(looks_like_id(id), "{id}");
        }
    }
}
