//! The [`ArrowRecord`] trait and the `record!` macro that defines each record once.

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;

use crate::SchemaError;
use crate::time::TimestampNs;

/// A record type with a fixed Arrow schema and lossless batch conversion.
pub trait ArrowRecord: Sized + Clone + Send + 'static {
    /// The table (and output folder, and default topic) name.
    const TABLE: &'static str;
    /// The schema version, carried in JSON encodings so consumers can evolve.
    const VERSION: u32;
    /// The event-time column: it decides the row's Hive partition (`date`, `hour`).
    const TIME_COLUMN: &'static str;
    /// The Arrow schema, identical for every batch of this record.
    fn schema() -> SchemaRef;
    /// Converts rows to one batch, in order.
    fn to_batch(rows: &[Self]) -> RecordBatch;
    /// Converts a batch back to rows. Columns are found by name, so extra columns
    /// are ignored; a missing column or a wrong type is an error naming it.
    fn from_batch(batch: &RecordBatch) -> Result<Vec<Self>, SchemaError>;
    /// The event time of the row, which decides its partition.
    fn event_time(&self) -> TimestampNs;
}

/// Defines a record struct, its Arrow schema and its conversions in one place.
macro_rules! record {
    (
        $(#[doc = $doc:expr])*
        table = $table:literal, version = $version:literal, time = $time:ident;
        pub struct $name:ident {
            $( $(#[doc = $fdoc:expr])* pub $field:ident : $ty:ty ),* $(,)?
        }
    ) => {
        $(#[doc = $doc])*
        #[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        pub struct $name {
            $( $(#[doc = $fdoc])* pub $field: $ty, )*
        }

        impl $crate::record::ArrowRecord for $name {
            const TABLE: &'static str = $table;
            const VERSION: u32 = $version;
            const TIME_COLUMN: &'static str = stringify!($time);

            fn schema() -> datafusion::arrow::datatypes::SchemaRef {
                static SCHEMA: std::sync::OnceLock<datafusion::arrow::datatypes::SchemaRef> =
                    std::sync::OnceLock::new();
                SCHEMA
                    .get_or_init(|| {
                        std::sync::Arc::new(datafusion::arrow::datatypes::Schema::new(vec![$(
                            datafusion::arrow::datatypes::Field::new(
                                stringify!($field),
                                <$ty as $crate::field::ArrowField>::data_type(),
                                <$ty as $crate::field::ArrowField>::nullable(),
                            ),
                        )*]))
                    })
                    .clone()
            }

            fn to_batch(rows: &[Self]) -> datafusion::arrow::record_batch::RecordBatch {
                let columns = vec![$(
                    <$ty as $crate::field::ArrowField>::to_array(rows.iter().map(|r| &r.$field)),
                )*];
                datafusion::arrow::record_batch::RecordBatch::try_new(Self::schema(), columns)
                    .expect("columns are built from the record's own schema")
            }

            fn from_batch(
                batch: &datafusion::arrow::record_batch::RecordBatch,
            ) -> Result<Vec<Self>, $crate::SchemaError> {
                $(
                    let at = $crate::field::ColumnRef { table: $table, column: stringify!($field) };
                    let column = batch.column_by_name(stringify!($field)).ok_or_else(|| {
                        $crate::SchemaError::MissingColumn { table: $table, column: stringify!($field).to_string() }
                    })?;
                    let mut $field =
                        <$ty as $crate::field::ArrowField>::from_array(column, at)?.into_iter();
                )*
                Ok((0..batch.num_rows())
                    .map(|_| Self { $( $field: $field.next().expect("column length equals row count"), )* })
                    .collect())
            }

            fn event_time(&self) -> $crate::time::TimestampNs {
                self.$time
            }
        }
    };
}

pub(crate) use record;

/// Defines a closed set of named values stored as a UTF-8 column (readable in SQL).
macro_rules! string_enum {
    (
        $(#[doc = $doc:expr])*
        pub enum $name:ident { $( $(#[doc = $vdoc:expr])* $variant:ident = $text:literal ),* $(,)? }
    ) => {
        $(#[doc = $doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
        pub enum $name {
            $( $(#[doc = $vdoc])* #[serde(rename = $text)] $variant, )*
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),*];

            /// The stored text of this value.
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text,)* }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl std::str::FromStr for $name {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, String> {
                match s {
                    $($text => Ok($name::$variant),)*
                    other => Err(format!(
                        "unknown {} `{other}`; expected one of: {}",
                        stringify!($name),
                        [$($text),*].join(", ")
                    )),
                }
            }
        }

        impl $crate::field::ArrowField for $name {
            fn data_type() -> datafusion::arrow::datatypes::DataType {
                datafusion::arrow::datatypes::DataType::Utf8
            }
            fn to_array<'a>(values: impl ExactSizeIterator<Item = &'a Self>) -> datafusion::arrow::array::ArrayRef {
                std::sync::Arc::new(datafusion::arrow::array::StringArray::from_iter_values(values.map(|v| v.as_str())))
            }
            fn from_array(
                array: &datafusion::arrow::array::ArrayRef,
                at: $crate::field::ColumnRef<'_>,
            ) -> Result<Vec<Self>, $crate::SchemaError> {
                <String as $crate::field::ArrowField>::from_array(array, at)?
                    .into_iter()
                    .enumerate()
                    .map(|(row, s)| s.parse().map_err(|reason: String| at.invalid(row, &s, reason)))
                    .collect()
            }
        }
    };
}

pub(crate) use string_enum;
