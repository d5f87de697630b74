#!/bin/bash
# Prepare the kernel the images are built for under .cache/kernel/current and
# print its release (e.g. 6.1.0-57-amd64): initramfs/kernelsrc.py does the
# work. usage: qemu/fetch-kernel.sh [SOURCE]  (SOURCE as build.sh --kernel;
# default MOSNET_KERNEL_PKG, else Debian's linux-image-amd64 of this release)
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
py=$top/.venv/bin/python
[ -x "$py" ] || { echo "fetch-kernel: run ./build.sh first (it makes .venv)" >&2; exit 1; }
cd "$top"
exec "$py" -m initramfs kernel "$@"
