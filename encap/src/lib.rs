//! VXLAN encapsulation (RFC 7348) in userspace: overlay networks carry Ethernet frames as VXLAN
//! over ordinary UDP sockets instead of the kernel's `vxlan` device.
//!
//! - [`vxlan`]: the 8-byte header as a zero-copy view ([`VxlanHeader`]) and a representation
//!   ([`VxlanRepr`]), in the style of smoltcp's `wire` module; [`encapsulate`]/[`decapsulate`];
//!   the outer UDP source port derived from the inner flow ([`flow_source_port`]).
//! - [`tunnel`]: [`TunnelSocket`], a non-blocking UDP socket bound to the host's advertise
//!   address with batched I/O (`sendmmsg`/`recvmmsg`) and no allocation per datagram.
//! - [`filter`]: [`Filter`], the receive filter dropping (and counting) datagrams from unknown
//!   VTEPs, malformed datagrams and datagrams for VNIs that are not ours.
//!
//! No parser in this crate panics on any input: the fuzz target `fuzz/fuzz_targets/vxlan_parse.rs`
//! feeds arbitrary bytes to [`decapsulate`], the [`Filter`] and [`flow_source_port`].

pub mod filter;
pub mod tunnel;
pub mod vxlan;

pub use filter::{DropReason, Filter, FilterCounters};
pub use tunnel::{
    RecvBatch, TunnelOptions, TunnelSocket, GSO_MAX_SEGMENTS, RECV_BUF_MAX, SEND_BATCH_MAX,
};
pub use vxlan::{
    decapsulate, encapsulate, flow_source_port, VxlanHeader, VxlanRepr, DEFAULT_SOURCE_PORT_RANGE,
    HEADER_LEN, MAX_DATAGRAM, OVERHEAD, VNI_MAX, VXLAN_PORT,
};

/// Everything that can go wrong while parsing or building a VXLAN datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
pub enum Error {
    /// The buffer ends before the field or frame it must hold.
    #[error("truncated: need {need} bytes, have {have}")]
    Truncated {
        /// Bytes required.
        need: usize,
        /// Bytes the buffer holds.
        have: usize,
    },
    /// The flags byte lacks the I flag (0x08), so the VNI is not valid (RFC 7348 §5).
    #[error("VXLAN flags {0:#04x} lack the I flag (0x08)")]
    MissingVniFlag(u8),
    /// A VNI above [`VNI_MAX`] (24 bits).
    #[error("VNI {0} out of range (max {max})", max = VNI_MAX)]
    VniOutOfRange(u32),
    /// The inner frame is shorter than an Ethernet header.
    #[error("inner frame of {0} bytes is shorter than an Ethernet header")]
    InnerFrameTooShort(usize),
    /// The datagram would exceed [`MAX_DATAGRAM`].
    #[error("datagram of {0} bytes exceeds the UDP maximum ({max})", max = MAX_DATAGRAM)]
    DatagramTooLong(usize),
    /// The output buffer given to an `emit`/`encapsulate` call is too small.
    #[error("output buffer too small: need {need} bytes, have {have}")]
    BufferTooSmall {
        /// Bytes the output needs.
        need: usize,
        /// Bytes the output buffer holds.
        have: usize,
    },
}

/// Result type of this crate's codec.
pub type Result<T> = core::result::Result<T, Error>;
