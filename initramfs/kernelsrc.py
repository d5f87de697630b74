"""Which kernel the image is built for: ``build.sh --kernel SOURCE``.

A source is one of
  * a Debian package name, ``linux-image-6.1.0-57-amd64`` or the
    ``linux-image-amd64`` meta-package; ``NAME@SUITE`` (``@trixie``) looks it
    up in that Debian release through apt lists the project keeps under
    ``.cache/apt/SUITE``, never the system's sources;
  * a local ``linux-image-*.deb`` (Debian's, or Ubuntu's next to its
    ``linux-modules-*.deb``);
  * an installed kernel: ``installed`` (the running one), a release that has
    ``/lib/modules/RELEASE``, or a module tree ``<root>/lib/modules/RELEASE``
    with ``<root>/boot/vmlinuz-RELEASE``.
Each becomes ``.cache/kernel/<key>/root`` holding ``lib/modules/<kver>``
(Debian 13's merged-/usr ``usr/lib/modules`` is linked there) and
``boot/vmlinuz-<kver>``; ``.cache/kernel/current`` points at it. Compressed
modules need nothing here: kmod.stage_modules decompresses what it packs.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from initramfs.kmod import KmodError, decompress_module, run_depmod
from mosnet.base import children
from mosnet.base.children import Ran

PACKAGE = re.compile(r"linux-image-[a-z0-9][a-z0-9.+~-]*")
SUITE = re.compile(r"[a-z][a-z0-9-]*")
KVER = re.compile(r"[0-9][A-Za-z0-9._+~-]*")
LINK = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
INSTALLED_WORDS = ("installed", "running", "host")
DEFAULT_META = "linux-image-amd64"

Run = Callable[[Sequence[str], Path], Ran]


class KernelSourceError(Exception):
    """A kernel source that cannot be used; the message is one line."""


@dataclass(frozen=True)
class KernelSource:
    kind: str  # "package", "deb" or "installed"
    value: str  # package name, .deb path, or release
    suite: str = ""  # package only: a Debian release other than the system's
    tree: Path | None = None  # installed only: the root holding lib/modules


@dataclass(frozen=True)
class KernelTree:
    kver: str
    root: Path  # root/lib/modules/<kver> and root/boot/vmlinuz-<kver>
    origin: str

    @property
    def vmlinuz(self) -> Path:
        return self.root / "boot" / f"vmlinuz-{self.kver}"


def parse_source(text: str, modules: Path = Path("/lib/modules")) -> KernelSource:
    """Classify ``--kernel`` TEXT; raises KernelSourceError naming it."""
    if not text.strip():
        raise KernelSourceError("--kernel : empty; expected a package, a .deb or a release")
    if text in INSTALLED_WORDS:
        return KernelSource("installed", os.uname().release, tree=modules.parent.parent)
    path = Path(text)
    if path.is_file():
        if not path.name.endswith(".deb"):
            raise KernelSourceError(f"--kernel {text}: a file must be a linux-image-*.deb")
        return KernelSource("deb", str(path.resolve()))
    if path.is_dir():
        return _tree_source(text, path.resolve())
    if KVER.fullmatch(text) and (modules / text).is_dir():
        return KernelSource("installed", text, tree=modules.parent.parent)
    name, at, suite = text.partition("@")
    if PACKAGE.fullmatch(name) and (not at or SUITE.fullmatch(suite)):
        return KernelSource("package", name, suite=suite)
    raise KernelSourceError(
        f"--kernel {text}: not a linux-image package, a .deb file, an installed "
        "release (see /lib/modules) or a <root>/lib/modules/<release> tree"
    )


def _tree_source(text: str, path: Path) -> KernelSource:
    parts = path.parts
    if len(parts) >= 3 and parts[-3:-1] == ("lib", "modules"):
        root = path.parents[2]
        if root.name == "usr":
            root = root.parent
        return KernelSource("installed", path.name, tree=root)
    raise KernelSourceError(f"--kernel {text}: a directory must be <root>/lib/modules/<release>")


def default_source() -> KernelSource:
    """What the build uses without ``--kernel``: MOSNET_KERNEL_PKG or Debian's meta-package."""
    pkg = os.environ.get("MOSNET_KERNEL_PKG", "")
    return parse_source(pkg) if pkg else KernelSource("package", DEFAULT_META)


def run_tool(argv: Sequence[str], cwd: Path) -> Ran:
    """The project's one runner, in CWD (made first: the cache is new on a fresh checkout)."""
    cwd.mkdir(parents=True, exist_ok=True)
    ran = children.run(argv, timeout=900, cwd=str(cwd))
    if ran.failure == "missing":
        raise KernelSourceError(f"{argv[0]} not found: install it (apt-get install dpkg apt)")
    if ran.failure is not None:
        raise KernelSourceError(f"{argv[0]}: {ran.error}")
    return ran


def _last_line(text: str) -> str:
    lines = [ln for ln in text.strip().splitlines() if ln.strip()]
    return lines[-1] if lines else "no output"


def prepare(
    src: KernelSource, cache: Path, link: str = "current", run: Run = run_tool
) -> KernelTree:
    """Make ``cache/<key>/root`` for SRC and point ``cache/<link>`` at it."""
    if not LINK.fullmatch(link) or link.startswith(("file-", "installed-", "linux-image-")):
        raise KernelSourceError(f"kernel link name {link!r}: expected letters, digits, . _ -")
    cache.mkdir(parents=True, exist_ok=True)
    if src.kind == "installed":
        tree = _prepare_installed(src, cache)
    elif src.kind == "deb":
        debs = _with_module_debs(Path(src.value))
        top = cache / ("file-" + _digest(debs))
        tree = _cached(top) or _prepare_debs(debs, top, f"file {debs[0]}", run)
    else:
        apt = Apt(cache.parent / "apt", src.suite, run)
        name = apt.resolve(src.value)
        where = f"package {name}" + (f" ({src.suite})" if src.suite else "")
        top = cache / name
        tree = _cached(top) or _prepare_debs(apt.download(name, top), top, where, run)
    current = cache / link
    tmp = cache / f".{link}.tmp"
    tmp.unlink(missing_ok=True)
    tmp.symlink_to(tree.root.parent.name)
    tmp.replace(current)
    return tree


def _digest(debs: list[Path]) -> str:
    h = hashlib.sha256()
    for deb in debs:
        with deb.open("rb") as f:
            h.update(hashlib.file_digest(f, "sha256").digest())
    return h.hexdigest()[:16]


def _cached(top: Path) -> KernelTree | None:
    ready = top / ".ready"
    if not ready.is_file():
        return None
    kver = ready.read_text().strip()
    return KernelTree(kver, top / "root", (top / ".origin").read_text().strip())


def _finish(top: Path, kver: str, origin: str) -> KernelTree:
    (top / ".origin").write_text(origin + "\n")
    (top / ".ready").write_text(kver + "\n")
    return KernelTree(kver, top / "root", origin)


def _prepare_installed(src: KernelSource, cache: Path) -> KernelTree:
    assert src.tree is not None
    kver = src.value
    moddir = _modules_dir(src.tree, kver)
    vmlinuz = src.tree / "boot" / f"vmlinuz-{kver}"
    if moddir is None:
        raise KernelSourceError(f"kernel {kver}: no module tree {src.tree / 'lib/modules' / kver}")
    if not vmlinuz.is_file():
        raise KernelSourceError(f"kernel {kver}: no {vmlinuz} next to its modules")
    if not (moddir / "modules.dep").is_file():
        # depmod would write into the installed tree: that is the system's job
        raise KernelSourceError(f"kernel {kver}: {moddir} has no modules.dep (run: depmod {kver})")
    top = cache / f"installed-{kver}"
    root = top / "root"
    shutil.rmtree(top, ignore_errors=True)
    (root / "lib" / "modules").mkdir(parents=True)
    (root / "boot").mkdir()
    (root / "lib" / "modules" / kver).symlink_to(moddir)
    (root / "boot" / f"vmlinuz-{kver}").symlink_to(vmlinuz.resolve())
    config = src.tree / "boot" / f"config-{kver}"
    if config.is_file():
        (root / "boot" / config.name).symlink_to(config.resolve())
    return _finish(top, kver, f"installed {moddir}")


def _modules_dir(root: Path, kver: str) -> Path | None:
    for sub in ("lib/modules", "usr/lib/modules"):
        if (root / sub / kver).is_dir():
            return (root / sub / kver).resolve()
    return None


def _with_module_debs(image: Path) -> list[Path]:
    """An Ubuntu image package carries no modules: take its siblings that do."""
    m = re.fullmatch(r"linux-image-(?:unsigned-)?([0-9][^_]*)_.*\.deb", image.name)
    if not m:
        return [image]
    kver = m[1]
    siblings = [p for p in sorted(image.parent.glob(f"linux-modules-*{kver}_*.deb")) if p != image]
    return [image, *siblings]


def _prepare_debs(debs: list[Path], top: Path, origin: str, run: Run) -> KernelTree:
    """Unpack DEBS (kept in top/deb, which qemu/debroot.sh installs) into top/root."""
    root = top / "root"
    (top / ".ready").unlink(missing_ok=True)
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    _keep_debs(debs, top / "deb")
    for deb in debs:
        res = run(["dpkg-deb", "-x", str(deb), str(root)], top)
        if res.returncode != 0:
            raise KernelSourceError(f"{deb.name}: not a package: {_last_line(res.stderr)}")
    _link_merged_usr(root)
    kver = _single_release(root, debs[0].name)
    _decompress_gzip(root / "lib" / "modules" / kver)
    if not (root / "boot" / f"vmlinuz-{kver}").is_file():
        raise KernelSourceError(
            f"{debs[0].name}: no boot/vmlinuz-{kver}: not a kernel image package"
        )
    if not (root / "lib" / "modules" / kver / "modules.dep").is_file():
        try:
            run_depmod(root, kver)
        except KmodError as exc:
            raise KernelSourceError(str(exc).splitlines()[0]) from exc
    return _finish(top, kver, origin)


def _keep_debs(debs: list[Path], keep: Path) -> None:
    if keep.is_dir() and all(d.parent == keep for d in debs):
        return
    shutil.rmtree(keep, ignore_errors=True)
    keep.mkdir()
    for deb in debs:
        (keep / deb.name).symlink_to(deb.resolve())


def _decompress_gzip(moddir: Path) -> None:
    """Debian's depmod reads .ko.xz and .ko.zst but not .ko.gz (kmod -ZLIB)."""
    gz = sorted(moddir.rglob("*.ko.gz"))
    for path in gz:
        try:
            path.with_name(path.name[:-3]).write_bytes(decompress_module(path))
        except KmodError as exc:
            raise KernelSourceError(str(exc)) from exc
        path.unlink()
    if gz:
        (moddir / "modules.dep").unlink(missing_ok=True)  # it named the .gz files


def _link_merged_usr(root: Path) -> None:
    """Debian 13 packages ship usr/lib/modules; the builder reads lib/modules."""
    usr = root / "usr" / "lib" / "modules"
    lib = root / "lib" / "modules"
    if usr.is_dir() and not lib.exists():
        lib.parent.mkdir(parents=True, exist_ok=True)
        lib.symlink_to(Path("..") / "usr" / "lib" / "modules")


def _single_release(root: Path, name: str) -> str:
    moddir = root / "lib" / "modules"
    found = (
        sorted(p.name for p in moddir.iterdir() if (p / "kernel").is_dir())
        if moddir.is_dir()
        else []
    )
    if not found:
        hint = " (Ubuntu: put its linux-modules-*.deb next to it)" if name.endswith(".deb") else ""
        raise KernelSourceError(f"{name}: no lib/modules/<release>/kernel tree{hint}")
    if len(found) > 1:
        raise KernelSourceError(f"{name}: several module trees: {', '.join(found)}")
    return found[0]


class Apt:
    """apt-get/apt-cache, on the system's lists or on a private suite's."""

    def __init__(self, state: Path, suite: str, run: Run) -> None:
        self.state, self.suite, self.run = state / (suite or "system"), suite, run

    def _options(self) -> list[str]:
        if not self.suite:
            return []
        lists, sources = self.state / "lists", self.state / "sources.list"
        (lists / "partial").mkdir(parents=True, exist_ok=True)
        mirror = os.environ.get("MOSNET_DEBIAN_MIRROR", "http://deb.debian.org/debian")
        sources.write_text(f"deb {mirror} {self.suite} main\n")
        return [
            f"-oDir::Etc::sourcelist={sources}", "-oDir::Etc::sourceparts=-",
            f"-oDir::State::Lists={lists}", f"-oDir::Cache={self.state / 'cache'}",
            "-oAPT::Get::List-Cleanup=0",
        ]  # fmt: skip

    def _call(self, tool: str, args: list[str], cwd: Path) -> Ran:
        # _apt cannot write into a checkout under /root: download as root, no warning
        sandbox = ["-oAPT::Sandbox::User=root"] if tool == "apt-get" else []
        return self.run([tool, *sandbox, *self._options(), *args], cwd)

    def update(self) -> None:
        (self.state / "cache").mkdir(parents=True, exist_ok=True)
        res = self._call("apt-get", ["update", "-q"], self.state)
        if res.returncode != 0:
            raise KernelSourceError(
                f"apt-get update ({self.suite or 'system'}): {_last_line(res.stderr)}"
            )

    def resolve(self, name: str) -> str:
        """A meta-package (linux-image-amd64) to the versioned one it depends on."""
        if re.search(r"-[0-9]", name):
            return name
        for attempt in (0, 1):
            if attempt or (self.suite and not (self.state / "lists").is_dir()):
                self.update()
            res = self._call("apt-cache", ["depends", name], self.state)
            m = re.search(r"^\s*Depends: (linux-image-[0-9]\S*)$", res.stdout, re.M)
            if m:
                return m[1]
        raise KernelSourceError(f"package {name}: apt knows no linux-image it depends on")

    def download(self, name: str, top: Path) -> list[Path]:
        debs = top / "deb"
        shutil.rmtree(debs, ignore_errors=True)
        debs.mkdir(parents=True)
        res = self._call("apt-get", ["download", name], debs)
        if res.returncode != 0:
            self.update()
            res = self._call("apt-get", ["download", name], debs)
        if res.returncode != 0:
            raise KernelSourceError(
                f"package {name}: apt-get download failed: {_last_line(res.stderr)}"
            )
        return sorted(debs.glob("*.deb"))
