"""Boot the built initramfs in QEMU TCG with the console on this terminal.

usage: python -m qemu.boot [--net user|netns] [--root IMG|none] [--] [kernel args...]

``--net user`` needs nothing set up (QEMU's own DHCP server); ``--net netns``
creates a namespace with a bridge, a tap for the guest and dnsmasq, and
removes it afterwards.
"""

from __future__ import annotations

import argparse
import os
import subprocess
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


def main() -> int:
    a = _args()
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
