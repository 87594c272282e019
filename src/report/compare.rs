//! `kvchaos compare BEFORE AFTER`: two runs side by side, typically the Worker before and after
//! its control plane moved out of KV. Per request: corrected latency percentiles, error rate and
//! throughput with their changes; every check and threshold verdict that changed; KV operations
//! per 1,000 requests by operation and key prefix (from each run's `mockkv.json`); and
//! regression gates (`--fail-if`) that make the command fail.
//!
//! Gate grammar, one gate per `--fail-if`:
//!
//! ```text
//! GATE   = METRIC [ "[" SCOPE "]" ] " " CHANGE  |  "verdicts"
//! METRIC = p50 | p90 | p95 | p99 | p99.9 | max | mean     corrected latency
//!        | error_rate | rps
//!        | kv_ops | kv_gets | kv_puts | kv_deletes | kv_lists   per 1,000 requests
//! SCOPE  = a request name, "all" (the default) or "*" (every request and all);
//!          for kv_* metrics a key prefix such as "queue:" (default: every prefix together)
//! CHANGE = "+" N "%"            relative rise allowed (latency, error_rate is refused, kv_*)
//!        | "+" N ("us"|"ms"|"s") absolute rise allowed (latency)
//!        | "+" N "pp"           percentage points (error_rate)
//!        | "+" N                absolute rise allowed (kv_*: operations per 1,000 requests)
//!        | "-" N ["%"]          fall allowed (rps only: less throughput is worse)
//! ```
//!
//! A gate fails when AFTER is worse than BEFORE by more than the change allows:
//! `p99 +20%` fails when the p99 of all requests rose by more than 20 %; `kv_puts +0` fails
//! when the Worker writes KV more often per request than before; `verdicts` fails when a check
//! or threshold that passed before does not pass after.
//!
//! Pure functions over two [`Side`]s, apart from [`Side::load`]; printing is the CLI's job.

mod cells;
mod diff;
mod gates;
mod model;
mod render_html;
mod render_md;
mod routes;

pub use diff::{KvRow, VerdictChange, kv_rows, verdict_changes};
pub use gates::{Gate, GateError, parse_gate};
pub use model::{CompareError, Comparison, GateResult, Side, compare};
pub use render_html::render_html;
pub use render_md::render_markdown;

#[cfg(test)]
mod tests {
    use super::render_md::md;
    use super::*;
    use crate::mockkv::Op;
    use crate::mockkv::stats::Snapshot;
    use crate::report::model::fixture;
    use serde_json::json;

    fn snapshot(puts: &[(&str, u64)]) -> Snapshot {
        let counts: Vec<serde_json::Value> = puts
            .iter()
            .map(|(p, n)| json!({"namespace": "KV", "op": "put", "prefix": p, "outcome": "ok", "count": n}))
            .chain([json!({"namespace": "KV", "op": "get", "prefix": "cache:", "outcome": "ok", "count": 5000})])
            .collect();
        serde_json::from_value(json!({
            "now_ms": 0, "counts": counts, "writes": [], "quota": [], "faults": [], "journal": []
        }))
        .expect("snapshot")
    }

    /// BEFORE: the fixture with KV puts under `queue:` and `cron:`. AFTER: faster, fewer errors,
    /// no queue puts, and the cron check passing.
    pub(crate) fn pair() -> (Side, Side) {
        let before = Side {
            label: "before".to_owned(),
            summary: fixture(),
            kv: Some(snapshot(&[("queue:", 2_258), ("cron:", 70)])),
        };
        let mut s = fixture();
        s.requests[1].corrected.p99_us = 921_599; // acquire_lock p99 halves
        s.requests[1].error_rate = 0.005;
        s.overall.corrected.p99_us = 820_837; // +20.0% exactly
        s.overall.error_rate = 236.0 / 11_289.0 + 0.0125;
        s.checks[0].verdict = crate::check::Verdict::Pass;
        s.thresholds[0].passed = false;
        let after = Side {
            label: "after".to_owned(),
            summary: s,
            kv: Some(snapshot(&[("cron:", 70), ("idem:", 11)])),
        };
        (before, after)
    }

    fn gates(list: &[&str]) -> Vec<Gate> {
        list.iter()
            .map(|g| parse_gate(g).expect("gate parses"))
            .collect()
    }

    fn run(list: &[&str]) -> Comparison {
        let (a, b) = pair();
        compare(a, b, &gates(list)).expect("compares")
    }

    #[test]
    fn latency_gates_judge_relative_and_absolute_rises() {
        let c = run(&[
            "p99 +20%",
            "p99 +19%",
            "p99[acquire_lock] +0%",
            "p99 +137ms",
            "p99 +136ms",
        ]);
        let passed: Vec<bool> = c.gates.iter().map(|g| g.passed).collect();
        assert_eq!(passed, [true, false, true, true, false]);
        assert_eq!(c.gates[0].detail, ["all: p99 684.0 ms → 820.8 ms (+20.0%)"]);
        assert!(
            c.gates[1].detail[0].ends_with("— over the limit"),
            "{:?}",
            c.gates[1]
        );
    }

    #[test]
    fn every_request_scope_judges_each_request_and_all() {
        let c = run(&["p99[*] +0%"]);
        assert!(!c.gates[0].passed);
        assert_eq!(c.gates[0].detail.len(), 3);
        assert!(c.gates[0].detail[0].starts_with("get_config: p99 48.7 ms → 48.7 ms (±0)"));
    }

    #[test]
    fn error_rate_gates_use_percentage_points() {
        let c = run(&[
            "error_rate +1pp",
            "error_rate +1.5pp",
            "error_rate[acquire_lock] +0pp",
        ]);
        let passed: Vec<bool> = c.gates.iter().map(|g| g.passed).collect();
        assert_eq!(passed, [false, true, true]);
        assert!(
            c.gates[0].detail[0].contains("2.09% → 3.34% (+1.25 pp)"),
            "{:?}",
            c.gates[0]
        );
    }

    #[test]
    fn kv_gates_per_thousand_requests_and_prefix() {
        let c = run(&[
            "kv_puts +0",
            "kv_puts[idem:] +0",
            "kv_puts[cron:] +0",
            "kv_gets +0%",
        ]);
        let passed: Vec<bool> = c.gates.iter().map(|g| g.passed).collect();
        assert_eq!(passed, [true, false, true, true]);
        // 2,328 puts over 11,289 requests before; 81 after.
        assert_eq!(
            c.gates[0].detail,
            ["KV puts per 1,000 requests: 206.2 → 7.2 (−199.0, −96.5%)"]
        );
        assert_eq!(
            c.gates[1].detail,
            ["KV puts per 1,000 requests under \"idem:\": 0.0 → 1.0 (+1.0, new)"]
        );
    }

    #[test]
    fn verdicts_gate_fails_when_something_stops_passing() {
        let c = run(&["verdicts"]);
        assert!(!c.gates[0].passed);
        assert_eq!(
            c.gates[0].detail,
            ["threshold all: error_rate < 5%: PASS → FAIL"]
        );
        let changes = verdict_changes(&c.before, &c.after);
        assert_eq!(changes[0].before, Some("FAIL"));
        assert_eq!(changes[0].after, Some("PASS"));
    }

    #[test]
    fn rps_gate_is_a_fall() {
        let c = run(&["rps -10%", "rps -0"]);
        assert!(c.gates.iter().all(|g| g.passed));
    }

    #[test]
    fn bad_gates_name_the_value_and_the_fix() {
        let cases = [
            ("p99", "expected a metric and an allowed change"),
            ("p98 +20%", "unknown metric \"p98\": use one of p50"),
            ("p99 20%", "needs a sign: + for a rise"),
            (
                "p99 -20%",
                "for p99 a regression is a rise, so write e.g. p99 +20%",
            ),
            ("rps +10%", "for rps a regression is a fall"),
            ("error_rate +1%", "ambiguous for error_rate: write +1pp"),
            ("p99 +20pp", "unit \"pp\" does not fit p99"),
            ("kv_puts +x", "\"+x\" is not a number"),
            ("p99[checkout +20%", "unclosed scope"),
        ];
        for (gate, want) in cases {
            let e = parse_gate(gate).expect_err(gate).to_string();
            assert!(e.starts_with(&format!("--fail-if \"{gate}\": ")), "{e}");
            assert!(e.contains(want), "{gate}: {e}");
        }
        let (a, b) = pair();
        let e = compare(a, b, &gates(&["p99[nope] +1%"]))
            .expect_err("unknown request")
            .to_string();
        assert_eq!(
            e,
            "--fail-if \"p99[nope] +1%\": no request \"nope\" in BEFORE: requests there are \"get_config\", \"acquire_lock\""
        );
    }

    #[test]
    fn markdown_lists_the_busiest_prefixes_and_counts_the_rest() {
        let (mut a, b) = pair();
        let many: Vec<(String, u64)> = (0..12).map(|i| (format!("p{i:02}:"), 100 - i)).collect();
        let refs: Vec<(&str, u64)> = many.iter().map(|(p, n)| (p.as_str(), *n)).collect();
        a.kv = Some(snapshot(&refs));
        let md = render_markdown(&compare(a, b, &[]).expect("compares"));
        assert!(md.contains("| put | `p07:` |"), "{md}");
        assert!(!md.contains("`p08:`"), "{md}");
        // 12 prefixes before and 2 others after: 14 in all, 8 listed.
        assert!(md.contains("| put | … 6 more prefixes | | | |"), "{md}");
        assert!(md.contains("| get | `cache:` |"), "{md}");
    }

    #[test]
    fn markdown_snapshot() {
        let c = run(&["p99 +20%", "kv_puts +0", "verdicts"]);
        let started = md(&c.before.summary.started_at);
        insta::assert_snapshot!(render_markdown(&c).replace(&started, "[started_at]"));
    }

    #[test]
    fn html_parses_and_has_its_charts() {
        let c = run(&["p99 +20%"]);
        let page = render_html(&c);
        let ids = crate::report::html::tests::parse_ids(&page);
        for id in [
            "gates",
            "requests",
            "p99-chart",
            "verdicts",
            "kv",
            "kv-chart",
        ] {
            assert!(ids.iter().any(|i| i == id), "no #{id}");
        }
    }

    #[test]
    fn loads_folders_with_their_mock_kv() {
        let dir = tempfile::tempdir().expect("tempdir");
        crate::report::json::write_summary(dir.path(), &fixture()).expect("summary");
        let side = Side::load(dir.path()).expect("loads");
        assert!(side.kv.is_none());
        std::fs::write(
            dir.path().join("mockkv.json"),
            serde_json::to_string(&snapshot(&[("q:", 1)])).expect("json"),
        )
        .expect("written");
        let side = Side::load(&dir.path().join("summary.json")).expect("loads");
        assert!(
            side.kv_per_1000(Some(Op::Put), None)
                .is_some_and(|v| v > 0.0)
        );
        std::fs::write(dir.path().join("mockkv.json"), "[").expect("written");
        let e = Side::load(dir.path()).expect_err("bad mockkv").to_string();
        assert!(e.contains("mockkv.json: not a mock KV snapshot"), "{e}");
        assert!(
            e.ends_with("remove or fix it to compare without KV operations"),
            "{e}"
        );
    }
}
