//! Details of the binding protocol that Cloudflare documents only by behaviour, matched to
//! workerd's KV class and miniflare's KV service (the reference a Worker meets locally):
//! `cache_ttl` validation, reading a put body to its end before answering an error, and the
//! key order of a bulk get's answer (a JavaScript object's).
//!
//! Does not own: the routes (see [`super::binding`]) or KV semantics (see [`super::store`]).

use axum::body::Body;
use http_body_util::BodyExt as _;
use serde_json::Value;

use super::store;

/// Shortest `cacheTtl` a read may ask for, in seconds (Cloudflare's documented minimum).
pub const MIN_CACHE_TTL_S: f64 = 30.0;

/// Bytes of a refused body read and discarded before answering, so the client reads the
/// error instead of a reset connection; past this the connection is closed.
const MAX_DRAIN_BYTES: usize = 64 * 1024 * 1024;

/// miniflare's message for a bad `cache_ttl` (the number as JavaScript prints it).
pub fn cache_ttl_error(shown: &str) -> String {
    format!("Invalid cache_ttl of {shown}. Cache TTL must be at least 30.")
}

/// Checks the `cache_ttl` query parameter of a get as miniflare does (`parseInt`, then NaN or
/// below 30 is refused); `Err` is the reason phrase.
pub fn check_cache_ttl_param(raw: Option<&str>) -> Result<(), String> {
    let Some(raw) = raw else { return Ok(()) };
    match parse_int(raw) {
        Some(n) if (n as f64) >= MIN_CACHE_TTL_S => Ok(()),
        Some(n) => Err(cache_ttl_error(&n.to_string())),
        None => Err(cache_ttl_error("NaN")),
    }
}

/// Checks a bulk get body's `cacheTtl` (any JSON value) as miniflare does
/// (`isNaN(v) || v < 30`).
pub fn check_cache_ttl_value(v: Option<&Value>) -> Result<(), String> {
    let n = match v {
        None => return Ok(()),
        Some(Value::Number(n)) => n.as_f64().unwrap_or(f64::NAN),
        Some(Value::Null) => 0.0,
        Some(Value::Bool(b)) => f64::from(u8::from(*b)),
        Some(Value::String(s)) => js_number(s),
        Some(_) => f64::NAN,
    };
    if n.is_nan() || n < MIN_CACHE_TTL_S {
        return Err(cache_ttl_error(&js_display(v, n)));
    }
    Ok(())
}

/// JavaScript's `parseInt(s, 10)`: optional sign and leading digits after whitespace.
fn parse_int(s: &str) -> Option<i128> {
    let t = s.trim_start();
    let (neg, digits) = match t.as_bytes().first() {
        Some(b'-') => (true, &t[1..]),
        Some(b'+') => (false, &t[1..]),
        _ => (false, t),
    };
    let end = digits.bytes().take_while(u8::is_ascii_digit).count();
    // Saturate far past any TTL rather than overflow.
    let n: i128 = digits[..end.min(30)].parse().ok()?;
    Some(if neg { -n } else { n })
}

/// JavaScript's `Number(s)` for the common cases (decimal text, whitespace around it).
fn js_number(s: &str) -> f64 {
    let t = s.trim();
    if t.is_empty() {
        return 0.0;
    }
    t.parse::<f64>().unwrap_or(f64::NAN)
}

/// How a template literal prints the value miniflare checked.
fn js_display(v: Option<&Value>, n: f64) -> String {
    match v {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Null) => "null".to_owned(),
        Some(Value::Bool(b)) => b.to_string(),
        Some(Value::Array(_)) | Some(Value::Object(_)) => "[object Object]".to_owned(),
        _ if n.is_nan() => "NaN".to_owned(),
        _ if n.fract() == 0.0 && n.abs() < 1e21 => format!("{}", n as i128),
        _ => n.to_string(),
    }
}

/// Reads a put body of at most 25 MiB. A longer one (declared or sent) is read to its end and
/// discarded, up to [`MAX_DRAIN_BYTES`], so the client gets the 413 rather than a reset.
pub async fn read_value(
    declared: Option<usize>,
    body: Body,
) -> Result<bytes::Bytes, store::KvError> {
    let limit = store::MAX_VALUE_BYTES;
    let mut body = body;
    let mut kept = bytes::BytesMut::new();
    let mut seen = 0usize;
    while let Some(frame) = body.frame().await {
        let Ok(frame) = frame else { break };
        let Ok(data) = frame.into_data() else {
            continue;
        };
        seen = seen.saturating_add(data.len());
        if seen <= limit && declared.is_none_or(|d| d <= limit) {
            kept.extend_from_slice(&data);
        }
        if seen > MAX_DRAIN_BYTES {
            break;
        }
    }
    let len = declared.unwrap_or(0).max(seen);
    if len > limit {
        return Err(store::value_too_large(len));
    }
    Ok(kept.freeze())
}

/// A bulk get's answer as JSON text, keys in the order a JavaScript object keeps them (what
/// miniflare returns and what workerd hands the Worker): array-index keys (`"0"`, `"17"`)
/// first in numeric order, then every other key in the order requested; a repeated key keeps
/// its first place.
pub fn js_ordered_object(entries: Vec<(String, Value)>) -> String {
    let mut index_keys: Vec<(u32, String, Value)> = Vec::new();
    let mut others: Vec<(String, Value)> = Vec::new();
    for (k, v) in entries {
        if let Some(i) = array_index(&k) {
            match index_keys.iter_mut().find(|(j, _, _)| *j == i) {
                Some(slot) => slot.2 = v,
                None => index_keys.push((i, k, v)),
            }
        } else {
            match others.iter_mut().find(|(o, _)| *o == k) {
                Some(slot) => slot.1 = v,
                None => others.push((k, v)),
            }
        }
    }
    index_keys.sort_by_key(|(i, _, _)| *i);
    let mut out = String::from("{");
    let all = index_keys.into_iter().map(|(_, k, v)| (k, v)).chain(others);
    for (n, (k, v)) in all.enumerate() {
        if n > 0 {
            out.push(',');
        }
        out.push_str(&Value::String(k).to_string());
        out.push(':');
        out.push_str(&v.to_string());
    }
    out.push('}');
    out
}

/// `Some(i)` when `k` is a canonical array index (`"0"`, `"42"`, not `"01"`, below 2³² − 1).
fn array_index(k: &str) -> Option<u32> {
    if k.is_empty() || (k.len() > 1 && k.starts_with('0')) || !k.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    k.parse::<u32>().ok().filter(|i| *i != u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_ttl_is_checked_like_miniflare() {
        assert!(check_cache_ttl_param(None).is_ok());
        assert!(check_cache_ttl_param(Some("30")).is_ok());
        assert!(check_cache_ttl_param(Some("60abc")).is_ok());
        assert_eq!(
            check_cache_ttl_param(Some("10")),
            Err("Invalid cache_ttl of 10. Cache TTL must be at least 30.".to_owned())
        );
        assert_eq!(
            check_cache_ttl_param(Some("x")),
            Err(cache_ttl_error("NaN"))
        );
        assert!(check_cache_ttl_value(Some(&serde_json::json!(45))).is_ok());
        assert_eq!(
            check_cache_ttl_value(Some(&serde_json::json!(29.5))),
            Err(cache_ttl_error("29.5"))
        );
        assert_eq!(
            check_cache_ttl_value(Some(&serde_json::json!("abc"))),
            Err(cache_ttl_error("abc"))
        );
        assert_eq!(
            check_cache_ttl_value(Some(&serde_json::json!(null))),
            Err(cache_ttl_error("null"))
        );
    }

    #[test]
    fn bulk_answers_keep_request_order_with_index_keys_first() {
        let e = |k: &str| (k.to_owned(), Value::from(k));
        let text = js_ordered_object(vec![
            e("zeta"),
            e("10"),
            e("alpha"),
            e("2"),
            e("01"),
            e("zeta"),
        ]);
        assert_eq!(
            text,
            r#"{"2":"2","10":"10","zeta":"zeta","alpha":"alpha","01":"01"}"#
        );
    }

    #[tokio::test]
    async fn an_oversized_body_is_read_to_its_end_then_refused() {
        let big = vec![b'x'; store::MAX_VALUE_BYTES + 1];
        let e = read_value(None, Body::from(big)).await.err();
        assert!(
            matches!(e, Some(store::KvError::Invalid { status: 413, .. })),
            "{e:?}"
        );
        let ok = read_value(Some(3), Body::from("abc")).await.ok();
        assert_eq!(ok.as_deref(), Some(&b"abc"[..]));
        let declared = read_value(Some(store::MAX_VALUE_BYTES + 1), Body::from("abc")).await;
        assert!(declared.is_err());
    }

    async fn call(kv: &crate::mockkv::MockKv, req: http::Request<Body>) -> (u16, String, String) {
        use tower::ServiceExt as _;
        let resp = crate::mockkv::router(kv.clone())
            .oneshot(req)
            .await
            .expect("answer");
        let status = resp.status().as_u16();
        let meta = resp
            .headers()
            .get("cf-kv-metadata")
            .map(|m| String::from_utf8_lossy(m.as_bytes()).into_owned())
            .unwrap_or_default();
        let body = axum::body::to_bytes(resp.into_body(), usize::MAX)
            .await
            .expect("body");
        (status, meta, String::from_utf8_lossy(&body).into_owned())
    }

    fn req(method: &str, uri: &str, meta: Option<&str>, body: &str) -> http::Request<Body> {
        let mut r = http::Request::builder()
            .method(method)
            .uri(uri)
            .header("host", "fake-host");
        if let Some(m) = meta {
            r = r.header("cf-kv-metadata", m);
        }
        r.body(Body::from(body.to_owned())).expect("request")
    }

    #[tokio::test]
    async fn non_ascii_metadata_round_trips_and_limits_keep_their_order() {
        use crate::mockkv::{MockKv, MockKvConfig, VirtualClock};
        let kv = MockKv::new(
            MockKvConfig::default(),
            VirtualClock::frozen(1_704_110_400_000),
        );
        let meta = r#"{"city":"Zürich","emoji":"🦀"}"#;
        let put = call(&kv, req("PUT", "/k?urlencoded=true", Some(meta), "v")).await;
        assert_eq!(put.0, 200, "{put:?}");
        let got = call(&kv, req("GET", "/k?urlencoded=true", None, "")).await;
        assert_eq!((got.0, got.1.as_str(), got.2.as_str()), (200, meta, "v"));
        // 1,024 bytes of non-ASCII JSON is accepted; one more byte is a 413.
        let fill = |n: usize| format!("\"{}\"", "é".repeat(n));
        let at = fill(511);
        assert_eq!(at.len(), 1024);
        assert_eq!(call(&kv, req("PUT", "/a", Some(&at), "v")).await.0, 200);
        let over = format!("\"{}x\"", "é".repeat(511));
        assert_eq!(call(&kv, req("PUT", "/b", Some(&over), "v")).await.0, 413);
        // The expiration check comes before the metadata's.
        let both = call(&kv, req("PUT", "/c?expiration_ttl=10", Some("{bad"), "v")).await;
        assert!(
            both.2.contains("Expiration TTL must be at least 60"),
            "{both:?}"
        );
        let ttl = call(&kv, req("GET", "/k?urlencoded=true&cache_ttl=10", None, "")).await;
        assert_eq!(ttl.0, 400);
        let body = r#"{"keys":["zz","b","10","a"],"cacheTtl":60}"#;
        let bulk = call(&kv, req("POST", "/bulk/get", None, body)).await;
        assert_eq!(bulk.2, r#"{"10":null,"zz":null,"b":null,"a":"v"}"#);
    }
}
