//! The VRRP fixtures checked against keepalived alone: the generated
//! configs elect, the VIP listing sees who holds the address, and the
//! crafted-advert sender speaks VRRP well enough that keepalived obeys a
//! correct advert and ignores a broken one.

// Helpers outside #[test] fns unwrap too: a failed step is a failed test.
#![allow(clippy::unwrap_used)]

use std::net::Ipv4Addr;
use std::time::Duration;

use hastack_it::vrrp::{self, Instance, Keepalived, Packet};
use hastack_it::NetLab;

const VIP: &str = "10.99.0.100/24";
const LONG: Duration = Duration::from_secs(30);

fn require_root() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "network-namespace tests need root (CI runs as root); run them with sudo"
    );
}

/// lb1, lb2 and a third host, `rogue` unless named.
fn lab() -> NetLab {
    lab_with("rogue")
}

fn lab_with(third: &str) -> NetLab {
    NetLab::new(&[
        ("lb1", "10.99.0.21/24"),
        ("lb2", "10.99.0.22/24"),
        (third, "10.99.0.30/24"),
    ])
    .unwrap()
}

/// keepalived with `inst` on lb1 and at priority 100 on lb2.
fn master_and_backup(lab: &NetLab, inst: &Instance) -> (Keepalived, Keepalived) {
    let k1 = Keepalived::start(lab, "lb1", &inst.keepalived_conf("lb1")).unwrap();
    let backup = inst.clone().priority(100).keepalived_conf("lb2");
    (k1, Keepalived::start(lab, "lb2", &backup).unwrap())
}

fn fixture(inst: &Instance) {
    require_root();
    let lab = lab();
    let vip = inst.vip_addr();
    let (mut k1, _k2) = master_and_backup(&lab, inst);
    vrrp::wait_holders(&lab, vip, &["lb1"], LONG).unwrap_or_else(|e| panic!("{e}\n{}", k1.log()));
    vrrp::assert_sole_holder(&lab, vip, "lb1", Duration::from_secs(2)).unwrap();

    // A correct advert outranking lb1, again and again: lb1 yields to it,
    // and lb2 (outranked too) stays backup, so nobody holds the VIP.
    let rogue: Ipv4Addr = lab.host("rogue").addr;
    let good = Packet::multicast(&inst.advert(254), rogue);
    let every = inst.advert_int / 2;
    let flood = |p: Packet| {
        let rounds = (Duration::from_secs(2).as_millis() / every.as_millis()) as usize;
        vrrp::send_packets(&lab, "rogue", &[p], rounds, every).unwrap();
    };
    // Broken ones first: lb1 keeps the VIP through each flood.
    for (what, bad) in [
        ("TTL 254", good.clone().ttl(254)),
        ("a bad checksum", good.clone().bad_checksum()),
        ("truncated", good.clone().truncated(6)),
    ] {
        flood(bad);
        assert_eq!(
            vrrp::vip_holders(&lab, vip).unwrap(),
            ["lb1"],
            "keepalived obeyed an advert with {what}\n{}",
            k1.log()
        );
    }
    std::thread::scope(|s| {
        s.spawn(|| flood(good.clone()));
        vrrp::wait_holders(&lab, vip, &[], LONG)
            .unwrap_or_else(|e| panic!("keepalived ignored a correct advert: {e}\n{}", k1.log()));
    });
    // The rogue silent: lb1 takes the VIP back.
    vrrp::wait_holders(&lab, vip, &["lb1"], LONG).unwrap();

    // Killed outright, lb1 keeps its address; lb2 takes it too.
    k1.kill9();
    vrrp::wait_holders(&lab, vip, &["lb1", "lb2"], LONG).unwrap();
}

#[test]
fn keepalived_v2_pass_elects_obeys_crafted_adverts_and_ignores_broken_ones() {
    fixture(&Instance::v2(51, 150, VIP));
}

#[test]
fn keepalived_v3_elects_obeys_crafted_adverts_and_ignores_broken_ones() {
    fixture(&Instance::v3(52, 150, VIP));
}

#[test]
fn keepalived_yields_to_a_crafted_unicast_advert_from_its_peer() {
    require_root();
    let lab = lab();
    let (a, b) = (lab.host("lb1").addr, lab.host("lb2").addr);
    let inst = Instance::v3(53, 150, VIP).unicast(a, &[b]);
    let k1 = Keepalived::start(&lab, "lb1", &inst.keepalived_conf("lb1")).unwrap();
    let vip = inst.vip_addr();
    vrrp::wait_holders(&lab, vip, &["lb1"], LONG).unwrap_or_else(|e| panic!("{e}\n{}", k1.log()));
    // From the peer's own address (lb2 runs no keepalived here).
    let p = Packet::advert(&inst.advert(254), b, a);
    std::thread::scope(|s| {
        s.spawn(|| vrrp::send_packets(&lab, "lb2", &[p], 80, Duration::from_millis(50)).unwrap());
        vrrp::wait_holders(&lab, vip, &[], LONG)
            .unwrap_or_else(|e| panic!("keepalived ignored its unicast peer: {e}\n{}", k1.log()));
    });
}

#[test]
fn keepalived_ties_go_to_the_higher_address_once_a_partition_heals() {
    require_root();
    let mut lab = lab();
    let inst = Instance::v3(54, 100, VIP);
    lab.partition("lb1", "lb2").unwrap();
    let k1 = Keepalived::start(&lab, "lb1", &inst.keepalived_conf("lb1")).unwrap();
    let k2 = Keepalived::start(&lab, "lb2", &inst.keepalived_conf("lb2")).unwrap();
    let vip = inst.vip_addr();
    vrrp::wait_holders(&lab, vip, &["lb1", "lb2"], LONG)
        .unwrap_or_else(|e| panic!("{e}\n{}\n{}", k1.log(), k2.log()));
    lab.heal("lb1", "lb2").unwrap();
    vrrp::wait_holders(&lab, vip, &["lb2"], LONG)
        .unwrap_or_else(|e| panic!("{e}\n{}\n{}", k1.log(), k2.log()));
}

#[test]
fn keepalived_moves_a_client_to_the_new_master_by_gratuitous_arp() {
    require_root();
    let lab = lab_with("client");
    vrrp::keep_neighbours(&lab, "client").unwrap();
    let _s1 = vrrp::echo_server(&lab, "lb1", 3306).unwrap();
    let _s2 = vrrp::echo_server(&lab, "lb2", 3306).unwrap();
    let inst = Instance::v3(55, 150, VIP);
    let vip = inst.vip_addr();
    let to = std::net::SocketAddr::new(vip.into(), 3306);
    let (mut k1, _k2) = master_and_backup(&lab, &inst);
    vrrp::wait_holders(&lab, vip, &["lb1"], LONG).unwrap();
    assert_eq!(vrrp::who_from_host(&lab, "client", to).unwrap(), "lb1");
    vrrp::wait_neighbour(&lab, "client", vip, "lb1").unwrap();
    k1.stop().unwrap();
    vrrp::wait_holders(&lab, vip, &["lb2"], LONG).unwrap();
    vrrp::wait_neighbour(&lab, "client", vip, "lb2").unwrap();
    assert_eq!(vrrp::who_from_host(&lab, "client", to).unwrap(), "lb2");
}
