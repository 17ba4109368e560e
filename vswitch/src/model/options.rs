//! Driver options (`-o/--opt`): the keys vswitch understands, their defaults, and the checks
//! on their values. Options are stored verbatim, like Docker; this module only interprets them.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

pub const BRIDGE_NAME: &str = "com.docker.network.bridge.name";
pub const ENABLE_ICC: &str = "com.docker.network.bridge.enable_icc";
pub const ENABLE_IP_MASQUERADE: &str = "com.docker.network.bridge.enable_ip_masquerade";
pub const HOST_BINDING_IPV4: &str = "com.docker.network.bridge.host_binding_ipv4";
pub const DEFAULT_BRIDGE: &str = "com.docker.network.bridge.default_bridge";
pub const MTU: &str = "com.docker.network.driver.mtu";
pub const ENABLE_IPV4: &str = "com.docker.network.enable_ipv4";
pub const ENABLE_IPV6: &str = "com.docker.network.enable_ipv6";
/// Beyond Docker: the port kind of containers on this network: `tap` (default) or `veth`.
pub const PORT_KIND: &str = "io.vswitch.network.port_kind";
/// Beyond Docker: anti-spoofing on container ports (default on).
pub const ANTI_SPOOFING: &str = "io.vswitch.network.anti_spoofing";
/// Beyond Docker, per endpoint: `false` keeps this endpoint from giving the sandbox its
/// default route (CNI `isDefaultGateway: false`).
pub const ENDPOINT_DEFAULT_ROUTE: &str = "io.vswitch.endpoint.default_route";

/// Whether an endpoint's driver options let it give the default route (default yes).
pub fn endpoint_gives_default_route(opts: &BTreeMap<String, String>) -> bool {
    opts.get(ENDPOINT_DEFAULT_ROUTE)
        .and_then(|v| parse_bool(v))
        .unwrap_or(true)
}

/// Every `com.docker.network.*` key Docker (28) knows; anything else under that prefix is
/// probably a typo, so the daemon warns (and still stores it, as Docker does).
const KNOWN_DOCKER_KEYS: &[&str] = &[
    BRIDGE_NAME,
    ENABLE_ICC,
    ENABLE_IP_MASQUERADE,
    HOST_BINDING_IPV4,
    DEFAULT_BRIDGE,
    MTU,
    ENABLE_IPV4,
    ENABLE_IPV6,
    "com.docker.network.bridge.gateway_mode_ipv4",
    "com.docker.network.bridge.gateway_mode_ipv6",
    "com.docker.network.bridge.inhibit_ipv4",
    "com.docker.network.bridge.trusted_host_interfaces",
    "com.docker.network.container_iface_prefix",
    "com.docker.network.driver.overlay.vxlanid_list",
    "com.docker.network.subnet_size",
    "com.docker.network.advertise_addr_nmsgs",
    "com.docker.network.advertise_addr_ms",
    "com.docker.network.endpoint.ifname",
    "com.docker.network.endpoint.sysctls",
    "com.docker.network.enable_ipv4",
];

pub const DEFAULT_MTU: u32 = 1500;
/// Smallest MTU an IPv4 interface may have (RFC 791) and the largest a TAP accepts.
pub const MIN_MTU: u32 = 68;
pub const MAX_MTU: u32 = 65_535;
/// Linux interface names are at most 15 bytes (IFNAMSIZ - 1).
pub const MAX_IFNAME_LEN: usize = 15;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum OptionError {
    #[error("invalid value {value:?} for option {key}: must be true or false")]
    NotBool { key: String, value: String },
    #[error("invalid value {0:?} for option com.docker.network.driver.mtu: must be an integer between 68 and 65535")]
    BadMtu(String),
    #[error("invalid value {0:?} for option com.docker.network.bridge.host_binding_ipv4: must be an IPv4 address")]
    BadHostBinding(String),
    #[error(
        "invalid bridge name {0:?}: must be 1 to 15 characters, without '/', ':' or white space"
    )]
    BadBridgeName(String),
    #[error("invalid value {0:?} for option io.vswitch.network.port_kind: must be tap or veth")]
    BadPortKind(String),
}

/// Go's strconv.ParseBool, which Docker uses for these options.
pub fn parse_bool(s: &str) -> Option<bool> {
    match s {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

pub fn valid_ifname(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_IFNAME_LEN
        && name != "."
        && name != ".."
        && !name
            .bytes()
            .any(|b| b == b'/' || b == b':' || b.is_ascii_whitespace())
}

/// The interpreted bridge-driver options of one network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BridgeOptions {
    pub bridge_name: Option<String>,
    pub enable_icc: bool,
    pub enable_ip_masquerade: bool,
    pub host_binding_ipv4: Ipv4Addr,
    pub mtu: u32,
    pub anti_spoofing: bool,
}

impl BridgeOptions {
    pub fn parse(opts: &BTreeMap<String, String>) -> Result<Self, OptionError> {
        let boolean = |key: &str, default: bool| -> Result<bool, OptionError> {
            match opts.get(key) {
                None => Ok(default),
                Some(v) => parse_bool(v).ok_or_else(|| OptionError::NotBool {
                    key: key.to_string(),
                    value: v.clone(),
                }),
            }
        };
        let mtu = match opts.get(MTU) {
            None => DEFAULT_MTU,
            Some(v) => match v.parse::<u32>() {
                Ok(m) if (MIN_MTU..=MAX_MTU).contains(&m) => m,
                // Docker treats 0 as "unset".
                Ok(0) => DEFAULT_MTU,
                _ => return Err(OptionError::BadMtu(v.clone())),
            },
        };
        let host_binding_ipv4 = match opts.get(HOST_BINDING_IPV4) {
            None => Ipv4Addr::UNSPECIFIED,
            Some(v) => v
                .parse()
                .map_err(|_| OptionError::BadHostBinding(v.clone()))?,
        };
        let bridge_name = match opts.get(BRIDGE_NAME) {
            None => None,
            Some(n) if valid_ifname(n) => Some(n.clone()),
            Some(n) => return Err(OptionError::BadBridgeName(n.clone())),
        };
        if let Some(k) = opts.get(PORT_KIND) {
            if k != "tap" && k != "veth" {
                return Err(OptionError::BadPortKind(k.clone()));
            }
        }
        Ok(BridgeOptions {
            bridge_name,
            enable_icc: boolean(ENABLE_ICC, true)?,
            enable_ip_masquerade: boolean(ENABLE_IP_MASQUERADE, true)?,
            host_binding_ipv4,
            mtu,
            anti_spoofing: boolean(ANTI_SPOOFING, true)?,
        })
    }
}

/// Warnings for `com.docker.network.*` keys Docker does not know (likely typos), with the
/// closest known key as a suggestion.
pub fn misspelling_warnings(opts: &BTreeMap<String, String>) -> Vec<String> {
    opts.keys()
        .filter(|k| k.starts_with("com.docker.network.") && !KNOWN_DOCKER_KEYS.contains(&k.as_str()))
        .map(|k| {
            let best = KNOWN_DOCKER_KEYS
                .iter()
                .map(|known| (edit_distance(k, known), *known))
                .min();
            match best {
                Some((d, known)) if d <= 3 => format!(
                    "option {k:?} is not a known com.docker.network option (did you mean {known:?}?); it is stored but has no effect"
                ),
                _ => format!(
                    "option {k:?} is not a known com.docker.network option; it is stored but has no effect"
                ),
            }
        })
        .collect()
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != *cb);
            cur[j + 1] = sub.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(kv: &[(&str, &str)]) -> BTreeMap<String, String> {
        kv.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn defaults() {
        let o = BridgeOptions::parse(&BTreeMap::new()).unwrap();
        assert!(o.enable_icc && o.enable_ip_masquerade && o.anti_spoofing);
        assert_eq!(o.mtu, 1500);
        assert_eq!(o.host_binding_ipv4, Ipv4Addr::UNSPECIFIED);
    }

    #[test]
    fn bad_values_are_errors() {
        assert!(BridgeOptions::parse(&opts(&[(ENABLE_ICC, "maybe")])).is_err());
        assert!(BridgeOptions::parse(&opts(&[(MTU, "9")])).is_err());
        assert!(BridgeOptions::parse(&opts(&[(HOST_BINDING_IPV4, "x")])).is_err());
        assert!(BridgeOptions::parse(&opts(&[(BRIDGE_NAME, "a-very-long-bridge-name")])).is_err());
        let o = BridgeOptions::parse(&opts(&[(ENABLE_ICC, "false"), (MTU, "1400")])).unwrap();
        assert!(!o.enable_icc);
        assert_eq!(o.mtu, 1400);
    }

    #[test]
    fn typo_warns_with_suggestion() {
        let w = misspelling_warnings(&opts(&[
            ("com.docker.network.bridge.enable_ip_masquarade", "false"),
            (ENABLE_ICC, "true"),
            ("other.key", "x"),
        ]));
        assert_eq!(w.len(), 1);
        assert!(w[0].contains("did you mean \"com.docker.network.bridge.enable_ip_masquerade\""));
    }
}
