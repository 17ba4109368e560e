//! Parsing the containers' frames that reach the gateway port, and building the frames the
//! engine sends back (UDP datagrams, ICMP echo replies, Ethernet framing of smoltcp's IP
//! packets). Pure functions on byte slices: nothing here panics on any input.

use std::net::{IpAddr, SocketAddr};

use crate::wire::checksum::{self, PseudoHeader};
use crate::wire::ethernet::HEADER_LEN as ETH_HEADER_LEN;
use crate::wire::ipv4::DEFAULT_TTL;
use crate::wire::ipv6::DEFAULT_HOP_LIMIT;
use crate::wire::vnet_hdr::{self, GsoType, VnetHdrRepr};
use crate::wire::{
    EtherType, EthernetFrame, EthernetRepr, IcmpPacket, IpProtocol, Ipv4Packet, Ipv4Repr,
    Ipv6Packet, Ipv6Repr, MacAddr, TcpPacket, UdpPacket,
};

/// Offset of the checksum in a TCP header.
const TCP_CSUM: usize = 16;

/// An IP packet received from a container, after the Ethernet header.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Inbound<'a> {
    /// Ethernet source (the container's MAC).
    pub src_mac: MacAddr,
    pub src: IpAddr,
    pub dst: IpAddr,
    pub proto: IpProtocol,
    /// The whole IP packet (header included, link padding removed).
    pub packet: &'a [u8],
    /// The transport payload (after the IP header).
    pub l4: &'a [u8],
}

/// Parses an untagged Ethernet frame holding an unfragmented IPv4 packet with a correct
/// header checksum, or an IPv6 packet. Anything else is `None` (dropped by the engine).
pub(crate) fn parse(frame: &[u8]) -> Option<Inbound<'_>> {
    let eth = EthernetFrame::new_checked(frame).ok()?;
    if eth.vlan().is_some() {
        return None;
    }
    let src_mac = eth.src_addr();
    let payload = &frame[eth.header_len()..];
    match eth.ethertype() {
        EtherType::IPV4 => {
            let p = Ipv4Packet::new_checked(payload).ok()?;
            if !p.verify_checksum() || p.is_fragment() {
                return None;
            }
            let total = usize::from(p.total_len());
            let packet = payload.get(..total)?;
            let l4 = packet.get(p.header_len()..)?;
            Some(Inbound {
                src_mac,
                src: IpAddr::V4(p.src_addr()),
                dst: IpAddr::V4(p.dst_addr()),
                proto: p.protocol(),
                packet,
                l4,
            })
        }
        EtherType::IPV6 => {
            let p = Ipv6Packet::new_checked(payload).ok()?;
            let total = crate::wire::ipv6::HEADER_LEN + usize::from(p.payload_len());
            let packet = payload.get(..total)?;
            let l4 = packet.get(crate::wire::ipv6::HEADER_LEN..)?;
            Some(Inbound {
                src_mac,
                src: IpAddr::V6(p.src_addr()),
                dst: IpAddr::V6(p.dst_addr()),
                proto: p.next_header(),
                packet,
                l4,
            })
        }
        _ => None,
    }
}

/// The pseudo-header of `src` → `dst` (`None` for mixed families).
pub(crate) fn pseudo(src: IpAddr, dst: IpAddr) -> Option<PseudoHeader> {
    match (src, dst) {
        (IpAddr::V4(src), IpAddr::V4(dst)) => Some(PseudoHeader::V4 { src, dst }),
        (IpAddr::V6(src), IpAddr::V6(dst)) => Some(PseudoHeader::V6 { src, dst }),
        _ => None,
    }
}

/// A TCP segment from a container with a valid checksum (not checked unless `verify`: a
/// super-frame's is partial): (src port, dst port, flags).
pub(crate) fn tcp_ports_flags(p: &Inbound<'_>, verify: bool) -> Option<(u16, u16, u8)> {
    let ph = pseudo(p.src, p.dst)?;
    let t = TcpPacket::new_checked(p.l4).ok()?;
    (!verify || t.verify_checksum(&ph)).then(|| (t.src_port(), t.dst_port(), t.flags()))
}

/// A UDP datagram from a container with a valid (or, IPv4, absent) checksum:
/// (src port, dst port, payload).
pub(crate) fn udp<'a>(p: &Inbound<'a>) -> Option<(u16, u16, &'a [u8])> {
    let ph = pseudo(p.src, p.dst)?;
    let u = UdpPacket::new_checked(p.l4).ok()?;
    let ok = match ph {
        PseudoHeader::V4 { .. } => u.checksum() == 0 || u.verify_checksum(&ph),
        PseudoHeader::V6 { .. } => u.checksum() != 0 && u.verify_checksum(&ph),
    };
    let (sp, dp) = (u.src_port(), u.dst_port());
    let len = usize::from(u.len());
    ok.then(|| (sp, dp, p.l4.get(crate::wire::udp::HEADER_LEN..len)))
        .and_then(|(a, b, d)| Some((a, b, d?)))
}

/// An ICMP (v4) or ICMPv6 echo request from a container with a valid checksum:
/// (ident, seq, data after the 8-byte echo header).
pub(crate) fn echo_request<'a>(p: &Inbound<'a>) -> Option<(u16, u16, &'a [u8])> {
    let icmp = IcmpPacket::new_checked(p.l4).ok()?;
    let ok = match (p.proto, pseudo(p.src, p.dst)?) {
        (IpProtocol::ICMP, PseudoHeader::V4 { .. }) => {
            icmp.msg_type() == crate::wire::icmp::V4_ECHO_REQUEST && icmp.verify_checksum_v4()
        }
        (IpProtocol::ICMPV6, ph @ PseudoHeader::V6 { .. }) => {
            icmp.msg_type() == crate::wire::icmp::V6_ECHO_REQUEST && icmp.verify_checksum_v6(&ph)
        }
        _ => false,
    };
    let (ident, seq) = icmp.echo_ident_seq()?;
    ok.then(|| (ident, seq, p.l4.get(crate::wire::icmp::ECHO_HEADER_LEN..)))
        .and_then(|(a, b, d)| Some((a, b, d?)))
}

/// An ICMP echo message (request or reply) with its checksum: for ICMPv6 the pseudo-header
/// of `src` → `dst` enters it (a raw ICMPv6 socket fills it itself anyway).
pub(crate) fn echo_message(
    v6: bool,
    ph: Option<PseudoHeader>,
    reply: bool,
    ident: u16,
    seq: u16,
    data: &[u8],
) -> Vec<u8> {
    let ty = match (v6, reply) {
        (false, false) => crate::wire::icmp::V4_ECHO_REQUEST,
        (false, true) => crate::wire::icmp::V4_ECHO_REPLY,
        (true, false) => crate::wire::icmp::V6_ECHO_REQUEST,
        (true, true) => crate::wire::icmp::V6_ECHO_REPLY,
    };
    let mut m = Vec::with_capacity(8 + data.len());
    m.extend_from_slice(&[ty, 0, 0, 0]);
    m.extend_from_slice(&ident.to_be_bytes());
    m.extend_from_slice(&seq.to_be_bytes());
    m.extend_from_slice(data);
    let acc = match ph.filter(|_| v6) {
        Some(ph) => ph.sum(IpProtocol::ICMPV6, m.len() as u32),
        None => 0,
    };
    let c = !checksum::fold(checksum::accumulate(acc, &m));
    m[2..4].copy_from_slice(&c.to_be_bytes());
    m
}

/// A UDP datagram `src` → `dst` with its checksum.
pub(crate) fn udp_datagram(src: SocketAddr, dst: SocketAddr, data: &[u8]) -> Option<Vec<u8>> {
    let ph = pseudo(src.ip(), dst.ip())?;
    let len = u16::try_from(8 + data.len()).ok()?;
    let mut d = Vec::with_capacity(usize::from(len));
    d.extend_from_slice(&src.port().to_be_bytes());
    d.extend_from_slice(&dst.port().to_be_bytes());
    d.extend_from_slice(&len.to_be_bytes());
    d.extend_from_slice(&[0, 0]);
    d.extend_from_slice(data);
    let c = checksum::nonzero(!checksum::fold(checksum::accumulate(
        ph.sum(IpProtocol::UDP, u32::from(len)),
        &d,
    )));
    d[6..8].copy_from_slice(&c.to_be_bytes());
    Some(d)
}

/// An Ethernet frame `src_mac` → `dst_mac` carrying an IP packet `src` → `dst` of protocol
/// `proto` with transport bytes `l4` (IPv4: DF set, TTL 64; IPv6: hop limit 64).
pub(crate) fn ip_frame(
    src_mac: MacAddr,
    dst_mac: MacAddr,
    src: IpAddr,
    dst: IpAddr,
    proto: IpProtocol,
    l4: &[u8],
) -> Option<Vec<u8>> {
    let (ethertype, hlen) = match (src, dst) {
        (IpAddr::V4(_), IpAddr::V4(_)) => (EtherType::IPV4, crate::wire::ipv4::MIN_HEADER_LEN),
        (IpAddr::V6(_), IpAddr::V6(_)) => (EtherType::IPV6, crate::wire::ipv6::HEADER_LEN),
        _ => return None,
    };
    let eth = EthernetRepr {
        src: src_mac,
        dst: dst_mac,
        vlan: None,
        ethertype,
    };
    let ehl = eth.header_len();
    let mut f = vec![0u8; ehl + hlen + l4.len()];
    eth.emit(&mut f).ok()?;
    match (src, dst) {
        (IpAddr::V4(src), IpAddr::V4(dst)) => Ipv4Repr {
            src,
            dst,
            protocol: proto,
            payload_len: l4.len(),
            ttl: DEFAULT_TTL,
        }
        .emit(&mut f[ehl..])
        .ok()?,
        (IpAddr::V6(src), IpAddr::V6(dst)) => Ipv6Repr {
            src,
            dst,
            next_header: proto,
            payload_len: l4.len(),
            hop_limit: DEFAULT_HOP_LIMIT,
        }
        .emit(&mut f[ehl..])
        .ok()?,
        _ => return None,
    };
    f[ehl + hlen..].copy_from_slice(l4);
    Some(f)
}

/// Turns `buf` — [`ETH_HEADER_LEN`] bytes of room, then an IP packet built by smoltcp — into a
/// frame `src_mac` → `dst_mac` for a port with offloads, and returns its virtio-net header. A
/// TCP segment gets the pseudo-header sum in its checksum field (`NEEDS_CSUM`: the port, or
/// the datapath for a port without offloads, completes it) and, with more than `gso` payload
/// bytes, becomes a GSO super-frame cut at `gso`. `None` for anything malformed.
pub(crate) fn finish_out(
    buf: &mut [u8],
    src_mac: MacAddr,
    dst_mac: MacAddr,
    gso: Option<u16>,
) -> Option<VnetHdrRepr> {
    let packet = buf.get(ETH_HEADER_LEN..)?;
    let (ethertype, src, dst, proto, l3_len, l4_len) = match packet.first()? >> 4 {
        4 => {
            let p = Ipv4Packet::new_checked(packet).ok()?;
            let hl = p.header_len();
            let l4 = usize::from(p.total_len()).checked_sub(hl)?;
            let (s, d) = (IpAddr::V4(p.src_addr()), IpAddr::V4(p.dst_addr()));
            (EtherType::IPV4, s, d, p.protocol(), hl, l4)
        }
        6 => {
            let p = Ipv6Packet::new_checked(packet).ok()?;
            let (s, d) = (IpAddr::V6(p.src_addr()), IpAddr::V6(p.dst_addr()));
            let l4 = usize::from(p.payload_len());
            (
                EtherType::IPV6,
                s,
                d,
                p.next_header(),
                crate::wire::ipv6::HEADER_LEN,
                l4,
            )
        }
        _ => return None,
    };
    let eth = EthernetRepr {
        src: src_mac,
        dst: dst_mac,
        vlan: None,
        ethertype,
    };
    eth.emit(buf.get_mut(..ETH_HEADER_LEN)?).ok()?;
    if proto != IpProtocol::TCP {
        return Some(VnetHdrRepr::NONE);
    }
    let l4_off = ETH_HEADER_LEN + l3_len;
    let l4 = buf.get_mut(l4_off..l4_off + l4_len)?;
    let thl = TcpPacket::new_checked(&*l4).ok()?.header_len();
    let partial =
        checksum::fold(pseudo(src, dst)?.sum(IpProtocol::TCP, u32::try_from(l4_len).ok()?));
    l4.get_mut(TCP_CSUM..TCP_CSUM + 2)?
        .copy_from_slice(&partial.to_be_bytes());
    let mut h = VnetHdrRepr {
        flags: vnet_hdr::FLAG_NEEDS_CSUM,
        gso_type: GsoType::None,
        ecn: false,
        hdr_len: u16::try_from(l4_off + thl).ok()?,
        gso_size: 0,
        csum_start: u16::try_from(l4_off).ok()?,
        csum_offset: TCP_CSUM as u16,
    };
    if let Some(mss) = gso.filter(|&m| m > 0 && l4_len - thl > usize::from(m)) {
        h.gso_type = if src.is_ipv4() {
            GsoType::TcpV4
        } else {
            GsoType::TcpV6
        };
        h.gso_size = mss;
    }
    Some(h)
}

/// The destination address of an IP packet built by smoltcp.
pub(crate) fn ip_dst(packet: &[u8]) -> Option<IpAddr> {
    match packet.first()? >> 4 {
        4 => Ipv4Packet::new_checked(packet)
            .ok()
            .map(|p| IpAddr::V4(p.dst_addr())),
        6 => Ipv6Packet::new_checked(packet)
            .ok()
            .map(|p| IpAddr::V6(p.dst_addr())),
        _ => None,
    }
}

/// Checks a frame the engine emitted: untagged Ethernet with an IPv4 (header checksum
/// valid, unfragmented) or IPv6 packet whose TCP, UDP or ICMP/ICMPv6 checksum is valid.
/// For tests and the `nat_frames` fuzz target.
pub fn check_emitted(frame: &[u8]) -> Result<(), &'static str> {
    let p = parse(frame).ok_or("not an untagged, unfragmented IP frame with valid header")?;
    let ph = pseudo(p.src, p.dst).ok_or("mixed families")?;
    let ok = match p.proto {
        IpProtocol::TCP => TcpPacket::new_checked(p.l4)
            .map(|t| t.verify_checksum(&ph))
            .unwrap_or(false),
        IpProtocol::UDP => UdpPacket::new_checked(p.l4)
            .map(|u| u.checksum() != 0 && u.verify_checksum(&ph))
            .unwrap_or(false),
        IpProtocol::ICMP => IcmpPacket::new_checked(p.l4)
            .map(|i| i.verify_checksum_v4())
            .unwrap_or(false),
        IpProtocol::ICMPV6 => IcmpPacket::new_checked(p.l4)
            .map(|i| i.verify_checksum_v6(&ph))
            .unwrap_or(false),
        _ => return Err("unexpected protocol"),
    };
    if ok {
        Ok(())
    } else {
        Err("bad transport checksum")
    }
}
