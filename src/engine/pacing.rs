//! Precise open-loop pacing: a worker waits for its next intended start time on its own Linux
//! `timerfd` (nanosecond deadlines on `CLOCK_MONOTONIC`, the clock `Instant` reads), watched by
//! the engine thread's tokio reactor, instead of tokio's timer wheel, which rounds every
//! deadline up to the next millisecond tick (that rounding was the ~1 ms of harness lag in
//! every corrected latency). The timer is armed absolute, so re-arming never drifts.
//!
//! A timerfd's hrtimer is armed without timer slack; the engine threads also set their slack to
//! 1 µs ([`tighten_timer_slack`]) so the reactor's own `epoll_wait` timeouts are not stretched
//! by the default 50 µs. A worker that cannot get a timerfd (file descriptors exhausted, not
//! Linux) falls back to tokio's timer: paced to the millisecond, never wrong.
//!
//! Owns only waiting; what to wait for is the engine's.

use std::time::Instant;

/// Waits that lie less than this ahead are not slept: arming the timer and waking would
/// take about as long.
const SPIN_BELOW_NS: u64 = 2_000;

/// Sets the calling thread's timer slack to 1 ns (Linux; no-op elsewhere).
pub fn tighten_timer_slack() {
    #[cfg(target_os = "linux")]
    // SAFETY: PR_SET_TIMERSLACK takes one unsigned long and touches only this thread.
    unsafe {
        libc::prctl(libc::PR_SET_TIMERSLACK, 1 as libc::c_ulong, 0, 0, 0);
    }
}

/// One worker's precise timer; created lazily on first use.
#[derive(Default)]
pub struct Pacer {
    timer: Option<imp::Timer>,
    /// Creating a timerfd failed once: use tokio's timer from now on.
    unavailable: bool,
}

impl Pacer {
    /// Sleeps until `deadline` with microsecond precision (tokio's timer when no timerfd).
    pub async fn sleep_until(&mut self, deadline: Instant) {
        let now = Instant::now();
        let Some(ahead) = deadline.checked_duration_since(now) else {
            return;
        };
        if (ahead.as_nanos() as u64) < SPIN_BELOW_NS {
            while Instant::now() < deadline {
                std::hint::spin_loop();
            }
            return;
        }
        if self.timer.is_none() && !self.unavailable {
            self.timer = imp::Timer::new();
            self.unavailable = self.timer.is_none();
        }
        match self.timer.as_mut() {
            Some(t) if t.arm(now, deadline) => t.wait().await,
            _ => tokio::time::sleep_until(deadline.into()).await,
        }
    }
}

#[cfg(target_os = "linux")]
mod imp {
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    use std::time::Instant;

    use tokio::io::unix::AsyncFd;

    /// A non-blocking `CLOCK_MONOTONIC` timerfd registered with the thread's reactor.
    pub struct Timer {
        fd: AsyncFd<OwnedFd>,
    }

    impl Timer {
        /// A new timer, or `None` when the kernel refuses one (fd limit).
        pub fn new() -> Option<Timer> {
            // SAFETY: plain syscall; the returned descriptor is owned below.
            let raw = unsafe {
                libc::timerfd_create(
                    libc::CLOCK_MONOTONIC,
                    libc::TFD_NONBLOCK | libc::TFD_CLOEXEC,
                )
            };
            if raw < 0 {
                return None;
            }
            // SAFETY: `raw` is a fresh descriptor nobody else owns.
            let owned = unsafe { OwnedFd::from_raw_fd(raw) };
            // SAFETY: the OwnedFd moves into the AsyncFd, so it stays open while registered.
            unsafe { AsyncFd::register(owned) }
                .ok()
                .map(|fd| Timer { fd })
        }

        /// Arms the timer at `deadline` (absolute); false when the kernel refused.
        pub fn arm(&self, now: Instant, deadline: Instant) -> bool {
            let mut mono = libc::timespec {
                tv_sec: 0,
                tv_nsec: 0,
            };
            // SAFETY: writes into `mono` only.
            if unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut mono) } != 0 {
                return false;
            }
            // `Instant` is CLOCK_MONOTONIC on Linux; the offset read between the two clocks is
            // below a microsecond.
            let ahead = deadline.saturating_duration_since(now);
            let total = mono.tv_nsec as u128 + ahead.subsec_nanos() as u128;
            let spec = libc::itimerspec {
                it_interval: libc::timespec {
                    tv_sec: 0,
                    tv_nsec: 0,
                },
                it_value: libc::timespec {
                    tv_sec: mono.tv_sec
                        + ahead.as_secs() as libc::time_t
                        + (total / 1_000_000_000) as libc::time_t,
                    tv_nsec: (total % 1_000_000_000) as libc::c_long,
                },
            };
            // SAFETY: valid descriptor and itimerspec; the old value is not asked for.
            let rc = unsafe {
                libc::timerfd_settime(
                    self.fd.get_ref().as_raw_fd(),
                    libc::TFD_TIMER_ABSTIME,
                    &spec,
                    std::ptr::null_mut(),
                )
            };
            rc == 0
        }

        /// Waits until the armed timer expires.
        pub async fn wait(&mut self) {
            loop {
                let Ok(mut guard) = self.fd.readable().await else {
                    return;
                };
                let mut buf = [0u8; 8];
                // SAFETY: reads at most 8 bytes into `buf`.
                let n = unsafe {
                    libc::read(
                        guard.get_inner().as_raw_fd(),
                        buf.as_mut_ptr().cast(),
                        buf.len(),
                    )
                };
                if n == 8 {
                    // One-shot: not readable again until re-armed and expired, which the
                    // edge-triggered reactor reports anew. Clearing now saves the next wait a
                    // read that could only answer EAGAIN (one syscall per paced request).
                    guard.clear_ready();
                    return;
                }
                let err = std::io::Error::last_os_error();
                if err.kind() == std::io::ErrorKind::WouldBlock {
                    guard.clear_ready();
                    continue;
                }
                // Any other error: do not spin on it.
                return;
            }
        }
    }
}

#[cfg(not(target_os = "linux"))]
mod imp {
    use std::time::Instant;

    /// No precise timer off Linux.
    pub struct Timer;

    impl Timer {
        pub fn new() -> Option<Timer> {
            None
        }
        pub fn arm(&mut self, _now: Instant, _deadline: Instant) -> bool {
            false
        }
        pub async fn wait(&mut self) {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn sleeps_wake_within_a_fraction_of_a_millisecond() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap_or_else(|e| panic!("runtime: {e}"));
        tighten_timer_slack();
        let (lags, precise) = rt.block_on(async {
            let mut pacer = Pacer::default();
            let mut lags = Vec::new();
            for i in 0..50u64 {
                let deadline = Instant::now() + Duration::from_micros(150 + 37 * i);
                pacer.sleep_until(deadline).await;
                let now = Instant::now();
                assert!(now >= deadline, "woke before its deadline");
                lags.push(now.duration_since(deadline));
            }
            (lags, pacer.timer.is_some())
        });
        assert!(
            cfg!(not(target_os = "linux")) || precise,
            "no timerfd on Linux"
        );
        let mut lags = lags;
        lags.sort();
        // tokio's timer wheel rounds up to the next millisecond tick; the timerfd wakes within
        // microseconds when the thread gets a CPU (on a loaded machine only some wakes do, so
        // only the fastest tenth is judged).
        assert!(
            lags[lags.len() / 10] < Duration::from_micros(300),
            "{lags:?}"
        );
    }

    #[test]
    fn a_deadline_in_the_past_returns_at_once() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap_or_else(|e| panic!("runtime: {e}"));
        rt.block_on(async {
            let mut pacer = Pacer::default();
            let past = Instant::now() - Duration::from_millis(5);
            let t = Instant::now();
            pacer.sleep_until(past).await;
            assert!(t.elapsed() < Duration::from_millis(5));
        });
    }
}
