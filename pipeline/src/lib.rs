//! The `meshflow` job: configuration, wiring of sources → dataflow → sinks, and the
//! commands behind the CLI (`run`, `replay`, `sim`, `import`, `validate`, `sql`).
//!
//! The binary (`src/main.rs`) is a thin clap front end over this library, so
//! integration tests and benchmarks drive exactly what users run.

pub mod alloc;
pub mod compact;
pub mod config;
pub mod import;
pub mod job;
pub mod report;
pub mod sim;
pub mod sql;
