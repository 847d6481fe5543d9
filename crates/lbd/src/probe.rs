//! Health-check probes: what one check of a server does.

use tokio::net::TcpStream;

use crate::config::CheckTarget;

/// Runs the checks of one server, built once from its settings.
pub struct Prober {
    target: CheckTarget,
}

impl Prober {
    pub fn new(target: &CheckTarget) -> Prober {
        Prober {
            target: target.clone(),
        }
    }

    /// One check, within `timeout check`: `Ok(detail)` or `Err(reason)`.
    pub async fn run(&self) -> Result<String, String> {
        let a = self.target.address;
        match tokio::time::timeout(self.target.timeout, TcpStream::connect(a)).await {
            Ok(Ok(_)) => Ok("connected".into()),
            Ok(Err(e)) => Err(format!("connect {a}: {e}")),
            Err(_) => Err(format!(
                "connect {a}: no answer within {:?}",
                self.target.timeout
            )),
        }
    }
}
