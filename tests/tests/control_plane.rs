//! Control plane: networks through the `vswitch` CLI, the unmodified docker CLI and the raw
//! API, against a daemon running in a namespace made by each test.

use vswitch_tests::*;

fn create_seed_networks(d: &Daemon) -> (String, String, String) {
    let my = ok(d.vswitch(&["network", "create", "mynetwork"]))
        .trim()
        .to_string();
    let tb1 = ok(d.vswitch(&[
        "network",
        "create",
        "--driver",
        "bridge",
        "--subnet=10.15.20.0/24",
        "--gateway=10.15.20.1",
        "--aux-address",
        "1=10.15.20.2",
        "--aux-address",
        "2=10.15.20.3",
        "--opt",
        "com.docker.network.bridge.host_binding_ipv4=10.10.10.101",
        "--opt",
        "com.docker.network.bridge.name=linuxbridge1",
        "testbridge1",
    ]))
    .trim()
    .to_string();
    let tb2 = d.vswitch(&[
        "network",
        "create",
        "--subnet=192.168.50.0/24",
        "--ip-range=192.168.50.128/25",
        "-o",
        "com.docker.network.bridge.enable_ip_masquarade=false",
        "testbridge2",
    ]);
    // The misspelled option is kept verbatim, with a warning naming the right key.
    assert!(
        stderr(&tb2).contains("com.docker.network.bridge.enable_ip_masquerade"),
        "no typo warning: {}",
        stderr(&tb2)
    );
    let tb2 = ok(tb2).trim().to_string();
    for id in [&my, &tb1, &tb2] {
        assert_eq!(id.len(), 64, "id {id:?}");
        assert!(id.bytes().all(|b| b.is_ascii_hexdigit()));
    }
    (my, tb1, tb2)
}

fn inspect(d: &Daemon, name: &str) -> serde_json::Value {
    let out = ok(d.vswitch(&["network", "inspect", name]));
    let v: serde_json::Value = serde_json::from_str(&out).expect("inspect JSON");
    v[0].clone()
}

#[test]
fn seed_examples_give_seed_results() {
    let d = Daemon::start("ctl");
    let (my, tb1, _tb2) = create_seed_networks(&d);

    let n = inspect(&d, "mynetwork");
    assert_eq!(n["Id"], my.as_str());
    assert_eq!(n["Driver"], "bridge");
    assert_eq!(n["Scope"], "local");
    assert_eq!(
        n["IPAM"],
        serde_json::json!({"Driver":"default","Options":{},"Config":[{"Subnet":"172.18.0.0/16","Gateway":"172.18.0.1"}]})
    );
    assert!(n["Created"].as_str().unwrap().ends_with('Z'));

    let t1 = inspect(&d, "testbridge1");
    assert_eq!(t1["Id"], tb1.as_str());
    assert_eq!(
        t1["IPAM"]["Config"],
        serde_json::json!([{"Subnet":"10.15.20.0/24","Gateway":"10.15.20.1","AuxiliaryAddresses":{"1":"10.15.20.2","2":"10.15.20.3"}}])
    );
    assert_eq!(
        t1["Options"],
        serde_json::json!({"com.docker.network.bridge.host_binding_ipv4":"10.10.10.101","com.docker.network.bridge.name":"linuxbridge1"})
    );
    // Key order as moby's Go struct: inspect prints the daemon's bytes verbatim.
    let keys: Vec<&String> = t1.as_object().unwrap().keys().collect();
    let raw = ok(d.vswitch(&["network", "inspect", "testbridge1"]));
    let mut last = 0;
    for k in [
        "Name",
        "Id",
        "Created",
        "Scope",
        "Driver",
        "EnableIPv4",
        "EnableIPv6",
        "IPAM",
        "Internal",
        "Attachable",
        "Ingress",
        "ConfigFrom",
        "ConfigOnly",
        "Containers",
        "Options",
        "Labels",
    ] {
        // Top-level keys only (8 spaces of indentation: inside the `[`).
        let pos = raw
            .find(&format!("\n        \"{k}\":"))
            .unwrap_or_else(|| panic!("{k} missing"));
        assert!(pos >= last, "{k} out of order in {raw}");
        last = pos;
    }
    assert!(!keys.is_empty());

    let t2 = inspect(&d, "testbridge2");
    assert_eq!(
        t2["IPAM"]["Config"],
        serde_json::json!([{"Subnet":"192.168.50.0/24","IPRange":"192.168.50.128/25","Gateway":"192.168.50.128"}])
    );
    assert_eq!(
        t2["Options"],
        serde_json::json!({"com.docker.network.bridge.enable_ip_masquarade":"false"})
    );

    let b = inspect(&d, "bridge");
    assert_eq!(
        b["Options"]["com.docker.network.bridge.default_bridge"],
        "true"
    );
    assert_eq!(b["Options"]["com.docker.network.bridge.name"], "docker0");
    assert_eq!(b["IPAM"]["Options"], serde_json::Value::Null);
    assert_eq!(b["IPAM"]["Config"][0]["Subnet"], "172.17.0.0/16");
    assert_eq!(inspect(&d, "none")["Driver"], "null");
    assert_eq!(
        inspect(&d, "host")["IPAM"]["Config"],
        serde_json::Value::Null
    );

    // ls -f type=custom lists only user networks.
    let custom = ok(d.vswitch(&[
        "network",
        "ls",
        "-f",
        "type=custom",
        "--format",
        "{{.Name}}",
    ]));
    assert_eq!(custom, "mynetwork\ntestbridge1\ntestbridge2\n");
    let builtin = ok(d.vswitch(&[
        "network",
        "ls",
        "-f",
        "type=builtin",
        "--format",
        "{{.Name}}",
    ]));
    assert_eq!(builtin, "bridge\nhost\nnone\n");
    // ls -f id=<part> filters by (a substring of) the id.
    let part = &tb1[3..9];
    let by_id = ok(d.vswitch(&[
        "network",
        "ls",
        "-q",
        "--no-trunc",
        "-f",
        &format!("id={part}"),
    ]));
    assert!(by_id.lines().any(|l| l == tb1), "{by_id}");
    assert!(by_id.lines().all(|l| l.contains(part)), "{by_id}");
    // Lookup by unique id prefix.
    assert_eq!(inspect(&d, &tb1[..8])["Name"], "testbridge1");
}

#[test]
fn docker_cli_prints_what_vswitch_prints() {
    let d = Daemon::start("dkr");
    create_seed_networks(&d);
    let via_docker = ok(d.docker(&[
        "network",
        "create",
        "--label",
        "team=a",
        "--internal",
        "-o",
        "com.docker.network.bridge.name=mybridge1",
        "fromdocker",
    ]));
    assert_eq!(via_docker.trim().len(), 64);
    for args in [
        vec!["network", "ls"],
        vec!["network", "ls", "--no-trunc"],
        vec!["network", "ls", "-q"],
        vec!["network", "ls", "-f", "type=custom"],
        vec!["network", "ls", "-f", "label=team=a"],
        vec![
            "network",
            "ls",
            "--format",
            "{{.Name}} {{.Driver}} {{.Internal}}",
        ],
        vec!["network", "inspect", "testbridge1", "fromdocker", "bridge"],
        vec![
            "network",
            "inspect",
            "--format",
            "{{.Name}} {{.IPAM.Driver}}",
            "mynetwork",
        ],
    ] {
        let a = ok(d.docker(&args));
        let b = ok(d.vswitch(&args));
        assert_eq!(a, b, "output differs for {args:?}");
    }
    // Errors read the same too.
    let a = d.docker(&["network", "inspect", "nope"]);
    let b = d.vswitch(&["network", "inspect", "nope"]);
    assert_eq!(stdout(&a), stdout(&b));
    assert_eq!(stderr(&a), stderr(&b));
    assert_eq!(a.status.code(), b.status.code());

    // rm through docker, prune through vswitch and docker.
    assert_eq!(
        ok(d.docker(&["network", "rm", "fromdocker"])),
        "fromdocker\n"
    );
    let e = fails(d.docker(&["network", "rm", "bridge"]));
    assert!(
        e.contains("bridge is a pre-defined network and cannot be removed"),
        "{e}"
    );
    // Docker's order of deleted networks is unspecified: compare as a set.
    let pruned = ok(d.docker(&["network", "prune", "-f"]));
    assert!(
        pruned.starts_with("Deleted Networks:\n") && pruned.ends_with("\n\n"),
        "{pruned:?}"
    );
    let mut names: Vec<&str> = pruned.lines().skip(1).filter(|l| !l.is_empty()).collect();
    names.sort();
    assert_eq!(names, ["mynetwork", "testbridge1", "testbridge2"]);
    assert_eq!(ok(d.vswitch(&["network", "prune", "-f"])), "");
    let left = ok(d.docker(&["network", "ls", "--format", "{{.Name}}"]));
    assert_eq!(left, "bridge\nhost\nnone\n");
}

#[test]
fn state_survives_sigkill() {
    let mut d = Daemon::start("rst");
    create_seed_networks(&d);
    ok(d.vswitch(&[
        "network",
        "create",
        "--ipv6",
        "--subnet",
        "fd00:1::/64",
        "--label",
        "a=b",
        "v6net",
    ]));
    let ls = ok(d.vswitch(&["network", "ls", "--no-trunc"]));
    let all = ok(d.vswitch(&[
        "network",
        "inspect",
        "bridge",
        "host",
        "none",
        "mynetwork",
        "testbridge1",
        "testbridge2",
        "v6net",
    ]));
    d.kill(libc::SIGKILL);
    d.restart();
    assert_eq!(ok(d.vswitch(&["network", "ls", "--no-trunc"])), ls);
    assert_eq!(
        ok(d.vswitch(&[
            "network",
            "inspect",
            "bridge",
            "host",
            "none",
            "mynetwork",
            "testbridge1",
            "testbridge2",
            "v6net",
        ])),
        all
    );
    // Allocation state was replayed: mynetwork holds 172.18 and v6net (IPv4 too) 172.19.
    ok(d.vswitch(&["network", "create", "after"]));
    assert_eq!(
        inspect(&d, "after")["IPAM"]["Config"][0]["Subnet"],
        "172.20.0.0/16"
    );
}

#[test]
fn bad_input_is_refused_and_changes_nothing() {
    let d = Daemon::start("bad");
    create_seed_networks(&d);
    let before = ok(d.vswitch(&["network", "ls", "--no-trunc"]));
    let cases: &[(&[&str], &str)] = &[
        (
            &[
                "network",
                "create",
                "--subnet",
                "10.15.20.128/25",
                "overlap",
            ],
            "Pool overlaps with other one on this address space",
        ),
        (
            &[
                "network",
                "create",
                "--subnet",
                "10.20.0.0/24",
                "--gateway",
                "10.20.1.1",
                "gwout",
            ],
            "no matching subnet for gateway 10.20.1.1",
        ),
        (
            &[
                "network",
                "create",
                "--subnet",
                "10.20.0.0/24",
                "--ip-range",
                "10.21.0.0/25",
                "rangeout",
            ],
            "no matching subnet for range 10.21.0.0/25",
        ),
        (
            &[
                "network",
                "create",
                "--subnet",
                "10.20.0.0/24",
                "--aux-address",
                "a=10.22.0.3",
                "auxout",
            ],
            "no matching subnet for aux-address 10.22.0.3",
        ),
        (
            &["network", "create", "mynetwork"],
            "network with name mynetwork already exists",
        ),
        (
            &["network", "create", "--subnet", "10.300.0.0/24", "badcidr"],
            "invalid subnet 10.300.0.0/24: invalid CIDR block notation",
        ),
        (
            &["network", "create", "-d", "nosuch", "baddriver"],
            "plugin \"nosuch\" not found",
        ),
        (
            &["network", "create", "-d", "host", "host2"],
            "only one instance of \"host\" network is allowed",
        ),
        (
            &["network", "create", "--ipam-driver", "dhcp", "badipam"],
            "invalid ipam driver: \"dhcp\"",
        ),
        (
            &["network", "rm", "bridge"],
            "bridge is a pre-defined network and cannot be removed",
        ),
        (
            &["network", "rm", "none"],
            "none is a pre-defined network and cannot be removed",
        ),
        (&["network", "rm", "nope"], "network nope not found"),
        (
            &[
                "network",
                "create",
                "-o",
                "com.docker.network.bridge.enable_icc=maybe",
                "badopt",
            ],
            "com.docker.network.bridge.enable_icc",
        ),
    ];
    for (args, msg) in cases {
        for out in [d.vswitch(args), d.docker(args)] {
            let e = fails(out);
            assert!(e.contains(msg), "{args:?}: expected {msg:?} in {e:?}");
        }
    }
    // The daemon's own checks (the docker CLI does not pre-validate these).
    let r = d.request(
        "POST",
        "/v1.50/networks/create",
        Some(
            r#"{"Name":"gw2","IPAM":{"Config":[{"Subnet":"10.30.0.0/24","Gateway":"10.31.0.1"}]}}"#,
        ),
    );
    assert_eq!(r.status, 400);
    assert_eq!(
        r.json()["message"],
        "invalid network config:\ninvalid gateway 10.31.0.1: parent subnet 10.30.0.0/24 doesn't contain this address"
    );
    assert!(
        r.headers.contains("Content-Type: application/json\r")
            || r.headers.contains("content-type: application/json\r")
    );
    let r = d.request(
        "POST",
        "/v1.50/networks/create",
        Some(r#"{"Name":"r2","IPAM":{"Config":[{"Subnet":"10.30.0.0/24","IPRange":"10.32.0.0/24"}]}}"#),
    );
    assert_eq!(r.status, 400);
    assert!(r.json()["message"]
        .as_str()
        .unwrap()
        .contains("doesn't contain ip-range"));
    let r = d.request(
        "POST",
        "/v1.50/networks/create",
        Some(r#"{"Name":"a2","IPAM":{"Config":[{"Subnet":"10.30.0.0/24","AuxiliaryAddresses":{"x":"10.33.0.1"}}]}}"#),
    );
    assert_eq!(r.status, 400);
    assert!(r.json()["message"]
        .as_str()
        .unwrap()
        .contains("invalid auxiliary address x"));
    // Malformed JSON body.
    let r = d.request(
        "POST",
        "/v1.50/networks/create",
        Some(r#"{"Name": "broken""#),
    );
    assert_eq!(r.status, 400);
    assert!(r.json()["message"]
        .as_str()
        .unwrap()
        .starts_with("invalid JSON"));
    // Unknown route.
    let r = d.request("GET", "/v1.50/nothing", None);
    assert_eq!(r.status, 404);
    assert_eq!(r.json()["message"], "page not found");

    assert_eq!(ok(d.vswitch(&["network", "ls", "--no-trunc"])), before);
}

#[test]
fn rm_refuses_network_with_endpoints() {
    let d = Daemon::start("eps");
    ok(d.vswitch(&["network", "create", "mynetwork"]));
    let r = d.request(
        "POST",
        "/v1.50/containers/create?name=web1",
        Some(r#"{"HostConfig":{"NetworkMode":"mynetwork"}}"#),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    let e = fails(d.docker(&["network", "rm", "mynetwork"]));
    assert!(
        e.contains("error while removing network: network mynetwork has active endpoints (name:\"web1\" id:\""),
        "{e}"
    );
    // Inspect lists the container with its address and MAC.
    let n = inspect(&d, "mynetwork");
    let c = n["Containers"].as_object().unwrap();
    assert_eq!(c.len(), 1);
    let ep = c.values().next().unwrap();
    assert_eq!(ep["Name"], "web1");
    assert_eq!(ep["IPv4Address"], "172.18.0.2/16");
    assert_eq!(ep["MacAddress"], "02:42:ac:12:00:02");
    // connect / disconnect through the docker CLI resolve the container by name.
    ok(d.docker(&["network", "connect", "bridge", "web1"]));
    let e = fails(d.docker(&["network", "connect", "bridge", "web1"]));
    assert!(
        e.contains("endpoint with name web1 already exists in network bridge"),
        "{e}"
    );
    let e = fails(d.docker(&["network", "connect", "bridge", "ghost"]));
    assert!(e.contains("No such container: ghost"), "{e}");
    ok(d.docker(&["network", "disconnect", "mynetwork", "web1"]));
    ok(d.docker(&["network", "rm", "mynetwork"]));
    let r = d.request("DELETE", "/v1.50/containers/web1", None);
    assert_eq!(r.status, 204);
}

#[test]
fn ping_and_version_negotiation() {
    let d = Daemon::start("png");
    let r = d.request("HEAD", "/_ping", None);
    assert_eq!(r.status, 200);
    assert!(r.headers.to_ascii_lowercase().contains("api-version: 1.50"));
    assert_eq!(r.body, "");
    let r = d.request("GET", "/v1.51/networks", None);
    assert_eq!(r.status, 400);
    assert_eq!(
        r.json()["message"],
        "client version 1.51 is too new. Maximum supported API version is 1.50"
    );
    let r = d.request("GET", "/v1.44/networks", None);
    assert_eq!(r.status, 200);
    assert_eq!(r.json().as_array().unwrap().len(), 3);
    let v = ok(d.docker(&["version", "--format", "{{.Server.APIVersion}}"]));
    assert_eq!(v.trim(), "1.50");
}

#[test]
fn cli_says_clearly_when_daemon_is_down() {
    let dir = TempDir::new("nod");
    let sock = dir.0.join("none.sock");
    let out = run(std::process::Command::new(bin("vswitch"))
        .arg("-H")
        .arg(format!("unix://{}", sock.display()))
        .args(["network", "ls"]));
    let e = fails(out);
    assert!(e.contains("Is the vswitch daemon running?"), "{e}");
}
