//! Partition pruning by time: a filter on a table's event-time column also becomes a
//! filter on its Hive partitions (`date`, `hour`), so a time-bounded query lists and
//! opens only the files of the matching hours.
//!
//! The sink puts a row in the partition of its event time's UTC date and hour, so
//! `time >= X` implies `(date, hour) >= (date(X), hour(X))` (the partition values are
//! zero-padded text, ordered like the times) and `time <= Y` implies the mirror image.

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::datatypes::{DataType, SchemaRef, TimeUnit};
use datafusion::catalog::{ScanArgs, ScanResult, Session, TableProvider};
use datafusion::common::{Column, Constraints, ScalarValue, Statistics};
use datafusion::datasource::TableType;
use datafusion::datasource::listing::ListingTable;
use datafusion::error::Result;
use datafusion::logical_expr::expr::{BinaryExpr, Cast, TryCast};
use datafusion::logical_expr::{Between, Expr, Operator, TableProviderFilterPushDown, lit};
use datafusion::physical_plan::ExecutionPlan;
use meshflow_schemas::TimestampNs;

/// A Hive-partitioned output table whose scans add partition filters implied by
/// filters on its event-time column.
#[derive(Debug)]
pub struct TimePartitionedTable {
    inner: Arc<ListingTable>,
    time_column: String,
}

impl TimePartitionedTable {
    /// Wraps a listing table partitioned by `date` and `hour` of `time_column`.
    pub fn new(inner: Arc<ListingTable>, time_column: &str) -> Self {
        Self {
            inner,
            time_column: time_column.to_string(),
        }
    }
}

#[async_trait]
impl TableProvider for TimePartitionedTable {
    fn schema(&self) -> SchemaRef {
        self.inner.schema()
    }

    fn constraints(&self) -> Option<&Constraints> {
        self.inner.constraints()
    }

    fn table_type(&self) -> TableType {
        self.inner.table_type()
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> Result<Vec<TableProviderFilterPushDown>> {
        self.inner.supports_filters_pushdown(filters)
    }

    fn statistics(&self) -> Option<Statistics> {
        self.inner.statistics()
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let args = ScanArgs::default()
            .with_projection(projection.map(|p| p.as_slice()))
            .with_filters(Some(filters))
            .with_limit(limit);
        Ok(self.scan_with_args(state, args).await?.into_inner())
    }

    async fn scan_with_args<'a>(
        &self,
        state: &dyn Session,
        args: ScanArgs<'a>,
    ) -> Result<ScanResult> {
        let mut filters = args.filters().map(<[Expr]>::to_vec).unwrap_or_default();
        filters.extend(partition_filters(&filters, &self.time_column));
        let args = ScanArgs::default()
            .with_projection(args.projection())
            .with_filters(Some(&filters))
            .with_limit(args.limit())
            .with_statistics_requests(args.statistics_requests());
        self.inner.scan_with_args(state, args).await
    }
}

/// Filters on `date` and `hour` implied by the conjunction of `filters` on the
/// nanosecond timestamp column `column` (comparisons with a constant, `BETWEEN`);
/// empty when they bound no time.
pub fn partition_filters(filters: &[Expr], column: &str) -> Vec<Expr> {
    let mut bounds = Bounds::default();
    for filter in filters {
        bounds.add(filter, column);
    }
    let part = |name: &str| Expr::Column(Column::new_unqualified(name));
    let mut out = Vec::new();
    if let Some(low) = bounds.low {
        let (date, hour) = TimestampNs(low).date_hour();
        out.push(
            part("date").gt(lit(date.clone())).or(part("date")
                .eq(lit(date))
                .and(part("hour").gt_eq(lit(format!("{hour:02}"))))),
        );
    }
    if let Some(high) = bounds.high {
        let (date, hour) = TimestampNs(high).date_hour();
        out.push(
            part("date").lt(lit(date.clone())).or(part("date")
                .eq(lit(date))
                .and(part("hour").lt_eq(lit(format!("{hour:02}"))))),
        );
    }
    out
}

/// Inclusive bounds on the time column, in nanoseconds.
#[derive(Default)]
struct Bounds {
    low: Option<i64>,
    high: Option<i64>,
}

impl Bounds {
    fn raise_low(&mut self, v: i64) {
        self.low = Some(self.low.map_or(v, |l| l.max(v)));
    }

    fn lower_high(&mut self, v: i64) {
        self.high = Some(self.high.map_or(v, |h| h.min(v)));
    }

    fn add(&mut self, filter: &Expr, column: &str) {
        match filter {
            Expr::BinaryExpr(BinaryExpr {
                left,
                op: Operator::And,
                right,
            }) => {
                self.add(left, column);
                self.add(right, column);
            }
            Expr::BinaryExpr(BinaryExpr { left, op, right }) => {
                let (op, v) = if is_time_column(left, column)
                    && let Some(v) = timestamp_nanos(right)
                {
                    (*op, v)
                } else if is_time_column(right, column)
                    && let Some(v) = timestamp_nanos(left)
                    && let Some(op) = op.swap()
                {
                    (op, v)
                } else {
                    return;
                };
                match op {
                    Operator::Eq => {
                        self.raise_low(v);
                        self.lower_high(v);
                    }
                    Operator::Gt | Operator::GtEq => self.raise_low(v),
                    Operator::Lt => self.lower_high(v.saturating_sub(1)),
                    Operator::LtEq => self.lower_high(v),
                    _ => {}
                }
            }
            Expr::Between(Between {
                expr,
                negated: false,
                low,
                high,
            }) if is_time_column(expr, column) => {
                if let Some(v) = timestamp_nanos(low) {
                    self.raise_low(v);
                }
                if let Some(v) = timestamp_nanos(high) {
                    self.lower_high(v);
                }
            }
            _ => {}
        }
    }
}

/// Whether `e` is the column itself, or a cast of it that keeps nanosecond values.
fn is_time_column(e: &Expr, column: &str) -> bool {
    match e {
        Expr::Column(c) => c.name == column,
        Expr::Cast(Cast { expr, field }) | Expr::TryCast(TryCast { expr, field }) => {
            matches!(
                field.data_type(),
                DataType::Timestamp(TimeUnit::Nanosecond, _)
            ) && is_time_column(expr, column)
        }
        _ => false,
    }
}

/// A timestamp constant in nanoseconds since the epoch.
fn timestamp_nanos(e: &Expr) -> Option<i64> {
    let Expr::Literal(value, _) = e else {
        return None;
    };
    match value {
        ScalarValue::TimestampNanosecond(Some(v), _) => Some(*v),
        ScalarValue::TimestampMicrosecond(Some(v), _) => v.checked_mul(1_000),
        ScalarValue::TimestampMillisecond(Some(v), _) => v.checked_mul(1_000_000),
        ScalarValue::TimestampSecond(Some(v), _) => v.checked_mul(1_000_000_000),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use datafusion::prelude::col;

    use super::*;

    fn ts(v: i64) -> Expr {
        lit(ScalarValue::TimestampNanosecond(
            Some(v),
            Some("UTC".into()),
        ))
    }

    const DAY2: i64 = 1_767_312_000_000_000_000; // 2026-01-02T00:00:00Z
    const HOUR: i64 = 3_600_000_000_000;

    fn shown(filters: &[Expr]) -> Vec<String> {
        partition_filters(filters, "window_end")
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    #[test]
    fn time_bounds_become_date_and_hour_bounds() {
        assert_eq!(
            shown(&[col("window_end").gt_eq(ts(DAY2 + 5 * HOUR + 7))]),
            ["date > Utf8(\"2026-01-02\") OR date = Utf8(\"2026-01-02\") AND hour >= Utf8(\"05\")"]
        );
        // `< 01:00` ends in hour 00; `<= 01:00` may reach hour 01.
        assert_eq!(
            shown(&[ts(DAY2 + HOUR).gt(col("window_end"))]),
            ["date < Utf8(\"2026-01-02\") OR date = Utf8(\"2026-01-02\") AND hour <= Utf8(\"00\")"]
        );
        assert_eq!(
            shown(&[col("window_end").lt_eq(ts(DAY2 + HOUR))]),
            ["date < Utf8(\"2026-01-02\") OR date = Utf8(\"2026-01-02\") AND hour <= Utf8(\"01\")"]
        );
        assert_eq!(
            shown(&[col("window_end").lt(ts(DAY2))]),
            ["date < Utf8(\"2026-01-01\") OR date = Utf8(\"2026-01-01\") AND hour <= Utf8(\"23\")"]
        );
        let between = col("window_end").between(ts(DAY2), ts(DAY2 + 2 * HOUR));
        let eq = col("window_end").eq(ts(DAY2 + 30));
        assert_eq!(shown(&[between]).len(), 2);
        assert_eq!(shown(&[eq]).len(), 2);
    }

    #[test]
    fn conjunctions_intersect_and_other_filters_are_ignored() {
        let both = col("window_end")
            .gt_eq(ts(DAY2 - HOUR))
            .and(col("window_end").gt_eq(ts(DAY2 + 3 * HOUR)));
        assert_eq!(
            shown(&[both]),
            ["date > Utf8(\"2026-01-02\") OR date = Utf8(\"2026-01-02\") AND hour >= Utf8(\"03\")"]
        );
        for ignored in [
            col("window_start").gt_eq(ts(DAY2)),
            col("window_end").not_eq(ts(DAY2)),
            col("window_end")
                .gt_eq(ts(DAY2))
                .or(col("node").eq(lit(3u64))),
            col("node").gt(lit(7u64)),
            col("window_end").is_not_null(),
        ] {
            assert!(
                shown(std::slice::from_ref(&ignored)).is_empty(),
                "{ignored}"
            );
        }
    }
}
