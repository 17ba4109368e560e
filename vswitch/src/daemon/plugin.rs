//! The daemon side of the Docker remote network driver. A plugin network is an ordinary
//! bridge network of the model (labelled with dockerd's network id, named by its short id),
//! created with the pools dockerd's IPAM chose. Each Docker endpoint is a sandbox of its own
//! with one endpoint holding exactly dockerd's addresses, and without a namespace of ours:
//! its device is a persistent TAP made in the daemon's namespace, plugged into the switch by
//! the same path as every sandbox port, and handed to dockerd in `Join`, which moves it into
//! the container. Persistence lets the TAP outlive a daemon crash inside the container; a
//! restart finds it again by MAC in the stored SandboxKey namespace and re-opens it.
//!
//! dockerd is never called back (that deadlocks it at start).

use super::{internal, lock, Daemon};
use crate::model::{self, Endpoint, EndpointSettings, Error, Network};
use crate::plugin::docker::{self, Call, EndpointSpec, NetworkSpec};
use crate::port::tap::{self, Tap};
use crate::sandbox::{self, PortSpec};
use crate::store::{Kind, Store};
use crate::wire::MacAddr;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::path::Path;
use std::sync::Mutex;

/// Name prefix of endpoint TAPs in the daemon's namespace (dockerd's `SrcName`; inside the
/// container the device is `eth<N>`).
pub const TAP_PREFIX: &str = "vsd";
/// Name prefix of the sandbox standing for one Docker endpoint.
pub const SANDBOX_PREFIX: &str = "docker-";
/// Label holding dockerd's network id on a plugin network.
pub const LABEL_NETWORK_ID: &str = "io.vswitch.docker.network-id";
/// Hex digits of a Docker id used in names (Docker's short id).
const SHORT_ID: usize = 12;

/// What vswitchd keeps per Docker endpoint (the model keeps its addresses and ports).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DockerEndpoint {
    pub endpoint_id: String,
    pub docker_network_id: String,
    /// The vswitch network and sandbox standing for it.
    pub network_id: String,
    pub sandbox_id: String,
    /// The TAP's name in the daemon's namespace (dockerd renames it inside the container).
    pub tap: String,
    /// The container's namespace, between Join and Leave.
    pub sandbox_key: Option<String>,
}

struct Live {
    rec: DockerEndpoint,
    /// A second fd on the TAP: turns persistence off before the port goes, so the device
    /// goes with it.
    keep: Option<File>,
}

#[derive(Default)]
pub struct DockerEndpoints {
    live: Mutex<HashMap<String, Live>>,
}

fn short(id: &str) -> &str {
    &id[..id.len().min(SHORT_ID)]
}

fn store(d: &Daemon) -> Result<Store, Error> {
    Store::open(&d.config.data_root).map_err(internal)
}

impl Daemon {
    /// Serve one decoded remote-driver call; the reply JSON, or an error for `{"Err": …}`.
    pub fn docker_call(&self, call: Call) -> Result<Value, Error> {
        match call {
            Call::Activate => Ok(docker::activate_reply()),
            Call::GetCapabilities => Ok(docker::capabilities_reply()),
            Call::CreateNetwork(spec) => self.docker_create_network(spec),
            Call::DeleteNetwork { network_id } => self.docker_delete_network(&network_id),
            Call::CreateEndpoint(spec) => self.docker_create_endpoint(spec),
            Call::DeleteEndpoint { endpoint_id, .. } => self.docker_delete_endpoint(&endpoint_id),
            Call::EndpointOperInfo { endpoint_id, .. } => {
                // Shown by `docker inspect`: nothing rather than an error for one we lost.
                let Ok(rec) = self.docker_record(&endpoint_id) else {
                    return Ok(docker::oper_info_reply(serde_json::json!({})));
                };
                let name = self
                    .state()
                    .network(&rec.network_id)
                    .map(|n| n.name.clone())
                    .unwrap_or_default();
                Ok(docker::oper_info_reply(serde_json::json!({
                    "io.vswitch.tap": rec.tap,
                    "io.vswitch.network": name,
                })))
            }
            Call::Join {
                endpoint_id,
                sandbox_key,
                ..
            } => self.docker_join(&endpoint_id, Some(sandbox_key)),
            // Teardown calls succeed for endpoints we do not know: dockerd is cleaning up.
            Call::Leave { endpoint_id, .. } => {
                if let Err(e) = self.docker_set_sandbox_key(&endpoint_id, None) {
                    tracing::warn!("docker: Leave: {e}");
                }
                Ok(docker::empty_reply())
            }
            Call::ProgramExternalConnectivity {
                endpoint_id, ports, ..
            } => self.docker_program(&endpoint_id, ports),
            Call::RevokeExternalConnectivity { endpoint_id, .. } => {
                if let Ok(rec) = self.docker_record(&endpoint_id) {
                    lock(&self.publications).remove(&rec.sandbox_id);
                    if let Err(e) = self
                        .state()
                        .update_sandbox(&rec.sandbox_id, |s| s.bindings.clear())
                    {
                        tracing::warn!("docker: RevokeExternalConnectivity: {e}");
                    }
                }
                Ok(docker::empty_reply())
            }
            Call::Discover => Ok(docker::empty_reply()),
        }
    }

    fn docker_network(&self, docker_id: &str) -> Result<Network, Error> {
        self.state()
            .networks()
            .find(|n| n.labels.get(LABEL_NETWORK_ID).map(String::as_str) == Some(docker_id))
            .cloned()
            .ok_or_else(|| {
                Error::NotFound(format!(
                    "network {docker_id} not found: vswitchd has no record of it"
                ))
            })
    }

    fn docker_record(&self, endpoint_id: &str) -> Result<DockerEndpoint, Error> {
        lock(&self.docker.live)
            .get(endpoint_id)
            .map(|l| l.rec.clone())
            .ok_or_else(|| {
                Error::NotFound(format!(
                    "endpoint {endpoint_id} not found: vswitchd has no record of it"
                ))
            })
    }

    fn docker_create_network(&self, spec: NetworkSpec) -> Result<Value, Error> {
        if self.docker_network(&spec.network_id).is_ok() {
            // dockerd retries calls it could not confirm.
            return Ok(docker::empty_reply());
        }
        // Say which vswitch network is in the way (the model's text is Docker's generic one).
        for p in spec.v4.iter().chain(&spec.v6) {
            let st = self.state();
            let clash = st.networks().filter(|n| !n.config_only).find_map(|n| {
                n.subnets()
                    .into_iter()
                    .find(|s| s.contains(&p.subnet.network()) || p.subnet.contains(&s.network()))
                    .map(|s| (n.name.clone(), s))
            });
            if let Some((name, s)) = clash {
                return Err(Error::Forbidden(format!(
                    "subnet {} overlaps with {s} of vswitch network {name}: choose another --subnet",
                    p.subnet.trunc()
                )));
            }
        }
        let raw = |p: &docker::Pool| ipam::RawSubnetConfig {
            subnet: p.subnet.trunc().to_string(),
            ip_range: None,
            gateway: p.gateway.map(|g| g.to_string()),
            aux: p
                .aux
                .iter()
                .map(|(k, v)| (k.clone(), v.to_string()))
                .collect(),
        };
        let req = model::CreateNetwork {
            name: short(&spec.network_id).to_string(),
            driver: "bridge".into(),
            enable_ipv4: Some(!spec.v4.is_empty()),
            enable_ipv6: Some(!spec.v6.is_empty()),
            ipam_config: spec.v4.iter().chain(&spec.v6).map(raw).collect(),
            internal: spec.internal,
            options: spec.generic,
            labels: BTreeMap::from([(LABEL_NETWORK_ID.to_string(), spec.network_id.clone())]),
            ..Default::default()
        };
        let (id, _warnings) = self.create_network(req)?;
        tracing::info!(
            "docker network {} is vswitch network {}",
            spec.network_id,
            id
        );
        Ok(docker::empty_reply())
    }

    fn docker_delete_network(&self, docker_id: &str) -> Result<Value, Error> {
        match self.docker_network(docker_id) {
            Ok(n) => {
                // dockerd deletes a network only without endpoints: any we still hold are
                // stale (a DeleteEndpoint we missed).
                let stale: Vec<String> = lock(&self.docker.live)
                    .values()
                    .filter(|l| l.rec.network_id == n.id)
                    .map(|l| l.rec.endpoint_id.clone())
                    .collect();
                for eid in stale {
                    tracing::warn!("docker endpoint {eid}: its network is deleted; removing it");
                    let _op = lock(&self.ops);
                    if let Err(e) = self.docker_remove_endpoint(&eid) {
                        tracing::warn!("docker endpoint {eid}: {e}");
                    }
                }
                self.remove_network(&n.id)?
            }
            Err(_) => tracing::warn!("docker: DeleteNetwork for unknown network {docker_id}"),
        }
        Ok(docker::empty_reply())
    }

    fn docker_create_endpoint(&self, spec: EndpointSpec) -> Result<Value, Error> {
        let _op = lock(&self.ops);
        if let Ok(rec) = self.docker_record(&spec.endpoint_id) {
            let mac = self.docker_endpoint(&rec)?.mac.parse::<MacAddr>().ok();
            return Ok(docker::create_endpoint_reply(
                mac.filter(|_| spec.mac.is_none()),
            ));
        }
        let n = self.docker_network(&spec.network_id)?;
        self.docker_evict_stale(&n, &spec);
        let settings = EndpointSettings {
            ipv4: spec.ipv4.map(|a| a.addr().to_string()),
            ipv6: spec.ipv6.map(|a| a.addr().to_string()),
            ..Default::default()
        };
        let name = format!("{SANDBOX_PREFIX}{}", short(&spec.endpoint_id));
        let sb = self.state().create_sandbox(Some(name), &n.id, settings)?;
        let rec = DockerEndpoint {
            endpoint_id: spec.endpoint_id.clone(),
            docker_network_id: spec.network_id.clone(),
            network_id: n.id.clone(),
            sandbox_id: sb.id.clone(),
            tap: format!("{TAP_PREFIX}{}", short(&spec.endpoint_id)),
            sandbox_key: None,
        };
        let mut keep = None;
        let res = self.docker_endpoint_up(&n, &rec, &spec, &mut keep);
        match res {
            Ok(mac) => {
                lock(&self.docker.live).insert(rec.endpoint_id.clone(), Live { rec, keep });
                Ok(docker::create_endpoint_reply(
                    Some(mac).filter(|_| spec.mac.is_none()),
                ))
            }
            Err(e) => {
                if let Some(f) = &keep {
                    let _ = tap::set_persist(f, false);
                }
                // Bound first: the state guard must not live into the block (detach locks).
                let sb = self.state().sandbox(&rec.sandbox_id).cloned();
                for ep in sb.iter().flat_map(|s| &s.endpoints) {
                    self.detach(ep);
                }
                drop(keep);
                if let Err(e2) = self.state().remove_sandbox(&rec.sandbox_id) {
                    tracing::error!("undo of endpoint {}: {e2}", rec.endpoint_id);
                }
                Err(e)
            }
        }
    }

    /// The endpoint's addresses as dockerd gave them, its TAP plugged in, its record saved.
    fn docker_endpoint_up(
        &self,
        n: &Network,
        rec: &DockerEndpoint,
        spec: &EndpointSpec,
        keep: &mut Option<File>,
    ) -> Result<MacAddr, Error> {
        let sb = self.state().update_sandbox(&rec.sandbox_id, |s| {
            if let (Some(m), Some(ep)) = (spec.mac, s.endpoints.first_mut()) {
                ep.mac = m.to_string();
            }
            s.port_requests = spec.ports.clone();
            s.exposed = spec.exposed.clone();
        })?;
        let ep = sb
            .endpoints
            .first()
            .cloned()
            .ok_or_else(|| internal("endpoint sandbox without an endpoint"))?;
        let mac: MacAddr = ep
            .mac
            .parse()
            .map_err(|_| internal(format!("bad MAC {}", ep.mac)))?;
        let spec = PortSpec {
            ifname: rec.tap.clone(),
            mac: ep.mac.clone(),
            ipv4: None,
            ipv6: None,
            link_local: Vec::new(),
            mtu: n.bridge_options().mtu,
        };
        let t = sandbox::create_host_iface(&spec, 1)
            .map_err(|e| internal(format!("cannot create {}: {e}", rec.tap)))?;
        let dup = t.queues[0].try_clone().map_err(internal)?;
        tap::set_persist(&dup, true).map_err(internal)?;
        *keep = Some(dup);
        self.plug(n, &ep, mac, t.into())?;
        self.learn_neighbors(&n.id, &ep, mac);
        store(self)?
            .save(Kind::DockerEndpoint, &rec.endpoint_id, rec)
            .map_err(internal)?;
        tracing::info!(
            "docker endpoint {} on {}: {} ({})",
            rec.endpoint_id,
            n.name,
            rec.tap,
            ep.ipv4.map(|a| a.to_string()).unwrap_or_default()
        );
        Ok(mac)
    }

    fn docker_endpoint(&self, rec: &DockerEndpoint) -> Result<Endpoint, Error> {
        self.state()
            .sandbox(&rec.sandbox_id)
            .and_then(|s| s.endpoints.first().cloned())
            .ok_or_else(|| {
                Error::NotFound(format!(
                    "endpoint {} lost its vswitch sandbox",
                    rec.endpoint_id
                ))
            })
    }

    fn docker_set_sandbox_key(&self, endpoint_id: &str, key: Option<String>) -> Result<(), Error> {
        let mut live = lock(&self.docker.live);
        let l = live.get_mut(endpoint_id).ok_or_else(|| {
            Error::NotFound(format!(
                "endpoint {endpoint_id} not found: vswitchd has no record of it"
            ))
        })?;
        let mut rec = l.rec.clone();
        rec.sandbox_key = key;
        store(self)?
            .save(Kind::DockerEndpoint, endpoint_id, &rec)
            .map_err(internal)?;
        l.rec = rec;
        Ok(())
    }

    fn docker_join(&self, endpoint_id: &str, key: Option<String>) -> Result<Value, Error> {
        self.docker_set_sandbox_key(endpoint_id, key)?;
        let rec = self.docker_record(endpoint_id)?;
        let ep = self.docker_endpoint(&rec)?;
        let st = self.state();
        let n = st
            .network(&rec.network_id)
            .ok_or_else(|| Error::NotFound(format!("network {} not found", rec.network_id)))?;
        // Internal networks give no default route, as Docker's bridge driver.
        let gw = |v6: bool, has: bool| (has && !n.internal).then(|| n.gateway(v6)).flatten();
        Ok(docker::join_reply(
            &rec.tap,
            gw(false, ep.ipv4.is_some()),
            gw(true, ep.ipv6.is_some()),
        ))
    }

    fn docker_program(
        &self,
        endpoint_id: &str,
        ports: Option<Vec<crate::ports::PortRequest>>,
    ) -> Result<Value, Error> {
        let _op = lock(&self.ops);
        let rec = self.docker_record(endpoint_id)?;
        if let Some(p) = ports {
            self.state()
                .update_sandbox(&rec.sandbox_id, |s| s.port_requests = p)?;
        }
        lock(&self.publications).remove(&rec.sandbox_id);
        self.publish(&rec.sandbox_id, false).map_err(|e| {
            // dockerd already says "driver failed programming external connectivity…".
            let text = e.to_string();
            match text.split_once("): ") {
                Some((head, tail)) if head.starts_with("driver failed programming") => {
                    Error::Conflict(tail.to_string())
                }
                _ => e,
            }
        })?;
        Ok(docker::empty_reply())
    }

    /// dockerd's IPAM owns the addresses of its networks: an endpoint we still hold with an
    /// address it hands out again was deleted while we did not hear of it (vswitchd down,
    /// dockerd's own store lost). Drop it, or the new endpoint could never be made.
    fn docker_evict_stale(&self, n: &Network, spec: &EndpointSpec) {
        let wanted: Vec<std::net::IpAddr> = [spec.ipv4, spec.ipv6]
            .into_iter()
            .flatten()
            .map(|a| a.addr())
            .collect();
        let recs: Vec<DockerEndpoint> = lock(&self.docker.live)
            .values()
            .filter(|l| l.rec.network_id == n.id)
            .map(|l| l.rec.clone())
            .collect();
        for rec in recs {
            let stale = self.docker_endpoint(&rec).is_ok_and(|ep| {
                [ep.ipv4, ep.ipv6]
                    .into_iter()
                    .flatten()
                    .any(|a| wanted.contains(&a.addr()))
            });
            if stale {
                tracing::warn!(
                    "docker endpoint {}: dockerd gives its address to endpoint {}; removing the stale one",
                    rec.endpoint_id,
                    spec.endpoint_id
                );
                if let Err(e) = self.docker_remove_endpoint(&rec.endpoint_id) {
                    tracing::warn!("docker endpoint {}: {e}", rec.endpoint_id);
                }
            }
        }
    }

    fn docker_delete_endpoint(&self, endpoint_id: &str) -> Result<Value, Error> {
        let _op = lock(&self.ops);
        self.docker_remove_endpoint(endpoint_id)
    }

    fn docker_remove_endpoint(&self, endpoint_id: &str) -> Result<Value, Error> {
        let Some(l) = lock(&self.docker.live).remove(endpoint_id) else {
            tracing::warn!("docker: DeleteEndpoint for unknown endpoint {endpoint_id}");
            return Ok(docker::empty_reply());
        };
        lock(&self.publications).remove(&l.rec.sandbox_id);
        if let Some(f) = &l.keep {
            if let Err(e) = tap::set_persist(f, false) {
                tracing::warn!("docker endpoint {endpoint_id}: {e}");
            }
        }
        let sb = self.state().sandbox(&l.rec.sandbox_id).cloned();
        if let Some(sb) = sb {
            for ep in &sb.endpoints {
                self.detach(ep);
            }
            if let Err(e) = self.state().remove_sandbox(&sb.id) {
                tracing::warn!("docker endpoint {endpoint_id}: {e}");
            }
        }
        // The last fd: the (no longer persistent) TAP goes with it.
        drop(l.keep);
        store(self)?
            .delete(Kind::DockerEndpoint, endpoint_id)
            .map_err(internal)?;
        tracing::info!("docker endpoint {endpoint_id} removed");
        Ok(docker::empty_reply())
    }

    /// Sandboxes standing for stored Docker endpoints (none when the store cannot be read:
    /// then `docker_restore` cannot re-attach them either).
    pub(super) fn docker_sandbox_ids(&self) -> std::collections::HashSet<String> {
        store(self)
            .and_then(|s| {
                s.load::<DockerEndpoint>(Kind::DockerEndpoint)
                    .map_err(internal)
            })
            .map(|l| l.items.into_iter().map(|r| r.sandbox_id).collect())
            .unwrap_or_default()
    }

    /// At start (before the plugin socket serves): re-open every Docker endpoint's TAP where
    /// it is now — inside its container, found by MAC — and plug it in again, with its
    /// published ports.
    pub fn docker_restore(&self) {
        let loaded = match store(self).and_then(|s| {
            s.load::<DockerEndpoint>(Kind::DockerEndpoint)
                .map_err(internal)
        }) {
            Ok(l) => l,
            Err(e) => {
                tracing::error!("restore: docker endpoints: {e}");
                return;
            }
        };
        for p in loaded.errors {
            tracing::warn!("restore: {p}");
        }
        for rec in loaded.items {
            let (ep, n) = {
                let st = self.state();
                let ep = st
                    .sandbox(&rec.sandbox_id)
                    .and_then(|s| s.endpoints.first().cloned());
                (ep, st.network(&rec.network_id).cloned())
            };
            let (Some(ep), Some(n)) = (ep, n) else {
                tracing::warn!(
                    "restore: docker endpoint {}: its vswitch sandbox or network is gone; forgotten",
                    rec.endpoint_id
                );
                if let Ok(s) = store(self) {
                    let _ = s.delete(Kind::DockerEndpoint, &rec.endpoint_id);
                }
                continue;
            };
            let keep = match self.docker_reattach(&rec, &n, &ep) {
                Ok(k) => Some(k),
                Err(e) => {
                    tracing::error!("restore: docker endpoint {}: {e}", rec.endpoint_id);
                    None
                }
            };
            if keep.is_some() {
                let bound = self
                    .state()
                    .sandbox(&rec.sandbox_id)
                    .is_some_and(|s| !s.bindings.is_empty());
                if bound {
                    if let Err(e) = self.publish(&rec.sandbox_id, true) {
                        tracing::error!(
                            "restore: docker endpoint {}: published ports: {e}",
                            rec.endpoint_id
                        );
                    }
                }
                tracing::info!("restore: docker endpoint {} re-attached", rec.endpoint_id);
            }
            lock(&self.docker.live).insert(rec.endpoint_id.clone(), Live { rec, keep });
        }
    }

    fn docker_reattach(
        &self,
        rec: &DockerEndpoint,
        n: &Network,
        ep: &Endpoint,
    ) -> Result<File, Error> {
        let mac: MacAddr = ep
            .mac
            .parse()
            .map_err(|_| internal(format!("bad MAC {}", ep.mac)))?;
        let in_container = rec
            .sandbox_key
            .as_deref()
            .map(Path::new)
            .filter(|p| crate::netns::is_namespace(p));
        let mut found = None;
        if let Some(ns) = in_container {
            let m = mac.0;
            found = crate::netns::run_in(ns, move || -> Option<Result<Tap, String>> {
                let name = find_by_mac(m)?;
                Some(Tap::create(&name, 1).map_err(|e| e.to_string()))
            })
            .map_err(internal)?
            .transpose()
            .map_err(internal)?;
        }
        let t = match found {
            Some(t) => t,
            // Not in a container (never joined, or dockerd moved it back): ours, by name.
            None if iface_exists(&rec.tap) => Tap::create(&rec.tap, 1).map_err(internal)?,
            None => {
                let spec = PortSpec {
                    ifname: rec.tap.clone(),
                    mac: ep.mac.clone(),
                    ipv4: None,
                    ipv6: None,
                    link_local: Vec::new(),
                    mtu: n.bridge_options().mtu,
                };
                sandbox::create_host_iface(&spec, 1).map_err(internal)?
            }
        };
        let dup = t.queues[0].try_clone().map_err(internal)?;
        tap::set_persist(&dup, true).map_err(internal)?;
        if let Err(e) = self.plug(n, ep, mac, t.into()) {
            let _ = tap::set_persist(&dup, false);
            return Err(e);
        }
        self.learn_neighbors(&n.id, ep, mac);
        Ok(dup)
    }
}

/// An interface of the daemon's own namespace.
fn iface_exists(name: &str) -> bool {
    let Ok(c) = std::ffi::CString::new(name) else {
        return false;
    };
    // SAFETY: a valid C string.
    unsafe { libc::if_nametoindex(c.as_ptr()) != 0 }
}

/// The interface with this MAC in the calling thread's namespace (if_nameindex asks
/// netlink, whose socket belongs to the thread's namespace; /sys would show the daemon's).
fn find_by_mac(mac: [u8; 6]) -> Option<String> {
    // SAFETY: if_nameindex returns a list terminated by a zero entry, freed below; the ioctl
    // gets a zeroed ifreq holding a NUL-terminated name.
    unsafe {
        let list = libc::if_nameindex();
        if list.is_null() {
            return None;
        }
        let sock = libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0);
        let mut found = None;
        let mut i = 0;
        while sock >= 0 && found.is_none() {
            let e = &*list.add(i);
            if e.if_index == 0 || e.if_name.is_null() {
                break;
            }
            let name = std::ffi::CStr::from_ptr(e.if_name);
            let bytes = name.to_bytes();
            let mut req: libc::ifreq = std::mem::zeroed();
            if bytes.len() < req.ifr_name.len() {
                for (d, s) in req.ifr_name.iter_mut().zip(bytes) {
                    *d = *s as libc::c_char;
                }
                if libc::ioctl(sock, libc::SIOCGIFHWADDR as _, &mut req) == 0 {
                    let hw = req.ifr_ifru.ifru_hwaddr.sa_data;
                    if (0..6).all(|k| hw[k] as u8 == mac[k]) {
                        found = Some(name.to_string_lossy().into_owned());
                    }
                }
            }
            i += 1;
        }
        if sock >= 0 {
            libc::close(sock);
        }
        libc::if_freenameindex(list);
        found
    }
}
