//! UDP headers (RFC 768).

use super::checksum::{self, PseudoHeader};
use super::ipv4::IpProtocol;
use super::{check_len, read_u16, write_u16, Error, Result};

/// Length of the header.
pub const HEADER_LEN: usize = 8;

const SRC_PORT: usize = 0;
const DST_PORT: usize = 2;
const LENGTH: usize = 4;
const CHECKSUM: usize = 6;

/// A zero-copy view of a UDP datagram.
#[derive(Debug, Clone)]
pub struct UdpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> UdpPacket<T> {
    /// Wraps `buffer` without checks; for rewriting headers whose length fields are about to
    /// be fixed (GSO segmentation). Accessors index fixed offsets, so the caller guarantees
    /// the buffer holds the fixed header.
    pub(crate) fn new_unchecked(buffer: T) -> Self {
        UdpPacket { buffer }
    }

    /// Wraps `buffer` (the IP payload) after checking the header and that the length field is
    /// at least 8 and fits in the buffer.
    pub fn new_checked(buffer: T) -> Result<Self> {
        let b = buffer.as_ref();
        check_len(b, HEADER_LEN)?;
        let len = usize::from(read_u16(b, LENGTH));
        if len < HEADER_LEN {
            return Err(Error::Malformed("udp length"));
        }
        check_len(b, len)?;
        Ok(UdpPacket { buffer })
    }

    /// The wrapped buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }
    /// Source port.
    pub fn src_port(&self) -> u16 {
        read_u16(self.buffer.as_ref(), SRC_PORT)
    }
    /// Destination port.
    pub fn dst_port(&self) -> u16 {
        read_u16(self.buffer.as_ref(), DST_PORT)
    }
    /// Length field (header + payload).
    pub fn len(&self) -> u16 {
        read_u16(self.buffer.as_ref(), LENGTH)
    }
    /// Always `false` on a checked packet (the length counts the header).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Checksum field (0: none, IPv4 only).
    pub fn checksum(&self) -> u16 {
        read_u16(self.buffer.as_ref(), CHECKSUM)
    }
    /// The payload, as long as the length field says.
    pub fn payload(&self) -> &[u8] {
        let b = self.buffer.as_ref();
        let end = usize::from(self.len()).min(b.len());
        &b[HEADER_LEN.min(end)..end]
    }
    /// `true` when the checksum is correct, or absent (zero) over IPv4.
    pub fn verify_checksum(&self, ph: &PseudoHeader) -> bool {
        if self.checksum() == 0 {
            return matches!(ph, PseudoHeader::V4 { .. });
        }
        let b = self.buffer.as_ref();
        let end = usize::from(self.len()).min(b.len());
        let acc = ph.sum(IpProtocol::UDP, end as u32);
        checksum::verify(checksum::accumulate(acc, &b[..end]))
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> UdpPacket<T> {
    /// Sets the source port.
    pub fn set_src_port(&mut self, v: u16) {
        write_u16(self.buffer.as_mut(), SRC_PORT, v);
    }
    /// Sets the destination port.
    pub fn set_dst_port(&mut self, v: u16) {
        write_u16(self.buffer.as_mut(), DST_PORT, v);
    }
    /// Sets the length field. The caller keeps it within the buffer; the accessors clamp.
    pub fn set_len(&mut self, v: u16) {
        write_u16(self.buffer.as_mut(), LENGTH, v);
    }
    /// Sets the checksum field.
    pub fn set_checksum(&mut self, v: u16) {
        write_u16(self.buffer.as_mut(), CHECKSUM, v);
    }
    /// Computes and stores the checksum (a computed 0 is sent as `0xffff`).
    pub fn fill_checksum(&mut self, ph: &PseudoHeader) {
        self.set_checksum(0);
        let b = self.buffer.as_ref();
        let end = usize::from(self.len()).min(b.len());
        let acc = checksum::accumulate(ph.sum(IpProtocol::UDP, end as u32), &b[..end]);
        self.set_checksum(checksum::nonzero(!checksum::fold(acc)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    #[test]
    fn checksum_roundtrip() {
        let mut b = [0u8; 12];
        let mut p = UdpPacket::new_checked(&mut b[..]).err();
        assert!(matches!(p.take(), Some(Error::Malformed(_))));
        write_u16(&mut b, LENGTH, 12);
        b[8..].copy_from_slice(b"ping");
        let ph = PseudoHeader::V4 {
            src: Ipv4Addr::new(10, 0, 0, 1),
            dst: Ipv4Addr::new(10, 0, 0, 2),
        };
        let mut u = UdpPacket::new_checked(&mut b[..]).expect("valid");
        u.set_src_port(5353);
        u.set_dst_port(53);
        assert!(u.verify_checksum(&ph)); // zero = none over IPv4
        u.fill_checksum(&ph);
        assert!(u.verify_checksum(&ph));
        assert_eq!(u.payload(), b"ping");
        assert_eq!((u.src_port(), u.dst_port()), (5353, 53));
        u.set_dst_port(54);
        assert!(!u.verify_checksum(&ph));
        assert!(UdpPacket::new_checked(&b[..11]).is_err());
    }
}
