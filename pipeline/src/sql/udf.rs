//! Functions `meshflow sql` adds to DataFusion's own.

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, FixedSizeBinaryArray, StringArray};
use datafusion::arrow::datatypes::DataType;
use datafusion::common::{DataFusionError, ScalarValue};
use datafusion::logical_expr::{ColumnarValue, ScalarUDF, Volatility, create_udf};
use datafusion::prelude::SessionContext;
use meshflow_schemas::Ip16;

/// Registers every function of this module with `ctx`.
pub fn register(ctx: &SessionContext) {
    ctx.register_udf(ip_text());
}

/// `ip_text(src_ip)`: an address column (16 bytes, IPv4 mapped into IPv6) as text,
/// `10.0.0.1` or `2001:db8::1`, since the raw bytes show as hex.
fn ip_text() -> ScalarUDF {
    create_udf(
        "ip_text",
        vec![DataType::FixedSizeBinary(16)],
        DataType::Utf8,
        Volatility::Immutable,
        Arc::new(|args: &[ColumnarValue]| {
            let [arg] = args else {
                return Err(DataFusionError::Plan(
                    "ip_text takes one address column".into(),
                ));
            };
            Ok(match arg {
                ColumnarValue::Array(array) => ColumnarValue::Array(texts(array)?),
                ColumnarValue::Scalar(scalar) => {
                    let array = scalar.to_array()?;
                    let text = texts(&array)?;
                    ColumnarValue::Scalar(ScalarValue::try_from_array(&text, 0)?)
                }
            })
        }),
    )
}

/// Each 16-byte value of `array` as address text; null stays null.
fn texts(array: &ArrayRef) -> Result<ArrayRef, DataFusionError> {
    let bytes: &FixedSizeBinaryArray = array.as_fixed_size_binary_opt().ok_or_else(|| {
        DataFusionError::Plan(format!(
            "ip_text takes a 16-byte address column, not {}",
            array.data_type()
        ))
    })?;
    let text: StringArray = (0..bytes.len())
        .map(|i| {
            (!bytes.is_null(i)).then(|| {
                let mut octets = [0u8; 16];
                octets.copy_from_slice(bytes.value(i));
                Ip16(octets).to_string()
            })
        })
        .collect();
    Ok(Arc::new(text))
}

#[cfg(test)]
mod tests {
    use datafusion::arrow::datatypes::{Field, Schema};
    use datafusion::arrow::record_batch::RecordBatch;
    use datafusion::datasource::MemTable;

    use super::*;

    #[test]
    fn ip_text_shows_addresses_and_keeps_nulls() {
        let ips: Vec<Option<Ip16>> = vec![
            Some("10.0.0.1".parse().unwrap()),
            None,
            Some("2001:db8::1".parse().unwrap()),
        ];
        let column = FixedSizeBinaryArray::try_from_sparse_iter_with_size(
            ips.iter().map(|ip| ip.map(|ip| ip.0)),
            16,
        )
        .unwrap();
        let schema = Arc::new(Schema::new(vec![Field::new(
            "src_ip",
            DataType::FixedSizeBinary(16),
            true,
        )]));
        let batch = RecordBatch::try_new(schema.clone(), vec![Arc::new(column)]).unwrap();
        let ctx = SessionContext::new();
        register(&ctx);
        let table = MemTable::try_new(schema, vec![vec![batch]]).unwrap();
        ctx.register_table("flows", Arc::new(table)).unwrap();
        let rt = tokio::runtime::Runtime::new().unwrap();
        let batches = rt
            .block_on(async {
                let df = ctx.sql("SELECT ip_text(src_ip) AS ip FROM flows").await?;
                df.collect().await
            })
            .unwrap();
        let got: Vec<Option<String>> = batches
            .iter()
            .flat_map(|b| {
                let text = b.column(0).as_string::<i32>();
                (0..text.len())
                    .map(|i| (!text.is_null(i)).then(|| text.value(i).to_string()))
                    .collect::<Vec<_>>()
            })
            .collect();
        assert_eq!(
            got,
            vec![Some("10.0.0.1".into()), None, Some("2001:db8::1".into())]
        );
        let err = rt
            .block_on(ctx.sql("SELECT ip_text(42)"))
            .err()
            .map(|e| e.to_string());
        assert!(
            err.is_some_and(|e| e.contains("ip_text")),
            "a non-address argument is refused"
        );
    }
}
