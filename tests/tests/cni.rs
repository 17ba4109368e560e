//! `vswitch-cni`, called exactly as a CNI runtime calls it (the `CNI_*` environment, the config
//! on stdin, the answer on stdout), against vswitchd running in a test "host" namespace; and
//! a real runtime (Podman 4.3 with its CNI backend) beside it.

use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use vswitch_tests::*;

const HOST_IP: &str = "10.99.0.1";
const OUT_IP: &str = "10.99.0.2";
/// Where Debian's containernetworking-plugins put host-local and static.
const CNI_PLUGINS: &str = "/usr/lib/cni";
/// Bound on one plugin run.
const PLUGIN_TIMEOUT: Duration = Duration::from_secs(120);

/// What one plugin run printed.
#[derive(Debug)]
struct Out {
    ok: bool,
    json: Value,
    raw: String,
    stderr: String,
}

impl Out {
    fn code(&self) -> u64 {
        assert!(!self.ok, "expected a failure, got {}", self.raw);
        self.json["code"]
            .as_u64()
            .unwrap_or_else(|| panic!("error without code: {}", self.raw))
    }
    fn msg(&self) -> String {
        self.json["msg"].as_str().unwrap_or("").to_string()
    }
    fn result(self) -> Value {
        assert!(
            self.ok,
            "plugin failed: {}\nstderr: {}",
            self.raw, self.stderr
        );
        self.json
    }
}

/// Run `vswitch-cni` in the daemon's namespace (where a runtime on that host runs it).
fn plugin(d: &Daemon, env: &[(&str, &str)], stdin: &Value) -> Out {
    let mut cmd = Command::new(bin("vswitch-cni"));
    in_netns(&mut cmd, &d.ns.name);
    cmd.env_remove("CNI_COMMAND")
        .env("CNI_PATH", CNI_PLUGINS)
        .envs(env.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn vswitch-cni");
    let input = serde_json::to_vec(stdin).unwrap();
    let mut w = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || {
        let _ = w.write_all(&input);
    });
    let mut so = child.stdout.take().unwrap();
    let mut se = child.stderr.take().unwrap();
    let r1 = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = so.read_to_string(&mut s);
        s
    });
    let r2 = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = se.read_to_string(&mut s);
        s
    });
    let deadline = Instant::now() + PLUGIN_TIMEOUT;
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("vswitch-cni {env:?} did not finish within {PLUGIN_TIMEOUT:?}");
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    writer.join().unwrap();
    let raw = r1.join().unwrap();
    let stderr = r2.join().unwrap();
    let json = if raw.trim().is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&raw).unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {raw:?}"))
    };
    Out {
        ok: status.success(),
        json,
        raw,
        stderr,
    }
}

/// A network config as the runtime hands it to the plugin.
fn conf(d: &Daemon, version: &str, name: &str, extra: Value) -> Value {
    let mut c = json!({
        "cniVersion": version,
        "name": name,
        "type": "vswitch-cni",
        "socket": d.sock,
    });
    for (k, v) in extra.as_object().cloned().unwrap_or_default() {
        c[k] = v;
    }
    c
}

fn with_prev(c: &Value, prev: &Value) -> Value {
    let mut c = c.clone();
    c["prevResult"] = prev.clone();
    c
}

fn ns_path(ns: &Netns) -> String {
    format!("/run/netns/{}", ns.name)
}

fn add(d: &Daemon, c: &Value, cid: &str, ns: &Netns, ifname: &str) -> Out {
    let p = ns_path(ns);
    plugin(
        d,
        &[
            ("CNI_COMMAND", "ADD"),
            ("CNI_CONTAINERID", cid),
            ("CNI_NETNS", &p),
            ("CNI_IFNAME", ifname),
        ],
        c,
    )
}

fn del(d: &Daemon, c: &Value, cid: &str, netns: &str, ifname: &str) -> Out {
    plugin(
        d,
        &[
            ("CNI_COMMAND", "DEL"),
            ("CNI_CONTAINERID", cid),
            ("CNI_NETNS", netns),
            ("CNI_IFNAME", ifname),
        ],
        c,
    )
}

fn check(d: &Daemon, c: &Value, cid: &str, ns: &Netns, ifname: &str) -> Out {
    let p = ns_path(ns);
    plugin(
        d,
        &[
            ("CNI_COMMAND", "CHECK"),
            ("CNI_CONTAINERID", cid),
            ("CNI_NETNS", &p),
            ("CNI_IFNAME", ifname),
        ],
        c,
    )
}

/// vswitchd's attachments, as (container ID, ifname, IPv4).
fn attachments(d: &Daemon) -> Vec<(String, String, String)> {
    let r = d.request("GET", "/vswitch/attachments", None);
    assert_eq!(r.status, 200, "{}", r.body);
    r.json()
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|a| {
            (
                a["ContainerID"].as_str().unwrap_or("").to_string(),
                a["Ifname"].as_str().unwrap_or("").to_string(),
                a["IPv4"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

/// `ip -j` inside a test namespace.
fn ip_json(ns: &Netns, args: &[&str]) -> Value {
    let mut argv = vec!["ip", "-j"];
    argv.extend_from_slice(args);
    let out = ns.exec_ok(&argv);
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("ip -j {args:?}: {e}: {out}"))
}

fn addrs_of(ns: &Netns, ifname: &str) -> Vec<String> {
    let v = ip_json(ns, &["addr", "show", "dev", ifname]);
    v[0]["addr_info"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .filter(|a| a["scope"] == "global")
        .map(|a| format!("{}/{}", a["local"].as_str().unwrap_or(""), a["prefixlen"]))
        .collect()
}

fn has_link(ns: &Netns, ifname: &str) -> bool {
    ns.exec(&["ip", "link", "show", "dev", ifname])
        .status
        .success()
}

fn pings(ns: &Netns, target: &str) -> bool {
    ns.exec(&["ping", "-c", "1", "-W", "2", target])
        .status
        .success()
}

/// Mount points under the daemon's exec root (pinned namespaces).
fn pins(d: &Daemon) -> Vec<String> {
    let prefix = d.exec_root().to_string_lossy().to_string();
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_whitespace().nth(4).map(str::to_string))
        .filter(|p| p.starts_with(&prefix))
        .collect()
}

#[test]
fn version_lists_both_spec_versions() {
    let d = Daemon::start("cnv");
    for (asked, answered) in [("1.0.0", "1.0.0"), ("1.1.0", "1.1.0"), ("0.3.1", "1.1.0")] {
        let v = plugin(
            &d,
            &[("CNI_COMMAND", "VERSION")],
            &json!({"cniVersion": asked}),
        )
        .result();
        assert_eq!(v["cniVersion"], answered);
        assert_eq!(v["supportedVersions"], json!(["1.0.0", "1.1.0"]));
    }
}

#[test]
fn add_check_del_in_both_versions() {
    let d = Daemon::start("cna");
    for (i, version) in ["1.0.0", "1.1.0"].into_iter().enumerate() {
        let ns = Netns::new("cnc");
        let net = format!("pods{i}");
        let subnet = format!("10.210.{i}.0/24");
        let gw = format!("10.210.{i}.1");
        let c = conf(&d, version, &net, json!({"subnet": subnet}));
        let r = add(&d, &c, "ctr1", &ns, "eth0").result();
        // The spec's result fields, and they match what is in the namespace.
        assert_eq!(r["cniVersion"], version);
        let ifc = &r["interfaces"][0];
        assert_eq!(ifc["name"], "eth0");
        assert_eq!(ifc["sandbox"], ns_path(&ns));
        let link = ip_json(&ns, &["link", "show", "dev", "eth0"]);
        assert_eq!(ifc["mac"], link[0]["address"]);
        if version == "1.1.0" {
            assert_eq!(ifc["mtu"], link[0]["mtu"]);
        } else {
            assert!(ifc.get("mtu").is_none(), "1.0.0 has no interface mtu: {r}");
        }
        let addr = r["ips"][0]["address"].as_str().unwrap().to_string();
        assert_eq!(r["ips"][0]["interface"], 0);
        assert_eq!(r["ips"][0]["gateway"], gw.as_str());
        assert_eq!(addrs_of(&ns, "eth0"), vec![addr.clone()]);
        assert_eq!(r["routes"], json!([{"dst": "0.0.0.0/0", "gw": gw}]));
        assert_eq!(r["dns"]["nameservers"], json!(["127.0.0.11"]));
        let route = ip_json(&ns, &["-4", "route", "show", "default"]);
        assert_eq!(route[0]["gateway"], gw.as_str());
        assert_eq!(route[0]["dev"], "eth0");
        assert!(pings(&ns, &gw), "the gateway answers through the switch");
        // vswitchd keeps the attachment.
        assert_eq!(
            attachments(&d),
            vec![("ctr1".to_string(), "eth0".to_string(), addr.clone())]
        );
        // A second ADD of the same attachment fails, as the spec says.
        let again = add(&d, &c, "ctr1", &ns, "eth0");
        assert_eq!(again.code(), 100, "{}", again.raw);
        assert!(again.msg().contains("already"), "{}", again.msg());
        // CHECK after ADD passes; with the address gone it fails.
        let cc = with_prev(&c, &r);
        assert!(check(&d, &cc, "ctr1", &ns, "eth0").ok);
        ns.exec_ok(&["ip", "addr", "del", &addr, "dev", "eth0"]);
        let bad = check(&d, &cc, "ctr1", &ns, "eth0");
        assert_eq!(bad.code(), 103);
        assert!(bad.msg().contains("lacks address"), "{}", bad.msg());
        // DEL removes it; repeated DELs and a DEL without the namespace succeed.
        assert!(del(&d, &cc, "ctr1", &ns_path(&ns), "eth0").ok);
        assert!(!has_link(&ns, "eth0"));
        assert!(attachments(&d).is_empty());
        assert!(pins(&d).is_empty(), "{:?}", pins(&d));
        assert!(del(&d, &cc, "ctr1", &ns_path(&ns), "eth0").ok);
        assert!(del(&d, &c, "ctr1", "", "eth0").ok);
        assert!(del(&d, &c, "never-added", "/run/netns/none", "eth0").ok);
        // The address was freed: the next container gets it again.
        let r2 = add(&d, &c, "ctr2", &ns, "eth0").result();
        assert_eq!(r2["ips"][0]["address"], addr.as_str());
        // DEL after the runtime deleted the namespace.
        drop(ns);
        let gone = r2["interfaces"][0]["sandbox"].as_str().unwrap().to_string();
        assert!(del(&d, &with_prev(&c, &r2), "ctr2", &gone, "eth0").ok);
        assert!(attachments(&d).is_empty());
    }
}

#[test]
fn errors_are_spec_errors() {
    let d = Daemon::start("cne");
    let ns = Netns::new("cnd");
    let p = ns_path(&ns);
    let env = |cmd| {
        vec![
            ("CNI_COMMAND", cmd),
            ("CNI_CONTAINERID", "c1"),
            ("CNI_NETNS", p.as_str()),
            ("CNI_IFNAME", "eth0"),
        ]
    };
    let good = conf(&d, "1.0.0", "n", json!({"subnet": "10.211.0.0/24"}));
    // Undecodable config.
    let mut cmd = Command::new(bin("vswitch-cni"));
    cmd.envs(env("ADD"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    child.stdin.take().unwrap().write_all(b"{not json").unwrap();
    let o = child.wait_with_output().unwrap();
    assert!(!o.status.success());
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["code"], 6, "{v}");
    // Unsupported version.
    let o = plugin(&d, &env("ADD"), &conf(&d, "0.3.1", "n", json!({})));
    assert_eq!(o.code(), 1);
    assert!(o.msg().contains("1.0.0, 1.1.0"), "{}", o.msg());
    // Missing variable.
    let o = plugin(&d, &env("ADD")[..3], &good);
    assert_eq!(o.code(), 4);
    assert!(o.msg().contains("CNI_IFNAME"), "{}", o.msg());
    // Invalid config values.
    for bad in [json!({"mtu": 10}), json!({"subnet": "10.1.2.3"})] {
        let o = plugin(&d, &env("ADD"), &conf(&d, "1.0.0", "n", bad));
        assert_eq!(o.code(), 7, "{}", o.raw);
    }
    // A network that does not exist, with no subnet to create it.
    let o = plugin(&d, &env("ADD"), &conf(&d, "1.1.0", "nosuch", json!({})));
    assert_eq!(o.code(), 101);
    assert!(o.msg().contains("\"nosuch\" not found"), "{}", o.msg());
    assert!(!has_link(&ns, "eth0"));
    // An unreachable daemon: ADD says try again, STATUS says not ready; both exit non-zero.
    let mut dead = good.clone();
    dead["socket"] = json!(d.dir.0.join("nobody.sock"));
    let o = plugin(&d, &env("ADD"), &dead);
    assert_eq!(o.code(), 11);
    assert!(o.msg().contains("not reachable"), "{}", o.msg());
    let o = plugin(&d, &[("CNI_COMMAND", "STATUS")], &dead);
    assert_eq!(o.code(), 50);
    assert!(o.msg().contains("vswitchd is not reachable"), "{}", o.msg());
    let o = plugin(
        &d,
        &[
            ("CNI_COMMAND", "DEL"),
            ("CNI_CONTAINERID", "c1"),
            ("CNI_IFNAME", "eth0"),
        ],
        &dead,
    );
    assert_eq!(o.code(), 11);
    // STATUS with the daemon up, in both versions.
    for v in ["1.0.0", "1.1.0"] {
        let o = plugin(
            &d,
            &[("CNI_COMMAND", "STATUS")],
            &conf(&d, v, "n", json!({})),
        );
        assert!(o.ok && o.raw.is_empty(), "{o:?}");
    }
    // An MTU other than the existing network's.
    assert!(plugin(&d, &env("ADD"), &good).ok);
    let o = plugin(
        &d,
        &[
            ("CNI_COMMAND", "ADD"),
            ("CNI_CONTAINERID", "c2"),
            ("CNI_NETNS", p.as_str()),
            ("CNI_IFNAME", "eth1"),
        ],
        &conf(&d, "1.0.0", "n", json!({"mtu": 1400})),
    );
    assert_eq!(o.code(), 100);
    assert!(o.msg().contains("MTU 1500"), "{}", o.msg());
    // A subnet other than the existing network's.
    let o = plugin(
        &d,
        &[
            ("CNI_COMMAND", "ADD"),
            ("CNI_CONTAINERID", "c2"),
            ("CNI_NETNS", p.as_str()),
            ("CNI_IFNAME", "eth1"),
        ],
        &conf(&d, "1.0.0", "n", json!({"subnet": "10.99.99.0/24"})),
    );
    assert_eq!(o.code(), 100);
    assert!(
        o.msg().contains("exists with subnet 10.211.0.0/24"),
        "{}",
        o.msg()
    );
    assert!(del(&d, &good, "c1", &p, "eth0").ok);
}

#[test]
fn gc_removes_attachments_not_listed() {
    let d = Daemon::start("cng");
    let (a, b, c3) = (Netns::new("cga"), Netns::new("cgb"), Netns::new("cgc"));
    let c = conf(&d, "1.1.0", "gcnet", json!({"subnet": "10.212.0.0/24"}));
    let other = conf(&d, "1.1.0", "othernet", json!({"subnet": "10.213.0.0/24"}));
    add(&d, &c, "keep", &a, "eth0").result();
    add(&d, &c, "leak", &b, "eth0").result();
    add(&d, &other, "elsewhere", &c3, "eth0").result();
    // The current key.
    let mut gc = c.clone();
    gc["cni.dev/valid-attachments"] = json!([{"containerID": "keep", "ifname": "eth0"}]);
    let o = plugin(&d, &[("CNI_COMMAND", "GC")], &gc);
    assert!(o.ok, "{o:?}");
    let left: BTreeSet<String> = attachments(&d).into_iter().map(|a| a.0).collect();
    assert_eq!(
        left,
        ["elsewhere", "keep"].map(String::from).into(),
        "GC only touches its network"
    );
    assert!(!has_link(&b, "eth0"), "the leaked interface is gone");
    assert!(has_link(&a, "eth0"));
    // The older key, on the other network: nothing listed, so everything there goes.
    let mut gc = other.clone();
    gc["cni.dev/attachments"] = json!([]);
    assert!(plugin(&d, &[("CNI_COMMAND", "GC")], &gc).ok);
    let left: Vec<String> = attachments(&d).into_iter().map(|a| a.0).collect();
    assert_eq!(left, ["keep"]);
    assert!(!has_link(&c3, "eth0"));
    // The address of the collected attachment is free again.
    let r = add(&d, &c, "new", &b, "eth0").result();
    assert_eq!(r["ips"][0]["address"], "10.212.0.3/24");
}

#[test]
fn fifty_concurrent_adds_then_dels() {
    const N: usize = 50;
    let d = Daemon::start("cn5");
    let nss: Vec<Netns> = (0..N).map(|_| Netns::new("c5")).collect();
    let c = conf(&d, "1.0.0", "many", json!({"subnet": "10.214.0.0/24"}));
    let results: Vec<Value> = std::thread::scope(|s| {
        let hs: Vec<_> = nss
            .iter()
            .enumerate()
            .map(|(i, ns)| {
                let (d, c) = (&d, &c);
                s.spawn(move || add(d, c, &format!("ctr{i}"), ns, "eth0").result())
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let addrs: BTreeSet<String> = results
        .iter()
        .map(|r| r["ips"][0]["address"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(addrs.len(), N, "no address given twice");
    for (ns, r) in nss.iter().zip(&results) {
        assert_eq!(
            addrs_of(ns, "eth0"),
            vec![r["ips"][0]["address"].as_str().unwrap().to_string()]
        );
    }
    assert_eq!(attachments(&d).len(), N);
    // One network was made, by the first ADD.
    let nets = d.request("GET", "/networks", None).json();
    let many = nets
        .as_array()
        .unwrap()
        .iter()
        .filter(|n| n["Name"] == "many")
        .count();
    assert_eq!(many, 1);
    std::thread::scope(|s| {
        for (i, (ns, r)) in nss.iter().zip(&results).enumerate() {
            let (d, c) = (&d, &c);
            s.spawn(move || {
                let o = del(
                    d,
                    &with_prev(c, r),
                    &format!("ctr{i}"),
                    &ns_path(ns),
                    "eth0",
                );
                assert!(o.ok, "{o:?}");
            });
        }
    });
    assert!(attachments(&d).is_empty());
    assert!(pins(&d).is_empty(), "{:?}", pins(&d));
    let ps = d.request("GET", "/containers/json", None).json();
    assert_eq!(ps, json!([]));
    for ns in &nss {
        assert!(!has_link(ns, "eth0"));
    }
}

#[test]
fn attachment_survives_a_daemon_restart() {
    let mut d = Daemon::start("cnr");
    let ns = Netns::new("crc");
    let c = conf(&d, "1.1.0", "keep", json!({"subnet": "10.215.0.0/24"}));
    let r = add(&d, &c, "ctr", &ns, "net1").result();
    d.restart();
    // Same attachment, same address, interface made again by the restarted daemon.
    let cc = with_prev(&c, &r);
    let o = check(&d, &cc, "ctr", &ns, "net1");
    assert!(o.ok, "{o:?}");
    assert!(pings(&ns, "10.215.0.1"));
    assert!(del(&d, &cc, "ctr", &ns_path(&ns), "net1").ok);
    assert!(!has_link(&ns, "net1"));
    assert!(attachments(&d).is_empty());
}

#[test]
fn delegated_ipam_host_local_and_static() {
    assert!(
        Path::new(CNI_PLUGINS).join("host-local").exists(),
        "needs containernetworking-plugins (scripts/setup.sh installs it)"
    );
    let d = Daemon::start("cni");
    let data = d.dir.0.join("host-local");
    let ns = Netns::new("cih");
    let c = conf(
        &d,
        "1.1.0",
        "hl",
        json!({
            "subnet": "10.216.0.0/24",
            "ipam": {"type": "host-local", "dataDir": data,
                     "ranges": [[{"subnet": "10.216.0.0/24", "rangeStart": "10.216.0.100"}]]},
        }),
    );
    let r = add(&d, &c, "ctr", &ns, "eth0").result();
    assert_eq!(r["ips"][0]["address"], "10.216.0.100/24");
    assert_eq!(r["ips"][0]["interface"], 0);
    assert_eq!(addrs_of(&ns, "eth0"), vec!["10.216.0.100/24".to_string()]);
    assert!(
        data.join("hl").join("10.216.0.100").exists(),
        "host-local recorded it"
    );
    assert!(check(&d, &with_prev(&c, &r), "ctr", &ns, "eth0").ok);
    assert!(del(&d, &with_prev(&c, &r), "ctr", &ns_path(&ns), "eth0").ok);
    assert!(
        !data.join("hl").join("10.216.0.100").exists(),
        "host-local released it"
    );
    // A failed attach frees the delegate's address: an existing network with other MTU.
    let mut bad = c.clone();
    bad["mtu"] = json!(1400);
    let o = add(&d, &bad, "ctr", &ns, "eth0");
    assert_eq!(o.code(), 100);
    assert!(
        !data.join("hl").join("10.216.0.101").exists(),
        "{:?}",
        std::fs::read_dir(data.join("hl")).map(|r| r.count())
    );
    // static.
    let s = conf(
        &d,
        "1.0.0",
        "st",
        json!({
            "subnet": "10.217.0.0/24",
            "ipam": {"type": "static", "addresses": [{"address": "10.217.0.50/24", "gateway": "10.217.0.1"}]},
        }),
    );
    let r = add(&d, &s, "ctr", &ns, "eth0").result();
    assert_eq!(r["ips"][0]["address"], "10.217.0.50/24");
    assert_eq!(addrs_of(&ns, "eth0"), vec!["10.217.0.50/24".to_string()]);
    // An IPAM plugin that is not on CNI_PATH.
    let mut missing = s.clone();
    missing["ipam"] = json!({"type": "no-such-ipam"});
    let o = add(&d, &missing, "ctr9", &ns, "eth1");
    assert_eq!(o.code(), 102);
    assert!(o.msg().contains("not found in CNI_PATH"), "{}", o.msg());
}

#[test]
fn runtime_config_chaining_and_published_ports() {
    let (host, outside) = host_and_outside("cp", HOST_IP, OUT_IP);
    let d = Daemon::start_in(host, &[]);
    let log = d.dir.0.join("outside.log");
    let _servers = outside_servers(&outside, &log);
    let web = Netns::new("cpw");
    let side = Netns::new("cps");
    // ips, mac and portMappings from runtimeConfig; a prevResult from an earlier plugin.
    let prev = json!({
        "cniVersion": "1.1.0",
        "interfaces": [{"name": "lo", "sandbox": ns_path(&web)}],
        "ips": [{"address": "127.0.0.1/8", "interface": 0}],
        "x-earlier-plugin": {"kept": true},
    });
    let mut c = conf(&d, "1.1.0", "rt", json!({"subnet": "10.218.0.0/24"}));
    c["runtimeConfig"] = json!({
        "ips": ["10.218.0.77/24"],
        "mac": "02:00:00:aa:bb:cc",
        "portMappings": [{"hostPort": 8080, "containerPort": 80, "protocol": "tcp"}],
    });
    c["prevResult"] = prev;
    let r = add(&d, &c, "web", &web, "eth0").result();
    assert_eq!(r["interfaces"][0]["name"], "lo");
    assert_eq!(r["x-earlier-plugin"]["kept"], true);
    assert_eq!(r["interfaces"][1]["mac"], "02:00:00:aa:bb:cc");
    assert_eq!(
        r["ips"][1],
        json!({"address": "10.218.0.77/24", "gateway": "10.218.0.1", "interface": 1})
    );
    let link = ip_json(&web, &["link", "show", "dev", "eth0"]);
    assert_eq!(link[0]["address"], "02:00:00:aa:bb:cc");
    // The published port, from the outside, reaches a server in the container.
    let www = d.dir.0.join("www");
    std::fs::create_dir_all(&www).unwrap();
    std::fs::write(www.join("index.html"), "from the cni container\n").unwrap();
    let _srv = Bg::spawn(web.cmd(&[
        "python3",
        "-m",
        "http.server",
        "80",
        "-d",
        www.to_str().unwrap(),
    ]));
    assert!(wait_until(Duration::from_secs(10), || {
        !stdout(&web.exec(&["ss", "-ltnH", "sport = :80"])).is_empty()
    }));
    let got = outside.exec(&[
        "curl",
        "-s",
        "--max-time",
        "5",
        &format!("http://{HOST_IP}:8080/"),
    ]);
    assert_eq!(stdout(&got), "from the cni container\n");
    // Egress is masqueraded behind the host.
    let got = web.exec(&[
        "curl",
        "-s",
        "--max-time",
        "5",
        &format!("http://{OUT_IP}:8000/"),
    ]);
    assert_eq!(stdout(&got), "outside says hi\n");
    assert_eq!(std::fs::read_to_string(&log).unwrap().trim(), HOST_IP);
    // isDefaultGateway false: a second network gives no default route and reports none.
    let mut c2 = conf(
        &d,
        "1.0.0",
        "side",
        json!({"subnet": "10.219.0.0/24", "isDefaultGateway": false}),
    );
    let r2 = add(&d, &c2, "side", &side, "eth0").result();
    assert!(r2.get("routes").is_none(), "{r2}");
    assert_eq!(
        ip_json(&side, &["-4", "route", "show", "default"]),
        json!([])
    );
    assert!(pings(&side, "10.219.0.1"));
    // A vswitch sandbox and the CNI container on one network reach each other.
    d.run_sandbox("native", &["--net", "rt"]);
    let native_ip = d.ipv4_of("native", "eth0")[0]
        .split('/')
        .next()
        .unwrap()
        .to_string();
    assert!(d.pings("native", "10.218.0.77"));
    assert!(pings(&web, &native_ip));
    c2["prevResult"] = r2;
    assert!(del(&d, &c2, "side", &ns_path(&side), "eth0").ok);
    assert!(del(&d, &with_prev(&c, &r), "web", &ns_path(&web), "eth0").ok);
    // The listener is gone with the attachment.
    let got = outside.exec(&[
        "curl",
        "-s",
        "--max-time",
        "3",
        &format!("http://{HOST_IP}:8080/"),
    ]);
    assert!(!got.status.success());
}

// ---- a real runtime: Podman 4.3 with its CNI backend ---------------------------------------

/// Podman with private everything (storage, run dirs, config) run inside the daemon's
/// namespace; removes its containers, namespaces and directories on drop.
struct Podman {
    dir: TempDir,
    ns: String,
    names: Vec<String>,
    /// System directories podman writes that did not exist before the test.
    made: Vec<PathBuf>,
}

/// Directories outside `--root` that Podman 4.3 writes (libcni's result cache, the image
/// blob-info cache).
const PODMAN_SYSTEM_DIRS: &[&str] = &["/var/lib/cni", "/var/lib/containers"];

impl Podman {
    fn new(d: &Daemon, network: &str, conflist: &Value) -> Podman {
        assert!(
            Command::new("podman").arg("--version").output().is_ok(),
            "needs podman (scripts/setup.sh installs it)"
        );
        let dir = TempDir::new("pm");
        let p = |s: &str| dir.0.join(s);
        for sub in [
            "root",
            "runroot",
            "tmp",
            "xdg",
            "cni-bin",
            "netconf",
            "rootfs/bin",
            "rootfs/www",
            "rootfs/tmp",
            "rootfs/etc",
        ] {
            std::fs::create_dir_all(p(sub)).unwrap();
        }
        std::fs::copy(bin("vswitch-cni"), p("cni-bin/vswitch-cni")).unwrap();
        std::fs::write(
            p(&format!("netconf/{network}.conflist")),
            conflist.to_string(),
        )
        .unwrap();
        let conf = format!(
            "[network]\nnetwork_backend = \"cni\"\ncni_plugin_dirs = [\"{}\"]\nnetwork_config_dir = \"{}\"\n\
             [engine]\ncgroup_manager = \"cgroupfs\"\nevents_logger = \"file\"\nruntime = \"runc\"\n\
             # vswitchd's listeners publish the ports; podman must not hold them itself.\n\
             enable_port_reservation = false\n",
            p("cni-bin").display(),
            p("netconf").display()
        );
        std::fs::write(p("containers.conf"), conf).unwrap();
        // A busybox image: the static binary and its applets.
        let busybox = Path::new("/bin/busybox");
        assert!(
            busybox.exists(),
            "needs busybox-static (scripts/setup.sh installs it)"
        );
        std::fs::copy(busybox, p("rootfs/bin/busybox")).unwrap();
        for a in ["sh", "ip", "ping", "wget", "httpd", "sleep", "cat"] {
            std::os::unix::fs::symlink("busybox", p(&format!("rootfs/bin/{a}"))).unwrap();
        }
        std::fs::write(p("rootfs/www/index.html"), "hello from podman\n").unwrap();
        sh(Command::new("tar")
            .arg("-C")
            .arg(p("rootfs"))
            .arg("-cf")
            .arg(p("rootfs.tar"))
            .arg("."));
        let made = PODMAN_SYSTEM_DIRS
            .iter()
            .map(PathBuf::from)
            .filter(|d| !d.exists())
            .collect();
        let pm = Podman {
            dir,
            ns: d.ns.name.clone(),
            names: Vec::new(),
            made,
        };
        ok(pm.run(&[
            "import",
            pm.dir.0.join("rootfs.tar").to_str().unwrap(),
            "localhost/vsw-busybox:1",
        ]));
        pm
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let p = |s: &str| self.dir.0.join(s);
        let mut c = Command::new("nsenter");
        c.arg(format!("--net=/run/netns/{}", self.ns))
            .arg("--")
            .arg("podman")
            .arg("--root")
            .arg(p("root"))
            .arg("--runroot")
            .arg(p("runroot"))
            .arg("--tmpdir")
            .arg(p("tmp"))
            .args([
                "--storage-driver",
                "vfs",
                "--cgroup-manager",
                "cgroupfs",
                "--events-backend",
                "file",
            ])
            .args(args)
            .env("CONTAINERS_CONF", p("containers.conf"))
            .env("XDG_RUNTIME_DIR", p("xdg"));
        c
    }

    fn run(&self, args: &[&str]) -> std::process::Output {
        run(&mut self.cmd(args))
    }

    /// `podman run -d` on `network`; returns the container's namespace path.
    fn start(&mut self, name: &str, network: &str, extra: &[&str], argv: &[&str]) -> String {
        let mut a = vec![
            "run",
            "-d",
            "--name",
            name,
            "--ulimit",
            "nofile=1024:1024",
            "--ulimit",
            "nproc=1024:1024",
            "--network",
            network,
        ];
        a.extend_from_slice(extra);
        a.push("localhost/vsw-busybox:1");
        a.extend_from_slice(argv);
        self.names.push(name.to_string());
        ok(self.run(&a));
        let key = ok(self.run(&[
            "inspect",
            "--format",
            "{{.NetworkSettings.SandboxKey}}",
            name,
        ]));
        key.trim().to_string()
    }

    fn exec(&self, name: &str, argv: &[&str]) -> std::process::Output {
        let mut a = vec!["exec", name];
        a.extend_from_slice(argv);
        self.run(&a)
    }
}

impl Drop for Podman {
    fn drop(&mut self) {
        // Podman's namespaces live in /run/netns; remember them in case rm fails.
        let keys: Vec<String> = self
            .names
            .iter()
            .filter_map(|n| {
                let o = self.run(&["inspect", "--format", "{{.NetworkSettings.SandboxKey}}", n]);
                o.status.success().then(|| stdout(&o).trim().to_string())
            })
            .filter(|k| !k.is_empty())
            .collect();
        let _ = self.run(&["rm", "-f", "-t", "0", "--all"]);
        for k in keys {
            if let Some(name) = k.strip_prefix("/run/netns/") {
                let _ = Command::new("ip")
                    .args(["netns", "del", name])
                    .stderr(Stdio::null())
                    .status();
            }
        }
        // conmon of a container podman could not remove.
        kill_processes_under(&self.dir.0);
        for d in &self.made {
            let _ = std::fs::remove_dir_all(d);
        }
    }
}

/// SIGKILL processes whose command line names a path under `dir` (conmon, a stuck podman).
fn kill_processes_under(dir: &Path) {
    let needle = dir.to_string_lossy().to_string();
    let me = std::process::id();
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        if pid == me {
            continue;
        }
        let cmdline = std::fs::read(e.path().join("cmdline")).unwrap_or_default();
        if String::from_utf8_lossy(&cmdline).contains(&needle) {
            // SAFETY: kill(2) of a process this test started (its command line names our dir).
            unsafe { libc::kill(pid as i32, libc::SIGKILL) };
        }
    }
}

#[test]
fn podman_containers_on_a_vswitch_network() {
    let (host, outside) = host_and_outside("cp", HOST_IP, OUT_IP);
    let d = Daemon::start_in(host, &[]);
    let log = d.dir.0.join("outside.log");
    let _servers = outside_servers(&outside, &log);
    let conflist = json!({
        "cniVersion": "1.0.0",
        "name": "vswnet",
        "plugins": [{
            "type": "vswitch-cni",
            "socket": d.sock,
            "subnet": "10.220.0.0/24",
            "capabilities": {"portMappings": true},
        }],
    });
    let mut pm = Podman::new(&d, "vswnet", &conflist);
    let web_ns = pm.start(
        "web",
        "vswnet",
        &["-p", "8080:80"],
        &["httpd", "-f", "-p", "80", "-h", "/www"],
    );
    let cli_ns = pm.start("cli", "vswnet", &[], &["sleep", "1000"]);
    assert!(
        web_ns.starts_with('/') && cli_ns.starts_with('/'),
        "{web_ns} {cli_ns}"
    );
    let atts = attachments(&d);
    assert_eq!(atts.len(), 2, "{atts:?}");
    let web_ip = {
        let r = d.request("GET", "/vswitch/attachments", None).json();
        let a = r
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["Netns"] == web_ns.as_str())
            .cloned()
            .unwrap();
        a["IPv4"]
            .as_str()
            .unwrap()
            .split('/')
            .next()
            .unwrap()
            .to_string()
    };
    // Ping and HTTP between the two containers, through the userspace switch.
    let o = pm.exec("cli", &["ping", "-c", "1", "-W", "2", &web_ip]);
    assert!(o.status.success(), "{}", stdout(&o));
    assert!(wait_until(Duration::from_secs(10), || {
        stdout(&pm.exec("cli", &["wget", "-qO-", &format!("http://{web_ip}/")]))
            == "hello from podman\n"
    }));
    // The published port from the outside, and masqueraded egress.
    let got = outside.exec(&[
        "curl",
        "-s",
        "--max-time",
        "5",
        &format!("http://{HOST_IP}:8080/"),
    ]);
    assert_eq!(stdout(&got), "hello from podman\n");
    let got = pm.exec("cli", &["wget", "-qO-", &format!("http://{OUT_IP}:8000/")]);
    assert_eq!(stdout(&got), "outside says hi\n");
    assert_eq!(std::fs::read_to_string(&log).unwrap().trim(), HOST_IP);
    // A vswitch sandbox on the same network reaches the Podman container and back.
    d.run_sandbox("native", &["--net", "vswnet"]);
    let native_ip = d.ipv4_of("native", "eth0")[0]
        .split('/')
        .next()
        .unwrap()
        .to_string();
    assert!(d.pings("native", &web_ip));
    assert!(pm
        .exec("cli", &["ping", "-c", "1", "-W", "2", &native_ip])
        .status
        .success());
    // podman rm leaves nothing in vswitchd.
    ok(pm.run(&["rm", "-f", "-t", "0", "web", "cli"]));
    assert!(attachments(&d).is_empty(), "{:?}", attachments(&d));
    let native_key = d.sandbox_key("native").to_string_lossy().to_string();
    assert_eq!(
        pins(&d),
        vec![native_key],
        "only the vswitch sandbox is left"
    );
    let got = outside.exec(&[
        "curl",
        "-s",
        "--max-time",
        "3",
        &format!("http://{HOST_IP}:8080/"),
    ]);
    assert!(
        !got.status.success(),
        "the listener went with the container"
    );
    drop(pm);
    for k in [web_ns, cli_ns] {
        assert!(!Path::new(&k).exists(), "podman removed {k}");
    }
}
