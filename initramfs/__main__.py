"""``python -m initramfs build ...``: the only place that exits the process."""

from __future__ import annotations

import sys

from initramfs.build import BuildError, build, config_from_args, summary
from initramfs.cpio import CpioError
from initramfs.elf import ElfError
from initramfs.kmod import KmodError
from initramfs.tree import TreeError


def main() -> int:
    try:
        cfg = config_from_args(sys.argv[1:])
        report = build(cfg)
    except (BuildError, CpioError, ElfError, KmodError, TreeError, OSError) as exc:
        print(f"initramfs: error: {exc}", file=sys.stderr)
        return 1
    print(summary(report, cfg.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
