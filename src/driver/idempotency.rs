//! The idempotency driver: `clients` clients each take fresh keys one after another and send
//! each key's operation `duplicates` times at once (processes `idem-<i>-<copy>`), then
//! `retries` more times one after another after `retry_after`; sending stops when the heal
//! phase starts. Then one read of every key's effect count (processes `idem-final-<n>`).
//!
//! History values follow [`crate::check::idempotency`]: apply invoke `{key, copy, attempt}`,
//! ok `{key, duplicate}`; effects invoke `{key}`, ok `{key, effects}` (0 for an empty answer).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use serde_json::Value;
use tokio_util::sync::CancellationToken;

use super::{Client, Ctx, between, obj, pause};
use crate::history::OpKind;
use crate::scenario::plan::{DriverRequest, IdempotencyPlan};

/// Processes reading effect counts at once at the end.
const READERS: usize = 4;

/// The keys sent so far, for the final reads.
#[derive(Debug, Default)]
pub struct Keys {
    next: AtomicU64,
    // std Mutex: one push or clone at a time, never held across `.await`.
    sent: Mutex<Vec<String>>,
}

impl Keys {
    fn take(&self, prefix: &str) -> String {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        let key = format!("{prefix}{n}");
        let mut s = self.sent.lock().unwrap_or_else(PoisonError::into_inner);
        s.push(key.clone());
        key
    }

    fn all(&self) -> Vec<String> {
        self.sent
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// Client `i`: takes new keys until `stop` (the heal phase); a key's retries still go out
/// after it, unless `end` (the end of the run) fires first.
pub async fn client(
    i: usize,
    plan: Arc<IdempotencyPlan>,
    ctx: Ctx,
    prefix: Arc<str>,
    keys: Arc<Keys>,
    (stop, end): (CancellationToken, CancellationToken),
) {
    let mut copies: Vec<Client> = (0..plan.duplicates)
        .map(|c| Client::new(&ctx, &format!("idem-{i}-{c}")))
        .collect();
    let first = plan.first_timeout.map(|t| DriverRequest {
        timeout: t,
        ..plan.apply.clone()
    });
    while !stop.is_cancelled() {
        let key = keys.take(&prefix);
        let sends = copies.iter_mut().enumerate().map(|(c, client)| {
            let req = match (&first, c) {
                (Some(f), 0) => f,
                _ => &plan.apply,
            };
            let process = format!("idem-{i}-{c}");
            let key = &key;
            async move { send(client, req, &process, key, c, 0).await }
        });
        futures_util::future::join_all(sends).await;
        for attempt in 1..=plan.retries {
            let wait = between(copies[0].rng(), plan.retry_after);
            // A retry is part of the key's story: it is sent even once the heal began.
            if !pause(wait, &end).await {
                return;
            }
            send(
                &mut copies[0],
                &plan.apply,
                &format!("idem-{i}-0"),
                &key,
                0,
                attempt,
            )
            .await;
        }
        let wait = between(copies[0].rng(), plan.pause);
        pause(wait, &stop).await;
    }
}

async fn send(
    c: &mut Client,
    req: &DriverRequest,
    process: &str,
    key: &str,
    copy: usize,
    attempt: usize,
) {
    let args = obj([
        ("key", Value::from(key)),
        ("copy", Value::from(copy)),
        ("attempt", Value::from(attempt)),
    ]);
    c.ctx().record(
        process,
        OpKind::Invoke,
        "apply",
        Value::Object(args.clone()),
    );
    let a = c.call(req, &args).await;
    let mut done = obj([("key", Value::from(key))]);
    if a.kind == OpKind::Ok {
        let dup = a.reads.get("duplicate").cloned().unwrap_or(Value::Null);
        done.insert("duplicate".to_owned(), dup);
        c.ctx()
            .record(process, OpKind::Ok, "apply", Value::Object(done));
    } else {
        c.ctx().record(process, a.kind, "apply", a.completion(done));
    }
}

/// Reads every key's effect count once, [`READERS`] at a time.
pub async fn final_reads(plan: &IdempotencyPlan, ctx: &Ctx, keys: &Keys) {
    let all = keys.all();
    let per = all.len().div_ceil(READERS).max(1);
    let reads = all.chunks(per).enumerate().map(|(n, chunk)| async move {
        let process = format!("idem-final-{n}");
        let mut c = Client::new(ctx, &process);
        for key in chunk {
            read_one(plan, &mut c, &process, key).await;
        }
    });
    futures_util::future::join_all(reads).await;
}

async fn read_one(plan: &IdempotencyPlan, c: &mut Client, process: &str, key: &str) {
    let args = obj([("key", Value::from(key))]);
    c.ctx().record(
        process,
        OpKind::Invoke,
        "effects",
        Value::Object(args.clone()),
    );
    let a = c.call(&plan.effects, &args).await;
    if a.kind != OpKind::Ok {
        c.ctx()
            .record(process, a.kind, "effects", a.completion(args));
        return;
    }
    let n = if a.empty {
        Value::from(0)
    } else {
        a.read("effects").clone()
    };
    let mut done = args;
    done.insert("effects".to_owned(), n);
    c.ctx()
        .record(process, OpKind::Ok, "effects", Value::Object(done));
}
