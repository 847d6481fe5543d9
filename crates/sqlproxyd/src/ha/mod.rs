//! High availability: the heartbeat of each data host and what it decides.
//!
//! - [`probe`]: what one heartbeat saw (pure).
//! - [`cluster`]: who is primary, who may read, what to repair (pure).
//! - [`health`]: whether a load balancer should send us clients (pure).
//! - [`monitor`]: the heartbeat of a data host, driving [`cluster`].
//! - [`plan`]: promotion, switchover, rejoin and restore as steps with undos (pure).
//! - [`failover`]: fencing, the promotion lock, and plans run on the backends.
//! - [`grants`]: what the monitor and replication accounts lack for the enabled features.
//! - [`dnindex`]: the persisted write node (Mycat's dnindex.properties).

pub mod cluster;
pub mod dnindex;
pub mod failover;
pub mod grants;
pub mod health;
pub mod monitor;
pub mod plan;
pub mod probe;
