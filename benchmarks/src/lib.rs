//! Library side of meshflow's benchmarks: the NAB scorer and harness, and the
//! simulator ground-truth quality measurement, shared by `meshflow-bench` and tests.

pub mod nab;
pub mod quality;
