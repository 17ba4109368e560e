//! Interop of the userspace VXLAN tunnel port with the Linux kernel's `vxlan` device.
//!
//! vtepA (10.200.1.1) runs our side, driven from the test process: a datapath switch for
//! 172.30.0.0/24 with a container TAP in namespace c1 (172.30.0.1) and a tunnel port whose
//! socket is bound in vtepA. vtepB (10.200.1.2) has a kernel `vxlan` device (VNI 4242, port
//! 4789, no learning) holding 172.30.0.2, with a default FDB entry towards vtepA. ARP crosses
//! as a flood to the kernel VTEP, replies come back as unicast VXLAN; pings go both ways.

use std::net::{IpAddr, Ipv4Addr, UdpSocket};
use std::path::PathBuf;
use std::time::Duration;

use vswitch::datapath::Datapath;
use vswitch::overlay::{Tunnel, TunnelConfig};
use vswitch::sandbox::{self, PortSpec};
use vswitch::switch::{PortConfig, SwitchConfig};
use vswitch::wire::MacAddr;
use vswitch_tests::*;

const VNI: u32 = 4242;
const C1_MAC: &str = "02:42:ac:1e:00:01";
const VX0_MAC: &str = "02:00:00:00:42:02";
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

#[test]
fn kernel_vxlan_interop_both_ways() {
    require_root();
    let a = Netns::new("vtepA");
    let b = Netns::new("vtepB");
    let c1 = Netns::new("c1");
    a.link_to(&b, "ul0", "10.200.1.1/24", "ul0", "10.200.1.2/24");
    b.exec_ok(&["ip", "addr", "add", "10.200.1.3/24", "dev", "ul0"]);

    // vtepB: the kernel's VXLAN device.
    let vni = VNI.to_string();
    b.exec_ok(&[
        "ip",
        "link",
        "add",
        "vx0",
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
    b.exec_ok(&["ip", "link", "set", "vx0", "address", VX0_MAC]);
    b.exec_ok(&["ip", "link", "set", "vx0", "mtu", "1450"]);
    b.exec_ok(&["ip", "addr", "add", "172.30.0.2/24", "dev", "vx0"]);
    b.exec_ok(&["ip", "link", "set", "vx0", "up"]);
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

    // vtepA: our tunnel, its socket bound inside vtepA.
    let cfg = TunnelConfig::new(VNI, IpAddr::V4(VTEP_A));
    let (tunnel, tunnel_io) = vswitch::netns::run_in(&ns_path(&a), move || Tunnel::start(cfg))
        .expect("enter vtepA")
        .expect("start tunnel");
    assert_eq!(tunnel.local_addr(), (VTEP_A, 4789).into());

    // The switch: c1's TAP and the tunnel.
    let mut dp = Datapath::start(1).expect("datapath");
    let net = "ovl";
    dp.add_network(
        net,
        SwitchConfig {
            subnets: vec!["172.30.0.0/24".parse().unwrap()],
            ..SwitchConfig::default()
        },
    )
    .expect("add network");
    let spec = PortSpec {
        ifname: "eth0".into(),
        mac: C1_MAC.into(),
        ipv4: Some("172.30.0.1/24".parse().unwrap()),
        ipv6: None,
        mtu: 1450,
    };
    let tap = sandbox::create_port(&ns_path(&c1), &spec, 1).expect("c1 port");
    let c1_mac: MacAddr = C1_MAC.parse().unwrap();
    dp.add_port(
        net,
        PortConfig::container(c1_mac).with_ipv4(Ipv4Addr::new(172, 30, 0, 1)),
        tap.into(),
        None,
    )
    .expect("add c1 port");
    let tport = dp
        .add_port(net, PortConfig::tunnel(), tunnel_io, None)
        .expect("add tunnel port");
    tunnel.add_peer(IpAddr::V4(VTEP_B));
    tunnel.set_remote_mac(VX0_MAC.parse().unwrap(), IpAddr::V4(VTEP_B));

    // Both directions: c1 → kernel VTEP's address, and back.
    assert!(
        pings(&c1, "172.30.0.2"),
        "c1 cannot ping 172.30.0.2 over VXLAN"
    );
    assert!(pings(&b, "172.30.0.1"), "vtepB cannot ping c1 over VXLAN");
    // The kernel learned nothing (nolearning) yet resolved c1: its ARP went out as a flood.
    let neigh = b.exec_ok(&["ip", "neigh", "show", "172.30.0.1", "dev", "vx0"]);
    assert!(neigh.contains(C1_MAC), "vtepB neighbour of c1: {neigh}");
    let s = tunnel.stats();
    assert!(s.tx_datagrams >= 6 && s.rx_frames >= 6, "{s:?}");
    // vx0's own multicasts (IPv6 DAD, MLD) may have arrived before the peer was added and
    // count as unknown VTEP; nothing else was dropped.
    assert_eq!(s.dropped.total(), s.dropped.unknown_vtep, "{s:?}");

    // A stranger's datagram and a known VTEP's datagram for another VNI are dropped.
    send_udp_from(&b, STRANGER, vxlan_datagram(VNI));
    send_udp_from(&b, VTEP_B, vxlan_datagram(VNI + 1));
    assert!(
        wait_until(Duration::from_secs(5), || {
            let d = tunnel.stats().dropped;
            d.unknown_vtep == s.dropped.unknown_vtep + 1 && d.unknown_vni == 1
        }),
        "{:?}",
        tunnel.stats()
    );

    // Tear down: port out of the datapath, then the tunnel stops.
    dp.remove_port(net, tport).expect("remove tunnel port");
    dp.remove_network(net).expect("remove network");
    drop(tunnel);
}
