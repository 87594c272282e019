//! Validation of `[queue]`: producers and consumers, their requests, the delivery mode, and
//! lease, poll and drain timing.

use std::time::Duration;

use toml::{Spanned, Value};

use super::request::extracted_names;
use super::{MAX_LEASE, OpSpec};
use crate::check::queue::QueueMode;
use crate::scenario::plan::QueuePlan;
use crate::scenario::raw::{RawQueue, RawValue};
use crate::scenario::validate::{Validator, show};

/// Highest enqueue rate, tasks per second.
const MAX_QUEUE_RATE: f64 = 10_000.0;

const QUEUE_ENQUEUE: OpSpec = OpSpec {
    name: "queue.enqueue",
    vars: &["id"],
    reads: &[("duplicate", None)],
    done: false,
    every: false,
    empty: &[],
};
const QUEUE_CLAIM: OpSpec = OpSpec {
    name: "queue.claim",
    vars: &["consumer", "lease_ms"],
    reads: &[("id", Some("/id")), ("lease_until", Some("/lease_until"))],
    done: false,
    every: false,
    empty: &[204],
};
const QUEUE_COMPLETE: OpSpec = OpSpec {
    name: "queue.complete",
    vars: &["id", "consumer"],
    reads: &[],
    done: false,
    every: false,
    empty: &[],
};
const QUEUE_RESULT: OpSpec = OpSpec {
    name: "queue.result",
    vars: &["id"],
    reads: &[("status", Some("/status")), ("result", None)],
    done: true,
    every: false,
    // A 404 is the task gone (`missing`), as the queue check reads it.
    empty: &[404],
};

impl Validator<'_> {
    /// `[queue]`: producers, consumers, their requests and timing; `None` when invalid.
    pub(in crate::scenario::validate) fn queue(
        &mut self,
        q: Option<&Spanned<RawQueue>>,
    ) -> Option<Option<QueuePlan>> {
        let Some(table) = q else { return Some(None) };
        let at = table.span().start;
        let q = table.get_ref();
        let before = self.errors.len();
        let mode = self.queue_mode(q.mode.as_ref());
        let producers = self.count(q.producers.as_ref(), "queue.producers", 1, 1)?;
        let rate = self.queue_rate(q.rate.as_ref());
        let consumers = self.count(q.consumers.as_ref(), "queue.consumers", 0, 0)?;
        let times = self.queue_times(q);
        let enqueue = self.required(q.enqueue.as_ref(), at, &QUEUE_ENQUEUE, &[], "[queue.enqueue] with method = \"POST\", path = \"/queue/enqueue\" and json = { id = \"{{id}}\" }");
        let result = self.required(
            q.result.as_ref(),
            at,
            &QUEUE_RESULT,
            &[],
            "[queue.result] with path = \"/queue/result/{{id}}\" and status = \"/status\"",
        );
        let claim = q
            .claim
            .as_ref()
            .map(|r| self.driver_request(r, &QUEUE_CLAIM, &[]));
        // What the claim extracts, that task's complete may use.
        let extra = extracted_names(claim.as_ref().and_then(Option::as_ref));
        let complete = q
            .complete
            .as_ref()
            .map(|r| self.driver_request(r, &QUEUE_COMPLETE, &extra));
        self.consumers_have_requests(consumers, q, at);
        let done = match q.result.as_ref().and_then(|r| r.get_ref().done.as_ref()) {
            None => vec!["done".to_owned()],
            Some(d) => d.get_ref().iter().map(|s| s.get_ref().clone()).collect(),
        };
        if self.errors.len() > before {
            return None;
        }
        let (claim, complete) = match (claim, complete) {
            (Some(c), Some(d)) => (Some(c?), Some(d?)),
            _ => (None, None),
        };
        Some(Some(QueuePlan {
            mode: mode?,
            producers,
            rate: rate?,
            consumers,
            lease: times.lease?,
            poll: times.poll?,
            max_drain: times.max_drain?,
            max_stall: times.max_stall?,
            drain_every: times.drain_every?,
            enqueue: enqueue?,
            claim,
            complete,
            result: result?,
            done,
        }))
    }

    /// The queue's lease, poll and drain intervals and bounds, each `None` when invalid.
    fn queue_times(&mut self, q: &RawQueue) -> QueueTimes {
        let lease = match &q.lease {
            None => Some(Duration::from_secs(5)),
            Some(v) => self
                .wait(v, "queue.lease", "lease = \"5s\"", true)
                .and_then(|d| self.at_most(v, "queue.lease", d, MAX_LEASE, "24h")),
        };
        let poll = match &q.poll {
            None => Some(Duration::from_millis(100)),
            Some(v) => self.wait(v, "queue.poll", "poll = \"100ms\"", true),
        };
        let drain_every = match &q.drain_every {
            None => Some(Duration::from_millis(500)),
            Some(v) => self.wait(v, "queue.drain_every", "drain_every = \"500ms\"", true),
        };
        let max_drain = match &q.max_drain {
            None => Some(None),
            Some(v) => self
                .wait(v, "queue.max_drain", "max_drain = \"10s\"", true)
                .map(Some),
        };
        let max_stall = self.bound(
            q.max_stall.as_ref(),
            "queue.max_stall",
            "max_stall = \"5s\"",
        );
        QueueTimes {
            lease,
            poll,
            drain_every,
            max_drain,
            max_stall,
        }
    }

    /// `mode = "at-least-once" | "exactly-once-effect"`.
    fn queue_mode(&mut self, m: Option<&Spanned<String>>) -> Option<QueueMode> {
        let Some(m) = m else {
            return Some(QueueMode::AtLeastOnce);
        };
        match m.get_ref().as_str() {
            "at-least-once" => Some(QueueMode::AtLeastOnce),
            "exactly-once-effect" => Some(QueueMode::ExactlyOnceEffect),
            other => {
                self.err(m.span().start, "queue.mode", format!("unknown mode {other:?}: expected \"at-least-once\" (a task may be processed twice) or \"exactly-once-effect\" (a second completion is an anomaly)"));
                None
            }
        }
    }

    /// `rate = 5`: enqueues per second for all producers together.
    fn queue_rate(&mut self, v: Option<&RawValue>) -> Option<f64> {
        let Some(v) = v else { return Some(5.0) };
        let n = match v.get_ref() {
            Value::Integer(i) => Some(*i as f64),
            Value::Float(f) => Some(*f),
            _ => None,
        };
        match n {
            Some(n) if n > 0.0 && n <= MAX_QUEUE_RATE && n.is_finite() => Some(n),
            _ => {
                self.err(v.span().start, "queue.rate", format!("invalid rate {}: expected enqueues per second for all producers together, above 0 and at most 10000, e.g. rate = 5", show(v.get_ref())));
                None
            }
        }
    }

    /// Consumers need both `[queue.claim]` and `[queue.complete]`; with none, neither applies.
    fn consumers_have_requests(&mut self, consumers: usize, q: &RawQueue, at: usize) {
        match (consumers, &q.claim, &q.complete) {
            (0, None, None) => {}
            (0, Some(c), _) | (0, None, Some(c)) => self.err(
                c.span().start,
                "queue.consumers",
                "[queue.claim] and [queue.complete] are used by consumers, but consumers = 0 (the Worker processes tasks itself): set consumers = 2, or remove them",
            ),
            (_, Some(_), Some(_)) => {}
            (_, _, _) => self.err(
                at,
                "queue",
                "consumers need both [queue.claim] (path = \"/queue/claim\") and [queue.complete] (path = \"/queue/complete\"); with consumers = 0 the Worker's own cron processes tasks",
            ),
        }
    }
}

/// A queue's timing fields as validated; `None` where one is invalid (its error is recorded).
struct QueueTimes {
    lease: Option<Duration>,
    poll: Option<Duration>,
    drain_every: Option<Duration>,
    max_drain: Option<Option<Duration>>,
    max_stall: Option<Option<Duration>>,
}
