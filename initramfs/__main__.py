"""``python -m initramfs build|ovs ...``: the only place that exits the process.

``build`` makes the base image, ``ovs`` the Open vSwitch add-on (addon.py),
``cmdline LINE`` checks a line for ``build --cmdline`` and prints it as baked.
``append`` the chain-mode image for a distro initramfs (append.py),
``netroot`` the netboot-root add-on: NFS modules and zstd (netrootaddon.py).
"""

from __future__ import annotations

import sys

from initramfs import addon, append, baked, netrootaddon
from initramfs.build import BuildError, build, config_from_args, summary
from initramfs.cpio import CpioError
from initramfs.elf import ElfError
from initramfs.kmod import KmodError
from initramfs.listing import ListingError
from initramfs.tree import TreeError

ERRORS = (
    BuildError,
    CpioError,
    ElfError,
    KmodError,
    TreeError,
    addon.AddonError,
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


def main() -> int:
    try:
        print(_run(sys.argv[1:]))
    except ERRORS as exc:
        print(f"initramfs: error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
