"""Tell the segment where an address we just configured lives.

After static mode puts an address on a NIC, switches learn our MAC and the
gateway refreshes its neighbour entry (maybe still pointing at the previous
machine, or at the MAC of an earlier boot stage) from gratuitous ARP and
unsolicited Neighbor Advertisements. A boot cannot wait the classic 1 s
between copies, so the first round goes out at once; ``interval`` spaces the
repeats (0 sends all copies back to back).
"""

from __future__ import annotations

import socket
import time
from collections.abc import Sequence
from ipaddress import IPv4Address, IPv6Address

from mosnet import l2, log, probe

_log = log.get("announce")


def _send(ifname: str, ethertype: int, frames: Sequence[bytes], count: int, interval: float) -> int:
    """Send ``frames`` ``count`` times, ``interval`` s apart; returns frames sent.

    Never raises: an announcement is best effort and must not stop the boot.
    """
    sent = 0
    sock: socket.socket | None = None
    try:
        # protocol 0 and no bind: a send-only socket never queues received frames
        sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
        for round_ in range(count):
            if round_ and interval > 0:
                time.sleep(interval)
            for frame in frames:
                sock.sendto(frame, (ifname, ethertype))
                sent += 1
    except OSError as exc:
        _log.warning("%s: announcement failed after %d frames: %s", ifname, sent, exc)
    finally:
        if sock is not None:
            probe.close_later([sock])  # closing waits ~10 ms for the kernel
    return sent


def gratuitous_arp(
    ifname: str, mac: bytes, addr: IPv4Address, count: int = 2, interval: float = 0.2
) -> int:
    """Broadcast ``count`` rounds of a gratuitous ARP request plus reply for ``addr``."""
    frames = [arp.frame() for arp in l2.gratuitous_arps(mac, addr)]
    sent = _send(ifname, l2.ETH_P_ARP, frames, count, interval)
    _log.info("%s: gratuitous ARP for %s at %s (%d frames)", ifname, addr, l2.mac_str(mac), sent)
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
    frame = l2.unsolicited_na_frame(mac, addr6, src)
    sent = _send(ifname, l2.ETH_P_IPV6, [frame], count, interval)
    _log.info("%s: unsolicited NA for %s at %s (%d frames)", ifname, addr6, l2.mac_str(mac), sent)
    return sent
