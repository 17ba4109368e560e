//! The NAT state machine: frames and host events in, frames and host-socket [`Action`]s out.
//! No I/O and no clock of its own (the caller passes `now`), so it is unit-tested and fuzzed
//! by feeding bytes (boringtun style); [`super::Gateway`] drives it with real sockets.
//!
//! - **TCP** is terminated in userspace by smoltcp (an IP-medium interface in "any IP" mode,
//!   so it answers for every destination). A container's SYN for a new flow creates a
//!   listening smoltcp socket for exactly (destination address, port), with its SYN-ACK held
//!   back (`pause_synack`), and asks the host to connect ([`Action::TcpConnect`]). When the
//!   host connection is up ([`Nat::tcp_connected`]) the SYN-ACK goes out; when it fails the
//!   container gets a RST, as from a refusing peer. FIN and RST propagate both ways (the
//!   container's FIN reaches the host after its last bytes: a closed flow stays until they
//!   are pushed). Segments
//!   may be GSO super-frames both ways ([`Nat::handle_gso_frame`] in, smoltcp's segmentation
//!   offload out, up to [`GSO_MAX`]) and windows are [`TCP_BUFFER`] (scaled).
//! - **TCP data path: one userspace copy per direction.** The engine never holds relayed
//!   bytes outside smoltcp's socket rings, and the caller's I/O is passed in as closures, so
//!   the state machine stays pure. Host → container: [`Nat::tcp_pull_from_host`] hands the
//!   free part of the smoltcp transmit ring to the caller's `read` (the kernel copies the host
//!   socket's bytes straight into it); smoltcp then builds segments from the ring into the
//!   frame buffer (the one copy). Container → host: a frame read by the caller into a buffer
//!   of the engine ([`Nat::rx_buffer`], [`Nat::handle_frame_buf`]) is queued to smoltcp
//!   without copying, smoltcp copies the payload into its receive ring (the one copy), and
//!   [`Nat::tcp_push_to_host`] hands the ring's bytes to the caller's `write`. Credit is the
//!   rings themselves: the host socket is read only while the transmit ring has room, and
//!   only what the host socket accepted leaves the receive ring (the rest stays, closing the
//!   container's window). The engine asks for a transfer only on a change of state
//!   ([`Action::TcpPull`] when the ring has room again after a stop on it, [`Action::TcpPush`]
//!   when received bytes wait and the host socket last accepted all): the caller's readiness
//!   events (edge-triggered) do the rest, so an idle flow costs no system call.
//! - **Idle flows cost no work either.** A TCP flow with empty rings and nothing pending is
//!   parked after [`PARK_AFTER`] services: its socket leaves smoltcp's set (which smoltcp
//!   walks on every poll) and the relay's walk, and comes back on the next segment, host
//!   event or transfer for it. UDP and ICMP expiry run from deadline queues, not a walk.
//! - **UDP**: one host socket per (container address, remote address) flow; replies are
//!   re-framed to the container; flows expire after [`UDP_IDLE_TIMEOUT`].
//! - **ICMP echo**: requests are re-sent from the host with an identifier allocated here
//!   (unique per container, identifier and destination); replies are matched by identifier
//!   and source and re-framed with the container's own identifier; entries expire after
//!   [`ICMP_TIMEOUT`].
//! - **Published ports** enter through [`Nat::tcp_inbound`] / [`Nat::udp_inbound`]: the
//!   container sees a connection from a gateway address and a port of
//!   [`crate::switch::RELAY_PORTS`] (the switch steers its answers to the gateway port).
//!   TCP relays into one container address open a few at a time ([`super::pacing`]), so a
//!   burst never overruns a server's small listen backlog.
//!
//! At most [`NatConfig::max_flows`] flows (all protocols together, default [`MAX_FLOWS`])
//! exist at once; beyond, new flows are refused and one warning is logged (re-armed once the
//! count has dropped below 90 % of the cap).

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet, VecDeque};
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::num::NonZeroUsize;
use std::ops::Range;
use std::time::Duration;

use ipnet::IpNet;
use smoltcp::iface::{Config, Interface, SocketHandle, SocketSet};
use smoltcp::phy::{Checksum, Device, DeviceCapabilities, Medium, RxToken, TxToken};
use smoltcp::socket::{tcp, Socket};
use smoltcp::wire::{HardwareAddress, IpAddress, IpCidr, IpListenEndpoint};

use super::frame;
use super::pacing::Pacer;
use crate::switch::RELAY_PORTS;
use crate::wire::vnet_hdr::{self, VnetHdrRepr};
use crate::wire::{tcp as tcpw, IpProtocol, MacAddr};

/// Most flows (TCP + UDP + ICMP echo) one network's gateway keeps at once.
pub const MAX_FLOWS: usize = 4096;
/// A UDP flow with no datagram either way for this long is closed (as conntrack's 30–120 s).
pub const UDP_IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// An ICMP echo mapping with no request or reply for this long is forgotten (conntrack: 30 s).
pub const ICMP_TIMEOUT: Duration = Duration::from_secs(30);
/// smoltcp receive and send buffer of each relayed TCP connection (window scaling makes it the
/// window). Allocated zeroed, so only the pages data reaches cost memory (smoltcp restarts an
/// emptied ring at its start).
pub const TCP_BUFFER: usize = 2 * 1024 * 1024;
/// Smallest ring [`NatConfig::tcp_buffer`] gives a flow: one full-sized segment.
pub const MIN_TCP_BUFFER: usize = 2048;
/// Largest IP packet smoltcp builds: a TCP super-segment that the port (or the datapath, for
/// a port without offloads) cuts at the container's MSS.
pub const GSO_MAX: usize = 65_535;
/// Ethernet header room kept in front of each packet smoltcp builds.
const ETH_ROOM: usize = crate::wire::ethernet::HEADER_LEN;
/// Bytes zeroed at the start of each packet smoltcp builds: the largest IPv6 + TCP headers.
const HEADERS_ZEROED: usize = 40 + 60;
/// Spare packet buffers kept for reuse, per direction (about 4 MiB each at 64 KiB frames).
const POOL: usize = 64;
/// Most container MAC addresses remembered (learned from their frames or given).
pub const MAX_NEIGHBORS: usize = 8192;
/// Services in a row that find a TCP flow idle before it is parked: out of smoltcp's socket
/// set and the relay's walk until a segment, a host event or a host transfer wakes it. Two,
/// so one full smoltcp poll (its ACK or window update for the last transfer) comes between.
const PARK_AFTER: u8 = 2;
/// The live socket set is rebuilt when it has this many times more slots than sockets (smoltcp
/// walks every slot, empty or not, on each poll).
const SLOTS_PER_SOCKET: usize = 4;
/// Slots a socket set may have whatever its occupancy.
const MIN_SLOTS: usize = 64;

/// Identifies one flow in [`Action`]s and host events.
pub type FlowId = u64;

/// Inter-network isolation for NAT: every local network's subnets with their gateway
/// addresses, shared by all engines and kept current by the daemon. A container may not reach
/// another network's containers through the NAT (Docker's DOCKER-ISOLATION rules act on
/// forwarding between bridges); the gateway addresses are the host's own and stay reachable.
#[derive(Debug, Clone, Default)]
pub struct Isolation(pub std::sync::Arc<std::sync::RwLock<Vec<LocalNetwork>>>);

/// A local network's subnet and its gateway addresses.
pub type LocalNetwork = (IpNet, Vec<IpAddr>);

impl Isolation {
    /// Replace the list of networks.
    pub fn set(&self, networks: Vec<LocalNetwork>) {
        *self.0.write().unwrap_or_else(|p| p.into_inner()) = networks;
    }

    /// Whether `a` belongs to a local network's containers (not to its gateway).
    pub fn forbids(&self, a: IpAddr) -> bool {
        let nets = self.0.read().unwrap_or_else(|p| p.into_inner());
        nets.iter()
            .any(|(n, gws)| n.contains(&a) && !gws.contains(&a))
    }
}

impl PartialEq for Isolation {
    fn eq(&self, other: &Self) -> bool {
        std::sync::Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for Isolation {}

/// What the engine needs to know about its network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NatConfig {
    /// The gateway's MAC (source of every frame the engine sends).
    pub gateway_mac: MacAddr,
    /// The gateway's IPv4 address (source of IPv4 published-port relays).
    pub gateway_v4: Option<Ipv4Addr>,
    /// The gateway's IPv6 address.
    pub gateway_v6: Option<Ipv6Addr>,
    /// The network's subnets: containers live there, and nothing in them is NATed.
    pub subnets: Vec<IpNet>,
    /// The network's MTU (IP packet size the engine sends to containers).
    pub mtu: usize,
    /// Most flows at once ([`MAX_FLOWS`]).
    pub max_flows: usize,
    /// Lets containers reach the host's loopback addresses. Only for tests: in production a
    /// container must never reach services bound to 127.0.0.1 (Docker drops such packets).
    pub allow_loopback: bool,
    /// Other local networks, never reachable through the NAT.
    pub isolation: Isolation,
    /// Receive and send ring of each relayed TCP connection ([`TCP_BUFFER`]; at least
    /// [`MIN_TCP_BUFFER`]). Smaller only where memory per flow matters more than the window
    /// (the fuzzer).
    pub tcp_buffer: usize,
}

/// Something the I/O side must do with host sockets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Open a TCP connection from the host to `dst`, then report with
    /// [`Nat::tcp_connected`].
    TcpConnect { flow: FlowId, dst: SocketAddr },
    /// The container connection can take host bytes again (handshake done, or the container
    /// acknowledged some after [`Nat::tcp_pull_from_host`] stopped on a full ring): pull.
    TcpPull { flow: FlowId },
    /// Container bytes wait for the host socket: push them with [`Nat::tcp_push_to_host`]
    /// (not asked again after the host socket would block: push when it is writable).
    TcpPush { flow: FlowId },
    /// The container closed its sending side and all its bytes were pushed: shut down
    /// the host socket's write side.
    TcpShutdown { flow: FlowId },
    /// The flow is gone: close the host socket (with a RST when `reset`).
    TcpClose { flow: FlowId, reset: bool },
    /// A new outbound UDP flow: open a host socket connected to `dst`; its datagrams come
    /// back with [`Nat::udp_host_data`].
    UdpOpen { flow: FlowId, dst: SocketAddr },
    /// Send a datagram on the flow's host socket (or, for a published port, to its client).
    UdpSend { flow: FlowId, data: Vec<u8> },
    /// The flow expired: close its host socket (a published port's flow has none).
    UdpClose { flow: FlowId },
    /// Send this ICMP (v4 or v6 after `dst`'s family) echo request from a raw socket;
    /// replies come back with [`Nat::icmp_host_reply`].
    IcmpEcho { dst: IpAddr, message: Vec<u8> },
}

/// How a host transfer ([`Nat::tcp_pull_from_host`], [`Nat::tcp_push_to_host`]) ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostIo {
    /// The host socket would block: transfer again on its next readiness.
    WouldBlock,
    /// Stopped on the engine's side (ring full or empty, flow not ready, ended or unknown):
    /// the engine asks with an [`Action`] when there is work.
    Idle,
}

/// Why an inbound (published-port) flow could not be created.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum NatError {
    /// [`NatConfig::max_flows`] reached.
    #[error("too many flows through the gateway")]
    Full,
    /// The network has no gateway address of the container's family.
    #[error("no gateway address of this family")]
    NoAddress,
    /// Every relay port of [`RELAY_PORTS`] is in use.
    #[error("no free relay port")]
    NoPort,
    /// smoltcp refused the connection attempt.
    #[error("cannot open the relay connection")]
    Connect,
}

/// Counters, for tests and metrics.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NatStats {
    pub frames_in: u64,
    pub frames_out: u64,
    /// Input frames not handled (not IP, bad checksum, not for the engine, …).
    pub dropped: u64,
    /// Output frames dropped because the container's MAC is unknown.
    pub no_neighbor: u64,
    /// New flows refused at the cap.
    pub flow_cap_hits: u64,
    /// Connections accepted on published TCP ports and relayed into a container.
    pub published_tcp: u64,
    /// New UDP clients of published UDP ports.
    pub published_udp: u64,
    /// Flows alive now, by protocol (set by [`Nat::snapshot`]).
    pub tcp_flows: u64,
    pub udp_flows: u64,
    pub icmp_flows: u64,
}

struct TcpFlow {
    /// Its socket in the live set; stale while parked.
    handle: SocketHandle,
    /// An idle flow's socket, out of the live set (see [`PARK_AFTER`]).
    parked: Option<Box<Socket<'static>>>,
    /// Services in a row that found it idle.
    quiet: u8,
    key: (SocketAddr, SocketAddr),
    /// A published-port relay (connected from the gateway into the container).
    inbound: bool,
    /// The host side is connected (outbound: after `tcp_connected(Ok)`).
    connected: bool,
    /// The last pull stopped on the engine's side (ring full, handshake not done): ask for a
    /// pull ([`Action::TcpPull`]) once the ring can take bytes.
    pull_waiting: bool,
    /// The host socket would not take more: wait for the caller's next push (writable).
    push_blocked: bool,
    host_eof: bool,
    /// The container's FIN arrived (its bytes may still be in the receive ring).
    container_fin: bool,
    close_called: bool,
    shutdown_sent: bool,
    aborted: bool,
    closed_polls: u8,
    /// Inbound: where the flow is in its pacing window.
    pacing: Pacing,
}

/// An inbound relay's place in [`Pacer`]'s window for its container address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pacing {
    /// Not paced (outbound), or no longer (the container answered, or the window moved on).
    Off,
    /// Waiting for a slot: its socket is not connected yet.
    Waiting,
    /// SYN sent, handshake not complete.
    Connecting,
    /// Handshake complete, no answer from the container yet.
    Silent,
}

impl TcpFlow {
    /// A new flow: outbound ones wait for the host connect, inbound (published-port relays)
    /// start connected on the host side.
    fn new(handle: SocketHandle, key: (SocketAddr, SocketAddr), inbound: bool) -> TcpFlow {
        TcpFlow {
            handle,
            parked: None,
            quiet: 0,
            key,
            inbound,
            connected: inbound,
            pull_waiting: true,
            push_blocked: false,
            host_eof: false,
            container_fin: false,
            close_called: false,
            shutdown_sent: false,
            aborted: false,
            closed_polls: 0,
            pacing: if inbound {
                Pacing::Waiting
            } else {
                Pacing::Off
            },
        }
    }
}

struct UdpFlow {
    key: (SocketAddr, SocketAddr),
    inbound: Option<(u64, SocketAddr)>,
    last: Duration,
}

struct IcmpFlow {
    key: (IpAddr, u16, IpAddr),
    last: Duration,
    /// Tells this mapping's expiry entries from those of an earlier one with its identifier.
    generation: u64,
}

/// The smoltcp device: IP packets queued in and out, in recycled buffers (no allocation per
/// packet once the pools are warm).
struct Queues {
    /// Packets for smoltcp: each a range of its buffer (a whole frame read by the caller).
    rx: VecDeque<(Vec<u8>, Range<usize>)>,
    rx_free: Vec<Vec<u8>>,
    /// While [`Nat::handle_frame_buf`] runs: the packet to queue in the caller's buffer
    /// (address, length) instead of a copy.
    lending: bool,
    lent: Option<(usize, usize)>,
    /// Packets built by smoltcp ([`ETH_ROOM`] bytes of room in front) with their GSO size.
    tx: Vec<(Vec<u8>, Option<u16>)>,
    tx_free: Vec<Vec<u8>>,
    mtu: usize,
}

struct Rx<'a> {
    buf: Vec<u8>,
    range: Range<usize>,
    free: &'a mut Vec<Vec<u8>>,
}

struct Tx<'a> {
    tx: &'a mut Vec<(Vec<u8>, Option<u16>)>,
    free: &'a mut Vec<Vec<u8>>,
    gso: Option<u16>,
}

fn recycle(pool: &mut Vec<Vec<u8>>, b: Vec<u8>, max: usize) {
    if pool.len() < max {
        pool.push(b);
    }
}

impl RxToken for Rx<'_> {
    fn consume<R, F: FnOnce(&[u8]) -> R>(self, f: F) -> R {
        let r = f(self.buf.get(self.range).unwrap_or(&[]));
        recycle(self.free, self.buf, POOL);
        r
    }
}

impl TxToken for Tx<'_> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        let mut b = self.free.pop().unwrap_or_default();
        // A recycled buffer keeps its bytes: smoltcp writes every byte of a packet but the
        // padding after a TCP option list's end, so only the headers are zeroed (no
        // 64 KiB memset per super-segment, and no stale bytes in that padding).
        let total = ETH_ROOM + len;
        if b.len() < total {
            b.resize(total, 0);
        }
        b.truncate(total);
        let head = total.min(ETH_ROOM + HEADERS_ZEROED);
        b[ETH_ROOM..head].fill(0);
        let r = f(&mut b[ETH_ROOM..]);
        self.tx.push((b, self.gso));
        r
    }

    fn set_meta(&mut self, meta: smoltcp::phy::PacketMeta) {
        self.gso = meta.segmentation_offload_size.map(|n| n.get());
    }
}

impl Device for Queues {
    type RxToken<'a> = Rx<'a>;
    type TxToken<'a> = Tx<'a>;

    fn receive(&mut self, _: smoltcp::time::Instant) -> Option<(Rx<'_>, Tx<'_>)> {
        let (buf, range) = self.rx.pop_front()?;
        Some((
            Rx {
                buf,
                range,
                free: &mut self.rx_free,
            },
            Tx {
                tx: &mut self.tx,
                free: &mut self.tx_free,
                gso: None,
            },
        ))
    }

    fn transmit(&mut self, _: smoltcp::time::Instant) -> Option<Tx<'_>> {
        Some(Tx {
            tx: &mut self.tx,
            free: &mut self.tx_free,
            gso: None,
        })
    }

    fn capabilities(&self) -> DeviceCapabilities {
        let mut c = DeviceCapabilities::default();
        c.medium = Medium::Ip;
        c.max_transmission_unit = self.mtu;
        // TCP checksums: verified by the engine's parser (or partial in a super-frame from
        // the kernel), and left partial on output for the port to complete.
        c.checksum.tcp = Checksum::None;
        c.segmentation.tcpv4 = NonZeroUsize::new(GSO_MAX);
        c.segmentation.tcpv6 = NonZeroUsize::new(GSO_MAX);
        c
    }
}

impl Queues {
    /// Queues a copy of `packet` (buffers keep their length: no zeroing on reuse).
    fn push_rx(&mut self, packet: &[u8]) {
        let mut b = self.rx_free.pop().unwrap_or_default();
        if b.len() < packet.len() {
            b.resize(packet.len(), 0);
        }
        b[..packet.len()].copy_from_slice(packet);
        self.rx.push_back((b, 0..packet.len()));
    }

    /// Queues `packet`: in the caller's buffer when lending, else a copy.
    fn lend_rx(&mut self, packet: &[u8]) {
        if self.lending && self.lent.is_none() {
            self.lent = Some((packet.as_ptr() as usize, packet.len()));
        } else {
            self.push_rx(packet);
        }
    }
}

/// Destinations the engine connects to from the host: never the host's loopback (a
/// container must not reach services bound to 127.0.0.1), IPv4-mapped IPv6 (the same in
/// disguise), multicast, broadcast, unspecified or link-local addresses.
fn routable(a: IpAddr) -> bool {
    match a {
        IpAddr::V4(a) => {
            !(a.is_loopback()
                || a.is_unspecified()
                || a.is_multicast()
                || a.is_broadcast()
                || a.is_link_local())
        }
        IpAddr::V6(a) => {
            !(a.is_loopback()
                || a.is_unspecified()
                || a.is_multicast()
                || a.is_unicast_link_local()
                || a.to_ipv4_mapped().is_some()
                || a.segments()[..6] == [0; 6])
        }
    }
}

/// A relay socket: no Nagle (the host side already batches), ACKs at the end of each poll
/// rather than after smoltcp's 10 ms delay (super-frames are acked one by one anyway).
fn new_socket(ring: usize) -> tcp::Socket<'static> {
    let ring = ring.max(MIN_TCP_BUFFER);
    let mut s = tcp::Socket::new(
        tcp::SocketBuffer::new(vec![0; ring]),
        tcp::SocketBuffer::new(vec![0; ring]),
    );
    s.set_nagle_enabled(false);
    s.set_ack_delay(None);
    s
}

fn instant(now: Duration) -> smoltcp::time::Instant {
    smoltcp::time::Instant::from_micros(i64::try_from(now.as_micros()).unwrap_or(i64::MAX))
}

/// The NAT state machine of one network. See the [module documentation](self).
pub struct Nat {
    cfg: NatConfig,
    iface: Interface,
    sockets: SocketSet<'static>,
    dev: Queues,
    neighbors: HashMap<IpAddr, MacAddr>,
    next_flow: FlowId,
    tcp: HashMap<FlowId, TcpFlow>,
    tcp_keys: HashMap<(SocketAddr, SocketAddr), FlowId>,
    udp: HashMap<FlowId, UdpFlow>,
    udp_keys: HashMap<(SocketAddr, SocketAddr), FlowId>,
    udp_inbound_keys: HashMap<(u64, SocketAddr), FlowId>,
    /// Host-side ICMP identifier → mapping.
    icmp: HashMap<u16, IcmpFlow>,
    icmp_keys: HashMap<(IpAddr, u16, IpAddr), u16>,
    next_ident: u16,
    relay_used: HashSet<(IpAddr, u16)>,
    next_relay: u16,
    /// Frames for the containers with their virtio-net header (partial TCP checksum, GSO).
    frames: VecDeque<(VnetHdrRepr, Vec<u8>)>,
    actions: VecDeque<Action>,
    cap_warned: bool,
    stats: NatStats,
    /// Opening windows of inbound relays.
    pacer: Pacer,
    /// Inbound flows to start (reused).
    starting: Vec<(SocketAddr, FlowId)>,
    /// TCP flows not parked: the only ones smoltcp and the relay's service look at.
    live: HashSet<FlowId>,
    /// Slots of `sockets` (smoltcp only ever appends one when all are taken).
    slots: usize,
    /// When UDP flows may expire (min-heap; an entry whose flow has moved on is re-queued).
    udp_expiry: BinaryHeap<Reverse<(Duration, FlowId)>>,
    /// Likewise for ICMP mappings: (deadline, generation, identifier).
    icmp_expiry: BinaryHeap<Reverse<(Duration, u64, u16)>>,
    /// Reused lists of flows for the service walk.
    parking: Vec<FlowId>,
    gone: Vec<(FlowId, bool)>,
}

impl std::fmt::Debug for Nat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Nat")
            .field("cfg", &self.cfg)
            .field("flows", &self.flow_count())
            .field("stats", &self.stats)
            .finish()
    }
}

impl Nat {
    /// A NAT engine with no flows; `seed` randomises smoltcp's initial sequence numbers.
    pub fn new(mut cfg: NatConfig, now: Duration, seed: u64) -> Nat {
        cfg.mtu = cfg.mtu.clamp(1280, 65_535);
        // smoltcp panics on non-unicast interface addresses: such a gateway is none at all.
        cfg.gateway_v4 = cfg
            .gateway_v4
            .filter(|a| !(a.is_unspecified() || a.is_multicast() || a.is_broadcast()));
        cfg.gateway_v6 = cfg
            .gateway_v6
            .filter(|a| !(a.is_unspecified() || a.is_multicast()));
        let mut dev = Queues {
            rx: VecDeque::new(),
            rx_free: Vec::new(),
            lending: false,
            lent: None,
            tx: Vec::new(),
            tx_free: Vec::new(),
            mtu: cfg.mtu,
        };
        let mut c = Config::new(HardwareAddress::Ip);
        c.random_seed = seed;
        let mut iface = Interface::new(c, &mut dev, instant(now));
        iface.set_any_ip(true);
        iface.update_ip_addrs(|a| {
            if let Some(v4) = cfg.gateway_v4 {
                let _ = a.push(IpCidr::new(IpAddress::Ipv4(v4), 32));
            }
            if let Some(v6) = cfg.gateway_v6 {
                let _ = a.push(IpCidr::new(IpAddress::Ipv6(v6), 128));
            }
        });
        // Every destination is reachable "via ourselves": smoltcp needs a route to send.
        if let Some(v4) = cfg.gateway_v4 {
            let _ = iface.routes_mut().add_default_ipv4_route(v4);
        }
        if let Some(v6) = cfg.gateway_v6 {
            let _ = iface.routes_mut().add_default_ipv6_route(v6);
        }
        Nat {
            cfg,
            iface,
            sockets: SocketSet::new(Vec::new()),
            dev,
            neighbors: HashMap::new(),
            next_flow: 1,
            tcp: HashMap::new(),
            tcp_keys: HashMap::new(),
            udp: HashMap::new(),
            udp_keys: HashMap::new(),
            udp_inbound_keys: HashMap::new(),
            icmp: HashMap::new(),
            icmp_keys: HashMap::new(),
            next_ident: (seed as u16) | 1,
            relay_used: HashSet::new(),
            next_relay: *RELAY_PORTS.start(),
            frames: VecDeque::new(),
            actions: VecDeque::new(),
            cap_warned: false,
            stats: NatStats::default(),
            pacer: Pacer::default(),
            starting: Vec::new(),
            live: HashSet::new(),
            slots: 0,
            udp_expiry: BinaryHeap::new(),
            icmp_expiry: BinaryHeap::new(),
            parking: Vec::new(),
            gone: Vec::new(),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &NatConfig {
        &self.cfg
    }

    /// Counters.
    pub fn stats(&self) -> &NatStats {
        &self.stats
    }

    /// The counters with the flows alive now.
    pub fn snapshot(&self) -> NatStats {
        let mut s = self.stats.clone();
        s.tcp_flows = self.tcp.len() as u64;
        s.udp_flows = self.udp.len() as u64;
        s.icmp_flows = self.icmp.len() as u64;
        s
    }

    /// Flows alive (TCP + UDP + ICMP).
    pub fn flow_count(&self) -> usize {
        self.tcp.len() + self.udp.len() + self.icmp.len()
    }

    /// Remembers a container's MAC (the daemon tells it on attach; frames also teach it).
    pub fn add_neighbor(&mut self, ip: IpAddr, mac: MacAddr) {
        if self.neighbors.len() < MAX_NEIGHBORS || self.neighbors.contains_key(&ip) {
            self.neighbors.insert(ip, mac);
        }
    }

    /// Forgets a container's MAC (detach).
    pub fn remove_neighbor(&mut self, ip: IpAddr) {
        self.neighbors.remove(&ip);
    }

    /// Next frame to send into the network (towards a container), with its virtio-net header:
    /// TCP checksums are partial (`NEEDS_CSUM`) and a TCP segment longer than the container's
    /// MSS is a GSO super-frame. Give the buffer back with [`Nat::recycle`] once written.
    pub fn pop_offloaded_frame(&mut self) -> Option<(VnetHdrRepr, Vec<u8>)> {
        self.frames.pop_front()
    }

    /// Next frame as a port without offloads sees it: checksums complete (a super-frame
    /// stays whole). For tests and fuzzing; the gateway uses [`Nat::pop_offloaded_frame`].
    pub fn pop_frame(&mut self) -> Option<Vec<u8>> {
        let (h, mut f) = self.frames.pop_front()?;
        if vnet_hdr::complete_checksum(&mut f, &h).is_err() {
            self.stats.dropped += 1;
        }
        Some(f)
    }

    /// Returns a written frame's buffer for reuse.
    pub fn recycle(&mut self, frame: Vec<u8>) {
        recycle(&mut self.dev.tx_free, frame, POOL);
    }

    /// Returns a buffer of [`Nat::rx_buffer`] that was not handed over.
    pub fn recycle_rx(&mut self, buf: Vec<u8>) {
        recycle(&mut self.dev.rx_free, buf, POOL);
    }

    /// A buffer of at least `len` bytes to read the next frame into, for
    /// [`Nat::handle_frame_buf`] (recycled: no allocation per frame once warm).
    pub fn rx_buffer(&mut self, len: usize) -> Vec<u8> {
        let mut b = self.dev.rx_free.pop().unwrap_or_default();
        if b.len() < len {
            b.resize(len, 0);
        }
        b
    }

    /// Next host-socket action.
    pub fn pop_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// When [`Nat::poll`] must run next at the latest (smoltcp timers, flow expiry).
    pub fn poll_at(&mut self, now: Duration) -> Option<Duration> {
        let mut at = self
            .iface
            .poll_at(instant(now), &self.sockets)
            .map(|i| Duration::from_micros(u64::try_from(i.total_micros()).unwrap_or(0)));
        let mut earliest = |d: Duration| at = Some(at.map_or(d, |a| a.min(d)));
        // The heads may be stale (the flow moved on): one early wake-up re-queues them.
        if let Some(Reverse((t, _))) = self.udp_expiry.peek() {
            earliest(*t);
        }
        if let Some(Reverse((t, _, _))) = self.icmp_expiry.peek() {
            earliest(*t);
        }
        if let Some(t) = self.pacer.next_deadline() {
            earliest(t);
        }
        at
    }

    fn is_gateway_addr(&self, a: IpAddr) -> bool {
        match a {
            IpAddr::V4(a) => self.cfg.gateway_v4 == Some(a),
            IpAddr::V6(a) => self.cfg.gateway_v6 == Some(a),
        }
    }

    fn in_subnets(&self, a: IpAddr) -> bool {
        self.cfg.subnets.iter().any(|n| n.contains(&a))
    }

    fn admit(&mut self) -> bool {
        let n = self.flow_count();
        if n < self.cfg.max_flows {
            if self.cap_warned && n < self.cfg.max_flows * 9 / 10 {
                self.cap_warned = false;
            }
            return true;
        }
        self.stats.flow_cap_hits += 1;
        if !self.cap_warned {
            self.cap_warned = true;
            tracing::warn!(
                "gateway: {} concurrent NAT flows reached (the cap); new connections from \
                 containers and to published ports are refused until some end",
                self.cfg.max_flows
            );
        }
        false
    }

    fn new_flow_id(&mut self) -> FlowId {
        let id = self.next_flow;
        self.next_flow += 1;
        id
    }

    /// TCP flows smoltcp and the relay look at on each poll; the others are parked (idle).
    pub fn live_tcp_flows(&self) -> usize {
        self.live.len()
    }

    /// Puts a new flow's socket in the live set.
    fn add_live(&mut self, flow: FlowId, s: tcp::Socket<'static>) -> SocketHandle {
        let h = self.sockets.add(s);
        self.live.insert(flow);
        self.slots = self.slots.max(self.live.len());
        h
    }

    /// Something for a TCP flow (a segment, a host event or transfer): back in the live set.
    fn wake(&mut self, flow: FlowId) {
        let Some(f) = self.tcp.get_mut(&flow) else {
            return;
        };
        f.quiet = 0;
        if let Some(s) = f.parked.take() {
            f.handle = self.sockets.add(*s);
            self.live.insert(flow);
            self.slots = self.slots.max(self.live.len());
        }
    }

    /// Takes an idle flow's socket out of the live set.
    fn park(&mut self, flow: FlowId) {
        let Some(f) = self.tcp.get_mut(&flow) else {
            return;
        };
        if f.parked.is_none() {
            f.parked = Some(Box::new(self.sockets.remove(f.handle)));
            self.live.remove(&flow);
        }
    }

    /// Rebuilds the live set once it is mostly empty slots (after many flows parked or ended).
    fn compact(&mut self) {
        if self.slots <= MIN_SLOTS.max(self.live.len() * SLOTS_PER_SOCKET) {
            return;
        }
        let mut set = SocketSet::new(Vec::with_capacity(self.live.len()));
        for flow in &self.live {
            if let Some(f) = self.tcp.get_mut(flow) {
                f.handle = set.add(self.sockets.remove(f.handle));
            }
        }
        self.sockets = set;
        self.slots = self.live.len();
    }

    /// A frame the switch sent to the gateway port (a container's packet for outside the
    /// network, or an answer to a published-port relay). Call [`Nat::poll`] after a batch.
    pub fn handle_frame(&mut self, now: Duration, frame: &[u8]) {
        self.input(now, frame, true);
    }

    /// A TCP GSO super-frame from a port with offloads (virtio-net header `TCPV4`/`TCPV6`):
    /// its TCP checksum is partial, so it is not verified, and it may exceed the MTU (smoltcp
    /// takes it whole when it fits the window). Anything but TCP is dropped.
    pub fn handle_gso_frame(&mut self, now: Duration, frame: &[u8]) {
        self.input(now, frame, false);
    }

    /// [`Nat::handle_frame`] (`verify`) or [`Nat::handle_gso_frame`] (not) of the frame
    /// `buf[frame]`, taking the buffer: a TCP segment for a known flow is queued to smoltcp
    /// in place (no copy before smoltcp's own into its receive ring). Get buffers with
    /// [`Nat::rx_buffer`].
    pub fn handle_frame_buf(
        &mut self,
        now: Duration,
        buf: Vec<u8>,
        frame: Range<usize>,
        verify: bool,
    ) {
        let Some(f) = buf.get(frame) else {
            self.stats.frames_in += 1;
            self.stats.dropped += 1;
            recycle(&mut self.dev.rx_free, buf, POOL);
            return;
        };
        self.dev.lending = true;
        self.input(now, f, verify);
        self.dev.lending = false;
        let lent = self.dev.lent.take().and_then(|(addr, len)| {
            let off = addr.checked_sub(buf.as_ptr() as usize)?;
            (off.checked_add(len)? <= buf.len()).then_some(off..off + len)
        });
        match lent {
            Some(r) => self.dev.rx.push_back((buf, r)),
            None => recycle(&mut self.dev.rx_free, buf, POOL),
        }
    }

    fn input(&mut self, now: Duration, frame: &[u8], verify: bool) {
        self.stats.frames_in += 1;
        let Some(p) = frame::parse(frame) else {
            self.stats.dropped += 1;
            return;
        };
        // Only containers of this network, to outside it or to a relay of ours.
        let relay = self.is_gateway_addr(p.dst);
        if !self.in_subnets(p.src)
            || (self.in_subnets(p.dst) && !relay)
            || (!relay && self.cfg.isolation.forbids(p.dst))
            || !(routable(p.dst) || self.cfg.allow_loopback && p.dst.is_loopback())
        {
            self.stats.dropped += 1;
            return;
        }
        if p.src_mac.is_valid_source() {
            self.add_neighbor(p.src, p.src_mac);
        }
        let handled = match p.proto {
            IpProtocol::TCP => self.on_tcp(now, &p, verify),
            IpProtocol::UDP if verify => self.on_udp(now, &p, relay),
            IpProtocol::ICMP | IpProtocol::ICMPV6 if verify && !relay => self.on_icmp(now, &p),
            _ => false,
        };
        if !handled {
            self.stats.dropped += 1;
        }
    }

    fn on_tcp(&mut self, now: Duration, p: &frame::Inbound<'_>, verify: bool) -> bool {
        let Some((sp, dp, flags)) = frame::tcp_ports_flags(p, verify) else {
            return false;
        };
        let container = SocketAddr::new(p.src, sp);
        let peer = SocketAddr::new(p.dst, dp);
        let key = (container, peer);
        let syn_only = flags & (tcpw::FLAG_SYN | tcpw::FLAG_ACK | tcpw::FLAG_RST) == tcpw::FLAG_SYN;
        let relay = self.is_gateway_addr(p.dst);
        let known = self.tcp_keys.get(&key).copied();
        if let Some(flow) = known {
            // Before smoltcp sees the segment: a parked socket would answer it with a RST.
            self.wake(flow);
        } else if syn_only && !relay && dp != 0 {
            if !self.admit() {
                return true;
            }
            let mut s = new_socket(self.cfg.tcp_buffer);
            s.pause_synack(true);
            if s.listen(IpListenEndpoint {
                addr: Some(IpAddress::from(p.dst)),
                port: dp,
            })
            .is_err()
            {
                return false;
            }
            let flow = self.new_flow_id();
            let handle = self.add_live(flow, s);
            self.tcp.insert(flow, TcpFlow::new(handle, key, false));
            self.tcp_keys.insert(key, flow);
            self.dev.push_rx(p.packet);
            self.iface
                .poll(instant(now), &mut self.dev, &mut self.sockets);
            let s = self.sockets.get::<tcp::Socket>(handle);
            let accepted = s.state() == tcp::State::SynReceived
                && s.remote_endpoint().map(SocketAddr::from) == Some(container);
            if accepted {
                self.actions
                    .push_back(Action::TcpConnect { flow, dst: peer });
            } else {
                self.tcp.remove(&flow);
                self.tcp_keys.remove(&key);
                self.live.remove(&flow);
                self.sockets.remove(handle);
            }
            self.flush_tx();
            return true;
        }
        // Known flows, and anything else: smoltcp answers unknown segments with a RST.
        self.dev.lend_rx(p.packet);
        true
    }

    fn on_udp(&mut self, now: Duration, p: &frame::Inbound<'_>, relay: bool) -> bool {
        let Some((sp, dp, data)) = frame::udp(p) else {
            return false;
        };
        let key = (SocketAddr::new(p.src, sp), SocketAddr::new(p.dst, dp));
        let flow = match self.udp_keys.get(&key) {
            Some(f) => *f,
            None if relay || dp == 0 => return false,
            None => {
                if !self.admit() {
                    return true;
                }
                let flow = self.new_flow_id();
                self.udp.insert(
                    flow,
                    UdpFlow {
                        key,
                        inbound: None,
                        last: now,
                    },
                );
                self.udp_keys.insert(key, flow);
                self.udp_expiry
                    .push(Reverse((now + UDP_IDLE_TIMEOUT, flow)));
                self.actions.push_back(Action::UdpOpen { flow, dst: key.1 });
                flow
            }
        };
        if let Some(f) = self.udp.get_mut(&flow) {
            f.last = now;
        }
        self.actions.push_back(Action::UdpSend {
            flow,
            data: data.to_vec(),
        });
        true
    }

    fn on_icmp(&mut self, now: Duration, p: &frame::Inbound<'_>) -> bool {
        let Some((ident, seq, data)) = frame::echo_request(p) else {
            return false;
        };
        let key = (p.src, ident, p.dst);
        let host_ident = match self.icmp_keys.get(&key) {
            Some(i) => *i,
            None => {
                if !self.admit() {
                    return true;
                }
                let Some(i) = self.alloc_ident() else {
                    return true;
                };
                let generation = self.new_flow_id();
                self.icmp_keys.insert(key, i);
                self.icmp.insert(
                    i,
                    IcmpFlow {
                        key,
                        last: now,
                        generation,
                    },
                );
                self.icmp_expiry
                    .push(Reverse((now + ICMP_TIMEOUT, generation, i)));
                i
            }
        };
        if let Some(f) = self.icmp.get_mut(&host_ident) {
            f.last = now;
        }
        let message = frame::echo_message(p.dst.is_ipv6(), None, false, host_ident, seq, data);
        self.actions.push_back(Action::IcmpEcho {
            dst: p.dst,
            message,
        });
        true
    }

    fn alloc_ident(&mut self) -> Option<u16> {
        for _ in 0..=u16::MAX {
            let i = self.next_ident;
            self.next_ident = self.next_ident.wrapping_add(1);
            if !self.icmp.contains_key(&i) {
                return Some(i);
            }
        }
        None
    }

    fn alloc_relay_port(&mut self, gw: IpAddr) -> Option<u16> {
        let span = usize::from(RELAY_PORTS.end() - RELAY_PORTS.start()) + 1;
        for _ in 0..span {
            let p = self.next_relay;
            self.next_relay = if p >= *RELAY_PORTS.end() {
                *RELAY_PORTS.start()
            } else {
                p + 1
            };
            if self.relay_used.insert((gw, p)) {
                return Some(p);
            }
        }
        None
    }

    fn gateway_for(&self, container: IpAddr) -> Option<IpAddr> {
        match container {
            IpAddr::V4(_) => self.cfg.gateway_v4.map(IpAddr::V4),
            IpAddr::V6(_) => self.cfg.gateway_v6.map(IpAddr::V6),
        }
    }

    // ---- host events --------------------------------------------------------------------

    /// The host connection of an outbound TCP flow is up (`true`) or failed (`false`: the
    /// container gets a RST).
    pub fn tcp_connected(&mut self, flow: FlowId, ok: bool) {
        self.wake(flow);
        let Some(f) = self.tcp.get_mut(&flow) else {
            return;
        };
        let s = self.sockets.get_mut::<tcp::Socket>(f.handle);
        if ok {
            f.connected = true;
            s.pause_synack(false);
        } else {
            f.aborted = true;
            s.abort();
        }
    }

    /// Host → container: while the container connection can take bytes, `read` fills the
    /// free part of smoltcp's transmit ring straight from the host socket (`Ok(0)`: the host
    /// peer's FIN; an error but `WouldBlock`/`Interrupted`: the container gets a RST).
    /// Returns [`HostIo::WouldBlock`] when `read` did (pull again when the socket is
    /// readable); otherwise the engine asks with [`Action::TcpPull`] when there is room.
    pub fn tcp_pull_from_host(
        &mut self,
        flow: FlowId,
        mut read: impl FnMut(&mut [u8]) -> io::Result<usize>,
    ) -> HostIo {
        self.wake(flow);
        let Some(f) = self.tcp.get_mut(&flow) else {
            return HostIo::Idle;
        };
        if f.host_eof || f.aborted {
            return HostIo::Idle;
        }
        let s = self.sockets.get_mut::<tcp::Socket>(f.handle);
        loop {
            if !s.can_send() {
                f.pull_waiting = true;
                return HostIo::Idle;
            }
            let r = s.send(|b| match read(b) {
                Ok(n) => (n.min(b.len()), Ok(n)),
                Err(e) => (0, Err(e)),
            });
            match r {
                Ok(Ok(0)) => {
                    f.host_eof = true;
                    return HostIo::Idle;
                }
                Ok(Ok(_)) => {}
                Ok(Err(e)) if e.kind() == io::ErrorKind::WouldBlock => return HostIo::WouldBlock,
                Ok(Err(e)) if e.kind() == io::ErrorKind::Interrupted => {}
                Ok(Err(_)) => {
                    f.aborted = true;
                    s.abort();
                    return HostIo::Idle;
                }
                Err(_) => {
                    f.pull_waiting = true;
                    return HostIo::Idle;
                }
            }
        }
    }

    /// Container → host: `write` takes bytes straight from smoltcp's receive ring into the
    /// host socket; only what it accepted leaves the ring (an error but
    /// `WouldBlock`/`Interrupted`, or accepting nothing: the container gets a RST). Returns
    /// [`HostIo::WouldBlock`] when `write` did (push again when the socket is writable);
    /// otherwise the engine asks with [`Action::TcpPush`] when new bytes wait.
    pub fn tcp_push_to_host(
        &mut self,
        flow: FlowId,
        mut write: impl FnMut(&[u8]) -> io::Result<usize>,
    ) -> HostIo {
        self.wake(flow);
        let Some(f) = self.tcp.get_mut(&flow) else {
            return HostIo::Idle;
        };
        if f.aborted || !f.connected {
            return HostIo::Idle;
        }
        f.push_blocked = false;
        let s = self.sockets.get_mut::<tcp::Socket>(f.handle);
        while s.recv_queue() > 0 {
            let r = s.recv(|b| match write(b) {
                Ok(n) => (n.min(b.len()), Ok(n)),
                Err(e) => (0, Err(e)),
            });
            match r {
                Ok(Ok(n)) if n > 0 => {}
                Ok(Err(e)) if e.kind() == io::ErrorKind::WouldBlock => {
                    f.push_blocked = true;
                    return HostIo::WouldBlock;
                }
                Ok(Err(e)) if e.kind() == io::ErrorKind::Interrupted => {}
                Ok(_) => {
                    f.aborted = true;
                    s.abort();
                    return HostIo::Idle;
                }
                Err(_) => return HostIo::Idle,
            }
        }
        HostIo::Idle
    }

    /// The host peer closed its sending side (FIN): the container gets a FIN after the data.
    pub fn tcp_host_eof(&mut self, flow: FlowId) {
        self.wake(flow);
        if let Some(f) = self.tcp.get_mut(&flow) {
            f.host_eof = true;
        }
    }

    /// The host connection failed or was reset: the container gets a RST.
    pub fn tcp_host_reset(&mut self, flow: FlowId) {
        self.wake(flow);
        if let Some(f) = self.tcp.get_mut(&flow) {
            f.aborted = true;
            self.sockets.get_mut::<tcp::Socket>(f.handle).abort();
        }
    }

    /// A connection accepted on a published TCP port, to relay into `container`. Returns the
    /// flow; the caller then relays with [`Nat::tcp_pull_from_host`] and
    /// [`Nat::tcp_push_to_host`] like an outbound flow.
    pub fn tcp_inbound(&mut self, container: SocketAddr) -> Result<FlowId, NatError> {
        if !self.in_subnets(container.ip()) || container.port() == 0 {
            return Err(NatError::Connect);
        }
        let gw = self
            .gateway_for(container.ip())
            .ok_or(NatError::NoAddress)?;
        if !self.admit() {
            return Err(NatError::Full);
        }
        if container.ip().is_unspecified() || container.ip().is_multicast() {
            return Err(NatError::Connect);
        }
        let port = self.alloc_relay_port(gw).ok_or(NatError::NoPort)?;
        // Connected when the pacer gives it a slot (next poll, for the first ones).
        let flow = self.new_flow_id();
        let handle = self.add_live(flow, new_socket(self.cfg.tcp_buffer));
        let key = (container, SocketAddr::new(gw, port));
        self.tcp.insert(flow, TcpFlow::new(handle, key, true));
        self.tcp_keys.insert(key, flow);
        self.pacer.enqueue(container, flow);
        self.stats.published_tcp += 1;
        Ok(flow)
    }

    /// Connects the inbound relays the pacer lets start now.
    fn start_inbound(&mut self, now: Duration) {
        let mut starting = std::mem::take(&mut self.starting);
        self.pacer.start(now, &mut starting);
        for (_, flow) in starting.drain(..) {
            self.wake(flow);
            let Some(f) = self.tcp.get_mut(&flow) else {
                continue;
            };
            f.pacing = Pacing::Connecting;
            let s = self.sockets.get_mut::<tcp::Socket>(f.handle);
            if f.aborted || s.connect(self.iface.context(), f.key.0, f.key.1).is_err() {
                // Gone at the next service (a closed socket with no remote).
                f.aborted = true;
                s.abort();
            }
        }
        self.starting = starting;
    }

    /// A datagram from the host socket of an outbound UDP flow.
    pub fn udp_host_data(&mut self, now: Duration, flow: FlowId, data: &[u8]) {
        let Some(f) = self.udp.get_mut(&flow) else {
            return;
        };
        f.last = now;
        let (container, peer) = f.key;
        self.emit_udp(peer, container, data);
    }

    /// A datagram received on published UDP port `publication` from `client`, for
    /// `container`. The container's answers come back as [`Action::UdpSend`] on the returned
    /// flow (send them to `client` from the published socket).
    pub fn udp_inbound(
        &mut self,
        now: Duration,
        publication: u64,
        client: SocketAddr,
        container: SocketAddr,
        data: &[u8],
    ) -> Result<FlowId, NatError> {
        if !self.in_subnets(container.ip()) || container.port() == 0 {
            return Err(NatError::Connect);
        }
        let flow = match self.udp_inbound_keys.get(&(publication, client)) {
            Some(f) => *f,
            None => {
                let gw = self
                    .gateway_for(container.ip())
                    .ok_or(NatError::NoAddress)?;
                if !self.admit() {
                    return Err(NatError::Full);
                }
                let port = self.alloc_relay_port(gw).ok_or(NatError::NoPort)?;
                let flow = self.new_flow_id();
                let key = (container, SocketAddr::new(gw, port));
                self.udp.insert(
                    flow,
                    UdpFlow {
                        key,
                        inbound: Some((publication, client)),
                        last: now,
                    },
                );
                self.udp_keys.insert(key, flow);
                self.udp_inbound_keys.insert((publication, client), flow);
                self.udp_expiry
                    .push(Reverse((now + UDP_IDLE_TIMEOUT, flow)));
                self.stats.published_udp += 1;
                flow
            }
        };
        self.udp_host_data(now, flow, data);
        Ok(flow)
    }

    /// An ICMP/ICMPv6 message received by the host's raw socket from `src` (without the IP
    /// header). Echo replies for one of our identifiers go back to their container.
    pub fn icmp_host_reply(&mut self, now: Duration, src: IpAddr, message: &[u8]) {
        let Ok(m) = crate::wire::IcmpPacket::new_checked(message) else {
            return;
        };
        let reply_type = if src.is_ipv6() {
            crate::wire::icmp::V6_ECHO_REPLY
        } else {
            crate::wire::icmp::V4_ECHO_REPLY
        };
        if m.msg_type() != reply_type || m.code() != 0 {
            return;
        }
        let Some((ident, seq)) = m.echo_ident_seq() else {
            return;
        };
        let Some(f) = self.icmp.get_mut(&ident) else {
            return;
        };
        let (container, cident, dst) = f.key;
        if dst != src {
            return;
        }
        f.last = now;
        let data = message
            .get(crate::wire::icmp::ECHO_HEADER_LEN..)
            .unwrap_or(&[]);
        let ph = frame::pseudo(src, container);
        let l4 = frame::echo_message(src.is_ipv6(), ph, true, cident, seq, data);
        let proto = if src.is_ipv6() {
            IpProtocol::ICMPV6
        } else {
            IpProtocol::ICMP
        };
        self.emit_ip(src, container, proto, &l4);
    }

    // ---- output -----------------------------------------------------------------------------

    fn emit_udp(&mut self, src: SocketAddr, dst: SocketAddr, data: &[u8]) {
        let max = self.cfg.mtu.saturating_sub(48 + 8);
        if data.len() > max {
            // No IP fragmentation towards containers: too big for the link.
            self.stats.dropped += 1;
            return;
        }
        if let Some(l4) = frame::udp_datagram(src, dst, data) {
            self.emit_ip(src.ip(), dst.ip(), IpProtocol::UDP, &l4);
        }
    }

    fn emit_ip(&mut self, src: IpAddr, dst: IpAddr, proto: IpProtocol, l4: &[u8]) {
        let Some(mac) = self.neighbors.get(&dst).copied() else {
            self.stats.no_neighbor += 1;
            return;
        };
        if let Some(f) = frame::ip_frame(self.cfg.gateway_mac, mac, src, dst, proto, l4) {
            self.stats.frames_out += 1;
            self.frames.push_back((VnetHdrRepr::NONE, f));
        }
    }

    /// Frames smoltcp's packets for their container, in place: Ethernet header in the room
    /// kept in front, TCP checksum left partial, GSO for segments longer than the MSS.
    fn flush_tx(&mut self) {
        // Taken out and put back to keep its capacity.
        let mut tx = std::mem::take(&mut self.dev.tx);
        for (mut b, gso) in tx.drain(..) {
            let mac = b
                .get(ETH_ROOM..)
                .and_then(frame::ip_dst)
                .and_then(|dst| self.neighbors.get(&dst).copied());
            let Some(mac) = mac else {
                self.stats.no_neighbor += 1;
                recycle(&mut self.dev.tx_free, b, POOL);
                continue;
            };
            match frame::finish_out(&mut b, self.cfg.gateway_mac, mac, gso) {
                Some(h) => {
                    self.stats.frames_out += 1;
                    self.frames.push_back((h, b));
                }
                None => recycle(&mut self.dev.tx_free, b, POOL),
            }
        }
        self.dev.tx = tx;
    }

    /// Runs smoltcp on the queued frames, relays TCP bytes, expires flows, and queues the
    /// resulting frames and actions.
    pub fn poll(&mut self, now: Duration) {
        let ts = instant(now);
        self.start_inbound(now);
        self.iface.poll(ts, &mut self.dev, &mut self.sockets);
        if self.service_tcp(now) {
            // Answered or ended relays free pacing slots: start the next ones too.
            self.start_inbound(now);
            self.iface.poll(ts, &mut self.dev, &mut self.sockets);
            self.service_tcp(now);
        }
        self.expire(now);
        self.flush_tx();
    }

    /// Moves bytes between smoltcp and the host side for the live flows, and parks those idle
    /// for [`PARK_AFTER`] services; true when smoltcp has new work.
    fn service_tcp(&mut self, now: Duration) -> bool {
        let mut again = false;
        let mut gone = std::mem::take(&mut self.gone);
        let mut parking = std::mem::take(&mut self.parking);
        for &flow in &self.live {
            let Some(f) = self.tcp.get_mut(&flow) else {
                continue;
            };
            let s = self.sockets.get_mut::<tcp::Socket>(f.handle);
            match f.pacing {
                Pacing::Off => {}
                Pacing::Waiting => {
                    if f.aborted {
                        gone.push((flow, true));
                    }
                    continue;
                }
                Pacing::Connecting | Pacing::Silent => {
                    let state = s.state();
                    if s.recv_queue() > 0 || !s.may_recv() && state != tcp::State::SynSent {
                        // The container's server answered (data, FIN or RST): it has accepted.
                        f.pacing = Pacing::Off;
                        self.pacer.release(f.key.0, flow);
                        again = true;
                    } else if f.pacing == Pacing::Connecting && state != tcp::State::SynSent {
                        f.pacing = Pacing::Silent;
                        self.pacer.established(f.key.0, flow, now);
                    }
                }
            }
            if f.aborted {
                if s.state() == tcp::State::Closed {
                    f.closed_polls = f.closed_polls.saturating_add(1);
                    if s.remote_endpoint().is_none() || f.closed_polls > 1 {
                        gone.push((flow, true));
                    }
                }
                continue;
            }
            // Host → container: room again after a stop on the engine's side.
            if f.pull_waiting && !f.host_eof && s.can_send() {
                f.pull_waiting = false;
                self.actions.push_back(Action::TcpPull { flow });
            }
            // Not before the handshake: smoltcp's close() in SYN-SENT aborts instead of a FIN.
            if f.host_eof && !f.close_called && f.connected && s.may_send() {
                s.close();
                f.close_called = true;
                again = true;
            }
            // Container → host, unless the host socket is full (its writability brings the
            // next push).
            if f.connected && !f.push_blocked && s.recv_queue() > 0 {
                self.actions.push_back(Action::TcpPush { flow });
            }
            let state = s.state();
            f.container_fin |= matches!(
                state,
                tcp::State::CloseWait
                    | tcp::State::LastAck
                    | tcp::State::Closing
                    | tcp::State::TimeWait
            );
            if f.container_fin && s.recv_queue() == 0 && !f.shutdown_sent && f.connected {
                f.shutdown_sent = true;
                self.actions.push_back(Action::TcpShutdown { flow });
            }
            // A closed connection whose last bytes still wait for the host socket (they are
            // in the ring only) stays until they are pushed.
            let draining = f.container_fin && f.connected && s.recv_queue() > 0;
            match state {
                tcp::State::TimeWait if !draining => gone.push((flow, false)),
                tcp::State::Closed if !draining => {
                    let graceful = f.shutdown_sent && f.close_called;
                    gone.push((flow, !graceful));
                }
                _ => {}
            }
            // Idle: nothing in either ring, nothing to ask of the host, no timer of smoltcp's
            // (none runs on an open connection with empty rings: no keep-alive, no ACK delay).
            let open = (state == tcp::State::Established && !f.container_fin)
                || (state == tcp::State::CloseWait && f.shutdown_sent);
            let idle = open
                && f.pacing == Pacing::Off
                && f.connected
                && !f.aborted
                && !f.host_eof
                && !f.pull_waiting
                && !f.push_blocked
                && s.send_queue() == 0
                && s.recv_queue() == 0;
            f.quiet = if idle { f.quiet.saturating_add(1) } else { 0 };
            if f.quiet >= PARK_AFTER {
                parking.push(flow);
            }
        }
        for flow in parking.drain(..) {
            self.park(flow);
        }
        for (flow, reset) in gone.drain(..) {
            if let Some(f) = self.tcp.remove(&flow) {
                self.tcp_keys.remove(&f.key);
                if f.inbound {
                    self.relay_used.remove(&(f.key.1.ip(), f.key.1.port()));
                }
                if f.pacing != Pacing::Off {
                    self.pacer.release(f.key.0, flow);
                }
                if self.live.remove(&flow) {
                    self.sockets.remove(f.handle);
                }
                self.actions.push_back(Action::TcpClose { flow, reset });
            }
        }
        self.gone = gone;
        self.parking = parking;
        self.compact();
        again
    }

    /// Ends the UDP flows and ICMP mappings whose time is up (only the heads of the expiry
    /// queues are looked at: no walk over the flows).
    fn expire(&mut self, now: Duration) {
        while let Some(&Reverse((at, flow))) = self.udp_expiry.peek() {
            if at > now {
                break;
            }
            self.udp_expiry.pop();
            let Some(f) = self.udp.get(&flow) else {
                continue;
            };
            let due = f.last + UDP_IDLE_TIMEOUT;
            if due > now {
                self.udp_expiry.push(Reverse((due, flow)));
                continue;
            }
            if let Some(f) = self.udp.remove(&flow) {
                self.udp_keys.remove(&f.key);
                if let Some(k) = f.inbound {
                    self.udp_inbound_keys.remove(&k);
                    self.relay_used.remove(&(f.key.1.ip(), f.key.1.port()));
                }
                self.actions.push_back(Action::UdpClose { flow });
            }
        }
        while let Some(&Reverse((at, generation, i))) = self.icmp_expiry.peek() {
            if at > now {
                break;
            }
            self.icmp_expiry.pop();
            let Some(f) = self.icmp.get(&i).filter(|f| f.generation == generation) else {
                continue;
            };
            let due = f.last + ICMP_TIMEOUT;
            if due > now {
                self.icmp_expiry.push(Reverse((due, generation, i)));
            } else if let Some(f) = self.icmp.remove(&i) {
                self.icmp_keys.remove(&f.key);
            }
        }
    }

    /// Drops every flow (shutdown): TCP connections get a RST.
    pub fn reset_all(&mut self, now: Duration) {
        let flows: Vec<FlowId> = self.tcp.keys().copied().collect();
        for f in flows {
            self.tcp_host_reset(f);
        }
        self.poll(now);
        self.poll(now);
    }
}
