"""Fixtures for booting the real initramfs (out/, made by ./build.sh) under QEMU TCG."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from qemu.topology import Gateway
from qemu.vm import OUT, TOP

_counter = iter(range(1000))


@pytest.fixture(scope="session")
def images() -> dict[str, Path]:
    """The built kernel and initramfs, plus the test root (built here if missing)."""
    kernel, initrd = OUT / "vmlinuz", OUT / "mosnet-initramfs.img"
    missing = [str(p) for p in (kernel, initrd) if not p.exists()]
    if missing:
        pytest.fail(f"{', '.join(missing)} missing: run ./build.sh first")
    root = OUT / "testroot.img"
    script = TOP / "qemu" / "root" / "init"
    if not root.exists() or root.stat().st_mtime < script.stat().st_mtime:
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
