//! Notifications: the Slack, Discord and generic-webhook payloads of a [`Notice`], and sending
//! them with bounded retries (429 with `Retry-After` or Discord's `retry_after`, 5xx and
//! transport errors with exponential backoff; bounded in attempts and in time).
//!
//! Owns: payload shapes and their size limits, redaction of everything in them, and the retry
//! loop. Does not own when a notice is due ([`super::alert`]) nor where the URL comes from
//! (the environment, read by [`super::config`]).

use std::time::{Duration, Instant};

use http::Method;
use serde_json::{Value, json};

use super::alert::{Notice, NoticeKind};
use super::config::{Notifier, NotifierKind};
use super::iso;
use crate::redact::Redactor;
use crate::rest::{Call, Client};

/// Discord's limit on `content`, in characters.
pub const DISCORD_CONTENT_MAX: usize = 2000;
/// Slack's limit on a header block's text, in characters.
const SLACK_HEADER_MAX: usize = 150;
/// Slack's limit on a section block's text, in characters.
const SLACK_SECTION_MAX: usize = 3000;
/// Discord's limits on an embed's title, description and field value, in characters.
const DISCORD_TITLE_MAX: usize = 256;
const DISCORD_DESCRIPTION_MAX: usize = 4096;
const DISCORD_FIELD_MAX: usize = 1024;
const RED: u32 = 0xE0_1E_5A;
const GREEN: u32 = 0x2E_B6_7D;

/// How hard to try one delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts at most, the first included.
    pub max_attempts: u32,
    /// Wait after the first failed attempt without a `Retry-After`; doubled each time.
    pub first_backoff: Duration,
    /// Time for all attempts and waits; a wait that would pass it ends the delivery.
    pub max_total: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 4,
            first_backoff: Duration::from_millis(500),
            max_total: Duration::from_secs(60),
        }
    }
}

/// Cut to `max` characters, marking the cut.
fn cut(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let mut t: String = text.chars().take(max.saturating_sub(1)).collect();
    t.push('…');
    t
}

/// The words every payload shares, redacted.
struct Words {
    title: String,
    line: String,
    summary: String,
    evidence: Vec<String>,
    fields: Vec<(&'static str, String)>,
    fired: bool,
}

fn words(n: &Notice, redactor: &Redactor) -> Words {
    let r = |s: &str| redactor.redact(s).into_owned();
    let (title, line, mut fields) = match &n.kind {
        NoticeKind::Fired { severity } => {
            let title = format!("ALERT {}: {}", n.check, severity.as_str());
            let line = format!("{title} since {}: {}", iso(n.since_ms), n.summary);
            (title, line, vec![("Since", iso(n.since_ms))])
        }
        NoticeKind::Recovered {
            missed_slots,
            at_ms,
        } => {
            let title = format!("RECOVERED {}", n.check);
            let failed_for = humantime::format_duration(Duration::from_secs(
                at_ms.saturating_sub(n.since_ms) / 1000,
            ));
            let missed = missed_slots.map_or(String::new(), |m| {
                format!("; {m} expected run{} missed", if m == 1 { "" } else { "s" })
            });
            let line = format!(
                "{title} at {} after {failed_for} (failing since {}{missed}): {}",
                iso(*at_ms),
                iso(n.since_ms),
                n.summary
            );
            let mut f = vec![
                ("Failing since", iso(n.since_ms)),
                ("Up again", iso(*at_ms)),
            ];
            if let Some(m) = missed_slots {
                f.push(("Missed runs", m.to_string()));
            }
            (title, line, f)
        }
    };
    fields.push(("Checked", iso(n.now_ms)));
    Words {
        title: r(&title),
        line: r(&line),
        summary: r(&n.summary),
        evidence: n.evidence.iter().map(|e| r(e)).collect(),
        fields: fields.into_iter().map(|(k, v)| (k, r(&v))).collect(),
        fired: matches!(n.kind, NoticeKind::Fired { .. }),
    }
}

/// Slack's escaping of `&`, `<` and `>` in text and mrkdwn.
fn slack_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// The Slack incoming-webhook payload: `{text, blocks}`.
pub fn slack_payload(n: &Notice, redactor: &Redactor) -> Value {
    let w = words(n, redactor);
    let mut blocks = vec![
        json!({"type": "header", "text": {"type": "plain_text", "text": cut(&w.title, SLACK_HEADER_MAX)}}),
        json!({"type": "section", "text": {"type": "mrkdwn", "text": cut(&slack_escape(&w.summary), SLACK_SECTION_MAX)}}),
        json!({"type": "section", "fields": w.fields.iter().map(|(k, v)| json!({"type": "mrkdwn", "text": format!("*{k}*\n{}", slack_escape(v))})).collect::<Vec<_>>()}),
    ];
    if !w.evidence.is_empty() {
        let text = format!("*Evidence*\n```{}```", slack_escape(&w.evidence.join("\n")));
        blocks.push(json!({"type": "section", "text": {"type": "mrkdwn", "text": cut(&text, SLACK_SECTION_MAX)}}));
    }
    blocks.push(
        json!({"type": "context", "elements": [{"type": "mrkdwn", "text": "kvchaos watch"}]}),
    );
    json!({"text": slack_escape(&w.line), "blocks": blocks})
}

/// The Discord webhook payload: `{content, embeds, allowed_mentions}`; `allowed_mentions`
/// parses nothing, so no text can ping `@everyone`, a role or a user.
pub fn discord_payload(n: &Notice, redactor: &Redactor) -> Value {
    let w = words(n, redactor);
    let mut fields: Vec<Value> = w
        .fields
        .iter()
        .map(|(k, v)| json!({"name": k, "value": cut(v, DISCORD_FIELD_MAX), "inline": true}))
        .collect();
    if !w.evidence.is_empty() {
        fields.push(json!({"name": "Evidence", "value": cut(&w.evidence.join("\n"), DISCORD_FIELD_MAX), "inline": false}));
    }
    json!({
        "content": cut(&w.line, DISCORD_CONTENT_MAX),
        "embeds": [{
            "title": cut(&w.title, DISCORD_TITLE_MAX),
            "description": cut(&w.summary, DISCORD_DESCRIPTION_MAX),
            "color": if w.fired { RED } else { GREEN },
            "fields": fields,
            "timestamp": iso(n.now_ms),
        }],
        "allowed_mentions": {"parse": []},
    })
}

/// The generic JSON webhook payload.
pub fn webhook_payload(n: &Notice, redactor: &Redactor) -> Value {
    let w = words(n, redactor);
    let (event, severity, missed, at) = match &n.kind {
        NoticeKind::Fired { severity } => {
            ("fired", json!(severity.as_str()), Value::Null, n.now_ms)
        }
        NoticeKind::Recovered {
            missed_slots,
            at_ms,
        } => ("recovered", Value::Null, json!(missed_slots), *at_ms),
    };
    json!({
        "source": "kvchaos watch",
        "event": event,
        "check": redactor.redact(&n.check),
        "severity": severity,
        "text": w.line,
        "summary": w.summary,
        "since": iso(n.since_ms),
        "since_ms": n.since_ms,
        "at": iso(at),
        "at_ms": at,
        "missed_slots": missed,
        "evidence": w.evidence,
    })
}

/// The payload of `n` for `kind`.
pub fn payload(kind: NotifierKind, n: &Notice, redactor: &Redactor) -> Value {
    match kind {
        NotifierKind::Slack => slack_payload(n, redactor),
        NotifierKind::Discord => discord_payload(n, redactor),
        NotifierKind::Webhook => webhook_payload(n, redactor),
    }
}

/// How long a 429 asks to wait: Discord's JSON `retry_after` (seconds), else the
/// `Retry-After` header (seconds).
fn retry_after(r: &crate::rest::Response) -> Option<Duration> {
    let body = serde_json::from_slice::<Value>(&r.body)
        .ok()
        .and_then(|v| v.get("retry_after").and_then(Value::as_f64));
    let header = r
        .header("retry-after")
        .and_then(|h| h.trim().parse::<f64>().ok());
    body.or(header)
        .filter(|s| s.is_finite() && *s >= 0.0)
        .map(|s| Duration::from_secs_f64(s.min(86_400.0)))
}

/// Sends `body` to `to`, retrying as `policy` allows; `Ok(attempts)` on a 2xx. Errors name
/// the environment variable, never the URL.
pub async fn send(
    client: &mut Client,
    to: &Notifier,
    body: &Value,
    policy: RetryPolicy,
) -> Result<u32, String> {
    let started = Instant::now();
    let mut backoff = policy.first_backoff;
    let hide = |s: String| {
        s.replace(
            to.url.split('?').next().unwrap_or(&to.url),
            &format!("${}", to.url_env),
        )
    };
    let mut last = String::new();
    for attempt in 1..=policy.max_attempts.max(1) {
        let wait = match client
            .send(Call::new(Method::POST, to.url.clone()).json(body))
            .await
        {
            Ok(r) if r.status.is_success() => return Ok(attempt),
            Ok(r) if r.status.as_u16() == 429 => {
                last = format!("HTTP 429 (rate limited) on attempt {attempt}");
                retry_after(&r).unwrap_or(backoff)
            }
            Ok(r) if r.status.is_server_error() => {
                last = format!("HTTP {} on attempt {attempt}", r.status.as_u16());
                backoff
            }
            Ok(r) => {
                let text: String = r.text().chars().take(200).collect();
                return Err(hide(format!(
                    "${}: refused with HTTP {}: {text}",
                    to.url_env,
                    r.status.as_u16()
                )));
            }
            Err(e) => {
                last = format!("{e} on attempt {attempt}");
                backoff
            }
        };
        if attempt == policy.max_attempts {
            break;
        }
        if started.elapsed() + wait > policy.max_total {
            return Err(hide(format!(
                "${}: {last}; waiting {} more would pass the {} delivery budget",
                to.url_env,
                humantime::format_duration(Duration::from_millis(wait.as_millis() as u64)),
                humantime::format_duration(policy.max_total)
            )));
        }
        tokio::time::sleep(wait).await;
        backoff = backoff.saturating_mul(2);
    }
    Err(hide(format!(
        "${}: {last}; gave up after {} attempts",
        to.url_env, policy.max_attempts
    )))
}

/// One notice's deliveries.
#[derive(Debug, Clone, PartialEq)]
pub struct Delivery {
    /// The notice.
    pub notice: Notice,
    /// Per notifier (its `url_env`): attempts used, or why it failed.
    pub results: Vec<(String, Result<u32, String>)>,
}

impl Delivery {
    /// Whether some notifier took it (or there is none to take it).
    pub fn taken(&self) -> bool {
        self.results.is_empty() || self.results.iter().any(|(_, r)| r.is_ok())
    }
}

/// Sends every notice to every notifier, in order.
pub async fn deliver(
    client: &mut Client,
    notifiers: &[Notifier],
    notices: &[Notice],
    redactor: &Redactor,
    policy: RetryPolicy,
) -> Vec<Delivery> {
    let mut out = Vec::new();
    for n in notices {
        let mut results = Vec::new();
        for to in notifiers {
            let body = payload(to.kind, n, redactor);
            let r = send(client, to, &body, policy)
                .await
                .map_err(|e| redactor.redact(&e).into_owned());
            results.push((to.url_env.clone(), r));
        }
        out.push(Delivery {
            notice: n.clone(),
            results,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cut_marks_and_bounds_in_characters() {
        assert_eq!(cut("abc", 3), "abc");
        assert_eq!(cut("abcd", 3), "ab…");
        assert_eq!(
            cut(&"é".repeat(3000), DISCORD_CONTENT_MAX).chars().count(),
            DISCORD_CONTENT_MAX
        );
        assert_eq!(slack_escape("a<b>&c"), "a&lt;b&gt;&amp;c");
    }
}
