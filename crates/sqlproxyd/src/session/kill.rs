//! `KILL [QUERY|CONNECTION] n` and COM_PROCESS_KILL from a client: `n` is
//! a session of this proxy (the id its handshake gave, what
//! `CONNECTION_ID()` returns), never a backend thread.

use anyhow::Result;
use hastack_proto::mysql::client::Credentials;
use hastack_proto::mysql::packets::Capabilities;
use hastack_proto::mysql::Packet;
use hastack_proto::sql::Token;

use super::registry::Running;
use super::{Session, COM_QUERY};
use crate::backend::{server_refusal, Backend};

impl Session {
    /// `KILL [QUERY|CONNECTION] n`: `n` is a proxy session id (the one the
    /// handshake announced and `CONNECTION_ID()` returns); passing it to a
    /// backend would kill whichever backend thread has that number. KILL
    /// ends that session; KILL QUERY ends the statement it runs now, by
    /// killing it on the backend connection it runs on (the session gets
    /// the server's 1317 and goes on). The user must own the session.
    pub(super) async fn kill(&mut self, packet: &Packet, kill: Kill) -> Result<()> {
        let target = kill.id;
        let owner = self
            .registry
            .snapshot()
            .into_iter()
            .find(|(id, _)| *id == target)
            .map(|(_, v)| v.user);
        match owner {
            None => {
                self.err(
                    packet,
                    1094,
                    "HY000",
                    &format!("Unknown thread id: {target}"),
                )
                .await
            }
            Some(user) if user != self.login.user.name => {
                self.err(
                    packet,
                    1095,
                    "HY000",
                    &format!("You are not owner of thread {target}"),
                )
                .await
            }
            Some(_) if kill.query && target == self.id => {
                // As MariaDB: the statement running is the KILL itself.
                self.err(packet, 1317, "70100", "Query execution was interrupted")
                    .await
            }
            Some(_) if kill.query => match self.registry.kill_starting(target) {
                Some((r, epoch)) => {
                    let done = self.kill_query_on_backend(packet, target, r, epoch).await;
                    self.registry.kill_done(target);
                    done
                }
                // Idle: nothing to interrupt.
                None => self.ok(packet).await,
            },
            Some(_) if target == self.id => {
                // As MariaDB: the connection is killed, and says so.
                self.err(packet, 1927, "70100", "Connection was killed")
                    .await?;
                self.kill.cancel();
                Ok(())
            }
            Some(_) => {
                self.registry.kill(target);
                self.ok(packet).await
            }
        }
    }

    /// `KILL QUERY` of session `victim`'s statement of `epoch`, on the
    /// backend connection that runs it, as that connection's own account
    /// (the server lets an account kill its own threads). The victim's
    /// connection is not pooled meanwhile ([`super::registry::Registry::kill_starting`]),
    /// and the statement is checked to be still running once the kill's
    /// own connection is open: a thread id names no other session's work.
    pub(super) async fn kill_query_on_backend(
        &mut self,
        packet: &Packet,
        victim: u32,
        r: Running,
        epoch: u64,
    ) -> Result<()> {
        let n = &r.host.nodes[r.node];
        let (user, password) = r.host.account(r.read_only);
        let login = Credentials {
            user,
            password: password.expose(),
            database: None,
            capabilities: Capabilities::empty(),
            collation: self.login.collation,
        };
        let timeout = r.host.connect_timeout;
        let killed = async {
            let mut b =
                Backend::connect(r.node, n.addr, &login, r.host.login_policy, timeout).await?;
            if !self.registry.still_running(victim, epoch) {
                // Done meanwhile: nothing of it left to interrupt.
                return Ok(());
            }
            let sql = format!("KILL QUERY {}", r.thread_id);
            tokio::time::timeout(timeout, b.run(COM_QUERY, sql.as_bytes()))
                .await
                .map_err(|_| anyhow::anyhow!("no answer within {timeout:?}"))?
        }
        .await;
        match killed {
            Ok(()) => self.ok(packet).await,
            // The thread ended meanwhile (its statement with it): done.
            Err(e) if server_refusal(&e).is_some_and(|s| s.code == 1094) => self.ok(packet).await,
            Err(e) => {
                let msg = match server_refusal(&e) {
                    Some(s) => s.to_string(),
                    None => format!("{e:#}"),
                };
                let msg = format!(
                    "sqlproxyd could not kill the statement on node '{}': {msg}",
                    n.name
                );
                self.err(packet, 1105, "HY000", &msg).await
            }
        }
    }
}

/// A `KILL [HARD|SOFT] [CONNECTION|QUERY] n` of a proxy session.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Kill {
    pub(super) id: u32,
    /// `KILL QUERY`: the statement, not the session.
    pub(super) query: bool,
}

/// What a `KILL` statement asks for: `None` for another statement; an
/// error for a KILL sqlproxyd does not run (`KILL USER`, `KILL QUERY ID`,
/// an expression), which would reach threads of the backends' shared
/// accounts, other sessions' and other proxies' among them.
pub(super) fn kill_target(sql: &str) -> Option<Result<Kill, String>> {
    // Most statements have no "kill" anywhere: no lexing for them.
    if !sql
        .as_bytes()
        .windows(4)
        .any(|w| w.eq_ignore_ascii_case(b"kill"))
    {
        return None;
    }
    let lexed = hastack_proto::sql::lex(sql, Default::default());
    let refused = || {
        Err(
            "sqlproxyd runs KILL [HARD|SOFT] [CONNECTION|QUERY] <id> only, alone in its \
             statement, with the id CONNECTION_ID() or SHOW PROCESSLIST gives (a session of \
             this proxy); KILL USER, KILL QUERY ID, backend thread ids, and KILL inside a \
             multi-statement or in dynamic SQL would reach other sessions on the shared \
             backend accounts"
                .to_owned(),
        )
    };
    // A KILL anywhere but alone: as a later statement of a multi-statement,
    // or as the text of EXECUTE IMMEDIATE / PREPARE ... FROM.
    let statements: Vec<&[Token]> = lexed
        .tokens
        .split(|t| matches!(t, Token::Semicolon))
        .filter(|s| !s.is_empty())
        .collect();
    let starts = |s: &[Token], w: &str| matches!(s.first(), Some(Token::Word(x)) if x == w);
    let dynamic_kill = statements.iter().any(|s| {
        (starts(s, "EXECUTE") || starts(s, "PREPARE"))
            && s.iter().any(|t| {
                matches!(t, Token::Str(text) if text.as_bytes().windows(4).any(|w| w.eq_ignore_ascii_case(b"kill")))
            })
    });
    let kills = statements.iter().filter(|s| starts(s, "KILL")).count();
    if dynamic_kill || (kills > 0 && statements.len() > 1) {
        return Some(refused());
    }
    let mut words = lexed
        .tokens
        .iter()
        .filter(|t| !matches!(t, Token::Semicolon));
    if !matches!(words.next()?, Token::Word(w) if w == "KILL") {
        return None;
    }
    let mut query = false;
    let mut next = words.next();
    for optional in ["HARD", "SOFT", "CONNECTION", "QUERY"] {
        if let Some(Token::Word(w)) = next {
            if w == optional {
                query |= optional == "QUERY";
                next = words.next();
            }
        }
    }
    // `KILL (12)` is how `KILL CONNECTION_ID()` reads once the id is in.
    let parenthesized = matches!(next, Some(Token::Open { .. }));
    if parenthesized {
        next = words.next();
    }
    let id = match next {
        Some(Token::Number(n)) => n.parse::<u32>().ok(),
        _ => None,
    };
    if parenthesized && !matches!(words.next(), Some(Token::Close)) {
        return Some(refused());
    }
    match (id, words.next(), lexed.unsure) {
        (Some(id), None, None) => Some(Ok(Kill { id, query })),
        _ => Some(refused()),
    }
}

#[cfg(test)]
mod tests {
    use super::{kill_target, Kill};

    #[test]
    fn kill_statements() {
        let kill = |id, query| Some(Ok(Kill { id, query }));
        assert_eq!(kill_target("KILL 12"), kill(12, false));
        assert_eq!(kill_target("kill query 7;"), kill(7, true));
        assert_eq!(
            kill_target("/* x */ KILL HARD CONNECTION 3"),
            kill(3, false)
        );
        assert_eq!(kill_target("KILL SOFT QUERY 3"), kill(3, true));
        assert_eq!(kill_target("KILL (3)"), kill(3, false));
        assert_eq!(kill_target("KILL QUERY (3);"), kill(3, true));
        for refused in [
            "KILL USER app",
            "KILL QUERY ID 5",
            "KILL 1+1",
            "KILL",
            "KILL 99999999999",
        ] {
            assert!(matches!(kill_target(refused), Some(Err(_))), "{refused}");
        }
        assert_eq!(kill_target("SELECT 1"), None);
        assert_eq!(kill_target("SELECT 'KILL 5'"), None);
        assert_eq!(kill_target("SELECT skill FROM t"), None);
        for refused in [
            "SELECT 1; KILL USER app",
            "DO 1;KILL QUERY ID 7",
            "KILL 5; SELECT 1",
            "EXECUTE IMMEDIATE 'KILL 5'",
            "PREPARE s FROM \"kill user app\"",
        ] {
            assert!(matches!(kill_target(refused), Some(Err(_))), "{refused}");
        }
    }
}
