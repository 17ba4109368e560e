//! Embedded DNS: names, aliases and links resolve on user-defined networks; other names are
//! forwarded upstream (a DNS server in an "outside" namespace this test makes).

use std::time::Duration;
use vswitch_tests::*;

/// A tiny authoritative server: `outside.test` → 10.9.9.9, NXDOMAIN for the rest.
const UPSTREAM: &str = r#"
import socket, struct, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind((sys.argv[1], 53))
while True:
    q, addr = s.recvfrom(512)
    if len(q) < 12: continue
    qid, flags, qd = struct.unpack("!HHH", q[:6])
    i, labels = 12, []
    while i < len(q) and q[i]:
        labels.append(q[i+1:i+1+q[i]].decode().lower()); i += 1 + q[i]
    question = q[12:i+5]
    qtype = struct.unpack("!H", q[i+1:i+3])[0]
    name = ".".join(labels)
    if name == "outside.test" and qtype == 1:
        ans = b"\xc0\x0c" + struct.pack("!HHIH", 1, 1, 60, 4) + socket.inet_aton("10.9.9.9")
        r = struct.pack("!HHHHHH", qid, 0x8180, 1, 1, 0, 0) + question + ans
    else:
        rc = 0 if name == "outside.test" else 3
        r = struct.pack("!HHHHHH", qid, 0x8180 | rc, 1, 0, 0, 0) + question
    s.sendto(r, addr)
"#;

fn getent(d: &Daemon, from: &str, db: &str, name: &str) -> Option<String> {
    let o = d.vswitch(&["exec", from, "--", "getent", db, name]);
    o.status.success().then(|| stdout(&o))
}

#[test]
fn names_aliases_and_forwarding() {
    // Host namespace with a veth to an "outside" namespace running the upstream DNS server.
    let host = Netns::new("dnh");
    let outside = Netns::new("dno");
    host.link_to(&outside, "up0", "10.98.0.1/24", "out0", "10.98.0.2/24");
    let _upstream = Bg::spawn(outside.cmd(&["python3", "-c", UPSTREAM, "10.98.0.2"]));
    assert!(wait_until(Duration::from_secs(10), || {
        !stdout(&outside.exec(&["ss", "-lunH", "sport = :53"])).is_empty()
    }));
    let d = Daemon::start_in(host, &["--dns", "10.98.0.2"]);

    ok(d.vswitch(&["network", "create", "mynetwork"]));
    ok(d.vswitch(&["network", "create", "other"]));
    d.run_sandbox("web1", &["--net", "mynetwork"]);
    d.run_sandbox("web2", &["--net", "mynetwork"]);
    d.run_sandbox("web3", &["--net", "other"]);
    d.run_sandbox("plain", &[]);

    // resolv.conf names the embedded server on user networks, not on the default bridge.
    let rc = ok(d.vswitch(&["exec", "web1", "--", "cat", "/etc/resolv.conf"]));
    assert!(rc.contains("nameserver 127.0.0.11"), "{rc}");
    let rc = ok(d.vswitch(&["exec", "plain", "--", "cat", "/etc/resolv.conf"]));
    assert!(!rc.contains("127.0.0.11"), "{rc}");

    // web1 finds web2 by name, and HTTP by name works.
    let web2 = getent(&d, "web1", "ahostsv4", "web2").expect("web2 resolves");
    assert!(web2.starts_with("172.18.0.3"), "{web2}");
    let dir = d.dir.0.join("www");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("index.html"), "by name\n").unwrap();
    let mut srv = d.in_sandbox_cmd("web2", &["python3", "-m", "http.server", "8080"]);
    srv.current_dir(&dir);
    let _srv = Bg::spawn(srv);
    assert!(wait_until(Duration::from_secs(10), || {
        !stdout(&d.in_sandbox("web2", &["ss", "-ltnH", "sport = :8080"])).is_empty()
    }));
    let page = ok(d.vswitch(&[
        "exec",
        "web1",
        "--",
        "curl",
        "-s",
        "--max-time",
        "5",
        "http://web2:8080/",
    ]));
    assert_eq!(page, "by name\n");

    // Another network cannot resolve web2.
    assert_eq!(getent(&d, "web3", "ahostsv4", "web2"), None);

    // An alias added on connect resolves; two sandboxes sharing an alias give two records.
    ok(d.vswitch(&["network", "connect", "--alias", "foo", "mynetwork", "web3"]));
    d.run_sandbox("web4", &["--net", "mynetwork", "--network-alias", "foo"]);
    let foo = getent(&d, "web1", "ahostsv4", "foo").expect("foo resolves");
    let mut addrs: Vec<&str> = foo
        .lines()
        .filter(|l| l.contains("STREAM"))
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    addrs.sort();
    assert_eq!(addrs, ["172.18.0.4", "172.18.0.5"], "{foo}");

    // Names outside the networks are forwarded upstream.
    let out = getent(&d, "web1", "ahostsv4", "outside.test").expect("forwarded");
    assert!(out.starts_with("10.9.9.9"), "{out}");

    // After rm, the name is gone within a second.
    ok(d.vswitch(&["rm", "-f", "web2"]));
    assert!(wait_until(Duration::from_secs(1), || getent(
        &d, "web1", "ahostsv4", "web2"
    )
    .is_none()));
}
