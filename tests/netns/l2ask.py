"""Ask who has an address, from inside a netns: ``python l2ask.py IFNAME SRC TARGET [...]``.

Sends an ARP request (IPv4 target) or a Neighbor Solicitation (IPv6) out of
IFNAME with SRC as sender address and prints one line per target:
``<target> <mac of every answer, space-separated>`` ("-" when nobody
answered within 1.5 s). Used by the MAC NAT tests to check what the ARP/NDP
proxy answers and what it must leave alone, the way a provider's router asks.
"""

from __future__ import annotations

import select
import socket
import sys
import time
from ipaddress import IPv4Address, IPv6Address, ip_address

from mosnet.base import netif
from mosnet.l2 import frames, nd

WAIT = 1.5


def _answers(sock: socket.socket, target: IPv4Address | IPv6Address) -> list[str]:
    found: list[str] = []
    end = time.monotonic() + WAIT
    while time.monotonic() < end:
        if not select.select([sock], [], [], max(0.0, end - time.monotonic()))[0]:
            break
        frame, addr = sock.recvfrom(2048)
        if addr[2] == 4:  # PACKET_OUTGOING: our own request
            continue
        try:
            eth = frames.Ethernet.decode(frame)
            if isinstance(target, IPv4Address) and eth.ethertype == frames.ETH_P_ARP:
                arp = frames.Arp.decode(eth.payload)
                if arp.op == frames.ARP_REPLY and arp.spa == target:
                    found.append(frames.mac_str(arp.sha))
            elif isinstance(target, IPv6Address) and eth.ethertype == frames.ETH_P_IPV6:
                msg = nd.decode_ndp(nd.IPv6.decode(eth.payload), check_sum=False)
                if isinstance(msg, nd.NeighborAdvertisement) and msg.target == target:
                    found.append(frames.mac_str(msg.tllao or eth.src))
        except frames.FrameError:
            continue
    return found


def ask(ifname: str, src: str, target_text: str) -> list[str]:
    mac = netif.interface_mac(ifname)
    target = ip_address(target_text)
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0003))
    sock.bind((ifname, 0))
    if isinstance(target, IPv4Address):
        frame = frames.arp_request(mac, IPv4Address(src), target).frame()
    else:
        frame = nd.ns_frame(mac, IPv6Address(src), target)
    sock.send(frame)
    try:
        return _answers(sock, target)
    finally:
        sock.close()


def main() -> int:
    ifname, src, *targets = sys.argv[1:]
    for target in targets:
        print(target, " ".join(ask(ifname, src, target)) or "-", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
