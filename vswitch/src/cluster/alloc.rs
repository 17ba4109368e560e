//! Choosing a VNI or an address from what is already taken (pure, no I/O). The I/O side
//! lists the taken keys, asks these functions, then claims the answer with a
//! create-if-absent transaction and asks again if it lost a race.

use std::collections::BTreeSet;
use std::net::IpAddr;

use ipam::{AddressPool, IpamError};
use ipnet::IpNet;

use super::ClusterError;

/// First VNI handed out automatically (Docker's classic KV-store overlay started at 256).
pub const VNI_FIRST: u32 = 256;
/// Largest VNI (24 bits).
pub const VNI_MAX: u32 = (1 << 24) - 1;

/// A VNI a user may request: 1 ..= 2^24-1.
pub fn check_vni(vni: u32) -> Result<(), ClusterError> {
    if vni == 0 || vni > VNI_MAX {
        return Err(ClusterError::BadVni(vni));
    }
    Ok(())
}

/// The `skip`-th (0: lowest) free VNI in `VNI_FIRST ..= VNI_MAX`, or `None` when there are
/// not that many left.
pub fn choose_vni(taken: &BTreeSet<u32>, skip: usize) -> Option<u32> {
    let mut left = skip;
    let mut cand = VNI_FIRST;
    // Walk the taken VNIs at or above the start: each gap holds free candidates.
    for &t in taken.range(VNI_FIRST..=VNI_MAX) {
        if t < cand {
            continue;
        }
        let gap = (t - cand) as usize;
        if left < gap {
            return Some(cand + left as u32);
        }
        left -= gap;
        cand = t + 1;
    }
    if cand > VNI_MAX || left > (VNI_MAX - cand) as usize {
        return None;
    }
    Some(cand + left as u32)
}

/// Choose an address of `subnet`: `requested` if it is free (anywhere in the subnet, as
/// Docker does), else the `skip`-th (0: lowest) free host address of `range` (the whole
/// subnet if none). Never the network address, the IPv4 broadcast address, a `reserved`
/// address (gateway, aux addresses) or a `taken` one. `taken` and `reserved` outside the
/// subnet are ignored.
pub fn choose_ip(
    subnet: IpNet,
    range: Option<IpNet>,
    reserved: &[IpAddr],
    taken: &[IpAddr],
    requested: Option<IpAddr>,
    skip: usize,
) -> Result<IpAddr, ClusterError> {
    let mut pool = AddressPool::new(subnet, range).map_err(ClusterError::Ipam)?;
    for &a in reserved.iter().chain(taken) {
        // Out of subnet or already reserved: nothing to do.
        let _ = pool.reserve(a);
    }
    let map = |e: IpamError| match e {
        IpamError::AddressInUse(a) => ClusterError::AddressInUse(a),
        IpamError::Exhausted => ClusterError::PoolExhausted,
        other => ClusterError::Ipam(other),
    };
    if let Some(a) = requested {
        return pool.allocate(Some(a)).map_err(map);
    }
    let mut got = pool.allocate(None).map_err(map)?;
    for _ in 0..skip {
        match pool.allocate(None) {
            Ok(a) => got = a,
            // Fewer free addresses than `skip`: the last one found.
            Err(_) => break,
        }
    }
    Ok(got)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ips(v: &[&str]) -> Vec<IpAddr> {
        v.iter().map(|s| s.parse().unwrap()).collect()
    }

    #[test]
    fn vni_lowest_free() {
        let mut taken = BTreeSet::new();
        assert_eq!(choose_vni(&taken, 0), Some(256));
        taken.insert(256);
        assert_eq!(choose_vni(&taken, 0), Some(257));
        taken.insert(258);
        assert_eq!(choose_vni(&taken, 0), Some(257));
        assert_eq!(choose_vni(&taken, 1), Some(259));
        // VNIs below the automatic range do not matter.
        taken.insert(5);
        assert_eq!(choose_vni(&taken, 0), Some(257));
        taken.insert(257);
        assert_eq!(choose_vni(&taken, 0), Some(259));
    }

    #[test]
    fn vni_exhaustion() {
        let mut taken = BTreeSet::new();
        assert_eq!(
            choose_vni(&taken, (VNI_MAX - VNI_FIRST) as usize),
            Some(VNI_MAX)
        );
        assert_eq!(choose_vni(&taken, (VNI_MAX - VNI_FIRST + 1) as usize), None);
        taken.insert(VNI_MAX);
        assert_eq!(choose_vni(&taken, (VNI_MAX - VNI_FIRST) as usize), None);
        taken.insert(VNI_MAX - 2);
        assert_eq!(
            choose_vni(&taken, (VNI_MAX - VNI_FIRST - 2) as usize),
            Some(VNI_MAX - 1)
        );
        assert_eq!(choose_vni(&taken, (VNI_MAX - VNI_FIRST - 1) as usize), None);
    }

    #[test]
    fn vni_bounds() {
        assert!(check_vni(1).is_ok());
        assert!(check_vni(VNI_MAX).is_ok());
        assert!(matches!(check_vni(0), Err(ClusterError::BadVni(0))));
        assert!(check_vni(VNI_MAX + 1).is_err());
    }

    #[test]
    fn ip_lowest_free_skips_reserved() {
        let subnet: IpNet = "10.0.0.0/24".parse().unwrap();
        let gw = ips(&["10.0.0.1"]);
        let pick = |taken: &[IpAddr], skip| choose_ip(subnet, None, &gw, taken, None, skip);
        assert_eq!(pick(&[], 0).unwrap(), ips(&["10.0.0.2"])[0]);
        assert_eq!(
            pick(&ips(&["10.0.0.2", "10.0.0.4"]), 0).unwrap(),
            ips(&["10.0.0.3"])[0]
        );
        assert_eq!(
            pick(&ips(&["10.0.0.2", "10.0.0.4"]), 1).unwrap(),
            ips(&["10.0.0.5"])[0]
        );
        // Taken addresses of other subnets are ignored.
        assert_eq!(pick(&ips(&["10.9.0.2"]), 0).unwrap(), ips(&["10.0.0.2"])[0]);
    }

    #[test]
    fn ip_range_and_exhaustion() {
        let subnet: IpNet = "10.0.0.0/29".parse().unwrap();
        let range: IpNet = "10.0.0.4/30".parse().unwrap();
        let gw = ips(&["10.0.0.1"]);
        let a = choose_ip(subnet, Some(range), &gw, &[], None, 0).unwrap();
        assert_eq!(a, ips(&["10.0.0.4"])[0]);
        // .7 is the broadcast address: only .4 .5 .6.
        let taken = ips(&["10.0.0.4", "10.0.0.5", "10.0.0.6"]);
        assert!(matches!(
            choose_ip(subnet, Some(range), &gw, &taken, None, 0),
            Err(ClusterError::PoolExhausted)
        ));
        // skip beyond the free count: the last free one.
        let a = choose_ip(subnet, Some(range), &gw, &taken[..1], None, 10).unwrap();
        assert_eq!(a, ips(&["10.0.0.6"])[0]);
    }

    #[test]
    fn ip_requested() {
        let subnet: IpNet = "10.0.0.0/24".parse().unwrap();
        let gw = ips(&["10.0.0.1"]);
        let want = ips(&["10.0.0.77"])[0];
        assert_eq!(
            choose_ip(subnet, None, &gw, &[], Some(want), 0).unwrap(),
            want
        );
        assert!(matches!(
            choose_ip(subnet, None, &gw, &[want], Some(want), 0),
            Err(ClusterError::AddressInUse(a)) if a == want
        ));
        // The gateway and the network/broadcast addresses are in use.
        for s in ["10.0.0.1", "10.0.0.0", "10.0.0.255"] {
            let a = ips(&[s])[0];
            assert!(matches!(
                choose_ip(subnet, None, &gw, &[], Some(a), 0),
                Err(ClusterError::AddressInUse(_))
            ));
        }
        assert!(matches!(
            choose_ip(subnet, None, &gw, &[], Some(ips(&["10.1.0.1"])[0]), 0),
            Err(ClusterError::Ipam(IpamError::OutOfRange(_)))
        ));
    }

    #[test]
    fn ip_v6() {
        let subnet: IpNet = "fd00:1::/64".parse().unwrap();
        let gw = ips(&["fd00:1::1"]);
        assert_eq!(
            choose_ip(subnet, None, &gw, &[], None, 0).unwrap(),
            ips(&["fd00:1::2"])[0]
        );
    }
}
