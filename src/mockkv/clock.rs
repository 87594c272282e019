//! The mock's virtual clock: one notion of "now" shared by TTL expiry, the
//! same-key write limit, quota days and fault time windows.
//!
//! Owns: the mapping from real elapsed time to virtual time (base + elapsed ×
//! speed), and setting/advancing it. Does not own: anything that reads the
//! time (store, quotas, faults take `now_ms` as a plain argument so that
//! they stay pure and testable).

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Milliseconds in one (virtual) day; quota windows reset at multiples of it.
pub const DAY_MS: u64 = 86_400_000;

/// A settable, speed-adjustable clock measured in milliseconds since the
/// Unix epoch. Clones share the same time.
#[derive(Clone, Debug)]
pub struct VirtualClock {
    // std Mutex: held for a few arithmetic operations only, never across `.await`.
    inner: Arc<Mutex<ClockState>>,
}

#[derive(Debug)]
struct ClockState {
    /// Virtual time at `base_real`, in ms since the Unix epoch.
    base_ms: f64,
    base_real: Instant,
    /// Virtual milliseconds per real millisecond; 0 freezes the clock.
    speed: f64,
}

impl ClockState {
    fn now_ms(&self) -> f64 {
        self.base_ms + self.base_real.elapsed().as_secs_f64() * 1000.0 * self.speed
    }
    fn rebase(&mut self) {
        self.base_ms = self.now_ms();
        self.base_real = Instant::now();
    }
}

/// A serialisable view of the clock for the control API.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ClockView {
    /// Virtual now, ms since the Unix epoch.
    pub now_ms: u64,
    /// Virtual milliseconds per real millisecond.
    pub speed: f64,
}

impl VirtualClock {
    /// A clock starting at real wall-clock time and running at `speed`.
    pub fn real_time(speed: f64) -> Self {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_millis() as f64;
        Self::starting_at(now as u64, speed)
    }

    /// A clock starting at `start_ms` (ms since the Unix epoch) running at `speed`.
    pub fn starting_at(start_ms: u64, speed: f64) -> Self {
        Self {
            inner: Arc::new(Mutex::new(ClockState {
                base_ms: start_ms as f64,
                base_real: Instant::now(),
                speed: sanitize_speed(speed),
            })),
        }
    }

    /// A clock that stands still at `start_ms` until set or advanced: the
    /// clock for tests.
    pub fn frozen(start_ms: u64) -> Self {
        Self::starting_at(start_ms, 0.0)
    }

    /// The speed factor that makes one virtual day last `day` of real time.
    pub fn speed_for_day(day: Duration) -> f64 {
        let real_ms = day.as_secs_f64() * 1000.0;
        if real_ms <= 0.0 {
            1.0
        } else {
            DAY_MS as f64 / real_ms
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ClockState> {
        // The state is always consistent (plain numbers), so poisoning is harmless.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Virtual now in ms since the Unix epoch.
    pub fn now_ms(&self) -> u64 {
        self.lock().now_ms().max(0.0) as u64
    }

    /// Virtual now in whole seconds since the Unix epoch (KV's expiration unit).
    pub fn now_secs(&self) -> u64 {
        self.now_ms() / 1000
    }

    /// Jump to `ms` (ms since the Unix epoch); the speed is kept.
    pub fn set_ms(&self, ms: u64) {
        let mut s = self.lock();
        s.base_ms = ms as f64;
        s.base_real = Instant::now();
    }

    /// Move virtual time forward by `d`.
    pub fn advance(&self, d: Duration) {
        let mut s = self.lock();
        s.rebase();
        s.base_ms += d.as_secs_f64() * 1000.0;
    }

    /// Change the speed factor from now on (0 freezes the clock).
    pub fn set_speed(&self, speed: f64) {
        let mut s = self.lock();
        s.rebase();
        s.speed = sanitize_speed(speed);
    }

    /// Current time and speed.
    pub fn view(&self) -> ClockView {
        let s = self.lock();
        ClockView {
            now_ms: s.now_ms().max(0.0) as u64,
            speed: s.speed,
        }
    }
}

fn sanitize_speed(speed: f64) -> f64 {
    if speed.is_finite() && speed >= 0.0 {
        speed
    } else {
        1.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frozen_clock_moves_only_when_told() {
        let c = VirtualClock::frozen(1_000_000);
        assert_eq!(c.now_ms(), 1_000_000);
        c.advance(Duration::from_secs(61));
        assert_eq!(c.now_ms(), 1_061_000);
        c.set_ms(5);
        assert_eq!(c.now_ms(), 5);
        let shared = c.clone();
        shared.advance(Duration::from_millis(10));
        assert_eq!(c.now_ms(), 15);
    }

    #[test]
    fn day_speed_maps_a_minute_to_a_day() {
        assert_eq!(VirtualClock::speed_for_day(Duration::from_secs(60)), 1440.0);
        assert_eq!(VirtualClock::speed_for_day(Duration::ZERO), 1.0);
    }

    #[test]
    fn bad_speeds_fall_back_to_real_time() {
        let c = VirtualClock::starting_at(0, f64::NAN);
        assert_eq!(c.view().speed, 1.0);
        c.set_speed(-3.0);
        assert_eq!(c.view().speed, 1.0);
    }
}
