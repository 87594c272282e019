//! Categories of KV call sites and the rule that decided each: **A** control plane (locks,
//! last-run times, idempotency and dedup keys, tokens, sessions), **B** high-frequency (rate
//! limiters, queues, pollers, lists in a handler), **C** cache (may fail, may be stale); and
//! the migration target the plan recommends for each rule.
//!
//! Owns: the rules, pure functions of a call site's facts. Does not own: finding the facts.

use serde::{Deserialize, Serialize};

/// A call site's category.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Category {
    /// Control plane: losing or racing this state breaks correctness.
    A,
    /// High frequency: quota and the per-key write limit bite first.
    B,
    /// Cache: may be stale or missing.
    C,
}

/// The facts a category is decided from.
#[derive(Debug, Clone, Default)]
pub struct Facts<'a> {
    /// The key (or list) prefix, when known.
    pub prefix: Option<&'a str>,
    /// The binding name(s).
    pub binding: &'a str,
    /// The enclosing function's name.
    pub function: &'a str,
    /// `list` call.
    pub is_list: bool,
    /// A `put` with a TTL, or a read/delete of a key family that is put with one.
    pub ttl: bool,
    /// The same key is read then written in one function.
    pub get_then_put: bool,
    /// Reached from a request, queue or alarm handler.
    pub in_handler: bool,
}

/// Key words, the rule they make and its category; the first match wins, in this order.
const WORDS: [(&[&str], &str, Category); 8] = [
    (&["lock", "mutex", "leader"], "lock", Category::A),
    (&["lease", "claim"], "queue-lease", Category::B),
    (
        &["idem", "dedup", "nonce", "seen", "processed"],
        "idempotency",
        Category::A,
    ),
    (
        &["token", "oauth", "refresh", "credential", "secret"],
        "token",
        Category::A,
    ),
    (
        &["last", "cron", "heartbeat", "checkpoint"],
        "last-run",
        Category::A,
    ),
    (&["session"], "session", Category::A),
    (
        &["rate", "ratelimit", "throttle", "quota", "limiter"],
        "rate-limit",
        Category::B,
    ),
    (
        &["queue", "job", "task", "poll", "cursor", "inbox", "outbox"],
        "queue",
        Category::B,
    ),
];

/// The category and the rule that decided it.
pub fn classify(f: &Facts<'_>) -> (Category, String) {
    if let Some(p) = f.prefix
        && let Some((rule, cat)) = word_rule(p)
    {
        return (cat, format!("{rule} (key \"{p}\")"));
    }
    if f.get_then_put {
        return (Category::A, "get-then-put on one key".to_owned());
    }
    if let Some((rule, cat)) = word_rule(f.binding) {
        return (cat, format!("{rule} (binding {})", f.binding));
    }
    if let Some((rule, cat)) = word_rule(f.function) {
        return (cat, format!("{rule} (function {})", f.function));
    }
    if f.is_list && f.in_handler {
        return (Category::B, "list over a prefix in a handler".to_owned());
    }
    if f.ttl {
        return (
            Category::C,
            "ttl-cache (value written with a TTL)".to_owned(),
        );
    }
    if f.prefix
        .is_some_and(|p| p.to_ascii_lowercase().contains("cache"))
        || f.binding.to_ascii_lowercase().contains("cache")
    {
        return (Category::C, "cache (name)".to_owned());
    }
    (Category::C, "no control-plane signal".to_owned())
}

/// The first key-word rule whose word starts one of the identifier words of `text`.
fn word_rule(text: &str) -> Option<(&'static str, Category)> {
    let words = split_words(text);
    WORDS.iter().find_map(|(keys, rule, cat)| {
        words
            .iter()
            .any(|w| keys.iter().any(|k| w.starts_with(k)))
            .then_some((*rule, *cat))
    })
}

/// `lastRun:cron_job-ID` → `last run cron job id`: splits on non-alphanumerics and camelCase.
fn split_words(text: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut prev_lower = false;
    for c in text.chars() {
        if !c.is_alphanumeric() {
            if !cur.is_empty() {
                words.push(std::mem::take(&mut cur));
            }
            prev_lower = false;
            continue;
        }
        if c.is_uppercase() && prev_lower && !cur.is_empty() {
            words.push(std::mem::take(&mut cur));
        }
        prev_lower = c.is_lowercase() || c.is_numeric();
        cur.extend(c.to_lowercase());
    }
    if !cur.is_empty() {
        words.push(cur);
    }
    words
}

/// The plan's recommended target for a rule.
pub fn target(rule: &str) -> &'static str {
    let head = rule.split(' ').next().unwrap_or(rule);
    match head {
        "lock" => "Durable Object (or a D1 lock table with a UNIQUE key)",
        "idempotency" => "D1 with a UNIQUE constraint",
        "token" => "D1, encrypted, with rotation",
        "session" => "D1 (or a Durable Object), with expiry",
        "last-run" => "D1 row (or Durable Object storage) per job",
        "rate-limit" => "Durable Object",
        "queue-lease" | "queue" => "D1 or a Durable Object, no KV list",
        "list" => "D1 or a Durable Object, no KV list",
        "get-then-put" => "Durable Object (serialised read-modify-write) or D1 transaction",
        _ => "stays in KV with a TTL and fewer puts",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cat(f: Facts<'_>) -> (Category, String) {
        classify(&f)
    }

    #[test]
    fn key_words_decide_first() {
        let base = Facts {
            binding: "KV",
            function: "f",
            ..Facts::default()
        };
        assert_eq!(
            cat(Facts {
                prefix: Some("lock:"),
                ttl: true,
                ..base.clone()
            })
            .0,
            Category::A
        );
        assert_eq!(
            cat(Facts {
                prefix: Some("idem:webhook:"),
                ..base.clone()
            })
            .1,
            "idempotency (key \"idem:webhook:\")"
        );
        assert_eq!(
            cat(Facts {
                prefix: Some("lastRun"),
                ..base.clone()
            })
            .1,
            "last-run (key \"lastRun\")"
        );
        assert_eq!(
            cat(Facts {
                prefix: Some("rl:"),
                binding: "RATE_LIMITS",
                ..base.clone()
            })
            .0,
            Category::B
        );
        assert_eq!(
            cat(Facts {
                prefix: Some("oauth:refresh"),
                ..base.clone()
            })
            .1,
            "token (key \"oauth:refresh\")"
        );
        // "blast" does not start with "last"; "cached" is not a key word.
        assert_eq!(
            cat(Facts {
                prefix: Some("blast:"),
                ..base.clone()
            })
            .1,
            "no control-plane signal"
        );
    }

    #[test]
    fn structure_rules_follow() {
        let base = Facts {
            binding: "KV",
            function: "f",
            prefix: Some("user:"),
            ..Facts::default()
        };
        assert_eq!(
            cat(Facts {
                get_then_put: true,
                ..base.clone()
            })
            .1,
            "get-then-put on one key"
        );
        assert_eq!(
            cat(Facts {
                is_list: true,
                in_handler: true,
                ..base.clone()
            })
            .0,
            Category::B
        );
        assert_eq!(
            cat(Facts {
                ttl: true,
                ..base.clone()
            })
            .0,
            Category::C
        );
        assert_eq!(
            cat(Facts {
                function: "refreshToken",
                ..base.clone()
            })
            .0,
            Category::A
        );
    }

    #[test]
    fn targets_follow_the_plan() {
        assert!(target("lock (key \"lock:\")").starts_with("Durable Object"));
        assert_eq!(
            target("idempotency (key \"x\")"),
            "D1 with a UNIQUE constraint"
        );
        assert_eq!(target("token (binding T)"), "D1, encrypted, with rotation");
        assert_eq!(target("rate-limit (key \"rl\")"), "Durable Object");
        assert_eq!(
            target("queue-lease (key \"lease:\")"),
            "D1 or a Durable Object, no KV list"
        );
        assert_eq!(
            target("ttl-cache (value written with a TTL)"),
            "stays in KV with a TTL and fewer puts"
        );
        assert_eq!(
            split_words("lastRun:cron_job-ID"),
            ["last", "run", "cron", "job", "id"]
        );
    }
}
