"""The netboot-root add-on: NFS client modules and zstd, on top of the base.

``mosroot=…squashfs`` roots need nothing beyond the base image, but an NFS
root needs the kernel's NFS client (nfs, nfsv3, nfsv4 with sunrpc, lockd,
fscache…: 5.7 MB of modules) and ``mosroot=…tar.zst`` needs ``zstd`` and its
libraries. Together they are 1.8 MB compressed, so they travel in their own
cpio, ``mosnet-netroot.img``, the way OVS does (addon.py); ``cat base addon``
is the image with netboot roots.

The modules live in their own tree, ``/usr/lib/mosnet/netroot/<kver>``, with
a depmod index of the whole closure (so dependencies on the base's modules
stay in modules.dep), but only the modules the base lacks are shipped. The
boot loads the base tree first, then this one (ModuleIndex.for_image);
the first tree naming a module wins, so the base's copies are the ones used.
"""

from __future__ import annotations

import argparse
import io
import json
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from init.modindex import NETROOT_MODULES as MODULE_ROOT
from initramfs.addon import AddonError, base_sonames, entries, write_atomic
from initramfs.build import COMPRESSIONS, ZSTD_LEVEL, compress, default_epoch
from initramfs.cpio import write_newc
from initramfs.elf import resolve
from initramfs.kmod import module_name, stage_modules
from initramfs.listing import Listed, list_image
from initramfs.tree import Tree

NETROOT_MODULES = ("nfs", "nfsv3", "nfsv4")
ZSTD = Path("/usr/bin/zstd")
MODULE_DIR = PurePosixPath(MODULE_ROOT)  # + /<kver>: where the boot looks (init/modindex.py)
_INDEX_PREFIX = "modules."


def base_modules(base: Mapping[PurePosixPath, Listed], kver: str) -> frozenset[str]:
    """Names of the modules the base image ships for ``kver``."""
    top = PurePosixPath("/lib/modules") / kver
    return frozenset(
        module_name(p.name) for p in base if p.name.endswith(".ko") and p.is_relative_to(top)
    )


def add_modules(tree: Tree, moddir: Path, kver: str, in_base: frozenset[str]) -> list[str]:
    """The staged index plus every module the base lacks; the names shipped."""
    dest = MODULE_DIR / kver
    shipped: list[str] = []
    for path in sorted(moddir.rglob("*")):
        if not path.is_file():
            continue
        rel = path.relative_to(moddir).as_posix()
        if path.name.startswith(_INDEX_PREFIX) and path.parent == moddir:
            tree.add_file(dest / rel, path, mode=0o644, part="index")
        elif path.name.endswith(".ko") and module_name(path.name) not in in_base:
            tree.add_file(dest / rel, path, mode=0o644, part="modules")
            shipped.append(module_name(path.name))
    return sorted(shipped)


def add_program(
    tree: Tree, program: Path, base: Mapping[PurePosixPath, Listed], sysroot: Path
) -> None:
    """``program`` and the libraries the base lacks (the loader must be the base's)."""
    closure = resolve([program], sysroot, provided=base_sonames(base))
    for f in closure.files:
        if f.image_path in base:
            if base[f.image_path].size != f.source.stat().st_size:
                raise AddonError(f"{f.image_path}: the base has a different file there")
        elif f.source == program:
            tree.add_file(f.image_path, f.source, mode=0o755, part="zstd")
        else:
            tree.add_file(f.image_path, f.source, part="libraries")
    for link in closure.links:
        if link.image_path not in base:
            tree.add_symlink(link.image_path, link.target, part="libraries")


@dataclass(frozen=True)
class NetrootConfig:
    base: Path  # the built base image
    kernel_root: Path  # holds lib/modules/<kver>
    kver: str
    out: Path
    compress: str = "zstd"
    zstd_level: int = ZSTD_LEVEL
    epoch: int = 0
    report: Path | None = None
    combined: Path | None = None  # base + add-on
    modules: tuple[str, ...] = NETROOT_MODULES
    program: Path = ZSTD
    sysroot: Path = Path("/")
    run_depmod: bool = True


@dataclass(frozen=True)
class NetrootReport:
    parts: dict[str, int]
    modules: tuple[str, ...]  # shipped here
    from_base: tuple[str, ...]  # closure members the base already has
    files: tuple[str, ...]
    cpio_size: int
    compressed_size: int
    base_size: int
    compress: str
    epoch: int
    seconds: float = field(default=0.0, compare=False)

    def to_json(self) -> str:
        data = {k: list(v) if isinstance(v, tuple) else v for k, v in vars(self).items()}
        data["combined_size"] = self.base_size + self.compressed_size
        data["seconds"] = round(self.seconds, 2)
        return json.dumps(data, indent=2, sort_keys=True) + "\n"


@dataclass(frozen=True)
class Packed:
    """The add-on archive (uncompressed) and what went into it."""

    archive: bytes
    files: tuple[str, ...]
    parts: dict[str, int]
    modules: tuple[str, ...]  # shipped here
    from_base: tuple[str, ...]  # closure members the base already has


def pack(cfg: NetrootConfig, base: Mapping[PurePosixPath, Listed]) -> Packed:
    """Stage the modules, add zstd, and archive what the base lacks."""
    in_base = base_modules(base, cfg.kver)
    if not in_base:
        raise AddonError(f"{cfg.base}: no modules for kernel {cfg.kver} in the base image")
    tree = Tree()
    with tempfile.TemporaryDirectory(prefix="mosnet-netroot-") as tmp:
        staged = stage_modules(cfg.kernel_root, cfg.kver, cfg.modules, Path(tmp), cfg.run_depmod)
        if staged.closure.missing:
            missing = ", ".join(staged.closure.missing)
            raise AddonError(f"kernel {cfg.kver} has no module {missing}")
        shipped = add_modules(tree, staged.moddir, cfg.kver, in_base)
        add_program(tree, cfg.program, base, cfg.sysroot)
        members = entries(tree, base)
        buf = io.BytesIO()
        write_newc(buf, members, cfg.epoch)  # reads the staged files: before they go
        parts = tree.sizes_by_part()
    return Packed(
        archive=buf.getvalue(),
        files=tuple(sorted("/" + m.name for m in members)),
        parts=parts,
        modules=tuple(shipped),
        from_base=tuple(sorted(set(staged.closure.names) & in_base)),
    )


def build_netroot(cfg: NetrootConfig) -> NetrootReport:
    """Write the add-on (and the combined image and report if asked)."""
    start = time.monotonic()
    base_bytes = cfg.base.read_bytes()
    packed = pack(cfg, list_image(cfg.base))
    image = compress(packed.archive, cfg.compress, cfg.zstd_level)
    write_atomic(cfg.out, image)
    if cfg.combined is not None:
        write_atomic(cfg.combined, base_bytes + image)
    report = NetrootReport(
        parts=packed.parts,
        modules=packed.modules,
        from_base=packed.from_base,
        files=packed.files,
        cpio_size=len(packed.archive),
        compressed_size=len(image),
        base_size=len(base_bytes),
        compress=cfg.compress,
        epoch=cfg.epoch,
        seconds=time.monotonic() - start,
    )
    if cfg.report is not None:
        write_atomic(cfg.report, report.to_json().encode())
    return report


def summary(report: NetrootReport, out: Path) -> str:
    lines = [
        f"{out}: {report.compressed_size} bytes ({report.compress}), "
        f"cpio {report.cpio_size} bytes, {len(report.modules)} modules, {report.seconds:.1f}s; "
        f"with the base {report.base_size + report.compressed_size} bytes"
    ]
    lines += [f"  {part:<10} {size:>12}" for part, size in report.parts.items()]
    return "\n".join(lines)


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m initramfs netroot")
    ap.add_argument("--base", type=Path, required=True, help="the built base image")
    ap.add_argument("--kernel-root", type=Path, required=True, help="holds lib/modules/<kver>")
    ap.add_argument("--kver", required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--combined", type=Path, help="also write base + add-on here")
    ap.add_argument("--compress", choices=COMPRESSIONS, default="zstd")
    ap.add_argument(
        "--zstd-level", type=int, default=ZSTD_LEVEL, choices=range(1, 23), metavar="1-22"
    )
    ap.add_argument("--report", type=Path)
    ap.add_argument("--epoch", type=int, help="mtime of every entry (default SOURCE_DATE_EPOCH)")
    return ap


def config_from_args(argv: Sequence[str]) -> NetrootConfig:
    args = parser().parse_args(argv)
    return NetrootConfig(
        base=args.base,
        kernel_root=args.kernel_root,
        kver=args.kver,
        out=args.out,
        compress=args.compress,
        zstd_level=args.zstd_level,
        epoch=args.epoch if args.epoch is not None else default_epoch(),
        report=args.report,
        combined=args.combined,
    )
