//! Zeek `conn.log` (TSV with `#fields`, plain or gzip) → meshflow flow records.
//!
//! A connection becomes one [`FlowRecord`] from originator to responder and, when the
//! responder sent packets or bytes, one back: bytes are IP-level (`orig_ip_bytes`,
//! falling back to the payload `orig_bytes`), times run from `ts` to `ts + duration`,
//! and TCP flags come from Zeek's `history` letters. An unset (`-`) count is 0 in the
//! record; its Zeek column (kept, see below) stays null, so "unknown" shows. Every
//! other Zeek column (`uid`, `service`, `conn_state`, `label`, `detailedlabel`, ...)
//! is kept as a text column of the same rows, with dots in names turned to
//! underscores, plus `direction` (`orig` or `resp`).

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use meshflow_schemas::{ArrowRecord, Counters, FlowRecord, Ip16, TimestampNs, node_id_of_ip};
use meshflow_sinks::parquet::{SinkError, TableWriter, prepare_table_dir};

use super::trace::write_whole;
use super::{ImportError, ImportReport, each_line, progress_for, trace_sink, unique_files};

/// The Zeek fields a flow record is built from; the rest are kept as text.
const KEY_FIELDS: [&str; 6] = [
    "ts",
    "id.orig_h",
    "id.orig_p",
    "id.resp_h",
    "id.resp_p",
    "proto",
];

/// Imports Zeek conn.log `files` into the trace folder `out` (its `flows/` table; any
/// other trace table there is removed).
pub fn import(files: &[PathBuf], out: &Path) -> Result<ImportReport, ImportError> {
    let mut report = ImportReport::default();
    let files = unique_files(files, &mut report);
    let progress = progress_for(&files);
    let mut extras = ExtraColumns::default();
    let mut rows: Vec<Row> = Vec::new();
    for file in &files {
        read_file(file, &progress, &mut report, &mut extras, &mut rows)?;
    }
    progress.finish_and_clear();
    if rows.is_empty() {
        // Nothing to write: an earlier trace in `out` stays as it was.
        return Ok(report);
    }
    rows.sort_by_key(|(r, _)| r.last_seen);
    report.rows.push((FlowRecord::TABLE, rows.len() as u64));
    write_whole(out, &[FlowRecord::TABLE], &mut report, |dir| {
        write_flows(dir, rows, extras.names)
    })?;
    Ok(report)
}

/// Writes `rows`, with their kept Zeek columns `extras`, as the `flows/` table of the
/// trace folder `dir`.
fn write_flows(dir: &Path, rows: Vec<Row>, extras: Vec<String>) -> Result<(), SinkError> {
    let sink = trace_sink(dir);
    let dir = prepare_table_dir(dir, FlowRecord::TABLE, sink.mode)?;
    let mut writer = TableWriter::<FlowRecord>::new(dir, 0, &sink, Counters::shared())
        .with_extra_columns(extras);
    for (row, values) in rows {
        writer.write_with_extras(row, &values)?;
    }
    writer.finish()
}

/// A flow record and the values of its kept Zeek columns.
type Row = (FlowRecord, Vec<Option<String>>);

/// The union of kept Zeek columns over all files, in first-seen order.
#[derive(Default)]
struct ExtraColumns {
    names: Vec<String>,
    index: HashMap<String, usize>,
}

impl ExtraColumns {
    /// The column of a kept Zeek field, added if new.
    fn column(&mut self, zeek_field: &str) -> usize {
        let mut name = zeek_field.replace('.', "_");
        if FlowRecord::schema().field_with_name(&name).is_ok() {
            name = format!("zeek_{name}");
        }
        let next = self.names.len();
        *self.index.entry(name.clone()).or_insert_with(|| {
            self.names.push(name);
            next
        })
    }
}

/// The layout a `#fields` header declares.
struct Layout {
    fields: usize,
    /// Positions of [`KEY_FIELDS`].
    key: [usize; 6],
    duration: Option<usize>,
    orig_bytes: Option<usize>,
    resp_bytes: Option<usize>,
    orig_pkts: Option<usize>,
    resp_pkts: Option<usize>,
    history: Option<usize>,
    /// (position in the line, extra column) of every kept field.
    kept: Vec<(usize, usize)>,
    direction: usize,
    /// Extra columns known when the header was read.
    width: usize,
}

impl Layout {
    fn new(names: &[&str], extras: &mut ExtraColumns) -> Result<Self, String> {
        let find = |n: &str| names.iter().position(|f| *f == n);
        let mut key = [0; 6];
        for (slot, name) in key.iter_mut().zip(KEY_FIELDS) {
            *slot =
                find(name).ok_or_else(|| format!("the #fields header has no `{name}` field"))?;
        }
        let kept = names
            .iter()
            .enumerate()
            .filter(|(_, n)| !KEY_FIELDS.contains(n))
            .map(|(i, n)| (i, extras.column(n)))
            .collect();
        let direction = extras.column("direction");
        Ok(Self {
            fields: names.len(),
            key,
            duration: find("duration"),
            orig_bytes: find("orig_ip_bytes").or_else(|| find("orig_bytes")),
            resp_bytes: find("resp_ip_bytes").or_else(|| find("resp_bytes")),
            orig_pkts: find("orig_pkts"),
            resp_pkts: find("resp_pkts"),
            history: find("history"),
            kept,
            direction,
            width: extras.names.len(),
        })
    }
}

/// Header settings of one log.
struct Header {
    separator: String,
    unset: String,
    empty: String,
    layout: Option<Layout>,
}

fn read_file(
    path: &Path,
    progress: &indicatif::ProgressBar,
    report: &mut ImportReport,
    extras: &mut ExtraColumns,
    rows: &mut Vec<Row>,
) -> Result<(), ImportError> {
    let mut header = Header {
        separator: "\t".into(),
        unset: "-".into(),
        empty: "(empty)".into(),
        layout: None,
    };
    let mut header_error: Option<String> = None;
    each_line(path, progress, report, |report, number, line| {
        if let Some(directive) = line.strip_prefix('#') {
            let (name, value) = directive.split_once([' ', '\t']).unwrap_or((directive, ""));
            match name {
                "separator" => header.separator = unescape(value.trim()),
                "unset_field" => header.unset = value.to_string(),
                "empty_field" => header.empty = value.to_string(),
                "fields" => {
                    let names: Vec<&str> = value.split(header.separator.as_str()).collect();
                    match Layout::new(&names, extras) {
                        Ok(layout) => {
                            header.layout = Some(layout);
                            header_error = None;
                        }
                        Err(e) => {
                            header.layout = None;
                            header_error = Some(format!("{e} (line {number})"));
                        }
                    }
                }
                _ => {}
            }
            return Ok(());
        }
        if line.trim().is_empty() {
            return Ok(());
        }
        report.lines += 1;
        let Some(layout) = &header.layout else {
            let reason = header_error
                .clone()
                .unwrap_or_else(|| "a record before any #fields header".into());
            report.skip(path, number, reason);
            return Ok(());
        };
        match parse_line(&line, layout, &header) {
            Ok(flows) => rows.extend(flows),
            Err(reason) => report.skip(path, number, reason),
        }
        Ok(())
    })
}

/// `\x09` style escapes of the `#separator` directive.
fn unescape(text: &str) -> String {
    match text.strip_prefix("\\x").map(|h| u8::from_str_radix(h, 16)) {
        Some(Ok(b)) => (b as char).to_string(),
        _ => text.to_string(),
    }
}

fn parse_line(line: &str, layout: &Layout, header: &Header) -> Result<Vec<Row>, String> {
    let values: Vec<&str> = line.split(header.separator.as_str()).collect();
    if values.len() != layout.fields {
        return Err(format!(
            "has {} fields, the #fields header declares {}",
            values.len(),
            layout.fields
        ));
    }
    let unset = |i: Option<usize>| i.map(|i| values[i]).filter(|v| *v != header.unset);
    let [ts, orig_h, orig_p, resp_h, resp_p, proto] = layout.key.map(|i| values[i]);
    let first_seen: TimestampNs = ts
        .parse()
        .ok()
        .filter(|_| ts.starts_with(|c: char| c.is_ascii_digit()))
        .ok_or_else(|| format!("ts: `{ts}` is not seconds since the epoch"))?;
    let ip = |name: &str, v: &str| {
        v.parse::<IpAddr>()
            .map_err(|_| format!("{name}: `{v}` is not an IP address"))
    };
    let port = |name: &str, v: &str| {
        v.parse::<u16>()
            .map_err(|_| format!("{name}: `{v}` is not a port number"))
    };
    let count = |name: &str, i: Option<usize>| -> Result<u64, String> {
        unset(i).map_or(Ok(0), |v| {
            v.parse::<u64>()
                .map_err(|_| format!("{name}: `{v}` is not a count"))
        })
    };
    let (orig_ip, resp_ip) = (ip("id.orig_h", orig_h)?, ip("id.resp_h", resp_h)?);
    let (orig_port, resp_port) = (port("id.orig_p", orig_p)?, port("id.resp_p", resp_p)?);
    let protocol = match proto {
        "tcp" => 6,
        "udp" => 17,
        // Zeek writes `icmp` for ICMPv6 too.
        "icmp" if orig_ip.to_canonical().is_ipv6() => 58,
        "icmp" => 1,
        "icmp6" | "ipv6-icmp" => 58,
        other => other
            .parse::<u8>()
            .map_err(|_| format!("proto: `{other}` is not tcp, udp, icmp or a number"))?,
    };
    let duration_ns = match unset(layout.duration) {
        None => 0,
        Some(v) => {
            let d: TimestampNs = v
                .parse()
                .map_err(|_| format!("duration: `{v}` is not seconds"))?;
            if d.0 < 0 {
                return Err(format!("duration: `{v}` is negative"));
            }
            d.0
        }
    };
    let last_seen = TimestampNs(first_seen.0.saturating_add(duration_ns));
    let history = unset(layout.history).unwrap_or("");
    let orig = (
        count("orig bytes", layout.orig_bytes)?,
        count("orig_pkts", layout.orig_pkts)?,
    );
    let resp = (
        count("resp bytes", layout.resp_bytes)?,
        count("resp_pkts", layout.resp_pkts)?,
    );

    let mut kept = vec![None; layout.width];
    for &(i, column) in &layout.kept {
        let v = values[i];
        kept[column] = if v == header.unset {
            None
        } else if v == header.empty {
            Some(String::new())
        } else {
            Some(v.to_string())
        };
    }
    let flow =
        |from: IpAddr, to: IpAddr, ports: (u16, u16), (bytes, packets): (u64, u64), flags| {
            FlowRecord {
                src_node: node_id_of_ip(from),
                dst_node: node_id_of_ip(to),
                src_ip: Ip16::from(from),
                dst_ip: Ip16::from(to),
                src_port: ports.0,
                dst_port: ports.1,
                protocol,
                bytes,
                packets,
                first_seen,
                last_seen,
                tcp_flags: flags,
            }
        };
    let mut out = Vec::with_capacity(2);
    let mut forward = kept.clone();
    forward[layout.direction] = Some("orig".into());
    out.push((
        flow(
            orig_ip,
            resp_ip,
            (orig_port, resp_port),
            orig,
            tcp_flags(history, true),
        ),
        forward,
    ));
    // An unset count is unknown (0), not "nothing sent": the responder sent something
    // if it has packets or bytes.
    if resp != (0, 0) {
        kept[layout.direction] = Some("resp".into());
        out.push((
            flow(
                resp_ip,
                orig_ip,
                (resp_port, orig_port),
                resp,
                tcp_flags(history, false),
            ),
            kept,
        ));
    }
    Ok(out)
}

/// TCP flags one side sent, from Zeek's `history` (upper case: originator, lower
/// case: responder): S/H SYN (H with ACK), A ACK, F FIN, R RST.
fn tcp_flags(history: &str, originator: bool) -> u8 {
    const FIN: u8 = 0x01;
    const SYN: u8 = 0x02;
    const RST: u8 = 0x04;
    const ACK: u8 = 0x10;
    history
        .chars()
        .filter(|c| c.is_ascii_uppercase() == originator)
        .map(|c| match c.to_ascii_uppercase() {
            'S' => SYN,
            'H' => SYN | ACK,
            'A' => ACK,
            'F' => FIN,
            'R' => RST,
            _ => 0,
        })
        .fold(0, |a, b| a | b)
}
