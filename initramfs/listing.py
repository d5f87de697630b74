"""Read back what an initramfs holds: the list of paths in a built image.

The kernel unpacks a sequence of newc archives, each compressed or not, with
zero padding between them (init/initramfs.c). This reader walks the same
sequence, so it lists a base image, an add-on, or both concatenated. Only
names, modes, sizes and symlink targets are kept, never file contents.
"""

from __future__ import annotations

import stat
import subprocess
import zlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from initramfs.cpio import MAGIC, TRAILER

_HEADER_LEN = 110
_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
_GZIP_MAGIC = b"\x1f\x8b"


class ListingError(Exception):
    """The image is not a sequence of (compressed) newc archives."""


@dataclass(frozen=True)
class Listed:
    """One archive member as the kernel would create it."""

    path: PurePosixPath
    mode: int
    size: int
    target: str = ""  # symlinks only

    @property
    def is_dir(self) -> bool:
        return stat.S_ISDIR(self.mode)


def _align(n: int) -> int:
    return (n + 3) & ~3


def _parse_header(data: bytes, pos: int) -> tuple[int, int, int]:
    """(mode, filesize, namesize) of the newc header at ``pos``."""
    head = data[pos : pos + _HEADER_LEN]
    if len(head) < _HEADER_LEN or head[:6] != MAGIC:
        raise ListingError(f"no newc header at offset {pos}")
    try:
        fields = [int(head[6 + 8 * i : 14 + 8 * i], 16) for i in range(13)]
    except ValueError as exc:
        raise ListingError(f"bad newc header at offset {pos}") from exc
    return fields[1], fields[6], fields[11]


def read_archive(data: bytes, pos: int = 0) -> tuple[list[Listed], int]:
    """Members of the newc archive at ``pos`` and the offset after its trailer."""
    members: list[Listed] = []
    while True:
        mode, size, namesize = _parse_header(data, pos)
        name_end = pos + _HEADER_LEN + namesize
        name = data[pos + _HEADER_LEN : name_end - 1].decode()
        start = _align(name_end)
        if start + size > len(data):
            raise ListingError(f"{name}: truncated archive")
        pos = _align(start + size)
        if name == TRAILER:
            return members, pos
        if name in (".", ""):
            continue
        target = data[start : start + size].decode() if stat.S_ISLNK(mode) else ""
        members.append(Listed(PurePosixPath("/") / name, mode, size, target))


def _decompress_one(data: bytes) -> tuple[bytes, bytes]:
    """Decompress the first compressed stream in ``data``; return it and the rest."""
    if data.startswith(_GZIP_MAGIC):
        gz = zlib.decompressobj(wbits=31)
        return gz.decompress(data), gz.unused_data
    if data.startswith(_ZSTD_MAGIC):
        try:
            import zstandard
        except ImportError:  # the zstd tool reads every frame: nothing is left over
            argv = ["zstd", "-d", "-q", "-c"]
            return subprocess.run(argv, input=data, check=True, capture_output=True).stdout, b""
        zd = zstandard.ZstdDecompressor().decompressobj()
        return zd.decompress(data), zd.unused_data
    raise ListingError(f"unknown data starting with {data[:4].hex()}")


def read_image(data: bytes) -> list[Listed]:
    """Every member of every archive in ``data``, in unpack order."""
    members: list[Listed] = []
    pending = [data]
    while pending:
        chunk = pending.pop(0)
        pos = 0
        while pos < len(chunk):
            if chunk[pos] == 0:
                pos += 1
            elif chunk.startswith(MAGIC, pos):
                found, pos = read_archive(chunk, pos)
                members.extend(found)
            else:
                try:
                    plain, rest = _decompress_one(chunk[pos:])
                except Exception as exc:  # zlib, zstandard and subprocess errors alike
                    raise ListingError(f"cannot decompress: {exc}") from exc
                pending[:0] = [plain, rest]
                break
    return members


def list_image(path: Path) -> dict[PurePosixPath, Listed]:
    """Final state of each path after the kernel unpacked ``path``."""
    return {m.path: m for m in read_image(path.read_bytes())}
