"""Fake new roots for the init.initcheck tests, and ways to build and check them.

Fake roots in tmp_path hold real binaries copied from the host (static
busybox, a dynamic /bin/true with its loader), patched copies of them and
scripts. The ``root`` fixture is imported by name into the test modules.
"""

from __future__ import annotations

import os
import pathlib
import shutil
import struct

import pytest

from init import initcheck as ic

ACCEPT = ic.machine_ids()
BUSYBOX = "/bin/busybox"
DYNAMIC = "/bin/true"


def elf_of(path: str) -> ic.ElfInfo:
    fd = os.open(path, os.O_RDONLY)
    try:
        return ic.read_elf(fd, path)
    finally:
        os.close(fd)


def put(root: pathlib.Path, path: str, source: str | None = None, mode: int = 0o755) -> str:
    """Copy ``source`` (or write nothing) to ``path`` inside ``root``."""
    dst = root / path.lstrip("/")
    dst.parent.mkdir(parents=True, exist_ok=True)
    if source is None:
        dst.write_bytes(b"")
    else:
        shutil.copyfile(source, dst)
    dst.chmod(mode)
    return path


def script(root: pathlib.Path, path: str, text: str | bytes, mode: int = 0o755) -> str:
    dst = root / path.lstrip("/")
    dst.parent.mkdir(parents=True, exist_ok=True)
    dst.write_bytes(text.encode() if isinstance(text, str) else text)
    dst.chmod(mode)
    return path


def link(root: pathlib.Path, path: str, target: str) -> None:
    dst = root / path.lstrip("/")
    dst.parent.mkdir(parents=True, exist_ok=True)
    dst.symlink_to(target)


@pytest.fixture
def root(tmp_path: pathlib.Path) -> pathlib.Path:
    """A new root as Debian lays it out: busybox as /bin/sh, a dynamic /bin/true,
    its loader behind an absolute symlink (/lib64/... -> /usr/lib/...)."""
    if not os.path.exists(BUSYBOX) or not os.path.exists(DYNAMIC):
        pytest.skip("needs /bin/busybox and /bin/true")
    r = tmp_path / "root"
    put(r, "/bin/busybox", BUSYBOX)
    link(r, "/bin/sh", "busybox")
    put(r, "/bin/true", DYNAMIC)
    interp = elf_of(DYNAMIC).interp
    assert interp is not None
    real = "/usr/lib/loader/" + os.path.basename(interp)
    put(r, real, os.path.realpath(interp))
    link(r, interp, real)  # absolute: must resolve inside r, not on the host
    return r


def runs(root: pathlib.Path, path: str) -> ic.Runnable:
    return ic.check_runnable(str(root), path, ACCEPT)


def refused(root: pathlib.Path, path: str) -> str:
    with pytest.raises(ic.NotRunnable) as info:
        ic.check_runnable(str(root), path, ACCEPT)
    return str(info.value)


def patched(src: str, dst: pathlib.Path, offset: int, data: bytes) -> None:
    raw = bytearray(pathlib.Path(src).read_bytes())
    raw[offset : offset + len(data)] = data
    dst.parent.mkdir(parents=True, exist_ok=True)
    dst.write_bytes(bytes(raw))
    dst.chmod(0o755)


def _pack_half(value: int) -> bytes:
    return struct.pack("<H" if elf_of(BUSYBOX).ident.data == 1 else ">H", value)
