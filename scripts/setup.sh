#!/usr/bin/env bash
# Installs everything the build, the tests and the fuzz smoke need on a fresh Debian machine.
# Idempotent: skips what is already there. Needs root (apt-get).
set -euo pipefail

export DEBIAN_FRONTEND=noninteractive
pkgs=()
# iproute2 for the tests only (they look with `ip`); vswitchd itself does not need it.
command -v ip >/dev/null || pkgs+=(iproute2)
command -v python3 >/dev/null || pkgs+=(python3)
command -v curl >/dev/null || pkgs+=(curl)
command -v ping >/dev/null || pkgs+=(iputils-ping)
command -v nsenter >/dev/null || pkgs+=(util-linux)
command -v sysctl >/dev/null || pkgs+=(procps)
command -v cc >/dev/null || pkgs+=(gcc libc6-dev)
# etcd-client's build script compiles etcd's protobufs; the cluster-store tests run etcd.
command -v protoc >/dev/null || pkgs+=(protobuf-compiler)
command -v etcd >/dev/null || pkgs+=(etcd-server)
# The published-port burst test serves with busybox httpd.
command -v busybox >/dev/null || pkgs+=(busybox-static)
# multiqueue.rs spreads many parallel TCP streams over a network's workers.
command -v iperf3 >/dev/null || pkgs+=(iperf3)
# The capture tests read our pcap with tcpdump; the metrics test parses the exposition with
# the Prometheus Python client's parser (Debian's package, for /usr/bin/python3).
command -v tcpdump >/dev/null || pkgs+=(tcpdump)
/usr/bin/python3 -c 'import prometheus_client' 2>/dev/null || pkgs+=(python3-prometheus-client)
# `vswitch network graph` renders SVG through graphviz (tests/tests/graph.rs).
command -v dot >/dev/null || pkgs+=(graphviz)
python3 -c 'import docker' 2>/dev/null || python3 -m pip --version >/dev/null 2>&1 || pkgs+=(python3-pip)
# The Docker plugin tests run a real dockerd (with containerd and runc) and a busybox image
# (busybox-static, above).
command -v dockerd >/dev/null || pkgs+=(docker.io)
if ((${#pkgs[@]})); then
  apt-get update -qq
  apt-get install -y -qq "${pkgs[@]}"
fi
# The tests compare our CLI with the unmodified docker CLI (client only; no engine needed).
if ! command -v docker >/dev/null; then
  apt-get update -qq
  apt-get install -y -qq docker-cli || apt-get install -y -qq docker.io
fi
# tests/tests/api_sdk.rs drives the daemon with the real Docker SDK for Python.
python3 -c 'import docker' 2>/dev/null || python3 -m pip install -q docker || python3 -m pip install -q --break-system-packages docker
# The CNI tests run the plugin as a runtime does and a real Podman (4.3, CNI backend, runc)
# with host-local/static IPAM from containernetworking-plugins and a busybox image.
cni_pkgs=()
command -v podman >/dev/null || cni_pkgs+=(podman)
command -v runc >/dev/null || cni_pkgs+=(runc)
[ -x /usr/lib/cni/host-local ] || cni_pkgs+=(containernetworking-plugins)
dpkg -s busybox-static >/dev/null 2>&1 || cni_pkgs+=(busybox-static)
if ((${#cni_pkgs[@]})); then
  apt-get update -qq
  apt-get install -y -qq "${cni_pkgs[@]}"
fi
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
for c in clippy rustfmt; do rustup component list --installed 2>/dev/null | grep -q "^$c" || rustup component add "$c"; done
