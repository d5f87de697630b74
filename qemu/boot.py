"""Boot the built initramfs in QEMU TCG with the console on this terminal.

usage: python -m qemu.boot [--net user|netns] [--root IMG|none] [--] [kernel args...]

``--net user`` needs nothing set up (QEMU's own DHCP server); ``--net netns``
creates a namespace with a bridge, a tap for the guest and dnsmasq, and
removes it afterwards.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from qemu.topology import Gateway
from qemu.vm import OUT, VmSpec, qemu_argv


def _args() -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m qemu.boot", description=__doc__.split("\n")[0])
    p.add_argument("--net", choices=("user", "netns", "none"), default="user")
    p.add_argument("--root", default=str(OUT / "testroot.img"), help="root disk image or 'none'")
    p.add_argument("--kernel", default=str(OUT / "vmlinuz"))
    p.add_argument("--initrd", default=str(OUT / "mosnet-initramfs.img"))
    p.add_argument("append", nargs="*", help="extra kernel parameters")
    return p.parse_args()


# What each kind of boot runs, and the Debian package that has it.
TOOLS = {"qemu-system-x86_64": "qemu-system-x86", "ip": "iproute2", "dnsmasq": "dnsmasq-base"}


def missing(a: argparse.Namespace) -> str:
    """One line naming what this boot lacks, or ''."""
    tools = ["qemu-system-x86_64"] + (["ip", "dnsmasq"] if a.net == "netns" else [])
    absent = [t for t in tools if not shutil.which(t)]
    if absent:
        pkgs = " ".join(TOOLS[t] for t in absent)
        return f"{', '.join(absent)} not found: apt-get install {pkgs} (qemu/demo.sh installs it)"
    files = [a.kernel, a.initrd] + ([] if a.root == "none" else [a.root])
    lost = [f for f in files if not Path(f).is_file()]
    if lost:
        return f"{', '.join(lost)} missing: run ./build.sh (and qemu/mkroot.sh for the root)"
    return ""


def main() -> int:
    a = _args()
    if why := missing(a):
        print(f"qemu.boot: {why}", file=sys.stderr)
        return 1
    disk = None if a.root == "none" else Path(a.root)
    root_args = "root=/dev/vda rw" if disk else ""
    append = " ".join(["rdinit=/mosnet-init", root_args, *a.append]).strip()
    common: dict[str, Any]  # VmSpec's keyword arguments
    common = {"kernel": Path(a.kernel), "initrd": Path(a.initrd), "append": append, "disk": disk}
    if a.net != "netns":
        return subprocess.call(qemu_argv(VmSpec(net=a.net, **common)))
    with Gateway(name=f"mosdemo-{os.getpid()}", workdir=OUT / "netns-demo") as gw:
        spec = VmSpec(net="tap:tap0", netns=gw.name, **common)
        rc = subprocess.call(qemu_argv(spec))
        print(f"dnsmasq log: {gw.dnsmasq_log}")
        return rc


if __name__ == "__main__":
    raise SystemExit(main())
