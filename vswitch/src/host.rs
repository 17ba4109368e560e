//! Facts about the host (the daemon's network namespace) that IPAM must avoid: on-link IPv4
//! routes and resolv.conf nameservers (`netutils.InferReservedNetworks`).

use ipam::IpNet;
use std::net::{IpAddr, Ipv4Addr};

pub const PROC_ROUTE: &str = "/proc/net/route";
pub const RESOLV_CONF: &str = "/etc/resolv.conf";
/// /proc/net/route flag bits.
const RTF_UP: u32 = 0x1;
const RTF_GATEWAY: u32 = 0x2;

/// Prefixes a new network's subnet must not overlap.
pub fn reserved_prefixes() -> Vec<IpNet> {
    let mut out = on_link_routes(&std::fs::read_to_string(PROC_ROUTE).unwrap_or_default());
    out.extend(nameservers(
        &std::fs::read_to_string(RESOLV_CONF).unwrap_or_default(),
    ));
    out
}

/// On-link (no gateway), non-default IPv4 routes from /proc/net/route's text.
pub fn on_link_routes(text: &str) -> Vec<IpNet> {
    text.lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let hex = |i: usize| u32::from_str_radix(f.get(i)?, 16).ok();
            let (dst, flags, mask) = (hex(1)?, hex(3)?, hex(7)?);
            if flags & RTF_UP == 0 || flags & RTF_GATEWAY != 0 || mask == 0 {
                return None;
            }
            // The file holds addresses in host byte order (little endian on x86).
            let dst = Ipv4Addr::from(u32::from_be(dst.to_le()));
            let prefix = u32::from_be(mask.to_le()).count_ones() as u8;
            IpNet::new(IpAddr::V4(dst), prefix).ok().map(|n| n.trunc())
        })
        .collect()
}

/// Nameserver addresses as host prefixes.
pub fn nameservers(text: &str) -> Vec<IpNet> {
    text.lines()
        .filter_map(|l| {
            let mut it = l.split_whitespace();
            (it.next()? == "nameserver").then_some(())?;
            let addr: IpAddr = it.next()?.split('%').next()?.parse().ok()?;
            Some(IpNet::from(addr))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_proc_route() {
        let t =
            "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n\
eth0\t00000000\t010200C0\t0003\t0\t0\t0\t00000000\t0\t0\t0\n\
eth0\t000200C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n";
        assert_eq!(
            on_link_routes(t),
            vec!["192.0.2.0/24".parse::<IpNet>().unwrap()]
        );
    }

    #[test]
    fn parses_resolv_conf() {
        let t = "# x\nnameserver 10.255.255.53\nnameserver fe80::1%eth0\nsearch a\n";
        assert_eq!(
            nameservers(t),
            vec![
                "10.255.255.53/32".parse::<IpNet>().unwrap(),
                "fe80::1/128".parse::<IpNet>().unwrap()
            ]
        );
    }
}
