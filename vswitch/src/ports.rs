//! Published ports: Docker's `-p [hostip:][hostport:]containerport[/proto]` grammar (with
//! ranges), `--expose` + `-P`, the records kept per sandbox, and Docker's texts for them.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::net::IpAddr;

/// First port `-P` and `-p 80` (no host port) hand out, as Docker's port allocator.
pub const EPHEMERAL_FIRST: u16 = 32768;
/// Last ephemeral port (Docker's default `ip_local_port_range` end).
pub const EPHEMERAL_LAST: u16 = 60999;
/// Most ports one `-p` range may publish (a guard against `-p 1-65535:…` mistakes).
pub const MAX_RANGE: u32 = 10_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Proto {
    Tcp,
    Udp,
}

impl Proto {
    pub fn as_str(self) -> &'static str {
        match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
        }
    }

    fn parse(s: &str) -> Result<Proto, PortError> {
        match s.to_ascii_lowercase().as_str() {
            "" | "tcp" => Ok(Proto::Tcp),
            "udp" => Ok(Proto::Udp),
            other => Err(PortError::Invalid(format!("invalid proto: {other}"))),
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PortError {
    #[error("{0}")]
    Invalid(String),
}

/// One requested binding: container port/proto to an optional host IP and port range.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortRequest {
    pub proto: Proto,
    pub container_port: u16,
    /// None: the network's `host_binding_ipv4` (0.0.0.0 by default).
    pub host_ip: Option<IpAddr>,
    /// None: an ephemeral port; Some((a, b)): a port from a..=b (a == b for one port).
    pub host_ports: Option<(u16, u16)>,
}

/// A binding as made: what `port` prints and the container JSON shows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Binding {
    pub proto: Proto,
    pub container_port: u16,
    pub host_ip: IpAddr,
    pub host_port: u16,
}

impl Binding {
    /// `80/tcp -> 0.0.0.0:32768`, as `docker port` prints it.
    pub fn line(&self) -> String {
        let ip = match self.host_ip {
            IpAddr::V6(a) => format!("[{a}]"),
            IpAddr::V4(a) => a.to_string(),
        };
        format!(
            "{}/{} -> {}:{}",
            self.container_port,
            self.proto.as_str(),
            ip,
            self.host_port
        )
    }
}

fn port(s: &str, what: &str) -> Result<u16, PortError> {
    match s.parse::<u16>() {
        Ok(p) if p > 0 => Ok(p),
        _ => Err(PortError::Invalid(format!("invalid {what}: {s}"))),
    }
}

fn range(s: &str, what: &str) -> Result<(u16, u16), PortError> {
    match s.split_once('-') {
        None => {
            let p = port(s, what)?;
            Ok((p, p))
        }
        Some((a, b)) => {
            let (a, b) = (port(a, what)?, port(b, what)?);
            if b < a {
                return Err(PortError::Invalid(format!("invalid {what}: {s}")));
            }
            Ok((a, b))
        }
    }
}

/// Parse one `-p` value into one request per container port.
pub fn parse_publish(spec: &str) -> Result<Vec<PortRequest>, PortError> {
    let (rest, proto) = match spec.rsplit_once('/') {
        Some((r, p)) => (r, Proto::parse(p)?),
        None => (spec, Proto::Tcp),
    };
    // Split off a bracketed IPv6 host address first; otherwise split on ':'.
    let (ip_part, ports_part): (Option<&str>, &str) = if let Some(r) = rest.strip_prefix('[') {
        let (ip, after) = r
            .split_once(']')
            .ok_or_else(|| PortError::Invalid(format!("invalid IP address in {spec}")))?;
        let after = after
            .strip_prefix(':')
            .ok_or_else(|| PortError::Invalid(format!("invalid port specification: {spec:?}")))?;
        (Some(ip), after)
    } else {
        let parts: Vec<&str> = rest.split(':').collect();
        match parts.len() {
            1 | 2 => (None, rest),
            3 => (Some(parts[0]), &rest[parts[0].len() + 1..]),
            _ => {
                return Err(PortError::Invalid(format!(
                    "invalid port specification: {spec:?}"
                )))
            }
        }
    };
    let host_ip = match ip_part.filter(|s| !s.is_empty()) {
        None => None,
        Some(ip) => Some(
            ip.parse::<IpAddr>()
                .map_err(|_| PortError::Invalid(format!("invalid IP address: {ip}")))?,
        ),
    };
    let (host, container) = match ports_part.split_once(':') {
        Some((h, c)) => (Some(h).filter(|h| !h.is_empty()), c),
        None => (None, ports_part),
    };
    let c = range(container, "containerPort")?;
    let h = host.map(|h| range(h, "hostPort")).transpose()?;
    let count = u32::from(c.1 - c.0) + 1;
    if count > MAX_RANGE {
        return Err(PortError::Invalid(format!(
            "port range {container} is larger than {MAX_RANGE} ports"
        )));
    }
    let mut out = Vec::new();
    for (i, cp) in (c.0..=c.1).enumerate() {
        let host_ports = match h {
            None => None,
            // One container port and a host range: any free port of the range.
            Some((a, b)) if c.0 == c.1 => Some((a, b)),
            Some((a, b)) => {
                if u32::from(b - a) + 1 != count {
                    return Err(PortError::Invalid(format!(
                        "invalid ranges specified for container and host Ports: {container} and {}",
                        host.unwrap_or("")
                    )));
                }
                let p = a + i as u16;
                Some((p, p))
            }
        };
        out.push(PortRequest {
            proto,
            container_port: cp,
            host_ip,
            host_ports,
        });
    }
    Ok(out)
}

/// Parse `--expose 80[/tcp]` or a range `8000-8010/udp`.
pub fn parse_expose(spec: &str) -> Result<Vec<(u16, Proto)>, PortError> {
    let (p, proto) = match spec.rsplit_once('/') {
        Some((p, pr)) => (p, Proto::parse(pr)?),
        None => (spec, Proto::Tcp),
    };
    let (a, b) = range(p, "port")?;
    Ok((a..=b).map(|x| (x, proto)).collect())
}

/// Docker's `"80/tcp"` key.
pub fn key(port: u16, proto: Proto) -> String {
    format!("{port}/{}", proto.as_str())
}

/// Parse a `"80/tcp"` key.
pub fn parse_key(k: &str) -> Result<(u16, Proto), PortError> {
    let (p, proto) = k.split_once('/').unwrap_or((k, "tcp"));
    Ok((port(p, "port")?, Proto::parse(proto)?))
}

/// The requests of a Docker create body: `HostConfig.PortBindings` plus, with
/// `PublishAllPorts`, every `ExposedPorts` entry without a binding (ephemeral host port).
pub fn requests_from_docker(
    bindings: &BTreeMap<String, Vec<(String, String)>>,
    exposed: &[String],
    publish_all: bool,
) -> Result<Vec<PortRequest>, PortError> {
    let mut out = Vec::new();
    for (k, list) in bindings {
        let (cp, proto) = parse_key(k)?;
        let list = if list.is_empty() {
            vec![(String::new(), String::new())]
        } else {
            list.clone()
        };
        for (hip, hport) in list {
            let host_ip = match hip.trim_matches(|c| c == '[' || c == ']') {
                "" => None,
                s => Some(
                    s.parse::<IpAddr>()
                        .map_err(|_| PortError::Invalid(format!("invalid IP address: {s}")))?,
                ),
            };
            let host_ports = match hport.as_str() {
                "" | "0" => None,
                s => Some(range(s, "hostPort")?),
            };
            out.push(PortRequest {
                proto,
                container_port: cp,
                host_ip,
                host_ports,
            });
        }
    }
    if publish_all {
        for k in exposed {
            let (cp, proto) = parse_key(k)?;
            if !out
                .iter()
                .any(|r| r.container_port == cp && r.proto == proto)
            {
                out.push(PortRequest {
                    proto,
                    container_port: cp,
                    host_ip: None,
                    host_ports: None,
                });
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(s: &str) -> PortRequest {
        let v = parse_publish(s).unwrap();
        assert_eq!(v.len(), 1, "{s}");
        v[0].clone()
    }

    #[test]
    fn docker_forms() {
        let r = one("80");
        assert_eq!(
            (r.container_port, r.host_ip, r.host_ports),
            (80, None, None)
        );
        let r = one("8080:80");
        assert_eq!(r.host_ports, Some((8080, 8080)));
        let r = one("127.0.0.1:8080:80/udp");
        assert_eq!(r.host_ip, Some("127.0.0.1".parse().unwrap()));
        assert_eq!(r.proto, Proto::Udp);
        let r = one("127.0.0.1::80");
        assert_eq!((r.host_ports, r.container_port), (None, 80));
        let r = one("[::1]:8080:80");
        assert_eq!(r.host_ip, Some("::1".parse().unwrap()));
        let r = one("8000-8010:80");
        assert_eq!(r.host_ports, Some((8000, 8010)));
        let v = parse_publish("8000-8002:80-82").unwrap();
        assert_eq!(
            v.iter()
                .map(|r| (r.host_ports.unwrap().0, r.container_port))
                .collect::<Vec<_>>(),
            vec![(8000, 80), (8001, 81), (8002, 82)]
        );
    }

    #[test]
    fn bad_specs() {
        for s in [
            "",
            "x",
            "0",
            "70000",
            "1:2:3:4",
            "8000-8001:80-82",
            "80/sctp",
            "a.b:1:2",
        ] {
            assert!(parse_publish(s).is_err(), "{s}");
        }
    }

    #[test]
    fn port_lines() {
        let b = Binding {
            proto: Proto::Tcp,
            container_port: 80,
            host_ip: "0.0.0.0".parse().unwrap(),
            host_port: 32768,
        };
        assert_eq!(b.line(), "80/tcp -> 0.0.0.0:32768");
    }

    #[test]
    fn docker_body_requests() {
        let mut m = BTreeMap::new();
        m.insert(
            "80/tcp".to_string(),
            vec![(String::new(), "8080".to_string())],
        );
        let r = requests_from_docker(&m, &["80/tcp".into(), "53/udp".into()], true).unwrap();
        assert_eq!(r.len(), 2);
        assert_eq!(r[0].host_ports, Some((8080, 8080)));
        assert_eq!(
            (r[1].container_port, r[1].proto, r[1].host_ports),
            (53, Proto::Udp, None)
        );
        assert_eq!(parse_expose("8000-8001/udp").unwrap().len(), 2);
    }
}
