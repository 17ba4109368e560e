//! The network's egress gateway: userspace NAT (masquerade) and published ports.
//!
//! One [`Gateway`] runs per bridge network with `enable_ip_masquerade` on and not internal.
//! It is a switch port ([`crate::switch::PortKind::Gateway`]) whose fd is one end of a
//! `SOCK_SEQPACKET` socketpair: the datapath writes it the containers' frames for outside the
//! network (10-byte virtio-net header + Ethernet frame) and reads back the frames to deliver.
//! The port takes offloads: containers' TCP super-frames (up to 64 KiB, partial checksum) come
//! whole and go to smoltcp as one segment; other offloads are resolved here; frames towards
//! containers carry partial TCP checksums and, above the MSS, GSO (the container's TAP, or
//! the datapath for a port without offloads, segments them). The protocol work is the
//! I/O-free state machine [`nat::Nat`]; this module drives it on a tokio runtime with the
//! daemon's own sockets, so remote peers see the host's address and the host needs neither
//! `ip_forward` nor firewall rules.
//!
//! TCP relay: one task (the driver) owns every relayed host `TcpStream`, non-blocking and
//! registered edge-triggered in the driver's own epoll (itself one fd in tokio's reactor), so
//! a ready flow wakes the driver with its id and an idle flow costs nothing — no task and no
//! channel per flow, and no byte crosses a thread. A readable host socket is read straight
//! into the flow's smoltcp transmit ring ([`Nat::tcp_pull_from_host`]); the flow's smoltcp
//! receive ring is written straight to the host socket ([`Nat::tcp_push_to_host`]); datapath
//! frames are read into the engine's buffers ([`Nat::rx_buffer`]) and queued to smoltcp in
//! place. So each relayed byte is copied once in userspace per direction (by smoltcp: ring →
//! frame towards the container, frame → ring from it). Backpressure is the rings: a full
//! transmit ring stops reads (the host socket's buffer and TCP window fill), a host socket
//! that would block leaves bytes in the receive ring (the container's window closes).
//! Connection attempts and published listeners still run as small tokio tasks.
//!
//! Constants: [`nat::MAX_FLOWS`] (flow cap), [`nat::UDP_IDLE_TIMEOUT`],
//! [`nat::ICMP_TIMEOUT`], [`TCP_CONNECT_TIMEOUT`], buffer size [`nat::TCP_BUFFER`],
//! [`EPOLL_BATCH`]; published-port pacing [`pacing::OPENING_WINDOW`],
//! [`pacing::OPENING_RELEASE`].

mod frame;
pub mod nat;
pub mod pacing;

#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::fmt;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ipnet::IpNet;
use tokio::io::unix::AsyncFd;
use tokio::io::Interest;
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::runtime::Handle;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::port::tap::VNET_HDR_LEN;
use crate::port::PortIo;
use crate::wire::vnet_hdr::{resolve_offloads, GsoType, VnetHdr, VnetHdrRepr};
use crate::wire::MacAddr;
pub use frame::check_emitted;
pub use nat::{Action, FlowId, HostIo, Nat, NatConfig, NatError, NatStats};

/// A host connection attempt for a container's TCP flow gives up after this long (the
/// container then gets a RST).
pub const TCP_CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// Host socket readiness events taken from the driver's epoll at once.
pub const EPOLL_BATCH: usize = 256;
/// Send buffer of each socketpair end: room for 64 super-frames between datapath and engine
/// (the default, about 200 KiB, holds three).
const SOCKETPAIR_BUFFER: libc::c_int = 4 * 1024 * 1024;
/// Backlog of published TCP listeners.
const LISTEN_BACKLOG: libc::c_int = 4096;
/// Host events handled between two polls of the state machine.
const EVENT_BATCH: usize = 256;

/// Errors of the gateway's control calls.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    /// A system call failed.
    #[error("gateway: {op}: {source}")]
    Sys { op: &'static str, source: io::Error },
    /// The host port is taken (Docker's message).
    #[error("Bind for {0} failed: port is already allocated")]
    PortAllocated(SocketAddr),
    /// The gateway has stopped.
    #[error("gateway stopped")]
    Stopped,
}

fn sys(op: &'static str) -> impl FnOnce(io::Error) -> GatewayError {
    move |source| GatewayError::Sys { op, source }
}

/// What a gateway serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatewayConfig {
    /// The network id (for logs).
    pub network_id: String,
    /// The gateway MAC: the host port's MAC, also given to the switch's gateway port.
    pub gateway_mac: MacAddr,
    /// The gateway's IPv4 address.
    pub gateway_v4: Option<Ipv4Addr>,
    /// The gateway's IPv6 address.
    pub gateway_v6: Option<Ipv6Addr>,
    /// The network's subnets.
    pub subnets: Vec<IpNet>,
    /// The network's MTU.
    pub mtu: usize,
    /// Most flows at once ([`nat::MAX_FLOWS`]).
    pub max_flows: usize,
    /// Tests only: containers may reach the host's loopback ([`NatConfig::allow_loopback`]).
    pub allow_loopback: bool,
    /// Other local networks, never reachable through the NAT (shared, kept current).
    pub isolation: nat::Isolation,
}

impl GatewayConfig {
    /// A configuration with the default MTU (1500) and flow cap.
    pub fn new(network_id: &str, gateway_mac: MacAddr, subnets: Vec<IpNet>) -> GatewayConfig {
        GatewayConfig {
            network_id: network_id.to_string(),
            gateway_mac,
            gateway_v4: None,
            gateway_v6: None,
            subnets,
            mtu: 1500,
            max_flows: nat::MAX_FLOWS,
            allow_loopback: false,
            isolation: nat::Isolation::default(),
        }
    }
}

/// Transport of a published port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Proto {
    Tcp,
    Udp,
}

impl fmt::Display for Proto {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
        })
    }
}

enum Event {
    Shutdown,
    AddNeighbor(IpAddr, MacAddr),
    RemoveNeighbor(IpAddr),
    Stats(tokio::sync::oneshot::Sender<NatStats>),
    TcpConnected(FlowId, io::Result<TcpStream>),
    TcpAccepted {
        container: SocketAddr,
        stream: TcpStream,
    },
    UdpData(FlowId, Vec<u8>),
    UdpInbound {
        publication: u64,
        socket: Arc<UdpSocket>,
        client: SocketAddr,
        container: SocketAddr,
        data: Vec<u8>,
    },
    IcmpReply(IpAddr, Vec<u8>),
}

/// Ends the driver when the last handle goes.
struct Stopper(mpsc::UnboundedSender<Event>);

impl Drop for Stopper {
    fn drop(&mut self) {
        let _ = self.0.send(Event::Shutdown);
    }
}

/// The control side of a running gateway. Cloneable; when the last clone is dropped (or on
/// [`GatewayHandle::shutdown`]) the engine stops, resetting its TCP flows. Closing the
/// datapath's end of the port also stops it.
#[derive(Clone)]
pub struct GatewayHandle {
    tx: mpsc::UnboundedSender<Event>,
    rt: Handle,
    next_publication: Arc<AtomicU64>,
    _stopper: Arc<Stopper>,
    network: Arc<str>,
}

impl fmt::Debug for GatewayHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GatewayHandle")
            .field("network", &self.network)
            .finish()
    }
}

/// A published port: the listener lives while this value does.
#[derive(Debug)]
pub struct Publication {
    proto: Proto,
    local: SocketAddr,
    container: SocketAddr,
    task: JoinHandle<()>,
}

impl Publication {
    /// The bound host address (with the kernel's port when 0 was asked).
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// The container address relayed to.
    pub fn container(&self) -> SocketAddr {
        self.container
    }

    /// TCP or UDP.
    pub fn proto(&self) -> Proto {
        self.proto
    }
}

impl Drop for Publication {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Starts gateways.
pub struct Gateway;

impl Gateway {
    /// Starts the engine of one network on `rt`. Returns its handle and the port to attach
    /// to the network's switch as `PortConfig::gateway(mac)` (with the gateway addresses).
    pub fn start(rt: &Handle, cfg: GatewayConfig) -> Result<(GatewayHandle, PortIo), GatewayError> {
        let (ours, theirs) = seqpacket_pair()?;
        for fd in [&ours, &theirs] {
            set_sndbuf(fd.as_raw_fd(), SOCKETPAIR_BUFFER);
        }
        let network: Arc<str> = Arc::from(cfg.network_id.as_str());
        let start = Instant::now();
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64)
            ^ u64::from(std::process::id());
        let nat = Nat::new(
            NatConfig {
                gateway_mac: cfg.gateway_mac,
                gateway_v4: cfg.gateway_v4,
                gateway_v6: cfg.gateway_v6,
                subnets: cfg.subnets.clone(),
                mtu: cfg.mtu,
                max_flows: cfg.max_flows,
                allow_loopback: cfg.allow_loopback,
                isolation: cfg.isolation.clone(),
                tcp_buffer: nat::TCP_BUFFER,
            },
            Duration::ZERO,
            seed,
        );
        let (tx, rx) = mpsc::unbounded_channel();
        // SAFETY: epoll_create1 has no preconditions; the fd is checked and owned below.
        let ep = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if ep < 0 {
            return Err(sys("epoll")(io::Error::last_os_error()));
        }
        // SAFETY: a fresh fd that nothing else owns.
        let ep = unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(ep) };
        let (fd, ep) = {
            let _g = rt.enter();
            // SAFETY: `ours` is an owned, open fd that stays open while registered (the
            // AsyncFd owns it).
            let fd = unsafe { AsyncFd::register(ours) }
                .map_err(|e| sys("register socketpair")(e.into()))?;
            // SAFETY: as above, for the epoll fd.
            let ep = unsafe { AsyncFd::register_with_interest(ep, Interest::READABLE) }
                .map_err(|e| sys("register epoll")(e.into()))?;
            (fd, ep)
        };
        let driver = Driver {
            nat,
            fd,
            ep,
            ep_events: vec![libc::epoll_event { events: 0, u64: 0 }; EPOLL_BATCH],
            rx,
            tx: tx.clone(),
            start,
            out: std::collections::VecDeque::new(),
            scratch: vec![0u8; FRAME_MAX],
            tcp: HashMap::new(),
            udp: HashMap::new(),
            icmp4: None,
            icmp6: None,
            icmp_warned: false,
            network: network.clone(),
        };
        rt.spawn(driver.run());
        let handle = GatewayHandle {
            tx: tx.clone(),
            rt: rt.clone(),
            next_publication: Arc::new(AtomicU64::new(1)),
            _stopper: Arc::new(Stopper(tx)),
            network,
        };
        // With offloads, the datapath hands over containers' TCP super-frames whole (and
        // takes ours): smoltcp then handles one 64 KiB segment instead of 45.
        let io = PortIo {
            file: std::fs::File::from(theirs),
            offload: true,
            delete_on_close: None,
            queues: Vec::new(),
        };
        Ok((handle, io))
    }
}

impl GatewayHandle {
    /// Publishes `host` (port 0: the kernel picks one from its ephemeral range) → `container`.
    /// The listener lives in the daemon; each TCP connection (UDP client) is relayed into the
    /// container from a gateway address. A port already taken gives
    /// [`GatewayError::PortAllocated`].
    pub fn publish(
        &self,
        proto: Proto,
        host: SocketAddr,
        container: SocketAddr,
    ) -> Result<Publication, GatewayError> {
        let _g = self.rt.enter();
        let bind_err = |e: io::Error| {
            if e.kind() == io::ErrorKind::AddrInUse {
                GatewayError::PortAllocated(host)
            } else {
                GatewayError::Sys {
                    op: "bind published port",
                    source: e,
                }
            }
        };
        let tx = self.tx.clone();
        match proto {
            Proto::Tcp => {
                let l = std::net::TcpListener::bind(host).map_err(bind_err)?;
                // SAFETY: a listening socket we own; listen() again only raises the backlog.
                unsafe { libc::listen(l.as_raw_fd(), LISTEN_BACKLOG) };
                l.set_nonblocking(true).map_err(sys("listener"))?;
                let local = l.local_addr().map_err(sys("listener address"))?;
                let l = TcpListener::from_std(l).map_err(sys("listener"))?;
                let task = self.rt.spawn(async move {
                    loop {
                        match l.accept().await {
                            Ok((stream, _)) => {
                                let _ = stream.set_nodelay(true);
                                if tx.send(Event::TcpAccepted { container, stream }).is_err() {
                                    return;
                                }
                            }
                            Err(e) => {
                                tracing::debug!("published {local}: accept: {e}");
                                tokio::time::sleep(Duration::from_millis(50)).await;
                            }
                        }
                    }
                });
                Ok(Publication {
                    proto,
                    local,
                    container,
                    task,
                })
            }
            Proto::Udp => {
                let s = std::net::UdpSocket::bind(host).map_err(bind_err)?;
                s.set_nonblocking(true).map_err(sys("udp listener"))?;
                let local = s.local_addr().map_err(sys("listener address"))?;
                let s = Arc::new(UdpSocket::from_std(s).map_err(sys("udp listener"))?);
                let publication = self.next_publication.fetch_add(1, Ordering::Relaxed);
                let task = self.rt.spawn(async move {
                    let mut buf = vec![0u8; 65_536];
                    loop {
                        match s.recv_from(&mut buf).await {
                            Ok((n, client)) => {
                                let ev = Event::UdpInbound {
                                    publication,
                                    socket: s.clone(),
                                    client,
                                    container,
                                    data: buf[..n].to_vec(),
                                };
                                if tx.send(ev).is_err() {
                                    return;
                                }
                            }
                            Err(e) => {
                                tracing::debug!("published {local}/udp: {e}");
                                tokio::time::sleep(Duration::from_millis(10)).await;
                            }
                        }
                    }
                });
                Ok(Publication {
                    proto,
                    local,
                    container,
                    task,
                })
            }
        }
    }

    /// Tells the engine a container's MAC (call on attach: the engine must know it to open
    /// published-port connections before the container has sent anything).
    pub fn add_neighbor(&self, ip: IpAddr, mac: MacAddr) {
        let _ = self.tx.send(Event::AddNeighbor(ip, mac));
    }

    /// Forgets a container's MAC (detach).
    pub fn remove_neighbor(&self, ip: IpAddr) {
        let _ = self.tx.send(Event::RemoveNeighbor(ip));
    }

    /// The engine's counters.
    pub async fn stats(&self) -> Result<NatStats, GatewayError> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.tx
            .send(Event::Stats(tx))
            .map_err(|_| GatewayError::Stopped)?;
        rx.await.map_err(|_| GatewayError::Stopped)
    }

    /// Stops the engine now (its TCP flows are reset; publications stop relaying).
    pub fn shutdown(&self) {
        let _ = self.tx.send(Event::Shutdown);
    }
}

/// Raises a socket's send buffer (beyond `wmem_max` when privileged); best effort.
fn set_sndbuf(fd: RawFd, size: libc::c_int) {
    for opt in [libc::SO_SNDBUFFORCE, libc::SO_SNDBUF] {
        // SAFETY: setsockopt with a live fd and an int option value.
        let r = unsafe {
            libc::setsockopt(
                fd,
                libc::SOL_SOCKET,
                opt,
                &size as *const libc::c_int as *const libc::c_void,
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if r == 0 {
            return;
        }
    }
}

fn seqpacket_pair() -> Result<(OwnedFd, OwnedFd), GatewayError> {
    crate::port::seqpacket_pair().map_err(|source| GatewayError::Sys {
        op: "socketpair",
        source,
    })
}

struct TcpHost {
    /// Non-blocking, in the driver's epoll (closing it leaves the epoll).
    stream: Option<std::net::TcpStream>,
    connecting: Option<JoinHandle<()>>,
}

impl TcpHost {
    fn close(mut self, reset: bool) {
        if let Some(c) = self.connecting.take() {
            c.abort();
        }
        if let Some(s) = self.stream.take() {
            if reset {
                let _ = socket2::SockRef::from(&s).set_linger(Some(Duration::ZERO));
            }
        }
    }
}

struct UdpHost {
    socket: Arc<UdpSocket>,
    /// Published ports: the client to answer (from the published socket).
    client: Option<SocketAddr>,
    task: Option<JoinHandle<()>>,
}

struct Driver {
    nat: Nat,
    fd: AsyncFd<OwnedFd>,
    /// The relayed host TCP sockets' readiness (edge-triggered; event data: the flow id).
    ep: AsyncFd<OwnedFd>,
    ep_events: Vec<libc::epoll_event>,
    rx: mpsc::UnboundedReceiver<Event>,
    tx: mpsc::UnboundedSender<Event>,
    start: Instant,
    /// Frames (virtio-net header, frame) waiting for room in the socketpair.
    out: std::collections::VecDeque<([u8; VNET_HDR_LEN], Vec<u8>)>,
    /// Segments of a UDP super-frame (allocated once).
    scratch: Vec<u8>,
    tcp: HashMap<FlowId, TcpHost>,
    udp: HashMap<FlowId, UdpHost>,
    icmp4: Option<Arc<AsyncFd<socket2::Socket>>>,
    icmp6: Option<Arc<AsyncFd<socket2::Socket>>>,
    icmp_warned: bool,
    network: Arc<str>,
}

/// The largest frame the datapath hands over (64 KiB + headers).
const FRAME_MAX: usize = 65_536 + VNET_HDR_LEN + 64;
/// Most frames waiting for the socketpair (up to 64 MiB of super-frames).
const OUT_BACKLOG: usize = 1024;

impl Driver {
    fn now(&self) -> Duration {
        self.start.elapsed()
    }

    async fn run(mut self) {
        let mut events = Vec::with_capacity(EVENT_BATCH);
        loop {
            let now = self.now();
            let wake = self
                .nat
                .poll_at(now)
                .map_or(Duration::from_secs(3600), |at| at.saturating_sub(now));
            let sleep = tokio::time::sleep(wake);
            let want_write = !self.out.is_empty();
            tokio::select! {
                r = self.fd.readable() => {
                    let Ok(mut guard) = r else { break };
                    let mut eof = false;
                    for _ in 0..crate::datapath::BATCH {
                        let fd = guard.get_inner().as_raw_fd();
                        // Read into the engine's buffer: TCP segments stay there for smoltcp.
                        let mut buf = self.nat.rx_buffer(FRAME_MAX);
                        // SAFETY: reading into our own buffer.
                        let n = unsafe { libc::read(fd, buf.as_mut_ptr() as *mut _, buf.len()) };
                        if n > 0 {
                            let now = self.now();
                            input(&mut self.nat, &mut self.scratch, now, buf, n as usize);
                            continue;
                        }
                        let e = (n < 0).then(io::Error::last_os_error);
                        self.nat.recycle_rx(buf);
                        match e.map(|e| e.kind()) {
                            Some(io::ErrorKind::WouldBlock) => guard.clear_ready(),
                            Some(io::ErrorKind::Interrupted) => {}
                            _ => eof = true,
                        }
                        break;
                    }
                    if eof {
                        break;
                    }
                }
                r = self.ep.readable() => {
                    let Ok(mut g) = r else { break };
                    let mut evs = std::mem::take(&mut self.ep_events);
                    // SAFETY: epoll_wait fills at most `evs.len()` entries of our buffer.
                    let n = unsafe {
                        libc::epoll_wait(
                            g.get_inner().as_raw_fd(),
                            evs.as_mut_ptr(),
                            evs.len() as libc::c_int,
                            0,
                        )
                    };
                    let n = usize::try_from(n).unwrap_or(0);
                    // A full batch: more may be ready, keep the readiness.
                    if n < evs.len() {
                        g.clear_ready();
                    }
                    drop(g);
                    for e in evs.iter().take(n) {
                        let (flow, ev) = (e.u64, e.events);
                        self.host_ready(flow, ev);
                    }
                    self.ep_events = evs;
                }
                r = self.fd.writable(), if want_write => {
                    if let Ok(mut g) = r {
                        g.clear_ready();
                    }
                }
                n = self.rx.recv_many(&mut events, EVENT_BATCH) => {
                    // recv_many hands over every event it takes (dropping one, e.g. a
                    // TcpData or TcpEof, would stall its flow); 0: every sender is gone.
                    let mut stop = n == 0;
                    for e in events.drain(..) {
                        match e {
                            Event::Shutdown => stop = true,
                            e if !stop => self.on_event(e),
                            _ => {}
                        }
                    }
                    if stop {
                        break;
                    }
                }
                _ = sleep => {}
            }
            self.step();
        }
        let now = self.now();
        self.nat.reset_all(now);
        self.actions();
        self.flush();
        for (_, h) in self.tcp.drain() {
            h.close(true);
        }
        for (_, u) in self.udp.drain() {
            if let Some(t) = u.task {
                t.abort();
            }
        }
        tracing::debug!("gateway of network {} stopped", self.network);
    }

    /// Polls the state machine, carries out its actions and sends its frames.
    fn step(&mut self) {
        for _ in 0..4 {
            let now = self.now();
            self.nat.poll(now);
            if !self.actions() {
                break;
            }
        }
        self.flush();
    }

    fn flush(&mut self) {
        while let Some((h, f)) = self.nat.pop_offloaded_frame() {
            let mut hdr = [0u8; VNET_HDR_LEN];
            let _ = h.emit(&mut hdr);
            self.out.push_back((hdr, f));
        }
        while let Some((hdr, f)) = self.out.front() {
            let iov = [
                libc::iovec {
                    iov_base: hdr.as_ptr() as *mut _,
                    iov_len: hdr.len(),
                },
                libc::iovec {
                    iov_base: f.as_ptr() as *mut _,
                    iov_len: f.len(),
                },
            ];
            // SAFETY: iovecs point into live buffers.
            let r = unsafe { libc::writev(self.fd.get_ref().as_raw_fd(), iov.as_ptr(), 2) };
            if r < 0 {
                let e = io::Error::last_os_error();
                match e.kind() {
                    io::ErrorKind::WouldBlock => return,
                    io::ErrorKind::Interrupted => continue,
                    _ => {}
                }
            }
            if let Some((_, f)) = self.out.pop_front() {
                self.nat.recycle(f);
            }
        }
        // Bound the backlog: beyond it frames are dropped, as a full NIC queue would.
        while self.out.len() > OUT_BACKLOG {
            self.out.pop_front();
        }
    }

    /// Carries out the queued actions; true when any was done (poll again).
    fn actions(&mut self) -> bool {
        let mut any = false;
        while let Some(a) = self.nat.pop_action() {
            any = true;
            match a {
                Action::TcpConnect { flow, dst } => {
                    let tx = self.tx.clone();
                    let task = tokio::spawn(async move {
                        let r = match tokio::time::timeout(
                            TCP_CONNECT_TIMEOUT,
                            TcpStream::connect(dst),
                        )
                        .await
                        {
                            Ok(r) => r,
                            Err(_) => Err(io::Error::from(io::ErrorKind::TimedOut)),
                        };
                        let _ = tx.send(Event::TcpConnected(flow, r));
                    });
                    self.tcp.insert(
                        flow,
                        TcpHost {
                            stream: None,
                            connecting: Some(task),
                        },
                    );
                }
                Action::TcpPull { flow } => self.pull(flow),
                Action::TcpPush { flow } => self.push(flow),
                Action::TcpShutdown { flow } => {
                    if let Some(fd) = self.host_fd(flow) {
                        // SAFETY: shutdown(2) on the stream's live fd.
                        unsafe { libc::shutdown(fd, libc::SHUT_WR) };
                    }
                }
                Action::TcpClose { flow, reset } => {
                    if let Some(h) = self.tcp.remove(&flow) {
                        h.close(reset);
                    }
                }
                Action::UdpOpen { flow, dst } => match udp_connect(dst) {
                    Ok(s) => {
                        let s = Arc::new(s);
                        let tx = self.tx.clone();
                        let r = s.clone();
                        let task = tokio::spawn(async move {
                            let mut buf = vec![0u8; 65_536];
                            loop {
                                match r.recv(&mut buf).await {
                                    Ok(n) => {
                                        if tx.send(Event::UdpData(flow, buf[..n].to_vec())).is_err()
                                        {
                                            return;
                                        }
                                    }
                                    // ICMP errors (port unreachable) surface here: ignore.
                                    Err(_) => tokio::time::sleep(Duration::from_millis(1)).await,
                                }
                            }
                        });
                        self.udp.insert(
                            flow,
                            UdpHost {
                                socket: s,
                                client: None,
                                task: Some(task),
                            },
                        );
                    }
                    Err(e) => tracing::debug!("gateway: udp to {dst}: {e}"),
                },
                Action::UdpSend { flow, data } => {
                    if let Some(u) = self.udp.get(&flow) {
                        // Straight to the kernel: tokio's try_send reports WouldBlock until
                        // the reactor has seen the fresh socket writable.
                        udp_send(u.socket.as_raw_fd(), &data, u.client);
                    }
                }
                Action::UdpClose { flow } => {
                    if let Some(u) = self.udp.remove(&flow) {
                        if let Some(t) = u.task {
                            t.abort();
                        }
                    }
                }
                Action::IcmpEcho { dst, message } => self.icmp_send(dst, &message),
            }
        }
        any
    }

    fn host_fd(&self, flow: FlowId) -> Option<RawFd> {
        self.tcp.get(&flow)?.stream.as_ref().map(|s| s.as_raw_fd())
    }

    /// A relayed host socket is ready: move what it allows.
    fn host_ready(&mut self, flow: FlowId, ev: u32) {
        let err = (libc::EPOLLERR | libc::EPOLLHUP) as u32;
        if ev & ((libc::EPOLLIN | libc::EPOLLRDHUP) as u32 | err) != 0 {
            self.pull(flow);
        }
        if ev & (libc::EPOLLOUT as u32 | err) != 0 {
            self.push(flow);
        }
    }

    /// Host socket → the flow's smoltcp transmit ring.
    fn pull(&mut self, flow: FlowId) {
        let Some(fd) = self.host_fd(flow) else {
            return;
        };
        self.nat.tcp_pull_from_host(flow, |b| {
            // SAFETY: read(2) into the ring's free part, `b.len()` bytes long.
            let n = unsafe { libc::read(fd, b.as_mut_ptr().cast(), b.len()) };
            usize::try_from(n).map_err(|_| io::Error::last_os_error())
        });
    }

    /// The flow's smoltcp receive ring → host socket.
    fn push(&mut self, flow: FlowId) {
        let Some(fd) = self.host_fd(flow) else {
            return;
        };
        self.nat.tcp_push_to_host(flow, |b| {
            // SAFETY: send(2) from the ring's bytes, `b.len()` long; no SIGPIPE.
            let n = unsafe { libc::send(fd, b.as_ptr().cast(), b.len(), libc::MSG_NOSIGNAL) };
            usize::try_from(n).map_err(|_| io::Error::last_os_error())
        });
    }

    fn on_event(&mut self, e: Event) {
        let now = self.now();
        match e {
            Event::Shutdown => {}
            Event::AddNeighbor(ip, mac) => self.nat.add_neighbor(ip, mac),
            Event::RemoveNeighbor(ip) => self.nat.remove_neighbor(ip),
            Event::Stats(tx) => {
                let _ = tx.send(self.nat.snapshot());
            }
            Event::TcpConnected(flow, r) => match r {
                Ok(stream) if self.tcp.contains_key(&flow) => {
                    let _ = stream.set_nodelay(true);
                    self.nat.tcp_connected(flow, true);
                    self.relay(flow, stream);
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::debug!("gateway {}: connect failed: {e}", self.network);
                    self.nat.tcp_connected(flow, false);
                }
            },
            Event::TcpAccepted { container, stream } => match self.nat.tcp_inbound(container) {
                Ok(flow) => {
                    self.tcp.insert(
                        flow,
                        TcpHost {
                            stream: None,
                            connecting: None,
                        },
                    );
                    self.relay(flow, stream);
                }
                Err(e) => {
                    tracing::debug!(
                        "gateway {}: published port to {container}: {e}",
                        self.network
                    );
                    let _ = stream.set_zero_linger();
                }
            },
            Event::UdpData(flow, data) => self.nat.udp_host_data(now, flow, &data),
            Event::UdpInbound {
                publication,
                socket,
                client,
                container,
                data,
            } => match self
                .nat
                .udp_inbound(now, publication, client, container, &data)
            {
                Ok(flow) => {
                    self.udp.entry(flow).or_insert(UdpHost {
                        socket,
                        client: Some(client),
                        task: None,
                    });
                }
                Err(e) => tracing::debug!("gateway {}: published udp: {e}", self.network),
            },
            Event::IcmpReply(src, msg) => self.nat.icmp_host_reply(now, src, &msg),
        }
    }

    /// Takes over a connected host stream: non-blocking, in the driver's epoll. Its first
    /// readiness events start the transfers.
    fn relay(&mut self, flow: FlowId, stream: TcpStream) {
        let Some(h) = self.tcp.get_mut(&flow) else {
            return;
        };
        h.connecting = None;
        // Out of tokio's reactor; stays non-blocking.
        let stream = match stream.into_std() {
            Ok(s) => s,
            Err(e) => {
                tracing::debug!("gateway {}: relay: {e}", self.network);
                self.nat.tcp_host_reset(flow);
                return;
            }
        };
        let mut ev = libc::epoll_event {
            events: (libc::EPOLLIN | libc::EPOLLOUT | libc::EPOLLRDHUP | libc::EPOLLET) as u32,
            u64: flow,
        };
        // SAFETY: epoll_ctl on our epoll fd and the stream's live fd.
        let r = unsafe {
            libc::epoll_ctl(
                self.ep.get_ref().as_raw_fd(),
                libc::EPOLL_CTL_ADD,
                stream.as_raw_fd(),
                &mut ev,
            )
        };
        if r < 0 {
            tracing::debug!(
                "gateway {}: epoll: {}",
                self.network,
                io::Error::last_os_error()
            );
            self.nat.tcp_host_reset(flow);
        }
        h.stream = Some(stream);
    }

    fn icmp_send(&mut self, dst: IpAddr, message: &[u8]) {
        let slot = if dst.is_ipv4() {
            &mut self.icmp4
        } else {
            &mut self.icmp6
        };
        if slot.is_none() {
            match raw_icmp(dst.is_ipv6()) {
                Ok(fd) => {
                    let fd = Arc::new(fd);
                    let tx = self.tx.clone();
                    let r = fd.clone();
                    let v6 = dst.is_ipv6();
                    tokio::spawn(async move { icmp_reader(r, v6, tx).await });
                    *slot = Some(fd);
                }
                Err(e) => {
                    if !self.icmp_warned {
                        self.icmp_warned = true;
                        tracing::warn!(
                            "gateway {}: cannot open a raw ICMP socket ({e}): containers' \
                             pings to outside the network go unanswered",
                            self.network
                        );
                    }
                    return;
                }
            }
        }
        let Some(fd) = slot.as_ref() else {
            return;
        };
        // Non-blocking: a full socket buffer drops the echo, as a router would.
        let to = socket2::SockAddr::from(SocketAddr::new(dst, 0));
        let _ = fd.get_ref().send_to(message, &to);
    }
}

/// One message from the datapath (`buf[..len]`, in a buffer of the engine): virtio-net
/// header, then the frame. TCP super-frames and complete frames go to the engine in their
/// buffer (queued in place); other offloads (partial checksum, UDP GSO) are resolved first.
fn input(nat: &mut Nat, scratch: &mut [u8], now: Duration, mut buf: Vec<u8>, len: usize) {
    let hdr = buf
        .get(..VNET_HDR_LEN)
        .and_then(|h| VnetHdr::new_checked(h).ok())
        .and_then(|h| VnetHdrRepr::parse(&h).ok());
    let Some(hdr) = hdr.filter(|_| len > VNET_HDR_LEN && len <= buf.len()) else {
        nat.recycle_rx(buf);
        return;
    };
    let frame = VNET_HDR_LEN..len;
    match hdr.gso_type {
        GsoType::TcpV4 | GsoType::TcpV6 => nat.handle_frame_buf(now, buf, frame, false),
        // A partial checksum is completed in place: the frame stays in its buffer.
        GsoType::None => {
            match crate::wire::vnet_hdr::complete_checksum(&mut buf[frame.clone()], &hdr) {
                Ok(()) => nat.handle_frame_buf(now, buf, frame, true),
                Err(_) => nat.recycle_rx(buf),
            }
        }
        _ => {
            let _ = resolve_offloads(&mut buf[frame], &hdr, scratch, |f| nat.handle_frame(now, f));
            nat.recycle_rx(buf);
        }
    }
}

fn udp_connect(dst: SocketAddr) -> io::Result<UdpSocket> {
    let any: SocketAddr = if dst.is_ipv4() {
        (Ipv4Addr::UNSPECIFIED, 0).into()
    } else {
        (Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let s = std::net::UdpSocket::bind(any)?;
    s.connect(dst)?;
    s.set_nonblocking(true)?;
    UdpSocket::from_std(s)
}

/// One datagram, non-blocking (dropped if the socket buffer is full, as a router would).
fn udp_send(fd: RawFd, data: &[u8], to: Option<SocketAddr>) {
    match to {
        None => {
            // SAFETY: send(2) from a live buffer.
            unsafe {
                libc::send(
                    fd,
                    data.as_ptr() as *const _,
                    data.len(),
                    libc::MSG_DONTWAIT,
                )
            };
        }
        Some(to) => {
            let (sa, len) = sockaddr(to.ip(), to.port());
            // SAFETY: sendto(2) from a live buffer with a sockaddr of `len` bytes.
            unsafe {
                libc::sendto(
                    fd,
                    data.as_ptr() as *const _,
                    data.len(),
                    libc::MSG_DONTWAIT,
                    &sa as *const libc::sockaddr_storage as *const libc::sockaddr,
                    len,
                )
            };
        }
    }
}

fn raw_icmp(v6: bool) -> io::Result<AsyncFd<socket2::Socket>> {
    use socket2::{Domain, Protocol, Socket, Type};
    let (domain, proto) = if v6 {
        (Domain::IPV6, Protocol::ICMPV6)
    } else {
        (Domain::IPV4, Protocol::ICMPV4)
    };
    let s = Socket::new(domain, Type::RAW, Some(proto))?;
    s.set_nonblocking(true)?;
    // SAFETY: the socket owns its fd, and the AsyncFd owns the socket while registered.
    unsafe { AsyncFd::register(s) }.map_err(io::Error::from)
}

async fn icmp_reader(
    fd: Arc<AsyncFd<socket2::Socket>>,
    v6: bool,
    tx: mpsc::UnboundedSender<Event>,
) {
    let mut buf = vec![std::mem::MaybeUninit::<u8>::uninit(); 65_536];
    loop {
        let Ok(mut g) = fd.readable().await else {
            return;
        };
        loop {
            let (n, from) = match g.get_inner().recv_from(&mut buf) {
                Ok(r) => r,
                Err(_) => {
                    g.clear_ready();
                    break;
                }
            };
            // SAFETY: recv_from initialised the first `n` bytes of the buffer.
            let data = unsafe { std::slice::from_raw_parts(buf.as_ptr().cast::<u8>(), n) };
            let Some(src) = from.as_socket().map(|a| a.ip()) else {
                continue;
            };
            // A raw IPv4 socket gets the IP header too; ICMPv6 sockets do not.
            let msg = if v6 {
                data
            } else {
                let ihl = usize::from(data.first().map_or(0, |b| b & 0x0f)) * 4;
                data.get(ihl..).unwrap_or(&[])
            };
            if tx.send(Event::IcmpReply(src, msg.to_vec())).is_err() {
                return;
            }
        }
    }
}

fn sockaddr(a: IpAddr, port: u16) -> (libc::sockaddr_storage, libc::socklen_t) {
    // SAFETY: all-zero is a valid sockaddr_storage.
    let mut ss: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    match a {
        IpAddr::V4(v4) => {
            // SAFETY: sockaddr_storage is large and aligned enough for sockaddr_in.
            let sin = unsafe { &mut *(&mut ss as *mut _ as *mut libc::sockaddr_in) };
            sin.sin_family = libc::AF_INET as libc::sa_family_t;
            sin.sin_port = port.to_be();
            sin.sin_addr.s_addr = u32::from_ne_bytes(v4.octets());
            (
                ss,
                std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
            )
        }
        IpAddr::V6(v6) => {
            // SAFETY: as above, for sockaddr_in6.
            let sin6 = unsafe { &mut *(&mut ss as *mut _ as *mut libc::sockaddr_in6) };
            sin6.sin6_family = libc::AF_INET6 as libc::sa_family_t;
            sin6.sin6_port = port.to_be();
            sin6.sin6_addr.s6_addr = v6.octets();
            (
                ss,
                std::mem::size_of::<libc::sockaddr_in6>() as libc::socklen_t,
            )
        }
    }
}
