//! The rate limiter driver: for each key, `clients` clients (processes `rl-<key>-<n>`)
//! together hit the limited call `rate` times a second until the end of the run, and record
//! each answer as admitted or refused.
//!
//! History values follow [`crate::check::ratelimit`]: hit invoke `{key}`; ok `{key,
//! admitted: true}` for a success, ok `{key, admitted: false, http}` for a status the
//! scenario calls refused; otherwise `fail` / `info` as the driver classified it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio_util::sync::CancellationToken;

use super::{Client, Ctx, obj};
use crate::history::OpKind;
use crate::scenario::plan::RateLimitPlan;

/// Client `c` of key `k` (the run's `prefix` plus `plan.keys[k]`): hits until `stop`, every
/// `clients / rate` seconds; a slow answer delays only this client, which then resumes its
/// pace without catching up.
pub async fn client(
    k: usize,
    c: usize,
    plan: Arc<RateLimitPlan>,
    ctx: Ctx,
    prefix: Arc<str>,
    stop: CancellationToken,
) {
    let process = format!("rl-{k}-{c}");
    let key = format!("{prefix}{}", plan.keys[k]);
    let mut client = Client::new(&ctx, &process);
    let every = Duration::from_secs_f64(plan.clients as f64 / plan.rate);
    let mut due = Instant::now() + Duration::from_secs_f64(c as f64 / plan.rate);
    let vars = obj([
        ("key", Value::from(key.clone())),
        ("limit", Value::from(plan.limit)),
        ("window_ms", Value::from(plan.window.as_millis() as u64)),
    ]);
    loop {
        tokio::select! {
            _ = tokio::time::sleep_until(due.into()) => {}
            _ = stop.cancelled() => return,
        }
        let args = obj([("key", Value::from(key.clone()))]);
        ctx.record(&process, OpKind::Invoke, "hit", Value::Object(args.clone()));
        let a = client.call(&plan.hit, &vars).await;
        let mut done = args;
        match a.status {
            Some(s) if plan.refused.contains(&s) => {
                done.insert("admitted".to_owned(), Value::Bool(false));
                done.insert("http".to_owned(), Value::from(s));
                ctx.record(&process, OpKind::Ok, "hit", Value::Object(done));
            }
            _ if a.kind == OpKind::Ok => {
                done.insert("admitted".to_owned(), Value::Bool(true));
                ctx.record(&process, OpKind::Ok, "hit", Value::Object(done));
            }
            _ => ctx.record(&process, a.kind, "hit", a.completion(done)),
        }
        due += every;
        let now = Instant::now();
        if due < now {
            due = now;
        }
    }
}
