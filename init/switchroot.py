"""A switch_root for PID 1 that checks everything before it deletes anything.

The sequence is the classic one (put the API mounts into the new root, empty
the initramfs, move the new root onto ``/``, chroot, exec the new init), but a
wipe followed by a failed exec leaves a machine with no userspace at all. So
``preflight`` proves every precondition first and only then ``switch_root``
starts changing state. The wipe walks directory fds and never crosses a mount
point or follows a symlink, so a mistake in the plan cannot reach the new root.

The API mounts are bound (``MS_BIND|MS_REC``), not moved: the initramfs keeps
its own /proc, /sys, /dev and /run underneath. Daemons that stay in the
initramfs root after the switch (Open vSwitch, started by PID 1) still find
their sockets in /run and their devices in /sys and /proc by path.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import stat
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal, NoReturn

from init import syscalls as sc
from mosnet import log as mlog
from mosnet.errors import MosnetError

_log = mlog.get("init.switchroot")

RAMFS_MAGIC = 0x858458F6
TMPFS_MAGIC = 0x01021994
INITRD_RELEASE = "/etc/initrd-release"
# An appended image (chain mode) sits on a distro initramfs that may lack
# /etc/initrd-release; its /mosnet-init marks it as an initramfs just as well.
APPENDED_MARKER = "/mosnet-init"
# The kernel's own fallback order when no init= is given (init/main.c).
INIT_CANDIDATES = ("/sbin/init", "/etc/init", "/bin/init", "/bin/sh")
API_MOUNTS = ("/dev", "/proc", "/sys", "/run")
_MAX_SYMLINKS = 40  # same limit as the kernel's path walk

_libc = ctypes.CDLL(None, use_errno=True)
_libc.statfs.argtypes = [ctypes.c_char_p, ctypes.c_void_p]


class SwitchRootRefused(MosnetError):
    """A precondition failed; nothing was changed, the initramfs is intact."""


class SwitchRootFailed(MosnetError):
    """A step failed after the initramfs was (partly) wiped; cannot be undone."""


@dataclass(frozen=True)
class MountMove:
    """What happens to one API mount (/dev, /proc, ...) of the initramfs."""

    source: str
    target: str
    action: Literal["move", "create-and-move", "detach"]


@dataclass(frozen=True)
class Plan:
    """Everything ``preflight`` proved; ``execute`` acts on it."""

    new_root: str
    init: str  # path of the init as seen after the switch, e.g. "/sbin/init"
    init_resolved: str  # where that path really leads inside the new root
    root_dev: int
    moves: tuple[MountMove, ...]


@dataclass(frozen=True)
class WipeReport:
    files: int
    dirs: int
    skipped_mounts: tuple[str, ...]
    errors: tuple[str, ...]


def _oserror(what: str) -> OSError:
    err = ctypes.get_errno()
    return OSError(err, f"{what}: {os.strerror(err)}")


def _mount(src: str | None, target: str, flags: int) -> None:
    sc.sys_mount(src, target, None, flags, None)


def fs_magic(path: str) -> int:
    """statfs(2) f_type. It is the first field of struct statfs on Linux."""
    buf = ctypes.create_string_buffer(512)  # larger than any arch's struct statfs
    if _libc.statfs(path.encode(), buf) != 0:
        raise _oserror(f"statfs {path}")
    return ctypes.c_ulong.from_buffer(buf).value & 0xFFFFFFFF


def _unescape(field: str) -> str:
    """mountinfo escapes space, tab, newline and backslash as \\ooo."""
    out, i = [], 0
    while i < len(field):
        code = field[i + 1 : i + 4]
        if field[i] == "\\" and len(code) == 3 and code.isdigit():
            out.append(chr(int(code, 8)))
            i += 4
        else:
            out.append(field[i])
            i += 1
    return "".join(out)


def mount_points(mountinfo: str = "/proc/self/mountinfo") -> frozenset[str] | None:
    """Mount points of our mount namespace, or None if /proc is not mounted."""
    try:
        with open(mountinfo, encoding="utf-8", errors="surrogateescape") as f:
            return frozenset(_unescape(line.split()[4]) for line in f if len(line.split()) > 4)
    except OSError:
        return None


def is_mount_point(path: str, mounts: frozenset[str] | None) -> bool:
    """Listed in mountinfo, or (without /proc) on another device than its parent."""
    real = os.path.realpath(path)
    if mounts is not None and real in mounts:
        return True
    try:
        here, parent = os.stat(real), os.stat(os.path.join(real, ".."))
    except OSError:
        return False
    # A different device, or "/" itself (its own parent).
    return here.st_dev != parent.st_dev or here.st_ino == parent.st_ino


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
                raise SwitchRootRefused(f"{path}: a '..' escapes the new root {root}")
            done.pop()
            continue
        host = os.path.join(root, *done, part)
        try:
            st = os.lstat(host)
        except OSError as e:
            raise SwitchRootRefused(f"{path}: {host} does not exist ({e.strerror})") from e
        if not stat.S_ISLNK(st.st_mode):
            done.append(part)
            continue
        links += 1
        if links > _MAX_SYMLINKS:
            raise SwitchRootRefused(f"{path}: too many levels of symbolic links")
        target = os.readlink(host)
        if target.startswith("/"):
            done = []
        todo = [p for p in target.split("/") if p] + todo
    return "/" + "/".join(done)


def _check_init(new_root: str, init: str) -> str:
    resolved = resolve_in_root(new_root, init)
    host = os.path.join(new_root, resolved.lstrip("/"))
    try:
        st = os.stat(host)
    except OSError as e:
        raise SwitchRootRefused(f"init {init} -> {resolved}: {e.strerror}") from e
    if not stat.S_ISREG(st.st_mode):
        raise SwitchRootRefused(f"init {init} -> {resolved} is not a regular file")
    if not st.st_mode & 0o111:  # root may execute a file with any x bit
        raise SwitchRootRefused(f"init {init} -> {resolved} is not executable")
    return resolved


def _pick_init(new_root: str, init_path: str | None) -> tuple[str, str]:
    if init_path is not None:
        if not init_path.startswith("/"):
            raise SwitchRootRefused(f"init path {init_path!r} must be absolute")
        return init_path, _check_init(new_root, init_path)
    reasons = []
    for candidate in INIT_CANDIDATES:
        try:
            return candidate, _check_init(new_root, candidate)
        except SwitchRootRefused as e:
            reasons.append(str(e))
    raise SwitchRootRefused("no usable init in the new root: " + "; ".join(reasons))


def _check_current_root(require_pid1: bool) -> os.stat_result:
    if require_pid1 and os.getpid() != 1:
        raise SwitchRootRefused(f"we are PID {os.getpid()}, not PID 1")
    magic = fs_magic("/")
    if magic not in (RAMFS_MAGIC, TMPFS_MAGIC):
        raise SwitchRootRefused(f"/ is not ramfs/tmpfs (magic {magic:#x}); not an initramfs")
    # tmpfs alone proves nothing: real roots can be tmpfs too.
    if not os.path.lexists(INITRD_RELEASE) and not os.path.lexists(APPENDED_MARKER):
        raise SwitchRootRefused(
            f"{INITRD_RELEASE} is missing (and no {APPENDED_MARKER}); refusing to wipe this root"
        )
    return os.stat("/")


def _check_new_root(new_root: str, root: os.stat_result, mounts: frozenset[str] | None) -> None:
    try:
        st = os.stat(new_root)
    except OSError as e:
        raise SwitchRootRefused(f"new root {new_root}: {e.strerror}") from e
    if not stat.S_ISDIR(st.st_mode):
        raise SwitchRootRefused(f"new root {new_root} is not a directory")
    if not is_mount_point(new_root, mounts):
        raise SwitchRootRefused(f"new root {new_root} is not a mount point")
    if st.st_dev == root.st_dev:
        # The wipe tells mounts apart by st_dev; it would delete this one.
        raise SwitchRootRefused(f"new root {new_root} is on the initramfs filesystem itself")


def _plan_moves(new_root: str, mounts: frozenset[str] | None) -> tuple[MountMove, ...]:
    writable = not os.statvfs(new_root).f_flag & os.ST_RDONLY
    moves = []
    for src in API_MOUNTS:
        if not os.path.isdir(src) or not is_mount_point(src, mounts):
            continue
        target = os.path.join(new_root, src.lstrip("/"))
        try:
            mode: int | None = os.lstat(target).st_mode
        except FileNotFoundError:
            mode = None
        if mode is not None and stat.S_ISDIR(mode):
            moves.append(MountMove(src, target, "move"))
        elif mode is None and writable:
            moves.append(MountMove(src, target, "create-and-move"))
        else:
            # Missing on a read-only root, or a symlink/file we must not follow.
            moves.append(MountMove(src, target, "detach"))
    return tuple(moves)


def preflight(new_root: str, init_path: str | None, *, require_pid1: bool = True) -> Plan:
    """Prove that a switch into ``new_root`` can succeed. Changes nothing."""
    root = _check_current_root(require_pid1)
    new_root = os.path.realpath(new_root)
    if new_root == "/":
        raise SwitchRootRefused("new root is / itself")
    mounts = mount_points()
    _check_new_root(new_root, root, mounts)
    init, resolved = _pick_init(new_root, init_path)
    return Plan(new_root, init, resolved, root.st_dev, _plan_moves(new_root, mounts))


class _Wipe:
    """Mutable tallies for one wipe; frozen into a WipeReport at the end."""

    def __init__(self, root_dev: int) -> None:
        self.root_dev = root_dev
        self.files = 0
        self.dirs = 0
        self.skipped: list[str] = []
        self.errors: list[str] = []

    def error(self, path: str, exc: OSError) -> None:
        self.errors.append(f"{path}: {exc.strerror or exc}")
        _log.warning("wipe: cannot remove %s: %s", path, exc.strerror or exc)


def _wipe_entry(w: _Wipe, dir_fd: int, name: str, path: str) -> None:
    try:
        st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except OSError as e:
        w.error(path, e)
        return
    if st.st_dev != w.root_dev:
        w.skipped.append(path)  # a mount point (the new root among them): hands off
        return
    if not stat.S_ISDIR(st.st_mode):
        try:
            os.unlink(name, dir_fd=dir_fd)
            w.files += 1
        except OSError as e:
            w.error(path, e)
        return
    try:
        fd = os.open(
            name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dir_fd
        )
    except OSError as e:
        w.error(path, e)
        return
    try:
        if os.fstat(fd).st_dev != w.root_dev:  # it changed under us: leave it
            w.skipped.append(path)
            return
        _wipe_dir(w, fd, path)
    finally:
        os.close(fd)
    try:
        os.rmdir(name, dir_fd=dir_fd)
        w.dirs += 1
    except OSError as e:
        w.error(path, e)


def _wipe_dir(w: _Wipe, dir_fd: int, path: str) -> None:
    try:
        with os.scandir(dir_fd) as it:
            names = [entry.name for entry in it]
    except OSError as e:
        w.error(path, e)
        return
    for name in names:
        _wipe_entry(w, dir_fd, name, f"{path.rstrip('/')}/{name}")


def wipe_tree(dir_fd: int, root_dev: int, *, path: str = "/") -> WipeReport:
    """Delete everything below ``dir_fd`` that lives on device ``root_dev``.

    Never follows symlinks (they are unlinked) and never enters an entry on
    another device (a mount point). Best effort: failures are counted and
    logged, never raised. ``path`` only names entries in the report.
    """
    w = _Wipe(root_dev)
    _wipe_dir(w, dir_fd, path)
    return WipeReport(w.files, w.dirs, tuple(w.skipped), tuple(w.errors))


def _apply_move(move: MountMove) -> None:
    if move.action != "detach":
        try:
            if move.action == "create-and-move":
                os.mkdir(move.target, 0o755)
            _mount(move.source, move.target, sc.MS_BIND | sc.MS_REC)  # module docstring
            return
        except OSError as e:
            _log.warning(
                "switch_root: cannot bind %s to %s (%s); detaching it",
                move.source,
                move.target,
                e.strerror or e,
            )
    else:
        _log.info("switch_root: %s has no directory in the new root; detaching it", move.target)
    try:
        sc.sys_umount2(move.source, sc.MNT_DETACH)
    except OSError as e:
        _log.warning("switch_root: cannot detach %s: %s", move.source, e.strerror or e)


def _prepare_fds(keep_fds: Sequence[int]) -> None:
    """Let exactly std fds and ``keep_fds`` survive the exec (CLOEXEC the rest)."""
    keep = {0, 1, 2, *keep_fds}
    try:
        fds = [int(n) for n in os.listdir("/proc/self/fd")]
    except OSError:
        fds = list(range(3, 1024))
    for fd in fds:
        with contextlib.suppress(OSError):
            os.set_inheritable(fd, fd in keep)


def _enter_new_root(new_root: str) -> None:
    try:
        os.chdir(new_root)
        _mount(".", "/", sc.MS_MOVE)
        os.chroot(".")
        os.chdir("/")
    except OSError as e:
        raise SwitchRootFailed(f"entering {new_root} after the wipe failed: {e}") from e


def execute(
    plan: Plan,
    argv: Sequence[str],
    env: Mapping[str, str],
    *,
    keep_fds: Sequence[int] = (),
    before_exec: Callable[[], None] | None = None,
) -> NoReturn:
    """Carry out a ``Plan``: move mounts, wipe, move the root, chroot, exec."""
    try:
        # MS_MOVE refuses mounts whose parent is shared.
        _mount(None, "/", sc.MS_REC | sc.MS_PRIVATE)
    except OSError as e:
        raise SwitchRootRefused(f"cannot make / private: {e}") from e
    _prepare_fds(keep_fds)
    for move in plan.moves:
        _apply_move(move)
    root_fd = os.open("/", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        report = wipe_tree(root_fd, plan.root_dev)
    finally:
        os.close(root_fd)
    _log.info(
        "switch_root: removed %d files, %d dirs; kept mounts %s; %d errors",
        report.files,
        report.dirs,
        ", ".join(report.skipped_mounts) or "-",
        len(report.errors),
    )
    _enter_new_root(plan.new_root)
    if before_exec is not None:
        try:
            before_exec()
        except Exception:  # the new init must still run
            _log.exception("switch_root: before_exec hook failed")
    _exec(plan, argv, env)


def _exec(plan: Plan, argv: Sequence[str], env: Mapping[str, str]) -> NoReturn:
    args = list(argv) or [plan.init]
    _log.info("switch_root: exec %s (%s) %s", plan.init, plan.init_resolved, args[1:])
    with contextlib.suppress(Exception):
        sys.stdout.flush()
        sys.stderr.flush()
    # SIG_IGN survives exec; the new init must start with default SIGPIPE.
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    try:
        os.execve(plan.init, args, dict(env))
    except OSError as e:
        raise SwitchRootFailed(f"exec {plan.init} failed after the wipe: {e}") from e


def switch_root(
    new_root: str,
    init_path: str | None,
    argv: Sequence[str],
    env: Mapping[str, str],
    *,
    keep_fds: Sequence[int] = (),
    before_exec: Callable[[], None] | None = None,
    require_pid1: bool = True,
) -> NoReturn:
    """Switch into ``new_root`` and exec its init; returns only by raising.

    ``SwitchRootRefused``: nothing was touched. ``SwitchRootFailed``: the
    initramfs is gone and the caller can only go to emergency mode.
    """
    plan = preflight(new_root, init_path, require_pid1=require_pid1)
    _log.info("switch_root: plan %s", plan)
    execute(plan, argv, env, keep_fds=keep_fds, before_exec=before_exec)
