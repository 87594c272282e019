//! The queue driver: producers enqueue tasks with unique ids at a steady rate until the heal
//! phase; consumers (when the scenario has them; otherwise the Worker's own cron does the work)
//! claim and complete tasks until the end; a drain reads every task's result, in rounds from
//! the start of the heal phase, and once more at the end.
//!
//! History values follow [`crate::check::queue`]: enqueue invoke `{id}`, ok `{id, duplicate}`;
//! claim invoke `{consumer, lease_ms}`, ok `{id, lease_until}` (`id` null when nothing was
//! due); complete invoke and ok `{id, consumer}`; result (processes `drain-*`) invoke `{id}`,
//! ok `{id, status, result}` with `status` `done` for the scenario's done values and `missing`
//! for an empty answer (the task is unknown).

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio_util::sync::CancellationToken;

use super::{Client, Ctx, obj, pause};
use crate::history::OpKind;
use crate::scenario::plan::QueuePlan;

/// Drain processes reading results at once.
const DRAIN_PROCESSES: usize = 4;

/// Task ids the drain still has to see done.
#[derive(Debug, Default)]
pub struct Book {
    // std Mutex: a few set operations at a time, never held across `.await`.
    inner: Mutex<BookState>,
}

#[derive(Debug, Default)]
struct BookState {
    /// Enqueues that may have created a task (`ok` or `info`), in order.
    created: Vec<String>,
    /// Ids the drain has read as done.
    done: BTreeSet<String>,
}

impl Book {
    fn lock(&self) -> std::sync::MutexGuard<'_, BookState> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn created(&self, id: String) {
        self.lock().created.push(id);
    }

    fn done(&self, id: &str) {
        self.lock().done.insert(id.to_owned());
    }

    /// Ids not yet read as done, in enqueue order.
    pub fn outstanding(&self) -> Vec<String> {
        let s = self.lock();
        s.created
            .iter()
            .filter(|id| !s.done.contains(*id))
            .cloned()
            .collect()
    }
}

/// A unique id prefix for this run's tasks, so runs against one deployed Worker never collide.
pub fn id_prefix() -> String {
    format!("kvchaos-{:08x}-", rand::random::<u32>())
}

/// Producer `i` of `plan.producers`: enqueues every `producers / rate` seconds (the
/// producers interleave) until `stop`. A slow answer delays only this producer's next
/// enqueue.
pub async fn producer(
    i: usize,
    plan: Arc<QueuePlan>,
    ctx: Ctx,
    prefix: Arc<str>,
    book: Arc<Book>,
    stop: CancellationToken,
) {
    let process = format!("producer-{i}");
    let mut c = Client::new(&ctx, &process);
    let every = Duration::from_secs_f64(plan.producers as f64 / plan.rate);
    let start = Instant::now() + Duration::from_secs_f64(i as f64 / plan.rate);
    for n in 0u64.. {
        let due = start + every.mul_f64(n as f64);
        tokio::select! {
            _ = tokio::time::sleep_until(due.into()) => {}
            _ = stop.cancelled() => return,
        }
        let id = format!("{prefix}{}", n * plan.producers as u64 + i as u64);
        let args = obj([("id", Value::from(id.clone()))]);
        ctx.record(
            &process,
            OpKind::Invoke,
            "enqueue",
            Value::Object(args.clone()),
        );
        let a = c.call(&plan.enqueue, &args).await;
        if a.kind != OpKind::Fail {
            book.created(id);
        }
        let mut done = args;
        if a.kind == OpKind::Ok {
            let dup = a
                .reads
                .get("duplicate")
                .cloned()
                .unwrap_or(Value::Bool(false));
            done.insert("duplicate".to_owned(), dup);
            ctx.record(&process, OpKind::Ok, "enqueue", Value::Object(done));
        } else {
            ctx.record(&process, a.kind, "enqueue", a.completion(done));
        }
    }
}

/// Consumer `i`: claim → complete until `stop`, waiting `poll` after a claim that found
/// nothing or failed.
pub async fn consumer(i: usize, plan: Arc<QueuePlan>, ctx: Ctx, stop: CancellationToken) {
    let (Some(claim), Some(complete)) = (&plan.claim, &plan.complete) else {
        return;
    };
    let process = format!("consumer-{i}");
    let consumer = format!("kvchaos-{process}");
    let mut c = Client::new(&ctx, &process);
    let lease_ms = plan.lease.as_millis() as u64;
    while !stop.is_cancelled() {
        let args = obj([
            ("consumer", Value::from(consumer.clone())),
            ("lease_ms", Value::from(lease_ms)),
        ]);
        ctx.record(
            &process,
            OpKind::Invoke,
            "claim",
            Value::Object(args.clone()),
        );
        let a = c.call(claim, &args).await;
        let id = match a.kind {
            OpKind::Ok => {
                let id = if a.empty { &Value::Null } else { a.read("id") };
                let done = obj([
                    ("id", id.clone()),
                    ("lease_until", a.read("lease_until").clone()),
                ]);
                ctx.record(&process, OpKind::Ok, "claim", Value::Object(done));
                id.clone()
            }
            kind => {
                ctx.record(&process, kind, "claim", a.completion(args));
                Value::Null
            }
        };
        if id.is_null() {
            pause(plan.poll, &stop).await;
            continue;
        }
        let args = obj([("id", id), ("consumer", Value::from(consumer.clone()))]);
        ctx.record(
            &process,
            OpKind::Invoke,
            "complete",
            Value::Object(args.clone()),
        );
        // The claim's extracted values (a receipt, an etag) go with this task's complete.
        let mut vars = a.extracted.clone();
        vars.extend(args.clone());
        let a = c.call(complete, &vars).await;
        ctx.record(&process, a.kind, "complete", a.completion(args));
    }
}

/// Reads outstanding results in rounds every `drain_every` until `stop`.
pub async fn drain(plan: Arc<QueuePlan>, ctx: Ctx, book: Arc<Book>, stop: CancellationToken) {
    let mut clients: Vec<Client> = (0..DRAIN_PROCESSES)
        .map(|i| Client::new(&ctx, &format!("drain-{i}")))
        .collect();
    while !stop.is_cancelled() {
        round(&plan, &mut clients, &book, Some(&stop)).await;
        pause(plan.drain_every, &stop).await;
    }
}

/// One last round over every outstanding task, after the drivers stopped.
pub async fn final_round(plan: &QueuePlan, ctx: &Ctx, book: &Book) {
    let mut clients: Vec<Client> = (0..DRAIN_PROCESSES)
        .map(|i| Client::new(ctx, &format!("drain-{i}")))
        .collect();
    round(plan, &mut clients, book, None).await;
}

/// Reads each outstanding task once, `clients.len()` at a time.
async fn round(
    plan: &QueuePlan,
    clients: &mut [Client],
    book: &Book,
    stop: Option<&CancellationToken>,
) {
    let ids = book.outstanding();
    let per = ids.len().div_ceil(clients.len().max(1)).max(1);
    let reads =
        clients
            .iter_mut()
            .enumerate()
            .zip(ids.chunks(per))
            .map(|((i, c), chunk)| async move {
                let process = format!("drain-{i}");
                for id in chunk {
                    if stop.is_some_and(CancellationToken::is_cancelled) {
                        return;
                    }
                    read_one(plan, c, &process, id, book).await;
                }
            });
    futures_util::future::join_all(reads).await;
}

async fn read_one(plan: &QueuePlan, c: &mut Client, process: &str, id: &str, book: &Book) {
    let args = obj([("id", Value::from(id))]);
    c.ctx().record(
        process,
        OpKind::Invoke,
        "result",
        Value::Object(args.clone()),
    );
    let a = c.call(&plan.result, &args).await;
    if a.kind != OpKind::Ok {
        c.ctx()
            .record(process, a.kind, "result", a.completion(args));
        return;
    }
    let status = if a.empty {
        Value::from("missing")
    } else {
        match a.read("status") {
            Value::String(s) if plan.done.contains(s) => Value::from("done"),
            other => other.clone(),
        }
    };
    if status == "done" {
        book.done(id);
    }
    let mut done = args;
    done.insert("status".to_owned(), status);
    done.insert("result".to_owned(), a.read("result").clone());
    c.ctx()
        .record(process, OpKind::Ok, "result", Value::Object(done));
}
