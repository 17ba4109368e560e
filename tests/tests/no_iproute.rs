//! vswitchd needs no iproute2: every daemon of the suite runs with a PATH that has no `ip`
//! (see `vswitch_tests::no_iproute`), and this file checks that it really is so and that the
//! link, address and route work it used `ip` for still happens: `run`, connect/disconnect with
//! default-route handover, IPv6, veth ports, restart over leftovers of a predecessor.

use std::time::Duration;
use vswitch_tests::*;

/// PATH of a running process, from /proc.
fn path_of(pid: u32) -> String {
    let env = std::fs::read(format!("/proc/{pid}/environ")).expect("environ");
    env.split(|b| *b == 0)
        .find_map(|kv| kv.strip_prefix(b"PATH="))
        .map(|v| String::from_utf8_lossy(v).into_owned())
        .expect("daemon has a PATH")
}

fn assert_no_ip_on_path(d: &Daemon) {
    let path = path_of(d.pid());
    let dirs: Vec<&str> = path.split(':').collect();
    for dir in &dirs {
        assert!(
            !std::path::Path::new(dir).join("ip").exists(),
            "`ip` reachable in the daemon's PATH {path}"
        );
    }
    // Programs users run in sandboxes are still there.
    for prog in ["sleep", "python3"] {
        assert!(
            dirs.iter()
                .any(|dir| std::path::Path::new(dir).join(prog).exists()),
            "{prog} missing from the daemon's PATH {path}"
        );
    }
}

/// `ip -j -6 route show default` inside a sandbox as (gateway, dev).
fn default_route6(d: &Daemon, name: &str) -> Option<(String, String)> {
    let v = d.ip_json(name, &["-6", "route", "show", "default"]);
    v.as_array().and_then(|a| a.first()).map(|r| {
        (
            r["gateway"].as_str().unwrap_or("").to_string(),
            r["dev"].as_str().unwrap_or("").to_string(),
        )
    })
}

/// Every address (with prefix) of an interface inside a sandbox, link-local excepted.
fn addrs_of(d: &Daemon, name: &str, ifname: &str) -> Vec<String> {
    let v = d.ip_json(name, &["addr", "show", "dev", ifname]);
    let mut out: Vec<String> = v
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|i| i["addr_info"].as_array().cloned().unwrap_or_default())
        .filter(|a| a["scope"] != "link")
        .map(|a| format!("{}/{}", a["local"].as_str().unwrap_or(""), a["prefixlen"]))
        .collect();
    out.sort();
    out
}

#[test]
fn daemon_without_iproute2_runs_connects_and_restarts() {
    let mut d = Daemon::start("nip");
    assert_no_ip_on_path(&d);

    // run: eth0 with its address, MAC, MTU, up; lo up; default route.
    d.run_sandbox("a", &[]);
    assert_eq!(d.ipv4_of("a", "eth0"), vec!["172.17.0.2/16"]);
    let l = d.ip_json("a", &["link", "show", "dev", "eth0"]);
    assert_eq!(l[0]["address"], "02:42:ac:11:00:02");
    assert_eq!(l[0]["mtu"], 1500);
    assert!(l[0]["flags"].to_string().contains("\"UP\""), "{l}");
    let lo = d.ip_json("a", &["link", "show", "dev", "lo"]);
    assert!(lo[0]["flags"].to_string().contains("\"UP\""), "{lo}");
    let b4 = d.ip_json("a", &["-4", "addr", "show", "dev", "eth0"]);
    assert_eq!(b4[0]["addr_info"][0]["broadcast"], "172.17.255.255");
    assert_eq!(
        d.default_route("a"),
        Some(("172.17.0.1".into(), "eth0".into()))
    );
    assert!(d.pings("a", "172.17.0.1"));

    // connect a dual-stack network: eth1 with both addresses (IPv6 usable at once: no DAD),
    // then disconnect bridge: both default routes hand over to eth1.
    ok(d.vswitch(&[
        "network",
        "create",
        "--ipv6",
        "--subnet",
        "10.91.0.0/24",
        "--subnet",
        "fd00:91::/64",
        "--opt",
        "com.docker.network.driver.mtu=1400",
        "dual",
    ]));
    ok(d.vswitch(&["network", "connect", "dual", "a"]));
    assert_eq!(
        addrs_of(&d, "a", "eth1"),
        vec!["10.91.0.2/24".to_string(), "fd00:91::2/64".to_string()]
    );
    let l = d.ip_json("a", &["link", "show", "dev", "eth1"]);
    assert_eq!(l[0]["mtu"], 1400);
    let v6 = d.ip_json("a", &["-6", "addr", "show", "dev", "eth1", "tentative"]);
    let tentative = v6
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|i| i["addr_info"].as_array().cloned().unwrap_or_default())
        .filter(|a| a["scope"] == "global")
        .count();
    assert_eq!(tentative, 0, "tentative (DAD) address: {v6}");
    // A dual-stack network wins the default route (as in Docker); disconnecting it hands
    // IPv4 back to eth0 and leaves no IPv6 default.
    assert_eq!(
        d.default_route("a"),
        Some(("10.91.0.1".into(), "eth1".into()))
    );
    assert_eq!(
        default_route6(&d, "a"),
        Some(("fd00:91::1".into(), "eth1".into()))
    );
    assert!(d.pings("a", "10.91.0.1"));
    assert!(d.pings("a", "fd00:91::1"));
    ok(d.vswitch(&["network", "disconnect", "dual", "a"]));
    assert_eq!(
        d.default_route("a"),
        Some(("172.17.0.1".into(), "eth0".into()))
    );
    assert_eq!(default_route6(&d, "a"), None);
    // Reconnect (eth2), then drop bridge: eth0 goes, the routes stay on eth2.
    ok(d.vswitch(&["network", "connect", "dual", "a"]));
    ok(d.vswitch(&["network", "disconnect", "bridge", "a"]));
    assert!(!d.links_of("a").contains(&"eth0".to_string()));
    assert_eq!(
        d.default_route("a"),
        Some(("10.91.0.1".into(), "eth2".into()))
    );
    assert_eq!(
        default_route6(&d, "a"),
        Some(("fd00:91::1".into(), "eth2".into()))
    );

    // veth port kind: pair made over netlink, peer straight in the sandbox.
    ok(d.vswitch(&[
        "network",
        "create",
        "--subnet",
        "10.92.0.0/24",
        "-o",
        "io.vswitch.network.port_kind=veth",
        "vnet",
    ]));
    d.run_sandbox("v1", &["--net", "vnet"]);
    d.run_sandbox("v2", &["--net", "vnet"]);
    let l = d.ip_json("v1", &["-d", "link", "show", "dev", "eth0"]);
    assert_eq!(l[0]["linkinfo"]["info_kind"], "veth");
    assert_eq!(d.ipv4_of("v2", "eth0"), vec!["10.92.0.3/24"]);
    assert!(d.pings("v1", "10.92.0.3"));
    assert!(d.pings("v2", "10.92.0.1"));

    // Restart over a predecessor's leftovers: a persistent TAP holding the bridge's host
    // interface name with a stray address, and one with the endpoint's MAC as a sandbox's
    // eth2. Restore must delete them and converge.
    d.run_sandbox("b", &["--net", "dual"]);
    let host_if = ok(d.ns.exec(&["ip", "-br", "link"]))
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .find(|n| n.starts_with("br-"))
        .expect("a br- host interface")
        .to_string();
    let before = (addrs_of(&d, "a", "eth2"), default_route6(&d, "a"));
    let a_key = d.sandbox_key("a");
    let a_mac = d.ip_json("a", &["link", "show", "dev", "eth2"])[0]["address"]
        .as_str()
        .expect("MAC")
        .to_string();
    d.kill(libc::SIGKILL);
    assert!(
        wait_until(Duration::from_secs(10), || !ok(d
            .ns
            .exec(&["ip", "-br", "link"]))
        .contains(&host_if)),
        "host interface outlived the daemon"
    );
    d.ns.exec_ok(&["ip", "tuntap", "add", "dev", &host_if, "mode", "tap"]);
    d.ns.exec_ok(&["ip", "addr", "add", "10.91.0.77/24", "dev", &host_if]);
    let a_tap = |argv: &[&str]| {
        ok(run(std::process::Command::new("nsenter")
            .arg(format!("--net={}", a_key.display()))
            .arg("--")
            .args(argv)))
    };
    a_tap(&["ip", "tuntap", "add", "dev", "eth2", "mode", "tap"]);
    a_tap(&["ip", "link", "set", "dev", "eth2", "address", &a_mac]);
    a_tap(&["ip", "addr", "add", "10.91.0.99/24", "dev", "eth2"]);
    d.start_again();
    assert_no_ip_on_path(&d);
    assert_eq!((addrs_of(&d, "a", "eth2"), default_route6(&d, "a")), before);
    let host = ok(d.ns.exec(&["ip", "-br", "addr", "show", "dev", &host_if]));
    assert!(host.contains("10.91.0.1/24"), "{host}");
    assert!(!host.contains("10.91.0.77"), "stray address kept: {host}");
    assert!(wait_until(Duration::from_secs(10), || d.pings("a", "10.91.0.3")));
    assert!(d.pings("b", "10.91.0.1"));
    assert!(wait_until(Duration::from_secs(10), || d.pings("v1", "10.92.0.3")));
    // A new sandbox after the restart is plumbed too.
    d.run_sandbox("c", &["--net", "dual"]);
    assert!(d.pings("c", "10.91.0.2"));
}
