//! Validation of `[thresholds]`: pass/fail rules on latency, error rate and throughput.

use super::*;
use crate::scenario::plan::Window;

/// The keys of a threshold table.
const KEYS: [&str; 3] = ["expr", "abort", "during"];

impl Validator<'_> {
    pub(super) fn thresholds(
        &mut self,
        raw: Option<&Spanned<super::super::raw::OrderedMap<Spanned<Vec<RawValue>>>>>,
        names: &[String],
    ) -> Option<Vec<Threshold>> {
        let mut out = Vec::new();
        let mut ok = true;
        let Some(raw) = raw else {
            return Some(out);
        };
        for (key, exprs) in &raw.get_ref().0 {
            let scope = if key.get_ref() == "all" {
                ThresholdScope::All
            } else if names.contains(key.get_ref()) {
                ThresholdScope::Request(key.get_ref().clone())
            } else {
                let known = if names.is_empty() {
                    String::new()
                } else {
                    format!(" or one of the request names: {}", names.join(", "))
                };
                self.err(
                    key.span().start,
                    format!("thresholds.{}", key.get_ref()),
                    format!(
                        "no request named {:?}: thresholds are keyed by \"all\"{known}",
                        key.get_ref()
                    ),
                );
                ok = false;
                continue;
            };
            for (j, e) in exprs.get_ref().iter().enumerate() {
                let field = format!("thresholds.{}[{}]", key.get_ref(), j + 1);
                match self.threshold(e, &field, &scope) {
                    Some(t) => out.push(t),
                    None => ok = false,
                }
            }
        }
        ok.then_some(out)
    }

    pub(super) fn threshold(
        &mut self,
        e: &RawValue,
        field: &str,
        scope: &ThresholdScope,
    ) -> Option<Threshold> {
        const SHAPE: &str = "expected an expression like \"p99 < 500ms\", or a table like { expr = \"error_rate < 5%\", abort = true, during = \"heal\" }";
        let (at, during) = (e.span().start, self.during(e, field)?);
        let (expr, abort) = match e.get_ref() {
            Value::String(s) => (s.clone(), false),
            Value::Table(t) => {
                if let Some(k) = t.keys().find(|k| !KEYS.contains(&k.as_str())) {
                    self.err(
                        at,
                        format!("{field}.{k}"),
                        format!("unknown key {k:?}: {SHAPE}"),
                    );
                    return None;
                }
                let abort = match t.get("abort") {
                    None => false,
                    Some(Value::Boolean(b)) => *b,
                    Some(other) => {
                        self.err(
                            at,
                            format!("{field}.abort"),
                            format!(
                                "invalid abort {}: expected true or false, e.g. abort = true",
                                show(other)
                            ),
                        );
                        return None;
                    }
                };
                match t.get("expr") {
                    Some(Value::String(s)) => (s.clone(), abort),
                    Some(other) => {
                        self.err(
                            at,
                            format!("{field}.expr"),
                            format!("invalid expr {}: {SHAPE}", show(other)),
                        );
                        return None;
                    }
                    None => {
                        self.err(at, field, format!("missing expr: {SHAPE}"));
                        return None;
                    }
                }
            }
            other => {
                self.err(
                    at,
                    field,
                    format!("invalid threshold {}: {SHAPE}", show(other)),
                );
                return None;
            }
        };
        let table = matches!(e.get_ref(), Value::Table(_));
        let at = table
            .then(|| self.key_value_offset(&e.span(), "expr"))
            .flatten()
            .unwrap_or(at);
        match threshold::parse(&expr) {
            Ok(p) => Some(Threshold {
                scope: scope.clone(),
                metric: p.metric,
                op: p.op,
                limit: p.limit,
                expr: expr.trim().to_owned(),
                abort,
                during,
            }),
            Err(msg) => {
                self.err(at, field, msg);
                None
            }
        }
    }

    /// A threshold table's `during`: `Some(None)` when absent, `None` after an error.
    fn during(&mut self, e: &RawValue, field: &str) -> Option<Option<Window>> {
        let Value::Table(t) = e.get_ref() else {
            return Some(None);
        };
        let Some(value) = t.get("during") else {
            return Some(None);
        };
        let at = self
            .key_value_offset(&e.span(), "during")
            .unwrap_or(e.span().start);
        let named = value.as_str().and_then(Window::from_name);
        if named.is_none() {
            self.err(
                at,
                format!("{field}.during"),
                format!(
                    "invalid during {}: expected \"steady\" (before the first fault), \"faults\" (while a fault is active) or \"heal\" (after the last fault cleared), e.g. during = \"heal\"; without during the whole run is judged",
                    show(value)
                ),
            );
            return None;
        }
        Some(named)
    }

    /// A threshold limited to a window needs faults to place the windows by.
    pub(super) fn during_needs_faults(&mut self, raw: &ScenarioFile, faults: &[FaultPlan]) {
        if !faults.is_empty() {
            return;
        }
        let Some(table) = raw.thresholds.as_ref() else {
            return;
        };
        for (key, exprs) in &table.get_ref().0 {
            for (j, e) in exprs.get_ref().iter().enumerate() {
                let Value::Table(t) = e.get_ref() else {
                    continue;
                };
                let valid = t
                    .get("during")
                    .and_then(|v| v.as_str())
                    .filter(|w| Window::from_name(w).is_some());
                let Some(w) = valid else {
                    continue;
                };
                let at = self
                    .key_value_offset(&e.span(), "during")
                    .unwrap_or(e.span().start);
                self.err(
                    at,
                    format!("thresholds.{}[{}].during", key.get_ref(), j + 1),
                    format!(
                        "during = {w:?} needs faults, but this scenario has no [[faults]]: the steady, faults and heal windows are placed by the fault timeline; add a [[faults]] entry, or remove during to judge the whole run"
                    ),
                );
            }
        }
    }
}
