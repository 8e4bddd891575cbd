//! Per-operator scheduling time (`--profile-operators`), from timely's own event log.
//!
//! Timely logs each operator's creation (its name and address) and the start and stop
//! of every time it is scheduled. A worker sums the scheduled time of each operator
//! and, when it ends, adds its sums to a table shared by the process, which the job's
//! summary prints. Only leaf operators are counted: a scope's time includes theirs.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use timely::logging::{StartStop, TimelyEvent, TimelyEventBuilder};

/// Scheduled time per operator name, summed over the process's workers.
#[derive(Default)]
pub struct OperatorProfile {
    /// Operator name → (time scheduled, times scheduled).
    totals: Mutex<BTreeMap<String, (Duration, u64)>>,
}

impl OperatorProfile {
    /// The operators by time scheduled, longest first.
    pub fn rows(&self) -> Vec<(String, Duration, u64)> {
        let totals = self.totals.lock().expect("profile lock");
        let mut rows: Vec<_> = totals
            .iter()
            .map(|(name, &(time, count))| (name.clone(), time, count))
            .collect();
        rows.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        rows
    }

    /// Starts counting on `worker`; call it before the worker builds its dataflows.
    pub fn register(self: &Arc<Self>, worker: &mut timely::worker::Worker) {
        let mut counts = WorkerCounts {
            shared: self.clone(),
            operators: HashMap::new(),
            started: HashMap::new(),
            spent: HashMap::new(),
        };
        if let Some(mut registry) = worker.log_register() {
            registry.insert::<TimelyEventBuilder, _>("timely", move |_time, data| {
                if let Some(events) = data {
                    for (at, event) in events.iter() {
                        counts.observe(*at, event);
                    }
                }
            });
        }
    }
}

/// One worker's sums, added to the shared table when the worker drops its logger.
struct WorkerCounts {
    shared: Arc<OperatorProfile>,
    /// Operator id → (name, address).
    operators: HashMap<usize, (String, Vec<usize>)>,
    /// Operator id → when its current scheduling started.
    started: HashMap<usize, Duration>,
    /// Operator id → (time scheduled, times scheduled).
    spent: HashMap<usize, (Duration, u64)>,
}

impl WorkerCounts {
    fn observe(&mut self, at: Duration, event: &TimelyEvent) {
        match event {
            TimelyEvent::Operates(op) => {
                self.operators
                    .insert(op.id, (op.name.clone(), op.addr.clone()));
            }
            TimelyEvent::Schedule(s) => match s.start_stop {
                StartStop::Start => {
                    self.started.insert(s.id, at);
                }
                StartStop::Stop => {
                    if let Some(start) = self.started.remove(&s.id) {
                        let entry = self.spent.entry(s.id).or_default();
                        entry.0 += at.saturating_sub(start);
                        entry.1 += 1;
                    }
                }
            },
            _ => {}
        }
    }
}

impl Drop for WorkerCounts {
    fn drop(&mut self) {
        // A scope's address is a prefix of its operators' addresses.
        let scopes: HashSet<&[usize]> = self
            .operators
            .values()
            .filter_map(|(_, addr)| addr.split_last().map(|(_, parent)| parent))
            .collect();
        let mut totals = self.shared.totals.lock().expect("profile lock");
        for (id, (time, count)) in &self.spent {
            let Some((name, addr)) = self.operators.get(id) else {
                continue;
            };
            if scopes.contains(addr.as_slice()) {
                continue;
            }
            let entry = totals.entry(name.clone()).or_default();
            entry.0 += *time;
            entry.1 += count;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use timely::dataflow::operators::vec::Map;
    use timely::dataflow::operators::{Inspect, ToStream};

    #[test]
    fn counts_each_leaf_operator_by_name_and_not_its_scopes() {
        let profile = Arc::new(OperatorProfile::default());
        let shared = profile.clone();
        timely::execute(timely::Config::process(2), move |worker| {
            shared.register(worker);
            worker.dataflow::<u64, _, _>(|scope| {
                scope.region_named("Region", |inner| {
                    (0..1000u64).to_stream(inner).map(|x| x * 2).inspect(|_| {});
                });
            });
        })
        .expect("timely runs");
        let rows = profile.rows();
        let names: Vec<&str> = rows.iter().map(|(n, _, _)| n.as_str()).collect();
        for expected in ["ToStreamBuilder", "FlatMap", "Inspect"] {
            assert!(names.contains(&expected), "{expected} missing in {names:?}");
        }
        assert!(!names.contains(&"Region"), "a scope counted: {names:?}");
        assert!(!names.contains(&"Dataflow"), "a scope counted: {names:?}");
        for (name, _, runs) in &rows {
            assert!(*runs >= 2, "{name} ran {runs} times on two workers");
        }
        assert!(
            rows.windows(2).all(|w| w[0].1 >= w[1].1),
            "not longest first: {rows:?}"
        );
    }
}
