//! Writing a table's closed windows on a thread of its own, off the dataflow worker.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::thread::JoinHandle;

use meshflow_schemas::{ArrowRecord, Counters};

use super::encoder::lower_priority;
use super::writer::io;
use super::{ParquetSinkConfig, SinkError, TableWriter};

/// Windows handed over and not yet written, at most: a worker further ahead waits.
/// Two let the worker close the next window while the thread writes the last.
const WINDOWS_IN_FLIGHT: usize = 2;

/// What the worker sends the thread.
enum Job<R> {
    /// A closed window's rows, in the containers they arrived in.
    Window(u64, Vec<Vec<R>>),
    /// The input has ended: complete every file.
    Finish,
}

/// Writes one table's closed windows into its buckets' files, on a thread of its
/// own.
///
/// Handing a window over moves its containers, nothing more: sorting the rows by
/// bucket and key and buffering them for the encoders happen on the thread, and the
/// encoders drop the rows they have written. At 10k nodes that work was 12 % of a
/// window's operator time on the worker, all of it between the window's close and
/// its output.
/// `bucket_and_key` gives a row's bucket and the key it is sorted by within the
/// window (ties keep arrival order), so the files depend only on the rows, never on
/// timing or on which worker wrote them.
///
/// `written` is called on the thread after each window, with the window or the error
/// that stopped the writer; after an error nothing more is written. Dropped without
/// [`WindowWriter::finish`] (the job stopped), the thread lets rolled files land and
/// removes the open ones, as [`TableWriter`] does.
pub struct WindowWriter<R> {
    tx: Option<SyncSender<Job<R>>>,
    thread: Option<JoinHandle<()>>,
}

impl<R: ArrowRecord> WindowWriter<R> {
    /// Starts the thread for the prepared table folder `dir`.
    pub fn start<F, W>(
        dir: PathBuf,
        cfg: ParquetSinkConfig,
        counters: Arc<Counters>,
        bucket_and_key: F,
        written: W,
    ) -> Result<Self, SinkError>
    where
        F: Fn(&R, u32) -> (u32, u64) + Send + 'static,
        W: FnMut(Result<u64, SinkError>) + Send + 'static,
    {
        let (tx, rx) = sync_channel(WINDOWS_IN_FLIGHT);
        let state = Buckets {
            dir: dir.clone(),
            cfg,
            counters,
            writers: BTreeMap::new(),
            order: Vec::new(),
        };
        let thread = std::thread::Builder::new()
            .name(format!("write-{}", R::TABLE))
            .spawn(move || {
                lower_priority();
                state.run(rx, bucket_and_key, written);
            })
            .map_err(io("starting the writer thread for", &dir))?;
        Ok(Self {
            tx: Some(tx),
            thread: Some(thread),
        })
    }

    /// Hands a closed window's rows to the thread; waits while it is
    /// [`WINDOWS_IN_FLIGHT`] windows behind. Windows must come in time order. Returns
    /// false once the thread has stopped (after an error, reported to `written`).
    pub fn send(&self, window: u64, chunks: Vec<Vec<R>>) -> bool {
        self.tx
            .as_ref()
            .is_some_and(|tx| tx.send(Job::Window(window, chunks)).is_ok())
    }

    /// Completes every file and waits until all are in place; an error goes to
    /// `written`.
    pub fn finish(&mut self) {
        if let Some(tx) = self.tx.take() {
            let _ = tx.send(Job::Finish);
        }
        if let Some(thread) = self.thread.take()
            && let Err(panic) = thread.join()
        {
            std::panic::resume_unwind(panic);
        }
    }
}

impl<R> Drop for WindowWriter<R> {
    fn drop(&mut self) {
        self.tx = None;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The thread's state: a writer per bucket, and the window's sort order.
struct Buckets<R: ArrowRecord> {
    dir: PathBuf,
    cfg: ParquetSinkConfig,
    counters: Arc<Counters>,
    writers: BTreeMap<u32, TableWriter<R>>,
    /// (bucket, key, container, index) of every row of the window being written.
    order: Vec<(u32, u64, u32, u32)>,
}

impl<R: ArrowRecord> Buckets<R> {
    fn run<F, W>(mut self, rx: Receiver<Job<R>>, bucket_and_key: F, mut written: W)
    where
        F: Fn(&R, u32) -> (u32, u64),
        W: FnMut(Result<u64, SinkError>),
    {
        while let Ok(job) = rx.recv() {
            let result = match job {
                Job::Window(window, chunks) => {
                    self.write_window(chunks, &bucket_and_key).map(|()| window)
                }
                Job::Finish => {
                    if let Err(e) = self.finish() {
                        written(Err(e));
                    }
                    return;
                }
            };
            let failed = result.is_err();
            written(result);
            if failed {
                return;
            }
        }
    }

    /// Writes a window's rows, sorted by bucket and key, ties in arrival order. Rows
    /// are large, so only a small index of them is sorted: a row moves into an
    /// `Option` slot and from there into its writer, never through a sort.
    fn write_window(
        &mut self,
        chunks: Vec<Vec<R>>,
        bucket_and_key: impl Fn(&R, u32) -> (u32, u64),
    ) -> Result<(), SinkError> {
        let buckets = self.cfg.buckets;
        self.order.clear();
        for (c, chunk) in chunks.iter().enumerate() {
            self.order.extend(chunk.iter().enumerate().map(|(i, row)| {
                let (bucket, key) = bucket_and_key(row, buckets);
                (bucket, key, c as u32, i as u32)
            }));
        }
        if !self.order.is_sorted() {
            self.order.sort_unstable();
        }
        let mut slots: Vec<Vec<Option<R>>> = chunks
            .into_iter()
            .map(|chunk| chunk.into_iter().map(Some).collect())
            .collect();
        for group in self.order.chunk_by(|a, b| a.0 == b.0) {
            let writer = self.writers.entry(group[0].0).or_insert_with(|| {
                TableWriter::new(
                    self.dir.clone(),
                    group[0].0,
                    &self.cfg,
                    self.counters.clone(),
                )
            });
            writer.write(
                group
                    .iter()
                    .filter_map(|&(_, _, c, i)| slots[c as usize][i as usize].take()),
            )?;
        }
        Ok(())
    }

    /// Completes every bucket's files; the first error, after every file that can
    /// land has.
    fn finish(&mut self) -> Result<(), SinkError> {
        let mut result = Ok(());
        for writer in self.writers.values_mut() {
            let done = writer.finish();
            result = result.and(done);
        }
        result
    }
}
