"""The Open vSwitch add-on: a second cpio the kernel unpacks on top of the base.

The base image stays OVS-free; ``mosnet-ovs.img`` carries the OVS programs
from the extracted Debian packages (initramfs/fetch-ovs.sh) with the schema
and every library the base does not already hold, so ``cat base addon`` is a
complete image with OVS. Programs sit where mosnet/ovs/vswitch.py looks for them.

Libraries are looked up in the extracted tree first and on the build host
only for what the tree lacks (glibc); nothing under the host's OVS paths is
ever read. Sonames the base ships in a loader directory are not searched at
all, and no path the base already has (ld.so, /lib64) is written again.

``RUNTIME_MANIFEST`` lists the daemons, the loader and every library they
load (glibc included, wherever in base or add-on it lies): PID 1 copies
those into /run (``mosnet.ovs.ovsrt``) so the daemons can be restarted after
switch_root has emptied the initramfs.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import time
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from initramfs.build import COMPRESSIONS, ZSTD_LEVEL, compress, default_epoch
from initramfs.cpio import CpioEntry, write_newc
from initramfs.elf import (
    DEFAULT_DIRS,
    Closure,
    LibFile,
    MissingLibraryError,
    _compatible,
    _ElfInfo,
    _Place,
    _Resolver,
    read_elf,
)
from initramfs.listing import Listed, list_image
from initramfs.tree import Dir, Tree, to_cpio_entry
from mosnet.base import atomicfile

DAEMONS = ("/usr/sbin/ovsdb-server", "/usr/lib/openvswitch-switch/ovs-vswitchd")
TOOL_NAMES = ("ovsdb-tool", "ovs-vsctl", "ovs-ofctl", "ovs-appctl", "ovs-dpctl")
TOOLS = tuple(f"/usr/bin/{name}" for name in TOOL_NAMES)
ROOT_TOOLS = ("/usr/bin/ovs-vsctl", "/usr/bin/ovs-ofctl", "/usr/bin/ovs-appctl")
SCHEMA = "/usr/share/openvswitch/vswitch.ovsschema"
RUNTIME_MANIFEST = "/usr/lib/mosnet/ovs-runtime.txt"  # mosnet.ovs.ovsrt.MANIFEST
# The host may have OVS installed (the test deps do): never take it from there.
HOST_FORBIDDEN = ("/usr/sbin/ovs", "/usr/bin/ovs", "/usr/lib/openvswitch", "/usr/share/openvswitch")


class AddonError(Exception):
    """The add-on cannot be built from the given tree and base image."""


class _Layered(_Resolver):
    """The extracted packages first, then the host, file by file."""

    def __init__(self, sysroot: Path, fallback: Path, provided: Collection[str]) -> None:
        super().__init__(sysroot, (), provided)
        self.fallback = fallback

    def _host(self, image: PurePosixPath) -> _Place:
        if str(image).startswith(HOST_FORBIDDEN):
            raise AddonError(f"{image}: not in the package tree (never read from the host)")
        return _Place(self.fallback / image.relative_to("/"), image)

    def in_sysroot(self, image_path: str) -> _Place:
        place = super().in_sysroot(image_path)
        if os.path.lexists(place.host) or self.fallback == self.sysroot:
            return place
        return self._host(place.image)

    def find(self, name: str, user: _Place, info: _ElfInfo) -> _Place:
        try:
            return super().find(name, user, info)
        except MissingLibraryError:
            for d in DEFAULT_DIRS:
                cand = self._host(PurePosixPath(d) / name)
                if cand.host.is_file() and _compatible(cand.host, info):
                    return cand
            raise


def resolve_layered(
    root: Path, images: Sequence[str], provided: Collection[str] = (), host: Path = Path("/")
) -> Closure:
    """Closure of the programs ``images`` (paths inside ``root``).

    Libraries come from ``root``, else from ``host``; ``provided`` sonames are
    skipped. The programs keep their path; every returned path is absolute.
    """
    res = _Layered(root, host, provided)
    for image in images:
        place = _Place(root / image.lstrip("/"), PurePosixPath(image))
        info = read_elf(place.host) if place.host.is_file() else None
        if info is None:
            raise AddonError(f"{place.host}: missing or not an ELF program")
        res.files[place.image] = LibFile(place.image, place.host)
        res.todo.append((place, info))
    return res.run()


def install(closure: Closure, dest: Path) -> None:
    """Copy a closure into a directory tree (for a root file system)."""
    for f in closure.files:
        dst = dest / str(f.image_path).lstrip("/")
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(f.source, dst)
    for link in closure.links:
        dst = dest / str(link.image_path).lstrip("/")
        dst.parent.mkdir(parents=True, exist_ok=True)
        if not dst.is_symlink() and not dst.exists():
            dst.symlink_to(link.target)


def base_sonames(base: Mapping[PurePosixPath, Listed]) -> frozenset[str]:
    """Names the loader finds in the base image (files or links in its dirs)."""
    dirs = {PurePosixPath(d) for d in DEFAULT_DIRS}
    return frozenset(p.name for p, m in base.items() if p.parent in dirs and not m.is_dir)


@dataclass
class Contents:
    """The add-on tree and how it came about."""

    tree: Tree = field(default_factory=Tree)
    skipped: list[str] = field(default_factory=list)  # already in the base
    host_files: list[str] = field(default_factory=list)  # taken from the build host
    from_base: list[str] = field(default_factory=list)  # sonames the base provides


def _runtime_needs(root: Path, base: Collection[str], host: Path) -> tuple[set[str], str | None]:
    """Sonames the daemons load, and their interpreter.

    Libraries of the add-on are read from the tree; those the base provides
    (``base``: glibc and friends, copied from the build host) from the host
    when it has them, so their own needs count too.
    """
    closure = resolve_layered(root, DAEMONS, base, host)
    needed: set[str] = set()
    interp = None
    for f in closure.files:
        info = read_elf(f.source)
        if info is not None:
            needed.update(info.needed)
            interp = interp or info.interp
    todo = sorted(needed & set(base))
    while todo:
        name = todo.pop()
        found = [host / d.lstrip("/") / name for d in DEFAULT_DIRS]
        info = next((read_elf(p) for p in found if p.is_file()), None)
        for dep in info.needed if info is not None else ():
            if dep not in needed:
                needed.add(dep)
                todo.append(dep)
    return needed, interp


def runtime_manifest(
    root: Path,
    base: Collection[PurePosixPath],
    tree: Collection[PurePosixPath],
    host: Path = Path("/"),
) -> str:
    """``mosnet.ovs.ovsrt``'s manifest: the daemons, their loader and their libraries.

    ``base`` and ``tree`` are the paths of the base image and of the add-on.
    Each library is named by a path of either that ld.so would find it under
    (its soname, in a loader directory), so the copy (symlinks followed) is
    what the loader looks for.
    """
    dirs = {PurePosixPath(d) for d in DEFAULT_DIRS}
    provided = {p.name for p in base if p.parent in dirs}
    needed, interp = _runtime_needs(root, provided, host)
    have = {*base, *tree}
    if interp is None or PurePosixPath(interp) not in have:
        raise AddonError(f"{DAEMONS[0]}: program interpreter {interp} not in the image")
    needed.discard(PurePosixPath(interp).name)  # the loader is copied as the loader
    named: dict[str, PurePosixPath] = {}
    for image in sorted(have):
        if image.name in needed and image.parent in dirs:
            named.setdefault(image.name, image)
    if needed - set(named):
        raise AddonError(f"OVS runtime libraries not in the image: {sorted(needed - set(named))}")
    lines = ["# mosnet.ovs.ovsrt copies these to /run/mosnet/ovs before the OVS daemons start",
             f"loader {interp}", *(f"program {d}" for d in DAEMONS),
             *(f"library {named[n]}" for n in sorted(named))]  # fmt: skip
    return "\n".join(lines) + "\n"


def _part(image: PurePosixPath) -> str:
    return "daemons" if str(image) in DAEMONS else "tools" if str(image) in TOOLS else "libraries"


def collect(root: Path, base: Mapping[PurePosixPath, Listed], host: Path = Path("/")) -> Contents:
    """Programs, libraries and schema that are not in ``base`` yet."""
    provided = base_sonames(base)
    closure = resolve_layered(root, (*DAEMONS, *TOOLS), provided, host)
    out = Contents()
    needed: set[str] = set()
    for f in closure.files:
        if f.image_path in base:
            out.skipped.append(str(f.image_path))
            continue
        out.tree.add_file(f.image_path, f.source, part=_part(f.image_path))
        if not f.source.is_relative_to(root):
            out.host_files.append(str(f.source))
        info = read_elf(f.source)
        needed.update(info.needed if info is not None else ())
    for link in closure.links:
        if link.image_path in base:
            out.skipped.append(str(link.image_path))
        else:
            out.tree.add_symlink(link.image_path, link.target, part="libraries")
    out.tree.add_file(SCHEMA, root / SCHEMA.lstrip("/"), mode=0o644, part="schema")
    manifest = runtime_manifest(root, set(base), {p for p, _ in out.tree.items()}, host)
    out.tree.add_bytes(RUNTIME_MANIFEST, manifest.encode(), part="runtime")
    out.from_base = sorted(needed & provided)
    return out


def entries(tree: Tree, base: Mapping[PurePosixPath, Listed]) -> list[CpioEntry]:
    """Archive members of ``tree`` minus the directories the base already has."""
    found: list[CpioEntry] = []
    for path, entry in tree.items():
        old = base.get(path)
        if old is None:
            found.append(to_cpio_entry(path, entry))
        elif not (isinstance(entry, Dir) and old.is_dir):
            raise AddonError(f"{path}: the base image already has it")
    return found


@dataclass(frozen=True)
class AddonConfig:
    root: Path  # the extracted packages (fetch-ovs.sh)
    base: Path  # the built base image
    out: Path
    compress: str = "zstd"
    zstd_level: int = ZSTD_LEVEL
    epoch: int = 0
    report: Path | None = None
    combined: Path | None = None  # base + add-on, the image with OVS
    packages: Path | None = None  # "name version" lines (fetch-ovs.sh)
    host: Path = Path("/")


@dataclass(frozen=True)
class AddonReport:
    parts: dict[str, int]
    files: tuple[str, ...]
    cpio_size: int
    compressed_size: int
    base_size: int
    compress: str
    epoch: int
    skipped: tuple[str, ...] = ()
    host_files: tuple[str, ...] = ()
    from_base: tuple[str, ...] = ()
    packages: tuple[str, ...] = ()
    seconds: float = field(default=0.0, compare=False)

    def to_json(self) -> str:
        data = {k: list(v) if isinstance(v, tuple) else v for k, v in vars(self).items()}
        data["combined_size"] = self.base_size + self.compressed_size
        data["seconds"] = round(self.seconds, 2)
        return json.dumps(data, indent=2, sort_keys=True) + "\n"


def write_atomic(path: Path, data: bytes) -> None:
    """Never leave a half-written image behind (a full disk keeps the old one)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    atomicfile.write_bytes(str(path), data)


def _packages(path: Path | None) -> tuple[str, ...]:
    if path is None:
        return ()
    return tuple(line.strip() for line in path.read_text().splitlines() if line.strip())


def build_addon(cfg: AddonConfig) -> AddonReport:
    """Write the add-on (and the combined image and report if asked)."""
    start = time.monotonic()
    base = list_image(cfg.base)
    got = collect(cfg.root, base, cfg.host)
    members = entries(got.tree, base)
    buf = io.BytesIO()
    cpio_size = write_newc(buf, members, cfg.epoch)
    image = compress(buf.getvalue(), cfg.compress, cfg.zstd_level)
    write_atomic(cfg.out, image)
    base_bytes = cfg.base.read_bytes()
    if cfg.combined is not None:
        write_atomic(cfg.combined, base_bytes + image)
    report = AddonReport(
        parts=got.tree.sizes_by_part(),
        files=tuple(sorted("/" + m.name for m in members)),
        cpio_size=cpio_size,
        compressed_size=len(image),
        base_size=len(base_bytes),
        compress=cfg.compress,
        epoch=cfg.epoch,
        skipped=tuple(got.skipped),
        host_files=tuple(got.host_files),
        from_base=tuple(got.from_base),
        packages=_packages(cfg.packages),
        seconds=time.monotonic() - start,
    )
    if cfg.report is not None:
        cfg.report.parent.mkdir(parents=True, exist_ok=True)
        cfg.report.write_text(report.to_json())
    return report


def summary(report: AddonReport, out: Path) -> str:
    lines = [
        f"{out}: {report.compressed_size} bytes ({report.compress}), "
        f"cpio {report.cpio_size} bytes, {report.seconds:.1f}s; "
        f"with the base {report.base_size + report.compressed_size} bytes"
    ]
    lines += [f"  {part:<10} {size:>12}" for part, size in report.parts.items()]
    if report.host_files:
        lines.append(f"  from the build host: {' '.join(report.host_files)}")
    return "\n".join(lines)


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m initramfs ovs")
    ap.add_argument("--root", type=Path, required=True, help="extracted packages (fetch-ovs.sh)")
    ap.add_argument("--base", type=Path, required=True, help="the built base image")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--combined", type=Path, help="also write base + add-on here")
    ap.add_argument("--compress", choices=COMPRESSIONS, default="zstd")
    ap.add_argument(
        "--zstd-level", type=int, default=ZSTD_LEVEL, choices=range(1, 23), metavar="1-22"
    )
    ap.add_argument("--report", type=Path)
    ap.add_argument("--packages", type=Path, help="package list for the report")
    ap.add_argument("--epoch", type=int, help="mtime of every entry (default SOURCE_DATE_EPOCH)")
    return ap


def config_from_args(argv: Sequence[str]) -> AddonConfig:
    args = parser().parse_args(argv)
    return AddonConfig(
        root=args.root,
        base=args.base,
        out=args.out,
        compress=args.compress,
        zstd_level=args.zstd_level,
        epoch=args.epoch if args.epoch is not None else default_epoch(),
        report=args.report,
        combined=args.combined,
        packages=args.packages,
    )
