//! The datapath engine: worker threads (one per core) each owning some networks' switches and
//! their ports. A worker waits on epoll, reads a batch of frames from a ready port into its
//! preallocated buffer pool, lets the switch decide for the whole batch, then writes each frame
//! out with `writev` (virtio-net header + frame), so 64 KiB TSO frames cross whole and nothing
//! is allocated per frame. The control plane talks to workers over a channel plus an eventfd.
//!
//! One worker may also serve the overlay tunnel socket ([`crate::overlay`]): its overlay
//! switches' tunnel ports are in-thread (frames go to the tunnel engine by a call, and
//! received datagrams are decapsulated and switched in the same thread).
//!
//! With [`Datapath::set_tap_queues`] (`--tap-queues N`) a bridge network spans N workers:
//! each keeps a replica of its switch and reads its own queue of every multiqueue TAP port,
//! and writes what it switches to the out port's queue of the same rank, so tun's per-flow
//! queue choice (flow hash, then the queue a flow was last written to) keeps a flow on one
//! worker both ways. Single-fd ports (NAT gateway socket, veth packet socket) are read by
//! the owner (rank 0) only and written by all. Replicas tell each other what they learn
//! (`Ctl::Learn`, a rare event); control requests go to all, counters are summed.

use crate::capture::Tap;
use crate::overlay::tunnel::Engine;
use crate::port::tap::VNET_HDR_LEN;
use crate::port::PortIo;
use crate::switch::{
    Counters, Decisions, FrameRef, PortConfig, PortId, PortKind, Switch, SwitchConfig,
};
use crate::wire::vnet_hdr::resolve_offloads;
use crate::wire::{ArpRepr, MacAddr, VnetHdr, VnetHdrRepr};
use crossbeam::channel::{self, Receiver, Sender};
use std::collections::HashMap;
use std::fs::File;
use std::io;
use std::net::{IpAddr, Ipv4Addr};
use std::os::unix::io::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::{Duration, Instant};

/// Frames read from one port before the switch decides (and before moving to the next port).
pub const BATCH: usize = 64;
/// Largest frame a TAP hands over: 64 KiB GSO frame + virtio-net header + Ethernet/VLAN.
pub const FRAME_BUF: usize = 65_536 + VNET_HDR_LEN + 64;
/// Outputs per batch the decision buffer holds without growing (floods count per port).
pub const TX_CAPACITY: usize = BATCH * 8;
/// How often a worker ages out forwarding entries when idle.
pub const TICK: Duration = Duration::from_millis(1000);
/// Scratch space for software segmentation of a GSO frame for a port without offloads.
pub const SCRATCH: usize = 2048;
const WAKE_TOKEN: u64 = u64::MAX;
/// vswitchd's default `--busy-poll-us`: long enough to span a request/response round trip
/// between two containers, so ping-pong traffic never waits for a wake-up (README,
/// Performance: RTT p50 0.86x → 0.58x of the bridge, 64 B UDP 0.25x → 0.54x). An idle
/// worker still sleeps: the cost is at most this much CPU per burst of traffic.
pub const DEFAULT_BUSY_POLL: Duration = Duration::from_micros(50);
/// Longest `--busy-poll-us` taken: beyond, a worker would hold a core for nothing.
pub const BUSY_POLL_MAX: Duration = Duration::from_millis(1);
/// vswitchd's default `--tap-queues`: each network on one worker, its TAPs with one queue.
pub const DEFAULT_TAP_QUEUES: usize = 1;
/// Epoll token of the overlay tunnel socket on the worker serving it.
const TUNNEL_TOKEN: u64 = u64::MAX - 1;
/// Bytes of frames the switch sends to a tunnel port while the worker is handing it received
/// frames (switch-made replies; the tunnel engine is busy then), sent right after.
const TUNNEL_DEFER_BYTES: usize = 16 * 1024;
/// Most such frames held.
const TUNNEL_DEFER_FRAMES: usize = 64;

#[derive(Debug, thiserror::Error)]
pub enum DatapathError {
    #[error("datapath: {op}: {source}")]
    Sys { op: &'static str, source: io::Error },
    #[error("datapath: network {0} is not on the datapath")]
    NoNetwork(String),
    #[error("datapath: switch: {0}")]
    Switch(String),
    #[error("datapath: worker stopped")]
    WorkerGone,
    #[error("datapath: network {0} has no {1}")]
    NoPort(String, PortId),
}

fn sys(op: &'static str) -> impl FnOnce(io::Error) -> DatapathError {
    move |source| DatapathError::Sys { op, source }
}

/// Per-network counters, for tests and `inspect`-style reporting.
#[derive(Debug, Clone, Default)]
pub struct NetStats {
    pub rx_frames: u64,
    pub tx_frames: u64,
    pub tx_dropped: u64,
    pub switch_drops: u64,
    pub fdb_entries: usize,
    pub rx_bytes: u64,
    pub tx_bytes: u64,
    /// Frames a capture could not take (its reader was behind).
    pub capture_dropped: u64,
}

/// Counters of one port since it was attached (frames and bytes without the vnet header).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PortCounters {
    pub rx_frames: u64,
    pub rx_bytes: u64,
    pub tx_frames: u64,
    pub tx_bytes: u64,
    /// Frames the port did not take (its queue was full, or the write failed).
    pub tx_dropped: u64,
}

/// Everything the metrics exporter reads of one network, copied by its worker(s) on request
/// (summed over the workers a network spans).
#[derive(Debug, Clone)]
pub struct NetSnapshot {
    /// Frames each worker serving the network received from its ports: (worker, frames).
    pub workers: Vec<(usize, u64)>,
    pub net: String,
    pub stats: NetStats,
    pub switch: Counters,
    pub ports: Vec<(PortId, PortKind, PortCounters)>,
    /// Captures attached now.
    pub captures: usize,
}

enum Ctl {
    AddNetwork {
        net: String,
        cfg: SwitchConfig,
        /// Every worker serving the network (more than one: spread over workers).
        workers: Vec<usize>,
    },
    /// The other workers' control channels, for MAC-learning hints.
    Peers(Vec<(Sender<Ctl>, OwnedFd)>),
    /// Another worker serving `net` learned `mac` behind `port`.
    Learn {
        net: String,
        mac: MacAddr,
        port: PortId,
    },
    RemoveNetwork {
        net: String,
    },
    AddPort {
        net: String,
        cfg: PortConfig,
        io: PortIo,
        /// This worker reads the port's fd (else it only writes to it, a queue another
        /// worker reads).
        read: bool,
        announce: Option<(MacAddr, Ipv4Addr)>,
        reply: Sender<Result<PortId, DatapathError>>,
    },
    RemovePort {
        net: String,
        port: PortId,
        reply: Sender<()>,
    },
    Stats {
        net: String,
        reply: Sender<Option<NetStats>>,
    },
    SetRemote {
        net: String,
        port: PortId,
        mac: MacAddr,
        ips: Vec<IpAddr>,
        reply: Sender<Result<(), DatapathError>>,
    },
    RemoveRemote {
        net: String,
        mac: MacAddr,
        reply: Sender<Result<(), DatapathError>>,
    },
    Snapshot {
        reply: Sender<Vec<NetSnapshot>>,
    },
    AddCapture {
        net: String,
        port: Option<PortId>,
        tap: Tap,
        reply: Sender<Result<(), DatapathError>>,
    },
    AddTunnel {
        engine: Box<Engine>,
        reply: Sender<Result<(), DatapathError>>,
    },
    RemoveTunnel,
    AddTunnelPort {
        net: String,
        vni: u32,
        reply: Sender<Result<PortId, DatapathError>>,
    },
}

/// The control plane's hold on the tunnel engine a worker serves
/// ([`crate::overlay::TunnelHost::start_on`]); dropping it stops the tunnel there.
pub(crate) struct TunnelLink {
    tx: Sender<Ctl>,
    wake: OwnedFd,
}

impl std::fmt::Debug for TunnelLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TunnelLink")
    }
}

impl Drop for TunnelLink {
    fn drop(&mut self) {
        if self.tx.send(Ctl::RemoveTunnel).is_ok() {
            let one: u64 = 1;
            // SAFETY: 8-byte write to our eventfd.
            unsafe { libc::write(self.wake.as_raw_fd(), &one as *const u64 as *const _, 8) };
        }
    }
}

struct WorkerHandle {
    tx: Sender<Ctl>,
    wake: OwnedFd,
    networks: usize,
}

/// Handle the control plane holds.
pub struct Datapath {
    workers: Vec<WorkerHandle>,
    /// network id → the workers serving it, the owner first (it alone reads single-queue
    /// ports such as the NAT gateway's; the others only write to them).
    placement: HashMap<String, Vec<usize>>,
    /// The worker serving the overlay tunnel, if one does.
    tunnel_worker: Option<usize>,
    /// Workers a bridge network spans, each with a replica of its switch and its own queue
    /// of every multiqueue TAP port (`--tap-queues`; 1: one worker per network).
    spread: usize,
}

impl Datapath {
    /// Start `workers` threads (0 = one per core).
    pub fn start(workers: usize) -> Result<Datapath, DatapathError> {
        Datapath::start_polling(workers, Duration::ZERO)
    }

    /// As [`Datapath::start`], with workers that keep polling (epoll with no timeout) for
    /// `busy_poll` after their last event before they sleep: fewer wake-ups under load, at
    /// the price of CPU (capped by [`BUSY_POLL_MAX`]).
    pub fn start_polling(workers: usize, busy_poll: Duration) -> Result<Datapath, DatapathError> {
        let busy_poll = busy_poll.min(BUSY_POLL_MAX);
        let n = if workers == 0 {
            std::thread::available_parallelism().map_or(1, |n| n.get())
        } else {
            workers
        };
        let mut hs = Vec::with_capacity(n);
        for i in 0..n {
            let (tx, rx) = channel::unbounded();
            // SAFETY: eventfd returns a new fd or -1.
            let efd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
            if efd < 0 {
                return Err(DatapathError::Sys {
                    op: "eventfd",
                    source: io::Error::last_os_error(),
                });
            }
            // SAFETY: efd is a fresh fd we own.
            let wake = unsafe { OwnedFd::from_raw_fd(efd) };
            let wfd = wake.try_clone().map_err(sys("dup eventfd"))?;
            let mut w = Worker::new(i, rx, wfd)?;
            w.busy_poll = busy_poll;
            std::thread::Builder::new()
                .name(format!("vswitch-dp{i}"))
                .spawn(move || w.run())
                .map_err(sys("spawn worker"))?;
            hs.push(WorkerHandle {
                tx,
                wake,
                networks: 0,
            });
        }
        let dp = Datapath {
            workers: hs,
            placement: HashMap::new(),
            tunnel_worker: None,
            spread: DEFAULT_TAP_QUEUES,
        };
        if n > 1 {
            for w in 0..n {
                let mut peers = Vec::with_capacity(n);
                for h in &dp.workers {
                    peers.push((
                        h.tx.clone(),
                        h.wake.try_clone().map_err(sys("dup eventfd"))?,
                    ));
                }
                dp.send(w, Ctl::Peers(peers))?;
            }
        }
        Ok(dp)
    }

    /// Bridge networks added from now on span `queues` workers (at most all of them): each
    /// of those serves one queue of each multiqueue TAP port, so the kernel's per-flow queue
    /// choice spreads flows over workers while each flow stays on one.
    pub fn set_tap_queues(&mut self, queues: usize) {
        self.spread = queues.clamp(1, self.workers.len().max(1));
    }

    /// Queues a TAP port of `net` should have: one per worker serving it.
    pub fn queues_of(&self, net: &str) -> usize {
        self.placement.get(net).map_or(1, Vec::len)
    }

    /// Sends each worker serving `net` the request `make` builds (from its rank among them and
    /// a reply channel) and waits for all the answers, in rank order.
    fn ask_all<T>(
        &self,
        net: &str,
        mut make: impl FnMut(usize, Sender<T>) -> Ctl,
    ) -> Result<Vec<T>, DatapathError> {
        let ws = self
            .placement
            .get(net)
            .ok_or_else(|| DatapathError::NoNetwork(net.to_string()))?;
        let mut waits = Vec::with_capacity(ws.len());
        for (rank, &w) in ws.iter().enumerate() {
            let (tx, rx) = channel::bounded(1);
            self.send(w, make(rank, tx))?;
            waits.push(rx);
        }
        waits
            .into_iter()
            .map(|rx| rx.recv().map_err(|_| DatapathError::WorkerGone))
            .collect()
    }

    /// Sends `net`'s worker the request `make` builds around a reply channel and waits for
    /// the answer.
    fn ask<T>(&self, net: &str, make: impl FnOnce(Sender<T>) -> Ctl) -> Result<T, DatapathError> {
        let w = self.worker_of(net)?;
        let (tx, rx) = channel::bounded(1);
        self.send(w, make(tx))?;
        rx.recv().map_err(|_| DatapathError::WorkerGone)
    }

    fn send(&self, w: usize, ctl: Ctl) -> Result<(), DatapathError> {
        let h = &self.workers[w];
        h.tx.send(ctl).map_err(|_| DatapathError::WorkerGone)?;
        let one: u64 = 1;
        // SAFETY: 8-byte write to our eventfd.
        unsafe { libc::write(h.wake.as_raw_fd(), &one as *const u64 as *const _, 8) };
        Ok(())
    }

    fn worker_of(&self, net: &str) -> Result<usize, DatapathError> {
        self.placement
            .get(net)
            .and_then(|ws| ws.first())
            .copied()
            .ok_or_else(|| DatapathError::NoNetwork(net.to_string()))
    }

    /// Worker threads running.
    pub fn worker_count(&self) -> usize {
        self.workers.len()
    }

    pub fn has_network(&self, net: &str) -> bool {
        self.placement.contains_key(net)
    }

    /// Put a network's switch on the least loaded worker, or replicas of it on the
    /// [`Datapath::set_tap_queues`] least loaded ones.
    pub fn add_network(&mut self, net: &str, cfg: SwitchConfig) -> Result<(), DatapathError> {
        if self.placement.contains_key(net) {
            return Ok(());
        }
        let mut order: Vec<usize> = (0..self.workers.len()).collect();
        order.sort_by_key(|&i| (self.workers[i].networks, i));
        order.truncate(self.spread.max(1));
        self.place_on(order, net, cfg)
    }

    fn place_on(
        &mut self,
        ws: Vec<usize>,
        net: &str,
        cfg: SwitchConfig,
    ) -> Result<(), DatapathError> {
        for &w in &ws {
            self.send(
                w,
                Ctl::AddNetwork {
                    net: net.to_string(),
                    cfg: cfg.clone(),
                    workers: ws.clone(),
                },
            )?;
            self.workers[w].networks += 1;
        }
        self.placement.insert(net.to_string(), ws);
        Ok(())
    }

    /// Put an overlay network's switch on the worker serving the tunnel (see
    /// [`crate::overlay::TunnelHost::start_on`]), or the least loaded one when none does.
    pub fn add_overlay_network(
        &mut self,
        net: &str,
        cfg: SwitchConfig,
    ) -> Result<(), DatapathError> {
        let Some(w) = self.tunnel_worker else {
            // Overlay state (tunnel port, remote endpoints) has one owner: never spread.
            if self.placement.contains_key(net) {
                return Ok(());
            }
            let w = (0..self.workers.len())
                .min_by_key(|&i| self.workers[i].networks)
                .unwrap_or(0);
            return self.place_on(vec![w], net, cfg);
        };
        if let Some(at) = self.placement.get(net) {
            return if at[..] == [w] {
                Ok(())
            } else {
                Err(DatapathError::Switch(format!(
                    "network {net} is not on the tunnel's worker"
                )))
            };
        }
        self.place_on(vec![w], net, cfg)
    }

    /// Hands the tunnel engine to the least loaded worker, which serves its socket from its
    /// own event loop from now on.
    pub(crate) fn add_tunnel(&mut self, engine: Box<Engine>) -> Result<TunnelLink, DatapathError> {
        if self.tunnel_worker.is_some() {
            return Err(DatapathError::Switch("a tunnel is served already".into()));
        }
        let w = (0..self.workers.len())
            .min_by_key(|&i| self.workers[i].networks)
            .unwrap_or(0);
        let (tx, rx) = channel::bounded(1);
        self.send(w, Ctl::AddTunnel { engine, reply: tx })?;
        rx.recv().map_err(|_| DatapathError::WorkerGone)??;
        let h = &self.workers[w];
        self.tunnel_worker = Some(w);
        Ok(TunnelLink {
            tx: h.tx.clone(),
            wake: h.wake.try_clone().map_err(sys("dup eventfd"))?,
        })
    }

    /// Adds the tunnel port of overlay `vni` to `net`'s switch (on the tunnel's worker):
    /// frames to it are encapsulated in that thread, datagrams for `vni` are handed to the
    /// switch there.
    pub(crate) fn add_tunnel_port(&self, net: &str, vni: u32) -> Result<PortId, DatapathError> {
        self.ask(net, |reply| Ctl::AddTunnelPort {
            net: net.to_string(),
            vni,
            reply,
        })?
    }

    /// Remove a network and close all its ports (their interfaces disappear).
    pub fn remove_network(&mut self, net: &str) -> Result<(), DatapathError> {
        let Some(ws) = self.placement.remove(net) else {
            return Ok(());
        };
        for w in ws {
            self.workers[w].networks = self.workers[w].networks.saturating_sub(1);
            self.send(
                w,
                Ctl::RemoveNetwork {
                    net: net.to_string(),
                },
            )?;
        }
        Ok(())
    }

    /// Attach a port (TAP or veth). `announce` sends a gratuitous ARP for the port's address once
    /// it is up, so neighbours refresh stale entries.
    pub fn add_port(
        &self,
        net: &str,
        cfg: PortConfig,
        io: PortIo,
        announce: Option<(MacAddr, Ipv4Addr)>,
    ) -> Result<PortId, DatapathError> {
        let k = self.queues_of(net);
        let mut ios: Vec<Option<(PortIo, bool)>> =
            split_queues(io, k)?.into_iter().map(Some).collect();
        let rs = self.ask_all(net, |rank, reply| {
            let (io, read) = ios[rank].take().expect("one I/O per worker");
            Ctl::AddPort {
                net: net.to_string(),
                cfg: cfg.clone(),
                io,
                read,
                // One announcement, from the owner.
                announce: announce.filter(|_| rank == 0),
                reply,
            }
        })?;
        // Replicas see the same port changes in the same order, so they agree on the id;
        // should they not, the port goes from all.
        if rs.len() == 1 {
            return rs
                .into_iter()
                .next()
                .unwrap_or(Err(DatapathError::WorkerGone));
        }
        let first = rs.iter().find_map(|r| r.as_ref().ok().copied());
        if let Some(id) = first.filter(|id| rs.iter().all(|r| r.as_ref().ok() == Some(id))) {
            return Ok(id);
        }
        let agreed = match rs.iter().find_map(|r| r.as_ref().err()) {
            Some(e) => Err(DatapathError::Switch(e.to_string())),
            None => Err(DatapathError::Switch(format!(
                "network {net}: the workers disagree on the new port's id"
            ))),
        };
        for (rank, &w) in self.placement[net].iter().enumerate() {
            let Some(Ok(id)) = rs.get(rank) else { continue };
            let (tx, rx) = channel::bounded(1);
            self.send(
                w,
                Ctl::RemovePort {
                    net: net.to_string(),
                    port: *id,
                    reply: tx,
                },
            )?;
            let _ = rx.recv();
        }
        agreed
    }

    /// Detach a port; returns once its fds are closed (the interface is gone).
    pub fn remove_port(&self, net: &str, port: PortId) -> Result<(), DatapathError> {
        self.ask_all(net, |_, reply| Ctl::RemovePort {
            net: net.to_string(),
            port,
            reply,
        })
        .map(|_| ())
    }

    /// Registers a container of another host behind the tunnel port `port` of `net`'s switch
    /// ([`Switch::set_remote_endpoint`]: static MAC entry, ARP answered for `ips`).
    pub fn set_remote_endpoint(
        &self,
        net: &str,
        port: PortId,
        mac: MacAddr,
        ips: Vec<IpAddr>,
    ) -> Result<(), DatapathError> {
        self.ask_all(net, |_, reply| Ctl::SetRemote {
            net: net.to_string(),
            port,
            mac,
            ips: ips.clone(),
            reply,
        })?
        .into_iter()
        .collect()
    }

    /// Forgets a remote endpoint of `net` (nothing to do if it is not known).
    pub fn remove_remote_endpoint(&self, net: &str, mac: MacAddr) -> Result<(), DatapathError> {
        self.ask_all(net, |_, reply| Ctl::RemoveRemote {
            net: net.to_string(),
            mac,
            reply,
        })?
        .into_iter()
        .collect()
    }

    /// `net`'s counters, summed over the workers serving it.
    pub fn stats(&self, net: &str) -> Result<Option<NetStats>, DatapathError> {
        let all = self.ask_all(net, |_, reply| Ctl::Stats {
            net: net.to_string(),
            reply,
        })?;
        Ok(all.into_iter().flatten().reduce(|mut a, b| {
            a.add(&b);
            a
        }))
    }

    /// Every network's counters, from every worker (each copies its own between batches).
    pub fn snapshot(&self) -> Result<Vec<NetSnapshot>, DatapathError> {
        let mut waits = Vec::with_capacity(self.workers.len());
        for w in 0..self.workers.len() {
            let (tx, rx) = channel::bounded(1);
            self.send(w, Ctl::Snapshot { reply: tx })?;
            waits.push(rx);
        }
        let mut out: Vec<NetSnapshot> = Vec::new();
        let mut at: HashMap<String, usize> = HashMap::new();
        for rx in waits {
            for s in rx.recv().map_err(|_| DatapathError::WorkerGone)? {
                match at.get(&s.net) {
                    Some(&i) => out[i].add(&s),
                    None => {
                        at.insert(s.net.clone(), out.len());
                        out.push(s);
                    }
                }
            }
        }
        Ok(out)
    }

    /// Attaches a capture to `net` (one port of it when `port` is given; see
    /// [`crate::capture`]). It lasts until its reader is dropped.
    pub fn add_capture(
        &self,
        net: &str,
        port: Option<PortId>,
        tap: Tap,
    ) -> Result<(), DatapathError> {
        // Each worker serving the network feeds the one reader.
        let k = self.queues_of(net);
        let mut taps: Vec<Option<Tap>> = (1..k).map(|_| Some(tap.share())).collect();
        taps.push(Some(tap));
        self.ask_all(net, |rank, reply| Ctl::AddCapture {
            net: net.to_string(),
            port,
            tap: taps[rank].take().expect("one tap per worker"),
            reply,
        })?
        .into_iter()
        .collect()
    }
}

impl NetStats {
    /// Adds another worker's counters of the same network (FDB sizes: the largest replica).
    fn add(&mut self, o: &NetStats) {
        self.rx_frames += o.rx_frames;
        self.tx_frames += o.tx_frames;
        self.tx_dropped += o.tx_dropped;
        self.switch_drops += o.switch_drops;
        self.fdb_entries = self.fdb_entries.max(o.fdb_entries);
        self.rx_bytes += o.rx_bytes;
        self.tx_bytes += o.tx_bytes;
        self.capture_dropped += o.capture_dropped;
    }
}

impl NetSnapshot {
    /// Adds another worker's snapshot of the same network.
    fn add(&mut self, o: &NetSnapshot) {
        self.workers.extend_from_slice(&o.workers);
        self.stats.add(&o.stats);
        self.switch.add(&o.switch);
        for (id, kind, c) in &o.ports {
            match self.ports.iter_mut().find(|p| p.0 == *id) {
                Some(p) => {
                    p.2.rx_frames += c.rx_frames;
                    p.2.rx_bytes += c.rx_bytes;
                    p.2.tx_frames += c.tx_frames;
                    p.2.tx_bytes += c.tx_bytes;
                    p.2.tx_dropped += c.tx_dropped;
                }
                None => self.ports.push((*id, *kind, *c)),
            }
        }
        self.captures = self.captures.max(o.captures);
    }
}

/// One port I/O per worker serving its network (`k` of them): worker `r` reads queue `r`
/// when the port has that many (a multiqueue TAP made with [`Datapath::queues_of`] queues
/// does), else only writes to a duplicate of queue `r % queues` (a single-fd port: the
/// NAT gateway's socket, a veth's packet socket; writes of one frame are atomic there).
/// Queues beyond `k` are closed, so the kernel never picks a queue nobody reads.
fn split_queues(io: PortIo, k: usize) -> Result<Vec<(PortIo, bool)>, DatapathError> {
    let PortIo {
        file,
        offload,
        delete_on_close,
        queues,
    } = io;
    let mut files: Vec<File> = std::iter::once(file).chain(queues).collect();
    files.truncate(k.max(1));
    let q = files.len();
    let mut dups = Vec::with_capacity(k.saturating_sub(q));
    for r in q..k {
        dups.push(files[r % q].try_clone().map_err(sys("dup port fd"))?);
    }
    let mut out = Vec::with_capacity(k.max(1));
    for (r, f) in files.into_iter().chain(dups).enumerate() {
        let io = PortIo {
            file: f,
            offload,
            // The owner's slot deletes a veth when the port goes.
            delete_on_close: delete_on_close.clone().filter(|_| r == 0),
            queues: Vec::new(),
        };
        out.push((io, r < q));
    }
    Ok(out)
}

struct Slot {
    net: usize,
    port: PortId,
    file: File,
    offload: bool,
    delete_on_close: Option<String>,
}

struct NetState {
    id: String,
    switch: Switch,
    /// PortId index → slot in `Worker::ports`.
    slots: Vec<Option<usize>>,
    stats: NetStats,
    /// PortId index → counters of the port there now.
    port_stats: Vec<PortCounters>,
    /// Active captures (usually none).
    taps: Vec<Tap>,
    /// The in-thread tunnel port and its VNI (overlays on the tunnel's worker).
    tunnel: Option<(PortId, u32)>,
    /// The other workers serving this network (each with its own replica of the switch).
    peers: Vec<usize>,
}

impl NetState {
    /// Counts one frame sent (or dropped) on `port` and offers it to the captures that
    /// want it (`bytes` without the virtio-net header).
    fn count_tx(&mut self, port: PortId, ok: bool, bytes: &[u8], reply: bool) {
        let len = bytes.len() as u64;
        let c = self.port_stats.get_mut(port.index());
        if ok {
            self.stats.tx_frames += 1;
            self.stats.tx_bytes += len;
            if let Some(c) = c {
                c.tx_frames += 1;
                c.tx_bytes += len;
            }
        } else {
            self.stats.tx_dropped += 1;
            if let Some(c) = c {
                c.tx_dropped += 1;
            }
        }
        for t in self.taps.iter_mut().filter(|t| t.wants_tx(port, reply)) {
            if t.offer(bytes) {
                self.stats.capture_dropped += 1;
            }
        }
    }
}

struct Worker {
    /// This worker's index (thread `vswitch-dp<index>`).
    index: usize,
    /// Every worker's control channel, by index (empty with one worker).
    peers: Vec<(Sender<Ctl>, OwnedFd)>,
    rx: Receiver<Ctl>,
    wake: OwnedFd,
    epfd: OwnedFd,
    nets: Vec<Option<NetState>>,
    net_index: HashMap<String, usize>,
    ports: Vec<Option<Slot>>,
    /// The buffer pool: BATCH buffers of FRAME_BUF bytes, allocated once.
    bufs: Vec<Vec<u8>>,
    lens: Vec<usize>,
    decisions: Decisions,
    scratch: Vec<u8>,
    /// Copy of a frame being segmented for a port without offloads (allocated once).
    seg_frame: Vec<u8>,
    reply_hdr: [u8; VNET_HDR_LEN],
    start: Instant,
    last_tick: Instant,
    /// The overlay tunnel engine, on the worker serving it (taken out while it hands
    /// received frames over).
    tunnel: Option<Box<Engine>>,
    /// VNI → network index, for the tunnel ports on this worker.
    tunnel_nets: HashMap<u32, usize>,
    /// Frames for tunnel ports held while the engine is taken out: bytes, (VNI, end).
    defer_buf: Vec<u8>,
    defer: Vec<(u32, usize)>,
    /// Frames for tunnel ports are deferred (not dropped) while the engine is out.
    deferring: bool,
    /// Keep polling this long after the last event (zero: sleep at once).
    busy_poll: Duration,
}

impl Worker {
    fn new(index: usize, rx: Receiver<Ctl>, wake: OwnedFd) -> Result<Worker, DatapathError> {
        // SAFETY: epoll_create1 returns a new fd or -1.
        let ep = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if ep < 0 {
            return Err(DatapathError::Sys {
                op: "epoll_create1",
                source: io::Error::last_os_error(),
            });
        }
        // SAFETY: fresh fd.
        let epfd = unsafe { OwnedFd::from_raw_fd(ep) };
        epoll_add(epfd.as_raw_fd(), wake.as_raw_fd(), WAKE_TOKEN).map_err(sys("epoll add"))?;
        let mut reply_hdr = [0u8; VNET_HDR_LEN];
        let _ = VnetHdrRepr::NONE.emit(&mut reply_hdr);
        Ok(Worker {
            index,
            peers: Vec::new(),
            rx,
            wake,
            epfd,
            nets: Vec::new(),
            net_index: HashMap::new(),
            ports: Vec::new(),
            bufs: (0..BATCH).map(|_| vec![0u8; FRAME_BUF]).collect(),
            lens: vec![0; BATCH],
            decisions: Decisions::with_capacity(BATCH, TX_CAPACITY),
            scratch: vec![0u8; SCRATCH],
            seg_frame: vec![0u8; FRAME_BUF],
            reply_hdr,
            start: Instant::now(),
            last_tick: Instant::now(),
            tunnel: None,
            tunnel_nets: HashMap::new(),
            busy_poll: Duration::ZERO,
            defer_buf: Vec::with_capacity(TUNNEL_DEFER_BYTES),
            defer: Vec::with_capacity(TUNNEL_DEFER_FRAMES),
            deferring: false,
        })
    }

    fn run(&mut self) {
        let mut events = vec![libc::epoll_event { events: 0, u64: 0 }; 64];
        let mut last_event = Instant::now();
        loop {
            let polling = !self.busy_poll.is_zero() && last_event.elapsed() < self.busy_poll;
            let timeout = if polling { 0 } else { TICK.as_millis() as i32 };
            // SAFETY: events buffer is valid for its length.
            let n = unsafe {
                libc::epoll_wait(
                    self.epfd.as_raw_fd(),
                    events.as_mut_ptr(),
                    events.len() as i32,
                    timeout,
                )
            };
            if n > 0 && !self.busy_poll.is_zero() {
                last_event = Instant::now();
            }
            if n < 0 {
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                tracing::error!("datapath worker: epoll_wait: {e}");
                return;
            }
            for ev in events.iter().take(n as usize) {
                let token = ev.u64;
                if token == WAKE_TOKEN {
                    let mut v = 0u64;
                    // SAFETY: 8-byte read from our eventfd.
                    unsafe { libc::read(self.wake.as_raw_fd(), &mut v as *mut u64 as *mut _, 8) };
                    if !self.control() {
                        return;
                    }
                } else if token == TUNNEL_TOKEN {
                    self.service_tunnel();
                } else {
                    self.service(token as usize, ev.events);
                }
            }
            if self.last_tick.elapsed() >= TICK {
                self.last_tick = Instant::now();
                let now = self.start.elapsed();
                for n in self.nets.iter_mut().flatten() {
                    n.switch.expire(now);
                    n.taps.retain(|t| !t.is_closed());
                }
            }
        }
    }

    /// Apply pending control messages; false when the control plane is gone.
    fn control(&mut self) -> bool {
        loop {
            match self.rx.try_recv() {
                Ok(c) => self.apply(c),
                Err(channel::TryRecvError::Empty) => return true,
                Err(channel::TryRecvError::Disconnected) => return false,
            }
        }
    }

    fn apply(&mut self, c: Ctl) {
        match c {
            Ctl::AddNetwork { net, cfg, workers } => {
                let idx = self
                    .nets
                    .iter()
                    .position(Option::is_none)
                    .unwrap_or_else(|| {
                        self.nets.push(None);
                        self.nets.len() - 1
                    });
                self.nets[idx] = Some(NetState {
                    id: net.clone(),
                    switch: Switch::new(cfg),
                    slots: Vec::new(),
                    stats: NetStats::default(),
                    port_stats: Vec::new(),
                    taps: Vec::new(),
                    tunnel: None,
                    peers: workers.into_iter().filter(|&w| w != self.index).collect(),
                });
                self.net_index.insert(net, idx);
            }
            Ctl::Peers(peers) => self.peers = peers,
            Ctl::Learn { net, mac, port } => {
                let now = self.start.elapsed();
                if let Ok(sw) = self.switch_mut(&net) {
                    sw.learn_hint(mac, port, now);
                }
            }
            Ctl::RemoveNetwork { net } => {
                if let Some(idx) = self.net_index.remove(&net) {
                    if let Some(n) = self.nets[idx].take() {
                        if let Some((_, vni)) = n.tunnel {
                            self.tunnel_nets.remove(&vni);
                        }
                        for slot in n.slots.into_iter().flatten() {
                            self.close_slot(slot);
                        }
                    }
                }
            }
            Ctl::AddPort {
                net,
                cfg,
                io,
                read,
                announce,
                reply,
            } => {
                let _ = reply.send(self.add_port(&net, cfg, io, read, announce));
            }
            Ctl::RemovePort { net, port, reply } => {
                if let Some(&idx) = self.net_index.get(&net) {
                    if let Some(n) = self.nets[idx].as_mut() {
                        let _ = n.switch.remove_port(port);
                        // A capture of this port ends with it (its id may be reused).
                        n.taps
                            .retain(|t| t.scope() != crate::capture::Scope::Port(port));
                        if let Some((_, vni)) = n.tunnel.filter(|t| t.0 == port) {
                            n.tunnel = None;
                            self.tunnel_nets.remove(&vni);
                        }
                        if let Some(slot) = n.slots.get_mut(port.index()).and_then(Option::take) {
                            self.close_slot(slot);
                        }
                    }
                }
                let _ = reply.send(());
            }
            Ctl::SetRemote {
                net,
                port,
                mac,
                ips,
                reply,
            } => {
                let r = self.switch_mut(&net).and_then(|sw| {
                    sw.set_remote_endpoint(port, mac, &ips)
                        .map_err(|e| DatapathError::Switch(e.to_string()))
                });
                let _ = reply.send(r);
            }
            Ctl::RemoveRemote { net, mac, reply } => {
                let r = self.switch_mut(&net).map(|sw| {
                    sw.remove_remote_endpoint(mac);
                });
                let _ = reply.send(r);
            }
            Ctl::Stats { net, reply } => {
                let s = self
                    .net_index
                    .get(&net)
                    .and_then(|&i| self.nets[i].as_ref())
                    .map(|n| {
                        let mut s = n.stats.clone();
                        s.switch_drops = n.switch.counters().total_drops();
                        s.fdb_entries = n.switch.fdb().len();
                        s
                    });
                let _ = reply.send(s);
            }
            Ctl::Snapshot { reply } => {
                let v = self
                    .nets
                    .iter()
                    .flatten()
                    .map(|n| snapshot_of(self.index, n))
                    .collect();
                let _ = reply.send(v);
            }
            Ctl::AddCapture {
                net,
                port,
                tap,
                reply,
            } => {
                let r = match self
                    .net_index
                    .get(&net)
                    .and_then(|&i| self.nets[i].as_mut())
                {
                    None => Err(DatapathError::NoNetwork(net)),
                    Some(n) => match port {
                        Some(p)
                            if n.slots.get(p.index()).copied().flatten().is_none()
                                && n.tunnel.is_none_or(|t| t.0 != p) =>
                        {
                            Err(DatapathError::NoPort(net, p))
                        }
                        _ => {
                            n.taps.retain(|t| !t.is_closed());
                            n.taps.push(tap);
                            Ok(())
                        }
                    },
                };
                let _ = reply.send(r);
            }
            Ctl::AddTunnel { engine, reply } => {
                let r = if self.tunnel.is_some() {
                    Err(DatapathError::Switch("a tunnel is served already".into()))
                } else {
                    epoll_add(self.epfd.as_raw_fd(), engine.socket_fd(), TUNNEL_TOKEN)
                        .map_err(sys("epoll add tunnel socket"))
                        .map(|()| self.tunnel = Some(engine))
                };
                let _ = reply.send(r);
            }
            Ctl::RemoveTunnel => {
                if let Some(e) = self.tunnel.take() {
                    let _ = epoll_del(self.epfd.as_raw_fd(), e.socket_fd());
                }
            }
            Ctl::AddTunnelPort { net, vni, reply } => {
                let _ = reply.send(self.add_tunnel_port(&net, vni));
            }
        }
    }

    fn add_tunnel_port(&mut self, net: &str, vni: u32) -> Result<PortId, DatapathError> {
        if self.tunnel.is_none() {
            return Err(DatapathError::Switch(format!(
                "network {net}: the tunnel is not served by this network's worker"
            )));
        }
        if self.tunnel_nets.contains_key(&vni) {
            return Err(DatapathError::Switch(format!(
                "VNI {vni} has a port already"
            )));
        }
        let (idx, n) = net_state(&self.net_index, &mut self.nets, net)?;
        if n.tunnel.is_some() {
            return Err(DatapathError::Switch(format!(
                "network {net} has a tunnel port"
            )));
        }
        let port = n
            .switch
            .add_port(PortConfig::tunnel())
            .map_err(|e| DatapathError::Switch(e.to_string()))?;
        if n.port_stats.len() <= port.index() {
            n.port_stats
                .resize(port.index() + 1, PortCounters::default());
        }
        n.port_stats[port.index()] = PortCounters::default();
        n.tunnel = Some((port, vni));
        self.tunnel_nets.insert(vni, idx);
        Ok(port)
    }

    /// Receives from the tunnel socket: the engine decapsulates (and merges TCP segments),
    /// and each network's frames are switched here in batches, in this thread.
    fn service_tunnel(&mut self) {
        let Some(mut engine) = self.tunnel.take() else {
            return;
        };
        self.deferring = true;
        // The batch being filled: (network, tunnel port) and frames in `bufs`.
        let mut to: Option<(usize, PortId)> = None;
        let mut count = 0;
        engine.service_underlay(&mut |vni, hdr, frame| {
            let Some(&net) = self.tunnel_nets.get(&vni) else {
                return false;
            };
            let Some((port, _)) = self
                .nets
                .get(net)
                .and_then(Option::as_ref)
                .and_then(|n| n.tunnel)
            else {
                return false;
            };
            if count == BATCH || to.is_some_and(|t| t != (net, port)) {
                if let Some((n, p)) = to {
                    self.switch_batch(n, &[p; BATCH][..count], count);
                }
                count = 0;
            }
            let len = VNET_HDR_LEN + frame.len();
            let Some(buf) = self.bufs.get_mut(count).and_then(|b| b.get_mut(..len)) else {
                return false;
            };
            buf[..VNET_HDR_LEN].copy_from_slice(hdr);
            buf[VNET_HDR_LEN..].copy_from_slice(frame);
            self.lens[count] = len;
            count += 1;
            to = Some((net, port));
            true
        });
        if let Some((n, p)) = to.filter(|_| count > 0) {
            self.switch_batch(n, &[p; BATCH][..count], count);
        }
        self.deferring = false;
        // What the switch sent to tunnel ports meanwhile (replies) goes out now.
        let mut start = 0;
        for &(vni, end) in &self.defer {
            let whole = &self.defer_buf[start..end];
            if !engine.push(vni, whole) {
                engine.flush();
                engine.push(vni, whole);
            }
            start = end;
        }
        self.defer.clear();
        self.defer_buf.clear();
        engine.flush();
        self.tunnel = Some(engine);
    }

    fn switch_mut(&mut self, net: &str) -> Result<&mut Switch, DatapathError> {
        net_state(&self.net_index, &mut self.nets, net).map(|(_, n)| &mut n.switch)
    }

    fn add_port(
        &mut self,
        net: &str,
        cfg: PortConfig,
        io: PortIo,
        read: bool,
        announce: Option<(MacAddr, Ipv4Addr)>,
    ) -> Result<PortId, DatapathError> {
        let (idx, n) = net_state(&self.net_index, &mut self.nets, net)?;
        let port = n
            .switch
            .add_port(cfg)
            .map_err(|e| DatapathError::Switch(e.to_string()))?;
        let PortIo {
            file,
            offload,
            delete_on_close,
            queues: _,
        } = io;
        let slot = self
            .ports
            .iter()
            .position(Option::is_none)
            .unwrap_or_else(|| {
                self.ports.push(None);
                self.ports.len() - 1
            });
        let polled = if read {
            epoll_add(self.epfd.as_raw_fd(), file.as_raw_fd(), slot as u64)
        } else {
            Ok(())
        };
        if let Err(e) = polled {
            let _ = n.switch.remove_port(port);
            if let Some(h) = &delete_on_close {
                crate::port::veth::delete(h);
            }
            return Err(DatapathError::Sys {
                op: "epoll add port",
                source: e,
            });
        }
        if n.slots.len() <= port.index() {
            n.slots.resize(port.index() + 1, None);
        }
        n.slots[port.index()] = Some(slot);
        if n.port_stats.len() <= port.index() {
            n.port_stats
                .resize(port.index() + 1, PortCounters::default());
        }
        n.port_stats[port.index()] = PortCounters::default();
        self.ports[slot] = Some(Slot {
            net: idx,
            port,
            file,
            offload,
            delete_on_close,
        });
        if let Some((mac, ip)) = announce {
            self.announce(idx, port, mac, ip);
        }
        Ok(port)
    }

    /// A gratuitous ARP from the new port, switched like any frame it sent.
    fn announce(&mut self, net: usize, port: PortId, mac: MacAddr, ip: Ipv4Addr) {
        let buf = &mut self.bufs[0];
        let _ = VnetHdrRepr::NONE.emit(&mut buf[..VNET_HDR_LEN]);
        let Ok(len) = ArpRepr::gratuitous(mac, ip).emit_frame(
            mac,
            MacAddr::BROADCAST,
            None,
            &mut buf[VNET_HDR_LEN..],
        ) else {
            return;
        };
        self.lens[0] = VNET_HDR_LEN + len;
        self.switch_batch(net, &[port], 1);
    }

    fn close_slot(&mut self, slot: usize) {
        if let Some(p) = self.ports.get_mut(slot).and_then(Option::take) {
            let _ = epoll_del(self.epfd.as_raw_fd(), p.file.as_raw_fd());
            drop(p.file);
            if let Some(h) = p.delete_on_close {
                crate::port::veth::delete(&h);
            }
        }
    }

    /// Read a batch from one ready port and switch it. A port whose device is gone (a TAP
    /// deleted with its container's namespace reads EBADFD and polls EPOLLERR forever; a
    /// socket whose peer closed reads 0 with EPOLLHUP) is removed, not polled in a loop.
    fn service(&mut self, slot: usize, events: u32) {
        let Some(p) = self.ports.get(slot).and_then(Option::as_ref) else {
            return;
        };
        let (net, port, fd) = (p.net, p.port, p.file.as_raw_fd());
        let mut count = 0;
        let mut gone = false;
        while count < BATCH {
            let buf = &mut self.bufs[count];
            // SAFETY: reading into our own buffer of FRAME_BUF bytes.
            let r = unsafe { libc::read(fd, buf.as_mut_ptr() as *mut _, buf.len()) };
            if r < 0 {
                let e = io::Error::last_os_error().raw_os_error().unwrap_or(0);
                gone = matches!(e, libc::EBADFD | libc::EBADF | libc::ENODEV | libc::ENXIO);
                break;
            }
            if r == 0 {
                gone = events & (libc::EPOLLHUP as u32) != 0;
                break;
            }
            self.lens[count] = r as usize;
            count += 1;
        }
        if count > 0 {
            let ports = [port; BATCH];
            self.switch_batch(net, &ports[..count], count);
        }
        if gone {
            // Close the fd now; the switch port stays reserved (frames to it are dropped)
            // until the control plane removes it, so its id cannot be reused under it.
            tracing::info!("datapath: port {port} is gone (its device was removed); closed");
            self.close_slot(slot);
            if let Some(n) = self.nets.get_mut(net).and_then(Option::as_mut) {
                if let Some(s) = n.slots.get_mut(port.index()) {
                    *s = None;
                }
            }
        }
    }

    /// Decide for `count` buffered frames (with vnet headers) from `in_ports`, then write.
    fn switch_batch(&mut self, net: usize, in_ports: &[PortId], count: usize) {
        let Some(n) = self.nets.get_mut(net).and_then(Option::as_mut) else {
            return;
        };
        let now = self.start.elapsed();
        self.decisions.clear();
        let bufs = &self.bufs;
        let lens = &self.lens;
        let frames = (0..count).filter_map(|i| {
            let l = lens[i];
            (l > VNET_HDR_LEN).then(|| (in_ports[i], &bufs[i][VNET_HDR_LEN..l]))
        });
        // Frames shorter than a vnet header are skipped, so indices must stay aligned:
        // such reads do not happen on a vnet-hdr TAP (the kernel always writes the header).
        let learned = |sw: &Switch| sw.counters().fdb_learned + sw.counters().fdb_moved;
        let before = learned(&n.switch);
        n.switch.process_batch(frames, now, &mut self.decisions);
        if !n.peers.is_empty() && learned(&n.switch) != before {
            hint_peers(&self.peers, n, in_ports, &self.bufs, &self.lens, count, now);
        }
        n.stats.rx_frames += count as u64;
        for (i, p) in in_ports.iter().enumerate().take(count) {
            let len = self.lens[i].saturating_sub(VNET_HDR_LEN) as u64;
            n.stats.rx_bytes += len;
            if let Some(c) = n.port_stats.get_mut(p.index()) {
                c.rx_frames += 1;
                c.rx_bytes += len;
            }
        }
        if !n.taps.is_empty() {
            capture_rx(n, in_ports, &self.bufs, &self.lens, count);
        }
        for tx in self.decisions.tx() {
            if let Some((_, vni)) = n.tunnel.filter(|t| t.0 == tx.port) {
                let whole: &[u8] = match tx.frame {
                    FrameRef::Input(i) => &self.bufs[i as usize][..self.lens[i as usize]],
                    FrameRef::Reply(r) => {
                        let reply = self.decisions.reply(r);
                        self.seg_frame[..VNET_HDR_LEN].copy_from_slice(&self.reply_hdr);
                        let end = VNET_HDR_LEN + reply.len();
                        match self.seg_frame.get_mut(VNET_HDR_LEN..end) {
                            Some(b) => b.copy_from_slice(reply),
                            None => continue,
                        }
                        &self.seg_frame[..end]
                    }
                };
                let ok = match self.tunnel.as_mut() {
                    Some(e) => {
                        e.push(vni, whole) || {
                            e.flush();
                            e.push(vni, whole)
                        }
                    }
                    None if self.deferring
                        && self.defer.len() < TUNNEL_DEFER_FRAMES
                        && self.defer_buf.len() + whole.len() <= TUNNEL_DEFER_BYTES =>
                    {
                        self.defer_buf.extend_from_slice(whole);
                        self.defer.push((vni, self.defer_buf.len()));
                        true
                    }
                    None => false,
                };
                let bytes = &whole[VNET_HDR_LEN.min(whole.len())..];
                let reply = matches!(tx.frame, FrameRef::Reply(_));
                n.count_tx(tx.port, ok, bytes, reply);
                continue;
            }
            let Some(slot) = n.slots.get(tx.port.index()).copied().flatten() else {
                continue;
            };
            let Some(out) = self.ports.get(slot).and_then(Option::as_ref) else {
                continue;
            };
            let ok = match tx.frame {
                FrameRef::Input(i) => {
                    let i = i as usize;
                    let whole = &self.bufs[i][..self.lens[i]];
                    if out.offload || !needs_offload_work(whole) {
                        write_frame(out.file.as_raw_fd(), &[whole])
                    } else {
                        // Port without offloads: segment/checksum in software, from a
                        // copy in the worker's preallocated buffer (the input buffer may
                        // still go out whole to other ports of a flood).
                        let fd = out.file.as_raw_fd();
                        let hdr = self.reply_hdr;
                        let len = self.lens[i] - VNET_HDR_LEN;
                        self.seg_frame[..len]
                            .copy_from_slice(&self.bufs[i][VNET_HDR_LEN..self.lens[i]]);
                        let repr = VnetHdr::new_checked(&self.bufs[i][..VNET_HDR_LEN])
                            .ok()
                            .and_then(|h| VnetHdrRepr::parse(&h).ok())
                            .unwrap_or(VnetHdrRepr::NONE);
                        let mut all = true;
                        let r = resolve_offloads(
                            &mut self.seg_frame[..len],
                            &repr,
                            &mut self.scratch,
                            |seg| {
                                all &= write_frame(fd, &[&hdr, seg]);
                            },
                        );
                        r.is_ok() && all
                    }
                }
                FrameRef::Reply(r) => write_frame(
                    out.file.as_raw_fd(),
                    &[&self.reply_hdr, self.decisions.reply(r)],
                ),
            };
            let bytes = match tx.frame {
                FrameRef::Input(i) => &self.bufs[i as usize][VNET_HDR_LEN..self.lens[i as usize]],
                FrameRef::Reply(r) => self.decisions.reply(r),
            };
            let reply = matches!(tx.frame, FrameRef::Reply(_));
            n.count_tx(tx.port, ok, bytes, reply);
        }
        // The tunnel's share of this batch leaves now, as one batch.
        if let Some(e) = self.tunnel.as_mut() {
            e.flush();
        }
    }
}

/// A worker's network by id, with its index (fields passed apart so the caller keeps the
/// worker's other fields).
fn net_state<'a>(
    index: &HashMap<String, usize>,
    nets: &'a mut [Option<NetState>],
    net: &str,
) -> Result<(usize, &'a mut NetState), DatapathError> {
    index
        .get(net)
        .and_then(|&i| Some((i, nets.get_mut(i)?.as_mut()?)))
        .ok_or_else(|| DatapathError::NoNetwork(net.to_string()))
}

/// Tells the other workers serving `n` where the batch's source MACs are now (called only
/// when this replica learned a new MAC or one moved: a rare event, so the allocation and
/// the channel are fine here).
fn hint_peers(
    peers: &[(Sender<Ctl>, OwnedFd)],
    n: &NetState,
    in_ports: &[PortId],
    bufs: &[Vec<u8>],
    lens: &[usize],
    count: usize,
    now: Duration,
) {
    let mut last = None;
    for (i, &port) in in_ports.iter().enumerate().take(count) {
        let Some(src) = bufs[i]
            .get(VNET_HDR_LEN + 6..VNET_HDR_LEN + 12)
            .filter(|_| lens[i] >= VNET_HDR_LEN + 14)
        else {
            continue;
        };
        let mut m = [0u8; 6];
        m.copy_from_slice(src);
        let mac = MacAddr(m);
        if last == Some((mac, port)) || n.switch.learned_port(mac, now) != Some(port) {
            continue;
        }
        last = Some((mac, port));
        for &w in &n.peers {
            let Some((tx, wake)) = peers.get(w) else {
                continue;
            };
            let learn = Ctl::Learn {
                net: n.id.clone(),
                mac,
                port,
            };
            if tx.send(learn).is_ok() {
                let one: u64 = 1;
                // SAFETY: 8-byte write to the peer's eventfd.
                unsafe { libc::write(wake.as_raw_fd(), &one as *const u64 as *const _, 8) };
            }
        }
    }
}

/// Offers a batch's input frames to the network's captures.
fn capture_rx(
    n: &mut NetState,
    in_ports: &[PortId],
    bufs: &[Vec<u8>],
    lens: &[usize],
    count: usize,
) {
    for (i, p) in in_ports.iter().enumerate().take(count) {
        let Some(frame) = bufs[i].get(VNET_HDR_LEN..lens[i]) else {
            continue;
        };
        for t in n.taps.iter_mut().filter(|t| t.wants_rx(*p)) {
            if t.offer(frame) {
                n.stats.capture_dropped += 1;
            }
        }
    }
}

fn snapshot_of(worker: usize, n: &NetState) -> NetSnapshot {
    let mut stats = n.stats.clone();
    stats.switch_drops = n.switch.counters().total_drops();
    stats.fdb_entries = n.switch.fdb().len();
    let ports = n
        .switch
        .ports()
        .map(|(id, cfg)| {
            let c = n.port_stats.get(id.index()).copied().unwrap_or_default();
            (id, cfg.kind, c)
        })
        .collect();
    NetSnapshot {
        workers: vec![(worker, n.stats.rx_frames)],
        net: n.id.clone(),
        stats,
        switch: n.switch.counters().clone(),
        ports,
        captures: n.taps.iter().filter(|t| !t.is_closed()).count(),
    }
}

/// Whether a frame's vnet header asks for GSO or checksum completion.
fn needs_offload_work(whole: &[u8]) -> bool {
    whole.len() >= 2 && (whole[0] != 0 || whole[1] != 0)
}

/// One frame out with writev; a full queue (EAGAIN) drops it, as a NIC would.
fn write_frame(fd: RawFd, parts: &[&[u8]]) -> bool {
    let mut iov = [libc::iovec {
        iov_base: std::ptr::null_mut(),
        iov_len: 0,
    }; 2];
    let k = parts.len().min(2);
    for (v, p) in iov.iter_mut().zip(parts.iter()).take(k) {
        v.iov_base = p.as_ptr() as *mut _;
        v.iov_len = p.len();
    }
    // SAFETY: iovecs point into live slices.
    let r = unsafe { libc::writev(fd, iov.as_ptr(), k as i32) };
    r > 0
}

fn epoll_add(ep: RawFd, fd: RawFd, token: u64) -> io::Result<()> {
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

fn epoll_del(ep: RawFd, fd: RawFd) -> io::Result<()> {
    // SAFETY: valid fds; the event argument is ignored for DEL.
    if unsafe { libc::epoll_ctl(ep, libc::EPOLL_CTL_DEL, fd, std::ptr::null_mut()) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// utime + stime of this process's threads called `name`, in clock ticks.
    fn cpu_ticks_of(name: &str) -> u64 {
        let mut total = 0;
        for t in std::fs::read_dir("/proc/self/task")
            .into_iter()
            .flatten()
            .flatten()
        {
            let comm = std::fs::read_to_string(t.path().join("comm")).unwrap_or_default();
            if comm.trim() != name {
                continue;
            }
            let stat = std::fs::read_to_string(t.path().join("stat")).unwrap_or_default();
            let fields: Vec<&str> = stat
                .rsplit_once(')')
                .map(|(_, r)| r.split_whitespace().collect())
                .unwrap_or_default();
            total += fields
                .get(11)
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0);
            total += fields
                .get(12)
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0);
        }
        total
    }

    #[test]
    fn a_port_whose_peer_is_gone_is_closed_not_polled_in_a_loop() {
        let mut dp = Datapath::start(1).unwrap();
        dp.add_network("n", SwitchConfig::default()).unwrap();
        let (ours, theirs) = crate::port::seqpacket_pair().unwrap();
        let io = PortIo {
            file: File::from(ours),
            offload: false,
            delete_on_close: None,
            queues: Vec::new(),
        };
        let mac = MacAddr([0x02, 0, 0, 0, 0, 1]);
        let port = dp
            .add_port("n", PortConfig::container(mac), io, None)
            .unwrap();
        // The peer goes: the port reads 0 with EPOLLHUP forever (as a deleted TAP reads
        // EBADFD with EPOLLERR).
        drop(theirs);
        let before = cpu_ticks_of("vswitch-dp0");
        std::thread::sleep(Duration::from_millis(1000));
        let spent = cpu_ticks_of("vswitch-dp0") - before;
        // SAFETY: sysconf has no preconditions.
        let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
        assert!(
            spent * 4 < hz,
            "the worker spun on a dead port: {spent} ticks in 1 s"
        );
        // The control plane still removes it without error, and the network lives on.
        dp.remove_port("n", port).unwrap();
        assert!(dp.stats("n").unwrap().is_some());
    }

    /// One frame from a queue's far end within `ms`, without its vnet header.
    fn recv_frame(fd: &OwnedFd, ms: i32) -> Option<Vec<u8>> {
        let mut p = libc::pollfd {
            fd: fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd.
        if unsafe { libc::poll(&mut p, 1, ms) } != 1 {
            return None;
        }
        let mut buf = vec![0u8; FRAME_BUF];
        // SAFETY: reading into our own buffer.
        let r = unsafe {
            libc::recv(
                fd.as_raw_fd(),
                buf.as_mut_ptr() as *mut _,
                buf.len(),
                libc::MSG_DONTWAIT,
            )
        };
        (r > VNET_HDR_LEN as isize).then(|| buf[VNET_HDR_LEN..r as usize].to_vec())
    }

    fn send_frame(fd: &OwnedFd, src: MacAddr, dst: MacAddr) {
        let mut f = [0u8; VNET_HDR_LEN + 60];
        f[VNET_HDR_LEN..VNET_HDR_LEN + 6].copy_from_slice(&dst.0);
        f[VNET_HDR_LEN + 6..VNET_HDR_LEN + 12].copy_from_slice(&src.0);
        f[VNET_HDR_LEN + 12..VNET_HDR_LEN + 14].copy_from_slice(&[0x88, 0xb5]);
        // SAFETY: writing our own buffer.
        let r = unsafe { libc::send(fd.as_raw_fd(), f.as_ptr() as *const _, f.len(), 0) };
        assert_eq!(r, f.len() as isize);
    }

    /// A port with one queue per worker: the far ends, by queue.
    fn two_queue_port(dp: &Datapath, mac: MacAddr) -> (PortId, Vec<OwnedFd>) {
        let (a0, b0) = crate::port::seqpacket_pair().unwrap();
        let (a1, b1) = crate::port::seqpacket_pair().unwrap();
        let io = PortIo {
            file: File::from(a0),
            offload: false,
            delete_on_close: None,
            queues: vec![File::from(a1)],
        };
        let port = dp
            .add_port("n", PortConfig::container(mac), io, None)
            .unwrap();
        (port, vec![b0, b1])
    }

    #[test]
    fn a_spread_network_switches_each_queue_on_its_own_worker() {
        let mut dp = Datapath::start(2).unwrap();
        dp.set_tap_queues(2);
        dp.add_network("n", SwitchConfig::default()).unwrap();
        assert_eq!(dp.queues_of("n"), 2);
        let (ma, mb, mc) = (
            MacAddr([0x02, 0, 0, 0, 0, 1]),
            MacAddr([0x02, 0, 0, 0, 0, 2]),
            MacAddr([0x02, 0, 0, 0, 0, 3]),
        );
        let (_, qa) = two_queue_port(&dp, ma);
        let (_, qb) = two_queue_port(&dp, mb);
        // A single-fd port (as the NAT gateway's): read by the owner, written by both.
        let (c_ours, c_far) = crate::port::seqpacket_pair().unwrap();
        let io = PortIo {
            file: File::from(c_ours),
            offload: false,
            delete_on_close: None,
            queues: Vec::new(),
        };
        dp.add_port("n", PortConfig::container(mc), io, None)
            .unwrap();
        // b floods from its queue 0: worker 0 writes the copies to queue 0 of a, and to c.
        send_frame(&qb[0], mb, MacAddr::BROADCAST);
        assert!(recv_frame(&qa[0], 2000).is_some());
        assert!(recv_frame(&c_far, 2000).is_some());
        assert!(recv_frame(&qa[1], 100).is_none());
        // Worker 1 heard of b's MAC from worker 0 (the hint is in its channel before the
        // stats request), so a's queue-1 frame to b is unicast, out of b's queue 1.
        dp.stats("n").unwrap();
        send_frame(&qa[1], ma, mb);
        let got = recv_frame(&qb[1], 2000).expect("a → b on queue 1");
        assert_eq!(&got[..6], &mb.0);
        assert!(recv_frame(&qb[0], 100).is_none());
        assert!(recv_frame(&c_far, 100).is_none(), "flooded: no MAC hint");
        // c's frames (its one fd, read by the owner) reach a on the owner's queue.
        send_frame(&c_far, mc, ma);
        assert!(recv_frame(&qa[0], 2000).is_some());
        // Both workers carried frames; the snapshot sums them into one network.
        let snaps = dp.snapshot().unwrap();
        assert_eq!(snaps.len(), 1);
        let s = &snaps[0];
        assert_eq!(s.stats.rx_frames, 3);
        let mut ws = s.workers.clone();
        ws.sort();
        assert_eq!(ws, vec![(0, 2), (1, 1)]);
        assert_eq!(s.ports.len(), 3);
        // Ports and the network go from both workers: the far ends see the queues close.
        dp.remove_network("n").unwrap();
        dp.stats("n").unwrap_err();
    }
}
