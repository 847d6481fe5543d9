//! What a session keeps of its backend connections when a reload replaces
//! the topology under it. Sessions always route by the data host now in
//! force (its heartbeat, its nodes, its pool); this decides, without I/O,
//! which of the connections they already hold still lead to a node of it.
//!
//! A node is the same node when its address is: a rename keeps the
//! connection, a node moved to another address is another server. A
//! connection to a node no longer configured is closed; when the session
//! held something there (a transaction, locks, temporary tables, prepared
//! statements), the client is told it is lost, as after a failover.

use std::net::SocketAddr;

/// The part of a data host that decides whether a connection carries over.
#[derive(Clone, Copy, Debug)]
pub struct Shape<'a> {
    /// The nodes' addresses, by index.
    pub addrs: &'a [SocketAddr],
    /// The backend accounts sessions log in as: the data host's `user` and
    /// `read_only_user` (with passwords, through a fingerprint).
    pub accounts: u64,
}

/// How the nodes of the data host a session used map onto the one it uses
/// after a reload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Carry {
    /// Old node index → new index, for nodes still configured at the same
    /// address.
    pub nodes: Vec<Option<usize>>,
    /// The same accounts: a kept connection may also go back to the pool.
    pub same_accounts: bool,
}

impl Carry {
    pub fn between(old: Shape<'_>, new: Shape<'_>) -> Carry {
        Carry {
            nodes: old
                .addrs
                .iter()
                .map(|a| new.addrs.iter().position(|b| b == a))
                .collect(),
            same_accounts: old.accounts == new.accounts,
        }
    }

    /// Nothing changed that a connection could notice: same nodes at the
    /// same indices, same accounts.
    pub fn is_identity(&self, new_len: usize) -> bool {
        self.same_accounts
            && self.nodes.len() == new_len
            && self.nodes.iter().enumerate().all(|(i, n)| *n == Some(i))
    }

    /// What becomes of a connection to old node `node`; `held`: the session
    /// has a transaction, locks, temporary tables or prepared statements on
    /// it.
    pub fn fate(&self, node: usize, held: bool) -> Fate {
        match self.nodes.get(node).copied().flatten() {
            Some(node) if self.same_accounts => Fate::Keep { node, pool: true },
            // Logged in as the old account: used for what it holds, then
            // closed rather than pooled for sessions of the new one.
            Some(node) if held => Fate::Keep { node, pool: false },
            // Nothing on it: a new connection as the new account costs a login.
            Some(_) => Fate::Close,
            None if held => Fate::Lost,
            None => Fate::Close,
        }
    }
}

/// What a session does with one of its backend connections after a reload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fate {
    /// Goes on, as node `node` of the new data host; `pool`: may be pooled.
    Keep { node: usize, pool: bool },
    /// Closed; the next statement opens one where routing says.
    Close,
    /// Closed, and what the session held there is gone: the client must hear it.
    Lost,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    fn shape(addrs: &[SocketAddr], accounts: u64) -> Shape<'_> {
        Shape { addrs, accounts }
    }

    #[test]
    fn an_unchanged_data_host_keeps_every_connection_where_it_is() {
        let nodes = [a(1), a(2), a(3)];
        let c = Carry::between(shape(&nodes, 7), shape(&nodes, 7));
        assert!(c.is_identity(3));
        for i in 0..3 {
            assert_eq!(
                c.fate(i, true),
                Fate::Keep {
                    node: i,
                    pool: true
                }
            );
            assert_eq!(
                c.fate(i, false),
                Fate::Keep {
                    node: i,
                    pool: true
                }
            );
        }
    }

    #[test]
    fn nodes_are_followed_by_address_across_removal_insertion_and_renaming() {
        // db-2 (port 2) removed, a node inserted first, db-3 now index 2.
        let old = [a(1), a(2), a(3)];
        let new = [a(9), a(1), a(3)];
        let c = Carry::between(shape(&old, 1), shape(&new, 1));
        assert!(!c.is_identity(3));
        assert_eq!(c.nodes, vec![Some(1), None, Some(2)]);
        assert_eq!(
            c.fate(0, true),
            Fate::Keep {
                node: 1,
                pool: true
            }
        );
        assert_eq!(
            c.fate(2, false),
            Fate::Keep {
                node: 2,
                pool: true
            }
        );
        // The removed node: closed; lost when something was held there.
        assert_eq!(c.fate(1, false), Fate::Close);
        assert_eq!(c.fate(1, true), Fate::Lost);
    }

    #[test]
    fn a_node_at_a_new_address_is_another_server() {
        let c = Carry::between(shape(&[a(1), a(2)], 1), shape(&[a(1), a(5)], 1));
        assert_eq!(c.fate(1, true), Fate::Lost);
        assert_eq!(c.fate(1, false), Fate::Close);
        assert_eq!(
            c.fate(0, true),
            Fate::Keep {
                node: 0,
                pool: true
            }
        );
    }

    #[test]
    fn changed_accounts_keep_only_what_holds_state_and_never_pool_it() {
        let nodes = [a(1), a(2)];
        let c = Carry::between(shape(&nodes, 1), shape(&nodes, 2));
        assert!(!c.is_identity(2));
        assert_eq!(
            c.fate(0, true),
            Fate::Keep {
                node: 0,
                pool: false
            }
        );
        assert_eq!(c.fate(0, false), Fate::Close);
    }

    #[test]
    fn an_index_past_the_old_nodes_is_closed_not_kept() {
        let c = Carry::between(shape(&[a(1)], 1), shape(&[a(1)], 1));
        assert_eq!(c.fate(4, false), Fate::Close);
        assert_eq!(c.fate(4, true), Fate::Lost);
    }
}
