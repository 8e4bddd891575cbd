//! The timely operator that hands closed windows to the Kafka sink.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use meshflow_schemas::{ArrowRecord, CounterSnapshot, Counters, json};
use meshflow_sinks::kafka::{Encoded, KafkaSinkConfig, WindowProducer, partition_of};
use serde::Serialize;
use serde::de::DeserializeOwned;
use timely::container::CapacityContainerBuilder;
use timely::dataflow::Stream;
use timely::dataflow::channels::pact::Exchange;
use timely::dataflow::operators::Capability;
use timely::dataflow::operators::generic::Operator;

use super::WriteReport;

/// What the Kafka writers of this process did, per topic.
#[derive(Default)]
pub struct KafkaReport {
    /// Counters per topic: rows received, committed (sent), skipped because an
    /// earlier run had committed their window (dropped), failed attempts (errored).
    pub topics: Mutex<BTreeMap<String, Arc<Counters>>>,
    /// Rows of windows after the data's complete point (see `Progress::complete`)
    /// that were not committed: incomplete, they are a later run's to compute.
    pub held_back: std::sync::atomic::AtomicU64,
}

impl KafkaReport {
    /// The counters of `topic`, created on first use.
    pub fn counters(&self, topic: &str) -> Arc<Counters> {
        self.topics
            .lock()
            .expect("kafka report lock")
            .entry(topic.to_string())
            .or_insert_with(Counters::shared)
            .clone()
    }

    /// Every topic's counters.
    pub fn snapshot(&self) -> Vec<(String, CounterSnapshot)> {
        self.topics
            .lock()
            .expect("kafka report lock")
            .iter()
            .map(|(t, c)| (t.clone(), c.snapshot()))
            .collect()
    }
}

/// Routes rows to the worker that writes their key's partition and writes each closed window as
/// one Kafka transaction (see [`meshflow_sinks::kafka`]). The output carries, at each
/// window's time, the window once it is committed: probing it tells when a window is
/// durably in Kafka.
#[allow(clippy::too_many_arguments)]
pub fn write_kafka<'s, R>(
    rows: Stream<'s, u64, Vec<R>>,
    cfg: KafkaSinkConfig,
    worker: usize,
    peers: usize,
    kafka: Arc<KafkaReport>,
    report: Arc<WriteReport>,
    key: fn(&R) -> u64,
    complete: Arc<Mutex<Option<u64>>>,
) -> Stream<'s, u64, Vec<u64>>
where
    R: ArrowRecord + Serialize + DeserializeOwned + Send + Sync,
{
    let counters = kafka.counters(&cfg.topic(R::TABLE));
    let mut producer = match WindowProducer::open(&cfg, R::TABLE, worker, peers, counters) {
        Ok(p) => {
            if let Some(w) = p.committed() {
                tracing::info!(
                    "Kafka sink {}-{worker}: windows up to {w} were committed by an earlier run; they are skipped",
                    R::TABLE
                );
            }
            Some(p)
        }
        Err(e) => {
            report.fail(e);
            None
        }
    };
    // Rows go to the worker that writes their key's partition (one writer per partition).
    let partitions = producer.as_ref().map_or(1, WindowProducer::partitions);
    let route = move |r: &R| partition_of(key(r).to_string().as_bytes(), partitions) as u64;
    let mut pending: BTreeMap<u64, (Capability<u64>, Vec<R>)> = BTreeMap::new();
    let mut encoded: Vec<Encoded> = Vec::new();
    let mut finished = false;
    rows.unary_frontier::<CapacityContainerBuilder<Vec<u64>>, _, _, _>(
        Exchange::new(route),
        "KafkaWriter",
        move |_capability, _info| {
            move |(input, frontier), output| {
                input.for_each(|cap, data| {
                    if let Some(time) = cap.least().copied() {
                        let entry = pending.entry(time).or_insert_with(|| {
                            (cap.retain_least(0).expect("input capability"), Vec::new())
                        });
                        entry.1.append(data);
                    }
                });
                let Some(producer) = producer.as_mut() else {
                    pending.clear();
                    return;
                };
                if report.error.lock().expect("report lock").is_some() {
                    pending.clear();
                    return;
                }
                while let Some(entry) = pending.first_entry() {
                    if frontier.less_equal(entry.key()) {
                        break;
                    }
                    let (window, (cap, mut rows)) = entry.remove_entry();
                    // A window after the data's complete point (set before it can
                    // close) is partial: committed, a restart would skip it.
                    if complete.lock().expect("lock").is_some_and(|c| window > c) {
                        kafka
                            .held_back
                            .fetch_add(rows.len() as u64, std::sync::atomic::Ordering::Relaxed);
                        continue;
                    }
                    rows.sort_by_key(key);
                    encoded.clear();
                    encoded.extend(rows.iter().map(|r| {
                        let mut value = Vec::with_capacity(256);
                        json::encode(r, &mut value);
                        (key(r).to_string().into_bytes(), value)
                    }));
                    match producer.write_window(window, &encoded) {
                        Ok(_) => {
                            output.session(&cap).give(window);
                        }
                        Err(e) => {
                            report.fail(e);
                            pending.clear();
                            return;
                        }
                    }
                }
                if frontier.is_empty() && !finished {
                    finished = true;
                    if let Err(e) = producer.finish() {
                        report.fail(e);
                    }
                }
            }
        },
    )
}
