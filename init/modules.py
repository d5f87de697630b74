"""Load kernel modules at boot without modprobe: finit_module and coldplug.

``Loader`` loads a module from a ``modindex.ModuleIndex`` with its
dependencies, dependencies first; ``coldplug`` matches every device's
modalias in sysfs and loads the drivers, network cards first because the NIC
is what this PID 1 is for. Nothing here raises on a bad module: failures are
logged and reported.
"""

from __future__ import annotations

import errno
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from init import syscalls
from init.modindex import COMPRESSED, ModuleIndex, lines
from mosnet.base import log

_log = log.get("init.modules")

MODULE_INIT_COMPRESSED_FILE = 4  # Linux >= 5.17 decompresses in the kernel
MAX_PASSES = 3
FinitFn = Callable[[int, str, int], None]


def loaded_modules(proc_modules: str = "/proc/modules") -> set[str]:
    """Names in /proc/modules (first column)."""
    return {ln.split()[0] for ln in lines(proc_modules)}


@dataclass(frozen=True)
class LoadReport:
    loaded: tuple[str, ...] = ()
    failed: tuple[tuple[str, str], ...] = ()  # (module, reason)
    unmatched: tuple[str, ...] = ()  # aliases/modaliases no module claims
    seconds: float = 0.0
    passes: int = 0


# Options every load passes, as a modprobe.d line would. bonding: no bond0 of
# the driver's own (an empty round-robin bond that bond= would have to fight).
OPTIONS = {"bonding": "max_bonds=0"}


def _finit(fd: int, params: str, flags: int) -> None:
    syscalls.finit_module(fd, params, flags)


class Loader:
    """Loads modules from one index; remembers what is loaded and what failed."""

    def __init__(
        self,
        index: ModuleIndex,
        finit: FinitFn = _finit,
        proc_modules: str = "/proc/modules",
    ) -> None:
        self.index = index
        self.finit = finit
        self.present: set[str] = loaded_modules(proc_modules) | set(index.builtin)
        self.loaded: list[str] = []  # loaded by us, in order
        self.failed: dict[str, str] = {}

    def load(self, name_or_alias: str) -> bool:
        """Load what ``name_or_alias`` names with its dependencies; never raises.

        True if at least one matching module is present afterwards.
        """
        mods = self.index.resolve(name_or_alias)
        if not mods:
            self.failed.setdefault(name_or_alias, "no module or alias by that name")
            _log.warning("module %s: no module or alias by that name", name_or_alias)
            return False
        results = [self._load_with_softdeps(mod) for mod in mods]
        return any(results)

    def _load_with_softdeps(self, mod: str) -> bool:
        # Soft dependencies are best effort: their failure does not block mod.
        for pre in self.index.softdep_pre.get(mod, ()):
            self._load_tree(pre)
        ok = self._load_tree(mod)
        for post in self.index.softdep_post.get(mod, ()):
            self._load_tree(post)
        return ok

    def _load_tree(self, mod: str) -> bool:
        for dep in self.index.closure(mod):
            if dep in self.present:
                continue
            if dep in self.failed:
                if dep != mod:
                    self._fail(mod, f"dependency {dep} failed")
                return False
            if not self._load_one(dep):
                if dep != mod:
                    self._fail(mod, f"dependency {dep} failed")
                return False
        return True

    def _load_one(self, mod: str) -> bool:
        path = self.index.paths.get(mod)
        if path is None:
            self._fail(mod, "not in modules.dep")
            return False
        flags = MODULE_INIT_COMPRESSED_FILE if path.endswith(COMPRESSED) else 0
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError as exc:
            self._fail(mod, f"cannot open {path}: {exc.strerror}")
            return False
        try:
            self.finit(fd, OPTIONS.get(mod, ""), flags)
        except OSError as exc:
            if exc.errno != errno.EEXIST:  # loaded meanwhile (or by the kernel itself)
                self._fail(mod, exc.strerror or str(exc))
                return False
        finally:
            os.close(fd)
        self.present.add(mod)
        self.loaded.append(mod)
        _log.info("loaded module %s", mod)
        return True

    def _fail(self, mod: str, reason: str) -> None:
        if mod not in self.failed:
            self.failed[mod] = reason
            _log.warning("module %s: %s", mod, reason)


# ------------------------------------------------------------------ coldplug


@dataclass(frozen=True)
class Device:
    path: str  # the sysfs directory
    modalias: str
    is_nic: bool


def _read(path: str) -> str | None:
    try:
        with open(path, encoding="ascii", errors="replace") as f:
            return f.read().strip()
    except OSError:
        return None


def _is_nic(devpath: str, modalias: str) -> bool:
    if modalias.startswith("virtio:"):
        return modalias.startswith("virtio:d00000001v")  # virtio device id 1 = net
    if modalias.startswith("pci:"):
        cls = _read(os.path.join(devpath, "class")) or ""
        try:
            return int(cls, 16) >> 16 == 0x02  # PCI base class 02: network controller
        except ValueError:
            return False
    return False


def _modalias_dirs(sysfs: str) -> Iterable[str]:
    for top, _dirs, files in os.walk(os.path.join(sysfs, "devices")):
        if "modalias" in files:
            yield top
    # Bus device entries are symlinks into /sys/devices; usually seen above.
    bus = os.path.join(sysfs, "bus")
    for busname in _listdir(bus):
        devices = os.path.join(bus, busname, "devices")
        for dev in _listdir(devices):
            yield os.path.join(devices, dev)


def _listdir(path: str) -> list[str]:
    try:
        return sorted(os.listdir(path))
    except OSError:
        return []


def devices(sysfs: str = "/sys") -> list[Device]:
    """Every device with a modalias, NICs first, each once."""
    seen: set[str] = set()
    out: list[Device] = []
    for d in _modalias_dirs(sysfs):
        real = os.path.realpath(d)
        if real in seen:
            continue
        seen.add(real)
        alias = _read(os.path.join(d, "modalias"))
        if alias:
            out.append(Device(d, alias, _is_nic(d, alias)))
    return sorted(out, key=lambda dev: not dev.is_nic)  # stable: keeps walk order


def coldplug(
    loader: Loader,
    sysfs: str = "/sys",
    clock: Callable[[], float] = time.monotonic,
    max_passes: int = MAX_PASSES,
) -> LoadReport:
    """Load drivers for every device present; repeat while new modules load.

    A second pass catches devices that a first-pass driver created (virtio_pci
    registers the virtio devices that virtio_net then binds). Never raises.
    """
    start = clock()
    first_loaded = len(loader.loaded)
    unmatched: dict[str, None] = {}
    passes = 0
    while passes < max_passes:
        passes += 1
        before = len(loader.loaded)
        for dev in devices(sysfs):
            _coldplug_one(loader, dev, unmatched)
        if len(loader.loaded) == before:
            break
    loaded = tuple(loader.loaded[first_loaded:])
    report = LoadReport(
        loaded=loaded,
        failed=tuple(loader.failed.items()),
        unmatched=tuple(unmatched),
        seconds=clock() - start,
        passes=passes,
    )
    _log.info(
        "coldplug: %d modules loaded, %d failed, %d passes, %.0f ms",
        len(report.loaded),
        len(report.failed),
        passes,
        report.seconds * 1000,
    )
    return report


def _coldplug_one(loader: Loader, dev: Device, unmatched: dict[str, None]) -> None:
    mods = loader.index.match_alias(dev.modalias)
    if not mods:
        unmatched[dev.modalias] = None
        return
    for mod in mods:
        if mod not in loader.present and mod not in loader.failed:
            loader.load(mod)


def install_helper(
    path: str = "/sbin/modprobe", proc_file: str = "/proc/sys/kernel/modprobe"
) -> str | None:
    """Point the kernel's request_module() helper at ``path``.

    Returns None on success or a one-line problem description (also logged).
    """
    problem = None
    if not os.access(path, os.X_OK):
        problem = f"{path} is missing or not executable"
    else:
        try:
            with open(proc_file, "w", encoding="ascii") as f:
                f.write(path + "\n")
            if _read(proc_file) != path:
                problem = f"{proc_file} did not take {path}"
        except OSError as exc:
            problem = f"cannot write {proc_file}: {exc.strerror}"
    if problem:
        _log.warning("module helper: %s", problem)
    return problem
