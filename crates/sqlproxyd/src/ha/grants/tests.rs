//! Over `SHOW GRANTS` lines captured from MariaDB 10.11.19 (Debian 12).

use super::*;

const PW: &str = "IDENTIFIED BY PASSWORD '*7B9EBEED26AA52ED10C0F549FA863F13C39E0209'";

fn grants(lines: &[&str]) -> Grants {
    Grants::parse(lines).unwrap()
}

fn texts(m: &[Missing]) -> Vec<String> {
    m.iter().map(ToString::to_string).collect()
}

const ALL_FEATURES: &[Feature] = &[
    Feature::Heartbeat,
    Feature::Fencing,
    Feature::Promote,
    Feature::AutoRejoin,
    Feature::Switchover,
];

/// The lab's monitor account (integration-tests, deploy/lab.sh).
const LAB: &str = "GRANT RELOAD, PROCESS, SUPER, READ_ONLY ADMIN, REPLICATION SLAVE ADMIN, BINLOG ADMIN, SLAVE MONITOR ON *.* TO `lab`@`%` IDENTIFIED BY PASSWORD '*7B9EBEED26AA52ED10C0F549FA863F13C39E0209'";

#[test]
fn the_lab_monitor_account_lacks_nothing() {
    assert_eq!(missing(ALL_FEATURES, &grants(&[LAB])), []);
}

#[test]
fn all_privileges_with_grant_option_lacks_nothing() {
    let g = grants(&[&format!(
        "GRANT ALL PRIVILEGES ON *.* TO `pall`@`%` {PW} WITH GRANT OPTION"
    )]);
    assert_eq!(missing(ALL_FEATURES, &g), []);
    // root as Debian installs it: unix_socket, a PROXY line, role grants.
    let root = grants(&[
        "GRANT `r_mon` TO `root`@`localhost` WITH ADMIN OPTION",
        "GRANT ALL PRIVILEGES ON *.* TO `root`@`localhost` WITH GRANT OPTION",
        "GRANT PROXY ON ``@`%` TO `root`@`localhost` WITH GRANT OPTION",
    ]);
    assert_eq!(missing(ALL_FEATURES, &root), []);
    assert_eq!(root.inactive_roles(), ["r_mon"]);
}

#[test]
fn without_reload_promotion_and_switchover_name_reset_slave_all() {
    let g = grants(&[
        "GRANT PROCESS, SUPER, READ_ONLY ADMIN, REPLICATION SLAVE ADMIN, BINLOG ADMIN, SLAVE MONITOR ON *.* TO `m`@`%` IDENTIFIED BY PASSWORD '*7B9EBEED26AA52ED10C0F549FA863F13C39E0209'",
    ]);
    assert_eq!(
        texts(&missing(ALL_FEATURES, &g)),
        [
            "failover.promote needs RELOAD for RESET SLAVE ALL",
            "switchover needs RELOAD for RESET SLAVE ALL",
        ]
    );
}

#[test]
fn all_but_reload_is_listed_privilege_by_privilege_and_lacks_reload() {
    // `GRANT ALL ON *.*` then `REVOKE RELOAD`: SHOW GRANTS spells out the rest.
    let g = grants(&["GRANT SELECT, INSERT, UPDATE, DELETE, CREATE, DROP, SHUTDOWN, PROCESS, FILE, REFERENCES, INDEX, ALTER, SHOW DATABASES, SUPER, CREATE TEMPORARY TABLES, LOCK TABLES, EXECUTE, REPLICATION SLAVE, BINLOG MONITOR, CREATE VIEW, SHOW VIEW, CREATE ROUTINE, ALTER ROUTINE, CREATE USER, EVENT, TRIGGER, CREATE TABLESPACE, DELETE HISTORY, SET USER, FEDERATED ADMIN, CONNECTION ADMIN, READ_ONLY ADMIN, REPLICATION SLAVE ADMIN, REPLICATION MASTER ADMIN, BINLOG ADMIN, BINLOG REPLAY, SLAVE MONITOR ON *.* TO `db`@`%` IDENTIFIED BY PASSWORD '*7B9EBEED26AA52ED10C0F549FA863F13C39E0209'"]);
    assert!(!g.has("RELOAD"));
    assert!(g.has("SLAVE MONITOR") && g.has("REPLICATION SLAVE"));
    assert_eq!(
        texts(&missing(&[Feature::Promote], &g)),
        ["failover.promote needs RELOAD for RESET SLAVE ALL"]
    );
}

#[test]
fn super_alone_in_10_11_lacks_read_only_admin_and_reload() {
    let g = grants(&[&format!("GRANT SUPER ON *.* TO `psuper`@`%` {PW}")]);
    assert_eq!(
        texts(&missing(ALL_FEATURES, &g)),
        [
            "fencing (failover.promote) needs READ_ONLY ADMIN for SET GLOBAL read_only = ON",
                        "failover.promote needs READ_ONLY ADMIN for SET GLOBAL read_only = OFF, SET GLOBAL read_only = ON",
        "failover.promote needs RELOAD for RESET SLAVE ALL",
            "failover.auto_rejoin needs READ_ONLY ADMIN for SET GLOBAL read_only = ON",
            "switchover needs READ_ONLY ADMIN for SET GLOBAL read_only = ON, SET GLOBAL read_only = OFF",
            "switchover needs RELOAD for RESET SLAVE ALL",
        ]
    );
}

#[test]
fn usage_only_needs_everything_and_says_so_per_feature() {
    let g = grants(&[&format!("GRANT USAGE ON *.* TO `p0`@`%` {PW}")]);
    assert_eq!(
        texts(&missing(&[Feature::Heartbeat, Feature::AutoRejoin], &g)),
        [
            "heartbeat needs SLAVE MONITOR (or SUPER) for SHOW ALL SLAVES STATUS",
            "failover.auto_rejoin needs READ_ONLY ADMIN for SET GLOBAL read_only = ON",
            "failover.auto_rejoin needs REPLICATION SLAVE ADMIN (or SUPER) for STOP SLAVE, CHANGE MASTER TO, START SLAVE, START ALL SLAVES",
        ]
    );
}

#[test]
fn replication_client_is_not_slave_monitor() {
    // GRANT REPLICATION CLIENT is shown as BINLOG MONITOR; SHOW ALL SLAVES
    // STATUS refuses it (1227 names SUPER, SLAVE MONITOR).
    let g = grants(&["GRANT BINLOG MONITOR ON *.* TO `m`@`%`"]);
    assert_eq!(
        texts(&missing(&[Feature::Heartbeat], &g)),
        ["heartbeat needs SLAVE MONITOR (or SUPER) for SHOW ALL SLAVES STATUS"]
    );
    assert!(g.has("REPLICATION CLIENT"));
    // The 10.5+ aliases, as GRANT accepts them and SHOW GRANTS shows them.
    let alias = grants(&["GRANT REPLICATION SLAVE, BINLOG MONITOR, SLAVE MONITOR ON *.* TO `alias`@`%` IDENTIFIED BY PASSWORD '*7B9EBEED26AA52ED10C0F549FA863F13C39E0209'"]);
    assert!(alias.has("REPLICA MONITOR") && alias.has("REPLICATION REPLICA"));
}

#[test]
fn privileges_on_a_database_do_not_count() {
    let g = grants(&[
        "GRANT RELOAD ON *.* TO `nopw`@`%` WITH GRANT OPTION",
        "GRANT ALL PRIVILEGES ON `my_db`.* TO `nopw`@`%`",
        "GRANT SELECT ON `mysql`.* TO `mysqldb`@`%`",
        "GRANT EXECUTE ON PROCEDURE `mysql`.`x` TO `nopw`@`%`",
        "GRANT SELECT (`a`, `b`), INSERT ON `app`.`t` TO `nopw`@`%`",
    ]);
    assert!(g.has("RELOAD"));
    assert!(!g.has("SELECT") && !g.has("INSERT") && !g.has("SUPER"));
    assert_eq!(
        texts(&missing(&[Feature::Fencing], &g)),
        ["fencing (failover.promote) needs READ_ONLY ADMIN for SET GLOBAL read_only = ON"]
    );
}

/// The current user's SHOW GRANTS with a default role: MariaDB lists the
/// default role's grants and those of roles granted to it.
#[test]
fn the_default_role_and_roles_granted_to_it_count() {
    let g = grants(&[
        "GRANT `r_mon` TO `ru`@`%`",
        &format!("GRANT USAGE ON *.* TO `ru`@`%` {PW}"),
        "GRANT SELECT ON `app2`.* TO `ru`@`%`",
        "GRANT `r_inner` TO `r_mon`",
        "GRANT RELOAD, SLAVE MONITOR ON *.* TO `r_mon`",
        "GRANT READ_ONLY ADMIN ON *.* TO `r_inner`",
        "SET DEFAULT ROLE `r_mon` FOR `ru`@`%`",
    ]);
    assert!(g.has("RELOAD") && g.has("SLAVE MONITOR") && g.has("READ_ONLY ADMIN"));
    assert_eq!(g.unresolved_roles(), Vec::<String>::new());
    assert_eq!(g.inactive_roles(), Vec::<String>::new());
    assert_eq!(
        texts(&missing(&[Feature::Promote], &g)),
        ["failover.promote needs REPLICATION SLAVE ADMIN (or SUPER) for STOP ALL SLAVES, STOP SLAVE, CHANGE MASTER TO, START SLAVE, START ALL SLAVES"]
    );
}

#[test]
fn a_granted_role_that_is_not_the_default_does_not_count() {
    // RESET SLAVE ALL as this account: 1227 (RELOAD), though r_mon has it.
    let mut g = grants(&[
        "GRANT `r_mon` TO `rnodef`@`%`",
        &format!("GRANT USAGE ON *.* TO `rnodef`@`%` {PW}"),
    ]);
    assert_eq!(g.inactive_roles(), ["r_mon"]);
    assert_eq!(g.unresolved_roles(), Vec::<String>::new());
    // Even with the role's lines read, they stay inactive.
    g.add_lines(&["GRANT RELOAD, SLAVE MONITOR ON *.* TO `r_mon`"])
        .unwrap();
    assert!(!g.has("RELOAD"));
}

/// SHOW GRANTS FOR another account lists its default role but not the
/// role's privileges: those are read with SHOW GRANTS FOR the role.
#[test]
fn roles_of_another_account_are_resolved_by_their_own_lines() {
    let mut g = grants(&[
        "GRANT `r_repl` TO `rrepl`@`10.%`",
        &format!("GRANT USAGE ON *.* TO `rrepl`@`10.%` {PW}"),
        "SET DEFAULT ROLE `r_repl` FOR `rrepl`@`10.%`",
    ]);
    assert!(!g.has("REPLICATION SLAVE"));
    assert_eq!(g.unresolved_roles(), ["r_repl"]);
    g.add_lines(&[
        "GRANT `r_nested` TO `r_repl`",
        "GRANT USAGE ON *.* TO `r_repl`",
    ])
    .unwrap();
    assert_eq!(g.unresolved_roles(), ["r_nested"]);
    g.add_lines(&["GRANT REPLICATION SLAVE ON *.* TO `r_nested`"])
        .unwrap();
    assert!(g.has("REPLICATION SLAVE"));
    assert_eq!(g.unresolved_roles(), Vec::<String>::new());
}

#[test]
fn an_empty_role_is_listed_with_usage() {
    let g = grants(&[
        "GRANT `r_empty` TO `er`@`%`",
        &format!("GRANT USAGE ON *.* TO `er`@`%` {PW}"),
        "GRANT USAGE ON *.* TO `r_empty`",
        "SET DEFAULT ROLE `r_empty` FOR `er`@`%`",
    ]);
    assert_eq!(g.unresolved_roles(), Vec::<String>::new());
    assert!(!g.has("USAGE") && !g.has("RELOAD"));
}

#[test]
fn quoted_names_hide_no_keyword() {
    // A role called `x ON *.* TO y`, and a host with a quote in it.
    let g = grants(&[
        "GRANT `x ON *.* TO y` TO `u`@`h'``q`",
        "GRANT RELOAD ON *.* TO `x ON *.* TO y`",
        "SET DEFAULT ROLE `x ON *.* TO y` FOR `u`@`h'``q`",
    ]);
    assert!(g.has("RELOAD"));
    assert!(!g.has("SUPER"));
}

#[test]
fn unreadable_lines_are_errors_not_guesses() {
    for line in ["REVOKE ALL ON *.* FROM u", "GRANT RELOAD ON *.*", ""] {
        let e = Grants::parse(&[line]).unwrap_err();
        assert!(e.contains("cannot read the SHOW GRANTS line"), "{e}");
    }
}

#[test]
fn replication_account_on_every_entry() {
    let ok = grants(&[&format!(
        "GRANT REPLICATION SLAVE ON *.* TO `repl`@`%` {PW}"
    )]);
    let superonly = grants(&["GRANT SUPER, REPLICATION SLAVE ADMIN, BINLOG MONITOR, SLAVE MONITOR ON *.* TO `rs_super`@`%`"]);
    assert_eq!(replication_missing("repl", &[("%".into(), ok.clone())]), []);
    assert_eq!(
        texts(&replication_missing(
            "repl",
            &[("%".into(), ok), ("localhost".into(), superonly)]
        )),
        ["failover.replication_user needs REPLICATION SLAVE for replicas reading the primary's binlog (account 'repl'@'localhost')"]
    );
    assert_eq!(
        texts(&replication_missing("repl", &[])),
        ["failover.replication_user needs an account 'repl' with REPLICATION SLAVE for replicas reading the primary's binlog (no such account on this node)"]
    );
}

fn host(yaml_failover: &str, switch_type: &str) -> config::DataHost {
    let text = format!(
        "name: dh\nswitch_type: {switch_type}\nuser: app\npassword: app\nfailover: {yaml_failover}\nnodes:\n  - {{ name: a, address: '127.0.0.1:1', role: write }}\n"
    );
    serde_yaml::from_str(&text).unwrap()
}

#[test]
fn features_follow_the_config() {
    use Feature::*;
    assert_eq!(
        features(&host("{}", "heartbeat")),
        [Heartbeat, Fencing, Promote, AutoRejoin, Switchover]
    );
    assert_eq!(
        features(&host("{auto_rejoin: false}", "none")),
        [Heartbeat, Fencing, Switchover]
    );
    // Mycat's mode changes no backend: the heartbeat is all.
    let mycat = features(&host("{promote: false}", "heartbeat"));
    assert_eq!(mycat, [Heartbeat]);
    assert!(!needs_replication_account(&mycat));
    assert!(needs_replication_account(&[Heartbeat, Fencing, Switchover]));
    assert!(!needs_replication_account(&[Heartbeat, Fencing]));
}

/// Every SQL literal the monitor, the probe and the failover code send
/// is in the table: a statement added there without its privilege here
/// fails this test.
#[test]
fn every_statement_sqlproxyd_runs_is_in_the_table() {
    let sources = [
        include_str!("../failover.rs"),
        include_str!("../monitor.rs"),
        include_str!("../probe.rs"),
    ];
    let starts = [
        "SELECT ",
        "SHOW ",
        "SET GLOBAL",
        "STOP ",
        "START ",
        "RESET ",
        "CHANGE ",
        "DO ",
    ];
    let mut seen = 0;
    for src in sources {
        for piece in src.split('"').skip(1).step_by(2) {
            if !starts.iter().any(|s| piece.starts_with(s)) {
                continue;
            }
            seen += 1;
            assert!(
                STATEMENTS.iter().any(|s| piece.starts_with(s.sql)),
                "{piece:?} is run but not in grants::STATEMENTS"
            );
        }
    }
    assert!(
        seen >= 10,
        "only {seen} statements found: the scan is broken"
    );
}
