//! What an operator looks at: metrics gathered on scrape, and packet captures.

use super::{internal, lock, Daemon, Error};
use crate::capture::{self, CaptureReader, Filter, Scope};
use crate::metrics::{Inputs, NetworkInput};
use crate::switch::PortKind;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

/// How long a scrape waits for one NAT engine's counters.
const NAT_STATS_TIMEOUT: Duration = Duration::from_secs(1);

impl Daemon {
    /// Everything but the NAT engines' counters (those are asked for asynchronously).
    fn metrics_inputs(
        &self,
    ) -> Result<(Inputs, Vec<(String, crate::gateway::GatewayHandle)>), Error> {
        let snaps = lock(&self.dp).snapshot().map_err(internal)?;
        // (network id, port index) → (container, interface).
        let mut names: HashMap<(String, u16), (String, String)> = HashMap::new();
        let mut sandbox_names: HashMap<String, String> = HashMap::new();
        let net_names: HashMap<String, (String, String)>;
        {
            let st = self.state();
            let wiring = lock(&self.wiring);
            for sb in st.sandboxes() {
                sandbox_names.insert(sb.id.clone(), sb.name.clone());
                for ep in &sb.endpoints {
                    if let Some((net, port)) = wiring.endpoints.get(&ep.id) {
                        names.insert((net.clone(), port.0), (sb.name.clone(), ep.ifname.clone()));
                    }
                }
            }
            net_names = st
                .networks()
                .map(|n| (n.id.clone(), (n.name.clone(), n.bridge_name())))
                .collect();
        }
        let mut inputs = Inputs::default();
        for s in snaps {
            let Some((name, bridge)) = net_names.get(&s.net).cloned() else {
                continue;
            };
            let port_names = s
                .ports
                .iter()
                .map(|(id, kind, _)| match names.get(&(s.net.clone(), id.0)) {
                    Some(n) => n.clone(),
                    None => {
                        let iface = match kind {
                            PortKind::Host => bridge.clone(),
                            PortKind::Gateway => "gateway".to_string(),
                            PortKind::Tunnel => "vxlan".to_string(),
                            PortKind::Container => id.to_string(),
                        };
                        (String::new(), iface)
                    }
                })
                .collect();
            inputs.networks.push(NetworkInput {
                name,
                snapshot: s,
                port_names,
            });
        }
        inputs.networks.sort_by(|a, b| a.name.cmp(&b.name));
        for (sb, r) in lock(&self.resolvers).iter() {
            let name = sandbox_names.get(sb).cloned().unwrap_or_else(|| sb.clone());
            inputs.dns.push((name, r.stats()));
        }
        inputs.dns.sort_by(|a, b| a.0.cmp(&b.0));
        if let Some((per, host)) = self.tunnel_stats() {
            for (id, vni, s) in per {
                let name = net_names.get(&id).map_or(id, |n| n.0.clone());
                inputs.tunnel.push((name, vni, s));
            }
            inputs.tunnel.sort_by(|a, b| a.0.cmp(&b.0));
            inputs.tunnel_host = Some(host);
        }
        let mut gws: Vec<(String, crate::gateway::GatewayHandle)> = lock(&self.gateways)
            .iter()
            .filter_map(|(id, gw)| Some((net_names.get(id)?.0.clone(), gw.clone())))
            .collect();
        gws.sort_by(|a, b| a.0.cmp(&b.0));
        Ok((inputs, gws))
    }

    /// `GET /metrics`: the Prometheus text exposition ([`crate::metrics`]).
    pub async fn metrics_text(self: &Arc<Self>) -> Result<String, Error> {
        let d = self.clone();
        let (mut inputs, gws) = tokio::task::spawn_blocking(move || d.metrics_inputs())
            .await
            .map_err(internal)??;
        for (name, gw) in gws {
            if let Ok(Ok(s)) = tokio::time::timeout(NAT_STATS_TIMEOUT, gw.stats()).await {
                inputs.nat.push((name, s));
            }
        }
        Ok(crate::metrics::render(&inputs))
    }

    /// Starts a capture of `target`: a network (all of it), or a container's interface
    /// `iface` (default `eth0`). See [`crate::capture`].
    pub fn start_capture(
        &self,
        target: &str,
        iface: Option<&str>,
        filter: &str,
        snaplen: u32,
    ) -> Result<CaptureReader, Error> {
        let filter = Filter::parse(filter).map_err(|e| Error::InvalidParameter(e.to_string()))?;
        let net = self.state().find_network(target).cloned();
        let (net_id, port) = match net {
            Ok(n) => {
                if let Some(i) = iface {
                    return Err(Error::InvalidParameter(format!(
                        "{target} is a network: -i {i} names an interface of a container"
                    )));
                }
                (n.id, None)
            }
            Err(_) => {
                let sb = self.state().find_sandbox(target).cloned().map_err(|_| {
                    Error::NotFound(format!("no such network or container: {target}"))
                })?;
                let ifname = iface.unwrap_or("eth0");
                let Some(ep) = sb.endpoints.iter().find(|e| e.ifname == ifname) else {
                    return Err(Error::NotFound(format!(
                        "container {} has no interface {ifname}",
                        sb.name
                    )));
                };
                let Some((net, port)) = lock(&self.wiring).endpoints.get(&ep.id).cloned() else {
                    return Err(Error::Conflict(format!(
                        "{ifname} of container {} is not on the datapath",
                        sb.name
                    )));
                };
                (net, Some(port))
            }
        };
        let dp = lock(&self.dp);
        if !dp.has_network(&net_id) {
            return Err(Error::InvalidParameter(format!(
                "network {target} has no switch to capture on (host and null networks have none)"
            )));
        }
        let scope = port.map_or(Scope::Network, Scope::Port);
        let (tap, reader) = capture::channel(scope, filter, snaplen);
        dp.add_capture(&net_id, port, tap).map_err(internal)?;
        Ok(reader)
    }
}
