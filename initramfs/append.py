"""The append image for chain mode: mosnet on top of a distro initramfs.

``cat distro.img mosnet-append.img`` must not clobber one file of the distro
image, whose /init, busybox, libc and /lib/modules belong to another release
and another builder. So this cpio holds only ``/mosnet-init`` (the static
pre-init) and everything else under ``/usr/lib/mosnet``:

* the Nuitka dist, as in the base image;
* ``lib/``: the loader and every library the dist and nft need, from the
  build host. The programs' PT_INTERP and DT_RPATH are rewritten with
  patchelf to point there, so nothing is looked up in the distro's /lib and
  no environment variable leaks into the distro's programs;
* ``bin/nft`` (mosnet/nft/firewall.py looks there last);
* ``modules/<kver>``: only the network-stack modules initramfs-tools never
  packs (bridge, nftables, veth, tun) with their own depmod index. NIC and
  disk drivers come from the distro's /lib/modules (MODULES=most, Debian's
  default, carries kernel/drivers/net); init/boot.py reads both trees.

No busybox: the distro image has /bin/sh and /sbin/modprobe.
"""

from __future__ import annotations

import argparse
import io
import json
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from initramfs.build import COMPRESSIONS, DIST_UNUSED, ZSTD_LEVEL, compress, default_epoch
from initramfs.elf import Closure, is_elf, read_elf, resolve
from initramfs.kmod import stage_modules
from initramfs.tree import Tree, write_cpio

PREFIX = PurePosixPath("/usr/lib/mosnet")
LIB_DIR = PREFIX / "lib"
BIN_DIR = PREFIX / "bin"
MODULES_DIR = PREFIX / "modules"
PREINIT = PurePosixPath("/mosnet-init")
MAIN_BINARY = "mosnet-init.bin"
# Under kernel/net or needed by mosnet whatever MODULES= says; the
# closure adds llc, stp, nfnetlink, nf_conntrack and friends.
APPEND_MODULES: tuple[str, ...] = (
    "bridge", "br_netfilter", "veth", "tun",
    "nf_tables", "nft_ct", "nft_chain_nat", "nft_nat", "nft_masq", "nft_redir",
    "nft_reject_inet", "nft_reject_bridge", "nft_limit", "nft_log", "nft_counter",
    "nft_fib_inet", "nft_meta_bridge", "nf_conntrack_bridge",
)  # fmt: skip
# Paths the append image may write; anything else could clobber the distro's.
ALLOWED = (PREINIT, PREFIX)


class AppendError(Exception):
    """The append image cannot be built, or would touch a distro path."""


@dataclass(frozen=True)
class AppendConfig:
    out: Path
    kernel_root: Path
    kver: str
    dist: Path
    preinit: Path
    extra_elf: tuple[Path, ...] = ()
    compress: str = "zstd"
    zstd_level: int = ZSTD_LEVEL
    epoch: int = 0
    modules: tuple[str, ...] = APPEND_MODULES
    sysroot: Path = Path("/")
    run_depmod: bool = True
    report: Path | None = None
    patchelf: str = "patchelf"


@dataclass(frozen=True)
class AppendReport:
    parts: dict[str, int]
    cpio_size: int
    compressed_size: int
    compress: str
    modules: tuple[str, ...]
    libraries: tuple[str, ...]
    seconds: float = field(default=0.0, compare=False)

    def to_json(self) -> str:
        data = {k: list(v) if isinstance(v, tuple) else v for k, v in vars(self).items()}
        data["seconds"] = round(self.seconds, 2)
        return json.dumps(data, indent=2, sort_keys=True) + "\n"


def private_libraries(
    closure: Closure, shipped: Iterable[str], sysroot: Path = Path("/")
) -> dict[str, Path]:
    """Library name -> host file, for every name the loader will look up.

    The private lib dir is flat and holds only what the loader asks for by
    name: the DT_NEEDED sonames and the interpreter, each a copy of the
    file its name leads to on the host (not also under its versioned name).
    Names the dist ships itself are left out.
    """
    wanted: set[str] = set()
    for f in closure.files:
        info = read_elf(f.source)
        if info is not None:
            wanted.update(info.needed)
            wanted.update([PurePosixPath(info.interp).name] if info.interp else [])
    wanted -= set(shipped)
    found: dict[str, Path] = {}
    for f in closure.files:
        found.setdefault(f.image_path.name, f.source)
    for link in closure.links:
        found[link.image_path.name] = (sysroot / str(link.image_path).lstrip("/")).resolve()
    return {name: found[name] for name in sorted(wanted) if name in found}


def _patch(patchelf: str, path: Path, interp: bool, keep: Sequence[str]) -> None:
    """DT_RPATH: the file's own entries ($ORIGIN...), then the private dirs."""
    rpath = ":".join(dict.fromkeys([*keep, str(LIB_DIR), str(PREFIX)]))
    argv = [patchelf, "--force-rpath", "--set-rpath", rpath]
    if interp:
        argv += ["--set-interpreter", str(LIB_DIR / "ld-linux-x86-64.so.2")]
    try:
        subprocess.run([*argv, str(path)], check=True, capture_output=True)
    except (OSError, subprocess.CalledProcessError) as exc:
        raise AppendError(f"patchelf {path}: {exc}") from exc


def stage_programs(cfg: AppendConfig, staging: Path) -> tuple[Path, dict[str, Path]]:
    """Copy dist and extra programs into ``staging`` and patch them; return libs."""
    dist = staging / "dist"
    unused = shutil.ignore_patterns(*DIST_UNUSED)
    shutil.copytree(cfg.dist, dist, symlinks=True, ignore=unused)
    if not (dist / MAIN_BINARY).is_file():
        raise AppendError(f"{cfg.dist}: no {MAIN_BINARY} in the dist directory")
    bins = staging / "bin"
    bins.mkdir()
    extras = []
    for src in cfg.extra_elf:
        shutil.copy2(src, bins / src.name)
        extras.append(bins / src.name)
    elves = sorted(p for p in dist.rglob("*") if is_elf(p)) + extras
    shipped = sorted({p.name for p in dist.rglob("*")})
    placed = {p: PREFIX / p.relative_to(dist).as_posix() for p in elves if p.is_relative_to(dist)}
    placed.update({p: BIN_DIR / p.name for p in extras})
    closure = resolve(elves, cfg.sysroot, placed=placed, provided=shipped)
    for path in elves:
        info = read_elf(path)
        if info is not None:
            own = info.runpath or info.rpath
            _patch(cfg.patchelf, path, info.interp is not None, own)
    return dist, private_libraries(closure, shipped, cfg.sysroot)


def check_paths(tree: Tree) -> None:
    """Refuse any entry outside /mosnet-init and /usr/lib/mosnet (and their parents)."""
    parents = {p for a in ALLOWED for p in a.parents}
    for path, _entry in tree.items():
        if path in parents or any(path == a or a in path.parents for a in ALLOWED):
            continue
        raise AppendError(f"{path}: outside mosnet's private paths, would clobber the distro")


def assemble(cfg: AppendConfig, staging: Path) -> tuple[Tree, tuple[str, ...], tuple[str, ...]]:
    tree = Tree()
    tree.add_file(PREINIT, cfg.preinit, mode=0o755, part="preinit")
    dist, libs = stage_programs(cfg, staging)
    tree.add_tree(PREFIX, dist, part="dist")
    for src in cfg.extra_elf:
        tree.add_file(BIN_DIR / src.name, staging / "bin" / src.name, part="programs")
    for name, host in sorted(libs.items()):
        tree.add_file(LIB_DIR / name, host, part="libraries")
    staged = stage_modules(cfg.kernel_root, cfg.kver, cfg.modules, staging, cfg.run_depmod)
    tree.add_tree(MODULES_DIR / cfg.kver, staged.moddir, part="modules")
    check_paths(tree)
    return tree, staged.closure.names, tuple(sorted(libs))


def build_append(cfg: AppendConfig) -> AppendReport:
    start = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="mosnet-append-") as tmp:
        tree, modules, libs = assemble(cfg, Path(tmp))
        buf = io.BytesIO()
        cpio_size = write_cpio(tree, buf, cfg.epoch)
        parts = tree.sizes_by_part()
    image = compress(buf.getvalue(), cfg.compress, cfg.zstd_level)
    cfg.out.parent.mkdir(parents=True, exist_ok=True)
    tmp_out = cfg.out.with_name(cfg.out.name + ".tmp")
    tmp_out.write_bytes(image)
    tmp_out.replace(cfg.out)
    report = AppendReport(
        parts, cpio_size, len(image), cfg.compress, modules, libs, time.monotonic() - start
    )
    if cfg.report is not None:
        cfg.report.parent.mkdir(parents=True, exist_ok=True)
        cfg.report.write_text(report.to_json())
    return report


def summary(report: AppendReport, out: Path) -> str:
    lines = [
        f"{out}: {report.compressed_size} bytes ({report.compress}), "
        f"cpio {report.cpio_size} bytes, {report.seconds:.1f}s"
    ]
    lines += [f"  {part:<10} {size:>12}" for part, size in report.parts.items()]
    lines.append(f"  modules: {len(report.modules)}, private libraries: {len(report.libraries)}")
    return "\n".join(lines)


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m initramfs append")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--compress", choices=COMPRESSIONS, default="zstd")
    ap.add_argument("--kernel-root", type=Path, required=True)
    ap.add_argument("--kver", required=True)
    ap.add_argument("--dist", type=Path, required=True, help="Nuitka .dist directory")
    ap.add_argument("--preinit", type=Path, required=True)
    ap.add_argument("--extra-elf", type=Path, action="append", default=[])
    ap.add_argument(
        "--zstd-level", type=int, default=ZSTD_LEVEL, choices=range(1, 23), metavar="1-22"
    )
    ap.add_argument("--report", type=Path)
    ap.add_argument("--epoch", type=int, help="mtime of every entry (default SOURCE_DATE_EPOCH)")
    return ap


def config_from_args(argv: Sequence[str]) -> AppendConfig:
    args = parser().parse_args(argv)
    return AppendConfig(
        out=args.out,
        kernel_root=args.kernel_root,
        kver=args.kver,
        dist=args.dist,
        preinit=args.preinit,
        extra_elf=tuple(args.extra_elf),
        compress=args.compress,
        zstd_level=args.zstd_level,
        epoch=args.epoch if args.epoch is not None else default_epoch(),
        report=args.report,
    )
