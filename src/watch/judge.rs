//! One check, one evaluation: is it up, late or down, since when, and on what evidence.
//! Pure: a check, its remembered samples, one observation and `now` in, a [`Judgement`] out.
//!
//! Owns the meaning of each kind: cron liveness (the next expected slot after the last run;
//! late at that slot + grace; down one period later), counter growth over a window, and error
//! rates over a window. Does not own alert hygiene (consecutive failures, mutes,
//! notifications: [`super::alert`]) nor probing ([`super::probe`]).

use std::time::Duration;

use serde_json::Value;

use super::config::{Check, CheckKind, Severity};
use super::iso;
use super::probe::{Observation, Reading};
use super::state::{CheckState, MAX_SAMPLES, Sample};

/// Epoch values below this are seconds, at or above it milliseconds (1e11 s is the year 5138;
/// 1e11 ms is 1973).
const SECONDS_BELOW: f64 = 1e11;
/// Most slots counted as missed (a silly expression cannot loop for long).
const MAX_MISSED: usize = 100_000;

/// What one evaluation concluded about one check.
#[derive(Debug, Clone, PartialEq)]
pub struct Judgement {
    /// `None` when up; the severity when failing.
    pub failing: Option<Severity>,
    /// When the failure began, as far as the evidence shows (e.g. the late time of a cron).
    pub since_ms: Option<u64>,
    /// What triggered it (or why it is fine), one line.
    pub summary: String,
    /// Values read and times, one per line.
    pub evidence: Vec<String>,
}

impl Judgement {
    fn down(since_ms: u64, summary: String, evidence: Vec<String>) -> Judgement {
        Judgement {
            failing: Some(Severity::Down),
            since_ms: Some(since_ms),
            summary,
            evidence,
        }
    }

    fn up(summary: String, evidence: Vec<String>) -> Judgement {
        Judgement {
            failing: None,
            since_ms: None,
            summary,
            evidence,
        }
    }
}

/// Judges `check` from `obs` at `now_ms`, recording samples and the last run in `cs`.
pub fn judge(check: &Check, cs: &mut CheckState, obs: &Observation, now_ms: u64) -> Judgement {
    let reading = match &obs.result {
        Ok(r) => r,
        Err(e) => {
            let evidence = vec![format!("probe at {}: {e}", iso(obs.at_ms))];
            return Judgement::down(obs.at_ms, format!("probe failed: {e}"), evidence);
        }
    };
    let first = |values: &[Value]| values.first().cloned().unwrap_or(Value::Null);
    match (&check.kind, reading) {
        (CheckKind::Cron { .. }, Reading::Values { values, .. }) => {
            cron(check, cs, &first(values), now_ms)
        }
        (CheckKind::Counter { .. }, Reading::Values { values, .. }) => {
            counter(check, cs, &first(values), now_ms)
        }
        (CheckKind::ErrorRate { .. }, Reading::Probe { ok, detail }) => {
            let a = if *ok { 0.0 } else { 1.0 };
            push(
                cs,
                Sample {
                    at_ms: now_ms,
                    a,
                    b: 0.0,
                },
            );
            probe_rate(check, cs, detail, now_ms)
        }
        (CheckKind::ErrorRate { .. }, Reading::Values { values, .. }) => {
            stats_rate(check, cs, values, now_ms)
        }
        _ => mismatch(now_ms),
    }
}

fn mismatch(now: u64) -> Judgement {
    let summary = "internal: the observation does not fit the check".to_owned();
    Judgement::down(now, summary, Vec::new())
}

/// A last-run value as ms since the Unix epoch: `Ok(None)` for null (never ran).
pub fn parse_last_run(v: &Value) -> Result<Option<u64>, String> {
    let from_number = |n: f64| {
        if !n.is_finite() || n < 0.0 {
            return Err(format!("last-run value {n} is not a time"));
        }
        let ms = if n < SECONDS_BELOW { n * 1000.0 } else { n };
        Ok(Some(ms.min(u64::MAX as f64) as u64))
    };
    match v {
        Value::Null => Ok(None),
        Value::Number(n) => from_number(n.as_f64().unwrap_or(-1.0)),
        Value::String(s) => {
            let s = s.trim();
            if let Ok(n) = s.parse::<f64>() {
                return from_number(n);
            }
            chrono::DateTime::parse_from_rfc3339(s)
                .ok()
                .and_then(|t| u64::try_from(t.timestamp_millis()).ok())
                .map(Some)
                .ok_or_else(|| format!("last-run value \"{}\" is neither ISO 8601 (e.g. 2026-12-01T10:00:00Z) nor epoch ms or s", super::state::bounded(s)))
        }
        other => Err(format!(
            "last-run value {} is neither a time string nor a number",
            super::state::bounded(&other.to_string())
        )),
    }
}

fn cron(check: &Check, cs: &mut CheckState, v: &Value, now: u64) -> Judgement {
    let CheckKind::Cron {
        pointer,
        crons,
        grace,
        ..
    } = &check.kind
    else {
        return mismatch(now);
    };
    let source = format!("{pointer} of {}", check.url);
    let last = match parse_last_run(v) {
        Ok(l) => l,
        Err(e) => {
            let evidence = vec![format!("read {source} at {}", iso(now))];
            return Judgement::down(now, format!("unreadable last run: {e}"), evidence);
        }
    };
    if last.is_some() {
        cs.last_run_ms = last;
    }
    let exprs = crons
        .iter()
        .map(|(e, _)| e.as_str())
        .collect::<Vec<_>>()
        .join(", ");
    let mut evidence = vec![last_run_line(last, v, &source, cs.first_seen_ms, now)];
    let reference = last.unwrap_or(cs.first_seen_ms);
    let grace_ms = grace.as_millis() as u64;
    let Some(due) = Due::after(crons, reference, grace_ms) else {
        let summary = format!("no slot of {exprs} after {}", iso(reference));
        return Judgement::up(summary, evidence);
    };
    let Due {
        next,
        late_at,
        down_at,
        ..
    } = due;
    evidence.push(due.describe(&exprs, *grace));
    let ran = last.map_or_else(
        || "no run yet".to_owned(),
        |t| format!("last run {}", iso(t)),
    );
    if now < late_at {
        return Judgement::up(format!("{ran}; next expected {}", iso(next)), evidence);
    }
    // Slots whose grace has passed without a run.
    let until = now.saturating_sub(grace_ms).saturating_add(1);
    let missed = crate::cron::slots_between(crons, reference, until, MAX_MISSED);
    let severity = if now < down_at {
        Severity::Late
    } else {
        Severity::Down
    };
    let plural = if missed == 1 { "" } else { "s" };
    Judgement {
        failing: Some(severity),
        since_ms: Some(late_at),
        summary: format!(
            "cron {}: {ran}, the run expected at {} did not happen ({missed} expected run{plural} missed)",
            severity.as_str(),
            iso(next),
        ),
        evidence,
    }
}

/// The evidence line for the last run read (`v` at `source`), or for none yet.
fn last_run_line(
    last: Option<u64>,
    v: &Value,
    source: &str,
    first_seen_ms: u64,
    now: u64,
) -> String {
    match last {
        Some(t) => format!(
            "last run {} ({v} at {source}), read at {}",
            iso(t),
            iso(now)
        ),
        None => format!(
            "no run yet (null at {source}), watched since {}, read at {}",
            iso(first_seen_ms),
            iso(now)
        ),
    }
}

/// The next run expected after a reference time, and when its absence is late (grace
/// passed) and down (one more period), epoch ms.
struct Due {
    next: u64,
    period: u64,
    late_at: u64,
    down_at: u64,
}

impl Due {
    /// The next slot of `crons` after `reference`; `None` when there is none.
    fn after(crons: &[(String, croner::Cron)], reference: u64, grace_ms: u64) -> Option<Due> {
        let next = crate::cron::next_slot_after(crons, reference)?;
        let period = crate::cron::next_slot_after(crons, next).map_or(0, |a| a - next);
        let late_at = next.saturating_add(grace_ms);
        Some(Due {
            next,
            period,
            late_at,
            down_at: late_at.saturating_add(period),
        })
    }

    /// The evidence line: when the next run is expected, late and down.
    fn describe(&self, exprs: &str, grace: Duration) -> String {
        format!(
            "next run expected at {} ({exprs} UTC); late from {} (grace {}), down from {} (one period, {})",
            iso(self.next),
            iso(self.late_at),
            humantime::format_duration(grace),
            iso(self.down_at),
            humantime::format_duration(Duration::from_millis(self.period)),
        )
    }
}

fn number(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
    .filter(|n: &f64| n.is_finite())
}

fn push(cs: &mut CheckState, s: Sample) {
    cs.samples.retain(|x| x.at_ms < s.at_ms);
    cs.samples.push(s);
    if cs.samples.len() > MAX_SAMPLES {
        let drop = cs.samples.len() - MAX_SAMPLES;
        cs.samples.drain(..drop);
    }
}

/// Keeps the samples inside the window ending at `now` plus, when `baseline`, the newest one at
/// or before its start; returns whether such a baseline exists.
fn window(cs: &mut CheckState, now: u64, window: Duration, baseline: bool) -> bool {
    let start = now.saturating_sub(window.as_millis() as u64);
    let base = cs.samples.iter().rposition(|s| s.at_ms <= start);
    match (base, baseline) {
        (Some(i), true) => {
            cs.samples.drain(..i);
            true
        }
        (Some(i), false) => {
            cs.samples.drain(..=i);
            false
        }
        (None, _) => false,
    }
}

/// Growth of a counter over consecutive samples; a drop is a reset, counted from zero.
fn growth(values: impl Iterator<Item = f64>) -> f64 {
    let mut total = 0.0;
    let mut prev: Option<f64> = None;
    for v in values {
        if let Some(p) = prev {
            total += if v >= p { v - p } else { v };
        }
        prev = Some(v);
    }
    total
}

fn warming(cs: &CheckState, now: u64, w: Duration) -> Judgement {
    let covered = cs
        .samples
        .first()
        .map_or(0, |s| now.saturating_sub(s.at_ms));
    Judgement::up(
        format!(
            "warming up: history covers {} of the {} window",
            humantime::format_duration(Duration::from_secs(covered / 1000)),
            humantime::format_duration(w)
        ),
        Vec::new(),
    )
}

fn counter(check: &Check, cs: &mut CheckState, v: &Value, now: u64) -> Judgement {
    let CheckKind::Counter {
        pointer,
        min_increase,
        window: w,
    } = &check.kind
    else {
        return mismatch(now);
    };
    let (min, w) = (*min_increase, *w);
    let source = format!("{pointer} of {}", check.url);
    let Some(value) = number(v) else {
        return Judgement {
            failing: Some(Severity::Down),
            since_ms: Some(now),
            summary: format!(
                "unreadable counter: {} at {source} is not a number",
                super::state::bounded(&v.to_string())
            ),
            evidence: Vec::new(),
        };
    };
    push(
        cs,
        Sample {
            at_ms: now,
            a: value,
            b: 0.0,
        },
    );
    if !window(cs, now, w, true) {
        return warming(cs, now, w);
    }
    let g = growth(cs.samples.iter().map(|s| s.a));
    let base = cs.samples[0];
    let evidence = vec![
        format!("{value} at {source}, read at {}", iso(now)),
        format!(
            "{} at the window start, read at {}",
            base.a,
            iso(base.at_ms)
        ),
    ];
    let w_text = humantime::format_duration(w);
    if g >= min {
        return Judgement::up(
            format!("grew by {g} over {w_text} (at least {min})"),
            evidence,
        );
    }
    // Since the last growth seen, else since the baseline.
    let since = cs
        .samples
        .windows(2)
        .rev()
        .find(|p| p[1].a != p[0].a)
        .map_or(base.at_ms, |p| p[1].at_ms);
    Judgement {
        failing: Some(Severity::Down),
        since_ms: Some(since),
        summary: format!(
            "input stopped: grew by {g} over {w_text}, expected at least {min} (value {value})"
        ),
        evidence,
    }
}

fn probe_rate(check: &Check, cs: &mut CheckState, detail: &str, now: u64) -> Judgement {
    let CheckKind::ErrorRate {
        max_rate,
        window: w,
        min_samples,
        ..
    } = &check.kind
    else {
        return mismatch(now);
    };
    let (max, w, min_samples) = (*max_rate, *w, *min_samples);
    window(cs, now, w, false);
    let n = cs.samples.len();
    if n < min_samples as usize {
        return warming(cs, now, w);
    }
    let failed = cs.samples.iter().filter(|s| s.a > 0.0).count();
    let rate = failed as f64 / n as f64;
    let line = format!(
        "{failed} of {n} probes failed over {} ({:.1}%, at most {:.1}%); latest at {}: {detail}",
        humantime::format_duration(w),
        rate * 100.0,
        max * 100.0,
        iso(now)
    );
    if rate <= max {
        return Judgement::up(line.clone(), vec![line]);
    }
    let since = cs
        .samples
        .iter()
        .find(|s| s.a > 0.0)
        .map_or(now, |s| s.at_ms);
    Judgement {
        failing: Some(Severity::Down),
        since_ms: Some(since),
        summary: format!(
            "error rate {:.1}% over {} is above {:.1}%",
            rate * 100.0,
            humantime::format_duration(w),
            max * 100.0
        ),
        evidence: vec![line],
    }
}

fn stats_rate(check: &Check, cs: &mut CheckState, values: &[Value], now: u64) -> Judgement {
    let CheckKind::ErrorRate {
        max_rate,
        window: w,
        min_samples,
        ..
    } = &check.kind
    else {
        return mismatch(now);
    };
    let (max, w, min_samples, url) = (*max_rate, *w, *min_samples, &check.url);
    let (Some(errors), Some(total)) = (
        values.first().and_then(number),
        values.get(1).and_then(number),
    ) else {
        return Judgement {
            failing: Some(Severity::Down),
            since_ms: Some(now),
            summary: format!("unreadable stats at {url}: errors and total must be numbers"),
            evidence: Vec::new(),
        };
    };
    push(
        cs,
        Sample {
            at_ms: now,
            a: errors,
            b: total,
        },
    );
    if !window(cs, now, w, true) {
        return warming(cs, now, w);
    }
    let de = growth(cs.samples.iter().map(|s| s.a));
    let dt = growth(cs.samples.iter().map(|s| s.b));
    let base = cs.samples[0];
    let evidence = vec![
        format!(
            "errors {errors}, requests {total} at {url}, read at {}",
            iso(now)
        ),
        format!(
            "errors {}, requests {} at the window start, read at {}",
            base.a,
            base.b,
            iso(base.at_ms)
        ),
    ];
    let w_text = humantime::format_duration(w);
    if dt < f64::from(min_samples) || dt <= 0.0 {
        return Judgement::up(
            format!("{dt} requests over {w_text}: too few to judge (min_samples {min_samples})"),
            evidence,
        );
    }
    let rate = (de / dt).min(1.0);
    if rate <= max {
        return Judgement::up(
            format!(
                "error rate {:.1}% over {w_text} ({de} of {dt})",
                rate * 100.0
            ),
            evidence,
        );
    }
    Judgement {
        failing: Some(Severity::Down),
        since_ms: Some(base.at_ms),
        summary: format!(
            "error rate {:.1}% over {w_text} ({de} errors of {dt} requests) is above {:.1}%",
            rate * 100.0,
            max * 100.0
        ),
        evidence,
    }
}

#[cfg(test)]
mod tests;
