//! The key layout under the cluster prefix, and parsing keys back (pure, no I/O).
//!
//! Every component taken from user input (network names, endpoint names, ids) is escaped so
//! that it never contains `/`: `%` → `%25`, `/` → `%2F`. Addresses are written in their
//! canonical text form (`10.0.0.2`, `fd00::2`).

use std::net::IpAddr;

/// A parsed key of the layout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Key {
    /// `networks/<id>` → [`super::NetworkRecord`] (global).
    Network { id: String },
    /// `netnames/<name>` → network id (global).
    NetName { name: String },
    /// `vni/<vni>` → network id (global).
    Vni(u32),
    /// `ipam/<net>/<ip>` → [`super::records::IpamRecord`] (leased by the owning host).
    Ipam { network_id: String, ip: IpAddr },
    /// `endpoints/<net>/<epid>` → [`super::EndpointRecord`] (leased).
    Endpoint {
        network_id: String,
        endpoint_id: String,
    },
    /// `epnames/<net>/<name>` → endpoint id (leased).
    EpName { network_id: String, name: String },
}

/// Builds keys under one prefix (e.g. `/vswitch`). Range prefixes end with `/`, so that
/// `/vswitch` never matches `/vswitch2` and `networks/ab` never matches `networks/abc`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Keys {
    /// Starts with `/`, no trailing `/`.
    prefix: String,
}

/// Escape one key component (never contains `/` afterwards).
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '%' => out.push_str("%25"),
            '/' => out.push_str("%2F"),
            c => out.push(c),
        }
    }
    out
}

/// Inverse of [`escape`]; `None` for a malformed escape.
pub fn unescape(s: &str) -> Option<String> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('%') {
        out.push_str(&rest[..i]);
        let code = rest.get(i + 1..i + 3)?;
        match code {
            "25" => out.push('%'),
            "2F" | "2f" => out.push('/'),
            _ => return None,
        }
        rest = &rest[i + 3..];
    }
    out.push_str(rest);
    Some(out)
}

impl Keys {
    /// `prefix` is normalised: a leading `/` added, trailing `/`s removed (`""` and `"/"`
    /// give the root, keys then start with `/networks/…`).
    pub fn new(prefix: &str) -> Keys {
        let trimmed = prefix.trim_matches('/');
        let prefix = if trimmed.is_empty() {
            String::new()
        } else {
            format!("/{trimmed}")
        };
        Keys { prefix }
    }

    /// The prefix as given to [`Keys::new`], normalised (`/vswitch`).
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// Range prefix of everything this layout owns (`/vswitch/`).
    pub fn root(&self) -> String {
        format!("{}/", self.prefix)
    }

    pub fn networks(&self) -> String {
        format!("{}/networks/", self.prefix)
    }

    pub fn network(&self, id: &str) -> String {
        format!("{}{}", self.networks(), escape(id))
    }

    pub fn netname(&self, name: &str) -> String {
        format!("{}/netnames/{}", self.prefix, escape(name))
    }

    /// Range prefix of the subnets global networks hold.
    pub fn subnets(&self) -> String {
        format!("{}/subnets/", self.prefix)
    }

    /// A subnet's reservation (value: the network id).
    pub fn subnet(&self, subnet: &ipnet::IpNet) -> String {
        format!("{}{}", self.subnets(), escape(&subnet.to_string()))
    }

    pub fn vnis(&self) -> String {
        format!("{}/vni/", self.prefix)
    }

    pub fn vni(&self, vni: u32) -> String {
        format!("{}{vni}", self.vnis())
    }

    /// Range prefix of one network's allocated addresses.
    pub fn ipam_net(&self, network_id: &str) -> String {
        format!("{}/ipam/{}/", self.prefix, escape(network_id))
    }

    pub fn ipam(&self, network_id: &str, ip: IpAddr) -> String {
        format!("{}{ip}", self.ipam_net(network_id))
    }

    /// Range prefix of every endpoint record.
    pub fn endpoints(&self) -> String {
        format!("{}/endpoints/", self.prefix)
    }

    pub fn endpoints_net(&self, network_id: &str) -> String {
        format!("{}{}/", self.endpoints(), escape(network_id))
    }

    pub fn endpoint(&self, network_id: &str, endpoint_id: &str) -> String {
        format!("{}{}", self.endpoints_net(network_id), escape(endpoint_id))
    }

    pub fn epnames_net(&self, network_id: &str) -> String {
        format!("{}/epnames/{}/", self.prefix, escape(network_id))
    }

    pub fn epname(&self, network_id: &str, name: &str) -> String {
        format!("{}{}", self.epnames_net(network_id), escape(name))
    }

    /// Parse a key of this layout; `None` for anything else (other prefixes, unknown kinds,
    /// malformed components).
    pub fn parse(&self, key: &str) -> Option<Key> {
        let rest = key.strip_prefix(&self.root())?;
        let (kind, rest) = rest.split_once('/')?;
        let parts: Vec<&str> = rest.split('/').collect();
        let one = |parts: &[&str]| -> Option<String> {
            match parts {
                [a] if !a.is_empty() => unescape(a),
                _ => None,
            }
        };
        let two = |parts: &[&str]| -> Option<(String, String)> {
            match parts {
                [a, b] if !a.is_empty() && !b.is_empty() => Some((unescape(a)?, unescape(b)?)),
                _ => None,
            }
        };
        match kind {
            "networks" => Some(Key::Network { id: one(&parts)? }),
            "netnames" => Some(Key::NetName { name: one(&parts)? }),
            "vni" => {
                let v = one(&parts)?;
                // Canonical decimal only (no sign, no leading zeros).
                if v.starts_with('0') || !v.bytes().all(|b| b.is_ascii_digit()) {
                    return None;
                }
                Some(Key::Vni(v.parse().ok()?))
            }
            "ipam" => {
                let (network_id, ip) = two(&parts)?;
                Some(Key::Ipam {
                    network_id,
                    ip: ip.parse().ok()?,
                })
            }
            "endpoints" => {
                let (network_id, endpoint_id) = two(&parts)?;
                Some(Key::Endpoint {
                    network_id,
                    endpoint_id,
                })
            }
            "epnames" => {
                let (network_id, name) = two(&parts)?;
                Some(Key::EpName { network_id, name })
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout() {
        let k = Keys::new("/vswitch");
        assert_eq!(k.network("abc"), "/vswitch/networks/abc");
        assert_eq!(k.netname("my/net"), "/vswitch/netnames/my%2Fnet");
        assert_eq!(k.vni(256), "/vswitch/vni/256");
        assert_eq!(
            k.ipam("n1", "10.0.0.2".parse().unwrap()),
            "/vswitch/ipam/n1/10.0.0.2"
        );
        assert_eq!(
            k.ipam("n1", "fd00::2".parse().unwrap()),
            "/vswitch/ipam/n1/fd00::2"
        );
        assert_eq!(k.endpoint("n1", "e1"), "/vswitch/endpoints/n1/e1");
        assert_eq!(k.epname("n1", "web"), "/vswitch/epnames/n1/web");
        assert_eq!(k.root(), "/vswitch/");
    }

    #[test]
    fn prefix_normalised() {
        assert_eq!(Keys::new("vswitch/").network("a"), "/vswitch/networks/a");
        assert_eq!(Keys::new("/a/b//").network("x"), "/a/b/networks/x");
        assert_eq!(Keys::new("").network("x"), "/networks/x");
        assert_eq!(Keys::new("/").root(), "/");
    }

    #[test]
    fn parse_round_trips() {
        let k = Keys::new("/vswitch");
        let ip: IpAddr = "fd00::7".parse().unwrap();
        let cases = [
            (k.network("n%1"), Key::Network { id: "n%1".into() }),
            (k.netname("a/b"), Key::NetName { name: "a/b".into() }),
            (k.vni(16_777_215), Key::Vni(16_777_215)),
            (
                k.ipam("n", ip),
                Key::Ipam {
                    network_id: "n".into(),
                    ip,
                },
            ),
            (
                k.endpoint("n", "e"),
                Key::Endpoint {
                    network_id: "n".into(),
                    endpoint_id: "e".into(),
                },
            ),
            (
                k.epname("n", "web2"),
                Key::EpName {
                    network_id: "n".into(),
                    name: "web2".into(),
                },
            ),
        ];
        for (key, want) in cases {
            assert_eq!(k.parse(&key), Some(want), "{key}");
        }
    }

    #[test]
    fn parse_rejects_foreign_and_malformed() {
        let k = Keys::new("/vswitch");
        for bad in [
            "/vswitch2/networks/a",
            "/other/networks/a",
            "/vswitch/networks/",
            "/vswitch/networks/a/b",
            "/vswitch/unknown/a",
            "/vswitch/vni/0256",
            "/vswitch/vni/+1",
            "/vswitch/vni/x",
            "/vswitch/ipam/n/notanip",
            "/vswitch/endpoints/n",
            "/vswitch/endpoints/n/",
            "/vswitch/netnames/bad%zz",
            "/vswitch/netnames/bad%2",
        ] {
            assert_eq!(k.parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn escape_round_trip() {
        for s in ["", "a", "%", "/", "a/b%c", "%2F", "ü/ß"] {
            let e = escape(s);
            assert!(!e.contains('/'));
            assert_eq!(unescape(&e).as_deref(), Some(s));
        }
    }
}
