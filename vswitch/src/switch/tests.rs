use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use super::*;
use crate::wire::testutil::{arp_frame, ip_frame, udp_datagram, v4, v6};
use crate::wire::{ArpRepr, EthernetFrame, IpProtocol, MacAddr};

const GW_MAC: MacAddr = MacAddr([0x02, 0x00, 0x00, 0x00, 0x00, 0x01]);

fn ip4(s: &str) -> Ipv4Addr {
    s.parse().expect("ipv4")
}

fn ip6(s: &str) -> Ipv6Addr {
    s.parse().expect("ipv6")
}

fn cmac(last: u8) -> MacAddr {
    MacAddr::from_ipv4(Ipv4Addr::new(172, 18, 0, last))
}

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

/// A network 172.18.0.0/16 + fd00::/64: host port (gateway .1, fd00::1) and three containers
/// .2 .3 .4 (fd00::2 …).
struct Net {
    sw: Switch,
    host: PortId,
    c: [PortId; 3],
    out: Decisions,
}

impl Net {
    fn new(config: SwitchConfig) -> Net {
        let mut sw = Switch::new(SwitchConfig {
            subnets: vec![
                "172.18.0.0/16".parse().expect("net"),
                "fd00::/64".parse().expect("net"),
            ],
            ..config
        });
        let host = sw
            .add_port(
                PortConfig::host(GW_MAC)
                    .with_ipv4(ip4("172.18.0.1"))
                    .with_ipv6(ip6("fd00::1")),
            )
            .expect("host");
        let mut c = [PortId(0); 3];
        for (i, id) in c.iter_mut().enumerate() {
            let n = i as u8 + 2;
            *id = sw
                .add_port(
                    PortConfig::container(cmac(n))
                        .with_ipv4(Ipv4Addr::new(172, 18, 0, n))
                        .with_ipv6(ip6(&format!("fd00::{n}"))),
                )
                .expect("container");
        }
        Net {
            sw,
            host,
            c,
            out: Decisions::default(),
        }
    }

    fn default() -> Net {
        Net::new(SwitchConfig::default())
    }

    /// Processes one frame; returns its verdict and the ports it goes to.
    fn send(&mut self, port: PortId, frame: &[u8], now: Duration) -> (Verdict, Vec<PortId>) {
        self.out.clear();
        let v = self.sw.process(port, frame, now, &mut self.out);
        let mut ports: Vec<PortId> = self.out.tx().iter().map(|t| t.port).collect();
        ports.sort();
        (v, ports)
    }
}

fn udp4(src_mac: MacAddr, dst_mac: MacAddr, src: &str, dst: &str) -> Vec<u8> {
    let ph = v4(src, dst);
    ip_frame(
        src_mac,
        dst_mac,
        None,
        ph,
        IpProtocol::UDP,
        &[],
        &udp_datagram(&ph, (1000, 2000), b"hello"),
    )
}

fn udp6(src_mac: MacAddr, dst_mac: MacAddr, src: &str, dst: &str) -> Vec<u8> {
    let ph = v6(src, dst);
    ip_frame(
        src_mac,
        dst_mac,
        None,
        ph,
        IpProtocol::UDP,
        &[],
        &udp_datagram(&ph, (1000, 2000), b"hello"),
    )
}

fn raw(src: MacAddr, dst: MacAddr) -> Vec<u8> {
    let mut f = vec![0u8; 60];
    f[..6].copy_from_slice(&dst.0);
    f[6..12].copy_from_slice(&src.0);
    f[12..14].copy_from_slice(&[0x88, 0xb5]);
    f
}

#[test]
fn learning_then_unicast() {
    let mut n = Net::default();
    let [a, b, c] = n.c;
    // a → b unknown: flooded to everyone else.
    let (v, ports) = n.send(
        a,
        &udp4(cmac(2), cmac(3), "172.18.0.2", "172.18.0.3"),
        secs(1),
    );
    assert_eq!(v, Verdict::Flood { copies: 3 });
    assert_eq!(ports, vec![n.host, b, c]);
    // b → a: a was learned, unicast.
    let (v, ports) = n.send(
        b,
        &udp4(cmac(3), cmac(2), "172.18.0.3", "172.18.0.2"),
        secs(2),
    );
    assert_eq!((v, ports), (Verdict::Forward(a), vec![a]));
    // a → b: now known too.
    let (v, _) = n.send(
        a,
        &udp4(cmac(2), cmac(3), "172.18.0.2", "172.18.0.3"),
        secs(3),
    );
    assert_eq!(v, Verdict::Forward(b));
    assert_eq!(n.sw.counters().fdb_learned, 2);
    assert_eq!(n.sw.counters().unicast, 2);
    assert_eq!(n.sw.counters().flooded, 1);
}

#[test]
fn ageing_at_300_s() {
    let mut n = Net::default();
    let [a, b, _] = n.c;
    n.send(a, &raw(cmac(2), MacAddr::BROADCAST), secs(10));
    let to_a = raw(cmac(3), cmac(2));
    assert_eq!(n.send(b, &to_a, secs(309)).0, Verdict::Forward(a));
    assert_eq!(n.sw.fdb().get(&cmac(2), 309_999), Some(a));
    // 300 s after the last frame from a, the entry is gone: flood again.
    assert_eq!(n.send(b, &to_a, secs(310)).0, Verdict::Flood { copies: 3 });
    assert_eq!(n.sw.fdb().get(&cmac(2), 310_000), None);
}

#[test]
fn fdb_cap_limits_learning_but_known_flows_work() {
    let mut n = Net::new(SwitchConfig {
        fdb_cap: 2,
        ..SwitchConfig::default()
    });
    let [a, b, c] = n.c;
    n.send(a, &raw(cmac(2), MacAddr::BROADCAST), secs(1));
    n.send(b, &raw(cmac(3), MacAddr::BROADCAST), secs(1));
    n.send(c, &raw(cmac(4), MacAddr::BROADCAST), secs(1));
    // The host port sends from many MACs (a host routes for others): none learned.
    for i in 0..50u8 {
        n.send(
            n.host,
            &raw(MacAddr([2, 9, 9, 9, 9, i]), MacAddr::BROADCAST),
            secs(2),
        );
    }
    assert_eq!(n.sw.fdb().len(), 2);
    assert_eq!(n.sw.counters().fdb_full, 51);
    // Known MACs keep working and refreshing.
    assert_eq!(
        n.send(c, &raw(cmac(4), cmac(2)), secs(200)).0,
        Verdict::Forward(a)
    );
    assert_eq!(
        n.send(a, &raw(cmac(2), cmac(3)), secs(250)).0,
        Verdict::Forward(b)
    );
    // c's MAC was never learned: frames to it are flooded.
    assert_eq!(
        n.send(a, &raw(cmac(2), cmac(4)), secs(250)).0,
        Verdict::Flood { copies: 3 }
    );
    // Past b's ageing, a sweep makes room for c.
    n.send(c, &raw(cmac(4), MacAddr::BROADCAST), secs(302));
    assert_eq!(n.sw.fdb().len(), 2);
    assert_eq!(
        n.send(a, &raw(cmac(2), cmac(4)), secs(303)).0,
        Verdict::Forward(c)
    );
}

#[test]
fn mac_move_relearned() {
    let mut n = Net::new(SwitchConfig {
        anti_spoofing: false,
        ..SwitchConfig::default()
    });
    let [a, b, c] = n.c;
    n.send(a, &raw(cmac(2), MacAddr::BROADCAST), secs(1));
    assert_eq!(
        n.send(c, &raw(cmac(4), cmac(2)), secs(1)).0,
        Verdict::Forward(a)
    );
    n.send(b, &raw(cmac(2), MacAddr::BROADCAST), secs(2));
    assert_eq!(n.sw.counters().fdb_moved, 1);
    assert_eq!(
        n.send(c, &raw(cmac(4), cmac(2)), secs(2)).0,
        Verdict::Forward(b)
    );
}

#[test]
fn flood_set_broadcast_multicast_unknown() {
    let mut n = Net::default();
    let [a, b, c] = n.c;
    for dst in [
        MacAddr::BROADCAST,
        MacAddr([0x01, 0, 0x5e, 0, 0, 0xfb]),
        MacAddr([2, 1, 1, 1, 1, 1]),
    ] {
        let (v, ports) = n.send(b, &raw(cmac(3), dst), secs(1));
        assert_eq!(v, Verdict::Flood { copies: 3 });
        assert_eq!(ports, vec![n.host, a, c], "all but the input port");
        assert!(n.out.tx().iter().all(|t| t.frame == FrameRef::Input(0)));
    }
}

#[test]
fn frame_to_input_port_dropped() {
    let mut n = Net::new(SwitchConfig {
        anti_spoofing: false,
        ..SwitchConfig::default()
    });
    let a = n.c[0];
    n.send(a, &raw(cmac(2), MacAddr::BROADCAST), secs(1));
    n.send(
        a,
        &raw(MacAddr([2, 7, 7, 7, 7, 7]), MacAddr::BROADCAST),
        secs(1),
    );
    let (v, ports) = n.send(a, &raw(cmac(2), MacAddr([2, 7, 7, 7, 7, 7])), secs(1));
    assert_eq!((v, ports), (Verdict::Drop(DropReason::SamePort), vec![]));
    assert_eq!(n.sw.counters().drop_same_port, 1);
}

#[test]
fn invalid_sources_and_reserved_groups_dropped() {
    let mut n = Net::default();
    let h = n.host;
    for src in [
        MacAddr::BROADCAST,
        MacAddr([0x01, 0, 0x5e, 0, 0, 1]),
        MacAddr([0x33, 0x33, 0, 0, 0, 1]),
        MacAddr::ZERO,
    ] {
        let (v, ports) = n.send(h, &raw(src, MacAddr::BROADCAST), secs(1));
        assert_eq!(
            (v, ports),
            (Verdict::Drop(DropReason::InvalidSourceMac), vec![])
        );
    }
    assert_eq!(n.sw.counters().drop_invalid_source_mac, 4);
    assert!(n.sw.fdb().is_empty(), "nothing learned from them");
    let stp = MacAddr([0x01, 0x80, 0xc2, 0, 0, 0]);
    assert_eq!(
        n.send(h, &raw(GW_MAC, stp), secs(1)).0,
        Verdict::Drop(DropReason::LinkLocalGroup)
    );
}

#[test]
fn malformed_and_unknown_port() {
    let mut n = Net::default();
    let a = n.c[0];
    assert_eq!(
        n.send(a, &[0u8; 13], secs(1)).0,
        Verdict::Drop(DropReason::Malformed)
    );
    let mut bad_ip = udp4(cmac(2), MacAddr::BROADCAST, "172.18.0.2", "172.18.0.3");
    bad_ip[14] = 0x45 + 0x10; // version 5
    assert_eq!(
        n.send(a, &bad_ip, secs(1)).0,
        Verdict::Drop(DropReason::Malformed)
    );
    let short_arp = &arp_frame(
        cmac(2),
        MacAddr::BROADCAST,
        &ArpRepr::request(cmac(2), ip4("172.18.0.2"), ip4("172.18.0.9")),
    )[..40];
    assert_eq!(
        n.send(a, short_arp, secs(1)).0,
        Verdict::Drop(DropReason::Malformed)
    );
    assert_eq!(
        n.send(PortId(99), &raw(cmac(2), MacAddr::BROADCAST), secs(1))
            .0,
        Verdict::Drop(DropReason::UnknownPort)
    );
    assert_eq!(n.sw.counters().drop_malformed, 3);
    assert_eq!(n.sw.counters().total_drops(), 4);
}

#[test]
fn arp_request_for_container_answered_with_exact_bytes() {
    let mut n = Net::default();
    let a = n.c[0];
    let req = ArpRepr::request(cmac(2), ip4("172.18.0.2"), ip4("172.18.0.3"));
    let (v, ports) = n.send(a, &arp_frame(cmac(2), MacAddr::BROADCAST, &req), secs(1));
    assert_eq!(
        (v, ports),
        (Verdict::ArpReply, vec![a]),
        "reply out of the input port, no flood"
    );
    assert_eq!(n.out.tx()[0].frame, FrameRef::Reply(0));
    #[rustfmt::skip]
    let want: [u8; 42] = [
        0x02, 0x42, 172, 18, 0, 2,   // to the asker
        0x02, 0x42, 172, 18, 0, 3,   // from the owner
        0x08, 0x06,
        0x00, 0x01, 0x08, 0x00, 6, 4, 0x00, 0x02,
        0x02, 0x42, 172, 18, 0, 3, 172, 18, 0, 3,
        0x02, 0x42, 172, 18, 0, 2, 172, 18, 0, 2,
    ];
    assert_eq!(n.out.reply(0), &want[..]);
    let tx = n.out.tx()[0];
    assert_eq!(n.out.bytes(&tx, |_| &[]), &want[..]);
    // Cross-check with etherparse.
    let p = etherparse::SlicedPacket::from_ethernet(n.out.reply(0)).expect("etherparse");
    match p.net {
        Some(etherparse::NetSlice::Arp(arp)) => {
            assert_eq!(arp.operation(), etherparse::ArpOperation::REPLY);
            assert_eq!(arp.sender_hw_addr(), &cmac(3).0);
            assert_eq!(arp.target_protocol_addr(), &[172, 18, 0, 2]);
        }
        other => panic!("not arp: {other:?}"),
    }
    assert_eq!(n.sw.counters().arp_replies, 1);
}

#[test]
fn arp_for_gateway_answered_from_container_and_vlan_kept() {
    let mut n = Net::default();
    let b = n.c[1];
    let req = ArpRepr::request(cmac(3), ip4("172.18.0.3"), ip4("172.18.0.1"));
    let mut f = [0u8; 64];
    let len = req
        .emit_frame(
            cmac(3),
            MacAddr::BROADCAST,
            Some(crate::wire::VlanTag { tci: 10 }),
            &mut f,
        )
        .expect("fits");
    let (v, ports) = n.send(b, &f[..len], secs(1));
    assert_eq!((v, ports), (Verdict::ArpReply, vec![b]));
    let reply = n.out.reply(0);
    let eth = EthernetFrame::new_checked(reply).expect("frame");
    assert_eq!(eth.vlan().map(|t| t.vid()), Some(10));
    assert_eq!((eth.src_addr(), eth.dst_addr()), (GW_MAC, cmac(3)));
    let arp = crate::wire::ArpPacket::new_checked(eth.payload()).expect("arp");
    assert_eq!(ArpRepr::parse(&arp), req.reply(GW_MAC));
    // And the host asking for a container.
    let req = ArpRepr::request(GW_MAC, ip4("172.18.0.1"), ip4("172.18.0.4"));
    let (v, ports) = n.send(
        n.host,
        &arp_frame(GW_MAC, MacAddr::BROADCAST, &req),
        secs(1),
    );
    assert_eq!((v, ports), (Verdict::ArpReply, vec![n.host]));
}

#[test]
fn arp_not_answered_unknown_announcement_own() {
    let mut n = Net::default();
    let a = n.c[0];
    for req in [
        ArpRepr::request(cmac(2), ip4("172.18.0.2"), ip4("172.18.0.99")), // unknown
        ArpRepr::gratuitous(cmac(2), ip4("172.18.0.2")),                  // announcement
        ArpRepr::request(cmac(2), Ipv4Addr::UNSPECIFIED, ip4("172.18.0.2")), // probe for itself
    ] {
        let (v, _) = n.send(a, &arp_frame(cmac(2), MacAddr::BROADCAST, &req), secs(1));
        assert_eq!(v, Verdict::Flood { copies: 3 }, "{req:?}");
    }
    // Replies are switched like any frame.
    let rep = ArpRepr::request(cmac(3), ip4("172.18.0.3"), ip4("172.18.0.2")).reply(cmac(2));
    let (v, _) = n.send(a, &arp_frame(cmac(2), cmac(3), &rep), secs(1));
    assert_eq!(v, Verdict::Flood { copies: 3 });
    assert_eq!(n.sw.counters().arp_replies, 0);
}

#[test]
fn spoofed_mac_and_ip_dropped() {
    let mut n = Net::default();
    let a = n.c[0];
    let cases: Vec<(Vec<u8>, DropReason)> = vec![
        (raw(cmac(3), MacAddr::BROADCAST), DropReason::SpoofedMac),
        (
            udp4(cmac(2), MacAddr::BROADCAST, "172.18.0.3", "172.18.0.4"),
            DropReason::SpoofedIp,
        ),
        (
            udp4(cmac(2), GW_MAC, "10.9.9.9", "8.8.8.8"),
            DropReason::SpoofedIp,
        ),
        (
            udp6(cmac(2), MacAddr::BROADCAST, "fd00::3", "fd00::4"),
            DropReason::SpoofedIp,
        ),
        (
            arp_frame(
                cmac(2),
                MacAddr::BROADCAST,
                &ArpRepr::request(cmac(2), ip4("172.18.0.3"), ip4("172.18.0.1")),
            ),
            DropReason::SpoofedIp,
        ),
        (
            arp_frame(
                cmac(2),
                MacAddr::BROADCAST,
                &ArpRepr::request(cmac(4), ip4("172.18.0.2"), ip4("172.18.0.1")),
            ),
            DropReason::SpoofedMac,
        ),
    ];
    for (f, reason) in &cases {
        let (v, ports) = n.send(a, f, secs(1));
        assert_eq!((v, ports), (Verdict::Drop(*reason), vec![]));
    }
    assert_eq!(n.sw.counters().drop_spoofed_mac, 2);
    assert_eq!(n.sw.counters().drop_spoofed_ip, 4);
    assert_eq!(
        n.sw.fdb().get(&cmac(3), 1000),
        None,
        "spoofed MAC not learned"
    );
    // Own addresses, link-local and unspecified sources pass.
    for f in [
        udp4(cmac(2), MacAddr::BROADCAST, "172.18.0.2", "172.18.0.3"),
        udp4(cmac(2), MacAddr::BROADCAST, "0.0.0.0", "255.255.255.255"),
        udp6(cmac(2), MacAddr::BROADCAST, "fd00::2", "fd00::3"),
        udp6(
            cmac(2),
            MacAddr::BROADCAST,
            "fe80::42:acff:fe12:2",
            "ff02::1",
        ),
        udp6(cmac(2), MacAddr::BROADCAST, "::", "ff02::1:ff00:2"),
    ] {
        assert!(matches!(
            n.send(a, &f, secs(1)).0,
            Verdict::Flood { copies: 3 }
        ));
    }
    // With anti-spoofing off, everything above passes.
    n.sw.set_anti_spoofing(false);
    for (f, _) in &cases {
        assert!(matches!(
            n.send(a, f, secs(2)).0,
            Verdict::Flood { .. } | Verdict::ArpReply
        ));
    }
}

#[test]
fn host_port_is_not_spoof_checked() {
    let mut n = Net::default();
    let f = udp4(
        MacAddr([2, 5, 5, 5, 5, 5]),
        MacAddr::BROADCAST,
        "192.168.1.10",
        "172.18.0.2",
    );
    assert_eq!(n.send(n.host, &f, secs(1)).0, Verdict::Flood { copies: 3 });
}

#[test]
fn icc_off_blocks_containers_not_gateway() {
    let mut n = Net::new(SwitchConfig {
        enable_icc: false,
        ..SwitchConfig::default()
    });
    let [a, b, _] = n.c;
    // Learn everyone.
    for (p, m) in [(a, cmac(2)), (b, cmac(3)), (n.host, GW_MAC)] {
        n.send(p, &raw(m, MacAddr::BROADCAST), secs(1));
    }
    // Broadcast from a reaches only the host port.
    let (v, ports) = n.send(a, &raw(cmac(2), MacAddr::BROADCAST), secs(1));
    assert_eq!((v, ports), (Verdict::Flood { copies: 1 }, vec![n.host]));
    // Unicast a → b dropped, both ways.
    let ab = udp4(cmac(2), cmac(3), "172.18.0.2", "172.18.0.3");
    assert_eq!(n.send(a, &ab, secs(1)).0, Verdict::Drop(DropReason::Icc));
    let ba = udp4(cmac(3), cmac(2), "172.18.0.3", "172.18.0.2");
    assert_eq!(n.send(b, &ba, secs(1)).0, Verdict::Drop(DropReason::Icc));
    // ARP for b from a: not answered, not flooded.
    let req = ArpRepr::request(cmac(2), ip4("172.18.0.2"), ip4("172.18.0.3"));
    let (v, ports) = n.send(a, &arp_frame(cmac(2), MacAddr::BROADCAST, &req), secs(1));
    assert_eq!((v, ports), (Verdict::Drop(DropReason::Icc), vec![]));
    // Container ↔ gateway works both ways, ARP for the gateway is answered.
    let to_gw = udp4(cmac(2), GW_MAC, "172.18.0.2", "172.18.0.1");
    assert_eq!(n.send(a, &to_gw, secs(1)).0, Verdict::Forward(n.host));
    let from_gw = udp4(GW_MAC, cmac(2), "172.18.0.1", "172.18.0.2");
    assert_eq!(n.send(n.host, &from_gw, secs(1)).0, Verdict::Forward(a));
    let req = ArpRepr::request(cmac(2), ip4("172.18.0.2"), ip4("172.18.0.1"));
    assert_eq!(
        n.send(a, &arp_frame(cmac(2), MacAddr::BROADCAST, &req), secs(1))
            .0,
        Verdict::ArpReply
    );
    assert_eq!(n.sw.counters().drop_icc, 3);
    assert_eq!(
        n.sw.counters().flood_copies_denied,
        2 + 2 + 2,
        "three container floods, two copies each"
    );
    // Turning ICC back on.
    n.sw.set_enable_icc(true);
    assert_eq!(n.send(a, &ab, secs(1)).0, Verdict::Forward(b));
}

#[test]
fn internal_network_blocks_off_subnet() {
    let mut n = Net::new(SwitchConfig {
        internal: true,
        ..SwitchConfig::default()
    });
    let [a, b, _] = n.c;
    for (p, m) in [(a, cmac(2)), (b, cmac(3)), (n.host, GW_MAC)] {
        n.send(p, &raw(m, MacAddr::BROADCAST), secs(1));
    }
    let drop = Verdict::Drop(DropReason::Internal);
    // Container → outside via the gateway MAC: dropped (v4 and v6).
    assert_eq!(
        n.send(a, &udp4(cmac(2), GW_MAC, "172.18.0.2", "8.8.8.8"), secs(1))
            .0,
        drop
    );
    assert_eq!(
        n.send(a, &udp6(cmac(2), GW_MAC, "fd00::2", "2001:db8::1"), secs(1))
            .0,
        drop
    );
    // Outside → container through the host port: dropped.
    assert_eq!(
        n.send(
            n.host,
            &udp4(GW_MAC, cmac(2), "8.8.8.8", "172.18.0.2"),
            secs(1)
        )
        .0,
        drop
    );
    assert_eq!(
        n.send(
            n.host,
            &udp6(GW_MAC, cmac(2), "2001:db8::1", "fd00::2"),
            secs(1)
        )
        .0,
        drop
    );
    // Inside the subnets, and link-scoped, all fine.
    assert_eq!(
        n.send(
            a,
            &udp4(cmac(2), GW_MAC, "172.18.0.2", "172.18.0.1"),
            secs(1)
        )
        .0,
        Verdict::Forward(n.host)
    );
    assert_eq!(
        n.send(
            n.host,
            &udp4(GW_MAC, cmac(2), "172.18.0.1", "172.18.0.2"),
            secs(1)
        )
        .0,
        Verdict::Forward(a)
    );
    assert_eq!(
        n.send(
            a,
            &udp4(cmac(2), cmac(3), "172.18.0.2", "172.18.0.3"),
            secs(1)
        )
        .0,
        Verdict::Forward(b)
    );
    assert_eq!(
        n.send(a, &udp6(cmac(2), GW_MAC, "fe80::2", "fe80::1"), secs(1))
            .0,
        Verdict::Forward(n.host)
    );
    // A broadcast to an outside address reaches the containers but not the host port.
    let (v, ports) = n.send(
        a,
        &udp4(cmac(2), MacAddr::BROADCAST, "172.18.0.2", "10.1.1.1"),
        secs(1),
    );
    assert_eq!((v, ports), (Verdict::Flood { copies: 2 }, vec![b, n.c[2]]));
    // Link-scoped broadcast/multicast reaches everyone.
    let (v, _) = n.send(
        a,
        &udp4(cmac(2), MacAddr::BROADCAST, "172.18.0.2", "255.255.255.255"),
        secs(1),
    );
    assert_eq!(v, Verdict::Flood { copies: 3 });
    let (v, _) = n.send(
        a,
        &udp6(
            cmac(2),
            MacAddr([0x33, 0x33, 0, 0, 0, 1]),
            "fe80::2",
            "ff02::1",
        ),
        secs(1),
    );
    assert_eq!(v, Verdict::Flood { copies: 3 });
    assert_eq!(n.sw.counters().drop_internal, 4);
}

#[test]
fn tunnel_split_horizon_and_icc() {
    // Flood-and-learn: the remote MAC is learned from the tunnel.
    let mut sw = Switch::new(SwitchConfig {
        flood_to_tunnel: true,
        ..SwitchConfig::default()
    });
    let t1 = sw.add_port(PortConfig::tunnel()).expect("t1");
    let t2 = sw.add_port(PortConfig::tunnel()).expect("t2");
    let c = sw
        .add_port(PortConfig::container(cmac(2)).with_ipv4(ip4("172.18.0.2")))
        .expect("c");
    let mut out = Decisions::default();
    let f = raw(MacAddr([2, 0x42, 10, 0, 0, 9]), MacAddr::BROADCAST);
    assert_eq!(
        sw.process(t1, &f, secs(1), &mut out),
        Verdict::Flood { copies: 1 }
    );
    assert_eq!(
        out.tx(),
        &[Tx {
            port: c,
            frame: FrameRef::Input(0)
        }]
    );
    sw.set_enable_icc(false);
    out.clear();
    assert_eq!(
        sw.process(t1, &f, secs(1), &mut out),
        Verdict::Flood { copies: 0 }
    );
    let to_remote = raw(cmac(2), MacAddr([2, 0x42, 10, 0, 0, 9]));
    assert_eq!(
        sw.process(c, &to_remote, secs(1), &mut out),
        Verdict::Drop(DropReason::Icc)
    );
    let _ = t2;
}

#[test]
fn remove_port_flushes_fdb_and_addresses() {
    let mut n = Net::default();
    let [a, b, _] = n.c;
    n.send(a, &raw(cmac(2), MacAddr::BROADCAST), secs(1));
    assert_eq!(
        n.send(b, &raw(cmac(3), cmac(2)), secs(1)).0,
        Verdict::Forward(a)
    );
    let cfg = n.sw.remove_port(a).expect("removed");
    assert_eq!(cfg.mac, Some(cmac(2)));
    assert_eq!(n.sw.port_count(), 3);
    assert_eq!(
        n.send(b, &raw(cmac(3), cmac(2)), secs(1)).0,
        Verdict::Flood { copies: 2 }
    );
    assert_eq!(n.sw.owner_of(IpAddr::V4(ip4("172.18.0.2"))), None);
    let req = ArpRepr::request(cmac(3), ip4("172.18.0.3"), ip4("172.18.0.2"));
    assert_eq!(
        n.send(b, &arp_frame(cmac(3), MacAddr::BROADCAST, &req), secs(1))
            .0,
        Verdict::Flood { copies: 2 }
    );
    assert_eq!(
        n.send(a, &raw(cmac(2), MacAddr::BROADCAST), secs(1)).0,
        Verdict::Drop(DropReason::UnknownPort)
    );
    assert_eq!(n.sw.remove_port(a), Err(Error::NoSuchPort(a)));
    // The id is reused by the next port, with nothing left over.
    let again =
        n.sw.add_port(PortConfig::container(cmac(2)).with_ipv4(ip4("172.18.0.2")))
            .expect("re-add");
    assert_eq!(again, a);
}

#[test]
fn add_port_validation() {
    let mut n = Net::default();
    assert_eq!(
        n.sw.add_port(PortConfig::new(PortKind::Container)),
        Err(Error::MissingMac)
    );
    assert_eq!(
        n.sw.add_port(PortConfig::container(MacAddr::BROADCAST)),
        Err(Error::InvalidMac(MacAddr::BROADCAST))
    );
    let dup = PortConfig::container(cmac(9)).with_ipv4(ip4("172.18.0.1"));
    assert_eq!(
        n.sw.add_port(dup),
        Err(Error::AddressInUse(IpAddr::V4(ip4("172.18.0.1")), n.host))
    );
    let twice = PortConfig::container(cmac(9))
        .with_ipv6(ip6("fd00::9"))
        .with_ipv6(ip6("fd00::9"));
    assert!(matches!(n.sw.add_port(twice), Err(Error::AddressInUse(..))));
    let mc = PortConfig::container(cmac(9)).with_ipv4(ip4("224.0.0.1"));
    assert!(matches!(n.sw.add_port(mc), Err(Error::InvalidAddress(_))));
    assert_eq!(n.sw.port_count(), 4);
    let mut sw = Switch::new(SwitchConfig::default());
    for _ in 0..MAX_PORTS {
        sw.add_port(PortConfig::tunnel()).expect("room");
    }
    assert_eq!(sw.add_port(PortConfig::tunnel()), Err(Error::TooManyPorts));
}

#[test]
fn batch_indices_and_no_growth_in_steady_state() {
    let mut n = Net::default();
    let [a, b, c] = n.c;
    let frames = [
        (a, raw(cmac(2), MacAddr::BROADCAST)),
        (b, raw(cmac(3), cmac(2))),
        (c, vec![0u8; 5]),
        (
            a,
            arp_frame(
                cmac(2),
                MacAddr::BROADCAST,
                &ArpRepr::request(cmac(2), ip4("172.18.0.2"), ip4("172.18.0.4")),
            ),
        ),
    ];
    let mut out = Decisions::with_capacity(8, 16);
    let mut caps = None;
    for round in 0..3 {
        n.sw.process_batch(
            frames.iter().map(|(p, f)| (*p, &f[..])),
            secs(1 + round),
            &mut out,
        );
        assert_eq!(
            out.verdicts(),
            &[
                Verdict::Flood { copies: 3 },
                Verdict::Forward(a),
                Verdict::Drop(DropReason::Malformed),
                Verdict::ArpReply
            ]
        );
        let tx: Vec<(PortId, FrameRef)> = out.tx().iter().map(|t| (t.port, t.frame)).collect();
        assert_eq!(
            tx,
            vec![
                (n.host, FrameRef::Input(0)),
                (b, FrameRef::Input(0)),
                (c, FrameRef::Input(0)),
                (a, FrameRef::Input(1)),
                (a, FrameRef::Reply(0)),
            ]
        );
        let now = (
            out.verdicts.capacity(),
            out.tx.capacity(),
            out.replies.capacity(),
        );
        if let Some(before) = caps {
            assert_eq!(before, now, "buffers reused, not regrown");
        }
        caps = Some(now);
    }
    assert_eq!(out.reply(0).len(), 42);
    assert_eq!(out.reply(7), &[] as &[u8]);
}

/// A network with an egress gateway port (same MAC as the host port).
fn with_gateway(config: SwitchConfig) -> (Net, PortId) {
    let mut n = Net::new(config);
    let gw =
        n.sw.add_port(
            PortConfig::gateway(GW_MAC)
                .with_ipv4(ip4("172.18.0.1"))
                .with_ipv6(ip6("fd00::1")),
        )
        .expect("gateway");
    (n, gw)
}

#[test]
fn off_subnet_traffic_goes_to_the_gateway_port() {
    let (mut n, gw) = with_gateway(SwitchConfig::default());
    let [a, b, _] = n.c;
    // The host port announces the gateway MAC: learned there.
    n.send(n.host, &raw(GW_MAC, MacAddr::BROADCAST), secs(1));
    assert_eq!(n.sw.fdb().get(&GW_MAC, 1000), Some(n.host));
    // Off-subnet IPv4 and IPv6 to the gateway MAC: to the gateway port only.
    let out4 = udp4(cmac(2), GW_MAC, "172.18.0.2", "8.8.8.8");
    assert_eq!(n.send(a, &out4, secs(2)), (Verdict::Forward(gw), vec![gw]));
    let out6 = udp6(cmac(2), GW_MAC, "fd00::2", "2001:db8::1");
    assert_eq!(n.send(a, &out6, secs(2)), (Verdict::Forward(gw), vec![gw]));
    // To the gateway address itself, or another in-subnet address: the host port.
    let to_gw = udp4(cmac(2), GW_MAC, "172.18.0.2", "172.18.0.1");
    assert_eq!(n.send(a, &to_gw, secs(3)).0, Verdict::Forward(n.host));
    // Multicast / broadcast / link-local destinations are never steered.
    for dst in ["224.0.0.251", "255.255.255.255", "169.254.1.1", "239.1.1.1"] {
        let f = udp4(cmac(2), GW_MAC, "172.18.0.2", dst);
        assert_eq!(n.send(a, &f, secs(3)).0, Verdict::Forward(n.host), "{dst}");
    }
    // Frames from the gateway port are not learned and go to containers only.
    let reply = udp4(GW_MAC, cmac(2), "8.8.8.8", "172.18.0.2");
    assert_eq!(n.send(gw, &reply, secs(4)).0, Verdict::Forward(a));
    assert_eq!(n.sw.fdb().get(&GW_MAC, 4000), Some(n.host));
    // Unknown destination: flooded to containers only (not host).
    let unknown = udp4(GW_MAC, cmac(9), "8.8.8.8", "172.18.0.9");
    let (v, ports) = n.send(gw, &unknown, secs(5));
    assert_eq!(v, Verdict::Flood { copies: 3 });
    assert_eq!(ports, vec![a, b, n.c[2]]);
    // A frame from the gateway port addressed to the host (gateway) MAC is refused.
    let to_host = udp4(GW_MAC, GW_MAC, "8.8.8.8", "172.18.0.1");
    assert_eq!(
        n.send(gw, &to_host, secs(6)).0,
        Verdict::Drop(DropReason::Gateway)
    );
    // Broadcasts from containers and the host never reach the gateway port.
    let (_, ports) = n.send(a, &raw(cmac(2), MacAddr::BROADCAST), secs(7));
    assert!(!ports.contains(&gw));
    let (_, ports) = n.send(n.host, &raw(GW_MAC, MacAddr::BROADCAST), secs(7));
    assert!(!ports.contains(&gw));
    // The gateway port is not subject to anti-spoofing (it sends for remote addresses).
    assert_eq!(n.sw.counters().drop_spoofed_ip, 0);
    // Only one gateway port per network.
    assert_eq!(
        n.sw.add_port(PortConfig::gateway(GW_MAC)),
        Err(Error::BadGatewayPort)
    );
    n.sw.remove_port(gw).expect("remove");
    // Without it, off-subnet traffic goes to the host interface unchanged (masquerade off).
    assert_eq!(n.send(a, &out4, secs(8)).0, Verdict::Forward(n.host));
}

#[test]
fn internal_networks_never_steer_to_the_gateway() {
    let (mut n, gw) = with_gateway(SwitchConfig {
        internal: true,
        ..SwitchConfig::default()
    });
    let a = n.c[0];
    let out4 = udp4(cmac(2), GW_MAC, "172.18.0.2", "8.8.8.8");
    let (v, ports) = n.send(a, &out4, secs(1));
    assert!(!ports.contains(&gw), "{v:?}");
    assert!(!ports.contains(&n.host), "{v:?}");
}

#[test]
fn relay_answers_to_the_gateway_address_go_to_the_gateway_port() {
    let (mut n, gw) = with_gateway(SwitchConfig::default());
    let a = n.c[0];
    n.send(n.host, &raw(GW_MAC, MacAddr::BROADCAST), secs(1));
    // The gateway addresses stay the host port's (ARP answers, ownership).
    assert_eq!(
        n.sw.owner_of(IpAddr::V4(ip4("172.18.0.1"))),
        Some((n.host, Some(GW_MAC)))
    );
    let to = |port: u16, ipv6: bool| {
        let ph = if ipv6 {
            v6("fd00::2", "fd00::1")
        } else {
            v4("172.18.0.2", "172.18.0.1")
        };
        ip_frame(
            cmac(2),
            GW_MAC,
            None,
            ph,
            IpProtocol::UDP,
            &[],
            &udp_datagram(&ph, (80, port), b"x"),
        )
    };
    assert_eq!(
        n.send(a, &to(61000, false), secs(1)).0,
        Verdict::Forward(gw)
    );
    assert_eq!(n.send(a, &to(65535, true), secs(1)).0, Verdict::Forward(gw));
    // Below the relay range: the host's own sockets, through the host port.
    assert_eq!(
        n.send(a, &to(60999, false), secs(1)).0,
        Verdict::Forward(n.host)
    );
}

/// A remote container of the overlay (on another host, behind the tunnel).
fn rmac(last: u8) -> MacAddr {
    MacAddr::from_ipv4(Ipv4Addr::new(172, 18, 1, last))
}

/// `Net` plus a tunnel port.
fn with_tunnel(config: SwitchConfig) -> (Net, PortId) {
    let mut n = Net::new(config);
    let t = n.sw.add_port(PortConfig::tunnel()).expect("tunnel");
    (n, t)
}

#[test]
fn remote_endpoint_unicast_and_arp_answered_locally() {
    let (mut n, t) = with_tunnel(SwitchConfig::default());
    let a = n.c[0];
    let r_ip = IpAddr::V4(ip4("172.18.1.5"));
    let r_ip6 = IpAddr::V6(ip6("fd00::1:5"));
    n.sw.set_remote_endpoint(t, rmac(5), &[r_ip, r_ip6])
        .expect("remote");
    assert_eq!(n.sw.remote_owner_of(r_ip), Some(rmac(5)));
    assert_eq!(n.sw.remote_endpoint(rmac(5)).map(|r| r.port), Some(t));
    // Unicast to the remote MAC: to the tunnel only, from the first frame (static entry).
    let f = udp4(cmac(2), rmac(5), "172.18.0.2", "172.18.1.5");
    assert_eq!(n.send(a, &f, secs(1)), (Verdict::Forward(t), vec![t]));
    // ARP for the remote address: answered by the switch with the remote MAC.
    let req = ArpRepr::request(cmac(2), ip4("172.18.0.2"), ip4("172.18.1.5"));
    let (v, ports) = n.send(a, &arp_frame(cmac(2), MacAddr::BROADCAST, &req), secs(1));
    assert_eq!((v, ports), (Verdict::ArpReply, vec![a]));
    let reply = EthernetFrame::new_checked(n.out.reply(0)).expect("reply");
    assert_eq!((reply.src_addr(), reply.dst_addr()), (rmac(5), cmac(2)));
    let want = req.reply(rmac(5));
    let got = crate::wire::ArpPacket::new_checked(reply.payload()).expect("arp");
    assert_eq!(ArpRepr::parse(&got), want);
    // Never aged out.
    assert_eq!(n.send(a, &f, secs(10_000)), (Verdict::Forward(t), vec![t]));
    // Not moved by learning: a container sending with that MAC (anti-spoofing off).
    n.sw.set_anti_spoofing(false);
    n.send(n.c[1], &raw(rmac(5), MacAddr::BROADCAST), secs(10_001));
    assert_eq!(n.send(a, &f, secs(10_002)), (Verdict::Forward(t), vec![t]));
    // Gone: ARP for it is flooded locally (not to the tunnel), frames to it too.
    assert!(n.sw.remove_remote_endpoint(rmac(5)));
    assert!(!n.sw.remove_remote_endpoint(rmac(5)));
    assert_eq!(n.sw.remote_owner_of(r_ip), None);
    let (v, ports) = n.send(
        a,
        &arp_frame(cmac(2), MacAddr::BROADCAST, &req),
        secs(10_003),
    );
    assert_eq!(v, Verdict::Flood { copies: 3 });
    assert!(!ports.contains(&t));
}

#[test]
fn remote_endpoint_validation_and_local_wins() {
    let (mut n, t) = with_tunnel(SwitchConfig::default());
    let [a, b, _] = n.c;
    let r = IpAddr::V4(ip4("172.18.1.5"));
    assert_eq!(
        n.sw.set_remote_endpoint(a, rmac(5), &[r]),
        Err(Error::NotATunnel(a))
    );
    assert_eq!(
        n.sw.set_remote_endpoint(PortId(99), rmac(5), &[r]),
        Err(Error::NoSuchPort(PortId(99)))
    );
    assert_eq!(
        n.sw.set_remote_endpoint(t, MacAddr::BROADCAST, &[r]),
        Err(Error::InvalidMac(MacAddr::BROADCAST))
    );
    // A local port's MAC or address is never taken by a remote endpoint.
    assert_eq!(
        n.sw.set_remote_endpoint(t, cmac(3), &[r]),
        Err(Error::MacInUse(cmac(3), b))
    );
    assert_eq!(
        n.sw.set_remote_endpoint(t, GW_MAC, &[]),
        Err(Error::MacInUse(GW_MAC, n.host))
    );
    let local = IpAddr::V4(ip4("172.18.0.3"));
    assert_eq!(
        n.sw.set_remote_endpoint(t, rmac(5), &[local]),
        Err(Error::AddressInUse(local, b))
    );
    assert_eq!(
        n.sw.set_remote_endpoint(t, rmac(5), &[r, r]),
        Err(Error::AddressInUse(r, t))
    );
    let mc = IpAddr::V4(ip4("224.0.0.1"));
    assert_eq!(
        n.sw.set_remote_endpoint(t, rmac(5), &[mc]),
        Err(Error::InvalidAddress(mc))
    );
    assert_eq!(n.sw.remote_endpoints().count(), 0);
    assert_eq!(n.sw.fdb().static_len(), 0);
    // An address moves between remote endpoints; re-setting replaces the addresses.
    n.sw.set_remote_endpoint(t, rmac(5), &[r]).expect("r5");
    n.sw.set_remote_endpoint(t, rmac(6), &[r]).expect("r6");
    assert_eq!(n.sw.remote_owner_of(r), Some(rmac(6)));
    assert_eq!(n.sw.remote_endpoint(rmac(5)).map(|e| e.ips.len()), Some(0));
    // A local port added with a remote endpoint's MAC or address takes it over.
    let c =
        n.sw.add_port(PortConfig::container(rmac(5)).with_ipv4(ip4("172.18.1.5")))
            .expect("local");
    assert_eq!(n.sw.remote_endpoint(rmac(5)), None);
    assert_eq!(n.sw.remote_owner_of(r), None);
    assert_eq!(n.sw.owner_of(r), Some((c, Some(rmac(5)))));
    assert_eq!(n.sw.fdb().static_port(&rmac(5)), None);
    // Removing the tunnel port removes its remote endpoints.
    n.sw.set_remote_endpoint(t, rmac(7), &[IpAddr::V4(ip4("172.18.1.7"))])
        .expect("r7");
    n.sw.remove_port(t).expect("remove tunnel");
    assert_eq!(n.sw.remote_endpoints().count(), 0);
    assert_eq!(n.sw.remote_owner_of(IpAddr::V4(ip4("172.18.1.7"))), None);
    assert_eq!(n.sw.fdb().static_len(), 0);
}

#[test]
fn cluster_mode_floods_nothing_to_the_tunnel_and_learns_nothing_from_it() {
    let (mut n, t) = with_tunnel(SwitchConfig::default());
    let a = n.c[0];
    // Broadcast, multicast and unknown unicast stay local.
    for dst in [
        MacAddr::BROADCAST,
        MacAddr([0x33, 0x33, 0, 0, 0, 1]),
        rmac(9),
    ] {
        let (v, ports) = n.send(a, &raw(cmac(2), dst), secs(1));
        assert_eq!(v, Verdict::Flood { copies: 3 }, "{dst}");
        assert!(!ports.contains(&t));
    }
    assert_eq!(n.sw.counters().flood_copies_denied, 3);
    // ARP for an unknown address is not sent over the underlay either.
    let req = ArpRepr::request(cmac(2), ip4("172.18.0.2"), ip4("172.18.9.9"));
    let (_, ports) = n.send(a, &arp_frame(cmac(2), MacAddr::BROADCAST, &req), secs(1));
    assert!(!ports.contains(&t));
    // A frame from the tunnel reaches the local port but its source is not learned.
    assert_eq!(
        n.send(t, &raw(rmac(9), cmac(2)), secs(2)).0,
        Verdict::Forward(a)
    );
    assert_eq!(n.sw.fdb().get(&rmac(9), 2_000), None);
    // The underlay cannot claim a local MAC: frames to it still go to its port.
    n.send(a, &raw(cmac(2), MacAddr::BROADCAST), secs(3));
    n.send(t, &raw(cmac(2), MacAddr::BROADCAST), secs(4));
    assert_eq!(
        n.send(n.c[1], &raw(cmac(3), cmac(2)), secs(5)).0,
        Verdict::Forward(a)
    );
}

#[test]
fn flood_mode_floods_to_the_tunnel_but_never_lets_it_claim_a_local_mac() {
    let (mut n, t) = with_tunnel(SwitchConfig {
        flood_to_tunnel: true,
        ..SwitchConfig::default()
    });
    let [a, b, _] = n.c;
    let (v, ports) = n.send(a, &raw(cmac(2), MacAddr::BROADCAST), secs(1));
    assert_eq!(v, Verdict::Flood { copies: 4 });
    assert!(ports.contains(&t));
    // Learned from the tunnel, as the kernel's vxlan with static peers.
    n.send(t, &raw(rmac(9), MacAddr::BROADCAST), secs(2));
    assert_eq!(
        n.send(a, &raw(cmac(2), rmac(9)), secs(3)),
        (Verdict::Forward(t), vec![t])
    );
    // But a local port's own MAC is never learned from the tunnel or the host port.
    n.send(t, &raw(cmac(2), MacAddr::BROADCAST), secs(4));
    n.send(n.host, &raw(cmac(2), MacAddr::BROADCAST), secs(4));
    assert_eq!(
        n.send(b, &raw(cmac(3), cmac(2)), secs(5)).0,
        Verdict::Forward(a)
    );
    // Switching it off at run time.
    n.sw.set_flood_to_tunnel(false);
    let (_, ports) = n.send(a, &raw(cmac(2), MacAddr::BROADCAST), secs(6));
    assert!(!ports.contains(&t));
}

#[test]
fn remote_arp_answers_follow_the_policy() {
    let (mut n, t) = with_tunnel(SwitchConfig {
        enable_icc: false,
        ..SwitchConfig::default()
    });
    let a = n.c[0];
    n.sw.set_remote_endpoint(t, rmac(5), &[IpAddr::V4(ip4("172.18.1.5"))])
        .expect("remote");
    // ICC off: a container may not reach a remote one, so no answer (and no flood).
    let req = ArpRepr::request(cmac(2), ip4("172.18.0.2"), ip4("172.18.1.5"));
    let (v, ports) = n.send(a, &arp_frame(cmac(2), MacAddr::BROADCAST, &req), secs(1));
    assert_eq!((v, ports), (Verdict::Drop(DropReason::Icc), vec![]));
    // The host port may: it gets the answer.
    let req = ArpRepr::request(GW_MAC, ip4("172.18.0.1"), ip4("172.18.1.5"));
    let (v, ports) = n.send(
        n.host,
        &arp_frame(GW_MAC, MacAddr::BROADCAST, &req),
        secs(1),
    );
    assert_eq!((v, ports), (Verdict::ArpReply, vec![n.host]));
    // A request arriving from the tunnel for a remote address is not answered back into it.
    let req = ArpRepr::request(rmac(6), ip4("172.18.1.6"), ip4("172.18.1.5"));
    let (v, ports) = n.send(t, &arp_frame(rmac(6), MacAddr::BROADCAST, &req), secs(1));
    assert!(matches!(v, Verdict::Flood { .. }), "{v:?}");
    assert!(!ports.contains(&t));
}

/// A neighbour solicitation from `src`/`src_ip` for `target` (to its solicited-node group).
fn neighbor_solicitation(src: MacAddr, src_ip: Ipv6Addr, target: Ipv6Addr) -> Vec<u8> {
    let t = target.octets();
    let group = Ipv6Addr::new(
        0xff02,
        0,
        0,
        0,
        0,
        1,
        0xff00 | u16::from(t[13]),
        u16::from_be_bytes([t[14], t[15]]),
    );
    let mut icmp = vec![135u8, 0, 0, 0, 0, 0, 0, 0];
    icmp.extend_from_slice(&t);
    icmp.extend_from_slice(&[1, 1]);
    icmp.extend_from_slice(&src.0);
    let ph = crate::wire::PseudoHeader::V6 {
        src: src_ip,
        dst: group,
    };
    let sum = !crate::wire::checksum::fold(crate::wire::checksum::accumulate(
        ph.sum(IpProtocol::ICMPV6, icmp.len() as u32),
        &icmp,
    ));
    icmp[2..4].copy_from_slice(&sum.to_be_bytes());
    let g = group.octets();
    let dst = MacAddr([0x33, 0x33, g[12], g[13], g[14], g[15]]);
    let mut f = ip_frame(src, dst, None, ph, IpProtocol::ICMPV6, &[], &icmp);
    f[14 + 7] = 255; // hop limit
    f
}

#[test]
fn neighbour_solicitation_for_a_remote_endpoint_answered_locally() {
    let (mut n, t) = with_tunnel(SwitchConfig::default());
    let a = n.c[0];
    let r6 = ip6("fd00::1:5");
    n.sw.set_remote_endpoint(t, rmac(5), &[IpAddr::V6(r6)])
        .expect("remote");
    let ns = neighbor_solicitation(cmac(2), ip6("fd00::2"), r6);
    let (v, ports) = n.send(a, &ns, secs(1));
    assert_eq!((v, ports), (Verdict::ArpReply, vec![a]));
    assert_eq!(n.sw.counters().nd_replies, 1);
    let na = n.out.reply(0).to_vec();
    assert_eq!(na.len(), 86);
    let eth = EthernetFrame::new_checked(&na[..]).expect("eth");
    assert_eq!((eth.src_addr(), eth.dst_addr()), (rmac(5), cmac(2)));
    let ip = crate::wire::Ipv6Packet::new_checked(eth.payload()).expect("ipv6");
    assert_eq!(
        (ip.src_addr(), ip.dst_addr(), ip.hop_limit()),
        (r6, ip6("fd00::2"), 255)
    );
    let icmp = crate::wire::IcmpPacket::new_checked(ip.payload()).expect("icmp");
    assert!(icmp.verify_checksum_v6(&ip.pseudo_header()));
    assert_eq!(icmp.msg_type(), 136);
    let body = ip.payload();
    assert_eq!(&body[4..8], &[0x60, 0, 0, 0], "solicited, override");
    assert_eq!(&body[8..24], &r6.octets());
    assert_eq!(&body[24..32], &[2, 1, 2, 0x42, 172, 18, 1, 5]);
    // Cross-check with etherparse.
    let p = etherparse::SlicedPacket::from_ethernet(&na).expect("etherparse");
    match p.transport {
        Some(etherparse::TransportSlice::Icmpv6(i)) => {
            assert_eq!(i.type_u8(), 136);
            let want =
                i.icmp_type()
                    .calc_checksum(r6.octets(), ip6("fd00::2").octets(), i.payload());
            assert_eq!(want.ok(), Some(i.checksum()));
        }
        other => panic!("not icmpv6: {other:?}"),
    }
    // Local addresses are left to their owners (flooded locally); DAD is not answered;
    // nothing goes to the tunnel.
    let local = neighbor_solicitation(cmac(2), ip6("fd00::2"), ip6("fd00::3"));
    let (v, ports) = n.send(a, &local, secs(1));
    assert_eq!(v, Verdict::Flood { copies: 3 });
    assert!(!ports.contains(&t));
    let dad = neighbor_solicitation(cmac(2), Ipv6Addr::UNSPECIFIED, r6);
    let (v, ports) = n.send(a, &dad, secs(1));
    assert!(matches!(v, Verdict::Flood { .. }));
    assert!(!ports.contains(&t));
    // A bad checksum is not answered.
    let mut bad = ns.clone();
    bad[14 + 40 + 2] ^= 1;
    assert!(matches!(n.send(a, &bad, secs(1)).0, Verdict::Flood { .. }));
    // ICC off: refused like the ARP request.
    n.sw.set_enable_icc(false);
    assert_eq!(n.send(a, &ns, secs(1)).0, Verdict::Drop(DropReason::Icc));
}
