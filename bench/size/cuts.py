"""Image size, parts and cuts: what each part weighs, and what leaving things out saves.

Savings are measured, not estimated: the whole cpio without the part (or the
candidate cut), compressed again, against the whole. Compression shares
context across files, so a part alone costs more than it saves.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from pathlib import PurePosixPath
from typing import Any

from bench.size.bytecode import bytecode_jobs
from bench.size.compress import BUILD, Compressor
from bench.size.newc import Image, Member, content_bytes, records, walk_archives
from initramfs.addon import DAEMONS, SCHEMA, TOOLS
from initramfs.kmod import module_name, parse_modules_dep
from initramfs.netrootaddon import MODULE_DIR

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


def netroot_part_of(name: str) -> str:
    """The part of a netroot add-on member, as out/netroot-report.json counts them."""
    path = PurePosixPath("/" + name.lstrip("/"))
    if path == PurePosixPath("/usr/bin/zstd"):
        return "zstd"
    if path.is_relative_to(MODULE_DIR):
        return "modules" if path.name.endswith(".ko") else "index"
    return "libraries"


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


def parts_section(
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


def largest(img: Image, comp: Compressor, n: int, pick: Callable[[Member], bool]) -> list[Any]:
    """The ``n`` largest files ``pick`` accepts, each with its size compressed alone."""
    buf = img.plain
    members = sorted((m for m in img.members() if m.is_file and pick(m)), key=lambda m: -m.size)
    top = members[:n]
    got = comp.many({m.name: (BUILD, buf[m.data : m.data + m.size]) for m in top})
    return [
        {"path": "/" + m.name, "bytes": m.size, "part": part_of(m.name), "alone_zstd": got[m.name]}
        for m in top
    ]


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
    cuts = _member_cuts(buf, members, unmapped)
    jobs = {"whole": (BUILD, whole)}
    for label, gone_names in cuts.items():
        jobs[label] = (BUILD, records(buf, [m for m in members if m.name not in gone_names]))
    bc_jobs, bc_raw = bytecode_jobs(buf, members)
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


def _member_cuts(
    buf: bytes, members: Sequence[Member], unmapped: Sequence[dict[str, Any]]
) -> dict[str, set[str]]:
    """Candidate cuts of whole members: label -> the member names it leaves out."""
    by_base = {m.name.rsplit("/", 1)[-1]: m for m in members if m.is_file}
    cuts: dict[str, set[str]] = {}
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
    return cuts | _module_cuts(buf, members)


def _module_cuts(buf: bytes, members: Sequence[Member]) -> dict[str, set[str]]:
    """The largest modules alone and MODULE_GROUPS, each with the deps only it needs."""
    deps = _modules_dep(buf, members)
    mods = _module_members(members)
    largest_mods = sorted(mods, key=lambda n: -mods[n].size)[:TOP_MODULES_CUT]
    groups = {n: (n,) for n in largest_mods} | MODULE_GROUPS
    cuts: dict[str, set[str]] = {}
    for label, names in groups.items():
        if not any(n in mods for n in names):
            continue
        gone = exclusive_modules(deps, mods, names)
        extra = len(gone - set(names))
        text = label + (f" (+{extra} deps only they need)" if extra else "")
        cuts[f"modules: {text}"] = {mods[n].name for n in gone}
    return cuts


def _modules_dep(buf: bytes, members: Sequence[Member]) -> dict[str, tuple[str, ...]]:
    dep = next((m for m in members if m.name.endswith("/modules.dep")), None)
    if dep is None:
        return {}
    _, deps = parse_modules_dep(buf[dep.data : dep.data + dep.size].decode())
    return deps


def _module_members(members: Sequence[Member]) -> dict[str, Member]:
    return {module_name(m.name): m for m in members if m.is_file and m.name.endswith(".ko")}
