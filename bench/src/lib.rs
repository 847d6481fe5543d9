//! Code the benchmark binaries share.

pub mod baseline;
pub mod classic;
pub mod fault_table;
pub mod sysbench;
