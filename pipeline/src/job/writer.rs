//! The timely operator that hands closed windows to the Parquet sink.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use meshflow_schemas::{ArrowRecord, Counters};
use meshflow_sinks::parquet::{ParquetSinkConfig, TableWriter};
use serde::Serialize;
use serde::de::DeserializeOwned;
use timely::dataflow::Stream;
use timely::dataflow::channels::pact::Exchange;
use timely::dataflow::operators::generic::Operator;

/// Shared, process-local record of what the writers did, for the summary.
#[derive(Default)]
pub struct WriteReport {
    /// The first error any writer hit; writing stops on every worker after it.
    pub error: Mutex<Option<String>>,
    /// Window ends written.
    pub windows: Mutex<BTreeSet<u64>>,
}

/// Routes rows to the worker that owns their bucket and writes each complete window,
/// sorted by `sort_key`, into that bucket's files. Which worker writes a bucket does
/// not change the files, so output is identical for any worker count.
pub fn write_parquet<'s, R, F>(
    rows: Stream<'s, u64, Vec<R>>,
    dir: PathBuf,
    cfg: ParquetSinkConfig,
    counters: Arc<Counters>,
    report: Arc<WriteReport>,
    bucket_and_key: F,
) where
    R: ArrowRecord + Serialize + DeserializeOwned + Send + Sync,
    F: Fn(&R, u32) -> (u32, u64) + Copy + 'static,
{
    let buckets = cfg.buckets;
    let route = Exchange::new(move |r: &R| u64::from(bucket_and_key(r, buckets).0));
    // A window's rows as they arrived, in the containers they came in. Rows are large
    // (hundreds of bytes), so only a small index of them is sorted: a row moves into
    // an `Option` slot and from there into its writer, never through a sort.
    let mut pending: BTreeMap<u64, Vec<Vec<R>>> = BTreeMap::new();
    let mut writers: BTreeMap<u32, TableWriter<R>> = BTreeMap::new();
    let mut order: Vec<(u32, u64, u32, u32)> = Vec::new();
    let mut finished = false;
    rows.sink(route, "ParquetWriter", move |(input, frontier)| {
        input.for_each(|cap, data| {
            if let Some(time) = cap.least() {
                pending.entry(*time).or_default().push(std::mem::take(data));
            }
        });
        if report.error.lock().expect("report lock").is_some() {
            pending.clear();
            return;
        }
        let fail = |e: String| {
            report.error.lock().expect("report lock").get_or_insert(e);
        };
        while let Some(entry) = pending.first_entry() {
            if frontier.less_equal(entry.key()) {
                break;
            }
            let (window, chunks) = entry.remove_entry();
            // (bucket, key, container, index) of every row, sorted: by bucket and
            // key, and ties in arrival order.
            order.clear();
            for (c, chunk) in chunks.iter().enumerate() {
                order.extend(chunk.iter().enumerate().map(|(i, row)| {
                    let (bucket, key) = bucket_and_key(row, buckets);
                    (bucket, key, c as u32, i as u32)
                }));
            }
            if !order.is_sorted() {
                order.sort_unstable();
            }
            let mut slots: Vec<Vec<Option<R>>> = chunks
                .into_iter()
                .map(|chunk| chunk.into_iter().map(Some).collect())
                .collect();
            for group in order.chunk_by(|a, b| a.0 == b.0) {
                let writer = writers.entry(group[0].0).or_insert_with(|| {
                    TableWriter::new(dir.clone(), group[0].0, &cfg, counters.clone())
                });
                let rows = group
                    .iter()
                    .filter_map(|&(_, _, c, i)| slots[c as usize][i as usize].take());
                if let Err(e) = writer.write(rows) {
                    fail(e.to_string());
                    return;
                }
            }
            report.windows.lock().expect("report lock").insert(window);
        }
        if frontier.is_empty() && !finished {
            finished = true;
            for writer in writers.values_mut() {
                if let Err(e) = writer.finish() {
                    fail(e.to_string());
                }
            }
        }
    });
}
