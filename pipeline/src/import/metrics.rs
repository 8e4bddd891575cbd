//! A long-format metric CSV (`timestamp,node,metric,value`) → meshflow node metrics,
//! with an optional topology (`src,dst`).
//!
//! Timestamps are RFC 3339 or a number since the epoch: seconds, or milliseconds when
//! the integer part has 12 or more digits (1e11 s is beyond the year 5000). Nodes
//! are numbers, IP addresses or names ([`node_id_of_name`]); the `nodes/` table
//! keeps each name next to its id. A header row is optional: when the first line
//! names a column (and does not start with a time), it is the header, which must
//! name all four, in any order; other columns are ignored. Otherwise the lines are
//! records in the default order.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};

use meshflow_schemas::{
    ArrowRecord, NodeMetric, NodeName, TimestampNs, TopologyEdge, node_id_of_name,
};
use meshflow_sinks::parquet::write_table;

use super::trace::write_whole;
use super::{ImportError, ImportReport, each_line, progress_for, trace_sink};

const COLUMNS: [&str; 4] = ["timestamp", "node", "metric", "value"];

/// Imports the metric CSV `csv` (and the edge list `edges`, if given) into the trace
/// folder `out`: tables `node_metrics/`, `nodes/` and `edges/` (any other trace table
/// there, `edges/` too without an edge list, is removed).
pub fn import(csv: &Path, edges: Option<&Path>, out: &Path) -> Result<ImportReport, ImportError> {
    let files: Vec<PathBuf> = std::iter::once(csv)
        .chain(edges)
        .map(Path::to_path_buf)
        .collect();
    let progress = progress_for(&files);
    let mut report = ImportReport::default();
    let mut nodes = Nodes::default();
    let mut metrics = Vec::new();
    let mut columns: Option<Columns> = None;
    each_line(csv, &progress, &mut report, |report, number, line| {
        if line.trim().is_empty() {
            return Ok(());
        }
        let fields = split_csv(&line);
        if columns.is_none() && is_header(&fields) {
            let layout = Columns::of_header(&fields).map_err(|reason| ImportError::Input {
                path: csv.to_path_buf(),
                reason: format!("line {number}: {reason}"),
            })?;
            if !layout.ignored.is_empty() {
                report.warn(format!(
                    "{}: ignoring the columns {} (only timestamp, node, metric and value are imported)",
                    csv.display(),
                    layout.ignored.join(", ")
                ));
            }
            columns = Some(layout);
            return Ok(());
        }
        let first = columns.is_none();
        let layout = columns.get_or_insert_with(Columns::default);
        report.lines += 1;
        let [t, node, metric, value] = layout.order;
        if fields.len() != layout.names.len() {
            report.skip(
                csv,
                number,
                format!(
                    "has {} fields, expected {} ({})",
                    fields.len(),
                    layout.names.len(),
                    layout.names.join(",")
                ),
            );
            return Ok(());
        }
        let time = match parse_time(&fields[t]) {
            Ok(t) => t,
            Err(e) if first => {
                report.skip(
                    csv,
                    number,
                    format!("timestamp: {e}; nor is the line a header (one naming the columns timestamp, node, metric and value)"),
                );
                return Ok(());
            }
            Err(e) => {
                report.skip(csv, number, format!("timestamp: {e}"));
                return Ok(());
            }
        };
        let name = fields[node].trim();
        if name.is_empty() {
            report.skip(csv, number, "node is empty");
            return Ok(());
        }
        let metric_name = fields[metric].trim();
        if metric_name.is_empty() {
            report.skip(csv, number, "metric is empty");
            return Ok(());
        }
        let value = match fields[value].trim().parse::<f64>() {
            Ok(v) if v.is_finite() => v,
            _ => {
                report.skip(
                    csv,
                    number,
                    format!("value: `{}` is not a finite number", fields[value].trim()),
                );
                return Ok(());
            }
        };
        let id = nodes.id(name, time, report);
        metrics.push(NodeMetric {
            time,
            node: id,
            metric: metric_name.into(),
            value,
        });
        Ok(())
    })?;
    let start = metrics
        .iter()
        .map(|m| m.time)
        .min()
        .unwrap_or(TimestampNs(0));
    let mut links = Vec::new();
    if let Some(edges) = edges {
        // The optional `src,dst` header is the first line that is not blank.
        let mut first = true;
        each_line(edges, &progress, &mut report, |report, number, line| {
            if line.trim().is_empty() {
                return Ok(());
            }
            let fields = split_csv(&line);
            let is_header = std::mem::replace(&mut first, false)
                && fields.len() == 2
                && fields[0].trim().eq_ignore_ascii_case("src")
                && fields[1].trim().eq_ignore_ascii_case("dst");
            if is_header {
                return Ok(());
            }
            report.lines += 1;
            if fields.len() != 2 || fields.iter().any(|f| f.trim().is_empty()) {
                report.skip(edges, number, "expected two non-empty fields: src,dst");
                return Ok(());
            }
            let src = nodes.id(fields[0].trim(), start, report);
            let dst = nodes.id(fields[1].trim(), start, report);
            if src == dst {
                report.skip(edges, number, "a link from a node to itself");
                return Ok(());
            }
            links.push(TopologyEdge {
                valid_from: start,
                src_node: src,
                dst_node: dst,
            });
            Ok(())
        })?;
    }
    progress.finish_and_clear();
    if metrics.is_empty() {
        // Nothing to write: an earlier trace in `out` stays as it was. Links alone
        // would give a replay no window, and no time for them to start at.
        if let Some(edges) = edges.filter(|_| !links.is_empty()) {
            report.warn(format!(
                "{} holds no valid metric record, so the links of {} are not imported either (links alone give a replay no window)",
                csv.display(),
                edges.display()
            ));
        }
        return Ok(report);
    }
    let nodes: Vec<NodeName> = nodes
        .by_id
        .into_iter()
        .map(|(node, (name, first_seen))| NodeName {
            first_seen,
            node,
            name,
        })
        .collect();
    report.rows.push((NodeMetric::TABLE, metrics.len() as u64));
    report.rows.push((NodeName::TABLE, nodes.len() as u64));
    let links = edges.map(|_| links);
    if let Some(links) = &links {
        report.rows.push((TopologyEdge::TABLE, links.len() as u64));
    }
    let written: Vec<&str> = report.rows.iter().map(|(table, _)| *table).collect();
    write_whole(out, &written, &mut report, |dir| {
        let sink = trace_sink(dir);
        write_table(dir, metrics, &sink)?;
        write_table(dir, nodes, &sink)?;
        match links {
            Some(links) => write_table(dir, links, &sink).map(drop),
            None => Ok(()),
        }
    })?;
    Ok(report)
}

/// The nodes an import names: per node id, the first name seen (aliases such as
/// `7` and `007`, or two spellings of one IPv6 address, share an id and one row of
/// `nodes/`) and the earliest time it was seen.
#[derive(Default)]
struct Nodes {
    by_id: BTreeMap<u64, (String, TimestampNs)>,
    /// The other names of an id that were already warned about.
    aliases: HashSet<String>,
}

impl Nodes {
    /// The id of `name`, remembering the name and the first time it was seen, and
    /// warning once about every other name of an id already named.
    fn id(&mut self, name: &str, time: TimestampNs, report: &mut ImportReport) -> u64 {
        let id = node_id_of_name(name);
        let (first, first_seen) = self
            .by_id
            .entry(id)
            .or_insert_with(|| (name.to_string(), time));
        *first_seen = (*first_seen).min(time);
        if first != name && self.aliases.insert(name.to_string()) {
            report.warn(format!(
                "nodes `{first}` and `{name}` are the same node id {id}; named `{first}` (the first seen)"
            ));
        }
        id
    }
}

/// Whether the first line of a metric CSV is a header: it names one of the columns
/// and does not start with a time.
fn is_header(fields: &[String]) -> bool {
    parse_time(&fields[0]).is_err()
        && fields
            .iter()
            .any(|f| COLUMNS.iter().any(|c| f.trim().eq_ignore_ascii_case(c)))
}

/// The layout of a metric CSV's records: the default (the four columns in order)
/// or its header's.
struct Columns {
    /// Every column's name, in order.
    names: Vec<String>,
    /// Positions of timestamp, node, metric and value.
    order: [usize; 4],
    /// Columns of the header that are not imported.
    ignored: Vec<String>,
}

impl Default for Columns {
    fn default() -> Self {
        Self {
            names: COLUMNS.map(String::from).to_vec(),
            order: [0, 1, 2, 3],
            ignored: Vec::new(),
        }
    }
}

impl Columns {
    /// The layout a header row declares: the four columns in any order, plus any
    /// others (ignored).
    fn of_header(fields: &[String]) -> Result<Self, String> {
        let names: Vec<String> = fields.iter().map(|f| f.trim().to_string()).collect();
        let mut order = [0; 4];
        for (slot, name) in order.iter_mut().zip(COLUMNS) {
            *slot = names
                .iter()
                .position(|f| f.eq_ignore_ascii_case(name))
                .ok_or_else(|| {
                    format!(
                        "the header `{}` has no `{name}` column (expected timestamp,node,metric,value)",
                        names.join(",")
                    )
                })?;
        }
        let ignored = names
            .iter()
            .enumerate()
            .filter(|(i, _)| !order.contains(i))
            .map(|(_, n)| format!("`{n}`"))
            .collect();
        Ok(Self {
            names,
            order,
            ignored,
        })
    }
}

/// An RFC 3339 time, or seconds or milliseconds since the epoch.
pub fn parse_time(text: &str) -> Result<TimestampNs, String> {
    let text = text.trim();
    let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
    let digits = whole.strip_prefix('-').unwrap_or(whole);
    if digits.len() >= 12 && digits.bytes().all(|b| b.is_ascii_digit()) {
        // Milliseconds: move the decimal point three places to the left.
        let (secs, millis) = whole.split_at(whole.len() - 3);
        return format!("{secs}.{millis}{fraction}")
            .parse()
            .map_err(|_| {
                format!(
                    "`{text}` is not milliseconds since the epoch in range (an integer part of 12 or more digits is read as milliseconds; nanosecond timestamps cover the years 1678..2262)"
                )
            });
    }
    text.parse()
}

/// Splits one CSV line (RFC 4180 quoting: `"a,b"` and `""` inside quotes).
fn split_csv(line: &str) -> Vec<String> {
    let mut fields = Vec::new();
    let mut field = String::new();
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                chars.next();
                field.push('"');
            }
            ('"', true) => quoted = false,
            ('"', false) if field.is_empty() => quoted = true,
            (',', false) => fields.push(std::mem::take(&mut field)),
            (c, _) => field.push(c),
        }
    }
    fields.push(field);
    fields
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_in_every_accepted_form() {
        let t = TimestampNs(1_767_225_900_250_000_000);
        assert_eq!(parse_time("2026-01-01T00:05:00.25Z"), Ok(t));
        assert_eq!(parse_time("1767225900.25"), Ok(t));
        assert_eq!(parse_time("1767225900250"), Ok(t));
        assert_eq!(parse_time(" 1767225900250.0 "), Ok(t));
        assert!(parse_time("yesterday").is_err());
    }

    /// A millisecond timestamp out of range is quoted as written, not as the seconds
    /// it was turned into.
    #[test]
    fn a_bad_millisecond_time_is_quoted_as_written() {
        let err = parse_time("13970883000000").unwrap_err();
        assert!(
            err.starts_with("`13970883000000` is not milliseconds since the epoch in range"),
            "{err}"
        );
        assert!(!err.contains("13970883000.000"), "{err}");
    }

    #[test]
    fn csv_quotes_hold_commas_and_quotes() {
        assert_eq!(
            split_csv(r#"1,"a,b",m,"say ""hi""""#),
            vec!["1", "a,b", "m", r#"say "hi""#]
        );
        assert_eq!(split_csv("1,,x"), vec!["1", "", "x"]);
    }
}
