//! The lock driver: `clients` processes (`lock-0`, ...) each loop acquire → hold → release
//! over the scenario's lock names, then one final read of every name (process `lock-final`).
//!
//! History values follow [`crate::check::lock`]: acquire invoke `{lock, holder, ttl_ms}`, ok
//! `{lock, holder, token, expires_at}`; release invoke and ok `{lock, holder, token}`; read
//! invoke `{lock}`, ok `{lock, holder, expires_at}` (`holder` null when the lock is free).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use rand::Rng;
use serde_json::{Map, Value};
use tokio_util::sync::CancellationToken;

use super::{Client, Ctx, between, obj, pause};
use crate::history::OpKind;
use crate::scenario::plan::LockPlan;

/// The values the last grant of each lock extracted (`[lock.acquire] extract`), for the final
/// read of that lock.
#[derive(Debug, Default)]
pub struct LastGrants {
    // std Mutex: one insert or clone at a time, never held across `.await`.
    inner: Mutex<HashMap<String, Map<String, Value>>>,
}

impl LastGrants {
    fn set(&self, lock: &str, values: &Map<String, Value>) {
        if !values.is_empty() {
            let mut m = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
            m.insert(lock.to_owned(), values.clone());
        }
    }

    fn get(&self, lock: &str) -> Map<String, Value> {
        let m = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        m.get(lock).cloned().unwrap_or_default()
    }
}

/// Runs client `i` until `stop`. A client holding a lock when `stop` fires releases it
/// before returning, so that a stopped run leaves no lock behind. With `overrun`, a share of
/// holds last past the lease (like a process paused for GC) and then release with the old
/// token, which a correct Worker refuses.
pub async fn client(
    i: usize,
    plan: Arc<LockPlan>,
    ctx: Ctx,
    last: Arc<LastGrants>,
    stop: CancellationToken,
) {
    let process = format!("lock-{i}");
    let holder = format!("kvchaos-{process}");
    let mut c = Client::new(&ctx, &process);
    let ttl_ms = plan.ttl.as_millis() as u64;
    while !stop.is_cancelled() {
        let k = c.rng().random_range(0..plan.names.len());
        let lock = Value::from(plan.names[k].clone());
        let args = obj([
            ("lock", lock.clone()),
            ("holder", Value::from(holder.clone())),
            ("ttl_ms", Value::from(ttl_ms)),
        ]);
        ctx.record(
            &process,
            OpKind::Invoke,
            "acquire",
            Value::Object(args.clone()),
        );
        let a = c.call(&plan.acquire, &args).await;
        let mut done = obj([
            ("lock", lock.clone()),
            ("holder", Value::from(holder.clone())),
        ]);
        if a.kind == OpKind::Ok && a.empty {
            // A 2xx the scenario calls empty grants nothing: the lock was not acquired.
            done.insert("reason".to_owned(), Value::from("empty answer"));
            ctx.record(&process, OpKind::Fail, "acquire", Value::Object(done));
        } else {
            ctx.record(&process, a.kind, "acquire", a.completion(done));
        }
        if a.kind == OpKind::Ok && !a.empty {
            last.set(&plan.names[k], &a.extracted);
            let hold = match plan.overrun {
                Some((share, range)) if c.rng().random_bool(share) => between(c.rng(), range),
                _ => between(c.rng(), plan.hold),
            };
            pause(hold, &stop).await;
            let token = a.read("token").clone();
            let args = obj([
                ("lock", lock.clone()),
                ("holder", Value::from(holder.clone())),
                ("token", token.clone()),
            ]);
            ctx.record(
                &process,
                OpKind::Invoke,
                "release",
                Value::Object(args.clone()),
            );
            // The lease's extracted values (a lease id, an etag) go with its release only.
            let mut vars = a.extracted.clone();
            vars.extend(args.clone());
            let r = c.call(&plan.release, &vars).await;
            ctx.record(&process, r.kind, "release", r.completion(args));
        }
        let wait = between(c.rng(), plan.pause);
        pause(wait, &stop).await;
    }
}

/// Reads every lock name once (process `lock-final`): what the locks look like at the end.
pub async fn final_reads(plan: &LockPlan, ctx: &Ctx, last: &LastGrants) {
    let Some(read) = &plan.read else { return };
    let process = "lock-final";
    let mut c = Client::new(ctx, process);
    for name in &plan.names {
        let args = obj([("lock", Value::from(name.clone()))]);
        ctx.record(process, OpKind::Invoke, "read", Value::Object(args.clone()));
        let mut vars = last.get(name);
        vars.extend(args.clone());
        let a = c.call(read, &vars).await;
        let mut done = args.clone();
        if a.kind == OpKind::Ok {
            done.insert("holder".to_owned(), a.read("holder").clone());
            done.insert("expires_at".to_owned(), a.read("expires_at").clone());
            if let Some(t) = a.reads.get("token") {
                done.insert("token".to_owned(), t.clone());
            }
            ctx.record(process, OpKind::Ok, "read", Value::Object(done));
        } else {
            ctx.record(process, a.kind, "read", a.completion(done));
        }
    }
}
