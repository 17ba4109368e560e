//! The Internet checksum (RFC 1071) and the TCP/UDP/ICMPv6 pseudo-headers.
//!
//! Sums are accumulated in a `u64` 32 bits at a time and folded at the end, so one call can
//! cover a whole 64 KiB GSO frame. A slice handed to [`accumulate`] must start at an even
//! offset of the checksummed byte stream (every header this crate sums has an even length).

use std::net::{Ipv4Addr, Ipv6Addr};

use super::ipv4::IpProtocol;

/// Adds the 16-bit big-endian words of `data` to `acc` (an odd trailing byte is padded with
/// zero, as RFC 1071 says). The result is not folded.
pub fn accumulate(mut acc: u64, data: &[u8]) -> u64 {
    let mut chunks = data.chunks_exact(4);
    for c in &mut chunks {
        acc += u64::from(u32::from_be_bytes([c[0], c[1], c[2], c[3]]));
    }
    match *chunks.remainder() {
        [a] => acc += u64::from(a) << 8,
        [a, b] => acc += u64::from(u16::from_be_bytes([a, b])),
        [a, b, c] => acc += u64::from(u16::from_be_bytes([a, b])) + (u64::from(c) << 8),
        _ => {}
    }
    acc
}

/// Folds an accumulated sum into 16 bits with end-around carry.
pub fn fold(mut acc: u64) -> u16 {
    while acc >> 16 != 0 {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    acc as u16
}

/// The Internet checksum of `data` (the value to store in a checksum field that was zero).
pub fn checksum(data: &[u8]) -> u16 {
    !fold(accumulate(0, data))
}

/// `true` when `data`, checksum field included, sums to all ones (a valid checksum).
pub fn verify(acc: u64) -> bool {
    fold(acc) == 0xffff
}

/// Turns a computed checksum of zero into `0xffff` (the same value in one's complement).
/// UDP must do this because zero means "no checksum"; it is harmless for TCP and ICMP.
pub fn nonzero(c: u16) -> u16 {
    if c == 0 {
        0xffff
    } else {
        c
    }
}

/// The addresses that enter a transport checksum.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PseudoHeader {
    /// IPv4 source and destination.
    V4 {
        /// Source address.
        src: Ipv4Addr,
        /// Destination address.
        dst: Ipv4Addr,
    },
    /// IPv6 source and destination.
    V6 {
        /// Source address.
        src: Ipv6Addr,
        /// Destination address.
        dst: Ipv6Addr,
    },
}

impl PseudoHeader {
    /// The unfolded sum of the pseudo-header for `proto` and an upper-layer length `len`
    /// (RFC 793 for IPv4, RFC 8200 §8.1 for IPv6; both fold to the same value here).
    pub fn sum(&self, proto: IpProtocol, len: u32) -> u64 {
        let base = match self {
            PseudoHeader::V4 { src, dst } => {
                accumulate(accumulate(0, &src.octets()), &dst.octets())
            }
            PseudoHeader::V6 { src, dst } => {
                accumulate(accumulate(0, &src.octets()), &dst.octets())
            }
        };
        base + u64::from(proto.0) + u64::from(len >> 16) + u64::from(len & 0xffff)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc1071_example() {
        // RFC 1071 §3: 00 01 f2 03 f4 f5 f6 f7 sums to 0xddf2.
        let d = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(fold(accumulate(0, &d)), 0xddf2);
        assert_eq!(checksum(&d), !0xddf2);
    }

    #[test]
    fn odd_lengths_match_word_sum() {
        let d: Vec<u8> = (0..=255u8).cycle().take(1001).collect();
        for n in 0..d.len() {
            let mut acc = 0u64;
            for w in d[..n].chunks(2) {
                let hi = u64::from(w[0]) << 8;
                acc += hi + w.get(1).map_or(0, |b| u64::from(*b));
            }
            assert_eq!(fold(accumulate(0, &d[..n])), fold(acc), "len {n}");
        }
    }
}
