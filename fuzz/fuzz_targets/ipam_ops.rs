//! Random sequences of ipam operations: validate (random and near-valid text),
//! NetworkPools::new, allocate, release, choose_subnet. Nothing may panic, and an address
//! is never handed out twice while held.

#![no_main]

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use arbitrary::Arbitrary;
use ipam::{
    choose_subnet, overlaps, validate, IpNet, IpamError, NetworkPools, PoolSpec, RawSubnetConfig,
    SubnetConfig,
};
use libfuzzer_sys::fuzz_target;

/// Ops per input: keeps each run fast.
const MAX_OPS: usize = 256;
/// "Near" addresses fall in a 4096-address region so subnets and addresses collide often.
const NEAR_MASK: u128 = 0xfff;
const V4_REGION: u128 = 0x0a00_0000; // 10.0.0.0
const V6_REGION: u128 = 0xfd00 << 112; // fd00::
/// Near prefixes leave at most this many host bits.
const NEAR_HOST_BITS: u8 = 12;

#[derive(Arbitrary, Debug, Clone, Copy)]
struct FAddr {
    v6: bool,
    near: bool,
    bits: u128,
}

impl FAddr {
    fn ip(self) -> IpAddr {
        let v = if self.near {
            let region = if self.v6 { V6_REGION } else { V4_REGION };
            region | (self.bits & NEAR_MASK)
        } else {
            self.bits
        };
        if self.v6 {
            IpAddr::V6(Ipv6Addr::from(v))
        } else {
            // Truncation to 32 bits is the intent here.
            IpAddr::V4(Ipv4Addr::from(v as u32))
        }
    }
}

#[derive(Arbitrary, Debug, Clone, Copy)]
struct FNet {
    addr: FAddr,
    len: u8,
}

impl FNet {
    fn net(self) -> IpNet {
        let max: u8 = if self.addr.v6 { 128 } else { 32 };
        let len = if self.addr.near {
            max - self.len % (NEAR_HOST_BITS + 1)
        } else {
            self.len % (max + 1)
        };
        match IpNet::new(self.addr.ip(), len) {
            Ok(n) => n,
            Err(_) => unreachable!("prefix length is reduced modulo the maximum"),
        }
    }
}

/// Text that is often well-formed, sometimes not.
#[derive(Arbitrary, Debug, Clone)]
enum FText {
    Raw(String),
    Net(FNet),
    Addr(FAddr),
    /// A well-formed network printed with its host bits cleared.
    Masked(FNet),
}

impl FText {
    fn text(&self) -> String {
        match self {
            FText::Raw(s) => s.clone(),
            FText::Net(n) => n.net().to_string(),
            FText::Addr(a) => a.ip().to_string(),
            FText::Masked(n) => n.net().trunc().to_string(),
        }
    }
}

#[derive(Arbitrary, Debug, Clone)]
struct FRaw {
    subnet: FText,
    ip_range: Option<FText>,
    gateway: Option<FText>,
    aux: Vec<(String, FText)>,
}

impl FRaw {
    fn raw(&self) -> RawSubnetConfig {
        RawSubnetConfig {
            subnet: self.subnet.text(),
            ip_range: self.ip_range.as_ref().map(FText::text),
            gateway: self.gateway.as_ref().map(FText::text),
            aux: self
                .aux
                .iter()
                .map(|(k, v)| (k.clone(), v.text()))
                .collect(),
        }
    }
}

/// A structured config that skips validation (NetworkPools must cope on its own).
#[derive(Arbitrary, Debug, Clone)]
struct FConfig {
    subnet: FNet,
    ip_range: Option<FNet>,
    gateway: Option<FAddr>,
    aux: Vec<FAddr>,
}

impl FConfig {
    fn config(&self) -> SubnetConfig {
        SubnetConfig {
            subnet: self.subnet.net(),
            ip_range: self.ip_range.map(FNet::net),
            gateway: self.gateway.map(FAddr::ip),
            aux: self
                .aux
                .iter()
                .enumerate()
                .map(|(i, a)| (format!("a{i}"), a.ip()))
                .collect::<BTreeMap<_, _>>(),
        }
    }
}

#[derive(Arbitrary, Debug, Clone)]
enum Op {
    Validate(Vec<FRaw>),
    ValidateAndBuild(Vec<FRaw>),
    Build(Vec<FConfig>),
    Allocate {
        v6: bool,
        preferred: Option<FAddr>,
    },
    Release(FAddr),
    ReleaseHeld(u16),
    Choose {
        pools: Vec<(FNet, u8)>,
        allocated: Vec<FNet>,
        reserved: Vec<FNet>,
        v6: bool,
    },
}

/// The network under test and what the fuzzer knows it holds.
struct State {
    pools: NetworkPools,
    /// Subnets and ranges of the pools, for membership checks.
    shapes: Vec<(IpNet, IpNet)>,
    pinned: BTreeSet<IpAddr>,
    held: BTreeSet<IpAddr>,
}

impl State {
    fn new(pools: NetworkPools, filled: &[SubnetConfig]) -> Self {
        let mut pinned = BTreeSet::new();
        for c in filled {
            assert!(c.gateway.is_some(), "gateway must be filled in");
            pinned.extend(c.gateway);
            pinned.extend(c.aux.values().copied());
            for p in pinned.iter() {
                assert!(pools.is_allocated(*p));
            }
        }
        let shapes = pools
            .pools()
            .iter()
            .map(|p| (p.subnet(), p.range()))
            .collect();
        State {
            pools,
            shapes,
            pinned,
            held: BTreeSet::new(),
        }
    }
}

fn check_validated(cfgs: &[SubnetConfig], n_raw: usize) {
    assert_eq!(cfgs.len(), n_raw);
    for (i, c) in cfgs.iter().enumerate() {
        assert_eq!(c.subnet, c.subnet.trunc());
        if let Some(r) = c.ip_range {
            assert!(c.subnet.contains(&r));
        }
        for a in c.gateway.iter().chain(c.aux.values()) {
            assert!(c.subnet.contains(a));
        }
        for d in &cfgs[i + 1..] {
            assert!(!overlaps(&c.subnet, &d.subnet));
        }
    }
}

fn build(state: &mut Option<State>, cfgs: &[SubnetConfig]) {
    if let Ok((pools, filled)) = NetworkPools::new(cfgs) {
        assert_eq!(filled.len(), cfgs.len());
        *state = Some(State::new(pools, &filled));
    }
}

fn allocate(st: &mut State, v6: bool, preferred: Option<FAddr>) {
    let pref = preferred.map(FAddr::ip);
    match st.pools.allocate(v6, pref) {
        Ok((a, subnet)) => {
            assert!(st.held.insert(a), "{a} handed out twice");
            assert!(!st.pinned.contains(&a), "pinned {a} handed out");
            assert!(subnet.contains(&a));
            assert_eq!(a.is_ipv6(), v6);
            match pref {
                Some(p) => assert_eq!(a, p),
                None => assert!(st
                    .shapes
                    .iter()
                    .any(|(s, r)| *s == subnet && r.contains(&a))),
            }
            // Network and IPv4 broadcast addresses are never handed out.
            let net = subnet.network();
            let v4_small = !v6 && subnet.prefix_len() >= 31;
            if !v4_small {
                assert_ne!(a, net);
            }
            if !v6 && !v4_small {
                assert_ne!(a, subnet.broadcast());
            }
        }
        Err(IpamError::AddressInUse(a)) => {
            assert!(st.held.contains(&a) || st.pools.is_allocated(a));
        }
        Err(IpamError::OutOfRange(a)) => {
            assert!(a.is_ipv6() != v6 || !st.shapes.iter().any(|(s, _)| s.contains(&a)));
        }
        Err(IpamError::Exhausted) | Err(IpamError::NoSubnetForFamily { .. }) => {
            assert!(pref.is_none());
        }
        Err(e) => panic!("unexpected allocate error {e:?}"),
    }
}

fn choose(pools: &[(FNet, u8)], allocated: &[FNet], reserved: &[FNet], v6: bool) {
    let pools: Vec<PoolSpec> = pools
        .iter()
        .map(|&(n, size)| PoolSpec {
            base: n.net(),
            size,
        })
        .collect();
    let allocated: Vec<IpNet> = allocated.iter().map(|n| n.net()).collect();
    let reserved: Vec<IpNet> = reserved.iter().map(|n| n.net()).collect();
    match choose_subnet(&pools, &allocated, &reserved, v6) {
        Ok(s) => {
            assert_eq!(s.addr().is_ipv6(), v6);
            assert_eq!(s, s.trunc());
            assert!(!allocated.iter().chain(&reserved).any(|b| overlaps(b, &s)));
            assert!(pools
                .iter()
                .any(|p| p.size == s.prefix_len() && p.base.contains(&s)));
        }
        Err(IpamError::NoMoreSubnets) | Err(IpamError::InvalidPool { .. }) => {}
        Err(e) => panic!("unexpected choose_subnet error {e:?}"),
    }
}

fuzz_target!(|ops: Vec<Op>| {
    let mut state: Option<State> = None;
    for op in ops.into_iter().take(MAX_OPS) {
        match op {
            Op::Validate(raws) => {
                let raws: Vec<RawSubnetConfig> = raws.iter().map(FRaw::raw).collect();
                match validate(&raws) {
                    Ok(cfgs) => check_validated(&cfgs, raws.len()),
                    Err(IpamError::InvalidConfig(errs)) => assert!(!errs.is_empty()),
                    Err(e) => panic!("unexpected validate error {e:?}"),
                }
            }
            Op::ValidateAndBuild(raws) => {
                let raws: Vec<RawSubnetConfig> = raws.iter().map(FRaw::raw).collect();
                if let Ok(cfgs) = validate(&raws) {
                    check_validated(&cfgs, raws.len());
                    build(&mut state, &cfgs);
                }
            }
            Op::Build(cfgs) => {
                let cfgs: Vec<SubnetConfig> = cfgs.iter().map(FConfig::config).collect();
                build(&mut state, &cfgs);
            }
            Op::Allocate { v6, preferred } => {
                if let Some(st) = state.as_mut() {
                    allocate(st, v6, preferred);
                }
            }
            Op::Release(a) => {
                if let Some(st) = state.as_mut() {
                    let a = a.ip();
                    let was_held = st.held.remove(&a);
                    assert_eq!(st.pools.release(a), was_held);
                }
            }
            Op::ReleaseHeld(i) => {
                if let Some(st) = state.as_mut() {
                    if let Some(&a) = st.held.iter().nth(usize::from(i) % st.held.len().max(1)) {
                        assert!(st.pools.release(a));
                        st.held.remove(&a);
                        assert!(!st.pools.is_allocated(a));
                    }
                }
            }
            Op::Choose {
                pools,
                allocated,
                reserved,
                v6,
            } => choose(&pools, &allocated, &reserved, v6),
        }
    }
});
