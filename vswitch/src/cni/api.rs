//! The daemon's attachment API (`/vswitch/attachments`), shared by vswitchd and
//! `vswitch-cni`. An attachment is a runtime's namespace on a vswitch network, identified by
//! (container ID, ifname) as CNI does; vswitchd keeps it as an adopted sandbox (one per
//! container ID) with one endpoint per ifname.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Longest container ID accepted (runtimes use 64 hex digits; the spec sets no bound).
pub const MAX_CONTAINER_ID_LEN: usize = 256;
pub use crate::model::options::MAX_IFNAME_LEN;
/// Prefix of the sandbox name vswitchd gives a CNI container (`cni-<container id>`).
pub const SANDBOX_PREFIX: &str = "cni-";

/// What a sandbox adopted for CNI remembers of its origin.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CniOrigin {
    pub container_id: String,
    /// `CNI_NETNS` as the runtime gave it (vswitchd pins it at its own path).
    pub netns: String,
}

/// `POST /vswitch/attachments`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct AttachRequest {
    #[serde(rename = "ContainerID")]
    pub container_id: String,
    pub ifname: String,
    pub netns: String,
    /// A vswitch network name or ID.
    pub network: String,
    /// Create the network with this when it does not exist (under the daemon's lock, so
    /// concurrent first ADDs make it once).
    pub create: Option<NetworkSpec>,
    /// Addresses to give (from the `ips` capability or a delegated IPAM); none: vswitch IPAM.
    #[serde(rename = "IPv4")]
    pub ipv4: Option<String>,
    #[serde(rename = "IPv6")]
    pub ipv6: Option<String>,
    pub mac: Option<String>,
    /// The interface MTU the config asks for (must match the network's).
    pub mtu: Option<u32>,
    /// Whether this attachment may give the namespace its default route.
    pub default_route: bool,
    pub port_mappings: Vec<PortMapping>,
    pub aliases: Vec<String>,
}

/// A network `vswitch-cni` may create on first ADD.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct NetworkSpec {
    pub subnet: String,
    pub gateway: Option<String>,
    pub driver: Option<String>,
    pub internal: bool,
    pub options: BTreeMap<String, String>,
}

/// One published port (the `portMappings` capability).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct PortMapping {
    pub host_port: u16,
    pub container_port: u16,
    /// `tcp` (default) or `udp`.
    pub protocol: String,
    #[serde(rename = "HostIP")]
    pub host_ip: Option<String>,
}

/// An attachment as vswitchd made it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct Attachment {
    #[serde(rename = "ContainerID")]
    pub container_id: String,
    pub ifname: String,
    pub netns: String,
    pub network: String,
    #[serde(rename = "NetworkID")]
    pub network_id: String,
    #[serde(rename = "SandboxID")]
    pub sandbox_id: String,
    #[serde(rename = "EndpointID")]
    pub endpoint_id: String,
    pub mac: String,
    pub mtu: u32,
    /// CIDR.
    #[serde(rename = "IPv4")]
    pub ipv4: Option<String>,
    #[serde(rename = "Gateway4")]
    pub gateway4: Option<String>,
    #[serde(rename = "IPv6")]
    pub ipv6: Option<String>,
    #[serde(rename = "Gateway6")]
    pub gateway6: Option<String>,
    /// This attachment gives the namespace its default route (now).
    pub default_route: bool,
    /// Resolvers serving the namespace (vswitch's embedded DNS), if any.
    pub nameservers: Vec<String>,
    /// Published ports as bound: `proto:host_ip:host_port->container_port`.
    pub ports: Vec<String>,
}

/// (container ID, ifname): what identifies an attachment.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct AttachmentKey {
    #[serde(rename = "containerID", alias = "ContainerID")]
    pub container_id: String,
    #[serde(rename = "ifname", alias = "IfName")]
    pub ifname: String,
}

/// `POST /vswitch/attachments/gc`: remove the network's attachments not in `valid`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct GcRequest {
    pub network: String,
    pub valid: Vec<AttachmentKey>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct GcResponse {
    pub removed: Vec<AttachmentKey>,
}

/// CNI's container ID rule: an alphanumeric, then `[A-Za-z0-9_.-]` (bounded here).
pub fn valid_container_id(id: &str) -> bool {
    let mut it = id.bytes();
    id.len() <= MAX_CONTAINER_ID_LEN
        && matches!(it.next(), Some(c) if c.is_ascii_alphanumeric())
        && it.all(|c| c.is_ascii_alphanumeric() || c == b'_' || c == b'.' || c == b'-')
}

/// A name the kernel accepts for an interface: 1–15 bytes, not `.`/`..`, no `/`, `:`, or
/// whitespace.
pub fn valid_ifname(n: &str) -> bool {
    !n.is_empty()
        && n.len() <= MAX_IFNAME_LEN
        && n != "."
        && n != ".."
        && n.bytes()
            .all(|c| c.is_ascii_graphic() && c != b'/' && c != b':')
}

/// The sandbox name of a CNI container.
pub fn sandbox_name(container_id: &str) -> String {
    format!("{SANDBOX_PREFIX}{container_id}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_and_names() {
        assert!(valid_container_id("abc123"));
        assert!(valid_container_id("a.b_c-d"));
        assert!(!valid_container_id(""));
        assert!(!valid_container_id("-abc"));
        assert!(!valid_container_id("a/b"));
        assert!(!valid_container_id(&"a".repeat(MAX_CONTAINER_ID_LEN + 1)));
        assert!(valid_ifname("eth0"));
        assert!(valid_ifname("net1.100"));
        assert!(!valid_ifname(""));
        assert!(!valid_ifname("a23456789012345x"));
        assert!(!valid_ifname(".."));
        assert!(!valid_ifname("a b"));
        assert!(!valid_ifname("a/b"));
        assert!(!valid_ifname("é"));
    }

    #[test]
    fn gc_keys_use_the_spec_spelling() {
        let k: AttachmentKey =
            serde_json::from_str(r#"{"containerID":"c1","ifname":"eth0"}"#).unwrap();
        assert_eq!(k.container_id, "c1");
        assert_eq!(
            serde_json::to_value(&k).unwrap(),
            serde_json::json!({"containerID":"c1","ifname":"eth0"})
        );
    }
}
