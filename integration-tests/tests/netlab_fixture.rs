//! The network-namespace fixture: hosts that reach each other, links that
//! go down, partitions that cut traffic both ways and heal.

// Helpers outside #[test] fns unwrap too: a failed step is a failed test.
#![allow(clippy::unwrap_used)]

use hastack_it::NetLab;

fn require_root() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "network-namespace tests need root (CI runs as root); run them with sudo"
    );
}

#[test]
fn two_hosts_ping_each_other_and_a_partition_stops_that() {
    require_root();
    let mut lab = NetLab::new(&[
        ("a", "10.99.0.1/24"),
        ("b", "10.99.0.2/24"),
        ("c", "10.99.0.3/24"),
    ])
    .unwrap();
    assert!(lab.ping("a", "b").unwrap());
    assert!(lab.ping("b", "a").unwrap());

    lab.partition("a", "b").unwrap();
    assert!(
        !lab.ping("a", "b").unwrap(),
        "a reached b across a partition"
    );
    assert!(
        !lab.ping("b", "a").unwrap(),
        "b reached a across a partition"
    );
    assert!(
        lab.ping("a", "c").unwrap(),
        "the partition cut a third host off"
    );
    assert!(
        lab.ping("c", "b").unwrap(),
        "the partition cut a third host off"
    );

    lab.heal("a", "b").unwrap();
    assert!(lab.ping("a", "b").unwrap(), "heal did not restore traffic");
}

#[test]
fn a_link_taken_down_cuts_the_host_off_until_it_comes_back() {
    require_root();
    let lab = NetLab::new(&[("a", "10.99.0.1/24"), ("b", "10.99.0.2/24")]).unwrap();
    lab.link_down("b").unwrap();
    assert!(!lab.ping("a", "b").unwrap());
    lab.link_up("b").unwrap();
    // The bridge port needs a moment to forward again after the link returns.
    let back = hastack_it::wait_for(
        std::time::Duration::from_secs(10),
        std::time::Duration::from_millis(100),
        || lab.ping("a", "b").unwrap().then_some(()),
    );
    assert!(back.is_some(), "b unreachable after its link came back");
}

#[test]
fn two_labs_with_the_same_addresses_do_not_see_each_other() {
    require_root();
    let lab1 = NetLab::new(&[("a", "10.99.0.1/24"), ("b", "10.99.0.2/24")]).unwrap();
    let lab2 = NetLab::new(&[("a", "10.99.0.1/24")]).unwrap();
    let out = lab2
        .run("a", "ip", &["-br", "addr", "show", "eth0"])
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("10.99.0.1/24"));
    assert!(lab1.ping("a", "b").unwrap());
    assert!(!lab2
        .run("a", "ping", &["-c1", "-W1", "-q", "10.99.0.2"])
        .unwrap()
        .status
        .success());
}

#[test]
fn namespaces_are_removed_on_drop() {
    require_root();
    let names: Vec<String> = {
        let lab = NetLab::new(&[("a", "10.99.0.1/24")]).unwrap();
        lab.hosts().iter().map(|h| h.netns.clone()).collect()
    };
    let list = std::process::Command::new("ip")
        .args(["netns", "list"])
        .output()
        .unwrap();
    let list = String::from_utf8_lossy(&list.stdout);
    for ns in names {
        assert!(!list.contains(&ns), "{ns} left behind");
    }
}
