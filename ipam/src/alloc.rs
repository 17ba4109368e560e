//! Endpoint address allocation (moby `ipams/defaultipam/allocator.go` + the gateway/aux
//! handling of `libnetwork/network.go`): lowest free address first, freed addresses re-used.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use ipnet::IpNet;

use crate::addr::{bounds, broadcast_reserved, from_u128, is_v6, network_reserved, to_u128};
use crate::config::{any_overlap, SubnetConfig, OVERLAPPING_SUBNETS_MSG};
use crate::IpamError;

/// Taken addresses as disjoint, non-adjacent inclusive intervals (start → end). Memory and
/// time depend on the number of allocations, never on the subnet size, and the lowest free
/// address is one lookup: the end of the run covering the range start, plus one.
#[derive(Debug, Clone, Default)]
struct IntervalSet {
    runs: BTreeMap<u128, u128>,
}

impl IntervalSet {
    fn run_containing(&self, x: u128) -> Option<(u128, u128)> {
        self.runs
            .range(..=x)
            .next_back()
            .filter(|&(_, &end)| end >= x)
            .map(|(&s, &e)| (s, e))
    }

    fn contains(&self, x: u128) -> bool {
        self.run_containing(x).is_some()
    }

    /// Returns false if `x` was already present.
    fn insert(&mut self, x: u128) -> bool {
        if self.contains(x) {
            return false;
        }
        let mut start = x;
        let mut end = x;
        // Join the run ending just below x, and the one starting just above.
        if let Some(below) = x.checked_sub(1) {
            if let Some((s, _)) = self.run_containing(below) {
                start = s;
            }
        }
        if let Some(above) = x.checked_add(1) {
            if let Some(e) = self.runs.remove(&above) {
                end = e;
            }
        }
        self.runs.insert(start, end);
        true
    }

    /// Returns false if `x` was not present.
    fn remove(&mut self, x: u128) -> bool {
        let Some((s, e)) = self.run_containing(x) else {
            return false;
        };
        self.runs.remove(&s);
        if let Some(left_end) = x.checked_sub(1).filter(|&l| l >= s) {
            self.runs.insert(s, left_end);
        }
        if let Some(right_start) = x.checked_add(1).filter(|&r| r <= e) {
            self.runs.insert(right_start, e);
        }
        true
    }

    /// Lowest value in `lo..=hi` not in the set.
    fn first_free(&self, lo: u128, hi: u128) -> Option<u128> {
        let cand = match self.run_containing(lo) {
            // Runs never touch, so the value after a run is free.
            Some((_, end)) => end.checked_add(1)?,
            None => lo,
        };
        (cand <= hi).then_some(cand)
    }
}

/// Allocation state of one subnet (addresses as u128, IPv4 and IPv6 alike).
#[derive(Debug, Clone)]
pub struct AddressPool {
    subnet: IpNet,
    range: IpNet,
    v6: bool,
    /// Bounds of the subnet and of the allocatable range.
    net_lo: u128,
    net_hi: u128,
    range_lo: u128,
    range_hi: u128,
    used: IntervalSet,
    /// Network/broadcast reservations, never released.
    fixed: Vec<u128>,
}

impl AddressPool {
    /// Reserves the network address (IPv6: the subnet-router anycast address; IPv4: not on
    /// /31 and /32, RFC 3021) and the IPv4 broadcast address (not on /31 and /32).
    /// `ip_range` must lie inside `subnet`. Host bits of either are ignored.
    pub fn new(subnet: IpNet, ip_range: Option<IpNet>) -> Result<Self, IpamError> {
        let subnet = subnet.trunc();
        let range = ip_range.map_or(subnet, |r| r.trunc());
        let v6 = is_v6(&subnet);
        let (net_lo, net_hi) = bounds(&subnet);
        let (range_lo, range_hi) = bounds(&range);
        if is_v6(&range) != v6 || range_lo < net_lo || range_hi > net_hi {
            return Err(IpamError::RangeOutsideSubnet { range, subnet });
        }
        let mut fixed = Vec::new();
        if network_reserved(&subnet) {
            fixed.push(net_lo);
        }
        if broadcast_reserved(&subnet) {
            fixed.push(net_hi);
        }
        let mut used = IntervalSet::default();
        for &f in &fixed {
            used.insert(f);
        }
        Ok(Self {
            subnet,
            range,
            v6,
            net_lo,
            net_hi,
            range_lo,
            range_hi,
            used,
            fixed,
        })
    }

    pub fn subnet(&self) -> IpNet {
        self.subnet
    }

    /// The ip-range, or the whole subnet when none was given.
    pub fn range(&self) -> IpNet {
        self.range
    }

    /// The address as a u128 if it lies inside the subnet.
    fn offset(&self, addr: IpAddr) -> Option<u128> {
        if addr.is_ipv6() != self.v6 {
            return None;
        }
        let a = to_u128(addr);
        (a >= self.net_lo && a <= self.net_hi).then_some(a)
    }

    /// Inside the subnet (not only the range).
    pub fn contains(&self, addr: IpAddr) -> bool {
        self.offset(addr).is_some()
    }

    /// Allocated or reserved (network/broadcast included).
    pub fn is_allocated(&self, addr: IpAddr) -> bool {
        self.offset(addr).is_some_and(|a| self.used.contains(a))
    }

    /// Reserve a specific address anywhere in the subnet (gateway, aux, restored endpoint).
    pub fn reserve(&mut self, addr: IpAddr) -> Result<(), IpamError> {
        let a = self.offset(addr).ok_or(IpamError::OutOfRange(addr))?;
        if !self.used.insert(a) {
            return Err(IpamError::AddressInUse(addr));
        }
        Ok(())
    }

    /// `Some(a)`: reserve exactly `a`, which may lie anywhere in the subnet, also outside
    /// the ip-range (Docker's new allocator checks the subnet only). `None`: the lowest
    /// free address of the range.
    pub fn allocate(&mut self, preferred: Option<IpAddr>) -> Result<IpAddr, IpamError> {
        if let Some(a) = preferred {
            self.reserve(a)?;
            return Ok(a);
        }
        let a = self
            .used
            .first_free(self.range_lo, self.range_hi)
            .ok_or(IpamError::Exhausted)?;
        let addr = from_u128(a, self.v6).ok_or(IpamError::Exhausted)?;
        self.used.insert(a);
        Ok(addr)
    }

    /// Returns true if it was allocated. Network/broadcast reservations stay.
    pub fn release(&mut self, addr: IpAddr) -> bool {
        match self.offset(addr) {
            Some(a) if !self.fixed.contains(&a) => self.used.remove(a),
            _ => false,
        }
    }

    /// Whether `allocate(None)` would fail.
    pub fn is_full(&self) -> bool {
        self.used.first_free(self.range_lo, self.range_hi).is_none()
    }
}

/// All pools of one network. The gateway and aux addresses are pinned for the network's
/// lifetime: `release` refuses them.
#[derive(Debug, Clone)]
pub struct NetworkPools {
    pools: Vec<AddressPool>,
    pinned: BTreeSet<IpAddr>,
}

impl NetworkPools {
    /// One pool per config. Order of reservations: the given gateway, then the aux
    /// addresses, then (when no gateway was given) the lowest free address of the range as
    /// gateway, i.e. .1 of the subnet, or the first usable address of the ip-range.
    /// (Docker picks the automatic gateway before the aux addresses, so an aux on .1 fails
    /// there; here the gateway steps over it.) Returns the configs with gateway filled in.
    pub fn new(configs: &[SubnetConfig]) -> Result<(Self, Vec<SubnetConfig>), IpamError> {
        let subnets: Vec<IpNet> = configs.iter().map(|c| c.subnet.trunc()).collect();
        if any_overlap(&subnets) {
            return Err(IpamError::InvalidConfig(vec![
                OVERLAPPING_SUBNETS_MSG.to_string()
            ]));
        }
        let mut pools = Vec::with_capacity(configs.len());
        let mut pinned = BTreeSet::new();
        let mut filled = Vec::with_capacity(configs.len());
        for cfg in configs {
            let mut pool = AddressPool::new(cfg.subnet, cfg.ip_range)?;
            if let Some(gw) = cfg.gateway {
                pool.reserve(gw)
                    .map_err(|e| IpamError::GatewayFailed(Some(gw), Box::new(e)))?;
                pinned.insert(gw);
            }
            for (name, &addr) in &cfg.aux {
                if !pool.contains(addr) {
                    return Err(IpamError::AuxOutsidePool(name.clone(), addr, pool.subnet()));
                }
                pool.reserve(addr)
                    .map_err(|e| IpamError::AuxFailed(name.clone(), addr, Box::new(e)))?;
                pinned.insert(addr);
            }
            let gateway = match cfg.gateway {
                Some(gw) => gw,
                None => {
                    let gw = pool
                        .allocate(None)
                        .map_err(|e| IpamError::GatewayFailed(None, Box::new(e)))?;
                    pinned.insert(gw);
                    gw
                }
            };
            filled.push(SubnetConfig {
                subnet: pool.subnet(),
                ip_range: cfg.ip_range.map(|r| r.trunc()),
                gateway: Some(gateway),
                aux: cfg.aux.clone(),
            });
            pools.push(pool);
        }
        Ok((Self { pools, pinned }, filled))
    }

    /// `preferred`: reserve it in the pool whose subnet contains it (OutOfRange if none, or
    /// if its family is not the asked one). Otherwise the lowest free address of the first
    /// pool of the family that has one; Exhausted when all are full.
    pub fn allocate(
        &mut self,
        v6: bool,
        preferred: Option<IpAddr>,
    ) -> Result<(IpAddr, IpNet), IpamError> {
        if let Some(a) = preferred {
            if a.is_ipv6() != v6 {
                return Err(IpamError::OutOfRange(a));
            }
            let pool = self
                .pools
                .iter_mut()
                .find(|p| p.contains(a))
                .ok_or(IpamError::OutOfRange(a))?;
            pool.reserve(a)?;
            return Ok((a, pool.subnet()));
        }
        if !self.has_family(v6) {
            return Err(IpamError::NoSubnetForFamily { v6 });
        }
        for pool in self.pools.iter_mut().filter(|p| p.v6 == v6) {
            match pool.allocate(None) {
                Ok(a) => return Ok((a, pool.subnet())),
                Err(IpamError::Exhausted) => continue,
                Err(e) => return Err(e),
            }
        }
        Err(IpamError::Exhausted)
    }

    /// Returns true if it was allocated. Gateway, aux, network and broadcast addresses
    /// are never released.
    pub fn release(&mut self, addr: IpAddr) -> bool {
        if self.pinned.contains(&addr) {
            return false;
        }
        self.pools
            .iter_mut()
            .find(|p| p.contains(addr))
            .is_some_and(|p| p.release(addr))
    }

    pub fn has_family(&self, v6: bool) -> bool {
        self.pools.iter().any(|p| p.v6 == v6)
    }

    /// Allocated or reserved in any pool.
    pub fn is_allocated(&self, addr: IpAddr) -> bool {
        self.pools.iter().any(|p| p.is_allocated(addr))
    }

    /// Gateway and aux addresses.
    pub fn is_pinned(&self, addr: IpAddr) -> bool {
        self.pinned.contains(&addr)
    }

    /// The pools, in config order.
    pub fn pools(&self) -> &[AddressPool] {
        &self.pools
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{choose_subnet, default_local_pools, validate, PoolSpec, RawSubnetConfig};

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }
    fn n(s: &str) -> IpNet {
        s.parse().unwrap()
    }
    fn cfg(subnet: &str) -> SubnetConfig {
        SubnetConfig {
            subnet: n(subnet),
            ip_range: None,
            gateway: None,
            aux: BTreeMap::new(),
        }
    }

    #[test]
    fn interval_set_merges_and_splits() {
        let mut s = IntervalSet::default();
        assert!(s.insert(5));
        assert!(s.insert(7));
        assert!(s.insert(6));
        assert!(!s.insert(6));
        assert_eq!(s.runs.len(), 1);
        assert_eq!(s.first_free(5, 10), Some(8));
        assert_eq!(s.first_free(4, 10), Some(4));
        assert!(s.remove(6));
        assert!(!s.remove(6));
        assert_eq!(s.runs.len(), 2);
        assert_eq!(s.first_free(5, 10), Some(6));
        assert!(s.insert(u128::MAX));
        assert_eq!(s.first_free(u128::MAX, u128::MAX), None);
        assert!(s.insert(0));
        assert!(s.remove(0));
        assert!(s.remove(u128::MAX));
    }

    #[test]
    fn first_user_network_end_to_end() {
        let pools = default_local_pools();
        let subnet = choose_subnet(&pools, &[n("172.17.0.0/16")], &[], false).unwrap();
        assert_eq!(subnet, n("172.18.0.0/16"));
        let (mut np, filled) = NetworkPools::new(&[cfg("172.18.0.0/16")]).unwrap();
        assert_eq!(filled[0].gateway, Some(ip("172.18.0.1")));
        let sub = n("172.18.0.0/16");
        assert_eq!(np.allocate(false, None).unwrap(), (ip("172.18.0.2"), sub));
        assert_eq!(np.allocate(false, None).unwrap(), (ip("172.18.0.3"), sub));
        assert_eq!(np.allocate(false, None).unwrap(), (ip("172.18.0.4"), sub));
        // A removed container's address goes to the next one.
        assert!(np.release(ip("172.18.0.2")));
        assert!(!np.release(ip("172.18.0.2")));
        assert_eq!(np.allocate(false, None).unwrap(), (ip("172.18.0.2"), sub));
        assert_eq!(np.allocate(false, None).unwrap(), (ip("172.18.0.5"), sub));
        // The gateway stays.
        assert!(!np.release(ip("172.18.0.1")));
        assert!(np.is_allocated(ip("172.18.0.1")));
    }

    #[test]
    fn default_address_pools_override_gateways() {
        let pools = [PoolSpec {
            base: n("192.168.200.0/23"),
            size: 28,
        }];
        let mut used = Vec::new();
        for (want_net, want_gw) in [
            ("192.168.200.0/28", "192.168.200.1"),
            ("192.168.200.16/28", "192.168.200.17"),
            ("192.168.200.32/28", "192.168.200.33"),
        ] {
            let subnet = choose_subnet(&pools, &used, &[], false).unwrap();
            assert_eq!(subnet, n(want_net));
            let (_, filled) = NetworkPools::new(&[SubnetConfig {
                subnet,
                ip_range: None,
                gateway: None,
                aux: BTreeMap::new(),
            }])
            .unwrap();
            assert_eq!(filled[0].gateway, Some(ip(want_gw)));
            used.push(subnet);
        }
    }

    #[test]
    fn ip_range_gateway_is_first_of_range() {
        // The reserved network address is the subnet's .0, which is outside the range, so
        // the range's own first address .128 is free and becomes the gateway.
        let raw = RawSubnetConfig {
            subnet: "192.168.50.0/24".into(),
            ip_range: Some("192.168.50.128/25".into()),
            ..Default::default()
        };
        let cfgs = validate(&[raw]).unwrap();
        let (mut np, filled) = NetworkPools::new(&cfgs).unwrap();
        assert_eq!(filled[0].gateway, Some(ip("192.168.50.128")));
        assert_eq!(filled[0].ip_range, Some(n("192.168.50.128/25")));
        assert_eq!(np.allocate(false, None).unwrap().0, ip("192.168.50.129"));
        // A preferred address outside the range but inside the subnet is fine.
        assert_eq!(
            np.allocate(false, Some(ip("192.168.50.10"))).unwrap().0,
            ip("192.168.50.10")
        );
        // Range exhaustion stops at .254: .255 is the broadcast.
        let mut last = ip("0.0.0.0");
        while let Ok((a, _)) = np.allocate(false, None) {
            last = a;
        }
        assert_eq!(last, ip("192.168.50.254"));
        assert_eq!(np.allocate(false, None), Err(IpamError::Exhausted));
    }

    #[test]
    fn slash_31_and_32_have_no_reserved_addresses() {
        let mut p = AddressPool::new(n("10.0.0.0/31"), None).unwrap();
        assert_eq!(p.allocate(None).unwrap(), ip("10.0.0.0"));
        assert_eq!(p.allocate(None).unwrap(), ip("10.0.0.1"));
        assert_eq!(p.allocate(None), Err(IpamError::Exhausted));
        assert!(p.release(ip("10.0.0.0")));

        let (mut np, filled) = NetworkPools::new(&[cfg("10.0.0.0/31")]).unwrap();
        assert_eq!(filled[0].gateway, Some(ip("10.0.0.0")));
        assert_eq!(np.allocate(false, None).unwrap().0, ip("10.0.0.1"));

        let mut p = AddressPool::new(n("10.0.0.9/32"), None).unwrap();
        assert_eq!(p.allocate(None).unwrap(), ip("10.0.0.9"));
        assert!(p.is_full());
    }

    #[test]
    fn slash_30_has_two_hosts() {
        let mut p = AddressPool::new(n("10.0.0.0/30"), None).unwrap();
        assert!(p.is_allocated(ip("10.0.0.0")));
        assert!(p.is_allocated(ip("10.0.0.3")));
        assert_eq!(p.allocate(None).unwrap(), ip("10.0.0.1"));
        assert_eq!(p.allocate(None).unwrap(), ip("10.0.0.2"));
        assert_eq!(p.allocate(None), Err(IpamError::Exhausted));
        assert!(!p.release(ip("10.0.0.0")));
        assert!(!p.release(ip("10.0.0.3")));
        assert_eq!(
            p.allocate(Some(ip("10.0.0.3"))),
            Err(IpamError::AddressInUse(ip("10.0.0.3")))
        );
    }

    #[test]
    fn v6_slash_64() {
        let (mut np, filled) =
            NetworkPools::new(&[cfg("fd00:1::/64"), cfg("10.1.0.0/24")]).unwrap();
        assert_eq!(filled[0].gateway, Some(ip("fd00:1::1")));
        assert_eq!(filled[1].gateway, Some(ip("10.1.0.1")));
        assert_eq!(
            np.allocate(true, None).unwrap(),
            (ip("fd00:1::2"), n("fd00:1::/64"))
        );
        assert_eq!(
            np.allocate(false, None).unwrap(),
            (ip("10.1.0.2"), n("10.1.0.0/24"))
        );
        let high = ip("fd00:1::ffff:ffff:ffff:ffff");
        assert_eq!(np.allocate(true, Some(high)).unwrap().0, high);
        assert_eq!(
            np.allocate(true, Some(high)),
            Err(IpamError::AddressInUse(high))
        );
        assert!(np.release(high));
        assert!(np.is_allocated(ip("fd00:1::")));
        assert!(!np.release(ip("fd00:1::")));
        assert_eq!(np.allocate(true, None).unwrap().0, ip("fd00:1::3"));
        // Family mismatch and outside addresses.
        assert_eq!(
            np.allocate(false, Some(ip("fd00:1::9"))),
            Err(IpamError::OutOfRange(ip("fd00:1::9")))
        );
        assert_eq!(
            np.allocate(true, Some(ip("fd00:2::9"))),
            Err(IpamError::OutOfRange(ip("fd00:2::9")))
        );
    }

    #[test]
    fn v6_slash_128_has_no_usable_address() {
        let p = AddressPool::new(n("fd00::5/128"), None).unwrap();
        assert!(p.is_full());
        assert_eq!(
            NetworkPools::new(&[cfg("fd00::5/128")]).unwrap_err(),
            IpamError::GatewayFailed(None, Box::new(IpamError::Exhausted))
        );
    }

    #[test]
    fn whole_v6_space_does_not_overflow() {
        let mut p = AddressPool::new(
            n("::/0"),
            Some(n("ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe/127")),
        )
        .unwrap();
        assert_eq!(
            p.allocate(None).unwrap(),
            ip("ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe")
        );
        assert_eq!(
            p.allocate(None).unwrap(),
            ip("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff")
        );
        assert_eq!(p.allocate(None), Err(IpamError::Exhausted));
        assert!(p.release(ip("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff")));
    }

    #[test]
    fn no_subnet_for_family() {
        let (mut np, _) = NetworkPools::new(&[cfg("10.1.0.0/24")]).unwrap();
        assert!(np.has_family(false));
        assert!(!np.has_family(true));
        assert_eq!(
            np.allocate(true, None),
            Err(IpamError::NoSubnetForFamily { v6: true })
        );
    }

    #[test]
    fn exhaustion_moves_to_next_pool_of_family() {
        let (mut np, _) = NetworkPools::new(&[cfg("10.0.0.0/30"), cfg("10.0.1.0/30")]).unwrap();
        // 10.0.0.1 is the gateway, .2 the only other host.
        assert_eq!(
            np.allocate(false, None).unwrap(),
            (ip("10.0.0.2"), n("10.0.0.0/30"))
        );
        assert_eq!(
            np.allocate(false, None).unwrap(),
            (ip("10.0.1.2"), n("10.0.1.0/30"))
        );
        assert_eq!(np.allocate(false, None), Err(IpamError::Exhausted));
    }

    #[test]
    fn gateway_and_aux_reservations() {
        let mut c = cfg("10.15.20.0/24");
        c.gateway = Some(ip("10.15.20.1"));
        c.aux.insert("1".into(), ip("10.15.20.2"));
        c.aux.insert("2".into(), ip("10.15.20.3"));
        let (mut np, _) = NetworkPools::new(&[c]).unwrap();
        assert_eq!(np.allocate(false, None).unwrap().0, ip("10.15.20.4"));
        assert!(np.is_pinned(ip("10.15.20.2")));
        assert!(!np.release(ip("10.15.20.2")));
        assert_eq!(
            np.allocate(false, Some(ip("10.15.20.3"))),
            Err(IpamError::AddressInUse(ip("10.15.20.3")))
        );
    }

    #[test]
    fn automatic_gateway_steps_over_aux() {
        let mut c = cfg("10.15.20.0/24");
        c.aux.insert("router".into(), ip("10.15.20.1"));
        let (_, filled) = NetworkPools::new(&[c]).unwrap();
        assert_eq!(filled[0].gateway, Some(ip("10.15.20.2")));
    }

    #[test]
    fn aux_errors() {
        let mut c = cfg("10.15.20.0/24");
        c.aux.insert("far".into(), ip("10.99.0.1"));
        assert_eq!(
            NetworkPools::new(&[c]).unwrap_err(),
            IpamError::AuxOutsidePool("far".into(), ip("10.99.0.1"), n("10.15.20.0/24"))
        );
        let mut c = cfg("10.15.20.0/24");
        c.gateway = Some(ip("10.15.20.1"));
        c.aux.insert("dup".into(), ip("10.15.20.1"));
        let e = NetworkPools::new(&[c]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "failed to allocate secondary ip address (dup:10.15.20.1): Address already in use"
        );
    }

    #[test]
    fn gateway_outside_subnet_is_refused() {
        let mut c = cfg("10.15.20.0/24");
        c.gateway = Some(ip("10.15.21.1"));
        assert_eq!(
            NetworkPools::new(&[c]).unwrap_err(),
            IpamError::GatewayFailed(
                Some(ip("10.15.21.1")),
                Box::new(IpamError::OutOfRange(ip("10.15.21.1")))
            )
        );
    }

    #[test]
    fn overlapping_configs_refused() {
        assert_eq!(
            NetworkPools::new(&[cfg("10.0.0.0/16"), cfg("10.0.1.0/24")]).unwrap_err(),
            IpamError::InvalidConfig(vec![OVERLAPPING_SUBNETS_MSG.to_string()])
        );
    }

    #[test]
    fn range_outside_subnet_refused() {
        assert_eq!(
            AddressPool::new(n("10.0.0.0/24"), Some(n("10.0.1.0/25"))).unwrap_err(),
            IpamError::RangeOutsideSubnet {
                range: n("10.0.1.0/25"),
                subnet: n("10.0.0.0/24")
            }
        );
        assert!(AddressPool::new(n("10.0.0.0/24"), Some(n("fd00::/120"))).is_err());
        assert!(AddressPool::new(n("10.0.0.0/24"), Some(n("10.0.0.0/16"))).is_err());
    }

    #[test]
    fn reserve_checks() {
        let mut p = AddressPool::new(n("10.0.0.0/24"), Some(n("10.0.0.128/25"))).unwrap();
        assert_eq!(
            p.reserve(ip("10.0.1.1")),
            Err(IpamError::OutOfRange(ip("10.0.1.1")))
        );
        assert_eq!(
            p.reserve(ip("fd00::1")),
            Err(IpamError::OutOfRange(ip("fd00::1")))
        );
        assert_eq!(p.reserve(ip("10.0.0.5")), Ok(()));
        assert_eq!(
            p.reserve(ip("10.0.0.5")),
            Err(IpamError::AddressInUse(ip("10.0.0.5")))
        );
        assert!(p.contains(ip("10.0.0.5")));
        assert!(!p.contains(ip("10.0.1.5")));
        assert_eq!(p.range(), n("10.0.0.128/25"));
        assert_eq!(p.subnet(), n("10.0.0.0/24"));
    }
}
