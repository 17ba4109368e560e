//! Overlay hosts whose cluster store is down, goes away or loses a member (issue 13, found
//! bug 3). Two "hosts" (namespaces each running vswitchd) and etcd members share one L2
//! segment (a Linux bridge in a LAN namespace); everything lives in namespaces the test
//! makes. Needs root.

use std::process::Stdio;
use std::time::{Duration, Instant};
use vswitch_tests::*;

/// Short lease, so that a lease lost anywhere in a test would show as vanished records.
const TTL: Duration = Duration::from_secs(4);
/// Bound on the daemons reaching a store that just came up: the longest retry pause
/// (`vswitch::cluster::RECONNECT_MAX`) plus the connection itself.
const REACH_WITHIN: Duration = Duration::from_secs(15);
const HOST_A: &str = "10.40.0.1";
const HOST_B: &str = "10.40.0.2";

/// The shared segment.
fn lan(tag: &str) -> Netns {
    let lan = Netns::new(tag);
    lan.exec_ok(&["ip", "link", "add", "br0", "type", "bridge"]);
    lan.exec_ok(&["ip", "link", "set", "br0", "up"]);
    lan
}

/// A namespace on the segment with `ip`/24 on its eth0.
fn member(lan: &Netns, tag: &str, ip: &str, port: &str) -> Netns {
    let ns = Netns::new(tag);
    lan.link_to(&ns, port, "192.0.2.254/32", "eth0", &format!("{ip}/24"));
    lan.exec_ok(&["ip", "addr", "flush", "dev", port]);
    lan.exec_ok(&["ip", "link", "set", port, "master", "br0"]);
    ns
}

fn host(lan: &Netns, tag: &str, ip: &str, port: &str, store: &str) -> Daemon {
    let ttl = TTL.as_secs().to_string();
    Daemon::start_in(
        member(lan, tag, ip, port),
        &[
            "--cluster-store",
            store,
            "--cluster-advertise",
            ip,
            "--cluster-store-ttl",
            &ttl,
        ],
    )
}

fn store_state(d: &Daemon) -> String {
    d.request("GET", "/info", None).json()["ClusterStoreStatus"]["State"]
        .as_str()
        .unwrap_or("")
        .to_string()
}

fn has_network(d: &Daemon, name: &str) -> bool {
    stdout(&d.vswitch(&["network", "ls", "--format", "{{.Name}}"]))
        .lines()
        .any(|l| l == name)
}

fn has_sandbox(d: &Daemon, name: &str) -> bool {
    stdout(&d.vswitch(&["ps", "-a", "--format", "{{.Names}}"]))
        .lines()
        .any(|l| l == name)
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

/// `getent hosts NAME` through the sandbox's embedded DNS (fed by the store's records).
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

/// An overlay `ov`, `c1` on a and `c2` on b pinging each other; returns c2's address.
fn overlay_pair(a: &Daemon, b: &Daemon) -> String {
    ok(a.vswitch(&[
        "network",
        "create",
        "-d",
        "overlay",
        "--subnet",
        "172.16.40.0/24",
        "ov",
    ]));
    assert!(
        wait_until(Duration::from_secs(10), || has_network(b, "ov")),
        "ov did not reach b; log:\n{}",
        b.log()
    );
    a.run_sandbox("c1", &["--net", "ov"]);
    b.run_sandbox("c2", &["--net", "ov"]);
    let ip2 = ipv4(b, "c2");
    assert!(
        wait_until(Duration::from_secs(10), || a.pings("c1", &ip2)),
        "c1 cannot ping c2; log:\n{}",
        a.log()
    );
    ip2
}

/// A join after trouble: `name` on `on`, reachable from c1 on `from` (bounded wait).
fn new_join_reachable(from: &Daemon, on: &Daemon, name: &str) {
    on.run_sandbox(name, &["--net", "ov"]);
    let ip = ipv4(on, name);
    assert!(
        wait_until(Duration::from_secs(10), || from.pings("c1", &ip)),
        "c1 cannot reach the new {name} ({ip}); log:\n{}",
        from.log()
    );
    assert!(
        wait_until(Duration::from_secs(5), || resolves(from, "c1", name)
            .is_some_and(|got| got == ip)),
        "{name} not resolvable from c1"
    );
}

#[test]
fn daemon_starts_before_etcd_and_rides_out_a_store_outage() {
    require_root();
    let lan = lan("coa");
    let etcd_ns = member(&lan, "coae", "10.40.0.9", "p-etcd");
    let store = "etcd://10.40.0.9:2379";

    // Nothing listens at the store yet: both daemons start and answer at once.
    let t0 = Instant::now();
    let mut a = host(&lan, "coa1", HOST_A, "p-a", store);
    let b = host(&lan, "coa2", HOST_B, "p-b", store);
    assert!(t0.elapsed() < Duration::from_secs(10), "{:?}", t0.elapsed());

    // Local networks work at once.
    ok(a.vswitch(&["network", "create", "front"]));
    a.run_sandbox("l1", &["--net", "front"]);
    a.run_sandbox("l2", &["--net", "front"]);
    let l2 = ipv4(&a, "l2");
    assert!(
        wait_until(Duration::from_secs(5), || a.pings("l1", &l2)),
        "bridge network while the store is down; log:\n{}",
        a.log()
    );

    // The store's state is visible, and retries are logged with their backoff.
    assert!(wait_until(Duration::from_secs(10), || {
        let info = a.request("GET", "/info", None).json();
        info["ClusterStoreStatus"]["FailedAttempts"].as_u64() >= Some(2)
    }));
    let info = a.request("GET", "/info", None).json();
    assert_eq!(info["ClusterStoreStatus"]["State"], "connecting", "{info}");
    assert_eq!(info["ClusterStore"], store);
    let log = a.log();
    assert!(
        log.contains("attempt 1 failed") && log.contains("retrying in"),
        "{log}"
    );

    // Overlay operations fail cleanly (503, Docker's style), leaving nothing behind.
    let r = a.request(
        "POST",
        "/networks/create",
        Some(r#"{"Name":"ov","Driver":"overlay"}"#),
    );
    assert_eq!(r.status, 503, "{}", r.body);
    assert!(
        r.body.contains("cluster store is not available"),
        "{}",
        r.body
    );
    let err = fails(a.vswitch(&["network", "create", "-d", "overlay", "ov"]));
    assert!(err.contains("cluster store is not available"), "{err}");
    assert!(!has_network(&a, "ov"));

    // etcd comes up: both hosts reach it within the retry bound, overlays work.
    let mut etcd = Etcd::start(&etcd_ns, "10.40.0.9");
    let t1 = Instant::now();
    for d in [&a, &b] {
        assert!(
            wait_until(REACH_WITHIN, || store_state(d) == "connected"),
            "store not reached within {REACH_WITHIN:?}; log:\n{}",
            d.log()
        );
    }
    eprintln!("both hosts joined {:?} after etcd started", t1.elapsed());
    let ip2 = overlay_pair(&a, &b);

    // etcd goes away entirely: the daemons live on, running overlays keep working, new
    // overlay joins fail cleanly, local networks still work.
    etcd.kill();
    assert!(a.pings("c1", &ip2));
    assert!(
        wait_until(Duration::from_secs(10), || store_state(&b) == "unavailable"),
        "/info does not show the outage"
    );
    let err = fails(b.vswitch(&[
        "run", "-d", "--name", "c3", "--net", "ov", "--", "sleep", "infinity",
    ]));
    assert!(err.contains("cluster store is not available"), "{err}");
    assert!(!has_sandbox(&b, "c3"), "half-made sandbox left");
    a.run_sandbox("l3", &["--net", "front"]);
    // Longer than the lease TTL: the data path needs no store.
    let t2 = Instant::now();
    while t2.elapsed() < TTL + Duration::from_secs(1) {
        assert!(a.pings("c1", &ip2), "c1 lost c2 while etcd was down");
    }

    // a crashes and restarts while the store is still down: local networks come back at
    // once, c1 is re-attached and waits to be published.
    a.kill(libc::SIGKILL);
    a.start_again();
    let l1 = ipv4(&a, "l1");
    assert!(
        wait_until(Duration::from_secs(10), || a.pings("l2", &l1)),
        "bridge network after a restart without the store; log:\n{}",
        a.log()
    );
    let info = a.request("GET", "/info", None).json();
    assert_eq!(info["ClusterStoreStatus"]["State"], "connecting", "{info}");
    assert_eq!(info["ClusterStoreStatus"]["Unpublished"], 1, "{info}");
    let ip1 = ipv4(&a, "c1");

    // etcd returns: every host's records are there again (names resolve across hosts,
    // c1 is published under a's new lease), and a new container joins.
    etcd.restart();
    for d in [&a, &b] {
        assert!(
            wait_until(REACH_WITHIN, || store_state(d) == "connected"),
            "store not reached again; log:\n{}",
            d.log()
        );
    }
    assert!(
        wait_until(Duration::from_secs(10), || resolves(&a, "c1", "c2")
            .is_some_and(|ip| ip == ip2)),
        "c2's record is gone after the outage; log:\n{}",
        b.log()
    );
    assert!(
        wait_until(Duration::from_secs(10), || b.pings("c2", &ip1)),
        "c1 not reachable after a's restart; log:\n{}",
        a.log()
    );
    assert_eq!(resolves(&b, "c2", "c1").as_deref(), Some(ip1.as_str()));
    new_join_reachable(&a, &b, "c3");
    assert!(a.pings("c1", &ip2));
    let info = a.request("GET", "/info", None).json();
    assert_eq!(info["ClusterStoreStatus"]["Unpublished"], 0, "{info}");
    // a's old lease expires (it crashed): c1's record, now under the new lease, stays.
    let t3 = Instant::now();
    while t3.elapsed() < TTL + Duration::from_secs(1) {
        assert!(b.pings("c2", &ip1), "c1 vanished with a's old lease");
    }
    assert_eq!(resolves(&b, "c2", "c1").as_deref(), Some(ip1.as_str()));
    drop((a, b, etcd, etcd_ns, lan));
}

/// Counts of `ping -q` output: (transmitted, received).
fn ping_counts(out: &str) -> (u32, u32) {
    let line = out
        .lines()
        .find(|l| l.contains("packets transmitted"))
        .unwrap_or_else(|| panic!("no ping summary in {out:?}"));
    let nums: Vec<u32> = line
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|w| w.parse().ok())
        .collect();
    (nums[0], nums[1])
}

#[test]
fn etcd_member_loss_disturbs_neither_running_overlays_nor_new_joins() {
    require_root();
    let lan = lan("com");
    let ips = ["10.40.0.11", "10.40.0.12", "10.40.0.13"];
    let nss: Vec<Netns> = ips
        .iter()
        .enumerate()
        .map(|(i, ip)| member(&lan, &format!("come{i}"), ip, &format!("p-e{i}")))
        .collect();
    let members: Vec<(&Netns, &str)> = nss.iter().zip(ips).collect();
    let mut cluster = EtcdCluster::start(&members);
    // The leader listed first: its loss is both a new election and the loss of the
    // member every host's requests go to.
    let mut leader = None;
    assert!(
        wait_until(Duration::from_secs(10), || {
            leader = cluster.leader();
            leader.is_some()
        }),
        "no leader; logs:\n{}",
        cluster.logs()
    );
    let leader = leader.unwrap();
    let store = cluster.store_url_first(leader);
    assert!(store.split(',').count() == 3, "{store}");
    let a = host(&lan, "com1", HOST_A, "p-a", &store);
    let b = host(&lan, "com2", HOST_B, "p-b", &store);
    for d in [&a, &b] {
        assert!(
            wait_until(REACH_WITHIN, || store_state(d) == "connected"),
            "store not reached; log:\n{}\n{}",
            d.log(),
            cluster.logs()
        );
    }
    let ip2 = overlay_pair(&a, &b);

    // c1 pings c2 (5 per second) across the member's loss and two lease TTLs.
    let count = 60;
    let pinger = a
        .in_sandbox_cmd(
            "c1",
            &[
                "ping",
                "-q",
                "-i",
                "0.2",
                "-W",
                "1",
                "-c",
                &count.to_string(),
                &ip2,
            ],
        )
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("ping");
    // A second of pings before the loss.
    std::thread::sleep(Duration::from_secs(1));
    cluster.members[leader].kill();
    let killed = Instant::now();

    // A new join right after the loss, on either host.
    new_join_reachable(&a, &b, "c3");
    eprintln!(
        "new join reachable {:?} after the member died",
        killed.elapsed()
    );
    b.run_sandbox("c4", &["--net", "ov"]);
    let ip4 = ipv4(&b, "c4");
    assert!(wait_until(Duration::from_secs(10), || a.pings("c1", &ip4)));

    let out = pinger.wait_with_output().expect("ping output");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let (sent, got) = ping_counts(&text);
    eprintln!("ping across the member loss: {got}/{sent} answered");
    assert_eq!(sent, count);
    assert!(
        got + 3 >= sent,
        "{} of {sent} pings lost across the member loss:\n{text}\nlog a:\n{}",
        sent - got,
        a.log()
    );
    // Past two TTLs since the loss: the leases were kept alive through the others.
    assert!(killed.elapsed() > 2 * TTL, "{:?}", killed.elapsed());
    assert_eq!(resolves(&a, "c1", "c2").as_deref(), Some(ip2.as_str()));
    assert_eq!(resolves(&b, "c2", "c1"), Some(ipv4(&a, "c1")));
    let log = a.log() + &b.log();
    assert!(log.contains("switching to"), "no failover logged:\n{log}");
    for d in [&a, &b] {
        assert_eq!(store_state(d), "connected");
    }
    drop((a, b, cluster, nss, lan));
}
