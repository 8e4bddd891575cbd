//! Round-trip and error tests for every record.

use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, Int64Array, StringArray, UInt64Array};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::arrow::record_batch::RecordBatch;
use proptest::prelude::*;

use crate::*;

fn ts() -> impl Strategy<Value = TimestampNs> {
    any::<i64>().prop_map(TimestampNs)
}

fn ip() -> impl Strategy<Value = Ip16> {
    any::<[u8; 16]>().prop_map(Ip16)
}

fn flow() -> impl Strategy<Value = FlowRecord> {
    (
        (
            any::<u64>(),
            any::<u64>(),
            ip(),
            ip(),
            any::<u16>(),
            any::<u16>(),
        ),
        (
            any::<u8>(),
            any::<u64>(),
            any::<u64>(),
            ts(),
            ts(),
            any::<u8>(),
        ),
    )
        .prop_map(
            |(
                (src_node, dst_node, src_ip, dst_ip, src_port, dst_port),
                (protocol, bytes, packets, first_seen, last_seen, tcp_flags),
            )| FlowRecord {
                src_node,
                dst_node,
                src_ip,
                dst_ip,
                src_port,
                dst_port,
                protocol,
                bytes,
                packets,
                first_seen,
                last_seen,
                tcp_flags,
            },
        )
}

fn tcp_event() -> impl Strategy<Value = TcpEvent> {
    (
        (
            ts(),
            any::<u64>(),
            any::<Option<u64>>(),
            prop::sample::select(TcpEventKind::ALL),
        ),
        (ip(), ip(), any::<u16>(), any::<u16>()),
        (
            any::<Option<String>>(),
            any::<Option<String>>(),
            any::<Option<String>>(),
            any::<Option<u32>>(),
        ),
    )
        .prop_map(
            |(
                (time, node, peer_node, kind),
                (src_ip, dst_ip, src_port, dst_port),
                (drop_reason, old_state, new_state, srtt_us),
            )| TcpEvent {
                time,
                node,
                peer_node,
                kind,
                src_ip,
                dst_ip,
                src_port,
                dst_port,
                drop_reason,
                old_state,
                new_state,
                srtt_us,
            },
        )
}

fn anomaly() -> impl Strategy<Value = AnomalyScore> {
    (
        (
            ts(),
            any::<u64>(),
            ".*",
            any::<f64>(),
            any::<f64>(),
            any::<bool>(),
        ),
        (
            prop::sample::select(HealthState::ALL),
            ".*",
            prop::sample::select(Trend::ALL),
            prop::collection::vec(
                (
                    ".*",
                    any::<f64>(),
                    any::<f64>(),
                    any::<f64>(),
                    prop::sample::select(Trend::ALL),
                ),
                0..4,
            ),
        ),
    )
        .prop_map(
            |(
                (window_end, node, node_label, score, threshold, is_anomaly),
                (state, strategy, score_trend, top),
            )| AnomalyScore {
                window_end,
                node,
                node_label,
                score,
                threshold,
                is_anomaly,
                state,
                strategy: strategy.into(),
                score_trend,
                top_features: top.iter().map(|t| t.0.clone().into()).collect(),
                top_deviations: top.iter().map(|t| t.1).collect(),
                top_values: top.iter().map(|t| t.2).collect(),
                top_thresholds: top.iter().map(|t| t.3).collect(),
                top_trends: top.iter().map(|t| t.4).collect(),
            },
        )
}

fn truth() -> impl Strategy<Value = GroundTruth> {
    (
        any::<u64>(),
        prop::sample::select(FaultKind::ALL),
        any::<u64>(),
        any::<Option<u64>>(),
        prop::collection::vec((any::<u64>(), any::<u64>()), 0..5),
        ts(),
        ts(),
    )
        .prop_map(
            |(fault_id, kind, root_node, peer_node, affected, start, end)| GroundTruth {
                fault_id,
                kind,
                root_node,
                peer_node,
                affected_nodes: affected.iter().map(|a| a.0).collect(),
                affected_delays_ns: affected.iter().map(|a| a.1).collect(),
                start,
                end,
            },
        )
}

/// Equality that treats NaN as equal to NaN, so float round trips can be compared.
fn same_debug<T: std::fmt::Debug>(a: &[T], b: &[T]) -> bool {
    format!("{a:?}") == format!("{b:?}")
}

proptest! {
    #[test]
    fn flows_round_trip(rows in prop::collection::vec(flow(), 0..40)) {
        let batch = FlowRecord::to_batch(&rows);
        prop_assert_eq!(batch.schema(), FlowRecord::schema());
        prop_assert_eq!(FlowRecord::from_batch(&batch).unwrap(), rows);
    }

    #[test]
    fn tcp_events_round_trip(rows in prop::collection::vec(tcp_event(), 0..40)) {
        prop_assert_eq!(TcpEvent::from_batch(&TcpEvent::to_batch(&rows)).unwrap(), rows);
    }

    #[test]
    fn anomaly_scores_round_trip(rows in prop::collection::vec(anomaly(), 0..20)) {
        let back = AnomalyScore::from_batch(&AnomalyScore::to_batch(&rows)).unwrap();
        prop_assert!(same_debug(&back, &rows));
    }

    #[test]
    fn ground_truth_round_trips(rows in prop::collection::vec(truth(), 0..20)) {
        prop_assert_eq!(GroundTruth::from_batch(&GroundTruth::to_batch(&rows)).unwrap(), rows);
    }

    #[test]
    fn metrics_round_trip(rows in prop::collection::vec((ts(), any::<u64>(), "[a-z_]{1,12}", any::<f64>()), 0..40)) {
        let rows: Vec<NodeMetric> = rows.into_iter().map(|(time, node, metric, value)| NodeMetric { time, node, metric: metric.into(), value }).collect();
        let back = NodeMetric::from_batch(&NodeMetric::to_batch(&rows)).unwrap();
        prop_assert!(same_debug(&back, &rows));
    }

    /// Names from a small set (14, more than the reader keeps at hand) repeat, so
    /// rows share their text; every row still reads back its own name.
    #[test]
    fn repeated_metric_names_read_back(names in prop::collection::vec("[ab]{1,3}", 0..200)) {
        let rows: Vec<NodeMetric> = names.iter().enumerate().map(|(i, name)| NodeMetric {
            time: TimestampNs(i as i64),
            node: i as u64,
            metric: name.as_str().into(),
            value: 1.0,
        }).collect();
        let back = NodeMetric::from_batch(&NodeMetric::to_batch(&rows)).unwrap();
        prop_assert_eq!(back, rows);
    }
}

#[test]
fn a_repeated_name_is_read_into_one_shared_text() {
    let row = |metric: &str| NodeMetric {
        time: TimestampNs(0),
        node: 1,
        metric: metric.into(),
        value: 0.0,
    };
    let rows = [
        row("rtt_ms"),
        row("cpu_load"),
        row("rtt_ms"),
        row("cpu_load"),
    ];
    let back = NodeMetric::from_batch(&NodeMetric::to_batch(&rows)).unwrap();
    assert!(Arc::ptr_eq(&back[0].metric, &back[2].metric));
    assert!(Arc::ptr_eq(&back[1].metric, &back[3].metric));
    assert!(!Arc::ptr_eq(&back[0].metric, &back[1].metric));
    assert_eq!(back, rows);
}

#[test]
fn remaining_records_round_trip() {
    let t = TimestampNs::from_secs(1_700_000_000);
    let payment = Payment {
        time: t,
        chain: Chain::Tron,
        tx_id: "abc".into(),
        from_address: "TFrom".into(),
        to_address: "TTo".into(),
        asset: "USDT".into(),
        amount: 12_340_000,
        decimals: 6,
        memo: None,
        confirmed: true,
        block: 7,
    };
    assert_eq!(
        Payment::from_batch(&Payment::to_batch(std::slice::from_ref(&payment))).unwrap(),
        vec![payment]
    );
    let incident = Incident {
        incident_id: "i1".into(),
        start: t,
        end: None,
        nodes: vec![1, 2],
        severity: "major".into(),
        summary: "s".into(),
    };
    assert_eq!(
        Incident::from_batch(&Incident::to_batch(std::slice::from_ref(&incident))).unwrap(),
        vec![incident]
    );
    let verification = PaymentVerification {
        time: t,
        order_id: "o".into(),
        chain: Chain::Ton,
        tx_ids: vec!["a".into(), "b".into()],
        expected_amount: 5,
        received_amount: 4,
        status: VerificationStatus::Underpaid,
    };
    let rows = vec![verification];
    assert_eq!(
        PaymentVerification::from_batch(&PaymentVerification::to_batch(&rows)).unwrap(),
        rows
    );
    let latency = SyscallLatency {
        time: t,
        node: 3,
        pid: 9,
        syscall: "sendto".into(),
        latency_ns: 1200,
    };
    let rows = vec![latency];
    assert_eq!(
        SyscallLatency::from_batch(&SyscallLatency::to_batch(&rows)).unwrap(),
        rows
    );
}

#[test]
fn timestamps_are_utc_nanoseconds() {
    let field = FlowRecord::schema()
        .field_with_name("last_seen")
        .unwrap()
        .clone();
    assert_eq!(field.data_type().to_string(), "Timestamp(ns, \"UTC\")");
}

fn batch(columns: Vec<(&str, ArrayRef)>) -> RecordBatch {
    let fields: Vec<Field> = columns
        .iter()
        .map(|(n, a)| Field::new(*n, a.data_type().clone(), true))
        .collect();
    RecordBatch::try_new(
        Arc::new(Schema::new(fields)),
        columns.into_iter().map(|c| c.1).collect(),
    )
    .unwrap()
}

#[test]
fn missing_column_is_named() {
    let b = batch(vec![(
        "node",
        Arc::new(UInt64Array::from(vec![1u64])) as ArrayRef,
    )]);
    let err = NodeMetric::from_batch(&b).unwrap_err();
    assert_eq!(
        err.to_string(),
        "table `node_metrics`: column `time` is missing"
    );
}

#[test]
fn wrong_type_is_named_with_both_types() {
    let b = batch(vec![
        ("time", Arc::new(Int64Array::from(vec![1i64])) as ArrayRef),
        ("node", Arc::new(UInt64Array::from(vec![1u64])) as ArrayRef),
    ]);
    let err = NodeMetric::from_batch(&b).unwrap_err();
    assert!(
        matches!(&err, SchemaError::TypeMismatch { column, .. } if column == "time"),
        "{err}"
    );
    assert!(err.to_string().contains("Int64"), "{err}");
}

#[test]
fn nulls_in_required_columns_and_bad_enum_values_are_rejected() {
    let b = batch(vec![(
        "metric",
        Arc::new(StringArray::from(vec![Some("a"), None])) as ArrayRef,
    )]);
    let at = field::ColumnRef {
        table: "t",
        column: "metric",
    };
    let err = <String as field::ArrowField>::from_array(b.column(0), at).unwrap_err();
    assert_eq!(
        err,
        SchemaError::UnexpectedNull {
            table: "t",
            column: "metric".into(),
            row: 1
        }
    );

    let b = batch(vec![(
        "state",
        Arc::new(StringArray::from(vec!["HEALTHY", "ON_FIRE"])) as ArrayRef,
    )]);
    let at = field::ColumnRef {
        table: "t",
        column: "state",
    };
    let err = <HealthState as field::ArrowField>::from_array(b.column(0), at).unwrap_err();
    assert!(
        err.to_string().contains("ON_FIRE") && err.to_string().contains("row 1"),
        "{err}"
    );
}

#[test]
fn extra_columns_are_ignored() {
    let rows = vec![NodeMetric {
        time: TimestampNs(5),
        node: 1,
        metric: "m".into(),
        value: 1.5,
    }];
    let b = NodeMetric::to_batch(&rows);
    let mut fields: Vec<Field> = b
        .schema()
        .fields()
        .iter()
        .map(|f| f.as_ref().clone())
        .collect();
    fields.push(Field::new("label", DataType::Utf8, false));
    let mut cols = b.columns().to_vec();
    cols.push(Arc::new(StringArray::from(vec!["Benign"])));
    let wide = RecordBatch::try_new(Arc::new(Schema::new(fields)), cols).unwrap();
    assert_eq!(NodeMetric::from_batch(&wide).unwrap(), rows);
}

#[test]
fn json_encoding_is_readable() {
    let rows = FlowRecord {
        src_node: 1,
        dst_node: 2,
        src_ip: "10.0.0.1".parse().unwrap(),
        dst_ip: "10.0.0.2".parse().unwrap(),
        src_port: 1,
        dst_port: 2,
        protocol: 6,
        bytes: 10,
        packets: 1,
        first_seen: TimestampNs(1),
        last_seen: TimestampNs(2),
        tcp_flags: 2,
    };
    let json = serde_json::to_string(&rows).unwrap();
    assert!(json.contains("\"src_ip\":\"10.0.0.1\""), "{json}");
    assert_eq!(serde_json::from_str::<FlowRecord>(&json).unwrap(), rows);
}

#[test]
fn every_table_names_its_time_column_and_that_column_is_a_timestamp() {
    for (table, schema) in [
        (FlowRecord::TABLE, FlowRecord::schema()),
        (NodeFeatures::TABLE, NodeFeatures::schema()),
        (GroundTruth::TABLE, GroundTruth::schema()),
        (SyscallLatency::TABLE, SyscallLatency::schema()),
    ] {
        let column = time_column(table).unwrap_or_else(|| panic!("{table} has no time column"));
        let field = schema.field_with_name(column).unwrap();
        assert!(
            matches!(field.data_type(), DataType::Timestamp(..)),
            "{table}.{column}"
        );
    }
    assert_eq!(time_column("node_features"), Some("window_end"));
    assert_eq!(time_column("flows"), Some("last_seen"));
    assert_eq!(time_column("no_such_table"), None);
}

#[test]
fn node_features_round_trip_and_name_every_numeric_column() {
    let mut row = NodeFeatures::empty(TimestampNs(0), TimestampNs(10), 7);
    row.bytes_out = 5;
    row.rtt_p50_us = Some(250.0);
    row.drop_rate_n2_max = Some(0.5);
    row.drop_reasons = vec!["QDISC_DROP".into()];
    row.drop_counts = vec![3];
    row.metric_names = vec!["cpu_load".into()];
    row.metric_means = vec![0.25];
    row.metric_samples = vec![4];
    let other = NodeFeatures::empty(TimestampNs(0), TimestampNs(10), 8);
    let rows = vec![row.clone(), other];
    assert_eq!(
        NodeFeatures::from_batch(&NodeFeatures::to_batch(&rows)).unwrap(),
        rows
    );
    // Every name is a column of the schema, and values follow the names.
    let schema = NodeFeatures::schema();
    for name in FEATURE_NAMES {
        assert!(schema.field_with_name(name).is_ok(), "{name}");
    }
    let values = row.feature_values();
    let at = |name: &str| values[FEATURE_NAMES.iter().position(|n| *n == name).unwrap()];
    assert_eq!(at("bytes_out"), Some(5.0));
    assert_eq!(at("rtt_p50_us"), Some(250.0));
    assert_eq!(at("drop_rate_n2_max"), Some(0.5));
    assert_eq!(at("rtt_p99_us"), None);
    // Each base feature's aggregates land in the fields its names say.
    let mut set = NodeFeatures::empty(TimestampNs(0), TimestampNs(10), 9);
    for (i, base) in BASE_FEATURES.iter().enumerate() {
        let v = |k: usize| Some((i * 4 + k) as f64);
        set.set_aggregates(i, [v(0), v(1), v(2), v(3)]);
        let values = set.feature_values();
        let at = |name: String| values[FEATURE_NAMES.iter().position(|n| *n == name).unwrap()];
        assert_eq!(at(format!("{base}_n1_mean")), v(0), "{base}");
        assert_eq!(at(format!("{base}_n1_max")), v(1), "{base}");
        assert_eq!(at(format!("{base}_n2_mean")), v(2), "{base}");
        assert_eq!(at(format!("{base}_n2_max")), v(3), "{base}");
    }
    // All at once, the same fields.
    let mut all = NodeFeatures::empty(TimestampNs(0), TimestampNs(10), 9);
    all.set_all_aggregates(std::array::from_fn(|i| {
        std::array::from_fn(|k| Some((i * 4 + k) as f64))
    }));
    assert_eq!(all, set);
    let vector = row.feature_vector();
    assert!(vector.contains(&("drop_rate_n2_max", 0.5)));
    assert!(!vector.iter().any(|(n, _)| *n == "rtt_p99_us"));
}
