//! The daemon: the model behind a lock, plus the operations the API serves. Later layers
//! (datapath, NAT, overlay) hook in here, so the API stays a thin translation.

use crate::api::filters::{self, Filters};
use crate::api::json;
use crate::model::{self, EndpointSettings, Error, PoolSettings, State};
use crate::store::Store;
use std::path::PathBuf;
use std::sync::{Mutex, MutexGuard};

#[derive(Debug, Clone)]
pub struct Config {
    pub data_root: PathBuf,
    pub exec_root: PathBuf,
    pub pools: PoolSettings,
}

pub struct Daemon {
    state: Mutex<State>,
    pub config: Config,
    /// Held while a prune runs: a second concurrent prune is refused, as in Docker.
    prune_running: Mutex<()>,
}

impl Daemon {
    /// Open the store and replay it. Problems found while replaying are logged, not fatal.
    pub fn open(config: Config) -> Result<Self, Error> {
        let store = Store::open(&config.data_root)?;
        let (state, report) = State::open(store, config.pools.clone())?;
        for p in &report.problems {
            tracing::warn!("restore: {p}");
        }
        Ok(Daemon {
            state: Mutex::new(state),
            config,
            prune_running: Mutex::new(()),
        })
    }

    pub fn state(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock must not wedge the API; the state is always
        // consistent between operations because each one commits last.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn version(&self) -> serde_json::Value {
        let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .map(|s| s.trim().to_string())
            .unwrap_or_default();
        serde_json::json!({
            "Platform": { "Name": "vswitch" },
            "Components": [{
                "Name": "vswitchd",
                "Version": env!("CARGO_PKG_VERSION"),
                "Details": { "ApiVersion": crate::api::API_VERSION, "MinAPIVersion": crate::api::MIN_API_VERSION },
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
        })
    }

    pub fn list_networks(&self, f: &Filters) -> Result<Vec<u8>, Error> {
        let st = self.state();
        let nets = filters::filter_networks(&st, f)?;
        let out: Vec<json::NetworkJson> =
            nets.iter().map(|n| json::network_json(&st, n, false)).collect();
        Ok(encode(&out))
    }

    pub fn inspect_network(&self, term: &str) -> Result<Vec<u8>, Error> {
        let st = self.state();
        let n = st.find_network(term)?;
        Ok(encode(&json::network_json(&st, n, true)))
    }

    /// Returns the id and the warning text (empty if none).
    pub fn create_network(&self, req: model::CreateNetwork) -> Result<(String, String), Error> {
        let reserved = crate::host::reserved_prefixes();
        let mut st = self.state();
        let (n, warnings) = st.create_network(req, &reserved)?;
        for w in &warnings {
            tracing::warn!("network {}: {w}", n.name);
        }
        tracing::info!("created network {} ({})", n.name, n.id);
        Ok((n.id, warnings.join("\n")))
    }

    pub async fn remove_network(&self, term: &str) -> Result<(), Error> {
        let n = self.state().remove_network(term)?;
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
        let mut st = self.state();
        let mut deleted = Vec::new();
        let mut problems = Vec::new();
        for n in st.prunable() {
            if !filters::prune_selects(&n, f, until) {
                continue;
            }
            // Keep going past a failure so one bad network does not block the rest.
            match st.remove_network(&n.id) {
                Ok(n) => deleted.push(n.name),
                Err(e) => problems.push(format!("{}: {e}", n.name)),
            }
        }
        for p in &problems {
            tracing::warn!("prune: {p}");
        }
        Ok(deleted)
    }

    pub async fn connect(
        &self,
        network: &str,
        container: &str,
        settings: EndpointSettings,
    ) -> Result<(), Error> {
        let (sb, ep) = self.state().connect(network, container, settings)?;
        tracing::info!("connected {} to network {} as {}", sb.name, ep.network_id, ep.ifname);
        Ok(())
    }

    pub async fn disconnect(&self, network: &str, container: &str, force: bool) -> Result<(), Error> {
        let (sb, ep) = self.state().disconnect(network, container, force)?;
        tracing::info!("disconnected {} from network {}", sb.name, ep.network_id);
        Ok(())
    }

    /// `POST /containers/create`: a sandbox attached to its network mode's network, with the
    /// endpoint settings given for it (further networks in EndpointsConfig are connected too).
    pub async fn create_container(
        &self,
        name: Option<String>,
        req: json::ContainerCreateJson,
    ) -> Result<String, Error> {
        let mode = req
            .host_config
            .map(|h| h.network_mode)
            .unwrap_or_default();
        let mut eps = req
            .networking_config
            .map(|n| n.endpoints_config)
            .unwrap_or_default();
        let mut st = self.state();
        let mode = if mode.is_empty() || mode == "default" {
            "bridge".to_string()
        } else {
            mode
        };
        let first = eps.remove(&mode).unwrap_or_default().into_model();
        let sb = st.create_sandbox(name, &mode, first)?;
        for (net, cfg) in eps {
            if let Err(e) = st.connect(&net, &sb.id, cfg.into_model()) {
                // Nothing half-made: undo the sandbox.
                if let Err(e2) = st.remove_sandbox(&sb.id) {
                    tracing::warn!("undo of sandbox {}: {e2}", sb.name);
                }
                return Err(e);
            }
        }
        Ok(sb.id)
    }

    pub fn list_containers(&self) -> Vec<u8> {
        let st = self.state();
        let v: Vec<serde_json::Value> = st
            .sandboxes()
            .map(|sb| json::container_list_json(&st, sb))
            .collect();
        encode(&v)
    }

    pub fn inspect_container(&self, term: &str) -> Result<Vec<u8>, Error> {
        let st = self.state();
        let sb = st.find_sandbox(term)?;
        Ok(encode(&json::container_inspect_json(&st, sb)))
    }

    pub async fn remove_container(&self, term: &str) -> Result<(), Error> {
        let sb = self.state().remove_sandbox(term)?;
        tracing::info!("removed sandbox {}", sb.name);
        Ok(())
    }
}

fn encode<T: serde::Serialize>(v: &T) -> Vec<u8> {
    let mut b = serde_json::to_vec(v).unwrap_or_else(|_| b"null".to_vec());
    b.push(b'\n');
    b
}
