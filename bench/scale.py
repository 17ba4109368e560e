#!/usr/bin/env python3
"""Scale measurements for vswitchd (issue 13.5); prints a Markdown table for the README.

  overlay   N endpoints on one overlay network across H hosts (host namespaces on an underlay
            bridge in a namespace of its own, etcd on host 1, one vswitchd per host). For each
            new endpoint: the time from `vswitch run` returning on one host to the first ping
            answered from a probe container on the next host (p50/p99), and the daemons' memory
            per endpoint (VmRSS growth / endpoints).
  restart   S sandboxes on one bridge network; vswitchd stopped (SIGTERM) and started again: the
            time until the API answers, and until every sandbox answers a ping again.
  networks  B bridge networks on one host: create (p50/p99/total), `network ls`, and
            `network inspect` of every network (p50/p99).

Everything lives in namespaces named vss-*-<pid>, removed at the end (also on failure). Needs
root. Usage: bench/scale.py [--release] [--endpoints 1000] [--hosts 3] [--sandboxes 300]
[--networks 500] [--only overlay|restart|networks]
"""

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

PID = os.getpid()
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NS = []
PROCS = []
TMP = tempfile.mkdtemp(prefix=f"vss-{PID}-")
# Bound on any one wait (daemon start, a ping becoming possible).
WAIT = 60.0


def sh(*args, check=True, timeout=300):
    r = subprocess.run(args, capture_output=True, text=True, timeout=timeout)
    if check and r.returncode != 0:
        raise RuntimeError(f"{' '.join(args)}: {r.stderr.strip()}")
    return r.stdout


def netns(name):
    full = f"vss-{name}-{PID}"
    sh("ip", "netns", "add", full)
    NS.append(full)
    sh("ip", "-n", full, "link", "set", "lo", "up")
    return full


def nsenter(ns, *args):
    target = ns if ns.startswith("/") else f"/run/netns/{ns}"
    return ["nsenter", f"--net={target}", "--", *args]


def pct(xs, p):
    xs = sorted(xs)
    if not xs:
        return float("nan")
    return xs[min(len(xs) - 1, int(round(p / 100.0 * (len(xs) - 1))))]


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


class Daemon:
    def __init__(self, bindir, ns, tag, extra=()):
        self.bindir, self.ns = bindir, ns
        self.dir = os.path.join(TMP, tag)
        os.makedirs(self.dir, exist_ok=True)
        self.sock = os.path.join(self.dir, "sock")
        self.extra = list(extra)
        self.proc = None
        self.start()

    def start(self):
        log = open(os.path.join(self.dir, "log"), "a")
        self.proc = subprocess.Popen(
            nsenter(self.ns, os.path.join(self.bindir, "vswitchd"), "-H", f"unix://{self.sock}",
                    "--data-root", os.path.join(self.dir, "data"),
                    "--exec-root", os.path.join(self.dir, "exec"), "-l", "warn", *self.extra),
            stdout=subprocess.DEVNULL, stderr=log)
        PROCS.append(self.proc)
        deadline = time.time() + WAIT
        while True:
            r = subprocess.run(["curl", "-sf", "--unix-socket", self.sock, "http://x/_ping"],
                               capture_output=True)
            if r.returncode == 0:
                return
            if time.time() > deadline or self.proc.poll() is not None:
                raise RuntimeError(f"vswitchd in {self.ns} did not start; see {self.dir}/log")
            time.sleep(0.01)

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def cli(self, *args):
        return sh(os.path.join(self.bindir, "vswitch"), "-H", f"unix://{self.sock}", *args)

    def get(self, path):
        return json.loads(sh("curl", "-s", "--unix-socket", self.sock, f"http://x{path}"))

    def key(self, name):
        return self.get(f"/containers/{name}/json")["NetworkSettings"]["SandboxKey"]

    def ip(self, name, net):
        return self.get(f"/containers/{name}/json")["NetworkSettings"]["Networks"][net]["IPAddress"]


def first_ping(key, ip):
    """Seconds until `ip` answers from inside `key` (ping every 2 ms, bounded by WAIT)."""
    t0 = time.monotonic()
    r = subprocess.run(nsenter(key, "ping", "-n", "-q", "-c", "1", "-i", "0.002",
                               "-w", str(int(WAIT)), ip), capture_output=True)
    if r.returncode != 0:
        return None
    return time.monotonic() - t0


def overlay(bindir, endpoints, hosts):
    if not shutil.which("etcd"):
        raise RuntimeError("etcd missing (apt-get install etcd-server)")
    ul = netns("ul")
    sh("ip", "-n", ul, "link", "add", "br0", "type", "bridge")
    sh("ip", "-n", ul, "link", "set", "br0", "up")
    hs = []
    for i in range(1, hosts + 1):
        h = netns(f"h{i}")
        sh("ip", "-n", ul, "link", "add", f"p{i}", "type", "veth", "peer", "name", "ul0",
           "netns", h)
        sh("ip", "-n", ul, "link", "set", f"p{i}", "master", "br0", "up")
        sh("ip", "-n", h, "addr", "add", f"10.230.0.{i}/24", "dev", "ul0")
        sh("ip", "-n", h, "link", "set", "ul0", "up")
        hs.append(h)
    url = "http://10.230.0.1:2379"
    etcd = subprocess.Popen(
        nsenter(hs[0], "etcd", "--name", "n0", "--data-dir", os.path.join(TMP, "etcd"),
                "--listen-client-urls", url, "--advertise-client-urls", url,
                "--listen-peer-urls", "http://10.230.0.1:2380",
                "--initial-advertise-peer-urls", "http://10.230.0.1:2380",
                "--initial-cluster", "n0=http://10.230.0.1:2380"),
        stdout=subprocess.DEVNULL, stderr=open(os.path.join(TMP, "etcd.log"), "w"))
    PROCS.append(etcd)
    deadline = time.time() + WAIT
    while "true" not in subprocess.run(nsenter(hs[0], "curl", "-s", f"{url}/health"),
                                       capture_output=True, text=True).stdout:
        if time.time() > deadline:
            raise RuntimeError("etcd did not start")
        time.sleep(0.1)
    ds = [Daemon(bindir, h, f"o{i}", ["--cluster-store", "etcd://10.230.0.1:2379",
                                       "--cluster-advertise", f"10.230.0.{i + 1}"])
          for i, h in enumerate(hs)]
    ds[0].cli("network", "create", "-d", "overlay", "--subnet", "10.231.0.0/20", "scale")
    for d in ds[1:]:
        deadline = time.time() + WAIT
        while "scale" not in d.cli("network", "ls"):
            if time.time() > deadline:
                raise RuntimeError("overlay not seen on every host")
            time.sleep(0.1)
    # One probe container per host pings the new endpoints of the previous host.
    probes = []
    for i, d in enumerate(ds):
        d.cli("run", "-d", "--name", f"probe{i}", "--net", "scale", "--", "sleep", "infinity")
        probes.append(d.key(f"probe{i}"))
    rss0 = [rss_kib(d.proc.pid) for d in ds]
    times, failed = [], 0
    t_all = time.monotonic()
    for n in range(endpoints):
        h = n % hosts
        d = ds[h]
        name = f"e{n}"
        d.cli("run", "-d", "--name", name, "--net", "scale", "--", "sleep", "infinity")
        ip = d.ip(name, "scale")
        t = first_ping(probes[(h + 1) % hosts], ip)
        if t is None:
            failed += 1
        else:
            times.append(t * 1000)
        if (n + 1) % 100 == 0:
            print(f"  overlay: {n + 1}/{endpoints} endpoints", file=sys.stderr)
    total = time.monotonic() - t_all
    rss1 = [rss_kib(d.proc.pid) for d in ds]
    per_ep = (sum(rss1) - sum(rss0)) / max(1, endpoints)
    rows = [
        (f"overlay: run → first ping from another host, p50 ({endpoints} endpoints, {hosts} hosts)",
         f"{pct(times, 50):.1f} ms"),
        ("overlay: run → first ping from another host, p99", f"{pct(times, 99):.1f} ms"),
        ("overlay: endpoints never reached", str(failed)),
        ("overlay: daemon memory per endpoint (VmRSS growth, all hosts)", f"{per_ep:.1f} KiB"),
        ("overlay: time to start all endpoints (incl. probes)", f"{total:.1f} s"),
    ]
    for d in ds:
        d.stop()
    etcd.terminate()
    etcd.wait()
    return rows


def restart(bindir, sandboxes):
    h = netns("rh")
    d = Daemon(bindir, h, "r")
    d.cli("network", "create", "--subnet", "10.232.0.0/22", "rnet")
    for n in range(sandboxes):
        d.cli("run", "-d", "--name", f"s{n}", "--net", "rnet", "--", "sleep", "infinity")
    keys = [d.key(f"s{n}") for n in range(sandboxes)]
    ips = [d.ip(f"s{n}", "rnet") for n in range(sandboxes)]
    d.stop()
    t0 = time.monotonic()
    d.start()
    t_api = time.monotonic() - t0
    # Every sandbox answers the host interface's ping again (checked from the daemon's side).
    pending = set(range(sandboxes))
    deadline = time.time() + WAIT
    while pending and time.time() < deadline:
        for i in list(pending):
            r = subprocess.run(nsenter(keys[i], "ping", "-n", "-q", "-c", "1", "-W", "1",
                                       "10.232.0.1"), capture_output=True)
            if r.returncode == 0:
                pending.discard(i)
    t_all = time.monotonic() - t0
    del ips
    d.stop()
    return [
        (f"restart with {sandboxes} sandboxes: API answers", f"{t_api:.2f} s"),
        (f"restart with {sandboxes} sandboxes: every sandbox reachable again",
         f"{t_all:.2f} s" + (f" ({len(pending)} never)" if pending else "")),
    ]


def networks(bindir, count):
    h = netns("nh")
    d = Daemon(bindir, h, "n", ["--default-address-pool", "base=10.128.0.0/9,size=24"])
    creates = []
    for n in range(count):
        t0 = time.monotonic()
        d.cli("network", "create", f"n{n}")
        creates.append((time.monotonic() - t0) * 1000)
    t0 = time.monotonic()
    out = d.cli("network", "ls")
    t_ls = (time.monotonic() - t0) * 1000
    assert out.count("\n") >= count, "network ls lists every network"
    inspects = []
    for n in range(count):
        t0 = time.monotonic()
        d.cli("network", "inspect", f"n{n}")
        inspects.append((time.monotonic() - t0) * 1000)
    d.stop()
    return [
        (f"{count} bridge networks: create p50 / p99", f"{pct(creates, 50):.1f} / {pct(creates, 99):.1f} ms"),
        (f"{count} bridge networks: create all", f"{sum(creates) / 1000:.1f} s"),
        (f"{count} bridge networks: `network ls`", f"{t_ls:.1f} ms"),
        (f"{count} bridge networks: `network inspect` p50 / p99", f"{pct(inspects, 50):.1f} / {pct(inspects, 99):.1f} ms"),
    ]


def cleanup():
    for p in PROCS:
        if p.poll() is None:
            p.kill()
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
    # Sandbox namespaces are bind mounts under the exec roots; the sandboxes' processes
    # (`sleep infinity`) outlive a killed daemon, so kill whatever still runs in them.
    mounts = [line.split()[1] for line in open("/proc/self/mounts") if TMP in line]
    inodes = set()
    for m in mounts:
        try:
            inodes.add(f"net:[{os.stat(m).st_ino}]")
        except OSError:
            pass
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if os.readlink(f"/proc/{pid}/ns/net") in inodes:
                os.kill(int(pid), signal.SIGKILL)
        except OSError:
            pass
    for m in sorted(mounts, reverse=True):
        subprocess.run(["umount", "-l", m], capture_output=True)
    for ns in reversed(NS):
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)
    shutil.rmtree(TMP, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--release", action="store_true")
    ap.add_argument("--endpoints", type=int, default=1000)
    ap.add_argument("--hosts", type=int, default=3)
    ap.add_argument("--sandboxes", type=int, default=300)
    ap.add_argument("--networks", type=int, default=500)
    ap.add_argument("--only", choices=["overlay", "restart", "networks"])
    a = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("bench/scale.py needs root (it creates network namespaces)")
    prof = "release" if a.release else "debug"
    subprocess.run(["cargo", "build", "--bins"] + (["--release"] if a.release else []),
                   cwd=ROOT, check=True)
    bindir = os.path.join(ROOT, "target", prof)
    rows = []
    try:
        if a.only in (None, "networks"):
            rows += networks(bindir, a.networks)
        if a.only in (None, "restart"):
            rows += restart(bindir, a.sandboxes)
        if a.only in (None, "overlay"):
            rows += overlay(bindir, a.endpoints, a.hosts)
    finally:
        cleanup()
    print(f"\n| measurement ({prof} build, {os.cpu_count()} vCPU) | value |")
    print("|---|---|")
    for k, v in rows:
        print(f"| {k} | {v} |")


if __name__ == "__main__":
    main()
