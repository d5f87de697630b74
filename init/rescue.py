"""What PID 1 runs when the init of the new root would not exec after the wipe.

No initramfs is left to retry with, and no candidate init of the new root
would exec. The kernel's own last resort is ``/bin/sh`` as init, so the new
root's shell runs, with or without ``mosshell``. PID 1 respawns it on the
console instead of exec'ing it: a shell that is PID 1 panics the kernel when
it exits, while this way PID 1 stays, keeps reaping and keeps the daemon
(and with it the lease) alive. Only a root without a runnable ``/bin/sh``
ends in ``pid1.halt``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NoReturn

from init import initcheck, pid1
from init.initcheck import ElfId, NotRunnable
from mosnet.base import log as mlog

_log = mlog.get("init.rescue")


def rescue_shell(accept: frozenset[ElfId] | None = None, root: str = "/") -> str | None:
    """``/bin/sh`` of the root we are in, if the kernel will run it; else None."""
    ids = initcheck.machine_ids() if accept is None else accept
    try:
        found = initcheck.check_runnable(root, initcheck.RESCUE_SHELL, ids)
    except NotRunnable as e:
        _log.critical("no rescue shell: %s", e)
        return None
    return found.path


def after_wipe(run_shell: Callable[[str], NoReturn] | None = None) -> None:
    """Respawn the new root's /bin/sh for ever (``pid1.emergency_shell``);
    returns only if it has none."""
    shell = rescue_shell()
    if shell is not None:
        _log.critical("starting %s of the new root on the console, respawned when it exits", shell)
        (run_shell or pid1.emergency_shell)(shell)
