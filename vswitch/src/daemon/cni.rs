//! CNI attachments: a runtime's namespace (`CNI_NETNS`) put on a network as `CNI_IFNAME`,
//! keyed by (container ID, ifname). One adopted sandbox per container ID, one endpoint per
//! ifname, on the same attach path as `vswitch run --netns` and `docker network connect`, so
//! the store keeps them across restarts and `restore` re-attaches them.

use super::{internal, lock, Daemon};
use crate::cni::api::{self, AttachRequest, Attachment, AttachmentKey, CniOrigin, GcRequest};
use crate::model::{self, Driver, EndpointSettings, Error, Sandbox};
use crate::wire::MacAddr;
use std::path::PathBuf;

impl Daemon {
    /// `POST /vswitch/attachments` (CNI ADD). Creates the network first when it is missing and
    /// the request says how; fails when the attachment exists.
    pub fn cni_attach(&self, req: AttachRequest) -> Result<Attachment, Error> {
        let bad = |m: String| Err(Error::InvalidParameter(m));
        if !api::valid_container_id(&req.container_id) {
            return bad(format!("invalid container ID {:?}", req.container_id));
        }
        if !api::valid_ifname(&req.ifname) {
            return bad(format!("invalid interface name {:?}", req.ifname));
        }
        if req.netns.is_empty() {
            return bad("a namespace path is required".into());
        }
        let mac = match req.mac.as_deref() {
            Some(m) => match m.parse::<MacAddr>() {
                Ok(a) if a.0[0] & 1 == 0 => Some(a.to_string()),
                _ => return bad(format!("invalid MAC address {m:?}")),
            },
            None => None,
        };
        let _op = lock(&self.ops);
        let net = self.state().find_network(&req.network).cloned();
        let net = match (net, &req.create) {
            (Ok(n), Some(spec)) => {
                let want: Option<ipam::IpNet> = spec.subnet.parse().ok();
                if want.is_some_and(|w| !n.subnets().contains(&w)) {
                    let have: Vec<String> = n.subnets().iter().map(|s| s.to_string()).collect();
                    return bad(format!(
                        "network {} exists with subnet {}, the config says {}",
                        n.name,
                        have.join(", "),
                        spec.subnet
                    ));
                }
                n
            }
            (Ok(n), None) => n,
            (Err(Error::NotFound(_)), Some(spec)) => {
                self.create_network_locked(create_spec(&req.network, spec))?;
                self.state().find_network(&req.network)?.clone()
            }
            (Err(e), _) => return Err(e),
        };
        if !matches!(net.driver, Driver::Bridge | Driver::Overlay) {
            return bad(format!(
                "network {} has driver {}: CNI attachments need a bridge or overlay network",
                net.name,
                net.driver.as_str()
            ));
        }
        if let Some(m) = req.mtu {
            let have = net.bridge_options().mtu;
            if net.driver == Driver::Bridge && have != m {
                return bad(format!(
                    "network {} has MTU {have}, the config asks for {m}",
                    net.name
                ));
            }
        }
        let mut settings = EndpointSettings {
            ipv4: req.ipv4.clone(),
            ipv6: req.ipv6.clone(),
            aliases: req.aliases.clone(),
            ..Default::default()
        };
        if !req.default_route {
            settings.driver_opts.insert(
                model::options::ENDPOINT_DEFAULT_ROUTE.into(),
                "false".into(),
            );
        }
        let ports = port_requests(&req)?;
        let existing = self.cni_sandbox(&req.container_id);
        let sb_id = match existing {
            None => {
                let name = api::sandbox_name(&req.container_id);
                let sb = self.state().create_sandbox(Some(name), &net.id, settings)?;
                let origin = CniOrigin {
                    container_id: req.container_id.clone(),
                    netns: req.netns.clone(),
                };
                // Bound first: the state guard must not live into the next steps.
                let updated = self.state().update_sandbox(&sb.id, |s| {
                    s.cni = Some(origin);
                    s.adopted = true;
                    s.port_requests = ports;
                    if let Some(ep) = s.endpoints.first_mut() {
                        ep.ifname = req.ifname.clone();
                        if let Some(m) = &mac {
                            ep.mac = m.clone();
                        }
                    }
                });
                let res = updated
                    .and_then(|sb| self.cni_build(&sb, &req.netns))
                    .and_then(|_| self.publish(&sb.id, false));
                if let Err(e) = res {
                    for p in self.teardown(&sb.id, true) {
                        tracing::warn!("undo of CNI attachment {}: {p}", req.container_id);
                    }
                    return Err(e);
                }
                sb.id
            }
            Some(sb) => {
                if sb.endpoints.iter().any(|e| e.ifname == req.ifname) {
                    return Err(Error::Conflict(format!(
                        "container {} already has interface {} attached",
                        req.container_id, req.ifname
                    )));
                }
                if sb.cni.as_ref().is_some_and(|o| o.netns != req.netns) {
                    return bad(format!(
                        "container {} is attached in namespace {}, not {}",
                        req.container_id,
                        sb.cni.as_ref().map(|o| o.netns.as_str()).unwrap_or(""),
                        req.netns
                    ));
                }
                self.cni_connect(&sb, &net.id, settings, &req.ifname, mac)?;
                if sb.port_requests.is_empty() && !ports.is_empty() {
                    lock(&self.publications).remove(&sb.id);
                    self.state()
                        .update_sandbox(&sb.id, |s| s.port_requests = ports)?;
                    self.publish(&sb.id, false)?;
                }
                sb.id
            }
        };
        tracing::info!(
            "CNI: attached {} {} to {}",
            req.container_id,
            req.ifname,
            net.name
        );
        self.cni_attachment_of(&sb_id, &req.ifname)
    }

    /// Pin the runtime's namespace and attach the sandbox's first endpoint in it.
    fn cni_build(&self, sb: &Sandbox, given: &str) -> Result<(), Error> {
        let ns = crate::sandbox::netns_path(&self.config.exec_root, &sb.id);
        super::adopt_namespace(given, &ns)?;
        // The embedded DNS listens on lo; runtimes normally bring it up, some only later.
        crate::netns::run_in(&ns, loopback_up)
            .map_err(internal)?
            .map_err(|e| internal(format!("lo up in {given}: {e}")))?;
        let nsp = ns.to_string_lossy().into_owned();
        let sb = self
            .state()
            .update_sandbox(&sb.id, |s| s.netns = Some(nsp))?;
        for ep in &sb.endpoints {
            self.attach(&sb, ep, &ns)?;
        }
        self.sync_gwbridge(&sb.id)?;
        self.apply_default_route(&sb.id)?;
        self.sync_dns(&sb.id)
    }

    /// A further ifname of a container already attached: connect, then name it.
    fn cni_connect(
        &self,
        sb: &Sandbox,
        network_id: &str,
        settings: EndpointSettings,
        ifname: &str,
        mac: Option<String>,
    ) -> Result<(), Error> {
        let (_, ep) = self.state().connect(network_id, &sb.id, settings)?;
        let undo = |e: Error| {
            if let Err(e2) = self.state().disconnect(network_id, &sb.id, true) {
                tracing::error!("undo of CNI attachment {}: {e2}", sb.name);
            }
            e
        };
        let updated = self.state().update_sandbox(&sb.id, |s| {
            if let Some(x) = s.endpoints.iter_mut().find(|x| x.id == ep.id) {
                x.ifname = ifname.to_string();
                if let Some(m) = &mac {
                    x.mac = m.clone();
                }
            }
        });
        let sb = updated.map_err(undo)?;
        let Some(ep) = sb.endpoints.iter().find(|x| x.id == ep.id).cloned() else {
            return Err(undo(internal("endpoint vanished")));
        };
        let Some(ns) = sb.netns.as_deref().map(PathBuf::from) else {
            return Err(undo(internal(format!(
                "sandbox {} has no namespace",
                sb.name
            ))));
        };
        let res = self
            .attach(&sb, &ep, &ns)
            .and_then(|_| self.sync_gwbridge(&sb.id))
            .and_then(|_| self.apply_default_route(&sb.id))
            .and_then(|_| self.sync_dns(&sb.id));
        if let Err(e) = res {
            self.detach(&ep);
            let e = undo(e);
            let _ = self.apply_default_route(&sb.id);
            return Err(e);
        }
        Ok(())
    }

    /// `DELETE /vswitch/attachments/{container}/{ifname}` (CNI DEL). Ok(false) when there was
    /// nothing to remove. The address goes back to the pool; the last ifname of a container
    /// takes its sandbox (and vswitchd's pin of the namespace) with it.
    /// With `network`, only an attachment on that network is removed.
    pub fn cni_detach(
        &self,
        container_id: &str,
        ifname: &str,
        network: Option<&str>,
    ) -> Result<bool, Error> {
        let _op = lock(&self.ops);
        if let Some(n) = network {
            let on = self.cni_sandbox(container_id).and_then(|sb| {
                let ep = sb.endpoints.iter().find(|e| e.ifname == ifname)?;
                let st = self.state();
                let net = st.network(&ep.network_id)?;
                Some(net.name == n || net.id == n)
            });
            if on == Some(false) {
                return Ok(false);
            }
        }
        self.cni_detach_locked(container_id, ifname)
    }

    fn cni_detach_locked(&self, container_id: &str, ifname: &str) -> Result<bool, Error> {
        let Some(sb) = self.cni_sandbox(container_id) else {
            return Ok(false);
        };
        let Some(ep) = sb.endpoints.iter().find(|e| e.ifname == ifname).cloned() else {
            return Ok(false);
        };
        if sb.endpoints.len() == 1 {
            for p in self.teardown(&sb.id, true) {
                tracing::warn!("CNI DEL {container_id} {ifname}: {p}");
            }
            if self.state().sandbox(&sb.id).is_some() {
                return Err(internal(format!(
                    "attachment {container_id} {ifname} could not be removed from the store"
                )));
            }
        } else {
            self.state().disconnect(&ep.network_id, &sb.id, true)?;
            self.detach(&ep);
            let warn = |what: &str, r: Result<(), Error>| {
                if let Err(e) = r {
                    tracing::warn!("CNI DEL {container_id} {ifname}: {what}: {e}");
                }
            };
            warn("docker_gwbridge", self.sync_gwbridge(&sb.id));
            warn("default route", self.apply_default_route(&sb.id));
            warn("dns", self.sync_dns(&sb.id));
            lock(&self.publications).remove(&sb.id);
            warn("published ports", self.publish(&sb.id, true));
        }
        tracing::info!("CNI: detached {container_id} {ifname}");
        Ok(true)
    }

    /// `GET /vswitch/attachments/{container}/{ifname}`.
    pub fn cni_attachment(&self, container_id: &str, ifname: &str) -> Result<Attachment, Error> {
        let sb = self.cni_sandbox(container_id).ok_or_else(|| {
            Error::NotFound(format!("no attachment for container {container_id}"))
        })?;
        self.cni_attachment_of(&sb.id, ifname)
    }

    /// `GET /vswitch/attachments[?network=N]`.
    pub fn cni_attachments(&self, network: Option<&str>) -> Result<Vec<Attachment>, Error> {
        let net_id = match network {
            Some(n) => Some(self.state().find_network(n)?.id.clone()),
            None => None,
        };
        let keys: Vec<(String, String)> = self
            .state()
            .sandboxes()
            .filter(|s| s.cni.is_some())
            .flat_map(|s| {
                s.endpoints
                    .iter()
                    .filter(|e| net_id.as_ref().is_none_or(|n| &e.network_id == n))
                    .map(|e| (s.id.clone(), e.ifname.clone()))
                    .collect::<Vec<_>>()
            })
            .collect();
        keys.iter()
            .map(|(sb, ifname)| self.cni_attachment_of(sb, ifname))
            .collect()
    }

    /// `POST /vswitch/attachments/gc` (CNI GC): remove the network's attachments that are not
    /// in `valid`; keeps going past failures.
    pub fn cni_gc(&self, req: GcRequest) -> Result<Vec<AttachmentKey>, Error> {
        let _op = lock(&self.ops);
        let net_id = match self.state().find_network(&req.network) {
            Ok(n) => n.id.clone(),
            Err(Error::NotFound(_)) => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        let stale: Vec<AttachmentKey> = self
            .state()
            .sandboxes()
            .filter_map(|s| Some((s.cni.as_ref()?.container_id.clone(), s)))
            .flat_map(|(cid, s)| {
                s.endpoints
                    .iter()
                    .filter(|e| e.network_id == net_id)
                    .map(|e| AttachmentKey {
                        container_id: cid.clone(),
                        ifname: e.ifname.clone(),
                    })
                    .collect::<Vec<_>>()
            })
            .filter(|k| !req.valid.contains(k))
            .collect();
        let mut removed = Vec::new();
        for k in stale {
            match self.cni_detach_locked(&k.container_id, &k.ifname) {
                Ok(_) => removed.push(k),
                Err(e) => tracing::warn!("CNI GC {} {}: {e}", k.container_id, k.ifname),
            }
        }
        Ok(removed)
    }

    fn cni_sandbox(&self, container_id: &str) -> Option<Sandbox> {
        self.state()
            .sandboxes()
            .find(|s| {
                s.cni
                    .as_ref()
                    .is_some_and(|o| o.container_id == container_id)
            })
            .cloned()
    }

    fn cni_attachment_of(&self, sandbox_id: &str, ifname: &str) -> Result<Attachment, Error> {
        let st = self.state();
        let not_found = || Error::NotFound(format!("no attachment for interface {ifname}"));
        let sb = st.sandbox(sandbox_id).ok_or_else(not_found)?;
        let (idx, ep) = sb
            .endpoints
            .iter()
            .enumerate()
            .find(|(_, e)| e.ifname == ifname)
            .ok_or_else(not_found)?;
        let net = st
            .network(&ep.network_id)
            .ok_or_else(|| internal(format!("network {} is gone", ep.network_id)))?;
        let mtu = match net.driver {
            Driver::Overlay => super::overlay::overlay_mtu(net),
            _ => net.bridge_options().mtu,
        };
        let gw = |v6: bool| {
            let has = if v6 {
                ep.ipv6.is_some()
            } else {
                ep.ipv4.is_some()
            };
            net.gateway(v6).filter(|_| has).map(|g| g.to_string())
        };
        Ok(Attachment {
            container_id: sb
                .cni
                .as_ref()
                .map(|o| o.container_id.clone())
                .unwrap_or_default(),
            ifname: ep.ifname.clone(),
            netns: sb.cni.as_ref().map(|o| o.netns.clone()).unwrap_or_default(),
            network: net.name.clone(),
            network_id: net.id.clone(),
            sandbox_id: sb.id.clone(),
            endpoint_id: ep.id.clone(),
            mac: ep.mac.clone(),
            mtu,
            ipv4: ep.ipv4.map(|a| a.to_string()),
            gateway4: gw(false),
            ipv6: ep.ipv6.map(|a| a.to_string()),
            gateway6: gw(true),
            default_route: st.default_gateway_endpoint(sb) == Some(idx),
            nameservers: if crate::names::sandbox_has_dns(&st, sb) {
                vec![EMBEDDED_DNS.to_string()]
            } else {
                Vec::new()
            },
            ports: sb
                .bindings
                .iter()
                .map(|b| {
                    format!(
                        "{}:{}:{}->{}",
                        b.proto.as_str(),
                        b.host_ip,
                        b.host_port,
                        b.container_port
                    )
                })
                .collect(),
        })
    }
}

/// `ip link set lo up` without spawning `ip`: SIOCSIFFLAGS on this thread's namespace.
fn loopback_up() -> std::io::Result<()> {
    // SAFETY: a plain datagram socket, closed below.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: ifreq is plain data; the name fits (3 bytes with NUL).
    let mut ifr: libc::ifreq = unsafe { std::mem::zeroed() };
    for (d, s) in ifr.ifr_name.iter_mut().zip(b"lo\0") {
        *d = *s as libc::c_char;
    }
    // SAFETY: SIOCGIFFLAGS/SIOCSIFFLAGS read and write ifr_flags of a valid ifreq.
    let r = unsafe {
        if libc::ioctl(fd, libc::SIOCGIFFLAGS, &mut ifr) != 0 {
            -1
        } else {
            ifr.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short;
            libc::ioctl(fd, libc::SIOCSIFFLAGS, &ifr)
        }
    };
    let err = std::io::Error::last_os_error();
    // SAFETY: our fd, closed once.
    unsafe { libc::close(fd) };
    if r != 0 {
        return Err(err);
    }
    Ok(())
}

/// The embedded resolver's address inside a sandbox.
const EMBEDDED_DNS: &str = "127.0.0.11";

fn create_spec(name: &str, s: &api::NetworkSpec) -> model::CreateNetwork {
    let v6 = s.subnet.contains(':');
    model::CreateNetwork {
        name: name.to_string(),
        driver: s.driver.clone().unwrap_or_else(|| "bridge".into()),
        enable_ipv6: v6.then_some(true),
        enable_ipv4: v6.then_some(false),
        ipam_config: vec![ipam::RawSubnetConfig {
            subnet: s.subnet.clone(),
            ip_range: None,
            gateway: s.gateway.clone(),
            aux: Default::default(),
        }],
        internal: s.internal,
        options: s.options.clone(),
        ..Default::default()
    }
}

fn port_requests(req: &AttachRequest) -> Result<Vec<crate::ports::PortRequest>, Error> {
    use crate::ports::{PortRequest, Proto};
    req.port_mappings
        .iter()
        .map(|p| {
            let proto = match p.protocol.as_str() {
                "" | "tcp" => Proto::Tcp,
                "udp" => Proto::Udp,
                o => {
                    return Err(Error::InvalidParameter(format!(
                        "unsupported protocol {o:?} for a published port"
                    )))
                }
            };
            let host_ip = match p.host_ip.as_deref().filter(|s| !s.is_empty()) {
                Some(s) => Some(
                    s.parse()
                        .map_err(|_| Error::InvalidParameter(format!("invalid host IP {s:?}")))?,
                ),
                None => None,
            };
            Ok(PortRequest {
                proto,
                container_port: p.container_port,
                host_ip,
                host_ports: Some((p.host_port, p.host_port)),
            })
        })
        .collect()
}
