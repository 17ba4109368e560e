//! The one place that decides whether a frame may enter the switch on a port, and whether it
//! may leave through another port.
//!
//! [`ingress_allows`] runs once per frame, before the source MAC is learned; [`egress_allows`]
//! runs for the unicast destination, for every member of a flood, and for the owner of the
//! address an ARP request asks for before the switch answers it (a remote endpoint's owner
//! is its tunnel port); [`flood_allows`] runs in addition for every member of a flood. Each rule is a function
//! named after the behaviour it implements, returning the [`DropReason`] that the counters
//! record.
//!
//! Isolation *between* networks needs no rule: there is one `Switch` per network and no
//! path from one switch's ports to another's (a container attached to two networks has one
//! port on each, and the switch never routes). Anything crossing networks goes through a
//! container's own IP stack, as with Docker.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::counters::DropReason;
use super::port::RELAY_PORTS;
use super::port::{PortConfig, PortId, PortKind};
use super::SwitchConfig;
use crate::wire::{
    ArpPacket, ArpRepr, EtherType, EthernetFrame, IpProtocol, Ipv4Packet, Ipv6Packet, MacAddr,
    VlanTag,
};

/// The network-layer facts a decision needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum L3 {
    /// Not ARP, IPv4 or IPv6 (after at most one 802.1Q tag): switched on MACs only.
    Other,
    /// An Ethernet/IPv4 ARP packet.
    Arp(ArpRepr),
    /// An IPv4 packet.
    Ipv4 { src: Ipv4Addr, dst: Ipv4Addr },
    /// An IPv6 packet.
    Ipv6 { src: Ipv6Addr, dst: Ipv6Addr },
}

/// What the switch knows about a frame after parsing it once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FrameInfo {
    pub src_mac: MacAddr,
    pub dst_mac: MacAddr,
    pub vlan: Option<VlanTag>,
    pub l3: L3,
    /// Destination port of an unfragmented TCP or UDP packet (IPv6: directly after the fixed
    /// header), for [`egress_steering`]'s relay-port rule.
    pub l4_dst_port: Option<u16>,
}

impl FrameInfo {
    /// Parses the Ethernet header and, for ARP/IPv4/IPv6, the network header. A frame that
    /// claims one of those ethertypes but does not parse is an error (dropped as
    /// [`DropReason::Malformed`]): the switch never forwards what it could not check.
    pub(crate) fn parse(frame: &[u8]) -> Result<FrameInfo, DropReason> {
        let eth = EthernetFrame::new_checked(frame).map_err(|_| DropReason::Malformed)?;
        let mut l4_dst_port = None;
        let l4_port = |proto: IpProtocol, l4: &[u8]| {
            (matches!(proto, IpProtocol::TCP | IpProtocol::UDP) && l4.len() >= 4)
                .then(|| u16::from_be_bytes([l4[2], l4[3]]))
        };
        let l3 = match eth.ethertype() {
            EtherType::ARP => {
                let p = ArpPacket::new_checked(eth.payload()).map_err(|_| DropReason::Malformed)?;
                L3::Arp(ArpRepr::parse(&p))
            }
            EtherType::IPV4 => {
                let p =
                    Ipv4Packet::new_checked(eth.payload()).map_err(|_| DropReason::Malformed)?;
                if p.frag_offset() == 0 {
                    l4_dst_port = l4_port(p.protocol(), p.payload());
                }
                L3::Ipv4 {
                    src: p.src_addr(),
                    dst: p.dst_addr(),
                }
            }
            EtherType::IPV6 => {
                let p =
                    Ipv6Packet::new_checked(eth.payload()).map_err(|_| DropReason::Malformed)?;
                l4_dst_port = l4_port(p.next_header(), p.payload());
                L3::Ipv6 {
                    src: p.src_addr(),
                    dst: p.dst_addr(),
                }
            }
            _ => L3::Other,
        };
        Ok(FrameInfo {
            src_mac: eth.src_addr(),
            dst_mac: eth.dst_addr(),
            vlan: eth.vlan(),
            l3,
            l4_dst_port,
        })
    }
}

/// May a frame received on `from` enter the switch at all?
pub(crate) fn ingress_allows(
    config: &SwitchConfig,
    from: &PortConfig,
    f: &FrameInfo,
) -> Result<(), DropReason> {
    source_mac_allows(f)?;
    link_local_group_allows(f)?;
    anti_spoofing_allows(config, from, f)
}

/// May a frame that entered on `from` leave through `to`?
pub(crate) fn egress_allows(
    config: &SwitchConfig,
    from: (PortId, &PortConfig),
    to: (PortId, &PortConfig),
    f: &FrameInfo,
) -> Result<(), DropReason> {
    same_port_allows(from.0, to.0)?;
    gateway_allows(config, from.1, to.1, f)?;
    split_horizon_allows(from.1.kind, to.1.kind)?;
    icc_allows(config, from.1.kind, to.1.kind)?;
    internal_allows(config, from.1.kind, to.1.kind, f)
}

/// A source MAC must be a valid unicast address: multicast, broadcast and all-zero sources
/// are dropped (they would poison the FDB), as the Linux bridge does.
pub(crate) fn source_mac_allows(f: &FrameInfo) -> Result<(), DropReason> {
    if f.src_mac.is_valid_source() {
        Ok(())
    } else {
        Err(DropReason::InvalidSourceMac)
    }
}

/// IEEE 802.1D reserved link-local groups (`01:80:c2:00:00:0x`: STP, pause, LACP, 802.1X)
/// are never bridged (Linux bridge's default `group_fwd_mask`).
pub(crate) fn link_local_group_allows(f: &FrameInfo) -> Result<(), DropReason> {
    if f.dst_mac.is_link_local_group() {
        Err(DropReason::LinkLocalGroup)
    } else {
        Ok(())
    }
}

/// Anti-spoofing (on by default, `SwitchConfig::anti_spoofing`): a container port may only
/// send with its own MAC (Ethernet source and ARP sender hardware address) and its own IP
/// (IPv4 source, ARP sender protocol address, IPv6 source). Always allowed: the unspecified
/// address (DHCP, ARP probes, IPv6 duplicate address detection) and IPv6 link-local sources
/// (neighbour discovery). Host and tunnel ports are not checked: the host routes for
/// others, and a tunnel carries frames checked on their own host.
pub(crate) fn anti_spoofing_allows(
    config: &SwitchConfig,
    from: &PortConfig,
    f: &FrameInfo,
) -> Result<(), DropReason> {
    if !config.anti_spoofing || from.kind != PortKind::Container {
        return Ok(());
    }
    if from.mac != Some(f.src_mac) {
        return Err(DropReason::SpoofedMac);
    }
    let own_v4 = |a: Ipv4Addr| a.is_unspecified() || from.owns_ipv4(a);
    match f.l3 {
        L3::Other => Ok(()),
        L3::Arp(arp) => {
            if from.mac != Some(arp.sha) {
                Err(DropReason::SpoofedMac)
            } else if !own_v4(arp.spa) {
                Err(DropReason::SpoofedIp)
            } else {
                Ok(())
            }
        }
        L3::Ipv4 { src, .. } => {
            if own_v4(src) {
                Ok(())
            } else {
                Err(DropReason::SpoofedIp)
            }
        }
        L3::Ipv6 { src, .. } => {
            if src.is_unspecified() || src.is_unicast_link_local() || from.owns_ipv6(src) {
                Ok(())
            } else {
                Err(DropReason::SpoofedIp)
            }
        }
    }
}

/// Egress steering (masquerade): a frame from a container goes to the gateway port `gw` rather
/// than to the host port when it is unicast to the gateway's MAC and carries either
///
/// - an IPv4/IPv6 packet for an address outside the network's subnets that is neither
///   multicast, broadcast nor link-scoped (egress NAT), or
/// - a TCP/UDP packet for one of the gateway port's own addresses (the gateway IPs, which the
///   engine uses as source of published-port relays) and a destination port in
///   [`RELAY_PORTS`] (the container's answers to those relays).
///
/// Never on an internal network (which has no way out). The switch only has a gateway port
/// when `enable_ip_masquerade` is on; without one such frames go to the host interface
/// unchanged, as before.
pub(crate) fn egress_steering(
    config: &SwitchConfig,
    from: &PortConfig,
    gw: &PortConfig,
    f: &FrameInfo,
) -> bool {
    if config.internal
        || from.kind != PortKind::Container
        || gw.kind != PortKind::Gateway
        || gw.mac != Some(f.dst_mac)
    {
        return false;
    }
    let (dst, own) = match f.l3 {
        L3::Ipv4 { dst, .. } => (IpAddr::V4(dst), gw.owns_ipv4(dst)),
        L3::Ipv6 { dst, .. } => (IpAddr::V6(dst), gw.owns_ipv6(dst)),
        L3::Arp(_) | L3::Other => return false,
    };
    if own {
        return f.l4_dst_port.is_some_and(|p| RELAY_PORTS.contains(&p));
    }
    !dst.is_multicast() && !is_link_scoped(dst) && !config.in_subnets(dst)
}

/// The gateway port is a one-way street per direction: what enters it is exactly what
/// [`egress_steering`] selects (so no flood, host frame or in-subnet packet reaches the NAT
/// engine), and what it sends may only reach containers (never the host port or a tunnel).
pub(crate) fn gateway_allows(
    config: &SwitchConfig,
    from: &PortConfig,
    to: &PortConfig,
    f: &FrameInfo,
) -> Result<(), DropReason> {
    if to.kind == PortKind::Gateway && !egress_steering(config, from, to, f) {
        return Err(DropReason::Gateway);
    }
    if from.kind == PortKind::Gateway && to.kind != PortKind::Container {
        return Err(DropReason::Gateway);
    }
    Ok(())
}

/// Source MACs are learned from every port but
///
/// - the gateway's: it shares the gateway MAC with the host port, where the FDB must keep it;
/// - a tunnel's when the network does not flood over the underlay (cluster overlays): remote
///   MACs are then set by the control plane only (static entries), so nothing arriving from
///   the underlay can claim a MAC;
/// - a tunnel's or the host's for a MAC that another local port is configured with
///   (`local_macs`): a container's MAC is never hijacked from outside.
pub(crate) fn learns_source(
    config: &SwitchConfig,
    from: (PortId, &PortConfig),
    local_macs: &HashMap<MacAddr, PortId>,
    f: &FrameInfo,
) -> bool {
    match from.1.kind {
        PortKind::Gateway => false,
        PortKind::Tunnel if !config.flood_to_tunnel => false,
        PortKind::Container => true,
        PortKind::Tunnel | PortKind::Host => {
            local_macs.get(&f.src_mac).is_none_or(|&p| p == from.0)
        }
    }
}

/// Nothing is flooded over the underlay unless the network asks for it
/// (`SwitchConfig::flood_to_tunnel`, flood-and-learn with static peers): a cluster overlay
/// knows every remote MAC and answers ARP for remote addresses itself, so broadcast,
/// multicast and unknown unicast stay on the host.
pub(crate) fn flood_allows(config: &SwitchConfig, to: PortKind) -> Result<(), DropReason> {
    if to == PortKind::Tunnel && !config.flood_to_tunnel {
        Err(DropReason::TunnelFlood)
    } else {
        Ok(())
    }
}

/// Never send a frame back out of the port it came in on.
pub(crate) fn same_port_allows(from: PortId, to: PortId) -> Result<(), DropReason> {
    if from == to {
        Err(DropReason::SamePort)
    } else {
        Ok(())
    }
}

/// Split horizon for the overlay: what came from the underlay (a tunnel port) never goes back
/// into it; each host delivers to its own containers only.
pub(crate) fn split_horizon_allows(from: PortKind, to: PortKind) -> Result<(), DropReason> {
    if from == PortKind::Tunnel && to == PortKind::Tunnel {
        Err(DropReason::SplitHorizon)
    } else {
        Ok(())
    }
}

/// `enable_icc=false` drops traffic between two containers of the network (a tunnel port
/// counts as containers: it carries remote ones). Traffic between a container and the host
/// port (gateway, host) stays allowed.
pub(crate) fn icc_allows(
    config: &SwitchConfig,
    from: PortKind,
    to: PortKind,
) -> Result<(), DropReason> {
    if !config.enable_icc && from.is_endpoint_side() && to.is_endpoint_side() {
        Err(DropReason::Icc)
    } else {
        Ok(())
    }
}

/// Internal networks (`--internal`): the network has no way out. An IP packet from a
/// container (or tunnel) to the host port must be addressed inside the network's subnets,
/// and one from the host port into the network must come from inside them. Link-scoped
/// addresses (IPv4 link-local, limited broadcast, 224.0.0.0/24; IPv6 link-local, interface-
/// and link-scope multicast) and the unspecified address stay on the link and are allowed,
/// so ARP-like neighbour discovery, DHCP and DAD with the gateway keep working. ARP and
/// non-IP frames are link-local by nature and always allowed.
pub(crate) fn internal_allows(
    config: &SwitchConfig,
    from: PortKind,
    to: PortKind,
    f: &FrameInfo,
) -> Result<(), DropReason> {
    if !config.internal {
        return Ok(());
    }
    let checked = if from.is_endpoint_side() && to == PortKind::Host {
        match f.l3 {
            L3::Ipv4 { dst, .. } => Some(IpAddr::V4(dst)),
            L3::Ipv6 { dst, .. } => Some(IpAddr::V6(dst)),
            L3::Arp(_) | L3::Other => None,
        }
    } else if from == PortKind::Host && to.is_endpoint_side() {
        match f.l3 {
            L3::Ipv4 { src, .. } => Some(IpAddr::V4(src)),
            L3::Ipv6 { src, .. } => Some(IpAddr::V6(src)),
            L3::Arp(_) | L3::Other => None,
        }
    } else {
        None
    };
    match checked {
        Some(a) if !is_link_scoped(a) && !config.in_subnets(a) => Err(DropReason::Internal),
        _ => Ok(()),
    }
}

/// Addresses that cannot leave the link.
pub(crate) fn is_link_scoped(a: IpAddr) -> bool {
    match a {
        IpAddr::V4(a) => {
            let o = a.octets();
            a.is_unspecified()
                || a.is_broadcast()
                || a.is_link_local()
                || (o[0] == 224 && o[1] == 0 && o[2] == 0)
        }
        IpAddr::V6(a) => {
            let o = a.octets();
            a.is_unspecified() || a.is_unicast_link_local() || (o[0] == 0xff && (o[1] & 0x0f) <= 2)
        }
    }
}
