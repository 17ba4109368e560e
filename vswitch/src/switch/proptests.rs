//! "No forbidden frame ever leaves": random frames from random ports through switches with
//! random policy; every output is checked against an independent oracle that parses with
//! etherparse and states the policy in the plainest terms.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use etherparse::{
    ArpHardwareId, ArpPacketSlice, Ethernet2HeaderSlice, Ipv4HeaderSlice, Ipv6HeaderSlice,
    SingleVlanHeaderSlice,
};
use proptest::prelude::*;

use super::*;
use crate::wire::testutil::{ip_frame, udp_datagram};
use crate::wire::{ArpRepr, IpProtocol, MacAddr, PseudoHeader, VlanTag};

const HOST_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 1];

fn container_mac(i: usize) -> [u8; 6] {
    [0x02, 0x42, 10, 0, 0, i as u8 + 2]
}

fn container_v4(i: usize) -> Ipv4Addr {
    Ipv4Addr::new(10, 0, 0, i as u8 + 2)
}

fn container_v6(i: usize) -> Ipv6Addr {
    Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, i as u16 + 2)
}

const GW4: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
const GW6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 1);

/// The oracle's own picture of a port.
#[derive(Debug, Clone)]
struct OPort {
    kind: PortKind,
    mac: Option<[u8; 6]>,
    v4: Vec<Ipv4Addr>,
    v6: Vec<Ipv6Addr>,
}

#[derive(Debug, Clone, Copy)]
struct OConfig {
    icc: bool,
    internal: bool,
    anti_spoofing: bool,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum OL3 {
    Other,
    Arp {
        op: u16,
        sha: [u8; 6],
        spa: Ipv4Addr,
        tpa: Ipv4Addr,
    },
    V4 {
        src: Ipv4Addr,
        dst: Ipv4Addr,
        dport: Option<u16>,
    },
    V6 {
        src: Ipv6Addr,
        dst: Ipv6Addr,
        dport: Option<u16>,
    },
}

struct OFrame {
    src: [u8; 6],
    dst: [u8; 6],
    vlan: Option<u16>,
    l3: OL3,
}

/// Parses with etherparse; `None` = malformed (must never be forwarded).
fn oracle_parse(f: &[u8]) -> Option<OFrame> {
    let eth = Ethernet2HeaderSlice::from_slice(f).ok()?;
    let mut et = eth.ether_type();
    let mut rest = &f[14..];
    let mut vlan = None;
    if et == etherparse::EtherType::VLAN_TAGGED_FRAME {
        let v = SingleVlanHeaderSlice::from_slice(rest).ok()?;
        vlan = Some(u16::from_be_bytes([rest[0], rest[1]]));
        et = v.ether_type();
        rest = &rest[4..];
    }
    let l3 = if et == etherparse::EtherType::ARP {
        let a = ArpPacketSlice::from_slice(rest).ok()?;
        if a.hw_addr_type() != ArpHardwareId::ETHERNET
            || a.proto_addr_type() != etherparse::EtherType::IPV4
        {
            return None;
        }
        let ip = |s: &[u8]| Ipv4Addr::new(s[0], s[1], s[2], s[3]);
        OL3::Arp {
            op: a.operation().0,
            sha: a.sender_hw_addr().try_into().ok()?,
            spa: ip(a.sender_protocol_addr()),
            tpa: ip(a.target_protocol_addr()),
        }
    } else if et == etherparse::EtherType::IPV4 {
        let h = Ipv4HeaderSlice::from_slice(rest).ok()?;
        let l4 = rest.get(h.slice().len()..usize::from(h.total_len()).min(rest.len()));
        OL3::V4 {
            src: h.source_addr(),
            dst: h.destination_addr(),
            dport: l4_dport(h.protocol().0, l4).filter(|_| h.fragments_offset().value() == 0),
        }
    } else if et == etherparse::EtherType::IPV6 {
        let h = Ipv6HeaderSlice::from_slice(rest).ok()?;
        let end = (40 + usize::from(h.payload_length())).min(rest.len());
        OL3::V6 {
            src: h.source_addr(),
            dst: h.destination_addr(),
            dport: l4_dport(h.next_header().0, rest.get(40..end)),
        }
    } else {
        OL3::Other
    };
    Some(OFrame {
        src: eth.source(),
        dst: eth.destination(),
        vlan,
        l3,
    })
}

/// The destination port of a TCP (6) or UDP (17) header at the start of `l4`.
fn l4_dport(proto: u8, l4: Option<&[u8]>) -> Option<u16> {
    let l4 = l4?;
    ((proto == 6 || proto == 17) && l4.len() >= 4).then(|| u16::from_be_bytes([l4[2], l4[3]]))
}

fn in_subnets(a: IpAddr) -> bool {
    match a {
        IpAddr::V4(a) => a.octets()[..3] == [10, 0, 0],
        IpAddr::V6(a) => a.segments()[..4] == [0xfd00, 0, 0, 0],
    }
}

fn link_scoped(a: IpAddr) -> bool {
    match a {
        IpAddr::V4(a) => {
            let o = a.octets();
            o == [0, 0, 0, 0]
                || o == [255; 4]
                || (o[0] == 169 && o[1] == 254)
                || (o[0] == 224 && o[1] == 0 && o[2] == 0)
        }
        IpAddr::V6(a) => {
            let s = a.segments();
            a == Ipv6Addr::UNSPECIFIED
                || (s[0] & 0xffc0) == 0xfe80
                || (s[0] >> 8 == 0xff && (s[0] & 0xf) <= 2)
        }
    }
}

fn oracle_ingress(cfg: &OConfig, port: &OPort, f: &OFrame) -> bool {
    let multicast = f.src[0] & 1 == 1;
    if multicast || f.src == [0; 6] {
        return false;
    }
    if f.dst[..5] == [0x01, 0x80, 0xc2, 0, 0] && f.dst[5] < 0x10 {
        return false;
    }
    if !cfg.anti_spoofing || port.kind != PortKind::Container {
        return true;
    }
    if Some(f.src) != port.mac {
        return false;
    }
    match f.l3 {
        OL3::Other => true,
        OL3::Arp { sha, spa, .. } => {
            Some(sha) == port.mac && (spa.is_unspecified() || port.v4.contains(&spa))
        }
        OL3::V4 { src, .. } => src.is_unspecified() || port.v4.contains(&src),
        OL3::V6 { src, .. } => {
            src.is_unspecified() || (src.segments()[0] & 0xffc0) == 0xfe80 || port.v6.contains(&src)
        }
    }
}

fn oracle_egress(cfg: &OConfig, ports: &[OPort], from: usize, to: usize, f: &OFrame) -> bool {
    if from == to {
        return false;
    }
    let (fk, tk) = (ports[from].kind, ports[to].kind);
    // The gateway port: in, only a container's unicast IP to the gateway MAC for a unicast
    // address outside the subnets (never on an internal network); out, only to containers.
    // Also the relay answers: TCP/UDP to a gateway address and a port in 61000..=65535.
    if tk == PortKind::Gateway {
        let (dst, dport) = match f.l3 {
            OL3::V4 { dst, dport, .. } => (IpAddr::V4(dst), dport),
            OL3::V6 { dst, dport, .. } => (IpAddr::V6(dst), dport),
            _ => return false,
        };
        let is_gw = dst == IpAddr::V4(GW4) || dst == IpAddr::V6(GW6);
        let relay = is_gw && dport.is_some_and(|p| p >= 61000);
        let egress = !(is_gw || dst.is_multicast() || link_scoped(dst) || in_subnets(dst));
        return fk == PortKind::Container
            && !cfg.internal
            && Some(f.dst) == ports[to].mac
            && (relay || egress);
    }
    if fk == PortKind::Gateway {
        return tk == PortKind::Container;
    }
    let endpoint = |k: PortKind| k == PortKind::Container || k == PortKind::Tunnel;
    if fk == PortKind::Tunnel && tk == PortKind::Tunnel {
        return false;
    }
    if !cfg.icc && endpoint(fk) && endpoint(tk) {
        return false;
    }
    if cfg.internal {
        let addr = match (fk, tk, f.l3) {
            (f, PortKind::Host, OL3::V4 { dst, .. }) if endpoint(f) => Some(IpAddr::V4(dst)),
            (f, PortKind::Host, OL3::V6 { dst, .. }) if endpoint(f) => Some(IpAddr::V6(dst)),
            (PortKind::Host, t, OL3::V4 { src, .. }) if endpoint(t) => Some(IpAddr::V4(src)),
            (PortKind::Host, t, OL3::V6 { src, .. }) if endpoint(t) => Some(IpAddr::V6(src)),
            _ => None,
        };
        if let Some(a) = addr {
            if !in_subnets(a) && !link_scoped(a) {
                return false;
            }
        }
    }
    true
}

/// The port owning `a` among `ports` (the oracle's address table).
fn owner(ports: &[OPort], a: Ipv4Addr) -> Option<usize> {
    ports
        .iter()
        .position(|p| p.mac.is_some() && p.kind != PortKind::Gateway && p.v4.contains(&a))
}

/// The expected ARP reply bytes, built by hand.
fn expected_reply(f: &OFrame, owner_mac: [u8; 6]) -> Vec<u8> {
    let OL3::Arp { sha, spa, tpa, .. } = f.l3 else {
        unreachable!()
    };
    let mut r = Vec::new();
    r.extend_from_slice(&f.src);
    r.extend_from_slice(&owner_mac);
    if let Some(tci) = f.vlan {
        r.extend_from_slice(&[0x81, 0x00]);
        r.extend_from_slice(&tci.to_be_bytes());
    }
    r.extend_from_slice(&[0x08, 0x06, 0, 1, 8, 0, 6, 4, 0, 2]);
    r.extend_from_slice(&owner_mac);
    r.extend_from_slice(&tpa.octets());
    r.extend_from_slice(&sha);
    r.extend_from_slice(&spa.octets());
    r
}

const V4_POOL: [Ipv4Addr; 10] = [
    GW4,
    Ipv4Addr::new(10, 0, 0, 2),
    Ipv4Addr::new(10, 0, 0, 3),
    Ipv4Addr::new(10, 0, 0, 4),
    Ipv4Addr::new(10, 0, 0, 99),
    Ipv4Addr::new(8, 8, 8, 8),
    Ipv4Addr::UNSPECIFIED,
    Ipv4Addr::BROADCAST,
    Ipv4Addr::new(169, 254, 1, 1),
    Ipv4Addr::new(224, 0, 0, 5),
];

fn v6_pool(i: usize) -> Ipv6Addr {
    match i % 9 {
        0 => GW6,
        1..=3 => container_v6(i % 9 - 1),
        4 => Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 0x99),
        5 => Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1),
        6 => Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 1),
        7 => Ipv6Addr::UNSPECIFIED,
        _ => Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1),
    }
}

fn mac_pool(i: usize) -> [u8; 6] {
    match i % 11 {
        0 => HOST_MAC,
        1..=4 => container_mac(i % 11 - 1),
        5 => [0xff; 6],
        6 => [0x01, 0x00, 0x5e, 0, 0, 1],
        7 => [0x33, 0x33, 0, 0, 0, 1],
        8 => [0; 6],
        9 => [0x01, 0x80, 0xc2, 0, 0, 0],
        _ => [0x02, 0x99, 0, 0, 0, 7],
    }
}

/// One random frame: indexes into the pools and a shape.
#[derive(Debug, Clone)]
struct Spec {
    port: usize,
    src: usize,
    dst: usize,
    kind: u8,
    a: usize,
    b: usize,
    arp_sha: usize,
    op: u16,
    vlan: Option<u16>,
    truncate: Option<usize>,
    garbage: Vec<u8>,
    dt_ms: u64,
    dport: u16,
}

fn spec() -> impl Strategy<Value = Spec> {
    (
        (
            0usize..8,
            0usize..11,
            0usize..11,
            0u8..6,
            0usize..10,
            0usize..10,
        ),
        (
            0usize..11,
            1u16..3,
            proptest::option::weighted(0.1, 0u16..0x1000),
            proptest::option::weighted(0.1, 0usize..80),
        ),
        (
            proptest::collection::vec(any::<u8>(), 0..64),
            prop_oneof![Just(0u64), 0u64..2_000, 250_000u64..400_000],
            prop_oneof![Just(2u16), Just(60999), Just(61000), Just(65535)],
        ),
    )
        .prop_map(
            |(
                (port, src, dst, kind, a, b),
                (arp_sha, op, vlan, truncate),
                (garbage, dt_ms, dport),
            )| {
                Spec {
                    port,
                    src,
                    dst,
                    kind,
                    a,
                    b,
                    arp_sha,
                    op,
                    vlan,
                    truncate,
                    garbage,
                    dt_ms,
                    dport,
                }
            },
        )
}

fn build(s: &Spec) -> Vec<u8> {
    let src = MacAddr(mac_pool(s.src));
    let dst = MacAddr(mac_pool(s.dst));
    let vlan = s.vlan.map(|tci| VlanTag { tci });
    let mut f = match s.kind {
        0 | 1 => {
            let mut b = [0u8; 64];
            let repr = ArpRepr {
                op: crate::wire::ArpOp(s.op),
                sha: MacAddr(mac_pool(s.arp_sha)),
                spa: V4_POOL[s.a],
                tha: MacAddr::ZERO,
                tpa: V4_POOL[s.b],
            };
            let n = repr.emit_frame(src, dst, vlan, &mut b).expect("fits");
            b[..n].to_vec()
        }
        2 => {
            let ph = PseudoHeader::V4 {
                src: V4_POOL[s.a],
                dst: V4_POOL[s.b],
            };
            ip_frame(
                src,
                dst,
                vlan,
                ph,
                IpProtocol::UDP,
                &[],
                &udp_datagram(&ph, (1, s.dport), &s.garbage),
            )
        }
        3 => {
            let ph = PseudoHeader::V6 {
                src: v6_pool(s.a),
                dst: v6_pool(s.b),
            };
            ip_frame(
                src,
                dst,
                vlan,
                ph,
                IpProtocol::UDP,
                &[],
                &udp_datagram(&ph, (1, s.dport), &s.garbage),
            )
        }
        4 => {
            let mut f = vec![0u8; 14];
            f[..6].copy_from_slice(&dst.0);
            f[6..12].copy_from_slice(&src.0);
            f[12..14].copy_from_slice(&[0x88, 0xb5]);
            f.extend_from_slice(&s.garbage);
            f
        }
        _ => {
            // Arbitrary bytes after the MACs (any ethertype, any junk).
            let mut f = vec![0u8; 12];
            f[..6].copy_from_slice(&dst.0);
            f[6..12].copy_from_slice(&src.0);
            f.extend_from_slice(&s.garbage);
            f
        }
    };
    if let Some(n) = s.truncate {
        f.truncate(n);
    }
    f
}

fn setup(
    cfg: OConfig,
    host: bool,
    gateway: bool,
    containers: usize,
    tunnels: usize,
    cap: usize,
) -> (Switch, Vec<OPort>) {
    let mut sw = Switch::new(SwitchConfig {
        subnets: vec![
            "10.0.0.0/24".parse().expect("net"),
            "fd00::/64".parse().expect("net"),
        ],
        enable_icc: cfg.icc,
        internal: cfg.internal,
        anti_spoofing: cfg.anti_spoofing,
        fdb_cap: cap,
        ageing: DEFAULT_AGEING,
        flood_to_tunnel: true,
    });
    let mut ports = Vec::new();
    let mut add = |sw: &mut Switch, p: OPort| {
        let mut c = PortConfig::new(p.kind);
        c.mac = p.mac.map(MacAddr);
        c.ipv4 = p.v4.clone();
        c.ipv6 = p.v6.clone();
        let id = sw.add_port(c).expect("add");
        assert_eq!(id.index(), ports.len());
        ports.push(p);
    };
    if host {
        add(
            &mut sw,
            OPort {
                kind: PortKind::Host,
                mac: Some(HOST_MAC),
                v4: vec![GW4],
                v6: vec![GW6],
            },
        );
    }
    for i in 0..containers {
        add(
            &mut sw,
            OPort {
                kind: PortKind::Container,
                mac: Some(container_mac(i)),
                v4: vec![container_v4(i)],
                v6: vec![container_v6(i)],
            },
        );
    }
    if gateway {
        add(
            &mut sw,
            OPort {
                kind: PortKind::Gateway,
                mac: Some(HOST_MAC),
                v4: vec![GW4],
                v6: vec![GW6],
            },
        );
    }
    for _ in 0..tunnels {
        add(
            &mut sw,
            OPort {
                kind: PortKind::Tunnel,
                mac: None,
                v4: vec![],
                v6: vec![],
            },
        );
    }
    (sw, ports)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn no_forbidden_frame_ever_leaves(
        icc in any::<bool>(),
        internal in any::<bool>(),
        anti_spoofing in any::<bool>(),
        host in any::<bool>(),
        gateway in any::<bool>(),
        containers in 1usize..=4,
        tunnels in 0usize..=2,
        cap in 1usize..8,
        specs in proptest::collection::vec(spec(), 1..60),
    ) {
        let cfg = OConfig { icc, internal, anti_spoofing };
        let (mut sw, ports) = setup(cfg, host, gateway, containers, tunnels, cap);
        let mut out = Decisions::default();
        let mut now_ms = 0u64;
        for s in &specs {
            now_ms += s.dt_ms;
            let in_port = s.port % ports.len();
            let frame = build(s);
            out.clear();
            let verdict = sw.process(PortId(in_port as u16), &frame, Duration::from_millis(now_ms), &mut out);
            prop_assert!(sw.fdb().len() <= cap);
            let parsed = oracle_parse(&frame);
            let allowed_in = parsed.as_ref().is_some_and(|f| oracle_ingress(&cfg, &ports[in_port], f));
            if !allowed_in {
                prop_assert!(out.tx().is_empty(), "forbidden at ingress but sent: {verdict:?}");
                prop_assert!(matches!(verdict, Verdict::Drop(_)));
                continue;
            }
            let Some(f) = parsed else { unreachable!() };
            // The gateway MAC is never learned on the gateway port.
            if let Some(g) = ports.iter().position(|p| p.kind == PortKind::Gateway) {
                prop_assert!(sw.fdb().get(&MacAddr(HOST_MAC), now_ms) != Some(PortId(g as u16)));
                // What the oracle says may reach the gateway goes there and nowhere else.
                let complete = etherparse::SlicedPacket::from_ethernet(&frame).is_ok();
                if complete && oracle_egress(&cfg, &ports, in_port, g, &f) {
                    let got: Vec<usize> = out.tx().iter().map(|t| t.port.index()).collect();
                    prop_assert_eq!(got, vec![g]);
                }
            }
            for tx in out.tx() {
                let to = tx.port.index();
                match tx.frame {
                    FrameRef::Input(i) => {
                        prop_assert_eq!(i, 0);
                        prop_assert!(oracle_egress(&cfg, &ports, in_port, to, &f),
                            "forbidden {:?}: {} -> {} ({:?})", f.l3, in_port, to, verdict);
                    }
                    FrameRef::Reply(r) => {
                        // Only as an answer to a request for a registered address, out of the
                        // input port, when the request could have reached the owner.
                        prop_assert_eq!(to, in_port);
                        let OL3::Arp { op, spa, tpa, .. } = f.l3 else {
                            return Err(TestCaseError::fail("reply to a non-ARP frame"));
                        };
                        prop_assert_eq!(op, 1);
                        prop_assert!(spa != tpa);
                        let o = owner(&ports, tpa).ok_or_else(|| TestCaseError::fail("no owner"))?;
                        prop_assert!(o != in_port);
                        prop_assert!(oracle_egress(&cfg, &ports, in_port, o, &f));
                        let owner_mac = ports[o].mac.ok_or_else(|| TestCaseError::fail("no mac"))?;
                        prop_assert_eq!(out.reply(r), &expected_reply(&f, owner_mac)[..]);
                    }
                }
            }
            // A broadcast that the switch does not answer itself goes to exactly the ports
            // the policy allows (no FDB involved).
            let answered = matches!(f.l3, OL3::Arp { op: 1, spa, tpa, .. }
                if spa != tpa && owner(&ports, tpa).is_some_and(|o| o != in_port));
            let complete = etherparse::SlicedPacket::from_ethernet(&frame).is_ok();
            if f.dst == [0xff; 6] && !answered && complete {
                let mut want: Vec<usize> = (0..ports.len())
                    .filter(|&p| oracle_egress(&cfg, &ports, in_port, p, &f))
                    .collect();
                let mut got: Vec<usize> = out.tx().iter().map(|t| t.port.index()).collect();
                want.sort_unstable();
                got.sort_unstable();
                prop_assert_eq!(got, want);
            }
        }
    }
}
