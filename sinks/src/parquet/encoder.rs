//! The encoder of one open Parquet file: a thread of its own, so converting rows to
//! Arrow, encoding, compressing, syncing and renaming the file into place run beside
//! the dataflow instead of inside its step.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::thread::JoinHandle;

use datafusion::arrow::array::{ArrayRef, StringArray};
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::parquet::arrow::ArrowWriter;
use datafusion::parquet::errors::ParquetError;
use datafusion::parquet::file::properties::WriterProperties;
use meshflow_schemas::{ArrowRecord, Counters};

use super::SinkError;
use super::writer::io;

/// Chunks handed over but not yet taken by the encoder. With the chunk being
/// encoded and the one being filled, at most this plus two chunks of rows exist at
/// once; a writer that outpaces its encoder waits.
const IN_FLIGHT: usize = 2;

/// Rows handed to the encoder in one go, with the values of the extra text columns
/// (one vector per column, aligned with `rows`).
pub(super) struct Chunk<R> {
    /// The rows, in order.
    pub rows: Vec<R>,
    /// Extra column values, one vector per extra column.
    pub extras: Vec<Vec<Option<String>>>,
}

/// The encoder thread of one temporary file, renamed to its destination once
/// complete and synced. It drops the rows it has encoded.
pub(super) struct Encoder<R> {
    tmp: PathBuf,
    tx: Option<SyncSender<Chunk<R>>>,
    thread: Option<JoinHandle<Result<(), SinkError>>>,
    abandon: Arc<AtomicBool>,
}

impl<R: ArrowRecord> Encoder<R> {
    /// Creates `tmp` and starts encoding into it; once closed and complete, the
    /// file is synced and renamed to `dest`. Row groups are cut by the writer
    /// properties' row count, whatever the chunk sizes.
    pub fn start(
        tmp: PathBuf,
        dest: PathBuf,
        schema: SchemaRef,
        props: WriterProperties,
        counters: Arc<Counters>,
    ) -> Result<Self, SinkError> {
        let file = File::create(&tmp).map_err(io("creating", &tmp))?;
        let writer = ArrowWriter::try_new(file, schema.clone(), Some(props)).map_err(|source| {
            SinkError::Parquet {
                path: tmp.clone(),
                source,
            }
        })?;
        let (tx, rx) = sync_channel(IN_FLIGHT);
        let abandon = Arc::new(AtomicBool::new(false));
        let job = Job {
            tmp: tmp.clone(),
            dest,
            schema,
            counters,
            abandon: abandon.clone(),
        };
        let thread = std::thread::Builder::new()
            .name(format!("parquet-{}", R::TABLE))
            .spawn(move || job.run(writer, rx))
            .map_err(io("starting the encoder thread for", &tmp))?;
        Ok(Self {
            tmp,
            tx: Some(tx),
            thread: Some(thread),
            abandon,
        })
    }

    /// Hands `chunk` to the encoder; if it has stopped, returns why.
    pub fn send(&mut self, chunk: Chunk<R>) -> Result<(), SinkError> {
        let sent = self.tx.as_ref().is_some_and(|tx| tx.send(chunk).is_ok());
        if sent { Ok(()) } else { self.join() }
    }

    /// Tells the encoder no more rows come: it completes, syncs and renames the
    /// file on its own thread. [`Encoder::finish`] then waits for that.
    pub fn close(&mut self) {
        self.tx = None;
    }

    /// Whether the thread has stopped (after [`Encoder::close`]: the file is in
    /// place, or it failed and [`Encoder::finish`] says why).
    pub fn is_finished(&self) -> bool {
        self.thread.as_ref().is_none_or(JoinHandle::is_finished)
    }

    /// The temporary file, removed by the caller if it abandons the encoder.
    pub fn tmp(&self) -> &Path {
        &self.tmp
    }

    /// Waits until every chunk is written and the file is complete, synced and
    /// renamed into place.
    pub fn finish(&mut self) -> Result<(), SinkError> {
        self.join()
    }

    /// Closes the channel and joins the thread: its result, or an error if it is
    /// gone without one.
    fn join(&mut self) -> Result<(), SinkError> {
        self.tx = None;
        let Some(thread) = self.thread.take() else {
            return Err(SinkError::Parquet {
                path: self.tmp.clone(),
                source: ParquetError::General("the encoder had already stopped".into()),
            });
        };
        thread.join().unwrap_or_else(|_| {
            Err(SinkError::Parquet {
                path: self.tmp.clone(),
                source: ParquetError::General("the encoder thread panicked".into()),
            })
        })
    }
}

impl<R> Drop for Encoder<R> {
    fn drop(&mut self) {
        // Unfinished: the encoder stops without completing the file (its caller
        // removes it), and is joined so the file is closed before that.
        self.abandon.store(true, Ordering::Relaxed);
        self.tx = None;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// What the encoder thread needs besides its writer and channel.
struct Job {
    tmp: PathBuf,
    dest: PathBuf,
    schema: SchemaRef,
    counters: Arc<Counters>,
    abandon: Arc<AtomicBool>,
}

impl Job {
    fn run<R: ArrowRecord>(
        self,
        mut writer: ArrowWriter<File>,
        rx: Receiver<Chunk<R>>,
    ) -> Result<(), SinkError> {
        let parquet = |source| SinkError::Parquet {
            path: self.tmp.clone(),
            source,
        };
        lower_priority();
        for chunk in rx {
            if self.abandon.load(Ordering::Relaxed) {
                return Ok(());
            }
            let batch = self.batch(chunk.rows.as_slice(), chunk.extras)?;
            writer.write(&batch).map_err(parquet)?;
            self.counters.add_sent(chunk.rows.len() as u64);
        }
        if self.abandon.load(Ordering::Relaxed) {
            return Ok(());
        }
        let file = writer.into_inner().map_err(parquet)?;
        file.sync_all().map_err(io("syncing", &self.tmp))?;
        std::fs::rename(&self.tmp, &self.dest).map_err(io("renaming into place", &self.dest))
    }

    /// The rows as one batch of the file's schema (the record's columns, then the
    /// extra text columns).
    fn batch<R: ArrowRecord>(
        &self,
        rows: &[R],
        extras: Vec<Vec<Option<String>>>,
    ) -> Result<RecordBatch, SinkError> {
        let batch = R::to_batch(rows);
        if extras.is_empty() {
            return Ok(batch);
        }
        let mut columns = batch.columns().to_vec();
        columns.extend(
            extras
                .into_iter()
                .map(|values| Arc::new(StringArray::from(values)) as ArrayRef),
        );
        RecordBatch::try_new(self.schema.clone(), columns).map_err(|e| SinkError::Parquet {
            path: self.tmp.clone(),
            source: e.into(),
        })
    }
}

/// Nice value of the encoder and writer threads: behind the workers, whose window
/// closes are the latency users see. Encoders completing rolled files competed with
/// the worker for the CPUs and delayed a live window's close by 100-200 ms; on an
/// idle CPU a niced thread runs as fast as any.
const ENCODER_NICE: libc::c_int = 10;

/// Lowers the calling thread's scheduling priority to [`ENCODER_NICE`] (on Linux a
/// nice value is per thread). Failing to is harmless: the thread runs at the
/// worker's priority.
pub(super) fn lower_priority() {
    // SAFETY: setpriority reads no memory; `0` names the calling thread.
    let _ = unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, ENCODER_NICE) };
}
