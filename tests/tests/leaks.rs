//! No leaks (issue 13.6): many `run`/`rm` and `connect`/`disconnect` cycles leave the daemon's
//! fds, threads, TAP devices (in its namespace and in the sandbox) and memory where they were
//! after a warm-up.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};
use vswitch_tests::*;

/// Cycles of each kind (the issue asks for 1,000; `LEAK_CYCLES` overrides it for a quick run).
const CYCLES: usize = 1000;
/// Cycles run before the baseline is taken (allocator arenas, thread pools, caches warm up).
const WARMUP: usize = 30;
/// Growth of VmRSS allowed over the measured cycles: allocator fragmentation and lazily
/// touched pages, not per-cycle state (a leak of 1 KiB per cycle would exceed it; 1,000
/// run/rm cycles measured +144 KiB here, connect/disconnect +0).
const RSS_TOLERANCE_KIB: u64 = 768;
/// Bound on each phase: a daemon that slows down per cycle fails the test instead of running
/// on (1,000 run/rm cycles take 2.5 min on an idle 2-core machine, 13 min at load 19).
const PHASE_BUDGET: Duration = Duration::from_secs(20 * 60);
/// How long idle threads (tokio's blocking pool keeps them 10 s) may take to go away.
const SETTLE: Duration = Duration::from_secs(20);

fn cycles() -> usize {
    std::env::var("LEAK_CYCLES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(CYCLES)
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Usage {
    fds: usize,
    threads: usize,
    /// Interfaces in the daemon's namespace.
    host_links: usize,
    /// Interfaces in the long-lived sandbox.
    sandbox_links: usize,
    rss_kib: u64,
    /// Files under the exec root and the data root (namespaces, resolv.conf, logs, records).
    files: usize,
}

fn count_files(p: &std::path::Path) -> usize {
    std::fs::read_dir(p)
        .map(|rd| {
            rd.flatten()
                .map(|e| match e.file_type() {
                    Ok(t) if t.is_dir() => count_files(&e.path()),
                    _ => 1,
                })
                .sum()
        })
        .unwrap_or(0)
}

fn count_dir(p: &str) -> usize {
    std::fs::read_dir(p).map(|rd| rd.count()).unwrap_or(0)
}

fn links(out: &str) -> usize {
    let v: serde_json::Value = serde_json::from_str(out).expect("ip -j link");
    v.as_array().map(Vec::len).unwrap_or(0)
}

fn usage(d: &Daemon, sandbox: &str) -> Usage {
    let pid = d.pid();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    let rss_kib = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .expect("VmRSS");
    Usage {
        fds: count_dir(&format!("/proc/{pid}/fd")),
        threads: count_dir(&format!("/proc/{pid}/task")),
        host_links: links(&ok(d.ns.exec(&["ip", "-j", "link", "show"]))),
        sandbox_links: links(&ok(d.in_sandbox(sandbox, &["ip", "-j", "link", "show"]))),
        rss_kib,
        files: count_files(&d.exec_root()) + count_files(&d.data_root()),
    }
}

/// What the daemon's fds point at, counted (shown when fds leak).
fn fd_kinds(pid: u32) -> BTreeMap<String, usize> {
    let mut m = BTreeMap::new();
    if let Ok(rd) = std::fs::read_dir(format!("/proc/{pid}/fd")) {
        for e in rd.flatten() {
            let t = std::fs::read_link(e.path())
                .map(|p| p.to_string_lossy().into_owned())
                .unwrap_or_default();
            let kind = t.split(':').next().unwrap_or("").to_string();
            *m.entry(kind).or_default() += 1;
        }
    }
    m
}

/// Counts must come back exactly (bounded wait for idle threads); memory within the tolerance.
fn assert_back(d: &Daemon, what: &str, base: &Usage, sandbox: &str) {
    let mut now = usage(d, sandbox);
    wait_until(SETTLE, || {
        now = usage(d, sandbox);
        now.fds <= base.fds && now.threads <= base.threads
    });
    eprintln!("{what}: baseline {base:?}, after {now:?}");
    assert!(
        now.fds <= base.fds,
        "{what}: fds {} -> {} ({:?})",
        base.fds,
        now.fds,
        fd_kinds(d.pid())
    );
    assert!(
        now.threads <= base.threads,
        "{what}: threads {} -> {}",
        base.threads,
        now.threads
    );
    assert_eq!(
        now.host_links, base.host_links,
        "{what}: interfaces in the daemon's namespace"
    );
    assert_eq!(
        now.sandbox_links, base.sandbox_links,
        "{what}: interfaces in the sandbox"
    );
    assert_eq!(
        now.files, base.files,
        "{what}: files under the exec and data roots"
    );
    assert!(
        now.rss_kib <= base.rss_kib + RSS_TOLERANCE_KIB,
        "{what}: VmRSS {} KiB -> {} KiB (tolerance {RSS_TOLERANCE_KIB} KiB)",
        base.rss_kib,
        now.rss_kib
    );
}

/// One API call that must succeed (the API directly, not the CLI: a CLI process per call
/// would double the test's time without exercising more of the daemon).
fn api(d: &Daemon, method: &str, path: &str, body: Option<&str>) {
    let r = d.request(method, path, body);
    assert!(
        (200..300).contains(&r.status),
        "{method} {path}: {} {}",
        r.status,
        r.body
    );
}

/// `vswitch run -d --name cN --net lk -- sleep infinity`, then `vswitch rm -f cN`.
fn run_rm(d: &Daemon, i: usize) {
    let name = format!("c{i}");
    let body = r#"{"Cmd":["sleep","infinity"],"HostConfig":{"NetworkMode":"lk"},"NetworkingConfig":{"EndpointsConfig":{"lk":{}}}}"#;
    api(
        d,
        "POST",
        &format!("/containers/create?name={name}"),
        Some(body),
    );
    api(d, "POST", &format!("/containers/{name}/start"), None);
    api(d, "DELETE", &format!("/containers/{name}?force=1"), None);
}

/// `vswitch network connect lk2 keep`, then `disconnect`.
fn connect_disconnect(d: &Daemon) {
    let body = r#"{"Container":"keep"}"#;
    api(d, "POST", "/networks/lk2/connect", Some(body));
    api(d, "POST", "/networks/lk2/disconnect", Some(body));
}

#[test]
fn run_rm_and_connect_disconnect_cycles_leave_no_trace() {
    require_root();
    let n = cycles();
    let d = Daemon::start("lek");
    ok(d.vswitch(&["network", "create", "--subnet", "10.93.0.0/24", "lk"]));
    ok(d.vswitch(&["network", "create", "--subnet", "10.93.1.0/24", "lk2"]));
    // A long-lived sandbox: the connect/disconnect target, and a peer of every new one.
    d.run_sandbox("keep", &["--net", "lk"]);

    for i in 0..WARMUP {
        run_rm(&d, i);
        connect_disconnect(&d);
    }
    let base = usage(&d, "keep");
    let t0 = Instant::now();
    for i in 0..n {
        run_rm(&d, WARMUP + i);
        assert!(
            t0.elapsed() < PHASE_BUDGET,
            "{i} run/rm cycles took {:?}",
            t0.elapsed()
        );
        if (i + 1) % 250 == 0 {
            eprintln!("after {} run/rm cycles: {:?}", i + 1, usage(&d, "keep"));
        }
    }
    let t_run = t0.elapsed();
    assert_back(&d, &format!("{n} run/rm cycles"), &base, "keep");

    let base = usage(&d, "keep");
    let t1 = Instant::now();
    for i in 0..n {
        connect_disconnect(&d);
        assert!(
            t1.elapsed() < PHASE_BUDGET,
            "{i} connect/disconnect cycles took {:?}",
            t1.elapsed()
        );
    }
    let t_conn = t1.elapsed();
    assert_back(&d, &format!("{n} connect/disconnect cycles"), &base, "keep");
    // Still working: a new sandbox talks to the long-lived one.
    d.run_sandbox("last", &["--net", "lk"]);
    assert!(d.pings("last", "10.93.0.2"));
    eprintln!("{n} run/rm cycles in {t_run:?}, {n} connect/disconnect cycles in {t_conn:?}");
}
