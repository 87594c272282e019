//! Threshold expressions: `<metric> <op> <value>`, e.g. `p99 < 500ms`, `error_rate < 1%`.
//!
//! Parses one expression into a metric, an operator and a limit in the metric's unit
//! (microseconds for latency, a fraction for rates, requests per second for `rps`). Which
//! requests a threshold covers is decided by validation, not here.

use super::plan::{CmpOp, LatencyKind, LatencyStat, ThresholdMetric};

/// The metrics a user may write, for error messages.
pub const METRICS: &str = "p50, p90, p99, p99.9 (any pN with N in (0, 100]), mean, max, min, \
     service_p99 / service_mean / service_max / service_min (service time), error_rate, dropped_rate, rps";

/// One parsed expression.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Expr {
    /// What is measured.
    pub metric: ThresholdMetric,
    /// How it is compared.
    pub op: CmpOp,
    /// The limit, in the metric's unit.
    pub limit: f64,
}

/// Parses `expr`; the error says what is wrong and shows a valid expression.
pub fn parse(expr: &str) -> Result<Expr, String> {
    let Some(op_at) = expr.find(['<', '>', '=', '!']) else {
        return Err(format!(
            "invalid threshold \"{expr}\": expected <metric> <op> <value>, e.g. \"p99 < 500ms\" or \"error_rate < 1%\""
        ));
    };
    let metric_text = expr[..op_at].trim();
    let after = &expr[op_at..];
    let (op, value_text) = if let Some(v) = after.strip_prefix("<=") {
        (CmpOp::Le, v)
    } else if let Some(v) = after.strip_prefix(">=") {
        (CmpOp::Ge, v)
    } else if let Some(v) = after.strip_prefix('<') {
        (CmpOp::Lt, v)
    } else if let Some(v) = after.strip_prefix('>') {
        (CmpOp::Gt, v)
    } else {
        let op: String = after.chars().take_while(|c| "<>=!".contains(*c)).collect();
        return Err(format!(
            "invalid operator \"{op}\" in threshold \"{expr}\": use <, <=, > or >=, e.g. \"p99 < 500ms\""
        ));
    };
    let value_text = value_text.trim();
    if metric_text.is_empty() {
        return Err(format!(
            "threshold \"{expr}\" has no metric: expected <metric> <op> <value>, e.g. \"p99 < 500ms\"; metrics: {METRICS}"
        ));
    }
    if value_text.is_empty() || value_text.starts_with(['<', '>', '=']) {
        return Err(format!(
            "threshold \"{expr}\" has no valid value after the operator: e.g. \"p99 < 500ms\""
        ));
    }
    let metric = parse_metric(metric_text).ok_or_else(|| {
        format!(
            "unknown metric \"{metric_text}\" in threshold \"{expr}\": expected one of {METRICS}"
        )
    })?;
    let limit = match metric {
        ThresholdMetric::Latency { .. } => parse_latency(value_text).ok_or_else(|| {
            format!(
                "invalid latency \"{value_text}\" in threshold \"{expr}\": expected a number with a unit (us, ms, s, m), e.g. \"{metric_text} < 250ms\" or \"{metric_text} < 1.5s\""
            )
        })?,
        ThresholdMetric::ErrorRate | ThresholdMetric::DroppedRate => parse_fraction(value_text)
            .ok_or_else(|| {
                format!(
                    "invalid rate \"{value_text}\" in threshold \"{expr}\": expected a percentage or a fraction between 0 and 1, e.g. \"{metric_text} < 1%\" or \"{metric_text} < 0.01\""
                )
            })?,
        ThresholdMetric::Rps => parse_number(value_text).ok_or_else(|| {
            format!(
                "invalid requests per second \"{value_text}\" in threshold \"{expr}\": expected a plain number, e.g. \"rps >= 450\""
            )
        })?,
    };
    Ok(Expr { metric, op, limit })
}

fn parse_metric(text: &str) -> Option<ThresholdMetric> {
    match text {
        "error_rate" => return Some(ThresholdMetric::ErrorRate),
        "dropped_rate" => return Some(ThresholdMetric::DroppedRate),
        "rps" => return Some(ThresholdMetric::Rps),
        _ => {}
    }
    let (kind, stat_text) = match text.strip_prefix("service_") {
        Some(rest) => (LatencyKind::Service, rest),
        None => (LatencyKind::Corrected, text),
    };
    let stat = match stat_text {
        "mean" => LatencyStat::Mean,
        "max" => LatencyStat::Max,
        "min" => LatencyStat::Min,
        _ => {
            let n = stat_text.strip_prefix('p')?;
            if !n.chars().all(|c| c.is_ascii_digit() || c == '.') {
                return None;
            }
            let n: f64 = n.parse().ok()?;
            if !(n > 0.0 && n <= 100.0) {
                return None;
            }
            LatencyStat::Percentile(n)
        }
    };
    Some(ThresholdMetric::Latency { kind, stat })
}

/// A non-negative decimal number (no exponent, no sign, no inf/nan).
fn parse_number(text: &str) -> Option<f64> {
    let plain = !text.is_empty()
        && text.chars().all(|c| c.is_ascii_digit() || c == '.')
        && text.chars().any(|c| c.is_ascii_digit());
    plain.then(|| text.parse().ok()).flatten()
}

/// Microseconds.
fn parse_latency(text: &str) -> Option<f64> {
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let n = parse_number(&text[..split])?;
    let per_unit = match text[split..].trim() {
        "us" | "µs" => 1.0,
        "ms" => 1_000.0,
        "s" => 1_000_000.0,
        "m" => 60_000_000.0,
        _ => return None,
    };
    Some(n * per_unit)
}

fn parse_fraction(text: &str) -> Option<f64> {
    let f = match text.strip_suffix('%') {
        Some(p) => parse_number(p.trim())? / 100.0,
        None => parse_number(text)?,
    };
    (0.0..=1.0).contains(&f).then_some(f)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(s: &str) -> Expr {
        match parse(s) {
            Ok(e) => e,
            Err(e) => panic!("{s}: {e}"),
        }
    }

    fn lat(kind: LatencyKind, stat: LatencyStat) -> ThresholdMetric {
        ThresholdMetric::Latency { kind, stat }
    }

    #[test]
    fn parses_latency_rate_and_rps_expressions() {
        assert_eq!(
            ok("p99 < 500ms"),
            Expr {
                metric: lat(LatencyKind::Corrected, LatencyStat::Percentile(99.0)),
                op: CmpOp::Lt,
                limit: 500_000.0
            }
        );
        assert_eq!(ok("p99.9<=1.5s").limit, 1_500_000.0);
        assert_eq!(ok("p99.9<=1.5s").op, CmpOp::Le);
        assert_eq!(
            ok("service_mean > 20us").metric,
            lat(LatencyKind::Service, LatencyStat::Mean)
        );
        assert_eq!(ok("max < 2m").limit, 120_000_000.0);
        assert_eq!(ok("min >= 3µs").limit, 3.0);
        assert_eq!(
            ok("p100 < 1s").metric,
            lat(LatencyKind::Corrected, LatencyStat::Percentile(100.0))
        );
        assert_eq!(ok("error_rate < 1%").limit, 0.01);
        assert_eq!(ok("dropped_rate <= 0.05").limit, 0.05);
        assert_eq!(ok("rps >= 450").metric, ThresholdMetric::Rps);
        assert_eq!(ok("rps >= 450").op, CmpOp::Ge);
    }

    #[test]
    fn rejects_bad_expressions_with_the_fix() {
        let e = |s: &str| parse(s).err().unwrap_or_default();
        assert!(e("latency < 5ms").contains("unknown metric \"latency\""));
        assert!(e("latency < 5ms").contains("error_rate"));
        assert!(e("p0 < 5ms").contains("unknown metric"));
        assert!(e("p101 < 5ms").contains("unknown metric"));
        assert!(e("p99 < 500").contains("invalid latency \"500\""));
        assert!(e("p99 < 5 hours").contains("e.g."));
        assert!(e("error_rate < 150%").contains("between 0 and 1"));
        assert!(e("error_rate < 2").contains("invalid rate"));
        assert!(e("rps > fast").contains("plain number"));
        assert!(e("p99 == 5ms").contains("invalid operator \"==\""));
        assert!(e("p99 5ms").contains("expected <metric> <op> <value>"));
        assert!(e("< 5ms").contains("no metric"));
        assert!(e("p99 <").contains("no valid value"));
        assert!(e("p99 < -5ms").contains("invalid latency"));
    }
}
