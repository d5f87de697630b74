"""Image size, reading: an initramfs image -> its streams -> its newc records.

Walks the newc headers itself (the kernel's ``init/initramfs.c`` order), so
every member has its size and its bytes, and rebuilds valid archives from
chosen records (for the "what if this were cut" compressions).
"""

from __future__ import annotations

import hashlib
import io
import lzma
import stat
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from initramfs.cpio import write_newc

TOP = Path(__file__).resolve().parents[2]
NEWC_MAGIC = b"070701"
HEADER_LEN = 110
TRAILER_NAME = "TRAILER!!!"


class SizeError(Exception):
    """An image is not what the kernel would unpack."""


@dataclass(frozen=True)
class Member:
    """One newc record: ``buf[start:end]`` is the whole record, padding included."""

    name: str  # as archived: no leading slash
    mode: int
    size: int
    start: int
    data: int
    end: int

    @property
    def is_file(self) -> bool:
        return stat.S_ISREG(self.mode)


def _align4(n: int) -> int:
    return (n + 3) & ~3


def walk_newc(buf: bytes, pos: int = 0) -> tuple[list[Member], int]:
    """The records of the archive at ``pos`` (trailer excluded), and the offset after it."""
    members: list[Member] = []
    while True:
        head = buf[pos : pos + HEADER_LEN]
        if len(head) < HEADER_LEN or head[:6] != NEWC_MAGIC:
            raise SizeError(f"no newc header at offset {pos}")
        try:
            fields = [int(head[6 + 8 * i : 14 + 8 * i], 16) for i in range(13)]
        except ValueError as exc:
            raise SizeError(f"bad newc header at offset {pos}") from exc
        mode, size, namesize = fields[1], fields[6], fields[11]
        name_end = pos + HEADER_LEN + namesize
        if namesize == 0 or name_end > len(buf):
            raise SizeError(f"bad name size at offset {pos}")
        name = buf[pos + HEADER_LEN : name_end - 1].decode("utf-8", "replace")
        data = _align4(name_end)
        end = _align4(data + size)
        if data + size > len(buf):
            raise SizeError(f"{name}: truncated archive")
        if name == TRAILER_NAME:
            return members, end
        members.append(Member(name, mode, size, pos, data, end))
        pos = end


def walk_archives(buf: bytes) -> list[list[Member]]:
    """Every archive of a decompressed stream (the kernel skips zero padding between)."""
    archives: list[list[Member]] = []
    pos = 0
    while pos < len(buf):
        if buf[pos] == 0:
            pos += 1
            continue
        members, pos = walk_newc(buf, pos)
        archives.append(members)
    return archives


@dataclass(frozen=True)
class Segment:
    """One piece of an image: a compressed stream (or a plain archive) and its bytes."""

    fmt: str  # "zstd", "gzip", "xz" or "newc"
    stored: int  # bytes in the image file
    plain: bytes


def split_image(data: bytes) -> list[Segment]:
    """An initramfs image -> its pieces in unpack order (init/initramfs.c's sequence)."""
    segments: list[Segment] = []
    pos = 0
    while pos < len(data):
        if data[pos] == 0:
            pos += 1
            continue
        rest = data[pos:]
        if rest.startswith(NEWC_MAGIC):
            _, end = walk_newc(data, pos)
            segments.append(Segment("newc", end - pos, data[pos:end]))
            pos = end
            continue
        fmt, plain, left = _decompress_one(rest)
        segments.append(Segment(fmt, len(rest) - len(left), plain))
        pos += len(rest) - len(left)
    return segments


def _decompress_one(data: bytes) -> tuple[str, bytes, bytes]:
    if data.startswith(b"\x28\xb5\x2f\xfd"):
        import zstandard

        zd = zstandard.ZstdDecompressor().decompressobj()
        return "zstd", zd.decompress(data), zd.unused_data
    if data.startswith(b"\x1f\x8b"):
        gz = zlib.decompressobj(wbits=31)
        return "gzip", gz.decompress(data), gz.unused_data
    if data.startswith(b"\xfd7zXZ\x00"):
        xz = lzma.LZMADecompressor()
        return "xz", xz.decompress(data), xz.unused_data
    raise SizeError(f"unknown data starting with {data[:6].hex()}")


def trailer() -> bytes:
    """A newc trailer record, as initramfs/cpio.py writes it."""
    buf = io.BytesIO()
    write_newc(buf, [], 0)
    return buf.getvalue()


def records(buf: bytes, members: Iterable[Member]) -> bytes:
    """The given records, in their order, closed by a trailer: a valid archive."""
    return b"".join(buf[m.start : m.end] for m in members) + trailer()


def cut_ranges(content: bytes, ranges: Iterable[tuple[int, int]]) -> bytes:
    """``content`` without the ``[start, end)`` ranges (which must not overlap)."""
    out, pos = [], 0
    for start, end in sorted(ranges):
        if start < pos or end < start or end > len(content):
            raise ValueError(f"bad range {start}-{end}")
        out.append(content[pos:start])
        pos = end
    out.append(content[pos:])
    return b"".join(out)


def with_content(buf: bytes, members: Sequence[Member], name: str, content: bytes) -> bytes:
    """The archive with member ``name``'s bytes replaced (its header's size fixed)."""
    parts = []
    for m in members:
        if m.name != name:
            parts.append(buf[m.start : m.end])
            continue
        head = bytearray(buf[m.start : m.data])
        head[6 + 8 * 6 : 14 + 8 * 6] = b"%08X" % len(content)
        parts.append(bytes(head) + content + b"\0" * (-len(content) % 4))
    return b"".join(parts) + trailer()


def content_bytes(m: Member) -> int:
    """What the build reports count: file and symlink-target bytes."""
    return m.size if (m.is_file or stat.S_ISLNK(m.mode)) else 0


@dataclass
class Image:
    label: str
    path: Path
    data: bytes
    segments: list[Segment]

    @classmethod
    def load(cls, label: str, path: Path) -> Image:
        data = path.read_bytes()
        return cls(label, path, data, split_image(data))

    @property
    def plain(self) -> bytes:
        return b"".join(s.plain for s in self.segments)

    def members(self) -> list[Member]:
        return [m for a in walk_archives(self.plain) for m in a]

    def summary(self) -> dict[str, Any]:
        members = self.members()
        return {
            "path": str(self.path.relative_to(TOP)) if self.path.is_relative_to(TOP) else "",
            "sha256": hashlib.sha256(self.data).hexdigest()[:16],
            "compressed": len(self.data),
            "format": "+".join(s.fmt for s in self.segments),
            "segments": [s.stored for s in self.segments],
            "unpacked": sum(len(s.plain) for s in self.segments),
            "file_bytes": sum(content_bytes(m) for m in members),
            "files": sum(1 for m in members if m.is_file),
        }
