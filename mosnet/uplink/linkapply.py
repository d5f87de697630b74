"""Run a :class:`~mosnet.uplink.linkstack.LinkStack` over netlink, idempotently.

Every action checks first: a link already renamed, a bond or VLAN that
exists with the same settings, a slave already in its bond, an MTU or MAC
already set are left alone, so applying twice changes nothing. A failing
action is logged and the rest still run: a bond that could not be built
leaves its NICs free, and the candidates are then read from the links as
they are (``candidates``), not as planned.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from mosnet.base import log
from mosnet.base.names import DHCP_PORT, PEER_SUFFIX, STATIC_PORT
from mosnet.config.model import BOND_MODES, XMIT_HASH_POLICIES, BondSpec
from mosnet.uplink import discover
from mosnet.uplink.linkstack import (
    CreateBond,
    CreateVlan,
    Enslave,
    LinkAction,
    LinkStack,
    RenameLink,
    SetLinkMac,
    SetLinkMtu,
    SetLinkUp,
)

_log = log.get("links")
_NOT_NICS = ("bond", "vlan", "bridge", "openvswitch")
_PORTS = (DHCP_PORT, STATIC_PORT, DHCP_PORT + PEER_SUFFIX, STATIC_PORT + PEER_SUFFIX)


class LinkError(Exception):
    """An existing link is not what the plan needs."""


@dataclass(frozen=True)
class LinkResult:
    done: int
    errors: tuple[str, ...] = ()


def apply(ipr: Any, stack: LinkStack) -> LinkResult:
    """Run every action; renames first as one two-step batch (so names can swap)."""
    errors: list[str] = []
    renames = [a for a in stack.actions if isinstance(a, RenameLink)]
    done = _renames(ipr, renames, errors)
    for action in stack.actions:
        if isinstance(action, RenameLink):
            continue
        try:
            _log.info("links: %s", action)
            _run(ipr, action)
            done += 1
        except Exception as exc:  # NetlinkError, OSError, LinkError: the rest still runs
            errors.append(f"{action}: {exc}")
            _log.error("links: %s failed: %s", action, exc)
    return LinkResult(done, tuple(errors))


def _index(ipr: Any, name: str) -> int:
    found = ipr.link_lookup(ifname=name)
    if not found:
        raise LinkError(f"no link {name}")
    return int(found[0])


def _link(ipr: Any, name: str) -> Any | None:
    found = ipr.link_lookup(ifname=name)
    return ipr.get_links(found[0])[0] if found else None


def _renames(ipr: Any, renames: list[RenameLink], errors: list[str]) -> int:
    """MAC -> temporary name -> final name, so eth0<->eth1 swaps work."""
    moved: list[tuple[int, RenameLink]] = []
    for r in renames:
        idx = _by_mac(ipr, r.mac)
        if idx is None:
            errors.append(f"{r}: no link with MAC {r.mac}")
            continue
        try:
            ipr.link("set", index=idx, state="down")
            ipr.link("set", index=idx, ifname=f"mosren{idx}")
            moved.append((idx, r))
        except Exception as exc:
            errors.append(f"{r}: {exc}")
    for idx, r in moved:
        try:
            ipr.link("set", index=idx, ifname=r.new)
            _log.info("links: renamed %s (%s) to %s", r.old, r.mac, r.new)
        except Exception as exc:
            errors.append(f"{r}: {exc}")
            _log.error("links: cannot rename %s to %s: %s", r.old, r.new, exc)
    return len(moved)


def _by_mac(ipr: Any, mac: str) -> int | None:
    """The NIC with ``mac``; a physical one first (bonds and mosnet's ports share it)."""
    found: list[tuple[bool, int]] = []
    for msg in ipr.get_links():
        perm = msg.get_attr("IFLA_PERM_ADDRESS") or msg.get_attr("IFLA_ADDRESS")
        kind = discover.link_kind(msg)
        name = str(msg.get_attr("IFLA_IFNAME"))
        if str(perm or "").lower() != mac or kind in _NOT_NICS or name in _PORTS:
            continue
        found.append((kind != "", int(msg["index"])))
    return min(found)[1] if found else None


def _bond_args(spec: BondSpec) -> dict[str, int]:
    args = {
        "bond_mode": BOND_MODES.index(spec.mode),
        "bond_miimon": spec.miimon,
        "bond_updelay": spec.updelay,
        "bond_downdelay": spec.downdelay,
        "bond_xmit_hash_policy": XMIT_HASH_POLICIES.index(spec.xmit_hash_policy),
    }
    if spec.mode == "802.3ad":
        args["bond_ad_lacp_rate"] = 1 if spec.lacp_rate == "fast" else 0
    return args


def _create_bond(ipr: Any, a: CreateBond) -> None:
    msg = _link(ipr, a.spec.name)
    args = _bond_args(a.spec)
    if msg is None:
        ipr.link("add", ifname=a.spec.name, kind="bond", **args)
        return
    if discover.link_kind(msg) != "bond":
        raise LinkError(f"{a.spec.name} exists and is not a bond")
    data = msg.get_attr("IFLA_LINKINFO").get_attr("IFLA_INFO_DATA")
    if data is not None and data.get_attr("IFLA_BOND_MODE") == args["bond_mode"]:
        del args["bond_mode"]  # the mode cannot change while slaves are in
    ipr.link("set", index=int(msg["index"]), kind="bond", **args)


def _enslave(ipr: Any, a: Enslave) -> None:
    idx, bond = _index(ipr, a.dev), _index(ipr, a.bond)
    msg = ipr.get_links(idx)[0]
    if msg.get_attr("IFLA_MASTER") != bond:
        ipr.link("set", index=idx, state="down")  # bonding refuses a slave that is up
        ipr.link("set", index=idx, master=bond)
    if a.primary:
        ipr.link("set", index=bond, kind="bond", bond_primary=idx)


def _create_vlan(ipr: Any, a: CreateVlan) -> None:
    s = a.spec
    parent = _index(ipr, s.parent)
    msg = _link(ipr, s.name)
    if msg is None:
        ipr.link("add", ifname=s.name, kind="vlan", link=parent, vlan_id=s.vid)
        return
    data = msg.get_attr("IFLA_LINKINFO").get_attr("IFLA_INFO_DATA") if msg else None
    vid = data.get_attr("IFLA_VLAN_ID") if data is not None else None
    if discover.link_kind(msg) != "vlan" or vid != s.vid or msg.get_attr("IFLA_LINK") != parent:
        raise LinkError(f"{s.name} exists and is not VLAN {s.vid} on {s.parent}")


def _set_mtu(ipr: Any, a: SetLinkMtu) -> None:
    idx = _index(ipr, a.dev)
    if ipr.get_links(idx)[0].get_attr("IFLA_MTU") != a.mtu:
        ipr.link("set", index=idx, mtu=a.mtu)


def _set_mac(ipr: Any, a: SetLinkMac) -> None:
    idx = _index(ipr, a.dev)
    if str(ipr.get_links(idx)[0].get_attr("IFLA_ADDRESS")).lower() != a.mac:
        ipr.link("set", index=idx, state="down")  # not every driver changes it live
        ipr.link("set", index=idx, address=a.mac)


def _run(ipr: Any, action: LinkAction) -> None:
    if isinstance(action, CreateBond):
        _create_bond(ipr, action)
    elif isinstance(action, Enslave):
        _enslave(ipr, action)
    elif isinstance(action, CreateVlan):
        _create_vlan(ipr, action)
    elif isinstance(action, SetLinkMtu):
        _set_mtu(ipr, action)
    elif isinstance(action, SetLinkMac):
        _set_mac(ipr, action)
    elif isinstance(action, SetLinkUp):
        ipr.link("set", index=_index(ipr, action.dev), state="up")


def candidates(ipr: Any, stack: LinkStack, include: Iterable[str] = ()) -> tuple[discover.Nic, ...]:
    """The uplink candidates as the links are now: planned ones that exist, in plan order.

    A bond that failed leaves its NICs free: they are candidates again.
    """
    planned = [n.name for n in stack.uplinks]
    nics = discover.list_nics(ipr, include=(*planned, *include))
    busy = {str(low) for low, _ in stack.members if _enslaved_or_parent(ipr, low)}
    found = [n for n in nics if n.name not in busy]
    order = {name: i for i, name in enumerate(planned)}
    return tuple(sorted(found, key=lambda n: (order.get(n.name, len(order)), n.name)))


def _enslaved_or_parent(ipr: Any, name: str) -> bool:
    """Is ``name`` under a bond, or the parent of a VLAN that exists?"""
    msg = _link(ipr, name)
    if msg is None:
        return True
    if msg.get_attr("IFLA_MASTER"):
        return True
    idx = int(msg["index"])
    return any(m.get_attr("IFLA_LINK") == idx and discover.link_kind(m) == "vlan"
               for m in ipr.get_links())  # fmt: skip
