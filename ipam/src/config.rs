//! Validation of user-typed subnet configurations with Docker's texts
//! (moby `api/types/network/ipam.go`, `ValidateIPAM`).

use std::collections::BTreeMap;
use std::net::IpAddr;

use ipnet::IpNet;

use crate::addr::{bounds, broadcast_reserved, is_v6, network_reserved, to_u128};
use crate::IpamError;

/// Docker CLI's text for two configs whose subnets overlap.
pub const OVERLAPPING_SUBNETS_MSG: &str =
    "multiple overlapping subnet configuration is not supported";

/// Longest prefix-length text Go's netip accepts ("128").
const MAX_PREFIX_DIGITS: usize = 3;

/// A subnet configuration as the user typed it (strings), e.g. from
/// `docker network create --subnet … --ip-range … --gateway … --aux-address n=ip`.
#[derive(Debug, Clone, Default)]
pub struct RawSubnetConfig {
    pub subnet: String,
    pub ip_range: Option<String>,
    pub gateway: Option<String>,
    pub aux: BTreeMap<String, String>,
}

/// A validated configuration: subnet and ip-range have no host bits set, the range lies in
/// the subnet, gateway and aux addresses lie in the subnet and are usable host addresses.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SubnetConfig {
    pub subnet: IpNet,
    pub ip_range: Option<IpNet>,
    pub gateway: Option<IpAddr>,
    pub aux: BTreeMap<String, IpAddr>,
}

fn family(v6: bool) -> &'static str {
    if v6 {
        "IPv6"
    } else {
        "IPv4"
    }
}

/// Go `netip.ParsePrefix`: `addr/bits`, no zone, bits in decimal without sign or leading
/// zeros. Host bits are kept (the caller reports them). Rust's address parser is as strict
/// as Go's (no octal-looking IPv4 octets, no zones).
fn parse_prefix(s: &str) -> Option<IpNet> {
    let (addr, bits) = s.rsplit_once('/')?;
    let addr: IpAddr = addr.parse().ok()?;
    let digits_ok = !bits.is_empty()
        && bits.len() <= MAX_PREFIX_DIGITS
        && bits.bytes().all(|b| b.is_ascii_digit())
        && (bits.len() == 1 || !bits.starts_with('0'));
    if !digits_ok {
        return None;
    }
    let bits: u8 = bits.parse().ok()?;
    IpNet::new(addr, bits).ok()
}

/// Docker's `validateAddress` plus two checks Docker leaves to the allocator (where they
/// surface as "Address already in use"): the network and IPv4 broadcast addresses.
fn address_error(raw: &str, subnet: &IpNet) -> Option<String> {
    let Ok(addr) = raw.parse::<IpAddr>() else {
        return Some("invalid address".to_string());
    };
    let v6 = is_v6(subnet);
    if addr.is_ipv6() != v6 {
        return Some(format!("parent subnet is an {} block", family(v6)));
    }
    let (lo, hi) = bounds(subnet);
    let a = to_u128(addr);
    if a < lo || a > hi {
        return Some(format!(
            "parent subnet {subnet} doesn't contain this address"
        ));
    }
    if a == lo && network_reserved(subnet) {
        return Some(format!("it is the network address of subnet {subnet}"));
    }
    if a == hi && broadcast_reserved(subnet) {
        return Some(format!("it is the broadcast address of subnet {subnet}"));
    }
    None
}

/// Docker's `validateIPRange`; several errors for one range are possible.
fn range_errors(raw: &str, subnet: &IpNet, errs: &mut Vec<String>) -> Option<IpNet> {
    let Some(range) = parse_prefix(raw) else {
        errs.push(format!(
            "invalid ip-range {raw}: invalid CIDR block notation"
        ));
        return None;
    };
    let v6 = is_v6(subnet);
    if is_v6(&range) != v6 {
        errs.push(format!(
            "invalid ip-range {raw}: parent subnet is an {} block",
            family(v6)
        ));
        return None;
    }
    let before = errs.len();
    if range.prefix_len() < subnet.prefix_len() {
        errs.push(format!(
            "invalid ip-range {raw}: CIDR block is bigger than its parent subnet {subnet}"
        ));
    }
    if range != range.trunc() {
        errs.push(format!(
            "invalid ip-range {range}: it should be {}",
            range.trunc()
        ));
    }
    // Docker tests Overlaps, not Contains: a bigger range is reported as "bigger" only.
    if !crate::overlaps(subnet, &range) {
        errs.push(format!(
            "invalid ip-range {raw}: parent subnet {subnet} doesn't contain ip-range"
        ));
    }
    (errs.len() == before).then_some(range)
}

/// Validates one config, appending its errors; returns it only if it had none.
fn validate_one(
    raw: &RawSubnetConfig,
    errs: &mut Vec<String>,
) -> (Option<IpNet>, Option<SubnetConfig>) {
    let Some(subnet) = parse_prefix(&raw.subnet) else {
        errs.push(format!(
            "invalid subnet {}: invalid CIDR block notation",
            raw.subnet
        ));
        return (None, None);
    };
    let before = errs.len();
    if subnet != subnet.trunc() {
        errs.push(format!(
            "invalid subnet {subnet}: it should be {}",
            subnet.trunc()
        ));
    }
    let ip_range = match &raw.ip_range {
        Some(r) if !r.is_empty() => range_errors(r, &subnet, errs),
        _ => None,
    };
    let gateway = match &raw.gateway {
        Some(g) if !g.is_empty() => match address_error(g, &subnet) {
            Some(e) => {
                errs.push(format!("invalid gateway {g}: {e}"));
                None
            }
            None => g.parse().ok(),
        },
        _ => None,
    };
    let mut aux = BTreeMap::new();
    for (name, value) in &raw.aux {
        match address_error(value, &subnet) {
            Some(e) => errs.push(format!("invalid auxiliary address {name}: {e}")),
            None => {
                if let Ok(a) = value.parse() {
                    aux.insert(name.clone(), a);
                }
            }
        }
    }
    let masked = subnet.trunc();
    if errs.len() != before {
        return (Some(masked), None);
    }
    let cfg = SubnetConfig {
        subnet: masked,
        ip_range,
        gateway,
        aux,
    };
    (Some(masked), Some(cfg))
}

/// Whether any two of `nets` overlap; O(n log n) so a huge request cannot stall the daemon.
pub(crate) fn any_overlap(nets: &[IpNet]) -> bool {
    for v6 in [false, true] {
        let mut iv: Vec<(u128, u128)> =
            nets.iter().filter(|n| is_v6(n) == v6).map(bounds).collect();
        iv.sort_unstable();
        if iv.windows(2).any(|w| matches!(w, [a, b] if b.0 <= a.1)) {
            return true;
        }
    }
    false
}

/// Validate every entry and collect ALL errors into `InvalidConfig` with Docker's texts.
/// Two configs whose subnets overlap add [`OVERLAPPING_SUBNETS_MSG`] (a client-side check
/// in Docker). Empty `ip_range`/`gateway` strings count as absent, like Docker's JSON.
pub fn validate(raw: &[RawSubnetConfig]) -> Result<Vec<SubnetConfig>, IpamError> {
    let mut errs = Vec::new();
    let mut subnets = Vec::with_capacity(raw.len());
    let mut out = Vec::with_capacity(raw.len());
    for cfg in raw {
        let (subnet, valid) = validate_one(cfg, &mut errs);
        subnets.extend(subnet);
        out.extend(valid);
    }
    if any_overlap(&subnets) {
        errs.push(OVERLAPPING_SUBNETS_MSG.to_string());
    }
    if !errs.is_empty() {
        return Err(IpamError::InvalidConfig(errs));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(subnet: &str) -> RawSubnetConfig {
        RawSubnetConfig {
            subnet: subnet.into(),
            ..Default::default()
        }
    }

    fn errors(cfgs: &[RawSubnetConfig]) -> Vec<String> {
        match validate(cfgs) {
            Err(IpamError::InvalidConfig(e)) => e,
            other => panic!("expected InvalidConfig, got {other:?}"),
        }
    }

    #[test]
    fn valid_full_config() {
        let mut r = raw("10.15.20.0/24");
        r.gateway = Some("10.15.20.1".into());
        r.ip_range = Some("10.15.20.128/25".into());
        r.aux.insert("1".into(), "10.15.20.2".into());
        r.aux.insert("2".into(), "10.15.20.3".into());
        let got = validate(&[r]).unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].subnet, "10.15.20.0/24".parse::<IpNet>().unwrap());
        assert_eq!(got[0].ip_range, Some("10.15.20.128/25".parse().unwrap()));
        assert_eq!(got[0].gateway, Some("10.15.20.1".parse().unwrap()));
        assert_eq!(got[0].aux["2"], "10.15.20.3".parse::<IpAddr>().unwrap());
    }

    #[test]
    fn empty_strings_are_absent() {
        let mut r = raw("fd00:1::/64");
        r.gateway = Some(String::new());
        r.ip_range = Some(String::new());
        let got = validate(&[r]).unwrap();
        assert_eq!(got[0].gateway, None);
        assert_eq!(got[0].ip_range, None);
        assert_eq!(validate(&[]).unwrap(), vec![]);
    }

    #[test]
    fn bad_subnet_notation() {
        for s in [
            "foobar",
            "",
            "10.0.0.0",
            "10.0.0.0/33",
            "10.0.0.0/024",
            "10.0.0.0/+8",
            "010.0.0.0/8",
            "fe80::%eth0/64",
            "::/129",
            "10.0.0.0/ 8",
        ] {
            assert_eq!(
                errors(&[raw(s)]),
                vec![format!("invalid subnet {s}: invalid CIDR block notation")],
                "{s:?}"
            );
        }
        assert!(validate(&[raw("0.0.0.0/0")]).is_ok());
        assert!(validate(&[raw("::/0")]).is_ok());
    }

    #[test]
    fn subnet_with_host_bits() {
        assert_eq!(
            errors(&[raw("10.10.10.0/8")]),
            vec!["invalid subnet 10.10.10.0/8: it should be 10.0.0.0/8"]
        );
        assert_eq!(
            errors(&[raw("10.0.0.1/24")]),
            vec!["invalid subnet 10.0.0.1/24: it should be 10.0.0.0/24"]
        );
        assert_eq!(
            errors(&[raw("fd00::1/64")]),
            vec!["invalid subnet fd00::1/64: it should be fd00::/64"]
        );
    }

    #[test]
    fn docker_invalid_data_case() {
        let mut r = raw("10.10.10.0/24");
        r.ip_range = Some("foobar".into());
        r.gateway = Some("1001.10.5.3".into());
        r.aux.insert("DefaultGatewayIPv4".into(), "dummy".into());
        let e = errors(&[r]);
        assert_eq!(
            e,
            vec![
                "invalid ip-range foobar: invalid CIDR block notation",
                "invalid gateway 1001.10.5.3: invalid address",
                "invalid auxiliary address DefaultGatewayIPv4: invalid address",
            ]
        );
        assert_eq!(
            IpamError::InvalidConfig(e).to_string(),
            "invalid network config:\n* invalid ip-range foobar: invalid CIDR block notation\n\
             * invalid gateway 1001.10.5.3: invalid address\n\
             * invalid auxiliary address DefaultGatewayIPv4: invalid address"
        );
    }

    #[test]
    fn docker_family_mismatch_case() {
        let mut r = raw("10.10.10.0/24");
        r.ip_range = Some("2001:db8::/32".into());
        r.gateway = Some("2001:db8::1".into());
        r.aux
            .insert("DefaultGatewayIPv4".into(), "2001:db8::1".into());
        assert_eq!(
            errors(&[r]),
            vec![
                "invalid ip-range 2001:db8::/32: parent subnet is an IPv4 block",
                "invalid gateway 2001:db8::1: parent subnet is an IPv4 block",
                "invalid auxiliary address DefaultGatewayIPv4: parent subnet is an IPv4 block",
            ]
        );
        let mut r = raw("2001:db8::/64");
        r.ip_range = Some("10.0.0.0/24".into());
        r.gateway = Some("10.0.0.1".into());
        assert_eq!(
            errors(&[r]),
            vec![
                "invalid ip-range 10.0.0.0/24: parent subnet is an IPv6 block",
                "invalid gateway 10.0.0.1: parent subnet is an IPv6 block",
            ]
        );
    }

    #[test]
    fn docker_range_bigger_case() {
        let mut r = raw("10.10.10.0/24");
        r.ip_range = Some("10.0.0.0/8".into());
        assert_eq!(
            errors(&[r]),
            vec!["invalid ip-range 10.0.0.0/8: CIDR block is bigger than its parent subnet 10.10.10.0/24"]
        );
    }

    #[test]
    fn docker_out_of_range_case() {
        let mut r = raw("10.0.0.0/8");
        r.ip_range = Some("192.168.0.1/24".into());
        r.gateway = Some("192.168.0.1".into());
        r.aux
            .insert("DefaultGatewayIPv4".into(), "192.168.0.1".into());
        assert_eq!(
            errors(&[r]),
            vec![
                "invalid ip-range 192.168.0.1/24: it should be 192.168.0.0/24",
                "invalid ip-range 192.168.0.1/24: parent subnet 10.0.0.0/8 doesn't contain ip-range",
                "invalid gateway 192.168.0.1: parent subnet 10.0.0.0/8 doesn't contain this address",
                "invalid auxiliary address DefaultGatewayIPv4: parent subnet 10.0.0.0/8 doesn't contain this address",
            ]
        );
    }

    #[test]
    fn range_with_host_bits_inside_subnet() {
        let mut r = raw("10.0.0.0/8");
        r.ip_range = Some("10.0.0.1/16".into());
        assert_eq!(
            errors(&[r]),
            vec!["invalid ip-range 10.0.0.1/16: it should be 10.0.0.0/16"]
        );
        let mut r = raw("10.0.0.0/24");
        r.ip_range = Some("10.0.0.0/33".into());
        assert_eq!(
            errors(&[r]),
            vec!["invalid ip-range 10.0.0.0/33: invalid CIDR block notation"]
        );
    }

    #[test]
    fn unmasked_subnet_still_checks_the_rest() {
        let mut r = raw("10.10.10.0/8");
        r.gateway = Some("11.0.0.1".into());
        assert_eq!(
            errors(&[r]),
            vec![
                "invalid subnet 10.10.10.0/8: it should be 10.0.0.0/8",
                "invalid gateway 11.0.0.1: parent subnet 10.10.10.0/8 doesn't contain this address",
            ]
        );
    }

    #[test]
    fn gateway_on_network_or_broadcast() {
        let mut r = raw("10.0.0.0/24");
        r.gateway = Some("10.0.0.0".into());
        r.aux.insert("b".into(), "10.0.0.255".into());
        assert_eq!(
            errors(&[r]),
            vec![
                "invalid gateway 10.0.0.0: it is the network address of subnet 10.0.0.0/24",
                "invalid auxiliary address b: it is the broadcast address of subnet 10.0.0.0/24",
            ]
        );
        let mut r = raw("fd00::/64");
        r.gateway = Some("fd00::".into());
        assert_eq!(
            errors(&[r]),
            vec!["invalid gateway fd00::: it is the network address of subnet fd00::/64"]
        );
        // The last IPv6 address is an ordinary host.
        let mut r = raw("fd00::/64");
        r.gateway = Some("fd00::ffff:ffff:ffff:ffff".into());
        assert!(validate(&[r]).is_ok());
        // RFC 3021: both addresses of a /31 (and the /32 one) are hosts.
        for (s, g) in [
            ("10.0.0.0/31", "10.0.0.0"),
            ("10.0.0.0/31", "10.0.0.1"),
            ("10.0.0.7/32", "10.0.0.7"),
        ] {
            let mut r = raw(s);
            r.gateway = Some(g.into());
            assert!(validate(&[r]).is_ok(), "{s} {g}");
        }
    }

    #[test]
    fn overlapping_configs() {
        assert_eq!(
            errors(&[raw("10.0.0.0/16"), raw("10.0.5.0/24")]),
            vec![OVERLAPPING_SUBNETS_MSG]
        );
        assert!(validate(&[raw("10.0.0.0/24"), raw("10.0.1.0/24"), raw("fd00::/64")]).is_ok());
        // All errors at once: a bad entry and an overlap.
        assert_eq!(
            errors(&[raw("10.0.0.0/16"), raw("x"), raw("10.0.0.0/16")]),
            vec![
                "invalid subnet x: invalid CIDR block notation".to_string(),
                OVERLAPPING_SUBNETS_MSG.to_string(),
            ]
        );
    }
}
