//! What a cron tick that threw says in its evidence: the exception's message and the first
//! line of its stack, as the launcher reported them (`CronRun::exception`, message and stack
//! as workerd logged them: `Error: …\n    at …`).

/// Longest message or stack line kept, in characters.
const MAX_CHARS: usize = 400;

/// The `error` of a tick whose handler threw, e.g. `the scheduled handler threw Error: KV PUT
/// failed: 429 KV put() limit exceeded for the day. (at Object.scheduled (index.js:12:9))`.
pub fn threw(exception: Option<&str>) -> String {
    let Some(stack) = exception.map(str::trim).filter(|s| !s.is_empty()) else {
        return "the scheduled handler threw (no message reached the launcher)".to_owned();
    };
    let mut lines = stack.lines().map(str::trim);
    let message = cut(lines.next().unwrap_or_default());
    match lines.find(|l| l.starts_with("at ")) {
        Some(at) => format!("the scheduled handler threw {message} ({})", cut(at)),
        None => format!("the scheduled handler threw {message}"),
    }
}

fn cut(s: &str) -> String {
    let mut out: String = s.chars().take(MAX_CHARS).collect();
    if s.chars().count() > MAX_CHARS {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_and_first_stack_line_are_quoted() {
        let stack = "Error: KV PUT failed: 429 KV put() limit exceeded for the day.\n    at Object.scheduled (file:///w/index.js:12:9)\n    at next (x.js:1:1)";
        assert_eq!(
            threw(Some(stack)),
            "the scheduled handler threw Error: KV PUT failed: 429 KV put() limit exceeded for the day. (at Object.scheduled (file:///w/index.js:12:9))"
        );
        assert_eq!(threw(Some("boom")), "the scheduled handler threw boom");
        assert!(threw(None).contains("no message reached the launcher"));
        assert!(threw(Some("  ")).contains("no message"));
        let long = "E".repeat(1000);
        assert_eq!(
            threw(Some(&long)).chars().count(),
            "the scheduled handler threw ".len() + MAX_CHARS + 1
        );
    }
}
