//! The receive filter: which datagrams arriving on the tunnel socket are let into the overlay.
//!
//! A datagram is accepted only when its source address is a known VTEP (a host of the cluster)
//! and it is a well-formed VXLAN datagram for one of our VNIs. Everything else is dropped and
//! counted by reason, so a stray or spoofed sender cannot inject frames into an overlay.

use std::collections::HashSet;
use std::net::IpAddr;
use std::ops::Range;

use crate::vxlan::{decapsulate, HEADER_LEN};

/// Why [`Filter::check`] dropped a datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DropReason {
    /// The source address is not a known VTEP.
    UnknownVtep,
    /// Not a valid VXLAN datagram (too short, I flag missing, inner frame too short).
    Malformed(crate::Error),
    /// A valid datagram for a VNI that is not ours.
    UnknownVni(u32),
}

/// Per-reason counters of a [`Filter`] (plain counts since the filter was made).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FilterCounters {
    /// Datagrams accepted.
    pub accepted: u64,
    /// Dropped: source not a known VTEP.
    pub unknown_vtep: u64,
    /// Dropped: not a valid VXLAN datagram.
    pub malformed: u64,
    /// Dropped: VNI not ours.
    pub unknown_vni: u64,
}

impl FilterCounters {
    /// All drops.
    pub fn dropped(&self) -> u64 {
        self.unknown_vtep + self.malformed + self.unknown_vni
    }
}

/// Known VTEPs and VNIs, with drop counters. An empty set accepts nothing.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// Underlay addresses of the hosts allowed to send to us. IPv4-mapped IPv6 addresses are
    /// compared in their canonical (IPv4) form.
    pub vteps: HashSet<IpAddr>,
    /// VNIs of the overlay networks present on this host.
    pub vnis: HashSet<u32>,
    /// Counters, updated by [`check`](Self::check).
    pub counters: FilterCounters,
}

impl Filter {
    /// An empty filter (drops everything until VTEPs and VNIs are added).
    pub fn new() -> Self {
        Self::default()
    }

    /// Allows datagrams from `vtep`; `true` when it was not known yet.
    pub fn add_vtep(&mut self, vtep: IpAddr) -> bool {
        self.vteps.insert(vtep.to_canonical())
    }
    /// Stops accepting datagrams from `vtep`; `true` when it was known.
    pub fn remove_vtep(&mut self, vtep: IpAddr) -> bool {
        self.vteps.remove(&vtep.to_canonical())
    }
    /// Accepts datagrams for `vni`; `true` when it was not present yet.
    pub fn add_vni(&mut self, vni: u32) -> bool {
        self.vnis.insert(vni)
    }
    /// Stops accepting datagrams for `vni`; `true` when it was present.
    pub fn remove_vni(&mut self, vni: u32) -> bool {
        self.vnis.remove(&vni)
    }

    /// Decides on a datagram (the UDP payload) received from `src`: `Ok((vni, inner))` with
    /// `inner` the range of the inner Ethernet frame within `datagram`, or the reason it is
    /// dropped. Updates the counters either way. The source is checked before anything is
    /// parsed. Never panics.
    pub fn check(
        &mut self,
        src: IpAddr,
        datagram: &[u8],
    ) -> Result<(u32, Range<usize>), DropReason> {
        if !self.vteps.contains(&src.to_canonical()) {
            self.counters.unknown_vtep += 1;
            return Err(DropReason::UnknownVtep);
        }
        let repr = match decapsulate(datagram) {
            Ok((repr, _)) => repr,
            Err(e) => {
                self.counters.malformed += 1;
                return Err(DropReason::Malformed(e));
            }
        };
        if !self.vnis.contains(&repr.vni) {
            self.counters.unknown_vni += 1;
            return Err(DropReason::UnknownVni(repr.vni));
        }
        self.counters.accepted += 1;
        Ok((repr.vni, HEADER_LEN..datagram.len()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vxlan::encapsulate;
    use std::net::{Ipv4Addr, Ipv6Addr};

    fn datagram(vni: u32) -> Vec<u8> {
        let inner = [0xabu8; 60];
        let mut out = vec![0u8; 100];
        let n = encapsulate(vni, &inner, &mut out).unwrap();
        out.truncate(n);
        out
    }

    fn filter() -> Filter {
        let mut f = Filter::new();
        f.add_vtep(IpAddr::V4(Ipv4Addr::new(10, 10, 10, 2)));
        f.add_vni(256);
        f
    }

    #[test]
    fn accepts_known_vtep_and_vni() {
        let mut f = filter();
        let d = datagram(256);
        let (vni, range) = f.check("10.10.10.2".parse().unwrap(), &d).unwrap();
        assert_eq!(vni, 256);
        assert_eq!(&d[range], &[0xab; 60][..]);
        assert_eq!(f.counters.accepted, 1);
        assert_eq!(f.counters.dropped(), 0);
    }

    #[test]
    fn drops_and_counts() {
        let mut f = filter();
        let good = "10.10.10.2".parse().unwrap();
        assert_eq!(
            f.check("10.10.10.3".parse().unwrap(), &datagram(256)),
            Err(DropReason::UnknownVtep)
        );
        assert_eq!(
            f.check(good, &datagram(257)),
            Err(DropReason::UnknownVni(257))
        );
        assert_eq!(
            f.check(good, &datagram(257)),
            Err(DropReason::UnknownVni(257))
        );
        assert!(matches!(
            f.check(good, &[0u8; 30]),
            Err(DropReason::Malformed(_))
        ));
        assert!(matches!(
            f.check(good, &[8u8; 3]),
            Err(DropReason::Malformed(_))
        ));
        assert_eq!(
            f.counters,
            FilterCounters {
                accepted: 0,
                unknown_vtep: 1,
                malformed: 2,
                unknown_vni: 2,
            }
        );
        assert_eq!(f.counters.dropped(), 5);
        f.remove_vni(256);
        assert_eq!(
            f.check(good, &datagram(256)),
            Err(DropReason::UnknownVni(256))
        );
        f.remove_vtep(good);
        assert_eq!(f.check(good, &datagram(256)), Err(DropReason::UnknownVtep));
    }

    #[test]
    fn ipv4_mapped_source_matches() {
        let mut f = filter();
        let mapped = IpAddr::V6(Ipv4Addr::new(10, 10, 10, 2).to_ipv6_mapped());
        assert!(f.check(mapped, &datagram(256)).is_ok());
        f.add_vtep(IpAddr::V6(Ipv6Addr::LOCALHOST));
        assert!(f
            .check(IpAddr::V6(Ipv6Addr::LOCALHOST), &datagram(256))
            .is_ok());
    }
}
