use super::*;
use netlink_packet_core::NLM_F_REQUEST;
use std::net::{Ipv4Addr, Ipv6Addr};

fn roundtrip(msg: RouteNetlinkMessage, flags: u16) -> NetlinkMessage<RouteNetlinkMessage> {
    let bytes = encode(msg, flags, 7);
    let m = NetlinkMessage::<RouteNetlinkMessage>::deserialize(&bytes).expect("parses back");
    assert_eq!(m.header.length as usize, bytes.len());
    assert_eq!(m.header.sequence_number, 7);
    assert_eq!(m.header.flags, NLM_F_REQUEST | flags);
    m
}

fn inner(m: NetlinkMessage<RouteNetlinkMessage>) -> RouteNetlinkMessage {
    match m.payload {
        NetlinkPayload::InnerMessage(i) => i,
        p => panic!("not an rtnetlink message: {p:?}"),
    }
}

#[test]
fn set_link_carries_mac_mtu_and_up_in_one_message() {
    let change = LinkChange {
        mac: Some([2, 0x42, 0xac, 0x11, 0, 2]),
        mtu: Some(1450),
        up: Some(true),
        name: None,
    };
    let m = roundtrip(
        RouteNetlinkMessage::SetLink(msg_set_link(5, &change)),
        NLM_F_ACK,
    );
    assert_eq!(m.header.message_type, libc::RTM_SETLINK);
    let RouteNetlinkMessage::SetLink(l) = inner(m) else {
        panic!("not SetLink")
    };
    assert_eq!(l.header.index, 5);
    assert!(l.header.flags.contains(LinkFlags::Up));
    assert!(l.header.change_mask.contains(LinkFlags::Up));
    assert!(l
        .attributes
        .contains(&LinkAttribute::Address(vec![2, 0x42, 0xac, 0x11, 0, 2])));
    assert!(l.attributes.contains(&LinkAttribute::Mtu(1450)));
}

#[test]
fn link_down_clears_the_flag_but_names_it_in_the_mask() {
    let change = LinkChange {
        up: Some(false),
        ..LinkChange::default()
    };
    let l = msg_set_link(3, &change);
    assert!(!l.header.flags.contains(LinkFlags::Up));
    assert!(l.header.change_mask.contains(LinkFlags::Up));
    // Without `up` the flags are not touched at all.
    let l = msg_set_link(3, &LinkChange::default());
    assert!(l.header.change_mask.is_empty());
}

#[test]
fn ipv4_address_has_local_and_broadcast() {
    let net: IpNet = "172.18.0.2/16".parse().expect("net");
    let m = roundtrip(
        RouteNetlinkMessage::NewAddress(msg_address(9, net)),
        NLM_F_ACK | NLM_F_CREATE | NLM_F_REPLACE,
    );
    assert_eq!(m.header.message_type, libc::RTM_NEWADDR);
    let RouteNetlinkMessage::NewAddress(a) = inner(m) else {
        panic!("not NewAddress")
    };
    assert_eq!(a.header.family, AddressFamily::Inet);
    assert_eq!(a.header.prefix_len, 16);
    assert_eq!(a.header.index, 9);
    let ip = IpAddr::V4(Ipv4Addr::new(172, 18, 0, 2));
    assert!(a.attributes.contains(&AddressAttribute::Local(ip)));
    assert!(a
        .attributes
        .contains(&AddressAttribute::Broadcast(Ipv4Addr::new(
            172, 18, 255, 255
        ))));
    assert_eq!(address_from(&a).map(|x| x.net), Some(net));
}

#[test]
fn point_to_point_prefixes_have_no_broadcast() {
    for p in ["10.0.0.1/31", "10.0.0.1/32"] {
        let a = msg_address(1, p.parse().expect("net"));
        assert!(
            !a.attributes
                .iter()
                .any(|x| matches!(x, AddressAttribute::Broadcast(_))),
            "{p}"
        );
    }
}

#[test]
fn ipv6_address_skips_dad() {
    let net: IpNet = "fd00:1::2/64".parse().expect("net");
    let RouteNetlinkMessage::NewAddress(a) = inner(roundtrip(
        RouteNetlinkMessage::NewAddress(msg_address(4, net)),
        NLM_F_ACK,
    )) else {
        panic!("not NewAddress")
    };
    assert_eq!(a.header.family, AddressFamily::Inet6);
    assert!(a
        .attributes
        .iter()
        .any(|x| matches!(x, AddressAttribute::Flags(f) if f.contains(AddressFlags::Nodad))));
    assert_eq!(address_from(&a).map(|x| x.net), Some(net));
}

#[test]
fn default_route_goes_via_gateway_on_device() {
    let gw = IpAddr::V6("fd00:1::1".parse::<Ipv6Addr>().expect("v6"));
    let m = roundtrip(
        RouteNetlinkMessage::NewRoute(msg_default_route(gw, 12)),
        NLM_F_ACK | NLM_F_CREATE | NLM_F_REPLACE,
    );
    assert_eq!(m.header.message_type, libc::RTM_NEWROUTE);
    let RouteNetlinkMessage::NewRoute(r) = inner(m) else {
        panic!("not NewRoute")
    };
    assert_eq!(r.header.address_family, AddressFamily::Inet6);
    assert_eq!(r.header.destination_prefix_length, 0);
    assert_eq!(r.header.table, RouteHeader::RT_TABLE_MAIN);
    assert_eq!(r.header.kind, RouteType::Unicast);
    assert_eq!(
        default_route_from(&r),
        Some(DefaultRouteEntry {
            gateway: Some(gw),
            oif: Some(12)
        })
    );
}

#[test]
fn deleting_the_default_route_names_only_family_and_table() {
    let r = msg_del_default_route(false);
    assert_eq!(r.header.address_family, AddressFamily::Inet);
    assert_eq!(r.header.table, RouteHeader::RT_TABLE_MAIN);
    assert!(r.attributes.is_empty());
}

#[test]
fn non_default_routes_are_not_default_routes() {
    let mut r = msg_default_route(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)), 2);
    r.header.destination_prefix_length = 24;
    assert_eq!(default_route_from(&r), None);
    let mut r = msg_default_route(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)), 2);
    r.header.table = 255; // local table
    assert_eq!(default_route_from(&r), None);
}

#[test]
fn veth_peer_is_created_in_the_namespace_given_by_fd() {
    let m = roundtrip(
        RouteNetlinkMessage::NewLink(msg_new_veth("vswabc", "eth0", 42)),
        NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL,
    );
    assert_eq!(m.header.message_type, libc::RTM_NEWLINK);
    let RouteNetlinkMessage::NewLink(l) = inner(m) else {
        panic!("not NewLink")
    };
    assert!(l
        .attributes
        .contains(&LinkAttribute::IfName("vswabc".into())));
    let info = l
        .attributes
        .iter()
        .find_map(|a| match a {
            LinkAttribute::LinkInfo(i) => Some(i),
            _ => None,
        })
        .expect("link info");
    assert!(info.contains(&LinkInfo::Kind(InfoKind::Veth)));
    let peer = info
        .iter()
        .find_map(|i| match i {
            LinkInfo::Data(InfoData::Veth(InfoVeth::Peer(p))) => Some(p),
            _ => None,
        })
        .expect("peer");
    assert!(peer
        .attributes
        .contains(&LinkAttribute::IfName("eth0".into())));
    assert!(peer.attributes.contains(&LinkAttribute::NetNsFd(42)));
}

#[test]
fn errors_name_operation_interface_and_errno() {
    let e = NetlinkError::Kernel {
        op: "add address 172.18.0.2/16".into(),
        ifname: "br-1234".into(),
        errno: libc::EEXIST,
    };
    let s = e.to_string();
    assert!(s.contains("add address 172.18.0.2/16"), "{s}");
    assert!(s.contains("br-1234"), "{s}");
    assert!(s.contains("EEXIST"), "{s}");
    assert_eq!(e.errno(), Some(libc::EEXIST));
    for (errno, name) in [
        (libc::ENODEV, "ENODEV"),
        (libc::EPERM, "EPERM"),
        (libc::EBUSY, "EBUSY"),
        (libc::ERANGE, "ERANGE"),
    ] {
        assert!(describe_errno(errno).contains(name), "{errno}");
    }
    assert!(describe_errno(libc::E2BIG).contains("errno"));
    assert_eq!(
        NetlinkError::NoSuchLink("eth3".into()).errno(),
        Some(libc::ENODEV)
    );
}

#[test]
fn macs_parse_strictly() {
    assert_eq!(
        parse_mac("02:42:AC:11:00:02").expect("mac"),
        [2, 0x42, 0xac, 0x11, 0, 2]
    );
    for bad in [
        "",
        "02:42:ac:11:00",
        "02:42:ac:11:00:02:03",
        "02:42:ac:11:00:zz",
        "002:42:ac:11:00:02",
        "02::ac:11:00:02",
    ] {
        assert!(parse_mac(bad).is_err(), "{bad:?}");
    }
    assert_eq!(
        format_mac(&[2, 0x42, 0xac, 0x11, 0, 2]),
        "02:42:ac:11:00:02"
    );
}

#[test]
fn link_local_v6_is_recognised() {
    let a = |s: &str| Address {
        index: 1,
        net: s.parse().expect("net"),
    };
    assert!(a("fe80::1/64").is_link_local_v6());
    assert!(!a("fd00::1/64").is_link_local_v6());
    assert!(!a("169.254.1.1/16").is_link_local_v6());
}

/// Against the kernel, in a private namespace of a throwaway thread (nothing outside it is
/// touched; the namespace vanishes with the thread).
#[test]
fn kernel_roundtrip_in_a_private_namespace() {
    // SAFETY: geteuid has no preconditions.
    assert_eq!(
        unsafe { libc::geteuid() },
        0,
        "this test needs root (it makes a network namespace)"
    );
    std::thread::spawn(|| {
        // SAFETY: unshare on this dedicated thread only.
        assert_eq!(unsafe { libc::unshare(libc::CLONE_NEWNET) }, 0);
        loopback_up().expect("lo up");
        let mut nl = Netlink::open().expect("open");
        assert!(nl.link("lo").expect("lo").expect("exists").up);
        assert_eq!(nl.link("nosuch0").expect("query"), None);
        let e = nl.set_up("nosuch0", true).expect_err("missing link");
        assert!(e.to_string().contains("nosuch0"), "{e}");

        let me = std::fs::File::open("/proc/thread-self/ns/net").expect("own ns");
        nl.create_veth("nlt-a", "nlt-b", me.as_raw_fd())
            .expect("veth");
        let e = nl
            .create_veth("nlt-a", "nlt-c", me.as_raw_fd())
            .expect_err("exists");
        assert_eq!(e.errno(), Some(libc::EEXIST), "{e}");
        let mac = [2, 0, 0, 0, 0, 9];
        nl.set_link(
            "nlt-b",
            &LinkChange {
                mac: Some(mac),
                mtu: Some(1400),
                up: Some(true),
                name: None,
            },
        )
        .expect("set");
        nl.set_up("nlt-a", true).expect("up");
        let b = nl.link("nlt-b").expect("get").expect("exists");
        assert_eq!((b.mac, b.mtu, b.up), (Some(mac), Some(1400), true));
        assert_eq!(
            nl.link_by_mac(mac).expect("by mac").map(|l| l.name),
            Some("nlt-b".into())
        );

        let v4: IpNet = "10.201.7.2/24".parse().expect("net");
        let v6: IpNet = "fd00:7::2/64".parse().expect("net");
        for _ in 0..2 {
            // Twice: already present is success.
            nl.add_address("nlt-b", v4).expect("v4");
            nl.add_address("nlt-b", v6).expect("v6");
        }
        let have: Vec<IpNet> = nl
            .addresses("nlt-b")
            .expect("list")
            .into_iter()
            .map(|a| a.net)
            .collect();
        assert!(have.contains(&v4) && have.contains(&v6), "{have:?}");

        let gw4: IpAddr = "10.201.7.1".parse().expect("gw");
        let gw6: IpAddr = "fd00:7::1".parse().expect("gw");
        nl.replace_default_route(gw4, "nlt-b").expect("v4 route");
        nl.replace_default_route(gw4, "nlt-b")
            .expect("v4 route again");
        nl.replace_default_route(gw6, "nlt-b").expect("v6 route");
        let idx = b.index;
        assert_eq!(
            nl.default_routes(false).expect("routes"),
            vec![DefaultRouteEntry {
                gateway: Some(gw4),
                oif: Some(idx)
            }]
        );
        assert_eq!(nl.default_routes(true).expect("routes").len(), 1);
        nl.del_default_routes(false).expect("del");
        nl.del_default_routes(false).expect("del of none");
        nl.del_default_routes(true).expect("del");
        assert!(nl.default_routes(false).expect("routes").is_empty());
        assert!(nl.default_routes(true).expect("routes").is_empty());

        nl.del_address("nlt-b", v4).expect("del addr");
        nl.del_address("nlt-b", v4).expect("del missing addr");
        nl.set_up("nlt-b", false).expect("down");
        nl.rename("nlt-b", "nlt-r").expect("rename");
        assert!(nl.link("nlt-r").expect("get").is_some());
        // Into a second namespace and gone from this one.
        let other = std::thread::spawn(|| {
            // SAFETY: unshare on this dedicated thread only.
            assert_eq!(unsafe { libc::unshare(libc::CLONE_NEWNET) }, 0);
            std::fs::File::open("/proc/thread-self/ns/net").expect("other ns")
        })
        .join()
        .expect("other ns thread");
        nl.create_veth("nlt-m", "nlt-n", me.as_raw_fd())
            .expect("veth");
        nl.move_to_netns("nlt-n", other.as_raw_fd()).expect("move");
        assert_eq!(nl.link("nlt-n").expect("get"), None);
        assert!(nl.delete_link("nlt-m").expect("delete"));
        assert!(nl.delete_link("nlt-a").expect("delete"));
        assert!(!nl.delete_link("nlt-a").expect("delete missing"));
        assert_eq!(nl.link("nlt-r").expect("get"), None, "the peer goes too");
    })
    .join()
    .expect("namespace thread");
}
