"""Static mode end to end: find the NIC that reaches the gateway, plan, apply, announce.

Used by PID 1 and by ``mosnet apply`` on a running system. Every step logs
what it did; a failed apply has already been rolled back by ``netapply`` so
the NIC carries the address directly and the machine stays reachable.
"""

from __future__ import annotations

import socket
import time
from dataclasses import dataclass

from pyroute2 import IPRoute

from mosnet import announce, discover, log, macnat, netapply, netif, ovs, probe
from mosnet.config import NetConfig
from mosnet.plan import Plan, plan

CARRIER_TIMEOUT = 10.0
PROBE_TIMEOUT = 3.0
DAD_TIMEOUT = 5.0
IFA_F_TENTATIVE = 0x40
IFA_F_DADFAILED = 0x08

_log = log.get("static")


@dataclass(frozen=True)
class StaticResult:
    plan: Plan
    applied: netapply.ApplyResult
    chosen: str | None  # the NIC the probe (or the user) picked
    uplink_mac: str | None = None
    reason: str = ""  # why that NIC


def _discover(cfg: NetConfig, include: tuple[str, ...]) -> tuple[discover.Nic, ...]:
    include += (cfg.device,) if cfg.device else ()
    with IPRoute() as ipr:
        nics = discover.list_nics(ipr, include=include)
        discover.bring_up(ipr, nics)
    if nics and not discover.wait_for_carrier(nics, CARRIER_TIMEOUT):
        _log.warning("no NIC has carrier after %.0f s; probing anyway", CARRIER_TIMEOUT)
    return nics


def choose_nic(cfg: NetConfig, nics: tuple[discover.Nic, ...]) -> discover.Choice | None:
    """The named device, else the NIC whose gateway answers first (ARP, then NS)."""
    if cfg.device:
        _log.info("device %s named on the command line: no gateway probe", cfg.device)
        return discover.Choice(cfg.device, "named on the command line")
    names = [n.name for n in nics]
    if cfg.ip4 is not None and cfg.ip4.gateway is not None:
        found = probe.find_gateway_nic(
            names, cfg.ip4.gateway, timeout=PROBE_TIMEOUT, sender_ip=cfg.ip4.address
        )
        if found is not None:
            why = f"gateway {cfg.ip4.gateway} answered ARP there first ({found.rtt * 1e3:.1f} ms)"
            _log.info(
                "gateway %s answers on %s in %.1f ms", cfg.ip4.gateway, found.nic, found.rtt * 1e3
            )
            return discover.Choice(found.nic, why)
    if cfg.ip6 is not None and cfg.ip6.gateway is not None:
        found6 = probe.find_gateway_nic6(names, cfg.ip6.gateway, timeout=PROBE_TIMEOUT)
        if found6 is not None:
            why = f"gateway {cfg.ip6.gateway} answered the neighbour solicitation there first"
            _log.info("gateway %s answers on %s", cfg.ip6.gateway, found6.nic)
            return discover.Choice(found6.nic, why)
    _log.warning("no NIC got an answer from the gateway")
    return None


def _announce(cfg: NetConfig, result: StaticResult, nics: tuple[discover.Nic, ...]) -> None:
    """Gratuitous ARP / unsolicited NA so the gateway learns us at once.

    One round on the boot path; the proxy announces again when it starts.
    """
    uplink = next((n for n in nics if n.name == result.plan.nic), None)
    if uplink is None:
        return
    dev = "public" if result.applied.ok else uplink.name
    if cfg.ip4 is not None:
        announce.gratuitous_arp(dev, netif.mac_bytes(uplink.mac), cfg.ip4.address, count=1)
    if cfg.ip6 is not None:
        announce.unsolicited_na(dev, netif.mac_bytes(uplink.mac), cfg.ip6.address, count=1)


def _tentative(ipr: object, dev: str) -> tuple[list[str], list[str]]:
    """(still tentative, DAD failed) IPv6 addresses on ``dev``."""
    idx = ipr.link_lookup(ifname=dev)  # type: ignore[attr-defined]
    if not idx:
        return [], []
    waiting, failed = [], []
    for msg in ipr.get_addr(family=socket.AF_INET6, index=idx[0]):  # type: ignore[attr-defined]
        flags = msg.get_attr("IFA_FLAGS") or msg["flags"]
        addr = str(msg.get_attr("IFA_ADDRESS"))
        if flags & IFA_F_DADFAILED:
            failed.append(addr)
        elif flags & IFA_F_TENTATIVE:
            waiting.append(addr)
    return waiting, failed


def wait_for_dad(dev: str, timeout: float = DAD_TIMEOUT) -> bool:
    """Wait until duplicate address detection has finished on ``dev`` (bounded).

    A tentative address cannot be used as a source yet, so IPv6 is not up
    before this. A duplicate is logged loudly: someone else has our address.
    """
    deadline = time.monotonic() + timeout
    with IPRoute() as ipr:
        while True:
            waiting, failed = _tentative(ipr, dev)
            for addr in failed:
                _log.error("duplicate address detected for %s on %s", addr, dev)
            if not waiting:
                return not failed
            if time.monotonic() >= deadline:
                _log.warning("DAD still running on %s after %.0f s: %s", dev, timeout, waiting)
                return False
            time.sleep(0.05)


def bring_up(
    cfg: NetConfig, include: tuple[str, ...] = (), resolv_conf: str = "/etc/resolv.conf"
) -> StaticResult:
    """``include`` names virtual links that count as NICs (tests use veths).

    PID 1 passes ``resolv_conf=/run/mosnet/resolv.conf``: the real root is
    not mounted yet, and /run moves into it.
    """
    nics = _discover(cfg, include)
    choice = choose_nic(cfg, nics)
    chosen = choice.name if choice else None
    the_plan = plan(cfg, nics, chosen, ovs_available=ovs.available(), resolv_conf=resolv_conf)
    for line in the_plan.render().splitlines():
        _log.info("plan: %s", line)
    # MAC NAT first: its guard then already drops what the new bridge itself
    # sends on coming up (IGMP reports from its own MAC) before the switch sees it.
    mac = macnat.enable(the_plan, nics) if the_plan.ok else None
    applied = netapply.apply(the_plan)
    result = StaticResult(the_plan, applied, chosen, mac, choice.reason if choice else "")
    if applied.ok or applied.rolled_back:
        if cfg.ip6 is not None and the_plan.nic:
            wait_for_dad("public" if applied.ok else the_plan.nic)
        _announce(cfg, result, nics)
    for err in applied.errors:
        _log.error("static: %s", err)
    return result
