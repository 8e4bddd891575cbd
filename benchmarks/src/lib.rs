//! Library side of meshflow's benchmarks: the NAB scorer and harness, the simulator
//! ground-truth quality measurement, and ranking metrics (ROC-AUC, average precision),
//! shared by `meshflow-bench` and tests.

pub mod nab;
pub mod quality;
pub mod ranking;
