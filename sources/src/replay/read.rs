//! Reading the columns of a flow trace that the dataflow needs.

use std::fs::File;

use datafusion::parquet::arrow::ProjectionMask;
use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use meshflow_schemas::field::{ArrowField, ColumnRef};
use meshflow_schemas::{ArrowRecord, FlowRecord, TimestampNs};

use super::{ReplayError, ReplayUnit, TimeRange};

/// The flow columns the traffic dataflow reads, as plain vectors (struct of arrays).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct FlowColumns {
    /// Event time of each flow (`last_seen`).
    pub last_seen: Vec<TimestampNs>,
    /// Sending node.
    pub src_node: Vec<u64>,
    /// Receiving node.
    pub dst_node: Vec<u64>,
    /// Bytes.
    pub bytes: Vec<u64>,
    /// Packets.
    pub packets: Vec<u64>,
}

/// Names of the flow columns the replay reads (projection pushdown).
pub const FLOW_COLUMNS: [&str; 5] = ["last_seen", "src_node", "dst_node", "bytes", "packets"];

impl FlowColumns {
    /// Number of flows.
    pub fn len(&self) -> usize {
        self.last_seen.len()
    }

    /// Whether there are no flows.
    pub fn is_empty(&self) -> bool {
        self.last_seen.is_empty()
    }

    /// Removes all flows, keeping capacity.
    pub fn clear(&mut self) {
        self.truncate(0);
    }

    /// Keeps the first `len` flows.
    pub fn truncate(&mut self, len: usize) {
        self.last_seen.truncate(len);
        self.src_node.truncate(len);
        self.dst_node.truncate(len);
        self.bytes.truncate(len);
        self.packets.truncate(len);
    }

    /// Moves every flow of `other` to the end of `self`, leaving `other` empty.
    pub fn append(&mut self, other: &mut FlowColumns) {
        self.last_seen.append(&mut other.last_seen);
        self.src_node.append(&mut other.src_node);
        self.dst_node.append(&mut other.dst_node);
        self.bytes.append(&mut other.bytes);
        self.packets.append(&mut other.packets);
    }

    /// Appends the flows `rows` of `other`.
    pub fn extend_from(&mut self, other: &FlowColumns, rows: std::ops::Range<usize>) {
        self.last_seen
            .extend_from_slice(&other.last_seen[rows.clone()]);
        self.src_node
            .extend_from_slice(&other.src_node[rows.clone()]);
        self.dst_node
            .extend_from_slice(&other.dst_node[rows.clone()]);
        self.bytes.extend_from_slice(&other.bytes[rows.clone()]);
        self.packets.extend_from_slice(&other.packets[rows]);
    }

    /// Orders the flows by event time, keeping the order of equal times.
    pub fn sort_by_time(&mut self) {
        if self.last_seen.is_sorted() {
            return;
        }
        let mut order: Vec<usize> = (0..self.len()).collect();
        order.sort_by_key(|&i| self.last_seen[i]);
        fn permute<T: Copy>(v: &mut Vec<T>, order: &[usize]) {
            *v = order.iter().map(|&i| v[i]).collect();
        }
        permute(&mut self.last_seen, &order);
        permute(&mut self.src_node, &order);
        permute(&mut self.dst_node, &order);
        permute(&mut self.bytes, &order);
        permute(&mut self.packets, &order);
    }

    /// Appends one flow record.
    pub fn push(&mut self, f: &FlowRecord) {
        self.last_seen.push(f.last_seen);
        self.src_node.push(f.src_node);
        self.dst_node.push(f.dst_node);
        self.bytes.push(f.bytes);
        self.packets.push(f.packets);
    }
}

fn column<T: ArrowField>(
    batch: &datafusion::arrow::record_batch::RecordBatch,
    name: &'static str,
) -> Result<Vec<T>, String> {
    let array = batch
        .column_by_name(name)
        .ok_or_else(|| format!("column `{name}` is missing"))?;
    T::from_array(
        array,
        ColumnRef {
            table: FlowRecord::TABLE,
            column: name,
        },
    )
    .map_err(|e| e.to_string())
}

/// Reads one row group's flow columns, appending to `out`; when the unit is marked
/// [`ReplayUnit::filter`], only the flows whose `last_seen` lies in `range`. On error
/// `out` may hold part of the unit; callers discard it.
pub fn read_flow_columns(
    unit: &ReplayUnit,
    range: &TimeRange,
    out: &mut FlowColumns,
) -> Result<(), ReplayError> {
    let bad = |reason: String| ReplayError::BadFile {
        path: unit.path.clone(),
        reason: format!("row group {}: {reason}", unit.row_group),
    };
    let file = File::open(&unit.path).map_err(|e| bad(format!("cannot open: {e}")))?;
    let builder = ParquetRecordBatchReaderBuilder::try_new(file).map_err(|e| bad(e.to_string()))?;
    let mask = ProjectionMask::columns(builder.parquet_schema(), FLOW_COLUMNS);
    let reader = builder
        .with_projection(mask)
        .with_row_groups(vec![unit.row_group])
        .with_batch_size(64 * 1024)
        .build()
        .map_err(|e| bad(e.to_string()))?;
    for batch in reader {
        let batch = batch.map_err(|e| bad(e.to_string()))?;
        let read = (|| {
            Ok::<_, String>((
                column::<TimestampNs>(&batch, "last_seen")?,
                column::<u64>(&batch, "src_node")?,
                column::<u64>(&batch, "dst_node")?,
                column::<u64>(&batch, "bytes")?,
                column::<u64>(&batch, "packets")?,
            ))
        })()
        .map_err(bad)?;
        let read = FlowColumns {
            last_seen: read.0,
            src_node: read.1,
            dst_node: read.2,
            bytes: read.3,
            packets: read.4,
        };
        if !unit.filter {
            out.extend_from(&read, 0..read.len());
            continue;
        }
        let mut i = 0;
        while i < read.len() {
            let start = i + read.last_seen[i..]
                .iter()
                .position(|t| range.contains(*t))
                .unwrap_or(read.len() - i);
            let end = start
                + read.last_seen[start..]
                    .iter()
                    .position(|t| !range.contains(*t))
                    .unwrap_or(read.len() - start);
            out.extend_from(&read, start..end);
            i = end;
        }
    }
    Ok(())
}
