//! Property tests: the allocator against a brute-force model, `choose_subnet` against a
//! brute-force walk of all subnets, and `validate` on random text.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipam::{
    choose_subnet, overlaps, validate, IpNet, IpamError, NetworkPools, PoolSpec, RawSubnetConfig,
    SubnetConfig,
};
use proptest::prelude::*;

/// Small regions so that subnets, addresses and pools collide often.
const V4_REGION: u128 = 0x0a00_0000; // 10.0.0.0
const V6_REGION: u128 = 0xfd00_0000_0000_0000_0000_0000_0000_0000; // fd00::
/// Addresses are drawn from the region's low REGION_BITS bits (4096 addresses).
const REGION_BITS: u32 = 12;

fn addr(v6: bool, v: u128) -> IpAddr {
    if v6 {
        IpAddr::V6(Ipv6Addr::from(v))
    } else {
        IpAddr::V4(Ipv4Addr::from(u32::try_from(v).unwrap()))
    }
}

fn val(a: IpAddr) -> u128 {
    match a {
        IpAddr::V4(a) => u128::from(u32::from(a)),
        IpAddr::V6(a) => u128::from(a),
    }
}

fn region(v6: bool) -> u128 {
    if v6 {
        V6_REGION
    } else {
        V4_REGION
    }
}

fn max_bits(v6: bool) -> u8 {
    if v6 {
        128
    } else {
        32
    }
}

fn net(v6: bool, low: u128, host_bits: u8) -> IpNet {
    IpNet::new(addr(v6, region(v6) + low), max_bits(v6) - host_bits)
        .unwrap()
        .trunc()
}

fn span(n: &IpNet) -> (u128, u128) {
    let lo = val(n.network());
    let hi = val(n.broadcast());
    (lo, hi)
}

// ---------------------------------------------------------------- allocator model

#[derive(Debug, Clone)]
struct GenConfig {
    host_bits: u8,
    low: u128,
    range: Option<(u8, u128)>,
    gateway: Option<u128>,
    aux: Vec<u128>,
}

#[derive(Debug, Clone)]
enum Op {
    Alloc { v6: bool },
    Preferred { v6: bool, low: u128 },
    ReleaseHeld(usize),
    ReleaseAny { v6: bool, low: u128 },
}

fn gen_config() -> impl Strategy<Value = GenConfig> {
    (0u8..=10, 0u128..(1 << REGION_BITS)).prop_flat_map(|(host_bits, low)| {
        let size = 1u128 << host_bits;
        (
            Just(host_bits),
            Just(low),
            proptest::option::of((0..=host_bits, 0..size)),
            proptest::option::weighted(0.3, 0..size),
            proptest::collection::vec(0..size + 4, 0..3),
        )
            .prop_map(|(host_bits, low, range, gateway, aux)| GenConfig {
                host_bits,
                low,
                range,
                gateway,
                aux,
            })
    })
}

fn gen_op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => any::<bool>().prop_map(|v6| Op::Alloc { v6 }),
        2 => (any::<bool>(), 0u128..(1 << REGION_BITS)).prop_map(|(v6, low)| Op::Preferred { v6, low }),
        2 => any::<usize>().prop_map(Op::ReleaseHeld),
        1 => (any::<bool>(), 0u128..(1 << REGION_BITS)).prop_map(|(v6, low)| Op::ReleaseAny { v6, low }),
    ]
}

/// The model of one pool.
#[derive(Debug)]
struct ModelPool {
    v6: bool,
    subnet: IpNet,
    net: (u128, u128),
    range: (u128, u128),
    /// Network/broadcast, gateway, aux: never handed out, never released.
    pinned: BTreeSet<u128>,
}

impl ModelPool {
    fn lowest_free(&self, held: &BTreeSet<u128>) -> Option<u128> {
        (self.range.0..=self.range.1).find(|a| !self.pinned.contains(a) && !held.contains(a))
    }
    fn contains(&self, a: u128) -> bool {
        a >= self.net.0 && a <= self.net.1
    }
}

/// Build configs from the generated shapes and predict `NetworkPools::new`.
fn build(v6s: &[bool], gens: &[GenConfig]) -> (Vec<SubnetConfig>, Result<Vec<ModelPool>, String>) {
    let mut cfgs = Vec::new();
    for (&v6, g) in v6s.iter().zip(gens) {
        let subnet = net(v6, g.low, g.host_bits);
        let (lo, _) = span(&subnet);
        let ip_range = g.range.map(|(rbits, off)| {
            IpNet::new(addr(v6, lo + off), max_bits(v6) - rbits)
                .unwrap()
                .trunc()
        });
        let gateway = g.gateway.map(|off| addr(v6, lo + off));
        let aux = g
            .aux
            .iter()
            .enumerate()
            .map(|(i, &off)| (format!("aux{i}"), addr(v6, lo + off)))
            .collect::<BTreeMap<_, _>>();
        cfgs.push(SubnetConfig {
            subnet,
            ip_range,
            gateway,
            aux,
        });
    }
    let subnets: Vec<IpNet> = cfgs.iter().map(|c| c.subnet).collect();
    for (i, a) in subnets.iter().enumerate() {
        if subnets[i + 1..].iter().any(|b| overlaps(a, b)) {
            return (cfgs, Err("overlap".into()));
        }
    }
    let mut pools = Vec::new();
    for c in &cfgs {
        let v6 = c.subnet.addr().is_ipv6();
        let net = span(&c.subnet);
        let range = c.ip_range.as_ref().map_or(net, span);
        let mut pinned = BTreeSet::new();
        let bits = c.subnet.prefix_len();
        if v6 || bits < 31 {
            pinned.insert(net.0);
        }
        if !v6 && bits < 31 {
            pinned.insert(net.1);
        }
        if let Some(gw) = c.gateway {
            let g = val(gw);
            if g < net.0 || g > net.1 {
                return (cfgs.clone(), Err("gateway out".into()));
            }
            if !pinned.insert(g) {
                return (cfgs.clone(), Err("gateway in use".into()));
            }
        }
        for a in c.aux.values() {
            let a = val(*a);
            if a < net.0 || a > net.1 {
                return (cfgs.clone(), Err("aux out".into()));
            }
            if !pinned.insert(a) {
                return (cfgs.clone(), Err("aux in use".into()));
            }
        }
        let mut pool = ModelPool {
            v6,
            subnet: c.subnet,
            net,
            range,
            pinned,
        };
        if c.gateway.is_none() {
            match pool.lowest_free(&BTreeSet::new()) {
                Some(g) => {
                    pool.pinned.insert(g);
                }
                None => return (cfgs.clone(), Err("gateway exhausted".into())),
            }
        }
        pools.push(pool);
    }
    (cfgs, Ok(pools))
}

fn error_kind(e: &IpamError) -> &'static str {
    match e {
        IpamError::InvalidConfig(_) => "overlap",
        IpamError::GatewayFailed(Some(_), inner) => match **inner {
            IpamError::OutOfRange(_) => "gateway out",
            _ => "gateway in use",
        },
        IpamError::GatewayFailed(None, _) => "gateway exhausted",
        IpamError::AuxOutsidePool(..) => "aux out",
        IpamError::AuxFailed(..) => "aux in use",
        _ => "other",
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn allocator_matches_model(
        fams in proptest::collection::vec(any::<bool>(), 1..4),
        gens in proptest::collection::vec(gen_config(), 3),
        ops in proptest::collection::vec(gen_op(), 0..120),
    ) {
        let gens = &gens[..fams.len()];
        let (cfgs, model) = build(&fams, gens);
        let got = NetworkPools::new(&cfgs);
        let model = match (model, got) {
            (Err(want), Err(e)) => {
                prop_assert_eq!(error_kind(&e), want.as_str(), "{:?}", e);
                return Ok(());
            }
            (Err(want), Ok(_)) => {
                return Err(TestCaseError::fail(format!("expected {want} error")));
            }
            (Ok(_), Err(e)) => {
                return Err(TestCaseError::fail(format!("unexpected error {e:?}")));
            }
            (Ok(model), Ok((np, filled))) => {
                for (m, f) in model.iter().zip(&filled) {
                    let gw = val(f.gateway.unwrap());
                    prop_assert!(m.pinned.contains(&gw));
                    prop_assert!(m.contains(gw));
                }
                (model, np)
            }
        };
        let (model, mut np) = model;
        let mut held: BTreeSet<u128> = BTreeSet::new();
        let mut held_list: Vec<(bool, u128)> = Vec::new();
        for op in ops {
            match op {
                Op::Alloc { v6 } => {
                    let want = model
                        .iter()
                        .filter(|m| m.v6 == v6)
                        .find_map(|m| m.lowest_free(&held).map(|a| (a, m.subnet)));
                    let got = np.allocate(v6, None);
                    match (want, got) {
                        (Some((a, subnet)), Ok((ga, gnet))) => {
                            prop_assert_eq!(val(ga), a);
                            prop_assert_eq!(gnet, subnet);
                            let m = model.iter().find(|m| m.subnet == subnet).unwrap();
                            prop_assert!(a >= m.range.0 && a <= m.range.1, "outside range");
                            prop_assert!(!m.pinned.contains(&a));
                            prop_assert!(held.insert(a), "double allocation");
                            held_list.push((v6, a));
                        }
                        (None, Err(IpamError::Exhausted)) => {
                            prop_assert!(model.iter().any(|m| m.v6 == v6));
                        }
                        (None, Err(IpamError::NoSubnetForFamily { v6: f })) => {
                            prop_assert_eq!(f, v6);
                            prop_assert!(!model.iter().any(|m| m.v6 == v6));
                        }
                        (w, g) => prop_assert!(false, "want {:?} got {:?}", w, g),
                    }
                }
                Op::Preferred { v6, low } => {
                    let a = region(v6) + low;
                    let ip = addr(v6, a);
                    let owner = model.iter().find(|m| m.v6 == v6 && m.contains(a));
                    let got = np.allocate(v6, Some(ip));
                    match owner {
                        None => prop_assert_eq!(got, Err(IpamError::OutOfRange(ip))),
                        Some(m) if m.pinned.contains(&a) || held.contains(&a) => {
                            prop_assert_eq!(got, Err(IpamError::AddressInUse(ip)));
                        }
                        Some(m) => {
                            prop_assert_eq!(got, Ok((ip, m.subnet)));
                            held.insert(a);
                            held_list.push((v6, a));
                        }
                    }
                }
                Op::ReleaseHeld(i) => {
                    if held_list.is_empty() {
                        continue;
                    }
                    let (v6, a) = held_list.swap_remove(i % held_list.len());
                    prop_assert!(np.release(addr(v6, a)));
                    prop_assert!(held.remove(&a));
                    prop_assert!(!np.release(addr(v6, a)));
                }
                Op::ReleaseAny { v6, low } => {
                    let a = region(v6) + low;
                    let was_held = held.contains(&a) && held_list.contains(&(v6, a));
                    prop_assert_eq!(np.release(addr(v6, a)), was_held);
                    if was_held {
                        held.remove(&a);
                        held_list.retain(|&x| x != (v6, a));
                    }
                }
            }
            // Pinned addresses always stay allocated.
            for m in &model {
                for &p in &m.pinned {
                    prop_assert!(np.is_allocated(addr(m.v6, p)));
                }
            }
        }
    }
}

// ---------------------------------------------------------------- choose_subnet

#[derive(Debug, Clone)]
struct GenPool {
    host_bits: u8,
    low: u128,
    split: u8,
    v6: bool,
}

fn gen_pool() -> impl Strategy<Value = GenPool> {
    (
        2u8..=10,
        0u128..(1 << REGION_BITS),
        0u8..=5,
        proptest::bool::weighted(0.2),
    )
        .prop_map(|(host_bits, low, split, v6)| GenPool {
            host_bits,
            low,
            split: split.min(host_bits),
            v6,
        })
}

fn gen_net() -> impl Strategy<Value = (u8, u128, bool)> {
    (
        0u8..=13,
        0u128..(1 << (REGION_BITS + 1)),
        proptest::bool::weighted(0.2),
    )
}

/// The obvious algorithm: Docker's pool order, then every subnet in order.
fn brute_force(pools: &[PoolSpec], blockers: &[IpNet], v6: bool) -> Result<IpNet, IpamError> {
    let mut same: Vec<PoolSpec> = pools
        .iter()
        .filter(|p| p.base.addr().is_ipv6() == v6)
        .map(|p| PoolSpec {
            base: p.base.trunc(),
            size: p.size,
        })
        .collect();
    same.sort_by_key(|p| (val(p.base.network()), p.base.prefix_len()));
    let mut kept: Vec<PoolSpec> = Vec::new();
    for p in same {
        if kept.last().is_some_and(|k| overlaps(&k.base, &p.base)) {
            continue;
        }
        kept.push(p);
    }
    for p in kept {
        for i in 0..p.subnet_count().unwrap() {
            let s = p.nth_subnet(i).unwrap();
            if !blockers.iter().any(|b| overlaps(b, &s)) {
                return Ok(s);
            }
        }
    }
    Err(IpamError::NoMoreSubnets)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1024, ..ProptestConfig::default() })]

    #[test]
    fn choose_subnet_is_lowest_free(
        gpools in proptest::collection::vec(gen_pool(), 1..5),
        alloc in proptest::collection::vec(gen_net(), 0..10),
        reserved in proptest::collection::vec(gen_net(), 0..4),
        v6 in proptest::bool::weighted(0.2),
    ) {
        let pools: Vec<PoolSpec> = gpools
            .iter()
            .map(|g| {
                let base = net(g.v6, g.low, g.host_bits);
                PoolSpec { base, size: base.prefix_len() + g.split }
            })
            .collect();
        let to_nets = |v: &[(u8, u128, bool)]| -> Vec<IpNet> {
            v.iter().map(|&(hb, low, v6)| net(v6, low, hb)).collect()
        };
        let alloc = to_nets(&alloc);
        let reserved = to_nets(&reserved);
        let got = choose_subnet(&pools, &alloc, &reserved, v6);
        let all: Vec<IpNet> = alloc.iter().chain(&reserved).copied().collect();
        prop_assert_eq!(&got, &brute_force(&pools, &all, v6));
        if let Ok(s) = got {
            prop_assert_eq!(s.addr().is_ipv6(), v6);
            prop_assert!(!all.iter().any(|b| overlaps(b, &s)));
            prop_assert!(pools.iter().any(|p| p.base.contains(&s) && p.size == s.prefix_len()));
        }
    }
}

// ---------------------------------------------------------------- validate

fn messy() -> impl Strategy<Value = String> {
    prop_oneof![
        "[0-9a-f.:/]{0,24}",
        "(10|172|192)\\.[0-9]{1,3}\\.[0-9]{1,3}\\.[0-9]{1,3}(/[0-9]{1,2})?",
        "fd00:[0-9a-f]{0,4}::[0-9a-f]{0,4}(/[0-9]{1,3})?",
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1024, ..ProptestConfig::default() })]

    #[test]
    fn validate_never_panics_and_output_is_consistent(
        raws in proptest::collection::vec(
            (messy(), proptest::option::of(messy()), proptest::option::of(messy()),
             proptest::collection::btree_map("[a-z]{1,3}", messy(), 0..3)),
            0..4,
        )
    ) {
        let raws: Vec<RawSubnetConfig> = raws
            .into_iter()
            .map(|(subnet, ip_range, gateway, aux)| RawSubnetConfig { subnet, ip_range, gateway, aux })
            .collect();
        match validate(&raws) {
            Ok(cfgs) => {
                prop_assert_eq!(cfgs.len(), raws.len());
                for c in &cfgs {
                    prop_assert_eq!(c.subnet, c.subnet.trunc());
                    if let Some(r) = c.ip_range {
                        prop_assert!(c.subnet.contains(&r));
                        prop_assert_eq!(r, r.trunc());
                    }
                    for a in c.gateway.iter().chain(c.aux.values()) {
                        prop_assert!(c.subnet.contains(a));
                    }
                }
                // A validated config set always builds unless reservations collide.
                match NetworkPools::new(&cfgs) {
                    Ok(_) | Err(IpamError::AuxFailed(..)) | Err(IpamError::GatewayFailed(None, _)) => {}
                    Err(e) => prop_assert!(false, "{:?}", e),
                }
            }
            Err(IpamError::InvalidConfig(errs)) => prop_assert!(!errs.is_empty()),
            Err(e) => prop_assert!(false, "unexpected {:?}", e),
        }
    }
}
