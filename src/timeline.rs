//! The fault timeline: the scenario's `[[faults]]` turned into set and clear actions on the
//! mock KV at their run times, plus faults set and cleared by hand from the dashboard (indexed
//! after the scenario's, labelled `manual: ...`). Every change is a history event; when sending
//! stops, every fault still active is cleared (the heal phase starts from a healthy KV).

use std::time::Duration;

use crate::history::Event;
use crate::mockkv::{FaultId, FaultSpec, MockKv};
use crate::scenario::plan::FaultPlan;

/// Where faults are set: the mock KV, or a canary's chaos shim.
pub trait FaultSink {
    /// Sets fault `index` of the timeline; the id to clear it by.
    fn add(&self, index: usize, spec: &FaultSpec) -> Result<FaultId, String>;
    /// Clears fault `id`; the KV operations it hit, when known.
    fn clear(&self, id: FaultId) -> Option<u64>;
}

impl FaultSink for MockKv {
    fn add(&self, _index: usize, spec: &FaultSpec) -> Result<FaultId, String> {
        self.add_fault(spec.clone()).map_err(|e| e.to_string())
    }

    fn clear(&self, id: FaultId) -> Option<u64> {
        // The mock counts the operations each rule hit; read it before the rule goes.
        let fired = self.faults().iter().find(|v| v.id == id).map(|v| v.fired);
        self.clear_fault(id);
        fired
    }
}

/// Set or clear fault `index` at `at`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Action {
    at: Duration,
    index: usize,
    set: bool,
}

/// Pending fault changes of a run, in time order.
pub struct Timeline {
    faults: Vec<FaultPlan>,
    actions: Vec<Action>,
    next: usize,
    active: Vec<Option<FaultId>>,
    /// Run time each active fault was set.
    set_at: Vec<Option<Duration>>,
    /// How many of `faults` came from the scenario (the rest were set by hand).
    scheduled: usize,
}

impl Timeline {
    /// The actions of `faults`, sorted by time (a clear before a set at the same instant).
    pub fn new(faults: &[FaultPlan]) -> Timeline {
        let mut actions: Vec<Action> = faults
            .iter()
            .enumerate()
            .flat_map(|(index, f)| {
                let set = Some(Action {
                    at: f.at,
                    index,
                    set: true,
                });
                let clear = f.until.map(|at| Action {
                    at,
                    index,
                    set: false,
                });
                set.into_iter().chain(clear)
            })
            .collect();
        actions.sort_by_key(|a| (a.at, a.set, a.index));
        Timeline {
            faults: faults.to_vec(),
            actions,
            next: 0,
            active: vec![None; faults.len()],
            set_at: vec![None; faults.len()],
            scheduled: faults.len(),
        }
    }

    /// Sets a fault by hand at `elapsed`: it gets the next index after every fault so far, and
    /// stays until cleared by hand or until sending stops.
    pub fn set_manual(
        &mut self,
        elapsed: Duration,
        spec: crate::mockkv::FaultSpec,
        label: String,
        kv: &dyn FaultSink,
    ) -> Vec<(Duration, Event)> {
        let index = self.faults.len();
        self.faults.push(FaultPlan {
            at: elapsed,
            until: None,
            spec,
            label,
        });
        self.active.push(None);
        self.set_at.push(None);
        vec![(elapsed, self.set(index, elapsed, kv))]
    }

    /// Clears active fault `index` (scheduled or manual) at `elapsed`; nothing if not active.
    pub fn clear_one(
        &mut self,
        index: usize,
        elapsed: Duration,
        kv: &dyn FaultSink,
    ) -> Vec<(Duration, Event)> {
        let Some(id) = self.active.get_mut(index).and_then(Option::take) else {
            return Vec::new();
        };
        let kv_ops = kv.clear(id);
        self.set_at[index] = None;
        let label = self.faults[index].label.clone();
        vec![(
            elapsed,
            Event::FaultCleared {
                index,
                label,
                kv_ops,
            },
        )]
    }

    /// The faults active at `elapsed`, with the time left until their scheduled clear.
    pub fn active(&self, elapsed: Duration) -> Vec<crate::live::ActiveFault> {
        self.active
            .iter()
            .enumerate()
            .filter(|(_, id)| id.is_some())
            .map(|(index, _)| {
                let f = &self.faults[index];
                crate::live::ActiveFault {
                    index,
                    label: f.label.clone(),
                    manual: index >= self.scheduled,
                    set_at_s: self.set_at[index].unwrap_or(f.at).as_secs_f64(),
                    left_s: f.until.map(|u| u.saturating_sub(elapsed).as_secs_f64()),
                }
            })
            .collect()
    }

    fn set(&mut self, index: usize, elapsed: Duration, kv: &dyn FaultSink) -> Event {
        let f = &self.faults[index];
        match kv.add(index, &f.spec) {
            Ok(id) => {
                self.active[index] = Some(id);
                self.set_at[index] = Some(elapsed);
                Event::FaultSet {
                    index,
                    label: f.label.clone(),
                }
            }
            // Scheduled rules were validated with the plan, manual ones are presets: a
            // refusal is a bug, kept visible.
            Err(e) => Event::FaultFailed {
                index,
                label: f.label.clone(),
                error: e,
            },
        }
    }

    /// Run time of the next change, if any.
    pub fn next_at(&self) -> Option<Duration> {
        self.actions.get(self.next).map(|a| a.at)
    }

    /// Applies every change due by `elapsed` to `kv`, returning the history events.
    pub fn apply_due(&mut self, elapsed: Duration, kv: &dyn FaultSink) -> Vec<(Duration, Event)> {
        let mut events = Vec::new();
        while let Some(a) = self
            .actions
            .get(self.next)
            .copied()
            .filter(|a| a.at <= elapsed)
        {
            self.next += 1;
            if a.set {
                let e = self.set(a.index, elapsed, kv);
                events.push((elapsed, e));
            } else {
                events.extend(self.clear_one(a.index, elapsed, kv));
            }
        }
        events
    }

    /// Clears every fault still active (sending stopped) and drops the pending changes.
    pub fn clear_all(&mut self, elapsed: Duration, kv: &dyn FaultSink) -> Vec<(Duration, Event)> {
        self.next = self.actions.len();
        let mut events = Vec::new();
        for index in 0..self.active.len() {
            events.extend(self.clear_one(index, elapsed, kv));
        }
        events
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mockkv::{MockKvConfig, VirtualClock};

    fn fault(at: u64, until: Option<u64>, spec: &str) -> FaultPlan {
        FaultPlan {
            at: Duration::from_secs(at),
            until: until.map(Duration::from_secs),
            spec: spec.parse().unwrap_or_else(|e| panic!("{e}")),
            label: spec.to_owned(),
        }
    }

    #[test]
    fn faults_are_set_and_cleared_on_time_and_all_cleared_at_the_end() {
        let kv = MockKv::new(MockKvConfig::default(), VirtualClock::frozen(0));
        let mut t = Timeline::new(&[
            fault(5, Some(10), "kind=daily-limit,ops=put"),
            fault(8, None, "kind=error,status=503,ops=get"),
        ]);
        assert_eq!(t.next_at(), Some(Duration::from_secs(5)));
        assert!(t.apply_due(Duration::from_secs(4), &kv).is_empty());
        let e = t.apply_due(Duration::from_secs(5), &kv);
        assert!(matches!(e[..], [(_, Event::FaultSet { index: 0, .. })]));
        assert_eq!(kv.faults().len(), 1);
        // Late by two seconds: both the set of #1 and the clear of #0 happen at once, in order.
        let e = t.apply_due(Duration::from_secs(12), &kv);
        assert!(matches!(
            e[..],
            [
                (_, Event::FaultSet { index: 1, .. }),
                (_, Event::FaultCleared { index: 0, .. })
            ]
        ));
        assert_eq!(kv.faults().len(), 1);
        assert_eq!(t.next_at(), None);
        let e = t.clear_all(Duration::from_secs(20), &kv);
        assert!(matches!(
            e[..],
            [(
                _,
                Event::FaultCleared {
                    index: 1,
                    kv_ops: Some(0),
                    ..
                }
            )]
        ));
        assert!(kv.faults().is_empty());
    }

    #[test]
    fn manual_faults_come_after_the_scheduled_ones_and_are_cleared_with_them() {
        let kv = MockKv::new(MockKvConfig::default(), VirtualClock::frozen(0));
        let mut t = Timeline::new(&[fault(5, Some(10), "kind=daily-limit,ops=put")]);
        let spec: crate::mockkv::FaultSpec = "kind=error,status=503"
            .parse()
            .unwrap_or_else(|e| panic!("{e}"));
        let e = t.set_manual(
            Duration::from_secs(2),
            spec.clone(),
            "manual: error 503".into(),
            &kv,
        );
        assert!(
            matches!(&e[..], [(_, Event::FaultSet { index: 1, label })] if label == "manual: error 503")
        );
        t.apply_due(Duration::from_secs(6), &kv);
        let active = t.active(Duration::from_secs(7));
        assert_eq!(active.len(), 2);
        assert!(active[1].manual && !active[0].manual);
        assert_eq!(active[0].left_s, Some(3.0));
        assert_eq!(active[1].left_s, None);
        // Clearing by hand, twice: the second is a no-op.
        assert_eq!(t.clear_one(1, Duration::from_secs(8), &kv).len(), 1);
        assert!(t.clear_one(1, Duration::from_secs(8), &kv).is_empty());
        t.set_manual(Duration::from_secs(8), spec, "manual: again".into(), &kv);
        let e = t.clear_all(Duration::from_secs(9), &kv);
        assert_eq!(e.len(), 2);
        assert!(kv.faults().is_empty());
    }
}
