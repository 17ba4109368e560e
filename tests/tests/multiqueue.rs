//! `--tap-queues 2` with two datapath workers: a bridge network spans both workers (a TAP
//! queue and a switch replica each), and the kernel's per-flow queue choice spreads parallel
//! TCP connections over them. Also across a kill -9 and restart (TAPs re-attached with all
//! their queues).

use std::process::Command;
use std::time::Duration;
use vswitch_tests::*;

const ARGS: &[&str] = &["--workers", "2", "--tap-queues", "2"];
/// Parallel TCP connections: with two queues, the odds that all land on one are 2^-(n-1)
/// (1 in 32768 runs).
const STREAMS: &str = "16";

/// The queues of a sandbox's eth0 (`rx-0 rx-1 tx-0 tx-1`), from a sysfs mounted in the
/// sandbox's namespace (in a private mount namespace).
fn queues(d: &Daemon, name: &str) -> String {
    ok(d.in_sandbox(
        name,
        &[
            "unshare",
            "-m",
            "sh",
            "-c",
            "mount -t sysfs sysfs /sys && ls /sys/class/net/eth0/queues | tr '\\n' ' '",
        ],
    ))
}

/// Frames each worker received from `net`'s ports, by worker.
fn worker_frames(d: &Daemon, net: &str) -> Vec<(String, u64)> {
    let prefix = format!("vswitch_network_worker_rx_frames_total{{network=\"{net}\",worker=\"");
    let mut out: Vec<(String, u64)> = d
        .metrics_text()
        .lines()
        .filter_map(|l| {
            let rest = l.strip_prefix(&prefix)?;
            let (w, v) = rest.split_once("\"} ")?;
            Some((w.to_string(), v.trim().parse().ok()?))
        })
        .collect();
    out.sort();
    out
}

/// Whether something listens on TCP `port` in the namespace at `ns` (a path).
fn listens(ns: &str, port: u16) -> bool {
    !run(Command::new("nsenter").arg(format!("--net={ns}")).args([
        "ss",
        "-ltnH",
        &format!("sport = :{port}"),
    ]))
    .stdout
    .is_empty()
}

/// An iperf3 transfer with [`STREAMS`] connections: server on `port` in the namespace at
/// `server_ns` (made by `server`), client `client` run against `ip`:`client_port`;
/// returns the bytes received.
fn iperf(
    server: Command,
    server_ns: &str,
    port: u16,
    client: impl FnOnce(&[&str]) -> std::process::Output,
    ip: &str,
    client_port: u16,
) -> u64 {
    let _srv = Bg::spawn(server);
    assert!(
        wait_until(Duration::from_secs(10), || listens(server_ns, port)),
        "iperf3 server in {server_ns} did not start"
    );
    let cp = client_port.to_string();
    let o = client(&[
        "timeout", "30", "iperf3", "-c", ip, "-p", &cp, "-P", STREAMS, "-t", "2", "-J",
    ]);
    assert!(o.status.success(), "iperf3: {}{}", stdout(&o), stderr(&o));
    let j: serde_json::Value = serde_json::from_str(&stdout(&o)).expect("iperf3 JSON");
    j["end"]["sum_received"]["bytes"].as_u64().unwrap_or(0)
}

/// Container `from` to container `to` (at `to_ip`).
fn transfer(d: &Daemon, from: &str, to: &str, to_ip: &str) -> u64 {
    let key = d.sandbox_key(to).display().to_string();
    iperf(
        d.in_sandbox_cmd(to, &["iperf3", "-s", "-1", "-p", "5201"]),
        &key,
        5201,
        |argv| d.in_sandbox(from, argv),
        to_ip,
        5201,
    )
}

/// Both workers carried frames of `net` (and how many more than `before`).
fn both_workers_carried(d: &Daemon, net: &str, before: &[(String, u64)]) {
    let after = worker_frames(d, net);
    eprintln!("{net}: frames by worker before {before:?}, after {after:?}");
    assert_eq!(after.len(), 2, "two workers serve {net}: {after:?}");
    for (w, v) in &after {
        let was = before.iter().find(|(b, _)| b == w).map_or(0, |(_, v)| *v);
        // Hundreds of frames per stream even for 2 s of GSO frames; a stray ARP is a few.
        assert!(
            v.saturating_sub(was) > 100,
            "worker {w} carried almost nothing: before {before:?}, after {after:?}"
        );
    }
}

#[test]
fn a_bridge_network_spans_two_workers_with_two_tap_queues() {
    let mut d = Daemon::start_with("mq", ARGS);
    ok(d.vswitch(&["network", "create", "--subnet", "10.91.0.0/24", "mq"]));
    d.run_sandbox("a", &["--net", "mq"]);
    d.run_sandbox("b", &["--net", "mq"]);
    // Each TAP has one queue per worker (sysfs lists tx-N/rx-N per queue).
    let q = queues(&d, "a");
    assert!(q.contains("tx-1") && !q.contains("tx-2"), "{q}");
    assert!(d.pings("a", "10.91.0.3"));
    assert!(d.pings("b", "10.91.0.2"));
    // The host interface and the NAT gateway (owner worker) still work.
    assert!(d.pings("a", "10.91.0.1"));
    let before = worker_frames(&d, "mq");
    assert!(transfer(&d, "a", "b", "10.91.0.3") > 0);
    both_workers_carried(&d, "mq", &before);

    // kill -9 and restart: the persistent TAPs come back with both queues served.
    d.kill(libc::SIGKILL);
    d.restart();
    assert!(wait_until(Duration::from_secs(10), || d.pings("a", "10.91.0.3")));
    let q = queues(&d, "b");
    assert!(q.contains("tx-1") && !q.contains("tx-2"), "{q}");
    let before = worker_frames(&d, "mq");
    assert!(transfer(&d, "b", "a", "10.91.0.2") > 0);
    both_workers_carried(&d, "mq", &before);
}

#[test]
fn without_the_flag_a_network_stays_on_one_worker() {
    let d = Daemon::start_with("mq1", &["--workers", "2"]);
    ok(d.vswitch(&["network", "create", "--subnet", "10.92.0.0/24", "one"]));
    d.run_sandbox("a", &["--net", "one"]);
    d.run_sandbox("b", &["--net", "one"]);
    let q = queues(&d, "a");
    assert!(q.contains("tx-0") && !q.contains("tx-1"), "{q}");
    assert!(d.pings("a", "10.92.0.3"));
    assert_eq!(worker_frames(&d, "one").len(), 1);
}

#[test]
fn nat_and_published_ports_work_on_a_spread_network() {
    let (host, outside) = host_and_outside("mqn", "10.93.0.1", "10.93.0.2");
    let d = Daemon::start_in(host, ARGS);
    ok(d.vswitch(&["network", "create", "--subnet", "10.94.0.0/24", "n"]));
    d.run_sandbox("c", &["--net", "n", "-p", "15201:5201"]);
    let out_ns = format!("/run/netns/{}", outside.name);
    // Container → outside through the NAT engine: frames from either worker's queue are
    // written to the gateway's one socket; its replies come back through the owner.
    let up = iperf(
        outside.cmd(&["iperf3", "-s", "-1", "-p", "5202"]),
        &out_ns,
        5202,
        |argv| d.in_sandbox("c", argv),
        "10.93.0.2",
        5202,
    );
    assert!(up > 0);
    // Outside → published port → container.
    let key = d.sandbox_key("c").display().to_string();
    let down = iperf(
        d.in_sandbox_cmd("c", &["iperf3", "-s", "-1", "-p", "5201"]),
        &key,
        5201,
        |argv| outside.exec(argv),
        "10.93.0.1",
        15201,
    );
    assert!(down > 0);
    assert!(d.pings("c", "10.93.0.2"));
}
