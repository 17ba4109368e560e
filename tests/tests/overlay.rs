//! Multi-host overlay networks, the seed's topology: three "host" namespaces each running
//! vswitchd on a routed underlay in two subnets (host2 in 10.10.10.0/24; host3 and host4 in
//! 192.168.50.0/24 behind a Linux bridge in the router namespace), an etcd server in its own
//! namespace (10.20.0.0/24) and an "outside" namespace (10.30.0.0/24) behind the router.
//! Everything lives in namespaces this test makes.

use std::os::fd::AsRawFd;
use std::time::Duration;
use vswitch_tests::*;

const ETCD_IP: &str = "10.20.0.2";
const OUT_IP: &str = "10.30.0.2";
const HOST2: &str = "10.10.10.2";
const HOST3: &str = "192.168.50.3";
const HOST4: &str = "192.168.50.4";
/// Short lease so a dead host's endpoints vanish quickly.
const TTL_SECS: u64 = 4;

struct World {
    h2: Daemon,
    h3: Daemon,
    h4: Daemon,
    outside: Netns,
    _etcd: Etcd,
    _etcd_ns: Netns,
    _router: Netns,
    log: std::path::PathBuf,
    _server: Bg,
}

fn host(
    router: &Netns,
    tag: &str,
    ip: &str,
    gw: &str,
    router_if: &str,
    lan: Option<&str>,
) -> Netns {
    let h = Netns::new(tag);
    router.link_to(
        &h,
        router_if,
        &format!("{gw}/24"),
        "eth0",
        &format!("{ip}/24"),
    );
    if let Some(br) = lan {
        // host3/host4 share one L2 segment: put the router ends on its bridge.
        router.exec_ok(&["ip", "addr", "flush", "dev", router_if]);
        router.exec_ok(&["ip", "link", "set", router_if, "master", br]);
    }
    h.exec_ok(&["ip", "route", "add", "default", "via", gw]);
    h
}

fn world(tag: &str) -> World {
    let router = Netns::new(&format!("{tag}r"));
    router.exec_ok(&["sysctl", "-qw", "net.ipv4.ip_forward=1"]);
    router.exec_ok(&["ip", "link", "add", "br50", "type", "bridge"]);
    router.exec_ok(&["ip", "addr", "add", "192.168.50.1/24", "dev", "br50"]);
    router.exec_ok(&["ip", "link", "set", "br50", "up"]);
    let etcd_ns = host(
        &router,
        &format!("{tag}e"),
        ETCD_IP,
        "10.20.0.1",
        "r-etcd",
        None,
    );
    let outside = host(
        &router,
        &format!("{tag}o"),
        OUT_IP,
        "10.30.0.1",
        "r-out",
        None,
    );
    let n2 = host(
        &router,
        &format!("{tag}2"),
        HOST2,
        "10.10.10.1",
        "r-h2",
        None,
    );
    let n3 = host(
        &router,
        &format!("{tag}3"),
        HOST3,
        "192.168.50.1",
        "r-h3",
        Some("br50"),
    );
    let n4 = host(
        &router,
        &format!("{tag}4"),
        HOST4,
        "192.168.50.1",
        "r-h4",
        Some("br50"),
    );
    let etcd = Etcd::start(&etcd_ns, ETCD_IP);
    let store = etcd.store_url();
    let ttl = TTL_SECS.to_string();
    let start = |ns: Netns, ip: &str| {
        Daemon::start_in(
            ns,
            &[
                "--cluster-store",
                &store,
                "--cluster-advertise",
                ip,
                "--cluster-store-ttl",
                &ttl,
            ],
        )
    };
    let h2 = start(n2, HOST2);
    let h3 = start(n3, HOST3);
    let h4 = start(n4, HOST4);
    let log = h2.dir.0.join("outside-clients.log");
    let server = outside_servers(&outside, &log);
    World {
        h2,
        h3,
        h4,
        outside,
        _etcd: etcd,
        _etcd_ns: etcd_ns,
        _router: router,
        log,
        _server: server,
    }
}

fn ipv4(d: &Daemon, name: &str) -> String {
    let v = d.ipv4_of(name, "eth0");
    v.first()
        .unwrap_or_else(|| panic!("{name} has no eth0 address; log:\n{}", d.log()))
        .split('/')
        .next()
        .unwrap()
        .to_string()
}

fn curl_in(d: &Daemon, from: &str, url: &str) -> Option<String> {
    let o = d.in_sandbox(from, &["curl", "-s", "--max-time", "5", url]);
    o.status.success().then(|| stdout(&o))
}

fn has_network(d: &Daemon, name: &str) -> bool {
    stdout(&d.vswitch(&["network", "ls", "--format", "{{.Name}}"]))
        .lines()
        .any(|l| l == name)
}

/// `getent hosts NAME` through the sandbox's embedded DNS (what `vswitch exec` sees).
fn resolves(d: &Daemon, from: &str, name: &str) -> Option<String> {
    let o = d.vswitch(&["exec", from, "--", "getent", "hosts", name]);
    o.status.success().then(|| {
        stdout(&o)
            .split_whitespace()
            .next()
            .unwrap_or("")
            .to_string()
    })
}

#[test]
fn overlay_across_three_hosts() {
    let w = world("ov");
    let (h2, h3, h4) = (&w.h2, &w.h3, &w.h4);

    // Created on one host, visible on all, global scope, VNI from 256.
    ok(h2.vswitch(&[
        "network",
        "create",
        "-d",
        "overlay",
        "--subnet",
        "172.16.16.0/24",
        "myoverlay",
    ]));
    for d in [h3, h4] {
        assert!(
            wait_until(Duration::from_secs(10), || has_network(d, "myoverlay")),
            "myoverlay did not reach a host; log:\n{}",
            d.log()
        );
    }
    // The unmodified docker CLI sees it as Docker shows a global overlay.
    let ls = ok(h3.docker(&[
        "network",
        "ls",
        "--filter",
        "driver=overlay",
        "--format",
        "{{.Name}} {{.Driver}} {{.Scope}}",
    ]));
    assert_eq!(ls.trim(), "myoverlay overlay global");
    let ins = h4.request("GET", "/networks/myoverlay", None).json();
    assert_eq!(ins["Driver"], "overlay");
    assert_eq!(ins["Scope"], "global");
    assert_eq!(ins["IPAM"]["Config"][0]["Subnet"], "172.16.16.0/24");
    assert_eq!(
        ins["Options"]["com.docker.network.driver.overlay.vxlanid_list"],
        "256"
    );

    // web1 on host2, web2 on host3, web2-2 on host4.
    h2.run_sandbox("web1", &["--net", "myoverlay"]);
    ok(h3.vswitch(&[
        "run",
        "-d",
        "--name",
        "web2",
        "--net",
        "myoverlay",
        "--",
        "python3",
        "-m",
        "http.server",
        "8080",
    ]));
    h4.run_sandbox("web2-2", &["--net", "myoverlay"]);
    let (ip1, ip2, ip22) = (ipv4(h2, "web1"), ipv4(h3, "web2"), ipv4(h4, "web2-2"));
    let mut ips = vec![ip1.clone(), ip2.clone(), ip22.clone()];
    ips.sort();
    ips.dedup();
    assert_eq!(ips.len(), 3, "cluster IPAM handed out one address twice");
    // Overlay MTU 1450, and eth1 on docker_gwbridge holds the default route.
    let links = h2.ip_json("web1", &["link", "show", "eth0"]);
    assert_eq!(links[0]["mtu"], 1450);
    assert_eq!(
        h2.default_route("web1").map(|(_, dev)| dev).as_deref(),
        Some("eth1")
    );

    assert!(
        wait_until(Duration::from_secs(10), || h2.pings("web1", &ip2)),
        "web1 cannot ping web2; log:\n{}",
        h2.log()
    );
    assert!(h2.pings("web1", &ip22));
    assert!(h3.pings("web2", &ip22));
    assert!(h4.pings("web2-2", &ip1));
    let got = wait_until(Duration::from_secs(10), || {
        curl_in(h2, "web1", &format!("http://{ip2}:8080/")).is_some()
    });
    assert!(got, "HTTP from web1 to web2 failed");
    // ARP for web2 was answered with web2's MAC.
    let web2_mac = h3.ip_json("web2", &["link", "show", "eth0"])[0]["address"]
        .as_str()
        .unwrap()
        .to_string();
    let neigh = stdout(&h2.in_sandbox("web1", &["ip", "neigh", "show", &ip2]));
    assert!(neigh.contains(&web2_mac), "ip neigh in web1: {neigh}");

    // Names across hosts (embedded DNS, issue #6).
    assert_eq!(resolves(h2, "web1", "web2").as_deref(), Some(ip2.as_str()));
    assert_eq!(
        resolves(h3, "web2", "web2-2").as_deref(),
        Some(ip22.as_str())
    );

    // A second web2 on the overlay: Docker's message, nothing left behind.
    let err = fails(h4.vswitch(&[
        "run",
        "-d",
        "--name",
        "web2",
        "--net",
        "myoverlay",
        "--",
        "sleep",
        "infinity",
    ]));
    assert!(
        err.contains("service endpoint with name web2 already exists"),
        "{err}"
    );
    assert!(
        !stdout(&h4.vswitch(&["ps"])).contains("web2 "),
        "half-made sandbox left"
    );

    // Egress through docker_gwbridge, masqueraded behind host2.
    let body = curl_in(h2, "web1", &format!("http://{OUT_IP}:8000/")).expect("egress");
    assert_eq!(body, "outside says hi\n");
    let log = std::fs::read_to_string(&w.log).unwrap();
    assert_eq!(log.lines().last(), Some(HOST2), "the outside saw {log:?}");
    // A published port of an overlay container answers on its host.
    ok(h2.vswitch(&[
        "run",
        "-d",
        "--name",
        "pub",
        "--net",
        "myoverlay",
        "-p",
        "8081:8080",
        "--",
        "python3",
        "-m",
        "http.server",
        "8080",
    ]));
    let reached = wait_until(Duration::from_secs(10), || {
        w.outside
            .exec(&[
                "curl",
                "-s",
                "--max-time",
                "3",
                &format!("http://{HOST2}:8081/"),
            ])
            .status
            .success()
    });
    assert!(reached, "published port on the overlay; log:\n{}", h2.log());

    // An internal overlay: eth0 only, no egress.
    ok(h2.vswitch(&[
        "network",
        "create",
        "-d",
        "overlay",
        "--internal",
        "myinternal",
    ]));
    assert!(wait_until(Duration::from_secs(10), || has_network(
        h3,
        "myinternal"
    )));
    h3.run_sandbox("sealed", &["--net", "myinternal"]);
    assert_eq!(h3.links_of("sealed"), vec!["lo", "eth0"]);
    assert_eq!(h3.default_route("sealed"), None);
    assert!(curl_in(h3, "sealed", &format!("http://{OUT_IP}:8000/")).is_none());

    // host4's daemon dies: its endpoints leave the others within the lease TTL, while web1
    // and web2 keep talking.
    let mut h4 = w.h4;
    h4.kill(libc::SIGKILL);
    let gone = wait_until(Duration::from_secs(TTL_SECS + 6), || {
        assert!(
            h2.pings("web1", &ip2),
            "web1 lost web2 while host4 was down"
        );
        resolves(h2, "web1", "web2-2").is_none()
    });
    assert!(gone, "host4's endpoint outlived its lease");
    // Back up: its container is reachable again.
    h4.start_again();
    let back = wait_until(Duration::from_secs(20), || h2.pings("web1", &ip22));
    assert!(
        back,
        "web2-2 not reachable after host4 restarted; log:\n{}",
        h4.log()
    );
    assert_eq!(
        resolves(h2, "web1", "web2-2").as_deref(),
        Some(ip22.as_str())
    );

    // Removal is refused while endpoints exist anywhere.
    let err = fails(h3.vswitch(&["network", "rm", "myoverlay"]));
    assert!(err.contains("has active endpoints"), "{err}");
}

#[test]
fn overlay_needs_a_cluster_store() {
    let d = Daemon::start("ovn");
    let err = fails(d.vswitch(&["network", "create", "-d", "overlay", "o1"]));
    assert!(err.contains("cluster store"), "{err}");
    assert!(!has_network(&d, "o1"));
}

/// An underlay: a bridge in a namespace of its own, hosts on its ports (a /24), etcd on one.
/// Dropped after the daemons using it (etcd, then its namespace, then the bridge).
struct Underlay {
    etcd: Etcd,
    _etcd_ns: Netns,
    lan: Netns,
}

impl Underlay {
    fn new(tag: &str, etcd_tag: &str, etcd_ip: &str) -> Underlay {
        let lan = Netns::new(tag);
        lan.exec_ok(&["ip", "link", "add", "br0", "type", "bridge"]);
        lan.exec_ok(&["ip", "link", "set", "br0", "up"]);
        let etcd_ns = Underlay::member(&lan, etcd_tag, etcd_ip, "p-etcd");
        let etcd = Etcd::start(&etcd_ns, etcd_ip);
        Underlay {
            etcd,
            _etcd_ns: etcd_ns,
            lan,
        }
    }

    /// A new namespace with `ip` on its eth0, plugged into the bridge as `port`.
    fn member(lan: &Netns, tag: &str, ip: &str, port: &str) -> Netns {
        let ns = Netns::new(tag);
        lan.link_to(&ns, port, "192.0.2.254/32", "eth0", &format!("{ip}/24"));
        lan.exec_ok(&["ip", "addr", "flush", "dev", port]);
        lan.exec_ok(&["ip", "link", "set", port, "master", "br0"]);
        ns
    }

    /// A vswitchd on a new member, with the underlay's etcd as its cluster store.
    fn daemon(&self, tag: &str, ip: &str, port: &str) -> Daemon {
        let store = self.etcd.store_url();
        Daemon::start_in(
            Underlay::member(&self.lan, tag, ip, port),
            &["--cluster-store", &store, "--cluster-advertise", ip],
        )
    }
}

/// Two hosts on one subnet with etcd beside them: the docker_gwbridge leg follows the
/// sandbox's other networks, removal propagates, a graceful restart keeps connectivity.
#[test]
fn gwbridge_follows_connect_and_removal_propagates() {
    let net = Underlay::new("ovlan", "ovle", "10.40.0.9");
    let start = |tag: &str, ip: &str, port: &str| net.daemon(tag, ip, port);
    let mut a = start("ovla", "10.40.0.1", "p-a");
    let b = start("ovlb", "10.40.0.2", "p-b");

    ok(a.vswitch(&["network", "create", "-d", "overlay", "ov"]));
    assert!(wait_until(Duration::from_secs(10), || has_network(
        &b, "ov"
    )));
    // Without --subnet the overlay takes a /24 from the global pools (10.0.0.0/8).
    let subnet = b.request("GET", "/networks/ov", None).json()["IPAM"]["Config"][0]["Subnet"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        subnet.starts_with("10.") && subnet.ends_with("/24"),
        "{subnet}"
    );

    a.run_sandbox("c1", &["--net", "ov"]);
    b.run_sandbox("c2", &["--net", "ov"]);
    let ip2 = ipv4(&b, "c2");
    assert!(wait_until(Duration::from_secs(10), || a.pings("c1", &ip2)));
    assert_eq!(a.links_of("c1"), vec!["lo", "eth0", "eth1"]);
    assert!(has_network(&a, "docker_gwbridge"));
    let gw = a.request("GET", "/networks/docker_gwbridge", None).json();
    assert_eq!(
        gw["Options"]["com.docker.network.bridge.enable_icc"],
        "false"
    );

    // Another network with a gateway: the gwbridge leg goes, the default route moves there.
    ok(a.vswitch(&["network", "create", "front"]));
    ok(a.vswitch(&["network", "connect", "front", "c1"]));
    assert!(!a.links_of("c1").contains(&"eth1".to_string()));
    let (_, dev) = a.default_route("c1").expect("default route");
    assert_eq!(dev, "eth2");
    // And comes back when that network leaves.
    ok(a.vswitch(&["network", "disconnect", "front", "c1"]));
    let links = a.links_of("c1");
    assert_eq!(links.len(), 3, "{links:?}");
    assert!(a.default_route("c1").is_some());

    // A graceful restart (lease revoked, records re-published) keeps the overlay working.
    a.restart();
    assert!(
        wait_until(Duration::from_secs(15), || a.pings("c1", &ip2)),
        "after restart; log:\n{}",
        a.log()
    );
    assert!(b.pings("c2", &ipv4(&a, "c1")));

    // Removal: refused while any host has endpoints, then seen everywhere.
    ok(b.vswitch(&["rm", "-f", "c2"]));
    let err = fails(b.vswitch(&["network", "rm", "ov"]));
    assert!(err.contains("has active endpoints"), "{err}");
    ok(a.vswitch(&["rm", "-f", "c1"]));
    ok(b.vswitch(&["network", "rm", "ov"]));
    assert!(wait_until(Duration::from_secs(10), || !has_network(
        &a, "ov"
    )));
    // Its name is free again cluster-wide.
    ok(a.vswitch(&["network", "create", "-d", "overlay", "ov"]));
    drop((a, b, net));
}

/// Server in c2: every connection gets `SERVE_BYTES` bytes, then EOF.
const SERVER: &str = r#"
import socket, threading
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", 5001))
s.listen(64)
def serve(c):
    with c:
        c.sendall(b"x" * 262144)
while True:
    c, _ = s.accept()
    threading.Thread(target=serve, args=(c,), daemon=True).start()
"#;

/// Client in c1: `FLOWS` concurrent connections to argv[1]:5001 (retried for 10 s while the
/// server comes up), each read to EOF; prints the bytes received per connection.
const CLIENT: &str = r#"
import socket, sys, threading, time
got = []
def one():
    deadline = time.time() + 10
    while True:
        try:
            c = socket.create_connection((sys.argv[1], 5001), timeout=5)
            break
        except OSError:
            if time.time() > deadline:
                raise
            time.sleep(0.1)
    n = 0
    with c:
        while True:
            b = c.recv(65536)
            if not b:
                break
            n += len(b)
    got.append(n)
ts = [threading.Thread(target=one) for _ in range(int(sys.argv[2]))]
for t in ts: t.start()
for t in ts: t.join()
print(" ".join(str(n) for n in got))
"#;

/// An AF_PACKET socket on `dev` in `ns` (both directions of every frame it carries).
fn packet_socket(ns: &Netns, dev: &str) -> std::os::fd::OwnedFd {
    use std::os::fd::FromRawFd;
    let path = std::path::PathBuf::from("/run/netns").join(&ns.name);
    let dev = std::ffi::CString::new(dev).unwrap();
    vswitch::netns::run_in(&path, move || {
        let all = (libc::ETH_P_ALL as u16).to_be();
        // SAFETY: plain socket calls on a fresh fd with structs of the right sizes.
        unsafe {
            let fd = libc::socket(
                libc::AF_PACKET,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                all.into(),
            );
            assert!(
                fd >= 0,
                "AF_PACKET socket: {}",
                std::io::Error::last_os_error()
            );
            let fd = std::os::fd::OwnedFd::from_raw_fd(fd);
            let mut sll: libc::sockaddr_ll = std::mem::zeroed();
            sll.sll_family = libc::AF_PACKET as u16;
            sll.sll_protocol = all;
            sll.sll_ifindex = libc::if_nametoindex(dev.as_ptr()) as i32;
            assert!(sll.sll_ifindex > 0, "no such device");
            let rc = libc::bind(
                fd.as_raw_fd(),
                (&sll as *const libc::sockaddr_ll).cast(),
                std::mem::size_of::<libc::sockaddr_ll>() as u32,
            );
            assert_eq!(rc, 0, "bind: {}", std::io::Error::last_os_error());
            let buf: libc::c_int = 16 << 20;
            libc::setsockopt(
                fd.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RCVBUFFORCE,
                (&buf as *const libc::c_int).cast(),
                4,
            );
            let tv = libc::timeval {
                tv_sec: 0,
                tv_usec: 100_000,
            };
            libc::setsockopt(
                fd.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RCVTIMEO,
                (&tv as *const libc::timeval).cast(),
                std::mem::size_of::<libc::timeval>() as u32,
            );
            fd
        }
    })
    .expect("enter namespace")
}

/// What one captured VXLAN datagram says: outer (src port, dst port) and the inner TCP
/// flow (src ip, dst ip, src port, dst port), if the inner frame is IPv4/TCP.
type Outer = (u16, u16, Option<([u8; 4], [u8; 4], u16, u16)>);

/// Parses an Ethernet/IPv4/UDP frame between `vteps`; `None` for anything else.
fn parse_vxlan(f: &[u8], vteps: &[[u8; 4]; 2]) -> Option<Outer> {
    let u16_at = |b: &[u8], i: usize| Some(u16::from_be_bytes([*b.get(i)?, *b.get(i + 1)?]));
    if u16_at(f, 12)? != 0x0800 {
        return None;
    }
    let ip = f.get(14..)?;
    let ihl = usize::from(ip.first()? & 0x0f) * 4;
    let (src, dst): ([u8; 4], [u8; 4]) = (
        ip.get(12..16)?.try_into().ok()?,
        ip.get(16..20)?.try_into().ok()?,
    );
    if *ip.get(9)? != 17 || !vteps.contains(&src) || !vteps.contains(&dst) {
        return None;
    }
    let udp = ip.get(ihl..)?;
    let (sport, dport) = (u16_at(udp, 0)?, u16_at(udp, 2)?);
    let inner = udp.get(8 + 8..)?;
    let flow = (|| {
        if u16_at(inner, 12)? != 0x0800 {
            return None;
        }
        let ip = inner.get(14..)?;
        let ihl = usize::from(ip.first()? & 0x0f) * 4;
        if *ip.get(9)? != 6 {
            return None;
        }
        let tcp = ip.get(ihl..)?;
        Some((
            ip.get(12..16)?.try_into().ok()?,
            ip.get(16..20)?.try_into().ok()?,
            u16_at(tcp, 0)?,
            u16_at(tcp, 2)?,
        ))
    })();
    Some((sport, dport, flow))
}

/// RFC 7348 §5: the outer UDP source port follows the inner flow. Eight concurrent TCP
/// transfers between two containers on two hosts, captured on the underlay: every inner flow
/// keeps one outer source port, the flows spread over several, and every datagram goes to
/// port 4789.
#[test]
fn overlay_outer_source_port_per_inner_flow() {
    const FLOWS: usize = 8;
    let net = Underlay::new("ovsp", "ovspe", "10.41.0.9");
    let start = |tag: &str, ip: &str, port: &str| net.daemon(tag, ip, port);
    let a = start("ovspa", "10.41.0.1", "p-a");
    let b = start("ovspb", "10.41.0.2", "p-b");
    let vteps = [[10, 41, 0, 1], [10, 41, 0, 2]];

    ok(a.vswitch(&["network", "create", "-d", "overlay", "ov"]));
    assert!(wait_until(Duration::from_secs(10), || has_network(
        &b, "ov"
    )));
    a.run_sandbox("c1", &["--net", "ov"]);
    ok(b.vswitch(&[
        "run", "-d", "--name", "c2", "--net", "ov", "--", "python3", "-c", SERVER,
    ]));
    let ip2 = ipv4(&b, "c2");
    assert!(
        wait_until(Duration::from_secs(10), || a.pings("c1", &ip2)),
        "c1 cannot reach c2; log:\n{}",
        a.log()
    );

    // Capture on host a's underlay port while the transfers run.
    let cap = packet_socket(&net.lan, "p-a");
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let reader = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut seen = Vec::new();
            let mut buf = vec![0u8; 256];
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                // SAFETY: reading into our buffer (truncated frames are fine: headers only).
                let r = unsafe {
                    libc::recv(
                        cap.as_raw_fd(),
                        buf.as_mut_ptr().cast(),
                        buf.len(),
                        libc::MSG_TRUNC,
                    )
                };
                if r > 0 {
                    let n = (r as usize).min(buf.len());
                    if let Some(o) = parse_vxlan(&buf[..n], &vteps) {
                        seen.push(o);
                    }
                }
            }
            seen
        })
    };
    let out = a.in_sandbox("c1", &["python3", "-c", CLIENT, &ip2, &FLOWS.to_string()]);
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let seen = reader.join().expect("capture thread");
    assert!(out.status.success(), "client: {}", stderr(&out));
    let got: Vec<String> = stdout(&out).split_whitespace().map(str::to_owned).collect();
    assert_eq!(
        got,
        vec!["262144".to_string(); FLOWS],
        "transfers incomplete"
    );

    let mut by_flow: std::collections::HashMap<_, std::collections::BTreeSet<u16>> =
        Default::default();
    for (sport, dport, flow) in &seen {
        assert_eq!(*dport, 4789, "VXLAN datagram to port {dport}");
        if let Some(f) = flow.filter(|f| f.2 == 5001 || f.3 == 5001) {
            by_flow.entry(f).or_default().insert(*sport);
        }
    }
    // Both directions of every connection crossed (data one way, ACKs the other).
    assert!(by_flow.len() >= 2 * FLOWS, "flows seen: {by_flow:?}");
    for (f, ports) in &by_flow {
        assert_eq!(ports.len(), 1, "inner flow {f:?} left from ports {ports:?}");
        assert!(!ports.contains(&4789), "inner flow {f:?} left from 4789");
    }
    let distinct: std::collections::BTreeSet<u16> = by_flow.values().flatten().copied().collect();
    assert!(distinct.len() >= 2, "every flow left from {distinct:?}");
    // The tunnel is served by a datapath worker: vswitchd has no tunnel thread.
    for d in [&a, &b] {
        let threads: Vec<String> = std::fs::read_dir(format!("/proc/{}/task", d.pid()))
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|t| std::fs::read_to_string(t.path().join("comm")).ok())
            .map(|c| c.trim().to_string())
            .collect();
        assert!(
            threads.iter().any(|t| t.starts_with("vswitch-dp")),
            "{threads:?}"
        );
        assert!(!threads.iter().any(|t| t == "vswitch-vxlan"), "{threads:?}");
    }
    drop((a, b, net));
}
