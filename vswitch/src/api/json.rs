//! Docker Engine API JSON shapes (API 1.50). Field order follows moby's Go structs because
//! `docker network inspect` prints the daemon's bytes verbatim; maps are BTreeMaps because Go
//! marshals map keys sorted.

use crate::model::{self, Endpoint, Network, Sandbox, State};
use crate::util;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[derive(Serialize)]
pub struct NetworkJson {
    #[serde(rename = "Name")]
    pub name: String,
    #[serde(rename = "Id")]
    pub id: String,
    #[serde(rename = "Created")]
    pub created: String,
    #[serde(rename = "Scope")]
    pub scope: String,
    #[serde(rename = "Driver")]
    pub driver: String,
    #[serde(rename = "EnableIPv4")]
    pub enable_ipv4: bool,
    #[serde(rename = "EnableIPv6")]
    pub enable_ipv6: bool,
    #[serde(rename = "IPAM")]
    pub ipam: IpamJson,
    #[serde(rename = "Internal")]
    pub internal: bool,
    #[serde(rename = "Attachable")]
    pub attachable: bool,
    #[serde(rename = "Ingress")]
    pub ingress: bool,
    #[serde(rename = "ConfigFrom")]
    pub config_from: ConfigFromJson,
    #[serde(rename = "ConfigOnly")]
    pub config_only: bool,
    #[serde(rename = "Containers")]
    pub containers: BTreeMap<String, NetworkContainerJson>,
    #[serde(rename = "Options")]
    pub options: BTreeMap<String, String>,
    #[serde(rename = "Labels")]
    pub labels: BTreeMap<String, String>,
}

#[derive(Serialize)]
pub struct IpamJson {
    #[serde(rename = "Driver")]
    pub driver: String,
    #[serde(rename = "Options")]
    pub options: Option<BTreeMap<String, String>>,
    #[serde(rename = "Config")]
    pub config: Option<Vec<IpamConfigJson>>,
}

#[derive(Serialize, Deserialize, Default, Debug, Clone)]
pub struct IpamConfigJson {
    #[serde(
        rename = "Subnet",
        default,
        skip_serializing_if = "String::is_empty",
        deserialize_with = "null_as_default"
    )]
    pub subnet: String,
    #[serde(
        rename = "IPRange",
        default,
        skip_serializing_if = "String::is_empty",
        deserialize_with = "null_as_default"
    )]
    pub ip_range: String,
    #[serde(
        rename = "Gateway",
        default,
        skip_serializing_if = "String::is_empty",
        deserialize_with = "null_as_default"
    )]
    pub gateway: String,
    #[serde(
        rename = "AuxiliaryAddresses",
        default,
        skip_serializing_if = "BTreeMap::is_empty",
        deserialize_with = "null_str_map"
    )]
    pub aux: BTreeMap<String, String>,
}

#[derive(Serialize)]
pub struct ConfigFromJson {
    #[serde(rename = "Network")]
    pub network: String,
}

#[derive(Serialize)]
pub struct NetworkContainerJson {
    #[serde(rename = "Name")]
    pub name: String,
    #[serde(rename = "EndpointID")]
    pub endpoint_id: String,
    #[serde(rename = "MacAddress")]
    pub mac: String,
    #[serde(rename = "IPv4Address")]
    pub ipv4: String,
    #[serde(rename = "IPv6Address")]
    pub ipv6: String,
}

/// The Network object; `with_containers` false for list output (API ≥ 1.28 sends `{}`).
pub fn network_json(state: &State, n: &Network, with_containers: bool) -> NetworkJson {
    let mut containers = BTreeMap::new();
    if with_containers {
        for (sb, ep) in state.endpoints_of(&n.id) {
            containers.insert(
                sb.id.clone(),
                NetworkContainerJson {
                    name: sb.name.clone(),
                    endpoint_id: ep.id.clone(),
                    mac: ep.mac.clone(),
                    ipv4: ep.ipv4.map(|a| a.to_string()).unwrap_or_default(),
                    ipv6: ep.ipv6.map(|a| a.to_string()).unwrap_or_default(),
                },
            );
        }
    }
    NetworkJson {
        name: n.name.clone(),
        id: n.id.clone(),
        created: n.created.clone(),
        scope: n.scope.clone(),
        driver: n.driver.as_str().to_string(),
        enable_ipv4: n.enable_ipv4,
        enable_ipv6: n.enable_ipv6,
        ipam: IpamJson {
            driver: n.ipam_driver.clone(),
            options: n.ipam_options.clone(),
            config: n.ipam_config.as_ref().map(|cs| {
                cs.iter()
                    .map(|c| IpamConfigJson {
                        subnet: c.subnet.to_string(),
                        ip_range: c.ip_range.map(|r| r.to_string()).unwrap_or_default(),
                        gateway: c.gateway.map(|g| g.to_string()).unwrap_or_default(),
                        aux: c
                            .aux
                            .iter()
                            .map(|(k, v)| (k.clone(), v.to_string()))
                            .collect(),
                    })
                    .collect()
            }),
        },
        internal: n.internal,
        attachable: n.attachable,
        ingress: n.ingress,
        config_from: ConfigFromJson {
            network: n.config_from.clone(),
        },
        config_only: n.config_only,
        containers,
        options: n.options.clone(),
        labels: n.labels.clone(),
    }
}

// Go's decoder (what moby reads requests with) leaves a field at its zero value for JSON
// `null`, and decodes `null` inside a map or slice as the element's zero value. SDKs send
// `null` for every unset field, so every request field below accepts it.

fn null_as_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// `map[string]string`: a `null` map is empty, a `null` value is `""`.
fn null_str_map<'de, D>(d: D) -> Result<BTreeMap<String, String>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    Ok(opt_str_map(d)?.unwrap_or_default())
}

/// Like [`null_str_map`] but keeps `null` apart from `{}` (moby echoes a nil map as `null`).
fn opt_str_map<'de, D>(d: D) -> Result<Option<BTreeMap<String, String>>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    let m = Option::<BTreeMap<String, Option<String>>>::deserialize(d)?;
    Ok(m.map(|m| {
        m.into_iter()
            .map(|(k, v)| (k, v.unwrap_or_default()))
            .collect()
    }))
}

/// `[]string`: a `null` slice is empty, a `null` element is `""`.
fn null_str_vec<'de, D>(d: D) -> Result<Vec<String>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    let v = Option::<Vec<Option<String>>>::deserialize(d)?;
    Ok(v.unwrap_or_default()
        .into_iter()
        .map(Option::unwrap_or_default)
        .collect())
}

/// A slice of structs: `null` elements are zero-valued structs.
fn null_struct_vec<'de, D, T>(d: D) -> Result<Vec<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    let v = Option::<Vec<Option<T>>>::deserialize(d)?;
    Ok(v.unwrap_or_default()
        .into_iter()
        .map(Option::unwrap_or_default)
        .collect())
}

/// A map of structs: `null` values are zero-valued structs.
fn null_struct_map<'de, D, T>(d: D) -> Result<BTreeMap<String, T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    let m = Option::<BTreeMap<String, Option<T>>>::deserialize(d)?;
    Ok(m.unwrap_or_default()
        .into_iter()
        .map(|(k, v)| (k, v.unwrap_or_default()))
        .collect())
}

/// moby's `strslice.StrSlice` (`Cmd`): an array of strings, a single string, or `null`.
fn str_slice<'de, D>(d: D) -> Result<Vec<String>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<Option<String>>),
    }
    Ok(match Option::<OneOrMany>::deserialize(d)? {
        None => Vec::new(),
        Some(OneOrMany::One(s)) => vec![s],
        Some(OneOrMany::Many(v)) => v.into_iter().map(Option::unwrap_or_default).collect(),
    })
}

/// `map[string]map[string]string`-like maps whose values the daemon does not read.
fn null_value_map<'de, D>(d: D) -> Result<BTreeMap<String, serde_json::Value>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    null_as_default(d)
}

/// `map[string][]PortBinding`: `null` lists and `null` bindings are empty.
fn port_bindings_map<'de, D>(d: D) -> Result<BTreeMap<String, Vec<PortBindingJson>>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    let m = Option::<BTreeMap<String, Option<Vec<Option<PortBindingJson>>>>>::deserialize(d)?;
    Ok(m.unwrap_or_default()
        .into_iter()
        .map(|(k, v)| {
            let v = v
                .unwrap_or_default()
                .into_iter()
                .map(Option::unwrap_or_default)
                .collect();
            (k, v)
        })
        .collect())
}

/// `POST /networks/create` body (NetworkCreateRequest). Unknown fields are ignored, as Go does.
#[derive(Deserialize, Debug, Default)]
#[serde(default)]
pub struct CreateNetworkJson {
    #[serde(rename = "Name", deserialize_with = "null_as_default")]
    pub name: String,
    #[serde(rename = "Driver", deserialize_with = "null_as_default")]
    pub driver: String,
    #[serde(rename = "Scope", deserialize_with = "null_as_default")]
    pub scope: String,
    #[serde(rename = "EnableIPv4")]
    pub enable_ipv4: Option<bool>,
    #[serde(rename = "EnableIPv6")]
    pub enable_ipv6: Option<bool>,
    #[serde(rename = "IPAM")]
    pub ipam: Option<IpamRequestJson>,
    #[serde(rename = "Internal", deserialize_with = "null_as_default")]
    pub internal: bool,
    #[serde(rename = "Attachable", deserialize_with = "null_as_default")]
    pub attachable: bool,
    #[serde(rename = "Ingress", deserialize_with = "null_as_default")]
    pub ingress: bool,
    #[serde(rename = "ConfigOnly", deserialize_with = "null_as_default")]
    pub config_only: bool,
    #[serde(rename = "ConfigFrom")]
    pub config_from: Option<ConfigFromReq>,
    #[serde(rename = "Options", deserialize_with = "null_str_map")]
    pub options: BTreeMap<String, String>,
    #[serde(rename = "Labels", deserialize_with = "null_str_map")]
    pub labels: BTreeMap<String, String>,
}

#[derive(Deserialize, Debug, Default)]
#[serde(default)]
pub struct IpamRequestJson {
    #[serde(rename = "Driver", deserialize_with = "null_as_default")]
    pub driver: String,
    /// `None` (sent `null` or left out) is shown back as `null`, `{}` as `{}`, as moby does.
    #[serde(rename = "Options", deserialize_with = "opt_str_map")]
    pub options: Option<BTreeMap<String, String>>,
    #[serde(rename = "Config", deserialize_with = "null_struct_vec")]
    pub config: Vec<IpamConfigJson>,
}

#[derive(Deserialize, Debug, Default)]
#[serde(default)]
pub struct ConfigFromReq {
    #[serde(rename = "Network", deserialize_with = "null_as_default")]
    pub network: String,
}

impl CreateNetworkJson {
    pub fn into_model(self) -> model::CreateNetwork {
        let ipam = self.ipam.unwrap_or_default();
        model::CreateNetwork {
            name: self.name,
            driver: self.driver,
            scope: self.scope,
            enable_ipv4: self.enable_ipv4,
            enable_ipv6: self.enable_ipv6,
            ipam_driver: ipam.driver,
            ipam_options: ipam.options,
            ipam_config: ipam
                .config
                .into_iter()
                .map(|c| ipam::RawSubnetConfig {
                    subnet: c.subnet,
                    ip_range: Some(c.ip_range).filter(|s| !s.is_empty()),
                    gateway: Some(c.gateway).filter(|s| !s.is_empty()),
                    aux: c.aux,
                })
                .collect(),
            internal: self.internal,
            attachable: self.attachable,
            ingress: self.ingress,
            config_only: self.config_only,
            config_from: self
                .config_from
                .map(|c| c.network)
                .filter(|s| !s.is_empty()),
            options: self.options,
            labels: self.labels,
        }
    }
}

/// EndpointSettings as sent by connect and container create.
#[derive(Deserialize, Debug, Default)]
#[serde(default)]
pub struct EndpointConfigJson {
    #[serde(rename = "IPAMConfig")]
    pub ipam_config: Option<EndpointIpamJson>,
    #[serde(rename = "Links", deserialize_with = "null_str_vec")]
    pub links: Vec<String>,
    #[serde(rename = "Aliases", deserialize_with = "null_str_vec")]
    pub aliases: Vec<String>,
    #[serde(rename = "MacAddress", deserialize_with = "null_as_default")]
    pub mac_address: String,
    #[serde(rename = "DriverOpts", deserialize_with = "null_str_map")]
    pub driver_opts: BTreeMap<String, String>,
    #[serde(rename = "GwPriority", deserialize_with = "null_as_default")]
    pub gw_priority: i64,
}

#[derive(Deserialize, Debug, Default)]
#[serde(default)]
pub struct EndpointIpamJson {
    #[serde(rename = "IPv4Address", deserialize_with = "null_as_default")]
    pub ipv4: String,
    #[serde(rename = "IPv6Address", deserialize_with = "null_as_default")]
    pub ipv6: String,
    #[serde(rename = "LinkLocalIPs", deserialize_with = "null_str_vec")]
    pub link_local_ips: Vec<String>,
}

impl EndpointConfigJson {
    pub fn into_model(self) -> model::EndpointSettings {
        let ipam = self.ipam_config.unwrap_or_default();
        model::EndpointSettings {
            ipv4: Some(ipam.ipv4).filter(|s| !s.is_empty()),
            ipv6: Some(ipam.ipv6).filter(|s| !s.is_empty()),
            mac: Some(self.mac_address).filter(|s| !s.is_empty()),
            link_local_ips: ipam.link_local_ips,
            aliases: self.aliases,
            links: self.links,
            gw_priority: self.gw_priority,
            driver_opts: self.driver_opts,
        }
    }
}

#[derive(Deserialize, Debug, Default)]
#[serde(default)]
pub struct ConnectJson {
    #[serde(rename = "Container", deserialize_with = "null_as_default")]
    pub container: String,
    #[serde(rename = "EndpointConfig")]
    pub endpoint_config: Option<EndpointConfigJson>,
}

#[derive(Deserialize, Debug, Default)]
#[serde(default)]
pub struct DisconnectJson {
    #[serde(rename = "Container", deserialize_with = "null_as_default")]
    pub container: String,
    #[serde(rename = "Force", deserialize_with = "null_as_default")]
    pub force: bool,
}

/// `POST /containers/create`: only the networking part is used.
#[derive(Deserialize, Debug, Default)]
#[serde(default)]
pub struct ContainerCreateJson {
    /// Command `start` runs inside the sandbox.
    #[serde(rename = "Cmd", deserialize_with = "str_slice")]
    pub cmd: Vec<String>,
    /// Beyond Docker: a namespace handed over by a runtime (`/proc/PID/ns/net` or an
    /// `ip netns` name) instead of a new one.
    #[serde(rename = "SandboxKey")]
    pub netns: Option<String>,
    #[serde(rename = "ExposedPorts", deserialize_with = "null_value_map")]
    pub exposed_ports: BTreeMap<String, serde_json::Value>,
    /// Container-wide MAC (deprecated since API 1.44): moved to the main network's endpoint.
    #[serde(rename = "MacAddress", deserialize_with = "null_as_default")]
    pub mac_address: String,
    #[serde(rename = "HostConfig")]
    pub host_config: Option<HostConfigJson>,
    #[serde(rename = "NetworkingConfig")]
    pub networking_config: Option<NetworkingConfigJson>,
}

/// Warning moby returns when a create body still carries the container-wide `MacAddress`.
pub const MAC_DEPRECATED_WARNING: &str =
    "The container-wide MacAddress field is now deprecated. It should be specified in EndpointsConfig instead.";

impl ContainerCreateJson {
    /// moby's `handleMACAddressBC` (API ≥ 1.44): a container-wide MAC moves to the endpoint of
    /// the network mode, with a warning; it must agree with a MAC given there.
    pub fn migrate_mac(&mut self) -> Result<Option<&'static str>, model::Error> {
        if self.mac_address.is_empty() {
            return Ok(None);
        }
        let mode = self
            .host_config
            .as_ref()
            .map(|h| h.network_mode.clone())
            .unwrap_or_default();
        let mode = match mode.as_str() {
            "" | "default" => "bridge".to_string(),
            _ => mode,
        };
        let bridge_or_user = !matches!(mode.as_str(), "host" | "none") && !mode.contains(':');
        if bridge_or_user {
            let nc = self.networking_config.get_or_insert_with(Default::default);
            let ep = nc.endpoints_config.entry(mode).or_default();
            if ep.mac_address.is_empty() {
                ep.mac_address = self.mac_address.clone();
            } else if ep.mac_address != self.mac_address {
                return Err(model::Error::InvalidParameter(
                    "the container-wide MAC address must match the endpoint-specific MAC address for the main network, or be left empty".into(),
                ));
            }
        }
        self.mac_address.clear();
        Ok(Some(MAC_DEPRECATED_WARNING))
    }
}

#[derive(Deserialize, Debug, Default)]
#[serde(default)]
pub struct HostConfigJson {
    #[serde(rename = "NetworkMode", deserialize_with = "null_as_default")]
    pub network_mode: String,
    #[serde(rename = "PortBindings", deserialize_with = "port_bindings_map")]
    pub port_bindings: BTreeMap<String, Vec<PortBindingJson>>,
    #[serde(rename = "PublishAllPorts", deserialize_with = "null_as_default")]
    pub publish_all: bool,
}

#[derive(Deserialize, Serialize, Debug, Default, Clone)]
#[serde(default)]
pub struct PortBindingJson {
    #[serde(rename = "HostIp", deserialize_with = "null_as_default")]
    pub host_ip: String,
    #[serde(rename = "HostPort", deserialize_with = "null_as_default")]
    pub host_port: String,
}

/// `NetworkSettings.Ports`: every exposed or published port, with its bindings or null.
pub fn ports_json(sb: &Sandbox) -> BTreeMap<String, Option<Vec<PortBindingJson>>> {
    let mut m: BTreeMap<String, Option<Vec<PortBindingJson>>> = BTreeMap::new();
    for (p, proto) in &sb.exposed {
        m.entry(crate::ports::key(*p, *proto)).or_insert(None);
    }
    for r in &sb.port_requests {
        m.entry(crate::ports::key(r.container_port, r.proto))
            .or_insert(None);
    }
    for b in &sb.bindings {
        m.entry(crate::ports::key(b.container_port, b.proto))
            .or_insert(None)
            .get_or_insert_with(Vec::new)
            .push(PortBindingJson {
                host_ip: b.host_ip.to_string(),
                host_port: b.host_port.to_string(),
            });
    }
    m
}

#[derive(Deserialize, Debug, Default)]
#[serde(default)]
pub struct NetworkingConfigJson {
    #[serde(rename = "EndpointsConfig", deserialize_with = "null_struct_map")]
    pub endpoints_config: BTreeMap<String, EndpointConfigJson>,
}

/// NetworkSettings.Networks[name] of a container (EndpointSettings, moby order).
#[derive(Serialize)]
pub struct EndpointSettingsJson {
    #[serde(rename = "IPAMConfig")]
    pub ipam_config: Option<EndpointIpamOut>,
    #[serde(rename = "Links")]
    pub links: Option<Vec<String>>,
    #[serde(rename = "Aliases")]
    pub aliases: Option<Vec<String>>,
    #[serde(rename = "MacAddress")]
    pub mac: String,
    #[serde(rename = "DriverOpts")]
    pub driver_opts: Option<BTreeMap<String, String>>,
    #[serde(rename = "GwPriority")]
    pub gw_priority: i64,
    #[serde(rename = "NetworkID")]
    pub network_id: String,
    #[serde(rename = "EndpointID")]
    pub endpoint_id: String,
    #[serde(rename = "Gateway")]
    pub gateway: String,
    #[serde(rename = "IPAddress")]
    pub ip_address: String,
    #[serde(rename = "IPPrefixLen")]
    pub ip_prefix_len: u8,
    #[serde(rename = "IPv6Gateway")]
    pub ipv6_gateway: String,
    #[serde(rename = "GlobalIPv6Address")]
    pub global_ipv6: String,
    #[serde(rename = "GlobalIPv6PrefixLen")]
    pub global_ipv6_prefix_len: u8,
    #[serde(rename = "DNSNames")]
    pub dns_names: Option<Vec<String>>,
}

/// EndpointIPAMConfig as moby shows it (every field `omitempty`).
#[derive(Serialize, Default)]
pub struct EndpointIpamOut {
    #[serde(rename = "IPv4Address", skip_serializing_if = "String::is_empty")]
    pub ipv4: String,
    #[serde(rename = "IPv6Address", skip_serializing_if = "String::is_empty")]
    pub ipv6: String,
    #[serde(rename = "LinkLocalIPs", skip_serializing_if = "Vec::is_empty")]
    pub link_local_ips: Vec<String>,
}

pub fn endpoint_settings_json(state: &State, sb: &Sandbox, ep: &Endpoint) -> EndpointSettingsJson {
    let net = state.network(&ep.network_id);
    let user_defined = net.is_some_and(|n| !n.predefined);
    let ipam = EndpointIpamOut {
        ipv4: ep.requested_ipv4.map(|a| a.to_string()).unwrap_or_default(),
        ipv6: ep.requested_ipv6.map(|a| a.to_string()).unwrap_or_default(),
        link_local_ips: ep.link_local_ips.iter().map(|a| a.to_string()).collect(),
    };
    let has_ipam =
        !(ipam.ipv4.is_empty() && ipam.ipv6.is_empty() && ipam.link_local_ips.is_empty());
    let gw = |v6: bool| {
        let has = if v6 {
            ep.ipv6.is_some()
        } else {
            ep.ipv4.is_some()
        };
        net.filter(|n| has && !n.internal)
            .and_then(|n| n.gateway(v6))
            .map(|g| g.to_string())
            .unwrap_or_default()
    };
    let mut dns = vec![sb.name.clone(), util::short_id(&sb.id).to_string()];
    dns.extend(ep.aliases.iter().cloned());
    EndpointSettingsJson {
        ipam_config: has_ipam.then_some(ipam),
        links: (!ep.links.is_empty()).then(|| ep.links.clone()),
        aliases: (!ep.aliases.is_empty()).then(|| ep.aliases.clone()),
        mac: ep.mac.clone(),
        driver_opts: (!ep.driver_opts.is_empty()).then(|| ep.driver_opts.clone()),
        gw_priority: ep.gw_priority,
        network_id: ep.network_id.clone(),
        endpoint_id: ep.id.clone(),
        gateway: gw(false),
        ip_address: ep.ipv4.map(|a| a.addr().to_string()).unwrap_or_default(),
        ip_prefix_len: ep.ipv4.map(|a| a.prefix_len()).unwrap_or(0),
        ipv6_gateway: gw(true),
        global_ipv6: ep.ipv6.map(|a| a.addr().to_string()).unwrap_or_default(),
        global_ipv6_prefix_len: ep.ipv6.map(|a| a.prefix_len()).unwrap_or(0),
        dns_names: user_defined.then_some(dns),
    }
}

/// `NetworkSettings.Networks` keyed by network name.
pub fn sandbox_networks(state: &State, sb: &Sandbox) -> BTreeMap<String, EndpointSettingsJson> {
    sb.endpoints
        .iter()
        .filter_map(|ep| {
            let n = state.network(&ep.network_id)?;
            Some((n.name.clone(), endpoint_settings_json(state, sb, ep)))
        })
        .collect()
}

fn container_state(sb: &Sandbox, running: &[i32]) -> (&'static str, i64) {
    let pid = sb
        .pid
        .map(|p| p as i32)
        .filter(|p| running.contains(p))
        .or_else(|| running.first().copied())
        .unwrap_or(0);
    let status = if !running.is_empty() {
        "running"
    } else if sb.pid.is_some() {
        "exited"
    } else {
        "created"
    };
    (status, pid as i64)
}

/// `GET /containers/{id}/json` (the parts tools read for networking).
pub fn container_inspect_json(state: &State, sb: &Sandbox, running: Vec<i32>) -> serde_json::Value {
    let (status, pid) = container_state(sb, &running);
    serde_json::json!({
        "Id": sb.id,
        "Created": sb.created,
        "Path": sb.cmd.first().cloned().unwrap_or_default(),
        "Args": sb.cmd.iter().skip(1).collect::<Vec<_>>(),
        "Name": format!("/{}", sb.name),
        "State": {
            "Status": status,
            "Running": status == "running",
            "Pid": pid,
        },
        "HostConfig": { "NetworkMode": sb.network_mode },
        "NetworkSettings": {
            "SandboxID": sb.id,
            "SandboxKey": sb.netns.clone().unwrap_or_default(),
            "Ports": ports_json(sb),
            "Networks": sandbox_networks(state, sb),
        },
    })
}

/// One element of `GET /containers/json`.
pub fn container_list_json(state: &State, sb: &Sandbox, running: Vec<i32>) -> serde_json::Value {
    let created = util::parse_rfc3339(&sb.created).unwrap_or(0);
    let (status, pid) = container_state(sb, &running);
    serde_json::json!({
        "Id": sb.id,
        "Names": [format!("/{}", sb.name)],
        "Image": "",
        "ImageID": "",
        "Command": sb.cmd.join(" "),
        "Created": created,
        "Ports": sb.bindings.iter().map(|b| serde_json::json!({
            "IP": b.host_ip, "PrivatePort": b.container_port, "PublicPort": b.host_port,
            "Type": b.proto.as_str(),
        })).collect::<Vec<_>>(),
        "Labels": {},
        "State": status,
        "Status": status,
        "Pid": pid,
        "HostConfig": { "NetworkMode": sb.network_mode },
        "NetworkSettings": { "Networks": sandbox_networks(state, sb) },
        "Mounts": [],
    })
}

/// `POST /containers/{id}/exec` body (ExecOptions).
#[derive(Deserialize, Debug, Default)]
#[serde(default)]
pub struct ExecCreateJson {
    #[serde(rename = "User", deserialize_with = "null_as_default")]
    pub user: String,
    #[serde(rename = "Privileged", deserialize_with = "null_as_default")]
    pub privileged: bool,
    #[serde(rename = "Tty", deserialize_with = "null_as_default")]
    pub tty: bool,
    #[serde(rename = "AttachStdin", deserialize_with = "null_as_default")]
    pub attach_stdin: bool,
    #[serde(rename = "AttachStderr", deserialize_with = "null_as_default")]
    pub attach_stderr: bool,
    #[serde(rename = "AttachStdout", deserialize_with = "null_as_default")]
    pub attach_stdout: bool,
    #[serde(rename = "DetachKeys", deserialize_with = "null_as_default")]
    pub detach_keys: String,
    #[serde(rename = "Env", deserialize_with = "null_str_vec")]
    pub env: Vec<String>,
    #[serde(rename = "WorkingDir", deserialize_with = "null_as_default")]
    pub working_dir: String,
    #[serde(rename = "Cmd", deserialize_with = "null_str_vec")]
    pub cmd: Vec<String>,
}

/// `POST /exec/{id}/start` body (ExecStartOptions).
#[derive(Deserialize, Debug, Default)]
#[serde(default)]
pub struct ExecStartJson {
    #[serde(rename = "Detach", deserialize_with = "null_as_default")]
    pub detach: bool,
    #[serde(rename = "Tty", deserialize_with = "null_as_default")]
    pub tty: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all_null<T: serde::de::DeserializeOwned>(keys: &[&str]) -> T {
        let obj: serde_json::Map<String, serde_json::Value> = keys
            .iter()
            .map(|k| (k.to_string(), serde_json::Value::Null))
            .collect();
        serde_json::from_value(serde_json::Value::Object(obj))
            .unwrap_or_else(|e| panic!("null in {keys:?}: {e}"))
    }

    /// Every field of every request body accepts `null`, as Go's decoder does.
    #[test]
    fn null_everywhere() {
        let c: CreateNetworkJson = all_null(&[
            "Name",
            "Driver",
            "Scope",
            "EnableIPv4",
            "EnableIPv6",
            "IPAM",
            "Internal",
            "Attachable",
            "Ingress",
            "ConfigOnly",
            "ConfigFrom",
            "Options",
            "Labels",
        ]);
        assert!(c.ipam.is_none() && c.options.is_empty());
        let i: IpamRequestJson = all_null(&["Driver", "Options", "Config"]);
        assert!(i.options.is_none());
        let _: IpamConfigJson = all_null(&["Subnet", "IPRange", "Gateway", "AuxiliaryAddresses"]);
        let _: ConfigFromReq = all_null(&["Network"]);
        let _: EndpointConfigJson = all_null(&[
            "IPAMConfig",
            "Links",
            "Aliases",
            "MacAddress",
            "DriverOpts",
            "GwPriority",
            "NetworkID",
            "EndpointID",
            "Gateway",
            "IPAddress",
            "DNSNames",
        ]);
        let _: EndpointIpamJson = all_null(&["IPv4Address", "IPv6Address", "LinkLocalIPs"]);
        let _: ConnectJson = all_null(&["Container", "EndpointConfig"]);
        let _: DisconnectJson = all_null(&["Container", "Force"]);
        let _: ContainerCreateJson = all_null(&[
            "Cmd",
            "SandboxKey",
            "ExposedPorts",
            "MacAddress",
            "HostConfig",
            "NetworkingConfig",
            "Image",
            "Env",
        ]);
        let _: HostConfigJson = all_null(&["NetworkMode", "PortBindings", "PublishAllPorts"]);
        let _: PortBindingJson = all_null(&["HostIp", "HostPort"]);
        let _: NetworkingConfigJson = all_null(&["EndpointsConfig"]);
        let _: ExecCreateJson = all_null(&[
            "User",
            "Privileged",
            "Tty",
            "AttachStdin",
            "AttachStderr",
            "AttachStdout",
            "DetachKeys",
            "Env",
            "WorkingDir",
            "Cmd",
        ]);
        let _: ExecStartJson = all_null(&["Detach", "Tty"]);
    }

    #[test]
    fn nulls_inside_maps_and_slices_are_zero_values() {
        let c: CreateNetworkJson = serde_json::from_str(
            r#"{"Name":"n","Labels":{"a":null},"IPAM":{"Config":[null,{"Subnet":"10.1.0.0/24","Gateway":null,"AuxiliaryAddresses":{"x":null}}]}}"#,
        )
        .unwrap();
        assert_eq!(c.labels["a"], "");
        let ipam = c.ipam.unwrap();
        assert_eq!(ipam.config.len(), 2);
        assert_eq!(ipam.config[1].gateway, "");
        assert_eq!(ipam.config[1].aux["x"], "");
        let cc: ContainerCreateJson = serde_json::from_str(
            r#"{"Cmd":"sleep","HostConfig":{"PortBindings":{"80/tcp":null,"81/tcp":[null]}},"NetworkingConfig":{"EndpointsConfig":{"n":null}}}"#,
        )
        .unwrap();
        assert_eq!(cc.cmd, ["sleep"]);
        let hc = cc.host_config.unwrap();
        assert!(hc.port_bindings["80/tcp"].is_empty());
        assert_eq!(hc.port_bindings["81/tcp"].len(), 1);
        assert!(cc
            .networking_config
            .unwrap()
            .endpoints_config
            .contains_key("n"));
    }

    #[test]
    fn ipam_options_null_stays_null() {
        let given = |body: &str| {
            let c: CreateNetworkJson = serde_json::from_str(body).unwrap();
            c.into_model().ipam_options
        };
        assert_eq!(given(r#"{"Name":"a"}"#), None);
        assert_eq!(given(r#"{"Name":"a","IPAM":{"Options":null}}"#), None);
        assert_eq!(
            given(r#"{"Name":"a","IPAM":{"Options":{}}}"#),
            Some(BTreeMap::new())
        );
    }

    #[test]
    fn container_wide_mac_moves_to_the_main_endpoint() {
        let mut c: ContainerCreateJson = serde_json::from_str(
            r#"{"MacAddress":"02:00:00:00:00:01","HostConfig":{"NetworkMode":"mynet"}}"#,
        )
        .unwrap();
        assert_eq!(c.migrate_mac().unwrap(), Some(MAC_DEPRECATED_WARNING));
        let eps = &c.networking_config.as_ref().unwrap().endpoints_config;
        assert_eq!(eps["mynet"].mac_address, "02:00:00:00:00:01");
        let mut c: ContainerCreateJson = serde_json::from_str(
            r#"{"MacAddress":"02:00:00:00:00:01","NetworkingConfig":{"EndpointsConfig":{"bridge":{"MacAddress":"02:00:00:00:00:02"}}}}"#,
        )
        .unwrap();
        let e = c.migrate_mac().unwrap_err();
        assert_eq!(e.status(), 400);
        let mut c = ContainerCreateJson::default();
        assert_eq!(c.migrate_mac().unwrap(), None);
    }
}
