use std::sync::Arc;
use std::time::{Duration, Instant};

use meshflow_integration::tansu::{Storage, Tansu};
use meshflow_schemas::{ArrowRecord, Counters, NodeFeatures, TimestampNs, json};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};

use super::*;

fn row(window: u64, node: u64) -> NodeFeatures {
    NodeFeatures {
        bytes_in: window * 100 + node,
        bytes_out: 1,
        packets_in: 2,
        packets_out: 3,
        flows_in: 4,
        flows_out: 5,
        in_degree: 1,
        out_degree: 1,
        distinct_peers: 2,
        ..NodeFeatures::empty(
            TimestampNs((window as i64 - 10) * 1_000_000_000),
            TimestampNs(window as i64 * 1_000_000_000),
            node,
        )
    }
}

fn encoded(rows: &[NodeFeatures]) -> Vec<Encoded> {
    rows.iter()
        .map(|r| {
            let mut v = Vec::new();
            json::encode(r, &mut v);
            (r.node.to_string().into_bytes(), v)
        })
        .collect()
}

/// Every record of `topic`, read with `read_committed` isolation to its end.
fn read_all(brokers: &str, topic: &str) -> Vec<(Vec<u8>, Vec<u8>)> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", "sink-test-reader")
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "true")
        .set("isolation.level", "read_committed")
        .create()
        .unwrap();
    let md = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .unwrap();
    let parts: Vec<i32> = md.topics()[0].partitions().iter().map(|p| p.id()).collect();
    let mut tpl = TopicPartitionList::new();
    for p in &parts {
        tpl.add_partition_offset(topic, *p, Offset::Beginning)
            .unwrap();
    }
    consumer.assign(&tpl).unwrap();
    let mut eof = std::collections::BTreeSet::new();
    let mut out = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while eof.len() < parts.len() {
        assert!(Instant::now() < deadline, "reading {topic} timed out");
        match consumer.poll(Duration::from_millis(200)) {
            Some(Err(KafkaError::PartitionEOF(p))) => {
                eof.insert(p);
            }
            Some(Err(e)) => panic!("{e}"),
            Some(Ok(m)) => out.push((
                m.key().unwrap_or_default().to_vec(),
                m.payload().unwrap_or_default().to_vec(),
            )),
            None => {}
        }
    }
    out
}

fn config(brokers: String, transactions: bool) -> KafkaSinkConfig {
    KafkaSinkConfig {
        brokers,
        transactions,
        timeout: "10s".parse().unwrap(),
        retries: 3,
        ..KafkaSinkConfig::default()
    }
}

#[test]
fn config_defaults_are_valid_and_bad_values_are_named() {
    let cfg = KafkaSinkConfig::default();
    cfg.validate().unwrap();
    assert_eq!(cfg.topic("node_features"), "meshflow.node_features");
    assert_eq!(cfg.transactional_id("flows", 3), "meshflow-flows-3");
    let mut bad = cfg.clone();
    bad.properties.insert("transactional.id".into(), "x".into());
    let e = bad.validate().unwrap_err().to_string();
    assert!(
        e.contains("sinks.kafka.properties.\"transactional.id\""),
        "{e}"
    );
    let mut bad = cfg.clone();
    bad.retries = 0;
    assert!(
        bad.validate()
            .unwrap_err()
            .to_string()
            .contains("sinks.kafka.retries")
    );
    let parsed: KafkaSinkConfig = toml::from_str(
        "brokers = \"b:1\"\n[topics]\nnode_features = \"nf\"\n[properties]\n\"sasl.mechanism\" = \"PLAIN\"\n",
    )
    .unwrap();
    assert_eq!(parsed.topic("node_features"), "nf");
    assert_eq!(parsed.properties["sasl.mechanism"], "PLAIN");
    assert!(toml::from_str::<KafkaSinkConfig>("brokerz = \"x\"").is_err());
}

/// A mistyped client property is named in the error, its value (a password, say) not.
#[test]
fn a_refused_client_property_is_named_without_its_value() {
    let mut cfg = KafkaSinkConfig::default();
    cfg.properties
        .insert("sasl.pasword".into(), "S3cretPassw0rd".into());
    let e = WindowProducer::open(&cfg, "node_features", 0, 1, Counters::shared())
        .err()
        .expect("refused")
        .to_string();
    assert!(e.contains("client property `sasl.pasword` refused"), "{e}");
    assert!(!e.contains("S3cret"), "{e}");
}

fn write_and_restart(transactions: bool) {
    let tansu = Tansu::start(Storage::Memory);
    let cfg = config(tansu.brokers(), transactions);
    let topic = cfg.topic(NodeFeatures::TABLE);
    let progress_topic = cfg.progress_topic(NodeFeatures::TABLE);
    create_topics(&cfg, &[(topic.clone(), 3), (progress_topic.clone(), 2)]).unwrap();
    let counters = Counters::shared();
    let mut p = WindowProducer::open(&cfg, NodeFeatures::TABLE, 0, 1, counters.clone()).unwrap();
    assert_eq!(p.committed(), None);
    let mut expected = Vec::new();
    for w in [10, 11, 12] {
        let rows: Vec<NodeFeatures> = (0..50).map(|n| row(w, n)).collect();
        assert!(p.write_window(w, &encoded(&rows)).unwrap());
        expected.extend(rows);
    }
    p.finish().unwrap();
    assert_eq!(p.committed(), Some(12));
    drop(p);
    let c = counters.snapshot();
    assert_eq!((c.received, c.sent, c.dropped, c.errored), (150, 150, 0, 0));

    // A restarted writer finds its progress and skips what is committed.
    let again = Counters::shared();
    let mut p = WindowProducer::open(&cfg, NodeFeatures::TABLE, 0, 1, again.clone()).unwrap();
    assert_eq!(p.committed(), Some(12));
    let rows: Vec<NodeFeatures> = (0..50).map(|n| row(12, n)).collect();
    assert!(!p.write_window(12, &encoded(&rows)).unwrap());
    let rows: Vec<NodeFeatures> = (0..5).map(|n| row(13, n)).collect();
    assert!(p.write_window(13, &encoded(&rows)).unwrap());
    expected.extend(rows);
    drop(p);
    let c = again.snapshot();
    assert_eq!((c.received, c.sent, c.dropped), (55, 5, 50));
    // Another worker's writer has its own progress.
    let other = WindowProducer::open(&cfg, NodeFeatures::TABLE, 1, 2, Counters::shared()).unwrap();
    assert_eq!(other.committed(), None);

    let mut got: Vec<NodeFeatures> = read_all(&tansu.brokers(), &topic)
        .into_iter()
        .map(|(key, value)| {
            let r: NodeFeatures = json::decode(&value).unwrap();
            assert_eq!(key, r.node.to_string().into_bytes(), "keyed by node id");
            r
        })
        .collect();
    let sort = |v: &mut Vec<NodeFeatures>| v.sort_by_key(|r| (r.window_end, r.node));
    sort(&mut got);
    sort(&mut expected);
    assert_eq!(got, expected);
    let progress: Vec<ProgressRecord> = read_all(&tansu.brokers(), &progress_topic)
        .into_iter()
        .map(|(_, v)| serde_json::from_slice(&v).unwrap())
        .collect();
    let windows: Vec<(u64, u64)> = progress.iter().map(|p| (p.window, p.rows)).collect();
    assert_eq!(windows, [(10, 50), (11, 50), (12, 50), (13, 5)]);
    assert!(
        progress
            .iter()
            .all(|p| p.writer == "meshflow-node_features-0")
    );
}

#[test]
fn transactional_windows_are_read_back_and_a_restart_skips_committed_ones() {
    write_and_restart(true);
}

#[test]
fn idempotent_windows_are_read_back_and_a_restart_skips_committed_ones() {
    write_and_restart(false);
}

#[test]
fn an_unreachable_broker_fails_with_a_named_error_after_the_configured_attempts() {
    let port = meshflow_integration::tansu::free_port();
    let mut cfg = config(format!("127.0.0.1:{port}"), true);
    cfg.timeout = "1s".parse().unwrap();
    let e = match WindowProducer::open(
        &cfg,
        NodeFeatures::TABLE,
        0,
        1,
        Arc::new(Counters::default()),
    ) {
        Ok(_) => panic!("no broker, yet the writer opened"),
        Err(e) => e.to_string(),
    };
    assert!(e.contains("Kafka sink: reading progress"), "{e}");
}

/// Brokers that do not answer: the error names them, the time waited and what to check.
#[test]
fn unreachable_brokers_are_named_with_the_time_waited() {
    let cfg = KafkaSinkConfig {
        brokers: "127.0.0.1:1".into(),
        timeout: "1s".parse().unwrap(),
        ..KafkaSinkConfig::default()
    };
    let started = Instant::now();
    let e = create_topics(&cfg, &[("t".into(), 1)])
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("creating topics on `127.0.0.1:1`")
            && e.contains("no broker answered within 1s"),
        "{e}"
    );
    // The sink's own timeout bounds the wait, not librdkafka's 60 s default.
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "{:?}",
        started.elapsed()
    );
}

/// A writer whose progress records name another topic or worker count refuses to
/// start: it would skip windows it never wrote.
#[test]
fn progress_of_another_topic_or_worker_count_is_refused() {
    let tansu = Tansu::start(Storage::Memory);
    let cfg = config(tansu.brokers(), true);
    let table = NodeFeatures::TABLE;
    let other = KafkaSinkConfig {
        topic_prefix: "other.".into(),
        ..cfg.clone()
    };
    create_topics(
        &cfg,
        &[
            (cfg.topic(table), 1),
            (other.topic(table), 1),
            (cfg.progress_topic(table), 2),
        ],
    )
    .unwrap();
    let mut p = WindowProducer::open(&cfg, table, 0, 2, Counters::shared()).unwrap();
    assert!(p.write_window(5, &encoded(&[row(5, 1)])).unwrap());
    p.finish().unwrap();
    drop(p);
    let refused = |cfg: &KafkaSinkConfig, peers| {
        WindowProducer::open(cfg, table, 0, peers, Counters::shared())
            .err()
            .expect("refused")
            .to_string()
    };
    let e = refused(&other, 2);
    assert!(
        e.contains("committed windows to topic `meshflow.node_features` with 2 worker(s)")
            && e.contains("this job writes `other.node_features` with 2"),
        "{e}"
    );
    let e = refused(&cfg, 1);
    assert!(
        e.contains("this job writes `meshflow.node_features` with 1"),
        "{e}"
    );
    // The same topic and worker count resume.
    let p = WindowProducer::open(&cfg, table, 0, 2, Counters::shared()).unwrap();
    assert_eq!(p.committed(), Some(5));
}
