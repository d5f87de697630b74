"""In-memory model of the image: paths to nodes, then one cpio archive.

Every node carries a "part" label (dist, libraries, modules, ...) so the
builder can report where the bytes go. Adding the same node twice is a no-op
(the ELF closures of several binaries overlap); adding a different node at a
taken path is an error rather than a silent overwrite.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from initramfs.cpio import CpioEntry, write_newc
from initramfs.elf import resolve


class TreeError(Exception):
    """Two different nodes claim one path, or a path is not usable."""


@dataclass(frozen=True)
class Dir:
    mode: int = 0o755


@dataclass(frozen=True)
class File:
    mode: int
    source: Path | None = None
    data: bytes = b""


@dataclass(frozen=True)
class Symlink:
    target: str


@dataclass(frozen=True)
class Node:
    kind: str  # "c" or "b"
    major: int
    minor: int
    mode: int


Entry = Dir | File | Symlink | Node


def _norm(dst: str | PurePosixPath) -> PurePosixPath:
    path = PurePosixPath("/") / PurePosixPath(dst)
    if ".." in path.parts:
        raise TreeError(f"{dst}: '..' is not allowed in image paths")
    return path


class Tree:
    """Image contents keyed by absolute path inside the image."""

    def __init__(self) -> None:
        self._entries: dict[PurePosixPath, Entry] = {}
        self._parts: dict[PurePosixPath, str] = {}
        self._implicit: set[PurePosixPath] = set()

    def _put(self, dst: str | PurePosixPath, entry: Entry, part: str) -> None:
        path = _norm(dst)
        if path == PurePosixPath("/"):
            raise TreeError("the image root cannot be replaced")
        self._parents(path)
        old = self._entries.get(path)
        if old is not None and old != entry:
            if not (path in self._implicit and isinstance(entry, Dir)):
                raise TreeError(f"{path}: already holds {old}, cannot add {entry}")
        self._implicit.discard(path)
        self._entries[path] = entry
        self._parts.setdefault(path, part)

    def _parents(self, path: PurePosixPath) -> None:
        for parent in reversed(path.parents[:-1]):
            old = self._entries.get(parent)
            if old is None:
                self._entries[parent] = Dir()
                self._parts[parent] = "other"
                self._implicit.add(parent)
            elif not isinstance(old, Dir):
                raise TreeError(f"{path}: parent {parent} is not a directory")

    def add_dir(self, dst: str | PurePosixPath, mode: int = 0o755) -> None:
        self._put(dst, Dir(mode & 0o7777), "other")

    def add_bytes(
        self, dst: str | PurePosixPath, data: bytes, mode: int = 0o644, part: str = "other"
    ) -> None:
        self._put(dst, File(mode & 0o7777, data=data), part)

    def add_file(
        self, dst: str | PurePosixPath, src: Path, mode: int | None = None, part: str = "other"
    ) -> None:
        """Copy ``src`` (symlinks followed); keep its permissions unless ``mode``."""
        st = src.stat()
        if not stat.S_ISREG(st.st_mode):
            raise TreeError(f"{src}: not a regular file")
        perm = stat.S_IMODE(st.st_mode) if mode is None else mode & 0o7777
        self._put(dst, File(perm, source=src), part)

    def add_symlink(self, dst: str | PurePosixPath, target: str, part: str = "other") -> None:
        self._put(dst, Symlink(target), part)

    def add_node(
        self, dst: str | PurePosixPath, kind: str, major: int, minor: int, mode: int = 0o600
    ) -> None:
        if kind not in ("c", "b"):
            raise TreeError(f"{dst}: device kind must be 'c' or 'b', not {kind!r}")
        self._put(dst, Node(kind, major, minor, mode & 0o7777), "other")

    def add_tree(
        self,
        dst: str | PurePosixPath,
        src: Path,
        part: str = "other",
        skip: Collection[str] = (),
    ) -> None:
        """Copy a directory recursively, keeping symlinks as symlinks.

        ``skip``: file names (at any depth) left out of the image.
        """
        base = _norm(dst)
        self.add_dir(base, stat.S_IMODE(src.stat().st_mode))
        for dirpath, dirnames, filenames in os.walk(src):
            dirnames.sort()
            rel = Path(dirpath).relative_to(src)
            for name in sorted(dirnames + [f for f in filenames if f not in skip]):
                host = Path(dirpath) / name
                image = base / rel.as_posix() / name
                if host.is_symlink():
                    self.add_symlink(image, os.readlink(host), part)
                elif host.is_dir():
                    self.add_dir(image, stat.S_IMODE(host.stat().st_mode))
                else:
                    self.add_file(image, host, part=part)

    def add_elf(
        self,
        dst: str | PurePosixPath,
        src: Path,
        sysroot: Path = Path("/"),
        extra_dirs: Sequence[str] = (),
        part: str = "other",
        provided: Sequence[str] = (),
        mode: int | None = None,
    ) -> None:
        """Add ``src`` at ``dst`` plus the libraries it needs (part "libraries")."""
        image = _norm(dst)
        closure = resolve([src], sysroot, extra_dirs, placed={src: image}, provided=provided)
        for lib in closure.files:
            if lib.image_path == image:
                self.add_file(image, src, mode=mode, part=part)
            else:
                self.add_file(lib.image_path, lib.source, part="libraries")
        for link in closure.links:
            self.add_symlink(link.image_path, link.target, part="libraries")

    def get(self, dst: str | PurePosixPath) -> Entry | None:
        return self._entries.get(_norm(dst))

    def items(self) -> Iterator[tuple[PurePosixPath, Entry]]:
        yield from sorted(self._entries.items())

    def sizes_by_part(self) -> dict[str, int]:
        """Content bytes per part label (file data and symlink targets)."""
        sizes: dict[str, int] = {}
        for path, entry in self._entries.items():
            part = self._parts[path]
            sizes[part] = sizes.get(part, 0) + _content_size(entry)
        return dict(sorted(sizes.items()))


def _content_size(entry: Entry) -> int:
    if isinstance(entry, File):
        return entry.source.stat().st_size if entry.source is not None else len(entry.data)
    if isinstance(entry, Symlink):
        return len(entry.target.encode())
    return 0


def to_cpio_entry(path: PurePosixPath, entry: Entry) -> CpioEntry:
    name = str(path).lstrip("/")
    if isinstance(entry, Dir):
        return CpioEntry(name, stat.S_IFDIR | entry.mode)
    if isinstance(entry, File):
        return CpioEntry(name, stat.S_IFREG | entry.mode, data=entry.data, source=entry.source)
    if isinstance(entry, Symlink):
        return CpioEntry(name, stat.S_IFLNK | 0o777, data=entry.target.encode())
    kind = stat.S_IFCHR if entry.kind == "c" else stat.S_IFBLK
    return CpioEntry(name, kind | entry.mode, rdev=(entry.major, entry.minor))


def write_cpio(tree: Tree, fileobj: BinaryIO, epoch: int) -> int:
    """Write ``tree`` as a reproducible newc archive; return its size."""
    return write_newc(fileobj, (to_cpio_entry(p, e) for p, e in tree.items()), epoch)
