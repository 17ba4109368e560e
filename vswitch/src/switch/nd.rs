//! IPv6 neighbour discovery for remote overlay endpoints: the switch answers a neighbour
//! solicitation for a remote endpoint's address itself (as it answers ARP), since cluster
//! overlays flood nothing, the solicited-node multicast included, over the underlay.
//! Never panics on any input.

use std::net::Ipv6Addr;

use crate::wire::checksum::{self, PseudoHeader};
use crate::wire::icmp::{V6_NEIGHBOR_ADVERT, V6_NEIGHBOR_SOLICIT};
use crate::wire::{
    EtherType, EthernetFrame, EthernetRepr, IcmpPacket, IpProtocol, Ipv6Packet, Ipv6Repr, MacAddr,
    VlanTag,
};

/// ICMPv6 neighbour advertisement with one target link-layer address option.
const NA_LEN: usize = 32;
/// Solicited and override flags (RFC 4861 §4.4).
const NA_FLAGS: [u8; 4] = [0x60, 0, 0, 0];
/// Option type: target link-layer address, length in units of 8 bytes.
const OPT_TLLA: [u8; 2] = [2, 1];

/// The target of a well-formed neighbour solicitation (hop limit 255, code 0, valid
/// checksum) from a specified source, with that source; `None` for anything else (DAD
/// probes, from `::`, are left to the owner).
pub(crate) fn solicitation(frame: &[u8]) -> Option<(Ipv6Addr, Ipv6Addr)> {
    let eth = EthernetFrame::new_checked(frame).ok()?;
    if eth.ethertype() != EtherType::IPV6 {
        return None;
    }
    let ip = Ipv6Packet::new_checked(eth.payload()).ok()?;
    if ip.next_header() != IpProtocol::ICMPV6 || ip.hop_limit() != 255 {
        return None;
    }
    let src = ip.src_addr();
    if src.is_unspecified() {
        return None;
    }
    let icmp = IcmpPacket::new_checked(ip.payload()).ok()?;
    if icmp.msg_type() != V6_NEIGHBOR_SOLICIT
        || icmp.code() != 0
        || !icmp.verify_checksum_v6(&ip.pseudo_header())
    {
        return None;
    }
    let target: [u8; 16] = ip.payload().get(8..24)?.try_into().ok()?;
    let target = Ipv6Addr::from(target);
    (!target.is_multicast()).then_some((src, target))
}

/// Writes the advertisement of `target` at `owner` to the solicitation's sender (`asker`,
/// `asker_ip`) into `buf`; returns its length.
pub(crate) fn emit_advertisement(
    owner: MacAddr,
    target: Ipv6Addr,
    asker: MacAddr,
    asker_ip: Ipv6Addr,
    vlan: Option<VlanTag>,
    buf: &mut [u8],
) -> Option<usize> {
    let eth = EthernetRepr {
        src: owner,
        dst: asker,
        vlan,
        ethertype: EtherType::IPV6,
    };
    let n = eth.emit(buf).ok()?;
    let ip = Ipv6Repr {
        src: target,
        dst: asker_ip,
        next_header: IpProtocol::ICMPV6,
        payload_len: NA_LEN,
        hop_limit: 255,
    };
    let m = ip.emit(buf.get_mut(n..)?).ok()?;
    let icmp = buf.get_mut(n + m..n + m + NA_LEN)?;
    icmp[0] = V6_NEIGHBOR_ADVERT;
    icmp[1] = 0;
    icmp[2..4].copy_from_slice(&[0, 0]);
    icmp[4..8].copy_from_slice(&NA_FLAGS);
    icmp[8..24].copy_from_slice(&target.octets());
    icmp[24..26].copy_from_slice(&OPT_TLLA);
    icmp[26..32].copy_from_slice(&owner.0);
    let ph = PseudoHeader::V6 {
        src: target,
        dst: asker_ip,
    };
    let sum = !checksum::fold(checksum::accumulate(
        ph.sum(IpProtocol::ICMPV6, NA_LEN as u32),
        icmp,
    ));
    icmp[2..4].copy_from_slice(&sum.to_be_bytes());
    Some(n + m + NA_LEN)
}
