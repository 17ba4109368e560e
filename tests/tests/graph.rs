//! `vswitch network graph`: the JSON lists what `inspect` lists; DOT always, SVG through
//! graphviz when it is installed (scripts/setup.sh installs it).

use std::collections::BTreeSet;
use std::time::Duration;
use vswitch_tests::*;

fn graph(d: &Daemon, args: &[&str], path_env: Option<&str>) -> String {
    let mut cmd = std::process::Command::new(bin("vswitch"));
    cmd.arg("-H")
        .arg(d.host_url())
        .args(["network", "graph"])
        .args(args);
    if let Some(p) = path_env {
        cmd.env("PATH", p);
    }
    ok(run(&mut cmd))
}

type Member = (String, String, String, String, String, String);

#[test]
fn graph_lists_what_inspect_lists_and_draws_it() {
    require_root();
    let d = Daemon::start("graph");
    ok(d.vswitch(&["network", "create", "--subnet", "10.41.0.0/24", "front"]));
    ok(d.vswitch(&[
        "network",
        "create",
        "--internal",
        "--subnet",
        "10.41.1.0/24",
        "back",
    ]));
    d.run_sandbox("web1", &["--net", "front", "-p", "8080:80"]);
    d.run_sandbox("db1", &["--net", "back"]);
    ok(d.vswitch(&["network", "connect", "back", "web1"]));
    d.run_sandbox("plain", &[]);

    let g: serde_json::Value =
        serde_json::from_str(&graph(&d, &["--format", "json"], None)).expect("graph JSON");
    let list = d.request("GET", "/networks", None).json();
    let ids: BTreeSet<String> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["Id"].as_str().unwrap().to_string())
        .collect();
    let gnets = g["Networks"].as_array().unwrap();
    let gids: BTreeSet<String> = gnets
        .iter()
        .map(|n| n["Id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(gids, ids, "the graph has every network, and only those");
    for id in &ids {
        let i = d.request("GET", &format!("/networks/{id}"), None).json();
        let n = gnets.iter().find(|n| n["Id"] == id.as_str()).unwrap();
        assert_eq!(n["Name"], i["Name"]);
        assert_eq!(n["Driver"], i["Driver"]);
        assert_eq!(n["Internal"], i["Internal"]);
        let subnets: Vec<serde_json::Value> = i["IPAM"]["Config"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|c| c["Subnet"].clone())
            .collect();
        assert_eq!(
            n["Subnets"],
            serde_json::Value::Array(subnets),
            "{}",
            i["Name"]
        );
        let from_inspect: BTreeSet<Member> = i["Containers"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(cid, c)| {
                (
                    cid.clone(),
                    c["Name"].as_str().unwrap().into(),
                    c["EndpointID"].as_str().unwrap().into(),
                    c["MacAddress"].as_str().unwrap().into(),
                    c["IPv4Address"].as_str().unwrap().into(),
                    c["IPv6Address"].as_str().unwrap().into(),
                )
            })
            .collect();
        let from_graph: BTreeSet<Member> = n["Containers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| {
                (
                    c["Id"].as_str().unwrap().into(),
                    c["Name"].as_str().unwrap().into(),
                    c["EndpointID"].as_str().unwrap().into(),
                    c["MacAddress"].as_str().unwrap().into(),
                    c["IPv4Address"].as_str().unwrap().into(),
                    c["IPv6Address"].as_str().unwrap().into(),
                )
            })
            .collect();
        assert_eq!(from_graph, from_inspect, "containers of {}", i["Name"]);
    }
    // The host side: bridge interfaces with the gateway, NAT only where masquerading.
    let front = gnets.iter().find(|n| n["Name"] == "front").unwrap();
    assert_eq!(
        front["HostInterface"]["Addresses"],
        serde_json::json!(["10.41.0.1/24"])
    );
    assert_eq!(front["Masquerade"], true);
    let back = gnets.iter().find(|n| n["Name"] == "back").unwrap();
    assert_eq!(back["Masquerade"], false, "internal networks have no NAT");
    let docker0 = gnets.iter().find(|n| n["Name"] == "bridge").unwrap();
    assert_eq!(docker0["HostInterface"]["Name"], "docker0");
    // What `ip` sees on the host side matches.
    let addrs = ok(d.ns.exec(&["ip", "-o", "addr", "show", "dev", "docker0"]));
    assert!(addrs.contains("172.17.0.1/16"), "{addrs}");
    // Containers with interfaces and published ports; the same set as `ps`.
    let gctr = g["Containers"].as_array().unwrap();
    let ps: BTreeSet<String> = d
        .request("GET", "/containers/json", None)
        .json()
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["Id"].as_str().unwrap().to_string())
        .collect();
    let gps: BTreeSet<String> = gctr
        .iter()
        .map(|c| c["Id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(gps, ps);
    let web1 = gctr.iter().find(|c| c["Name"] == "web1").unwrap();
    assert_eq!(
        web1["Interfaces"],
        serde_json::json!([{"Name":"eth0","Network":"front"},{"Name":"eth1","Network":"back"}])
    );
    assert_eq!(web1["Ports"][0]["HostPort"], 8080);
    assert_eq!(
        ok(d.vswitch(&["port", "web1"])).trim(),
        "80/tcp -> 0.0.0.0:8080"
    );

    // DOT always; graphviz accepts it.
    let dot = graph(&d, &["--format", "dot"], None);
    assert!(dot.starts_with("graph vswitch {"), "{dot}");
    for name in ["web1", "db1", "plain", "front", "back", "docker0", "NAT"] {
        assert!(dot.contains(name), "{name} missing from:\n{dot}");
    }
    // Without graphviz on PATH the default is DOT ...
    let no_dot = graph(&d, &[], Some("/nonexistent"));
    assert!(no_dot.starts_with("graph vswitch {"));
    // ... with it, SVG (graphviz is a test dependency, see scripts/setup.sh).
    assert!(
        vswitch::cli::network::graph::dot_installed(),
        "graphviz `dot` is not installed (scripts/setup.sh installs it)"
    );
    for svg in [graph(&d, &["--format", "svg"], None), graph(&d, &[], None)] {
        assert!(
            svg.contains("<svg"),
            "not SVG: {}",
            &svg[..svg.len().min(200)]
        );
        for name in ["web1", "db1", "front", "10.41.0.2/24"] {
            assert!(svg.contains(name), "{name} not drawn");
        }
    }
}

/// Two hosts on one underlay link, etcd on the first: the graph of host A shows host B's
/// container behind B's VTEP, the network's VNI, and both VTEPs.
#[test]
fn overlay_graph_shows_remote_endpoints_and_vteps() {
    require_root();
    const A: &str = "10.50.0.1";
    const B: &str = "10.50.0.2";
    let na = Netns::new("grova");
    let nb = Netns::new("grovb");
    na.link_to(&nb, "u0", &format!("{A}/24"), "u0", &format!("{B}/24"));
    let etcd = Etcd::start(&na, A);
    let store = etcd.store_url();
    let start = |ns: Netns, ip: &str| {
        Daemon::start_in(ns, &["--cluster-store", &store, "--cluster-advertise", ip])
    };
    let ha = start(na, A);
    let hb = start(nb, B);
    ok(ha.vswitch(&[
        "network",
        "create",
        "-d",
        "overlay",
        "--subnet",
        "10.51.0.0/24",
        "ov",
    ]));
    ha.run_sandbox("a1", &["--net", "ov"]);
    hb.run_sandbox("b1", &["--net", "ov"]);
    let b_cidr = hb.ipv4_of("b1", "eth0")[0].clone();
    let b_ip = b_cidr.split('/').next().unwrap().to_string();
    assert!(
        wait_until(Duration::from_secs(20), || ha.pings("a1", &b_ip)),
        "a1 cannot reach b1 over the overlay"
    );
    let g: serde_json::Value =
        serde_json::from_str(&graph(&ha, &["--format", "json"], None)).unwrap();
    let ov = g["Networks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["Name"] == "ov")
        .expect("overlay network in the graph");
    let inspect = ha.request("GET", "/networks/ov", None).json();
    assert_eq!(ov["Id"], inspect["Id"]);
    assert_eq!(ov["Driver"], "overlay");
    assert_eq!(
        ov["Vni"].as_u64().map(|v| v.to_string()),
        inspect["Options"]["com.docker.network.driver.overlay.vxlanid_list"]
            .as_str()
            .map(str::to_string)
    );
    let local: Vec<&str> = ov["Containers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["Name"].as_str().unwrap())
        .collect();
    assert_eq!(local, ["a1"]);
    let b_inspect = hb.request("GET", "/containers/b1/json", None).json();
    let b_ep = &b_inspect["NetworkSettings"]["Networks"]["ov"];
    let remote = ov["Remote"].as_array().unwrap();
    assert_eq!(remote.len(), 1, "{remote:?}");
    assert_eq!(remote[0]["Name"], "b1");
    assert_eq!(remote[0]["Vtep"], B);
    assert_eq!(remote[0]["IPv4Address"], b_cidr.as_str());
    assert_eq!(remote[0]["MacAddress"], b_ep["MacAddress"]);
    assert_eq!(remote[0]["EndpointID"], b_ep["EndpointID"]);
    assert_eq!(
        g["Vteps"],
        serde_json::json!([{"Address": A, "Local": true}, {"Address": B, "Local": false}])
    );
    let dot = graph(&ha, &["--format", "dot"], None);
    assert!(
        dot.contains(&format!("\"vtep:{A}\" -- \"vtep:{B}\"")),
        "{dot}"
    );
    drop((ha, hb));
    drop(etcd);
}
