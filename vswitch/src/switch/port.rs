//! Ports of a switch: identifiers, kinds and the addresses the control plane knows.

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};

use crate::wire::MacAddr;

/// Most ports one switch (one network) can hold. `PortId`s are indexes below this.
pub const MAX_PORTS: usize = 4096;

/// Local ports the egress gateway engine uses, on the gateway addresses, as the source of
/// the connections it relays into containers (published ports). Containers' packets to a
/// gateway address and one of these ports go to the gateway port, not the host port. Above
/// the kernel's default ephemeral range (32768–60999), so the host's own connections from
/// the gateway address do not collide.
pub const RELAY_PORTS: std::ops::RangeInclusive<u16> = 61000..=65535;

/// A port's index in its switch. Ids of removed ports are reused by later ports (the
/// removal flushes every trace of the old port from the switch).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PortId(pub u16);

impl PortId {
    /// The index as `usize`.
    pub fn index(self) -> usize {
        usize::from(self.0)
    }
}

impl fmt::Display for PortId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "port{}", self.0)
    }
}

/// What sits behind a port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PortKind {
    /// A container's interface (TAP moved into its namespace, or a veth). Has its own MAC and
    /// addresses; subject to anti-spoofing.
    Container,
    /// The network's host-side interface (`br-<id12>`, `docker0`), holding the gateway.
    Host,
    /// The overlay tunnel towards other hosts: carries remote containers' frames.
    Tunnel,
    /// The egress NAT engine ([`crate::gateway`]): registered with the gateway MAC (the host
    /// port's), it receives the containers' IP traffic for addresses outside the network
    /// and sends their replies back. Never learned in the FDB; at most one per switch.
    Gateway,
}

impl PortKind {
    /// Container or tunnel: the side of the network where endpoints live (a tunnel carries
    /// remote containers), as opposed to the host/gateway side.
    pub fn is_endpoint_side(self) -> bool {
        matches!(self, PortKind::Container | PortKind::Tunnel)
    }
}

/// What the control plane tells the switch about a port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortConfig {
    /// Kind of port.
    pub kind: PortKind,
    /// The interface's MAC. Required for a container; on the host port it lets the switch
    /// answer ARP for the gateway.
    pub mac: Option<MacAddr>,
    /// IPv4 addresses of the interface (a container's address, the host port's gateways).
    /// With a MAC, the switch answers ARP requests for them.
    pub ipv4: Vec<Ipv4Addr>,
    /// IPv6 addresses (not link-local ones, which are always allowed).
    pub ipv6: Vec<Ipv6Addr>,
}

impl PortConfig {
    /// A port of `kind` with no MAC and no address.
    pub fn new(kind: PortKind) -> PortConfig {
        PortConfig {
            kind,
            mac: None,
            ipv4: Vec::new(),
            ipv6: Vec::new(),
        }
    }

    /// A container port with its MAC.
    pub fn container(mac: MacAddr) -> PortConfig {
        PortConfig::new(PortKind::Container).with_mac(mac)
    }

    /// The host port with the host interface's MAC.
    pub fn host(mac: MacAddr) -> PortConfig {
        PortConfig::new(PortKind::Host).with_mac(mac)
    }

    /// The egress gateway port, with the gateway MAC (the same MAC as the host port). Give it
    /// the gateway addresses with `with_ipv4`/`with_ipv6`: on a gateway port they are not
    /// registered (ARP for them is answered for the host port, which owns them) but select
    /// the relay traffic of [`RELAY_PORTS`].
    pub fn gateway(mac: MacAddr) -> PortConfig {
        PortConfig::new(PortKind::Gateway).with_mac(mac)
    }

    /// A tunnel port.
    pub fn tunnel() -> PortConfig {
        PortConfig::new(PortKind::Tunnel)
    }

    /// Sets the MAC.
    pub fn with_mac(mut self, mac: MacAddr) -> PortConfig {
        self.mac = Some(mac);
        self
    }

    /// Adds an IPv4 address.
    pub fn with_ipv4(mut self, a: Ipv4Addr) -> PortConfig {
        self.ipv4.push(a);
        self
    }

    /// Adds an IPv6 address.
    pub fn with_ipv6(mut self, a: Ipv6Addr) -> PortConfig {
        self.ipv6.push(a);
        self
    }

    /// The port owns `a`.
    pub fn owns_ipv4(&self, a: Ipv4Addr) -> bool {
        self.ipv4.contains(&a)
    }

    /// The port owns `a`.
    pub fn owns_ipv6(&self, a: Ipv6Addr) -> bool {
        self.ipv6.contains(&a)
    }
}
