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
    flood_to_tunnel: bool,
}

/// The oracle's remote endpoints: MAC → (tunnel port, addresses).
type ORemotes = std::collections::HashMap<[u8; 6], (usize, Vec<Ipv4Addr>)>;

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

/// The port owning `a` among `ports`, else the remote endpoint holding it: (port, MAC).
fn owner(ports: &[OPort], remotes: &ORemotes, a: Ipv4Addr) -> Option<(usize, [u8; 6])> {
    let local = ports
        .iter()
        .enumerate()
        .find(|(_, p)| p.mac.is_some() && p.kind != PortKind::Gateway && p.v4.contains(&a));
    if let Some((i, p)) = local {
        return p.mac.map(|m| (i, m));
    }
    remotes
        .iter()
        .find(|(_, (_, ips))| ips.contains(&a))
        .map(|(m, (t, _))| (*t, *m))
}

/// A remote endpoint to register: indexes into the pools.
#[derive(Debug, Clone)]
struct RemoteSpec {
    tunnel: usize,
    mac: usize,
    ips: Vec<usize>,
}

fn remote_spec() -> impl Strategy<Value = RemoteSpec> {
    (
        0usize..3,
        prop_oneof![2 => Just(10usize), 1 => 0usize..11],
        proptest::collection::vec(prop_oneof![3 => 3usize..5, 1 => 0usize..10], 0..3),
    )
        .prop_map(|(tunnel, mac, ips)| RemoteSpec { tunnel, mac, ips })
}

/// Registers `r` and checks the switch's answer against the oracle's rules: never a local
/// port's MAC or address; otherwise accepted when the MAC, addresses and tunnel are valid.
fn register_remote(
    sw: &mut Switch,
    ports: &[OPort],
    remotes: &mut ORemotes,
    r: &RemoteSpec,
) -> Result<(), TestCaseError> {
    let tunnels: Vec<usize> = (0..ports.len())
        .filter(|&p| ports[p].kind == PortKind::Tunnel)
        .collect();
    let Some(&tunnel) = tunnels.get(r.tunnel % tunnels.len().max(1)) else {
        return Ok(());
    };
    let mac = mac_pool(r.mac);
    let ips: Vec<Ipv4Addr> = r.ips.iter().map(|&i| V4_POOL[i]).collect();
    let addrs: Vec<IpAddr> = ips.iter().map(|a| IpAddr::V4(*a)).collect();
    let got = sw.set_remote_endpoint(PortId(tunnel as u16), MacAddr(mac), &addrs);
    let local_mac = ports.iter().any(|p| p.mac == Some(mac));
    let local_ip = ips
        .iter()
        .any(|a| owner(ports, &ORemotes::new(), *a).is_some());
    let valid_mac = mac[0] & 1 == 0 && mac != [0; 6];
    let valid_ips = ips.iter().all(|a| !a.is_unspecified() && !a.is_multicast())
        && (1..ips.len()).all(|i| !ips[..i].contains(&ips[i]));
    if local_mac || local_ip {
        prop_assert!(got.is_err(), "remote took a local MAC or address: {r:?}");
    }
    let want_ok = valid_mac && valid_ips && !local_mac && !local_ip;
    prop_assert_eq!(got.is_ok(), want_ok, "{:?} -> {:?}", r, got);
    if want_ok {
        for (_, (_, old)) in remotes.iter_mut() {
            old.retain(|a| !ips.contains(a));
        }
        remotes.insert(mac, (tunnel, ips));
    }
    Ok(())
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
        flood_to_tunnel: cfg.flood_to_tunnel,
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
        flood_to_tunnel in any::<bool>(),
        remote_specs in proptest::collection::vec(remote_spec(), 0..4),
        specs in proptest::collection::vec(spec(), 1..60),
    ) {
        let cfg = OConfig { icc, internal, anti_spoofing, flood_to_tunnel };
        let (mut sw, ports) = setup(cfg, host, gateway, containers, tunnels, cap);
        let mut remotes = ORemotes::new();
        let mut out = Decisions::default();
        let mut now_ms = 0u64;
        for (k, s) in specs.iter().enumerate() {
            // Remote endpoints: registered up front, some removed halfway.
            if k == 0 {
                for r in &remote_specs {
                    register_remote(&mut sw, &ports, &mut remotes, r)?;
                }
            }
            if k == specs.len() / 2 {
                for r in remote_specs.iter().step_by(2) {
                    let mac = mac_pool(r.mac);
                    prop_assert_eq!(
                        sw.remove_remote_endpoint(MacAddr(mac)),
                        remotes.remove(&mac).is_some()
                    );
                }
            }
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
            let is_tunnel = |p: usize| ports[p].kind == PortKind::Tunnel;
            // A local port's MAC never points at a tunnel; a remote one always at its own.
            for p in ports.iter().filter(|p| p.kind != PortKind::Tunnel) {
                if let Some(m) = p.mac {
                    let at = sw.fdb().get(&MacAddr(m), now_ms);
                    let on_tunnel = at.is_some_and(|q| is_tunnel(q.index()));
                    prop_assert!(!on_tunnel, "local MAC on a tunnel");
                }
            }
            for (m, (t, _)) in &remotes {
                prop_assert_eq!(sw.fdb().get(&MacAddr(*m), now_ms), Some(PortId(*t as u16)));
            }
            // Nothing is learned from a tunnel in cluster mode.
            if !cfg.flood_to_tunnel && is_tunnel(in_port) && !remotes.contains_key(&f.src) {
                prop_assert!(sw.fdb().get(&MacAddr(f.src), now_ms) != Some(PortId(in_port as u16)));
            }
            let flooded = matches!(verdict, Verdict::Flood { .. });
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
                        // No flood over the underlay in cluster mode.
                        prop_assert!(!(flooded && is_tunnel(to) && !cfg.flood_to_tunnel),
                            "flooded to a tunnel in cluster mode");
                        // A unicast into a tunnel is for a MAC that is not a local port's.
                        if is_tunnel(to) && !flooded {
                            prop_assert!(!ports.iter().any(|p| p.mac == Some(f.dst)));
                        }
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
                        let (o, owner_mac) = owner(&ports, &remotes, tpa)
                            .ok_or_else(|| TestCaseError::fail("no owner"))?;
                        prop_assert!(o != in_port);
                        prop_assert!(oracle_egress(&cfg, &ports, in_port, o, &f));
                        prop_assert_eq!(out.reply(r), &expected_reply(&f, owner_mac)[..]);
                    }
                }
            }
            // A broadcast that the switch does not answer itself goes to exactly the ports
            // the policy allows (no FDB involved).
            let answered = matches!(f.l3, OL3::Arp { op: 1, spa, tpa, .. }
                if spa != tpa && owner(&ports, &remotes, tpa).is_some_and(|(o, _)| o != in_port));
            let complete = etherparse::SlicedPacket::from_ethernet(&frame).is_ok();
            if f.dst == [0xff; 6] && !answered && complete {
                let mut want: Vec<usize> = (0..ports.len())
                    .filter(|&p| oracle_egress(&cfg, &ports, in_port, p, &f))
                    .filter(|&p| cfg.flood_to_tunnel || !is_tunnel(p))
                    .collect();
                let mut got: Vec<usize> = out.tx().iter().map(|t| t.port.index()).collect();
                want.sort_unstable();
                got.sort_unstable();
                prop_assert_eq!(got, want);
            }
            // A unicast to a remote MAC goes to its tunnel (a static entry), when the policy
            // allows it.
            if let Some((t, _)) = remotes.get(&f.dst) {
                if complete && !answered && oracle_egress(&cfg, &ports, in_port, *t, &f) {
                    let got: Vec<usize> = out.tx().iter().map(|t| t.port.index()).collect();
                    prop_assert_eq!(got, vec![*t]);
                }
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    /// A cluster overlay (no flooding to the tunnel) with remote endpoints: ARP for a remote
    /// address is answered with its MAC (when ICC allows it), unicast to it goes to the tunnel
    /// only, and nothing else ever enters the tunnel.
    #[test]
    fn cluster_overlay_answers_remote_arp_and_floods_nothing(
        icc in any::<bool>(),
        containers in 1usize..=3,
        remote_count in 1usize..=3,
        frames in proptest::collection::vec((0usize..5, 0u8..4, 0usize..8), 1..40),
    ) {
        let cfg = OConfig { icc, internal: false, anti_spoofing: true, flood_to_tunnel: false };
        let (mut sw, ports) = setup(cfg, true, false, containers, 1, 64);
        let tunnel = ports.len() - 1;
        let rmac = |i: usize| [0x02, 0x42, 10, 0, 1, i as u8];
        let rip = |i: usize| Ipv4Addr::new(10, 0, 1, i as u8);
        for i in 0..remote_count {
            let t = PortId(tunnel as u16);
            sw.set_remote_endpoint(t, MacAddr(rmac(i)), &[IpAddr::V4(rip(i))])
                .map_err(|e| TestCaseError::fail(e.to_string()))?;
        }
        let mut out = Decisions::default();
        for (k, &(sender, kind, target)) in frames.iter().enumerate() {
            // Senders: the host port (0) or a container, with their own addresses.
            let from = sender % (containers + 1);
            let (smac, sip) = if from == 0 {
                (HOST_MAC, GW4)
            } else {
                (container_mac(from - 1), container_v4(from - 1))
            };
            let remote = target % 4 < remote_count;
            let (tmac, tip) = if remote {
                (rmac(target % 4), rip(target % 4))
            } else {
                ([0x02, 0x42, 10, 0, 9, 9], Ipv4Addr::new(10, 0, 9, 9))
            };
            let frame = match kind {
                0 => {
                    let req = ArpRepr::request(MacAddr(smac), sip, tip);
                    let mut b = [0u8; 64];
                    let n = req
                        .emit_frame(MacAddr(smac), MacAddr::BROADCAST, None, &mut b)
                        .expect("fits");
                    b[..n].to_vec()
                }
                1 => {
                    let ph = PseudoHeader::V4 { src: sip, dst: tip };
                    let udp = udp_datagram(&ph, (1, 2), b"x");
                    ip_frame(MacAddr(smac), MacAddr(tmac), None, ph, IpProtocol::UDP, &[], &udp)
                }
                2 => {
                    let ph = PseudoHeader::V4 { src: sip, dst: Ipv4Addr::BROADCAST };
                    let udp = udp_datagram(&ph, (1, 2), b"x");
                    let bc = MacAddr::BROADCAST;
                    ip_frame(MacAddr(smac), bc, None, ph, IpProtocol::UDP, &[], &udp)
                }
                _ => {
                    let dst = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 1, 0xff00, 9);
                    let ph = PseudoHeader::V6 { src: container_v6(0), dst };
                    let udp = udp_datagram(&ph, (1, 2), b"x");
                    let mc = MacAddr([0x33, 0x33, 0xff, 0, 0, 9]);
                    ip_frame(MacAddr(smac), mc, None, ph, IpProtocol::UDP, &[], &udp)
                }
            };
            out.clear();
            let now = Duration::from_millis(k as u64);
            let v = sw.process(PortId(from as u16), &frame, now, &mut out);
            let to: Vec<usize> = out.tx().iter().map(|t| t.port.index()).collect();
            // Container to remote is container to container for ICC; the host port may always.
            let allowed = icc || from == 0;
            match kind {
                0 if remote && allowed => {
                    prop_assert_eq!(v, Verdict::ArpReply);
                    prop_assert_eq!(&to, &vec![from]);
                    let f = oracle_parse(&frame).expect("parses");
                    prop_assert_eq!(out.reply(0), &expected_reply(&f, tmac)[..]);
                }
                0 if remote => prop_assert_eq!(v, Verdict::Drop(DropReason::Icc)),
                1 if remote && allowed => prop_assert_eq!(&to, &vec![tunnel]),
                1 if remote => prop_assert_eq!(v, Verdict::Drop(DropReason::Icc)),
                _ => prop_assert!(!to.contains(&tunnel), "{:?} into the tunnel: {:?}", kind, v),
            }
        }
        prop_assert_eq!(sw.fdb().static_len(), remote_count);
    }
}
