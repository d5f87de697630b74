"""The MAC NAT table's nft text (pure): what ``table bridge mosnet-macnat`` holds.

How the table works is told in ``mosnet.macnat.bridgenft``, which loads it;
this module only renders it, so a plan can show it without loading anything.
"""

from __future__ import annotations

import re

from mosnet.nft import nftrules

FAMILY = "bridge"
TABLE = "mosnet-macnat"
MAP4 = "guests4"
MAP6 = "guests6"
MACS = "guestmacs"
PRIORITY = -200  # below br_netfilter's 0, see the module docstring
DEFAULT_TIMEOUT = 300  # seconds a binding lives without traffic from the guest
ND_TYPES = (
    "nd-router-solicit",
    "nd-router-advert",
    "nd-neighbor-solicit",
    "nd-neighbor-advert",
    "nd-redirect",
)
_MAC = re.compile(r"[0-9a-f]{2}(:[0-9a-f]{2}){5}")


class MacNatError(ValueError):
    """Bad input for the ruleset: an interface name, MAC or timeout."""


def normal_mac(mac: str) -> str:
    low = mac.lower()
    if not _MAC.fullmatch(low) or int(low[:2], 16) & 1:
        raise MacNatError(f"not a unicast MAC: {mac!r}")
    return low


def _ifname(name: str) -> str:
    if not nftrules.safe_ifname(name):
        raise MacNatError(f"bad interface name: {name!r}")
    return f'"{name}"'


def _guest_match(uplink: str, internal_ports: tuple[str, ...] | None) -> str:
    """Which input ports count as guests: the listed ones, or all but the uplink."""
    if internal_ports is None:
        return f"iifname != {_ifname(uplink)}"
    if not internal_ports:
        raise MacNatError("internal_ports is empty")
    names = ", ".join(_ifname(p) for p in internal_ports)
    return f"iifname {{ {names} }}"


def _sets(timeout: int) -> list[str]:
    # "dynamic" lets the packet path add elements; "timeout" lets them expire.
    flags = f"flags dynamic, timeout; timeout {timeout}s;"
    return [
        f"  map {MAP4} {{ type ipv4_addr : ether_addr; {flags} }}",
        f"  map {MAP6} {{ type ipv6_addr : ether_addr; {flags} }}",
        f"  set {MACS} {{ type ether_addr; {flags} }}",
    ]


def _egress(nic: str) -> list[str]:
    """Guest frame towards the uplink: learn, drop NDP, then rewrite."""
    nd = ", ".join(ND_TYPES)
    return [
        "  chain egress {",
        # learn first: the rewrite below destroys the guest's MAC
        f"    arp saddr ip != 0.0.0.0 update @{MAP4} {{ arp saddr ip : ether saddr }}",
        f"    ip saddr != 0.0.0.0 update @{MAP4} {{ ip saddr : ether saddr }}",
        f"    ip6 saddr != :: update @{MAP6} {{ ip6 saddr : ether saddr }}",
        f"    update @{MACS} {{ ether saddr }}",
        # the ARP rewrite cannot see through a VLAN tag: tagged frames do not leave
        '    ether type { 8021q, 8021ad } counter drop comment "tagged guest frame"',
        # link-layer options behind the ICMPv6 checksum: not rewritable, see above
        f'    icmpv6 type {{ {nd} }} counter drop comment "guest NDP"',
        f"    arp daddr ether @{MACS} arp daddr ether set {nic}",
        f"    arp saddr ether set {nic}",
        f"    counter ether saddr set {nic}",
        "  }",
    ]


def _ingress() -> list[str]:
    """Frame to the NIC MAC for a guest IP: the guest's MAC.

    A map lookup that misses ends the rule, so there is no separate
    ``ip daddr @map`` test: Linux 6.1 rejects membership tests on maps
    (EINVAL), while the lookup itself works there and on newer kernels.
    """
    return [
        "  chain ingress {",
        f"    ether daddr set ip daddr map @{MAP4} counter",
        f"    ether daddr set ip6 daddr map @{MAP6} counter",
        f"    ether daddr set arp daddr ip map @{MAP4} arp daddr ether set arp daddr ip map @{MAP4}"
        " counter",
        "  }",
    ]


def render(
    uplink: str,
    nic_mac: str,
    internal_ports: tuple[str, ...] | None = None,
    *,
    timeout: int = DEFAULT_TIMEOUT,
) -> str:
    """The ``table bridge mosnet-macnat`` definition (raises MacNatError on bad input).

    ``internal_ports`` are the guests' bridge ports; None means every port
    but the uplink. Frames that already carry ``nic_mac`` (the host's own
    port) pass untouched either way.
    """
    nic, up = normal_mac(nic_mac), _ifname(uplink)
    guests = _guest_match(uplink, internal_ports)
    if timeout < 1:
        raise MacNatError(f"timeout must be at least 1 s, got {timeout}")
    hook = f"type filter hook {{}} priority {PRIORITY}; policy accept;"
    lines = [f"table {FAMILY} {TABLE} {{", *_sets(timeout), *_egress(nic), *_ingress()]
    lines += [
        "  chain forward {",
        f"    {hook.format('forward')}",
        f"    {guests} oifname {up} ether saddr != {nic} jump egress",
        "  }",
        "  chain prerouting {",
        f"    {hook.format('prerouting')}",
        f"    iifname {up} ether daddr {nic} jump ingress",
        "  }",
        "  chain postrouting {",
        f"    {hook.format('postrouting')}",
        f'    oifname {up} ether saddr != {nic} counter drop comment "internal MAC"',
        f'    oifname {up} arp saddr ether != {nic} counter drop comment "internal ARP sha"',
        "  }",
        "}",
    ]
    return "\n".join(lines) + "\n"


def script(definition: str) -> str:
    """Replace the table atomically: create-if-missing, delete, define."""
    return f"table {FAMILY} {TABLE} {{}}\ndelete table {FAMILY} {TABLE}\n{definition}"
