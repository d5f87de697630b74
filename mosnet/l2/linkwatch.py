"""Carrier changes of one interface as rtnetlink notifications (RTNLGRP_LINK).

The DHCP daemon used to read /sys/class/net/<if>/carrier once a second to
notice a cable or switch flap; a NETLINK_ROUTE socket subscribed to link
notifications is readable exactly when something changed, so the loop can
sleep until then. A raw socket and a dozen lines of parsing are lighter than
pyroute2's IPRoute for one flag. A classic BPF filter keeps other
interfaces' notifications (guest taps coming and going) in the kernel.

The carrier is ``IFF_LOWER_UP`` of the message's flags: the kernel sets it
exactly when the interface is up and ``netif_carrier_ok``, which is what the
sysfs ``carrier`` file shows (and an admin-down interface reads as False
there, as here). A removed interface is None ("cannot tell").
"""

from __future__ import annotations

import contextlib
import errno
import socket
import struct
from collections.abc import Callable

from mosnet.base.netif import carrier
from mosnet.l2 import bpf

RTMGRP_LINK = 1
RTM_NEWLINK, RTM_DELLINK = 16, 17
IFF_LOWER_UP = 0x10000
SO_RCVBUF_SIZE = 65536
_NLMSGHDR = struct.Struct("=IHHII")
_IFINFOMSG = struct.Struct("=BxHiII")
_INDEX_OFFSET = _NLMSGHDR.size + 4  # ifinfomsg.ifi_index


def index_filter(ifindex: int) -> bytes:
    """Accept messages whose ifi_index is ``ifindex``.

    BPF loads words big-endian; netlink is host-endian, hence the byte swap.
    """
    k = int.from_bytes(struct.pack("=i", ifindex), "big")
    return bpf.program(
        bpf.stmt(bpf.LD, _INDEX_OFFSET),
        bpf.jump(bpf.JEQ, k, 0, 1),
        bpf.ACCEPT,
        bpf.DROP,
    )


def parse(data: bytes, ifindex: int) -> list[bool | None]:
    """The carrier states that ``data`` (one recv) reports for ``ifindex``, in order."""
    states: list[bool | None] = []
    offset = 0
    while offset + _NLMSGHDR.size <= len(data):
        length, kind, _, _, _ = _NLMSGHDR.unpack_from(data, offset)
        if length < _NLMSGHDR.size or offset + length > len(data):
            break  # truncated: the caller resyncs from sysfs on the next read
        body = offset + _NLMSGHDR.size
        if kind in (RTM_NEWLINK, RTM_DELLINK) and length >= _NLMSGHDR.size + _IFINFOMSG.size:
            _, _, index, flags, _ = _IFINFOMSG.unpack_from(data, body)
            if index == ifindex:
                states.append(None if kind == RTM_DELLINK else bool(flags & IFF_LOWER_UP))
        offset += (length + 3) & ~3  # NLMSG_ALIGN
    return states


def link_socket(program: bytes | None = None) -> socket.socket:
    """A non-blocking rtnetlink socket on the link group, ``program`` filtering it."""
    sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, 0)
    try:
        if program is not None:
            with contextlib.suppress(OSError):  # without it: more wake-ups, same answers
                bpf.attach(sock, program)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, SO_RCVBUF_SIZE)
        sock.bind((0, RTMGRP_LINK))
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock


class LinkWatch:
    """A non-blocking subscription to one interface's link notifications."""

    def __init__(self, ifname: str, resync: Callable[[], bool | None] | None = None) -> None:
        self.ifindex = socket.if_nametoindex(ifname)
        self._resync = resync or (lambda: carrier(ifname))
        self._sock = link_socket(index_filter(self.ifindex))

    def fileno(self) -> int:
        return self._sock.fileno()

    def changes(self) -> list[bool | None]:
        """Carrier states reported since the last call (oldest first); never blocks."""
        states: list[bool | None] = []
        while True:
            try:
                data = self._sock.recv(65536)
            except (BlockingIOError, InterruptedError):
                return states
            except OSError as exc:
                if exc.errno != errno.ENOBUFS:
                    raise
                # the queue overflowed and we missed some: ask sysfs where it stands now
                states.append(self._resync())
                continue
            states += parse(data, self.ifindex)

    def close(self) -> None:
        self._sock.close()
