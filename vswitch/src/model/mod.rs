//! Networks, endpoints and sandboxes, and every operation on them with Docker's semantics and
//! error texts. No I/O here except through the [`Store`], which is written before the in-memory
//! state changes, so a failed write leaves both as they were.

pub mod cluster;
pub mod handover;
pub mod options;

use crate::store::{Kind, Store, StoreError};
use crate::util;
use ipam::{IpNet, NetworkPools, PoolSpec, RawSubnetConfig, SubnetConfig};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;

pub use cluster::{ClusterIpam, RemoteEndpoint};
pub use options::BridgeOptions;

/// Names Docker treats as predefined (`type=builtin`); "default" is reserved too.
pub const PREDEFINED_NAMES: &[&str] = &["bridge", "host", "none", "default"];
pub const DEFAULT_BRIDGE_SUBNET: &str = "172.17.0.0/16";
pub const DEFAULT_BRIDGE_NAME: &str = "docker0";
/// Prefix Docker gives the host-side interface of a user bridge network (`br-<id12>`).
pub const BRIDGE_NAME_PREFIX: &str = "br-";
/// Interface name prefix inside sandboxes.
pub const CONTAINER_IFACE_PREFIX: &str = "eth";

/// One error enum for the model; the variants are moby's errdefs classes, which decide the
/// HTTP status.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    InvalidParameter(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    Unavailable(String),
    #[error("{0}")]
    Internal(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl Error {
    pub fn status(&self) -> u16 {
        match self {
            Error::NotFound(_) => 404,
            Error::InvalidParameter(_) => 400,
            Error::Conflict(_) => 409,
            Error::Forbidden(_) => 403,
            Error::Unavailable(_) => 503,
            Error::Internal(_) | Error::Store(_) => 500,
        }
    }
}

pub type Result<T> = std::result::Result<T, Error>;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Driver {
    Bridge,
    Overlay,
    Host,
    Null,
}

impl Driver {
    pub fn as_str(self) -> &'static str {
        match self {
            Driver::Bridge => "bridge",
            Driver::Overlay => "overlay",
            Driver::Host => "host",
            Driver::Null => "null",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Network {
    pub id: String,
    pub name: String,
    pub created: String,
    pub scope: String,
    pub driver: Driver,
    pub enable_ipv4: bool,
    pub enable_ipv6: bool,
    pub ipam_driver: String,
    /// `None` shows as `null` (predefined networks), like Docker.
    pub ipam_options: Option<BTreeMap<String, String>>,
    /// Validated pools with gateways filled in; `None` shows as `null` (host, none).
    pub ipam_config: Option<Vec<SubnetConfig>>,
    /// The user gave the subnets (static `--ip` is only allowed then).
    pub user_subnets: bool,
    pub internal: bool,
    pub attachable: bool,
    pub ingress: bool,
    pub config_only: bool,
    pub config_from: String,
    pub options: BTreeMap<String, String>,
    pub labels: BTreeMap<String, String>,
    pub predefined: bool,
}

impl Network {
    pub fn configs(&self) -> &[SubnetConfig] {
        self.ipam_config.as_deref().unwrap_or(&[])
    }

    pub fn bridge_options(&self) -> BridgeOptions {
        // Options were validated at create; a stored network always parses.
        BridgeOptions::parse(&self.options).unwrap_or_else(|_| {
            BridgeOptions::parse(&BTreeMap::new()).expect("empty options always parse")
        })
    }

    /// Name of the host-side interface of a bridge network.
    pub fn bridge_name(&self) -> String {
        self.bridge_options()
            .bridge_name
            .unwrap_or_else(|| format!("{BRIDGE_NAME_PREFIX}{}", util::short_id(&self.id)))
    }

    pub fn gateway(&self, v6: bool) -> Option<IpAddr> {
        self.configs()
            .iter()
            .filter(|c| c.subnet.addr().is_ipv6() == v6)
            .find_map(|c| c.gateway)
    }

    pub fn subnets(&self) -> Vec<IpNet> {
        self.configs().iter().map(|c| c.subnet).collect()
    }

    /// The default bridge network (`bridge`): no aliases, no static IPs, like Docker's.
    pub fn is_default_bridge(&self) -> bool {
        self.predefined && self.driver == Driver::Bridge
    }
}

/// Prefix of an IPv4 `LinkLocalIPs` address on the interface (libnetwork's 169.254.0.0/16).
pub const LINK_LOCAL_PREFIX_V4: u8 = 16;
/// Prefix of an IPv6 one (fe80::/64).
pub const LINK_LOCAL_PREFIX_V6: u8 = 64;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Endpoint {
    pub id: String,
    pub network_id: String,
    /// Interface name inside the sandbox (`eth0`…); empty for none/host endpoints.
    pub ifname: String,
    pub mac: String,
    pub ipv4: Option<IpNet>,
    pub ipv6: Option<IpNet>,
    /// Addresses the user asked for (`--ip`, `--ip6`), kept to show in IPAMConfig.
    pub requested_ipv4: Option<IpAddr>,
    pub requested_ipv6: Option<IpAddr>,
    /// The MAC was asked for (`EndpointConfig.MacAddress`), not derived.
    #[serde(default)]
    pub requested_mac: bool,
    /// `IPAMConfig.LinkLocalIPs` as asked.
    #[serde(default)]
    pub link_local_ips: Vec<IpAddr>,
    pub aliases: Vec<String>,
    pub links: Vec<String>,
    pub gw_priority: i64,
    pub driver_opts: BTreeMap<String, String>,
}

impl Endpoint {
    /// The `LinkLocalIPs` as the interface carries them (as Docker: /16 and /64).
    pub fn link_local_nets(&self) -> Vec<IpNet> {
        self.link_local_ips
            .iter()
            .filter_map(|&a| {
                let prefix = if a.is_ipv4() {
                    LINK_LOCAL_PREFIX_V4
                } else {
                    LINK_LOCAL_PREFIX_V6
                };
                IpNet::new(a, prefix).ok()
            })
            .collect()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sandbox {
    pub id: String,
    pub name: String,
    pub created: String,
    /// The network mode given at creation (`bridge`, `none`, `host` or a network name).
    pub network_mode: String,
    /// Endpoints in attach order.
    pub endpoints: Vec<Endpoint>,
    /// Next `ethN` index: Docker never reuses an index within a sandbox's life.
    pub next_if_index: u32,
    /// Path of the network namespace, once the datapath made or adopted one.
    #[serde(default)]
    pub netns: Option<String>,
    /// The namespace was handed over by a runtime: never kill what runs in it.
    #[serde(default)]
    pub adopted: bool,
    /// Command started inside by `start` (`vswitch run -d`).
    #[serde(default)]
    pub cmd: Vec<String>,
    /// Pid of that command, once started.
    #[serde(default)]
    pub pid: Option<u32>,
    /// Published ports as asked (`-p`, `-P` with `--expose`).
    #[serde(default)]
    pub port_requests: Vec<crate::ports::PortRequest>,
    /// Ports exposed (`--expose`), shown even when not published.
    #[serde(default)]
    pub exposed: Vec<(u16, crate::ports::Proto)>,
    /// Published ports as bound on the host (kept so a restart binds the same ones).
    #[serde(default)]
    pub bindings: Vec<crate::ports::Binding>,
    /// Attached by a CNI runtime (`vswitch-cni`): its container ID and namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cni: Option<crate::cni::api::CniOrigin>,
}

/// The `docker network create` request, decoded.
#[derive(Debug, Clone, Default)]
pub struct CreateNetwork {
    pub name: String,
    pub driver: String,
    pub scope: String,
    pub enable_ipv4: Option<bool>,
    pub enable_ipv6: Option<bool>,
    pub ipam_driver: String,
    /// `None` when the request gave none (shown as `null`), as moby keeps a nil map.
    pub ipam_options: Option<BTreeMap<String, String>>,
    pub ipam_config: Vec<RawSubnetConfig>,
    pub internal: bool,
    pub attachable: bool,
    pub ingress: bool,
    pub config_only: bool,
    pub config_from: Option<String>,
    pub options: BTreeMap<String, String>,
    pub labels: BTreeMap<String, String>,
}

/// Per-endpoint settings from connect or container create.
#[derive(Debug, Clone, Default)]
pub struct EndpointSettings {
    pub ipv4: Option<String>,
    pub ipv6: Option<String>,
    /// `EndpointConfig.MacAddress`: the sandbox interface gets it instead of a derived one.
    pub mac: Option<String>,
    /// `IPAMConfig.LinkLocalIPs`, kept and shown as given.
    pub link_local_ips: Vec<String>,
    pub aliases: Vec<String>,
    pub links: Vec<String>,
    pub gw_priority: i64,
    pub driver_opts: BTreeMap<String, String>,
}

/// Address-pool settings of the daemon.
#[derive(Debug, Clone)]
pub struct PoolSettings {
    pub local: Vec<PoolSpec>,
    pub global: Vec<PoolSpec>,
    pub local_v6: Vec<PoolSpec>,
}

impl Default for PoolSettings {
    fn default() -> Self {
        PoolSettings {
            local: ipam::default_local_pools(),
            global: ipam::default_global_pools(),
            local_v6: ipam::default_local_v6_pools(),
        }
    }
}

/// Everything the daemon knows, kept consistent with the store.
pub struct State {
    networks: BTreeMap<String, Network>,
    pools: HashMap<String, NetworkPools>,
    sandboxes: BTreeMap<String, Sandbox>,
    settings: PoolSettings,
    store: Option<Store>,
    /// Set when the daemon has a cluster store: overlay networks allowed, their addresses
    /// allocated cluster-wide through it.
    cluster_ipam: Option<Box<dyn ClusterIpam>>,
    /// Endpoints on other hosts, from the cluster store (not persisted).
    remotes: BTreeMap<(String, String), RemoteEndpoint>,
}

/// What a restart found in the store and could not restore.
#[derive(Debug, Default)]
pub struct ReplayReport {
    pub problems: Vec<String>,
}

impl State {
    /// An empty state with the predefined networks (not persisted: for tests and fuzzing).
    pub fn new_in_memory(settings: PoolSettings) -> Self {
        let mut s = State {
            networks: BTreeMap::new(),
            pools: HashMap::new(),
            sandboxes: BTreeMap::new(),
            settings,
            store: None,
            cluster_ipam: None,
            remotes: BTreeMap::new(),
        };
        s.ensure_predefined()
            .expect("in-memory predefined networks");
        s
    }

    /// Load the state from the store, replaying every network and sandbox, and create the
    /// predefined networks at first start.
    pub fn open(store: Store, settings: PoolSettings) -> Result<(Self, ReplayReport)> {
        let mut report = ReplayReport::default();
        let mut s = State {
            networks: BTreeMap::new(),
            pools: HashMap::new(),
            sandboxes: BTreeMap::new(),
            settings,
            store: Some(store.clone()),
            cluster_ipam: None,
            remotes: BTreeMap::new(),
        };
        let nets = store.load::<Network>(Kind::Network)?;
        report.problems.extend(nets.errors);
        for n in nets.items {
            match pools_for(&n) {
                Ok(p) => {
                    s.pools.insert(n.id.clone(), p);
                    s.networks.insert(n.id.clone(), n);
                }
                Err(e) => report
                    .problems
                    .push(format!("network {} ({}): {e}", n.name, n.id)),
            }
        }
        let sbs = store.load::<Sandbox>(Kind::Sandbox)?;
        report.problems.extend(sbs.errors);
        for mut sb in sbs.items {
            let mut kept = Vec::new();
            for ep in std::mem::take(&mut sb.endpoints) {
                match s.replay_endpoint(&ep) {
                    Ok(()) => kept.push(ep),
                    Err(e) => report.problems.push(format!(
                        "sandbox {}: endpoint on network {} dropped: {e}",
                        sb.name, ep.network_id
                    )),
                }
            }
            sb.endpoints = kept;
            s.sandboxes.insert(sb.id.clone(), sb);
        }
        s.ensure_predefined()?;
        Ok((s, report))
    }

    fn replay_endpoint(&mut self, ep: &Endpoint) -> std::result::Result<(), String> {
        let pools = self
            .pools
            .get_mut(&ep.network_id)
            .ok_or_else(|| "network no longer exists".to_string())?;
        let mut taken = Vec::new();
        for addr in [ep.ipv4, ep.ipv6].into_iter().flatten() {
            match pools.allocate(addr.addr().is_ipv6(), Some(addr.addr())) {
                Ok(_) => taken.push(addr.addr()),
                Err(e) => {
                    for a in taken {
                        pools.release(a);
                    }
                    return Err(format!("address {}: {e}", addr.addr()));
                }
            }
        }
        Ok(())
    }

    fn ensure_predefined(&mut self) -> Result<()> {
        if !self
            .networks
            .values()
            .any(|n| n.name == "bridge" && n.predefined)
        {
            let subnet: IpNet = DEFAULT_BRIDGE_SUBNET.parse().expect("constant subnet");
            let cfg = SubnetConfig {
                subnet,
                ip_range: None,
                gateway: None,
                aux: BTreeMap::new(),
            };
            let (_, configs) = NetworkPools::new(std::slice::from_ref(&cfg))
                .map_err(|e| Error::Internal(format!("default bridge: {e}")))?;
            let options = [
                (options::DEFAULT_BRIDGE, "true"),
                (options::ENABLE_ICC, "true"),
                (options::ENABLE_IP_MASQUERADE, "true"),
                (options::HOST_BINDING_IPV4, "0.0.0.0"),
                (options::BRIDGE_NAME, DEFAULT_BRIDGE_NAME),
                (options::MTU, "1500"),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
            let mut n = predefined_network("bridge", Driver::Bridge, options);
            n.enable_ipv4 = true;
            n.ipam_config = Some(configs);
            self.insert_network(n)?;
        }
        for (name, driver) in [("host", Driver::Host), ("none", Driver::Null)] {
            if !self
                .networks
                .values()
                .any(|n| n.name == name && n.predefined)
            {
                self.insert_network(predefined_network(name, driver, BTreeMap::new()))?;
            }
        }
        Ok(())
    }

    fn insert_network(&mut self, n: Network) -> Result<()> {
        let pools = pools_for(&n).map_err(Error::Internal)?;
        self.persist_network(&n)?;
        self.pools.insert(n.id.clone(), pools);
        self.networks.insert(n.id.clone(), n);
        Ok(())
    }

    fn persist_network(&self, n: &Network) -> Result<()> {
        if let Some(st) = &self.store {
            st.save(Kind::Network, &n.id, n)?;
        }
        Ok(())
    }

    fn persist_sandbox(&self, sb: &Sandbox) -> Result<()> {
        if let Some(st) = &self.store {
            st.save(Kind::Sandbox, &sb.id, sb)?;
        }
        Ok(())
    }

    // ---- queries -------------------------------------------------------------------------

    pub fn networks(&self) -> impl Iterator<Item = &Network> {
        self.networks.values()
    }

    pub fn network(&self, id: &str) -> Option<&Network> {
        self.networks.get(id)
    }

    pub fn sandboxes(&self) -> impl Iterator<Item = &Sandbox> {
        self.sandboxes.values()
    }

    pub fn sandbox(&self, id: &str) -> Option<&Sandbox> {
        self.sandboxes.get(id)
    }

    /// Endpoints attached to a network, with their sandbox.
    pub fn endpoints_of(&self, network_id: &str) -> Vec<(&Sandbox, &Endpoint)> {
        self.sandboxes
            .values()
            .flat_map(|sb| {
                sb.endpoints
                    .iter()
                    .filter(|e| e.network_id == network_id)
                    .map(move |e| (sb, e))
            })
            .collect()
    }

    /// moby's `getNetwork` for inspect/rm: full id, then unique exact name, then unique id
    /// prefix.
    pub fn find_network(&self, term: &str) -> Result<&Network> {
        if let Some(n) = self.networks.get(term) {
            return Ok(n);
        }
        let by_name: Vec<&Network> = self.networks.values().filter(|n| n.name == term).collect();
        match by_name.len() {
            1 => return Ok(by_name[0]),
            0 => {}
            k => {
                return Err(Error::InvalidParameter(format!(
                    "network {term} is ambiguous ({k} matches found based on name)"
                )))
            }
        }
        let by_prefix: Vec<&Network> = if term.is_empty() {
            Vec::new()
        } else {
            self.networks
                .values()
                .filter(|n| n.id.starts_with(term))
                .collect()
        };
        match by_prefix.len() {
            1 => Ok(by_prefix[0]),
            0 => Err(Error::NotFound(format!("network {term} not found"))),
            k => Err(Error::InvalidParameter(format!(
                "network {term} is ambiguous ({k} matches found based on ID prefix)"
            ))),
        }
    }

    /// Sandbox by full id, name (with or without the leading `/`), or unique id prefix.
    pub fn find_sandbox(&self, term: &str) -> Result<&Sandbox> {
        let name = term.strip_prefix('/').unwrap_or(term);
        if let Some(sb) = self.sandboxes.get(term) {
            return Ok(sb);
        }
        if let Some(sb) = self.sandboxes.values().find(|s| s.name == name) {
            return Ok(sb);
        }
        let by_prefix: Vec<&Sandbox> = if term.is_empty() {
            Vec::new()
        } else {
            self.sandboxes
                .values()
                .filter(|s| s.id.starts_with(term))
                .collect()
        };
        match by_prefix.len() {
            1 => Ok(by_prefix[0]),
            0 => Err(Error::NotFound(format!("No such container: {term}"))),
            _ => Err(Error::InvalidParameter(format!(
                "multiple IDs found with provided prefix: {term}"
            ))),
        }
    }

    // ---- networks ------------------------------------------------------------------------

    /// `docker network create`. Returns the new network and warnings for the user.
    pub fn create_network(
        &mut self,
        req: CreateNetwork,
        reserved: &[IpNet],
    ) -> Result<(Network, Vec<String>)> {
        if req.name.is_empty() {
            return Err(Error::InvalidParameter(
                "invalid name: name is empty".into(),
            ));
        }
        if PREDEFINED_NAMES.contains(&req.name.as_str()) {
            return Err(Error::Forbidden(format!(
                "operation is not permitted on predefined {} network ",
                req.name
            )));
        }
        if self.networks.values().any(|n| n.name == req.name) {
            return Err(Error::Conflict(format!(
                "network with name {} already exists",
                req.name
            )));
        }
        let mut req = req;
        let mut from_config = None;
        if let Some(cf) = req.config_from.as_deref().filter(|s| !s.is_empty()) {
            let cfg = self
                .networks
                .values()
                .find(|n| n.name == cf || n.id == cf)
                .filter(|n| n.config_only)
                .ok_or_else(|| {
                    Error::NotFound(format!("configuration network \"{cf}\" does not exist"))
                })?;
            from_config = Some(cfg.clone());
        }
        let driver = match req.driver.as_str() {
            "" | "bridge" => Driver::Bridge,
            "overlay" if self.cluster_ipam.is_some() => Driver::Overlay,
            "overlay" => {
                return Err(Error::Forbidden(
                    "overlay networks need a cluster store: start vswitchd with --cluster-store etcd://HOST:PORT --cluster-advertise IP"
                        .into(),
                ))
            }
            "host" | "null" => {
                return Err(Error::Forbidden(format!(
                    "only one instance of \"{}\" network is allowed",
                    req.driver
                )))
            }
            other => return Err(Error::NotFound(format!("plugin \"{other}\" not found"))),
        };
        if req.config_only {
            // A configuration-only network carries IPAM settings for --config-from.
        }
        let overlay = driver == Driver::Overlay && !req.config_only;
        match req.scope.as_str() {
            "" => {}
            "local" if !overlay => {}
            "global" if overlay => {}
            "local" => {
                return Err(Error::InvalidParameter(
                    "invalid scope \"local\": overlay networks are global".into(),
                ))
            }
            "swarm" | "global" => {
                return Err(Error::Forbidden(
                    "cannot create a swarm scoped network when swarm is not active".into(),
                ))
            }
            other => {
                return Err(Error::InvalidParameter(format!(
                    "invalid scope {other:?}: must be local"
                )))
            }
        }
        if req.ingress {
            return Err(Error::Forbidden(
                "cannot create an ingress network when swarm is not active".into(),
            ));
        }
        let ipam_driver = if req.ipam_driver.is_empty() {
            "default".to_string()
        } else {
            req.ipam_driver.clone()
        };
        if ipam_driver != "default" {
            return Err(Error::InvalidParameter(format!(
                "invalid ipam driver: \"{ipam_driver}\""
            )));
        }
        if let Some(cfg) = &from_config {
            // Docker copies the IPAM configuration and options of the config network.
            if !req.ipam_config.is_empty() || !req.options.is_empty() {
                return Err(Error::Forbidden(
                    "user specified configurations are not supported if the network depends on a configuration network".into(),
                ));
            }
            req.ipam_config = cfg
                .configs()
                .iter()
                .map(|c| RawSubnetConfig {
                    subnet: c.subnet.to_string(),
                    ip_range: c.ip_range.map(|r| r.to_string()),
                    gateway: c.gateway.map(|g| g.to_string()),
                    aux: c
                        .aux
                        .iter()
                        .map(|(k, v)| (k.clone(), v.to_string()))
                        .collect(),
                })
                .collect();
            req.options = cfg.options.clone();
            req.enable_ipv6 = req.enable_ipv6.or(Some(cfg.enable_ipv6));
        }
        let enable_ipv4 = bool_option(req.enable_ipv4, &req.options, options::ENABLE_IPV4, true)?;
        let enable_ipv6 = bool_option(req.enable_ipv6, &req.options, options::ENABLE_IPV6, false)?;
        if !enable_ipv4 && !enable_ipv6 {
            return Err(Error::InvalidParameter(
                "a network must have IPv4 or IPv6 enabled".into(),
            ));
        }
        let bopts = BridgeOptions::parse(&req.options)
            .map_err(|e| Error::InvalidParameter(e.to_string()))?;
        if let Some(bn) = &bopts.bridge_name {
            if let Some(other) = self
                .networks
                .values()
                .find(|n| n.driver == Driver::Bridge && !n.config_only && &n.bridge_name() == bn)
            {
                return Err(Error::Forbidden(format!(
                    "bridge name {bn} is already in use by network {}",
                    other.name
                )));
            }
        }
        let mut warnings = options::misspelling_warnings(&req.options);

        let mut configs =
            ipam::validate(&req.ipam_config).map_err(|e| Error::InvalidParameter(e.to_string()))?;
        let user_subnets = !configs.is_empty();
        for c in &configs {
            let v6 = c.subnet.addr().is_ipv6();
            if v6 && !enable_ipv6 {
                return Err(Error::InvalidParameter(format!(
                    "invalid network config:\nIPv6 subnet {} given but IPv6 is not enabled (add --ipv6)",
                    c.subnet
                )));
            }
            if !v6 && !enable_ipv4 {
                return Err(Error::InvalidParameter(format!(
                    "invalid network config:\nIPv4 subnet {} given but IPv4 is disabled",
                    c.subnet
                )));
            }
        }
        let id = util::new_id();
        let ipam_config = if req.config_only {
            Some(configs)
        } else {
            // Overlap with existing networks; Docker skips the check when an ip-range is
            // given (moby#46756) — we do not: overlapping subnets break the datapath.
            let allocated = self.allocated_subnets();
            for c in &configs {
                ipam::check_overlap(&c.subnet, &allocated)
                    .map_err(|e| Error::Forbidden(e.to_string()))?;
            }
            for v6 in [false, true] {
                let wanted = if v6 { enable_ipv6 } else { enable_ipv4 };
                if wanted && !configs.iter().any(|c| c.subnet.addr().is_ipv6() == v6) {
                    // Overlays take their subnets from the global pools, as Docker's.
                    let pools = if v6 {
                        &self.settings.local_v6
                    } else if overlay {
                        &self.settings.global
                    } else {
                        &self.settings.local
                    };
                    let subnet = ipam::choose_subnet(pools, &allocated, reserved, v6).map_err(
                        |e| match e {
                            ipam::IpamError::NoMoreSubnets => {
                                Error::InvalidParameter(e.to_string())
                            }
                            other => Error::Internal(other.to_string()),
                        },
                    )?;
                    configs.push(SubnetConfig {
                        subnet,
                        ip_range: None,
                        gateway: None,
                        aux: BTreeMap::new(),
                    });
                }
            }
            let (_, filled) = NetworkPools::new(&configs).map_err(|e| match e {
                ipam::IpamError::InvalidConfig(_) => Error::InvalidParameter(e.to_string()),
                other => Error::Forbidden(other.to_string()),
            })?;
            Some(filled)
        };
        if req.config_only && req.options.is_empty() && warnings.is_empty() {
            warnings.clear();
        }
        let n = Network {
            id,
            name: req.name,
            created: util::now_rfc3339(),
            scope: if overlay { "global" } else { "local" }.into(),
            driver: if req.config_only {
                Driver::Null
            } else {
                driver
            },
            enable_ipv4,
            enable_ipv6,
            ipam_driver,
            ipam_options: req.ipam_options,
            ipam_config,
            user_subnets,
            internal: req.internal,
            attachable: req.attachable,
            ingress: false,
            config_only: req.config_only,
            config_from: from_config.map(|c| c.name).unwrap_or_default(),
            options: req.options,
            labels: req.labels,
            predefined: false,
        };
        self.insert_network(n.clone())?;
        Ok((n, warnings))
    }

    fn allocated_subnets(&self) -> Vec<IpNet> {
        self.networks
            .values()
            .filter(|n| !n.config_only)
            .flat_map(|n| n.subnets())
            .collect()
    }

    /// `docker network rm` for one network.
    pub fn remove_network(&mut self, term: &str) -> Result<Network> {
        let n = self.find_network(term)?.clone();
        if n.predefined {
            return Err(Error::Forbidden(format!(
                "{} is a pre-defined network and cannot be removed",
                n.name
            )));
        }
        let eps = self.endpoints_of(&n.id);
        if !eps.is_empty() {
            let list: Vec<String> = eps
                .iter()
                .map(|(sb, ep)| format!("name:{:?} id:{:?}", sb.name, util::short_id(&ep.id)))
                .collect();
            return Err(Error::Forbidden(format!(
                "error while removing network: network {} has active endpoints ({})",
                n.name,
                list.join(", ")
            )));
        }
        if n.config_only && self.networks.values().any(|o| o.config_from == n.name) {
            return Err(Error::Forbidden(format!(
                "error while removing network: configuration network \"{}\" is in use",
                n.name
            )));
        }
        if let Some(st) = &self.store {
            st.delete(Kind::Network, &n.id)?;
        }
        self.networks.remove(&n.id);
        self.pools.remove(&n.id);
        Ok(n)
    }

    /// Networks `prune` would remove: not predefined, not config-only, no endpoints.
    pub fn prunable(&self) -> Vec<Network> {
        self.networks
            .values()
            .filter(|n| !n.predefined && !n.config_only && self.endpoints_of(&n.id).is_empty())
            .cloned()
            .collect()
    }

    // ---- sandboxes and endpoints ---------------------------------------------------------

    /// Create a sandbox record attached to its first network (`network_mode`).
    pub fn create_sandbox(
        &mut self,
        name: Option<String>,
        network_mode: &str,
        settings: EndpointSettings,
    ) -> Result<Sandbox> {
        let id = util::new_id();
        let name = match name.filter(|n| !n.is_empty()) {
            Some(n) => {
                let n = n.strip_prefix('/').unwrap_or(&n).to_string();
                if !valid_container_name(&n) {
                    return Err(Error::InvalidParameter(format!(
                        "Invalid container name ({n}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"
                    )));
                }
                if let Some(other) = self.sandboxes.values().find(|s| s.name == n) {
                    return Err(Error::Conflict(format!(
                        "Conflict. The container name \"/{n}\" is already in use by container \"{}\". You have to remove (or rename) that container to be able to reuse that name.",
                        other.id
                    )));
                }
                n
            }
            None => format!("sandbox_{}", util::short_id(&id)),
        };
        let mode = match network_mode {
            "" | "default" => "bridge",
            m => m,
        };
        let net = self.find_network(mode)?.clone();
        let mut sb = Sandbox {
            id,
            name,
            created: util::now_rfc3339(),
            network_mode: net.name.clone(),
            endpoints: Vec::new(),
            next_if_index: 0,
            netns: None,
            adopted: false,
            cmd: Vec::new(),
            pid: None,
            port_requests: Vec::new(),
            exposed: Vec::new(),
            bindings: Vec::new(),
            cni: None,
        };
        let ep = self.new_endpoint(&net, &mut sb, &settings)?;
        sb.endpoints.push(ep.clone());
        if let Err(e) = self.persist_sandbox(&sb) {
            self.release_endpoint(&ep);
            return Err(e);
        }
        self.sandboxes.insert(sb.id.clone(), sb.clone());
        Ok(sb)
    }

    /// Remove a sandbox and release every address it held. Returns it for teardown.
    pub fn remove_sandbox(&mut self, term: &str) -> Result<Sandbox> {
        let sb = self.find_sandbox(term)?.clone();
        if let Some(st) = &self.store {
            st.delete(Kind::Sandbox, &sb.id)?;
        }
        for ep in &sb.endpoints {
            self.release_endpoint(ep);
        }
        self.sandboxes.remove(&sb.id);
        Ok(sb)
    }

    /// Change a sandbox's runtime fields (namespace, command, pid) and persist them.
    pub fn update_sandbox(&mut self, id: &str, f: impl FnOnce(&mut Sandbox)) -> Result<Sandbox> {
        let mut sb = self
            .sandboxes
            .get(id)
            .cloned()
            .ok_or_else(|| Error::NotFound(format!("No such container: {id}")))?;
        f(&mut sb);
        self.persist_sandbox(&sb)?;
        self.sandboxes.insert(sb.id.clone(), sb.clone());
        Ok(sb)
    }

    /// `docker network connect`. Returns the sandbox and its new endpoint.
    pub fn connect(
        &mut self,
        network: &str,
        container: &str,
        settings: EndpointSettings,
    ) -> Result<(Sandbox, Endpoint)> {
        let net = self.find_network_for_endpoint(network)?.clone();
        let mut sb = self.find_sandbox(container)?.clone();
        let ep = self.new_endpoint(&net, &mut sb, &settings)?;
        sb.endpoints.push(ep.clone());
        if let Err(e) = self.persist_sandbox(&sb) {
            self.release_endpoint(&ep);
            return Err(e);
        }
        self.sandboxes.insert(sb.id.clone(), sb.clone());
        Ok((sb, ep))
    }

    /// `docker network disconnect`. Returns the sandbox (after) and the removed endpoint.
    pub fn disconnect(
        &mut self,
        network: &str,
        container: &str,
        force: bool,
    ) -> Result<(Sandbox, Endpoint)> {
        let net = self.find_network_for_endpoint(network)?.clone();
        let sb = match self.find_sandbox(container) {
            Ok(sb) => sb.clone(),
            Err(e) => {
                // With force, Docker removes a stale endpoint of that name instead.
                if force {
                    if let Some(sb) = self.sandboxes.values().find(|s| {
                        s.name == container && s.endpoints.iter().any(|e| e.network_id == net.id)
                    }) {
                        let id = sb.id.clone();
                        return self.disconnect(&net.id, &id, false);
                    }
                }
                return Err(e);
            }
        };
        if net.driver == Driver::Host && !force {
            return Err(Error::InvalidParameter(
                "cannot disconnect container from host network - container was created in host network mode".into(),
            ));
        }
        let pos = sb
            .endpoints
            .iter()
            .position(|e| e.network_id == net.id)
            .ok_or_else(|| {
                Error::Internal(format!(
                    "container {} is not connected to network {}",
                    sb.id, net.name
                ))
            })?;
        let mut after = sb.clone();
        let ep = after.endpoints.remove(pos);
        self.persist_sandbox(&after)?;
        self.release_endpoint(&ep);
        self.sandboxes.insert(after.id.clone(), after.clone());
        Ok((after, ep))
    }

    /// FindNetwork as used by connect/disconnect (its ambiguity message differs slightly).
    fn find_network_for_endpoint(&self, term: &str) -> Result<&Network> {
        self.find_network(term).map_err(|e| match e {
            Error::InvalidParameter(m) => {
                Error::InvalidParameter(m.replace("found based on name", "found on name"))
            }
            other => other,
        })
    }

    /// Validate an endpoint request and allocate its addresses (in memory only).
    fn new_endpoint(
        &mut self,
        net: &Network,
        sb: &mut Sandbox,
        s: &EndpointSettings,
    ) -> Result<Endpoint> {
        if net.config_only {
            return Err(Error::Forbidden(format!(
                "cannot attach to configuration-only network {}",
                net.name
            )));
        }
        let nets = &self.networks;
        let on = |d: Driver| {
            sb.endpoints
                .iter()
                .any(|e| nets.get(&e.network_id).is_some_and(|n| n.driver == d))
        };
        if !sb.endpoints.is_empty() {
            if on(Driver::Null) || net.driver == Driver::Null {
                return Err(Error::InvalidParameter(
                    "container cannot be connected to multiple networks with one of the networks in private (none) mode".into(),
                ));
            }
            if on(Driver::Host) {
                return Err(Error::InvalidParameter(
                    "container sharing network namespace with another container or host cannot be connected to any other network".into(),
                ));
            }
            if net.driver == Driver::Host {
                return Err(Error::InvalidParameter(
                    "cannot connect container to host network - container must be created in host network mode".into(),
                ));
            }
        }
        let mut problems = Vec::new();
        let parse = |s: &Option<String>, v6: bool, problems: &mut Vec<String>| -> Option<IpAddr> {
            let raw = s.as_deref().filter(|x| !x.is_empty())?;
            match raw.parse::<IpAddr>() {
                Ok(a) if a.is_ipv6() == v6 => Some(a),
                _ => {
                    problems.push(format!(
                        "invalid IPv{} address: {raw}",
                        if v6 { 6 } else { 4 }
                    ));
                    None
                }
            }
        };
        let req4 = parse(&s.ipv4, false, &mut problems);
        let req6 = parse(&s.ipv6, true, &mut problems);
        let req_mac = match s.mac.as_deref().filter(|m| !m.is_empty()) {
            None => None,
            Some(raw) => match parse_go_mac(raw) {
                Some(m) if m.is_valid_source() => Some(m),
                Some(_) => {
                    problems.push(format!(
                        "invalid MAC address {raw}: not a unicast address an interface can have"
                    ));
                    None
                }
                None => {
                    problems.push(format!("invalid MAC address {raw}"));
                    None
                }
            },
        };
        if req_mac.is_some() && matches!(net.driver, Driver::Null | Driver::Host) {
            problems.push("conflicting options: mac-address and the network mode".into());
        }
        let mut link_local = Vec::new();
        for raw in &s.link_local_ips {
            match raw.parse::<IpAddr>() {
                Ok(a) => link_local.push(a),
                Err(_) => problems.push(format!("invalid link-local IP address: {raw}")),
            }
        }
        let static_ip = req4.is_some() || req6.is_some();
        if static_ip && net.is_default_bridge() {
            problems.push(
                "user specified IP address is supported on user defined networks only".into(),
            );
        } else if static_ip && !net.user_subnets {
            problems.push("user specified IP address is supported only when connecting to networks with user configured subnets".into());
        }
        if !s.aliases.is_empty()
            && (net.is_default_bridge() || net.driver == Driver::Null || net.driver == Driver::Host)
        {
            problems.push(
                "network-scoped alias is supported only for containers in user defined networks"
                    .into(),
            );
        }
        for a in req4.iter().chain(req6.iter()) {
            if !net.configs().iter().any(|c| c.subnet.contains(a)) && problems.is_empty() {
                problems.push(format!(
                    "no configured subnet or ip-range contain the IP address {a}"
                ));
            }
        }
        if !problems.is_empty() {
            return Err(Error::InvalidParameter(endpoint_settings_error(&problems)));
        }
        if sb.endpoints.iter().any(|e| e.network_id == net.id) {
            return Err(Error::Forbidden(format!(
                "endpoint with name {} already exists in network {}",
                sb.name, net.name
            )));
        }
        let mut ep = Endpoint {
            id: util::new_id(),
            network_id: net.id.clone(),
            ifname: String::new(),
            mac: String::new(),
            ipv4: None,
            ipv6: None,
            requested_ipv4: req4,
            requested_ipv6: req6,
            requested_mac: req_mac.is_some(),
            link_local_ips: link_local,
            aliases: s.aliases.clone(),
            links: s.links.clone(),
            gw_priority: s.gw_priority,
            driver_opts: s.driver_opts.clone(),
        };
        if matches!(net.driver, Driver::Null | Driver::Host) {
            return Ok(ep);
        }
        if net.driver == Driver::Overlay {
            self.new_overlay_addresses(net, &mut ep)?;
            if let Err(e) = self.choose_mac(net, &mut ep, req_mac) {
                self.release_overlay_addresses(&ep);
                return Err(e);
            }
            ep.ifname = format!("{CONTAINER_IFACE_PREFIX}{}", sb.next_if_index);
            sb.next_if_index += 1;
            return Ok(ep);
        }
        let pools = self
            .pools
            .get_mut(&net.id)
            .ok_or_else(|| Error::Internal(format!("network {} has no address pools", net.name)))?;
        if net.enable_ipv4 {
            let (addr, subnet) = pools
                .allocate(false, req4)
                .map_err(|e| alloc_error(e, net, false))?;
            ep.ipv4 = Some(IpNet::new(addr, subnet.prefix_len()).expect("prefix from subnet"));
        }
        if net.enable_ipv6 && pools.has_family(true) {
            match pools.allocate(true, req6) {
                Ok((addr, subnet)) => {
                    ep.ipv6 =
                        Some(IpNet::new(addr, subnet.prefix_len()).expect("prefix from subnet"))
                }
                Err(e) => {
                    if let Some(v4) = ep.ipv4 {
                        pools.release(v4.addr());
                    }
                    return Err(alloc_error(e, net, true));
                }
            }
        }
        if let Err(e) = self.choose_mac(net, &mut ep, req_mac) {
            if let Some(p) = self.pools.get_mut(&net.id) {
                for a in [ep.ipv4, ep.ipv6].into_iter().flatten() {
                    p.release(a.addr());
                }
            }
            return Err(e);
        }
        ep.ifname = format!("{CONTAINER_IFACE_PREFIX}{}", sb.next_if_index);
        sb.next_if_index += 1;
        Ok(ep)
    }

    /// The endpoint's MAC: the one asked for (refused when another endpoint of the network
    /// has it: one MAC, one port on the switch), else Docker's derived from the IPv4 address
    /// (or the id), moved off any MAC already taken on the network.
    fn choose_mac(
        &self,
        net: &Network,
        ep: &mut Endpoint,
        requested: Option<crate::wire::MacAddr>,
    ) -> Result<()> {
        let taken = |mac: &str| -> Option<String> {
            if let Some((sb, _)) = self
                .endpoints_of(&net.id)
                .into_iter()
                .find(|(_, e)| e.mac.eq_ignore_ascii_case(mac))
            {
                return Some(sb.name.clone());
            }
            self.remotes
                .iter()
                .find(|((n, _), r)| n == &net.id && r.mac.eq_ignore_ascii_case(mac))
                .map(|_| "on another host".to_string())
        };
        if let Some(m) = requested {
            let mac = m.to_string();
            if let Some(owner) = taken(&mac) {
                return Err(Error::Forbidden(format!(
                    "MAC address {mac} is already in use on network {} (container {owner})",
                    net.name
                )));
            }
            ep.mac = mac;
            return Ok(());
        }
        ep.mac = match ep.ipv4 {
            Some(IpNet::V4(v4)) => mac_from_ipv4(v4.addr().octets()),
            _ => mac_from_id(&ep.id),
        };
        if taken(&ep.mac).is_some() {
            ep.mac = mac_from_id(&ep.id);
        }
        Ok(())
    }

    fn release_endpoint(&mut self, ep: &Endpoint) {
        self.release_overlay_addresses(ep);
        if let Some(p) = self.pools.get_mut(&ep.network_id) {
            for a in [ep.ipv4, ep.ipv6].into_iter().flatten() {
                p.release(a.addr());
            }
        }
    }

    /// The endpoint (index into `sb.endpoints`) that provides the sandbox's default route.
    pub fn default_gateway_endpoint(&self, sb: &Sandbox) -> Option<usize> {
        let cands: Vec<handover::GatewayCandidate> = sb
            .endpoints
            .iter()
            .map(|e| {
                let n = self.networks.get(&e.network_id);
                // An overlay gives no default route: its containers leave through
                // docker_gwbridge (see handover::needs_gwbridge).
                let has = |v6: bool| {
                    let addr = if v6 { e.ipv6 } else { e.ipv4 };
                    addr.and(n.filter(|n| n.driver != Driver::Overlay))
                        .and_then(|n| n.gateway(v6))
                        .filter(|_| options::endpoint_gives_default_route(&e.driver_opts))
                };
                handover::GatewayCandidate {
                    network_name: n.map(|n| n.name.as_str()).unwrap_or(""),
                    internal: n.is_none_or(|n| {
                        n.internal || n.driver == Driver::Null || n.driver == Driver::Host
                    }),
                    gw_priority: e.gw_priority,
                    gateway4: has(false),
                    gateway6: has(true),
                }
            })
            .collect();
        handover::default_gateway(&cands)
    }
}

fn alloc_error(e: ipam::IpamError, net: &Network, v6: bool) -> Error {
    match e {
        ipam::IpamError::AddressInUse(_) => Error::Forbidden("Address already in use".into()),
        ipam::IpamError::Exhausted => Error::Internal(format!(
            "no available IPv{} addresses on this network's address pools: {} ({})",
            if v6 { 6 } else { 4 },
            net.name,
            net.id
        )),
        ipam::IpamError::OutOfRange(a) => {
            Error::InvalidParameter(endpoint_settings_error(&[format!(
                "no configured subnet or ip-range contain the IP address {a}"
            )]))
        }
        other => Error::Internal(other.to_string()),
    }
}

fn endpoint_settings_error(problems: &[String]) -> String {
    if problems.len() == 1 {
        format!("invalid endpoint settings:\n{}", problems[0])
    } else {
        let items: Vec<String> = problems.iter().map(|p| format!("* {p}")).collect();
        format!("invalid endpoint settings:\n{}", items.join("\n"))
    }
}

fn bool_option(
    explicit: Option<bool>,
    opts: &BTreeMap<String, String>,
    key: &str,
    default: bool,
) -> Result<bool> {
    if let Some(v) = explicit {
        return Ok(v);
    }
    match opts.get(key) {
        None => Ok(default),
        Some(v) => options::parse_bool(v).ok_or_else(|| {
            Error::InvalidParameter(format!("driver-opt \"{key}\" is not a valid bool"))
        }),
    }
}

fn pools_for(n: &Network) -> std::result::Result<NetworkPools, String> {
    if n.config_only {
        return NetworkPools::new(&[])
            .map(|p| p.0)
            .map_err(|e| e.to_string());
    }
    NetworkPools::new(n.configs())
        .map(|p| p.0)
        .map_err(|e| e.to_string())
}

fn predefined_network(name: &str, driver: Driver, options: BTreeMap<String, String>) -> Network {
    Network {
        id: util::new_id(),
        name: name.into(),
        created: util::now_rfc3339(),
        scope: "local".into(),
        driver,
        enable_ipv4: driver == Driver::Bridge,
        enable_ipv6: false,
        ipam_driver: "default".into(),
        ipam_options: None,
        ipam_config: None,
        user_subnets: false,
        internal: false,
        attachable: false,
        ingress: false,
        config_only: false,
        config_from: String::new(),
        options,
        labels: BTreeMap::new(),
        predefined: true,
    }
}

/// Docker's MAC for an IPv4 endpoint: 02:42 followed by the address bytes.
/// A MAC in the forms Go's `net.ParseMAC` takes for 48-bit addresses: `02:42:ac:11:00:02`,
/// `02-42-ac-11-00-02`, `0242.ac11.0002` (any case).
pub fn parse_go_mac(s: &str) -> Option<crate::wire::MacAddr> {
    if s.len() == 14 && s.as_bytes().get(4) == Some(&b'.') {
        let groups: Vec<&str> = s.split('.').collect();
        if groups.len() != 3 || groups.iter().any(|g| g.len() != 4) {
            return None;
        }
        let mut out = [0u8; 6];
        for (i, g) in groups.iter().enumerate() {
            let v = u16::from_str_radix(g, 16).ok()?;
            out[2 * i..2 * i + 2].copy_from_slice(&v.to_be_bytes());
        }
        return Some(crate::wire::MacAddr(out));
    }
    // One separator kind throughout, as Go requires.
    let seps = s.bytes().filter(|b| *b == b':' || *b == b'-').count();
    let colons = s.bytes().filter(|b| *b == b':').count();
    if seps != 5 || (colons != 0 && colons != 5) {
        return None;
    }
    s.parse().ok()
}

pub fn mac_from_ipv4(o: [u8; 4]) -> String {
    format!("02:42:{:02x}:{:02x}:{:02x}:{:02x}", o[0], o[1], o[2], o[3])
}

/// A locally administered unicast MAC derived from an endpoint id (IPv6-only endpoints).
fn mac_from_id(id: &str) -> String {
    let b = id.as_bytes();
    let byte = |i: usize| -> u8 {
        let h = |c: u8| (c as char).to_digit(16).unwrap_or(0) as u8;
        h(*b.get(2 * i).unwrap_or(&b'0')) << 4 | h(*b.get(2 * i + 1).unwrap_or(&b'0'))
    };
    format!(
        "02:42:{:02x}:{:02x}:{:02x}:{:02x}",
        byte(0),
        byte(1),
        byte(2),
        byte(3)
    )
}

/// Docker's container-name rule: `[a-zA-Z0-9][a-zA-Z0-9_.-]+`.
pub fn valid_container_name(n: &str) -> bool {
    let mut it = n.bytes();
    matches!(it.next(), Some(c) if c.is_ascii_alphanumeric())
        && it.all(|c| c.is_ascii_alphanumeric() || c == b'_' || c == b'.' || c == b'-')
}

#[cfg(test)]
mod tests;
