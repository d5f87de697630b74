"""Addresses and a frame shared by the mosnet.ovs.openflow tests."""

from __future__ import annotations

from ipaddress import IPv4Address

MAC = bytes.fromhex("525400123456")
NAT = bytes.fromhex("02aabbccddee")
MCAST = bytes.fromhex("010000000000")


def arp_frame() -> bytes:
    from mosnet.l2 import frames

    return frames.arp_request(MAC, IPv4Address("10.0.0.2"), IPv4Address("10.0.0.5")).frame()
