//! The raw WATCH.toml model: serde types with spans, unknown fields refused. Read only by
//! the validator in [`super`].

use std::collections::BTreeMap;

use serde::Deserialize;
use toml::Spanned;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawFile {
    pub(super) interval: Option<Spanned<String>>,
    pub(super) timeout: Option<Spanned<String>>,
    #[serde(default)]
    pub(super) allow_hosts: Vec<String>,
    pub(super) failures: Option<Spanned<i64>>,
    #[serde(default)]
    pub(super) check: Vec<Spanned<RawCheck>>,
    #[serde(default)]
    pub(super) notify: Vec<Spanned<RawNotify>>,
    #[serde(default)]
    pub(super) mute: Vec<Spanned<RawMute>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawCheck {
    pub(super) name: Spanned<String>,
    pub(super) kind: Spanned<String>,
    pub(super) url: Spanned<String>,
    #[serde(default)]
    pub(super) headers: BTreeMap<String, Spanned<String>>,
    pub(super) failures: Option<Spanned<i64>>,
    pub(super) pointer: Option<Spanned<String>>,
    pub(super) crons: Option<Spanned<Vec<Spanned<String>>>>,
    pub(super) wrangler: Option<Spanned<String>>,
    pub(super) env: Option<Spanned<String>>,
    pub(super) grace: Option<Spanned<String>>,
    pub(super) alert_at: Option<Spanned<String>>,
    pub(super) min_increase: Option<Spanned<f64>>,
    pub(super) window: Option<Spanned<String>>,
    pub(super) max_error_rate: Option<Spanned<String>>,
    pub(super) errors_pointer: Option<Spanned<String>>,
    pub(super) total_pointer: Option<Spanned<String>>,
    pub(super) min_samples: Option<Spanned<i64>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawNotify {
    pub(super) kind: Spanned<String>,
    pub(super) url_env: Option<Spanned<String>>,
    pub(super) url: Option<Spanned<toml::Value>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawMute {
    pub(super) days: Option<Spanned<Vec<Spanned<String>>>>,
    pub(super) from: Spanned<String>,
    pub(super) to: Spanned<String>,
}
