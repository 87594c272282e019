//! The end-of-run summary printed to the terminal: plain text, at most [`MAX_LINES`] lines of at
//! most [`MAX_COLUMNS`] characters, no colour (the terminal module decides about colour).
//! The full picture is in `report.md`.

use super::human::{self, classes_seen, is_error_class, truncate};
use super::model::{RequestStats, StopReason, Summary, ThresholdResult};

/// Most lines [`terminal_summary`] returns.
pub const MAX_LINES: usize = 20;
/// Most characters on one line of [`terminal_summary`].
pub const MAX_COLUMNS: usize = 100;

/// Most requests listed before the rest are summed up in one line.
const MAX_REQUESTS: usize = 6;
/// Widest request name before it is cut.
const MAX_NAME: usize = 20;

/// A compact plain-text summary of the run: per request count, rps, corrected p50/p99/max,
/// dropped and errors by class; threshold results; how the run stopped.
pub fn terminal_summary(s: &Summary) -> String {
    let mut lines = Vec::new();

    let v = human::verdict(s);
    lines.push(match v.word {
        Some(word) => format!(
            "kvchaos {}: {word} ({})",
            one_line(&s.scenario.name),
            v.thresholds
        ),
        None => format!("kvchaos {}: {}", one_line(&s.scenario.name), v.thresholds),
    });
    if human::never_started(s) {
        // The target's own message is the whole story: keep all of it, wrapped.
        let why = format!("stopped early: {}", human::stop_text(&s.stop));
        for line in why.lines() {
            lines.extend(wrap(&one_line(line), MAX_COLUMNS));
        }
    } else {
        lines.push(if s.stop.reason == StopReason::Completed {
            "completed".to_owned()
        } else {
            format!("stopped early: {}", one_line(&human::stop_text(&s.stop)))
        });
    }
    let mut facts = format!(
        "ran {} of {} planned",
        human::run_secs(s.duration_s),
        human::run_secs(s.planned_duration_s)
    );
    if s.stop.unfinished > 0 {
        facts.push_str(&format!(
            " · {} unfinished",
            human::count(s.stop.unfinished)
        ));
    }
    lines.push(facts);
    lines.push(String::new());

    request_table(&mut lines, s);
    lines.push(String::new());
    for w in &s.warnings {
        lines.push(format!("warning: {}", one_line(w)));
    }
    super::answers::terminal(&mut lines, &s.error_answers);
    for c in &s.checks {
        lines.push(format!(
            "check {}: {}  {}",
            one_line(&c.name),
            human::verdict_word(c.verdict),
            one_line(&c.reason)
        ));
    }
    // Whatever is left of the line budget goes to thresholds.
    let room = MAX_LINES.saturating_sub(lines.len());
    threshold_lines(&mut lines, &s.thresholds, room);

    let mut out = String::new();
    // A start failure's message may be long, but not without bound.
    let budget = if human::never_started(s) {
        MAX_LINES * 3
    } else {
        MAX_LINES
    };
    for line in lines.iter().take(budget) {
        out.push_str(truncate(line.trim_end(), MAX_COLUMNS).as_str());
        out.push('\n');
    }
    out
}

fn request_table(lines: &mut Vec<String>, s: &Summary) {
    let name_w = s
        .requests
        .iter()
        .map(|r| one_line(&r.name).chars().count())
        .max()
        .unwrap_or(0)
        .clamp("request".len(), MAX_NAME);
    let row = |name: &str, count: &str, rps: &str, p: [&str; 3], dropped: &str, errors: &str| {
        format!(
            "{:<name_w$} {count:>7} {rps:>6} {:>8} {:>8} {:>8} {dropped:>8}  {errors}",
            truncate(name, name_w),
            p[0],
            p[1],
            p[2],
        )
    };
    let header = row(
        "request",
        "count",
        "rps",
        ["p50", "p99", "max"],
        "dropped",
        "errors",
    );
    let errors_w = MAX_COLUMNS.saturating_sub(header.chars().count() - "errors".len());
    lines.push(header);

    let line_for = |name: &str, r: &RequestStats| {
        let c = &r.corrected;
        let lat = |us: u64| {
            if c.count == 0 {
                "-".to_owned()
            } else {
                human::latency_us(us)
            }
        };
        let errors = error_classes(r);
        row(
            name,
            &human::count(r.completed),
            &human::rps(r.rps),
            [&lat(c.p50_us), &lat(c.p99_us), &lat(c.max_us)],
            &human::count(r.dropped),
            &truncate(&errors, errors_w),
        )
    };
    let shown = if s.requests.len() > MAX_REQUESTS {
        MAX_REQUESTS - 1
    } else {
        s.requests.len()
    };
    let mut body: Vec<String> = s.requests[..shown]
        .iter()
        .map(|r| line_for(&one_line(&r.name), r))
        .collect();
    if shown < s.requests.len() {
        body.push(format!(
            "… {} more requests in report.md",
            s.requests.len() - shown
        ));
    }
    body.push(line_for("all", &s.overall));
    lines.extend(body);
}

/// `none`, or the error classes that occurred with their counts: `5xx 171, timeout 34`.
fn error_classes(r: &RequestStats) -> String {
    let parts: Vec<String> = classes_seen([r])
        .into_iter()
        .filter(|c| is_error_class(c))
        .map(|c| {
            format!(
                "{c} {}",
                human::count(r.by_class.get(&c).copied().unwrap_or(0))
            )
        })
        .collect();
    if parts.is_empty() {
        "none".to_owned()
    } else {
        parts.join(", ")
    }
}

/// The thresholds within `room` lines (heading included); failures are kept when some must go.
fn threshold_lines(lines: &mut Vec<String>, thresholds: &[ThresholdResult], room: usize) {
    if thresholds.is_empty() {
        lines.push("thresholds: none".to_owned());
        return;
    }
    let failed = thresholds.iter().filter(|t| !t.passed).count();
    lines.push(format!(
        "thresholds: {failed} of {} failed",
        thresholds.len()
    ));
    let room = room.saturating_sub(1);
    let shown: Vec<&ThresholdResult> = if thresholds.len() <= room {
        thresholds.iter().collect()
    } else {
        let keep = room.saturating_sub(1);
        let mut picked: Vec<usize> = (0..thresholds.len())
            .filter(|&i| !thresholds[i].passed)
            .chain((0..thresholds.len()).filter(|&i| thresholds[i].passed))
            .take(keep)
            .collect();
        picked.sort_unstable();
        picked.into_iter().map(|i| &thresholds[i]).collect()
    };
    let scope_w = shown
        .iter()
        .map(|t| one_line(&t.scope).chars().count())
        .max()
        .unwrap_or(0)
        .min(MAX_NAME);
    let expr_w = shown
        .iter()
        .map(|t| one_line(&t.label()).chars().count())
        .max()
        .unwrap_or(0)
        .min(28);
    for t in &shown {
        let word = if t.passed { "pass" } else { "FAIL" };
        let abort = if t.abort { "  (abort)" } else { "" };
        lines.push(format!(
            "  {word}  {:<scope_w$}  {:<expr_w$}  observed {}{abort}",
            truncate(&one_line(&t.scope), scope_w),
            truncate(&one_line(&t.label()), expr_w),
            human::observed(t.observed, &t.unit),
        ));
    }
    if shown.len() < thresholds.len() {
        lines.push(format!(
            "  … {} more in report.md",
            thresholds.len() - shown.len()
        ));
    }
}

/// `s` cut into lines of at most `width` characters.
fn wrap(s: &str, width: usize) -> Vec<String> {
    let chars: Vec<char> = s.chars().collect();
    chars
        .chunks(width.max(1))
        .map(|c| c.iter().collect())
        .collect()
}

/// Control characters (a terminal escape in a server's message, say) become spaces.
fn one_line(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::model::fixture;

    fn assert_fits(out: &str) {
        assert!(out.lines().count() <= MAX_LINES, "too many lines:\n{out}");
        for line in out.lines() {
            assert!(line.chars().count() <= MAX_COLUMNS, "too wide: {line:?}");
        }
    }

    #[test]
    fn fixture_summary() {
        let out = terminal_summary(&fixture());
        assert_fits(&out);
        insta::assert_snapshot!(out);
    }

    #[test]
    fn many_requests_and_thresholds_stay_within_bounds() {
        let mut s = fixture();
        let template = s.requests[1].clone();
        s.requests = (0..12)
            .map(|i| RequestStats {
                name: format!("request-with-a-rather-long-name-{i}"),
                ..template.clone()
            })
            .collect();
        let t = s.thresholds[1].clone();
        s.thresholds = (0..15)
            .map(|i| ThresholdResult {
                passed: i != 13,
                scope: format!("scope-{i}"),
                ..t.clone()
            })
            .collect();
        s.stop.detail = Some("x".repeat(300));
        let out = terminal_summary(&s);
        assert_fits(&out);
        assert!(out.contains("… 7 more requests in report.md"), "{out}");
        // The one failure is kept even though it comes late.
        assert!(out.contains("FAIL  scope-13"), "{out}");
        assert!(out.contains("more in report.md"), "{out}");
    }

    #[test]
    fn no_thresholds_and_terminal_escapes() {
        let mut s = fixture();
        s.thresholds.clear();
        s.checks.clear();
        s.scenario.name = "evil\u{1b}[2Jname".to_owned();
        let out = terminal_summary(&s);
        assert!(
            out.starts_with("kvchaos evil [2Jname: no thresholds\n"),
            "{out}"
        );
        assert!(out.contains("\nthresholds: none\n"), "{out}");
        assert!(!out.contains('\u{1b}'));
    }

    #[test]
    fn a_target_that_never_started_says_so_with_its_message_whole() {
        let mut s = fixture();
        s.stop.reason = StopReason::TargetUnreachable;
        let why = format!(
            "miniflare could not start the Worker: No such module \"node:os\". {}",
            "x".repeat(150)
        );
        s.stop.detail = Some(why.clone());
        s.overall.completed = 0;
        s.thresholds.clear();
        s.checks.clear();
        let out = terminal_summary(&s);
        assert!(
            out.lines().all(|l| l.chars().count() <= MAX_COLUMNS),
            "{out}"
        );
        assert!(out.contains(": ERROR (the target did not start"), "{out}");
        assert!(!out.contains("FAIL"), "{out}");
        let joined: String = out.lines().collect();
        assert!(joined.contains(&why), "the message is kept whole: {out}");
        let md = crate::report::markdown::render(&s);
        assert!(md.contains("**ERROR** · the target did not start"), "{md}");
        assert!(md.contains("x".repeat(150).as_str()), "{md}");
    }
}
