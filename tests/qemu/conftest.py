"""Fixtures for booting the real initramfs (out/, made by ./build.sh) under QEMU TCG."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from qemu.topology import Gateway
from qemu.vm import OUT, TOP, VmSpec

BOOT_TIMEOUT = 240  # TCG: ~10 s kernel, ~10 s Python start-up, then the work

_counter = iter(range(1000))


@pytest.fixture(scope="session")
def images() -> dict[str, Path]:
    """The built kernel and initramfs, plus the test root (built here if missing)."""
    kernel, initrd = OUT / "vmlinuz", OUT / "mosnet-initramfs.img"
    missing = [str(p) for p in (kernel, initrd) if not p.exists()]
    if missing:
        pytest.fail(f"{', '.join(missing)} missing: run ./build.sh first")
    root = OUT / "testroot.img"
    inputs = (TOP / "qemu" / "root" / "init", TOP / "qemu" / "mkroot.sh")
    if not root.exists() or root.stat().st_mtime < max(p.stat().st_mtime for p in inputs):
        subprocess.run([str(TOP / "qemu" / "mkroot.sh"), str(root)], check=True)
    return {"kernel": kernel, "initrd": initrd, "root": root}


@pytest.fixture
def gateway(tmp_path: Path) -> Iterator[Gateway]:
    """A provider namespace with a tap for the guest, a bridge at .1 and dnsmasq.

    dnsmasq's shortest lease is 2 minutes, so T1/T2 are set explicitly to see
    the daemon renew while the real root runs.
    """
    if os.geteuid() != 0:
        pytest.fail("QEMU tap tests need root")
    gw = Gateway(
        name=f"mosq-{os.getpid()}-{next(_counter)}",
        workdir=tmp_path / "gw",
        dnsmasq_args=("--dhcp-option=option:T1,12", "--dhcp-option=option:T2,20"),
    )
    gw.start()
    try:
        yield gw
    finally:
        gw.stop()


def boot_spec(images: dict[str, Path], append: str, rdinit: bool = True, **kw: Any) -> VmSpec:
    """A guest booting the real initramfs with the test root as /dev/vda."""
    # Without rdinit= the kernel runs /init, which must do the same.
    prefix = "rdinit=/mosnet-init " if rdinit else ""
    return VmSpec(
        kernel=images["kernel"], initrd=images["initrd"], disk=images["root"],
        append=prefix + append, **kw,
    )  # fmt: skip


# Debian's static busybox wget segfaults (static glibc NSS), so a plain socket GET.
_GET = """
import socket, sys
try:
    with socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=4) as s:
        s.sendall(b"GET / HTTP/1.0\\r\\n\\r\\n")
        data = b""
        while chunk := s.recv(4096):
            data += chunk
        print(data.decode(errors="replace"))
except OSError as exc:
    print("failed", exc)
"""


def http_get(gw: Gateway, addr: str, port: int) -> bool:
    """From the gateway's namespace: does ``addr:port`` serve the test root's page?"""
    out = gw.run(sys.executable, "-c", _GET, addr, str(port), timeout=15)
    return "mosnet test root" in out.stdout
