//! ICMP (RFC 792) and ICMPv6 (RFC 4443) messages: type, code, checksum, echo fields.
//!
//! Both share the first four bytes; ICMPv4's checksum covers the message only, ICMPv6's adds
//! the IPv6 pseudo-header.

use super::checksum::{self, PseudoHeader};
use super::ipv4::IpProtocol;
use super::{check_len, read_u16, write_u16, Result};

/// Length of the type/code/checksum header.
pub const HEADER_LEN: usize = 4;
/// Length of an echo request/reply header (with identifier and sequence number).
pub const ECHO_HEADER_LEN: usize = 8;
/// ICMPv4 echo reply.
pub const V4_ECHO_REPLY: u8 = 0;
/// ICMPv4 echo request.
pub const V4_ECHO_REQUEST: u8 = 8;
/// ICMPv6 echo request.
pub const V6_ECHO_REQUEST: u8 = 128;
/// ICMPv6 echo reply.
pub const V6_ECHO_REPLY: u8 = 129;
/// ICMPv6 neighbor solicitation.
pub const V6_NEIGHBOR_SOLICIT: u8 = 135;
/// ICMPv6 neighbor advertisement.
pub const V6_NEIGHBOR_ADVERT: u8 = 136;

const TYPE: usize = 0;
const CODE: usize = 1;
const CHECKSUM: usize = 2;
const IDENT: usize = 4;
const SEQ: usize = 6;

/// A zero-copy view of an ICMP or ICMPv6 message.
#[derive(Debug, Clone)]
pub struct IcmpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> IcmpPacket<T> {
    /// Wraps `buffer` (the whole IP payload) after checking the 4-byte header.
    pub fn new_checked(buffer: T) -> Result<Self> {
        check_len(buffer.as_ref(), HEADER_LEN)?;
        Ok(IcmpPacket { buffer })
    }
    /// The wrapped buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }
    /// Message type.
    pub fn msg_type(&self) -> u8 {
        self.buffer.as_ref()[TYPE]
    }
    /// Message code.
    pub fn code(&self) -> u8 {
        self.buffer.as_ref()[CODE]
    }
    /// Checksum field.
    pub fn checksum(&self) -> u16 {
        read_u16(self.buffer.as_ref(), CHECKSUM)
    }
    /// Echo identifier and sequence number, when the message is long enough to hold them.
    pub fn echo_ident_seq(&self) -> Option<(u16, u16)> {
        let b = self.buffer.as_ref();
        (b.len() >= ECHO_HEADER_LEN).then(|| (read_u16(b, IDENT), read_u16(b, SEQ)))
    }
    /// Everything after the 4-byte header.
    pub fn body(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..]
    }
    /// ICMPv4: `true` when the checksum over the message is correct.
    pub fn verify_checksum_v4(&self) -> bool {
        checksum::verify(checksum::accumulate(0, self.buffer.as_ref()))
    }
    /// ICMPv6: `true` when the checksum (with the IPv6 pseudo-header) is correct.
    pub fn verify_checksum_v6(&self, ph: &PseudoHeader) -> bool {
        let b = self.buffer.as_ref();
        let acc = ph.sum(IpProtocol::ICMPV6, b.len() as u32);
        checksum::verify(checksum::accumulate(acc, b))
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> IcmpPacket<T> {
    /// Sets the type.
    pub fn set_msg_type(&mut self, v: u8) {
        self.buffer.as_mut()[TYPE] = v;
    }
    /// Sets the code.
    pub fn set_code(&mut self, v: u8) {
        self.buffer.as_mut()[CODE] = v;
    }
    /// Sets the checksum field.
    pub fn set_checksum(&mut self, v: u16) {
        write_u16(self.buffer.as_mut(), CHECKSUM, v);
    }
    /// ICMPv4: computes and stores the checksum.
    pub fn fill_checksum_v4(&mut self) {
        self.set_checksum(0);
        let c = checksum::checksum(self.buffer.as_ref());
        self.set_checksum(c);
    }
    /// ICMPv6: computes and stores the checksum.
    pub fn fill_checksum_v6(&mut self, ph: &PseudoHeader) {
        self.set_checksum(0);
        let b = self.buffer.as_ref();
        let acc = checksum::accumulate(ph.sum(IpProtocol::ICMPV6, b.len() as u32), b);
        self.set_checksum(!checksum::fold(acc));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn echo_v4_and_v6() {
        let mut b = [V4_ECHO_REQUEST, 0, 0, 0, 0x12, 0x34, 0, 1, b'h', b'i'];
        let mut p = IcmpPacket::new_checked(&mut b[..]).expect("valid");
        p.fill_checksum_v4();
        assert!(p.verify_checksum_v4());
        assert_eq!(p.echo_ident_seq(), Some((0x1234, 1)));
        assert_eq!(p.body().len(), 6);
        let ph = PseudoHeader::V6 {
            src: "fe80::1".parse().expect("addr"),
            dst: "fe80::2".parse().expect("addr"),
        };
        p.set_msg_type(V6_ECHO_REQUEST);
        p.fill_checksum_v6(&ph);
        assert!(p.verify_checksum_v6(&ph));
        assert!(!p.verify_checksum_v4());
        assert!(IcmpPacket::new_checked(&b[..3]).is_err());
        assert_eq!(
            IcmpPacket::new_checked(&b[..4]).map(|p| p.echo_ident_seq()),
            Ok(None)
        );
    }
}
