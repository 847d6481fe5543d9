//! Where a session's next statement runs: the write node or a read node.
//!
//! Pure: the session's routing state, the statement's class and hint, and
//! the time go in; a target comes out. The shell applies the server's own
//! status flags after each reply (in a transaction? autocommit?) so that
//! implicit commits, procedures and multi-statements are tracked exactly.

pub mod balance;
pub mod readonly;

use std::time::{Duration, Instant};

use hastack_proto::sql::{Class, Hint, Pin, SessionResult};

use crate::config::Balance;

/// Which backend connection of the session runs a statement.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    Write,
    Read,
}

/// What the router remembers about one client session.
#[derive(Clone, Debug)]
pub struct SessionRoute {
    pub in_transaction: bool,
    pub autocommit: bool,
    /// Set once something ties the session to its write connection.
    pub pinned: Option<PinReason>,
    /// When the session last wrote, for `read_your_writes`.
    pub last_write: Option<Instant>,
    /// Where the last statement ran: `FOUND_ROWS()` asks that connection.
    pub last_target: Option<Target>,
}

/// Why a session stays on the write node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PinReason {
    Statement(Pin),
    PreparedStatement,
}

impl SessionRoute {
    /// After the write connection was lost or left behind by a failover:
    /// its transaction and pins are gone, the client's autocommit choice
    /// stays (it is applied to the next write connection).
    pub fn after_connection_lost(&self) -> SessionRoute {
        SessionRoute {
            autocommit: self.autocommit,
            ..SessionRoute::default()
        }
    }
}

impl Default for SessionRoute {
    fn default() -> Self {
        SessionRoute {
            in_transaction: false,
            autocommit: true,
            pinned: None,
            last_write: None,
            last_target: None,
        }
    }
}

impl SessionRoute {
    /// Chooses the target for a statement of `class` with `hint`.
    ///
    /// `read_your_writes`: after a write, this session's reads stay on the
    /// write node for that long (replicas may not have the write yet).
    pub fn target(
        &self,
        now: Instant,
        class: &Class,
        hint: Option<Hint>,
        balance: Balance,
        read_your_writes: Duration,
    ) -> Target {
        let Class::Read { session_result } = *class else {
            return Target::Write;
        };
        if self.pinned.is_some()
            || self.in_transaction
            || !self.autocommit
            || hint == Some(Hint::Primary)
        {
            return Target::Write;
        }
        if hint == Some(Hint::Replica) {
            return Target::Read;
        }
        match session_result {
            Some(SessionResult::LastInsertId) if self.last_write.is_some() => return Target::Write,
            Some(SessionResult::PreviousStatement) => {
                if let Some(t) = self.last_target {
                    return t;
                }
            }
            _ => {}
        }
        if balance == Balance::Primary {
            return Target::Write;
        }
        match self.last_write {
            Some(at) if now.saturating_duration_since(at) < read_your_writes => Target::Write,
            _ => Target::Read,
        }
    }

    /// Records what a statement that succeeded on `target` means for the session.
    pub fn after(&mut self, now: Instant, class: &Class, target: Target) {
        self.last_target = Some(target);
        match class {
            Class::Pin(pin) => self.pinned = Some(PinReason::Statement(*pin)),
            // A commit publishes the transaction's writes: replicas get them only now.
            Class::Write | Class::End | Class::SetAutocommit(true) => {}
            _ => return,
        }
        if target == Target::Write {
            self.last_write = Some(now);
        }
    }

    /// The write connection's own view after a reply: authoritative for
    /// transactions and autocommit.
    pub fn server_status(&mut self, in_transaction: bool, autocommit: bool) {
        self.in_transaction = in_transaction;
        self.autocommit = autocommit;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hastack_proto::sql::classify;

    const RYW: Duration = Duration::from_secs(1);

    fn target(s: &SessionRoute, now: Instant, sql: &str, balance: Balance) -> Target {
        let (class, hint) = classify(sql);
        s.target(now, &class, hint, balance, RYW)
    }

    #[test]
    fn plain_reads_go_to_read_nodes_and_everything_else_to_the_writer() {
        let s = SessionRoute::default();
        let now = Instant::now();
        assert_eq!(target(&s, now, "SELECT 1", Balance::Replicas), Target::Read);
        assert_eq!(
            target(&s, now, "SELECT 1", Balance::Primary),
            Target::Write,
            "balance 0 never splits"
        );
        for sql in [
            "INSERT INTO t VALUES (1)",
            "SELECT * FROM t FOR UPDATE",
            "BEGIN",
            "SET NAMES utf8",
            "CREATE TEMPORARY TABLE x (a int)",
        ] {
            assert_eq!(
                target(&s, now, sql, Balance::Replicas),
                Target::Write,
                "{sql}"
            );
        }
    }

    #[test]
    fn transactions_and_autocommit_off_keep_reads_on_the_writer() {
        let now = Instant::now();
        let mut s = SessionRoute::default();
        s.server_status(true, true);
        assert_eq!(target(&s, now, "SELECT 1", Balance::Any), Target::Write);
        s.server_status(false, false);
        assert_eq!(target(&s, now, "SELECT 1", Balance::Any), Target::Write);
        s.server_status(false, true);
        assert_eq!(target(&s, now, "SELECT 1", Balance::Any), Target::Read);
    }

    #[test]
    fn found_rows_asks_the_connection_of_the_statement_before() {
        let now = Instant::now();
        let mut s = SessionRoute::default();
        let (insert, _) = classify("INSERT INTO t VALUES (1)");
        s.after(now, &insert, Target::Write);
        let later = now + Duration::from_secs(60);
        let (counted, _) = classify("SELECT SQL_CALC_FOUND_ROWS * FROM t LIMIT 1");
        assert_eq!(
            s.target(later, &counted, None, Balance::Replicas, Duration::ZERO),
            Target::Read
        );
        s.after(later, &counted, Target::Read);
        // The count lives on the read connection, though the session wrote before.
        assert_eq!(
            target(&s, later, "SELECT FOUND_ROWS()", Balance::Replicas),
            Target::Read
        );
        // LAST_INSERT_ID() stays with the writer.
        assert_eq!(
            target(&s, later, "SELECT LAST_INSERT_ID()", Balance::Replicas),
            Target::Write
        );
        s.after(later, &insert, Target::Write);
        assert_eq!(
            target(&s, later, "SELECT ROW_COUNT()", Balance::Replicas),
            Target::Write
        );
    }

    #[test]
    fn pins_last_for_the_session() {
        let now = Instant::now();
        let mut s = SessionRoute::default();
        let (class, _) = classify("SELECT GET_LOCK('a', 1)");
        s.after(now, &class, Target::Write);
        assert_eq!(s.pinned, Some(PinReason::Statement(Pin::Lock)));
        assert_eq!(
            target(
                &s,
                now + Duration::from_secs(3600),
                "SELECT 1",
                Balance::Replicas
            ),
            Target::Write
        );
    }

    #[test]
    fn hints_force_the_writer_or_allow_a_replica_for_reads_only() {
        let now = Instant::now();
        let mut s = SessionRoute::default();
        assert_eq!(
            target(
                &s,
                now,
                "/*#mycat:db_type=master*/ SELECT 1",
                Balance::Replicas
            ),
            Target::Write
        );
        assert_eq!(
            target(&s, now, "/*hastack:primary*/ SELECT 1", Balance::Replicas),
            Target::Write
        );
        assert_eq!(
            target(
                &s,
                now,
                "/*#mycat:db_type=slave*/ SELECT 1",
                Balance::Primary
            ),
            Target::Read
        );
        assert_eq!(
            target(
                &s,
                now,
                "/*#mycat:db_type=slave*/ DELETE FROM t",
                Balance::Replicas
            ),
            Target::Write,
            "never a write on a replica"
        );
        s.server_status(true, true);
        assert_eq!(
            target(&s, now, "/*balance*/ SELECT 1", Balance::Replicas),
            Target::Write,
            "not inside a transaction"
        );
    }

    #[test]
    fn read_your_writes_window_and_session_results() {
        let t0 = Instant::now();
        let mut s = SessionRoute::default();
        let (class, _) = classify("INSERT INTO t VALUES (1)");
        s.after(t0, &class, Target::Write);
        assert_eq!(
            target(
                &s,
                t0 + Duration::from_millis(500),
                "SELECT * FROM t",
                Balance::Replicas
            ),
            Target::Write
        );
        assert_eq!(
            target(
                &s,
                t0 + Duration::from_secs(2),
                "SELECT * FROM t",
                Balance::Replicas
            ),
            Target::Read
        );
        assert_eq!(
            target(
                &s,
                t0 + Duration::from_secs(2),
                "SELECT LAST_INSERT_ID()",
                Balance::Replicas
            ),
            Target::Write
        );
        let fresh = SessionRoute::default();
        assert_eq!(
            target(&fresh, t0, "SELECT LAST_INSERT_ID()", Balance::Replicas),
            Target::Read
        );
    }
}
