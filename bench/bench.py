#!/usr/bin/env python3
"""Datapath benchmark: vswitchd against the kernel path, in the same run.

Builds two "containers" (network namespaces) c1 (client) and c2 (server) on one network twice:
  - through vswitchd (userspace switch, TAP ports), the daemon in its own namespace;
  - through a Linux bridge with veth pairs (Docker's bridge driver), in namespaces of its own.
Measures TCP throughput (iperf3, 1 and 4 streams), 64-byte UDP packet rate with the switch's
CPU time per packet (vswitchd only: the kernel's is not attributable), and ping-pong round trip
(sockperf, median and p99). Prints each figure and the ratio vswitchd / kernel.

Overlay rows: two "host" namespaces linked by a veth (MTU 1500), a container on each, on one
VXLAN overlay (VNI 256, port 4789, MTU 1450):
  - kernel: a vxlan device pointing at the other host, a Linux bridge and a veth to the
    container on each host (Docker's overlay data path without the proxy ARP);
  - vswitchd: one daemon per host (--cluster-store etcd://…, etcd on host 1) and
    `network create -d overlay`: the userspace switch and its VXLAN tunnel socket.

Docker rows: two real Docker containers (Debian's dockerd, a busybox image) on a network of
vswitchd's remote network driver, measured like the same-host rows and compared with the same
kernel bridge + veth figures (`--only-docker`: just TCP and RTT for kernel, vswitch sandboxes
and Docker containers).

Everything lives in namespaces named vsb-*-<pid>, removed at the end (also on failure).
Prints the issue-12 table: each figure's median over --runs runs with its [min-max] spread,
the ratio of medians and the target. `--profile` adds where vswitchd's CPU went, per thread
and phase (and perf's top symbols when perf is installed); `--bin-dir` measures another
build's binaries (one lever against the other) without building.

Needs root. Usage: bench/bench.py [--seconds 5] [--runs 3] [--release] [--profile]
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
# --bin-dir: binaries to measure instead of this tree's target/{debug,release}.
BIN_DIR = None
# --daemon-arg: extra vswitchd arguments (a lever to measure, e.g. --busy-poll-us=50).
DAEMON_ARGS = []
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NS = []


def sh(*args, check=True, capture=True, timeout=120):
    r = subprocess.run(args, capture_output=capture, text=True, timeout=timeout)
    if check and r.returncode != 0:
        raise RuntimeError(f"{' '.join(args)}: {r.stderr.strip()}")
    return r.stdout if capture else ""


def bin_dir(release):
    return BIN_DIR or os.path.join(ROOT, "target", "release" if release else "debug")


def netns(name):
    full = f"vsb-{name}-{PID}"
    sh("ip", "netns", "add", full)
    NS.append(full)
    sh("ip", "-n", full, "link", "set", "lo", "up")
    return full


def nsexec(path_or_name, *args, **kw):
    """Run inside a namespace given by `ip netns` name or by path (a sandbox key)."""
    target = path_or_name if path_or_name.startswith("/") else f"/run/netns/{path_or_name}"
    return sh("nsenter", f"--net={target}", "--", *args, **kw)


def popen_in(path_or_name, *args):
    target = path_or_name if path_or_name.startswith("/") else f"/run/netns/{path_or_name}"
    return subprocess.Popen(["nsenter", f"--net={target}", "--", *args],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def ensure_tools():
    need = [t for t in ("iperf3", "sockperf", "iptables") if shutil.which(t) is None]
    if need:
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        subprocess.run(["apt-get", "update", "-qq"], env=env, check=True)
        subprocess.run(["apt-get", "install", "-y", "-qq", *need], env=env, check=True,
                       stdout=subprocess.DEVNULL)


def wait_port(ns, port, udp=False, timeout=10.0):
    deadline = time.time() + timeout
    flag = "-lunH" if udp else "-ltnH"
    while time.time() < deadline:
        if nsexec(ns, "ss", flag, f"sport = :{port}", check=False).strip():
            return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {port} in {ns}")


def gbits(iperf_json):
    """Received Gbit/s from iperf3 -J output; None (reported) when the run failed."""
    try:
        j = json.loads(iperf_json)
        return j["end"]["sum_received"]["bits_per_second"] / 1e9
    except (ValueError, KeyError) as e:
        err = j.get("error") if isinstance(locals().get("j"), dict) else iperf_json[-200:]
        print(f"iperf3 run failed: {err or e}", file=sys.stderr)
        return None


def iperf_tcp(client, server, server_ip, streams, seconds):
    srv = popen_in(server, "iperf3", "-s", "-1", "-p", "5201")
    try:
        wait_port(server, 5201)
        out = nsexec(client, "iperf3", "-c", server_ip, "-p", "5201", "-t", str(seconds),
                     "-P", str(streams), "-J", timeout=seconds + 30, check=False)
        return gbits(out)
    finally:
        srv.kill()
        srv.wait()


def iperf_udp64(client, server, server_ip, seconds):
    srv = popen_in(server, "iperf3", "-s", "-1", "-p", "5202")
    try:
        wait_port(server, 5202)
        out = nsexec(client, "iperf3", "-c", server_ip, "-p", "5202", "-u", "-b", "0", "-l", "64",
                     "-t", str(seconds), "-J", timeout=seconds + 30)
        j = json.loads(out)
        s = j["end"]["sum"]
        packets = s.get("packets", 0)
        lost = s.get("lost_packets", 0)
        return (packets - lost) / seconds / 1e3, packets
    finally:
        srv.kill()
        srv.wait()


def sockperf_rtt(client, server, server_ip, seconds):
    srv = popen_in(server, "sockperf", "server", "-i", server_ip, "-p", "11111", "--tcp")
    try:
        wait_port(server, 11111)
        out = nsexec(client, "sockperf", "ping-pong", "-i", server_ip, "-p", "11111", "--tcp",
                     "-m", "64", "-t", str(seconds), timeout=seconds + 30)
        med = p99 = None
        for line in out.splitlines():
            if "percentile 50.000" in line:
                med = float(line.split("=")[-1])
            if "percentile 99.000" in line:
                p99 = float(line.split("=")[-1])
        return med, p99
    finally:
        srv.kill()
        srv.wait()


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks  # utime + stime


def kernel_world():
    br = netns("kbr")
    c1, c2 = netns("k1"), netns("k2")
    sh("ip", "-n", br, "link", "add", "br0", "type", "bridge")
    sh("ip", "-n", br, "link", "set", "br0", "up")
    for i, c in ((1, c1), (2, c2)):
        sh("ip", "-n", br, "link", "add", f"v{i}", "type", "veth", "peer", "name", "eth0",
           "netns", c)
        sh("ip", "-n", br, "link", "set", f"v{i}", "master", "br0", "up")
        sh("ip", "-n", c, "addr", "add", f"10.201.0.{i + 1}/24", "dev", "eth0")
        sh("ip", "-n", c, "link", "set", "eth0", "up")
    return c1, c2, "10.201.0.3"


def link(a, b, a_if, b_if, a_ip, b_ip):
    sh("ip", "-n", a, "link", "add", a_if, "type", "veth", "peer", "name", b_if, "netns", b)
    sh("ip", "-n", a, "addr", "add", a_ip, "dev", a_if)
    sh("ip", "-n", b, "addr", "add", b_ip, "dev", b_if)
    sh("ip", "-n", a, "link", "set", a_if, "up")
    sh("ip", "-n", b, "link", "set", b_if, "up")


def kernel_nat_world():
    """Docker's kernel path: a bridge, iptables MASQUERADE and DNAT, ip_forward on — all in
    namespaces of this benchmark. Returns (container, outside, host uplink IP)."""
    host, c, out = netns("knh"), netns("knc"), netns("kno")
    sh("ip", "-n", host, "link", "add", "br0", "type", "bridge")
    sh("ip", "-n", host, "addr", "add", "10.203.0.1/24", "dev", "br0")
    sh("ip", "-n", host, "link", "set", "br0", "up")
    sh("ip", "-n", host, "link", "add", "v1", "type", "veth", "peer", "name", "eth0", "netns", c)
    sh("ip", "-n", host, "link", "set", "v1", "master", "br0", "up")
    sh("ip", "-n", c, "addr", "add", "10.203.0.2/24", "dev", "eth0")
    sh("ip", "-n", c, "link", "set", "eth0", "up")
    sh("ip", "-n", c, "route", "add", "default", "via", "10.203.0.1")
    link(host, out, "up0", "out0", "10.204.0.1/24", "10.204.0.2/24")
    nsexec(host, "sysctl", "-qw", "net.ipv4.ip_forward=1")
    nsexec(host, "iptables", "-t", "nat", "-A", "POSTROUTING", "-s", "10.203.0.0/24",
           "!", "-o", "br0", "-j", "MASQUERADE")
    nsexec(host, "iptables", "-t", "nat", "-A", "PREROUTING", "-p", "tcp", "--dport", "15201",
           "-j", "DNAT", "--to-destination", "10.203.0.2:5201")
    return c, out, "10.204.0.1"


def measure_nat(c, out, out_ip, host_ip, seconds, runs):
    """Container → outside, and outside → published port (host:15201 → container:5201)."""
    res = {}
    res["nat_out"] = [iperf_tcp(c, out, out_ip, 1, seconds) for _ in range(runs)]
    vals = []
    for _ in range(runs):
        srv = popen_in(c, "iperf3", "-s", "-1", "-p", "5201")
        try:
            wait_port(c, 5201)
            vals.append(gbits(nsexec(out, "iperf3", "-c", host_ip, "-p", "15201", "-t",
                                     str(seconds), "-J", timeout=seconds + 30, check=False)))
        finally:
            srv.kill()
            srv.wait()
    res["nat_in"] = vals
    return res


class Vswitch:
    def __init__(self, release, nat=False):
        self.ns = netns("vsd")
        self.out = None
        if nat:
            self.out = netns("vso")
            link(self.ns, self.out, "up0", "out0", "10.205.0.1/24", "10.205.0.2/24")
        self.dir = tempfile.mkdtemp(prefix=f"vsb-{PID}-")
        if release and not BIN_DIR:
            sh("cargo", "build", "--release", "--bins", capture=False, timeout=1800)
        self.bin = bin_dir(release)
        self.sock = os.path.join(self.dir, "sock")
        self.proc = subprocess.Popen(
            ["nsenter", f"--net=/run/netns/{self.ns}", "--", os.path.join(self.bin, "vswitchd"),
             "-H", f"unix://{self.sock}", "--data-root", os.path.join(self.dir, "data"),
             "--exec-root", os.path.join(self.dir, "exec"), "-l", "warn", *DAEMON_ARGS],
            stdout=subprocess.DEVNULL, stderr=open(os.path.join(self.dir, "log"), "w"))
        deadline = time.time() + 20
        while not os.path.exists(self.sock):
            if time.time() > deadline or self.proc.poll() is not None:
                raise RuntimeError("vswitchd did not start")
            time.sleep(0.05)
        time.sleep(0.2)
        self.containers = ("c1", "c2")
        self.cli("network", "create", "--subnet", "10.202.0.0/24", "benchnet")
        for n in ("c1", "c2"):
            self.cli("run", "-d", "--name", n, "--net", "benchnet", "-p", "15201:5201" if n == "c1" else "15202:5202",
                     "--", "sleep", "infinity")

    def cli(self, *args):
        return sh(os.path.join(self.bin, "vswitch"), "-H", f"unix://{self.sock}", *args)

    def key(self, name):
        j = json.loads(sh("curl", "-s", "--unix-socket", self.sock,
                          f"http://x/containers/{name}/json"))
        return j["NetworkSettings"]["SandboxKey"]

    def daemon_pid(self):
        return self.proc.pid

    def close(self):
        try:
            for n in self.containers:
                self.cli("rm", "-f", n)
        except Exception as e:  # keep tearing down
            print(f"teardown: {e}", file=sys.stderr)
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        shutil.rmtree(self.dir, ignore_errors=True)


def hosts_pair(tag):
    """Two host namespaces on one underlay link (MTU 1500)."""
    h1, h2 = netns(f"{tag}h1"), netns(f"{tag}h2")
    link(h1, h2, "ul0", "ul0", "10.206.0.1/24", "10.206.0.2/24")
    return h1, h2


def kernel_overlay_world():
    """Docker's kernel overlay path on two hosts: vxlan (id 256) + bridge + veth per host."""
    h1, h2 = hosts_pair("ko")
    cs = []
    for i, (h, other) in enumerate(((h1, "10.206.0.2"), (h2, "10.206.0.1")), start=1):
        c = netns(f"ok{i}")
        sh("ip", "-n", h, "link", "add", "vx0", "type", "vxlan", "id", "256", "dstport", "4789",
           "local", f"10.206.0.{i}", "remote", other)
        sh("ip", "-n", h, "link", "add", "br0", "type", "bridge")
        sh("ip", "-n", h, "link", "set", "vx0", "master", "br0", "mtu", "1450", "up")
        sh("ip", "-n", h, "link", "add", "v0", "type", "veth", "peer", "name", "eth0", "netns", c)
        sh("ip", "-n", h, "link", "set", "v0", "master", "br0", "mtu", "1450", "up")
        sh("ip", "-n", h, "link", "set", "br0", "up")
        sh("ip", "-n", c, "link", "set", "eth0", "mtu", "1450")
        sh("ip", "-n", c, "addr", "add", f"10.207.0.{i + 1}/24", "dev", "eth0")
        sh("ip", "-n", c, "link", "set", "eth0", "up")
        cs.append(c)
    nsexec(cs[0], "ping", "-c", "1", "-W", "5", "10.207.0.3")
    return cs[0], cs[1], "10.207.0.3"


class VswitchOverlay:
    """Two vswitchd, one per host namespace, sharing etcd (on host 1); c1 on host 1 and c2 on
    host 2 on one overlay network."""

    def __init__(self, release):
        if not shutil.which("etcd") and not os.path.exists("/usr/bin/etcd"):
            raise RuntimeError("etcd missing (apt-get install etcd-server)")
        self.h1, self.h2 = hosts_pair("vo")
        self.dir = tempfile.mkdtemp(prefix=f"vsb-ovl-{PID}-")
        self.bin = bin_dir(release)
        self.procs = []
        etcd_url = "http://10.206.0.1:2379"
        self.etcd = subprocess.Popen(
            ["nsenter", f"--net=/run/netns/{self.h1}", "--", "etcd", "--name", "n0",
             "--data-dir", os.path.join(self.dir, "etcd"), "--listen-client-urls", etcd_url,
             "--advertise-client-urls", etcd_url,
             "--listen-peer-urls", "http://10.206.0.1:2380",
             "--initial-advertise-peer-urls", "http://10.206.0.1:2380",
             "--initial-cluster", "n0=http://10.206.0.1:2380"],
            stdout=subprocess.DEVNULL, stderr=open(os.path.join(self.dir, "etcd.log"), "w"))
        deadline = time.time() + 30
        while "true" not in nsexec(self.h1, "curl", "-s", f"{etcd_url}/health", check=False):
            if time.time() > deadline or self.etcd.poll() is not None:
                raise RuntimeError("etcd did not start")
            time.sleep(0.2)
        self.socks = []
        for i, h in ((1, self.h1), (2, self.h2)):
            d = os.path.join(self.dir, f"d{i}")
            sock = os.path.join(d, "sock")
            os.makedirs(d)
            self.procs.append(subprocess.Popen(
                ["nsenter", f"--net=/run/netns/{h}", "--", os.path.join(self.bin, "vswitchd"),
                 "-H", f"unix://{sock}", "--data-root", os.path.join(d, "data"),
                 "--exec-root", os.path.join(d, "exec"), "-l", "warn",
                 "--cluster-store", "etcd://10.206.0.1:2379",
                 "--cluster-advertise", f"10.206.0.{i}", *DAEMON_ARGS],
                stdout=subprocess.DEVNULL, stderr=open(os.path.join(d, "log"), "w")))
            self.socks.append(sock)
        for sock, p in zip(self.socks, self.procs):
            deadline = time.time() + 20
            while not os.path.exists(sock):
                if time.time() > deadline or p.poll() is not None:
                    raise RuntimeError("vswitchd (cluster) did not start")
                time.sleep(0.05)
        time.sleep(0.5)
        self.cli(0, "network", "create", "-d", "overlay", "--subnet", "10.208.0.0/24", "benchovl")
        deadline = time.time() + 20
        while "benchovl" not in self.cli(1, "network", "ls"):
            if time.time() > deadline:
                raise RuntimeError("overlay network not seen on host 2")
            time.sleep(0.2)
        self.cli(0, "run", "-d", "--name", "c1", "--net", "benchovl", "--", "sleep", "infinity")
        self.cli(1, "run", "-d", "--name", "c2", "--net", "benchovl", "--", "sleep", "infinity")
        self.c2_ip = self.container(1, "c2")["NetworkSettings"]["Networks"]["benchovl"]["IPAddress"]
        # Remote endpoints arrive through etcd watches: wait until c1 reaches c2.
        deadline = time.time() + 20
        while not self._pings():
            if time.time() > deadline:
                raise RuntimeError("c1 cannot reach c2 over the overlay")
            time.sleep(0.5)

    def _pings(self):
        r = subprocess.run(["nsenter", f"--net={self.key(0, 'c1')}", "--", "ping", "-c", "1",
                            "-W", "1", self.c2_ip], capture_output=True)
        return r.returncode == 0

    def cli(self, i, *args):
        return sh(os.path.join(self.bin, "vswitch"), "-H", f"unix://{self.socks[i]}", *args)

    def container(self, i, name):
        return json.loads(sh("curl", "-s", "--unix-socket", self.socks[i],
                             f"http://x/containers/{name}/json"))

    def key(self, i, name):
        return self.container(i, name)["NetworkSettings"]["SandboxKey"]

    def daemon_pids(self):
        return [p.pid for p in self.procs]

    def close(self):
        for i, n in ((0, "c1"), (1, "c2")):
            try:
                self.cli(i, "rm", "-f", n)
            except Exception as e:  # keep tearing down
                print(f"teardown: {e}", file=sys.stderr)
        for p in self.procs + [self.etcd]:
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
        shutil.rmtree(self.dir, ignore_errors=True)


class VswitchDocker:
    """Two real Docker containers (dockerd from docker.io, busybox image) on a network of the
    vswitch remote driver; vswitchd and dockerd share one namespace, as on a host."""

    def __init__(self, release):
        self.ns = netns("vsk")
        self.dir = tempfile.mkdtemp(prefix=f"vsb-{PID}-dk-")
        self.bin = bin_dir(release)
        self.driver = f"vsb-{PID}"
        self.plugin = f"/run/docker/plugins/{self.driver}.sock"
        os.makedirs("/run/docker/plugins", exist_ok=True)
        d = self.dir
        self.vs = subprocess.Popen(
            ["nsenter", f"--net=/run/netns/{self.ns}", "--", os.path.join(self.bin, "vswitchd"),
             "-H", f"unix://{d}/vs.sock", "--data-root", f"{d}/vs-data", "--exec-root",
             f"{d}/vs-exec", "--docker-plugin-socket", self.plugin, "-l", "warn", *DAEMON_ARGS],
            stdout=subprocess.DEVNULL, stderr=open(f"{d}/vs.log", "w"))
        with open(f"{d}/daemon.json", "w") as f:
            f.write("{}")
        self.dd = subprocess.Popen(
            ["nsenter", f"--net=/run/netns/{self.ns}", "--", "dockerd", "--config-file",
             f"{d}/daemon.json", "--data-root", f"{d}/dd-data", "--exec-root", f"{d}/dd-exec",
             "-H", f"unix://{d}/dd.sock", "--pidfile", f"{d}/dd.pid", "--bridge=none",
             "--iptables=false", "--ip-forward=false", "--ip-masq=false", "--storage-driver=vfs",
             "--containerd-namespace", self.driver, "--containerd-plugins-namespace",
             self.driver + "p"],
            stdout=subprocess.DEVNULL, stderr=open(f"{d}/dd.log", "w"))
        deadline = time.time() + 60
        while subprocess.run(self.docker_argv("version"), capture_output=True).returncode != 0:
            if time.time() > deadline or self.dd.poll() is not None:
                raise RuntimeError("dockerd did not start")
            time.sleep(0.2)
        root = f"{d}/rootfs"
        os.makedirs(f"{root}/bin")
        shutil.copy("/bin/busybox", f"{root}/bin/busybox")
        os.symlink("busybox", f"{root}/bin/sleep")
        sh("tar", "-C", root, "-cf", f"{d}/rootfs.tar", ".")
        self.docker("import", f"{d}/rootfs.tar", "vsbbb:latest")
        self.docker("network", "create", "-d", self.driver, "--subnet", "10.206.0.0/24", "benchnet")
        self.containers = ("c1", "c2")
        for n in self.containers:
            self.docker("run", "-d", "--name", n, "--network", "benchnet", "vsbbb", "sleep", "3600")
        self.c2_ip = self.docker("inspect", "-f",
                                 "{{.NetworkSettings.Networks.benchnet.IPAddress}}", "c2").strip()

    def docker_argv(self, *args):
        return ["docker", "-H", f"unix://{self.dir}/dd.sock", *args]

    def docker(self, *args):
        return sh(*self.docker_argv(*args), timeout=120)

    def key(self, name):
        return self.docker("inspect", "-f", "{{.NetworkSettings.SandboxKey}}", name).strip()

    def daemon_pid(self):
        return self.vs.pid

    def close(self):
        try:
            self.docker("rm", "-f", *self.containers)
        except Exception as e:  # keep tearing down
            print(f"teardown: {e}", file=sys.stderr)
        for p in (self.dd, self.vs):
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
        # containerd and its shims carry our directory in their command lines.
        for pid in os.listdir("/proc"):
            if pid.isdigit():
                try:
                    with open(f"/proc/{pid}/cmdline", "rb") as f:
                        if self.dir.encode() in f.read():
                            os.kill(int(pid), signal.SIGKILL)
                except OSError:
                    pass
        with open("/proc/self/mountinfo") as f:
            mounts = [l.split()[4] for l in f if l.split()[4].startswith(self.dir)]
        for m in sorted(mounts, key=len, reverse=True):
            subprocess.run(["umount", "-l", m], capture_output=True)
        shutil.rmtree(self.dir, ignore_errors=True)
        if os.path.exists(self.plugin):
            os.remove(self.plugin)


def measure_tcp_rtt(c1, c2, ip, seconds, runs, prefix=""):
    res = {"tcp1": [iperf_tcp(c1, c2, ip, 1, seconds) for _ in range(runs)]}
    rtts = [sockperf_rtt(c1, c2, ip, seconds) for _ in range(runs)]
    res["rtt_p50"] = [r[0] for r in rtts]
    res["rtt_p99"] = [r[1] for r in rtts]
    return {prefix + k: v for k, v in res.items()}


def median(xs):
    xs = sorted(x for x in xs if x is not None)
    return xs[len(xs) // 2] if xs else None


def measure(c1, c2, ip, seconds, runs, pid=None, prefix=""):
    """Every figure as the list of its runs' values (median and spread are taken at print)."""
    res = {}
    res["tcp1"] = [iperf_tcp(c1, c2, ip, 1, seconds) for _ in range(runs)]
    res["tcp4"] = [iperf_tcp(c1, c2, ip, 4, seconds) for _ in range(runs)]
    rates, cpus = [], []
    pids = pid if isinstance(pid, list) else ([pid] if pid else [])
    for _ in range(runs):
        before = sum(cpu_seconds(p) for p in pids)
        kpps, packets = iperf_udp64(c1, c2, ip, seconds)
        rates.append(kpps)
        if pids and packets:
            cpus.append((sum(cpu_seconds(p) for p in pids) - before) / packets * 1e6)
    res["udp_kpps"] = rates
    if cpus:
        res["cpu_us_per_pkt"] = cpus
    rtts = [sockperf_rtt(c1, c2, ip, seconds) for _ in range(runs)]
    res["rtt_p50"] = [r[0] for r in rtts]
    res["rtt_p99"] = [r[1] for r in rtts]
    return {prefix + k: v for k, v in res.items()}


class Profile:
    """`--profile`: where vswitchd's CPU goes, per thread and per benchmark phase (from
    /proc/PID/task/*/stat), and with `perf record` over the whole run when perf is installed."""

    def __init__(self, enabled, outdir):
        self.enabled = enabled
        self.outdir = outdir
        self.rows = []  # (phase, thread name, cpu seconds)
        self.perf = []

    @staticmethod
    def threads(pids):
        ticks = os.sysconf("SC_CLK_TCK")
        out = {}
        for pid in pids:
            try:
                tids = os.listdir(f"/proc/{pid}/task")
            except OSError:
                continue
            for tid in tids:
                try:
                    with open(f"/proc/{pid}/task/{tid}/stat") as f:
                        st = f.read()
                except OSError:
                    continue
                name = st[st.index("(") + 1:st.rindex(")")]
                fields = st.rsplit(")", 1)[1].split()
                key = (pid, tid, name)
                out[key] = (int(fields[11]) + int(fields[12])) / ticks
        return out

    def phase(self, name, pids, fn):
        """Run fn(), recording each thread's CPU seconds during it."""
        if not self.enabled:
            return fn()
        before = self.threads(pids)
        perf = None
        if shutil.which("perf"):
            data = os.path.join(self.outdir, f"perf-{name}.data")
            perf = subprocess.Popen(["perf", "record", "-q", "-g", "-F", "499", "-o", data,
                                     "-p", ",".join(str(p) for p in pids)],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        t0 = time.time()
        try:
            return fn()
        finally:
            wall = time.time() - t0
            if perf:
                perf.send_signal(signal.SIGINT)
                perf.wait(timeout=30)
                self.perf.append((name, data))
            after = self.threads(pids)
            per = {}
            for key, v in after.items():
                n = key[2]
                # Numbered threads of one kind (vswitch-dp0, tokio workers) add up by name.
                per[n] = per.get(n, 0.0) + v - before.get(key, 0.0)
            for n, v in sorted(per.items(), key=lambda kv: -kv[1]):
                if v > 0:
                    self.rows.append((name, n, v, wall))

    def report(self):
        if not self.enabled:
            return
        print("\n### Profile: vswitchd CPU per thread and phase\n")
        print("| phase | thread | CPU s | share of one core |")
        print("|---|---|---|---|")
        for phase, n, v, wall in self.rows:
            print(f"| {phase} | {n} | {v:.2f} | {100 * v / wall:.0f} % |")
        for phase, data in self.perf:
            r = subprocess.run(["perf", "report", "-i", data, "--stdio", "--no-children",
                                "--sort", "symbol", "--percent-limit", "2", "-g", "none"],
                               capture_output=True, text=True, timeout=300)
            print(f"\n### perf: {phase} (symbols above 2 %)\n")
            print("```")
            print("\n".join(l for l in r.stdout.splitlines() if l and not l.startswith("#")))
            print("```")
        if self.perf:
            print(f"\nperf data kept in {self.outdir} (perf report -i FILE)")
        else:
            shutil.rmtree(self.outdir, ignore_errors=True)


def fmt(v, nd=2):
    return "-" if v is None else f"{v:.{nd}f}"


def spread(xs):
    """Median [min-max] of one figure's runs."""
    xs = sorted(x for x in (xs or []) if x is not None)
    if not xs:
        return "-"
    if len(xs) == 1:
        return fmt(xs[0])
    return f"{fmt(median(xs))} [{fmt(xs[0])}-{fmt(xs[-1])}]"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=int, default=5)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--release", action="store_true", help="build and use release binaries")
    ap.add_argument("--only-overlay", action="store_true", help="overlay rows only")
    ap.add_argument("--no-overlay", action="store_true", help="no overlay rows")
    ap.add_argument("--only-docker", action="store_true",
                    help="same-host TCP/RTT rows only: kernel, vswitch sandboxes, Docker containers")
    ap.add_argument("--no-docker", action="store_true", help="no Docker rows")
    ap.add_argument("--profile", action="store_true",
                    help="record vswitchd's CPU per thread and phase (and perf, if installed)")
    ap.add_argument("--bin-dir", help="take vswitchd and vswitch from this directory (no build), "
                    "e.g. another worktree's target/release, to compare one lever")
    ap.add_argument("--daemon-arg", action="append", default=[],
                    help="extra vswitchd argument (repeatable), e.g. --daemon-arg=--busy-poll-us=50")
    a = ap.parse_args()
    global BIN_DIR
    BIN_DIR = a.bin_dir
    DAEMON_ARGS.extend(a.daemon_arg)
    prof = Profile(a.profile, tempfile.mkdtemp(prefix=f"vsb-prof-{PID}-") if a.profile else None)
    if os.geteuid() != 0:
        sys.exit("bench needs root (it creates network namespaces)")
    ensure_tools()
    vs = ov = dk = None
    kern, user = {}, {}
    try:
        if a.only_docker:
            if a.release and not BIN_DIR:
                sh("cargo", "build", "--release", "--bins", capture=False, timeout=1800)
            k1, k2, kip = kernel_world()
            kern = measure_tcp_rtt(k1, k2, kip, a.seconds, a.runs)
            vs = Vswitch(a.release)
            user = measure_tcp_rtt(vs.key("c1"), vs.key("c2"), "10.202.0.3", a.seconds, a.runs)
            vs.close()
            vs = None
        if not a.only_overlay and not a.only_docker:
            k1, k2, kip = kernel_world()
            kern = measure(k1, k2, kip, a.seconds, a.runs)
            kc, ko, kip = kernel_nat_world()
            kern.update(measure_nat(kc, ko, "10.204.0.2", kip, a.seconds, a.runs))
            vs = Vswitch(a.release, nat=True)
            user = prof.phase("same host", [vs.daemon_pid()], lambda: measure(
                vs.key("c1"), vs.key("c2"), "10.202.0.3", a.seconds, a.runs,
                pid=vs.daemon_pid()))
            user.update(prof.phase("NAT", [vs.daemon_pid()], lambda: measure_nat(
                vs.key("c1"), vs.out, "10.205.0.2", "10.205.0.1", a.seconds, a.runs)))
            vs.close()
            vs = None
        if not a.no_docker and not a.only_overlay:
            dk = VswitchDocker(a.release)
            user.update(measure_tcp_rtt(dk.key("c1"), dk.key("c2"), dk.c2_ip, a.seconds,
                                        a.runs, prefix="dk_"))
            # The kernel reference is the same-host bridge + veth pair of this run.
            for k in ("tcp1", "rtt_p50", "rtt_p99"):
                if k in kern:
                    kern["dk_" + k] = kern[k]
            dk.close()
            dk = None
        if not a.no_overlay and not a.only_docker:
            o1, o2, oip = kernel_overlay_world()
            kern.update(measure(o1, o2, oip, a.seconds, a.runs, prefix="ovl_"))
            if a.release and a.only_overlay and not BIN_DIR:
                sh("cargo", "build", "--release", "--bins", capture=False, timeout=1800)
            ov = VswitchOverlay(a.release)
            user.update(prof.phase("overlay", ov.daemon_pids(), lambda: measure(
                ov.key(0, "c1"), ov.key(1, "c2"), ov.c2_ip, a.seconds, a.runs,
                pid=ov.daemon_pids(), prefix="ovl_")))
    finally:
        if dk:
            dk.close()
        if vs:
            vs.close()
        if ov:
            ov.close()
        for n in reversed(NS):
            subprocess.run(["ip", "netns", "del", n], capture_output=True)

    # (label, key, higher is better, target: ("ratio", x) or ("abs", µs))
    rows = [
        ("same host TCP 1 stream (Gbit/s)", "tcp1", True, ("ratio", 1.0)),
        ("same host TCP 4 streams (Gbit/s)", "tcp4", True, ("ratio", 1.0)),
        ("same host UDP 64 B (kpps received)", "udp_kpps", True, ("ratio", 1.0)),
        ("same host RTT p50 (us)", "rtt_p50", False, ("ratio", 1.2)),
        ("same host RTT p99 (us)", "rtt_p99", False, ("ratio", 1.5)),
        ("switch CPU per 64 B packet (us)", "cpu_us_per_pkt", False, ("abs", 1.5)),
        ("NAT TCP container -> outside (Gbit/s)", "nat_out", True, ("ratio", 0.9)),
        ("NAT TCP outside -> published port (Gbit/s)", "nat_in", True, ("ratio", 0.9)),
        ("overlay TCP 1 stream (Gbit/s)", "ovl_tcp1", True, ("ratio", 0.9)),
        ("overlay TCP 4 streams (Gbit/s)", "ovl_tcp4", True, ("ratio", 0.9)),
        ("overlay RTT p50 (us)", "ovl_rtt_p50", False, ("ratio", 1.5)),
        ("overlay CPU per 64 B packet, both daemons (us)", "ovl_cpu_us_per_pkt", False,
         ("abs", 4.0)),
        ("overlay UDP 64 B (kpps received)", "ovl_udp_kpps", True, None),
        ("overlay RTT p99 (us)", "ovl_rtt_p99", False, None),
        ("Docker containers: TCP 1 stream (Gbit/s)", "dk_tcp1", True, None),
        ("Docker containers: RTT p50 (us)", "dk_rtt_p50", False, None),
        ("Docker containers: RTT p99 (us)", "dk_rtt_p99", False, None),
    ]
    print(f"\nvswitchd ({'release' if a.release else 'debug'}) against the kernel, same run; "
          f"median of {a.runs} runs of {a.seconds} s [min-max]; kernel: bridge + veth "
          "(NAT rows: + iptables; overlay rows: + vxlan); machine: "
          f"{os.cpu_count()} CPUs, {os.uname().release}"
          + (f"; vswitchd {' '.join(DAEMON_ARGS)}" if DAEMON_ARGS else "") + "\n")
    print("| path | vswitchd | kernel | ratio | target | met |")
    print("|---|---|---|---|---|---|")
    for label, key, higher, target in rows:
        u, k = user.get(key), kern.get(key)
        if u is None and k is None:
            continue
        mu, mk = median(u or []), median(k or [])
        if target and target[0] == "abs":
            ratio, value, goal = "-", mu, f"<= {target[1]} us"
        else:
            ratio = fmt(mu / mk) + "x" if (mu is not None and mk) else "-"
            value = mu / mk if (mu is not None and mk) else None
            goal = "" if not target else (">= " if higher else "<= ") + f"{target[1]}x"
        met = ""
        if target and value is not None:
            met = "yes" if (value >= target[1] if higher else value <= target[1]) else "no"
        print(f"| {label} | {spread(u)} | {spread(k) if target is None or target[0] != 'abs' else 'kernel'} "
              f"| {ratio} | {goal} | {met} |")
    prof.report()


if __name__ == "__main__":
    main()
