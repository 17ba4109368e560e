//! Real Docker containers on vswitch networks: an unmodified dockerd (Debian's docker.io)
//! uses vswitchd as its libnetwork remote network driver. vswitchd and dockerd run in one
//! "host" namespace (dockerd with its own roots and sockets, no bridge, no iptables, no
//! ip_forward); an "outside" namespace behind a veth stands for the rest of the world. The
//! driver's socket has a test-unique name under /run/docker/plugins, so the driver name is
//! unique too. The image is /bin/busybox plus symlinks, `docker import`ed.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};
use vswitch_tests::*;

const HOST_IP: &str = "10.98.0.1";
const OUT_IP: &str = "10.98.0.2";
const IMAGE: &str = "vswbb:latest";
/// Where dockerd looks for legacy plugins.
const PLUGIN_DIR: &str = "/run/docker/plugins";
/// dockerd's first start (containerd included) on a loaded machine.
const DOCKERD_START_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a clean dockerd shutdown may take (it stops containers first).
const DOCKERD_STOP_TIMEOUT: Duration = Duration::from_secs(30);
/// Busybox applets linked into the image.
const APPLETS: &[&str] = &[
    "sh", "ip", "ping", "wget", "httpd", "nc", "sleep", "cat", "ls", "nslookup", "ifconfig",
    "timeout", "ping6",
];

/// A dockerd in a test namespace with everything under its own directory; killed, with its
/// containerd, shims and containers, and unmounted on drop.
struct Dockerd {
    dir: TempDir,
    ns: String,
    child: Option<Child>,
}

impl Dockerd {
    fn start(ns: &Netns) -> Dockerd {
        let dir = TempDir::new("dkd");
        std::fs::write(dir.0.join("daemon.json"), "{}").unwrap();
        let mut d = Dockerd {
            dir,
            ns: ns.name.clone(),
            child: None,
        };
        d.spawn();
        d
    }

    fn sock(&self) -> PathBuf {
        self.dir.0.join("docker.sock")
    }

    fn spawn(&mut self) {
        let root = &self.dir.0;
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(root.join("dockerd.log"))
            .unwrap();
        let mut cmd = Command::new("dockerd");
        in_netns(&mut cmd, &self.ns);
        let name = root.file_name().unwrap().to_string_lossy().to_string();
        cmd.arg("--config-file")
            .arg(root.join("daemon.json"))
            .arg("--data-root")
            .arg(root.join("data"))
            .arg("--exec-root")
            .arg(root.join("exec"))
            .arg("-H")
            .arg(format!("unix://{}", self.sock().display()))
            .arg("--pidfile")
            .arg(root.join("dockerd.pid"))
            .args([
                "--bridge=none",
                "--iptables=false",
                "--ip-forward=false",
                "--ip-masq=false",
                "--storage-driver=vfs",
            ])
            .arg("--containerd-namespace")
            .arg(&name)
            .arg("--containerd-plugins-namespace")
            .arg(format!("{name}p"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log);
        self.child = Some(
            cmd.spawn()
                .expect("spawn dockerd (apt-get install docker.io)"),
        );
        let deadline = Instant::now() + DOCKERD_START_TIMEOUT;
        loop {
            if self.docker(&["version"]).status.success() {
                return;
            }
            if let Some(Ok(Some(st))) = self.child.as_mut().map(Child::try_wait) {
                panic!("dockerd exited early ({st}); log:\n{}", self.log());
            }
            assert!(
                Instant::now() < deadline,
                "dockerd did not answer within {DOCKERD_START_TIMEOUT:?}; log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.0.join("dockerd.log")).unwrap_or_default()
    }

    fn docker(&self, args: &[&str]) -> Output {
        run(Command::new("docker")
            .env("DOCKER_HOST", format!("unix://{}", self.sock().display()))
            .env("DOCKER_CONFIG", self.dir.0.join("cli"))
            .args(args))
    }

    /// SIGTERM and wait (dockerd stops its containers), SIGKILL after the timeout.
    fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            // SAFETY: kill(2) on our child.
            unsafe { libc::kill(c.id() as i32, libc::SIGTERM) };
            let deadline = Instant::now() + DOCKERD_STOP_TIMEOUT;
            while Instant::now() < deadline {
                if let Ok(Some(_)) = c.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    fn start_again(&mut self) {
        assert!(self.child.is_none());
        self.spawn();
    }
}

impl Drop for Dockerd {
    fn drop(&mut self) {
        if self.child.is_some() {
            let ids = stdout(&self.docker(&["ps", "-aq"]));
            let ids: Vec<&str> = ids.split_whitespace().collect();
            if !ids.is_empty() {
                let mut argv = vec!["rm", "-f"];
                argv.extend(ids);
                let _ = self.docker(&argv);
            }
        }
        self.stop();
        // containerd, its shims and the containers: everything started under our roots.
        let root = self.dir.0.to_string_lossy().to_string();
        kill_processes_in(&self.dir.0.join("exec").join("netns"));
        for _ in 0..3 {
            kill_matching(&root);
            std::thread::sleep(Duration::from_millis(100));
        }
        // TempDir's drop unmounts everything below the roots and removes them.
    }
}

/// SIGKILL every process whose command line mentions `needle` (our unique directory).
fn kill_matching(needle: &str) {
    let Ok(rd) = std::fs::read_dir("/proc") else {
        return;
    };
    for p in rd.flatten() {
        let Some(pid) = p.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
            continue;
        };
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        if String::from_utf8_lossy(&cmdline).contains(needle) {
            // SAFETY: kill(2).
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
    }
}

/// Host namespace with vswitchd (the driver) and dockerd, an outside namespace with servers.
/// Field order is drop order: dockerd goes while its driver still answers.
struct World {
    dd: Dockerd,
    d: Daemon,
    outside: Netns,
    driver: String,
    plugin_sock: PathBuf,
    clients_log: PathBuf,
    _servers: Bg,
}

impl Drop for World {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.plugin_sock);
    }
}

fn world(tag: &str) -> World {
    require_root();
    let (host, outside) = host_and_outside(tag, HOST_IP, OUT_IP);
    let driver = unique(tag);
    std::fs::create_dir_all(PLUGIN_DIR).unwrap();
    let plugin_sock = Path::new(PLUGIN_DIR).join(format!("{driver}.sock"));
    let sock_arg = plugin_sock.to_string_lossy().to_string();
    let d = Daemon::start_in(host, &["--docker-plugin-socket", &sock_arg]);
    let dd = Dockerd::start(&d.ns);
    let clients_log = d.dir.0.join("outside-clients.log");
    let servers = outside_servers(&outside, &clients_log);
    let w = World {
        dd,
        d,
        outside,
        driver,
        plugin_sock,
        clients_log,
        _servers: servers,
    };
    w.import_image();
    w
}

impl World {
    fn docker(&self, args: &[&str]) -> Output {
        self.dd.docker(args)
    }

    fn import_image(&self) {
        let root = self.dd.dir.0.join("rootfs");
        std::fs::create_dir_all(root.join("bin")).unwrap();
        std::fs::create_dir_all(root.join("www")).unwrap();
        std::fs::copy("/bin/busybox", root.join("bin/busybox"))
            .expect("/bin/busybox (apt-get install busybox-static)");
        for a in APPLETS {
            std::os::unix::fs::symlink("busybox", root.join("bin").join(a)).unwrap();
        }
        std::fs::write(root.join("www/index.html"), "hello from a container\n").unwrap();
        let tar = self.dd.dir.0.join("rootfs.tar");
        sh(Command::new("tar")
            .arg("-C")
            .arg(&root)
            .arg("-cf")
            .arg(&tar)
            .arg("."));
        ok(self.docker(&["import", tar.to_str().unwrap(), IMAGE]));
    }

    /// `docker network create -d <our driver> ARGS… NAME`; returns dockerd's network id.
    fn net(&self, name: &str, args: &[&str]) -> String {
        let mut argv = vec!["network", "create", "-d", &self.driver];
        argv.extend_from_slice(args);
        argv.push(name);
        ok(self.docker(&argv)).trim().to_string()
    }

    /// A detached container running `cmd` (default: a web server on port 80).
    fn run(&self, name: &str, args: &[&str], cmd: &[&str]) {
        let mut argv = vec!["run", "-d", "--name", name];
        argv.extend_from_slice(args);
        argv.push(IMAGE);
        if cmd.is_empty() {
            argv.extend_from_slice(&["httpd", "-f", "-p", "80", "-h", "/www"]);
        } else {
            argv.extend_from_slice(cmd);
        }
        ok(self.docker(&argv));
    }

    fn exec(&self, name: &str, argv: &[&str]) -> Output {
        let mut a = vec!["exec", name];
        a.extend_from_slice(argv);
        self.docker(&a)
    }

    fn pings(&self, from: &str, target: &str) -> bool {
        self.exec(from, &["ping", "-c", "1", "-W", "1", target])
            .status
            .success()
    }

    fn wget(&self, from: &str, url: &str) -> Option<String> {
        // busybox-static 1.35's `wget -T` crashes: bound it with `timeout` instead.
        let o = self.exec(from, &["timeout", "5", "wget", "-q", "-O", "-", url]);
        o.status.success().then(|| stdout(&o))
    }

    fn ip_of(&self, name: &str, net: &str) -> String {
        let f = format!("{{{{(index .NetworkSettings.Networks \"{net}\").IPAddress}}}}");
        ok(self.docker(&["inspect", "-f", &f, name]))
            .trim()
            .to_string()
    }

    /// The vswitch network standing for a Docker network (named by dockerd's short id).
    fn vswitch_net(&self, docker_id: &str) -> serde_json::Value {
        let out = ok(self.d.vswitch(&["network", "inspect", &docker_id[..12]]));
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        v[0].clone()
    }

    fn stats(&self, vswitch_id: &str) -> serde_json::Value {
        self.d
            .request(
                "GET",
                &format!("/vswitch/networks/{vswitch_id}/stats"),
                None,
            )
            .json()
    }

    fn default_route(&self, name: &str) -> String {
        let o = ok(self.exec(name, &["ip", "route"]));
        o.lines()
            .filter(|l| l.starts_with("default"))
            .collect::<Vec<_>>()
            .join("\n")
    }

    fn links(&self, name: &str) -> Vec<String> {
        ok(self.exec(name, &["ls", "/sys/class/net"]))
            .split_whitespace()
            .map(str::to_string)
            .collect()
    }
}

fn ok_ctx(o: Output, ctx: &str) -> String {
    assert!(
        o.status.success(),
        "{ctx}: {}\nstdout: {}\nstderr: {}",
        o.status,
        stdout(&o),
        stderr(&o)
    );
    stdout(&o)
}

#[test]
fn two_containers_talk_through_vswitch() {
    let w = world("dkm");
    let id = w.net("pn", &["--subnet", "10.66.0.0/24"]);
    w.run("c1", &["--network", "pn"], &[]);
    w.run("c2", &["--network", "pn"], &["sleep", "3600"]);
    let ip1 = w.ip_of("c1", "pn");
    assert_eq!(ip1, "10.66.0.2");
    assert_eq!(w.ip_of("c2", "pn"), "10.66.0.3");

    // By address and by name (dockerd's embedded DNS).
    assert!(w.pings("c2", &ip1));
    assert!(w.pings("c2", "c1"));
    assert!(w.pings("c1", "c2"));
    for target in [ip1.as_str(), "c1"] {
        assert_eq!(
            w.wget("c2", &format!("http://{target}/")).as_deref(),
            Some("hello from a container\n"),
            "HTTP to {target}"
        );
    }

    // Inside: eth0 is a TAP with dockerd's address, the default route via the gateway.
    let flags = ok_ctx(
        w.exec("c1", &["cat", "/sys/class/net/eth0/tun_flags"]),
        "eth0 is a tun/tap device",
    );
    assert!(!flags.trim().is_empty());
    let addr = ok(w.exec("c1", &["ip", "-4", "addr", "show", "eth0"]));
    assert!(addr.contains("10.66.0.2/24"), "{addr}");
    assert!(w.default_route("c1").contains("via 10.66.0.1 dev eth0"));

    // The host namespace: no bridge, no veth; only vswitchd's TAPs and the outside veth.
    let links: serde_json::Value =
        serde_json::from_str(&ok(w.d.ns.exec(&["ip", "-d", "-j", "link"]))).unwrap();
    for l in links.as_array().unwrap() {
        let kind = l["linkinfo"]["info_kind"].as_str().unwrap_or("");
        let name = l["ifname"].as_str().unwrap_or("");
        assert!(
            kind != "bridge" && (kind != "veth" || name == "up0"),
            "unexpected {kind} device {name} in the host namespace"
        );
    }

    // vswitch sees an ordinary network with both endpoints at dockerd's addresses.
    let n = w.vswitch_net(&id);
    assert_eq!(n["Labels"]["io.vswitch.docker.network-id"], id.as_str());
    assert_eq!(n["IPAM"]["Config"][0]["Subnet"], "10.66.0.0/24");
    assert_eq!(n["IPAM"]["Config"][0]["Gateway"], "10.66.0.1");
    let mut addrs: Vec<String> = n["Containers"]
        .as_object()
        .unwrap()
        .values()
        .map(|c| c["IPv4Address"].as_str().unwrap().to_string())
        .collect();
    addrs.sort();
    assert_eq!(addrs, ["10.66.0.2/24", "10.66.0.3/24"]);
    let listed = ok(w.d.vswitch(&["network", "ls"]));
    assert!(listed.contains(&id[..12]), "{listed}");
    let vid = n["Id"].as_str().unwrap().to_string();
    let before = w.stats(&vid)["RxFrames"].as_u64().unwrap();
    assert!(w.pings("c1", "c2"));
    let after = w.stats(&vid)["RxFrames"].as_u64().unwrap();
    assert!(after >= before + 2, "switch counters {before} → {after}");

    // Removing a container removes its port and endpoint; removing the network, the rest.
    ok(w.docker(&["rm", "-f", "c2"]));
    let n = w.vswitch_net(&id);
    assert_eq!(n["Containers"].as_object().unwrap().len(), 1, "{n}");
    ok(w.docker(&["rm", "-f", "c1"]));
    ok(w.docker(&["network", "rm", "pn"]));
    let listed = ok(w.d.vswitch(&["network", "ls"]));
    assert!(!listed.contains(&id[..12]), "{listed}");
    let left = ok(w.d.ns.exec(&["ip", "-br", "link"]));
    assert!(!left.contains("vsd"), "endpoint TAPs left behind:\n{left}");
}

#[test]
fn driver_options_and_bad_input() {
    let w = world("dko");
    // ICC off: containers cannot reach each other, but reach the gateway.
    w.net(
        "picc",
        &[
            "--subnet",
            "10.67.0.0/24",
            "-o",
            "com.docker.network.bridge.enable_icc=false",
        ],
    );
    w.run("i1", &["--network", "picc"], &[]);
    w.run("i2", &["--network", "picc"], &["sleep", "3600"]);
    assert!(w.pings("i2", "10.67.0.1"), "gateway reachable with ICC off");
    assert!(!w.pings("i2", "10.67.0.2"), "ICC off lets containers talk");
    assert!(w.wget("i2", "http://10.67.0.2/").is_none());

    // Internal: containers talk, nothing leaves, no default route.
    w.net("pint", &["--internal", "--subnet", "10.68.0.0/24"]);
    w.run("n1", &["--network", "pint"], &[]);
    w.run("n2", &["--network", "pint"], &["sleep", "3600"]);
    assert!(w.pings("n2", "n1"));
    assert!(!w.pings("n2", OUT_IP), "egress from an internal network");
    assert_eq!(w.default_route("n2"), "");

    // IPv6 with dockerd's IPAM: both families on the endpoint, ping6 across the switch.
    w.net(
        "pv6",
        &[
            "--ipv6",
            "--subnet",
            "10.74.0.0/24",
            "--subnet",
            "fd00:74::/64",
        ],
    );
    w.run("v1", &["--network", "pv6"], &[]);
    w.run("v2", &["--network", "pv6"], &["sleep", "3600"]);
    let v1_6 = ok(w.docker(&[
        "inspect",
        "-f",
        "{{(index .NetworkSettings.Networks \"pv6\").GlobalIPv6Address}}",
        "v1",
    ]));
    let v1_6 = v1_6.trim();
    assert!(v1_6.starts_with("fd00:74::"), "{v1_6}");
    assert!(
        wait_until(Duration::from_secs(5), || w
            .exec("v2", &["ping6", "-c", "1", "-W", "1", v1_6])
            .status
            .success()),
        "no IPv6 between containers"
    );

    // MTU, the host interface's name, dockerd's ip-range and aux address, and a misspelt
    // option (kept, warned about).
    let id = w.net(
        "pmtu",
        &[
            "--subnet",
            "10.69.0.0/24",
            "--ip-range",
            "10.69.0.128/25",
            "--aux-address",
            "printer=10.69.0.129",
            "-o",
            "com.docker.network.driver.mtu=1400",
            "-o",
            "com.docker.network.bridge.name=vswdk0",
            "-o",
            "com.docker.network.bridge.enable_icx=true",
        ],
    );
    w.run("m1", &["--network", "pmtu"], &["sleep", "3600"]);
    assert_eq!(
        ok(w.exec("m1", &["cat", "/sys/class/net/eth0/mtu"])).trim(),
        "1400"
    );
    // dockerd's IPAM picks the gateway (with an ip-range: its first address); the host
    // interface holds exactly that one.
    let n = w.vswitch_net(&id);
    let gw = n["IPAM"]["Config"][0]["Gateway"]
        .as_str()
        .unwrap()
        .to_string();
    let gw = gw.as_str();
    assert_eq!(gw, "10.69.0.128", "{n}");
    assert_eq!(
        n["IPAM"]["Config"][0]["AuxiliaryAddresses"]["printer"],
        "10.69.0.129"
    );
    let host_if = ok(w.d.ns.exec(&["ip", "-4", "addr", "show", "vswdk0"]));
    assert!(
        host_if.contains(&format!("{gw}/24")) && host_if.contains("mtu 1400"),
        "{gw}: {host_if}"
    );
    assert!(
        w.pings("m1", gw),
        "m1 → gateway {gw}: {}\n{}\n{}",
        stdout(&w.exec("m1", &["ip", "addr"])),
        stdout(&w.exec("m1", &["ip", "route"])),
        stdout(&w.d.vswitch(&["network", "inspect", &id[..12]])),
    );
    let m1 = w.ip_of("m1", "pmtu");
    assert!(
        m1 != "10.69.0.129"
            && m1 != gw
            && m1.strip_prefix("10.69.0.").unwrap().parse::<u8>().unwrap() >= 128,
        "{m1} not from the ip-range, or the aux address"
    );
    let n = w.vswitch_net(&id);
    let held: Vec<&str> = n["Containers"]
        .as_object()
        .unwrap()
        .values()
        .map(|c| c["IPv4Address"].as_str().unwrap())
        .collect();
    assert_eq!(held, [format!("{m1}/24")], "{n}");
    assert_eq!(
        n["Options"]["com.docker.network.bridge.enable_icx"], "true",
        "{n}"
    );
    assert!(
        w.d.log().contains("com.docker.network.bridge.enable_icx")
            && w.d.log().contains("did you mean"),
        "no warning in the daemon log"
    );

    // A subnet overlapping a vswitch network is refused, and nothing is left half-made.
    ok(w.d.vswitch(&["network", "create", "--subnet", "10.70.0.0/24", "native"]));
    let before = ok(w.d.vswitch(&["network", "ls", "-q"])).lines().count();
    let mut argv = vec!["network", "create", "-d", &w.driver];
    argv.extend_from_slice(&["--subnet", "10.70.0.0/25", "pclash"]);
    let err = fails(w.docker(&argv));
    assert!(
        err.contains("overlaps") && err.contains("native"),
        "unclear error: {err}"
    );
    assert!(!ok(w.docker(&["network", "ls"])).contains("pclash"));
    assert_eq!(
        ok(w.d.vswitch(&["network", "ls", "-q"])).lines().count(),
        before
    );
}

#[test]
fn egress_published_ports_and_live_connect() {
    let w = world("dke");
    w.net("pb", &["--subnet", "10.71.0.0/24"]);
    w.net("pa", &["--subnet", "10.72.0.0/24"]);
    w.run("web", &["--network", "pb", "-p", "8080:80"], &[]);

    // Egress is masqueraded behind the host's address.
    assert_eq!(
        w.wget("web", &format!("http://{OUT_IP}:8000/")).as_deref(),
        Some("outside says hi\n")
    );
    let seen = std::fs::read_to_string(&w.clients_log).unwrap();
    assert_eq!(seen.lines().collect::<Vec<_>>(), [HOST_IP], "{seen}");
    assert_eq!(
        ok(w.d.ns.exec(&["cat", "/proc/sys/net/ipv4/ip_forward"])).trim(),
        "0"
    );

    // -p 8080:80 is reachable from the outside; the port taken gives a clear error.
    let get = |url: &str| {
        let o = w.outside.exec(&["curl", "-s", "--max-time", "5", url]);
        o.status.success().then(|| stdout(&o))
    };
    assert!(wait_until(Duration::from_secs(5), || get(&format!(
        "http://{HOST_IP}:8080/"
    ))
    .is_some()));
    assert_eq!(
        get(&format!("http://{HOST_IP}:8080/")).as_deref(),
        Some("hello from a container\n")
    );
    let err = fails(w.docker(&[
        "run",
        "-d",
        "--name",
        "web2",
        "--network",
        "pb",
        "-p",
        "8080:80",
        IMAGE,
        "sleep",
        "60",
    ]));
    assert!(err.contains("port is already allocated"), "{err}");
    // -P: an ephemeral host port; dockerd cannot show a remote driver's ports, vswitch can
    // (the endpoint's sandbox is docker-<endpoint id>).
    w.run("auto", &["--network", "pb", "--expose", "80", "-P"], &[]);
    let eid = ok(w.docker(&[
        "inspect",
        "-f",
        "{{.NetworkSettings.Networks.pb.EndpointID}}",
        "auto",
    ]));
    let line =
        ok(w.d.vswitch(&["port", &format!("docker-{}", &eid.trim()[..12])]));
    let port = line
        .trim()
        .strip_prefix("80/tcp -> 0.0.0.0:")
        .unwrap_or_else(|| panic!("{line}"));
    assert_eq!(
        get(&format!("http://{HOST_IP}:{port}/")).as_deref(),
        Some("hello from a container\n")
    );
    // Removing the container closes its published port.
    ok(w.docker(&["rm", "-f", "web"]));
    assert!(wait_until(Duration::from_secs(5), || get(&format!(
        "http://{HOST_IP}:8080/"
    ))
    .is_none()));

    // connect / disconnect live: eth1 comes and goes; the default route follows Docker's
    // endpoint order (equal priority: network name order, so "pa" wins over "pb").
    w.run("cc", &["--network", "pb"], &["sleep", "3600"]);
    assert!(w.default_route("cc").contains("via 10.71.0.1 dev eth0"));
    ok(w.docker(&["network", "connect", "pa", "cc"]));
    assert!(w.links("cc").contains(&"eth1".to_string()));
    let eth1 = ok(w.exec("cc", &["ip", "-4", "addr", "show", "eth1"]));
    assert!(eth1.contains("10.72.0.2/24"), "{eth1}");
    assert!(!ok(w.exec("cc", &["cat", "/sys/class/net/eth1/tun_flags"])).is_empty());
    let r = w.default_route("cc");
    assert!(r.contains("via 10.72.0.1 dev eth1"), "{r}");
    assert!(w.pings("cc", "10.72.0.1"));
    ok(w.docker(&["network", "disconnect", "pa", "cc"]));
    assert!(!w.links("cc").contains(&"eth1".to_string()));
    assert!(w.default_route("cc").contains("via 10.71.0.1 dev eth0"));
    assert!(w.pings("cc", OUT_IP));
}

#[test]
fn containers_survive_restarts_of_vswitchd_and_dockerd() {
    let mut w = world("dkr");
    let id = w.net("pn", &["--subnet", "10.73.0.0/24"]);
    w.run("c1", &["--network", "pn", "-p", "8081:80"], &[]);
    w.run("c2", &["--network", "pn"], &["sleep", "3600"]);
    assert!(w.pings("c2", "c1"));

    // kill -9: the TAPs stay in the containers with their addresses; a restart re-opens them.
    w.d.kill(libc::SIGKILL);
    let addr = ok(w.exec("c1", &["ip", "-4", "addr", "show", "eth0"]));
    assert!(addr.contains("10.73.0.2/24"), "{addr}");
    w.d.start_again();
    let t = Instant::now();
    assert!(
        wait_until(Duration::from_secs(2), || w.pings("c2", "10.73.0.2")),
        "no connectivity 2 s after the restart; log:\n{}",
        w.d.log()
    );
    eprintln!("talking again {:?} after vswitchd answered", t.elapsed());
    // The published port is bound again on the same host port.
    let o = w.outside.exec(&[
        "curl",
        "-s",
        "--max-time",
        "5",
        &format!("http://{HOST_IP}:8081/"),
    ]);
    assert_eq!(stdout(&o), "hello from a container\n", "{}", stderr(&o));
    assert_eq!(
        w.wget("c2", "http://c1/").as_deref(),
        Some("hello from a container\n")
    );

    // dockerd stop/start: it stops the containers (Leave, DeleteEndpoint) and does not send
    // CreateNetwork again; the network is still there and the containers work once started.
    w.dd.stop();
    let n = w.vswitch_net(&id);
    assert_eq!(n["Containers"].as_object().unwrap().len(), 0, "{n}");
    w.dd.start_again();
    ok(w.docker(&["start", "c1", "c2"]));
    assert!(w.pings("c2", "c1"));
    assert_eq!(
        w.wget("c2", "http://c1/").as_deref(),
        Some("hello from a container\n")
    );
    let n = w.vswitch_net(&id);
    assert_eq!(n["Containers"].as_object().unwrap().len(), 2, "{n}");
}
