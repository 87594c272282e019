//! `kvchaos watch`: notice when a deployed Worker's automation stops — a cron that did not
//! run, input gone to zero, errors up — and say so in Slack, Discord or a JSON webhook.
//!
//! One evaluation ([`round`]) is: probe every check ([`probe`]), judge each observation
//! ([`judge`]), apply alert hygiene ([`alert`], pure: plan, previous state, observations and
//! `now` in; next state and notices out), deliver the notices ([`notify`]) and hand back the
//! undelivered ones so they are due again. `now` is always a parameter, so tests evaluate at
//! virtual times. The daemon ([`daemon`]) repeats rounds on an interval until cancelled;
//! `--once` runs one round between loading and saving the state file ([`state`]).
//!
//! Does not own: the command line ([`args`]), parsing cron expressions (`crate::cron`), the
//! HTTP client (`crate::rest`) or wrangler configs (`crate::wrangler`).

pub mod alert;
pub mod args;
pub mod config;
pub mod judge;
pub mod notify;
pub mod plan;
pub mod probe;
pub mod state;

use std::path::Path;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

pub use args::WatchArgs;
pub use plan::WatchPlan;

use alert::{Evaluation, Standing};
use notify::{Delivery, RetryPolicy};
use probe::Observation;
use state::{State, StateError};

/// `ms` since the Unix epoch as an ISO 8601 UTC time, to the second.
pub fn iso(ms: u64) -> String {
    i64::try_from(ms)
        .ok()
        .and_then(chrono::DateTime::from_timestamp_millis)
        .map_or_else(
            || format!("{ms} ms"),
            |t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        )
}

/// The wall clock, ms since the Unix epoch.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// The HTTP client for probes and webhooks: the plan's timeout, bounded bodies.
pub fn client(plan: &WatchPlan) -> crate::rest::Client {
    crate::rest::Client::new(plan.timeout).body_limit(probe::MAX_PROBE_BYTES)
}

/// What one evaluation did.
#[derive(Debug, Clone)]
pub struct Round {
    /// The evaluation; its state already has undelivered notices handed back.
    pub evaluation: Evaluation,
    /// Every notice sent, with each notifier's result.
    pub deliveries: Vec<Delivery>,
}

/// Probes every check once, in plan order, all stamped `now_ms`.
pub async fn observe(
    plan: &WatchPlan,
    client: &mut crate::rest::Client,
    now_ms: u64,
) -> Vec<Option<Observation>> {
    let mut out = Vec::with_capacity(plan.checks.len());
    for check in &plan.checks {
        out.push(Some(
            probe::probe(client, check, now_ms, &plan.redactor).await,
        ));
    }
    out
}

/// One evaluation at `now_ms`: probe, judge, alert, deliver.
pub async fn round(
    plan: &WatchPlan,
    prev: &State,
    client: &mut crate::rest::Client,
    now_ms: u64,
    policy: RetryPolicy,
) -> Round {
    let observations = observe(plan, client, now_ms).await;
    let mut evaluation = alert::evaluate(plan, prev, &observations, now_ms);
    let deliveries = notify::deliver(
        client,
        &plan.notifiers,
        &evaluation.notices,
        &plan.redactor,
        policy,
    )
    .await;
    for d in deliveries.iter().filter(|d| !d.taken()) {
        alert::undelivered(&mut evaluation.state, &d.notice);
    }
    Round {
        evaluation,
        deliveries,
    }
}

/// The lines a round prints: one per check, one per delivery, redacted.
pub fn render(plan: &WatchPlan, round: &Round) -> Vec<String> {
    let at = iso(round.evaluation.state.evaluated_ms);
    let mut lines: Vec<String> = round
        .evaluation
        .standings
        .iter()
        .map(|s| format!("{at} {}", standing(s)))
        .collect();
    if alert::muted(plan, round.evaluation.state.evaluated_ms) {
        lines.push(format!(
            "{at} muted: notifications wait for the mute window to end"
        ));
    }
    for d in &round.deliveries {
        let what = match d.notice.kind {
            alert::NoticeKind::Fired { .. } => "alert",
            alert::NoticeKind::Recovered { .. } => "recovery",
        };
        if d.results.is_empty() {
            lines.push(format!(
                "{at} {what} of {} (no notifier configured)",
                d.notice.check
            ));
        }
        for (to, r) in &d.results {
            lines.push(match r {
                Ok(n) => format!(
                    "{at} sent the {what} of {} to ${to} ({n} attempt{})",
                    d.notice.check,
                    if *n == 1 { "" } else { "s" }
                ),
                Err(e) => format!(
                    "{at} warning: the {what} of {} was not delivered: {e}",
                    d.notice.check
                ),
            });
        }
    }
    lines
        .into_iter()
        .map(|l| plan.redactor.redact(&l).into_owned())
        .collect()
}

fn standing(s: &Standing) -> String {
    let Some(j) = &s.judgement else {
        return format!("{} not observed", s.check);
    };
    let word = match (s.alert_active, j.failing) {
        (true, Some(sev)) => format!("ALERT ({})", sev.as_str()),
        (true, None) => "ALERT".to_owned(),
        (false, Some(sev)) if s.consecutive_failures == 0 => {
            format!("{} (below alert_at)", sev.as_str())
        }
        (false, Some(sev)) => format!("{} ({} in a row)", sev.as_str(), s.consecutive_failures),
        (false, None) => "up".to_owned(),
    };
    format!("{} {word}: {}", s.check, j.summary)
}

/// Rounds every `plan.interval` until `cancel` fires, saving the state after each when
/// `state_path` is given; prints each round through `print`. Ends with the last state.
pub async fn daemon(
    plan: &WatchPlan,
    mut state: State,
    state_path: Option<&Path>,
    cancel: CancellationToken,
    print: &mut dyn FnMut(&str),
) -> Result<State, StateError> {
    let mut client = client(plan);
    while !cancel.is_cancelled() {
        let now = now_ms();
        let r = tokio::select! {
            r = round(plan, &state, &mut client, now, RetryPolicy::default()) => r,
            _ = cancel.cancelled() => break,
        };
        for l in render(plan, &r) {
            print(&l);
        }
        state = r.evaluation.state;
        if let Some(p) = state_path {
            state.save(p)?;
        }
        tokio::select! {
            _ = tokio::time::sleep(plan.interval.max(Duration::from_secs(1))) => {}
            _ = cancel.cancelled() => break,
        }
    }
    Ok(state)
}
