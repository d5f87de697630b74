"""Guest addresses learned from guest frames (issue 6 §2, §4).

Both bridge backends learn which IP lives behind which guest MAC (and, on
OVS, which port) from what the guest itself sends: ARP, IPv4/IPv6 sources,
NS/NA. The proxy then answers ARP/NDP for those addresses with the NIC MAC.

Pure apart from the injected clock. Never learned: the host's own addresses
and the gateways (a guest claiming them must not make us poison the
provider's neighbour tables), multicast, unspecified and loopback addresses,
and anything from a multicast or zero source MAC.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address

from mosnet.l2 import frames, nd
from mosnet.proxy.answers import ProxyConfig

IpAddress = IPv4Address | IPv6Address
DEFAULT_MAX = 1024


@dataclass(frozen=True)
class Binding:
    mac: bytes
    port: int
    index: int  # stable while the address stays bound; OVS cookies carry it
    seen: float


def _usable(ip: IpAddress) -> bool:
    return not (ip.is_multicast or ip.is_unspecified or ip.is_loopback or ip == _BCAST)


_BCAST = IPv4Address("255.255.255.255")


def _ipv6_addresses(payload: bytes) -> list[IpAddress]:
    ip6 = nd.IPv6.decode(payload)
    found: list[IpAddress] = [ip6.src]
    if ip6.next_header == nd.IPPROTO_ICMPV6 and ip6.payload[:1] == bytes([nd.ICMP6_NA]):
        try:
            msg = nd.decode_ndp(ip6, check_sum=False)
        except frames.FrameError:
            return found
        found.append(msg.target)  # an NA names the address its sender owns
    return found


def frame_addresses(frame: bytes) -> tuple[bytes, list[IpAddress]]:
    """(source MAC, the addresses this frame shows its sender owns); never raises."""
    try:
        eth = frames.Ethernet.decode(frame)
        if eth.ethertype == frames.ETH_P_ARP:
            found: list[IpAddress] = [frames.Arp.decode(eth.payload).spa]
        elif eth.ethertype == frames.ETH_P_IP and len(eth.payload) >= 20:
            found = [IPv4Address(eth.payload[12:16])]
        elif eth.ethertype == frames.ETH_P_IPV6:
            found = _ipv6_addresses(eth.payload)
        else:
            found = []
    except (frames.FrameError, ValueError):
        return b"", []
    return eth.src, [ip for ip in dict.fromkeys(found) if _usable(ip)]


def reserved_for(proxy: ProxyConfig) -> frozenset[IpAddress]:
    """What no guest may claim: the host's addresses (its link-local too) and gateways."""
    host_ll = nd.link_local_eui64(proxy.nat_mac)
    return frozenset(proxy.v4 | proxy.v6 | proxy.gateways | {host_ll})


class GuestTable:
    """IP -> Binding, bounded; ``timeout`` None means "until forgotten"."""

    def __init__(
        self,
        reserved: frozenset[IpAddress],
        clock: Callable[[], float],
        *,
        timeout: float | None = None,
        max_entries: int = DEFAULT_MAX,
    ) -> None:
        self.reserved = reserved
        self.clock = clock
        self.timeout = timeout
        self.max_entries = max_entries
        self._by_ip: dict[IpAddress, Binding] = {}
        self._next_index = 1

    def _alive(self, b: Binding) -> bool:
        return self.timeout is None or self.clock() - b.seen < self.timeout

    def __contains__(self, ip: object) -> bool:
        b = self._by_ip.get(ip)  # type: ignore[call-overload]
        return b is not None and self._alive(b)

    def __len__(self) -> int:
        return sum(1 for b in self._by_ip.values() if self._alive(b))

    def __iter__(self) -> Iterator[IpAddress]:
        return iter([ip for ip, b in self._by_ip.items() if self._alive(b)])

    def get(self, ip: IpAddress) -> Binding | None:
        b = self._by_ip.get(ip)
        return b if b is not None and self._alive(b) else None

    def learn(self, ip: IpAddress, mac: bytes, port: int = 0) -> tuple[Binding, bool] | None:
        """Record that ``ip`` lives at ``mac``/``port``: (binding, new or moved), or None."""
        if ip in self.reserved or not _usable(ip) or len(mac) != 6 or mac[0] & 1:
            return None
        if mac == frames.ZERO_MAC:
            return None
        old = self._by_ip.get(ip)
        if old is not None and old.mac == mac and old.port == port and self._alive(old):
            self._by_ip[ip] = Binding(mac, port, old.index, self.clock())
            return self._by_ip[ip], False
        self._expire()
        if old is None and len(self._by_ip) >= self.max_entries:
            return None  # full: a flood of fake sources must not grow us without bound
        index = old.index if old is not None else self._take_index()
        self._by_ip[ip] = Binding(mac, port, index, self.clock())
        return self._by_ip[ip], True

    def _take_index(self) -> int:
        index = self._next_index
        self._next_index = self._next_index % 0xFFFFFF + 1
        return index

    def _expire(self) -> None:
        for ip in [ip for ip, b in self._by_ip.items() if not self._alive(b)]:
            del self._by_ip[ip]

    def forget(self, ip: IpAddress) -> Binding | None:
        return self._by_ip.pop(ip, None)

    def by_index(self, index: int) -> IpAddress | None:
        return next((ip for ip, b in self._by_ip.items() if b.index == index), None)

    def forget_port(self, port: int) -> list[IpAddress]:
        gone = [ip for ip, b in self._by_ip.items() if b.port == port]
        for ip in gone:
            del self._by_ip[ip]
        return gone
