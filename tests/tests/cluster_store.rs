//! The cluster store (`vswitch::cluster`) against a real etcd (Debian's etcd-server) running
//! in a test namespace. The clients run on a thread that entered that namespace, each
//! `Cluster` standing for one host. Needs root (namespaces).

use std::collections::BTreeSet;
use std::future::Future;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ipnet::IpNet;
use tokio::sync::mpsc::Receiver;
use vswitch::cluster::{
    Cluster, ClusterConfig, ClusterError, ClusterEvent, EndpointRecord, NetworkRecord, VNI_FIRST,
};
use vswitch_tests::{in_netns_thread, Etcd, EtcdCluster, Netns};

/// Bound on a whole test's async part.
const TEST_TIMEOUT: Duration = Duration::from_secs(120);
/// Bound on waiting for one watch event.
const EVENT_TIMEOUT: Duration = Duration::from_secs(10);

/// A namespace with etcd on 127.0.0.1 in it (fields drop in order: etcd first).
struct World {
    etcd: Arc<Mutex<Etcd>>,
    ns: Netns,
}

fn world(tag: &str) -> World {
    let ns = Netns::new(tag);
    let etcd = Etcd::start(&ns, "127.0.0.1");
    World {
        etcd: Arc::new(Mutex::new(etcd)),
        ns,
    }
}

/// Run `f(world's etcd URL, etcd handle)` on a current-thread runtime inside the namespace.
fn block_in<F, Fut>(w: &World, f: F)
where
    F: FnOnce(String, Arc<Mutex<Etcd>>) -> Fut + Send + 'static,
    Fut: Future<Output = ()>,
{
    let etcd = w.etcd.clone();
    let url = etcd.lock().unwrap().store_url();
    in_netns_thread(&w.ns.name, move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async move {
            tokio::time::timeout(TEST_TIMEOUT, f(url, etcd))
                .await
                .expect("test timed out");
        });
    });
}

/// Host `n` (advertise 192.0.2.n, id `hostN`).
async fn host(url: &str, n: u8, ttl: Duration) -> Cluster {
    let adv: IpAddr = format!("192.0.2.{n}").parse().unwrap();
    let mut cfg = ClusterConfig::parse_url(url, adv).expect("url");
    cfg.ttl = ttl;
    let c = Cluster::connect(cfg, format!("host{n}"))
        .await
        .expect("connect");
    assert_eq!(c.advertise(), adv);
    assert_eq!(c.host_id(), format!("host{n}"));
    c
}

fn net(id: &str, name: &str, vni: u32) -> NetworkRecord {
    NetworkRecord {
        id: id.into(),
        name: name.into(),
        vni,
        body: serde_json::json!({"Driver": "overlay", "Subnet": "10.10.0.0/24"}),
    }
}

fn ep(c: &Cluster, net: &str, id: &str, name: &str, last: u8) -> EndpointRecord {
    EndpointRecord {
        network_id: net.into(),
        endpoint_id: id.into(),
        name: name.into(),
        aliases: vec![format!("{name}-alias")],
        mac: format!("02:42:0a:0a:00:{last:02x}"),
        ipv4: Some(format!("10.10.0.{last}").parse().unwrap()),
        ipv6: None,
        vtep: c.advertise(),
        host: c.host_id().to_string(),
    }
}

async fn next(rx: &mut Receiver<ClusterEvent>) -> ClusterEvent {
    tokio::time::timeout(EVENT_TIMEOUT, rx.recv())
        .await
        .expect("no watch event in time")
        .expect("watch ended")
}

/// Events until `want` (returned with the time it took), bounded by `within`.
async fn wait_for(
    rx: &mut Receiver<ClusterEvent>,
    within: Duration,
    want: &ClusterEvent,
) -> Duration {
    let t0 = Instant::now();
    let mut seen = Vec::new();
    loop {
        let left = within.saturating_sub(t0.elapsed());
        match tokio::time::timeout(left, rx.recv()).await {
            Ok(Some(ev)) if &ev == want => return t0.elapsed(),
            Ok(Some(ev)) => seen.push(ev),
            Ok(None) => panic!("watch ended waiting for {want:?}; saw {seen:?}"),
            Err(_) => panic!("no {want:?} within {within:?}; saw {seen:?}"),
        }
    }
}

/// The snapshot up to `Synced`.
async fn snapshot(rx: &mut Receiver<ClusterEvent>) -> Vec<ClusterEvent> {
    let mut out = Vec::new();
    loop {
        match next(rx).await {
            ClusterEvent::Synced => return out,
            ev => out.push(ev),
        }
    }
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

#[test]
fn two_hosts_allocate_100_addresses_concurrently_without_collision() {
    let w = world("cla");
    block_in(&w, |url, _| async move {
        let a = host(&url, 1, Duration::from_secs(10)).await;
        let b = host(&url, 2, Duration::from_secs(10)).await;
        let subnet: IpNet = "10.10.0.0/24".parse().unwrap();
        let reserved = [ip("10.10.0.1")];
        let mut tasks = Vec::new();
        for i in 0..100 {
            let c = if i % 2 == 0 { a.clone() } else { b.clone() };
            tasks.push(tokio::spawn(async move {
                c.allocate_ip("n1", subnet, None, &reserved, None, &format!("ep{i}"))
                    .await
            }));
        }
        let mut got = BTreeSet::new();
        for t in tasks {
            let addr = t.await.unwrap().expect("allocate");
            assert!(subnet.contains(&addr), "{addr} outside {subnet}");
            assert!(got.insert(addr), "{addr} handed out twice");
        }
        assert_eq!(got.len(), 100);
        for never in ["10.10.0.0", "10.10.0.1", "10.10.0.255"] {
            assert!(!got.contains(&ip(never)), "{never} handed out");
        }

        // The next one (no race now) is the lowest free address.
        let lowest = (2..255u8)
            .map(|i| ip(&format!("10.10.0.{i}")))
            .find(|a| !got.contains(a))
            .unwrap();
        let next_addr = a
            .allocate_ip("n1", subnet, None, &reserved, None, "ep-next")
            .await
            .unwrap();
        assert_eq!(next_addr, lowest);

        // A requested address already taken (by either host) is refused.
        let taken = *got.iter().next().unwrap();
        let e = b
            .allocate_ip("n1", subnet, None, &reserved, Some(taken), "other")
            .await
            .unwrap_err();
        assert_eq!(e, ClusterError::AddressInUse(taken));
        assert_eq!(e.status(), 409);
        let e = b
            .allocate_ip("n1", subnet, None, &reserved, Some(ip("10.10.0.1")), "o")
            .await
            .unwrap_err();
        assert_eq!(e, ClusterError::AddressInUse(ip("10.10.0.1")));
        // Released, it can be requested again.
        a.release_ip("n1", taken).await.unwrap();
        assert_eq!(
            b.allocate_ip("n1", subnet, None, &reserved, Some(taken), "other")
                .await
                .unwrap(),
            taken
        );
        // Other networks have their own space.
        assert_eq!(
            b.allocate_ip("n2", subnet, None, &reserved, None, "x")
                .await
                .unwrap(),
            ip("10.10.0.2")
        );

        // A small pool with an ip-range runs out cleanly.
        let small: IpNet = "10.20.0.0/24".parse().unwrap();
        let range: IpNet = "10.20.0.8/30".parse().unwrap();
        let mut in_range = BTreeSet::new();
        for i in 0..4 {
            let c = if i % 2 == 0 { &a } else { &b };
            let addr = c
                .allocate_ip("n3", small, Some(range), &[], None, &format!("s{i}"))
                .await
                .unwrap();
            assert!(range.contains(&addr), "{addr} outside {range}");
            in_range.insert(addr);
        }
        assert_eq!(in_range.len(), 4);
        let e = a
            .allocate_ip("n3", small, Some(range), &[], None, "s4")
            .await
            .unwrap_err();
        assert_eq!(e, ClusterError::PoolExhausted);
        a.close().await;
        b.close().await;
    });
}

#[test]
fn vnis_and_network_names() {
    let w = world("clv");
    block_in(&w, |url, _| async move {
        let a = host(&url, 1, Duration::from_secs(10)).await;
        let b = host(&url, 2, Duration::from_secs(10)).await;
        assert_eq!(a.allocate_vni("n1", None).await.unwrap(), VNI_FIRST);
        assert_eq!(b.allocate_vni("n2", None).await.unwrap(), 257);
        // Asking again for the same network gives its VNI back.
        assert_eq!(a.allocate_vni("n1", None).await.unwrap(), 256);
        let e = b.allocate_vni("n3", Some(257)).await.unwrap_err();
        assert_eq!(e, ClusterError::VniTaken(257));
        assert_eq!(e.status(), 409);
        assert_eq!(b.allocate_vni("n3", Some(4096)).await.unwrap(), 4096);
        assert_eq!(
            b.allocate_vni("n4", Some(0)).await.unwrap_err(),
            ClusterError::BadVni(0)
        );

        a.create_network(&net("n1", "ov1", 256)).await.unwrap();
        let e = b.create_network(&net("n2", "ov1", 257)).await.unwrap_err();
        assert_eq!(e, ClusterError::NetworkNameTaken("ov1".into()));
        assert_eq!(e.to_string(), "network with name ov1 already exists");
        assert_eq!(e.status(), 409);
        // The same id again is refused too.
        assert!(a.create_network(&net("n1", "ov9", 256)).await.is_err());
        let nets = b.networks().await.unwrap();
        assert_eq!(nets, vec![net("n1", "ov1", 256)]);

        // A network with endpoints (on any host) cannot be removed.
        let subnet: IpNet = "10.10.0.0/24".parse().unwrap();
        let addr = a
            .allocate_ip("n1", subnet, None, &[ip("10.10.0.1")], None, "e1")
            .await
            .unwrap();
        a.publish_endpoint(&ep(&a, "n1", "e1", "web1", 2))
            .await
            .unwrap();
        let e = b.remove_network("n1").await.unwrap_err();
        assert_eq!(e.status(), 403);
        assert_eq!(
            e.to_string(),
            "error while removing network: network ov1 has active endpoints (name:\"web1\" id:\"e1\")"
        );
        a.withdraw_endpoint("n1", "e1").await.unwrap();
        b.remove_network("n1").await.unwrap();
        assert!(b.networks().await.unwrap().is_empty());
        // Name, VNI and addresses are free again.
        b.create_network(&net("n5", "ov1", 300)).await.unwrap();
        assert_eq!(b.allocate_vni("n6", None).await.unwrap(), 256);
        assert_eq!(
            b.allocate_ip("n1", subnet, None, &[], Some(addr), "x")
                .await
                .unwrap(),
            addr
        );
        // Removing a network without a record frees its VNI (a failed create's clean-up).
        b.remove_network("n2").await.unwrap();
        assert_eq!(a.allocate_vni("n7", None).await.unwrap(), 257);

        // Subnets are reserved with the record: a second network cannot take one.
        let s1: IpNet = "10.0.7.0/24".parse().unwrap();
        a.create_network_with_subnets(&net("s1", "sub1", 400), &[s1])
            .await
            .unwrap();
        let e = b
            .create_network_with_subnets(&net("s2", "sub2", 401), &[s1])
            .await
            .unwrap_err();
        assert_eq!(e, ClusterError::SubnetTaken("10.0.7.0/24".into()));
        assert_eq!(e.status(), 403);
        // Nothing of the refused network was written.
        assert!(!b.networks().await.unwrap().iter().any(|n| n.id == "s2"));
        a.remove_network("s1").await.unwrap();
        b.create_network_with_subnets(&net("s2", "sub2", 401), &[s1])
            .await
            .unwrap();
        a.close().await;
        b.close().await;
    });
}

#[test]
fn endpoint_name_conflict_is_dockers_error() {
    let w = world("cle");
    block_in(&w, |url, _| async move {
        let a = host(&url, 1, Duration::from_secs(10)).await;
        let b = host(&url, 2, Duration::from_secs(10)).await;
        let e1 = ep(&a, "n1", "e1", "web2", 2);
        a.publish_endpoint(&e1).await.unwrap();
        let e = b
            .publish_endpoint(&ep(&b, "n1", "e2", "web2", 3))
            .await
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "service endpoint with name web2 already exists"
        );
        assert_eq!(e.status(), 409);
        // The owner may publish again (an update); another network has its own names.
        let mut e1b = e1.clone();
        e1b.aliases.push("extra".into());
        a.publish_endpoint(&e1b).await.unwrap();
        let other = ep(&b, "n2", "e9", "web2", 9);
        b.publish_endpoint(&other).await.unwrap();
        assert_eq!(b.endpoints(Some("n1")).await.unwrap(), vec![e1b]);
        assert_eq!(a.endpoints(None).await.unwrap().len(), 2);
        // Renamed, the old name is free at once.
        let mut e1c = e1.clone();
        e1c.name = "web2b".into();
        a.publish_endpoint(&e1c).await.unwrap();
        let e8 = ep(&b, "n1", "e8", "web2", 8);
        b.publish_endpoint(&e8).await.unwrap();
        b.withdraw_endpoint("n1", "e8").await.unwrap();
        // Withdrawn, the name is free.
        a.withdraw_endpoint("n1", "e1").await.unwrap();
        let e2 = ep(&b, "n1", "e2", "web2", 3);
        b.publish_endpoint(&e2).await.unwrap();
        assert_eq!(a.endpoints(Some("n1")).await.unwrap(), vec![e2]);
        // Withdrawing something absent is fine.
        a.withdraw_endpoint("n1", "nope").await.unwrap();
        a.close().await;
        b.close().await;
    });
}

#[test]
fn crashed_host_loses_its_records_within_ttl_and_close_is_immediate() {
    let w = world("cll");
    block_in(&w, |url, _| async move {
        let ttl = Duration::from_secs(2);
        let a = host(&url, 1, ttl).await;
        let b = host(&url, 2, Duration::from_secs(10)).await;
        let subnet: IpNet = "10.10.0.0/24".parse().unwrap();
        a.create_network(&net("n1", "ov1", 256)).await.unwrap();
        let addr = a
            .allocate_ip("n1", subnet, None, &[], None, "e1")
            .await
            .unwrap();
        let e1 = ep(&a, "n1", "e1", "web1", 2);
        a.publish_endpoint(&e1).await.unwrap();
        let mut rx = b.watch();
        let snap = snapshot(&mut rx).await;
        assert!(
            snap.contains(&ClusterEvent::EndpointPut(e1.clone())),
            "{snap:?}"
        );

        // Outlive several keep-alive rounds: the records stay.
        tokio::time::sleep(ttl * 2).await;
        assert_eq!(b.endpoints(Some("n1")).await.unwrap(), vec![e1.clone()]);

        // Crash: dropped without close. Gone within the TTL (+ slack for etcd's expiry
        // sweep and the keep-alive in flight).
        drop(a);
        let took = wait_for(
            &mut rx,
            ttl + Duration::from_secs(5),
            &ClusterEvent::EndpointDeleted {
                network_id: "n1".into(),
                endpoint_id: "e1".into(),
            },
        )
        .await;
        eprintln!("crashed host's endpoint deleted after {took:?}");
        assert!(b.endpoints(Some("n1")).await.unwrap().is_empty());
        // Its address and endpoint name are free; the network (global) stays.
        assert_eq!(
            b.allocate_ip("n1", subnet, None, &[], Some(addr), "x")
                .await
                .unwrap(),
            addr
        );
        b.publish_endpoint(&ep(&b, "n1", "e5", "web1", 5))
            .await
            .unwrap();
        assert_eq!(b.networks().await.unwrap().len(), 1);

        // Graceful close: a long TTL, yet the records go at once.
        let c = host(&url, 3, Duration::from_secs(30)).await;
        let e3 = ep(&c, "n1", "e3", "web3", 3);
        c.publish_endpoint(&e3).await.unwrap();
        wait_for(&mut rx, EVENT_TIMEOUT, &ClusterEvent::EndpointPut(e3)).await;
        c.close().await;
        let took = wait_for(
            &mut rx,
            Duration::from_secs(2),
            &ClusterEvent::EndpointDeleted {
                network_id: "n1".into(),
                endpoint_id: "e3".into(),
            },
        )
        .await;
        eprintln!("closed host's endpoint deleted after {took:?}");
        assert_eq!(
            c.publish_endpoint(&ep(&c, "n1", "e4", "web4", 4))
                .await
                .unwrap_err(),
            ClusterError::Closed
        );
        b.close().await;
    });
}

#[test]
fn watch_snapshot_live_changes_and_resume_after_etcd_restart() {
    let w = world("clw");
    block_in(&w, |url, etcd| async move {
        let a = host(&url, 1, Duration::from_secs(10)).await;
        let b = host(&url, 2, Duration::from_secs(10)).await;
        let n1 = net("n1", "ov1", 256);
        a.create_network(&n1).await.unwrap();
        let e1 = ep(&a, "n1", "e1", "web1", 2);
        a.publish_endpoint(&e1).await.unwrap();

        let mut rx = b.watch();
        assert_eq!(
            snapshot(&mut rx).await,
            vec![
                ClusterEvent::NetworkPut(n1.clone()),
                ClusterEvent::EndpointPut(e1.clone())
            ]
        );

        // Live changes, in order; allocations make no events.
        let e2 = ep(&a, "n1", "e2", "web2", 3);
        a.publish_endpoint(&e2).await.unwrap();
        assert_eq!(next(&mut rx).await, ClusterEvent::EndpointPut(e2.clone()));
        let subnet: IpNet = "10.10.0.0/24".parse().unwrap();
        b.allocate_ip("n1", subnet, None, &[], None, "x")
            .await
            .unwrap();
        b.allocate_vni("n2", None).await.unwrap();
        a.withdraw_endpoint("n1", "e1").await.unwrap();
        assert_eq!(
            next(&mut rx).await,
            ClusterEvent::EndpointDeleted {
                network_id: "n1".into(),
                endpoint_id: "e1".into()
            }
        );
        let n2 = net("n2", "ov2", 257);
        b.create_network(&n2).await.unwrap();
        assert_eq!(next(&mut rx).await, ClusterEvent::NetworkPut(n2.clone()));
        b.remove_network("n2").await.unwrap();
        assert_eq!(
            next(&mut rx).await,
            ClusterEvent::NetworkDeleted { id: "n2".into() }
        );

        // etcd restarts: the watch is made again from the last revision it delivered, so
        // a change made before the watcher is back arrives, with no resync in between.
        let t0 = Instant::now();
        tokio::task::spawn_blocking(move || etcd.lock().unwrap().restart())
            .await
            .unwrap();
        let e3 = ep(&a, "n1", "e3", "web3", 4);
        a.publish_endpoint(&e3).await.unwrap();
        a.withdraw_endpoint("n1", "e2").await.unwrap();
        let back_within = Duration::from_secs(30);
        let mut seen = Vec::new();
        while seen.len() < 2 {
            let left = back_within.saturating_sub(t0.elapsed());
            match tokio::time::timeout(left, rx.recv()).await {
                Ok(Some(ev)) => seen.push(ev),
                other => panic!("watch not back after the restart: {other:?} (so far {seen:?})"),
            }
        }
        eprintln!("watch back {:?} after the restart began", t0.elapsed());
        assert_eq!(
            seen,
            vec![
                ClusterEvent::EndpointPut(e3),
                ClusterEvent::EndpointDeleted {
                    network_id: "n1".into(),
                    endpoint_id: "e2".into()
                }
            ]
        );
        // And live changes flow again.
        let e4 = ep(&a, "n1", "e4", "web4", 5);
        a.publish_endpoint(&e4).await.unwrap();
        assert_eq!(next(&mut rx).await, ClusterEvent::EndpointPut(e4));
        a.close().await;
        b.close().await;
    });
}

#[test]
fn lost_lease_is_replaced_and_held_keys_put_again() {
    let w = world("clr");
    block_in(&w, |url, etcd| async move {
        let ttl = Duration::from_secs(3);
        let a = host(&url, 1, ttl).await;
        let b = host(&url, 2, Duration::from_secs(10)).await;
        let subnet: IpNet = "10.10.0.0/24".parse().unwrap();
        let addr = a
            .allocate_ip("n1", subnet, None, &[], None, "e1")
            .await
            .unwrap();
        let e1 = ep(&a, "n1", "e1", "web1", 2);
        a.publish_endpoint(&e1).await.unwrap();
        let mut rx = b.watch();
        snapshot(&mut rx).await;

        // Revoke a's lease behind its back (as an expiry would).
        let client_url = etcd.lock().unwrap().client_url();
        let mut raw = etcd_client::Client::connect([client_url], None)
            .await
            .unwrap();
        let old = a.lease_id().await;
        raw.lease_revoke(old).await.unwrap();
        wait_for(
            &mut rx,
            EVENT_TIMEOUT,
            &ClusterEvent::EndpointDeleted {
                network_id: "n1".into(),
                endpoint_id: "e1".into(),
            },
        )
        .await;
        // The keep-alive notices within a round, takes a new lease and puts e1 back.
        let took = wait_for(
            &mut rx,
            ttl + Duration::from_secs(5),
            &ClusterEvent::EndpointPut(e1.clone()),
        )
        .await;
        eprintln!("re-put after {took:?}");
        assert_ne!(a.lease_id().await, old);
        assert_eq!(
            b.allocate_ip("n1", subnet, None, &[], Some(addr), "x")
                .await
                .unwrap_err(),
            ClusterError::AddressInUse(addr)
        );
        assert!(b
            .publish_endpoint(&ep(&b, "n1", "e9", "web1", 9))
            .await
            .is_err());
        // New keys use the new lease: close removes them all.
        a.close().await;
        wait_for(
            &mut rx,
            Duration::from_secs(2),
            &ClusterEvent::EndpointDeleted {
                network_id: "n1".into(),
                endpoint_id: "e1".into(),
            },
        )
        .await;
        b.close().await;
    });
}

#[test]
fn connect_to_nothing_fails_within_bounds() {
    let ns = Netns::new("clc");
    in_netns_thread(&ns.name, || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async {
            // Nothing listens on port 9 in a fresh namespace.
            let cfg = ClusterConfig::parse_url("etcd://127.0.0.1:9", ip("192.0.2.1")).unwrap();
            let t0 = Instant::now();
            let e = match Cluster::connect(cfg, "h".into()).await {
                Ok(_) => panic!("connected to nothing"),
                Err(e) => e,
            };
            assert!(matches!(e, ClusterError::Connect(_)), "{e:?}");
            assert_eq!(e.status(), 503);
            assert!(t0.elapsed() < Duration::from_secs(15), "{:?}", t0.elapsed());
            assert!(matches!(
                ClusterConfig::parse_url("consul://x:1", ip("192.0.2.1")),
                Err(ClusterError::BadUrl(_))
            ));
        });
    });
}

#[test]
fn member_loss_is_routed_around_without_losing_requests_events_or_the_lease() {
    let ns = Netns::new("clm");
    let ips = ["127.0.0.11", "127.0.0.12", "127.0.0.13"];
    let members: Vec<(&Netns, &str)> = ips.iter().map(|ip| (&ns, *ip)).collect();
    let cluster = EtcdCluster::start(&members);
    let mut leader = None;
    assert!(
        vswitch_tests::wait_until(Duration::from_secs(10), || {
            leader = cluster.leader();
            leader.is_some()
        }),
        "no leader"
    );
    let leader = leader.unwrap();
    // The leader first: every request goes to it until it dies.
    let url = cluster.store_url_first(leader);
    let cluster = Arc::new(Mutex::new(cluster));
    in_netns_thread(&ns.name, move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async move {
            let ttl = Duration::from_secs(3);
            let a = host(&url, 1, ttl).await;
            let b = host(&url, 2, ttl).await;
            a.create_network(&net("n1", "ov1", 256)).await.unwrap();
            let mut rx = b.watch();
            snapshot(&mut rx).await;
            let e0 = ep(&a, "n1", "e0", "web0", 2);
            a.publish_endpoint(&e0).await.unwrap();
            assert_eq!(next(&mut rx).await, ClusterEvent::EndpointPut(e0));

            let c2 = cluster.clone();
            tokio::task::spawn_blocking(move || c2.lock().unwrap().members[leader].kill())
                .await
                .unwrap();
            let killed = Instant::now();
            // Requests right after the loss (and through the election) all succeed, and
            // the watcher sees each one once, in order.
            let subnet: IpNet = "10.10.0.0/24".parse().unwrap();
            let mut addrs = BTreeSet::new();
            let mut n = 0u8;
            while killed.elapsed() < 2 * ttl + Duration::from_secs(1) {
                n += 1;
                let e = ep(&a, "n1", &format!("e{n}"), &format!("web{n}"), n + 2);
                a.publish_endpoint(&e).await.unwrap_or_else(|err| {
                    panic!("publish {n} after {:?}: {err}", killed.elapsed())
                });
                let addr = b
                    .allocate_ip("n1", subnet, None, &[], None, &format!("x{n}"))
                    .await
                    .unwrap_or_else(|err| {
                        panic!("allocate {n} after {:?}: {err}", killed.elapsed())
                    });
                assert!(addrs.insert(addr), "{addr} handed out twice");
                assert_eq!(next(&mut rx).await, ClusterEvent::EndpointPut(e));
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            eprintln!("{n} publishes and allocations across the member loss");
            // Nothing else arrived: no deletion (both leases kept alive), no resync.
            assert!(
                tokio::time::timeout(Duration::from_millis(500), rx.recv())
                    .await
                    .is_err(),
                "unexpected watch event"
            );
            assert!(a.health().available && b.health().available);
            let dead = format!("http://{}:2379", ips[leader]);
            assert_ne!(a.health().member, dead);
            a.close().await;
            b.close().await;
        });
    });
}

#[test]
fn watch_resumed_past_a_compaction_falls_back_to_a_fresh_snapshot() {
    let ns = Netns::new("clk");
    let ips = ["127.0.0.21", "127.0.0.22", "127.0.0.23"];
    let members: Vec<(&Netns, &str)> = ips.iter().map(|ip| (&ns, *ip)).collect();
    let cluster = Arc::new(Mutex::new(EtcdCluster::start(&members)));
    let all = cluster.lock().unwrap().store_url();
    in_netns_thread(&ns.name, move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async move {
            let a = host(&all, 1, Duration::from_secs(10)).await;
            // b reaches member 0 only: its watch is down while that member is.
            let b = host("etcd://127.0.0.21:2379", 2, Duration::from_secs(30)).await;
            let n1 = net("n1", "ov1", 256);
            a.create_network(&n1).await.unwrap();
            let mut rx = b.watch();
            snapshot(&mut rx).await;
            let e1 = ep(&a, "n1", "e1", "web1", 2);
            a.publish_endpoint(&e1).await.unwrap();
            assert_eq!(next(&mut rx).await, ClusterEvent::EndpointPut(e1));

            let c2 = cluster.clone();
            tokio::task::spawn_blocking(move || c2.lock().unwrap().members[0].kill())
                .await
                .unwrap();
            // Changes b misses, then compaction past them (through another member).
            let e2 = ep(&a, "n1", "e2", "web2", 3);
            a.publish_endpoint(&e2).await.unwrap();
            a.withdraw_endpoint("n1", "e1").await.unwrap();
            let mut raw = etcd_client::Client::connect(["http://127.0.0.22:2379"], None)
                .await
                .unwrap();
            let rev = raw
                .get("/", None)
                .await
                .unwrap()
                .header()
                .unwrap()
                .revision();
            raw.compact(
                rev,
                Some(etcd_client::CompactionOptions::new().with_physical()),
            )
            .await
            .unwrap();

            let c2 = cluster.clone();
            tokio::task::spawn_blocking(move || c2.lock().unwrap().members[0].restart())
                .await
                .unwrap();
            // The revision b would resume from is gone: Resync, then the store as it is.
            wait_for(&mut rx, Duration::from_secs(30), &ClusterEvent::Resync).await;
            assert_eq!(
                snapshot(&mut rx).await,
                vec![ClusterEvent::NetworkPut(n1), ClusterEvent::EndpointPut(e2)]
            );
            a.close().await;
            b.close().await;
        });
    });
}
