//! `audit scenario`: a starting chaos scenario for the audited Worker whose `[[faults]]` aim at
//! the category-A (control-plane) key prefixes the scan found: 503s, then same-key 429s on
//! their writes, then a heal. The output is a TOML file that `kvchaos validate` accepts; its
//! requests are a placeholder (`GET /`) to replace with the Worker's real routes.
//!
//! Owns: the text of that file. Does not own: validating it (`crate::scenario`).

use std::collections::BTreeSet;
use std::fmt::Write;

use super::Report;
use super::classify::Category;

/// Most prefixes given their own faults.
const MAX_PREFIXES: usize = 8;

fn toml_str(s: &str) -> String {
    // A TOML basic string is a JSON string for everything an audit writes.
    serde_json::to_string(s).unwrap_or_else(|_| "\"\"".into())
}

/// The category-A (binding, key prefix) pairs of a report, at most [`MAX_PREFIXES`].
pub fn control_plane_prefixes(r: &Report) -> Vec<(String, String)> {
    let set: BTreeSet<(String, String)> = r
        .findings
        .iter()
        .filter(|f| f.category == Category::A && f.bindings.len() == 1)
        .filter_map(|f| {
            let p = f.key_prefix.clone().filter(|p| !p.is_empty())?;
            Some((f.bindings[0].clone(), p))
        })
        .collect();
    set.into_iter().take(MAX_PREFIXES).collect()
}

/// The scenario text; `worker` is the Worker's directory relative to where the file is written.
pub fn render(r: &Report, name: &str, worker: &str) -> String {
    let mut s = String::new();
    let prefixes = control_plane_prefixes(r);
    let _ = writeln!(
        s,
        "# Written by `kvchaos audit scenario`: faults on the control-plane (category A) KV key\n\
         # prefixes the audit found. Replace the placeholder request with the Worker's routes and add\n\
         # [cron], [lock] or [queue] checks (see scenarios/kv-flaky.toml) before relying on it.\n\
         #   kvchaos validate <this file> && kvchaos run <this file>\n"
    );
    let _ = writeln!(s, "name = {}", toml_str(&format!("audit-{name}")));
    let _ = writeln!(
        s,
        "description = {}",
        toml_str(&format!(
            "faults on {} control-plane KV prefixes found by kvchaos audit",
            prefixes.len()
        ))
    );
    s.push_str("seed = 1\ngrace = \"3s\"\n\n[target]\n");
    let _ = writeln!(s, "worker = {}\n", toml_str(worker));
    s.push_str("[clock]\nspeedup = 60\n\n[heal]\nduration = \"10s\"\n\n");
    s.push_str("[[phases]]\nname = \"steady\"\nduration = \"40s\"\nrate = 20\n\n");
    s.push_str("[[requests]]\nname = \"root\"\npath = \"/\"\n");
    if prefixes.is_empty() {
        s.push_str(
            "\n# No category-A prefix was found: one fault on every KV operation instead.\n",
        );
        s.push_str("[[faults]]\nat = \"10s\"\nuntil = \"20s\"\nkind = \"error\"\nstatus = 503\nprobability = 0.3\n");
    }
    for (binding, prefix) in &prefixes {
        let (b, p) = (toml_str(binding), toml_str(prefix));
        let _ = writeln!(
            s,
            "\n# {binding} \"{prefix}…\": control plane\n[[faults]]\nat = \"10s\"\nuntil = \"20s\"\nkind = \"error\"\nstatus = 503\nprobability = 0.3\nnamespace = {b}\nprefix = {p}\n\n[[faults]]\nat = \"20s\"\nuntil = \"30s\"\nkind = \"rate-limit\"\nops = [\"put\"]\nprobability = 0.5\nnamespace = {b}\nprefix = {p}"
        );
    }
    s
}
