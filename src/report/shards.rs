//! The summary's record of a split run: which shard of how many a run was, the identity every
//! shard of one run must share, when it was told to start and how far off it started; and, in
//! a merged summary, which shards were merged and what made the result incomplete.
//!
//! Types only; `run` fills them, `merge` reads and writes them.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// One shard of a run split over processes or machines (`kvchaos run --shard I/N`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ShardInfo {
    /// This shard, from 0 (0 in a merged summary).
    pub index: u64,
    /// Shards in the run.
    pub count: u64,
    /// SHA-256 (hex) of the scenario file, the kvchaos binary and the load-shaping options;
    /// `kvchaos merge` refuses to call shards with different identities one run.
    pub identity: String,
    /// The start every shard was given (`--start-at`), RFC 3339 UTC.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_at: Option<String>,
    /// How far after `start_at` this shard's schedule started, by its own clock, µs (negative:
    /// before; 0 when no start was given).
    pub start_skew_us: i64,
    /// How long this shard sent load (its rates are per this), seconds.
    pub sending_s: f64,
    /// In a merged summary: what was merged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub merged: Option<MergeInfo>,
}

/// What `kvchaos merge` put together.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MergeInfo {
    /// Shard indices merged, ascending.
    pub shards: Vec<u64>,
    /// Every shard of the run was present, once, with the same identity.
    pub complete: bool,
    /// Why the result is incomplete (a shard missing, a different scenario, binary or
    /// configuration); empty when complete.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub problems: Vec<String>,
    /// The largest start skew among the shards, µs (absolute).
    pub max_start_skew_us: u64,
}
