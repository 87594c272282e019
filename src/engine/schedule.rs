//! Intended start times: the open-loop arrival schedule of every phase.
//!
//! A phase with a rate going linearly from `b` to `e` requests per second over `D` seconds has
//! `N(t) = b·t + a·t²` arrivals by time `t`, with `a = (e − b) / 2D`. Request `k` (from 0) is
//! intended at the `t` where `N(t) = k`, i.e. `t = 2k / (b + √(b² + 4ak))`, a form that stays
//! exact for constant rates (`a = 0`) and ramps that start at zero (`b = 0`).

use std::time::Duration;

use crate::scenario::plan::{Load, Phase};

/// The schedule of one phase, relative to the phase's start.
#[derive(Debug, Clone, PartialEq)]
pub struct PhaseSchedule {
    /// Offset of the phase from the start of the run.
    pub offset: Duration,
    /// Length of the phase.
    pub duration: Duration,
    /// What the phase does.
    pub load: Load,
    /// Open-loop arrivals in the whole phase (0 for other phases).
    pub total: u64,
}

impl PhaseSchedule {
    /// Lays out `phases` one after another from time zero.
    pub fn build(phases: &[Phase]) -> Vec<PhaseSchedule> {
        let mut offset = Duration::ZERO;
        phases
            .iter()
            .map(|p| {
                let mut s = PhaseSchedule {
                    offset,
                    duration: p.duration,
                    load: p.load.clone(),
                    total: 0,
                };
                s.total = s.due_by(p.duration);
                offset += p.duration;
                s
            })
            .collect()
    }

    /// End of the phase, from the start of the run.
    pub fn end(&self) -> Duration {
        self.offset + self.duration
    }

    fn coefficients(&self) -> Option<(f64, f64)> {
        match self.load {
            Load::Rate { from, to, .. } => {
                let d = self.duration.as_secs_f64();
                Some((from, (to - from) / (2.0 * d)))
            }
            Load::Vus(_) | Load::Pause | Load::Replay(_) => None,
        }
    }

    /// Intended time of arrival `k` relative to the phase start, or `None` past the phase.
    pub fn intended(&self, k: u64) -> Option<Duration> {
        if k >= self.total {
            return None;
        }
        let (b, a) = self.coefficients()?;
        let k = k as f64;
        let disc = (b * b + 4.0 * a * k).max(0.0);
        let t = if k == 0.0 {
            0.0
        } else {
            2.0 * k / (b + disc.sqrt())
        };
        Some(Duration::from_secs_f64(t.min(self.duration.as_secs_f64())))
    }

    /// Arrivals intended strictly before `elapsed` (relative to the phase start), capped at the
    /// phase total.
    pub fn due_by(&self, elapsed: Duration) -> u64 {
        let Some((b, a)) = self.coefficients() else {
            return 0;
        };
        let t = elapsed.min(self.duration).as_secs_f64();
        let n = b * t + a * t * t;
        // Arrivals are at N(t) = 0, 1, 2, ...; those strictly before t number ceil(N(t)).
        let due = n.max(0.0).ceil() as u64;
        if self.total > 0 {
            due.min(self.total)
        } else {
            due
        }
    }

    /// Instantaneous target rate at `elapsed` into the phase (requests per second).
    pub fn rate_at(&self, elapsed: Duration) -> f64 {
        match self.load {
            Load::Rate { from, to, .. } => {
                let f = (elapsed.as_secs_f64() / self.duration.as_secs_f64()).clamp(0.0, 1.0);
                from + (to - from) * f
            }
            _ => 0.0,
        }
    }
}

/// Index of the phase running at `elapsed` from the start of the run, if any.
pub fn phase_at(phases: &[PhaseSchedule], elapsed: Duration) -> Option<usize> {
    phases
        .iter()
        .position(|p| elapsed >= p.offset && elapsed < p.end())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rate(from: f64, to: f64, secs: u64) -> Phase {
        Phase {
            name: None,
            duration: Duration::from_secs(secs),
            load: Load::Rate {
                from,
                to,
                max_in_flight: 8,
            },
        }
    }

    #[test]
    fn constant_rate_is_evenly_spaced() {
        let s = &PhaseSchedule::build(&[rate(100.0, 100.0, 10)])[0];
        assert_eq!(s.total, 1000);
        assert_eq!(s.intended(0), Some(Duration::ZERO));
        assert_eq!(s.intended(1), Some(Duration::from_millis(10)));
        assert_eq!(s.intended(999), Some(Duration::from_millis(9990)));
        assert_eq!(s.intended(1000), None);
        assert_eq!(s.due_by(Duration::from_millis(15)), 2);
        assert_eq!(s.due_by(Duration::from_secs(60)), 1000);
    }

    #[test]
    fn ramp_arrivals_follow_the_integral_of_the_rate() {
        // 0 -> 100 req/s over 10 s: N(t) = 5 t², 500 arrivals in all.
        let s = &PhaseSchedule::build(&[rate(0.0, 100.0, 10)])[0];
        assert_eq!(s.total, 500);
        // Arrival 125 is at t where 5 t² = 125, t = 5 s.
        let t = s.intended(125).map(|d| d.as_secs_f64()).unwrap_or(-1.0);
        assert!((t - 5.0).abs() < 1e-9, "{t}");
        // Intended times increase and the gaps shrink as the rate rises.
        let times: Vec<f64> = (0..500)
            .map(|k| s.intended(k).map_or(f64::NAN, |d| d.as_secs_f64()))
            .collect();
        assert!(times.windows(2).all(|w| w[1] > w[0]));
        assert!(times[2] - times[1] > times[499] - times[498]);
        // Half the phase holds a quarter of the arrivals.
        assert_eq!(s.due_by(Duration::from_secs(5)), 125);
    }

    #[test]
    fn ramp_down_reaches_the_same_total_as_its_mirror() {
        let up = &PhaseSchedule::build(&[rate(10.0, 500.0, 4)])[0];
        let down = &PhaseSchedule::build(&[rate(500.0, 10.0, 4)])[0];
        assert_eq!(up.total, 1020);
        assert_eq!(down.total, up.total);
        // Front-loaded: the first second of the ramp down holds more than the last.
        assert!(down.due_by(Duration::from_secs(1)) > 400);
        let last = down.total - down.due_by(Duration::from_secs(3));
        assert!(last < 100, "{last}");
    }

    #[test]
    fn phases_are_laid_out_back_to_back() {
        let phases = PhaseSchedule::build(&[
            rate(10.0, 10.0, 2),
            Phase {
                name: None,
                duration: Duration::from_secs(3),
                load: Load::Vus(4),
            },
            Phase {
                name: None,
                duration: Duration::from_secs(1),
                load: Load::Pause,
            },
        ]);
        assert_eq!(phases[1].offset, Duration::from_secs(2));
        assert_eq!(phases[1].total, 0);
        assert_eq!(phases[2].end(), Duration::from_secs(6));
        assert_eq!(phase_at(&phases, Duration::from_millis(1999)), Some(0));
        assert_eq!(phase_at(&phases, Duration::from_secs(2)), Some(1));
        assert_eq!(phase_at(&phases, Duration::from_secs(6)), None);
        assert!((phases[0].rate_at(Duration::from_secs(1)) - 10.0).abs() < 1e-9);
    }
}
