//! Validation of `[kv]`: the mock KV's plan and daily limits, and its run clock (`day`,
//! `start`).

use std::time::Duration;

use toml::{Spanned, Value};

use crate::mockkv::Limits;
use crate::scenario::plan::KvPlan;
use crate::scenario::raw::{RawKv, RawValue};
use crate::scenario::validate::{Validator, show};

impl Validator<'_> {
    /// The mock KV's plan, and the run-clock speed a `day` asks for.
    pub(in crate::scenario::validate) fn kv(
        &mut self,
        k: Option<&Spanned<RawKv>>,
    ) -> Option<(KvPlan, Option<f64>)> {
        let Some(k) = k.map(Spanned::get_ref) else {
            return Some((KvPlan::default(), None));
        };
        let (limits, mut ok) = self.kv_limits(k)?;
        let speed = match &k.day {
            None => None,
            Some(v) => {
                let d = self.duration(v, "kv.day", "day = \"60s\"")?;
                let d = self.positive(v, "kv.day", d, "day = \"60s\"")?;
                Some(crate::mockkv::VirtualClock::speed_for_day(d))
            }
        };
        let start_of_day = match &k.start {
            None => None,
            Some(s) => match parse_time_of_day(s.get_ref()) {
                Some(d) => Some(d),
                None => {
                    self.err(
                        s.span().start,
                        "kv.start",
                        format!(
                            "invalid start {:?}: expected a UTC time of day as HH:MM or HH:MM:SS, e.g. start = \"23:30\" (the run clock starts there, today)",
                            s.get_ref()
                        ),
                    );
                    ok = false;
                    None
                }
            },
        };
        let group = self.kv_group(k.group_segments.as_ref());
        ok &= group.is_some();
        ok.then(|| {
            (
                KvPlan {
                    limits,
                    same_key_write_limit: k.same_key_write_limit.unwrap_or(true),
                    start_of_day,
                    group: group.unwrap_or_default(),
                },
                speed,
            )
        })
    }

    /// The daily limits of `plan` (`free`, `paid`, `custom` with `*_per_day`), and whether every
    /// limit was valid; `None` for an unknown plan, after which nothing else in `[kv]` is checked.
    fn kv_limits(&mut self, k: &RawKv) -> Option<(Limits, bool)> {
        let mut ok = true;
        let custom: Vec<(&str, &RawValue)> = [
            ("reads_per_day", k.reads_per_day.as_ref()),
            ("writes_per_day", k.writes_per_day.as_ref()),
            ("deletes_per_day", k.deletes_per_day.as_ref()),
            ("lists_per_day", k.lists_per_day.as_ref()),
        ]
        .into_iter()
        .filter_map(|(n, v)| v.map(|v| (n, v)))
        .collect();
        let plan = k.plan.as_ref().map_or("free", |p| p.get_ref().as_str());
        let mut limits = match plan {
            "free" => Limits::FREE,
            "paid" => Limits::PAID,
            "custom" => Limits::PAID,
            other => {
                let at = k.plan.as_ref().map_or(0, |p| p.span().start);
                self.err(at, "kv.plan", format!("unknown plan {other:?}: expected \"free\" (100,000 reads and 1,000 writes, deletes and lists a day), \"paid\" (no daily limit) or \"custom\" (with writes_per_day = 500 and friends)"));
                return None;
            }
        };
        for (name, v) in custom {
            if plan != "custom" {
                self.err(
                    v.span().start,
                    format!("kv.{name}"),
                    format!("{name} needs plan = \"custom\" (the plan is {plan:?}): add plan = \"custom\" to [kv], or remove {name}"),
                );
                ok = false;
                continue;
            }
            let n = match v.get_ref() {
                Value::Integer(n) if *n >= 0 => *n as u64,
                other => {
                    self.err(
                        v.span().start,
                        format!("kv.{name}"),
                        format!(
                            "invalid {name} {}: expected a whole number of 0 or more, e.g. {name} = 1000",
                            show(other)
                        ),
                    );
                    ok = false;
                    continue;
                }
            };
            match name {
                "reads_per_day" => limits.reads = Some(n),
                "writes_per_day" => limits.writes = Some(n),
                "deletes_per_day" => limits.deletes = Some(n),
                _ => limits.lists = Some(n),
            }
        }
        Some((limits, ok))
    }
}

/// `HH:MM` or `HH:MM:SS` as time since midnight.
fn parse_time_of_day(s: &str) -> Option<Duration> {
    let parts: Vec<&str> = s.trim().split(':').collect();
    let num = |p: &str, max: u64| {
        (p.len() == 2)
            .then(|| p.parse::<u64>().ok())
            .flatten()
            .filter(|n| *n <= max)
    };
    let (h, m, sec) = match parts.as_slice() {
        [h, m] => (num(h, 23)?, num(m, 59)?, 0),
        [h, m, s] => (num(h, 23)?, num(m, 59)?, num(s, 59)?),
        _ => return None,
    };
    Some(Duration::from_secs(h * 3600 + m * 60 + sec))
}

#[cfg(test)]
mod tests {
    use super::parse_time_of_day;
    use std::time::Duration;

    #[test]
    fn times_of_day_parse_strictly() {
        assert_eq!(parse_time_of_day("00:00"), Some(Duration::ZERO));
        assert_eq!(
            parse_time_of_day("23:59:30"),
            Some(Duration::from_secs(86_370))
        );
        for bad in ["24:00", "7:00", "12:60", "12", "12:00:00:00", "ab:cd"] {
            assert_eq!(parse_time_of_day(bad), None, "{bad}");
        }
    }
}
