//! The per-network L2 switch: pure logic, no I/O, no clock, no allocation per frame.
//!
//! One [`Switch`] serves one network. Its ports ([`PortId`], [`PortKind`]) are the network's
//! container interfaces, its host interface (holding the gateway) and, for overlays, a tunnel.
//! For every frame it:
//!
//! 1. drops it if it is malformed, comes from a multicast/broadcast/zero source MAC, is
//!    addressed to an 802.1D reserved group, or (anti-spoofing, on by default) comes from a
//!    container using a MAC or IP that is not its own ([`policy`]);
//! 2. learns the source MAC on the input port ([`fdb`]: ageing 300 s, per-network cap);
//! 3. answers an ARP request for any registered address (a container's, the gateway on the
//!    host port, or a remote overlay endpoint's) itself, writing the reply into the caller's
//!    [`Decisions`], to go back out of the input port; nothing is flooded;
//! 4. steers a container's IP packet for outside the network's subnets, sent to the gateway
//!    MAC, to the gateway port (the egress NAT engine) when the network has one
//!    (`policy::egress_steering`);
//! 5. sends a frame to a known unicast MAC to that port, and floods unknown unicast,
//!    broadcast and multicast to every other port (tunnel ports only with
//!    [`SwitchConfig::flood_to_tunnel`]);
//!
//! and checks every output port (unicast, each member of a flood, the owner of an ARP
//! target) against `policy::egress_allows`: ICC, internal networks, split horizon, never
//! back out of the input port. Each refusal is counted by reason in [`Counters`].
//!
//! # Overlays
//!
//! A tunnel port ([`PortKind::Tunnel`], see [`crate::overlay`]) carries the frames of the
//! containers on other hosts. The control plane registers each of them with
//! [`Switch::set_remote_endpoint`]: a static FDB entry MAC → tunnel port (never aged, never
//! moved by learning) and its addresses, for which the switch answers ARP requests and IPv6
//! neighbour solicitations itself. With `flood_to_tunnel` off (cluster overlays) nothing is
//! flooded to a tunnel and nothing is learned from one, so the underlay only carries unicast
//! to known remote MACs. A local port always wins over a remote
//! endpoint: a remote MAC or address that a local port holds is refused, and a local port
//! added with a remote endpoint's MAC or address takes it over.
//!
//! # Intended use by the I/O layer
//!
//! The I/O layer reads a batch of frames into buffers from its pool, lets the switch decide
//! for the whole batch, then writes. [`Decisions`] is allocated once per worker and reused:
//! after warm-up neither the switch nor `Decisions` allocates.
//!
//! ```
//! use std::time::Duration;
//! use vswitch::switch::{Decisions, FrameRef, PortConfig, Switch, SwitchConfig};
//! use vswitch::wire::MacAddr;
//!
//! let mut sw = Switch::new(SwitchConfig::default());
//! let a = sw.add_port(PortConfig::container(MacAddr([2, 0x42, 172, 18, 0, 2]))).unwrap();
//! let b = sw.add_port(PortConfig::container(MacAddr([2, 0x42, 172, 18, 0, 3]))).unwrap();
//! let mut decisions = Decisions::with_capacity(64, 256);
//!
//! // 1. Read up to N frames (after stripping the 10-byte vnet header, kept with the buffer).
//! let mut frame = vec![0u8; 60];
//! frame[..6].copy_from_slice(&[0xff; 6]);
//! frame[6..12].copy_from_slice(&[2, 0x42, 172, 18, 0, 2]);
//! frame[12..14].copy_from_slice(&[0x88, 0xb5]); // an experimental ethertype
//! let batch: Vec<(_, &[u8])> = vec![(a, &frame)];
//!
//! // 2. Decide for the batch (`now` is the worker's monotonic clock).
//! sw.process_batch(batch.iter().copied(), Duration::from_secs(1), &mut decisions);
//!
//! // 3. Write: each `Tx` names an output port and the bytes to send there.
//! for tx in decisions.tx() {
//!     let bytes: &[u8] = match tx.frame {
//!         FrameRef::Input(i) => batch[i as usize].1,
//!         FrameRef::Reply(r) => decisions.reply(r),
//!     };
//!     assert_eq!((tx.port, bytes.len()), (b, 60)); // write(port_fd[tx.port], vnet_hdr, bytes)
//! }
//! ```
//!
//! `Tx` entries come in input order; a flood gives one entry per output port that the policy
//! allows, all pointing at the same input buffer (write it several times, no copy). For a
//! destination port without offloads, a GSO or partial-checksum frame goes through
//! [`crate::wire::vnet_hdr::resolve_offloads`] on the way out; replies built by the switch are
//! complete frames (vnet header [`crate::wire::VnetHdrRepr::NONE`]). `Decisions::verdicts`
//! gives one [`Verdict`] per input frame.
//!
//! The switch is `Send` and has no interior mutability: a network served by several workers
//! puts it behind a lock taken once per batch (the decision phase only), or shards ports.

pub mod counters;
pub mod fdb;
mod nd;
pub mod policy;
pub mod port;

#[cfg(test)]
mod proptests;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::Duration;

use ipnet::IpNet;

pub use counters::{Counters, DropReason};
pub use fdb::{Fdb, Learned, DEFAULT_AGEING, DEFAULT_FDB_CAP};
pub use port::{PortConfig, PortId, PortKind, MAX_PORTS, RELAY_PORTS};

use crate::wire::{arp, ArpOp, MacAddr};
use policy::{FrameInfo, L3};

/// Room for one frame built by the switch (an ARP reply: 42 bytes, 46 with a VLAN tag; a
/// neighbour advertisement: 86, 90).
pub const MAX_REPLY_LEN: usize = 96;

/// Errors of the control-plane calls (adding and removing ports).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The switch already has [`MAX_PORTS`] ports.
    #[error("too many ports on one network (at most {MAX_PORTS})")]
    TooManyPorts,
    /// No port with this id.
    #[error("no such port: {0}")]
    NoSuchPort(PortId),
    /// A container port without a MAC.
    #[error("a container port needs a MAC address")]
    MissingMac,
    /// A port MAC that is multicast or zero.
    #[error("invalid port MAC address {0}")]
    InvalidMac(MacAddr),
    /// An address unspecified or multicast.
    #[error("invalid endpoint address {0}")]
    InvalidAddress(IpAddr),
    /// An address already registered on another port (or twice on this one).
    #[error("address {0} is already in use on {1}")]
    AddressInUse(IpAddr, PortId),
    /// A second gateway port, or one without a MAC.
    #[error("a network has at most one gateway port, with a MAC")]
    BadGatewayPort,
    /// A remote endpoint on a port that is not a tunnel.
    #[error("{0} is not a tunnel port")]
    NotATunnel(PortId),
    /// A remote endpoint with the MAC of a local port.
    #[error("MAC address {0} belongs to local {1}")]
    MacInUse(MacAddr, PortId),
}

/// Behaviour of one network's switch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SwitchConfig {
    /// The network's subnets (for internal networks).
    pub subnets: Vec<IpNet>,
    /// `com.docker.network.bridge.enable_icc` (default true): containers may talk together.
    pub enable_icc: bool,
    /// `--internal`: nothing leaves the subnets through the host port.
    pub internal: bool,
    /// Containers may only use their own MAC and IP (default true).
    pub anti_spoofing: bool,
    /// Most MACs learned ([`DEFAULT_FDB_CAP`]).
    pub fdb_cap: usize,
    /// FDB ageing time ([`DEFAULT_AGEING`]).
    pub ageing: Duration,
    /// Flood broadcast, multicast and unknown unicast to tunnel ports, and learn MACs from
    /// them (flood-and-learn overlays with static peers, as the kernel's `vxlan`). Off by
    /// default: cluster overlays know every remote endpoint and flood nothing over the
    /// underlay.
    pub flood_to_tunnel: bool,
}

impl Default for SwitchConfig {
    fn default() -> Self {
        SwitchConfig {
            subnets: Vec::new(),
            enable_icc: true,
            internal: false,
            anti_spoofing: true,
            fdb_cap: DEFAULT_FDB_CAP,
            ageing: DEFAULT_AGEING,
            flood_to_tunnel: false,
        }
    }
}

impl SwitchConfig {
    /// `a` is inside one of the network's subnets.
    pub fn in_subnets(&self, a: IpAddr) -> bool {
        self.subnets.iter().any(|n| n.contains(&a))
    }
}

/// What happened to one input frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Not sent anywhere.
    Drop(DropReason),
    /// Sent to the port holding its destination MAC.
    Forward(PortId),
    /// Sent to `copies` other ports (0 when the policy allowed none, or there is none).
    Flood {
        /// Number of `Tx` entries added for this frame.
        copies: u32,
    },
    /// An ARP request (or an IPv6 neighbour solicitation for a remote endpoint) answered by
    /// the switch; the reply goes back out of the input port.
    ArpReply,
}

/// The bytes of an outgoing frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameRef {
    /// The input frame at this position of the batch.
    Input(u32),
    /// A frame the switch built: [`Decisions::reply`].
    Reply(u32),
}

/// One frame to send out of one port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tx {
    /// Output port.
    pub port: PortId,
    /// What to send.
    pub frame: FrameRef,
}

#[derive(Debug, Clone, Copy)]
struct ReplyBuf {
    len: u8,
    bytes: [u8; MAX_REPLY_LEN],
}

/// The switch's decisions for a batch, in buffers reused from batch to batch.
#[derive(Debug, Clone, Default)]
pub struct Decisions {
    verdicts: Vec<Verdict>,
    tx: Vec<Tx>,
    replies: Vec<ReplyBuf>,
}

impl Decisions {
    /// Queue a frame the switch built (ARP or ND answer) to go out of `port`.
    fn push_reply(&mut self, port: PortId, buf: ReplyBuf) {
        let slot = self.replies.len() as u32;
        self.replies.push(buf);
        self.tx.push(Tx {
            port,
            frame: FrameRef::Reply(slot),
        });
    }

    /// Empty, with room for `frames` verdicts and `tx` outputs before growing.
    pub fn with_capacity(frames: usize, tx: usize) -> Decisions {
        Decisions {
            verdicts: Vec::with_capacity(frames),
            tx: Vec::with_capacity(tx),
            replies: Vec::new(),
        }
    }

    /// Forgets everything, keeping the buffers.
    pub fn clear(&mut self) {
        self.verdicts.clear();
        self.tx.clear();
        self.replies.clear();
    }

    /// One verdict per frame processed since the last clear, in input order.
    pub fn verdicts(&self) -> &[Verdict] {
        &self.verdicts
    }

    /// Frames to send, in input order.
    pub fn tx(&self) -> &[Tx] {
        &self.tx
    }

    /// A frame built by the switch (empty for an unknown index).
    pub fn reply(&self, index: u32) -> &[u8] {
        self.replies
            .get(index as usize)
            .map_or(&[][..], |r| &r.bytes[..usize::from(r.len)])
    }

    /// The bytes of `tx`, given the batch's input frames by index.
    pub fn bytes<'a>(&'a self, tx: &Tx, input: impl FnOnce(usize) -> &'a [u8]) -> &'a [u8] {
        match tx.frame {
            FrameRef::Input(i) => input(i as usize),
            FrameRef::Reply(r) => self.reply(r),
        }
    }
}

/// One network's L2 switch. See the [module documentation](self).
#[derive(Debug, Clone)]
pub struct Switch {
    config: SwitchConfig,
    ports: Vec<Option<PortConfig>>,
    port_count: usize,
    fdb: Fdb,
    /// Registered addresses (every port's IPv4 and IPv6), for ARP answers and uniqueness.
    addrs: HashMap<IpAddr, PortId>,
    /// The egress gateway port, if any ([`PortKind::Gateway`]).
    gateway: Option<PortId>,
    /// Ports' own MACs (the first port configured with each), so nothing from outside can
    /// claim them.
    local_macs: HashMap<MacAddr, PortId>,
    /// Remote overlay endpoints by MAC.
    remotes: HashMap<MacAddr, RemoteEndpoint>,
    /// Remote endpoints' addresses, for ARP answers.
    remote_ips: HashMap<IpAddr, MacAddr>,
    counters: Counters,
}

/// A container on another host, reached through a tunnel port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteEndpoint {
    /// The tunnel port.
    pub port: PortId,
    /// Its addresses (the switch answers ARP for the IPv4 ones).
    pub ips: Vec<IpAddr>,
}

impl Switch {
    /// A switch with no ports.
    pub fn new(config: SwitchConfig) -> Switch {
        Switch {
            fdb: Fdb::new(config.fdb_cap, config.ageing),
            config,
            ports: Vec::new(),
            port_count: 0,
            addrs: HashMap::new(),
            gateway: None,
            local_macs: HashMap::new(),
            remotes: HashMap::new(),
            remote_ips: HashMap::new(),
            counters: Counters::default(),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &SwitchConfig {
        &self.config
    }

    /// Turns inter-container communication on or off.
    pub fn set_enable_icc(&mut self, on: bool) {
        self.config.enable_icc = on;
    }

    /// Turns anti-spoofing on or off.
    pub fn set_anti_spoofing(&mut self, on: bool) {
        self.config.anti_spoofing = on;
    }

    /// Turns flooding to (and learning from) tunnel ports on or off.
    pub fn set_flood_to_tunnel(&mut self, on: bool) {
        self.config.flood_to_tunnel = on;
    }

    /// Makes the network internal or not.
    pub fn set_internal(&mut self, on: bool) {
        self.config.internal = on;
    }

    /// Replaces the network's subnets.
    pub fn set_subnets(&mut self, subnets: Vec<IpNet>) {
        self.config.subnets = subnets;
    }

    /// Adds a port; its addresses become known to ARP suppression and anti-spoofing.
    pub fn add_port(&mut self, cfg: PortConfig) -> Result<PortId, Error> {
        match cfg.mac {
            None if cfg.kind == PortKind::Container => return Err(Error::MissingMac),
            Some(m) if !m.is_valid_source() => return Err(Error::InvalidMac(m)),
            _ => {}
        }
        if cfg.kind == PortKind::Gateway && (cfg.mac.is_none() || self.gateway.is_some()) {
            return Err(Error::BadGatewayPort);
        }
        let slot = self.free_slot()?;
        let id = PortId(slot as u16);
        let addrs = cfg
            .ipv4
            .iter()
            .map(|a| IpAddr::V4(*a))
            .chain(cfg.ipv6.iter().map(|a| IpAddr::V6(*a)));
        for (i, a) in addrs.clone().enumerate() {
            if a.is_unspecified() || a.is_multicast() {
                return Err(Error::InvalidAddress(a));
            }
            if let Some(p) = self.addrs.get(&a).filter(|_| cfg.kind != PortKind::Gateway) {
                return Err(Error::AddressInUse(a, *p));
            }
            if addrs.clone().take(i).any(|b| b == a) {
                return Err(Error::AddressInUse(a, id));
            }
        }
        // A gateway port's addresses are the host port's (see `PortConfig::gateway`).
        if cfg.kind != PortKind::Gateway {
            for a in addrs {
                self.forget_remote_ip(a);
                self.addrs.insert(a, id);
            }
        }
        if let Some(m) = cfg.mac {
            // Local wins: a remote endpoint with this MAC was stale.
            self.remove_remote_endpoint(m);
            self.local_macs.entry(m).or_insert(id);
        }
        if cfg.kind == PortKind::Gateway {
            self.gateway = Some(id);
        }
        if slot == self.ports.len() {
            self.ports.push(Some(cfg));
        } else {
            self.ports[slot] = Some(cfg);
        }
        self.port_count += 1;
        Ok(id)
    }

    fn free_slot(&self) -> Result<usize, Error> {
        match self.ports.iter().position(Option::is_none) {
            Some(i) => Ok(i),
            None if self.ports.len() < MAX_PORTS => Ok(self.ports.len()),
            None => Err(Error::TooManyPorts),
        }
    }

    /// Learns `mac` behind `port` as if a frame from it had come in at `now`: what another
    /// replica of this network's switch (on another worker) learned, so this one does not
    /// flood to it. Counted in no counter (the replica that saw the frame counted it).
    pub fn learn_hint(&mut self, mac: MacAddr, port: PortId, now: Duration) {
        if self.port(port).is_some() && mac.is_valid_source() {
            let _ = self.fdb.learn(mac, port, fdb::millis(now));
        }
    }

    /// The port the FDB holds `mac` behind at `now`, if any.
    pub fn learned_port(&self, mac: MacAddr, now: Duration) -> Option<PortId> {
        self.fdb.get(&mac, fdb::millis(now))
    }

    /// Removes a port: its FDB entries and registered addresses go with it.
    pub fn remove_port(&mut self, id: PortId) -> Result<PortConfig, Error> {
        let cfg = self
            .ports
            .get_mut(id.index())
            .and_then(Option::take)
            .ok_or(Error::NoSuchPort(id))?;
        self.port_count -= 1;
        if self.gateway == Some(id) {
            self.gateway = None;
        }
        self.fdb.flush_port(id);
        self.addrs.retain(|_, p| *p != id);
        if cfg.kind == PortKind::Tunnel {
            let remotes = &mut self.remotes;
            remotes.retain(|_, r| r.port != id);
            self.remote_ips.retain(|_, m| remotes.contains_key(m));
        }
        while matches!(self.ports.last(), Some(None)) {
            self.ports.pop();
        }
        if let Some(m) = cfg.mac {
            if self.local_macs.get(&m) == Some(&id) {
                self.local_macs.remove(&m);
                let other = self.ports().find(|(_, p)| p.mac == Some(m)).map(|(i, _)| i);
                if let Some(other) = other {
                    self.local_macs.insert(m, other);
                }
            }
        }
        Ok(cfg)
    }

    /// Registers a container on another host behind tunnel port `tunnel`: frames for `mac`
    /// go to that port (a static FDB entry: not aged, not moved by learning) and ARP requests
    /// for its IPv4 addresses are answered by the switch, subject to the same policy as for a
    /// local container. Replaces an earlier registration of `mac`; an address registered for
    /// another remote MAC moves to this one. Refused: a port that is not a tunnel, a MAC or
    /// an address a local port holds, an invalid MAC or address.
    pub fn set_remote_endpoint(
        &mut self,
        tunnel: PortId,
        mac: MacAddr,
        ips: &[IpAddr],
    ) -> Result<(), Error> {
        let port = self.port(tunnel).ok_or(Error::NoSuchPort(tunnel))?;
        if port.kind != PortKind::Tunnel {
            return Err(Error::NotATunnel(tunnel));
        }
        if !mac.is_valid_source() {
            return Err(Error::InvalidMac(mac));
        }
        if let Some(&p) = self.local_macs.get(&mac) {
            return Err(Error::MacInUse(mac, p));
        }
        for (i, &a) in ips.iter().enumerate() {
            if a.is_unspecified() || a.is_multicast() {
                return Err(Error::InvalidAddress(a));
            }
            if let Some(&p) = self.addrs.get(&a) {
                return Err(Error::AddressInUse(a, p));
            }
            if ips[..i].contains(&a) {
                return Err(Error::AddressInUse(a, tunnel));
            }
        }
        self.remove_remote_endpoint(mac);
        for &a in ips {
            self.forget_remote_ip(a);
            self.remote_ips.insert(a, mac);
        }
        self.remotes.insert(
            mac,
            RemoteEndpoint {
                port: tunnel,
                ips: ips.to_vec(),
            },
        );
        self.fdb.set_static(mac, tunnel);
        Ok(())
    }

    /// Forgets a remote endpoint (its FDB entry and addresses); `false` if it was not known.
    pub fn remove_remote_endpoint(&mut self, mac: MacAddr) -> bool {
        let Some(r) = self.remotes.remove(&mac) else {
            return false;
        };
        for a in &r.ips {
            if self.remote_ips.get(a) == Some(&mac) {
                self.remote_ips.remove(a);
            }
        }
        self.fdb.remove_static(&mac);
        true
    }

    /// The remote endpoint registered for `mac`.
    pub fn remote_endpoint(&self, mac: MacAddr) -> Option<&RemoteEndpoint> {
        self.remotes.get(&mac)
    }

    /// Every remote endpoint.
    pub fn remote_endpoints(&self) -> impl Iterator<Item = (MacAddr, &RemoteEndpoint)> + '_ {
        self.remotes.iter().map(|(m, r)| (*m, r))
    }

    /// The remote MAC that owns `a`, if any.
    pub fn remote_owner_of(&self, a: IpAddr) -> Option<MacAddr> {
        self.remote_ips.get(&a).copied()
    }

    /// Drops `a` from the remote endpoint holding it.
    fn forget_remote_ip(&mut self, a: IpAddr) {
        if let Some(m) = self.remote_ips.remove(&a) {
            if let Some(r) = self.remotes.get_mut(&m) {
                r.ips.retain(|x| *x != a);
            }
        }
    }

    /// The port `id`, if it exists.
    pub fn port(&self, id: PortId) -> Option<&PortConfig> {
        self.ports.get(id.index()).and_then(Option::as_ref)
    }

    /// Every port.
    pub fn ports(&self) -> impl Iterator<Item = (PortId, &PortConfig)> + '_ {
        self.ports
            .iter()
            .enumerate()
            .filter_map(|(i, p)| p.as_ref().map(|p| (PortId(i as u16), p)))
    }

    /// Number of ports.
    pub fn port_count(&self) -> usize {
        self.port_count
    }

    /// The port and MAC that own `a`, if registered (the gateway's, a container's).
    pub fn owner_of(&self, a: IpAddr) -> Option<(PortId, Option<MacAddr>)> {
        let id = *self.addrs.get(&a)?;
        Some((id, self.port(id)?.mac))
    }

    /// The forwarding database.
    pub fn fdb(&self) -> &Fdb {
        &self.fdb
    }

    /// The counters.
    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// Removes expired FDB entries (optional: expiry also happens lazily).
    pub fn expire(&mut self, now: Duration) -> usize {
        self.fdb.expire(fdb::millis(now))
    }

    /// Decides for every frame of a batch: clears `out`, then calls [`Switch::process`] for
    /// each `(input port, frame)`; frame `i` of the iterator is `FrameRef::Input(i)`.
    pub fn process_batch<'f, I>(&mut self, frames: I, now: Duration, out: &mut Decisions)
    where
        I: IntoIterator<Item = (PortId, &'f [u8])>,
    {
        out.clear();
        for (port, frame) in frames {
            self.process(port, frame, now, out);
        }
    }

    /// Decides for one frame received on `in_port` at `now` (any monotonic clock, the same for
    /// every call). Appends its verdict to `out` and its outputs to `out.tx()`, with
    /// `FrameRef::Input(i)` where `i` is the number of verdicts `out` held before the call.
    pub fn process(
        &mut self,
        in_port: PortId,
        frame: &[u8],
        now: Duration,
        out: &mut Decisions,
    ) -> Verdict {
        let index = out.verdicts.len() as u32;
        self.counters.rx_frames += 1;
        let v = match self.decide(in_port, frame, fdb::millis(now), index, out) {
            Ok(v) => v,
            Err(reason) => {
                self.counters.count_drop(reason);
                Verdict::Drop(reason)
            }
        };
        out.verdicts.push(v);
        v
    }

    fn decide(
        &mut self,
        in_port: PortId,
        frame: &[u8],
        now_ms: u64,
        index: u32,
        out: &mut Decisions,
    ) -> Result<Verdict, DropReason> {
        let from = self
            .ports
            .get(in_port.index())
            .and_then(Option::as_ref)
            .ok_or(DropReason::UnknownPort)?;
        let info = FrameInfo::parse(frame)?;
        policy::ingress_allows(&self.config, from, &info)?;

        if policy::learns_source(&self.config, (in_port, from), &self.local_macs, &info) {
            match self.fdb.learn(info.src_mac, in_port, now_ms) {
                Learned::Refreshed | Learned::Static => {}
                Learned::New => self.counters.fdb_learned += 1,
                Learned::Moved { .. } => self.counters.fdb_moved += 1,
                Learned::Full => self.counters.fdb_full += 1,
            }
        }

        if let Some(v) = self.arp_suppress(in_port, &info, out)? {
            return Ok(v);
        }
        if let Some(v) = self.nd_suppress(in_port, frame, &info, out)? {
            return Ok(v);
        }

        // Egress steering: a container's traffic for outside the network goes to the NAT
        // engine (gateway port) rather than to the host interface.
        if let Some(gw) = self.gateway {
            let from = self.ports.get(in_port.index()).and_then(Option::as_ref);
            let dest = self.ports.get(gw.index()).and_then(Option::as_ref);
            if let (Some(from), Some(dest)) = (from, dest) {
                if policy::egress_steering(&self.config, from, dest, &info) {
                    policy::egress_allows(&self.config, (in_port, from), (gw, dest), &info)?;
                    out.tx.push(Tx {
                        port: gw,
                        frame: FrameRef::Input(index),
                    });
                    self.counters.unicast += 1;
                    return Ok(Verdict::Forward(gw));
                }
            }
        }

        if info.dst_mac.is_unicast() {
            if let Some(to) = self.fdb.lookup(&info.dst_mac, now_ms) {
                let from = self.ports.get(in_port.index()).and_then(Option::as_ref);
                let dest = self.ports.get(to.index()).and_then(Option::as_ref);
                if let (Some(from), Some(dest)) = (from, dest) {
                    policy::egress_allows(&self.config, (in_port, from), (to, dest), &info)?;
                    out.tx.push(Tx {
                        port: to,
                        frame: FrameRef::Input(index),
                    });
                    self.counters.unicast += 1;
                    return Ok(Verdict::Forward(to));
                }
            }
        }

        let mut copies = 0u32;
        if let Some(from) = self.ports.get(in_port.index()).and_then(Option::as_ref) {
            for (i, dest) in self.ports.iter().enumerate() {
                let Some(dest) = dest else { continue };
                let to = PortId(i as u16);
                if to == in_port {
                    continue;
                }
                let allowed =
                    policy::egress_allows(&self.config, (in_port, from), (to, dest), &info)
                        .and_then(|()| policy::flood_allows(&self.config, dest.kind));
                match allowed {
                    Ok(()) => {
                        out.tx.push(Tx {
                            port: to,
                            frame: FrameRef::Input(index),
                        });
                        copies += 1;
                    }
                    Err(_) => self.counters.flood_copies_denied += 1,
                }
            }
        }
        self.counters.flooded += 1;
        self.counters.flood_copies += u64::from(copies);
        Ok(Verdict::Flood { copies })
    }

    /// Neighbour discovery for remote endpoints: a solicitation for a remote endpoint's IPv6
    /// address is answered like an ARP request for a remote IPv4 one (local addresses are
    /// left to their owners, who get the multicast solicitation).
    fn nd_suppress(
        &mut self,
        in_port: PortId,
        frame: &[u8],
        info: &FrameInfo,
        out: &mut Decisions,
    ) -> Result<Option<Verdict>, DropReason> {
        if self.remote_ips.is_empty() || !matches!(info.l3, L3::Ipv6 { .. }) {
            return Ok(None);
        }
        let Some((asker_ip, target)) = nd::solicitation(frame) else {
            return Ok(None);
        };
        let Some(&mac) = self.remote_ips.get(&IpAddr::V6(target)) else {
            return Ok(None);
        };
        let Some(owner) = self.remotes.get(&mac).map(|r| r.port) else {
            return Ok(None);
        };
        if owner == in_port {
            return Ok(None);
        }
        let from = self.ports.get(in_port.index()).and_then(Option::as_ref);
        let dest = self.ports.get(owner.index()).and_then(Option::as_ref);
        let (Some(from), Some(dest)) = (from, dest) else {
            return Ok(None);
        };
        policy::egress_allows(&self.config, (in_port, from), (owner, dest), info)?;
        let mut buf = ReplyBuf {
            len: 0,
            bytes: [0; MAX_REPLY_LEN],
        };
        let Some(n) = nd::emit_advertisement(
            mac,
            target,
            info.src_mac,
            asker_ip,
            info.vlan,
            &mut buf.bytes,
        ) else {
            return Ok(None);
        };
        buf.len = n as u8;
        out.push_reply(in_port, buf);
        self.counters.nd_replies += 1;
        Ok(Some(Verdict::ArpReply))
    }

    /// ARP suppression: a request for a registered address (not an announcement, not for
    /// the asker's own address) is answered by the switch if the policy would let the request
    /// reach the owner (a remote endpoint's owner is its tunnel port); refused by the policy,
    /// it is dropped (not flooded either). Local addresses win over remote ones.
    fn arp_suppress(
        &mut self,
        in_port: PortId,
        info: &FrameInfo,
        out: &mut Decisions,
    ) -> Result<Option<Verdict>, DropReason> {
        let L3::Arp(req) = info.l3 else {
            return Ok(None);
        };
        if req.op != ArpOp::REQUEST || req.is_announcement() {
            return Ok(None);
        }
        let target = IpAddr::V4(req.tpa);
        let (owner, remote_mac) = match self.addrs.get(&target) {
            Some(&owner) => (owner, None),
            None => match self.remote_ips.get(&target) {
                Some(m) => match self.remotes.get(m) {
                    Some(r) => (r.port, Some(*m)),
                    None => return Ok(None),
                },
                None => return Ok(None),
            },
        };
        if owner == in_port {
            return Ok(None);
        }
        let from = self.ports.get(in_port.index()).and_then(Option::as_ref);
        let dest = self.ports.get(owner.index()).and_then(Option::as_ref);
        let (Some(from), Some(dest)) = (from, dest) else {
            return Ok(None);
        };
        let Some(owner_mac) = remote_mac.or(dest.mac) else {
            return Ok(None);
        };
        policy::egress_allows(&self.config, (in_port, from), (owner, dest), info)?;
        let mut buf = ReplyBuf {
            len: 0,
            bytes: [0; MAX_REPLY_LEN],
        };
        // The Ethernet destination is the asker's source MAC (checked by anti-spoofing when
        // on); the reply keeps the request's VLAN tag.
        let Ok(n) =
            req.reply(owner_mac)
                .emit_frame(owner_mac, info.src_mac, info.vlan, &mut buf.bytes)
        else {
            return Ok(None);
        };
        debug_assert!(n <= arp::FRAME_LEN + crate::wire::ethernet::VLAN_TAG_LEN);
        buf.len = n as u8;
        out.push_reply(in_port, buf);
        self.counters.arp_replies += 1;
        Ok(Some(Verdict::ArpReply))
    }
}
