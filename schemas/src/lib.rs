//! Every record that crosses a meshflow boundary, defined once, with its Arrow schema.
//!
//! Inputs ([`FlowRecord`], [`NodeMetric`], [`TcpEvent`], [`SyscallLatency`], [`Payment`])
//! and outputs ([`NodeFeatures`], [`AnomalyScore`], [`CausalEdge`], [`Incident`],
//! [`RootCause`], [`PaymentVerification`], [`GroundTruth`]) each implement
//! [`ArrowRecord`]: a fixed schema and lossless conversion to and from Arrow
//! record batches. Event time is [`TimestampNs`], stored as `TIMESTAMP(ns, UTC)`;
//! money is integer base units.
//!
//! [`json`] is the one JSON encoding of these records (used by the Kafka sink and
//! source): one flat object per record, tagged with its table and schema version.
//!
//! It also holds the small shared vocabulary of the job: [`HumanDuration`] for
//! configuration and [`Counters`] that every component keeps.
//!
//! Arrow comes only through DataFusion's re-export, so the workspace has one arrow version.

pub mod counters;
pub mod duration;
pub mod field;
pub mod inputs;
pub mod ip;
pub mod json;
pub mod outputs;
pub mod record;
pub mod time;

pub use counters::{CounterSnapshot, Counters};
pub use datafusion::arrow;
pub use duration::HumanDuration;
pub use inputs::{Chain, FlowRecord, NodeMetric, Payment, SyscallLatency, TcpEvent, TcpEventKind};
pub use ip::{Ip16, node_id_of_ip, node_label};
pub use outputs::{
    AnomalyScore, CausalEdge, FaultKind, GroundTruth, HealthState, Incident, NodeFeatures,
    PaymentVerification, RootCause, VerificationStatus,
};
pub use record::ArrowRecord;
pub use time::{NANOS_PER_SEC, TimestampNs};

/// The event-time column of a meshflow table (the one that decides its `date` and
/// `hour` partitions), or `None` for a table meshflow does not define.
pub fn time_column(table: &str) -> Option<&'static str> {
    macro_rules! find {
        ($($record:ty),*) => {
            $(if table == <$record>::TABLE {
                return Some(<$record>::TIME_COLUMN);
            })*
        };
    }
    find!(
        FlowRecord,
        NodeMetric,
        TcpEvent,
        SyscallLatency,
        Payment,
        NodeFeatures,
        AnomalyScore,
        CausalEdge,
        Incident,
        RootCause,
        PaymentVerification,
        GroundTruth
    );
    None
}

/// The Arrow schema of a meshflow table by its name, or `None` for an unknown table
/// (lets readers open an output table that has no files yet).
pub fn schema_of(table: &str) -> Option<datafusion::arrow::datatypes::SchemaRef> {
    macro_rules! find {
        ($($record:ty),*) => {
            $(if table == <$record>::TABLE {
                return Some(<$record as ArrowRecord>::schema());
            })*
        };
    }
    find!(
        FlowRecord,
        NodeMetric,
        TcpEvent,
        SyscallLatency,
        Payment,
        NodeFeatures,
        AnomalyScore,
        CausalEdge,
        Incident,
        RootCause,
        PaymentVerification,
        GroundTruth
    );
    None
}

/// A batch that does not match a record's schema.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum SchemaError {
    /// A required column is absent.
    #[error("table `{table}`: column `{column}` is missing")]
    MissingColumn {
        /// Table being decoded.
        table: &'static str,
        /// Missing column.
        column: String,
    },
    /// A column has the wrong Arrow type.
    #[error("table `{table}`: column `{column}` has type {found}, expected {expected}")]
    TypeMismatch {
        /// Table being decoded.
        table: &'static str,
        /// Offending column.
        column: String,
        /// Type the schema requires.
        expected: String,
        /// Type found.
        found: String,
    },
    /// A non-nullable column holds a null.
    #[error("table `{table}`: column `{column}` is null at row {row} but is required")]
    UnexpectedNull {
        /// Table being decoded.
        table: &'static str,
        /// Offending column.
        column: String,
        /// First null row.
        row: usize,
    },
    /// A value has the right type but is not allowed.
    #[error("table `{table}`: column `{column}` row {row}: `{value}` is invalid: {reason}")]
    InvalidValue {
        /// Table being decoded.
        table: &'static str,
        /// Offending column.
        column: String,
        /// Row of the value.
        row: usize,
        /// The value as text.
        value: String,
        /// Why it is rejected.
        reason: String,
    },
}

#[cfg(test)]
mod tests;
