//! Interop of the userspace VXLAN tunnel with the Linux kernel's `vxlan` device, two overlay
//! networks (VNIs) sharing one tunnel socket.
//!
//! vtepA (10.200.1.1) runs our side, driven from the test process: one [`TunnelHost`] whose
//! socket is bound in vtepA and served by the datapath's worker (as vswitchd runs it), and
//! two switches there, each with a container TAP and a tunnel port. vtepB (10.200.1.2) has two kernel `vxlan` devices (port 4789, no learning):
//!
//! - VNI 4242, flood-and-learn (`attach(.., flood = true)`, `flood_to_tunnel`): vx0 holds
//!   172.30.0.2 with a default FDB entry towards vtepA; c1 (172.30.0.1) resolves it with ARP
//!   flooded to the kernel VTEP, whose reply comes back as unicast VXLAN;
//! - VNI 4243, cluster mode (the defaults): vx1 holds 172.31.0.2 with a static FDB entry and
//!   neighbour for c2 (172.31.0.1) only; our switch knows vx1 as a remote endpoint and answers
//!   c2's ARP itself, so nothing is flooded over the underlay (vx1 receives no multicast).
//!
//! Pings go both ways on both; datagrams from a stranger or for a VNI not attached are dropped.

use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::path::PathBuf;
use std::time::Duration;

use vswitch::datapath::Datapath;
use vswitch::overlay::{TunnelHost, DEFAULT_MTU};
use vswitch::sandbox::{self, PortSpec};
use vswitch::switch::{PortConfig, SwitchConfig};
use vswitch::wire::MacAddr;
use vswitch_tests::*;

const VNI: u32 = 4242;
const VNI2: u32 = 4243;
const C1_MAC: &str = "02:42:ac:1e:00:01";
const C2_MAC: &str = "02:42:ac:1f:00:01";
const VX0_MAC: &str = "02:00:00:00:42:02";
const VX1_MAC: &str = "02:00:00:00:43:02";
const VTEP_A: Ipv4Addr = Ipv4Addr::new(10, 200, 1, 1);
const VTEP_B: Ipv4Addr = Ipv4Addr::new(10, 200, 1, 2);
/// A second address on vtepB that is not a known VTEP.
const STRANGER: Ipv4Addr = Ipv4Addr::new(10, 200, 1, 3);

fn ns_path(ns: &Netns) -> PathBuf {
    PathBuf::from("/run/netns").join(&ns.name)
}

/// A VXLAN datagram (header + broadcast inner frame) for `vni`.
fn vxlan_datagram(vni: u32) -> Vec<u8> {
    let mut d = vec![
        0x08,
        0,
        0,
        0,
        (vni >> 16) as u8,
        (vni >> 8) as u8,
        vni as u8,
        0,
    ];
    d.extend_from_slice(&[0xff; 6]);
    d.extend_from_slice(&[2, 0, 0, 0, 0x66, 0x66]);
    d.extend_from_slice(&[0x88, 0xb5]);
    d.extend_from_slice(&[0u8; 46]);
    d
}

/// Sends `datagram` to vtepA:4789 from `from` inside `ns`.
fn send_udp_from(ns: &Netns, from: Ipv4Addr, datagram: Vec<u8>) {
    vswitch::netns::run_in(&ns_path(ns), move || {
        let s = UdpSocket::bind((from, 0)).expect("bind sender");
        s.send_to(&datagram, (VTEP_A, 4789)).expect("send");
    })
    .expect("enter namespace");
}

fn pings(ns: &Netns, target: &str) -> bool {
    let o = ns.exec(&["ping", "-c", "3", "-W", "2", target]);
    if !o.status.success() {
        eprintln!("ping {target} from {}: {}", ns.name, stdout(&o));
    }
    o.status.success()
}

/// A kernel vxlan device `dev` on vtepB for `vni` holding `addr`.
fn kernel_vxlan(b: &Netns, dev: &str, vni: u32, mac: &str, addr: &str) {
    let vni = vni.to_string();
    b.exec_ok(&[
        "ip",
        "link",
        "add",
        dev,
        "type",
        "vxlan",
        "id",
        &vni,
        "dstport",
        "4789",
        "local",
        "10.200.1.2",
        "nolearning",
    ]);
    b.exec_ok(&["ip", "link", "set", dev, "address", mac]);
    b.exec_ok(&["ip", "link", "set", dev, "mtu", &DEFAULT_MTU.to_string()]);
    b.exec_ok(&["ip", "addr", "add", addr, "dev", dev]);
    b.exec_ok(&["ip", "link", "set", dev, "up"]);
}

/// A container TAP in `ns` on switch `net` of `dp`.
fn container(dp: &Datapath, net: &str, ns: &Netns, mac: &str, addr: Ipv4Addr) {
    let spec = PortSpec {
        ifname: "eth0".into(),
        mac: mac.into(),
        ipv4: Some(format!("{addr}/24").parse().unwrap()),
        ipv6: None,
        link_local: Vec::new(),
        mtu: DEFAULT_MTU,
    };
    let tap = sandbox::create_port(&ns_path(ns), &spec, 1).expect("container port");
    let mac: MacAddr = mac.parse().unwrap();
    dp.add_port(
        net,
        PortConfig::container(mac).with_ipv4(addr),
        tap.into(),
        None,
    )
    .expect("add container port");
}

/// Names of this process's threads.
fn threads_of_this_process() -> Vec<String> {
    std::fs::read_dir("/proc/self/task")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|t| std::fs::read_to_string(t.path().join("comm")).ok())
        .map(|c| c.trim().to_string())
        .collect()
}

/// Frames vtepB's `dev` received.
fn rx_packets(b: &Netns, dev: &str) -> u64 {
    let out = b.exec_ok(&["ip", "-s", "-j", "link", "show", dev]);
    let v: serde_json::Value = serde_json::from_str(&out).expect("ip -j");
    v[0]["stats64"]["rx"]["packets"]
        .as_u64()
        .expect("rx packets")
}

#[test]
fn kernel_vxlan_interop_two_vnis_one_socket() {
    require_root();
    let a = Netns::new("vtepA");
    let b = Netns::new("vtepB");
    let c1 = Netns::new("c1");
    let c2 = Netns::new("c2");
    a.link_to(&b, "ul0", "10.200.1.1/24", "ul0", "10.200.1.2/24");
    b.exec_ok(&["ip", "addr", "add", "10.200.1.3/24", "dev", "ul0"]);

    // vtepB: the kernel's VXLAN devices. vx0 floods to vtepA; vx1 knows only c2, statically.
    kernel_vxlan(&b, "vx0", VNI, VX0_MAC, "172.30.0.2/24");
    b.exec_ok(&[
        "bridge",
        "fdb",
        "append",
        "00:00:00:00:00:00",
        "dev",
        "vx0",
        "dst",
        "10.200.1.1",
    ]);
    kernel_vxlan(&b, "vx1", VNI2, VX1_MAC, "172.31.0.2/24");
    b.exec_ok(&[
        "bridge",
        "fdb",
        "append",
        C2_MAC,
        "dev",
        "vx1",
        "dst",
        "10.200.1.1",
    ]);
    b.exec_ok(&[
        "ip",
        "neigh",
        "replace",
        "172.31.0.1",
        "lladdr",
        C2_MAC,
        "dev",
        "vx1",
        "nud",
        "permanent",
    ]);

    // vtepA: one tunnel socket for both VNIs, bound inside vtepA and served by the
    // datapath's worker (as vswitchd does): no tunnel thread.
    let local = SocketAddr::new(IpAddr::V4(VTEP_A), 4789);
    let dp = Datapath::start(1).expect("datapath");
    let (mut dp, tunnel) = vswitch::netns::run_in(&ns_path(&a), move || {
        let mut dp = dp;
        let t = TunnelHost::start_on(&mut dp, local, 4789);
        (dp, t)
    })
    .expect("enter vtepA");
    let tunnel = tunnel.expect("start tunnel host");
    assert_eq!(tunnel.local_addr(), local);
    assert!(
        !threads_of_this_process().contains(&"vswitch-vxlan".to_string()),
        "a tunnel thread runs: {:?}",
        threads_of_this_process()
    );

    // VNI 4242: flood-and-learn with a static peer, as the kernel's vxlan.
    let net = "ovl";
    dp.add_overlay_network(
        net,
        SwitchConfig {
            subnets: vec!["172.30.0.0/24".parse().unwrap()],
            flood_to_tunnel: true,
            ..SwitchConfig::default()
        },
    )
    .expect("add network");
    container(&dp, net, &c1, C1_MAC, Ipv4Addr::new(172, 30, 0, 1));
    let tport = tunnel
        .attach_port(&dp, net, VNI, true)
        .expect("attach 4242");
    tunnel.add_peer(VNI, IpAddr::V4(VTEP_B));
    tunnel.set_remote_mac(VNI, VX0_MAC.parse().unwrap(), IpAddr::V4(VTEP_B));

    // VNI 4243: cluster mode, vx1 registered as a remote endpoint.
    let net2 = "ovl2";
    dp.add_overlay_network(
        net2,
        SwitchConfig {
            subnets: vec!["172.31.0.0/24".parse().unwrap()],
            ..SwitchConfig::default()
        },
    )
    .expect("add network 2");
    container(&dp, net2, &c2, C2_MAC, Ipv4Addr::new(172, 31, 0, 1));
    let tport2 = tunnel
        .attach_port(&dp, net2, VNI2, false)
        .expect("attach 4243");
    let vx1: MacAddr = VX1_MAC.parse().unwrap();
    tunnel.set_remote_mac(VNI2, vx1, IpAddr::V4(VTEP_B));
    dp.set_remote_endpoint(net2, tport2, vx1, vec!["172.31.0.2".parse().unwrap()])
        .expect("remote endpoint");
    assert_eq!(tunnel.peers(VNI2), vec![IpAddr::V4(VTEP_B)]);

    // Flood-and-learn: both directions.
    assert!(
        pings(&c1, "172.30.0.2"),
        "c1 cannot ping 172.30.0.2 over VXLAN"
    );
    assert!(pings(&b, "172.30.0.1"), "vtepB cannot ping c1 over VXLAN");
    // The kernel learned nothing (nolearning) yet resolved c1: its ARP went out as a flood.
    let neigh = b.exec_ok(&["ip", "neigh", "show", "172.30.0.1", "dev", "vx0"]);
    assert!(neigh.contains(C1_MAC), "vtepB neighbour of c1: {neigh}");
    let s = tunnel.stats(VNI).expect("stats 4242");
    assert!(s.tx_datagrams >= 6 && s.rx_frames >= 6, "{s:?}");
    // vx0's own multicasts (IPv6 DAD, MLD) may have arrived before the peer was added and
    // count as unknown VTEP; nothing else was dropped.
    assert_eq!(s.dropped.total(), s.dropped.unknown_vtep, "{s:?}");

    // Cluster mode: c2's ARP for vx1 is answered by the switch, nothing floods.
    assert!(
        pings(&c2, "172.31.0.2"),
        "c2 cannot ping 172.31.0.2 over VXLAN"
    );
    assert!(pings(&b, "172.31.0.1"), "vtepB cannot ping c2 over VXLAN");
    let neigh = c2.exec_ok(&["ip", "neigh", "show", "172.31.0.2"]);
    assert!(neigh.contains(VX1_MAC), "c2 neighbour of vx1: {neigh}");
    let s2 = tunnel.stats(VNI2).expect("stats 4243");
    assert!(s2.tx_datagrams >= 6 && s2.rx_frames >= 6, "{s2:?}");
    assert_eq!(s2.dropped.total(), 0, "{s2:?}");
    // Only the 6 ICMP frames crossed (c2's ARP, IPv6 DAD/MLD/RS stayed on the host); flood
    // mode carried more (c1's ARP and multicasts).
    assert_eq!((s2.tx_frames, s2.tx_datagrams), (6, 6), "{s2:?}");
    assert_eq!(rx_packets(&b, "vx1"), 6, "something but the pings crossed");
    assert!(rx_packets(&b, "vx0") > 6, "flood mode sent no flood");

    // A stranger's datagram and a known VTEP's datagram for a VNI not attached are dropped.
    let before = tunnel.host_stats();
    send_udp_from(&b, STRANGER, vxlan_datagram(VNI2));
    send_udp_from(&b, VTEP_B, vxlan_datagram(VNI2 + 1));
    assert!(
        wait_until(Duration::from_secs(5), || {
            tunnel.host_stats().unknown_vni == before.unknown_vni + 1
                && tunnel.stats(VNI2).unwrap().dropped.unknown_vtep == 1
        }),
        "{:?} {:?}",
        tunnel.host_stats(),
        tunnel.stats(VNI2)
    );

    // Tear down: ports out of the datapath, then detach and stop.
    dp.remove_port(net, tport).expect("remove tunnel port");
    dp.remove_port(net2, tport2).expect("remove tunnel port 2");
    dp.remove_network(net).expect("remove network");
    dp.remove_network(net2).expect("remove network 2");
    tunnel.detach(VNI).expect("detach");
    tunnel.detach(VNI2).expect("detach 2");
    drop(tunnel);
}
