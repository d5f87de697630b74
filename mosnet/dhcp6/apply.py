"""Put a DHCPv6 lease into the kernel (pyroute2) and onto disk.

The address is a /128 (RFC 8415 does not carry a prefix length; the on-link
prefix and the default route come from the RA). ``replace`` makes a renewal
change nothing but the lifetimes.
"""

from __future__ import annotations

import contextlib
import os
from typing import Any

from pyroute2.netlink.exceptions import NetlinkError

from mosnet.base import atomicfile, iproute, log
from mosnet.dhcp6.lease import Lease6

_log = log.get("dhcp6.apply")

FOREVER = 0xFFFFFFFF  # kernel "forever" lifetime


def _lft(seconds: float) -> int:
    return FOREVER if seconds == float("inf") else max(0, min(FOREVER - 1, int(seconds)))


def apply_lease6(lease: Lease6, ifname: str, now: float, *, ipr: Any = None) -> None:
    """Address with the remaining valid/preferred lifetimes on ``ifname``."""
    valid, preferred = lease.remaining(now)
    with iproute.session(ipr) as ip:
        idx = ip.link_lookup(ifname=ifname)[0]
        ip.addr(
            "replace",
            index=idx,
            address=str(lease.address),
            prefixlen=128,
            valid_lft=max(1, _lft(valid)),
            preferred_lft=_lft(preferred),
        )


def remove_lease6(lease: Lease6, ifname: str, *, ipr: Any = None) -> None:
    """Undo ``apply_lease6`` (valid lifetime over); a missing address is fine."""
    with iproute.session(ipr) as ip:
        idx = ip.link_lookup(ifname=ifname)[0]
        with contextlib.suppress(NetlinkError):
            ip.addr("del", index=idx, address=str(lease.address), prefixlen=128)


def write_lease(lease: Lease6, ifname: str, directory: str) -> bool:
    """Write ``lease6-<ifname>.json`` atomically; a failure keeps the old file and is logged."""
    path = os.path.join(directory, f"lease6-{ifname}.json")
    return atomicfile.record_json(path, {"ifname": ifname, **lease.to_json()}, _log)


def remove_lease(ifname: str, directory: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(os.path.join(directory, f"lease6-{ifname}.json"))
