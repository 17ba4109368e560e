//! Frame builders for tests (of this module and of the switch).

use super::checksum::PseudoHeader;
use super::ethernet::{EtherType, EthernetRepr, VlanTag};
use super::ipv4::{IpProtocol, Ipv4Packet, Ipv4Repr, DEFAULT_TTL};
use super::ipv6::{Ipv6Repr, DEFAULT_HOP_LIMIT};
use super::mac::MacAddr;
use super::tcp::{self, TcpPacket};
use super::udp::UdpPacket;
use super::{arp::ArpRepr, write_u16};

/// An Ethernet frame carrying an IP packet `l4` from/to the addresses of `ph`.
pub fn ip_frame(
    src: MacAddr,
    dst: MacAddr,
    vlan: Option<VlanTag>,
    ph: PseudoHeader,
    proto: IpProtocol,
    ip_options: &[u8],
    l4: &[u8],
) -> Vec<u8> {
    let ethertype = match ph {
        PseudoHeader::V4 { .. } => EtherType::IPV4,
        PseudoHeader::V6 { .. } => EtherType::IPV6,
    };
    let eth = EthernetRepr {
        src,
        dst,
        vlan,
        ethertype,
    };
    let mut f = vec![0u8; eth.header_len()];
    eth.emit(&mut f).expect("fits");
    let l3 = f.len();
    match ph {
        PseudoHeader::V4 { src, dst } => {
            assert_eq!(ip_options.len() % 4, 0);
            let mut h = [0u8; 20];
            Ipv4Repr {
                src,
                dst,
                protocol: proto,
                payload_len: l4.len() + ip_options.len(),
                ttl: DEFAULT_TTL,
            }
            .emit(&mut h)
            .expect("fits");
            h[0] = 0x40 | ((20 + ip_options.len()) / 4) as u8;
            write_u16(&mut h, 4, 0x1234);
            f.extend_from_slice(&h);
            f.extend_from_slice(ip_options);
            f.extend_from_slice(l4);
            let mut ip = Ipv4Packet::new_checked(&mut f[l3..]).expect("valid");
            ip.fill_checksum();
        }
        PseudoHeader::V6 { src, dst } => {
            let mut h = [0u8; 40];
            Ipv6Repr {
                src,
                dst,
                next_header: proto,
                payload_len: l4.len(),
                hop_limit: DEFAULT_HOP_LIMIT,
            }
            .emit(&mut h)
            .expect("fits");
            f.extend_from_slice(&h);
            f.extend_from_slice(l4);
        }
    }
    f
}

/// A TCP segment (checksum filled for `ph`).
pub fn tcp_segment(
    ph: &PseudoHeader,
    ports: (u16, u16),
    seq: u32,
    flags: u8,
    options: &[u8],
    payload: &[u8],
) -> Vec<u8> {
    assert_eq!(options.len() % 4, 0);
    let mut t = vec![0u8; 20];
    tcp::emit_header(&mut t, ports.0, ports.1, seq, 99, flags, 1000).expect("fits");
    t[12] = (((20 + options.len()) / 4) as u8) << 4;
    t.extend_from_slice(options);
    t.extend_from_slice(payload);
    TcpPacket::new_checked(&mut t[..])
        .expect("valid")
        .fill_checksum(ph);
    t
}

/// A UDP datagram (checksum filled for `ph`).
pub fn udp_datagram(ph: &PseudoHeader, ports: (u16, u16), payload: &[u8]) -> Vec<u8> {
    let mut u = vec![0u8; 8];
    write_u16(&mut u, 0, ports.0);
    write_u16(&mut u, 2, ports.1);
    write_u16(&mut u, 4, (8 + payload.len()) as u16);
    u.extend_from_slice(payload);
    UdpPacket::new_checked(&mut u[..])
        .expect("valid")
        .fill_checksum(ph);
    u
}

/// An ARP frame.
pub fn arp_frame(src: MacAddr, dst: MacAddr, repr: &ArpRepr) -> Vec<u8> {
    let mut b = vec![0u8; 64];
    let n = repr.emit_frame(src, dst, None, &mut b).expect("fits");
    b.truncate(n);
    b
}

/// IPv4 pseudo-header from dotted strings.
pub fn v4(src: &str, dst: &str) -> PseudoHeader {
    PseudoHeader::V4 {
        src: src.parse().expect("ipv4"),
        dst: dst.parse().expect("ipv4"),
    }
}

/// IPv6 pseudo-header from strings.
pub fn v6(src: &str, dst: &str) -> PseudoHeader {
    PseudoHeader::V6 {
        src: src.parse().expect("ipv6"),
        dst: dst.parse().expect("ipv6"),
    }
}
