"""A DHCPv6 lease (IA_NA address) and stateless information, read from a server's reply.

``lease_from`` checks an ADVERTISE or REPLY the way RFC 8415 21.4 and 18.2.10
ask (status codes, T1 <= T2, a usable address) and turns it into a
``Lease6`` whose times count on the caller's monotonic clock; ``Info`` is
what an INFORMATION-REQUEST brings back. No I/O, no state.
"""

from __future__ import annotations

from dataclasses import dataclass
from ipaddress import IPv6Address
from typing import Any

from mosnet.dhcp6 import codec


def _f(value: int) -> float:
    return float("inf") if value == codec.INFINITY else float(value)


@dataclass(frozen=True)
class Lease6:
    address: IPv6Address
    preferred: float
    valid: float
    t1: float
    t2: float
    iaid: int
    server_id: bytes
    acquired_at: float  # injected monotonic clock, when the REQUEST/RENEW went out
    dns: tuple[IPv6Address, ...] = ()
    domains: tuple[str, ...] = ()

    @property
    def expires_at(self) -> float:
        return self.acquired_at + self.valid

    def renew_at(self) -> float:
        return self.acquired_at + self.t1

    def rebind_at(self) -> float:
        return self.acquired_at + self.t2

    def remaining(self, now: float) -> tuple[float, float]:
        """(valid, preferred) seconds left."""
        age = max(0.0, now - self.acquired_at)
        return max(0.0, self.valid - age), max(0.0, self.preferred - age)

    def to_json(self) -> dict[str, Any]:
        def num(x: float) -> float | str:
            return "infinity" if x == float("inf") else x

        return {
            "address": str(self.address),
            "prefixlen": 128,
            "iaid": self.iaid,
            "preferred": num(self.preferred),
            "valid": num(self.valid),
            "t1": num(self.t1),
            "t2": num(self.t2),
            "server_id": self.server_id.hex(),
            "dns": [str(d) for d in self.dns],
            "domains": list(self.domains),
            "acquired_at": self.acquired_at,
        }


@dataclass(frozen=True)
class Info:
    """Stateless configuration (INFORMATION-REQUEST reply)."""

    dns: tuple[IPv6Address, ...]
    domains: tuple[str, ...]
    refresh: float


def lease_from(msg: codec.Message, iaid: int, now: float) -> Lease6 | str:
    """The usable lease in an ADVERTISE/REPLY, or why there is none."""
    status = msg.status
    if status is not None and status.code != codec.SUCCESS:
        return f"status {status}"
    server = msg.server_id
    if server is None:
        return "no server id"
    ia = next((i for i in msg.ia_nas if i.iaid == iaid), None)
    if ia is None:
        return "no IA_NA for us"
    if ia.status is not None and ia.status.code != codec.SUCCESS:
        return f"IA_NA status {ia.status}"
    addr = next(
        (
            a
            for a in ia.addrs
            if a.valid
            and a.preferred <= a.valid
            and (a.status is None or a.status.code == codec.SUCCESS)
        ),
        None,
    )
    if addr is None:
        return "no usable address in IA_NA"
    if ia.t1 and ia.t2 and ia.t1 > ia.t2:
        return "T1 > T2"  # RFC 8415 21.4: discard the IA
    valid, pref = _f(addr.valid), _f(addr.preferred)
    # 0 means "client's choice" (21.4): the RFC's suggested 0.5 / 0.8 of preferred
    t1 = _f(ia.t1) if ia.t1 else pref * 0.5
    t2 = _f(ia.t2) if ia.t2 else pref * 0.8
    t2 = min(t2, valid)
    t1 = min(t1, t2)
    return Lease6(addr.address, pref, valid, t1, t2, iaid, server, now, msg.dns, msg.domains)
