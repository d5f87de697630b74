"""Can this init run inside the new root? Answered before anything is deleted.

A file with an x bit is not proof: ``#!/nonexistent/sh`` passes that test and
``execve`` then fails with ENOENT after the initramfs is gone. So the checks
replay what the kernel's ``execve`` will do after the chroot, with every path
resolved inside the new root:

* ELF (fs/binfmt_elf.c): built for this machine (class, byte order,
  e_machine), ET_EXEC or ET_DYN, a sane program header table, and a PT_INTERP
  (the dynamic loader) that is a regular executable ELF for the same machine.
* ``#!`` script (fs/binfmt_script.c): the interpreter taken from the first
  256 bytes as the kernel splits them, itself runnable by these same rules,
  at most ``SCRIPT_DEPTH`` scripts deep (fs/exec.c gives ELOOP after that).
* Anything else (no magic, empty, unreadable, a directory) is refused.

Not checked: the shared libraries a dynamic init needs (DT_NEEDED). ld.so
finds them through ld.so.cache, RUNPATH and hwcaps directories; replaying
that risks refusing a good init, which strands the machine just as surely.
"""

from __future__ import annotations

import contextlib
import os
import stat
import struct
from dataclasses import dataclass

from mosnet.base.errors import MosnetError, shown

# The kernel's own fallback order when no init= is given (init/main.c).
INIT_CANDIDATES = ("/sbin/init", "/etc/init", "/bin/init", "/bin/sh")
RESCUE_SHELL = "/bin/sh"
SCRIPT_DEPTH = 5  # fs/exec.c exec_binprm: ELOOP on the 6th '#!' in a row
BINPRM_BUF_SIZE = 256  # bytes of a file the kernel looks at for '#!'
PATH_MAX = 4096
MAX_PHDR_BYTES = 65536  # fs/binfmt_elf.c load_elf_phdrs: ELF_MIN_ALIGN bound
_MAX_SYMLINKS = 40  # same limit as the kernel's path walk
ET_EXEC, ET_DYN, PT_INTERP = 2, 3, 3
_BLANKS = b" \t"

# (uname -m) -> ELF identities the kernel runs: (class, byte order, e_machine);
# compat modes (i386 on x86-64, arm on arm64) where the distro kernels have them.
_NATIVE: dict[str, tuple[tuple[int, int, int], ...]] = {
    "x86_64": ((2, 1, 62), (1, 1, 3), (1, 1, 62)),
    "i386": ((1, 1, 3),),
    "i486": ((1, 1, 3),),
    "i586": ((1, 1, 3),),
    "i686": ((1, 1, 3),),
    "aarch64": ((2, 1, 183), (1, 1, 40)),
    "armv7l": ((1, 1, 40),),
    "armv6l": ((1, 1, 40),),
    "riscv64": ((2, 1, 243),),
    "ppc64le": ((2, 1, 21),),
    "ppc64": ((2, 2, 21),),
    "s390x": ((2, 2, 22),),
    "loongarch64": ((2, 1, 258),),
}
_MACHINE_NAMES = {3: "i386", 21: "PowerPC64", 22: "S/390", 40: "ARM", 62: "x86-64"}
_MACHINE_NAMES |= {183: "AArch64", 243: "RISC-V", 258: "LoongArch"}


class NotRunnable(MosnetError):
    """The kernel would refuse to exec this file in the new root; says why."""


@dataclass(frozen=True)
class ElfId:
    """What binfmt_elf compares with the running kernel."""

    elf_class: int  # 1: 32-bit, 2: 64-bit
    data: int  # 1: little endian, 2: big endian
    machine: int  # e_machine

    def __str__(self) -> str:
        order = {1: "LSB", 2: "MSB"}.get(self.data, f"data {self.data}")
        name = _MACHINE_NAMES.get(self.machine, f"machine {self.machine}")
        return f"ELF{32 * self.elf_class} {order} {name}"


@dataclass(frozen=True)
class ElfInfo:
    ident: ElfId
    e_type: int
    interp: str | None  # PT_INTERP, or None for a static binary


@dataclass(frozen=True)
class Shebang:
    interpreter: str
    argument: str | None


@dataclass(frozen=True)
class Runnable:
    """An init the kernel will run: its path, where it leads, how it runs."""

    path: str
    resolved: str
    how: str  # e.g. "ELF64 LSB x86-64 via '/lib64/ld-linux-x86-64.so.2'"


@dataclass(frozen=True)
class InitChoice:
    """The init to exec, the ones to try after it, and why others were refused."""

    init: Runnable
    later: tuple[str, ...]  # candidates after it, for a failed exec after the wipe
    refused: tuple[tuple[str, str], ...]  # (path, reason), in the order tried


def machine_ids(exe: str = "/proc/self/exe") -> frozenset[ElfId]:
    """The identities this kernel runs: its native ones and our own binary's."""
    ids = {ElfId(*t) for t in _NATIVE.get(os.uname().machine, ())}
    with contextlib.suppress(OSError, NotRunnable):
        fd = os.open(exe, os.O_RDONLY | os.O_CLOEXEC)
        try:
            ids.add(read_elf(fd, exe).ident)  # it runs: proof enough
        finally:
            os.close(fd)
    return frozenset(ids)


def resolve_in_root(root: str, path: str) -> str:
    """Resolve ``path`` as the kernel will after chroot(root), symlinks included.

    Absolute link targets restart at ``root`` (not at our current ``/``), and a
    ``..`` that would climb above ``root`` is refused rather than clamped: a
    link like that is broken or hostile, and we only get one try. Returns the
    resolved path relative to ``root``, as an absolute path.
    """
    todo = [p for p in path.split("/") if p]
    done: list[str] = []
    links = 0
    while todo:
        part = todo.pop(0)
        if part == ".":
            continue
        if part == "..":
            if not done:
                raise NotRunnable(f"{shown(path)}: a '..' escapes the new root {root}")
            done.pop()
            continue
        host = os.path.join(root, *done, part)
        try:
            st = os.lstat(host)
        except OSError as e:
            raise NotRunnable(f"{shown(path)}: {shown(host)} does not exist ({e.strerror})") from e
        if not stat.S_ISLNK(st.st_mode):
            done.append(part)
            continue
        links += 1
        if links > _MAX_SYMLINKS:
            raise NotRunnable(f"{shown(path)}: too many levels of symbolic links")
        target = os.readlink(host)
        if target.startswith("/"):
            done = []
        todo = [p for p in target.split("/") if p] + todo
    return "/" + "/".join(done)


def _pread(fd: int, size: int, offset: int, what: str) -> bytes:
    data = os.pread(fd, size, offset)
    if len(data) != size:
        raise NotRunnable(f"{what} is cut short at byte {offset + len(data)}")
    return data


def _phdr_table(fd: int, order: str, wide: bool, head: bytes, name: str) -> list[tuple[int, ...]]:
    """(p_type, p_offset, p_filesz) of each program header, checked like the kernel."""
    if wide:
        phoff, phentsize, phnum = struct.unpack_from(order + "32xQ14xHH", head)
        entry, size = order + "I4xQ16xQ16x", 56
    else:
        phoff, phentsize, phnum = struct.unpack_from(order + "28xI10xHH", head)
        entry, size = order + "II8xI12x", 32
    if phentsize != size or not 0 < phnum * size <= MAX_PHDR_BYTES:
        raise NotRunnable(f"{name}: bad program header table ({phnum} x {phentsize} bytes)")
    table = _pread(fd, phnum * size, phoff, f"{name}: program header table")
    return [struct.unpack_from(entry, table, i * size) for i in range(phnum)]


def _interp(fd: int, phdrs: list[tuple[int, ...]], name: str) -> str | None:
    for p_type, offset, filesz in phdrs:
        if p_type != PT_INTERP:
            continue
        if not 2 <= filesz <= PATH_MAX:
            raise NotRunnable(f"{name}: PT_INTERP of {filesz} bytes")
        raw = _pread(fd, filesz, offset, f"{name}: PT_INTERP")
        if raw[-1] != 0:
            raise NotRunnable(f"{name}: PT_INTERP is not NUL-terminated")
        return raw.split(b"\0", 1)[0].decode("utf-8", "surrogateescape")
    return None


def read_elf(fd: int, name: str) -> ElfInfo:
    """The parts of an ELF header that decide whether the kernel loads it."""
    head = os.pread(fd, 64, 0)
    if len(head) < 52 or head[:4] != b"\x7fELF":
        raise NotRunnable(f"{name}: not an ELF file")
    elf_class, data = head[4], head[5]
    if elf_class not in (1, 2) or data not in (1, 2) or (elf_class == 2 and len(head) < 64):
        raise NotRunnable(f"{name}: bad ELF identification (class {elf_class}, data {data})")
    order = "<" if data == 1 else ">"
    e_type, machine = struct.unpack_from(order + "HH", head, 16)
    phdrs = _phdr_table(fd, order, elf_class == 2, head, name)
    return ElfInfo(ElfId(elf_class, data, machine), e_type, _interp(fd, phdrs, name))


def _next_non_blank(buf: bytes, first: int, last: int) -> int | None:
    return next((i for i in range(first, last + 1) if buf[i] not in _BLANKS), None)


def _next_terminator(buf: bytes, first: int, last: int) -> int | None:
    return next((i for i in range(first, last + 1) if buf[i] in b" \t\0"), None)


def _c_string(buf: bytes, start: int, end: int) -> str:
    return buf[start:end].split(b"\0", 1)[0].decode("utf-8", "surrogateescape")


def parse_shebang(head: bytes) -> Shebang:
    """Split a ``#!`` line the way fs/binfmt_script.c does (Linux >= 5.1).

    Only the first 256 bytes count. Without a newline in them the line is
    accepted only if a blank or NUL ends the interpreter's name inside them
    (the kernel would otherwise run a truncated path). Everything after the
    name's first blank, trailing blanks cut, is one single argument.
    """
    buf = head[:BINPRM_BUF_SIZE].ljust(BINPRM_BUF_SIZE, b"\0")
    last = BINPRM_BUF_SIZE - 1
    nul = buf.find(b"\0")  # strnchr stops at the first NUL
    line_end = buf.find(b"\n", 0, nul if nul >= 0 else BINPRM_BUF_SIZE)
    if line_end < 0:
        first = _next_non_blank(buf, 2, last)
        if first is None:
            raise NotRunnable("the #! line is all blanks")
        if _next_terminator(buf, first, last) is None:
            raise NotRunnable(f"the #! line is longer than {last} bytes (interpreter cut off)")
        line_end = last
    while buf[line_end - 1] in _BLANKS:
        line_end -= 1
    name = _next_non_blank(buf, 2, line_end)
    if name is None or name == line_end:
        raise NotRunnable("no interpreter after #!")
    sep = _next_terminator(buf, name, line_end)
    arg = None
    if sep is not None and buf[sep] != 0:
        arg = _next_non_blank(buf, sep, line_end)
    interpreter = _c_string(buf, name, line_end if sep is None else sep)
    return Shebang(interpreter, None if arg is None else _c_string(buf, arg, line_end))


def _label(path: str, resolved: str) -> str:
    return shown(path) if path == resolved else f"{shown(path)} -> {shown(resolved)}"


def _open_exec(root: str, path: str) -> tuple[int, str, str]:
    """What open_exec() demands: a regular file, an x bit, no noexec mount.

    Returns the open fd, the path resolved inside ``root`` and a label for messages.
    """
    resolved = resolve_in_root(root, path)
    label = _label(path, resolved)
    host = os.path.join(root, resolved.lstrip("/"))
    try:
        st = os.stat(host)
        if not stat.S_ISREG(st.st_mode):
            raise NotRunnable(f"{label} is not a regular file")
        if not st.st_mode & 0o111:  # root may execute a file with any x bit
            raise NotRunnable(f"{label} is not executable")
        if os.statvfs(host).f_flag & os.ST_NOEXEC:
            raise NotRunnable(f"{label} is on a noexec mount")
        # O_NONBLOCK: a FIFO swapped in after the stat must not hang PID 1.
        flags = os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW | os.O_NONBLOCK
        return os.open(host, flags), resolved, label
    except OSError as e:
        raise NotRunnable(f"{label}: {e.strerror or e}") from e


def _check_loader(root: str, interp: str, info: ElfInfo, label: str) -> None:
    """PT_INTERP: the kernel opens and maps it too, so it must be a loadable ELF."""
    try:
        fd, _, loader = _open_exec(root, interp)
    except NotRunnable as e:
        raise NotRunnable(f"{label}: its ELF interpreter: {e}") from e
    try:
        got = read_elf(fd, f"{label}: its ELF interpreter {loader}")
    except OSError as e:
        raise NotRunnable(f"{label}: its ELF interpreter {loader}: {e.strerror or e}") from e
    finally:
        os.close(fd)
    if got.ident != info.ident or got.e_type not in (ET_EXEC, ET_DYN):
        raise NotRunnable(f"{label}: its ELF interpreter {loader} is {got.ident} type {got.e_type}")


def _check_elf(root: str, fd: int, accept: frozenset[ElfId], label: str) -> str:
    info = read_elf(fd, label)
    if info.ident not in accept:
        runs = ", ".join(sorted(str(i) for i in accept)) or "nothing known"
        raise NotRunnable(f"{label} is {info.ident}; this kernel runs {runs}")
    if info.e_type not in (ET_EXEC, ET_DYN):
        raise NotRunnable(f"{label} is ELF type {info.e_type}, not an executable")
    if info.interp is None:
        return f"{info.ident}, static"
    _check_loader(root, info.interp, info, label)
    return f"{info.ident} via {shown(info.interp)}"


def _check_script(root: str, head: bytes, accept: frozenset[ElfId], depth: int, label: str) -> str:
    if depth >= SCRIPT_DEPTH:
        raise NotRunnable(f"{label}: more than {SCRIPT_DEPTH} #! scripts in a row")
    try:
        bang = parse_shebang(head)
    except NotRunnable as e:
        raise NotRunnable(f"{label}: {e}") from e
    try:
        inner = check_runnable(root, bang.interpreter, accept, depth=depth + 1)
    except NotRunnable as e:
        raise NotRunnable(f"{label}: its #! interpreter: {e}") from e
    return f"#! {shown(bang.interpreter)}: {inner.how}"


def check_runnable(root: str, path: str, accept: frozenset[ElfId], *, depth: int = 0) -> Runnable:
    """Prove that ``execve(path)`` after chroot(``root``) gets as far as the kernel decides.

    ``depth`` counts the ``#!`` scripts already on the way to this file.
    """
    fd, resolved, label = _open_exec(root, path)
    try:
        head = os.pread(fd, BINPRM_BUF_SIZE, 0)
        if head[:4] == b"\x7fELF":
            how = _check_elf(root, fd, accept, label)
        elif head[:2] == b"#!":
            how = _check_script(root, head, accept, depth, label)
        else:
            what = "empty" if not head else f"starts with {shown(head[:8].decode('latin-1'))}"
            raise NotRunnable(f"{label} is neither ELF nor a #! script ({what})")
    except OSError as e:
        raise NotRunnable(f"{label}: cannot read it: {e.strerror or e}") from e
    finally:
        os.close(fd)
    return Runnable(path, resolved, how)


def candidates(explicit: str | None) -> tuple[str, ...]:
    """init= first, then the kernel's default list, each once."""
    first = () if explicit is None else (explicit,)
    return first + tuple(c for c in INIT_CANDIDATES if c != explicit)


def pick_init(root: str, explicit: str | None, accept: frozenset[ElfId]) -> InitChoice:
    """The first candidate the kernel will run, with the reasons for those before it."""
    order = candidates(explicit)
    refused: list[tuple[str, str]] = []
    for i, path in enumerate(order):
        try:
            if not path.startswith("/"):
                raise NotRunnable(f"{shown(path)} is not an absolute path")
            found = check_runnable(root, path, accept)
        except NotRunnable as e:
            refused.append((path, str(e)))
            continue
        later = tuple(p for p in order[i + 1 :] if p != RESCUE_SHELL and p.startswith("/"))
        return InitChoice(found, later, tuple(refused))
    raise NotRunnable("no runnable init in the new root: " + "; ".join(r for _, r in refused))
