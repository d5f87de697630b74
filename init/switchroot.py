"""A switch_root for PID 1 that checks everything before it deletes anything.

The sequence is the classic one (put the API mounts into the new root, empty
the initramfs, move the new root onto ``/``, chroot, exec the new init), but a
wipe followed by a failed exec leaves a machine with no userspace at all. So
``preflight`` proves every precondition first, including that the kernel
will run the chosen init inside the new root (``init.initcheck``), and only
then ``execute`` starts changing state (the wipe is ``init.wipe``).

An exec can still fail after the wipe (ENOMEM, a race with the disk). Then
the later candidates of the list are tried, each checked again, and if none
execs ``SwitchRootFailed`` goes up to ``boot.fallback``, which runs the new
root's ``/bin/sh`` (``init.rescue``).

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
from dataclasses import dataclass, field
from typing import Literal, NoReturn

from init import initcheck, wipe
from init import syscalls as sc
from init.initcheck import ElfId, InitChoice, NotRunnable
from mosnet.base import log as mlog
from mosnet.base.errors import MosnetError, shown

_log = mlog.get("init.switchroot")

RAMFS_MAGIC = 0x858458F6
TMPFS_MAGIC = 0x01021994
INITRD_RELEASE = "/etc/initrd-release"
# An appended image (chain mode) sits on a distro initramfs that may lack
# /etc/initrd-release; its /mosnet-init marks it as an initramfs just as well.
APPENDED_MARKER = "/mosnet-init"
API_MOUNTS = ("/dev", "/proc", "/sys", "/run")

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
    later: tuple[str, ...] = ()  # candidates to exec if ``init`` fails after the wipe
    accept: frozenset[ElfId] = field(default=frozenset(), repr=False)  # what this kernel runs


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


def _choose_init(new_root: str, init_path: str | None) -> tuple[InitChoice, frozenset[ElfId]]:
    """The first candidate the kernel will run; each refusal logged on its own line."""
    accept = initcheck.machine_ids()
    try:
        choice = initcheck.pick_init(new_root, init_path, accept)
    except NotRunnable as e:
        raise SwitchRootRefused(str(e)) from e
    for path, reason in choice.refused:
        if path == init_path:
            defaults = ", ".join(c for c in initcheck.INIT_CANDIDATES if c != path)
            _log.error("switch_root: init= refused: %s; trying %s", reason, defaults)
        else:
            _log.warning("switch_root: refused %s", reason)
    init = choice.init
    where = "" if init.resolved == init.path else f" -> {shown(init.resolved)}"
    _log.info("switch_root: init %s%s: %s", shown(init.path), where, init.how)
    return choice, accept


def preflight(new_root: str, init_path: str | None, *, require_pid1: bool = True) -> Plan:
    """Prove that a switch into ``new_root`` can succeed. Changes nothing."""
    root = _check_current_root(require_pid1)
    new_root = os.path.realpath(new_root)
    if new_root == "/":
        raise SwitchRootRefused("new root is / itself")
    mounts = mount_points()
    _check_new_root(new_root, root, mounts)
    choice, accept = _choose_init(new_root, init_path)
    init = choice.init
    moves = _plan_moves(new_root, mounts)
    return Plan(new_root, init.path, init.resolved, root.st_dev, moves, choice.later, accept)


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


def _wipe_and_enter(plan: Plan) -> None:
    root_fd = os.open("/", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        report = wipe.wipe_tree(root_fd, plan.root_dev)
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


def _call_hook(name: str, hook: Callable[..., None] | None, *args: str) -> None:
    if hook is not None:
        try:
            hook(*args)
        except Exception:  # the new init must still run
            _log.exception("switch_root: %s hook failed", name)


def execute(
    plan: Plan,
    argv: Sequence[str],
    env: Mapping[str, str],
    *,
    keep_fds: Sequence[int] = (),
    before_exec: Callable[[], None] | None = None,
    before_next_init: Callable[[str], None] | None = None,
) -> NoReturn:
    """Carry out a ``Plan``: move mounts, wipe, move the root, chroot, exec.

    ``before_exec`` runs once, in the new root; ``before_next_init(path)``
    before each later candidate is exec'd after the chosen one failed.
    Once the wipe has begun every error comes up as ``SwitchRootFailed``.
    """
    try:
        # MS_MOVE refuses mounts whose parent is shared.
        _mount(None, "/", sc.MS_REC | sc.MS_PRIVATE)
    except OSError as e:
        raise SwitchRootRefused(f"cannot make / private: {e}") from e
    _prepare_fds(keep_fds)
    for move in plan.moves:
        _apply_move(move)
    try:
        _wipe_and_enter(plan)
        _call_hook("before_exec", before_exec)
        _exec_init(plan, argv, env, before_next_init)
    except SwitchRootFailed:
        raise
    except Exception as e:  # the initramfs is (partly) gone: no retry may assume it
        raise SwitchRootFailed(f"switch_root failed after the wipe began: {e!r}") from e


def _try_exec(path: str, args: list[str], env: Mapping[str, str]) -> str:
    """execve; returns only on failure, with the reason."""
    _log.info("switch_root: exec %s %s", shown(path), " ".join(shown(a, 60) for a in args[1:]))
    with contextlib.suppress(Exception):
        sys.stdout.flush()
        sys.stderr.flush()
    # SIG_IGN survives exec; the new init must start with default SIGPIPE.
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    try:
        os.execve(path, args, dict(env))
    except OSError as e:
        signal.signal(signal.SIGPIPE, signal.SIG_IGN)  # still PID 1: init.pid1's setting
        reason = f"{shown(path)}: {e.strerror or e}"
    _log.error("switch_root: exec failed after the wipe: %s", reason)
    return reason


def _exec_init(
    plan: Plan,
    argv: Sequence[str],
    env: Mapping[str, str],
    before_next_init: Callable[[str], None] | None,
) -> NoReturn:
    """The chosen init, then each later candidate that still passes the checks."""
    failures = [_try_exec(plan.init, list(argv) or [plan.init], env)]
    for path in plan.later:
        try:
            found = initcheck.check_runnable("/", path, plan.accept)
        except NotRunnable as e:
            _log.warning("switch_root: refused %s", e)
            failures.append(str(e))
            continue
        _log.warning("switch_root: next init %s: %s", shown(path), found.how)
        _call_hook("before_next_init", before_next_init, path)
        failures.append(_try_exec(path, [path, *argv[1:]], env))
    raise SwitchRootFailed("no init of the new root would exec: " + "; ".join(failures))


def switch_root(
    new_root: str,
    init_path: str | None,
    argv: Sequence[str],
    env: Mapping[str, str],
    *,
    keep_fds: Sequence[int] = (),
    before_exec: Callable[[], None] | None = None,
    before_next_init: Callable[[str], None] | None = None,
    require_pid1: bool = True,
) -> NoReturn:
    """Switch into ``new_root`` and exec its init; returns only by raising.

    ``SwitchRootRefused``: nothing was touched. ``SwitchRootFailed``: the
    initramfs is gone and the caller can only go to emergency mode.
    """
    plan = preflight(new_root, init_path, require_pid1=require_pid1)
    _log.info("switch_root: plan %s", plan)
    execute(
        plan, argv, env,
        keep_fds=keep_fds, before_exec=before_exec, before_next_init=before_next_init,
    )  # fmt: skip
