//! Multi-host overlay networks in the daemon: the cluster store client, the host's VXLAN
//! tunnel socket, overlay switches, endpoint records, remote endpoints and docker_gwbridge.
//!
//! - Networks: `network create -d overlay` reserves a VNI and writes the record to the
//!   store; every host adopts records it sees in its watch and brings up a switch with a
//!   tunnel port for each (the host itself has no interface on an overlay, as in Docker).
//! - Endpoints: addresses come from the cluster ([`EtcdIpam`]); a joined endpoint is
//!   published (name, MAC, IPs, this host's VTEP) under this host's lease, so a dead host's
//!   endpoints vanish within the lease TTL. The store refuses a second endpoint with the same
//!   name on a network: Docker's "service endpoint with name … already exists".
//! - Remote endpoints seen in the watch are programmed into the tunnel (MAC → VTEP) and the
//!   switch (static FDB entry, ARP answered locally), so nothing is flooded on the underlay.
//! - docker_gwbridge: see [`Daemon::sync_gwbridge`].
//! - The store may be down: the daemon starts anyway and connects in the background
//!   ([`Daemon::start_cluster_watch`]), retrying with backoff. Overlays known locally come
//!   up at once; their restored endpoints are claimed and published when the store first
//!   answers (after the watch's first snapshot, so overlays removed meanwhile are gone).
//!   Meanwhile overlay operations fail with 503 "cluster store is not available: …".

use super::{internal, lock, Daemon, Error};
use crate::cluster::link::StoreLink;
use crate::cluster::NetworkRecord;
use crate::cluster::{Cluster, ClusterConfig, ClusterError, ClusterEvent, EndpointRecord};
use crate::datapath::Datapath;
use crate::model::{
    self, handover, ClusterIpam, Driver, Endpoint, EndpointSettings, Network, RemoteEndpoint,
    Sandbox,
};
use crate::overlay::TunnelHost;
use crate::switch::{PortId, SwitchConfig};
use crate::wire::MacAddr;
use ipam::{IpNet, SubnetConfig};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Default VXLAN UDP port (IANA; Docker's `--data-path-port` default).
pub const DEFAULT_DATA_PATH_PORT: u16 = encap::VXLAN_PORT;
/// Option naming an overlay's VNI (Docker's, one per subnet; we use one per network).
pub const VXLANID_LIST: &str = "com.docker.network.driver.overlay.vxlanid_list";
/// Overlay MTU when `com.docker.network.driver.mtu` is not given: 1500 − 50.
pub const DEFAULT_OVERLAY_MTU: u32 = crate::overlay::DEFAULT_MTU;

/// `--cluster-store` and friends.
#[derive(Debug, Clone)]
pub struct ClusterSettings {
    /// `etcd://HOST:PORT[,HOST:PORT…]`
    pub store: String,
    /// This host's address on the underlay: VTEP and tunnel socket address.
    pub advertise: IpAddr,
    /// UDP port of the tunnels (4789).
    pub data_path_port: u16,
    /// Lease TTL: how long a dead host's endpoints outlive it.
    pub ttl: Option<Duration>,
}

/// The daemon's cluster side.
pub(super) struct ClusterCtx {
    /// The store client, once it first answered.
    link: Arc<StoreLink>,
    cfg: ClusterConfig,
    host_id: String,
    /// Local overlay endpoints re-attached at restore before the store answered, to claim
    /// and publish when it does: endpoint id → sandbox id.
    unpublished: Mutex<BTreeMap<String, String>>,
    tunnels: Mutex<TunnelHost>,
    /// Overlay networks up on this host: network id → (VNI, tunnel port).
    overlays: Mutex<HashMap<String, (u32, PortId)>>,
    pub settings: ClusterSettings,
}

impl ClusterCtx {
    /// The store client, or 503 while the store has never answered.
    fn client(&self) -> Result<Cluster, Error> {
        self.link.wait().map_err(not_available)
    }
}

fn not_available(why: String) -> Error {
    Error::Unavailable(format!("cluster store is not available: {why}"))
}

/// Cluster-wide IPAM for the model: one store key per address.
struct EtcdIpam {
    link: Arc<StoreLink>,
    rt: tokio::runtime::Handle,
}

impl ClusterIpam for EtcdIpam {
    fn allocate(
        &self,
        net: &Network,
        cfg: &SubnetConfig,
        requested: Option<IpAddr>,
        owner: &str,
    ) -> model::Result<IpAddr> {
        let reserved = reserved_in(cfg);
        let v6 = cfg.subnet.addr().is_ipv6();
        let client = self.link.wait().map_err(not_available)?;
        self.rt
            .block_on(client.allocate_ip(
                &net.id,
                cfg.subnet,
                cfg.ip_range,
                &reserved,
                requested,
                owner,
            ))
            .map_err(|e| match e {
                ClusterError::AddressInUse(_) => Error::Forbidden("Address already in use".into()),
                ClusterError::PoolExhausted => Error::Internal(format!(
                    "no available IPv{} addresses on this network's address pools: {} ({})",
                    if v6 { 6 } else { 4 },
                    net.name,
                    net.id
                )),
                other => cluster_error(other),
            })
    }

    fn release(&self, net: &Network, addr: IpAddr) {
        let Some(client) = self.link.get() else {
            // Never claimed in the store by this run; the old lease's claim expired.
            return;
        };
        if let Err(e) = self.rt.block_on(client.release_ip(&net.id, addr)) {
            tracing::warn!("network {}: releasing {addr} in the cluster: {e}", net.name);
        }
    }
}

/// Addresses of a subnet no endpoint may get: its gateway and aux addresses.
fn reserved_in(cfg: &SubnetConfig) -> Vec<IpAddr> {
    cfg.aux.values().copied().chain(cfg.gateway).collect()
}

fn cluster_error(e: ClusterError) -> Error {
    match e.status() {
        409 => Error::Conflict(e.to_string()),
        403 => Error::Forbidden(e.to_string()),
        503 => Error::Unavailable(e.to_string()),
        _ => Error::Internal(e.to_string()),
    }
}

/// A stable id for this host (its data root), kept across restarts.
fn host_id(data_root: &Path) -> Result<String, Error> {
    let p = data_root.join("host-id");
    if let Ok(s) = std::fs::read_to_string(&p) {
        let s = s.trim();
        if !s.is_empty() {
            return Ok(s.to_string());
        }
    }
    let id = crate::util::new_id();
    crate::util::write_atomic(&p, id.as_bytes()).map_err(internal)?;
    Ok(id)
}

/// The overlay MTU: `com.docker.network.driver.mtu` or 1450.
pub(super) fn overlay_mtu(n: &Network) -> u32 {
    n.options
        .get(model::options::MTU)
        .and_then(|v| v.parse().ok())
        .unwrap_or(DEFAULT_OVERLAY_MTU)
}

fn vni_of(n: &Network) -> Option<u32> {
    n.options
        .get(VXLANID_LIST)
        .and_then(|l| l.split(',').next())
        .and_then(|v| v.trim().parse().ok())
}

impl Daemon {
    /// Parse the cluster settings and open the tunnel socket (at start, outside the
    /// runtime). The store is not contacted here: [`Daemon::start_cluster_watch`] connects
    /// in the background, so the daemon serves local networks whether or not etcd is up.
    pub(super) fn cluster_open(
        settings: &ClusterSettings,
        data_root: &Path,
        rt: &tokio::runtime::Handle,
        state: &mut model::State,
        dp: &mut Datapath,
    ) -> Result<ClusterCtx, Error> {
        let mut cfg =
            ClusterConfig::parse_url(&settings.store, settings.advertise).map_err(|e| {
                Error::InvalidParameter(format!("--cluster-store {}: {e}", settings.store))
            })?;
        if let Some(ttl) = settings.ttl {
            cfg.ttl = ttl;
        }
        let id = host_id(data_root)?;
        let local = SocketAddr::new(settings.advertise, settings.data_path_port);
        // Served from a datapath worker: frames cross no thread between a container and
        // the tunnel (overlay switches go on that worker).
        let tunnels = TunnelHost::start_on(dp, local, settings.data_path_port)
            .map_err(|e| Error::Unavailable(format!("VXLAN tunnel socket on {local}: {e}")))?;
        let link = Arc::new(StoreLink::new());
        state.set_cluster_ipam(Box::new(EtcdIpam {
            link: link.clone(),
            rt: rt.clone(),
        }));
        Ok(ClusterCtx {
            link,
            cfg,
            host_id: id,
            unpublished: Mutex::new(BTreeMap::new()),
            tunnels: Mutex::new(tunnels),
            overlays: Mutex::new(HashMap::new()),
            settings: settings.clone(),
        })
    }

    fn cluster(&self) -> Result<&ClusterCtx, Error> {
        self.cluster.as_ref().ok_or_else(|| {
            Error::Forbidden("overlay networks need a cluster store: start vswitchd with --cluster-store etcd://HOST:PORT --cluster-advertise IP".into())
        })
    }

    /// Connect to the cluster store in the background (retrying with backoff from
    /// [`crate::cluster::RECONNECT_MIN`] up to [`crate::cluster::RECONNECT_MAX`], each
    /// failure logged), then follow it: networks, endpoints of other hosts, and this host's
    /// restored endpoints published once the first snapshot is in. Later outages are
    /// ridden out by the client (member failover, keep-alive and watch re-made).
    pub fn start_cluster_watch(self: &Arc<Self>) {
        let Some(c) = &self.cluster else {
            return;
        };
        c.link.trying();
        let (cfg, host, store) = (c.cfg.clone(), c.host_id.clone(), c.settings.store.clone());
        let vtep = SocketAddr::new(c.settings.advertise, c.settings.data_path_port);
        let link = c.link.clone();
        let weak = Arc::downgrade(self);
        self.rt.spawn(async move {
            tracing::info!("cluster store {store}: connecting");
            let client = Cluster::connect_retrying(cfg, host, |n, e, next| {
                tracing::warn!(
                    "cluster store {store}: attempt {n} failed: {e}; retrying in {next:?}"
                );
                link.failed(e.to_string());
            })
            .await;
            tracing::info!(
                "cluster store {store} joined as {} (VTEP {vtep})",
                client.host_id()
            );
            // Restored endpoints' addresses first, before any new allocation here can
            // take one (publishing waits for the first snapshot).
            if let Some(d) = weak.upgrade() {
                let c2 = client.clone();
                let _ = tokio::task::spawn_blocking(move || d.reclaim_unpublished(&c2)).await;
            }
            link.connected(client.clone());
            let rx = client.watch();
            follow(weak, rx).await;
        });
    }

    /// Claim again the addresses of the endpoints restored before the store answered
    /// (failures are retried by [`Daemon::publish_unpublished`]).
    fn reclaim_unpublished(&self, client: &Cluster) {
        let Some(c) = &self.cluster else {
            return;
        };
        let _op = lock(&self.ops);
        let todo: Vec<(String, String)> = lock(&c.unpublished)
            .iter()
            .map(|(e, s)| (e.clone(), s.clone()))
            .collect();
        for (ep_id, sb_id) in todo {
            let found = self.state().sandbox(&sb_id).and_then(|sb| {
                let ep = sb.endpoints.iter().find(|e| e.id == ep_id)?.clone();
                Some((sb.clone(), ep))
            });
            if let Some((sb, ep)) = found {
                if let Err(e) = self.reclaim_with(client, &sb, &ep) {
                    tracing::warn!(
                        "sandbox {}: {}: reclaiming its address: {e}",
                        sb.name,
                        ep.ifname
                    );
                }
            }
        }
    }

    /// Claim and publish the endpoints restored before the store answered; true if some
    /// are left for another try.
    fn publish_unpublished(&self) -> bool {
        let Some(c) = &self.cluster else {
            return false;
        };
        let Some(client) = c.link.get() else {
            return true;
        };
        let _op = lock(&self.ops);
        let todo: Vec<(String, String)> = lock(&c.unpublished)
            .iter()
            .map(|(e, s)| (e.clone(), s.clone()))
            .collect();
        for (ep_id, sb_id) in todo {
            let found = {
                let st = self.state();
                st.sandbox(&sb_id).and_then(|sb| {
                    let ep = sb.endpoints.iter().find(|e| e.id == ep_id)?.clone();
                    Some((sb.clone(), ep))
                })
            };
            let wired = lock(&self.wiring).endpoints.contains_key(&ep_id);
            let Some((sb, ep)) = found.filter(|_| wired) else {
                lock(&c.unpublished).remove(&ep_id);
                continue;
            };
            let res = self
                .reclaim_with(&client, &sb, &ep)
                .and_then(|_| self.publish_with(&client, &sb, &ep));
            match res {
                Ok(()) => {
                    lock(&c.unpublished).remove(&ep_id);
                    tracing::info!(
                        "sandbox {}: {} published in the cluster",
                        sb.name,
                        ep.ifname
                    );
                }
                Err(e) => tracing::warn!(
                    "sandbox {}: {}: publishing in the cluster: {e}; will retry",
                    sb.name,
                    ep.ifname
                ),
            }
        }
        !lock(&c.unpublished).is_empty()
    }

    fn on_cluster_event(&self, ev: ClusterEvent, snapshot: Option<Snapshot>) {
        let _op = lock(&self.ops);
        match ev {
            ClusterEvent::NetworkPut(r) => self.cluster_network_put(r),
            ClusterEvent::NetworkDeleted { id } => self.cluster_network_gone(&id),
            ClusterEvent::EndpointPut(r) => self.remote_put(r),
            ClusterEvent::EndpointDeleted {
                network_id,
                endpoint_id,
            } => self.remote_gone(&network_id, &endpoint_id),
            // The fresh snapshot follows; what it lacks is swept at `Synced`, so remote
            // endpoints present throughout stay programmed.
            ClusterEvent::Resync => {}
            ClusterEvent::Synced => {
                let Some(snap) = snapshot else {
                    return;
                };
                if let Some(eps) = snap.endpoints {
                    let all = self.state().take_remotes();
                    for r in all {
                        if eps.contains(&(r.network_id.clone(), r.endpoint_id.clone())) {
                            self.state().put_remote(r);
                        } else {
                            self.unprogram_remote(&r);
                        }
                    }
                }
                let stale: Vec<String> = self
                    .state()
                    .networks()
                    .filter(|n| n.driver == Driver::Overlay && !snap.networks.contains(&n.id))
                    .map(|n| n.id.clone())
                    .collect();
                for id in stale {
                    self.cluster_network_gone(&id);
                }
            }
        }
    }

    fn cluster_network_put(&self, r: NetworkRecord) {
        let n = match serde_json::from_value::<Network>(r.body) {
            Ok(n) => n,
            Err(e) => {
                tracing::warn!("cluster network {}: bad record: {e}", r.name);
                return;
            }
        };
        let adopted = self.state().adopt_network(n.clone());
        match adopted {
            Ok(true) => {}
            Ok(false) => return,
            Err(e) => {
                tracing::warn!("cluster network {}: {e}", r.name);
                return;
            }
        }
        if let Err(e) = self.network_up(&n) {
            tracing::error!("overlay {}: {e}", n.name);
        }
        self.refresh_isolation();
        tracing::info!(
            "overlay network {} ({}) joined from the cluster",
            n.name,
            n.id
        );
    }

    fn cluster_network_gone(&self, id: &str) {
        // Bound first: the state guard must not live through the arms (they lock again).
        let forgotten = self.state().forget_network(id);
        match forgotten {
            Ok(Some(n)) => {
                self.network_down(&n);
                self.refresh_isolation();
                tracing::info!("overlay network {} removed from the cluster", n.name);
            }
            Ok(None) => {}
            Err(e) => tracing::warn!("{e}"),
        }
    }

    fn remote_put(&self, r: EndpointRecord) {
        let Some(c) = &self.cluster else {
            return;
        };
        if r.host == c.host_id {
            return;
        }
        let remote = RemoteEndpoint {
            network_id: r.network_id.clone(),
            endpoint_id: r.endpoint_id.clone(),
            name: r.name.clone(),
            aliases: r.aliases.clone(),
            mac: r.mac.clone(),
            ipv4: r.ipv4.map(IpAddr::V4),
            ipv6: r.ipv6.map(IpAddr::V6),
            vtep: r.vtep,
        };
        let old = {
            let mut st = self.state();
            let old = st.remove_remote(&r.network_id, &r.endpoint_id);
            st.put_remote(remote.clone());
            old
        };
        if old.as_ref() == Some(&remote) {
            // Seen again (a fresh snapshot): already programmed.
            return;
        }
        if let Some(old) = old {
            self.unprogram_remote(&old);
        }
        self.program_remote(&remote);
    }

    fn remote_gone(&self, network_id: &str, endpoint_id: &str) {
        let old = self.state().remove_remote(network_id, endpoint_id);
        if let Some(old) = old {
            self.unprogram_remote(&old);
        }
    }

    /// Tell the tunnel and the switch where a remote endpoint lives.
    fn program_remote(&self, r: &RemoteEndpoint) {
        let Some(c) = &self.cluster else {
            return;
        };
        let Some((vni, port)) = lock(&c.overlays).get(&r.network_id).copied() else {
            return;
        };
        let Ok(mac) = r.mac.parse::<MacAddr>() else {
            tracing::warn!("remote endpoint {}: bad MAC {}", r.name, r.mac);
            return;
        };
        {
            let t = lock(&c.tunnels);
            t.add_peer(vni, r.vtep);
            t.set_remote_mac(vni, mac, r.vtep);
        }
        let ips: Vec<IpAddr> = r.ipv4.into_iter().chain(r.ipv6).collect();
        if let Err(e) = lock(&self.dp).set_remote_endpoint(&r.network_id, port, mac, ips) {
            tracing::warn!("remote endpoint {}: {e}", r.name);
        }
    }

    fn unprogram_remote(&self, r: &RemoteEndpoint) {
        let Some(c) = &self.cluster else {
            return;
        };
        let Some((vni, _)) = lock(&c.overlays).get(&r.network_id).copied() else {
            return;
        };
        if let Ok(mac) = r.mac.parse::<MacAddr>() {
            if let Err(e) = lock(&self.dp).remove_remote_endpoint(&r.network_id, mac) {
                tracing::debug!("remote endpoint {}: {e}", r.name);
            }
            lock(&c.tunnels).remove_remote_mac(vni, mac);
        }
        let still_used = self
            .state()
            .remotes_of(&r.network_id)
            .iter()
            .any(|o| o.vtep == r.vtep);
        if !still_used {
            lock(&c.tunnels).remove_peer(vni, r.vtep);
        }
    }

    /// An overlay's switch on this host, with its tunnel port.
    pub(super) fn overlay_up(&self, n: &Network) -> Result<(), Error> {
        let c = self.cluster()?;
        let vni = vni_of(n).ok_or_else(|| internal(format!("overlay {} has no VNI", n.name)))?;
        let cfg = SwitchConfig {
            subnets: n.subnets(),
            internal: n.internal,
            anti_spoofing: n.bridge_options().anti_spoofing,
            ..SwitchConfig::default()
        };
        let mut dp = lock(&self.dp);
        dp.add_overlay_network(&n.id, cfg).map_err(internal)?;
        let port = match lock(&c.tunnels).attach_port(&dp, &n.id, vni, false) {
            Ok(p) => p,
            Err(e) => {
                let _ = dp.remove_network(&n.id);
                return Err(internal(e));
            }
        };
        drop(dp);
        lock(&c.overlays).insert(n.id.clone(), (vni, port));
        let remotes: Vec<RemoteEndpoint> = self
            .state()
            .remotes_of(&n.id)
            .into_iter()
            .cloned()
            .collect();
        for r in &remotes {
            self.program_remote(r);
        }
        Ok(())
    }

    /// Forget an overlay's tunnel attachment (its switch is removed by the caller).
    pub(super) fn overlay_down(&self, n: &Network) {
        let Some(c) = &self.cluster else {
            return;
        };
        if let Some((vni, _)) = lock(&c.overlays).remove(&n.id) {
            if let Err(e) = lock(&c.tunnels).detach(vni) {
                tracing::warn!("overlay {}: tunnel detach: {e}", n.name);
            }
        }
    }

    /// `network create -d overlay`: the model record, then a VNI and the cluster record.
    pub(super) fn create_overlay(&self, n: Network) -> Result<Network, Error> {
        let c = self.cluster()?;
        let requested = vni_of(&n);
        let undo_local = |e: Error| {
            if let Err(e2) = self.state().remove_network(&n.id) {
                tracing::error!("undo of network {}: {e2}", n.name);
            }
            e
        };
        let client = match c.client() {
            Ok(cl) => cl,
            Err(e) => return Err(undo_local(e)),
        };
        let vni = match self.rt.block_on(client.allocate_vni(&n.id, requested)) {
            Ok(v) => v,
            Err(e) => return Err(undo_local(cluster_error(e))),
        };
        let n = match self
            .state()
            .set_network_option(&n.id, VXLANID_LIST, &vni.to_string())
        {
            Ok(n) => n,
            Err(e) => {
                let _ = self.rt.block_on(client.remove_network(&n.id));
                return Err(undo_local(e));
            }
        };
        let rec = NetworkRecord {
            id: n.id.clone(),
            name: n.name.clone(),
            vni,
            body: serde_json::to_value(&n).map_err(internal)?,
        };
        let subnets = n.subnets();
        if let Err(e) = self
            .rt
            .block_on(client.create_network_with_subnets(&rec, &subnets))
        {
            if let Err(e2) = self.rt.block_on(client.remove_network(&n.id)) {
                tracing::warn!("undo of network {} in the cluster: {e2}", n.name);
            }
            let e = match e {
                ClusterError::NetworkNameTaken(name) => {
                    Error::Conflict(format!("network with name {name} already exists"))
                }
                other => cluster_error(other),
            };
            return Err(undo_local(e));
        }
        Ok(n)
    }

    /// `network rm` of an overlay: refused by the store while any host has endpoints on it.
    pub(super) fn remove_overlay_record(&self, n: &Network) -> Result<(), Error> {
        let client = self.cluster()?.client()?;
        self.rt
            .block_on(client.remove_network(&n.id))
            .map_err(|e| match e {
                ClusterError::NetworkInUse(_) => Error::Forbidden(format!(
                    "error while removing network: network {} id {} has active endpoints",
                    n.name, n.id
                )),
                other => cluster_error(other),
            })
    }

    /// Publish a local overlay endpoint (after its interface is up). At restore, before
    /// the store answered, it is left for [`Daemon::publish_unpublished`].
    pub(super) fn publish_endpoint(&self, sb: &Sandbox, ep: &Endpoint) -> Result<(), Error> {
        let c = self.cluster()?;
        if c.link.get().is_none() && lock(&c.unpublished).contains_key(&ep.id) {
            return Ok(());
        }
        let client = c.client()?;
        self.publish_with(&client, sb, ep)
    }

    fn publish_with(&self, client: &Cluster, sb: &Sandbox, ep: &Endpoint) -> Result<(), Error> {
        let c = self.cluster()?;
        let rec = EndpointRecord {
            network_id: ep.network_id.clone(),
            endpoint_id: ep.id.clone(),
            name: sb.name.clone(),
            aliases: ep.aliases.clone(),
            mac: ep.mac.clone(),
            ipv4: match ep.ipv4 {
                Some(IpNet::V4(a)) => Some(a.addr()),
                _ => None,
            },
            ipv6: match ep.ipv6 {
                Some(IpNet::V6(a)) => Some(a.addr()),
                _ => None,
            },
            vtep: c.settings.advertise,
            host: c.host_id.clone(),
        };
        self.rt
            .block_on(client.publish_endpoint(&rec))
            .map_err(|e| match e {
                ClusterError::EndpointNameTaken(_) => Error::Forbidden(e.to_string()),
                other => cluster_error(other),
            })
    }

    pub(super) fn withdraw_endpoint(&self, ep: &Endpoint) {
        let Some(c) = &self.cluster else {
            return;
        };
        lock(&c.unpublished).remove(&ep.id);
        let Some(client) = c.link.get() else {
            // Never published by this run; the old lease's record expires with it.
            return;
        };
        if let Err(e) = self
            .rt
            .block_on(client.withdraw_endpoint(&ep.network_id, &ep.id))
        {
            tracing::warn!("withdrawing endpoint {}: {e}", ep.id);
        }
    }

    /// After a restart: claim the addresses of local overlay endpoints again (they were
    /// held by the old lease); [`Daemon::attach`] then re-publishes the endpoint. Before
    /// the store answered, both are left for [`Daemon::publish_unpublished`].
    pub(super) fn reclaim_addresses(&self, sb: &Sandbox, ep: &Endpoint) -> Result<(), Error> {
        let c = self.cluster()?;
        match c.link.get() {
            Some(client) => self.reclaim_with(&client, sb, ep),
            None => {
                lock(&c.unpublished).insert(ep.id.clone(), sb.id.clone());
                Ok(())
            }
        }
    }

    fn reclaim_with(&self, client: &Cluster, sb: &Sandbox, ep: &Endpoint) -> Result<(), Error> {
        let Some(n) = self.state().network(&ep.network_id).cloned() else {
            return Ok(());
        };
        for a in [ep.ipv4, ep.ipv6].into_iter().flatten() {
            let Some(cfg) = n.configs().iter().find(|c| c.subnet.contains(&a.addr())) else {
                continue;
            };
            let reserved = reserved_in(cfg);
            match self.rt.block_on(client.allocate_ip(
                &n.id,
                cfg.subnet,
                cfg.ip_range,
                &reserved,
                Some(a.addr()),
                &ep.id,
            )) {
                Ok(_) => {}
                // Still ours from the previous lease (or re-claimed): fine either way only if
                // nobody else took it, which the store cannot tell apart here; log it.
                Err(ClusterError::AddressInUse(ip)) => {
                    tracing::debug!("sandbox {}: address {ip} still recorded", sb.name)
                }
                Err(e) => return Err(cluster_error(e)),
            }
        }
        Ok(())
    }

    /// docker_gwbridge (libnetwork `needDefaultGW`): a sandbox on a non-internal overlay with
    /// no other way out gets an endpoint on the per-host docker_gwbridge network (created on
    /// first need: ICC off, masquerade on, next free local pool); the leg goes away when
    /// another network gives it a default route or it leaves its overlays.
    pub(super) fn sync_gwbridge(&self, sandbox_id: &str) -> Result<(), Error> {
        let (sb, needs, has) = {
            let st = self.state();
            let Some(sb) = st.sandbox(sandbox_id).cloned() else {
                return Ok(());
            };
            let cands: Vec<handover::GwbridgeCandidate> = sb
                .endpoints
                .iter()
                .map(|e| {
                    let n = st.network(&e.network_id);
                    handover::GwbridgeCandidate {
                        overlay: n.is_some_and(|n| n.driver == Driver::Overlay),
                        internal: n.is_none_or(|n| n.internal),
                        gwbridge: n.is_some_and(|n| n.name == handover::GWBRIDGE_NAME),
                        has_gateway: n.is_some_and(|n| {
                            n.driver == Driver::Bridge
                                && (e.ipv4.and(n.gateway(false)).is_some()
                                    || e.ipv6.and(n.gateway(true)).is_some())
                        }),
                    }
                })
                .collect();
            let has = sb.endpoints.iter().find(|e| {
                st.network(&e.network_id)
                    .is_some_and(|n| n.name == handover::GWBRIDGE_NAME)
            });
            (sb.clone(), handover::needs_gwbridge(&cands), has.cloned())
        };
        match (needs, has) {
            (true, None) => {
                let exists = self
                    .state()
                    .networks()
                    .any(|n| n.name == handover::GWBRIDGE_NAME);
                if !exists {
                    self.create_gwbridge()?;
                }
                let (sb2, ep) = self.state().connect(
                    handover::GWBRIDGE_NAME,
                    &sb.id,
                    EndpointSettings::default(),
                )?;
                if let Some(ns) = sb2.netns.as_deref() {
                    if let Err(e) = self.attach(&sb2, &ep, Path::new(ns)) {
                        self.detach(&ep);
                        let _ = self.state().disconnect(&ep.network_id, &sb.id, true);
                        return Err(e);
                    }
                }
                Ok(())
            }
            (false, Some(ep)) => {
                let (_, ep) = self.state().disconnect(&ep.network_id, &sb.id, true)?;
                self.detach(&ep);
                Ok(())
            }
            _ => Ok(()),
        }
    }

    fn create_gwbridge(&self) -> Result<(), Error> {
        let options: BTreeMap<String, String> = [
            (model::options::BRIDGE_NAME, handover::GWBRIDGE_NAME),
            (model::options::ENABLE_ICC, "false"),
            (model::options::ENABLE_IP_MASQUERADE, "true"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let req = model::CreateNetwork {
            name: handover::GWBRIDGE_NAME.into(),
            options,
            ..Default::default()
        };
        self.create_network_locked(req).map(|_| ())
    }

    pub(super) fn cluster_info(&self) -> (String, String) {
        match &self.cluster {
            Some(c) => (
                c.settings.store.clone(),
                SocketAddr::new(c.settings.advertise, c.settings.data_path_port).to_string(),
            ),
            None => (String::new(), String::new()),
        }
    }

    /// `GET /info` `ClusterStoreStatus`: whether the store answers, and why not.
    pub(super) fn cluster_status(&self) -> serde_json::Value {
        let Some(c) = &self.cluster else {
            return serde_json::json!({ "State": "disabled" });
        };
        let s = c.link.status();
        serde_json::json!({
            "State": s.state,
            "Endpoints": c.cfg.endpoints,
            "Member": s.member,
            "FailedAttempts": s.failures,
            "LastError": s.last_error,
            "Unpublished": lock(&c.unpublished).len(),
        })
    }

    /// The tunnel's counters for metrics: per overlay network up here (network id, VNI,
    /// counters) and host-wide; `None` without a cluster store.
    pub(super) fn tunnel_stats(&self) -> Option<TunnelCounters> {
        let c = self.cluster.as_ref()?;
        let nets: Vec<(String, u32)> = lock(&c.overlays)
            .iter()
            .map(|(id, (vni, _))| (id.clone(), *vni))
            .collect();
        let t = lock(&c.tunnels);
        let per = nets
            .into_iter()
            .filter_map(|(id, vni)| t.stats(vni).map(|s| (id, vni, s)))
            .collect();
        Some((per, t.host_stats()))
    }

    /// Graceful stop: revoke the lease so other hosts drop our endpoints at once.
    pub fn close_cluster(&self) {
        if let Some(client) = self.cluster.as_ref().and_then(|c| c.link.get()) {
            self.rt.block_on(client.close());
        }
    }
}

/// What a watch snapshot held, handed to the `Synced` handler.
struct Snapshot {
    networks: HashSet<String>,
    /// After a `Resync`: the endpoints of the fresh snapshot (the others are swept).
    endpoints: Option<HashSet<(String, String)>>,
}

/// Apply the watch's events to the daemon until it or the watch goes away; after the
/// first snapshot, publish the endpoints restored before the store answered (retried
/// with backoff while the store refuses).
async fn follow(weak: std::sync::Weak<Daemon>, mut rx: tokio::sync::mpsc::Receiver<ClusterEvent>) {
    let mut networks: HashSet<String> = HashSet::new();
    let mut endpoints: Option<HashSet<(String, String)>> = None;
    let mut first = true;
    while let Some(ev) = rx.recv().await {
        let Some(d) = weak.upgrade() else {
            break;
        };
        match &ev {
            ClusterEvent::Resync => {
                networks.clear();
                endpoints = Some(HashSet::new());
            }
            ClusterEvent::NetworkPut(r) => {
                networks.insert(r.id.clone());
            }
            ClusterEvent::EndpointPut(r) => {
                if let Some(eps) = &mut endpoints {
                    eps.insert((r.network_id.clone(), r.endpoint_id.clone()));
                }
            }
            _ => {}
        }
        let synced = matches!(ev, ClusterEvent::Synced);
        let snapshot = synced.then(|| Snapshot {
            networks: networks.clone(),
            endpoints: endpoints.take(),
        });
        let d2 = d.clone();
        let r = tokio::task::spawn_blocking(move || d2.on_cluster_event(ev, snapshot)).await;
        if let Err(e) = r {
            tracing::error!("cluster event handler: {e}");
        }
        if synced && first {
            first = false;
            let weak = weak.clone();
            tokio::spawn(async move {
                let mut pause = crate::cluster::RECONNECT_MIN;
                loop {
                    let Some(d) = weak.upgrade() else {
                        return;
                    };
                    let more = tokio::task::spawn_blocking(move || d.publish_unpublished())
                        .await
                        .unwrap_or(false);
                    if !more {
                        return;
                    }
                    tokio::time::sleep(pause).await;
                    pause = crate::cluster::failover::next_backoff(
                        pause,
                        crate::cluster::RECONNECT_MAX,
                    );
                }
            });
        }
    }
}

/// Per overlay network (id, VNI, counters), and the host-wide tunnel counters.
pub(super) type TunnelCounters = (
    Vec<(String, u32, crate::overlay::TunnelStats)>,
    crate::overlay::HostStats,
);

/// Whether an endpoint is on an overlay (its records live in the cluster store).
pub(super) fn is_overlay(d: &Daemon, ep: &Endpoint) -> bool {
    d.state()
        .network(&ep.network_id)
        .is_some_and(|n| n.driver == Driver::Overlay)
}
