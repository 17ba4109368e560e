//! Ethernet II frames, with at most one IEEE 802.1Q tag.
//!
//! ```text
//!  0      6      12          14 (untagged)
//!  | dst  | src  | ethertype | payload …
//!  0      6      12     14     16          18 (tagged)
//!  | dst  | src  | 8100 | TCI  | ethertype | payload …
//! ```
//!
//! A frame whose outer ethertype is 802.1Q exposes the tag through [`EthernetFrame::vlan`] and
//! the *inner* ethertype through [`EthernetFrame::ethertype`], so callers look past one tag
//! without caring. A second tag (QinQ) is not looked into: the inner ethertype is then
//! [`EtherType::VLAN`] (or 802.1ad), which upper layers treat as opaque.

use std::fmt;

use super::mac::{MacAddr, MAC_LEN};
use super::{check_len, check_out, read_u16, write_u16, Result};

/// Offset of the destination address.
pub const DST_OFFSET: usize = 0;
/// Offset of the source address.
pub const SRC_OFFSET: usize = 6;
/// Offset of the (outer) ethertype or tag protocol identifier.
pub const ETHERTYPE_OFFSET: usize = 12;
/// Length of an untagged header.
pub const HEADER_LEN: usize = 14;
/// Length of one 802.1Q tag (TPID + TCI).
pub const VLAN_TAG_LEN: usize = 4;
/// Length of a header with one 802.1Q tag.
pub const TAGGED_HEADER_LEN: usize = HEADER_LEN + VLAN_TAG_LEN;
/// Mask of the VLAN identifier in a TCI.
pub const VLAN_VID_MASK: u16 = 0x0fff;

/// An ethertype (or 802.1Q tag protocol identifier).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EtherType(pub u16);

impl EtherType {
    /// IPv4.
    pub const IPV4: EtherType = EtherType(0x0800);
    /// ARP.
    pub const ARP: EtherType = EtherType(0x0806);
    /// IEEE 802.1Q VLAN tag.
    pub const VLAN: EtherType = EtherType(0x8100);
    /// IPv6.
    pub const IPV6: EtherType = EtherType(0x86dd);
}

impl fmt::Debug for EtherType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "EtherType({:#06x})", self.0)
    }
}

/// An 802.1Q tag control information field (priority, drop eligible, VLAN id).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct VlanTag {
    /// The raw 16-bit TCI.
    pub tci: u16,
}

impl VlanTag {
    /// Priority code point (3 bits).
    pub fn pcp(&self) -> u8 {
        (self.tci >> 13) as u8
    }
    /// Drop eligible indicator.
    pub fn dei(&self) -> bool {
        self.tci & 0x1000 != 0
    }
    /// VLAN identifier (12 bits).
    pub fn vid(&self) -> u16 {
        self.tci & VLAN_VID_MASK
    }
}

/// A zero-copy view of an Ethernet frame.
#[derive(Debug, Clone)]
pub struct EthernetFrame<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> EthernetFrame<T> {
    /// Wraps `buffer` after checking it holds the whole header (including the 802.1Q tag when
    /// the outer ethertype announces one).
    pub fn new_checked(buffer: T) -> Result<Self> {
        let b = buffer.as_ref();
        check_len(b, HEADER_LEN)?;
        if EtherType(read_u16(b, ETHERTYPE_OFFSET)) == EtherType::VLAN {
            check_len(b, TAGGED_HEADER_LEN)?;
        }
        Ok(EthernetFrame { buffer })
    }

    /// The wrapped buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// Destination address.
    pub fn dst_addr(&self) -> MacAddr {
        let b = self.buffer.as_ref();
        let mut a = [0u8; MAC_LEN];
        a.copy_from_slice(&b[DST_OFFSET..DST_OFFSET + MAC_LEN]);
        MacAddr(a)
    }

    /// Source address.
    pub fn src_addr(&self) -> MacAddr {
        let b = self.buffer.as_ref();
        let mut a = [0u8; MAC_LEN];
        a.copy_from_slice(&b[SRC_OFFSET..SRC_OFFSET + MAC_LEN]);
        MacAddr(a)
    }

    /// The ethertype right after the source address (0x8100 for a tagged frame).
    pub fn outer_ethertype(&self) -> EtherType {
        EtherType(read_u16(self.buffer.as_ref(), ETHERTYPE_OFFSET))
    }

    /// The 802.1Q tag, if the frame carries one.
    pub fn vlan(&self) -> Option<VlanTag> {
        if self.outer_ethertype() == EtherType::VLAN {
            Some(VlanTag {
                tci: read_u16(self.buffer.as_ref(), HEADER_LEN),
            })
        } else {
            None
        }
    }

    /// The ethertype of the payload (past one 802.1Q tag).
    pub fn ethertype(&self) -> EtherType {
        if self.outer_ethertype() == EtherType::VLAN {
            EtherType(read_u16(self.buffer.as_ref(), HEADER_LEN + 2))
        } else {
            self.outer_ethertype()
        }
    }

    /// Length of the header, tag included.
    pub fn header_len(&self) -> usize {
        if self.outer_ethertype() == EtherType::VLAN {
            TAGGED_HEADER_LEN
        } else {
            HEADER_LEN
        }
    }

    /// The payload (everything after the header, padding included).
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[self.header_len()..]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> EthernetFrame<T> {
    /// Sets the destination address.
    pub fn set_dst_addr(&mut self, a: MacAddr) {
        self.buffer.as_mut()[DST_OFFSET..DST_OFFSET + MAC_LEN].copy_from_slice(&a.0);
    }

    /// Sets the source address.
    pub fn set_src_addr(&mut self, a: MacAddr) {
        self.buffer.as_mut()[SRC_OFFSET..SRC_OFFSET + MAC_LEN].copy_from_slice(&a.0);
    }

    /// Sets the ethertype of the payload (the inner one on a tagged frame, so the tag and the
    /// validated header length stay as they are).
    pub fn set_ethertype(&mut self, t: EtherType) {
        let off = if self.outer_ethertype() == EtherType::VLAN {
            HEADER_LEN + 2
        } else {
            ETHERTYPE_OFFSET
        };
        write_u16(self.buffer.as_mut(), off, t.0);
    }

    /// The payload, mutable.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let hl = self.header_len();
        &mut self.buffer.as_mut()[hl..]
    }
}

/// A parsed Ethernet header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EthernetRepr {
    /// Source address.
    pub src: MacAddr,
    /// Destination address.
    pub dst: MacAddr,
    /// The 802.1Q tag, if any.
    pub vlan: Option<VlanTag>,
    /// The payload's ethertype.
    pub ethertype: EtherType,
}

impl EthernetRepr {
    /// Reads the header of a checked frame.
    pub fn parse<T: AsRef<[u8]>>(frame: &EthernetFrame<T>) -> EthernetRepr {
        EthernetRepr {
            src: frame.src_addr(),
            dst: frame.dst_addr(),
            vlan: frame.vlan(),
            ethertype: frame.ethertype(),
        }
    }

    /// Length of the header this repr emits.
    pub fn header_len(&self) -> usize {
        if self.vlan.is_some() {
            TAGGED_HEADER_LEN
        } else {
            HEADER_LEN
        }
    }

    /// Writes the header at the start of `buf` and returns its length.
    pub fn emit(&self, buf: &mut [u8]) -> Result<usize> {
        let hl = self.header_len();
        check_out(buf, hl)?;
        buf[DST_OFFSET..DST_OFFSET + MAC_LEN].copy_from_slice(&self.dst.0);
        buf[SRC_OFFSET..SRC_OFFSET + MAC_LEN].copy_from_slice(&self.src.0);
        match self.vlan {
            Some(tag) => {
                write_u16(buf, ETHERTYPE_OFFSET, EtherType::VLAN.0);
                write_u16(buf, HEADER_LEN, tag.tci);
                write_u16(buf, HEADER_LEN + 2, self.ethertype.0);
            }
            None => write_u16(buf, ETHERTYPE_OFFSET, self.ethertype.0),
        }
        Ok(hl)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::Error;

    const UNTAGGED: [u8; 16] = [
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02, 0x42, 0xac, 0x11, 0x00, 0x02, 0x08, 0x06, 0xaa,
        0xbb,
    ];

    #[test]
    fn untagged_view() {
        let f = EthernetFrame::new_checked(&UNTAGGED[..]).expect("valid");
        assert!(f.dst_addr().is_broadcast());
        assert_eq!(f.src_addr().to_string(), "02:42:ac:11:00:02");
        assert_eq!(f.ethertype(), EtherType::ARP);
        assert_eq!(f.vlan(), None);
        assert_eq!(f.payload(), &[0xaa, 0xbb]);
    }

    #[test]
    fn tagged_view_and_roundtrip() {
        let repr = EthernetRepr {
            src: MacAddr([2, 0, 0, 0, 0, 1]),
            dst: MacAddr([2, 0, 0, 0, 0, 2]),
            vlan: Some(VlanTag { tci: 0x2064 }),
            ethertype: EtherType::IPV6,
        };
        let mut buf = [0u8; 20];
        assert_eq!(repr.emit(&mut buf), Ok(TAGGED_HEADER_LEN));
        let f = EthernetFrame::new_checked(&buf[..]).expect("valid");
        assert_eq!(EthernetRepr::parse(&f), repr);
        assert_eq!(f.vlan().map(|t| (t.pcp(), t.vid())), Some((1, 100)));
        assert_eq!(f.payload().len(), 2);
        let mut m = EthernetFrame::new_checked(&mut buf[..]).expect("valid");
        m.set_ethertype(EtherType::IPV4);
        m.set_src_addr(MacAddr::BROADCAST);
        assert_eq!(m.ethertype(), EtherType::IPV4);
        assert_eq!(m.outer_ethertype(), EtherType::VLAN);
        assert!(m.src_addr().is_broadcast());
    }

    #[test]
    fn short_buffers_rejected() {
        assert!(matches!(
            EthernetFrame::new_checked(&UNTAGGED[..13]),
            Err(Error::Truncated { need: 14, have: 13 })
        ));
        let mut tagged = [0u8; 17];
        tagged[12] = 0x81;
        assert!(EthernetFrame::new_checked(&tagged[..]).is_err());
        let repr = EthernetRepr {
            src: MacAddr::ZERO,
            dst: MacAddr::ZERO,
            vlan: None,
            ethertype: EtherType::ARP,
        };
        assert!(repr.emit(&mut [0u8; 13]).is_err());
    }
}
