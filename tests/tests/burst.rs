//! Bursts through a published port: 100 clients connect at once from an "outside" namespace to
//! `-p 8080:80` in front of a server with a small listen backlog (`python3 -m http.server`
//! keeps socketserver's 5; busybox `httpd`). Every connection must complete, none slower than
//! 1 s (a dropped SYN or ACK costs the kernel's or smoltcp's 1 s retransmission). The relay
//! paces its connections into the container (`gateway::pacing`), so it does better than a
//! direct burst to the container's address: there the kernel's own clients, released together,
//! overrun the backlog too (measured: 50-95 of 100 within 10 s, half over 1 s).

use std::process::Command;
use std::time::Duration;
use vswitch_tests::*;

const HOST_IP: &str = "10.99.0.1";
const OUT_IP: &str = "10.99.0.2";
/// Concurrent clients.
const CLIENTS: usize = 100;
/// Slowest acceptable connection (request to full response).
const MAX_LATENCY: f64 = 1.0;

/// `CLIENTS` threads released together by a barrier, each one GET with a 10 s timeout; prints
/// one line per client: its latency in seconds, or `fail <error>`.
const BURST_CLIENT: &str = r#"
import http.client, sys, threading, time
host, port, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
bar = threading.Barrier(n)
res = [None] * n
def get(i):
    bar.wait()
    t = time.monotonic()
    try:
        c = http.client.HTTPConnection(host, port, timeout=10)
        c.request("GET", "/")
        body = c.getresponse().read()
        c.close()
        res[i] = "%.4f" % (time.monotonic() - t) if body == b"burst\n" else "fail body %r" % body[:40]
    except Exception as e:
        res[i] = "fail %.2f %r" % (time.monotonic() - t, e)
ts = [threading.Thread(target=get, args=(i,)) for i in range(n)]
for t in ts: t.start()
for t in ts: t.join()
print("\n".join(res))
"#;

struct World {
    d: Daemon,
    outside: Netns,
}

fn world(tag: &str) -> World {
    let (host, outside) = host_and_outside(tag, HOST_IP, OUT_IP);
    World {
        d: Daemon::start_in(host, &[]),
        outside,
    }
}

/// A command in a test namespace (nsenter, not `ip netns exec`).
fn nsenter(ns: &Netns, argv: &[&str]) -> Command {
    let mut c = Command::new("nsenter");
    c.arg(format!("--net=/run/netns/{}", ns.name))
        .arg("--")
        .args(argv);
    c
}

/// Runs one burst from `ns` to `host:port`; returns the latencies of the
/// successful connections and the failures.
fn burst(ns: &Netns, host: &str, port: u16) -> (Vec<f64>, Vec<String>) {
    let n = CLIENTS.to_string();
    let p = port.to_string();
    let o = run(&mut nsenter(
        ns,
        &["timeout", "30", "python3", "-c", BURST_CLIENT, host, &p, &n],
    ));
    assert!(o.status.success(), "burst client: {}", stderr(&o));
    let mut lat = Vec::new();
    let mut failed = Vec::new();
    for l in stdout(&o).lines() {
        match l.parse::<f64>() {
            Ok(t) => lat.push(t),
            Err(_) => failed.push(l.to_string()),
        }
    }
    (lat, failed)
}

fn summary(lat: &[f64], failed: &[String]) -> String {
    let over = lat.iter().filter(|t| **t > MAX_LATENCY).count();
    let max = lat.iter().copied().fold(0.0, f64::max);
    let mut sorted = lat.to_vec();
    sorted.sort_by(f64::total_cmp);
    let deciles: Vec<String> = sorted
        .iter()
        .step_by(10)
        .map(|t| format!("{t:.2}"))
        .collect();
    format!(
        "{} of {CLIENTS} completed, {over} over {MAX_LATENCY} s, max {max:.3} s (every 10th: \
         {deciles:?}); failures: {:?}",
        lat.len(),
        failed.iter().take(5).collect::<Vec<_>>()
    )
}

/// Serves `burst\n` with `server` (argv after `--`; `{www}` is its directory) in container
/// `web` on a fresh network, published on 8080, and checks a burst from the outside.
fn burst_through_published_port(tag: &str, subnet: &str, server: &[&str]) {
    // One burst at a time: two at once on a small machine measure its CPU, not the relay.
    static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let w = world(tag);
    let d = &w.d;
    ok(d.vswitch(&["network", "create", "--subnet", subnet, "n"]));
    let www = d.dir.0.join("www");
    std::fs::create_dir_all(&www).unwrap();
    std::fs::write(www.join("index.html"), "burst\n").unwrap();
    let www = www.to_str().unwrap().to_string();
    let mut argv = vec![
        "run", "-d", "--name", "web", "--net", "n", "-p", "8080:80", "--",
    ];
    let server: Vec<String> = server.iter().map(|a| a.replace("{www}", &www)).collect();
    argv.extend(server.iter().map(String::as_str));
    ok(d.vswitch(&argv));
    assert!(
        wait_until(Duration::from_secs(10), || {
            !stdout(&d.in_sandbox("web", &["ss", "-ltnH", "sport = :80"])).is_empty()
        }),
        "server did not listen; log:\n{}",
        d.log()
    );
    let (lat, failed) = burst(&w.outside, HOST_IP, 8080);
    // The server's kernel counts what it dropped (shown on failure).
    let drops = stdout(&d.in_sandbox(
        "web",
        &[
            "nstat",
            "-az",
            "TcpExtListenOverflows",
            "TcpExtListenDrops",
            "TcpExtSyncookiesSent",
            "TcpExtTCPReqQFullDrop",
            "TcpRetransSegs",
        ],
    ));
    let link = stdout(&d.in_sandbox("web", &["ip", "-s", "link", "show", "eth0"]));
    let s = format!("{}\n{drops}{link}", summary(&lat, &failed));
    eprintln!("published: {s}");
    assert!(
        failed.is_empty() && lat.len() == CLIENTS && lat.iter().all(|t| *t <= MAX_LATENCY),
        "published: {s}\ndaemon log:\n{}",
        d.log()
    );
}

#[test]
fn burst_to_python_http_server_with_backlog_5() {
    burst_through_published_port(
        "bpy",
        "10.96.0.0/24",
        &["python3", "-m", "http.server", "80", "--directory", "{www}"],
    );
}

#[test]
fn burst_to_busybox_httpd() {
    burst_through_published_port(
        "bbb",
        "10.97.0.0/24",
        &["busybox", "httpd", "-f", "-p", "80", "-h", "{www}"],
    );
}
