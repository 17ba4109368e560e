//! Tunnel hosts over loopback (no root needed): 127.0.0.x addresses are all local, so several
//! "hosts" share one port on different addresses.

use super::*;
use crate::port::tap::VNET_HDR_LEN;
use std::net::{Ipv4Addr, UdpSocket};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

fn lo(last: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 0, 0, last))
}

/// Tunnel hosts on 127.0.0.{lasts} sharing one port (found free on the first address).
fn hosts(lasts: &[u8]) -> Vec<TunnelHost> {
    let probe = TunnelHost::start(SocketAddr::new(lo(lasts[0]), 0), 0).unwrap();
    let port = probe.local_addr().port();
    drop(probe);
    lasts
        .iter()
        .map(|&l| TunnelHost::start(SocketAddr::new(lo(l), port), port).unwrap())
        .collect()
}

fn frame(dst: [u8; 6], src: [u8; 6], len: usize) -> Vec<u8> {
    let mut f = vec![0u8; len];
    f[..6].copy_from_slice(&dst);
    f[6..12].copy_from_slice(&src);
    f[12..14].copy_from_slice(&[0x88, 0xb5]);
    for (i, b) in f.iter_mut().enumerate().skip(14) {
        *b = i as u8;
    }
    f
}

fn send(io: &PortIo, frame: &[u8]) {
    let mut msg = vec![0u8; VNET_HDR_LEN];
    msg.extend_from_slice(frame);
    // SAFETY: writing our buffer.
    let r = unsafe { libc::write(io.file.as_raw_fd(), msg.as_ptr().cast(), msg.len()) };
    assert_eq!(r as usize, msg.len());
}

/// The next message on the port within `wait`, without its vnet header (checked NONE).
fn recv(io: &PortIo, wait: Duration) -> Option<Vec<u8>> {
    let deadline = Instant::now() + wait;
    let mut buf = vec![0u8; 70_000];
    loop {
        // SAFETY: reading into our buffer.
        let r = unsafe { libc::read(io.file.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
        if r > 0 {
            let r = r as usize;
            assert!(r >= VNET_HDR_LEN);
            assert_eq!(&buf[..VNET_HDR_LEN], &[0u8; VNET_HDR_LEN]);
            return Some(buf[VNET_HDR_LEN..r].to_vec());
        }
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn wait_for(mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    false
}

/// A VXLAN datagram for `vni` carrying a broadcast frame.
fn datagram(vni: u32) -> Vec<u8> {
    let inner = frame([0xff; 6], MAC_B, 60);
    let mut out = vec![0u8; 200];
    let n = encap::encapsulate(vni, &inner, &mut out).unwrap();
    out.truncate(n);
    out
}

const MAC_A: [u8; 6] = [2, 0x42, 10, 0, 0, 1];
const MAC_B: [u8; 6] = [2, 0x42, 10, 0, 0, 2];
const MAC_C: [u8; 6] = [2, 0x42, 10, 0, 0, 3];
const SHORT: Duration = Duration::from_millis(200);
const LONG: Duration = Duration::from_secs(2);

#[test]
fn flood_mode_reaches_every_peer_and_unicast_only_its_vtep() {
    let h = hosts(&[11, 12, 13]);
    let (a, b, c) = (&h[0], &h[1], &h[2]);
    let vni = 300;
    let pa = a.attach(vni, true).unwrap();
    let pb = b.attach(vni, true).unwrap();
    let pc = c.attach(vni, true).unwrap();
    assert!(a.add_peer(vni, lo(12)));
    assert!(!a.add_peer(vni, lo(12)));
    a.add_peer(vni, lo(13));
    b.add_peer(vni, lo(11));
    c.add_peer(vni, lo(11));
    // Broadcast: both peers get it, byte for byte.
    let bc = frame([0xff; 6], MAC_A, 60);
    send(&pa, &bc);
    assert_eq!(recv(&pb, LONG).as_deref(), Some(&bc[..]));
    assert_eq!(recv(&pc, LONG).as_deref(), Some(&bc[..]));
    // Unknown unicast floods too.
    let uu = frame(MAC_B, MAC_A, 100);
    send(&pa, &uu);
    assert_eq!(recv(&pb, LONG).as_deref(), Some(&uu[..]));
    assert_eq!(recv(&pc, LONG).as_deref(), Some(&uu[..]));
    // Known unicast: only to its VTEP. A large frame crosses whole.
    a.set_remote_mac(vni, MacAddr(MAC_B), lo(12));
    assert_eq!(a.remote_mac(vni, MacAddr(MAC_B)), Some(lo(12)));
    let big = frame(MAC_B, MAC_A, 9000);
    send(&pa, &big);
    assert_eq!(recv(&pb, LONG).as_deref(), Some(&big[..]));
    assert_eq!(recv(&pc, SHORT), None);
    // Reverse direction.
    let back = frame(MAC_A, MAC_B, 64);
    send(&pb, &back);
    assert_eq!(recv(&pa, LONG).as_deref(), Some(&back[..]));
    // Forgetting the MAC floods again.
    assert!(a.remove_remote_mac(vni, MacAddr(MAC_B)));
    assert!(!a.remove_remote_mac(vni, MacAddr(MAC_B)));
    send(&pa, &big);
    assert!(recv(&pb, LONG).is_some());
    assert!(recv(&pc, LONG).is_some());
    let s = a.stats(vni).unwrap();
    assert_eq!(s.tx_frames, 4);
    assert_eq!(s.tx_datagrams, 7);
    assert_eq!(s.rx_frames, 1);
    assert_eq!(s.dropped.total(), 0);
    // Removing a peer removes its MACs and stops floods to it.
    a.set_remote_mac(vni, MacAddr(MAC_C), lo(13));
    assert!(a.remove_peer(vni, lo(13)));
    assert_eq!(a.remote_mac(vni, MacAddr(MAC_C)), None);
    assert_eq!(a.peers(vni), vec![lo(12)]);
    send(&pa, &bc);
    assert!(recv(&pb, LONG).is_some());
    assert_eq!(recv(&pc, SHORT), None);
}

#[test]
fn several_vnis_share_one_socket() {
    let h = hosts(&[21, 22]);
    let (a, b) = (&h[0], &h[1]);
    let a1 = a.attach(256, false).unwrap();
    let a2 = a.attach(257, false).unwrap();
    let b1 = b.attach(256, false).unwrap();
    let b2 = b.attach(257, false).unwrap();
    assert_eq!(a.vnis(), vec![256, 257]);
    assert!(matches!(
        a.attach(256, true),
        Err(OverlayError::VniInUse(256))
    ));
    assert!(matches!(
        a.attach(1 << 24, true),
        Err(OverlayError::BadVni(_))
    ));
    // The same MAC lives on different hosts in the two networks: each VNI has its table.
    a.set_remote_mac(256, MacAddr(MAC_B), lo(22));
    a.set_remote_mac(257, MacAddr(MAC_B), lo(22));
    b.add_peer(256, lo(21));
    b.add_peer(257, lo(21));
    let f1 = frame(MAC_B, MAC_A, 80);
    let f2 = frame(MAC_B, MAC_A, 90);
    send(&a1, &f1);
    send(&a2, &f2);
    assert_eq!(recv(&b1, LONG).as_deref(), Some(&f1[..]));
    assert_eq!(recv(&b2, LONG).as_deref(), Some(&f2[..]));
    assert_eq!(recv(&b1, SHORT), None);
    // Back on each VNI, to its own switch only.
    b.set_remote_mac(257, MacAddr(MAC_A), lo(21));
    let r = frame(MAC_A, MAC_B, 70);
    send(&b2, &r);
    assert_eq!(recv(&a2, LONG).as_deref(), Some(&r[..]));
    assert_eq!(recv(&a1, SHORT), None);
    assert_eq!(a.stats(257).unwrap().rx_frames, 1);
    assert_eq!(a.stats(256).unwrap().rx_frames, 0);
    // Detached: datagrams for it are dropped as an unknown VNI, the other VNI still works.
    a.detach(256).unwrap();
    assert!(matches!(a.detach(256), Err(OverlayError::NotAttached(256))));
    assert_eq!(a.stats(256), None);
    b.set_remote_mac(256, MacAddr(MAC_A), lo(21));
    send(&b1, &r);
    assert!(wait_for(|| a.host_stats().unknown_vni == 1));
    send(&b2, &r);
    assert_eq!(recv(&a2, LONG).as_deref(), Some(&r[..]));
    // Re-attach starts afresh (peers, MACs forgotten).
    let a1 = a.attach(256, false).unwrap();
    assert!(a.peers(256).is_empty());
    send(&b1, &r);
    assert!(wait_for(|| a
        .stats(256)
        .is_some_and(|s| s.dropped.unknown_vtep == 1)));
    assert_eq!(recv(&a1, SHORT), None);
}

#[test]
fn cluster_mode_floods_nothing() {
    let h = hosts(&[31, 32]);
    let (a, b) = (&h[0], &h[1]);
    let pa = a.attach(400, false).unwrap();
    let pb = b.attach(400, false).unwrap();
    a.add_peer(400, lo(32));
    b.add_peer(400, lo(31));
    send(&pa, &frame([0xff; 6], MAC_A, 60));
    send(&pa, &frame([0x33, 0x33, 0, 0, 0, 1], MAC_A, 60));
    send(&pa, &frame(MAC_B, MAC_A, 60));
    assert!(wait_for(|| a.stats(400).unwrap().dropped.not_flooded == 3));
    assert_eq!(recv(&pb, SHORT), None);
    assert_eq!(b.stats(400).unwrap().rx_datagrams, 0);
    a.set_remote_mac(400, MacAddr(MAC_B), lo(32));
    send(&pa, &frame(MAC_B, MAC_A, 60));
    assert!(recv(&pb, LONG).is_some());
    let s = a.stats(400).unwrap();
    assert_eq!((s.tx_frames, s.tx_datagrams), (4, 1));
}

/// An IPv4/TCP frame from `MAC_A` to `MAC_B` with TCP source port `sport` and `seq` in the
/// payload.
fn tcp_frame(sport: u16, seq: u8) -> Vec<u8> {
    let mut f = frame(MAC_B, MAC_A, 120);
    f[12..14].copy_from_slice(&[0x08, 0x00]);
    let ip = &mut f[14..34];
    ip.fill(0);
    ip[0] = 0x45;
    ip[2..4].copy_from_slice(&106u16.to_be_bytes());
    ip[8] = 64;
    ip[9] = 6;
    ip[12..16].copy_from_slice(&[10, 0, 0, 1]);
    ip[16..20].copy_from_slice(&[10, 0, 0, 2]);
    f[34..36].copy_from_slice(&sport.to_be_bytes());
    f[36..38].copy_from_slice(&80u16.to_be_bytes());
    f[60] = seq;
    f
}

#[test]
fn outer_source_port_follows_the_inner_flow() {
    // A plain UDP socket stands for the peer VTEP, to see the outer source ports.
    let peer = UdpSocket::bind((Ipv4Addr::new(127, 0, 0, 52), 0)).unwrap();
    peer.set_read_timeout(Some(LONG)).unwrap();
    let port = peer.local_addr().unwrap().port();
    let a = TunnelHost::start(SocketAddr::new(lo(51), 0), port).unwrap();
    let pa = a.attach(510, false).unwrap();
    a.set_remote_mac(510, MacAddr(MAC_B), lo(52));
    const FLOWS: u16 = 16;
    const EACH: u8 = 3;
    for seq in 0..EACH {
        for f in 0..FLOWS {
            send(&pa, &tcp_frame(1000 + f, seq));
        }
    }
    let mut ports: HashMap<u16, HashSet<u16>> = HashMap::new();
    let mut buf = [0u8; 2048];
    for _ in 0..u32::from(FLOWS) * u32::from(EACH) {
        let (n, src) = peer.recv_from(&mut buf).expect("datagram");
        assert_eq!(src.ip(), lo(51));
        let (repr, inner) = encap::decapsulate(&buf[..n]).unwrap();
        assert_eq!(repr.vni, 510);
        let sport = u16::from_be_bytes([inner[34], inner[35]]);
        ports.entry(sport).or_default().insert(src.port());
    }
    assert_eq!(ports.len(), usize::from(FLOWS));
    for (flow, p) in &ports {
        assert_eq!(p.len(), 1, "flow {flow} left from ports {p:?}");
        assert!(!p.contains(&a.local_addr().port()), "from the receive port");
    }
    let distinct: HashSet<u16> = ports.values().flatten().copied().collect();
    assert!(distinct.len() >= 2, "all flows left from {distinct:?}");
    // Only the data-path port receives: a datagram to a sender's port is not taken in.
    let before = a.host_stats().rx_datagrams;
    let to = SocketAddr::new(lo(51), *distinct.iter().next().unwrap());
    peer.send_to(&datagram(510), to).unwrap();
    peer.send_to(&datagram(510), a.local_addr()).unwrap();
    assert!(wait_for(|| a.host_stats().rx_datagrams == before + 1));
    assert_eq!(recv(&pa, SHORT).map(|f| f.len()), Some(60));
    assert_eq!(recv(&pa, SHORT), None);
}

#[test]
fn burst_of_equal_frames_arrives_in_order() {
    // What the datapath sends for a segmented TCP stream: many MTU-sized frames for one MAC
    // (a GSO run where the kernel has UDP GSO, sendmmsg otherwise).
    let h = hosts(&[41, 42]);
    let (a, b) = (&h[0], &h[1]);
    let pa = a.attach(500, false).unwrap();
    let pb = b.attach(500, false).unwrap();
    a.set_remote_mac(500, MacAddr(MAC_B), lo(42));
    b.add_peer(500, lo(41));
    let frames: Vec<Vec<u8>> = (0..100)
        .map(|i| {
            let mut f = frame(MAC_B, MAC_A, if i % 50 == 49 { 700 } else { 1464 });
            f[14] = i as u8;
            f
        })
        .collect();
    for f in &frames {
        send(&pa, f);
    }
    for f in &frames {
        assert_eq!(recv(&pb, LONG).as_deref(), Some(&f[..]));
    }
    let s = a.stats(500).unwrap();
    assert_eq!(
        (s.tx_frames, s.tx_datagrams, s.dropped.total()),
        (100, 100, 0)
    );
}

#[test]
fn filters_and_counts_drops() {
    let h = hosts(&[51, 52]);
    let (a, b) = (&h[0], &h[1]);
    let port = a.local_addr();
    let pa = a.attach(301, true).unwrap();
    a.attach(302, true).unwrap();
    a.add_peer(301, lo(52));
    // Unknown VTEP (127.0.0.53), a known VTEP of VNI 301 sending on 302 (not its peer there),
    // a VNI not attached, and garbage.
    let stranger = UdpSocket::bind((Ipv4Addr::new(127, 0, 0, 53), 0)).unwrap();
    stranger.send_to(&datagram(301), port).unwrap();
    let known = UdpSocket::bind((Ipv4Addr::new(127, 0, 0, 52), 0)).unwrap();
    known.send_to(&datagram(302), port).unwrap();
    known.send_to(&datagram(999), port).unwrap();
    known.send_to(&[0xff; 5], port).unwrap();
    known.send_to(&[0u8; 40], port).unwrap();
    assert!(wait_for(|| a.host_stats().rx_datagrams == 5));
    let hs = a.host_stats();
    assert_eq!((hs.unknown_vni, hs.malformed), (1, 2));
    assert_eq!(a.stats(301).unwrap().dropped.unknown_vtep, 1);
    assert_eq!(a.stats(302).unwrap().dropped.unknown_vtep, 1);
    assert_eq!(a.stats(301).unwrap().rx_frames, 0);
    assert_eq!(recv(&pa, SHORT), None);
    // A good one from a known VTEP with any source port passes.
    known.send_to(&datagram(301), port).unwrap();
    assert!(recv(&pa, LONG).is_some());
    // From the switch: a runt frame, and a flood with no peer.
    let pb = b.attach(301, true).unwrap();
    send(&pb, &[1, 2, 3]);
    send(&pb, &frame([0xff; 6], MAC_B, 60));
    assert!(wait_for(|| b.stats(301).unwrap().dropped.no_peer == 1));
    let s = b.stats(301).unwrap();
    assert_eq!(s.dropped.bad_frame, 1);
    assert_eq!(s.tx_frames, 2);
    assert_eq!(s.tx_datagrams, 0);
}

#[test]
fn switch_side_close_and_shutdown() {
    let mut h = TunnelHost::start(SocketAddr::new(lo(61), 0), 0).unwrap();
    assert!(h.is_running());
    // Closing the switch side leaves the thread serving the others.
    let p1 = h.attach(600, true).unwrap();
    let p2 = h.attach(601, true).unwrap();
    drop(p1);
    std::thread::sleep(Duration::from_millis(50));
    assert!(h.is_running());
    send(&p2, &frame([0xff; 6], MAC_A, 60));
    assert!(wait_for(|| h.stats(601).unwrap().dropped.no_peer == 1));
    h.detach(600).unwrap();
    // Shutdown (explicit, then again on drop) stops it; no attach afterwards.
    h.shutdown();
    assert!(!h.is_running());
    assert!(matches!(h.attach(602, true), Err(OverlayError::Stopped)));
    h.shutdown();
}

#[test]
fn tso_frame_is_segmented_by_the_tunnel() {
    use crate::wire::testutil::{ip_frame, tcp_segment, v4};
    use crate::wire::{IpProtocol, VnetHdrRepr};
    let h = hosts(&[71, 72]);
    let (a, b) = (&h[0], &h[1]);
    let pa = a.attach(700, false).unwrap();
    let pb = b.attach(700, false).unwrap();
    assert!(pa.offload, "the tunnel port takes TSO frames");
    a.set_remote_mac(700, MacAddr(MAC_B), lo(72));
    b.add_peer(700, lo(71));
    // The largest TCP payload one frame holds (IP total 65 520, more than a datagram can
    // carry whole), MSS 1398 (overlay MTU 1450).
    let ph = v4("172.18.0.2", "172.18.0.3");
    let data: Vec<u8> = (0..65_480).map(|i| (i * 7 + i / 251) as u8).collect();
    let seg = tcp_segment(&ph, (40000, 5201), 1000, 0x18, &[], &data);
    let frame = ip_frame(
        MacAddr(MAC_A),
        MacAddr(MAC_B),
        None,
        ph,
        IpProtocol::TCP,
        &[],
        &seg,
    );
    let hdr = tso_v4(1398);
    let mut msg = vec![0u8; VNET_HDR_LEN];
    hdr.emit(&mut msg).unwrap();
    msg.extend_from_slice(&frame);
    // SAFETY: writing our buffer.
    let r = unsafe { libc::write(pa.file.as_raw_fd(), msg.as_ptr().cast(), msg.len()) };
    assert_eq!(r as usize, msg.len());
    // On the other side the segments are merged again (receive coalescing): resolve what
    // arrives as a port without offloads would, and check every segment.
    let want = data.len().div_ceil(1398);
    let mut segments = Vec::new();
    let mut messages = 0;
    let mut buf = vec![0u8; 70_000];
    let deadline = Instant::now() + LONG;
    while segments.len() < want && Instant::now() < deadline {
        // SAFETY: reading into our buffer.
        let r = unsafe { libc::read(pb.file.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
        if r <= 0 {
            std::thread::sleep(Duration::from_millis(5));
            continue;
        }
        messages += 1;
        let (hdr, frame) = buf[..r as usize].split_at_mut(VNET_HDR_LEN);
        let repr = crate::wire::VnetHdr::new_checked(&hdr[..])
            .ok()
            .and_then(|h| VnetHdrRepr::parse(&h).ok())
            .expect("vnet header");
        let mut scratch = vec![0u8; 2048];
        crate::wire::vnet_hdr::resolve_offloads(frame, &repr, &mut scratch, |s| {
            segments.push(s.to_vec())
        })
        .expect("resolvable");
    }
    assert_eq!(segments.len(), want);
    assert!(
        messages < want / 4,
        "{messages} messages for {want} segments"
    );
    let mut joined = Vec::new();
    for (i, f) in segments.iter().enumerate() {
        assert!(f.len() <= 1450 + 14, "segment {i}: {} bytes", f.len());
        // Every checksum valid, as the kernel would check it.
        let p = etherparse::SlicedPacket::from_ethernet(f).expect("etherparse");
        let Some(etherparse::NetSlice::Ipv4(ip)) = &p.net else {
            panic!("not ipv4")
        };
        assert_eq!(
            ip.header().header_checksum(),
            ip.header().to_header().calc_header_checksum()
        );
        let Some(etherparse::TransportSlice::Tcp(tcp)) = &p.transport else {
            panic!("not tcp")
        };
        let sum = tcp
            .to_header()
            .calc_checksum_ipv4(&ip.header().to_header(), tcp.payload())
            .unwrap();
        assert_eq!(tcp.checksum(), sum, "segment {i}");
        joined.extend_from_slice(tcp.payload());
    }
    assert_eq!(joined, data);
    assert_eq!(recv(&pb, SHORT), None);
    let s = a.stats(700).unwrap();
    assert_eq!(
        (s.tx_frames, s.tx_datagrams, s.dropped.total()),
        (1, want as u64, 0)
    );
}

/// One host of the in-thread tunnel: a datapath whose worker serves the tunnel socket, an
/// overlay switch "n" with a container port (the test holds the other end of its socketpair)
/// and the tunnel port.
struct WorkerHost {
    dp: crate::datapath::Datapath,
    tunnel: TunnelHost,
    container: OwnedFd,
    tport: crate::switch::PortId,
}

fn worker_host(addr: SocketAddr, port: u16, vni: u32, mac: [u8; 6], ip: &str) -> WorkerHost {
    use crate::switch::{PortConfig, SwitchConfig};
    let mut dp = crate::datapath::Datapath::start(1).unwrap();
    let tunnel = TunnelHost::start_on(&mut dp, addr, port).unwrap();
    dp.add_overlay_network("n", SwitchConfig::default())
        .unwrap();
    let (ours, theirs) = crate::port::seqpacket_pair().unwrap();
    let io = PortIo {
        file: std::fs::File::from(ours),
        offload: true,
        delete_on_close: None,
        queues: Vec::new(),
    };
    let cfg = PortConfig::container(MacAddr(mac)).with_ipv4(ip.parse().unwrap());
    dp.add_port("n", cfg, io, None).unwrap();
    let tport = tunnel.attach_port(&dp, "n", vni, false).unwrap();
    WorkerHost {
        dp,
        tunnel,
        container: theirs,
        tport,
    }
}

/// The virtio-net header of an IPv4 TCP super-frame (Ethernet + IPv4 + TCP headers, 54 bytes)
/// to be cut at `mss`.
fn tso_v4(mss: u16) -> crate::wire::VnetHdrRepr {
    use crate::wire::vnet_hdr::{GsoType, FLAG_NEEDS_CSUM};
    crate::wire::VnetHdrRepr {
        flags: FLAG_NEEDS_CSUM,
        gso_type: GsoType::TcpV4,
        ecn: false,
        hdr_len: 54,
        gso_size: mss,
        csum_start: 34,
        csum_offset: 16,
    }
}

/// Two worker hosts on loopback addresses 127.0.0.`hosts.0` and `.1` (container MAC_A with
/// `ip_a`, MAC_B with `ip_b`), on one free port.
fn worker_pair(hosts: (u8, u8), vni: u32, ip_a: &str, ip_b: &str) -> (WorkerHost, WorkerHost) {
    let probe = UdpSocket::bind((Ipv4Addr::new(127, 0, 0, hosts.0), 0)).unwrap();
    let port = probe.local_addr().unwrap().port();
    drop(probe);
    let a = worker_host(SocketAddr::new(lo(hosts.0), port), port, vni, MAC_A, ip_a);
    let b = worker_host(SocketAddr::new(lo(hosts.1), port), port, vni, MAC_B, ip_b);
    (a, b)
}

/// The next message on `fd` within `wait` (virtio-net header + frame).
fn recv_fd(fd: &OwnedFd, wait: Duration) -> Option<Vec<u8>> {
    let deadline = Instant::now() + wait;
    let mut buf = vec![0u8; 70_000];
    loop {
        // SAFETY: reading into our buffer.
        let r = unsafe {
            libc::recv(
                fd.as_raw_fd(),
                buf.as_mut_ptr().cast(),
                buf.len(),
                libc::MSG_DONTWAIT,
            )
        };
        if r > 0 {
            return Some(buf[..r as usize].to_vec());
        }
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

#[test]
fn worker_served_tunnel_carries_frames_and_tso_between_containers() {
    use crate::wire::testutil::{ip_frame, tcp_segment, v4};
    use crate::wire::{IpProtocol, VnetHdrRepr};
    let vni = 800;
    let (ip_a, ip_b) = ("172.18.8.2", "172.18.8.3");
    let (a, b) = worker_pair((81, 82), vni, ip_a, ip_b);
    assert!(a.tunnel.is_running());
    assert_eq!(a.tunnel.vnis(), vec![vni]);
    // A second port for the VNI is refused.
    assert!(a.tunnel.attach_port(&a.dp, "n", vni, false).is_err());
    for (h, mac, ip, vtep) in [(&a, MAC_B, ip_b, lo(82)), (&b, MAC_A, ip_a, lo(81))] {
        h.tunnel.set_remote_mac(vni, MacAddr(mac), vtep);
        h.dp.set_remote_endpoint("n", h.tport, MacAddr(mac), vec![ip.parse().unwrap()])
            .unwrap();
    }
    let write = |fd: &OwnedFd, hdr: &VnetHdrRepr, frame: &[u8]| {
        let mut msg = vec![0u8; VNET_HDR_LEN];
        hdr.emit(&mut msg).unwrap();
        msg.extend_from_slice(frame);
        // SAFETY: writing our buffer.
        let r = unsafe { libc::write(fd.as_raw_fd(), msg.as_ptr().cast(), msg.len()) };
        assert_eq!(r as usize, msg.len());
    };
    let tcp = |from: (&str, [u8; 6]), to: (&str, [u8; 6]), seq: u32, data: &[u8]| {
        let ph = v4(from.0, to.0);
        let seg = tcp_segment(&ph, (40000, 5201), seq, 0x18, &[], data);
        ip_frame(
            MacAddr(from.1),
            MacAddr(to.1),
            None,
            ph,
            IpProtocol::TCP,
            &[],
            &seg,
        )
    };
    // Small frames both ways, byte for byte (a lone segment is not merged).
    let ab = tcp((ip_a, MAC_A), (ip_b, MAC_B), 1, b"hello");
    write(&a.container, &VnetHdrRepr::NONE, &ab);
    let got = recv_fd(&b.container, LONG).expect("a -> b");
    assert_eq!(&got[VNET_HDR_LEN..], &ab[..]);
    let ba = tcp((ip_b, MAC_B), (ip_a, MAC_A), 1, b"hi back");
    write(&b.container, &VnetHdrRepr::NONE, &ba);
    let got = recv_fd(&a.container, LONG).expect("b -> a");
    assert_eq!(&got[VNET_HDR_LEN..], &ba[..]);
    // A TSO frame: segmented and sent with GSO by a's worker, merged back by b's.
    let data: Vec<u8> = (0..60_000).map(|i| (i * 13 + i / 241) as u8).collect();
    let big = tcp((ip_a, MAC_A), (ip_b, MAC_B), 100, &data);
    let hdr = tso_v4(1398);
    write(&a.container, &hdr, &big);
    let want = data.len().div_ceil(1398);
    let (mut joined, mut segments, mut messages) = (Vec::new(), 0, 0);
    while segments < want {
        let Some(mut msg) = recv_fd(&b.container, LONG) else {
            break;
        };
        messages += 1;
        let (h, frame) = msg.split_at_mut(VNET_HDR_LEN);
        let repr = crate::wire::VnetHdr::new_checked(&h[..])
            .ok()
            .and_then(|h| VnetHdrRepr::parse(&h).ok())
            .expect("vnet header");
        let mut scratch = vec![0u8; 2048];
        crate::wire::vnet_hdr::resolve_offloads(frame, &repr, &mut scratch, |s| {
            segments += 1;
            joined.extend_from_slice(&s[54..]);
        })
        .expect("resolvable");
    }
    assert_eq!(segments, want);
    assert_eq!(joined, data);
    assert!(
        messages < want / 4,
        "{messages} messages for {want} segments"
    );
    let s = a.tunnel.stats(vni).unwrap();
    assert_eq!((s.tx_frames, s.dropped.total()), (2, 0), "{s:?}");
    assert_eq!(s.tx_datagrams, 1 + want as u64, "{s:?}");
    let s = b.tunnel.stats(vni).unwrap();
    assert_eq!(s.rx_datagrams, 1 + want as u64, "{s:?}");
    // Teardown: port out of the datapath, then detach; dropping the host stops the tunnel.
    a.dp.remove_port("n", a.tport).unwrap();
    a.tunnel.detach(vni).unwrap();
    assert!(a.tunnel.vnis().is_empty());
    drop(a);
    drop(b);
}

/// The switch's ARP answer to a request that came through the tunnel goes back through it:
/// produced while the worker is receiving from the tunnel, it waits in the worker's deferred
/// frames (`TUNNEL_DEFER_*`) and leaves after the receive batch.
#[test]
fn arp_asked_through_the_tunnel_is_answered_back_through_it() {
    use crate::wire::arp::{ArpPacket, ArpRepr};
    use crate::wire::testutil::arp_frame;
    use crate::wire::{ArpOp, EtherType, EthernetFrame};
    let vni = 801;
    let (ip_a, ip_b) = ("172.18.9.2", "172.18.9.3");
    let (a, b) = worker_pair((83, 84), vni, ip_a, ip_b);
    // a's switch knows where MAC_B is but not its address, so it does not answer for it: a
    // unicast request (as a neighbour re-probe) crosses to b, whose switch answers for b.
    a.tunnel.set_remote_mac(vni, MacAddr(MAC_B), lo(84));
    a.dp.set_remote_endpoint("n", a.tport, MacAddr(MAC_B), Vec::new())
        .unwrap();
    b.tunnel.set_remote_mac(vni, MacAddr(MAC_A), lo(83));
    b.dp.set_remote_endpoint("n", b.tport, MacAddr(MAC_A), vec![ip_a.parse().unwrap()])
        .unwrap();
    let ask = ArpRepr::request(MacAddr(MAC_A), ip_a.parse().unwrap(), ip_b.parse().unwrap());
    let mut msg = vec![0u8; VNET_HDR_LEN];
    msg.extend_from_slice(&arp_frame(MacAddr(MAC_A), MacAddr(MAC_B), &ask));
    // SAFETY: writing our buffer.
    let r = unsafe { libc::write(a.container.as_raw_fd(), msg.as_ptr().cast(), msg.len()) };
    assert_eq!(r as usize, msg.len());
    let got = recv_fd(&a.container, LONG).expect("an answer through the tunnel");
    let eth = EthernetFrame::new_checked(&got[VNET_HDR_LEN..]).expect("ethernet");
    assert_eq!(eth.ethertype(), EtherType::ARP);
    let reply = ArpRepr::parse(&ArpPacket::new_checked(eth.payload()).expect("arp"));
    assert_eq!(reply.op, ArpOp::REPLY);
    assert_eq!(
        (reply.sha, reply.spa),
        (MacAddr(MAC_B), ip_b.parse().unwrap())
    );
    assert_eq!(b.tunnel.stats(vni).unwrap().tx_frames, 1);
    // b's container never saw the request: its switch answered.
    assert!(recv_fd(&b.container, Duration::from_millis(100)).is_none());
}
