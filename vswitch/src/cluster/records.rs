//! Records stored under the keys, and the decoding of snapshots and watch changes into
//! [`ClusterEvent`]s (pure, no I/O). Values are JSON (serde).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use serde::{Deserialize, Serialize};

use super::keys::{Key, Keys};
use super::ClusterError;

/// A cluster-wide (overlay) network: `networks/<id>`. `body` is the daemon's own
/// description of the network (opaque here).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NetworkRecord {
    pub id: String,
    pub name: String,
    pub vni: u32,
    #[serde(default)]
    pub body: serde_json::Value,
}

/// Where an endpoint lives: `endpoints/<net>/<epid>`, leased by its host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EndpointRecord {
    pub network_id: String,
    pub endpoint_id: String,
    pub name: String,
    #[serde(default)]
    pub aliases: Vec<String>,
    pub mac: String,
    #[serde(default)]
    pub ipv4: Option<Ipv4Addr>,
    #[serde(default)]
    pub ipv6: Option<Ipv6Addr>,
    /// The host's tunnel endpoint (its advertise address).
    pub vtep: IpAddr,
    /// The host id that published it.
    pub host: String,
}

/// One allocated address: `ipam/<net>/<ip>`, leased by the allocating host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IpamRecord {
    /// Who asked (e.g. an endpoint id), opaque.
    pub owner: String,
    pub host: String,
}

/// What a watcher sees (see [`super::Cluster::watch`]).
#[derive(Debug, Clone, PartialEq)]
pub enum ClusterEvent {
    NetworkPut(NetworkRecord),
    NetworkDeleted {
        id: String,
    },
    EndpointPut(EndpointRecord),
    EndpointDeleted {
        network_id: String,
        endpoint_id: String,
    },
    /// The snapshot is complete; live changes follow.
    Synced,
    /// The watch broke and was re-established: drop the view, a fresh snapshot follows.
    Resync,
}

/// A change as etcd reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeKind {
    Put,
    Delete,
}

pub fn encode<T: Serialize>(v: &T) -> String {
    // Serialising these plain structs cannot fail.
    serde_json::to_string(v).unwrap_or_default()
}

fn decode_json<'a, T: Deserialize<'a>>(key: &str, value: &'a [u8]) -> Result<T, ClusterError> {
    serde_json::from_slice(value).map_err(|e| ClusterError::Decode(format!("{key}: {e}")))
}

/// Decode a network record and check it matches its key.
pub fn decode_network(key: &str, id: &str, value: &[u8]) -> Result<NetworkRecord, ClusterError> {
    let rec: NetworkRecord = decode_json(key, value)?;
    if rec.id != id {
        return Err(ClusterError::Decode(format!(
            "{key}: record id {:?} does not match its key",
            rec.id
        )));
    }
    Ok(rec)
}

/// Decode an endpoint record and check it matches its key.
pub fn decode_endpoint(
    key: &str,
    network_id: &str,
    endpoint_id: &str,
    value: &[u8],
) -> Result<EndpointRecord, ClusterError> {
    let rec: EndpointRecord = decode_json(key, value)?;
    if rec.network_id != network_id || rec.endpoint_id != endpoint_id {
        return Err(ClusterError::Decode(format!(
            "{key}: record ({}, {}) does not match its key",
            rec.network_id, rec.endpoint_id
        )));
    }
    Ok(rec)
}

pub fn decode_ipam(key: &str, value: &[u8]) -> Result<IpamRecord, ClusterError> {
    decode_json(key, value)
}

/// One etcd change (watch event) → the event a watcher sees. `Ok(None)` for keys that are
/// not networks or endpoints (names, VNIs, IPAM) and for keys outside the layout.
pub fn decode_change(
    keys: &Keys,
    kind: ChangeKind,
    key: &[u8],
    value: &[u8],
) -> Result<Option<ClusterEvent>, ClusterError> {
    let Ok(key) = std::str::from_utf8(key) else {
        return Ok(None);
    };
    let ev = match (keys.parse(key), kind) {
        (Some(Key::Network { id }), ChangeKind::Put) => {
            ClusterEvent::NetworkPut(decode_network(key, &id, value)?)
        }
        (Some(Key::Network { id }), ChangeKind::Delete) => ClusterEvent::NetworkDeleted { id },
        (
            Some(Key::Endpoint {
                network_id,
                endpoint_id,
            }),
            ChangeKind::Put,
        ) => ClusterEvent::EndpointPut(decode_endpoint(key, &network_id, &endpoint_id, value)?),
        (
            Some(Key::Endpoint {
                network_id,
                endpoint_id,
            }),
            ChangeKind::Delete,
        ) => ClusterEvent::EndpointDeleted {
            network_id,
            endpoint_id,
        },
        _ => return Ok(None),
    };
    Ok(Some(ev))
}

/// A snapshot (key, value pairs of one revision) → `NetworkPut`s first, then `EndpointPut`s
/// (so a consumer always knows an endpoint's network first), each group in key order.
/// Records that do not decode are returned apart, so one bad record cannot hide the others.
pub fn snapshot_events<'a>(
    keys: &Keys,
    kvs: impl IntoIterator<Item = (&'a [u8], &'a [u8])>,
) -> (Vec<ClusterEvent>, Vec<ClusterError>) {
    let mut nets = Vec::new();
    let mut eps = Vec::new();
    let mut errors = Vec::new();
    for (k, v) in kvs {
        match decode_change(keys, ChangeKind::Put, k, v) {
            Ok(Some(ev @ ClusterEvent::NetworkPut(_))) => nets.push((k.to_vec(), ev)),
            Ok(Some(ev)) => eps.push((k.to_vec(), ev)),
            Ok(None) => {}
            Err(e) => errors.push(e),
        }
    }
    nets.sort_by(|a, b| a.0.cmp(&b.0));
    eps.sort_by(|a, b| a.0.cmp(&b.0));
    let events = nets.into_iter().chain(eps).map(|(_, ev)| ev).collect();
    (events, errors)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(id: &str) -> NetworkRecord {
        NetworkRecord {
            id: id.into(),
            name: format!("name-{id}"),
            vni: 256,
            body: serde_json::json!({"Driver": "overlay"}),
        }
    }

    fn ep(net: &str, id: &str) -> EndpointRecord {
        EndpointRecord {
            network_id: net.into(),
            endpoint_id: id.into(),
            name: "web".into(),
            aliases: vec!["w".into()],
            mac: "02:42:0a:00:00:02".into(),
            ipv4: Some("10.0.0.2".parse().unwrap()),
            ipv6: None,
            vtep: "192.168.1.10".parse().unwrap(),
            host: "h1".into(),
        }
    }

    #[test]
    fn records_round_trip() {
        let n = net("n1");
        let back: NetworkRecord = serde_json::from_str(&encode(&n)).unwrap();
        assert_eq!(back, n);
        let e = ep("n1", "e1");
        let back: EndpointRecord = serde_json::from_str(&encode(&e)).unwrap();
        assert_eq!(back, e);
    }

    #[test]
    fn decode_changes() {
        let k = Keys::new("/vswitch");
        let n = net("n1");
        let e = ep("n1", "e1");
        let put = |key: String, v: String| {
            decode_change(&k, ChangeKind::Put, key.as_bytes(), v.as_bytes())
        };
        assert_eq!(
            put(k.network("n1"), encode(&n)).unwrap(),
            Some(ClusterEvent::NetworkPut(n.clone()))
        );
        assert_eq!(
            put(k.endpoint("n1", "e1"), encode(&e)).unwrap(),
            Some(ClusterEvent::EndpointPut(e.clone()))
        );
        assert_eq!(
            decode_change(&k, ChangeKind::Delete, k.network("n1").as_bytes(), b"").unwrap(),
            Some(ClusterEvent::NetworkDeleted { id: "n1".into() })
        );
        assert_eq!(
            decode_change(
                &k,
                ChangeKind::Delete,
                k.endpoint("n1", "e1").as_bytes(),
                b""
            )
            .unwrap(),
            Some(ClusterEvent::EndpointDeleted {
                network_id: "n1".into(),
                endpoint_id: "e1".into()
            })
        );
        // Not events: names, VNIs, IPAM, foreign keys.
        assert_eq!(put(k.netname("x"), "n1".into()).unwrap(), None);
        assert_eq!(put(k.vni(256), "n1".into()).unwrap(), None);
        assert_eq!(
            put(k.ipam("n1", "10.0.0.2".parse().unwrap()), "{}".into()).unwrap(),
            None
        );
        assert_eq!(
            put("/elsewhere/networks/n1".into(), encode(&n)).unwrap(),
            None
        );
        // Bad JSON, or a record under the wrong key.
        assert!(matches!(
            put(k.network("n1"), "{".into()),
            Err(ClusterError::Decode(_))
        ));
        assert!(matches!(
            put(k.network("n2"), encode(&n)),
            Err(ClusterError::Decode(_))
        ));
        assert!(matches!(
            put(k.endpoint("n1", "e2"), encode(&e)),
            Err(ClusterError::Decode(_))
        ));
    }

    #[test]
    fn snapshot_orders_networks_first() {
        let k = Keys::new("/vswitch");
        let n1 = net("n1");
        let n2 = net("n2");
        let e = ep("n1", "e1");
        let pairs = [
            (k.endpoint("n1", "e1"), encode(&e)),
            (k.network("n2"), encode(&n2)),
            (k.ipam("n1", "10.0.0.2".parse().unwrap()), "{}".into()),
            (k.network("bad"), "not json".into()),
            (k.network("n1"), encode(&n1)),
        ];
        let (events, errors) =
            snapshot_events(&k, pairs.iter().map(|(a, b)| (a.as_bytes(), b.as_bytes())));
        assert_eq!(
            events,
            vec![
                ClusterEvent::NetworkPut(n1),
                ClusterEvent::NetworkPut(n2),
                ClusterEvent::EndpointPut(e)
            ]
        );
        assert_eq!(errors.len(), 1);
    }
}
