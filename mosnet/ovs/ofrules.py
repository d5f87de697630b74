"""br-mosnet's OpenFlow table in OVS mode: which flows exist for which guest (issue 6 §2).

Pure: flows as data (``Flow``); ``mosnet.ovs.ofcontrol`` decides when to send
them and ``mosnet.ovs.openflow`` encodes them. Port numbers are fixed when the
bridge is built (``ofport_request``): the uplink NIC is 1, the host's
internal port (``public``/``mos``) is 2; every other port is a guest.

The provider only ever sees the NIC MAC (NM):

* **base** (always): ARP requests and Neighbor Solicitations from the uplink
  go to the controller (the proxy answers for guests) and to the host;
  other uplink frames go to the host, broadcasts to the host and known
  guests; host frames go out the uplink. Anything else (an unknown guest)
  goes to the controller, which learns the guest's port and MAC.
* **per guest MAC** (learned, no timeout): frames to it go to its port; its
  frames leave the uplink with ``eth_src`` = NM, and ARP ``sha``, NDP
  ``nd_sll``/``nd_tll`` = NM too (OVS recomputes the ICMPv6 checksum). ARP
  and NS/NA also go to the controller, which learns the guest's addresses.
  Router solicitations/adverts and redirects from guests are dropped: their
  link-layer options cannot be rewritten by OVS.
* **per guest IP** (learned, ``idle_timeout``): uplink frames for that IP
  get the guest's MAC as ``eth_dst`` (and ARP ``tha``) and go to its port.
  The IPv4/IPv6 flow asks for a flow-removed message, so the controller
  forgets the address (and stops answering ARP/NDP for it) when it expires.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from ipaddress import IPv4Address, IPv6Address

from mosnet.l2 import frames
from mosnet.l2.nd import ICMP6_NS
from mosnet.ovs.openflow import OFPCML_NO_BUFFER, OFPP_CONTROLLER, Action, Match, Output, SetField

NIC_PORT = 1
HOST_PORT = 2
COOKIE_PREFIX = 0x6D6F736E << 32  # "mosn": our flows, whatever else shares the bridge
KIND_BASE, KIND_GUEST, KIND_ADDR = 1, 2, 3
KIND_SHIFT = 24
MULTICAST = b"\x01\x00\x00\x00\x00\x00"
ETH_ARP, ETH_IP, ETH_IPV6 = 0x0806, 0x0800, 0x86DD
ICMPV6 = 58
ND_NS, ND_NA = ICMP6_NS, 136
ND_DROPPED = (133, 134, 137)  # RS, RA, redirect: options OVS cannot rewrite
IDLE_TIMEOUT = 300
OFPFF_SEND_FLOW_REM = 1
TO_CONTROLLER = Output(OFPP_CONTROLLER, OFPCML_NO_BUFFER)

IpAddress = IPv4Address | IPv6Address


@dataclass(frozen=True)
class Flow:
    priority: int
    match: Match
    actions: tuple[Action, ...]
    cookie: int
    idle_timeout: int = 0
    flags: int = 0


@dataclass(frozen=True)
class Guest:
    port: int
    mac: bytes


def cookie(kind: int, index: int = 0) -> int:
    return COOKIE_PREFIX | kind << KIND_SHIFT | (index & 0xFFFFFF)


def cookie_kind(value: int) -> int | None:
    """KIND_* of one of our cookies, None for anyone else's."""
    if value >> 32 != COOKIE_PREFIX >> 32:
        return None
    return (value >> KIND_SHIFT) & 0xFF


def _outputs(ports: Iterable[int]) -> tuple[Action, ...]:
    return tuple(Output(p) for p in ports)


def base_flows(guest_ports: Sequence[int]) -> list[Flow]:
    """The flows that exist whatever the guests; broadcasts reach ``guest_ports``."""
    c = cookie(KIND_BASE)
    to_host = (TO_CONTROLLER, Output(HOST_PORT))
    mcast_in = Match(in_port=NIC_PORT, eth_dst=MULTICAST, eth_dst_mask=MULTICAST)
    mcast_host = Match(in_port=HOST_PORT, eth_dst=MULTICAST, eth_dst_mask=MULTICAST)
    ns = Match(in_port=NIC_PORT, eth_type=ETH_IPV6, ip_proto=ICMPV6, icmpv6_type=ND_NS)
    return [
        Flow(300, Match(in_port=NIC_PORT, eth_type=ETH_ARP, arp_op=1), to_host, c),
        Flow(300, ns, to_host, c),
        Flow(100, mcast_in, _outputs((HOST_PORT, *guest_ports)), c),
        Flow(90, Match(in_port=NIC_PORT), (Output(HOST_PORT),), c),
        Flow(100, mcast_host, _outputs((NIC_PORT, *guest_ports)), c),
        Flow(90, Match(in_port=HOST_PORT), (Output(NIC_PORT),), c),
        Flow(1, Match(), (TO_CONTROLLER,), c),  # an unknown guest: learn it
    ]


def guest_flows(guest: Guest, nat_mac: bytes, others: Sequence[int]) -> list[Flow]:
    """MAC NAT for one guest MAC on its port; ``others`` are the other guest ports."""
    c = cookie(KIND_GUEST)
    src = Match(in_port=guest.port, eth_src=guest.mac)
    inside = _outputs((HOST_PORT, *(p for p in others if p != guest.port)))
    out = (SetField("eth_src", nat_mac), Output(NIC_PORT))

    def nd(kind: int) -> Match:
        return replace(src, eth_type=ETH_IPV6, ip_proto=ICMPV6, icmpv6_type=kind)

    flows = [
        Flow(270, Match(eth_dst=guest.mac), (Output(guest.port),), c),
        Flow(260, replace(src, eth_dst=nat_mac), (Output(HOST_PORT),), c),
        Flow(250, replace(src, eth_type=ETH_ARP),
             (TO_CONTROLLER, *inside, SetField("arp_sha", nat_mac), *out), c),
        Flow(250, nd(ND_NS), (TO_CONTROLLER, *inside, SetField("nd_sll", nat_mac), *out), c),
        Flow(250, nd(ND_NA), (TO_CONTROLLER, *inside, SetField("nd_tll", nat_mac), *out), c),
        *(Flow(240, nd(kind), (), c) for kind in ND_DROPPED),
        Flow(210, replace(src, eth_dst=MULTICAST, eth_dst_mask=MULTICAST), (*inside, *out), c),
        Flow(200, src, out, c),
    ]  # fmt: skip
    return flows


def address_flows(ip: IpAddress, guest: Guest, index: int) -> list[Flow]:
    """Uplink frames for a learned guest address: to the guest, with its MAC."""
    c = cookie(KIND_ADDR, index)
    deliver = (SetField("eth_dst", guest.mac), Output(guest.port))
    idle, rem = IDLE_TIMEOUT, OFPFF_SEND_FLOW_REM
    if isinstance(ip, IPv4Address):
        arp = Match(in_port=NIC_PORT, eth_type=ETH_ARP, arp_tpa=ip)
        return [
            Flow(200, Match(in_port=NIC_PORT, eth_type=ETH_IP, ipv4_dst=ip), deliver, c, idle, rem),
            Flow(200, arp, (SetField("arp_tha", guest.mac), *deliver), c, idle),
        ]
    return [
        Flow(200, Match(in_port=NIC_PORT, eth_type=ETH_IPV6, ipv6_dst=ip), deliver, c, idle, rem)
    ]


def _mac(value: bytes) -> str:
    return frames.mac_str(value)


def _match_text(m: Match) -> str:
    parts = []
    for name, value in vars(m).items():
        if value is None or name == "eth_dst_mask":
            continue
        text = _mac(value) if isinstance(value, bytes) else str(value)
        if name == "eth_dst" and m.eth_dst_mask is not None:
            text += "/" + _mac(m.eth_dst_mask)
        parts.append(f"{name}={text}")
    return ",".join(parts)


def _action_text(a: Action) -> str:
    if isinstance(a, SetField):
        return f"set_field:{_mac(a.value)}->{a.field}"
    return "CONTROLLER" if a.port == OFPP_CONTROLLER else f"output:{a.port}"


def render(flow: Flow) -> str:
    """One line in ovs-ofctl's style, for logs and ``mosnet plan``."""
    match = _match_text(flow.match)
    head = f"priority={flow.priority}" + (f",{match}" if match else "")
    if flow.idle_timeout:
        head += f",idle_timeout={flow.idle_timeout}"
    acts = ",".join(map(_action_text, flow.actions)) or "drop"
    return f"{head} actions={acts}"
