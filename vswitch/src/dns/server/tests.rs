//! resolv.conf handling, reply matching, and (as root) a resolver in a real namespace.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::super::wire::{Message, Name, Question, Rcode, Type};
use super::super::NameView;
use super::*;

#[test]
fn resolv_conf_upstreams() {
    let text = "# comment\nnameserver 10.0.0.2\nnameserver  ::1 # local\n\
                nameserver 127.0.0.53\nnameserver bogus\nnameserver\n\
                search example.com\n;nameserver 9.9.9.9\nnameserver 10.0.0.2\n\
                nameserver fe80::1%1\n";
    let ups = upstreams_from_resolv_conf(text);
    assert_eq!(
        ups,
        [
            "10.0.0.2:53".parse::<SocketAddr>().expect("sa"),
            "[::1]:53".parse().expect("sa"),
            "127.0.0.53:53".parse().expect("sa"),
            "[fe80::1%1]:53".parse().expect("sa"),
        ]
    );
    assert!(upstreams_from_resolv_conf("").is_empty());
    // An unknown interface zone is skipped.
    assert!(upstreams_from_resolv_conf("nameserver fe80::1%nosuchif0").is_empty());
}

#[test]
fn sandbox_resolv_conf_docker_style() {
    let host = "# host\nnameserver 10.0.0.2\nsearch corp.example lab.example\n\
                options edns0 timeout:2\nsortlist 10.0.0.0\n";
    let out = sandbox_resolv_conf(host);
    let lines: Vec<&str> = out.lines().filter(|l| !l.starts_with('#')).collect();
    assert_eq!(
        lines,
        [
            "nameserver 127.0.0.11",
            "search corp.example lab.example",
            "options ndots:0",
            "options edns0 timeout:2",
        ]
    );
    // The host's own ndots wins, as in Docker.
    let out = sandbox_resolv_conf("domain x.example\noptions ndots:2\n");
    let lines: Vec<&str> = out.lines().filter(|l| !l.starts_with('#')).collect();
    assert_eq!(
        lines,
        [
            "nameserver 127.0.0.11",
            "domain x.example",
            "options ndots:2"
        ]
    );
    assert!(sandbox_resolv_conf("").contains("nameserver 127.0.0.11\noptions ndots:0\n"));
}

#[test]
fn reply_matching() {
    let name = Name::from_dotted("outside.test").expect("n");
    let q = Message::query(0x1111, name, Type::A);
    let question = q.question;
    let mut reply = Message::response_to(&q, Rcode::NOERROR);
    reply.header.id = 0x2222;
    let rb = reply.to_bytes().expect("emit");
    // Our id and question: matched, client id restored.
    let m = match_reply(&rb, 0x2222, question.as_ref(), 0x1111).expect("match");
    assert_eq!(&m[..2], &[0x11, 0x11]);
    assert_eq!(&m[2..], &rb[2..]);
    // Wrong id, a query, another question: ignored.
    assert!(match_reply(&rb, 0x2223, question.as_ref(), 0x1111).is_none());
    let mut not_resp = rb.clone();
    not_resp[2] &= 0x7F;
    assert!(match_reply(&not_resp, 0x2222, question.as_ref(), 0x1111).is_none());
    let other = Question {
        name: Name::from_dotted("other.test").expect("n"),
        qtype: Type::A,
        qclass: question.expect("q").qclass,
    };
    assert!(match_reply(&rb, 0x2222, Some(&other), 0x1111).is_none());
    // Case differences are fine (0x20).
    let upper = Question {
        name: Name::from_dotted("OUTSIDE.test").expect("n"),
        ..other
    };
    assert!(match_reply(&rb, 0x2222, Some(&upper), 0x1111).is_some());
    // A bare FORMERR from upstream is accepted, a bare NOERROR is not.
    let bare_err = [0x22, 0x22, 0x81, 0x81, 0, 0, 0, 0, 0, 0, 0, 0];
    assert!(match_reply(&bare_err, 0x2222, question.as_ref(), 0x1111).is_some());
    let bare_ok = [0x22, 0x22, 0x81, 0x80, 0, 0, 0, 0, 0, 0, 0, 0];
    assert!(match_reply(&bare_ok, 0x2222, question.as_ref(), 0x1111).is_none());
    assert!(match_reply(&[1, 2, 3], 0x2222, question.as_ref(), 0x1111).is_none());
}

#[test]
fn fresh_ids_vary() {
    let ids: std::collections::HashSet<u16> = (0..64).map(|_| random_id()).collect();
    assert!(ids.len() > 32);
}

// ---------------------------------------------------------------------------------------------
// In a real namespace (root only)

/// A namespace made with `ip netns add`, deleted on drop even when the test fails.
struct NetnsGuard {
    name: String,
}

impl NetnsGuard {
    fn new(tag: &str) -> Option<NetnsGuard> {
        let name = format!("vsw-dnstest-{}-{tag}", std::process::id());
        let ok = Command::new("ip")
            .args(["netns", "add", &name])
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            return None;
        }
        let guard = NetnsGuard { name };
        let up = Command::new("ip")
            .args(["-n", &guard.name, "link", "set", "lo", "up"])
            .status()
            .is_ok_and(|s| s.success());
        up.then_some(guard)
    }
    fn path(&self) -> PathBuf {
        PathBuf::from("/var/run/netns").join(&self.name)
    }
}

impl Drop for NetnsGuard {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(PathBuf::from("/etc/netns").join(&self.name));
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

/// Runs `f` on a thread that entered the namespace at `path`.
fn in_netns<T: Send + 'static>(path: PathBuf, f: impl FnOnce() -> T + Send + 'static) -> T {
    std::thread::spawn(move || {
        let ns = std::fs::File::open(&path).expect("open netns");
        // SAFETY: setns on this test thread only.
        let r = unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) };
        assert_eq!(r, 0, "setns: {}", std::io::Error::last_os_error());
        f()
    })
    .join()
    .expect("netns thread")
}

/// A query built by hand (not with our wire module): RD set, class IN.
fn raw_query(id: u16, name: &str, qtype: u16) -> Vec<u8> {
    let mut b = id.to_be_bytes().to_vec();
    b.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
    for l in name.split('.') {
        b.push(l.len() as u8);
        b.extend_from_slice(l.as_bytes());
    }
    b.push(0);
    b.extend_from_slice(&qtype.to_be_bytes());
    b.extend_from_slice(&[0, 1]);
    b
}

/// The fake upstream's answer, built by hand: outside.test A → 10.9.9.9, else NXDOMAIN.
fn upstream_reply(q: &[u8]) -> Option<Vec<u8>> {
    let mut i = 12;
    let mut labels = Vec::new();
    loop {
        let l = usize::from(*q.get(i)?);
        if l == 0 {
            i += 1;
            break;
        }
        if l >= 64 {
            return None;
        }
        labels.push(String::from_utf8_lossy(q.get(i + 1..i + 1 + l)?).to_lowercase());
        i += 1 + l;
    }
    let question = q.get(12..i + 4)?;
    let qtype = u16::from_be_bytes([*q.get(i)?, *q.get(i + 1)?]);
    let mut r = q.get(..2)?.to_vec();
    if labels.join(".") == "outside.test" && qtype == 1 {
        r.extend_from_slice(&[0x81, 0x80, 0, 1, 0, 1, 0, 0, 0, 0]);
        r.extend_from_slice(question);
        r.extend_from_slice(&[0xC0, 0x0C, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 10, 9, 9, 9]);
    } else {
        r.extend_from_slice(&[0x81, 0x83, 0, 1, 0, 0, 0, 0, 0, 0]);
        r.extend_from_slice(question);
    }
    Some(r)
}

/// A tiny DNS server on 127.0.0.1:<port> (UDP and TCP) of the test's namespace.
struct FakeUpstream {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl FakeUpstream {
    fn start() -> FakeUpstream {
        let (udp, tcp) = (0..50)
            .find_map(|_| {
                let udp = std::net::UdpSocket::bind("127.0.0.1:0").ok()?;
                let port = udp.local_addr().ok()?.port();
                let tcp = std::net::TcpListener::bind(("127.0.0.1", port)).ok()?;
                Some((udp, tcp))
            })
            .expect("a free port for UDP and TCP");
        let addr = udp.local_addr().expect("addr");
        let stop = Arc::new(AtomicBool::new(false));
        udp.set_read_timeout(Some(Duration::from_millis(100)))
            .expect("timeout");
        tcp.set_nonblocking(true).expect("nonblocking");
        let s1 = stop.clone();
        let t1 = std::thread::spawn(move || {
            let mut buf = [0u8; 2048];
            while !s1.load(Ordering::Relaxed) {
                if let Ok((n, src)) = udp.recv_from(&mut buf) {
                    if let Some(r) = upstream_reply(&buf[..n]) {
                        let _ = udp.send_to(&r, src);
                    }
                }
            }
        });
        let s2 = stop.clone();
        let t2 = std::thread::spawn(move || {
            while !s2.load(Ordering::Relaxed) {
                let Ok((mut c, _)) = tcp.accept() else {
                    std::thread::sleep(Duration::from_millis(20));
                    continue;
                };
                let _ = c.set_nonblocking(false);
                let _ = c.set_read_timeout(Some(Duration::from_secs(2)));
                let mut len = [0u8; 2];
                if c.read_exact(&mut len).is_err() {
                    continue;
                }
                let mut q = vec![0u8; usize::from(u16::from_be_bytes(len))];
                if c.read_exact(&mut q).is_err() {
                    continue;
                }
                if let Some(r) = upstream_reply(&q) {
                    let mut out = (r.len() as u16).to_be_bytes().to_vec();
                    out.extend_from_slice(&r);
                    let _ = c.write_all(&out);
                }
            }
        });
        FakeUpstream {
            addr,
            stop,
            threads: vec![t1, t2],
        }
    }
}

impl Drop for FakeUpstream {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

struct StaticView(HashMap<&'static str, Vec<IpAddr>>);

impl NameView for StaticView {
    fn lookup(&self, _asker: &str, name: &str) -> Option<Vec<IpAddr>> {
        self.0.get(name).cloned()
    }
}

fn static_view() -> Arc<dyn NameView> {
    let mut m = HashMap::new();
    m.insert("web2", vec![IpAddr::V4(Ipv4Addr::new(172, 18, 0, 3))]);
    Arc::new(StaticView(m))
}

fn resolver_addr() -> SocketAddr {
    SocketAddr::from((DNS_ADDR, DNS_PORT))
}

/// Sends `q` over UDP to 127.0.0.11:53 (inside the namespace the calling thread is in).
fn udp_ask(q: &[u8], wait: Duration) -> std::io::Result<Vec<u8>> {
    let s = std::net::UdpSocket::bind("127.0.0.1:0")?;
    s.set_read_timeout(Some(wait))?;
    s.send_to(q, resolver_addr())?;
    let mut buf = [0u8; 4096];
    let n = s.recv(&mut buf)?;
    Ok(buf[..n].to_vec())
}

/// Sends `q` over TCP, twice on one connection (pipelining in order), returns both replies.
fn tcp_ask_twice(q1: &[u8], q2: &[u8]) -> std::io::Result<(Vec<u8>, Vec<u8>)> {
    let mut c = std::net::TcpStream::connect_timeout(&resolver_addr(), Duration::from_secs(2))?;
    c.set_read_timeout(Some(Duration::from_secs(6)))?;
    let mut out = Vec::new();
    for q in [q1, q2] {
        out.extend_from_slice(&(q.len() as u16).to_be_bytes());
        out.extend_from_slice(q);
    }
    c.write_all(&out)?;
    let mut read_one = || -> std::io::Result<Vec<u8>> {
        let mut len = [0u8; 2];
        c.read_exact(&mut len)?;
        let mut r = vec![0u8; usize::from(u16::from_be_bytes(len))];
        c.read_exact(&mut r)?;
        Ok(r)
    };
    Ok((read_one()?, read_one()?))
}

fn a_records(reply: &[u8]) -> (Rcode, Vec<IpAddr>) {
    let m = Message::parse(reply).expect("reply parses");
    assert!(m.header.qr);
    (m.rcode(), m.answers.iter().filter_map(|r| r.ip()).collect())
}

/// `getent hosts <names>` inside the namespace with the sandbox resolv.conf; `None` when
/// getent is not installed.
fn getent_hosts(ns: &NetnsGuard, names: &[&str]) -> Option<String> {
    let parent = PathBuf::from("/etc/netns");
    let parent_existed = parent.exists();
    let dir = parent.join(&ns.name);
    std::fs::create_dir_all(&dir).expect("mkdir /etc/netns/<ns>");
    let host = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    std::fs::write(dir.join("resolv.conf"), sandbox_resolv_conf(&host)).expect("resolv.conf");
    let out = Command::new("ip")
        .args(["netns", "exec", &ns.name, "getent", "hosts"])
        .args(names)
        .output();
    let _ = std::fs::remove_dir_all(&dir);
    if !parent_existed {
        let _ = std::fs::remove_dir(&parent);
    }
    let out = out.ok()?;
    if !out.status.success() && out.stdout.is_empty() {
        let err = String::from_utf8_lossy(&out.stderr);
        if err.contains("No such file") || err.contains("not found") {
            return None;
        }
        panic!("getent failed: {err}");
    }
    let hosts = String::from_utf8_lossy(&out.stdout).into_owned();
    eprintln!("getent hosts in the sandbox:\n{hosts}");
    Some(hosts)
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

#[test]
fn resolver_in_a_namespace() {
    if !is_root() {
        eprintln!("skipped: needs root to create a network namespace");
        return;
    }
    let Some(ns) = NetnsGuard::new("main") else {
        eprintln!("skipped: `ip netns add` failed");
        return;
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let upstream = FakeUpstream::start();
    let resolver = Resolver::start(
        rt.handle(),
        &ns.path(),
        "web1".into(),
        static_view(),
        vec![upstream.addr],
    )
    .expect("start resolver");
    assert_eq!(resolver.asker(), "web1");

    let (web2_a, web2_aaaa, outside, missing, tcp) = in_netns(ns.path(), || {
        let w = Duration::from_secs(6);
        (
            udp_ask(&raw_query(0x0A0A, "web2", 1), w).expect("web2 A"),
            udp_ask(&raw_query(0x0B0B, "WEB2", 28), w).expect("web2 AAAA"),
            udp_ask(&raw_query(0x0C0C, "outside.test", 1), w).expect("outside.test"),
            udp_ask(&raw_query(0x0D0D, "web9", 1), w).expect("web9"),
            tcp_ask_twice(
                &raw_query(0x0E0E, "web2", 1),
                &raw_query(0x0F0F, "outside.test", 1),
            )
            .expect("tcp"),
        )
    });
    // Local A: the address, id echoed; hand-checked bytes for the answer's tail.
    assert_eq!(&web2_a[..2], &[0x0A, 0x0A]);
    assert_eq!(&web2_a[web2_a.len() - 4..], &[172, 18, 0, 3]);
    assert_eq!(
        a_records(&web2_a),
        (
            Rcode::NOERROR,
            vec![IpAddr::V4(Ipv4Addr::new(172, 18, 0, 3))]
        )
    );
    // Local AAAA without an IPv6 address: NODATA.
    assert_eq!(&web2_aaaa[..2], &[0x0B, 0x0B]);
    assert_eq!(a_records(&web2_aaaa), (Rcode::NOERROR, vec![]));
    // Forwarded: upstream's answer, with the client's id.
    assert_eq!(&outside[..2], &[0x0C, 0x0C]);
    assert_eq!(
        a_records(&outside),
        (Rcode::NOERROR, vec![IpAddr::V4(Ipv4Addr::new(10, 9, 9, 9))])
    );
    // Unknown everywhere: upstream's NXDOMAIN.
    assert_eq!(&missing[..2], &[0x0D, 0x0D]);
    assert_eq!(a_records(&missing), (Rcode::NXDOMAIN, vec![]));
    // TCP: local and forwarded (over TCP to the upstream), in order on one connection.
    assert_eq!(&tcp.0[..2], &[0x0E, 0x0E]);
    assert_eq!(
        a_records(&tcp.0).1,
        [IpAddr::V4(Ipv4Addr::new(172, 18, 0, 3))]
    );
    assert_eq!(&tcp.1[..2], &[0x0F, 0x0F]);
    assert_eq!(
        a_records(&tcp.1).1,
        [IpAddr::V4(Ipv4Addr::new(10, 9, 9, 9))]
    );

    // glibc as the client, through the resolv.conf a sandbox gets (`ip netns exec` bind-mounts
    // /etc/netns/<name>/resolv.conf over /etc/resolv.conf).
    if let Some(hosts) = getent_hosts(&ns, &["web2", "outside.test"]) {
        assert!(
            hosts.contains("172.18.0.3") && hosts.contains("web2"),
            "{hosts}"
        );
        assert!(
            hosts.contains("10.9.9.9") && hosts.contains("outside.test"),
            "{hosts}"
        );
    }

    // Nothing listens on 127.0.0.11 in the daemon's (test's) own namespace.
    assert!(
        std::net::TcpStream::connect_timeout(&resolver_addr(), Duration::from_millis(300)).is_err()
    );

    // Shut down: the sockets are closed when shutdown returns, and a resolver without
    // upstreams can bind again at once; it answers NXDOMAIN for non-local names.
    rt.block_on(resolver.shutdown());
    let refused = in_netns(ns.path(), || {
        std::net::TcpStream::connect_timeout(&resolver_addr(), Duration::from_secs(1)).is_err()
    });
    assert!(refused, "TCP still accepted after shutdown");
    let resolver = Resolver::start(
        rt.handle(),
        &ns.path(),
        "web1".into(),
        static_view(),
        vec![],
    )
    .expect("restart");
    let nx = in_netns(ns.path(), || {
        udp_ask(
            &raw_query(0x1010, "outside.test", 1),
            Duration::from_secs(3),
        )
        .expect("nx")
    });
    assert_eq!(a_records(&nx), (Rcode::NXDOMAIN, vec![]));
    // Dropping stops it too.
    drop(resolver);
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        let closed = in_netns(ns.path(), || {
            std::net::TcpStream::connect_timeout(&resolver_addr(), Duration::from_millis(200))
                .is_err()
        });
        if closed {
            break;
        }
        assert!(Instant::now() < deadline, "still listening after drop");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn forward_timeout_gives_servfail() {
    if !is_root() {
        eprintln!("skipped: needs root to create a network namespace");
        return;
    }
    let Some(ns) = NetnsGuard::new("timeout") else {
        eprintln!("skipped: `ip netns add` failed");
        return;
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    // An upstream that never answers: a bound socket nobody reads.
    let black_hole = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
    let up = black_hole.local_addr().expect("addr");
    let resolver = Resolver::start(
        rt.handle(),
        &ns.path(),
        "web1".into(),
        static_view(),
        vec![up],
    )
    .expect("start");
    let start = Instant::now();
    let reply = in_netns(ns.path(), || {
        udp_ask(
            &raw_query(0x1111, "outside.test", 1),
            Duration::from_secs(8),
        )
        .expect("reply")
    });
    let took = start.elapsed();
    assert_eq!(&reply[..2], &[0x11, 0x11]);
    assert_eq!(a_records(&reply).0, Rcode::SERVFAIL);
    assert!(
        took >= FORWARD_TIMEOUT - Duration::from_millis(100),
        "{took:?}"
    );
    assert!(took < FORWARD_TIMEOUT + Duration::from_secs(2), "{took:?}");
    drop(resolver);
}

#[test]
fn start_fails_cleanly() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let err = Resolver::start(
        rt.handle(),
        std::path::Path::new("/nonexistent/netns"),
        "x".into(),
        static_view(),
        vec![],
    )
    .expect_err("no such namespace");
    assert!(matches!(err, DnsError::OpenNetns { .. }), "{err}");
    // A file that is not a namespace: setns fails.
    if is_root() {
        let err = Resolver::start(
            rt.handle(),
            std::path::Path::new("/proc/self/status"),
            "x".into(),
            static_view(),
            vec![],
        )
        .expect_err("not a namespace");
        assert!(matches!(err, DnsError::Setns { .. }), "{err}");
    }
}
