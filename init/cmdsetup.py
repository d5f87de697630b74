"""From /proc/cmdline and the baked line to every configuration PID 1 uses.

This is PID 1's one path from the bytes the boot loader handed the kernel
to frozen configurations: the baked line merged under the kernel's
(``mosnet.cmdmerge``), the boot config (``init.bootcfg``: root, init,
netboot roots, console, mosshell), the network config (``mosnet.cmdline``)
and the console level (``quiet``, ``loglevel=``). Nothing here raises: a
file that cannot be read is logged and treated as empty, a malformed
parameter is logged once (parameter, token, expected form) and dropped
alone, everything else on the line applies.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass

from init import bootcfg
from mosnet import cmdline, cmdmerge, log
from mosnet.config import NetConfig
from mosnet.errors import ParamError, escaped

CMDLINE_PATH = "/proc/cmdline"
# COMMAND_LINE_SIZE is 2048 on x86 and at most 4096 elsewhere; bootconfig can
# add more. Anything longer than this is not a command line a kernel made.
MAX_CMDLINE = 1 << 16


@dataclass(frozen=True)
class BootInput:
    """Everything PID 1 took from the command line."""

    merged: cmdmerge.Merged
    boot: bootcfg.BootConfig
    net: NetConfig
    errors: tuple[ParamError, ...]  # every malformed parameter, in the order logged
    notes: tuple[str, ...]


def read_kernel_line(path: str = CMDLINE_PATH) -> tuple[bytes, str | None]:
    """The raw command line and, if it could not be read whole, why."""
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_CMDLINE + 1)
    except OSError as exc:
        return b"", f"cannot read {path}: {exc.strerror or exc}"
    if len(data) > MAX_CMDLINE:
        return data[:MAX_CMDLINE], f"{path} is over {MAX_CMDLINE} bytes: the rest is ignored"
    return data, None


def configure(
    kernel: bytes, logger: logging.Logger, baked_path: str = cmdmerge.BAKED_PATH
) -> BootInput:
    """Merge the baked line under ``kernel``, parse it all, log what was wrong."""
    merged = cmdmerge.merge(cmdmerge.read_baked(logger, baked_path), kernel)
    cmdmerge.log_merge(merged, logger)
    boot, boot_errors = bootcfg.parse(merged.line)
    net = cmdline.parse(merged.line)
    _, level_errors = log.console_loglevel(merged.line)
    errors = (*boot_errors, *net.errors, *level_errors)
    for note in net.notes:
        logger.info("cmdline: %s", note)
    for text, times in Counter(str(e) for e in errors).items():  # a repeated key: one line
        repeat = f" ({times} times)" if times > 1 else ""
        logger.warning("ignoring kernel parameter %s%s", text, repeat)
    if errors:
        logger.warning(
            "%d malformed parameter(s) ignored; the rest of the line applies", len(errors)
        )
    return BootInput(merged, boot, net.config, errors, net.notes)


def describe(inp: BootInput) -> str:
    """One line for the log: what the boot will do, whatever the line held."""
    cfg, net = inp.boot, inp.net
    root = str(cfg.netroot.url) if cfg.netroot else str(cfg.nfs or cfg.root)
    return f"network mode: {net.mode} (root {escaped(root, 200)}, mosinit {cfg.mosinit})"
