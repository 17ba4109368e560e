//! Every wire parser, the vnet-header checksum completion and GSO segmentation on arbitrary
//! bytes: nothing may panic, and whatever the segmenter writes must be valid frames.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vswitch::wire::checksum::PseudoHeader;
use vswitch::wire::vnet_hdr::{self, complete_checksum, resolve_offloads, GsoType, Segmenter};
use vswitch::wire::{
    ArpPacket, ArpRepr, EtherType, EthernetFrame, EthernetRepr, IcmpPacket, IpProtocol, Ipv4Packet,
    Ipv4Repr, Ipv6Packet, Ipv6Repr, MacAddr, TcpPacket, UdpPacket, VnetHdr, VnetHdrRepr,
};

/// Largest frame the scratch buffer must hold (a 64 KiB GSO frame plus headers).
const SCRATCH_LEN: usize = 70_000;

/// Parses `ip_payload` as the transport `proto` and exercises every accessor.
fn transport(proto: IpProtocol, ip_payload: &[u8], ph: &PseudoHeader) {
    match proto {
        IpProtocol::TCP => {
            if let Ok(t) = TcpPacket::new_checked(ip_payload) {
                let _ = (t.src_port(), t.dst_port(), t.seq_number(), t.ack_number());
                let _ = (t.flags(), t.window(), t.checksum(), t.urgent());
                let _ = (t.options().len(), t.payload().len(), t.verify_checksum(ph));
            }
        }
        IpProtocol::UDP => {
            if let Ok(u) = UdpPacket::new_checked(ip_payload) {
                let _ = (u.src_port(), u.dst_port(), u.len(), u.checksum());
                let _ = (u.payload().len(), u.verify_checksum(ph));
            }
        }
        IpProtocol::ICMP | IpProtocol::ICMPV6 => {
            if let Ok(i) = IcmpPacket::new_checked(ip_payload) {
                let _ = (i.msg_type(), i.code(), i.checksum(), i.echo_ident_seq());
                let _ = (
                    i.body().len(),
                    i.verify_checksum_v4(),
                    i.verify_checksum_v6(ph),
                );
            }
        }
        _ => {}
    }
}

/// Parses a frame as deeply as the views go; returns the Ethernet repr if it parsed.
fn parse_all(data: &[u8]) -> Option<EthernetRepr> {
    let eth = EthernetFrame::new_checked(data).ok()?;
    let repr = EthernetRepr::parse(&eth);
    // Emit round trip.
    let mut hdr = [0u8; 18];
    let n = repr
        .emit(&mut hdr)
        .expect("an 18-byte buffer holds any header");
    assert_eq!(&hdr[..n], &data[..n]);
    let _ = (
        eth.outer_ethertype(),
        eth.vlan().map(|t| (t.pcp(), t.dei(), t.vid())),
    );
    let payload = eth.payload();
    match eth.ethertype() {
        EtherType::ARP => {
            if let Ok(p) = ArpPacket::new_checked(payload) {
                let a = ArpRepr::parse(&p);
                let mut b = [0u8; 28];
                a.emit(&mut b).expect("28 bytes");
                assert_eq!(&b[..], &payload[..28]);
                let _ = a.reply(MacAddr::BROADCAST);
            }
        }
        EtherType::IPV4 => {
            if let Ok(ip) = Ipv4Packet::new_checked(payload) {
                let _ = (
                    ip.version(),
                    ip.dscp_ecn(),
                    ip.ident(),
                    ip.dont_frag(),
                    ip.ttl(),
                );
                let _ = (
                    ip.frag_offset(),
                    ip.is_fragment(),
                    ip.options().len(),
                    ip.checksum(),
                );
                if let Ok(r) = Ipv4Repr::parse(&ip) {
                    let mut b = [0u8; 20];
                    let _ = r.emit(&mut b);
                }
                transport(ip.protocol(), ip.payload(), &ip.pseudo_header());
            }
        }
        EtherType::IPV6 => {
            if let Ok(ip) = Ipv6Packet::new_checked(payload) {
                let _ = (ip.traffic_class(), ip.flow_label(), ip.hop_limit());
                let r = Ipv6Repr::parse(&ip);
                let mut b = [0u8; 40];
                r.emit(&mut b).expect("40 bytes");
                transport(ip.next_header(), ip.payload(), &ip.pseudo_header());
            }
        }
        _ => {}
    }
    Some(repr)
}

/// A segment written by the segmenter must be a complete, correct frame.
fn check_segment(seg: &[u8], gso: GsoType) -> usize {
    let eth = EthernetFrame::new_checked(seg).expect("segment: ethernet");
    match eth.ethertype() {
        EtherType::IPV4 => {
            let ip = Ipv4Packet::new_checked(eth.payload()).expect("segment: ipv4");
            assert!(ip.verify_checksum(), "segment: ipv4 header checksum");
            assert_eq!(eth.header_len() + usize::from(ip.total_len()), seg.len());
            check_l4(ip.protocol(), ip.payload(), &ip.pseudo_header(), gso)
        }
        EtherType::IPV6 => {
            let ip = Ipv6Packet::new_checked(eth.payload()).expect("segment: ipv6");
            assert_eq!(
                eth.header_len() + 40 + usize::from(ip.payload_len()),
                seg.len()
            );
            check_l4(ip.next_header(), ip.payload(), &ip.pseudo_header(), gso)
        }
        other => panic!("segment: ethertype {other:?}"),
    }
}

fn check_l4(proto: IpProtocol, l4: &[u8], ph: &PseudoHeader, gso: GsoType) -> usize {
    match gso {
        GsoType::TcpV4 | GsoType::TcpV6 => {
            assert_eq!(proto, IpProtocol::TCP);
            let t = TcpPacket::new_checked(l4).expect("segment: tcp");
            assert!(t.verify_checksum(ph), "segment: tcp checksum");
            t.payload().len()
        }
        GsoType::UdpL4 => {
            assert_eq!(proto, IpProtocol::UDP);
            let u = UdpPacket::new_checked(l4).expect("segment: udp");
            assert_eq!(usize::from(u.len()), l4.len());
            assert!(u.verify_checksum(ph), "segment: udp checksum");
            u.payload().len()
        }
        GsoType::None => unreachable!(),
    }
}

fuzz_target!(|data: &[u8]| {
    let _ = parse_all(data);
    if let Ok(s) = std::str::from_utf8(data) {
        let _ = s.parse::<MacAddr>();
    }

    // [vnet header (10 bytes)][frame]
    let Ok(h) = VnetHdr::new_checked(data) else {
        return;
    };
    let frame = &data[vnet_hdr::HEADER_LEN..];
    let _ = parse_all(frame);
    let Ok(hdr) = VnetHdrRepr::parse(&h) else {
        return;
    };
    let mut raw = [0u8; vnet_hdr::HEADER_LEN];
    hdr.emit(&mut raw).expect("10 bytes");
    assert_eq!(
        VnetHdrRepr::parse(&VnetHdr::new_checked(&raw[..]).expect("len")),
        Ok(hdr)
    );

    let mut copy = frame.to_vec();
    let _ = complete_checksum(&mut copy, &hdr);

    let mut scratch = vec![0u8; SCRATCH_LEN];
    // The same frame under every GSO type, so segmentation is reached often.
    for gso_type in [hdr.gso_type, GsoType::TcpV4, GsoType::TcpV6, GsoType::UdpL4] {
        let hdr = VnetHdrRepr {
            gso_type,
            gso_size: hdr.gso_size.max(1),
            ..hdr
        };
        if let Ok(mut seg) = Segmenter::new(frame, &hdr) {
            let max = seg.max_segment_len();
            let count = seg.segment_count();
            let mut n = 0;
            let mut payload = 0;
            while let Some(len) = seg
                .write_next(&mut scratch)
                .expect("scratch holds a segment")
            {
                assert!(len <= max);
                payload += check_segment(&scratch[..len], gso_type);
                n += 1;
            }
            assert_eq!(n, count);
            let _ = payload;
        }
        let mut copy = frame.to_vec();
        let _ = resolve_offloads(&mut copy, &hdr, &mut scratch[..1500], |_| ());
    }
});
