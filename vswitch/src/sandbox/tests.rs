use super::*;
use crate::netlink::Netlink;

/// A pinned namespace under a scratch directory, deleted on drop (also when a test fails).
struct ScratchNs {
    dir: PathBuf,
    ns: PathBuf,
}

impl ScratchNs {
    fn new(tag: &str) -> ScratchNs {
        // SAFETY: geteuid has no preconditions.
        assert_eq!(
            unsafe { libc::geteuid() },
            0,
            "this test needs root (it makes a network namespace)"
        );
        let dir = std::env::temp_dir().join(format!("vsw-sbt-{tag}-{}", std::process::id()));
        let ns = dir.join("ns");
        netns::create(&ns).expect("create netns");
        ScratchNs { dir, ns }
    }
}

impl Drop for ScratchNs {
    fn drop(&mut self) {
        let _ = netns::delete(&self.ns);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn spec(v4: &str, v6: &str) -> PortSpec {
    PortSpec {
        ifname: "eth0".into(),
        mac: "02:42:0a:63:00:02".into(),
        ipv4: Some(v4.parse().expect("v4")),
        ipv6: Some(v6.parse().expect("v6")),
        link_local: Vec::new(),
        mtu: 1450,
    }
}

fn global_addrs(ns: &Path) -> Vec<IpNet> {
    let (_, mut a) = read_link(ns, "eth0").expect("read").expect("eth0 exists");
    a.retain(|n| !matches!(n.addr(), IpAddr::V6(v) if v.segments()[0] & 0xffc0 == 0xfe80));
    a.sort();
    a
}

#[test]
fn configuring_a_link_converges_whatever_it_holds() {
    let s = ScratchNs::new("conv");
    // A TAP-less stand-in for a port: a veth pair inside the namespace.
    netns::run_in(&s.ns, || {
        let me = std::fs::File::open("/proc/thread-self/ns/net").expect("own ns");
        use std::os::unix::io::AsRawFd;
        let mut nl = Netlink::open().expect("open");
        nl.create_veth("eth0", "peer0", me.as_raw_fd())
            .expect("veth");
        nl.set_up("peer0", true).expect("up");
        // What a predecessor left: a stray address, the link already up.
        nl.add_address("eth0", "10.99.0.77/24".parse().expect("net"))
            .expect("stray");
        nl.set_up("eth0", true).expect("up");
    })
    .expect("ns thread");
    let want = spec("10.99.0.2/24", "fd00:99::2/64");
    for _ in 0..2 {
        let w = want.clone();
        netns::run_in(&s.ns, move || configure_link(&w))
            .expect("ns thread")
            .expect("configure");
        let (link, _) = read_link(&s.ns, "eth0").expect("read").expect("eth0");
        assert_eq!(link.mac, Some([2, 0x42, 0x0a, 0x63, 0, 2]));
        assert_eq!(link.mtu, Some(1450));
        assert!(link.up);
        assert_eq!(
            global_addrs(&s.ns),
            vec![
                "10.99.0.2/24".parse::<IpNet>().expect("net"),
                "fd00:99::2/64".parse().expect("net")
            ]
        );
    }
    // A new spec replaces the old addresses.
    let w = spec("10.99.0.3/24", "fd00:99::3/64");
    netns::run_in(&s.ns, move || configure_link(&w))
        .expect("ns thread")
        .expect("configure");
    assert_eq!(
        global_addrs(&s.ns),
        vec![
            "10.99.0.3/24".parse::<IpNet>().expect("net"),
            "fd00:99::3/64".parse().expect("net")
        ]
    );

    // Default routes: set, read back, handed over, removed.
    let gw4: IpAddr = "10.99.0.1".parse().expect("gw");
    let gw6: IpAddr = "fd00:99::1".parse().expect("gw");
    let want = DefaultRoute {
        v4: Some((gw4, "eth0".into())),
        v6: Some((gw6, "eth0".into())),
    };
    set_default_route(&s.ns, &want).expect("routes");
    set_default_route(&s.ns, &want).expect("routes again");
    assert_eq!(read_default_route(&s.ns).expect("read"), want);
    let only6 = DefaultRoute {
        v4: None,
        v6: want.v6.clone(),
    };
    set_default_route(&s.ns, &only6).expect("routes");
    assert_eq!(read_default_route(&s.ns).expect("read"), only6);
    set_default_route(&s.ns, &DefaultRoute::default()).expect("none");
    assert_eq!(
        read_default_route(&s.ns).expect("read"),
        DefaultRoute::default()
    );
    assert!(read_link(&s.ns, "eth9").expect("read").is_none());
    let found = find_link_by_mac(&s.ns, "02:42:0a:63:00:02").expect("by mac");
    assert_eq!(found.map(|l| l.name), Some("eth0".to_string()));
    assert!(find_link_by_mac(&s.ns, "02:42:0a:63:00:99")
        .expect("by mac")
        .is_none());
    // lo came up with the namespace.
    let (lo, _) = read_link(&s.ns, "lo").expect("read").expect("lo");
    assert!(lo.up);
}

#[test]
fn leftovers_of_ours_are_cleared_but_foreign_interfaces_never() {
    let s = ScratchNs::new("stale");
    netns::run_in(&s.ns, || {
        let me = std::fs::File::open("/proc/thread-self/ns/net").expect("own ns");
        use std::os::unix::io::AsRawFd;
        let mut nl = Netlink::open().expect("open");
        let ours = [2, 0x42, 0x0a, 0x63, 0, 5];
        // A runtime's own interface (another MAC) in a handed-over namespace: never deleted.
        nl.create_veth("eth1", "x1", me.as_raw_fd()).expect("veth");
        let t = Instant::now();
        let err = clear_stale_link(&mut nl, "eth1", Some(ours)).expect_err("not ours");
        assert!(err.to_string().contains("not vswitchd's"), "{err}");
        assert!(t.elapsed() >= STALE_LINK_WAIT);
        assert!(nl.link("eth1").expect("get").is_some());
        // A leftover with the endpoint's MAC that never goes away by itself: deleted after
        // the bounded wait.
        nl.create_veth("eth0", "x0", me.as_raw_fd()).expect("veth");
        nl.set_link(
            "eth0",
            &LinkChange {
                mac: Some(ours),
                ..LinkChange::default()
            },
        )
        .expect("mac");
        let t = Instant::now();
        clear_stale_link(&mut nl, "eth0", Some(ours)).expect("cleared");
        assert!(t.elapsed() >= STALE_LINK_WAIT);
        assert!(t.elapsed() < STALE_LINK_WAIT + Duration::from_secs(5));
        assert!(nl.link("eth0").expect("get").is_none());
        // The host side: whatever holds the name goes.
        clear_stale_link(&mut nl, "eth1", None).expect("cleared");
        assert!(nl.link("eth1").expect("get").is_none());
        // Nothing there: no wait at all.
        let t = Instant::now();
        clear_stale_link(&mut nl, "eth0", None).expect("nothing to clear");
        assert!(t.elapsed() < STALE_LINK_WAIT);
    })
    .expect("ns thread");
}
