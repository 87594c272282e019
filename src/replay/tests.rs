//! Reader and import tests over captures generated here: wrangler tail's pretty-printed
//! stream, HAR 1.2 with bodies, corpora, and broken files.

use std::path::Path;

use serde_json::json;

use super::record::Kind;
use super::*;

fn tail_capture() -> String {
    let events = [
        json!({"outcome": "ok", "scriptName": "cp", "diagnosticsChannelEvents": [],
               "exceptions": [], "logs": [{"message": ["hi"], "level": "log", "timestamp": 1_700_000_000_010_i64}],
               "eventTimestamp": 1_700_000_000_000_i64,
               "event": {"request": {"url": "https://cp.example.workers.dev/items/42?x=1", "method": "GET",
                         "headers": {"Authorization": "REDACTED", "accept": "application/json"},
                         "cf": {"colo": "AMS"}}}}),
        json!({"outcome": "exception", "scriptName": "cp", "exceptions": [{"name": "Error", "message": "boom", "timestamp": 1}],
               "logs": [], "eventTimestamp": 1_700_000_000_250_i64,
               "event": {"request": {"url": "https://cp.example.workers.dev/items", "method": "POST", "headers": {}}}}),
        json!({"outcome": "ok", "scriptName": "cp", "exceptions": [], "logs": [],
               "eventTimestamp": 1_700_000_060_000_i64,
               "event": {"cron": "*/5 * * * *", "scheduledTime": 1_700_000_060_000_i64}}),
        json!({"outcome": "ok", "scriptName": "cp", "exceptions": [], "logs": [],
               "eventTimestamp": 1_700_000_061_000_i64, "event": {"scheduledTime": "2023-11-14T22:14:21.000Z"}}),
        json!({"outcome": "ok", "scriptName": "cp", "exceptions": [], "logs": [],
               "eventTimestamp": 1_700_000_062_000_i64, "event": {"queue": "jobs", "batchSize": 3}}),
        json!({"outcome": "ok", "scriptName": "cp", "exceptions": [], "logs": [],
               "eventTimestamp": 1_700_000_063_000_i64, "event": null}),
    ];
    // JSON.stringify(event, null, 2), one after another, as wrangler prints them.
    events
        .iter()
        .map(|e| serde_json::to_string_pretty(e).expect("json") + "\n")
        .collect()
}

fn har_capture() -> String {
    let entry = |t: &str, method: &str, url: &str, body: Option<&str>, status: u16| {
        let mut req = json!({"method": method, "url": url, "httpVersion": "HTTP/2",
            "headers": [{"name": ":authority", "value": "cp.example.com"},
                        {"name": "Cookie", "value": "a=1"}, {"name": "cookie", "value": "b=2"},
                        {"name": "Content-Type", "value": "application/json"},
                        {"name": "Content-Length", "value": "11"}],
            "queryString": [], "cookies": [], "headersSize": -1, "bodySize": 11});
        if let Some(b) = body {
            req["postData"] = json!({"mimeType": "application/json", "text": b});
        }
        json!({"startedDateTime": t, "time": 12.5, "request": req,
               "response": {"status": status, "statusText": "", "headers": [], "content": {"size": 0, "mimeType": "text/plain"}},
               "cache": {}, "timings": {"send": 0, "wait": 10, "receive": 2}})
    };
    serde_json::to_string_pretty(&json!({"log": {"version": "1.2",
        "creator": {"name": "test", "version": "1"},
        "pages": [],
        "entries": [
            entry("2024-05-01T10:00:00.000+02:00", "PUT", "https://cp.example.com/items/7", Some("{\"v\": \"x\"}"), 201),
            entry("2024-05-01T08:00:01.500Z", "GET", "https://cp.example.com/items/7", None, 200),
        ]}}))
    .expect("json")
}

fn read_all(text: &str, format: Format) -> Result<Vec<record::Record>, CaptureError> {
    let mut r = Reader::new(text.as_bytes(), Path::new("cap.json"), format);
    let mut out = Vec::new();
    while let Some((rec, _)) = r.next_record()? {
        out.push(rec);
    }
    Ok(out)
}

#[test]
fn a_tail_capture_reads_every_replayable_kind_with_offsets_from_the_first() {
    let recs = read_all(&tail_capture(), Format::WranglerTail).expect("read");
    let kinds: Vec<Kind> = recs.iter().map(|r| r.kind).collect();
    assert_eq!(
        kinds,
        vec![
            Kind::Fetch,
            Kind::Fetch,
            Kind::Cron,
            Kind::Alarm,
            Kind::Queue
        ]
    );
    let t: Vec<u64> = recs.iter().map(|r| r.t_ms).collect();
    assert_eq!(t, vec![0, 250, 60_000, 61_000, 62_000]);
    assert_eq!(recs[0].headers["authorization"], "REDACTED");
    assert_eq!(recs[0].path_and_query(), "/items/42?x=1");
    assert_eq!(recs[1].outcome.as_deref(), Some("exception"));
    assert_eq!(recs[2].cron.as_deref(), Some("*/5 * * * *"));
    assert_eq!(recs[2].scheduled_time, Some(1_700_000_060_000));
    assert_eq!(recs[3].scheduled_time, Some(1_700_000_061_000));
    assert_eq!(
        (recs[4].queue.as_deref(), recs[4].batch_size),
        (Some("jobs"), Some(3))
    );
}

#[test]
fn a_har_capture_keeps_bodies_and_drops_connection_headers() {
    let recs = read_all(&har_capture(), Format::Har).expect("read");
    assert_eq!(recs.len(), 2);
    assert_eq!(recs[0].body.as_deref(), Some("{\"v\": \"x\"}"));
    assert_eq!(recs[0].status, Some(201));
    assert_eq!(recs[0].headers["cookie"], "a=1; b=2");
    assert!(!recs[0].headers.contains_key(":authority"));
    assert!(!recs[0].headers.contains_key("content-length"));
    // 10:00+02:00 is 08:00Z: the offset is honoured.
    assert_eq!(recs[1].t_ms, 1_500);
    assert_eq!(recs[1].body, None);
}

#[test]
fn formats_are_detected_from_the_first_event() {
    let dir = std::env::temp_dir().join(format!("kvchaos-detect-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let cases = [
        ("t.json", tail_capture(), Ok(Format::WranglerTail)),
        ("h.har", har_capture(), Ok(Format::Har)),
        (
            "c.ndjson",
            "{\"t_ms\":0,\"kind\":\"cron\",\"cron\":\"* * * * *\"}\n".into(),
            Ok(Format::Ndjson),
        ),
        ("x.json", "{\"hello\": 1}".into(), Err("none of")),
        ("e.json", "  \n".into(), Err("empty")),
    ];
    for (name, text, want) in cases {
        let p = dir.join(name);
        std::fs::write(&p, text).expect("write");
        match (detect(&p), want) {
            (Ok(f), Ok(w)) => assert_eq!(f, w, "{name}"),
            (Err(e), Err(w)) => assert!(e.to_string().contains(w), "{name}: {e}"),
            (got, _) => panic!("{name}: {got:?}"),
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn import_round_trips_through_the_corpus() {
    let cap = tail_capture();
    let mut r = Reader::new(cap.as_bytes(), Path::new("t"), Format::WranglerTail);
    let mut out = Vec::new();
    let stats = import(&mut r, &mut out).expect("import");
    assert_eq!(stats.by_kind, [2, 1, 1, 1]);
    assert_eq!(stats.skipped, 1);
    assert_eq!(stats.last_ms, 62_000);
    let text = String::from_utf8(out).expect("utf8");
    assert_eq!(text.lines().count(), 5);
    assert!(
        text.starts_with("{\"t_ms\":0,\"kind\":\"fetch\",\"method\":\"GET\""),
        "{text}"
    );
    let again = read_all(&text, Format::Ndjson).expect("corpus");
    assert_eq!(
        again,
        read_all(&tail_capture(), Format::WranglerTail).expect("tail")
    );
}

#[test]
fn malformed_captures_name_line_and_byte() {
    let mut cap = tail_capture();
    let cut = cap.rfind("\"eventTimestamp\"").expect("field");
    cap.truncate(cut);
    let e = read_all(&cap, Format::WranglerTail).expect_err("truncated");
    let msg = e.to_string();
    assert!(msg.starts_with("cap.json: line "), "{msg}");
    assert!(msg.contains("never ends"), "{msg}");

    let e = read_all(
        "{\"eventTimestamp\": 1, \"event\": {\"request\": {}}}",
        Format::WranglerTail,
    )
    .expect_err("no url");
    assert_eq!(
        e.to_string(),
        "cap.json: line 1, byte 0: event.request has no \"url\""
    );

    let e = read_all(
        "{\"t_ms\":0,\"kind\":\"fetch\",\"method\":\"GET\",\"url\":\"/x\"}\n{",
        Format::Ndjson,
    )
    .expect_err("relative url");
    assert!(e.to_string().contains("not an absolute http(s) URL"), "{e}");

    let e = read_all("{\"t_ms\":0,\"kind\":\"nope\"}", Format::Ndjson).expect_err("kind");
    assert!(
        e.to_string()
            .contains("line 1, byte 0: not a corpus record"),
        "{e}"
    );

    // Random bytes never panic.
    const ALPHABET: &[u8] = b"{}[]\":,\\ a1\n";
    let mut x = 0x1234_5678_u64;
    for _ in 0..200 {
        let junk: Vec<u8> = (0..64)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                ALPHABET[(x % ALPHABET.len() as u64) as usize]
            })
            .collect();
        for f in [Format::WranglerTail, Format::Har, Format::Ndjson] {
            let _ = read_all(&String::from_utf8_lossy(&junk), f);
        }
    }
}
