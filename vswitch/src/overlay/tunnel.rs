//! The tunnel engine, run by its own thread (one epoll set over the tunnel socket, every
//! attached VNI's socketpair end (token = the VNI) and a stop eventfd) or from a datapath
//! worker's event loop (`push`/`flush` for frames its switches send, `service_underlay` with
//! a sink that switches what arrives); the protocol work below is the same for both.
//!
//! Frames from a pair are read back to back into one buffer, each with `readv` (frames
//! pushed by a worker are copied there the same way): the 10-byte
//! virtio-net header goes to a scratch array and the frame lands 8 bytes further than the end
//! of the previous datagram, where its VXLAN header is then written. So a batch is one run of
//! datagrams with no copy. The port takes offloads (the datapath hands over 64 KiB TSO frames
//! and partial checksums whole, in one message): such a frame is segmented (or its checksum
//! completed) here, each segment copied into the run behind its own VXLAN header.
//! Consecutive equal-sized datagrams for one VTEP (a TCP stream) leave with one UDP GSO
//! `sendmsg`; everything else goes out with `sendmmsg`. On the way in, consecutive TCP
//! segments of one flow are merged back into one TSO frame (module `gro`); other frames go to
//! the switch with a `writev` of a zero (`NONE`) virtio-net header and the inner frame within
//! the receive buffer. Nothing here allocates after `Engine::new`, and no datagram can make
//! it panic (all slicing is checked by [`encap::decapsulate`] or guarded by lengths).

use std::io;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::sync::Arc;

use encap::{
    decapsulate, flow_source_port, RecvBatch, TunnelSocket, VxlanRepr, GSO_MAX_SEGMENTS,
    HEADER_LEN, MAX_DATAGRAM, RECV_BUF_MAX,
};

use super::gro::{self, Gro};
use super::{Shared, Table, TunnelStats, SOCKET_TOKEN, STOP_TOKEN};
use crate::datapath::{FRAME_BUF, SCRATCH};
use crate::port::tap::VNET_HDR_LEN;
use crate::wire::vnet_hdr::resolve_offloads;
use crate::wire::{MacAddr, VnetHdr, VnetHdrRepr};

/// Frames read from a switch (and datagrams received) per batch.
pub const BATCH: usize = 64;
/// Datagrams one batch may hold: segments of TSO frames included.
const SPANS: usize = 4 * BATCH;
/// Datagrams per `send_batch` call (its own chunk size).
const SEND_LIST: usize = encap::SEND_BATCH_MAX;
/// Shortest inner frame: an Ethernet header.
const ETH_LEN: usize = 14;
/// The virtio-net header of every frame handed to the switch: no offload.
const NONE_HDR: [u8; VNET_HDR_LEN] = [0; VNET_HDR_LEN];
/// Receive rounds per wake-up before waiting again (fairness between the two directions).
const RX_ROUNDS: usize = 4;
/// Bytes of the transmit buffer: a batch of MTU-sized frames with room for one more of the
/// largest size and its segments (a read never starts with less than `ROOM` left).
const TX_BUF: usize = 4 * FRAME_BUF;
/// Room a read needs: the largest frame, and as much again for its segments' headers.
const ROOM: usize = 2 * FRAME_BUF;
const UNSPEC: SocketAddr = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0));

/// The tunnel's protocol work (encapsulation, segmentation, GSO/GRO, filtering, counters):
/// run by its own thread ([`Engine::run`]) over socketpair ports, or from a datapath worker's
/// event loop ([`push`](Engine::push)/[`flush`](Engine::flush) on the way out,
/// [`service_underlay`](Engine::service_underlay) with a delivery sink on the way in).
pub(crate) struct Engine {
    /// The socket on the data-path port: receives, and sends when `senders` is empty.
    sock: TunnelSocket,
    /// Send-only sockets, one outer source port each; a datagram leaves on the one its inner
    /// flow hashes to.
    senders: Vec<TunnelSocket>,
    /// The thread's epoll set (`None` when run by a datapath worker).
    epfd: Option<Arc<OwnedFd>>,
    shared: Arc<Shared>,
    /// The VNI of the datagrams in the transmit batch, frames taken for it and frames dropped
    /// as bad (one VNI per batch: its routes are looked up under one lock).
    tx_vni: Option<u32>,
    tx_read: u64,
    tx_bad: u64,
    /// End of the datagrams in `buf` and their count (`spans[..tx_count]`).
    tx_off: usize,
    tx_count: usize,
    /// Datagrams of the current batch, back to back.
    buf: Box<[u8]>,
    /// (start, length) of each datagram in `buf`.
    spans: [(usize, usize); SPANS],
    /// The sender of each datagram (by its inner flow, hashed once per frame read).
    span_lanes: [u16; SPANS],
    /// Where each frame's virtio-net header is read to.
    vnet_scratch: [u8; VNET_HDR_LEN],
    /// A frame with offloads, copied out of `buf` to be segmented back into it.
    stage: Box<[u8]>,
    /// The segmenter's scratch space.
    seg_scratch: Box<[u8]>,
    rx: RecvBatch,
    /// Received TCP segments being merged, and the VNI and pair they go to.
    gro: Gro,
    gro_to: (u32, RawFd),
}

/// Where one datagram goes.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Route {
    One(SocketAddr),
    Flood,
}

impl Engine {
    pub(crate) fn new(
        sock: TunnelSocket,
        senders: Vec<TunnelSocket>,
        epfd: Option<Arc<OwnedFd>>,
        shared: Arc<Shared>,
    ) -> Engine {
        Engine {
            sock,
            senders,
            epfd,
            shared,
            tx_vni: None,
            tx_read: 0,
            tx_bad: 0,
            tx_off: 0,
            tx_count: 0,
            buf: vec![0u8; TX_BUF].into_boxed_slice(),
            spans: [(0, 0); SPANS],
            span_lanes: [0; SPANS],
            vnet_scratch: [0; VNET_HDR_LEN],
            stage: vec![0u8; FRAME_BUF].into_boxed_slice(),
            seg_scratch: vec![0u8; SCRATCH].into_boxed_slice(),
            rx: RecvBatch::new(BATCH, RECV_BUF_MAX),
            gro: Gro::default(),
            gro_to: (0, -1),
        }
    }

    /// The receive socket (for a worker's epoll set).
    pub(crate) fn socket_fd(&self) -> RawFd {
        self.sock.as_raw_fd()
    }

    /// Runs until the stop eventfd fires.
    pub(crate) fn run(mut self) {
        let Some(epfd) = self.epfd.clone() else {
            return;
        };
        let mut events = [libc::epoll_event { events: 0, u64: 0 }; 64];
        loop {
            // SAFETY: events is a valid array of its length.
            let n = unsafe {
                libc::epoll_wait(
                    epfd.as_raw_fd(),
                    events.as_mut_ptr(),
                    events.len() as i32,
                    -1,
                )
            };
            if n < 0 {
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                tracing::warn!("tunnel epoll_wait: {e}");
                return;
            }
            for ev in events.iter().take(n as usize) {
                match ev.u64 {
                    STOP_TOKEN => return,
                    SOCKET_TOKEN => self.service_underlay(&mut |_, _, _| false),
                    // Tokens other than the two above are VNIs (24 bits).
                    vni => self.service_switch(vni as u32),
                }
            }
        }
    }

    /// Reads a batch of frames from `vni`'s switch and sends them.
    fn service_switch(&mut self, vni: u32) {
        let Some(pair) = self
            .shared
            .table()
            .vnis
            .get(&vni)
            .and_then(|v| v.pair.clone())
        else {
            return;
        };
        let fd = pair.as_raw_fd();
        self.tx_vni = Some(vni);
        let mut open = true;
        let mut frames = 0;
        while frames < BATCH && self.has_room() {
            let off = self.tx_off;
            let frame_at = off + HEADER_LEN;
            let room = FRAME_BUF - VNET_HDR_LEN;
            let iov = [
                libc::iovec {
                    iov_base: self.vnet_scratch.as_mut_ptr().cast(),
                    iov_len: VNET_HDR_LEN,
                },
                libc::iovec {
                    // In bounds: off + ROOM <= buf.len() and HEADER_LEN < VNET_HDR_LEN.
                    iov_base: self.buf[frame_at..frame_at + room].as_mut_ptr().cast(),
                    iov_len: room,
                },
            ];
            // SAFETY: both iovecs point at our own buffers of their lengths.
            let r = unsafe { libc::readv(fd, iov.as_ptr(), 2) };
            if r == 0 {
                open = false;
                break;
            }
            if r < 0 {
                let e = io::Error::last_os_error();
                match e.kind() {
                    io::ErrorKind::Interrupted => continue,
                    io::ErrorKind::WouldBlock => {}
                    _ => open = false,
                }
                break;
            }
            frames += 1;
            // A full read may be a truncated message: drop it as well.
            let r = r as usize;
            let len = if r < FRAME_BUF { r } else { 0 };
            self.take_frame(vni, len);
        }
        if !open {
            let mut t = self.shared.table();
            if let Some(v) = t.vnis.get_mut(&vni) {
                if v.pair.as_ref().is_some_and(|p| Arc::ptr_eq(p, &pair)) {
                    v.open = false;
                }
            }
            drop(t);
            if let Some(ep) = &self.epfd {
                let _ = epoll_del(ep.as_raw_fd(), fd);
            }
        }
        self.flush();
    }

    /// Whether the transmit batch has room for one more frame of the largest size.
    fn has_room(&self) -> bool {
        self.tx_count + BATCH <= SPANS && self.buf.len() - self.tx_off >= ROOM
    }

    /// Takes the frame of `vni` whose virtio-net header is in `vnet_scratch` and whose
    /// `len - VNET_HDR_LEN` bytes lie at `tx_off + HEADER_LEN` into the transmit batch
    /// (`len` 0: a message that did not fit, dropped as bad).
    fn take_frame(&mut self, vni: u32, len: usize) {
        self.tx_read += 1;
        let off = self.tx_off;
        let frame_len = len.saturating_sub(VNET_HDR_LEN);
        if len < VNET_HDR_LEN || frame_len < ETH_LEN {
            self.tx_bad += 1;
            return;
        }
        let at = off + HEADER_LEN;
        let lane = self.lane_of(&self.buf[at..at + frame_len]);
        if self.vnet_scratch[..2] == [0, 0] {
            if frame_len + HEADER_LEN > MAX_DATAGRAM
                || (VxlanRepr { vni })
                    .emit(&mut self.buf[off..off + HEADER_LEN])
                    .is_err()
            {
                self.tx_bad += 1;
                return;
            }
            // No offload (flags and GSO type zero): the frame is complete where it lies.
            self.spans[self.tx_count] = (off, HEADER_LEN + frame_len);
            self.span_lanes[self.tx_count] = lane;
            self.tx_off += HEADER_LEN + frame_len;
            self.tx_count += 1;
        } else {
            let (mut off, mut count) = (self.tx_off, self.tx_count);
            if !self.resolve(vni, frame_len, &mut off, &mut count) {
                self.tx_bad += 1;
            }
            // Every segment of a frame is of its flow.
            self.span_lanes[self.tx_count..count].fill(lane);
            (self.tx_off, self.tx_count) = (off, count);
        }
    }

    /// The sender index for an inner frame: its flow hash mapped onto the senders.
    fn lane_of(&self, inner: &[u8]) -> u16 {
        match self.senders.len() {
            0 | 1 => 0,
            n => flow_source_port(inner, (0, (n - 1).min(usize::from(u16::MAX)) as u16)),
        }
    }

    /// Adds `whole` (virtio-net header + frame), a frame a worker's switch sent to the tunnel
    /// port of `vni`, to the transmit batch: `false` when the batch holds another VNI or has
    /// no room (flush first). The frame is copied once, behind its VXLAN header.
    pub(crate) fn push(&mut self, vni: u32, whole: &[u8]) -> bool {
        if self.tx_vni.is_some_and(|v| v != vni) || !self.has_room() {
            return false;
        }
        self.tx_vni = Some(vni);
        let at = self.tx_off + HEADER_LEN;
        let fits = whole.len() < FRAME_BUF && whole.len() >= VNET_HDR_LEN;
        if fits {
            self.vnet_scratch.copy_from_slice(&whole[..VNET_HDR_LEN]);
            let frame = &whole[VNET_HDR_LEN..];
            self.buf[at..at + frame.len()].copy_from_slice(frame);
        }
        self.take_frame(vni, if fits { whole.len() } else { 0 });
        true
    }

    /// Sends the transmit batch (locking the forwarding table).
    pub(crate) fn flush(&mut self) {
        if self.tx_vni.is_none() {
            return;
        }
        let shared = self.shared.clone();
        let mut table = shared.table();
        self.flush_with(&mut table);
    }

    /// Sends the transmit batch with the forwarding table already locked by the caller.
    pub(crate) fn flush_with(&mut self, table: &mut Table) {
        let Some(vni) = self.tx_vni.take() else {
            return;
        };
        let (count, read, bad) = (self.tx_count, self.tx_read, self.tx_bad);
        (self.tx_off, self.tx_count, self.tx_read, self.tx_bad) = (0, 0, 0, 0);
        self.send(table, vni, count, read, bad);
    }

    /// Segments (or completes the checksum of) the frame at `off + HEADER_LEN` whose
    /// virtio-net header is in `vnet_scratch`, writing the results as datagrams from `off`
    /// on; `false` when the frame or header is invalid or a segment did not fit.
    fn resolve(&mut self, vni: u32, frame_len: usize, off: &mut usize, count: &mut usize) -> bool {
        let Some(repr) = VnetHdr::new_checked(&self.vnet_scratch[..])
            .ok()
            .and_then(|h| VnetHdrRepr::parse(&h).ok())
        else {
            return false;
        };
        let at = *off + HEADER_LEN;
        let (Some(stage), Some(frame)) = (
            self.stage.get_mut(..frame_len),
            self.buf.get(at..at + frame_len),
        ) else {
            return false;
        };
        stage.copy_from_slice(frame);
        let (buf, spans) = (&mut self.buf, &mut self.spans);
        let mut all = true;
        let r = resolve_offloads(stage, &repr, &mut self.seg_scratch, |seg| {
            let end = *off + HEADER_LEN + seg.len();
            let fits = *count < SPANS && end <= buf.len() && HEADER_LEN + seg.len() <= MAX_DATAGRAM;
            if !fits
                || (VxlanRepr { vni })
                    .emit(&mut buf[*off..*off + HEADER_LEN])
                    .is_err()
            {
                all = false;
                return;
            }
            buf[*off + HEADER_LEN..end].copy_from_slice(seg);
            spans[*count] = (*off, HEADER_LEN + seg.len());
            *off = end;
            *count += 1;
        });
        r.is_ok() && all
    }

    /// Sends datagrams `0..count` of the batch to their VTEP(s) and counts.
    fn send(&mut self, table: &mut Table, vni: u32, count: usize, read: u64, bad: u64) {
        let Some(v) = table.vnis.get_mut(&vni) else {
            return;
        };
        let stats = &mut v.stats;
        stats.tx_frames += read;
        stats.dropped.bad_frame += bad;
        let route = |i: usize| -> Route {
            let (start, _) = self.spans[i];
            let dst = &self.buf[start + HEADER_LEN..start + HEADER_LEN + 6];
            if dst[0] & 1 != 0 {
                return Route::Flood;
            }
            MacAddr::from_bytes(dst)
                .ok()
                .and_then(|m| v.macs.get(&m).copied())
                .map_or(Route::Flood, Route::One)
        };
        let datagram = |i: usize| {
            let (start, len) = self.spans[i];
            &self.buf[start..start + len]
        };
        // The sender of datagram i: by its inner flow (so one flow keeps one source port).
        let lane = |i: usize| usize::from(self.span_lanes[i]);
        let socks = if self.senders.is_empty() {
            std::slice::from_ref(&self.sock)
        } else {
            &self.senders[..]
        };
        let mut out = Outbox::new(socks);
        let mut not_flooded = 0u64;
        let mut no_peer = 0u64;
        let mut i = 0;
        while i < count {
            match route(i) {
                Route::One(to) => {
                    // A run of equal-sized datagrams (the last may be shorter) for `to`.
                    // A run of one flow, so one GSO send leaves from one source port.
                    let (start, size) = self.spans[i];
                    let at = lane(i);
                    let sock = &socks[at];
                    let mut j = i + 1;
                    let mut total = size;
                    while j < count
                        && j - i < GSO_MAX_SEGMENTS
                        && self.spans[j].1 <= size
                        && total + self.spans[j].1 <= MAX_DATAGRAM
                        && route(j) == Route::One(to)
                        && lane(j) == at
                    {
                        total += self.spans[j].1;
                        j += 1;
                        if self.spans[j - 1].1 < size {
                            break;
                        }
                    }
                    if j - i > 1 && sock.gso_enabled() {
                        // Keep the order: what is queued goes first.
                        out.flush();
                        let segments = (j - i) as u64;
                        match sock.send_gso(to, &self.buf[start..start + total], size) {
                            Ok(k) => {
                                out.sent += k as u64;
                                out.errors += segments.saturating_sub(k as u64);
                            }
                            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                                out.errors += segments
                            }
                            // EINVAL (segments over the path MTU) and the like: one by one.
                            Err(_) => (i..j).for_each(|k| out.push(at, to, datagram(k))),
                        }
                    } else {
                        (i..j).for_each(|k| out.push(at, to, datagram(k)));
                    }
                    i = j;
                }
                Route::Flood => {
                    if !v.flood {
                        not_flooded += 1;
                    } else if v.peers.is_empty() {
                        no_peer += 1;
                    } else {
                        let at = lane(i);
                        for &p in &v.peers {
                            out.push(at, p, datagram(i));
                        }
                    }
                    i += 1;
                }
            }
        }
        out.flush();
        let stats: &mut TunnelStats = &mut v.stats;
        stats.tx_datagrams += out.sent;
        stats.dropped.send_error += out.errors;
        stats.dropped.not_flooded += not_flooded;
        stats.dropped.no_peer += no_peer;
    }

    /// Receives datagrams, filters and decapsulates them towards their switches: a VNI with
    /// a socketpair gets its frames written there, a VNI attached inline (`Vni::inline`) has
    /// them handed to `sink(vni, vnet header, frame)` (`false`: not taken), with the table
    /// locked (so the sink must not lock it).
    pub(crate) fn service_underlay(&mut self, sink: &mut Sink<'_>) {
        for _ in 0..RX_ROUNDS {
            let before = self.rx.truncated();
            match self.sock.recv_batch(&mut self.rx) {
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => return,
            }
            let mut table = self.shared.table();
            table.host.truncated += self.rx.truncated() - before;
            for (src, datagram) in self.rx.iter() {
                table.host.rx_datagrams += 1;
                let Ok((repr, frame)) = decapsulate(datagram) else {
                    table.host.malformed += 1;
                    continue;
                };
                let Some(v) = table.vnis.get_mut(&repr.vni).filter(|v| v.attached()) else {
                    table.host.unknown_vni += 1;
                    continue;
                };
                v.stats.rx_datagrams += 1;
                if !v.vteps.contains(&src.ip().to_canonical()) {
                    v.stats.dropped.unknown_vtep += 1;
                    continue;
                }
                let fd = match (&v.pair, v.open) {
                    (Some(pair), true) => pair.as_raw_fd(),
                    (None, _) if v.inline => INLINE,
                    _ => {
                        v.stats.dropped.switch_full += 1;
                        continue;
                    }
                };
                let to = (repr.vni, fd);
                let seg = gro::segment(frame);
                if let Some(seg) = &seg {
                    if self.gro_to == to && self.gro.append(frame, seg) {
                        continue;
                    }
                }
                flush_gro(&mut self.gro, self.gro_to, &mut table, sink);
                if let Some(seg) = &seg {
                    if self.gro.start(frame, seg) {
                        self.gro_to = to;
                        continue;
                    }
                }
                let ok = deliver(fd, repr.vni, &NONE_HDR, frame, sink);
                if let Some(v) = table.vnis.get_mut(&repr.vni) {
                    count_delivery(&mut v.stats, ok, 1);
                }
            }
            // The table lock keeps the pair open until the pending frame is out.
            flush_gro(&mut self.gro, self.gro_to, &mut table, sink);
        }
    }
}

/// Where decapsulated frames of inline VNIs go: `(vni, vnet header, frame)`, `true` when
/// taken.
pub(crate) type Sink<'a> = dyn FnMut(u32, &[u8; VNET_HDR_LEN], &[u8]) -> bool + 'a;

/// The "fd" of an inline VNI: frames go to the sink.
const INLINE: RawFd = -1;

/// One decapsulated frame to its pair (`fd`) or, for an inline VNI, to `sink`.
fn deliver(
    fd: RawFd,
    vni: u32,
    hdr: &[u8; VNET_HDR_LEN],
    frame: &[u8],
    sink: &mut Sink<'_>,
) -> bool {
    if fd == INLINE {
        sink(vni, hdr, frame)
    } else {
        write_frame(fd, hdr, frame)
    }
}

/// Sends the frame `gro` holds (if any) to `to` = (VNI, pair) and counts.
fn flush_gro(gro: &mut Gro, to: (u32, RawFd), table: &mut Table, sink: &mut Sink<'_>) {
    if let Some((ok, n)) = gro.flush(|hdr, frame| deliver(to.1, to.0, hdr, frame, sink)) {
        if let Some(v) = table.vnis.get_mut(&to.0) {
            count_delivery(&mut v.stats, ok, u64::from(n));
        }
    }
}

fn count_delivery(stats: &mut TunnelStats, ok: bool, frames: u64) {
    if ok {
        stats.rx_frames += frames;
    } else {
        stats.dropped.switch_full += frames;
    }
}

/// Datagrams waiting for `sendmmsg`, on the stack, each with the index of its sender.
struct Outbox<'a> {
    socks: &'a [TunnelSocket],
    list: [(SocketAddr, &'a [u8]); SEND_LIST],
    lanes: [usize; SEND_LIST],
    n: usize,
    sent: u64,
    errors: u64,
}

impl<'a> Outbox<'a> {
    fn new(socks: &'a [TunnelSocket]) -> Self {
        Outbox {
            socks,
            list: [(UNSPEC, &[]); SEND_LIST],
            lanes: [0; SEND_LIST],
            n: 0,
            sent: 0,
            errors: 0,
        }
    }

    fn push(&mut self, lane: usize, to: SocketAddr, datagram: &'a [u8]) {
        if self.n == SEND_LIST {
            self.flush();
        }
        self.list[self.n] = (to, datagram);
        self.lanes[self.n] = lane;
        self.n += 1;
    }

    /// One `sendmmsg` run per sender, in order of first appearance: a flow has one sender,
    /// so its datagrams keep their order.
    fn flush(&mut self) {
        let n = self.n;
        self.n = 0;
        let mut done = [false; SEND_LIST];
        let mut group: [(SocketAddr, &[u8]); SEND_LIST] = [(UNSPEC, &[]); SEND_LIST];
        for i in 0..n {
            if done[i] {
                continue;
            }
            let lane = self.lanes[i];
            let mut g = 0;
            for (j, d) in done.iter_mut().enumerate().take(n).skip(i) {
                if !*d && self.lanes[j] == lane {
                    *d = true;
                    group[g] = self.list[j];
                    g += 1;
                }
            }
            let Some(sock) = self.socks.get(lane).or(self.socks.first()) else {
                self.errors += g as u64;
                continue;
            };
            let (s, e) = flush(sock, &group[..g]);
            self.sent += s;
            self.errors += e;
        }
    }
}

/// Sends `list`; returns (sent, dropped): what the socket does not take is dropped.
fn flush(sock: &TunnelSocket, list: &[(SocketAddr, &[u8])]) -> (u64, u64) {
    let mut off = 0;
    let mut errors = 0u64;
    while off < list.len() {
        match sock.send_batch(&list[off..]) {
            Ok(0) => {
                errors += (list.len() - off) as u64;
                break;
            }
            Ok(k) => off += k,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                errors += (list.len() - off) as u64;
                break;
            }
            Err(_) => {
                errors += 1;
                off += 1;
            }
        }
    }
    ((list.len() as u64).saturating_sub(errors), errors)
}

/// One frame towards the switch (vnet header + frame) as one message; `false` when the
/// socketpair did not take it.
fn write_frame(fd: RawFd, hdr: &[u8; VNET_HDR_LEN], frame: &[u8]) -> bool {
    let iov = [
        libc::iovec {
            iov_base: hdr.as_ptr() as *mut libc::c_void,
            iov_len: hdr.len(),
        },
        libc::iovec {
            iov_base: frame.as_ptr() as *mut libc::c_void,
            iov_len: frame.len(),
        },
    ];
    loop {
        // SAFETY: both iovecs point at live buffers of their lengths; writev only reads them.
        let r = unsafe { libc::writev(fd, iov.as_ptr(), 2) };
        if r >= 0 {
            return true;
        }
        if io::Error::last_os_error().kind() != io::ErrorKind::Interrupted {
            return false;
        }
    }
}

pub(crate) fn epoll_add(ep: RawFd, fd: RawFd, token: u64) -> io::Result<()> {
    let mut ev = libc::epoll_event {
        events: libc::EPOLLIN as u32,
        u64: token,
    };
    // SAFETY: valid epoll and target fds.
    if unsafe { libc::epoll_ctl(ep, libc::EPOLL_CTL_ADD, fd, &mut ev) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

pub(crate) fn epoll_del(ep: RawFd, fd: RawFd) -> io::Result<()> {
    // SAFETY: valid fds; the event argument is ignored for DEL.
    if unsafe { libc::epoll_ctl(ep, libc::EPOLL_CTL_DEL, fd, std::ptr::null_mut()) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}
