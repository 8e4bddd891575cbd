//! Mapping between Rust field types and Arrow columns.
//!
//! Every column type a record may use implements [`ArrowField`] once, so records
//! never hand-write array builders and conversions stay lossless in both directions.

use std::borrow::Cow;
use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, FixedSizeBinaryArray, ListArray, PrimitiveArray,
    StringArray, TimestampNanosecondArray,
};
use datafusion::arrow::buffer::OffsetBuffer;
use datafusion::arrow::datatypes::{
    ArrowPrimitiveType, DataType, Field, Float64Type, Int32Type, Int64Type, TimeUnit, UInt8Type,
    UInt16Type, UInt32Type, UInt64Type,
};

use crate::SchemaError;
use crate::ip::Ip16;
use crate::time::TimestampNs;

/// Where a column is being read from, for error messages.
#[derive(Clone, Copy, Debug)]
pub struct ColumnRef<'a> {
    /// The table (record type) being decoded.
    pub table: &'static str,
    /// The column name.
    pub column: &'a str,
}

impl ColumnRef<'_> {
    fn mismatch(&self, expected: &DataType, found: &DataType) -> SchemaError {
        SchemaError::TypeMismatch {
            table: self.table,
            column: self.column.to_string(),
            expected: expected.to_string(),
            found: found.to_string(),
        }
    }

    fn null(&self, row: usize) -> SchemaError {
        SchemaError::UnexpectedNull {
            table: self.table,
            column: self.column.to_string(),
            row,
        }
    }

    /// Builds an error for a value that has the right type but is not allowed.
    pub fn invalid(&self, row: usize, value: impl ToString, reason: impl ToString) -> SchemaError {
        SchemaError::InvalidValue {
            table: self.table,
            column: self.column.to_string(),
            row,
            value: value.to_string(),
            reason: reason.to_string(),
        }
    }
}

/// A Rust type that is stored as one Arrow column.
pub trait ArrowField: Sized {
    /// The Arrow data type of the column.
    fn data_type() -> DataType;
    /// Whether the column may hold nulls (only `Option` types).
    fn nullable() -> bool {
        false
    }
    /// Builds a column from values, in order.
    fn to_array<'a>(values: impl ExactSizeIterator<Item = &'a Self>) -> ArrayRef
    where
        Self: 'a;
    /// Reads a whole column back, checking its type and nulls.
    fn from_array(array: &ArrayRef, at: ColumnRef<'_>) -> Result<Vec<Self>, SchemaError>;
}

fn no_nulls(array: &dyn Array, at: ColumnRef<'_>) -> Result<(), SchemaError> {
    if array.null_count() > 0 {
        let row = (0..array.len()).find(|&i| array.is_null(i)).unwrap_or(0);
        return Err(at.null(row));
    }
    Ok(())
}

fn primitive<'b, P: ArrowPrimitiveType>(
    array: &'b ArrayRef,
    at: ColumnRef<'_>,
) -> Result<&'b PrimitiveArray<P>, SchemaError> {
    array
        .as_primitive_opt::<P>()
        .ok_or_else(|| at.mismatch(&P::DATA_TYPE, array.data_type()))
}

macro_rules! primitive_field {
    ($($rust:ty => $arrow:ty),* $(,)?) => {$(
        impl ArrowField for $rust {
            fn data_type() -> DataType {
                <$arrow as ArrowPrimitiveType>::DATA_TYPE
            }
            fn to_array<'a>(values: impl ExactSizeIterator<Item = &'a Self>) -> ArrayRef {
                Arc::new(PrimitiveArray::<$arrow>::from_iter_values(values.copied()))
            }
            fn from_array(array: &ArrayRef, at: ColumnRef<'_>) -> Result<Vec<Self>, SchemaError> {
                let a = primitive::<$arrow>(array, at)?;
                no_nulls(a, at)?;
                Ok(a.values().to_vec())
            }
        }

        impl ArrowField for Option<$rust> {
            fn data_type() -> DataType {
                <$arrow as ArrowPrimitiveType>::DATA_TYPE
            }
            fn nullable() -> bool {
                true
            }
            fn to_array<'a>(values: impl ExactSizeIterator<Item = &'a Self>) -> ArrayRef {
                Arc::new(values.copied().collect::<PrimitiveArray<$arrow>>())
            }
            fn from_array(array: &ArrayRef, at: ColumnRef<'_>) -> Result<Vec<Self>, SchemaError> {
                Ok(primitive::<$arrow>(array, at)?.iter().collect())
            }
        }
    )*};
}

primitive_field!(
    u8 => UInt8Type,
    u16 => UInt16Type,
    u32 => UInt32Type,
    u64 => UInt64Type,
    i32 => Int32Type,
    i64 => Int64Type,
    f64 => Float64Type,
);

impl ArrowField for bool {
    fn data_type() -> DataType {
        DataType::Boolean
    }
    fn to_array<'a>(values: impl ExactSizeIterator<Item = &'a Self>) -> ArrayRef {
        Arc::new(values.map(|v| Some(*v)).collect::<BooleanArray>())
    }
    fn from_array(array: &ArrayRef, at: ColumnRef<'_>) -> Result<Vec<Self>, SchemaError> {
        let a = array
            .as_boolean_opt()
            .ok_or_else(|| at.mismatch(&DataType::Boolean, array.data_type()))?;
        no_nulls(a, at)?;
        Ok(a.values().iter().collect())
    }
}

/// Reads any Arrow string column (Utf8, LargeUtf8, Utf8View), each value made into a
/// `T` by `own` (nulls stay `None`).
fn strings<T>(
    array: &ArrayRef,
    at: ColumnRef<'_>,
    mut own: impl FnMut(&str) -> T,
) -> Result<Vec<Option<T>>, SchemaError> {
    let out = match array.data_type() {
        DataType::Utf8 => array
            .as_string::<i32>()
            .iter()
            .map(|s| s.map(&mut own))
            .collect(),
        DataType::LargeUtf8 => array
            .as_string::<i64>()
            .iter()
            .map(|s| s.map(&mut own))
            .collect(),
        DataType::Utf8View => array
            .as_string_view()
            .iter()
            .map(|s| s.map(&mut own))
            .collect(),
        other => return Err(at.mismatch(&DataType::Utf8, other)),
    };
    Ok(out)
}

/// Reads a string column that must hold no nulls, each value made into a `T` by `own`.
fn required_strings<T: Default>(
    array: &ArrayRef,
    at: ColumnRef<'_>,
    own: impl FnMut(&str) -> T,
) -> Result<Vec<T>, SchemaError> {
    no_nulls(array.as_ref(), at)?;
    Ok(strings(array, at, own)?
        .into_iter()
        .map(Option::unwrap_or_default)
        .collect())
}

impl ArrowField for String {
    fn data_type() -> DataType {
        DataType::Utf8
    }
    fn to_array<'a>(values: impl ExactSizeIterator<Item = &'a Self>) -> ArrayRef {
        Arc::new(StringArray::from_iter_values(values))
    }
    fn from_array(array: &ArrayRef, at: ColumnRef<'_>) -> Result<Vec<Self>, SchemaError> {
        required_strings(array, at, str::to_owned)
    }
}

impl ArrowField for Option<String> {
    fn data_type() -> DataType {
        DataType::Utf8
    }
    fn nullable() -> bool {
        true
    }
    fn to_array<'a>(values: impl ExactSizeIterator<Item = &'a Self>) -> ArrayRef {
        Arc::new(values.map(Option::as_deref).collect::<StringArray>())
    }
    fn from_array(array: &ArrayRef, at: ColumnRef<'_>) -> Result<Vec<Self>, SchemaError> {
        strings(array, at, str::to_owned)
    }
}

/// How many recent distinct values reading an `Arc<str>` column shares.
const RECENT_SHARED: usize = 8;

/// Shared text (the names of series and reasons that many rows repeat): a row holds
/// a reference, not a copy, and reading a column makes one copy per distinct value.
impl ArrowField for Arc<str> {
    fn data_type() -> DataType {
        DataType::Utf8
    }
    fn to_array<'a>(values: impl ExactSizeIterator<Item = &'a Self>) -> ArrayRef {
        Arc::new(StringArray::from_iter_values(values.map(|s| &**s)))
    }
    fn from_array(array: &ArrayRef, at: ColumnRef<'_>) -> Result<Vec<Self>, SchemaError> {
        // The last few distinct values, compared before a new copy is made: a series
        // name repeats over a column in a short cycle (one per metric of a node).
        let mut recent: Vec<Arc<str>> = Vec::with_capacity(RECENT_SHARED);
        let mut next = 0;
        let share = |s: &str| {
            if let Some(shared) = recent.iter().find(|r| ***r == *s) {
                return shared.clone();
            }
            let shared: Arc<str> = Arc::from(s);
            if recent.len() < RECENT_SHARED {
                recent.push(shared.clone());
            } else {
                recent[next] = shared.clone();
                next = (next + 1) % RECENT_SHARED;
            }
            shared
        };
        required_strings(array, at, share)
    }
}

/// Text that is most often a constant (a model's name, a feature's): a row holds the
/// constant itself, neither a copy nor a shared count that threads contend for; text
/// read back from a column is owned.
impl ArrowField for Cow<'static, str> {
    fn data_type() -> DataType {
        DataType::Utf8
    }
    fn to_array<'a>(values: impl ExactSizeIterator<Item = &'a Self>) -> ArrayRef {
        Arc::new(StringArray::from_iter_values(values.map(|s| &**s)))
    }
    fn from_array(array: &ArrayRef, at: ColumnRef<'_>) -> Result<Vec<Self>, SchemaError> {
        required_strings(array, at, |s| Cow::Owned(s.to_owned()))
    }
}

fn timestamps<'b>(
    array: &'b ArrayRef,
    at: ColumnRef<'_>,
) -> Result<&'b TimestampNanosecondArray, SchemaError> {
    match array.data_type() {
        DataType::Timestamp(TimeUnit::Nanosecond, _) => {
            Ok(array.as_primitive::<datafusion::arrow::datatypes::TimestampNanosecondType>())
        }
        other => Err(at.mismatch(&TimestampNs::data_type(), other)),
    }
}

impl ArrowField for TimestampNs {
    fn data_type() -> DataType {
        DataType::Timestamp(TimeUnit::Nanosecond, Some("UTC".into()))
    }
    fn to_array<'a>(values: impl ExactSizeIterator<Item = &'a Self>) -> ArrayRef {
        Arc::new(
            TimestampNanosecondArray::from_iter_values(values.map(|t| t.0)).with_timezone("UTC"),
        )
    }
    fn from_array(array: &ArrayRef, at: ColumnRef<'_>) -> Result<Vec<Self>, SchemaError> {
        let a = timestamps(array, at)?;
        no_nulls(a, at)?;
        Ok(a.values().iter().map(|&v| TimestampNs(v)).collect())
    }
}

impl ArrowField for Option<TimestampNs> {
    fn data_type() -> DataType {
        TimestampNs::data_type()
    }
    fn nullable() -> bool {
        true
    }
    fn to_array<'a>(values: impl ExactSizeIterator<Item = &'a Self>) -> ArrayRef {
        Arc::new(
            values
                .map(|t| t.map(|t| t.0))
                .collect::<TimestampNanosecondArray>()
                .with_timezone("UTC"),
        )
    }
    fn from_array(array: &ArrayRef, at: ColumnRef<'_>) -> Result<Vec<Self>, SchemaError> {
        Ok(timestamps(array, at)?
            .iter()
            .map(|t| t.map(TimestampNs))
            .collect())
    }
}

impl ArrowField for Ip16 {
    fn data_type() -> DataType {
        DataType::FixedSizeBinary(16)
    }
    fn to_array<'a>(values: impl ExactSizeIterator<Item = &'a Self>) -> ArrayRef {
        let array = FixedSizeBinaryArray::try_from_iter(values.map(|ip| ip.0))
            .or_else(|_| FixedSizeBinaryArray::try_new(16, Vec::<u8>::new().into(), None))
            .expect("16-byte values always form a FixedSizeBinary(16) array");
        Arc::new(array)
    }
    fn from_array(array: &ArrayRef, at: ColumnRef<'_>) -> Result<Vec<Self>, SchemaError> {
        let a = array
            .as_fixed_size_binary_opt()
            .filter(|a| a.value_length() == 16)
            .ok_or_else(|| at.mismatch(&DataType::FixedSizeBinary(16), array.data_type()))?;
        no_nulls(a, at)?;
        Ok((0..a.len())
            .map(|i| {
                let mut b = [0u8; 16];
                b.copy_from_slice(a.value(i));
                Ip16(b)
            })
            .collect())
    }
}

/// Builds a non-null list column from per-row child arrays flattened into `child`.
fn list_array(item: DataType, lengths: impl Iterator<Item = usize>, child: ArrayRef) -> ArrayRef {
    let field = Arc::new(Field::new("item", item, false));
    Arc::new(ListArray::new(
        field,
        OffsetBuffer::from_lengths(lengths),
        child,
        None,
    ))
}

fn list_rows<T: ArrowField>(
    array: &ArrayRef,
    at: ColumnRef<'_>,
) -> Result<Vec<Vec<T>>, SchemaError> {
    let list = array.as_list_opt::<i32>().ok_or_else(|| {
        let expected = DataType::List(Arc::new(Field::new("item", T::data_type(), false)));
        at.mismatch(&expected, array.data_type())
    })?;
    no_nulls(list, at)?;
    let mut values = T::from_array(list.values(), at)?.into_iter();
    Ok(list
        .offsets()
        .windows(2)
        .map(|w| values.by_ref().take((w[1] - w[0]) as usize).collect())
        .collect())
}

macro_rules! list_field {
    ($($item:ty),* $(,)?) => {$(
        impl ArrowField for Vec<$item> {
            fn data_type() -> DataType {
                DataType::List(Arc::new(Field::new("item", <$item>::data_type(), false)))
            }
            fn to_array<'a>(values: impl ExactSizeIterator<Item = &'a Self>) -> ArrayRef {
                let rows: Vec<&Self> = values.collect();
                let child = <$item>::to_array(rows.iter().flat_map(|r| r.iter()).collect::<Vec<_>>().into_iter());
                list_array(<$item>::data_type(), rows.iter().map(|r| r.len()), child)
            }
            fn from_array(array: &ArrayRef, at: ColumnRef<'_>) -> Result<Vec<Self>, SchemaError> {
                list_rows::<$item>(array, at)
            }
        }
    )*};
}

list_field!(
    String,
    Arc<str>,
    Cow<'static, str>,
    f64,
    u64,
    crate::outputs::Trend
);
