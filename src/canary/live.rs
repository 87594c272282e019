//! A run's faults on a canary: the shim checked (secret and script name) and given the
//! scenario's fault timeline before any load, polled for what it injected while the run
//! goes, and halted on every way out — `disarm` at the end, or a halt from `Drop` when the run
//! ends any other way. The schedule also expires by itself shortly after the planned end.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::task::JoinHandle;

use super::control::{ControlError, Schedule, Shim, ShimFault, ShimStats};
use crate::cron::FireCron;
use crate::history::OpKind;
use crate::mockkv::{FaultId, FaultSpec};
use crate::scenario::plan::{CanaryPlan, FaultPlan, Plan};
use crate::timeline::FaultSink;

/// How long each control request may take.
const CONTROL_TIMEOUT: Duration = Duration::from_secs(10);
/// How often the shim's counts are read during the run.
const POLL: Duration = Duration::from_secs(1);
/// How long past the planned end (and grace) a schedule outlives a kvchaos that died.
const EXPIRY_MARGIN: Duration = Duration::from_secs(60);

/// The shim's side of a run, armed with its schedule.
pub struct Armed {
    shim: Arc<tokio::sync::Mutex<Shim>>,
    /// To build a fresh connection where the run's runtime is gone (`Drop`).
    spec: (url::Url, CanaryPlan),
    stats: Arc<Mutex<ShimStats>>,
    /// The first control failure seen by the poller (a guard mismatch stops the run).
    failure: Arc<Mutex<Option<String>>>,
    faults: usize,
    poller: Option<JoinHandle<()>>,
    halted: bool,
    /// When the shim acknowledged the schedule (its time zero).
    pub armed_at: Instant,
}

impl Armed {
    /// Checks the shim answers as `canary.expect_script` with the secret, then installs the
    /// plan's faults. Nothing is sent to the Worker's own routes.
    pub async fn arm(plan: &Plan, canary: &CanaryPlan, url: &url::Url) -> Result<Armed, String> {
        let mut shim = connect(url, canary);
        let show = |e: ControlError| plan.redactor.redact(&e.to_string()).into_owned();
        shim.stats().await.map_err(|e| {
            format!(
                "the canary's shim refused the pre-flight check: {}",
                show(e)
            )
        })?;
        let schedule = schedule(plan, canary);
        shim.schedule(&schedule)
            .await
            .map_err(|e| format!("the canary's shim refused the fault schedule: {}", show(e)))?;
        let armed_at = Instant::now();
        let shim = Arc::new(tokio::sync::Mutex::new(shim));
        let stats = Arc::new(Mutex::new(ShimStats::default()));
        let failure = Arc::new(Mutex::new(None));
        let poller = tokio::spawn(poll(
            shim.clone(),
            stats.clone(),
            failure.clone(),
            plan.redactor.clone(),
        ));
        Ok(Armed {
            shim,
            spec: (url.clone(), canary.clone()),
            stats,
            failure,
            faults: plan.faults.len(),
            poller: Some(poller),
            halted: false,
            armed_at,
        })
    }

    /// Why the canary can no longer be trusted (another script answered, control failed).
    pub fn failure(&self) -> Option<String> {
        self.failure.lock().expect("not poisoned").clone()
    }

    /// Clears every fault on the shim now (sending stopped early, or the heal phase began).
    pub fn halt_soon(&mut self) {
        let shim = self.shim.clone();
        tokio::spawn(async move {
            let _ = shim.lock().await.halt().await;
        });
    }

    /// The shim's last counts, halted: call once at the end of the run.
    pub async fn disarm(mut self) -> Result<ShimStats, String> {
        if let Some(p) = self.poller.take() {
            p.abort();
        }
        let mut shim = self.shim.lock().await;
        let stats = shim.stats().await;
        let halted = shim.halt().await;
        drop(shim);
        self.halted = halted.is_ok();
        let stats = stats.map_err(|e| format!("cannot read the canary shim's counts: {e}"))?;
        halted.map_err(|e| format!("the canary shim did not confirm the halt: {e}"))?;
        *self.stats.lock().expect("not poisoned") = stats.clone();
        Ok(stats)
    }
}

impl Armed {
    /// Fires the Worker's scheduled handler through the shim.
    pub fn cron_firer(&self) -> Arc<dyn FireCron> {
        Arc::new(ShimCron(self.shim.clone()))
    }
}

/// The shim's `/__kvchaos/scheduled` route as a cron target.
struct ShimCron(Arc<tokio::sync::Mutex<Shim>>);

impl FireCron for ShimCron {
    fn fire<'a>(
        &'a self,
        cron: &'a str,
        scheduled_ms: u64,
    ) -> std::pin::Pin<Box<dyn Future<Output = (OpKind, Option<String>)> + Send + 'a>> {
        Box::pin(async move {
            match self.0.lock().await.scheduled(cron, scheduled_ms).await {
                Ok(run) if run.ok => (OpKind::Ok, None),
                Ok(run) => (
                    OpKind::Fail,
                    Some(format!(
                        "the scheduled handler threw: {}",
                        run.error.unwrap_or_default()
                    )),
                ),
                // No answer: the handler may or may not have run.
                Err(e) => (OpKind::Info, Some(e.to_string())),
            }
        })
    }
}

impl FaultSink for Armed {
    fn add(&self, index: usize, _spec: &FaultSpec) -> Result<FaultId, String> {
        if index < self.faults {
            // The shim runs the schedule on its own clock: nothing to send.
            Ok(index as FaultId)
        } else {
            Err("faults set by hand do not reach a canary's shim: put them in the scenario's [[faults]]".into())
        }
    }

    fn clear(&self, id: FaultId) -> Option<u64> {
        let index = usize::try_from(id).ok()?;
        Some(self.stats.lock().expect("not poisoned").hits(index))
    }
}

impl Drop for Armed {
    /// A run that ended without `disarm` (an error, a panic) still halts the shim.
    fn drop(&mut self) {
        if let Some(p) = self.poller.take() {
            p.abort();
        }
        if self.halted {
            return;
        }
        let (url, canary) = self.spec.clone();
        let _ = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async {
                let halt = async { connect(&url, &canary).halt().await };
                let _ = tokio::time::timeout(CONTROL_TIMEOUT, halt).await;
            });
        })
        .join();
    }
}

fn connect(url: &url::Url, canary: &CanaryPlan) -> Shim {
    let mut shim = Shim::new(
        url.clone(),
        canary.secret.clone(),
        canary.expect_script.clone(),
        CONTROL_TIMEOUT,
    );
    for (k, v) in &canary.headers {
        shim = shim.with_header(k, v);
    }
    shim
}

/// The plan's faults as a shim schedule, times from the moment the shim receives it.
pub fn schedule(plan: &Plan, canary: &CanaryPlan) -> Schedule {
    let total: Duration = plan.phases.iter().map(|p| p.duration).sum();
    let expiry = total + plan.grace + EXPIRY_MARGIN;
    Schedule {
        id: format!("{}-{:08x}", plan.name, plan.seed as u32),
        faults: plan.faults.iter().map(shim_fault).collect(),
        expires_in_ms: u64::try_from(expiry.as_millis()).unwrap_or(u64::MAX),
        max_writes: canary.max_kv_writes,
    }
}

fn shim_fault(f: &FaultPlan) -> ShimFault {
    let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
    let s = &f.spec;
    ShimFault {
        kind: s.kind.as_str().to_owned(),
        ops: s.ops.iter().map(|o| o.as_str().to_owned()).collect(),
        prefix: s.prefix.clone(),
        namespace: s.namespace.clone(),
        p: s.p,
        status: s.status,
        latency_ms: s.latency_ms,
        jitter_ms: s.jitter_ms,
        lag_ms: s.lag_ms,
        at_ms: ms(f.at) + s.after_ms.unwrap_or(0),
        until_ms: match (f.until, s.for_ms) {
            (Some(u), _) => Some(ms(u)),
            (None, Some(d)) => Some(ms(f.at) + s.after_ms.unwrap_or(0) + d),
            (None, None) => None,
        },
    }
}

async fn poll(
    shim: Arc<tokio::sync::Mutex<Shim>>,
    stats: Arc<Mutex<ShimStats>>,
    failure: Arc<Mutex<Option<String>>>,
    redactor: crate::redact::Redactor,
) {
    let mut tick = tokio::time::interval(POLL);
    loop {
        tick.tick().await;
        let r = shim.lock().await.stats().await;
        match r {
            Ok(s) => *stats.lock().expect("not poisoned") = s,
            Err(e) => {
                let mut f = failure.lock().expect("not poisoned");
                if f.is_none() {
                    *f = Some(redactor.redact(&e.to_string()).into_owned());
                }
            }
        }
    }
}
