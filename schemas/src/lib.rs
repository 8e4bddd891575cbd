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
//! configuration, [`ByteSize`] for memory budgets, and [`Counters`] that every
//! component keeps.
//!
//! Arrow comes only through DataFusion's re-export, so the workspace has one arrow version.

/// Serialises a type as its `Display` text and deserialises it with `FromStr`, so
/// configuration values such as `"10s"` and `"1GiB"` read and write the same way. A
/// bare integer (`history_memory = 1024`) is parsed as its decimal text, so the
/// type's own parser accepts it or says what it lacks.
macro_rules! serde_as_text {
    ($ty:ty, $expecting:literal) => {
        impl serde::Serialize for $ty {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }

        impl<'de> serde::Deserialize<'de> for $ty {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                struct Text;
                impl serde::de::Visitor<'_> for Text {
                    type Value = $ty;
                    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                        f.write_str($expecting)
                    }
                    fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<$ty, E> {
                        s.parse().map_err(E::custom)
                    }
                    fn visit_u64<E: serde::de::Error>(self, n: u64) -> Result<$ty, E> {
                        self.visit_str(&n.to_string())
                    }
                    fn visit_i64<E: serde::de::Error>(self, n: i64) -> Result<$ty, E> {
                        self.visit_str(&n.to_string())
                    }
                }
                d.deserialize_any(Text)
            }
        }
    };
}

pub mod counters;
pub mod duration;
pub mod field;
pub mod inputs;
pub mod ip;
pub mod json;
pub mod node_features;
pub mod outputs;
pub mod record;
mod scaled;
pub mod size;
pub mod time;

pub use counters::{CounterSnapshot, Counters};
pub use datafusion::arrow;
pub use duration::HumanDuration;
pub use inputs::{
    Chain, FlowRecord, INPUT_TABLES, NodeMetric, NodeName, Payment, SyscallLatency, TcpEvent,
    TcpEventKind, TopologyEdge,
};
pub use ip::{Ip16, node_id_of_ip, node_id_of_name, node_label, register_node_names};
pub use node_features::{
    BASE_FEATURE_COUNT, BASE_FEATURES, FEATURE_COUNT, FEATURE_NAMES, NodeFeatures,
};
pub use outputs::{
    AnomalyScore, CausalEdge, FaultKind, GroundTruth, HealthState, Incident, PaymentVerification,
    RootCause, Trend, VerificationStatus,
};
pub use record::ArrowRecord;
pub use size::ByteSize;
pub use time::{NANOS_PER_SEC, TimestampNs};

/// Calls `$found` with the record type whose table is `$table`, for every record
/// meshflow defines: the one registry of tables by name.
macro_rules! with_table {
    ($table:expr, $found:ident) => {{
        let table = $table;
        with_table!(@each table, $found;
            FlowRecord, NodeMetric, TcpEvent, SyscallLatency, Payment, TopologyEdge, NodeName,
            NodeFeatures, AnomalyScore, CausalEdge, Incident, RootCause, PaymentVerification,
            GroundTruth)
    }};
    (@each $t:ident, $found:ident; $($record:ty),*) => {{
        $(if $t == <$record>::TABLE {
            return Some($found::<$record>());
        })*
        None
    }};
}

/// The event-time column of a meshflow table (the one that decides its `date` and
/// `hour` partitions), or `None` for a table meshflow does not define.
pub fn time_column(table: &str) -> Option<&'static str> {
    fn time<R: ArrowRecord>() -> &'static str {
        R::TIME_COLUMN
    }
    with_table!(table, time)
}

/// The Arrow schema of a meshflow table by its name, or `None` for an unknown table
/// (lets readers open an output table that has no files yet).
pub fn schema_of(table: &str) -> Option<datafusion::arrow::datatypes::SchemaRef> {
    with_table!(table, schema)
}

fn schema<R: ArrowRecord>() -> datafusion::arrow::datatypes::SchemaRef {
    R::schema()
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
