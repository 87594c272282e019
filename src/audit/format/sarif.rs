//! SARIF 2.1.0 output for code scanning (GitHub's `upload-sarif`): one rule per finding kind
//! (TTL-less put, list, control-plane call, other KV call), one result per call site with its
//! fingerprint as `partialFingerprints`, so alerts follow a call site when lines move.

use serde_json::{Value, json};

use crate::audit::classify::Category;
use crate::audit::{Finding, Report, Ttl};

/// The rules, in `tool.driver.rules` order: (id, short description, level).
const RULES: [(&str, &str, &str); 4] = [
    ("kv-put-without-ttl", "KV put without a TTL", "warning"),
    (
        "kv-list",
        "KV list() call (counts against the daily list limit)",
        "warning",
    ),
    (
        "kv-control-plane",
        "control-plane state in Workers KV (category A)",
        "warning",
    ),
    ("kv-call", "Workers KV call site", "note"),
];

fn rule_of(f: &Finding) -> usize {
    if f.op == "put" && f.ttl == Ttl::No {
        0
    } else if f.op == "list" {
        1
    } else if f.category == Category::A {
        2
    } else {
        3
    }
}

/// The SARIF log of a report.
pub fn render(r: &Report) -> String {
    let rules: Vec<Value> = RULES
        .iter()
        .map(|(id, text, level)| {
            json!({
                "id": id,
                "shortDescription": { "text": text },
                "defaultConfiguration": { "level": level },
            })
        })
        .collect();
    let results: Vec<Value> = r
        .findings
        .iter()
        .map(|f| {
            let i = rule_of(f);
            let text = format!(
                "{}: {} {} — category {:?} ({}); recommended: {}",
                f.call,
                f.bindings.join("|"),
                f.op,
                f.category,
                f.rule,
                f.target
            );
            json!({
                "ruleId": RULES[i].0,
                "ruleIndex": i,
                "level": RULES[i].2,
                "message": { "text": text },
                "locations": [{
                    "physicalLocation": {
                        "artifactLocation": { "uri": f.file, "uriBaseId": "%SRCROOT%" },
                        "region": { "startLine": f.line, "startColumn": f.column },
                    }
                }],
                "partialFingerprints": { "kvchaosAudit/v1": f.fingerprint },
                "properties": {
                    "binding": f.bindings.join("|"),
                    "status": f.status,
                    "category": format!("{:?}", f.category),
                    "function": f.function,
                },
            })
        })
        .collect();
    let log = json!({
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [{
            "tool": { "driver": {
                "name": "kvchaos audit",
                "version": r.kvchaos_version,
                "rules": rules,
            }},
            "results": results,
        }],
    });
    let mut s = serde_json::to_string_pretty(&log).unwrap_or_default();
    s.push('\n');
    s
}
