use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use meshflow_integration::tansu::{Storage, Tansu};
use meshflow_schemas::{Counters, FlowRecord, Ip16, NodeMetric, TimestampNs, json};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};

use super::*;

const SEC: i64 = 1_000_000_000;

fn flow(i: u64) -> FlowRecord {
    FlowRecord {
        src_node: i % 7,
        dst_node: 100 + i % 5,
        src_ip: Ip16::from(std::net::Ipv4Addr::new(10, 0, 0, (i % 250) as u8)),
        dst_ip: Ip16::from(std::net::Ipv4Addr::new(10, 0, 1, 1)),
        src_port: 1000 + i as u16,
        dst_port: 80,
        protocol: 6,
        bytes: 100 + i,
        packets: 1,
        first_seen: TimestampNs(i as i64 * SEC / 10),
        last_seen: TimestampNs(i as i64 * SEC / 10 + 1),
        tcp_flags: 0,
    }
}

fn create(brokers: &str, topic: &str, partitions: i32) {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()
        .unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let r = rt
        .block_on(admin.create_topics(
            &[NewTopic::new(
                topic,
                partitions,
                TopicReplication::Fixed(-1),
            )],
            &AdminOptions::new(),
        ))
        .unwrap();
    r[0].as_ref().unwrap();
}

/// Produces `flows` (keyed by source node) plus one metric and one bad record.
fn produce(brokers: &str, topic: &str, flows: &[FlowRecord]) {
    let producer: ThreadedProducer<DefaultProducerContext> = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()
        .unwrap();
    for f in flows {
        let mut v = Vec::new();
        json::encode(f, &mut v);
        let key = f.src_node.to_string();
        producer
            .send(BaseRecord::to(topic).key(&key).payload(&v))
            .map_err(|(e, _)| e)
            .unwrap();
    }
    let mut v = Vec::new();
    json::encode(
        &NodeMetric {
            time: TimestampNs(SEC),
            node: 3,
            metric: "cpu".into(),
            value: 0.5,
        },
        &mut v,
    );
    producer
        .send(BaseRecord::to(topic).key("m").payload(&v).partition(0))
        .map_err(|(e, _)| e)
        .unwrap();
    producer
        .send(
            BaseRecord::to(topic)
                .key("bad")
                .payload("{not json")
                .partition(1),
        )
        .map_err(|(e, _)| e)
        .unwrap();
    producer.flush(Duration::from_secs(10)).unwrap();
}

fn source_config(brokers: String, topic: &str) -> KafkaSourceConfig {
    KafkaSourceConfig {
        brokers,
        topics: vec![topic.into()],
        group_id: "src-test".into(),
        stop_at_end: true,
        timeout: "10s".parse().unwrap(),
        ..KafkaSourceConfig::default()
    }
}

/// Reads a source to its end, returning the batch.
fn drain(src: &mut KafkaSource, counters: &Counters) -> SourceBatch {
    let mut out = SourceBatch::default();
    let deadline = Instant::now() + Duration::from_secs(30);
    while src
        .poll(&mut out, counters, Duration::from_millis(50))
        .unwrap()
    {
        assert!(Instant::now() < deadline, "source did not reach its end");
    }
    out
}

fn retire_after_seconds() -> Box<dyn Fn(TimestampNs) -> u64 + Send> {
    Box::new(|t: TimestampNs| (t.0 / SEC) as u64 + 1)
}

#[test]
fn partitions_are_spread_over_workers_and_offsets_wait_for_the_windows() {
    let tansu = Tansu::start(Storage::Memory);
    let brokers = tansu.brokers();
    create(&brokers, "events", 4);
    let flows: Vec<FlowRecord> = (0..200).map(flow).collect();
    produce(&brokers, "events", &flows);
    let cfg = source_config(brokers.clone(), "events");

    let counters = Counters::default();
    let mut w0 = KafkaSource::open(&cfg, 0, 2, retire_after_seconds()).unwrap();
    let mut w1 = KafkaSource::open(&cfg, 1, 2, retire_after_seconds()).unwrap();
    assert_eq!(w0.assigned(), ["events/0", "events/2"]);
    assert_eq!(w1.assigned(), ["events/1", "events/3"]);
    let b0 = drain(&mut w0, &counters);
    let b1 = drain(&mut w1, &counters);
    assert!(w0.watermark().is_none() && w1.watermark().is_none());
    let mut got: Vec<FlowRecord> = b0
        .flow_records
        .iter()
        .chain(&b1.flow_records)
        .cloned()
        .collect();
    got.sort_by_key(|f| f.src_port);
    assert_eq!(got, flows, "every flow exactly once across the two workers");
    assert_eq!(b0.flows.len() + b1.flows.len(), 200);
    assert_eq!(b0.metrics.len() + b1.metrics.len(), 1);
    let c = counters.snapshot();
    assert_eq!(
        (c.received, c.errored),
        (201, 1),
        "the bad record is counted and skipped"
    );

    // Only offsets of records whose windows closed before the frontier are committed:
    // with a frontier of 5 s, records of the first 4 s.
    w0.commit_through(Some(5), true).unwrap();
    w1.commit_through(Some(5), true).unwrap();
    drop((w0, w1));
    let again = Counters::default();
    let mut w = KafkaSource::open(&cfg, 0, 1, retire_after_seconds()).unwrap();
    let rest = drain(&mut w, &again);
    let mut left: Vec<u64> = rest
        .flow_records
        .iter()
        .map(|f| f.last_seen.0 as u64 / SEC as u64)
        .collect();
    left.sort();
    left.dedup();
    assert!(
        left.first().is_some_and(|&s| s >= 4) && rest.flows.len() < 200,
        "re-read seconds {left:?}"
    );
    // Everything written: all offsets committed, nothing is read again.
    w.commit_through(None, true).unwrap();
    drop(w);
    let mut w = KafkaSource::open(&cfg, 0, 1, retire_after_seconds()).unwrap();
    let none = drain(&mut w, &Counters::default());
    assert_eq!(none.len(), 0);
}

#[test]
fn an_idle_partition_stops_holding_the_watermark_back() {
    let tansu = Tansu::start(Storage::Memory);
    let brokers = tansu.brokers();
    create(&brokers, "idle", 2);
    let producer: ThreadedProducer<DefaultProducerContext> = ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .create()
        .unwrap();
    let mut v = Vec::new();
    json::encode(&flow(30), &mut v);
    producer
        .send(BaseRecord::to("idle").key("k").payload(&v).partition(0))
        .map_err(|(e, _)| e)
        .unwrap();
    producer.flush(Duration::from_secs(10)).unwrap();
    let mut cfg = source_config(brokers, "idle");
    cfg.stop_at_end = false;
    cfg.idle_timeout = "1s".parse().unwrap();
    let calls = std::sync::Arc::new(AtomicU64::new(0));
    let c2 = calls.clone();
    let mut src = KafkaSource::open(
        &cfg,
        0,
        1,
        Box::new(move |_| {
            c2.fetch_add(1, Ordering::Relaxed);
            0
        }),
    )
    .unwrap();
    let counters = Counters::default();
    let mut out = SourceBatch::default();
    let deadline = Instant::now() + Duration::from_secs(20);
    while out.flows.is_empty() {
        assert!(Instant::now() < deadline);
        assert!(
            src.poll(&mut out, &counters, Duration::from_millis(50))
                .unwrap()
        );
    }
    // Partition 1 has delivered nothing and is not yet idle: no watermark.
    assert_eq!(src.watermark(), None);
    std::thread::sleep(Duration::from_millis(1200));
    src.poll(&mut out, &counters, Duration::from_millis(10))
        .unwrap();
    assert_eq!(src.watermark(), Some(flow(30).last_seen));
    assert_eq!(calls.load(Ordering::Relaxed), 1);
}

#[test]
fn a_finished_source_is_complete_through_its_slowest_partition() {
    let tansu = Tansu::start(Storage::Memory);
    let brokers = tansu.brokers();
    create(&brokers, "ends", 2);
    let producer: ThreadedProducer<DefaultProducerContext> = ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .create()
        .unwrap();
    // Partition 0 ends at 3 s; partition 1 reaches 8 s, then delivers an older record.
    for (partition, i) in [(0, 10), (0, 30), (1, 80), (1, 20)] {
        let mut v = Vec::new();
        json::encode(&flow(i), &mut v);
        producer
            .send(
                BaseRecord::to("ends")
                    .key("k")
                    .payload(&v)
                    .partition(partition),
            )
            .map_err(|(e, _)| e)
            .unwrap();
    }
    producer.flush(Duration::from_secs(10)).unwrap();
    let cfg = source_config(brokers, "ends");
    let mut src = KafkaSource::open(&cfg, 0, 1, retire_after_seconds()).unwrap();
    assert_eq!(src.read_through(), None, "nothing read yet");
    let counters = Counters::default();
    assert_eq!(drain(&mut src, &counters).flows.len(), 4);
    assert_eq!(src.watermark(), None, "finished");
    assert_eq!(src.read_through(), Some(flow(30).last_seen));
}

#[test]
fn config_errors_name_the_key() {
    let mut cfg = KafkaSourceConfig::default();
    assert_eq!(cfg.validate().unwrap_err().key, "topics");
    cfg.topics = vec!["t".into()];
    cfg.validate().unwrap();
    cfg.properties.insert("group.id".into(), "x".into());
    assert_eq!(cfg.validate().unwrap_err().key, "properties.\"group.id\"");
    let parsed: KafkaSourceConfig =
        toml::from_str("topics = [\"a\"]\nstart = \"latest\"\nstop_at_end = true\n").unwrap();
    assert_eq!(parsed.start, StartAt::Latest);
    assert!(toml::from_str::<KafkaSourceConfig>("topic = \"a\"").is_err());
}
