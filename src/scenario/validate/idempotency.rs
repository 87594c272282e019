//! Validation of `[idempotency]`: how many clients, how each key is sent (concurrent copies,
//! retries after a delay or after a timeout), and the two requests — the operation carrying
//! the key and the read of a key's effect count. Also the small value checks `[ratelimit]`
//! shares (counts, waits, ranges, status lists).

use std::time::Duration;

use toml::{Spanned, Value};

use super::super::plan::{DriverRequest, IdempotencyPlan};
use super::super::raw::{RawDriverRequest, RawIdempotency, RawValue};
use super::drivers::OpSpec;
use super::{Validator, show};

/// Longest wait a driver may be told to do.
const MAX_WAIT: Duration = Duration::from_secs(3600);
/// Most clients, copies or retries.
const MAX_COUNT: i64 = 256;

const IDEM_APPLY: OpSpec = OpSpec {
    name: "idempotency.apply",
    vars: &["key", "copy", "attempt"],
    reads: &[("duplicate", None)],
    done: false,
    every: false,
    empty: &[],
};
const IDEM_EFFECTS: OpSpec = OpSpec {
    name: "idempotency.effects",
    vars: &["key"],
    reads: &[("effects", Some("/effects"))],
    done: false,
    every: false,
    // A 404 is a key the Worker never saw: no effect.
    empty: &[404],
};

impl Validator<'_> {
    pub(super) fn idempotency(
        &mut self,
        t: Option<&Spanned<RawIdempotency>>,
    ) -> Option<Option<IdempotencyPlan>> {
        let Some(table) = t else { return Some(None) };
        let at = table.span().start;
        let r = table.get_ref();
        let before = self.errors.len();
        let clients = self.small_count(r.clients.as_ref(), "idempotency.clients", 2, 1);
        let duplicates = self.small_count(r.duplicates.as_ref(), "idempotency.duplicates", 2, 1);
        let retries = self.small_count(r.retries.as_ref(), "idempotency.retries", 1, 0);
        let retry_after = self.range(
            r.retry_after.as_ref(),
            "idempotency.retry_after",
            (Duration::from_millis(100), Duration::from_millis(300)),
        );
        let pause = self.range(
            r.pause.as_ref(),
            "idempotency.pause",
            (Duration::from_millis(20), Duration::from_millis(100)),
        );
        let first_timeout = match &r.first_timeout {
            None => Some(None),
            Some(v) => self
                .short_wait(v, "idempotency.first_timeout", "first_timeout = \"20ms\"")
                .map(Some),
        };
        let apply = self.needed(
            r.apply.as_ref(),
            at,
            &IDEM_APPLY,
            "[idempotency.apply] with method = \"POST\" and path = \"/idem/{{key}}\"",
        );
        let effects = self.needed(
            r.effects.as_ref(),
            at,
            &IDEM_EFFECTS,
            "[idempotency.effects] with path = \"/idem/{{key}}\" and effects = \"/effects\"",
        );
        if let (Some(1), Some(0)) = (duplicates, retries) {
            self.err(at, "idempotency", "each key is sent once (duplicates = 1, retries = 0): nothing would test idempotency; set duplicates = 2 or retries = 1");
        }
        if self.errors.len() > before {
            return None;
        }
        Some(Some(IdempotencyPlan {
            clients: clients?,
            duplicates: duplicates?,
            retries: retries?,
            retry_after: retry_after?,
            first_timeout: first_timeout?,
            pause: pause?,
            apply: apply?,
            effects: effects?,
        }))
    }

    /// A required driver request table.
    pub(super) fn needed(
        &mut self,
        r: Option<&Spanned<RawDriverRequest>>,
        table_at: usize,
        spec: &OpSpec,
        fix: &str,
    ) -> Option<DriverRequest> {
        match r {
            Some(r) => self.driver_request(r, spec, &[]),
            None => {
                self.err(
                    table_at,
                    spec.name,
                    format!("missing {}: add {fix}", spec.name),
                );
                None
            }
        }
    }

    /// A whole number from `lo` to [`MAX_COUNT`], `default` when absent.
    pub(super) fn small_count(
        &mut self,
        v: Option<&RawValue>,
        field: &str,
        default: usize,
        lo: i64,
    ) -> Option<usize> {
        let Some(v) = v else { return Some(default) };
        let name = field.rsplit('.').next().unwrap_or(field);
        self.int_in(
            v,
            field,
            name,
            lo,
            MAX_COUNT,
            &format!("{name} = {default}"),
        )
    }

    /// A duration above zero and at most an hour.
    pub(super) fn short_wait(
        &mut self,
        v: &RawValue,
        field: &str,
        example: &str,
    ) -> Option<Duration> {
        let d = self.duration(v, field, example)?;
        let d = self.positive(v, field, d, example)?;
        self.at_most(v, field, d, MAX_WAIT, "1h")
    }

    /// A list of HTTP statuses.
    pub(super) fn status_list(
        &mut self,
        list: &Spanned<Vec<RawValue>>,
        field: &str,
        example: &str,
    ) -> Option<Vec<u16>> {
        if list.get_ref().is_empty() {
            self.err(
                list.span().start,
                field,
                format!("the list is empty: give at least one status, e.g. {example}"),
            );
            return None;
        }
        let mut out = Vec::new();
        for v in list.get_ref() {
            match v.get_ref() {
                Value::Integer(s) if (100..=599).contains(s) => out.push(*s as u16),
                other => {
                    self.err(
                        v.span().start,
                        field,
                        format!(
                            "invalid status {}: expected an HTTP status from 100 to 599, e.g. {example}",
                            show(other)
                        ),
                    );
                    return None;
                }
            }
        }
        Some(out)
    }
}
