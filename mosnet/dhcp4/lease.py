"""A validated DHCPv4 lease, built from an ACK.

Everything in here may end up in a kernel route, resolv.conf or the hostname,
so values are checked per RFC and unsafe names are dropped (with a reason),
never passed on.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from ipaddress import IPv4Address, IPv4Network
from typing import Any

from mosnet.base.errors import MosnetError
from mosnet.dhcp4 import codec

MIN_MTU = 576  # RFC 2132 9.1: smallest MTU a host must accept


class LeaseError(MosnetError):
    """An ACK that cannot be turned into a usable lease."""


def valid_name(name: str) -> str | None:
    """Why ``name`` is not a safe host/domain name, or None if it is."""
    if not name or len(name) > 253:
        return "empty or longer than 253"
    if name.startswith("-"):
        return "leading '-'"
    stripped = name[:-1] if name.endswith(".") else name
    for label in stripped.split("."):
        if len(label) > 63:
            return "label longer than 63"
        if not re.fullmatch(r"[A-Za-z0-9-]+", label):
            return "characters outside [A-Za-z0-9.-]"
    return None


def prefixlen_of(mask: IPv4Address) -> int:
    bits = int(mask)
    inverted = ~bits & 0xFFFFFFFF
    if inverted & (inverted + 1):  # ones then zeros only
        raise LeaseError(f"non-contiguous netmask {mask}")
    return 32 - inverted.bit_length()


@dataclass(frozen=True)
class Lease:
    address: IPv4Address
    prefixlen: int
    server_id: IPv4Address
    lease_time: float
    t1: float
    t2: float
    acquired_at: float  # injected monotonic clock, when the REQUEST went out
    routers: tuple[IPv4Address, ...] = ()
    static_routes: tuple[codec.Route, ...] = ()
    dns: tuple[IPv4Address, ...] = ()
    domain: str | None = None
    search: tuple[str, ...] = ()
    hostname: str | None = None
    mtu: int | None = None
    dropped: tuple[str, ...] = field(default=(), compare=False)

    @property
    def network(self) -> IPv4Network:
        return IPv4Network((self.address, self.prefixlen), strict=False)

    @property
    def expires_at(self) -> float:
        return self.acquired_at + self.lease_time

    def renew_at(self) -> float:
        return self.acquired_at + self.t1

    def rebind_at(self) -> float:
        return self.acquired_at + self.t2

    def remaining(self, now: float) -> float:
        return max(0.0, self.expires_at - now)

    def to_json(self) -> dict[str, Any]:
        return {
            "address": str(self.address),
            "prefixlen": self.prefixlen,
            "server_id": str(self.server_id),
            "routers": [str(r) for r in self.routers],
            "static_routes": [[str(n), str(g)] for n, g in self.static_routes],
            "dns": [str(d) for d in self.dns],
            "domain": self.domain,
            "search": list(self.search),
            "hostname": self.hostname,
            "mtu": self.mtu,
            "lease_time": self.lease_time,
            "t1": self.t1,
            "t2": self.t2,
            "acquired_at": self.acquired_at,
        }


def from_json(data: Mapping[str, Any]) -> Lease:
    """A lease as ``Lease.to_json`` recorded it (``lease-<if>.json``), checked again.

    A restarted daemon takes the lease over from this record, so a damaged
    file must not become an address: any bad field raises LeaseError.
    """
    try:
        lease_time = _seconds(data["lease_time"], "lease_time")
        t1, t2 = _seconds(data["t1"], "t1"), _seconds(data["t2"], "t2")
        lease = Lease(
            address=_addr(data["address"]),
            prefixlen=_int_in(data["prefixlen"], 0, 32, "prefixlen"),
            server_id=_addr(data["server_id"]),
            lease_time=lease_time,
            t1=t1,
            t2=t2,
            acquired_at=_seconds(data["acquired_at"], "acquired_at"),
            routers=tuple(_addr(a) for a in data["routers"]),
            static_routes=tuple(_route(r) for r in data["static_routes"]),
            dns=tuple(_addr(a) for a in data["dns"]),
            domain=_name_or_none(data.get("domain")),
            search=tuple(n for n in map(_name_or_none, data["search"]) if n),
            hostname=_name_or_none(data.get("hostname")),
            mtu=None if data.get("mtu") is None else _int_in(data["mtu"], MIN_MTU, 65535, "mtu"),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise LeaseError(f"recorded lease unusable: {type(exc).__name__} {exc}") from None
    if not 0 < t1 <= t2 <= lease_time:
        raise LeaseError(f"recorded lease unusable: times t1 {t1}, t2 {t2}, lease {lease_time}")
    return lease


def _text(value: object) -> str:
    if not isinstance(value, str):
        raise TypeError(f"expected a string, got {type(value).__name__}")
    return value


def _addr(value: object) -> IPv4Address:
    return IPv4Address(_text(value))


def _route(value: object) -> codec.Route:
    if not isinstance(value, list) or len(value) != 2:
        raise ValueError("a static route is not [network, gateway]")
    return IPv4Network(_text(value[0])), _addr(value[1])


def _seconds(value: object, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"{what}: not a finite number")
    if value < 0:
        raise ValueError(f"{what}: negative")
    return float(value)


def _int_in(value: object, low: int, high: int, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ValueError(f"{what}: not an integer in {low}..{high}")
    return value


def _name_or_none(value: object) -> str | None:
    if value is None:
        return None
    name = _text(value)
    if valid_name(name):
        raise ValueError(f"name {name!r}: {valid_name(name)}")
    return name


def normalise_times(lease_time: float, t1: float | None, t2: float | None) -> tuple[float, float]:
    """Return (t1, t2) with 0 < t1 < t2 < lease; bad values fall back to RFC defaults."""
    d1, d2 = lease_time * 0.5, lease_time * 0.875
    if t2 is None or not 0 < t2 < lease_time:
        t2 = d2
    if t1 is None or not 0 < t1 < t2:
        t1 = min(d1, t2 * 0.5) if t2 <= d1 else d1
    return t1, t2


def from_ack(msg: codec.Message, acquired_at: float) -> Lease:
    """Build a lease from an ACK; raise LeaseError if it is unusable."""
    if msg.yiaddr == codec.ZERO:
        raise LeaseError("ACK without yiaddr")
    server = msg.server_id
    if server is None:
        raise LeaseError("ACK without server identifier")
    lease_time = msg.u32(codec.OPT_LEASE_TIME)
    if not lease_time:
        raise LeaseError("ACK without a positive lease time")
    mask = msg.opt(codec.OPT_NETMASK)
    prefixlen = prefixlen_of(IPv4Address(mask)) if mask else _classful(msg.yiaddr)
    t1, t2 = normalise_times(
        float(lease_time), _f(msg.u32(codec.OPT_T1)), _f(msg.u32(codec.OPT_T2))
    )
    dropped: list[str] = []
    lease = Lease(
        address=msg.yiaddr,
        prefixlen=prefixlen,
        server_id=server,
        lease_time=float(lease_time),
        t1=t1,
        t2=t2,
        acquired_at=acquired_at,
        routers=msg.addrs(codec.OPT_ROUTER),
        static_routes=msg.routes() or (),
        dns=msg.addrs(codec.OPT_DNS),
        mtu=_mtu(msg, dropped),
        hostname=_name(msg.text(codec.OPT_HOSTNAME), "hostname", dropped),
        domain=_name(msg.text(codec.OPT_DOMAIN), "domain", dropped),
        search=tuple(n for n in (_name(s, "search", dropped) for s in msg.search()) if n),
    )
    return replace(lease, dropped=tuple(dropped))


def _f(value: int | None) -> float | None:
    return float(value) if value is not None else None


def _classful(addr: IPv4Address) -> int:
    first = addr.packed[0]
    return 8 if first < 128 else 16 if first < 192 else 24


def _mtu(msg: codec.Message, dropped: list[str]) -> int | None:
    raw = msg.opt(codec.OPT_MTU)
    if raw is None:
        return None
    mtu = int.from_bytes(raw, "big")
    if mtu < MIN_MTU:
        dropped.append(f"mtu {mtu}: below {MIN_MTU}")
        return None
    return mtu


def _name(value: str | None, what: str, dropped: list[str]) -> str | None:
    if value is None:
        return None
    reason = valid_name(value)
    if reason:
        dropped.append(f"{what} {value!r}: {reason}")
        return None
    return value.rstrip(".")
