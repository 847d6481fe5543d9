//! Code the benchmark binaries share.

pub mod sysbench;
