"""What a lease tells the system beyond the kernel: its record on disk, the hostname.

The address and routes go in through ``mosnet.topology.lease`` (plan actions).
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable

from mosnet.base import atomicfile, log
from mosnet.dhcp4.lease import Lease

_log = log.get("dhcp4")


def write_lease(lease: Lease, ifname: str, directory: str) -> bool:
    """Write ``lease-<ifname>.json`` atomically for the real system to read.

    A full or broken /run keeps the previous file and is logged: the lease
    itself is applied and kept all the same.
    """
    path = os.path.join(directory, f"lease-{ifname}.json")
    return atomicfile.record_json(path, {"ifname": ifname, **lease.to_json()}, _log)


def maybe_set_hostname(
    name: str | None,
    *,
    get: Callable[[], str] = socket.gethostname,
    set_: Callable[[str], None] = socket.sethostname,
) -> bool:
    """Use the DHCP hostname only if nobody has set one (empty, ``(none)``, localhost)."""
    if not name:
        return False
    current = get()
    if current not in ("", "(none)", "localhost", "localhost.localdomain"):
        return False
    set_(name)
    _log.info("hostname set to %s from DHCP", name)
    return True
