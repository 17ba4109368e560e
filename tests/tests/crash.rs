//! Crash + immediate restart (issue 13.1): while sandboxes and networks are being created and
//! removed, vswitchd is SIGKILLed at random moments and a new one started at once (as a
//! supervisor with a short restart delay does), several rounds. Afterwards what a user sees
//! must be consistent: every container in `network inspect` has its address on its interface,
//! no address is held twice, survivors talk, new sandboxes get addresses on every network, and
//! nothing is left that no record owns (interfaces, namespaces).

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use vswitch_tests::*;

/// Kill/restart rounds.
const ROUNDS: usize = 6;
/// Bounds of the random delay between a restart and the next kill.
const MIN_DELAY_MS: u64 = 150;
const MAX_DELAY_MS: u64 = 1200;
/// Odd rounds also kill the next daemon within this many ms of its start (cut restore).
const MAX_CUT_MS: u64 = 600;
/// Most sandboxes the churn keeps alive at once (keeps restore and the checks short).
const MAX_CHURN_SANDBOXES: u32 = 8;
/// How long the world may take to settle before the checks fail (namespaces and their
/// interfaces are destroyed asynchronously by the kernel).
const SETTLE: Duration = Duration::from_secs(10);
/// Hang guard for the whole test (it takes 15-40 s here, ~2 min when the machine is loaded).
const TEST_BUDGET: Duration = Duration::from_secs(300);

/// xorshift64*: a reproducible random sequence from a printed seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

fn seed() -> u64 {
    std::env::var("CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(1)
                | 1
        })
}

/// The CLI against a socket URL (usable from churn threads, across daemon restarts).
fn cli(url: &str, args: &[&str]) -> std::process::Output {
    run(Command::new(bin("vswitch")).arg("-H").arg(url).args(args))
}

/// Shared control of the churn workers: stop, pause (the checks run on a quiet daemon), and
/// how many operations are in flight.
#[derive(Default)]
struct Control {
    stop: AtomicBool,
    paused: AtomicBool,
    busy: AtomicU32,
    ops: AtomicU32,
}

impl Control {
    /// Pause and wait (bounded) until no operation is in flight.
    fn pause(&self) {
        self.paused.store(true, Ordering::SeqCst);
        assert!(
            wait_until(Duration::from_secs(30), || self.busy.load(Ordering::SeqCst)
                == 0),
            "churn did not pause"
        );
    }
    fn resume(&self) {
        self.paused.store(false, Ordering::SeqCst);
    }
}

/// One churn worker: random creates, connects, disconnects and removals. Failures are
/// expected (the daemon dies under it); only what is left afterwards is checked.
fn churn(url: String, worker: u32, seed: u64, ctl: Arc<Control>) {
    let mut rng = Rng(seed ^ (u64::from(worker) + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15));
    let mut n = 0u32;
    while !ctl.stop.load(Ordering::SeqCst) {
        // Count first, then look at the pause flag: `pause` sees every operation that began.
        ctl.busy.fetch_add(1, Ordering::SeqCst);
        if ctl.paused.load(Ordering::SeqCst) {
            ctl.busy.fetch_sub(1, Ordering::SeqCst);
            std::thread::sleep(Duration::from_millis(10));
            continue;
        }
        n += 1;
        let name = format!("w{worker}s{n}");
        match rng.below(10) {
            0..=3 => {
                let net = ["base", "base", "bridge", "vnet", "x0", "x1"][rng.below(6) as usize];
                let _ = cli(
                    &url,
                    &[
                        "run", "-d", "--name", &name, "--net", net, "--", "sleep", "infinity",
                    ],
                );
            }
            4 => {
                let k = rng.below(2);
                let subnet = format!("10.92.{}.0/24", worker * 2 + k as u32);
                let _ = cli(
                    &url,
                    &["network", "create", "--subnet", &subnet, &format!("x{k}")],
                );
            }
            5 => {
                let k = rng.below(2);
                let _ = cli(&url, &["network", "rm", &format!("x{k}")]);
            }
            6 | 7 => {
                // connect / disconnect one of this worker's sandboxes.
                let target = format!("w{worker}s{}", 1 + rng.below(u64::from(n)));
                let net = ["x0", "x1", "bridge"][rng.below(3) as usize];
                let verb = if rng.below(2) == 0 {
                    "connect"
                } else {
                    "disconnect"
                };
                let _ = cli(&url, &["network", verb, net, &target]);
            }
            _ => {
                let target = format!("w{worker}s{}", 1 + rng.below(u64::from(n)));
                let _ = cli(&url, &["rm", "-f", &target]);
            }
        }
        // Keep the number of sandboxes bounded: remove old ones of this worker.
        if n > MAX_CHURN_SANDBOXES / 2 {
            let old = format!("w{worker}s{}", n - MAX_CHURN_SANDBOXES / 2);
            let _ = cli(&url, &["rm", "-f", &old]);
        }
        ctl.ops.fetch_add(1, Ordering::SeqCst);
        ctl.busy.fetch_sub(1, Ordering::SeqCst);
    }
}

fn get_json(d: &Daemon, path: &str) -> serde_json::Value {
    let r = d.request("GET", path, None);
    assert_eq!(r.status, 200, "GET {path}: {}", r.body);
    r.json()
}

/// The daemon log's lines that tell what restore and the API complained about.
fn complaints(d: &Daemon) -> String {
    d.log()
        .lines()
        .filter(|l| {
            l.contains("WARN")
                || l.contains("ERROR")
                || l.contains("vswitchd:")
                || l.contains("previous vswitchd")
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The MAC → IPv4 (with prefix) of every interface inside a namespace, and its link names.
fn ns_addrs(key: &str) -> (BTreeMap<String, Vec<String>>, Vec<String>) {
    let out = ok(run(Command::new("nsenter")
        .arg(format!("--net={key}"))
        .args(["ip", "-j", "addr", "show"])));
    let v: serde_json::Value = serde_json::from_str(&out).expect("ip -j addr");
    let mut by_mac = BTreeMap::new();
    let mut names = Vec::new();
    for l in v.as_array().cloned().unwrap_or_default() {
        let name = l["ifname"].as_str().unwrap_or("").to_string();
        if name == "lo" {
            continue;
        }
        names.push(name);
        let v4: Vec<String> = l["addr_info"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .iter()
            .filter(|a| a["family"] == "inet")
            .map(|a| format!("{}/{}", a["local"].as_str().unwrap_or(""), a["prefixlen"]))
            .collect();
        by_mac.insert(l["address"].as_str().unwrap_or("").to_string(), v4);
    }
    (by_mac, names)
}

/// Everything a user can check after the crashes; returns the problems found.
fn consistency_problems(d: &Daemon) -> Vec<String> {
    let mut problems = Vec::new();
    let nets = get_json(d, "/networks");
    let containers = get_json(d, "/containers/json");
    // Sandbox id → namespace path.
    let mut keys: BTreeMap<String, String> = BTreeMap::new();
    let mut names: BTreeMap<String, String> = BTreeMap::new();
    for c in containers.as_array().cloned().unwrap_or_default() {
        let id = c["Id"].as_str().unwrap_or("").to_string();
        let j = get_json(d, &format!("/containers/{id}/json"));
        let key = j["NetworkSettings"]["SandboxKey"]
            .as_str()
            .unwrap_or("")
            .to_string();
        names.insert(id.clone(), j["Name"].as_str().unwrap_or("").to_string());
        keys.insert(id, key);
    }
    let mut held: BTreeMap<String, String> = BTreeMap::new();
    // Sandbox id → MACs its endpoints have.
    let mut macs: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut host_ifaces = BTreeSet::from(["lo".to_string()]);
    for n in nets.as_array().cloned().unwrap_or_default() {
        let id = n["Id"].as_str().unwrap_or("");
        let full = get_json(d, &format!("/networks/{id}"));
        let nname = full["Name"].as_str().unwrap_or("").to_string();
        if full["Driver"] == "bridge" {
            let bn = full["Options"]["com.docker.network.bridge.name"]
                .as_str()
                .map(str::to_string)
                .unwrap_or_else(|| format!("br-{}", &id[..12]));
            host_ifaces.insert(bn);
        }
        let veth = full["Options"]["io.vswitch.network.port_kind"] == "veth";
        let cs = full["Containers"].as_object().cloned().unwrap_or_default();
        for (cid, c) in cs {
            if veth {
                // The host end of a veth port: `vsw` + 8 hex of the endpoint id.
                let ep = c["EndpointID"].as_str().unwrap_or("");
                host_ifaces.insert(format!("vsw{}", &ep[..8.min(ep.len())]));
            }
            let ip = c["IPv4Address"].as_str().unwrap_or("").to_string();
            let mac = c["MacAddress"].as_str().unwrap_or("").to_string();
            let cname = c["Name"].as_str().unwrap_or("");
            if let Some(other) = held.insert(ip.clone(), format!("{cname} on {nname}")) {
                problems.push(format!(
                    "address {ip} held twice: {other} and {cname} on {nname}"
                ));
            }
            macs.entry(cid.clone()).or_default().insert(mac.clone());
            let Some(key) = keys.get(&cid) else {
                problems.push(format!(
                    "{nname} lists container {cname} ({cid}) that /containers/json does not"
                ));
                continue;
            };
            if !std::path::Path::new(key).exists() {
                problems.push(format!("{cname}: namespace {key} missing"));
                continue;
            }
            let (by_mac, _) = ns_addrs(key);
            match by_mac.get(&mac) {
                None => problems.push(format!(
                    "{cname} on {nname}: no interface with MAC {mac} in its namespace ({by_mac:?})"
                )),
                Some(v4) if !ip.is_empty() && !v4.contains(&ip) => problems.push(format!(
                    "{cname} on {nname}: interface {mac} has {v4:?}, inspect says {ip}"
                )),
                _ => {}
            }
        }
    }
    // Interfaces nobody owns: inside sandboxes, and in the daemon's namespace.
    for (id, key) in &keys {
        if !std::path::Path::new(key).exists() {
            problems.push(format!("{}: namespace {key} missing", names[id]));
            continue;
        }
        let want = macs.get(id).cloned().unwrap_or_default();
        let (by_mac, links) = ns_addrs(key);
        let have: BTreeSet<String> = by_mac.keys().cloned().collect();
        if have != want || links.len() != want.len() {
            problems.push(format!(
                "{}: interfaces {links:?} with MACs {have:?}, records say {want:?}",
                names[id]
            ));
        }
    }
    let out = ok(d.ns.exec(&["ip", "-j", "link", "show"]));
    let v: serde_json::Value = serde_json::from_str(&out).expect("ip -j link");
    let links: BTreeSet<String> = v
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .filter_map(|l| l["ifname"].as_str().map(str::to_string))
        .collect();
    if links != host_ifaces {
        problems.push(format!(
            "daemon namespace has interfaces {links:?}, networks own {host_ifaces:?}"
        ));
    }
    // Namespaces under the exec root that no sandbox record owns.
    let owned: BTreeSet<&String> = keys.values().collect();
    if let Ok(rd) = std::fs::read_dir(d.exec_root().join("netns")) {
        for e in rd.flatten() {
            let p = e.path().to_string_lossy().into_owned();
            if !owned.contains(&p) {
                problems.push(format!("namespace {p} has no sandbox record"));
            }
        }
    }
    // Files of sandboxes that no record owns (resolv.conf, command output).
    let short: BTreeSet<String> = keys.keys().map(|id| id[..12].to_string()).collect();
    for dir in ["resolv", "logs"] {
        if let Ok(rd) = std::fs::read_dir(d.exec_root().join(dir)) {
            for e in rd.flatten() {
                let p = e.path();
                let stem = p.file_stem().and_then(|s| s.to_str()).unwrap_or("");
                if !short.contains(stem) {
                    problems.push(format!("{} has no sandbox record", p.display()));
                }
            }
        }
    }
    problems
}

/// After a restart: the records match the namespaces (bounded settle: a deleted namespace's
/// interfaces go away asynchronously), and the two first sandboxes still talk.
fn check_round(d: &Daemon, round: usize, seed: u64, b_ip: &str) {
    let mut problems = Vec::new();
    wait_until(SETTLE, || {
        problems = consistency_problems(d);
        problems.is_empty()
    });
    assert!(
        problems.is_empty(),
        "after crash {round} (seed {seed}):\n  {}\ndaemon complaints:\n{}",
        problems.join("\n  "),
        complaints(d)
    );
    assert!(
        wait_until(Duration::from_secs(10), || d.pings("a", b_ip)),
        "after crash {round}: a cannot ping b ({b_ip}); complaints:\n{}",
        complaints(d)
    );
}

#[test]
fn sigkill_during_churn_then_immediate_restart_converges() {
    require_root();
    let t0 = Instant::now();
    let seed = seed();
    eprintln!("crash test seed {seed} (rerun with CRASH_SEED={seed})");
    let mut rng = Rng(seed);
    let mut d = Daemon::start("crs");
    ok(d.vswitch(&["network", "create", "--subnet", "10.91.0.0/24", "base"]));
    ok(d.vswitch(&[
        "network",
        "create",
        "--subnet",
        "10.91.1.0/24",
        "-o",
        "io.vswitch.network.port_kind=veth",
        "vnet",
    ]));
    d.run_sandbox("a", &["--net", "base"]);
    d.run_sandbox("b", &["--net", "base"]);
    let b_ip = d.ipv4_of("b", "eth0")[0]
        .split('/')
        .next()
        .unwrap()
        .to_string();
    assert!(d.pings("a", &b_ip));

    let ctl = Arc::new(Control::default());
    let workers: Vec<_> = (0..2)
        .map(|w| {
            let (url, ctl) = (d.host_url(), ctl.clone());
            std::thread::spawn(move || churn(url, w, seed, ctl))
        })
        .collect();
    for round in 0..ROUNDS {
        let delay = MIN_DELAY_MS + rng.below(MAX_DELAY_MS - MIN_DELAY_MS);
        std::thread::sleep(Duration::from_millis(delay));
        eprintln!(
            "round {round}: SIGKILL after {delay} ms ({} churn ops so far)",
            ctl.ops.load(Ordering::SeqCst)
        );
        if round % 2 == 1 {
            // Cut the next daemon too, while it waits for its predecessor or restores.
            let cut = rng.below(MAX_CUT_MS);
            eprintln!("round {round}: and the next daemon after {cut} ms");
            d.crash_restart_twice(Duration::from_millis(cut));
        } else {
            d.crash_restart();
        }
        // Every restart must converge: check on a quiet daemon, then churn on.
        ctl.pause();
        check_round(&d, round, seed, &b_ip);
        ctl.resume();
    }
    ctl.stop.store(true, Ordering::SeqCst);
    for w in workers {
        w.join().expect("churn worker");
    }
    eprintln!(
        "{ROUNDS} rounds, {} churn ops, {:?}",
        ctl.ops.load(Ordering::SeqCst),
        t0.elapsed()
    );
    // `run` works on every bridge network, and each new sandbox gets an address.
    let nets = get_json(&d, "/networks");
    for n in nets.as_array().cloned().unwrap_or_default() {
        if n["Driver"] != "bridge" {
            continue;
        }
        let name = n["Name"].as_str().unwrap().to_string();
        let sb = format!("new-{name}");
        let o = d.vswitch(&[
            "run", "-d", "--name", &sb, "--net", &name, "--", "sleep", "infinity",
        ]);
        assert!(
            o.status.success(),
            "run on {name} after the crashes: {}\ncomplaints:\n{}",
            stderr(&o),
            complaints(&d)
        );
        let v4 = d.ipv4_of(&sb, "eth0");
        assert_eq!(v4.len(), 1, "{sb} has addresses {v4:?}");
        if name == "base" {
            assert!(d.pings(&sb, &b_ip), "new sandbox on base cannot ping b");
        }
    }
    let mut problems = Vec::new();
    wait_until(SETTLE, || {
        problems = consistency_problems(&d);
        problems.is_empty()
    });
    assert!(
        problems.is_empty(),
        "after new runs:\n  {}",
        problems.join("\n  ")
    );
    eprintln!(
        "done in {:?}; what the daemons logged:\n{}",
        t0.elapsed(),
        complaints(&d)
    );
    assert!(t0.elapsed() < TEST_BUDGET, "took {:?}", t0.elapsed());
}

#[test]
fn second_daemon_on_one_data_root_is_refused() {
    let d = Daemon::start("lck");
    // A second vswitchd on the same data root (another socket) must not start.
    let sock2 = d.dir.0.join("second.sock");
    let mut cmd = Command::new(bin("vswitchd"));
    in_netns(&mut cmd, &d.ns.name);
    cmd.arg("-H")
        .arg(format!("unix://{}", sock2.display()))
        .arg("--data-root")
        .arg(d.data_root())
        .arg("--exec-root")
        .arg(d.exec_root());
    let o = run(&mut cmd);
    let err = fails(o);
    assert!(
        err.contains(&d.data_root().display().to_string()) && err.contains(&d.pid().to_string()),
        "error should name the data root and the other pid: {err}"
    );
    assert!(!sock2.exists(), "the second daemon listened anyway");
    // The first one is undisturbed.
    assert_eq!(d.request("GET", "/_ping", None).status, 200);
}
