//! Overlay networks: one VXLAN tunnel socket per host serving every overlay network on it.
//!
//! The tunnel's work (module [`tunnel`]'s engine) runs in one of two places:
//!
//! - **in a datapath worker** (what vswitchd does): [`TunnelHost::start_on`] binds one
//!   [`encap::TunnelSocket`] (the host's advertise address, port 4789) in the calling
//!   thread's network namespace and hands the engine to a worker of the
//!   [`Datapath`](crate::datapath::Datapath), which adds the socket to its own epoll set.
//!   Overlay switches go on that worker
//!   ([`Datapath::add_overlay_network`](crate::datapath::Datapath::add_overlay_network)) and
//!   get an in-thread tunnel port with [`TunnelHost::attach_port`]`(dp, net, vni, flood)`:
//!   what the switch sends to it is pushed into the engine's transmit batch (one copy, behind
//!   the VXLAN header) and sent at the end of the switch's batch; what the engine
//!   decapsulates is copied into the worker's buffers and switched there;
//! - **in a thread of its own**: [`TunnelHost::start`] starts one thread, and
//!   [`TunnelHost::attach`]`(vni, flood)` gives a [`PortIo`] (attached with
//!   [`PortConfig::tunnel`](crate::switch::PortConfig::tunnel)) whose fd is one end of a
//!   `SOCK_SEQPACKET` socketpair; the thread serves the other end of every pair (one epoll
//!   set over the socket, the pairs and a stop eventfd).
//!
//! Either way:
//!
//! - frames the switch sends to the tunnel port (virtio-net header + Ethernet frame; the port
//!   takes offloads, so TSO frames and partial checksums arrive whole and are segmented or
//!   completed by the engine) are encapsulated with the network's VNI and sent to the
//!   VTEP owning the destination MAC ([`TunnelHost::set_remote_mac`]). Broadcast, multicast
//!   and unknown unicast go to every peer of the VNI (head-end replication) when the VNI
//!   was attached with `flood`, and are dropped (counted in [`TunnelDrops::not_flooded`])
//!   otherwise: cluster overlays flood nothing over the underlay;
//! - datagrams received on the socket are decapsulated and handed to the switch of their VNI
//!   when the VNI is attached and the sender is one of that VNI's peers
//!   ([`TunnelHost::add_peer`]); everything else is dropped and counted (per VNI:
//!   [`TunnelDrops::unknown_vtep`]; host-wide, [`HostStats`]: malformed datagrams and VNIs
//!   not attached). Consecutive TCP segments of one flow are merged back into one TSO frame
//!   on the way (`gro`), so the container's stack sees 64 KiB frames as with the kernel's
//!   GRO.
//!
//! Outer source port (RFC 7348 §5): datagrams leave from one of [`SOURCE_PORTS`] send-only
//! sockets bound to the same address with ephemeral ports, chosen by a hash of the inner flow
//! (the TCP/UDP 5-tuple over IPv4/IPv6, the MAC pair otherwise; [`encap::flow_source_port`]),
//! so one flow keeps one outer port and underlay ECMP and the receiver's RSS spread flows; a
//! GSO send is one flow's run. Only the socket on port 4789 receives; a peer is accepted from
//! any source port of its VTEP address.
//!
//! Latency: served by a worker, a frame between a container and the tunnel stays on one
//! thread (the worker's), so two containers on two hosts are two thread wake-ups apart, as
//! with the kernel's bridge + `vxlan` path; with the tunnel thread it would be four (each
//! hand-off costs about 6 µs). The price: every overlay network of the host is switched by
//! that one worker (other workers keep the bridge networks).
//!
//! Sending is batched with `sendmmsg` and UDP GSO, receiving with `recvmmsg` and UDP GRO where
//! the kernel has it. Nothing is allocated per frame: buffers are preallocated by the engine
//! (and the worker) and the `sendmmsg` list lives on the stack. The forwarding state (per
//! VNI: peers, remote MACs, counters) sits behind one mutex taken once per batch; in a worker,
//! frames the switch sends to a tunnel port while it is handed received ones (its own
//! replies) wait in a small buffer until the lock is released.
//!
//! Remove the port from the datapath before detaching it; dropping the [`TunnelHost`] stops
//! the thread (or takes the engine off its worker) and closes every pair.

mod gro;
pub mod tunnel;

use std::collections::{HashMap, HashSet};
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;

use encap::{TunnelOptions, TunnelSocket, OVERHEAD, VNI_MAX};

use crate::port::PortIo;
use crate::wire::MacAddr;

/// Default overlay MTU: a 1500-byte underlay minus the VXLAN overhead (50).
pub const DEFAULT_MTU: u32 = 1500 - OVERHEAD as u32;
/// First VNI given to overlay networks (Docker's overlay driver starts there too).
pub const FIRST_VNI: u32 = 256;
/// Outer UDP source ports a host sends from (one send-only socket each), chosen per inner
/// flow: enough for underlay ECMP and receive-side scaling to spread flows, few enough fds.
pub const SOURCE_PORTS: usize = 32;

/// Epoll token of the stop eventfd (VNIs are 24-bit, so no VNI token collides).
pub(crate) const STOP_TOKEN: u64 = u64::MAX;
/// Epoll token of the tunnel socket.
pub(crate) const SOCKET_TOKEN: u64 = u64::MAX - 1;

/// Errors of [`TunnelHost`].
#[derive(Debug, thiserror::Error)]
pub enum OverlayError {
    /// The VNI does not fit in 24 bits.
    #[error("overlay: VNI {0} out of range (at most {VNI_MAX})")]
    BadVni(u32),
    /// `attach` of a VNI that already has a port.
    #[error("overlay: VNI {0} is already attached")]
    VniInUse(u32),
    /// `detach` of a VNI that has no port.
    #[error("overlay: VNI {0} is not attached")]
    NotAttached(u32),
    /// The tunnel thread was shut down.
    #[error("overlay: the tunnel host is shut down")]
    Stopped,
    /// A system call failed.
    #[error("overlay: {op}: {source}")]
    Sys { op: &'static str, source: io::Error },
}

fn sys(op: &'static str) -> impl FnOnce(io::Error) -> OverlayError {
    move |source| OverlayError::Sys { op, source }
}

/// Counters of one VNI (plain counts since it was first configured).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TunnelStats {
    /// Frames read from the switch.
    pub tx_frames: u64,
    /// Datagrams sent to peer VTEPs (a flood counts one per VTEP).
    pub tx_datagrams: u64,
    /// Datagrams received for this VNI (accepted or not).
    pub rx_datagrams: u64,
    /// Decapsulated frames written towards the switch.
    pub rx_frames: u64,
    /// Drops by reason.
    pub dropped: TunnelDrops,
}

/// Why a VNI's traffic was dropped.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TunnelDrops {
    /// A frame from the switch that is too short or too long to encapsulate.
    pub bad_frame: u64,
    /// A frame to flood (or for an unknown MAC) while the VNI has no peer.
    pub no_peer: u64,
    /// Broadcast, multicast or unknown unicast on a VNI attached without `flood`.
    pub not_flooded: u64,
    /// A datagram the socket did not take (buffer full or send error).
    pub send_error: u64,
    /// A received datagram from an address that is not one of this VNI's peers.
    pub unknown_vtep: u64,
    /// A decapsulated frame the switch side did not take (socketpair full or closed; inline,
    /// a frame too large for the worker's buffers or a VNI whose port is gone).
    pub switch_full: u64,
}

impl TunnelDrops {
    /// All drops.
    pub fn total(&self) -> u64 {
        self.bad_frame
            + self.no_peer
            + self.not_flooded
            + self.send_error
            + self.unknown_vtep
            + self.switch_full
    }
}

/// Host-wide counters of the tunnel socket: what cannot be charged to an attached VNI.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HostStats {
    /// Datagrams received on the socket.
    pub rx_datagrams: u64,
    /// Dropped: not a valid VXLAN datagram.
    pub malformed: u64,
    /// Dropped: a valid datagram for a VNI not attached on this host.
    pub unknown_vni: u64,
    /// Dropped: longer than the receive buffers.
    pub truncated: u64,
}

/// The state of one VNI: its switch-side pair (once attached), peers, remote MACs, counters.
#[derive(Debug, Default)]
pub(crate) struct Vni {
    /// The thread's end of the socketpair; `None` until attached.
    pub pair: Option<Arc<OwnedFd>>,
    /// The switch side has not closed the pair.
    pub open: bool,
    /// Attached inline: the switch runs in the datapath worker that serves the socket, and
    /// frames cross as function calls (no pair).
    pub inline: bool,
    /// Head-end replication of broadcast/multicast/unknown unicast to every peer.
    pub flood: bool,
    /// Peers' addresses (canonical form): the only senders accepted for this VNI.
    pub vteps: HashSet<IpAddr>,
    /// Flood list: every peer with the destination port.
    pub peers: Vec<SocketAddr>,
    /// Remote MAC → its VTEP (with the destination port).
    pub macs: HashMap<MacAddr, SocketAddr>,
    pub stats: TunnelStats,
}

impl Vni {
    /// Has a switch port (pair or inline).
    pub(crate) fn attached(&self) -> bool {
        self.pair.is_some() || self.inline
    }
}

/// Everything the control plane sets and the thread reads, locked once per batch.
#[derive(Debug, Default)]
pub(crate) struct Table {
    pub vnis: HashMap<u32, Vni>,
    pub host: HostStats,
}

#[derive(Debug, Default)]
pub(crate) struct Shared {
    pub table: Mutex<Table>,
}

impl Shared {
    pub(crate) fn table(&self) -> MutexGuard<'_, Table> {
        // A panic elsewhere cannot leave the table inconsistent in a way that matters here.
        self.table.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The host's tunnel: one socket and one thread for every overlay network (VNI) on the host.
/// See the [module docs](self). Stops on drop.
#[derive(Debug)]
pub struct TunnelHost {
    shared: Arc<Shared>,
    /// The tunnel thread's epoll set and stop eventfd (`None` when served by a worker).
    epfd: Option<Arc<OwnedFd>>,
    stop: Option<OwnedFd>,
    thread: Option<JoinHandle<()>>,
    /// The datapath worker serving the socket ([`TunnelHost::start_on`]).
    worker: Option<crate::datapath::TunnelLink>,
    local: SocketAddr,
    dst_port: u16,
}

/// Binds the receive socket on `local` and the [`SOURCE_PORTS`] send-only sockets.
fn bind_sockets(local: SocketAddr) -> Result<(TunnelSocket, Vec<TunnelSocket>), OverlayError> {
    let options = TunnelOptions {
        gro: true,
        ..TunnelOptions::default()
    };
    let sock = TunnelSocket::bind_with(local, &options).map_err(sys("bind tunnel socket"))?;
    let send_only = TunnelOptions {
        send_only: true,
        ..TunnelOptions::default()
    };
    let from = SocketAddr::new(sock.local_addr().ip(), 0);
    let senders = (0..SOURCE_PORTS)
        .map(|_| TunnelSocket::bind_with(from, &send_only))
        .collect::<io::Result<Vec<_>>>()
        .map_err(sys("bind tunnel sender"))?;
    Ok((sock, senders))
}

impl TunnelHost {
    /// Binds the tunnel socket to `local` (the host's advertise address and port 4789; port 0
    /// picks one) in the calling thread's network namespace, and starts the tunnel thread.
    /// Datagrams go to peers' port `dst_port` (4789). No VNI is attached yet.
    pub fn start(local: SocketAddr, dst_port: u16) -> Result<TunnelHost, OverlayError> {
        let (sock, senders) = bind_sockets(local)?;
        let local = sock.local_addr();
        // SAFETY: epoll_create1 returns a new fd or -1.
        let ep = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if ep < 0 {
            return Err(sys("epoll_create1")(io::Error::last_os_error()));
        }
        // SAFETY: ep is a fresh fd we own.
        let epfd = Arc::new(unsafe { OwnedFd::from_raw_fd(ep) });
        // SAFETY: eventfd returns a new fd or -1.
        let efd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
        if efd < 0 {
            return Err(sys("eventfd")(io::Error::last_os_error()));
        }
        // SAFETY: efd is a fresh fd we own.
        let stop = unsafe { OwnedFd::from_raw_fd(efd) };
        tunnel::epoll_add(epfd.as_raw_fd(), stop.as_raw_fd(), STOP_TOKEN)
            .map_err(sys("epoll add"))?;
        tunnel::epoll_add(epfd.as_raw_fd(), sock.as_raw_fd(), SOCKET_TOKEN)
            .map_err(sys("epoll add"))?;
        let shared = Arc::new(Shared::default());
        let engine = tunnel::Engine::new(sock, senders, Some(epfd.clone()), shared.clone());
        let thread = std::thread::Builder::new()
            .name("vswitch-vxlan".into())
            .spawn(move || engine.run())
            .map_err(sys("spawn tunnel thread"))?;
        Ok(TunnelHost {
            shared,
            epfd: Some(epfd),
            stop: Some(stop),
            thread: Some(thread),
            worker: None,
            local,
            dst_port,
        })
    }

    /// Binds the tunnel socket as [`start`](Self::start) does, but serves it from a worker
    /// of `dp` instead of a thread of its own: overlay switches go on that worker
    /// ([`Datapath::add_overlay_network`](crate::datapath::Datapath::add_overlay_network)) and
    /// get their tunnel port with [`attach_port`](Self::attach_port), so a frame between a
    /// container and the tunnel stays on one thread.
    pub fn start_on(
        dp: &mut crate::datapath::Datapath,
        local: SocketAddr,
        dst_port: u16,
    ) -> Result<TunnelHost, OverlayError> {
        let (sock, senders) = bind_sockets(local)?;
        let local = sock.local_addr();
        let shared = Arc::new(Shared::default());
        let engine = tunnel::Engine::new(sock, senders, None, shared.clone());
        let link = dp
            .add_tunnel(Box::new(engine))
            .map_err(|e| sys("start tunnel on a datapath worker")(io::Error::other(e)))?;
        Ok(TunnelHost {
            shared,
            epfd: None,
            stop: None,
            thread: None,
            worker: Some(link),
            local,
            dst_port,
        })
    }

    /// Attaches `vni` inline (see [`start_on`](Self::start_on)) and adds its tunnel port to
    /// `net`'s switch in `dp` (a network added with `add_overlay_network`); `flood` as in
    /// [`attach`](Self::attach). Returns the port.
    pub fn attach_port(
        &self,
        dp: &crate::datapath::Datapath,
        net: &str,
        vni: u32,
        flood: bool,
    ) -> Result<crate::switch::PortId, OverlayError> {
        if vni > VNI_MAX {
            return Err(OverlayError::BadVni(vni));
        }
        if self.worker.is_none() {
            return Err(OverlayError::Stopped);
        }
        {
            let mut t = self.shared.table();
            let v = t.vnis.entry(vni).or_default();
            if v.attached() {
                return Err(OverlayError::VniInUse(vni));
            }
            v.inline = true;
            v.flood = flood;
        }
        match dp.add_tunnel_port(net, vni) {
            Ok(p) => Ok(p),
            Err(e) => {
                if let Some(v) = self.shared.table().vnis.get_mut(&vni) {
                    v.inline = false;
                }
                Err(sys("add tunnel port")(io::Error::other(e)))
            }
        }
    }

    /// The bound address (with the actual port when bound to port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// A new tunnel port for the switch of overlay `vni`, to add to the datapath with
    /// [`PortConfig::tunnel`](crate::switch::PortConfig::tunnel). `flood` keeps head-end
    /// replication of broadcast and unknown unicast to the VNI's peers (flood-and-learn, as
    /// the kernel's `vxlan` with static peers); without it they are dropped (cluster mode).
    /// Peers and remote MACs set before the attach are kept.
    pub fn attach(&self, vni: u32, flood: bool) -> Result<PortIo, OverlayError> {
        if vni > VNI_MAX {
            return Err(OverlayError::BadVni(vni));
        }
        let Some(epfd) = self.epfd.as_ref().filter(|_| self.is_running()) else {
            return Err(OverlayError::Stopped);
        };
        let (theirs, ours) = crate::port::seqpacket_pair().map_err(sys("socketpair"))?;
        let ours = Arc::new(ours);
        {
            let mut t = self.shared.table();
            let v = t.vnis.entry(vni).or_default();
            if v.attached() {
                return Err(OverlayError::VniInUse(vni));
            }
            v.pair = Some(ours.clone());
            v.open = true;
            v.flood = flood;
        }
        if let Err(e) = tunnel::epoll_add(epfd.as_raw_fd(), ours.as_raw_fd(), u64::from(vni)) {
            if let Some(v) = self.shared.table().vnis.get_mut(&vni) {
                v.pair = None;
                v.open = false;
            }
            return Err(sys("epoll add")(e));
        }
        // Offloads: the datapath hands TSO frames over whole; the tunnel thread segments
        // them straight into its send batch (one message instead of one per segment).
        Ok(PortIo {
            file: std::fs::File::from(theirs),
            offload: true,
            delete_on_close: None,
            queues: Vec::new(),
        })
    }

    /// Closes the tunnel port of `vni` and forgets the VNI (peers, remote MACs, counters);
    /// its datagrams are dropped from now on. Remove the port from the datapath first.
    pub fn detach(&self, vni: u32) -> Result<(), OverlayError> {
        let v = self.shared.table().vnis.remove(&vni);
        match v {
            Some(Vni {
                pair: Some(pair), ..
            }) => {
                // Already gone from the set when the switch side closed first.
                if let Some(ep) = &self.epfd {
                    let _ = tunnel::epoll_del(ep.as_raw_fd(), pair.as_raw_fd());
                }
                Ok(())
            }
            Some(Vni { inline: true, .. }) => Ok(()),
            _ => Err(OverlayError::NotAttached(vni)),
        }
    }

    /// The VNIs attached.
    pub fn vnis(&self) -> Vec<u32> {
        let t = self.shared.table();
        let mut v: Vec<u32> = t
            .vnis
            .iter()
            .filter(|(_, v)| v.attached())
            .map(|(n, _)| *n)
            .collect();
        v.sort_unstable();
        v
    }

    fn vtep_addr(&self, vtep: IpAddr) -> SocketAddr {
        SocketAddr::new(vtep.to_canonical(), self.dst_port)
    }

    /// Sends frames of `vni` for `mac` to `vtep` only (adding `vtep` as a peer of `vni` if
    /// it is not one).
    pub fn set_remote_mac(&self, vni: u32, mac: MacAddr, vtep: IpAddr) {
        self.add_peer(vni, vtep);
        let addr = self.vtep_addr(vtep);
        if let Some(v) = self.shared.table().vnis.get_mut(&vni) {
            v.macs.insert(mac, addr);
        }
    }

    /// Forgets where `mac` of `vni` is. `true` when it was known.
    pub fn remove_remote_mac(&self, vni: u32, mac: MacAddr) -> bool {
        self.shared
            .table()
            .vnis
            .get_mut(&vni)
            .is_some_and(|v| v.macs.remove(&mac).is_some())
    }

    /// The VTEP `mac` of `vni` is sent to, if set.
    pub fn remote_mac(&self, vni: u32, mac: MacAddr) -> Option<IpAddr> {
        let t = self.shared.table();
        t.vnis.get(&vni)?.macs.get(&mac).map(|a| a.ip())
    }

    /// Accepts datagrams of `vni` from `vtep` (and floods to it, if `vni` floods). `true`
    /// when new.
    pub fn add_peer(&self, vni: u32, vtep: IpAddr) -> bool {
        let addr = self.vtep_addr(vtep);
        let mut t = self.shared.table();
        let v = t.vnis.entry(vni).or_default();
        if !v.peers.contains(&addr) {
            v.peers.push(addr);
        }
        v.vteps.insert(addr.ip())
    }

    /// Stops accepting datagrams of `vni` from `vtep` and forgets the remote MACs behind it.
    /// `true` when it was a peer.
    pub fn remove_peer(&self, vni: u32, vtep: IpAddr) -> bool {
        let ip = vtep.to_canonical();
        let mut t = self.shared.table();
        let Some(v) = t.vnis.get_mut(&vni) else {
            return false;
        };
        v.peers.retain(|p| p.ip() != ip);
        v.macs.retain(|_, p| p.ip() != ip);
        v.vteps.remove(&ip)
    }

    /// The peers of `vni`.
    pub fn peers(&self, vni: u32) -> Vec<IpAddr> {
        let t = self.shared.table();
        t.vnis
            .get(&vni)
            .map(|v| v.peers.iter().map(|p| p.ip()).collect())
            .unwrap_or_default()
    }

    /// A snapshot of `vni`'s counters (`None` if the VNI is unknown).
    pub fn stats(&self, vni: u32) -> Option<TunnelStats> {
        self.shared.table().vnis.get(&vni).map(|v| v.stats)
    }

    /// A snapshot of the host-wide counters.
    pub fn host_stats(&self) -> HostStats {
        self.shared.table().host
    }

    /// The tunnel thread is running.
    pub fn is_running(&self) -> bool {
        self.worker.is_some() || self.thread.as_ref().is_some_and(|t| !t.is_finished())
    }

    /// Stops the tunnel thread and waits for it (idempotent; also done on drop). The ports
    /// stay open (frames sent to them are lost) until the `TunnelHost` is dropped, so a
    /// datapath still holding them does not see them hang up.
    pub fn shutdown(&mut self) {
        // The worker drops the engine (and its sockets) when the link goes.
        self.worker = None;
        if let (Some(t), Some(stop)) = (self.thread.take(), &self.stop) {
            let one: u64 = 1;
            // SAFETY: 8-byte write to our eventfd.
            unsafe {
                libc::write(
                    stop.as_raw_fd(),
                    &one as *const u64 as *const libc::c_void,
                    8,
                )
            };
            let _ = t.join();
        }
    }
}

impl Drop for TunnelHost {
    fn drop(&mut self) {
        self.shutdown();
    }
}

#[cfg(test)]
mod tests;
