//! The decision core, one scenario at a time.

use super::*;
use crate::ha::probe::Link;
use hastack_proto::mysql::gtid::{GtidPos, GtidState};

const FAIL: u32 = 3;

fn specs() -> Vec<NodeSpec> {
    ["db-1", "db-2", "db-3"]
        .iter()
        .enumerate()
        .map(|(i, n)| NodeSpec {
            name: n.to_string(),
            addr: SocketAddr::from(([127, 0, 0, 1], 3311 + i as u16)),
            role: if i == 0 { Role::Write } else { Role::Read },
        })
        .collect()
}

fn policy() -> Policy {
    Policy {
        fail_count: FAIL,
        switch_type: SwitchType::Heartbeat,
        promote: true,
        auto_rejoin: true,
        max_replica_lag: Duration::from_secs(5),
        min_switch_interval: Duration::from_secs(30),
        reads_fall_back_to_primary: true,
        restore_writable: true,
        quorum: Quorum::Majority,
        lease: Duration::from_secs(3),
    }
}

fn gtid(s: &str) -> GtidPos {
    GtidPos::parse(s).unwrap()
}

fn primary(binlog: &str) -> Result<Report, String> {
    primary_with_state(binlog, binlog)
}

fn primary_with_state(binlog: &str, state: &str) -> Result<Report, String> {
    Ok(Report {
        read_only: false,
        server_id: 1,
        gtid_binlog_pos: gtid(binlog),
        gtid_current_pos: gtid(binlog),
        gtid_binlog_state: GtidState::parse(state).unwrap(),
        links: Some(vec![]),
        promotion_locked: false,
    })
}

fn link(of: usize, received: &str) -> Link {
    Link {
        master_host: "127.0.0.1".into(),
        master_port: 3311 + of as u16,
        io: IoThread::Yes,
        sql_running: true,
        seconds_behind: Some(0),
        io_error: None,
        sql_error: None,
        gtid_io_pos: gtid(received),
    }
}

fn replica(l: Link) -> Result<Report, String> {
    let pos = l.gtid_io_pos.to_string();
    Ok(Report {
        read_only: true,
        server_id: 2,
        gtid_binlog_pos: gtid(&pos),
        gtid_current_pos: gtid(&pos),
        gtid_binlog_state: GtidState::parse(&pos).unwrap(),
        links: Some(vec![l]),
        promotion_locked: false,
    })
}

fn healthy() -> Vec<Result<Report, String>> {
    vec![
        primary("0-1-10"),
        replica(link(0, "0-1-10")),
        replica(link(0, "0-1-10")),
    ]
}

fn down() -> Result<Report, String> {
    Err("connect: Connection refused".into())
}

/// Node 0 crashed: the replicas' IO threads are reconnecting.
fn primary_crashed(r1: &str, r2: &str) -> Vec<Result<Report, String>> {
    let lost = |received| Link {
        io: IoThread::Connecting,
        seconds_behind: None,
        io_error: Some((2003, "error reconnecting to master".into())),
        ..link(0, received)
    };
    vec![down(), replica(lost(r1)), replica(lost(r2))]
}

fn cluster() -> (Cluster, Instant) {
    (Cluster::new(specs(), policy(), None), Instant::now())
}

#[test]
fn the_writable_node_nobody_replicates_from_is_primary() {
    let (mut c, t) = cluster();
    let (v, a) = c.observe(healthy(), t);
    assert_eq!(v.primary, Some(0));
    assert_eq!(a, [Action::Persist { index: 0 }]);
    assert!(
        v.nodes.iter().all(|n| n.state == State::Up && n.readable),
        "{v:?}"
    );
    // Persisted once, not every round.
    assert_eq!(c.observe(healthy(), t).1, []);
}

#[test]
fn before_the_first_answer_there_is_no_primary() {
    let (mut c, t) = cluster();
    let (v, a) = c.observe(vec![down(), down(), down()], t);
    assert_eq!(v.primary, None);
    assert!(a.is_empty());
    assert!(
        v.no_primary.contains("no node is writable"),
        "{}",
        v.no_primary
    );
    assert_eq!(v.nodes[0].state, State::Unknown);
}

#[test]
fn the_primary_is_kept_until_fail_count_heartbeats_fail() {
    let (mut c, t) = cluster();
    c.observe(healthy(), t);
    for k in 1..FAIL {
        let (v, a) = c.observe(primary_crashed("0-1-10", "0-1-10"), t);
        assert_eq!(v.primary, Some(0), "after {k} failures");
        assert!(a.is_empty());
    }
    let (v, a) = c.observe(primary_crashed("0-1-10", "0-1-12"), t);
    assert_eq!(v.primary, None);
    assert_eq!(v.nodes[0].state, State::Down);
    // The replica that received the most is promoted; the other follows it.
    assert_eq!(
        a,
        [Action::Promote {
            node: 2,
            old: 0,
            repoint: vec![1]
        }]
    );
    assert!(v.no_primary.contains("promoting db-3"), "{}", v.no_primary);
}

#[test]
fn on_equal_positions_the_first_configured_replica_is_promoted() {
    let (mut c, t) = cluster();
    c.observe(healthy(), t);
    let mut a = vec![];
    for _ in 0..FAIL {
        a = c.observe(primary_crashed("0-1-10", "0-1-10"), t).1;
    }
    assert!(matches!(a[..], [Action::Promote { node: 1, .. }]), "{a:?}");
}

#[test]
fn a_partition_from_this_proxy_alone_promotes_nobody() {
    let (mut c, t) = cluster();
    c.observe(healthy(), t);
    for _ in 0..FAIL + 2 {
        // The replicas still receive from node 0: only we lost it.
        let (v, a) = c.observe(
            vec![
                down(),
                replica(link(0, "0-1-10")),
                replica(link(0, "0-1-10")),
            ],
            t,
        );
        assert!(a.is_empty(), "{a:?}");
        assert!(
            v.no_primary.is_empty() || v.no_primary.contains("still replicates"),
            "{}",
            v.no_primary
        );
        // Cut off once the primary is given up on, not before.
        assert_eq!(v.cut_off.is_some(), v.primary.is_none(), "{v:?}");
    }
    // Healed: the primary answers again and nobody is cut off.
    let (v, _) = c.observe(healthy(), t);
    assert_eq!((v.primary, v.cut_off), (Some(0), None));
}

#[test]
fn a_primary_dead_to_its_replicas_too_is_no_partition() {
    let (mut c, t) = cluster();
    c.observe(healthy(), t);
    for _ in 0..FAIL {
        let (v, _) = c.observe(primary_crashed("0-1-10", "0-1-10"), t);
        assert_eq!(v.cut_off, None, "{v:?}");
    }
}

#[test]
fn a_partition_right_after_a_switch_is_still_seen_as_one() {
    // Within min_switch_interval no failover may happen, but that the
    // primary is alive (the replicas see it) must still be reported.
    let (mut c, t) = cluster();
    c.observe(healthy(), t);
    c.last_switch = Some(t);
    let mut v = View::initial(3);
    for _ in 0..FAIL {
        v = c
            .observe(
                vec![
                    down(),
                    replica(link(0, "0-1-10")),
                    replica(link(0, "0-1-10")),
                ],
                t,
            )
            .0;
    }
    assert!(v.cut_off.is_some(), "{v:?}");
}

#[test]
fn switch_type_none_never_promotes() {
    let mut c = Cluster::new(
        specs(),
        Policy {
            switch_type: SwitchType::None,
            ..policy()
        },
        None,
    );
    let t = Instant::now();
    c.observe(healthy(), t);
    for _ in 0..FAIL + 2 {
        let (v, a) = c.observe(primary_crashed("0-1-10", "0-1-10"), t);
        assert!(a.is_empty());
        if v.primary.is_none() {
            assert!(
                v.no_primary.contains("switch_type is none"),
                "{}",
                v.no_primary
            );
        }
    }
}

#[test]
fn switch_type_replication_needs_a_running_sql_thread() {
    let mut c = Cluster::new(
        specs(),
        Policy {
            switch_type: SwitchType::Replication,
            ..policy()
        },
        None,
    );
    let t = Instant::now();
    c.observe(healthy(), t);
    let mut round = primary_crashed("0-1-10", "0-1-12");
    if let Ok(r) = &mut round[2] {
        r.links.as_mut().unwrap()[0].sql_running = false;
    }
    let mut a = vec![];
    for _ in 0..FAIL {
        a = c.observe(round.clone(), t).1;
    }
    assert!(matches!(a[..], [Action::Promote { node: 1, .. }]), "{a:?}");
}

/// After db-3 was promoted and db-2 re-pointed.
fn after_failover() -> Vec<Result<Report, String>> {
    let mut p = primary_with_state("0-3-20,1-3-5", "0-1-12,0-3-20,1-3-5");
    if let Ok(r) = &mut p {
        r.server_id = 3;
    }
    vec![down(), replica(link(2, "0-3-20,1-3-5")), p]
}

fn failed_over(c: &mut Cluster, t: Instant) {
    c.observe(healthy(), t);
    for _ in 0..FAIL {
        c.observe(primary_crashed("0-1-10", "0-1-12"), t);
    }
    let (v, a) = c.observe(after_failover(), t);
    assert_eq!(v.primary, Some(2));
    assert_eq!(a, [Action::Persist { index: 2 }]);
}

#[test]
fn the_new_primary_is_learned_from_the_backends() {
    let (mut c, t) = cluster();
    failed_over(&mut c, t);
    let (v, _) = c.observe(after_failover(), t);
    assert!(v.nodes[1].readable && !v.nodes[0].readable);
}

#[test]
fn a_returning_old_master_is_fenced_then_rejoined() {
    let (mut c, t) = cluster();
    failed_over(&mut c, t);
    // It comes back writable, replicating from nobody.
    let mut round = after_failover();
    round[0] = primary("0-1-11");
    let (v, a) = c.observe(round.clone(), t);
    assert_eq!(v.primary, Some(2), "the followed node stays primary");
    assert_eq!(v.nodes[0].state, State::Fenced);
    assert!(!v.nodes[0].readable);
    assert_eq!(a, [Action::Fence { node: 0 }]);
    // Fenced (read_only=ON), it holds nothing the primary lacks: rejoin.
    if let Ok(r) = &mut round[0] {
        r.read_only = true;
    }
    let (v, a) = c.observe(round.clone(), t);
    assert_eq!(
        a,
        [Action::Follow {
            node: 0,
            primary: 2,
            current_pos: true
        }]
    );
    assert_eq!(v.nodes[0].state, State::Rejoining);
    // Not asked again at once while it gets going.
    assert_eq!(c.observe(round.clone(), t).1, []);
    // Replicating but behind: still no reads.
    let mut behind = link(2, "0-1-12,1-3-5");
    behind.seconds_behind = Some(60);
    round[0] = replica(behind);
    let (v, _) = c.observe(round.clone(), t);
    assert_eq!(v.nodes[0].state, State::Rejoining);
    assert!(!v.nodes[0].readable);
    // Caught up: it has applied what the primary has.
    round[0] = replica(link(2, "0-3-20,1-3-5"));
    let (v, _) = c.observe(round, t);
    assert_eq!(v.nodes[0].state, State::Up);
    assert!(v.nodes[0].readable);
}

#[test]
fn a_diverged_old_master_stays_fenced() {
    let (mut c, t) = cluster();
    failed_over(&mut c, t);
    let mut round = after_failover();
    round[0] = primary("0-1-13");
    if let Ok(r) = &mut round[0] {
        r.read_only = true;
    }
    let (v, a) = c.observe(round, t);
    assert_eq!(a, []);
    assert_eq!(v.nodes[0].state, State::Fenced);
    assert!(
        v.nodes[0].reason.contains("0-1-13"),
        "{}",
        v.nodes[0].reason
    );
}

#[test]
fn without_auto_rejoin_a_fenced_node_waits_for_a_dba() {
    let mut c = Cluster::new(
        specs(),
        Policy {
            auto_rejoin: false,
            ..policy()
        },
        None,
    );
    let t = Instant::now();
    failed_over(&mut c, t);
    let mut round = after_failover();
    round[0] = primary("0-1-11");
    if let Ok(r) = &mut round[0] {
        r.read_only = true;
    }
    let (v, a) = c.observe(round, t);
    assert_eq!(a, []);
    assert_eq!(v.nodes[0].state, State::Fenced);
}

#[test]
fn a_rejoin_that_the_primary_refuses_is_fenced() {
    let (mut c, t) = cluster();
    failed_over(&mut c, t);
    let mut round = after_failover();
    let refused = Link {
        io: IoThread::No,
        seconds_behind: None,
        io_error: Some((1236, "not in the master's binlog".into())),
        ..link(2, "")
    };
    round[0] = replica(refused);
    let (v, a) = c.observe(round, t);
    assert_eq!(a, []);
    assert_eq!(v.nodes[0].state, State::Fenced);
    assert!(v.nodes[0].reason.contains("1236"));
}

#[test]
fn lagging_or_stopped_replicas_get_no_reads() {
    let (mut c, t) = cluster();
    let mut round = healthy();
    let mut slow = link(0, "0-1-10");
    slow.seconds_behind = Some(6);
    round[1] = replica(slow);
    let mut stopped = link(0, "0-1-10");
    stopped.sql_running = false;
    round[2] = replica(stopped);
    let (v, a) = c.observe(round, t);
    assert_eq!(
        a,
        [Action::Persist { index: 0 }],
        "a stopped SQL thread is left to the DBA"
    );
    assert_eq!(v.nodes[1].state, State::Lagging);
    assert!(
        v.nodes[1].reason.contains("6s behind"),
        "{}",
        v.nodes[1].reason
    );
    assert_eq!(v.nodes[2].state, State::Lagging);
    assert!(!v.nodes[1].readable && !v.nodes[2].readable);
    assert_eq!(v.nodes[1].lag, Some(6));
}

#[test]
fn a_replica_left_on_the_old_primary_is_pointed_at_the_new_one() {
    let (mut c, t) = cluster();
    failed_over(&mut c, t);
    let mut round = after_failover();
    round[1] = replica(Link {
        io: IoThread::Connecting,
        seconds_behind: None,
        ..link(0, "0-1-12")
    });
    let (v, a) = c.observe(round.clone(), t);
    assert_eq!(
        a,
        [Action::Follow {
            node: 1,
            primary: 2,
            current_pos: false
        }]
    );
    assert_eq!(v.nodes[1].state, State::Rejoining);
    assert_eq!(c.observe(round.clone(), t).1, [], "not retried at once");
    assert_eq!(
        c.observe(round, t + RETRY_AFTER).1.len(),
        1,
        "retried later"
    );
}

#[test]
fn min_switch_interval_holds_a_second_failover() {
    // Two of three nodes down is no quorum: this is about the interval.
    let t = Instant::now();
    let mut c = Cluster::new(
        specs(),
        Policy {
            quorum: Quorum::Reachable,
            ..policy()
        },
        None,
    );
    failed_over(&mut c, t);
    // Now db-3 dies too, 10 s later; db-2 follows it.
    let lost = Link {
        io: IoThread::Connecting,
        seconds_behind: None,
        ..link(2, "0-1-12,1-3-5")
    };
    let round = vec![down(), replica(lost), down()];
    let mut a = vec![];
    let mut v = None;
    for _ in 0..FAIL {
        (v, a) = {
            let (view, acts) = c.observe(round.clone(), t + Duration::from_secs(10));
            (Some(view), acts)
        };
    }
    assert_eq!(a, []);
    assert!(v.unwrap().no_primary.contains("min_switch_interval"));
    let (_, a) = c.observe(round, t + Duration::from_secs(31));
    assert!(
        matches!(
            a[..],
            [Action::Promote {
                node: 1,
                old: 2,
                ..
            }]
        ),
        "{a:?}"
    );
}

#[test]
fn two_claimants_and_no_followers_is_no_primary() {
    let (mut c, t) = cluster();
    let (v, a) = c.observe(vec![primary("0-1-1"), primary("0-1-1"), down()], t);
    assert_eq!(v.primary, None);
    assert!(
        v.no_primary.contains("db-1, db-2 all claim"),
        "{}",
        v.no_primary
    );
    assert!(a.is_empty(), "nothing is fenced on a guess: {a:?}");
}

#[test]
fn the_persisted_node_does_not_break_a_tie() {
    // Another proxy may have persisted the other one: fencing on this
    // proxy's own memory could fence both.
    let mut c = Cluster::new(specs(), policy(), Some(1));
    let (v, a) = c.observe(
        vec![primary("0-1-1"), primary("0-1-1"), down()],
        Instant::now(),
    );
    assert_eq!(v.primary, None);
    assert_eq!(a, []);
}

#[test]
fn a_claimant_holding_more_does_not_win_without_followers() {
    // Its extra transactions may be ones nobody acknowledged (an old
    // primary cut off from its replicas): no view-dependent guess.
    let (mut c, t) = cluster();
    let ahead = primary_with_state("0-1-9", "0-1-9");
    let promoted = primary_with_state("0-1-5", "0-1-5");
    let (v, a) = c.observe(vec![ahead, promoted, down()], t);
    assert_eq!(v.primary, None);
    assert_eq!(a, []);
}

#[test]
fn mycat_mode_moves_writes_to_the_next_write_node_only() {
    let mut s = specs();
    s[1].role = Role::Write;
    let mut c = Cluster::new(
        s,
        Policy {
            promote: false,
            ..policy()
        },
        None,
    );
    let t = Instant::now();
    let (v, a) = c.observe(healthy(), t);
    assert_eq!((v.primary, a), (Some(0), vec![]));
    let mut a = vec![];
    let mut v = None;
    for _ in 0..FAIL {
        let r = c.observe(primary_crashed("0-1-10", "0-1-10"), t);
        v = Some(r.0);
        a = r.1;
    }
    assert_eq!(a, [Action::Switch { index: 1, old: 0 }]);
    assert_eq!(v.unwrap().primary, None, "not before the lock is held");
    c.switched(1, t);
    let (v, a) = c.observe(primary_crashed("0-1-10", "0-1-10"), t);
    assert_eq!((v.primary, a), (Some(1), vec![]));
    // Restarted on the persisted index, it stays there.
    let mut c = Cluster::new(
        specs(),
        Policy {
            promote: false,
            ..policy()
        },
        Some(1),
    );
    assert_eq!(c.observe(healthy(), t).0.primary, Some(1));
}

#[test]
fn unknown_replication_status_still_serves() {
    let (mut c, t) = cluster();
    let mut round = healthy();
    for r in round.iter_mut().flatten() {
        r.links = None;
    }
    let (v, _) = c.observe(round, t);
    assert_eq!(v.primary, Some(0));
    assert!(v.nodes[1].readable);
    assert!(v.nodes[1].reason.contains("SLAVE MONITOR"));
}

/// The asymmetric partition of issue 18: this proxy reaches only db-2,
/// whose IO thread gave up on db-1.
#[test]
fn a_proxy_with_one_node_of_three_never_promotes() {
    let (mut c, t) = cluster();
    c.observe(healthy(), t);
    let lost = Link {
        io: IoThread::Connecting,
        seconds_behind: None,
        io_error: Some((2003, "error reconnecting to master".into())),
        ..link(0, "0-1-10")
    };
    for k in 1..=10u64 {
        let (v, a) = c.observe(
            vec![down(), replica(lost.clone()), down()],
            t + Duration::from_secs(40 * k),
        );
        assert!(a.is_empty(), "{a:?}");
        assert_eq!(v.primary, None);
        if k >= 3 {
            assert!(
                v.no_primary.contains("no failover without a majority"),
                "{}",
                v.no_primary
            );
        }
    }
}

#[test]
fn writes_stop_a_lease_after_the_majority_was_last_reached() {
    let (mut c, t) = cluster();
    c.observe(healthy(), t);
    // Cut off with the primary alone: still within the lease, writes go on.
    let alone = vec![primary("0-1-10"), down(), down()];
    let (v, _) = c.observe(alone.clone(), t + Duration::from_secs(1));
    assert_eq!(v.writer(t + Duration::from_secs(1)), Some(0));
    assert_eq!(v.writer(t + Duration::from_secs(3)), None, "{v:?}");
    let (v, _) = c.observe(alone.clone(), t + Duration::from_secs(3));
    assert_eq!(v.primary, None);
    assert!(
        v.no_primary.contains("reaches 1 of the 3"),
        "{}",
        v.no_primary
    );
    assert!(
        v.cut_off.is_some(),
        "GET /health must send clients elsewhere"
    );
    assert!(!v.nodes[0].readable);
    // Back with one replica: 2 of 3, writes again.
    let mut back = alone;
    back[1] = replica(link(0, "0-1-10"));
    let (v, _) = c.observe(back, t + Duration::from_secs(4));
    assert_eq!(v.writer(t + Duration::from_secs(4)), Some(0));
    assert_eq!(v.cut_off, None);
}

#[test]
fn a_promotion_lock_seen_anywhere_stops_writes_at_once() {
    let (mut c, t) = cluster();
    c.observe(healthy(), t);
    let mut round = healthy();
    if let Ok(r) = &mut round[2] {
        r.promotion_locked = true;
    }
    let (v, _) = c.observe(round, t + Duration::from_secs(1));
    assert_eq!(v.writer(t + Duration::from_secs(1)), None);
    assert!(
        v.no_primary.contains("promotion lock is held on db-3"),
        "{}",
        v.no_primary
    );
    let (v, _) = c.observe(healthy(), t + Duration::from_secs(2));
    assert_eq!(v.writer(t + Duration::from_secs(2)), Some(0));
}

#[test]
fn two_nodes_keep_writing_on_the_primary_but_never_fail_over() {
    let two: Vec<NodeSpec> = specs().into_iter().take(2).collect();
    let mut c = Cluster::new(two, policy(), None);
    let t = Instant::now();
    c.observe(vec![primary("0-1-10"), replica(link(0, "0-1-10"))], t);
    let (v, _) = c.observe(vec![primary("0-1-10"), down()], t + Duration::from_secs(60));
    assert_eq!(v.writer(t + Duration::from_secs(60)), Some(0), "{v:?}");
    let lost = Link {
        io: IoThread::Connecting,
        seconds_behind: None,
        ..link(0, "0-1-10")
    };
    for k in 2..8 {
        let (v, a) = c.observe(
            vec![down(), replica(lost.clone())],
            t + Duration::from_secs(60 * k),
        );
        assert!(a.is_empty(), "{a:?}");
        if k > u64::from(FAIL) {
            assert_eq!(v.primary, None);
            assert!(
                v.no_primary.contains("no failover without a majority"),
                "{}",
                v.no_primary
            );
        }
    }
    // quorum: reachable says yes, and says what it risks (config warnings).
    let two: Vec<NodeSpec> = specs().into_iter().take(2).collect();
    let mut c = Cluster::new(
        two,
        Policy {
            quorum: Quorum::Reachable,
            ..policy()
        },
        None,
    );
    c.observe(vec![primary("0-1-10"), replica(link(0, "0-1-10"))], t);
    let mut a = vec![];
    for k in 1..=FAIL {
        a = c
            .observe(
                vec![down(), replica(lost.clone())],
                t + Duration::from_secs(u64::from(k)),
            )
            .1;
    }
    assert!(matches!(a[..], [Action::Promote { node: 1, .. }]), "{a:?}");
}

#[test]
fn mycat_mode_does_not_switch_while_a_replica_still_hears_the_write_node() {
    let mut c = Cluster::new(
        specs(),
        Policy {
            promote: false,
            ..policy()
        },
        None,
    );
    let t = Instant::now();
    c.observe(healthy(), t);
    let round = vec![
        down(),
        replica(link(0, "0-1-10")),
        replica(link(0, "0-1-10")),
    ];
    for k in 1..=FAIL + 1 {
        let (v, a) = c.observe(round.clone(), t);
        assert!(a.is_empty(), "{a:?}");
        assert_eq!(v.primary.is_none(), k >= FAIL, "round {k}: {v:?}");
    }
    let (v, _) = c.observe(round, t);
    assert!(v.cut_off.is_some_and(|w| w.contains("still replicates")));
}

#[test]
fn a_returning_primary_and_its_successor_wait_for_a_follower_to_decide() {
    let (mut c, t) = cluster();
    c.observe(healthy(), t);
    for k in 1..=FAIL {
        c.observe(
            vec![down(), down(), replica(link(0, "0-1-10"))],
            t + Duration::from_secs(k.into()),
        );
    }
    // db-2 was promoted elsewhere and took writes; db-1 is back writable;
    // db-3, which follows db-2 now, misses this round.
    let successor = primary_with_state("0-2-43", "0-1-10,0-2-43");
    let (v, a) = c.observe(
        vec![primary("0-1-10"), successor.clone(), down()],
        t + Duration::from_secs(9),
    );
    assert_eq!(v.primary, None, "{v:?}");
    assert!(
        !a.iter().any(|a| matches!(a, Action::Fence { .. })),
        "{a:?}"
    );
    // db-3 answers, following db-2: that decides it.
    let follower = replica(link(1, "0-2-43"));
    let (v, a) = c.observe(
        vec![primary("0-1-10"), successor, follower],
        t + Duration::from_secs(10),
    );
    assert_eq!(v.primary, Some(1), "{v:?}");
    assert_eq!(a[..1], [Action::Fence { node: 0 }]);
}

/// Seconds_Behind_Master says 0 while the IO thread has not fetched what
/// it lacks; the primary's position of `max_replica_lag` ago decides.
#[test]
fn a_replica_that_has_not_applied_the_primarys_position_of_lag_ago_gets_no_reads() {
    let (mut c, t) = cluster();
    let at = |s: u64| t + Duration::from_secs(s);
    c.observe(healthy(), at(0));
    // The primary moves on; db-3's IO thread is stuck at 0-1-10 yet
    // reports Yes with 0 seconds behind.
    for s in 1..=4 {
        let mut round = healthy();
        round[0] = primary(&format!("0-1-{}", 10 + s));
        round[1] = replica(link(0, &format!("0-1-{}", 10 + s)));
        let (v, _) = c.observe(round, at(s));
        assert!(v.nodes[2].readable, "within max_replica_lag (5s) at {s}s");
    }
    let mut round = healthy();
    round[0] = primary("0-1-20");
    round[1] = replica(link(0, "0-1-20"));
    let (v, _) = c.observe(round.clone(), at(6));
    assert!(!v.nodes[2].readable, "{:?}", v.nodes[2]);
    assert!(
        v.nodes[2].reason.contains("behind: has not applied 0-1-11"),
        "{}",
        v.nodes[2].reason
    );
    assert!(v.nodes[1].readable);
    // Caught up: reads again.
    round[2] = replica(link(0, "0-1-20"));
    let (v, _) = c.observe(round, at(7));
    assert!(v.nodes[2].readable, "{:?}", v.nodes[2]);
}

/// From the adversarial review: the most advanced replica missing one
/// heartbeat must not be passed over (and re-pointed at a less advanced one).
#[test]
fn the_best_candidate_missing_one_heartbeat_is_waited_for() {
    let (mut c, t) = cluster();
    c.observe(healthy(), t);
    let crashed = primary_crashed("0-1-10", "0-1-12");
    for _ in 0..FAIL - 1 {
        c.observe(crashed.clone(), t);
    }
    let mut late = crashed.clone();
    late[2] = down();
    let (v, a) = c.observe(late, t);
    assert!(a.is_empty(), "{a:?}");
    assert!(
        v.no_primary.contains("waiting for a heartbeat from db-3"),
        "{}",
        v.no_primary
    );
    let (_, a) = c.observe(crashed, t);
    assert!(matches!(a[..], [Action::Promote { node: 2, .. }]), "{a:?}");
}

/// A write's reply is vouched for only under the epoch it was sent in:
/// a lapse of the lease, or another primary, between send and reply
/// disowns it, even once the lease is renewed.
#[test]
fn a_lapsed_lease_or_a_new_primary_disowns_writes_sent_before() {
    let (mut c, t) = cluster();
    let at = |ms: u64| t + Duration::from_millis(ms);
    let (v, _) = c.observe(healthy(), at(0));
    let sent = v.lease_epoch;
    let (v, _) = c.observe(healthy(), at(1000));
    assert!(v.vouches(sent, 0, at(1500)), "renewed without a break");
    // Cut off long enough for the lease (3 s) to run out, then back.
    let alone = vec![primary("0-1-10"), down(), down()];
    c.observe(alone.clone(), at(2000));
    let (v, _) = c.observe(alone, at(4500));
    assert!(!v.vouches(sent, 0, at(4500)));
    let (v, _) = c.observe(healthy(), at(5000));
    assert!(v.writer(at(5000)).is_some());
    assert!(
        !v.vouches(sent, 0, at(5000)),
        "the lapse disowns it for good"
    );
    assert!(v.vouches(v.lease_epoch, 0, at(5000)));
    // Not for a node that is not the primary.
    assert!(!v.vouches(v.lease_epoch, 1, at(5000)));
}

/// The nemesis, seed 20: the primary restarted with read_only=ON from its
/// my.cnf, still followed by both replicas: made writable again, not left
/// with no primary for good.
#[test]
fn a_primary_back_read_only_and_still_followed_is_made_writable_again() {
    let (mut c, t) = cluster();
    c.observe(healthy(), t);
    let mut round = healthy();
    if let Ok(r) = &mut round[0] {
        r.read_only = true;
    }
    let (v, a) = c.observe(round.clone(), t);
    assert_eq!(v.primary, None);
    assert_eq!(a, [Action::Restore { node: 0 }]);
    assert!(
        v.no_primary.contains("making it writable again"),
        "{}",
        v.no_primary
    );
    // Off: it waits for a DBA.
    let mut c = Cluster::new(
        specs(),
        Policy {
            restore_writable: false,
            ..policy()
        },
        None,
    );
    c.observe(healthy(), t);
    assert_eq!(c.observe(round, t).1, []);
}

/// The nemesis, seeds 29 and 33: the first primary, restarted as a replica
/// with its own my.cnf (read_only off), replicates writable: made read-only.
#[test]
fn a_writable_replica_is_made_read_only() {
    let (mut c, t) = cluster();
    c.observe(healthy(), t);
    let mut round = healthy();
    if let Ok(r) = &mut round[1] {
        r.read_only = false;
    }
    let (v, a) = c.observe(round, t);
    assert_eq!(v.primary, Some(0));
    assert_eq!(a, [Action::Fence { node: 1 }]);
}
