//! The run's clock as the launcher takes it (`--clock`, the `clock`
//! command): one anchor that the Worker's `Date` (mock/miniflare/run-clock.mjs)
//! and the mock KV's clock (`mockkv::clock`) both extend the same way,
//! virtual now = `now_ms` + (wall now − `wall_ms`) × `speed`.

/// The run's clock at one instant: virtual `now_ms` at wall time `wall_ms`
/// (both ms since the Unix epoch), running `speed` times real time — the
/// rule of the mock KV's clock (`mockkv::clock`), so both read the same time.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ClockAnchor {
    /// Virtual now, ms since the Unix epoch.
    pub now_ms: u64,
    /// Wall-clock time of that instant, ms since the Unix epoch.
    pub wall_ms: u64,
    /// Virtual milliseconds per real millisecond.
    pub speed: f64,
}

impl ClockAnchor {
    /// The clock `view` shows now.
    pub fn of(view: &crate::mockkv::clock::ClockView) -> Self {
        let wall_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_millis() as u64;
        Self {
            now_ms: view.now_ms,
            wall_ms,
            speed: view.speed,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_anchor_pairs_the_virtual_time_with_the_wall_time_of_now() {
        let view = crate::mockkv::clock::ClockView {
            now_ms: 86_400_000,
            speed: 60.0,
        };
        let before = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("after 1970")
            .as_millis() as u64;
        let a = ClockAnchor::of(&view);
        assert_eq!((a.now_ms, a.speed), (86_400_000, 60.0));
        assert!(a.wall_ms >= before && a.wall_ms < before + 5_000);
    }
}
