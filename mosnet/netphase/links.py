"""The first step of both strategies: rename, bond, VLAN, then list the candidates.

``ifname=`` renames happen here, before anything else looks at names; then
the bonds and VLANs are built and the MTU/MAC of ``ip=`` is set. What comes
back are the uplink candidates as the links really are (a bond that could
not be built leaves its NICs free) with the stack that was planned, so the
plan can print it.
"""

from __future__ import annotations

from dataclasses import dataclass

from pyroute2 import IPRoute

from mosnet.base import log
from mosnet.config.model import NetConfig
from mosnet.uplink import discover, linkapply, linkstack

_log = log.get("links")


@dataclass(frozen=True)
class Links:
    stack: linkstack.LinkStack
    candidates: tuple[discover.Nic, ...]
    physical: tuple[discover.Nic, ...] = ()  # as found, before the renames
    errors: tuple[str, ...] = ()


def set_up(cfg: NetConfig, include: tuple[str, ...] = ()) -> Links:
    """Plan and apply the link stack; ``include`` names virtual links that count as NICs."""
    with IPRoute() as ipr:
        physical = discover.list_nics(ipr, include=include)
        stack = linkstack.plan_links(cfg, physical)
        for note in stack.notes:
            _log.warning("links: %s", note)
        result = linkapply.apply(ipr, stack) if stack.actions else linkapply.LinkResult(0)
        renamed = tuple(stack_name(stack, n) for n in include)
        nics = linkapply.candidates(ipr, stack, renamed) if stack.actions else physical
        discover.bring_up(ipr, nics)
    return Links(stack, nics, physical, result.errors)


def stack_name(stack: linkstack.LinkStack, name: str) -> str:
    """``name`` after the renames of ``stack``."""
    return next((a.new for a in stack.actions
                 if isinstance(a, linkstack.RenameLink) and a.old == name), name)  # fmt: skip


def bootif_uplink(cfg: NetConfig, links: Links) -> str | None:
    """The candidate that carries the BOOTIF NIC: itself, or the bond or VLAN above it."""
    if cfg.bootif is None or not cfg.use_bootif:
        return None
    nic = next((n for n in links.physical if n.mac.lower() == cfg.bootif), None)
    top = links.stack.uplink_of(stack_name(links.stack, nic.name)) if nic else None
    return top if any(c.name == top for c in links.candidates) else None
