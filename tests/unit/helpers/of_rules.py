"""br-mosnet's flows for two guests, and their addresses, for the mosnet.ovs.ofrules tests."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv6Address

from mosnet.l2 import nd
from mosnet.ovs.ofrules import Flow, Guest, address_flows, base_flows, guest_flows

NAT = bytes.fromhex("02aa00000001")
MAC_A = bytes.fromhex("02cc00000003")
MAC_B = bytes.fromhex("02dd00000004")
STRANGER = bytes.fromhex("02ee00000005")
PROVIDER = bytes.fromhex("02bb00000002")
A, B = Guest(3, MAC_A), Guest(4, MAC_B)
GUEST_PORTS = [3, 4]
A4, B4, A6 = IPv4Address("10.70.0.50"), IPv4Address("10.70.0.51"), IPv6Address("fd00:70::50")
GW4, GW6 = IPv4Address("10.70.0.1"), IPv6Address("fe80::1")
A_LL = nd.link_local_eui64(MAC_A)
ETH_ARP, ETH_IP, ETH_IPV6 = 0x0806, 0x0800, 0x86DD


def full_table() -> list[Flow]:
    return [
        *base_flows(GUEST_PORTS),
        *guest_flows(A, NAT, GUEST_PORTS),
        *guest_flows(B, NAT, GUEST_PORTS),
        *address_flows(A4, A, 1),
        *address_flows(A6, A, 2),
        *address_flows(B4, B, 3),
    ]
