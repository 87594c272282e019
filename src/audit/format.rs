//! Writers of a scan [`Report`]: plain text for the terminal, Markdown for a PR comment, JSON
//! (the baseline format) and SARIF 2.1.0 ([`sarif`]) for code scanning. One report model, one
//! writer per format; none of them decides anything.

pub mod sarif;

use std::fmt::Write;

use super::{Finding, Report, Ttl};

/// Output formats of `audit scan`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Terminal text.
    Text,
    /// Markdown.
    Md,
    /// JSON (what `audit check --baseline` reads).
    Json,
    /// SARIF 2.1.0.
    Sarif,
}

/// Renders `r` as `format`.
pub fn render(r: &Report, format: Format) -> String {
    match format {
        Format::Text => text(r),
        Format::Md => markdown(r),
        Format::Json => json(r),
        Format::Sarif => sarif::render(r),
    }
}

/// Pretty JSON with a trailing newline.
pub fn json(r: &Report) -> String {
    let mut s =
        serde_json::to_string_pretty(r).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"));
    s.push('\n');
    s
}

fn ttl(f: &Finding) -> &'static str {
    match f.ttl {
        Ttl::Yes => "ttl",
        Ttl::No => "NO TTL",
        Ttl::Unknown => "ttl?",
        Ttl::NotApplicable => "",
    }
}

fn ops_day(f: &Finding) -> String {
    let e = &f.estimate;
    match (e.per_day, e.free_limit_pct) {
        (Some(d), Some(p)) => format!("{d:.0}/day ({p:.0}% of free)"),
        _ => format!(
            "{}/{} (free limit at {} {}s/day)",
            e.per_invocation, e.unit, e.free_limit_at, e.unit
        ),
    }
}

fn prefix(f: &Finding) -> String {
    match (&f.key_prefix, f.key_exact) {
        (Some(p), true) => format!("\"{p}\""),
        (Some(p), false) if p.is_empty() && f.op == "list" => "(all keys)".to_owned(),
        (Some(p), false) if p.is_empty() => "?".to_owned(),
        (Some(p), false) => format!("\"{p}…\""),
        (None, _) => "?".to_owned(),
    }
}

/// Terminal text: one line per call site, then the candidates and notes.
pub fn text(r: &Report) -> String {
    let mut s = String::new();
    let t = &r.totals;
    let _ = writeln!(
        s,
        "kvchaos audit: {} KV call sites in {} files ({} lines, {} Workers); {} puts without TTL",
        t.total,
        r.files_scanned,
        r.lines_scanned,
        r.workers.len(),
        t.puts_without_ttl
    );
    for f in &r.findings {
        let _ = writeln!(
            s,
            "{}:{}:{}  {} {}.{} {} {}  [{:?}] {}  in {} ({}{})  {}",
            f.file,
            f.line,
            f.column,
            serde_json::to_value(f.status)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default(),
            f.bindings.join("|"),
            f.op,
            prefix(f),
            ttl(f),
            f.category,
            f.rule,
            f.function,
            f.handlers.join(","),
            if f.in_loop { ", loop" } else { "" },
            ops_day(f)
        );
        if let Some(m) = &f.measured {
            let _ = writeln!(s, "    measured: {}", m.summary());
        }
    }
    if !r.candidates.is_empty() {
        let _ = writeln!(s, "\nmigration candidates:");
        for c in &r.candidates {
            let _ = writeln!(
                s,
                "{:>2}. [{:?}] {} \"{}\" → {} ({}; {})",
                c.rank, c.category, c.binding, c.prefix, c.target, c.rule, c.why
            );
        }
    }
    for n in &r.notes {
        let _ = writeln!(s, "note: {}:{}: {}", n.file, n.line, n.message);
    }
    s
}

/// Markdown: summary, candidates table, call-site table, notes.
pub fn markdown(r: &Report) -> String {
    let mut s = String::from("# KV audit\n\n");
    let t = &r.totals;
    let _ = writeln!(
        s,
        "{} KV call sites in {} files ({} lines); {} puts without TTL; by category: {}.\n",
        t.total,
        r.files_scanned,
        r.lines_scanned,
        t.puts_without_ttl,
        t.by_category
            .iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    if !r.candidates.is_empty() {
        s.push_str("## Migration candidates\n\n| # | category | binding | prefix | rule | target | why |\n|---|---|---|---|---|---|---|\n");
        for c in &r.candidates {
            let _ = writeln!(
                s,
                "| {} | {:?} | {} | `{}` | {} | {} | {} |",
                c.rank,
                c.category,
                c.binding,
                c.prefix,
                c.rule.replace('|', "\\|"),
                c.target,
                c.why
            );
        }
        s.push('\n');
    }
    s.push_str("## Call sites\n\n| location | binding | op | key | TTL | category (rule) | function | handlers | loop | ops |\n|---|---|---|---|---|---|---|---|---|---|\n");
    for f in &r.findings {
        let _ = writeln!(
            s,
            "| `{}:{}` | {} | {} | `{}` | {} | {:?} ({}) | `{}` | {} | {} | {} |",
            f.file,
            f.line,
            f.bindings.join(" or "),
            f.op,
            prefix(f),
            ttl(f),
            f.category,
            f.rule.replace('|', "\\|"),
            f.function,
            f.handlers.join(", "),
            if f.in_loop { "yes" } else { "" },
            ops_day(f)
        );
    }
    if !r.notes.is_empty() {
        s.push_str("\n## Notes\n\n");
        for n in &r.notes {
            let _ = writeln!(s, "- `{}:{}`: {}", n.file, n.line, n.message);
        }
    }
    s
}
