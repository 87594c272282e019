//! The forms a secret takes on its way through a Worker and its libraries, each masked on its
//! own: raw; percent-encoded (as `encodeURIComponent`, RFC 3986 strict and form encoding, upper
//! and lower case hex); JSON-escaped (as `JSON.stringify`, and with `\uXXXX` for non-ASCII);
//! JS-escaped inside single quotes (as `console.log` prints an object's strings); base64 and
//! base64url of the secret at each of the three byte alignments, so that it is found inside a
//! longer encoded text such as the Basic credential `base64("user:" + secret)`.

use base64::Engine as _;

/// Shortest base64 fragment masked for a secret that sits at an offset inside a longer encoded
/// text: shorter fragments (secrets under about six bytes) would mask unrelated base64.
const MIN_SHIFTED_BASE64: usize = 6;

/// Every form of `secret` to mask (may repeat; the caller drops duplicates).
pub(super) fn forms(secret: &str) -> Vec<Vec<u8>> {
    let mut out = vec![secret.as_bytes().to_vec()];
    for keep in [URI_COMPONENT, UNRESERVED] {
        for upper in [true, false] {
            out.push(percent(secret, keep, upper, false).into_bytes());
            out.push(percent(secret, keep, upper, true).into_bytes());
        }
    }
    out.push(json_escaped(secret, false).into_bytes());
    out.push(json_escaped(secret, true).into_bytes());
    out.push(js_single_quoted(secret).into_bytes());
    for engine in [
        &base64::engine::general_purpose::STANDARD,
        &base64::engine::general_purpose::URL_SAFE,
    ] {
        for shift in 0..3 {
            if let Some(f) = base64_fragment(engine, secret.as_bytes(), shift) {
                out.push(f.into_bytes());
            }
        }
    }
    out
}

/// Bytes `encodeURIComponent` leaves as they are (besides ASCII letters and digits).
const URI_COMPONENT: &[u8] = b"-_.!~*'()";
/// RFC 3986 unreserved characters (besides ASCII letters and digits).
const UNRESERVED: &[u8] = b"-_.~";

fn percent(s: &str, keep: &[u8], upper: bool, form: bool) -> String {
    let mut out = String::with_capacity(s.len() * 3);
    for &b in s.as_bytes() {
        if b.is_ascii_alphanumeric() || keep.contains(&b) {
            out.push(char::from(b));
        } else if form && b == b' ' {
            out.push('+');
        } else if upper {
            out.push_str(&format!("%{b:02X}"));
        } else {
            out.push_str(&format!("%{b:02x}"));
        }
    }
    out
}

fn json_escaped(s: &str, ascii_only: bool) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c if (c as u32) < 0x20 || (ascii_only && !c.is_ascii()) => {
                let mut units = [0u16; 2];
                for u in c.encode_utf16(&mut units) {
                    out.push_str(&format!("\\u{u:04x}"));
                }
            }
            c => out.push(c),
        }
    }
    out
}

fn js_single_quoted(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    for c in s.chars() {
        match c {
            '\'' => out.push_str("\\'"),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\x{:02X}", c as u32)),
            c => out.push(c),
        }
    }
    out
}

/// The base64 characters that depend only on `secret` when it follows `shift` other bytes
/// (0, 1 or 2) in the encoded text; `None` when too short to mask safely.
fn base64_fragment(
    engine: &base64::engine::GeneralPurpose,
    secret: &[u8],
    shift: usize,
) -> Option<String> {
    let mut padded = vec![0u8; shift];
    padded.extend_from_slice(secret);
    let encoded = engine.encode(&padded);
    // Character i covers bits [6i, 6i + 6); the secret covers bits [8 shift, 8 (shift + n)).
    let first = (8 * shift).div_ceil(6);
    let end = (8 * (shift + secret.len())) / 6;
    let fragment = encoded.get(first..end)?.to_owned();
    let enough = if shift == 0 {
        !fragment.is_empty()
    } else {
        fragment.len() >= MIN_SHIFTED_BASE64
    };
    enough.then_some(fragment)
}
