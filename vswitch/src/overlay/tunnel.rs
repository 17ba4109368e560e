//! The tunnel thread: `poll` on the socketpair end (frames from the switch), the tunnel
//! socket (datagrams from peers) and a stop eventfd.
//!
//! Encapsulation is in place: a frame is read at offset 0 of its slot with its 10-byte
//! virtio-net header in front, and the 8-byte VXLAN header is written over the header's last
//! 8 bytes, so the datagram is `slot[2..10 + frame_len]`. Decapsulated frames go out with a
//! `writev` of a zero (`NONE`) virtio-net header and the inner frame within the receive
//! buffer. Nothing here allocates after [`Engine::new`], and no datagram can make it panic
//! (all slicing is checked by [`encap::Filter::check`] or guarded by lengths).

use std::io;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::Arc;

use encap::{RecvBatch, TunnelSocket, VxlanRepr, HEADER_LEN, MAX_DATAGRAM, RECV_BUF_MAX};

use super::{Counters, Shared};
use crate::datapath::FRAME_BUF;
use crate::port::tap::VNET_HDR_LEN;
use crate::wire::MacAddr;

/// Frames read from the switch (and datagrams received) per batch.
pub const BATCH: usize = 32;
/// Datagrams per `send_batch` call (its own chunk size).
const SEND_LIST: usize = encap::SEND_BATCH_MAX;
/// Shortest inner frame: an Ethernet header.
const ETH_LEN: usize = 14;
/// The virtio-net header of every frame handed to the switch: no offload.
const NONE_HDR: [u8; VNET_HDR_LEN] = [0; VNET_HDR_LEN];
/// Receive rounds per wake-up before polling again (fairness between the two directions).
const RX_ROUNDS: usize = 4;
const UNSPEC: SocketAddr = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0));

pub(crate) struct Engine {
    vni: u32,
    pair: OwnedFd,
    sock: TunnelSocket,
    stop: OwnedFd,
    shared: Arc<Shared>,
    /// `BATCH` slots of `FRAME_BUF` bytes (vnet header + the largest frame the datapath sends).
    bufs: Vec<Box<[u8]>>,
    lens: [usize; BATCH],
    rx: RecvBatch,
}

impl Engine {
    pub(crate) fn new(
        vni: u32,
        pair: OwnedFd,
        sock: TunnelSocket,
        stop: OwnedFd,
        shared: Arc<Shared>,
    ) -> Engine {
        Engine {
            vni,
            pair,
            sock,
            stop,
            shared,
            bufs: (0..BATCH)
                .map(|_| vec![0u8; FRAME_BUF].into_boxed_slice())
                .collect(),
            lens: [0; BATCH],
            rx: RecvBatch::new(BATCH, RECV_BUF_MAX),
        }
    }

    /// Runs until stopped or until the switch side closes the socketpair.
    pub(crate) fn run(mut self) {
        let mut fds = [
            libc::pollfd {
                fd: self.pair.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            },
            libc::pollfd {
                fd: self.sock.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            },
            libc::pollfd {
                fd: self.stop.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            },
        ];
        loop {
            for f in fds.iter_mut() {
                f.revents = 0;
            }
            // SAFETY: fds is a valid array of 3 pollfds.
            let r = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, -1) };
            if r < 0 {
                if io::Error::last_os_error().kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                tracing::warn!(
                    vni = self.vni,
                    "tunnel poll: {}",
                    io::Error::last_os_error()
                );
                return;
            }
            if fds[2].revents != 0 {
                return;
            }
            if fds[0].revents != 0 && !self.service_switch() {
                return;
            }
            if fds[1].revents != 0 {
                self.service_underlay();
            }
        }
    }

    /// Reads a batch of frames from the switch and sends them; `false` once the switch side
    /// has closed.
    fn service_switch(&mut self) -> bool {
        let fd = self.pair.as_raw_fd();
        let mut count = 0;
        let mut open = true;
        while count < BATCH {
            let buf = &mut self.bufs[count];
            // SAFETY: reading into our own buffer of its length.
            let r = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
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
            self.lens[count] = r as usize;
            count += 1;
        }
        if count > 0 {
            self.encap_and_send(count);
        }
        open
    }

    /// Encapsulates slots `0..count` in place and sends each to its VTEP(s).
    fn encap_and_send(&mut self, count: usize) {
        let c = &self.shared.counters;
        Counters::add(&c.tx_frames, count as u64);
        let hdr = VxlanRepr { vni: self.vni };
        let mut bad = 0;
        for i in 0..count {
            let len = self.lens[i];
            let frame_len = len.saturating_sub(VNET_HDR_LEN);
            let buf = &mut self.bufs[i];
            // A full slot may be a truncated message: drop it as well.
            if frame_len < ETH_LEN
                || len >= buf.len()
                || frame_len + HEADER_LEN > MAX_DATAGRAM
                || hdr
                    .emit(&mut buf[VNET_HDR_LEN - HEADER_LEN..VNET_HDR_LEN])
                    .is_err()
            {
                self.lens[i] = 0;
                bad += 1;
            }
        }
        Counters::add(&c.bad_frame, bad);

        let mut list: [(SocketAddr, &[u8]); SEND_LIST] = [(UNSPEC, &[]); SEND_LIST];
        let mut n = 0;
        let mut no_peer = 0;
        let table = self.shared.table();
        for i in 0..count {
            let len = self.lens[i];
            if len == 0 {
                continue;
            }
            let datagram = &self.bufs[i][VNET_HDR_LEN - HEADER_LEN..len];
            let dst = &self.bufs[i][VNET_HDR_LEN..VNET_HDR_LEN + 6];
            let unicast = if dst[0] & 1 == 0 {
                MacAddr::from_bytes(dst)
                    .ok()
                    .and_then(|m| table.macs.get(&m).copied())
            } else {
                None
            };
            let targets: &[SocketAddr] = match &unicast {
                Some(a) => std::slice::from_ref(a),
                None => &table.peers,
            };
            if targets.is_empty() {
                no_peer += 1;
                continue;
            }
            for &t in targets {
                if n == SEND_LIST {
                    self.flush(&list[..n], c);
                    n = 0;
                }
                list[n] = (t, datagram);
                n += 1;
            }
        }
        drop(table);
        if n > 0 {
            self.flush(&list[..n], c);
        }
        Counters::add(&c.no_peer, no_peer);
    }

    /// Sends `list`, dropping (and counting) what the socket does not take.
    fn flush(&self, list: &[(SocketAddr, &[u8])], c: &Counters) {
        let mut off = 0;
        let mut errors = 0u64;
        while off < list.len() {
            match self.sock.send_batch(&list[off..]) {
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
        Counters::add(&c.send_error, errors);
        Counters::add(&c.tx_datagrams, (list.len() as u64).saturating_sub(errors));
    }

    /// Receives datagrams, filters and decapsulates them towards the switch.
    fn service_underlay(&mut self) {
        let fd = self.pair.as_raw_fd();
        for _ in 0..RX_ROUNDS {
            match self.sock.recv_batch(&mut self.rx) {
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => return,
            }
            let c = &self.shared.counters;
            let mut received = 0;
            let mut delivered = 0;
            let mut full = 0;
            let mut table = self.shared.table();
            for (src, datagram) in self.rx.iter() {
                received += 1;
                let Ok((_, inner)) = table.filter.check(src.ip(), datagram) else {
                    continue;
                };
                let Some(frame) = datagram.get(inner) else {
                    continue;
                };
                if write_frame(fd, frame) {
                    delivered += 1;
                } else {
                    full += 1;
                }
            }
            drop(table);
            Counters::add(&c.rx_datagrams, received);
            Counters::add(&c.rx_frames, delivered);
            Counters::add(&c.switch_full, full);
        }
    }
}

/// One frame towards the switch (vnet header `NONE` + frame) as one message; `false` when the
/// socketpair did not take it.
fn write_frame(fd: i32, frame: &[u8]) -> bool {
    let iov = [
        libc::iovec {
            iov_base: NONE_HDR.as_ptr() as *mut libc::c_void,
            iov_len: NONE_HDR.len(),
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
