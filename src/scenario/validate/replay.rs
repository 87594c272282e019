//! Validation of replay phases (`[[phases]] replay = "captures/tail.json"`): the options,
//! and one streaming pass over the capture that checks every event, applies the filters and
//! the sample, and measures the pass (its length at speed, its routes) for the plan.

use std::sync::Arc;

use super::*;
use crate::replay::plan::{Filter, Loops, MAX_ROUTES, OTHER_ROUTES, Pacer, ReplayPlan};
use crate::replay::record::Kind;
use crate::replay::route::Pattern;
use crate::replay::{Format, Reader};
use crate::scenario::raw::{RawPhase, RawReplayFilter};

/// Fastest replay speed.
const MAX_SPEED: f64 = 1000.0;

impl Validator<'_> {
    /// A replay phase, or `None` when `p` is not one (then replay-only keys are refused).
    pub(super) fn replay_phase(
        &mut self,
        p: &Spanned<RawPhase>,
        n: usize,
        seed: u64,
    ) -> Option<Option<Phase>> {
        let base = format!("phases[{n}]");
        let raw = p.get_ref();
        let Some(file) = &raw.replay else {
            self.stray_replay_keys(raw, &base);
            return None;
        };
        for (k, v) in [
            ("rate", &raw.rate),
            ("vus", &raw.vus),
            ("pause", &raw.pause),
        ] {
            if let Some(v) = v {
                self.err(v.span().start, format!("{base}.{k}"), format!("{k} cannot be used in a replay phase: a replay sends the capture's own traffic; put {k} in a phase of its own"));
                return Some(None);
            }
        }
        Some(self.replay_plan(raw, file, &base, seed))
    }

    fn stray_replay_keys(&mut self, raw: &RawPhase, base: &str) {
        let spans = [
            ("format", raw.format.as_ref().map(|s| s.span().start)),
            ("speed", raw.speed.as_ref().map(|s| s.span().start)),
            ("max_gap", raw.max_gap.as_ref().map(|s| s.span().start)),
            ("loop", raw.loops.as_ref().map(|s| s.span().start)),
            ("sample", raw.sample.as_ref().map(|s| s.span().start)),
            ("only", raw.only.as_ref().map(|s| s.span().start)),
            ("skip", raw.skip.as_ref().map(|s| s.span().start)),
            (
                "set_headers",
                raw.set_headers.as_ref().map(|s| s.span().start),
            ),
            ("timeout", raw.timeout.as_ref().map(|s| s.span().start)),
            ("crons", raw.crons.as_ref().map(|s| s.span().start)),
            ("rewrite", raw.rewrite.as_ref().map(|s| s.span().start)),
        ];
        for (k, at) in spans {
            if let Some(at) = at {
                self.err(at, format!("{base}.{k}"), format!("{k} applies only to replay phases: add replay = \"captures/tail.json\" to this phase or remove {k}"));
            }
        }
    }

    fn replay_plan(
        &mut self,
        raw: &RawPhase,
        file: &Spanned<String>,
        base: &str,
        seed: u64,
    ) -> Option<Phase> {
        let at = file.span().start;
        let rel = Path::new(file.get_ref());
        let path = match self.file.parent() {
            Some(dir) if rel.is_relative() => dir.join(rel),
            _ => rel.to_path_buf(),
        };
        let format = match &raw.format {
            None => None,
            Some(f) => match Format::parse(f.get_ref()) {
                Some(f) => Some(f),
                None => {
                    self.err(f.span().start, format!("{base}.format"), format!("unknown capture format {:?}: use \"wrangler-tail\", \"har\" or \"ndjson\", or leave format out to detect it", f.get_ref()));
                    return None;
                }
            },
        };
        let (speed, max_gap, sample) = self.replay_pace(raw, base);
        let loops = self.replay_loops(raw, base);
        let only = raw
            .only
            .as_ref()
            .map(|f| self.replay_filter(f, &format!("{base}.only")));
        let skip = raw
            .skip
            .as_ref()
            .map(|f| self.replay_filter(f, &format!("{base}.skip")));
        let set_headers = self.headers(raw.set_headers.as_ref(), &format!("{base}.set"));
        let names = |v: &Option<Vec<Spanned<String>>>| {
            v.iter()
                .flatten()
                .map(|s| s.get_ref().to_ascii_lowercase())
                .collect::<Vec<_>>()
        };
        let groups = self.replay_groups(raw, base);
        let rewrite = self.replay_rewrite(raw, base);
        let (timeout, max_in_flight, recorded_crons) = self.replay_sending(raw, base);
        let mut plan = ReplayPlan {
            path,
            format: format.unwrap_or(Format::Ndjson),
            speed: speed?,
            max_gap: max_gap?,
            loops: loops?,
            sample: sample?,
            only: valid(only)?,
            skip: valid(skip)?,
            set_headers: set_headers?,
            drop_headers: names(&raw.drop_headers),
            keep_headers: names(&raw.keep_headers),
            groups: groups?,
            rewrite: rewrite?,
            max_in_flight: max_in_flight?,
            timeout: timeout?,
            recorded_crons: recorded_crons?,
            routes: Vec::new(),
            fetches: 0,
            others: [0; 3],
            pass: Duration::ZERO,
        };
        if let Err(e) = measure(&mut plan, format, seed) {
            self.err(
                at,
                format!("{base}.replay"),
                format!("{e}: fix the capture, or convert it first with `kvchaos replay import`"),
            );
            return None;
        }
        let duration = self.replay_duration(raw, base, &plan)?;
        Some(Phase {
            name: raw.name.as_ref().map(|s| s.get_ref().clone()),
            duration,
            load: Load::Replay(Arc::new(plan)),
        })
    }

    /// `speed`, `max_gap` and `sample`; each `None` when invalid (`max_gap`, `sample`: the
    /// inner `None` when not given).
    #[allow(clippy::type_complexity)]
    fn replay_pace(
        &mut self,
        raw: &RawPhase,
        base: &str,
    ) -> (Option<f64>, Option<Option<Duration>>, Option<Option<f64>>) {
        let speed = match &raw.speed {
            None => Some(1.0),
            Some(v) => match Self::rate_number(v.get_ref()) {
                Some(s) if s > 0.0 && s <= MAX_SPEED => Some(s),
                _ => {
                    self.err(v.span().start, format!("{base}.speed"), format!("invalid speed {}: expected a factor above 0 and at most {MAX_SPEED}, e.g. speed = 2.0 (twice as fast as recorded)", show(v.get_ref())));
                    None
                }
            },
        };
        let max_gap = raw.max_gap.as_ref().map(|g| {
            self.duration(g, &format!("{base}.max_gap"), "max_gap = \"5s\"")
                .and_then(|d| self.positive(g, &format!("{base}.max_gap"), d, "max_gap = \"5s\""))
        });
        let sample = match &raw.sample {
            None => Some(None),
            Some(v) => match Self::rate_number(v.get_ref()) {
                Some(s) if s > 0.0 && s <= 1.0 => Some(Some(s)),
                _ => {
                    self.err(v.span().start, format!("{base}.sample"), format!("invalid sample {}: expected the share of events kept, above 0 and at most 1, e.g. sample = 0.1", show(v.get_ref())));
                    None
                }
            },
        };
        let max_gap = match max_gap {
            None => Some(None),
            Some(Some(d)) => Some(Some(d)),
            Some(None) => None,
        };
        (speed, max_gap, sample)
    }

    /// `timeout`, `max_in_flight` and `crons`; each `None` when invalid.
    fn replay_sending(
        &mut self,
        raw: &RawPhase,
        base: &str,
    ) -> (Option<Duration>, Option<usize>, Option<bool>) {
        let timeout = match &raw.timeout {
            None => Some(DEFAULT_TIMEOUT),
            Some(t) => self.duration(t, &format!("{base}.timeout"), "timeout = \"10s\""),
        };
        let max_in_flight = match &raw.max_in_flight {
            None => Some(DEFAULT_MAX_IN_FLIGHT),
            Some(m) => self.int_in(
                m,
                &format!("{base}.max_in_flight"),
                "max_in_flight",
                1,
                MAX_CONCURRENCY,
                "max_in_flight = 256",
            ),
        };
        let recorded_crons = match &raw.crons {
            None => Some(false),
            Some(c) if c.get_ref() == "recorded" => Some(true),
            Some(c) => {
                self.err(c.span().start, format!("{base}.crons"), format!("invalid crons {:?}: the only value is \"recorded\" (fire the capture's scheduled events at their scaled times)", c.get_ref()));
                None
            }
        };
        (timeout, max_in_flight, recorded_crons)
    }

    fn replay_loops(&mut self, raw: &RawPhase, base: &str) -> Option<Loops> {
        match raw.loops.as_ref().map(|v| (v, v.get_ref())) {
            None | Some((_, Value::Boolean(false))) => Some(Loops::Times(1)),
            Some((_, Value::Boolean(true))) => Some(Loops::UntilEnd),
            Some((_, Value::Integer(n))) if (1..=1_000_000).contains(n) => {
                Some(Loops::Times(*n as u32))
            }
            Some((v, other)) => {
                self.err(v.span().start, format!("{base}.loop"), format!("invalid loop {}: use loop = true (repeat until duration) or a number of passes, e.g. loop = 3", show(other)));
                None
            }
        }
    }

    fn replay_groups(&mut self, raw: &RawPhase, base: &str) -> Option<Vec<Pattern>> {
        let mut out = Vec::new();
        let mut ok = true;
        for g in raw.group.iter().flatten() {
            match Pattern::parse(g.get_ref()) {
                Ok(p) => out.push(p),
                Err(e) => {
                    self.err(
                        g.span().start,
                        format!("{base}.group"),
                        format!("invalid group pattern {:?}: {e}", g.get_ref()),
                    );
                    ok = false;
                }
            }
        }
        ok.then_some(out)
    }

    /// `rewrite = { "/api/v1/" = "/v1/" }`: both sides paths; longest `from` first.
    fn replay_rewrite(&mut self, raw: &RawPhase, base: &str) -> Option<Vec<(String, String)>> {
        let mut out = Vec::new();
        let mut ok = true;
        for (from, to) in raw.rewrite.iter().flat_map(|r| &r.get_ref().0) {
            let field = format!("{base}.rewrite.{:?}", from.get_ref());
            for (side, v) in [("prefix", from), ("replacement", to)] {
                if !v.get_ref().starts_with('/') {
                    self.err(v.span().start, field.clone(), format!("invalid rewrite {side} {:?}: a path prefix starts with \"/\", e.g. rewrite = {{ \"/api/v1/\" = \"/v1/\" }}", v.get_ref()));
                    ok = false;
                }
            }
            out.push((from.get_ref().clone(), to.get_ref().clone()));
        }
        // Overlapping prefixes are allowed: the longest that matches wins.
        out.sort_by_key(|r| std::cmp::Reverse(r.0.len()));
        ok.then_some(out)
    }

    fn replay_filter(&mut self, f: &Spanned<RawReplayFilter>, field: &str) -> Option<Filter> {
        let raw = f.get_ref();
        let mut list = |v: &Option<RawValue>, what: &str, upper: bool| -> Option<Vec<String>> {
            let Some(v) = v else { return Some(Vec::new()) };
            let items: Option<Vec<String>> = match v.get_ref() {
                Value::String(s) => Some(vec![s.clone()]),
                Value::Array(a) => a.iter().map(|x| x.as_str().map(str::to_owned)).collect(),
                _ => None,
            };
            match items {
                Some(i) => Some(
                    i.into_iter()
                        .map(|s| if upper { s.to_ascii_uppercase() } else { s })
                        .collect(),
                ),
                None => {
                    self.err(v.span().start, format!("{field}.{what}"), format!("invalid {what} {}: expected a string or a list of strings, e.g. {what} = [\"GET\", \"POST\"]", show(v.get_ref())));
                    None
                }
            }
        };
        let methods = list(&raw.method, "method", true);
        let outcomes = list(&raw.outcome, "outcome", false);
        let path = match &raw.path {
            None => Some(None),
            Some(p) => match regex::Regex::new(p.get_ref()) {
                Ok(re) => Some(Some(re)),
                Err(e) => {
                    let msg = e.to_string().lines().last().unwrap_or("").trim().to_owned();
                    self.err(
                        p.span().start,
                        format!("{field}.path"),
                        format!(
                            "invalid path regex {:?}: {msg}; e.g. path = \"^/items/\"",
                            p.get_ref()
                        ),
                    );
                    None
                }
            },
        };
        Some(Filter {
            methods: methods?,
            path: path?,
            outcomes: outcomes?,
        })
    }

    fn replay_duration(
        &mut self,
        raw: &RawPhase,
        base: &str,
        plan: &ReplayPlan,
    ) -> Option<Duration> {
        let field = format!("{base}.duration");
        let given = match &raw.duration {
            None => None,
            Some(d) => Some(self.duration(d, &field, "duration = \"10m\"")?),
        };
        // The last event is due at the pass length: the phase lasts a little longer, so that a
        // late timer never loses it to the planned end.
        let tail = Duration::from_millis(250);
        match (plan.loops, given) {
            (_, Some(d)) => Some(d),
            (Loops::Times(n), None) => Some(plan.pass * n + tail),
            (Loops::UntilEnd, None) => {
                self.err(raw.loops.as_ref().map_or(0, |l| l.span().start), format!("{base}.loop"), "loop = true repeats until the phase's duration: add duration = \"10m\" to this phase");
                None
            }
        }
    }
}

/// An optional value that was checked: `None` when it was given and invalid.
fn valid<T>(v: Option<Option<T>>) -> Option<Option<T>> {
    match v {
        None => Some(None),
        Some(Some(x)) => Some(Some(x)),
        Some(None) => None,
    }
}

/// One pass over the capture: every event is checked; the selected ones are counted, paced
/// and grouped into routes.
fn measure(
    plan: &mut ReplayPlan,
    format: Option<Format>,
    seed: u64,
) -> Result<(), crate::replay::CaptureError> {
    let mut reader = Reader::open(&plan.path, format)?;
    plan.format = reader.format();
    let mut pacer = Pacer::new(plan.speed, plan.max_gap);
    let mut index = 0u64;
    while let Some((r, _)) = reader.next_record()? {
        let i = index;
        index += 1;
        let offset = pacer.next(r.t_ms);
        if r.kind == Kind::Fetch && !plan.selects(seed, i, &r) {
            continue;
        }
        plan.pass = offset;
        match r.kind {
            Kind::Fetch => {
                plan.fetches += 1;
                let route = plan.route_of(&r);
                if !plan.routes.contains(&route) {
                    if plan.routes.len() < MAX_ROUTES {
                        plan.routes.push(route);
                    } else if !plan.routes.iter().any(|x| x == OTHER_ROUTES) {
                        plan.routes.push(OTHER_ROUTES.to_owned());
                    }
                }
            }
            Kind::Cron => plan.others[0] += 1,
            Kind::Alarm => plan.others[1] += 1,
            Kind::Queue => plan.others[2] += 1,
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
