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
