"""Nothing half-written on a real full tmpfs (root: mounts one in a temp dir).

state.json, resolv.conf, the lease files and the network-manager files go
through the real writers while the tmpfs is full, nearly full (a real short
write, then ENOSPC) or out of inodes: each write fails with a log line (or
OSError where the caller expects one), the previous file is left byte for
byte, no tmp file stays behind, and the same writes succeed once space is
freed. The boot log keeps appending on a full disk without raising.
EDQUOT cannot be had for real here (CONFIG_TMPFS_QUOTA is off, and ext4 or
XFS quotas lack QFMT_V2/XFS_QUOTA): tests/unit/test_atomicfile.py injects it.
"""

from __future__ import annotations

import errno
import logging
import os
import pathlib
import subprocess
from collections.abc import Iterator
from ipaddress import IPv4Address, IPv6Address
from typing import cast

import pytest

from init import handoff
from mosnet.base import atomicfile, log
from mosnet.dhcp4 import publish as apply4
from mosnet.dhcp4.lease import Lease
from mosnet.dhcp6 import apply as apply6
from mosnet.dhcp6.lease import Lease6
from mosnet.ipv6 import autoconf
from mosnet.state import coexist, resolvconf, statefile
from mosnet.state.resolvconf import DnsInfo, ResolvConf
from mosnet.topology import netapply
from mosnet.topology.actions import WriteResolvConf

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root to mount a tmpfs")

LEASE4 = Lease(
    address=IPv4Address("10.0.0.5"), prefixlen=24, server_id=IPv4Address("10.0.0.1"),
    lease_time=3600, t1=1800, t2=3150, acquired_at=0.0, dns=(IPv4Address("10.0.0.53"),),
)  # fmt: skip
LEASE6 = Lease6(
    address=IPv6Address("fd00::5"), preferred=1800, valid=3600, t1=900, t2=1440,
    iaid=1, server_id=b"\x00\x01", acquired_at=0.0, dns=(IPv6Address("fd00::53"),),
)  # fmt: skip
LINKS = coexist.owned_links("eth0", "52:54:00:00:00:01", "mos", "linux")


@pytest.fixture
def mnt(tmp_path: pathlib.Path) -> Iterator[pathlib.Path]:
    where = tmp_path / "mnt"
    where.mkdir()
    opts = "size=1m,nr_inodes=64,mode=0755"
    subprocess.run(["mount", "-t", "tmpfs", "-o", opts, "mosnet-full", str(where)], check=True)
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


@pytest.fixture
def lines() -> Iterator[list[str]]:
    """The mosnet log lines of the test."""

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            got.append(record.getMessage())

    got: list[str] = []
    handler, logger = Keep(), logging.getLogger("mosnet")
    logger.addHandler(handler)
    try:
        yield got
    finally:
        logger.removeHandler(handler)


def fill(mnt: pathlib.Path, leave_pages: int = 0) -> pathlib.Path:
    """Fill the tmpfs to the last page, then give back ``leave_pages`` pages."""
    filler = mnt / "filler"
    chunk = b"\0" * 4096
    with open(filler, "wb", buffering=0) as f:
        try:
            while f.write(chunk):
                pass
        except OSError as exc:
            assert exc.errno == errno.ENOSPC
        os.ftruncate(f.fileno(), max(0, f.tell() - leave_pages * 4096))
    assert os.statvfs(mnt).f_bavail == leave_pages
    return filler


def write_everything(run: pathlib.Path, tag: str) -> None:
    """One write through each real writer (those that log instead of raising too)."""
    statefile.set_section(str(run), "marker", tag)
    resolvconf.write_atomic(str(run / "resolv.conf"), f"# {tag}\nnameserver 10.0.0.53\n")
    assert apply4.write_lease(LEASE4, f"mos{tag}", str(run))
    assert apply6.write_lease(LEASE6, f"mos{tag}", str(run))


def snapshot(root: pathlib.Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.name not in ("filler", "boot.log")
    }


def tmp_files(root: pathlib.Path) -> list[str]:
    return [p.name for p in root.rglob("*") if ".tmp" in p.name]


def test_full_tmpfs_keeps_every_old_file(mnt: pathlib.Path, lines: list[str]) -> None:
    run = mnt / "mosnet"
    write_everything(run, "old")
    before = snapshot(mnt)
    filler = fill(mnt)

    with pytest.raises(OSError) as caught:
        statefile.set_section(str(run), "marker", "new")
    assert caught.value.errno == errno.ENOSPC
    assert caught.value.filename == str(run / "state.json")
    with pytest.raises(OSError):
        resolvconf.write_atomic(str(run / "resolv.conf"), "nameserver 10.0.0.54\n")
    assert apply4.write_lease(LEASE4, "mosold", str(run)) is False
    assert apply6.write_lease(LEASE6, "mosold", str(run)) is False
    resolv = ResolvConf([str(run / "resolv.conf")], v4=DnsInfo(("10.9.9.9",)))
    v6 = autoconf.Ipv6State("mos", str(run), resolv=resolv)
    assert autoconf.write_resolv(v6) is False
    static = WriteResolvConf(str(run / "resolv.conf"), (IPv4Address("10.0.0.54"),))
    netapply._write_resolv(static, cast(netapply._Ctx, None))  # ctx is not used
    written, errors = coexist.write(LINKS, str(mnt / "run"))

    assert snapshot(mnt) == before  # nothing changed, nothing half-written
    assert tmp_files(mnt) == [] and written == [] and len(errors) == len(coexist.render(LINKS))
    nospace = "No space left on device"
    assert f"{run}/lease-mosold.json not written: {nospace}" in lines
    assert f"{run}/lease6-mosold.json not written: {nospace}" in lines
    # one line each from the resolv.conf owner: IPv6's servers, the static plan's action
    assert lines.count(f"{run}/resolv.conf not written: {nospace}") == 2
    assert [ln for ln in lines if ln.startswith(f"{mnt}/run/")] == errors

    filler.unlink()
    write_everything(run, "new")
    assert statefile.load(str(run))["marker"] == "new"
    assert (run / "resolv.conf").read_text().startswith("# new\n")
    assert coexist.write(LINKS, str(mnt / "run"))[1] == []
    assert tmp_files(mnt) == []


def test_nearly_full_tmpfs_short_write_then_enospc(mnt: pathlib.Path) -> None:
    path = mnt / "state.json"
    path.write_bytes(b'{"schema": 1}\n')
    fill(mnt, leave_pages=2)
    returns: list[int] = []

    def counted(fd: int, data: memoryview) -> int:
        returns.append(os.write(fd, data))
        return returns[-1]

    with pytest.raises(OSError) as caught:
        atomicfile.write_bytes(str(path), b"x" * 65536, write=counted)
    assert caught.value.errno == errno.ENOSPC
    assert returns == [8192]  # the kernel's short write; the next one failed
    assert path.read_bytes() == b'{"schema": 1}\n' and tmp_files(mnt) == []
    assert os.statvfs(mnt).f_bavail == 2  # the tmp file's pages are back


def test_no_inode_left_for_the_tmp_file(mnt: pathlib.Path) -> None:
    path = mnt / "resolv.conf"
    path.write_text("nameserver 10.0.0.53\n")
    made = 0
    with pytest.raises(OSError) as caught:
        while True:
            (mnt / f"f{made}").touch()
            made += 1
    assert caught.value.errno == errno.ENOSPC
    with pytest.raises(OSError) as caught:
        resolvconf.write_atomic(str(path), "nameserver 10.0.0.54\n")
    assert caught.value.errno == errno.ENOSPC and caught.value.filename == str(path)
    assert path.read_text() == "nameserver 10.0.0.53\n" and tmp_files(mnt) == []
    handoff.open_log(str(mnt / "mosnet"))  # no inode for the log either: logged, not raised


def test_boot_log_on_a_full_disk_never_raises(mnt: pathlib.Path) -> None:
    logger = logging.getLogger(log.PREFIX)
    before = list(logger.handlers)
    handoff.open_log(str(mnt / "mosnet"))
    try:
        log.get("test").warning("written before the disk filled up")
        fill(mnt)
        for i in range(200):  # each line would need a new page
            log.get("test").warning("line %d on a full disk %s", i, "x" * 100)
    finally:
        for handler in logger.handlers:
            if handler not in before:
                logger.removeHandler(handler)
                os.close(cast(log._FdHandler, handler).fd)  # the one open_log added
    text = (mnt / "mosnet" / "boot.log").read_text()
    assert "written before the disk filled up" in text
    assert len(text) <= 4096  # the log's one page: the other lines met ENOSPC, silently
