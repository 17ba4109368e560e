//! The model's side of multi-host overlay networks: their addresses are allocated
//! cluster-wide through a [`ClusterIpam`] (the daemon's cluster-store client), their records
//! arrive from the store ([`State::adopt_network`]), and endpoints on other hosts are kept
//! here ([`RemoteEndpoint`]) so names and inspect can see them.

use super::{Driver, Endpoint, Error, Network, Result, State};
use crate::store::Kind;
use ipam::{IpNet, SubnetConfig};
use std::net::IpAddr;

/// Cluster-wide address allocation for overlay networks (two hosts never get one address).
pub trait ClusterIpam: Send {
    /// Reserve `requested`, or the lowest free address of `cfg`, for endpoint `owner`.
    fn allocate(
        &self,
        net: &Network,
        cfg: &SubnetConfig,
        requested: Option<IpAddr>,
        owner: &str,
    ) -> Result<IpAddr>;
    /// Give an address back (errors are logged by the implementation).
    fn release(&self, net: &Network, addr: IpAddr);
}

/// An endpoint of an overlay network living on another host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteEndpoint {
    pub network_id: String,
    pub endpoint_id: String,
    /// Its container's name.
    pub name: String,
    pub aliases: Vec<String>,
    pub mac: String,
    pub ipv4: Option<IpAddr>,
    pub ipv6: Option<IpAddr>,
    /// The VXLAN endpoint (host advertise address) it sits behind.
    pub vtep: IpAddr,
}

impl State {
    /// Allow overlay networks, their addresses coming from `ipam`.
    pub fn set_cluster_ipam(&mut self, ipam: Box<dyn ClusterIpam>) {
        self.cluster_ipam = Some(ipam);
    }

    pub fn has_cluster(&self) -> bool {
        self.cluster_ipam.is_some()
    }

    /// Addresses of a new overlay endpoint, from the cluster (then marked in the local
    /// pools too, so a local view stays consistent).
    pub(super) fn new_overlay_addresses(&mut self, net: &Network, ep: &mut Endpoint) -> Result<()> {
        let Some(ipam) = self.cluster_ipam.as_ref() else {
            return Err(Error::Forbidden(format!(
                "network {} is an overlay network and this daemon has no cluster store",
                net.name
            )));
        };
        let mut got: Vec<IpAddr> = Vec::new();
        let mut result = Ok(());
        for v6 in [false, true] {
            let enabled = if v6 { net.enable_ipv6 } else { net.enable_ipv4 };
            let Some(cfg) = net
                .configs()
                .iter()
                .find(|c| c.subnet.addr().is_ipv6() == v6)
            else {
                continue;
            };
            if !enabled {
                continue;
            }
            let requested = if v6 {
                ep.requested_ipv6
            } else {
                ep.requested_ipv4
            };
            match ipam.allocate(net, cfg, requested, &ep.id) {
                Ok(a) => {
                    got.push(a);
                    let n = IpNet::new(a, cfg.subnet.prefix_len()).expect("prefix from subnet");
                    if v6 {
                        ep.ipv6 = Some(n);
                    } else {
                        ep.ipv4 = Some(n);
                    }
                }
                Err(e) => {
                    result = Err(e);
                    break;
                }
            }
        }
        if result.is_ok() {
            if let Some(pools) = self.pools.get_mut(&net.id) {
                for a in &got {
                    // The cluster said it is free; a local record of it is stale.
                    pools.release(*a);
                    let _ = pools.allocate(a.is_ipv6(), Some(*a));
                }
            }
            return Ok(());
        }
        for a in got {
            ipam.release(net, a);
        }
        ep.ipv4 = None;
        ep.ipv6 = None;
        result
    }

    /// Give an overlay endpoint's addresses back to the cluster.
    pub(super) fn release_overlay_addresses(&mut self, ep: &Endpoint) {
        let (Some(ipam), Some(net)) = (
            self.cluster_ipam.as_ref(),
            self.networks.get(&ep.network_id),
        ) else {
            return;
        };
        if net.driver != Driver::Overlay {
            return;
        }
        for a in [ep.ipv4, ep.ipv6].into_iter().flatten() {
            ipam.release(net, a.addr());
        }
    }

    /// A network created on another host (from the cluster store). Returns false when it is
    /// already known.
    pub fn adopt_network(&mut self, n: Network) -> Result<bool> {
        if self.networks.contains_key(&n.id) {
            return Ok(false);
        }
        if let Some(other) = self.networks.values().find(|o| o.name == n.name) {
            return Err(Error::Conflict(format!(
                "network with name {} already exists (local network {}); cluster network {} not adopted",
                n.name, other.id, n.id
            )));
        }
        self.insert_network(n)?;
        Ok(true)
    }

    /// Drop a cluster network removed elsewhere. Refused while local endpoints use it.
    pub fn forget_network(&mut self, id: &str) -> Result<Option<Network>> {
        let Some(n) = self.networks.get(id).cloned() else {
            return Ok(None);
        };
        if !self.endpoints_of(id).is_empty() {
            return Err(Error::Forbidden(format!(
                "network {} was removed from the cluster but has local endpoints",
                n.name
            )));
        }
        if let Some(st) = &self.store {
            st.delete(Kind::Network, id)?;
        }
        self.networks.remove(id);
        self.pools.remove(id);
        self.remotes.retain(|(net, _), _| net != id);
        Ok(Some(n))
    }

    /// Set one driver option of a network (e.g. the VNI once the cluster allocated it).
    pub fn set_network_option(&mut self, id: &str, key: &str, value: &str) -> Result<Network> {
        let mut n = self
            .networks
            .get(id)
            .cloned()
            .ok_or_else(|| Error::NotFound(format!("network {id} not found")))?;
        n.options.insert(key.to_string(), value.to_string());
        self.persist_network(&n)?;
        self.networks.insert(id.to_string(), n.clone());
        Ok(n)
    }

    pub fn put_remote(&mut self, r: RemoteEndpoint) {
        self.remotes
            .insert((r.network_id.clone(), r.endpoint_id.clone()), r);
    }

    pub fn remove_remote(&mut self, network_id: &str, endpoint_id: &str) -> Option<RemoteEndpoint> {
        self.remotes
            .remove(&(network_id.to_string(), endpoint_id.to_string()))
    }

    /// Remote endpoints of one network.
    pub fn remotes_of(&self, network_id: &str) -> Vec<&RemoteEndpoint> {
        self.remotes
            .iter()
            .filter(|((n, _), _)| n == network_id)
            .map(|(_, r)| r)
            .collect()
    }

    /// Forget every remote endpoint (the cluster view is being rebuilt).
    pub fn take_remotes(&mut self) -> Vec<RemoteEndpoint> {
        std::mem::take(&mut self.remotes).into_values().collect()
    }
}
