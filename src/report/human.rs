//! Human-readable units and words shared by the Markdown and terminal writers: latencies,
//! durations, rates, sizes, the run's verdict. Pure functions of numbers; no layout.

use super::model::{RequestStats, StopInfo, StopReason, Summary};
use crate::outcome::Class;

/// Whether `class` (a [`Class::name`]) counts as an error; a class this build does not know does.
pub(crate) fn is_error_class(class: &str) -> bool {
    Class::from_name(class).is_none_or(Class::is_error)
}

/// Classes with a non-zero count in any of `stats`, known classes in [`Class::ALL`] order first,
/// then any class this build does not know, sorted (so nothing recorded is hidden).
pub(crate) fn classes_seen<'a>(stats: impl IntoIterator<Item = &'a RequestStats>) -> Vec<String> {
    let mut seen: Vec<String> = Vec::new();
    for st in stats {
        for (class, n) in &st.by_class {
            if *n > 0 && !seen.contains(class) {
                seen.push(class.clone());
            }
        }
    }
    let rank = |c: &str| Class::from_name(c).map_or(Class::COUNT, Class::index);
    seen.sort_by(|a, b| rank(a).cmp(&rank(b)).then_with(|| a.cmp(b)));
    seen
}

/// `a / b` rounded half up.
fn div_round(a: u64, b: u64) -> u64 {
    a / b + u64::from(a % b >= b - a % b)
}

/// A latency: `850 µs` below 1 ms, `1.25 ms` below 10 ms, `12.3 ms` below 1 s, `1.20 s` above.
pub(crate) fn latency_us(us: u64) -> String {
    if us < 1_000 {
        return format!("{us} µs");
    }
    // Each step checks the rounded value, so 9,996 µs reads 10.0 ms rather than 10.00 ms.
    let centi_ms = div_round(us, 10);
    if centi_ms < 1_000 {
        return format!("{}.{:02} ms", centi_ms / 100, centi_ms % 100);
    }
    let deci_ms = div_round(us, 100);
    if deci_ms < 10_000 {
        return format!("{}.{} ms", deci_ms / 10, deci_ms % 10);
    }
    let centi_s = div_round(us, 10_000);
    format!("{}.{:02} s", centi_s / 100, centi_s % 100)
}

/// A latency given as a float number of microseconds (threshold observations).
pub(crate) fn latency_us_f(us: f64) -> String {
    // `as` saturates and maps NaN to 0; a latency is never negative.
    latency_us(us.max(0.0).round() as u64)
}

/// A run or phase length: `42.5 s` below a minute, then `1 min 11 s`, then `1 h 5 min`.
pub(crate) fn run_secs(s: f64) -> String {
    let s = if s.is_finite() { s.max(0.0) } else { 0.0 };
    if s < 59.95 {
        let text = format!("{s:.1}");
        return format!("{} s", text.strip_suffix(".0").unwrap_or(&text));
    }
    let total = s.round() as u64;
    let (h, m, sec) = (total / 3600, total / 60 % 60, total % 60);
    match (h, sec) {
        (0, 0) => format!("{m} min"),
        (0, _) => format!("{m} min {sec} s"),
        (_, _) if m == 0 => format!("{h} h"),
        _ => format!("{h} h {m} min"),
    }
}

/// A ratio as a percentage with two decimals: `0.0209` → `2.09%`.
pub(crate) fn percent(ratio: f64) -> String {
    format!("{:.2}%", ratio * 100.0)
}

/// Requests per second with one decimal.
pub(crate) fn rps(r: f64) -> String {
    format!("{r:.1}")
}

/// A planned rate without needless decimals: `200`, `12.5`.
pub(crate) fn rate(r: f64) -> String {
    if r.fract() == 0.0 {
        format!("{r:.0}")
    } else {
        format!("{r:.1}")
    }
}

/// A count with thousands separators: `11,289`.
pub(crate) fn count(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A size in KiB as KiB, MiB or GiB.
pub(crate) fn kib(k: u64) -> String {
    const MIB: u64 = 1024;
    const GIB: u64 = 1024 * 1024;
    if k < MIB {
        format!("{k} KiB")
    } else if k < GIB {
        format!("{:.1} MiB", k as f64 / MIB as f64)
    } else {
        format!("{:.2} GiB", k as f64 / GIB as f64)
    }
}

/// A threshold's observed value in its unit (`us`, `ratio`, `rps`); `no data` when absent.
pub(crate) fn observed(value: Option<f64>, unit: &str) -> String {
    match value {
        None => "no data".to_owned(),
        Some(v) => match unit {
            "us" => latency_us_f(v),
            "ratio" => percent(v),
            "rps" => format!("{} rps", rps(v)),
            other => format!("{v} {other}"),
        },
    }
}

/// How the run ended, in a few words.
pub(crate) fn stop_words(reason: StopReason) -> &'static str {
    match reason {
        StopReason::Completed => "completed",
        StopReason::Interrupted => "interrupted",
        StopReason::Aborted => "aborted by a threshold",
        StopReason::TargetUnreachable => "target unreachable",
        StopReason::TargetFailed => "target failed",
    }
}

/// `interrupted: received Ctrl-C`, or just the words when there is no detail.
pub(crate) fn stop_text(stop: &StopInfo) -> String {
    match stop.detail.as_deref().map(str::trim) {
        Some(d) if !d.is_empty() => format!("{}: {d}", stop_words(stop.reason)),
        _ => stop_words(stop.reason).to_owned(),
    }
}

/// The run's verdict from its thresholds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Verdict {
    /// `PASS` or `FAIL`; `None` when the scenario had no thresholds.
    pub word: Option<&'static str>,
    /// `all 4 thresholds passed`, `1 of 4 thresholds failed` or `no thresholds`.
    pub thresholds: String,
}

/// Whether the run ended before any load because its target did not start or could not be
/// reached: nothing was measured, so nothing was judged.
pub(crate) fn never_started(s: &Summary) -> bool {
    s.stop.reason == StopReason::TargetUnreachable && s.overall.completed == 0
}

/// PASS when every threshold passed, FAIL otherwise; no word without thresholds; ERROR when
/// the target never started (the stop line then carries its message whole).
pub(crate) fn verdict(s: &Summary) -> Verdict {
    if never_started(s) {
        return Verdict {
            word: Some("ERROR"),
            thresholds:
                "the target did not start: nothing was measured, no threshold or check was judged"
                    .to_owned(),
        };
    }
    let mut v = threshold_verdict(s);
    if s.checks.is_empty() {
        return v;
    }
    let any_failed = s
        .checks
        .iter()
        .any(|c| c.verdict == crate::check::Verdict::Fail);
    let names: Vec<String> = s
        .checks
        .iter()
        .map(|c| format!("{} {}", c.name, verdict_word(c.verdict)))
        .collect();
    v.thresholds = format!("{} · checks: {}", v.thresholds, names.join(", "));
    v.word = match (v.word, any_failed) {
        (_, true) | (Some("FAIL"), _) => Some("FAIL"),
        _ => Some("PASS"),
    };
    v
}

/// `PASS`, `FAIL` or `UNKNOWN`.
pub(crate) fn verdict_word(v: crate::check::Verdict) -> &'static str {
    match v {
        crate::check::Verdict::Pass => "PASS",
        crate::check::Verdict::Fail => "FAIL",
        crate::check::Verdict::Unknown => "UNKNOWN",
    }
}

fn threshold_verdict(s: &Summary) -> Verdict {
    let total = s.thresholds.len();
    let failed = s.thresholds.iter().filter(|t| !t.passed).count();
    let plural = |n: usize| if n == 1 { "threshold" } else { "thresholds" };
    match (total, failed) {
        (0, _) => Verdict {
            word: None,
            thresholds: "no thresholds".to_owned(),
        },
        (1, 0) => Verdict {
            word: Some("PASS"),
            thresholds: "the threshold passed".to_owned(),
        },
        (_, 0) => Verdict {
            word: Some("PASS"),
            thresholds: format!("all {total} thresholds passed"),
        },
        _ => Verdict {
            word: Some("FAIL"),
            thresholds: format!("{failed} of {total} {} failed", plural(total)),
        },
    }
}

/// Truncates to at most `max` characters, ending in `…` when cut.
pub(crate) fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_owned();
    }
    let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latency_units_and_boundaries() {
        let cases = [
            (0, "0 µs"),
            (850, "850 µs"),
            (999, "999 µs"),
            (1_000, "1.00 ms"),
            (1_234, "1.23 ms"),
            (9_994, "9.99 ms"),
            (9_995, "10.0 ms"),
            (12_345, "12.3 ms"),
            (999_949, "999.9 ms"),
            (999_950, "1.00 s"),
            (1_200_000, "1.20 s"),
            (60_000_000, "60.00 s"),
        ];
        for (us, want) in cases {
            assert_eq!(latency_us(us), want, "{us} µs");
        }
        assert_eq!(latency_us_f(f64::NAN), "0 µs");
        assert_eq!(latency_us_f(-5.0), "0 µs");
    }

    #[test]
    fn run_lengths() {
        assert_eq!(run_secs(0.0), "0 s");
        assert_eq!(run_secs(30.0), "30 s");
        assert_eq!(run_secs(42.54), "42.5 s");
        assert_eq!(run_secs(59.96), "1 min");
        assert_eq!(run_secs(71.4), "1 min 11 s");
        assert_eq!(run_secs(120.0), "2 min");
        assert_eq!(run_secs(3600.0), "1 h");
        assert_eq!(run_secs(3900.0), "1 h 5 min");
        assert_eq!(run_secs(f64::INFINITY), "0 s");
    }

    #[test]
    fn numbers() {
        assert_eq!(percent(236.0 / 11_289.0), "2.09%");
        assert_eq!(percent(0.0), "0.00%");
        assert_eq!(count(0), "0");
        assert_eq!(count(999), "999");
        assert_eq!(count(1_000), "1,000");
        assert_eq!(count(11_289_000), "11,289,000");
        assert_eq!(kib(512), "512 KiB");
        assert_eq!(kib(48_312), "47.2 MiB");
        assert_eq!(kib(3 * 1024 * 1024), "3.00 GiB");
        assert_eq!(rate(200.0), "200");
        assert_eq!(rate(12.5), "12.5");
        assert_eq!(observed(None, "us"), "no data");
        assert_eq!(observed(Some(158.11), "rps"), "158.1 rps");
    }

    #[test]
    fn classes_in_report_order_unknown_last() {
        let mut a = crate::report::model::fixture().requests[1].clone();
        a.by_class.insert("1xx".to_owned(), 2);
        a.by_class.insert("3xx".to_owned(), 0);
        assert_eq!(classes_seen([&a]), ["2xx", "429", "5xx", "timeout", "1xx"]);
    }

    #[test]
    fn truncates_on_char_boundaries() {
        assert_eq!(truncate("µµµµ", 4), "µµµµ");
        assert_eq!(truncate("µµµµµ", 4), "µµµ…");
    }
}
