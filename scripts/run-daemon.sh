#!/usr/bin/env bash
# Build and run vswitchd in the foreground with its defaults (needs root for the datapath).
# Extra arguments go to vswitchd, e.g. -H unix:///tmp/v.sock --data-root /tmp/vdata.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cargo build --release --bins
echo "vswitchd: API on ${VSWITCH_HOST:-unix:///run/vswitch/vswitchd.sock}; try: target/release/vswitch network ls" >&2
exec target/release/vswitchd "$@"
