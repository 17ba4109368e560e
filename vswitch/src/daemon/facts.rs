//! What `/version` and `/info` say about the datapath, so an operator (or a health check)
//! sees how this daemon runs without reading its flags.

use super::{lock, port_kind, Daemon};
use crate::model::Driver;

impl Daemon {
    /// Workers, TAP offloads granted by the kernel, port kinds and how many ports of each.
    pub fn datapath_facts(&self) -> serde_json::Value {
        let workers = lock(&self.dp).worker_count();
        let st = self.state();
        let mut ports = serde_json::Map::new();
        for k in crate::port::PortKind::ALL {
            ports.insert(k.as_str().into(), 0.into());
        }
        let mut networks = 0;
        for n in st.networks() {
            if n.config_only || !matches!(n.driver, Driver::Bridge | Driver::Overlay) {
                continue;
            }
            networks += 1;
            let kind = port_kind(n).as_str();
            let count = st.endpoints_of(&n.id).len() as u64;
            if let Some(v) = ports.get_mut(kind) {
                *v = (v.as_u64().unwrap_or(0) + count).into();
            }
        }
        serde_json::json!({
            "Workers": workers,
            "Offloads": crate::port::tap::granted_offloads(),
            "PortKinds": crate::port::PortKind::ALL.map(|k| k.as_str()),
            "Ports": ports,
            "Networks": networks,
        })
    }

    /// `/info` with the datapath facts (the cluster store's state is `ClusterStoreStatus`).
    pub async fn info_with_facts(&self) -> serde_json::Value {
        let mut v = self.info();
        v["Datapath"] = self.datapath_facts();
        v
    }
}
