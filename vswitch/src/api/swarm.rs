//! Swarm endpoints answered as Docker answers them on a node that is not in a swarm, so SDK
//! code that probes swarm state gets Docker's 503 and message rather than a 404.

use super::{ok_json, Resp};
use hyper::Method;

/// moby's `errNoManager` for a node with no swarm (daemon/cluster/helpers.go).
pub const NOT_A_MANAGER: &str = "This node is not a swarm manager. Use \"docker swarm init\" or \"docker swarm join\" to connect this node to swarm and try again.";
/// moby's `errNoSwarm` (leave on a node that never joined one).
pub const NOT_IN_SWARM: &str = "This node is not part of a swarm";
/// vswitchd cannot become a swarm node: multi-host networking uses a cluster store instead.
pub const NO_SWARM_MODE: &str = "vswitchd does not implement swarm mode; multi-host overlay networks use --cluster-store instead";

/// The `Swarm` object of `/info` on such a node.
pub fn info_json() -> serde_json::Value {
    serde_json::json!({
        "NodeID": "",
        "NodeAddr": "",
        "LocalNodeState": "inactive",
        "ControlAvailable": false,
        "Error": "",
        "RemoteManagers": null,
    })
}

/// Status and message for a swarm-scoped path (already without the version prefix), or
/// `None` when the path is not one.
pub fn answer(method: &Method, segs: &[&str]) -> Option<(u16, &'static str)> {
    let (first, rest) = segs.split_first()?;
    match (*first, rest) {
        ("swarm", ["leave"]) if method == Method::POST => Some((503, NOT_IN_SWARM)),
        ("swarm", ["init"] | ["join"]) if method == Method::POST => Some((501, NO_SWARM_MODE)),
        ("swarm", [] | ["update"] | ["unlock"] | ["unlockkey"]) => Some((503, NOT_A_MANAGER)),
        // Everything that reads or changes cluster objects needs a manager.
        ("nodes" | "services" | "tasks" | "secrets" | "configs", _) => Some((503, NOT_A_MANAGER)),
        _ => None,
    }
}

pub fn respond(status: u16, message: &str) -> Resp {
    ok_json(status, &serde_json::json!({ "message": message }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_endpoint() {
        let g = Method::GET;
        let p = Method::POST;
        assert_eq!(answer(&g, &["swarm"]), Some((503, NOT_A_MANAGER)));
        assert_eq!(answer(&p, &["swarm", "leave"]), Some((503, NOT_IN_SWARM)));
        assert_eq!(answer(&p, &["swarm", "update"]), Some((503, NOT_A_MANAGER)));
        assert_eq!(
            answer(&g, &["swarm", "unlockkey"]),
            Some((503, NOT_A_MANAGER))
        );
        assert_eq!(answer(&g, &["services"]), Some((503, NOT_A_MANAGER)));
        assert_eq!(answer(&g, &["nodes", "abc"]), Some((503, NOT_A_MANAGER)));
        assert_eq!(answer(&p, &["swarm", "init"]).map(|a| a.0), Some(501));
        assert_eq!(answer(&g, &["swarm", "bogus"]), None);
        assert_eq!(answer(&g, &["networks"]), None);
    }
}
