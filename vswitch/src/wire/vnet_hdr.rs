//! The 10-byte `virtio_net_hdr` that a TAP opened with `IFF_VNET_HDR` puts in front of every
//! frame, and the software fallbacks for ports that cannot take offloads.
//!
//! ```text
//!  0       1          2         4          6            8             10
//!  | flags | gso_type | hdr_len | gso_size | csum_start | csum_offset |
//! ```
//!
//! The 16-bit fields are little-endian: the TAP uses the host's byte order unless
//! `TUNSETVNETBE` is set, and the hosts this runs on (x86-64, aarch64) are little-endian.
//!
//! A frame read from an offloading TAP may be a *GSO super-frame* (up to 64 KiB, one TCP or
//! UDP header, `gso_size` bytes of payload per wire segment) and may carry a *partial
//! checksum* (`NEEDS_CSUM`: the field at `csum_start + csum_offset` holds only the
//! pseudo-header sum). Such a frame is forwarded as it is to a port that takes the same
//! offloads. For any other port, [`complete_checksum`] finishes the checksum in place and
//! [`segment_tcp`] / [`segment_udp`] (or the [`Segmenter`] they wrap) cut the super-frame into
//! wire-sized frames in caller-provided buffers, fixing the IP total length, the IPv4
//! identification and header checksum, the TCP sequence number and flags, the UDP length,
//! and computing full transport checksums. Nothing here allocates.

use super::checksum;
use super::ethernet::{EtherType, EthernetFrame};
use super::ipv4::{IpProtocol, Ipv4Packet};
use super::ipv6::{self, Ipv6Packet};
use super::tcp::{self, TcpPacket};
use super::udp::{self, UdpPacket};
use super::{check_len, check_out, write_u16, Error, Result};

/// Length of `struct virtio_net_hdr` (without `num_buffers`).
pub const HEADER_LEN: usize = 10;
/// `VIRTIO_NET_HDR_F_NEEDS_CSUM`: the checksum at `csum_start + csum_offset` is partial.
pub const FLAG_NEEDS_CSUM: u8 = 1;
/// `VIRTIO_NET_HDR_F_DATA_VALID`: checksums were verified by the sender.
pub const FLAG_DATA_VALID: u8 = 2;
/// `VIRTIO_NET_HDR_F_RSC_INFO`.
pub const FLAG_RSC_INFO: u8 = 4;
/// `VIRTIO_NET_HDR_GSO_NONE`.
pub const GSO_NONE: u8 = 0;
/// `VIRTIO_NET_HDR_GSO_TCPV4`.
pub const GSO_TCPV4: u8 = 1;
/// `VIRTIO_NET_HDR_GSO_UDP` (UFO, IP fragmentation: not supported here).
pub const GSO_UDP: u8 = 3;
/// `VIRTIO_NET_HDR_GSO_TCPV6`.
pub const GSO_TCPV6: u8 = 4;
/// `VIRTIO_NET_HDR_GSO_UDP_L4` (USO).
pub const GSO_UDP_L4: u8 = 5;
/// `VIRTIO_NET_HDR_GSO_ECN` bit of `gso_type`.
pub const GSO_ECN: u8 = 0x80;
/// Largest IP total length / payload length a segment may have.
pub const MAX_IP_LEN: usize = 65_535;

const FLAGS: usize = 0;
const GSO_TYPE: usize = 1;
const HDR_LEN: usize = 2;
const GSO_SIZE: usize = 4;
const CSUM_START: usize = 6;
const CSUM_OFFSET: usize = 8;

fn read_le16(b: &[u8], off: usize) -> u16 {
    u16::from_le_bytes([b[off], b[off + 1]])
}

fn write_le16(b: &mut [u8], off: usize, v: u16) {
    b[off..off + 2].copy_from_slice(&v.to_le_bytes());
}

/// The segmentation a frame asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GsoType {
    /// A single frame.
    None,
    /// TCP over IPv4 (TSO).
    TcpV4,
    /// TCP over IPv6 (TSO).
    TcpV6,
    /// UDP segmentation (USO), IPv4 or IPv6.
    UdpL4,
}

impl GsoType {
    fn from_raw(v: u8) -> Result<GsoType> {
        match v & !GSO_ECN {
            GSO_NONE => Ok(GsoType::None),
            GSO_TCPV4 => Ok(GsoType::TcpV4),
            GSO_TCPV6 => Ok(GsoType::TcpV6),
            GSO_UDP_L4 => Ok(GsoType::UdpL4),
            GSO_UDP => Err(Error::Unsupported("gso type udp (ufo)")),
            _ => Err(Error::Malformed("gso type")),
        }
    }

    fn raw(self) -> u8 {
        match self {
            GsoType::None => GSO_NONE,
            GsoType::TcpV4 => GSO_TCPV4,
            GsoType::TcpV6 => GSO_TCPV6,
            GsoType::UdpL4 => GSO_UDP_L4,
        }
    }
}

/// A zero-copy view of a `virtio_net_hdr`.
#[derive(Debug, Clone)]
pub struct VnetHdr<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> VnetHdr<T> {
    /// Wraps `buffer` after checking it holds the 10 bytes.
    pub fn new_checked(buffer: T) -> Result<Self> {
        check_len(buffer.as_ref(), HEADER_LEN)?;
        Ok(VnetHdr { buffer })
    }
    /// The wrapped buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }
    /// Flags byte (`FLAG_*`).
    pub fn flags(&self) -> u8 {
        self.buffer.as_ref()[FLAGS]
    }
    /// Raw `gso_type` byte (`GSO_*`, ECN bit included).
    pub fn gso_type_raw(&self) -> u8 {
        self.buffer.as_ref()[GSO_TYPE]
    }
    /// `hdr_len`: length of the headers before the payload (a hint; not trusted here).
    pub fn hdr_len(&self) -> u16 {
        read_le16(self.buffer.as_ref(), HDR_LEN)
    }
    /// `gso_size`: payload bytes per segment.
    pub fn gso_size(&self) -> u16 {
        read_le16(self.buffer.as_ref(), GSO_SIZE)
    }
    /// `csum_start`: where checksumming starts.
    pub fn csum_start(&self) -> u16 {
        read_le16(self.buffer.as_ref(), CSUM_START)
    }
    /// `csum_offset`: where the checksum goes, from `csum_start`.
    pub fn csum_offset(&self) -> u16 {
        read_le16(self.buffer.as_ref(), CSUM_OFFSET)
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> VnetHdr<T> {
    /// Sets the flags byte.
    pub fn set_flags(&mut self, v: u8) {
        self.buffer.as_mut()[FLAGS] = v;
    }
    /// Sets the raw `gso_type` byte.
    pub fn set_gso_type_raw(&mut self, v: u8) {
        self.buffer.as_mut()[GSO_TYPE] = v;
    }
    /// Sets `hdr_len`.
    pub fn set_hdr_len(&mut self, v: u16) {
        write_le16(self.buffer.as_mut(), HDR_LEN, v);
    }
    /// Sets `gso_size`.
    pub fn set_gso_size(&mut self, v: u16) {
        write_le16(self.buffer.as_mut(), GSO_SIZE, v);
    }
    /// Sets `csum_start`.
    pub fn set_csum_start(&mut self, v: u16) {
        write_le16(self.buffer.as_mut(), CSUM_START, v);
    }
    /// Sets `csum_offset`.
    pub fn set_csum_offset(&mut self, v: u16) {
        write_le16(self.buffer.as_mut(), CSUM_OFFSET, v);
    }
}

/// A parsed `virtio_net_hdr`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VnetHdrRepr {
    /// Flags (`FLAG_*`).
    pub flags: u8,
    /// Segmentation requested.
    pub gso_type: GsoType,
    /// The `GSO_ECN` bit: the sender set CWR in a super-frame.
    pub ecn: bool,
    /// Header length hint.
    pub hdr_len: u16,
    /// Payload bytes per segment (non-zero when `gso_type` is not `None`).
    pub gso_size: u16,
    /// Start of the checksummed range.
    pub csum_start: u16,
    /// Offset of the checksum field from `csum_start`.
    pub csum_offset: u16,
}

impl VnetHdrRepr {
    /// The header for a complete frame: no offload, nothing partial.
    pub const NONE: VnetHdrRepr = VnetHdrRepr {
        flags: 0,
        gso_type: GsoType::None,
        ecn: false,
        hdr_len: 0,
        gso_size: 0,
        csum_start: 0,
        csum_offset: 0,
    };

    /// Reads a checked header; rejects unknown GSO types, UFO, and GSO with `gso_size` 0.
    pub fn parse<T: AsRef<[u8]>>(h: &VnetHdr<T>) -> Result<VnetHdrRepr> {
        let raw = h.gso_type_raw();
        let gso_type = GsoType::from_raw(raw)?;
        if gso_type != GsoType::None && h.gso_size() == 0 {
            return Err(Error::Malformed("gso size 0"));
        }
        Ok(VnetHdrRepr {
            flags: h.flags(),
            gso_type,
            ecn: raw & GSO_ECN != 0,
            hdr_len: h.hdr_len(),
            gso_size: h.gso_size(),
            csum_start: h.csum_start(),
            csum_offset: h.csum_offset(),
        })
    }

    /// Writes the 10 bytes at the start of `buf`.
    pub fn emit(&self, buf: &mut [u8]) -> Result<usize> {
        check_out(buf, HEADER_LEN)?;
        buf[FLAGS] = self.flags;
        buf[GSO_TYPE] = self.gso_type.raw() | if self.ecn { GSO_ECN } else { 0 };
        write_le16(buf, HDR_LEN, self.hdr_len);
        write_le16(buf, GSO_SIZE, self.gso_size);
        write_le16(buf, CSUM_START, self.csum_start);
        write_le16(buf, CSUM_OFFSET, self.csum_offset);
        Ok(HEADER_LEN)
    }

    /// `NEEDS_CSUM` is set.
    pub fn needs_csum(&self) -> bool {
        self.flags & FLAG_NEEDS_CSUM != 0
    }

    /// `DATA_VALID` is set.
    pub fn data_valid(&self) -> bool {
        self.flags & FLAG_DATA_VALID != 0
    }

    /// The frame needs work before a port without offloads can take it.
    pub fn needs_software(&self) -> bool {
        self.needs_csum() || self.gso_type != GsoType::None
    }
}

/// Finishes a partial checksum in place: sums `frame[csum_start..]` (the checksum field holds
/// the pseudo-header sum, as Linux leaves it) and stores the result at
/// `csum_start + csum_offset`. Does nothing unless `NEEDS_CSUM` is set.
pub fn complete_checksum(frame: &mut [u8], hdr: &VnetHdrRepr) -> Result<()> {
    if !hdr.needs_csum() {
        return Ok(());
    }
    let start = usize::from(hdr.csum_start);
    let field = start + usize::from(hdr.csum_offset);
    check_len(frame, field + 2)?;
    let acc = checksum::accumulate(0, &frame[start..]);
    write_u16(frame, field, checksum::nonzero(!checksum::fold(acc)));
    Ok(())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum L4 {
    Tcp,
    Udp,
}

/// Cuts one GSO super-frame into wire frames, one [`Segmenter::write_next`] call per frame,
/// each written into a buffer the caller provides (e.g. straight into a pool buffer).
///
/// The whole super-frame is validated by [`Segmenter::new`]; after that only a too-small
/// output buffer can make `write_next` fail. Every segment gets the super-frame's headers
/// (VLAN tag and IP/TCP options included) with: IPv4 total length, identification (+1 per
/// segment) and header checksum, or IPv6 payload length; TCP sequence number, FIN/PSH only
/// on the last segment and CWR only on the first, or UDP length; and a full transport
/// checksum. IPv6 extension headers and IPv4 fragments are [`Error::Unsupported`].
#[derive(Debug, Clone)]
pub struct Segmenter<'a> {
    frame: &'a [u8],
    l4: L4,
    v4: bool,
    l3_off: usize,
    l4_off: usize,
    hdr_len: usize,
    payload_end: usize,
    mss: usize,
    ident: u16,
    seq: u32,
    flags: u8,
    offset: usize,
    index: usize,
    count: usize,
}

impl<'a> Segmenter<'a> {
    /// Validates `frame` (the Ethernet frame after the vnet header) against `hdr`.
    pub fn new(frame: &'a [u8], hdr: &VnetHdrRepr) -> Result<Segmenter<'a>> {
        let l4 = match hdr.gso_type {
            GsoType::TcpV4 | GsoType::TcpV6 => L4::Tcp,
            GsoType::UdpL4 => L4::Udp,
            GsoType::None => return Err(Error::Unsupported("segmentation without gso type")),
        };
        if hdr.gso_size == 0 {
            return Err(Error::Malformed("gso size 0"));
        }
        let eth = EthernetFrame::new_checked(frame)?;
        let l3_off = eth.header_len();
        let (v4, l4_off, l3_end, proto, ident) = match eth.ethertype() {
            EtherType::IPV4 => {
                let ip = Ipv4Packet::new_checked(eth.payload())?;
                if ip.is_fragment() {
                    return Err(Error::Unsupported("gso of an ipv4 fragment"));
                }
                let end = l3_off + usize::from(ip.total_len());
                (
                    true,
                    l3_off + ip.header_len(),
                    end,
                    ip.protocol(),
                    ip.ident(),
                )
            }
            EtherType::IPV6 => {
                let ip = Ipv6Packet::new_checked(eth.payload())?;
                let end = l3_off + ipv6::HEADER_LEN + usize::from(ip.payload_len());
                (false, l3_off + ipv6::HEADER_LEN, end, ip.next_header(), 0)
            }
            _ => return Err(Error::Unsupported("gso of a non-ip frame")),
        };
        match (hdr.gso_type, v4) {
            (GsoType::TcpV4, false) | (GsoType::TcpV6, true) => {
                return Err(Error::Malformed("gso type does not match ip version"))
            }
            _ => {}
        }
        let want = if l4 == L4::Tcp {
            IpProtocol::TCP
        } else {
            IpProtocol::UDP
        };
        if proto != want {
            return Err(if v4 {
                Error::Malformed("gso type does not match protocol")
            } else {
                Error::Unsupported("gso with ipv6 extension headers")
            });
        }
        // l3_end lies within `frame`: the IP view checked its length fields.
        let l4buf = &frame[l4_off..l3_end];
        let (l4_hlen, seq, flags) = match l4 {
            L4::Tcp => {
                let t = TcpPacket::new_checked(l4buf)?;
                (t.header_len(), t.seq_number(), t.flags())
            }
            L4::Udp => {
                check_len(l4buf, udp::HEADER_LEN)?;
                (udp::HEADER_LEN, 0, 0)
            }
        };
        let hdr_len = l4_off + l4_hlen;
        let payload = l3_end - hdr_len;
        let mss = usize::from(hdr.gso_size).min(payload.max(1));
        let count = payload.div_ceil(mss).max(1);
        Ok(Segmenter {
            frame,
            l4,
            v4,
            l3_off,
            l4_off,
            hdr_len,
            payload_end: l3_end,
            mss,
            ident,
            seq,
            flags,
            offset: hdr_len,
            index: 0,
            count,
        })
    }

    /// Number of frames this super-frame yields.
    pub fn segment_count(&self) -> usize {
        self.count
    }

    /// Length of the longest frame `write_next` writes (the size an output buffer needs).
    pub fn max_segment_len(&self) -> usize {
        self.hdr_len + self.mss
    }

    /// Writes the next frame at the start of `out` and returns its length, or `None` when
    /// all frames have been written. On [`Error::BufferTooSmall`] nothing is consumed.
    pub fn write_next(&mut self, out: &mut [u8]) -> Result<Option<usize>> {
        if self.index >= self.count {
            return Ok(None);
        }
        let chunk = (self.payload_end - self.offset).min(self.mss);
        let seg_len = self.hdr_len + chunk;
        check_out(out, seg_len)?;
        let out = &mut out[..seg_len];
        out[..self.hdr_len].copy_from_slice(&self.frame[..self.hdr_len]);
        out[self.hdr_len..].copy_from_slice(&self.frame[self.offset..self.offset + chunk]);
        let l3_len = seg_len - self.l3_off;
        let ph = if self.v4 {
            let mut ip = Ipv4Packet::new_unchecked(&mut out[self.l3_off..]);
            // Fits: the super-frame's total length did, and l3_len is not larger.
            ip.set_total_len(l3_len as u16);
            ip.set_ident(self.ident.wrapping_add(self.index as u16));
            ip.fill_checksum();
            ip.pseudo_header()
        } else {
            let mut ip = Ipv6Packet::new_unchecked(&mut out[self.l3_off..]);
            ip.set_payload_len((l3_len - ipv6::HEADER_LEN) as u16);
            ip.pseudo_header()
        };
        let last = self.index + 1 == self.count;
        match self.l4 {
            L4::Tcp => {
                let mut t = TcpPacket::new_unchecked(&mut out[self.l4_off..]);
                t.set_seq_number(self.seq.wrapping_add((self.offset - self.hdr_len) as u32));
                let mut f = self.flags;
                if !last {
                    f &= !(tcp::FLAG_FIN | tcp::FLAG_PSH);
                }
                if self.index > 0 {
                    f &= !tcp::FLAG_CWR;
                }
                t.set_flags(f);
                t.fill_checksum(&ph);
            }
            L4::Udp => {
                let mut u = UdpPacket::new_unchecked(&mut out[self.l4_off..]);
                u.set_len((seg_len - self.l4_off) as u16);
                u.fill_checksum(&ph);
            }
        }
        self.offset += chunk;
        self.index += 1;
        Ok(Some(seg_len))
    }
}

fn segment_with(
    frame: &[u8],
    hdr: &VnetHdrRepr,
    scratch: &mut [u8],
    emit: &mut dyn FnMut(&[u8]),
) -> Result<usize> {
    let mut seg = Segmenter::new(frame, hdr)?;
    check_out(scratch, seg.max_segment_len())?;
    let mut n = 0;
    while let Some(len) = seg.write_next(scratch)? {
        emit(&scratch[..len]);
        n += 1;
    }
    Ok(n)
}

/// Segments a TCP GSO super-frame (`TCPV4`/`TCPV6`): each wire frame is built in `scratch`
/// (at least [`Segmenter::max_segment_len`] bytes, checked before anything is emitted) and
/// handed to `emit`. Returns the number of frames.
pub fn segment_tcp(
    frame: &[u8],
    hdr: &VnetHdrRepr,
    scratch: &mut [u8],
    mut emit: impl FnMut(&[u8]),
) -> Result<usize> {
    if !matches!(hdr.gso_type, GsoType::TcpV4 | GsoType::TcpV6) {
        return Err(Error::Unsupported("not a tcp gso frame"));
    }
    segment_with(frame, hdr, scratch, &mut emit)
}

/// Segments a UDP GSO super-frame (`UDP_L4`), like [`segment_tcp`].
pub fn segment_udp(
    frame: &[u8],
    hdr: &VnetHdrRepr,
    scratch: &mut [u8],
    mut emit: impl FnMut(&[u8]),
) -> Result<usize> {
    if hdr.gso_type != GsoType::UdpL4 {
        return Err(Error::Unsupported("not a udp gso frame"));
    }
    segment_with(frame, hdr, scratch, &mut emit)
}

/// Everything a port without offloads needs: a GSO frame is segmented through `scratch`, any
/// other frame gets its partial checksum completed in place; the resulting frames go to
/// `emit`. Returns the number of frames.
pub fn resolve_offloads(
    frame: &mut [u8],
    hdr: &VnetHdrRepr,
    scratch: &mut [u8],
    mut emit: impl FnMut(&[u8]),
) -> Result<usize> {
    match hdr.gso_type {
        GsoType::None => {
            complete_checksum(frame, hdr)?;
            emit(frame);
            Ok(1)
        }
        GsoType::TcpV4 | GsoType::TcpV6 | GsoType::UdpL4 => {
            segment_with(frame, hdr, scratch, &mut emit)
        }
    }
}

#[cfg(test)]
mod tests;
