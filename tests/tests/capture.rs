//! `vswitch capture`: pcap from inside the datapath that tcpdump reads, and a capture whose
//! reader never reads does not slow the switch.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::process::{Command, Stdio};
use std::time::Duration;
use vswitch_tests::*;

fn addr(d: &Daemon, name: &str) -> String {
    let a = d.ipv4_of(name, "eth0");
    a[0].split('/').next().unwrap().to_string()
}

/// A sample of `GET /metrics` (`name{labels}` exactly as exposed); 0 when absent.
fn metric(d: &Daemon, series: &str) -> f64 {
    let r = d.request("GET", "/metrics", None);
    assert_eq!(r.status, 200);
    r.body
        .lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or(0.0)
}

fn captures_on(d: &Daemon, net: &str) -> f64 {
    metric(d, &format!("vswitch_captures{{network=\"{net}\"}}"))
}

/// Waits (bounded) for a background CLI to exit; its stdout and stderr.
fn finish(mut bg: Bg, what: &str) -> (String, String) {
    let mut done = None;
    assert!(
        wait_until(Duration::from_secs(20), || {
            done = bg.0.try_wait().unwrap();
            done.is_some()
        }),
        "{what} did not finish"
    );
    let (mut out, mut err) = (String::new(), String::new());
    bg.0.stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    bg.0.stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert!(done.unwrap().success(), "{what}: {err}");
    (out, err)
}

fn spawn_piped(mut c: Command) -> Bg {
    c.stdout(Stdio::piped()).stderr(Stdio::piped());
    Bg(c.spawn().expect("spawn"))
}

#[test]
fn capture_of_a_ping_reads_with_tcpdump() {
    require_root();
    let d = Daemon::start("cap");
    ok(d.vswitch(&["network", "create", "capnet"]));
    d.run_sandbox("c1", &["--net", "capnet"]);
    d.run_sandbox("c2", &["--net", "capnet"]);
    let (a, b) = (addr(&d, "c1"), addr(&d, "c2"));
    let pcap = d.dir.0.join("ping.pcap");

    // The whole network, into a file: 2 requests + 2 replies.
    let mut c = Command::new(bin("vswitch"));
    c.args(["-H", &d.host_url(), "capture", "capnet", "--filter", "icmp"])
        .args(["-c", "4", "-w"])
        .arg(&pcap);
    let net_cap = spawn_piped(c);
    // One container's interface, printed a line per frame.
    let mut c = Command::new(bin("vswitch"));
    c.args(["-H", &d.host_url(), "capture", "c2", "-i", "eth0"])
        .args(["--filter", "icmp", "-c", "2"]);
    let port_cap = spawn_piped(c);
    assert!(
        wait_until(Duration::from_secs(10), || captures_on(&d, "capnet") == 2.0),
        "captures not attached"
    );
    let o = d.in_sandbox("c1", &["ping", "-c", "2", "-i", "0.2", "-W", "2", &b]);
    assert!(o.status.success(), "ping: {}", stdout(&o));

    let (_, err) = finish(net_cap, "network capture");
    assert!(err.contains("4 packets captured"), "{err}");
    let o = run(Command::new("tcpdump").args(["-n", "-r"]).arg(&pcap));
    assert!(o.status.success(), "tcpdump -r: {}", stderr(&o));
    let text = stdout(&o);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 4, "{text}");
    let req = format!("IP {a} > {b}: ICMP echo request");
    let rep = format!("IP {b} > {a}: ICMP echo reply");
    assert!(lines[0].contains(&req), "{text}");
    assert!(lines[1].contains(&rep), "{text}");
    assert!(lines[2].contains(&req) && lines[3].contains(&rep), "{text}");

    // The port capture saw c2's side, a line per frame: the request sent to it, its reply.
    let (out, err) = finish(port_cap, "port capture");
    assert!(err.contains("2 packets captured"), "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2, "{out}");
    assert!(lines[0].contains(&req), "{out}");
    assert!(lines[1].contains(&rep), "{out}");
    assert!(wait_until(Duration::from_secs(5), || captures_on(
        &d, "capnet"
    ) == 0.0));

    // Bad requests are refused before anything streams.
    let e = fails(d.vswitch(&["capture", "capnet", "--filter", "tcp port"]));
    assert!(e.contains("filter: unexpected end"), "{e}");
    let e = fails(d.vswitch(&["capture", "c2", "-i", "eth7"]));
    assert!(e.contains("container c2 has no interface eth7"), "{e}");
    let e = fails(d.vswitch(&["capture", "nothere"]));
    assert!(e.contains("no such network or container: nothere"), "{e}");
}

#[test]
fn capture_without_reader_never_blocks_the_switch() {
    require_root();
    let d = Daemon::start("capnr");
    ok(d.vswitch(&["network", "create", "slow"]));
    d.run_sandbox("s1", &["--net", "slow"]);
    d.run_sandbox("s2", &["--net", "slow"]);
    let b = addr(&d, "s2");
    // A client that asks for a capture of everything and never reads a byte.
    let mut stuck = UnixStream::connect(&d.sock).unwrap();
    stuck
        .write_all(b"GET /vswitch/capture?target=slow HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    assert!(wait_until(Duration::from_secs(10), || captures_on(
        &d, "slow"
    ) == 1.0));

    // ~14 MB of echo requests and replies: far more than the socket, the stream and the
    // capture queue hold.
    let o = d.in_sandbox(
        "s1",
        &["ping", "-f", "-c", "5000", "-s", "1400", "-w", "60", &b],
    );
    let text = stdout(&o);
    let received: u32 = text
        .split(", ")
        .find_map(|p| p.strip_suffix(" received")?.parse().ok())
        .unwrap_or_else(|| panic!("no ping statistics: {text}"));
    assert!(received >= 4950, "flood ping lost frames: {text}");
    let dropped = metric(&d, "vswitch_capture_dropped_total{network=\"slow\"}");
    eprintln!("flood ping: {received} replies; capture dropped {dropped} frames");
    assert!(dropped > 0.0, "capture drops counted");
    assert!(d.pings("s1", &b), "still switching");
    assert_eq!(
        captures_on(&d, "slow"),
        1.0,
        "the capture is still attached"
    );

    // Hanging up ends the capture.
    drop(stuck);
    assert!(
        wait_until(Duration::from_secs(10), || captures_on(&d, "slow") == 0.0),
        "capture not removed after the client left"
    );
}
