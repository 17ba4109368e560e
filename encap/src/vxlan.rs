//! The VXLAN header (RFC 7348 §5) and the encapsulation helpers.
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |R|R|R|R|I|R|R|R|            Reserved                           |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                VXLAN Network Identifier (VNI) |   Reserved    |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! ```
//!
//! On receive the I flag must be set and every reserved bit is ignored (as the RFC says; the
//! Linux kernel is stricter and drops datagrams with reserved bits set). On send every reserved
//! bit is zero.

use crate::{Error, Result};

/// IANA-assigned destination UDP port of VXLAN.
pub const VXLAN_PORT: u16 = 4789;
/// Length of the VXLAN header.
pub const HEADER_LEN: usize = 8;
/// The I flag: the VNI field is valid. The only flag a sender sets.
pub const FLAG_I: u8 = 0x08;
/// Largest VNI (24 bits).
pub const VNI_MAX: u32 = (1 << 24) - 1;
/// Length of an Ethernet header without VLAN tags: the shortest inner frame accepted.
pub const ETHERNET_HEADER_LEN: usize = 14;
/// Outer Ethernet header on the underlay.
pub const OUTER_ETHERNET_LEN: usize = 14;
/// Outer IPv4 header (no options).
pub const OUTER_IPV4_LEN: usize = 20;
/// Outer IPv6 header (no extension headers).
pub const OUTER_IPV6_LEN: usize = 40;
/// Outer UDP header.
pub const OUTER_UDP_LEN: usize = 8;
/// Bytes VXLAN over IPv4 adds to an inner frame on the underlay wire (outer Ethernet + IPv4 +
/// UDP + VXLAN = 50): overlay MTU = underlay MTU − `OVERHEAD` (1450 for 1500).
pub const OVERHEAD: usize = OUTER_ETHERNET_LEN + OUTER_IPV4_LEN + OUTER_UDP_LEN + HEADER_LEN;
/// Same as [`OVERHEAD`] over an IPv6 underlay (70).
pub const OVERHEAD_IPV6: usize = OUTER_ETHERNET_LEN + OUTER_IPV6_LEN + OUTER_UDP_LEN + HEADER_LEN;
/// Largest UDP payload over IPv4 (65535 − IPv4 20 − UDP 8): the largest datagram
/// [`encapsulate`] builds and the buffer size that never truncates a received datagram.
pub const MAX_DATAGRAM: usize = 65_535 - OUTER_IPV4_LEN - OUTER_UDP_LEN;
/// Default outer source port range of [`flow_source_port`] (inclusive): the dynamic/private
/// range RFC 7348 §5 recommends. (The Linux `vxlan` device defaults to the host's ephemeral
/// range instead; receivers accept any source port.)
pub const DEFAULT_SOURCE_PORT_RANGE: (u16, u16) = (49152, 65535);

const FLAGS: usize = 0;
const RESERVED0: core::ops::Range<usize> = 1..4;
const VNI: core::ops::Range<usize> = 4..7;
const RESERVED1: usize = 7;

/// A zero-copy view of a VXLAN datagram (the UDP payload: header + inner frame).
#[derive(Debug, Clone)]
pub struct VxlanHeader<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> VxlanHeader<T> {
    /// Wraps `buffer` after checking it holds the 8-byte header. Flags are not checked here
    /// (that is [`VxlanRepr::parse`]'s job), so a view can also be used to build a header.
    pub fn new_checked(buffer: T) -> Result<Self> {
        let have = buffer.as_ref().len();
        if have < HEADER_LEN {
            return Err(Error::Truncated {
                need: HEADER_LEN,
                have,
            });
        }
        Ok(VxlanHeader { buffer })
    }

    /// The wrapped buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }
    /// The flags byte.
    pub fn flags(&self) -> u8 {
        self.buffer.as_ref()[FLAGS]
    }
    /// `true` when the I flag is set (the VNI is valid).
    pub fn vni_valid(&self) -> bool {
        self.flags() & FLAG_I != 0
    }
    /// The 24 reserved bits after the flags byte.
    pub fn reserved0(&self) -> u32 {
        let b = &self.buffer.as_ref()[RESERVED0];
        u32::from_be_bytes([0, b[0], b[1], b[2]])
    }
    /// The VNI (24 bits).
    pub fn vni(&self) -> u32 {
        let b = &self.buffer.as_ref()[VNI];
        u32::from_be_bytes([0, b[0], b[1], b[2]])
    }
    /// The reserved last byte.
    pub fn reserved1(&self) -> u8 {
        self.buffer.as_ref()[RESERVED1]
    }
    /// The inner Ethernet frame (everything after the header).
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> VxlanHeader<T> {
    /// Sets the flags byte.
    pub fn set_flags(&mut self, flags: u8) {
        self.buffer.as_mut()[FLAGS] = flags;
    }
    /// Sets the 24 reserved bits after the flags byte (bits above 24 are dropped).
    pub fn set_reserved0(&mut self, value: u32) {
        let b = value.to_be_bytes();
        self.buffer.as_mut()[RESERVED0].copy_from_slice(&b[1..4]);
    }
    /// Sets the VNI; bits above 24 are dropped (use [`VxlanRepr::emit`] for a checked VNI).
    pub fn set_vni(&mut self, vni: u32) {
        let b = vni.to_be_bytes();
        self.buffer.as_mut()[VNI].copy_from_slice(&b[1..4]);
    }
    /// Sets the reserved last byte.
    pub fn set_reserved1(&mut self, value: u8) {
        self.buffer.as_mut()[RESERVED1] = value;
    }
    /// The inner Ethernet frame, mutable.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[HEADER_LEN..]
    }
}

/// A parsed VXLAN header: the only information it carries is the VNI.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct VxlanRepr {
    /// VXLAN Network Identifier, at most [`VNI_MAX`].
    pub vni: u32,
}

impl VxlanRepr {
    /// A representation with `vni`, checked against [`VNI_MAX`].
    pub fn new(vni: u32) -> Result<Self> {
        if vni > VNI_MAX {
            return Err(Error::VniOutOfRange(vni));
        }
        Ok(VxlanRepr { vni })
    }

    /// Parses a header: the I flag is required, reserved bits are ignored.
    pub fn parse<T: AsRef<[u8]>>(header: &VxlanHeader<T>) -> Result<Self> {
        if !header.vni_valid() {
            return Err(Error::MissingVniFlag(header.flags()));
        }
        Ok(VxlanRepr { vni: header.vni() })
    }

    /// Bytes [`emit`](Self::emit) writes.
    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN
    }

    /// Writes the header into the first [`HEADER_LEN`] bytes of `buf`: flags 0x08, every
    /// reserved bit zero, the VNI in bytes 4..7.
    pub fn emit(&self, buf: &mut [u8]) -> Result<()> {
        if self.vni > VNI_MAX {
            return Err(Error::VniOutOfRange(self.vni));
        }
        let mut header = VxlanHeader::new_checked(buf).map_err(too_small)?;
        header.set_flags(FLAG_I);
        header.set_reserved0(0);
        header.set_vni(self.vni);
        header.set_reserved1(0);
        Ok(())
    }
}

/// Turns a `Truncated` error on an output buffer into `BufferTooSmall`.
fn too_small(e: Error) -> Error {
    match e {
        Error::Truncated { need, have } => Error::BufferTooSmall { need, have },
        other => other,
    }
}

/// Writes the VXLAN header for `vni` followed by `inner` (an Ethernet frame) into `out` and
/// returns the datagram length (`HEADER_LEN + inner.len()`).
///
/// Errors: VNI above [`VNI_MAX`], `inner` shorter than an Ethernet header, a datagram longer
/// than [`MAX_DATAGRAM`], or `out` too small.
pub fn encapsulate(vni: u32, inner: &[u8], out: &mut [u8]) -> Result<usize> {
    let repr = VxlanRepr::new(vni)?;
    if inner.len() < ETHERNET_HEADER_LEN {
        return Err(Error::InnerFrameTooShort(inner.len()));
    }
    let len = HEADER_LEN + inner.len();
    if len > MAX_DATAGRAM {
        return Err(Error::DatagramTooLong(len));
    }
    if out.len() < len {
        return Err(Error::BufferTooSmall {
            need: len,
            have: out.len(),
        });
    }
    repr.emit(&mut out[..HEADER_LEN])?;
    out[HEADER_LEN..len].copy_from_slice(inner);
    Ok(len)
}

/// Parses a received datagram (the UDP payload) into its header and inner Ethernet frame.
///
/// Errors: shorter than the header, the I flag missing, or an inner frame shorter than an
/// Ethernet header. Reserved bits are ignored.
pub fn decapsulate(datagram: &[u8]) -> Result<(VxlanRepr, &[u8])> {
    let header = VxlanHeader::new_checked(datagram)?;
    let repr = VxlanRepr::parse(&header)?;
    let inner = &datagram[HEADER_LEN..];
    if inner.len() < ETHERNET_HEADER_LEN {
        return Err(Error::Truncated {
            need: HEADER_LEN + ETHERNET_HEADER_LEN,
            have: datagram.len(),
        });
    }
    Ok((repr, inner))
}

/// EtherType of IPv4.
const ETHERTYPE_IPV4: u16 = 0x0800;
/// EtherType of IPv6.
const ETHERTYPE_IPV6: u16 = 0x86dd;
/// EtherTypes of 802.1Q and 802.1ad VLAN tags.
const ETHERTYPE_VLAN: [u16; 2] = [0x8100, 0x88a8];
/// Length of one VLAN tag.
const VLAN_TAG_LEN: usize = 4;
/// VLAN tags skipped before giving up on the L3 header (QinQ).
const MAX_VLAN_TAGS: usize = 2;
/// Minimal IPv4 header length.
const IPV4_MIN_HEADER_LEN: usize = 20;
/// Fixed IPv6 header length.
const IPV6_HEADER_LEN: usize = 40;
/// IP protocols whose first four bytes are source and destination ports.
const PORT_PROTOCOLS: [u8; 4] = [
    6,   /* TCP */
    17,  /* UDP */
    132, /* SCTP */
    136, /* UDP-Lite */
];
/// Length of the source + destination ports at the start of the L4 header.
const PORTS_LEN: usize = 4;
/// IPv4 "more fragments" flag and fragment offset bits of the flags/offset field.
const IPV4_FRAGMENT_MASK: u16 = 0x3fff;

/// The outer UDP source port for an inner frame: a hash of its flow, mapped into the inclusive
/// `range` like Linux's `udp_flow_src_port` (`((hash * span) >> 32) + min`), so that underlay
/// ECMP and the receiver's RSS spread the overlay's flows. [`DEFAULT_SOURCE_PORT_RANGE`] is the
/// usual range. A reversed range is swapped.
///
/// The flow is the inner Ethernet source and destination (after up to two VLAN tags, whose
/// EtherType is hashed), the IPv4/IPv6 source and destination addresses and protocol, and the L4
/// ports for TCP/UDP/SCTP/UDP-Lite (not for IPv4 fragments, so every fragment of a datagram
/// maps to one port). The hash is deterministic (same flow → same port, in every process);
/// frames too short to parse hash whatever bytes they have. Never panics.
pub fn flow_source_port(inner_frame: &[u8], range: (u16, u16)) -> u16 {
    let (lo, hi) = if range.0 <= range.1 {
        range
    } else {
        (range.1, range.0)
    };
    let hash = flow_hash(inner_frame);
    let span = u64::from(hi - lo) + 1;
    // hash < 2^32, so the offset is < span and lo + offset <= hi.
    let offset = (u64::from(hash) * span) >> 32;
    lo + offset as u16
}

/// FNV-1a over the flow fields, finished with murmur3's `fmix32` for good high bits.
fn flow_hash(frame: &[u8]) -> u32 {
    let mut h = Fnv::new();
    flow_fields(frame, &mut h);
    fmix32(h.0)
}

/// Feeds the flow fields of `frame` to `h`, stopping at the first field the frame lacks.
fn flow_fields(frame: &[u8], h: &mut Fnv) {
    let Some(macs) = frame.get(..12) else {
        h.write(frame);
        return;
    };
    h.write(macs);
    let mut off = 12;
    let mut ethertype = None;
    for _ in 0..=MAX_VLAN_TAGS {
        let Some(t) = read_u16(frame, off) else {
            return;
        };
        off += 2;
        if ETHERTYPE_VLAN.contains(&t) {
            // Skip the TCI (the VLAN id is part of the L2 domain, not the flow).
            off += VLAN_TAG_LEN - 2;
            continue;
        }
        ethertype = Some(t);
        break;
    }
    let Some(ethertype) = ethertype else {
        return;
    };
    h.write(&ethertype.to_be_bytes());
    let Some(l3) = frame.get(off..) else {
        return;
    };
    let (proto, l4) = match ethertype {
        ETHERTYPE_IPV4 => {
            if l3.len() < IPV4_MIN_HEADER_LEN {
                return;
            }
            let ihl = usize::from(l3[0] & 0x0f) * 4;
            let proto = l3[9];
            h.write(&[proto]);
            h.write(&l3[12..20]);
            let frag = read_u16(l3, 6).unwrap_or(0) & IPV4_FRAGMENT_MASK;
            if ihl < IPV4_MIN_HEADER_LEN || frag != 0 {
                return;
            }
            (proto, l3.get(ihl..))
        }
        ETHERTYPE_IPV6 => {
            if l3.len() < IPV6_HEADER_LEN {
                return;
            }
            let proto = l3[6];
            h.write(&[proto]);
            h.write(&l3[8..40]);
            (proto, l3.get(IPV6_HEADER_LEN..))
        }
        _ => return,
    };
    if PORT_PROTOCOLS.contains(&proto) {
        if let Some(ports) = l4.and_then(|l4| l4.get(..PORTS_LEN)) {
            h.write(ports);
        }
    }
}

fn read_u16(b: &[u8], off: usize) -> Option<u16> {
    let s = b.get(off..off.checked_add(2)?)?;
    Some(u16::from_be_bytes([s[0], s[1]]))
}

/// 32-bit FNV-1a.
struct Fnv(u32);

impl Fnv {
    const OFFSET_BASIS: u32 = 0x811c_9dc5;
    const PRIME: u32 = 0x0100_0193;

    fn new() -> Self {
        Fnv(Self::OFFSET_BASIS)
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ u32::from(b)).wrapping_mul(Self::PRIME);
        }
    }
}

/// murmur3's 32-bit finalizer.
fn fmix32(mut h: u32) -> u32 {
    h ^= h >> 16;
    h = h.wrapping_mul(0x85eb_ca6b);
    h ^= h >> 13;
    h = h.wrapping_mul(0xc2b2_ae35);
    h ^= h >> 16;
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal Ethernet + IPv4 + UDP frame.
    fn udp4_frame(src_ip: [u8; 4], dst_ip: [u8; 4], sport: u16, dport: u16) -> Vec<u8> {
        let mut f = vec![
            0x02, 0, 0, 0, 0, 0x02, // dst MAC
            0x02, 0, 0, 0, 0, 0x01, // src MAC
            0x08, 0x00, // IPv4
            0x45, 0, 0, 28, 0, 0, 0x40, 0, 64, 17, 0, 0, // IPv4 header up to addresses
        ];
        f.extend_from_slice(&src_ip);
        f.extend_from_slice(&dst_ip);
        f.extend_from_slice(&sport.to_be_bytes());
        f.extend_from_slice(&dport.to_be_bytes());
        f.extend_from_slice(&[0, 8, 0, 0]);
        f
    }

    #[test]
    fn constants() {
        assert_eq!(OVERHEAD, 50);
        assert_eq!(OVERHEAD_IPV6, 70);
        assert_eq!(VNI_MAX, 16_777_215);
        assert_eq!(MAX_DATAGRAM, 65_507);
        assert_eq!(1500 - OVERHEAD, 1450);
    }

    #[test]
    fn emit_exact_bytes() {
        let mut buf = [0xffu8; 8];
        VxlanRepr::new(0x12_3456).unwrap().emit(&mut buf).unwrap();
        assert_eq!(buf, [0x08, 0, 0, 0, 0x12, 0x34, 0x56, 0]);
        VxlanRepr::new(VNI_MAX).unwrap().emit(&mut buf).unwrap();
        assert_eq!(buf, [0x08, 0, 0, 0, 0xff, 0xff, 0xff, 0]);
        VxlanRepr::new(0).unwrap().emit(&mut buf).unwrap();
        assert_eq!(buf, [0x08, 0, 0, 0, 0, 0, 0, 0]);
    }

    #[test]
    fn parse_known_bytes() {
        // VNI 256 (the first overlay VNI), as the kernel sends it.
        let b = [0x08, 0, 0, 0, 0, 0x01, 0x00, 0];
        let h = VxlanHeader::new_checked(&b[..]).unwrap();
        assert_eq!(h.flags(), 0x08);
        assert!(h.vni_valid());
        assert_eq!(h.vni(), 256);
        assert_eq!((h.reserved0(), h.reserved1()), (0, 0));
        assert_eq!(VxlanRepr::parse(&h).unwrap(), VxlanRepr { vni: 256 });
    }

    #[test]
    fn reserved_bits_ignored_on_receive() {
        let b = [0xff, 0xaa, 0xbb, 0xcc, 0, 0, 42, 0xdd];
        let h = VxlanHeader::new_checked(&b[..]).unwrap();
        assert_eq!(h.reserved0(), 0xaabbcc);
        assert_eq!(h.reserved1(), 0xdd);
        assert_eq!(VxlanRepr::parse(&h).unwrap().vni, 42);
    }

    #[test]
    fn missing_i_flag_rejected() {
        for flags in [0x00, 0x80, 0xf7, 0x01] {
            let b = [flags, 0, 0, 0, 0, 0, 1, 0];
            let h = VxlanHeader::new_checked(&b[..]).unwrap();
            assert_eq!(VxlanRepr::parse(&h), Err(Error::MissingVniFlag(flags)));
        }
    }

    #[test]
    fn setters_round_trip() {
        let mut b = [0u8; 8];
        let mut h = VxlanHeader::new_checked(&mut b[..]).unwrap();
        h.set_flags(0x0c);
        h.set_reserved0(0x0102_0304);
        h.set_vni(0xff_abcdef);
        h.set_reserved1(9);
        assert_eq!(
            (h.flags(), h.reserved0(), h.vni(), h.reserved1()),
            (0x0c, 0x020304, 0xabcdef, 9)
        );
        assert!(h.payload().is_empty());
        assert_eq!(b, [0x0c, 2, 3, 4, 0xab, 0xcd, 0xef, 9]);
    }

    #[test]
    fn truncated_header() {
        for n in 0..HEADER_LEN {
            let b = vec![0x08; n];
            assert_eq!(
                VxlanHeader::new_checked(&b[..]).err(),
                Some(Error::Truncated { need: 8, have: n })
            );
            assert!(decapsulate(&b).is_err());
        }
    }

    #[test]
    fn vni_bounds() {
        assert!(VxlanRepr::new(VNI_MAX).is_ok());
        assert_eq!(
            VxlanRepr::new(VNI_MAX + 1),
            Err(Error::VniOutOfRange(VNI_MAX + 1))
        );
        let mut buf = [0u8; 8];
        assert_eq!(
            VxlanRepr { vni: u32::MAX }.emit(&mut buf),
            Err(Error::VniOutOfRange(u32::MAX))
        );
        let inner = [0u8; 14];
        let mut out = [0u8; 64];
        assert_eq!(
            encapsulate(1 << 24, &inner, &mut out),
            Err(Error::VniOutOfRange(1 << 24))
        );
        assert_eq!(encapsulate(VNI_MAX, &inner, &mut out), Ok(22));
    }

    #[test]
    fn emit_buffer_too_small() {
        let mut buf = [0u8; 7];
        assert_eq!(
            VxlanRepr { vni: 1 }.emit(&mut buf),
            Err(Error::BufferTooSmall { need: 8, have: 7 })
        );
        let inner = [0u8; 20];
        let mut out = [0u8; 27];
        assert_eq!(
            encapsulate(1, &inner, &mut out),
            Err(Error::BufferTooSmall { need: 28, have: 27 })
        );
    }

    #[test]
    fn encapsulate_decapsulate() {
        let inner = udp4_frame([10, 0, 0, 1], [10, 0, 0, 2], 1234, 80);
        let mut out = vec![0u8; 200];
        let n = encapsulate(4097, &inner, &mut out).unwrap();
        assert_eq!(n, HEADER_LEN + inner.len());
        assert_eq!(&out[..8], &[0x08, 0, 0, 0, 0x00, 0x10, 0x01, 0]);
        let (repr, got) = decapsulate(&out[..n]).unwrap();
        assert_eq!(repr.vni, 4097);
        assert_eq!(got, &inner[..]);
    }

    #[test]
    fn inner_frame_length_limits() {
        let mut out = vec![0u8; MAX_DATAGRAM + 16];
        assert_eq!(
            encapsulate(1, &[0u8; 13], &mut out),
            Err(Error::InnerFrameTooShort(13))
        );
        let max_inner = vec![0u8; MAX_DATAGRAM - HEADER_LEN];
        assert_eq!(encapsulate(1, &max_inner, &mut out), Ok(MAX_DATAGRAM));
        let too_long = vec![0u8; MAX_DATAGRAM - HEADER_LEN + 1];
        assert_eq!(
            encapsulate(1, &too_long, &mut out),
            Err(Error::DatagramTooLong(MAX_DATAGRAM + 1))
        );
        let short = [0x08, 0, 0, 0, 0, 0, 1, 0, 1, 2, 3];
        assert_eq!(
            decapsulate(&short),
            Err(Error::Truncated { need: 22, have: 11 })
        );
    }

    #[test]
    fn flow_port_in_range_and_stable() {
        let a = udp4_frame([10, 0, 0, 1], [10, 0, 0, 2], 1234, 80);
        let p = flow_source_port(&a, DEFAULT_SOURCE_PORT_RANGE);
        assert!(p >= 49152);
        assert_eq!(p, flow_source_port(&a, DEFAULT_SOURCE_PORT_RANGE));
        // Payload bytes and TTL are not part of the flow.
        let mut b = a.clone();
        b[22] = 1; // TTL
        b.extend_from_slice(b"payload");
        assert_eq!(p, flow_source_port(&b, DEFAULT_SOURCE_PORT_RANGE));
        // Different L4 ports give (here) a different source port, and many flows spread out.
        let mut seen = std::collections::HashSet::new();
        for sport in 0..200u16 {
            let f = udp4_frame([10, 0, 0, 1], [10, 0, 0, 2], 30000 + sport, 80);
            let p = flow_source_port(&f, DEFAULT_SOURCE_PORT_RANGE);
            assert!(p >= 49152);
            seen.insert(p);
        }
        assert!(seen.len() > 150, "poor spread: {}", seen.len());
    }

    #[test]
    fn flow_port_ranges() {
        let f = udp4_frame([10, 0, 0, 1], [10, 0, 0, 2], 1, 2);
        assert_eq!(flow_source_port(&f, (5000, 5000)), 5000);
        let p = flow_source_port(&f, (1000, 1003));
        assert!((1000..=1003).contains(&p));
        assert_eq!(p, flow_source_port(&f, (1003, 1000)));
        let _ = flow_source_port(&f, (0, u16::MAX));
        for n in 0..f.len() {
            let p = flow_source_port(&f[..n], DEFAULT_SOURCE_PORT_RANGE);
            assert!(p >= 49152);
        }
    }

    #[test]
    fn flow_port_ipv6_and_vlan() {
        let mut f = vec![
            2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x81, 0x00, 0, 5, 0x86, 0xdd,
        ];
        let mut ip6 = vec![0x60, 0, 0, 0, 0, 8, 17, 64];
        ip6.extend_from_slice(&[0xfd; 16]);
        ip6.extend_from_slice(&[0xfe; 16]);
        f.extend_from_slice(&ip6);
        f.extend_from_slice(&[0x30, 0x39, 0, 53, 0, 8, 0, 0]);
        let p = flow_source_port(&f, DEFAULT_SOURCE_PORT_RANGE);
        let mut g = f.clone();
        g[18 + 40 + 1] = 54; // another source port
        let q = flow_source_port(&g, DEFAULT_SOURCE_PORT_RANGE);
        assert_ne!(p, q);
        let mut h = f.clone();
        h[15] = 6; // another VLAN id: same flow
        assert_eq!(p, flow_source_port(&h, DEFAULT_SOURCE_PORT_RANGE));
    }
}
