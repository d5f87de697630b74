"""Put a lease into the kernel (pyroute2) and onto disk.

Every netlink call uses replace semantics so applying the same lease twice,
or a renewed one, changes nothing but the address lifetimes.
"""

from __future__ import annotations

import contextlib
import os
import socket
from collections.abc import Callable
from ipaddress import IPv4Address, IPv4Network
from typing import Any

from pyroute2.netlink.exceptions import NetlinkError

from mosnet import atomicfile, iproute, log
from mosnet.dhcp4.lease import Lease

RTNH_F_ONLINK = 4
RT_SCOPE_LINK = 253
RTPROT_DHCP = 16  # "proto dhcp" in iproute2
DEFAULT = IPv4Network("0.0.0.0/0")
_log = log.get("dhcp4.apply")


def planned_routes(lease: Lease) -> list[tuple[IPv4Network, IPv4Address | None, bool]]:
    """(destination, gateway or None for on-link, onlink flag), in install order.

    RFC 3442: when option 121 is present the router option is ignored.
    A gateway outside our subnet (e.g. a /32 lease) first gets a link-scope
    host route, and routes through it carry the onlink flag.
    """
    wanted: list[tuple[IPv4Network, IPv4Address]] = list(lease.static_routes)
    if not wanted and lease.routers:
        wanted = [(DEFAULT, lease.routers[0])]
    plan: list[tuple[IPv4Network, IPv4Address | None, bool]] = []
    subnet = lease.network
    for dst, gw in wanted:
        if gw == IPv4Address(0):
            plan.append((dst, None, False))
            continue
        onlink = gw not in subnet
        host = (IPv4Network(gw), None, False)
        if onlink and host not in plan:
            plan.append(host)
        plan.append((dst, gw, onlink))
    return plan


def apply(lease: Lease, ifname: str, now: float, *, ipr: Any = None) -> None:
    """Address (lifetime = remaining lease), MTU and routes on ``ifname``."""
    with iproute.session(ipr) as ip:
        idx = ip.link_lookup(ifname=ifname)[0]
        left = max(1, int(lease.remaining(now)))
        extra: dict[str, Any] = {}
        if lease.prefixlen <= 30:
            # a /32 (or RFC 3021 /31) has no broadcast address: setting one makes the
            # kernel add a "broadcast <our address>" route to the local table
            extra["broadcast"] = str(lease.network.broadcast_address)
        ip.addr(
            "replace",
            index=idx,
            address=str(lease.address),
            prefixlen=lease.prefixlen,
            valid_lft=left,
            preferred_lft=left,
            **extra,
        )
        if lease.mtu is not None:
            ip.link("set", index=idx, mtu=lease.mtu)
        for dst, gw, onlink in planned_routes(lease):
            ip.route("replace", **_route_args(idx, dst, gw, onlink))


def remove(lease: Lease, ifname: str, *, ipr: Any = None) -> None:
    """Undo ``apply`` (lease expired or NAKed); missing pieces are fine."""
    with iproute.session(ipr) as ip:
        idx = ip.link_lookup(ifname=ifname)[0]
        for dst, gw, onlink in reversed(planned_routes(lease)):
            with contextlib.suppress(NetlinkError):
                ip.route("del", **_route_args(idx, dst, gw, onlink))
        with contextlib.suppress(NetlinkError):
            ip.addr("del", index=idx, address=str(lease.address), prefixlen=lease.prefixlen)


def _route_args(idx: int, dst: IPv4Network, gw: IPv4Address | None, onlink: bool) -> dict[str, Any]:
    args: dict[str, Any] = {
        "dst": str(dst.network_address),
        "dst_len": dst.prefixlen,
        "oif": idx,
        "proto": RTPROT_DHCP,
    }
    if gw is None:
        args["scope"] = RT_SCOPE_LINK
    else:
        args["gateway"] = str(gw)
    if onlink:
        args["flags"] = RTNH_F_ONLINK
    return args


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
