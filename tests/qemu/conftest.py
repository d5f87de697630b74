"""Fixtures for booting the real initramfs (out/, made by ./build.sh) under QEMU TCG."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from qemu.topology import Gateway
from qemu.vm import OUT, TOP, VmSpec

# tests/run-all.sh runs this tier on two workers (pytest -n 2 --dist loadgroup),
# one TCG guest each. A module stays on one worker (its module fixtures are
# built once); the two that boot qemu/debroot.sh's image share one.
SHARED_GROUPS = {"test_boot_chain": "debroot", "test_realroot_systemd": "debroot"}


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        module = Path(str(item.fspath)).stem
        if "/tests/qemu/" in str(item.fspath):
            item.add_marker(pytest.mark.xdist_group(SHARED_GROUPS.get(module, module)))


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


# The kernels the boot tests run on: out/ (Debian 12, the default build) and
# out/debian13 (tests/run-all.sh: ./build.sh --kernel linux-image-amd64@trixie).
KERNEL_OUTS = {"debian12": OUT, "debian13": OUT / "debian13"}


@pytest.fixture(params=sorted(KERNEL_OUTS))
def kernel_images(request: pytest.FixtureRequest, images: dict[str, Path]) -> dict[str, Path]:
    """``images`` with each kernel and the initramfs built for it."""
    out = KERNEL_OUTS[request.param]
    kernel, initrd = out / "vmlinuz", out / "mosnet-initramfs.img"
    if not (kernel.exists() and initrd.exists()):
        pytest.fail(
            f"{out} has no vmlinuz or mosnet-initramfs.img: run tests/run-all.sh "
            "(./build.sh --no-ovs --kernel linux-image-amd64@trixie --out out/debian13)"
        )
    return {**images, "kernel": kernel, "initrd": initrd}


def built_release(images: dict[str, Path]) -> str:
    """The kernel release the initramfs was built for (its build report)."""
    report = json.loads((images["initrd"].parent / "image-report.json").read_text())
    return str(report["kver"])


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
