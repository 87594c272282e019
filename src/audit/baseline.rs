//! `audit check`: the current scan against a baseline (a scan's JSON). Call sites are matched
//! by their `site` id (file, normalized call, enclosing function, occurrence — not the line),
//! so moving code does not trip the gate; removing one TTL-less put and adding another does.
//!
//! Owns: matching, the gates and pruning. Does not own: scanning or rendering findings.

use std::collections::{HashMap, HashSet};
use std::fmt::Write;
use std::path::Path;

use super::classify::Category;
use super::{AuditError, Finding, Report, Ttl};

/// The optional total gates.
#[derive(Debug, Clone, Copy, Default)]
pub struct Gates {
    /// Fail when the call-site total grows by more than this.
    pub allow_total_increase: Option<u64>,
    /// Fail when the number of puts grows by more than this.
    pub allow_puts_increase: Option<u64>,
}

/// What the check found.
#[derive(Debug, Clone, Default)]
pub struct CheckResult {
    /// Each regression, as a sentence naming the location (any → exit 1).
    pub failures: Vec<String>,
    /// Call sites not in the baseline (regressions or not).
    pub new: Vec<Finding>,
    /// Baseline entries no longer found.
    pub stale: Vec<Finding>,
    /// Baseline and current totals: (call sites, puts, puts without TTL, lists).
    pub before: [u64; 4],
    /// See `before`.
    pub after: [u64; 4],
}

impl CheckResult {
    /// No regression.
    pub fn passed(&self) -> bool {
        self.failures.is_empty()
    }
}

/// Reads a baseline written by `audit scan --format json -o FILE`.
pub fn load(path: &Path) -> Result<Report, AuditError> {
    let input = |message: String| AuditError::Input {
        path: path.to_owned(),
        message,
    };
    let meta =
        std::fs::metadata(path).map_err(|e| input(format!("cannot read the baseline: {e}")))?;
    if meta.len() > 64 * 1024 * 1024 {
        return Err(input(format!(
            "{} bytes is over the 64 MiB limit for a baseline",
            meta.len()
        )));
    }
    let text = crate::resources::read_capped_text(path, 64 * 1024 * 1024)
        .map_err(|e| input(format!("cannot read the baseline: {e}")))?;
    serde_json::from_str(&text).map_err(|e| {
        input(format!(
            "not an audit baseline ({e}): write one with `kvchaos audit scan --format json -o {}`",
            path.display()
        ))
    })
}

fn counts(r: &Report) -> [u64; 4] {
    let op = |o: &str| r.findings.iter().filter(|f| f.op == o).count() as u64;
    let no_ttl = r
        .findings
        .iter()
        .filter(|f| f.op == "put" && f.ttl == Ttl::No)
        .count() as u64;
    [r.findings.len() as u64, op("put"), no_ttl, op("list")]
}

fn at(f: &Finding) -> String {
    format!("{}:{}: {} in {}", f.file, f.line, f.call, f.function)
}

/// Compares `current` with `baseline`.
pub fn check(baseline: &Report, current: &Report, gates: Gates) -> CheckResult {
    let old: HashMap<&str, &Finding> = baseline
        .findings
        .iter()
        .map(|f| (f.site.as_str(), f))
        .collect();
    let mut r = CheckResult {
        before: counts(baseline),
        after: counts(current),
        ..CheckResult::default()
    };
    let mut matched = HashSet::new();
    for f in &current.findings {
        match old.get(f.site.as_str()) {
            None => {
                if f.op == "put" && f.ttl == Ttl::No {
                    r.failures.push(format!("new put without a TTL: {}", at(f)));
                } else if f.op == "list" {
                    r.failures.push(format!("new list(): {}", at(f)));
                } else if f.category == Category::A {
                    r.failures.push(format!(
                        "new control-plane (category A) call site: {} ({})",
                        at(f),
                        f.rule
                    ));
                }
                r.new.push(f.clone());
            }
            Some(b) => {
                matched.insert(f.site.as_str());
                if b.category != Category::A && f.category == Category::A {
                    r.failures.push(format!(
                        "moved into category A (was {:?}, {}): {} ({})",
                        b.category,
                        b.rule,
                        at(f),
                        f.rule
                    ));
                }
                if f.op == "put" && f.ttl == Ttl::No && b.ttl != Ttl::No {
                    r.failures.push(format!("put lost its TTL: {}", at(f)));
                }
            }
        }
    }
    r.stale = baseline
        .findings
        .iter()
        .filter(|f| !matched.contains(f.site.as_str()))
        .cloned()
        .collect();
    let grow = |i: usize| r.after[i].saturating_sub(r.before[i]);
    if let Some(n) = gates.allow_total_increase
        && grow(0) > n
    {
        r.failures.push(format!(
            "KV call sites grew from {} to {} (more than --allow-total-increase {n})",
            r.before[0], r.after[0]
        ));
    }
    if let Some(n) = gates.allow_puts_increase
        && grow(1) > n
    {
        r.failures.push(format!(
            "KV puts grew from {} to {} (more than --allow-puts-increase {n})",
            r.before[1], r.after[1]
        ));
    }
    r
}

/// The baseline without its stale entries.
pub fn prune(baseline: &Report, stale: &[Finding]) -> Report {
    let gone: HashSet<&str> = stale.iter().map(|f| f.site.as_str()).collect();
    let mut out = baseline.clone();
    out.findings.retain(|f| !gone.contains(f.site.as_str()));
    out.totals = super::sites::totals(&out.findings);
    out
}

/// The check's result as text.
pub fn render(r: &CheckResult) -> String {
    let mut s = String::new();
    let names = ["call sites", "puts", "puts without TTL", "lists"];
    let totals: Vec<String> = names
        .iter()
        .enumerate()
        .map(|(i, n)| format!("{n} {} → {}", r.before[i], r.after[i]))
        .collect();
    let _ = writeln!(s, "kvchaos audit check: {}", totals.join(", "));
    for f in &r.failures {
        let _ = writeln!(s, "FAIL {f}");
    }
    for f in r.new.iter() {
        let _ = writeln!(s, "new  {} [{:?}] {}", at(f), f.category, f.rule);
    }
    for f in &r.stale {
        let _ = writeln!(s, "stale {} (no longer found; --prune removes it)", at(f));
    }
    let _ = writeln!(
        s,
        "{}",
        if r.passed() {
            "ok: no regression"
        } else {
            "regression: see FAIL lines"
        }
    );
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::estimate::estimate;
    use crate::audit::model::Op;
    use crate::audit::resolve::Status;

    fn finding(site: &str, op: &str, ttl: Ttl, category: Category) -> Finding {
        Finding {
            file: "src/a.ts".into(),
            line: 1,
            column: 1,
            worker: "w".into(),
            op: op.into(),
            status: Status::Resolved,
            bindings: vec!["KV".into()],
            key_prefix: Some("k:".into()),
            key_exact: false,
            ttl,
            function: "f".into(),
            handlers: vec!["fetch".into()],
            in_loop: false,
            category,
            rule: "r".into(),
            target: "t".into(),
            estimate: estimate(Op::Get, &[], false, 1, 0),
            call: format!("KV.{op}(k)"),
            fingerprint: site.into(),
            site: site.into(),
            measured: None,
        }
    }

    fn report(findings: Vec<Finding>) -> Report {
        Report {
            schema_version: 1,
            kvchaos_version: "0".into(),
            workers: Default::default(),
            files_scanned: 1,
            lines_scanned: 1,
            totals: crate::audit::sites::totals(&findings),
            findings,
            candidates: vec![],
            notes: vec![],
            ignored: vec![],
        }
    }

    #[test]
    fn swapped_ttl_less_put_fails_though_totals_are_equal() {
        let base = report(vec![finding("a", "put", Ttl::No, Category::C)]);
        let now = report(vec![finding("b", "put", Ttl::No, Category::C)]);
        let r = check(&base, &now, Gates::default());
        assert_eq!(r.before, r.after);
        assert_eq!(r.failures.len(), 1, "{:?}", r.failures);
        assert!(r.failures[0].starts_with("new put without a TTL"));
        assert_eq!(r.stale.len(), 1);
        assert!(prune(&base, &r.stale).findings.is_empty());
    }

    #[test]
    fn moves_into_a_lost_ttls_and_total_gates() {
        let base = report(vec![
            finding("a", "get", Ttl::NotApplicable, Category::C),
            finding("b", "put", Ttl::Yes, Category::C),
        ]);
        let now = report(vec![
            finding("a", "get", Ttl::NotApplicable, Category::A),
            finding("b", "put", Ttl::No, Category::C),
            finding("c", "get", Ttl::NotApplicable, Category::B),
        ]);
        let r = check(&base, &now, Gates::default());
        assert_eq!(r.failures.len(), 2, "{:?}", r.failures);
        assert!(r.failures[0].starts_with("moved into category A"));
        assert!(r.failures[1].starts_with("put lost its TTL"));
        let gated = Gates {
            allow_total_increase: Some(0),
            allow_puts_increase: Some(0),
        };
        let r = check(&base, &now, gated);
        assert_eq!(r.failures.len(), 3, "{:?}", r.failures);
        assert!(check(&base, &base, gated).passed());
    }
}
