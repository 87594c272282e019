//! Chart axes and tick labels: linear, count and log axes with round ticks, and the formats
//! for latency, run time, plain numbers and percentages. No drawing (that is `Plot`).

/// One axis: its range and whether it is logarithmic.
#[derive(Debug, Clone, Copy)]
pub struct Axis {
    /// Lowest value shown.
    pub min: f64,
    /// Highest value shown.
    pub max: f64,
    /// Base-10 logarithmic (`min` must then be above 0).
    pub log: bool,
    /// Counts: ticks are whole numbers.
    pub integer: bool,
}

impl Axis {
    /// A linear axis from `min` to `max` (widened when empty).
    pub fn linear(min: f64, max: f64) -> Axis {
        let max = if max > min { max } else { min + 1.0 };
        Axis {
            min,
            max,
            log: false,
            integer: false,
        }
    }

    /// A linear axis of counts from 0 to at least `max`, with whole-number ticks.
    pub fn counts_to(max: f64) -> Axis {
        let max = max.max(1.0);
        // Small counts end on the next whole number, not on a half step.
        let top = if max <= 5.0 {
            max.ceil()
        } else {
            nice_ceiling(max)
        };
        Axis {
            integer: true,
            ..Axis::linear(0.0, top)
        }
    }

    /// A linear axis from 0 to a round number at or above `max`.
    pub fn linear_to(max: f64) -> Axis {
        let top = nice_ceiling(max);
        Axis::linear(0.0, top)
    }

    /// A log axis spanning whole decades around `[min, max]`.
    pub fn log(min: f64, max: f64) -> Axis {
        let lo = min.max(1e-9);
        let hi = max.max(lo * 10.0);
        Axis {
            min: 10f64.powf(lo.log10().floor()),
            max: 10f64.powf(hi.log10().ceil()),
            log: true,
            integer: false,
        }
    }

    /// `v` mapped onto `[a, b]` (clamped).
    pub(super) fn map(&self, v: f64, a: f64, b: f64) -> f64 {
        let f = if self.log {
            let v = v.max(self.min);
            (v.log10() - self.min.log10()) / (self.max.log10() - self.min.log10())
        } else {
            (v - self.min) / (self.max - self.min)
        };
        a + (b - a) * f.clamp(0.0, 1.0)
    }

    /// Tick values: 1-2-5 steps on a linear axis, decades (and 2, 5 within few decades) on a log
    /// axis.
    pub(super) fn ticks(&self) -> Vec<f64> {
        if self.log {
            let (lo, hi) = (
                self.min.log10().round() as i32,
                self.max.log10().round() as i32,
            );
            let mut out = Vec::new();
            for e in lo..=hi {
                let d = 10f64.powi(e);
                out.push(d);
                if hi - lo <= 2 && e < hi {
                    out.push(2.0 * d);
                    out.push(5.0 * d);
                }
            }
            out
        } else {
            let mut step = nice_step((self.max - self.min) / 5.0);
            if self.integer {
                step = step.max(1.0);
            }
            let mut out = Vec::new();
            let mut v = (self.min / step).ceil() * step;
            while v <= self.max + step * 1e-9 {
                out.push(v);
                v += step;
            }
            out
        }
    }
}

/// A round step (1, 2 or 5 × 10^k) at or above `raw`.
fn nice_step(raw: f64) -> f64 {
    if raw <= 0.0 || !raw.is_finite() {
        return 1.0;
    }
    let mag = 10f64.powf(raw.log10().floor());
    let f = raw / mag;
    let m = if f <= 1.0 {
        1.0
    } else if f <= 2.0 {
        2.0
    } else if f <= 5.0 {
        5.0
    } else {
        10.0
    };
    m * mag
}

/// A round number at or above `v` (for the top of a linear axis).
pub fn nice_ceiling(v: f64) -> f64 {
    if v <= 0.0 || !v.is_finite() {
        return 1.0;
    }
    let step = nice_step(v / 5.0);
    (v / step).ceil() * step
}

/// Formats a tick label.
pub type Format = fn(f64) -> String;

/// A latency in µs as a short tick label: `500 µs`, `2 ms`, `1.5 s`.
pub fn fmt_latency(us: f64) -> String {
    if us < 1_000.0 {
        format!("{} µs", trim(us))
    } else if us < 1_000_000.0 {
        format!("{} ms", trim(us / 1_000.0))
    } else {
        format!("{} s", trim(us / 1_000_000.0))
    }
}

/// Run time in seconds as a tick label.
pub fn fmt_secs(s: f64) -> String {
    if s >= 120.0 && (s / 60.0).fract() == 0.0 {
        format!("{} min", trim(s / 60.0))
    } else {
        format!("{} s", trim(s))
    }
}

/// A plain number: thousands separated from 10,000 on, else with at most 2 decimals.
pub fn fmt_num(v: f64) -> String {
    if v.abs() >= 10_000.0 {
        let n = crate::report::human::count(v.abs().round() as u64);
        if v < 0.0 { format!("-{n}") } else { n }
    } else {
        trim(v)
    }
}

/// A percentage (0–100 already).
pub fn fmt_pct(v: f64) -> String {
    format!("{}%", trim(v))
}

fn trim(v: f64) -> String {
    let s = if v.abs() >= 100.0 {
        format!("{v:.0}")
    } else if v.abs() >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    };
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_owned()
    } else {
        s
    }
}
