//! What `ebpf-ingest` measures: meshflow's CPU time per thread, its Parquet output
//! and summary, and the Markdown tables they make.

use std::path::Path;

use datafusion::arrow::array::{Array, Float64Array, StringArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::DataType;
use datafusion::arrow::record_batch::RecordBatch;

use crate::ebpf_ingest::{Generator, IngestArgs};
use crate::flood::Sent;

/// CPU seconds of a process: all its threads, and its eBPF reader thread.
#[derive(Clone, Copy, Debug, Default)]
pub struct Cpu {
    /// Every thread (user + system).
    pub total_s: f64,
    /// The `meshflow-ebpf` reader thread (user + system).
    pub reader_s: f64,
    /// Wall-clock seconds between two samples (set by [`Cpu::since`]).
    pub wall_s: f64,
    at: Option<std::time::Instant>,
}

impl Cpu {
    /// Samples `/proc/PID/task/*/stat` now.
    pub fn of(pid: u32) -> anyhow::Result<Self> {
        // SAFETY: sysconf has no preconditions.
        let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
        let mut cpu = Self {
            at: Some(std::time::Instant::now()),
            ..Self::default()
        };
        for task in std::fs::read_dir(format!("/proc/{pid}/task"))? {
            let Ok(stat) = std::fs::read_to_string(task?.path().join("stat")) else {
                continue; // the thread just exited
            };
            let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
                continue;
            };
            let comm = &stat[open + 1..close];
            let fields: Vec<&str> = stat[close + 1..].split_whitespace().collect();
            // Fields 14 and 15 of stat(5): utime, stime (clock ticks).
            let ticks: f64 = fields[11].parse::<f64>()? + fields[12].parse::<f64>()?;
            cpu.total_s += ticks / hz;
            if comm == "meshflow-ebpf" {
                cpu.reader_s += ticks / hz;
            }
        }
        Ok(cpu)
    }

    /// The CPU used since `earlier`.
    pub fn since(&self, earlier: &Cpu) -> Cpu {
        Cpu {
            total_s: self.total_s - earlier.total_s,
            reader_s: self.reader_s - earlier.reader_s,
            wall_s: match (self.at, earlier.at) {
                (Some(a), Some(b)) => (a - b).as_secs_f64(),
                _ => 0.0,
            },
            at: None,
        }
    }
}

/// What meshflow delivered and the kernel counted.
#[derive(Clone, Copy, Debug, Default)]
pub struct Counts {
    /// Packets the XDP program counted (UDP over IPv4).
    pub seen: u64,
    /// Rows of the `flows` table (UDP), one per delivered sample.
    pub delivered: u64,
    /// Sum of `packets` over those rows (equal to `delivered`: one packet each).
    pub delivered_packets: u64,
    /// Records the XDP program found no ring-buffer room for.
    pub lost: u64,
    /// Records the dataflow refused as late (meshflow's summary).
    pub late: u64,
    /// Events the source delivered, flows and metrics (meshflow's summary).
    pub events_in: u64,
}

fn column_f64(batch: &RecordBatch, i: usize) -> anyhow::Result<Vec<f64>> {
    let col = cast(batch.column(i), &DataType::Float64)?;
    let col = col
        .as_any()
        .downcast_ref::<Float64Array>()
        .ok_or_else(|| anyhow::anyhow!("column {i} is not numeric"))?;
    Ok((0..col.len())
        .map(|r| if col.is_null(r) { 0.0 } else { col.value(r) })
        .collect())
}

fn column_str(batch: &RecordBatch, i: usize) -> anyhow::Result<Vec<String>> {
    let col = cast(batch.column(i), &DataType::Utf8)?;
    let col = col
        .as_any()
        .downcast_ref::<StringArray>()
        .ok_or_else(|| anyhow::anyhow!("column {i} is not text"))?;
    Ok((0..col.len()).map(|r| col.value(r).to_string()).collect())
}

/// `N` in the summary line `  source kernel: N events in, L late, B bad`.
fn summary_number(stdout: &str, after: &str, before: &str) -> Option<u64> {
    let line = stdout.lines().find(|l| l.contains("source kernel:"))?;
    let rest = &line[line.find(after)? + after.len()..];
    rest[..rest.find(before)?].trim().parse().ok()
}

impl Counts {
    /// Reads meshflow's output folder (with DataFusion) and its summary.
    pub fn read(out: &Path, stdout: &str) -> anyhow::Result<Self> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let flows = rt.block_on(meshflow::sql::query(
            out,
            "SELECT count(*), sum(packets) FROM flows WHERE protocol = 17",
        ))?;
        let metrics = rt.block_on(meshflow::sql::query(
            out,
            "SELECT metric, max(value) FROM node_metrics WHERE metric LIKE 'xdp_rx_packets%' \
             OR metric LIKE 'ebpf_lost_events%' GROUP BY metric",
        ))?;
        let mut c = Counts {
            late: summary_number(stdout, "events in,", "late").unwrap_or(0),
            events_in: summary_number(stdout, "source kernel:", "events in").unwrap_or(0),
            ..Counts::default()
        };
        for b in &flows {
            let (n, p) = (column_f64(b, 0)?, column_f64(b, 1)?);
            c.delivered += n.iter().sum::<f64>() as u64;
            c.delivered_packets += p.iter().sum::<f64>() as u64;
        }
        for b in &metrics {
            for (name, value) in column_str(b, 0)?.into_iter().zip(column_f64(b, 1)?) {
                if name.starts_with("xdp_rx_packets") && name.ends_with("l3=ipv4,l4=udp}") {
                    c.seen += value as u64;
                } else if name == "ebpf_lost_events{program=xdp}" {
                    c.lost += value as u64;
                }
            }
        }
        Ok(c)
    }
}

fn rate(n: f64, secs: f64) -> String {
    let v = n / secs.max(1e-9);
    if v >= 1e6 {
        format!("{:.2}M", v / 1e6)
    } else {
        format!("{:.0}k", v / 1e3)
    }
}

/// Prints the accounting and the rates as two Markdown tables.
pub fn print(args: &IngestArgs, sent: &Sent, flood_s: f64, drops: u64, c: &Counts, cpu: &Cpu) {
    let generator = match args.generator {
        Generator::Udp => "udp",
        Generator::TestRun => "test-run",
    };
    let expected = c.seen / u64::from(args.sample_every);
    let unaccounted = expected as i64 - (c.delivered + c.lost + c.late) as i64;
    println!(
        "| generator | threads | offered/s | sample 1 in | sent | sent − seen | kernel drop counters | \
         seen by XDP | events | delivered | lost (kernel) | late | unaccounted |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    println!(
        "| {generator} | {} | {} | {} | {} | {} | {drops} | {} | {expected} | {} | {} | {} | {unaccounted} |",
        args.senders,
        if args.rate > 0.0 {
            rate(args.rate, 1.0)
        } else {
            "max".into()
        },
        args.sample_every,
        sent.packets,
        sent.packets as i64 - c.seen as i64,
        c.seen,
        c.delivered,
        c.lost,
        c.late,
    );
    println!();
    println!(
        "| flood s | packets/s to XDP | events/s delivered | meshflow CPU | reader CPU | \
         meshflow ns/event | reader ns/event | generator CPU |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    let per_event = |s: f64| s * 1e9 / c.delivered.max(1) as f64;
    println!(
        "| {flood_s:.1} | {} | {} | {:.0}% | {:.0}% | {:.0} | {:.0} | {:.0}% |",
        rate(c.seen as f64, flood_s),
        rate(c.delivered as f64, flood_s),
        100.0 * cpu.total_s / cpu.wall_s.max(1e-9),
        100.0 * cpu.reader_s / cpu.wall_s.max(1e-9),
        per_event(cpu.total_s),
        per_event(cpu.reader_s),
        100.0 * sent.cpu_s / flood_s.max(1e-9),
    );
    if c.delivered_packets != c.delivered {
        println!(
            "\nwarning: delivered rows carry {} packets, expected one each",
            c.delivered_packets
        );
    }
    eprintln!(
        "meshflow summary: {} events in (flows and metrics), {} late",
        c.events_in, c.late
    );
}
