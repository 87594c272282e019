//! Validation of `[[phases]]`: open-loop rates, ramps, pauses and closed-loop users.

use super::*;

impl Validator<'_> {
    pub(super) fn phases(
        &mut self,
        phases: Option<&Spanned<Vec<Spanned<RawPhase>>>>,
        seed: u64,
    ) -> Option<Vec<Phase>> {
        const FIX: &str = "add a [[phases]] table with duration = \"30s\" and rate = 100";
        let Some(phases) = phases.filter(|p| !p.get_ref().is_empty()) else {
            let at = phases.map_or(self.top, |p| p.span().start);
            self.err(
                at,
                "phases",
                format!("no phases: at least one [[phases]] table is required; {FIX}"),
            );
            return None;
        };
        if phases.get_ref().len() > MAX_PHASES {
            self.err(
                phases.span().start,
                "phases",
                format!(
                    "{} [[phases]] tables, more than {MAX_PHASES}: use ramps (rate = {{ from = 10, to = 500 }}) instead of many short phases",
                    phases.get_ref().len()
                ),
            );
            return None;
        }
        let mut out = Vec::new();
        let mut ok = true;
        for (i, p) in phases.get_ref().iter().enumerate() {
            match self.phase(p, i + 1, seed) {
                Some(p) => out.push(p),
                None => ok = false,
            }
        }
        if !ok {
            return None;
        }
        let total: Duration = out.iter().map(|p| p.duration).sum();
        if total > MAX_TOTAL {
            self.err(
                phases.span().start,
                "phases",
                format!(
                    "the phases last {} in total, more than the 7 day maximum: shorten the phase durations",
                    humantime::format_duration(total)
                ),
            );
            return None;
        }
        Some(out)
    }

    pub(super) fn phase(&mut self, p: &Spanned<RawPhase>, n: usize, seed: u64) -> Option<Phase> {
        if let Some(replay) = self.replay_phase(p, n, seed) {
            return replay;
        }
        let base = format!("phases[{n}]");
        let header = p.span().start;
        let raw = p.get_ref();
        let name = self.phase_name(raw, &base);
        let field = format!("{base}.duration");
        let duration = match &raw.duration {
            None => {
                self.err(
                    header,
                    field,
                    "missing duration: add duration = \"30s\" to this phase",
                );
                None
            }
            Some(d) => self
                .duration(d, &field, "duration = \"30s\"")
                .and_then(|x| self.positive(d, &field, x, "duration = \"30s\"")),
        };

        let load = self.phase_load(raw, header, &base);
        let load = self.max_in_flight(load, raw, &base);
        Some(Phase {
            name: name?,
            duration: duration?,
            load: load?,
        })
    }

    /// `name = "warm-up"`: `None` when it is invalid.
    fn phase_name(&mut self, raw: &RawPhase, base: &str) -> Option<Option<String>> {
        match &raw.name {
            Some(s)
                if s.get_ref().is_empty()
                    || s.get_ref().chars().count() > 64
                    || s.get_ref().contains(char::is_control) =>
            {
                self.err(
                    s.span().start,
                    format!("{base}.name"),
                    format!("invalid phase name {:?}: use 1 to 64 characters on one line, e.g. name = \"warm-up\"", s.get_ref()),
                );
                None
            }
            Some(s) => Some(Some(s.get_ref().clone())),
            None => Some(None),
        }
    }

    /// Exactly one of `rate`, `vus` or `pause`.
    fn phase_load(&mut self, raw: &RawPhase, header: usize, base: &str) -> Option<Load> {
        let kinds: Vec<(&str, &RawValue)> = [
            ("rate", &raw.rate),
            ("vus", &raw.vus),
            ("pause", &raw.pause),
        ]
        .into_iter()
        .filter_map(|(k, v)| v.as_ref().map(|v| (k, v)))
        .collect();
        match kinds.as_slice() {
            [] => {
                self.err(header, base.to_owned(), "no load for this phase: add exactly one of rate = 500 (open loop), rate = { from = 10, to = 500 } (ramp), vus = 16 (closed loop) or pause = true (no traffic)");
                None
            }
            [(kind, v)] => match *kind {
                "rate" => self.rate(v, &format!("{base}.rate")),
                "vus" => self
                    .int_in(
                        v,
                        &format!("{base}.vus"),
                        "vus",
                        1,
                        MAX_CONCURRENCY,
                        "vus = 16",
                    )
                    .map(Load::Vus),
                _ => self.pause(v, &format!("{base}.pause")),
            },
            [(first, _), (second, v), ..] => {
                self.err(
                    v.span().start,
                    format!("{base}.{second}"),
                    format!("{first} and {second} cannot be used together in one phase: keep exactly one of rate, vus or pause, e.g. rate = 500"),
                );
                None
            }
        }
    }

    /// `max_in_flight` bounds a rate phase's `load`; on any other phase it is an error.
    fn max_in_flight(&mut self, load: Option<Load>, raw: &RawPhase, base: &str) -> Option<Load> {
        match (load, &raw.max_in_flight) {
            (Some(Load::Rate { from, to, .. }), Some(m)) => self
                .int_in(
                    m,
                    &format!("{base}.max_in_flight"),
                    "max_in_flight",
                    1,
                    MAX_CONCURRENCY,
                    "max_in_flight = 256",
                )
                .map(|max_in_flight| Load::Rate {
                    from,
                    to,
                    max_in_flight,
                }),
            (Some(load @ (Load::Vus(_) | Load::Pause)), Some(m)) => {
                let why = if matches!(load, Load::Vus(_)) {
                    "a vus phase is bounded by vus itself"
                } else {
                    "a pause phase sends nothing"
                };
                self.err(
                    m.span().start,
                    format!("{base}.max_in_flight"),
                    format!("max_in_flight applies only to rate phases (open loop); {why}: remove max_in_flight from this phase"),
                );
                None
            }
            (load, _) => load,
        }
    }

    pub(super) fn rate_number(v: &Value) -> Option<f64> {
        let n = match v {
            Value::Integer(i) => *i as f64,
            Value::Float(f) => *f,
            _ => return None,
        };
        (n.is_finite() && (0.0..=MAX_RATE).contains(&n)).then_some(n)
    }

    pub(super) fn rate(&mut self, v: &RawValue, field: &str) -> Option<Load> {
        const FIX: &str = "expected requests per second, e.g. rate = 500, or a ramp, e.g. rate = { from = 10, to = 500 }";
        let at = v.span().start;
        let (from, to) = match v.get_ref() {
            Value::Table(t) => {
                if let Some(k) = t.keys().find(|k| !matches!(k.as_str(), "from" | "to")) {
                    self.err(at, format!("{field}.{k}"), format!("unknown ramp key {k:?}: a ramp has only from and to, e.g. rate = {{ from = 10, to = 500 }}"));
                    return None;
                }
                let (Some(from), Some(to)) = (t.get("from"), t.get("to")) else {
                    let missing = if t.contains_key("from") { "to" } else { "from" };
                    self.err(at, field, format!("the ramp has no {missing}: give both ends in requests per second, e.g. rate = {{ from = 10, to = 500 }}"));
                    return None;
                };
                let mut ends = [0.0; 2];
                for (slot, (name, val)) in ends.iter_mut().zip([("from", from), ("to", to)]) {
                    match Self::rate_number(val) {
                        Some(n) => *slot = n,
                        None => {
                            self.err(at, format!("{field}.{name}"), format!("invalid ramp {name} {}: expected requests per second from 0 to 10000000, e.g. rate = {{ from = 10, to = 500 }}", show(val)));
                            return None;
                        }
                    }
                }
                if ends == [0.0, 0.0] {
                    self.err(at, field, "a ramp from 0 to 0 sends nothing: use pause = true for a quiet phase, or raise to, e.g. rate = { from = 0, to = 500 }");
                    return None;
                }
                (ends[0], ends[1])
            }
            other => match Self::rate_number(other) {
                Some(n) if n > 0.0 => (n, n),
                Some(_) => {
                    self.err(at, field, "invalid rate \"0\": must be more than 0; for a quiet phase use pause = true, e.g. rate = 500");
                    return None;
                }
                None => {
                    self.err(
                        at,
                        field,
                        format!("invalid rate {}: {FIX} (at most 10000000)", show(other)),
                    );
                    return None;
                }
            },
        };
        Some(Load::Rate {
            from,
            to,
            max_in_flight: DEFAULT_MAX_IN_FLIGHT,
        })
    }

    pub(super) fn pause(&mut self, v: &RawValue, field: &str) -> Option<Load> {
        if v.get_ref() == &Value::Boolean(true) {
            return Some(Load::Pause);
        }
        self.err(
            v.span().start,
            field,
            format!("invalid pause {}: write pause = true for a phase without traffic, or remove it and use rate or vus", show(v.get_ref())),
        );
        None
    }
}
