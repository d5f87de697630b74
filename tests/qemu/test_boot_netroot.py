"""Netboot roots under QEMU: mosroot= over HTTP (squashfs, tar.zst), refusals, NFS.

The guest has no disk at all: the only root it can boot is the one served
from the tap-side namespace, by ``python -m http.server`` bound to the
namespace address, or by NFS-Ganesha (user-space NFSv4). The served roots
are the usual test root (out/testroot.img), so its init prints the markers.
A squashfs root boots the default image; ``.tar.zst`` and NFS roots boot the
image with the netroot add-on (zstd, the NFS client), and the default image
refuses an NFS root with a line that names the add-on.
"""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from qemu.topology import Gateway
from qemu.vm import OUT, Vm, VmSpec
from tests.qemu.conftest import BOOT_TIMEOUT

PORT = 8000
WITH_ADDON = OUT / "mosnet-initramfs-netroot.img"
FAKE_PORT = 8001

# Answers every request with a 1 TiB Content-Length and no body.
HUGE_SERVER = r"""
import socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], int(sys.argv[2]))); s.listen(8)
while True:
    c, _ = s.accept(); c.recv(65536)
    c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 1099511627776\r\n\r\n"); c.close()
"""

GANESHA_CONF = """
NFS_CORE_PARAM {{ Protocols = 4; Bind_addr = {addr}; NFS_Port = 2049;
                 Enable_NLM = false; Enable_RQUOTA = false; }}
NFSV4 {{ Graceless = true; RecoveryBackend = fs; Only_Numeric_Owners = true; }}
NFS_KRB5 {{ Active_krb5 = false; }}
EXPORT {{ Export_Id = 1; Path = {path}; Pseudo = /root; Access_Type = RW;
         Squash = No_Root_Squash; Protocols = 4; Transports = TCP; SecType = sys;
         FSAL {{ Name = VFS; }} }}
"""


@pytest.fixture(scope="module")
def roots(images: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The test root's files, as root.squashfs, root.tar.zst and a directory for NFS."""
    work = tmp_path_factory.mktemp("netroot")
    tree = work / "tree"
    tree.mkdir()
    # debugfs reads the ext4 image without mounting it (no loop device on the host)
    subprocess.run(["debugfs", "-R", f"rdump / {tree}", str(images["root"])],
                   check=True, capture_output=True)  # fmt: skip
    (tree / "lost+found").rmdir()
    www = work / "www"
    www.mkdir()
    subprocess.run(["mksquashfs", str(tree), str(www / "root.squashfs"), "-comp", "gzip",
                    "-noappend", "-quiet", "-no-progress"], check=True)  # fmt: skip
    tar = subprocess.Popen(["tar", "-C", str(tree), "-cf", "-", "."], stdout=subprocess.PIPE)
    with open(www / "root.tar.zst", "wb") as out:
        subprocess.run(["zstd", "-q", "-3", "-c"], stdin=tar.stdout, stdout=out, check=True)
    assert tar.wait() == 0
    return {"tree": tree, "www": www}


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _spawn(gw: Gateway, argv: list[str], log: Path) -> None:
    """A server in the namespace, cleaned up by PID with the gateway."""
    with open(log, "wb") as f:
        proc = subprocess.Popen(["ip", "netns", "exec", gw.name, *argv], stdout=f,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True)  # fmt: skip
    gw.pids.append(proc.pid)


def _wait_listen(gw: Gateway, port: int) -> None:
    deadline = time.monotonic() + 30
    # ganesha listens on an IPv4-mapped IPv6 socket: [::ffff:10.213.7.1]:2049
    bound = re.compile(rf"\b{re.escape(gw.address)}\]?:{port}\s")
    while time.monotonic() < deadline:
        if bound.search(gw.run("ss", "-ltnH").stdout):
            return
        time.sleep(0.2)
    raise TimeoutError(f"nothing listens on {gw.address}:{port}")


@pytest.fixture
def netgw(gateway: Gateway, roots: dict[str, Path], tmp_path: Path) -> Iterator[Gateway]:
    """The DHCP gateway plus http.server on <gw>:8000 and the 1-TiB liar on :8001."""
    www = str(roots["www"])
    _spawn(gateway, [sys.executable, "-m", "http.server", "--bind", gateway.address,
                     "--directory", www, str(PORT)], tmp_path / "http.log")  # fmt: skip
    _spawn(gateway, [sys.executable, "-c", HUGE_SERVER, gateway.address, str(FAKE_PORT)],
           tmp_path / "huge.log")  # fmt: skip
    _wait_listen(gateway, PORT)
    _wait_listen(gateway, FAKE_PORT)
    yield gateway


def _spec(gw: Gateway, append: str, **kw: Any) -> VmSpec:
    # No disk: the network is the only place a root can come from.
    return VmSpec(append=f"rdinit=/mosnet-init {append}", disk=None, net="tap:tap0",
                  netns=gw.name, **kw)  # fmt: skip


def _state(console: str) -> dict[str, object]:
    line = re.search(r"^ROOT: state\.json (\{.*\})\s*$", console, re.M)
    assert line, "no state.json in the real root"
    return dict(json.loads(line.group(1)))


def _boot_to_root(gw: Gateway, append: str, log: Path, **kw: object) -> str:
    with Vm(_spec(gw, append, **kw), log) as vm:
        vm.wait_for(r"^ROOT: done", BOOT_TIMEOUT)
        vm.wait_exit(30)
        return vm.text()


@pytest.mark.parametrize("name", ["root.squashfs", "root.tar.zst"])
def test_http_root_is_fetched_verified_and_booted(
    netgw: Gateway, roots: dict[str, Path], tmp_path: Path, name: str
) -> None:
    sha = _sha(roots["www"] / name)
    url = f"http://{netgw.address}:{PORT}/{name}"
    initrd = WITH_ADDON if name.endswith(".tar.zst") else OUT / "mosnet-initramfs.img"
    append = f"mosroot={url} mosroot_sha256={sha} rw"
    console = _boot_to_root(netgw, append, tmp_path / "c.log", initrd=initrd)
    assert f"mosroot: fetching {url}" in console
    size = (roots["www"] / name).stat().st_size
    assert f"mosroot: {size} bytes, sha256 verified" in console
    assert "ROOT: real init running as pid 1" in console
    assert re.search(r"ROOT:\s+daemon pid \d+ cmdline '@mosnet-daemon", console)
    boot = _state(console)["boot"]
    assert isinstance(boot, dict) and boot["result"] == "switch_root" and boot["root"] == url
    src = boot["root_source"]
    assert (src["url"], src["sha256"], src["size"]) == (url, sha, size)
    assert src["format"] == name.removeprefix("root.") and src["fetch_ms"] > 0
    if name.endswith(".squashfs"):
        modules = re.search(r"ROOT: --- modules\s+ROOT:\s+(.*)", console)
        assert modules and {"loop", "squashfs", "overlay"} <= set(modules.group(1).split())
    assert "Kernel panic" not in console


def _fallback_shell(gw: Gateway, append: str, log: Path) -> tuple[str, str]:
    """Boot into the fallback with mosshell; the console and /proc/mounts from the shell."""
    with Vm(_spec(gw, f"{append} mosshell"), log) as vm:
        vm.wait_for(r"starting the emergency shell", BOOT_TIMEOUT)
        vm.wait_for(r"# $|/ #", 60)
        vm.send("echo MOUNTS-BEGIN; cat /proc/mounts; ls /run/mosnet/netroot; echo MOUNTS-END\n")
        match = vm.wait_for(r"(?s)^MOUNTS-BEGIN\s*$(.*?)^MOUNTS-END\s*$", 60)
        return vm.text(), match.group(1)


def test_hash_mismatch_falls_back_with_nothing_mounted(netgw: Gateway, tmp_path: Path) -> None:
    url = f"http://{netgw.address}:{PORT}/root.squashfs"
    console, mounts = _fallback_shell(
        netgw, f"mosroot={url} mosroot_sha256={'0' * 64}", tmp_path / "c.log"
    )
    assert f"mosroot={url}: sha256 mismatch" in console
    assert f"mosroot_sha256= says {'0' * 64}" in console
    assert "FATAL: NetRootError" in console and "boot attempt 2/3 failed" in console
    # No root, no image, no loop device, no overlay: the cleanup undid everything.
    for word in ("/sysroot", "overlay", "squashfs", "/dev/loop", "netroot"):
        assert word not in mounts.replace("ls: /run/mosnet/netroot", ""), (word, mounts)
    assert "Kernel panic" not in console


def test_too_little_ram_is_refused_before_download(netgw: Gateway, tmp_path: Path) -> None:
    url = f"http://{netgw.address}:{FAKE_PORT}/root.squashfs"
    with Vm(_spec(netgw, f"mosroot={url} mosroot_sha256={'1' * 64}"), tmp_path / "c.log") as vm:
        vm.wait_for(r"reboot: System halted", BOOT_TIMEOUT)
        console = vm.text()
    assert "not enough RAM: the image is 1048576 MiB" in console
    assert "FATAL: NetRootError" in console
    assert "Kernel panic" not in console


def test_nfs_root_from_a_user_space_server(
    gateway: Gateway, roots: dict[str, Path], tmp_path: Path
) -> None:
    conf = tmp_path / "ganesha.conf"
    conf.write_text(GANESHA_CONF.format(addr=gateway.address, path=roots["tree"]))
    _spawn(gateway, ["ganesha.nfsd", "-F", "-f", str(conf), "-L", str(tmp_path / "ganesha.log"),
                     "-p", str(tmp_path / "ganesha.pid"), "-N", "NIV_EVENT"],
           tmp_path / "ganesha.out")  # fmt: skip
    _wait_listen(gateway, 2049)
    append = f"root=nfs:{gateway.address}:/root rw"
    console = _boot_to_root(gateway, append, tmp_path / "c.log", initrd=WITH_ADDON)
    assert re.search(
        rf"mounted NFS root {re.escape(gateway.address)}:/root on /sysroot \(addr=", console
    )
    assert "ROOT: real init running as pid 1" in console
    boot = _state(console)["boot"]
    assert isinstance(boot, dict) and boot["root"] == f"nfs:{gateway.address}:/root"
    assert "Kernel panic" not in console


def test_nfs_root_without_the_add_on_is_refused_by_name(gateway: Gateway, tmp_path: Path) -> None:
    append = f"root=nfs:{gateway.address}:/root"
    with Vm(_spec(gateway, append), tmp_path / "c.log") as vm:
        vm.wait_for(r"reboot: System halted", BOOT_TIMEOUT)
        console = vm.text()
    assert "NFS root: this image has no NFS client module; boot with the netroot add-on" in console
    assert "mosnet-initramfs-netroot.img" in console and "FATAL: NfsRootError" in console
    assert "mounted NFS root" not in console and "Kernel panic" not in console
