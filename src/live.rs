//! The plain live line printed once a second when stdout is not a terminal (or `--no-tui`).

use crate::engine::Progress;
use crate::metrics::Live;

/// One status line, e.g.
/// `[  12s/60s] phase 2/3 rate 4998/s (target 5000) p50 1.2ms p99 4.5ms err 0.00% dropped 0 in-flight 12`.
pub fn line(live: &Live, progress: &Progress, total_s: f64, phases: usize) -> String {
    let phase = progress.phase.map_or_else(
        || "draining".to_owned(),
        |p| format!("phase {}/{phases}", p + 1),
    );
    let target = if progress.target_rate > 0.0 {
        format!(" (target {:.0})", progress.target_rate)
    } else {
        String::new()
    };
    let err = if live.completed == 0 {
        0.0
    } else {
        100.0 * live.errors_total as f64 / live.completed as f64
    };
    format!(
        "[{:>5.0}s/{:.0}s] {phase} rate {:.0}/s{target} p50 {} p99 {} err {err:.2}% dropped {} in-flight {}",
        live.elapsed_s,
        total_s,
        live.rps,
        micros(live.p50_us),
        micros(live.p99_us),
        live.dropped_total,
        progress.in_flight,
    )
}

/// Human form of a latency in microseconds.
pub fn micros(us: u64) -> String {
    match us {
        0..1_000 => format!("{us}µs"),
        1_000..1_000_000 => format!("{:.1}ms", us as f64 / 1e3),
        _ => format!("{:.2}s", us as f64 / 1e6),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_a_line() {
        let live = Live {
            elapsed_s: 12.0,
            rps: 4998.0,
            p50_us: 1200,
            p99_us: 4500,
            errors: 0,
            completed: 1000,
            errors_total: 5,
            dropped_total: 3,
        };
        let progress = Progress {
            phase: Some(1),
            target_rate: 5000.0,
            in_flight: 12,
        };
        assert_eq!(
            line(&live, &progress, 60.0, 3),
            "[   12s/60s] phase 2/3 rate 4998/s (target 5000) p50 1.2ms p99 4.5ms err 0.50% dropped 3 in-flight 12"
        );
        assert_eq!(micros(850), "850µs");
        assert_eq!(micros(2_500_000), "2.50s");
    }
}
