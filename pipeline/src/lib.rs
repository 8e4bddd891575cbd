//! The `meshflow` job: configuration, wiring of sources → dataflow → sinks, and the
//! commands behind the CLI (`run`, `replay`, `sim`, `import`, `validate`, `sql`).
//!
//! The binary (`src/main.rs`) is a thin clap front end over this library, so
//! integration tests and benchmarks drive exactly what users run.

/// `eprintln!` that ignores a failed write: a user's `2>&1 | head` closes stderr, and
/// a message that cannot be shown must not abort the command (`eprintln!` panics).
#[macro_export]
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), $($arg)*);
    }};
}

pub mod alloc;
pub mod compact;
pub mod config;
pub mod import;
pub mod job;
pub mod report;
pub mod sim;
pub mod sql;

/// `error`'s message and its causes, joined by `: `, leaving out a cause whose text
/// the message already holds: many errors (Parquet's, DataFusion's, the sinks')
/// repeat their source's text in their own, and anyhow's `{:#}` would print it again
/// ("External: No space left on device (os error 28): External: …").
pub fn error_text(error: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in error.chain() {
        let part = cause.to_string();
        if text.contains(&part) {
            continue;
        }
        if !text.is_empty() {
            text.push_str(": ");
        }
        text.push_str(&part);
    }
    text
}

#[cfg(test)]
mod tests {
    use super::error_text;

    #[test]
    fn a_cause_is_shown_once() {
        let io = std::io::Error::other("No space left on device");
        let parquet = datafusion::parquet::errors::ParquetError::External(Box::new(io));
        let df = datafusion::error::DataFusionError::ParquetError(Box::new(parquet));
        let e = anyhow::Error::new(df).context("reading flows/part-0.parquet");
        assert_eq!(
            format!("{e:#}"),
            "reading flows/part-0.parquet: Parquet error: External: No space left on device: \
             External: No space left on device: No space left on device"
        );
        assert_eq!(
            error_text(&e),
            "reading flows/part-0.parquet: Parquet error: External: No space left on device"
        );
        let plain = anyhow::anyhow!("sources is empty").context("job.toml");
        assert_eq!(error_text(&plain), "job.toml: sources is empty");
    }
}
