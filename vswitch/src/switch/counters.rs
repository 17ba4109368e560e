//! Per-switch counters: plain `u64` fields, one per drop reason, for tests and metrics.

use std::fmt;

/// Why a frame (or, for a flood, one copy of it) was not sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DropReason {
    /// Too short for its Ethernet header, or an ARP/IPv4/IPv6 header that does not parse.
    Malformed,
    /// Received on a port the switch does not have.
    UnknownPort,
    /// Source MAC multicast, broadcast or all-zero.
    InvalidSourceMac,
    /// Destination in the IEEE 802.1D reserved group `01:80:c2:00:00:0x`, never bridged.
    LinkLocalGroup,
    /// A container sent with a MAC (Ethernet source or ARP sender) not its own.
    SpoofedMac,
    /// A container sent with an IP (IPv4, ARP sender, non-link-local IPv6) not its own.
    SpoofedIp,
    /// The destination is the port the frame came from.
    SamePort,
    /// `enable_icc=false`: container to container.
    Icc,
    /// Internal network: traffic between a container and outside the network's subnets.
    Internal,
    /// Tunnel to tunnel: a frame from the underlay never goes back into it.
    SplitHorizon,
    /// The egress gateway port: only a container's unicast IP to the gateway MAC for an
    /// address outside the network goes in, and what comes out goes to containers only.
    Gateway,
    /// A flood copy (broadcast, multicast, unknown unicast) for a tunnel port while the
    /// network does not flood over the underlay (`SwitchConfig::flood_to_tunnel` off).
    TunnelFlood,
}

impl DropReason {
    /// Every reason, for metrics.
    pub const ALL: [DropReason; 12] = [
        DropReason::Malformed,
        DropReason::UnknownPort,
        DropReason::InvalidSourceMac,
        DropReason::LinkLocalGroup,
        DropReason::SpoofedMac,
        DropReason::SpoofedIp,
        DropReason::SamePort,
        DropReason::Icc,
        DropReason::Internal,
        DropReason::SplitHorizon,
        DropReason::Gateway,
        DropReason::TunnelFlood,
    ];

    /// A stable name (metrics label).
    pub fn as_str(self) -> &'static str {
        match self {
            DropReason::Malformed => "malformed",
            DropReason::UnknownPort => "unknown_port",
            DropReason::InvalidSourceMac => "invalid_source_mac",
            DropReason::LinkLocalGroup => "link_local_group",
            DropReason::SpoofedMac => "spoofed_mac",
            DropReason::SpoofedIp => "spoofed_ip",
            DropReason::SamePort => "same_port",
            DropReason::Icc => "icc",
            DropReason::Internal => "internal",
            DropReason::SplitHorizon => "split_horizon",
            DropReason::Gateway => "gateway",
            DropReason::TunnelFlood => "tunnel_flood",
        }
    }
}

impl fmt::Display for DropReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a switch has done since it was created.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counters {
    /// Frames handed to `process`.
    pub rx_frames: u64,
    /// Frames sent to the one port that holds their destination MAC.
    pub unicast: u64,
    /// Frames flooded (unknown unicast, broadcast, multicast).
    pub flooded: u64,
    /// Copies sent by floods.
    pub flood_copies: u64,
    /// Flood copies the policy refused (ICC, internal, split horizon), counted apart from
    /// whole-frame drops.
    pub flood_copies_denied: u64,
    /// ARP requests answered by the switch.
    pub arp_replies: u64,
    /// IPv6 neighbour solicitations for remote endpoints answered by the switch.
    pub nd_replies: u64,
    /// New FDB entries.
    pub fdb_learned: u64,
    /// FDB entries that moved to another port.
    pub fdb_moved: u64,
    /// Source MACs not learned because the FDB was at its cap.
    pub fdb_full: u64,
    /// Dropped: [`DropReason::Malformed`].
    pub drop_malformed: u64,
    /// Dropped: [`DropReason::UnknownPort`].
    pub drop_unknown_port: u64,
    /// Dropped: [`DropReason::InvalidSourceMac`].
    pub drop_invalid_source_mac: u64,
    /// Dropped: [`DropReason::LinkLocalGroup`].
    pub drop_link_local_group: u64,
    /// Dropped: [`DropReason::SpoofedMac`].
    pub drop_spoofed_mac: u64,
    /// Dropped: [`DropReason::SpoofedIp`].
    pub drop_spoofed_ip: u64,
    /// Dropped: [`DropReason::SamePort`].
    pub drop_same_port: u64,
    /// Dropped: [`DropReason::Icc`].
    pub drop_icc: u64,
    /// Dropped: [`DropReason::Internal`].
    pub drop_internal: u64,
    /// Dropped: [`DropReason::SplitHorizon`].
    pub drop_split_horizon: u64,
    /// Dropped: [`DropReason::Gateway`].
    pub drop_gateway: u64,
    /// Dropped: [`DropReason::TunnelFlood`] (only flood copies are refused this way, so it
    /// stays 0; the copies are in `flood_copies_denied`).
    pub drop_tunnel_flood: u64,
}

impl Counters {
    /// The counter of `reason`.
    pub fn drops(&self, reason: DropReason) -> u64 {
        match reason {
            DropReason::Malformed => self.drop_malformed,
            DropReason::UnknownPort => self.drop_unknown_port,
            DropReason::InvalidSourceMac => self.drop_invalid_source_mac,
            DropReason::LinkLocalGroup => self.drop_link_local_group,
            DropReason::SpoofedMac => self.drop_spoofed_mac,
            DropReason::SpoofedIp => self.drop_spoofed_ip,
            DropReason::SamePort => self.drop_same_port,
            DropReason::Icc => self.drop_icc,
            DropReason::Internal => self.drop_internal,
            DropReason::SplitHorizon => self.drop_split_horizon,
            DropReason::Gateway => self.drop_gateway,
            DropReason::TunnelFlood => self.drop_tunnel_flood,
        }
    }

    /// Adds `o`'s counts (replicas of one network's switch on several workers).
    pub fn add(&mut self, o: &Counters) {
        self.rx_frames += o.rx_frames;
        self.unicast += o.unicast;
        self.flooded += o.flooded;
        self.flood_copies += o.flood_copies;
        self.flood_copies_denied += o.flood_copies_denied;
        self.arp_replies += o.arp_replies;
        self.nd_replies += o.nd_replies;
        self.fdb_learned += o.fdb_learned;
        self.fdb_moved += o.fdb_moved;
        self.fdb_full += o.fdb_full;
        self.drop_malformed += o.drop_malformed;
        self.drop_unknown_port += o.drop_unknown_port;
        self.drop_invalid_source_mac += o.drop_invalid_source_mac;
        self.drop_link_local_group += o.drop_link_local_group;
        self.drop_spoofed_mac += o.drop_spoofed_mac;
        self.drop_spoofed_ip += o.drop_spoofed_ip;
        self.drop_same_port += o.drop_same_port;
        self.drop_icc += o.drop_icc;
        self.drop_internal += o.drop_internal;
        self.drop_split_horizon += o.drop_split_horizon;
        self.drop_gateway += o.drop_gateway;
        self.drop_tunnel_flood += o.drop_tunnel_flood;
    }

    /// All whole-frame drops.
    pub fn total_drops(&self) -> u64 {
        DropReason::ALL.iter().map(|r| self.drops(*r)).sum()
    }

    pub(crate) fn count_drop(&mut self, reason: DropReason) {
        let c = match reason {
            DropReason::Malformed => &mut self.drop_malformed,
            DropReason::UnknownPort => &mut self.drop_unknown_port,
            DropReason::InvalidSourceMac => &mut self.drop_invalid_source_mac,
            DropReason::LinkLocalGroup => &mut self.drop_link_local_group,
            DropReason::SpoofedMac => &mut self.drop_spoofed_mac,
            DropReason::SpoofedIp => &mut self.drop_spoofed_ip,
            DropReason::SamePort => &mut self.drop_same_port,
            DropReason::Icc => &mut self.drop_icc,
            DropReason::Internal => &mut self.drop_internal,
            DropReason::SplitHorizon => &mut self.drop_split_horizon,
            DropReason::Gateway => &mut self.drop_gateway,
            DropReason::TunnelFlood => &mut self.drop_tunnel_flood,
        };
        *c += 1;
    }
}
