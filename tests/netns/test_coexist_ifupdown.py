"""Real ifupdown (Debian 12's, from the qemu/debroot.sh tree) against mosnet's ifstate files.

An interfaces file names the uplink with a static address, the way an
installer leaves it. With the files ``mosnet.state.coexist`` writes, ``ifup -a``
skips the uplink and ``ifdown -a`` (networking.service at shutdown) leaves it
up; without them, ifupdown configures it and takes it down: the negative
control that shows the check can fail.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from mosnet.state import coexist

REPO = Path(__file__).resolve().parents[2]
BASE = REPO / ".cache" / "debroot" / "base"  # the debootstrap tree qemu/debroot.sh keeps
INTERFACES = """auto lo
iface lo inet loopback

auto eth0
iface eth0 inet static
    address 10.9.9.9/24
"""
SCRIPT = """
ifup -a --read-environment; echo "ifup rc=$?"
ip -o -4 addr show dev eth0 | sed 's/^/addr /'
ifdown -a --read-environment --exclude=lo; echo "ifdown rc=$?"
ip -o link show dev eth0 | sed 's/^/link /'
"""


@pytest.fixture(scope="module")
def debian_tree() -> Path:
    res = subprocess.run(
        [str(REPO / "qemu" / "debroot.sh"), str(REPO / "out" / "debroot")],
        capture_output=True, text=True,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr[-3000:]
    assert (BASE / "sbin" / "ifup").exists()
    return BASE


def _run_ifupdown(tree: Path, tmp_path: Path, with_mosnet: bool) -> str:
    ns = f"mosif-{os.getpid()}-{int(with_mosnet)}"
    run, etc = tmp_path / "run", tmp_path / "etc-network"
    run.mkdir()
    shutil.copytree(tree / "etc" / "network", etc, symlinks=True)
    (etc / "interfaces").write_text(INTERFACES)
    (tmp_path / "test.sh").write_text(SCRIPT)
    if with_mosnet:
        links = coexist.owned_links("eth0", "52:54:00:12:34:56", "mos", "linux")
        written, errors = coexist.write(links, str(run))
        assert errors == [] and str(run / "network" / "ifstate.eth0") in written
    mounts = (
        f"mount --bind {run} {tree}/run && mount -t proc proc {tree}/proc && "
        f"mount --bind {etc} {tree}/etc/network && mount --bind {tmp_path} {tree}/mnt && "
        f"chroot {tree} sh /mnt/test.sh"
    )
    subprocess.run(["ip", "netns", "add", ns], check=True)
    try:
        for cmd in (["link", "add", "eth0", "type", "veth", "peer", "name", "peer0"],
                    ["link", "set", "eth0", "up"]):  # fmt: skip
            subprocess.run(["ip", "-n", ns, *cmd], check=True)
        res = subprocess.run(
            ["ip", "netns", "exec", ns, "unshare", "-m", "sh", "-c", mounts],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
    finally:
        subprocess.run(["ip", "netns", "del", ns], check=False)
    return res.stdout + res.stderr


def test_ifupdown_skips_and_keeps_the_links_mosnet_owns(debian_tree: Path, tmp_path: Path) -> None:
    out = _run_ifupdown(debian_tree, tmp_path, with_mosnet=True)
    assert "ifup rc=0" in out and "ifdown rc=0" in out, out
    assert "addr " not in out, f"ifup configured the uplink: {out}"
    link = next(line for line in out.splitlines() if line.startswith("link "))
    assert ",UP" in link, f"ifdown took the uplink down: {link}"
    assert (tmp_path / "run/network/ifstate.eth0").read_text() == "eth0=mosnet\n"


def test_without_mosnet_files_ifupdown_takes_the_uplink(debian_tree: Path, tmp_path: Path) -> None:
    out = _run_ifupdown(debian_tree, tmp_path, with_mosnet=False)
    assert "inet 10.9.9.9/24" in out, out
    link = next(line for line in out.splitlines() if line.startswith("link "))
    assert ",UP" not in link, link
