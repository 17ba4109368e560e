//! The libnetwork remote network driver protocol (moby `drivers/remote/api`): requests decoded
//! and checked into [`Call`], replies built as JSON. No I/O: the server in `plugin/mod.rs`
//! feeds it bytes and the daemon (`daemon/plugin.rs`) acts on the calls.

use crate::ports::{PortRequest, Proto};
use crate::wire::MacAddr;
use ipam::IpNet;
use serde::Deserialize;
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
use std::net::IpAddr;

/// Content type of every reply (dockerd does not check it; this is what plugins send).
pub const CONTENT_TYPE: &str = "application/vnd.docker.plugins.v1.2+json";
/// Longest network or endpoint id accepted (dockerd's are 64 hex digits).
pub const MAX_ID_LEN: usize = 64;
/// Most pools one family of a CreateNetwork may carry.
pub const MAX_POOLS: usize = 16;
/// Most published or exposed ports one endpoint may carry.
pub const MAX_PORTS: usize = 4096;
/// Longest SandboxKey path accepted.
pub const MAX_PATH_LEN: usize = 4096;

/// Option keys dockerd puts in CreateNetwork / CreateEndpoint / Join.
pub const OPT_GENERIC: &str = "com.docker.network.generic";
pub const OPT_ENABLE_IPV6: &str = "com.docker.network.enable_ipv6";
pub const OPT_INTERNAL: &str = "com.docker.network.internal";
pub const OPT_PORTMAP: &str = "com.docker.network.portmap";
pub const OPT_EXPOSED: &str = "com.docker.network.endpoint.exposedports";

/// IP protocol numbers in portmap entries.
const IPPROTO_TCP: u64 = 6;
const IPPROTO_UDP: u64 = 17;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ProtoError {
    /// A method this driver does not implement: HTTP 404, so dockerd treats it as optional.
    #[error("unknown method {0}")]
    UnknownMethod(String),
    /// The body is not the JSON the method takes: HTTP 400.
    #[error("{method}: invalid request: {reason}")]
    BadRequest { method: String, reason: String },
}

/// One IPAM pool as dockerd hands it over (CIDRs already chosen by dockerd's IPAM).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pool {
    pub subnet: IpNet,
    pub gateway: Option<IpAddr>,
    pub aux: BTreeMap<String, IpAddr>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkSpec {
    pub network_id: String,
    pub v4: Vec<Pool>,
    pub v6: Vec<Pool>,
    /// `docker network create -o k=v`, verbatim.
    pub generic: BTreeMap<String, String>,
    pub internal: bool,
    pub enable_ipv6: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointSpec {
    pub network_id: String,
    pub endpoint_id: String,
    pub ipv4: Option<IpNet>,
    pub ipv6: Option<IpNet>,
    /// Set when dockerd chose the MAC (`--mac-address`); else the driver picks and returns it.
    pub mac: Option<MacAddr>,
    pub ports: Vec<PortRequest>,
    pub exposed: Vec<(u16, Proto)>,
}

/// A decoded request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Call {
    Activate,
    GetCapabilities,
    CreateNetwork(NetworkSpec),
    DeleteNetwork {
        network_id: String,
    },
    CreateEndpoint(EndpointSpec),
    DeleteEndpoint {
        network_id: String,
        endpoint_id: String,
    },
    EndpointOperInfo {
        network_id: String,
        endpoint_id: String,
    },
    Join {
        network_id: String,
        endpoint_id: String,
        sandbox_key: String,
    },
    Leave {
        network_id: String,
        endpoint_id: String,
    },
    ProgramExternalConnectivity {
        network_id: String,
        endpoint_id: String,
        /// The sandbox's port mappings, when dockerd sent them.
        ports: Option<Vec<PortRequest>>,
    },
    RevokeExternalConnectivity {
        network_id: String,
        endpoint_id: String,
    },
    /// Swarm node discovery: nothing to do for a local-scope driver.
    Discover,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct IpamDataJson {
    #[serde(rename = "AddressSpace")]
    _address_space: String,
    #[serde(rename = "Pool")]
    pool: String,
    #[serde(rename = "Gateway")]
    gateway: String,
    #[serde(rename = "AuxAddresses")]
    aux_addresses: Option<BTreeMap<String, String>>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct CreateNetworkJson {
    #[serde(rename = "NetworkID")]
    network_id: String,
    #[serde(rename = "Options")]
    options: Option<Map<String, Value>>,
    #[serde(rename = "IPv4Data")]
    ipv4_data: Option<Vec<IpamDataJson>>,
    #[serde(rename = "IPv6Data")]
    ipv6_data: Option<Vec<IpamDataJson>>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct InterfaceJson {
    #[serde(rename = "Address")]
    address: String,
    #[serde(rename = "AddressIPv6")]
    address_ipv6: String,
    #[serde(rename = "MacAddress")]
    mac_address: String,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct EndpointJson {
    #[serde(rename = "NetworkID")]
    network_id: String,
    #[serde(rename = "EndpointID")]
    endpoint_id: String,
    #[serde(rename = "Interface")]
    interface: Option<InterfaceJson>,
    #[serde(rename = "Options")]
    options: Option<Map<String, Value>>,
    #[serde(rename = "SandboxKey")]
    sandbox_key: String,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct PortBindingJson {
    #[serde(rename = "Proto")]
    proto: u64,
    #[serde(rename = "Port")]
    port: u64,
    #[serde(rename = "HostIP")]
    host_ip: String,
    #[serde(rename = "HostPort")]
    host_port: u64,
    #[serde(rename = "HostPortEnd")]
    host_port_end: u64,
}

/// Decode one request: `path` is the URL path (`/NetworkDriver.Join`), `body` the JSON.
pub fn parse(path: &str, body: &[u8]) -> Result<Call, ProtoError> {
    let method = path.trim_start_matches('/');
    let bad = |reason: String| ProtoError::BadRequest {
        method: method.to_string(),
        reason,
    };
    // An empty body (Activate, GetCapabilities) decodes as `{}`.
    let decode = |b: &[u8]| -> Result<Value, ProtoError> {
        if b.iter().all(u8::is_ascii_whitespace) {
            return Ok(Value::Object(Map::new()));
        }
        match serde_json::from_slice::<Value>(b) {
            Ok(Value::Null) => Ok(Value::Object(Map::new())),
            Ok(v @ Value::Object(_)) => Ok(v),
            Ok(_) => Err(bad("the body must be a JSON object".into())),
            Err(e) => Err(bad(format!("not JSON: {e}"))),
        }
    };
    let ep = |b: &[u8]| -> Result<EndpointJson, ProtoError> {
        let v = decode(b)?;
        let e: EndpointJson = serde_json::from_value(v).map_err(|e| bad(e.to_string()))?;
        check_id("NetworkID", &e.network_id).map_err(&bad)?;
        check_id("EndpointID", &e.endpoint_id).map_err(&bad)?;
        Ok(e)
    };
    match method {
        "Plugin.Activate" => Ok(Call::Activate),
        "NetworkDriver.GetCapabilities" => Ok(Call::GetCapabilities),
        "NetworkDriver.CreateNetwork" => {
            let v = decode(body)?;
            let r: CreateNetworkJson = serde_json::from_value(v).map_err(|e| bad(e.to_string()))?;
            check_id("NetworkID", &r.network_id).map_err(&bad)?;
            let opts = r.options.unwrap_or_default();
            let generic = match opts.get(OPT_GENERIC) {
                None | Some(Value::Null) => BTreeMap::new(),
                Some(Value::Object(m)) => m
                    .iter()
                    .map(|(k, v)| (k.clone(), value_string(v)))
                    .collect(),
                Some(_) => return Err(bad(format!("{OPT_GENERIC} must be an object"))),
            };
            let pools = |list: Option<Vec<IpamDataJson>>, v6: bool| {
                let list = list.unwrap_or_default();
                if list.len() > MAX_POOLS {
                    return Err(format!("more than {MAX_POOLS} pools"));
                }
                list.iter()
                    .map(|p| pool(p, v6))
                    .collect::<Result<Vec<_>, _>>()
            };
            Ok(Call::CreateNetwork(NetworkSpec {
                v4: pools(r.ipv4_data, false).map_err(&bad)?,
                v6: pools(r.ipv6_data, true).map_err(&bad)?,
                internal: bool_opt(&opts, OPT_INTERNAL).map_err(&bad)?,
                enable_ipv6: bool_opt(&opts, OPT_ENABLE_IPV6).map_err(&bad)?,
                network_id: r.network_id,
                generic,
            }))
        }
        "NetworkDriver.DeleteNetwork" => {
            let v = decode(body)?;
            let id = v
                .get("NetworkID")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string();
            check_id("NetworkID", &id).map_err(&bad)?;
            Ok(Call::DeleteNetwork { network_id: id })
        }
        "NetworkDriver.CreateEndpoint" => {
            let e = ep(body)?;
            let iface = e.interface.unwrap_or_default();
            let cidr = |s: &str, v6: bool| -> Result<Option<IpNet>, String> {
                if s.is_empty() {
                    return Ok(None);
                }
                let n: IpNet = s.parse().map_err(|_| format!("invalid address {s:?}"))?;
                if n.addr().is_ipv6() != v6 {
                    return Err(format!("address {s} is of the wrong family"));
                }
                Ok(Some(n))
            };
            let mac = if iface.mac_address.is_empty() {
                None
            } else {
                Some(
                    iface
                        .mac_address
                        .parse::<MacAddr>()
                        .map_err(|_| bad(format!("invalid MAC {:?}", iface.mac_address)))?,
                )
            };
            let opts = e.options.unwrap_or_default();
            Ok(Call::CreateEndpoint(EndpointSpec {
                ipv4: cidr(&iface.address, false).map_err(&bad)?,
                ipv6: cidr(&iface.address_ipv6, true).map_err(&bad)?,
                mac,
                ports: port_map(&opts).map_err(&bad)?.unwrap_or_default(),
                exposed: exposed_ports(&opts).map_err(&bad)?,
                network_id: e.network_id,
                endpoint_id: e.endpoint_id,
            }))
        }
        "NetworkDriver.DeleteEndpoint" => {
            let e = ep(body)?;
            Ok(Call::DeleteEndpoint {
                network_id: e.network_id,
                endpoint_id: e.endpoint_id,
            })
        }
        "NetworkDriver.EndpointOperInfo" => {
            let e = ep(body)?;
            Ok(Call::EndpointOperInfo {
                network_id: e.network_id,
                endpoint_id: e.endpoint_id,
            })
        }
        "NetworkDriver.Join" => {
            let e = ep(body)?;
            if e.sandbox_key.is_empty() || e.sandbox_key.len() > MAX_PATH_LEN {
                return Err(bad("SandboxKey must be a namespace path".into()));
            }
            if !e.sandbox_key.starts_with('/') || e.sandbox_key.contains('\0') {
                return Err(bad(format!(
                    "SandboxKey {:?} is not an absolute path",
                    e.sandbox_key
                )));
            }
            Ok(Call::Join {
                network_id: e.network_id,
                endpoint_id: e.endpoint_id,
                sandbox_key: e.sandbox_key,
            })
        }
        "NetworkDriver.Leave" => {
            let e = ep(body)?;
            Ok(Call::Leave {
                network_id: e.network_id,
                endpoint_id: e.endpoint_id,
            })
        }
        "NetworkDriver.ProgramExternalConnectivity" => {
            let e = ep(body)?;
            let opts = e.options.unwrap_or_default();
            Ok(Call::ProgramExternalConnectivity {
                ports: port_map(&opts).map_err(&bad)?,
                network_id: e.network_id,
                endpoint_id: e.endpoint_id,
            })
        }
        "NetworkDriver.RevokeExternalConnectivity" => {
            let e = ep(body)?;
            Ok(Call::RevokeExternalConnectivity {
                network_id: e.network_id,
                endpoint_id: e.endpoint_id,
            })
        }
        "NetworkDriver.DiscoverNew" | "NetworkDriver.DiscoverDelete" => Ok(Call::Discover),
        other => Err(ProtoError::UnknownMethod(other.to_string())),
    }
}

fn check_id(field: &str, id: &str) -> Result<(), String> {
    if id.is_empty() {
        return Err(format!("{field} is missing"));
    }
    if id.len() > MAX_ID_LEN || !id.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(format!("{field} {id:?} is not an id"));
    }
    Ok(())
}

/// Option values as Docker prints them: strings verbatim, anything else as JSON.
fn value_string(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn bool_opt(opts: &Map<String, Value>, key: &str) -> Result<bool, String> {
    match opts.get(key) {
        None | Some(Value::Null) => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        Some(Value::String(s)) => crate::model::options::parse_bool(s)
            .ok_or_else(|| format!("{key}: invalid boolean {s:?}")),
        Some(other) => Err(format!("{key}: invalid boolean {other}")),
    }
}

fn pool(p: &IpamDataJson, v6: bool) -> Result<Pool, String> {
    let subnet: IpNet = p
        .pool
        .parse()
        .map_err(|_| format!("invalid pool {:?}", p.pool))?;
    if subnet.addr().is_ipv6() != v6 {
        return Err(format!("pool {} is of the wrong family", p.pool));
    }
    let plain = |s: &str| -> Result<IpAddr, String> {
        let a = match s.split_once('/') {
            Some((a, _)) => a,
            None => s,
        };
        a.parse::<IpAddr>()
            .map_err(|_| format!("invalid address {s:?}"))
    };
    let gateway = if p.gateway.is_empty() {
        None
    } else {
        Some(plain(&p.gateway)?)
    };
    let mut aux = BTreeMap::new();
    for (k, v) in p.aux_addresses.iter().flatten() {
        aux.insert(k.clone(), plain(v)?);
    }
    Ok(Pool {
        subnet,
        gateway,
        aux,
    })
}

/// `com.docker.network.portmap` as published-port requests; None when absent.
fn port_map(opts: &Map<String, Value>) -> Result<Option<Vec<PortRequest>>, String> {
    let list = match opts.get(OPT_PORTMAP) {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Array(a)) => a,
        Some(_) => return Err(format!("{OPT_PORTMAP} must be a list")),
    };
    if list.len() > MAX_PORTS {
        return Err(format!("more than {MAX_PORTS} published ports"));
    }
    let mut out = Vec::new();
    for v in list {
        let b: PortBindingJson =
            serde_json::from_value(v.clone()).map_err(|e| format!("{OPT_PORTMAP}: {e}"))?;
        let proto = proto_of(b.proto)?;
        let port = port_of(b.port)?;
        let host_ip = if b.host_ip.is_empty() {
            None
        } else {
            Some(
                b.host_ip
                    .parse::<IpAddr>()
                    .map_err(|_| format!("invalid host IP {:?}", b.host_ip))?,
            )
        };
        let host_ports = match (b.host_port, b.host_port_end) {
            (0, _) => None,
            (a, e) => {
                let a = port_of(a)?;
                let e = if e == 0 { a } else { port_of(e)? };
                if e < a {
                    return Err(format!("invalid host port range {a}-{e}"));
                }
                Some((a, e))
            }
        };
        out.push(PortRequest {
            proto,
            container_port: port,
            host_ip,
            host_ports,
        });
    }
    Ok(Some(out))
}

fn exposed_ports(opts: &Map<String, Value>) -> Result<Vec<(u16, Proto)>, String> {
    let list = match opts.get(OPT_EXPOSED) {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(a)) => a,
        Some(_) => return Err(format!("{OPT_EXPOSED} must be a list")),
    };
    if list.len() > MAX_PORTS {
        return Err(format!("more than {MAX_PORTS} exposed ports"));
    }
    list.iter()
        .map(|v| {
            let p = v.get("Port").and_then(Value::as_u64).unwrap_or(0);
            let proto = v.get("Proto").and_then(Value::as_u64).unwrap_or(0);
            Ok((port_of(p)?, proto_of(proto)?))
        })
        .collect()
}

fn proto_of(n: u64) -> Result<Proto, String> {
    match n {
        IPPROTO_TCP => Ok(Proto::Tcp),
        IPPROTO_UDP => Ok(Proto::Udp),
        other => Err(format!(
            "IP protocol {other} cannot be published (only tcp and udp)"
        )),
    }
}

fn port_of(n: u64) -> Result<u16, String> {
    u16::try_from(n)
        .ok()
        .filter(|p| *p != 0)
        .ok_or_else(|| format!("invalid port {n}"))
}

// ---- replies ------------------------------------------------------------------------------

pub fn activate_reply() -> Value {
    json!({ "Implements": ["NetworkDriver"] })
}

pub fn capabilities_reply() -> Value {
    json!({ "Scope": "local", "ConnectivityScope": "local" })
}

/// A failed operation: HTTP 200 with `Err`, as libnetwork expects.
pub fn err_reply(msg: &str) -> Value {
    json!({ "Err": msg })
}

pub fn empty_reply() -> Value {
    json!({})
}

/// CreateEndpoint: only the fields dockerd left empty (returning one it set is an error).
pub fn create_endpoint_reply(mac: Option<MacAddr>) -> Value {
    match mac {
        Some(m) => json!({ "Interface": { "MacAddress": m.to_string() } }),
        None => json!({ "Interface": null }),
    }
}

/// Join: the device to move in, named `eth<N>` inside, and the gateways (so dockerd adds no
/// docker_gwbridge leg).
pub fn join_reply(src_name: &str, gw4: Option<IpAddr>, gw6: Option<IpAddr>) -> Value {
    let mut v = json!({
        "InterfaceName": { "SrcName": src_name, "DstPrefix": crate::model::CONTAINER_IFACE_PREFIX },
        "DisableGatewayService": false,
    });
    if let Some(g) = gw4 {
        v["Gateway"] = json!(g.to_string());
    }
    if let Some(g) = gw6 {
        v["GatewayIPv6"] = json!(g.to_string());
    }
    v
}

pub fn oper_info_reply(info: Value) -> Value {
    json!({ "Value": info })
}

#[cfg(test)]
mod tests {
    use super::*;

    const NID: &str = "3f2a0b1c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e7f8";
    const EID: &str = "aa2a0b1c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e7f8";

    #[test]
    fn activate_and_capabilities_take_empty_bodies() {
        assert_eq!(parse("/Plugin.Activate", b""), Ok(Call::Activate));
        assert_eq!(
            parse("/NetworkDriver.GetCapabilities", b"null"),
            Ok(Call::GetCapabilities)
        );
        assert_eq!(capabilities_reply()["Scope"], "local");
    }

    #[test]
    fn create_network_as_dockerd_sends_it() {
        let body = format!(
            r#"{{"NetworkID":"{NID}","Options":{{"com.docker.network.enable_ipv6":false,
            "com.docker.network.generic":{{"com.docker.network.driver.mtu":"1400","x":1}},
            "com.docker.network.internal":true}},
            "IPv4Data":[{{"AddressSpace":"LocalDefault","Gateway":"10.66.0.1/24","Pool":"10.66.0.0/24",
            "AuxAddresses":{{"h":"10.66.0.9/24"}}}}],"IPv6Data":null}}"#
        );
        let Ok(Call::CreateNetwork(n)) = parse("/NetworkDriver.CreateNetwork", body.as_bytes())
        else {
            panic!("not decoded");
        };
        assert_eq!(n.network_id, NID);
        assert!(n.internal && !n.enable_ipv6);
        assert_eq!(n.generic["com.docker.network.driver.mtu"], "1400");
        assert_eq!(n.generic["x"], "1");
        assert_eq!(n.v4[0].subnet.to_string(), "10.66.0.0/24");
        assert_eq!(n.v4[0].gateway, Some("10.66.0.1".parse().unwrap()));
        assert_eq!(n.v4[0].aux["h"].to_string(), "10.66.0.9");
        assert!(n.v6.is_empty());
    }

    #[test]
    fn endpoint_with_ports() {
        let body = format!(
            r#"{{"NetworkID":"{NID}","EndpointID":"{EID}",
            "Interface":{{"Address":"10.66.0.2/24","AddressIPv6":"","MacAddress":""}},
            "Options":{{"com.docker.network.portmap":[{{"Proto":6,"IP":"","Port":80,"HostIP":"","HostPort":8080,"HostPortEnd":8080}},
            {{"Proto":17,"IP":"","Port":53,"HostIP":"127.0.0.1","HostPort":0,"HostPortEnd":0}}],
            "com.docker.network.endpoint.exposedports":[{{"Proto":6,"Port":80}}]}}}}"#
        );
        let Ok(Call::CreateEndpoint(e)) = parse("/NetworkDriver.CreateEndpoint", body.as_bytes())
        else {
            panic!("not decoded");
        };
        assert_eq!(e.ipv4.unwrap().to_string(), "10.66.0.2/24");
        assert_eq!(e.mac, None);
        assert_eq!(e.ports.len(), 2);
        assert_eq!(e.ports[0].host_ports, Some((8080, 8080)));
        assert_eq!(e.ports[1].proto, Proto::Udp);
        assert_eq!(e.ports[1].host_ports, None);
        assert_eq!(e.exposed, vec![(80, Proto::Tcp)]);
    }

    #[test]
    fn bad_input_is_refused_not_panicked_on() {
        assert!(matches!(
            parse("/NetworkDriver.Frobnicate", b"{}"),
            Err(ProtoError::UnknownMethod(_))
        ));
        for body in [
            &b"{"[..],
            b"[1]",
            b"{\"NetworkID\":\"../x\"}",
            b"{\"NetworkID\":\"ab\",\"IPv4Data\":[{\"Pool\":\"300.1.1.1/8\"}]}",
            b"{\"NetworkID\":\"ab\",\"IPv4Data\":[{\"Pool\":\"fd00::/64\"}]}",
            b"{\"NetworkID\":\"ab\",\"Options\":{\"com.docker.network.generic\":3}}",
        ] {
            assert!(
                matches!(
                    parse("/NetworkDriver.CreateNetwork", body),
                    Err(ProtoError::BadRequest { .. })
                ),
                "{}",
                String::from_utf8_lossy(body)
            );
        }
        let join = format!(r#"{{"NetworkID":"{NID}","EndpointID":"{EID}","SandboxKey":"rel"}}"#);
        assert!(parse("/NetworkDriver.Join", join.as_bytes()).is_err());
        let ports = format!(
            r#"{{"NetworkID":"{NID}","EndpointID":"{EID}","Options":{{"com.docker.network.portmap":[{{"Proto":132,"Port":80}}]}}}}"#
        );
        assert!(parse("/NetworkDriver.CreateEndpoint", ports.as_bytes()).is_err());
    }

    #[test]
    fn join_reply_names_the_tap_and_gateway() {
        let v = join_reply("vsd0123", Some("10.66.0.1".parse().unwrap()), None);
        assert_eq!(v["InterfaceName"]["SrcName"], "vsd0123");
        assert_eq!(v["InterfaceName"]["DstPrefix"], "eth");
        assert_eq!(v["Gateway"], "10.66.0.1");
        assert!(v.get("GatewayIPv6").is_none());
    }
}
