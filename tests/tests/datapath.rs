//! The userspace L2 datapath in real namespaces: sandboxes, TAP ports, switching, ARP, ICC,
//! connect/disconnect with default-gateway handover, restart.

use std::time::Duration;
use vswitch_tests::*;

/// An HTTP server inside a sandbox (python's http.server on `port`), killed on drop.
fn http_server(d: &Daemon, name: &str, port: u16) -> Bg {
    let dir = d.dir.0.join(format!("www-{name}"));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("index.html"), format!("hello from {name}\n")).unwrap();
    let mut c = d.in_sandbox_cmd(
        name,
        &[
            "python3",
            "-m",
            "http.server",
            &port.to_string(),
            "--bind",
            "0.0.0.0",
        ],
    );
    c.current_dir(&dir);
    let bg = Bg::spawn(c);
    // Bounded wait until it listens.
    let key = d.sandbox_key(name);
    assert!(
        wait_until(Duration::from_secs(10), || {
            !run(std::process::Command::new("nsenter")
                .arg(format!("--net={}", key.display()))
                .args(["ss", "-ltnH", &format!("sport = :{port}")]))
            .stdout
            .is_empty()
        }),
        "http server in {name} did not start"
    );
    bg
}

fn curl(d: &Daemon, from: &str, url: &str) -> Option<String> {
    let o = d.in_sandbox(from, &["curl", "-s", "--max-time", "5", url]);
    o.status.success().then(|| stdout(&o))
}

#[test]
fn seed_connect_recipe_with_handover() {
    let d = Daemon::start("dpc");
    ok(d.vswitch(&["network", "create", "mynetwork"]));
    d.run_sandbox("web1", &[]);
    // On the default bridge: eth0 172.17.0.2/16, MAC 02:42:ac:11:00:02, default via .1.
    assert_eq!(d.ipv4_of("web1", "eth0"), vec!["172.17.0.2/16"]);
    let link = d.ip_json("web1", &["link", "show", "dev", "eth0"]);
    assert_eq!(link[0]["address"], "02:42:ac:11:00:02");
    assert_eq!(
        d.default_route("web1"),
        Some(("172.17.0.1".into(), "eth0".into()))
    );
    // Connect to mynetwork: eth1 appears live with 172.18.0.2.
    ok(d.vswitch(&["network", "connect", "mynetwork", "web1"]));
    assert_eq!(d.ipv4_of("web1", "eth1"), vec!["172.18.0.2/16"]);
    let n: serde_json::Value =
        serde_json::from_str(&ok(d.vswitch(&["network", "inspect", "mynetwork"]))).unwrap();
    let c = n[0]["Containers"].as_object().unwrap();
    assert_eq!(c.values().next().unwrap()["Name"], "web1");
    assert_eq!(c.values().next().unwrap()["IPv4Address"], "172.18.0.2/16");
    // bridge sorts before mynetwork: the default route stays on eth0.
    assert_eq!(
        d.default_route("web1"),
        Some(("172.17.0.1".into(), "eth0".into()))
    );
    assert!(d.pings("web1", "172.18.0.1"));
    // Disconnect bridge (docker CLI): eth0 disappears and the route moves to eth1.
    ok(d.docker(&["network", "disconnect", "bridge", "web1"]));
    assert!(!d.links_of("web1").contains(&"eth0".to_string()));
    assert_eq!(
        d.default_route("web1"),
        Some(("172.18.0.1".into(), "eth1".into()))
    );
    assert!(d.pings("web1", "172.18.0.1"));
    // Disconnect the last network: no default route left.
    ok(d.vswitch(&["network", "disconnect", "mynetwork", "web1"]));
    assert_eq!(d.default_route("web1"), None);

    // The none network is exclusive.
    d.run_sandbox("lonely", &["--net", "none"]);
    assert_eq!(d.links_of("lonely"), vec!["lo".to_string()]);
    let e = fails(d.docker(&["network", "connect", "mynetwork", "lonely"]));
    assert!(
        e.contains("container cannot be connected to multiple networks with one of the networks in private (none) mode"),
        "{e}"
    );
    ok(d.vswitch(&["network", "disconnect", "none", "lonely"]));
    ok(d.vswitch(&["network", "connect", "mynetwork", "lonely"]));
    assert_eq!(d.ipv4_of("lonely", "eth0"), vec!["172.18.0.2/16"]);
}

#[test]
fn two_sandboxes_talk_and_others_are_isolated() {
    let d = Daemon::start("dp2");
    ok(d.vswitch(&[
        "network",
        "create",
        "--subnet",
        "10.77.0.0/24",
        "-o",
        "com.docker.network.driver.mtu=1400",
        "-o",
        "com.docker.network.bridge.name=mybridge1",
        "mynet",
    ]));
    ok(d.vswitch(&["network", "create", "--subnet", "10.78.0.0/24", "other"]));
    d.run_sandbox("web1", &["--net", "mynet"]);
    d.run_sandbox("web2", &["--net", "mynet", "--ip", "10.77.0.50"]);
    d.run_sandbox("web3", &["--net", "other"]);
    assert_eq!(d.ipv4_of("web2", "eth0"), vec!["10.77.0.50/24"]);
    // MTU option visible inside and on the host interface.
    let l = d.ip_json("web1", &["link", "show", "dev", "eth0"]);
    assert_eq!(l[0]["mtu"], 1400);
    // The host interface holds the gateway, named by the bridge.name option.
    let host =
        ok(d.ns.exec(&["ip", "-br", "-4", "addr", "show", "dev", "mybridge1"]));
    assert!(host.contains("10.77.0.1/24"), "{host}");
    // Ping both ways, HTTP across.
    assert!(d.pings("web1", "10.77.0.50"));
    assert!(d.pings("web2", "10.77.0.2"));
    let _srv = http_server(&d, "web2", 8080);
    assert_eq!(
        curl(&d, "web1", "http://10.77.0.50:8080/").as_deref(),
        Some("hello from web2\n")
    );
    // The host reaches both through its interface.
    for ip in ["10.77.0.2", "10.77.0.50"] {
        assert!(
            d.ns.exec(&["ping", "-c", "1", "-W", "2", ip])
                .status
                .success(),
            "host cannot ping {ip}"
        );
    }
    // Another network cannot reach them (no route, and nothing crosses switches).
    assert!(!d.pings("web3", "10.77.0.2"));
    assert!(curl(&d, "web3", "http://10.77.0.50:8080/").is_none());
    // The switch answered ARP: web1 knows web2's MAC.
    let neigh = ok(d.in_sandbox("web1", &["ip", "neigh", "show", "10.77.0.50"]));
    assert!(neigh.contains("02:42:0a:4d:00:32"), "{neigh}");
}

#[test]
fn icc_off_blocks_containers_but_not_gateway() {
    let d = Daemon::start("icc");
    ok(d.vswitch(&[
        "network",
        "create",
        "--subnet",
        "10.79.0.0/24",
        "-o",
        "com.docker.network.bridge.enable_icc=false",
        "noicc",
    ]));
    d.run_sandbox("a", &["--net", "noicc"]);
    d.run_sandbox("b", &["--net", "noicc"]);
    assert!(!d.pings("a", "10.79.0.3"));
    assert!(!d.pings("b", "10.79.0.2"));
    assert!(d.pings("a", "10.79.0.1"));
    assert!(d.pings("b", "10.79.0.1"));
    assert!(d
        .ns
        .exec(&["ping", "-c", "1", "-W", "2", "10.79.0.2"])
        .status
        .success());
}

#[test]
fn random_frames_do_not_crash_the_daemon() {
    let d = Daemon::start("rnd");
    ok(d.vswitch(&["network", "create", "--subnet", "10.80.0.0/24", "fz"]));
    d.run_sandbox("a", &["--net", "fz"]);
    d.run_sandbox("b", &["--net", "fz"]);
    // 5000 frames of random bytes and random lengths through a raw socket on eth0.
    let script = r#"
import os, random, socket
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind(("eth0", 0))
random.seed(7)
sent = 0
for i in range(5000):
    n = random.choice([1, 13, 14, 15, 41, 42, 60, 64, 200, 1514])
    b = bytearray(os.urandom(n))
    if n >= 14 and i % 3 == 0:
        b[12:14] = random.choice([b"\x08\x06", b"\x08\x00", b"\x86\xdd", b"\x81\x00"])
    if n >= 12 and i % 5 == 0:
        b[6:12] = bytes.fromhex("02420a500002")
    try:
        s.send(bytes(b)); sent += 1
    except OSError:
        pass
print(sent)
"#;
    let out = ok(d.in_sandbox("a", &["python3", "-c", script]));
    // The kernel refuses frames shorter than an Ethernet header (2 of the 10 lengths).
    assert!(out.trim().parse::<u32>().unwrap() > 3500, "{out}");
    // Still alive, still switching.
    let r = d.request("GET", "/_ping", None);
    assert_eq!(r.status, 200);
    assert!(d.pings("a", "10.80.0.3"));
    assert!(d.pings("b", "10.80.0.1"));
}

#[test]
fn rm_leaves_nothing_behind() {
    let d = Daemon::start("rmv");
    ok(d.vswitch(&["network", "create", "--subnet", "10.81.0.0/24", "n1"]));
    d.run_sandbox("gone", &["--net", "n1"]);
    let key = d.sandbox_key("gone");
    assert!(key.exists());
    let pid: i64 = d.request("GET", "/containers/gone/json", None).json()["State"]["Pid"]
        .as_i64()
        .unwrap();
    assert!(pid > 0);
    let e = fails(d.vswitch(&["rm", "gone"]));
    assert!(e.contains("container is running"), "{e}");
    ok(d.vswitch(&["rm", "-f", "gone"]));
    assert!(!key.exists(), "namespace file left: {}", key.display());
    assert!(
        !std::path::Path::new(&format!("/proc/{pid}")).exists(),
        "process left"
    );
    let n: serde_json::Value =
        serde_json::from_str(&ok(d.vswitch(&["network", "inspect", "n1"]))).unwrap();
    assert_eq!(n[0]["Containers"], serde_json::json!({}));
    // The address was released: the next sandbox gets it again.
    d.run_sandbox("again", &["--net", "n1"]);
    assert_eq!(d.ipv4_of("again", "eth0"), vec!["10.81.0.2/24"]);
    // No TAP or host-side leftovers besides the networks' own interfaces.
    let links = ok(d.ns.exec(&["ip", "-br", "link"]));
    assert_eq!(links.lines().count(), 3, "{links}"); // lo, docker0, br-…
}

#[test]
fn restart_reattaches_sandboxes() {
    for signal in [libc::SIGTERM, libc::SIGKILL] {
        let mut d = Daemon::start("rat");
        ok(d.vswitch(&["network", "create", "--subnet", "10.82.0.0/24", "n"]));
        d.run_sandbox("a", &["--net", "n"]);
        d.run_sandbox("b", &["--net", "n"]);
        ok(d.vswitch(&["network", "connect", "bridge", "b"]));
        assert!(d.pings("a", "10.82.0.3"));
        let before_b = (
            d.ipv4_of("b", "eth0"),
            d.ipv4_of("b", "eth1"),
            d.default_route("b"),
        );
        d.kill(signal);
        d.restart();
        let after_b = (
            d.ipv4_of("b", "eth0"),
            d.ipv4_of("b", "eth1"),
            d.default_route("b"),
        );
        assert_eq!(before_b, after_b);
        assert!(wait_until(Duration::from_secs(10), || d.pings("a", "10.82.0.3")));
        assert!(d.pings("b", "10.82.0.1"));
        assert!(d.pings("b", "172.17.0.1"));
    }
}

#[test]
fn no_kernel_bridge_vxlan_or_firewall_objects() {
    let d = Daemon::start("krn");
    ok(d.vswitch(&["network", "create", "--subnet", "10.83.0.0/24", "n"]));
    d.run_sandbox("a", &["--net", "n"]);
    d.run_sandbox("b", &["--net", "n"]);
    assert!(d.pings("a", "10.83.0.3"));
    let links = ok(d.ns.exec(&["ip", "-d", "-j", "link", "show"]));
    let v: serde_json::Value = serde_json::from_str(&links).unwrap();
    for l in v.as_array().unwrap() {
        let kind = l["linkinfo"]["info_kind"].as_str().unwrap_or("");
        assert!(
            kind != "bridge" && kind != "vxlan" && kind != "veth",
            "kernel object: {l}"
        );
    }
    // No forwarding needed.
    let fwd = ok(d.ns.exec(&["cat", "/proc/sys/net/ipv4/ip_forward"]));
    assert_eq!(fwd.trim(), "0");
    // No firewall tables were loaded for this namespace.
    let tables = ok(d.ns.exec(&[
        "sh",
        "-c",
        "cat /proc/net/ip_tables_names 2>/dev/null; true",
    ]));
    assert!(tables.trim().is_empty(), "iptables tables: {tables}");
}

#[test]
fn anti_spoofing_drops_foreign_source_ip_unless_disabled() {
    let d = Daemon::start("spf");
    ok(d.vswitch(&["network", "create", "--subnet", "10.84.0.0/24", "strict"]));
    ok(d.vswitch(&[
        "network",
        "create",
        "--subnet",
        "10.85.0.0/24",
        "-o",
        "io.vswitch.network.anti_spoofing=false",
        "lax",
    ]));
    for (net, honest, victim, forged) in [
        ("strict", "10.84.0.2", "10.84.0.3", "10.84.0.99"),
        ("lax", "10.85.0.2", "10.85.0.3", "10.85.0.99"),
    ] {
        let (a, b) = (format!("{net}-a"), format!("{net}-b"));
        d.run_sandbox(&a, &["--net", net]);
        d.run_sandbox(&b, &["--net", net]);
        assert_eq!(d.ipv4_of(&a, "eth0"), vec![format!("{honest}/24")]);
        // `a` claims a second address that IPAM never gave it and pings from it.
        ok(d.in_sandbox(
            &a,
            &["ip", "addr", "add", &format!("{forged}/24"), "dev", "eth0"],
        ));
        let spoofed = d
            .in_sandbox(&a, &["ping", "-c", "1", "-W", "2", "-I", forged, victim])
            .status
            .success();
        assert_eq!(spoofed, net == "lax", "spoofed ping on {net}");
        // The kernel keeps soliciting with the forged source (taken from the first packet
        // queued on the unresolved neighbour) until that entry fails, about 3 s: retry.
        assert!(
            wait_until(Duration::from_secs(10), || d.pings(&a, victim)),
            "honest ping on {net}"
        );
    }
}

#[test]
fn veth_port_kind_switches_like_tap() {
    let d = Daemon::start("vth");
    ok(d.vswitch(&[
        "network",
        "create",
        "--subnet",
        "10.86.0.0/24",
        "-o",
        "io.vswitch.network.port_kind=veth",
        "vnet",
    ]));
    d.run_sandbox("a", &["--net", "vnet"]);
    d.run_sandbox("b", &["--net", "vnet"]);
    let l = d.ip_json("a", &["-d", "link", "show", "dev", "eth0"]);
    assert_eq!(l[0]["linkinfo"]["info_kind"], "veth");
    assert!(d.pings("a", "10.86.0.3"));
    assert!(d.pings("b", "10.86.0.1"));
    // TCP with offloads (GSO frames through PACKET_VNET_HDR): a 20 MB download completes.
    let dir = d.dir.0.join("www-big");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("big"), vec![7u8; 20_000_000]).unwrap();
    let mut c = d.in_sandbox_cmd("b", &["python3", "-m", "http.server", "8081"]);
    c.current_dir(&dir);
    let _srv = Bg::spawn(c);
    assert!(wait_until(Duration::from_secs(10), || {
        !stdout(&d.in_sandbox("b", &["ss", "-ltnH", "sport = :8081"])).is_empty()
    }));
    let got = ok(d.in_sandbox(
        "a",
        &[
            "curl",
            "-s",
            "--max-time",
            "20",
            "-o",
            "/dev/null",
            "-w",
            "%{size_download}",
            "http://10.86.0.3:8081/big",
        ],
    ));
    assert_eq!(got, "20000000");
    // The host ends disappear with the sandbox.
    ok(d.vswitch(&["rm", "-f", "a", "b"]));
    let links = ok(d.ns.exec(&["ip", "-br", "link"]));
    assert!(!links.contains("vsw"), "{links}");
}

#[test]
fn runtime_can_hand_over_a_namespace() {
    let d = Daemon::start("hnd");
    ok(d.vswitch(&["network", "create", "--subnet", "10.87.0.0/24", "n"]));
    // A runtime made this namespace; vswitch only plugs it in.
    let theirs = Netns::new("rt");
    ok(d.vswitch(&[
        "run",
        "-d",
        "--name",
        "adopted",
        "--net",
        "n",
        "--netns",
        &theirs.name,
    ]));
    let addrs = ok(theirs.exec(&["ip", "-br", "-4", "addr", "show", "dev", "eth0"]));
    assert!(addrs.contains("10.87.0.2/24"), "{addrs}");
    d.run_sandbox("peer", &["--net", "n"]);
    assert!(theirs
        .exec(&["ping", "-c", "1", "-W", "2", "10.87.0.3"])
        .status
        .success());
    // rm unplugs it but leaves the runtime's namespace alone.
    ok(d.vswitch(&["rm", "adopted"]));
    let links = ok(theirs.exec(&["ip", "-br", "link"]));
    assert!(!links.contains("eth0"), "{links}");
}
