//! The progress line while a job runs, and the summary when it ends.

use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};
use meshflow_schemas::{AnomalyScore, ArrowRecord};

use crate::job::{Progress, Summary};

/// A live progress line on stderr, refreshed from the job's counters.
pub struct ProgressLine {
    stop: Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl ProgressLine {
    /// Starts refreshing every `interval`; hidden when stderr is not a terminal. With
    /// `bounded` (every source is a replay in this one process), the planned total in
    /// `progress.planned` turns the line into a bar with percentage, rate and ETA.
    pub fn start(
        progress: Arc<Progress>,
        interval: Duration,
        epoch_ns: i64,
        bounded: bool,
    ) -> Self {
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let bar = ProgressBar::new_spinner();
            bar.set_style(
                ProgressStyle::with_template("{spinner} {elapsed_precise} {msg}")
                    .expect("valid template"),
            );
            let mut showing_bar = false;
            let started = Instant::now();
            while !flag.load(Ordering::Relaxed) {
                let events = progress.events.snapshot().received;
                let elapsed = started.elapsed();
                let rate = events as f64 / elapsed.as_secs_f64().max(1e-3);
                let closed = progress.watermark.load(Ordering::Relaxed);
                let watermark = meshflow_schemas::TimestampNs(closed as i64 * epoch_ns);
                // Rows handed to the sink: files are encoded a row group at a time,
                // so rows written would stay at 0 through a short job.
                let written = format!(
                    "{} rows out, late {}, windows closed up to {}",
                    progress.rows.snapshot().received,
                    progress.late.snapshot().dropped,
                    if closed == 0 {
                        "-".to_string()
                    } else {
                        watermark.to_string()
                    },
                );
                let planned = progress.planned.load(Ordering::Relaxed);
                if bounded && planned > 0 {
                    if !showing_bar {
                        bar.set_style(
                            ProgressStyle::with_template(
                                "{spinner} {elapsed_precise} [{bar:30}] {msg}",
                            )
                            .expect("valid template")
                            .progress_chars("=> "),
                        );
                        bar.set_length(planned);
                        showing_bar = true;
                    }
                    bar.set_position(events.min(planned));
                    bar.set_message(format!(
                        "{}, {written}",
                        replay_status(events, planned, elapsed)
                    ));
                } else {
                    bar.set_message(format!("{events} events ({}/s), {written}", human(rate)));
                }
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

/// A bounded job's progress: `done` of `total` rows after `elapsed`, as percentage,
/// rows per second and the estimated time left, e.g. `42.0% 12.3k rows/s ETA 0:00:12`.
pub fn replay_status(done: u64, total: u64, elapsed: Duration) -> String {
    let done = done.min(total);
    let percent = if total == 0 {
        100.0
    } else {
        done as f64 * 100.0 / total as f64
    };
    let rate = done as f64 / elapsed.as_secs_f64().max(1e-3);
    if done == total {
        // Read: what is left is the windows the last rows fall in.
        return format!(
            "100.0% read at {} rows/s, closing the last windows",
            human(rate)
        );
    }
    let eta = if rate <= 0.0 {
        "-".to_string()
    } else {
        let secs = ((total - done) as f64 / rate).ceil().min(1e9) as u64;
        format!("{}:{:02}:{:02}", secs / 3600, secs / 60 % 60, secs % 60)
    };
    format!("{percent:.1}% {} rows/s ETA {eta}", human(rate))
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

/// How many operators the summary lists with `job.profile_operators`.
const OPERATORS_SHOWN: usize = 25;

/// The end-of-job summary, with the next command to look at the results.
pub fn summary_text(s: &Summary) -> String {
    let mut out = String::new();
    let secs = s.elapsed.as_secs_f64();
    let _ = writeln!(out, "meshflow finished in {secs:.2}s");
    if let Some(at) = s.stopped {
        let _ = writeln!(
            out,
            "  stopped early (Ctrl-C): windows closed up to {at} are complete; the sources' later events were not read"
        );
    }
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
    if let Some((at, overlap)) = s.handoff {
        let _ = writeln!(
            out,
            "  live sources took over at {at}; {overlap} live events before it dropped (the trace covers them)"
        );
    }
    let _ = writeln!(out, "  windows closed: {}", s.windows);
    let l = &s.emit_latency;
    if l.samples > 0 {
        let ms = |d: std::time::Duration| d.as_secs_f64() * 1e3;
        let _ = writeln!(
            out,
            "  window close to emit: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms ({} closes)",
            ms(l.p50),
            ms(l.p99),
            ms(l.max),
            l.samples
        );
    }
    if !s.operators.is_empty() {
        let total: std::time::Duration = s.operators.iter().map(|(_, t, _)| *t).sum();
        let _ = writeln!(
            out,
            "  operator time (all workers, {:.2}s in all):",
            total.as_secs_f64()
        );
        for (name, time, count) in s.operators.iter().take(OPERATORS_SHOWN) {
            let _ = writeln!(
                out,
                "    {:>8.2}s {:>5.1}%  {name} ({count} runs)",
                time.as_secs_f64(),
                100.0 * time.as_secs_f64() / total.as_secs_f64().max(1e-9)
            );
        }
    }
    for (table, rows) in &s.rows {
        // No scores is expected of a short job; say why, so it is not taken for a fault.
        let why = if *rows == 0 && *table == AnomalyScore::TABLE && s.windows > 0 {
            " (none yet: a node with traffic is scored once it has anomaly.warmup_windows windows, 60 by default, and the model is fitted; a node seen only through metric series, once a series has about 120 windows)"
        } else {
            ""
        };
        let _ = writeln!(
            out,
            "  rows written: {table} {rows} -> {}{why}",
            s.out.join(table).display()
        );
    }
    for (topic, c) in &s.kafka {
        let _ = writeln!(
            out,
            "  kafka: {topic} {} records committed, {} skipped as already committed, {} failed attempts retried",
            c.sent, c.dropped, c.errored
        );
    }
    if let Some((rows, at)) = s.kafka_held_back.filter(|&(rows, _)| rows > 0) {
        let _ = writeln!(
            out,
            "  kafka: {rows} records of windows after {at} not committed: incomplete when the sources stopped, a restart computes them"
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replay_status_shows_percentage_rate_and_eta() {
        let s = replay_status(250, 1000, Duration::from_secs(5));
        assert_eq!(s, "25.0% 50 rows/s ETA 0:00:15");
        let s = replay_status(5_000_000, 20_000_000, Duration::from_secs(2));
        assert_eq!(s, "25.0% 2.50M rows/s ETA 0:00:06");
        assert_eq!(
            replay_status(0, 1000, Duration::from_secs(1)),
            "0.0% 0 rows/s ETA -"
        );
        assert_eq!(
            replay_status(1200, 1000, Duration::from_secs(1)),
            "100.0% read at 1.0k rows/s, closing the last windows"
        );
        let s = replay_status(1, 7_200_001, Duration::from_secs(1));
        assert!(s.ends_with("ETA 2000:00:00"), "{s}");
    }
}
