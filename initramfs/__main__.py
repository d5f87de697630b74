"""``python -m initramfs build|ovs ...``: the only place that exits the process.

``build`` makes the base image, ``ovs`` the Open vSwitch add-on (addon.py),
``cmdline LINE`` checks a line for ``build --cmdline`` and prints it as baked.
``append`` the chain-mode image for a distro initramfs (append.py),
``netroot`` the netboot-root add-on: NFS modules and zstd (netrootaddon.py).
``kernel [SOURCE]`` prepares the kernel to build for and prints its release
(kernelsrc.py; SOURCE as ``build.sh --kernel``).
"""

from __future__ import annotations

import sys
from pathlib import Path

from initramfs import addon, append, baked, kernelsrc, netrootaddon
from initramfs.build import BuildError, build, config_from_args, summary
from initramfs.cpio import CpioError
from initramfs.elf import ElfError
from initramfs.kmod import KmodError
from initramfs.listing import ListingError
from initramfs.tree import TreeError

CACHE = Path(__file__).resolve().parent.parent / ".cache"
ERRORS = (
    BuildError,
    CpioError,
    ElfError,
    KmodError,
    TreeError,
    addon.AddonError,
    kernelsrc.KernelSourceError,
    baked.BakedLineError,
    append.AppendError,
    ListingError,
    OSError,
)


def _run(argv: list[str]) -> str:
    if argv[:1] == ["cmdline"]:
        if len(argv) != 2:
            raise BuildError("usage: python -m initramfs cmdline '<parameters>'")
        line, notes = baked.check(argv[1])
        return "\n".join([line, *(f"note: {n}" for n in notes)])
    if argv[:1] == ["kernel"]:
        return _kernel(argv[1:])
    if argv[:1] == ["ovs"]:
        acfg = addon.config_from_args(argv[1:])
        return addon.summary(addon.build_addon(acfg), acfg.out)
    if argv[:1] == ["netroot"]:
        ncfg = netrootaddon.config_from_args(argv[1:])
        return netrootaddon.summary(netrootaddon.build_netroot(ncfg), ncfg.out)
    if argv[:1] == ["append"]:
        pcfg = append.config_from_args(argv[1:])
        return append.summary(append.build_append(pcfg), pcfg.out)
    cfg = config_from_args(argv)
    return summary(build(cfg), cfg.out)


def _kernel(args: list[str]) -> str:
    link = "current"
    if "--link" in args[:-1]:
        at = args.index("--link")
        link, args = args[at + 1], args[:at] + args[at + 2 :]
    if len(args) > 1:
        raise BuildError("usage: python -m initramfs kernel [--link NAME] [SOURCE]")
    src = kernelsrc.parse_source(args[0]) if args else kernelsrc.default_source()
    tree = kernelsrc.prepare(src, CACHE / "kernel", link)
    print(f"kernel {tree.kver}: {tree.origin}", file=sys.stderr)
    return tree.kver


def main() -> int:
    try:
        print(_run(sys.argv[1:]))
    except ERRORS as exc:
        print(f"initramfs: error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
