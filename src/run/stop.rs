//! The stop protocol, as a pure state machine: no clock, no engine, no I/O. The session feeds it
//! what happened ([`Input`]) at a run time, and does the [`Step`]s it answers, in order.
//!
//! ```text
//! Sending ──heal due──▶ Healing ──planned end | interrupt | abort threshold | target died──▶ Draining
//!    └──────────planned end | interrupt | abort threshold | target died───────────────────────▶ Draining
//! Sending | Healing | Draining ──second interrupt──▶ Abandoned
//! Draining ──drain deadline──▶ Abandoned
//! any ──engine finished──▶ Done
//! ```
//!
//! Sending stops at the planned end (the engine stops on its own), on the first interrupt, when
//! an abort threshold fails, or when the target dies (whose requests in flight are abandoned at
//! once). Faults are cleared as sending stops; requests in flight get the plan's grace period
//! (the drain), then they are abandoned. A second interrupt abandons them at once.

use std::time::Duration;

use crate::history::Event;
use crate::summary::StopReason;

/// Where a run is in the stop protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Sending, faults on their timeline.
    Sending,
    /// Sending, in the fault-free heal phase at the end of the run.
    Healing,
    /// Sending stopped; requests in flight drain until the deadline (run time).
    Draining {
        /// When requests still in flight are abandoned.
        deadline: Duration,
    },
    /// Requests in flight were abandoned.
    Abandoned,
    /// The engine finished.
    Done,
}

/// What happened.
#[derive(Debug, Clone, PartialEq)]
pub enum Input {
    /// The heal phase is due.
    HealDue,
    /// The plan's end.
    PlannedEnd,
    /// The first interrupt (Ctrl-C, SIGTERM, `q` in the dashboard).
    Interrupt,
    /// The second interrupt.
    SecondInterrupt,
    /// An abort threshold failed; what, e.g. `overall p99 < 5ms (observed 7.2ms)`.
    AbortThreshold(String),
    /// The target died or can no longer be trusted (a write that failed, an answer from the
    /// wrong script); why, and whether the Worker's log says more (a local Worker that exited).
    TargetDied {
        /// What happened.
        why: String,
        /// Point to `worker.log` in the detail.
        see_log: bool,
    },
    /// The drain deadline passed.
    DrainDeadline,
    /// The engine has no work left.
    EngineFinished,
}

impl Input {
    /// The local Worker died: the detail points to its log.
    pub fn died(why: impl Into<String>) -> Input {
        Input::TargetDied {
            why: why.into(),
            see_log: true,
        }
    }

    /// The run can no longer go on for a reason outside the Worker (a report file that cannot be
    /// written, an answer not from the canary): no log to point to.
    pub fn failed(why: impl Into<String>) -> Input {
        Input::TargetDied {
            why: why.into(),
            see_log: false,
        }
    }
}

/// What the session does, in the order given.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    /// The engine stops starting requests.
    StopSending,
    /// Drivers stop starting operations.
    StopDrivers,
    /// Drivers enter the heal phase (the queue's drain starts).
    HealDrivers,
    /// Every mock KV fault is cleared, at this run time.
    ClearFaults(Duration),
    /// Requests in flight are abandoned.
    AbortInFlight,
    /// This event goes to the history.
    Record(Duration, Event),
}

/// How sending ended.
#[derive(Debug, Clone, PartialEq)]
pub struct Ended {
    /// Run time sending stopped.
    pub at: Duration,
    /// Why.
    pub reason: StopReason,
    /// For an abort or a dead target, what happened.
    pub detail: Option<String>,
}

/// The stop protocol of one run.
#[derive(Debug, Clone)]
pub struct Stop {
    state: State,
    planned_end: Duration,
    grace: Duration,
    stopped: Option<Ended>,
}

impl Stop {
    /// A run of `planned_end` whose requests in flight get `grace` once sending stopped; one
    /// without a heal phase starts as if it were healing (no heal to start, no faults to set).
    pub fn new(planned_end: Duration, grace: Duration, heals: bool) -> Stop {
        Stop {
            state: if heals {
                State::Sending
            } else {
                State::Healing
            },
            planned_end,
            grace,
            stopped: None,
        }
    }

    /// Where the run is.
    #[cfg(test)]
    pub fn state(&self) -> State {
        self.state
    }

    /// Whether load is still being sent (pauses and faults by hand are still taken).
    pub fn sending(&self) -> bool {
        matches!(self.state, State::Sending | State::Healing)
    }

    /// Whether the heal phase and the fault timeline are still ahead.
    pub fn before_heal(&self) -> bool {
        self.state == State::Sending
    }

    /// When requests in flight are abandoned, while draining.
    pub fn drain_deadline(&self) -> Option<Duration> {
        match self.state {
            State::Draining { deadline } => Some(deadline),
            _ => None,
        }
    }

    /// Whether a second interrupt still has requests to abandon.
    pub fn abandonable(&self) -> bool {
        matches!(
            self.state,
            State::Sending | State::Healing | State::Draining { .. }
        )
    }

    /// Why sending stopped, once it did.
    pub fn stopped(&self) -> Option<StopReason> {
        self.stopped.as_ref().map(|e| e.reason)
    }

    /// How sending ended: as it stopped, or completed at the planned end.
    pub fn ended(&self) -> Ended {
        self.stopped.clone().unwrap_or(Ended {
            at: self.planned_end,
            reason: StopReason::Completed,
            detail: None,
        })
    }

    /// Takes `input`, which happened at run time `now`, and answers the steps to take.
    pub fn on(&mut self, input: Input, now: Duration) -> Vec<Step> {
        let at = now.min(self.planned_end);
        match (self.state, input) {
            (State::Sending, Input::HealDue) => {
                self.state = State::Healing;
                vec![
                    Step::Record(now, Event::HealStarted),
                    Step::ClearFaults(now),
                    Step::HealDrivers,
                ]
            }
            (State::Sending | State::Healing, Input::PlannedEnd) => {
                let at = self.planned_end;
                self.stop(at, StopReason::Completed, None, now + self.grace);
                vec![
                    Step::StopDrivers,
                    sending_stopped(at, "completed"),
                    Step::ClearFaults(now),
                ]
            }
            (State::Sending | State::Healing, Input::Interrupt) => {
                self.stop(at, StopReason::Interrupted, None, now + self.grace);
                stop_steps(at, "interrupted", now)
            }
            (State::Sending | State::Healing, Input::AbortThreshold(what)) => {
                let detail = format!(
                    "abort threshold failed after {:.0}s: {what}",
                    at.as_secs_f64()
                );
                self.stop(at, StopReason::Aborted, Some(detail), now + self.grace);
                stop_steps(at, "aborted", now)
            }
            (State::Sending | State::Healing, Input::TargetDied { why, see_log }) => {
                // A dead Worker answers nothing: nothing in flight is worth waiting for.
                let see = if see_log { "; see worker.log" } else { "" };
                let detail = format!("{why} at {:.1}s{see}", at.as_secs_f64());
                self.stop(at, StopReason::TargetFailed, Some(detail), now);
                stop_steps(at, "target failed", now)
            }
            (State::Draining { .. }, Input::DrainDeadline | Input::SecondInterrupt) => {
                self.state = State::Abandoned;
                vec![
                    Step::AbortInFlight,
                    Step::Record(now, Event::InFlightAbandoned),
                ]
            }
            (State::Sending | State::Healing, Input::SecondInterrupt) => {
                // Sending goes on until the engine sees its requests abandoned; faults are
                // cleared as after any stop.
                self.state = State::Abandoned;
                self.stopped = Some(Ended {
                    at,
                    reason: StopReason::Interrupted,
                    detail: None,
                });
                vec![
                    Step::AbortInFlight,
                    Step::Record(now, Event::InFlightAbandoned),
                    Step::ClearFaults(now),
                ]
            }
            (State::Sending | State::Healing, Input::EngineFinished) => {
                // The engine can finish at the planned end before the planned end is seen.
                self.state = State::Done;
                vec![Step::ClearFaults(self.planned_end)]
            }
            (State::Draining { .. } | State::Abandoned, Input::EngineFinished) => {
                self.state = State::Done;
                Vec::new()
            }
            // Anything else is late news: the state it was for has passed.
            _ => Vec::new(),
        }
    }

    fn stop(
        &mut self,
        at: Duration,
        reason: StopReason,
        detail: Option<String>,
        deadline: Duration,
    ) {
        self.state = State::Draining { deadline };
        self.stopped = Some(Ended { at, reason, detail });
    }
}

fn sending_stopped(at: Duration, reason: &str) -> Step {
    Step::Record(
        at,
        Event::SendingStopped {
            reason: reason.to_owned(),
        },
    )
}

/// Stopping before the engine would: it stops, the drivers stop, faults are cleared.
fn stop_steps(at: Duration, reason: &str, now: Duration) -> Vec<Step> {
    vec![
        Step::StopSending,
        Step::StopDrivers,
        sending_stopped(at, reason),
        Step::ClearFaults(now),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    const END: Duration = Duration::from_secs(10);
    const GRACE: Duration = Duration::from_secs(2);

    fn s(secs: u64) -> Duration {
        Duration::from_secs(secs)
    }

    fn stopped(at: u64, reason: &str) -> Step {
        sending_stopped(s(at), reason)
    }

    /// A machine in `state`, as reached by the usual inputs.
    fn machine(state: &str) -> Stop {
        let mut m = Stop::new(END, GRACE, true);
        match state {
            "sending" => {}
            "healing" => {
                m.on(Input::HealDue, s(6));
            }
            "draining" => {
                m.on(Input::Interrupt, s(3));
            }
            "abandoned" => {
                m.on(Input::Interrupt, s(3));
                m.on(Input::DrainDeadline, s(5));
            }
            "done" => {
                m.on(Input::EngineFinished, s(10));
            }
            other => panic!("no state {other}"),
        }
        m
    }

    #[test]
    fn every_transition_gives_its_state_steps_and_events() {
        let draining = |secs| State::Draining { deadline: s(secs) };
        let abandoned = vec![
            Step::AbortInFlight,
            Step::Record(s(7), Event::InFlightAbandoned),
        ];
        #[rustfmt::skip]
        let table: Vec<(&str, Input, u64, State, Vec<Step>)> = vec![
            ("sending", Input::HealDue, 6, State::Healing,
                vec![Step::Record(s(6), Event::HealStarted), Step::ClearFaults(s(6)), Step::HealDrivers]),
            ("healing", Input::HealDue, 7, State::Healing, vec![]),
            ("sending", Input::PlannedEnd, 10, draining(12),
                vec![Step::StopDrivers, stopped(10, "completed"), Step::ClearFaults(s(10))]),
            ("healing", Input::PlannedEnd, 11, draining(13),
                vec![Step::StopDrivers, stopped(10, "completed"), Step::ClearFaults(s(11))]),
            ("sending", Input::Interrupt, 3, draining(5),
                vec![Step::StopSending, Step::StopDrivers, stopped(3, "interrupted"), Step::ClearFaults(s(3))]),
            ("healing", Input::Interrupt, 12, draining(14),
                vec![Step::StopSending, Step::StopDrivers, stopped(10, "interrupted"), Step::ClearFaults(s(12))]),
            ("sending", Input::AbortThreshold("overall p99 < 5ms".to_owned()), 4, draining(6),
                vec![Step::StopSending, Step::StopDrivers, stopped(4, "aborted"), Step::ClearFaults(s(4))]),
            ("sending", Input::died("workerd exited"), 4, draining(4),
                vec![Step::StopSending, Step::StopDrivers, stopped(4, "target failed"), Step::ClearFaults(s(4))]),
            ("healing", Input::died("workerd exited"), 8, draining(8),
                vec![Step::StopSending, Step::StopDrivers, stopped(8, "target failed"), Step::ClearFaults(s(8))]),
            ("draining", Input::DrainDeadline, 7, State::Abandoned, abandoned.clone()),
            ("draining", Input::SecondInterrupt, 7, State::Abandoned, abandoned.clone()),
            ("sending", Input::SecondInterrupt, 7, State::Abandoned,
                [abandoned.clone(), vec![Step::ClearFaults(s(7))]].concat()),
            ("sending", Input::EngineFinished, 10, State::Done, vec![Step::ClearFaults(END)]),
            ("healing", Input::EngineFinished, 10, State::Done, vec![Step::ClearFaults(END)]),
            ("draining", Input::EngineFinished, 5, State::Done, vec![]),
            ("abandoned", Input::EngineFinished, 6, State::Done, vec![]),
            // Late news changes nothing.
            ("draining", Input::Interrupt, 4, draining(5), vec![]),
            ("draining", Input::PlannedEnd, 10, draining(5), vec![]),
            ("draining", Input::HealDue, 6, draining(5), vec![]),
            ("draining", Input::AbortThreshold("x".to_owned()), 4, draining(5), vec![]),
            ("draining", Input::died("x"), 4, draining(5), vec![]),
            ("abandoned", Input::SecondInterrupt, 6, State::Abandoned, vec![]),
            ("abandoned", Input::DrainDeadline, 6, State::Abandoned, vec![]),
            ("sending", Input::DrainDeadline, 6, State::Sending, vec![]),
            ("done", Input::Interrupt, 11, State::Done, vec![]),
        ];
        for (from, input, now, state, steps) in table {
            let mut m = machine(from);
            let label = format!("{from} + {input:?} at {now}s");
            assert_eq!(m.on(input, s(now)), steps, "{label}");
            assert_eq!(m.state(), state, "{label}");
        }
    }

    #[test]
    fn how_sending_ended_for_each_reason() {
        #[rustfmt::skip]
        let table: Vec<(Vec<Input>, u64, Ended)> = vec![
            (vec![Input::EngineFinished], 10,
                Ended { at: END, reason: StopReason::Completed, detail: None }),
            (vec![Input::HealDue, Input::PlannedEnd], 10,
                Ended { at: END, reason: StopReason::Completed, detail: None }),
            (vec![Input::Interrupt], 3,
                Ended { at: s(3), reason: StopReason::Interrupted, detail: None }),
            (vec![Input::SecondInterrupt], 3,
                Ended { at: s(3), reason: StopReason::Interrupted, detail: None }),
            (vec![Input::Interrupt, Input::SecondInterrupt], 3,
                Ended { at: s(3), reason: StopReason::Interrupted, detail: None }),
            (vec![Input::AbortThreshold("overall p99 < 5ms (observed 7.2ms)".to_owned())], 4,
                Ended { at: s(4), reason: StopReason::Aborted,
                    detail: Some("abort threshold failed after 4s: overall p99 < 5ms (observed 7.2ms)".to_owned()) }),
            (vec![Input::died("workerd exited with status 1")], 12,
                Ended { at: END, reason: StopReason::TargetFailed,
                    detail: Some("workerd exited with status 1 at 10.0s; see worker.log".to_owned()) }),
            (vec![Input::failed("cannot write history.jsonl: No space left on device")], 12,
                Ended { at: END, reason: StopReason::TargetFailed,
                    detail: Some("cannot write history.jsonl: No space left on device at 10.0s".to_owned()) }),
            // The first stop is the one reported.
            (vec![Input::Interrupt, Input::died("gone")], 3,
                Ended { at: s(3), reason: StopReason::Interrupted, detail: None }),
        ];
        for (inputs, now, ended) in table {
            let mut m = Stop::new(END, GRACE, true);
            for i in inputs.clone() {
                m.on(i, s(now));
            }
            assert_eq!(m.ended(), ended, "{inputs:?}");
        }
    }

    #[test]
    fn the_guards_follow_the_state() {
        let mut m = Stop::new(END, GRACE, true);
        assert!(m.sending() && m.before_heal() && m.abandonable());
        assert_eq!(m.drain_deadline(), None);
        m.on(Input::HealDue, s(6));
        assert!(m.sending() && !m.before_heal() && m.abandonable());
        m.on(Input::PlannedEnd, s(10));
        assert!(!m.sending() && m.abandonable());
        assert_eq!(m.drain_deadline(), Some(s(12)));
        assert_eq!(m.stopped(), Some(StopReason::Completed));
        m.on(Input::DrainDeadline, s(12));
        assert!(!m.abandonable());
        assert_eq!(m.drain_deadline(), None);
        // A run without a heal phase has no heal to start and no fault timeline.
        let m = Stop::new(END, GRACE, false);
        assert!(m.sending() && !m.before_heal());
    }
}
