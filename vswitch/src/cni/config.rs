//! The network config on stdin and the `CNI_*` environment, parsed and checked.

use super::api::{self, AttachRequest, AttachmentKey, NetworkSpec, PortMapping};
use super::result::Dns;
use super::*;
use serde::Deserialize;
use serde_json::Value;
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::PathBuf;

/// Largest config accepted on stdin (configs are a few KiB; prevResult included).
pub const MAX_CONFIG_BYTES: usize = 1 << 20;
/// Most entries accepted in one list of the config (ports, ips, GC attachments).
pub const MAX_LIST: usize = 65_536;
pub use crate::model::options::{MAX_MTU, MIN_MTU};
/// IPAM `type` values meaning vswitch's own IPAM (no delegate exec'd).
pub const OWN_IPAM: &[&str] = &["", "vswitch"];

/// `CNI_COMMAND`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    Add,
    Del,
    Check,
    Version,
    Status,
    Gc,
}

impl Command {
    pub fn parse(s: &str) -> Option<Command> {
        Some(match s {
            "ADD" => Command::Add,
            "DEL" => Command::Del,
            "CHECK" => Command::Check,
            "VERSION" => Command::Version,
            "STATUS" => Command::Status,
            "GC" => Command::Gc,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Command::Add => "ADD",
            Command::Del => "DEL",
            Command::Check => "CHECK",
            Command::Version => "VERSION",
            Command::Status => "STATUS",
            Command::Gc => "GC",
        }
    }
}

/// The `CNI_*` environment, checked for the command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Env {
    pub command: Command,
    pub container_id: String,
    pub netns: String,
    pub ifname: String,
    /// `CNI_ARGS` pairs (`K=V;K2=V2`).
    pub args: Vec<(String, String)>,
    pub path: Vec<PathBuf>,
}

impl Env {
    /// Read the variables through `get` (the process environment in the binary).
    pub fn from_vars(get: impl Fn(&str) -> Option<String>) -> Result<Env, CniError> {
        let bad = |m: String| CniError::new(CODE_INVALID_ENV, m);
        let raw = get("CNI_COMMAND").unwrap_or_default();
        let command = Command::parse(&raw).ok_or_else(|| {
            bad(format!(
                "CNI_COMMAND {raw:?} is not one of ADD, DEL, CHECK, VERSION, STATUS, GC"
            ))
        })?;
        let var = |k: &str| get(k).unwrap_or_default();
        let env = Env {
            command,
            container_id: var("CNI_CONTAINERID"),
            netns: var("CNI_NETNS"),
            ifname: var("CNI_IFNAME"),
            args: parse_args(&var("CNI_ARGS")).map_err(bad)?,
            path: std::env::split_paths(&var("CNI_PATH"))
                .filter(|p| !p.as_os_str().is_empty())
                .collect(),
        };
        let needs_netns = matches!(command, Command::Add | Command::Check);
        if matches!(command, Command::Add | Command::Del | Command::Check) {
            if env.container_id.is_empty() {
                return Err(bad("CNI_CONTAINERID is required".into()));
            }
            if !api::valid_container_id(&env.container_id) {
                return Err(bad(format!(
                    "CNI_CONTAINERID {:?} is invalid: it must start with a letter or digit and hold only [A-Za-z0-9_.-] (at most {} bytes)",
                    env.container_id,
                    api::MAX_CONTAINER_ID_LEN
                )));
            }
            if env.ifname.is_empty() {
                return Err(bad("CNI_IFNAME is required".into()));
            }
            if !api::valid_ifname(&env.ifname) {
                return Err(bad(format!(
                    "CNI_IFNAME {:?} is not a valid interface name (1-{} bytes, no '/', ':' or spaces)",
                    env.ifname,
                    api::MAX_IFNAME_LEN
                )));
            }
            if needs_netns && env.netns.is_empty() {
                return Err(bad("CNI_NETNS is required".into()));
            }
        }
        Ok(env)
    }

    /// A `CNI_ARGS` value.
    pub fn arg(&self, key: &str) -> Option<&str> {
        self.args
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// `K=V;K2=V2` (empty parts skipped).
pub fn parse_args(s: &str) -> Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    for part in s.split(';').filter(|p| !p.is_empty()) {
        let Some((k, v)) = part.split_once('=') else {
            return Err(format!("CNI_ARGS: {part:?} is not KEY=VALUE"));
        };
        if out.len() >= MAX_LIST {
            return Err("CNI_ARGS has too many pairs".into());
        }
        out.push((k.to_string(), v.to_string()));
    }
    Ok(out)
}

/// One plugin's config as the runtime hands it over.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct NetConf {
    pub cni_version: String,
    pub name: String,
    #[serde(rename = "type")]
    pub plugin_type: String,
    /// The vswitch network (name or ID); defaults to `name`.
    pub network: Option<String>,
    /// vswitchd's API socket (`/path` or `unix:///path`).
    pub socket: Option<String>,
    /// Create the network on first ADD with this subnet (and gateway) when it is missing.
    pub subnet: Option<String>,
    pub gateway: Option<String>,
    /// Network driver when created (default bridge).
    pub driver: Option<String>,
    /// Created network is internal (no way out, no published ports).
    pub internal: bool,
    /// Driver options when created (`com.docker.network.bridge.enable_icc`, …).
    pub options: BTreeMap<String, String>,
    pub mtu: Option<u32>,
    /// Whether this attachment may give the default route (default true).
    pub is_default_gateway: Option<bool>,
    pub ipam: Option<Value>,
    pub dns: Option<Dns>,
    pub runtime_config: RuntimeConfig,
    pub prev_result: Option<Value>,
    #[serde(rename = "cni.dev/valid-attachments")]
    pub valid_attachments: Option<Vec<AttachmentKey>>,
    /// The older spelling of the GC key (spec-v1.1.0 tag).
    #[serde(rename = "cni.dev/attachments")]
    pub attachments: Option<Vec<AttachmentKey>>,
}

/// Capabilities the runtime fills in (`runtimeConfig`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct RuntimeConfig {
    pub port_mappings: Vec<RtPortMapping>,
    /// Addresses to give, CIDR or plain.
    pub ips: Vec<String>,
    pub mac: Option<String>,
    /// Podman's `aliases` capability: network name → names.
    pub aliases: BTreeMap<String, Vec<String>>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct RtPortMapping {
    pub host_port: u32,
    pub container_port: u32,
    pub protocol: String,
    #[serde(rename = "hostIP")]
    pub host_ip: String,
}

impl NetConf {
    /// Parse stdin; `cniVersion` must be supported except for VERSION.
    pub fn parse(bytes: &[u8], command: Command) -> Result<NetConf, CniError> {
        if bytes.len() > MAX_CONFIG_BYTES {
            return Err(CniError::new(
                CODE_DECODE,
                format!("network config larger than {MAX_CONFIG_BYTES} bytes"),
            ));
        }
        let conf: NetConf = serde_json::from_slice(bytes).map_err(|e| {
            CniError::new(CODE_DECODE, format!("cannot decode network config: {e}"))
        })?;
        if command == Command::Version {
            return Ok(conf);
        }
        if !SUPPORTED_VERSIONS.contains(&conf.cni_version.as_str()) {
            return Err(CniError::new(
                CODE_INCOMPATIBLE_VERSION,
                format!(
                    "incompatible CNI version {:?}: vswitch-cni supports {}",
                    conf.cni_version,
                    SUPPORTED_VERSIONS.join(", ")
                ),
            ));
        }
        conf.check()?;
        Ok(conf)
    }

    fn check(&self) -> Result<(), CniError> {
        let bad = |m: String| Err(CniError::new(CODE_INVALID_CONFIG, m));
        if self.network_name().is_empty() {
            return bad("network config has neither \"network\" nor \"name\"".into());
        }
        if let Some(m) = self.mtu {
            if !(MIN_MTU..=MAX_MTU).contains(&m) {
                return bad(format!("mtu {m} is out of range {MIN_MTU}-{MAX_MTU}"));
            }
        }
        if let Some(s) = &self.subnet {
            if s.parse::<ipnet::IpNet>().is_err() {
                return bad(format!("subnet {s:?} is not a CIDR (like 10.88.0.0/16)"));
            }
        }
        if let Some(g) = &self.gateway {
            if g.parse::<IpAddr>().is_err() {
                return bad(format!("gateway {g:?} is not an IP address"));
            }
            if self.subnet.is_none() {
                return bad("gateway is given without subnet".into());
            }
        }
        if let Some(t) = self.ipam_type() {
            if t.is_empty() || t.contains('/') || t == "." || t == ".." {
                return bad(format!("ipam type {t:?} is not a plugin name"));
            }
        }
        let rc = &self.runtime_config;
        if rc.port_mappings.len() > MAX_LIST || rc.ips.len() > MAX_LIST {
            return bad("runtimeConfig lists are too long".into());
        }
        Ok(())
    }

    /// The vswitch network this config attaches to.
    pub fn network_name(&self) -> &str {
        self.network
            .as_deref()
            .filter(|n| !n.is_empty())
            .unwrap_or(&self.name)
    }

    /// The delegated IPAM plugin, when the config names one (not vswitch's own).
    pub fn ipam_type(&self) -> Option<&str> {
        let t = self.ipam.as_ref()?.get("type")?.as_str().unwrap_or("");
        (!OWN_IPAM.contains(&t)).then_some(t)
    }

    /// The GC list (either key; both may be sent).
    pub fn gc_valid(&self) -> Vec<AttachmentKey> {
        let mut v: Vec<AttachmentKey> = self
            .valid_attachments
            .iter()
            .chain(self.attachments.iter())
            .flatten()
            .cloned()
            .collect();
        v.sort();
        v.dedup();
        v
    }

    /// The daemon request for ADD. `ipam` are addresses from a delegated IPAM plugin.
    pub fn attach_request(&self, env: &Env, ipam: &[IpAddr]) -> Result<AttachRequest, CniError> {
        let bad = |m: String| CniError::new(CODE_INVALID_CONFIG, m);
        let mut want: Vec<IpAddr> = ipam.to_vec();
        if want.is_empty() {
            for s in &self.runtime_config.ips {
                let a = s
                    .split('/')
                    .next()
                    .unwrap_or("")
                    .parse::<IpAddr>()
                    .map_err(|_| bad(format!("runtimeConfig ips: {s:?} is not an address")))?;
                want.push(a);
            }
        }
        let mut req = AttachRequest {
            container_id: env.container_id.clone(),
            ifname: env.ifname.clone(),
            netns: env.netns.clone(),
            network: self.network_name().to_string(),
            mtu: self.mtu,
            default_route: self.is_default_gateway.unwrap_or(true),
            ..Default::default()
        };
        for a in want {
            let slot = if a.is_ipv4() {
                &mut req.ipv4
            } else {
                &mut req.ipv6
            };
            if slot.is_some() {
                return Err(CniError::new(
                    CODE_UNSUPPORTED_FIELD,
                    format!(
                        "more than one IPv{} address asked for; vswitch gives one per family",
                        if a.is_ipv4() { 4 } else { 6 }
                    ),
                ));
            }
            *slot = Some(a.to_string());
        }
        if let Some(m) = self.runtime_config.mac.as_deref().filter(|m| !m.is_empty()) {
            if !valid_unicast_mac(m) {
                return Err(bad(format!(
                    "runtimeConfig mac {m:?} is not a unicast MAC address"
                )));
            }
            req.mac = Some(m.to_ascii_lowercase());
        }
        for p in &self.runtime_config.port_mappings {
            let port = |v: u32, what: &str| {
                u16::try_from(v)
                    .ok()
                    .filter(|p| *p != 0)
                    .ok_or_else(|| bad(format!("portMappings: {what} {v} is not a port")))
            };
            let proto = p.protocol.to_ascii_lowercase();
            if !matches!(proto.as_str(), "" | "tcp" | "udp") {
                return Err(CniError::new(
                    CODE_UNSUPPORTED_FIELD,
                    format!(
                        "portMappings: protocol {:?} is not supported (tcp, udp)",
                        p.protocol
                    ),
                ));
            }
            let host_ip = match p.host_ip.as_str() {
                "" => None,
                s => Some(
                    s.parse::<IpAddr>()
                        .map_err(|_| bad(format!("portMappings: hostIP {s:?} is not an address")))?
                        .to_string(),
                ),
            };
            req.port_mappings.push(PortMapping {
                host_port: port(p.host_port, "hostPort")?,
                container_port: port(p.container_port, "containerPort")?,
                protocol: if proto.is_empty() {
                    "tcp".into()
                } else {
                    proto
                },
                host_ip,
            });
        }
        let mut aliases: Vec<String> = self
            .runtime_config
            .aliases
            .get(&self.name)
            .cloned()
            .unwrap_or_default();
        if let Some(n) = env.arg("K8S_POD_NAME").filter(|n| !n.is_empty()) {
            aliases.push(n.to_string());
        }
        aliases.retain(|a| crate::model::valid_container_name(a));
        aliases.sort();
        aliases.dedup();
        req.aliases = aliases;
        if let Some(subnet) = &self.subnet {
            let mut options = self.options.clone();
            if let Some(m) = self.mtu {
                options.insert(crate::model::options::MTU.into(), m.to_string());
            }
            req.create = Some(NetworkSpec {
                subnet: subnet.clone(),
                gateway: self.gateway.clone(),
                driver: self.driver.clone(),
                internal: self.internal,
                options,
            });
        }
        Ok(req)
    }
}

/// `aa:bb:cc:dd:ee:ff`, multicast bit clear.
pub fn valid_unicast_mac(s: &str) -> bool {
    let parts: Vec<&str> = s.split(':').collect();
    parts.len() == 6
        && parts
            .iter()
            .all(|p| p.len() == 2 && p.bytes().all(|c| c.is_ascii_hexdigit()))
        && u8::from_str_radix(parts[0], 16).is_ok_and(|b| b & 1 == 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(cmd: &str) -> Env {
        let vars: BTreeMap<&str, &str> = [
            ("CNI_COMMAND", cmd),
            ("CNI_CONTAINERID", "c1"),
            ("CNI_NETNS", "/run/netns/x"),
            ("CNI_IFNAME", "eth0"),
            ("CNI_ARGS", "IgnoreUnknown=1;K8S_POD_NAME=web"),
            ("CNI_PATH", "/opt/cni/bin:/usr/lib/cni"),
        ]
        .into();
        Env::from_vars(|k| vars.get(k).map(|v| v.to_string())).unwrap()
    }

    #[test]
    fn environment_per_command() {
        let e = env("ADD");
        assert_eq!(e.command, Command::Add);
        assert_eq!(e.arg("K8S_POD_NAME"), Some("web"));
        assert_eq!(e.path.len(), 2);
        let get = |m: BTreeMap<&'static str, &'static str>| {
            Env::from_vars(move |k| m.get(k).map(|v| v.to_string()))
        };
        let e = get([("CNI_COMMAND", "ADD"), ("CNI_CONTAINERID", "c1")].into()).unwrap_err();
        assert_eq!(e.code, CODE_INVALID_ENV);
        assert!(e.msg.contains("CNI_IFNAME"), "{}", e.msg);
        // DEL needs no namespace.
        get([
            ("CNI_COMMAND", "DEL"),
            ("CNI_CONTAINERID", "c1"),
            ("CNI_IFNAME", "eth0"),
        ]
        .into())
        .unwrap();
        // VERSION and STATUS need nothing else.
        get([("CNI_COMMAND", "VERSION")].into()).unwrap();
        get([("CNI_COMMAND", "STATUS")].into()).unwrap();
        let e = get([("CNI_COMMAND", "FOO")].into()).unwrap_err();
        assert_eq!(e.code, CODE_INVALID_ENV);
        let e = get([
            ("CNI_COMMAND", "ADD"),
            ("CNI_CONTAINERID", "-bad"),
            ("CNI_IFNAME", "eth0"),
            ("CNI_NETNS", "/x"),
        ]
        .into())
        .unwrap_err();
        assert!(e.msg.contains("CNI_CONTAINERID"));
        assert!(parse_args("novalue").is_err());
    }

    #[test]
    fn config_and_request() {
        let raw =
            br#"{"cniVersion":"1.0.0","name":"pods","type":"vswitch-cni","subnet":"10.88.0.0/24",
            "mtu":1400,"isDefaultGateway":true,
            "runtimeConfig":{"portMappings":[{"hostPort":8080,"containerPort":80,"protocol":"tcp"}],
            "ips":["10.88.0.9/24"],"mac":"02:AA:bb:cc:dd:ee"}}"#;
        let c = NetConf::parse(raw, Command::Add).unwrap();
        assert_eq!(c.network_name(), "pods");
        assert_eq!(c.ipam_type(), None);
        let r = c.attach_request(&env("ADD"), &[]).unwrap();
        assert_eq!(r.ipv4.as_deref(), Some("10.88.0.9"));
        assert_eq!(r.mac.as_deref(), Some("02:aa:bb:cc:dd:ee"));
        assert_eq!(r.port_mappings[0].host_port, 8080);
        assert_eq!(r.port_mappings[0].protocol, "tcp");
        assert_eq!(r.aliases, vec!["web".to_string()]);
        let create = r.create.unwrap();
        assert_eq!(create.subnet, "10.88.0.0/24");
        assert_eq!(create.options["com.docker.network.driver.mtu"], "1400");
        assert!(r.default_route);
        // A delegated IPAM's address wins over the capability.
        let r = c
            .attach_request(&env("ADD"), &["10.88.0.77".parse().unwrap()])
            .unwrap();
        assert_eq!(r.ipv4.as_deref(), Some("10.88.0.77"));
    }

    #[test]
    fn config_errors() {
        let code = |raw: &str| {
            NetConf::parse(raw.as_bytes(), Command::Add)
                .unwrap_err()
                .code
        };
        assert_eq!(code("{"), CODE_DECODE);
        assert_eq!(
            code(r#"{"cniVersion":"0.3.1","name":"n"}"#),
            CODE_INCOMPATIBLE_VERSION
        );
        assert_eq!(code(r#"{"cniVersion":"1.0.0"}"#), CODE_INVALID_CONFIG);
        assert_eq!(
            code(r#"{"cniVersion":"1.0.0","name":"n","subnet":"nope"}"#),
            CODE_INVALID_CONFIG
        );
        assert_eq!(
            code(r#"{"cniVersion":"1.0.0","name":"n","mtu":10}"#),
            CODE_INVALID_CONFIG
        );
        assert_eq!(
            code(r#"{"cniVersion":"1.0.0","name":"n","ipam":{"type":"../x"}}"#),
            CODE_INVALID_CONFIG
        );
        assert_eq!(
            code(r#"{"cniVersion":"1.0.0","name":"n","mtu":-1}"#),
            CODE_DECODE
        );
        let c = NetConf::parse(
            br#"{"cniVersion":"1.0.0","name":"n","runtimeConfig":{"portMappings":[{"hostPort":70000,"containerPort":80}]}}"#,
            Command::Add,
        )
        .unwrap();
        assert_eq!(
            c.attach_request(&env("ADD"), &[]).unwrap_err().code,
            CODE_INVALID_CONFIG
        );
        let c = NetConf::parse(
            br#"{"cniVersion":"1.0.0","name":"n","runtimeConfig":{"mac":"01:00:5e:00:00:01"}}"#,
            Command::Add,
        )
        .unwrap();
        assert_eq!(
            c.attach_request(&env("ADD"), &[]).unwrap_err().code,
            CODE_INVALID_CONFIG
        );
        // VERSION takes any version.
        NetConf::parse(br#"{"cniVersion":"0.1.0"}"#, Command::Version).unwrap();
    }

    #[test]
    fn gc_accepts_both_keys() {
        let c = NetConf::parse(
            br#"{"cniVersion":"1.1.0","name":"n",
              "cni.dev/valid-attachments":[{"containerID":"a","ifname":"eth0"}],
              "cni.dev/attachments":[{"containerID":"a","ifname":"eth0"},{"containerID":"b","ifname":"eth0"}]}"#,
            Command::Gc,
        )
        .unwrap();
        let v = c.gc_valid();
        assert_eq!(v.len(), 2);
        assert_eq!(v[1].container_id, "b");
    }

    #[test]
    fn own_and_delegated_ipam() {
        let c = |ipam: &str| {
            NetConf::parse(
                format!(r#"{{"cniVersion":"1.0.0","name":"n","ipam":{ipam}}}"#).as_bytes(),
                Command::Add,
            )
            .unwrap()
        };
        assert_eq!(c("{}").ipam_type(), None);
        assert_eq!(c(r#"{"type":"vswitch"}"#).ipam_type(), None);
        assert_eq!(
            c(r#"{"type":"host-local"}"#).ipam_type(),
            Some("host-local")
        );
    }
}
