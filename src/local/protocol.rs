//! The launcher's line protocol (`mock/miniflare/launch.mjs`): one JSON
//! object per line on its stdout, JSON commands on its stdin.
//!
//! Owns: parsing the readiness line and command replies, and writing
//! commands. Does not own: processes or I/O (see [`super::LocalWorker`]).

use serde::{Deserialize, Serialize};

/// One KV binding of the Worker, as the launcher reports it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KvBinding {
    /// The binding name in the Worker's `env` (e.g. `KV`).
    pub binding: String,
    /// The namespace id from the Worker's config.
    pub id: String,
    /// The mock KV namespace this binding reads and writes when routed.
    pub namespace: String,
}

/// What the launcher says once miniflare is ready.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ready {
    /// Base URL of the Worker, e.g. `http://127.0.0.1:41234`.
    pub url: String,
    /// The Worker's KV bindings.
    pub kv_bindings: Vec<KvBinding>,
    /// The Worker's cron triggers (miniflare never fires them by itself).
    pub crons: Vec<String>,
    /// Whether the launcher bundled the Worker (TypeScript or bare imports)
    /// rather than loading its modules as they are.
    pub bundled: bool,
}

#[derive(Deserialize)]
struct RawReady {
    ready: bool,
    #[serde(default)]
    url: Option<String>,
    #[serde(default)]
    kv_bindings: Vec<KvBinding>,
    #[serde(default)]
    crons: Vec<String>,
    #[serde(default)]
    bundled: bool,
    #[serde(default)]
    error: Option<String>,
}

/// The first stdout line: `Ok(Ok(ready))`, `Ok(Err(reason))` when the
/// launcher reports that it could not start, `Err` when the line is not
/// the protocol at all.
pub fn parse_ready(line: &str) -> Result<Result<Ready, String>, String> {
    let raw: RawReady = serde_json::from_str(line)
        .map_err(|e| format!("unexpected readiness line '{line}': {e}"))?;
    if !raw.ready {
        return Ok(Err(raw
            .error
            .unwrap_or_else(|| "no reason given".to_owned())));
    }
    let url = raw
        .url
        .filter(|u| u.starts_with("http://"))
        .ok_or_else(|| format!("readiness line without an http:// url: '{line}'"))?;
    Ok(Ok(Ready {
        url,
        kv_bindings: raw.kv_bindings,
        crons: raw.crons,
        bundled: raw.bundled,
    }))
}

/// How a fired `scheduled` handler ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CronOutcome {
    /// The handler returned normally.
    Ok,
    /// The handler threw (or its promise rejected).
    Exception,
}

#[derive(Deserialize)]
struct RawReply {
    ok: bool,
    #[serde(default)]
    outcome: Option<CronOutcome>,
    #[serde(default)]
    error: Option<String>,
}

/// A reply to `scheduled`: `Ok(Ok(outcome))`, `Ok(Err(reason))` when the
/// launcher refused the command, `Err` when the line is not the protocol.
pub fn parse_cron_reply(line: &str) -> Result<Result<CronOutcome, String>, String> {
    let raw: RawReply =
        serde_json::from_str(line).map_err(|e| format!("unexpected reply line '{line}': {e}"))?;
    if !raw.ok {
        return Ok(Err(raw
            .error
            .unwrap_or_else(|| "no reason given".to_owned())));
    }
    raw.outcome
        .map(Ok)
        .ok_or_else(|| format!("reply without an outcome: '{line}'"))
}

/// The `scheduled` command line (with its trailing newline).
/// `scheduled_time_ms` is milliseconds since the Unix epoch.
pub fn scheduled_command(cron: &str, scheduled_time_ms: u64) -> String {
    let cmd = serde_json::json!({
        "cmd": "scheduled",
        "cron": cron,
        "scheduledTime": scheduled_time_ms,
    });
    format!("{cmd}\n")
}

/// The `stop` command line (with its trailing newline).
pub const STOP_COMMAND: &str = "{\"cmd\":\"stop\"}\n";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_line_parses() {
        let line = r#"{"ready":true,"url":"http://127.0.0.1:4000","kv_bindings":[{"binding":"KV","id":"x","namespace":"KV"}],"crons":["*/1 * * * *"]}"#;
        let ready = parse_ready(line).expect("protocol").expect("ready");
        assert_eq!(ready.url, "http://127.0.0.1:4000");
        assert_eq!(ready.kv_bindings[0].namespace, "KV");
        assert_eq!(ready.crons, vec!["*/1 * * * *"]);
        assert!(!ready.bundled, "absent means not bundled");
    }

    #[test]
    fn not_ready_carries_the_reason() {
        let r = parse_ready(r#"{"ready":false,"error":"no wrangler.toml"}"#).expect("protocol");
        assert_eq!(r, Err("no wrangler.toml".to_owned()));
    }

    #[test]
    fn garbage_and_missing_url_are_protocol_errors() {
        assert!(parse_ready("Listening on 127.0.0.1").is_err());
        assert!(parse_ready(r#"{"ready":true}"#).is_err());
        assert!(parse_ready(r#"{"ready":true,"url":"ftp://x"}"#).is_err());
    }

    #[test]
    fn cron_replies_parse() {
        assert_eq!(
            parse_cron_reply(r#"{"ok":true,"outcome":"exception"}"#),
            Ok(Ok(CronOutcome::Exception))
        );
        assert_eq!(
            parse_cron_reply(r#"{"ok":false,"error":"bad"}"#),
            Ok(Err("bad".to_owned()))
        );
        assert!(parse_cron_reply(r#"{"ok":true}"#).is_err());
        assert!(parse_cron_reply("").is_err());
    }

    #[test]
    fn commands_are_one_json_line() {
        let c = scheduled_command("0 * * * *", 1_700_000_000_000);
        assert!(c.ends_with('\n') && !c.trim_end().contains('\n'));
        let v: serde_json::Value = serde_json::from_str(&c).expect("json");
        assert_eq!(v["scheduledTime"], 1_700_000_000_000_u64);
        assert_eq!(v["cron"], "0 * * * *");
        let s: serde_json::Value = serde_json::from_str(STOP_COMMAND).expect("json");
        assert_eq!(s["cmd"], "stop");
    }
}
