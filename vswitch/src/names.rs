//! Embedded DNS names: what a sandbox can resolve. On every user-defined network it shares
//! with another sandbox: that sandbox's name, its aliases on that network, and (only for the
//! sandbox that declared it) `--link name:alias` aliases. Read live from the model, so
//! connect, disconnect and rm take effect on the next query.

use crate::dns::{names_equal, NameView};
use crate::model::{Driver, Sandbox, State};
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

/// Whether a network gives its sandboxes the embedded DNS (user-defined, Docker's rule).
pub fn network_has_dns(state: &State, network_id: &str) -> bool {
    state
        .network(network_id)
        .is_some_and(|n| !n.predefined && matches!(n.driver, Driver::Bridge | Driver::Overlay))
}

/// Whether a sandbox gets 127.0.0.11 (attached to at least one user-defined network).
pub fn sandbox_has_dns(state: &State, sb: &Sandbox) -> bool {
    sb.endpoints
        .iter()
        .any(|e| network_has_dns(state, &e.network_id))
}

/// Addresses `name` resolves to for sandbox `asker_id`; None when it is not a local name.
pub fn lookup(state: &State, asker_id: &str, name: &str) -> Option<Vec<IpAddr>> {
    let asker = state.sandbox(asker_id)?;
    let mut out = Vec::new();
    for ep in &asker.endpoints {
        if !network_has_dns(state, &ep.network_id) {
            continue;
        }
        // Link aliases of the asker on this network: `target:alias` or `target`.
        let linked: Vec<&str> = ep
            .links
            .iter()
            .filter_map(|l| {
                let (target, alias) = l.split_once(':').unwrap_or((l.as_str(), l.as_str()));
                names_equal(alias, name).then_some(target)
            })
            .collect();
        for (sb, other) in state.endpoints_of(&ep.network_id) {
            let matches = names_equal(&sb.name, name)
                || other.aliases.iter().any(|a| names_equal(a, name))
                || linked
                    .iter()
                    .any(|t| names_equal(t, &sb.name) || sb.id.starts_with(t));
            if matches {
                out.extend(other.ipv4.map(|a| a.addr()));
                out.extend(other.ipv6.map(|a| a.addr()));
            }
        }
        // Overlay endpoints on other hosts (from the cluster store).
        for r in state.remotes_of(&ep.network_id) {
            let matches = names_equal(&r.name, name)
                || r.aliases.iter().any(|a| names_equal(a, name))
                || linked.iter().any(|t| names_equal(t, &r.name));
            if matches {
                out.extend(r.ipv4);
                out.extend(r.ipv6);
            }
        }
    }
    (!out.is_empty()).then_some(out)
}

/// The [`NameView`] the resolvers use.
pub struct LiveNames(pub Arc<Mutex<State>>);

impl NameView for LiveNames {
    fn lookup(&self, asker: &str, name: &str) -> Option<Vec<IpAddr>> {
        let st = self.0.lock().unwrap_or_else(|p| p.into_inner());
        lookup(&st, asker, name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{CreateNetwork, EndpointSettings, PoolSettings};

    #[test]
    fn names_aliases_links_and_isolation() {
        let mut st = State::new_in_memory(PoolSettings::default());
        for n in ["mynet", "other"] {
            st.create_network(
                CreateNetwork {
                    name: n.into(),
                    ..Default::default()
                },
                &[],
            )
            .unwrap();
        }
        let al = |a: &[&str]| EndpointSettings {
            aliases: a.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        };
        let web1 = st
            .create_sandbox(
                Some("web1".into()),
                "mynet",
                EndpointSettings {
                    links: vec!["web2:db".into()],
                    ..Default::default()
                },
            )
            .unwrap();
        st.create_sandbox(Some("web2".into()), "mynet", al(&["foo"]))
            .unwrap();
        st.create_sandbox(Some("web3".into()), "mynet", al(&["foo"]))
            .unwrap();
        let lone = st
            .create_sandbox(Some("lone".into()), "other", EndpointSettings::default())
            .unwrap();
        let bridge_only = st
            .create_sandbox(Some("b".into()), "bridge", EndpointSettings::default())
            .unwrap();
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert_eq!(lookup(&st, &web1.id, "WEB2"), Some(vec![ip("172.18.0.3")]));
        // Two sandboxes share the alias: two records (order is the resolver's business).
        let mut foo = lookup(&st, &web1.id, "foo").unwrap();
        foo.sort();
        assert_eq!(foo, vec![ip("172.18.0.3"), ip("172.18.0.4")]);
        assert_eq!(lookup(&st, &web1.id, "db"), Some(vec![ip("172.18.0.3")]));
        assert_eq!(lookup(&st, &web1.id, "nothere"), None);
        // Not on the same network; links are private to the linker; default bridge has none.
        assert_eq!(lookup(&st, &lone.id, "web2"), None);
        let web2 = st.find_sandbox("web2").unwrap().id.clone();
        assert_eq!(lookup(&st, &web2, "db"), None);
        assert_eq!(lookup(&st, &bridge_only.id, "web2"), None);
        assert!(!sandbox_has_dns(&st, &bridge_only));
        assert!(sandbox_has_dns(&st, &lone));
    }
}
