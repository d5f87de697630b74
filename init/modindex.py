"""The depmod index of a kernel's module trees: names, paths, dependencies, aliases.

``ModuleIndex`` reads the text files depmod writes (modules.dep, .alias,
.softdep, .builtin) under one or more trees of one kernel and answers what a
name or modalias resolves to and what a module needs first. Pure lookups:
nothing here loads a module (that is ``init.modules``). A missing or
unreadable file reads as empty.
"""

from __future__ import annotations

import fnmatch
import os
from collections.abc import Iterable
from dataclasses import dataclass, field

COMPRESSED = (".ko.xz", ".ko.zst", ".ko.gz")
_WILDCARDS = "*?["
# Trees beside the kernel's own, each with its own depmod index: the append
# image's network-stack modules (chain mode, build.sh --append) and the
# netroot add-on's NFS client (initramfs/netrootaddon.py).
PRIVATE_MODULES = "/usr/lib/mosnet/modules"
NETROOT_MODULES = "/usr/lib/mosnet/netroot"


def modname(path_or_name: str) -> str:
    """``kernel/drivers/net/virtio-net.ko.xz`` -> ``virtio_net`` (modprobe's normal form)."""
    base = os.path.basename(path_or_name)
    for ext in (*COMPRESSED, ".ko"):
        if base.endswith(ext):
            base = base[: -len(ext)]
            break
    return base.replace("-", "_")


def lines(path: str) -> list[str]:
    """The stripped, non-empty, non-comment lines of a text file; [] if unreadable."""
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
        for line in lines(os.path.join(self.modroot, "modules.dep")):
            target, sep, rest = line.partition(":")
            if not sep:
                continue
            name = modname(target)
            self.paths[name] = os.path.join(self.modroot, target)
            self.deps[name] = tuple(modname(d) for d in rest.split())

    def _read_alias(self, path: str) -> None:
        for line in lines(path):
            words = line.split()
            if len(words) == 3 and words[0] == "alias":
                bucket = self.aliases.setdefault(_literal_prefix(words[1]), [])
                bucket.append((words[1], modname(words[2])))

    def _read_softdep(self) -> None:
        for line in lines(os.path.join(self.modroot, "modules.softdep")):
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
    return frozenset(modname(ln) for ln in lines(os.path.join(modroot, "modules.builtin")))
