//! Free TCP ports on loopback.
//!
//! The port is free when we look; another process could take it before the
//! fixture binds it, so fixtures retry a start that fails with "address in use".

use std::net::{Ipv4Addr, TcpListener};

/// A TCP port that nothing listens on at 127.0.0.1 right now.
pub fn free_port() -> u16 {
    free_port_on(Ipv4Addr::LOCALHOST)
}

/// A TCP port that nothing listens on at `ip` right now.
pub fn free_port_on(ip: Ipv4Addr) -> u16 {
    TcpListener::bind((ip, 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("cannot bind {ip}:0 to find a free port: {e}"))
}
