//! Address arithmetic on `u128` so IPv4 and IPv6 share one code path. IPv4 values stay
//! below 2^32; every helper is total (no panics, no overflow).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;

use crate::{IPV4_BITS, IPV4_POINT_TO_POINT_PREFIX, IPV6_BITS};

pub(crate) fn to_u128(a: IpAddr) -> u128 {
    match a {
        IpAddr::V4(a) => u128::from(u32::from(a)),
        IpAddr::V6(a) => u128::from(a),
    }
}

/// `None` only if an IPv4 value does not fit 32 bits (a caller bug, reported, not panicked).
pub(crate) fn from_u128(v: u128, v6: bool) -> Option<IpAddr> {
    if v6 {
        Some(IpAddr::V6(Ipv6Addr::from(v)))
    } else {
        u32::try_from(v).ok().map(|v| IpAddr::V4(Ipv4Addr::from(v)))
    }
}

pub(crate) fn max_bits(v6: bool) -> u8 {
    if v6 {
        IPV6_BITS
    } else {
        IPV4_BITS
    }
}

/// The host-part mask of a `prefix`-long prefix: the low `max - prefix` bits set.
pub(crate) fn host_mask(v6: bool, prefix: u8) -> u128 {
    let host_bits = u32::from(max_bits(v6).saturating_sub(prefix));
    // checked_shl is None for a shift of 128 (a /0 in IPv6): all bits are host bits then.
    1u128
        .checked_shl(host_bits)
        .map_or(u128::MAX, |b| b.wrapping_sub(1))
}

/// First and last address of a prefix (host bits of the stored address ignored).
pub(crate) fn bounds(n: &IpNet) -> (u128, u128) {
    let v6 = matches!(n, IpNet::V6(_));
    let mask = host_mask(v6, n.prefix_len());
    let lo = to_u128(n.addr()) & !mask;
    (lo, lo | mask)
}

/// The prefix starting at `start` (already aligned) with length `prefix`.
pub(crate) fn make_net(start: u128, prefix: u8, v6: bool) -> Option<IpNet> {
    IpNet::new(from_u128(start, v6)?, prefix).ok()
}

pub(crate) fn is_v6(n: &IpNet) -> bool {
    matches!(n, IpNet::V6(_))
}

/// Whether the first address is kept out of allocation: always for IPv6 (subnet-router
/// anycast), for IPv4 unless the subnet is a /31 or /32 (RFC 3021).
pub(crate) fn network_reserved(subnet: &IpNet) -> bool {
    is_v6(subnet) || subnet.prefix_len() < IPV4_POINT_TO_POINT_PREFIX
}

/// Whether the last address is kept out of allocation: IPv4 broadcast, not on /31 and /32.
pub(crate) fn broadcast_reserved(subnet: &IpNet) -> bool {
    !is_v6(subnet) && subnet.prefix_len() < IPV4_POINT_TO_POINT_PREFIX
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_at_the_edges() {
        assert_eq!(host_mask(true, 0), u128::MAX);
        assert_eq!(host_mask(true, 128), 0);
        assert_eq!(host_mask(true, 64), u128::from(u64::MAX));
        assert_eq!(host_mask(false, 0), u128::from(u32::MAX));
        assert_eq!(host_mask(false, 24), 0xff);
        assert_eq!(host_mask(false, 32), 0);
    }

    #[test]
    fn bounds_ignore_host_bits() {
        let n: IpNet = "10.0.0.7/24".parse().unwrap();
        assert_eq!(bounds(&n), (0x0a00_0000, 0x0a00_00ff));
        let n: IpNet = "::/0".parse().unwrap();
        assert_eq!(bounds(&n), (0, u128::MAX));
    }

    #[test]
    fn v4_value_too_big_is_none() {
        assert_eq!(from_u128(1 << 32, false), None);
        assert!(from_u128(1 << 32, true).is_some());
    }
}
