//! Frame views and builders for everything the switch looks at.
//!
//! The style follows smoltcp's `wire` module:
//!
//! - a *view* (`EthernetFrame<T>`, `Ipv4Packet<T>`, …) is a zero-copy wrapper around a buffer
//!   `T: AsRef<[u8]>` (and `AsMut<[u8]>` for the setters). The only way to build one is
//!   `new_checked`, which validates every length the accessors rely on and returns an
//!   [`Error`] otherwise, so accessors never index out of bounds;
//! - a *representation* (`EthernetRepr`, `ArpRepr`, …) is a small validated value with `parse`
//!   (from a view) and `emit` (into a caller-provided `&mut [u8]`, length checked).
//!
//! Nothing in this module allocates or panics on any input: every parser returns an error, and
//! every limit is a named constant of the module it belongs to. The fuzz target
//! `fuzz/fuzz_targets/wire_parse.rs` feeds arbitrary bytes to every parser, to the checksum
//! completion and to the GSO segmentation.

pub mod arp;
pub mod checksum;
pub mod ethernet;
pub mod icmp;
pub mod ipv4;
pub mod ipv6;
pub mod mac;
pub mod tcp;
pub mod udp;
pub mod vnet_hdr;

pub use arp::{ArpOp, ArpPacket, ArpRepr};
pub use checksum::PseudoHeader;
pub use ethernet::{EtherType, EthernetFrame, EthernetRepr, VlanTag};
pub use icmp::IcmpPacket;
pub use ipv4::{IpProtocol, Ipv4Packet, Ipv4Repr};
pub use ipv6::{Ipv6Packet, Ipv6Repr};
pub use mac::MacAddr;
pub use tcp::TcpPacket;
pub use udp::UdpPacket;
pub use vnet_hdr::{GsoType, Segmenter, VnetHdr, VnetHdrRepr};

/// Everything that can go wrong while parsing or emitting a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The buffer ends before a field or a length announced by the header.
    #[error("truncated: need {need} bytes, have {have}")]
    Truncated {
        /// Bytes the header or its length fields require.
        need: usize,
        /// Bytes the buffer holds.
        have: usize,
    },
    /// A field holds a value the protocol forbids (bad version, header length, …).
    #[error("malformed {0}")]
    Malformed(&'static str),
    /// Well-formed, but a variant this code does not handle (e.g. ARP for non-Ethernet).
    #[error("unsupported {0}")]
    Unsupported(&'static str),
    /// The output buffer given to an `emit` or segmentation call is too small.
    #[error("output buffer too small: need {need} bytes, have {have}")]
    BufferTooSmall {
        /// Bytes the output needs.
        need: usize,
        /// Bytes the output buffer holds.
        have: usize,
    },
}

/// Result type of this module.
pub type Result<T> = core::result::Result<T, Error>;

/// `Ok` when `buf` holds at least `need` bytes, [`Error::Truncated`] otherwise.
#[inline]
pub(crate) fn check_len(buf: &[u8], need: usize) -> Result<()> {
    if buf.len() < need {
        Err(Error::Truncated {
            need,
            have: buf.len(),
        })
    } else {
        Ok(())
    }
}

/// `Ok` when an output buffer holds at least `need` bytes, [`Error::BufferTooSmall`] otherwise.
#[inline]
pub(crate) fn check_out(buf: &[u8], need: usize) -> Result<()> {
    if buf.len() < need {
        Err(Error::BufferTooSmall {
            need,
            have: buf.len(),
        })
    } else {
        Ok(())
    }
}

// Field helpers. Callers guarantee the offsets lie inside the buffer (views validate their
// lengths in `new_checked`, emitters call `check_out` first).

#[inline]
pub(crate) fn read_u16(b: &[u8], off: usize) -> u16 {
    u16::from_be_bytes([b[off], b[off + 1]])
}

#[inline]
pub(crate) fn write_u16(b: &mut [u8], off: usize, v: u16) {
    b[off..off + 2].copy_from_slice(&v.to_be_bytes());
}

#[inline]
pub(crate) fn read_u32(b: &[u8], off: usize) -> u32 {
    u32::from_be_bytes([b[off], b[off + 1], b[off + 2], b[off + 3]])
}

#[inline]
pub(crate) fn write_u32(b: &mut [u8], off: usize, v: u32) {
    b[off..off + 4].copy_from_slice(&v.to_be_bytes());
}

#[inline]
pub(crate) fn read_ipv4(b: &[u8], off: usize) -> std::net::Ipv4Addr {
    std::net::Ipv4Addr::new(b[off], b[off + 1], b[off + 2], b[off + 3])
}

#[inline]
pub(crate) fn read_ipv6(b: &[u8], off: usize) -> std::net::Ipv6Addr {
    let mut a = [0u8; 16];
    a.copy_from_slice(&b[off..off + 16]);
    std::net::Ipv6Addr::from(a)
}

#[cfg(test)]
pub(crate) mod testutil;
