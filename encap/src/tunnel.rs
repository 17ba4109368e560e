//! The tunnel socket: one non-blocking UDP socket per host, bound to the host's advertise
//! address and the VXLAN port, with batched I/O (`sendmmsg`/`recvmmsg`).
//!
//! socket2 sets the socket up; it has no API for `sendmmsg`/`recvmmsg`, so those go through
//! `libc` on the socket's fd. Neither path allocates per datagram: [`TunnelSocket::send_batch`]
//! builds its `mmsghdr`s on the stack ([`SEND_BATCH_MAX`] at a time) and
//! [`TunnelSocket::recv_batch`] fills a preallocated [`RecvBatch`].
//!
//! # Outer source port
//!
//! A UDP socket has one source port, and `IP_PKTINFO` can choose the source *address* but not
//! the port, so every datagram a `TunnelSocket` sends leaves from its bound port. To put the
//! inner flow on the wire (RFC 7348 §5: the source port is a hash of the inner flow, so
//! underlay ECMP and the receiving NIC's RSS spread the overlay's flows), a sender keeps a pool
//! of send-only sockets ([`TunnelOptions::send_only`]) bound to the same address with
//! ephemeral ports, and sends each datagram on the one its inner flow hashes to
//! ([`flow_source_port`](crate::flow_source_port) mapped to a pool index): one flow always
//! leaves from one port, different flows spread over the pool. A send-only socket takes in
//! nothing (a drop-all socket filter and the smallest receive buffer), so only the socket on
//! the data-path port (4789) receives. Receivers accept any source port (the kernel's `vxlan`
//! device does, and so does [`Filter`](crate::Filter): it checks the VTEP's address only).
//!
//! # UDP GSO and GRO
//!
//! [`TunnelSocket::send_gso`] hands the kernel one buffer of equal-sized datagrams for one peer
//! (`UDP_SEGMENT`, Linux ≥ 4.18), and falls back to `sendmmsg` where the kernel or device lacks
//! it. With [`TunnelOptions::gro`] the socket asks for `UDP_GRO` (Linux ≥ 5.0): the kernel may
//! hand several datagrams of one flow to one `recvmmsg` slot, and [`RecvBatch`] splits them
//! back, so [`RecvBatch::get`] always yields single datagrams. GRO needs buffers of
//! [`RECV_BUF_MAX`] bytes (as [`RecvBatch::default`] has), or coalesced datagrams are dropped
//! as truncated.
//!
//! The socket never sets DF on IPv4/IPv6 (`IP_PMTUDISC_DONT`, like the kernel's `vxlan` device
//! with its default `df unset`): an encapsulated frame larger than the underlay MTU is
//! fragmented by the kernel rather than dropped.

use std::io;
use std::mem;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};

use socket2::{Domain, Protocol, Socket, Type};

use crate::vxlan::MAX_DATAGRAM;

/// Datagrams per `sendmmsg` call (the stack arrays of [`TunnelSocket::send_batch`]); longer
/// batches are sent in several calls.
pub const SEND_BATCH_MAX: usize = 64;
/// Default number of datagrams a [`RecvBatch`] holds.
pub const RECV_BATCH_DEFAULT: usize = 64;
/// Most datagrams one `recvmmsg` call may take (the kernel's `UIO_MAXIOV`).
pub const RECV_BATCH_MAX: usize = 1024;
/// Largest receive buffer worth having: a UDP length field's maximum. Buffers this large never
/// truncate, even datagrams coalesced by GRO.
pub const RECV_BUF_MAX: usize = u16::MAX as usize;
/// Most segments one GSO send or one GRO receive carries (the kernel's `UDP_MAX_SEGMENTS` /
/// `UDP_GRO_CNT_MAX`).
pub const GSO_MAX_SEGMENTS: usize = 64;
/// Bytes of ancillary data room per receive slot (one `UDP_GRO` cmsg needs 24).
const CONTROL_WORDS: usize = 8;
/// Default socket send/receive buffer size requested (the kernel caps it at
/// `net.core.{w,r}mem_max`).
pub const DEFAULT_SOCKET_BUFFER: usize = 4 << 20;

/// Options of [`TunnelSocket::bind_with`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TunnelOptions {
    /// `SO_RCVBUF` to request, `None` for the kernel default.
    pub recv_buffer: Option<usize>,
    /// `SO_SNDBUF` to request, `None` for the kernel default.
    pub send_buffer: Option<usize>,
    /// Set DF on outgoing datagrams (path MTU discovery) instead of letting the kernel fragment.
    pub dont_fragment: bool,
    /// Ask for UDP GRO on receive where the kernel has it (see the [module docs](self)); the
    /// [`RecvBatch`] used must then have [`RECV_BUF_MAX`]-byte buffers.
    pub gro: bool,
    /// A socket that only sends (one of a pool of outer source ports, see the
    /// [module docs](self)): every datagram arriving for it is dropped by a socket filter
    /// before it is queued, its receive buffer is the kernel's minimum, and `gro` and
    /// `recv_buffer` are ignored.
    pub send_only: bool,
}

impl Default for TunnelOptions {
    fn default() -> Self {
        TunnelOptions {
            recv_buffer: Some(DEFAULT_SOCKET_BUFFER),
            send_buffer: Some(DEFAULT_SOCKET_BUFFER),
            dont_fragment: false,
            gro: false,
            send_only: false,
        }
    }
}

/// A non-blocking UDP socket carrying VXLAN datagrams (the UDP payloads: VXLAN header + inner
/// frame) to and from peer VTEPs. See the [module docs](self) for the source port.
#[derive(Debug)]
pub struct TunnelSocket {
    socket: Socket,
    local: SocketAddr,
    /// `UDP_SEGMENT` works (probed at bind, cleared when a GSO send fails with `EIO`).
    gso: AtomicBool,
    /// `UDP_GRO` was enabled.
    gro: bool,
}

impl TunnelSocket {
    /// Binds to `local` (the host's advertise address and the VXLAN port, e.g.
    /// `SocketAddr::new(ip, VXLAN_PORT)`; port 0 picks an ephemeral port) with the default
    /// [`TunnelOptions`].
    pub fn bind(local: SocketAddr) -> io::Result<Self> {
        Self::bind_with(local, &TunnelOptions::default())
    }

    /// Binds to `local` with `options`. The socket is non-blocking and close-on-exec.
    pub fn bind_with(local: SocketAddr, options: &TunnelOptions) -> io::Result<Self> {
        let socket = Socket::new(Domain::for_address(local), Type::DGRAM, Some(Protocol::UDP))?;
        socket.set_nonblocking(true)?;
        // The *FORCE variants pass net.core.{r,w}mem_max (a small default that would drop
        // bursts) when we may (CAP_NET_ADMIN); otherwise the plain ones, capped by it.
        let int = |n: usize| libc::c_int::try_from(n).unwrap_or(libc::c_int::MAX);
        if options.send_only {
            drop_all_input(&socket)?;
            // The kernel rounds this up to its minimum.
            socket.set_recv_buffer_size(0)?;
        } else if let Some(n) = options.recv_buffer {
            if setsockopt_int(&socket, libc::SOL_SOCKET, libc::SO_RCVBUFFORCE, int(n)).is_err() {
                socket.set_recv_buffer_size(n)?;
            }
        }
        if let Some(n) = options.send_buffer {
            if setsockopt_int(&socket, libc::SOL_SOCKET, libc::SO_SNDBUFFORCE, int(n)).is_err() {
                socket.set_send_buffer_size(n)?;
            }
        }
        set_pmtudisc(&socket, local, options.dont_fragment)?;
        socket.bind(&local.into())?;
        let local = socket
            .local_addr()?
            .as_socket()
            .ok_or_else(|| io::Error::other("tunnel socket has no IP address"))?;
        // Probe UDP_SEGMENT: reading it works exactly where the kernel supports it.
        let gso = getsockopt_int(&socket, libc::SOL_UDP, libc::UDP_SEGMENT).is_ok();
        let gro = options.gro
            && !options.send_only
            && setsockopt_int(&socket, libc::SOL_UDP, libc::UDP_GRO, 1).is_ok();
        Ok(TunnelSocket {
            socket,
            local,
            gso: AtomicBool::new(gso),
            gro,
        })
    }

    /// `true` while [`send_gso`](Self::send_gso) uses `UDP_SEGMENT` (not the fallback).
    pub fn gso_enabled(&self) -> bool {
        self.gso.load(Ordering::Relaxed)
    }

    /// `true` when `UDP_GRO` was asked for and enabled.
    pub fn gro_enabled(&self) -> bool {
        self.gro
    }

    /// The bound address (with the actual port when bound to port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// The underlying socket2 socket (for more options; keep it non-blocking).
    pub fn socket(&self) -> &Socket {
        &self.socket
    }

    /// Sends one datagram to `peer`.
    pub fn send_to(&self, peer: SocketAddr, datagram: &[u8]) -> io::Result<usize> {
        self.socket.send_to(datagram, &self.peer_addr(peer).into())
    }

    /// Sends `datagrams` (peer VTEP address, UDP payload) with `sendmmsg`, [`SEND_BATCH_MAX`]
    /// per system call, and returns how many were sent: all of them, or fewer when the socket
    /// buffer filled up or datagram `n` failed. An error is returned only when the very first
    /// datagram could not be sent (`WouldBlock` when the buffer is full; anything else is that
    /// datagram's own error, so the caller should drop it and go on with the rest).
    pub fn send_batch(&self, datagrams: &[(SocketAddr, &[u8])]) -> io::Result<usize> {
        let mut sent = 0;
        for chunk in datagrams.chunks(SEND_BATCH_MAX) {
            // SAFETY: all-zero bytes are valid values of these plain C structs (null
            // pointers, zero lengths).
            let mut addrs: [libc::sockaddr_storage; SEND_BATCH_MAX] = unsafe { mem::zeroed() };
            let mut iovecs: [libc::iovec; SEND_BATCH_MAX] = unsafe { mem::zeroed() };
            let mut hdrs: [libc::mmsghdr; SEND_BATCH_MAX] = unsafe { mem::zeroed() };
            for (i, (peer, data)) in chunk.iter().enumerate() {
                let namelen = write_sockaddr(self.peer_addr(*peer), &mut addrs[i]);
                iovecs[i] = libc::iovec {
                    iov_base: data.as_ptr() as *mut libc::c_void,
                    iov_len: data.len(),
                };
                let h = &mut hdrs[i].msg_hdr;
                h.msg_name = (&mut addrs[i] as *mut libc::sockaddr_storage).cast();
                h.msg_namelen = namelen;
                h.msg_iov = &mut iovecs[i];
                h.msg_iovlen = 1;
            }
            let n = loop {
                // SAFETY: `hdrs[..chunk.len()]` are initialised above and point at `addrs`,
                // `iovecs` and the caller's buffers, all alive for this call; sendmmsg only
                // reads them (and writes `msg_len`).
                let rc = unsafe {
                    libc::sendmmsg(
                        self.socket.as_raw_fd(),
                        hdrs.as_mut_ptr(),
                        chunk.len() as libc::c_uint,
                        libc::MSG_DONTWAIT as _,
                    )
                };
                if rc >= 0 {
                    break rc as usize;
                }
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return if sent == 0 { Err(e) } else { Ok(sent) };
            };
            sent += n;
            if n < chunk.len() {
                break;
            }
        }
        Ok(sent)
    }

    /// Sends `segments`, a run of datagrams of `segment_size` bytes each (the last may be
    /// shorter) for one `peer`, with one UDP GSO `sendmsg`; without GSO, with
    /// [`send_batch`](Self::send_batch). Returns the number of datagrams sent (all of them with
    /// GSO, or as `send_batch` reports). `InvalidInput` for a zero `segment_size`, more than
    /// [`GSO_MAX_SEGMENTS`] segments or more than [`MAX_DATAGRAM`] bytes in all.
    pub fn send_gso(
        &self,
        peer: SocketAddr,
        segments: &[u8],
        segment_size: usize,
    ) -> io::Result<usize> {
        if segment_size == 0
            || segments.len() > MAX_DATAGRAM
            || segments.len().div_ceil(segment_size) > GSO_MAX_SEGMENTS
        {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "GSO batch: zero segment size, too many segments or too many bytes",
            ));
        }
        let count = segments.len().div_ceil(segment_size).max(1);
        if count == 1 {
            return self.send_to(peer, segments).map(|_| 1);
        }
        if self.gso_enabled() {
            match self.sendmsg_gso(peer, segments, segment_size as u16) {
                Ok(()) => return Ok(count),
                // EIO: the route's device cannot checksum GSO segments; stop trying.
                Err(e) if e.raw_os_error() == Some(libc::EIO) => {
                    self.gso.store(false, Ordering::Relaxed);
                }
                Err(e) => return Err(e),
            }
        }
        let mut batch: [(SocketAddr, &[u8]); GSO_MAX_SEGMENTS] = [(peer, &[]); GSO_MAX_SEGMENTS];
        for (slot, chunk) in batch.iter_mut().zip(segments.chunks(segment_size)) {
            slot.1 = chunk;
        }
        self.send_batch(&batch[..count])
    }

    /// One `sendmsg` with a `UDP_SEGMENT` control message.
    fn sendmsg_gso(&self, peer: SocketAddr, data: &[u8], segment_size: u16) -> io::Result<()> {
        // SAFETY: all-zero is valid for these plain C structs.
        let mut addr: libc::sockaddr_storage = unsafe { mem::zeroed() };
        let namelen = write_sockaddr(self.peer_addr(peer), &mut addr);
        let mut iov = libc::iovec {
            iov_base: data.as_ptr() as *mut libc::c_void,
            iov_len: data.len(),
        };
        let mut control = [0u64; CONTROL_WORDS];
        // SAFETY: as above.
        let mut h: libc::msghdr = unsafe { mem::zeroed() };
        h.msg_name = (&mut addr as *mut libc::sockaddr_storage).cast();
        h.msg_namelen = namelen;
        h.msg_iov = &mut iov;
        h.msg_iovlen = 1;
        h.msg_control = control.as_mut_ptr().cast();
        // SAFETY: CMSG_SPACE only computes a size.
        let space = unsafe { libc::CMSG_SPACE(mem::size_of::<u16>() as libc::c_uint) } as usize;
        h.msg_controllen = space as _;
        // SAFETY: `control` (64 bytes, 8-aligned) holds one cmsg of `space` bytes; the header
        // and data pointers come from the CMSG_* helpers over `h`.
        unsafe {
            let cmsg = libc::CMSG_FIRSTHDR(&h);
            (*cmsg).cmsg_level = libc::SOL_UDP;
            (*cmsg).cmsg_type = libc::UDP_SEGMENT;
            (*cmsg).cmsg_len = libc::CMSG_LEN(mem::size_of::<u16>() as libc::c_uint) as _;
            std::ptr::write_unaligned(libc::CMSG_DATA(cmsg).cast::<u16>(), segment_size);
        }
        loop {
            // SAFETY: `h` points at live `addr`, `iov`, `control` and the caller's data.
            let rc = unsafe { libc::sendmsg(self.socket.as_raw_fd(), &h, libc::MSG_DONTWAIT) };
            if rc >= 0 {
                return Ok(());
            }
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(e);
            }
        }
    }

    /// Receives as many queued datagrams as `batch` holds with one `recvmmsg(MSG_DONTWAIT)`
    /// and returns how many complete ones it now holds (see [`RecvBatch::get`]). Datagrams
    /// longer than the batch's buffers are dropped and counted in
    /// [`RecvBatch::truncated`] (so `Ok(0)` is possible). `WouldBlock` when nothing is queued.
    pub fn recv_batch(&self, batch: &mut RecvBatch) -> io::Result<usize> {
        batch.prepare();
        let n = loop {
            // SAFETY: `prepare` pointed every header at its own iovec and address slot and
            // every iovec at its own `buf_len` slice of `batch.buf`; all live in `batch`,
            // which is borrowed mutably for the whole call.
            let rc = unsafe {
                libc::recvmmsg(
                    self.socket.as_raw_fd(),
                    batch.hdrs.as_mut_ptr(),
                    batch.hdrs.len() as libc::c_uint,
                    libc::MSG_DONTWAIT as _,
                    std::ptr::null_mut(),
                )
            };
            if rc >= 0 {
                break rc as usize;
            }
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(e);
            }
        };
        batch.collect(n);
        Ok(batch.len())
    }

    /// `peer` in this socket's address family (IPv4 peers as v4-mapped on an IPv6 socket, and
    /// v4-mapped peers as IPv4 on an IPv4 socket).
    fn peer_addr(&self, peer: SocketAddr) -> SocketAddr {
        match (self.local, peer) {
            (SocketAddr::V6(_), SocketAddr::V4(p)) => {
                SocketAddr::V6(SocketAddrV6::new(p.ip().to_ipv6_mapped(), p.port(), 0, 0))
            }
            (SocketAddr::V4(_), SocketAddr::V6(p)) => match p.ip().to_ipv4_mapped() {
                Some(ip) => SocketAddr::V4(SocketAddrV4::new(ip, p.port())),
                None => peer,
            },
            _ => peer,
        }
    }
}

impl AsRawFd for TunnelSocket {
    fn as_raw_fd(&self) -> RawFd {
        self.socket.as_raw_fd()
    }
}

impl AsFd for TunnelSocket {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.socket.as_fd()
    }
}

/// Preallocated buffers, iovecs, `mmsghdr`s and addresses for [`TunnelSocket::recv_batch`].
/// Allocates only in [`new`](Self::new); reuse one per receiving thread.
pub struct RecvBatch {
    /// `count` slots of `buf_len` bytes each, back to back.
    buf: Vec<u8>,
    buf_len: usize,
    iovecs: Vec<libc::iovec>,
    hdrs: Vec<libc::mmsghdr>,
    addrs: Vec<libc::sockaddr_storage>,
    /// Ancillary data room per slot (for `UDP_GRO`), 8-aligned.
    control: Vec<[u64; CONTROL_WORDS]>,
    /// Complete datagrams of the last call: (offset in `buf`, source, length).
    received: Vec<(usize, SocketAddr, usize)>,
    truncated: u64,
    coalesced: u64,
}

// SAFETY: the raw pointers in `iovecs` and `hdrs` point only into this struct's own heap
// buffers (re-pointed before every use); nothing is shared with another owner.
unsafe impl Send for RecvBatch {}
// SAFETY: `&RecvBatch` only reads the buffers; the pointers are not dereferenced through it.
unsafe impl Sync for RecvBatch {}

impl std::fmt::Debug for RecvBatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecvBatch")
            .field("capacity", &self.capacity())
            .field("buf_len", &self.buf_len)
            .field("len", &self.len())
            .field("truncated", &self.truncated)
            .field("coalesced", &self.coalesced)
            .finish()
    }
}

impl Default for RecvBatch {
    /// [`RECV_BATCH_DEFAULT`] slots of [`RECV_BUF_MAX`] bytes (4 MiB; fit for GRO).
    fn default() -> Self {
        Self::new(RECV_BATCH_DEFAULT, RECV_BUF_MAX)
    }
}

impl RecvBatch {
    /// Room for `count` datagrams (clamped to 1..=[`RECV_BATCH_MAX`]) of up to `buf_len`
    /// bytes (clamped to 1..=[`RECV_BUF_MAX`]). Without GRO, `buf_len` = underlay MTU − 28
    /// truncates nothing unfragmented; with GRO use [`RECV_BUF_MAX`].
    pub fn new(count: usize, buf_len: usize) -> Self {
        let count = count.clamp(1, RECV_BATCH_MAX);
        let buf_len = buf_len.clamp(1, RECV_BUF_MAX);
        RecvBatch {
            buf: vec![0; count * buf_len],
            buf_len,
            // SAFETY: all-zero bytes are valid values of these plain C structs.
            iovecs: vec![unsafe { mem::zeroed() }; count],
            hdrs: vec![unsafe { mem::zeroed() }; count],
            addrs: vec![unsafe { mem::zeroed() }; count],
            control: vec![[0; CONTROL_WORDS]; count],
            received: Vec::with_capacity(count * GSO_MAX_SEGMENTS.min(buf_len)),
            truncated: 0,
            coalesced: 0,
        }
    }

    /// Datagrams one call can receive.
    pub fn capacity(&self) -> usize {
        self.hdrs.len()
    }
    /// Size of each datagram buffer.
    pub fn buf_len(&self) -> usize {
        self.buf_len
    }
    /// Complete datagrams held from the last [`TunnelSocket::recv_batch`].
    pub fn len(&self) -> usize {
        self.received.len()
    }
    /// `true` when the last call received no complete datagram.
    pub fn is_empty(&self) -> bool {
        self.received.is_empty()
    }
    /// Datagrams dropped so far because they did not fit a buffer.
    pub fn truncated(&self) -> u64 {
        self.truncated
    }

    /// Slots so far that carried several datagrams coalesced by GRO (split by this batch).
    pub fn coalesced(&self) -> u64 {
        self.coalesced
    }

    /// Datagram `i` of the last call: its source and its bytes (the UDP payload).
    pub fn get(&self, i: usize) -> Option<(SocketAddr, &[u8])> {
        let &(start, src, len) = self.received.get(i)?;
        Some((src, self.buf.get(start..start + len)?))
    }

    /// Datagram `i` of the last call, mutable (to rewrite it in place).
    pub fn get_mut(&mut self, i: usize) -> Option<(SocketAddr, &mut [u8])> {
        let &(start, src, len) = self.received.get(i)?;
        Some((src, self.buf.get_mut(start..start + len)?))
    }

    /// The datagrams of the last call, in arrival order.
    pub fn iter(&self) -> impl Iterator<Item = (SocketAddr, &[u8])> + '_ {
        (0..self.len()).filter_map(|i| self.get(i))
    }

    /// Points every header at its slot and clears the last results.
    fn prepare(&mut self) {
        self.received.clear();
        let base = self.buf.as_mut_ptr();
        for i in 0..self.hdrs.len() {
            self.iovecs[i] = libc::iovec {
                // SAFETY: slot `i` lies within `buf` (`count * buf_len` bytes).
                iov_base: unsafe { base.add(i * self.buf_len) }.cast(),
                iov_len: self.buf_len,
            };
            // SAFETY: all-zero is a valid msghdr; fields set below.
            let mut h: libc::msghdr = unsafe { mem::zeroed() };
            h.msg_name = (&mut self.addrs[i] as *mut libc::sockaddr_storage).cast();
            h.msg_namelen = mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
            h.msg_iov = &mut self.iovecs[i];
            h.msg_iovlen = 1;
            h.msg_control = self.control[i].as_mut_ptr().cast();
            h.msg_controllen = mem::size_of::<[u64; CONTROL_WORDS]>() as _;
            self.hdrs[i] = libc::mmsghdr {
                msg_hdr: h,
                msg_len: 0,
            };
        }
    }

    /// Records the first `n` headers the kernel filled, splitting GRO-coalesced slots.
    fn collect(&mut self, n: usize) {
        for slot in 0..n.min(self.hdrs.len()) {
            let h = &self.hdrs[slot];
            let len = h.msg_len as usize;
            if h.msg_hdr.msg_flags & libc::MSG_TRUNC != 0 || len > self.buf_len {
                self.truncated += 1;
                continue;
            }
            let Some(src) = read_sockaddr(&self.addrs[slot], h.msg_hdr.msg_namelen) else {
                continue;
            };
            let start = slot * self.buf_len;
            let stride = gro_segment_size(&h.msg_hdr).filter(|&s| s > 0 && s < len);
            match stride {
                Some(stride) => {
                    self.coalesced += 1;
                    let mut off = 0;
                    while off < len {
                        let seg = stride.min(len - off);
                        self.received.push((start + off, src, seg));
                        off += seg;
                    }
                }
                None => self.received.push((start, src, len)),
            }
        }
    }
}

/// The segment size of a `UDP_GRO` control message in `h`, if any.
fn gro_segment_size(h: &libc::msghdr) -> Option<usize> {
    if h.msg_control.is_null() || h.msg_controllen < mem::size_of::<libc::cmsghdr>() as _ {
        return None;
    }
    // SAFETY: the kernel wrote `msg_controllen` bytes of well-formed cmsgs into our control
    // buffer; the CMSG_* helpers stay within it.
    unsafe {
        let mut cmsg = libc::CMSG_FIRSTHDR(h);
        while !cmsg.is_null() {
            if (*cmsg).cmsg_level == libc::SOL_UDP && (*cmsg).cmsg_type == libc::UDP_GRO {
                let v = std::ptr::read_unaligned(libc::CMSG_DATA(cmsg).cast::<libc::c_int>());
                return usize::try_from(v).ok();
            }
            cmsg = libc::CMSG_NXTHDR(h, cmsg);
        }
    }
    None
}

/// Attaches a classic BPF filter that accepts nothing (`ret #0`): datagrams for the socket are
/// dropped before they are queued.
fn drop_all_input(socket: &Socket) -> io::Result<()> {
    let mut code = [libc::sock_filter {
        code: (libc::BPF_RET | libc::BPF_K) as u16,
        jt: 0,
        jf: 0,
        k: 0,
    }];
    let prog = libc::sock_fprog {
        len: code.len() as u16,
        filter: code.as_mut_ptr(),
    };
    // SAFETY: a valid fd and a sock_fprog pointing at `code`, alive for the call (the kernel
    // copies the program).
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_ATTACH_FILTER,
            (&prog as *const libc::sock_fprog).cast(),
            mem::size_of::<libc::sock_fprog>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// `getsockopt` of a `c_int` option.
fn getsockopt_int(
    socket: &Socket,
    level: libc::c_int,
    name: libc::c_int,
) -> io::Result<libc::c_int> {
    let mut value: libc::c_int = 0;
    let mut len = mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: a valid fd and a c_int-sized output buffer.
    let rc = unsafe {
        libc::getsockopt(
            socket.as_raw_fd(),
            level,
            name,
            (&mut value as *mut libc::c_int).cast(),
            &mut len,
        )
    };
    if rc == 0 {
        Ok(value)
    } else {
        Err(io::Error::last_os_error())
    }
}

/// `setsockopt` of a `c_int` option.
fn setsockopt_int(
    socket: &Socket,
    level: libc::c_int,
    name: libc::c_int,
    value: libc::c_int,
) -> io::Result<()> {
    // SAFETY: a valid fd and a c_int option value of the right size.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            level,
            name,
            (&value as *const libc::c_int).cast(),
            mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Sets `IP(V6)_MTU_DISCOVER`: DF (`DO`) or never DF (`DONT`).
fn set_pmtudisc(socket: &Socket, local: SocketAddr, df: bool) -> io::Result<()> {
    let (level, name, value) = match (local, df) {
        (SocketAddr::V4(_), true) => (
            libc::IPPROTO_IP,
            libc::IP_MTU_DISCOVER,
            libc::IP_PMTUDISC_DO,
        ),
        (SocketAddr::V4(_), false) => (
            libc::IPPROTO_IP,
            libc::IP_MTU_DISCOVER,
            libc::IP_PMTUDISC_DONT,
        ),
        (SocketAddr::V6(_), true) => (
            libc::IPPROTO_IPV6,
            libc::IPV6_MTU_DISCOVER,
            libc::IPV6_PMTUDISC_DO,
        ),
        (SocketAddr::V6(_), false) => (
            libc::IPPROTO_IPV6,
            libc::IPV6_MTU_DISCOVER,
            libc::IPV6_PMTUDISC_DONT,
        ),
    };
    setsockopt_int(socket, level, name, value)
}

/// Writes `addr` into `storage` and returns its length.
fn write_sockaddr(addr: SocketAddr, storage: &mut libc::sockaddr_storage) -> libc::socklen_t {
    match addr {
        SocketAddr::V4(a) => {
            // SAFETY: sockaddr_storage is larger than and aligned for sockaddr_in.
            let sin = unsafe {
                &mut *(storage as *mut libc::sockaddr_storage).cast::<libc::sockaddr_in>()
            };
            sin.sin_family = libc::AF_INET as libc::sa_family_t;
            sin.sin_port = a.port().to_be();
            sin.sin_addr = libc::in_addr {
                s_addr: u32::from_ne_bytes(a.ip().octets()),
            };
            mem::size_of::<libc::sockaddr_in>() as libc::socklen_t
        }
        SocketAddr::V6(a) => {
            // SAFETY: sockaddr_storage is larger than and aligned for sockaddr_in6.
            let sin6 = unsafe {
                &mut *(storage as *mut libc::sockaddr_storage).cast::<libc::sockaddr_in6>()
            };
            sin6.sin6_family = libc::AF_INET6 as libc::sa_family_t;
            sin6.sin6_port = a.port().to_be();
            sin6.sin6_flowinfo = a.flowinfo();
            sin6.sin6_addr = libc::in6_addr {
                s6_addr: a.ip().octets(),
            };
            sin6.sin6_scope_id = a.scope_id();
            mem::size_of::<libc::sockaddr_in6>() as libc::socklen_t
        }
    }
}

/// Reads the address the kernel wrote into `storage` (`len` bytes); `None` for other families.
fn read_sockaddr(storage: &libc::sockaddr_storage, len: libc::socklen_t) -> Option<SocketAddr> {
    let len = len as usize;
    match i32::from(storage.ss_family) {
        libc::AF_INET if len >= mem::size_of::<libc::sockaddr_in>() => {
            // SAFETY: the family says the storage holds a sockaddr_in.
            let sin =
                unsafe { &*(storage as *const libc::sockaddr_storage).cast::<libc::sockaddr_in>() };
            let ip = Ipv4Addr::from(sin.sin_addr.s_addr.to_ne_bytes());
            Some(SocketAddr::V4(SocketAddrV4::new(
                ip,
                u16::from_be(sin.sin_port),
            )))
        }
        libc::AF_INET6 if len >= mem::size_of::<libc::sockaddr_in6>() => {
            // SAFETY: the family says the storage holds a sockaddr_in6.
            let sin6 = unsafe {
                &*(storage as *const libc::sockaddr_storage).cast::<libc::sockaddr_in6>()
            };
            Some(SocketAddr::V6(SocketAddrV6::new(
                Ipv6Addr::from(sin6.sin6_addr.s6_addr),
                u16::from_be(sin6.sin6_port),
                sin6.sin6_flowinfo,
                sin6.sin6_scope_id,
            )))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sockaddr_round_trip() {
        for a in [
            "10.1.2.3:4789".parse::<SocketAddr>().unwrap(),
            "[fd00::1]:4789".parse().unwrap(),
            "[::ffff:10.0.0.1]:1".parse().unwrap(),
        ] {
            // SAFETY: all-zero is a valid sockaddr_storage.
            let mut s: libc::sockaddr_storage = unsafe { mem::zeroed() };
            let len = write_sockaddr(a, &mut s);
            assert_eq!(read_sockaddr(&s, len), Some(a));
        }
        // SAFETY: as above.
        let s: libc::sockaddr_storage = unsafe { mem::zeroed() };
        assert_eq!(read_sockaddr(&s, 128), None);
    }

    #[test]
    fn recv_batch_limits() {
        let b = RecvBatch::new(0, 0);
        assert_eq!((b.capacity(), b.buf_len()), (1, 1));
        let b = RecvBatch::new(100_000, 16);
        assert_eq!(b.capacity(), RECV_BATCH_MAX);
        let b = RecvBatch::new(1, 1_000_000);
        assert_eq!(b.buf_len(), RECV_BUF_MAX);
        assert!(b.get(0).is_none() && b.is_empty());
    }
}
