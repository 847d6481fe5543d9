//! `GET /health` on the admin HTTP endpoint: whether a load balancer should
//! send this proxy new clients. checkd's `http` probe asks it (next to the
//! `mysql` probe that proves the SQL port serves), so lbd routes around a
//! proxy that cannot do its job while another one can.
//!
//! 503 when the proxy is shutting down, has not completed a heartbeat round
//! of some data host yet, or is cut off from a primary that is alive (a
//! partition between this proxy and the primary: the other proxies still
//! write). A primary that is down for everyone is not a reason: every proxy
//! is in the same state and still serves reads.

use crate::ha::cluster::View;

/// The status code and a one-line body.
pub fn health<'a>(
    serving: bool,
    views: impl IntoIterator<Item = (&'a str, &'a View)>,
) -> (u16, String) {
    if !serving {
        return (503, "shutting down\n".into());
    }
    let mut ok = Vec::new();
    for (name, v) in views {
        if v.round == 0 {
            return (
                503,
                format!("{name}: no heartbeat round has completed yet\n"),
            );
        }
        if let Some(why) = &v.cut_off {
            return (503, format!("{name}: cut off: {why}\n"));
        }
        ok.push(name);
    }
    (200, format!("ok: {}\n", ok.join(", ")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(round: u64, cut_off: Option<&str>) -> View {
        View {
            round,
            cut_off: cut_off.map(str::to_owned),
            ..View::initial(2)
        }
    }

    #[test]
    fn healthy_after_a_round() {
        let v = view(3, None);
        assert_eq!(health(true, [("dh1", &v)]), (200, "ok: dh1\n".into()));
    }

    #[test]
    fn not_before_the_first_round() {
        let v = view(0, None);
        let (code, body) = health(true, [("dh1", &v)]);
        assert_eq!(code, 503);
        assert!(body.contains("no heartbeat round"), "{body}");
    }

    #[test]
    fn not_when_cut_off_from_a_live_primary() {
        let (a, b) = (
            view(5, None),
            view(5, Some("primary db-1 does not answer this proxy")),
        );
        let (code, body) = health(true, [("dh1", &a), ("dh2", &b)]);
        assert_eq!(code, 503);
        assert!(body.starts_with("dh2: cut off: primary db-1"), "{body}");
    }

    #[test]
    fn not_while_shutting_down() {
        let v = view(5, None);
        assert_eq!(health(false, [("dh1", &v)]).0, 503);
    }
}
