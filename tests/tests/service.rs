//! Running as a service: `vswitchd --version`, the sd_notify readiness handshake a
//! `Type=notify` unit relies on, and the datapath and cluster-store facts of `/version` and
//! `/info`.

use std::os::unix::net::UnixDatagram;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use vswitch_tests::*;

/// Bound on the daemon becoming ready or stopping.
const NOTIFY_TIMEOUT: Duration = Duration::from_secs(30);

#[test]
fn version_flag() {
    let out = ok(run(Command::new(bin("vswitchd")).arg("--version")));
    assert_eq!(out, format!("vswitchd {}\n", env!("CARGO_PKG_VERSION")));
}

#[test]
fn unit_file_is_type_notify_with_restart() {
    let unit = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../contrib/systemd/vswitchd.service"),
    )
    .expect("contrib/systemd/vswitchd.service");
    let keys: Vec<(&str, &str)> = unit
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split_once('='))
        .collect();
    let get = |k: &str| keys.iter().find(|(kk, _)| *kk == k).map(|(_, v)| *v);
    assert_eq!(get("Type"), Some("notify"));
    assert_eq!(get("Restart"), Some("on-failure"));
    assert_eq!(get("KillMode"), Some("process"));
    let exec = get("ExecStart").expect("ExecStart");
    assert!(exec.starts_with("/usr/local/bin/vswitchd "), "{exec}");
    // The flags the unit passes are ones vswitchd takes.
    let args: Vec<&str> = exec.split_whitespace().skip(1).collect();
    let help = ok(run(Command::new(bin("vswitchd")).arg("--help")));
    for a in args.iter().filter(|a| a.starts_with('-')) {
        assert!(help.contains(a), "vswitchd --help does not list {a}");
    }
}

fn recv_state(sock: &UnixDatagram) -> String {
    let mut buf = [0u8; 4096];
    let n = sock
        .recv(&mut buf)
        .expect("notify datagram within the timeout");
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

#[test]
fn notify_ready_after_listening_and_stopping_on_term() {
    require_root();
    let ns = Netns::new("svc");
    let dir = TempDir::new("svc");
    let notify_path = dir.0.join("notify.sock");
    let notify = UnixDatagram::bind(&notify_path).expect("bind notify socket");
    notify.set_read_timeout(Some(NOTIFY_TIMEOUT)).unwrap();
    let sock = dir.0.join("api.sock");
    let log = std::fs::File::create(dir.0.join("log")).unwrap();
    let mut cmd = Command::new(bin("vswitchd"));
    in_netns(&mut cmd, &ns.name);
    cmd.arg("-H")
        .arg(format!("unix://{}", sock.display()))
        .arg("--data-root")
        .arg(dir.0.join("data"))
        .arg("--exec-root")
        .arg(dir.0.join("exec"))
        .args(["--workers", "2"])
        .env("NOTIFY_SOCKET", &notify_path)
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log);
    let child = Bg::spawn(cmd);
    let pid = child.0.id();

    let ready = recv_state(&notify);
    assert!(ready.starts_with("READY=1\n"), "{ready:?}");
    assert!(ready.contains(&format!("MAINPID={pid}\n")), "{ready:?}");
    assert!(ready.contains("STATUS=API listening on "), "{ready:?}");
    // Ready means listening: the first request needs no retry.
    let ping = http(&sock, "GET", "/_ping", None).expect("API answers once READY=1 is sent");
    assert_eq!((ping.status, ping.body.as_str()), (200, "OK"));

    // The datapath facts.
    let info = http(&sock, "GET", "/info", None).unwrap().json();
    let dp = &info["Datapath"];
    assert_eq!(dp["Workers"], 2, "{info}");
    assert_eq!(dp["PortKinds"], serde_json::json!(["tap", "veth"]));
    let offloads: Vec<&str> = dp["Offloads"]
        .as_array()
        .expect("offloads known once docker0 exists")
        .iter()
        .filter_map(|v| v.as_str())
        .collect();
    assert!(offloads.contains(&"csum"), "{offloads:?}");
    assert_eq!(dp["Ports"], serde_json::json!({"tap": 0, "veth": 0}));
    assert_eq!(
        info["ClusterStoreStatus"],
        serde_json::json!({"State": "disabled"})
    );
    let version = http(&sock, "GET", "/version", None).unwrap().json();
    // Details is a map of strings (the docker CLI's type): the facts as JSON text.
    let details: serde_json::Value = serde_json::from_str(
        version["Components"][0]["Details"]["Datapath"]
            .as_str()
            .unwrap_or("null"),
    )
    .unwrap();
    assert_eq!(details["Workers"], 2);
    // A sandbox's port is counted, and processes the daemon starts do not inherit
    // NOTIFY_SOCKET (systemd would take their messages for the daemon's).
    let r = http(
        &sock,
        "POST",
        "/containers/create?name=s1",
        Some(r#"{"HostConfig":{"NetworkMode":"bridge"}}"#),
    )
    .unwrap();
    assert_eq!(r.status, 201, "{}", r.body);
    let info = http(&sock, "GET", "/info", None).unwrap().json();
    assert_eq!(info["Datapath"]["Ports"]["tap"], 1);
    let e = http(
        &sock,
        "POST",
        "/containers/s1/exec",
        Some(r#"{"AttachStdout":true,"Cmd":["sh","-c","echo ${NOTIFY_SOCKET:-unset}"]}"#),
    )
    .unwrap()
    .json();
    let out = http(
        &sock,
        "POST",
        &format!("/exec/{}/start", e["Id"].as_str().unwrap()),
        Some("{}"),
    )
    .unwrap();
    assert!(out.body.ends_with("unset\n"), "{:?}", out.body);
    let r = http(&sock, "DELETE", "/containers/s1?force=1", None).unwrap();
    assert_eq!(r.status, 204, "{}", r.body);

    // SIGTERM: STOPPING=1, then a clean exit.
    // SAFETY: kill(2) on our own child.
    unsafe { libc::kill(pid as i32, libc::SIGTERM) };
    let stopping = recv_state(&notify);
    assert!(stopping.starts_with("STOPPING=1\n"), "{stopping:?}");
    let mut child = child;
    let deadline = Instant::now() + NOTIFY_TIMEOUT;
    let status = loop {
        if let Some(st) = child.0.try_wait().unwrap() {
            break st;
        }
        assert!(
            Instant::now() < deadline,
            "vswitchd did not exit after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "exit status {status}");
}

#[test]
fn info_shows_the_cluster_store_state() {
    require_root();
    let ns = Netns::new("svcetcd");
    let etcd = Etcd::start(&ns, "127.0.0.1");
    let url = etcd.store_url();
    let d = Daemon::start_in(
        ns,
        &["--cluster-store", &url, "--cluster-advertise", "127.0.0.1"],
    );
    let state = || d.request("GET", "/info", None).json()["ClusterStoreStatus"].clone();
    assert!(
        wait_until(NOTIFY_TIMEOUT, || state()["State"] == "connected"),
        "{}",
        state()
    );
    let info = d.request("GET", "/info", None).json();
    assert_eq!(info["ClusterStore"], url.as_str());
    assert_eq!(
        info["Datapath"]["Workers"].as_u64().map(|w| w > 0),
        Some(true)
    );
    drop(d);
    drop(etcd);
}
