"""MAC NAT on the Linux-bridge backend: ``table bridge mosnet-macnat`` (issue 6 §2-3).

The provider's switch only accepts frames from, and only delivers frames to,
the NIC's MAC. Guests bridged onto ``br-mosnet`` have MACs of their own, so
frames between a guest port and the uplink are rewritten in the bridge
family, like ebtables ``snat --snat-arp`` plus a ``dnat`` keyed by IP:

* **egress** (``forward`` hook, guest port -> uplink): learn the guest's
  IP -> MAC binding from its ARP/IPv4/IPv6 source (``update``, so active
  bindings never expire), then set the ARP sender (and a target that is a
  guest MAC) and the Ethernet source to the NIC MAC.
* **ingress** (``prerouting``, uplink, before the FDB lookup): frames to the
  NIC MAC whose destination IP (``ip daddr``/``ip6 daddr``/``arp daddr ip``)
  is a learned guest get the guest's MAC as Ethernet (and ARP target) MAC.
* **guard** (``postrouting``, uplink): whatever got past the rewrite (other
  ports, the bridge device itself) and still carries another MAC than the
  NIC's in the Ethernet or ARP source is dropped, never sent.

NDP cannot be rewritten here: the link-layer address options sit behind the
ICMPv6 checksum, and nft 1.0.6 computes no checksum for raw ``@th`` writes
(``csum_type 0`` in ``nft --debug=netlink``). Guest router/neighbour
solicitations, advertisements and redirects are dropped on egress instead;
the ARP/NDP proxy (``mosnet.proxy``) answers for the guests with the NIC MAC.
IPv6 data traffic is rewritten like IPv4 once neighbours are resolved.

Not covered: MACs inside other payloads (DHCPv4 ``chaddr``, DHCPv6 DUIDs);
guests should use static addresses. A guest may claim any IP, including the
host's, because bindings are learned, not configured.

All chains run at priority -200: with br_netfilter loaded, a bridge chain at
priority 0 (NF_BR_PRI_BRNF) is skipped for IPv4. ``apply`` loads the table
with ``nft -c`` first, then one ``nft -f -`` transaction, so a rejected
script leaves the old table as it was. Re-applying forgets learned bindings.
"""

from __future__ import annotations

import ipaddress
import json
import re
import subprocess
from dataclasses import dataclass

from mosnet import firewall, log, nftrules
from mosnet.discover import Nic
from mosnet.plan import Plan

_log = log.get("macnat")
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
_TIMEOUT = 30.0


class MacNatError(ValueError):
    """Bad input for the ruleset: an interface name, MAC or timeout."""


@dataclass(frozen=True)
class MacNatResult:
    applied: bool = False
    errors: tuple[str, ...] = ()
    script: str = ""  # what nft loaded ("" if nothing was loaded)

    @property
    def ok(self) -> bool:
        return self.applied and not self.errors


def _mac(mac: str) -> str:
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
    nic, up = _mac(nic_mac), _ifname(uplink)
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


def enable(the_plan: Plan, nics: tuple[Nic, ...]) -> str | None:
    """MAC NAT for guests on br-mosnet; returns the NIC MAC the provider sees.

    Linux bridge: this table, loaded before the bridge comes up. Open vSwitch:
    nothing to load here, the flows do it (``mosnet.ofrules``).
    """
    uplink = next((n for n in nics if n.name == the_plan.nic), None)
    if uplink is None:
        return None
    if the_plan.backend == "linux":
        apply(uplink.name, uplink.mac)
    return uplink.mac


def script(definition: str) -> str:
    """Replace the table atomically: create-if-missing, delete, define."""
    return f"table {FAMILY} {TABLE} {{}}\ndelete table {FAMILY} {TABLE}\n{definition}"


def _nft(nft: str, args: list[str], stdin: str | None = None) -> tuple[str | None, str]:
    """Run nft; (error text or None, stdout)."""
    try:
        proc = subprocess.run(
            [nft, *args], input=stdin, text=True, capture_output=True, timeout=_TIMEOUT, check=False
        )
    except (OSError, subprocess.SubprocessError) as exc:
        return f"{nft}: {exc}", ""
    if proc.returncode != 0:
        lines = (proc.stderr or proc.stdout).strip().splitlines()
        return " | ".join(lines[-6:]) or f"exit status {proc.returncode}", ""
    return None, proc.stdout


def apply(
    uplink: str,
    nic_mac: str,
    internal_ports: tuple[str, ...] | None = None,
    *,
    timeout: int = DEFAULT_TIMEOUT,
    nft: str | None = None,
) -> MacNatResult:
    """Load (or replace) the MAC NAT table in one transaction. Never raises."""
    try:
        result = _apply(uplink, nic_mac, internal_ports, timeout, nft)
    except Exception as exc:  # PID 1 must survive anything here
        result = MacNatResult(errors=(f"macnat: unexpected failure: {exc!r}",))
    for err in result.errors:
        _log.error("%s", err)
    if result.applied:
        _log.info("macnat: applied %s %s on uplink %s", FAMILY, TABLE, uplink)
    return result


def _apply(
    uplink: str,
    nic_mac: str,
    ports: tuple[str, ...] | None,
    timeout: int,
    nft: str | None,
) -> MacNatResult:
    try:
        text = script(render(uplink, nic_mac, ports, timeout=timeout))
    except MacNatError as exc:
        return MacNatResult(errors=(f"macnat: {exc}",))
    nft = nft or firewall.find_nft()
    if nft is None:
        return MacNatResult(errors=("macnat: nft not found; MAC NAT not applied",))
    for args in (["-c", "-f", "-"], ["-f", "-"]):  # check, then load
        err, _ = _nft(nft, args, text)
        if err is not None:
            return MacNatResult(
                errors=(f"macnat: nft rejected the table, kept the old one: {err}",)
            )
    return MacNatResult(True, (), text)


def remove(nft: str | None = None) -> str | None:
    """Delete the table if it exists; the error text or None."""
    nft = nft or firewall.find_nft()
    if nft is None:
        return "macnat: nft not found"
    stdin = f"table {FAMILY} {TABLE} {{}}\ndelete table {FAMILY} {TABLE}\n"
    return _nft(nft, ["-f", "-"], stdin)[0]


def add_binding(
    ip: str, mac: str, *, timeout: int | None = None, nft: str | None = None
) -> str | None:
    """Add or refresh a guest binding by hand; the error text or None.

    ``timeout`` (seconds) defaults to the map's; traffic from the guest
    refreshes it like a learned one.
    """
    try:
        addr = ipaddress.ip_address(ip)
        low = _mac(mac)
    except ValueError as exc:
        return f"macnat: {exc}"
    nft = nft or firewall.find_nft()
    if nft is None:
        return "macnat: nft not found"
    name = MAP4 if addr.version == 4 else MAP6
    life = f" timeout {timeout}s" if timeout is not None else ""
    element = f"{{ {addr}{life} : {low} }}"
    # "add" leaves an existing element alone; delete first (ignoring "absent")
    _nft(nft, ["delete", "element", FAMILY, TABLE, name, f"{{ {addr} }}"])
    return _nft(nft, ["add", "element", FAMILY, TABLE, name, element])[0]


def bindings(nft: str | None = None) -> dict[str, str]:
    """The current guest IP -> MAC bindings (learned and added); {} on any error."""
    nft = nft or firewall.find_nft()
    if nft is None:
        return {}
    out: dict[str, str] = {}
    for name in (MAP4, MAP6):
        err, text = _nft(nft, ["-j", "list", "map", FAMILY, TABLE, name])
        if err is None:
            out.update(_parse_map(text))
    return out


def _parse_map(text: str) -> dict[str, str]:
    """IP -> MAC from ``nft -j list map`` output (elements may carry a timeout)."""
    try:
        doc = json.loads(text)
    except ValueError:
        return {}
    out: dict[str, str] = {}
    for item in doc.get("nftables", []) if isinstance(doc, dict) else ():
        for key, value in item.get("map", {}).get("elem", []):
            if isinstance(key, dict):  # {"elem": {"val": ip, "timeout": ..., "expires": ...}}
                key = key.get("elem", {}).get("val")
            if isinstance(key, str) and isinstance(value, str):
                out[key] = value
    return out
