"""``build.sh --hostonly``: the drivers of the build machine's hardware only.

Like dracut's host-only mode: instead of the list of common NIC and disk
drivers (kmod.HARDWARE_MODULES), the image gets the modules whose alias
patterns match a modalias under the build machine's /sys/devices, plus the
modules it has loaded (/proc/modules), looked up in the kernel being built
for. What mosnet always needs (kmod.MOSNET_MODULES: bridge, nftables, file
systems...) stays. The build report says how many bytes that saved.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from init.modindex import ModuleIndex


@dataclass(frozen=True)
class HostDrivers:
    """What the build machine's hardware asks for, in the target kernel's names."""

    modaliases: int  # distinct modalias strings read from sysfs
    by_alias: tuple[str, ...]  # modules an alias pattern matched
    loaded: tuple[str, ...]  # loaded modules the target kernel also has

    @property
    def modules(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys((*self.by_alias, *self.loaded)))


def host_modaliases(sys_devices: Path) -> set[str]:
    """Every modalias under /sys/devices (without following symlinks)."""
    found: set[str] = set()
    for top, _dirs, files in os.walk(sys_devices):
        if "modalias" in files:
            try:
                text = (Path(top) / "modalias").read_bytes().decode("ascii", "replace").strip()
            except OSError:
                continue  # some attributes refuse reads; that device asks for nothing
            if text:
                found.add(text)
    return found


def loaded_modules(proc_modules: Path) -> set[str]:
    """Names in /proc/modules; none when the kernel has no module support."""
    try:
        text = proc_modules.read_text(errors="replace")
    except OSError:
        return set()
    return {line.split()[0].replace("-", "_") for line in text.splitlines() if line.strip()}


def host_drivers(moddir: Path, sys_devices: Path, proc_modules: Path) -> HostDrivers:
    """Match the host's hardware against the modules of the kernel at ``moddir``."""
    index = ModuleIndex.load(str(moddir))
    aliases = host_modaliases(sys_devices)
    matched: dict[str, None] = {}
    for alias in sorted(aliases):
        for mod in index.match_alias(alias):
            if mod in index.paths:  # built-in drivers need nothing shipped
                matched[mod] = None
    loaded = sorted(m for m in loaded_modules(proc_modules) if m in index.paths)
    return HostDrivers(len(aliases), tuple(matched), tuple(loaded))


def wanted_modules(
    always: Iterable[str], host: HostDrivers, extra: Iterable[str]
) -> tuple[str, ...]:
    return tuple(dict.fromkeys((*always, *host.modules, *extra)))


def hostonly_line(figures: dict[str, object]) -> str:
    """The build summary's line: what the host asked for and what that saved."""
    drivers = figures["host_drivers"]
    count = len(drivers) if isinstance(drivers, list) else 0
    saved, default = figures["saved_bytes"], figures["default_modules_bytes"]
    return (
        f"  host-only: {count} drivers for {figures['modaliases']} modaliases; modules "
        f"{figures['modules_bytes']} bytes instead of {default} ({saved} bytes saved)"
    )
