"""Chain mode (``mosinit=chain``): hand PID 1 over to a distro initramfs's /init.

``build.sh --append`` makes a small cpio that is concatenated after a distro
initramfs (initramfs-tools, dracut). Booted with ``rdinit=/mosnet-init
mosinit=chain``, mosnet brings up the network and forks its daemon, then execs
the distro's ``/init`` in place (still PID 1), the way the kernel would have
started it: ``argv[0]`` is ``/init``, the environment is the kernel's minus
mosnet's own parameters, signal dispositions and mask are the defaults, and
no descriptor but 0, 1 and 2 survives. That init mounts the root and switches
into it; the daemon follows by itself (``mosnet.daemon.chainfollow``).

Nothing here is undone before the exec: mosnet's /proc, /sys, /dev and /run
stay mounted and the distro's init mounts its own on top (initramfs-tools
mounts a fresh tmpfs on /run), which is what keeps /run/mosnet reachable for
the daemon.
"""

from __future__ import annotations

import contextlib
import os
import signal
import stat
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import NoReturn

from init import modindex, modules
from mosnet.base import log
from mosnet.base.errors import MosnetError

CHAIN_INIT = "/init"
# This image's own PID 1: an /init that leads here is not a distro's.
OWN_PROGRAMS = ("/mosnet-init", "/usr/lib/mosnet/mosnet-init.bin")
# Kernel parameters the kernel hands to init as environment variables
# (unknown ``key=value``) that are mosnet's, not the distro's. ``ip=`` is
# consumed by mosnet; the distro's init must not configure the network again.
OWN_ENV_PREFIX = "mos"
OWN_ENV_KEYS = frozenset({"ip"})
# Bare words the kernel passes in argv that only mosnet understands.
OWN_ARGS_PREFIX = "mos"

# Loading br_netfilter alone sends bridged frames through the IP hooks.
PRIVATE_SKIP = frozenset({"br_netfilter"})

_log = log.get("init.chain")


class ChainRefused(MosnetError):
    """There is no distro init to chain to; nothing was changed."""


class ChainFailed(MosnetError):
    """The exec of the distro init failed; PID 1 is still mosnet."""


@dataclass(frozen=True)
class ChainTarget:
    path: str  # "/init", what argv[0] and the exec use
    resolved: str  # where it leads (symlinks followed)
    interpreter: str | None  # the "#!" program of a script, checked to exist


def _interpreter(path: str) -> str | None:
    with open(path, "rb") as f:
        head = f.read(256)
    if not head.startswith(b"#!"):
        return None
    words = head[2:].split(b"\n", 1)[0].split()
    return words[0].decode(errors="replace") if words else ""


def find_target(path: str = CHAIN_INIT, own: Sequence[str] = OWN_PROGRAMS) -> ChainTarget:
    """Prove that ``path`` is a distro init we can exec; raise ChainRefused if not."""
    try:
        st = os.stat(path)
    except OSError as exc:
        raise ChainRefused(f"{path}: {exc.strerror}") from exc
    resolved = os.path.realpath(path)
    if not stat.S_ISREG(st.st_mode) or not st.st_mode & 0o111:
        raise ChainRefused(f"{path} -> {resolved} is not an executable file")
    for mine in own:
        with contextlib.suppress(OSError):
            if os.path.samefile(path, mine):
                raise ChainRefused(f"{path} is mosnet-init itself (not an appended image)")
    interp = _interpreter(path)
    if interp is not None and not (interp.startswith("/") and os.access(interp, os.X_OK)):
        raise ChainRefused(f"{path} is a script for {interp!r}, which is not executable here")
    return ChainTarget(path, resolved, interp)


def requested_target(enabled: bool) -> ChainTarget | None:
    """mosinit=chain: the distro /init to exec, or None (then switch_root as usual)."""
    if not enabled:
        return None
    try:
        target = find_target()
    except ChainRefused as exc:
        _log.error("mosinit=chain: %s; falling back to mounting root= and switch_root", exc)
        return None
    how = f" (#!{target.interpreter})" if target.interpreter else ""
    _log.info("chain mode: %s -> %s%s runs after the network", target.path, target.resolved, how)
    return target


def init_argv(argv: Sequence[str], path: str = CHAIN_INIT) -> list[str]:
    """The kernel's argv for ``path``: argv[0] is the path, mosnet's bare flags dropped."""
    return [path, *(a for a in argv[1:] if not a.startswith(OWN_ARGS_PREFIX))]


def init_env(environ: Mapping[str, str]) -> dict[str, str]:
    """The kernel's environment for init, without mosnet's parameters."""
    return {
        k: v
        for k, v in environ.items()
        if not k.startswith(OWN_ENV_PREFIX) and k not in OWN_ENV_KEYS
    }


def _default_signals() -> None:
    """SIG_IGN survives exec: give the new init the kernel's defaults, unblocked."""
    for sig in signal.valid_signals():
        with contextlib.suppress(OSError, ValueError, RuntimeError):
            if signal.getsignal(sig) == signal.SIG_IGN:
                signal.signal(sig, signal.SIG_DFL)
    with contextlib.suppress(OSError, ValueError):
        signal.pthread_sigmask(signal.SIG_SETMASK, ())


def _close_on_exec() -> None:
    """Only 0, 1 and 2 (the kernel's /dev/console) reach the new init."""
    try:
        fds = [int(n) for n in os.listdir("/proc/self/fd")]
    except OSError:
        fds = list(range(3, 1024))
    for fd in fds:
        if fd > 2:
            with contextlib.suppress(OSError):
                os.set_inheritable(fd, False)


def execute(
    target: ChainTarget,
    argv: Sequence[str],
    env: Mapping[str, str],
    before_exec: Callable[[], None] | None = None,
) -> NoReturn:
    """Exec the distro init as PID 1; raises ChainFailed if the exec fails."""
    _close_on_exec()
    with contextlib.suppress(OSError):
        os.chdir("/")
    _log.info("chain: exec %s (%s) %s", target.path, target.resolved, list(argv[1:]))
    if before_exec is not None:
        try:
            before_exec()
        except Exception:  # the distro init must still run
            _log.exception("chain: before_exec hook failed")
    with contextlib.suppress(Exception):
        sys.stdout.flush()
        sys.stderr.flush()
    _default_signals()
    try:
        os.execve(target.path, list(argv), dict(env))
    except OSError as exc:
        raise ChainFailed(f"exec {target.path} failed: {exc.strerror or exc}") from exc


def load_private_modules(loader: modules.Loader, kver: str, private_root: str) -> None:
    """Load the append image's network-stack modules (bridge, nftables) now.

    The kernel's on-demand requests (``rtnl-link-bridge``, ``nft-expr-*``) go
    to the distro image's /sbin/modprobe, which does not know this tree. No
    tree (the default image): nothing to do.
    """
    if not os.path.isdir(private_root):
        return
    tree = os.path.join(private_root, kver)
    if not os.path.isdir(tree):
        found = ", ".join(sorted(os.listdir(private_root))) or "none"
        _log.warning("no private modules for kernel %s (the image has: %s)", kver, found)
        return
    for name in sorted(modindex.ModuleIndex.load(tree).paths):
        if name not in PRIVATE_SKIP:
            loader.load(name)
