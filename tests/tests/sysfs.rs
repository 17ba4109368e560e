//! Programs in a sandbox read /sys and see the sandbox's own interfaces (as under
//! `ip netns exec`): `vswitch run -d` (started by the daemon), `vswitch exec` and `vswitch run`
//! in the foreground (started by the CLI), with and without a resolv.conf to bind. Nothing of
//! this mounting shows on the host.

use std::path::Path;
use std::time::Duration;
use vswitch_tests::*;

/// Prints the /sys/class/net listing (one name a line), a `--` line, then eth0's address.
const SYS_VIEW: &str =
    "ls -1 /sys/class/net; echo --; cat /sys/class/net/eth0/address 2>/dev/null || true";

/// Splits [`SYS_VIEW`] output into (sorted names, eth0 address).
fn parse_view(out: &str) -> (Vec<String>, String) {
    let (names, addr) = out.split_once("--\n").unwrap_or((out, ""));
    let mut names: Vec<String> = names.lines().map(str::to_string).collect();
    names.sort();
    (names, addr.trim().to_string())
}

/// `ip -j link` inside the sandbox: its sorted interface names and eth0's MAC.
fn ip_view(d: &Daemon, name: &str) -> (Vec<String>, String) {
    let v = d.ip_json(name, &["link", "show"]);
    let links = v.as_array().cloned().unwrap_or_default();
    let mut names: Vec<String> = links
        .iter()
        .filter_map(|l| l["ifname"].as_str().map(str::to_string))
        .collect();
    names.sort();
    let mac = links
        .iter()
        .find(|l| l["ifname"] == "eth0")
        .and_then(|l| l["address"].as_str())
        .unwrap_or_default()
        .to_string();
    (names, mac)
}

/// Mount points under /sys in this (the host's) mount namespace.
fn host_sys_mounts() -> Vec<String> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let mut v: Vec<String> = info
        .lines()
        .filter_map(|l| l.split_whitespace().nth(4).map(str::to_string))
        .filter(|p| p == "/sys" || p.starts_with("/sys/") || p == "/etc/resolv.conf")
        .collect();
    v.sort();
    v
}

#[test]
fn sandboxes_see_their_own_interfaces_in_sys() {
    let before = host_sys_mounts();
    let d = Daemon::start("sys");
    ok(d.vswitch(&["network", "create", "--subnet", "10.98.0.0/24", "n"]));
    // Started by the daemon.
    let out = d.dir.0.join("view");
    let script = format!("({SYS_VIEW}) > {}.tmp; mv {0}.tmp {0}", out.display());
    ok(d.vswitch(&[
        "run", "-d", "--name", "c", "--net", "n", "--", "sh", "-c", &script,
    ]));
    assert!(wait_until(Duration::from_secs(10), || out.exists()));
    let (names, mac) = ip_view(&d, "c");
    assert!(names.contains(&"eth0".to_string()), "{names:?}");
    assert!(mac.len() == 17, "{mac}");
    let run_d = parse_view(&std::fs::read_to_string(&out).unwrap());
    assert_eq!(run_d, (names.clone(), mac.clone()), "run -d");
    // `vswitch exec`.
    let exec = parse_view(&ok(d.vswitch(&["exec", "c", "--", "sh", "-c", SYS_VIEW])));
    assert_eq!(exec, (names, mac), "exec");
    // `vswitch run` in the foreground: compared with `ip` in the same sandbox.
    let both = format!("{SYS_VIEW}; echo ==; ip -j link show");
    let o = ok(d.vswitch(&["run", "--rm", "--net", "n", "--", "sh", "-c", &both]));
    let (view, ip) = o.split_once("==\n").expect("two parts");
    let links: serde_json::Value = serde_json::from_str(ip).unwrap();
    let links = links.as_array().cloned().unwrap_or_default();
    let mut names: Vec<String> = links
        .iter()
        .filter_map(|l| l["ifname"].as_str().map(str::to_string))
        .collect();
    names.sort();
    let mac = links
        .iter()
        .find(|l| l["ifname"] == "eth0")
        .and_then(|l| l["address"].as_str())
        .unwrap_or_default()
        .to_string();
    assert!(!mac.is_empty(), "{ip}");
    assert_eq!(parse_view(view), (names, mac), "run");
    // The host's mounts are untouched.
    assert_eq!(host_sys_mounts(), before);
}

/// The library call the CLI uses, in a namespace with an interface of a known MAC,
/// without and with a resolv.conf to bind.
#[test]
fn exec_in_remounts_sys_with_and_without_resolv_conf() {
    let before = host_sys_mounts();
    let ns = Netns::new("sysx");
    ns.exec_ok(&[
        "ip",
        "link",
        "add",
        "eth0",
        "address",
        "02:42:ac:11:00:99",
        "type",
        "veth",
        "peer",
        "name",
        "peer0",
    ]);
    let dir = TempDir::new("sysx");
    let resolv = dir.0.join("resolv.conf");
    std::fs::write(&resolv, "nameserver 192.0.2.53\n").unwrap();
    let path = Path::new("/run/netns").join(&ns.name);
    for bind in [None, Some(resolv.as_path())] {
        let out = dir.0.join("out");
        let script = format!(
            "({SYS_VIEW}; echo; cat /etc/resolv.conf) > {}",
            out.display()
        );
        let argv = ["sh".to_string(), "-c".to_string(), script];
        let st = vswitch::sandbox::exec_in(&path, &argv, bind).expect("exec_in");
        assert!(st.success(), "{bind:?}: {st}");
        let text = std::fs::read_to_string(&out).unwrap();
        let (sys, resolv_text) = text.split_once("\n\n").unwrap_or((&text, ""));
        assert_eq!(
            parse_view(&format!("{sys}\n")),
            (
                vec!["eth0".to_string(), "lo".to_string(), "peer0".to_string()],
                "02:42:ac:11:00:99".to_string()
            ),
            "{bind:?}"
        );
        assert_eq!(
            resolv_text.contains("192.0.2.53"),
            bind.is_some(),
            "{bind:?}: {resolv_text}"
        );
    }
    assert_eq!(host_sys_mounts(), before);
}
