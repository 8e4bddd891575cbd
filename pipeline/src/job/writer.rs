//! The timely operator that hands closed windows to the Parquet sink.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use meshflow_operators::batches::RowBatches;
use meshflow_schemas::{ArrowRecord, Counters};
use meshflow_sinks::parquet::{ParquetSinkConfig, SinkError, WindowWriter};
use serde::Serialize;
use serde::de::DeserializeOwned;
use timely::dataflow::Stream;
use timely::dataflow::channels::pact::ExchangeCore;
use timely::dataflow::operators::generic::Operator;

/// Shared, process-local record of what the writers did, for the summary.
#[derive(Default)]
pub struct WriteReport {
    /// The first error any writer hit; writing stops on every worker after it.
    pub error: Mutex<Option<String>>,
    /// Window ends written.
    pub windows: Mutex<BTreeSet<u64>>,
}

impl WriteReport {
    /// Records the job's first write error; every writer stops after it.
    pub fn fail(&self, e: impl ToString) {
        self.error
            .lock()
            .expect("report lock")
            .get_or_insert(e.to_string());
    }
}

/// Routes rows to the worker that owns their bucket and hands each complete window
/// to a [`WindowWriter`], which sorts it by `bucket_and_key` and writes it into the
/// buckets' files on a thread of its own. Which worker writes a bucket does not
/// change the files, so output is identical for any worker count.
pub fn write_parquet<'s, R, F>(
    rows: Stream<'s, u64, Vec<R>>,
    dir: PathBuf,
    cfg: ParquetSinkConfig,
    counters: Arc<Counters>,
    report: Arc<WriteReport>,
    bucket_and_key: F,
) where
    R: ArrowRecord + Serialize + DeserializeOwned + Send + Sync,
    F: Fn(&R, u32) -> (u32, u64) + Copy + Send + 'static,
{
    let buckets = cfg.buckets;
    // Rows are large: containers of many, not timely's 8 KiB worth.
    let route = ExchangeCore::<RowBatches<R>, _>::new_core(move |r: &R| {
        u64::from(bucket_and_key(r, buckets).0)
    });
    // A window's rows as they arrived, in the containers they came in.
    let mut pending: BTreeMap<u64, Vec<Vec<R>>> = BTreeMap::new();
    let thread_report = report.clone();
    let written = move |result: Result<u64, SinkError>| match result {
        Ok(window) => {
            thread_report
                .windows
                .lock()
                .expect("report lock")
                .insert(window);
        }
        Err(e) => thread_report.fail(e),
    };
    let mut writer = WindowWriter::start(dir, cfg, counters, bucket_and_key, written)
        .map_err(|e| report.fail(e))
        .ok();
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
        let Some(w) = writer.as_mut() else {
            return;
        };
        while let Some(entry) = pending.first_entry() {
            if frontier.less_equal(entry.key()) {
                break;
            }
            let (window, chunks) = entry.remove_entry();
            if !w.send(window, chunks) {
                return;
            }
        }
        if frontier.is_empty()
            && let Some(mut w) = writer.take()
        {
            w.finish();
        }
    });
}
