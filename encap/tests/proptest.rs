//! Property tests of the codec, the flow hash and the filter.

use std::net::{IpAddr, Ipv4Addr};

use encap::vxlan::ETHERNET_HEADER_LEN;
use encap::{
    decapsulate, encapsulate, flow_source_port, Filter, VxlanHeader, VxlanRepr, HEADER_LEN, VNI_MAX,
};
use proptest::prelude::*;

proptest! {
    #[test]
    fn decapsulate_inverts_encapsulate(
        vni in 0..=VNI_MAX,
        inner in proptest::collection::vec(any::<u8>(), ETHERNET_HEADER_LEN..2000),
    ) {
        let mut out = vec![0u8; HEADER_LEN + inner.len() + 7];
        let n = encapsulate(vni, &inner, &mut out).unwrap();
        prop_assert_eq!(n, HEADER_LEN + inner.len());
        prop_assert_eq!(&out[..4], &[0x08, 0, 0, 0][..]);
        prop_assert_eq!(out[7], 0);
        let (repr, got) = decapsulate(&out[..n]).unwrap();
        prop_assert_eq!(repr, VxlanRepr { vni });
        prop_assert_eq!(got, &inner[..]);
    }

    #[test]
    fn decapsulate_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        match decapsulate(&bytes) {
            Ok((repr, inner)) => {
                prop_assert!(repr.vni <= VNI_MAX);
                prop_assert!(bytes[0] & 0x08 != 0);
                prop_assert_eq!(inner, &bytes[HEADER_LEN..]);
                // Re-encapsulating gives the same VNI and inner frame.
                let mut out = vec![0u8; bytes.len()];
                let n = encapsulate(repr.vni, inner, &mut out).unwrap();
                let (r2, i2) = decapsulate(&out[..n]).unwrap();
                prop_assert_eq!((r2, i2), (repr, inner));
            }
            Err(_) => prop_assert!(
                bytes.len() < HEADER_LEN + ETHERNET_HEADER_LEN || bytes[0] & 0x08 == 0
            ),
        }
        if let Ok(h) = VxlanHeader::new_checked(&bytes[..]) {
            let _ = (h.flags(), h.reserved0(), h.vni(), h.reserved1(), h.payload());
        }
        let mut f = Filter::new();
        f.add_vtep(IpAddr::V4(Ipv4Addr::LOCALHOST));
        f.add_vni(1);
        let _ = f.check(IpAddr::V4(Ipv4Addr::LOCALHOST), &bytes);
        prop_assert_eq!(f.counters.accepted + f.counters.dropped(), 1);
    }

    #[test]
    fn flow_port_in_range_and_stable(
        frame in proptest::collection::vec(any::<u8>(), 0..120),
        a in any::<u16>(),
        b in any::<u16>(),
    ) {
        let (lo, hi) = (a.min(b), a.max(b));
        let p = flow_source_port(&frame, (a, b));
        prop_assert!(lo <= p && p <= hi);
        prop_assert_eq!(p, flow_source_port(&frame, (lo, hi)));
    }
}
