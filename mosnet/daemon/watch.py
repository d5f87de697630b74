"""``@mosnet-watch``: keeps the daemon and the Open vSwitch daemons alive (issue 13 §6).

The daemon forks the watcher as its first act and the two watch each other
through pidfds (``mosnet.daemon.supervise``): when the daemon dies (SIGKILL, an
uncaught exception) the watcher forks a new one, which takes the lease over
from the recorded state; when the watcher dies, the daemon forks a new
watcher. Both are forks of processes that have everything imported, so
neither needs a file of the initramfs that switch_root deleted. The watcher
also starts ``ovsdb-server`` and ``ovs-vswitchd`` again, from the runtime
copy under /run (``mosnet.ovs.ovsrt``), with the arguments and database of their
first start.

SIGTERM asks mosnet to stop: the watcher stops the daemon too (and the
daemon's SIGTERM stops the watcher), and nothing is started again. The OVS
daemons are left running: they are the machine's network.

The watcher is one thread sleeping in one poll: its pidfds, its stop
eventfd and, until it followed PID 1 into the real root, PID 1's pipe.
"""

from __future__ import annotations

import contextlib
import functools
import gc
import os
import signal
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from mosnet.base import log, proctitle, wake
from mosnet.daemon.rootfollow import Follower
from mosnet.daemon.supervise import POLL_IN, Slot, Watch, stop_on_sigterm
from mosnet.ovs import ovsrt, vswitch
from mosnet.state import statefile

TITLE = "@mosnet-watch"
DAEMON_TITLE = "@mosnet-daemon"
STOP_WAIT = 5.0  # how long a stopping watcher waits for the daemon to end

_log = log.get("watch")


@dataclass
class WatchStart:
    """What a watcher starts with (its parent fills it in before the fork)."""

    run_dir: str
    daemon_pid: int | None  # the daemon to watch; None: start one
    fork_daemon: Callable[[], int]  # a new daemon from the recorded state; its pid
    follower: Follower
    ovs_run_dir: str | None = None  # OVS backend: keep its daemons alive too
    ovs_runtime: str = ovsrt.RUNTIME_DIR
    close_inherited: Callable[[], None] = lambda: None  # the daemon's sockets, in the child
    prior: dict[str, int] = field(default_factory=dict)  # restart counts so far


def _slots(ws: WatchStart) -> list[Slot]:
    slots = [Slot(DAEMON_TITLE, ws.fork_daemon)]
    if ws.ovs_run_dir is not None:
        for name in vswitch.DAEMONS:  # ovsdb-server first: ovs-vswitchd waits for its database
            start = functools.partial(
                vswitch.restart, name, ws.ovs_run_dir, runtime_root=ws.ovs_runtime
            )
            slots.append(Slot(f"@{name}", start))
    return slots


def prior_restarts(run_dir: str) -> dict[str, int]:
    """Restart counts of an earlier watcher (this boot), one more for the watcher itself."""
    try:
        section = statefile.load(run_dir).get("watch") or {}
    except statefile.StateError:
        return {}
    counts = section.get("restarts") or {}
    out = {k: v for k, v in counts.items() if isinstance(k, str) and isinstance(v, int)}
    if section.get("pid") not in (None, os.getpid()):
        out[TITLE] = out.get(TITLE, 0) + 1
    return out


def _record(ws: WatchStart, watch: Watch) -> None:
    """The ``watch`` section of state.json: who watches, how often things were restarted."""
    counts = dict(ws.prior)
    for slot in watch.slots:
        counts[slot.name] = counts.get(slot.name, 0) + slot.restarts
    runtime = ovsrt.find(ws.ovs_runtime) if ws.ovs_run_dir is not None else None
    section: dict[str, Any] = {"pid": os.getpid(), "restarts": counts, "ovs_runtime": None}
    if runtime is not None:
        section["ovs_runtime"] = {"dir": runtime.root, "bytes": runtime.size()}
    try:
        statefile.set_section(ws.run_dir, "watch", section)
    except OSError as exc:
        _log.warning("state.json not updated: %s", exc)


def main(ws: WatchStart) -> int:
    """The watcher process; returns its exit status once asked to stop."""
    gc.freeze()  # the daemon's objects: the collector must not copy their pages
    proctitle.set_title(TITLE)
    with contextlib.suppress(OSError):
        os.setsid()
    stop = wake.Waker()
    stop_on_sigterm(stop)
    ws.close_inherited()
    ws.follower.reopen()
    ws.prior = prior_restarts(ws.run_dir)
    slots = _slots(ws)
    watch = Watch(slots, on_change=lambda slot: _record(ws, watch), stopping=stop.is_set)
    watch.adopt(slots[0], ws.daemon_pid)
    for slot in slots[1:]:
        watch.adopt(slot, vswitch.daemon_pid(slot.name.removeprefix("@"), str(ws.ovs_run_dir)))
    _record(ws, watch)
    _log.info("watcher started (pid %d): %s", os.getpid(),
              ", ".join(f"{s.name} {s.pid or 'to start'}" for s in slots))  # fmt: skip
    while not stop.is_set():
        extra = {stop.fileno(): POLL_IN, **ws.follower.fds()}
        ready = watch.step(extra, ws.follower.timeout())
        if ws.follower.check(ready):
            _log.info("watcher now runs in the real root")
    _log.info("watcher stopping on SIGTERM: the daemon stops too, Open vSwitch stays")
    stop_daemon(slots[0])
    watch.close()
    return 0


def stop_daemon(slot: Slot) -> None:
    """SIGTERM to the watched process; wait (bounded) until it is gone."""
    if slot.pid is None or slot.fd is None:
        return
    with contextlib.suppress(OSError):
        signal.pidfd_send_signal(slot.fd, signal.SIGTERM)  # never a reused pid
    wake.wait_readable([slot.fd], STOP_WAIT)
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitid(os.P_PIDFD, slot.fd, os.WEXITED | os.WNOHANG)
