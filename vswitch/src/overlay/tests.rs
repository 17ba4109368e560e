//! Tunnels over loopback (no root needed): 127.0.0.x addresses are all local, so several
//! tunnels share one port on different addresses.

use super::*;
use std::net::{Ipv4Addr, UdpSocket};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

fn lo(last: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 0, 0, last))
}

/// Tunnels on 127.0.0.{lasts} sharing one ephemeral port.
fn tunnels(vni: u32, lasts: &[u8]) -> Vec<(TunnelHandle, PortIo)> {
    let mut first = TunnelConfig::new(vni, lo(lasts[0]));
    first.local.set_port(0);
    let (h, io) = Tunnel::start(first).unwrap();
    let port = h.local_addr().port();
    // Re-create the first one with the right destination port.
    drop((h, io));
    let mut out = Vec::new();
    for &l in lasts {
        let mut cfg = TunnelConfig::new(vni, lo(l));
        cfg.local.set_port(port);
        cfg.dst_port = port;
        out.push(Tunnel::start(cfg).unwrap());
    }
    out
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

use crate::port::tap::VNET_HDR_LEN;

const MAC_A: [u8; 6] = [2, 0x42, 10, 0, 0, 1];
const MAC_B: [u8; 6] = [2, 0x42, 10, 0, 0, 2];
const MAC_C: [u8; 6] = [2, 0x42, 10, 0, 0, 3];

#[test]
fn flood_reaches_every_peer_and_unicast_only_its_vtep() {
    let t = tunnels(300, &[11, 12, 13]);
    let (a, b, c) = (&t[0], &t[1], &t[2]);
    a.0.add_peer(lo(12));
    a.0.add_peer(lo(13));
    b.0.add_peer(lo(11));
    c.0.add_peer(lo(11));
    // Broadcast: both peers get it, byte for byte.
    let bc = frame([0xff; 6], MAC_A, 60);
    send(&a.1, &bc);
    assert_eq!(recv(&b.1, Duration::from_secs(2)).as_deref(), Some(&bc[..]));
    assert_eq!(recv(&c.1, Duration::from_secs(2)).as_deref(), Some(&bc[..]));
    // Unknown unicast floods too.
    let uu = frame(MAC_B, MAC_A, 100);
    send(&a.1, &uu);
    assert_eq!(recv(&b.1, Duration::from_secs(2)).as_deref(), Some(&uu[..]));
    assert_eq!(recv(&c.1, Duration::from_secs(2)).as_deref(), Some(&uu[..]));
    // Known unicast: only to its VTEP. A large frame crosses whole.
    a.0.set_remote_mac(MacAddr(MAC_B), lo(12));
    assert_eq!(a.0.remote_mac(MacAddr(MAC_B)), Some(lo(12)));
    let big = frame(MAC_B, MAC_A, 9000);
    send(&a.1, &big);
    assert_eq!(
        recv(&b.1, Duration::from_secs(2)).as_deref(),
        Some(&big[..])
    );
    assert_eq!(recv(&c.1, Duration::from_millis(200)), None);
    // Reverse direction.
    let back = frame(MAC_A, MAC_B, 64);
    send(&b.1, &back);
    assert_eq!(
        recv(&a.1, Duration::from_secs(2)).as_deref(),
        Some(&back[..])
    );
    // Forgetting the MAC floods again.
    assert!(a.0.remove_remote_mac(MacAddr(MAC_B)));
    send(&a.1, &big);
    assert!(recv(&b.1, Duration::from_secs(2)).is_some());
    assert!(recv(&c.1, Duration::from_secs(2)).is_some());
    let s = a.0.stats();
    assert_eq!(s.tx_frames, 4);
    assert_eq!(s.tx_datagrams, 7);
    assert_eq!(s.rx_frames, 1);
    assert_eq!(s.dropped.total(), 0);
    // Removing a peer removes its MACs and stops floods to it.
    a.0.set_remote_mac(MacAddr(MAC_C), lo(13));
    assert!(a.0.remove_peer(lo(13)));
    assert_eq!(a.0.remote_mac(MacAddr(MAC_C)), None);
    assert_eq!(a.0.peers(), vec![lo(12)]);
    send(&a.1, &bc);
    assert!(recv(&b.1, Duration::from_secs(2)).is_some());
    assert_eq!(recv(&c.1, Duration::from_millis(200)), None);
}

#[test]
fn filters_and_counts_drops() {
    let t = tunnels(301, &[21, 22]);
    let (a, b) = (&t[0], &t[1]);
    let port = a.0.local_addr();
    a.0.add_peer(lo(22));
    let datagram = |vni: u32| {
        let inner = frame([0xff; 6], MAC_B, 60);
        let mut out = vec![0u8; 200];
        let n = encap::encapsulate(vni, &inner, &mut out).unwrap();
        out.truncate(n);
        out
    };
    // Unknown VTEP (127.0.0.23), wrong VNI and garbage from a known one.
    let stranger = UdpSocket::bind((Ipv4Addr::new(127, 0, 0, 23), 0)).unwrap();
    stranger.send_to(&datagram(301), port).unwrap();
    let known = UdpSocket::bind((Ipv4Addr::new(127, 0, 0, 22), 0)).unwrap();
    known.send_to(&datagram(999), port).unwrap();
    known.send_to(&[0xff; 5], port).unwrap();
    known.send_to(&[0u8; 40], port).unwrap();
    assert!(wait_for(|| a.0.stats().rx_datagrams == 4));
    let s = a.0.stats();
    assert_eq!(s.dropped.unknown_vtep, 1);
    assert_eq!(s.dropped.unknown_vni, 1);
    assert_eq!(s.dropped.malformed, 2);
    assert_eq!(s.rx_frames, 0);
    assert_eq!(recv(&a.1, Duration::from_millis(100)), None);
    // A good one from a known VTEP with any source port passes.
    known.send_to(&datagram(301), port).unwrap();
    assert!(recv(&a.1, Duration::from_secs(2)).is_some());
    // From the switch: a runt frame, and a flood with no peer (b knows none).
    send(&b.1, &[1, 2, 3]);
    send(&b.1, &frame([0xff; 6], MAC_B, 60));
    assert!(wait_for(|| b.0.stats().dropped.no_peer == 1));
    let s = b.0.stats();
    assert_eq!(s.dropped.bad_frame, 1);
    assert_eq!(s.tx_frames, 2);
    assert_eq!(s.tx_datagrams, 0);
}

#[test]
fn bad_vni_and_shutdown() {
    assert!(matches!(
        Tunnel::start(TunnelConfig::new(1 << 24, lo(1))),
        Err(OverlayError::BadVni(_))
    ));
    let mut cfg = TunnelConfig::new(5, lo(31));
    cfg.local.set_port(0);
    // Closing the switch side stops the thread.
    let (h, io) = Tunnel::start(cfg).unwrap();
    assert!(h.is_running());
    drop(io);
    assert!(wait_for(|| !h.is_running()));
    // Shutdown (explicit, then again on drop) stops a running one.
    let (mut h, _io) = Tunnel::start(cfg).unwrap();
    h.shutdown();
    assert!(!h.is_running());
}
