#!/usr/bin/env python3
"""Latency of `vswitch run -d` and `vswitch network connect` (median and p90 of N runs), and
the daemon's CPU time per call (its own plus reaped children's, e.g. `ip` processes), which
a loaded machine disturbs much less than wall-clock time.

Needs root. Starts the given vswitchd inside a namespace of its own (vsw-lat-<pid>) with its own
data root, exec root and socket, times each CLI call end to end, and removes everything after
(sandboxes, daemon, namespace). Nothing touches the root namespace.

    bench/plumbing_latency.py [--bin DIR] [--runs N]

DIR holds `vswitchd` and `vswitch` (default target/debug).
"""

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

START_TIMEOUT = 20.0


def sh(*argv, check=True):
    return subprocess.run(argv, check=check, capture_output=True, text=True, timeout=120)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default="target/debug")
    ap.add_argument("--runs", type=int, default=20)
    a = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("needs root (it makes a network namespace)")
    ns = f"vsw-lat-{os.getpid()}"
    tmp = tempfile.mkdtemp(prefix="vsw-lat-")
    sock = os.path.join(tmp, "v.sock")
    host = f"unix://{sock}"
    cli = [os.path.join(a.bin, "vswitch"), "-H", host]
    sh("ip", "netns", "add", ns)
    daemon = None
    try:
        log = open(os.path.join(tmp, "log"), "w")
        daemon = subprocess.Popen(
            ["nsenter", f"--net=/run/netns/{ns}", "--", os.path.join(a.bin, "vswitchd"),
             "-H", host, "--data-root", os.path.join(tmp, "data"),
             "--exec-root", os.path.join(tmp, "exec")],
            stdout=log, stderr=log)
        deadline = time.monotonic() + START_TIMEOUT
        while sh(*cli, "network", "ls", check=False).returncode != 0:
            if time.monotonic() > deadline or daemon.poll() is not None:
                sys.exit("daemon did not start; see " + log.name)
            time.sleep(0.05)
        sh(*cli, "network", "create", "--subnet", "10.231.0.0/16", "lat")

        tick = os.sysconf("SC_CLK_TCK")

        def cpu_ms():
            with open(f"/proc/{daemon.pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            # utime stime cutime cstime (fields 14-17; [0] here is field 3)
            return sum(int(x) for x in fields[11:15]) * 1000 / tick

        def timed(argv):
            t = time.perf_counter()
            sh(*argv)
            return (time.perf_counter() - t) * 1000

        c0 = cpu_ms()
        run = [timed([*cli, "run", "-d", "--name", f"s{i}", "--", "sleep", "infinity"])
               for i in range(a.runs)]
        c1 = cpu_ms()
        conn = [timed([*cli, "network", "connect", "lat", f"s{i}"]) for i in range(a.runs)]
        c2 = cpu_ms()
        for name, v, cpu in (("vswitch run -d", run, c1 - c0),
                             ("vswitch network connect", conn, c2 - c1)):
            q = statistics.quantiles(v, n=10)
            print(f"{name}: median {statistics.median(v):.1f} ms, p90 {q[8]:.1f} ms, "
                  f"daemon CPU {cpu / len(v):.1f} ms/call ({len(v)} runs, {a.bin})")
        sh(*cli, "rm", "-f", *[f"s{i}" for i in range(a.runs)], check=False)
    finally:
        if daemon is not None:
            daemon.terminate()
            try:
                daemon.wait(10)
            except subprocess.TimeoutExpired:
                daemon.kill()
        sh("ip", "netns", "del", ns, check=False)
        subprocess.run(["umount", "-R", "-l", os.path.join(tmp, "exec")], capture_output=True)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
