"""Tell the segment where an address we just configured lives.

After static mode puts an address on a NIC, switches learn our MAC and the
gateway refreshes its neighbour entry (maybe still pointing at the previous
machine, or at the MAC of an earlier boot stage) from gratuitous ARP and
unsolicited Neighbor Advertisements. A boot cannot wait the classic 1 s
between copies, so the first round goes out at once; ``interval`` spaces the
repeats (0 sends all copies back to back). The ARP/NDP proxy sends its
announcements through ``send_rounds`` too.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Sequence
from ipaddress import IPv4Address, IPv6Address

from mosnet.base import log
from mosnet.l2 import frames, nd
from mosnet.l2.packet import close_later, send_socket

_log = log.get("announce")


def send_rounds(
    ifname: str, burst: Sequence[tuple[int, bytes]], count: int, interval: float
) -> int:
    """Send ``burst`` ((ethertype, frame) pairs) ``count`` times, ``interval`` s apart.

    Returns the frames sent. Never raises: an announcement is best effort and
    must not stop the boot (nor the proxy).
    """
    sent = 0
    sock: socket.socket | None = None
    try:
        sock = send_socket()
        for round_ in range(count):
            if round_ and interval > 0:
                time.sleep(interval)
            for ethertype, frame in burst:
                sock.sendto(frame, (ifname, ethertype))
                sent += 1
    except OSError as exc:
        _log.warning("%s: announcement failed after %d frames: %s", ifname, sent, exc)
    finally:
        if sock is not None:
            close_later([sock])  # closing waits ~10 ms for the kernel
    return sent


def gratuitous_arp(
    ifname: str, mac: bytes, addr: IPv4Address, count: int = 2, interval: float = 0.2
) -> int:
    """Broadcast ``count`` rounds of a gratuitous ARP request plus reply for ``addr``."""
    arps = [(frames.ETH_P_ARP, arp.frame()) for arp in frames.gratuitous_arps(mac, addr)]
    sent = send_rounds(ifname, arps, count, interval)
    _log.info(
        "%s: gratuitous ARP for %s at %s (%d frames)", ifname, addr, frames.mac_str(mac), sent
    )
    return sent


def unsolicited_na(
    ifname: str,
    mac: bytes,
    addr6: IPv6Address,
    count: int = 2,
    interval: float = 0.2,
    src: IPv6Address | None = None,
) -> int:
    """``count`` unsolicited NAs for ``addr6`` to ff02::1 (O=1, S=0, TLLAO = ``mac``).

    The source defaults to ``addr6`` itself, which is assigned to the NIC.
    """
    frame = nd.unsolicited_na_frame(mac, addr6, src)
    sent = send_rounds(ifname, [(frames.ETH_P_IPV6, frame)], count, interval)
    _log.info(
        "%s: unsolicited NA for %s at %s (%d frames)", ifname, addr6, frames.mac_str(mac), sent
    )
    return sent
