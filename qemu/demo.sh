#!/bin/bash
# Build everything, then boot the demo: QEMU user networking (QEMU's own DHCP
# server, nothing to set up), mosnet as PID 1, switch_root into a generated
# root that prints its addresses, routes, resolv.conf and the mosnet daemon.
# usage: qemu/demo.sh [extra kernel parameters...]
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
"$top/build.sh" --demo-deps  # QEMU too: a fresh machine has none
"$top/qemu/mkroot.sh" "$top/out/testroot.img" >/dev/null
cd "$top"
exec .venv/bin/python -m qemu.boot --net user -- mostest.wait=5 "$@"
