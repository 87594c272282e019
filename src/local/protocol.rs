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
    /// Whether wrangler's build bundled the Worker (it does unless
    /// `no_bundle` or `--bundle never`).
    pub bundled: bool,
    /// Whether the Worker's `Date` follows the run's clock (`--clock`).
    pub clock: bool,
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
    clock: bool,
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
        clock: raw.clock,
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
    exception: Option<String>,
    #[serde(default)]
    error: Option<String>,
}

/// A fired `scheduled` handler's end, with what it threw when it threw.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CronRun {
    /// How it ended.
    pub outcome: CronOutcome,
    /// The uncaught exception, message and stack (`TypeError: …\n    at …`), when the
    /// handler threw and workerd logged it in time.
    pub exception: Option<String>,
}

/// A reply to `scheduled`: `Ok(Ok(outcome))`, `Ok(Err(reason))` when the
/// launcher refused the command, `Err` when the line is not the protocol.
pub fn parse_cron_reply(line: &str) -> Result<Result<CronOutcome, String>, String> {
    parse_cron_run(line).map(|r| r.map(|run| run.outcome))
}

/// [`parse_cron_reply`] with the exception the handler threw.
pub fn parse_cron_run(line: &str) -> Result<Result<CronRun, String>, String> {
    let raw: RawReply =
        serde_json::from_str(line).map_err(|e| format!("unexpected reply line '{line}': {e}"))?;
    if !raw.ok {
        return Ok(Err(raw
            .error
            .unwrap_or_else(|| "no reason given".to_owned())));
    }
    let outcome = raw
        .outcome
        .ok_or_else(|| format!("reply without an outcome: '{line}'"))?;
    let exception = raw.exception.filter(|_| outcome == CronOutcome::Exception);
    Ok(Ok(CronRun { outcome, exception }))
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

/// The `clock` command line (with its trailing newline): the Worker's clock
/// reads `now_ms` at wall time `wall_ms` (both ms since the Unix epoch) and
/// runs `speed` times faster than real time.
pub fn clock_command(now_ms: u64, wall_ms: u64, speed: f64) -> String {
    let cmd = serde_json::json!({
        "cmd": "clock",
        "now_ms": now_ms,
        "wall_ms": wall_ms,
        "speed": speed,
    });
    format!("{cmd}\n")
}

/// A reply to a command without a result (`clock`): `Ok(Ok(()))`,
/// `Ok(Err(reason))` when refused, `Err` when the line is not the protocol.
pub fn parse_ok_reply(line: &str) -> Result<Result<(), String>, String> {
    let raw: RawReply =
        serde_json::from_str(line).map_err(|e| format!("unexpected reply line '{line}': {e}"))?;
    if raw.ok {
        Ok(Ok(()))
    } else {
        Ok(Err(raw
            .error
            .unwrap_or_else(|| "no reason given".to_owned())))
    }
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
        let thrown = r#"{"ok":true,"outcome":"exception","exception":"Error: boom\n    at f"}"#;
        assert_eq!(
            parse_cron_run(thrown),
            Ok(Ok(CronRun {
                outcome: CronOutcome::Exception,
                exception: Some("Error: boom\n    at f".to_owned())
            }))
        );
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
        let k: serde_json::Value =
            serde_json::from_str(&clock_command(5_000, 1_000, 60.0)).expect("json");
        assert_eq!(
            (
                k["cmd"].as_str(),
                k["now_ms"].as_u64(),
                k["wall_ms"].as_u64()
            ),
            (Some("clock"), Some(5_000), Some(1_000))
        );
        assert_eq!(k["speed"], 60.0);
    }

    #[test]
    fn ok_replies_and_the_clock_flag_parse() {
        assert_eq!(parse_ok_reply(r#"{"ok":true}"#), Ok(Ok(())));
        assert_eq!(
            parse_ok_reply(r#"{"ok":false,"error":"real time"}"#),
            Ok(Err("real time".to_owned()))
        );
        assert!(parse_ok_reply("nope").is_err());
        let line = r#"{"ready":true,"url":"http://127.0.0.1:1","clock":true,"bundled":true}"#;
        let ready = parse_ready(line).expect("protocol").expect("ready");
        assert!(ready.clock && ready.bundled);
    }
}
