//! HAR 1.2 entries into corpus records.
//!
//! An entry is `{startedDateTime, request: {method, url, headers: [{name, value}], postData?:
//! {mimeType, text}}, response: {status}}`. Bodies come from `postData.text` (or its `params`
//! as a form when there is no text). HTTP/2 pseudo-headers (`:authority`, ...) and headers the
//! client sets per connection (`host`, `content-length`, `connection`) are left out; the
//! sender sets its own. A repeated header is joined with `, ` (`; ` for `cookie`).

use serde_json::Value;

use super::record::{Kind, Record};

/// Headers a recorded request carries that belong to the recording client's connection.
const CONNECTION_HEADERS: &[&str] = &[
    "host",
    "content-length",
    "connection",
    "keep-alive",
    "transfer-encoding",
    "upgrade",
    "te",
];

/// Reads one HAR entry into a record and its `startedDateTime` in ms since the epoch.
pub fn entry(v: &Value) -> Result<(i64, Record), String> {
    let started = v
        .get("startedDateTime")
        .and_then(Value::as_str)
        .ok_or("entry has no \"startedDateTime\"")?;
    let ts = chrono::DateTime::parse_from_rfc3339(started)
        .map_err(|e| format!("startedDateTime \"{started}\" is not an ISO 8601 time: {e}"))?
        .timestamp_millis();
    let req = v.get("request").ok_or("entry has no \"request\"")?;
    let mut r = Record::new(Kind::Fetch, 0);
    r.method = req
        .get("method")
        .and_then(Value::as_str)
        .ok_or("request has no \"method\"")?
        .to_owned();
    r.url = req
        .get("url")
        .and_then(Value::as_str)
        .ok_or("request has no \"url\"")?
        .to_owned();
    for h in req
        .get("headers")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let (Some(name), Some(value)) = (
            h.get("name").and_then(Value::as_str),
            h.get("value").and_then(Value::as_str),
        ) else {
            continue;
        };
        let name = name.to_ascii_lowercase();
        if name.starts_with(':') || CONNECTION_HEADERS.contains(&name.as_str()) {
            continue;
        }
        let sep = if name == "cookie" { "; " } else { ", " };
        r.headers
            .entry(name)
            .and_modify(|v| {
                v.push_str(sep);
                v.push_str(value);
            })
            .or_insert_with(|| value.to_owned());
    }
    r.body = req.get("postData").and_then(body);
    r.status = v
        .get("response")
        .and_then(|r| r.get("status"))
        .and_then(Value::as_u64)
        .and_then(|s| u16::try_from(s).ok())
        .filter(|s| (100..600).contains(s));
    Ok((ts, r))
}

fn body(post: &Value) -> Option<String> {
    if let Some(t) = post.get("text").and_then(Value::as_str) {
        return Some(t.to_owned());
    }
    let params = post.get("params").and_then(Value::as_array)?;
    let mut form = url::form_urlencoded::Serializer::new(String::new());
    for p in params {
        let name = p.get("name").and_then(Value::as_str).unwrap_or_default();
        let value = p.get("value").and_then(Value::as_str).unwrap_or_default();
        form.append_pair(name, value);
    }
    Some(form.finish())
}
