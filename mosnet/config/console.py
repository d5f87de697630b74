"""The kernel's console level, read from the split command line as the kernel reads it.

PID 1 writes its own lines to the console only when the kernel would hide
its kmsg info lines (``quiet``, ``loglevel`` 6 or less), so it needs the
level the kernel ends up with. The parameters are the kernel's: a form the
kernel ignores (``quiet=1``) is ignored here too, and only a malformed
``loglevel=`` is reported.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from mosnet.base.errors import ParamError
from mosnet.config import registry
from mosnet.config.kcmdline import CmdLine, Param

# include/linux/printk.h: CONSOLE_LOGLEVEL_DEFAULT, _QUIET, _DEBUG
CONSOLE_DEFAULT, CONSOLE_QUIET, CONSOLE_DEBUG = 7, 4, 10
CONSOLE_ALL = 1 << 31  # ignore_loglevel: every line shows
INFO_LEVEL = 6  # KERN_INFO: on the console when it is below the console level
_LOGLEVEL_RE = re.compile(r"[+-]?[0-9]{1,10}")


def _loglevel(_: int, p: Param) -> int:
    value = p.value or ""
    if _LOGLEVEL_RE.fullmatch(value) and abs(int(value)) < 1 << 31:
        return int(value)
    raise ParamError("loglevel", value, registry.expected("loglevel"))


HANDLERS: dict[str, Callable[[int, Param], int]] = {
    "quiet": lambda _, __: CONSOLE_QUIET,
    "debug": lambda _, __: CONSOLE_DEBUG,
    "ignore_loglevel": lambda _, __: CONSOLE_ALL,
    "loglevel": _loglevel,
}


def console_loglevel(line: CmdLine) -> tuple[int, tuple[ParamError, ...]]:
    """The console level the kernel ends up with, as it reads the line.

    ``quiet``, ``debug`` and ``loglevel=`` apply in order, the last one wins;
    ``ignore_loglevel`` shows everything. ``loglevel=`` is read as decimal:
    the kernel also takes octal and hex, but for every value either way the
    answer to "are info lines shown" is the same. A malformed value is
    reported and ignored, as the kernel ignores it.
    """
    level, errors = CONSOLE_DEFAULT, []
    for p in line.params:
        entry = registry.lookup(p.key, "console")
        if entry is None:
            continue
        try:
            if registry.fits(entry, p):
                level = HANDLERS[p.key](level, p)
        except ParamError as exc:
            errors.append(exc)
    return level, tuple(errors)


def kernel_echoes_info(line: CmdLine) -> bool:
    """Does the kernel print our kmsg info lines on the console by itself?

    Not with ``quiet`` or ``loglevel`` 6 and below; then we copy them ourselves.
    """
    return console_loglevel(line)[0] > INFO_LEVEL
