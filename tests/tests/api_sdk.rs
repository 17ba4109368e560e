//! What a Docker SDK relies on beyond the docker CLI's calls: `null` in request bodies,
//! `IPAM.Options` null, endpoint MACs and link-local IPs, swarm answers of a node not in a
//! swarm, exec, and Docker's 404 — each checked against the exact JSON Docker returns, then
//! the real Docker SDK for Python driving the daemon.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::time::Duration;
use vswitch_tests::*;

fn post(d: &Daemon, path: &str, body: &str) -> HttpResponse {
    d.request("POST", path, Some(body))
}

/// A raw request returning the status line, headers and the body bytes up to EOF.
fn raw(d: &Daemon, head: &str, body: &str) -> (String, Vec<u8>) {
    let mut s = UnixStream::connect(&d.sock).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let req = format!(
        "{head}\r\nHost: test\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).unwrap();
    let mut all = Vec::new();
    s.read_to_end(&mut all).expect("read to EOF");
    let split = all
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("end of headers");
    (
        String::from_utf8_lossy(&all[..split]).into_owned(),
        all[split + 4..].to_vec(),
    )
}

/// Docker's multiplexed stream: (stream id, payload) frames.
fn frames(mut b: &[u8]) -> Vec<(u8, String)> {
    let mut out = Vec::new();
    while b.len() >= 8 {
        let len = u32::from_be_bytes([b[4], b[5], b[6], b[7]]) as usize;
        assert_eq!(&b[1..4], &[0, 0, 0], "frame header {:?}", &b[..8]);
        let payload = &b[8..8 + len];
        out.push((b[0], String::from_utf8_lossy(payload).into_owned()));
        b = &b[8 + len..];
    }
    assert!(b.is_empty(), "trailing bytes {b:?}");
    out
}

fn by_stream(f: &[(u8, String)], id: u8) -> String {
    f.iter()
        .filter(|(s, _)| *s == id)
        .map(|(_, p)| p.as_str())
        .collect()
}

fn create_container(d: &Daemon, name: &str, body: &str) -> String {
    let r = post(d, &format!("/v1.50/containers/create?name={name}"), body);
    assert_eq!(r.status, 201, "create {name}: {}", r.body);
    r.json()["Id"].as_str().unwrap().to_string()
}

fn link_mac(d: &Daemon, sandbox: &str, ifname: &str) -> String {
    let v = d.ip_json(sandbox, &["link", "show", "dev", ifname]);
    v[0]["address"].as_str().unwrap_or_default().to_string()
}

#[test]
fn null_fields_are_accepted_and_ipam_options_null_is_echoed() {
    require_root();
    let d = Daemon::start("sdknull");
    // What docker-py sends for IPAMPool(subnet=…) in IPAMConfig(pool_configs=[…]).
    let body = r#"{"Name":"nullnet","Driver":"bridge","Options":null,"IPAM":{"Driver":"default","Config":[{"Subnet":"10.31.0.0/24","IPRange":null,"Gateway":null,"AuxiliaryAddresses":null}],"Options":null},"CheckDuplicate":null,"Internal":null,"Labels":null,"EnableIPv6":null,"Attachable":null,"Scope":null,"Ingress":null,"ConfigFrom":null,"ConfigOnly":null}"#;
    let r = post(&d, "/v1.50/networks/create", body);
    assert_eq!(r.status, 201, "{}", r.body);
    let n = d.request("GET", "/v1.50/networks/nullnet", None).json();
    assert_eq!(
        n["IPAM"],
        serde_json::json!({"Driver":"default","Options":null,"Config":[{"Subnet":"10.31.0.0/24","Gateway":"10.31.0.1"}]})
    );
    assert_eq!(n["Options"], serde_json::json!({}));
    assert_eq!(n["Labels"], serde_json::json!({}));
    assert_eq!(n["EnableIPv6"], false);
    // No IPAM at all: Options null too; the docker CLI's `{}` stays `{}`.
    let r = post(&d, "/networks/create", r#"{"Name":"noipam"}"#);
    assert_eq!(r.status, 201, "{}", r.body);
    let n = d.request("GET", "/networks/noipam", None).json();
    assert_eq!(n["IPAM"]["Options"], serde_json::Value::Null);
    ok(d.vswitch(&["network", "create", "clinet"]));
    let n = d.request("GET", "/networks/clinet", None).json();
    assert_eq!(n["IPAM"]["Options"], serde_json::json!({}));
    // A `null` body is the zero request, as Go decodes it.
    let r = post(&d, "/networks/create", "null");
    assert_eq!(
        (r.status, r.body.as_str()),
        (400, "{\"message\":\"invalid name: name is empty\"}\n")
    );
    // null everywhere in connect and container create bodies.
    let r = post(
        &d,
        "/containers/create?name=n1",
        r#"{"Image":null,"Cmd":null,"Env":null,"ExposedPorts":null,"MacAddress":null,"HostConfig":{"NetworkMode":"nullnet","PortBindings":null,"PublishAllPorts":null},"NetworkingConfig":{"EndpointsConfig":{"nullnet":null}}}"#,
    );
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.json()["Warnings"], serde_json::json!([]));
    let r = post(
        &d,
        "/networks/noipam/connect",
        r#"{"Container":"n1","EndpointConfig":{"IPAMConfig":null,"Links":null,"Aliases":null,"MacAddress":null,"DriverOpts":null,"GwPriority":null,"DNSNames":null}}"#,
    );
    assert_eq!((r.status, r.body.as_str()), (200, ""));
    let r = post(
        &d,
        "/networks/noipam/disconnect",
        r#"{"Container":"n1","Force":null}"#,
    );
    assert_eq!(r.status, 200, "{}", r.body);
}

#[test]
fn requested_mac_is_on_the_interface_and_shown() {
    require_root();
    let d = Daemon::start("sdkmac");
    ok(d.vswitch(&["network", "create", "--subnet", "10.32.0.0/24", "macnet"]));
    ok(d.vswitch(&["network", "create", "--subnet", "10.32.1.0/24", "macnet2"]));
    // Container create: EndpointsConfig MacAddress.
    let id = create_container(
        &d,
        "m1",
        r#"{"HostConfig":{"NetworkMode":"macnet"},"NetworkingConfig":{"EndpointsConfig":{"macnet":{"MacAddress":"02:42:DE:AD:BE:01"}}}}"#,
    );
    assert_eq!(link_mac(&d, "m1", "eth0"), "02:42:de:ad:be:01");
    // network connect: EndpointConfig.MacAddress and LinkLocalIPs.
    let r = post(
        &d,
        "/v1.50/networks/macnet2/connect",
        r#"{"Container":"m1","EndpointConfig":{"IPAMConfig":{"LinkLocalIPs":["169.254.5.5"]},"MacAddress":"02:42:de:ad:be:02"}}"#,
    );
    assert_eq!((r.status, r.body.as_str()), (200, ""));
    assert_eq!(link_mac(&d, "m1", "eth1"), "02:42:de:ad:be:02");
    let c = d.request("GET", "/containers/m1/json", None).json();
    let eps = &c["NetworkSettings"]["Networks"];
    assert_eq!(eps["macnet"]["MacAddress"], "02:42:de:ad:be:01");
    assert_eq!(eps["macnet"]["IPAMConfig"], serde_json::Value::Null);
    assert_eq!(eps["macnet2"]["MacAddress"], "02:42:de:ad:be:02");
    assert_eq!(
        eps["macnet2"]["IPAMConfig"],
        serde_json::json!({"LinkLocalIPs":["169.254.5.5"]})
    );
    let n = d.request("GET", "/networks/macnet2", None).json();
    assert_eq!(n["Containers"][&id]["MacAddress"], "02:42:de:ad:be:02");
    // The link-local address is on the interface (as Docker: /16), and answers.
    assert!(
        d.ipv4_of("m1", "eth1")
            .contains(&"169.254.5.5/16".to_string()),
        "{:?}",
        d.ipv4_of("m1", "eth1")
    );
    // The switch delivers to the requested MAC: a second sandbox pings it.
    create_container(
        &d,
        "m2",
        r#"{"HostConfig":{"NetworkMode":"macnet2"},"NetworkingConfig":{"EndpointsConfig":{"macnet2":{"IPAMConfig":{"LinkLocalIPs":["169.254.5.6"]}}}}}"#,
    );
    assert!(
        d.pings("m2", "10.32.1.2"),
        "ping to the endpoint with a requested MAC"
    );
    assert!(
        d.pings("m2", "169.254.5.5"),
        "ping between link-local addresses"
    );
    let neigh = ok(d.in_sandbox("m2", &["ip", "neigh", "show", "10.32.1.2"]));
    assert!(
        neigh.contains("02:42:de:ad:be:02"),
        "neighbour entry: {neigh}"
    );

    // Docker's validation errors, exactly.
    let r = post(
        &d,
        "/networks/macnet/connect",
        r#"{"Container":"m2","EndpointConfig":{"MacAddress":"zz:42"}}"#,
    );
    assert_eq!(
        (r.status, r.body.as_str()),
        (
            400,
            "{\"message\":\"invalid endpoint settings:\\ninvalid MAC address zz:42\"}\n"
        )
    );
    let r = post(
        &d,
        "/networks/macnet/connect",
        r#"{"Container":"m2","EndpointConfig":{"IPAMConfig":{"LinkLocalIPs":["x"]}}}"#,
    );
    assert_eq!(
        (r.status, r.body.as_str()),
        (
            400,
            "{\"message\":\"invalid endpoint settings:\\ninvalid link-local IP address: x\"}\n"
        )
    );
    // One MAC, one port: a second endpoint with it on the same network is refused.
    let r = post(
        &d,
        "/networks/macnet/connect",
        r#"{"Container":"m2","EndpointConfig":{"MacAddress":"02:42:de:ad:be:01"}}"#,
    );
    assert_eq!(r.status, 403, "{}", r.body);
    assert_eq!(
        r.json()["message"],
        "MAC address 02:42:de:ad:be:01 is already in use on network macnet (container m1)"
    );
    assert_eq!(d.links_of("m2"), ["lo", "eth0"], "nothing half-made");
    // The container-wide MAC (deprecated) moves to the main endpoint, with moby's warning.
    let r = post(
        &d,
        "/containers/create?name=m3",
        r#"{"MacAddress":"02:42:de:ad:be:03","HostConfig":{"NetworkMode":"macnet"}}"#,
    );
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(
        r.json()["Warnings"],
        serde_json::json!(["The container-wide MacAddress field is now deprecated. It should be specified in EndpointsConfig instead."])
    );
    assert_eq!(link_mac(&d, "m3", "eth0"), "02:42:de:ad:be:03");
    // Survives a restart.
    let mut d = d;
    d.restart();
    assert_eq!(link_mac(&d, "m1", "eth1"), "02:42:de:ad:be:02");
}

#[test]
fn swarm_endpoints_answer_as_a_node_not_in_a_swarm() {
    require_root();
    let d = Daemon::start("sdkswarm");
    const NOT_MANAGER: &str = "{\"message\":\"This node is not a swarm manager. Use \\\"docker swarm init\\\" or \\\"docker swarm join\\\" to connect this node to swarm and try again.\"}\n";
    for (m, p) in [
        ("GET", "/v1.50/swarm"),
        ("GET", "/swarm"),
        ("POST", "/v1.44/swarm/update"),
        ("GET", "/swarm/unlockkey"),
        ("POST", "/swarm/unlock"),
        ("GET", "/v1.50/services"),
        ("GET", "/nodes"),
        ("GET", "/tasks"),
        ("GET", "/secrets"),
        ("GET", "/configs"),
    ] {
        let r = d.request(m, p, if m == "POST" { Some("{}") } else { None });
        assert_eq!((r.status, r.body.as_str()), (503, NOT_MANAGER), "{m} {p}");
        assert!(
            r.headers.contains("Content-Type: application/json\r")
                || r.headers.contains("content-type: application/json\r"),
            "{}",
            r.headers
        );
    }
    let r = d.request("POST", "/v1.50/swarm/leave?force=1", None);
    assert_eq!(
        (r.status, r.body.as_str()),
        (503, "{\"message\":\"This node is not part of a swarm\"}\n")
    );
    let info = d.request("GET", "/info", None).json();
    assert_eq!(
        info["Swarm"],
        serde_json::json!({"NodeID":"","NodeAddr":"","LocalNodeState":"inactive","ControlAvailable":false,"Error":"","RemoteManagers":null})
    );
    let ping = d.request("GET", "/_ping", None);
    assert!(ping
        .headers
        .to_ascii_lowercase()
        .contains("swarm: inactive"));
}

#[test]
fn unknown_endpoints_get_dockers_404() {
    require_root();
    let d = Daemon::start("sdk404");
    for (m, p) in [
        ("GET", "/v1.50/nope"),
        ("GET", "/images/json/extra/parts"),
        ("PUT", "/networks"),
        ("GET", "/swarm/bogus"),
        ("GET", "/exec"),
    ] {
        let r = d.request(m, p, None);
        assert_eq!(
            (r.status, r.body.as_str()),
            (404, "{\"message\":\"page not found\"}\n"),
            "{m} {p}"
        );
    }
}

#[test]
fn exec_runs_in_the_sandbox_with_dockers_stream_and_inspect() {
    require_root();
    let d = Daemon::start("sdkexec");
    ok(d.vswitch(&["network", "create", "--subnet", "10.34.0.0/24", "execnet"]));
    let cid = create_container(
        &d,
        "e1",
        r#"{"HostConfig":{"NetworkMode":"execnet"},"NetworkingConfig":{"EndpointsConfig":{"execnet":{"MacAddress":"02:42:0a:22:00:77"}}}}"#,
    );
    // Errors first.
    let r = post(&d, "/containers/nope/exec", r#"{"Cmd":["true"]}"#);
    assert_eq!(
        (r.status, r.body.as_str()),
        (404, "{\"message\":\"No such container: nope\"}\n")
    );
    let r = post(&d, "/containers/e1/exec", r#"{"Cmd":[]}"#);
    assert_eq!(
        (r.status, r.body.as_str()),
        (400, "{\"message\":\"No exec command specified\"}\n")
    );
    let r = d.request("GET", "/exec/nope/json", None);
    assert_eq!(
        (r.status, r.body.as_str()),
        (404, "{\"message\":\"No such exec instance: nope\"}\n")
    );

    let script = "cat /sys/class/net/eth0/address; echo oops >&2; exit 3";
    let r = post(
        &d,
        "/v1.50/containers/e1/exec",
        &serde_json::json!({"AttachStdout":true,"AttachStderr":true,"Cmd":["sh","-c",script]})
            .to_string(),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    let eid = r.json()["Id"].as_str().unwrap().to_string();
    let before = d.request("GET", &format!("/exec/{eid}/json"), None).json();
    assert_eq!(
        before,
        serde_json::json!({"ID":eid,"Running":false,"ExitCode":null,"ProcessConfig":{"tty":false,"entrypoint":"sh","arguments":["-c",script],"privileged":false},"OpenStdin":false,"OpenStderr":true,"OpenStdout":true,"CanRemove":false,"ContainerID":cid,"DetachKeys":"","Pid":0})
    );
    // Not upgraded: the multiplexed stream is the response body.
    let (head, body) = raw(
        &d,
        &format!("POST /v1.50/exec/{eid}/start HTTP/1.1\r\nConnection: close"),
        r#"{"Detach":false,"Tty":false}"#,
    );
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: application/vnd.docker.multiplexed-stream"),
        "{head}"
    );
    let f = frames(&body);
    assert_eq!(by_stream(&f, 1), "02:42:0a:22:00:77\n", "{f:?}");
    assert_eq!(by_stream(&f, 2), "oops\n", "{f:?}");
    let after = d.request("GET", &format!("/exec/{eid}/json"), None).json();
    assert_eq!(after["Running"], false);
    assert_eq!(after["ExitCode"], 3);
    assert!(after["Pid"].as_u64().unwrap() > 0, "{after}");
    let r = post(&d, &format!("/exec/{eid}/start"), "{}");
    assert_eq!(
        (r.status, r.json()["message"].clone()),
        (
            409,
            format!("Error: Exec command {eid} has already run").into()
        )
    );

    // Upgraded, as the SDKs ask: 101, then frames until the daemon closes.
    let r = post(
        &d,
        "/containers/e1/exec",
        r#"{"AttachStdout":true,"AttachStderr":false,"Cmd":["sh","-c","echo one; echo two >&2; echo three"]}"#,
    );
    let eid2 = r.json()["Id"].as_str().unwrap().to_string();
    let (head, body) = raw(
        &d,
        &format!("POST /exec/{eid2}/start HTTP/1.1\r\nConnection: Upgrade\r\nUpgrade: tcp"),
        "{}",
    );
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    let lower = head.to_ascii_lowercase();
    assert!(lower.contains("upgrade: tcp"), "{head}");
    assert!(lower.contains("application/vnd.docker.multiplexed-stream"));
    let f = frames(&body);
    assert_eq!(by_stream(&f, 1), "one\nthree\n");
    assert_eq!(by_stream(&f, 2), "", "stderr was not attached");
    let v = d.request("GET", &format!("/exec/{eid2}/json"), None).json();
    assert_eq!(v["ExitCode"], 0);

    // TTY: raw output, no frames.
    let r = post(
        &d,
        "/containers/e1/exec",
        r#"{"AttachStdout":true,"Tty":true,"Cmd":["echo","raw"]}"#,
    );
    let eid3 = r.json()["Id"].as_str().unwrap().to_string();
    let (head, body) = raw(
        &d,
        &format!("POST /exec/{eid3}/start HTTP/1.1\r\nConnection: close"),
        r#"{"Tty":true}"#,
    );
    assert!(head
        .to_ascii_lowercase()
        .contains("application/vnd.docker.raw-stream"));
    assert_eq!(body, b"raw\n");

    // Detached: returns at once; the exit code shows up in inspect.
    let r = post(
        &d,
        "/containers/e1/exec",
        r#"{"Cmd":["sh","-c","sleep 0.3; exit 7"]}"#,
    );
    let eid4 = r.json()["Id"].as_str().unwrap().to_string();
    let r = post(&d, &format!("/exec/{eid4}/start"), r#"{"Detach":true}"#);
    assert_eq!((r.status, r.body.as_str()), (200, ""));
    let v = d.request("GET", &format!("/exec/{eid4}/json"), None).json();
    assert_eq!(v["Running"], true, "{v}");
    assert!(wait_until(Duration::from_secs(10), || {
        d.request("GET", &format!("/exec/{eid4}/json"), None).json()["ExitCode"] == 7
    }));

    // A command that does not exist: Docker's 127 and a message on stderr.
    let r = post(
        &d,
        "/containers/e1/exec",
        r#"{"AttachStdout":true,"AttachStderr":true,"Cmd":["/no/such/binary"]}"#,
    );
    let eid5 = r.json()["Id"].as_str().unwrap().to_string();
    let (_, body) = raw(
        &d,
        &format!("POST /exec/{eid5}/start HTTP/1.1\r\nConnection: close"),
        "{}",
    );
    assert!(by_stream(&frames(&body), 2).contains("exec failed"));
    let v = d.request("GET", &format!("/exec/{eid5}/json"), None).json();
    assert_eq!(v["ExitCode"], 127);
}

/// The real Docker SDK for Python (docker-py) against the daemon.
#[test]
fn docker_python_sdk_works() {
    require_root();
    let d = Daemon::start("sdkpy");
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("sdk/docker_sdk.py");
    let out = run(std::process::Command::new("python3")
        .arg(&script)
        .arg(&d.sock)
        .env("PYTHONDONTWRITEBYTECODE", "1"));
    let text = ok(out);
    let seen: serde_json::Value = serde_json::from_str(text.trim()).expect("script output");
    assert_eq!(seen["server_api"], "1.50");
    assert_eq!(seen["mac"], "02:42:0a:21:00:99");
    assert_eq!(seen["exec_mac"], "02:42:0a:21:00:99");
    assert_eq!(seen["detached_exit"], 9);
    assert_eq!(seen["swarm"][0], 503);
    // The script removed what it made.
    let nets = d.request("GET", "/networks", None).json();
    assert!(nets
        .as_array()
        .unwrap()
        .iter()
        .all(|n| !n["Name"].as_str().unwrap().starts_with("sdknet")));
}
