"""Child-process side of test_pid1: each mode prints what the test checks."""

from __future__ import annotations

import ctypes
import json
import os
import signal
import sys
import threading
import time
from collections.abc import Callable

from init import pid1, procs
from mosnet.base import children
from mosnet.base import log as mlog

PR_SET_CHILD_SUBREAPER = 36


def signals(cad_path: str) -> None:
    pid1.install_signal_handlers(cad_path=cad_path)
    print("READY", flush=True)
    while True:  # the test ends us with SIGKILL
        time.sleep(0.02)
        for sig in pid1.pending_signals():
            print(signal.Signals(sig).name, flush=True)


def _naive_reaper(stop: threading.Event) -> None:
    """What not to do: steals exit statuses from Popen."""
    while not stop.is_set():
        try:
            os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            pass
        time.sleep(0.001)


def _good_reaper(stop: threading.Event, count: list[int]) -> None:
    while not stop.is_set():
        count[0] += len(procs.reap_orphans())
        time.sleep(0.001)


def reap(reaper: str) -> None:
    if os.getpid() != 1:
        libc = ctypes.CDLL(None, use_errno=True)
        assert libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
    stop, count = threading.Event(), [0]
    if reaper == "naive":
        thread = threading.Thread(target=_naive_reaper, args=(stop,))
    elif reaper == "procs":
        thread = threading.Thread(target=_good_reaper, args=(stop, count))
    else:  # "none": nobody reaps until the end (and then not at all)
        thread = threading.Thread(target=stop.wait)
    thread.start()
    codes = []
    for _ in range(15):
        # Leaves two orphans that exit around the same time as the helper.
        children.run(["/bin/sh", "-c", "sleep 0.05 & sleep 0.05 & exit 0"], timeout=10)
        codes.append(children.run(["/bin/sh", "-c", "sleep 0.05; exit 3"], timeout=10).returncode)
    stop.set()
    thread.join()
    time.sleep(0.3)  # let the last orphans die
    if reaper != "none":
        count[0] += len(procs.reap_orphans())
    print(
        json.dumps(
            {
                "codes": codes,
                "reaped": count[0],
                "zombies": procs.zombie_children(),
                "pid": os.getpid(),
            }
        ),
        flush=True,
    )


def halt_idle() -> None:
    mlog.setup()
    pid1.install_signal_handlers(cad_path=None)

    def fake_reboot(cmd: int) -> int:
        print(f"REBOOT {cmd:#x}", flush=True)
        return -1

    pid1.halt("test", reboot=fake_reboot, idle=lambda: pid1.idle_forever(0.05))


def halt_real() -> None:
    # Only ever as PID 1 of a pid namespace: there reboot(2) just ends the
    # namespace. Anywhere else it would halt the machine.
    if os.getpid() != 1:
        print("NOT PID 1, refusing", flush=True)
        sys.exit(2)
    mlog.setup()
    pid1.halt("real reboot(2) in a pid namespace", idle=lambda: pid1.idle_forever(0.05))


def shell(script: str, console: str) -> None:
    mlog.setup()
    pid1.emergency_shell(script, console, tick=0.02, respawn_delay=0.05)


if __name__ == "__main__":
    modes: dict[str, Callable[..., None]] = {
        "signals": signals,
        "reap": reap,
        "halt-idle": halt_idle,
        "halt-real": halt_real,
        "shell": shell,
    }
    modes[sys.argv[1]](*sys.argv[2:])
