//! Code the benchmark binaries share.

pub mod classic;
pub mod fault_table;
pub mod sysbench;
