//! Prometheus exposition (`GET /metrics`, `vswitchd --metrics-addr`).
//!
//! The datapath keeps plain counters (per network and per port, in its workers; see
//! [`crate::datapath::NetSnapshot`]); the NAT engines, resolvers and the tunnel keep theirs.
//! On each scrape the daemon copies them into [`Inputs`] (the workers answer between two
//! batches over their control channel) and [`render`] writes the Prometheus text format
//! (0.0.4) with `prometheus-client`. Nothing here runs on the packet path.
//!
//! Names follow Prometheus conventions: counters end in `_total`, labels are `network` (the
//! network's name), `container` (a sandbox's name; empty for the host side), `interface`,
//! `reason`, `protocol`, `direction`.

use crate::datapath::NetSnapshot;
use crate::dns::DnsStats;
use crate::gateway::NatStats;
use crate::overlay::{HostStats, TunnelStats};
use crate::switch::DropReason;
use prometheus_client::encoding::prometheus_text;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// `Content-Type` of the exposition.
pub const CONTENT_TYPE: &str = prometheus_text::CONTENT_TYPE;

/// One network's datapath counters and the names of its ports.
#[derive(Debug, Clone)]
pub struct NetworkInput {
    /// The network's name.
    pub name: String,
    pub snapshot: NetSnapshot,
    /// `(container, interface)` for each entry of `snapshot.ports`, in the same order.
    pub port_names: Vec<(String, String)>,
}

/// Everything one scrape shows.
#[derive(Debug, Clone, Default)]
pub struct Inputs {
    pub networks: Vec<NetworkInput>,
    /// Egress NAT engines by network name.
    pub nat: Vec<(String, NatStats)>,
    /// Embedded DNS resolvers by container name.
    pub dns: Vec<(String, DnsStats)>,
    /// Overlay tunnel counters by network name (and VNI).
    pub tunnel: Vec<(String, u32, TunnelStats)>,
    /// Host-wide tunnel counters (with a cluster store).
    pub tunnel_host: Option<HostStats>,
}

type Labels = Vec<(&'static str, String)>;

fn l(pairs: &[(&'static str, &str)]) -> Labels {
    pairs.iter().map(|(k, v)| (*k, v.to_string())).collect()
}

struct Out {
    reg: Registry,
}

impl Out {
    fn counter(&mut self, name: &str, help: &str, rows: impl IntoIterator<Item = (Labels, u64)>) {
        let f = Family::<Labels, Counter>::default();
        for (labels, v) in rows {
            f.get_or_create(&labels).inc_by(v);
        }
        self.reg.register(name, help, f);
    }

    fn gauge(&mut self, name: &str, help: &str, rows: impl IntoIterator<Item = (Labels, u64)>) {
        let f = Family::<Labels, Gauge>::default();
        for (labels, v) in rows {
            f.get_or_create(&labels)
                .set(i64::try_from(v).unwrap_or(i64::MAX));
        }
        self.reg.register(name, help, f);
    }
}

/// The Prometheus text exposition of `inputs`.
pub fn render(inputs: &Inputs) -> String {
    let mut o = Out {
        reg: Registry::default(),
    };
    let nets = &inputs.networks;
    let per_net = |f: fn(&NetworkInput) -> u64| -> Vec<(Labels, u64)> {
        nets.iter()
            .map(|n| (l(&[("network", &n.name)]), f(n)))
            .collect()
    };
    o.counter(
        "vswitch_network_rx_frames",
        "Frames the network's switch received from its ports",
        per_net(|n| n.snapshot.stats.rx_frames),
    );
    o.counter(
        "vswitch_network_rx_bytes",
        "Bytes the network's switch received from its ports (Ethernet frames)",
        per_net(|n| n.snapshot.stats.rx_bytes),
    );
    o.counter(
        "vswitch_network_tx_frames",
        "Frames the network's switch sent to its ports",
        per_net(|n| n.snapshot.stats.tx_frames),
    );
    o.counter(
        "vswitch_network_tx_bytes",
        "Bytes the network's switch sent to its ports (Ethernet frames)",
        per_net(|n| n.snapshot.stats.tx_bytes),
    );
    o.counter(
        "vswitch_network_worker_rx_frames",
        "Frames a datapath worker received from the network's ports (several workers serve a \
         network with --tap-queues)",
        nets.iter()
            .flat_map(|n| {
                n.snapshot
                    .workers
                    .iter()
                    .map(move |(w, v)| (l(&[("network", &n.name), ("worker", &w.to_string())]), *v))
            })
            .collect::<Vec<_>>(),
    );
    let ports = |f: fn(&crate::datapath::PortCounters) -> u64| -> Vec<(Labels, u64)> {
        nets.iter()
            .flat_map(|n| {
                n.snapshot.ports.iter().zip(n.port_names.iter()).map(
                    move |((_, _, c), (container, iface))| {
                        let labels = l(&[
                            ("network", &n.name),
                            ("container", container),
                            ("interface", iface),
                        ]);
                        (labels, f(c))
                    },
                )
            })
            .collect()
    };
    o.counter(
        "vswitch_port_rx_frames",
        "Frames received from a port (what the container or host interface sent)",
        ports(|c| c.rx_frames),
    );
    o.counter(
        "vswitch_port_rx_bytes",
        "Bytes received from a port",
        ports(|c| c.rx_bytes),
    );
    o.counter(
        "vswitch_port_tx_frames",
        "Frames sent to a port",
        ports(|c| c.tx_frames),
    );
    o.counter(
        "vswitch_port_tx_bytes",
        "Bytes sent to a port",
        ports(|c| c.tx_bytes),
    );
    o.counter(
        "vswitch_port_tx_dropped",
        "Frames a port did not take (its queue was full)",
        ports(|c| c.tx_dropped),
    );
    let mut drops = Vec::new();
    for n in nets {
        for r in DropReason::ALL {
            let labels = l(&[("network", &n.name), ("reason", r.as_str())]);
            drops.push((labels, n.snapshot.switch.drops(r)));
        }
        let sw = &n.snapshot.switch;
        for (reason, v) in [
            ("flood_denied", sw.flood_copies_denied),
            ("queue_full", n.snapshot.stats.tx_dropped),
        ] {
            drops.push((l(&[("network", &n.name), ("reason", reason)]), v));
        }
    }
    o.counter(
        "vswitch_drops",
        "Frames the switch dropped, by reason (policy: icc, internal, gateway, split_horizon, flood_denied; anti-spoofing: spoofed_mac, spoofed_ip; queue_full: an output port's queue)",
        drops,
    );
    o.gauge(
        "vswitch_fdb_entries",
        "MAC addresses in the network's forwarding table",
        per_net(|n| n.snapshot.stats.fdb_entries as u64),
    );
    o.counter(
        "vswitch_fdb_learned",
        "MAC addresses learned",
        per_net(|n| n.snapshot.switch.fdb_learned),
    );
    o.counter(
        "vswitch_fdb_full",
        "Source MACs not learned because the forwarding table was at its cap",
        per_net(|n| n.snapshot.switch.fdb_full),
    );
    o.counter(
        "vswitch_flooded_frames",
        "Frames flooded (broadcast, multicast, unknown unicast)",
        per_net(|n| n.snapshot.switch.flooded),
    );
    o.counter(
        "vswitch_arp_replies",
        "ARP requests (and IPv6 neighbour solicitations) answered by the switch",
        per_net(|n| n.snapshot.switch.arp_replies + n.snapshot.switch.nd_replies),
    );
    o.gauge(
        "vswitch_captures",
        "Packet captures attached to the network",
        per_net(|n| n.snapshot.captures as u64),
    );
    o.counter(
        "vswitch_capture_dropped",
        "Frames a capture could not take because its reader was behind",
        per_net(|n| n.snapshot.stats.capture_dropped),
    );

    let nat = &inputs.nat;
    let mut frames = Vec::new();
    let mut flows = Vec::new();
    let mut dropped = Vec::new();
    let mut published = Vec::new();
    for (net, s) in nat {
        for (d, v) in [("in", s.frames_in), ("out", s.frames_out)] {
            frames.push((l(&[("network", net), ("direction", d)]), v));
        }
        for (p, v) in [
            ("tcp", s.tcp_flows),
            ("udp", s.udp_flows),
            ("icmp", s.icmp_flows),
        ] {
            flows.push((l(&[("network", net), ("protocol", p)]), v));
        }
        for (r, v) in [("unhandled", s.dropped), ("no_neighbor", s.no_neighbor)] {
            dropped.push((l(&[("network", net), ("reason", r)]), v));
        }
        for (p, v) in [("tcp", s.published_tcp), ("udp", s.published_udp)] {
            published.push((l(&[("network", net), ("protocol", p)]), v));
        }
    }
    o.counter(
        "vswitch_nat_frames",
        "Frames through the egress NAT engine (in: from containers)",
        frames,
    );
    o.gauge("vswitch_nat_flows", "NAT flows alive, by protocol", flows);
    o.counter(
        "vswitch_nat_flow_cap_hits",
        "New NAT flows refused at the flow cap",
        nat.iter()
            .map(|(net, s)| (l(&[("network", net)]), s.flow_cap_hits)),
    );
    o.counter(
        "vswitch_nat_dropped",
        "Frames the NAT engine did not handle",
        dropped,
    );
    o.counter(
        "vswitch_published_connections",
        "Connections (TCP) and new clients (UDP) on published ports",
        published,
    );

    let dns = &inputs.dns;
    let per_dns = |f: fn(&DnsStats) -> u64| -> Vec<(Labels, u64)> {
        dns.iter()
            .map(|(c, s)| (l(&[("container", c)]), f(s)))
            .collect()
    };
    o.counter(
        "vswitch_dns_queries",
        "DNS queries received by a sandbox's embedded resolver",
        per_dns(|s| s.queries),
    );
    o.counter(
        "vswitch_dns_answers",
        "DNS queries answered by the embedded resolver itself",
        per_dns(|s| s.answers),
    );
    o.counter(
        "vswitch_dns_forwards",
        "DNS queries forwarded to the upstream resolvers",
        per_dns(|s| s.forwards),
    );

    let tun = &inputs.tunnel;
    let mut dgrams = Vec::new();
    let mut tframes = Vec::new();
    let mut tdrops = Vec::new();
    for (net, _vni, s) in tun {
        for (d, v) in [("rx", s.rx_datagrams), ("tx", s.tx_datagrams)] {
            dgrams.push((l(&[("network", net), ("direction", d)]), v));
        }
        for (d, v) in [("rx", s.rx_frames), ("tx", s.tx_frames)] {
            tframes.push((l(&[("network", net), ("direction", d)]), v));
        }
        let d = &s.dropped;
        for (r, v) in [
            ("bad_frame", d.bad_frame),
            ("no_peer", d.no_peer),
            ("not_flooded", d.not_flooded),
            ("send_error", d.send_error),
            ("unknown_vtep", d.unknown_vtep),
            ("switch_full", d.switch_full),
        ] {
            tdrops.push((l(&[("network", net), ("reason", r)]), v));
        }
    }
    o.counter(
        "vswitch_tunnel_datagrams",
        "VXLAN datagrams of an overlay network",
        dgrams,
    );
    o.counter(
        "vswitch_tunnel_frames",
        "Frames of an overlay network through the tunnel (tx: encapsulated, rx: decapsulated)",
        tframes,
    );
    o.counter(
        "vswitch_tunnel_drops",
        "Overlay traffic dropped, by reason (unknown_vtep: a datagram from a host that is not a peer)",
        tdrops,
    );
    let host = inputs.tunnel_host.iter();
    o.counter(
        "vswitch_tunnel_host_rx_datagrams",
        "Datagrams received on the host's VXLAN socket",
        host.clone().map(|h| (Vec::new(), h.rx_datagrams)),
    );
    o.counter(
        "vswitch_tunnel_host_drops",
        "Datagrams dropped by the host's VXLAN socket (unknown_vni: a VNI not on this host)",
        host.flat_map(|h| {
            [
                (l(&[("reason", "malformed")]), h.malformed),
                (l(&[("reason", "unknown_vni")]), h.unknown_vni),
                (l(&[("reason", "truncated")]), h.truncated),
            ]
        }),
    );
    let mut text = String::new();
    // Writing to a String cannot fail.
    let _ = prometheus_text::encode(&mut text, &o.reg);
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::datapath::{NetStats, PortCounters};
    use crate::switch::{Counters, PortId, PortKind};

    #[test]
    fn exposition() {
        let snapshot = NetSnapshot {
            workers: vec![(0, 12)],
            net: "abc".into(),
            stats: NetStats {
                rx_frames: 12,
                tx_dropped: 3,
                ..Default::default()
            },
            switch: Counters {
                drop_spoofed_ip: 4,
                ..Default::default()
            },
            ports: vec![(
                PortId(1),
                PortKind::Container,
                PortCounters {
                    rx_frames: 10,
                    ..Default::default()
                },
            )],
            captures: 0,
        };
        let inputs = Inputs {
            networks: vec![NetworkInput {
                name: "front\"end".into(),
                snapshot,
                port_names: vec![("web1".into(), "eth0".into())],
            }],
            nat: vec![(
                "front\"end".into(),
                NatStats {
                    icmp_flows: 2,
                    ..Default::default()
                },
            )],
            dns: vec![("web1".into(), DnsStats::default())],
            ..Default::default()
        };
        let t = render(&inputs);
        assert!(
            t.contains("# TYPE vswitch_network_rx_frames_total counter\n"),
            "{t}"
        );
        assert!(t.contains("vswitch_network_rx_frames_total{network=\"front\\\"end\"} 12\n"));
        assert!(t.contains(
            "vswitch_network_worker_rx_frames_total{network=\"front\\\"end\",worker=\"0\"} 12\n"
        ));
        assert!(t.contains(
            "vswitch_port_rx_frames_total{network=\"front\\\"end\",container=\"web1\",interface=\"eth0\"} 10\n"
        ));
        assert!(
            t.contains("vswitch_drops_total{network=\"front\\\"end\",reason=\"spoofed_ip\"} 4\n")
        );
        assert!(
            t.contains("vswitch_drops_total{network=\"front\\\"end\",reason=\"queue_full\"} 3\n")
        );
        assert!(t.contains("vswitch_nat_flows{network=\"front\\\"end\",protocol=\"icmp\"} 2\n"));
        assert!(t.contains("vswitch_dns_queries_total{container=\"web1\"} 0\n"));
    }
}
