"""Image size, mosnet-init.bin: its ELF sections and the Python bytecode Nuitka embeds.

Nuitka compiles ``mosnet`` and ``init`` to C; everything else it follows is
stored as marshalled bytecode. The blobs are located in the binary from
Nuitka's own build directory (``.cache/nuitka``), and only if that directory
made this very binary.
"""

from __future__ import annotations

import pickle
import re
import struct
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from bench.size.compress import BUILD, Compressor
from bench.size.newc import Image, Member, cut_ranges, with_content

TOP = Path(__file__).resolve().parents[2]
NUITKA_BUILD = TOP / ".cache" / "nuitka" / "__main__.build"
BIN = "usr/lib/mosnet/mosnet-init.bin"
BYTECODE_CUTS = 4  # the largest bytecode packages inside mosnet-init.bin, each cut
BIG_SECTION = 100_000  # ELF sections at least this large get a row of their own

_LOADER_ROW = re.compile(
    r'^\s*"([^"]+)",(?:[^,\n]*,)*?\s*(\d+),\s*(\d+),\s*NUITKA_BYTECODE_FLAG', re.M
)


def parse_loader(text: str) -> list[tuple[str, int, int]]:
    """Nuitka's ``__loader.c`` -> (module, blob index, bytes) of each bytecode module."""
    return [(n, int(i), int(s)) for n, i, s in _LOADER_ROW.findall(text)]


def elf_sections(data: bytes) -> list[tuple[str, int, int]]:
    """(name, file offset, size) of an ELF64 little-endian file's sections with file bytes."""
    if data[:4] != b"\x7fELF" or data[4] != 2 or data[5] != 1:
        raise ValueError("not an ELF64 little-endian file")
    (shoff,) = struct.unpack_from("<Q", data, 0x28)
    shentsize, shnum, shstrndx = struct.unpack_from("<HHH", data, 0x3A)
    heads = [struct.unpack_from("<IIQQQQ", data, shoff + i * shentsize) for i in range(shnum)]
    str_off, str_size = heads[shstrndx][4], heads[shstrndx][5]
    names = data[str_off : str_off + str_size]
    out = []
    for name_off, kind, _flags, _addr, off, size in heads:
        if kind in (0, 8) or size == 0:  # SHT_NULL, SHT_NOBITS
            continue
        name = names[name_off : names.index(b"\0", name_off)].decode()
        out.append((name, off, size))
    return out


def group_bytecode(mods: Iterable[tuple[str, int, int]]) -> dict[str, int]:
    """Bytecode bytes per top-level package, largest first."""
    out: dict[str, int] = {}
    for name, _, size in mods:
        top = name.split(".", 1)[0]
        out[top] = out.get(top, 0) + size
    return dict(sorted(out.items(), key=lambda kv: -kv[1]))


def nuitka_bytecode(bin_data: bytes, build: Path = NUITKA_BUILD) -> list[tuple[str, int, int]]:
    """(module, offset in the .bin, size) of each embedded bytecode blob; [] if unknown.

    Read from Nuitka's build directory, and only if every blob is found in
    ``bin_data`` in order (the build directory made this binary).
    """
    try:
        loader = parse_loader((build / "__loader.c").read_text())
        blobs = _bytecode_blobs(build / "__bytecode.const")
    except (OSError, pickle.UnpicklingError, EOFError, ValueError, KeyError, TypeError):
        return []
    if len(blobs) != len(loader):
        return []
    out, pos = [], 0
    for (name, _index, size), blob in zip(loader, blobs, strict=True):
        at = bin_data.find(blob, pos)
        if at < 0 or len(blob) != size:
            return []
        out.append((name, at, size))
        pos = at + size
    return out


class _Blob:
    def __setstate__(self, state: Any) -> None:
        self.data = state[1]["data"] if isinstance(state, tuple) else state["data"]


class _BlobUnpickler(pickle.Unpickler):
    """Nuitka pickles its blobs as BlobData objects: load them as plain holders only."""

    def find_class(self, module: str, name: str) -> Any:
        if name == "BlobData":
            return _Blob
        raise pickle.UnpicklingError(f"unexpected class {module}.{name}")


def _bytecode_blobs(path: Path) -> list[bytes]:
    blobs: list[bytes] = []
    with path.open("rb") as f:
        u = _BlobUnpickler(f)
        while True:
            try:
                obj = u.load()
            except EOFError:
                return blobs
            if not isinstance(obj, _Blob) or not isinstance(obj.data, bytes):
                raise ValueError("unexpected bytecode blob")
            blobs.append(obj.data)


def bytecode_jobs(
    buf: bytes, members: Sequence[Member]
) -> tuple[dict[str, tuple[str, bytes]], dict[str, int]]:
    """Cut the largest bytecode packages (and all bytecode) out of mosnet-init.bin.

    Returns the compression jobs and the raw bytes each cut removes.
    """
    jobs: dict[str, tuple[str, bytes]] = {}
    raw: dict[str, int] = {}
    binm = next((m for m in members if m.name == BIN), None)
    if binm is None:
        return jobs, raw
    content = buf[binm.data : binm.data + binm.size]
    mods = nuitka_bytecode(content)
    if not mods:
        return jobs, raw
    groups = list(group_bytecode(mods))[:BYTECODE_CUTS]
    selections = {
        f"mosnet-init.bin: {g} bytecode": [x for x in mods if x[0].split(".")[0] == g]
        for g in groups
    }
    selections["mosnet-init.bin: all embedded bytecode"] = mods
    for label, sel in selections.items():
        raw[label] = sum(s for _, _, s in sel)
        cut = cut_ranges(content, [(o, o + s) for _, o, s in sel])
        jobs[label] = (BUILD, with_content(buf, members, BIN, cut))
    return jobs, raw


def bin_breakdown(img: Image, comp: Compressor) -> dict[str, Any]:
    """mosnet-init.bin by ELF section, and its embedded bytecode by package."""
    buf = img.plain
    binm = next((m for m in img.members() if m.name == BIN), None)
    if binm is None:
        return {}
    content = buf[binm.data : binm.data + binm.size]
    secs = elf_sections(content)
    big = [s for s in secs if s[2] >= BIG_SECTION]
    jobs = {name: (BUILD, content[off : off + size]) for name, off, size in big}
    mods = nuitka_bytecode(content)
    groups = group_bytecode(mods)
    top = list(groups)[:12]
    for g in top:
        blob = b"".join(content[o : o + s] for n, o, s in mods if n.split(".")[0] == g)
        jobs[f"bytecode:{g}"] = (BUILD, blob)
    if mods:
        jobs["bytecode:*"] = (BUILD, b"".join(content[o : o + s] for _, o, s in mods))
    got = comp.many(jobs)
    out: dict[str, Any] = {
        "bytes": binm.size,
        "sections": [{"name": n, "bytes": s, "alone_zstd": got[n]} for n, _, s in big],
        "other_sections_bytes": sum(s for n, _, s in secs if s < BIG_SECTION),
    }
    if mods:
        out["bytecode"] = {
            "modules": len(mods),
            "bytes": sum(s for _, _, s in mods),
            "alone_zstd": got["bytecode:*"],
            "packages": [
                {"package": g, "bytes": groups[g], "alone_zstd": got[f"bytecode:{g}"]} for g in top
            ],
        }
    return out
