//! Importer tests on small inputs written here, including malformed lines.

use std::io::Write;
use std::path::Path;

use datafusion::arrow::array::{Array, AsArray, RecordBatch};
use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use meshflow_schemas::{
    ArrowRecord, FlowRecord, NodeMetric, NodeName, TopologyEdge, node_id_of_name,
};

use super::{metrics, zeek};

/// Every row of every Parquet file under `dir/table`, in path order.
pub(super) fn read_table(dir: &Path, table: &str) -> Vec<RecordBatch> {
    let mut files = Vec::new();
    let mut stack = vec![dir.join(table)];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "parquet") {
                files.push(p);
            }
        }
    }
    files.sort();
    files
        .into_iter()
        .flat_map(|f| {
            ParquetRecordBatchReaderBuilder::try_new(std::fs::File::open(f).unwrap())
                .unwrap()
                .build()
                .unwrap()
                .map(Result::unwrap)
                .collect::<Vec<_>>()
        })
        .collect()
}

const ZEEK_HEADER: &str = "#separator \\x09
#set_separator\t,
#empty_field\t(empty)
#unset_field\t-
#path\tconn
#fields\tts\tuid\tid.orig_h\tid.orig_p\tid.resp_h\tid.resp_p\tproto\tservice\tduration\torig_bytes\tresp_bytes\tconn_state\thistory\torig_pkts\torig_ip_bytes\tresp_pkts\tresp_ip_bytes\ttunnel_parents\tlabel\tdetailedlabel
#types\ttime\tstring\taddr\tport\taddr\tport\tenum\tstring\tinterval\tcount\tcount\tstring\tstring\tcount\tcount\tcount\tcount\tset[string]\tstring\tstring
";

#[test]
fn zeek_connections_become_flows_in_both_directions_with_labels_kept() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("conn.log");
    let mut text = ZEEK_HEADER.to_string();
    // A later connection first: the trace must come out in event-time order.
    text.push_str("1655071300.5\tC2\t193.201.9.232\t46563\t147.32.81.167\t3933\ttcp\t-\t0.000010\t0\t0\tS0\tS\t2\t80\t0\t0\t(empty)\tMalicious\tExternal-Attack-to-Device\n");
    text.push_str("1655071198.444458\tC1\t147.32.81.167\t62771\t40.74.108.123\t443\ttcp\tssl\t1.135424\t1596\t4039\tSF\tShADdaFf\t14\t1016\t16\t1226\t(empty)\tBenign\tMicrosoft\n");
    text.push_str("not-a-time\tC3\t1.2.3.4\t1\t5.6.7.8\t2\tudp\t-\t-\t-\t-\tS0\t-\t1\t40\t0\t0\t(empty)\tBenign\t-\n");
    text.push_str("1655071400\tC4\t1.2.3.4\t1\n");
    text.push_str("1655071401\tC5\t1.2.3.999\t1\t5.6.7.8\t2\tudp\t-\t-\t-\t-\tS0\t-\t1\t40\t0\t0\t(empty)\tBenign\t-\n");
    std::fs::write(&log, text).unwrap();
    let out = dir.path().join("trace");

    let report = zeek::import(std::slice::from_ref(&log), &out).unwrap();
    assert_eq!(report.lines, 5);
    assert_eq!(report.bad, 3);
    let reasons: Vec<String> = report.bad_lines.iter().map(|b| b.to_string()).collect();
    assert!(
        reasons[0].ends_with("conn.log:10: ts: `not-a-time` is not seconds since the epoch"),
        "{reasons:?}"
    );
    assert!(
        reasons[1].ends_with("conn.log:11: has 4 fields, the #fields header declares 20"),
        "{reasons:?}"
    );
    assert!(
        reasons[2].ends_with("conn.log:12: id.orig_h: `1.2.3.999` is not an IP address"),
        "{reasons:?}"
    );
    assert_eq!(report.rows_of(FlowRecord::TABLE), 3);

    let batches = read_table(&out, FlowRecord::TABLE);
    let rows: Vec<FlowRecord> = batches
        .iter()
        .flat_map(|b| FlowRecord::from_batch(b).unwrap())
        .collect();
    assert_eq!(rows.len(), 3);
    // C1 both ways (ordered by last_seen), then C2 one way (the responder sent nothing).
    assert_eq!(rows[0].src_node, node_id_of_name("147.32.81.167"));
    assert_eq!((rows[0].bytes, rows[0].packets), (1016, 14));
    assert_eq!((rows[1].bytes, rows[1].packets), (1226, 16));
    assert_eq!((rows[1].src_port, rows[1].dst_port), (443, 62771));
    assert_eq!(rows[0].last_seen.0 - rows[0].first_seen.0, 1_135_424_000);
    assert_eq!(
        rows[0].tcp_flags,
        0x02 | 0x10 | 0x01,
        "S, A, F from the originator"
    );
    assert_eq!(
        rows[1].tcp_flags,
        0x02 | 0x10 | 0x01,
        "h (SYN-ACK), a, f from the responder"
    );
    assert_eq!(rows[2].protocol, 6);
    assert_eq!(rows[2].first_seen.0, 1_655_071_300_500_000_000);

    let text = |name: &str| -> Vec<Option<String>> {
        batches
            .iter()
            .flat_map(|batch| {
                let column = batch
                    .column_by_name(name)
                    .unwrap_or_else(|| panic!("column {name}"));
                let column = column.as_string::<i32>();
                (0..column.len())
                    .map(|i| column.is_valid(i).then(|| column.value(i).to_string()))
                    .collect::<Vec<_>>()
            })
            .collect()
    };
    let batch = &batches[0];
    assert_eq!(
        text("label"),
        ["Benign", "Benign", "Malicious"].map(|s| Some(s.to_string()))
    );
    assert_eq!(
        text("direction"),
        ["orig", "resp", "orig"].map(|s| Some(s.to_string()))
    );
    assert_eq!(text("uid")[2].as_deref(), Some("C2"));
    assert_eq!(
        text("service"),
        [Some("ssl".into()), Some("ssl".into()), None]
    );
    assert_eq!(text("tunnel_parents")[0].as_deref(), Some(""));
    assert!(
        batch.column_by_name("id_orig_h").is_none(),
        "key fields become flow columns"
    );
    assert!(
        batch.column_by_name("duration").is_some(),
        "other fields are kept"
    );
}

/// An import with no valid record writes nothing, so the trace already in its
/// output folder stays as it was.
#[test]
fn an_import_without_a_valid_record_leaves_the_earlier_trace() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.log");
    let mut text = ZEEK_HEADER.to_string();
    text.push_str("1655071198.444458\tC1\t147.32.81.167\t62771\t40.74.108.123\t443\ttcp\tssl\t1.135424\t1596\t4039\tSF\tShADdaFf\t14\t1016\t16\t1226\t(empty)\tBenign\tMicrosoft\n");
    std::fs::write(&good, text).unwrap();
    let bad = dir.path().join("bad.log");
    std::fs::write(&bad, format!("{ZEEK_HEADER}not-a-time\tC3\n")).unwrap();
    let out = dir.path().join("trace");
    zeek::import(std::slice::from_ref(&good), &out).unwrap();
    let before = read_table(&out, FlowRecord::TABLE);
    assert_eq!(before.iter().map(|b| b.num_rows()).sum::<usize>(), 2);

    let report = zeek::import(std::slice::from_ref(&bad), &out).unwrap();
    assert_eq!((report.lines, report.bad), (1, 1));
    assert!(report.rows.is_empty(), "{report:?}");
    assert!(
        report.text(&out).starts_with("imported nothing;"),
        "{}",
        report.text(&out)
    );
    assert_eq!(read_table(&out, FlowRecord::TABLE), before);

    let csv = dir.path().join("bad.csv");
    std::fs::write(
        &csv,
        "timestamp,node,metric,value\n2026-01-01T00:00:00Z,a,cpu,x\n",
    )
    .unwrap();
    let report = metrics::import(&csv, None, &out).unwrap();
    assert_eq!((report.lines, report.bad, report.rows.len()), (1, 1, 0));
    assert!(!out.join(NodeMetric::TABLE).exists());
    assert_eq!(read_table(&out, FlowRecord::TABLE), before);
}

#[test]
fn zeek_gzip_and_a_file_missing_key_fields() {
    let dir = tempfile::tempdir().unwrap();
    let gz = dir.path().join("conn.log.gz");
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(ZEEK_HEADER.as_bytes()).unwrap();
    encoder.write_all(b"1655071198.444458\tC1\t147.32.81.167\t62771\t40.74.108.123\t443\ttcp\tssl\t1.135424\t1596\t4039\tSF\tShADdaFf\t14\t1016\t16\t1226\t(empty)\tBenign\tMicrosoft\n").unwrap();
    std::fs::write(&gz, encoder.finish().unwrap()).unwrap();
    let broken = dir.path().join("broken.log");
    std::fs::write(&broken, "#fields\tts\tuid\n1655071198\tC9\n").unwrap();
    let out = dir.path().join("trace");
    let report = zeek::import(&[gz, broken], &out).unwrap();
    assert_eq!(report.rows_of(FlowRecord::TABLE), 2);
    assert_eq!(report.bad, 1);
    assert!(
        report.bad_lines[0]
            .to_string()
            .contains("broken.log:2: the #fields header has no `id.orig_h` field (line 1)"),
        "{}",
        report.bad_lines[0]
    );
}

#[test]
fn metric_csv_with_header_names_edges_and_bad_lines() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("metrics.csv");
    std::fs::write(
        &csv,
        "node,metric,value,timestamp\n\
         checkout,latency_ms,12.5,2026-01-01T00:00:01Z\n\
         10.0.0.7,latency_ms,3,1767225600000\n\
         checkout,latency_ms,oops,1767225602\n\
         \"cart, eu\",requests,7,1767225600.5\n\
         checkout,latency_ms,1e400,1767225603\n\
         checkout,latency_ms,1\n",
    )
    .unwrap();
    let edges = dir.path().join("edges.csv");
    std::fs::write(
        &edges,
        "src,dst\ncheckout,\"cart, eu\"\ncheckout\n10.0.0.7,checkout\n",
    )
    .unwrap();
    let out = dir.path().join("trace");
    let report = metrics::import(&csv, Some(&edges), &out).unwrap();
    let reasons: Vec<String> = report.bad_lines.iter().map(|b| b.to_string()).collect();
    assert_eq!(report.bad, 4, "{reasons:?}");
    assert!(
        reasons[0].ends_with("metrics.csv:4: value: `oops` is not a finite number"),
        "{reasons:?}"
    );
    assert!(
        reasons[1].ends_with("metrics.csv:6: value: `1e400` is not a finite number"),
        "{reasons:?}"
    );
    assert!(
        reasons[2]
            .ends_with("metrics.csv:7: has 3 fields, expected 4 (node,metric,value,timestamp)"),
        "{reasons:?}"
    );
    assert!(
        reasons[3].ends_with("edges.csv:3: expected two non-empty fields: src,dst"),
        "{reasons:?}"
    );

    let metrics: Vec<NodeMetric> = read_table(&out, NodeMetric::TABLE)
        .iter()
        .flat_map(|b| NodeMetric::from_batch(b).unwrap())
        .collect();
    let got: Vec<(i64, u64, &str, f64)> = metrics
        .iter()
        .map(|m| (m.time.0 / 1_000_000, m.node, &*m.metric, m.value))
        .collect();
    assert_eq!(
        got,
        vec![
            (
                1_767_225_600_000,
                node_id_of_name("10.0.0.7"),
                "latency_ms",
                3.0
            ),
            (
                1_767_225_600_500,
                node_id_of_name("cart, eu"),
                "requests",
                7.0
            ),
            (
                1_767_225_601_000,
                node_id_of_name("checkout"),
                "latency_ms",
                12.5
            ),
        ]
    );
    let names: Vec<NodeName> = read_table(&out, NodeName::TABLE)
        .iter()
        .flat_map(|b| NodeName::from_batch(b).unwrap())
        .collect();
    let mut listed: Vec<&str> = names.iter().map(|n| n.name.as_str()).collect();
    listed.sort();
    assert_eq!(listed, ["10.0.0.7", "cart, eu", "checkout"]);
    let edges: Vec<TopologyEdge> = read_table(&out, TopologyEdge::TABLE)
        .iter()
        .flat_map(|b| TopologyEdge::from_batch(b).unwrap())
        .collect();
    let pairs: Vec<(u64, u64)> = edges.iter().map(|e| (e.src_node, e.dst_node)).collect();
    assert_eq!(
        pairs,
        vec![
            (node_id_of_name("checkout"), node_id_of_name("cart, eu")),
            (node_id_of_name("10.0.0.7"), node_id_of_name("checkout")),
        ]
    );
    assert!(
        edges
            .iter()
            .all(|e| e.valid_from.0 == 1_767_225_600_000_000_000)
    );
}

#[test]
fn a_metric_csv_whose_header_misses_a_column_is_refused_with_its_name() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("m.csv");
    std::fs::write(&csv, "time,node,metric,value\n1,a,b,2\n").unwrap();
    let err = metrics::import(&csv, None, &dir.path().join("t"))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains(
            "m.csv: line 1: the header `time,node,metric,value` has no `timestamp` column"
        ),
        "{err}"
    );
}

/// A connection line of [`ZEEK_HEADER`]'s layout whose responder sent nothing (one
/// flow record).
fn one_way_line(i: u32) -> String {
    format!(
        "{}.{i:06}\tC{i}\t10.0.{}.{}\t{}\t10.1.0.1\t80\ttcp\t-\t0.5\t10\t0\tS0\tS\t1\t{}\t0\t0\t(empty)\tBenign\t-\n",
        1_655_071_000 + i,
        i / 250,
        i % 250,
        1024 + i % 60_000,
        40 + i % 977
    )
}

/// A gzip file cut in the middle keeps the lines before the cut, reports the line
/// where it broke like a malformed line, and the other files are still imported.
#[test]
fn a_truncated_gzip_keeps_its_lines_before_the_cut_and_the_other_files() {
    let dir = tempfile::tempdir().unwrap();
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(ZEEK_HEADER.as_bytes()).unwrap();
    for i in 0..5000 {
        encoder.write_all(one_way_line(i).as_bytes()).unwrap();
    }
    let whole = encoder.finish().unwrap();
    let cut = dir.path().join("cut.log.gz");
    std::fs::write(&cut, &whole[..whole.len() / 2]).unwrap();
    let other = dir.path().join("other.log");
    std::fs::write(&other, format!("{ZEEK_HEADER}{}", one_way_line(9999))).unwrap();
    let out = dir.path().join("trace");

    let report = zeek::import(&[cut, other], &out).unwrap();
    assert_eq!(report.bad, 1, "{report:?}");
    let bad = &report.bad_lines[0];
    assert!(bad.file.ends_with("cut.log.gz"), "{bad}");
    assert!(
        bad.reason
            .starts_with("the file cannot be read past this line (")
            && bad.reason.ends_with("); the lines before it were imported"),
        "{bad}"
    );
    // The header's lines come first; every connection line before the cut is one flow.
    let kept = bad.line - 1 - ZEEK_HEADER.lines().count() as u64;
    assert!(kept > 100 && kept < 5000, "{bad}");
    assert_eq!(report.rows_of(FlowRecord::TABLE), kept + 1);
    assert_eq!(report.lines, kept + 2, "the broken line is counted");
    let rows: usize = read_table(&out, FlowRecord::TABLE)
        .iter()
        .map(|b| b.num_rows())
        .sum();
    assert_eq!(rows as u64, kept + 1);
}

/// The flow records (in event-time order) and the `direction` column of a trace.
fn flows_with_direction(out: &Path) -> Vec<(FlowRecord, String)> {
    read_table(out, FlowRecord::TABLE)
        .iter()
        .flat_map(|b| {
            let direction = b.column_by_name("direction").unwrap().as_string::<i32>();
            FlowRecord::from_batch(b)
                .unwrap()
                .into_iter()
                .enumerate()
                .map(|(i, r)| (r, direction.value(i).to_string()))
                .collect::<Vec<_>>()
        })
        .collect()
}

/// Zeek writes `icmp` for ICMPv6 as well: between IPv6 addresses it is protocol 58.
#[test]
fn zeek_icmp_between_ipv6_addresses_is_icmpv6() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("conn.log");
    let mut text = ZEEK_HEADER.to_string();
    text.push_str("1526313001.1\tC1\t::\t135\tff02::1:ff7f:abb3\t136\ticmp\t-\t-\t-\t-\tOTH\t-\t1\t64\t0\t0\t(empty)\tBenign\t-\n");
    text.push_str("1526313002.1\tC2\t192.168.1.2\t8\t192.168.1.1\t0\ticmp\t-\t-\t-\t-\tOTH\t-\t1\t84\t0\t0\t(empty)\tBenign\t-\n");
    std::fs::write(&log, text).unwrap();
    let out = dir.path().join("trace");
    let report = zeek::import(std::slice::from_ref(&log), &out).unwrap();
    assert_eq!(report.bad, 0, "{report:?}");
    let protocols: Vec<u8> = flows_with_direction(&out)
        .iter()
        .map(|(f, _)| f.protocol)
        .collect();
    assert_eq!(protocols, [58, 1]);
}

/// Unset packet counts do not drop the responder's bytes: both directions are
/// written, with 0 packets and the Zeek `*_pkts` columns null.
#[test]
fn zeek_unset_packet_counts_keep_both_directions_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("conn.log");
    let mut text = ZEEK_HEADER.to_string();
    text.push_str("1655071198.5\tC1\t147.32.81.167\t62771\t40.74.108.123\t443\ttcp\tssl\t1.0\t1596\t4039\tSF\tShADdaFf\t-\t1016\t-\t1226\t(empty)\tBenign\t-\n");
    std::fs::write(&log, text).unwrap();
    let out = dir.path().join("trace");
    let report = zeek::import(std::slice::from_ref(&log), &out).unwrap();
    assert_eq!(report.rows_of(FlowRecord::TABLE), 2, "{report:?}");
    let flows = flows_with_direction(&out);
    let got: Vec<(&str, u64, u64)> = flows
        .iter()
        .map(|(f, d)| (d.as_str(), f.bytes, f.packets))
        .collect();
    assert_eq!(got, [("orig", 1016, 0), ("resp", 1226, 0)]);
    let batches = read_table(&out, FlowRecord::TABLE);
    let resp_pkts = batches[0].column_by_name("resp_pkts").unwrap();
    assert_eq!(resp_pkts.null_count(), 2, "an unset count stays null");
}

/// A file given twice (here once through `..`) is imported once, with a warning.
#[test]
fn a_zeek_file_given_twice_is_imported_once() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("conn.log");
    std::fs::write(&log, format!("{ZEEK_HEADER}{}", one_way_line(1))).unwrap();
    std::fs::create_dir(dir.path().join("sub")).unwrap();
    let again = dir.path().join("sub/../conn.log");
    let out = dir.path().join("trace");
    let report = zeek::import(&[log.clone(), again.clone()], &out).unwrap();
    assert_eq!(report.rows_of(FlowRecord::TABLE), 1, "{report:?}");
    assert_eq!(report.lines, 1);
    assert_eq!(
        report.warnings,
        [format!(
            "{} is given more than once (also as {}); it is imported once",
            again.display(),
            log.display()
        )]
    );
    assert!(report.text(&out).contains("\nwarning: "));
    assert_eq!(flows_with_direction(&out).len(), 1);
}
