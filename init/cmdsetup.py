"""From /proc/cmdline and the baked line to every configuration PID 1 uses.

This is PID 1's one path from the bytes the boot loader handed the kernel
to frozen configurations: the baked line merged under the kernel's
(``mosnet.config.cmdmerge``), the boot config (``init.bootcfg``: root, init,
netboot roots, console, mosshell), the network config (``mosnet.config.cmdline``)
and the console level (``mosnet.config.console``: ``quiet``, ``loglevel=``).
The kernel line is split once, when it is read (``read_kernel_line``), and
every reader takes that split; the baked line is split once by the merge,
and the parsers read the merged split. Nothing here raises: a
file that cannot be read is logged and treated as empty, a malformed
parameter is logged once (parameter, token, expected form) and dropped
alone, everything else on the line applies.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass

from init import bootcfg
from mosnet.base.errors import ParamError, escaped
from mosnet.config import cmdline, cmdmerge, console, kcmdline
from mosnet.config.kcmdline import KernelLine
from mosnet.config.model import NetConfig

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


def read_kernel_line(path: str = CMDLINE_PATH) -> tuple[KernelLine, str | None]:
    """The command line, raw and split, and, if it could not be read whole, why."""
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_CMDLINE + 1)
    except OSError as exc:
        return kcmdline.kernel_line(b""), f"cannot read {path}: {exc.strerror or exc}"
    if len(data) > MAX_CMDLINE:
        problem = f"{path} is over {MAX_CMDLINE} bytes: the rest is ignored"
        return kcmdline.kernel_line(data[:MAX_CMDLINE]), problem
    return kcmdline.kernel_line(data), None


def configure(
    kernel: KernelLine | bytes, logger: logging.Logger, baked_path: str = cmdmerge.BAKED_PATH
) -> BootInput:
    """Merge the baked line under ``kernel``, parse it all, log what was wrong."""
    if isinstance(kernel, bytes):
        kernel = kcmdline.kernel_line(kernel)
    merged = cmdmerge.merge(cmdmerge.read_baked(logger, baked_path), kernel)
    cmdmerge.log_merge(merged, logger)
    boot, boot_errors = bootcfg.parse(merged.line)
    net = cmdline.parse(merged.line)
    _, level_errors = console.console_loglevel(merged.line)
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
