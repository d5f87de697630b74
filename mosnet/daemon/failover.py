"""After a bond fails over, tell the switch at once where the host now is.

The switch learned the host's MAC on the old port. Until a frame from the
new one reaches it, traffic towards the host (and to every guest: MAC NAT
gives them all the uplink's MAC) goes down the dead cable. A bond announces
only the addresses on itself; mosnet's sit on the bridge's internal port.
So when a link under the uplink changes, the daemon reads each bond's
active slave now and a little later (the bond switches a few miimon
periods after the carrier went), and when one moved it sends the proxy's
announcements (gratuitous ARP, unsolicited NA, from the uplink's MAC).
"""

from __future__ import annotations

import contextlib
import socket
import time
from collections.abc import Callable

from mosnet.base import log, wake
from mosnet.l2 import linkevents, linkwatch

RECHECK = (0.0, 0.3, 1.0, 3.0)  # after a link change: when to read the active slaves

_log = log.get("failover")


def watched(uplink: str) -> set[int]:
    """The ifindexes of the uplink and the links below it."""
    out = set()
    for name in linkevents.stack_below(uplink):
        with contextlib.suppress(OSError):
            out.add(socket.if_nametoindex(name))
    return out


def moved(before: dict[str, str], now: dict[str, str]) -> list[str]:
    """Bonds whose active slave changed to another one (not to none)."""
    return [b for b, slave in now.items() if slave and slave != before.get(b)]


def run(
    uplink: str,
    announce: Callable[[], object],
    stopping: Callable[[], bool],
    stop_fd: int,
    clock: Callable[[], float] = time.monotonic,
) -> None:
    """Until ``stopping()``: call ``announce`` whenever a bond under ``uplink`` moved."""
    bonds = linkevents.bonds_below(uplink)
    links, last = watched(uplink), linkevents.active_slaves(bonds)
    checks: list[float] = []
    _log.info("%s: watching %s for failovers (active: %s)", uplink, ", ".join(bonds),
              ", ".join(f"{b} {s or '-'}" for b, s in last.items()))  # fmt: skip
    with linkwatch.link_socket() as sock:
        while not stopping():
            timeout = max(0.0, checks[0] - clock()) if checks else None
            if sock.fileno() in wake.wait_readable([sock.fileno(), stop_fd], timeout):
                changed = set(_drain(sock))
                if -1 in changed or links & changed:  # -1: notifications were lost
                    checks = [clock() + d for d in RECHECK]
            while checks and checks[0] <= clock():
                checks.pop(0)
                now = linkevents.active_slaves(bonds)
                for bond in moved(last, now):
                    _log.info("%s: %s failed over to %s: announcing the host again",
                              uplink, bond, now[bond])  # fmt: skip
                    announce()
                last = now


def _drain(sock: socket.socket) -> list[int]:
    found: list[int] = []
    while True:
        try:
            data = sock.recv(65536)
        except (BlockingIOError, InterruptedError):
            return found
        except OSError:  # ENOBUFS: some were lost, so look again
            return [*found, -1]
        found += linkevents.indexes(data)
