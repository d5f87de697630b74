"""Reproducible writer for the "newc" (SVR4, no CRC) cpio format.

The kernel unpacks an initramfs from newc only, so this is the one format we
write. Everything that could differ between two builds of the same tree is
pinned: entry order, owners, mtimes and inode numbers.
"""

from __future__ import annotations

import shutil
import stat
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

MAGIC = b"070701"
TRAILER = "TRAILER!!!"
_HEADER_LEN = 110
# Only these bits survive into the archive: type + permission/suid/sgid/sticky.
_KEEP_BITS = stat.S_IFMT(0o177777) | 0o7777


class CpioError(Exception):
    """An entry cannot be represented in a newc archive."""


@dataclass(frozen=True)
class CpioEntry:
    """One archive member.

    ``name`` is the path inside the image without a leading slash. Regular
    files take their content from ``data`` or, to avoid loading large files,
    from ``source`` (read at write time). Symlinks carry their target in
    ``data``. Device nodes carry ``rdev`` as (major, minor).
    """

    name: str
    mode: int
    data: bytes = b""
    source: Path | None = None
    rdev: tuple[int, int] = (0, 0)


def _pad(n: int) -> bytes:
    return b"\0" * (-n % 4)


def _header(ino: int, entry: CpioEntry, size: int, mtime: int, namesize: int) -> bytes:
    mode = entry.mode & _KEEP_BITS
    nlink = 2 if stat.S_ISDIR(mode) else 1
    fields = (ino, mode, 0, 0, nlink, mtime, size, 0, 0, *entry.rdev, namesize, 0)
    return MAGIC + b"".join(b"%08X" % f for f in fields)


def _check(entry: CpioEntry) -> None:
    fmt = stat.S_IFMT(entry.mode)
    if fmt not in (stat.S_IFDIR, stat.S_IFREG, stat.S_IFLNK, stat.S_IFCHR, stat.S_IFBLK):
        raise CpioError(f"{entry.name}: unsupported file type {oct(fmt)}")
    if not entry.name or entry.name.startswith("/") or "\0" in entry.name:
        raise CpioError(f"bad archive name {entry.name!r}")
    if entry.source is not None and fmt != stat.S_IFREG:
        raise CpioError(f"{entry.name}: only regular files may have a source file")


def _write_one(out: BinaryIO, ino: int, entry: CpioEntry, mtime: int) -> int:
    name = entry.name.encode() + b"\0"
    size = entry.source.stat().st_size if entry.source is not None else len(entry.data)
    head = _header(ino, entry, size, mtime, len(name)) + name
    out.write(head + _pad(len(head)))
    if entry.source is not None:
        with entry.source.open("rb") as src:
            shutil.copyfileobj(src, out, 1 << 20)
            if src.tell() != size:
                raise CpioError(f"{entry.source}: size changed while archiving")
    else:
        out.write(entry.data)
    out.write(_pad(size))
    return len(head) + len(_pad(len(head))) + size + len(_pad(size))


def write_newc(out: BinaryIO, entries: Iterable[CpioEntry], epoch: int) -> int:
    """Write ``entries`` sorted by name, then the trailer; return bytes written.

    Inode numbers count up from 1 in archive order so that identical trees
    give identical bytes. Duplicate names are an error.
    """
    ordered = sorted(entries, key=lambda e: e.name.encode())
    total = 0
    seen: set[str] = set()
    for ino, entry in enumerate(ordered, start=1):
        _check(entry)
        if entry.name in seen:
            raise CpioError(f"duplicate archive name {entry.name!r}")
        seen.add(entry.name)
        total += _write_one(out, ino, entry, epoch)
    trailer = CpioEntry(TRAILER, 0)
    total += _write_one(out, 0, trailer, 0)
    return total
