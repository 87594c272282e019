//! What a run does as one shard of a split run: followers (shards other than 0) send only load
//! (no faults, crons, lock or queue drivers, checks); every shard starts its schedule at the
//! shared `--start-at`; the summary records the shard, the run's identity and the start skew.
//!
//! The identity is a SHA-256 over the scenario file's bytes, the running kvchaos binary's
//! bytes and the options that shape the load, so `kvchaos merge` can tell shards of one run
//! from shards of different ones. Secrets are never hashed in: `{{env.NAME}}` values are not
//! in the file's bytes.

use std::io::Read;
use std::time::{Duration, Instant, SystemTime};

use sha2::{Digest, Sha256};

use super::RunOptions;
use crate::engine::Placement;
use crate::report::shards::ShardInfo;
use crate::scenario::plan::Plan;

/// Largest file read into the identity (a scenario, or the binary).
const MAX_HASHED_BYTES: u64 = 1 << 30;

/// How long before its first request a schedule may be told to start when `--start-at` has
/// already passed: the engine threads' start-up.
const LATE_START: Duration = Duration::from_millis(20);

/// Leaves a follower shard only the load: shard 0 alone acts on the mock KV, fires crons,
/// drives locks and queues and judges checks.
pub fn strip_for_follower(plan: &mut Plan) {
    plan.faults.clear();
    plan.cron.fire = false;
    plan.cron.status = None;
    plan.lock = None;
    plan.queue = None;
}

/// Where in time the engine starts and which share it sends; with the start skew in µs (how
/// late the schedule starts after `--start-at`, by this machine's clock).
pub fn placement(opts: &RunOptions) -> (Placement, i64) {
    let Some(at) = opts.start_at else {
        return (
            Placement {
                shard: opts.shard,
                start: None,
            },
            0,
        );
    };
    let (now, wall) = (Instant::now(), SystemTime::now());
    let (start, skew) = match at.duration_since(wall) {
        Ok(ahead) => (now + ahead, 0),
        // Already past (the target took longer to start): start at once and say how late.
        Err(e) => (
            now + LATE_START,
            (e.duration() + LATE_START).as_micros() as i64,
        ),
    };
    (
        Placement {
            shard: opts.shard,
            start: Some(start),
        },
        skew,
    )
}

/// The summary's shard record; `None` for a run that is not split and has no `--start-at`.
pub fn info(opts: &RunOptions, plan: &Plan, skew_us: i64, sending_s: f64) -> Option<ShardInfo> {
    if !opts.shard.is_split() && opts.start_at.is_none() {
        return None;
    }
    Some(ShardInfo {
        index: opts.shard.index,
        count: opts.shard.count,
        identity: identity(opts, plan),
        start_at: opts
            .start_at
            .map(|t| humantime::format_rfc3339_micros(t).to_string()),
        start_skew_us: skew_us,
        sending_s,
        merged: None,
    })
}

/// SHA-256 (hex) of the scenario, the binary and the load-shaping options.
pub fn identity(opts: &RunOptions, plan: &Plan) -> String {
    let mut h = Sha256::new();
    h.update(b"scenario\0");
    hash_file(&mut h, &plan.source);
    h.update(b"binary\0");
    match std::env::current_exe() {
        Ok(exe) => hash_file(&mut h, &exe),
        Err(_) => h.update(env!("CARGO_PKG_VERSION").as_bytes()),
    }
    // What changes the load or what is measured; not where the report goes, not threads.
    let config = format!(
        "seed={}\nduration={:?}\ntarget_url={:?}\nworker={:?}\nno_faults={}\nshards={}\nstart_at={:?}\nallow_hosts={:?}\n",
        plan.seed,
        opts.duration,
        opts.target_url,
        opts.worker,
        opts.no_faults,
        opts.shard.count,
        opts.start_at
            .map(|t| humantime::format_rfc3339_micros(t).to_string()),
        opts.allow_hosts,
    );
    h.update(b"config\0");
    h.update(config.as_bytes());
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// Hashes a file's bytes (bounded); a file that cannot be read contributes its path.
fn hash_file(h: &mut Sha256, path: &std::path::Path) {
    let Ok(f) = std::fs::File::open(path) else {
        h.update(path.display().to_string().as_bytes());
        return;
    };
    let mut f = f.take(MAX_HASHED_BYTES);
    let mut buf = vec![0u8; 1 << 16];
    loop {
        match f.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => h.update(&buf[..n]),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::Shard;

    #[test]
    fn a_passed_start_is_late_by_what_it_missed() {
        let opts = RunOptions {
            shard: Shard { index: 1, count: 2 },
            start_at: Some(SystemTime::now() - Duration::from_millis(300)),
            ..RunOptions::default()
        };
        let (p, skew) = placement(&opts);
        assert_eq!(p.shard, opts.shard);
        assert!(skew >= 320_000, "{skew}");
        let future = RunOptions {
            start_at: Some(SystemTime::now() + Duration::from_secs(2)),
            ..opts
        };
        let (p, skew) = placement(&future);
        assert_eq!(skew, 0);
        let ahead = p.start.map(|s| s.saturating_duration_since(Instant::now()));
        assert!(
            ahead.is_some_and(|a| a > Duration::from_millis(1500)),
            "{ahead:?}"
        );
    }
}
