//! Default address pools and the choice of a subnet for a new network
//! (moby `libnetwork/ipamutils` and `ipams/defaultipam/address_space.go`).

use std::net::{Ipv4Addr, Ipv6Addr};

use ipnet::{IpNet, Ipv4Net, Ipv6Net};

use crate::addr::{bounds, host_mask, is_v6, make_net};
use crate::IpamError;

/// One entry of Docker's default-address-pools: `base` split into subnets of `size` bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PoolSpec {
    pub base: IpNet,
    pub size: u8,
}

impl PoolSpec {
    /// Err(InvalidPool) unless `base prefix <= size <= address bits`. The daemon should call
    /// this on user-given `default-address-pools`; `choose_subnet` calls it too.
    pub fn check(&self) -> Result<(), IpamError> {
        if self.size < self.base.prefix_len() || self.size > self.base.max_prefix_len() {
            return Err(IpamError::InvalidPool {
                base: self.base,
                size: self.size,
            });
        }
        Ok(())
    }

    /// How many subnets the pool splits into; `None` when it does not fit a u128
    /// (only `::/0` split into /128s).
    pub fn subnet_count(&self) -> Option<u128> {
        let bits = self.size.checked_sub(self.base.prefix_len())?;
        1u128.checked_shl(u32::from(bits))
    }

    /// The `n`-th subnet (0-based, ascending), `None` past the end or for an invalid spec.
    pub fn nth_subnet(&self, n: u128) -> Option<IpNet> {
        self.check().ok()?;
        if n >= self.subnet_count()? {
            return None;
        }
        let v6 = is_v6(&self.base);
        let (lo, _) = bounds(&self.base);
        let step = host_mask(v6, self.size).checked_add(1)?;
        let start = lo.checked_add(n.checked_mul(step)?)?;
        make_net(start, self.size, v6)
    }
}

/// Local-scope defaults (`ipamutils.localScopeDefaultNetworks`): base, split size.
const LOCAL_POOLS: [(Ipv4Net, u8); 7] = [
    (Ipv4Net::new_assert(Ipv4Addr::new(172, 17, 0, 0), 16), 16),
    (Ipv4Net::new_assert(Ipv4Addr::new(172, 18, 0, 0), 16), 16),
    (Ipv4Net::new_assert(Ipv4Addr::new(172, 19, 0, 0), 16), 16),
    (Ipv4Net::new_assert(Ipv4Addr::new(172, 20, 0, 0), 14), 16),
    (Ipv4Net::new_assert(Ipv4Addr::new(172, 24, 0, 0), 14), 16),
    (Ipv4Net::new_assert(Ipv4Addr::new(172, 28, 0, 0), 14), 16),
    (Ipv4Net::new_assert(Ipv4Addr::new(192, 168, 0, 0), 16), 20),
];

/// Global-scope (swarm) default: 10.0.0.0/8 split into /24.
const GLOBAL_POOL: (Ipv4Net, u8) = (Ipv4Net::new_assert(Ipv4Addr::new(10, 0, 0, 0), 8), 24);

/// IPv6 base used when `--ipv6` is given without an IPv6 subnet. Docker's fd00::/8 split
/// into /64s is 2^56 subnets; one fixed ULA /48 keeps the numbers sane and the result
/// stable across restarts (65 536 /64s).
pub const DEFAULT_LOCAL_V6_BASE: Ipv6Net =
    Ipv6Net::new_assert(Ipv6Addr::new(0xfd42, 0x7673, 0x7774, 0, 0, 0, 0, 0), 48);
/// Size of the subnets cut out of [`DEFAULT_LOCAL_V6_BASE`].
pub const DEFAULT_LOCAL_V6_SIZE: u8 = 64;

/// Docker's local-scope pools: 172.17–172.31 as /16s, then 192.168.0.0/16 as /20s
/// (31 subnets in total).
pub fn default_local_pools() -> Vec<PoolSpec> {
    LOCAL_POOLS
        .iter()
        .map(|&(base, size)| PoolSpec {
            base: IpNet::V4(base),
            size,
        })
        .collect()
}

/// Docker's global-scope pool: 10.0.0.0/8 as /24s (65 536 subnets).
pub fn default_global_pools() -> Vec<PoolSpec> {
    vec![PoolSpec {
        base: IpNet::V4(GLOBAL_POOL.0),
        size: GLOBAL_POOL.1,
    }]
}

/// IPv6 pool used when `--ipv6` is given without an IPv6 subnet:
/// fd42:7673:7774::/48 split into /64s.
pub fn default_local_v6_pools() -> Vec<PoolSpec> {
    vec![PoolSpec {
        base: IpNet::V6(DEFAULT_LOCAL_V6_BASE),
        size: DEFAULT_LOCAL_V6_SIZE,
    }]
}

/// Whether two prefixes share any address (always false across families).
pub fn overlaps(a: &IpNet, b: &IpNet) -> bool {
    if is_v6(a) != is_v6(b) {
        return false;
    }
    let (alo, ahi) = bounds(a);
    let (blo, bhi) = bounds(b);
    alo <= bhi && blo <= ahi
}

/// Err(PoolOverlap) if `subnet` overlaps any of `allocated`.
pub fn check_overlap(subnet: &IpNet, allocated: &[IpNet]) -> Result<(), IpamError> {
    if allocated.iter().any(|a| overlaps(subnet, a)) {
        return Err(IpamError::PoolOverlap);
    }
    Ok(())
}

/// Docker's pool order: sorted by address then shorter prefix first, and any pool
/// overlapping the previous kept one dropped (moby `newAddrSpace`: otherwise a pool nested in
/// a partly used bigger one would hand out pieces of it).
fn normalized(pools: &[PoolSpec], v6: bool) -> Result<Vec<PoolSpec>, IpamError> {
    let mut same: Vec<PoolSpec> = Vec::new();
    for p in pools.iter().filter(|p| is_v6(&p.base) == v6) {
        p.check()?;
        same.push(PoolSpec {
            base: p.base.trunc(),
            size: p.size,
        });
    }
    // Stable sort: equal bases keep the caller's order.
    same.sort_by_key(|p| (bounds(&p.base).0, p.base.prefix_len()));
    let mut kept: Vec<PoolSpec> = Vec::with_capacity(same.len());
    for p in same {
        if kept.last().is_some_and(|k| overlaps(&k.base, &p.base)) {
            continue;
        }
        kept.push(p);
    }
    Ok(kept)
}

/// The union of `nets` of one family as sorted, disjoint, inclusive intervals.
fn merged_intervals(nets: &[&IpNet]) -> Vec<(u128, u128)> {
    let mut iv: Vec<(u128, u128)> = nets.iter().map(|n| bounds(n)).collect();
    iv.sort_unstable();
    let mut out: Vec<(u128, u128)> = Vec::with_capacity(iv.len());
    for (lo, hi) in iv {
        match out.last_mut() {
            Some(last) if lo <= last.1 => last.1 = last.1.max(hi),
            _ => out.push((lo, hi)),
        }
    }
    out
}

/// Lowest subnet of the pools (in Docker's order: pools sorted, subnets ascending) that
/// overlaps neither `allocated` nor `reserved`. Only pools, allocations and reservations of
/// the asked family count. Cost is O((pools + blockers) · log blockers): the walk jumps past
/// each blocking interval instead of enumerating subnets.
pub fn choose_subnet(
    pools: &[PoolSpec],
    allocated: &[IpNet],
    reserved: &[IpNet],
    v6: bool,
) -> Result<IpNet, IpamError> {
    let pools = normalized(pools, v6)?;
    let blockers: Vec<&IpNet> = allocated
        .iter()
        .chain(reserved)
        .filter(|n| is_v6(n) == v6)
        .collect();
    let blockers = merged_intervals(&blockers);
    for pool in pools {
        if let Some(net) = first_free_in_pool(&pool, &blockers, v6) {
            return Ok(net);
        }
    }
    Err(IpamError::NoMoreSubnets)
}

/// First `pool.size` subnet of `pool` that touches no interval of `blockers`.
fn first_free_in_pool(pool: &PoolSpec, blockers: &[(u128, u128)], v6: bool) -> Option<IpNet> {
    let (pool_lo, pool_hi) = bounds(&pool.base);
    let mask = host_mask(v6, pool.size);
    // pool_lo is aligned to the base prefix, hence to the (longer) subnet size.
    let mut cand = pool_lo;
    while cand <= pool_hi {
        let cand_hi = cand | mask;
        // Intervals are disjoint and sorted, so their ends ascend too.
        let i = blockers.partition_point(|&(_, hi)| hi < cand);
        match blockers.get(i) {
            Some(&(lo, hi)) if lo <= cand_hi => {
                // Jump to the first aligned subnet after this blocker.
                cand = hi.checked_add(1)?.checked_add(mask)? & !mask;
            }
            _ => return make_net(cand, pool.size, v6),
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(s: &str) -> IpNet {
        s.parse().unwrap()
    }

    fn all_subnets(pools: &[PoolSpec]) -> Vec<IpNet> {
        let mut out = Vec::new();
        for p in pools {
            let count = p.subnet_count().unwrap();
            for i in 0..count {
                out.push(p.nth_subnet(i).unwrap());
            }
        }
        out
    }

    #[test]
    fn local_pools_are_dockers_31() {
        let got = all_subnets(&default_local_pools());
        let mut want: Vec<IpNet> = (17..=31).map(|b| n(&format!("172.{b}.0.0/16"))).collect();
        want.extend((0..16).map(|i| n(&format!("192.168.{}.0/20", i * 16))));
        assert_eq!(want.len(), 31);
        assert_eq!(got, want);
    }

    #[test]
    fn global_pool_is_10_8_as_24s() {
        let g = default_global_pools();
        assert_eq!(
            g,
            vec![PoolSpec {
                base: n("10.0.0.0/8"),
                size: 24
            }]
        );
        assert_eq!(g[0].subnet_count(), Some(65_536));
        assert_eq!(g[0].nth_subnet(65_535), Some(n("10.255.255.0/24")));
        assert_eq!(g[0].nth_subnet(65_536), None);
    }

    #[test]
    fn v6_default_pool() {
        let p = default_local_v6_pools();
        assert_eq!(
            p,
            vec![PoolSpec {
                base: n("fd42:7673:7774::/48"),
                size: 64
            }]
        );
        assert_eq!(
            choose_subnet(&p, &[], &[], true).unwrap(),
            n("fd42:7673:7774::/64")
        );
        assert_eq!(
            choose_subnet(&p, &[n("fd42:7673:7774::/64")], &[], true).unwrap(),
            n("fd42:7673:7774:1::/64")
        );
    }

    #[test]
    fn first_user_network_after_docker0() {
        let pools = default_local_pools();
        let docker0 = n("172.17.0.0/16");
        assert_eq!(choose_subnet(&pools, &[], &[], false).unwrap(), docker0);
        assert_eq!(
            choose_subnet(&pools, &[docker0], &[], false).unwrap(),
            n("172.18.0.0/16")
        );
    }

    #[test]
    fn after_172_31_comes_192_168_0_0_20() {
        let pools = default_local_pools();
        let used: Vec<IpNet> = (17..=31).map(|b| n(&format!("172.{b}.0.0/16"))).collect();
        assert_eq!(
            choose_subnet(&pools, &used, &[], false).unwrap(),
            n("192.168.0.0/20")
        );
    }

    #[test]
    fn freed_subnet_is_reused() {
        let pools = default_local_pools();
        let used = [n("172.17.0.0/16"), n("172.19.0.0/16")];
        assert_eq!(
            choose_subnet(&pools, &used, &[], false).unwrap(),
            n("172.18.0.0/16")
        );
    }

    #[test]
    fn on_link_route_is_skipped() {
        let pools = default_local_pools();
        let used = [n("172.17.0.0/16")];
        let reserved = [n("172.18.0.0/16")];
        assert_eq!(
            choose_subnet(&pools, &used, &reserved, false).unwrap(),
            n("172.19.0.0/16")
        );
        // A nameserver host prefix blocks the whole /16 holding it.
        let reserved = [n("172.18.5.5/32")];
        assert_eq!(
            choose_subnet(&pools, &used, &reserved, false).unwrap(),
            n("172.19.0.0/16")
        );
    }

    #[test]
    fn bigger_allocation_blocks_several_pools() {
        let pools = default_local_pools();
        assert_eq!(
            choose_subnet(&pools, &[n("172.16.0.0/12")], &[], false).unwrap(),
            n("192.168.0.0/20")
        );
    }

    #[test]
    fn exhausted_local_pools() {
        let pools = default_local_pools();
        let used = [n("172.16.0.0/12"), n("192.168.0.0/16")];
        assert_eq!(
            choose_subnet(&pools, &used, &[], false),
            Err(IpamError::NoMoreSubnets)
        );
        // Family-specific: IPv4 pools never answer an IPv6 request.
        assert_eq!(
            choose_subnet(&pools, &[], &[], true),
            Err(IpamError::NoMoreSubnets)
        );
    }

    #[test]
    fn custom_default_address_pools() {
        let pools = [PoolSpec {
            base: n("192.168.200.0/23"),
            size: 28,
        }];
        let mut used = Vec::new();
        for want in ["192.168.200.0/28", "192.168.200.16/28", "192.168.200.32/28"] {
            let got = choose_subnet(&pools, &used, &[], false).unwrap();
            assert_eq!(got, n(want));
            used.push(got);
        }
    }

    #[test]
    fn global_pool_full_walk_is_fast() {
        // 65 535 /24s taken: the only free one is the last; the merged blockers make this one jump.
        let pools = default_global_pools();
        let used: Vec<IpNet> = (0..65_535u32)
            .map(|i| n(&format!("10.{}.{}.0/24", i >> 8, i & 0xff)))
            .collect();
        assert_eq!(
            choose_subnet(&pools, &used, &[], false).unwrap(),
            n("10.255.255.0/24")
        );
        let mut all = used.clone();
        all.push(n("10.255.255.0/24"));
        assert_eq!(
            choose_subnet(&pools, &all, &[], false),
            Err(IpamError::NoMoreSubnets)
        );
    }

    #[test]
    fn huge_v6_pools_do_not_enumerate() {
        // ::/0 split into /128s: 2^128 subnets, must still answer at once.
        let pools = [PoolSpec {
            base: n("::/0"),
            size: 128,
        }];
        assert_eq!(pools[0].subnet_count(), None);
        let used = [n("::/1")];
        assert_eq!(
            choose_subnet(&pools, &used, &[], true).unwrap(),
            n("8000::/128")
        );
        let used = [n("::/0")];
        assert_eq!(
            choose_subnet(&pools, &used, &[], true),
            Err(IpamError::NoMoreSubnets)
        );
        // The top of the address space, with nothing after it to jump to.
        let pools = [PoolSpec {
            base: n("ffff::/16"),
            size: 64,
        }];
        let used = [n("ffff::/17")];
        assert_eq!(
            choose_subnet(&pools, &used, &[], true).unwrap(),
            n("ffff:8000::/64")
        );
        let used = [n("ffff::/16")];
        assert_eq!(
            choose_subnet(&pools, &used, &[], true),
            Err(IpamError::NoMoreSubnets)
        );
    }

    #[test]
    fn nested_pool_is_dropped_like_docker() {
        // 10.1.0.0/16 lies inside 10.0.0.0/8 and is dropped: the /8's next free /24 wins,
        // not a /28 carved out of the partly used 10.1.0.0/24.
        let pools = [
            PoolSpec {
                base: n("10.1.0.0/16"),
                size: 28,
            },
            PoolSpec {
                base: n("10.0.0.0/8"),
                size: 24,
            },
        ];
        let used = [n("10.0.0.0/16"), n("10.1.0.0/28")];
        assert_eq!(
            choose_subnet(&pools, &used, &[], false).unwrap(),
            n("10.1.1.0/24")
        );
    }

    #[test]
    fn pools_are_sorted_before_use() {
        let pools = [
            PoolSpec {
                base: n("192.168.0.0/16"),
                size: 24,
            },
            PoolSpec {
                base: n("10.0.0.0/8"),
                size: 24,
            },
        ];
        assert_eq!(
            choose_subnet(&pools, &[], &[], false).unwrap(),
            n("10.0.0.0/24")
        );
    }

    #[test]
    fn pool_base_with_host_bits_is_truncated() {
        let pools = [PoolSpec {
            base: n("192.168.200.5/23"),
            size: 28,
        }];
        assert_eq!(
            choose_subnet(&pools, &[], &[], false).unwrap(),
            n("192.168.200.0/28")
        );
    }

    #[test]
    fn invalid_pool_specs() {
        let bad = PoolSpec {
            base: n("10.0.0.0/16"),
            size: 8,
        };
        assert_eq!(
            choose_subnet(&[bad], &[], &[], false),
            Err(IpamError::InvalidPool {
                base: n("10.0.0.0/16"),
                size: 8
            })
        );
        let bad = PoolSpec {
            base: n("10.0.0.0/16"),
            size: 33,
        };
        assert!(bad.check().is_err());
        assert_eq!(bad.nth_subnet(0), None);
        // A bad spec of the other family does not matter.
        assert!(choose_subnet(&[bad], &[], &[], true).is_err());
        assert!(choose_subnet(
            &[
                bad,
                PoolSpec {
                    base: n("fd00::/64"),
                    size: 64
                }
            ],
            &[],
            &[],
            true
        )
        .is_ok());
    }

    #[test]
    fn overlap_rules() {
        assert!(overlaps(&n("10.0.0.0/8"), &n("10.1.2.0/24")));
        assert!(overlaps(&n("10.1.2.0/24"), &n("10.0.0.0/8")));
        assert!(!overlaps(&n("10.0.0.0/24"), &n("10.0.1.0/24")));
        assert!(!overlaps(&n("10.0.0.0/8"), &n("::/0")));
        assert!(overlaps(&n("10.0.0.5/24"), &n("10.0.0.200/32")));
        assert_eq!(
            check_overlap(&n("172.18.0.0/16"), &[n("172.18.3.0/24")]),
            Err(IpamError::PoolOverlap)
        );
        assert_eq!(
            check_overlap(&n("172.18.0.0/16"), &[n("172.19.0.0/16")]),
            Ok(())
        );
    }
}
