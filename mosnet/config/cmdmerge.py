"""The baked-in command line (``/etc/mosnet/cmdline``) under the kernel's.

``build.sh --cmdline "..."`` stores default parameters inside the image, for
set-ups where the kernel line is hard to change (an iPXE script burnt into
firmware, a provider's rescue loader). At boot the real kernel line
overrides them parameter by parameter:

* a key on the kernel line overrides the baked value of that key. The
  effective line keeps the baked parameter ahead of the kernel's, and the
  parsers take the last *valid* occurrence: a malformed kernel value is
  reported and dropped alone, so it cannot take away a baked default (a
  typo must not turn a baked static address into DHCP);
* for the repeatable keys (``ip=``, ``nameserver=``, ``ifname=``) the
  kernel's set replaces the baked set as a whole, so a baked value can be
  dropped;
* ``ro`` and ``rw`` are one setting: the last valid one of either wins;
* an empty ``key=`` on the kernel line removes the baked key without giving
  a new value (``mosip4=`` turns a baked static address back into DHCP);
* the arguments after ``--`` go to the real init as one list: the kernel's
  if its line has ``--``, else the baked ones.

``merge`` is pure; ``read_baked`` and ``log_merge`` do the I/O around it.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from mosnet.base.errors import escaped
from mosnet.config import kcmdline, registry
from mosnet.config.kcmdline import CmdLine, KernelLine, Param

BAKED_PATH = "/etc/mosnet/cmdline"
MAX_BYTES = 4096  # build.sh refuses more; PID 1 ignores a bigger file
# The kernel line's occurrences of these replace the baked ones as a set. A
# baked line holds bakeable keys only (build.sh checks), so console= is not here.
REPEATABLE = registry.REPEATABLE & registry.BAKEABLE


@dataclass(frozen=True)
class Merged:
    """The effective line and how it came about (for the log and state.json)."""

    text: str  # the effective line rendered (for the log and state.json)
    kernel: str  # /proc/cmdline as the kernel gave it (surrogateescape)
    baked: str | None = None  # the baked line, None without the file
    overridden: tuple[str, ...] = ()  # baked tokens the kernel line replaced
    cleared: tuple[str, ...] = ()  # baked tokens removed by an empty ``key=``
    init_args_from: str | None = None  # "kernel", "baked" or None (no ``--``)
    baked_args_replaced: bool = False  # both lines had ``--``: the kernel's args won
    line: CmdLine = field(default_factory=CmdLine)  # what the parsers read


def render_token(token: str) -> str:
    """Quote a token the way the kernel's next_arg() reads it back.

    A token that holds both a space and a quote has no such form; it is
    shown as it is (the parsers get the parameters, never this text).
    """
    if not kcmdline.has_space(token) or '"' in token:
        return token
    key, sep, value = token.partition("=")
    if sep and not kcmdline.has_space(key):
        return f'{key}="{value}"'
    return f'"{token}"'


def render(params: Sequence[Param], init_args: Sequence[str] | None = None) -> str:
    """One command line from parameters and, if not None, ``--`` plus init args."""
    words = [p.key if p.value is None else f"{p.key}={p.value}" for p in params]
    out = [render_token(w) for w in words]
    if init_args is not None:
        out += ["--", *(render_token(a) for a in init_args)]
    return " ".join(out)


def merge(baked: str | None, kernel: str | bytes | KernelLine) -> Merged:
    """Apply the kernel line over the baked one (rules in the module docstring).

    Each line is split once: pass the kernel's as a KernelLine if it is split already.
    """
    if not isinstance(kernel, KernelLine):
        kernel = kcmdline.kernel_line(kcmdline.to_bytes(kernel))
    kline, ktext = kernel.line, kernel.text
    bline = CmdLine() if baked is None else kcmdline.parse_line(baked)
    if not bline.params and bline.init_args is None:
        return Merged(ktext, ktext, baked, line=kline)  # nothing baked: the kernel line as it is
    bparams, kparams = bline.params, kline.params
    baked_groups = {registry.group(p.key) for p in bparams}
    # ``key=`` clears a baked key; without a baked one it stays (and is an error).
    clears = [p for p in kparams if p.value == "" and registry.group(p.key) in baked_groups]
    given = [p for p in kparams if p not in clears]
    given_groups = {registry.group(p.key) for p in given}
    cleared_groups = {registry.group(p.key) for p in clears} - given_groups
    replaced_sets = {p.key for p in given if p.key in REPEATABLE}
    from_kernel = kline.init_args is not None
    args = kline.init_args if from_kernel else bline.init_args
    kept = [p for p in bparams if registry.group(p.key) not in cleared_groups | replaced_sets]
    effective = CmdLine((*kept, *given), args, (*bline.warnings, *kline.warnings))
    return Merged(
        text=render(effective.params, args),
        kernel=ktext,
        baked=baked,
        overridden=tuple(render([p]) for p in bparams if registry.group(p.key) in given_groups),
        cleared=tuple(render([p]) for p in bparams if registry.group(p.key) in cleared_groups),
        init_args_from=None if args is None else "kernel" if from_kernel else "baked",
        baked_args_replaced=from_kernel and bline.init_args is not None,
        line=effective,
    )


def parse_file(data: bytes) -> str:
    """The baked line from the file's bytes: ``#`` comment lines out, lines joined.

    Bytes that are not UTF-8 stay as surrogates: like on the kernel line, the
    parameter holding them is refused by its parser, the rest applies.
    """
    lines = kcmdline.decode(data).split("\n")
    kept = (line.strip(" \t\r") for line in lines if not line.lstrip().startswith("#"))
    return " ".join(line for line in kept if line)


def read_baked(logger: logging.Logger, path: str = BAKED_PATH) -> str | None:
    """The baked line, or None without the file; an unusable file is logged and skipped."""
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_BYTES + 1)
    except FileNotFoundError:
        return None
    except OSError as exc:
        logger.error("baked command line %s unreadable (%s): kernel line only", path, exc)
        return None
    if len(data) > MAX_BYTES:
        logger.error("baked command line %s over %d bytes: kernel line only", path, MAX_BYTES)
        return None
    return parse_file(data)


def log_merge(merged: Merged, logger: logging.Logger) -> None:
    """Say what was baked, what the kernel line overrode, and the line in effect."""
    if merged.baked is None:
        return
    logger.info("baked command line: %s", escaped(merged.baked) or "(empty)")
    for token in merged.overridden:
        logger.info(
            "cmdline: baked %s overridden by the kernel line (unless its value is malformed)",
            escaped(token),
        )
    for token in merged.cleared:
        key = escaped(token.partition("=")[0])
        logger.info(
            "cmdline: baked %s cleared by an empty %s= on the kernel line", escaped(token), key
        )
    if merged.baked_args_replaced:
        logger.info("cmdline: baked init arguments replaced by the kernel line's")
    logger.info("effective command line: %s", escaped(merged.text.strip()))


def state_section(merged: Merged) -> dict[str, Any]:
    """``boot.cmdline`` of state.json."""
    return {
        "kernel": escaped(merged.kernel.strip(), 1 << 16),
        "baked": None if merged.baked is None else escaped(merged.baked, 1 << 16),
        "effective": escaped(merged.text.strip(), 1 << 16),
        "overridden": [escaped(t) for t in merged.overridden],
        "cleared": [escaped(t) for t in merged.cleared],
    }
