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
//! 3. answers an ARP request for any registered address (a container's, or the gateway on the
//!    host port) itself, writing the reply into the caller's [`Decisions`], to go back out of
//!    the input port; nothing is flooded;
//! 4. steers a container's IP packet for outside the network's subnets, sent to the gateway
//!    MAC, to the gateway port (the egress NAT engine) when the network has one
//!    ([`policy::egress_steering`]);
//! 5. sends a frame to a known unicast MAC to that port, and floods unknown unicast,
//!    broadcast and multicast to every other port;
//!
//! and checks every output port (unicast, each member of a flood, the owner of an ARP
//! target) against [`policy::egress_allows`]: ICC, internal networks, split horizon, never
//! back out of the input port. Each refusal is counted by reason in [`Counters`].
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

/// Room for one frame built by the switch (an ARP reply: 42 bytes, 46 with a VLAN tag).
pub const MAX_REPLY_LEN: usize = 64;

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
    /// An ARP request answered by the switch; the reply goes back out of the input port.
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
    counters: Counters,
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
                self.addrs.insert(a, id);
            }
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
        while matches!(self.ports.last(), Some(None)) {
            self.ports.pop();
        }
        Ok(cfg)
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

        if policy::learns_source(from) {
            match self.fdb.learn(info.src_mac, in_port, now_ms) {
                Learned::Refreshed => {}
                Learned::New => self.counters.fdb_learned += 1,
                Learned::Moved { .. } => self.counters.fdb_moved += 1,
                Learned::Full => self.counters.fdb_full += 1,
            }
        }

        if let Some(v) = self.arp_suppress(in_port, &info, out)? {
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
                match policy::egress_allows(&self.config, (in_port, from), (to, dest), &info) {
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

    /// ARP suppression: a request for a registered address (not an announcement, not for
    /// the asker's own address) is answered by the switch if the policy would let the request
    /// reach the owner; refused by the policy, it is dropped (not flooded either).
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
        let Some(&owner) = self.addrs.get(&IpAddr::V4(req.tpa)) else {
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
        let Some(owner_mac) = dest.mac else {
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
        let slot = out.replies.len() as u32;
        out.replies.push(buf);
        out.tx.push(Tx {
            port: in_port,
            frame: FrameRef::Reply(slot),
        });
        self.counters.arp_replies += 1;
        Ok(Some(Verdict::ArpReply))
    }
}
