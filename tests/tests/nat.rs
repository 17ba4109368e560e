//! Userspace NAT: masquerade, published ports, internal networks. The daemon runs in a test
//! "host" namespace with a veth to an "outside" namespace (10.99.0.0/24) that runs a TCP
//! server, a UDP echo server and answers ping. The host never forwards (ip_forward 0) and has
//! no firewall rules.

use std::time::Duration;
use vswitch_tests::*;

const HOST_IP: &str = "10.99.0.1";
const OUT_IP: &str = "10.99.0.2";

/// A static file server on port 80 with a listen backlog fit for bursts (python's
/// `http.server` keeps socketserver's backlog of 5).
const STATIC_SERVER: &str = r#"
import functools, http.server, sys
class S(http.server.ThreadingHTTPServer):
    request_queue_size = 1024
h = functools.partial(http.server.SimpleHTTPRequestHandler, directory=sys.argv[1])
h.log_message = lambda *a: None
S(("0.0.0.0", 80), h).serve_forever()
"#;

struct World {
    d: Daemon,
    outside: Netns,
    log: std::path::PathBuf,
    _servers: Bg,
}

fn world(tag: &str) -> World {
    let (host, outside) = host_and_outside(tag, HOST_IP, OUT_IP);
    let d = Daemon::start_in(host, &[]);
    let log = d.dir.0.join("outside-clients.log");
    let servers = outside_servers(&outside, &log);
    World {
        d,
        outside,
        log,
        _servers: servers,
    }
}

fn curl_in(d: &Daemon, from: &str, url: &str) -> Option<String> {
    let o = d.in_sandbox(from, &["curl", "-s", "--max-time", "5", url]);
    o.status.success().then(|| stdout(&o))
}

const UDP_ECHO_CLIENT: &str = r#"
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(3)
s.sendto(b"ping-udp", (sys.argv[1], 7))
print(s.recvfrom(2048)[0].decode())
"#;

#[test]
fn egress_is_masqueraded_behind_the_host() {
    let w = world("nme");
    let d = &w.d;
    ok(d.vswitch(&["network", "create", "--subnet", "10.90.0.0/24", "n"]));
    d.run_sandbox("c", &["--net", "n"]);
    assert_eq!(
        curl_in(d, "c", &format!("http://{OUT_IP}:8000/")).as_deref(),
        Some("outside says hi\n")
    );
    // The outside saw the host's address, not the container's.
    let seen = std::fs::read_to_string(&w.log).unwrap();
    assert_eq!(seen.lines().collect::<Vec<_>>(), [HOST_IP], "{seen}");
    let echo = ok(d.in_sandbox("c", &["python3", "-c", UDP_ECHO_CLIENT, OUT_IP]));
    assert_eq!(echo.trim(), "ping-udp");
    assert!(d.pings("c", OUT_IP));
    // No forwarding and no firewall in the host namespace.
    assert_eq!(
        ok(d.ns.exec(&["cat", "/proc/sys/net/ipv4/ip_forward"])).trim(),
        "0"
    );
    let t = ok(d.ns.exec(&[
        "sh",
        "-c",
        "cat /proc/net/ip_tables_names 2>/dev/null; true",
    ]));
    assert!(t.trim().is_empty(), "{t}");
}

#[test]
fn published_ports_reach_the_container() {
    let w = world("npp");
    let d = &w.d;
    ok(d.vswitch(&["network", "create", "--subnet", "10.91.0.0/24", "n"]));
    ok(d.vswitch(&[
        "network",
        "create",
        "--subnet",
        "10.92.0.0/24",
        "-o",
        &format!("com.docker.network.bridge.host_binding_ipv4={HOST_IP}"),
        "bound",
    ]));
    let dir = d.dir.0.join("www");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("index.html"), "published\n").unwrap();
    let serve = |name: &str, args: &[&str]| {
        let mut argv = vec!["run", "-d", "--name", name];
        argv.extend_from_slice(args);
        let www = dir.to_str().unwrap();
        argv.extend_from_slice(&["--", "python3", "-c", STATIC_SERVER, www]);
        ok(d.vswitch(&argv));
        assert!(wait_until(Duration::from_secs(10), || {
            !stdout(&d.in_sandbox(name, &["ss", "-ltnH", "sport = :80"])).is_empty()
        }));
    };
    serve("web", &["--net", "n", "-p", "8080:80"]);
    serve("auto", &["--net", "n", "--expose", "80", "-P"]);
    serve("local", &["--net", "bound", "-p", "8081:80"]);
    let get = |url: &str| {
        let o = w.outside.exec(&["curl", "-s", "--max-time", "5", url]);
        o.status.success().then(|| stdout(&o))
    };
    assert_eq!(
        get(&format!("http://{HOST_IP}:8080/")).as_deref(),
        Some("published\n")
    );
    let port = ok(d.vswitch(&["port", "auto"]));
    assert!(port.starts_with("80/tcp -> 0.0.0.0:"), "{port}");
    let hp: u16 = port.trim().rsplit(':').next().unwrap().parse().unwrap();
    assert!(hp >= 32768, "{port}");
    assert_eq!(
        get(&format!("http://{HOST_IP}:{hp}/")).as_deref(),
        Some("published\n")
    );
    // host_binding_ipv4: the listener binds only there.
    assert_eq!(
        ok(d.vswitch(&["port", "local"])).trim(),
        format!("80/tcp -> {HOST_IP}:8081")
    );
    let ss = ok(d.ns.exec(&["ss", "-ltnH", "sport = :8081"]));
    assert!(ss.contains(&format!("{HOST_IP}:8081")), "{ss}");
    // The docker API shows the bindings.
    let j = d.request("GET", "/containers/web/json", None).json();
    assert_eq!(
        j["NetworkSettings"]["Ports"]["80/tcp"][0]["HostPort"],
        "8080"
    );
    // Hairpin: a container reaches its own published port through the host's address.
    assert_eq!(
        curl_in(d, "web", &format!("http://{HOST_IP}:8080/")).as_deref(),
        Some("published\n")
    );
    // A port already taken: clear error, and no sandbox left half-made.
    let e = fails(d.vswitch(&[
        "run", "-d", "--name", "clash", "--net", "n", "-p", "8080:80", "--", "sleep", "60",
    ]));
    assert!(e.contains("port is already allocated"), "{e}");
    assert_eq!(d.request("GET", "/containers/clash/json", None).status, 404);
}

#[test]
fn internal_network_is_sealed() {
    let w = world("nin");
    let d = &w.d;
    ok(d.vswitch(&[
        "network",
        "create",
        "--internal",
        "--subnet",
        "10.93.0.0/24",
        "sealed",
    ]));
    d.run_sandbox("a", &["--net", "sealed", "--expose", "80", "-P"]);
    d.run_sandbox("b", &["--net", "sealed"]);
    assert_eq!(d.default_route("a"), None);
    assert!(curl_in(d, "a", &format!("http://{OUT_IP}:8000/")).is_none());
    assert!(!d.pings("a", OUT_IP));
    assert_eq!(ok(d.vswitch(&["port", "a"])), "");
    assert!(d.pings("a", "10.93.0.3"));
    // The host still reaches them through the gateway address.
    assert!(d
        .ns
        .exec(&["ping", "-c", "1", "-W", "2", "10.93.0.2"])
        .status
        .success());
}

#[test]
fn masquerade_off_hands_traffic_to_the_host() {
    let w = world("nmo");
    let d = &w.d;
    ok(d.vswitch(&[
        "network",
        "create",
        "--subnet",
        "10.94.0.0/24",
        "-o",
        "com.docker.network.bridge.enable_ip_masquerade=false",
        "plain",
    ]));
    d.run_sandbox("c", &["--net", "plain"]);
    w.outside
        .exec_ok(&["ip", "route", "add", "10.94.0.0/24", "via", HOST_IP]);
    // The host does not forward: nothing gets out.
    assert!(curl_in(d, "c", &format!("http://{OUT_IP}:8000/")).is_none());
    // The host forwards (its own choice, in this test's namespace): the outside sees the
    // container's own address.
    d.ns.exec_ok(&["sysctl", "-qw", "net.ipv4.ip_forward=1"]);
    assert_eq!(
        curl_in(d, "c", &format!("http://{OUT_IP}:8000/")).as_deref(),
        Some("outside says hi\n")
    );
    let seen = std::fs::read_to_string(&w.log).unwrap();
    assert_eq!(seen.lines().collect::<Vec<_>>(), ["10.94.0.2"], "{seen}");
}

/// A burst of 1,000 connections (200 at a time) through a published port: every one completes
/// with the right body. Regression test for host events lost by the engine under load (a
/// batch of more than 256 dropped one: its request, EOF or connection never reached the NAT).
#[test]
fn thousand_concurrent_connections_through_a_published_port() {
    let w = world("nk");
    let d = &w.d;
    ok(d.vswitch(&["network", "create", "--subnet", "10.95.0.0/24", "n"]));
    let dir = d.dir.0.join("www");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("index.html"), "published\n").unwrap();
    let www = dir.to_str().unwrap();
    ok(d.vswitch(&[
        "run",
        "-d",
        "--name",
        "web",
        "--net",
        "n",
        "-p",
        "8080:80",
        "--",
        "python3",
        "-c",
        STATIC_SERVER,
        www,
    ]));
    assert!(wait_until(Duration::from_secs(10), || {
        !stdout(&d.in_sandbox("web", &["ss", "-ltnH", "sport = :80"])).is_empty()
    }));
    // 1,000 connections through the published port, 200 at a time, all complete. Bounded:
    // each socket operation by 10 s, the whole burst by 50 s.
    let script = format!(
        r#"
import concurrent.futures, sys, urllib.request
def get(i):
    try:
        return urllib.request.urlopen("http://{HOST_IP}:8080/", timeout=10).read()
    except Exception as e:
        print("request", i, "failed:", repr(e), file=sys.stderr)
        return None
with concurrent.futures.ThreadPoolExecutor(max_workers=200) as ex:
    res = list(ex.map(get, range(1000)))
print(sum(1 for r in res if r == b"published\n"))
"#
    );
    let o = w.outside.exec(&["timeout", "50", "python3", "-c", &script]);
    assert!(
        o.status.success() && stdout(&o).trim() == "1000",
        "{}: {}\n{}\ndaemon log:\n{}",
        o.status,
        stdout(&o),
        stderr(&o),
        d.log()
    );
}

/// Bytes of each bulk transfer below. 1 GiB as the acceptance asks; a debug build relays it
/// in well under the bound (measured: see the tests' bound).
const BULK_BYTES: u64 = 1 << 30;
/// Bound of one bulk transfer (the client's `timeout`; under the harness's COMMAND_TIMEOUT).
const BULK_SECONDS: u64 = 110;

/// A sink on port `argv[1]`: reads each connection to its EOF, then answers
/// "<byte count> <sha256 hex>" and closes.
const BULK_SINK: &str = r#"
import hashlib, socket, sys
l = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
l.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
l.bind(("0.0.0.0", int(sys.argv[1])))
l.listen(8)
while True:
    c, _ = l.accept()
    h, n = hashlib.sha256(), 0
    while True:
        d = c.recv(1 << 20)
        if not d:
            break
        h.update(d)
        n += len(d)
    c.sendall(("%d %s\n" % (n, h.hexdigest())).encode())
    c.close()
"#;

/// Sends `argv[3]` bytes of a deterministic stream (64 KiB blocks, each numbered) to
/// `argv[1]:argv[2]`, half-closes, and prints "<count> <sha256 hex>" of what it sent, then
/// the sink's answer.
const BULK_SOURCE: &str = r#"
import hashlib, socket, sys
host, port, total = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
base = hashlib.sha256(b"vswitch bulk").digest() * 2048
h, sent, i = hashlib.sha256(), 0, 0
s = socket.create_connection((host, port), timeout=60)
while sent < total:
    blk = (i.to_bytes(8, "big") + base[8:])[: total - sent]
    s.sendall(blk)
    h.update(blk)
    sent += len(blk)
    i += 1
s.shutdown(socket.SHUT_WR)
reply = b""
while True:
    d = s.recv(4096)
    if not d:
        break
    reply += d
print(sent, h.hexdigest())
print(reply.decode().strip())
"#;

/// Checks a [`BULK_SOURCE`] run: the sink counted and hashed exactly what was sent.
fn check_bulk(o: &std::process::Output, d: &Daemon, started: std::time::Instant) {
    let out = stdout(o);
    let lines: Vec<&str> = out.lines().collect();
    assert!(
        o.status.success() && lines.len() == 2 && lines[0] == lines[1],
        "{}: {out}\n{}\ndaemon log:\n{}",
        o.status,
        stderr(o),
        d.log()
    );
    assert!(lines[0].starts_with(&format!("{BULK_BYTES} ")), "{out}");
    eprintln!(
        "{BULK_BYTES} bytes intact in {:.1} s",
        started.elapsed().as_secs_f64()
    );
}

/// 1 GiB from a container to a server outside, through the NAT relay, arrives intact (sha256
/// of the bytes sent and of the bytes received), followed by the container's FIN and the
/// server's answer back.
#[test]
fn nat_carries_a_gib_from_a_container_intact() {
    let w = world("nbo");
    let d = &w.d;
    ok(d.vswitch(&["network", "create", "--subnet", "10.96.0.0/24", "n"]));
    d.run_sandbox("c", &["--net", "n"]);
    let _sink = Bg::spawn(w.outside.cmd(&["python3", "-c", BULK_SINK, "9000"]));
    assert!(wait_until(Duration::from_secs(10), || {
        !stdout(&w.outside.exec(&["ss", "-ltnH", "sport = :9000"])).is_empty()
    }));
    let started = std::time::Instant::now();
    let total = BULK_BYTES.to_string();
    let bound = BULK_SECONDS.to_string();
    let o = d.in_sandbox(
        "c",
        &[
            "timeout",
            &bound,
            "python3",
            "-c",
            BULK_SOURCE,
            OUT_IP,
            "9000",
            &total,
        ],
    );
    check_bulk(&o, d, started);
}

/// 1 GiB from outside into a container through a published port arrives intact.
#[test]
fn published_port_carries_a_gib_into_a_container_intact() {
    let w = world("nbi");
    let d = &w.d;
    ok(d.vswitch(&["network", "create", "--subnet", "10.97.0.0/24", "n"]));
    ok(d.vswitch(&[
        "run",
        "-d",
        "--name",
        "sink",
        "--net",
        "n",
        "-p",
        "9000:9000",
        "--",
        "python3",
        "-c",
        BULK_SINK,
        "9000",
    ]));
    assert!(wait_until(Duration::from_secs(10), || {
        !stdout(&d.in_sandbox("sink", &["ss", "-ltnH", "sport = :9000"])).is_empty()
    }));
    let started = std::time::Instant::now();
    let total = BULK_BYTES.to_string();
    let bound = BULK_SECONDS.to_string();
    let o = w.outside.exec(&[
        "timeout",
        &bound,
        "python3",
        "-c",
        BULK_SOURCE,
        HOST_IP,
        "9000",
        &total,
    ]);
    check_bulk(&o, d, started);
}
