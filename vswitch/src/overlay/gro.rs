//! Receive coalescing: consecutive decapsulated TCP segments of one flow are merged into one
//! TSO frame (virtio-net header `GSO_TCPV4/6` + partial checksum) before they go to the
//! switch, so the container's stack (and the datapath) handles one 64 KiB frame instead of
//! ~45 MTU-sized ones, as the kernel's GRO does for its own `vxlan` device.
//!
//! A segment is merged only when it is plain data (ACK, and PSH on the last one), with a
//! valid TCP checksum (the merged frame's checksum is left partial, so nothing downstream
//! checks it again), the same Ethernet, IP and TCP headers as the frame so far but for
//! lengths, IDs and checksums, and the next sequence number. Anything else first flushes
//! what is pending. Pure logic over byte slices: no I/O, never panics.

use crate::port::tap::VNET_HDR_LEN;
use crate::wire::checksum::{self, PseudoHeader};
use crate::wire::vnet_hdr::{GsoType, FLAG_NEEDS_CSUM};
use crate::wire::{IpProtocol, VnetHdrRepr};

/// Largest merged frame: an IP packet of 64 KiB and its Ethernet header.
pub(crate) const MAX_FRAME: usize = 14 + 65_535;
/// Most segments in one merged frame.
const MAX_SEGMENTS: u32 = 64;
const ETH: usize = 14;
const TCP_ACK: u8 = 0x10;
const TCP_PSH: u8 = 0x08;

/// What a data segment looks like, after checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Segment {
    v6: bool,
    /// Offset of the TCP header.
    l4: usize,
    /// Offset of the payload (all headers).
    hdr_len: usize,
    seq: u32,
    payload: usize,
    psh: bool,
}

/// Parses `frame` as an untagged Ethernet + IPv4 (no options, not fragmented) or IPv6 (no
/// extension headers) + TCP data segment with only ACK (and maybe PSH) set and a valid
/// checksum; `None` for anything else.
pub(crate) fn segment(frame: &[u8]) -> Option<Segment> {
    let ethertype = u16::from_be_bytes([*frame.get(12)?, *frame.get(13)?]);
    let (v6, l4, ph) = match ethertype {
        0x0800 => {
            let ip = frame.get(ETH..ETH + 20)?;
            let total = usize::from(u16::from_be_bytes([ip[2], ip[3]]));
            let frag = u16::from_be_bytes([ip[6], ip[7]]) & 0x3fff;
            if ip[0] != 0x45 || total != frame.len() - ETH || frag != 0 || ip[9] != 6 {
                return None;
            }
            let a = |o: usize| [ip[o], ip[o + 1], ip[o + 2], ip[o + 3]].into();
            (
                false,
                ETH + 20,
                PseudoHeader::V4 {
                    src: a(12),
                    dst: a(16),
                },
            )
        }
        0x86dd => {
            let ip = frame.get(ETH..ETH + 40)?;
            let payload = usize::from(u16::from_be_bytes([ip[4], ip[5]]));
            if ip[0] >> 4 != 6 || payload != frame.len() - ETH - 40 || ip[6] != 6 {
                return None;
            }
            let a = |o: usize| <[u8; 16]>::try_from(&ip[o..o + 16]).ok().map(Into::into);
            let ph = PseudoHeader::V6 {
                src: a(8)?,
                dst: a(24)?,
            };
            (true, ETH + 40, ph)
        }
        _ => return None,
    };
    let tcp = frame.get(l4..)?;
    let doff = usize::from(*tcp.get(12)? >> 4) * 4;
    let flags = *tcp.get(13)?;
    if doff < 20 || tcp.len() <= doff || flags & !TCP_PSH != TCP_ACK {
        return None;
    }
    let sum = ph.sum(IpProtocol::TCP, tcp.len() as u32);
    if !checksum::verify(checksum::accumulate(sum, tcp)) {
        return None;
    }
    Some(Segment {
        v6,
        l4,
        hdr_len: l4 + doff,
        seq: u32::from_be_bytes([tcp[4], tcp[5], tcp[6], tcp[7]]),
        payload: tcp.len() - doff,
        psh: flags & TCP_PSH != 0,
    })
}

/// The frame being merged.
pub(crate) struct Gro {
    buf: Box<[u8]>,
    len: usize,
    first: Option<Segment>,
    segments: u32,
    next_seq: u32,
    /// Another segment may follow (the last one was full-sized, without PSH).
    open: bool,
}

impl Default for Gro {
    fn default() -> Self {
        Gro {
            buf: vec![0u8; MAX_FRAME].into_boxed_slice(),
            len: 0,
            first: None,
            segments: 0,
            next_seq: 0,
            open: false,
        }
    }
}

impl Gro {
    /// Adds `frame` (parsed as `seg`) to the pending frame if it continues it; `false` when
    /// it does not (flush, then [`start`](Self::start) with it).
    pub(crate) fn append(&mut self, frame: &[u8], seg: &Segment) -> bool {
        let Some(first) = self.first else {
            return false;
        };
        let end = self.len + seg.payload;
        let same_headers = |buf: &[u8]| -> Option<bool> {
            let (a, b) = (buf, frame);
            let eq = |r: std::ops::Range<usize>| a.get(r.clone()) == b.get(r);
            let l4 = first.l4;
            let ip_same = if first.v6 {
                eq(ETH..ETH + 4) && eq(ETH + 6..ETH + 40)
            } else {
                eq(ETH..ETH + 2) && eq(ETH + 6..ETH + 10) && eq(ETH + 12..ETH + 20)
            };
            // Ports, ack, data offset, flags (PSH aside), window, urgent pointer, options.
            let flags = |x: &[u8]| x.get(l4 + 13).map(|f| f | TCP_PSH);
            Some(
                eq(0..ETH)
                    && ip_same
                    && eq(l4..l4 + 4)
                    && eq(l4 + 8..l4 + 13)
                    && flags(a) == flags(b)
                    && eq(l4 + 14..l4 + 16)
                    && eq(l4 + 18..first.hdr_len),
            )
        };
        if !self.open
            || seg.v6 != first.v6
            || seg.hdr_len != first.hdr_len
            || seg.seq != self.next_seq
            || seg.payload > first.payload
            || self.segments >= MAX_SEGMENTS
            || end > self.buf.len()
            || end - ETH > 65_535
            || same_headers(&self.buf[..first.hdr_len]) != Some(true)
        {
            return false;
        }
        let Some(data) = frame.get(seg.hdr_len..) else {
            return false;
        };
        self.buf[self.len..end].copy_from_slice(data);
        self.len = end;
        self.segments += 1;
        self.next_seq = seg.seq.wrapping_add(seg.payload as u32);
        if seg.psh {
            // The PSH of the last segment goes on the merged frame.
            if let Some(f) = self.buf.get_mut(first.l4 + 13) {
                *f |= TCP_PSH;
            }
        }
        self.open = !seg.psh && seg.payload == first.payload;
        true
    }

    /// Starts a new pending frame with `frame` (nothing must be pending); `false` if it
    /// does not fit.
    pub(crate) fn start(&mut self, frame: &[u8], seg: &Segment) -> bool {
        let Some(dst) = self.buf.get_mut(..frame.len()) else {
            return false;
        };
        dst.copy_from_slice(frame);
        self.len = frame.len();
        self.first = Some(*seg);
        self.segments = 1;
        self.next_seq = seg.seq.wrapping_add(seg.payload as u32);
        self.open = !seg.psh;
        true
    }

    /// Hands the pending frame to `emit` (virtio-net header, frame) and clears it. A single
    /// segment goes as it came (`NONE` header); several as one TSO frame with the IP lengths
    /// and header checksum fixed and a partial TCP checksum. Returns `emit`'s answer and the
    /// number of segments, or `None` when nothing was pending.
    pub(crate) fn flush(
        &mut self,
        emit: impl FnOnce(&[u8; VNET_HDR_LEN], &[u8]) -> bool,
    ) -> Option<(bool, u32)> {
        let first = self.first.take()?;
        let segments = std::mem::take(&mut self.segments);
        let mut hdr = [0u8; VNET_HDR_LEN];
        let frame = &mut self.buf[..self.len];
        if segments > 1 {
            let tcp_len = self.len - first.l4;
            let ph = if first.v6 {
                let ip_payload = (self.len - ETH - 40) as u16;
                frame[ETH + 4..ETH + 6].copy_from_slice(&ip_payload.to_be_bytes());
                let a = |o: usize| {
                    let mut b = [0u8; 16];
                    b.copy_from_slice(&frame[ETH + o..ETH + o + 16]);
                    b.into()
                };
                PseudoHeader::V6 {
                    src: a(8),
                    dst: a(24),
                }
            } else {
                let total = (self.len - ETH) as u16;
                frame[ETH + 2..ETH + 4].copy_from_slice(&total.to_be_bytes());
                frame[ETH + 10..ETH + 12].copy_from_slice(&[0, 0]);
                let c = checksum::checksum(&frame[ETH..ETH + 20]);
                frame[ETH + 10..ETH + 12].copy_from_slice(&c.to_be_bytes());
                let a = |o: usize| {
                    [
                        frame[ETH + o],
                        frame[ETH + o + 1],
                        frame[ETH + o + 2],
                        frame[ETH + o + 3],
                    ]
                    .into()
                };
                PseudoHeader::V4 {
                    src: a(12),
                    dst: a(16),
                }
            };
            // Partial checksum: the folded pseudo-header sum, completed by whoever needs it.
            let partial = checksum::fold(ph.sum(IpProtocol::TCP, tcp_len as u32));
            frame[first.l4 + 16..first.l4 + 18].copy_from_slice(&partial.to_be_bytes());
            let repr = VnetHdrRepr {
                flags: FLAG_NEEDS_CSUM,
                gso_type: if first.v6 {
                    GsoType::TcpV6
                } else {
                    GsoType::TcpV4
                },
                ecn: false,
                hdr_len: first.hdr_len as u16,
                gso_size: first.payload as u16,
                csum_start: first.l4 as u16,
                csum_offset: 16,
            };
            if repr.emit(&mut hdr).is_err() {
                return Some((false, segments));
            }
        }
        Some((emit(&hdr, frame), segments))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::testutil::{ip_frame, tcp_segment, v4, v6};
    use crate::wire::vnet_hdr::resolve_offloads;
    use crate::wire::{MacAddr, VnetHdr};

    const A: MacAddr = MacAddr([2, 0x42, 10, 0, 0, 1]);
    const B: MacAddr = MacAddr([2, 0x42, 10, 0, 0, 2]);

    fn seg(ph: PseudoHeader, seq: u32, flags: u8, data: &[u8]) -> Vec<u8> {
        let opts = [1, 1, 8, 10, 0, 0, 0, 1, 0, 0, 0, 2];
        let t = tcp_segment(&ph, (40000, 5201), seq, flags, &opts, data);
        ip_frame(A, B, None, ph, IpProtocol::TCP, &[], &t)
    }

    /// Feeds `frames` through a `Gro` as the tunnel does; returns the messages written.
    fn run(frames: &[Vec<u8>]) -> Vec<(VnetHdrRepr, Vec<u8>)> {
        fn emit(g: &mut Gro, out: &mut Vec<(VnetHdrRepr, Vec<u8>)>) {
            g.flush(|h, f| {
                let repr = VnetHdrRepr::parse(&VnetHdr::new_checked(&h[..]).unwrap()).unwrap();
                out.push((repr, f.to_vec()));
                true
            });
        }
        let mut g = Gro::default();
        let mut out = Vec::new();
        for f in frames {
            let s = segment(f);
            if let Some(s) = &s {
                if g.append(f, s) {
                    continue;
                }
            }
            emit(&mut g, &mut out);
            match &s {
                Some(s) => assert!(g.start(f, s)),
                None => out.push((VnetHdrRepr::NONE, f.clone())),
            }
        }
        emit(&mut g, &mut out);
        out
    }

    /// The segments a message stands for, each as the bytes a NIC would send.
    fn resolve(m: &(VnetHdrRepr, Vec<u8>)) -> Vec<Vec<u8>> {
        let mut f = m.1.clone();
        let mut scratch = vec![0u8; 2048];
        let mut out = Vec::new();
        resolve_offloads(&mut f, &m.0, &mut scratch, |s| out.push(s.to_vec())).unwrap();
        out
    }

    #[test]
    fn merges_a_run_and_resegments_to_the_same_bytes() {
        for ph in [v4("10.0.0.1", "10.0.0.2"), v6("fd00::1", "fd00::2")] {
            let data: Vec<u8> = (0..5000u32).map(|i| (i * 7) as u8).collect();
            let frames: Vec<Vec<u8>> = data
                .chunks(1000)
                .enumerate()
                .map(|(i, c)| {
                    let psh = if i == 4 { TCP_PSH } else { 0 };
                    seg(ph, 7 + 1000 * i as u32, TCP_ACK | psh, c)
                })
                .collect();
            let out = run(&frames);
            assert_eq!(out.len(), 1, "one TSO frame");
            assert_eq!(out[0].0.gso_size, 1000);
            assert_eq!(out[0].0.flags, FLAG_NEEDS_CSUM);
            // Resegmented, the frames are what came in (IPv4 IDs and header checksums aside:
            // the resegmenter numbers them from the first).
            let strip = |f: &[u8]| {
                let mut f = f.to_vec();
                if !matches!(ph, PseudoHeader::V6 { .. }) {
                    f[18..20].fill(0);
                    f[24..26].fill(0);
                }
                f
            };
            let got: Vec<Vec<u8>> = resolve(&out[0]).iter().map(|f| strip(f)).collect();
            let want: Vec<Vec<u8>> = frames.iter().map(|f| strip(f)).collect();
            assert!(got == want, "resegmented frames differ");
        }
    }

    #[test]
    fn what_does_not_continue_the_flow_flushes() {
        let ph = v4("10.0.0.1", "10.0.0.2");
        let d = [0xabu8; 100];
        let other = v4("10.0.0.1", "10.0.0.3");
        let mut bad = seg(ph, 300, TCP_ACK, &d);
        let n = bad.len();
        bad[n - 1] ^= 1; // payload changed: checksum no longer valid
        let frames = vec![
            seg(ph, 100, TCP_ACK, &d),
            seg(ph, 200, TCP_ACK, &d),
            seg(ph, 999, TCP_ACK, &d),         // sequence gap
            seg(other, 1099, TCP_ACK, &d),     // another flow
            seg(ph, 1099, TCP_ACK | 0x01, &d), // FIN: never merged
            bad,                               // bad checksum: passed as is
            seg(ph, 400, TCP_ACK, &d[..50]),   // short: ends the frame
            seg(ph, 450, TCP_ACK, &d[..50]),
            seg(ph, 500, TCP_ACK, &[]), // pure ACK
        ];
        let out = run(&frames);
        let sizes: Vec<usize> = out.iter().map(|m| resolve(m).len()).collect();
        // The two short segments make a flow of their own.
        assert_eq!(sizes, vec![2, 1, 1, 1, 1, 2, 1]);
        // Lone segments go unchanged with no offload.
        for i in [1, 2, 3, 4, 6] {
            assert_eq!(out[i].0, VnetHdrRepr::NONE);
        }
        assert!(out[4].1 == frames[5], "a bad checksum passes untouched");
    }

    /// Mutated runs (bit flips, truncations, swaps) never panic, and whatever comes out
    /// resegments to valid frames carrying exactly the payload bytes that went in merged.
    #[test]
    fn mutated_runs_never_panic() {
        let mut x = 0x2545_f491_4f6c_dd1du64;
        let mut rnd = |n: usize| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x % n as u64) as usize
        };
        for round in 0..300 {
            let ph = if round % 2 == 0 {
                v4("10.0.0.1", "10.0.0.2")
            } else {
                v6("fd00::1", "fd00::2")
            };
            let mut frames: Vec<Vec<u8>> = (0..8u32)
                .map(|i| seg(ph, 1 + 300 * i, TCP_ACK, &[i as u8; 300]))
                .collect();
            for _ in 0..rnd(4) {
                let f = rnd(frames.len());
                match rnd(3) {
                    0 => {
                        let b = rnd(frames[f].len());
                        frames[f][b] ^= 1 << rnd(8);
                    }
                    1 => {
                        let n = rnd(frames[f].len() + 1);
                        frames[f].truncate(n);
                    }
                    _ => frames.swap(f, rnd(8)),
                }
            }
            for m in run(&frames) {
                if m.0 != VnetHdrRepr::NONE {
                    for s in resolve(&m) {
                        assert!(segment(&s).is_some(), "a merged segment is valid again");
                    }
                }
            }
        }
    }

    #[test]
    fn never_panics_on_short_or_odd_frames() {
        let ph = v4("10.0.0.1", "10.0.0.2");
        let f = seg(ph, 1, TCP_ACK, &[1, 2, 3]);
        for n in 0..f.len() {
            assert_eq!(segment(&f[..n]), None);
        }
        let mut v = f.clone();
        v[14] = 0x46; // IP options
        assert_eq!(segment(&v), None);
        let mut g = Gro::default();
        let s = segment(&f).unwrap();
        assert!(!g.append(&f, &s), "nothing pending");
        assert!(g.flush(|_, _| true).is_none());
    }
}
