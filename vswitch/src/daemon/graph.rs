//! `GET /vswitch/graph`: the topology as data — networks with their subnets, gateways, host
//! interface and NAT; containers with their interfaces and addresses; for overlays the
//! endpoints on other hosts and the VTEPs from the cluster store. `vswitch network graph`
//! draws it (DOT or SVG).

use super::{host_mac, lock, overlay, Daemon};
use crate::model::Driver;
use serde_json::{json, Value};
use std::collections::BTreeSet;

impl Daemon {
    pub fn graph(&self) -> Value {
        let (store, advertise) = self.cluster_info();
        let local_vtep = self.cluster.as_ref().map(|c| c.settings.advertise);
        let masquerading: BTreeSet<String> = lock(&self.gateways).keys().cloned().collect();
        let st = self.state();
        let mut vteps: BTreeSet<String> = BTreeSet::new();
        let networks: Vec<Value> = st
            .networks()
            .map(|n| {
                let configs = n.configs();
                let host_if = (n.driver == Driver::Bridge && !n.config_only).then(|| {
                    let addrs: Vec<String> = configs
                        .iter()
                        .filter_map(|c| {
                            c.gateway
                                .map(|g| format!("{g}/{}", c.subnet.prefix_len()))
                        })
                        .collect();
                    json!({
                        "Name": n.bridge_name(),
                        "MacAddress": host_mac(&n.id).to_string(),
                        "Addresses": addrs,
                    })
                });
                let containers: Vec<Value> = st
                    .endpoints_of(&n.id)
                    .into_iter()
                    .map(|(sb, ep)| {
                        json!({
                            "Id": sb.id,
                            "Name": sb.name,
                            "EndpointID": ep.id,
                            "Interface": ep.ifname,
                            "MacAddress": ep.mac,
                            "IPv4Address": ep.ipv4.map(|a| a.to_string()).unwrap_or_default(),
                            "IPv6Address": ep.ipv6.map(|a| a.to_string()).unwrap_or_default(),
                        })
                    })
                    .collect();
                let remote: Vec<Value> = st
                    .remotes_of(&n.id)
                    .into_iter()
                    .map(|r| {
                        vteps.insert(r.vtep.to_string());
                        json!({
                            "Name": r.name,
                            "EndpointID": r.endpoint_id,
                            "MacAddress": r.mac,
                            "IPv4Address": r.ipv4.map(|a| cidr(a, configs)).unwrap_or_default(),
                            "IPv6Address": r.ipv6.map(|a| cidr(a, configs)).unwrap_or_default(),
                            "Vtep": r.vtep.to_string(),
                        })
                    })
                    .collect();
                let vni = n
                    .options
                    .get(overlay::VXLANID_LIST)
                    .and_then(|v| v.parse::<u32>().ok());
                json!({
                    "Id": n.id,
                    "Name": n.name,
                    "Driver": n.driver.as_str(),
                    "Scope": n.scope,
                    "Internal": n.internal,
                    "Subnets": configs.iter().map(|c| c.subnet.to_string()).collect::<Vec<_>>(),
                    "Gateways": configs.iter().filter_map(|c| c.gateway).map(|g| g.to_string()).collect::<Vec<_>>(),
                    "HostInterface": host_if,
                    "Masquerade": masquerading.contains(&n.id),
                    "Vni": vni,
                    "Containers": containers,
                    "Remote": remote,
                })
            })
            .collect();
        let containers: Vec<Value> = st
            .sandboxes()
            .map(|sb| {
                let ifs: Vec<Value> = sb
                    .endpoints
                    .iter()
                    .filter_map(|ep| {
                        let n = st.network(&ep.network_id)?;
                        Some(json!({"Name": ep.ifname, "Network": n.name}))
                    })
                    .collect();
                let ports: Vec<Value> = sb
                    .bindings
                    .iter()
                    .map(|b| {
                        json!({
                            "HostIp": b.host_ip.to_string(),
                            "HostPort": b.host_port,
                            "ContainerPort": b.container_port,
                            "Type": b.proto.as_str(),
                        })
                    })
                    .collect();
                json!({"Id": sb.id, "Name": sb.name, "Interfaces": ifs, "Ports": ports})
            })
            .collect();
        let mut vtep_list: Vec<Value> = Vec::new();
        if let Some(v) = local_vtep {
            vteps.remove(&v.to_string());
            vtep_list.push(json!({"Address": v.to_string(), "Local": true}));
        }
        vtep_list.extend(
            vteps
                .into_iter()
                .map(|v| json!({"Address": v, "Local": false})),
        );
        let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|s| s.trim().to_string())
            .unwrap_or_default();
        json!({
            "Host": {
                "Name": hostname,
                "ClusterStore": store,
                "ClusterAdvertise": advertise,
            },
            "Networks": networks,
            "Containers": containers,
            "Vteps": vtep_list,
        })
    }
}

/// An address in CIDR form with its subnet's prefix (as inspect shows local endpoints).
fn cidr(a: std::net::IpAddr, configs: &[ipam::SubnetConfig]) -> String {
    match configs.iter().find(|c| c.subnet.contains(&a)) {
        Some(c) => format!("{a}/{}", c.subnet.prefix_len()),
        None => a.to_string(),
    }
}
