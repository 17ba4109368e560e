//! IPv4 headers (RFC 791). Options are tolerated (skipped via IHL), never interpreted.

use std::fmt;
use std::net::Ipv4Addr;

use super::checksum;
use super::{check_len, check_out, read_ipv4, read_u16, write_u16, Error, Result};

/// Length of a header without options.
pub const MIN_HEADER_LEN: usize = 20;
/// Longest header (IHL 15).
pub const MAX_HEADER_LEN: usize = 60;
/// The version field of IPv4.
pub const VERSION: u8 = 4;
/// Don't-fragment flag (in the flags/fragment-offset word).
pub const FLAG_DF: u16 = 0x4000;
/// More-fragments flag.
pub const FLAG_MF: u16 = 0x2000;
/// Mask of the fragment offset.
pub const FRAG_OFFSET_MASK: u16 = 0x1fff;
/// TTL used by [`Ipv4Repr::emit`] when the caller has no better value.
pub const DEFAULT_TTL: u8 = 64;

const VER_IHL: usize = 0;
const DSCP_ECN: usize = 1;
const TOTAL_LEN: usize = 2;
const IDENT: usize = 4;
const FLAGS_FRAG: usize = 6;
const TTL: usize = 8;
const PROTOCOL: usize = 9;
const CHECKSUM: usize = 10;
const SRC: usize = 12;
const DST: usize = 16;

/// An IP protocol number (IPv4 protocol / IPv6 next header).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct IpProtocol(pub u8);

impl IpProtocol {
    /// ICMP.
    pub const ICMP: IpProtocol = IpProtocol(1);
    /// TCP.
    pub const TCP: IpProtocol = IpProtocol(6);
    /// UDP.
    pub const UDP: IpProtocol = IpProtocol(17);
    /// ICMPv6.
    pub const ICMPV6: IpProtocol = IpProtocol(58);
}

impl fmt::Debug for IpProtocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "IpProtocol({})", self.0)
    }
}

/// A zero-copy view of an IPv4 packet.
#[derive(Debug, Clone)]
pub struct Ipv4Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Ipv4Packet<T> {
    /// Wraps `buffer` without checks; for rewriting headers whose length fields are about to
    /// be fixed (GSO segmentation). Accessors index fixed offsets, so the caller guarantees
    /// the buffer holds the fixed header.
    pub(crate) fn new_unchecked(buffer: T) -> Self {
        Ipv4Packet { buffer }
    }

    /// Wraps `buffer` after checking the version, the header length (20..=60, within the
    /// buffer) and the total length (at least the header, at most the buffer: trailing
    /// link-layer padding is allowed and ignored by [`Ipv4Packet::payload`]).
    pub fn new_checked(buffer: T) -> Result<Self> {
        let b = buffer.as_ref();
        check_len(b, MIN_HEADER_LEN)?;
        if b[VER_IHL] >> 4 != VERSION {
            return Err(Error::Malformed("ipv4 version"));
        }
        let hl = usize::from(b[VER_IHL] & 0x0f) * 4;
        if hl < MIN_HEADER_LEN {
            return Err(Error::Malformed("ipv4 header length"));
        }
        check_len(b, hl)?;
        let tl = usize::from(read_u16(b, TOTAL_LEN));
        if tl < hl {
            return Err(Error::Malformed("ipv4 total length"));
        }
        check_len(b, tl)?;
        Ok(Ipv4Packet { buffer })
    }

    /// The wrapped buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// Version (always 4 on a checked packet).
    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[VER_IHL] >> 4
    }
    /// Header length in bytes (IHL × 4).
    pub fn header_len(&self) -> usize {
        usize::from(self.buffer.as_ref()[VER_IHL] & 0x0f) * 4
    }
    /// DSCP and ECN byte.
    pub fn dscp_ecn(&self) -> u8 {
        self.buffer.as_ref()[DSCP_ECN]
    }
    /// Total length (header + payload).
    pub fn total_len(&self) -> u16 {
        read_u16(self.buffer.as_ref(), TOTAL_LEN)
    }
    /// Identification.
    pub fn ident(&self) -> u16 {
        read_u16(self.buffer.as_ref(), IDENT)
    }
    /// Don't-fragment flag.
    pub fn dont_frag(&self) -> bool {
        read_u16(self.buffer.as_ref(), FLAGS_FRAG) & FLAG_DF != 0
    }
    /// More-fragments flag.
    pub fn more_frags(&self) -> bool {
        read_u16(self.buffer.as_ref(), FLAGS_FRAG) & FLAG_MF != 0
    }
    /// Fragment offset in bytes.
    pub fn frag_offset(&self) -> u16 {
        (read_u16(self.buffer.as_ref(), FLAGS_FRAG) & FRAG_OFFSET_MASK) * 8
    }
    /// A fragment (MF set or a non-zero offset).
    pub fn is_fragment(&self) -> bool {
        self.more_frags() || self.frag_offset() != 0
    }
    /// Time to live.
    pub fn ttl(&self) -> u8 {
        self.buffer.as_ref()[TTL]
    }
    /// Protocol of the payload.
    pub fn protocol(&self) -> IpProtocol {
        IpProtocol(self.buffer.as_ref()[PROTOCOL])
    }
    /// Header checksum field.
    pub fn checksum(&self) -> u16 {
        read_u16(self.buffer.as_ref(), CHECKSUM)
    }
    /// Source address.
    pub fn src_addr(&self) -> Ipv4Addr {
        read_ipv4(self.buffer.as_ref(), SRC)
    }
    /// Destination address.
    pub fn dst_addr(&self) -> Ipv4Addr {
        read_ipv4(self.buffer.as_ref(), DST)
    }
    /// Options (the header past the fixed 20 bytes).
    pub fn options(&self) -> &[u8] {
        let b = self.buffer.as_ref();
        let hl = self.header_len().clamp(MIN_HEADER_LEN, b.len());
        &b[MIN_HEADER_LEN..hl]
    }
    /// `true` when the header checksum is correct.
    pub fn verify_checksum(&self) -> bool {
        let b = self.buffer.as_ref();
        let hl = self.header_len().min(b.len());
        checksum::verify(checksum::accumulate(0, &b[..hl]))
    }
    /// The payload: from the end of the header to the total length (padding excluded).
    pub fn payload(&self) -> &[u8] {
        let b = self.buffer.as_ref();
        let end = usize::from(self.total_len()).min(b.len());
        let start = self.header_len().min(end);
        &b[start..end]
    }
    /// A pseudo-header for the transport checksum.
    pub fn pseudo_header(&self) -> checksum::PseudoHeader {
        checksum::PseudoHeader::V4 {
            src: self.src_addr(),
            dst: self.dst_addr(),
        }
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Ipv4Packet<T> {
    /// Sets the total length. The caller keeps it within the buffer; the accessors clamp.
    pub fn set_total_len(&mut self, v: u16) {
        write_u16(self.buffer.as_mut(), TOTAL_LEN, v);
    }
    /// Sets the identification.
    pub fn set_ident(&mut self, v: u16) {
        write_u16(self.buffer.as_mut(), IDENT, v);
    }
    /// Sets the TTL.
    pub fn set_ttl(&mut self, v: u8) {
        self.buffer.as_mut()[TTL] = v;
    }
    /// Sets the checksum field.
    pub fn set_checksum(&mut self, v: u16) {
        write_u16(self.buffer.as_mut(), CHECKSUM, v);
    }
    /// Sets the source address.
    pub fn set_src_addr(&mut self, a: Ipv4Addr) {
        self.buffer.as_mut()[SRC..SRC + 4].copy_from_slice(&a.octets());
    }
    /// Sets the destination address.
    pub fn set_dst_addr(&mut self, a: Ipv4Addr) {
        self.buffer.as_mut()[DST..DST + 4].copy_from_slice(&a.octets());
    }
    /// Computes and stores the header checksum.
    pub fn fill_checksum(&mut self) {
        self.set_checksum(0);
        let b = self.buffer.as_ref();
        let hl = self.header_len().min(b.len());
        let c = checksum::checksum(&b[..hl]);
        self.set_checksum(c);
    }
    /// The payload, mutable.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let len = self.buffer.as_ref().len();
        let end = usize::from(self.total_len()).min(len);
        let start = self.header_len().min(end);
        &mut self.buffer.as_mut()[start..end]
    }
}

/// A parsed IPv4 header (options dropped).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv4Repr {
    /// Source address.
    pub src: Ipv4Addr,
    /// Destination address.
    pub dst: Ipv4Addr,
    /// Payload protocol.
    pub protocol: IpProtocol,
    /// Payload length.
    pub payload_len: usize,
    /// Time to live.
    pub ttl: u8,
}

impl Ipv4Repr {
    /// Reads a checked packet; rejects a wrong header checksum.
    pub fn parse<T: AsRef<[u8]>>(p: &Ipv4Packet<T>) -> Result<Ipv4Repr> {
        if !p.verify_checksum() {
            return Err(Error::Malformed("ipv4 checksum"));
        }
        Ok(Ipv4Repr {
            src: p.src_addr(),
            dst: p.dst_addr(),
            protocol: p.protocol(),
            payload_len: p.payload().len(),
            ttl: p.ttl(),
        })
    }

    /// Writes a 20-byte header (DF set, id 0, checksum filled) at the start of `buf`.
    pub fn emit(&self, buf: &mut [u8]) -> Result<usize> {
        check_out(buf, MIN_HEADER_LEN)?;
        let total = u16::try_from(MIN_HEADER_LEN + self.payload_len)
            .map_err(|_| Error::Malformed("ipv4 payload length"))?;
        let b = &mut buf[..MIN_HEADER_LEN];
        b[VER_IHL] = (VERSION << 4) | (MIN_HEADER_LEN / 4) as u8;
        b[DSCP_ECN] = 0;
        write_u16(b, TOTAL_LEN, total);
        write_u16(b, IDENT, 0);
        write_u16(b, FLAGS_FRAG, FLAG_DF);
        b[TTL] = self.ttl;
        b[PROTOCOL] = self.protocol.0;
        write_u16(b, CHECKSUM, 0);
        b[SRC..SRC + 4].copy_from_slice(&self.src.octets());
        b[DST..DST + 4].copy_from_slice(&self.dst.octets());
        let c = checksum::checksum(b);
        write_u16(b, CHECKSUM, c);
        Ok(MIN_HEADER_LEN)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> [u8; 28] {
        let mut b = [0u8; 28];
        let r = Ipv4Repr {
            src: Ipv4Addr::new(172, 18, 0, 2),
            dst: Ipv4Addr::new(8, 8, 8, 8),
            protocol: IpProtocol::UDP,
            payload_len: 8,
            ttl: DEFAULT_TTL,
        };
        assert_eq!(r.emit(&mut b), Ok(20));
        b
    }

    #[test]
    fn roundtrip_and_checksum() {
        let b = sample();
        let p = Ipv4Packet::new_checked(&b[..]).expect("valid");
        assert!(p.verify_checksum());
        assert_eq!(p.version(), 4);
        assert_eq!(p.total_len(), 28);
        assert!(p.dont_frag() && !p.is_fragment());
        let r = Ipv4Repr::parse(&p).expect("valid");
        assert_eq!(r.protocol, IpProtocol::UDP);
        assert_eq!(r.payload_len, 8);
        let mut c = b;
        let mut m = Ipv4Packet::new_checked(&mut c[..]).expect("valid");
        m.set_ttl(1);
        assert!(!m.verify_checksum());
        m.fill_checksum();
        assert!(m.verify_checksum());
    }

    #[test]
    fn options_and_padding_tolerated() {
        let mut b = vec![0u8; 24 + 4 + 6];
        b[0] = 0x46; // IHL 6: 4 bytes of options
        write_u16(&mut b, TOTAL_LEN, 28);
        b[20..24].copy_from_slice(&[1, 1, 1, 0]); // NOP NOP NOP EOL
        let mut p = Ipv4Packet::new_checked(&mut b[..]).expect("valid");
        p.fill_checksum();
        assert_eq!(p.options(), &[1, 1, 1, 0]);
        assert_eq!(p.payload().len(), 4);
        assert!(p.verify_checksum());
    }

    #[test]
    fn malformed_rejected() {
        let b = sample();
        let mut bad = b;
        bad[0] = 0x65;
        assert_eq!(
            Ipv4Packet::new_checked(&bad[..]).err(),
            Some(Error::Malformed("ipv4 version"))
        );
        bad[0] = 0x44;
        assert!(Ipv4Packet::new_checked(&bad[..]).is_err());
        bad[0] = 0x4f; // 60-byte header in 28 bytes
        assert!(Ipv4Packet::new_checked(&bad[..]).is_err());
        assert!(Ipv4Packet::new_checked(&b[..27]).is_err()); // total length beyond buffer
        let mut short_total = b;
        write_u16(&mut short_total, TOTAL_LEN, 19);
        assert!(Ipv4Packet::new_checked(&short_total[..]).is_err());
    }
}
