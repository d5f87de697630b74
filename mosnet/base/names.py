"""The names mosnet gives what it creates: the bridge, its ports, the bridge's MAC.

Shared by the plan, both bridge backends, MAC NAT, the proxy and the hand-off
to the real system, which must all mean the same links.
"""

from __future__ import annotations

BRIDGE = "br-mosnet"
STATIC_PORT = "public"  # the internal port that carries a static address
DHCP_PORT = "mos"  # the internal port that carries the DHCP lease
PEER_SUFFIX = "-br"  # Linux bridge: the bridge end of the port's veth pair
OVS_RUN_DIR = "/run/openvswitch"


def bridge_mac(mac: str) -> str:
    """The uplink MAC with the locally-administered bit flipped.

    A Linux bridge without an explicit MAC takes the lowest port MAC, which
    may be the NIC's; it would then swallow frames meant for the internal port.
    """
    first, _, rest = mac.lower().partition(":")
    return f"{int(first, 16) ^ 0x02:02x}:{rest}"
