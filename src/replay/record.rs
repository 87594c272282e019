//! One event of kvchaos's NDJSON replay corpus, the common form every capture is read into.
//!
//! A corpus line is `{t_ms, kind, method, url, headers, body?, outcome?, status?, cron?,
//! scheduled_time?, queue?, batch_size?}`: `t_ms` counts milliseconds from the first event of
//! the capture, `kind` is `fetch`, `cron`, `alarm` or `queue`. Fetch events carry the request
//! as recorded (header names in lower case, values as captured, `REDACTED` where wrangler hid
//! them); `outcome` is the Worker's outcome in a tail capture, `status` the response status in
//! a HAR file. Owns the record and its checks; readers live in the sibling modules.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// What kind of event a record is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// An HTTP request.
    Fetch,
    /// A cron trigger (`scheduled` handler).
    Cron,
    /// A Durable Object alarm.
    Alarm,
    /// A queue batch delivered to a consumer.
    Queue,
}

impl Kind {
    /// The name used in the corpus and in reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Fetch => "fetch",
            Kind::Cron => "cron",
            Kind::Alarm => "alarm",
            Kind::Queue => "queue",
        }
    }
}

/// One corpus line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Record {
    /// Milliseconds from the first event of the capture.
    pub t_ms: u64,
    /// What happened.
    pub kind: Kind,
    /// HTTP method (fetch; empty for other kinds).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub method: String,
    /// Absolute URL as recorded (fetch; empty for other kinds).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub url: String,
    /// Request headers, names in lower case.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
    /// Request body as text, when the capture has one (HAR).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    /// The Worker's outcome (`ok`, `exception`, `exceededCpu`, ...) in a tail capture.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<String>,
    /// The response status in a HAR capture.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// The cron expression of a scheduled event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cron: Option<String>,
    /// A scheduled or alarm event's scheduled time, milliseconds since the Unix epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheduled_time: Option<i64>,
    /// A queue event's queue name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue: Option<String>,
    /// A queue event's batch size.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch_size: Option<u64>,
}

impl Record {
    /// A record of `kind` at `t_ms` with nothing else set.
    pub fn new(kind: Kind, t_ms: u64) -> Record {
        Record {
            t_ms,
            kind,
            method: String::new(),
            url: String::new(),
            headers: BTreeMap::new(),
            body: None,
            outcome: None,
            status: None,
            cron: None,
            scheduled_time: None,
            queue: None,
            batch_size: None,
        }
    }

    /// What is wrong with a record read from a corpus, if anything.
    pub fn problem(&self) -> Option<String> {
        if self.kind == Kind::Fetch {
            if http::Method::from_bytes(self.method.as_bytes()).is_err() {
                return Some(format!("invalid method \"{}\"", self.method));
            }
            match url::Url::parse(&self.url) {
                Ok(u) if matches!(u.scheme(), "http" | "https") => {}
                _ => {
                    return Some(format!(
                        "url \"{}\" is not an absolute http(s) URL",
                        self.url
                    ));
                }
            }
        }
        if self.kind == Kind::Cron && self.cron.as_deref().is_none_or(str::is_empty) {
            return Some("a cron record needs its \"cron\" expression".into());
        }
        None
    }

    /// The path and query of a fetch record's URL (`/` when it has none).
    pub fn path_and_query(&self) -> String {
        match url::Url::parse(&self.url) {
            Ok(u) => match u.query() {
                Some(q) => format!("{}?{q}", u.path()),
                None => u.path().to_owned(),
            },
            Err(_) => "/".into(),
        }
    }
}
