use super::*;

fn state() -> State {
    State::new_in_memory(PoolSettings::default())
}

fn create(st: &mut State, name: &str) -> Network {
    st.create_network(
        CreateNetwork {
            name: name.into(),
            ..Default::default()
        },
        &[],
    )
    .unwrap()
    .0
}

fn with_subnet(name: &str, subnet: &str) -> CreateNetwork {
    CreateNetwork {
        name: name.into(),
        ipam_config: vec![RawSubnetConfig {
            subnet: subnet.into(),
            ..Default::default()
        }],
        ..Default::default()
    }
}

#[test]
fn predefined_networks_exist() {
    let st = state();
    let b = st.find_network("bridge").unwrap();
    assert_eq!(b.driver, Driver::Bridge);
    assert_eq!(b.configs()[0].subnet.to_string(), "172.17.0.0/16");
    assert_eq!(b.configs()[0].gateway.unwrap().to_string(), "172.17.0.1");
    assert_eq!(b.bridge_name(), "docker0");
    assert_eq!(st.find_network("host").unwrap().driver, Driver::Host);
    assert_eq!(st.find_network("none").unwrap().driver, Driver::Null);
}

#[test]
fn first_user_network_takes_172_18() {
    let mut st = state();
    let n = create(&mut st, "mynetwork");
    assert_eq!(n.configs()[0].subnet.to_string(), "172.18.0.0/16");
    assert_eq!(n.configs()[0].gateway.unwrap().to_string(), "172.18.0.1");
    assert_eq!(n.bridge_name(), format!("br-{}", &n.id[..12]));
    let n2 = create(&mut st, "second");
    assert_eq!(n2.configs()[0].subnet.to_string(), "172.19.0.0/16");
}

#[test]
fn reserved_prefix_is_skipped() {
    let mut st = state();
    let reserved = vec!["172.18.5.0/24".parse().unwrap()];
    let (n, _) = st
        .create_network(
            CreateNetwork {
                name: "a".into(),
                ..Default::default()
            },
            &reserved,
        )
        .unwrap();
    assert_eq!(n.configs()[0].subnet.to_string(), "172.19.0.0/16");
}

#[test]
fn create_errors_leave_no_state() {
    let mut st = state();
    create(&mut st, "dup");
    let before = st.networks().count();
    let cases: Vec<(CreateNetwork, &str, u16)> = vec![
        (
            CreateNetwork {
                name: "dup".into(),
                ..Default::default()
            },
            "network with name dup already exists",
            409,
        ),
        (
            CreateNetwork {
                name: "bridge".into(),
                ..Default::default()
            },
            "operation is not permitted on predefined bridge network ",
            403,
        ),
        (
            CreateNetwork {
                name: "x".into(),
                driver: "foo".into(),
                ..Default::default()
            },
            "plugin \"foo\" not found",
            404,
        ),
        (
            CreateNetwork {
                name: "x".into(),
                ipam_driver: "dhcp".into(),
                ..Default::default()
            },
            "invalid ipam driver: \"dhcp\"",
            400,
        ),
        (
            with_subnet("x", "172.18.0.0/24"),
            "invalid pool request: Pool overlaps with other one on this address space",
            403,
        ),
        (
            with_subnet("x", "bogus"),
            "invalid network config:\ninvalid subnet bogus: invalid CIDR block notation",
            400,
        ),
        (
            CreateNetwork {
                name: "".into(),
                ..Default::default()
            },
            "invalid name: name is empty",
            400,
        ),
    ];
    for (req, msg, status) in cases {
        let e = st.create_network(req, &[]).unwrap_err();
        assert_eq!(e.to_string(), msg);
        assert_eq!(e.status(), status, "{msg}");
    }
    assert_eq!(st.networks().count(), before);
}

#[test]
fn gateway_outside_subnet_is_rejected() {
    let mut st = state();
    let mut req = with_subnet("x", "10.15.20.0/24");
    req.ipam_config[0].gateway = Some("10.15.21.1".into());
    let e = st.create_network(req, &[]).unwrap_err();
    assert_eq!(e.status(), 400);
    assert!(e.to_string().contains("invalid gateway 10.15.21.1"), "{e}");
}

#[test]
fn rm_lookup_and_predefined() {
    let mut st = state();
    let n = create(&mut st, "gone");
    let e = st.remove_network("bridge").unwrap_err();
    assert_eq!(
        e.to_string(),
        "bridge is a pre-defined network and cannot be removed"
    );
    assert_eq!(e.status(), 403);
    st.remove_network(&n.id[..10]).unwrap();
    let e = st.remove_network("gone").unwrap_err();
    assert_eq!(e.to_string(), "network gone not found");
    assert_eq!(e.status(), 404);
}

#[test]
fn rm_refuses_with_endpoints_then_works() {
    let mut st = state();
    let n = create(&mut st, "mynet");
    let sb = st
        .create_sandbox(Some("web1".into()), "mynet", EndpointSettings::default())
        .unwrap();
    assert_eq!(sb.endpoints[0].ipv4.unwrap().to_string(), "172.18.0.2/16");
    assert_eq!(sb.endpoints[0].mac, "02:42:ac:12:00:02");
    assert_eq!(sb.endpoints[0].ifname, "eth0");
    let e = st.remove_network("mynet").unwrap_err();
    assert_eq!(
        e.to_string(),
        format!(
            "error while removing network: network mynet has active endpoints (name:\"web1\" id:\"{}\")",
            &sb.endpoints[0].id[..12]
        )
    );
    st.remove_sandbox("web1").unwrap();
    st.remove_network(&n.id).unwrap();
}

#[test]
fn seed_connect_recipe_and_handover() {
    let mut st = state();
    create(&mut st, "mynetwork");
    let sb = st
        .create_sandbox(Some("web1".into()), "bridge", EndpointSettings::default())
        .unwrap();
    assert_eq!(sb.endpoints[0].ipv4.unwrap().to_string(), "172.17.0.2/16");
    assert_eq!(sb.endpoints[0].mac, "02:42:ac:11:00:02");
    let (sb, ep) = st
        .connect("mynetwork", "web1", EndpointSettings::default())
        .unwrap();
    assert_eq!(ep.ifname, "eth1");
    assert_eq!(ep.ipv4.unwrap().to_string(), "172.18.0.2/16");
    // bridge sorts before mynetwork: it keeps the default route.
    assert_eq!(st.default_gateway_endpoint(&sb), Some(0));
    let (sb, _) = st.disconnect("bridge", "web1", false).unwrap();
    assert_eq!(sb.endpoints.len(), 1);
    assert_eq!(st.default_gateway_endpoint(&sb), Some(0));
    assert_eq!(sb.endpoints[0].ifname, "eth1");
    // The bridge address was released and is handed out again.
    let sb2 = st
        .create_sandbox(Some("web2".into()), "bridge", EndpointSettings::default())
        .unwrap();
    assert_eq!(sb2.endpoints[0].ipv4.unwrap().to_string(), "172.17.0.2/16");
}

#[test]
fn none_network_is_exclusive() {
    let mut st = state();
    create(&mut st, "mynetwork");
    st.create_sandbox(Some("lonely".into()), "none", EndpointSettings::default())
        .unwrap();
    let e = st
        .connect("mynetwork", "lonely", EndpointSettings::default())
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "container cannot be connected to multiple networks with one of the networks in private (none) mode"
    );
    assert_eq!(e.status(), 400);
    st.disconnect("none", "lonely", false).unwrap();
    let (_, ep) = st
        .connect("mynetwork", "lonely", EndpointSettings::default())
        .unwrap();
    assert_eq!(ep.ifname, "eth0");
}

#[test]
fn connect_errors() {
    let mut st = state();
    st.create_network(with_subnet("tb1", "10.15.20.0/24"), &[])
        .unwrap();
    st.create_sandbox(Some("web1".into()), "bridge", EndpointSettings::default())
        .unwrap();
    let e = st
        .connect("tb1", "nobody", EndpointSettings::default())
        .unwrap_err();
    assert_eq!(e.to_string(), "No such container: nobody");
    assert_eq!(e.status(), 404);
    let ip = |a: &str| EndpointSettings {
        ipv4: Some(a.into()),
        ..Default::default()
    };
    let e = st.connect("tb1", "web1", ip("10.99.0.5")).unwrap_err();
    assert_eq!(
        e.to_string(),
        "invalid endpoint settings:\nno configured subnet or ip-range contain the IP address 10.99.0.5"
    );
    let (_, ep) = st.connect("tb1", "web1", ip("10.15.20.50")).unwrap();
    assert_eq!(ep.ipv4.unwrap().to_string(), "10.15.20.50/24");
    let e = st
        .connect("tb1", "web1", EndpointSettings::default())
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "endpoint with name web1 already exists in network tb1"
    );
    st.create_sandbox(Some("web2".into()), "bridge", EndpointSettings::default())
        .unwrap();
    let e = st.connect("tb1", "web2", ip("10.15.20.50")).unwrap_err();
    assert_eq!(e.to_string(), "Address already in use");
    let e = st.connect("bridge", "web2", ip("172.17.0.9")).unwrap_err();
    assert!(e.to_string().contains("user defined networks only"), "{e}");
    let e = st.disconnect("tb1", "web2", false).unwrap_err();
    assert_eq!(e.status(), 500);
    assert!(e.to_string().ends_with("is not connected to network tb1"));
}

#[test]
fn internal_network_gives_no_default_route() {
    let mut st = state();
    let (n, _) = st
        .create_network(
            CreateNetwork {
                name: "int".into(),
                internal: true,
                ..Default::default()
            },
            &[],
        )
        .unwrap();
    assert!(n.internal);
    let sb = st
        .create_sandbox(Some("c".into()), "int", EndpointSettings::default())
        .unwrap();
    assert_eq!(st.default_gateway_endpoint(&sb), None);
}

#[test]
fn ipv6_network() {
    let mut st = state();
    let (n, _) = st
        .create_network(
            CreateNetwork {
                name: "v6net".into(),
                enable_ipv6: Some(true),
                ipam_config: vec![RawSubnetConfig {
                    subnet: "fd00:1::/64".into(),
                    ..Default::default()
                }],
                ..Default::default()
            },
            &[],
        )
        .unwrap();
    // An IPv4 subnet is chosen from the pools, the IPv6 one is the user's.
    assert_eq!(n.configs().len(), 2);
    let sb = st
        .create_sandbox(Some("c".into()), "v6net", EndpointSettings::default())
        .unwrap();
    assert_eq!(sb.endpoints[0].ipv6.unwrap().to_string(), "fd00:1::2/64");
    let e = st
        .create_network(with_subnet("nov6", "fd00:2::/64"), &[])
        .unwrap_err();
    assert!(e.to_string().contains("--ipv6"), "{e}");
}

#[test]
fn restart_replays_everything() {
    let dir = std::env::temp_dir().join(format!("vswitch-model-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let store = Store::open(&dir).unwrap();
    let (mut st, rep) = State::open(store.clone(), PoolSettings::default()).unwrap();
    assert!(rep.problems.is_empty());
    create(&mut st, "keep");
    st.create_sandbox(Some("web1".into()), "keep", EndpointSettings::default())
        .unwrap();
    let ids: Vec<String> = st.networks().map(|n| n.id.clone()).collect();
    drop(st);
    let (mut st, rep) = State::open(store, PoolSettings::default()).unwrap();
    assert!(rep.problems.is_empty(), "{:?}", rep.problems);
    assert_eq!(st.networks().map(|n| n.id.clone()).collect::<Vec<_>>(), ids);
    // The replayed allocation is held: the next container gets .3.
    let sb = st
        .create_sandbox(Some("web2".into()), "keep", EndpointSettings::default())
        .unwrap();
    assert_eq!(sb.endpoints[0].ipv4.unwrap().to_string(), "172.18.0.3/16");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn prune_candidates() {
    let mut st = state();
    create(&mut st, "unused");
    create(&mut st, "used");
    st.create_sandbox(Some("c".into()), "used", EndpointSettings::default())
        .unwrap();
    let names: Vec<String> = st.prunable().into_iter().map(|n| n.name).collect();
    assert_eq!(names, vec!["unused".to_string()]);
}

#[test]
fn requested_mac_is_used_validated_and_unique_per_network() {
    let mut st = state();
    st.create_network(with_subnet("macnet", "10.77.0.0/24"), &[])
        .unwrap();
    let mac = |m: &str| EndpointSettings {
        mac: Some(m.into()),
        ..Default::default()
    };
    let a = st
        .create_sandbox(Some("a".into()), "macnet", mac("02:AA:bb:cc:dd:01"))
        .unwrap();
    assert_eq!(a.endpoints[0].mac, "02:aa:bb:cc:dd:01");
    assert!(a.endpoints[0].requested_mac);
    let b = st
        .create_sandbox(Some("b".into()), "macnet", mac("0200.0000.0042"))
        .unwrap();
    assert_eq!(b.endpoints[0].mac, "02:00:00:00:00:42");
    let e = st
        .create_sandbox(Some("c".into()), "macnet", mac("02:aa:bb:cc:dd:01"))
        .unwrap_err();
    assert_eq!(e.status(), 403);
    assert_eq!(
        e.to_string(),
        "MAC address 02:aa:bb:cc:dd:01 is already in use on network macnet (container a)"
    );
    let e = st
        .create_sandbox(Some("c".into()), "macnet", mac("02:aa:bb"))
        .unwrap_err();
    assert_eq!(
        (e.status(), e.to_string()),
        (
            400,
            "invalid endpoint settings:\ninvalid MAC address 02:aa:bb".into()
        )
    );
    assert!(st
        .create_sandbox(Some("c".into()), "macnet", mac("01:00:5e:00:00:01"))
        .is_err());
    assert!(st
        .create_sandbox(Some("c".into()), "macnet", mac("02:aa-bb:cc:dd:01"))
        .is_err());
    // A derived MAC that another endpoint asked for is moved off it.
    let derived = crate::model::mac_from_ipv4([10, 77, 0, 5]);
    st.create_sandbox(Some("d".into()), "macnet", mac(&derived))
        .unwrap();
    let e = st
        .create_sandbox(Some("e".into()), "macnet", EndpointSettings::default())
        .unwrap();
    assert_ne!(e.endpoints[0].mac, derived);
    // The failed attempts left no address allocated: c gets the next free one.
    let c = st
        .create_sandbox(Some("c".into()), "macnet", EndpointSettings::default())
        .unwrap();
    assert!(c.endpoints[0].ipv4.is_some());
}

#[test]
fn link_local_ips_are_kept_and_checked() {
    let mut st = state();
    st.create_network(with_subnet("llnet", "10.78.0.0/24"), &[])
        .unwrap();
    let ll = |ips: &[&str]| EndpointSettings {
        link_local_ips: ips.iter().map(|s| s.to_string()).collect(),
        ..Default::default()
    };
    let a = st
        .create_sandbox(Some("a".into()), "llnet", ll(&["169.254.1.1", "fe80::1"]))
        .unwrap();
    assert_eq!(a.endpoints[0].link_local_ips.len(), 2);
    let e = st
        .create_sandbox(Some("b".into()), "llnet", ll(&["nope"]))
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "invalid endpoint settings:\ninvalid link-local IP address: nope"
    );
}
