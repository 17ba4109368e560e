use super::*;
use crate::wire::checksum::PseudoHeader;
use crate::wire::ethernet::VlanTag;
use crate::wire::mac::MacAddr;
use crate::wire::testutil::{ip_frame, tcp_segment, udp_datagram, v4, v6};
use etherparse::{NetSlice, SlicedPacket, TransportSlice};

const A: MacAddr = MacAddr([0x02, 0x42, 0xac, 0x11, 0x00, 0x02]);
const B: MacAddr = MacAddr([0x02, 0x42, 0xac, 0x11, 0x00, 0x03]);

fn payload(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 7 + i / 251) as u8).collect()
}

fn gso(gso_type: GsoType, gso_size: u16) -> VnetHdrRepr {
    VnetHdrRepr {
        flags: FLAG_NEEDS_CSUM,
        gso_type,
        ecn: false,
        hdr_len: 0,
        gso_size,
        csum_start: 0,
        csum_offset: 0,
    }
}

/// What etherparse makes of one output segment: checks every checksum and returns
/// (ip id or 0, tcp seq or 0, tcp flags byte or 0, transport payload).
fn check_segment(seg: &[u8]) -> (u16, u32, u8, Vec<u8>) {
    let p = SlicedPacket::from_ethernet(seg).expect("etherparse accepts the segment");
    let (ph, ident) = match p.net.as_ref().expect("ip") {
        NetSlice::Ipv4(ip) => {
            let h = ip.header();
            assert_eq!(
                usize::from(h.total_len()),
                ip.header().slice().len() + ip.payload().payload.len()
            );
            assert_eq!(
                h.to_header().calc_header_checksum(),
                h.header_checksum(),
                "ipv4 header checksum"
            );
            (
                PseudoHeader::V4 {
                    src: h.source_addr(),
                    dst: h.destination_addr(),
                },
                h.identification(),
            )
        }
        NetSlice::Ipv6(ip) => {
            let h = ip.header();
            assert_eq!(usize::from(h.payload_length()), ip.payload().payload.len());
            (
                PseudoHeader::V6 {
                    src: h.source_addr(),
                    dst: h.destination_addr(),
                },
                0,
            )
        }
        NetSlice::Arp(_) => panic!("arp"),
    };
    match (p.transport.expect("transport"), ph) {
        (TransportSlice::Tcp(t), ph) => {
            let want = match ph {
                PseudoHeader::V4 { src, dst } => t.calc_checksum_ipv4(src.octets(), dst.octets()),
                PseudoHeader::V6 { src, dst } => t.calc_checksum_ipv6(src.octets(), dst.octets()),
            }
            .expect("length fits");
            assert_eq!(want, t.checksum(), "tcp checksum (etherparse)");
            assert!(TcpPacket::new_checked(t.slice())
                .expect("tcp")
                .verify_checksum(&ph));
            let flags = t.header_slice()[13];
            (ident, t.sequence_number(), flags, t.payload().to_vec())
        }
        (TransportSlice::Udp(u), ph) => {
            let h = u.to_header();
            let want = match ph {
                PseudoHeader::V4 { src, dst } => {
                    h.calc_checksum_ipv4_raw(src.octets(), dst.octets(), u.payload())
                }
                PseudoHeader::V6 { src, dst } => {
                    h.calc_checksum_ipv6_raw(src.octets(), dst.octets(), u.payload())
                }
            }
            .expect("length fits");
            assert_eq!(want, u.checksum(), "udp checksum (etherparse)");
            assert_eq!(usize::from(u.length()), 8 + u.payload().len());
            assert!(UdpPacket::new_checked(u.slice())
                .expect("udp")
                .verify_checksum(&ph));
            (ident, 0, 0, u.payload().to_vec())
        }
        _ => panic!("unexpected transport"),
    }
}

fn run(frame: &[u8], hdr: &VnetHdrRepr) -> Vec<Vec<u8>> {
    let mut scratch = vec![0u8; 65_536];
    let mut out = Vec::new();
    let n = resolve_offloads(&mut frame.to_vec(), hdr, &mut scratch, |s| {
        out.push(s.to_vec())
    })
    .expect("segmentation");
    assert_eq!(n, out.len());
    out
}

#[test]
fn header_roundtrip() {
    let r = VnetHdrRepr {
        flags: FLAG_NEEDS_CSUM,
        gso_type: GsoType::TcpV4,
        ecn: true,
        hdr_len: 54,
        gso_size: 1460,
        csum_start: 34,
        csum_offset: 16,
    };
    let mut b = [0u8; HEADER_LEN];
    assert_eq!(r.emit(&mut b), Ok(HEADER_LEN));
    assert_eq!(b, [1, 0x81, 54, 0, 0xb4, 0x05, 34, 0, 16, 0]);
    let h = VnetHdr::new_checked(&b[..]).expect("valid");
    assert_eq!(VnetHdrRepr::parse(&h), Ok(r));
    assert!(r.needs_software() && !VnetHdrRepr::NONE.needs_software());
}

#[test]
fn header_errors() {
    assert!(VnetHdr::new_checked(&[0u8; 9][..]).is_err());
    let mut b = [0u8; HEADER_LEN];
    b[1] = GSO_UDP;
    assert!(matches!(
        VnetHdrRepr::parse(&VnetHdr::new_checked(&b[..]).expect("len")),
        Err(Error::Unsupported(_))
    ));
    b[1] = 9;
    assert!(VnetHdrRepr::parse(&VnetHdr::new_checked(&b[..]).expect("len")).is_err());
    b[1] = GSO_TCPV4; // gso_size 0
    assert!(VnetHdrRepr::parse(&VnetHdr::new_checked(&b[..]).expect("len")).is_err());
}

#[test]
fn complete_checksum_tcp_v4_and_udp_v6() {
    // TCP over IPv4: the field holds the folded pseudo-header sum, as the kernel leaves it.
    let ph = v4("172.17.0.2", "172.17.0.3");
    let seg = tcp_segment(&ph, (40000, 80), 1, tcp::FLAG_ACK, &[], &payload(333));
    let mut frame = ip_frame(A, B, None, ph, IpProtocol::TCP, &[], &seg);
    let good = frame.clone();
    let partial = checksum::fold(ph.sum(IpProtocol::TCP, seg.len() as u32));
    write_u16(&mut frame, 34 + 16, partial);
    let hdr = VnetHdrRepr {
        flags: FLAG_NEEDS_CSUM,
        csum_start: 34,
        csum_offset: 16,
        ..VnetHdrRepr::NONE
    };
    complete_checksum(&mut frame, &hdr).expect("complete");
    assert_eq!(frame, good);
    check_segment(&frame);

    // UDP over IPv6, tagged.
    let ph = v6("fd00::2", "fd00::3");
    let dg = udp_datagram(&ph, (5000, 53), &payload(101));
    let mut frame = ip_frame(
        A,
        B,
        Some(VlanTag { tci: 7 }),
        ph,
        IpProtocol::UDP,
        &[],
        &dg,
    );
    let start = 18 + 40;
    let partial = checksum::fold(ph.sum(IpProtocol::UDP, dg.len() as u32));
    write_u16(&mut frame, start + 6, partial);
    let hdr = VnetHdrRepr {
        flags: FLAG_NEEDS_CSUM,
        csum_start: start as u16,
        csum_offset: 6,
        ..VnetHdrRepr::NONE
    };
    let out = run(&frame, &hdr);
    assert_eq!(out.len(), 1);
    check_segment(&out[0]);

    // Without NEEDS_CSUM nothing changes; a field past the end is an error.
    let before = frame.clone();
    complete_checksum(&mut frame, &VnetHdrRepr::NONE).expect("noop");
    assert_eq!(frame, before);
    let bad = VnetHdrRepr {
        flags: FLAG_NEEDS_CSUM,
        csum_start: frame.len() as u16 - 1,
        csum_offset: 0,
        ..VnetHdrRepr::NONE
    };
    assert!(complete_checksum(&mut frame, &bad).is_err());
}

fn check_tcp_gso(ph: PseudoHeader, vlan: Option<VlanTag>, ip_opts: &[u8], len: usize, mss: u16) {
    let data = payload(len);
    let flags = tcp::FLAG_ACK | tcp::FLAG_PSH | tcp::FLAG_FIN | tcp::FLAG_CWR;
    let tcp_opts = [1, 1, 8, 10, 0, 0, 0, 1, 0, 0, 0, 2]; // NOP NOP timestamps
    let seq0 = 0xffff_f000; // wraps
    let seg = tcp_segment(&ph, (40000, 5201), seq0, flags, &tcp_opts, &data);
    let frame = ip_frame(A, B, vlan, ph, IpProtocol::TCP, ip_opts, &seg);
    let t = if matches!(ph, PseudoHeader::V4 { .. }) {
        GsoType::TcpV4
    } else {
        GsoType::TcpV6
    };
    let hdr = gso(t, mss);
    let seg0 = Segmenter::new(&frame, &hdr).expect("valid");
    let out = run(&frame, &hdr);
    let want = len.div_ceil(usize::from(mss)).max(1);
    assert_eq!(out.len(), want);
    assert_eq!(seg0.segment_count(), want);
    let mut joined = Vec::new();
    for (i, s) in out.iter().enumerate() {
        assert!(s.len() <= seg0.max_segment_len());
        if let Some(tag) = vlan {
            assert_eq!(
                &s[12..16],
                &[0x81, 0x00, (tag.tci >> 8) as u8, tag.tci as u8]
            );
        }
        let (ident, seq, f, p) = check_segment(s);
        if matches!(ph, PseudoHeader::V4 { .. }) {
            assert_eq!(ident, 0x1234u16.wrapping_add(i as u16));
        }
        assert_eq!(seq, seq0.wrapping_add(joined.len() as u32));
        let last = i + 1 == out.len();
        assert_eq!(
            f & (tcp::FLAG_FIN | tcp::FLAG_PSH) != 0,
            last,
            "FIN/PSH on last only"
        );
        assert_eq!(f & tcp::FLAG_CWR != 0, i == 0, "CWR on first only");
        assert!(f & tcp::FLAG_ACK != 0);
        assert!(p.len() <= usize::from(mss));
        joined.extend_from_slice(&p);
    }
    assert_eq!(joined, data);
}

#[test]
fn tso_v4_segments_are_valid() {
    check_tcp_gso(v4("172.17.0.2", "172.17.0.3"), None, &[], 7300, 1448);
    check_tcp_gso(v4("172.17.0.2", "172.17.0.3"), None, &[], 65_000, 1448);
    check_tcp_gso(
        v4("10.0.0.1", "10.0.0.2"),
        Some(VlanTag { tci: 0x0064 }),
        &[1, 1, 1, 0],
        3000,
        1000,
    );
    check_tcp_gso(v4("10.0.0.1", "10.0.0.2"), None, &[], 1000, 1448); // one segment
    check_tcp_gso(v4("10.0.0.1", "10.0.0.2"), None, &[], 0, 1448); // no payload
    check_tcp_gso(v4("10.0.0.1", "10.0.0.2"), None, &[], 2921, 1); // odd sizes
}

#[test]
fn tso_v6_segments_are_valid() {
    check_tcp_gso(v6("fd00::2", "fd00::3"), None, &[], 20_000, 1428);
    check_tcp_gso(
        v6("fd00::2", "fd00::3"),
        Some(VlanTag { tci: 5 }),
        &[],
        4097,
        512,
    );
}

#[test]
fn uso_segments_are_valid() {
    for (ph, len, mss) in [
        (v4("172.17.0.2", "172.17.0.3"), 4000, 1000),
        (v4("172.17.0.2", "172.17.0.3"), 4001, 1000),
        (v6("fd00::2", "fd00::3"), 9000, 1232),
    ] {
        let data = payload(len);
        let dg = udp_datagram(&ph, (5000, 6000), &data);
        let frame = ip_frame(A, B, None, ph, IpProtocol::UDP, &[], &dg);
        let out = run(&frame, &gso(GsoType::UdpL4, mss));
        assert_eq!(out.len(), len.div_ceil(usize::from(mss)));
        let mut joined = Vec::new();
        for s in &out {
            let (_, _, _, p) = check_segment(s);
            joined.extend_from_slice(&p);
        }
        assert_eq!(joined, data);
    }
}

#[test]
fn segmentation_errors() {
    let ph = v4("10.0.0.1", "10.0.0.2");
    let seg = tcp_segment(&ph, (1, 2), 0, tcp::FLAG_ACK, &[], &payload(3000));
    let frame = ip_frame(A, B, None, ph, IpProtocol::TCP, &[], &seg);
    let mut scratch = [0u8; 1000];
    // Scratch smaller than one segment: error before anything is emitted.
    let mut emitted = 0;
    let r = segment_tcp(&frame, &gso(GsoType::TcpV4, 1448), &mut scratch, |_| {
        emitted += 1
    });
    assert!(matches!(r, Err(Error::BufferTooSmall { .. })));
    assert_eq!(emitted, 0);
    let mut big = vec![0u8; 2000];
    assert!(segment_udp(&frame, &gso(GsoType::TcpV4, 1448), &mut big, |_| ()).is_err());
    assert!(segment_tcp(&frame, &gso(GsoType::TcpV6, 1448), &mut big, |_| ()).is_err());
    assert!(segment_tcp(&frame, &gso(GsoType::UdpL4, 1448), &mut big, |_| ()).is_err());
    assert!(Segmenter::new(&frame, &gso(GsoType::None, 1448)).is_err());
    assert!(Segmenter::new(&frame, &gso(GsoType::TcpV4, 0)).is_err());
    assert!(Segmenter::new(&frame[..frame.len() - 1], &gso(GsoType::TcpV4, 1448)).is_err());
    let mut frag = frame.clone();
    frag[14 + 6] |= 0x20; // MF
    assert!(Segmenter::new(&frag, &gso(GsoType::TcpV4, 1448)).is_err());
    // write_next with a short buffer consumes nothing.
    let mut s = Segmenter::new(&frame, &gso(GsoType::TcpV4, 1448)).expect("valid");
    assert!(s.write_next(&mut scratch).is_err());
    assert_eq!(s.write_next(&mut big), Ok(Some(14 + 20 + 20 + 1448)));
}
