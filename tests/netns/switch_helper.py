"""PID 1 of a fresh pid+mount namespace that switch_roots like mosnet-init
(tests/netns/test_daemon_switch.py).

Usage: switch_helper.py TOP WORKDIR. In a fake initramfs (a tmpfs root from
chain_helper, where nothing of TOP can be imported any more) it forks the
daemon, SIGKILLs it so the watcher starts another one *before* the switch,
then does what init.switchroot does: the new root, /run and /proc bound into
it, ``mount --move . /``, chroot, and the hand-over byte. The daemon and
the watcher must follow on their own; then it kills each once more in the
real root. Prints one JSON line with what it saw.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

# It runs as a script beside chain_helper; mypy knows the same file by its package name.
if TYPE_CHECKING:
    from tests.netns.chain_helper import MS_MOVE, MS_REC, ident, make_initramfs, mount
else:
    from chain_helper import MS_MOVE, MS_REC, ident, make_initramfs, mount  # puts TOP on sys.path

from mosnet.base import log
from mosnet.daemon import mainloop
from mosnet.state import status

MS_BIND = 4096
RUN = "/run/mosnet"


def pid_in_state(key: str, old: int | None = None, timeout: float = 20.0) -> int:
    def found() -> int | None:
        try:
            with open(f"{RUN}/state.json") as f:
                pid = (json.load(f).get(key) or {}).get("pid")
        except (OSError, ValueError):
            return None
        ok = isinstance(pid, int) and pid != old and status.alive(pid, f"@mosnet-{key}")
        return pid if ok else None

    got: int = until(found, timeout)
    return got


def until(cond: Callable[[], int | None], timeout: float) -> int:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        got = cond()
        if got:
            return got
        reap()
        time.sleep(0.05)
    raise SystemExit(f"timed out: {cond}")


def reap() -> None:
    """PID 1's duty: orphans (a killed daemon or watcher) end up here."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def in_our_root(pid: int) -> bool:
    return ident(f"/proc/{pid}/root") == ident("/")


def switch_root() -> None:
    """The new root on a tmpfs, API mounts bound into it (as init.switchroot does)."""
    mount("tmpfs", "/root", "tmpfs")
    for d in ("run", "proc", "etc"):
        os.mkdir(os.path.join("/root", d))
    mount("/run", "/root/run", None, MS_BIND | MS_REC)
    mount("/proc", "/root/proc", None, MS_BIND | MS_REC)
    os.chdir("/root")
    mount(".", "/", None, MS_MOVE)
    os.chroot(".")
    os.chdir("/")


def main() -> None:
    assert os.getpid() == 1, "run under unshare --pid --fork"
    make_initramfs(sys.argv[2])
    log.setup(level=logging.INFO)
    log.add_file(f"{RUN}/boot.log")
    out: dict[str, object] = {}
    handle = mainloop.spawn(None, run_dir=RUN)
    d1, w1 = pid_in_state("daemon"), pid_in_state("watch")
    os.kill(d1, signal.SIGKILL)
    d2 = pid_in_state("daemon", d1)  # started by the watcher, still in the initramfs
    out["before_switch"] = in_our_root(d2) and in_our_root(w1)
    switch_root()
    handle.announce_switch()
    followed = until(lambda: int(in_our_root(d2) and in_our_root(w1)), 10)
    out["followed"] = bool(followed)
    os.kill(d2, signal.SIGKILL)
    d3 = pid_in_state("daemon", d2)
    os.kill(w1, signal.SIGKILL)
    w2 = pid_in_state("watch", w1)
    time.sleep(0.5)
    out["after_switch"] = in_our_root(d3) and in_our_root(w2)
    out["alive"] = status.alive(d3, "@mosnet-daemon") and status.alive(w2, "@mosnet-watch")
    with open(f"{RUN}/boot.log") as f:
        out["log"] = f.read()[-3000:]
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
