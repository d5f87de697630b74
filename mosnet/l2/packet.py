"""AF_PACKET sockets: filtered receivers, send-only senders, multicast, closing.

Shared by everything that puts its own frames on a wire: the gateway probe,
the DHCPv4 transport, announcements, the ARP/NDP proxy and the NDP relay.
Receivers ask for PACKET_AUXDATA so a reader can tell whether a frame's
checksum is there to check (``checksum_ready``): frames we receive from our
own host may carry checksums left to offload.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
from collections.abc import Sequence

from mosnet.l2 import bpf

ETH_P_ALL = 0x0003
SOL_PACKET = 263
PACKET_ADD_MEMBERSHIP, PACKET_AUXDATA = 1, 8
PACKET_MR_MULTICAST = 0
PACKET_OUTGOING = 4  # sll_pkttype of frames this host sent
TP_STATUS_CSUMNOTREADY = 8
_AUXDATA = struct.Struct("IIIHHHH")  # struct tpacket_auxdata
AUXDATA_SPACE = socket.CMSG_SPACE(_AUXDATA.size)  # ancillary buffer size for recvmsg


def packet_socket(
    ifname: str,
    ethertype: int,
    program: bytes,
    kind: int = socket.SOCK_RAW,
    *,
    blocking: bool = False,
) -> socket.socket:
    """A socket on ``ifname`` that sees only ``program``'s frames, with PACKET_AUXDATA.

    ``kind`` SOCK_DGRAM strips the link-layer header (then ``program``'s
    offsets start at the network header).
    """
    # protocol 0 until the filter is attached: no unfiltered frames queue up
    sock = socket.socket(socket.AF_PACKET, kind, 0)
    try:
        bpf.attach(sock, program)
        sock.setsockopt(SOL_PACKET, PACKET_AUXDATA, 1)
        sock.bind((ifname, ethertype))
        sock.setblocking(blocking)
    except OSError:
        sock.close()
        raise
    return sock


def send_socket() -> socket.socket:
    """A raw socket for ``sendto(frame, (ifname, ethertype))`` only.

    Protocol 0 and no bind: it never queues received frames.
    """
    return socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)


def join_multicast(sock: socket.socket, ifname: str, mac: bytes) -> None:
    """Make the NIC accept frames to ``mac`` even though the kernel has no IPv6 on it."""
    mreq = struct.pack("iHH8s", socket.if_nametoindex(ifname), PACKET_MR_MULTICAST, 6, mac)
    sock.setsockopt(SOL_PACKET, PACKET_ADD_MEMBERSHIP, mreq)


def checksum_ready(ancdata: list[tuple[int, int, bytes]]) -> bool:
    """False if the frame's checksum was left to offload (cannot be verified)."""
    status = 0
    for level, kind, value in ancdata:
        if level == SOL_PACKET and kind == PACKET_AUXDATA and len(value) >= _AUXDATA.size:
            status = _AUXDATA.unpack_from(value)[0]
    return not status & TP_STATUS_CSUMNOTREADY


def close_later(socks: Sequence[socket.socket]) -> None:
    """Close AF_PACKET sockets off the boot path.

    The kernel's packet_release waits for an RCU grace period (~10 ms) per
    socket; three NICs would cost more than the probe itself.
    """
    if socks:
        threading.Thread(target=_close_all, args=(list(socks),), daemon=True).start()


def _close_all(socks: list[socket.socket]) -> None:
    for sock in socks:
        with contextlib.suppress(OSError):
            sock.close()
