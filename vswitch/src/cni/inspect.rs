//! What a namespace holds (links, addresses, routes), read from a thread that entered it —
//! `getifaddrs(3)` and `/proc/thread-self/net/{route,ipv6_route}` — and CHECK's comparison of
//! it with a result. The parsers are pure and never panic.

use super::result::CniResult;
use ipnet::IpNet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::Path;

#[derive(Debug, thiserror::Error)]
pub enum InspectError {
    #[error("cannot enter namespace {path}: {source}")]
    Enter {
        path: String,
        source: crate::netns::NetnsError,
    },
    #[error("reading namespace {path}: {what}: {source}")]
    Read {
        path: String,
        what: &'static str,
        source: std::io::Error,
    },
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Link {
    pub name: String,
    pub mac: String,
    pub up: bool,
    pub addrs: Vec<IpNet>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NsRoute {
    pub dst: IpNet,
    pub gw: Option<IpAddr>,
    pub dev: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NsView {
    pub links: Vec<Link>,
    pub routes: Vec<NsRoute>,
}

impl NsView {
    pub fn link(&self, name: &str) -> Option<&Link> {
        self.links.iter().find(|l| l.name == name)
    }
}

/// Read the namespace at `netns`.
pub fn read(netns: &Path) -> Result<NsView, InspectError> {
    let p = netns.display().to_string();
    let p2 = p.clone();
    crate::netns::run_in(netns, move || -> Result<NsView, InspectError> {
        let rd = |f: &'static str| {
            std::fs::read_to_string(format!("/proc/thread-self/net/{f}")).map_err(|source| {
                InspectError::Read {
                    path: p2.clone(),
                    what: f,
                    source,
                }
            })
        };
        let links = links().map_err(|source| InspectError::Read {
            path: p2.clone(),
            what: "getifaddrs",
            source,
        })?;
        let mut routes = parse_route_v4(&rd("route")?);
        // No IPv6 in the namespace is not an error.
        routes.extend(parse_route_v6(&rd("ipv6_route").unwrap_or_default()));
        Ok(NsView { links, routes })
    })
    .map_err(|source| InspectError::Enter { path: p, source })?
}

fn links() -> std::io::Result<Vec<Link>> {
    let mut head: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs fills `head` with a list freed below by freeifaddrs.
    if unsafe { libc::getifaddrs(&mut head) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    let mut out: Vec<Link> = Vec::new();
    let mut cur = head;
    while !cur.is_null() {
        // SAFETY: `cur` is a node of the list getifaddrs returned; fields are valid or null.
        let ifa = unsafe { &*cur };
        cur = ifa.ifa_next;
        if ifa.ifa_name.is_null() {
            continue;
        }
        // SAFETY: a NUL-terminated name from the kernel.
        let name = unsafe { std::ffi::CStr::from_ptr(ifa.ifa_name) }
            .to_string_lossy()
            .into_owned();
        let i = match out.iter().position(|l| l.name == name) {
            Some(i) => i,
            None => {
                out.push(Link {
                    name,
                    ..Default::default()
                });
                out.len() - 1
            }
        };
        let l = &mut out[i];
        l.up |= ifa.ifa_flags & libc::IFF_UP as u32 != 0;
        if ifa.ifa_addr.is_null() {
            continue;
        }
        // SAFETY: ifa_addr points to a sockaddr whose family says its real type.
        unsafe {
            match (*ifa.ifa_addr).sa_family as i32 {
                libc::AF_PACKET => {
                    let ll = &*(ifa.ifa_addr as *const libc::sockaddr_ll);
                    let n = (ll.sll_halen as usize).min(ll.sll_addr.len());
                    l.mac = ll.sll_addr[..n]
                        .iter()
                        .map(|b| format!("{b:02x}"))
                        .collect::<Vec<_>>()
                        .join(":");
                }
                libc::AF_INET => {
                    let a = &*(ifa.ifa_addr as *const libc::sockaddr_in);
                    let ip = Ipv4Addr::from(u32::from_be(a.sin_addr.s_addr));
                    let plen = if ifa.ifa_netmask.is_null() {
                        32
                    } else {
                        let m = &*(ifa.ifa_netmask as *const libc::sockaddr_in);
                        u32::from_be(m.sin_addr.s_addr).count_ones() as u8
                    };
                    if let Ok(n) = IpNet::new(IpAddr::V4(ip), plen) {
                        l.addrs.push(n);
                    }
                }
                libc::AF_INET6 => {
                    let a = &*(ifa.ifa_addr as *const libc::sockaddr_in6);
                    let ip = Ipv6Addr::from(a.sin6_addr.s6_addr);
                    let plen = if ifa.ifa_netmask.is_null() {
                        128
                    } else {
                        let m = &*(ifa.ifa_netmask as *const libc::sockaddr_in6);
                        m.sin6_addr
                            .s6_addr
                            .iter()
                            .map(|b| b.count_ones())
                            .sum::<u32>() as u8
                    };
                    if let Ok(n) = IpNet::new(IpAddr::V6(ip), plen) {
                        l.addrs.push(n);
                    }
                }
                _ => {}
            }
        }
    }
    // SAFETY: the list from getifaddrs, freed once.
    unsafe { libc::freeifaddrs(head) };
    Ok(out)
}

/// `/proc/net/route`: Iface, Destination, Gateway, Flags, …, Mask (little-endian hex).
pub fn parse_route_v4(text: &str) -> Vec<NsRoute> {
    let hex = |s: &str| {
        u32::from_str_radix(s, 16)
            .ok()
            .map(|v| Ipv4Addr::from(v.swap_bytes()))
    };
    text.lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let (dst, gw, mask) = (hex(f.get(1)?)?, hex(f.get(2)?)?, hex(f.get(7)?)?);
            let plen = u32::from(mask).count_ones() as u8;
            Some(NsRoute {
                dst: IpNet::new(IpAddr::V4(dst), plen).ok()?,
                gw: (!gw.is_unspecified()).then_some(IpAddr::V4(gw)),
                dev: f.first()?.to_string(),
            })
        })
        .collect()
}

/// `/proc/net/ipv6_route`: dest, dest_plen, src, src_plen, nexthop, metric, refcnt, use,
/// flags, iface.
pub fn parse_route_v6(text: &str) -> Vec<NsRoute> {
    let addr = |s: &str| u128::from_str_radix(s, 16).ok().map(Ipv6Addr::from);
    text.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            if f.len() < 10 {
                return None;
            }
            let dst = addr(f[0])?;
            let plen = u8::from_str_radix(f[1], 16).ok()?;
            let gw = addr(f[4])?;
            Some(NsRoute {
                dst: IpNet::new(IpAddr::V6(dst), plen).ok()?,
                gw: (!gw.is_unspecified()).then_some(IpAddr::V6(gw)),
                dev: f[9].to_string(),
            })
        })
        .collect()
}

/// CHECK: the interface `ifname` of `result` is in `view`, up, with its MAC, its addresses,
/// and the routes through its gateways. Returns what differs.
pub fn check(view: &NsView, result: &CniResult, ifname: &str, netns: &str) -> Result<(), String> {
    let Some(idx) = result.interface_index(ifname, netns) else {
        return Err(format!("prevResult has no interface {ifname} in {netns}"));
    };
    let want = &result.interfaces[idx];
    let Some(link) = view.link(ifname) else {
        return Err(format!("interface {ifname} is missing from {netns}"));
    };
    if !link.up {
        return Err(format!("interface {ifname} is down"));
    }
    if !want.mac.is_empty() && !want.mac.eq_ignore_ascii_case(&link.mac) {
        return Err(format!(
            "interface {ifname} has MAC {} but ADD reported {}",
            link.mac, want.mac
        ));
    }
    let mut ours: Vec<IpNet> = Vec::new();
    for ip in result.ips.iter().filter(|i| i.interface == Some(idx)) {
        let a: IpNet = ip
            .address
            .parse()
            .map_err(|_| format!("prevResult address {:?} is not a CIDR", ip.address))?;
        if !link.addrs.contains(&a) {
            return Err(format!("interface {ifname} lacks address {a}"));
        }
        ours.push(a);
    }
    for r in &result.routes {
        let dst: IpNet = r
            .dst
            .parse()
            .map_err(|_| format!("prevResult route dst {:?} is not a CIDR", r.dst))?;
        let gw: Option<IpAddr> = match &r.gw {
            Some(g) => Some(
                g.parse()
                    .map_err(|_| format!("prevResult route gw {g:?} is not an address"))?,
            ),
            None => None,
        };
        // Only routes through our interface are ours to check.
        let Some(g) = gw.filter(|g| ours.iter().any(|n| n.contains(g))) else {
            continue;
        };
        let found = view
            .routes
            .iter()
            .any(|x| x.dst == dst.trunc() && x.gw == Some(g) && x.dev == ifname);
        if !found {
            return Err(format!("route {dst} via {g} dev {ifname} is missing"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROUTE: &str =
        "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n\
eth0\t00000000\t0100580A\t0003\t0\t0\t0\t00000000\t0\t0\t0\n\
eth0\t0000580A\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n\
garbage\n";

    #[test]
    fn parses_proc_routes() {
        let r = parse_route_v4(ROUTE);
        assert_eq!(r.len(), 2);
        assert_eq!(r[0].dst, "0.0.0.0/0".parse::<IpNet>().unwrap());
        assert_eq!(r[0].gw, Some("10.88.0.1".parse().unwrap()));
        assert_eq!(r[1].dst, "10.88.0.0/24".parse::<IpNet>().unwrap());
        assert_eq!(r[1].gw, None);
        let v6 = "00000000000000000000000000000000 00 00000000000000000000000000000000 00 fd000000000000000000000000000001 00000400 00000001 00000000 00000003 eth0\nshort line\n";
        let r = parse_route_v6(v6);
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].gw, Some("fd00::1".parse().unwrap()));
        assert!(parse_route_v4("").is_empty());
        assert!(parse_route_v6("zz zz zz zz zz zz zz zz zz zz").is_empty());
    }

    #[test]
    fn check_compares_result_and_namespace() {
        let result: CniResult = CniResult::from_value(&serde_json::json!({
            "cniVersion": "1.0.0",
            "interfaces": [{"name":"eth0","mac":"02:42:0a:58:00:02","sandbox":"/n"}],
            "ips": [{"address":"10.88.0.2/24","gateway":"10.88.0.1","interface":0}],
            "routes": [{"dst":"0.0.0.0/0","gw":"10.88.0.1"},{"dst":"192.168.0.0/16","gw":"172.16.0.1"}],
        }))
        .unwrap();
        let mut view = NsView {
            links: vec![Link {
                name: "eth0".into(),
                mac: "02:42:0a:58:00:02".into(),
                up: true,
                addrs: vec!["10.88.0.2/24".parse().unwrap()],
            }],
            routes: parse_route_v4(ROUTE),
        };
        check(&view, &result, "eth0", "/n").unwrap();
        assert!(check(&view, &result, "eth1", "/n").is_err());
        view.routes.remove(0);
        assert!(check(&view, &result, "eth0", "/n")
            .unwrap_err()
            .contains("route 0.0.0.0/0"));
        view.links[0].addrs.clear();
        assert!(check(&view, &result, "eth0", "/n")
            .unwrap_err()
            .contains("lacks address"));
        view.links[0].up = false;
        assert!(check(&view, &result, "eth0", "/n")
            .unwrap_err()
            .contains("down"));
    }
}
