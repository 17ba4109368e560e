//! Default-gateway handover: which of a sandbox's endpoints provides its default route.
//!
//! Docker keeps a sandbox's endpoints in an order (libnetwork `sandbox.go`, endpoint heap):
//!
//! 1. the docker_gwbridge endpoint last;
//! 2. internal networks after the others;
//! 3. endpoints with both an IPv4 and an IPv6 gateway before single-stack ones;
//! 4. higher `gw-priority` first;
//! 5. network name, alphabetical.
//!
//! The default gateway is that of the first endpoint in this order which has one; connect and
//! disconnect re-evaluate it.

use std::cmp::Ordering;
use std::net::IpAddr;

/// Name of the per-host bridge that gives overlay containers their way out.
pub const GWBRIDGE_NAME: &str = "docker_gwbridge";

/// What the ordering needs to know about one endpoint.
#[derive(Debug, Clone)]
pub struct GatewayCandidate<'a> {
    pub network_name: &'a str,
    pub internal: bool,
    pub gw_priority: i64,
    pub gateway4: Option<IpAddr>,
    pub gateway6: Option<IpAddr>,
}

impl GatewayCandidate<'_> {
    fn dual_stack(&self) -> bool {
        self.gateway4.is_some() && self.gateway6.is_some()
    }
    fn has_gateway(&self) -> bool {
        !self.internal && (self.gateway4.is_some() || self.gateway6.is_some())
    }
}

/// Docker's endpoint order (see the module doc).
pub fn endpoint_order(a: &GatewayCandidate, b: &GatewayCandidate) -> Ordering {
    let gw_last = |c: &GatewayCandidate| c.network_name == GWBRIDGE_NAME;
    gw_last(a)
        .cmp(&gw_last(b))
        .then(a.internal.cmp(&b.internal))
        .then(b.dual_stack().cmp(&a.dual_stack()))
        .then(b.gw_priority.cmp(&a.gw_priority))
        .then(a.network_name.cmp(b.network_name))
}

/// One endpoint as the docker_gwbridge decision sees it.
#[derive(Debug, Clone, Copy, Default)]
pub struct GwbridgeCandidate {
    /// On an overlay network (which gives no default route of its own).
    pub overlay: bool,
    pub internal: bool,
    /// This is the sandbox's docker_gwbridge endpoint.
    pub gwbridge: bool,
    /// The network has a gateway this endpoint can use (bridge with an address).
    pub has_gateway: bool,
}

/// libnetwork's `needDefaultGW`: a sandbox gets a docker_gwbridge leg when it is on a
/// non-internal overlay and no other endpoint gives it a way out. Internal overlays never
/// get one.
pub fn needs_gwbridge(eps: &[GwbridgeCandidate]) -> bool {
    let wants = eps.iter().any(|e| e.overlay && !e.internal);
    let has_other_way_out = eps
        .iter()
        .any(|e| !e.gwbridge && !e.overlay && !e.internal && e.has_gateway);
    wants && !has_other_way_out
}

/// Index (into `candidates`) of the endpoint that provides the default route, if any.
pub fn default_gateway(candidates: &[GatewayCandidate]) -> Option<usize> {
    let mut idx: Vec<usize> = (0..candidates.len()).collect();
    idx.sort_by(|&a, &b| endpoint_order(&candidates[a], &candidates[b]));
    idx.into_iter().find(|&i| candidates[i].has_gateway())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(name: &str, internal: bool, prio: i64, v4: bool, v6: bool) -> GatewayCandidate<'_> {
        GatewayCandidate {
            network_name: name,
            internal,
            gw_priority: prio,
            gateway4: v4.then(|| "10.0.0.1".parse().unwrap()),
            gateway6: v6.then(|| "fd00::1".parse().unwrap()),
        }
    }

    #[test]
    fn gwbridge_only_for_overlays_without_another_way_out() {
        let ov = GwbridgeCandidate {
            overlay: true,
            ..Default::default()
        };
        let br = GwbridgeCandidate {
            has_gateway: true,
            ..Default::default()
        };
        let gw = GwbridgeCandidate {
            gwbridge: true,
            has_gateway: true,
            ..Default::default()
        };
        let internal_ov = GwbridgeCandidate {
            internal: true,
            ..ov
        };
        assert!(needs_gwbridge(&[ov]));
        assert!(needs_gwbridge(&[ov, gw]));
        assert!(!needs_gwbridge(&[ov, br]));
        assert!(!needs_gwbridge(&[internal_ov]));
        assert!(!needs_gwbridge(&[br]));
        assert!(!needs_gwbridge(&[]));
    }

    #[test]
    fn seed_handover_bridge_then_mynetwork() {
        let both = [
            c("mynetwork", false, 0, true, false),
            c("bridge", false, 0, true, false),
        ];
        assert_eq!(default_gateway(&both), Some(1));
        let after = [c("mynetwork", false, 0, true, false)];
        assert_eq!(default_gateway(&after), Some(0));
        assert_eq!(default_gateway(&[]), None);
    }

    #[test]
    fn order_rules() {
        // gwbridge last even though alphabetically first.
        let v = [
            c(GWBRIDGE_NAME, false, 0, true, false),
            c("zzz", false, 0, true, false),
        ];
        assert_eq!(default_gateway(&v), Some(1));
        // internal networks never provide the default route.
        let v = [
            c("aaa", true, 0, true, false),
            c("zzz", false, 0, true, false),
        ];
        assert_eq!(default_gateway(&v), Some(1));
        let v = [c("aaa", true, 0, true, false)];
        assert_eq!(default_gateway(&v), None);
        // dual stack first, then priority.
        let v = [
            c("aaa", false, 0, true, false),
            c("zzz", false, 0, true, true),
        ];
        assert_eq!(default_gateway(&v), Some(1));
        let v = [
            c("aaa", false, 0, true, false),
            c("zzz", false, 5, true, false),
        ];
        assert_eq!(default_gateway(&v), Some(1));
    }
}
