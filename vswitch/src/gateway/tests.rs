//! The NAT state machine driven by hand-built frames (no sockets), and one end-to-end test
//! of the engine with real host sockets on loopback.

use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use super::nat::{self, Action, HostIo, Nat, NatConfig, NatError};
use super::{check_emitted, frame};
use crate::wire::tcp::{self as tcpw, FLAG_ACK, FLAG_FIN, FLAG_PSH, FLAG_RST, FLAG_SYN};
use crate::wire::testutil::{ip_frame, udp_datagram};
use crate::wire::{IpProtocol, MacAddr, PseudoHeader, TcpPacket, UdpPacket};

const CMAC: MacAddr = MacAddr([2, 0x42, 172, 18, 0, 2]);
const GWMAC: MacAddr = MacAddr([2, 0, 0, 0, 0, 1]);

fn sa(s: &str) -> SocketAddr {
    s.parse().expect("socket address")
}

fn config() -> NatConfig {
    NatConfig {
        gateway_mac: GWMAC,
        gateway_v4: Some(Ipv4Addr::new(172, 18, 0, 1)),
        gateway_v6: Some("fd00::1".parse().expect("v6")),
        subnets: vec![
            "172.18.0.0/16".parse().expect("net"),
            "fd00::/64".parse().expect("net"),
        ],
        mtu: 1500,
        max_flows: nat::MAX_FLOWS,
        allow_loopback: false,
        isolation: Default::default(),
        tcp_buffer: nat::TCP_BUFFER,
    }
}

fn ph(src: SocketAddr, dst: SocketAddr) -> PseudoHeader {
    frame::pseudo(src.ip(), dst.ip()).expect("same family")
}

fn tcp_frame(
    src: SocketAddr,
    dst: SocketAddr,
    seq: u32,
    ack: u32,
    flags: u8,
    payload: &[u8],
) -> Vec<u8> {
    let mut t = vec![0u8; 20];
    tcpw::emit_header(&mut t, src.port(), dst.port(), seq, ack, flags, 64_000).expect("fits");
    t.extend_from_slice(payload);
    TcpPacket::new_checked(&mut t[..])
        .expect("valid")
        .fill_checksum(&ph(src, dst));
    ip_frame(CMAC, GWMAC, None, ph(src, dst), IpProtocol::TCP, &[], &t)
}

#[derive(Debug)]
struct Seg {
    src: SocketAddr,
    dst: SocketAddr,
    seq: u32,
    ack: u32,
    flags: u8,
    payload: Vec<u8>,
}

/// Checks an emitted frame fully and returns its TCP segment.
fn seg(f: &[u8]) -> Seg {
    check_emitted(f).expect("valid frame");
    assert_eq!(&f[..6], &CMAC.0, "to the container");
    assert_eq!(&f[6..12], &GWMAC.0, "from the gateway MAC");
    let p = frame::parse(f).expect("ip");
    assert_eq!(p.proto, IpProtocol::TCP);
    let t = TcpPacket::new_checked(p.l4).expect("tcp");
    Seg {
        src: SocketAddr::new(p.src, t.src_port()),
        dst: SocketAddr::new(p.dst, t.dst_port()),
        seq: t.seq_number(),
        ack: t.ack_number(),
        flags: t.flags(),
        payload: t.payload().to_vec(),
    }
}

fn drain(n: &mut Nat) -> (Vec<Vec<u8>>, Vec<Action>) {
    let mut f = Vec::new();
    while let Some(x) = n.pop_frame() {
        f.push(x);
    }
    let mut a = Vec::new();
    while let Some(x) = n.pop_action() {
        a.push(x);
    }
    (f, a)
}

/// The driver's host → container part with a fake host socket holding `data` (then it would
/// block); returns the bytes the engine took.
fn pull(n: &mut Nat, flow: u64, data: &[u8]) -> usize {
    let mut off = 0;
    n.tcp_pull_from_host(flow, |b| {
        if off == data.len() {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        let k = b.len().min(data.len() - off);
        b[..k].copy_from_slice(&data[off..off + k]);
        off += k;
        Ok(k)
    });
    off
}

/// The driver's container → host part with a fake host socket taking everything.
fn push(n: &mut Nat, flow: u64) -> Vec<u8> {
    let mut got = Vec::new();
    n.tcp_push_to_host(flow, |b| {
        got.extend_from_slice(b);
        Ok(b.len())
    });
    got
}

/// The host peer's EOF on `flow` at `t` ms: the FIN that goes to the container.
fn host_eof_fin(n: &mut Nat, flow: u64, t: u64) -> Seg {
    n.tcp_host_eof(flow);
    n.poll(ms(t));
    let (frames, _) = drain(n);
    frames
        .iter()
        .map(|f| seg(f))
        .find(|s| s.flags & FLAG_FIN != 0)
        .expect("FIN")
}

fn ms(m: u64) -> Duration {
    Duration::from_millis(m)
}

const C: &str = "172.18.0.2:40000";
const R: &str = "93.184.216.34:80";

/// Container SYN → host connect → SYN-ACK → established; returns (nat, flow, next container
/// seq, next remote seq).
fn established() -> (Nat, u64, u32, u32) {
    let mut n = Nat::new(config(), ms(0), 7);
    let (flow, cseq, rseq) = open(&mut n, sa(C), sa(R), 1);
    (n, flow, cseq, rseq)
}

/// Opens a TCP flow from `c` to `r` at `t` ms (three polls, one ms apart); returns (flow,
/// next container seq, next remote seq).
fn open(n: &mut Nat, c: SocketAddr, r: SocketAddr, t: u64) -> (u64, u32, u32) {
    n.handle_frame(ms(t), &tcp_frame(c, r, 1000, 0, FLAG_SYN, &[]));
    n.poll(ms(t));
    let (frames, actions) = drain(n);
    assert!(frames.is_empty(), "SYN-ACK held until the host connects");
    let flow = match actions.as_slice() {
        [Action::TcpConnect { flow, dst }] if *dst == r => *flow,
        other => panic!("expected one connect, got {other:?}"),
    };
    n.tcp_connected(flow, true);
    n.poll(ms(t + 1));
    let (frames, _) = drain(n);
    assert_eq!(frames.len(), 1);
    let s = seg(&frames[0]);
    assert_eq!(
        (s.src, s.dst),
        (r, c),
        "the remote's address, not the host's"
    );
    assert_eq!(s.flags & (FLAG_SYN | FLAG_ACK), FLAG_SYN | FLAG_ACK);
    assert_eq!(s.ack, 1001);
    n.handle_frame(ms(t + 2), &tcp_frame(c, r, 1001, s.seq + 1, FLAG_ACK, &[]));
    n.poll(ms(t + 2));
    (flow, 1001, s.seq + 1)
}

/// Idle TCP flows leave smoltcp's socket set and the relay's walk (12.3: no poll over idle
/// flows), and a segment from the container or any host event brings them back intact.
#[test]
fn idle_tcp_flows_are_parked_and_wake_on_either_side() {
    const FLOWS: u16 = 100;
    let mut n = Nat::new(config(), ms(0), 7);
    let r = sa(R);
    let flows: Vec<(SocketAddr, u64, u32, u32)> = (0..FLOWS)
        .map(|i| {
            let c = SocketAddr::new(sa(C).ip(), 41000 + i);
            let (flow, cseq, rseq) = open(&mut n, c, r, 1);
            drain(&mut n);
            (c, flow, cseq, rseq)
        })
        .collect();
    n.poll(ms(5));
    n.poll(ms(6));
    drain(&mut n);
    assert_eq!(n.live_tcp_flows(), 0, "all idle: all parked");
    assert_eq!(n.flow_count(), usize::from(FLOWS));

    // The container speaks on a parked flow: woken before smoltcp sees it (no RST), relayed.
    let (c, flow, cseq, rseq) = flows[7];
    n.handle_frame(
        ms(7),
        &tcp_frame(c, r, cseq, rseq, FLAG_ACK | FLAG_PSH, b"ping"),
    );
    assert_eq!(n.live_tcp_flows(), 1);
    n.poll(ms(7));
    let (frames, actions) = drain(&mut n);
    assert!(actions.contains(&Action::TcpPush { flow }), "{actions:?}");
    assert!(
        frames.iter().all(|f| seg(f).flags & FLAG_RST == 0),
        "no reset"
    );
    assert_eq!(push(&mut n, flow), b"ping");
    for t in 8..11 {
        n.poll(ms(t));
    }
    let (later, _) = drain(&mut n);
    let acked = frames
        .iter()
        .chain(&later)
        .map(|f| seg(f))
        .any(|s| s.ack == cseq + 4);
    assert!(acked, "the container's bytes are acknowledged");
    assert_eq!(n.live_tcp_flows(), 0, "idle again: parked again");

    // The host speaks on a parked flow.
    let (c, flow, cseq, rseq) = flows[21];
    assert_eq!(pull(&mut n, flow, b"pong"), 4);
    assert_eq!(n.live_tcp_flows(), 1);
    n.poll(ms(11));
    let (frames, _) = drain(&mut n);
    let d = frames
        .iter()
        .map(|f| seg(f))
        .find(|s| !s.payload.is_empty())
        .expect("data to the container");
    assert_eq!(
        (d.dst, d.payload.as_slice(), d.seq),
        (c, &b"pong"[..], rseq)
    );
    // Unacknowledged bytes keep it live (smoltcp's retransmission timer runs).
    n.poll(ms(12));
    n.poll(ms(13));
    assert_eq!(n.live_tcp_flows(), 1);
    n.handle_frame(ms(14), &tcp_frame(c, r, cseq, rseq + 4, FLAG_ACK, &[]));
    n.poll(ms(14));
    n.poll(ms(15));
    assert_eq!(n.live_tcp_flows(), 0);

    // The host ends a parked flow: FIN to the container; another is reset.
    let (c, flow, _, _) = flows[33];
    assert_eq!(host_eof_fin(&mut n, flow, 16).dst, c);
    let (c, flow, _, _) = flows[40];
    n.tcp_host_reset(flow);
    n.poll(ms(17));
    let (frames, actions) = drain(&mut n);
    assert!(frames
        .iter()
        .map(|f| seg(f))
        .any(|s| s.dst == c && s.flags & FLAG_RST != 0));
    assert!(
        actions.contains(&Action::TcpClose { flow, reset: true }),
        "{actions:?}"
    );
    assert_eq!(n.flow_count(), usize::from(FLOWS) - 1);
    // Every parked flow's socket survived the live set's rebuilds: each still answers.
    for &(c, flow, cseq, rseq) in &flows[..5] {
        n.handle_frame(
            ms(18),
            &tcp_frame(c, r, cseq, rseq, FLAG_ACK | FLAG_PSH, b"x"),
        );
        n.poll(ms(18));
        assert_eq!(push(&mut n, flow), b"x");
    }
}

#[test]
fn tcp_handshake_data_and_close_both_ways() {
    let (mut n, flow, cseq, rseq) = established();
    let (c, r) = (sa(C), sa(R));
    // Container → host.
    n.handle_frame(
        ms(4),
        &tcp_frame(c, r, cseq, rseq, FLAG_ACK | FLAG_PSH, b"hello"),
    );
    n.poll(ms(4));
    let (_, actions) = drain(&mut n);
    assert!(actions.contains(&Action::TcpPull { flow }), "{actions:?}");
    assert!(actions.contains(&Action::TcpPush { flow }), "{actions:?}");
    assert_eq!(push(&mut n, flow), b"hello");
    // Host → container.
    assert_eq!(pull(&mut n, flow, b"world"), 5);
    n.poll(ms(5));
    let (frames, actions) = drain(&mut n);
    assert!(!actions.contains(&Action::TcpPull { flow }), "{actions:?}");
    let data: Vec<Seg> = frames.iter().map(|f| seg(f)).collect();
    let d = data
        .iter()
        .find(|s| !s.payload.is_empty())
        .expect("data segment");
    assert_eq!(
        (d.payload.as_slice(), d.seq, d.ack),
        (&b"world"[..], rseq, cseq + 5)
    );
    // Container FIN → host shutdown.
    n.handle_frame(
        ms(6),
        &tcp_frame(c, r, cseq + 5, rseq + 5, FLAG_ACK | FLAG_FIN, &[]),
    );
    n.poll(ms(6));
    let (_, actions) = drain(&mut n);
    assert!(
        actions.contains(&Action::TcpShutdown { flow }),
        "{actions:?}"
    );
    // Host EOF → FIN to the container; its ACK ends the flow gracefully.
    let fin = host_eof_fin(&mut n, flow, 7);
    n.handle_frame(
        ms(8),
        &tcp_frame(c, r, cseq + 6, fin.seq + 1, FLAG_ACK, &[]),
    );
    n.poll(ms(8));
    let (_, actions) = drain(&mut n);
    assert!(
        actions.contains(&Action::TcpClose { flow, reset: false }),
        "{actions:?}"
    );
    assert_eq!(n.flow_count(), 0);
}

/// The host closes first; the container's last bytes come with its FIN (smoltcp goes to
/// TIME-WAIT at once): the flow stays until they are pushed to the host, then ends cleanly.
#[test]
fn tcp_last_bytes_after_both_fins_reach_the_host() {
    let (mut n, flow, cseq, _) = established();
    let (c, r) = (sa(C), sa(R));
    let fin = host_eof_fin(&mut n, flow, 4);
    n.handle_frame(
        ms(5),
        &tcp_frame(
            c,
            r,
            cseq,
            fin.seq + 1,
            FLAG_ACK | FLAG_FIN | FLAG_PSH,
            b"bye",
        ),
    );
    n.poll(ms(5));
    let (_, actions) = drain(&mut n);
    assert!(actions.contains(&Action::TcpPush { flow }), "{actions:?}");
    assert!(
        !actions.iter().any(|a| matches!(a, Action::TcpClose { .. })),
        "{actions:?}"
    );
    assert_eq!(push(&mut n, flow), b"bye");
    n.poll(ms(6));
    let (_, actions) = drain(&mut n);
    assert_eq!(
        actions,
        vec![
            Action::TcpShutdown { flow },
            Action::TcpClose { flow, reset: false }
        ]
    );
}

#[test]
fn tcp_super_frames_in_and_out() {
    let (mut n, flow, cseq, rseq) = established();
    let (c, r) = (sa(C), sa(R));
    // A container super-frame (partial checksum: here a wrong one) is taken whole when it
    // comes as GSO, and dropped when it claims to be a complete frame.
    let big: Vec<u8> = (0..20_000u32).map(|i| (i % 253) as u8).collect();
    let mut f = tcp_frame(c, r, cseq, rseq, FLAG_ACK, &big);
    let csum = 14 + 20 + 16;
    f[csum] ^= 0x5a;
    n.handle_frame(ms(4), &f);
    n.poll(ms(4));
    let (_, actions) = drain(&mut n);
    assert!(
        !actions.contains(&Action::TcpPush { flow }),
        "bad checksum dropped: {actions:?}"
    );
    n.handle_gso_frame(ms(5), &f);
    n.poll(ms(5));
    let (_, actions) = drain(&mut n);
    assert!(actions.contains(&Action::TcpPush { flow }), "{actions:?}");
    assert_eq!(push(&mut n, flow), big, "the whole super-frame relayed");
    // Host data leaves as GSO super-frames cut at the container's MSS (smoltcp's default
    // 536: the test SYN has no MSS option), with partial checksums the datapath completes.
    let host: Vec<u8> = (0..50_000u32).map(|i| (i % 241) as u8).collect();
    assert_eq!(pull(&mut n, flow, &host), host.len());
    n.poll(ms(6));
    let mut wire = Vec::new();
    let mut gso = 0;
    let mut scratch = vec![0u8; 70_000];
    while let Some((h, mut whole)) = n.pop_offloaded_frame() {
        let ack = cseq + big.len() as u32;
        if h.gso_type != crate::wire::vnet_hdr::GsoType::None {
            gso += 1;
            assert_eq!(h.gso_size, 536);
            assert!(h.needs_csum());
        }
        crate::wire::vnet_hdr::resolve_offloads(&mut whole, &h, &mut scratch, |f| {
            let s = seg(f);
            assert!(s.payload.len() <= 536);
            assert_eq!(s.ack, ack);
            wire.push(s);
        })
        .expect("resolvable");
        n.recycle(whole);
    }
    assert!(gso > 0, "at least one super-frame");
    let mut next = rseq;
    let mut sent = Vec::new();
    for s in wire.iter().filter(|s| !s.payload.is_empty()) {
        assert_eq!(s.seq, next, "segments in order");
        next = next.wrapping_add(s.payload.len() as u32);
        sent.extend_from_slice(&s.payload);
    }
    assert!(!sent.is_empty());
    assert_eq!(sent, host[..sent.len()], "the host's bytes, in order");
}

#[test]
fn tcp_refused_by_the_remote_resets_the_container() {
    let mut n = Nat::new(config(), ms(0), 7);
    let (c, r) = (sa(C), sa(R));
    n.handle_frame(ms(1), &tcp_frame(c, r, 5000, 0, FLAG_SYN, &[]));
    n.poll(ms(1));
    let (_, actions) = drain(&mut n);
    let Some(Action::TcpConnect { flow, .. }) = actions.first().cloned() else {
        panic!("{actions:?}")
    };
    n.tcp_connected(flow, false);
    n.poll(ms(2));
    let (frames, actions) = drain(&mut n);
    let rst = frames
        .iter()
        .map(|f| seg(f))
        .find(|s| s.flags & FLAG_RST != 0);
    let rst = rst.expect("RST");
    assert_eq!((rst.src, rst.dst, rst.ack), (r, c, 5001));
    assert!(actions.contains(&Action::TcpClose { flow, reset: true }));
    assert_eq!(n.flow_count(), 0);
}

#[test]
fn tcp_container_reset_and_host_reset() {
    let (mut n, flow, cseq, rseq) = established();
    let (c, r) = (sa(C), sa(R));
    n.handle_frame(ms(4), &tcp_frame(c, r, cseq, rseq, FLAG_RST, &[]));
    n.poll(ms(4));
    let (_, actions) = drain(&mut n);
    assert!(actions.contains(&Action::TcpClose { flow, reset: true }));

    let (mut n, flow, _, _) = established();
    n.tcp_host_reset(flow);
    n.poll(ms(5));
    let (frames, actions) = drain(&mut n);
    assert!(frames.iter().any(|f| seg(f).flags & FLAG_RST != 0));
    assert!(actions.contains(&Action::TcpClose { flow, reset: true }));
}

#[test]
fn unknown_tcp_segments_get_a_reset_and_no_flow() {
    let mut n = Nat::new(config(), ms(0), 7);
    n.handle_frame(ms(1), &tcp_frame(sa(C), sa(R), 1, 2, FLAG_ACK, b"x"));
    n.poll(ms(1));
    let (frames, actions) = drain(&mut n);
    assert!(actions.is_empty());
    assert_eq!(frames.len(), 1);
    assert!(seg(&frames[0]).flags & FLAG_RST != 0);
    assert_eq!(n.flow_count(), 0);
}

fn udp_frame(src: SocketAddr, dst: SocketAddr, payload: &[u8]) -> Vec<u8> {
    let ph = ph(src, dst);
    ip_frame(
        CMAC,
        GWMAC,
        None,
        ph,
        IpProtocol::UDP,
        &[],
        &udp_datagram(&ph, (src.port(), dst.port()), payload),
    )
}

#[test]
fn udp_flow_reply_and_idle_timeout() {
    let mut n = Nat::new(config(), ms(0), 7);
    let (c, r) = (sa("172.18.0.2:5353"), sa("9.9.9.9:53"));
    n.handle_frame(ms(1), &udp_frame(c, r, b"q1"));
    n.handle_frame(ms(2), &udp_frame(c, r, b"q2"));
    n.poll(ms(2));
    let (_, actions) = drain(&mut n);
    let flow = match actions.as_slice() {
        [Action::UdpOpen { flow, dst }, Action::UdpSend { data: d1, .. }, Action::UdpSend { data: d2, .. }]
            if *dst == r && d1 == b"q1" && d2 == b"q2" =>
        {
            *flow
        }
        other => panic!("{other:?}"),
    };
    n.udp_host_data(ms(3), flow, b"answer");
    n.poll(ms(3));
    let (frames, _) = drain(&mut n);
    assert_eq!(frames.len(), 1);
    check_emitted(&frames[0]).expect("valid");
    let p = frame::parse(&frames[0]).expect("ip");
    let u = UdpPacket::new_checked(p.l4).expect("udp");
    assert_eq!(
        (p.src, u.src_port(), p.dst, u.dst_port()),
        (r.ip(), 53, c.ip(), 5353)
    );
    assert_eq!(u.payload(), b"answer");
    // Idle for the timeout: closed.
    n.poll(ms(3) + nat::UDP_IDLE_TIMEOUT - ms(1));
    assert_eq!(n.flow_count(), 1);
    n.poll(ms(3) + nat::UDP_IDLE_TIMEOUT);
    let (_, actions) = drain(&mut n);
    assert_eq!(actions, vec![Action::UdpClose { flow }]);
    assert_eq!(n.flow_count(), 0);
}

/// A UDP flow's timeout counts from its last datagram, however often it was refreshed.
#[test]
fn udp_flow_expires_a_timeout_after_its_last_datagram() {
    let mut n = Nat::new(config(), ms(0), 7);
    let (c, r) = (sa("172.18.0.2:5353"), sa("9.9.9.9:53"));
    n.handle_frame(ms(1), &udp_frame(c, r, b"q1"));
    n.poll(ms(1));
    let half = nat::UDP_IDLE_TIMEOUT / 2;
    n.handle_frame(ms(1) + half, &udp_frame(c, r, b"q2"));
    n.poll(ms(1) + half);
    n.poll(ms(1) + nat::UDP_IDLE_TIMEOUT);
    assert_eq!(n.flow_count(), 1, "refreshed half-way");
    let flow = match drain(&mut n).1.first() {
        Some(Action::UdpOpen { flow, .. }) => *flow,
        other => panic!("{other:?}"),
    };
    n.udp_host_data(ms(2) + nat::UDP_IDLE_TIMEOUT, flow, b"late answer");
    assert!(n.poll_at(ms(2) + nat::UDP_IDLE_TIMEOUT) <= Some(ms(2) + 2 * nat::UDP_IDLE_TIMEOUT));
    n.poll(ms(1) + 2 * nat::UDP_IDLE_TIMEOUT);
    assert_eq!(n.flow_count(), 1, "the host's answer refreshed it too");
    n.poll(ms(2) + 2 * nat::UDP_IDLE_TIMEOUT);
    assert_eq!(drain(&mut n).1, vec![Action::UdpClose { flow }]);
    assert_eq!(n.flow_count(), 0);
}

#[test]
fn udp_over_ipv6() {
    let mut n = Nat::new(config(), ms(0), 7);
    let (c, r) = (sa("[fd00::2]:5000"), sa("[2001:db8::5]:53"));
    n.handle_frame(ms(1), &udp_frame(c, r, b"q"));
    n.poll(ms(1));
    let (_, actions) = drain(&mut n);
    let Some(Action::UdpOpen { flow, dst }) = actions.first().cloned() else {
        panic!("{actions:?}")
    };
    assert_eq!(dst, r);
    n.udp_host_data(ms(2), flow, b"a");
    let (frames, _) = drain(&mut n);
    check_emitted(&frames[0]).expect("valid v6 udp");
}

fn echo_frame(src: &str, dst: &str, ident: u16, seq: u16) -> Vec<u8> {
    let (s, d): (IpAddr, IpAddr) = (src.parse().expect("ip"), dst.parse().expect("ip"));
    let v6 = s.is_ipv6();
    let m = frame::echo_message(v6, frame::pseudo(s, d), false, ident, seq, b"ping!");
    let proto = if v6 {
        IpProtocol::ICMPV6
    } else {
        IpProtocol::ICMP
    };
    ip_frame(
        CMAC,
        GWMAC,
        None,
        frame::pseudo(s, d).expect("same family"),
        proto,
        &[],
        &m,
    )
}

#[test]
fn icmp_echo_identifiers_are_mapped_per_container() {
    let mut n = Nat::new(config(), ms(0), 7);
    n.add_neighbor(
        "172.18.0.3".parse().expect("ip"),
        MacAddr([2, 0x42, 172, 18, 0, 3]),
    );
    // Two containers using the same identifier to the same destination.
    n.handle_frame(ms(1), &echo_frame("172.18.0.2", "1.1.1.1", 77, 1));
    let mut f3 = echo_frame("172.18.0.3", "1.1.1.1", 77, 1);
    f3[6..12].copy_from_slice(&[2, 0x42, 172, 18, 0, 3]);
    n.handle_frame(ms(1), &f3);
    n.poll(ms(1));
    let (_, actions) = drain(&mut n);
    let idents: Vec<(u16, u16)> = actions
        .iter()
        .map(|a| match a {
            Action::IcmpEcho { dst, message } => {
                assert_eq!(*dst, IpAddr::from([1, 1, 1, 1]));
                let m = crate::wire::IcmpPacket::new_checked(&message[..]).expect("icmp");
                assert!(m.verify_checksum_v4());
                m.echo_ident_seq().expect("echo")
            }
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(idents.len(), 2);
    assert_ne!(idents[0].0, idents[1].0, "distinct host identifiers");
    // The reply to the second goes to .3 with its own identifier 77.
    let reply = frame::echo_message(false, None, true, idents[1].0, 1, b"ping!");
    n.icmp_host_reply(ms(2), IpAddr::from([1, 1, 1, 1]), &reply);
    // A reply from another source is ignored.
    n.icmp_host_reply(ms(2), IpAddr::from([1, 1, 1, 2]), &reply);
    let (frames, _) = drain(&mut n);
    assert_eq!(frames.len(), 1);
    check_emitted(&frames[0]).expect("valid");
    assert_eq!(&frames[0][..6], &[2, 0x42, 172, 18, 0, 3]);
    let p = frame::parse(&frames[0]).expect("ip");
    let m = crate::wire::IcmpPacket::new_checked(p.l4).expect("icmp");
    assert_eq!((m.msg_type(), m.echo_ident_seq()), (0, Some((77, 1))));
    assert_eq!(p.dst, IpAddr::from([172, 18, 0, 3]));
    // Expiry.
    n.poll(ms(2) + nat::ICMP_TIMEOUT);
    assert_eq!(n.flow_count(), 0);
}

#[test]
fn flow_cap_refuses_new_flows() {
    let mut n = Nat::new(
        NatConfig {
            max_flows: 3,
            ..config()
        },
        ms(0),
        7,
    );
    for i in 0..5u16 {
        let c = SocketAddr::new(IpAddr::from([172, 18, 0, 2]), 1000 + i);
        n.handle_frame(ms(1), &udp_frame(c, sa("9.9.9.9:53"), b"q"));
    }
    n.handle_frame(ms(1), &tcp_frame(sa(C), sa(R), 1, 0, FLAG_SYN, &[]));
    n.poll(ms(1));
    let (_, actions) = drain(&mut n);
    let opens = actions
        .iter()
        .filter(|a| matches!(a, Action::UdpOpen { .. }))
        .count();
    assert_eq!(opens, 3);
    assert!(!actions
        .iter()
        .any(|a| matches!(a, Action::TcpConnect { .. })));
    assert_eq!(n.flow_count(), 3);
    assert_eq!(n.stats().flow_cap_hits, 3);
    assert_eq!(n.tcp_inbound(sa("172.18.0.2:80")), Err(NatError::Full));
}

#[test]
fn loopback_and_in_subnet_destinations_are_never_natted() {
    let mut n = Nat::new(config(), ms(0), 7);
    for dst in ["127.0.0.1:22", "172.18.0.3:80", "[::ffff:127.0.0.1]:22"] {
        let src = if dst.starts_with('[') {
            "[fd00::2]:1000"
        } else {
            "172.18.0.2:1000"
        };
        n.handle_frame(ms(1), &tcp_frame(sa(src), sa(dst), 1, 0, FLAG_SYN, &[]));
        n.handle_frame(ms(1), &udp_frame(sa(src), sa(dst), b"x"));
    }
    // A source outside the network (spoofed or mis-steered) is dropped too.
    n.handle_frame(ms(1), &udp_frame(sa("10.1.1.1:1"), sa("9.9.9.9:53"), b"x"));
    n.poll(ms(1));
    let (frames, actions) = drain(&mut n);
    assert!(frames.is_empty() && actions.is_empty(), "{actions:?}");
    assert_eq!(n.stats().dropped, 7);
}

#[test]
fn published_tcp_relays_into_the_container_from_a_relay_port() {
    let mut n = Nat::new(config(), ms(0), 7);
    let c = sa("172.18.0.2:80");
    n.add_neighbor(c.ip(), CMAC);
    let flow = n.tcp_inbound(c).expect("flow");
    assert_eq!(pull(&mut n, flow, b"GET /"), 0, "not before the handshake");
    n.poll(ms(1));
    let (frames, _) = drain(&mut n);
    let syn = seg(&frames[0]);
    assert_eq!(syn.flags & (FLAG_SYN | FLAG_ACK), FLAG_SYN);
    assert_eq!(syn.dst, c);
    assert_eq!(syn.src.ip(), IpAddr::from([172, 18, 0, 1]));
    assert!(crate::switch::RELAY_PORTS.contains(&syn.src.port()));
    // The container accepts (its answers go to the gateway address + relay port).
    n.handle_frame(
        ms(2),
        &tcp_frame(c, syn.src, 9000, syn.seq + 1, FLAG_SYN | FLAG_ACK, &[]),
    );
    n.poll(ms(2));
    let (_, actions) = drain(&mut n);
    assert!(actions.contains(&Action::TcpPull { flow }), "{actions:?}");
    assert_eq!(pull(&mut n, flow, b"GET /"), 5);
    n.poll(ms(2));
    let (frames, _) = drain(&mut n);
    let data = frames
        .iter()
        .map(|f| seg(f))
        .find(|s| !s.payload.is_empty())
        .expect("data");
    assert_eq!(data.payload, b"GET /");
    n.handle_frame(
        ms(3),
        &tcp_frame(c, syn.src, 9001, syn.seq + 6, FLAG_ACK | FLAG_PSH, b"200"),
    );
    n.poll(ms(3));
    let (_, actions) = drain(&mut n);
    assert!(actions.contains(&Action::TcpPush { flow }), "{actions:?}");
    assert_eq!(push(&mut n, flow), b"200");
}

/// Backpressure is the smoltcp rings: a host socket that would block keeps the container's
/// bytes in the receive ring (asked again only on the next push), and a full transmit ring
/// stops host reads until the container acknowledges. Container frames handed over in the
/// engine's buffers are relayed in place.
#[test]
fn tcp_relay_backpressure_both_ways() {
    let (mut n, flow, cseq, rseq) = established();
    let (c, r) = (sa(C), sa(R));
    let big: Vec<u8> = (0..3000u32).map(|i| (i % 251) as u8).collect();
    let f = tcp_frame(c, r, cseq, rseq, FLAG_ACK, &big);
    let mut b = n.rx_buffer(f.len() + 10);
    b[10..10 + f.len()].copy_from_slice(&f);
    n.handle_frame_buf(ms(4), b, 10..10 + f.len(), false);
    n.poll(ms(4));
    let (_, actions) = drain(&mut n);
    assert!(actions.contains(&Action::TcpPush { flow }), "{actions:?}");
    let mut got = Vec::new();
    let r1 = n.tcp_push_to_host(flow, |b| {
        if !got.is_empty() {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        got.extend_from_slice(&b[..1000.min(b.len())]);
        Ok(1000.min(b.len()))
    });
    assert_eq!((r1, got.len()), (HostIo::WouldBlock, 1000));
    n.poll(ms(5));
    let (_, actions) = drain(&mut n);
    assert!(!actions.contains(&Action::TcpPush { flow }), "{actions:?}");
    got.extend(push(&mut n, flow));
    assert_eq!(got, big);
    // Host → container: an endless host stream fills the ring, then reads stop.
    let mut read = 0usize;
    let r2 = n.tcp_pull_from_host(flow, |b| {
        b.fill(7);
        read += b.len();
        Ok(b.len())
    });
    assert_eq!((r2, read), (HostIo::Idle, nat::TCP_BUFFER));
    n.poll(ms(6));
    let (frames, actions) = drain(&mut n);
    assert!(!actions.contains(&Action::TcpPull { flow }), "{actions:?}");
    let sent: usize = frames.iter().map(|f| seg(f).payload.len()).sum();
    assert!(sent > 0 && sent <= 64_000, "{sent}: the container's window");
    // The container acknowledges some: room again, the engine asks for a pull.
    let ack = rseq.wrapping_add(10_000);
    n.handle_frame(
        ms(7),
        &tcp_frame(c, r, cseq + big.len() as u32, ack, FLAG_ACK, &[]),
    );
    n.poll(ms(7));
    let (_, actions) = drain(&mut n);
    assert!(actions.contains(&Action::TcpPull { flow }), "{actions:?}");
    assert_eq!(pull(&mut n, flow, &[1; 20_000]), 10_000);
}

#[test]
fn published_tcp_client_gone_before_the_handshake_gets_a_clean_close() {
    let mut n = Nat::new(config(), ms(0), 7);
    let c = sa("172.18.0.2:80");
    n.add_neighbor(c.ip(), CMAC);
    let flow = n.tcp_inbound(c).expect("flow");
    n.tcp_host_eof(flow);
    n.poll(ms(1));
    let (frames, actions) = drain(&mut n);
    assert_eq!(frames.len(), 1, "only the SYN");
    let syn = seg(&frames[0]);
    assert_eq!(syn.flags & (FLAG_SYN | FLAG_RST), FLAG_SYN);
    assert!(actions.is_empty(), "{actions:?}");
    n.handle_frame(
        ms(2),
        &tcp_frame(c, syn.src, 9000, syn.seq + 1, FLAG_SYN | FLAG_ACK, &[]),
    );
    n.poll(ms(2));
    let (frames, actions) = drain(&mut n);
    let segs: Vec<Seg> = frames.iter().map(|f| seg(f)).collect();
    assert!(segs.iter().all(|s| s.flags & FLAG_RST == 0), "{segs:?}");
    assert!(segs.iter().any(|s| s.flags & FLAG_FIN != 0), "{segs:?}");
    assert!(!actions.contains(&Action::TcpClose { flow, reset: true }));
}

#[test]
fn published_tcp_refused_by_the_container_closes_the_client() {
    let mut n = Nat::new(config(), ms(0), 7);
    let c = sa("172.18.0.2:81");
    n.add_neighbor(c.ip(), CMAC);
    let flow = n.tcp_inbound(c).expect("flow");
    n.poll(ms(1));
    let (frames, _) = drain(&mut n);
    let syn = seg(&frames[0]);
    n.handle_frame(
        ms(2),
        &tcp_frame(c, syn.src, 0, syn.seq + 1, FLAG_RST | FLAG_ACK, &[]),
    );
    n.poll(ms(2));
    let (_, actions) = drain(&mut n);
    assert!(actions.contains(&Action::TcpClose { flow, reset: true }));
}

/// A burst into one container address opens [`pacing::OPENING_WINDOW`] relays at a time: the
/// next SYN goes out when one is answered, ends, or has been silent for
/// [`pacing::OPENING_RELEASE`] after its handshake (an unanswered SYN keeps its slot); a relay
/// whose client leaves while waiting never reaches the container.
#[test]
fn published_tcp_bursts_are_paced_per_container_address() {
    use super::pacing::{OPENING_RELEASE, OPENING_WINDOW};
    let mut n = Nat::new(config(), ms(0), 7);
    let c = sa("172.18.0.2:80");
    let other = sa("172.18.0.3:80");
    n.add_neighbor(c.ip(), CMAC);
    n.add_neighbor(other.ip(), CMAC);
    let flows: Vec<u64> = (0..OPENING_WINDOW + 3)
        .map(|_| n.tcp_inbound(c).expect("flow"))
        .collect();
    n.tcp_inbound(other).expect("flow");
    n.poll(ms(1));
    let (frames, _) = drain(&mut n);
    let syns: Vec<Seg> = frames.iter().map(|f| seg(f)).collect();
    assert!(syns
        .iter()
        .all(|s| s.flags & (FLAG_SYN | FLAG_ACK) == FLAG_SYN));
    assert_eq!(syns.iter().filter(|s| s.dst == c).count(), OPENING_WINDOW);
    assert_eq!(syns.iter().filter(|s| s.dst == other).count(), 1);
    // The first relay is accepted and answered: the next one starts.
    let first = syns.iter().find(|s| s.dst == c).expect("syn");
    n.handle_frame(
        ms(2),
        &tcp_frame(c, first.src, 9000, first.seq + 1, FLAG_SYN | FLAG_ACK, &[]),
    );
    n.poll(ms(2));
    // The client's request, read once the relay is up.
    for f in &flows {
        pull(&mut n, *f, b"GET /");
    }
    n.poll(ms(2));
    let (frames, _) = drain(&mut n);
    assert!(
        frames.iter().all(|f| seg(f).flags & FLAG_SYN == 0),
        "only the handshake"
    );
    n.handle_frame(
        ms(3),
        &tcp_frame(
            c,
            first.src,
            9001,
            first.seq + 6,
            FLAG_ACK | FLAG_PSH,
            b"200",
        ),
    );
    n.poll(ms(3));
    let (frames, _) = drain(&mut n);
    let syns_of = |frames: &[Vec<u8>]| -> Vec<Seg> {
        frames
            .iter()
            .map(|f| seg(f))
            .filter(|s| s.flags & FLAG_SYN != 0)
            .collect()
    };
    let new_syns = |frames: &[Vec<u8>]| syns_of(frames).len();
    let fifth = syns_of(&frames);
    assert_eq!(fifth.len(), 1);
    // The last waiting relay's client goes away: it is closed without a SYN.
    let last = *flows.last().expect("flows");
    n.tcp_host_reset(last);
    n.poll(ms(4));
    let (frames, actions) = drain(&mut n);
    assert_eq!(new_syns(&frames), 0);
    assert!(actions.contains(&Action::TcpClose {
        flow: last,
        reset: true
    }));
    // Unanswered SYNs never time out of the window (the server may be dropping them).
    n.poll(ms(5) + OPENING_RELEASE);
    let (frames, _) = drain(&mut n);
    assert_eq!(new_syns(&frames), 0);
    // Handshakes complete but the server stays silent: after OPENING_RELEASE the relay still
    // waiting starts.
    let t = ms(10) + OPENING_RELEASE;
    for s in syns.iter().filter(|s| s.dst == c).skip(1).chain(&fifth) {
        n.handle_frame(
            t,
            &tcp_frame(c, s.src, 5000, s.seq + 1, FLAG_SYN | FLAG_ACK, &[]),
        );
    }
    n.poll(t);
    let (frames, _) = drain(&mut n);
    assert_eq!(new_syns(&frames), 0);
    assert!(n.poll_at(t).is_some_and(|at| at <= t + OPENING_RELEASE));
    n.poll(t + OPENING_RELEASE);
    let (frames, _) = drain(&mut n);
    assert_eq!(new_syns(&frames), 1);
}

#[test]
fn published_udp_round_trip() {
    let mut n = Nat::new(config(), ms(0), 7);
    let c = sa("172.18.0.2:53");
    n.add_neighbor(c.ip(), CMAC);
    let client = sa("198.51.100.7:4444");
    let flow = n.udp_inbound(ms(1), 1, client, c, b"query").expect("flow");
    let (frames, _) = drain(&mut n);
    check_emitted(&frames[0]).expect("valid");
    let p = frame::parse(&frames[0]).expect("ip");
    let u = UdpPacket::new_checked(p.l4).expect("udp");
    let relay = SocketAddr::new(p.src, u.src_port());
    assert_eq!(p.src, IpAddr::from([172, 18, 0, 1]));
    // The container answers the relay address: back to the client via UdpSend.
    n.handle_frame(ms(2), &udp_frame(c, relay, b"answer"));
    n.poll(ms(2));
    let (_, actions) = drain(&mut n);
    assert_eq!(
        actions,
        vec![Action::UdpSend {
            flow,
            data: b"answer".to_vec()
        }]
    );
    // Same client again: same flow.
    assert_eq!(n.udp_inbound(ms(3), 1, client, c, b"q2"), Ok(flow));
}

#[test]
fn odd_configurations_and_addresses_do_not_panic() {
    let mut n = Nat::new(
        NatConfig {
            gateway_v4: Some(Ipv4Addr::BROADCAST),
            gateway_v6: Some("ff02::1".parse().expect("v6")),
            mtu: 0,
            ..config()
        },
        ms(0),
        0,
    );
    assert_eq!(n.tcp_inbound(sa("172.18.0.2:80")), Err(NatError::NoAddress));
    let mut n = Nat::new(config(), ms(0), 0);
    assert_eq!(n.tcp_inbound(sa("0.0.0.0:80")), Err(NatError::Connect));
    assert_eq!(n.tcp_inbound(sa("172.18.0.2:0")), Err(NatError::Connect));
    assert_eq!(
        n.udp_inbound(ms(1), 1, sa("1.2.3.4:5"), sa("224.0.0.1:53"), b"x"),
        Err(NatError::Connect)
    );
    n.poll(ms(1));
}

// ---- end to end with real host sockets (loopback only) -----------------------------------

mod e2e;
