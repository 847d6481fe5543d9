//! vrrpd on namespace hosts (issue 7): elections and failover between two
//! vrrpd and in a mixed group with keepalived (v2 with PASS, v3), a VIP on
//! one host at a time, partitions, a client following the VIP, process
//! tracking, and crafted adverts that must be dropped and counted.
//!
//! Every wait is for an outcome with a generous deadline; the one timing
//! assertion (the priority-0 handover) has a margin of seconds.

// Helpers outside #[test] fns unwrap too: a failed step is a failed test.
#![allow(clippy::unwrap_used)]

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use hastack_it::process::LoggedChild;
use hastack_it::vrrp::{self, metric_sum, Instance, Keepalived, Packet};
use hastack_it::{wait_for, DaemonProcess, NetLab};
use hastack_proto::vrrp::{Auth, Checksum, MULTICAST_V4};
use nix::sys::signal::Signal;

const VIP: &str = "10.99.0.100/24";
const LONG: Duration = Duration::from_secs(30);
// Our daemons' metrics carry the `hastack_` namespace.
const DROPPED: &str = "hastack_vrrpd_adverts_dropped_total";
const TRANSITIONS: &str = "hastack_vrrpd_transitions_total";

fn require_root() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "network-namespace tests need root (CI runs as root); run them with sudo"
    );
}

fn lab(hosts: &[(&str, &str)]) -> NetLab {
    require_root();
    NetLab::new(hosts).unwrap()
}

fn pair() -> NetLab {
    lab(&[("lb1", "10.99.0.21/24"), ("lb2", "10.99.0.22/24")])
}

fn vrrpd(lab: &NetLab, host: &str, inst: &Instance) -> DaemonProcess {
    vrrp::start_vrrpd(lab, host, &inst.vrrpd_config()).unwrap()
}

fn keepalived(lab: &NetLab, host: &str, inst: &Instance) -> Keepalived {
    Keepalived::start(lab, host, &inst.keepalived_conf(host)).unwrap()
}

/// Waits until exactly `want` hold the VIP, or fails with the logs.
fn holders(lab: &NetLab, want: &[&str], logs: &[&dyn Logged]) {
    let vip = vip();
    if let Err(e) = vrrp::wait_holders(lab, vip, want, LONG) {
        panic!("{e}{}", logs_of(logs));
    }
}

fn vip() -> Ipv4Addr {
    Instance::v3(1, 1, VIP).vip_addr()
}

trait Logged {
    fn logs(&self) -> String;
}

impl Logged for DaemonProcess {
    fn logs(&self) -> String {
        format!(
            "vrrpd ({}):\n{}",
            self.netns.as_deref().unwrap_or("-"),
            self.log()
        )
    }
}

impl Logged for Keepalived {
    fn logs(&self) -> String {
        format!("keepalived ({}):\n{}", self.host, self.log())
    }
}

fn logs_of(logs: &[&dyn Logged]) -> String {
    logs.iter().map(|l| format!("\n--- {}", l.logs())).collect()
}

fn state(d: &DaemonProcess) -> String {
    vrrp::instance_state(d, "VI_1").unwrap()
}

fn wait_state(d: &DaemonProcess, want: &str) {
    vrrp::wait_state(d, "VI_1", want).unwrap();
}

fn kill9(d: &mut DaemonProcess) {
    d.signal(Signal::SIGKILL).unwrap();
    d.wait_exit(Duration::from_secs(10)).unwrap();
}

fn metrics(d: &DaemonProcess) -> String {
    d.metrics().unwrap()
}

/// Transitions of VI_1 so far, all kinds (at least one: it has started).
fn transitions(d: &DaemonProcess) -> f64 {
    let m = metrics(d);
    let n = metric_sum(&m, TRANSITIONS, &[("instance", "VI_1")]);
    assert!(n > 0.0, "no {TRANSITIONS} for VI_1 in\n{m}");
    n
}

// --- two vrrpd ---

#[test]
fn the_higher_priority_wins_and_a_killed_master_fails_over_then_preempts_back() {
    let lab = pair();
    let inst = Instance::v3(51, 150, VIP);
    let mut a = vrrpd(&lab, "lb1", &inst);
    let b = vrrpd(&lab, "lb2", &inst.clone().priority(100));
    holders(&lab, &["lb1"], &[&a, &b]);
    wait_state(&a, "MASTER");
    wait_state(&b, "BACKUP");

    // kill -9 leaves lb1's address behind (as keepalived's would); lb2 must
    // take the VIP all the same.
    kill9(&mut a);
    wait_state(&b, "MASTER");
    holders(&lab, &["lb1", "lb2"], &[&b]);

    // Restarted, lb1 outranks lb2 and preempts; lb2 lets go of the VIP.
    let a = vrrpd(&lab, "lb1", &inst);
    wait_state(&a, "MASTER");
    wait_state(&b, "BACKUP");
    holders(&lab, &["lb1"], &[&a, &b]);
}

#[test]
fn with_nopreempt_a_restarted_higher_priority_router_stays_backup() {
    let lab = pair();
    let inst = Instance::v3(51, 150, VIP).nopreempt();
    let mut a = vrrpd(&lab, "lb1", &inst);
    let b = vrrpd(&lab, "lb2", &inst.clone().priority(100));
    holders(&lab, &["lb1"], &[&a, &b]);
    kill9(&mut a);
    wait_state(&b, "MASTER");

    let a = vrrpd(&lab, "lb1", &inst);
    wait_state(&a, "BACKUP");
    // Starting as backup, lb1 also removes the VIP its killed predecessor
    // left behind, as keepalived does at start ("removing VIPs").
    holders(&lab, &["lb2"], &[&a, &b]);
    vrrp::assert_sole_holder(&lab, vip(), "lb2", Duration::from_secs(3))
        .unwrap_or_else(|e| panic!("{e}{}", logs_of(&[&a, &b])));
    assert_eq!(state(&a), "BACKUP", "nopreempt router preempted");
}

#[test]
fn sigterm_on_the_master_hands_over_at_once_with_a_priority_0_advert() {
    let lab = pair();
    // v2, 2 s: without the priority-0 advert lb2 would wait
    // Master_Down_Interval = 3 × 2 s + (256 − 100)/256 s ≈ 6.6 s; with it,
    // Skew_Time ≈ 0.6 s.
    let mut inst = Instance::v2(51, 150, VIP);
    inst.advert_int = Duration::from_secs(2);
    let mut a = vrrpd(&lab, "lb1", &inst);
    let b = vrrpd(&lab, "lb2", &inst.clone().priority(100));
    holders(&lab, &["lb1"], &[&a, &b]);
    wait_state(&b, "BACKUP");

    let t0 = Instant::now();
    a.signal(Signal::SIGTERM).unwrap();
    wait_state(&b, "MASTER");
    let took = Instant::now().saturating_duration_since(t0);
    let status = a.wait_exit(Duration::from_secs(10));
    assert!(
        status.is_some_and(|s| s.success()),
        "vrrpd did not exit cleanly on SIGTERM: {status:?}\n{}",
        a.log()
    );
    assert!(
        took < Duration::from_millis(4500),
        "lb2 took over {took:?} after SIGTERM, as if it had waited for Master_Down_Interval \
         (6.6 s) rather than the priority-0 advert\n{}{}",
        a.log(),
        b.log()
    );
    // The resigning master removed its VIP: one holder, at once.
    holders(&lab, &["lb2"], &[&a, &b]);
}

#[test]
fn the_vip_is_on_one_host_at_a_time_and_a_healed_partition_converges() {
    let mut lab = pair();
    let inst = Instance::v3(51, 150, VIP);
    let a = vrrpd(&lab, "lb1", &inst);
    let b = vrrpd(&lab, "lb2", &inst.clone().priority(100));
    holders(&lab, &["lb1"], &[&a, &b]);
    vrrp::assert_sole_holder(&lab, vip(), "lb1", Duration::from_secs(3))
        .unwrap_or_else(|e| panic!("{e}{}", logs_of(&[&a, &b])));

    // Cut off from each other, both are master (split brain, as VRRP must).
    lab.partition("lb1", "lb2").unwrap();
    wait_state(&b, "MASTER");
    holders(&lab, &["lb1", "lb2"], &[&a, &b]);
    assert_eq!(state(&a), "MASTER");

    lab.heal("lb1", "lb2").unwrap();
    wait_state(&b, "BACKUP");
    holders(&lab, &["lb1"], &[&a, &b]);
    vrrp::assert_sole_holder(&lab, vip(), "lb1", Duration::from_secs(2))
        .unwrap_or_else(|e| panic!("{e}{}", logs_of(&[&a, &b])));
}

// --- a client of the VIP ---

/// Two routers each answering on VIP:3306 with its name, and a client
/// whose ARP entries stay until something moves them.
fn client_lab() -> (NetLab, [hastack_it::tcp::EchoServer; 2], SocketAddr) {
    let lab = lab(&[
        ("lb1", "10.99.0.21/24"),
        ("lb2", "10.99.0.22/24"),
        ("client", "10.99.0.10/24"),
    ]);
    vrrp::keep_neighbours(&lab, "client").unwrap();
    let servers = [
        vrrp::echo_server(&lab, "lb1", 3306).unwrap(),
        vrrp::echo_server(&lab, "lb2", 3306).unwrap(),
    ];
    (lab, servers, SocketAddr::new(IpAddr::V4(vip()), 3306))
}

#[test]
fn a_client_reaches_the_new_master_through_the_vip_without_waiting_for_arp_expiry() {
    let (lab, _servers, to) = client_lab();

    let inst = Instance::v3(51, 150, VIP);
    let a = vrrpd(&lab, "lb1", &inst);
    let b = vrrpd(&lab, "lb2", &inst.clone().priority(100));
    holders(&lab, &["lb1"], &[&a, &b]);
    assert_eq!(vrrp::who_from_host(&lab, "client", to).unwrap(), "lb1");
    vrrp::wait_neighbour(&lab, "client", vip(), "lb1").unwrap();

    a.signal(Signal::SIGTERM).unwrap();
    holders(&lab, &["lb2"], &[&a, &b]);
    vrrp::wait_neighbour(&lab, "client", vip(), "lb2")
        .unwrap_or_else(|e| panic!("{e}{}", logs_of(&[&b])));
    assert_eq!(vrrp::who_from_host(&lab, "client", to).unwrap(), "lb2");
}

// --- tracking ---

#[test]
fn a_tracked_process_that_dies_lowers_the_priority_and_the_peer_takes_over() {
    let lab = pair();
    // A `sleep` under a name of its own, so no other test's process counts.
    let dir = tempfile::tempdir().unwrap();
    let name = format!("hstrk{}", std::process::id() % 1_000_000);
    let exe = dir.path().join(&name);
    std::fs::copy("/bin/sleep", &exe).unwrap();
    let run = || LoggedChild::spawn(&exe, &["600"], dir.path().join("sleep.log")).unwrap();
    let mut tracked = Some(run());

    // 150 − 60 = 90 < 100 while the process is gone.
    let inst = Instance::v3(51, 150, VIP).track_process(&name, -60);
    let a = vrrpd(&lab, "lb1", &inst);
    let b = vrrpd(&lab, "lb2", &Instance::v3(51, 100, VIP));
    holders(&lab, &["lb1"], &[&a, &b]);

    drop(tracked.take());
    holders(&lab, &["lb2"], &[&a, &b]);
    wait_state(&a, "BACKUP");

    tracked = Some(run());
    holders(&lab, &["lb1"], &[&a, &b]);
    wait_state(&b, "BACKUP");
    drop(tracked);
}

// --- mixed groups with keepalived ---

/// vrrpd on lb1 and keepalived on lb2; the one named master has the higher
/// priority. The master stops (resigning), the other takes the VIP; the
/// master returns and preempts.
fn mixed(inst: &Instance, vrrpd_is_master: bool) {
    let lab = pair();
    let (hi, lo) = (inst.clone().priority(150), inst.clone().priority(100));
    let (vi, ki) = if vrrpd_is_master {
        (&hi, &lo)
    } else {
        (&lo, &hi)
    };
    let mut d = vrrpd(&lab, "lb1", vi);
    let mut k = keepalived(&lab, "lb2", ki);
    let (master, backup) = if vrrpd_is_master {
        ("lb1", "lb2")
    } else {
        ("lb2", "lb1")
    };
    holders(&lab, &[master], &[&d, &k]);
    wait_state(&d, if vrrpd_is_master { "MASTER" } else { "BACKUP" });
    vrrp::assert_sole_holder(&lab, vip(), master, Duration::from_secs(2))
        .unwrap_or_else(|e| panic!("{e}{}", logs_of(&[&d, &k])));

    // The master stops cleanly: the backup takes over.
    if vrrpd_is_master {
        d.signal(Signal::SIGTERM).unwrap();
        d.wait_exit(Duration::from_secs(10)).unwrap();
    } else {
        k.stop().unwrap();
    }
    holders(&lab, &[backup], &[&d, &k]);
    if !vrrpd_is_master {
        wait_state(&d, "MASTER");
    }

    // It comes back and preempts.
    if vrrpd_is_master {
        d = vrrpd(&lab, "lb1", vi);
    } else {
        k = keepalived(&lab, "lb2", ki);
    }
    holders(&lab, &[master], &[&d, &k]);
    wait_state(&d, if vrrpd_is_master { "MASTER" } else { "BACKUP" });
    vrrp::assert_sole_holder(&lab, vip(), master, Duration::from_secs(2))
        .unwrap_or_else(|e| panic!("{e}{}", logs_of(&[&d, &k])));
}

#[test]
fn mixed_v2_pass_vrrpd_master_keepalived_backup() {
    mixed(&Instance::v2(61, 100, VIP), true);
}

#[test]
fn mixed_v2_pass_keepalived_master_vrrpd_backup() {
    mixed(&Instance::v2(61, 100, VIP), false);
}

#[test]
fn mixed_v3_vrrpd_master_keepalived_backup() {
    mixed(&Instance::v3(62, 100, VIP), true);
}

#[test]
fn mixed_v3_keepalived_master_vrrpd_backup() {
    mixed(&Instance::v3(62, 100, VIP), false);
}

/// Equal priorities, both masters while partitioned; healed, the higher
/// primary address wins whichever daemon runs there. Two labs: vrrpd on
/// the higher address in one, keepalived in the other.
fn tie(inst: &Instance) {
    let mut labs = [pair(), pair()];
    let mut running = Vec::new();
    for (n, lab) in labs.iter_mut().enumerate() {
        lab.partition("lb1", "lb2").unwrap();
        let (vh, kh) = if n == 0 {
            ("lb2", "lb1")
        } else {
            ("lb1", "lb2")
        };
        running.push((vrrpd(lab, vh, inst), keepalived(lab, kh, inst)));
    }
    for (lab, (d, k)) in labs.iter().zip(&running) {
        holders(lab, &["lb1", "lb2"], &[d, k]);
    }
    for lab in &mut labs {
        lab.heal("lb1", "lb2").unwrap();
    }
    for (n, (lab, (d, k))) in labs.iter().zip(&running).enumerate() {
        holders(lab, &["lb2"], &[d, k]);
        wait_state(d, if n == 0 { "MASTER" } else { "BACKUP" });
    }
}

#[test]
fn mixed_v2_equal_priorities_the_higher_address_wins_on_both() {
    tie(&Instance::v2(63, 100, VIP));
}

#[test]
fn mixed_v3_equal_priorities_the_higher_address_wins_on_both() {
    tie(&Instance::v3(64, 100, VIP));
}

// --- bad input ---

/// Sends `packet` from `from` a few times, waits for `reason`'s drop
/// counter to count them, and checks that nothing changed.
fn dropped(lab: &NetLab, d: &DaemonProcess, from: &str, reason: &str, packet: Packet) {
    let before = metric_sum(&metrics(d), DROPPED, &[("reason", reason)]);
    let moves = transitions(d);
    vrrp::send_packets(lab, from, &[packet], 3, Duration::from_millis(50)).unwrap();
    let counted = wait_for(LONG, Duration::from_millis(50), || {
        (metric_sum(&metrics(d), DROPPED, &[("reason", reason)]) >= before + 3.0).then_some(())
    });
    assert!(
        counted.is_some(),
        "3 adverts ({reason}) not counted as dropped: {before} before\n{}\n{}",
        metrics(d),
        d.log()
    );
    assert_eq!(
        transitions(d),
        moves,
        "an advert dropped for {reason} changed the state\n{}",
        d.log()
    );
    assert_eq!(state(d), "MASTER");
    assert_eq!(vrrp::vip_holders(lab, vip()).unwrap(), ["lb1"]);
}

/// Sends `packet` from `from` and waits for the state to change.
fn obeyed(lab: &NetLab, d: &DaemonProcess, from: &str, packet: Packet) {
    let moves = transitions(d);
    vrrp::send_packets(lab, from, &[packet], 3, Duration::from_millis(50)).unwrap();
    let changed = wait_for(LONG, Duration::from_millis(50), || {
        (transitions(d) > moves).then_some(())
    });
    assert!(
        changed.is_some(),
        "a correct higher-priority advert from {from} changed nothing\n{}",
        d.log()
    );
}

fn rogue_lab() -> NetLab {
    lab(&[
        ("lb1", "10.99.0.21/24"),
        ("lb2", "10.99.0.22/24"),
        ("rogue", "10.99.0.30/24"),
    ])
}

#[test]
fn crafted_bad_adverts_are_dropped_counted_by_reason_and_change_nothing() {
    let lab = rogue_lab();
    let inst = Instance::v2(71, 150, VIP);
    let d = vrrpd(&lab, "lb1", &inst);
    wait_state(&d, "MASTER");
    holders(&lab, &["lb1"], &[&d]);
    let rogue = lab.host("rogue").addr;
    // Each would win the election if it were taken.
    let good = inst.advert(254);
    let packet = |a: &hastack_proto::vrrp::Advert| Packet::multicast(a, rogue);

    dropped(&lab, &d, "rogue", "ttl", packet(&good).ttl(254));
    dropped(&lab, &d, "rogue", "checksum", packet(&good).bad_checksum());
    dropped(&lab, &d, "rogue", "malformed", packet(&good).truncated(6));
    let mut wrong = good.clone();
    wrong.auth = Auth::simple("wrong");
    dropped(&lab, &d, "rogue", "auth", packet(&wrong));
    let mut other = good.clone();
    other.vrid = 72;
    dropped(&lab, &d, "rogue", "vrid", packet(&other));
    // Our VRID with another VIP set: a duplicate VRID on the segment.
    let mut dup = good.clone();
    dup.addresses = vec![std::net::IpAddr::from([10, 200, 0, 9])];
    dropped(&lab, &d, "rogue", "addresses", packet(&dup));
    let mut slow = good.clone();
    slow.interval_cs = 300;
    dropped(&lab, &d, "rogue", "interval", packet(&slow));
    // A v3 advert as keepalived sends it (pseudo-header checksum): wrong
    // for a v2 instance by its version, whatever the checksum rule.
    let v3 = Instance::v3(71, 150, VIP).advert(254);
    let v3 = Packet::with_checksum(&v3, rogue, MULTICAST_V4, Checksum::PseudoHeader);
    dropped(&lab, &d, "rogue", "version", v3);

    // The same advert intact is obeyed: the sender was not the problem.
    obeyed(&lab, &d, "rogue", packet(&good));
}

#[test]
fn in_unicast_mode_adverts_from_a_non_peer_are_dropped() {
    let lab = rogue_lab();
    let (a, b) = (lab.host("lb1").addr, lab.host("lb2").addr);
    let inst = Instance::v3(73, 150, VIP).unicast(a, &[b]);
    let d = vrrpd(&lab, "lb1", &inst);
    wait_state(&d, "MASTER");
    holders(&lab, &["lb1"], &[&d]);
    let advert = inst.advert(254);
    let rogue = lab.host("rogue").addr;
    dropped(&lab, &d, "rogue", "peer", Packet::advert(&advert, rogue, a));

    // From the peer (no vrrpd there), it is obeyed.
    obeyed(&lab, &d, "lb2", Packet::advert(&advert, b, a));
}

// --- reload ---

#[test]
fn a_reload_keeps_the_master_and_its_vips_and_adds_new_ones() {
    let lab = pair();
    let inst = Instance::v3(51, 150, VIP);
    let a = vrrpd(&lab, "lb1", &inst);
    let b = vrrpd(&lab, "lb2", &inst.clone().priority(100));
    holders(&lab, &["lb1"], &[&a, &b]);
    wait_state(&a, "MASTER");
    let moves = transitions(&a);

    // A second VIP and another priority; the first VIP stays.
    let config = inst
        .clone()
        .priority(160)
        .vrrpd_config()
        .replace(&format!("[{VIP}]"), &format!("[{VIP}, 10.99.0.101/24]"));
    a.write_config(&config).unwrap();
    a.reload().unwrap();
    let second: Ipv4Addr = "10.99.0.101".parse().unwrap();
    vrrp::wait_holders(&lab, second, &["lb1"], LONG)
        .unwrap_or_else(|e| panic!("{e}{}", logs_of(&[&a, &b])));
    // Sampled across and after the reload: never gone, never on lb2.
    vrrp::assert_sole_holder(&lab, vip(), "lb1", Duration::from_secs(2))
        .unwrap_or_else(|e| panic!("{e}{}", logs_of(&[&a, &b])));
    assert_eq!(
        transitions(&a),
        moves,
        "the reload moved the state\n{}",
        a.log()
    );
    assert!(
        !a.log().contains("VIP removed"),
        "a VIP that stays was removed:\n{}",
        a.log()
    );
    assert_eq!(
        vrrp::instance_status(&a, "VI_1").unwrap()["effective_priority"],
        160
    );
    wait_state(&b, "BACKUP");
}

// --- IPv6 ---

#[test]
fn an_ipv6_pair_elects_one_master_and_fails_over() {
    let lab = pair();
    let v6 = |priority: u8| {
        format!(
            "admin_http:\n  listen: {}\nshutdown_grace: 3s\ninstances:\n  V6:\n    interface: eth0\n    virtual_router_id: 60\n    priority: {priority}\n    version: 3\n    advert_int: 100ms\n    virtual_ipaddress: [fd00:99::100/64]\n",
            vrrp::ADMIN
        )
    };
    let mut a = vrrp::start_vrrpd(&lab, "lb1", &v6(150)).unwrap();
    let b = vrrp::start_vrrpd(&lab, "lb2", &v6(100)).unwrap();
    vrrp::wait_state(&a, "V6", "MASTER").unwrap_or_else(|e| panic!("{e}{}", logs_of(&[&a, &b])));
    vrrp::wait_state(&b, "V6", "BACKUP").unwrap_or_else(|e| panic!("{e}{}", logs_of(&[&a, &b])));
    let holds = |host: &str| {
        let out = lab
            .run(host, "ip", &["-o", "-6", "addr", "show", "dev", "eth0"])
            .unwrap();
        String::from_utf8_lossy(&out.stdout).contains("fd00:99::100/64")
    };
    assert!(holds("lb1") && !holds("lb2"));
    // The backup heard the master's link-local address.
    let master = vrrp::instance_status(&b, "V6").unwrap()["master"].clone();
    assert!(
        master.as_str().is_some_and(|m| m.starts_with("fe80:")),
        "{master}"
    );
    kill9(&mut a);
    vrrp::wait_state(&b, "V6", "MASTER").unwrap_or_else(|e| panic!("{e}{}", logs_of(&[&b])));
    assert!(holds("lb2"));
}
