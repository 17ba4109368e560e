//! IPv6 fixed headers (RFC 8200). Extension headers are not walked: [`Ipv6Packet::next_header`]
//! is the value of the fixed header.

use std::net::Ipv6Addr;

use super::checksum;
use super::ipv4::IpProtocol;
use super::{
    check_len, check_out, read_ipv6, read_u16, read_u32, write_u16, write_u32, Error, Result,
};

/// Length of the fixed header.
pub const HEADER_LEN: usize = 40;
/// The version field of IPv6.
pub const VERSION: u8 = 6;
/// Hop limit used by [`Ipv6Repr::emit`] when the caller has no better value.
pub const DEFAULT_HOP_LIMIT: u8 = 64;

const VER_TC_FLOW: usize = 0;
const PAYLOAD_LEN: usize = 4;
const NEXT_HEADER: usize = 6;
const HOP_LIMIT: usize = 7;
const SRC: usize = 8;
const DST: usize = 24;

/// A zero-copy view of an IPv6 packet.
#[derive(Debug, Clone)]
pub struct Ipv6Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Ipv6Packet<T> {
    /// Wraps `buffer` without checks; for rewriting headers whose length fields are about to
    /// be fixed (GSO segmentation). Accessors index fixed offsets, so the caller guarantees
    /// the buffer holds the fixed header.
    pub(crate) fn new_unchecked(buffer: T) -> Self {
        Ipv6Packet { buffer }
    }

    /// Wraps `buffer` after checking the version and that the payload length fits in it
    /// (trailing padding allowed). Jumbograms (payload length 0 with a hop-by-hop jumbo
    /// option) are not recognised: their payload reads as empty.
    pub fn new_checked(buffer: T) -> Result<Self> {
        let b = buffer.as_ref();
        check_len(b, HEADER_LEN)?;
        if b[VER_TC_FLOW] >> 4 != VERSION {
            return Err(Error::Malformed("ipv6 version"));
        }
        check_len(b, HEADER_LEN + usize::from(read_u16(b, PAYLOAD_LEN)))?;
        Ok(Ipv6Packet { buffer })
    }

    /// The wrapped buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// Version (always 6 on a checked packet).
    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[VER_TC_FLOW] >> 4
    }
    /// Traffic class.
    pub fn traffic_class(&self) -> u8 {
        ((read_u32(self.buffer.as_ref(), VER_TC_FLOW) >> 20) & 0xff) as u8
    }
    /// Flow label (20 bits).
    pub fn flow_label(&self) -> u32 {
        read_u32(self.buffer.as_ref(), VER_TC_FLOW) & 0x000f_ffff
    }
    /// Payload length.
    pub fn payload_len(&self) -> u16 {
        read_u16(self.buffer.as_ref(), PAYLOAD_LEN)
    }
    /// Next header of the fixed header.
    pub fn next_header(&self) -> IpProtocol {
        IpProtocol(self.buffer.as_ref()[NEXT_HEADER])
    }
    /// Hop limit.
    pub fn hop_limit(&self) -> u8 {
        self.buffer.as_ref()[HOP_LIMIT]
    }
    /// Source address.
    pub fn src_addr(&self) -> Ipv6Addr {
        read_ipv6(self.buffer.as_ref(), SRC)
    }
    /// Destination address.
    pub fn dst_addr(&self) -> Ipv6Addr {
        read_ipv6(self.buffer.as_ref(), DST)
    }
    /// The payload (padding excluded).
    pub fn payload(&self) -> &[u8] {
        let b = self.buffer.as_ref();
        let end = (HEADER_LEN + usize::from(self.payload_len())).min(b.len());
        &b[HEADER_LEN.min(end)..end]
    }
    /// A pseudo-header for the transport checksum.
    pub fn pseudo_header(&self) -> checksum::PseudoHeader {
        checksum::PseudoHeader::V6 {
            src: self.src_addr(),
            dst: self.dst_addr(),
        }
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Ipv6Packet<T> {
    /// Sets the payload length. The caller keeps it within the buffer; the accessors clamp.
    pub fn set_payload_len(&mut self, v: u16) {
        write_u16(self.buffer.as_mut(), PAYLOAD_LEN, v);
    }
    /// Sets the next header.
    pub fn set_next_header(&mut self, p: IpProtocol) {
        self.buffer.as_mut()[NEXT_HEADER] = p.0;
    }
    /// Sets the hop limit.
    pub fn set_hop_limit(&mut self, v: u8) {
        self.buffer.as_mut()[HOP_LIMIT] = v;
    }
    /// Sets the source address.
    pub fn set_src_addr(&mut self, a: Ipv6Addr) {
        self.buffer.as_mut()[SRC..SRC + 16].copy_from_slice(&a.octets());
    }
    /// Sets the destination address.
    pub fn set_dst_addr(&mut self, a: Ipv6Addr) {
        self.buffer.as_mut()[DST..DST + 16].copy_from_slice(&a.octets());
    }
    /// The payload, mutable.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let len = self.buffer.as_ref().len();
        let end = (HEADER_LEN + usize::from(self.payload_len())).min(len);
        &mut self.buffer.as_mut()[HEADER_LEN.min(end)..end]
    }
}

/// A parsed IPv6 fixed header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv6Repr {
    /// Source address.
    pub src: Ipv6Addr,
    /// Destination address.
    pub dst: Ipv6Addr,
    /// Next header.
    pub next_header: IpProtocol,
    /// Payload length.
    pub payload_len: usize,
    /// Hop limit.
    pub hop_limit: u8,
}

impl Ipv6Repr {
    /// Reads a checked packet.
    pub fn parse<T: AsRef<[u8]>>(p: &Ipv6Packet<T>) -> Ipv6Repr {
        Ipv6Repr {
            src: p.src_addr(),
            dst: p.dst_addr(),
            next_header: p.next_header(),
            payload_len: usize::from(p.payload_len()),
            hop_limit: p.hop_limit(),
        }
    }

    /// Writes the 40-byte fixed header at the start of `buf`.
    pub fn emit(&self, buf: &mut [u8]) -> Result<usize> {
        check_out(buf, HEADER_LEN)?;
        let len =
            u16::try_from(self.payload_len).map_err(|_| Error::Malformed("ipv6 payload length"))?;
        write_u32(buf, VER_TC_FLOW, u32::from(VERSION) << 28);
        write_u16(buf, PAYLOAD_LEN, len);
        buf[NEXT_HEADER] = self.next_header.0;
        buf[HOP_LIMIT] = self.hop_limit;
        buf[SRC..SRC + 16].copy_from_slice(&self.src.octets());
        buf[DST..DST + 16].copy_from_slice(&self.dst.octets());
        Ok(HEADER_LEN)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip() {
        let r = Ipv6Repr {
            src: "fd00::2".parse().expect("addr"),
            dst: "fd00::3".parse().expect("addr"),
            next_header: IpProtocol::TCP,
            payload_len: 4,
            hop_limit: DEFAULT_HOP_LIMIT,
        };
        let mut b = [0u8; 46];
        assert_eq!(r.emit(&mut b), Ok(HEADER_LEN));
        let p = Ipv6Packet::new_checked(&b[..]).expect("valid");
        assert_eq!(Ipv6Repr::parse(&p), r);
        assert_eq!(p.payload().len(), 4);
        assert_eq!((p.traffic_class(), p.flow_label()), (0, 0));
    }

    #[test]
    fn rejects() {
        let mut b = [0u8; 40];
        b[0] = 0x60;
        assert!(Ipv6Packet::new_checked(&b[..]).is_ok());
        assert!(Ipv6Packet::new_checked(&b[..39]).is_err());
        b[5] = 1; // payload length 1 beyond the buffer
        assert!(Ipv6Packet::new_checked(&b[..]).is_err());
        b[5] = 0;
        b[0] = 0x40;
        assert_eq!(
            Ipv6Packet::new_checked(&b[..]).err(),
            Some(Error::Malformed("ipv6 version"))
        );
    }
}
