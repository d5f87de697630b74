"""Shared-library closure of ELF files, read with pyelftools instead of ldd.

ldd executes the target's loader, which is unsafe for foreign trees and does
not work on a sysroot. We replay the loader's search instead: PT_INTERP,
DT_NEEDED, DT_RPATH/DT_RUNPATH (with $ORIGIN and $LIB) and the default
directories, all under an optional sysroot. Paths inside the image keep the
directory layout the loader will search, and symlinks on the way (such as
/lib64/ld-linux-x86-64.so.2) are recorded as symlinks next to their target.
"""

from __future__ import annotations

import os
import posixpath
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from elftools.common.exceptions import ELFError
from elftools.elf.dynamic import DynamicSection
from elftools.elf.elffile import ELFFile
from elftools.elf.segments import InterpSegment

DEFAULT_DIRS: tuple[str, ...] = (
    "/lib/x86_64-linux-gnu",
    "/usr/lib/x86_64-linux-gnu",
    "/lib64",
    "/usr/lib",
    "/lib",
)
_MAX_LINKS = 40


class ElfError(Exception):
    """The closure of an ELF file could not be computed."""


class MissingLibraryError(ElfError):
    """A DT_NEEDED library (or the interpreter) is nowhere on the search path."""

    def __init__(self, library: str, needed_by: str) -> None:
        self.library = library
        self.needed_by = needed_by
        super().__init__(f"{library}: not found (needed by {needed_by})")


@dataclass(frozen=True)
class LibFile:
    """A regular file to copy from ``source`` to ``image_path``."""

    image_path: PurePosixPath
    source: Path


@dataclass(frozen=True)
class LibLink:
    """A symlink the loader goes through: ``image_path`` -> ``target``."""

    image_path: PurePosixPath
    target: str


@dataclass(frozen=True)
class Closure:
    """Everything the inputs need at run time, roots included."""

    files: tuple[LibFile, ...]
    links: tuple[LibLink, ...]


@dataclass(frozen=True)
class _ElfInfo:
    ident: bytes  # class, data and machine: a library must match its user
    interp: str | None
    needed: tuple[str, ...]
    rpath: tuple[str, ...]
    runpath: tuple[str, ...]


@dataclass(frozen=True)
class _Place:
    """A path seen from both sides: on the build host and inside the image."""

    host: Path
    image: PurePosixPath


def read_elf(path: Path) -> _ElfInfo | None:
    """Parse the dynamic-linking facts of ``path``; None if it is not ELF."""
    try:
        with path.open("rb") as f:
            ident = _ident(f.read(20))
            if ident is None:
                return None
            f.seek(0)
            elf = ELFFile(f)
            interp = None
            for seg in elf.iter_segments():
                if isinstance(seg, InterpSegment):
                    interp = seg.get_interp_name()
            tags: dict[str, list[str]] = {"DT_NEEDED": [], "DT_RPATH": [], "DT_RUNPATH": []}
            for sec in elf.iter_sections():
                if isinstance(sec, DynamicSection):
                    _collect_tags(sec, tags)
            return _ElfInfo(
                ident=ident,
                interp=interp,
                needed=tuple(tags["DT_NEEDED"]),
                rpath=_split_paths(tags["DT_RPATH"]),
                runpath=_split_paths(tags["DT_RUNPATH"]),
            )
    except (ELFError, ValueError, OSError) as exc:
        raise ElfError(f"{path}: cannot read ELF: {exc}") from exc


def _ident(head: bytes) -> bytes | None:
    """EI_CLASS, EI_DATA and e_machine from the first 20 bytes; None if not ELF."""
    if len(head) < 20 or head[:4] != b"\x7fELF":
        return None
    return head[4:6] + head[18:20]


def _collect_tags(sec: DynamicSection, tags: dict[str, list[str]]) -> None:
    for tag in sec.iter_tags():
        kind = str(tag.entry.d_tag)
        if kind in tags:
            # pyelftools stores the decoded string as e.g. tag.needed
            tags[kind].append(str(getattr(tag, kind[3:].lower())))


def _split_paths(values: Iterable[str]) -> tuple[str, ...]:
    return tuple(p for v in values for p in v.split(":") if p)


def expand_origin(entry: str, origin: str) -> str:
    """Substitute the loader's dynamic string tokens in one search-path entry."""
    for token, value in (("ORIGIN", origin), ("LIB", "lib"), ("PLATFORM", "x86_64")):
        entry = entry.replace("${" + token + "}", value).replace("$" + token, value)
    return entry


class _Resolver:
    def __init__(self, sysroot: Path, extra_dirs: Sequence[str], provided: Collection[str]):
        self.sysroot = sysroot
        self.extra_dirs = tuple(extra_dirs)
        self.provided = frozenset(provided)
        self.files: dict[PurePosixPath, LibFile] = {}
        self.links: dict[PurePosixPath, LibLink] = {}
        self.todo: list[tuple[_Place, _ElfInfo]] = []

    def in_sysroot(self, image_path: str) -> _Place:
        image = PurePosixPath(posixpath.normpath(image_path))
        return _Place(self.sysroot / image.relative_to("/"), image)

    def follow(self, place: _Place) -> _Place:
        """Record symlinks from ``place`` on; return the final regular file."""
        for _ in range(_MAX_LINKS):
            if not place.host.is_symlink():
                return place
            target = os.readlink(place.host)
            self.links[place.image] = LibLink(place.image, target)
            if target.startswith("/"):
                place = self.in_sysroot(target)
            else:
                image = posixpath.normpath(str(place.image.parent / target))
                place = _Place(place.host.parent / target, PurePosixPath(image))
        raise ElfError(f"{place.host}: too many levels of symbolic links")

    def add(self, place: _Place, info: _ElfInfo | None = None) -> None:
        real = self.follow(place)
        if real.image in self.files:
            return
        self.files[real.image] = LibFile(real.image, real.host)
        info = info if info is not None else read_elf(real.host)
        if info is not None:
            self.todo.append((place, info))

    def search_dirs(self, user: _Place, info: _ElfInfo) -> list[_Place]:
        origin = _Place(user.host.parent, user.image.parent)
        # DT_RUNPATH, when present, disables DT_RPATH (ld.so semantics).
        listed = info.runpath if info.runpath else info.rpath
        dirs: list[_Place] = []
        for entry in listed:
            if "$ORIGIN" in entry or "${ORIGIN}" in entry:
                rel = expand_origin(entry, ".")
                image = posixpath.normpath(str(origin.image / rel))
                dirs.append(_Place(origin.host / rel, PurePosixPath(image)))
            else:
                dirs.append(self.in_sysroot(expand_origin(entry, "")))
        dirs.extend(self.in_sysroot(d) for d in (*self.extra_dirs, *DEFAULT_DIRS))
        return dirs

    def find(self, name: str, user: _Place, info: _ElfInfo) -> _Place:
        for d in self.search_dirs(user, info):
            cand = _Place(d.host / name, d.image / name)
            if cand.host.is_file() and _compatible(cand.host, info):
                return cand
        raise MissingLibraryError(name, str(user.image))

    def run(self) -> Closure:
        while self.todo:
            user, info = self.todo.pop(0)
            if info.interp is not None:
                interp = self.in_sysroot(info.interp)
                if not interp.host.is_file():
                    raise MissingLibraryError(info.interp, str(user.image))
                self.add(interp)
            for name in info.needed:
                if name not in self.provided:
                    self.add(self.find(name, user, info))
        return Closure(
            files=tuple(sorted(self.files.values(), key=lambda f: f.image_path)),
            links=tuple(sorted(self.links.values(), key=lambda f: f.image_path)),
        )


def _compatible(path: Path, user: _ElfInfo) -> bool:
    """Skip libraries of another class/machine, as ld.so does (e.g. i386 libs)."""
    with path.open("rb") as f:
        return _ident(f.read(20)) == user.ident


def resolve(
    paths: Iterable[Path],
    sysroot: Path = Path("/"),
    extra_dirs: Sequence[str] = (),
    placed: Mapping[Path, PurePosixPath] | None = None,
    provided: Collection[str] = (),
) -> Closure:
    """Compute the run-time closure of ``paths``.

    ``placed`` gives the image path of roots that do not live at their
    sysroot-relative path (e.g. a Nuitka dist copied to /usr/lib/mosnet); it
    matters for $ORIGIN. Other roots under ``sysroot`` keep their relative
    path; roots elsewhere keep their host path. ``extra_dirs`` are searched
    (inside the sysroot) before the default directories. Sonames listed in
    ``provided`` are shipped by the caller and neither searched nor returned.
    Non-ELF roots are returned as plain files with no dependencies.
    """
    res = _Resolver(sysroot, extra_dirs, provided)
    where = placed or {}
    for path in paths:
        image = where.get(path)
        if image is None:
            image = _default_image_path(path, sysroot)
        info = read_elf(path)
        # Roots are copied with their content, never as symlinks.
        res.files.setdefault(image, LibFile(image, path))
        if info is not None:
            res.todo.append((_Place(path, image), info))
    return res.run()


def _default_image_path(path: Path, sysroot: Path) -> PurePosixPath:
    absolute = path.absolute()
    try:
        return PurePosixPath("/") / absolute.relative_to(sysroot.absolute())
    except ValueError:
        return PurePosixPath(absolute)


def is_elf(path: Path) -> bool:
    """True if ``path`` is a regular file starting with the ELF magic."""
    if path.is_symlink() or not path.is_file():
        return False
    with path.open("rb") as f:
        return _ident(f.read(20)) is not None
