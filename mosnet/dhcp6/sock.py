"""The DHCPv6 client socket: UDP [link-local]:546 on one interface.

Unlike DHCPv4 no raw socket is needed: the link-local address exists before
any DHCP, and servers answer to it. Right after link-up it is still
tentative (DAD, ~1 s) and bind(2) refuses it, so we wait for DAD (bounded)
and only then fall back to IPV6_FREEBIND.
"""

from __future__ import annotations

import select
import socket
from typing import Protocol

from mosnet.base import log
from mosnet.base.netif import interface_mac
from mosnet.dhcp6 import codec
from mosnet.l2.nd import link_local, link_local_eui64

SO_BINDTODEVICE = 25
IPV6_FREEBIND = 78
_log = log.get("dhcp6.sock")


class Transport(Protocol):
    """What the client needs from the network; tests inject a fake."""

    mac: bytes

    def send(self, payload: bytes) -> None:
        """To All_DHCP_Relay_Agents_and_Servers on the link."""
        ...

    def recv(self, timeout: float) -> bytes | None:
        """One DHCPv6 payload or None after ``timeout`` seconds."""
        ...

    def close(self) -> None: ...


class UdpTransport:
    """The real transport; needs CAP_NET_RAW (SO_BINDTODEVICE) and port 546."""

    def __init__(self, ifname: str, dad_wait: float = 3.0) -> None:
        self.ifname = ifname
        self.ifindex = socket.if_nametoindex(ifname)
        self.mac = interface_mac(ifname)
        self.src = link_local(ifname, dad_wait)
        self._sock = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
        try:
            self._setup()
        except OSError:
            self._sock.close()
            raise

    def _setup(self) -> None:
        sock = self._sock
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, SO_BINDTODEVICE, self.ifname.encode())
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_IF, self.ifindex)
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_LOOP, 0)
        src = self.src
        if src is None:
            # still tentative (or DAD failed): bind the EUI-64 address anyway
            _log.warning("dhcp6 %s: no usable link-local yet, using IPV6_FREEBIND", self.ifname)
            sock.setsockopt(socket.IPPROTO_IPV6, IPV6_FREEBIND, 1)
            # the kernel's (possibly stable-privacy) address; EUI-64 if none yet
            src = link_local(self.ifname, tentative_ok=True) or link_local_eui64(self.mac)
        sock.bind((str(src), codec.CLIENT_PORT, 0, self.ifindex))

    def send(self, payload: bytes) -> None:
        self._sock.sendto(payload, (str(codec.ALL_SERVERS), codec.SERVER_PORT, 0, self.ifindex))

    def recv(self, timeout: float) -> bytes | None:
        ready, _, _ = select.select([self._sock], [], [], max(0.0, timeout))
        if not ready:
            return None
        data, addr = self._sock.recvfrom(65535)
        if addr[1] != codec.SERVER_PORT:
            return b""  # only servers/relays talk from 547
        return data

    def close(self) -> None:
        self._sock.close()
