"""The baked-in command line (``/etc/mosnet/cmdline``) under the kernel's.

``build.sh --cmdline "..."`` stores default parameters inside the image, for
set-ups where the kernel line is hard to change (an iPXE script burnt into
firmware, a provider's rescue loader). At boot the real kernel line
overrides them parameter by parameter:

* a key on the kernel line replaces every baked occurrence of that key; for
  the repeatable keys (``ip=``, ``nameserver=``, ``ifname=``) the kernel's
  set replaces the baked set as a whole, so a baked value can be dropped;
* ``ro`` and ``rw`` are one setting: either on the kernel line drops both;
* an empty ``key=`` on the kernel line removes the baked key without giving
  a new value (``mosip4=`` turns a baked static address back into DHCP);
* the arguments after ``--`` go to the real init as one list: the kernel's
  if its line has ``--``, else the baked ones.

``merge`` is pure; ``read_baked`` and ``log_merge`` do the I/O around it.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from mosnet import kcmdline
from mosnet.kcmdline import Param

BAKED_PATH = "/etc/mosnet/cmdline"
MAX_BYTES = 4096  # build.sh refuses more; PID 1 ignores a bigger file
# Keys that set one and the same thing: the kernel line's member wins.
_GROUPS = {"ro": "ro|rw", "rw": "ro|rw"}


@dataclass(frozen=True)
class Merged:
    """The effective line and how it came about (for the log and state.json)."""

    text: str  # what the parsers read
    kernel: str  # /proc/cmdline as the kernel gave it
    baked: str | None = None  # the baked line, None without the file
    overridden: tuple[str, ...] = ()  # baked tokens the kernel line replaced
    cleared: tuple[str, ...] = ()  # baked tokens removed by an empty ``key=``
    init_args_from: str | None = None  # "kernel", "baked" or None (no ``--``)


def group(key: str) -> str:
    """The setting a key belongs to; keys in one group replace each other."""
    return _GROUPS.get(key, key)


def render_token(token: str) -> str:
    """Quote a token the way the kernel's next_arg() reads it back."""
    if not any(ch.isspace() for ch in token):
        return token
    key, sep, value = token.partition("=")
    if sep and not any(ch.isspace() for ch in key):
        return f'{key}="{value}"'
    return f'"{token}"'


def render(params: Sequence[Param], init_args: Sequence[str] | None = None) -> str:
    """One command line from parameters and, if not None, ``--`` plus init args."""
    words = [p.key if p.value is None else f"{p.key}={p.value}" for p in params]
    out = [render_token(w) for w in words]
    if init_args is not None:
        out += ["--", *(render_token(a) for a in init_args)]
    return " ".join(out)


def _init_args(text: str) -> tuple[str, ...] | None:
    """The words after ``--``, or None when the line has no ``--``."""
    return kcmdline.init_args(text) if kcmdline.has_separator(text) else None


def merge(baked: str | None, kernel: str) -> Merged:
    """Apply the kernel line over the baked one (rules in the module docstring)."""
    bparams = kcmdline.split(baked or "")
    bargs = _init_args(baked or "")
    if not bparams and bargs is None:
        return Merged(kernel, kernel, baked)  # nothing baked: the kernel line as it is
    kparams = kcmdline.split(kernel)
    baked_groups = {group(p.key) for p in bparams}
    # ``key=`` clears a baked key; without a baked one it stays (and is an error).
    clears = [p for p in kparams if p.value == "" and group(p.key) in baked_groups]
    given = [p for p in kparams if p not in clears]
    given_groups = {group(p.key) for p in given}
    cleared_groups = {group(p.key) for p in clears} - given_groups
    kargs = _init_args(kernel)
    args, args_from = (kargs, "kernel") if kargs is not None else (bargs, "baked")
    return Merged(
        text=render(
            [p for p in bparams if group(p.key) not in given_groups | cleared_groups] + given, args
        ),
        kernel=kernel,
        baked=baked,
        overridden=tuple(render([p]) for p in bparams if group(p.key) in given_groups),
        cleared=tuple(render([p]) for p in bparams if group(p.key) in cleared_groups),
        init_args_from=args_from if args is not None else None,
    )


def parse_file(data: bytes) -> str:
    """The baked line from the file's bytes: ``#`` comment lines out, lines joined.

    Raises UnicodeDecodeError for bytes that are not UTF-8.
    """
    lines = data.decode("utf-8").splitlines()
    kept = (line.strip() for line in lines if not line.lstrip().startswith("#"))
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
    try:
        return parse_file(data)
    except UnicodeDecodeError as exc:
        logger.error("baked command line %s is not UTF-8 (%s): kernel line only", path, exc)
        return None


def log_merge(merged: Merged, logger: logging.Logger) -> None:
    """Say what was baked, what the kernel line overrode, and the line in effect."""
    if merged.baked is None:
        return
    logger.info("baked command line: %s", merged.baked or "(empty)")
    for token in merged.overridden:
        logger.info("cmdline: baked %s overridden by the kernel line", token)
    for token in merged.cleared:
        key = token.partition("=")[0]
        logger.info("cmdline: baked %s cleared by an empty %s= on the kernel line", token, key)
    if merged.init_args_from == "kernel" and kcmdline.has_separator(merged.baked):
        logger.info("cmdline: baked init arguments replaced by the kernel line's")
    logger.info("effective command line: %s", merged.text.strip())


def state_section(merged: Merged) -> dict[str, Any]:
    """``boot.cmdline`` of state.json."""
    return {
        "kernel": merged.kernel.strip(),
        "baked": merged.baked,
        "effective": merged.text.strip(),
        "overridden": list(merged.overridden),
        "cleared": list(merged.cleared),
    }
