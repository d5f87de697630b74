"""``build.sh --cmdline``: check a line to bake into the image, then store it.

The line is read at boot by the same parsers that read the kernel line
(init.bootcfg, mosnet.config.cmdline), so it is checked here with them and the
build stops on the first thing they would complain about. Only parameters
mosnet-init itself reads can be baked: ``console=``, ``quiet`` and the like
are for the kernel, which never sees this file, and ``mostest.*`` belongs to
the real root, which reads /proc/cmdline.
"""

from __future__ import annotations

from init import bootcfg
from mosnet.base.errors import shown
from mosnet.config import cmdline, kcmdline, registry
from mosnet.config.cmdmerge import BAKED_PATH, MAX_BYTES, render

# The registry says which: the kernel's own (console=, quiet) are not, as the
# kernel never sees this file.
BAKEABLE = registry.BAKEABLE
HEADER = (
    "# mosnet-init: default kernel parameters, baked in by build.sh --cmdline.\n"
    "# The kernel command line overrides them parameter by parameter (README).\n"
)
MAX_LINE = MAX_BYTES - len(HEADER) - 1


class BakedLineError(Exception):
    """The line given to --cmdline would not parse at boot."""


def check(line: str) -> tuple[str, tuple[str, ...]]:
    """Return the canonical line and the parsers' notes; raise BakedLineError."""
    if len(kcmdline.to_bytes(line)) > MAX_LINE:
        raise BakedLineError(f"--cmdline: one line of at most {MAX_LINE} bytes")
    if kcmdline.undecodable(line) or not all(c.isprintable() for c in line):
        raise BakedLineError(f"--cmdline: printable UTF-8 text only, got {shown(line)}")
    parsed = kcmdline.parse_line(line)
    if parsed.warnings:
        raise BakedLineError(f"--cmdline: {parsed.warnings[0]}")
    _check_keys(parsed.params)
    net = cmdline.parse(parsed)
    _, boot_errors = bootcfg.parse(parsed)
    errors = (*net.errors, *boot_errors)
    if errors:
        raise BakedLineError(f"--cmdline: {errors[0]}")
    return render(parsed.params, parsed.init_args), net.notes


def _check_keys(params: tuple[kcmdline.Param, ...]) -> None:
    seen: set[str] = set()
    groups: dict[str, set[str]] = {}  # keys that set one thing (ro|rw)
    for p in params:
        if p.key not in BAKEABLE:
            raise BakedLineError(
                f"--cmdline: {shown(p.key)} is not a parameter mosnet-init reads; only these "
                f"can be baked: {' '.join(sorted(BAKEABLE))} (kernel parameters such as "
                "console= go on the kernel line)"
            )
        if p.key in seen and p.key not in registry.REPEATABLE:
            raise BakedLineError(f"--cmdline: {p.key} given twice; give it once")
        seen.add(p.key)
        groups.setdefault(registry.group(p.key), set()).add(p.key)
    for keys in groups.values():
        if len(keys) > 1:
            raise BakedLineError(f"--cmdline: both {' and '.join(sorted(keys))}; give one")


def file_bytes(line: str) -> bytes:
    """What goes to BAKED_PATH: a comment header and the canonical line."""
    canonical, _ = check(line)
    return (HEADER + canonical + "\n").encode()


__all__ = ["BAKED_PATH", "BAKEABLE", "BakedLineError", "check", "file_bytes"]
