//! `meshflow-bench kafka`: Kafka sink throughput, with and without transactions.
//!
//! Encodes `NodeFeatures` rows with the sink's JSON encoder and writes them with the
//! sink's [`WindowProducer`], `window_rows` rows per window (one transaction per
//! window when transactions are on), against `--brokers` or, by default, a tansu
//! broker (memory storage) started for the run.

use std::sync::Arc;
use std::time::Instant;

use meshflow_integration::tansu::{Storage, Tansu};
use meshflow_schemas::{ArrowRecord, Counters, NodeFeatures, TimestampNs, json};
use meshflow_sinks::kafka::{Encoded, KafkaSinkConfig, WindowProducer, create_topics};

/// Arguments of `meshflow-bench kafka`.
#[derive(clap::Args)]
pub struct KafkaArgs {
    /// Bootstrap servers; without it a local tansu (memory storage) is started.
    #[arg(long)]
    brokers: Option<String>,
    /// Records written per mode.
    #[arg(long, default_value_t = 200_000)]
    records: u64,
    /// Records per window (per transaction when transactions are on).
    #[arg(long, default_value_t = 5_000)]
    window_rows: u64,
    /// Partitions of the benchmark topic.
    #[arg(long, default_value_t = 3)]
    partitions: i32,
}

fn row(i: u64) -> NodeFeatures {
    let node = i % 1000;
    let window_end = TimestampNs((i / 1000) as i64 * 1_000_000_000);
    let window_start = TimestampNs(((i / 1000) as i64 - 10) * 1_000_000_000);
    NodeFeatures {
        bytes_in: i * 1500,
        bytes_out: i * 700,
        packets_in: i,
        packets_out: i / 2,
        flows_in: 12,
        flows_out: 9,
        in_degree: 6,
        out_degree: 5,
        distinct_peers: 8,
        ..NodeFeatures::empty(window_start, window_end, node)
    }
}

/// Runs the benchmark and prints a Markdown table.
pub fn run(args: &KafkaArgs) -> anyhow::Result<()> {
    let tansu = args
        .brokers
        .is_none()
        .then(|| Tansu::start(Storage::Memory));
    let brokers = match (&args.brokers, &tansu) {
        (Some(b), _) => b.clone(),
        (None, Some(t)) => t.brokers(),
        (None, None) => unreachable!("a broker is started when none is given"),
    };
    println!(
        "| transactions | records | window rows | wall s | records/s | MB/s (key + value) | failed attempts |"
    );
    println!("|---|---|---|---|---|---|---|");
    for (run, transactions) in [true, false].into_iter().enumerate() {
        let cfg = KafkaSinkConfig {
            brokers: brokers.clone(),
            transactions,
            topic_prefix: format!("bench{run}."),
            progress_topic: format!("bench{run}.progress"),
            transactional_id: format!("bench{run}"),
            ..KafkaSinkConfig::default()
        };
        let topic = cfg.topic(NodeFeatures::TABLE);
        create_topics(
            &cfg,
            &[
                (topic, args.partitions),
                (cfg.progress_topic(NodeFeatures::TABLE), 1),
            ],
        )?;
        let counters = Arc::new(Counters::default());
        let mut producer = WindowProducer::open(&cfg, NodeFeatures::TABLE, 0, 1, counters.clone())?;
        let mut bytes = 0u64;
        let mut batch: Vec<Encoded> = Vec::new();
        let started = Instant::now();
        let mut i = 0;
        let mut window = 1;
        while i < args.records {
            batch.clear();
            let end = (i + args.window_rows).min(args.records);
            for n in i..end {
                let r = row(n);
                let mut value = Vec::with_capacity(320);
                json::encode(&r, &mut value);
                let key = r.node.to_string().into_bytes();
                bytes += (key.len() + value.len()) as u64;
                batch.push((key, value));
            }
            producer.write_window(window, &batch)?;
            window += 1;
            i = end;
        }
        producer.finish()?;
        let secs = started.elapsed().as_secs_f64();
        let c = counters.snapshot();
        anyhow::ensure!(
            c.sent == args.records,
            "only {} of {} records were committed",
            c.sent,
            args.records
        );
        println!(
            "| {} | {} | {} | {secs:.2} | {:.0} | {:.1} | {} |",
            if transactions { "on" } else { "off" },
            args.records,
            args.window_rows,
            args.records as f64 / secs,
            bytes as f64 / secs / 1e6,
            c.errored
        );
    }
    Ok(())
}
