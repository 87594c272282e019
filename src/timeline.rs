//! The fault timeline: the scenario's `[[faults]]` turned into set and clear actions on the
//! mock KV at their run times. Every change is a history event; when sending stops, every
//! fault still active is cleared (the heal phase starts from a healthy KV).

use std::time::Duration;

use crate::history::Event;
use crate::mockkv::{FaultId, MockKv};
use crate::scenario::plan::FaultPlan;

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
        }
    }

    /// Run time of the next change, if any.
    pub fn next_at(&self) -> Option<Duration> {
        self.actions.get(self.next).map(|a| a.at)
    }

    /// Applies every change due by `elapsed` to `kv`, returning the history events.
    pub fn apply_due(&mut self, elapsed: Duration, kv: &MockKv) -> Vec<(Duration, Event)> {
        let mut events = Vec::new();
        while let Some(a) = self
            .actions
            .get(self.next)
            .copied()
            .filter(|a| a.at <= elapsed)
        {
            self.next += 1;
            let f = &self.faults[a.index];
            if a.set {
                match kv.add_fault(f.spec.clone()) {
                    Ok(id) => {
                        self.active[a.index] = Some(id);
                        events.push((elapsed, fault_event(a.index, f, true)));
                    }
                    // Validated with the plan; a refusal here is a bug, kept visible.
                    Err(e) => events.push((
                        elapsed,
                        Event::FaultFailed {
                            index: a.index,
                            label: f.label.clone(),
                            error: e.to_string(),
                        },
                    )),
                }
            } else if let Some(id) = self.active[a.index].take() {
                kv.clear_fault(id);
                events.push((elapsed, fault_event(a.index, f, false)));
            }
        }
        events
    }

    /// Clears every fault still active (sending stopped) and drops the pending changes.
    pub fn clear_all(&mut self, elapsed: Duration, kv: &MockKv) -> Vec<(Duration, Event)> {
        self.next = self.actions.len();
        let mut events = Vec::new();
        for (index, slot) in self.active.iter_mut().enumerate() {
            if let Some(id) = slot.take() {
                kv.clear_fault(id);
                events.push((elapsed, fault_event(index, &self.faults[index], false)));
            }
        }
        events
    }
}

fn fault_event(index: usize, f: &FaultPlan, set: bool) -> Event {
    let (index, label) = (index, f.label.clone());
    if set {
        Event::FaultSet { index, label }
    } else {
        Event::FaultCleared { index, label }
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
        assert!(matches!(e[..], [(_, Event::FaultCleared { index: 1, .. })]));
        assert!(kv.faults().is_empty());
    }
}
