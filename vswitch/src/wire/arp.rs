//! ARP for Ethernet and IPv4 (RFC 826), the only kind a container network carries.
//!
//! ```text
//!  0      2      4    5    6      8     14    18    24    28
//!  | htype| ptype|hlen|plen| oper | sha | spa | tha | tpa |
//! ```

use std::net::Ipv4Addr;

use super::ethernet::{EtherType, EthernetRepr, VlanTag};
use super::mac::{MacAddr, MAC_LEN};
use super::{check_len, check_out, read_ipv4, read_u16, write_u16, Error, Result};

/// Length of an Ethernet/IPv4 ARP packet.
pub const PACKET_LEN: usize = 28;
/// Length of an untagged Ethernet frame carrying ARP (no padding).
pub const FRAME_LEN: usize = super::ethernet::HEADER_LEN + PACKET_LEN;
/// Hardware type "Ethernet".
pub const HTYPE_ETHERNET: u16 = 1;
/// Protocol type IPv4.
pub const PTYPE_IPV4: u16 = 0x0800;
/// Hardware address length for Ethernet.
pub const HLEN_ETHERNET: u8 = 6;
/// Protocol address length for IPv4.
pub const PLEN_IPV4: u8 = 4;

const HTYPE: usize = 0;
const PTYPE: usize = 2;
const HLEN: usize = 4;
const PLEN: usize = 5;
const OPER: usize = 6;
const SHA: usize = 8;
const SPA: usize = 14;
const THA: usize = 18;
const TPA: usize = 24;

/// The ARP operation code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ArpOp(pub u16);

impl ArpOp {
    /// Who-has.
    pub const REQUEST: ArpOp = ArpOp(1);
    /// Is-at.
    pub const REPLY: ArpOp = ArpOp(2);
}

/// A zero-copy view of an Ethernet/IPv4 ARP packet.
#[derive(Debug, Clone)]
pub struct ArpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> ArpPacket<T> {
    /// Wraps `buffer` after checking its length and that it is Ethernet/IPv4 ARP
    /// ([`Error::Unsupported`] for any other hardware or protocol type).
    pub fn new_checked(buffer: T) -> Result<Self> {
        let b = buffer.as_ref();
        check_len(b, PACKET_LEN)?;
        if read_u16(b, HTYPE) != HTYPE_ETHERNET
            || read_u16(b, PTYPE) != PTYPE_IPV4
            || b[HLEN] != HLEN_ETHERNET
            || b[PLEN] != PLEN_IPV4
        {
            return Err(Error::Unsupported("arp hardware/protocol type"));
        }
        Ok(ArpPacket { buffer })
    }

    /// The wrapped buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// Operation.
    pub fn operation(&self) -> ArpOp {
        ArpOp(read_u16(self.buffer.as_ref(), OPER))
    }
    /// Sender hardware address.
    pub fn sha(&self) -> MacAddr {
        mac_at(self.buffer.as_ref(), SHA)
    }
    /// Sender protocol address.
    pub fn spa(&self) -> Ipv4Addr {
        read_ipv4(self.buffer.as_ref(), SPA)
    }
    /// Target hardware address.
    pub fn tha(&self) -> MacAddr {
        mac_at(self.buffer.as_ref(), THA)
    }
    /// Target protocol address.
    pub fn tpa(&self) -> Ipv4Addr {
        read_ipv4(self.buffer.as_ref(), TPA)
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> ArpPacket<T> {
    /// Sets the operation.
    pub fn set_operation(&mut self, op: ArpOp) {
        write_u16(self.buffer.as_mut(), OPER, op.0);
    }
    /// Sets the sender hardware address.
    pub fn set_sha(&mut self, a: MacAddr) {
        self.buffer.as_mut()[SHA..SHA + MAC_LEN].copy_from_slice(&a.0);
    }
    /// Sets the sender protocol address.
    pub fn set_spa(&mut self, a: Ipv4Addr) {
        self.buffer.as_mut()[SPA..SPA + 4].copy_from_slice(&a.octets());
    }
    /// Sets the target hardware address.
    pub fn set_tha(&mut self, a: MacAddr) {
        self.buffer.as_mut()[THA..THA + MAC_LEN].copy_from_slice(&a.0);
    }
    /// Sets the target protocol address.
    pub fn set_tpa(&mut self, a: Ipv4Addr) {
        self.buffer.as_mut()[TPA..TPA + 4].copy_from_slice(&a.octets());
    }
}

fn mac_at(b: &[u8], off: usize) -> MacAddr {
    let mut a = [0u8; MAC_LEN];
    a.copy_from_slice(&b[off..off + MAC_LEN]);
    MacAddr(a)
}

/// A parsed Ethernet/IPv4 ARP packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArpRepr {
    /// Operation.
    pub op: ArpOp,
    /// Sender hardware address.
    pub sha: MacAddr,
    /// Sender protocol address.
    pub spa: Ipv4Addr,
    /// Target hardware address.
    pub tha: MacAddr,
    /// Target protocol address.
    pub tpa: Ipv4Addr,
}

impl ArpRepr {
    /// Reads a checked packet.
    pub fn parse<T: AsRef<[u8]>>(p: &ArpPacket<T>) -> ArpRepr {
        ArpRepr {
            op: p.operation(),
            sha: p.sha(),
            spa: p.spa(),
            tha: p.tha(),
            tpa: p.tpa(),
        }
    }

    /// Who-has `tpa`? tell `spa` (`sha`).
    pub fn request(sha: MacAddr, spa: Ipv4Addr, tpa: Ipv4Addr) -> ArpRepr {
        ArpRepr {
            op: ArpOp::REQUEST,
            sha,
            spa,
            tha: MacAddr::ZERO,
            tpa,
        }
    }

    /// The answer to this request on behalf of `owner`, the holder of `self.tpa`.
    pub fn reply(&self, owner: MacAddr) -> ArpRepr {
        ArpRepr {
            op: ArpOp::REPLY,
            sha: owner,
            spa: self.tpa,
            tha: self.sha,
            tpa: self.spa,
        }
    }

    /// A gratuitous ARP (an RFC 5227 announcement: a request whose sender and target address
    /// are both `ip`), sent to broadcast when an interface comes up.
    pub fn gratuitous(mac: MacAddr, ip: Ipv4Addr) -> ArpRepr {
        ArpRepr {
            op: ArpOp::REQUEST,
            sha: mac,
            spa: ip,
            tha: MacAddr::ZERO,
            tpa: ip,
        }
    }

    /// A request announcing the sender's own address (gratuitous ARP / RFC 5227
    /// announcement).
    pub fn is_announcement(&self) -> bool {
        self.op == ArpOp::REQUEST && self.spa == self.tpa
    }

    /// Writes the 28-byte packet at the start of `buf`.
    pub fn emit(&self, buf: &mut [u8]) -> Result<usize> {
        check_out(buf, PACKET_LEN)?;
        write_u16(buf, HTYPE, HTYPE_ETHERNET);
        write_u16(buf, PTYPE, PTYPE_IPV4);
        buf[HLEN] = HLEN_ETHERNET;
        buf[PLEN] = PLEN_IPV4;
        write_u16(buf, OPER, self.op.0);
        buf[SHA..SHA + MAC_LEN].copy_from_slice(&self.sha.0);
        buf[SPA..SPA + 4].copy_from_slice(&self.spa.octets());
        buf[THA..THA + MAC_LEN].copy_from_slice(&self.tha.0);
        buf[TPA..TPA + 4].copy_from_slice(&self.tpa.octets());
        Ok(PACKET_LEN)
    }

    /// Writes a whole frame (Ethernet header from `src` to `dst`, with `vlan` if given, then
    /// this packet; no padding) and returns its length: 42 bytes untagged, 46 tagged.
    ///
    /// For a reply, `dst` is the requester's MAC; for a gratuitous ARP, broadcast.
    pub fn emit_frame(
        &self,
        src: MacAddr,
        dst: MacAddr,
        vlan: Option<VlanTag>,
        buf: &mut [u8],
    ) -> Result<usize> {
        let eth = EthernetRepr {
            src,
            dst,
            vlan,
            ethertype: EtherType::ARP,
        };
        check_out(buf, eth.header_len() + PACKET_LEN)?;
        let hl = eth.emit(buf)?;
        let n = self.emit(&mut buf[hl..])?;
        Ok(hl + n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::ethernet::EthernetFrame;

    #[test]
    fn reply_frame_bytes() {
        let asker = MacAddr([0x02, 0x42, 0xac, 0x11, 0x00, 0x02]);
        let owner = MacAddr([0x02, 0x42, 0xac, 0x11, 0x00, 0x03]);
        let req = ArpRepr::request(
            asker,
            Ipv4Addr::new(172, 17, 0, 2),
            Ipv4Addr::new(172, 17, 0, 3),
        );
        let mut buf = [0u8; 64];
        let n = req
            .reply(owner)
            .emit_frame(owner, asker, None, &mut buf)
            .expect("fits");
        assert_eq!(n, FRAME_LEN);
        #[rustfmt::skip]
        let want: [u8; 42] = [
            0x02, 0x42, 0xac, 0x11, 0x00, 0x02, // dst = asker
            0x02, 0x42, 0xac, 0x11, 0x00, 0x03, // src = owner
            0x08, 0x06,                         // ARP
            0x00, 0x01, 0x08, 0x00, 6, 4,       // Ethernet / IPv4
            0x00, 0x02,                         // reply
            0x02, 0x42, 0xac, 0x11, 0x00, 0x03, 172, 17, 0, 3, // sha, spa
            0x02, 0x42, 0xac, 0x11, 0x00, 0x02, 172, 17, 0, 2, // tha, tpa
        ];
        assert_eq!(&buf[..n], &want[..]);
        let f = EthernetFrame::new_checked(&buf[..n]).expect("frame");
        let p = ArpPacket::new_checked(f.payload()).expect("arp");
        assert_eq!(ArpRepr::parse(&p), req.reply(owner));
    }

    #[test]
    fn gratuitous_and_errors() {
        let g = ArpRepr::gratuitous(MacAddr([2, 0, 0, 0, 0, 1]), Ipv4Addr::new(10, 0, 0, 1));
        assert!(g.is_announcement());
        let mut buf = [0u8; PACKET_LEN];
        g.emit(&mut buf).expect("fits");
        let mut p = ArpPacket::new_checked(&mut buf[..]).expect("valid");
        p.set_operation(ArpOp::REPLY);
        p.set_tpa(Ipv4Addr::new(10, 0, 0, 9));
        assert_eq!(p.operation(), ArpOp::REPLY);
        assert_eq!(p.tpa(), Ipv4Addr::new(10, 0, 0, 9));
        assert!(ArpPacket::new_checked(&buf[..27]).is_err());
        buf[1] = 6; // htype IEEE 802
        assert_eq!(
            ArpPacket::new_checked(&buf[..]).err(),
            Some(Error::Unsupported("arp hardware/protocol type"))
        );
        assert!(g
            .emit_frame(MacAddr::ZERO, MacAddr::BROADCAST, None, &mut [0u8; 41])
            .is_err());
    }
}
