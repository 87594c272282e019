//! The cron status probe: reads the Worker's own record of its last cron run every `every`
//! (process `cron-status`, f `status`, ok `{last_run, runs}`), so the cron check can see the
//! runs advance — also on a deployed Worker whose crons kvchaos cannot fire.

use serde_json::{Map, Value};
use tokio_util::sync::CancellationToken;

use super::{Client, Ctx, pause};
use crate::history::OpKind;
use crate::scenario::plan::CronStatusPlan;

/// Probes until `stop`.
pub async fn probe(plan: CronStatusPlan, ctx: Ctx, stop: CancellationToken) {
    let process = "cron-status";
    let mut c = Client::new(&ctx, process);
    let vars = Map::new();
    while !stop.is_cancelled() {
        ctx.record(process, OpKind::Invoke, "status", Value::Object(Map::new()));
        let a = c.call(&plan.request, &vars).await;
        let mut done = Map::new();
        if a.kind == OpKind::Ok {
            done.insert("last_run".to_owned(), a.read("last_run").clone());
            if let Some(r) = a.reads.get("runs") {
                done.insert("runs".to_owned(), r.clone());
            }
            ctx.record(process, OpKind::Ok, "status", Value::Object(done));
        } else {
            ctx.record(process, a.kind, "status", a.completion(done));
        }
        pause(plan.every, &stop).await;
    }
}
