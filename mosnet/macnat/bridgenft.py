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
the ARP/NDP proxy (``mosnet.proxy.answers``) answers for the guests with the NIC MAC.
IPv6 data traffic is rewritten like IPv4 once neighbours are resolved.

Not covered: MACs inside other payloads (DHCPv4 ``chaddr``, DHCPv6 DUIDs);
guests should use static addresses. A guest may claim any IP, including the
host's, because bindings are learned, not configured.

All chains run at priority -200: with br_netfilter loaded, a bridge chain at
priority 0 (NF_BR_PRI_BRNF) is skipped for IPv4. ``load`` loads the table
with ``nft -c`` first, then one ``nft -f -`` transaction, so a rejected
script leaves the old table as it was. Re-applying forgets learned bindings.
"""

from __future__ import annotations

import ipaddress
import json
from dataclasses import dataclass

from mosnet.base import children, log
from mosnet.macnat.nfttable import (
    DEFAULT_TIMEOUT,
    FAMILY,
    MAP4,
    MAP6,
    TABLE,
    MacNatError,
    normal_mac,
    render,
    script,
)
from mosnet.nft import firewall

_log = log.get("macnat")
_TIMEOUT = 30.0


@dataclass(frozen=True)
class MacNatResult:
    applied: bool = False
    errors: tuple[str, ...] = ()
    script: str = ""  # what nft loaded ("" if nothing was loaded)

    @property
    def ok(self) -> bool:
        return self.applied and not self.errors


def _nft(nft: str, args: list[str], stdin: str | None = None) -> tuple[str | None, str]:
    """Run nft; (error text or None, stdout)."""
    ran = children.run([nft, *args], timeout=_TIMEOUT, stdin=stdin)
    if ran.failure is not None:
        return f"{nft}: {ran.error}", ""
    if ran.returncode != 0:
        return " | ".join(ran.said.splitlines()[-6:]) or f"exit status {ran.returncode}", ""
    return None, ran.stdout


def load(
    uplink: str,
    nic_mac: str,
    internal_ports: tuple[str, ...] | None = None,
    *,
    timeout: int = DEFAULT_TIMEOUT,
    nft: str | None = None,
) -> MacNatResult:
    """Render and load (or replace) the MAC NAT table in one transaction. Never raises."""
    try:
        text = script(render(uplink, nic_mac, internal_ports, timeout=timeout))
    except MacNatError as exc:
        return _logged(MacNatResult(errors=(f"macnat: {exc}",)), uplink)
    return load_script(text, uplink, nft=nft)


def load_script(text: str, uplink: str, *, nft: str | None = None) -> MacNatResult:
    """Load a rendered table (what the plan shows) in one transaction. Never raises."""
    try:
        result = _load(text, nft)
    except Exception as exc:  # PID 1 must survive anything here
        result = MacNatResult(errors=(f"macnat: unexpected failure: {exc!r}",))
    return _logged(result, uplink)


def _logged(result: MacNatResult, uplink: str) -> MacNatResult:
    for err in result.errors:
        _log.error("%s", err)
    if result.applied:
        _log.info("macnat: applied %s %s on uplink %s", FAMILY, TABLE, uplink)
    return result


def _load(text: str, nft: str | None) -> MacNatResult:
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
        low = normal_mac(mac)
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
