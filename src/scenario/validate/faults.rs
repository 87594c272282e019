//! Validation of `[[faults]]`, `[clock]` and `[cron]`: the fault timeline and the run clock.

use super::*;

impl Validator<'_> {
    pub(super) fn faults(
        &mut self,
        faults: Option<&[Spanned<RawFault>]>,
        total: Option<Duration>,
    ) -> Option<Vec<FaultPlan>> {
        let mut out = Vec::new();
        let mut ok = true;
        for (i, f) in faults.unwrap_or_default().iter().enumerate() {
            match self.fault(i + 1, f, total) {
                Some(p) => out.push(p),
                None => ok = false,
            }
        }
        ok.then_some(out)
    }

    /// Faults must start before the heal phase, when every fault is cleared.
    pub(super) fn faults_before_heal(
        &mut self,
        raw: &[Spanned<RawFault>],
        faults: &[FaultPlan],
        total: Duration,
        heal: Duration,
        explicit: bool,
    ) {
        let heal_at = total.saturating_sub(heal);
        for (i, (r, f)) in raw.iter().zip(faults).enumerate() {
            if f.at >= heal_at {
                let at = r
                    .get_ref()
                    .at
                    .as_ref()
                    .map_or(r.span().start, |v| v.span().start);
                let how = if explicit {
                    "[heal] duration"
                } else {
                    "[heal] duration (by default a fifth of the run, at least one cron period)"
                };
                self.err(at, format!("faults[{}].at", i + 1), format!(
                    "the fault starts at {} but the heal phase, when every fault is cleared, starts at {}: start it earlier, or shorten {how}",
                    humantime::format_duration(f.at),
                    humantime::format_duration(heal_at)
                ));
            }
        }
    }

    pub(super) fn fault(
        &mut self,
        n: usize,
        f: &Spanned<RawFault>,
        total: Option<Duration>,
    ) -> Option<FaultPlan> {
        use crate::mockkv::FaultSpec;
        let at_table = f.span().start;
        let field = |name: &str| fault_field(n, name);
        let f = f.get_ref();
        let kind = self.fault_kind(f, n, at_table)?;
        let ops = self.fault_ops(f, n)?;
        let (at, until) = self.fault_window(f, n, total)?;
        let probability = self.fault_probability(f, n)?;
        let status = self.fault_status(f, n)?;
        let mut ms = |v: &Option<RawValue>, name: &str, example: &str| -> Option<Option<u64>> {
            match v {
                None => Some(None),
                Some(v) => self
                    .duration(v, &field(name), example)
                    .map(|d| Some(d.as_millis() as u64)),
            }
        };
        let latency_ms = ms(&f.latency, "latency", "latency = \"200ms\"")?;
        let jitter_ms = ms(&f.jitter, "jitter", "jitter = \"50ms\"")?;
        let lag_ms = ms(&f.lag, "lag", "lag = \"30s\"")?;
        let spec = FaultSpec {
            kind,
            ops,
            prefix: f.prefix.clone().unwrap_or_default(),
            namespace: f.namespace.clone(),
            p: probability,
            status,
            latency_ms,
            jitter_ms,
            lag_ms,
            after_ms: None,
            for_ms: None,
        };
        if let Err(e) = spec.validate() {
            self.err(at_table, format!("faults[{n}]"), e.0.clone());
            return None;
        }
        let label = fault_label(&spec);
        Some(FaultPlan {
            at,
            until,
            spec,
            label,
        })
    }

    /// `kind = "daily-limit"`, required.
    fn fault_kind(
        &mut self,
        f: &RawFault,
        n: usize,
        at_table: usize,
    ) -> Option<crate::mockkv::fault::FaultKindName> {
        use crate::mockkv::fault::FaultKindName;
        const KINDS: &str = "daily-limit, rate-limit, error, latency, hang, reset, stale-reads";
        let field = |name: &str| fault_field(n, name);
        match &f.kind {
            None => {
                self.err(
                    at_table,
                    field("kind"),
                    format!("missing kind: add kind = \"daily-limit\" (one of {KINDS})"),
                );
                None
            }
            Some(k) => match serde_json::from_value::<FaultKindName>(serde_json::Value::String(
                k.get_ref().clone(),
            )) {
                Ok(kind) => Some(kind),
                Err(_) => {
                    self.err(
                        k.span().start,
                        field("kind"),
                        format!(
                            "unknown fault kind {:?}: expected one of {KINDS}",
                            k.get_ref()
                        ),
                    );
                    None
                }
            },
        }
    }

    /// `ops = ["put"]`: the KV operations the fault applies to (none: all).
    fn fault_ops(&mut self, f: &RawFault, n: usize) -> Option<Vec<crate::mockkv::Op>> {
        use crate::mockkv::Op;
        let mut ops = Vec::new();
        for (j, o) in f.ops.iter().flatten().enumerate() {
            match serde_json::from_value::<Op>(serde_json::Value::String(
                o.get_ref().to_ascii_lowercase(),
            )) {
                Ok(op) => ops.push(op),
                Err(_) => {
                    self.err(o.span().start, format!("faults[{n}].ops[{}]", j + 1), format!("unknown KV operation {:?}: expected get, put, delete or list, e.g. ops = [\"put\"]", o.get_ref()));
                    return None;
                }
            }
        }
        Some(ops)
    }

    /// `at`, and `until` or `for`: when the fault is set and cleared.
    fn fault_window(
        &mut self,
        f: &RawFault,
        n: usize,
        total: Option<Duration>,
    ) -> Option<(Duration, Option<Duration>)> {
        let field = |name: &str| fault_field(n, name);
        let at = match &f.at {
            None => Duration::ZERO,
            Some(v) => self.duration(v, &field("at"), "at = \"10s\"")?,
        };
        if let (Some(total), Some(v)) = (total, &f.at)
            && at >= total
        {
            self.err(
                v.span().start,
                field("at"),
                format!(
                    "the fault starts at {} but the phases end at {}: start it earlier",
                    humantime::format_duration(at),
                    humantime::format_duration(total)
                ),
            );
            return None;
        }
        let until = match (&f.until, &f.lasts) {
            (Some(_), Some(l)) => {
                self.err(
                    l.span().start,
                    field("for"),
                    "until and for are alternatives: keep one",
                );
                return None;
            }
            (Some(u), None) => {
                let d = self.duration(u, &field("until"), "until = \"40s\"")?;
                if d <= at {
                    self.err(
                        u.span().start,
                        field("until"),
                        format!(
                            "until ({}) must come after at ({})",
                            humantime::format_duration(d),
                            humantime::format_duration(at)
                        ),
                    );
                    return None;
                }
                Some(d)
            }
            (None, Some(l)) => {
                let d = self.duration(l, &field("for"), "for = \"30s\"")?;
                Some(at + self.positive(l, &field("for"), d, "for = \"30s\"")?)
            }
            (None, None) => None,
        };
        Some((at, until))
    }

    /// `probability = 0.25`: the share of matching operations it hits.
    fn fault_probability(&mut self, f: &RawFault, n: usize) -> Option<f64> {
        let field = |name: &str| fault_field(n, name);
        match &f.probability {
            None => Some(1.0),
            Some(v) => match v.get_ref() {
                Value::Float(x) if *x > 0.0 && *x <= 1.0 => Some(*x),
                Value::Integer(1) => Some(1.0),
                other => {
                    self.err(v.span().start, field("probability"), format!("invalid probability {}: expected a number above 0 and at most 1, e.g. probability = 0.25", show(other)));
                    None
                }
            },
        }
    }

    /// `status = 503`: the 5xx an `error` fault answers with.
    fn fault_status(&mut self, f: &RawFault, n: usize) -> Option<Option<u16>> {
        let field = |name: &str| fault_field(n, name);
        match &f.status {
            None => Some(None),
            Some(v) => match v.get_ref() {
                Value::Integer(s) if (500..=599).contains(s) => Some(Some(*s as u16)),
                other => {
                    self.err(
                        v.span().start,
                        field("status"),
                        format!(
                            "invalid status {}: expected a 5xx status, e.g. status = 503",
                            show(other)
                        ),
                    );
                    None
                }
            },
        }
    }

    pub(super) fn speedup(&mut self, clock: Option<&Spanned<RawClock>>) -> Option<f64> {
        const MAX: f64 = 1_000_000.0;
        let Some(v) = clock.and_then(|c| c.get_ref().speedup.as_ref()) else {
            return Some(1.0);
        };
        let n = match v.get_ref() {
            toml::Value::Integer(i) => Some(*i as f64),
            toml::Value::Float(f) => Some(*f),
            _ => None,
        };
        match n {
            Some(n) if n > 0.0 && n <= MAX && n.is_finite() => Some(n),
            _ => {
                self.err(
                    v.span().start,
                    "clock.speedup",
                    format!(
                        "invalid speedup {}: expected run-clock seconds per real second, a number above 0 and at most 1000000, e.g. speedup = 60 (a minute of cron time each second)",
                        show(v.get_ref())
                    ),
                );
                None
            }
        }
    }

    pub(super) fn cron(&mut self, cron: Option<&Spanned<RawCron>>) -> Option<CronPlan> {
        let Some(c) = cron.map(Spanned::get_ref) else {
            return Some(CronPlan::default());
        };
        let mut ok = true;
        let schedules = c.schedules.as_ref().map(|list| {
            list.iter()
                .enumerate()
                .filter_map(|(i, e)| match crate::cron::parse(e.get_ref()) {
                    Ok(parsed) => Some((e.get_ref().clone(), parsed)),
                    Err(msg) => {
                        ok = false;
                        self.err(
                            e.span().start,
                            format!("cron.schedules[{}]", i + 1),
                            format!("{msg} Write 5 fields (minute hour day month weekday, UTC), e.g. \"*/5 * * * *\""),
                        );
                        None
                    }
                })
                .collect()
        });
        let max_gap = self.cron_max_gap(c.max_gap.as_ref());
        let status = self.cron_status(c.status.as_ref());
        ok.then_some(())?;
        Some(CronPlan {
            schedules,
            fire: c.fire.unwrap_or(true),
            max_gap: max_gap?,
            status: status?,
        })
    }
}

/// The field path of fault `n`'s `name`, e.g. `faults[2].at`.
fn fault_field(n: usize, name: &str) -> String {
    format!("faults[{n}].{name}")
}

/// How reports name a fault: kind, operations and prefix, e.g. `error put orders:*`.
fn fault_label(spec: &crate::mockkv::FaultSpec) -> String {
    let ops_text = if spec.ops.is_empty() {
        "all ops".to_owned()
    } else {
        spec.ops
            .iter()
            .map(|o| o.as_str())
            .collect::<Vec<_>>()
            .join("+")
    };
    let prefix_text = if spec.prefix.is_empty() {
        String::new()
    } else {
        format!(" {}*", spec.prefix)
    };
    format!("{} {ops_text}{prefix_text}", spec.kind.as_str())
}
