//! systemd's readiness protocol (sd_notify(3)): one datagram per state
//! change to the socket named in `$NOTIFY_SOCKET`. Outside systemd the
//! variable is unset and every call is a no-op.
//!
//! The units in deploy/systemd are `Type=notify`: systemd counts the daemon
//! started once it sends `READY=1` (after `start()` succeeded and the admin
//! endpoint is bound), shows a reload as in progress between `RELOADING=1`
//! and the next `READY=1`, and a stop as begun at `STOPPING=1`.

use std::io;
use std::os::unix::net::UnixDatagram;
use std::path::Path;

/// Where notifications go; `None` outside systemd.
#[derive(Debug)]
pub struct Notifier {
    socket: Option<(UnixDatagram, String)>,
}

impl Notifier {
    /// From `$NOTIFY_SOCKET`. A socket that cannot be opened is logged
    /// once and treated as absent: readiness is a courtesy, not a reason
    /// to fail.
    pub fn from_env() -> Self {
        match std::env::var("NOTIFY_SOCKET") {
            Ok(addr) if !addr.is_empty() => Self::to(&addr).unwrap_or_else(|e| {
                tracing::warn!(socket = %addr, error = %e, "NOTIFY_SOCKET: cannot open; no sd_notify");
                Self::disabled()
            }),
            _ => Self::disabled(),
        }
    }

    /// A notifier that sends nothing.
    pub fn disabled() -> Self {
        Notifier { socket: None }
    }

    /// Sends to `addr`: a path, or an abstract name written `@name`.
    pub fn to(addr: &str) -> io::Result<Self> {
        let sock = UnixDatagram::unbound()?;
        Ok(Notifier {
            socket: Some((sock, addr.to_owned())),
        })
    }

    /// Whether notifications go anywhere.
    pub fn enabled(&self) -> bool {
        self.socket.is_some()
    }

    /// Sends `state` (`KEY=VALUE` lines). Errors are logged, never fatal.
    pub fn notify(&self, state: &str) {
        if let Err(e) = self.send(state) {
            tracing::warn!(state, error = %e, "sd_notify failed");
        }
    }

    fn send(&self, state: &str) -> io::Result<()> {
        let Some((sock, addr)) = &self.socket else {
            return Ok(());
        };
        let sent = match addr.strip_prefix('@') {
            Some(name) => send_abstract(sock, name, state.as_bytes())?,
            None => sock.send_to(state.as_bytes(), Path::new(addr))?,
        };
        if sent != state.len() {
            return Err(io::Error::new(
                io::ErrorKind::WriteZero,
                "short datagram write",
            ));
        }
        Ok(())
    }

    /// `READY=1`: the daemon serves.
    pub fn ready(&self) {
        self.notify(&format!("READY=1\nMAINPID={}", std::process::id()));
    }

    /// `RELOADING=1`: a SIGHUP reload has begun; [`Notifier::ready`] ends it.
    pub fn reloading(&self) {
        self.notify(&format!("RELOADING=1\nMONOTONIC_USEC={}", monotonic_usec()));
    }

    /// `STOPPING=1`: shutdown has begun.
    pub fn stopping(&self) {
        self.notify("STOPPING=1");
    }

    /// `STATUS=...`: one line `systemctl status` shows.
    pub fn status(&self, line: &str) {
        self.notify(&format!("STATUS={}", line.replace('\n', " ")));
    }
}

#[cfg(target_os = "linux")]
fn send_abstract(sock: &UnixDatagram, name: &str, buf: &[u8]) -> io::Result<usize> {
    use std::os::linux::net::SocketAddrExt;
    let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes())?;
    sock.send_to_addr(buf, &addr)
}

#[cfg(not(target_os = "linux"))]
fn send_abstract(_sock: &UnixDatagram, _name: &str, _buf: &[u8]) -> io::Result<usize> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "abstract socket names are Linux-only",
    ))
}

/// CLOCK_MONOTONIC in microseconds, which systemd wants beside `RELOADING=1`
/// to tell this reload from an earlier one.
fn monotonic_usec() -> u128 {
    nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC)
        .map(|t| t.tv_sec() as u128 * 1_000_000 + t.tv_nsec() as u128 / 1_000)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn recv(sock: &UnixDatagram) -> String {
        let mut buf = [0u8; 512];
        let n = sock.recv(&mut buf).expect("a datagram");
        String::from_utf8_lossy(&buf[..n]).into_owned()
    }

    #[test]
    fn sends_to_a_path_socket() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify.sock");
        let server = UnixDatagram::bind(&path).unwrap();
        server
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let n = Notifier::to(path.to_str().unwrap()).unwrap();
        assert!(n.enabled());
        n.ready();
        assert_eq!(
            recv(&server),
            format!("READY=1\nMAINPID={}", std::process::id())
        );
        n.reloading();
        let r = recv(&server);
        assert!(r.starts_with("RELOADING=1\nMONOTONIC_USEC="), "{r}");
        let usec: u128 = r.rsplit('=').next().unwrap().parse().unwrap();
        assert!(usec > 0);
        n.stopping();
        assert_eq!(recv(&server), "STOPPING=1");
        n.status("two\nlines");
        assert_eq!(recv(&server), "STATUS=two lines");
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn sends_to_an_abstract_socket() {
        use std::os::linux::net::SocketAddrExt;
        let name = format!("hastack-notify-test-{}", std::process::id());
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
        let server = UnixDatagram::bind_addr(&addr).unwrap();
        server
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let n = Notifier::to(&format!("@{name}")).unwrap();
        n.stopping();
        assert_eq!(recv(&server), "STOPPING=1");
    }

    #[test]
    fn disabled_sends_nothing_and_never_fails() {
        let n = Notifier::disabled();
        assert!(!n.enabled());
        n.ready();
        n.reloading();
        n.stopping();
    }

    #[test]
    fn a_missing_socket_is_an_error_not_a_panic() {
        let dir = tempfile::tempdir().unwrap();
        let n = Notifier::to(dir.path().join("absent").to_str().unwrap()).unwrap();
        assert!(n.send("READY=1").is_err());
        // ... and through the public API it is only logged.
        n.ready();
    }
}
