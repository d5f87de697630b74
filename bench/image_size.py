"""Image size: mosnet's images by part, the references, and what each cut would save.

Reads the built images (``out/mosnet-initramfs.img``, ``out/mosnet-ovs.img``,
``out/mosnet-initramfs-ovs.img``), decompresses them and walks the newc
headers itself, so every member has its size and its bytes. Sizes:

- **unpacked**: the cpio stream (headers, names, padding) and the file bytes;
- **compressed**: the image as shipped; per part, the part compressed
  alone (newc records of that part only) and the **saving** if the part
  were left out (the whole cpio without it, compressed again, against the
  whole). Savings are what the lead can book: compression shares context
  across files, so a part alone costs more than it saves.

Every compression uses the build's own function (``initramfs.build.compress``:
zstd at ``ZSTD_LEVEL``, one thread, checksum), checked by recompressing the
default image first: it must come out at the shipped size, byte for byte. Results are cached in
``.cache/bench/compressed.json`` by the SHA-256 of the input, so a rerun on
the same images costs nothing.

The references: the busybox reference initramfs of the QEMU boot bench
(``qemu_boot.build_reference``) and dracut's network initramfs
(``dracut_ref``), both compressed the same way.

Also: the 15 largest files, the largest kernel modules, what
``mosnet-init.bin`` is made of (ELF sections; the Python bytecode Nuitka
embeds, per top-level package, when ``.cache/nuitka`` built this very
binary), whole-image alternatives (``xz -9``, ``zstd --ultra -22
--long=27``) and what they cost the guest to unpack (QEMU TCG,
``initramfs_async=0``: the kernel's "Trying to unpack" to "Freeing initrd
memory").

usage: .venv/bin/python bench/image_size.py [--no-cuts] [--no-guest] [--no-dracut]
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import lzma
import os
import pickle
import re
import stat
import struct
import subprocess
import sys
import tempfile
import zlib
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import dracut_ref, pngchart, stats  # noqa: E402
from initramfs.addon import DAEMONS, SCHEMA, TOOLS  # noqa: E402
from initramfs.build import ZSTD_LEVEL, compress  # noqa: E402
from initramfs.cpio import write_newc  # noqa: E402
from initramfs.kmod import module_name, parse_modules_dep  # noqa: E402

KEY = "image_size"
TOP = Path(__file__).resolve().parent.parent
OUT = TOP / "out"
CACHE = TOP / ".cache" / "bench" / "compressed.json"
NUITKA_BUILD = TOP / ".cache" / "nuitka" / "__main__.build"
MB = 1_000_000
TARGETS = {"default": 15 * MB, "ovs": 25 * MB}  # zstd, as shipped
NEWC_MAGIC = b"070701"
HEADER_LEN = 110
TRAILER_NAME = "TRAILER!!!"
BIN = "usr/lib/mosnet/mosnet-init.bin"
GUEST_TIMEOUT = 180.0

# The build's own compression (initramfs.build.compress, in-process, so the
# sizes are exactly what ./build.sh ships), then the alternatives tried on
# whole images: name -> argv (stdin -> stdout).
BUILD = f"zstd-{ZSTD_LEVEL} (build)"
COMPRESSORS: dict[str, tuple[str, ...]] = {
    "zstd-19": ("zstd", "-19", "-T1", "-q", "-c"),
    "zstd-22-long": ("zstd", "--ultra", "-22", "--long=27", "-T1", "-q", "-c"),
    "xz-9": ("xz", "-9", "--check=crc32", "-T1", "-q", "-c"),
}

# Candidate cuts: label -> member paths (without the leading /) or module
# names; only those present in the image are measured.
DIST_GROUPS: dict[str, tuple[str, ...]] = {
    "TLS: libcrypto, libssl, _ssl, _hashlib": (
        "libcrypto.so.3",
        "libssl.so.3",
        "_ssl.so",
        "_hashlib.so",
    ),
    "sqlite: libsqlite3, _sqlite3": ("libsqlite3.so.0", "_sqlite3.so"),
    "_decimal": ("_decimal.so",),
    "unicodedata": ("unicodedata.so",),
    "pyexpat": ("pyexpat.so",),
    "ctypes: _ctypes, libffi": ("_ctypes.so", "libffi.so.8"),
    "CJK codecs": (
        "_codecs_cn.so",
        "_codecs_hk.so",
        "_codecs_iso2022.so",
        "_codecs_jp.so",
        "_codecs_kr.so",
        "_codecs_tw.so",
        "_multibytecodec.so",
    ),
    "lzma, bz2": ("_lzma.so", "liblzma.so.5", "_bz2.so", "libbz2.so.1.0"),
}
NFT_FILES = ("usr/sbin/nft",)
NFT_LIBS = (
    "libnftables",
    "libnftnl",
    "libjansson",
    "libgmp",
    "libedit",
    "libtinfo",
    "libbsd",
    "libmd",
    "libxtables",
    "libmnl",
)
MODULE_GROUPS: dict[str, tuple[str, ...]] = {
    "100G/40G NICs: mlx5_core, ice, i40e, bnxt_en": ("mlx5_core", "ice", "i40e", "bnxt_en"),
    "NIC drivers but virtio_net": (
        "e1000",
        "e1000e",
        "igb",
        "ixgbe",
        "i40e",
        "ice",
        "bnxt_en",
        "mlx5_core",
        "r8169",
        "tg3",
    ),
    "xfs": ("xfs",),
    "SATA/SCSI: ahci, sd_mod, virtio_scsi": ("ahci", "sd_mod", "virtio_scsi"),
}
TOP_MODULES_CUT = 6  # also each of the largest modules alone (with deps only it needs)
BYTECODE_CUTS = 4  # the largest bytecode packages inside mosnet-init.bin, each cut


class SizeError(Exception):
    """An image is not what the kernel would unpack."""


# ---------------------------------------------------------------- pure parts


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


def part_of(name: str) -> str:
    """The part of a base-image member, as out/image-report.json counts them."""
    path = "/" + name.lstrip("/")
    if path.startswith("/usr/lib/mosnet/"):
        return "dist"
    if path.startswith("/lib/modules/"):
        return "modules"
    if path in ("/bin/busybox", "/bin/sh", "/sbin/modprobe"):
        return "busybox"
    if path == "/mosnet-init":
        return "preinit"
    if path in ("/init", "/usr/sbin/nft"):  # the build files these under "other"
        return "other"
    if path.startswith(("/lib/", "/lib64/", "/usr/lib/", "/usr/sbin/", "/usr/bin/")):
        return "libraries"
    return "other"


def addon_part_of(name: str) -> str:
    """The part of an OVS add-on member, as out/ovs-report.json counts them."""
    path = "/" + name.lstrip("/")
    if path in DAEMONS:
        return "daemons"
    if path in TOOLS:
        return "tools"
    if path == SCHEMA:
        return "schema"
    return "libraries"


def content_bytes(m: Member) -> int:
    """What the build reports count: file and symlink-target bytes."""
    return m.size if (m.is_file or stat.S_ISLNK(m.mode)) else 0


def sizes_by_part(members: Iterable[Member], part: Callable[[str], str]) -> dict[str, int]:
    out: dict[str, int] = {}
    for m in members:
        out[part(m.name)] = out.get(part(m.name), 0) + content_bytes(m)
    return dict(sorted(out.items()))


def exclusive_modules(
    deps: dict[str, tuple[str, ...]], present: Iterable[str], cut: Iterable[str]
) -> set[str]:
    """``cut`` plus every dependency of it that no remaining module needs."""
    present = set(present)
    gone = {m for m in cut if m in present}
    while True:
        keep = present - gone
        needed = {d for m in keep for d in _closure(deps, m)}
        extra = {
            d for m in gone for d in deps.get(m, ()) if d in present and d not in needed
        } - gone
        if not extra:
            return gone
        gone |= extra


def _closure(deps: dict[str, tuple[str, ...]], name: str) -> set[str]:
    seen: set[str] = set()
    todo = list(deps.get(name, ()))
    while todo:
        d = todo.pop()
        if d not in seen:
            seen.add(d)
            todo.extend(deps.get(d, ()))
    return seen


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


# ------------------------------------------------------- compression (cached)


def compressed(method: str, data: bytes) -> bytes:
    """``data`` compressed by ``method`` (BUILD or a key of COMPRESSORS)."""
    if method == BUILD:
        return compress(data, "zstd", ZSTD_LEVEL)
    return subprocess.run(COMPRESSORS[method], input=data, capture_output=True, check=True).stdout


class Compressor:
    """Compressed sizes, cached by (compressor, SHA-256 of the input); jobs in parallel."""

    def __init__(self, cache: Path = CACHE) -> None:
        self.cache_path = cache
        try:
            self.cache: dict[str, int] = json.loads(cache.read_text())
        except (OSError, ValueError):
            self.cache = {}
        self.computed = 0

    @staticmethod
    def key(method: str, data: bytes) -> str:
        return f"{method}:{hashlib.sha256(data).hexdigest()}"

    def size(self, method: str, data: bytes) -> int:
        k = self.key(method, data)
        if k not in self.cache:
            self.cache[k] = len(compressed(method, data))
            self.computed += 1
        return self.cache[k]

    def many(self, jobs: dict[str, tuple[str, bytes]]) -> dict[str, int]:
        """{label: (method, data)} -> {label: size}, as many at once as there are cores."""
        with ThreadPoolExecutor(max_workers=max(1, os.cpu_count() or 1)) as pool:
            futures = {k: pool.submit(self.size, m, d) for k, (m, d) in jobs.items()}
            return {k: f.result() for k, f in futures.items()}

    def save(self) -> None:
        self.cache_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.cache_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.cache, indent=0, sort_keys=True))
        os.replace(tmp, self.cache_path)


# ------------------------------------------------------------------ analysis


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


def _parts_section(
    img: Image, part: Callable[[str], str], comp: Compressor, cuts: bool, report: dict[str, Any]
) -> dict[str, Any]:
    """Per part: unpacked bytes, the build report's figure, alone and saving compressed."""
    buf = img.plain
    members = walk_archives(buf)[0]
    unpacked = sizes_by_part(members, part)
    names = sorted(unpacked)
    jobs = {
        f"alone:{p}": (BUILD, records(buf, [m for m in members if part(m.name) == p]))
        for p in names
    }
    whole = records(buf, members)
    if cuts:
        jobs["whole"] = (BUILD, whole)
        for p in names:
            jobs[f"cut:{p}"] = (BUILD, records(buf, [m for m in members if part(m.name) != p]))
    got = comp.many(jobs)
    out = {}
    for p in names:
        row: dict[str, Any] = {
            "unpacked": unpacked[p],
            "report": (report.get("parts") or {}).get(p),
            "alone_zstd": got[f"alone:{p}"],
        }
        if cuts:
            row["saving_zstd"] = got["whole"] - got[f"cut:{p}"]
        out[p] = row
    return out


def _largest(img: Image, comp: Compressor, n: int, pick: Callable[[Member], bool]) -> list[Any]:
    buf = img.plain
    members = sorted((m for m in img.members() if m.is_file and pick(m)), key=lambda m: -m.size)
    top = members[:n]
    got = comp.many({m.name: (BUILD, buf[m.data : m.data + m.size]) for m in top})
    return [
        {"path": "/" + m.name, "bytes": m.size, "part": part_of(m.name), "alone_zstd": got[m.name]}
        for m in top
    ]


def _modules_dep(buf: bytes, members: Sequence[Member]) -> dict[str, tuple[str, ...]]:
    dep = next((m for m in members if m.name.endswith("/modules.dep")), None)
    if dep is None:
        return {}
    _, deps = parse_modules_dep(buf[dep.data : dep.data + dep.size].decode())
    return deps


def _module_members(members: Sequence[Member]) -> dict[str, Member]:
    return {module_name(m.name): m for m in members if m.is_file and m.name.endswith(".ko")}


def unmapped_dist(img: Image, mapped: Sequence[str]) -> list[dict[str, Any]]:
    """The dist's shared objects no mosnet process had mapped, largest first."""
    seen = {p.removesuffix(" (deleted)") for p in mapped}
    return [
        {"path": "/" + m.name, "bytes": m.size}
        for m in sorted(img.members(), key=lambda m: -m.size)
        if m.is_file
        and part_of(m.name) == "dist"
        and ".so" in m.name.rsplit("/", 1)[-1]
        and "/" + m.name not in seen
    ]


def candidate_cuts(
    img: Image, comp: Compressor, unmapped: Sequence[dict[str, Any]] = ()
) -> list[dict[str, Any]]:
    """Each candidate cut's compressed saving, measured on the default image."""
    buf = img.plain
    members = walk_archives(buf)[0]
    whole = records(buf, members)
    by_base = {m.name.rsplit("/", 1)[-1]: m for m in members if m.is_file}
    deps = _modules_dep(buf, members)
    mods = _module_members(members)
    cuts: dict[str, set[str]] = {}  # label -> member names
    if unmapped:
        cuts["dist: every .so no mosnet process mapped (DHCP boot)"] = {
            u["path"].lstrip("/") for u in unmapped
        }
    for label, files in DIST_GROUPS.items():
        found = {
            by_base[f].name for f in files if f in by_base and part_of(by_base[f].name) == "dist"
        }
        if found:
            cuts[f"dist: {label}"] = found
    nft = {
        m.name
        for m in members
        if m.name in NFT_FILES
        or (part_of(m.name) == "libraries" and m.name.rsplit("/", 1)[-1].startswith(NFT_LIBS))
    }
    if any(n in NFT_FILES for n in nft):
        cuts["nft CLI and its libraries"] = nft
    largest = sorted(mods, key=lambda n: -mods[n].size)[:TOP_MODULES_CUT]
    groups = {n: (n,) for n in largest} | MODULE_GROUPS
    for label, names in groups.items():
        if not any(n in mods for n in names):
            continue
        gone = exclusive_modules(deps, mods, names)
        extra = len(gone - set(names))
        text = label + (f" (+{extra} deps only they need)" if extra else "")
        cuts[f"modules: {text}"] = {mods[n].name for n in gone}
    jobs = {"whole": (BUILD, whole)}
    for label, gone_names in cuts.items():
        jobs[label] = (BUILD, records(buf, [m for m in members if m.name not in gone_names]))
    bc_jobs, bc_raw = _bytecode_jobs(buf, members)
    jobs |= bc_jobs
    got = comp.many(jobs)
    out = []
    for label in jobs:
        if label == "whole":
            continue
        raw = (
            sum(m.size for m in members if m.name in cuts[label])
            if label in cuts
            else bc_raw.get(label, 0)
        )
        out.append({"cut": label, "unpacked": raw, "saving_zstd": got["whole"] - got[label]})
    return sorted(out, key=lambda r: -int(r["saving_zstd"]))


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


def _bytecode_jobs(
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
    big = [s for s in secs if s[2] >= 100_000]
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
        "other_sections_bytes": sum(s for n, _, s in secs if s < 100_000),
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


def alternatives(images: dict[str, Image], comp: Compressor) -> dict[str, dict[str, int]]:
    """Each image's cpio streams recompressed whole by each compressor (summed per image)."""
    jobs = {}
    for key in ("default", "addon"):
        if key in images:
            for method in (BUILD, *COMPRESSORS):
                for i, s in enumerate(images[key].segments):
                    jobs[f"{key}|{method}|{i}"] = (method, s.plain)
    got = comp.many(jobs)
    out: dict[str, dict[str, int]] = {}
    for k, size in got.items():
        key, method, _ = k.split("|")
        out.setdefault(key, {})
        out[key][method] = out[key].get(method, 0) + size
    if "default" in out and "addon" in out:
        out["ovs"] = {m: out["default"][m] + out["addon"][m] for m in out["default"]}
    return out


def recompressed_image(img: Image, method: str, dest: Path) -> Path:
    """``img`` with each stream recompressed by ``method`` (for the guest unpack test)."""
    dest.write_bytes(b"".join(compressed(method, s.plain) for s in img.segments))
    return dest


def guest_unpack(img: Image, runs: int, log: Callable[[str], None]) -> dict[str, Any]:
    """Kernel unpack time of the default image per compressor (QEMU TCG, synchronous)."""
    from bench import qemu_boot

    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="bq7-unpack-") as tmp:
        paths = {BUILD: Path(tmp) / "build.img"}
        paths[BUILD].write_bytes(img.data)
        with ThreadPoolExecutor(max_workers=max(1, os.cpu_count() or 1)) as pool:
            made = {m: pool.submit(recompressed_image, img, m, Path(tmp) / f"{m}.img")
                    for m in COMPRESSORS}  # fmt: skip
            paths |= {m: f.result() for m, f in made.items()}
        samples: dict[str, list[float]] = {m: [] for m in paths}
        for i in range(runs + 1):  # the first round warms up and is dropped
            for m, path in paths.items():
                ms = qemu_boot.unpack_ms(path, Path(tmp) / f"unpack-{i}.log", GUEST_TIMEOUT)
                log(
                    f"  unpack {m} {'warm-up' if i == 0 else i}: "
                    + ("failed" if ms is None else f"{ms:.0f} ms")
                )
                if i and ms is not None:
                    samples[m].append(ms)
        for m, vals in samples.items():
            out[m] = {
                "bytes": paths[m].stat().st_size,
                "unpack_ms": stats.summarize(vals).to_json() if vals else None,
            }
    return out


# ------------------------------------------------------------------ the run


def run(
    runs: int = 3,
    log: Callable[[str], None] = print,
    cuts: bool = True,
    guest: bool = True,
    dracut: bool = True,
) -> dict[str, Any]:
    comp = Compressor()
    section: dict[str, Any] = {"machine": stats.machine(), "targets": TARGETS}
    images: dict[str, Image] = {}
    for key, name in (
        ("default", "mosnet-initramfs.img"),
        ("addon", "mosnet-ovs.img"),
        ("ovs", "mosnet-initramfs-ovs.img"),
    ):
        if (OUT / name).is_file():
            images[key] = Image.load(key, OUT / name)
    if "default" not in images:
        raise RuntimeError(f"{OUT / 'mosnet-initramfs.img'} missing: run ./build.sh first")
    section["images"] = {k: v.summary() for k, v in images.items()}
    default = images["default"]
    log(f"  checking that {BUILD} reproduces the shipped image")
    again = comp.size(BUILD, default.plain)
    section["recompress_check"] = {"shipped": len(default.data), "build": again, "method": BUILD}
    report = _json(OUT / "image-report.json")
    log("  parts of the default image")
    section["parts"] = {"default": _parts_section(default, part_of, comp, cuts, report)}
    if "addon" in images:
        section["parts"]["ovs-addon"] = _parts_section(
            images["addon"], addon_part_of, comp, cuts, _json(OUT / "ovs-report.json")
        )
    log("  largest files and modules")
    section["largest_files"] = _largest(default, comp, 15, lambda m: True)
    section["largest_modules"] = _largest(default, comp, 15, lambda m: m.name.endswith(".ko"))
    section["bin"] = bin_breakdown(default, comp)
    section["references"] = references(comp, log, dracut)
    unmapped: list[dict[str, Any]] = []
    if guest and os.geteuid() == 0:
        log("  what mosnet's processes map after a DHCP boot (QEMU TCG)")
        with tempfile.TemporaryDirectory(prefix="bq7-maps-") as tmp:
            copy = Path(tmp) / "mosnet.img"
            copy.write_bytes(default.data)
            try:
                from bench import qemu_boot

                mapped = qemu_boot.mapped_files(copy, Path(tmp))
            except (TimeoutError, OSError, subprocess.SubprocessError) as exc:
                log(f"  mapped files: not measured ({exc})")
                mapped = []
        if mapped:
            unmapped = unmapped_dist(default, mapped)
            section["dist_mapped"] = [p for p in mapped if p.startswith("/usr/lib/mosnet/")]
            section["dist_unmapped"] = unmapped
    if cuts:
        log(f"  candidate cuts ({BUILD} of the image without each)")
        section["cuts"] = candidate_cuts(default, comp, unmapped)
        log("  whole-image compressors")
        section["alternatives"] = alternatives(images, comp)
    comp.save()
    if guest and os.geteuid() == 0:
        log("  guest unpack time per compressor (QEMU TCG)")
        section["guest_unpack"] = guest_unpack(default, max(1, min(runs, 3)), log)
    section["computed_compressions"] = comp.computed
    return section


def references(comp: Compressor, log: Callable[[str], None], dracut: bool) -> dict[str, Any]:
    from bench import qemu_boot

    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="bq7-size-") as tmp:
        ref = Path(tmp) / "busybox-ref.img"
        info = qemu_boot.build_reference(ref)
        img = Image.load("busybox", ref)
        out["busybox"] = img.summary() | {"parts": info["parts"], "modules": info["modules"]}
    if not dracut:
        return out
    for kind in dracut_ref.KINDS:
        try:
            path = dracut_ref.build(kind, log)
        except dracut_ref.DracutUnavailable as exc:
            out[f"dracut-{kind}"] = {"unavailable": str(exc)}
            continue
        img = Image.load(kind, path)
        members = img.members()
        parts = sizes_by_part(members, _dracut_part)
        out[f"dracut-{kind}"] = img.summary() | {"parts": parts}
    return out


def _dracut_part(name: str) -> str:
    path = "/" + name
    if "/lib/modules/" in path:
        return "modules"
    if "/lib/firmware/" in path:
        return "firmware"
    if path.startswith(("/usr/lib/x86_64-linux-gnu/", "/usr/lib64/", "/lib")):
        return "libraries"
    if path.startswith(("/usr/bin/", "/usr/sbin/", "/bin/", "/sbin/", "/usr/lib/systemd/")):
        return "programs"
    return "other (scripts, udev rules, config)"


def _json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


# ------------------------------------------------------------------- report


def _mb(n: float | int | None) -> str:
    return "-" if n is None else f"{n / MB:.2f}"


def report(section: dict[str, Any]) -> str:
    imgs: dict[str, Any] = section.get("images", {})
    refs: dict[str, Any] = section.get("references", {})
    targets: dict[str, int] = section.get("targets", TARGETS)
    alts: dict[str, Any] = section.get("alternatives", {})
    rows = []
    for key, label in (
        ("default", "mosnet default"),
        ("ovs", "mosnet with OVS"),
        ("addon", "  OVS add-on alone"),
    ):
        i = imgs.get(key)
        if not i:
            continue
        t = targets.get(key)
        verdict = (
            ""
            if t is None
            else (
                f"<= {t / MB:g}: "
                + (
                    "meets"
                    if i["compressed"] <= t
                    else f"misses by {(i['compressed'] - t) / MB:.2f} MB"
                )
            )
        )
        rows.append(
            [
                label,
                _mb(i["compressed"]),
                _mb(i["unpacked"]),
                _mb(i["file_bytes"]),
                i["files"],
                verdict,
            ]
        )
    for key, r in refs.items():
        if "unavailable" in r:
            rows.append([key, None, None, None, None, "unavailable: " + r["unavailable"][:60]])
        else:
            rows.append(
                [
                    key,
                    _mb(r["compressed"]),
                    _mb(r["unpacked"]),
                    _mb(r["file_bytes"]),
                    r["files"],
                    "",
                ]
            )
    out = [
        f"image size (MB = 10^6 bytes; compressed = as shipped, {BUILD})",
        stats.table(["image", "zstd", "cpio", "file bytes", "files", "target"], rows),
    ]
    chk = section.get("recompress_check")
    if chk:
        same = "identical" if chk["shipped"] == chk.get("build") else "DIFFERS"
        out.append(
            f"recompress check: shipped {chk['shipped']} B, {chk.get('method', '')} here "
            f"{chk.get('build')} B ({same})"
        )
    for key, parts in section.get("parts", {}).items():
        prow = [
            [
                p,
                _mb(v["unpacked"]),
                _mb(v.get("report")),
                _mb(v["alone_zstd"]),
                _mb(v.get("saving_zstd")),
            ]
            for p, v in parts.items()
        ]
        out += [
            "",
            f"{key}: by part (MB)",
            stats.table(["part", "unpacked", "build report", "alone zstd", "saving if cut"], prow),
        ]
    if section.get("largest_files"):
        out += [
            "",
            "largest files of the default image (MB)",
            stats.table(
                ["file", "bytes", "part", "alone zstd"],
                [
                    [f["path"], _mb(f["bytes"]), f["part"], _mb(f["alone_zstd"])]
                    for f in section["largest_files"]
                ],
            ),
        ]
    if section.get("largest_modules"):
        out += [
            "",
            "largest kernel modules (MB)",
            stats.table(
                ["module", "bytes", "alone zstd"],
                [
                    [f["path"].rsplit("/", 1)[-1], _mb(f["bytes"]), _mb(f["alone_zstd"])]
                    for f in section["largest_modules"]
                ],
            ),
        ]
    b = section.get("bin") or {}
    if b:
        out += [
            "",
            f"mosnet-init.bin ({_mb(b['bytes'])} MB) by ELF section (MB)",
            stats.table(
                ["section", "bytes", "alone zstd"],
                [[s["name"], _mb(s["bytes"]), _mb(s["alone_zstd"])] for s in b["sections"]],
            ),
        ]
        bc = b.get("bytecode")
        if bc:
            out += [
                "",
                f"embedded Python bytecode: {bc['modules']} modules, {_mb(bc['bytes'])} MB"
                f" ({_mb(bc['alone_zstd'])} MB zstd alone), by top-level package",
                stats.table(
                    ["package", "bytes", "alone zstd"],
                    [[p["package"], _mb(p["bytes"]), _mb(p["alone_zstd"])] for p in bc["packages"]],
                ),
            ]
    if section.get("dist_unmapped") is not None and "dist_mapped" in section:
        un = section["dist_unmapped"]
        out += [
            "",
            f"dist .so files no mosnet process mapped after a DHCP boot: {len(un)}, "
            f"{_mb(sum(u['bytes'] for u in un))} MB unpacked (mapped: "
            f"{len(section['dist_mapped'])} files)",
            "  " + " ".join(u["path"].rsplit("/", 1)[-1] for u in un),
        ]
    if section.get("cuts"):
        out += [
            "",
            f"candidate cuts on the default image: {BUILD} saving, measured (MB)",
            stats.table(
                ["cut", "unpacked", "saving zstd"],
                [[c["cut"], _mb(c["unpacked"]), _mb(c["saving_zstd"])] for c in section["cuts"]],
            ),
        ]
    if alts:
        gu: dict[str, Any] = section.get("guest_unpack", {})
        arow = []
        for m in alts.get("default", {}):
            u = (gu.get(m) or {}).get("unpack_ms")
            arow.append(
                [
                    m,
                    _mb(alts.get("default", {}).get(m)),
                    _mb(alts.get("ovs", {}).get(m)),
                    None if not u else f"{u['median']:.0f} [{u['p25']:.0f}-{u['p75']:.0f}]",
                ]
            )
        out += [
            "",
            "whole-image compressors (MB; guest unpack: QEMU TCG, ms)",
            stats.table(["compressor", "default", "with OVS", "guest unpack"], arow),
        ]
    return "\n".join(out)


def short_label(cut: str, width: int = 27) -> str:
    """A chart label for a cut: ``modules: xfs`` -> ``ko: xfs``, details dropped."""
    label = cut.split(" (", 1)[0]
    for long, short in (("modules: ", "ko: "), ("mosnet-init.bin: ", "bin: "),
                        ("all embedded bytecode", "all bytecode"),
                        ("every .so no mosnet process mapped", ".so not mapped"),
                        ("NIC drivers but virtio_net", "NICs but virtio_net"),
                        ("and its libraries", "+ its libraries")):  # fmt: skip
        label = label.replace(long, short)
    head, sep, rest = label.partition(": ")
    label = head + sep + rest.split(":", 1)[0]
    return label[:width]


def panels(section: dict[str, Any]) -> list[pngchart.Panel]:
    imgs: dict[str, Any] = section.get("images", {})
    refs: dict[str, Any] = section.get("references", {})
    targets: dict[str, int] = section.get("targets", TARGETS)
    bars = []
    for key, label in (("default", "mosnet default"), ("ovs", "mosnet with OVS")):
        if key in imgs:
            note = f"target {targets[key] / MB:g}"
            mb = imgs[key]["compressed"] / MB
            bars.append(pngchart.Bar(label, mb, color=pngchart.PALETTE[0], note=note))
    for key, r in refs.items():
        if "compressed" in r:
            bars.append(pngchart.Bar(key, r["compressed"] / MB, color=pngchart.PALETTE[1]))
    out = [
        pngchart.Panel(
            "Image size as shipped",
            bars,
            unit="MB",
            digits=2,
            target=targets["default"] / MB,
            target_label="default target",
        )
    ]
    parts = section.get("parts", {}).get("default", {})
    if parts and all(v.get("saving_zstd") is not None for v in parts.values()):
        pbars = [
            pngchart.Bar(p, v["saving_zstd"] / MB, color=pngchart.PALETTE[2],
                         note=f"alone {v['alone_zstd'] / MB:.2f}")
            for p, v in sorted(parts.items(), key=lambda kv: -kv[1]["saving_zstd"])
        ]  # fmt: skip
        out.append(pngchart.Panel("Default image: saving if a part is cut", pbars, "MB", digits=2))
    cuts = section.get("cuts", [])[:10]
    if cuts:
        cbars = [
            pngchart.Bar(short_label(c["cut"]), c["saving_zstd"] / MB, color=pngchart.PALETTE[3])
            for c in cuts
        ]
        out.append(pngchart.Panel("Largest candidate cuts: saving", cbars, unit="MB", digits=2))
    return out


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--runs", type=int, default=3, help="guest unpack boots per compressor")
    p.add_argument("--no-cuts", action="store_true", help="no candidate cuts or compressors")
    p.add_argument("--no-guest", action="store_true", help="no QEMU unpack timing")
    p.add_argument("--no-dracut", action="store_true", help="leave dracut's images out")
    p.add_argument("--json", action="store_true", help="print the JSON section too")
    args = p.parse_args(argv)
    section = run(
        args.runs, cuts=not args.no_cuts, guest=not args.no_guest, dracut=not args.no_dracut
    )
    print(report(section))
    if args.json:
        print(json.dumps(section, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
