"""OpenFlow MAC NAT for br-mosnet: the text ``ovs-ofctl add-flows`` reads (issue 6 §2).

The provider's switch must only ever see the uplink NIC's MAC. Guest ports
(containers, VMs) keep their own MACs inside; br-mosnet rewrites them:

* egress from a guest port: ``dl_src`` becomes the NIC MAC, and so does the
  MAC inside ARP (``arp_sha``) and NDP (``nd_sll`` in solicitations,
  ``nd_tll`` in advertisements; OVS recomputes the ICMPv6 checksum). Without
  the inner rewrite the gateway learns the guest MAC and the provider drops
  its replies.
* ingress from the uplink, by destination IP (``nw_dst``, ``ipv6_dst``,
  ``arp_tpa``, ``nd_target``): ``dl_dst`` becomes the guest MAC, out the
  guest's port.
* the uplink and the host's internal port talk through NORMAL; a guest frame
  that matched none of its flows is dropped (a spoofed source must never leak).

Guest flows also pin the guest's source MAC and IP (anti-spoofing). The
bridge runs with ``fail_mode=secure``: with no controller connected these
static flows keep working. Pure: text only; ``mosnet.ovs`` installs it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from ipaddress import IPv4Address, IPv6Address, ip_address

from mosnet.errors import MosnetError

Port = str | int
MAC_RE = re.compile(r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$")
PORT_RE = re.compile(r"^[A-Za-z0-9_.-]{1,15}$")  # a Linux ifname, no keyword clash
RESERVED = {"LOCAL", "NORMAL", "FLOOD", "ALL", "CONTROLLER", "IN_PORT", "NONE", "ANY"}

P_GUEST_L2 = 110  # ARP / NDP from a guest: rewrite the inner MAC too
P_GUEST = 100
P_INGRESS = 100
P_GUEST_DROP = 50
P_HOST = 10


class FlowError(MosnetError, ValueError):
    """A port name, MAC or IP that cannot go into a flow."""


def _mac(mac: str) -> str:
    low = mac.lower()
    if not MAC_RE.match(low) or int(low[:2], 16) & 1:
        raise FlowError(f"bad unicast MAC {mac!r}")
    return low


def _port(port: Port) -> str:
    text = str(port)
    if isinstance(port, int) and not 0 < port < 0xFF00:
        raise FlowError(f"bad OpenFlow port number {port}")
    if not PORT_RE.match(text) or text.upper() in RESERVED:
        raise FlowError(f"bad port name {text!r}")
    return text


def _egress(
    ip: IPv4Address | IPv6Address, mac: str, port: str, nic: str, nic_mac: str
) -> list[str]:
    src = f"in_port={port},dl_src={mac}"
    out = f"mod_dl_src:{nic_mac}"
    if isinstance(ip, IPv4Address):
        return [
            f"priority={P_GUEST_L2},{src},arp,arp_spa={ip},arp_sha={mac}"
            f",actions={out},set_field:{nic_mac}->arp_sha,output:{nic}",
            f"priority={P_GUEST},{src},ip,nw_src={ip},actions={out},output:{nic}",
        ]
    return [
        # NDP runs from link-local or global sources: pinned by MAC only.
        f"priority={P_GUEST_L2},{src},icmp6,icmp_type=135,icmp_code=0,nd_sll={mac}"
        f",actions={out},set_field:{nic_mac}->nd_sll,output:{nic}",
        f"priority={P_GUEST_L2},{src},icmp6,icmp_type=136,icmp_code=0,nd_tll={mac}"
        f",actions={out},set_field:{nic_mac}->nd_tll,output:{nic}",
        f"priority={P_GUEST},{src},ipv6,ipv6_src={ip},actions={out},output:{nic}",
    ]


def _ingress(ip: IPv4Address | IPv6Address, mac: str, port: str, nic: str) -> list[str]:
    act = f"actions=mod_dl_dst:{mac},output:{port}"
    if isinstance(ip, IPv4Address):
        matches = [f"arp,arp_tpa={ip}", f"ip,nw_dst={ip}"]
    else:
        # Solicitations go to the solicited-node group: match the target.
        matches = [f"icmp6,icmp_type=135,icmp_code=0,nd_target={ip}", f"ipv6,ipv6_dst={ip}"]
    return [f"priority={P_INGRESS},in_port={nic},{m},{act}" for m in matches]


def render(
    nic_port: Port,
    internal_port: Port,
    nic_mac: str,
    guests: Mapping[str, tuple[str, Port]] | Mapping[IPv4Address | IPv6Address, tuple[str, Port]],
) -> str:
    """The whole flow table, one flow per line, in a stable order.

    ``guests`` maps each guest IP to (guest MAC, guest port). One guest may
    hold several IPs on one port; each gets its own flows.
    """
    nic, host, nmac = _port(nic_port), _port(internal_port), _mac(nic_mac)
    parsed = sorted(
        ((ip_address(str(ip)), _mac(mac), _port(port)) for ip, (mac, port) in guests.items()),
        key=lambda g: (g[0].version, g[0]),
    )
    taken = {nic, host} & {port for _, _, port in parsed}
    if nic == host or taken:
        raise FlowError(f"guest ports must differ from {nic} and {host}")
    if any(mac == nmac for _, mac, _ in parsed):
        raise FlowError("a guest cannot use the uplink MAC")
    lines = [
        f"priority={P_HOST},in_port={nic},actions=NORMAL",
        f"priority={P_HOST},in_port={host},actions=NORMAL",
    ]
    for ip, mac, port in parsed:
        lines += _egress(ip, mac, port, nic, nmac)
        lines += _ingress(ip, mac, port, nic)
    for port in dict.fromkeys(port for _, _, port in parsed):
        lines.append(f"priority={P_GUEST_DROP},in_port={port},actions=drop")
    lines.append("priority=0,actions=drop")
    return "\n".join(lines) + "\n"
