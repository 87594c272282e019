//! `wrangler tail --format json` events into corpus records.
//!
//! Wrangler prints each event with `JSON.stringify(event, null, 2)`: `{outcome, scriptName,
//! eventTimestamp, logs, exceptions, event}` where `event` is a request (`request.url`,
//! `request.method`, `request.headers`, `request.cf`; no body; sensitive header values
//! replaced by `REDACTED`), a scheduled event (`cron`, numeric `scheduledTime`), an alarm
//! (`scheduledTime` as an ISO string), a queue batch (`queue`, `batchSize`), or something
//! kvchaos does not replay (email, RPC, tail, null), which is skipped and counted.

use serde_json::Value;

use super::record::{Kind, Record};

/// Reads one tail event: its `eventTimestamp` (ms since the epoch) and record, or `None` for a
/// kind kvchaos does not replay (email, RPC, tail, none); `Err` names the field that is wrong.
pub fn event(v: &Value) -> Result<Option<(i64, Record)>, String> {
    let obj = v.as_object().ok_or("a tail event must be a JSON object")?;
    let ts = obj.get("eventTimestamp").and_then(Value::as_f64).ok_or(
        "missing numeric \"eventTimestamp\" (is this a `wrangler tail --format json` capture?)",
    )? as i64;
    let outcome = obj
        .get("outcome")
        .and_then(Value::as_str)
        .map(str::to_owned);
    let Some(ev) = obj.get("event").filter(|e| e.is_object()) else {
        return Ok(None);
    };
    let mut r = if let Some(req) = ev.get("request") {
        fetch(req)?
    } else if let Some(cron) = ev.get("cron").and_then(Value::as_str) {
        let mut r = Record::new(Kind::Cron, 0);
        r.cron = Some(cron.to_owned());
        r.scheduled_time = ev
            .get("scheduledTime")
            .and_then(Value::as_f64)
            .map(|t| t as i64);
        r
    } else if let Some(q) = ev.get("queue").and_then(Value::as_str) {
        let mut r = Record::new(Kind::Queue, 0);
        r.queue = Some(q.to_owned());
        r.batch_size = ev.get("batchSize").and_then(Value::as_u64);
        r
    } else if let Some(at) = ev.get("scheduledTime") {
        let mut r = Record::new(Kind::Alarm, 0);
        r.scheduled_time = match at {
            Value::String(s) => chrono::DateTime::parse_from_rfc3339(s)
                .ok()
                .map(|d| d.timestamp_millis()),
            other => other.as_f64().map(|t| t as i64),
        };
        r
    } else {
        return Ok(None);
    };
    r.outcome = outcome;
    Ok(Some((ts, r)))
}

fn fetch(req: &Value) -> Result<Record, String> {
    let mut r = Record::new(Kind::Fetch, 0);
    r.url = req
        .get("url")
        .and_then(Value::as_str)
        .ok_or("event.request has no \"url\"")?
        .to_owned();
    r.method = req
        .get("method")
        .and_then(Value::as_str)
        .unwrap_or("GET")
        .to_owned();
    if let Some(h) = req.get("headers").and_then(Value::as_object) {
        for (k, v) in h {
            if let Some(v) = v.as_str() {
                r.headers.insert(k.to_ascii_lowercase(), v.to_owned());
            }
        }
    }
    Ok(r)
}
