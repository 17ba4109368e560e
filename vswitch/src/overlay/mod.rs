//! Overlay networks: a VXLAN tunnel port for a network's switch.
//!
//! A tunnel is an ordinary datapath port ([`PortIo`], attached with
//! [`PortConfig::tunnel`](crate::switch::PortConfig::tunnel)) whose fd is one end of a
//! `SOCK_SEQPACKET` socketpair; a dedicated thread ([`tunnel`]) serves the other end:
//!
//! - frames the switch sends to the tunnel port (virtio-net header + Ethernet frame; the port
//!   has no offloads, so the datapath has already segmented GSO frames and completed
//!   checksums) are encapsulated in place with the network's VNI and sent with an
//!   [`encap::TunnelSocket`] to the VTEP owning the destination MAC (a static table set by
//!   the control plane with [`TunnelHandle::set_remote_mac`]), or, for broadcast, multicast
//!   and unknown unicast, to every known VTEP (head-end replication);
//! - datagrams received on the socket pass the [`encap::Filter`] (known VTEP, this VNI,
//!   well-formed) and are written towards the switch with a `NONE` virtio-net header.
//!
//! One tunnel serves one VNI with its own UDP socket (so one overlay network per local
//! address/port for now; sharing one socket among several VNIs is left to the cluster-store
//! work). The socket is created by [`Tunnel::start`] in the calling thread's network
//! namespace. Nothing is allocated per frame: buffers are preallocated per tunnel and the
//! `sendmmsg` list lives on the stack.
//!
//! Remove the port from the datapath before dropping the [`TunnelHandle`] (dropping the
//! handle stops the thread and closes its end of the socketpair).

pub mod tunnel;

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;

use encap::{Filter, TunnelSocket, OVERHEAD, VNI_MAX, VXLAN_PORT};

use crate::port::PortIo;
use crate::wire::MacAddr;

/// Default overlay MTU: a 1500-byte underlay minus the VXLAN overhead (50).
pub const DEFAULT_MTU: u32 = 1500 - OVERHEAD as u32;

/// Errors of [`Tunnel::start`].
#[derive(Debug, thiserror::Error)]
pub enum OverlayError {
    /// The VNI does not fit in 24 bits.
    #[error("overlay: VNI {0} out of range (at most {VNI_MAX})")]
    BadVni(u32),
    /// A system call failed.
    #[error("overlay: {op}: {source}")]
    Sys { op: &'static str, source: io::Error },
}

fn sys(op: &'static str) -> impl FnOnce(io::Error) -> OverlayError {
    move |source| OverlayError::Sys { op, source }
}

/// What a tunnel needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TunnelConfig {
    /// The network's VNI.
    pub vni: u32,
    /// Address the tunnel socket binds (the host's advertise address, port 4789 by default).
    pub local: SocketAddr,
    /// UDP destination port of the peer VTEPs (4789 by default).
    pub dst_port: u16,
    /// Overlay MTU (underlay MTU − 50) the control plane gives the network's interfaces.
    /// Informational: larger frames are still sent (the underlay fragments them, as the
    /// kernel's `vxlan` device with `df unset` does).
    pub mtu: u32,
}

impl TunnelConfig {
    /// VNI `vni` bound to `local_ip`:4789, sending to port 4789, MTU [`DEFAULT_MTU`].
    pub fn new(vni: u32, local_ip: IpAddr) -> TunnelConfig {
        TunnelConfig {
            vni,
            local: SocketAddr::new(local_ip, VXLAN_PORT),
            dst_port: VXLAN_PORT,
            mtu: DEFAULT_MTU,
        }
    }
}

/// Counters of a tunnel (plain counts since it started).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TunnelStats {
    /// Frames read from the switch.
    pub tx_frames: u64,
    /// Datagrams sent to peer VTEPs (a flood counts one per VTEP).
    pub tx_datagrams: u64,
    /// Datagrams received on the tunnel socket.
    pub rx_datagrams: u64,
    /// Decapsulated frames written towards the switch.
    pub rx_frames: u64,
    /// Drops by reason.
    pub dropped: TunnelDrops,
}

/// Why a tunnel dropped frames or datagrams.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TunnelDrops {
    /// A frame from the switch that is too short or too long to encapsulate.
    pub bad_frame: u64,
    /// A frame to flood (or for an unknown MAC) while no VTEP is known.
    pub no_peer: u64,
    /// A datagram the socket did not take (buffer full or send error).
    pub send_error: u64,
    /// A received datagram from an address that is not a known VTEP.
    pub unknown_vtep: u64,
    /// A received datagram that is not valid VXLAN.
    pub malformed: u64,
    /// A received datagram for another VNI.
    pub unknown_vni: u64,
    /// A decapsulated frame the switch side did not take (socketpair full).
    pub switch_full: u64,
}

impl TunnelDrops {
    /// All drops.
    pub fn total(&self) -> u64 {
        self.bad_frame
            + self.no_peer
            + self.send_error
            + self.unknown_vtep
            + self.malformed
            + self.unknown_vni
            + self.switch_full
    }
}

/// Counters the thread updates without the table lock.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub tx_frames: AtomicU64,
    pub tx_datagrams: AtomicU64,
    pub rx_datagrams: AtomicU64,
    pub rx_frames: AtomicU64,
    pub bad_frame: AtomicU64,
    pub no_peer: AtomicU64,
    pub send_error: AtomicU64,
    pub switch_full: AtomicU64,
}

impl Counters {
    pub(crate) fn add(c: &AtomicU64, n: u64) {
        if n > 0 {
            c.fetch_add(n, Ordering::Relaxed);
        }
    }
}

/// The forwarding state the control plane sets: peers (the receive filter's VTEPs), the flood
/// list, and remote MACs. Locked once per batch by the tunnel thread.
#[derive(Debug, Default)]
pub(crate) struct Table {
    /// Receive filter: known VTEPs and our VNI, with its drop counters.
    pub filter: Filter,
    /// Flood list: every known VTEP with the destination port.
    pub peers: Vec<SocketAddr>,
    /// Remote MAC → its VTEP (with the destination port).
    pub macs: HashMap<MacAddr, SocketAddr>,
}

#[derive(Debug, Default)]
pub(crate) struct Shared {
    pub table: Mutex<Table>,
    pub counters: Counters,
}

impl Shared {
    pub(crate) fn table(&self) -> MutexGuard<'_, Table> {
        // A panic elsewhere cannot leave the table inconsistent in a way that matters here.
        self.table.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Starts tunnels.
pub struct Tunnel;

impl Tunnel {
    /// Binds the tunnel socket (in the calling thread's network namespace), starts the tunnel
    /// thread and returns its handle and the port to attach to the network's switch with
    /// [`PortConfig::tunnel`](crate::switch::PortConfig::tunnel). No VTEP is known yet: add
    /// them with [`TunnelHandle::add_peer`].
    pub fn start(cfg: TunnelConfig) -> Result<(TunnelHandle, PortIo), OverlayError> {
        if cfg.vni > VNI_MAX {
            return Err(OverlayError::BadVni(cfg.vni));
        }
        let sock = TunnelSocket::bind(cfg.local).map_err(sys("bind tunnel socket"))?;
        let local = sock.local_addr();
        let (theirs, ours) = seqpacket_pair()?;
        // SAFETY: eventfd returns a new fd or -1.
        let efd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
        if efd < 0 {
            return Err(sys("eventfd")(io::Error::last_os_error()));
        }
        // SAFETY: efd is a fresh fd we own.
        let stop = unsafe { OwnedFd::from_raw_fd(efd) };
        let stop_thread = stop.try_clone().map_err(sys("dup eventfd"))?;
        let shared = Arc::new(Shared::default());
        shared.table().filter.add_vni(cfg.vni);
        let engine = tunnel::Engine::new(cfg.vni, ours, sock, stop_thread, shared.clone());
        let thread = std::thread::Builder::new()
            .name(format!("vswitch-vx{}", cfg.vni))
            .spawn(move || engine.run())
            .map_err(sys("spawn tunnel thread"))?;
        let handle = TunnelHandle {
            shared,
            stop,
            thread: Some(thread),
            local,
            cfg,
        };
        let io = PortIo {
            file: std::fs::File::from(theirs),
            offload: false,
            delete_on_close: None,
        };
        Ok((handle, io))
    }
}

/// Control of a running tunnel; stops it on drop.
#[derive(Debug)]
pub struct TunnelHandle {
    shared: Arc<Shared>,
    stop: OwnedFd,
    thread: Option<JoinHandle<()>>,
    local: SocketAddr,
    cfg: TunnelConfig,
}

impl TunnelHandle {
    /// The bound address (with the actual port when bound to port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// The tunnel's configuration.
    pub fn config(&self) -> &TunnelConfig {
        &self.cfg
    }

    /// Adds a peer VTEP: datagrams from it are accepted and floods go to it. `true` when new.
    pub fn add_peer(&self, vtep: IpAddr) -> bool {
        let mut t = self.shared.table();
        let addr = SocketAddr::new(vtep.to_canonical(), self.cfg.dst_port);
        let new = t.filter.add_vtep(vtep);
        if !t.peers.contains(&addr) {
            t.peers.push(addr);
        }
        new
    }

    /// Removes a peer VTEP and the remote MACs behind it. `true` when it was known.
    pub fn remove_peer(&self, vtep: IpAddr) -> bool {
        let mut t = self.shared.table();
        let ip = vtep.to_canonical();
        t.peers.retain(|p| p.ip() != ip);
        t.macs.retain(|_, p| p.ip() != ip);
        t.filter.remove_vtep(vtep)
    }

    /// The known peer VTEPs.
    pub fn peers(&self) -> Vec<IpAddr> {
        self.shared.table().peers.iter().map(|p| p.ip()).collect()
    }

    /// Sends frames for `mac` to `vtep` only (adding `vtep` as a peer if it is not one).
    pub fn set_remote_mac(&self, mac: MacAddr, vtep: IpAddr) {
        self.add_peer(vtep);
        let addr = SocketAddr::new(vtep.to_canonical(), self.cfg.dst_port);
        self.shared.table().macs.insert(mac, addr);
    }

    /// Forgets where `mac` is (frames for it are flooded again). `true` when it was known.
    pub fn remove_remote_mac(&self, mac: MacAddr) -> bool {
        self.shared.table().macs.remove(&mac).is_some()
    }

    /// The VTEP `mac` is sent to, if set.
    pub fn remote_mac(&self, mac: MacAddr) -> Option<IpAddr> {
        self.shared.table().macs.get(&mac).map(|a| a.ip())
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> TunnelStats {
        let f = self.shared.table().filter.counters;
        let c = &self.shared.counters;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        TunnelStats {
            tx_frames: get(&c.tx_frames),
            tx_datagrams: get(&c.tx_datagrams),
            rx_datagrams: get(&c.rx_datagrams),
            rx_frames: get(&c.rx_frames),
            dropped: TunnelDrops {
                bad_frame: get(&c.bad_frame),
                no_peer: get(&c.no_peer),
                send_error: get(&c.send_error),
                unknown_vtep: f.unknown_vtep,
                malformed: f.malformed,
                unknown_vni: f.unknown_vni,
                switch_full: get(&c.switch_full),
            },
        }
    }

    /// The tunnel thread is still running (it stops when the switch side closes the port).
    pub fn is_running(&self) -> bool {
        self.thread.as_ref().is_some_and(|t| !t.is_finished())
    }

    /// Stops the tunnel thread and waits for it (idempotent; also done on drop).
    pub fn shutdown(&mut self) {
        if let Some(t) = self.thread.take() {
            let one: u64 = 1;
            // SAFETY: 8-byte write to our eventfd.
            unsafe {
                libc::write(
                    self.stop.as_raw_fd(),
                    &one as *const u64 as *const libc::c_void,
                    8,
                )
            };
            let _ = t.join();
        }
    }
}

impl Drop for TunnelHandle {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn seqpacket_pair() -> Result<(OwnedFd, OwnedFd), OverlayError> {
    crate::port::seqpacket_pair().map_err(sys("socketpair"))
}

#[cfg(test)]
mod tests;
