"""Load kernel modules at boot without modprobe: depmod indexes + finit_module.

``ModuleIndex`` reads the text files depmod writes (modules.dep, .alias,
.softdep, .builtin); ``Loader`` loads a module with its dependencies,
dependencies first; ``coldplug`` matches every device's modalias in sysfs and
loads the drivers, network cards first because the NIC is what this PID 1 is
for. Nothing here raises on a bad module: failures are logged and reported.
"""

from __future__ import annotations

import errno
import fnmatch
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from init import syscalls
from mosnet import log

_log = log.get("init.modules")

MODULE_INIT_COMPRESSED_FILE = 4  # Linux >= 5.17 decompresses in the kernel
_COMPRESSED = (".ko.xz", ".ko.zst", ".ko.gz")
_WILDCARDS = "*?["
MAX_PASSES = 3
# Trees beside the kernel's own, each with its own depmod index: the append
# image's network-stack modules (chain mode, build.sh --append) and the
# netroot add-on's NFS client (initramfs/netrootaddon.py).
PRIVATE_MODULES = "/usr/lib/mosnet/modules"
NETROOT_MODULES = "/usr/lib/mosnet/netroot"

FinitFn = Callable[[int, str, int], None]


def modname(path_or_name: str) -> str:
    """``kernel/drivers/net/virtio-net.ko.xz`` -> ``virtio_net`` (modprobe's normal form)."""
    base = os.path.basename(path_or_name)
    for ext in (*_COMPRESSED, ".ko"):
        if base.endswith(ext):
            base = base[: -len(ext)]
            break
    return base.replace("-", "_")


def _lines(path: str) -> list[str]:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return [ln.strip() for ln in f if ln.strip() and not ln.startswith("#")]
    except OSError:
        return []


def _literal_prefix(pattern: str) -> str:
    cut = min((i for i, ch in enumerate(pattern) if ch in _WILDCARDS), default=len(pattern))
    return pattern[:cut]


@dataclass(frozen=True)
class ModuleIndex:
    modroot: str
    paths: dict[str, str] = field(default_factory=dict)  # name -> absolute .ko path
    deps: dict[str, tuple[str, ...]] = field(default_factory=dict)
    # Alias patterns bucketed by their literal prefix, so matching one
    # modalias costs len(modalias) dict look-ups, not 30 000 fnmatch calls.
    aliases: dict[str, list[tuple[str, str]]] = field(default_factory=dict)
    softdep_pre: dict[str, tuple[str, ...]] = field(default_factory=dict)
    softdep_post: dict[str, tuple[str, ...]] = field(default_factory=dict)
    builtin: frozenset[str] = frozenset()

    @classmethod
    def load(cls, modroot: str) -> ModuleIndex:
        """Read the index under ``modroot`` (/lib/modules/$(uname -r)); missing files are empty."""
        idx = cls(modroot, builtin=_read_builtin(modroot))
        idx._read_dep()
        for name in ("modules.alias", "modules.builtin.alias"):
            idx._read_alias(os.path.join(modroot, name))
        idx._read_softdep()
        return idx

    @classmethod
    def load_all(cls, modroots: Iterable[str]) -> ModuleIndex:
        """Several trees of one kernel as one index; the first tree naming a module wins.

        Chain mode: the distro initramfs's /lib/modules (its NIC and disk
        drivers) plus mosnet's private tree (bridge, nftables), each with its
        own depmod index. A tree that is missing adds nothing.
        """
        roots = [r for r in modroots if os.path.isdir(r)] or list(modroots)[:1]
        merged = cls.load(roots[0]) if roots else cls("")
        for root in roots[1:]:
            extra = cls.load(root)
            for name, path in extra.paths.items():
                if name not in merged.paths:
                    merged.paths[name] = path
                    merged.deps[name] = extra.deps.get(name, ())
            for prefix, bucket in extra.aliases.items():
                merged.aliases.setdefault(prefix, []).extend(bucket)
            for table, more in ((merged.softdep_pre, extra.softdep_pre),
                                (merged.softdep_post, extra.softdep_post)):  # fmt: skip
                for name, mods in more.items():
                    table.setdefault(name, mods)
            object.__setattr__(merged, "builtin", merged.builtin | extra.builtin)
        return merged

    @classmethod
    def for_image(cls, kver: str) -> ModuleIndex:
        """Every tree an image of ours may hold for ``kver``, the kernel's first."""
        trees = ("/lib/modules", PRIVATE_MODULES, NETROOT_MODULES)
        return cls.load_all(f"{tree}/{kver}" for tree in trees)

    def _read_dep(self) -> None:
        for line in _lines(os.path.join(self.modroot, "modules.dep")):
            target, sep, rest = line.partition(":")
            if not sep:
                continue
            name = modname(target)
            self.paths[name] = os.path.join(self.modroot, target)
            self.deps[name] = tuple(modname(d) for d in rest.split())

    def _read_alias(self, path: str) -> None:
        for line in _lines(path):
            words = line.split()
            if len(words) == 3 and words[0] == "alias":
                bucket = self.aliases.setdefault(_literal_prefix(words[1]), [])
                bucket.append((words[1], modname(words[2])))

    def _read_softdep(self) -> None:
        for line in _lines(os.path.join(self.modroot, "modules.softdep")):
            words = line.split()
            if len(words) < 3 or words[0] != "softdep":
                continue
            pre: list[str] = []
            post: list[str] = []
            current = None
            for word in words[2:]:
                if word in ("pre:", "post:"):
                    current = pre if word == "pre:" else post
                elif current is not None:
                    current.append(modname(word))
            name = modname(words[1])
            self.softdep_pre[name] = (*self.softdep_pre.get(name, ()), *pre)
            self.softdep_post[name] = (*self.softdep_post.get(name, ()), *post)

    def known(self, name: str) -> bool:
        return name in self.paths or name in self.builtin

    def match_alias(self, text: str) -> tuple[str, ...]:
        """Modules whose alias pattern matches ``text``, each once.

        Order: patterns with a shorter literal prefix first, then file order.
        """
        found: dict[str, None] = {}
        for end in range(len(text) + 1):
            for pattern, mod in self.aliases.get(text[:end], ()):
                if fnmatch.fnmatchcase(text, pattern):
                    found[mod] = None
        return tuple(found)

    def resolve(self, name_or_alias: str) -> tuple[str, ...]:
        """A module name (``-`` or ``_``) resolves to itself, else through aliases."""
        name = modname(name_or_alias)
        if self.known(name):
            return (name,)
        return self.match_alias(name_or_alias)

    def closure(self, name: str) -> tuple[str, ...]:
        """``name`` and its hard dependencies, dependencies first."""
        order: list[str] = []
        seen: set[str] = set()

        def visit(mod: str) -> None:
            if mod in seen:
                return
            seen.add(mod)  # before recursing: a dependency cycle must not loop
            for dep in self.deps.get(mod, ()):
                visit(dep)
            order.append(mod)

        visit(name)
        return tuple(order)


def _read_builtin(modroot: str) -> frozenset[str]:
    return frozenset(modname(ln) for ln in _lines(os.path.join(modroot, "modules.builtin")))


def loaded_modules(proc_modules: str = "/proc/modules") -> set[str]:
    """Names in /proc/modules (first column)."""
    return {ln.split()[0] for ln in _lines(proc_modules)}


@dataclass(frozen=True)
class LoadReport:
    loaded: tuple[str, ...] = ()
    failed: tuple[tuple[str, str], ...] = ()  # (module, reason)
    unmatched: tuple[str, ...] = ()  # aliases/modaliases no module claims
    seconds: float = 0.0
    passes: int = 0


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
        flags = MODULE_INIT_COMPRESSED_FILE if path.endswith(_COMPRESSED) else 0
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError as exc:
            self._fail(mod, f"cannot open {path}: {exc.strerror}")
            return False
        try:
            self.finit(fd, "", flags)
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
