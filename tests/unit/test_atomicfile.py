"""atomicfile: every write() is checked; a failed replace leaves the old file and no tmp.

The ``write``/``fsync`` seams stand in for what a real disk does: short
writes, a write that stores nothing, EDQUOT (this host's tmpfs has no quota
support: CONFIG_TMPFS_QUOTA is off), EIO at fsync. ENOSPC on a real full
tmpfs is tests/netns/test_atomicfile_full.py.
"""

from __future__ import annotations

import errno
import logging
import os
import pathlib
import threading
from collections.abc import Iterator
from ipaddress import IPv4Address
from typing import cast

import pytest

from mosnet.base import atomicfile
from mosnet.dhcp4 import publish as apply4
from mosnet.dhcp4.lease import Lease
from mosnet.state import coexist, resolvconf
from mosnet.topology import netapply
from mosnet.topology.actions import WriteResolvConf

OLD = b"the previous content\n"
NEW = bytes(range(256)) * 64  # 16 KiB


@pytest.fixture
def target(tmp_path: pathlib.Path) -> pathlib.Path:
    path = tmp_path / "state.json"
    path.write_bytes(OLD)
    return path


def leftovers(directory: pathlib.Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if ".tmp" in p.name)


def test_one_byte_per_write_still_writes_everything(target: pathlib.Path) -> None:
    calls = []

    def one_byte(fd: int, data: memoryview) -> int:
        calls.append(len(data))
        return os.write(fd, data[:1])

    atomicfile.write_bytes(str(target), NEW, write=one_byte)
    assert target.read_bytes() == NEW
    assert len(calls) == len(NEW) and calls[:3] == [len(NEW), len(NEW) - 1, len(NEW) - 2]
    assert leftovers(target.parent) == []


def test_half_then_short_writes_are_continued(target: pathlib.Path) -> None:
    def at_most_1000(fd: int, data: memoryview) -> int:
        return os.write(fd, data[:1000])

    atomicfile.write_bytes(str(target), NEW, write=at_most_1000)
    assert target.read_bytes() == NEW


def _fails_after(first: int, error: int | None) -> atomicfile.Writer:
    """Writes ``first`` bytes, then returns 0 (``error`` None) or raises ``error``."""
    done = [0]

    def write(fd: int, data: memoryview) -> int:
        room = first - done[0]
        if room <= 0:
            if error is None:
                return 0
            raise OSError(error, os.strerror(error))
        n = os.write(fd, data[:room])
        done[0] += n
        return n

    return write


@pytest.mark.parametrize(
    ("first", "error", "want"),
    [
        pytest.param(0, None, errno.ENOSPC, id="returns-0-at-once"),
        pytest.param(5000, None, errno.ENOSPC, id="short-then-no-progress"),
        pytest.param(0, errno.ENOSPC, errno.ENOSPC, id="ENOSPC"),
        pytest.param(4096, errno.EDQUOT, errno.EDQUOT, id="short-then-EDQUOT"),
        pytest.param(8192, errno.EIO, errno.EIO, id="short-then-EIO"),
    ],
)
def test_failed_write_keeps_old_file(
    target: pathlib.Path, first: int, error: int | None, want: int
) -> None:
    with pytest.raises(OSError) as caught:
        atomicfile.write_bytes(str(target), NEW, write=_fails_after(first, error))
    assert caught.value.errno == want
    assert caught.value.filename == str(target)  # the file asked for, not the tmp
    assert target.read_bytes() == OLD
    assert leftovers(target.parent) == []


def test_fsync_error_keeps_old_file(target: pathlib.Path) -> None:
    def fsync_eio(fd: int) -> None:
        raise OSError(errno.EIO, "Input/output error")

    with pytest.raises(OSError) as caught:
        atomicfile.write_bytes(str(target), NEW, fsync=fsync_eio)
    assert caught.value.errno == errno.EIO
    assert target.read_bytes() == OLD
    assert leftovers(target.parent) == []


def test_memory_error_mid_write_removes_tmp(target: pathlib.Path) -> None:
    def write(fd: int, data: memoryview) -> int:
        os.write(fd, data[:10])
        raise MemoryError

    with pytest.raises(MemoryError):
        atomicfile.write_bytes(str(target), NEW, write=write)
    assert target.read_bytes() == OLD
    assert leftovers(target.parent) == []


def test_new_file_that_cannot_be_written_is_not_created(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "resolv.conf"
    with pytest.raises(OSError):
        atomicfile.write_bytes(str(path), NEW, write=_fails_after(100, errno.ENOSPC))
    assert list(tmp_path.iterdir()) == []


def test_mode_is_0644_whatever_the_umask(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "lease-mos.json"
    old = os.umask(0o077)
    try:
        atomicfile.write_json(str(path), {"a": 1})
    finally:
        os.umask(old)
    assert path.stat().st_mode & 0o777 == 0o644 and path.read_text() == '{\n "a": 1\n}'


def test_threads_writing_one_file_never_tear_it(tmp_path: pathlib.Path) -> None:
    """The daemon's IPv4 and IPv6 threads both write resolv.conf: one tmp name each."""
    path = tmp_path / "resolv.conf"
    contents = [bytes([65 + i]) * 200_000 for i in range(3)]
    path.write_bytes(contents[0])
    errors: list[BaseException] = []
    torn: list[int] = []

    def writer(data: bytes) -> None:
        try:
            for _ in range(30):
                atomicfile.write_bytes(str(path), data)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(c,)) for c in contents]
    for t in threads:
        t.start()
    while any(t.is_alive() for t in threads):
        seen = path.read_bytes()
        if seen not in contents:
            torn.append(len(seen))
    for t in threads:
        t.join()
    assert errors == [] and torn == []
    assert leftovers(tmp_path) == []


class _Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


@pytest.fixture
def logged(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Every mosnet log line; each atomic write fails with ENOSPC half-way."""
    real = atomicfile.write_all

    def full_disk(fd: int, data: bytes, write: atomicfile.Writer = os.write) -> None:
        real(fd, data, _fails_after(len(data) // 2, errno.ENOSPC))

    monkeypatch.setattr(atomicfile, "write_all", full_disk)
    handler = _Lines()
    logger = logging.getLogger("mosnet")
    logger.addHandler(handler)
    try:
        yield handler.lines
    finally:
        logger.removeHandler(handler)


def test_callers_log_the_file_and_keep_going(tmp_path: pathlib.Path, logged: list[str]) -> None:
    lease = Lease(
        address=IPv4Address("10.0.0.5"), prefixlen=24, server_id=IPv4Address("10.0.0.1"),
        lease_time=3600, t1=1800, t2=3150, acquired_at=0.0,
    )  # fmt: skip
    (tmp_path / "lease-mos.json").write_bytes(OLD)
    assert apply4.write_lease(lease, "mos", str(tmp_path)) is False
    resolv = tmp_path / "resolv.conf"
    resolv.write_bytes(OLD)
    action = WriteResolvConf(str(resolv), (IPv4Address("10.0.0.53"),))
    netapply._write_resolv(action, cast(netapply._Ctx, None))  # ctx is unused
    links = coexist.owned_links("eth0", "52:54:00:00:00:01", "mos", "linux")
    written, errors = coexist.write(links, str(tmp_path / "run"))
    assert written == [] and errors and all("No space left" in e for e in errors)
    assert (tmp_path / "lease-mos.json").read_bytes() == OLD and resolv.read_bytes() == OLD
    assert f"{tmp_path}/lease-mos.json not written: No space left on device" in logged
    assert f"{resolv} not written: No space left on device" in logged
    assert [line for line in logged if "No space left" in line][2:] == errors
    with pytest.raises(OSError):
        resolvconf.write_atomic(str(resolv), "nameserver 10.0.0.53\n")
    assert leftovers(tmp_path) == [] and resolv.read_bytes() == OLD
