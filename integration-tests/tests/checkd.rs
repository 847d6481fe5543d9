//! checkd against real peers: MariaDB probed over the MySQL protocol, HAProxy
//! 2.6 checking it with `option httpchk` on a separate check port, and
//! xinetd running the same classic status script as checkd's exec service.

#![allow(clippy::unwrap_used)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use hastack_it::ports::free_port;
use hastack_it::process::{command_dying_with_parent, kill_and_reap};
use hastack_it::{wait_for, DaemonProcess, MariaDbCluster};

fn local(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// checkd with `services` (YAML under `services:`).
fn checkd(services: &str) -> DaemonProcess {
    let admin = local(free_port());
    let config =
        format!("admin_http:\n  listen: {admin}\nshutdown_grace: 1s\nservices:\n{services}");
    DaemonProcess::start("checkd", &config, admin).unwrap()
}

/// A raw HTTP exchange: what the server sent until it closed.
fn exchange(addr: SocketAddr, request: &[u8]) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(request).unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

fn get(addr: SocketAddr) -> String {
    exchange(addr, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
}

fn mysql_service(port: u16, db: SocketAddr, extra: &str) -> String {
    format!(
        "  mycat_status:\n    type: http_check\n    bind: 127.0.0.1:{port}\n{extra}    probe:\n      mysql: {{address: {db}, user: app, password: app, query: SELECT 1, timeout: 1s}}\n      cache: 0s\n"
    )
}

#[test]
fn a_mysql_probe_answers_200_or_503_with_what_and_why() {
    let mut cluster = MariaDbCluster::start(1).unwrap();
    let port = free_port();
    let d = checkd(&mysql_service(port, cluster.addr(0), ""));
    let up = get(local(port));
    assert!(up.starts_with("HTTP/1.1 200 OK\r\n"), "{up}");
    assert!(
        up.contains("content-length:") || up.contains("Content-Length:"),
        "{up}"
    );
    assert!(up.contains("UP mycat_status: mysql"), "{up}");
    let json = exchange(
        local(port),
        b"GET /status HTTP/1.1\r\nHost: x\r\nAccept: application/json\r\n\r\n",
    );
    assert!(json.contains("\"up\":true"), "{json}");
    // HEAD and HAProxy's default OPTIONS work too; POST does not.
    assert!(exchange(local(port), b"OPTIONS / HTTP/1.0\r\n\r\n").starts_with("HTTP/1.0 200"));
    assert!(exchange(
        local(port),
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n"
    )
    .contains(" 405 "));

    cluster.stop(0).unwrap();
    let down = get(local(port));
    assert!(
        down.starts_with("HTTP/1.1 503 Service Unavailable\r\n"),
        "{down}"
    );
    assert!(
        down.contains("DOWN mycat_status") && down.contains("refused"),
        "{down}"
    );
    cluster.start_node(0).unwrap();
    assert!(get(local(port)).starts_with("HTTP/1.1 200"));
    let metrics = d.metrics().unwrap();
    assert!(
        metrics.contains("hastack_checkd_checks_total{service=\"mycat_status\",result=\"down\"} 1"),
        "{metrics}"
    );
}

#[test]
fn checks_share_one_probe_and_a_maintenance_file_drains() {
    let cluster = MariaDbCluster::start(1).unwrap();
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    let maintenance = dir.path().join("maintenance");
    let service = mysql_service(port, cluster.addr(0), "").replace(
        "cache: 0s",
        &format!(
            "cache: 10s\n      maintenance_file: {}",
            maintenance.display()
        ),
    );
    let d = checkd(&service);
    let threads: Vec<_> = (0..20)
        .map(|_| std::thread::spawn(move || get(local(port))))
        .collect();
    for t in threads {
        assert!(t.join().unwrap().starts_with("HTTP/1.1 200"));
    }
    let metrics = d.metrics().unwrap();
    assert!(
        metrics.contains("hastack_checkd_probes_total{service=\"mycat_status\",result=\"up\"} 1"),
        "20 checks within the cache time must be one probe:\n{metrics}"
    );
    std::fs::write(&maintenance, "").unwrap();
    let drained = get(local(port));
    assert!(
        drained.starts_with("HTTP/1.1 503") && drained.contains("maintenance"),
        "{drained}"
    );
    std::fs::remove_file(&maintenance).unwrap();
    assert!(get(local(port)).starts_with("HTTP/1.1 200"));
}

#[test]
fn a_hanging_probe_times_out_without_holding_up_other_services() {
    let (slow, fast) = (free_port(), free_port());
    let d = checkd(&format!(
        "  slow:\n    type: http_check\n    bind: 127.0.0.1:{slow}\n    probe:\n      exec: {{command: /bin/sleep, args: ['30'], timeout: 500ms}}\n      cache: 0s\n  \
         fast:\n    type: http_check\n    bind: 127.0.0.1:{fast}\n    probe:\n      exec: {{command: /bin/true, timeout: 1s}}\n"
    ));
    let t = std::thread::spawn(move || {
        let started = Instant::now();
        (
            get(local(slow)),
            Instant::now().saturating_duration_since(started),
        )
    });
    std::thread::sleep(Duration::from_millis(50));
    let started = Instant::now();
    assert!(get(local(fast)).starts_with("HTTP/1.1 200"));
    assert!(Instant::now().saturating_duration_since(started) < Duration::from_millis(400));
    let (answer, took) = t.join().unwrap();
    assert!(
        answer.starts_with("HTTP/1.1 503") && answer.contains("no answer within 500ms"),
        "{answer}"
    );
    assert!(took < Duration::from_secs(5), "{took:?}");
    drop(d);
}

#[test]
fn bad_http_gets_400_and_a_huge_head_is_cut_off() {
    let port = free_port();
    let _d = checkd(&format!(
        "  s:\n    type: http_check\n    bind: 127.0.0.1:{port}\n    probe:\n      exec: {{command: /bin/true}}\n"
    ));
    let bad = exchange(local(port), b"THIS IS NOT HTTP\r\n\r\n");
    assert!(bad.starts_with("HTTP/1.1 400"), "{bad:?}");
    // 1 MiB of garbage without a line end: refused once the head buffer fills.
    let mut s = TcpStream::connect(local(port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let garbage = vec![b'x'; 1 << 20];
    let _ = s.write_all(&garbage);
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    let out = String::from_utf8_lossy(&out);
    assert!(out.is_empty() || out.starts_with("HTTP/1.1 4"), "{out}");
    // Still serving.
    assert!(get(local(port)).starts_with("HTTP/1.1 200"));
}

#[test]
fn only_from_and_no_access_refuse_by_closing_including_ipv4_mapped_peers() {
    let (v4, dual) = (free_port(), free_port());
    let d = checkd(&format!(
        "  v4:\n    type: http_check\n    bind: 127.0.0.1:{v4}\n    only_from: [127.0.0.2]\n    probe: {{exec: {{command: /bin/true}}}}\n  \
         dual:\n    type: http_check\n    bind: '[::]:{dual}'\n    only_from: [127.0.0.0/8]\n    no_access: [127.0.0.3]\n    probe: {{exec: {{command: /bin/true}}}}\n"
    ));
    // From 127.0.0.1: not in only_from, closed without a byte.
    assert_eq!(get(local(v4)), "");
    // From 127.0.0.2: allowed.
    let from2 = read_answer(socket_from("127.0.0.2", local(v4)));
    assert!(from2.starts_with("HTTP/1.1 200"), "{from2}");
    // A dual-stack listener sees ::ffff:127.0.0.x: matched as IPv4.
    assert!(get(local(dual)).starts_with("HTTP/1.1 200"));
    assert_eq!(read_answer(socket_from("127.0.0.3", local(dual))), "");
    let metrics = d.metrics().unwrap();
    assert!(
        metrics.contains("hastack_checkd_refused_total{service=\"v4\",result=\"only_from\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("hastack_checkd_refused_total{service=\"dual\",result=\"no_access\"} 1"),
        "{metrics}"
    );
    assert!(d.log().contains("refused"), "{}", d.log());
}

/// A TCP connection to `to` from source address `from`.
fn socket_from(from: &str, to: SocketAddr) -> TcpStream {
    use socket2::{Domain, Socket, Type};
    let s = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    let src: SocketAddr = format!("{from}:0").parse().unwrap();
    s.bind(&src.into()).unwrap();
    s.connect(&to.into()).unwrap();
    s.into()
}

fn read_answer(mut s: TcpStream) -> String {
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let _ = s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

#[test]
fn per_source_instances_and_cps_engage_and_release() {
    let (held, rated, one) = (free_port(), free_port(), free_port());
    let d = checkd(&format!(
        "  one:\n    type: exec\n    bind: 127.0.0.1:{one}\n    server: /bin/sleep\n    server_args: ['2']\n    instances: 1\n  \
         held:\n    type: exec\n    bind: 127.0.0.1:{held}\n    server: /bin/sleep\n    server_args: ['2']\n    timeout: 5s\n    per_source: 1\n  \
         rated:\n    type: http_check\n    bind: 127.0.0.1:{rated}\n    cps: {{rate: 2, pause: 2s}}\n    probe: {{exec: {{command: /bin/true}}}}\n"
    ));
    let first = TcpStream::connect(local(held)).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let mut second = TcpStream::connect(local(held)).unwrap();
    second
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut buf = [0u8; 1];
    assert_eq!(
        second.read(&mut buf).unwrap_or(0),
        0,
        "a second connection from one source is closed"
    );
    drop(first);
    // The first one's program ends after 2 s; then a new one is admitted.
    let admitted = wait_for(Duration::from_secs(10), Duration::from_millis(200), || {
        let status = d.status().ok()?;
        (status["state"]["services"]["held"]["active"] == 0).then_some(())
    });
    assert!(admitted.is_some());
    // instances: one connection at a time, whatever its source.
    let busy = TcpStream::connect(local(one)).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let mut other = socket_from("127.0.0.2", local(one));
    other
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    assert_eq!(
        other.read(&mut buf).unwrap_or(0),
        0,
        "over instances: closed"
    );
    drop(busy);
    let metrics = d.metrics().unwrap();
    assert!(
        metrics.contains("hastack_checkd_refused_total{service=\"one\",result=\"instances\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("hastack_checkd_refused_total{service=\"held\",result=\"per_source\"} 1"),
        "{metrics}"
    );
    // cps: the third connection within a second pauses the service.
    assert!(get(local(rated)).starts_with("HTTP/1.1 200"));
    assert!(get(local(rated)).starts_with("HTTP/1.1 200"));
    assert_eq!(get(local(rated)), "");
    assert_eq!(get(local(rated)), "", "paused");
    std::thread::sleep(Duration::from_millis(2200));
    assert!(
        get(local(rated)).starts_with("HTTP/1.1 200"),
        "resumed after the pause"
    );
}

#[test]
fn a_named_checker_is_answered_while_a_flood_has_paused_the_service_for_others() {
    let port = free_port();
    // A pause long enough to outlast the test: whatever is refused below
    // is refused by the pause, not by a race with its end.
    let d = checkd(&format!(
        "  status:\n    type: http_check\n    bind: 127.0.0.1:{port}\n    only_from: [127.0.0.0/8]\n    checkers: [127.0.0.5]\n    cps: {{rate: 2, pause: 60s}}\n    probe: {{exec: {{command: /bin/true}}}}\n"
    ));
    // One noisy peer (127.0.0.1) connects until cps switches the service off.
    let flood = (0..200).position(|_| get(local(port)).is_empty());
    assert!(flood.is_some(), "200 connections did not trip cps rate 2");
    // Every other peer is closed unread for the pause...
    assert_eq!(read_answer(socket_from("127.0.0.2", local(port))), "");
    // ...but the named checker is answered, check after check.
    for k in 0..5 {
        let a = read_answer(socket_from("127.0.0.5", local(port)));
        assert!(a.starts_with("HTTP/1.1 200"), "check {k}: {a:?}");
    }
    // Its checks neither ended the pause nor count towards it.
    assert_eq!(read_answer(socket_from("127.0.0.2", local(port))), "");
    let status = d.status().unwrap();
    let s = &status["state"]["services"]["status"];
    assert_eq!(s["paused_by_cps"], true, "{status}");
    assert_eq!(
        s["checkers"],
        serde_json::json!(["127.0.0.5/32"]),
        "{status}"
    );
    let metrics = d.metrics().unwrap();
    assert!(
        metrics
            .contains("hastack_checkd_checker_exempt_total{service=\"status\",result=\"cps\"} 5"),
        "{metrics}"
    );
}

#[test]
fn the_classic_status_script_answers_the_same_under_checkd_and_xinetd() {
    let mut cluster = MariaDbCluster::start(1).unwrap();
    let dir = tempfile::tempdir().unwrap();
    // Both run the script as nobody.
    std::fs::set_permissions(
        dir.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let script = dir.path().join("mycat_status");
    // The script reads the port from its own text: xinetd passes no env.
    std::fs::write(
        &script,
        hastack_it::scripts::mycat_status(cluster.addr(0).port()),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let (ours, theirs) = (free_port(), free_port());
    let _d = checkd(&format!(
        "  mycat_status:\n    type: exec\n    bind: 127.0.0.1:{ours}\n    server: {}\n    user: nobody\n    timeout: 10s\n",
        script.display()
    ));
    let conf = dir.path().join("xinetd.conf");
    std::fs::write(
        &conf,
        format!(
            "defaults\n{{\n  instances = 50\n}}\nservice mycat_status\n{{\n  type = UNLISTED\n  flags = REUSE\n  socket_type = stream\n  protocol = tcp\n  port = {theirs}\n  bind = 127.0.0.1\n  wait = no\n  user = nobody\n  server = {}\n  log_on_failure += USERID\n  disable = no\n  only_from = 0.0.0.0/0\n  per_source = UNLIMITED\n}}\n",
            script.display()
        ),
    )
    .unwrap();
    let mut xinetd = command_dying_with_parent("/usr/sbin/xinetd")
        .args(["-dontfork", "-f"])
        .arg(&conf)
        .arg("-pidfile")
        .arg(dir.path().join("xinetd.pid"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let listening = wait_for(Duration::from_secs(10), Duration::from_millis(50), || {
        TcpStream::connect(local(theirs)).ok().map(|_| ())
    });
    assert!(listening.is_some(), "xinetd did not listen");
    std::thread::sleep(Duration::from_millis(300));
    let request = b"OPTIONS / HTTP/1.0\r\n\r\n";
    let (a, b) = (
        exchange(local(ours), request),
        exchange(local(theirs), request),
    );
    assert!(a.starts_with("HTTP/1.1 200 OK"), "{a:?}");
    assert_eq!(a, b, "checkd and xinetd answer differently");
    cluster.stop(0).unwrap();
    let (a, b) = (
        exchange(local(ours), request),
        exchange(local(theirs), request),
    );
    assert!(a.starts_with("HTTP/1.1 503"), "{a:?}");
    assert_eq!(a, b);
    kill_and_reap(&mut xinetd);
}

#[test]
fn haproxy_httpchk_through_checkd_follows_the_database() {
    let mut cluster = MariaDbCluster::start(1).unwrap();
    let check_port = free_port();
    let _d = checkd(&mysql_service(check_port, cluster.addr(0), ""));
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("haproxy.sock");
    let front = free_port();
    let cfg = dir.path().join("haproxy.cfg");
    std::fs::write(
        &cfg,
        format!(
            "global\n  stats socket {} level admin\n  maxconn 100\ndefaults\n  mode tcp\n  timeout connect 1s\n  timeout client 10s\n  timeout server 10s\n\
             listen mysql\n  bind 127.0.0.1:{front}\n  option httpchk OPTIONS * HTTP/1.1\\r\\nHost:\\ checkd\n  server db1 {} check port {check_port} inter 200ms rise 2 fall 2\n",
            sock.display(),
            cluster.addr(0)
        ),
    )
    .unwrap();
    let mut haproxy = command_dying_with_parent("/usr/sbin/haproxy")
        .args(["-db", "-f"])
        .arg(&cfg)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let state = || -> Option<String> {
        let mut s = std::os::unix::net::UnixStream::connect(&sock).ok()?;
        s.write_all(b"show stat\n").ok()?;
        let mut out = String::new();
        s.read_to_string(&mut out).ok()?;
        out.lines()
            .find(|l| l.starts_with("mysql,db1,"))
            .and_then(|l| l.split(',').nth(17).map(str::to_owned))
    };
    let up = wait_for(Duration::from_secs(10), Duration::from_millis(100), || {
        state().filter(|s| s == "UP")
    });
    assert!(up.is_some(), "HAProxy never saw db1 UP: {:?}", state());
    cluster.stop(0).unwrap();
    let down = wait_for(Duration::from_secs(10), Duration::from_millis(100), || {
        state().filter(|s| s == "DOWN")
    });
    assert!(
        down.is_some(),
        "HAProxy did not mark db1 DOWN: {:?}",
        state()
    );
    cluster.start_node(0).unwrap();
    let back = wait_for(Duration::from_secs(15), Duration::from_millis(100), || {
        state().filter(|s| s == "UP")
    });
    assert!(
        back.is_some(),
        "HAProxy did not mark db1 UP again: {:?}",
        state()
    );
    kill_and_reap(&mut haproxy);
}
