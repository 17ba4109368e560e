//! Spec result JSON (ADD, and the prevResult of chained plugins and CHECK). Unknown fields of
//! a prevResult are kept (`extra`), so a plugin after or before us loses nothing.

use super::api::Attachment;
use super::*;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CniResult {
    #[serde(rename = "cniVersion", default)]
    pub cni_version: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub interfaces: Vec<Interface>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ips: Vec<IpConfig>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub routes: Vec<Route>,
    #[serde(default, skip_serializing_if = "Dns::is_empty")]
    pub dns: Dns,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Interface {
    pub name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub mac: String,
    /// 1.1.0 only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtu: Option<u32>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub sandbox: String,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct IpConfig {
    /// CIDR.
    pub address: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<String>,
    /// Index into `interfaces`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interface: Option<usize>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Route {
    pub dst: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gw: Option<String>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dns {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nameservers: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub search: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub options: Vec<String>,
}

impl Dns {
    pub fn is_empty(&self) -> bool {
        self.nameservers.is_empty()
            && self.domain.is_none()
            && self.search.is_empty()
            && self.options.is_empty()
    }
}

impl CniResult {
    /// Decode a prevResult (or a delegate's answer).
    pub fn from_value(v: &Value) -> Result<CniResult, CniError> {
        CniResult::deserialize(v)
            .map_err(|e| CniError::new(CODE_DECODE, format!("cannot decode result: {e}")))
    }

    pub fn to_json(&self) -> Vec<u8> {
        let mut b = serde_json::to_vec(self).unwrap_or_default();
        b.push(b'\n');
        b
    }

    /// The ADD result: `prev` (chained plugins before us) plus our interface, its addresses,
    /// the default routes vswitch installed, and DNS (the config's, else vswitch's embedded
    /// resolver when the network has one).
    pub fn for_attachment(
        prev: Option<CniResult>,
        version: &str,
        att: &Attachment,
        netns: &str,
        conf_dns: Option<&Dns>,
    ) -> CniResult {
        let mut r = prev.unwrap_or_default();
        r.cni_version = version.to_string();
        let idx = r.interfaces.len();
        r.interfaces.push(Interface {
            name: att.ifname.clone(),
            mac: att.mac.clone(),
            mtu: (version != "1.0.0").then_some(att.mtu),
            sandbox: netns.to_string(),
            extra: Map::new(),
        });
        let fams = [
            (&att.ipv4, &att.gateway4, "0.0.0.0/0"),
            (&att.ipv6, &att.gateway6, "::/0"),
        ];
        for (addr, gw, any) in fams {
            let Some(a) = addr else { continue };
            r.ips.push(IpConfig {
                address: a.clone(),
                gateway: gw.clone(),
                interface: Some(idx),
                extra: Map::new(),
            });
            if let (true, Some(g)) = (att.default_route, gw) {
                r.routes.push(Route {
                    dst: any.into(),
                    gw: Some(g.clone()),
                    extra: Map::new(),
                });
            }
        }
        match conf_dns.filter(|d| !d.is_empty()) {
            Some(d) => r.dns = d.clone(),
            None if r.dns.is_empty() && !att.nameservers.is_empty() => {
                r.dns.nameservers = att.nameservers.clone();
            }
            None => {}
        }
        r
    }

    /// Indices of the interfaces named `ifname` inside `netns` (CHECK looks for ours).
    pub fn interface_index(&self, ifname: &str, netns: &str) -> Option<usize> {
        self.interfaces
            .iter()
            .position(|i| i.name == ifname && (i.sandbox.is_empty() || i.sandbox == netns))
    }
}

/// VERSION's answer.
pub fn version_json(asked: &str) -> Vec<u8> {
    let v = serde_json::json!({
        "cniVersion": answer_version(asked),
        "supportedVersions": SUPPORTED_VERSIONS,
    });
    let mut b = serde_json::to_vec(&v).unwrap_or_default();
    b.push(b'\n');
    b
}

#[cfg(test)]
mod tests {
    use super::*;

    fn att() -> Attachment {
        Attachment {
            ifname: "eth0".into(),
            mac: "02:42:0a:58:00:02".into(),
            mtu: 1500,
            ipv4: Some("10.88.0.2/24".into()),
            gateway4: Some("10.88.0.1".into()),
            default_route: true,
            nameservers: vec!["127.0.0.11".into()],
            ..Default::default()
        }
    }

    #[test]
    fn result_has_the_spec_shape() {
        let r = CniResult::for_attachment(None, "1.1.0", &att(), "/run/netns/x", None);
        let v: Value = serde_json::from_slice(&r.to_json()).unwrap();
        assert_eq!(
            v,
            serde_json::json!({
                "cniVersion": "1.1.0",
                "interfaces": [{"name":"eth0","mac":"02:42:0a:58:00:02","mtu":1500,"sandbox":"/run/netns/x"}],
                "ips": [{"address":"10.88.0.2/24","gateway":"10.88.0.1","interface":0}],
                "routes": [{"dst":"0.0.0.0/0","gw":"10.88.0.1"}],
                "dns": {"nameservers":["127.0.0.11"]},
            })
        );
        // 1.0.0 has no interface mtu.
        let r = CniResult::for_attachment(None, "1.0.0", &att(), "/n", None);
        assert_eq!(r.interfaces[0].mtu, None);
    }

    #[test]
    fn prev_result_is_kept_and_extended() {
        let prev = serde_json::json!({
            "cniVersion": "1.0.0",
            "interfaces": [{"name":"lo","sandbox":"/n","x-extra":1}],
            "ips": [{"address":"127.0.0.1/8","interface":0}],
            "dns": {"nameservers":["1.1.1.1"]},
            "custom": {"a": true},
        });
        let prev = CniResult::from_value(&prev).unwrap();
        let mut a = att();
        a.default_route = false;
        let r = CniResult::for_attachment(Some(prev), "1.0.0", &a, "/n", None);
        let v: Value = serde_json::from_slice(&r.to_json()).unwrap();
        assert_eq!(v["interfaces"][0]["x-extra"], 1);
        assert_eq!(v["custom"]["a"], true);
        assert_eq!(v["ips"][1]["interface"], 1);
        assert!(v.get("routes").is_none());
        assert_eq!(v["dns"]["nameservers"][0], "1.1.1.1");
        assert_eq!(r.interface_index("eth0", "/n"), Some(1));
    }

    #[test]
    fn bad_results_are_errors() {
        for v in [
            serde_json::json!(1),
            serde_json::json!({"interfaces": 3}),
            serde_json::json!({"ips": [{"interface": -1, "address": "x"}]}),
        ] {
            assert_eq!(CniResult::from_value(&v).unwrap_err().code, CODE_DECODE);
        }
    }

    #[test]
    fn version_answer() {
        let v: Value = serde_json::from_slice(&version_json("1.0.0")).unwrap();
        assert_eq!(v["cniVersion"], "1.0.0");
        assert_eq!(
            v["supportedVersions"],
            serde_json::json!(["1.0.0", "1.1.0"])
        );
    }
}
