//! Arbitrary bytes through the VXLAN decapsulation, the receive filter and the flow hash:
//! nothing may panic, and re-encapsulating a decapsulated frame must give a datagram that
//! decapsulates to the same VNI and inner bytes.
#![no_main]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use encap::{
    decapsulate, encapsulate, flow_source_port, Filter, VxlanHeader, VxlanRepr, HEADER_LEN, VNI_MAX,
};
use libfuzzer_sys::fuzz_target;

/// Bytes at the start of the input that pick the source address and port range.
const CONTROL_LEN: usize = 5;

fuzz_target!(|data: &[u8]| {
    // The first bytes, when present, choose the source address and the port range; the whole
    // input is also used as a datagram so that short inputs reach every parser.
    let (src, range) = match data.get(..CONTROL_LEN) {
        Some(c) => {
            let src = if c[0] & 1 == 0 {
                IpAddr::V4(Ipv4Addr::new(10, 0, 0, c[0] >> 1))
            } else {
                IpAddr::V6(Ipv4Addr::new(10, 0, 0, c[0] >> 1).to_ipv6_mapped())
            };
            let range = (
                u16::from_be_bytes([c[1], c[2]]),
                u16::from_be_bytes([c[3], c[4]]),
            );
            (src, range)
        }
        None => (
            IpAddr::V6(Ipv6Addr::LOCALHOST),
            encap::DEFAULT_SOURCE_PORT_RANGE,
        ),
    };

    for datagram in [data, data.get(CONTROL_LEN..).unwrap_or(&[])] {
        if let Ok(h) = VxlanHeader::new_checked(datagram) {
            let _ = (
                h.flags(),
                h.vni_valid(),
                h.reserved0(),
                h.vni(),
                h.reserved1(),
            );
            let _ = (h.payload().len(), VxlanRepr::parse(&h));
        }

        let mut filter = Filter::new();
        for last in (0u8..8).step_by(2) {
            filter.add_vtep(IpAddr::V4(Ipv4Addr::new(10, 0, 0, last)));
        }
        filter.add_vni(datagram.get(6).copied().map_or(0, u32::from));
        let verdict = filter.check(src, datagram);
        assert_eq!(filter.counters.accepted + filter.counters.dropped(), 1);

        let (lo, hi) = (range.0.min(range.1), range.0.max(range.1));
        let port = flow_source_port(datagram, range);
        assert!(lo <= port && port <= hi);

        match decapsulate(datagram) {
            Ok((repr, inner)) => {
                assert!(repr.vni <= VNI_MAX);
                assert_eq!(inner.len() + HEADER_LEN, datagram.len());
                if let Ok((vni, r)) = verdict {
                    assert_eq!(vni, repr.vni);
                    assert_eq!(&datagram[r], inner);
                }
                let port = flow_source_port(inner, encap::DEFAULT_SOURCE_PORT_RANGE);
                assert!(port >= encap::DEFAULT_SOURCE_PORT_RANGE.0);

                let mut out = vec![0u8; datagram.len()];
                let n = encapsulate(repr.vni, inner, &mut out).expect("re-encapsulate");
                assert_eq!(n, datagram.len());
                assert_eq!(&out[..4], &[0x08, 0, 0, 0]);
                assert_eq!(out[7], 0);
                let (repr2, inner2) = decapsulate(&out[..n]).expect("decapsulate again");
                assert_eq!(repr2, repr);
                assert_eq!(inner2, inner);
            }
            Err(_) => assert!(verdict.is_err()),
        }
    }
});
