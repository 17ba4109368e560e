//! The daemon: the model behind a lock, the datapath, and the operations the API serves.
//! Every mutating operation changes the model first (persisted), then the datapath; when the
//! datapath step fails the model change is undone, so nothing is left half-made.

mod cni;
mod facts;
mod graph;
pub mod lock;
mod observe;
mod overlay;
mod plugin;
mod restore;

pub use overlay::{ClusterSettings, DEFAULT_DATA_PATH_PORT};

use crate::api::filters::{self, Filters};
use crate::api::json;
use crate::datapath::Datapath;
use crate::gateway::{Gateway, GatewayConfig, GatewayHandle, Publication};
use crate::model::{
    self, Driver, Endpoint, EndpointSettings, Error, Network, PoolSettings, Sandbox, State,
};
use crate::port::PortKind;
use crate::sandbox::{self, DefaultRoute, PortSpec};
use crate::store::Store;
use crate::switch::{PortConfig, PortId, SwitchConfig};
use crate::wire::MacAddr;
use ipam::IpNet;
use std::collections::HashMap;
use std::net::IpAddr;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

#[derive(Debug, Clone)]
pub struct Config {
    pub data_root: PathBuf,
    pub exec_root: PathBuf,
    pub pools: PoolSettings,
    /// Datapath worker threads (0 = one per core).
    pub workers: usize,
    /// How long a worker polls after traffic before sleeping (`--busy-poll-us`).
    pub busy_poll: std::time::Duration,
    /// `--tap-queues`: workers a bridge network spans, one TAP queue each
    /// ([`Datapath::set_tap_queues`]; 1: a network on one worker).
    pub tap_queues: usize,
    /// Upstream resolvers for names the embedded DNS does not know (`--dns`; default: the
    /// host's resolv.conf at start).
    pub dns: Vec<SocketAddr>,
    /// `--cluster-store`: multi-host overlay networks.
    pub cluster: Option<ClusterSettings>,
}

/// Where each attached endpoint sits on the datapath.
#[derive(Default)]
struct Wiring {
    /// endpoint id → (network id, port)
    endpoints: HashMap<String, (String, PortId)>,
}

pub struct Daemon {
    state: Arc<Mutex<State>>,
    rt: tokio::runtime::Handle,
    /// Embedded DNS servers, one per sandbox on a user-defined network.
    resolvers: Mutex<HashMap<String, crate::dns::Resolver>>,
    /// Egress NAT engines, one per masquerading network (network id → handle).
    gateways: Mutex<HashMap<String, GatewayHandle>>,
    /// Every local network's subnets, refused by all NAT engines (inter-network isolation).
    isolation: crate::gateway::nat::Isolation,
    /// Published-port listeners per sandbox; dropping them closes the listeners.
    publications: Mutex<HashMap<String, Vec<Publication>>>,
    pub config: Config,
    dp: Mutex<Datapath>,
    wiring: Mutex<Wiring>,
    /// Serializes mutating operations (model + datapath as one step).
    ops: Mutex<()>,
    /// Held while a prune runs: a second concurrent prune is refused, as in Docker.
    prune_running: Mutex<()>,
    /// The cluster store and the VXLAN tunnel socket, with `--cluster-store`.
    cluster: Option<overlay::ClusterCtx>,
    /// `docker exec` instances (API).
    pub execs: crate::api::exec::Execs,
    /// Endpoints made through the Docker remote driver.
    docker: plugin::DockerEndpoints,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding a lock must not wedge the API.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn internal(e: impl std::fmt::Display) -> Error {
    Error::Internal(e.to_string())
}

impl Daemon {
    /// Open the store, replay it, start the datapath and bring every network and surviving
    /// sandbox back. Problems are logged with what was affected; they do not stop the daemon.
    pub fn open(config: Config, rt: tokio::runtime::Handle) -> Result<Self, Error> {
        let store = Store::open(&config.data_root)?;
        let (mut state, report) = State::open(store, config.pools.clone())?;
        for p in &report.problems {
            tracing::warn!("restore: {p}");
        }
        let mut dp = Datapath::start_polling(config.workers, config.busy_poll).map_err(internal)?;
        dp.set_tap_queues(config.tap_queues);
        let cluster = match &config.cluster {
            Some(cs) => Some(Daemon::cluster_open(
                cs,
                &config.data_root,
                &rt,
                &mut state,
                &mut dp,
            )?),
            None => None,
        };
        let d = Daemon {
            state: Arc::new(Mutex::new(state)),
            rt,
            resolvers: Mutex::new(HashMap::new()),
            gateways: Mutex::new(HashMap::new()),
            isolation: Default::default(),
            publications: Mutex::new(HashMap::new()),
            config,
            dp: Mutex::new(dp),
            wiring: Mutex::new(Wiring::default()),
            ops: Mutex::new(()),
            prune_running: Mutex::new(()),
            cluster,
            execs: Default::default(),
            docker: Default::default(),
        };
        d.restore();
        Ok(d)
    }

    /// Recompute the isolation list from the networks that exist now.
    fn refresh_isolation(&self) {
        let nets: Vec<(IpNet, Vec<IpAddr>)> = self
            .state()
            .networks()
            .filter(|n| !n.config_only && matches!(n.driver, Driver::Bridge | Driver::Overlay))
            .flat_map(|n| {
                n.configs()
                    .iter()
                    .map(|c| (c.subnet, c.gateway.into_iter().collect()))
                    .collect::<Vec<_>>()
            })
            .collect();
        self.isolation.set(nets);
    }

    pub fn state(&self) -> MutexGuard<'_, State> {
        lock(&self.state)
    }

    // ---- datapath glue -------------------------------------------------------------------

    /// A bridge network's switch and host interface (holding the gateway).
    fn network_up(&self, n: &Network) -> Result<(), Error> {
        if n.driver == Driver::Overlay && !n.config_only {
            return self.overlay_up(n);
        }
        if n.driver != Driver::Bridge || n.config_only {
            return Ok(());
        }
        let opts = n.bridge_options();
        let cfg = SwitchConfig {
            subnets: n.subnets(),
            enable_icc: opts.enable_icc,
            internal: n.internal,
            anti_spoofing: opts.anti_spoofing,
            ..SwitchConfig::default()
        };
        let mut dp = lock(&self.dp);
        dp.add_network(&n.id, cfg).map_err(internal)?;
        let mac = host_mac(&n.id);
        let gw4 = n.gateway(false).zip(prefix_of(n, false));
        let gw6 = n.gateway(true).zip(prefix_of(n, true));
        let spec = PortSpec {
            ifname: n.bridge_name(),
            mac: mac.to_string(),
            ipv4: gw4.and_then(|(a, p)| IpNet::new(a, p).ok()),
            ipv6: gw6.and_then(|(a, p)| IpNet::new(a, p).ok()),
            link_local: Vec::new(),
            mtu: opts.mtu,
        };
        let tap = match sandbox::create_host_iface(&spec, dp.queues_of(&n.id)) {
            Ok(t) => t,
            Err(e) => {
                let _ = dp.remove_network(&n.id);
                return Err(Error::Forbidden(format!(
                    "cannot create interface {} for network {}: {e}",
                    spec.ifname, n.name
                )));
            }
        };
        let mut pc = PortConfig::host(mac);
        if let Some((IpAddr::V4(a), _)) = gw4 {
            pc = pc.with_ipv4(a);
        }
        if let Some((IpAddr::V6(a), _)) = gw6 {
            pc = pc.with_ipv6(a);
        }
        if let Err(e) = dp.add_port(&n.id, pc, tap.into(), None) {
            let _ = dp.remove_network(&n.id);
            return Err(internal(e));
        }
        // Masquerade: off-subnet traffic goes to the userspace NAT engine instead of the
        // host interface. Internal networks have no way out at all.
        if opts.enable_ip_masquerade && !n.internal {
            let mut gc = GatewayConfig::new(&n.id, mac, n.subnets());
            gc.gateway_v4 = match gw4 {
                Some((IpAddr::V4(a), _)) => Some(a),
                _ => None,
            };
            gc.gateway_v6 = match gw6 {
                Some((IpAddr::V6(a), _)) => Some(a),
                _ => None,
            };
            gc.mtu = opts.mtu as usize;
            gc.isolation = self.isolation.clone();
            let (v4, v6) = (gc.gateway_v4, gc.gateway_v6);
            let started = Gateway::start(&self.rt, gc)
                .map_err(internal)
                .and_then(|(gw, io)| {
                    let mut pc = PortConfig::gateway(mac);
                    if let Some(a) = v4 {
                        pc = pc.with_ipv4(a);
                    }
                    if let Some(a) = v6 {
                        pc = pc.with_ipv6(a);
                    }
                    dp.add_port(&n.id, pc, io, None).map_err(internal)?;
                    Ok(gw)
                });
            match started {
                Ok(gw) => {
                    lock(&self.gateways).insert(n.id.clone(), gw);
                }
                Err(e) => {
                    let _ = dp.remove_network(&n.id);
                    return Err(e);
                }
            }
        }
        Ok(())
    }

    fn network_down(&self, n: &Network) {
        if let Some(gw) = lock(&self.gateways).remove(&n.id) {
            gw.shutdown();
        }
        if let Err(e) = lock(&self.dp).remove_network(&n.id) {
            tracing::warn!("network {}: datapath teardown: {e}", n.name);
        }
        if n.driver == Driver::Overlay {
            self.overlay_down(n);
        }
    }

    /// Create the endpoint's TAP inside the sandbox and plug it into its network's switch.
    fn attach(&self, sb: &Sandbox, ep: &Endpoint, ns: &Path) -> Result<(), Error> {
        let Some(n) = self.state().network(&ep.network_id).cloned() else {
            return Err(Error::NotFound(format!(
                "network {} not found",
                ep.network_id
            )));
        };
        self.ensure_network_up(&n)?;
        let mtu = match n.driver {
            Driver::Bridge => n.bridge_options().mtu,
            Driver::Overlay => overlay::overlay_mtu(&n),
            _ => return Ok(()),
        };
        let mac: MacAddr = ep
            .mac
            .parse()
            .map_err(|_| internal(format!("bad MAC {}", ep.mac)))?;
        let spec = PortSpec {
            ifname: ep.ifname.clone(),
            mac: ep.mac.clone(),
            ipv4: ep.ipv4,
            ipv6: ep.ipv6,
            link_local: ep.link_local_nets(),
            mtu,
        };
        let queues = lock(&self.dp).queues_of(&n.id);
        let io = match port_kind(&n) {
            PortKind::Tap => sandbox::create_port(ns, &spec, queues).map(Into::into),
            PortKind::Veth => sandbox::create_veth_port(ns, &veth_host_name(&ep.id), &spec),
        }
        .map_err(|e| {
            internal(format!(
                "sandbox {}: cannot create {}: {e}",
                sb.name, ep.ifname
            ))
        })?;
        let port = self.plug(&n, ep, mac, io)?;
        if n.driver == Driver::Overlay {
            if let Err(e) = self.publish_endpoint(sb, ep) {
                lock(&self.wiring).endpoints.remove(&ep.id);
                let _ = lock(&self.dp).remove_port(&n.id, port);
                return Err(e);
            }
        }
        self.learn_neighbors(&n.id, ep, mac);
        Ok(())
    }

    /// Plug an endpoint's device (wherever it lives) into its network's switch. Shared by
    /// sandboxes and the runtime plugins.
    fn plug(
        &self,
        n: &Network,
        ep: &Endpoint,
        mac: MacAddr,
        io: crate::port::PortIo,
    ) -> Result<PortId, Error> {
        let mut pc = PortConfig::container(mac);
        let mut announce = None;
        if let Some(IpNet::V4(a)) = ep.ipv4 {
            pc = pc.with_ipv4(a.addr());
            announce = Some((mac, a.addr()));
        }
        if let Some(IpNet::V6(a)) = ep.ipv6 {
            pc = pc.with_ipv6(a.addr());
        }
        // Its link-local addresses are its own too (anti-spoofing, ARP answers).
        for a in &ep.link_local_ips {
            pc = match *a {
                IpAddr::V4(a) => pc.with_ipv4(a),
                IpAddr::V6(a) => pc.with_ipv6(a),
            };
        }
        let port = lock(&self.dp)
            .add_port(&n.id, pc, io, announce)
            .map_err(internal)?;
        lock(&self.wiring)
            .endpoints
            .insert(ep.id.clone(), (n.id.clone(), port));
        Ok(port)
    }

    /// The NAT engine answers for the endpoint's addresses with its MAC.
    fn learn_neighbors(&self, network_id: &str, ep: &Endpoint, mac: MacAddr) {
        if let Some(gw) = lock(&self.gateways).get(network_id) {
            for a in [ep.ipv4, ep.ipv6].into_iter().flatten() {
                gw.add_neighbor(a.addr(), mac);
            }
        }
    }

    /// Unplug an endpoint; its interface disappears from the sandbox.
    fn detach(&self, ep: &Endpoint) {
        let w = lock(&self.wiring).endpoints.remove(&ep.id);
        if w.is_some() && overlay::is_overlay(self, ep) {
            self.withdraw_endpoint(ep);
        }
        if let Some(gw) = lock(&self.gateways).get(&ep.network_id) {
            for a in [ep.ipv4, ep.ipv6].into_iter().flatten() {
                gw.remove_neighbor(a.addr());
            }
        }
        match w {
            Some((net, port)) => {
                if let Err(e) = lock(&self.dp).remove_port(&net, port) {
                    tracing::warn!("detach {}: {e}", ep.ifname);
                }
            }
            // Not wired (a failed restore): a veth pair left by the previous daemon is ours.
            None => {
                let veth = self.state().network(&ep.network_id).map(port_kind);
                if veth == Some(PortKind::Veth) {
                    crate::port::veth::delete(&veth_host_name(&ep.id));
                }
            }
        }
    }

    /// Set the sandbox's default route from Docker's endpoint order (handover).
    fn apply_default_route(&self, sandbox_id: &str) -> Result<(), Error> {
        let (ns, want) = {
            let st = self.state();
            let Some(sb) = st.sandbox(sandbox_id) else {
                return Ok(());
            };
            let Some(ns) = sb.netns.clone() else {
                return Ok(());
            };
            let mut want = DefaultRoute::default();
            if let Some(i) = st.default_gateway_endpoint(sb) {
                let ep = &sb.endpoints[i];
                if let Some(n) = st.network(&ep.network_id) {
                    if ep.ipv4.is_some() {
                        want.v4 = n.gateway(false).map(|g| (g, ep.ifname.clone()));
                    }
                    if ep.ipv6.is_some() {
                        want.v6 = n.gateway(true).map(|g| (g, ep.ifname.clone()));
                    }
                }
            }
            (PathBuf::from(ns), want)
        };
        sandbox::set_default_route(&ns, &want).map_err(internal)
    }

    /// Give the sandbox the embedded DNS when it is on a user-defined network (resolver on
    /// 127.0.0.11 inside, resolv.conf naming it), the host's resolv.conf otherwise.
    fn sync_dns(&self, sandbox_id: &str) -> Result<(), Error> {
        let (ns, wants) = {
            let st = self.state();
            let Some(sb) = st.sandbox(sandbox_id) else {
                lock(&self.resolvers).remove(sandbox_id);
                return Ok(());
            };
            (sb.netns.clone(), crate::names::sandbox_has_dns(&st, sb))
        };
        let Some(ns) = ns else {
            return Ok(());
        };
        let host = std::fs::read_to_string(crate::host::RESOLV_CONF).unwrap_or_default();
        let text = if wants {
            crate::dns::sandbox_resolv_conf(&host)
        } else {
            host
        };
        let path = resolv_conf_path(&self.config.exec_root, sandbox_id);
        if let Some(d) = path.parent() {
            std::fs::create_dir_all(d).map_err(internal)?;
        }
        crate::util::write_atomic(&path, text.as_bytes()).map_err(internal)?;
        let mut rs = lock(&self.resolvers);
        if wants && !rs.contains_key(sandbox_id) {
            let view = Arc::new(crate::names::LiveNames(self.state.clone()));
            let r = crate::dns::Resolver::start(
                &self.rt,
                Path::new(&ns),
                sandbox_id.to_string(),
                view,
                self.config.dns.clone(),
            )
            .map_err(internal)?;
            rs.insert(sandbox_id.to_string(), r);
        } else if !wants {
            rs.remove(sandbox_id);
        }
        Ok(())
    }

    /// Bind a sandbox's published ports on the network that gives it its default route
    /// (none on internal networks, as Docker ignores them there). With `exact`, re-bind the
    /// recorded host ports (restart). All or nothing: on failure every listener made is closed.
    fn publish(&self, sandbox_id: &str, exact: bool) -> Result<(), Error> {
        use crate::ports::{Binding, Proto as P};
        let (sb, target) = {
            let st = self.state();
            let Some(sb) = st.sandbox(sandbox_id).cloned() else {
                return Ok(());
            };
            let target = st.default_gateway_endpoint(&sb).and_then(|i| {
                let ep = sb.endpoints[i].clone();
                let n = st.network(&ep.network_id)?.clone();
                Some((ep, n))
            });
            (sb, target)
        };
        if sb.port_requests.is_empty() {
            return Ok(());
        }
        let Some((ep, net)) = target.filter(|(_, n)| !n.internal) else {
            return Ok(());
        };
        let Some(gw) = lock(&self.gateways).get(&net.id).cloned() else {
            return Err(Error::InvalidParameter(format!(
                "cannot publish ports on network {}: publishing needs com.docker.network.bridge.enable_ip_masquerade=true",
                net.name
            )));
        };
        let Some(cip) = ep.ipv4.map(|a| a.addr()) else {
            return Ok(());
        };
        let default_ip = IpAddr::V4(net.bridge_options().host_binding_ipv4);
        let mut made = Vec::new();
        let mut bindings = Vec::new();
        for (i, r) in sb.port_requests.iter().enumerate() {
            let host_ip = r.host_ip.unwrap_or(default_ip);
            let proto = match r.proto {
                P::Tcp => crate::gateway::Proto::Tcp,
                P::Udp => crate::gateway::Proto::Udp,
            };
            let candidates: Vec<u16> = match (exact, sb.bindings.get(i), r.host_ports) {
                (true, Some(b), _) => vec![b.host_port],
                (_, _, Some((a, b))) => (a..=b).collect(),
                (_, _, None) => vec![0],
            };
            let container = SocketAddr::new(cip, r.container_port);
            let mut last_err = None;
            let mut bound = None;
            for hp in candidates {
                match gw.publish(proto, SocketAddr::new(host_ip, hp), container) {
                    Ok(p) => {
                        bound = Some(p);
                        break;
                    }
                    Err(e) => last_err = Some(e),
                }
            }
            match bound {
                Some(p) => {
                    bindings.push(Binding {
                        proto: r.proto,
                        container_port: r.container_port,
                        host_ip,
                        host_port: p.local_addr().port(),
                    });
                    made.push(p);
                }
                None => {
                    drop(made);
                    let msg = last_err.map(|e| e.to_string()).unwrap_or_default();
                    return Err(Error::Internal(format!(
                        "driver failed programming external connectivity on endpoint {} ({}): {msg}",
                        sb.name, ep.id
                    )));
                }
            }
        }
        self.state()
            .update_sandbox(&sb.id, |s| s.bindings = bindings)?;
        lock(&self.publications).insert(sb.id.clone(), made);
        Ok(())
    }

    // ---- API operations ------------------------------------------------------------------

    pub fn version(&self) -> serde_json::Value {
        let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .map(|s| s.trim().to_string())
            .unwrap_or_default();
        serde_json::json!({
            "Platform": { "Name": "vswitch" },
            "Components": [{
                "Name": "vswitchd",
                "Version": env!("CARGO_PKG_VERSION"),
                // The docker CLI decodes Details as map[string]string.
                "Details": {
                    "ApiVersion": crate::api::API_VERSION,
                    "MinAPIVersion": crate::api::MIN_API_VERSION,
                    "Datapath": self.datapath_facts().to_string(),
                },
            }],
            "Version": env!("CARGO_PKG_VERSION"),
            "ApiVersion": crate::api::API_VERSION,
            "MinAPIVersion": crate::api::MIN_API_VERSION,
            "GitCommit": "",
            "GoVersion": "",
            "Os": "linux",
            "Arch": std::env::consts::ARCH,
            "KernelVersion": kernel,
            "BuildTime": "",
        })
    }

    pub fn info(&self) -> serde_json::Value {
        let (store, advertise) = self.cluster_info();
        let st = self.state();
        serde_json::json!({
            "ID": "",
            "Containers": st.sandboxes().count(),
            "ContainersRunning": st.sandboxes().count(),
            "Driver": "vswitch",
            "DockerRootDir": self.config.data_root,
            "OperatingSystem": "linux",
            "OSType": "linux",
            "Name": "vswitchd",
            "ServerVersion": env!("CARGO_PKG_VERSION"),
            "Plugins": { "Network": ["bridge", "host", "null", "overlay"] },
            "ClusterStore": store,
            "ClusterAdvertise": advertise,
            "ClusterStoreStatus": self.cluster_status(),
            "Swarm": crate::api::swarm::info_json(),
        })
    }

    pub fn list_networks(&self, f: &Filters) -> Result<Vec<u8>, Error> {
        let st = self.state();
        let nets = filters::filter_networks(&st, f)?;
        let out: Vec<json::NetworkJson> = nets
            .iter()
            .map(|n| json::network_json(&st, n, false))
            .collect();
        Ok(encode(&out))
    }

    pub fn inspect_network(&self, term: &str) -> Result<Vec<u8>, Error> {
        let st = self.state();
        let n = st.find_network(term)?;
        Ok(encode(&json::network_json(&st, n, true)))
    }

    /// Returns the id and the warning text (empty if none).
    pub fn create_network(&self, req: model::CreateNetwork) -> Result<(String, String), Error> {
        let _op = lock(&self.ops);
        self.create_network_locked(req)
    }

    fn create_network_locked(&self, req: model::CreateNetwork) -> Result<(String, String), Error> {
        let reserved = crate::host::reserved_prefixes();
        let (n, warnings) = self.state().create_network(req, &reserved)?;
        let n = if n.driver == Driver::Overlay && !n.config_only {
            self.create_overlay(n)?
        } else {
            n
        };
        if let Err(e) = self.network_up(&n) {
            if n.driver == Driver::Overlay {
                let _ = self.remove_overlay_record(&n);
            }
            if let Err(e2) = self.state().remove_network(&n.id) {
                tracing::error!("undo of network {}: {e2}", n.name);
            }
            return Err(e);
        }
        self.refresh_isolation();
        for w in &warnings {
            tracing::warn!("network {}: {w}", n.name);
        }
        tracing::info!("created network {} ({})", n.name, n.id);
        Ok((n.id, warnings.join("\n")))
    }

    pub fn remove_network(&self, term: &str) -> Result<(), Error> {
        let _op = lock(&self.ops);
        self.remove_cluster_record(term)?;
        let n = self.state().remove_network(term)?;
        self.network_down(&n);
        self.refresh_isolation();
        tracing::info!("removed network {} ({})", n.name, n.id);
        Ok(())
    }

    pub fn prune_networks(&self, f: &Filters) -> Result<Vec<String>, Error> {
        f.validate(filters::PRUNE_FILTERS)?;
        let until = filters::parse_until(f)?;
        let _guard = self
            .prune_running
            .try_lock()
            .map_err(|_| Error::Conflict("a prune operation is already running".into()))?;
        let _op = lock(&self.ops);
        let candidates = self.state().prunable();
        let mut deleted = Vec::new();
        for n in candidates {
            if !filters::prune_selects(&n, f, until) {
                continue;
            }
            // Keep going past a failure so one bad network does not block the rest.
            if let Err(e) = self.remove_cluster_record(&n.id) {
                tracing::warn!("prune: {}: {e}", n.name);
                continue;
            }
            let removed = self.state().remove_network(&n.id);
            match removed {
                Ok(n) => {
                    self.network_down(&n);
                    self.refresh_isolation();
                    deleted.push(n.name);
                }
                Err(e) => tracing::warn!("prune: {}: {e}", n.name),
            }
        }
        Ok(deleted)
    }

    pub fn connect(
        &self,
        network: &str,
        container: &str,
        settings: EndpointSettings,
    ) -> Result<(), Error> {
        let _op = lock(&self.ops);
        let (sb, ep) = self.state().connect(network, container, settings)?;
        if let Some(ns) = sb.netns.as_deref().map(PathBuf::from) {
            let res = self
                .attach(&sb, &ep, &ns)
                .and_then(|_| self.sync_gwbridge(&sb.id))
                .and_then(|_| self.apply_default_route(&sb.id));
            let res = res.and_then(|_| self.sync_dns(&sb.id));
            if let Err(e) = res {
                self.detach(&ep);
                if let Err(e2) = self.state().disconnect(&ep.network_id, &sb.id, true) {
                    tracing::error!("undo of connect {}: {e2}", sb.name);
                }
                let _ = self.apply_default_route(&sb.id);
                return Err(e);
            }
        }
        tracing::info!(
            "connected {} to {} as {}",
            sb.name,
            ep.network_id,
            ep.ifname
        );
        Ok(())
    }

    pub fn disconnect(&self, network: &str, container: &str, force: bool) -> Result<(), Error> {
        let _op = lock(&self.ops);
        let (sb, ep) = self.state().disconnect(network, container, force)?;
        self.detach(&ep);
        if let Err(e) = self.sync_gwbridge(&sb.id) {
            tracing::warn!("sandbox {}: docker_gwbridge after disconnect: {e}", sb.name);
        }
        if let Err(e) = self.apply_default_route(&sb.id) {
            tracing::warn!("sandbox {}: default route after disconnect: {e}", sb.name);
        }
        if let Err(e) = self.sync_dns(&sb.id) {
            tracing::warn!("sandbox {}: dns after disconnect: {e}", sb.name);
        }
        tracing::info!("disconnected {} from {}", sb.name, ep.network_id);
        Ok(())
    }

    /// `POST /containers/create`: a sandbox — its namespace (made, or handed over by a
    /// runtime), its first network's endpoint and any further EndpointsConfig networks.
    pub fn create_container(
        &self,
        name: Option<String>,
        req: json::ContainerCreateJson,
    ) -> Result<String, Error> {
        let _op = lock(&self.ops);
        let mode = req
            .host_config
            .as_ref()
            .map(|h| h.network_mode.clone())
            .unwrap_or_default();
        let mode = if mode.is_empty() || mode == "default" {
            "bridge".to_string()
        } else {
            mode
        };
        let mut eps = req
            .networking_config
            .map(|n| n.endpoints_config)
            .unwrap_or_default();
        let (port_requests, exposed) =
            port_requests_of(&req.exposed_ports, req.host_config.as_ref())?;
        let first = eps.remove(&mode).unwrap_or_default().into_model();
        let sb = self.state().create_sandbox(name, &mode, first)?;
        // Bound first: the state guard must not live into the error arm (teardown locks).
        let updated = self.state().update_sandbox(&sb.id, |s| {
            s.port_requests = port_requests;
            s.exposed = exposed;
        });
        let sb = match updated {
            Ok(sb) => sb,
            Err(e) => {
                self.teardown(&sb.id, true);
                return Err(e);
            }
        };
        let res = self
            .build_sandbox(&sb, req.netns.as_deref(), req.cmd, eps)
            .and_then(|_| self.publish(&sb.id, false));
        if let Err(e) = res {
            let problems = self.teardown(&sb.id, true);
            for p in problems {
                tracing::warn!("undo of sandbox {}: {p}", sb.name);
            }
            return Err(e);
        }
        tracing::info!("created sandbox {} ({})", sb.name, sb.id);
        Ok(sb.id)
    }

    fn build_sandbox(
        &self,
        sb: &Sandbox,
        handed_over: Option<&str>,
        cmd: Vec<String>,
        more: std::collections::BTreeMap<String, json::EndpointConfigJson>,
    ) -> Result<(), Error> {
        let ns = sandbox::netns_path(&self.config.exec_root, &sb.id);
        match handed_over {
            Some(given) => adopt_namespace(given, &ns)?,
            None => crate::netns::create(&ns).map_err(internal)?,
        }
        let nsp = ns.to_string_lossy().into_owned();
        let adopted = handed_over.is_some();
        let sb = self.state().update_sandbox(&sb.id, |s| {
            s.netns = Some(nsp);
            s.adopted = adopted;
            s.cmd = cmd;
        })?;
        for ep in &sb.endpoints {
            self.attach(&sb, ep, &ns)?;
        }
        for (net, cfg) in more {
            let (sb2, ep) = self.state().connect(&net, &sb.id, cfg.into_model())?;
            self.attach(&sb2, &ep, &ns)?;
        }
        self.sync_gwbridge(&sb.id)?;
        self.apply_default_route(&sb.id)?;
        self.sync_dns(&sb.id)
    }

    /// `POST /containers/{id}/start`: run the sandbox's command inside (detached).
    pub fn start_container(&self, term: &str) -> Result<(), Error> {
        let _op = lock(&self.ops);
        let sb = self.state().find_sandbox(term)?.clone();
        let Some(ns) = sb.netns.as_deref().map(PathBuf::from) else {
            return Err(Error::Internal(format!(
                "sandbox {} has no namespace",
                sb.name
            )));
        };
        if sb.cmd.is_empty() {
            return Ok(());
        }
        if let Some(pid) = sb.pid {
            if sandbox::processes_in(&ns).contains(&(pid as i32)) {
                return Ok(());
            }
        }
        let log = log_path(&self.config.exec_root, &sb.id);
        if let Some(d) = log.parent() {
            std::fs::create_dir_all(d).map_err(internal)?;
        }
        let resolv = resolv_conf_path(&self.config.exec_root, &sb.id);
        let pid = sandbox::spawn(&ns, &sb.cmd, &log, Some(&resolv))
            .map_err(|e| Error::InvalidParameter(e.to_string()))?;
        self.state().update_sandbox(&sb.id, |s| s.pid = Some(pid))?;
        Ok(())
    }

    pub fn list_containers(&self) -> Vec<u8> {
        let st = self.state();
        let v: Vec<serde_json::Value> = st
            .sandboxes()
            .map(|sb| json::container_list_json(&st, sb, running(sb)))
            .collect();
        encode(&v)
    }

    pub fn inspect_container(&self, term: &str) -> Result<Vec<u8>, Error> {
        let st = self.state();
        let sb = st.find_sandbox(term)?;
        let mut v = json::container_inspect_json(&st, sb, running(sb));
        let resolv = resolv_conf_path(&self.config.exec_root, &sb.id);
        if resolv.exists() {
            v["ResolvConfPath"] = serde_json::json!(resolv);
        }
        Ok(encode(&v))
    }

    /// `DELETE /containers/{id}`: refuses a sandbox with processes unless forced, like Docker.
    pub fn remove_container(&self, term: &str, force: bool) -> Result<(), Error> {
        let _op = lock(&self.ops);
        let sb = self.state().find_sandbox(term)?.clone();
        if !force && !sb.adopted && !running(&sb).is_empty() {
            return Err(Error::Conflict(format!(
                "cannot remove container \"/{}\": container is running: stop the container before removing or force remove",
                sb.name
            )));
        }
        let problems = self.teardown(&sb.id, false);
        if !problems.is_empty() {
            return Err(Error::Internal(format!(
                "sandbox {} removed with problems: {}",
                sb.name,
                problems.join("; ")
            )));
        }
        tracing::info!("removed sandbox {}", sb.name);
        Ok(())
    }

    /// Stop, unplug, delete the namespace and the record; keeps going past failures and
    /// returns every problem.
    fn teardown(&self, id: &str, quiet: bool) -> Vec<String> {
        let mut problems = Vec::new();
        let Some(sb) = self.state().sandbox(id).cloned() else {
            return problems;
        };
        lock(&self.resolvers).remove(&sb.id);
        lock(&self.publications).remove(&sb.id);
        let _ = std::fs::remove_file(resolv_conf_path(&self.config.exec_root, &sb.id));
        let _ = std::fs::remove_file(log_path(&self.config.exec_root, &sb.id));
        if let Some(ns) = sb.netns.as_deref().map(PathBuf::from) {
            if !sb.adopted {
                sandbox::stop_processes(&ns);
            }
            for ep in &sb.endpoints {
                self.detach(ep);
            }
            if let Err(e) = crate::netns::delete(&ns) {
                problems.push(e.to_string());
            }
        }
        if let Err(e) = self.state().remove_sandbox(&sb.id) {
            problems.push(e.to_string());
        }
        if !quiet {
            for p in &problems {
                tracing::warn!("remove {}: {p}", sb.name);
            }
        }
        problems
    }

    /// Before removing a network locally: an overlay's cluster record goes first (the store
    /// refuses while any host has endpoints on it).
    fn remove_cluster_record(&self, term: &str) -> Result<(), Error> {
        let n = self.state().find_network(term)?.clone();
        if n.driver == Driver::Overlay && !n.config_only && self.cluster.is_some() {
            let local = self.state().endpoints_of(&n.id).len();
            if local == 0 {
                self.remove_overlay_record(&n)?;
            }
        }
        Ok(())
    }

    pub fn network_stats(&self, term: &str) -> Result<serde_json::Value, Error> {
        let id = self.state().find_network(term)?.id.clone();
        let s = lock(&self.dp).stats(&id).map_err(internal)?;
        Ok(match s {
            Some(s) => serde_json::json!({
                "RxFrames": s.rx_frames, "TxFrames": s.tx_frames, "TxDropped": s.tx_dropped,
                "SwitchDrops": s.switch_drops, "FdbEntries": s.fdb_entries,
            }),
            None => serde_json::Value::Null,
        })
    }
}

/// Published-port requests and exposed ports of a Docker create body.
type PortPlan = (
    Vec<crate::ports::PortRequest>,
    Vec<(u16, crate::ports::Proto)>,
);

fn port_requests_of(
    exposed_ports: &std::collections::BTreeMap<String, serde_json::Value>,
    hc: Option<&json::HostConfigJson>,
) -> Result<PortPlan, Error> {
    let bad = |e: crate::ports::PortError| Error::InvalidParameter(e.to_string());
    let exposed_keys: Vec<String> = exposed_ports.keys().cloned().collect();
    let exposed = exposed_keys
        .iter()
        .map(|k| crate::ports::parse_key(k))
        .collect::<Result<Vec<_>, _>>()
        .map_err(bad)?;
    let bindings = hc
        .map(|h| {
            h.port_bindings
                .iter()
                .map(|(k, v)| {
                    let list = v
                        .iter()
                        .map(|b| (b.host_ip.clone(), b.host_port.clone()))
                        .collect();
                    (k.clone(), list)
                })
                .collect()
        })
        .unwrap_or_default();
    let publish_all = hc.is_some_and(|h| h.publish_all);
    let reqs =
        crate::ports::requests_from_docker(&bindings, &exposed_keys, publish_all).map_err(bad)?;
    Ok((reqs, exposed))
}

/// The resolv.conf a sandbox's processes see (bind-mounted over /etc/resolv.conf).
pub fn resolv_conf_path(exec_root: &Path, sandbox_id: &str) -> PathBuf {
    exec_root
        .join("resolv")
        .join(format!("{}.conf", crate::util::short_id(sandbox_id)))
}

/// Where the output of a sandbox's command goes (removed with the sandbox).
fn log_path(exec_root: &Path, sandbox_id: &str) -> PathBuf {
    exec_root
        .join("logs")
        .join(format!("{}.log", crate::util::short_id(sandbox_id)))
}

/// Pids running in a sandbox's namespace (empty when it has none).
fn running(sb: &Sandbox) -> Vec<i32> {
    sb.netns
        .as_deref()
        .map(|p| sandbox::processes_in(Path::new(p)))
        .unwrap_or_default()
}

/// Pin a namespace handed over by a runtime (`/proc/PID/ns/net` or an `ip netns` name) at our
/// own path, so it outlives the process that made it, as Docker's sandbox key does.
fn adopt_namespace(given: &str, ours: &Path) -> Result<(), Error> {
    let src = if given.contains('/') {
        PathBuf::from(given)
    } else {
        PathBuf::from("/run/netns").join(given)
    };
    if !crate::netns::is_namespace(&src) {
        return Err(Error::InvalidParameter(format!(
            "{given} is not a network namespace (give /proc/PID/ns/net or an `ip netns` name)"
        )));
    }
    if let Some(d) = ours.parent() {
        std::fs::create_dir_all(d).map_err(internal)?;
    }
    std::fs::File::create(ours).map_err(internal)?;
    let c = |p: &Path| std::ffi::CString::new(p.as_os_str().as_encoded_bytes()).map_err(internal);
    let (s, t) = (c(&src)?, c(ours)?);
    // SAFETY: valid C strings; a plain bind mount.
    let r = unsafe {
        libc::mount(
            s.as_ptr(),
            t.as_ptr(),
            std::ptr::null(),
            libc::MS_BIND,
            std::ptr::null(),
        )
    };
    if r != 0 {
        let e = std::io::Error::last_os_error();
        let _ = std::fs::remove_file(ours);
        return Err(internal(format!("bind {given}: {e}")));
    }
    Ok(())
}

/// Port kind of a network: option `io.vswitch.network.port_kind` (tap, the default, or veth).
fn port_kind(n: &Network) -> PortKind {
    n.options
        .get(model::options::PORT_KIND)
        .and_then(|k| PortKind::parse(k))
        .unwrap_or(PortKind::Tap)
}

fn veth_host_name(endpoint_id: &str) -> String {
    format!(
        "{}{}",
        crate::port::veth::HOST_PREFIX,
        &endpoint_id[..8.min(endpoint_id.len())]
    )
}

/// The host interface's MAC: stable per network (derived from its id), locally administered.
fn host_mac(network_id: &str) -> MacAddr {
    let b = network_id.as_bytes();
    let h = |i: usize| -> u8 {
        let d = |c: u8| (c as char).to_digit(16).unwrap_or(0) as u8;
        d(*b.get(2 * i).unwrap_or(&b'0')) << 4 | d(*b.get(2 * i + 1).unwrap_or(&b'0'))
    };
    MacAddr([0x02, 0x4b, h(0), h(1), h(2), h(3)])
}

fn prefix_of(n: &Network, v6: bool) -> Option<u8> {
    n.configs()
        .iter()
        .find(|c| c.subnet.addr().is_ipv6() == v6)
        .map(|c| c.subnet.prefix_len())
}

fn encode<T: serde::Serialize>(v: &T) -> Vec<u8> {
    let mut b = serde_json::to_vec(v).unwrap_or_else(|_| b"null".to_vec());
    b.push(b'\n');
    b
}
