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
    #[serde(rename = "Subnet", default, skip_serializing_if = "String::is_empty")]
    pub subnet: String,
    #[serde(rename = "IPRange", default, skip_serializing_if = "String::is_empty")]
    pub ip_range: String,
    #[serde(rename = "Gateway", default, skip_serializing_if = "String::is_empty")]
    pub gateway: String,
    #[serde(
        rename = "AuxiliaryAddresses",
        default,
        skip_serializing_if = "BTreeMap::is_empty",
        deserialize_with = "null_as_default"
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

fn null_as_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
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
    #[serde(rename = "Options", deserialize_with = "null_as_default")]
    pub options: BTreeMap<String, String>,
    #[serde(rename = "Labels", deserialize_with = "null_as_default")]
    pub labels: BTreeMap<String, String>,
}

#[derive(Deserialize, Debug, Default)]
#[serde(default)]
pub struct IpamRequestJson {
    #[serde(rename = "Driver", deserialize_with = "null_as_default")]
    pub driver: String,
    #[serde(rename = "Options", deserialize_with = "null_as_default")]
    pub options: BTreeMap<String, String>,
    #[serde(rename = "Config", deserialize_with = "null_as_default")]
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
    #[serde(rename = "Links", deserialize_with = "null_as_default")]
    pub links: Vec<String>,
    #[serde(rename = "Aliases", deserialize_with = "null_as_default")]
    pub aliases: Vec<String>,
    #[serde(rename = "DriverOpts", deserialize_with = "null_as_default")]
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
}

impl EndpointConfigJson {
    pub fn into_model(self) -> model::EndpointSettings {
        let ipam = self.ipam_config.unwrap_or_default();
        model::EndpointSettings {
            ipv4: Some(ipam.ipv4).filter(|s| !s.is_empty()),
            ipv6: Some(ipam.ipv6).filter(|s| !s.is_empty()),
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
    #[serde(rename = "Cmd", deserialize_with = "null_as_default")]
    pub cmd: Vec<String>,
    /// Beyond Docker: a namespace handed over by a runtime (`/proc/PID/ns/net` or an
    /// `ip netns` name) instead of a new one.
    #[serde(rename = "SandboxKey")]
    pub netns: Option<String>,
    #[serde(rename = "ExposedPorts", deserialize_with = "null_as_default")]
    pub exposed_ports: BTreeMap<String, serde_json::Value>,
    #[serde(rename = "HostConfig")]
    pub host_config: Option<HostConfigJson>,
    #[serde(rename = "NetworkingConfig")]
    pub networking_config: Option<NetworkingConfigJson>,
}

#[derive(Deserialize, Debug, Default)]
#[serde(default)]
pub struct HostConfigJson {
    #[serde(rename = "NetworkMode", deserialize_with = "null_as_default")]
    pub network_mode: String,
    #[serde(rename = "PortBindings", deserialize_with = "null_as_default")]
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
    #[serde(rename = "EndpointsConfig", deserialize_with = "null_as_default")]
    pub endpoints_config: BTreeMap<String, EndpointConfigJson>,
}

/// NetworkSettings.Networks[name] of a container (EndpointSettings, moby order).
#[derive(Serialize)]
pub struct EndpointSettingsJson {
    #[serde(rename = "IPAMConfig")]
    pub ipam_config: Option<BTreeMap<String, String>>,
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

pub fn endpoint_settings_json(state: &State, sb: &Sandbox, ep: &Endpoint) -> EndpointSettingsJson {
    let net = state.network(&ep.network_id);
    let user_defined = net.is_some_and(|n| !n.predefined);
    let mut ipam = BTreeMap::new();
    if let Some(a) = ep.requested_ipv4 {
        ipam.insert("IPv4Address".to_string(), a.to_string());
    }
    if let Some(a) = ep.requested_ipv6 {
        ipam.insert("IPv6Address".to_string(), a.to_string());
    }
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
        ipam_config: (!ipam.is_empty()).then_some(ipam),
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
