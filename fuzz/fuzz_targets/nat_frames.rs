//! The gateway's NAT state machine: arbitrary frames (structured TCP/UDP/ICMP from containers
//! with valid checksums, and raw bytes), time steps and fake host events (connect results,
//! EOF, resets, UDP and ICMP replies, published-port connections and datagrams) and fake host
//! socket I/O for the TCP relay (pulls reading given bytes then ending on would-block, EOF or
//! an error; pushes accepting a given number of bytes, likewise), both on request
//! (`TcpPull`/`TcpPush` actions) and unasked. No real sockets: other host actions are only
//! recorded. TCP frames also come as GSO super-frames (checksum not verified), and in the
//! engine's own buffers. Invariants: nothing panics; every emitted frame, once its
//! virtio-net offloads are resolved as the datapath does for a port without offloads, parses,
//! comes from the gateway MAC, goes to a known container MAC and has valid IPv4 header and
//! TCP/UDP/ICMP checksums; the flow count never exceeds the cap; the I/O closures are never
//! given an empty buffer, and no push hands over more than the container sent.
#![no_main]

use std::collections::HashSet;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use vswitch::gateway::{check_emitted, Action, Nat, NatConfig};
use vswitch::wire::checksum::{self, PseudoHeader};
use vswitch::wire::vnet_hdr::resolve_offloads;
use vswitch::wire::{
    tcp, EtherType, EthernetRepr, IpProtocol, Ipv4Repr, Ipv6Repr, MacAddr, TcpPacket, UdpPacket,
};

const GW_MAC: MacAddr = MacAddr([2, 0, 0, 0, 0, 1]);
const MAX_FLOWS: usize = 16;
/// Rings of 64 KiB, not the daemon's 2 MiB: the same logic (a GSO frame still fits) without
/// megabytes of page faults per execution.
const TCP_RING: usize = 64 * 1024;

fn container(i: u8) -> (MacAddr, Ipv4Addr, Ipv6Addr) {
    let n = i % 3 + 2;
    (
        MacAddr([2, 0x42, 172, 18, 0, n]),
        Ipv4Addr::new(172, 18, 0, n),
        Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, u16::from(n)),
    )
}

fn remote(i: u8, v6: bool) -> IpAddr {
    match (i % 5, v6) {
        (0, false) => IpAddr::V4(Ipv4Addr::new(93, 184, 216, 34)),
        (1, false) => IpAddr::V4(Ipv4Addr::new(172, 18, 0, 1)), // the gateway (relays)
        (2, false) => IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1)),
        (3, false) => IpAddr::V4(Ipv4Addr::new(172, 18, 0, 3)),
        (_, false) => IpAddr::V4(Ipv4Addr::new(8, 8, 8, 8)),
        (0, true) => IpAddr::V6("2001:db8::1".parse().unwrap_or(Ipv6Addr::LOCALHOST)),
        (1, true) => IpAddr::V6("fd00::1".parse().unwrap_or(Ipv6Addr::LOCALHOST)),
        (2, true) => IpAddr::V6(Ipv6Addr::LOCALHOST),
        (_, true) => IpAddr::V6("2001:db8::2".parse().unwrap_or(Ipv6Addr::LOCALHOST)),
    }
}

fn port(i: u8) -> u16 {
    match i % 6 {
        0 => 80,
        1 => 443,
        2 => 53,
        3 => 61000,
        4 => 61001,
        _ => 40000 + u16::from(i),
    }
}

#[derive(Arbitrary, Debug)]
enum Op {
    Raw(Vec<u8>),
    Tcp {
        c: u8,
        v6: bool,
        r: u8,
        sport: u8,
        dport: u8,
        seq: u32,
        ack: u32,
        flags: u8,
        window: u16,
        payload: Vec<u8>,
        /// Handed over as a GSO super-frame (checksum left unverified).
        gso: bool,
        /// Handed over in a buffer of the engine ([`Nat::handle_frame_buf`]).
        owned: bool,
    },
    Udp {
        c: u8,
        v6: bool,
        r: u8,
        sport: u8,
        dport: u8,
        payload: Vec<u8>,
    },
    Echo {
        c: u8,
        v6: bool,
        r: u8,
        ident: u16,
        seq: u16,
        payload: Vec<u8>,
    },
    Advance(u16),
    Connected {
        flow: u8,
        ok: bool,
    },
    /// An unasked pull: the host socket holds `data`, then `end`.
    HostPull {
        flow: u8,
        data: Vec<u8>,
        end: End,
    },
    /// An unasked push: the host socket takes up to `n` bytes, then `end`.
    HostPush {
        flow: u8,
        n: u16,
        end: End,
    },
    /// How the fake host socket answers the `TcpPull`/`TcpPush` actions from now on.
    HostSocket {
        data: Vec<u8>,
        take: u16,
        end: End,
    },
    HostEof {
        flow: u8,
    },
    HostReset {
        flow: u8,
    },
    UdpReply {
        flow: u8,
        data: Vec<u8>,
    },
    IcmpReply {
        r: u8,
        v6: bool,
        ident: u16,
        seq: u16,
        raw: Option<Vec<u8>>,
    },
    TcpInbound {
        c: u8,
        v6: bool,
        dport: u8,
    },
    UdpInbound {
        publication: u8,
        client: u8,
        c: u8,
        data: Vec<u8>,
    },
    Neighbor {
        c: u8,
        remove: bool,
    },
}

/// What a fake host socket does once its bytes (or room) are used up.
#[derive(Arbitrary, Debug, Clone, Copy)]
enum End {
    WouldBlock,
    Eof,
    Error,
    Interrupted,
}

impl End {
    fn result(self) -> io::Result<usize> {
        match self {
            End::WouldBlock => Err(io::ErrorKind::WouldBlock.into()),
            End::Eof => Ok(0),
            End::Error => Err(io::ErrorKind::ConnectionReset.into()),
            End::Interrupted => Err(io::ErrorKind::Interrupted.into()),
        }
    }

    /// What the socket says once its data is done: an interruption once, then would-block.
    fn after_data(self, interrupted: &mut bool) -> io::Result<usize> {
        match self {
            End::Interrupted if *interrupted => Err(io::ErrorKind::WouldBlock.into()),
            End::Interrupted => {
                *interrupted = true;
                self.result()
            }
            e => e.result(),
        }
    }
}

/// Bytes the host socket holds: `data`, then `end` (an interruption ends it once).
fn fake_pull(nat: &mut Nat, flow: u64, data: &[u8], end: End) {
    let mut off = 0;
    let mut interrupted = false;
    nat.tcp_pull_from_host(flow, |b| {
        assert!(!b.is_empty(), "pull into an empty buffer");
        if off < data.len() {
            let k = b.len().min(data.len() - off);
            b[..k].copy_from_slice(&data[off..off + k]);
            off += k;
            return Ok(k);
        }
        end.after_data(&mut interrupted)
    });
}

/// Room in the host socket: `n` bytes, then `end`; returns the bytes taken.
fn fake_push(nat: &mut Nat, flow: u64, n: usize, end: End) -> usize {
    let mut taken = 0;
    let mut interrupted = false;
    nat.tcp_push_to_host(flow, |b| {
        assert!(!b.is_empty(), "push from an empty buffer");
        if taken < n {
            let k = b.len().min(n - taken);
            taken += k;
            return Ok(k);
        }
        end.after_data(&mut interrupted)
    });
    taken
}

fn frame(
    src_mac: MacAddr,
    src: IpAddr,
    dst: IpAddr,
    proto: IpProtocol,
    l4: &[u8],
) -> Option<Vec<u8>> {
    let v6 = src.is_ipv6();
    let eth = EthernetRepr {
        src: src_mac,
        dst: GW_MAC,
        vlan: None,
        ethertype: if v6 { EtherType::IPV6 } else { EtherType::IPV4 },
    };
    let mut f = vec![0u8; 14 + if v6 { 40 } else { 20 } + l4.len()];
    eth.emit(&mut f).ok()?;
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => Ipv4Repr {
            src: s,
            dst: d,
            protocol: proto,
            payload_len: l4.len(),
            ttl: 64,
        }
        .emit(&mut f[14..])
        .ok()?,
        (IpAddr::V6(s), IpAddr::V6(d)) => Ipv6Repr {
            src: s,
            dst: d,
            next_header: proto,
            payload_len: l4.len(),
            hop_limit: 64,
        }
        .emit(&mut f[14..])
        .ok()?,
        _ => return None,
    };
    let off = f.len() - l4.len();
    f[off..].copy_from_slice(l4);
    Some(f)
}

fn ph(src: IpAddr, dst: IpAddr) -> Option<PseudoHeader> {
    match (src, dst) {
        (IpAddr::V4(src), IpAddr::V4(dst)) => Some(PseudoHeader::V4 { src, dst }),
        (IpAddr::V6(src), IpAddr::V6(dst)) => Some(PseudoHeader::V6 { src, dst }),
        _ => None,
    }
}

fn echo(v6: bool, ph: Option<PseudoHeader>, ty: u8, ident: u16, seq: u16, data: &[u8]) -> Vec<u8> {
    let mut m = vec![ty, 0, 0, 0];
    m.extend_from_slice(&ident.to_be_bytes());
    m.extend_from_slice(&seq.to_be_bytes());
    m.extend_from_slice(data);
    let acc = match ph.filter(|_| v6) {
        Some(p) => p.sum(IpProtocol::ICMPV6, m.len() as u32),
        None => 0,
    };
    let c = !checksum::fold(checksum::accumulate(acc, &m));
    m[2..4].copy_from_slice(&c.to_be_bytes());
    m
}

fn addr(c: u8, v6: bool) -> (MacAddr, IpAddr) {
    let (mac, a4, a6) = container(c);
    (mac, if v6 { IpAddr::V6(a6) } else { IpAddr::V4(a4) })
}

fuzz_target!(|ops: Vec<Op>| {
    let cfg = NatConfig {
        gateway_mac: GW_MAC,
        gateway_v4: Some(Ipv4Addr::new(172, 18, 0, 1)),
        gateway_v6: Some("fd00::1".parse().unwrap_or(Ipv6Addr::LOCALHOST)),
        subnets: vec![
            "172.18.0.0/16".parse().expect("net"),
            "fd00::/64".parse().expect("net"),
        ],
        mtu: 1500,
        max_flows: MAX_FLOWS,
        allow_loopback: false,
        isolation: Default::default(),
        tcp_buffer: TCP_RING,
    };
    let mut nat = Nat::new(cfg, Duration::ZERO, 1);
    let mut now = Duration::from_millis(1);
    let mut tcp_flows: Vec<u64> = Vec::new();
    let mut udp_flows: Vec<u64> = Vec::new();
    let mut known_macs: HashSet<MacAddr> = HashSet::new();
    let mut scratch = vec![0u8; 70_000];
    // TCP payload bytes containers sent (a bound on what pushes may hand over); the fake host
    // socket answering requested transfers.
    let mut sent_by_container: u64 = 0;
    let mut pushed: u64 = 0;
    let mut socket: (Vec<u8>, usize, End) = (Vec::new(), usize::MAX, End::WouldBlock);
    let pick = |v: &Vec<u64>, i: u8| -> u64 {
        if v.is_empty() {
            u64::from(i)
        } else {
            v[usize::from(i) % v.len()]
        }
    };
    for op in ops.into_iter().take(256) {
        match op {
            Op::Raw(b) => {
                // The engine may learn the source MAC of whatever parses.
                if b.len() >= 12 {
                    known_macs.insert(MacAddr([b[6], b[7], b[8], b[9], b[10], b[11]]));
                }
                nat.handle_frame(now, &b)
            }
            Op::Tcp {
                c,
                v6,
                r,
                sport,
                dport,
                seq,
                ack,
                flags,
                window,
                payload,
                gso,
                owned,
            } => {
                let (mac, src) = addr(c, v6);
                let dst = remote(r, v6);
                let Some(ph) = ph(src, dst) else { continue };
                let mut t = vec![0u8; 20];
                if tcp::emit_header(&mut t, port(sport), port(dport), seq, ack, flags, window)
                    .is_err()
                {
                    continue;
                }
                t.extend_from_slice(&payload);
                if let Ok(mut p) = TcpPacket::new_checked(&mut t[..]) {
                    p.fill_checksum(&ph);
                }
                if let Some(f) = frame(mac, src, dst, IpProtocol::TCP, &t) {
                    known_macs.insert(mac);
                    sent_by_container += payload.len() as u64;
                    if owned {
                        let mut b = nat.rx_buffer(f.len() + 10);
                        b[10..10 + f.len()].copy_from_slice(&f);
                        nat.handle_frame_buf(now, b, 10..10 + f.len(), !gso);
                    } else if gso {
                        nat.handle_gso_frame(now, &f);
                    } else {
                        nat.handle_frame(now, &f);
                    }
                }
            }
            Op::Udp {
                c,
                v6,
                r,
                sport,
                dport,
                payload,
            } => {
                let (mac, src) = addr(c, v6);
                let dst = remote(r, v6);
                let Some(ph) = ph(src, dst) else { continue };
                let mut u = vec![0u8; 8];
                u[0..2].copy_from_slice(&port(sport).to_be_bytes());
                u[2..4].copy_from_slice(&port(dport).to_be_bytes());
                u[4..6].copy_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
                u.extend_from_slice(&payload);
                if let Ok(mut p) = UdpPacket::new_checked(&mut u[..]) {
                    p.fill_checksum(&ph);
                }
                if let Some(f) = frame(mac, src, dst, IpProtocol::UDP, &u) {
                    known_macs.insert(mac);
                    nat.handle_frame(now, &f);
                }
            }
            Op::Echo {
                c,
                v6,
                r,
                ident,
                seq,
                payload,
            } => {
                let (mac, src) = addr(c, v6);
                let dst = remote(r, v6);
                let (ty, proto) = if v6 {
                    (128, IpProtocol::ICMPV6)
                } else {
                    (8, IpProtocol::ICMP)
                };
                let m = echo(v6, ph(src, dst), ty, ident, seq, &payload);
                if let Some(f) = frame(mac, src, dst, proto, &m) {
                    known_macs.insert(mac);
                    nat.handle_frame(now, &f);
                }
            }
            Op::Advance(ms) => now += Duration::from_millis(u64::from(ms) * 16),
            Op::Connected { flow, ok } => nat.tcp_connected(pick(&tcp_flows, flow), ok),
            Op::HostPull { flow, data, end } => {
                fake_pull(&mut nat, pick(&tcp_flows, flow), &data, end)
            }
            Op::HostPush { flow, n, end } => {
                pushed += fake_push(&mut nat, pick(&tcp_flows, flow), usize::from(n), end) as u64
            }
            Op::HostSocket { data, take, end } => socket = (data, usize::from(take), end),
            Op::HostEof { flow } => nat.tcp_host_eof(pick(&tcp_flows, flow)),
            Op::HostReset { flow } => nat.tcp_host_reset(pick(&tcp_flows, flow)),
            Op::UdpReply { flow, data } => nat.udp_host_data(now, pick(&udp_flows, flow), &data),
            Op::IcmpReply {
                r,
                v6,
                ident,
                seq,
                raw,
            } => {
                let src = remote(r, v6);
                let m = raw
                    .unwrap_or_else(|| echo(v6, None, if v6 { 129 } else { 0 }, ident, seq, b"x"));
                nat.icmp_host_reply(now, src, &m);
            }
            Op::TcpInbound { c, v6, dport } => {
                let (mac, ip) = addr(c, v6);
                nat.add_neighbor(ip, mac);
                known_macs.insert(mac);
                if let Ok(f) = nat.tcp_inbound(SocketAddr::new(ip, port(dport))) {
                    tcp_flows.push(f);
                }
            }
            Op::UdpInbound {
                publication,
                client,
                c,
                data,
            } => {
                let (mac, ip) = addr(c, false);
                nat.add_neighbor(ip, mac);
                known_macs.insert(mac);
                let client = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(198, 51, 100, client)), 4000);
                if let Ok(f) = nat.udp_inbound(
                    now,
                    u64::from(publication % 4),
                    client,
                    SocketAddr::new(ip, 53),
                    &data,
                ) {
                    udp_flows.push(f);
                }
            }
            Op::Neighbor { c, remove } => {
                let (mac, a4, _) = container(c);
                if remove {
                    nat.remove_neighbor(IpAddr::V4(a4));
                } else {
                    nat.add_neighbor(IpAddr::V4(a4), mac);
                    known_macs.insert(mac);
                }
            }
        }
        nat.poll(now);
        assert!(nat.flow_count() <= MAX_FLOWS);
        while let Some((h, mut whole)) = nat.pop_offloaded_frame() {
            let mut frames = Vec::new();
            if let Err(e) =
                resolve_offloads(&mut whole, &h, &mut scratch, |f| frames.push(f.to_vec()))
            {
                panic!("offloads the datapath cannot resolve: {e:?}: {h:?}");
            }
            for f in frames {
                if let Err(e) = check_emitted(&f) {
                    panic!("invalid frame emitted: {e}: {f:02x?}");
                }
                assert_eq!(&f[6..12], &GW_MAC.0);
                let dst = MacAddr([f[0], f[1], f[2], f[3], f[4], f[5]]);
                assert!(known_macs.contains(&dst), "frame to an unknown MAC {dst}");
            }
            nat.recycle(whole);
        }
        assert!(pushed <= sent_by_container, "pushed more than the container sent");
        while let Some(a) = nat.pop_action() {
            match a {
                Action::TcpConnect { flow, dst } => {
                    assert!(!dst.ip().is_loopback() && !dst.ip().is_multicast());
                    tcp_flows.push(flow);
                }
                Action::UdpOpen { flow, dst } => {
                    assert!(!dst.ip().is_loopback() && !dst.ip().is_multicast());
                    udp_flows.push(flow);
                }
                Action::TcpClose { flow, .. } => tcp_flows.retain(|f| *f != flow),
                Action::UdpClose { flow } => udp_flows.retain(|f| *f != flow),
                Action::IcmpEcho { dst, message } => {
                    assert!(!dst.is_loopback());
                    assert!(message.len() >= 8);
                }
                Action::TcpPull { flow } => fake_pull(&mut nat, flow, &socket.0, socket.2),
                Action::TcpPush { flow } => {
                    pushed += fake_push(&mut nat, flow, socket.1, socket.2) as u64
                }
                Action::TcpShutdown { .. } | Action::UdpSend { .. } => {}
            }
        }
    }
});
