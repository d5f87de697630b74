"""A DHCPv4 lease as plan actions: its address, MTU and routes (pure).

The boot and the daemon put every (re)bound lease into the kernel through
these actions (``netapply.apply_lease``), so ``mosnet plan`` and the boot log
show the lines that are executed. Replace semantics as everywhere: a renewal
only refreshes the lifetimes.
"""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Interface, IPv4Network

from mosnet.dhcp4.lease import Lease
from mosnet.topology.actions import Action, AddAddress, AddRoute, SetMtu

DEFAULT = IPv4Network("0.0.0.0/0")


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


def route_actions(lease: Lease, dev: str) -> tuple[AddRoute, ...]:
    return tuple(
        AddRoute(dev, dst, gw, onlink, proto="dhcp") for dst, gw, onlink in planned_routes(lease)
    )


def lease_actions(lease: Lease, dev: str, now: float) -> tuple[Action, ...]:
    """Address (lifetime = what is left of the lease), MTU, routes on ``dev``."""
    left = max(1, int(lease.remaining(now)))
    # A /32 (or RFC 3021 /31) has no broadcast address: setting one makes the
    # kernel add a "broadcast <our address>" route to the local table.
    brd = lease.network.broadcast_address if lease.prefixlen <= 30 else None
    iface = IPv4Interface(f"{lease.address}/{lease.prefixlen}")
    out: list[Action] = [AddAddress(dev, iface, lifetime=left, broadcast=brd)]
    if lease.mtu is not None:
        out.append(SetMtu(dev, lease.mtu))
    return (*out, *route_actions(lease, dev))
