//! The progress line while a job runs, and the summary when it ends.

use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

use crate::job::{Progress, Summary};

/// A live progress line on stderr, refreshed from the job's counters.
pub struct ProgressLine {
    stop: Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl ProgressLine {
    /// Starts refreshing every `interval`; hidden when stderr is not a terminal.
    pub fn start(progress: Arc<Progress>, interval: Duration, epoch_ns: i64) -> Self {
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let bar = ProgressBar::new_spinner();
            bar.set_style(
                ProgressStyle::with_template("{spinner} {elapsed_precise} {msg}")
                    .expect("valid template"),
            );
            let started = Instant::now();
            while !flag.load(Ordering::Relaxed) {
                let events = progress.events.snapshot().received;
                let rate = events as f64 / started.elapsed().as_secs_f64().max(1e-3);
                let closed = progress.watermark.load(Ordering::Relaxed);
                let watermark = meshflow_schemas::TimestampNs(closed as i64 * epoch_ns);
                bar.set_message(format!(
                    "{events} events ({}/s), {} rows written, late {}, windows closed up to {}",
                    human(rate),
                    progress.rows.snapshot().sent,
                    progress.late.snapshot().dropped,
                    if closed == 0 {
                        "-".to_string()
                    } else {
                        watermark.to_string()
                    },
                ));
                bar.tick();
                std::thread::sleep(interval);
            }
            bar.finish_and_clear();
        });
        Self {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for ProgressLine {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Formats a rate with a k/M suffix.
pub fn human(v: f64) -> String {
    if v >= 1e6 {
        format!("{:.2}M", v / 1e6)
    } else if v >= 1e3 {
        format!("{:.1}k", v / 1e3)
    } else {
        format!("{v:.0}")
    }
}

/// The end-of-job summary, with the next command to look at the results.
pub fn summary_text(s: &Summary) -> String {
    let mut out = String::new();
    let secs = s.elapsed.as_secs_f64();
    let _ = writeln!(out, "meshflow finished in {secs:.2}s");
    for (name, c) in &s.sources {
        let _ = writeln!(
            out,
            "  source {name}: {} events in, {} late, {} bad",
            c.received, c.dropped, c.errored
        );
    }
    let _ = writeln!(
        out,
        "  events in: {} ({} events/s)",
        s.events(),
        human(s.events() as f64 / secs.max(1e-9))
    );
    if s.late > 0 {
        let _ = writeln!(
            out,
            "  late events dropped: {} (raise job.lateness to accept them)",
            s.late
        );
    }
    let _ = writeln!(out, "  windows closed: {}", s.windows);
    for (table, rows) in &s.rows {
        let _ = writeln!(
            out,
            "  rows written: {table} {rows} -> {}",
            s.out.join(table).display()
        );
    }
    if !s.skipped.is_empty() {
        let _ = writeln!(out, "  skipped {} bad file(s):", s.skipped.len());
        for f in &s.skipped {
            let _ = writeln!(out, "    {}: {}", f.path.display(), f.reason);
        }
    }
    let _ = writeln!(
        out,
        "next: meshflow sql --out {} \"SELECT node_label, max(bytes_out) AS peak_bytes_out FROM node_features GROUP BY node_label ORDER BY peak_bytes_out DESC LIMIT 10\"",
        s.out.display()
    );
    out
}
